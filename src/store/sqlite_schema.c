/*
 * The SQLite backend's schema: the migrations that bring a database to
 * STORE_SCHEMA_VERSION, the check that refuses a newer one, and how the schema
 * stores values (platform and environment names, the notified table's message key).
 * Called by sqlite.c when a connection opens, and by the owners' files (the names,
 * the key), on the thread that owns the connection.
 *
 * The schema is versioned with PRAGMA user_version and brought forward by the
 * migrations below, each in its own transaction. A database from a newer build is
 * refused before anything in it is changed.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "hash.h"
#include "log.h"
#include "sqlite_internal.h"
#include "store.h"
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

static const char *const sqlite_platform_names[] = { "apns", "fcm" };
static const char *const sqlite_environment_names[] = { "production", "sandbox" };

#define NITEMS(a) (sizeof (a) / sizeof (a)[0])

/* The stored name of a platform, NULL if out of range. */
const char *
sqlite_platform_name(enum device_platform platform)
{
	if ((unsigned int)platform >= NITEMS(sqlite_platform_names))
		return NULL;
	return sqlite_platform_names[platform];
}

/* The stored name of an environment, NULL if out of range. */
const char *
sqlite_environment_name(enum device_environment environment)
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

/* The platform a stored name says; -1 if none. */
int
sqlite_platform_from_name(const char *name)
{
	return name_index(sqlite_platform_names, NITEMS(sqlite_platform_names), name);
}

/* The environment a stored name says; -1 if none. */
int
sqlite_environment_from_name(const char *name)
{
	return name_index(sqlite_environment_names, NITEMS(sqlite_environment_names), name);
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

/*
 * The notified table's hash of a room and a message id: hash64() of "room\0message"
 * with seed 0. Stored in the database: it must never change. Rows are matched on
 * room and message too, so two messages with one key only cost a row more to read.
 */
int64_t
sqlite_message_key(const char *room_id, const char *message_id)
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
	sqlite3_result_int64(context, sqlite_message_key(room_id, message_id));
}

/*
 * Refuse a database of a newer schema, before anything in it changes, and give the
 * connection the SQL functions the migrations call.
 */
int
sqlite_schema_check(struct sqlite_store *s, char *err, size_t errlen)
{
	int version;

	if (exec_int(s->db, "PRAGMA user_version", &version) != 0) {
		store_set_err(err, errlen, "database %s: %s", s->path, sqlite3_errmsg(s->db));
		return STORE_EIO;
	}
	if (version > STORE_SCHEMA_VERSION) {
		store_set_err(err, errlen, "database %s has schema version %d, this "
		    "pushrelayd supports up to %d: upgrade pushrelayd", s->path, version,
		    STORE_SCHEMA_VERSION);
		return STORE_ENEWER;
	}
	if (sqlite3_create_function(s->db, "pushrelay_message_key", 2,
	    SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_message_key, NULL, NULL) != SQLITE_OK) {
		store_set_err(err, errlen, "database %s: %s", s->path, sqlite3_errmsg(s->db));
		return STORE_EIO;
	}
	return STORE_OK;
}

/* Bring the schema up to STORE_SCHEMA_VERSION, one transaction per migration. */
int
sqlite_schema_migrate(struct sqlite_store *s, char *err, size_t errlen)
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
			store_set_err(err, errlen,
			    "database %s has an invalid schema version %d", s->path, version);
			return STORE_EIO;
		}
		if (version > STORE_SCHEMA_VERSION) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			store_set_err(err, errlen, "database %s has schema version %d, this "
			    "pushrelayd supports up to %d: upgrade pushrelayd", s->path, version,
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
	store_set_err(err, errlen, "database %s: schema migration failed: %s", s->path,
	    sqlite3_errmsg(s->db));
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return STORE_EIO;
}
