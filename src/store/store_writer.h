/*
 * Store threads: a thread with its own store connection that runs jobs off the event
 * loop, so that fsyncs, large transactions (a push to a big room, the batched
 * progress of deliveries) and reads never stall the network. After start-up the loop
 * reaches the database only through these (see store.h).
 *
 * Jobs run in submission order, on the thread's connection; their done callbacks run
 * on the event loop, in the same order, with the job's result. A job function must
 * touch only its own argument and the store it is given.
 *
 * Two modes:
 *
 * STORE_WRITER_GROUP_COMMIT, for writes (the daemon's writer). A batch is one
 * transaction, one commit, one fsync, each of its jobs in a savepoint of its own.
 * It takes the jobs that are queued when it starts, and those that come while its
 * jobs run join it (they would wait for its commit anyway); the jobs that come
 * while it commits go into the next one together. At most STORE_WRITER_BATCH_MAX
 * jobs a batch, so that the first does not wait for too many. A job that returns an
 * error is undone alone; the others of its batch commit.
 * Done callbacks run only after the commit, so a result of 0 means committed
 * (fsynced with synchronous=full). When the backend can (store_flush_apart), the
 * commits do not wait for the disk: a flush thread of the writer's fsyncs the
 * batches committed meanwhile, together, while the writer runs the next batch, and
 * only then are their done callbacks posted; a failed fsync fails the jobs of those
 * batches that had succeeded with STORE_EIO. If the commit fails, or the database rolls the
 * whole transaction back (a full disk, an I/O error), every job of the batch up to
 * then gets STORE_EIO, whatever it returned. The generation (store_generation())
 * moves once per batch, after its commit.
 *
 * STORE_WRITER_EACH: one job at a time, each in its own transactions, its done
 * callback posted at once. For reads, which must not wait behind a batch of fsyncs:
 * SQLite's WAL lets a reader on another connection go on while a writer commits, so
 * reads get threads and connections of their own (the router's, with the
 * memberships its events write, in the order of those events; the API's, which also
 * answers the readiness ping). A read on the group-commit thread would wait for the
 * commit of the batch it lands in.
 */
#ifndef PUSHRELAY_STORE_WRITER_H
#define PUSHRELAY_STORE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct event_base;
struct store_writer;

/* Jobs in one group commit, at most: bounds how long a job waits for its commit. */
#define STORE_WRITER_BATCH_MAX 256

enum store_writer_mode {
	STORE_WRITER_GROUP_COMMIT,	/* writes: batches, one commit each */
	STORE_WRITER_EACH,		/* reads: one job at a time, answered at once */
};

/* Runs on the store thread; returns a result for done (0 or a STORE_E* code). */
typedef int store_job_fn(struct store *store, void *arg);
/* Runs on the event loop with the job's result. */
typedef void store_job_done_fn(int result, void *arg);

/* What a thread has done, for tests and metrics. */
struct store_writer_stats {
	uint64_t jobs;			/* jobs run */
	uint64_t batches;		/* group commits tried */
	uint64_t batch_failures;	/* of those, lost or not committed */
	uint64_t largest_batch;		/* jobs in the largest batch */
	uint64_t flushes;		/* fsyncs apart from the commits */
	uint64_t flush_failures;	/* of those, failed */
};

/*
 * Open another connection to the database of store (store_open_another(): it shares
 * the generation) and start a thread on it; NULL with err on failure. Loop thread.
 */
struct store_writer *store_writer_start(struct event_base *base, struct store *store,
    enum store_writer_mode mode, char *err, size_t errlen);
/*
 * Name the thread, as ps, top and /proc show it (15 bytes at most; longer is cut):
 * "store-writer" or "store-reader" until then, and "store-flush" for the writer's
 * flush thread. Loop thread.
 */
void store_writer_name(struct store_writer *writer, const char *name);
/* Queue a job. Loop thread (or a done callback). */
void store_writer_submit(struct store_writer *writer, store_job_fn *run,
    store_job_done_fn *done, void *arg);
/* Jobs queued or running. Loop thread. */
size_t store_writer_pending(const struct store_writer *writer);
/* The counters so far. Any thread. */
void store_writer_get_stats(struct store_writer *writer, struct store_writer_stats *stats);
/*
 * Watch whether the store takes writes, for readiness: the thread commits a probe
 * write (store_probe_write) now and every interval_ms between jobs, and a job that
 * returns STORE_EIO counts as a failed write too. Writes work again once a probe
 * succeeds at least interval_ms after the last failure, so that a full disk on which
 * the small probe still fits does not flap. Loop thread, once.
 */
void store_writer_watch_writes(struct store_writer *writer, int64_t interval_ms);
/*
 * NULL while writes work (or are not watched); else why they fail, copied into buf:
 * "database or disk is full". Any thread; never waits for a job.
 */
const char *store_writer_write_error(struct store_writer *writer, char *buf, size_t size);
/*
 * Watch whether the store answers reads, for readiness: the thread pings it
 * (store_ping) now and every interval_ms between jobs. Loop thread, once.
 */
void store_writer_watch_reads(struct store_writer *writer, int64_t interval_ms);
/*
 * NULL while the last ping answered (or reads are not watched); else why not, copied
 * into buf ("storage error"). Any thread; never waits for a job.
 */
const char *store_writer_read_error(struct store_writer *writer, char *buf, size_t size);
/*
 * Finish every queued job, run the done callbacks still due (here, on the caller's
 * thread), stop the thread and close its connection. NULL is ignored. Loop thread.
 */
void store_writer_stop(struct store_writer *writer);

#endif
