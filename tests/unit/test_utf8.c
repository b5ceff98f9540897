/* Tests for utf8.c: what goes out as JSON or into a log is valid UTF-8. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "utf8.h"

static void
test_valid_accepts_shortest_forms_and_refuses_the_rest(void **state)
{
	assert_true(utf8_valid("", 0));
	assert_true(utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
	assert_false(utf8_valid("\xff", 1));
	assert_false(utf8_valid("\xc0\xaf", 2));		/* overlong '/' */
	assert_false(utf8_valid("\xe0\x80\xaf", 3));		/* overlong */
	assert_false(utf8_valid("\xed\xa0\x80", 3));		/* a surrogate */
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4));	/* above U+10FFFF */
	assert_false(utf8_valid("\xc3", 1));			/* cut */
	assert_false(utf8_valid("a\0b", 3));			/* NUL */
	assert_int_equal(utf8_valid_prefix("ab\xe2\x82", 4), 2);
}

/* One character's length, within the bytes given: what log.c escapes by. */
static void
test_char_len_measures_one_valid_character(void **state)
{
	assert_int_equal(utf8_char_len("a", 1), 1);
	assert_int_equal(utf8_char_len("\xc3\xa9x", 3), 2);
	assert_int_equal(utf8_char_len("\xe2\x82\xac", 3), 3);
	assert_int_equal(utf8_char_len("\xf0\x9f\x98\x80", 4), 4);
	assert_int_equal(utf8_char_len("\xf0\x9f\x98\x80", 3), 0);	/* cut short */
	assert_int_equal(utf8_char_len("\xc0\xaf", 2), 0);		/* overlong */
	assert_int_equal(utf8_char_len("\xed\xa0\x80", 3), 0);		/* a surrogate */
	assert_int_equal(utf8_char_len("\x80", 1), 0);			/* continuation */
	assert_int_equal(utf8_char_len("", 1), 0);			/* NUL */
	assert_int_equal(utf8_char_len("a", 0), 0);
}

static void
test_cut_never_splits_a_character(void **state)
{
	const char *s = "\xe2\x82\xac\xe2\x82\xac";	/* two euro signs */

	assert_int_equal(utf8_cut(s, 6, 10), 6);
	assert_int_equal(utf8_cut(s, 6, 6), 6);
	assert_int_equal(utf8_cut(s, 6, 5), 3);
	assert_int_equal(utf8_cut(s, 6, 4), 3);
	assert_int_equal(utf8_cut(s, 6, 3), 3);
	assert_int_equal(utf8_cut(s, 6, 2), 0);
}

static void
test_sanitize_replaces_bad_bytes_and_cuts_on_a_boundary(void **state)
{
	char out[64];

	assert_int_equal(utf8_sanitize(out, sizeof out, "/\xff", 2), 4);
	assert_string_equal(out, "/" UTF8_REPLACEMENT);
	utf8_sanitize(out, sizeof out, "a\0b", 3);
	assert_string_equal(out, "a" UTF8_REPLACEMENT "b");
	utf8_sanitize(out, sizeof out, "x\xe2\x82", 3);
	assert_string_equal(out, "x" UTF8_REPLACEMENT UTF8_REPLACEMENT);
	/* Room for 5 bytes and the NUL: the euro sign (3 bytes) after "ab" does not fit. */
	assert_int_equal(utf8_sanitize(out, 6, "ab\xe2\x82\xac", 5), 5);
	assert_int_equal(utf8_sanitize(out, 5, "ab\xe2\x82\xac", 5), 2);
	assert_string_equal(out, "ab");
}

/* Whatever the bytes, the result is text jansson takes. */
static void
test_sanitized_random_bytes_are_accepted_by_jansson(void **state)
{
	char in[256], out[800];
	unsigned int seed = 7;

	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof in);
		json_t *s;
		for (size_t i = 0; i < len; i++)
			in[i] = (char)rand_r(&seed);
		utf8_sanitize(out, (size_t)(rand_r(&seed) % sizeof out) + 1, in, len);
		assert_true(utf8_valid(out, strlen(out)));
		s = json_string(out);
		assert_non_null(s);
		json_decref(s);
	}
}

static void
test_sanitize_dup_bounds_the_result(void **state)
{
	char *s = utf8_sanitize_dup("\xff\xff\xff\xff", 4, 7);

	assert_string_equal(s, UTF8_REPLACEMENT UTF8_REPLACEMENT);
	free(s);
	s = utf8_sanitize_dup("plain", 5, 100);
	assert_string_equal(s, "plain");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_accepts_shortest_forms_and_refuses_the_rest),
		cmocka_unit_test(test_char_len_measures_one_valid_character),
		cmocka_unit_test(test_cut_never_splits_a_character),
		cmocka_unit_test(test_sanitize_replaces_bad_bytes_and_cuts_on_a_boundary),
		cmocka_unit_test(test_sanitized_random_bytes_are_accepted_by_jansson),
		cmocka_unit_test(test_sanitize_dup_bounds_the_result),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
