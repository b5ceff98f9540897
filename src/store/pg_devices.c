/*
 * The registry's devices in PostgreSQL (store_registry.h): a device per row, unique
 * by (platform, token), and the delivery targets read from them. Also the registry's
 * table, whose room operations are in pg_rooms.c. The same rules as sqlite_devices.c.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "pg_internal.h"
#include "store_registry.h"
#include "xmalloc.h"

/* This file's statements: the index of each in PG_PART_DEVICES. */
enum devices_stmt_id {
	STMT_DEVICE_GET,
	STMT_DEVICE_TAKE_TOKEN,
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
	STMT_DEVICES_MARK_SUCCESS,
	STMT_COUNT
};

/* The column order device_from_row reads. */
#define DEVICE_COLUMNS "device_id, client_id, platform, token, app_id, environment, " \
	"locale, metadata, created_at, updated_at, last_success_at, last_error, last_error_at"

static const char *const devices_sql[STMT_COUNT] = {
	[STMT_DEVICE_GET] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE device_id = $1",
	/* The device that holds the token now, if another, goes: the token moves. */
	[STMT_DEVICE_TAKE_TOKEN] =
	    "DELETE FROM devices WHERE platform = $1 AND token = $2 AND device_id <> $3"
	    " RETURNING device_id",
	/*
	 * On update the right-hand sides see the old row, so the delivery state is kept
	 * only when (platform, token) is unchanged. The row comes back as stored, with
	 * whether it existed before (old: the statement's snapshot, before the insert)
	 * and whether its client is in a room.
	 */
	[STMT_DEVICE_UPSERT] =
	    "WITH old AS (SELECT 1 FROM devices WHERE device_id = $1)"
	    " INSERT INTO devices (device_id, client_id, platform, token, app_id, environment,"
	    " locale, metadata, created_at, updated_at)"
	    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
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
	    "  AND devices.token = excluded.token THEN devices.last_error_at ELSE 0 END"
	    " RETURNING " DEVICE_COLUMNS ", EXISTS (SELECT 1 FROM old),"
	    " EXISTS (SELECT 1 FROM memberships WHERE client_id = $2)",
	[STMT_DEVICE_DELETE] = "DELETE FROM devices WHERE device_id = $1",
	[STMT_CLIENT_DEVICES_LIST] =
	    "SELECT " DEVICE_COLUMNS " FROM devices WHERE client_id = $1 ORDER BY device_id",
	[STMT_CLIENT_DEVICES_DELETE] = "DELETE FROM devices WHERE client_id = $1",
	[STMT_DEVICE_COUNT] = "SELECT count(*) FROM devices",
	[STMT_DEVICE_MARK_SUCCESS] =
	    "UPDATE devices SET last_success_at = $2 WHERE device_id = $1",
	[STMT_DEVICE_MARK_ERROR] =
	    "UPDATE devices SET last_error = $2, last_error_at = $3 WHERE device_id = $1",
	[STMT_DEVICE_REMOVE_TOKEN] =
	    "DELETE FROM devices WHERE platform = $1 AND token = $2 AND updated_at <= $3"
	    " RETURNING device_id",
	[STMT_DEVICE_SET_ENVIRONMENT] =
	    "UPDATE devices SET environment = $2 WHERE device_id = $1 AND platform = 'apns'"
	    " AND updated_at <= $3",
	[STMT_TARGETS_DEVICE] =
	    "SELECT " PG_TARGET_COLUMNS " FROM devices d WHERE device_id = $1",
	[STMT_TARGETS_CLIENT] =
	    "SELECT " PG_TARGET_COLUMNS " FROM devices d WHERE client_id = $1"
	    " ORDER BY device_id",
	[STMT_TARGETS_ROOM] =
	    "SELECT " PG_TARGET_COLUMNS " FROM memberships m JOIN devices d"
	    " ON d.client_id = m.client_id WHERE m.room_id = $1"
	    " ORDER BY d.client_id, d.device_id",
	/* Many devices in one statement: the ids as one text[]. */
	[STMT_DEVICES_MARK_SUCCESS] =
	    "UPDATE devices SET last_success_at = $2 WHERE device_id = ANY ($1::text[])",
};

const struct pg_statements pg_devices_statements = { devices_sql, STMT_COUNT };

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
device_from_row(struct pg_store *s, const struct pg_context *ctx, const PGresult *result,
    int row, struct device *out)
{
	const char *column = NULL;
	int platform, environment;

	memset(out, 0, sizeof *out);
	platform = sqlite_platform_from_name(pg_text(result, row, 2));
	environment = sqlite_environment_from_name(pg_text(result, row, 5));
	out->device_id = pg_strdup(result, row, 0);
	out->client_id = pg_strdup(result, row, 1);
	out->token = pg_strdup(result, row, 3);
	out->app_id = pg_strdup(result, row, 4);
	out->locale = pg_strdup(result, row, 6);
	out->metadata = pg_strdup(result, row, 7);
	out->created_at = pg_int(result, row, 8);
	out->updated_at = pg_int(result, row, 9);
	out->last_success_at = pg_int(result, row, 10);
	out->last_error = pg_strdup(result, row, 11);
	out->last_error_at = pg_int(result, row, 12);

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
		return pg_bad_row(s, ctx, column);
	}
	out->platform = (enum device_platform)platform;
	out->environment = (enum device_environment)environment;
	return STORE_OK;
}

/* Run a statement with one text parameter. */
static int
run_text(struct pg_store *s, const struct pg_context *ctx, int id, const char *value,
    PGresult **out)
{
	struct pg_params params;
	int error;

	pg_params_init(&params);
	pg_param_text(&params, value);
	error = pg_run(s, ctx, PG_PART_DEVICES, id, &params, out);
	pg_params_clear(&params);
	return error;
}

/*
 * Insert or update a device. A token held by another device is moved here: that
 * device is deleted first (an app reinstalled under a new device id keeps its token).
 * The stored row comes back from the write itself, so it is what was committed.
 */
static int
pg_device_put(struct store *store, const struct device *device, int64_t now,
    enum store_put_result *result, struct device *stored, int *routed)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "device_put", "device_id", NULL };
	const char *platform, *environment;
	char redacted[LOG_REDACT_SIZE];
	struct pg_params params;
	struct device row;
	PGresult *res = NULL;
	char *holder = NULL;
	int error, exists = 0, in_room = 0;

	if (device == NULL || device->device_id == NULL || device->client_id == NULL ||
	    device->token == NULL || device->app_id == NULL)
		return STORE_EINVAL;
	if ((platform = sqlite_platform_name(device->platform)) == NULL ||
	    (environment = sqlite_environment_name(device->environment)) == NULL)
		return STORE_EINVAL;
	ctx.value = device->device_id;
	memset(&row, 0, sizeof row);

	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;

	pg_params_init(&params);
	pg_param_text(&params, platform);
	pg_param_text(&params, device->token);
	pg_param_text(&params, device->device_id);
	error = pg_run(s, &ctx, PG_PART_DEVICES, STMT_DEVICE_TAKE_TOKEN, &params, &res);
	pg_params_clear(&params);
	if (error != STORE_OK)
		goto out;
	/* (platform, token) is unique: at most one row comes back. */
	if (PQntuples(res) > 0)
		holder = pg_strdup(res, 0, 0);
	PQclear(res);
	res = NULL;

	pg_param_text(&params, device->device_id);
	pg_param_text(&params, device->client_id);
	pg_param_text(&params, platform);
	pg_param_text(&params, device->token);
	pg_param_text(&params, device->app_id);
	pg_param_text(&params, environment);
	pg_param_text(&params, device->locale);
	pg_param_text(&params, device->metadata);
	pg_param_int(&params, now);
	error = pg_run(s, &ctx, PG_PART_DEVICES, STMT_DEVICE_UPSERT, &params, &res);
	pg_params_clear(&params);
	if (error != STORE_OK)
		goto out;
	if (PQntuples(res) != 1) {
		error = pg_bad_row(s, &ctx, "device_id");
		goto out;
	}
	exists = strcmp(PQgetvalue(res, 0, 13), "t") == 0;
	in_room = strcmp(PQgetvalue(res, 0, 14), "t") == 0;
	if (stored != NULL)
		error = device_from_row(s, &ctx, res, 0, &row);

out:
	PQclear(res);
	error = pg_tx_end(s, &ctx, error);
	if (error != STORE_OK) {
		device_clear(&row);
		free(holder);
		return error;
	}
	/*
	 * A new device with a token of its own, of a client in no room, is on no room's
	 * route: the generation can stay. Otherwise (an update, a token taken from
	 * another device, a member's device) it must move.
	 */
	*routed = exists || holder != NULL || in_room;
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

/* Read one device by id into out. */
static int
device_read(struct pg_store *s, const struct pg_context *ctx, const char *device_id,
    struct device *out)
{
	PGresult *res;
	int error;

	memset(out, 0, sizeof *out);
	if ((error = run_text(s, ctx, STMT_DEVICE_GET, device_id, &res)) != STORE_OK)
		return error;
	if (PQntuples(res) == 0)
		error = STORE_ENOTFOUND;
	else
		error = device_from_row(s, ctx, res, 0, out);
	PQclear(res);
	return error;
}

/* Read one device; STORE_ENOTFOUND if there is none. */
static int
pg_device_get(struct store *store, const char *device_id, struct device *out)
{
	struct pg_context ctx = { "device_get", "device_id", device_id };

	return device_read(store->data, &ctx, device_id, out);
}

/*
 * Run a write of one statement in its own transaction (a savepoint in a batch):
 * STORE_ENOTFOUND if it changed nothing and missing_is_error; *changed how many.
 */
static int
write_one(struct pg_store *s, const struct pg_context *ctx, int id,
    const struct pg_params *params, int missing_is_error, size_t *changed)
{
	size_t n = 0;
	int error;

	if ((error = pg_tx_begin(s, ctx)) != STORE_OK)
		return error;
	error = pg_run_command(s, ctx, PG_PART_DEVICES, id, params, &n);
	if (error == STORE_OK && n == 0 && missing_is_error)
		error = STORE_ENOTFOUND;
	if ((error = pg_tx_end(s, ctx, error)) == STORE_OK && changed != NULL)
		*changed = n;
	return error;
}

/* Delete one device; STORE_ENOTFOUND if there is none. */
static int
pg_device_delete(struct store *store, const char *device_id)
{
	struct pg_context ctx = { "device_delete", "device_id", device_id };
	struct pg_params params;
	int error;

	pg_params_init(&params);
	pg_param_text(&params, device_id);
	error = write_one(store->data, &ctx, STMT_DEVICE_DELETE, &params, 1, NULL);
	pg_params_clear(&params);
	return error;
}

/* List a client's devices ordered by device_id; an unknown client has none. */
static int
pg_client_devices_list(struct store *store, const char *client_id, struct device_list *out)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "client_devices_list", "client_id", client_id };
	PGresult *res;
	int error, rows;

	out->items = NULL;
	out->count = 0;
	if ((error = run_text(s, &ctx, STMT_CLIENT_DEVICES_LIST, client_id, &res)) != STORE_OK)
		return error;
	rows = PQntuples(res);
	if (rows > 0)
		out->items = xcalloc((size_t)rows, sizeof *out->items);
	for (int i = 0; i < rows && error == STORE_OK; i++) {
		if ((error = device_from_row(s, &ctx, res, i, &out->items[out->count])) ==
		    STORE_OK)
			out->count++;
	}
	PQclear(res);
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
pg_client_devices_delete(struct store *store, const char *client_id, size_t *deleted)
{
	struct pg_context ctx = { "client_devices_delete", "client_id", client_id };
	struct pg_params params;
	int error;

	pg_params_init(&params);
	pg_param_text(&params, client_id);
	error = write_one(store->data, &ctx, STMT_CLIENT_DEVICES_DELETE, &params, 0, deleted);
	pg_params_clear(&params);
	return error;
}

/* Count all devices. */
static int
pg_device_count(struct store *store, size_t *count)
{
	struct pg_context ctx = { "device_count", NULL, NULL };
	PGresult *res;
	int error;

	if ((error = pg_run(store->data, &ctx, PG_PART_DEVICES, STMT_DEVICE_COUNT, NULL,
	    &res)) != STORE_OK)
		return error;
	*count = (size_t)pg_int(res, 0, 0);
	PQclear(res);
	return STORE_OK;
}

/* Record a delivery: last_success_at = at. updated_at is left alone (it is registration time). */
static int
pg_device_mark_success(struct store *store, const char *device_id, int64_t at)
{
	struct pg_context ctx = { "device_mark_success", "device_id", device_id };
	struct pg_params params;
	int error;

	pg_params_init(&params);
	pg_param_text(&params, device_id);
	pg_param_int(&params, at);
	error = write_one(store->data, &ctx, STMT_DEVICE_MARK_SUCCESS, &params, 1, NULL);
	pg_params_clear(&params);
	return error;
}

/* Record a failed delivery: last_error = reason, last_error_at = at. */
static int
pg_device_mark_error(struct store *store, const char *device_id, const char *reason,
    int64_t at)
{
	struct pg_context ctx = { "device_mark_error", "device_id", device_id };
	struct pg_params params;
	int error;

	pg_params_init(&params);
	pg_param_text(&params, device_id);
	pg_param_text(&params, reason);
	pg_param_int(&params, at);
	error = write_one(store->data, &ctx, STMT_DEVICE_MARK_ERROR, &params, 1, NULL);
	pg_params_clear(&params);
	return error;
}

/* An APNs device's environment, corrected; see store_registry.h. */
static int
pg_device_set_environment(struct store *store, const char *device_id,
    enum device_environment environment, int64_t unless_updated_after)
{
	struct pg_context ctx = { "device_set_environment", "device_id", device_id };
	const char *name = sqlite_environment_name(environment);
	struct pg_params params;
	int error;

	if (device_id == NULL || name == NULL)
		return STORE_EINVAL;
	pg_params_init(&params);
	pg_param_text(&params, device_id);
	pg_param_text(&params, name);
	pg_param_int(&params, unless_updated_after);
	error = write_one(store->data, &ctx, STMT_DEVICE_SET_ENVIRONMENT, &params, 1, NULL);
	pg_params_clear(&params);
	return error;
}

/*
 * Remove the device holding a token a provider rejected, unless it was registered
 * again after unless_updated_after. *removed (optional) is 1 if a device went, else 0
 * (no such token, or registered too recently): neither is an error.
 */
static int
pg_device_remove_token(struct store *store, enum device_platform platform,
    const char *token, int64_t unless_updated_after, int *removed)
{
	struct pg_store *s = store->data;
	char redacted[LOG_REDACT_SIZE];
	struct pg_context ctx = { "device_remove_token", "token", NULL };
	const char *name = sqlite_platform_name(platform);
	struct pg_params params;
	char *device_id = NULL;
	PGresult *res;
	int error;

	if (name == NULL || token == NULL)
		return STORE_EINVAL;
	ctx.value = log_redact(token, redacted);
	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	pg_params_init(&params);
	pg_param_text(&params, name);
	pg_param_text(&params, token);
	pg_param_int(&params, unless_updated_after);
	if ((error = pg_run(s, &ctx, PG_PART_DEVICES, STMT_DEVICE_REMOVE_TOKEN, &params,
	    &res)) == STORE_OK) {
		/* (platform, token) is unique: at most one row comes back. */
		if (PQntuples(res) > 0)
			device_id = pg_strdup(res, 0, 0);
		PQclear(res);
	}
	pg_params_clear(&params);
	if ((error = pg_tx_end(s, &ctx, error)) == STORE_OK) {
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
pg_targets_add(struct store *store, enum store_targets by, const char *id,
    struct target_list *out)
{
	static const enum devices_stmt_id stmts[] = {
		[STORE_TARGETS_DEVICE] = STMT_TARGETS_DEVICE,
		[STORE_TARGETS_CLIENT] = STMT_TARGETS_CLIENT,
		[STORE_TARGETS_ROOM] = STMT_TARGETS_ROOM,
	};
	struct pg_store *s = store->data;
	struct pg_context ctx = { "targets_add", "id", id };
	int error, rows, platform, environment;
	PGresult *res;

	if ((error = run_text(s, &ctx, stmts[by], id, &res)) != STORE_OK)
		return error;
	rows = PQntuples(res);
	for (int r = 0; r < rows; r++) {
		const char *text[6];
		for (int c = 0; c < 6; c++) {
			if ((text[c] = pg_text(res, r, c)) == NULL) {
				error = pg_bad_row(s, &ctx, "device");
				goto out;
			}
		}
		platform = sqlite_platform_from_name(text[2]);
		environment = sqlite_environment_from_name(text[5]);
		if (platform < 0 || environment < 0) {
			error = pg_bad_row(s, &ctx, platform < 0 ? "platform" : "environment");
			goto out;
		}
		model_target_list_add(out, model_target_new(text[0], text[1], text[3], text[4],
		    (enum device_platform)platform, (enum device_environment)environment,
		    pg_int(res, r, 6), pg_int(res, r, 7)));
	}
out:
	PQclear(res);
	return error;
}

/* Set last_success_at on many devices in one statement; absent ones are skipped. */
static int
pg_devices_mark_success(struct store *store, const char *const *device_ids, size_t count,
    int64_t at)
{
	struct pg_context ctx = { "devices_mark_success", NULL, NULL };
	struct pg_params params;
	int error;

	if (count == 0)
		return STORE_OK;
	pg_params_init(&params);
	pg_param_text_array(&params, device_ids, count, sizeof *device_ids);
	pg_param_int(&params, at);
	error = write_one(store->data, &ctx, STMT_DEVICES_MARK_SUCCESS, &params, 0, NULL);
	pg_params_clear(&params);
	return error;
}

const struct store_registry_ops pg_registry_ops = {
	.device_put = pg_device_put,
	.device_get = pg_device_get,
	.device_delete = pg_device_delete,
	.client_devices_list = pg_client_devices_list,
	.client_devices_delete = pg_client_devices_delete,
	.device_count = pg_device_count,
	.device_mark_success = pg_device_mark_success,
	.device_mark_error = pg_device_mark_error,
	.device_remove_token = pg_device_remove_token,
	.device_set_environment = pg_device_set_environment,
	.targets_add = pg_targets_add,
	.devices_mark_success = pg_devices_mark_success,
	.member_put = pg_member_put,
	.member_get = pg_member_get,
	.member_delete = pg_member_delete,
	.room_members_list = pg_room_members_list,
	.member_prefs_put = pg_member_prefs_put,
	.room_route = pg_room_route,
};
