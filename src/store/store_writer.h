/*
 * The store writer: a thread with its own store connection that runs jobs off the
 * event loop, so that fsyncs and large transactions (a push to a big room, the
 * batched progress of deliveries) never stall the network.
 *
 * Jobs run one at a time, in submission order, each in its own transaction(s) on the
 * writer's connection; their done callbacks run on the event loop, in the same order.
 * A job function must touch only its own argument and the store it is given.
 */
#ifndef PUSHRELAY_STORE_WRITER_H
#define PUSHRELAY_STORE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct event_base;
struct store_writer;

/* Runs on the writer thread; returns a result for done (0 or a STORE_E* code). */
typedef int store_job_fn(struct store *store, void *arg);
/* Runs on the event loop with the job's result. */
typedef void store_job_done_fn(int result, void *arg);

/* Open the writer's own connection and start its thread; NULL with err on failure. */
struct store_writer *store_writer_start(struct event_base *base, const char *backend,
    const struct store_options *options, char *err, size_t errlen);
/* Queue a job. */
void store_writer_submit(struct store_writer *writer, store_job_fn *run,
    store_job_done_fn *done, void *arg);
/* Jobs queued or running. */
size_t store_writer_pending(const struct store_writer *writer);
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
 * Finish every queued job, run the done callbacks still due (here, on the caller's
 * thread), stop the thread and close its connection.
 */
void store_writer_stop(struct store_writer *writer);

#endif
