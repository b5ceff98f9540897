/*
 * The store: what pushrelayd keeps on disk, split by owner, behind a backend table so
 * that backends can be swapped: SQLite, the default, embedded (sqlite.c), or a
 * PostgreSQL server that several instances can share (pg.c). Each owner's
 * data has a header of its own, with its part of the backend table and its calls:
 *
 *   store_registry.h  devices, room memberships and preferences, delivery targets,
 *                     room routes (the API, the route cache, deliveries, push.c)
 *   store_ledger.h    the push ledger behind POST /v1/push (push.c)
 *   store_outbox.h    the events outbox of the HTTP source (source_http.c)
 *   store_marks.h     the router's notified marks and unread counts (dedupe.c,
 *                     unread.c)
 *
 * This header has what they share: a connection (struct store), opening and closing
 * it, its health, group commit, the generation, the errors, and the backend table
 * that gathers the four. A caller includes the header of what it uses.
 *
 * A struct store is one connection to the database. store_open() makes the first;
 * store_open_another() more to the same database, sharing its generation.
 *
 * Threads. A connection is used by one thread at a time, never by two at once.
 * The daemon's own connection (daemon.c) is used on the event loop during start-up
 * only, before the loop runs: migrations, resuming unfinished pushes
 * (push_ledger_new, with the device reads of push_resume), loading unread counts
 * (router_new) and replaying the event outbox (source_http). From then on the loop
 * never calls a store function but store_generation() and store_strerror(): every
 * other store call runs in a job on a store thread (store_writer.h), on that
 * thread's own connection (a /metrics scrape counts the devices on the API's). In every store header, "Thread:
 * connection" means the thread that owns the connection at the time (start-up, or a
 * store job); "any thread" means any.
 *
 * Writes. Every write function is all or nothing: on error nothing of it remains.
 * Outside a batch each write is its own transaction: when it returns 0 the change
 * is durable (committed, and with synchronous=full fsynced). Inside a batch
 * (store_batch_begin(), the store writer's group commit) each write is a savepoint
 * of the batch's transaction, and durable only once store_batch_commit() returns 0.
 *
 * Errors. Every function returns 0 or a negative STORE_E* code, listed with it.
 * STORE_EIO is logged where it happens (with the operation and its subject); the
 * others are not.
 */
#ifndef PUSHRELAY_STORE_H
#define PUSHRELAY_STORE_H

#include <stddef.h>
#include <stdint.h>

enum store_error {
	STORE_OK = 0,
	STORE_ENOTFOUND = -1,	/* no such device / membership */
	STORE_EIO = -2,		/* the backend failed (disk, lock, corruption, a lost
				   connection to the server); logged */
	STORE_ENEWER = -3,	/* the database was written by a newer pushrelay */
	STORE_EINVAL = -4,	/* bad options */
};

enum store_sync {
	STORE_SYNC_FULL = 0,	/* fsync on every commit: survives power loss */
	STORE_SYNC_NORMAL,	/* WAL + normal: survives a crash of the daemon, not of the host */
};

struct store_options {
	const char *path;		/* sqlite: the database file */
	enum store_sync sync;
	int busy_timeout_ms;		/* how long a write waits for a lock */
	size_t cache_size;		/* sqlite: bytes of pages kept in memory; 0: its own */
	size_t checkpoint_size;		/* sqlite: log bytes that trigger a checkpoint */
	const char *conninfo;		/* postgresql: a libpq connection string */
};

struct store;
struct event_base;
struct store_watch;

struct store_registry_ops;
struct store_ledger_ops;
struct store_outbox_ops;
struct store_marks_ops;

/*
 * A backend: what is common to every owner's data (opening, the connection, group
 * commit), then one table of operations per owner, each declared with its wrappers
 * in that owner's header. A backend fills them all.
 */
struct store_backend {
	const char *name;
	int (*open)(struct store *store, const struct store_options *options, char *err,
	    size_t errlen);
	void (*close)(struct store *store);
	int (*ping)(struct store *store);
	int (*probe_write)(struct store *store, char *err, size_t errlen);

	/*
	 * Group commit: one transaction for a batch (commit: 1 to commit, 0 to roll
	 * back), a savepoint for each job in it (keep: 1 to keep its changes, 0 to undo
	 * them); every owner's write operations become savepoints while a batch is open.
	 */
	int (*batch_begin)(struct store *store);
	int (*batch_end)(struct store *store, int commit);
	int (*job_begin)(struct store *store);
	int (*job_end)(struct store *store, int keep);
	/*
	 * Durability apart from the commit (store_flush_apart); NULL when the backend
	 * cannot: flush_apart switches the connection over, flush makes its commits so far
	 * durable (any thread, while the connection's own thread goes on writing).
	 */
	int (*flush_apart)(struct store *store);
	int (*flush)(struct store *store);

	const struct store_registry_ops *registry;	/* store_registry.h */
	const struct store_ledger_ops *ledger;		/* store_ledger.h */
	const struct store_outbox_ops *outbox;		/* store_outbox.h */
	const struct store_marks_ops *marks;		/* store_marks.h */

	/*
	 * Several processes on one database (NULL for a backend that has one process):
	 * routes_changed tells the others that this connection committed a change of a
	 * room's route (thread: connection); watch_start listens for what the others
	 * tell, on the event loop (store_watch_start below).
	 */
	void (*routes_changed)(struct store *store);
	struct store_watch *(*watch_start)(struct event_base *base, struct store *store);
};

/* What the connections to one database share: how to open them, the generation. */
struct store_shared;

struct store {
	const struct store_backend *backend;
	void *data;			/* the backend's own state */
	struct store_shared *shared;
	int batch;			/* a batch is open (store_batch_begin) */
	int batch_changed;		/* a write in it changed devices or memberships */
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_postgresql_backend;

/* The current schema version that this build writes. */
#define STORE_SCHEMA_VERSION 5

/* Write an opening error for the caller (err may be NULL). Any thread; backends use it. */
void store_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Describe a STORE_E* code. Any thread. */
const char *store_strerror(int error);

/*
 * A number that changes whenever a room's route may change, on any connection to the
 * database of store: a membership, or a device that is (or was) a room member's; not
 * a new device of a client in no room (a registration before its first join). What
 * is cached from the registry's rooms is good while it stays the same. It moves
 * after the change is committed (for a batch: after its commit), so a read started
 * after it moved sees the change. Any thread; never fails.
 */
uint64_t store_generation(const struct store *store);
/*
 * Move the generation for a write on store that may have changed a room's route
 * (moving it needlessly is safe): at once, or in a batch after its end. For the
 * registry's calls (store_registry.c), after the backend's write. Thread: connection.
 */
void store_generation_move(struct store *store);

/*
 * Check a libpq connection string for [store] postgresql without connecting: 0, or
 * -1 with err saying what is wrong (never quoting a password). Any thread.
 */
int store_postgresql_conninfo_check(const char *conninfo, char *err, size_t errlen);

/*
 * Changes of rooms' routes committed by other processes on the same database (other
 * pushrelayd instances): a watch on the event loop moves the generation of store's
 * database whenever another instance tells it committed one (PostgreSQL: LISTEN and
 * NOTIFY on the channel pushrelay_routes), and once more each time it (re)connects,
 * as it may have missed some meanwhile. It connects and reads without blocking the
 * loop, and reconnects with a backoff when the server goes away. NULL when the
 * backend has nothing to watch (SQLite: one process). Loop thread, after start-up's
 * store calls; store must stay open until store_watch_stop(). NULL is ignored.
 */
/* What every backend's watch starts with: how it stops (and is freed). */
struct store_watch {
	void (*stop)(struct store_watch *watch);
};
struct store_watch *store_watch_start(struct event_base *base, struct store *store);
void store_watch_stop(struct store_watch *watch);
/*
 * Another process changed a route: move the generation, and tell nobody. Any thread
 * (the backend's watch calls it).
 */
void store_generation_moved_elsewhere(struct store *store);

/*
 * Open a store with the named backend ("sqlite", "postgresql"); err says why on
 * failure, never with a password. Start-up
 * thread. 0, STORE_EINVAL (unknown backend, bad options), STORE_ENEWER (a newer
 * schema), STORE_EIO (cannot create, open or migrate the database).
 */
int store_open(const char *backend, const struct store_options *options, struct store **out,
    char *err, size_t errlen);
/*
 * Open another connection to the database of store, with its options, sharing its
 * generation (for a store thread). Any thread, while store is open; the errors of
 * store_open().
 */
int store_open_another(struct store *store, struct store **out, char *err, size_t errlen);
/* Close a connection (NULL is ignored); an open batch is rolled back. Thread: connection. */
void store_close(struct store *store);
/* Does the backend still answer a read? Thread: connection. 0 or STORE_EIO. */
int store_ping(struct store *store);
/*
 * Commit a small write that changes nothing in the end, to learn whether the store
 * takes writes now (a full disk, a read-only file): 0, or STORE_EIO with err set to
 * the backend's reason ("database or disk is full"). Thread: connection, outside a
 * batch.
 */
int store_probe_write(struct store *store, char *err, size_t errlen);

/*
 * Group commit, for the store writer: store_batch_begin() opens one write
 * transaction (taking the write lock at once); each job runs between
 * store_batch_job_begin() and store_batch_job_end(), as a savepoint, so that a job
 * that fails (keep 0) is undone alone; store_batch_commit() makes the whole batch
 * durable at once, with one fsync. All: thread: connection.
 *
 * store_batch_begin: 0 or STORE_EIO (nothing open: e.g. the lock was not had within
 * the busy timeout). store_batch_job_begin, store_batch_job_end: 0, or STORE_EIO
 * when the batch is lost: the backend rolled the whole transaction back (SQLite does
 * on a full disk or an I/O error), so no job of it so far remains; end it with
 * store_batch_rollback(). store_batch_commit: 0 (durable), or STORE_EIO: nothing of
 * the batch remains. The generation moves at the end of a batch that changed
 * devices or memberships.
 */
int store_batch_begin(struct store *store);
int store_batch_job_begin(struct store *store);
int store_batch_job_end(struct store *store, int keep);
int store_batch_commit(struct store *store);
void store_batch_rollback(struct store *store);

/*
 * Flushing apart from the commit, for the store writer's pipeline: once
 * store_flush_apart() has switched a connection over, its commits (store_batch_commit
 * included) no longer wait for the disk, and store_flush() makes every commit of
 * that connection so far durable, with one fsync. The writer commits the next batch
 * while another thread flushes the last, and answers a batch only after a flush that
 * began after its commit: a 2xx still means fsynced. Other connections may read a
 * commit before it is flushed; nobody is told it is done before.
 *
 * store_flush_apart: thread: connection, outside a batch. 0, or STORE_EINVAL when
 * there is nothing to do it for (synchronous=normal: commits do not wait for the disk
 * anyway) or the backend cannot (its commits then stay durable on their own).
 * store_flush: any thread, also while the connection's thread writes; only after
 * store_flush_apart() succeeded. 0, or STORE_EIO (logged): what was committed since
 * the last flush that succeeded may be lost with the host.
 */
int store_flush_apart(struct store *store);
int store_flush(struct store *store);

#endif
