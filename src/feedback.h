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
 */
#ifndef PUSHRELAY_FEEDBACK_H
#define PUSHRELAY_FEEDBACK_H

#include <stddef.h>
#include <stdint.h>

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
/* Cancel pending posts and free. */
void feedback_free(struct feedback *feedback);

#endif
