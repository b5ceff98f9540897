/*
 * A source turns outside input into room events (struct room_event, event.h) and
 * hands each one to its sink, the router, with an acknowledgement. There are three:
 *	redis-pubsub	Redis Pub/Sub (source_pubsub.c)
 *	redis-streams	Redis Streams in a consumer group (source_streams.c)
 *	http		POST /v1/events and Ably webhooks, through an outbox
 *			(source_http.c, with source_ably.c for the Ably translation)
 * The two Redis sources share their connection code (redis_link.c). Every source
 * runs on the loop's thread; nothing here is called from another.
 *
 * Who calls what: daemon.c starts each source the configuration turns on (ops->start,
 * or source_http_start() for the HTTP source, which needs the store) with the
 * router's sink, and gives it to the router with router_add_source(). Through the
 * sink, the router takes each event and calls its ack; it calls resume() once it has
 * room again. Metrics and /readyz call stats(); daemon.c calls pause() at shutdown
 * and stop() last, after the router stopped. A source reports to its sink only through the sink's callbacks, and the
 * HTTP source to the API only through the answer callback each request gave it.
 *
 * The ack contract: on SOURCE_OK the sink takes the event by moving its contents out
 * (leaving it zeroed; the struct stays the source's) and calls ack(ctx) exactly once,
 * possibly before handle() returns, when the event's work is done: every notification
 * it caused has been sent or has failed for good. Only then does a source let the
 * event go for good: Streams XACK its entry, the HTTP source deletes its batch from
 * the outbox once every event of it is acknowledged; Pub/Sub, which cannot replay,
 * ignores the ack. What is not acknowledged when the daemon dies is handed again at
 * the next start (Streams' pending entries, the outbox), marked redelivered; the
 * router's notified marks keep it from notifying twice. No ack may come after stop().
 *
 * Backpressure: when the sink answers SOURCE_EFULL it took nothing; the source keeps
 * the event and stops handing (Streams stop reading; the HTTP source refuses new
 * batches with 503 and Retry-After) until the sink calls resume(). Pub/Sub cannot
 * wait: it drops the event and counts it.
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

/* What sources hand events to (the router's, from router_sink()). */
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
	uint64_t pending;		/* Streams: entries read and not acked yet; HTTP: batches */
	int64_t lag;			/* Streams: entries behind the stream's end, -1 unknown */
	int connected;
	int paused;
};

struct source_ops {
	const char *name;		/* "redis-pubsub", "redis-streams", "http" */
	/*
	 * Start from the configuration; NULL with err set on failure. NULL for the HTTP
	 * source, which source_http_start() creates.
	 */
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
