/*
 * Tests for route_cache.c on a real SQLite store and reader thread: a room read once
 * is routed from memory while the registry's generation holds, and read again when a
 * device or a membership changes, when the reader has work queued before, or when
 * the message may have notified someone before; at most rooms_max rooms are kept.
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
#include "model.h"
#include "route_cache.h"
#include "route_store_fixture.h"

#define T0 INT64_C(1700000000000)

struct fixture {
	struct route_store_fixture store;
	struct route_cache *cache;
	int reads;		/* done callbacks run */
	int result;		/* the last one's */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (f == NULL || route_store_open(&f->store, "test_route_cache") != 0)
		return -1;
	f->cache = route_cache_new(f->store.store, f->store.writer, 2);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	route_store_close(&f->store);
	route_cache_free(f->cache);
	free(f);
	return 0;
}

/* Register a device for client and make client a member of room. */
static void
member_with_device(struct fixture *f, const char *room, char *client, char *device_id)
{
	struct device d;

	memset(&d, 0, sizeof d);
	d.device_id = device_id;
	d.client_id = client;
	d.platform = DEVICE_PLATFORM_APNS;
	d.token = device_id;
	d.app_id = "com.example.chat";
	assert_int_equal(store_device_put(f->store.store, &d, T0, NULL, NULL), STORE_OK);
	assert_int_equal(store_member_put(f->store.store, room, client, T0, NULL, NULL),
	    STORE_OK);
}

static void
read_done(int result, void *arg)
{
	struct fixture *f = arg;

	f->reads++;
	f->result = result;
}

/* A message's route: "client:device,device;..." and whether it came from memory. */
static int
route(struct fixture *f, const char *room, const char *message_id, int fresh, char *out,
    size_t size)
{
	struct room_route r;
	int reads = f->reads, rc;
	size_t len = 0;

	rc = route_cache_route(f->cache, room, message_id, fresh, &r, read_done, f);
	if (rc == ROUTE_CACHE_READING) {
		assert_int_equal(f->reads, reads);
		route_store_drain(&f->store);
		assert_int_equal(f->reads, reads + 1);
		assert_int_equal(f->result, STORE_OK);
	} else {
		assert_int_equal(rc, ROUTE_CACHE_HIT);
		assert_int_equal(f->reads, reads);
	}
	out[0] = '\0';
	for (size_t i = 0; i < r.member_count; i++) {
		len += snprintf(out + len, size - len, "%s:", r.members[i].client_id);
		for (size_t t = 0; t < r.members[i].target_count; t++)
			len += snprintf(out + len, size - len, "%s,",
			    r.members[i].targets[t]->device_id);
		len += snprintf(out + len, size - len, ";");
	}
	store_room_route_free(&r);
	return rc;
}

static void
test_route_cache_a_room_read_once_is_routed_from_memory(void **state)
{
	struct fixture *f = *state;
	struct room_route r;
	char text[256];

	member_with_device(f, "r1", "alice", "dev-a");
	member_with_device(f, "r1", "bob", "dev-b");
	assert_int_equal(route(f, "r1", "m1", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_string_equal(text, "alice:dev-a,;bob:dev-b,;");
	assert_int_equal(route_cache_rooms(f->cache), 1);
	assert_int_equal(route(f, "r1", "m2", 1, text, sizeof text), ROUTE_CACHE_HIT);
	assert_string_equal(text, "alice:dev-a,;bob:dev-b,;");
	/* Routing takes the targets out of its copy (dedupe_fresh_targets): the kept stay. */
	assert_int_equal(route_cache_route(f->cache, "r1", "m3", 1, &r, read_done, f),
	    ROUTE_CACHE_HIT);
	for (size_t i = 0; i < r.member_count; i++) {
		for (size_t t = 0; t < r.members[i].target_count; t++)
			free(r.members[i].targets[t]);
		r.members[i].target_count = 0;
	}
	store_room_route_free(&r);
	assert_int_equal(route(f, "r1", "m4", 1, text, sizeof text), ROUTE_CACHE_HIT);
	assert_string_equal(text, "alice:dev-a,;bob:dev-b,;");
}

static void
test_route_cache_is_invalidated_when_the_store_generation_changes(void **state)
{
	struct fixture *f = *state;
	char text[256];

	member_with_device(f, "r1", "alice", "dev-a");
	assert_int_equal(route(f, "r1", "m1", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_int_equal(route(f, "r1", "m2", 1, text, sizeof text), ROUTE_CACHE_HIT);
	/* A member joins: the generation moves, the next message reads and sees them. */
	member_with_device(f, "r1", "carol", "dev-c");
	assert_int_equal(route(f, "r1", "m3", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_string_equal(text, "alice:dev-a,;carol:dev-c,;");
	assert_int_equal(route(f, "r1", "m4", 1, text, sizeof text), ROUTE_CACHE_HIT);
	assert_string_equal(text, "alice:dev-a,;carol:dev-c,;");
	/* A change elsewhere (a member of another room) moves it too: read again. */
	assert_int_equal(store_member_put(f->store.store, "r9", "zed", T0, NULL, NULL),
	    STORE_OK);
	assert_int_equal(route(f, "r1", "m5", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_string_equal(text, "alice:dev-a,;carol:dev-c,;");
	/* A device removed. */
	assert_int_equal(store_device_delete(f->store.store, "dev-a"), STORE_OK);
	assert_int_equal(route(f, "r1", "m6", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_string_equal(text, "alice:;carol:dev-c,;");
}

/* A job on the reader that does nothing. */
static int
noop_run(struct store *store, void *arg)
{
	return STORE_OK;
}

static void
test_route_cache_reads_in_order_behind_queued_work_and_for_old_messages(void **state)
{
	struct fixture *f = *state;
	char text[256];

	member_with_device(f, "r1", "alice", "dev-a");
	assert_int_equal(route(f, "r1", "m1", 1, text, sizeof text), ROUTE_CACHE_READING);
	/* A membership write queued before the message: the message must see it. */
	store_writer_submit(f->store.writer, noop_run, NULL, NULL);
	assert_int_equal(route(f, "r1", "m2", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_string_equal(text, "alice:dev-a,;");
	/* May have notified before (redelivered, or older than the process). */
	assert_int_equal(route(f, "r1", "m3", 0, text, sizeof text), ROUTE_CACHE_READING);
	assert_int_equal(route(f, "r1", "m4", 1, text, sizeof text), ROUTE_CACHE_HIT);
}

static void
test_route_cache_keeps_at_most_rooms_max_rooms(void **state)
{
	struct fixture *f = *state;
	char text[256];

	member_with_device(f, "r1", "alice", "dev-a");
	member_with_device(f, "r2", "bob", "dev-b");
	member_with_device(f, "r3", "carol", "dev-c");
	assert_int_equal(route(f, "r1", "m1", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_int_equal(route(f, "r2", "m1", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_int_equal(route(f, "r3", "m1", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_string_equal(text, "carol:dev-c,;");
	assert_int_equal(route_cache_rooms(f->cache), 2);
	/* The third room is read every time; the first two stay. */
	assert_int_equal(route(f, "r3", "m2", 1, text, sizeof text), ROUTE_CACHE_READING);
	assert_int_equal(route(f, "r1", "m2", 1, text, sizeof text), ROUTE_CACHE_HIT);
	assert_int_equal(route(f, "r2", "m2", 1, text, sizeof text), ROUTE_CACHE_HIT);
	assert_string_equal(text, "bob:dev-b,;");
}

int
main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_route_cache_a_room_read_once_is_routed_from_memory),
		TEST(test_route_cache_is_invalidated_when_the_store_generation_changes),
		TEST(test_route_cache_reads_in_order_behind_queued_work_and_for_old_messages),
		TEST(test_route_cache_keeps_at_most_rooms_max_rooms),
	};

	log_set_level(LOG_LEVEL_WARN);	/* not the schema migrations of each fixture */
	return cmocka_run_group_tests_name("route_cache", tests, NULL, NULL);
}
