/*
 * Deliveries: one notification to one device, from acceptance to its outcome.
 *
 * A delivery layer (struct delivery_layer, made by delivery_layer_new() in daemon.c)
 * owns the deliveries in its hands: a ready queue per platform, the deliveries
 * waiting for a retry, the count of those with a provider, its counters and its
 * outcome and latency figures. Two layers share nothing.
 *
 * Deliveries come from the push ledger (push.c: POST /v1/push and the pushes resumed
 * at start) and from the router (router.c: room events). The layer hands each to the
 * provider of its platform (provider.h) with its own completion callback, and acts
 * on the provider_result:
 *	PROVIDER_SENT		the device's last_success_at is written, in a batch by the
 *				store writer each second (to the minute: a device that
 *				succeeded in the last minute is not written again);
 *	PROVIDER_RETRY		sent again after an exponential backoff with jitter in
 *				[half, all] of retry_initial_ms * 2^(attempt-1), capped at
 *				retry_max_ms, or the provider's Retry-After if longer; it
 *				fails once max_attempts are spent or the wait would pass
 *				max_age_ms from acceptance; while stopping, it is abandoned;
 *	PROVIDER_TOKEN_GONE	the registration is removed by the store writer, unless it
 *				was registered again since (then the delivery fails and the
 *				device is kept), and a feedback event is emitted; but an APNs
 *				BadDeviceToken is first tried once in the other environment
 *				(apns_environment_fallback), and if that is sent, the
 *				device's environment is corrected in the store and logged;
 *	PROVIDER_REJECTED,
 *	PROVIDER_CONFIG		logged (warning) and failed, without a retry.
 * A send() the provider refuses: PROVIDER_EBUSY keeps the delivery first in line, to
 * be tried again after the next completion; PROVIDER_ENOAPP fails it as a configuration
 * error ("no [apns "APP"] section for this app_id"); PROVIDER_ESHUTDOWN fails it.
 *
 * Every function here, and every observer and provider callback, runs on the event
 * loop's thread. A push_content is built on the loop; once a platform's payload is
 * prepared, another thread may read it (push.c's store writer job does) while the
 * loop changes nothing in it.
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

/*
 * What every delivery of one notification shares: built once, reference counted (by
 * each delivery, and by whoever made it: push.c, router.c).
 */
struct delivery;
struct delivery_flow;
TAILQ_HEAD(delivery_queue, delivery);

struct push_content {
	unsigned refcount;
	struct notification notification;
	int badge_per_recipient;	/* payloads carry a badge splice */
	/* Built by payload_content_prepare(), on the loop, the first time one is needed. */
	int apns_built;
	struct payload apns;
	int apns_error;			/* PAYLOAD_OK or why the APNs body cannot be built */
	int fcm_built;
	struct payload fcm;
	int fcm_error;
	/*
	 * Private to delivery.c: the content's deliveries ready in each layer and for
	 * each platform, each a flow of that layer's round robin while it has some.
	 */
	struct delivery_flow *flows;
};

/*
 * Where a delivery stands; the names are those GET /v1/push/{id} shows and the push
 * ledger stores. SENT, FAILED and TOKEN_REMOVED are final.
 */
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

/*
 * Told, on the loop, of each retry (DELIVERY_RETRYING, reason: why) and then once of
 * the end: a final state (reason: the provider's, or why it failed; NULL or
 * informative for SENT) or DELIVERY_ABANDONED. QUEUED and SENDING are not reported.
 * The delivery is freed when the observer returns from an end; it must not call
 * back into the delivery layer for this delivery.
 */
typedef void delivery_observer_fn(struct delivery *delivery, enum delivery_state state,
    const char *reason, void *arg);

struct delivery_layer;

/* One notification to one device. Made by delivery_new(), freed by the layer. */
struct delivery {
	/* What to send: providers read these, and change none. */
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
	size_t observer_index;		/* delivery_submit()'s index, for the observer */

	/* Private to delivery.c. */
	struct delivery_layer *layer;	/* the one it was made for */
	struct delivery_flow *flow;	/* while it is ready: its content's flow */
	int environment_switched;	/* sent to the other APNs environment */
	TAILQ_ENTRY(delivery) entry;
	enum delivery_state state;
	struct event *retry_timer;
	delivery_observer_fn *observer;
	void *observer_arg;
};

/* The [delivery] settings; reloadable (delivery_set_options). */
struct delivery_options {
	int max_attempts;
	int64_t retry_initial_ms;
	int64_t retry_max_ms;
	int64_t max_age_ms;
	size_t queue_size;		/* what delivery_room() counts against */
	/*
	 * An APNs token refused as BadDeviceToken in its environment is tried once in
	 * the other; if that works, the device's environment is corrected in the store.
	 */
	int apns_environment_fallback;
};

struct delivery_stats {
	size_t queued;			/* waiting for a provider */
	size_t retrying;		/* waiting for their retry time */
	size_t in_flight;		/* with a provider */
	uint64_t sent, failed, token_removed, retries;
	uint64_t environment_switches;	/* APNs tokens tried in the other environment */
	uint64_t environment_corrections;	/* of those, devices corrected in the store */
};

struct event_base;
struct store;
struct store_writer;
struct feedback;

/* "queued", "sending", "retrying", "sent", "failed", "token_removed", "abandoned". */
const char *delivery_state_name(enum delivery_state state);

/* ---- content: what the deliveries of one notification share ---- */

/*
 * The shared content of a notification, which it takes over (the caller's is left
 * empty), with one reference for the caller; payloads are built lazily.
 */
struct push_content *delivery_content_new(struct notification *notification,
    int badge_per_recipient);
void delivery_content_ref(struct push_content *content);
/*
 * Replace what a content says (an edit before it was sent): deliveries not handed to
 * a provider yet send the new text. Takes the notification over.
 */
void delivery_content_update(struct push_content *content, struct notification *notification);
/* Drop a reference; the last frees the content. NULL is fine. */
void delivery_content_unref(struct push_content *content);

/* ---- the layer ---- */

/*
 * A delivery layer on base, sending through the provider of each platform (the log
 * provider where a platform has no credentials; the providers outlive the layer's
 * use of them). Token removals go to store (the loop's connection), successes to
 * writer; feedback (may be NULL) hears of removed tokens. Never fails: out of memory
 * at start is fatal.
 */
struct delivery_layer *delivery_layer_new(struct event_base *base, struct store *store,
    struct store_writer *writer, const struct provider_ops *apns_ops,
    struct provider *apns, const struct provider_ops *fcm_ops, struct provider *fcm,
    struct feedback *feedback, const struct delivery_options *options);
/* Adopt new options (a reload); deliveries already waiting keep their retry time. */
void delivery_set_options(struct delivery_layer *layer, const struct delivery_options *options);
/*
 * Stop handing deliveries to providers (daemon.c, at shutdown): what is queued stays
 * queued, and a retry that comes due or a PROVIDER_RETRY answer is abandoned (its
 * owner keeps it queued in the store for the next start); other completions are
 * still recorded.
 */
void delivery_stop(struct delivery_layer *layer);
/*
 * Hand the last successes to the store writer, abandon what is queued or waiting,
 * and free the layer. Call once the providers are freed (nothing is in flight) and
 * before the writer stops. NULL is fine.
 */
void delivery_layer_free(struct delivery_layer *layer);

/*
 * A new delivery for layer, to a target (whose strings it borrows: the target must
 * outlive it), of a content (referenced), with a fresh id; not yet submitted.
 */
struct delivery *delivery_new(struct delivery_layer *layer, const struct device_target *target,
    struct push_content *content, int64_t badge, int64_t accepted_at);
/*
 * Queue it; from now on the layer owns it, and the observer (may be NULL) hears of
 * it until its end; index is kept in delivery->observer_index for the observer.
 * Never refused: callers check delivery_room() first.
 */
void delivery_submit(struct delivery *delivery, delivery_observer_fn *observer, void *arg,
    size_t index);
/* Places left: queue_size less the deliveries queued, waiting to retry or in flight. */
size_t delivery_room(const struct delivery_layer *layer);
/*
 * Fail, with reason, every delivery of a content not handed to a provider yet
 * (queued or waiting to retry; a message deleted before it left); the number failed.
 */
size_t delivery_cancel_content(struct delivery_layer *layer, const struct push_content *content,
    const char *reason);

void delivery_get_stats(const struct delivery_layer *layer, struct delivery_stats *stats);

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
/*
 * The counters by platform and app, and how many rows there are; the rows are valid
 * until the layer counts another outcome (the loop runs again) or is freed.
 */
size_t delivery_get_outcomes(const struct delivery_layer *layer,
    const struct delivery_outcome_counts **rows);
void delivery_get_latency(const struct delivery_layer *layer, enum device_platform platform,
    struct delivery_latency *latency);

#endif
