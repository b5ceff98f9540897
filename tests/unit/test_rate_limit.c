/* Tests for rate_limit.c with a fake monotonic clock (times are passed in). */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "rate_limit.h"

#define T0 INT64_C(1000)

static void
test_rate_limit_counts_each_recipient_in_windows_of_a_minute(void **state)
{
	struct rate_limit *rate = rate_limit_new(2);

	assert_int_equal(rate_limit_take(rate, "bob", T0), RATE_LIMIT_OK);
	assert_int_equal(rate_limit_take(rate, "bob", T0 + 10), RATE_LIMIT_OK);
	assert_int_equal(rate_limit_take(rate, "bob", T0 + 20), RATE_LIMIT_EXCEEDED);
	/* Refused notifications do not count: still exceeded, not further. */
	assert_int_equal(rate_limit_take(rate, "bob", RATE_LIMIT_WINDOW_MS + T0 - 1),
	    RATE_LIMIT_EXCEEDED);
	/* Others have their own. */
	assert_int_equal(rate_limit_take(rate, "carol", T0 + 30), RATE_LIMIT_OK);
	/* The window starts with bob's first notification and lasts a minute. */
	assert_int_equal(rate_limit_take(rate, "bob", RATE_LIMIT_WINDOW_MS + T0), RATE_LIMIT_OK);
	assert_int_equal(rate_limit_take(rate, "bob", RATE_LIMIT_WINDOW_MS + T0 + 1),
	    RATE_LIMIT_OK);
	assert_int_equal(rate_limit_take(rate, "bob", RATE_LIMIT_WINDOW_MS + T0 + 2),
	    RATE_LIMIT_EXCEEDED);
	rate_limit_free(rate);
}

static void
test_rate_limit_of_zero_never_limits_and_keeps_nothing(void **state)
{
	struct rate_limit *rate = rate_limit_new(0);

	for (int i = 0; i < 1000; i++)
		assert_int_equal(rate_limit_take(rate, "bob", T0), RATE_LIMIT_OK);
	assert_int_equal(rate_limit_clients(rate), 0);
	/* Turned on by a reload: counted from then on. */
	rate_limit_set(rate, 1);
	assert_int_equal(rate_limit_take(rate, "bob", T0), RATE_LIMIT_OK);
	assert_int_equal(rate_limit_take(rate, "bob", T0 + 1), RATE_LIMIT_EXCEEDED);
	rate_limit_free(rate);
}

static void
test_rate_limit_sweep_forgets_ended_windows(void **state)
{
	struct rate_limit *rate = rate_limit_new(1);

	rate_limit_take(rate, "bob", T0);
	rate_limit_take(rate, "carol", T0 + 500);
	assert_int_equal(rate_limit_clients(rate), 2);
	rate_limit_sweep(rate, RATE_LIMIT_WINDOW_MS + T0 - 1);
	assert_int_equal(rate_limit_clients(rate), 2);
	rate_limit_sweep(rate, RATE_LIMIT_WINDOW_MS + T0);
	assert_int_equal(rate_limit_clients(rate), 1);
	/* carol's window still runs: she stays limited. */
	assert_int_equal(rate_limit_take(rate, "carol", RATE_LIMIT_WINDOW_MS + T0),
	    RATE_LIMIT_EXCEEDED);
	assert_int_equal(rate_limit_take(rate, "bob", RATE_LIMIT_WINDOW_MS + T0), RATE_LIMIT_OK);
	rate_limit_free(rate);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_limit_counts_each_recipient_in_windows_of_a_minute),
		cmocka_unit_test(test_rate_limit_of_zero_never_limits_and_keeps_nothing),
		cmocka_unit_test(test_rate_limit_sweep_forgets_ended_windows),
	};

	return cmocka_run_group_tests_name("rate_limit", tests, NULL, NULL);
}
