/* Tests for apikey.c: key files, generation and checks. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "apikey.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	snprintf(f->dir, sizeof f->dir, "/tmp/test_apikey.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/api-keys", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void
test_generate_creates_private_file_with_one_key(void **state)
{
	struct fixture *f = *state;
	struct apikeys *keys;
	char err[256], line[256];
	struct stat st;
	FILE *fp;

	assert_int_equal(apikey_generate_file(f->path, err, sizeof err), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	fp = fopen(f->path, "r");
	assert_non_null(fgets(line, sizeof line, fp));
	fclose(fp);
	line[strcspn(line, "\n")] = '\0';
	assert_int_equal(strlen(line), 64);
	assert_int_equal(apikey_load(f->path, &keys, err, sizeof err), 0);
	assert_int_equal(apikey_count(keys), 1);
	assert_int_equal(apikey_check(keys, line, strlen(line)), 1);
	apikey_free(keys);
}

static void
test_generate_never_overwrites(void **state)
{
	struct fixture *f = *state;
	char err[256];

	write_file(f->path, "existing-key-0123456789\n");
	assert_int_equal(apikey_generate_file(f->path, err, sizeof err), 1);
}

static void
test_load_reads_several_keys_and_skips_comments(void **state)
{
	struct fixture *f = *state;
	struct apikeys *keys;
	char err[256];

	write_file(f->path, "# operators\nfirst-key-0123456789\n\n  second-key-0123456789  # ci\n");
	assert_int_equal(apikey_load(f->path, &keys, err, sizeof err), 0);
	assert_int_equal(apikey_count(keys), 2);
	assert_int_equal(apikey_check(keys, "first-key-0123456789", 20), 1);
	assert_int_equal(apikey_check(keys, "second-key-0123456789", 21), 1);
	assert_int_equal(apikey_check(keys, "first-key-012345678", 19), 0);
	assert_int_equal(apikey_check(keys, "# operators", 11), 0);
	assert_int_equal(apikey_check(keys, "", 0), 0);
	apikey_free(keys);
}

static void
test_load_rejects_empty_short_and_missing_files(void **state)
{
	struct fixture *f = *state;
	struct apikeys *keys = NULL;
	char err[256], expected[256];

	write_file(f->path, "# nothing here\n");
	assert_int_equal(apikey_load(f->path, &keys, err, sizeof err), -1);
	snprintf(expected, sizeof expected, "API key file %s has no keys", f->path);
	assert_string_equal(err, expected);
	write_file(f->path, "ok-key-0123456789abc\nshort\n");
	assert_int_equal(apikey_load(f->path, &keys, err, sizeof err), -1);
	snprintf(expected, sizeof expected,
	    "%s:2: an API key must be 16 to 512 characters without spaces", f->path);
	assert_string_equal(err, expected);
	unlink(f->path);
	assert_int_equal(apikey_load(f->path, &keys, err, sizeof err), -1);
	snprintf(expected, sizeof expected, "API key file %s: No such file or directory",
	    f->path);
	assert_string_equal(err, expected);
	assert_null(keys);
}

static void
test_check_without_keys_refuses_everything(void **state)
{
	assert_int_equal(apikey_check(NULL, "anything-at-all-here", 20), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate_creates_private_file_with_one_key,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_generate_never_overwrites, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_reads_several_keys_and_skips_comments,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_rejects_empty_short_and_missing_files,
		    setup, teardown),
		cmocka_unit_test(test_check_without_keys_refuses_everything),
	};

	return cmocka_run_group_tests_name("apikey", tests, NULL, NULL);
}
