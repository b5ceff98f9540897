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
};

/* What device_put did. */
enum store_put_result {
	STORE_PUT_CREATED = 1,
	STORE_PUT_UPDATED = 2,
};

struct store;

struct store_backend {
	const char *name;
	int (*open)(struct store *store, const struct store_options *options, char *err,
	    size_t errlen);
	void (*close)(struct store *store);
	int (*ping)(struct store *store);

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
};

struct store {
	const struct store_backend *backend;
	void *data;		/* the backend's own state */
};

extern const struct store_backend store_sqlite_backend;

/* The current schema version that this build writes. */
#define STORE_SCHEMA_VERSION 1

const char *store_strerror(int error);

/* Open a store with the named backend ("sqlite"); err says why on failure. */
int store_open(const char *backend, const struct store_options *options, struct store **out,
    char *err, size_t errlen);
void store_close(struct store *store);
int store_ping(struct store *store);

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

#endif
