/* Tests for log.c: line format, quoting, JSON output and redaction. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "log.h"
#include "utf8.h"

/* Capture what the logger writes to stderr while fn runs. */
static char captured[65536];

static void
capture_begin(int *saved, FILE **tmp)
{
	fflush(stderr);
	*tmp = tmpfile();
	assert_non_null(*tmp);
	*saved = dup(STDERR_FILENO);
	dup2(fileno(*tmp), STDERR_FILENO);
}

static const char *
capture_end(int saved, FILE *tmp)
{
	size_t n;

	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(captured, 1, sizeof captured - 1, tmp);
	captured[n] = '\0';
	fclose(tmp);
	return captured;
}

static int
setup(void **state)
{
	/* The journal prefix and timestamps depend on the environment: fix both. */
	setenv("JOURNAL_STREAM", "8:1234", 1);
	log_init();
	log_set_level(LOG_LEVEL_INFO);
	log_set_format(LOG_FORMAT_TEXT);
	return 0;
}

static void
test_text_line_quotes_only_values_that_need_it(void **state)
{
	FILE *tmp;
	int saved;

	capture_begin(&saved, &tmp);
	log_info("device registered", "device_id", "abc", "note", "two words", "q", "a\"b",
	    "empty", "", NULL);
	assert_string_equal(capture_end(saved, tmp), "<6>level=info msg=\"device registered\" "
	    "device_id=abc note=\"two words\" q=\"a\\\"b\" empty=\"\"\n");
}

static void
test_json_line_escapes_values(void **state)
{
	FILE *tmp;
	int saved;

	log_set_format(LOG_FORMAT_JSON);
	capture_begin(&saved, &tmp);
	log_warn("bad event", "reason", "line\nbreak", "ctl", "\x01", NULL);
	log_set_format(LOG_FORMAT_TEXT);
	assert_string_equal(capture_end(saved, tmp), "<4>{\"level\":\"warn\","
	    "\"msg\":\"bad event\",\"reason\":\"line\\nbreak\",\"ctl\":\"\\u0001\"}\n");
}

/* Bytes that are not UTF-8, in every place a client's text can reach. */
static const char *const bad_values[] = {
	"\xff\xfe", "caf\xc3", "\xc3\x28", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	"\xc0\xaf", "ok \xe2\x82\xac \x80 end",
};

/* Log one line with bad bytes in the message, a key and every value. */
static const char *
log_bad_line(void)
{
	FILE *tmp;
	int saved;

	capture_begin(&saved, &tmp);
	log_warn("bad \xff message", "k\xfey", bad_values[0], "v1", bad_values[1], "v2",
	    bad_values[2], "v3", bad_values[3], "v4", bad_values[4], "v5", bad_values[5],
	    "v6", bad_values[6], "v7", bad_values[7], NULL);
	return capture_end(saved, tmp);
}

static void
test_text_line_with_invalid_bytes_is_valid_utf8(void **state)
{
	const char *line = log_bad_line();

	assert_true(utf8_valid(line, strlen(line)));
	assert_string_equal(line, "<4>level=warn msg=\"bad \xef\xbf\xbd message\" "
	    "k\xef\xbf\xbdy=\xef\xbf\xbd\xef\xbf\xbd v1=caf\xef\xbf\xbd "
	    "v2=\xef\xbf\xbd( v3=\xef\xbf\xbd\xef\xbf\xbd "
	    "v4=\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
	    "v5=\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
	    "v6=\xef\xbf\xbd\xef\xbf\xbd v7=\"ok \xe2\x82\xac \xef\xbf\xbd end\"\n");
}

static void
test_json_line_with_invalid_bytes_parses(void **state)
{
	const char *line;
	json_error_t error;
	json_t *object;

	log_set_format(LOG_FORMAT_JSON);
	line = log_bad_line();
	log_set_format(LOG_FORMAT_TEXT);
	assert_true(utf8_valid(line, strlen(line)));
	assert_memory_equal(line, "<4>", 3);
	object = json_loads(line + 3, 0, &error);
	assert_non_null(object);
	assert_string_equal(json_string_value(json_object_get(object, "msg")),
	    "bad \xef\xbf\xbd message");
	assert_string_equal(json_string_value(json_object_get(object, "v1")),
	    "caf\xef\xbf\xbd");
	assert_string_equal(json_string_value(json_object_get(object, "v7")),
	    "ok \xe2\x82\xac \xef\xbf\xbd end");
	assert_non_null(json_object_get(object, "k\xef\xbf\xbdy"));
	json_decref(object);
}

/* A value longer than a line is cut on a character, and a JSON line still parses. */
static void
test_long_value_is_cut_on_a_character_and_marked(void **state)
{
	static char value[20000];
	const char *line;
	json_error_t error;
	json_t *object;
	size_t len;

	/* 3-byte characters, with a quote in between to need escapes near the cut. */
	for (len = 0; len + 4 < sizeof value; len += 4)
		memcpy(value + len, "\xe2\x82\xac\"", 4);
	value[len] = '\0';
	for (int format = 0; format < 2; format++) {
		FILE *tmp;
		int saved;

		log_set_format(format ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT);
		capture_begin(&saved, &tmp);
		log_info("long", "value", value, "after", "x", NULL);
		line = capture_end(saved, tmp);
		len = strlen(line);
		assert_true(len <= 8192);
		assert_true(utf8_valid(line, len));
		assert_int_equal(line[len - 1], '\n');
		assert_null(strstr(line, "after"));
		if (!format) {
			assert_non_null(strstr(line, "\" truncated=true\n"));
			continue;
		}
		object = json_loads(line + 3, 0, &error);
		assert_non_null(object);
		assert_true(json_is_true(json_object_get(object, "truncated")));
		assert_true(json_string_length(json_object_get(object, "value")) > 4000);
		json_decref(object);
	}
	log_set_format(LOG_FORMAT_TEXT);
}

static void
test_levels_below_threshold_are_dropped(void **state)
{
	FILE *tmp;
	int saved;

	capture_begin(&saved, &tmp);
	log_debug("hidden", NULL);
	log_error("shown", NULL);
	assert_string_equal(capture_end(saved, tmp), "<3>level=error msg=shown\n");
}

static void
test_redact_keeps_prefix_and_length_only(void **state)
{
	char out[LOG_REDACT_SIZE];

	assert_string_equal(log_redact("0a1b2c3d4e5f60718293a4b5c6d7e8f9", out),
	    "0a1b2c3d…(32)");
	assert_string_equal(log_redact("short-secret", out), "…(12)");
	assert_string_equal(log_redact(NULL, out), "(none)");
	/* The prefix never splits a character. */
	assert_string_equal(log_redact("abcdefg\xc3\xa9hijklmnopq", out), "abcdefg…(19)");
}

static void
test_level_and_format_names_parse(void **state)
{
	enum log_level level;
	enum log_format format;

	assert_int_equal(log_level_from_string("debug", &level), 0);
	assert_int_equal(level, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_from_string("verbose", &level), -1);
	assert_int_equal(log_format_from_string("json", &format), 0);
	assert_int_equal(format, LOG_FORMAT_JSON);
	assert_int_equal(log_format_from_string("xml", &format), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_line_quotes_only_values_that_need_it),
		cmocka_unit_test(test_json_line_escapes_values),
		cmocka_unit_test(test_text_line_with_invalid_bytes_is_valid_utf8),
		cmocka_unit_test(test_json_line_with_invalid_bytes_parses),
		cmocka_unit_test(test_long_value_is_cut_on_a_character_and_marked),
		cmocka_unit_test(test_levels_below_threshold_are_dropped),
		cmocka_unit_test(test_redact_keeps_prefix_and_length_only),
		cmocka_unit_test(test_level_and_format_names_parse),
	};

	return cmocka_run_group_tests_name("log", tests, setup, NULL);
}
