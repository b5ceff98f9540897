/*
 * The HTTP source: room events posted to the API, as POST /v1/events batches
 * ({"events":[...]}, docs/events.md) or as Ably webhooks (POST /v1/ingest/ably,
 * source_ably.h). api_events.c and api_ably.c authenticate a request and hand its
 * bytes here; this source parses them, keeps them in the outbox, and tells the
 * handler what to answer through the callback it gave. Nothing here calls the API.
 *
 * Durability: a post is answered SOURCE_HTTP_ACCEPTED only once its batch is
 * committed to the outbox (store.h) by the store writer; batches that arrive while a
 * commit runs share the next one (group commit). So a 202 survives kill -9. The
 * batch's events are then handed to the sink (the router) in order, and the batch
 * leaves the outbox once every one of them is acknowledged. Each outbox row carries
 * its kind: at start, the rows left are read back as that kind says (the events
 * parser, or the Ably translation) and handed again, marked redelivered (the
 * router's notified marks keep devices from being notified twice); a row that no
 * longer reads is logged and dropped.
 *
 * Backpressure: at most 64 batches wait (committing, or with events not all handed);
 * beyond that, or while the sink has paused the source, a post answers
 * SOURCE_HTTP_EBUSY.
 *
 * Threads: everything runs on the loop's thread. daemon.c creates the source with
 * source_http_start() and hands the router its source_http_source() with
 * source_http_ops (whose start is NULL); the ops' stop frees it.
 */
#ifndef PUSHRELAY_SOURCE_HTTP_H
#define PUSHRELAY_SOURCE_HTTP_H

#include <stddef.h>

#include <jansson.h>

#include "source.h"
#include "source_ably.h"

struct config;
struct event_base;
struct source_http;
struct store;
struct store_writer;

extern const struct source_ops source_http_ops;	/* "http" */

/* What a post came to, and what the API answers for it. */
enum source_http_result {
	SOURCE_HTTP_ACCEPTED = 0,	/* committed: 202 */
	SOURCE_HTTP_EBUSY = -1,		/* too much waits: 503 with Retry-After */
	SOURCE_HTTP_ESTORE = -2,	/* the commit failed, nothing accepted: 503 */
	SOURCE_HTTP_ENOMEM = -3,	/* the batch could not be kept: 503 with Retry-After */
	SOURCE_HTTP_EJSON = -4,		/* not JSON, or of no known shape: 400 */
	SOURCE_HTTP_EMISSING = -5,	/* a required field is missing: 400 */
	SOURCE_HTTP_EINVALID = -6,	/* a field (or an Ably header) is wrong: 400 */
	SOURCE_HTTP_ETOOLARGE = -7,	/* too many events, items or entries: 413 */
	SOURCE_HTTP_EMEDIATYPE = -8,	/* an Ably webhook in msgpack: 415 */
};

/* The answer to one post; its pointers are valid during the callback only. */
struct source_http_answer {
	enum source_http_result result;
	size_t accepted;		/* ACCEPTED: the events kept */
	/*
	 * ACCEPTED: what was skipped, for the answer's "skipped": POST /v1/events
	 * [{"index", "reason"}], Ably {"malformed": count, ...} (source_ably.h's kinds).
	 */
	json_t *skipped;
	const char *field;		/* the field or header at fault, or NULL */
	const char *message;		/* why, valid UTF-8 (every result but ACCEPTED) */
};

/* Told exactly once per post, possibly before the post returns. */
typedef void source_http_answer_fn(const struct source_http_answer *answer, void *arg);

/*
 * Start the source: its outbox is in store, written through writer; events go to
 * sink; POST /v1/events batches hold at most [events] max_batch events. The batches
 * the outbox kept from before are handed again from the loop.
 */
struct source_http *source_http_start(struct event_base *base, const struct config *config,
    struct store *store, struct store_writer *writer, const struct source_sink *sink);
/* The source as the router, metrics and source_http_ops see it. */
struct source *source_http_source(struct source_http *http);

/*
 * A POST /v1/events body (len bytes, not NUL-terminated; the API checked its
 * content type and size). Malformed or unknown events are skipped and listed; the
 * others are kept. Errors, in the order they are checked: EJSON, EMISSING and
 * EINVALID (field set), ETOOLARGE (field "events"), EBUSY; then ACCEPTED or ESTORE.
 */
void source_http_post_events(struct source_http *http, const char *body, size_t len,
    source_http_answer_fn *answer, void *arg);
/*
 * An Ably webhook: its raw body and its headers, read through header(name,
 * header_arg) during the call only. Errors, in the order they are checked: EBUSY,
 * EINVALID (a header that is not UTF-8: field is its name), EMEDIATYPE, ETOOLARGE,
 * EJSON, ENOMEM; then ACCEPTED or ESTORE.
 */
void source_http_post_ably(struct source_http *http, const void *body, size_t len,
    source_ably_header_fn *header, void *header_arg, source_http_answer_fn *answer,
    void *arg);

#endif
