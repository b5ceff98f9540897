/*
 * A SQLite registry copied into PostgreSQL (store_copy.h): each table read in one
 * SQLite read transaction and sent with COPY ... FROM STDIN (rows as data, never as
 * SQL) inside one PostgreSQL transaction; identity columns then continue after the
 * largest id copied.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "log.h"
#include "pg_internal.h"
#include "sqlite_internal.h"
#include "store_copy.h"
#include "utf8.h"
#include "xmalloc.h"

/* A table as both backends have it at STORE_SCHEMA_VERSION, parents first. */
struct copy_table {
	const char *name;
	const char *columns;
	const char *order;		/* the SQLite side's ORDER BY: rows in id order */
	size_t offset;			/* its count in struct store_copy_counts */
	int identity;			/* has an identity id to continue after */
};

static const struct copy_table copy_tables[] = {
	{ "devices", "device_id, client_id, platform, token, app_id, environment, locale,"
	  " metadata, created_at, updated_at, last_success_at, last_error, last_error_at",
	  "device_id", offsetof(struct store_copy_counts, devices), 0 },
	{ "memberships", "room_id, client_id, joined_at, muted_until, mentions_only",
	  "room_id, client_id", offsetof(struct store_copy_counts, memberships), 0 },
	{ "pushes", "push_id, created_at, content, badge_per_recipient, finished_at",
	  "push_id", offsetof(struct store_copy_counts, pushes), 0 },
	{ "push_devices", "push_id, idx, device_id, client_id, platform, app_id, badge, state,"
	  " reason, attempts, updated_at", "push_id, idx",
	  offsetof(struct store_copy_counts, push_devices), 0 },
	{ "outbox", "id, received_at, kind, body", "id",
	  offsetof(struct store_copy_counts, outbox), 1 },
	{ "unread", "client_id, room_id, count", "client_id, room_id",
	  offsetof(struct store_copy_counts, unread), 0 },
	{ "notified", "id, message_key, room_id, message_id, device_id, at", "id",
	  offsetof(struct store_copy_counts, notified), 1 },
};

#define COPY_TABLE_COUNT (sizeof copy_tables / sizeof copy_tables[0])

/* A growing line of COPY's text format. */
struct copy_line {
	char *buf;
	size_t len, cap;
};

static void
line_add(struct copy_line *l, const char *s, size_t n)
{
	if (l->len + n + 1 > l->cap) {
		while (l->len + n + 1 > l->cap)
			l->cap = l->cap == 0 ? 1024 : l->cap * 2;
		l->buf = xreallocarray(l->buf, l->cap, 1);
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

/* A text value in COPY's text format: backslash, tab, newline and CR escaped. */
static void
line_add_text(struct copy_line *l, const char *text, size_t len)
{
	char *clean = NULL;

	/* PostgreSQL takes UTF-8 only: what is not is replaced, as pg_param_text does. */
	if (!utf8_valid(text, len)) {
		clean = utf8_sanitize_dup(text, len, 3 * len);
		text = clean;
		len = strlen(clean);
	}
	for (size_t i = 0; i < len; i++) {
		switch (text[i]) {
		case '\\': line_add(l, "\\\\", 2); break;
		case '\t': line_add(l, "\\t", 2); break;
		case '\n': line_add(l, "\\n", 2); break;
		case '\r': line_add(l, "\\r", 2); break;
		default: line_add(l, &text[i], 1); break;
		}
	}
	free(clean);
}

/* Run a command on the target; -1 with err set. */
static int
copy_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	char why[512];
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		store_set_err(err, errlen, "PostgreSQL: %s", pg_error_text(conn, res, why,
		    sizeof why));
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Rows in the target's tables, all together; -1 with err set. */
static long long
copy_target_rows(PGconn *conn, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, "SELECT (SELECT count(*) FROM devices)"
	    " + (SELECT count(*) FROM memberships) + (SELECT count(*) FROM pushes)"
	    " + (SELECT count(*) FROM outbox) + (SELECT count(*) FROM unread)"
	    " + (SELECT count(*) FROM notified)");
	char why[512];
	long long n = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else
		store_set_err(err, errlen, "PostgreSQL: %s", pg_error_text(conn, res, why,
		    sizeof why));
	PQclear(res);
	return n;
}

/* Send one table's rows with COPY; *count rows. -1 with err set. */
static int
copy_table(sqlite3 *db, PGconn *conn, const struct copy_table *t, size_t *count, char *err,
    size_t errlen)
{
	struct copy_line line = { NULL, 0, 0 };
	sqlite3_stmt *stmt = NULL;
	char *sql, why[512];
	PGresult *res;
	int rc, columns, failed = 0;

	*count = 0;
	sql = xasprintf("SELECT %s FROM %s ORDER BY %s", t->columns, t->name, t->order);
	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	free(sql);
	if (rc != SQLITE_OK) {
		store_set_err(err, errlen, "SQLite: %s: %s", t->name, sqlite3_errmsg(db));
		return -1;
	}
	sql = xasprintf("COPY %s (%s) FROM STDIN", t->name, t->columns);
	res = PQexec(conn, sql);
	free(sql);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		store_set_err(err, errlen, "PostgreSQL: COPY %s: %s", t->name,
		    pg_error_text(conn, res, why, sizeof why));
		PQclear(res);
		sqlite3_finalize(stmt);
		return -1;
	}
	PQclear(res);
	columns = sqlite3_column_count(stmt);
	while (!failed && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		line.len = 0;
		for (int c = 0; c < columns; c++) {
			if (c > 0)
				line_add(&line, "\t", 1);
			if (sqlite3_column_type(stmt, c) == SQLITE_NULL)
				line_add(&line, "\\N", 2);
			else if (sqlite3_column_type(stmt, c) == SQLITE_INTEGER) {
				char number[24];
				int n = snprintf(number, sizeof number, "%lld",
				    (long long)sqlite3_column_int64(stmt, c));
				line_add(&line, number, (size_t)n);
			} else {
				const char *text = (const char *)sqlite3_column_text(stmt, c);
				if (text == NULL)
					fatalx("out of memory reading a database column");
				line_add_text(&line, text, (size_t)sqlite3_column_bytes(stmt, c));
			}
		}
		line_add(&line, "\n", 1);
		if (PQputCopyData(conn, line.buf, (int)line.len) != 1)
			failed = 1;
		else
			(*count)++;
	}
	if (!failed && rc != SQLITE_DONE) {
		store_set_err(err, errlen, "SQLite: %s: %s", t->name, sqlite3_errmsg(db));
		PQputCopyEnd(conn, "the SQLite source failed");
		failed = 2;
	} else if (PQputCopyEnd(conn, failed ? "cannot send a row" : NULL) != 1)
		failed = 1;
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && failed != 2) {
			store_set_err(err, errlen, "PostgreSQL: COPY %s: %s", t->name,
			    pg_error_text(conn, res, why, sizeof why));
			failed = 1;
		}
		PQclear(res);
	}
	if (failed == 1 && (err == NULL || err[0] == '\0'))
		store_set_err(err, errlen, "PostgreSQL: COPY %s: %s", t->name,
		    pg_error_text(conn, NULL, why, sizeof why));
	free(line.buf);
	sqlite3_finalize(stmt);
	return failed ? -1 : 0;
}

/* Every table, in one transaction of each side; -1 with err set. */
static int
copy_all(sqlite3 *db, PGconn *conn, int replace, struct store_copy_counts *counts,
    int *not_empty, char *err, size_t errlen)
{
	long long present;
	char *sql;

	if (copy_exec(conn, "BEGIN", err, errlen) != 0)
		return -1;
	/* Nothing else writes meanwhile: the tables stay as this transaction sees them. */
	if (copy_exec(conn, "LOCK TABLE devices, memberships, pushes, push_devices, outbox,"
	    " unread, notified IN EXCLUSIVE MODE", err, errlen) != 0 ||
	    (present = copy_target_rows(conn, err, errlen)) < 0)
		return -1;
	if (present > 0 && !replace) {
		store_set_err(err, errlen, "the PostgreSQL store has %lld rows already: copying "
		    "refused (--force replaces them)", present);
		*not_empty = 1;
		return -1;
	}
	if (present > 0 && copy_exec(conn, "TRUNCATE devices, memberships, pushes,"
	    " push_devices, outbox, unread, notified", err, errlen) != 0)
		return -1;
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		store_set_err(err, errlen, "SQLite: %s", sqlite3_errmsg(db));
		return -1;
	}
	for (size_t i = 0; i < COPY_TABLE_COUNT; i++) {
		const struct copy_table *t = &copy_tables[i];
		size_t *count = (size_t *)((char *)counts + t->offset);

		if (copy_table(db, conn, t, count, err, errlen) != 0)
			goto fail;
		if (!t->identity)
			continue;
		/* The next id the identity gives is past every id copied. */
		sql = xasprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'),"
		    " coalesce(max(id), 0) + 1, false) FROM %s", t->name, t->name);
		if (copy_exec(conn, sql, err, errlen) != 0) {
			free(sql);
			goto fail;
		}
		free(sql);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return copy_exec(conn, "COMMIT", err, errlen);

fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Copy a SQLite registry into a PostgreSQL store; see store_copy.h. */
int
store_copy_from_sqlite(const char *from, struct store *to, int replace,
    struct store_copy_counts *counts, char *err, size_t errlen)
{
	struct store_options options = { from, STORE_SYNC_FULL, 5000, 0, 0, NULL };
	struct store *source = NULL;
	struct pg_store *target;
	int error, not_empty = 0;

	memset(counts, 0, sizeof *counts);
	if (to == NULL || to->backend != &store_postgresql_backend) {
		store_set_err(err, errlen, "the store to copy into is not PostgreSQL: "
		    "[store] backend = postgresql");
		return STORE_EINVAL;
	}
	if (from == NULL || access(from, R_OK) != 0) {
		store_set_err(err, errlen, "%s: %s", from != NULL ? from : "(none)",
		    strerror(from != NULL ? errno : EINVAL));
		return STORE_EINVAL;
	}
	if ((error = store_open("sqlite", &options, &source, err, errlen)) != STORE_OK)
		return error;
	target = to->data;
	if (PQstatus(target->conn) != CONNECTION_OK) {
		store_set_err(err, errlen, "PostgreSQL: %s", PQerrorMessage(target->conn));
		error = STORE_EIO;
	} else if (copy_all(((struct sqlite_store *)source->data)->db, target->conn, replace,
	    counts, &not_empty, err, errlen) != 0) {
		error = not_empty ? STORE_EINVAL : STORE_EIO;
		memset(counts, 0, sizeof *counts);
		if (PQtransactionStatus(target->conn) != PQTRANS_IDLE)
			PQclear(PQexec(target->conn, "ROLLBACK"));
	}
	store_close(source);
	return error;
}
