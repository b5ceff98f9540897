/* The device registry's calls, through the backend's table; writes move the generation. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "store_registry.h"

/* The backend's registry operations. */
static const struct store_registry_ops *
ops(const struct store *store)
{
	return store->backend->registry;
}

/* A write that may change a room's route returned rc: move the generation. */
static int
changed(struct store *store, int rc)
{
	store_generation_move(store);
	return rc;
}

/* Insert or replace a device; see store_registry.h. */
int
store_device_put(struct store *store, const struct device *device, int64_t now,
    enum store_put_result *result, struct device *stored)
{
	int routed = 1;
	int rc = ops(store)->device_put(store, device, now, result, stored, &routed);

	/* A client in no room: no route has its devices. */
	if (rc == STORE_OK && !routed)
		return rc;
	return changed(store, rc);
}

/* Read one device. */
int
store_device_get(struct store *store, const char *device_id, struct device *out)
{
	return ops(store)->device_get(store, device_id, out);
}

/* Delete one device. */
int
store_device_delete(struct store *store, const char *device_id)
{
	return changed(store, ops(store)->device_delete(store, device_id));
}

/* List a client's devices, ordered by device_id. */
int
store_client_devices_list(struct store *store, const char *client_id,
    struct device_list *out)
{
	return ops(store)->client_devices_list(store, client_id, out);
}

/* Delete every device of a client. */
int
store_client_devices_delete(struct store *store, const char *client_id, size_t *deleted)
{
	return changed(store, ops(store)->client_devices_delete(store, client_id, deleted));
}

/* Count all devices. */
int
store_device_count(struct store *store, size_t *count)
{
	return ops(store)->device_count(store, count);
}

/* Record a successful delivery to a device. */
int
store_device_mark_success(struct store *store, const char *device_id, int64_t at)
{
	return ops(store)->device_mark_success(store, device_id, at);
}

/* Record a failed delivery to a device. */
int
store_device_mark_error(struct store *store, const char *device_id, const char *reason,
    int64_t at)
{
	return ops(store)->device_mark_error(store, device_id, reason, at);
}

/* Remove the device holding a token the provider rejected; see store_registry.h. */
int
store_device_remove_token(struct store *store, enum device_platform platform,
    const char *token, int64_t unless_updated_after, int *removed)
{
	return changed(store, ops(store)->device_remove_token(store, platform, token,
	    unless_updated_after, removed));
}

/* Correct an APNs device's environment; see store_registry.h. */
int
store_device_set_environment(struct store *store, const char *device_id,
    enum device_environment environment, int64_t unless_updated_after)
{
	return changed(store, ops(store)->device_set_environment(store, device_id,
	    environment, unless_updated_after));
}

/* Add a room member or keep the existing one. */
int
store_member_put(struct store *store, const char *room_id, const char *client_id,
    int64_t now, enum store_put_result *result, struct member *stored)
{
	enum store_put_result put = STORE_PUT_CREATED;
	int rc = ops(store)->member_put(store, room_id, client_id, now, &put, stored);

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
	return ops(store)->member_get(store, room_id, client_id, out);
}

/* Remove a member from a room. */
int
store_member_delete(struct store *store, const char *room_id, const char *client_id)
{
	int rc = ops(store)->member_delete(store, room_id, client_id);

	return rc == STORE_ENOTFOUND ? rc : changed(store, rc);
}

/* List one page of a room's members. */
int
store_room_members_list(struct store *store, const char *room_id,
    const char *after_client_id, size_t limit, struct member_list *out)
{
	return ops(store)->room_members_list(store, room_id, after_client_id, limit, out);
}

/* Set a member's preferences. */
int
store_member_prefs_put(struct store *store, const char *room_id, const char *client_id,
    int64_t muted_until, int mentions_only, struct member *stored)
{
	return changed(store, ops(store)->member_prefs_put(store, room_id, client_id,
	    muted_until, mentions_only, stored));
}

/* Append the targets of a device, client or room. */
int
store_targets_add(struct store *store, enum store_targets by, const char *id,
    struct target_list *out)
{
	return ops(store)->targets_add(store, by, id, out);
}

/* Record successful deliveries in one transaction. */
int
store_devices_mark_success(struct store *store, const char *const *device_ids, size_t count,
    int64_t at)
{
	return ops(store)->devices_mark_success(store, device_ids, count, at);
}

/* Read what routing a message needs. */
int
store_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out)
{
	return ops(store)->room_route(store, room_id, message_id, out);
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
