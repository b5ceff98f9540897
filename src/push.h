/*
 * Pushes: POST /v1/push fans one notification out to devices named by client, by
 * device or by room. A push is written to the store with a row per device before it
 * is acknowledged, so an accepted push survives kill -9: on start, unfinished pushes
 * resume where their rows say they were. Row changes are written behind in batches.
 */
#ifndef PUSHRELAY_PUSH_H
#define PUSHRELAY_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "model.h"

struct event_base;
struct store;

enum push_error {
	PUSH_OK = 0,
	PUSH_EFULL = -1,	/* the delivery queue has no room: 503 and retry */
	PUSH_ESTORE = -2,	/* the store failed; nothing was accepted */
	PUSH_ENOTFOUND = -3,	/* no such push (or expired) */
	PUSH_EPAYLOAD = -4,	/* the notification does not fit a provider's payload */
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
	json_t *unknown_device_ids;	/* array, owned by the caller */
	char payload_error[160];	/* with PUSH_EPAYLOAD: why */
};

/* Start: resume every unfinished push in the store. */
void push_init(struct event_base *base, struct store *store, int64_t retention_ms);
void push_set_retention(int64_t retention_ms);
/* Write what is pending and stop. */
void push_shutdown(void);

/*
 * Accept a push: resolve the devices, store the push, queue its deliveries.
 * notification is the validated "notification" object (kept as the push's content).
 */
int push_accept(const struct push_recipients *recipients, const json_t *notification,
    struct push_accepted *out);
/* The status of a push as the GET /v1/push/{id} answer, or NULL if unknown. */
json_t *push_status_json(const char *push_id, int *error);
const char *push_strerror(int error);

#endif
