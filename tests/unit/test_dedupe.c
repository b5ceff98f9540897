/*
 * Tests for dedupe.c with a fake wall clock (times are passed in): message ids seen
 * within the window, the bound on them, fresh messages, and the notified marks
 * written behind to a real SQLite store, read back as a message's notified devices,
 * left out of its targets, and expired after the window.
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

#include "dedupe.h"
#include "log.h"
#include "model.h"
#include "route_store_fixture.h"

#define T0 INT64_C(1700000000000)
#define WINDOW INT64_C(3600000)

struct fixture {
	struct route_store_fixture store;
	struct dedupe *dedupe;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct dedupe_options options = { WINDOW, 1000 };

	if (f == NULL || route_store_open(&f->store, "test_dedupe") != 0)
		return -1;
	f->dedupe = dedupe_new(f->store.writer, &options, T0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	route_store_close(&f->store);
	dedupe_free(f->dedupe);
	free(f);
	return 0;
}

/* The devices the store says a message notified, "a,b," in the store's order. */
static void
notified(struct fixture *f, const char *room, const char *message_id, char *out, size_t size)
{
	struct room_route route;
	size_t len = 0;

	route_store_drain(&f->store);
	assert_int_equal(store_room_route(f->store.store, room, message_id, &route), STORE_OK);
	out[0] = '\0';
	for (size_t i = 0; i < route.notified_count; i++)
		len += snprintf(out + len, size - len, "%s,", route.notified[i]);
	store_room_route_free(&route);
}

static void
test_dedupe_a_message_seen_twice_is_a_duplicate_until_swept_after_the_window(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(dedupe_seen(f->dedupe, "r1", "m1", T0), DEDUPE_NEW);
	assert_int_equal(dedupe_seen(f->dedupe, "r1", "m1", T0 + 5), DEDUPE_DUPLICATE);
	/* The same id in another room is another message. */
	assert_int_equal(dedupe_seen(f->dedupe, "r2", "m1", T0 + 10), DEDUPE_NEW);
	assert_int_equal(dedupe_seen_count(f->dedupe), 2);
	/* Just before the window ends it is kept. */
	dedupe_sweep(f->dedupe, T0 + WINDOW - 1);
	assert_int_equal(dedupe_seen_count(f->dedupe), 2);
	assert_int_equal(dedupe_seen(f->dedupe, "r1", "m1", T0 + WINDOW - 1), DEDUPE_DUPLICATE);
	/* At its end r1/m1 is forgotten; r2/m1, seen later, is not yet. */
	dedupe_sweep(f->dedupe, T0 + WINDOW);
	assert_int_equal(dedupe_seen_count(f->dedupe), 1);
	assert_int_equal(dedupe_seen(f->dedupe, "r2", "m1", T0 + WINDOW), DEDUPE_DUPLICATE);
	assert_int_equal(dedupe_seen(f->dedupe, "r1", "m1", T0 + WINDOW), DEDUPE_NEW);
	assert_int_equal(dedupe_seen(f->dedupe, "r1", "m1", T0 + WINDOW + 1), DEDUPE_DUPLICATE);
}

static void
test_dedupe_seen_ids_are_bounded(void **state)
{
	struct fixture *f = *state;
	struct dedupe_options options = { WINDOW, 2 };

	dedupe_set_options(f->dedupe, &options);
	assert_int_equal(dedupe_seen(f->dedupe, "r", "a", T0), DEDUPE_NEW);
	assert_int_equal(dedupe_seen(f->dedupe, "r", "b", T0), DEDUPE_NEW);
	/* Full: c is routed, not remembered; the store's marks catch its copies. */
	assert_int_equal(dedupe_seen(f->dedupe, "r", "c", T0), DEDUPE_NEW);
	assert_int_equal(dedupe_seen(f->dedupe, "r", "c", T0), DEDUPE_NEW);
	assert_int_equal(dedupe_seen_count(f->dedupe), 2);
	assert_int_equal(dedupe_seen(f->dedupe, "r", "a", T0), DEDUPE_DUPLICATE);
}

static void
test_dedupe_only_new_messages_of_this_process_are_fresh(void **state)
{
	struct fixture *f = *state;

	assert_true(dedupe_is_fresh(f->dedupe, 0, 0));
	assert_true(dedupe_is_fresh(f->dedupe, 0, T0));
	assert_true(dedupe_is_fresh(f->dedupe, 0, T0 + 1));
	/* Older than the process, or handed before: it may have notified someone. */
	assert_false(dedupe_is_fresh(f->dedupe, 0, T0 - 1));
	assert_false(dedupe_is_fresh(f->dedupe, 1, T0 + 1));
	assert_false(dedupe_is_fresh(f->dedupe, 1, 0));
}

static void
test_dedupe_marks_are_written_behind_and_leave_notified_devices_out(void **state)
{
	struct fixture *f = *state;
	struct device_target *targets[3];
	struct room_member_route member = { "bob", 0, 0, targets, 3 };
	struct device_target **fresh;
	struct room_route route;
	char text[256];
	size_t count;

	dedupe_flush(f->dedupe, 0);
	assert_int_equal(store_writer_pending(f->store.writer), 0);
	dedupe_mark(f->dedupe, "r1", "m1", "dev-a", T0);
	dedupe_mark(f->dedupe, "r1", "m1", "dev-b", T0 + 1);
	dedupe_mark(f->dedupe, "r1", "m2", "dev-a", T0 + 2);
	assert_int_equal(dedupe_marks_pending(f->dedupe), 3);
	/* Not written until the flush. */
	notified(f, "r1", "m1", text, sizeof text);
	assert_string_equal(text, "");
	dedupe_flush(f->dedupe, 0);
	assert_int_equal(dedupe_marks_pending(f->dedupe), 0);
	assert_int_equal(store_writer_pending(f->store.writer), 1);
	notified(f, "r1", "m1", text, sizeof text);
	assert_string_equal(text, "dev-a,dev-b,");
	notified(f, "r1", "m2", text, sizeof text);
	assert_string_equal(text, "dev-a,");
	notified(f, "r2", "m1", text, sizeof text);
	assert_string_equal(text, "");

	/* A redelivery of m1 goes to bob's devices the marks do not name. */
	targets[0] = model_target_new("dev-a", "bob", "t-a", "app", DEVICE_PLATFORM_APNS,
	    DEVICE_ENVIRONMENT_PRODUCTION, T0, 0);
	targets[1] = model_target_new("dev-c", "bob", "t-c", "app", DEVICE_PLATFORM_FCM,
	    DEVICE_ENVIRONMENT_PRODUCTION, T0, 0);
	targets[2] = model_target_new("dev-b", "bob", "t-b", "app", DEVICE_PLATFORM_APNS,
	    DEVICE_ENVIRONMENT_SANDBOX, T0, 0);
	route_store_drain(&f->store);
	assert_int_equal(store_room_route(f->store.store, "r1", "m1", &route), STORE_OK);
	fresh = dedupe_fresh_targets(&member, &route, &count);
	assert_int_equal(count, 1);
	assert_string_equal(fresh[0]->device_id, "dev-c");
	assert_int_equal(member.target_count, 0);
	free(fresh[0]);
	free(fresh);
	store_room_route_free(&route);
}

static void
test_dedupe_marks_expire_after_the_window(void **state)
{
	struct fixture *f = *state;
	char text[256];

	dedupe_mark(f->dedupe, "r1", "m1", "dev-a", T0);
	dedupe_mark(f->dedupe, "r1", "m1", "dev-b", T0 + 10);
	dedupe_flush(f->dedupe, 0);
	/* A sweep at the end of the window keeps marks made at its start. */
	dedupe_sweep(f->dedupe, T0 + WINDOW);
	notified(f, "r1", "m1", text, sizeof text);
	assert_string_equal(text, "dev-a,dev-b,");
	/* One ms later the first mark is older than the window; the second is not. */
	dedupe_sweep(f->dedupe, T0 + WINDOW + 1);
	notified(f, "r1", "m1", text, sizeof text);
	assert_string_equal(text, "dev-b,");
	/* Marks not flushed yet are written by the sweep, then kept for their window. */
	dedupe_mark(f->dedupe, "r1", "m1", "dev-c", T0 + WINDOW + 20);
	dedupe_sweep(f->dedupe, T0 + WINDOW + 11);
	notified(f, "r1", "m1", text, sizeof text);
	assert_string_equal(text, "dev-c,");
}

int
main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_dedupe_a_message_seen_twice_is_a_duplicate_until_swept_after_the_window),
		TEST(test_dedupe_seen_ids_are_bounded),
		TEST(test_dedupe_only_new_messages_of_this_process_are_fresh),
		TEST(test_dedupe_marks_are_written_behind_and_leave_notified_devices_out),
		TEST(test_dedupe_marks_expire_after_the_window),
	};

	log_set_level(LOG_LEVEL_WARN);	/* not the schema migrations of each fixture */
	return cmocka_run_group_tests_name("dedupe", tests, NULL, NULL);
}
