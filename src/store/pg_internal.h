/*
 * What the files of the PostgreSQL backend share; included by src/store/pg*.c and
 * store_copy.c only.
 *
 * pg.c connects (and reconnects, with backoff), runs the owners' statements
 * (prepared on first use on each connection), transactions and group commit's
 * savepoints, and gathers the owners' tables into store_postgresql_backend;
 * pg_schema.c checks and migrates the schema. Each owner's file has its statements
 * and its operations, as the SQLite backend's do: pg_devices.c and pg_rooms.c the
 * registry's (store_registry.h), pg_ledger.c the ledger's (store_ledger.h),
 * pg_outbox.c the outbox's (store_outbox.h), pg_marks.c the marks' (store_marks.h).
 *
 * Every function here runs on the thread that owns the connection (store.h), like
 * the operations that call it.
 */
#ifndef PUSHRELAY_PG_INTERNAL_H
#define PUSHRELAY_PG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "model.h"
#include "store.h"
#include "store_registry.h"

/* Whose statements: each file numbers its own with an enum of its own. */
enum pg_part {
	PG_PART_COMMON,			/* pg.c: the ping */
	PG_PART_DEVICES,
	PG_PART_ROOMS,
	PG_PART_LEDGER,
	PG_PART_OUTBOX,
	PG_PART_MARKS,
	PG_PART_COUNT
};

/* A part's SQL, by the part's enum: prepared on a connection when first run. */
struct pg_statements {
	const char *const *sql;
	size_t count;
};

extern const struct pg_statements pg_devices_statements;
extern const struct pg_statements pg_rooms_statements;
extern const struct pg_statements pg_ledger_statements;
extern const struct pg_statements pg_outbox_statements;
extern const struct pg_statements pg_marks_statements;

/* One connection (struct store.data). */
struct pg_store {
	PGconn *conn;
	char *conninfo;			/* the connection string: a secret (pg_watch.c's) */
	char *display;			/* the connection string without a password */
	unsigned char *prepared[PG_PART_COUNT];	/* [part][id]: prepared on conn */
	int batch;		/* a batch's transaction was opened (it may be lost since) */
	enum store_sync sync;
	int lock_timeout_ms;
	/* Reconnecting: PQreset when due, with a backoff that doubles up to a bound. */
	int down;		/* the connection was lost: logged once, until it is back */
	int64_t retry_at;	/* monotonic ms of the next PQreset */
	int64_t backoff_ms;	/* 0 until a PQreset failed */
	char last_error[640];	/* why the last call failed, for the write probe */
};

/* pg_watch.c: other instances' route changes (store.h's store_watch_start). */
struct store_watch *pg_watch_start(struct event_base *base, struct store *store);
void pg_routes_changed(struct store *store);

/* What a failing call was doing, for its one log line. */
struct pg_context {
	const char *op;
	const char *key;	/* NULL when there is no subject */
	const char *value;
};

/* The parameters of one statement, as text (libpq's text format). */
#define PG_PARAMS_MAX 12
struct pg_params {
	const char *values[PG_PARAMS_MAX];
	char *owned[PG_PARAMS_MAX];	/* what pg_params_clear frees */
	char numbers[PG_PARAMS_MAX][24];
	int count;
};

/* The backoff between two PQresets: from the first to the last, doubling. */
#define PG_RECONNECT_FIRST_MS 100
#define PG_RECONNECT_MAX_MS 5000

/* The columns of a delivery target (model_target_new), as the registry reads them. */
#define PG_TARGET_COLUMNS "d.device_id, d.client_id, d.platform, d.token, d.app_id, " \
	"d.environment, d.updated_at, d.last_success_at"

/* The owners' tables, for store_postgresql_backend. */
extern const struct store_registry_ops pg_registry_ops;
extern const struct store_ledger_ops pg_ledger_ops;
extern const struct store_outbox_ops pg_outbox_ops;
extern const struct store_marks_ops pg_marks_ops;

/* The registry's room operations (pg_rooms.c), in pg_registry_ops. */
int pg_member_put(struct store *store, const char *room_id, const char *client_id,
    int64_t now, enum store_put_result *result, struct member *stored);
int pg_member_get(struct store *store, const char *room_id, const char *client_id,
    struct member *out);
int pg_member_delete(struct store *store, const char *room_id, const char *client_id);
int pg_room_members_list(struct store *store, const char *room_id,
    const char *after_client_id, size_t limit, struct member_list *out);
int pg_member_prefs_put(struct store *store, const char *room_id, const char *client_id,
    int64_t muted_until, int mentions_only, struct member *stored);
int pg_room_route(struct store *store, const char *room_id, const char *message_id,
    struct room_route *out);

/*
 * Add an outbox row and delete it (pg_outbox.c), inside the write probe's
 * transaction: 0, or STORE_EIO (logged).
 */
int pg_outbox_probe(struct pg_store *s, const struct pg_context *ctx);

/*
 * The schema (pg_schema.c), when a connection opens: pg_schema_check() refuses a
 * newer one before anything changes (STORE_ENEWER); pg_schema_migrate() brings it to
 * STORE_SCHEMA_VERSION, one instance at a time. 0, or an error with err set;
 * STORE_EIO.
 */
int pg_schema_check(PGconn *conn, const char *display, char *err, size_t errlen);
int pg_schema_migrate(PGconn *conn, const char *display, char *err, size_t errlen);
/* The server's message of a failed call, on one line, without libpq's "ERROR:  ". */
const char *pg_error_text(PGconn *conn, const PGresult *result, char *buf, size_t size);

/*
 * Log a failed call once, with what was being done; returns STORE_EIO. A lost
 * connection is logged once per outage, not per call, and schedules the reconnection.
 */
int pg_fail(struct pg_store *s, const struct pg_context *ctx, const PGresult *result);
/* Log a row this build cannot read (a hand-edited database); STORE_EIO. */
int pg_bad_row(struct pg_store *s, const struct pg_context *ctx, const char *column);

/*
 * Run statement id of part with params (NULL: none), preparing it first on this
 * connection if needed. 0 with *out the result (rows or a command's), to PQclear;
 * or STORE_EIO (logged), *out NULL. Reconnects first if the connection was lost and
 * the backoff allows it.
 */
int pg_run(struct pg_store *s, const struct pg_context *ctx, enum pg_part part, int id,
    const struct pg_params *params, PGresult **out);
/* The same for a statement that returns no rows; *changed (optional): rows affected. */
int pg_run_command(struct pg_store *s, const struct pg_context *ctx, enum pg_part part,
    int id, const struct pg_params *params, size_t *changed);

/*
 * A write's transaction: pg_tx_begin() starts it (in a batch, a savepoint), 0 or
 * STORE_EIO; pg_tx_end() commits it if error is 0, else rolls it back, and returns
 * the final result.
 */
int pg_tx_begin(struct pg_store *s, const struct pg_context *ctx);
int pg_tx_end(struct pg_store *s, const struct pg_context *ctx, int error);
/*
 * A read that must see one snapshot: pg_read_begin() opens a read-only repeatable
 * read transaction (in a batch, a savepoint of the batch's), 0 or STORE_EIO;
 * pg_read_end() closes it and returns error, or STORE_EIO if error was 0 and the
 * close failed.
 */
int pg_read_begin(struct pg_store *s, const struct pg_context *ctx);
int pg_read_end(struct pg_store *s, const struct pg_context *ctx, int error);

/*
 * Parameters: text (NULL stays NULL; text that is not UTF-8, which PostgreSQL
 * refuses, is stored with each bad byte replaced by U+FFFD, as the API would show
 * it anyway) and 64-bit integers; pg_params_clear frees what they hold.
 */
void pg_params_init(struct pg_params *p);
void pg_param_text(struct pg_params *p, const char *value);
void pg_param_int(struct pg_params *p, int64_t value);
/* Arrays, as one parameter (text[] or bigint[]): a statement for many rows. */
void pg_param_text_array(struct pg_params *p, const char *const *values, size_t count,
    size_t stride);
void pg_param_int_array(struct pg_params *p, const int64_t *values, size_t count,
    size_t stride);
void pg_params_clear(struct pg_params *p);

/* A column of row as a new string (NULL stays NULL), or as an integer (NULL: 0). */
char *pg_strdup(const PGresult *result, int row, int column);
int64_t pg_int(const PGresult *result, int row, int column);
/* A column's text, NULL when the value is NULL. */
const char *pg_text(const PGresult *result, int row, int column);

/* The stored names of platforms and environments: the SQLite backend's. */
const char *sqlite_platform_name(enum device_platform platform);
const char *sqlite_environment_name(enum device_environment environment);
int sqlite_platform_from_name(const char *name);
int sqlite_environment_from_name(const char *name);
/* The notified table's hash of a room and a message id: the SQLite backend's. */
int64_t sqlite_message_key(const char *room_id, const char *message_id);

#endif
