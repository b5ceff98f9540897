/*
 * What only the PostgreSQL backend does: its schema and version row, the connection
 * string kept out of the log, losing the connection (alone, inside a batch) and
 * getting it back with a bounded backoff, waiting for a locked row, text that is not
 * UTF-8. Run by tests/unit/store_postgresql.py against a throwaway server
 * (PUSHRELAY_TEST_PG); test_store runs the tests every backend passes on it too.
 * PQreset and log_write are wrapped to count reconnections and log lines.
 */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "clock.h"
#include "log.h"
#include "model.h"
#include "store.h"
#include "store_outbox.h"
#include "store_registry.h"

#include "pg_fixture.h"

#define T0 INT64_C(1700000000000)
#define TOKEN_A "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define TOKEN_B "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"

/* ---- wrapped: PQreset and log_write ------------------------------------------- */

void __real_PQreset(PGconn *conn);
void __wrap_PQreset(PGconn *conn);
void __wrap_log_write(enum log_level level, const char *msg, ...);

static int resets;

/* Count the reconnections the backend tries. */
void
__wrap_PQreset(PGconn *conn)
{
	resets++;
	__real_PQreset(conn);
}

static struct {
	int lost;		/* "store connection to PostgreSQL lost" */
	int back;		/* "... is back" */
	int failed;		/* "store operation failed" */
	char all[8192];		/* every line's message and fields */
} logged;

/* Keep what the backend logs, to count it and to look for secrets in it. */
void
__wrap_log_write(enum log_level level, const char *msg, ...)
{
	const char *s;
	va_list ap;
	size_t len = strlen(logged.all);

	(void)level;
	if (strcmp(msg, "store connection to PostgreSQL lost: calls fail until it is back") == 0)
		logged.lost++;
	else if (strcmp(msg, "store connection to PostgreSQL is back") == 0)
		logged.back++;
	else if (strcmp(msg, "store operation failed") == 0)
		logged.failed++;
	snprintf(logged.all + len, sizeof logged.all - len, "%s;", msg);
	va_start(ap, msg);
	while ((s = va_arg(ap, const char *)) != NULL) {
		len = strlen(logged.all);
		snprintf(logged.all + len, sizeof logged.all - len, " %s", s);
	}
	va_end(ap);
}

/* ---- fixture -------------------------------------------------------------------- */

struct fixture {
	struct store *store;
};

static int
open_store(struct store **out, int busy_timeout_ms, char *err, size_t errlen)
{
	struct store_options options = { NULL, STORE_SYNC_FULL, busy_timeout_ms, 0, 0,
		test_conninfo };

	return store_open("postgresql", &options, out, err, errlen);
}

static int read_only(int on);

/* The test's database, by name: it is altered from another one. */
static char test_dbname[256];

/* Let connections to the test's database in, or keep them out. */
static int
connections_allowed(int allowed)
{
	char sql[512];

	snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS %s", test_dbname,
	    allowed ? "true" : "false");
	return pg_raw_exec_on("postgres", sql);
}

/* An empty database with an open store. */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char err[512];

	if (f == NULL || pg_reset_database() != 0 ||
	    pg_raw_text("SELECT current_database()", test_dbname, sizeof test_dbname) != 0)
		return -1;
	if (open_store(&f->store, 300, err, sizeof err) != STORE_OK) {
		fprintf(stderr, "store_open: %s\n", err);
		free(f);
		return -1;
	}
	memset(&logged, 0, sizeof logged);
	resets = 0;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->store);
	free(f);
	/* Whatever a test did to the database, the next one can connect and write. */
	connections_allowed(1);
	read_only(0);
	return 0;
}

/* Make new sessions of the test's database read-only, or not. */
static int
read_only(int on)
{
	char sql[512];

	snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" %s default_transaction_read_only%s",
	    test_dbname, on ? "SET" : "RESET", on ? " = on" : "");
	return pg_raw_exec_on("postgres", sql);
}

/* Cut the store's connections from the server side, as a restart of it would. */
static void
cut_connections(void)
{
	char sql[512];

	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	    " WHERE application_name = 'pushrelayd' AND datname = '%s'", test_dbname);
	assert_int_equal(pg_raw_exec_on("postgres", sql), 0);
	/* The server ends the backend at once; give it a moment to be gone. */
	usleep(50000);
}

static struct device
device_sample(const char *device_id, const char *client_id, const char *token)
{
	struct device d;

	memset(&d, 0, sizeof d);
	d.device_id = (char *)device_id;
	d.client_id = (char *)client_id;
	d.platform = DEVICE_PLATFORM_APNS;
	d.token = (char *)token;
	d.app_id = (char *)"com.example.chat";
	d.environment = DEVICE_ENVIRONMENT_PRODUCTION;
	return d;
}

/* ---- the schema ----------------------------------------------------------------- */

static void
test_open_creates_the_schema_at_version_5(void **state)
{
	char text[512];

	(void)state;
	assert_int_equal(pg_raw_text("SELECT version FROM pushrelay_schema", text, sizeof text),
	    0);
	assert_string_equal(text, "5");
	assert_int_equal(pg_raw_text("SELECT string_agg(tablename, ',' ORDER BY tablename)"
	    " FROM pg_tables WHERE schemaname = 'public'", text, sizeof text), 0);
	assert_string_equal(text, "devices,memberships,notified,outbox,push_devices,pushes,"
	    "pushrelay_schema,unread");
	/* Ids compare byte by byte, as SQLite's do, whatever the database's locale. */
	assert_int_equal(pg_raw_text("SELECT string_agg(column_name, ',' ORDER BY column_name)"
	    " FROM information_schema.columns WHERE table_name = 'memberships'"
	    " AND collation_name = 'C'", text, sizeof text), 0);
	assert_string_equal(text, "client_id,room_id");
}

static void
test_reopen_migrates_nothing_and_keeps_rows(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("d1", "c1", TOKEN_A), got;
	char err[512];

	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_OK);
	store_close(f->store);
	f->store = NULL;
	assert_int_equal(open_store(&f->store, 300, err, sizeof err), STORE_OK);
	assert_null(strstr(logged.all, "store schema migrated"));
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_string_equal(got.token, TOKEN_A);
	model_device_free(&got);
}

static void
test_open_newer_schema_is_enewer_and_untouched(void **state)
{
	struct fixture *f = *state;
	struct store *store = (struct store *)1;
	char err[512], expected[512], text[64];

	store_close(f->store);
	f->store = NULL;
	assert_int_equal(pg_raw_exec("UPDATE pushrelay_schema SET version = 99;"
	    " CREATE TABLE future (x integer)"), 0);
	assert_int_equal(open_store(&store, 300, err, sizeof err), STORE_ENEWER);
	assert_null(store);
	assert_non_null(strstr(err, "has schema version 99, this pushrelayd supports up to 5:"
	    " upgrade pushrelayd"));
	snprintf(expected, sizeof expected, "database (");
	assert_memory_equal(err, expected, strlen(expected));
	assert_int_equal(pg_raw_text("SELECT version FROM pushrelay_schema", text, sizeof text),
	    0);
	assert_string_equal(text, "99");
	assert_int_equal(pg_raw_text("SELECT count(*) FROM future", text, sizeof text), 0);
	assert_string_equal(text, "0");
	/* The fixture's teardown closes what is open: reopen at the version it has. */
	assert_int_equal(pg_raw_exec("UPDATE pushrelay_schema SET version = 5"), 0);
	assert_int_equal(open_store(&f->store, 300, err, sizeof err), STORE_OK);
}

/* ---- the connection string ------------------------------------------------------ */

static void
test_connection_string_is_checked_and_never_shows_a_password(void **state)
{
	struct store_options options = { NULL, STORE_SYNC_FULL, 0, 0, 0,
		"host=127.0.0.1 port=1 user=u password=hunter2secret dbname=x connect_timeout=2" };
	struct store *store = (struct store *)1;
	char err[512];

	(void)state;
	assert_int_equal(store_postgresql_conninfo_check("host=db port=5432 dbname=p", err,
	    sizeof err), 0);
	assert_int_equal(store_postgresql_conninfo_check("postgresql://u:hunter2secret@db/p",
	    err, sizeof err), 0);
	assert_int_equal(store_postgresql_conninfo_check("", err, sizeof err), -1);
	assert_string_equal(err, "empty connection string");
	/* libpq's own message quotes what it could not parse: not here. */
	assert_int_equal(store_postgresql_conninfo_check("host=db password 'hunter2secret",
	    err, sizeof err), -1);
	assert_null(strstr(err, "hunter2secret"));
	assert_int_equal(store_postgresql_conninfo_check("nosuchkey=hunter2secret", err,
	    sizeof err), -1);
	assert_null(strstr(err, "hunter2secret"));

	/* Nothing listens on port 1: the error names the server, not the password. */
	assert_int_equal(store_open("postgresql", &options, &store, err, sizeof err), STORE_EIO);
	assert_null(store);
	assert_null(strstr(err, "hunter2secret"));
	assert_non_null(strstr(err, "password=(hidden)"));
	assert_non_null(strstr(err, "cannot connect to PostgreSQL ("));

	options.conninfo = "";
	assert_int_equal(store_open("postgresql", &options, &store, err, sizeof err),
	    STORE_EINVAL);
	assert_string_equal(err, "store postgresql connection string is empty");
	assert_null(strstr(logged.all, "hunter2secret"));
}

/* ---- losing the connection ------------------------------------------------------ */

static void
test_a_lost_connection_fails_the_call_then_comes_back_logged_once(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("d1", "c1", TOKEN_A), got;

	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_OK);
	cut_connections();
	/* The call that finds it gone fails; the outage is logged once. */
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_EIO);
	assert_int_equal(logged.lost, 1);
	assert_int_equal(logged.failed, 0);
	/* The next call reconnects at once, and prepares its statements again. */
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_string_equal(got.token, TOKEN_A);
	model_device_free(&got);
	assert_int_equal(store_ping(f->store), STORE_OK);
	assert_int_equal(resets, 1);
	assert_int_equal(logged.lost, 1);
	assert_int_equal(logged.back, 1);
}

static void
test_reconnection_backs_off_while_the_server_refuses(void **state)
{
	struct fixture *f = *state;
	int64_t start, back_at;
	int calls = 0;

	assert_int_equal(connections_allowed(0), 0);
	cut_connections();
	/* 1.2 s of pings as fast as they come: resets at 0, 0.1, 0.3, 0.7 s, no more. */
	start = clock_monotonic_ms();
	while (clock_monotonic_ms() - start < 1200) {
		assert_int_equal(store_ping(f->store), STORE_EIO);
		calls++;
	}
	assert_true(calls > 100);
	assert_in_range(resets, 3, 5);
	assert_int_equal(logged.lost, 1);
	assert_int_equal(logged.failed, 0);

	/* Back once the server takes connections again, within the backoff's bound. */
	assert_int_equal(connections_allowed(1), 0);
	start = clock_monotonic_ms();
	while (store_ping(f->store) != STORE_OK) {
		assert_true(clock_monotonic_ms() - start < 5000 + 1000);
		usleep(5000);
	}
	back_at = clock_monotonic_ms() - start;
	assert_true(back_at <= 5000 + 1000);
	assert_int_equal(logged.back, 1);
	assert_int_equal(logged.lost, 1);
}

static void
test_a_batch_lost_with_its_connection_keeps_nothing_and_the_next_commits(void **state)
{
	struct fixture *f = *state;
	struct device d1 = device_sample("d1", "c1", TOKEN_A);
	struct device d2 = device_sample("d2", "c1", TOKEN_B), got;

	assert_int_equal(store_batch_begin(f->store), STORE_OK);
	assert_int_equal(store_batch_job_begin(f->store), STORE_OK);
	assert_int_equal(store_device_put(f->store, &d1, T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_batch_job_end(f->store, 1), STORE_OK);
	cut_connections();
	/* The next job finds the batch gone: it and the batch fail. */
	assert_int_not_equal(store_batch_job_begin(f->store) == STORE_OK &&
	    store_device_put(f->store, &d2, T0, NULL, NULL) == STORE_OK &&
	    store_batch_job_end(f->store, 1) == STORE_OK, 1);
	store_batch_rollback(f->store);
	assert_int_equal(logged.lost, 1);

	/* A new batch, on the connection made again, commits. */
	assert_int_equal(store_batch_begin(f->store), STORE_OK);
	assert_int_equal(store_batch_job_begin(f->store), STORE_OK);
	assert_int_equal(store_device_put(f->store, &d2, T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_batch_job_end(f->store, 1), STORE_OK);
	assert_int_equal(store_batch_commit(f->store), STORE_OK);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_ENOTFOUND);
	assert_int_equal(store_device_get(f->store, "d2", &got), STORE_OK);
	model_device_free(&got);
}

static void
test_a_commit_on_a_lost_connection_fails(void **state)
{
	struct fixture *f = *state;
	struct device d1 = device_sample("d1", "c1", TOKEN_A), got;

	assert_int_equal(store_batch_begin(f->store), STORE_OK);
	assert_int_equal(store_batch_job_begin(f->store), STORE_OK);
	assert_int_equal(store_device_put(f->store, &d1, T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_batch_job_end(f->store, 1), STORE_OK);
	cut_connections();
	assert_int_equal(store_batch_commit(f->store), STORE_EIO);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_ENOTFOUND);
}

/* ---- group commit's savepoints ---------------------------------------------------- */

static void
test_a_failing_job_is_undone_alone_and_its_batch_commits(void **state)
{
	struct fixture *f = *state;
	struct device d1 = device_sample("d1", "c1", TOKEN_A);
	struct device boom = device_sample("boom", "c2", TOKEN_A);
	struct device d3 = device_sample("d3", "c3", TOKEN_B), got;
	size_t count = 0;

	assert_int_equal(pg_raw_exec("CREATE FUNCTION fail_boom() RETURNS trigger"
	    " LANGUAGE plpgsql AS $$ BEGIN IF NEW.device_id = 'boom' THEN"
	    " RAISE EXCEPTION 'boom refused'; END IF; RETURN NEW; END $$;"
	    " CREATE TRIGGER fail_boom BEFORE INSERT ON devices FOR EACH ROW"
	    " EXECUTE FUNCTION fail_boom()"), 0);
	assert_int_equal(store_batch_begin(f->store), STORE_OK);
	assert_int_equal(store_batch_job_begin(f->store), STORE_OK);
	assert_int_equal(store_device_put(f->store, &d1, T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_batch_job_end(f->store, 1), STORE_OK);
	/* Takes d1's token (deleting d1), then fails: the job is undone, d1 stays. */
	assert_int_equal(store_batch_job_begin(f->store), STORE_OK);
	assert_int_equal(store_device_put(f->store, &boom, T0, NULL, NULL), STORE_EIO);
	assert_int_equal(store_batch_job_end(f->store, 0), STORE_OK);
	/* A call that fails inside a job leaves the job usable. */
	assert_int_equal(store_batch_job_begin(f->store), STORE_OK);
	assert_int_equal(store_device_put(f->store, &boom, T0, NULL, NULL), STORE_EIO);
	assert_int_equal(store_device_put(f->store, &d3, T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_batch_job_end(f->store, 1), STORE_OK);
	assert_int_equal(store_batch_commit(f->store), STORE_OK);

	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_string_equal(got.token, TOKEN_A);
	model_device_free(&got);
	assert_int_equal(store_device_get(f->store, "boom", &got), STORE_ENOTFOUND);
	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 2);
	assert_int_equal(logged.failed, 2);
}

/* ---- locks and text ----------------------------------------------------------------- */

static void
test_a_write_on_a_locked_row_fails_after_the_busy_timeout(void **state)
{
	struct fixture *f = *state;
	struct device d1 = device_sample("d1", "c1", TOKEN_A);
	PGconn *other;
	PGresult *res;
	int64_t start, took;

	assert_int_equal(store_device_put(f->store, &d1, T0, NULL, NULL), STORE_OK);
	other = PQconnectdb(test_conninfo);
	assert_int_equal(PQstatus(other), CONNECTION_OK);
	res = PQexec(other, "BEGIN; UPDATE devices SET last_success_at = 1 WHERE device_id = 'd1'");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);

	start = clock_monotonic_ms();
	assert_int_equal(store_device_mark_success(f->store, "d1", T0 + 1), STORE_EIO);
	took = clock_monotonic_ms() - start;
	assert_in_range(took, 250, 3000);	/* the fixture's busy timeout: 300 ms */
	assert_int_equal(logged.failed, 1);
	assert_int_equal(logged.lost, 0);

	PQclear(PQexec(other, "ROLLBACK"));
	PQfinish(other);
	assert_int_equal(store_device_mark_success(f->store, "d1", T0 + 2), STORE_OK);
}

static void
test_text_that_is_not_utf8_is_kept_with_replacement_characters(void **state)
{
	struct fixture *f = *state;
	struct device d1 = device_sample("d1", "c1", TOKEN_A), got;

	assert_int_equal(store_device_put(f->store, &d1, T0, NULL, NULL), STORE_OK);
	/* A reason cut inside a character, as a provider's answer may be. */
	assert_int_equal(store_device_mark_error(f->store, "d1", "gave up: caf\xc3", T0 + 1),
	    STORE_OK);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_string_equal(got.last_error, "gave up: caf\xef\xbf\xbd");
	model_device_free(&got);
}

static void
test_probe_write_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct outbox_entry *got;
	char err[128] = "";
	size_t n;

	assert_int_equal(store_probe_write(f->store, err, sizeof err), STORE_OK);
	assert_int_equal(store_outbox_load(f->store, &got, &n), STORE_OK);
	assert_int_equal(n, 0);
	store_outbox_free(got, n);
	/* A server that takes no writes fails the probe, with its reason. */
	assert_int_equal(read_only(1), 0);
	cut_connections();
	assert_int_equal(store_ping(f->store), STORE_EIO);	/* finds it gone */
	assert_int_equal(store_probe_write(f->store, err, sizeof err), STORE_EIO);
	assert_string_equal(err, "cannot execute INSERT in a read-only transaction");
	/* Writes work again on a connection that does not have the setting. */
	assert_int_equal(read_only(0), 0);
	cut_connections();
	assert_int_equal(store_ping(f->store), STORE_EIO);
	assert_int_equal(store_probe_write(f->store, err, sizeof err), STORE_OK);
}

#define PG_TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		PG_TEST(test_open_creates_the_schema_at_version_5),
		PG_TEST(test_reopen_migrates_nothing_and_keeps_rows),
		PG_TEST(test_open_newer_schema_is_enewer_and_untouched),
		PG_TEST(test_connection_string_is_checked_and_never_shows_a_password),
		PG_TEST(test_a_lost_connection_fails_the_call_then_comes_back_logged_once),
		PG_TEST(test_reconnection_backs_off_while_the_server_refuses),
		PG_TEST(test_a_batch_lost_with_its_connection_keeps_nothing_and_the_next_commits),
		PG_TEST(test_a_commit_on_a_lost_connection_fails),
		PG_TEST(test_a_failing_job_is_undone_alone_and_its_batch_commits),
		PG_TEST(test_a_write_on_a_locked_row_fails_after_the_busy_timeout),
		PG_TEST(test_text_that_is_not_utf8_is_kept_with_replacement_characters),
		PG_TEST(test_probe_write_leaves_nothing),
	};

	setenv("PUSHRELAY_TEST_STORE", "postgresql", 0);
	if (test_backend_init() != 0 || !test_is_pg()) {
		fprintf(stderr, "test_store_pg runs against a server: "
		    "tests/unit/store_postgresql.py starts one\n");
		return 1;
	}
	return cmocka_run_group_tests_name("store_pg", tests, NULL, NULL);
}
