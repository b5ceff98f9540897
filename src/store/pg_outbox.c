/*
 * The events outbox in PostgreSQL (store_outbox.h): one row per batch, with its kind,
 * numbered by an identity column. The write probe (store_probe_write) adds and
 * deletes a row here too. The same rules as sqlite_outbox.c.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_internal.h"
#include "store_outbox.h"
#include "xmalloc.h"

/* This file's statements: the index of each in PG_PART_OUTBOX. */
enum outbox_stmt_id {
	STMT_OUTBOX_ADD,
	STMT_OUTBOX_DELETE,
	STMT_OUTBOX_LOAD,
	STMT_COUNT
};

static const char *const outbox_sql[STMT_COUNT] = {
	[STMT_OUTBOX_ADD] =
	    "INSERT INTO outbox (received_at, body, kind) VALUES ($1, $2, $3) RETURNING id",
	/* Many rows in one statement: the ids as one bigint[]. */
	[STMT_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ANY ($1::bigint[])",
	[STMT_OUTBOX_LOAD] = "SELECT id, received_at, body, kind FROM outbox ORDER BY id",
};

const struct pg_statements pg_outbox_statements = { outbox_sql, STMT_COUNT };

/* An outbox kind as the kind column holds it. */
static const char *
outbox_kind_text(enum store_outbox_kind kind)
{
	return kind == STORE_OUTBOX_ABLY ? "ably" : "events";
}

/* Add one row; its id in *id. */
static int
outbox_insert(struct pg_store *s, const struct pg_context *ctx, int64_t at, const char *body,
    enum store_outbox_kind kind, int64_t *id)
{
	struct pg_params params;
	PGresult *res;
	int error;

	pg_params_init(&params);
	pg_param_int(&params, at);
	pg_param_text(&params, body);
	pg_param_text(&params, outbox_kind_text(kind));
	error = pg_run(s, ctx, PG_PART_OUTBOX, STMT_OUTBOX_ADD, &params, &res);
	pg_params_clear(&params);
	if (error != STORE_OK)
		return error;
	*id = pg_int(res, 0, 0);
	PQclear(res);
	return STORE_OK;
}

/* Keep event batches in one transaction. */
static int
pg_outbox_add(struct store *store, const enum store_outbox_kind *kinds,
    const char *const *bodies, size_t count, int64_t at, int64_t *ids)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "outbox_add", NULL, NULL };
	int error;

	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++)
		error = outbox_insert(s, &ctx, at, bodies[i], kinds[i], &ids[i]);
	return pg_tx_end(s, &ctx, error);
}

/* Drop handled event batches in one transaction. */
static int
pg_outbox_delete(struct store *store, const int64_t *ids, size_t count)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "outbox_delete", NULL, NULL };
	struct pg_params params;
	int error;

	if (count == 0)
		return STORE_OK;
	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	pg_params_init(&params);
	pg_param_int_array(&params, ids, count, sizeof *ids);
	error = pg_run_command(s, &ctx, PG_PART_OUTBOX, STMT_OUTBOX_DELETE, &params, NULL);
	pg_params_clear(&params);
	return pg_tx_end(s, &ctx, error);
}

/* Read every kept event batch, oldest first. */
static int
pg_outbox_load(struct store *store, struct outbox_entry **out, size_t *count)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "outbox_load", NULL, NULL };
	PGresult *res;
	int error, rows;

	*out = NULL;
	*count = 0;
	if ((error = pg_run(s, &ctx, PG_PART_OUTBOX, STMT_OUTBOX_LOAD, NULL, &res)) != STORE_OK)
		return error;
	if ((rows = PQntuples(res)) > 0)
		*out = xcalloc((size_t)rows, sizeof **out);
	for (int r = 0; r < rows; r++) {
		struct outbox_entry *e = &(*out)[r];
		const char *kind = pg_text(res, r, 3);

		e->id = pg_int(res, r, 0);
		e->received_at = pg_int(res, r, 1);
		e->body = pg_strdup(res, r, 2);
		/* The column's CHECK admits nothing else. */
		e->kind = kind != NULL && strcmp(kind, "ably") == 0 ? STORE_OUTBOX_ABLY :
		    STORE_OUTBOX_EVENTS;
	}
	*count = (size_t)rows;
	PQclear(res);
	return STORE_OK;
}

/* Add an outbox row and delete it: what the write probe commits, in its transaction. */
int
pg_outbox_probe(struct pg_store *s, const struct pg_context *ctx)
{
	struct pg_params params;
	int64_t id = 0;
	int error;

	if ((error = outbox_insert(s, ctx, 0, "", STORE_OUTBOX_EVENTS, &id)) != STORE_OK)
		return error;
	pg_params_init(&params);
	pg_param_int_array(&params, &id, 1, sizeof id);
	error = pg_run_command(s, ctx, PG_PART_OUTBOX, STMT_OUTBOX_DELETE, &params, NULL);
	pg_params_clear(&params);
	return error;
}

const struct store_outbox_ops pg_outbox_ops = {
	.outbox_add = pg_outbox_add,
	.outbox_delete = pg_outbox_delete,
	.outbox_load = pg_outbox_load,
};
