/*
 * The device registry behind one table of operations, so backends can be swapped
 * (SQLite is the default; see store_sqlite.c).
 *
 * Every write is one transaction: when a function returns 0 the change is durable
 * (committed, and with the default synchronous=full fsynced), and on error nothing of
 * it remains. Every function returns 0 or a negative STORE_E* code.
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

	int (*device_put)(struct store *store, const struct device *device, int64_t now,
	    enum store_put_result *result, struct device *stored);
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

struct store {
	const struct store_backend *backend;
	void *data;		/* the backend's own state */
};

extern const struct store_backend store_sqlite_backend;

/* The current schema version that this build writes. */
#define STORE_SCHEMA_VERSION 5

const char *store_strerror(int error);

/*
 * A number that changes whenever a device or a membership changes, on any connection:
 * what is cached from the registry is good while it stays the same.
 */
uint64_t store_generation(void);

/* Open a store with the named backend ("sqlite"); err says why on failure. */
int store_open(const char *backend, const struct store_options *options, struct store **out,
    char *err, size_t errlen);
void store_close(struct store *store);
int store_ping(struct store *store);
/*
 * Commit a small write that changes nothing in the end, to learn whether the store
 * takes writes now (a full disk, a read-only file): 0, or STORE_EIO with err set to
 * the backend's reason ("database or disk is full").
 */
int store_probe_write(struct store *store, char *err, size_t errlen);

/*
 * Insert or replace a device (by device_id). created_at is kept on update; a token
 * held by another device of the same platform is moved here (that device is removed).
 * stored (optional) receives the row as committed.
 */
int store_device_put(struct store *store, const struct device *device, int64_t now,
    enum store_put_result *result, struct device *stored);
int store_device_get(struct store *store, const char *device_id, struct device *out);
int store_device_delete(struct store *store, const char *device_id);
/* Devices of a client, ordered by device_id. */
int store_client_devices_list(struct store *store, const char *client_id,
    struct device_list *out);
int store_client_devices_delete(struct store *store, const char *client_id, size_t *deleted);
int store_device_count(struct store *store, size_t *count);
int store_device_mark_success(struct store *store, const char *device_id, int64_t at);
int store_device_mark_error(struct store *store, const char *device_id, const char *reason,
    int64_t at);
/*
 * Remove the device holding (platform, token), unless it was (re-)registered after
 * unless_updated_after (ms; pass INT64_MAX to remove unconditionally).
 */
int store_device_remove_token(struct store *store, enum device_platform platform,
    const char *token, int64_t unless_updated_after, int *removed);

/* Add a member (joined_at = now) or keep an existing one as is. */
int store_member_put(struct store *store, const char *room_id, const char *client_id,
    int64_t now, enum store_put_result *result, struct member *stored);
int store_member_get(struct store *store, const char *room_id, const char *client_id,
    struct member *out);
int store_member_delete(struct store *store, const char *room_id, const char *client_id);
/* Up to limit members ordered by client_id, starting after after_client_id (or NULL). */
int store_room_members_list(struct store *store, const char *room_id,
    const char *after_client_id, size_t limit, struct member_list *out);
/* Set a member's preferences; STORE_ENOTFOUND if not a member. */
int store_member_prefs_put(struct store *store, const char *room_id, const char *client_id,
    int64_t muted_until, int mentions_only, struct member *stored);

/*
 * Append the delivery targets of a device, a client or a room to out (ordered by
 * client_id, device_id): the columns a delivery needs, one allocation each.
 */
int store_targets_add(struct store *store, enum store_targets by, const char *id,
    struct target_list *out);
/* Record a successful delivery on many devices in one transaction. */
int store_devices_mark_success(struct store *store, const char *const *device_ids,
    size_t count, int64_t at);

/*
 * Everything routing a message in a room needs: its members (preferences, devices)
 * and the devices already notified of this message (an earlier delivery of the same
 * event). A consistent snapshot: one read transaction.
 */
int store_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out);
void store_room_route_free(struct room_route *route);
/* Remember notified devices (one transaction); forget those older than before. */
int store_notified_add(struct store *store, const struct notified_mark *marks, size_t count);
int store_notified_expire(struct store *store, int64_t before);
/* Set unread counts (0 deletes the row); load them all. */
int store_unread_put(struct store *store, const struct unread_count *counts, size_t count);
int store_unread_load(struct store *store, struct unread_count **out, size_t *count);
void store_unread_free(struct unread_count *counts, size_t count);
/*
 * Keep event batches, each of its kind (one transaction, ids out), drop handled ones,
 * read them back oldest first.
 */
int store_outbox_add(struct store *store, const enum store_outbox_kind *kinds,
    const char *const *bodies, size_t count, int64_t at, int64_t *ids);
int store_outbox_delete(struct store *store, const int64_t *ids, size_t count);
int store_outbox_load(struct store *store, struct outbox_entry **out, size_t *count);
void store_outbox_free(struct outbox_entry *entries, size_t count);

/* Insert a push and all its rows in one transaction: durable when this returns 0. */
int store_push_insert(struct store *store, const struct push_record *record);
/* Apply row changes and mark pushes finished, all in one transaction. */
int store_push_update(struct store *store, const struct push_row_update *updates,
    size_t count, const struct push_finish *finished, size_t finished_count);
int store_push_get(struct store *store, const char *push_id, struct push_record *out);
/* Every push not finished yet, with its rows: what a restart must resume. */
int store_pushes_unfinished(struct store *store, struct push_record **out, size_t *count);
/* Delete pushes finished before a time. */
int store_pushes_expire(struct store *store, int64_t finished_before, size_t *deleted);
void store_push_record_free(struct push_record *record);

#endif
