/*
 * The registry's rooms in PostgreSQL (store_registry.h): memberships with their
 * preferences, and a room's route read in one snapshot: its members, their devices,
 * and the devices a message notified (the marks' table, which pg_marks.c writes).
 * The registry's devices are in pg_devices.c. The same rules as sqlite_rooms.c.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_internal.h"
#include "store_registry.h"
#include "xmalloc.h"

/* This file's statements: the index of each in PG_PART_ROOMS. */
enum rooms_stmt_id {
	STMT_MEMBER_GET,
	STMT_MEMBER_INSERT,
	STMT_MEMBER_DELETE,
	STMT_ROOM_MEMBERS_LIST,
	STMT_MEMBER_PREFS_PUT,
	STMT_ROUTE_MEMBERS,
	STMT_ROUTE_NOTIFIED,
	STMT_COUNT
};

/* The column order member_from_row reads. */
#define MEMBER_COLUMNS "room_id, client_id, joined_at, muted_until, mentions_only"

static const char *const rooms_sql[STMT_COUNT] = {
	[STMT_MEMBER_GET] =
	    "SELECT " MEMBER_COLUMNS " FROM memberships WHERE room_id = $1 AND client_id = $2",
	/*
	 * A new row comes back (inserted: true); an existing one is kept as it is and
	 * read back instead, in one statement either way.
	 */
	[STMT_MEMBER_INSERT] =
	    "WITH added AS (INSERT INTO memberships (room_id, client_id, joined_at)"
	    " VALUES ($1, $2, $3) ON CONFLICT (room_id, client_id) DO NOTHING"
	    " RETURNING " MEMBER_COLUMNS ")"
	    " SELECT " MEMBER_COLUMNS ", true FROM added UNION ALL"
	    " SELECT " MEMBER_COLUMNS ", false FROM memberships"
	    " WHERE room_id = $1 AND client_id = $2 AND NOT EXISTS (SELECT 1 FROM added)",
	[STMT_MEMBER_DELETE] = "DELETE FROM memberships WHERE room_id = $1 AND client_id = $2",
	[STMT_ROOM_MEMBERS_LIST] =
	    "SELECT " MEMBER_COLUMNS " FROM memberships WHERE room_id = $1 AND client_id > $2"
	    " ORDER BY client_id LIMIT $3",
	[STMT_MEMBER_PREFS_PUT] =
	    "UPDATE memberships SET muted_until = $3, mentions_only = $4"
	    " WHERE room_id = $1 AND client_id = $2 RETURNING " MEMBER_COLUMNS,
	[STMT_ROUTE_MEMBERS] =
	    "SELECT m.client_id, m.muted_until, m.mentions_only, " PG_TARGET_COLUMNS
	    " FROM memberships m LEFT JOIN devices d ON d.client_id = m.client_id"
	    " WHERE m.room_id = $1 ORDER BY m.client_id, d.device_id",
	[STMT_ROUTE_NOTIFIED] =
	    "SELECT DISTINCT device_id FROM notified"
	    " WHERE message_key = $3 AND room_id = $1 AND message_id = $2",
};

const struct pg_statements pg_rooms_statements = { rooms_sql, STMT_COUNT };

/* Free a membership's strings. */
static void
member_clear(struct member *member)
{
	free(member->room_id);
	free(member->client_id);
	memset(member, 0, sizeof *member);
}

/* Fill a member from a row of MEMBER_COLUMNS; STORE_EIO (logged) if it is invalid. */
static int
member_from_row(struct pg_store *s, const struct pg_context *ctx, const PGresult *res,
    int row, struct member *out)
{
	memset(out, 0, sizeof *out);
	out->room_id = pg_strdup(res, row, 0);
	out->client_id = pg_strdup(res, row, 1);
	out->joined_at = pg_int(res, row, 2);
	out->muted_until = pg_int(res, row, 3);
	out->mentions_only = pg_int(res, row, 4) != 0;
	if (out->room_id == NULL || out->client_id == NULL) {
		member_clear(out);
		return pg_bad_row(s, ctx, out->room_id == NULL ? "room_id" : "client_id");
	}
	return STORE_OK;
}

/* The parameters room_id, client_id. */
static void
params_member(struct pg_params *params, const char *room_id, const char *client_id)
{
	pg_params_init(params);
	pg_param_text(params, room_id);
	pg_param_text(params, client_id);
}

/* Add a member with joined_at = now, or keep the existing membership unchanged. */
int
pg_member_put(struct store *store, const char *room_id, const char *client_id, int64_t now,
    enum store_put_result *result, struct member *stored)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "member_put", "room_id", room_id };
	struct pg_params params;
	struct member row;
	PGresult *res = NULL;
	int error, created = 0;

	if (room_id == NULL || client_id == NULL)
		return STORE_EINVAL;
	memset(&row, 0, sizeof row);
	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	params_member(&params, room_id, client_id);
	pg_param_int(&params, now);
	error = pg_run(s, &ctx, PG_PART_ROOMS, STMT_MEMBER_INSERT, &params, &res);
	pg_params_clear(&params);
	if (error == STORE_OK && PQntuples(res) == 1) {
		created = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
		if (stored != NULL)
			error = member_from_row(s, &ctx, res, 0, &row);
	} else if (error == STORE_OK) {
		/*
		 * Another instance's join committed while this one waited for it: the
		 * statement's snapshot predates that row, a new statement sees it.
		 */
		error = pg_member_get(store, room_id, client_id, &row);
		if (error == STORE_ENOTFOUND)
			error = pg_bad_row(s, &ctx, "client_id");
		if (stored == NULL)
			member_clear(&row);
	}
	PQclear(res);
	if ((error = pg_tx_end(s, &ctx, error)) != STORE_OK) {
		member_clear(&row);
		return error;
	}
	if (result != NULL)
		*result = created ? STORE_PUT_CREATED : STORE_PUT_UPDATED;
	if (stored != NULL)
		*stored = row;
	return STORE_OK;
}

/* Read one membership; STORE_ENOTFOUND if the client is not in the room. */
int
pg_member_get(struct store *store, const char *room_id, const char *client_id,
    struct member *out)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "member_get", "room_id", room_id };
	struct pg_params params;
	PGresult *res;
	int error;

	memset(out, 0, sizeof *out);
	params_member(&params, room_id, client_id);
	error = pg_run(s, &ctx, PG_PART_ROOMS, STMT_MEMBER_GET, &params, &res);
	pg_params_clear(&params);
	if (error != STORE_OK)
		return error;
	error = PQntuples(res) == 0 ? STORE_ENOTFOUND : member_from_row(s, &ctx, res, 0, out);
	PQclear(res);
	return error;
}

/* Remove a member; STORE_ENOTFOUND if the client is not in the room. */
int
pg_member_delete(struct store *store, const char *room_id, const char *client_id)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "member_delete", "room_id", room_id };
	struct pg_params params;
	size_t changed = 0;
	int error;

	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	params_member(&params, room_id, client_id);
	error = pg_run_command(s, &ctx, PG_PART_ROOMS, STMT_MEMBER_DELETE, &params, &changed);
	pg_params_clear(&params);
	if (error == STORE_OK && changed == 0)
		error = STORE_ENOTFOUND;
	return pg_tx_end(s, &ctx, error);
}

/*
 * One page of a room's members by client_id (keyset pagination): up to limit members
 * whose client_id sorts after after_client_id (NULL: from the start).
 */
int
pg_room_members_list(struct store *store, const char *room_id, const char *after_client_id,
    size_t limit, struct member_list *out)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "room_members_list", "room_id", room_id };
	struct pg_params params;
	PGresult *res;
	int error, rows;

	out->items = NULL;
	out->count = 0;
	/* Ids are never empty, so "" sorts before every one of them. */
	params_member(&params, room_id, after_client_id == NULL ? "" : after_client_id);
	pg_param_int(&params, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	error = pg_run(s, &ctx, PG_PART_ROOMS, STMT_ROOM_MEMBERS_LIST, &params, &res);
	pg_params_clear(&params);
	if (error != STORE_OK)
		return error;
	rows = PQntuples(res);
	if (rows > 0)
		out->items = xcalloc((size_t)rows, sizeof *out->items);
	for (int i = 0; i < rows && error == STORE_OK; i++) {
		if ((error = member_from_row(s, &ctx, res, i, &out->items[out->count])) ==
		    STORE_OK)
			out->count++;
	}
	PQclear(res);
	if (error != STORE_OK) {
		for (size_t i = 0; i < out->count; i++)
			member_clear(&out->items[i]);
		free(out->items);
		out->items = NULL;
		out->count = 0;
	}
	return error;
}

/* Set a member's preferences; STORE_ENOTFOUND if the client is not in the room. */
int
pg_member_prefs_put(struct store *store, const char *room_id, const char *client_id,
    int64_t muted_until, int mentions_only, struct member *stored)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "member_prefs_put", "room_id", room_id };
	struct pg_params params;
	struct member row;
	PGresult *res = NULL;
	int error;

	memset(&row, 0, sizeof row);
	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	params_member(&params, room_id, client_id);
	pg_param_int(&params, muted_until);
	pg_param_int(&params, mentions_only != 0);
	error = pg_run(s, &ctx, PG_PART_ROOMS, STMT_MEMBER_PREFS_PUT, &params, &res);
	pg_params_clear(&params);
	if (error == STORE_OK) {
		if (PQntuples(res) == 0)
			error = STORE_ENOTFOUND;
		else if (stored != NULL)
			error = member_from_row(s, &ctx, res, 0, &row);
	}
	PQclear(res);
	if ((error = pg_tx_end(s, &ctx, error)) != STORE_OK) {
		member_clear(&row);
		return error;
	}
	if (stored != NULL)
		*stored = row;
	return STORE_OK;
}

/* Add the rows of STMT_ROUTE_MEMBERS to a route: a member per client, its devices. */
static int
route_members_fill(struct pg_store *s, const struct pg_context *ctx, const PGresult *res,
    struct room_route *out)
{
	size_t capacity = 0;
	int rows = PQntuples(res), platform, environment;

	for (int r = 0; r < rows; r++) {
		const char *client = pg_text(res, r, 0);
		struct room_member_route *m = out->member_count > 0 ?
		    &out->members[out->member_count - 1] : NULL;
		const char *text[6];

		if (client == NULL)
			return pg_bad_row(s, ctx, "client_id");
		if (m == NULL || strcmp(m->client_id, client) != 0) {
			if (out->member_count == capacity) {
				capacity = capacity == 0 ? 16 : capacity * 2;
				out->members = xreallocarray(out->members, capacity,
				    sizeof *out->members);
			}
			m = &out->members[out->member_count++];
			memset(m, 0, sizeof *m);
			m->client_id = xstrdup(client);
			m->muted_until = pg_int(res, r, 1);
			m->mentions_only = pg_int(res, r, 2) != 0;
		}
		if (PQgetisnull(res, r, 3))
			continue;	/* a member without devices */
		for (int c = 0; c < 6; c++) {
			if ((text[c] = pg_text(res, r, 3 + c)) == NULL)
				return pg_bad_row(s, ctx, "device");
		}
		platform = sqlite_platform_from_name(text[2]);
		environment = sqlite_environment_from_name(text[5]);
		if (platform < 0 || environment < 0)
			return pg_bad_row(s, ctx, platform < 0 ? "platform" : "environment");
		m->targets = xreallocarray(m->targets, m->target_count + 1, sizeof *m->targets);
		m->targets[m->target_count++] = model_target_new(text[0], text[1], text[3],
		    text[4], (enum device_platform)platform, (enum device_environment)environment,
		    pg_int(res, r, 9), pg_int(res, r, 10));
	}
	return STORE_OK;
}

/* Read a room's members with their devices, and the devices a message notified. */
int
pg_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "room_route", "room_id", room_id };
	struct pg_params params;
	PGresult *res = NULL;
	int error, rows;

	memset(out, 0, sizeof *out);
	/* One read transaction (a batch's, in one): members, devices, marks, one snapshot. */
	if ((error = pg_read_begin(s, &ctx)) != STORE_OK)
		return error;
	pg_params_init(&params);
	pg_param_text(&params, room_id);
	error = pg_run(s, &ctx, PG_PART_ROOMS, STMT_ROUTE_MEMBERS, &params, &res);
	pg_params_clear(&params);
	if (error == STORE_OK)
		error = route_members_fill(s, &ctx, res, out);
	PQclear(res);
	res = NULL;
	if (error != STORE_OK)
		goto out;
	pg_param_text(&params, room_id);
	pg_param_text(&params, message_id);
	pg_param_int(&params, sqlite_message_key(room_id, message_id));
	error = pg_run(s, &ctx, PG_PART_ROOMS, STMT_ROUTE_NOTIFIED, &params, &res);
	pg_params_clear(&params);
	if (error != STORE_OK)
		goto out;
	rows = PQntuples(res);
	if (rows > 0)
		out->notified = xcalloc((size_t)rows, sizeof *out->notified);
	for (int r = 0; r < rows; r++)
		out->notified[out->notified_count++] = pg_strdup(res, r, 0);
	PQclear(res);
out:
	if ((error = pg_read_end(s, &ctx, error)) != STORE_OK)
		store_room_route_free(out);
	return error;
}
