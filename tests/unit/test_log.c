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

#include "log.h"

/* Capture what the logger writes to stderr while fn runs. */
static char captured[8192];

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
		cmocka_unit_test(test_levels_below_threshold_are_dropped),
		cmocka_unit_test(test_redact_keeps_prefix_and_length_only),
		cmocka_unit_test(test_level_and_format_names_parse),
	};

	return cmocka_run_group_tests_name("log", tests, setup, NULL);
}
