/*
 * The registry's devices in SQLite (store_registry.h): a device per row, unique by
 * (platform, token), and the delivery targets read from them. Also the registry's
 * table, whose room operations are in sqlite_rooms.c.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "sqlite_internal.h"
#include "store_registry.h"
#include "xmalloc.h"

/* This file's statements: the index of each in stmts[SQLITE_PART_DEVICES]. */
enum devices_stmt_id {
	STMT_DEVICE_GET,
	STMT_DEVICE_EXISTS,
	STMT_CLIENT_IN_A_ROOM,
	STMT_DEVICE_BY_TOKEN,
	STMT_DEVICE_UPSERT,
	STMT_DEVICE_DELETE,
	STMT_CLIENT_DEVICES_LIST,
	STMT_CLIENT_DEVICES_DELETE,
	STMT_DEVICE_COUNT,
	STMT_DEVICE_MARK_SUCCESS,
	STMT_DEVICE_MARK_ERROR,
	STMT_DEVICE_REMOVE_TOKEN,
	STMT_DEVICE_SET_ENVIRONMENT,
	STMT_TARGETS_DEVICE,
	STMT_TARGETS_CLIENT,
	STMT_TARGETS_ROOM,
	STMT_COUNT
};

/* The column order device_from_row reads. */
#define DEVICE_COLUMNS "device_id, client_id, platform, token, app_id, environment, " \
	"locale, metadata, created_at, updated_at, last_success_at, last_error, last_error_at"

static const char *const devices_sql[STMT_COUNT] = {
	[STMT_DEVICE_GET] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE device_id = ?1",
	[STMT_DEVICE_EXISTS] = "SELECT 1 FROM devices WHERE device_id = ?1",
	[STMT_CLIENT_IN_A_ROOM] = "SELECT 1 FROM memberships WHERE client_id = ?1 LIMIT 1",
	[STMT_DEVICE_BY_TOKEN] =
	    "SELECT device_id FROM devices WHERE platform = ?1 AND token = ?2",
	/*
	 * On update the right-hand sides see the old row, so the delivery state is kept
	 * only when (platform, token) is unchanged.
	 */
	[STMT_DEVICE_UPSERT] =
	    "INSERT INTO devices (device_id, client_id, platform, token, app_id, environment,"
	    " locale, metadata, created_at, updated_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)"
	    " ON CONFLICT (device_id) DO UPDATE SET"
	    " client_id = excluded.client_id, platform = excluded.platform,"
	    " token = excluded.token, app_id = excluded.app_id,"
	    " environment = excluded.environment, locale = excluded.locale,"
	    " metadata = excluded.metadata, updated_at = excluded.updated_at,"
	    " last_success_at = CASE WHEN devices.platform = excluded.platform"
	    "  AND devices.token = excluded.token THEN devices.last_success_at ELSE 0 END,"
	    " last_error = CASE WHEN devices.platform = excluded.platform"
	    "  AND devices.token = excluded.token THEN devices.last_error ELSE NULL END,"
	    " last_error_at = CASE WHEN devices.platform = excluded.platform"
	    "  AND devices.token = excluded.token THEN devices.last_error_at ELSE 0 END",
	[STMT_DEVICE_DELETE] = "DELETE FROM devices WHERE device_id = ?1",
	[STMT_CLIENT_DEVICES_LIST] =
	    "SELECT " DEVICE_COLUMNS " FROM devices WHERE client_id = ?1 ORDER BY device_id",
	[STMT_CLIENT_DEVICES_DELETE] = "DELETE FROM devices WHERE client_id = ?1",
	[STMT_DEVICE_COUNT] = "SELECT count(*) FROM devices",
	[STMT_DEVICE_MARK_SUCCESS] =
	    "UPDATE devices SET last_success_at = ?2 WHERE device_id = ?1",
	[STMT_DEVICE_MARK_ERROR] =
	    "UPDATE devices SET last_error = ?2, last_error_at = ?3 WHERE device_id = ?1",
	[STMT_DEVICE_REMOVE_TOKEN] =
	    "DELETE FROM devices WHERE platform = ?1 AND token = ?2 AND updated_at <= ?3"
	    " RETURNING device_id",
	[STMT_DEVICE_SET_ENVIRONMENT] =
	    "UPDATE devices SET environment = ?2 WHERE device_id = ?1 AND platform = 'apns'"
	    " AND updated_at <= ?3",
	[STMT_TARGETS_DEVICE] = "SELECT " TARGET_COLUMNS " FROM devices d WHERE device_id = ?1",
	[STMT_TARGETS_CLIENT] =
	    "SELECT " TARGET_COLUMNS " FROM devices d WHERE client_id = ?1 ORDER BY device_id",
	[STMT_TARGETS_ROOM] =
	    "SELECT " TARGET_COLUMNS " FROM memberships m JOIN devices d"
	    " ON d.client_id = m.client_id WHERE m.room_id = ?1"
	    " ORDER BY d.client_id, d.device_id",
};

const struct sqlite_statements sqlite_devices_statements = { devices_sql, STMT_COUNT };

/* One of this file's prepared statements. */
static sqlite3_stmt *
devices_stmt(struct sqlite_store *s, enum devices_stmt_id id)
{
	return s->stmts[SQLITE_PART_DEVICES][id];
}

/* Free a device's strings (as model_device_free does, without depending on it). */
static void
device_clear(struct device *device)
{
	free(device->device_id);
	free(device->client_id);
	free(device->token);
	free(device->app_id);
	free(device->locale);
	free(device->metadata);
	free(device->last_error);
	memset(device, 0, sizeof *device);
}

/* Fill a device from a row of DEVICE_COLUMNS; STORE_EIO (logged) if it is invalid. */
static int
device_from_row(struct sqlite_store *s, const struct sqlite_context *ctx, sqlite3_stmt *stmt,
    struct device *out)
{
	const char *column = NULL;
	int platform, environment;

	memset(out, 0, sizeof *out);
	platform = sqlite_platform_from_name((const char *)sqlite3_column_text(stmt, 2));
	environment = sqlite_environment_from_name((const char *)sqlite3_column_text(stmt, 5));
	out->device_id = sqlite_column_strdup(stmt, 0);
	out->client_id = sqlite_column_strdup(stmt, 1);
	out->token = sqlite_column_strdup(stmt, 3);
	out->app_id = sqlite_column_strdup(stmt, 4);
	out->locale = sqlite_column_strdup(stmt, 6);
	out->metadata = sqlite_column_strdup(stmt, 7);
	out->created_at = sqlite3_column_int64(stmt, 8);
	out->updated_at = sqlite3_column_int64(stmt, 9);
	out->last_success_at = sqlite3_column_int64(stmt, 10);
	out->last_error = sqlite_column_strdup(stmt, 11);
	out->last_error_at = sqlite3_column_int64(stmt, 12);

	if (out->device_id == NULL)
		column = "device_id";
	else if (out->client_id == NULL)
		column = "client_id";
	else if (platform < 0)
		column = "platform";
	else if (out->token == NULL)
		column = "token";
	else if (out->app_id == NULL)
		column = "app_id";
	else if (environment < 0)
		column = "environment";
	if (column != NULL) {
		device_clear(out);
		return sqlite_bad_row(s, ctx, column);
	}
	out->platform = (enum device_platform)platform;
	out->environment = (enum device_environment)environment;
	return STORE_OK;
}

/* Read one device by id into out. */
static int
device_read(struct sqlite_store *s, const struct sqlite_context *ctx, const char *device_id,
    struct device *out)
{
	sqlite3_stmt *stmt = devices_stmt(s, STMT_DEVICE_GET);
	int error, rc;

	memset(out, 0, sizeof *out);
	if (bind_text(stmt, 1, device_id) != SQLITE_OK)
		error = sqlite_fail(s, ctx);
	else if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		error = device_from_row(s, ctx, stmt, out);
	else if (rc == SQLITE_DONE)
		error = STORE_ENOTFOUND;
	else
		error = sqlite_fail(s, ctx);
	stmt_done(stmt);
	return error;
}

/*
 * Insert or update a device. A token held by another device is moved here: that
 * device is deleted first (an app reinstalled under a new device id keeps its token).
 * The stored row is read back inside the transaction, so it is what was committed.
 */
static int
sqlite_device_put(struct store *store, const struct device *device, int64_t now,
    enum store_put_result *result, struct device *stored, int *routed)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_put", "device_id", NULL };
	const char *platform, *environment;
	char redacted[LOG_REDACT_SIZE];
	struct device row;
	sqlite3_stmt *stmt;
	char *holder = NULL;
	int error = STORE_OK, exists = 0, rc;

	if (device == NULL || device->device_id == NULL || device->client_id == NULL ||
	    device->token == NULL || device->app_id == NULL)
		return STORE_EINVAL;
	if ((platform = sqlite_platform_name(device->platform)) == NULL ||
	    (environment = sqlite_environment_name(device->environment)) == NULL)
		return STORE_EINVAL;
	ctx.value = device->device_id;
	memset(&row, 0, sizeof row);

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;

	stmt = devices_stmt(s, STMT_DEVICE_EXISTS);
	if (bind_text(stmt, 1, device->device_id) != SQLITE_OK ||
	    ((rc = sqlite3_step(stmt)) != SQLITE_ROW && rc != SQLITE_DONE))
		error = sqlite_fail(s, &ctx);
	else
		exists = rc == SQLITE_ROW;
	stmt_done(stmt);
	if (error != STORE_OK)
		goto out;

	stmt = devices_stmt(s, STMT_DEVICE_BY_TOKEN);
	if (bind_text(stmt, 1, platform) != SQLITE_OK ||
	    bind_text(stmt, 2, device->token) != SQLITE_OK ||
	    ((rc = sqlite3_step(stmt)) != SQLITE_ROW && rc != SQLITE_DONE))
		error = sqlite_fail(s, &ctx);
	else if (rc == SQLITE_ROW) {
		holder = sqlite_column_strdup(stmt, 0);
		if (holder != NULL && strcmp(holder, device->device_id) == 0) {
			free(holder);
			holder = NULL;
		}
	}
	stmt_done(stmt);
	if (error != STORE_OK)
		goto out;

	if (holder != NULL) {
		stmt = devices_stmt(s, STMT_DEVICE_DELETE);
		if (bind_text(stmt, 1, holder) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
		if (error != STORE_OK)
			goto out;
	}

	stmt = devices_stmt(s, STMT_DEVICE_UPSERT);
	if (bind_text(stmt, 1, device->device_id) != SQLITE_OK ||
	    bind_text(stmt, 2, device->client_id) != SQLITE_OK ||
	    bind_text(stmt, 3, platform) != SQLITE_OK ||
	    bind_text(stmt, 4, device->token) != SQLITE_OK ||
	    bind_text(stmt, 5, device->app_id) != SQLITE_OK ||
	    bind_text(stmt, 6, environment) != SQLITE_OK ||
	    bind_text(stmt, 7, device->locale) != SQLITE_OK ||
	    bind_text(stmt, 8, device->metadata) != SQLITE_OK ||
	    bind_int64(stmt, 9, now) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	if (error != STORE_OK)
		goto out;

	/*
	 * A new device with a token of its own, of a client in no room, is on no room's
	 * route: the generation can stay. Otherwise (an update, a token taken from
	 * another device, a member's device) it must move.
	 */
	*routed = exists || holder != NULL;
	if (!*routed) {
		stmt = devices_stmt(s, STMT_CLIENT_IN_A_ROOM);
		if (bind_text(stmt, 1, device->client_id) != SQLITE_OK ||
		    ((rc = sqlite3_step(stmt)) != SQLITE_ROW && rc != SQLITE_DONE))
			error = sqlite_fail(s, &ctx);
		else
			*routed = rc == SQLITE_ROW;
		stmt_done(stmt);
		if (error != STORE_OK)
			goto out;
	}

	if (stored != NULL && (error = device_read(s, &ctx, device->device_id, &row)) ==
	    STORE_ENOTFOUND)
		error = sqlite_bad_row(s, &ctx, "device_id");

out:
	error = sqlite_tx_end(s, &ctx, error);
	if (error != STORE_OK) {
		device_clear(&row);
		free(holder);
		return error;
	}
	if (holder != NULL) {
		log_info("device token moved to another device", "token",
		    log_redact(device->token, redacted), "from_device_id", holder,
		    "to_device_id", device->device_id, NULL);
		free(holder);
	}
	if (result != NULL)
		*result = exists ? STORE_PUT_UPDATED : STORE_PUT_CREATED;
	if (stored != NULL)
		*stored = row;
	return STORE_OK;
}

/* Read one device; STORE_ENOTFOUND if there is none. */
static int
sqlite_device_get(struct store *store, const char *device_id, struct device *out)
{
	struct sqlite_context ctx = { "device_get", "device_id", device_id };

	return device_read(store->data, &ctx, device_id, out);
}

/* Delete one device; STORE_ENOTFOUND if there is none. */
static int
sqlite_device_delete(struct store *store, const char *device_id)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_delete", "device_id", device_id };
	sqlite3_stmt *stmt = devices_stmt(s, STMT_DEVICE_DELETE);
	int error;

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, device_id) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	return sqlite_tx_end(s, &ctx, error);
}

/* List a client's devices ordered by device_id; an unknown client has none. */
static int
sqlite_client_devices_list(struct store *store, const char *client_id,
    struct device_list *out)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "client_devices_list", "client_id", client_id };
	sqlite3_stmt *stmt = devices_stmt(s, STMT_CLIENT_DEVICES_LIST);
	size_t capacity = 0;
	int error = STORE_OK, rc;

	out->items = NULL;
	out->count = 0;
	if (bind_text(stmt, 1, client_id) != SQLITE_OK) {
		error = sqlite_fail(s, &ctx);
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (out->count == capacity) {
			capacity = capacity == 0 ? 4 : capacity * 2;
			out->items = xreallocarray(out->items, capacity, sizeof *out->items);
		}
		if ((error = device_from_row(s, &ctx, stmt, &out->items[out->count])) != 0)
			goto out;
		out->count++;
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
out:
	stmt_done(stmt);
	if (error != STORE_OK) {
		for (size_t i = 0; i < out->count; i++)
			device_clear(&out->items[i]);
		free(out->items);
		out->items = NULL;
		out->count = 0;
	}
	return error;
}

/* Delete every device of a client; *deleted (optional) says how many. */
static int
sqlite_client_devices_delete(struct store *store, const char *client_id, size_t *deleted)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "client_devices_delete", "client_id", client_id };
	sqlite3_stmt *stmt = devices_stmt(s, STMT_CLIENT_DEVICES_DELETE);
	int error, changes = 0;

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, client_id) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else
		changes = sqlite3_changes(s->db);
	stmt_done(stmt);
	if ((error = sqlite_tx_end(s, &ctx, error)) == STORE_OK && deleted != NULL)
		*deleted = (size_t)changes;
	return error;
}

/* Count all devices. */
static int
sqlite_device_count(struct store *store, size_t *count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_count", NULL, NULL };
	sqlite3_stmt *stmt = devices_stmt(s, STMT_DEVICE_COUNT);
	int error = STORE_OK;

	if (sqlite3_step(stmt) == SQLITE_ROW)
		*count = (size_t)sqlite3_column_int64(stmt, 0);
	else
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	return error;
}

/* Record a delivery: last_success_at = at. updated_at is left alone (it is registration time). */
static int
sqlite_device_mark_success(struct store *store, const char *device_id, int64_t at)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_mark_success", "device_id", device_id };
	sqlite3_stmt *stmt = devices_stmt(s, STMT_DEVICE_MARK_SUCCESS);
	int error;

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, device_id) != SQLITE_OK || bind_int64(stmt, 2, at) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	return sqlite_tx_end(s, &ctx, error);
}

/* Record a failed delivery: last_error = reason, last_error_at = at. */
static int
sqlite_device_mark_error(struct store *store, const char *device_id, const char *reason,
    int64_t at)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_mark_error", "device_id", device_id };
	sqlite3_stmt *stmt = devices_stmt(s, STMT_DEVICE_MARK_ERROR);
	int error;

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, device_id) != SQLITE_OK ||
	    bind_text(stmt, 2, reason) != SQLITE_OK || bind_int64(stmt, 3, at) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	return sqlite_tx_end(s, &ctx, error);
}

/* An APNs device's environment, corrected; see store_registry.h. */
static int
sqlite_device_set_environment(struct store *store, const char *device_id,
    enum device_environment environment, int64_t unless_updated_after)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_set_environment", "device_id", device_id };
	sqlite3_stmt *stmt = devices_stmt(s, STMT_DEVICE_SET_ENVIRONMENT);
	const char *name = sqlite_environment_name(environment);
	int error;

	if (device_id == NULL || name == NULL)
		return STORE_EINVAL;
	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, device_id) != SQLITE_OK || bind_text(stmt, 2, name) != SQLITE_OK ||
	    bind_int64(stmt, 3, unless_updated_after) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	return sqlite_tx_end(s, &ctx, error);
}

/*
 * Remove the device holding a token a provider rejected, unless it was registered
 * again after unless_updated_after. *removed (optional) is 1 if a device went, else 0
 * (no such token, or registered too recently): neither is an error.
 */
static int
sqlite_device_remove_token(struct store *store, enum device_platform platform,
    const char *token, int64_t unless_updated_after, int *removed)
{
	struct sqlite_store *s = store->data;
	char redacted[LOG_REDACT_SIZE];
	struct sqlite_context ctx = { "device_remove_token", "token", NULL };
	sqlite3_stmt *stmt = devices_stmt(s, STMT_DEVICE_REMOVE_TOKEN);
	const char *name = sqlite_platform_name(platform);
	char *device_id = NULL;
	int error, rc;

	if (name == NULL || token == NULL)
		return STORE_EINVAL;
	ctx.value = log_redact(token, redacted);
	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, name) != SQLITE_OK || bind_text(stmt, 2, token) != SQLITE_OK ||
	    bind_int64(stmt, 3, unless_updated_after) != SQLITE_OK)
		error = sqlite_fail(s, &ctx);
	else {
		/* (platform, token) is unique: at most one row comes back. */
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			if (device_id == NULL)
				device_id = sqlite_column_strdup(stmt, 0);
		}
		if (rc != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
	}
	stmt_done(stmt);
	if ((error = sqlite_tx_end(s, &ctx, error)) == STORE_OK) {
		if (device_id != NULL)
			log_debug("device removed for its token", "device_id", device_id,
			    "token", redacted, NULL);
		if (removed != NULL)
			*removed = device_id != NULL;
	}
	free(device_id);
	return error;
}

/* Append the delivery targets a statement returns. */
static int
sqlite_targets_add(struct store *store, enum store_targets by, const char *id,
    struct target_list *out)
{
	static const enum devices_stmt_id stmts[] = {
		[STORE_TARGETS_DEVICE] = STMT_TARGETS_DEVICE,
		[STORE_TARGETS_CLIENT] = STMT_TARGETS_CLIENT,
		[STORE_TARGETS_ROOM] = STMT_TARGETS_ROOM,
	};
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "targets_add", "id", id };
	sqlite3_stmt *stmt = devices_stmt(s, stmts[by]);
	int error = STORE_OK, rc, platform, environment;

	if (bind_text(stmt, 1, id) != SQLITE_OK) {
		error = sqlite_fail(s, &ctx);
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *text[6];
		for (int c = 0; c < 6; c++) {
			text[c] = (const char *)sqlite3_column_text(stmt, c);
			if (text[c] == NULL) {
				error = sqlite_bad_row(s, &ctx, "device");
				goto out;
			}
		}
		platform = sqlite_platform_from_name(text[2]);
		environment = sqlite_environment_from_name(text[5]);
		if (platform < 0 || environment < 0) {
			error = sqlite_bad_row(s, &ctx, platform < 0 ? "platform" : "environment");
			goto out;
		}
		model_target_list_add(out, model_target_new(text[0], text[1], text[3], text[4],
		    (enum device_platform)platform, (enum device_environment)environment,
		    sqlite3_column_int64(stmt, 6), sqlite3_column_int64(stmt, 7)));
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
out:
	stmt_done(stmt);
	return error;
}

/* Set last_success_at on many devices in one transaction; absent ones are skipped. */
static int
sqlite_devices_mark_success(struct store *store, const char *const *device_ids, size_t count,
    int64_t at)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "devices_mark_success", NULL, NULL };
	sqlite3_stmt *stmt = devices_stmt(s, STMT_DEVICE_MARK_SUCCESS);
	int error;

	if (count == 0)
		return STORE_OK;
	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		if (bind_text(stmt, 1, device_ids[i]) != SQLITE_OK ||
		    bind_int64(stmt, 2, at) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return sqlite_tx_end(s, &ctx, error);
}

const struct store_registry_ops sqlite_registry_ops = {
	.device_put = sqlite_device_put,
	.device_get = sqlite_device_get,
	.device_delete = sqlite_device_delete,
	.client_devices_list = sqlite_client_devices_list,
	.client_devices_delete = sqlite_client_devices_delete,
	.device_count = sqlite_device_count,
	.device_mark_success = sqlite_device_mark_success,
	.device_mark_error = sqlite_device_mark_error,
	.device_remove_token = sqlite_device_remove_token,
	.device_set_environment = sqlite_device_set_environment,
	.targets_add = sqlite_targets_add,
	.devices_mark_success = sqlite_devices_mark_success,
	.member_put = sqlite_member_put,
	.member_get = sqlite_member_get,
	.member_delete = sqlite_member_delete,
	.room_members_list = sqlite_room_members_list,
	.member_prefs_put = sqlite_member_prefs_put,
	.room_route = sqlite_room_route,
};
