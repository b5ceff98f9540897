/*
 * The events outbox: batches accepted by POST /v1/events and /v1/ingest/ably, kept
 * from their 2xx until every event in them is handled, and replayed at start-up.
 *
 * Called by source_http.c only: from store jobs (store_writer.h) to add and delete
 * batches, and at start-up to load them. (The store's write probe, store_probe_write,
 * also adds and deletes a row here, in one transaction.) Threads, durability and
 * errors as store.h says.
 */
#ifndef PUSHRELAY_STORE_OUTBOX_H
#define PUSHRELAY_STORE_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* What an outbox row holds: it says how the HTTP source reads the body back. */
enum store_outbox_kind {
	STORE_OUTBOX_EVENTS = 0,	/* {"events":[...]} of POST /v1/events */
	STORE_OUTBOX_ABLY,		/* an Ably webhook: {"headers":{...},"body":"base64"} */
};

/* A batch accepted by POST /v1/events or /v1/ingest/ably and not fully handled yet. */
struct outbox_entry {
	int64_t id;
	int64_t received_at;
	enum store_outbox_kind kind;
	char *body;
};

/* The outbox's part of a backend (store_backend.outbox). */
struct store_outbox_ops {
	int (*outbox_add)(struct store *store, const enum store_outbox_kind *kinds,
	    const char *const *bodies, size_t count, int64_t at, int64_t *ids);
	int (*outbox_delete)(struct store *store, const int64_t *ids, size_t count);
	int (*outbox_load)(struct store *store, struct outbox_entry **out, size_t *count);
};

/*
 * Keep event batches, each of its kind (one write, ids out), drop handled ones, read
 * them back oldest first (start-up). Thread: connection. 0, STORE_EIO.
 */
int store_outbox_add(struct store *store, const enum store_outbox_kind *kinds,
    const char *const *bodies, size_t count, int64_t at, int64_t *ids);
int store_outbox_delete(struct store *store, const int64_t *ids, size_t count);
int store_outbox_load(struct store *store, struct outbox_entry **out, size_t *count);
/* Free what store_outbox_load() gave. Any thread. */
void store_outbox_free(struct outbox_entry *entries, size_t count);

#endif
