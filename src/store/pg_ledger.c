/*
 * The push ledger in PostgreSQL (store_ledger.h): a row per push, and a row per
 * device of it that goes with it (ON DELETE CASCADE). The same rules as
 * sqlite_ledger.c; a push's rows are inserted in one statement.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_internal.h"
#include "store_ledger.h"
#include "xmalloc.h"

/* This file's statements: the index of each in PG_PART_LEDGER. */
enum ledger_stmt_id {
	STMT_PUSH_INSERT,
	STMT_PUSH_ROWS_INSERT,
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
	    " VALUES ($1, $2, $3, $4)",
	/* Every row of a push at once: one array per column, idx from 0 in their order. */
	[STMT_PUSH_ROWS_INSERT] =
	    "INSERT INTO push_devices (push_id, idx, device_id, client_id, platform, app_id,"
	    " badge, state, reason, attempts, updated_at)"
	    " SELECT $1, r.n - 1, r.device_id, r.client_id, r.platform, r.app_id, r.badge,"
	    " r.state, r.reason, r.attempts, r.updated_at"
	    " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],"
	    " $7::text[], $8::text[], $9::bigint[], $10::bigint[]) WITH ORDINALITY"
	    " AS r (device_id, client_id, platform, app_id, badge, state, reason, attempts,"
	    " updated_at, n)",
	[STMT_PUSH_ROW_UPDATE] =
	    "UPDATE push_devices SET state = $3, reason = $4, attempts = $5, updated_at = $6"
	    " WHERE push_id = $1 AND idx BETWEEN $2 AND $7",
	[STMT_PUSH_FINISH] = "UPDATE pushes SET finished_at = $2 WHERE push_id = $1",
	[STMT_PUSH_GET] =
	    "SELECT push_id, created_at, content, badge_per_recipient, finished_at"
	    " FROM pushes WHERE push_id = $1",
	[STMT_PUSH_ROWS] =
	    "SELECT device_id, client_id, platform, app_id, badge, state, reason, attempts,"
	    " updated_at FROM push_devices WHERE push_id = $1 ORDER BY idx",
	[STMT_PUSHES_UNFINISHED] =
	    "SELECT push_id FROM pushes WHERE finished_at = 0 ORDER BY created_at",
	[STMT_PUSHES_EXPIRE] =
	    "DELETE FROM pushes WHERE finished_at <> 0 AND finished_at < $1",
};

const struct pg_statements pg_ledger_statements = { ledger_sql, STMT_COUNT };

/* Insert a push and its rows in one transaction. */
static int
pg_push_insert(struct store *store, const struct push_record *record)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "push_insert", "push_id", record->push_id };
	const char **platforms;
	struct pg_params params;
	int64_t *attempts;
	int error;

	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	pg_params_init(&params);
	pg_param_text(&params, record->push_id);
	pg_param_int(&params, record->created_at);
	pg_param_text(&params, record->content);
	pg_param_int(&params, record->badge_per_recipient != 0);
	error = pg_run_command(s, &ctx, PG_PART_LEDGER, STMT_PUSH_INSERT, &params, NULL);
	pg_params_clear(&params);
	if (error == STORE_OK && record->count > 0) {
		const struct push_row *rows = record->rows;
		size_t n = record->count, stride = sizeof *rows;

		platforms = xcalloc(n, sizeof *platforms);
		attempts = xcalloc(n, sizeof *attempts);
		for (size_t i = 0; i < n; i++) {
			platforms[i] = sqlite_platform_name(rows[i].platform);
			attempts[i] = rows[i].attempts;
		}
		pg_param_text(&params, record->push_id);
		pg_param_text_array(&params, (const char *const *)&rows[0].device_id, n, stride);
		pg_param_text_array(&params, (const char *const *)&rows[0].client_id, n, stride);
		pg_param_text_array(&params, platforms, n, sizeof *platforms);
		pg_param_text_array(&params, (const char *const *)&rows[0].app_id, n, stride);
		pg_param_int_array(&params, &rows[0].badge, n, stride);
		pg_param_text_array(&params, (const char *const *)&rows[0].state, n, stride);
		pg_param_text_array(&params, (const char *const *)&rows[0].reason, n, stride);
		pg_param_int_array(&params, attempts, n, sizeof *attempts);
		pg_param_int_array(&params, &rows[0].updated_at, n, stride);
		error = pg_run_command(s, &ctx, PG_PART_LEDGER, STMT_PUSH_ROWS_INSERT, &params,
		    NULL);
		pg_params_clear(&params);
		free(platforms);
		free(attempts);
	}
	return pg_tx_end(s, &ctx, error);
}

/* Apply row changes and finish pushes, in one transaction. */
static int
pg_push_update(struct store *store, const struct push_row_update *updates, size_t count,
    const struct push_finish *finished, size_t finished_count)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "push_update", NULL, NULL };
	struct pg_params params;
	int error;

	if (count == 0 && finished_count == 0)
		return STORE_OK;
	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		const struct push_row_update *u = &updates[i];

		pg_params_init(&params);
		pg_param_text(&params, u->push_id);
		pg_param_int(&params, (int64_t)u->index);
		pg_param_text(&params, u->state);
		pg_param_text(&params, u->reason);
		pg_param_int(&params, u->attempts);
		pg_param_int(&params, u->updated_at);
		pg_param_int(&params, (int64_t)u->index_last);
		error = pg_run_command(s, &ctx, PG_PART_LEDGER, STMT_PUSH_ROW_UPDATE, &params,
		    NULL);
		pg_params_clear(&params);
	}
	for (size_t i = 0; i < finished_count && error == STORE_OK; i++) {
		pg_params_init(&params);
		pg_param_text(&params, finished[i].push_id);
		pg_param_int(&params, finished[i].finished_at);
		error = pg_run_command(s, &ctx, PG_PART_LEDGER, STMT_PUSH_FINISH, &params, NULL);
		pg_params_clear(&params);
	}
	return pg_tx_end(s, &ctx, error);
}

/* Read a push's rows into the record. */
static int
push_rows_read(struct pg_store *s, const struct pg_context *ctx, struct push_record *out)
{
	struct pg_params params;
	PGresult *res;
	int error, rows, platform;

	pg_params_init(&params);
	pg_param_text(&params, out->push_id);
	error = pg_run(s, ctx, PG_PART_LEDGER, STMT_PUSH_ROWS, &params, &res);
	pg_params_clear(&params);
	if (error != STORE_OK)
		return error;
	rows = PQntuples(res);
	if (rows > 0)
		out->rows = xcalloc((size_t)rows, sizeof *out->rows);
	for (int r = 0; r < rows; r++) {
		struct push_row *row = &out->rows[out->count];

		if ((platform = sqlite_platform_from_name(pg_text(res, r, 2))) < 0) {
			error = pg_bad_row(s, ctx, "platform");
			break;
		}
		row->device_id = pg_strdup(res, r, 0);
		row->client_id = pg_strdup(res, r, 1);
		row->platform = (enum device_platform)platform;
		row->app_id = pg_strdup(res, r, 3);
		row->badge = pg_int(res, r, 4);
		row->state = pg_strdup(res, r, 5);
		row->reason = pg_strdup(res, r, 6);
		row->attempts = (int)pg_int(res, r, 7);
		row->updated_at = pg_int(res, r, 8);
		out->count++;
	}
	PQclear(res);
	return error;
}

/* Read a push by id with its rows. */
static int
pg_push_get(struct store *store, const char *push_id, struct push_record *out)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "push_get", "push_id", push_id };
	struct pg_params params;
	PGresult *res;
	int error;

	memset(out, 0, sizeof *out);
	pg_params_init(&params);
	pg_param_text(&params, push_id);
	error = pg_run(s, &ctx, PG_PART_LEDGER, STMT_PUSH_GET, &params, &res);
	pg_params_clear(&params);
	if (error != STORE_OK)
		return error;
	if (PQntuples(res) == 0)
		error = STORE_ENOTFOUND;
	else {
		out->push_id = pg_strdup(res, 0, 0);
		out->created_at = pg_int(res, 0, 1);
		out->content = pg_strdup(res, 0, 2);
		out->badge_per_recipient = (int)pg_int(res, 0, 3);
		out->finished_at = pg_int(res, 0, 4);
	}
	PQclear(res);
	if (error == STORE_OK)
		error = push_rows_read(s, &ctx, out);
	if (error != STORE_OK)
		store_push_record_free(out);
	return error;
}

/* Read every unfinished push, oldest first. */
static int
pg_pushes_unfinished(struct store *store, struct push_record **out, size_t *count)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "pushes_unfinished", NULL, NULL };
	PGresult *res;
	int error, n;

	*out = NULL;
	*count = 0;
	if ((error = pg_run(s, &ctx, PG_PART_LEDGER, STMT_PUSHES_UNFINISHED, NULL, &res)) !=
	    STORE_OK)
		return error;
	if ((n = PQntuples(res)) > 0) {
		*out = xcalloc((size_t)n, sizeof **out);
		for (int i = 0; i < n && error == STORE_OK; i++) {
			if ((error = pg_push_get(store, PQgetvalue(res, i, 0), &(*out)[i])) ==
			    STORE_OK)
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
	PQclear(res);
	return error;
}

/* Delete pushes finished before a time (their rows go with them). */
static int
pg_pushes_expire(struct store *store, int64_t finished_before, size_t *deleted)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "pushes_expire", NULL, NULL };
	struct pg_params params;
	size_t n = 0;
	int error;

	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	pg_params_init(&params);
	pg_param_int(&params, finished_before);
	error = pg_run_command(s, &ctx, PG_PART_LEDGER, STMT_PUSHES_EXPIRE, &params, &n);
	pg_params_clear(&params);
	if ((error = pg_tx_end(s, &ctx, error)) == STORE_OK && deleted != NULL)
		*deleted = n;
	return error;
}

const struct store_ledger_ops pg_ledger_ops = {
	.push_insert = pg_push_insert,
	.push_update = pg_push_update,
	.push_get = pg_push_get,
	.pushes_unfinished = pg_pushes_unfinished,
	.pushes_expire = pg_pushes_expire,
};
