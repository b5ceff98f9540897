/*
 * The router's marks in PostgreSQL (store_marks.h): notified devices, appended in
 * the order of an identity column and found by a hash of room and message
 * (sqlite_message_key, the same number in both backends), and unread counts by
 * client and room. The same rules as sqlite_marks.c; many marks go in one statement.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_internal.h"
#include "store_marks.h"
#include "xmalloc.h"

/* This file's statements: the index of each in PG_PART_MARKS. */
enum marks_stmt_id {
	STMT_NOTIFIED_ADD,
	STMT_NOTIFIED_EXPIRE,
	STMT_UNREAD_PUT,
	STMT_UNREAD_DELETE,
	STMT_UNREAD_LOAD,
	STMT_COUNT
};

static const char *const marks_sql[STMT_COUNT] = {
	/* Every mark at once, in their order: one array per column. */
	[STMT_NOTIFIED_ADD] =
	    "INSERT INTO notified (message_key, room_id, message_id, device_id, at)"
	    " SELECT r.message_key, r.room_id, r.message_id, r.device_id, r.at"
	    " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[])"
	    " WITH ORDINALITY AS r (message_key, room_id, message_id, device_id, at, n)"
	    " ORDER BY r.n",
	/*
	 * Rows come in time order: everything before the first one still in the window
	 * goes (if the clock stepped back, some rows stay a little longer).
	 */
	[STMT_NOTIFIED_EXPIRE] =
	    "DELETE FROM notified WHERE id < coalesce("
	    "(SELECT id FROM notified WHERE at >= $1 ORDER BY id LIMIT 1),"
	    "(SELECT max(id) + 1 FROM notified), 0)",
	[STMT_UNREAD_PUT] =
	    "INSERT INTO unread (client_id, room_id, count) VALUES ($1, $2, $3)"
	    " ON CONFLICT (client_id, room_id) DO UPDATE SET count = excluded.count",
	[STMT_UNREAD_DELETE] = "DELETE FROM unread WHERE client_id = $1 AND room_id = $2",
	[STMT_UNREAD_LOAD] = "SELECT client_id, room_id, count FROM unread",
};

const struct pg_statements pg_marks_statements = { marks_sql, STMT_COUNT };

/* Remember notified devices, in one statement. */
static int
pg_notified_add(struct store *store, const struct notified_mark *marks, size_t count)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "notified_add", NULL, NULL };
	struct pg_params params;
	int64_t *keys;
	int error;

	if (count == 0)
		return STORE_OK;
	keys = xcalloc(count, sizeof *keys);
	for (size_t i = 0; i < count; i++)
		keys[i] = sqlite_message_key(marks[i].room_id, marks[i].message_id);
	if ((error = pg_tx_begin(s, &ctx)) == STORE_OK) {
		pg_params_init(&params);
		pg_param_int_array(&params, keys, count, sizeof *keys);
		pg_param_text_array(&params, &marks[0].room_id, count, sizeof *marks);
		pg_param_text_array(&params, &marks[0].message_id, count, sizeof *marks);
		pg_param_text_array(&params, &marks[0].device_id, count, sizeof *marks);
		pg_param_int_array(&params, &marks[0].at, count, sizeof *marks);
		error = pg_run_command(s, &ctx, PG_PART_MARKS, STMT_NOTIFIED_ADD, &params, NULL);
		pg_params_clear(&params);
		error = pg_tx_end(s, &ctx, error);
	}
	free(keys);
	return error;
}

/* Forget notified devices older than a time. */
static int
pg_notified_expire(struct store *store, int64_t before)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "notified_expire", NULL, NULL };
	struct pg_params params;
	int error;

	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	pg_params_init(&params);
	pg_param_int(&params, before);
	error = pg_run_command(s, &ctx, PG_PART_MARKS, STMT_NOTIFIED_EXPIRE, &params, NULL);
	pg_params_clear(&params);
	return pg_tx_end(s, &ctx, error);
}

/* Set unread counts in one transaction; a zero count deletes the row. */
static int
pg_unread_put(struct store *store, const struct unread_count *counts, size_t count)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "unread_put", NULL, NULL };
	struct pg_params params;
	int error;

	if (count == 0)
		return STORE_OK;
	if ((error = pg_tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		pg_params_init(&params);
		pg_param_text(&params, counts[i].client_id);
		pg_param_text(&params, counts[i].room_id);
		if (counts[i].count > 0)
			pg_param_int(&params, counts[i].count);
		error = pg_run_command(s, &ctx, PG_PART_MARKS, counts[i].count > 0 ?
		    STMT_UNREAD_PUT : STMT_UNREAD_DELETE, &params, NULL);
		pg_params_clear(&params);
	}
	return pg_tx_end(s, &ctx, error);
}

/* Load every unread count. */
static int
pg_unread_load(struct store *store, struct unread_count **out, size_t *count)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "unread_load", NULL, NULL };
	PGresult *res;
	int error, rows;

	*out = NULL;
	*count = 0;
	if ((error = pg_run(s, &ctx, PG_PART_MARKS, STMT_UNREAD_LOAD, NULL, &res)) != STORE_OK)
		return error;
	if ((rows = PQntuples(res)) > 0)
		*out = xcalloc((size_t)rows, sizeof **out);
	for (int r = 0; r < rows; r++) {
		(*out)[r].client_id = pg_strdup(res, r, 0);
		(*out)[r].room_id = pg_strdup(res, r, 1);
		(*out)[r].count = pg_int(res, r, 2);
	}
	*count = (size_t)rows;
	PQclear(res);
	return STORE_OK;
}

const struct store_marks_ops pg_marks_ops = {
	.notified_add = pg_notified_add,
	.notified_expire = pg_notified_expire,
	.unread_put = pg_unread_put,
	.unread_load = pg_unread_load,
};
