/*
 * The device registry behind one table of operations, so backends can be swapped
 * (SQLite is the default; see store_sqlite.c).
 *
 * A struct store is one connection to the database. store_open() makes the first;
 * store_open_another() more to the same database, sharing its generation.
 *
 * Threads. A connection is used by one thread at a time, never by two at once.
 * The daemon's own connection (daemon.c) is used on the event loop during start-up
 * only, before the loop runs: migrations, resuming unfinished pushes (push_init,
 * with the device reads of push_resume), loading unread counts (router_new) and
 * replaying the event outbox (source_http). From then on the loop never calls a
 * function of this header but store_generation() and store_strerror(), with one
 * exception left: metrics.c counts devices (store_device_count) on that connection
 * for each /metrics scrape. Every other store call runs in a job on a store thread
 * (store_writer.h), on that thread's own connection. Below, "Thread: connection" means the thread that owns the
 * connection at the time (start-up, or a store job); "any thread" means any.
 *
 * Writes. Every write function is all or nothing: on error nothing of it remains.
 * Outside a batch each write is its own transaction: when it returns 0 the change
 * is durable (committed, and with synchronous=full fsynced). Inside a batch
 * (store_batch_begin(), the store writer's group commit) each write is a savepoint
 * of the batch's transaction, and durable only once store_batch_commit() returns 0.
 *
 * Errors. Every function returns 0 or a negative STORE_E* code, listed with it.
 * STORE_EIO is logged where it happens (with the operation and its subject); the
 * others are not.
 */
#ifndef PUSHRELAY_STORE_H
#define PUSHRELAY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum store_error {
	STORE_OK = 0,
	STORE_ENOTFOUND = -1,	/* no such device / membership */
	STORE_EIO = -2,		/* the backend failed (disk, lock, corruption); logged */
	STORE_ENEWER = -3,	/* the database was written by a newer pushrelay */
	STORE_EINVAL = -4,	/* bad options */
};

enum store_sync {
	STORE_SYNC_FULL = 0,	/* fsync on every commit: survives power loss */
	STORE_SYNC_NORMAL,	/* WAL + normal: survives a crash of the daemon, not of the host */
};

struct store_options {
	const char *path;		/* database file */
	enum store_sync sync;
	int busy_timeout_ms;
	size_t cache_size;		/* bytes of pages kept in memory; 0: the backend's */
	size_t checkpoint_size;		/* log bytes that trigger a checkpoint; 0: the backend's */
};

/* Whose devices store_targets_add() lists. */
enum store_targets {
	STORE_TARGETS_DEVICE = 0,	/* the device with this id (none if unknown) */
	STORE_TARGETS_CLIENT,		/* every device of this client */
	STORE_TARGETS_ROOM,		/* every device of this room's members */
};

/* What device_put did. */
enum store_put_result {
	STORE_PUT_CREATED = 1,
	STORE_PUT_UPDATED = 2,
};

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

/* A room member with its preferences and its devices, for routing a message. */
struct room_member_route {
	char *client_id;
	int64_t muted_until;
	int mentions_only;
	struct device_target **targets;	/* owned */
	size_t target_count;
};

/* What routing one message needs from the store. */
struct room_route {
	struct room_member_route *members;
	size_t member_count;
	char **notified;		/* devices this message already notified */
	size_t notified_count;
};

/* A device notified of a message, for deduplication across restarts. */
struct notified_mark {
	const char *room_id;
	const char *message_id;
	const char *device_id;
	int64_t at;
};

/* A client's unread messages in a room (the badge is their sum). */
struct unread_count {
	char *client_id;
	char *room_id;
	int64_t count;
};

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

struct store;

struct store_backend {
	const char *name;
	int (*open)(struct store *store, const struct store_options *options, char *err,
	    size_t errlen);
	void (*close)(struct store *store);
	int (*ping)(struct store *store);
	int (*probe_write)(struct store *store, char *err, size_t errlen);

	/*
	 * Group commit: one transaction for a batch (commit: 1 to commit, 0 to roll
	 * back), a savepoint for each job in it (keep: 1 to keep its changes, 0 to undo
	 * them); the write operations below become savepoints while a batch is open.
	 */
	int (*batch_begin)(struct store *store);
	int (*batch_end)(struct store *store, int commit);
	int (*job_begin)(struct store *store);
	int (*job_end)(struct store *store, int keep);

	/* routed: set when the change may change a room's route (see store_generation). */
	int (*device_put)(struct store *store, const struct device *device, int64_t now,
	    enum store_put_result *result, struct device *stored, int *routed);
	int (*device_get)(struct store *store, const char *device_id, struct device *out);
	int (*device_delete)(struct store *store, const char *device_id);
	int (*client_devices_list)(struct store *store, const char *client_id,
	    struct device_list *out);
	int (*client_devices_delete)(struct store *store, const char *client_id,
	    size_t *deleted);
	int (*device_count)(struct store *store, size_t *count);
	int (*device_mark_success)(struct store *store, const char *device_id, int64_t at);
	int (*device_mark_error)(struct store *store, const char *device_id, const char *reason,
	    int64_t at);
	int (*device_remove_token)(struct store *store, enum device_platform platform,
	    const char *token, int64_t unless_updated_after, int *removed);

	int (*member_put)(struct store *store, const char *room_id, const char *client_id,
	    int64_t now, enum store_put_result *result, struct member *stored);
	int (*member_get)(struct store *store, const char *room_id, const char *client_id,
	    struct member *out);
	int (*member_delete)(struct store *store, const char *room_id, const char *client_id);
	int (*room_members_list)(struct store *store, const char *room_id,
	    const char *after_client_id, size_t limit, struct member_list *out);
	int (*member_prefs_put)(struct store *store, const char *room_id,
	    const char *client_id, int64_t muted_until, int mentions_only,
	    struct member *stored);
	int (*targets_add)(struct store *store, enum store_targets by, const char *id,
	    struct target_list *out);
	int (*devices_mark_success)(struct store *store, const char *const *device_ids,
	    size_t count, int64_t at);

	int (*room_route)(struct store *store, const char *room_id, const char *message_id,
	    struct room_route *out);
	int (*notified_add)(struct store *store, const struct notified_mark *marks, size_t count);
	int (*notified_expire)(struct store *store, int64_t before);
	int (*unread_put)(struct store *store, const struct unread_count *counts, size_t count);
	int (*unread_load)(struct store *store, struct unread_count **out, size_t *count);
	int (*outbox_add)(struct store *store, const enum store_outbox_kind *kinds,
	    const char *const *bodies, size_t count, int64_t at, int64_t *ids);
	int (*outbox_delete)(struct store *store, const int64_t *ids, size_t count);
	int (*outbox_load)(struct store *store, struct outbox_entry **out, size_t *count);

	int (*push_insert)(struct store *store, const struct push_record *record);
	int (*push_update)(struct store *store, const struct push_row_update *updates,
	    size_t count, const struct push_finish *finished, size_t finished_count);
	int (*push_get)(struct store *store, const char *push_id, struct push_record *out);
	int (*pushes_unfinished)(struct store *store, struct push_record **out,
	    size_t *count);
	int (*pushes_expire)(struct store *store, int64_t finished_before, size_t *deleted);
};

/* What the connections to one database share: how to open them, the generation. */
struct store_shared;

struct store {
	const struct store_backend *backend;
	void *data;			/* the backend's own state */
	struct store_shared *shared;
	int batch;			/* a batch is open (store_batch_begin) */
	int batch_changed;		/* a write in it changed devices or memberships */
};

extern const struct store_backend store_sqlite_backend;

/* The current schema version that this build writes. */
#define STORE_SCHEMA_VERSION 5

/* Describe a STORE_E* code. Any thread. */
const char *store_strerror(int error);

/*
 * A number that changes whenever a room's route may change, on any connection to the
 * database of store: a membership, or a device that is (or was) a room member's; not
 * a new device of a client in no room (a registration before its first join). What
 * is cached from the registry's rooms is good while it stays the same. It moves
 * after the change is committed (for a batch: after its commit), so a read started
 * after it moved sees the change. Any thread; never fails.
 */
uint64_t store_generation(const struct store *store);

/*
 * Open a store with the named backend ("sqlite"); err says why on failure. Start-up
 * thread. 0, STORE_EINVAL (unknown backend, bad options), STORE_ENEWER (a newer
 * schema), STORE_EIO (cannot create, open or migrate the database).
 */
int store_open(const char *backend, const struct store_options *options, struct store **out,
    char *err, size_t errlen);
/*
 * Open another connection to the database of store, with its options, sharing its
 * generation (for a store thread). Any thread, while store is open; the errors of
 * store_open().
 */
int store_open_another(struct store *store, struct store **out, char *err, size_t errlen);
/* Close a connection (NULL is ignored); an open batch is rolled back. Thread: connection. */
void store_close(struct store *store);
/* Does the backend still answer a read? Thread: connection. 0 or STORE_EIO. */
int store_ping(struct store *store);
/*
 * Commit a small write that changes nothing in the end, to learn whether the store
 * takes writes now (a full disk, a read-only file): 0, or STORE_EIO with err set to
 * the backend's reason ("database or disk is full"). Thread: connection, outside a
 * batch.
 */
int store_probe_write(struct store *store, char *err, size_t errlen);

/*
 * Group commit, for the store writer: store_batch_begin() opens one write
 * transaction (taking the write lock at once); each job runs between
 * store_batch_job_begin() and store_batch_job_end(), as a savepoint, so that a job
 * that fails (keep 0) is undone alone; store_batch_commit() makes the whole batch
 * durable at once, with one fsync. All: thread: connection.
 *
 * store_batch_begin: 0 or STORE_EIO (nothing open: e.g. the lock was not had within
 * the busy timeout). store_batch_job_begin, store_batch_job_end: 0, or STORE_EIO
 * when the batch is lost: the backend rolled the whole transaction back (SQLite does
 * on a full disk or an I/O error), so no job of it so far remains; end it with
 * store_batch_rollback(). store_batch_commit: 0 (durable), or STORE_EIO: nothing of
 * the batch remains. The generation moves at the end of a batch that changed
 * devices or memberships.
 */
int store_batch_begin(struct store *store);
int store_batch_job_begin(struct store *store);
int store_batch_job_end(struct store *store, int keep);
int store_batch_commit(struct store *store);
void store_batch_rollback(struct store *store);

/*
 * Insert or replace a device (by device_id). created_at is kept on update; a token
 * held by another device of the same platform is moved here (that device is removed).
 * stored (optional) receives the row as committed. Thread: connection. 0,
 * STORE_EINVAL (a field missing or out of range), STORE_EIO.
 */
int store_device_put(struct store *store, const struct device *device, int64_t now,
    enum store_put_result *result, struct device *stored);
/* Read a device. Thread: connection. 0, STORE_ENOTFOUND, STORE_EIO. */
int store_device_get(struct store *store, const char *device_id, struct device *out);
/* Delete a device. Thread: connection. 0, STORE_ENOTFOUND, STORE_EIO. */
int store_device_delete(struct store *store, const char *device_id);
/* Devices of a client, ordered by device_id. Thread: connection. 0, STORE_EIO. */
int store_client_devices_list(struct store *store, const char *client_id,
    struct device_list *out);
/* Delete every device of a client (none: 0). Thread: connection. 0, STORE_EIO. */
int store_client_devices_delete(struct store *store, const char *client_id, size_t *deleted);
/* Count every device. Thread: connection. 0, STORE_EIO. */
int store_device_count(struct store *store, size_t *count);
/*
 * Record a delivery's success or failure. Thread: connection. 0, STORE_ENOTFOUND,
 * STORE_EIO.
 */
int store_device_mark_success(struct store *store, const char *device_id, int64_t at);
int store_device_mark_error(struct store *store, const char *device_id, const char *reason,
    int64_t at);
/*
 * Remove the device holding (platform, token), unless it was (re-)registered after
 * unless_updated_after (ms; pass INT64_MAX to remove unconditionally); *removed says
 * whether one was. Thread: connection. 0, STORE_EINVAL (no token, bad platform),
 * STORE_EIO.
 */
int store_device_remove_token(struct store *store, enum device_platform platform,
    const char *token, int64_t unless_updated_after, int *removed);

/*
 * Add a member (joined_at = now) or keep an existing one as is. Thread: connection.
 * 0, STORE_EINVAL (no id), STORE_EIO.
 */
int store_member_put(struct store *store, const char *room_id, const char *client_id,
    int64_t now, enum store_put_result *result, struct member *stored);
/* Read a membership. Thread: connection. 0, STORE_ENOTFOUND, STORE_EIO. */
int store_member_get(struct store *store, const char *room_id, const char *client_id,
    struct member *out);
/* Remove a member. Thread: connection. 0, STORE_ENOTFOUND, STORE_EIO. */
int store_member_delete(struct store *store, const char *room_id, const char *client_id);
/*
 * Up to limit members ordered by client_id, starting after after_client_id (or NULL).
 * Thread: connection. 0, STORE_EIO.
 */
int store_room_members_list(struct store *store, const char *room_id,
    const char *after_client_id, size_t limit, struct member_list *out);
/*
 * Set a member's preferences. Thread: connection. 0, STORE_ENOTFOUND (not a member),
 * STORE_EIO.
 */
int store_member_prefs_put(struct store *store, const char *room_id, const char *client_id,
    int64_t muted_until, int mentions_only, struct member *stored);

/*
 * Append the delivery targets of a device, a client or a room to out (ordered by
 * client_id, device_id): the columns a delivery needs, one allocation each. None
 * (an unknown id) is not an error. Thread: connection. 0, STORE_EIO.
 */
int store_targets_add(struct store *store, enum store_targets by, const char *id,
    struct target_list *out);
/*
 * Record a successful delivery on many devices in one write (absent ones are
 * skipped). Thread: connection. 0, STORE_EIO.
 */
int store_devices_mark_success(struct store *store, const char *const *device_ids,
    size_t count, int64_t at);

/*
 * Everything routing a message in a room needs: its members (preferences, devices)
 * and the devices already notified of this message (an earlier delivery of the same
 * event). A consistent snapshot: one read transaction (inside a batch: the batch's).
 * Thread: connection. 0, STORE_EIO.
 */
int store_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out);
/* Free what store_room_route() gave. Any thread. */
void store_room_route_free(struct room_route *route);
/*
 * Remember notified devices (one write); forget those older than before. Thread:
 * connection. 0, STORE_EIO.
 */
int store_notified_add(struct store *store, const struct notified_mark *marks, size_t count);
int store_notified_expire(struct store *store, int64_t before);
/*
 * Set unread counts (0 deletes the row), one write; load them all (start-up).
 * Thread: connection. 0, STORE_EIO.
 */
int store_unread_put(struct store *store, const struct unread_count *counts, size_t count);
int store_unread_load(struct store *store, struct unread_count **out, size_t *count);
/* Free what store_unread_load() gave. Any thread. */
void store_unread_free(struct unread_count *counts, size_t count);
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
