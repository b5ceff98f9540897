/*
 * Store threads: jobs in, results back to the event loop through an eventfd; group
 * commit for the writer, with a flush thread of its own when the backend flushes
 * apart: the writer commits batch n+1 while the flush thread fsyncs batch n.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "store_writer.h"
#include "xmalloc.h"

struct store_job {
	TAILQ_ENTRY(store_job) entry;
	store_job_fn *run;
	store_job_done_fn *done;
	void *arg;
	int result;
};
TAILQ_HEAD(store_job_list, store_job);

struct store_writer {
	struct store *store;		/* the thread's own connection */
	enum store_writer_mode mode;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct store_job_list todo;	/* protected by lock */
	struct store_job_list done;	/* protected by lock */
	/*
	 * The flush thread, when commits are flushed apart (store_flush_apart): the
	 * batches committed and not yet flushed, in order, and its wake-up; protected by
	 * lock.
	 */
	int flushing_apart;
	pthread_t flusher;
	pthread_cond_t flush_wake;
	struct store_job_list unflushed;
	int flusher_stopping;
	size_t pending;			/* queued or running; loop thread only */
	int stopping;			/* protected by lock */
	int wakefd;			/* eventfd: the thread tells the loop */
	struct event *wake_event;
	/*
	 * Group commit: the jobs a turn of the loop submits, handed to the thread together
	 * at the end of that turn (hand_over), so that a batch starts with all of them
	 * rather than with the first alone. Loop thread only.
	 */
	struct store_job_list staged;
	struct event *hand_over;
	/* Write health (store_writer_watch_writes); all protected by lock. */
	int64_t probe_interval_ms;	/* 0: not watched */
	int64_t probe_due;		/* monotonic ms of the next probe */
	int64_t failed_at;		/* monotonic ms of the last failed write */
	char write_error[128];		/* "" while writes work */
	/* Read health (store_writer_watch_reads); protected by lock. */
	int64_t ping_interval_ms;	/* 0: not watched */
	int64_t ping_due;
	char read_error[128];		/* "" while the last ping answered */
	struct store_writer_stats stats;	/* protected by lock */
};

/*
 * Note the result of a write, with lock held: a probe's, with the backend's reason,
 * or a job's, with why NULL (a job only says STORE_EIO). A failure counts at once;
 * success clears it only once no write failed for an interval.
 */
static void
writer_note_write(struct store_writer *w, int result, const char *why)
{
	int64_t now = clock_monotonic_ms();

	if (result == STORE_EIO) {
		if (w->write_error[0] == '\0')
			log_error("store writes fail: not ready until they work again", "error",
			    why != NULL ? why : store_strerror(result), NULL);
		if (why != NULL)
			snprintf(w->write_error, sizeof w->write_error, "%s", why);
		else if (w->write_error[0] == '\0')
			snprintf(w->write_error, sizeof w->write_error, "%s",
			    store_strerror(result));
		w->failed_at = now;
	} else if (result == STORE_OK && w->write_error[0] != '\0' &&
	    now - w->failed_at >= w->probe_interval_ms) {
		w->write_error[0] = '\0';
		log_info("store writes work again", NULL);
	}
}

/* Run the probe write if it is due, with lock held (released while it runs). */
static void
writer_probe_if_due(struct store_writer *w)
{
	char why[sizeof w->write_error];
	int rc;

	if (w->probe_interval_ms <= 0 || clock_monotonic_ms() < w->probe_due)
		return;
	pthread_mutex_unlock(&w->lock);
	why[0] = '\0';
	rc = store_probe_write(w->store, why, sizeof why);
	pthread_mutex_lock(&w->lock);
	writer_note_write(w, rc, why[0] != '\0' ? why : store_strerror(rc));
	w->probe_due = clock_monotonic_ms() + w->probe_interval_ms;
}

/* Ping the store if it is due, with lock held (released while it runs). */
static void
writer_ping_if_due(struct store_writer *w)
{
	int rc;

	if (w->ping_interval_ms <= 0 || clock_monotonic_ms() < w->ping_due)
		return;
	pthread_mutex_unlock(&w->lock);
	rc = store_ping(w->store);
	pthread_mutex_lock(&w->lock);
	if (rc != STORE_OK && w->read_error[0] == '\0')
		log_error("store reads fail: not ready until they work again", "error",
		    store_strerror(rc), NULL);
	else if (rc == STORE_OK && w->read_error[0] != '\0')
		log_info("store reads work again", NULL);
	if (rc != STORE_OK)
		snprintf(w->read_error, sizeof w->read_error, "%s", store_strerror(rc));
	else
		w->read_error[0] = '\0';
	w->ping_due = clock_monotonic_ms() + w->ping_interval_ms;
}

/* The health checks that are due, with lock held. */
static void
writer_checks_if_due(struct store_writer *w)
{
	writer_probe_if_due(w);
	writer_ping_if_due(w);
}

/* Wait for a job (or stop), with lock held; wakes for the checks that are watched. */
static void
writer_wait(struct store_writer *w)
{
	struct timespec until;
	int64_t due = INT64_MAX;

	if (w->probe_interval_ms > 0)
		due = w->probe_due;
	if (w->ping_interval_ms > 0 && w->ping_due < due)
		due = w->ping_due;
	if (due == INT64_MAX) {
		pthread_cond_wait(&w->wake, &w->lock);
		return;
	}
	until.tv_sec = due / 1000;
	until.tv_nsec = (due % 1000) * 1000000;
	pthread_cond_timedwait(&w->wake, &w->lock, &until);
}

/* Give jobs first..last (or to the end) the same result. */
static void
writer_fail_jobs(struct store_job *first, struct store_job *last, int result)
{
	for (struct store_job *job = first; job != NULL; job = TAILQ_NEXT(job, entry)) {
		job->result = result;
		if (job == last)
			break;
	}
}

/*
 * Move jobs that came meanwhile to the end of a batch of count jobs, up to the
 * largest batch: the commit is the slow part, and they would wait for it anyway.
 * The next job to run, or NULL.
 */
static struct store_job *
writer_join(struct store_writer *w, struct store_job_list *jobs, uint64_t count,
    struct store_writer_stats *stats)
{
	struct store_job *job, *next = NULL;

	pthread_mutex_lock(&w->lock);
	while (count < STORE_WRITER_BATCH_MAX && (job = TAILQ_FIRST(&w->todo)) != NULL) {
		TAILQ_REMOVE(&w->todo, job, entry);
		TAILQ_INSERT_TAIL(jobs, job, entry);
		if (next == NULL)
			next = job;
		stats->jobs++;
		count++;
	}
	pthread_mutex_unlock(&w->lock);
	return next;
}

/*
 * Run jobs as group commits: one transaction, each job in a savepoint, joined by
 * the jobs that come while it runs. A job that fails is undone alone. If the
 * database loses the transaction, the jobs run in it so far fail with STORE_EIO and
 * the rest go into a new one.
 */
static void
writer_run_batches(struct store_writer *w, struct store_job_list *jobs,
    struct store_writer_stats *stats)
{
	struct store_job *first = TAILQ_FIRST(jobs), *job, *lost;
	uint64_t count;

	while (first != NULL) {
		stats->batches++;
		if (store_batch_begin(w->store) != STORE_OK) {
			stats->batch_failures++;
			writer_fail_jobs(first, NULL, STORE_EIO);
			return;
		}
		lost = NULL;
		count = 0;
		for (job = first; job != NULL; job = TAILQ_NEXT(job, entry) != NULL ?
		    TAILQ_NEXT(job, entry) : writer_join(w, jobs, count, stats)) {
			count++;
			if (store_batch_job_begin(w->store) != STORE_OK) {
				lost = job;
				break;
			}
			job->result = job->run(w->store, job->arg);
			if (store_batch_job_end(w->store, job->result == STORE_OK) != STORE_OK) {
				lost = job;
				break;
			}
		}
		if (count > stats->largest_batch)
			stats->largest_batch = count;
		if (lost != NULL) {
			store_batch_rollback(w->store);
			stats->batch_failures++;
			writer_fail_jobs(first, lost, STORE_EIO);
			first = TAILQ_NEXT(lost, entry);
			continue;
		}
		if (store_batch_commit(w->store) != STORE_OK) {
			stats->batch_failures++;
			writer_fail_jobs(first, NULL, STORE_EIO);
		}
		return;
	}
}

/* Run taken jobs in the writer's mode; count them into stats. */
static void
writer_run(struct store_writer *w, struct store_job_list *jobs,
    struct store_writer_stats *stats)
{
	struct store_job *job;

	TAILQ_FOREACH(job, jobs, entry)
		stats->jobs++;
	if (w->mode == STORE_WRITER_GROUP_COMMIT) {
		writer_run_batches(w, jobs, stats);
		return;
	}
	TAILQ_FOREACH(job, jobs, entry)
		job->result = job->run(w->store, job->arg);
}

/* Take the next jobs to run, with lock held: a batch, or one in STORE_WRITER_EACH. */
static void
writer_take(struct store_writer *w, struct store_job_list *jobs)
{
	size_t max = w->mode == STORE_WRITER_GROUP_COMMIT ? STORE_WRITER_BATCH_MAX : 1;
	struct store_job *job;

	TAILQ_INIT(jobs);
	for (size_t n = 0; n < max && (job = TAILQ_FIRST(&w->todo)) != NULL; n++) {
		TAILQ_REMOVE(&w->todo, job, entry);
		TAILQ_INSERT_TAIL(jobs, job, entry);
	}
}

/* Add what a run did to the counters, with lock held. */
static void
writer_count(struct store_writer *w, const struct store_writer_stats *run)
{
	w->stats.jobs += run->jobs;
	w->stats.batches += run->batches;
	w->stats.batch_failures += run->batch_failures;
	w->stats.flushes += run->flushes;
	w->stats.flush_failures += run->flush_failures;
	if (run->largest_batch > w->stats.largest_batch)
		w->stats.largest_batch = run->largest_batch;
}

/* Hand finished jobs back to the loop, with lock held. */
static void
writer_finish(struct store_writer *w, struct store_job_list *jobs)
{
	struct store_job *job;
	uint64_t one = 1;
	ssize_t unused;

	TAILQ_FOREACH(job, jobs, entry) {
		if (w->probe_interval_ms > 0 && job->result == STORE_EIO)
			writer_note_write(w, STORE_EIO, NULL);
	}
	TAILQ_CONCAT(&w->done, jobs, entry);
	unused = write(w->wakefd, &one, sizeof one);
	(void)unused;
}

/*
 * Flush committed jobs: one fsync makes them all durable. If it fails, what they
 * wrote may be lost with the host: those that succeeded fail with STORE_EIO.
 */
static void
writer_flush(struct store_writer *w, struct store_job_list *jobs,
    struct store_writer_stats *stats)
{
	struct store_job *job;

	stats->flushes++;
	if (store_flush(w->store) == STORE_OK)
		return;
	stats->flush_failures++;
	TAILQ_FOREACH(job, jobs, entry) {
		if (job->result == STORE_OK)
			job->result = STORE_EIO;
	}
}

/*
 * The flush thread: flushes whatever batches the writer committed meanwhile, all
 * with one fsync, while the writer commits the next; then hands them to the loop.
 */
static void *
flusher_main(void *arg)
{
	struct store_writer *w = arg;
	struct store_writer_stats run;
	struct store_job_list jobs;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (TAILQ_EMPTY(&w->unflushed) && !w->flusher_stopping)
			pthread_cond_wait(&w->flush_wake, &w->lock);
		if (TAILQ_EMPTY(&w->unflushed))
			break;	/* stopping, and nothing left */
		TAILQ_INIT(&jobs);
		TAILQ_CONCAT(&jobs, &w->unflushed, entry);
		pthread_mutex_unlock(&w->lock);
		memset(&run, 0, sizeof run);
		writer_flush(w, &jobs, &run);
		pthread_mutex_lock(&w->lock);
		writer_count(w, &run);
		writer_finish(w, &jobs);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* The thread: run jobs in order, hand them back to the loop. */
static void *
writer_main(void *arg)
{
	struct store_writer *w = arg;
	struct store_writer_stats run;
	struct store_job_list jobs;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (TAILQ_EMPTY(&w->todo) && !w->stopping) {
			writer_checks_if_due(w);
			if (TAILQ_EMPTY(&w->todo) && !w->stopping)
				writer_wait(w);
		}
		if (TAILQ_EMPTY(&w->todo))
			break;	/* stopping, and nothing left */
		/* Those that come while these run join them; during the commit, the next. */
		writer_take(w, &jobs);
		pthread_mutex_unlock(&w->lock);
		memset(&run, 0, sizeof run);
		writer_run(w, &jobs, &run);
		pthread_mutex_lock(&w->lock);
		writer_count(w, &run);
		if (w->flushing_apart) {
			/* Committed, not yet durable: the flush thread hands them back. */
			TAILQ_CONCAT(&w->unflushed, &jobs, entry);
			pthread_cond_signal(&w->flush_wake);
		} else
			writer_finish(w, &jobs);
		/* A busy thread still checks, so that it can find writes work again. */
		writer_checks_if_due(w);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Run the done callbacks of finished jobs, in order. */
static void
writer_collect(struct store_writer *w)
{
	struct store_job_list finished;
	struct store_job *job;

	TAILQ_INIT(&finished);
	pthread_mutex_lock(&w->lock);
	TAILQ_CONCAT(&finished, &w->done, entry);
	pthread_mutex_unlock(&w->lock);
	while ((job = TAILQ_FIRST(&finished)) != NULL) {
		TAILQ_REMOVE(&finished, job, entry);
		w->pending--;
		if (job->done != NULL)
			job->done(job->result, job->arg);
		free(job);
	}
}

static void
writer_wakeup(evutil_socket_t fd, short what, void *arg)
{
	struct store_writer *w = arg;
	uint64_t count;
	ssize_t unused;

	unused = read(fd, &count, sizeof count);
	(void)unused;
	writer_collect(w);
}

/* The end of a loop turn: the jobs it submitted go to the thread at once. */
static void
writer_hand_over(evutil_socket_t fd, short what, void *arg)
{
	struct store_writer *w = arg;

	if (TAILQ_EMPTY(&w->staged))
		return;
	pthread_mutex_lock(&w->lock);
	TAILQ_CONCAT(&w->todo, &w->staged, entry);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

struct store_writer *
store_writer_start(struct event_base *base, struct store *store, enum store_writer_mode mode,
    char *err, size_t errlen)
{
	struct store_writer *w = xcalloc(1, sizeof *w);
	pthread_condattr_t attr;
	int rc;

	if (store_open_another(store, &w->store, err, errlen) != STORE_OK) {
		free(w);
		return NULL;
	}
	w->mode = mode;
	TAILQ_INIT(&w->todo);
	TAILQ_INIT(&w->done);
	TAILQ_INIT(&w->staged);
	if ((w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		fatal("eventfd");
	w->wake_event = event_new(base, w->wakefd, EV_READ | EV_PERSIST, writer_wakeup, w);
	if (w->wake_event == NULL || event_add(w->wake_event, NULL) != 0)
		fatalx("cannot watch the store writer");
	if ((w->hand_over = event_new(base, -1, 0, writer_hand_over, w)) == NULL)
		fatalx("cannot create the store writer's hand-over event");
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &attr);
	pthread_condattr_destroy(&attr);
	TAILQ_INIT(&w->unflushed);
	pthread_cond_init(&w->flush_wake, NULL);
	/* Group commit flushes apart when the backend can: the next batch is written meanwhile. */
	if (mode == STORE_WRITER_GROUP_COMMIT && store_flush_apart(w->store) == STORE_OK) {
		w->flushing_apart = 1;
		if ((rc = pthread_create(&w->flusher, NULL, flusher_main, w)) != 0) {
			errno = rc;
			fatal("cannot start the store flush thread");
		}
	}
	if ((rc = pthread_create(&w->thread, NULL, writer_main, w)) != 0) {
		errno = rc;
		fatal("cannot start the store writer thread");
	}
	store_writer_name(w, mode == STORE_WRITER_GROUP_COMMIT ? "store-writer" : "store-reader");
	if (w->flushing_apart)
		pthread_setname_np(w->flusher, "store-flush");
	return w;
}

void
store_writer_name(struct store_writer *w, const char *name)
{
	char cut[16];

	/* Linux keeps 15 bytes of a thread's name. */
	snprintf(cut, sizeof cut, "%s", name);
	pthread_setname_np(w->thread, cut);
}

void
store_writer_submit(struct store_writer *w, store_job_fn *run, store_job_done_fn *done,
    void *arg)
{
	struct store_job *job = xmalloc(sizeof *job);

	job->run = run;
	job->done = done;
	job->arg = arg;
	job->result = 0;
	w->pending++;
	if (w->mode == STORE_WRITER_GROUP_COMMIT) {
		/*
		 * Active events run after those already active in this turn (the other
		 * connections that were readable): the turn's writes start one batch.
		 */
		if (TAILQ_EMPTY(&w->staged))
			event_active(w->hand_over, EV_TIMEOUT, 0);
		TAILQ_INSERT_TAIL(&w->staged, job, entry);
		return;
	}
	pthread_mutex_lock(&w->lock);
	TAILQ_INSERT_TAIL(&w->todo, job, entry);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

size_t
store_writer_pending(const struct store_writer *w)
{
	return w->pending;
}

void
store_writer_watch_writes(struct store_writer *w, int64_t interval_ms)
{
	pthread_mutex_lock(&w->lock);
	w->probe_interval_ms = interval_ms;
	w->probe_due = clock_monotonic_ms();
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

const char *
store_writer_write_error(struct store_writer *w, char *buf, size_t size)
{
	int failing;

	pthread_mutex_lock(&w->lock);
	if ((failing = w->write_error[0] != '\0'))
		snprintf(buf, size, "%s", w->write_error);
	pthread_mutex_unlock(&w->lock);
	return failing ? buf : NULL;
}

void
store_writer_watch_reads(struct store_writer *w, int64_t interval_ms)
{
	pthread_mutex_lock(&w->lock);
	w->ping_interval_ms = interval_ms;
	w->ping_due = clock_monotonic_ms();
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

const char *
store_writer_read_error(struct store_writer *w, char *buf, size_t size)
{
	int failing;

	pthread_mutex_lock(&w->lock);
	if ((failing = w->read_error[0] != '\0'))
		snprintf(buf, size, "%s", w->read_error);
	pthread_mutex_unlock(&w->lock);
	return failing ? buf : NULL;
}

void
store_writer_get_stats(struct store_writer *w, struct store_writer_stats *stats)
{
	pthread_mutex_lock(&w->lock);
	*stats = w->stats;
	pthread_mutex_unlock(&w->lock);
}

void
store_writer_stop(struct store_writer *w)
{
	if (w == NULL)
		return;
	writer_hand_over(-1, 0, w);
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	if (w->flushing_apart) {
		pthread_mutex_lock(&w->lock);
		w->flusher_stopping = 1;
		pthread_cond_signal(&w->flush_wake);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->flusher, NULL);
	}
	/* The loop may be gone: finish here, including jobs that callbacks submit. */
	writer_collect(w);
	TAILQ_CONCAT(&w->todo, &w->staged, entry);
	while (!TAILQ_EMPTY(&w->todo)) {
		struct store_writer_stats run;
		struct store_job_list jobs;

		memset(&run, 0, sizeof run);
		writer_take(w, &jobs);
		writer_run(w, &jobs, &run);
		if (w->flushing_apart)
			writer_flush(w, &jobs, &run);
		writer_count(w, &run);
		TAILQ_CONCAT(&w->done, &jobs, entry);
		writer_collect(w);
		TAILQ_CONCAT(&w->todo, &w->staged, entry);
	}
	if (w->mode == STORE_WRITER_GROUP_COMMIT && w->stats.jobs > 0) {
		char jobs[24], batches[24], largest[24];

		snprintf(jobs, sizeof jobs, "%llu", (unsigned long long)w->stats.jobs);
		snprintf(batches, sizeof batches, "%llu", (unsigned long long)w->stats.batches);
		snprintf(largest, sizeof largest, "%llu",
		    (unsigned long long)w->stats.largest_batch);
		log_info("store writer stopped", "jobs", jobs, "batches", batches,
		    "largest_batch", largest, NULL);
	}
	event_free(w->hand_over);
	event_free(w->wake_event);
	close(w->wakefd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->flush_wake);
	store_close(w->store);
	free(w);
}
