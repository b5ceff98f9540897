/*
 * Tests for the device registry and its SQLite backend; with PUSHRELAY_TEST_STORE =
 * postgresql (tests/unit/store_postgresql.py), the tests of what every backend does,
 * on the PostgreSQL backend.
 */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <setjmp.h>
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

#include "clock.h"
#include "model.h"
#include "store.h"
#include "store_ledger.h"
#include "store_marks.h"
#include "store_outbox.h"
#include "store_registry.h"
#include "store_writer.h"

#include "pg_fixture.h"

#define T0 INT64_C(1700000000000)
#define TOKEN_A "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define TOKEN_B "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
#define TOKEN_C "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"

struct fixture {
	char dir[256];
	char path[PATH_MAX];	/* dir/state/registry.db: the parent starts missing */
	struct store *store;
};

/* Open the fixture's store with the given busy timeout. */
static int
fixture_open(struct fixture *f, int busy_timeout_ms, char *err, size_t errlen)
{
	struct store_options options = { f->path, STORE_SYNC_FULL, busy_timeout_ms, 0, 0,
		test_conninfo };

	return store_open(test_backend, &options, &f->store, err, errlen);
}

/* Make a temp dir and the path of a database inside it, not yet created. */
static int
setup_dir(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof f->dir, "%s/test_store.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/state/registry.db", f->dir);
	*state = f;
	if (test_is_pg() && pg_reset_database() != 0)
		return -1;
	return 0;
}

/* A temp dir with an open store. */
static int
setup_store(void **state)
{
	struct fixture *f;
	char err[512];

	if (setup_dir(state) != 0)
		return -1;
	f = *state;
	if (fixture_open(f, 1000, err, sizeof err) != STORE_OK) {
		fprintf(stderr, "store_open: %s\n", err);
		return -1;
	}
	return 0;
}

/* nftw callback: remove one file or (emptied) directory. */
static int
remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* Close the store and remove the temp dir with everything in it. */
static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->store);
	nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Run SQL on a separate connection, as another process would. */
static void
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;

	if (test_is_pg()) {
		assert_int_equal(pg_raw_exec(sql), 0);
		return;
	}
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Read the first column of a query's first row as text, on a separate connection. */
static void
raw_text(const char *path, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *stmt;
	sqlite3 *db;

	if (test_is_pg()) {
		assert_int_equal(pg_raw_text(sql, out, outlen), 0);
		return;
	}
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(stmt, 0));
	sqlite3_finalize(stmt);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* A device with the required fields set and the optional ones empty. */
static struct device
device_sample(char *device_id, char *client_id, enum device_platform platform, char *token)
{
	struct device d;

	memset(&d, 0, sizeof d);
	d.device_id = device_id;
	d.client_id = client_id;
	d.platform = platform;
	d.token = token;
	d.app_id = "com.example.chat";
	d.environment = DEVICE_ENVIRONMENT_PRODUCTION;
	return d;
}

/* Put a device and expect success with the given result. */
static void
put_device(struct store *store, char *device_id, char *client_id,
    enum device_platform platform, char *token, int64_t now, enum store_put_result expected)
{
	struct device d = device_sample(device_id, client_id, platform, token);
	enum store_put_result result = 0;

	assert_int_equal(store_device_put(store, &d, now, &result, NULL), STORE_OK);
	assert_int_equal(result, expected);
}

static void
test_store_strerror_names_every_code(void **state)
{
	(void)state;
	assert_string_equal(store_strerror(STORE_OK), "success");
	assert_string_equal(store_strerror(STORE_ENOTFOUND), "not found");
	assert_string_equal(store_strerror(STORE_EIO), "storage error");
	assert_string_equal(store_strerror(STORE_ENEWER),
	    "database written by a newer pushrelayd");
	assert_string_equal(store_strerror(STORE_EINVAL), "invalid store options");
	assert_string_equal(store_strerror(-99), "unknown store error");
}

static void
test_open_unknown_backend_is_einval(void **state)
{
	struct fixture *f = *state;
	struct store_options options = { f->path, STORE_SYNC_FULL, 0, 0, 0, NULL };
	struct store *store = (struct store *)1;
	char err[256];

	assert_int_equal(store_open("redis", &options, &store, err, sizeof err), STORE_EINVAL);
	assert_null(store);
	assert_string_equal(err,
	    "unknown store backend \"redis\" (known: sqlite, postgresql)");
	assert_int_equal(access(f->path, F_OK), -1);
}

static void
test_open_bad_options_are_einval(void **state)
{
	struct fixture *f = *state;
	struct store_options options = { "", STORE_SYNC_FULL, 0, 0, 0, NULL };
	struct store *store;
	char err[256];

	assert_int_equal(store_open("sqlite", &options, &store, err, sizeof err), STORE_EINVAL);
	assert_null(store);
	assert_string_equal(err, "store path is empty");

	options.path = f->path;
	options.busy_timeout_ms = -1;
	assert_int_equal(store_open("sqlite", &options, &store, err, sizeof err), STORE_EINVAL);
	assert_string_equal(err, "store busy timeout -1 is negative");
	assert_int_equal(access(f->path, F_OK), -1);
}

static void
test_open_creates_file_0600_in_new_dir_0700(void **state)
{
	struct fixture *f = *state;
	char err[512], wal[PATH_MAX + 8], dir[PATH_MAX + 8];
	struct stat sb;
	mode_t saved;

	/* Under a common umask SQLite alone would create the file 0644. */
	saved = umask(022);
	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_OK);
	umask(saved);
	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0, STORE_PUT_CREATED);

	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	snprintf(dir, sizeof dir, "%s/state", f->dir);
	assert_int_equal(stat(dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0700);
}

static void
test_open_sets_schema_version_and_wal(void **state)
{
	struct fixture *f = *state;
	char text[256];

	raw_text(f->path, "PRAGMA user_version", text, sizeof text);
	assert_string_equal(text, "5");
	raw_text(f->path, "PRAGMA journal_mode", text, sizeof text);
	assert_string_equal(text, "wal");
	raw_text(f->path, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema"
	    " WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name)",
	    text, sizeof text);
	assert_string_equal(text, "devices,devices_client_id,memberships,memberships_client_id,"
	    "notified,notified_message_key,outbox,push_devices,pushes,pushes_finished_at,unread");
}

static void
test_open_garbage_file_is_eio(void **state)
{
	struct fixture *f = *state;
	char err[512], expected[PATH_MAX + 64], garbage[4096];
	FILE *fp;

	memset(garbage, 'x', sizeof garbage);
	snprintf(f->path, sizeof f->path, "%s/garbage.db", f->dir);
	assert_non_null(fp = fopen(f->path, "w"));
	assert_int_equal(fwrite(garbage, 1, sizeof garbage, fp), sizeof garbage);
	assert_int_equal(fclose(fp), 0);

	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_EIO);
	assert_null(f->store);
	snprintf(expected, sizeof expected, "database %s: file is not a database", f->path);
	assert_string_equal(err, expected);
}

static void
test_open_newer_schema_is_enewer_and_untouched(void **state)
{
	struct fixture *f = *state;
	char err[512], expected[PATH_MAX + 128], text[64];

	snprintf(f->path, sizeof f->path, "%s/newer.db", f->dir);
	raw_exec(f->path, "CREATE TABLE future (x); PRAGMA user_version = 99;");

	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_ENEWER);
	assert_null(f->store);
	snprintf(expected, sizeof expected, "database %s has schema version 99, this pushrelayd"
	    " supports up to 5: upgrade pushrelayd", f->path);
	assert_string_equal(err, expected);

	raw_text(f->path, "PRAGMA user_version", text, sizeof text);
	assert_string_equal(text, "99");
	raw_text(f->path, "PRAGMA journal_mode", text, sizeof text);
	assert_string_equal(text, "delete");
	raw_text(f->path, "SELECT count(*) FROM sqlite_schema WHERE name = 'devices'", text,
	    sizeof text);
	assert_string_equal(text, "0");
}

static void
test_reopen_keeps_every_row(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("d1", "c1", DEVICE_PLATFORM_FCM, "fcm-token-1");
	struct device got;
	struct member m;
	size_t count;
	char err[512];

	d.environment = DEVICE_ENVIRONMENT_SANDBOX;
	d.locale = "fr-FR";
	d.metadata = "{\"model\":\"Pixel\"}";
	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_OK);
	put_device(f->store, "d2", "c2", DEVICE_PLATFORM_APNS, TOKEN_A, T0 + 1,
	    STORE_PUT_CREATED);
	assert_int_equal(store_device_mark_success(f->store, "d1", T0 + 5), STORE_OK);
	assert_int_equal(store_device_mark_error(f->store, "d2", "BadDeviceToken", T0 + 6),
	    STORE_OK);
	assert_int_equal(store_member_put(f->store, "r1", "c1", T0 + 7, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_prefs_put(f->store, "r1", "c1", T0 + 1000, 1, NULL),
	    STORE_OK);

	store_close(f->store);
	f->store = NULL;
	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_OK);

	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 2);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_string_equal(got.device_id, "d1");
	assert_string_equal(got.client_id, "c1");
	assert_int_equal(got.platform, DEVICE_PLATFORM_FCM);
	assert_string_equal(got.token, "fcm-token-1");
	assert_string_equal(got.app_id, "com.example.chat");
	assert_int_equal(got.environment, DEVICE_ENVIRONMENT_SANDBOX);
	assert_string_equal(got.locale, "fr-FR");
	assert_string_equal(got.metadata, "{\"model\":\"Pixel\"}");
	assert_int_equal(got.created_at, T0);
	assert_int_equal(got.updated_at, T0);
	assert_int_equal(got.last_success_at, T0 + 5);
	assert_null(got.last_error);
	assert_int_equal(got.last_error_at, 0);
	model_device_free(&got);
	assert_int_equal(store_device_get(f->store, "d2", &got), STORE_OK);
	assert_string_equal(got.token, TOKEN_A);
	assert_string_equal(got.last_error, "BadDeviceToken");
	assert_int_equal(got.last_error_at, T0 + 6);
	model_device_free(&got);
	assert_int_equal(store_member_get(f->store, "r1", "c1", &m), STORE_OK);
	assert_int_equal(m.joined_at, T0 + 7);
	assert_int_equal(m.muted_until, T0 + 1000);
	assert_int_equal(m.mentions_only, 1);
	model_member_free(&m);
}

static void
test_ping_answers(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(store_ping(f->store), STORE_OK);
}

static void
test_device_put_creates_then_updates_keeping_created_at(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A);
	enum store_put_result result = 0;
	struct device stored;

	d.locale = "en-GB";
	d.metadata = "{\"os\":\"17.1\"}";
	assert_int_equal(store_device_put(f->store, &d, T0, &result, &stored), STORE_OK);
	assert_int_equal(result, STORE_PUT_CREATED);
	assert_string_equal(stored.device_id, "d1");
	assert_string_equal(stored.client_id, "c1");
	assert_int_equal(stored.platform, DEVICE_PLATFORM_APNS);
	assert_string_equal(stored.token, TOKEN_A);
	assert_string_equal(stored.app_id, "com.example.chat");
	assert_int_equal(stored.environment, DEVICE_ENVIRONMENT_PRODUCTION);
	assert_string_equal(stored.locale, "en-GB");
	assert_string_equal(stored.metadata, "{\"os\":\"17.1\"}");
	assert_int_equal(stored.created_at, T0);
	assert_int_equal(stored.updated_at, T0);
	assert_int_equal(stored.last_success_at, 0);
	assert_null(stored.last_error);
	assert_int_equal(stored.last_error_at, 0);
	model_device_free(&stored);

	d.client_id = "c2";
	d.app_id = "com.example.other";
	d.environment = DEVICE_ENVIRONMENT_SANDBOX;
	d.locale = NULL;
	d.metadata = NULL;
	/* Fields the caller sets for times are ignored: the store owns them. */
	d.created_at = 42;
	d.updated_at = 43;
	result = 0;
	assert_int_equal(store_device_put(f->store, &d, T0 + 60000, &result, &stored), STORE_OK);
	assert_int_equal(result, STORE_PUT_UPDATED);
	assert_string_equal(stored.client_id, "c2");
	assert_string_equal(stored.app_id, "com.example.other");
	assert_int_equal(stored.environment, DEVICE_ENVIRONMENT_SANDBOX);
	assert_null(stored.locale);
	assert_null(stored.metadata);
	assert_int_equal(stored.created_at, T0);
	assert_int_equal(stored.updated_at, T0 + 60000);
	model_device_free(&stored);

	/* What was returned is what a later read sees. */
	assert_int_equal(store_device_get(f->store, "d1", &stored), STORE_OK);
	assert_string_equal(stored.client_id, "c2");
	assert_int_equal(stored.created_at, T0);
	assert_int_equal(stored.updated_at, T0 + 60000);
	model_device_free(&stored);
}

static void
test_device_put_without_result_or_stored(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("d1", "c1", DEVICE_PLATFORM_FCM, "fcm-1");
	size_t count = 0;

	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 1);
}

static void
test_device_put_missing_field_is_einval(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("d1", "c1", DEVICE_PLATFORM_FCM, NULL);
	size_t count = 1;

	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_EINVAL);
	d = device_sample("d1", "c1", (enum device_platform)7, "tok");
	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_EINVAL);
	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 0);
}

static void
test_device_put_moves_token_from_other_device(void **state)
{
	struct fixture *f = *state;
	struct device got;
	size_t count = 0;

	put_device(f->store, "old", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0, STORE_PUT_CREATED);
	put_device(f->store, "keep", "c1", DEVICE_PLATFORM_APNS, TOKEN_B, T0, STORE_PUT_CREATED);
	put_device(f->store, "new", "c9", DEVICE_PLATFORM_APNS, TOKEN_A, T0 + 1,
	    STORE_PUT_CREATED);

	assert_int_equal(store_device_get(f->store, "old", &got), STORE_ENOTFOUND);
	assert_int_equal(store_device_get(f->store, "new", &got), STORE_OK);
	assert_string_equal(got.token, TOKEN_A);
	assert_string_equal(got.client_id, "c9");
	model_device_free(&got);
	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 2);

	/* An existing device taking another's token is an update, and the other goes. */
	put_device(f->store, "new", "c9", DEVICE_PLATFORM_APNS, TOKEN_B, T0 + 2,
	    STORE_PUT_UPDATED);
	assert_int_equal(store_device_get(f->store, "keep", &got), STORE_ENOTFOUND);
	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 1);
}

static void
test_device_put_same_token_on_other_platform_is_another_device(void **state)
{
	struct fixture *f = *state;
	size_t count = 0;

	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0, STORE_PUT_CREATED);
	put_device(f->store, "d2", "c1", DEVICE_PLATFORM_FCM, TOKEN_A, T0, STORE_PUT_CREATED);
	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 2);
}

static void
test_device_put_new_token_resets_delivery_state(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A);
	struct device stored;

	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_device_mark_success(f->store, "d1", T0 + 10), STORE_OK);
	assert_int_equal(store_device_mark_error(f->store, "d1", "Unregistered", T0 + 20),
	    STORE_OK);

	d.token = TOKEN_B;
	assert_int_equal(store_device_put(f->store, &d, T0 + 30, NULL, &stored), STORE_OK);
	assert_string_equal(stored.token, TOKEN_B);
	assert_int_equal(stored.last_success_at, 0);
	assert_null(stored.last_error);
	assert_int_equal(stored.last_error_at, 0);
	model_device_free(&stored);

	/* A platform change is a new token too, even with the same text. */
	assert_int_equal(store_device_mark_success(f->store, "d1", T0 + 40), STORE_OK);
	d.platform = DEVICE_PLATFORM_FCM;
	assert_int_equal(store_device_put(f->store, &d, T0 + 50, NULL, &stored), STORE_OK);
	assert_int_equal(stored.platform, DEVICE_PLATFORM_FCM);
	assert_int_equal(stored.last_success_at, 0);
	model_device_free(&stored);
}

static void
test_device_put_same_token_keeps_delivery_state(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A);
	struct device stored;

	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_device_mark_success(f->store, "d1", T0 + 10), STORE_OK);
	assert_int_equal(store_device_mark_error(f->store, "d1", "TooManyRequests", T0 + 20),
	    STORE_OK);

	d.locale = "de-DE";
	assert_int_equal(store_device_put(f->store, &d, T0 + 30, NULL, &stored), STORE_OK);
	assert_string_equal(stored.locale, "de-DE");
	assert_int_equal(stored.last_success_at, T0 + 10);
	assert_string_equal(stored.last_error, "TooManyRequests");
	assert_int_equal(stored.last_error_at, T0 + 20);
	assert_int_equal(stored.updated_at, T0 + 30);
	model_device_free(&stored);
}

static void
test_device_put_failure_leaves_nothing_half_written(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("boom", "c2", DEVICE_PLATFORM_APNS, TOKEN_A);
	struct device got;
	enum store_put_result result = 0;
	size_t count = 0;

	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0, STORE_PUT_CREATED);
	/* Make the upsert fail after the token's old holder was deleted. */
	raw_exec(f->path, test_is_pg() ?
	    "CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
	    " IF NEW.device_id = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF;"
	    " RETURN NEW; END $$; CREATE TRIGGER fail_boom BEFORE INSERT ON devices"
	    " FOR EACH ROW EXECUTE FUNCTION fail_boom()" :
	    "CREATE TRIGGER fail_boom BEFORE INSERT ON devices"
	    " WHEN NEW.device_id = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END;");

	assert_int_equal(store_device_put(f->store, &d, T0 + 1, &result, &got), STORE_EIO);
	assert_int_equal(result, 0);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_string_equal(got.token, TOKEN_A);
	model_device_free(&got);
	assert_int_equal(store_device_get(f->store, "boom", &got), STORE_ENOTFOUND);
	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 1);

	/* No transaction was left open: the next write goes through. */
	put_device(f->store, "d2", "c1", DEVICE_PLATFORM_APNS, TOKEN_B, T0 + 2,
	    STORE_PUT_CREATED);
}

static void
test_device_put_on_locked_database_is_eio(void **state)
{
	struct fixture *f = *state;
	struct device d = device_sample("d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A);
	char err[512];
	sqlite3 *db;

	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_OK);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_EIO);
	assert_int_equal(store_member_put(f->store, "r1", "c1", T0, NULL, NULL), STORE_EIO);

	assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(store_device_put(f->store, &d, T0, NULL, NULL), STORE_OK);
}

static void
test_device_get_missing_is_enotfound(void **state)
{
	struct fixture *f = *state;
	struct device got;

	memset(&got, 0xa5, sizeof got);
	assert_int_equal(store_device_get(f->store, "nope", &got), STORE_ENOTFOUND);
	assert_null(got.device_id);
	assert_null(got.token);
}

static void
test_device_delete_removes_and_missing_is_enotfound(void **state)
{
	struct fixture *f = *state;
	struct device got;

	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0, STORE_PUT_CREATED);
	assert_int_equal(store_device_delete(f->store, "d1"), STORE_OK);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_ENOTFOUND);
	assert_int_equal(store_device_delete(f->store, "d1"), STORE_ENOTFOUND);
}

static void
test_client_devices_list_is_ordered_by_device_id(void **state)
{
	struct fixture *f = *state;
	struct device_list list;

	put_device(f->store, "m", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0, STORE_PUT_CREATED);
	put_device(f->store, "B", "c1", DEVICE_PLATFORM_FCM, "fcm-b", T0, STORE_PUT_CREATED);
	put_device(f->store, "a", "c1", DEVICE_PLATFORM_APNS, TOKEN_B, T0, STORE_PUT_CREATED);
	put_device(f->store, "0", "c2", DEVICE_PLATFORM_APNS, TOKEN_C, T0, STORE_PUT_CREATED);

	assert_int_equal(store_client_devices_list(f->store, "c1", &list), STORE_OK);
	assert_int_equal(list.count, 3);
	/* Byte order: upper case sorts before lower case. */
	assert_string_equal(list.items[0].device_id, "B");
	assert_int_equal(list.items[0].platform, DEVICE_PLATFORM_FCM);
	assert_string_equal(list.items[0].token, "fcm-b");
	assert_string_equal(list.items[1].device_id, "a");
	assert_string_equal(list.items[1].token, TOKEN_B);
	assert_string_equal(list.items[2].device_id, "m");
	assert_string_equal(list.items[2].client_id, "c1");
	model_device_list_free(&list);

	assert_int_equal(store_client_devices_list(f->store, "nobody", &list), STORE_OK);
	assert_int_equal(list.count, 0);
	assert_null(list.items);
}

static void
test_client_devices_delete_counts_only_that_client(void **state)
{
	struct fixture *f = *state;
	size_t deleted = 99, count = 0;

	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0, STORE_PUT_CREATED);
	put_device(f->store, "d2", "c1", DEVICE_PLATFORM_APNS, TOKEN_B, T0, STORE_PUT_CREATED);
	put_device(f->store, "d3", "c1", DEVICE_PLATFORM_FCM, "f3", T0, STORE_PUT_CREATED);
	put_device(f->store, "d4", "c2", DEVICE_PLATFORM_APNS, TOKEN_C, T0, STORE_PUT_CREATED);

	assert_int_equal(store_client_devices_delete(f->store, "c1", &deleted), STORE_OK);
	assert_int_equal(deleted, 3);
	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 1);
	assert_int_equal(store_client_devices_delete(f->store, "c1", &deleted), STORE_OK);
	assert_int_equal(deleted, 0);
}

static void
test_device_count_counts_every_client(void **state)
{
	struct fixture *f = *state;
	size_t count = 99;

	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 0);
	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0, STORE_PUT_CREATED);
	put_device(f->store, "d2", "c2", DEVICE_PLATFORM_FCM, "f2", T0, STORE_PUT_CREATED);
	put_device(f->store, "d2", "c2", DEVICE_PLATFORM_FCM, "f2", T0, STORE_PUT_UPDATED);
	assert_int_equal(store_device_count(f->store, &count), STORE_OK);
	assert_int_equal(count, 2);
}

static void
test_device_mark_success_sets_only_last_success_at(void **state)
{
	struct fixture *f = *state;
	struct device got;

	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0, STORE_PUT_CREATED);
	assert_int_equal(store_device_mark_error(f->store, "d1", "InternalServerError", T0 + 1),
	    STORE_OK);
	assert_int_equal(store_device_mark_success(f->store, "d1", T0 + 2), STORE_OK);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_int_equal(got.last_success_at, T0 + 2);
	assert_string_equal(got.last_error, "InternalServerError");
	assert_int_equal(got.last_error_at, T0 + 1);
	assert_int_equal(got.updated_at, T0);
	assert_int_equal(got.created_at, T0);
	model_device_free(&got);
}

static void
test_device_mark_error_sets_reason_and_time(void **state)
{
	struct fixture *f = *state;
	struct device got;

	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_FCM, "f1", T0, STORE_PUT_CREATED);
	assert_int_equal(store_device_mark_success(f->store, "d1", T0 + 1), STORE_OK);
	assert_int_equal(store_device_mark_error(f->store, "d1", "QUOTA_EXCEEDED", T0 + 2),
	    STORE_OK);
	assert_int_equal(store_device_mark_error(f->store, "d1", "UNAVAILABLE", T0 + 3),
	    STORE_OK);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_string_equal(got.last_error, "UNAVAILABLE");
	assert_int_equal(got.last_error_at, T0 + 3);
	assert_int_equal(got.last_success_at, T0 + 1);
	assert_int_equal(got.updated_at, T0);
	model_device_free(&got);
}

static void
test_device_mark_on_missing_device_is_enotfound(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(store_device_mark_success(f->store, "nope", T0), STORE_ENOTFOUND);
	assert_int_equal(store_device_mark_error(f->store, "nope", "x", T0), STORE_ENOTFOUND);
}

static void
test_device_remove_token_respects_unless_updated_after(void **state)
{
	struct fixture *f = *state;
	struct device got;
	int removed = -1;

	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0 + 100,
	    STORE_PUT_CREATED);

	/* Re-registered after the provider's verdict: kept. */
	assert_int_equal(store_device_remove_token(f->store, DEVICE_PLATFORM_APNS, TOKEN_A,
	    T0 + 99, &removed), STORE_OK);
	assert_int_equal(removed, 0);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	model_device_free(&got);

	/* Same token on the other platform: a different device, nothing removed. */
	removed = -1;
	assert_int_equal(store_device_remove_token(f->store, DEVICE_PLATFORM_FCM, TOKEN_A,
	    INT64_MAX, &removed), STORE_OK);
	assert_int_equal(removed, 0);

	/* Registered at or before the verdict: removed. */
	removed = -1;
	assert_int_equal(store_device_remove_token(f->store, DEVICE_PLATFORM_APNS, TOKEN_A,
	    T0 + 100, &removed), STORE_OK);
	assert_int_equal(removed, 1);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_ENOTFOUND);

	/* An unknown token is not an error. */
	removed = -1;
	assert_int_equal(store_device_remove_token(f->store, DEVICE_PLATFORM_APNS, TOKEN_A,
	    INT64_MAX, &removed), STORE_OK);
	assert_int_equal(removed, 0);
}

/* An APNs device's environment, corrected unless it registered again since. */
static void
test_device_set_environment_respects_unless_updated_after(void **state)
{
	struct fixture *f = *state;
	struct device got;
	uint64_t generation;

	put_device(f->store, "d1", "c1", DEVICE_PLATFORM_APNS, TOKEN_A, T0 + 100,
	    STORE_PUT_CREATED);
	put_device(f->store, "f1", "c1", DEVICE_PLATFORM_FCM, TOKEN_B, T0 + 100,
	    STORE_PUT_CREATED);
	/* Registered again after the delivery was made for it: left as it is. */
	assert_int_equal(store_device_set_environment(f->store, "d1",
	    DEVICE_ENVIRONMENT_SANDBOX, T0 + 99), STORE_ENOTFOUND);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_int_equal(got.environment, DEVICE_ENVIRONMENT_PRODUCTION);
	model_device_free(&got);
	/* Corrected, and the generation moves: its deliveries go elsewhere now. */
	generation = store_generation(f->store);
	assert_int_equal(store_device_set_environment(f->store, "d1",
	    DEVICE_ENVIRONMENT_SANDBOX, T0 + 100), STORE_OK);
	assert_true(store_generation(f->store) > generation);
	assert_int_equal(store_device_get(f->store, "d1", &got), STORE_OK);
	assert_int_equal(got.environment, DEVICE_ENVIRONMENT_SANDBOX);
	assert_int_equal(got.updated_at, T0 + 100);
	assert_string_equal(got.token, TOKEN_A);
	model_device_free(&got);
	/* Only APNs devices have environments to correct; unknown ids are not found. */
	assert_int_equal(store_device_set_environment(f->store, "f1",
	    DEVICE_ENVIRONMENT_SANDBOX, INT64_MAX), STORE_ENOTFOUND);
	assert_int_equal(store_device_set_environment(f->store, "nope",
	    DEVICE_ENVIRONMENT_SANDBOX, INT64_MAX), STORE_ENOTFOUND);
	assert_int_equal(store_device_set_environment(f->store, NULL,
	    DEVICE_ENVIRONMENT_SANDBOX, INT64_MAX), STORE_EINVAL);
}

static void
test_member_put_creates_then_keeps_existing(void **state)
{
	struct fixture *f = *state;
	enum store_put_result result = 0;
	struct member stored;

	assert_int_equal(store_member_put(f->store, "r1", "c1", T0, &result, &stored), STORE_OK);
	assert_int_equal(result, STORE_PUT_CREATED);
	assert_string_equal(stored.room_id, "r1");
	assert_string_equal(stored.client_id, "c1");
	assert_int_equal(stored.joined_at, T0);
	assert_int_equal(stored.muted_until, 0);
	assert_int_equal(stored.mentions_only, 0);
	model_member_free(&stored);

	assert_int_equal(store_member_prefs_put(f->store, "r1", "c1", T0 + 500, 1, NULL),
	    STORE_OK);
	result = 0;
	assert_int_equal(store_member_put(f->store, "r1", "c1", T0 + 1000, &result, &stored),
	    STORE_OK);
	assert_int_equal(result, STORE_PUT_UPDATED);
	assert_int_equal(stored.joined_at, T0);
	assert_int_equal(stored.muted_until, T0 + 500);
	assert_int_equal(stored.mentions_only, 1);
	model_member_free(&stored);
}

/* Write marks first..first+n-1 in batches of 1000, as the router's write-behind does. */
static void
write_marks(struct store *store, int first, int n)
{
	struct notified_mark marks[1000];
	char rooms[1000][32], messages[1000][48];

	for (int done = first; done < first + n; done += 1000) {
		for (int i = 0; i < 1000; i++) {
			snprintf(rooms[i], sizeof rooms[i], "room-%d", (done + i) % 997);
			snprintf(messages[i], sizeof messages[i], "message-%08d", done + i);
			marks[i] = (struct notified_mark){ rooms[i], messages[i], "device-1",
			    T0 + done + i };
		}
		assert_int_equal(store_notified_add(store, marks, 1000), STORE_OK);
	}
}

/* The size of a file, or 0 if there is none. */
static off_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : 0;
}

/* checkpoint_size bounds the write-ahead log: it is copied back once it reaches it. */
static void
test_checkpoint_size_bounds_the_write_ahead_log(void **state)
{
	struct fixture *f = *state;
	struct store_options options = { f->path, STORE_SYNC_FULL, 1000, 0, 0, NULL };
	char wal[PATH_MAX + 8], err[512];

	snprintf(wal, sizeof wal, "%s-wal", f->path);
	store_close(f->store);
	options.checkpoint_size = 1024 * 1024;
	assert_int_equal(store_open("sqlite", &options, &f->store, err, sizeof err), 0);
	write_marks(f->store, 0, 40000);
	/*
	 * SQLite checkpoints at the first commit past the size, and the log starts over:
	 * it stays within the size and one batch (~1.5 MiB here). Without checkpoints
	 * these batches make a log of about 40 MiB.
	 */
	assert_true(file_size(wal) > 0);
	assert_true(file_size(wal) < 4 * 1024 * 1024);

	store_close(f->store);
	options.checkpoint_size = 64 * 1024 * 1024;
	assert_int_equal(store_open("sqlite", &options, &f->store, err, sizeof err), 0);
	write_marks(f->store, 40000, 40000);
	assert_true(file_size(wal) > 16 * 1024 * 1024);
}

/* The router keeps rooms' routes while the generation holds: only real changes bump it. */
static void
test_generation_moves_only_when_memberships_change(void **state)
{
	struct fixture *f = *state;
	uint64_t g;

	g = store_generation(f->store);
	assert_int_equal(store_member_put(f->store, "r1", "c1", T0, NULL, NULL), STORE_OK);
	assert_true(store_generation(f->store) > g);
	g = store_generation(f->store);
	assert_int_equal(store_member_put(f->store, "r1", "c1", T0 + 1, NULL, NULL), STORE_OK);
	assert_int_equal(store_generation(f->store), g);
	assert_int_equal(store_member_delete(f->store, "r1", "c2"), STORE_ENOTFOUND);
	assert_int_equal(store_generation(f->store), g);
	assert_int_equal(store_member_prefs_put(f->store, "r1", "c1", T0 + 500, 1, NULL),
	    STORE_OK);
	assert_true(store_generation(f->store) > g);
	g = store_generation(f->store);
	assert_int_equal(store_member_delete(f->store, "r1", "c1"), STORE_OK);
	assert_true(store_generation(f->store) > g);
}

/* A registration before the client's first join is on no route: the generation holds. */
static void
test_generation_holds_for_a_new_device_of_a_client_in_no_room(void **state)
{
	struct fixture *f = *state;
	uint64_t g = store_generation(f->store);

	put_device(f->store, "d1", "loner", DEVICE_PLATFORM_APNS, TOKEN_A, T0,
	    STORE_PUT_CREATED);
	assert_int_equal(store_generation(f->store), g);
	/* An update may change a route: the device may be a member's. */
	put_device(f->store, "d1", "loner", DEVICE_PLATFORM_APNS, TOKEN_A, T0 + 1,
	    STORE_PUT_UPDATED);
	assert_true(store_generation(f->store) > g);
	/* Taking another device's token removes that device. */
	g = store_generation(f->store);
	put_device(f->store, "d2", "other", DEVICE_PLATFORM_APNS, TOKEN_A, T0 + 2,
	    STORE_PUT_CREATED);
	assert_true(store_generation(f->store) > g);
	/* A member's new device is on its rooms' routes. */
	assert_int_equal(store_member_put(f->store, "r1", "member", T0, NULL, NULL), STORE_OK);
	g = store_generation(f->store);
	put_device(f->store, "d3", "member", DEVICE_PLATFORM_FCM, TOKEN_B, T0 + 3,
	    STORE_PUT_CREATED);
	assert_true(store_generation(f->store) > g);
}

static void
test_member_get_missing_is_enotfound(void **state)
{
	struct fixture *f = *state;
	struct member got;

	assert_int_equal(store_member_put(f->store, "r1", "c1", T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_get(f->store, "r1", "c2", &got), STORE_ENOTFOUND);
	assert_null(got.room_id);
	assert_int_equal(store_member_get(f->store, "r2", "c1", &got), STORE_ENOTFOUND);
	assert_int_equal(store_member_get(f->store, "r1", "c1", &got), STORE_OK);
	assert_string_equal(got.room_id, "r1");
	assert_string_equal(got.client_id, "c1");
	assert_int_equal(got.joined_at, T0);
	model_member_free(&got);
}

static void
test_member_delete_removes_and_missing_is_enotfound(void **state)
{
	struct fixture *f = *state;
	struct member got;

	assert_int_equal(store_member_put(f->store, "r1", "c1", T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_put(f->store, "r2", "c1", T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_delete(f->store, "r1", "c1"), STORE_OK);
	assert_int_equal(store_member_get(f->store, "r1", "c1", &got), STORE_ENOTFOUND);
	assert_int_equal(store_member_delete(f->store, "r1", "c1"), STORE_ENOTFOUND);
	assert_int_equal(store_member_get(f->store, "r2", "c1", &got), STORE_OK);
	model_member_free(&got);
}

/* Expect one page to hold exactly the given client ids. */
static void
expect_page(struct store *store, const char *after, size_t limit, size_t count,
    const char *const *ids)
{
	struct member_list list;

	assert_int_equal(store_room_members_list(store, "room", after, limit, &list), STORE_OK);
	assert_int_equal(list.count, count);
	for (size_t i = 0; i < count; i++) {
		assert_string_equal(list.items[i].room_id, "room");
		assert_string_equal(list.items[i].client_id, ids[i]);
	}
	model_member_list_free(&list);
}

static void
test_room_members_list_pages_by_client_id(void **state)
{
	struct fixture *f = *state;
	static const char *const inserted[] = { "c4", "c2", "c5", "c1", "c3" };
	static const char *const page1[] = { "c1", "c2" };
	static const char *const page2[] = { "c3", "c4" };
	static const char *const page3[] = { "c5" };
	static const char *const all[] = { "c1", "c2", "c3", "c4", "c5" };

	for (size_t i = 0; i < 5; i++)
		assert_int_equal(store_member_put(f->store, "room", inserted[i], T0, NULL, NULL),
		    STORE_OK);
	assert_int_equal(store_member_put(f->store, "other", "c0", T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_put(f->store, "roomz", "c9", T0, NULL, NULL), STORE_OK);

	expect_page(f->store, NULL, 2, 2, page1);
	expect_page(f->store, "c2", 2, 2, page2);
	expect_page(f->store, "c4", 2, 1, page3);
	expect_page(f->store, "c5", 2, 0, NULL);
	/* The cursor need not be a member. */
	expect_page(f->store, "c2x", 2, 2, page2);
	expect_page(f->store, NULL, SIZE_MAX, 5, all);
	expect_page(f->store, NULL, 0, 0, NULL);
}

static void
test_member_prefs_put_sets_fields(void **state)
{
	struct fixture *f = *state;
	struct member stored;

	assert_int_equal(store_member_put(f->store, "r1", "c1", T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_prefs_put(f->store, "r1", "c1", T0 + 3600000, 7, &stored),
	    STORE_OK);
	assert_string_equal(stored.room_id, "r1");
	assert_string_equal(stored.client_id, "c1");
	assert_int_equal(stored.joined_at, T0);
	assert_int_equal(stored.muted_until, T0 + 3600000);
	assert_int_equal(stored.mentions_only, 1);
	model_member_free(&stored);

	assert_int_equal(store_member_prefs_put(f->store, "r1", "c1", 0, 0, &stored), STORE_OK);
	assert_int_equal(stored.muted_until, 0);
	assert_int_equal(stored.mentions_only, 0);
	model_member_free(&stored);
}

static void
test_member_prefs_put_on_non_member_is_enotfound(void **state)
{
	struct fixture *f = *state;
	struct member got;

	assert_int_equal(store_member_put(f->store, "r1", "c1", T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_prefs_put(f->store, "r1", "c2", T0, 1, &got),
	    STORE_ENOTFOUND);
	assert_int_equal(store_member_get(f->store, "r1", "c2", &got), STORE_ENOTFOUND);
}

#define STORE_TEST(name) cmocka_unit_test_setup_teardown(name, setup_store, teardown)
static void
test_targets_of_rooms_clients_and_devices(void **state)
{
	struct fixture *f = *state;
	struct target_list list;

	put_device(f->store, "d-alice-2", "alice", DEVICE_PLATFORM_APNS, TOKEN_A, 1000,
	    STORE_PUT_CREATED);
	put_device(f->store, "d-alice-1", "alice", DEVICE_PLATFORM_FCM, "fcm-alice", 1000,
	    STORE_PUT_CREATED);
	put_device(f->store, "d-bob", "bob", DEVICE_PLATFORM_APNS, TOKEN_B, 1000,
	    STORE_PUT_CREATED);
	put_device(f->store, "d-carol", "carol", DEVICE_PLATFORM_APNS, TOKEN_C, 1000,
	    STORE_PUT_CREATED);
	assert_int_equal(store_member_put(f->store, "room", "bob", 1, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_put(f->store, "room", "alice", 1, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_put(f->store, "other", "carol", 1, NULL, NULL), STORE_OK);
	memset(&list, 0, sizeof list);
	assert_int_equal(store_targets_add(f->store, STORE_TARGETS_ROOM, "room", &list),
	    STORE_OK);
	assert_int_equal(list.count, 3);
	assert_string_equal(list.items[0]->device_id, "d-alice-1");
	assert_string_equal(list.items[0]->token, "fcm-alice");
	assert_int_equal(list.items[0]->platform, DEVICE_PLATFORM_FCM);
	assert_string_equal(list.items[1]->device_id, "d-alice-2");
	assert_string_equal(list.items[2]->device_id, "d-bob");
	assert_string_equal(list.items[2]->client_id, "bob");
	assert_string_equal(list.items[2]->token, TOKEN_B);
	assert_string_equal(list.items[2]->app_id, "com.example.chat");
	assert_int_equal(list.items[2]->updated_at, 1000);
	/* Appending: a client's and a device's targets follow. */
	assert_int_equal(store_targets_add(f->store, STORE_TARGETS_CLIENT, "carol", &list),
	    STORE_OK);
	assert_int_equal(store_targets_add(f->store, STORE_TARGETS_DEVICE, "d-bob", &list),
	    STORE_OK);
	assert_int_equal(store_targets_add(f->store, STORE_TARGETS_DEVICE, "nobody", &list),
	    STORE_OK);
	assert_int_equal(list.count, 5);
	assert_string_equal(list.items[3]->device_id, "d-carol");
	assert_string_equal(list.items[4]->device_id, "d-bob");
	model_target_list_free(&list);
	assert_int_equal(store_targets_add(f->store, STORE_TARGETS_ROOM, "empty", &list),
	    STORE_OK);
	assert_int_equal(list.count, 0);
}

static void
test_devices_mark_success_updates_every_listed_device(void **state)
{
	struct fixture *f = *state;
	const char *ids[] = { "d1", "missing", "d2" };
	struct device d;

	put_device(f->store, "d1", "alice", DEVICE_PLATFORM_APNS, TOKEN_A, 1000,
	    STORE_PUT_CREATED);
	put_device(f->store, "d2", "alice", DEVICE_PLATFORM_APNS, TOKEN_B, 1000,
	    STORE_PUT_CREATED);
	assert_int_equal(store_devices_mark_success(f->store, ids, 3, 7777), STORE_OK);
	assert_int_equal(store_device_get(f->store, "d2", &d), STORE_OK);
	assert_int_equal(d.last_success_at, 7777);
	assert_int_equal(d.updated_at, 1000);
	model_device_free(&d);
}

/* A two-row push record for the push tests. */
static void
push_sample(struct push_record *r, struct push_row rows[2])
{
	memset(r, 0, sizeof *r);
	memset(rows, 0, 2 * sizeof rows[0]);
	rows[0] = (struct push_row){ "d1", "alice", DEVICE_PLATFORM_APNS, "com.example.chat", -1,
	    "queued", NULL, 0, 5000 };
	rows[1] = (struct push_row){ "d2", "bob", DEVICE_PLATFORM_FCM, "proj", 3, "queued", NULL,
	    0, 5000 };
	r->push_id = "p-1";
	r->created_at = 5000;
	r->content = "{\"body\":\"hi\"}";
	r->badge_per_recipient = 1;
	r->rows = rows;
	r->count = 2;
}

static void
test_push_insert_update_get_round_trip(void **state)
{
	struct fixture *f = *state;
	struct push_record r, got;
	struct push_row rows[2];
	struct push_row_update u[2] = {
		{ "p-1", 0, 0, "sent", NULL, 1, 6000 },
		{ "p-1", 1, 1, "failed", "BadDeviceToken", 2, 6001 },
	};
	struct push_row_update range = { "p-1", 0, 1, "retrying", "429", 3, 7000 };
	struct push_finish fin = { "p-1", 6002 };

	push_sample(&r, rows);
	assert_int_equal(store_push_insert(f->store, &r), STORE_OK);
	assert_int_equal(store_push_get(f->store, "p-1", &got), STORE_OK);
	assert_string_equal(got.content, "{\"body\":\"hi\"}");
	assert_int_equal(got.created_at, 5000);
	assert_int_equal(got.badge_per_recipient, 1);
	assert_int_equal(got.finished_at, 0);
	assert_int_equal(got.count, 2);
	assert_string_equal(got.rows[1].device_id, "d2");
	assert_int_equal(got.rows[1].platform, DEVICE_PLATFORM_FCM);
	assert_int_equal(got.rows[1].badge, 3);
	assert_string_equal(got.rows[1].state, "queued");
	assert_null(got.rows[1].reason);
	store_push_record_free(&got);

	assert_int_equal(store_push_update(f->store, u, 2, &fin, 1), STORE_OK);
	assert_int_equal(store_push_get(f->store, "p-1", &got), STORE_OK);
	assert_int_equal(got.finished_at, 6002);
	assert_string_equal(got.rows[0].state, "sent");
	assert_int_equal(got.rows[0].attempts, 1);
	assert_string_equal(got.rows[1].state, "failed");
	assert_string_equal(got.rows[1].reason, "BadDeviceToken");
	assert_int_equal(got.rows[1].updated_at, 6001);
	store_push_record_free(&got);
	/* One update covers a run of rows. */
	assert_int_equal(store_push_update(f->store, &range, 1, NULL, 0), STORE_OK);
	assert_int_equal(store_push_get(f->store, "p-1", &got), STORE_OK);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(got.rows[i].state, "retrying");
		assert_string_equal(got.rows[i].reason, "429");
		assert_int_equal(got.rows[i].attempts, 3);
		assert_int_equal(got.rows[i].updated_at, 7000);
	}
	store_push_record_free(&got);
	assert_int_equal(store_push_get(f->store, "p-2", &got), STORE_ENOTFOUND);
}

static void
test_pushes_unfinished_and_expire(void **state)
{
	struct fixture *f = *state;
	struct push_record r, *list;
	struct push_row rows[2];
	struct push_finish fin = { "p-1", 6000 };
	size_t count, deleted;

	push_sample(&r, rows);
	assert_int_equal(store_push_insert(f->store, &r), STORE_OK);
	r.push_id = "p-2";
	r.created_at = 5001;
	assert_int_equal(store_push_insert(f->store, &r), STORE_OK);
	assert_int_equal(store_pushes_unfinished(f->store, &list, &count), STORE_OK);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].push_id, "p-1");
	assert_int_equal(list[1].count, 2);
	for (size_t i = 0; i < count; i++)
		store_push_record_free(&list[i]);
	free(list);

	assert_int_equal(store_push_update(f->store, NULL, 0, &fin, 1), STORE_OK);
	assert_int_equal(store_pushes_unfinished(f->store, &list, &count), STORE_OK);
	assert_int_equal(count, 1);
	assert_string_equal(list[0].push_id, "p-2");
	store_push_record_free(&list[0]);
	free(list);
	/* Only finished pushes older than the bound go, with their rows. */
	assert_int_equal(store_pushes_expire(f->store, 6000, &deleted), STORE_OK);
	assert_int_equal(deleted, 0);
	assert_int_equal(store_pushes_expire(f->store, 6001, &deleted), STORE_OK);
	assert_int_equal(deleted, 1);
	raw_text(f->path, "SELECT count(*) FROM push_devices", (char[16]){0}, 16);
}

static void
test_push_insert_with_duplicate_id_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct push_record r, got;
	struct push_row rows[2];

	push_sample(&r, rows);
	assert_int_equal(store_push_insert(f->store, &r), STORE_OK);
	r.content = "{\"body\":\"second\"}";
	assert_int_equal(store_push_insert(f->store, &r), STORE_EIO);
	assert_int_equal(store_push_get(f->store, "p-1", &got), STORE_OK);
	assert_string_equal(got.content, "{\"body\":\"hi\"}");
	assert_int_equal(got.count, 2);
	store_push_record_free(&got);
}

static void
test_open_migrates_version_1_database_keeping_rows(void **state)
{
	struct fixture *f = *state;
	char err[512], text[64];
	struct device d;

	/* A database as version 1 left it: devices and memberships, no pushes. */
	snprintf(f->path, sizeof f->path, "%s/v1.db", f->dir);
	raw_exec(f->path, "CREATE TABLE devices (device_id TEXT PRIMARY KEY,"
	    " client_id TEXT NOT NULL, platform TEXT NOT NULL CHECK (platform IN ('apns', 'fcm')),"
	    " token TEXT NOT NULL, app_id TEXT NOT NULL, environment TEXT NOT NULL CHECK"
	    " (environment IN ('production', 'sandbox')), locale TEXT, metadata TEXT,"
	    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	    " last_success_at INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
	    " last_error_at INTEGER NOT NULL DEFAULT 0, UNIQUE (platform, token));"
	    "CREATE INDEX devices_client_id ON devices (client_id);"
	    "CREATE TABLE memberships (room_id TEXT NOT NULL, client_id TEXT NOT NULL,"
	    " joined_at INTEGER NOT NULL, muted_until INTEGER NOT NULL DEFAULT 0,"
	    " mentions_only INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (room_id, client_id))"
	    " WITHOUT ROWID; CREATE INDEX memberships_client_id ON memberships (client_id);"
	    "INSERT INTO devices (device_id, client_id, platform, token, app_id, environment,"
	    " created_at, updated_at) VALUES ('old', 'alice', 'apns', '" TOKEN_A "', 'app',"
	    " 'production', 1, 2); PRAGMA user_version = 1;");
	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_OK);
	assert_int_equal(store_device_get(f->store, "old", &d), STORE_OK);
	assert_string_equal(d.token, TOKEN_A);
	model_device_free(&d);
	raw_text(f->path, "PRAGMA user_version", text, sizeof text);
	assert_string_equal(text, "5");
}

static void
test_room_route_lists_members_prefs_devices_and_notified(void **state)
{
	struct fixture *f = *state;
	struct notified_mark marks[2] = {
		{ "room", "m1", "d-bob", 10 }, { "room", "m2", "d-alice", 11 },
	};
	struct room_route route;

	put_device(f->store, "d-alice", "alice", DEVICE_PLATFORM_APNS, TOKEN_A, 1000,
	    STORE_PUT_CREATED);
	put_device(f->store, "d-bob", "bob", DEVICE_PLATFORM_APNS, TOKEN_B, 1000,
	    STORE_PUT_CREATED);
	put_device(f->store, "d-bob-2", "bob", DEVICE_PLATFORM_FCM, "fcm-bob", 1000,
	    STORE_PUT_CREATED);
	assert_int_equal(store_member_put(f->store, "room", "bob", 1, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_put(f->store, "room", "alice", 1, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_put(f->store, "room", "carol", 1, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_prefs_put(f->store, "room", "bob", 99, 1, NULL), STORE_OK);
	/* Adding the same mark again is not an error, and it is listed once. */
	assert_int_equal(store_notified_add(f->store, marks, 1), STORE_OK);
	assert_int_equal(store_notified_add(f->store, marks, 2), STORE_OK);

	assert_int_equal(store_room_route(f->store, "room", "m1", &route), STORE_OK);
	assert_int_equal(route.member_count, 3);
	assert_string_equal(route.members[0].client_id, "alice");
	assert_int_equal(route.members[0].target_count, 1);
	assert_string_equal(route.members[0].targets[0]->token, TOKEN_A);
	assert_string_equal(route.members[1].client_id, "bob");
	assert_int_equal(route.members[1].muted_until, 99);
	assert_int_equal(route.members[1].mentions_only, 1);
	assert_int_equal(route.members[1].target_count, 2);
	assert_string_equal(route.members[1].targets[1]->device_id, "d-bob-2");
	/* A member without devices is listed, with none. */
	assert_string_equal(route.members[2].client_id, "carol");
	assert_int_equal(route.members[2].target_count, 0);
	assert_int_equal(route.notified_count, 1);
	assert_string_equal(route.notified[0], "d-bob");
	store_room_route_free(&route);

	assert_int_equal(store_notified_expire(f->store, 11), STORE_OK);
	assert_int_equal(store_room_route(f->store, "room", "m1", &route), STORE_OK);
	assert_int_equal(route.notified_count, 0);
	store_room_route_free(&route);
}

/* The key stored with each mark: a change would strand every mark already written. */
static void
test_notified_marks_store_a_stable_message_key(void **state)
{
	struct fixture *f = *state;
	struct notified_mark marks[2] = {
		{ "room", "m1", "d-1", 10 }, { "dm-17", "m-123", "d-2", 11 },
	};
	char text[64];

	assert_int_equal(store_notified_add(f->store, marks, 2), STORE_OK);
	raw_text(f->path, "SELECT group_concat(message_key, ' ') FROM"
	    " (SELECT message_key FROM notified ORDER BY id) AS marks", text, sizeof text);
	assert_string_equal(text, "7808318855398565537 -7642042639422210167");
}

/* Marks written by version 3 are still found after the migration to version 4. */
static void
test_open_migrates_version_3_notified_marks(void **state)
{
	struct fixture *f = *state;
	struct notified_mark later = { "room", "m2", "d-3", 30 };
	struct room_route route;
	char err[512], text[64];

	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_OK);
	store_close(f->store);
	f->store = NULL;
	/* Back to version 3's table, with marks in it. */
	raw_exec(f->path, "DROP TABLE notified; CREATE TABLE notified (room_id TEXT NOT NULL,"
	    " message_id TEXT NOT NULL, device_id TEXT NOT NULL, at INTEGER NOT NULL,"
	    " PRIMARY KEY (room_id, message_id, device_id)) WITHOUT ROWID;"
	    " CREATE INDEX notified_at ON notified (at);"
	    " INSERT INTO notified VALUES ('room', 'm1', 'd-2', 20), ('room', 'm1', 'd-1', 10);"
	    " PRAGMA user_version = 3;");
	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_OK);
	raw_text(f->path, "PRAGMA user_version", text, sizeof text);
	assert_string_equal(text, "5");
	assert_int_equal(store_room_route(f->store, "room", "m1", &route), STORE_OK);
	assert_int_equal(route.notified_count, 2);
	assert_true((strcmp(route.notified[0], "d-1") == 0 &&
	    strcmp(route.notified[1], "d-2") == 0) ||
	    (strcmp(route.notified[0], "d-2") == 0 && strcmp(route.notified[1], "d-1") == 0));
	store_room_route_free(&route);
	/* Copied in time order: expiry takes the oldest first. */
	assert_int_equal(store_notified_add(f->store, &later, 1), STORE_OK);
	assert_int_equal(store_notified_expire(f->store, 15), STORE_OK);
	assert_int_equal(store_room_route(f->store, "room", "m1", &route), STORE_OK);
	assert_int_equal(route.notified_count, 1);
	assert_string_equal(route.notified[0], "d-2");
	store_room_route_free(&route);
	assert_int_equal(store_notified_expire(f->store, 1000), STORE_OK);
	assert_int_equal(store_room_route(f->store, "room", "m2", &route), STORE_OK);
	assert_int_equal(route.notified_count, 0);
	store_room_route_free(&route);
}

static void
test_unread_counts_put_load_and_delete_at_zero(void **state)
{
	struct fixture *f = *state;
	struct unread_count put[2] = { { "alice", "r1", 3 }, { "alice", "r2", 1 } };
	struct unread_count zero = { "alice", "r1", 0 };
	struct unread_count *got;
	size_t n;

	assert_int_equal(store_unread_put(f->store, put, 2), STORE_OK);
	put[1].count = 5;
	assert_int_equal(store_unread_put(f->store, &put[1], 1), STORE_OK);
	assert_int_equal(store_unread_put(f->store, &zero, 1), STORE_OK);
	assert_int_equal(store_unread_load(f->store, &got, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(got[0].client_id, "alice");
	assert_string_equal(got[0].room_id, "r2");
	assert_int_equal(got[0].count, 5);
	store_unread_free(got, n);
}

static void
test_outbox_keeps_batches_until_deleted(void **state)
{
	struct fixture *f = *state;
	const char *bodies[2] = { "{\"events\":[1]}", "{\"headers\":{},\"body\":\"e30=\"}" };
	const enum store_outbox_kind kinds[2] = { STORE_OUTBOX_EVENTS, STORE_OUTBOX_ABLY };
	struct outbox_entry *got;
	int64_t ids[2];
	size_t n;

	assert_int_equal(store_outbox_add(f->store, kinds, bodies, 2, 500, ids), STORE_OK);
	assert_true(ids[1] > ids[0]);
	assert_int_equal(store_outbox_load(f->store, &got, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(got[0].id, ids[0]);
	assert_int_equal(got[0].received_at, 500);
	assert_int_equal(got[0].kind, STORE_OUTBOX_EVENTS);
	assert_string_equal(got[0].body, "{\"events\":[1]}");
	assert_int_equal(got[1].kind, STORE_OUTBOX_ABLY);
	assert_string_equal(got[1].body, "{\"headers\":{},\"body\":\"e30=\"}");
	store_outbox_free(got, n);
	assert_int_equal(store_outbox_delete(f->store, ids, 1), STORE_OK);
	assert_int_equal(store_outbox_load(f->store, &got, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].id, ids[1]);
	store_outbox_free(got, n);
}

/*
 * Version 4's outbox had no kind: the migration to 5 marks the Ably webhooks it kept
 * ({"ably":{...}}) as such, unwrapped, and everything else as events.
 */
static void
test_open_migrates_version_4_outbox_rows_to_their_kind(void **state)
{
	struct fixture *f = *state;
	struct outbox_entry *got;
	char err[512], text[64];
	size_t n;

	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_OK);
	store_close(f->store);
	f->store = NULL;
	raw_exec(f->path, "DROP TABLE outbox; CREATE TABLE outbox (id INTEGER PRIMARY KEY,"
	    " received_at INTEGER NOT NULL, body TEXT NOT NULL);"
	    " INSERT INTO outbox VALUES (1, 10, '{\"events\":[{\"type\":\"read\"}]}'),"
	    " (2, 20, '{\"ably\":{\"headers\":{\"content-type\":\"application/json\"},"
	    "\"body\":\"e30=\"}}'), (3, 30, 'not json'), (4, 40, '{\"ably\":\"text\"}');"
	    " PRAGMA user_version = 4;");
	assert_int_equal(fixture_open(f, 0, err, sizeof err), STORE_OK);
	raw_text(f->path, "PRAGMA user_version", text, sizeof text);
	assert_string_equal(text, "5");
	assert_int_equal(store_outbox_load(f->store, &got, &n), STORE_OK);
	assert_int_equal(n, 4);
	assert_int_equal(got[0].kind, STORE_OUTBOX_EVENTS);
	assert_string_equal(got[0].body, "{\"events\":[{\"type\":\"read\"}]}");
	assert_int_equal(got[1].kind, STORE_OUTBOX_ABLY);
	assert_int_equal(got[1].received_at, 20);
	assert_string_equal(got[1].body,
	    "{\"headers\":{\"content-type\":\"application/json\"},\"body\":\"e30=\"}");
	assert_int_equal(got[2].kind, STORE_OUTBOX_EVENTS);
	assert_string_equal(got[2].body, "not json");
	assert_int_equal(got[3].kind, STORE_OUTBOX_EVENTS);
	assert_string_equal(got[3].body, "{\"ably\":\"text\"}");
	store_outbox_free(got, n);
	/* The column takes nothing but the two kinds. */
	raw_text(f->path, "SELECT group_concat(kind, ',') FROM outbox", text, sizeof text);
	assert_string_equal(text, "events,ably,events,events");
}

/*
 * Make every write of this process at offset 1 or more fail with EFBIG, as a full
 * disk makes them fail, without privileges; SIGXFSZ is ignored so write() reports it.
 * Returns the limit to put back. Nothing may be printed until then: the test's own
 * output is a file too.
 */
static struct rlimit
writes_fail_begin(void)
{
	struct rlimit saved, tiny;

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	tiny = saved;
	tiny.rlim_cur = 1;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
	return saved;
}

static void
writes_fail_end(struct rlimit saved)
{
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
}

static void
test_probe_write_leaves_nothing_and_fails_while_writes_fail(void **state)
{
	struct fixture *f = *state;
	struct outbox_entry *got;
	struct rlimit saved;
	char err[128] = "";
	size_t n;
	int rc;

	assert_int_equal(store_probe_write(f->store, err, sizeof err), STORE_OK);
	assert_int_equal(store_outbox_load(f->store, &got, &n), STORE_OK);
	assert_int_equal(n, 0);
	store_outbox_free(got, n);
	saved = writes_fail_begin();
	rc = store_probe_write(f->store, err, sizeof err);
	writes_fail_end(saved);
	assert_int_equal(rc, STORE_EIO);
	assert_string_equal(err, "disk I/O error");
	assert_int_equal(store_probe_write(f->store, err, sizeof err), STORE_OK);
	assert_int_equal(store_outbox_load(f->store, &got, &n), STORE_OK);
	assert_int_equal(n, 0);
	store_outbox_free(got, n);
}

/* Poll the writer's write error until it is (or is not) set; give up after 5 s. */
static const char *
wait_write_error(struct store_writer *w, int want_failing, char *buf, size_t size)
{
	const char *why = NULL;

	for (int i = 0; i < 500; i++) {
		why = store_writer_write_error(w, buf, size);
		if ((why != NULL) == want_failing)
			break;
		usleep(10000);
	}
	return why;
}

static void
test_writer_reports_failing_writes_until_a_probe_commits(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct store_writer *w;
	struct rlimit saved;
	char err[256], buf[128];
	const char *failing, *after;
	int64_t failed_at, recovered_at;

	w = store_writer_start(base, f->store, STORE_WRITER_GROUP_COMMIT, err, sizeof err);
	assert_non_null(w);
	/* Not watched: never failing. */
	assert_null(store_writer_write_error(w, buf, sizeof buf));
	store_writer_watch_writes(w, 200);
	usleep(50000);
	assert_null(store_writer_write_error(w, buf, sizeof buf));
	saved = writes_fail_begin();
	failing = wait_write_error(w, 1, buf, sizeof buf);
	failed_at = clock_monotonic_ms();
	writes_fail_end(saved);
	assert_non_null(failing);
	assert_string_equal(failing, "disk I/O error");
	/* Back once a probe commits an interval after the last failure. */
	after = wait_write_error(w, 0, buf, sizeof buf);
	recovered_at = clock_monotonic_ms();
	assert_null(after);
	assert_true(recovered_at - failed_at >= 150);
	store_writer_stop(w);
	event_base_free(base);
}

#define DIR_TEST(name) cmocka_unit_test_setup_teardown(name, setup_dir, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_strerror_names_every_code),
		DIR_TEST(test_open_unknown_backend_is_einval),
		DIR_TEST(test_open_bad_options_are_einval),
		DIR_TEST(test_open_creates_file_0600_in_new_dir_0700),
		STORE_TEST(test_open_sets_schema_version_and_wal),
		DIR_TEST(test_open_garbage_file_is_eio),
		DIR_TEST(test_open_newer_schema_is_enewer_and_untouched),
		STORE_TEST(test_reopen_keeps_every_row),
		STORE_TEST(test_ping_answers),
		STORE_TEST(test_device_put_creates_then_updates_keeping_created_at),
		STORE_TEST(test_device_put_without_result_or_stored),
		STORE_TEST(test_device_put_missing_field_is_einval),
		STORE_TEST(test_device_put_moves_token_from_other_device),
		STORE_TEST(test_device_put_same_token_on_other_platform_is_another_device),
		STORE_TEST(test_device_put_new_token_resets_delivery_state),
		STORE_TEST(test_device_put_same_token_keeps_delivery_state),
		STORE_TEST(test_device_put_failure_leaves_nothing_half_written),
		DIR_TEST(test_device_put_on_locked_database_is_eio),
		STORE_TEST(test_device_get_missing_is_enotfound),
		STORE_TEST(test_device_delete_removes_and_missing_is_enotfound),
		STORE_TEST(test_client_devices_list_is_ordered_by_device_id),
		STORE_TEST(test_client_devices_delete_counts_only_that_client),
		STORE_TEST(test_device_count_counts_every_client),
		STORE_TEST(test_device_mark_success_sets_only_last_success_at),
		STORE_TEST(test_device_mark_error_sets_reason_and_time),
		STORE_TEST(test_device_mark_on_missing_device_is_enotfound),
		STORE_TEST(test_device_remove_token_respects_unless_updated_after),
		STORE_TEST(test_device_set_environment_respects_unless_updated_after),
		STORE_TEST(test_member_put_creates_then_keeps_existing),
		STORE_TEST(test_generation_moves_only_when_memberships_change),
		STORE_TEST(test_generation_holds_for_a_new_device_of_a_client_in_no_room),
		STORE_TEST(test_checkpoint_size_bounds_the_write_ahead_log),
		STORE_TEST(test_member_get_missing_is_enotfound),
		STORE_TEST(test_member_delete_removes_and_missing_is_enotfound),
		STORE_TEST(test_room_members_list_pages_by_client_id),
		STORE_TEST(test_member_prefs_put_sets_fields),
		STORE_TEST(test_member_prefs_put_on_non_member_is_enotfound),
		STORE_TEST(test_targets_of_rooms_clients_and_devices),
		STORE_TEST(test_devices_mark_success_updates_every_listed_device),
		STORE_TEST(test_push_insert_update_get_round_trip),
		STORE_TEST(test_pushes_unfinished_and_expire),
		STORE_TEST(test_push_insert_with_duplicate_id_leaves_nothing),
		DIR_TEST(test_open_migrates_version_1_database_keeping_rows),
		DIR_TEST(test_open_migrates_version_3_notified_marks),
		DIR_TEST(test_open_migrates_version_4_outbox_rows_to_their_kind),
		STORE_TEST(test_room_route_lists_members_prefs_devices_and_notified),
		STORE_TEST(test_notified_marks_store_a_stable_message_key),
		STORE_TEST(test_unread_counts_put_load_and_delete_at_zero),
		STORE_TEST(test_outbox_keeps_batches_until_deleted),
		STORE_TEST(test_probe_write_leaves_nothing_and_fails_while_writes_fail),
		STORE_TEST(test_writer_reports_failing_writes_until_a_probe_commits),
	};

	/* What only SQLite has: files, pragmas, its migrations, failing file writes. */
	static const char *const sqlite_only[] = {
		"test_open_bad_options_are_einval",
		"test_open_creates_file_0600_in_new_dir_0700",
		"test_open_sets_schema_version_and_wal",
		"test_open_garbage_file_is_eio",
		"test_open_newer_schema_is_enewer_and_untouched",
		"test_device_put_on_locked_database_is_eio",
		"test_checkpoint_size_bounds_the_write_ahead_log",
		"test_open_migrates_version_1_database_keeping_rows",
		"test_open_migrates_version_3_notified_marks",
		"test_open_migrates_version_4_outbox_rows_to_their_kind",
		"test_probe_write_leaves_nothing_and_fails_while_writes_fail",
		"test_writer_reports_failing_writes_until_a_probe_commits",
	};
	struct CMUnitTest chosen[sizeof tests / sizeof tests[0]];
	size_t count = 0;

	if (test_backend_init() != 0)
		return 1;
	if (!test_is_pg())
		return cmocka_run_group_tests_name("store", tests, NULL, NULL);
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		int skip = 0;
		for (size_t j = 0; j < sizeof sqlite_only / sizeof sqlite_only[0]; j++)
			skip |= strcmp(tests[i].name, sqlite_only[j]) == 0;
		if (!skip)
			chosen[count++] = tests[i];
	}
	return _cmocka_run_group_tests("store_postgresql", chosen, count, NULL, NULL);
}
