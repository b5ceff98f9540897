/* Tests for retry_after.c: delay-seconds, HTTP-dates, the cap and garbage. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "retry_after.h"

/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date, in ms since the epoch. */
#define EXAMPLE_MS 784111777000LL

static void
test_retry_after_delay_seconds_become_ms(void **state)
{
	assert_int_equal(retry_after_parse_ms("0", EXAMPLE_MS), 0);
	assert_int_equal(retry_after_parse_ms("7", EXAMPLE_MS), 7000);
	assert_int_equal(retry_after_parse_ms(" 120 ", EXAMPLE_MS), 120000);
	assert_int_equal(retry_after_parse_ms("86400", EXAMPLE_MS), RETRY_AFTER_MAX_MS);
}

static void
test_retry_after_huge_values_are_cut_to_the_cap(void **state)
{
	assert_int_equal(retry_after_parse_ms("86401", EXAMPLE_MS), RETRY_AFTER_MAX_MS);
	/* Just under INT64_MAX / 1000: 9.2e18 ms, which overflowed the delivery's sums. */
	assert_int_equal(retry_after_parse_ms("9223372036854774", EXAMPLE_MS),
	    RETRY_AFTER_MAX_MS);
	assert_int_equal(retry_after_parse_ms("9223372036854775808", EXAMPLE_MS),
	    RETRY_AFTER_MAX_MS);
	assert_int_equal(retry_after_parse_ms(
	    "99999999999999999999999999999999999999999999999999", EXAMPLE_MS),
	    RETRY_AFTER_MAX_MS);
	assert_int_equal(retry_after_parse_ms("000000000000000000000000000000005", EXAMPLE_MS),
	    5000);
}

static void
test_retry_after_garbage_is_absent(void **state)
{
	static const char *const garbage[] = {
		"", "   ", "-5", "-9223372036854775808", "+5", "1.5", "5s", "5 6", "0x10",
		"soon", "Sun, 06 Nov 1994 08:49:37 GMT trailing", "\xff\xfe",
	};

	assert_int_equal(retry_after_parse_ms(NULL, EXAMPLE_MS), -1);
	for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
		assert_int_equal(retry_after_parse_ms(garbage[i], EXAMPLE_MS), -1);
	}
}

static void
test_retry_after_http_dates_count_from_now(void **state)
{
	/* The three forms RFC 9110 has recipients accept. */
	assert_int_equal(retry_after_parse_ms("Sun, 06 Nov 1994 08:50:37 GMT", EXAMPLE_MS),
	    60000);
	assert_int_equal(retry_after_parse_ms("Sunday, 06-Nov-94 08:50:37 GMT", EXAMPLE_MS),
	    60000);
	assert_int_equal(retry_after_parse_ms("Sun Nov  6 08:50:37 1994", EXAMPLE_MS), 60000);
	/* In the past: now. */
	assert_int_equal(retry_after_parse_ms("Sun, 06 Nov 1994 08:49:36 GMT", EXAMPLE_MS), 0);
	assert_int_equal(retry_after_parse_ms("Thu, 01 Jan 1970 00:00:00 GMT", EXAMPLE_MS), 0);
	/* Far ahead: the cap. */
	assert_int_equal(retry_after_parse_ms("Fri, 31 Dec 9999 23:59:59 GMT", EXAMPLE_MS),
	    RETRY_AFTER_MAX_MS);
	assert_int_equal(retry_after_parse_ms("Mon, 07 Nov 1994 08:49:38 GMT", EXAMPLE_MS),
	    RETRY_AFTER_MAX_MS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_after_delay_seconds_become_ms),
		cmocka_unit_test(test_retry_after_huge_values_are_cut_to_the_cap),
		cmocka_unit_test(test_retry_after_garbage_is_absent),
		cmocka_unit_test(test_retry_after_http_dates_count_from_now),
	};

	return cmocka_run_group_tests_name("retry_after", tests, NULL, NULL);
}
