/*
 * Sources of room events: Redis Pub/Sub and Redis Streams (source_redis.c), the
 * HTTP event endpoint (source_http.c) and Ably webhooks (source_ably.c), behind one
 * table of operations. A source parses what it receives into struct room_event
 * (event.h) and hands each event to the sink (the router), with an acknowledgement
 * the sink calls exactly once when the event's work is done: every notification it
 * caused has been sent or has failed for good. Streams XACK there; Pub/Sub, which
 * cannot replay, ignores it.
 *
 * Backpressure: when the sink answers SOURCE_EFULL, the source keeps the event and
 * pauses (Streams stop reading; HTTP answers 503 with Retry-After); the sink calls
 * the source's resume when it has room again. Pub/Sub cannot pause: it counts what it
 * drops.
 */
#ifndef PUSHRELAY_SOURCE_H
#define PUSHRELAY_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

struct config;
struct event_base;
struct source;

enum source_error {
	SOURCE_OK = 0,
	SOURCE_EFULL = -1,	/* the sink has no room: pause, try again after resume */
};

/* Called once per handed event, when its work is done. */
typedef void source_ack_fn(void *ctx);

/* What sources hand events to. */
struct source_sink {
	/*
	 * Take one event (the sink takes ownership on SOURCE_OK and will call ack(ctx)
	 * exactly once, possibly before returning). On SOURCE_EFULL nothing was taken:
	 * the event stays the source's.
	 */
	int (*handle)(void *arg, struct room_event *event, source_ack_fn *ack, void *ctx);
	/* A malformed or unknown event was skipped (for counting). */
	void (*skipped)(void *arg, const char *source, const char *reason);
	void *arg;
};

struct source_stats {
	uint64_t received;		/* events handed to the sink */
	uint64_t malformed;
	uint64_t unknown;
	uint64_t dropped;		/* Pub/Sub: lost while the sink was full */
	uint64_t reconnects;
	uint64_t acked;
	uint64_t pending;		/* Streams: entries read and not acked yet */
	int64_t lag;			/* Streams: entries behind the stream's end, -1 unknown */
	int connected;
	int paused;
};

struct source_ops {
	const char *name;		/* "redis-pubsub", "redis-streams", "http", "ably" */
	/* Start from the configuration; NULL with err set on failure. */
	struct source *(*start)(struct event_base *base, const struct config *config,
	    const struct source_sink *sink, char *err, size_t errlen);
	/* Backpressure: stop taking events / take them again. */
	void (*pause)(struct source *source);
	void (*resume)(struct source *source);
	/* Stop taking events and free; events handed and not acked yet are not acked. */
	void (*stop)(struct source *source);
	void (*stats)(const struct source *source, struct source_stats *stats);
};

#endif
