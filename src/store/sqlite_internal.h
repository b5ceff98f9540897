/*
 * What the files of the SQLite backend share; included by src/store/sqlite*.c only.
 *
 * sqlite.c opens the connection, prepares every statement, runs transactions and
 * group commit's savepoints, and gathers the owners' tables into
 * store_sqlite_backend; sqlite_schema.c checks and migrates the schema, and says how
 * it stores values. Each owner's file has its statements and its operations:
 * sqlite_devices.c and sqlite_rooms.c the registry's (store_registry.h),
 * sqlite_ledger.c the ledger's (store_ledger.h), sqlite_outbox.c the outbox's
 * (store_outbox.h), sqlite_marks.c the marks' (store_marks.h).
 *
 * Every function here runs on the thread that owns the connection (store.h), like
 * the operations that call it.
 */
#ifndef PUSHRELAY_SQLITE_INTERNAL_H
#define PUSHRELAY_SQLITE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "model.h"
#include "store.h"
#include "store_registry.h"

/* Whose statements: each file numbers its own with an enum of its own. */
enum sqlite_part {
	SQLITE_PART_COMMON,		/* sqlite.c: transactions, savepoints, ping */
	SQLITE_PART_DEVICES,
	SQLITE_PART_ROOMS,
	SQLITE_PART_LEDGER,
	SQLITE_PART_OUTBOX,
	SQLITE_PART_MARKS,
	SQLITE_PART_COUNT
};

/* A part's SQL, by the part's enum: prepared once at open, in stmts[part]. */
struct sqlite_statements {
	const char *const *sql;
	size_t count;
};

extern const struct sqlite_statements sqlite_devices_statements;
extern const struct sqlite_statements sqlite_rooms_statements;
extern const struct sqlite_statements sqlite_ledger_statements;
extern const struct sqlite_statements sqlite_outbox_statements;
extern const struct sqlite_statements sqlite_marks_statements;

/* One connection (struct store.data). */
struct sqlite_store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt **stmts[SQLITE_PART_COUNT];	/* [part][the part's enum] */
	int batch;		/* a batch's transaction was opened (it may be lost since) */
	int sync_full;		/* synchronous=full was asked for */
	int wal_fd;		/* the WAL, once commits are flushed apart; else -1 */
};

/* What a failing call was doing, for its one log line. */
struct sqlite_context {
	const char *op;
	const char *key;	/* NULL when there is no subject */
	const char *value;
};

/* The columns of a delivery target (model_target_new), as the registry reads them. */
#define TARGET_COLUMNS "d.device_id, d.client_id, d.platform, d.token, d.app_id, " \
	"d.environment, d.updated_at, d.last_success_at"

/* The owners' tables, for store_sqlite_backend. */
extern const struct store_registry_ops sqlite_registry_ops;
extern const struct store_ledger_ops sqlite_ledger_ops;
extern const struct store_outbox_ops sqlite_outbox_ops;
extern const struct store_marks_ops sqlite_marks_ops;

/* The registry's room operations (sqlite_rooms.c), in sqlite_registry_ops. */
int sqlite_member_put(struct store *store, const char *room_id, const char *client_id,
    int64_t now, enum store_put_result *result, struct member *stored);
int sqlite_member_get(struct store *store, const char *room_id, const char *client_id,
    struct member *out);
int sqlite_member_delete(struct store *store, const char *room_id, const char *client_id);
int sqlite_room_members_list(struct store *store, const char *room_id,
    const char *after_client_id, size_t limit, struct member_list *out);
int sqlite_member_prefs_put(struct store *store, const char *room_id, const char *client_id,
    int64_t muted_until, int mentions_only, struct member *stored);
int sqlite_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out);

/*
 * Add an outbox row and delete it (sqlite_outbox.c), inside the write probe's
 * transaction: 0, or STORE_EIO (logged).
 */
int sqlite_outbox_probe(struct sqlite_store *s, const struct sqlite_context *ctx);

/*
 * The schema (sqlite_schema.c), when a connection opens: sqlite_schema_check()
 * refuses a newer one before anything changes (STORE_ENEWER) and adds the SQL
 * functions the migrations call; sqlite_schema_migrate() brings it to
 * STORE_SCHEMA_VERSION. 0, or an error with err set; STORE_EIO.
 */
int sqlite_schema_check(struct sqlite_store *s, char *err, size_t errlen);
int sqlite_schema_migrate(struct sqlite_store *s, char *err, size_t errlen);

/* Log a failed SQLite call once, with what was being done; returns STORE_EIO. */
int sqlite_fail(struct sqlite_store *s, const struct sqlite_context *ctx);
/* Log a row this build cannot read (a hand-edited or corrupt database); STORE_EIO. */
int sqlite_bad_row(struct sqlite_store *s, const struct sqlite_context *ctx,
    const char *column);

/*
 * A write's transaction: sqlite_tx_begin() starts it (in a batch, a savepoint),
 * 0 or STORE_EIO; sqlite_tx_end() commits it if error is 0, else rolls it back, and
 * returns the final result.
 */
int sqlite_tx_begin(struct sqlite_store *s, const struct sqlite_context *ctx);
int sqlite_tx_end(struct sqlite_store *s, const struct sqlite_context *ctx, int error);
/*
 * A read that must see one snapshot: sqlite_read_begin() opens a read transaction
 * (in a batch, the batch's is used), 0 or STORE_EIO; sqlite_read_end() closes it and
 * returns error, or STORE_EIO if error was 0 and the close failed.
 */
int sqlite_read_begin(struct sqlite_store *s, const struct sqlite_context *ctx);
int sqlite_read_end(struct sqlite_store *s, const struct sqlite_context *ctx, int error);

/*
 * Step a statement that returns rows into a growing array of elem_size elements,
 * each filled by fill; reset it after. On error the caller frees what was filled
 * (*count of them). 0 or STORE_EIO.
 */
int sqlite_rows_load(struct sqlite_store *s, const struct sqlite_context *ctx,
    sqlite3_stmt *stmt, void **out, size_t *count, size_t elem_size,
    void (*fill)(sqlite3_stmt *, void *));
/* Copy a text column; NULL stays NULL. */
char *sqlite_column_strdup(sqlite3_stmt *stmt, int column);

/* The stored names of platforms and environments; NULL (a name: -1) if unknown. */
const char *sqlite_platform_name(enum device_platform platform);
const char *sqlite_environment_name(enum device_environment environment);
int sqlite_platform_from_name(const char *name);
int sqlite_environment_from_name(const char *name);
/* The notified table's hash of a room and a message id; see sqlite_schema.c. */
int64_t sqlite_message_key(const char *room_id, const char *message_id);

/* Make a statement ready for its next use; static bindings are released here. */
static inline void
stmt_done(sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

/* Bind a string or NULL; the string must live until stmt_done. */
static inline int
bind_text(sqlite3_stmt *stmt, int param, const char *value)
{
	if (value == NULL)
		return sqlite3_bind_null(stmt, param);
	return sqlite3_bind_text(stmt, param, value, -1, SQLITE_STATIC);
}

/* Bind a 64-bit integer. */
static inline int
bind_int64(sqlite3_stmt *stmt, int param, int64_t value)
{
	return sqlite3_bind_int64(stmt, param, value);
}

#endif
