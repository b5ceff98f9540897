/*
 * The SQLite backend: what its parts share (sqlite_internal.h), and
 * store_sqlite_backend, which gathers them. This file opens a connection (creating
 * the file, then sqlite_schema.c checks and migrates the schema), prepares every
 * part's statements, and runs transactions and group commit. Each owner's
 * statements and operations are in a file of its own: sqlite_devices.c and
 * sqlite_rooms.c (the registry), sqlite_ledger.c, sqlite_outbox.c, sqlite_marks.c.
 *
 * One connection, used from one thread (NOMUTEX). Every statement is prepared once at
 * open. Every write runs in BEGIN IMMEDIATE ... COMMIT and is rolled back on any error,
 * so a failed call leaves nothing behind. The journal is WAL; with synchronous=FULL
 * each commit is fsynced before the call returns.
 *
 * Group commit (store_batch_*, for the store writer): the batch is one BEGIN
 * IMMEDIATE ... COMMIT, each job in it a SAVEPOINT "job", and inside a batch every
 * write's own transaction is a SAVEPOINT "call" instead, so that it still leaves
 * nothing behind when it fails, and a failing job is undone alone.
 *
 * Flushing apart (store_flush_apart, for the store writer's pipeline): the
 * connection commits with synchronous=NORMAL, and sqlite_flush() fdatasyncs the WAL
 * file from the writer's flush thread. In WAL mode a commit is durable once its WAL
 * frames are on disk, which is all FULL adds to NORMAL (NORMAL still syncs the WAL
 * before each checkpoint and the database after it); apart, the next batch is
 * written while the last is flushed.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "sqlite_internal.h"
#include "store.h"
#include "xmalloc.h"

/* Transactions, savepoints and the ping, in stmts[SQLITE_PART_COMMON]. */
enum common_stmt_id {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_CALL_BEGIN,
	STMT_CALL_RELEASE,
	STMT_CALL_UNDO,
	STMT_JOB_BEGIN,
	STMT_JOB_RELEASE,
	STMT_JOB_UNDO,
	STMT_READ_BEGIN,
	STMT_PING,
	STMT_COUNT
};

static const char *const common_sql[STMT_COUNT] = {
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_CALL_BEGIN] = "SAVEPOINT call",
	[STMT_CALL_RELEASE] = "RELEASE call",
	[STMT_CALL_UNDO] = "ROLLBACK TO call",
	[STMT_JOB_BEGIN] = "SAVEPOINT job",
	[STMT_JOB_RELEASE] = "RELEASE job",
	[STMT_JOB_UNDO] = "ROLLBACK TO job",
	[STMT_READ_BEGIN] = "BEGIN",
	[STMT_PING] = "SELECT 1 FROM devices LIMIT 1",
};

static const struct sqlite_statements common_statements = { common_sql, STMT_COUNT };

/* Every part's statements, prepared at open in stmts[part]. */
static const struct sqlite_statements *const sqlite_parts[SQLITE_PART_COUNT] = {
	[SQLITE_PART_COMMON] = &common_statements,
	[SQLITE_PART_DEVICES] = &sqlite_devices_statements,
	[SQLITE_PART_ROOMS] = &sqlite_rooms_statements,
	[SQLITE_PART_LEDGER] = &sqlite_ledger_statements,
	[SQLITE_PART_OUTBOX] = &sqlite_outbox_statements,
	[SQLITE_PART_MARKS] = &sqlite_marks_statements,
};

/* Log a failed SQLite call once, with what was being done, and return STORE_EIO. */
int
sqlite_fail(struct sqlite_store *s, const struct sqlite_context *ctx)
{
	char code[16];

	snprintf(code, sizeof code, "%d", sqlite3_extended_errcode(s->db));
	/* A NULL key ends the field list early. */
	log_error("store operation failed", "op", ctx->op, "error", sqlite3_errmsg(s->db),
	    "sqlite_code", code, "path", s->path, ctx->key, ctx->value, NULL);
	return STORE_EIO;
}

/* Log a row this build cannot read (a hand-edited or corrupt database). */
int
sqlite_bad_row(struct sqlite_store *s, const struct sqlite_context *ctx, const char *column)
{
	log_error("store row has an invalid value", "op", ctx->op, "column", column, "path",
	    s->path, ctx->key, ctx->value, NULL);
	return STORE_EIO;
}

/* Copy a text column; NULL stays NULL. */
char *
sqlite_column_strdup(sqlite3_stmt *stmt, int column)
{
	const unsigned char *text;

	if (sqlite3_column_type(stmt, column) == SQLITE_NULL)
		return NULL;
	if ((text = sqlite3_column_text(stmt, column)) == NULL)
		fatalx("out of memory reading a database column");
	return xstrdup((const char *)text);
}

/* Run a statement that returns no rows. */
static int
stmt_run(struct sqlite_store *s, enum common_stmt_id id)
{
	sqlite3_stmt *stmt = s->stmts[SQLITE_PART_COMMON][id];
	int rc = sqlite3_step(stmt);

	stmt_done(stmt);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Is the batch's transaction gone (SQLite rolls back on a full disk, an I/O error)? */
static int
batch_lost(struct sqlite_store *s)
{
	return s->batch && sqlite3_get_autocommit(s->db);
}

/* Undo an open write (its transaction, or its savepoint in a batch), if still there. */
static void
tx_rollback(struct sqlite_store *s, const struct sqlite_context *ctx)
{
	if (sqlite3_get_autocommit(s->db))
		return;
	if (s->batch) {
		/* ROLLBACK TO keeps the savepoint open: RELEASE closes it. */
		if (stmt_run(s, STMT_CALL_UNDO) != SQLITE_OK ||
		    stmt_run(s, STMT_CALL_RELEASE) != SQLITE_OK)
			sqlite_fail(s, &(struct sqlite_context){ "rollback", "during",
			    ctx->op });
		return;
	}
	if (stmt_run(s, STMT_ROLLBACK) != SQLITE_OK)
		sqlite_fail(s, &(struct sqlite_context){ "rollback", "during", ctx->op });
}

/*
 * Start a write transaction, taking the write lock now rather than halfway through;
 * in a batch, which holds the lock already, a savepoint.
 */
int
sqlite_tx_begin(struct sqlite_store *s, const struct sqlite_context *ctx)
{
	if (batch_lost(s))
		return STORE_EIO;	/* logged when it was lost */
	if (stmt_run(s, s->batch ? STMT_CALL_BEGIN : STMT_BEGIN) != SQLITE_OK)
		return sqlite_fail(s, ctx);
	return STORE_OK;
}

/* Keep a write: commit its transaction, or release its savepoint into the batch. */
static int
tx_commit(struct sqlite_store *s)
{
	return stmt_run(s, s->batch ? STMT_CALL_RELEASE : STMT_COMMIT);
}

/* End a write transaction: commit if error is 0, else roll back; the final result. */
int
sqlite_tx_end(struct sqlite_store *s, const struct sqlite_context *ctx, int error)
{
	if (error == STORE_OK && tx_commit(s) != SQLITE_OK)
		error = sqlite_fail(s, ctx);
	if (error != STORE_OK)
		tx_rollback(s, ctx);
	return error;
}

/* Open a read transaction for one snapshot; a batch's serves in a batch. */
int
sqlite_read_begin(struct sqlite_store *s, const struct sqlite_context *ctx)
{
	if (!s->batch && stmt_run(s, STMT_READ_BEGIN) != SQLITE_OK)
		return sqlite_fail(s, ctx);
	return STORE_OK;
}

/* Close what sqlite_read_begin opened; a failed close fails a read that had not. */
int
sqlite_read_end(struct sqlite_store *s, const struct sqlite_context *ctx, int error)
{
	if (!s->batch && stmt_run(s, STMT_COMMIT) != SQLITE_OK && error == STORE_OK)
		error = sqlite_fail(s, ctx);
	return error;
}

/* Open a batch: one write transaction for many jobs. */
static int
sqlite_batch_begin(struct store *store)
{
	struct sqlite_store *s = store->data;

	if (stmt_run(s, STMT_BEGIN) != SQLITE_OK)
		return sqlite_fail(s, &(struct sqlite_context){ "batch_begin", NULL, NULL });
	s->batch = 1;
	return STORE_OK;
}

/* Commit or roll back the batch; STORE_EIO if it was lost or does not commit. */
static int
sqlite_batch_end(struct store *store, int commit)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "batch_commit", NULL, NULL };
	int error = STORE_OK;

	if (sqlite3_get_autocommit(s->db))
		error = commit ? sqlite_fail(s, &ctx) : STORE_OK;
	else if (commit && stmt_run(s, STMT_COMMIT) != SQLITE_OK) {
		error = sqlite_fail(s, &ctx);
		if (!sqlite3_get_autocommit(s->db) && stmt_run(s, STMT_ROLLBACK) != SQLITE_OK)
			sqlite_fail(s, &(struct sqlite_context){ "rollback", "during",
			    ctx.op });
	} else if (!commit && stmt_run(s, STMT_ROLLBACK) != SQLITE_OK)
		sqlite_fail(s, &(struct sqlite_context){ "batch_rollback", NULL, NULL });
	s->batch = 0;
	return error;
}

/* Start a job of the batch. */
static int
sqlite_job_begin(struct store *store)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "job_begin", NULL, NULL };

	if (batch_lost(s))
		return STORE_EIO;	/* logged when it was lost */
	if (stmt_run(s, STMT_JOB_BEGIN) != SQLITE_OK)
		return sqlite_fail(s, &ctx);
	return STORE_OK;
}

/* End a job of the batch, keeping or undoing it; STORE_EIO if the batch is lost. */
static int
sqlite_job_end(struct store *store, int keep)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "job_end", NULL, NULL };

	if (batch_lost(s)) {
		log_error("store batch rolled back by the database: its other jobs fail too",
		    "path", s->path, NULL);
		return STORE_EIO;
	}
	if ((!keep && stmt_run(s, STMT_JOB_UNDO) != SQLITE_OK) ||
	    stmt_run(s, STMT_JOB_RELEASE) != SQLITE_OK)
		return sqlite_fail(s, &ctx);
	return STORE_OK;
}

/* Create the missing directories leading to path, each 0700. */
static int
make_parents(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	char *dir, *slash, saved;
	int error = 0;

	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		goto out;
	*slash = '\0';
	if (stat(dir, &sb) == 0)
		goto out;
	for (char *p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		saved = *p;
		*p = '\0';
		if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
			store_set_err(err, errlen, "cannot create directory %s: %s", dir,
			    strerror(errno));
			error = -1;
			goto out;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
out:
	free(dir);
	return error;
}

/*
 * Create the database file 0600 if it does not exist, whatever the umask; SQLite gives
 * its -wal and -shm files the same mode. An existing file keeps its mode.
 */
static int
make_file(const char *path, char *err, size_t errlen)
{
	int fd;

	if (make_parents(path, err, errlen) != 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		if (errno == EEXIST)
			return 0;
		store_set_err(err, errlen, "cannot create database %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) == -1) {
		store_set_err(err, errlen, "cannot set the mode of database %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Set the journal, durability, cache, checkpoint and foreign-key pragmas. */
static int
sqlite_configure(struct sqlite_store *s, const struct store_options *options, char *err,
    size_t errlen)
{
	const char *sync_sql;
	sqlite3_stmt *stmt;
	const char *mode;
	char sql[96];
	int rc, page_size;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL) != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_step(stmt)) != SQLITE_ROW) {
		sqlite3_finalize(stmt);
		goto fail;
	}
	mode = (const char *)sqlite3_column_text(stmt, 0);
	if (mode != NULL && strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
		log_warn("store is not in WAL mode", "path", s->path, "journal_mode", mode, NULL);
	sqlite3_finalize(stmt);

	sync_sql = options->sync == STORE_SYNC_NORMAL ? "PRAGMA synchronous = NORMAL" :
	    "PRAGMA synchronous = FULL";
	if (sqlite3_exec(s->db, sync_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	/* A negative cache_size is in KiB; wal_autocheckpoint counts pages. */
	if (options->cache_size > 0) {
		snprintf(sql, sizeof sql, "PRAGMA cache_size = -%zu", options->cache_size / 1024);
		if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
	}
	if (options->checkpoint_size > 0) {
		if (sqlite3_prepare_v2(s->db, "PRAGMA page_size", -1, &stmt, NULL) != SQLITE_OK)
			goto fail;
		page_size = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int(stmt, 0) : 0;
		sqlite3_finalize(stmt);
		if (page_size <= 0)
			goto fail;
		snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint = %zu",
		    options->checkpoint_size / (size_t)page_size);
		if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
	}
	return STORE_OK;

fail:
	store_set_err(err, errlen, "database %s: %s", s->path, sqlite3_errmsg(s->db));
	return STORE_EIO;
}

/* Finalize the statements, close the connection and free the state. */
static void
sqlite_free(struct sqlite_store *s)
{
	int rc;

	for (size_t part = 0; part < SQLITE_PART_COUNT; part++) {
		if (s->stmts[part] == NULL)
			continue;
		for (size_t i = 0; i < sqlite_parts[part]->count; i++)
			sqlite3_finalize(s->stmts[part][i]);
		free(s->stmts[part]);
	}
	if (s->wal_fd != -1)
		close(s->wal_fd);
	if (s->db != NULL && (rc = sqlite3_close(s->db)) != SQLITE_OK)
		log_error("store close failed", "path", s->path, "error", sqlite3_errstr(rc),
		    NULL);
	free(s->path);
	free(s);
}

/* Open (creating if needed) and migrate the database, then prepare every statement. */
static int
sqlite_open(struct store *store, const struct store_options *options, char *err,
    size_t errlen)
{
	struct sqlite_store *s;
	int error, rc;

	if (options == NULL || options->path == NULL || options->path[0] == '\0') {
		store_set_err(err, errlen, "store path is empty");
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
	s->path = xstrdup(options->path);
	s->sync_full = options->sync == STORE_SYNC_FULL;
	s->wal_fd = -1;
	if (strcmp(s->path, ":memory:") != 0 && make_file(s->path, err, errlen) != 0) {
		error = STORE_EIO;
		goto fail;
	}
	rc = sqlite3_open_v2(s->path, &s->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		store_set_err(err, errlen, "database %s: %s", s->path,
		    s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		error = STORE_EIO;
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, options->busy_timeout_ms);

	/* Refuse a newer database before changing anything in it, even its journal mode. */
	if ((error = sqlite_schema_check(s, err, errlen)) != STORE_OK ||
	    (error = sqlite_configure(s, options, err, errlen)) != STORE_OK ||
	    (error = sqlite_schema_migrate(s, err, errlen)) != STORE_OK)
		goto fail;

	for (size_t part = 0; part < SQLITE_PART_COUNT; part++) {
		const struct sqlite_statements *statements = sqlite_parts[part];

		s->stmts[part] = xcalloc(statements->count, sizeof *s->stmts[part]);
		for (size_t i = 0; i < statements->count; i++) {
			rc = sqlite3_prepare_v3(s->db, statements->sql[i], -1,
			    SQLITE_PREPARE_PERSISTENT, &s->stmts[part][i], NULL);
			if (rc != SQLITE_OK) {
				store_set_err(err, errlen, "database %s: preparing \"%s\": %s",
				    s->path, statements->sql[i], sqlite3_errmsg(s->db));
				error = STORE_EIO;
				goto fail;
			}
		}
	}
	store->data = s;
	return STORE_OK;

fail:
	sqlite_free(s);
	return error;
}

/* Close the connection; the store itself is freed by store_close. */
static void
sqlite_close(struct store *store)
{
	sqlite_free(store->data);
	store->data = NULL;
}

/* Check that the database can still be read. */
static int
sqlite_ping(struct store *store)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "ping", NULL, NULL };
	sqlite3_stmt *stmt = s->stmts[SQLITE_PART_COMMON][STMT_PING];
	int rc;

	rc = sqlite3_step(stmt);
	stmt_done(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sqlite_fail(s, &ctx);
	return STORE_OK;
}

/*
 * Add an outbox row and delete it in one transaction: no row remains, but the commit
 * writes pages to the log as any other would, so it fails when writes fail.
 */
static int
sqlite_probe_write(struct store *store, char *err, size_t errlen)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "probe_write", NULL, NULL };
	int error;

	if ((error = sqlite_tx_begin(s, &ctx)) == STORE_OK)
		error = sqlite_outbox_probe(s, &ctx);
	if (error == STORE_OK && tx_commit(s) != SQLITE_OK)
		error = sqlite_fail(s, &ctx);
	if (error != STORE_OK) {
		store_set_err(err, errlen, "%s", sqlite3_errmsg(s->db));
		tx_rollback(s, &ctx);
	}
	return error;
}

/* Step a statement that returns rows into a growing array; see sqlite_internal.h. */
int
sqlite_rows_load(struct sqlite_store *s, const struct sqlite_context *ctx, sqlite3_stmt *stmt,
    void **out, size_t *count, size_t elem_size, void (*fill)(sqlite3_stmt *, void *))
{
	size_t capacity = 0;
	int error = STORE_OK, rc;

	*out = NULL;
	*count = 0;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (*count == capacity) {
			capacity = capacity == 0 ? 16 : capacity * 2;
			*out = xreallocarray(*out, capacity, elem_size);
		}
		fill(stmt, (char *)*out + *count * elem_size);
		(*count)++;
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, ctx);
	stmt_done(stmt);
	return error;
}

/* fsync the directory that holds path, so that a file created in it stays. */
static int
sync_parent(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int fd, rc = -1;

	if (slash == NULL)
		snprintf(dir, strlen(dir) + 1, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		rc = fsync(fd);
		close(fd);
	}
	free(dir);
	return rc;
}

/*
 * Commit without the fsync, which sqlite_flush does on the WAL: open the WAL (a read
 * makes sure it exists) and make its directory entry durable, as SQLite would at its
 * first sync, then switch the connection to synchronous=NORMAL. Anything that fails
 * leaves the connection as it was.
 */
static int
sqlite_flush_apart(struct store *store)
{
	struct sqlite_store *s = store->data;
	const char *wal, *why = NULL;
	sqlite3_stmt *stmt;
	int fd = -1, wal_mode;

	if (!s->sync_full || s->batch || s->wal_fd != -1)
		return STORE_EINVAL;
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &stmt, NULL) != SQLITE_OK)
		return sqlite_fail(s, &(struct sqlite_context){ "flush_apart", NULL, NULL });
	wal_mode = sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != NULL &&
	    strcmp((const char *)sqlite3_column_text(stmt, 0), "wal") == 0;
	sqlite3_finalize(stmt);
	if (!wal_mode)
		return STORE_EINVAL;	/* ":memory:", or a file that refused WAL (logged) */
	if (sqlite_ping(store) != STORE_OK)
		return STORE_EIO;
	wal = sqlite3_filename_wal(sqlite3_db_filename(s->db, "main"));
	if (wal == NULL || (fd = open(wal, O_RDWR | O_CLOEXEC)) == -1)
		why = strerror(wal == NULL ? ENOENT : errno);
	else if (sync_parent(wal) == -1)
		why = strerror(errno);
	else if (sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) !=
	    SQLITE_OK)
		why = sqlite3_errmsg(s->db);
	if (why != NULL) {
		log_warn("store cannot flush its log apart: each commit waits for its fsync",
		    "path", s->path, "error", why, NULL);
		if (fd != -1)
			close(fd);
		return STORE_EINVAL;
	}
	s->wal_fd = fd;
	return STORE_OK;
}

/* Make the commits so far durable: fdatasync the WAL. Any thread. */
static int
sqlite_flush(struct store *store)
{
	struct sqlite_store *s = store->data;

	if (fdatasync(s->wal_fd) == -1) {
		log_error("store flush failed", "error", strerror(errno), "path", s->path, NULL);
		return STORE_EIO;
	}
	return STORE_OK;
}

const struct store_backend store_sqlite_backend = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.ping = sqlite_ping,
	.probe_write = sqlite_probe_write,
	.batch_begin = sqlite_batch_begin,
	.batch_end = sqlite_batch_end,
	.job_begin = sqlite_job_begin,
	.job_end = sqlite_job_end,
	.flush_apart = sqlite_flush_apart,
	.flush = sqlite_flush,
	.registry = &sqlite_registry_ops,
	.ledger = &sqlite_ledger_ops,
	.outbox = &sqlite_outbox_ops,
	.marks = &sqlite_marks_ops,
};
