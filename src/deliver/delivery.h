/*
 * Deliveries: one notification to one device, from acceptance to its outcome.
 *
 * The delivery layer takes deliveries from the push API (and later from room events),
 * hands them to the provider for their platform and app, and acts on each
 * provider_result: success is recorded on the device, retryable failures come back
 * after an exponential backoff with full jitter (or the provider's Retry-After),
 * within max_attempts and max_age; a dead token removes the registration (unless it
 * was registered again since) and emits a feedback event; a provider configuration
 * problem is logged loudly and fails the delivery without retry.
 */
#ifndef PUSHRELAY_DELIVERY_H
#define PUSHRELAY_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "model.h"
#include "notification.h"
#include "payload.h"
#include "provider.h"

/* What every delivery of one notification shares: built once, reference counted. */
struct push_content {
	unsigned refcount;
	struct notification notification;
	int badge_per_recipient;	/* payloads carry a badge splice */
	/* Built by delivery_content_prepare(), on the loop, the first time one is needed. */
	int apns_built;
	struct payload apns;
	int apns_error;			/* PAYLOAD_OK or why the APNs body cannot be built */
	int fcm_built;
	struct payload fcm;
	int fcm_error;
};

/* Where a delivery stands; the names are those GET /v1/push/{id} shows. */
enum delivery_state {
	DELIVERY_QUEUED = 0,
	DELIVERY_SENDING,
	DELIVERY_RETRYING,
	DELIVERY_SENT,
	DELIVERY_FAILED,
	DELIVERY_TOKEN_REMOVED,
	/* Not an outcome: dropped at shutdown, still queued in the store for a restart. */
	DELIVERY_ABANDONED,
};

struct delivery;

/* Told of every state change, e.g. to record a push's progress. */
typedef void delivery_observer_fn(struct delivery *delivery, enum delivery_state state,
    const char *reason, void *arg);

struct delivery {
	/* What to send: providers read these. */
	struct push_content *content;
	const char *device_id;		/* borrowed from the target, which outlives us */
	const char *client_id;
	const char *token;
	const char *app_id;
	enum device_platform platform;
	enum device_environment environment;
	int64_t registered_at;		/* the device's updated_at when resolved (ms) */
	int64_t last_success_at;	/* the device's last_success_at when resolved */
	int64_t badge;			/* spliced when content->badge_per_recipient */
	char id[37];			/* UUID: the apns-id, and the id in logs */
	int64_t accepted_at;		/* wall-clock ms: apns-expiration counts from here */
	int attempt;			/* 1 on the first send */

	/* Private to delivery.c. */
	TAILQ_ENTRY(delivery) entry;
	enum delivery_state state;
	struct event *retry_timer;
	int64_t not_before_mono;
	delivery_observer_fn *observer;
	void *observer_arg;
	size_t observer_index;		/* the observer's own bookkeeping */
};

struct delivery_options {
	int max_attempts;
	int64_t retry_initial_ms;
	int64_t retry_max_ms;
	int64_t max_age_ms;
	size_t queue_size;
};

struct delivery_stats {
	size_t queued;			/* waiting for a provider */
	size_t retrying;		/* waiting for their retry time */
	size_t in_flight;		/* with a provider */
	uint64_t sent, failed, token_removed, retries;
};

struct store;
struct store_writer;
struct feedback;

const char *delivery_state_name(enum delivery_state state);

/* The shared content of a notification, which it takes over; payloads come lazily. */
struct push_content *delivery_content_new(struct notification *notification,
    int badge_per_recipient);
void delivery_content_ref(struct push_content *content);
/*
 * Build a platform's payload if it is not built yet (providers call it before they
 * read content->apns / content->fcm): a message to iPhones only never builds FCM's.
 */
void delivery_content_prepare(struct push_content *content, enum device_platform platform);
/*
 * Replace what a content says (an edit before it was sent): deliveries not sent yet
 * send the new text. Takes the notification over.
 */
void delivery_content_update(struct push_content *content, struct notification *notification);
/* Fail, with reason, every delivery of a content that has not been handed out yet. */
size_t delivery_cancel_content(const struct push_content *content, const char *reason);
void delivery_content_unref(struct push_content *content);

/*
 * Start the delivery layer with the provider for each platform (the log provider
 * where a platform has no credentials). feedback may be NULL.
 */
void delivery_init(struct event_base *base, struct store *store, struct store_writer *writer,
    const struct provider_ops *apns_ops, struct provider *apns,
    const struct provider_ops *fcm_ops, struct provider *fcm, struct feedback *feedback,
    const struct delivery_options *options);
void delivery_set_options(const struct delivery_options *options);
/*
 * Stop handing deliveries to providers: what is queued or waiting to retry stays
 * queued in the store for the next start; completions are still recorded.
 */
void delivery_stop(void);
/* Hand the last successes to the store writer and free everything; call once the
 * providers are freed and before the writer stops. */
void delivery_shutdown(void);

/*
 * A new delivery to a target (whose strings it borrows: the target must outlive it)
 * of a content (referenced); not yet submitted.
 */
struct delivery *delivery_new(const struct device_target *target,
    struct push_content *content, int64_t badge, int64_t accepted_at);
/* Queue it; the observer hears of every state change until the final one. */
void delivery_submit(struct delivery *delivery, delivery_observer_fn *observer, void *arg,
    size_t index);
/* Places left in the queue (queue_size bounds queued, retrying and in-flight ones). */
size_t delivery_room(void);

void delivery_get_stats(struct delivery_stats *stats);

/* ---- metrics: outcomes by platform and app, latency by platform ---- */

/* How a delivery ended (or, for RETRIED, how one attempt ended), for metrics. */
enum delivery_outcome {
	DELIVERY_OUTCOME_SENT = 0,
	DELIVERY_OUTCOME_FAILED,	/* gave up retrying, token kept, shutting down, ... */
	DELIVERY_OUTCOME_TOKEN_REMOVED,
	DELIVERY_OUTCOME_RETRIED,	/* an attempt that will be tried again: not final */
	DELIVERY_OUTCOME_REJECTED,	/* the provider refused this notification */
	DELIVERY_OUTCOME_CONFIG_ERROR,	/* our credentials, or no section for the app_id */
	DELIVERY_OUTCOME_CANCELLED,	/* the message was deleted before it left */
	DELIVERY_OUTCOMES
};

/* Apps counted apart per platform; the others are counted under this app_id. */
#define DELIVERY_OUTCOME_APPS_MAX 64
#define DELIVERY_OUTCOME_OTHER_APP "(other)"

struct delivery_outcome_counts {
	enum device_platform platform;
	char *app_id;
	uint64_t counts[DELIVERY_OUTCOMES];
};

/* Upper bounds (ms) of the latency buckets, from acceptance to the final answer. */
#define DELIVERY_LATENCY_BUCKETS 13
extern const int64_t delivery_latency_bounds_ms[DELIVERY_LATENCY_BUCKETS];

struct delivery_latency {
	uint64_t buckets[DELIVERY_LATENCY_BUCKETS + 1];	/* per bucket, not cumulative;
							 * the last: above every bound */
	uint64_t count;
	uint64_t sum_ms;
};

const char *delivery_outcome_name(enum delivery_outcome outcome);
/* The counters by platform and app; valid until the next call into the layer. */
size_t delivery_get_outcomes(const struct delivery_outcome_counts **rows);
void delivery_get_latency(enum device_platform platform, struct delivery_latency *latency);

#endif
