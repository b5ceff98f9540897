/*
 * Providers: APNs (apns.c, with its credentials), FCM HTTP v1 (fcm.c, its service
 * account and OAuth access tokens in fcm_auth.c) and the dry-run log provider
 * (provider_log.c), behind one table of operations.
 *
 * daemon.c creates, reloads, drains and frees the provider of each platform;
 * metrics.c reads its stats; the delivery layer (delivery.c) is the only caller of
 * send(). A provider takes one delivery (one notification to one device, see
 * delivery.h) at a time through send(), with a completion callback; it calls that
 * callback exactly once for every send() that returned PROVIDER_OK, later, from the
 * event loop, never from inside send(), with a struct provider_result that says what
 * the provider's answer means.
 * A provider never calls the delivery layer by name: it only reads the delivery
 * (and builds its platform's payload with payload_content_prepare()). The delivery
 * layer owns retries, outcomes, token removal and feedback: a provider only sends
 * and classifies.
 *
 * Everything here runs on the event loop's thread (the base given to create()).
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

/* What send() returns. */
enum provider_error {
	PROVIDER_OK = 0,	/* taken: its completion will come */
	PROVIDER_EBUSY = -1,	/* cannot take more now: keep it and retry after a completion */
	PROVIDER_ENOAPP = -2,	/* no credentials for the delivery's app_id */
	PROVIDER_ESHUTDOWN = -3,	/* draining or being freed */
};

struct provider;

/*
 * A delivery's result, as the provider reports it: exactly once per accepted send(),
 * from the event loop, never from inside send(). result is valid only during the call.
 * The callback may call send() again (for this delivery or another), and may free the
 * delivery: the provider does not touch it afterwards.
 */
typedef void provider_done_fn(struct delivery *delivery, const struct provider_result *result,
    void *arg);

/* A problem with a section's credentials: its header's line in the file, and what. */
typedef void provider_problem_fn(int line, const char *message, void *arg);

struct provider_ops {
	const char *name;		/* "apns", "fcm", "log" */
	/*
	 * Create from the configuration (every credential is loaded and checked now);
	 * NULL with err set on failure.
	 */
	struct provider *(*create)(struct event_base *base, const struct config *config,
	    char *err, size_t errlen);
	/*
	 * Take one delivery. PROVIDER_OK: done(delivery, result, arg) will be called once,
	 * later. PROVIDER_EBUSY, PROVIDER_ENOAPP, PROVIDER_ESHUTDOWN: refused now, and
	 * done will never be called for this send; the delivery is still the caller's.
	 */
	int (*send)(struct provider *provider, struct delivery *delivery,
	    provider_done_fn *done, void *arg);
	/*
	 * Check that a new configuration's credentials load, changing nothing: 0, or -1
	 * with err set. A reload checks every provider before any of them adopts
	 * anything. May be NULL (nothing to check).
	 */
	int (*check)(struct provider *provider, const struct config *config, char *err,
	    size_t errlen);
	/*
	 * Adopt reloadable settings (credentials) of a new configuration: 0, or -1 with
	 * err set and nothing adopted (e.g. a section added or removed needs a restart).
	 */
	int (*reload)(struct provider *provider, const struct config *config, char *err,
	    size_t errlen);
	/*
	 * Stop taking deliveries (send() answers PROVIDER_ESHUTDOWN), finish those in
	 * flight (their completions come as usual), then call done once. The log
	 * provider completes and calls done from inside drain(); the others, later.
	 */
	void (*drain)(struct provider *provider, void (*done)(void *arg), void *arg);
	/*
	 * Free. Deliveries still in flight complete now, from inside free(), with
	 * PROVIDER_RETRY "shutdown" (or a result decided before): their callbacks must
	 * still be callable, and send() answers PROVIDER_ESHUTDOWN meanwhile.
	 */
	void (*free)(struct provider *provider);
	/* Counters and gauges, for metrics; may be NULL. */
	void (*stats)(const struct provider *provider, struct provider_stats *stats);
	/*
	 * Load every credential of the configuration as create() would, without
	 * connecting or resolving anything, and report each problem (what create() would
	 * refuse): the number of problems. For pushrelayd -t, and before create() at
	 * start, so that both say the same. May be NULL (nothing to check).
	 */
	size_t (*check_offline)(const struct config *config, provider_problem_fn *problem,
	    void *arg);
};

extern const struct provider_ops provider_apns_ops;
extern const struct provider_ops provider_fcm_ops;
extern const struct provider_ops provider_log_ops;

struct config_url;
/*
 * The Proxy-Authorization of a proxy with credentials ("Basic " and base64 of
 * user:password), or NULL; the caller wipes and frees it.
 */
char *provider_proxy_authorization(const struct config_url *proxy);
/*
 * The proxy as libcurl takes it: "http://user:password@host:port", the credentials
 * percent-encoded, or "http://host:port"; NULL when there is none. The caller wipes
 * and frees it.
 */
char *provider_proxy_url(const struct config_url *proxy);

/* "sent", "retry", "token_gone", "rejected", "config"; "unknown" for anything else. */
const char *provider_verdict_name(enum provider_verdict verdict);

#endif
