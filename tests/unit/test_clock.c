/* Tests for clock.c: RFC 3339 formatting and parsing. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"

static void
test_format_rfc3339_has_milliseconds_and_z(void **state)
{
	char buf[CLOCK_RFC3339_SIZE];

	clock_format_rfc3339(1764321302123LL, buf);
	assert_string_equal(buf, "2025-11-28T09:15:02.123Z");
	clock_format_rfc3339(0, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	clock_format_rfc3339(951782400000LL, buf);	/* leap day 2000 */
	assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
}

static void
test_parse_rfc3339_round_trips(void **state)
{
	int64_t ms;

	assert_int_equal(clock_parse_rfc3339("2025-11-28T09:15:02.123Z", &ms), 0);
	assert_int_equal(ms, 1764321302123LL);
	assert_int_equal(clock_parse_rfc3339("2025-11-28T09:15:02Z", &ms), 0);
	assert_int_equal(ms, 1764321302000LL);
	/* Fractions beyond milliseconds are truncated. */
	assert_int_equal(clock_parse_rfc3339("2025-11-28T09:15:02.123999Z", &ms), 0);
	assert_int_equal(ms, 1764321302123LL);
	assert_int_equal(clock_parse_rfc3339("2025-11-28T09:15:02.5Z", &ms), 0);
	assert_int_equal(ms, 1764321302500LL);
}

static void
test_parse_rfc3339_applies_offsets(void **state)
{
	int64_t ms;

	assert_int_equal(clock_parse_rfc3339("2025-11-28T10:15:02+01:00", &ms), 0);
	assert_int_equal(ms, 1764321302000LL);
	assert_int_equal(clock_parse_rfc3339("2025-11-28T04:45:02-04:30", &ms), 0);
	assert_int_equal(ms, 1764321302000LL);
}

static void
test_parse_rfc3339_rejects_malformed_times(void **state)
{
	static const char *const bad[] = {
		"", "2025-11-28", "2025-11-28T09:15:02", "2025-13-01T00:00:00Z",
		"2025-02-29T00:00:00Z", "2025-11-31T00:00:00Z", "2025-11-28T24:00:00Z",
		"2025-11-28T09:60:00Z", "2025-11-28T09:15:02.Z", "2025-11-28T09:15:02Zjunk",
		"2025-11-28T09:15:02+0100", "25-11-28T09:15:02Z", "2025-11-28T09:15:02+25:00",
		"tomorrow",
	};
	int64_t ms;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (clock_parse_rfc3339(bad[i], &ms) != -1)
			fail_msg("accepted '%s'", bad[i]);
	}
}

static void
test_now_follows_the_test_offset(void **state)
{
	int64_t before = clock_now_ms(), after;

	clock_set_offset_ms(3600 * 1000);
	after = clock_now_ms();
	clock_set_offset_ms(0);
	assert_true(after - before >= 3600 * 1000);
	assert_true(after - before < 3600 * 1000 + 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_rfc3339_has_milliseconds_and_z),
		cmocka_unit_test(test_parse_rfc3339_round_trips),
		cmocka_unit_test(test_parse_rfc3339_applies_offsets),
		cmocka_unit_test(test_parse_rfc3339_rejects_malformed_times),
		cmocka_unit_test(test_now_follows_the_test_offset),
	};

	return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
