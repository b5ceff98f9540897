/*
 * The SQLite registry backend.
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
 * The schema is versioned with PRAGMA user_version and brought forward by the
 * migrations below, each in its own transaction. A database from a newer build is
 * refused before anything in it is changed.
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

#include "hash.h"
#include "log.h"
#include "store.h"
#include "store_ledger.h"
#include "store_marks.h"
#include "store_outbox.h"
#include "store_registry.h"
#include "xmalloc.h"

/*
 * Forward migrations: entry N takes user_version N to N + 1. Never edit a released
 * entry; append a new one and raise STORE_SCHEMA_VERSION.
 */
static const char *const sqlite_migrations[] = {
	/* 1: the initial schema. */
	"CREATE TABLE devices ("
	"  device_id TEXT PRIMARY KEY,"
	"  client_id TEXT NOT NULL,"
	"  platform TEXT NOT NULL CHECK (platform IN ('apns', 'fcm')),"
	"  token TEXT NOT NULL,"
	"  app_id TEXT NOT NULL,"
	"  environment TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),"
	"  locale TEXT,"
	"  metadata TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  last_success_at INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT,"
	"  last_error_at INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (platform, token)"
	");"
	"CREATE INDEX devices_client_id ON devices (client_id);"
	"CREATE TABLE memberships ("
	"  room_id TEXT NOT NULL,"
	"  client_id TEXT NOT NULL,"
	"  joined_at INTEGER NOT NULL,"
	"  muted_until INTEGER NOT NULL DEFAULT 0,"
	"  mentions_only INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (room_id, client_id)"
	") WITHOUT ROWID;"
	"CREATE INDEX memberships_client_id ON memberships (client_id);",
	/* 2: pushes accepted by POST /v1/push, with one row per device. */
	"CREATE TABLE pushes ("
	"  push_id TEXT PRIMARY KEY,"
	"  created_at INTEGER NOT NULL,"
	"  content TEXT NOT NULL,"
	"  badge_per_recipient INTEGER NOT NULL DEFAULT 0,"
	"  finished_at INTEGER NOT NULL DEFAULT 0"
	") WITHOUT ROWID;"
	"CREATE INDEX pushes_finished_at ON pushes (finished_at);"
	"CREATE TABLE push_devices ("
	"  push_id TEXT NOT NULL REFERENCES pushes (push_id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  device_id TEXT NOT NULL,"
	"  client_id TEXT NOT NULL,"
	"  platform TEXT NOT NULL CHECK (platform IN ('apns', 'fcm')),"
	"  app_id TEXT NOT NULL,"
	"  badge INTEGER NOT NULL DEFAULT -1,"
	"  state TEXT NOT NULL,"
	"  reason TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (push_id, idx)"
	") WITHOUT ROWID;",
	/* 3: room routing: notified devices, unread counts, the HTTP event outbox. */
	"CREATE TABLE notified ("
	"  room_id TEXT NOT NULL,"
	"  message_id TEXT NOT NULL,"
	"  device_id TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  PRIMARY KEY (room_id, message_id, device_id)"
	") WITHOUT ROWID;"
	"CREATE INDEX notified_at ON notified (at);"
	"CREATE TABLE unread ("
	"  client_id TEXT NOT NULL,"
	"  room_id TEXT NOT NULL,"
	"  count INTEGER NOT NULL,"
	"  PRIMARY KEY (client_id, room_id)"
	") WITHOUT ROWID;"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY,"
	"  received_at INTEGER NOT NULL,"
	"  body TEXT NOT NULL"
	");",
	/*
	 * 4: notified devices appended in time order and found through a small index on
	 * a hash of room and message (pushrelay_message_key(), which must never change),
	 * instead of a primary key of three strings that every mark inserted into at
	 * random. Expiry walks the rows in order instead of an index on the time.
	 */
	"CREATE TABLE notified_v4 ("
	"  id INTEGER PRIMARY KEY,"
	"  message_key INTEGER NOT NULL,"
	"  room_id TEXT NOT NULL,"
	"  message_id TEXT NOT NULL,"
	"  device_id TEXT NOT NULL,"
	"  at INTEGER NOT NULL"
	");"
	"INSERT INTO notified_v4 (message_key, room_id, message_id, device_id, at)"
	"  SELECT pushrelay_message_key(room_id, message_id), room_id, message_id,"
	"    device_id, at FROM notified ORDER BY at;"
	"DROP TABLE notified;"
	"ALTER TABLE notified_v4 RENAME TO notified;"
	"CREATE INDEX notified_message_key ON notified (message_key);",
	/*
	 * 5: each outbox row says what it holds, instead of the replay telling an Ably
	 * webhook ({"ably":{...}}) from events by its body. The rows written before are
	 * classified once here, the Ably ones losing their wrapper.
	 */
	"CREATE TABLE outbox_v5 ("
	"  id INTEGER PRIMARY KEY,"
	"  received_at INTEGER NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('events', 'ably')),"
	"  body TEXT NOT NULL"
	");"
	"INSERT INTO outbox_v5 (id, received_at, kind, body)"
	"  SELECT id, received_at, CASE WHEN ably THEN 'ably' ELSE 'events' END,"
	"    CASE WHEN ably THEN json_extract(body, '$.ably') ELSE body END"
	"  FROM (SELECT id, received_at, body, CASE WHEN json_valid(body)"
	"    THEN json_type(body, '$.ably') IS 'object' ELSE 0 END AS ably FROM outbox);"
	"DROP TABLE outbox;"
	"ALTER TABLE outbox_v5 RENAME TO outbox;",
};

_Static_assert(sizeof sqlite_migrations / sizeof sqlite_migrations[0] == STORE_SCHEMA_VERSION,
    "one migration per schema version");

enum sqlite_stmt {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_CALL_BEGIN,
	STMT_CALL_RELEASE,
	STMT_CALL_UNDO,
	STMT_JOB_BEGIN,
	STMT_JOB_RELEASE,
	STMT_JOB_UNDO,
	STMT_PING,
	STMT_DEVICE_GET,
	STMT_DEVICE_EXISTS,
	STMT_CLIENT_IN_A_ROOM,
	STMT_DEVICE_BY_TOKEN,
	STMT_DEVICE_UPSERT,
	STMT_DEVICE_DELETE,
	STMT_CLIENT_DEVICES_LIST,
	STMT_CLIENT_DEVICES_DELETE,
	STMT_DEVICE_COUNT,
	STMT_DEVICE_MARK_SUCCESS,
	STMT_DEVICE_MARK_ERROR,
	STMT_DEVICE_REMOVE_TOKEN,
	STMT_MEMBER_GET,
	STMT_MEMBER_INSERT,
	STMT_MEMBER_DELETE,
	STMT_ROOM_MEMBERS_LIST,
	STMT_MEMBER_PREFS_PUT,
	STMT_TARGETS_DEVICE,
	STMT_TARGETS_CLIENT,
	STMT_TARGETS_ROOM,
	STMT_ROUTE_MEMBERS,
	STMT_ROUTE_NOTIFIED,
	STMT_NOTIFIED_ADD,
	STMT_NOTIFIED_EXPIRE,
	STMT_UNREAD_PUT,
	STMT_UNREAD_DELETE,
	STMT_UNREAD_LOAD,
	STMT_OUTBOX_ADD,
	STMT_OUTBOX_DELETE,
	STMT_OUTBOX_LOAD,
	STMT_READ_BEGIN,
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

/* The column order device_from_row and member_from_row read. */
#define DEVICE_COLUMNS "device_id, client_id, platform, token, app_id, environment, " \
	"locale, metadata, created_at, updated_at, last_success_at, last_error, last_error_at"
#define TARGET_COLUMNS "d.device_id, d.client_id, d.platform, d.token, d.app_id, " \
	"d.environment, d.updated_at, d.last_success_at"
#define MEMBER_COLUMNS "room_id, client_id, joined_at, muted_until, mentions_only"

static const char *const sqlite_stmt_sql[STMT_COUNT] = {
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_CALL_BEGIN] = "SAVEPOINT call",
	[STMT_CALL_RELEASE] = "RELEASE call",
	[STMT_CALL_UNDO] = "ROLLBACK TO call",
	[STMT_JOB_BEGIN] = "SAVEPOINT job",
	[STMT_JOB_RELEASE] = "RELEASE job",
	[STMT_JOB_UNDO] = "ROLLBACK TO job",
	[STMT_PING] = "SELECT 1 FROM devices LIMIT 1",
	[STMT_DEVICE_GET] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE device_id = ?1",
	[STMT_DEVICE_EXISTS] = "SELECT 1 FROM devices WHERE device_id = ?1",
	[STMT_CLIENT_IN_A_ROOM] = "SELECT 1 FROM memberships WHERE client_id = ?1 LIMIT 1",
	[STMT_DEVICE_BY_TOKEN] =
	    "SELECT device_id FROM devices WHERE platform = ?1 AND token = ?2",
	/*
	 * On update the right-hand sides see the old row, so the delivery state is kept
	 * only when (platform, token) is unchanged.
	 */
	[STMT_DEVICE_UPSERT] =
	    "INSERT INTO devices (device_id, client_id, platform, token, app_id, environment,"
	    " locale, metadata, created_at, updated_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)"
	    " ON CONFLICT (device_id) DO UPDATE SET"
	    " client_id = excluded.client_id, platform = excluded.platform,"
	    " token = excluded.token, app_id = excluded.app_id,"
	    " environment = excluded.environment, locale = excluded.locale,"
	    " metadata = excluded.metadata, updated_at = excluded.updated_at,"
	    " last_success_at = CASE WHEN devices.platform = excluded.platform"
	    "  AND devices.token = excluded.token THEN devices.last_success_at ELSE 0 END,"
	    " last_error = CASE WHEN devices.platform = excluded.platform"
	    "  AND devices.token = excluded.token THEN devices.last_error ELSE NULL END,"
	    " last_error_at = CASE WHEN devices.platform = excluded.platform"
	    "  AND devices.token = excluded.token THEN devices.last_error_at ELSE 0 END",
	[STMT_DEVICE_DELETE] = "DELETE FROM devices WHERE device_id = ?1",
	[STMT_CLIENT_DEVICES_LIST] =
	    "SELECT " DEVICE_COLUMNS " FROM devices WHERE client_id = ?1 ORDER BY device_id",
	[STMT_CLIENT_DEVICES_DELETE] = "DELETE FROM devices WHERE client_id = ?1",
	[STMT_DEVICE_COUNT] = "SELECT count(*) FROM devices",
	[STMT_DEVICE_MARK_SUCCESS] =
	    "UPDATE devices SET last_success_at = ?2 WHERE device_id = ?1",
	[STMT_DEVICE_MARK_ERROR] =
	    "UPDATE devices SET last_error = ?2, last_error_at = ?3 WHERE device_id = ?1",
	[STMT_DEVICE_REMOVE_TOKEN] =
	    "DELETE FROM devices WHERE platform = ?1 AND token = ?2 AND updated_at <= ?3"
	    " RETURNING device_id",
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
	[STMT_TARGETS_DEVICE] = "SELECT " TARGET_COLUMNS " FROM devices d WHERE device_id = ?1",
	[STMT_TARGETS_CLIENT] =
	    "SELECT " TARGET_COLUMNS " FROM devices d WHERE client_id = ?1 ORDER BY device_id",
	[STMT_TARGETS_ROOM] =
	    "SELECT " TARGET_COLUMNS " FROM memberships m JOIN devices d"
	    " ON d.client_id = m.client_id WHERE m.room_id = ?1"
	    " ORDER BY d.client_id, d.device_id",
	[STMT_ROUTE_MEMBERS] =
	    "SELECT m.client_id, m.muted_until, m.mentions_only, " TARGET_COLUMNS
	    " FROM memberships m LEFT JOIN devices d ON d.client_id = m.client_id"
	    " WHERE m.room_id = ?1 ORDER BY m.client_id, d.device_id",
	[STMT_ROUTE_NOTIFIED] =
	    "SELECT DISTINCT device_id FROM notified"
	    " WHERE message_key = ?3 AND room_id = ?1 AND message_id = ?2",
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
	[STMT_OUTBOX_ADD] = "INSERT INTO outbox (received_at, body, kind) VALUES (?1, ?2, ?3)",
	[STMT_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1",
	[STMT_OUTBOX_LOAD] = "SELECT id, received_at, body, kind FROM outbox ORDER BY id",
	[STMT_READ_BEGIN] = "BEGIN",
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

struct sqlite_store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmts[STMT_COUNT];
	int batch;		/* a batch's transaction was opened (it may be lost since) */
};

/* What a failing call was doing, for its one log line. */
struct sqlite_context {
	const char *op;
	const char *key;	/* NULL when there is no subject */
	const char *value;
};

static const char *const sqlite_platform_names[] = { "apns", "fcm" };
static const char *const sqlite_environment_names[] = { "production", "sandbox" };

#define NITEMS(a) (sizeof (a) / sizeof (a)[0])

/* The stored name of a platform, NULL if out of range. */
static const char *
platform_name(enum device_platform platform)
{
	if ((unsigned int)platform >= NITEMS(sqlite_platform_names))
		return NULL;
	return sqlite_platform_names[platform];
}

/* The stored name of an environment, NULL if out of range. */
static const char *
environment_name(enum device_environment environment)
{
	if ((unsigned int)environment >= NITEMS(sqlite_environment_names))
		return NULL;
	return sqlite_environment_names[environment];
}

/* Find a name's index in a table; -1 if absent. */
static int
name_index(const char *const *names, size_t count, const char *name)
{
	if (name == NULL)
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (strcmp(names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

/* Write an open error for the caller. */
static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Log a failed SQLite call once, with what was being done, and return STORE_EIO. */
static int
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
static int
sqlite_bad_row(struct sqlite_store *s, const struct sqlite_context *ctx, const char *column)
{
	log_error("store row has an invalid value", "op", ctx->op, "column", column, "path",
	    s->path, ctx->key, ctx->value, NULL);
	return STORE_EIO;
}

/* Make a statement ready for its next use; static bindings are released here. */
static void
stmt_done(sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

/* Bind a string or NULL; the string must live until stmt_done. */
static int
bind_text(sqlite3_stmt *stmt, int param, const char *value)
{
	if (value == NULL)
		return sqlite3_bind_null(stmt, param);
	return sqlite3_bind_text(stmt, param, value, -1, SQLITE_STATIC);
}

/* Bind a 64-bit integer. */
static int
bind_int64(sqlite3_stmt *stmt, int param, int64_t value)
{
	return sqlite3_bind_int64(stmt, param, value);
}

/* Copy a text column; NULL stays NULL. */
static char *
column_strdup(sqlite3_stmt *stmt, int column)
{
	const unsigned char *text;

	if (sqlite3_column_type(stmt, column) == SQLITE_NULL)
		return NULL;
	if ((text = sqlite3_column_text(stmt, column)) == NULL)
		fatalx("out of memory reading a database column");
	return xstrdup((const char *)text);
}

/* Free a device's strings (as model_device_free does, without depending on it). */
static void
device_clear(struct device *device)
{
	free(device->device_id);
	free(device->client_id);
	free(device->token);
	free(device->app_id);
	free(device->locale);
	free(device->metadata);
	free(device->last_error);
	memset(device, 0, sizeof *device);
}

/* Free a membership's strings. */
static void
member_clear(struct member *member)
{
	free(member->room_id);
	free(member->client_id);
	memset(member, 0, sizeof *member);
}

/* Fill a device from a row of DEVICE_COLUMNS; STORE_EIO (logged) if it is invalid. */
static int
device_from_row(struct sqlite_store *s, const struct sqlite_context *ctx, sqlite3_stmt *stmt,
    struct device *out)
{
	const char *column = NULL;
	int platform, environment;

	memset(out, 0, sizeof *out);
	platform = name_index(sqlite_platform_names, NITEMS(sqlite_platform_names),
	    (const char *)sqlite3_column_text(stmt, 2));
	environment = name_index(sqlite_environment_names, NITEMS(sqlite_environment_names),
	    (const char *)sqlite3_column_text(stmt, 5));
	out->device_id = column_strdup(stmt, 0);
	out->client_id = column_strdup(stmt, 1);
	out->token = column_strdup(stmt, 3);
	out->app_id = column_strdup(stmt, 4);
	out->locale = column_strdup(stmt, 6);
	out->metadata = column_strdup(stmt, 7);
	out->created_at = sqlite3_column_int64(stmt, 8);
	out->updated_at = sqlite3_column_int64(stmt, 9);
	out->last_success_at = sqlite3_column_int64(stmt, 10);
	out->last_error = column_strdup(stmt, 11);
	out->last_error_at = sqlite3_column_int64(stmt, 12);

	if (out->device_id == NULL)
		column = "device_id";
	else if (out->client_id == NULL)
		column = "client_id";
	else if (platform < 0)
		column = "platform";
	else if (out->token == NULL)
		column = "token";
	else if (out->app_id == NULL)
		column = "app_id";
	else if (environment < 0)
		column = "environment";
	if (column != NULL) {
		device_clear(out);
		return sqlite_bad_row(s, ctx, column);
	}
	out->platform = (enum device_platform)platform;
	out->environment = (enum device_environment)environment;
	return STORE_OK;
}

/* Fill a member from a row of MEMBER_COLUMNS; STORE_EIO (logged) if it is invalid. */
static int
member_from_row(struct sqlite_store *s, const struct sqlite_context *ctx, sqlite3_stmt *stmt,
    struct member *out)
{
	memset(out, 0, sizeof *out);
	out->room_id = column_strdup(stmt, 0);
	out->client_id = column_strdup(stmt, 1);
	out->joined_at = sqlite3_column_int64(stmt, 2);
	out->muted_until = sqlite3_column_int64(stmt, 3);
	out->mentions_only = sqlite3_column_int(stmt, 4) != 0;
	if (out->room_id == NULL || out->client_id == NULL) {
		member_clear(out);
		return sqlite_bad_row(s, ctx, out->room_id == NULL ? "room_id" : "client_id");
	}
	return STORE_OK;
}

/* Run a statement that returns no rows. */
static int
stmt_run(struct sqlite_store *s, enum sqlite_stmt id)
{
	int rc = sqlite3_step(s->stmts[id]);

	stmt_done(s->stmts[id]);
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
static int
tx_begin(struct sqlite_store *s, const struct sqlite_context *ctx)
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
static int
tx_end(struct sqlite_store *s, const struct sqlite_context *ctx, int error)
{
	if (error == STORE_OK && tx_commit(s) != SQLITE_OK)
		error = sqlite_fail(s, ctx);
	if (error != STORE_OK)
		tx_rollback(s, ctx);
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

/* Read one device by id into out. */
static int
device_read(struct sqlite_store *s, const struct sqlite_context *ctx, const char *device_id,
    struct device *out)
{
	sqlite3_stmt *stmt = s->stmts[STMT_DEVICE_GET];
	int error, rc;

	memset(out, 0, sizeof *out);
	if (bind_text(stmt, 1, device_id) != SQLITE_OK)
		error = sqlite_fail(s, ctx);
	else if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		error = device_from_row(s, ctx, stmt, out);
	else if (rc == SQLITE_DONE)
		error = STORE_ENOTFOUND;
	else
		error = sqlite_fail(s, ctx);
	stmt_done(stmt);
	return error;
}

/* Read one membership into out. */
static int
member_read(struct sqlite_store *s, const struct sqlite_context *ctx, const char *room_id,
    const char *client_id, struct member *out)
{
	sqlite3_stmt *stmt = s->stmts[STMT_MEMBER_GET];
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

/* Run a one-off statement at open and return its first integer; -1 on error. */
static int
exec_int(sqlite3 *db, const char *sql, int *out)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW ? 0 : -1;
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
			set_err(err, errlen, "cannot create directory %s: %s", dir,
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
		set_err(err, errlen, "cannot create database %s: %s", path, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) == -1) {
		set_err(err, errlen, "cannot set the mode of database %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Bring the schema up to STORE_SCHEMA_VERSION, one transaction per migration. */
/*
 * The notified table's hash of a room and a message id: hash64() of "room\0message"
 * with seed 0. Stored in the database: it must never change. Rows are matched on
 * room and message too, so two messages with one key only cost a row more to read.
 */
static int64_t
message_key(const char *room_id, const char *message_id)
{
	size_t room_len = strlen(room_id), message_len = strlen(message_id);
	char stack[2 * MODEL_ID_MAX + 2], *key;
	int64_t h;

	key = room_len + message_len + 1 <= sizeof stack ? stack :
	    xmalloc(room_len + message_len + 1);
	memcpy(key, room_id, room_len + 1);
	memcpy(key + room_len + 1, message_id, message_len);
	h = (int64_t)hash64(0, key, room_len + 1 + message_len);
	if (key != stack)
		free(key);
	return h;
}

/* pushrelay_message_key(room_id, message_id) in SQL, for the migration to version 4. */
static void
sql_message_key(sqlite3_context *context, int argc, sqlite3_value **argv)
{
	const char *room_id = (const char *)sqlite3_value_text(argv[0]);
	const char *message_id = (const char *)sqlite3_value_text(argv[1]);

	if (room_id == NULL || message_id == NULL) {
		sqlite3_result_null(context);
		return;
	}
	sqlite3_result_int64(context, message_key(room_id, message_id));
}

static int
sqlite_migrate(struct sqlite_store *s, char *err, size_t errlen)
{
	char sql[64], version_text[16];
	int version;

	for (;;) {
		if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
		/* Read again under the lock: another process may have migrated meanwhile. */
		if (exec_int(s->db, "PRAGMA user_version", &version) != 0)
			goto fail;
		if (version < 0) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			set_err(err, errlen, "database %s has an invalid schema version %d",
			    s->path, version);
			return STORE_EIO;
		}
		if (version > STORE_SCHEMA_VERSION) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			set_err(err, errlen, "database %s has schema version %d, this pushrelayd "
			    "supports up to %d: upgrade pushrelayd", s->path, version,
			    STORE_SCHEMA_VERSION);
			return STORE_ENEWER;
		}
		if (version == STORE_SCHEMA_VERSION)
			break;
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version + 1);
		if (sqlite3_exec(s->db, sqlite_migrations[version], NULL, NULL, NULL) !=
		    SQLITE_OK || sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
		snprintf(version_text, sizeof version_text, "%d", version + 1);
		log_info("store schema migrated", "path", s->path, "version", version_text, NULL);
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return STORE_OK;

fail:
	set_err(err, errlen, "database %s: schema migration failed: %s", s->path,
	    sqlite3_errmsg(s->db));
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return STORE_EIO;
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
	set_err(err, errlen, "database %s: %s", s->path, sqlite3_errmsg(s->db));
	return STORE_EIO;
}

/* Finalize the statements, close the connection and free the state. */
static void
sqlite_free(struct sqlite_store *s)
{
	int rc;

	for (size_t i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
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
	int error, rc, version;

	if (options == NULL || options->path == NULL || options->path[0] == '\0') {
		set_err(err, errlen, "store path is empty");
		return STORE_EINVAL;
	}
	if (options->sync != STORE_SYNC_FULL && options->sync != STORE_SYNC_NORMAL) {
		set_err(err, errlen, "unknown store sync mode %d", (int)options->sync);
		return STORE_EINVAL;
	}
	if (options->busy_timeout_ms < 0) {
		set_err(err, errlen, "store busy timeout %d is negative",
		    options->busy_timeout_ms);
		return STORE_EINVAL;
	}

	s = xcalloc(1, sizeof *s);
	s->path = xstrdup(options->path);
	if (strcmp(s->path, ":memory:") != 0 && make_file(s->path, err, errlen) != 0) {
		error = STORE_EIO;
		goto fail;
	}
	rc = sqlite3_open_v2(s->path, &s->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, "database %s: %s", s->path,
		    s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		error = STORE_EIO;
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, options->busy_timeout_ms);

	/* Refuse a newer database before changing anything in it, even its journal mode. */
	if (exec_int(s->db, "PRAGMA user_version", &version) != 0) {
		set_err(err, errlen, "database %s: %s", s->path, sqlite3_errmsg(s->db));
		error = STORE_EIO;
		goto fail;
	}
	if (version > STORE_SCHEMA_VERSION) {
		set_err(err, errlen, "database %s has schema version %d, this pushrelayd supports "
		    "up to %d: upgrade pushrelayd", s->path, version, STORE_SCHEMA_VERSION);
		error = STORE_ENEWER;
		goto fail;
	}
	if (sqlite3_create_function(s->db, "pushrelay_message_key", 2,
	    SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_message_key, NULL, NULL) != SQLITE_OK) {
		set_err(err, errlen, "database %s: %s", s->path, sqlite3_errmsg(s->db));
		error = STORE_EIO;
		goto fail;
	}
	if ((error = sqlite_configure(s, options, err, errlen)) != STORE_OK ||
	    (error = sqlite_migrate(s, err, errlen)) != STORE_OK)
		goto fail;

	for (size_t i = 0; i < STMT_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, sqlite_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &s->stmts[i], NULL);
		if (rc != SQLITE_OK) {
			set_err(err, errlen, "database %s: preparing \"%s\": %s", s->path,
			    sqlite_stmt_sql[i], sqlite3_errmsg(s->db));
			error = STORE_EIO;
			goto fail;
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
	sqlite3_stmt *stmt = s->stmts[STMT_PING];
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
	sqlite3_stmt *add = s->stmts[STMT_OUTBOX_ADD], *del = s->stmts[STMT_OUTBOX_DELETE];
	int error;

	if ((error = tx_begin(s, &ctx)) == STORE_OK) {
		if (bind_int64(add, 1, 0) != SQLITE_OK || bind_text(add, 2, "") != SQLITE_OK ||
		    bind_text(add, 3, "events") != SQLITE_OK || sqlite3_step(add) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(add);
	}
	if (error == STORE_OK) {
		if (bind_int64(del, 1, sqlite3_last_insert_rowid(s->db)) != SQLITE_OK ||
		    sqlite3_step(del) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(del);
	}
	if (error == STORE_OK && tx_commit(s) != SQLITE_OK)
		error = sqlite_fail(s, &ctx);
	if (error != STORE_OK) {
		set_err(err, errlen, "%s", sqlite3_errmsg(s->db));
		tx_rollback(s, &ctx);
	}
	return error;
}

/*
 * Insert or update a device. A token held by another device is moved here: that
 * device is deleted first (an app reinstalled under a new device id keeps its token).
 * The stored row is read back inside the transaction, so it is what was committed.
 */
static int
sqlite_device_put(struct store *store, const struct device *device, int64_t now,
    enum store_put_result *result, struct device *stored, int *routed)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_put", "device_id", NULL };
	const char *platform, *environment;
	char redacted[LOG_REDACT_SIZE];
	struct device row;
	sqlite3_stmt *stmt;
	char *holder = NULL;
	int error = STORE_OK, exists = 0, rc;

	if (device == NULL || device->device_id == NULL || device->client_id == NULL ||
	    device->token == NULL || device->app_id == NULL)
		return STORE_EINVAL;
	if ((platform = platform_name(device->platform)) == NULL ||
	    (environment = environment_name(device->environment)) == NULL)
		return STORE_EINVAL;
	ctx.value = device->device_id;
	memset(&row, 0, sizeof row);

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;

	stmt = s->stmts[STMT_DEVICE_EXISTS];
	if (bind_text(stmt, 1, device->device_id) != SQLITE_OK ||
	    ((rc = sqlite3_step(stmt)) != SQLITE_ROW && rc != SQLITE_DONE))
		error = sqlite_fail(s, &ctx);
	else
		exists = rc == SQLITE_ROW;
	stmt_done(stmt);
	if (error != STORE_OK)
		goto out;

	stmt = s->stmts[STMT_DEVICE_BY_TOKEN];
	if (bind_text(stmt, 1, platform) != SQLITE_OK ||
	    bind_text(stmt, 2, device->token) != SQLITE_OK ||
	    ((rc = sqlite3_step(stmt)) != SQLITE_ROW && rc != SQLITE_DONE))
		error = sqlite_fail(s, &ctx);
	else if (rc == SQLITE_ROW) {
		holder = column_strdup(stmt, 0);
		if (holder != NULL && strcmp(holder, device->device_id) == 0) {
			free(holder);
			holder = NULL;
		}
	}
	stmt_done(stmt);
	if (error != STORE_OK)
		goto out;

	if (holder != NULL) {
		stmt = s->stmts[STMT_DEVICE_DELETE];
		if (bind_text(stmt, 1, holder) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
		if (error != STORE_OK)
			goto out;
	}

	stmt = s->stmts[STMT_DEVICE_UPSERT];
	if (bind_text(stmt, 1, device->device_id) != SQLITE_OK ||
	    bind_text(stmt, 2, device->client_id) != SQLITE_OK ||
	    bind_text(stmt, 3, platform) != SQLITE_OK ||
	    bind_text(stmt, 4, device->token) != SQLITE_OK ||
	    bind_text(stmt, 5, device->app_id) != SQLITE_OK ||
	    bind_text(stmt, 6, environment) != SQLITE_OK ||
	    bind_text(stmt, 7, device->locale) != SQLITE_OK ||
	    bind_text(stmt, 8, device->metadata) != SQLITE_OK ||
	    bind_int64(stmt, 9, now) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	if (error != STORE_OK)
		goto out;

	/*
	 * A new device with a token of its own, of a client in no room, is on no room's
	 * route: the generation can stay. Otherwise (an update, a token taken from
	 * another device, a member's device) it must move.
	 */
	*routed = exists || holder != NULL;
	if (!*routed) {
		stmt = s->stmts[STMT_CLIENT_IN_A_ROOM];
		if (bind_text(stmt, 1, device->client_id) != SQLITE_OK ||
		    ((rc = sqlite3_step(stmt)) != SQLITE_ROW && rc != SQLITE_DONE))
			error = sqlite_fail(s, &ctx);
		else
			*routed = rc == SQLITE_ROW;
		stmt_done(stmt);
		if (error != STORE_OK)
			goto out;
	}

	if (stored != NULL && (error = device_read(s, &ctx, device->device_id, &row)) ==
	    STORE_ENOTFOUND)
		error = sqlite_bad_row(s, &ctx, "device_id");

out:
	error = tx_end(s, &ctx, error);
	if (error != STORE_OK) {
		device_clear(&row);
		free(holder);
		return error;
	}
	if (holder != NULL) {
		log_info("device token moved to another device", "token",
		    log_redact(device->token, redacted), "from_device_id", holder,
		    "to_device_id", device->device_id, NULL);
		free(holder);
	}
	if (result != NULL)
		*result = exists ? STORE_PUT_UPDATED : STORE_PUT_CREATED;
	if (stored != NULL)
		*stored = row;
	return STORE_OK;
}

/* Read one device; STORE_ENOTFOUND if there is none. */
static int
sqlite_device_get(struct store *store, const char *device_id, struct device *out)
{
	struct sqlite_context ctx = { "device_get", "device_id", device_id };

	return device_read(store->data, &ctx, device_id, out);
}

/* Delete one device; STORE_ENOTFOUND if there is none. */
static int
sqlite_device_delete(struct store *store, const char *device_id)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_delete", "device_id", device_id };
	sqlite3_stmt *stmt = s->stmts[STMT_DEVICE_DELETE];
	int error;

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, device_id) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	return tx_end(s, &ctx, error);
}

/* List a client's devices ordered by device_id; an unknown client has none. */
static int
sqlite_client_devices_list(struct store *store, const char *client_id,
    struct device_list *out)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "client_devices_list", "client_id", client_id };
	sqlite3_stmt *stmt = s->stmts[STMT_CLIENT_DEVICES_LIST];
	size_t capacity = 0;
	int error = STORE_OK, rc;

	out->items = NULL;
	out->count = 0;
	if (bind_text(stmt, 1, client_id) != SQLITE_OK) {
		error = sqlite_fail(s, &ctx);
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (out->count == capacity) {
			capacity = capacity == 0 ? 4 : capacity * 2;
			out->items = xreallocarray(out->items, capacity, sizeof *out->items);
		}
		if ((error = device_from_row(s, &ctx, stmt, &out->items[out->count])) != 0)
			goto out;
		out->count++;
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
out:
	stmt_done(stmt);
	if (error != STORE_OK) {
		for (size_t i = 0; i < out->count; i++)
			device_clear(&out->items[i]);
		free(out->items);
		out->items = NULL;
		out->count = 0;
	}
	return error;
}

/* Delete every device of a client; *deleted (optional) says how many. */
static int
sqlite_client_devices_delete(struct store *store, const char *client_id, size_t *deleted)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "client_devices_delete", "client_id", client_id };
	sqlite3_stmt *stmt = s->stmts[STMT_CLIENT_DEVICES_DELETE];
	int error, changes = 0;

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, client_id) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else
		changes = sqlite3_changes(s->db);
	stmt_done(stmt);
	if ((error = tx_end(s, &ctx, error)) == STORE_OK && deleted != NULL)
		*deleted = (size_t)changes;
	return error;
}

/* Count all devices. */
static int
sqlite_device_count(struct store *store, size_t *count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_count", NULL, NULL };
	sqlite3_stmt *stmt = s->stmts[STMT_DEVICE_COUNT];
	int error = STORE_OK;

	if (sqlite3_step(stmt) == SQLITE_ROW)
		*count = (size_t)sqlite3_column_int64(stmt, 0);
	else
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	return error;
}

/* Record a delivery: last_success_at = at. updated_at is left alone (it is registration time). */
static int
sqlite_device_mark_success(struct store *store, const char *device_id, int64_t at)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_mark_success", "device_id", device_id };
	sqlite3_stmt *stmt = s->stmts[STMT_DEVICE_MARK_SUCCESS];
	int error;

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, device_id) != SQLITE_OK || bind_int64(stmt, 2, at) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	return tx_end(s, &ctx, error);
}

/* Record a failed delivery: last_error = reason, last_error_at = at. */
static int
sqlite_device_mark_error(struct store *store, const char *device_id, const char *reason,
    int64_t at)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "device_mark_error", "device_id", device_id };
	sqlite3_stmt *stmt = s->stmts[STMT_DEVICE_MARK_ERROR];
	int error;

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, device_id) != SQLITE_OK ||
	    bind_text(stmt, 2, reason) != SQLITE_OK || bind_int64(stmt, 3, at) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	return tx_end(s, &ctx, error);
}

/*
 * Remove the device holding a token a provider rejected, unless it was registered
 * again after unless_updated_after. *removed (optional) is 1 if a device went, else 0
 * (no such token, or registered too recently): neither is an error.
 */
static int
sqlite_device_remove_token(struct store *store, enum device_platform platform,
    const char *token, int64_t unless_updated_after, int *removed)
{
	struct sqlite_store *s = store->data;
	char redacted[LOG_REDACT_SIZE];
	struct sqlite_context ctx = { "device_remove_token", "token", NULL };
	sqlite3_stmt *stmt = s->stmts[STMT_DEVICE_REMOVE_TOKEN];
	const char *name = platform_name(platform);
	char *device_id = NULL;
	int error, rc;

	if (name == NULL || token == NULL)
		return STORE_EINVAL;
	ctx.value = log_redact(token, redacted);
	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, name) != SQLITE_OK || bind_text(stmt, 2, token) != SQLITE_OK ||
	    bind_int64(stmt, 3, unless_updated_after) != SQLITE_OK)
		error = sqlite_fail(s, &ctx);
	else {
		/* (platform, token) is unique: at most one row comes back. */
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			if (device_id == NULL)
				device_id = column_strdup(stmt, 0);
		}
		if (rc != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
	}
	stmt_done(stmt);
	if ((error = tx_end(s, &ctx, error)) == STORE_OK) {
		if (device_id != NULL)
			log_debug("device removed for its token", "device_id", device_id,
			    "token", redacted, NULL);
		if (removed != NULL)
			*removed = device_id != NULL;
	}
	free(device_id);
	return error;
}

/* Add a member with joined_at = now, or keep the existing membership unchanged. */
static int
sqlite_member_put(struct store *store, const char *room_id, const char *client_id,
    int64_t now, enum store_put_result *result, struct member *stored)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "member_put", "room_id", room_id };
	sqlite3_stmt *stmt = s->stmts[STMT_MEMBER_INSERT];
	struct member row;
	int error, created = 0;

	if (room_id == NULL || client_id == NULL)
		return STORE_EINVAL;
	memset(&row, 0, sizeof row);
	if ((error = tx_begin(s, &ctx)) != STORE_OK)
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
	if ((error = tx_end(s, &ctx, error)) != STORE_OK) {
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
static int
sqlite_member_get(struct store *store, const char *room_id, const char *client_id,
    struct member *out)
{
	struct sqlite_context ctx = { "member_get", "room_id", room_id };

	return member_read(store->data, &ctx, room_id, client_id, out);
}

/* Remove a member; STORE_ENOTFOUND if the client is not in the room. */
static int
sqlite_member_delete(struct store *store, const char *room_id, const char *client_id)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "member_delete", "room_id", room_id };
	sqlite3_stmt *stmt = s->stmts[STMT_MEMBER_DELETE];
	int error;

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, room_id) != SQLITE_OK ||
	    bind_text(stmt, 2, client_id) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (sqlite3_changes(s->db) == 0)
		error = STORE_ENOTFOUND;
	stmt_done(stmt);
	return tx_end(s, &ctx, error);
}

/*
 * One page of a room's members by client_id (keyset pagination): up to limit members
 * whose client_id sorts after after_client_id (NULL: from the start).
 */
static int
sqlite_room_members_list(struct store *store, const char *room_id,
    const char *after_client_id, size_t limit, struct member_list *out)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "room_members_list", "room_id", room_id };
	sqlite3_stmt *stmt = s->stmts[STMT_ROOM_MEMBERS_LIST];
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
static int
sqlite_member_prefs_put(struct store *store, const char *room_id, const char *client_id,
    int64_t muted_until, int mentions_only, struct member *stored)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "member_prefs_put", "room_id", room_id };
	sqlite3_stmt *stmt = s->stmts[STMT_MEMBER_PREFS_PUT];
	struct member row;
	int error;

	memset(&row, 0, sizeof row);
	if ((error = tx_begin(s, &ctx)) != STORE_OK)
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
	if ((error = tx_end(s, &ctx, error)) != STORE_OK) {
		member_clear(&row);
		return error;
	}
	if (stored != NULL)
		*stored = row;
	return STORE_OK;
}

/* Append the delivery targets a statement returns. */
static int
sqlite_targets_add(struct store *store, enum store_targets by, const char *id,
    struct target_list *out)
{
	static const enum sqlite_stmt stmts[] = {
		[STORE_TARGETS_DEVICE] = STMT_TARGETS_DEVICE,
		[STORE_TARGETS_CLIENT] = STMT_TARGETS_CLIENT,
		[STORE_TARGETS_ROOM] = STMT_TARGETS_ROOM,
	};
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "targets_add", "id", id };
	sqlite3_stmt *stmt = s->stmts[stmts[by]];
	int error = STORE_OK, rc, platform, environment;

	if (bind_text(stmt, 1, id) != SQLITE_OK) {
		error = sqlite_fail(s, &ctx);
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *text[6];
		for (int c = 0; c < 6; c++) {
			text[c] = (const char *)sqlite3_column_text(stmt, c);
			if (text[c] == NULL) {
				error = sqlite_bad_row(s, &ctx, "device");
				goto out;
			}
		}
		platform = name_index(sqlite_platform_names, 2, text[2]);
		environment = name_index(sqlite_environment_names, 2, text[5]);
		if (platform < 0 || environment < 0) {
			error = sqlite_bad_row(s, &ctx, platform < 0 ? "platform" : "environment");
			goto out;
		}
		model_target_list_add(out, model_target_new(text[0], text[1], text[3], text[4],
		    (enum device_platform)platform, (enum device_environment)environment,
		    sqlite3_column_int64(stmt, 6), sqlite3_column_int64(stmt, 7)));
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
out:
	stmt_done(stmt);
	return error;
}

/* Set last_success_at on many devices in one transaction; absent ones are skipped. */
static int
sqlite_devices_mark_success(struct store *store, const char *const *device_ids, size_t count,
    int64_t at)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "devices_mark_success", NULL, NULL };
	sqlite3_stmt *stmt = s->stmts[STMT_DEVICE_MARK_SUCCESS];
	int error;

	if (count == 0)
		return STORE_OK;
	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		if (bind_text(stmt, 1, device_ids[i]) != SQLITE_OK ||
		    bind_int64(stmt, 2, at) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return tx_end(s, &ctx, error);
}

/* Insert a push and its rows in one transaction. */
static int
sqlite_push_insert(struct store *store, const struct push_record *record)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "push_insert", "push_id", record->push_id };
	sqlite3_stmt *stmt = s->stmts[STMT_PUSH_INSERT];
	int error;

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_text(stmt, 1, record->push_id) != SQLITE_OK ||
	    bind_int64(stmt, 2, record->created_at) != SQLITE_OK ||
	    bind_text(stmt, 3, record->content) != SQLITE_OK ||
	    bind_int64(stmt, 4, record->badge_per_recipient != 0) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	stmt = s->stmts[STMT_PUSH_ROW_INSERT];
	for (size_t i = 0; i < record->count && error == STORE_OK; i++) {
		const struct push_row *row = &record->rows[i];
		if (bind_text(stmt, 1, record->push_id) != SQLITE_OK ||
		    bind_int64(stmt, 2, (int64_t)i) != SQLITE_OK ||
		    bind_text(stmt, 3, row->device_id) != SQLITE_OK ||
		    bind_text(stmt, 4, row->client_id) != SQLITE_OK ||
		    bind_text(stmt, 5, platform_name(row->platform)) != SQLITE_OK ||
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
	return tx_end(s, &ctx, error);
}

/* Apply row changes and finish pushes, in one transaction. */
static int
sqlite_push_update(struct store *store, const struct push_row_update *updates, size_t count,
    const struct push_finish *finished, size_t finished_count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "push_update", NULL, NULL };
	sqlite3_stmt *stmt = s->stmts[STMT_PUSH_ROW_UPDATE];
	int error;

	if (count == 0 && finished_count == 0)
		return STORE_OK;
	if ((error = tx_begin(s, &ctx)) != STORE_OK)
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
	stmt = s->stmts[STMT_PUSH_FINISH];
	for (size_t i = 0; i < finished_count && error == STORE_OK; i++) {
		if (bind_text(stmt, 1, finished[i].push_id) != SQLITE_OK ||
		    bind_int64(stmt, 2, finished[i].finished_at) != SQLITE_OK ||
		    sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return tx_end(s, &ctx, error);
}

/* Read a push's rows into the record. */
static int
push_rows_read(struct sqlite_store *s, const struct sqlite_context *ctx,
    struct push_record *out)
{
	sqlite3_stmt *stmt = s->stmts[STMT_PUSH_ROWS];
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
		platform = name_index(sqlite_platform_names, 2,
		    (const char *)sqlite3_column_text(stmt, 2));
		if (platform < 0) {
			error = sqlite_bad_row(s, ctx, "platform");
			goto out;
		}
		row->device_id = column_strdup(stmt, 0);
		row->client_id = column_strdup(stmt, 1);
		row->platform = (enum device_platform)platform;
		row->app_id = column_strdup(stmt, 3);
		row->badge = sqlite3_column_int64(stmt, 4);
		row->state = column_strdup(stmt, 5);
		row->reason = column_strdup(stmt, 6);
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
	sqlite3_stmt *stmt = s->stmts[STMT_PUSH_GET];
	int error, rc;

	memset(out, 0, sizeof *out);
	if (bind_text(stmt, 1, push_id) != SQLITE_OK)
		error = sqlite_fail(s, &ctx);
	else if ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		out->push_id = column_strdup(stmt, 0);
		out->created_at = sqlite3_column_int64(stmt, 1);
		out->content = column_strdup(stmt, 2);
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
	sqlite3_stmt *stmt = s->stmts[STMT_PUSHES_UNFINISHED];
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
		ids[n++] = column_strdup(stmt, 0);
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
	sqlite3_stmt *stmt = s->stmts[STMT_PUSHES_EXPIRE];
	int error;

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_int64(stmt, 1, finished_before) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	else if (deleted != NULL)
		*deleted = (size_t)sqlite3_changes(s->db);
	stmt_done(stmt);
	return tx_end(s, &ctx, error);
}

/* Read a room's members with their devices, and the devices a message notified. */
static int
sqlite_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "room_route", "room_id", room_id };
	sqlite3_stmt *stmt = s->stmts[STMT_ROUTE_MEMBERS];
	size_t capacity = 0, ncap = 0;
	int error = STORE_OK, rc, platform, environment, own = !s->batch;

	memset(out, 0, sizeof *out);
	/* One read transaction (a batch's, in one): members, devices, marks, one snapshot. */
	if (own && stmt_run(s, STMT_READ_BEGIN) != SQLITE_OK)
		return sqlite_fail(s, &ctx);
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
		platform = name_index(sqlite_platform_names, 2, text[2]);
		environment = name_index(sqlite_environment_names, 2, text[5]);
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
	stmt = s->stmts[STMT_ROUTE_NOTIFIED];
	if (bind_text(stmt, 1, room_id) != SQLITE_OK || bind_text(stmt, 2, message_id) !=
	    SQLITE_OK || bind_int64(stmt, 3, message_key(room_id, message_id)) != SQLITE_OK) {
		error = sqlite_fail(s, &ctx);
		goto out;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (out->notified_count == ncap) {
			ncap = ncap == 0 ? 16 : ncap * 2;
			out->notified = xreallocarray(out->notified, ncap, sizeof *out->notified);
		}
		out->notified[out->notified_count++] = column_strdup(stmt, 0);
	}
	if (rc != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
out:
	stmt_done(stmt);
	if (own && stmt_run(s, STMT_COMMIT) != SQLITE_OK && error == STORE_OK)
		error = sqlite_fail(s, &ctx);
	if (error != STORE_OK)
		store_room_route_free(out);
	return error;
}

/* Remember notified devices, in one transaction. */
static int
sqlite_notified_add(struct store *store, const struct notified_mark *marks, size_t count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "notified_add", NULL, NULL };
	sqlite3_stmt *stmt = s->stmts[STMT_NOTIFIED_ADD];
	int error;

	if (count == 0)
		return STORE_OK;
	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		if (bind_text(stmt, 1, marks[i].room_id) != SQLITE_OK ||
		    bind_text(stmt, 2, marks[i].message_id) != SQLITE_OK ||
		    bind_text(stmt, 3, marks[i].device_id) != SQLITE_OK ||
		    bind_int64(stmt, 4, marks[i].at) != SQLITE_OK ||
		    bind_int64(stmt, 5, message_key(marks[i].room_id,
		    marks[i].message_id)) != SQLITE_OK ||
		    sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return tx_end(s, &ctx, error);
}

/* Forget notified devices older than a time. */
static int
sqlite_notified_expire(struct store *store, int64_t before)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "notified_expire", NULL, NULL };
	sqlite3_stmt *stmt = s->stmts[STMT_NOTIFIED_EXPIRE];
	int error;

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	if (bind_int64(stmt, 1, before) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
		error = sqlite_fail(s, &ctx);
	stmt_done(stmt);
	return tx_end(s, &ctx, error);
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
	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		sqlite3_stmt *stmt = s->stmts[counts[i].count > 0 ? STMT_UNREAD_PUT :
		    STMT_UNREAD_DELETE];
		if (bind_text(stmt, 1, counts[i].client_id) != SQLITE_OK ||
		    bind_text(stmt, 2, counts[i].room_id) != SQLITE_OK ||
		    (counts[i].count > 0 && bind_int64(stmt, 3, counts[i].count) != SQLITE_OK) ||
		    sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return tx_end(s, &ctx, error);
}

/*
 * Step a statement that returns rows into a growing array of elem_size elements,
 * each filled by fill. On error the caller frees what was filled (*count of them).
 */
static int
rows_load(struct sqlite_store *s, const struct sqlite_context *ctx, sqlite3_stmt *stmt,
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

static void
unread_fill(sqlite3_stmt *stmt, void *elem)
{
	struct unread_count *u = elem;

	u->client_id = column_strdup(stmt, 0);
	u->room_id = column_strdup(stmt, 1);
	u->count = sqlite3_column_int64(stmt, 2);
}

/* Load every unread count. */
static int
sqlite_unread_load(struct store *store, struct unread_count **out, size_t *count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "unread_load", NULL, NULL };
	int error = rows_load(s, &ctx, s->stmts[STMT_UNREAD_LOAD], (void **)out, count,
	    sizeof **out, unread_fill);

	if (error != STORE_OK) {
		store_unread_free(*out, *count);
		*out = NULL;
		*count = 0;
	}
	return error;
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
	sqlite3_stmt *stmt = s->stmts[STMT_OUTBOX_ADD];
	int error;

	if ((error = tx_begin(s, &ctx)) != STORE_OK)
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
	return tx_end(s, &ctx, error);
}

/* Drop handled event batches in one transaction. */
static int
sqlite_outbox_delete(struct store *store, const int64_t *ids, size_t count)
{
	struct sqlite_store *s = store->data;
	struct sqlite_context ctx = { "outbox_delete", NULL, NULL };
	sqlite3_stmt *stmt = s->stmts[STMT_OUTBOX_DELETE];
	int error;

	if (count == 0)
		return STORE_OK;
	if ((error = tx_begin(s, &ctx)) != STORE_OK)
		return error;
	for (size_t i = 0; i < count && error == STORE_OK; i++) {
		if (bind_int64(stmt, 1, ids[i]) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_DONE)
			error = sqlite_fail(s, &ctx);
		stmt_done(stmt);
	}
	return tx_end(s, &ctx, error);
}

static void
outbox_fill(sqlite3_stmt *stmt, void *elem)
{
	struct outbox_entry *e = elem;

	const char *kind = (const char *)sqlite3_column_text(stmt, 3);

	e->id = sqlite3_column_int64(stmt, 0);
	e->received_at = sqlite3_column_int64(stmt, 1);
	e->body = column_strdup(stmt, 2);
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
	int error = rows_load(s, &ctx, s->stmts[STMT_OUTBOX_LOAD], (void **)out, count,
	    sizeof **out, outbox_fill);

	if (error != STORE_OK) {
		store_outbox_free(*out, *count);
		*out = NULL;
		*count = 0;
	}
	return error;
}

static const struct store_registry_ops sqlite_registry_ops = {
	.device_put = sqlite_device_put,
	.device_get = sqlite_device_get,
	.device_delete = sqlite_device_delete,
	.client_devices_list = sqlite_client_devices_list,
	.client_devices_delete = sqlite_client_devices_delete,
	.device_count = sqlite_device_count,
	.device_mark_success = sqlite_device_mark_success,
	.device_mark_error = sqlite_device_mark_error,
	.device_remove_token = sqlite_device_remove_token,
	.targets_add = sqlite_targets_add,
	.devices_mark_success = sqlite_devices_mark_success,
	.member_put = sqlite_member_put,
	.member_get = sqlite_member_get,
	.member_delete = sqlite_member_delete,
	.room_members_list = sqlite_room_members_list,
	.member_prefs_put = sqlite_member_prefs_put,
	.room_route = sqlite_room_route,
};

static const struct store_ledger_ops sqlite_ledger_ops = {
	.push_insert = sqlite_push_insert,
	.push_update = sqlite_push_update,
	.push_get = sqlite_push_get,
	.pushes_unfinished = sqlite_pushes_unfinished,
	.pushes_expire = sqlite_pushes_expire,
};

static const struct store_outbox_ops sqlite_outbox_ops = {
	.outbox_add = sqlite_outbox_add,
	.outbox_delete = sqlite_outbox_delete,
	.outbox_load = sqlite_outbox_load,
};

static const struct store_marks_ops sqlite_marks_ops = {
	.notified_add = sqlite_notified_add,
	.notified_expire = sqlite_notified_expire,
	.unread_put = sqlite_unread_put,
	.unread_load = sqlite_unread_load,
};

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
	.registry = &sqlite_registry_ops,
	.ledger = &sqlite_ledger_ops,
	.outbox = &sqlite_outbox_ops,
	.marks = &sqlite_marks_ops,
};
