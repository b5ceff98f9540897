/*
 * Tests for unread.c: counts per client and room, the badge as their total across
 * rooms, reads, and the write-behind to (and load from) a real SQLite store.
 */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "route_store_fixture.h"
#include "unread.h"

struct fixture {
	struct route_store_fixture store;
	struct unread *unread;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (f == NULL || route_store_open(&f->store, "test_unread") != 0)
		return -1;
	f->unread = unread_new(f->store.writer);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	/* The counts outlive the writer: their ids are the flushed rows' strings. */
	route_store_close(&f->store);
	unread_free(f->unread);
	free(f);
	return 0;
}

/* The stored counts, "client/room=count;" in the store's order. */
static void
stored(struct fixture *f, char *out, size_t size)
{
	struct unread_count *counts;
	size_t n, len = 0;

	route_store_drain(&f->store);
	assert_int_equal(store_unread_load(f->store.store, &counts, &n), STORE_OK);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += snprintf(out + len, size - len, "%s/%s=%lld;", counts[i].client_id,
		    counts[i].room_id, (long long)counts[i].count);
	store_unread_free(counts, n);
}

static void
test_unread_badge_is_the_total_across_rooms(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(unread_add(f->unread, "alice", "r1", 1), 1);
	assert_int_equal(unread_add(f->unread, "alice", "r2", 1), 2);
	assert_int_equal(unread_add(f->unread, "alice", "r1", 1), 3);
	assert_int_equal(unread_add(f->unread, "bob", "r1", 1), 1);
	assert_int_equal(unread_count(f->unread, "alice", "r1"), 2);
	assert_int_equal(unread_count(f->unread, "alice", "r2"), 1);
	assert_int_equal(unread_total(f->unread, "alice"), 3);
	assert_int_equal(unread_total(f->unread, "bob"), 1);
	assert_int_equal(unread_total(f->unread, "carol"), 0);
	assert_int_equal(unread_count(f->unread, "carol", "r1"), 0);
}

static void
test_unread_read_resets_one_room_only(void **state)
{
	struct fixture *f = *state;

	unread_add(f->unread, "alice", "r1", 1);
	unread_add(f->unread, "alice", "r1", 1);
	unread_add(f->unread, "alice", "r2", 1);
	assert_int_equal(unread_reset(f->unread, "alice", "r1"), 1);
	assert_int_equal(unread_count(f->unread, "alice", "r1"), 0);
	assert_int_equal(unread_count(f->unread, "alice", "r2"), 1);
	assert_int_equal(unread_add(f->unread, "alice", "r1", 1), 2);
	/* A read of a room never counted changes nothing and writes nothing. */
	assert_int_equal(unread_reset(f->unread, "dave", "r9"), 0);
	assert_int_equal(unread_total(f->unread, "dave"), 0);
}

static void
test_unread_flush_writes_each_changed_count_once(void **state)
{
	struct fixture *f = *state;
	char text[512];

	unread_flush(f->unread);
	assert_int_equal(store_writer_pending(f->store.writer), 0);
	for (int i = 0; i < 5; i++)
		unread_add(f->unread, "alice", "r1", 1);
	unread_add(f->unread, "bob", "r2", 1);
	assert_int_equal(unread_dirty(f->unread), 2);
	unread_flush(f->unread);
	assert_int_equal(unread_dirty(f->unread), 0);
	assert_int_equal(store_writer_pending(f->store.writer), 1);
	stored(f, text, sizeof text);
	assert_string_equal(text, "alice/r1=5;bob/r2=1;");
	/* A read writes 0, which deletes the row. */
	unread_reset(f->unread, "alice", "r1");
	unread_add(f->unread, "bob", "r2", 2);
	assert_int_equal(unread_dirty(f->unread), 2);
	unread_flush(f->unread);
	stored(f, text, sizeof text);
	assert_string_equal(text, "bob/r2=3;");
	/* Nothing changed since: no job. */
	unread_flush(f->unread);
	assert_int_equal(store_writer_pending(f->store.writer), 0);
}

static void
test_unread_load_starts_from_the_stored_counts_without_writing_them(void **state)
{
	struct fixture *f = *state;
	struct unread *again;
	char text[512];

	unread_add(f->unread, "alice", "r1", 4);
	unread_add(f->unread, "alice", "r2", 2);
	unread_add(f->unread, "bob", "r1", 1);
	unread_flush(f->unread);
	route_store_drain(&f->store);
	/* A restart: the counts and the badges are back, and the store is not behind. */
	again = unread_new(f->store.writer);
	assert_int_equal(unread_load(again, f->store.store), STORE_OK);
	assert_int_equal(unread_dirty(again), 0);
	assert_int_equal(unread_total(again, "alice"), 6);
	assert_int_equal(unread_count(again, "alice", "r2"), 2);
	assert_int_equal(unread_total(again, "bob"), 1);
	unread_flush(again);
	assert_int_equal(store_writer_pending(f->store.writer), 0);
	assert_int_equal(unread_reset(again, "alice", "r1"), 2);
	unread_flush(again);
	stored(f, text, sizeof text);
	assert_string_equal(text, "alice/r2=2;bob/r1=1;");
	unread_free(again);
}

int
main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_unread_badge_is_the_total_across_rooms),
		TEST(test_unread_read_resets_one_room_only),
		TEST(test_unread_flush_writes_each_changed_count_once),
		TEST(test_unread_load_starts_from_the_stored_counts_without_writing_them),
	};

	log_set_level(LOG_LEVEL_WARN);	/* not the schema migrations of each fixture */
	return cmocka_run_group_tests_name("unread", tests, NULL, NULL);
}
