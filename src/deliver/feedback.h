/*
 * Feedback: telling the chat backend that a device's token is gone.
 *
 * When the delivery layer removes a registration because the provider said its token
 * is dead, it emits one feedback event. The event is always logged (one info line,
 * msg="token removed", with the device, client, platform, app and reason, never the
 * token) and counted. When [delivery] feedback_url is set, it is also POSTed there as
 *
 *	{"event":"token_removed","device_id":"...","client_id":"...","platform":"fcm",
 *	 "app_id":"...","reason":"UNREGISTERED","at":"2026-11-28T09:15:02.123Z"}
 *
 * (client_id is null for a device without one), with Content-Type application/json.
 * A transport error, a 5xx or a 429 is retried with exponential backoff and jitter (and
 * at least the server's Retry-After) up to feedback_max_attempts attempts, each limited
 * to feedback_timeout; any other answer is final: 2xx posted, anything else logged and
 * counted as failed.
 *
 * Delivery is at least once while the daemon runs (a POST whose answer was lost is
 * sent again, so receivers should treat events as idempotent), and not durable: events
 * are kept in memory only, in a bounded queue whose oldest events are dropped (counted
 * and logged) when it overflows, and whatever is queued at exit or when feedback_url
 * is unset by a reload is lost. The backend can always reconcile by listing devices.
 *
 * Whether or not a URL is set, a feedback object also keeps its last
 * FEEDBACK_RECENT_MAX events in memory, numbered from 1 (seq), for GET /v1/feedback:
 * the same JSON with "seq" first. A watch is a one-shot callback for the next event,
 * which lets an HTTP long-poll answer as soon as one comes. feedback_free() ends the
 * watches and forgets the events.
 *
 * One feedback object is made by daemon.c and given to the delivery layer (which
 * emits) and to the API (api_feedback.c, which reads the recent events and watches).
 * Everything here runs on the event loop's thread.
 *
 * daemon.c creates it; the delivery layer emits events and GET /v1/feedback reads
 * them, all on the event loop.
 */
#ifndef PUSHRELAY_FEEDBACK_H
#define PUSHRELAY_FEEDBACK_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct config;
struct event_base;
struct feedback;

/* Events waiting or being posted; beyond it, the oldest are dropped. */
#define FEEDBACK_QUEUE_MAX 10000

/* A removed registration. The strings are copied; client_id may be NULL. */
struct feedback_event {
	const char *device_id;
	const char *client_id;
	const char *platform;		/* "apns" or "fcm" */
	const char *app_id;
	const char *reason;		/* the provider's reason, e.g. "Unregistered" */
	int status;			/* the provider's HTTP status */
	int64_t at;			/* when, in ms since the epoch; 0: now */
};

struct feedback_stats {
	uint64_t emitted;		/* events, whether or not a URL is set */
	uint64_t posted;		/* accepted by the webhook (2xx) */
	uint64_t failed;		/* given up: final answer or attempts exhausted */
	uint64_t dropped;		/* pushed out of a full queue, or unset by a reload */
	size_t queued;			/* waiting or being posted now */
};

/* Start with config's [delivery] feedback_* options. */
struct feedback *feedback_new(struct event_base *base, const struct config *config);
/* Adopt new feedback_* options; if the URL is now unset, queued events are dropped. */
void feedback_reload(struct feedback *feedback, const struct config *config);
/* Log, count and (with a URL) queue one event. */
void feedback_emit(struct feedback *feedback, const struct feedback_event *event);
void feedback_get_stats(const struct feedback *feedback, struct feedback_stats *stats);
/* Cancel pending posts, end the watches (stopping), forget the recent events, free. */
void feedback_free(struct feedback *feedback);

/* Events kept for GET /v1/feedback, the newest last. */
#define FEEDBACK_RECENT_MAX 1000

struct feedback_watch;
/* A watch fired: an event was kept (stopping 0), or the watches ended (stopping 1). */
typedef void feedback_watch_fn(int stopping, void *arg);

/*
 * The kept events numbered above after, oldest first: a new JSON array of objects
 * {"seq":N,"event":"token_removed",...}. An after beyond the newest (the daemon has
 * restarted since the caller's last look) counts as 0.
 */
json_t *feedback_recent(const struct feedback *feedback, uint64_t after);
/* The seq of the newest event, 0 before the first. */
uint64_t feedback_recent_last(const struct feedback *feedback);
/* Call fn once, at the next event or when the watches end; NULL once they have ended. */
struct feedback_watch *feedback_watch(struct feedback *feedback, feedback_watch_fn *fn,
    void *arg);
/* Cancel a watch that has not fired (NULL is fine). */
void feedback_unwatch(struct feedback_watch *watch);
/* The daemon is stopping: fire every watch with stopping 1 now, and refuse new ones. */
void feedback_stop_watches(struct feedback *feedback);

#endif
