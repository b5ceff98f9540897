/* The device registry: finds a backend by name and calls through its operations. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "xmalloc.h"

/* Shared by the connections to one database: freed with the last of them. */
struct store_shared {
	uint64_t generation;		/* atomic: bumped after changes of routes */
	unsigned int refs;		/* atomic: connections open */
	const struct store_backend *backend;
	struct store_options options;
	char *path;			/* options.path, owned */
};

uint64_t
store_generation(const struct store *store)
{
	return __atomic_load_n(&store->shared->generation, __ATOMIC_ACQUIRE);
}

/* Move the generation: after a commit, so that a read that sees it sees the change. */
static void
generation_bump(struct store *store)
{
	__atomic_add_fetch(&store->shared->generation, 1, __ATOMIC_RELEASE);
}

/*
 * A write that changes routes happened (or may have: bumping is always safe). In a
 * batch nobody else sees it before the commit: the generation moves then.
 */
static int
changed(struct store *store, int rc)
{
	if (store->batch)
		store->batch_changed = 1;
	else
		generation_bump(store);
	return rc;
}

static const struct store_backend *const store_backends[] = {
	&store_sqlite_backend,
};

#define STORE_BACKEND_COUNT (sizeof store_backends / sizeof store_backends[0])

/* Describe a STORE_E* code. */
const char *
store_strerror(int error)
{
	switch (error) {
	case STORE_OK:
		return "success";
	case STORE_ENOTFOUND:
		return "not found";
	case STORE_EIO:
		return "storage error";
	case STORE_ENEWER:
		return "database written by a newer pushrelayd";
	case STORE_EINVAL:
		return "invalid store options";
	}
	return "unknown store error";
}

/* Open a connection with a backend; the shared part is given, or made here. */
static int
store_connect(const struct store_backend *backend, const struct store_options *options,
    struct store_shared *shared, struct store **out, char *err, size_t errlen)
{
	struct store *store = xcalloc(1, sizeof *store);
	int error;

	store->backend = backend;
	if ((error = backend->open(store, options, err, errlen)) != 0) {
		free(store);
		return error;
	}
	if (shared == NULL) {
		shared = xcalloc(1, sizeof *shared);
		shared->generation = 1;
		shared->backend = backend;
		shared->options = *options;
		shared->path = xstrdup(options->path);
		shared->options.path = shared->path;
	}
	__atomic_add_fetch(&shared->refs, 1, __ATOMIC_RELAXED);
	store->shared = shared;
	*out = store;
	return STORE_OK;
}

/* Open a store with the named backend; on failure *out is NULL and err says why. */
int
store_open(const char *backend, const struct store_options *options, struct store **out,
    char *err, size_t errlen)
{
	const struct store_backend *found = NULL;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	for (size_t i = 0; i < STORE_BACKEND_COUNT && backend != NULL; i++) {
		if (strcmp(store_backends[i]->name, backend) == 0) {
			found = store_backends[i];
			break;
		}
	}
	if (found == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "unknown store backend \"%s\" (known: sqlite)",
			    backend == NULL ? "" : backend);
		return STORE_EINVAL;
	}
	return store_connect(found, options, NULL, out, err, errlen);
}

/* Open another connection to the same database, sharing the generation. */
int
store_open_another(struct store *store, struct store **out, char *err, size_t errlen)
{
	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	return store_connect(store->shared->backend, &store->shared->options, store->shared,
	    out, err, errlen);
}

/* Close a connection and free it; the shared part goes with the last one. */
void
store_close(struct store *store)
{
	struct store_shared *shared;

	if (store == NULL)
		return;
	if (store->batch)
		store_batch_rollback(store);
	store->backend->close(store);
	shared = store->shared;
	if (__atomic_sub_fetch(&shared->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(shared->path);
		free(shared);
	}
	free(store);
}

/* Check that the backend still answers. */
int
store_ping(struct store *store)
{
	return store->backend->ping(store);
}

/* Write and take back a little, to see that writes still commit. */
int
store_probe_write(struct store *store, char *err, size_t errlen)
{
	return store->backend->probe_write(store, err, errlen);
}

/* Open a batch: one transaction for many jobs. */
int
store_batch_begin(struct store *store)
{
	int rc = store->backend->batch_begin(store);

	if (rc == STORE_OK) {
		store->batch = 1;
		store->batch_changed = 0;
	}
	return rc;
}

/* Start a job of the batch: what it writes can be undone alone. */
int
store_batch_job_begin(struct store *store)
{
	return store->backend->job_begin(store);
}

/* End a job of the batch, keeping or undoing what it wrote. */
int
store_batch_job_end(struct store *store, int keep)
{
	return store->backend->job_end(store, keep);
}

/* Close the batch, committing it or rolling it back; then move the generation. */
static int
batch_end(struct store *store, int commit)
{
	int rc = store->backend->batch_end(store, commit);

	store->batch = 0;
	if (store->batch_changed)
		generation_bump(store);
	store->batch_changed = 0;
	return rc;
}

/* Commit the batch: every job kept in it is durable now, or none is. */
int
store_batch_commit(struct store *store)
{
	return batch_end(store, 1);
}

/* Roll the batch back (what of it the backend has not already). */
void
store_batch_rollback(struct store *store)
{
	batch_end(store, 0);
}

/* Insert or replace a device; see store.h. */
int
store_device_put(struct store *store, const struct device *device, int64_t now,
    enum store_put_result *result, struct device *stored)
{
	int routed = 1;
	int rc = store->backend->device_put(store, device, now, result, stored, &routed);

	/* A client in no room: no route has its devices. */
	if (rc == STORE_OK && !routed)
		return rc;
	return changed(store, rc);
}

/* Read one device. */
int
store_device_get(struct store *store, const char *device_id, struct device *out)
{
	return store->backend->device_get(store, device_id, out);
}

/* Delete one device. */
int
store_device_delete(struct store *store, const char *device_id)
{
	return changed(store, store->backend->device_delete(store, device_id));
}

/* List a client's devices, ordered by device_id. */
int
store_client_devices_list(struct store *store, const char *client_id,
    struct device_list *out)
{
	return store->backend->client_devices_list(store, client_id, out);
}

/* Delete every device of a client. */
int
store_client_devices_delete(struct store *store, const char *client_id, size_t *deleted)
{
	return changed(store, store->backend->client_devices_delete(store, client_id,
	    deleted));
}

/* Count all devices. */
int
store_device_count(struct store *store, size_t *count)
{
	return store->backend->device_count(store, count);
}

/* Record a successful delivery to a device. */
int
store_device_mark_success(struct store *store, const char *device_id, int64_t at)
{
	return store->backend->device_mark_success(store, device_id, at);
}

/* Record a failed delivery to a device. */
int
store_device_mark_error(struct store *store, const char *device_id, const char *reason,
    int64_t at)
{
	return store->backend->device_mark_error(store, device_id, reason, at);
}

/* Remove the device holding a token the provider rejected; see store.h. */
int
store_device_remove_token(struct store *store, enum device_platform platform,
    const char *token, int64_t unless_updated_after, int *removed)
{
	return changed(store, store->backend->device_remove_token(store, platform, token,
	    unless_updated_after, removed));
}

/* Add a room member or keep the existing one. */
int
store_member_put(struct store *store, const char *room_id, const char *client_id,
    int64_t now, enum store_put_result *result, struct member *stored)
{
	enum store_put_result put = STORE_PUT_CREATED;
	int rc = store->backend->member_put(store, room_id, client_id, now, &put, stored);

	if (result != NULL)
		*result = put;
	/* Keeping a membership changes no route (implicit joins do so all the time). */
	if (rc == STORE_OK && put == STORE_PUT_UPDATED)
		return rc;
	return changed(store, rc);
}

/* Read one membership. */
int
store_member_get(struct store *store, const char *room_id, const char *client_id,
    struct member *out)
{
	return store->backend->member_get(store, room_id, client_id, out);
}

/* Remove a member from a room. */
int
store_member_delete(struct store *store, const char *room_id, const char *client_id)
{
	int rc = store->backend->member_delete(store, room_id, client_id);

	return rc == STORE_ENOTFOUND ? rc : changed(store, rc);
}

/* List one page of a room's members. */
int
store_room_members_list(struct store *store, const char *room_id,
    const char *after_client_id, size_t limit, struct member_list *out)
{
	return store->backend->room_members_list(store, room_id, after_client_id, limit, out);
}

/* Set a member's preferences. */
int
store_member_prefs_put(struct store *store, const char *room_id, const char *client_id,
    int64_t muted_until, int mentions_only, struct member *stored)
{
	return changed(store, store->backend->member_prefs_put(store, room_id, client_id,
	    muted_until, mentions_only, stored));
}

/* Append the targets of a device, client or room. */
int
store_targets_add(struct store *store, enum store_targets by, const char *id,
    struct target_list *out)
{
	return store->backend->targets_add(store, by, id, out);
}

/* Record successful deliveries in one transaction. */
int
store_devices_mark_success(struct store *store, const char *const *device_ids, size_t count,
    int64_t at)
{
	return store->backend->devices_mark_success(store, device_ids, count, at);
}

/* Insert a push with its rows. */
int
store_push_insert(struct store *store, const struct push_record *record)
{
	return store->backend->push_insert(store, record);
}

/* Apply a batch of push row changes. */
int
store_push_update(struct store *store, const struct push_row_update *updates, size_t count,
    const struct push_finish *finished, size_t finished_count)
{
	return store->backend->push_update(store, updates, count, finished, finished_count);
}

/* Read a push with its rows. */
int
store_push_get(struct store *store, const char *push_id, struct push_record *out)
{
	return store->backend->push_get(store, push_id, out);
}

/* Read every unfinished push. */
int
store_pushes_unfinished(struct store *store, struct push_record **out, size_t *count)
{
	return store->backend->pushes_unfinished(store, out, count);
}

/* Delete pushes finished before a time. */
int
store_pushes_expire(struct store *store, int64_t finished_before, size_t *deleted)
{
	return store->backend->pushes_expire(store, finished_before, deleted);
}

/* Free a push record and its rows. */
void
store_push_record_free(struct push_record *record)
{
	if (record == NULL)
		return;
	for (size_t i = 0; i < record->count; i++) {
		free(record->rows[i].device_id);
		free(record->rows[i].client_id);
		free(record->rows[i].app_id);
		free(record->rows[i].state);
		free(record->rows[i].reason);
	}
	free(record->rows);
	free(record->push_id);
	free(record->content);
	memset(record, 0, sizeof *record);
}

/* Read what routing a message needs. */
int
store_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out)
{
	return store->backend->room_route(store, room_id, message_id, out);
}

/* Free a room route. */
void
store_room_route_free(struct room_route *route)
{
	for (size_t i = 0; i < route->member_count; i++) {
		struct room_member_route *m = &route->members[i];
		for (size_t t = 0; t < m->target_count; t++)
			free(m->targets[t]);
		free(m->targets);
		free(m->client_id);
	}
	free(route->members);
	for (size_t i = 0; i < route->notified_count; i++)
		free(route->notified[i]);
	free(route->notified);
	memset(route, 0, sizeof *route);
}

/* Remember notified devices. */
int
store_notified_add(struct store *store, const struct notified_mark *marks, size_t count)
{
	return store->backend->notified_add(store, marks, count);
}

/* Forget notified devices older than a time. */
int
store_notified_expire(struct store *store, int64_t before)
{
	return store->backend->notified_expire(store, before);
}

/* Set unread counts. */
int
store_unread_put(struct store *store, const struct unread_count *counts, size_t count)
{
	return store->backend->unread_put(store, counts, count);
}

/* Load every unread count. */
int
store_unread_load(struct store *store, struct unread_count **out, size_t *count)
{
	return store->backend->unread_load(store, out, count);
}

/* Free loaded unread counts. */
void
store_unread_free(struct unread_count *counts, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(counts[i].client_id);
		free(counts[i].room_id);
	}
	free(counts);
}

/* Keep event batches. */
int
store_outbox_add(struct store *store, const enum store_outbox_kind *kinds,
    const char *const *bodies, size_t count, int64_t at, int64_t *ids)
{
	return store->backend->outbox_add(store, kinds, bodies, count, at, ids);
}

/* Drop handled event batches. */
int
store_outbox_delete(struct store *store, const int64_t *ids, size_t count)
{
	return store->backend->outbox_delete(store, ids, count);
}

/* Read every kept event batch, oldest first. */
int
store_outbox_load(struct store *store, struct outbox_entry **out, size_t *count)
{
	return store->backend->outbox_load(store, out, count);
}

/* Free loaded event batches. */
void
store_outbox_free(struct outbox_entry *entries, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(entries[i].body);
	free(entries);
}
