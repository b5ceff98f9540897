/* Tests for tracker.c: an event is acknowledged once, when its last holder lets go. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tracker.h"

struct counts {
	int acks;
	int done;
	char order[8];		/* "a" for an ack, "d" for done */
};

static void
on_ack(void *ctx)
{
	struct counts *c = ctx;

	c->acks++;
	strcat(c->order, "a");
}

static void
on_done(void *arg)
{
	struct counts *c = arg;

	c->done++;
	strcat(c->order, "d");
}

static void
test_tracker_acknowledges_once_after_the_last_holder(void **state)
{
	struct counts c = { 0 };
	struct tracker *t = tracker_new(on_ack, &c, on_done, &c);

	tracker_hold(t);
	tracker_hold(t);
	tracker_release(t);
	tracker_release(t);
	assert_int_equal(c.acks, 0);
	assert_int_equal(c.done, 0);
	tracker_release(t);
	assert_int_equal(c.acks, 1);
	assert_int_equal(c.done, 1);
	/* The source hears first, then the owner (which may resume sources). */
	assert_string_equal(c.order, "ad");
}

static void
test_tracker_abandoned_is_done_without_acknowledgement(void **state)
{
	struct counts c = { 0 };
	struct tracker *t = tracker_new(on_ack, &c, on_done, &c);

	tracker_hold(t);
	tracker_abandon(t);
	tracker_release(t);
	tracker_release(t);
	assert_int_equal(c.acks, 0);
	assert_int_equal(c.done, 1);
}

static void
test_tracker_without_callbacks(void **state)
{
	struct counts c = { 0 };

	/* Sources that need no acknowledgement; an owner that needs no word. */
	tracker_release(tracker_new(NULL, NULL, on_done, &c));
	tracker_release(tracker_new(on_ack, &c, NULL, NULL));
	assert_int_equal(c.acks, 1);
	assert_int_equal(c.done, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tracker_acknowledges_once_after_the_last_holder),
		cmocka_unit_test(test_tracker_abandoned_is_done_without_acknowledgement),
		cmocka_unit_test(test_tracker_without_callbacks),
	};

	return cmocka_run_group_tests_name("tracker", tests, NULL, NULL);
}
