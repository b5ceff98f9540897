/*
 * Providers: APNs (apns.c), FCM HTTP v1 (fcm.c) and the dry-run log provider
 * (provider_log.c), behind one table of operations.
 *
 * A provider takes one delivery (one notification to one device, see delivery.h) at
 * a time through send(), and reports exactly once, later and never from inside
 * send(), through delivery_complete() with a struct provider_result that says what
 * the provider's answer means. The delivery layer owns retries, outcomes, token
 * removal and feedback: a provider only sends and classifies.
 */
#ifndef PUSHRELAY_PROVIDER_H
#define PUSHRELAY_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct delivery;
struct event_base;

/* What an answer (or the lack of one) means for the delivery. */
enum provider_verdict {
	PROVIDER_SENT = 0,	/* the provider accepted the notification */
	PROVIDER_RETRY,		/* 429, 5xx, timeout, lost connection: try again later */
	PROVIDER_TOKEN_GONE,	/* the token is dead: remove the registration */
	PROVIDER_REJECTED,	/* this notification can never go (e.g. payload): device kept */
	PROVIDER_CONFIG,	/* our credentials or setup are wrong: device kept, no retry */
};

struct provider_result {
	enum provider_verdict verdict;
	int status;			/* HTTP status; 0 when there was no answer */
	char reason[128];		/* "Unregistered", "UNREGISTERED", "timeout", ... */
	int64_t retry_after_ms;		/* from Retry-After; 0 when absent */
	int64_t token_invalid_since;	/* APNs 410 "timestamp" in ms; 0 when absent */
};

/* Counters a provider keeps for metrics and logs. */
struct provider_stats {
	uint64_t sent;
	uint64_t retried;
	uint64_t token_gone;
	uint64_t rejected;
	uint64_t config_errors;
	uint64_t token_renewals;	/* provider tokens minted (APNs JWT, FCM OAuth) */
	uint64_t auth_failures;		/* answers that blamed our credentials */
	unsigned connections;
	unsigned streams_in_flight;
	unsigned queued;
};

enum provider_error {
	PROVIDER_OK = 0,
	PROVIDER_EBUSY = -1,	/* cannot take more now: keep it and retry after a completion */
	PROVIDER_ENOAPP = -2,	/* no credentials for the delivery's app_id */
	PROVIDER_ESHUTDOWN = -3,	/* draining */
};

struct provider;

struct provider_ops {
	const char *name;		/* "apns", "fcm", "log" */
	/* Create from the configuration; NULL with err set on failure. */
	struct provider *(*create)(struct event_base *base, const struct config *config,
	    char *err, size_t errlen);
	/* Take one delivery: PROVIDER_OK (it will complete later) or a PROVIDER_E* code. */
	int (*send)(struct provider *provider, struct delivery *delivery);
	/*
	 * Check that a new configuration's credentials load, changing nothing: a reload
	 * checks every provider before any of them adopts anything.
	 */
	int (*check)(struct provider *provider, const struct config *config, char *err,
	    size_t errlen);
	/* Adopt reloadable settings (credentials) of a new configuration, or refuse. */
	int (*reload)(struct provider *provider, const struct config *config, char *err,
	    size_t errlen);
	/* Stop taking deliveries, finish those in flight, then call done. */
	void (*drain)(struct provider *provider, void (*done)(void *arg), void *arg);
	/* Free; deliveries still in flight complete with PROVIDER_RETRY "shutdown". */
	void (*free)(struct provider *provider);
	void (*stats)(const struct provider *provider, struct provider_stats *stats);
};

extern const struct provider_ops provider_apns_ops;
extern const struct provider_ops provider_fcm_ops;
extern const struct provider_ops provider_log_ops;

const char *provider_verdict_name(enum provider_verdict verdict);

#endif
