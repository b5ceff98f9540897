/*
 * The push ledger: each push accepted by POST /v1/push, what it asked (the
 * notification as JSON) and a row per device with the delivery's state, so that
 * GET /v1/push/{id} can answer and a restart can resume what was not finished.
 *
 * Called by push.c only: from store jobs (store_writer.h) to insert, update, read
 * and expire pushes, and at start-up (push_init) for the unfinished ones. Threads,
 * durability and errors as store.h says.
 */
#ifndef PUSHRELAY_STORE_LEDGER_H
#define PUSHRELAY_STORE_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "store.h"

/* One device's part of a push, as the store keeps it. */
struct push_row {
	char *device_id;
	char *client_id;
	enum device_platform platform;
	char *app_id;
	int64_t badge;			/* -1: none */
	char *state;			/* a delivery state name: queued, sent, ... */
	char *reason;			/* NULL when none */
	int attempts;
	int64_t updated_at;
};

/* A push: what was asked (the notification as JSON) and a row per device. */
struct push_record {
	char *push_id;
	int64_t created_at;
	char *content;			/* the notification object, as JSON text */
	int badge_per_recipient;
	int64_t finished_at;		/* 0 while deliveries are outstanding */
	struct push_row *rows;		/* in the order of their index */
	size_t count;
};

/* A change to rows index..index_last of a push, written behind in batches. */
struct push_row_update {
	const char *push_id;
	size_t index;
	size_t index_last;
	const char *state;
	const char *reason;
	int attempts;
	int64_t updated_at;
};

struct push_finish {
	const char *push_id;
	int64_t finished_at;
};

/* The ledger's part of a backend (store_backend.ledger). */
struct store_ledger_ops {
	int (*push_insert)(struct store *store, const struct push_record *record);
	int (*push_update)(struct store *store, const struct push_row_update *updates,
	    size_t count, const struct push_finish *finished, size_t finished_count);
	int (*push_get)(struct store *store, const char *push_id, struct push_record *out);
	int (*pushes_unfinished)(struct store *store, struct push_record **out,
	    size_t *count);
	int (*pushes_expire)(struct store *store, int64_t finished_before, size_t *deleted);
};

/* Insert a push and all its rows in one write. Thread: connection. 0, STORE_EIO. */
int store_push_insert(struct store *store, const struct push_record *record);
/*
 * Apply row changes and mark pushes finished, all in one write. Thread: connection.
 * 0, STORE_EIO.
 */
int store_push_update(struct store *store, const struct push_row_update *updates,
    size_t count, const struct push_finish *finished, size_t finished_count);
/* Read a push with its rows. Thread: connection. 0, STORE_ENOTFOUND, STORE_EIO. */
int store_push_get(struct store *store, const char *push_id, struct push_record *out);
/*
 * Every push not finished yet, with its rows: what a restart must resume (start-up).
 * Thread: connection. 0, STORE_EIO.
 */
int store_pushes_unfinished(struct store *store, struct push_record **out, size_t *count);
/* Delete pushes finished before a time. Thread: connection. 0, STORE_EIO. */
int store_pushes_expire(struct store *store, int64_t finished_before, size_t *deleted);
/* Free a push record's contents. Any thread. */
void store_push_record_free(struct push_record *record);

#endif
