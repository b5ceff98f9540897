/*
 * Pushes: POST /v1/push fans one notification out to devices named by client, by
 * device or by room. A push is written to the store with a row per device before it
 * is acknowledged, so an accepted push survives kill -9: on start, unfinished pushes
 * resume where their rows say they were. Row changes are written behind in batches.
 *
 * The push ledger (struct push_ledger, made by push_ledger_new() in daemon.c) owns
 * the pushes in progress and their unwritten changes; it hands each push's
 * deliveries to the delivery layer it was given and follows them as their observer.
 * The API (api_push.c) calls it; every function here runs on the event loop's
 * thread, and the ledger's store work runs on the store writer's.
 */
#ifndef PUSHRELAY_PUSH_H
#define PUSHRELAY_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "model.h"

struct delivery_layer;
struct event_base;
struct push_ledger;
struct store;
struct store_writer;

enum push_error {
	PUSH_OK = 0,
	PUSH_EFULL = -1,	/* the delivery queue has no room: 503 and retry */
	PUSH_ESTORE = -2,	/* the store failed; nothing was accepted */
	PUSH_ENOTFOUND = -3,	/* no such push (or expired) */
	PUSH_EPAYLOAD = -4,	/* the notification does not fit a provider's payload */
	PUSH_EINVALID = -5,	/* the notification is not valid: 400 */
};

#define PUSH_ID_SIZE 33		/* 32 hex digits and a NUL */
#define PUSH_RECIPIENTS_MAX 1000	/* ids of each kind in one request */

struct push_recipients {
	const char *const *client_ids;
	size_t client_count;
	const char *const *device_ids;
	size_t device_count;
	const char *room_id;		/* NULL when none */
	const char *const *exclude_client_ids;
	size_t exclude_count;
};

/* What acceptance reports back. */
struct push_accepted {
	char push_id[PUSH_ID_SIZE];
	size_t devices;
	char **unknown_device_ids;	/* device_ids that are not registered */
	size_t unknown_count;
	char payload_error[160];	/* with PUSH_EPAYLOAD: why */
};

/* Told once a push is stored and queued (PUSH_OK), or refused (error). */
typedef void push_accept_cb(int error, const struct push_accepted *accepted, void *arg);

/*
 * Start a ledger: resume every unfinished push in the store (read with store, on the
 * loop) into delivery; from then on, pushes are written by the store writer, off the
 * loop, and finished ones are deleted after retention_ms. Never fails: out of memory
 * at start is fatal, and a store that cannot list unfinished pushes is logged (they
 * resume at the next start).
 */
struct push_ledger *push_ledger_new(struct event_base *base, struct store *store,
    struct store_writer *writer, struct delivery_layer *delivery, int64_t retention_ms);
void push_set_retention(struct push_ledger *ledger, int64_t retention_ms);
/*
 * Submit the last writes, and each write still due as the one before it commits;
 * the writer's stop runs them. Then call push_ledger_free().
 */
void push_ledger_shutdown(struct push_ledger *ledger);
/* Forget the pushes in memory and free the ledger; NULL is fine. */
void push_ledger_free(struct push_ledger *ledger);

/*
 * Accept a push: the store writer resolves the devices and stores the push with its
 * rows in one transaction; then, on the loop, its deliveries are queued and cb is
 * called. notification is the validated "notification" object. Returns PUSH_OK (cb
 * will be called), or PUSH_EFULL or PUSH_EINVALID (it was not valid after all) at
 * once (cb will not).
 */
int push_accept(struct push_ledger *ledger, const struct push_recipients *recipients,
    const json_t *notification, push_accept_cb *cb, void *arg);
/* A push's status as the GET /v1/push/{id} answer (taken over), or NULL with error. */
typedef void push_status_cb(json_t *status, int error, void *arg);
/*
 * The status of a push: from memory while it is in progress (cb runs before this
 * returns), else read by a job on reader (a store thread), off the loop. cb gets
 * the answer, or NULL with PUSH_ENOTFOUND (unknown or expired) or PUSH_ESTORE.
 */
void push_status_get(struct push_ledger *ledger, const char *push_id,
    struct store_writer *reader, push_status_cb *cb, void *arg);
/* A sentence for a PUSH_* code; "unknown push error" for anything else. */
const char *push_strerror(int error);

#endif
