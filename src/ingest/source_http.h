/*
 * The HTTP source: event batches posted to the API (POST /v1/events, and Ably webhooks
 * translated to events). A batch is answered 202 only once it is committed to the
 * outbox (several batches share one commit when they arrive together), so a 202
 * survives kill -9; its events are then handed to the router, and the batch leaves
 * the outbox when every one of them is acknowledged. On start, batches left in the
 * outbox are handed again (the router's notified marks keep devices from being
 * notified twice).
 */
#ifndef PUSHRELAY_SOURCE_HTTP_H
#define PUSHRELAY_SOURCE_HTTP_H

#include <stddef.h>

#include "event.h"
#include "source.h"

struct store;
struct store_writer;

extern const struct source_ops source_http_ops;

enum source_http_result {
	SOURCE_HTTP_ACCEPTED = 0,	/* committed: answer 202 */
	SOURCE_HTTP_BUSY = -1,		/* too much waiting: answer 503 with Retry-After */
	SOURCE_HTTP_STORE = -2,		/* the commit failed: answer 503 */
};

/* Told once a batch is committed (or not). */
typedef void source_http_done_fn(int result, void *arg);

/* The writer and store the outbox lives in; call before start. */
void source_http_setup(struct store *store, struct store_writer *writer);
/* Is there room for another batch now? */
int source_http_ready(const struct source *source);
/*
 * Keep a batch of parsed events (taken over, count may be 0) whose durable form is
 * outbox_body; done is called once it is committed. Returns SOURCE_HTTP_ACCEPTED (done
 * will be called) or SOURCE_HTTP_BUSY (it will not).
 */
int source_http_submit(struct source *source, struct room_event *events, size_t count,
    const char *outbox_body, source_http_done_fn *done, void *arg);
/* Turn an outbox body back into events (registered by the API for each body kind). */
typedef int source_http_replay_fn(const char *body, struct room_event **events,
    size_t *count);
void source_http_set_replay(source_http_replay_fn *replay);

#endif
