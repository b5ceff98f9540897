/* Tests for the JSON text writer: jansson's bytes, valid UTF-8 always. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "jsonw.h"
#include "utf8.h"

/* jsonw's text for one string, taken. */
static char *
written(const char *s, size_t len)
{
	struct jsonw w;

	jsonw_init(&w, 1);
	jsonw_string(&w, s, len);
	return jsonw_take(&w, NULL);
}

/* Every byte alone, and in the middle of text, is escaped exactly as jansson does. */
static void
test_every_ascii_byte_is_escaped_as_jansson_escapes_it(void **state)
{
	(void)state;
	for (int c = 1; c < 0x80; c++) {
		char alone[2] = { (char)c, '\0' }, inside[8];
		const char *cases[] = { alone, inside };

		snprintf(inside, sizeof inside, "ab%cde", c);
		for (size_t i = 0; i < 2; i++) {
			json_t *v = json_string(cases[i]);
			char *want = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			char *got = written(cases[i], strlen(cases[i]));

			assert_string_equal(got, want);
			free(got);
			free(want);
			json_decref(v);
		}
	}
}

/* Multi-byte characters pass as they are, as jansson leaves them. */
static void
test_utf8_passes_through_unescaped(void **state)
{
	static const char *const cases[] = {
		"caf\xc3\xa9", "\xe2\x80\xa8\xe2\x80\xa9", "\xf0\x9f\x98\x80 \xef\xbf\xbd",
		"\xed\x9f\xbf\xee\x80\x80", "",
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *v = json_string(cases[i]);
		char *want = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		char *got = written(cases[i], strlen(cases[i]));

		assert_non_null(v);
		assert_string_equal(got, want);
		free(got);
		free(want);
		json_decref(v);
	}
}

/* What is not UTF-8 is replaced, never written as it is: the text stays valid. */
static void
test_bytes_that_are_not_utf8_are_replaced(void **state)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
		{ "caf\xc3", "\"caf\xef\xbf\xbd\"" },
		{ "\xff" "a", "\"\xef\xbf\xbd" "a\"" },
		{ "\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "\xed\xa0\x80" "x\"", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx\\\"\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *got = written(cases[i].in, strlen(cases[i].in));

		assert_string_equal(got, cases[i].out);
		assert_true(utf8_valid(got, strlen(got)));
		free(got);
	}
}

/* Members: the comma comes before all but the first; NULL strings as asked. */
static void
test_members_of_an_object_as_jansson_dumps_them(void **state)
{
	json_t *o = json_pack("{s:s, s:n, s:I, s:{s:I}}", "a", "x", "b", "c",
	    (json_int_t)-9007199254740993LL, "d", "e", (json_int_t)0);
	char *want = json_dumps(o, JSON_COMPACT), *got;
	struct jsonw w;
	size_t len;

	(void)state;
	jsonw_init(&w, 4);
	jsonw_raw(&w, "{");
	jsonw_string_member(&w, "a", "x");
	jsonw_string_member(&w, "skipped", NULL);
	jsonw_string_or_null_member(&w, "b", NULL);
	jsonw_integer_member(&w, "c", -9007199254740993LL);
	jsonw_key(&w, "d");
	jsonw_raw(&w, "{");
	jsonw_integer_member(&w, "e", 0);
	jsonw_raw(&w, "}}");
	got = jsonw_take(&w, &len);
	assert_string_equal(got, want);
	assert_int_equal(len, strlen(want));
	assert_null(w.text);
	free(got);
	free(want);
	json_decref(o);
}

/* A text far past the first allocation grows, and stays terminated. */
static void
test_the_buffer_grows_and_stays_terminated(void **state)
{
	struct jsonw w;
	char *text;
	size_t len;

	(void)state;
	jsonw_init(&w, 1);
	for (int i = 0; i < 10000; i++)
		jsonw_bytes(&w, "0123456789", 10);
	assert_int_equal(strlen(w.text), 100000);
	text = jsonw_take(&w, &len);
	assert_int_equal(len, 100000);
	assert_memory_equal(text + 99990, "0123456789", 10);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_ascii_byte_is_escaped_as_jansson_escapes_it),
		cmocka_unit_test(test_utf8_passes_through_unescaped),
		cmocka_unit_test(test_bytes_that_are_not_utf8_are_replaced),
		cmocka_unit_test(test_members_of_an_object_as_jansson_dumps_them),
		cmocka_unit_test(test_the_buffer_grows_and_stays_terminated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
