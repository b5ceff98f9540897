/*
 * The PostgreSQL backend: what its parts share (pg_internal.h), and
 * store_postgresql_backend, which gathers them. This file connects (then
 * pg_schema.c checks and migrates the schema), runs every part's statements
 * (prepared on a connection the first time it runs them), transactions and group
 * commit, and reconnects after the server went away. Each owner's statements and
 * operations are in a file of its own: pg_devices.c and pg_rooms.c (the registry),
 * pg_ledger.c, pg_outbox.c, pg_marks.c.
 *
 * One connection per struct store, used from one thread, so the daemon holds one per
 * store thread (three) and no more. Every write runs in BEGIN ... COMMIT and is
 * rolled back on any error, so a failed call leaves nothing behind. A commit returns
 * once the server has it durably (synchronous_commit = on for [store] synchronous =
 * full; off for normal, which survives a crash of pushrelayd but not of the server).
 *
 * Group commit (store_batch_*, for the store writer): the batch is one BEGIN ...
 * COMMIT, each job in it a SAVEPOINT "job", and inside a batch every write's own
 * transaction is a SAVEPOINT "call" instead, so that it still leaves nothing behind
 * when it fails (PostgreSQL refuses every statement of a transaction after an error
 * until it rolls back to a savepoint), and a failing job is undone alone.
 *
 * A lost connection (the server restarted, a network cut) fails the call with
 * STORE_EIO, logged once for the whole outage; a batch open on it is lost. The next
 * call tries PQreset at once, then no more often than a backoff that doubles from
 * PG_RECONNECT_FIRST_MS to PG_RECONNECT_MAX_MS: calls in between fail at once
 * without touching the network. The API's ping (store_ping, for /readyz) is such a
 * call, so readiness comes back by itself when the server does.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "clock.h"
#include "log.h"
#include "pg_internal.h"
#include "store.h"
#include "utf8.h"
#include "xmalloc.h"

/* Connecting waits this long at most unless the connection string says otherwise. */
#define PG_CONNECT_TIMEOUT_DEFAULT "5"

/* The ping, in PG_PART_COMMON. */
enum common_stmt_id {
	STMT_PING,
	STMT_COUNT
};

static const char *const common_sql[STMT_COUNT] = {
	[STMT_PING] = "SELECT 1 FROM devices LIMIT 1",
};

static const struct pg_statements common_statements = { common_sql, STMT_COUNT };

/* Every part's statements, by part. */
static const struct pg_statements *const pg_parts[PG_PART_COUNT] = {
	[PG_PART_COMMON] = &common_statements,
	[PG_PART_DEVICES] = &pg_devices_statements,
	[PG_PART_ROOMS] = &pg_rooms_statements,
	[PG_PART_LEDGER] = &pg_ledger_statements,
	[PG_PART_OUTBOX] = &pg_outbox_statements,
	[PG_PART_MARKS] = &pg_marks_statements,
};

/* The message of a failed call on one line: libpq's ends with a newline. */
const char *
pg_error_text(PGconn *conn, const PGresult *result, char *buf, size_t size)
{
	const char *text = NULL;
	size_t len;

	if (result != NULL)
		text = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
	if (text == NULL && conn != NULL)
		text = PQerrorMessage(conn);
	if (text == NULL || *text == '\0')
		text = "unknown error";
	if (strncmp(text, "ERROR:  ", 8) == 0)
		text += 8;
	snprintf(buf, size, "%s", text);
	len = strlen(buf);
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = i + 1 == len ? '\0' : ' ';
	}
	while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\0'))
		buf[--len] = '\0';
	return buf;
}

/* Forget what was prepared: a new session (a reset) has none of it. */
static void
pg_forget_prepared(struct pg_store *s)
{
	for (size_t part = 0; part < PG_PART_COUNT; part++)
		memset(s->prepared[part], 0, pg_parts[part]->count);
}

/* The connection is gone: log it once for the outage and try again at once. */
static void
pg_lost(struct pg_store *s, const char *op, const char *why)
{
	if (!s->down)
		log_error("store connection to PostgreSQL lost: calls fail until it is back",
		    "op", op, "error", why, "server", s->display, NULL);
	snprintf(s->last_error, sizeof s->last_error, "connection to PostgreSQL lost: %s", why);
	s->down = 1;
	s->batch = s->batch ? -1 : 0;	/* a batch open on it is gone */
	s->retry_at = clock_monotonic_ms();
	s->backoff_ms = 0;
}

/* Log a failed call once; a lost connection once per outage. Returns STORE_EIO. */
int
pg_fail(struct pg_store *s, const struct pg_context *ctx, const PGresult *result)
{
	const char *state = result != NULL ? PQresultErrorField(result, PG_DIAG_SQLSTATE) :
	    NULL;
	char why[512];

	pg_error_text(s->conn, result, why, sizeof why);
	if (PQstatus(s->conn) == CONNECTION_BAD) {
		pg_lost(s, ctx->op, why);
		return STORE_EIO;
	}
	snprintf(s->last_error, sizeof s->last_error, "%s", why);
	/* A NULL key ends the field list early. */
	log_error("store operation failed", "op", ctx->op, "error", why, "sqlstate",
	    state != NULL ? state : "", "server", s->display, ctx->key, ctx->value, NULL);
	return STORE_EIO;
}

/* Log a row this build cannot read (a hand-edited database). */
int
pg_bad_row(struct pg_store *s, const struct pg_context *ctx, const char *column)
{
	log_error("store row has an invalid value", "op", ctx->op, "column", column,
	    "server", s->display, ctx->key, ctx->value, NULL);
	return STORE_EIO;
}

/* Run a statement without parameters or rows; 0, or -1 with result kept for the log. */
static int
pg_exec_simple(PGconn *conn, const char *sql, PGresult **failed)
{
	PGresult *result = PQexec(conn, sql);

	if (PQresultStatus(result) == PGRES_COMMAND_OK ||
	    PQresultStatus(result) == PGRES_TUPLES_OK) {
		PQclear(result);
		return 0;
	}
	if (failed != NULL)
		*failed = result;
	else
		PQclear(result);
	return -1;
}

/*
 * Settings of every session, after a connection or a reset: UTF-8, durability, how
 * long a write waits for a lock. 0, or -1 with err set.
 */
static int
pg_session_setup(PGconn *conn, enum store_sync sync, int lock_timeout_ms, char *err,
    size_t errlen)
{
	char sql[160], why[256];
	PGresult *failed = NULL;

	/* lock_timeout 0 waits for ever; SQLite's busy timeout 0 fails at once. */
	snprintf(sql, sizeof sql, "SET client_encoding = 'UTF8'; SET synchronous_commit = %s; "
	    "SET lock_timeout = %d", sync == STORE_SYNC_NORMAL ? "off" : "on",
	    lock_timeout_ms > 0 ? lock_timeout_ms : 1);
	if (pg_exec_simple(conn, sql, &failed) != 0) {
		store_set_err(err, errlen, "%s", pg_error_text(conn, failed, why, sizeof why));
		PQclear(failed);
		return -1;
	}
	return 0;
}

/*
 * Make sure the connection is up: after a loss, PQreset when the backoff allows it
 * (immediately the first time), and set the session up again. 0 or STORE_EIO.
 */
static int
pg_ensure(struct pg_store *s)
{
	char why[256];
	int64_t now;

	if (!s->down && PQstatus(s->conn) == CONNECTION_OK)
		return STORE_OK;
	if (!s->down)
		pg_lost(s, "connection", PQerrorMessage(s->conn));
	now = clock_monotonic_ms();
	if (now < s->retry_at)
		return STORE_EIO;	/* logged when it was lost */
	PQreset(s->conn);
	if (PQstatus(s->conn) == CONNECTION_OK &&
	    pg_session_setup(s->conn, s->sync, s->lock_timeout_ms, why, sizeof why) == 0) {
		pg_forget_prepared(s);
		s->down = 0;
		s->backoff_ms = 0;
		log_info("store connection to PostgreSQL is back", "server", s->display, NULL);
		return STORE_OK;
	}
	snprintf(s->last_error, sizeof s->last_error, "cannot connect to PostgreSQL: %s",
	    pg_error_text(s->conn, NULL, why, sizeof why));
	s->backoff_ms = s->backoff_ms == 0 ? PG_RECONNECT_FIRST_MS :
	    s->backoff_ms * 2 > PG_RECONNECT_MAX_MS ? PG_RECONNECT_MAX_MS : s->backoff_ms * 2;
	s->retry_at = clock_monotonic_ms() + s->backoff_ms;
	return STORE_EIO;
}

/* Run a statement of pg.c itself (transactions, savepoints); 0 or STORE_EIO (logged). */
static int
pg_command(struct pg_store *s, const struct pg_context *ctx, const char *sql)
{
	PGresult *result = NULL;
	int error;

	if ((error = pg_ensure(s)) != STORE_OK)
		return error;
	if (pg_exec_simple(s->conn, sql, &result) == 0)
		return STORE_OK;
	error = pg_fail(s, ctx, result);
	PQclear(result);
	return error;
}

/* Run a command whose failure is not this call's news (an undo after a failure). */
static void
pg_command_quiet(struct pg_store *s, const struct pg_context *ctx, const char *sql)
{
	if (s->down || PQstatus(s->conn) != CONNECTION_OK)
		return;
	pg_command(s, ctx, sql);
}

/* Prepare a statement on this connection the first time it runs. */
static int
pg_prepare(struct pg_store *s, const struct pg_context *ctx, enum pg_part part, int id,
    const char *name)
{
	PGresult *result;
	int error = STORE_OK;

	if (s->prepared[part][id])
		return STORE_OK;
	result = PQprepare(s->conn, name, pg_parts[part]->sql[id], 0, NULL);
	if (PQresultStatus(result) != PGRES_COMMAND_OK)
		error = pg_fail(s, ctx, result);
	else
		s->prepared[part][id] = 1;
	PQclear(result);
	return error;
}

/* Run one of the parts' statements; see pg_internal.h. */
int
pg_run(struct pg_store *s, const struct pg_context *ctx, enum pg_part part, int id,
    const struct pg_params *params, PGresult **out)
{
	PGresult *result;
	char name[16];
	int error;

	*out = NULL;
	if ((error = pg_ensure(s)) != STORE_OK)
		return error;
	snprintf(name, sizeof name, "p%d_%d", (int)part, id);
	if ((error = pg_prepare(s, ctx, part, id, name)) != STORE_OK)
		return error;
	result = PQexecPrepared(s->conn, name, params != NULL ? params->count : 0,
	    params != NULL ? params->values : NULL, NULL, NULL, 0);
	if (PQresultStatus(result) != PGRES_COMMAND_OK &&
	    PQresultStatus(result) != PGRES_TUPLES_OK) {
		error = pg_fail(s, ctx, result);
		PQclear(result);
		return error;
	}
	*out = result;
	return STORE_OK;
}

/* Run a statement that returns no rows; how many it changed. */
int
pg_run_command(struct pg_store *s, const struct pg_context *ctx, enum pg_part part, int id,
    const struct pg_params *params, size_t *changed)
{
	PGresult *result;
	int error;

	if ((error = pg_run(s, ctx, part, id, params, &result)) != STORE_OK)
		return error;
	if (changed != NULL)
		*changed = (size_t)strtoull(PQcmdTuples(result), NULL, 10);
	PQclear(result);
	return STORE_OK;
}

/* Is the batch's transaction gone (the connection was lost under it)? */
static int
batch_lost(struct pg_store *s)
{
	return s->batch && (s->batch < 0 || s->down || PQstatus(s->conn) != CONNECTION_OK ||
	    PQtransactionStatus(s->conn) == PQTRANS_IDLE);
}

/* Start a write transaction; in a batch, a savepoint. */
int
pg_tx_begin(struct pg_store *s, const struct pg_context *ctx)
{
	if (batch_lost(s))
		return STORE_EIO;	/* logged when it was lost */
	return pg_command(s, ctx, s->batch ? "SAVEPOINT call" : "BEGIN");
}

/* Commit: COMMIT after an error answers ROLLBACK, without an error of its own. */
static int
pg_commit(struct pg_store *s, const struct pg_context *ctx)
{
	PGresult *result;
	int error = STORE_OK;

	if ((error = pg_ensure(s)) != STORE_OK)
		return error;
	result = PQexec(s->conn, "COMMIT");
	if (PQresultStatus(result) != PGRES_COMMAND_OK)
		error = pg_fail(s, ctx, result);
	else if (strcmp(PQcmdStatus(result), "COMMIT") != 0) {
		log_error("store transaction rolled back by the server", "op", ctx->op,
		    "server", s->display, ctx->key, ctx->value, NULL);
		error = STORE_EIO;
	}
	PQclear(result);
	return error;
}

/* End a write transaction: commit if error is 0, else roll back; the final result. */
int
pg_tx_end(struct pg_store *s, const struct pg_context *ctx, int error)
{
	if (s->batch) {
		if (error == STORE_OK && (error = pg_command(s, ctx, "RELEASE call")) == STORE_OK)
			return STORE_OK;
		/* ROLLBACK TO keeps the savepoint open: RELEASE closes it. */
		pg_command_quiet(s, &(struct pg_context){ "rollback", "during", ctx->op },
		    "ROLLBACK TO call; RELEASE call");
		return error;
	}
	if (error == STORE_OK)
		return pg_commit(s, ctx);
	pg_command_quiet(s, &(struct pg_context){ "rollback", "during", ctx->op },
	    "ROLLBACK");
	return error;
}

/* Open a read transaction for one snapshot; a savepoint of the batch in a batch. */
int
pg_read_begin(struct pg_store *s, const struct pg_context *ctx)
{
	if (s->batch)
		return pg_tx_begin(s, ctx);
	return pg_command(s, ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

/* Close what pg_read_begin opened; a failed close fails a read that had not. */
int
pg_read_end(struct pg_store *s, const struct pg_context *ctx, int error)
{
	if (s->batch)
		return pg_tx_end(s, ctx, error);
	if (error != STORE_OK) {
		pg_command_quiet(s, ctx, "ROLLBACK");
		return error;
	}
	return pg_commit(s, ctx);
}

/* Open a batch: one transaction for many jobs. */
static int
pg_batch_begin(struct store *store)
{
	struct pg_store *s = store->data;
	int error;

	if ((error = pg_command(s, &(struct pg_context){ "batch_begin", NULL, NULL },
	    "BEGIN")) != STORE_OK)
		return error;
	s->batch = 1;
	return STORE_OK;
}

/* Commit or roll back the batch; STORE_EIO if it was lost or does not commit. */
static int
pg_batch_end(struct store *store, int commit)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "batch_commit", NULL, NULL };
	int error = STORE_OK, lost = batch_lost(s);

	s->batch = 0;
	if (lost) {
		if (PQstatus(s->conn) == CONNECTION_OK &&
		    PQtransactionStatus(s->conn) != PQTRANS_IDLE)
			pg_command_quiet(s, &ctx, "ROLLBACK");
		return commit ? STORE_EIO : STORE_OK;	/* logged when it was lost */
	}
	if (commit)
		error = pg_commit(s, &ctx);
	else
		pg_command_quiet(s, &(struct pg_context){ "batch_rollback", NULL, NULL },
		    "ROLLBACK");
	return error;
}

/* Start a job of the batch. */
static int
pg_job_begin(struct store *store)
{
	struct pg_store *s = store->data;

	if (batch_lost(s))
		return STORE_EIO;	/* logged when it was lost */
	return pg_command(s, &(struct pg_context){ "job_begin", NULL, NULL }, "SAVEPOINT job");
}

/* End a job of the batch, keeping or undoing it; STORE_EIO if the batch is lost. */
static int
pg_job_end(struct store *store, int keep)
{
	struct pg_store *s = store->data;

	if (batch_lost(s)) {
		log_error("store batch lost with the connection: its other jobs fail too",
		    "server", s->display, NULL);
		return STORE_EIO;
	}
	return pg_command(s, &(struct pg_context){ "job_end", NULL, NULL },
	    keep ? "RELEASE job" : "ROLLBACK TO job; RELEASE job");
}

/*
 * What libpq says of a string it cannot parse, without what it quotes from it (a
 * token it quotes could be part of a password).
 */
static void
pg_parse_error(const char *message, char *err, size_t errlen)
{
	size_t n = 0;
	int quoted = 0;

	if (err == NULL || errlen == 0)
		return;
	for (const char *p = message; *p != '\0' && *p != '\n' && n + 4 < errlen; p++) {
		if (*p == '"' && !quoted && strncmp(p, "\"=\"", 3) == 0) {
			memcpy(err + n, p, 3);	/* libpq's "missing "=" after": no secret */
			n += 3;
			p += 2;
		} else if (*p == '"') {
			quoted = !quoted;
			if (quoted) {
				memcpy(err + n, "\"...", 4);
				n += 4;
			} else
				err[n++] = '"';
		} else if (!quoted)
			err[n++] = *p;
	}
	err[n] = '\0';
}

/*
 * The connection string as the log may show it: its settings, the password hidden.
 * NULL if it does not parse; err then says why.
 */
static char *
pg_display(const char *conninfo, char *err, size_t errlen)
{
	PQconninfoOption *options, *o;
	char *parse_error = NULL, *out, *next;

	if ((options = PQconninfoParse(conninfo, &parse_error)) == NULL) {
		pg_parse_error(parse_error != NULL ? parse_error : "out of memory", err, errlen);
		PQfreemem(parse_error);
		return NULL;
	}
	out = xstrdup("");
	for (o = options; o->keyword != NULL; o++) {
		if (o->val == NULL || *o->val == '\0')
			continue;
		/* password, and sslpassword (the client key's). */
		if (strstr(o->keyword, "password") != NULL)
			next = xasprintf("%s%s%s=(hidden)", out, *out != '\0' ? " " : "",
			    o->keyword);
		else
			next = xasprintf("%s%s%s=%s", out, *out != '\0' ? " " : "", o->keyword,
			    o->val);
		free(out);
		out = next;
	}
	PQconninfoFree(options);
	return out;
}

/* Check a connection string for the configuration, without connecting. */
int
store_postgresql_conninfo_check(const char *conninfo, char *err, size_t errlen)
{
	char *display;

	if (conninfo == NULL || *conninfo == '\0') {
		store_set_err(err, errlen, "empty connection string");
		return -1;
	}
	if ((display = pg_display(conninfo, err, errlen)) == NULL)
		return -1;
	free(display);
	return 0;
}

/* Close the connection and free the state. */
static void
pg_free(struct pg_store *s)
{
	if (s->conn != NULL)
		PQfinish(s->conn);
	for (size_t part = 0; part < PG_PART_COUNT; part++)
		free(s->prepared[part]);
	if (s->conninfo != NULL)
		OPENSSL_cleanse(s->conninfo, strlen(s->conninfo));
	free(s->conninfo);
	free(s->display);
	free(s);
}

/*
 * Connect with the configured string, over defaults that it may override: a connect
 * timeout, the application name, and over TCP keepalives and a user timeout, so that
 * a server gone without a word (a host down, a network cut) fails the call waiting
 * on it within about a minute instead of TCP's quarter of an hour.
 */
static PGconn *
pg_connect(const char *conninfo)
{
	const char *const keywords[] = { "connect_timeout", "application_name",
		"keepalives_idle", "keepalives_interval", "keepalives_count",
		"tcp_user_timeout", "dbname", NULL };
	const char *const values[] = { PG_CONNECT_TIMEOUT_DEFAULT, "pushrelayd", "30", "10",
		"3", "60000", conninfo, NULL };

	return PQconnectdbParams(keywords, values, 1);
}

/* Connect, check and migrate the schema, and set the session up. */
static int
pg_open(struct store *store, const struct store_options *options, char *err, size_t errlen)
{
	struct pg_store *s;
	char why[512];
	int error;

	if (options == NULL || options->conninfo == NULL || options->conninfo[0] == '\0') {
		store_set_err(err, errlen, "store postgresql connection string is empty");
		return STORE_EINVAL;
	}
	if (options->sync != STORE_SYNC_FULL && options->sync != STORE_SYNC_NORMAL) {
		store_set_err(err, errlen, "unknown store sync mode %d", (int)options->sync);
		return STORE_EINVAL;
	}
	if (options->busy_timeout_ms < 0) {
		store_set_err(err, errlen, "store busy timeout %d is negative",
		    options->busy_timeout_ms);
		return STORE_EINVAL;
	}
	s = xcalloc(1, sizeof *s);
	if ((s->display = pg_display(options->conninfo, why, sizeof why)) == NULL) {
		store_set_err(err, errlen, "store postgresql connection string: %s", why);
		free(s);
		return STORE_EINVAL;
	}
	s->conninfo = xstrdup(options->conninfo);
	s->sync = options->sync;
	s->lock_timeout_ms = options->busy_timeout_ms;
	for (size_t part = 0; part < PG_PART_COUNT; part++)
		s->prepared[part] = xcalloc(pg_parts[part]->count, 1);
	s->conn = pg_connect(options->conninfo);
	if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK) {
		store_set_err(err, errlen, "cannot connect to PostgreSQL (%s): %s", s->display,
		    pg_error_text(s->conn, NULL, why, sizeof why));
		error = STORE_EIO;
		goto fail;
	}
	if (pg_session_setup(s->conn, s->sync, s->lock_timeout_ms, why, sizeof why) != 0) {
		store_set_err(err, errlen, "PostgreSQL (%s): %s", s->display, why);
		error = STORE_EIO;
		goto fail;
	}
	/* Refuse a newer database before changing anything in it. */
	if ((error = pg_schema_check(s->conn, s->display, err, errlen)) != STORE_OK ||
	    (error = pg_schema_migrate(s->conn, s->display, err, errlen)) != STORE_OK)
		goto fail;
	store->data = s;
	return STORE_OK;

fail:
	pg_free(s);
	return error;
}

/* Close the connection; the store itself is freed by store_close. */
static void
pg_close(struct store *store)
{
	pg_free(store->data);
	store->data = NULL;
}

/* Check that the database still answers a read; reconnects when due. */
static int
pg_ping(struct store *store)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "ping", NULL, NULL };
	PGresult *result;
	int error;

	if ((error = pg_run(s, &ctx, PG_PART_COMMON, STMT_PING, NULL, &result)) == STORE_OK)
		PQclear(result);
	return error;
}

/*
 * Add an outbox row and delete it in one transaction: no row remains, but the
 * commit goes through the server's log as any other would, so it fails when writes
 * fail (a full disk, a read-only server, a lost connection).
 */
static int
pg_probe_write(struct store *store, char *err, size_t errlen)
{
	struct pg_store *s = store->data;
	struct pg_context ctx = { "probe_write", NULL, NULL };
	int error;

	s->last_error[0] = '\0';
	if ((error = pg_tx_begin(s, &ctx)) == STORE_OK)
		error = pg_tx_end(s, &ctx, pg_outbox_probe(s, &ctx));
	if (error != STORE_OK)
		store_set_err(err, errlen, "%s", s->last_error[0] != '\0' ? s->last_error :
		    store_strerror(error));
	return error;
}

/* Parameters as text. */
void
pg_params_init(struct pg_params *p)
{
	memset(p, 0, sizeof *p);
}

/* Add a text parameter; what PostgreSQL would refuse as text is made valid UTF-8. */
void
pg_param_text(struct pg_params *p, const char *value)
{
	size_t len;

	if (p->count >= PG_PARAMS_MAX)
		return;		/* the statement then fails on its parameter count */
	if (value != NULL && !utf8_valid(value, (len = strlen(value)))) {
		p->owned[p->count] = utf8_sanitize_dup(value, len, 3 * len);
		value = p->owned[p->count];
	}
	p->values[p->count++] = value;
}

/* Add an integer parameter. */
void
pg_param_int(struct pg_params *p, int64_t value)
{
	if (p->count >= PG_PARAMS_MAX)
		return;		/* the statement then fails on its parameter count */
	snprintf(p->numbers[p->count], sizeof p->numbers[p->count], "%lld",
	    (long long)value);
	p->values[p->count] = p->numbers[p->count];
	p->count++;
}

/* Append to a growing string. */
static void
buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap = *cap == 0 ? 256 : *cap * 2;
		*buf = xreallocarray(*buf, *cap, 1);
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/*
 * Add a text[] parameter: the strings at values, values + stride, ... (a stride in
 * bytes lets it read a field of an array of structs). Each element is quoted, with "
 * and \\ escaped: a value, never SQL.
 */
void
pg_param_text_array(struct pg_params *p, const char *const *values, size_t count,
    size_t stride)
{
	char *buf = NULL, *clean;
	size_t len = 0, cap = 0;

	if (p->count >= PG_PARAMS_MAX)
		return;		/* the statement then fails on its parameter count */
	buf_add(&buf, &len, &cap, "{", 1);
	for (size_t i = 0; i < count; i++) {
		const char *v = *(const char *const *)((const char *)values + i * stride);
		size_t vlen;

		if (i > 0)
			buf_add(&buf, &len, &cap, ",", 1);
		if (v == NULL) {
			buf_add(&buf, &len, &cap, "NULL", 4);
			continue;
		}
		clean = NULL;
		if (!utf8_valid(v, (vlen = strlen(v))))
			v = clean = utf8_sanitize_dup(v, vlen, 3 * vlen);
		buf_add(&buf, &len, &cap, "\"", 1);
		for (const char *c = v; *c != '\0'; c++) {
			if (*c == '"' || *c == '\\')
				buf_add(&buf, &len, &cap, "\\", 1);
			buf_add(&buf, &len, &cap, c, 1);
		}
		buf_add(&buf, &len, &cap, "\"", 1);
		free(clean);
	}
	buf_add(&buf, &len, &cap, "}", 1);
	p->owned[p->count] = buf;
	p->values[p->count++] = buf;
}

/* Add a bigint[] parameter: the integers at values, values + stride, ... */
void
pg_param_int_array(struct pg_params *p, const int64_t *values, size_t count, size_t stride)
{
	char *buf = NULL, number[24];
	size_t len = 0, cap = 0;
	int n;

	if (p->count >= PG_PARAMS_MAX)
		return;		/* the statement then fails on its parameter count */
	buf_add(&buf, &len, &cap, "{", 1);
	for (size_t i = 0; i < count; i++) {
		int64_t v = *(const int64_t *)((const char *)values + i * stride);

		n = snprintf(number, sizeof number, "%s%lld", i > 0 ? "," : "", (long long)v);
		buf_add(&buf, &len, &cap, number, (size_t)n);
	}
	buf_add(&buf, &len, &cap, "}", 1);
	p->owned[p->count] = buf;
	p->values[p->count++] = buf;
}

/* Free what the parameters hold, for the next statement. */
void
pg_params_clear(struct pg_params *p)
{
	for (int i = 0; i < p->count; i++)
		free(p->owned[i]);
	pg_params_init(p);
}

/* A column as a new string; NULL stays NULL. */
char *
pg_strdup(const PGresult *result, int row, int column)
{
	if (PQgetisnull(result, row, column))
		return NULL;
	return xstrdup(PQgetvalue(result, row, column));
}

/* A column's text; NULL when the value is. */
const char *
pg_text(const PGresult *result, int row, int column)
{
	if (PQgetisnull(result, row, column))
		return NULL;
	return PQgetvalue(result, row, column);
}

/* A column as an integer; NULL is 0. */
int64_t
pg_int(const PGresult *result, int row, int column)
{
	if (PQgetisnull(result, row, column))
		return 0;
	return strtoll(PQgetvalue(result, row, column), NULL, 10);
}

const struct store_backend store_postgresql_backend = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.ping = pg_ping,
	.probe_write = pg_probe_write,
	.batch_begin = pg_batch_begin,
	.batch_end = pg_batch_end,
	.job_begin = pg_job_begin,
	.job_end = pg_job_end,
	.routes_changed = pg_routes_changed,
	.watch_start = pg_watch_start,
	.registry = &pg_registry_ops,
	.ledger = &pg_ledger_ops,
	.outbox = &pg_outbox_ops,
	.marks = &pg_marks_ops,
};
