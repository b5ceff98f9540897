/*
 * The push ledger in SQLite (store_ledger.h): a row per push, and a row per device of
 * it that goes with it (ON DELETE CASCADE).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sqlite_internal.h"
#include "store_ledger.h"
#include "xmalloc.h"

/* This file's statements: the index of each in stmts[SQLITE_PART_LEDGER]. */
enum ledger_stmt_id {
	STMT_PUSH_INSERT,
	STMT_PUSH_ROW_INSERT,
	STMT_PUSH_ROW_UPDATE,
	STMT_PUSH_FINISH,
	STMT_PUSH_GET,
	STMT_PUSH_ROWS,
	STMT_PUSHES_UNFINISHED,
	STMT_PUSHES_EXPIRE,
	STMT_COUNT
};

static const char *const ledger_sql[STMT_COUNT] = {
	[STMT_PUSH_INSERT] =
	    "INSERT INTO pushes (push_id, created_at, content, badge_per_recipient)"
	    " VALUES (?1, ?2, ?3, ?4)",
	[STMT_PUSH_ROW_INSERT] =
	    "INSERT INTO push_devices (push_id, idx, device_id, client_id, platform, app_id,"
	    " badge, state, reason, attempts, updated_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[STMT_PUSH_ROW_UPDATE] =
	    "UPDATE push_devices SET state = ?3, reason = ?4, attempts = ?5, updated_at = ?6"
	    " WHERE push_id = ?1 AND idx BETWEEN ?2 AND ?7",
	[STMT_PUSH_FINISH] = "UPDATE pushes SET finished_at = ?2 WHERE push_id = ?1",
	[STMT_PUSH_GET] =
	    "SELECT push_id, created_at, content, badge_per_recipient, finished_at"
	    " FROM pushes WHERE push_id = ?1",
	[STMT_PUSH_ROWS] =
	    "SELECT device_id, client_id, platform, app_id, badge, state, reason, attempts,"
	    " updated_at FROM push_devices WHERE push_id = ?1 ORDER BY idx",
	[STMT_PUSHES_UNFINISHED] =
	    "SELECT push_id FROM pushes WHERE finished_at = 0 ORDER BY created_at",
	[STMT_PUSHES_EXPIRE] =
	    "DELETE FROM pushes WHERE finished_at != 0 AND finished_at < ?1",
};

const struct sqlite_statements sqlite_ledger_statements = { ledger_sql, STMT_COUNT };

/* One of this file's prepared statements. */
static sqlite3_stmt *
ledger_stmt(struct sqlite_store *s, enum ledger_stmt_id id)
{
	return s->stmts[SQLITE_PART_LEDGER][id];
}

/* Insert a push and its rows in one transaction. */
static int
sqlite_push_insert(struct store *store, const struct push_record *record)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "push_insert", "push_id", record->push_id };
	sqlite3_stmt *stmt = ledger_stmt(s, STMT_PUSH_INSERT);
	int error;

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, record->push_id) != SQLITE_OK ||
	    bind_int64(stmt, 2, record->created_at) != SQLITE_OK ||
	    bind_text(stmt, 3, record->content) != SQLITE_OK ||
	    bind_int64(stmt, 4, record->badge_per_recipient != 0) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	stmt = ledger_stmt(s, STMT_PUSH_ROW_INSERT);
	for (size_t i = 0; i < record->count && error == STORE_OK; i++) {
		const struct push_row *row = &record->rows[i];
		if (bind_text(stmt, 1, record->push_id) != SQLITE_OK ||
		    bind_int64(stmt, 2, (int64_t)i) != SQLITE_OK ||
		    bind_text(stmt, 3, row->device_id) != SQLITE_OK ||
		    bind_text(stmt, 4, row->client_id) != SQLITE_OK ||
		    bind_text(stmt, 5, sqlite_platform_name(row->platform)) != SQLITE_OK ||
		    bind_text(stmt, 6, row->app_id) != SQLITE_OK ||
		    bind_int64(stmt, 7, row->badge) != SQLITE_OK ||
		    bind_text(stmt, 8, row->state) != SQLITE_OK ||
		    bind_text(stmt, 9, row->reason) != SQLITE_OK ||
		    bind_int64(stmt, 10, row->attempts) != SQLITE_OK ||
		    bind_int64(stmt, 11, row->updated_at) != SQLITE_OK ||
		    sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return sqlite_tx_end(s, &ctx, error);
}

/* Apply row changes and finish pushes, in one transaction. */
static int
sqlite_push_update(struct store *store, const struct push_row_update *updates, size_t count,
    const struct push_finish *finished, size_t finished_count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "push_update", NULL, NULL };
	sqlite3_stmt *stmt = ledger_stmt(s, STMT_PUSH_ROW_UPDATE);
	int error;

	if (count == 0 && finished_count == 0)
		return STORE_OK;
	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		const struct push_row_update *u = &updates[i];
		if (bind_text(stmt, 1, u->push_id) != SQLITE_OK ||
		    bind_int64(stmt, 2, (int64_t)u->index) != SQLITE_OK ||
		    bind_text(stmt, 3, u->state) != SQLITE_OK ||
		    bind_text(stmt, 4, u->reason) != SQLITE_OK ||
		    bind_int64(stmt, 5, u->attempts) != SQLITE_OK ||
		    bind_int64(stmt, 6, u->updated_at) != SQLITE_OK ||
		    bind_int64(stmt, 7, (int64_t)u->index_last) != SQLITE_OK ||
		    sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	stmt = ledger_stmt(s, STMT_PUSH_FINISH);
	for (size_t i = 0; i < finished_count && error == STORE_OK; i++) {
		if (bind_text(stmt, 1, finished[i].push_id) != SQLITE_OK ||
		    bind_int64(stmt, 2, finished[i].finished_at) != SQLITE_OK ||
		    sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return sqlite_tx_end(s, &ctx, error);
}

/* Read a push's rows into the record. */
static int
push_rows_read(struct sqlite_store *s, const struct sqlite_context *ctx,
    struct push_record *out)
{
	sqlite3_stmt *stmt = ledger_stmt(s, STMT_PUSH_ROWS);
	size_t capacity = 0;
	int error = STORE_OK, rc, platform;

	if (bind_text(stmt, 1, out->push_id) != SQLITE_OK) {
		error = sqlite_fail(s, ctx);
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct push_row *row;
		if (out->count == capacity) {
			capacity = capacity == 0 ? 16 : capacity * 2;
			out->rows = xreallocarray(out->rows, capacity, sizeof *out->rows);
		}
		row = &out->rows[out->count];
		memset(row, 0, sizeof *row);
		platform = sqlite_platform_from_name(
		    (const char *)sqlite3_column_text(stmt, 2));
		if (platform < 0) {
			error = sqlite_bad_row(s, ctx, "platform");
			goto out;
		}
		row->device_id = sqlite_column_strdup(stmt, 0);
		row->client_id = sqlite_column_strdup(stmt, 1);
		row->platform = (enum device_platform)platform;
		row->app_id = sqlite_column_strdup(stmt, 3);
		row->badge = sqlite3_column_int64(stmt, 4);
		row->state = sqlite_column_strdup(stmt, 5);
		row->reason = sqlite_column_strdup(stmt, 6);
		row->attempts = sqlite3_column_int(stmt, 7);
		row->updated_at = sqlite3_column_int64(stmt, 8);
		out->count++;
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, ctx);
out:
	stmt_done(stmt);
	return error;
}

/* Read a push by id with its rows. */
static int
sqlite_push_get(struct store *store, const char *push_id, struct push_record *out)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "push_get", "push_id", push_id };
	sqlite3_stmt *stmt = ledger_stmt(s, STMT_PUSH_GET);
	int error, rc;

	memset(out, 0, sizeof *out);
	if (bind_text(stmt, 1, push_id) != SQLITE_OK)
		error = sqlite_fail(s, &ctx);
	else if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		out->push_id = sqlite_column_strdup(stmt, 0);
		out->created_at = sqlite3_column_int64(stmt, 1);
		out->content = sqlite_column_strdup(stmt, 2);
		out->badge_per_recipient = sqlite3_column_int(stmt, 3);
		out->finished_at = sqlite3_column_int64(stmt, 4);
		error = STORE_OK;
	} else if (rc == SQLITE_DONE)
		error = STORE_ENOTFOUND;
	else
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	if (error == STORE_OK)
		error = push_rows_read(s, &ctx, out);
	if (error != STORE_OK)
		store_push_record_free(out);
	return error;
}

/* Read every unfinished push, oldest first. */
static int
sqlite_pushes_unfinished(struct store *store, struct push_record **out, size_t *count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "pushes_unfinished", NULL, NULL };
	sqlite3_stmt *stmt = ledger_stmt(s, STMT_PUSHES_UNFINISHED);
	char **ids = NULL;
	size_t n = 0, capacity = 0;
	int error = STORE_OK, rc;

	*out = NULL;
	*count = 0;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (n == capacity) {
			capacity = capacity == 0 ? 16 : capacity * 2;
			ids = xreallocarray(ids, capacity, sizeof *ids);
		}
		ids[n++] = sqlite_column_strdup(stmt, 0);
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	if (error == STORE_OK && n > 0) {
		*out = xcalloc(n, sizeof **out);
		for (size_t i = 0; i < n && error == STORE_OK; i++) {
			if ((error = sqlite_push_get(store, ids[i], &(*out)[i])) == STORE_OK)
				(*count)++;
		}
		if (error != STORE_OK) {
			for (size_t i = 0; i < *count; i++)
				store_push_record_free(&(*out)[i]);
			free(*out);
			*out = NULL;
			*count = 0;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return error;
}

/* Delete pushes finished before a time (their rows go with them). */
static int
sqlite_pushes_expire(struct store *store, int64_t finished_before, size_t *deleted)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "pushes_expire", NULL, NULL };
	sqlite3_stmt *stmt = ledger_stmt(s, STMT_PUSHES_EXPIRE);
	int error;

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_int64(stmt, 1, finished_before) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (deleted != NULL)
		*deleted = (size_t)sqlite3_changes(s->db);
	stmt_done(stmt);
	return sqlite_tx_end(s, &ctx, error);
}

const struct store_ledger_ops sqlite_ledger_ops = {
	.push_insert = sqlite_push_insert,
	.push_update = sqlite_push_update,
	.push_get = sqlite_push_get,
	.pushes_unfinished = sqlite_pushes_unfinished,
	.pushes_expire = sqlite_pushes_expire,
};
