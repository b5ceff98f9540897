/*
 * The router's marks in SQLite (store_marks.h): notified devices, appended in time
 * order and found by a hash of room and message (sqlite_message_key), and unread
 * counts by client and room.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sqlite_internal.h"
#include "store_marks.h"

/* This file's statements: the index of each in stmts[SQLITE_PART_MARKS]. */
enum marks_stmt_id {
	STMT_NOTIFIED_ADD,
	STMT_NOTIFIED_EXPIRE,
	STMT_UNREAD_PUT,
	STMT_UNREAD_DELETE,
	STMT_UNREAD_LOAD,
	STMT_COUNT
};

static const char *const marks_sql[STMT_COUNT] = {
	[STMT_NOTIFIED_ADD] =
	    "INSERT INTO notified (message_key, room_id, message_id, device_id, at)"
	    " VALUES (?5, ?1, ?2, ?3, ?4)",
	/*
	 * Rows come in time order: everything before the first one still in the window
	 * goes (if the clock stepped back, some rows stay a little longer).
	 */
	[STMT_NOTIFIED_EXPIRE] =
	    "DELETE FROM notified WHERE id < coalesce("
	    "(SELECT id FROM notified WHERE at >= ?1 ORDER BY id LIMIT 1),"
	    "(SELECT max(id) + 1 FROM notified), 0)",
	[STMT_UNREAD_PUT] =
	    "INSERT INTO unread (client_id, room_id, count) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (client_id, room_id) DO UPDATE SET count = excluded.count",
	[STMT_UNREAD_DELETE] = "DELETE FROM unread WHERE client_id = ?1 AND room_id = ?2",
	[STMT_UNREAD_LOAD] = "SELECT client_id, room_id, count FROM unread",
};

const struct sqlite_statements sqlite_marks_statements = { marks_sql, STMT_COUNT };

/* One of this file's prepared statements. */
static sqlite3_stmt *
marks_stmt(struct sqlite_store *s, enum marks_stmt_id id)
{
	return s->stmts[SQLITE_PART_MARKS][id];
}

/* Remember notified devices, in one transaction. */
static int
sqlite_notified_add(struct store *store, const struct notified_mark *marks, size_t count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "notified_add", NULL, NULL };
	sqlite3_stmt *stmt = marks_stmt(s, STMT_NOTIFIED_ADD);
	int error;

	if (count == 0)
		return STORE_OK;
	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		if (bind_text(stmt, 1, marks[i].room_id) != SQLITE_OK ||
		    bind_text(stmt, 2, marks[i].message_id) != SQLITE_OK ||
		    bind_text(stmt, 3, marks[i].device_id) != SQLITE_OK ||
		    bind_int64(stmt, 4, marks[i].at) != SQLITE_OK ||
		    bind_int64(stmt, 5, sqlite_message_key(marks[i].room_id,
		    marks[i].message_id)) != SQLITE_OK ||
		    sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return sqlite_tx_end(s, &ctx, error);
}

/* Forget notified devices older than a time. */
static int
sqlite_notified_expire(struct store *store, int64_t before)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "notified_expire", NULL, NULL };
	sqlite3_stmt *stmt = marks_stmt(s, STMT_NOTIFIED_EXPIRE);
	int error;

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_int64(stmt, 1, before) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	return sqlite_tx_end(s, &ctx, error);
}

/* Set unread counts in one transaction; a zero count deletes the row. */
static int
sqlite_unread_put(struct store *store, const struct unread_count *counts, size_t count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "unread_put", NULL, NULL };
	int error;

	if (count == 0)
		return STORE_OK;
	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		sqlite3_stmt *stmt = marks_stmt(s, counts[i].count > 0 ? STMT_UNREAD_PUT :
		    STMT_UNREAD_DELETE);
		if (bind_text(stmt, 1, counts[i].client_id) != SQLITE_OK ||
		    bind_text(stmt, 2, counts[i].room_id) != SQLITE_OK ||
		    (counts[i].count > 0 && bind_int64(stmt, 3, counts[i].count) != SQLITE_OK) ||
		    sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return sqlite_tx_end(s, &ctx, error);
}

/* Fill an unread count from a row of STMT_UNREAD_LOAD. */
static void
unread_fill(sqlite3_stmt *stmt, void *elem)
{
	struct unread_count *u = elem;

	u->client_id = sqlite_column_strdup(stmt, 0);
	u->room_id = sqlite_column_strdup(stmt, 1);
	u->count = sqlite3_column_int64(stmt, 2);
}

/* Load every unread count. */
static int
sqlite_unread_load(struct store *store, struct unread_count **out, size_t *count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "unread_load", NULL, NULL };
	int error = sqlite_rows_load(s, &ctx, marks_stmt(s, STMT_UNREAD_LOAD), (void **)out,
	    count, sizeof **out, unread_fill);

	if (error != STORE_OK) {
		store_unread_free(*out, *count);
		*out = NULL;
		*count = 0;
	}
	return error;
}

const struct store_marks_ops sqlite_marks_ops = {
	.notified_add = sqlite_notified_add,
	.notified_expire = sqlite_notified_expire,
	.unread_put = sqlite_unread_put,
	.unread_load = sqlite_unread_load,
};
