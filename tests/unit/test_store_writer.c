/*
 * Tests for the store threads: group commit, failures inside a batch, order, reads,
 * and the flush apart from the commit. With PUSHRELAY_TEST_STORE = postgresql
 * (tests/unit/store_postgresql.py), on the PostgreSQL backend, but for the tests of
 * SQLite's files: failing file writes, the flush apart.
 */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "model.h"
#include "store_ledger.h"
#include "store_registry.h"
#include "store_writer.h"

#include "pg_fixture.h"

#define T0 INT64_C(1700000000000)
#define JOBS_MAX 320

/* A job that holds its batch open until the test lets it go. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int started;
	int released;
};

/* What the done callbacks saw, in the order they ran. */
struct record {
	int order[JOBS_MAX];
	int results[JOBS_MAX];
	size_t count;
};

/*
 * The store's fdatasync, wrapped (-Wl,--wrap=fdatasync): the flush of a batch
 * committed apart can be held, or made to fail, to see what waits for it.
 */
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int hold;			/* flushes wait until this is 0 again */
	int held;			/* a flush is waiting */
	int fail;			/* this many flushes fail with EIO */
	int calls;
} flush = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0 };

int
__wrap_fdatasync(int fd)
{
	int fail;

	pthread_mutex_lock(&flush.lock);
	flush.calls++;
	while (flush.hold) {
		flush.held = 1;
		pthread_cond_broadcast(&flush.cond);
		pthread_cond_wait(&flush.cond, &flush.lock);
	}
	flush.held = 0;
	if ((fail = flush.fail > 0))
		flush.fail--;
	pthread_mutex_unlock(&flush.lock);
	if (fail) {
		errno = EIO;
		return -1;
	}
	return __real_fdatasync(fd);
}

/* Flushes wait (hold 1) or go on (0). */
static void
flush_hold(int hold)
{
	pthread_mutex_lock(&flush.lock);
	flush.hold = hold;
	pthread_cond_broadcast(&flush.cond);
	pthread_mutex_unlock(&flush.lock);
}

/* Wait until a flush is held. */
static void
flush_wait_held(void)
{
	pthread_mutex_lock(&flush.lock);
	while (!flush.held)
		pthread_cond_wait(&flush.cond, &flush.lock);
	pthread_mutex_unlock(&flush.lock);
}

/* One job: what it does, and where its done callback writes. */
struct job {
	int id;
	const char *device_id;		/* put this device (NULL: none) */
	const char *duplicate_push;	/* then insert this push again: fails */
	struct gate *gate;		/* then wait for the gate */
	struct record *record;
};

struct fixture {
	char dir[256];
	char path[PATH_MAX];
	struct store *store;		/* the test's own connection */
	struct event_base *base;
	struct store_writer *writer;
	struct gate gate;
	struct record record;
	struct job jobs[JOBS_MAX];
};

/* nftw callback: remove one file or (emptied) directory. */
static int
remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* A temp dir, a store in it, a loop and a group-commit writer. */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");
	struct store_options options;
	char err[512];

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof f->dir, "%s/test_store_writer.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/registry.db", f->dir);
	memset(&options, 0, sizeof options);
	options.path = f->path;
	options.sync = STORE_SYNC_FULL;
	options.busy_timeout_ms = 1000;
	options.conninfo = test_conninfo;
	if (test_is_pg() && pg_reset_database() != 0)
		return -1;
	if (store_open(test_backend, &options, &f->store, err, sizeof err) != STORE_OK) {
		fprintf(stderr, "store_open: %s\n", err);
		return -1;
	}
	f->base = event_base_new();
	f->writer = store_writer_start(f->base, f->store, STORE_WRITER_GROUP_COMMIT, err,
	    sizeof err);
	if (f->base == NULL || f->writer == NULL) {
		fprintf(stderr, "store_writer_start: %s\n", err);
		return -1;
	}
	pthread_mutex_init(&f->gate.lock, NULL);
	pthread_cond_init(&f->gate.cond, NULL);
	/* A test that hangs fails instead. */
	alarm(60);
	*state = f;
	return 0;
}

static void gate_release(struct gate *);

static int
teardown(void **state)
{
	struct fixture *f = *state;

	/* A test that failed while a job waited: let it go, or stopping waits forever. */
	gate_release(&f->gate);
	flush_hold(0);
	flush.fail = 0;
	store_writer_stop(f->writer);
	alarm(0);
	store_close(f->store);
	event_base_free(f->base);
	pthread_mutex_destroy(&f->gate.lock);
	pthread_cond_destroy(&f->gate.cond);
	nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* A registration with a token of its own. */
static struct device
device_new(const char *device_id)
{
	struct device d;
	char token[65];
	unsigned long h = 5381;

	for (const char *p = device_id; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	snprintf(token, sizeof token, "%016lx%048d", h, 0);
	memset(&d, 0, sizeof d);
	d.device_id = strdup(device_id);
	d.client_id = strdup("client");
	d.platform = DEVICE_PLATFORM_APNS;
	d.token = strdup(token);
	d.app_id = strdup("com.example.app");
	d.environment = DEVICE_ENVIRONMENT_PRODUCTION;
	return d;
}

/* Put a device through a connection. */
static int
put_device(struct store *store, const char *device_id)
{
	struct device d = device_new(device_id);
	int rc = store_device_put(store, &d, T0, NULL, NULL);

	model_device_free(&d);
	return rc;
}

/* Is the device there, as the test's own connection sees it? */
static int
device_there(struct fixture *f, const char *device_id)
{
	struct device d;
	int rc = store_device_get(f->store, device_id, &d);

	model_device_free(&d);
	assert_true(rc == STORE_OK || rc == STORE_ENOTFOUND);
	return rc == STORE_OK;
}

/* A push with one row, to insert twice. */
static int
insert_push(struct store *store, const char *push_id)
{
	struct push_row row = { "d", "client", DEVICE_PLATFORM_APNS, "com.example.app", -1,
		"queued", NULL, 0, T0 };
	struct push_record record = { (char *)push_id, T0, "{}", 0, 0, &row, 1 };

	return store_push_insert(store, &record);
}

/* The job: put, fail, wait, as it says. */
static int
job_run(struct store *store, void *arg)
{
	struct job *job = arg;
	int rc;

	if (job->device_id != NULL && (rc = put_device(store, job->device_id)) != STORE_OK)
		return rc;
	if (job->duplicate_push != NULL &&
	    (rc = insert_push(store, job->duplicate_push)) != STORE_OK)
		return rc;
	if (job->gate != NULL) {
		pthread_mutex_lock(&job->gate->lock);
		job->gate->started = 1;
		pthread_cond_broadcast(&job->gate->cond);
		while (!job->gate->released)
			pthread_cond_wait(&job->gate->cond, &job->gate->lock);
		pthread_mutex_unlock(&job->gate->lock);
	}
	return STORE_OK;
}

static void
job_done(int result, void *arg)
{
	struct job *job = arg;
	struct record *r = job->record;

	r->order[r->count] = job->id;
	r->results[r->count++] = result;
}

/* Queue job number id of the fixture, without ending the loop's turn. */
static void
submit_in_turn(struct fixture *f, int id, const char *device_id,
    const char *duplicate_push, struct gate *gate)
{
	struct job *job = &f->jobs[id];

	job->id = id;
	job->device_id = device_id;
	job->duplicate_push = duplicate_push;
	job->gate = gate;
	job->record = &f->record;
	store_writer_submit(f->writer, job_run, job_done, job);
}

/* Queue job number id in a loop turn of its own: the writer has it when this returns. */
static void
submit(struct fixture *f, int id, const char *device_id, const char *duplicate_push,
    struct gate *gate)
{
	submit_in_turn(f, id, device_id, duplicate_push, gate);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* Wait until the gated job runs. */
static void
gate_wait_started(struct gate *gate)
{
	pthread_mutex_lock(&gate->lock);
	while (!gate->started)
		pthread_cond_wait(&gate->cond, &gate->lock);
	pthread_mutex_unlock(&gate->lock);
}

static void
gate_release(struct gate *gate)
{
	pthread_mutex_lock(&gate->lock);
	gate->released = 1;
	pthread_cond_broadcast(&gate->cond);
	pthread_mutex_unlock(&gate->lock);
}

/* Run the loop until count done callbacks have run. */
static void
run_until_done(struct fixture *f, size_t count)
{
	while (f->record.count < count)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(store_writer_pending(f->writer), 0);
}

static void
test_jobs_queued_while_a_batch_runs_join_it_up_to_the_bound(void **state)
{
	struct fixture *f = *state;
	struct store_writer_stats stats;
	static char ids[300][16];

	for (int i = 0; i < 300; i++)
		snprintf(ids[i], sizeof ids[i], "dev-%03d", i);
	submit(f, 0, ids[0], NULL, &f->gate);
	gate_wait_started(&f->gate);
	for (int i = 1; i < 300; i++)
		submit(f, i, ids[i], NULL, NULL);
	gate_release(&f->gate);
	run_until_done(f, 300);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(f->record.order[i], i);
		assert_int_equal(f->record.results[i], STORE_OK);
	}
	assert_true(device_there(f, ids[0]));
	assert_true(device_there(f, ids[255]));
	assert_true(device_there(f, ids[256]));
	assert_true(device_there(f, ids[299]));
	store_writer_get_stats(f->writer, &stats);
	assert_int_equal(stats.jobs, 300);
	/* The gated job and 255 that came meanwhile, then the other 44 together. */
	assert_int_equal(stats.batches, 2);
	assert_int_equal(stats.largest_batch, STORE_WRITER_BATCH_MAX);
	assert_int_equal(stats.batch_failures, 0);
}

static void
test_the_jobs_of_one_loop_turn_start_one_batch_together(void **state)
{
	struct fixture *f = *state;
	struct store_writer_stats stats;
	static char ids[5][16];

	/* As when several connections were readable in one turn: one batch, not 1 + 4. */
	for (int i = 0; i < 5; i++) {
		snprintf(ids[i], sizeof ids[i], "turn-%d", i);
		submit_in_turn(f, i, ids[i], NULL, NULL);
	}
	/* Until the turn ends, the thread has none of them. */
	usleep(20000);
	store_writer_get_stats(f->writer, &stats);
	assert_int_equal(stats.jobs, 0);
	run_until_done(f, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(f->record.order[i], i);
		assert_int_equal(f->record.results[i], STORE_OK);
		assert_true(device_there(f, ids[i]));
	}
	store_writer_get_stats(f->writer, &stats);
	assert_int_equal(stats.batches, 1);
	assert_int_equal(stats.largest_batch, 5);
}

static void
test_a_failing_job_is_undone_alone_and_its_batch_commits(void **state)
{
	struct fixture *f = *state;
	struct store_writer_stats stats;

	assert_int_equal(insert_push(f->store, "p1"), STORE_OK);
	submit(f, 0, NULL, NULL, &f->gate);
	gate_wait_started(&f->gate);
	submit(f, 1, "before", NULL, NULL);
	/* Puts a device, then fails: the device goes with it. */
	submit(f, 2, "failing", "p1", NULL);
	submit(f, 3, "after", NULL, NULL);
	gate_release(&f->gate);
	run_until_done(f, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(f->record.order[i], i);
	assert_int_equal(f->record.results[0], STORE_OK);
	assert_int_equal(f->record.results[1], STORE_OK);
	assert_int_equal(f->record.results[2], STORE_EIO);
	assert_int_equal(f->record.results[3], STORE_OK);
	assert_true(device_there(f, "before"));
	assert_false(device_there(f, "failing"));
	assert_true(device_there(f, "after"));
	store_writer_get_stats(f->writer, &stats);
	assert_int_equal(stats.batches, 1);
	assert_int_equal(stats.largest_batch, 4);
	assert_int_equal(stats.batch_failures, 0);
}

static void
test_generation_moves_after_the_batch_commits_not_before(void **state)
{
	struct fixture *f = *state;
	uint64_t g;

	/* A room member's device: on a route. */
	assert_int_equal(store_member_put(f->store, "room", "client", T0, NULL, NULL),
	    STORE_OK);
	g = store_generation(f->store);
	/* The put is done, its batch not committed while the job waits. */
	submit(f, 0, "pending", NULL, &f->gate);
	gate_wait_started(&f->gate);
	assert_int_equal(store_generation(f->store), g);
	assert_false(device_there(f, "pending"));
	gate_release(&f->gate);
	run_until_done(f, 1);
	assert_int_equal(f->record.results[0], STORE_OK);
	assert_int_equal(store_generation(f->store), g + 1);
	assert_true(device_there(f, "pending"));
}

static void
test_a_failed_commit_fails_every_job_of_its_batch(void **state)
{
	struct fixture *f = *state;
	struct store_writer_stats stats;
	struct rlimit saved, tiny;

	submit(f, 0, NULL, NULL, &f->gate);
	gate_wait_started(&f->gate);
	submit(f, 1, "x1", NULL, NULL);
	submit(f, 2, "x2", NULL, NULL);
	/* Writes past offset 1 fail (EFBIG), as on a full disk: the commit cannot write. */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	tiny = saved;
	tiny.rlim_cur = 1;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
	gate_release(&f->gate);
	run_until_done(f, 3);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	/* The gated job wrote nothing, but its batch did not commit either. */
	assert_int_equal(f->record.results[0], STORE_EIO);
	assert_int_equal(f->record.results[1], STORE_EIO);
	assert_int_equal(f->record.results[2], STORE_EIO);
	assert_false(device_there(f, "x1"));
	assert_false(device_there(f, "x2"));
	store_writer_get_stats(f->writer, &stats);
	assert_int_equal(stats.batch_failures, 1);
	/* Writes work again: the next batch commits. */
	submit(f, 3, "x3", NULL, NULL);
	run_until_done(f, 4);
	assert_int_equal(f->record.results[3], STORE_OK);
	assert_true(device_there(f, "x3"));
}

/* A read on a reader thread: is the device there? */
struct read_job {
	const char *device_id;
	int result;
};

static int
read_run(struct store *store, void *arg)
{
	struct read_job *job = arg;
	struct device d;
	int rc = store_device_get(store, job->device_id, &d);

	model_device_free(&d);
	return rc;
}

static void
read_done(int result, void *arg)
{
	struct read_job *job = arg;

	job->result = result;
}

static void
test_a_reader_answers_while_a_batch_holds_the_write_lock(void **state)
{
	struct fixture *f = *state;
	struct store_writer *reader;
	struct read_job old = { "old", 1 }, pending = { "new", 1 };
	char err[256];

	assert_int_equal(put_device(f->store, "old"), STORE_OK);
	reader = store_writer_start(f->base, f->store, STORE_WRITER_EACH, err, sizeof err);
	assert_non_null(reader);
	submit(f, 0, "new", NULL, &f->gate);
	gate_wait_started(&f->gate);
	/* The writer is inside its transaction: reads go on, and see what was committed. */
	store_writer_submit(reader, read_run, read_done, &old);
	store_writer_submit(reader, read_run, read_done, &pending);
	while (store_writer_pending(reader) > 0)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(old.result, STORE_OK);
	assert_int_equal(pending.result, STORE_ENOTFOUND);
	assert_int_equal(f->record.count, 0);
	gate_release(&f->gate);
	run_until_done(f, 1);
	store_writer_stop(reader);
	assert_true(device_there(f, "new"));
}

static void
test_stop_runs_every_queued_job_and_its_done_callback(void **state)
{
	struct fixture *f = *state;

	submit(f, 0, "s0", NULL, NULL);
	submit(f, 1, "s1", NULL, NULL);
	submit(f, 2, "s2", NULL, NULL);
	store_writer_stop(f->writer);
	f->writer = NULL;
	assert_int_equal(f->record.count, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(f->record.order[i], i);
		assert_int_equal(f->record.results[i], STORE_OK);
	}
	assert_true(device_there(f, "s0"));
	assert_true(device_there(f, "s2"));
}

static void
test_read_watch_reports_a_store_that_no_longer_answers(void **state)
{
	struct fixture *f = *state;
	char buf[64];
	const char *why = NULL;
	sqlite3 *db;

	store_writer_watch_reads(f->writer, 20);
	usleep(100000);
	assert_null(store_writer_read_error(f->writer, buf, sizeof buf));
	/* The ping reads a table: without it, reads fail. */
	if (test_is_pg())
		assert_int_equal(pg_raw_exec("DROP TABLE devices CASCADE"), 0);
	else {
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = OFF; DROP TABLE devices",
		    NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	}
	for (int i = 0; i < 500 && why == NULL; i++) {
		why = store_writer_read_error(f->writer, buf, sizeof buf);
		usleep(10000);
	}
	assert_non_null(why);
	assert_string_equal(why, "storage error");
}

/*
 * Batches are committed without waiting for the disk, and answered only after a
 * flush that began after their commit; the next batch commits during the flush.
 */
static void
test_a_batch_is_answered_only_after_its_flush(void **state)
{
	struct fixture *f = *state;
	struct store_writer_stats stats;

	flush_hold(1);
	submit(f, 0, "f0", NULL, NULL);
	flush_wait_held();
	/* Committed (another connection reads it), not yet flushed: no answer. */
	assert_true(device_there(f, "f0"));
	for (int i = 0; i < 20; i++) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(f->record.count, 0);
	/* The next batch does not wait for that flush to commit. */
	submit(f, 1, "f1", NULL, NULL);
	for (int i = 0; i < 5000 && !device_there(f, "f1"); i++)
		usleep(1000);
	assert_true(device_there(f, "f1"));
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->record.count, 0);
	flush_hold(0);
	run_until_done(f, 2);
	assert_int_equal(f->record.order[0], 0);
	assert_int_equal(f->record.order[1], 1);
	assert_int_equal(f->record.results[0], STORE_OK);
	assert_int_equal(f->record.results[1], STORE_OK);
	store_writer_get_stats(f->writer, &stats);
	assert_int_equal(stats.batches, 2);
	assert_int_equal(stats.flushes, 2);
	assert_int_equal(stats.flush_failures, 0);
}

/* A flush that fails fails the jobs it was to make durable; the next ones work. */
static void
test_a_failed_flush_fails_the_jobs_it_covered(void **state)
{
	struct fixture *f = *state;
	struct store_writer_stats stats;
	char buf[64];

	store_writer_watch_writes(f->writer, 60000);
	flush.fail = 1;
	submit(f, 0, "e0", NULL, NULL);
	run_until_done(f, 1);
	assert_int_equal(f->record.results[0], STORE_EIO);
	assert_non_null(store_writer_write_error(f->writer, buf, sizeof buf));
	submit(f, 1, "e1", NULL, NULL);
	run_until_done(f, 2);
	assert_int_equal(f->record.results[1], STORE_OK);
	assert_true(device_there(f, "e1"));
	store_writer_get_stats(f->writer, &stats);
	assert_int_equal(stats.flush_failures, 1);
}

/* Stopping flushes what is committed before the last done callbacks run. */
static void
test_stop_flushes_before_the_last_answers(void **state)
{
	struct fixture *f = *state;
	int calls;

	pthread_mutex_lock(&flush.lock);
	calls = flush.calls;
	pthread_mutex_unlock(&flush.lock);
	submit(f, 0, "t0", NULL, NULL);
	submit(f, 1, "t1", NULL, NULL);
	store_writer_stop(f->writer);
	f->writer = NULL;
	assert_int_equal(f->record.count, 2);
	assert_int_equal(f->record.results[0], STORE_OK);
	assert_int_equal(f->record.results[1], STORE_OK);
	pthread_mutex_lock(&flush.lock);
	assert_true(flush.calls > calls);
	pthread_mutex_unlock(&flush.lock);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_jobs_queued_while_a_batch_runs_join_it_up_to_the_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_the_jobs_of_one_loop_turn_start_one_batch_together, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_failing_job_is_undone_alone_and_its_batch_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_generation_moves_after_the_batch_commits_not_before, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_failed_commit_fails_every_job_of_its_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_reader_answers_while_a_batch_holds_the_write_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stop_runs_every_queued_job_and_its_done_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_read_watch_reports_a_store_that_no_longer_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_batch_is_answered_only_after_its_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_failed_flush_fails_the_jobs_it_covered, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stop_flushes_before_the_last_answers, setup, teardown),
	};

	struct CMUnitTest chosen[sizeof tests / sizeof tests[0]];
	size_t count = 0;

	if (test_backend_init() != 0)
		return 1;
	if (!test_is_pg())
		return cmocka_run_group_tests_name("store_writer", tests, NULL, NULL);
	/*
	 * SQLite's failing file writes, and its flush apart from the commit (PostgreSQL's
	 * commits stay durable on their own), have no PostgreSQL counterpart here.
	 */
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		static const char *const sqlite_only[] = {
			"test_a_failed_commit_fails_every_job_of_its_batch",
			"test_a_batch_is_answered_only_after_its_flush",
			"test_a_failed_flush_fails_the_jobs_it_covered",
			"test_stop_flushes_before_the_last_answers",
		};
		int skip = 0;

		for (size_t j = 0; j < sizeof sqlite_only / sizeof sqlite_only[0]; j++)
			skip |= strcmp(tests[i].name, sqlite_only[j]) == 0;
		if (!skip)
			chosen[count++] = tests[i];
	}
	return _cmocka_run_group_tests("store_writer_postgresql", chosen, count, NULL, NULL);
}
