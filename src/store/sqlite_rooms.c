/*
 * The registry's rooms in SQLite (store_registry.h): memberships with their
 * preferences, and a room's route read in one snapshot: its members, their devices,
 * and the devices a message notified (the marks' table, which sqlite_marks.c
 * writes). The registry's devices are in sqlite_devices.c.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sqlite_internal.h"
#include "store_registry.h"
#include "xmalloc.h"

/* This file's statements: the index of each in stmts[SQLITE_PART_ROOMS]. */
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
	    "SELECT " MEMBER_COLUMNS " FROM memberships WHERE room_id = ?1 AND client_id = ?2",
	[STMT_MEMBER_INSERT] =
	    "INSERT INTO memberships (room_id, client_id, joined_at) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (room_id, client_id) DO NOTHING",
	[STMT_MEMBER_DELETE] = "DELETE FROM memberships WHERE room_id = ?1 AND client_id = ?2",
	[STMT_ROOM_MEMBERS_LIST] =
	    "SELECT " MEMBER_COLUMNS " FROM memberships WHERE room_id = ?1 AND client_id > ?2"
	    " ORDER BY client_id LIMIT ?3",
	[STMT_MEMBER_PREFS_PUT] =
	    "UPDATE memberships SET muted_until = ?3, mentions_only = ?4"
	    " WHERE room_id = ?1 AND client_id = ?2",
	[STMT_ROUTE_MEMBERS] =
	    "SELECT m.client_id, m.muted_until, m.mentions_only, " TARGET_COLUMNS
	    " FROM memberships m LEFT JOIN devices d ON d.client_id = m.client_id"
	    " WHERE m.room_id = ?1 ORDER BY m.client_id, d.device_id",
	[STMT_ROUTE_NOTIFIED] =
	    "SELECT DISTINCT device_id FROM notified"
	    " WHERE message_key = ?3 AND room_id = ?1 AND message_id = ?2",
};

const struct sqlite_statements sqlite_rooms_statements = { rooms_sql, STMT_COUNT };

/* One of this file's prepared statements. */
static sqlite3_stmt *
rooms_stmt(struct sqlite_store *s, enum rooms_stmt_id id)
{
	return s->stmts[SQLITE_PART_ROOMS][id];
}

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
member_from_row(struct sqlite_store *s, const struct sqlite_context *ctx, sqlite3_stmt *stmt,
    struct member *out)
{
	memset(out, 0, sizeof *out);
	out->room_id = sqlite_column_strdup(stmt, 0);
	out->client_id = sqlite_column_strdup(stmt, 1);
	out->joined_at = sqlite3_column_int64(stmt, 2);
	out->muted_until = sqlite3_column_int64(stmt, 3);
	out->mentions_only = sqlite3_column_int(stmt, 4) != 0;
	if (out->room_id == NULL || out->client_id == NULL) {
		member_clear(out);
		return sqlite_bad_row(s, ctx, out->room_id == NULL ? "room_id" : "client_id");
	}
	return STORE_OK;
}

/* Read one membership into out. */
static int
member_read(struct sqlite_store *s, const struct sqlite_context *ctx, const char *room_id,
    const char *client_id, struct member *out)
{
	sqlite3_stmt *stmt = rooms_stmt(s, STMT_MEMBER_GET);
	int error, rc;

	memset(out, 0, sizeof *out);
	if (bind_text(stmt, 1, room_id) != SQLITE_OK || bind_text(stmt, 2, client_id) != SQLITE_OK)
		error = sqlite_fail(s, ctx);
	else if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		error = member_from_row(s, ctx, stmt, out);
	else if (rc == SQLITE_DONE)
		error = STORE_ENOTFOUND;
	else
		error = sqlite_fail(s, ctx);
	stmt_done(stmt);
	return error;
}

/* Add a member with joined_at = now, or keep the existing membership unchanged. */
int
sqlite_member_put(struct store *store, const char *room_id, const char *client_id,
    int64_t now, enum store_put_result *result, struct member *stored)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "member_put", "room_id", room_id };
	sqlite3_stmt *stmt = rooms_stmt(s, STMT_MEMBER_INSERT);
	struct member row;
	int error, created = 0;

	if (room_id == NULL || client_id == NULL)
		return STORE_EINVAL;
	memset(&row, 0, sizeof row);
	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, room_id) != SQLITE_OK ||
	    bind_text(stmt, 2, client_id) != SQLITE_OK || bind_int64(stmt, 3, now) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else
		created = sqlite3_changes(s->db) != 0;
	stmt_done(stmt);
	if (error == STORE_OK && stored != NULL &&
	    (error = member_read(s, &ctx, room_id, client_id, &row)) == STORE_ENOTFOUND)
		error = sqlite_bad_row(s, &ctx, "client_id");
	if ((error = sqlite_tx_end(s, &ctx, error)) != STORE_OK) {
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
sqlite_member_get(struct store *store, const char *room_id, const char *client_id,
    struct member *out)
{
	struct sqlite_context ctx = { "member_get", "room_id", room_id };

	return member_read(store->data, &ctx, room_id, client_id, out);
}

/* Remove a member; STORE_ENOTFOUND if the client is not in the room. */
int
sqlite_member_delete(struct store *store, const char *room_id, const char *client_id)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "member_delete", "room_id", room_id };
	sqlite3_stmt *stmt = rooms_stmt(s, STMT_MEMBER_DELETE);
	int error;

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, room_id) != SQLITE_OK ||
	    bind_text(stmt, 2, client_id) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	return sqlite_tx_end(s, &ctx, error);
}

/*
 * One page of a room's members by client_id (keyset pagination): up to limit members
 * whose client_id sorts after after_client_id (NULL: from the start).
 */
int
sqlite_room_members_list(struct store *store, const char *room_id,
    const char *after_client_id, size_t limit, struct member_list *out)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "room_members_list", "room_id", room_id };
	sqlite3_stmt *stmt = rooms_stmt(s, STMT_ROOM_MEMBERS_LIST);
	size_t capacity = 0;
	int error = STORE_OK, rc;

	out->items = NULL;
	out->count = 0;
	/* Ids are never empty, so "" sorts before every one of them. */
	if (bind_text(stmt, 1, room_id) != SQLITE_OK ||
	    bind_text(stmt, 2, after_client_id == NULL ? "" : after_client_id) != SQLITE_OK ||
	    bind_int64(stmt, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit) != SQLITE_OK) {
		error = sqlite_fail(s, &ctx);
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (out->count == capacity) {
			capacity = capacity == 0 ? 8 : capacity * 2;
			out->items = xreallocarray(out->items, capacity, sizeof *out->items);
		}
		if ((error = member_from_row(s, &ctx, stmt, &out->items[out->count])) != 0)
			goto out;
		out->count++;
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
out:
	stmt_done(stmt);
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
sqlite_member_prefs_put(struct store *store, const char *room_id, const char *client_id,
    int64_t muted_until, int mentions_only, struct member *stored)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "member_prefs_put", "room_id", room_id };
	sqlite3_stmt *stmt = rooms_stmt(s, STMT_MEMBER_PREFS_PUT);
	struct member row;
	int error;

	memset(&row, 0, sizeof row);
	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, room_id) != SQLITE_OK ||
	    bind_text(stmt, 2, client_id) != SQLITE_OK ||
	    bind_int64(stmt, 3, muted_until) != SQLITE_OK ||
	    bind_int64(stmt, 4, mentions_only != 0) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	if (error == STORE_OK && stored != NULL &&
	    (error = member_read(s, &ctx, room_id, client_id, &row)) == STORE_ENOTFOUND)
		error = sqlite_bad_row(s, &ctx, "client_id");
	if ((error = sqlite_tx_end(s, &ctx, error)) != STORE_OK) {
		member_clear(&row);
		return error;
	}
	if (stored != NULL)
		*stored = row;
	return STORE_OK;
}

/* Read a room's members with their devices, and the devices a message notified. */
int
sqlite_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "room_route", "room_id", room_id };
	sqlite3_stmt *stmt = rooms_stmt(s, STMT_ROUTE_MEMBERS);
	size_t capacity = 0, ncap = 0;
	int error = STORE_OK, rc, platform, environment;

	memset(out, 0, sizeof *out);
	/* One read transaction (a batch's, in one): members, devices, marks, one snapshot. */
	if ((error = sqlite_read_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, room_id) != SQLITE_OK) {
		error = sqlite_fail(s, &ctx);
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *client = (const char *)sqlite3_column_text(stmt, 0);
		struct room_member_route *m = out->member_count > 0 ?
		    &out->members[out->member_count - 1] : NULL;
		const char *text[6];

		if (client == NULL) {
			error = sqlite_bad_row(s, &ctx, "client_id");
			goto out;
		}
		if (m == NULL || strcmp(m->client_id, client) != 0) {
			if (out->member_count == capacity) {
				capacity = capacity == 0 ? 16 : capacity * 2;
				out->members = xreallocarray(out->members, capacity,
				    sizeof *out->members);
			}
			m = &out->members[out->member_count++];
			memset(m, 0, sizeof *m);
			m->client_id = xstrdup(client);
			m->muted_until = sqlite3_column_int64(stmt, 1);
			m->mentions_only = sqlite3_column_int(stmt, 2) != 0;
		}
		if (sqlite3_column_type(stmt, 3) == SQLITE_NULL)
			continue;	/* a member without devices */
		for (int c = 0; c < 6; c++) {
			if ((text[c] = (const char *)sqlite3_column_text(stmt, 3 + c)) == NULL) {
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
		m->targets = xreallocarray(m->targets, m->target_count + 1, sizeof *m->targets);
		m->targets[m->target_count++] = model_target_new(text[0], text[1], text[3],
		    text[4], (enum device_platform)platform, (enum device_environment)environment,
		    sqlite3_column_int64(stmt, 9), sqlite3_column_int64(stmt, 10));
	}
	if (rc != SQLITE_DONE) {
		error = sqlite_fail(s, &ctx);
		goto out;
	}
	stmt_done(stmt);
	stmt = rooms_stmt(s, STMT_ROUTE_NOTIFIED);
	if (bind_text(stmt, 1, room_id) != SQLITE_OK ||
	    bind_text(stmt, 2, message_id) != SQLITE_OK ||
	    bind_int64(stmt, 3, sqlite_message_key(room_id, message_id)) != SQLITE_OK) {
		error = sqlite_fail(s, &ctx);
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (out->notified_count == ncap) {
			ncap = ncap == 0 ? 16 : ncap * 2;
			out->notified = xreallocarray(out->notified, ncap, sizeof *out->notified);
		}
		out->notified[out->notified_count++] = sqlite_column_strdup(stmt, 0);
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
out:
	stmt_done(stmt);
	if ((error = sqlite_read_end(s, &ctx, error)) != STORE_OK)
		store_room_route_free(out);
	return error;
}
