/*
 * The device registry: devices, room memberships and their preferences, and what
 * routing and delivering read from them (delivery targets, room routes). Its writes
 * of devices and memberships move the store's generation (store.h), which is what
 * the route cache checks.
 *
 * Called from store jobs (store_writer.h) by the API (api_devices.c, api_rooms.c),
 * the router's implicit joins (membership.c), the route cache (route_cache.c),
 * deliveries (delivery.c) and the push ledger's targets (push.c); at start-up by
 * push_init's resume (store_device_get); on the loop by metrics.c's device count.
 * Threads, durability and errors as store.h says.
 */
#ifndef PUSHRELAY_STORE_REGISTRY_H
#define PUSHRELAY_STORE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "store.h"

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

/* The registry's part of a backend (store_backend.registry). */
struct store_registry_ops {
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
	int (*device_set_environment)(struct store *store, const char *device_id,
	    enum device_environment environment, int64_t unless_updated_after);
	int (*targets_add)(struct store *store, enum store_targets by, const char *id,
	    struct target_list *out);
	int (*devices_mark_success)(struct store *store, const char *const *device_ids,
	    size_t count, int64_t at);

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
	int (*room_route)(struct store *store, const char *room_id, const char *message_id,
	    struct room_route *out);
};

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
 * Correct an APNs device's environment (the other one took its token), unless it was
 * (re-)registered after unless_updated_after (ms). Moves the generation: the device's
 * deliveries go to the other environment from now on. Thread: connection. 0,
 * STORE_ENOTFOUND (gone, not APNs, or registered again since), STORE_EINVAL (no id,
 * bad environment), STORE_EIO.
 */
int store_device_set_environment(struct store *store, const char *device_id,
    enum device_environment environment, int64_t unless_updated_after);

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
 * event: the marks of store_marks.h). A consistent snapshot: one read transaction
 * (inside a batch: the batch's). Thread: connection. 0, STORE_EIO.
 */
int store_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out);
/* Free what store_room_route() gave. Any thread. */
void store_room_route_free(struct room_route *route);

#endif
