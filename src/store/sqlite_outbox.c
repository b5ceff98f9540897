/*
 * The events outbox in SQLite (store_outbox.h): one row per batch, with its kind.
 * The write probe (store_probe_write) adds and deletes a row here too.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sqlite_internal.h"
#include "store_outbox.h"

/* This file's statements: the index of each in stmts[SQLITE_PART_OUTBOX]. */
enum outbox_stmt_id {
	STMT_OUTBOX_ADD,
	STMT_OUTBOX_DELETE,
	STMT_OUTBOX_LOAD,
	STMT_COUNT
};

static const char *const outbox_sql[STMT_COUNT] = {
	[STMT_OUTBOX_ADD] = "INSERT INTO outbox (received_at, body, kind) VALUES (?1, ?2, ?3)",
	[STMT_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1",
	[STMT_OUTBOX_LOAD] = "SELECT id, received_at, body, kind FROM outbox ORDER BY id",
};

const struct sqlite_statements sqlite_outbox_statements = { outbox_sql, STMT_COUNT };

/* One of this file's prepared statements. */
static sqlite3_stmt *
outbox_stmt(struct sqlite_store *s, enum outbox_stmt_id id)
{
	return s->stmts[SQLITE_PART_OUTBOX][id];
}

/* An outbox kind as the kind column holds it. */
static const char *
outbox_kind_text(enum store_outbox_kind kind)
{
	return kind == STORE_OUTBOX_ABLY ? "ably" : "events";
}

/* Keep event batches in one transaction. */
static int
sqlite_outbox_add(struct store *store, const enum store_outbox_kind *kinds,
    const char *const *bodies, size_t count, int64_t at, int64_t *ids)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "outbox_add", NULL, NULL };
	sqlite3_stmt *stmt = outbox_stmt(s, STMT_OUTBOX_ADD);
	int error;

	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		if (bind_int64(stmt, 1, at) != SQLITE_OK || bind_text(stmt, 2, bodies[i]) !=
		    SQLITE_OK || bind_text(stmt, 3, outbox_kind_text(kinds[i])) != SQLITE_OK ||
		    sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		else
			ids[i] = sqlite3_last_insert_rowid(s->db);
		stmt_done(stmt);
	}
	return sqlite_tx_end(s, &ctx, error);
}

/* Drop handled event batches in one transaction. */
static int
sqlite_outbox_delete(struct store *store, const int64_t *ids, size_t count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "outbox_delete", NULL, NULL };
	sqlite3_stmt *stmt = outbox_stmt(s, STMT_OUTBOX_DELETE);
	int error;

	if (count == 0)
		return STORE_OK;
	if ((error = sqlite_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		if (bind_int64(stmt, 1, ids[i]) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return sqlite_tx_end(s, &ctx, error);
}

/* Fill an outbox entry from a row of STMT_OUTBOX_LOAD. */
static void
outbox_fill(sqlite3_stmt *stmt, void *elem)
{
	struct outbox_entry *e = elem;
	const char *kind = (const char *)sqlite3_column_text(stmt, 3);

	e->id = sqlite3_column_int64(stmt, 0);
	e->received_at = sqlite3_column_int64(stmt, 1);
	e->body = sqlite_column_strdup(stmt, 2);
	/* The column's CHECK admits nothing else. */
	e->kind = kind != NULL && strcmp(kind, "ably") == 0 ? STORE_OUTBOX_ABLY :
	    STORE_OUTBOX_EVENTS;
}

/* Read every kept event batch, oldest first. */
static int
sqlite_outbox_load(struct store *store, struct outbox_entry **out, size_t *count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "outbox_load", NULL, NULL };
	int error = sqlite_rows_load(s, &ctx, outbox_stmt(s, STMT_OUTBOX_LOAD), (void **)out,
	    count, sizeof **out, outbox_fill);

	if (error != STORE_OK) {
		store_outbox_free(*out, *count);
		*out = NULL;
		*count = 0;
	}
	return error;
}

/* Add an outbox row and delete it: what the write probe commits, in its transaction. */
int
sqlite_outbox_probe(struct sqlite_store *s, const struct sqlite_context *ctx)
{
	sqlite3_stmt *add = outbox_stmt(s, STMT_OUTBOX_ADD);
	sqlite3_stmt *del = outbox_stmt(s, STMT_OUTBOX_DELETE);
	int error = STORE_OK;

	if (bind_int64(add, 1, 0) != SQLITE_OK || bind_text(add, 2, "") != SQLITE_OK ||
	    bind_text(add, 3, "events") != SQLITE_OK || sqlite3_step(add) != SQLITE_DONE)
		error = sqlite_fail(s, ctx);
	stmt_done(add);
	if (error == STORE_OK) {
		if (bind_int64(del, 1, sqlite3_last_insert_rowid(s->db)) != SQLITE_OK ||
		    sqlite3_step(del) != SQLITE_DONE)
			error = sqlite_fail(s, ctx);
		stmt_done(del);
	}
	return error;
}

const struct store_outbox_ops sqlite_outbox_ops = {
	.outbox_add = sqlite_outbox_add,
	.outbox_delete = sqlite_outbox_delete,
	.outbox_load = sqlite_outbox_load,
};
