/*
 * Tests for secret_file.c: regular files only, a size limit, exact bytes, the mode
 * warning, and a copy that is wiped before it is freed. free() and log_write() are
 * replaced (-Wl,--wrap) to see the buffer as it is freed and the warnings logged.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <fcntl.h>
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
#include "secret_file.h"

static char dir[64];
static char path[128];

/* What the replaced free() saw of the one buffer it watches. */
static struct {
	const void *watch;
	size_t len;
	int freed;
	int all_zero;
} freed;

/* What the replaced log_write() was last given. */
static struct {
	int count;
	enum log_level level;
	char msg[128];
	char key[32];
	char value[128];
} logged;

void __real_free(void *ptr);

/* free(), noting whether the watched buffer was wiped first. */
void
__wrap_free(void *ptr)
{
	if (ptr != NULL && ptr == freed.watch) {
		const unsigned char *p = ptr;

		freed.freed = 1;
		freed.all_zero = 1;
		for (size_t i = 0; i < freed.len; i++) {
			if (p[i] != 0)
				freed.all_zero = 0;
		}
		freed.watch = NULL;
	}
	__real_free(ptr);
}

/* log_write(), keeping the message and its first field. */
void
__wrap_log_write(enum log_level level, const char *msg, ...)
{
	const char *key, *value;
	va_list ap;

	logged.count++;
	logged.level = level;
	snprintf(logged.msg, sizeof logged.msg, "%s", msg);
	va_start(ap, msg);
	key = va_arg(ap, const char *);
	value = key != NULL ? va_arg(ap, const char *) : NULL;
	va_end(ap);
	snprintf(logged.key, sizeof logged.key, "%s", key != NULL ? key : "");
	snprintf(logged.value, sizeof logged.value, "%s", value != NULL ? value : "");
}

/* Write len bytes of data to path with mode. */
static void
put(const char *data, size_t len, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	assert_true(fd != -1);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* Expect secret_file_read() to refuse with exactly why, leaving out zeroed. */
static void
assert_refused(const char *file, size_t max, const char *why_expected)
{
	struct secret_file out = { (char *)"x", 1 };
	char why[128] = "";

	assert_int_equal(secret_file_read(file, "test secret", max, &out, why, sizeof why),
	    -1);
	assert_string_equal(why, why_expected);
	assert_null(out.data);
	assert_int_equal(out.len, 0);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_secret_file.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/secret", dir);
	memset(&freed, 0, sizeof freed);
	memset(&logged, 0, sizeof logged);
	return 0;
}

static int
teardown(void **state)
{
	char fifo[160];

	(void)state;
	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	unlink(fifo);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void
test_secret_file_reads_exact_bytes_with_a_nul_after(void **state)
{
	static const char data[] = "line one\n\0binary\xff\r\nno newline at the end";
	struct secret_file out;
	char why[128] = "";

	(void)state;
	put(data, sizeof data - 1, 0600);
	assert_int_equal(secret_file_read(path, "test secret", sizeof data - 1, &out, why,
	    sizeof why), 0);
	assert_int_equal(out.len, sizeof data - 1);
	assert_memory_equal(out.data, data, sizeof data - 1);
	assert_int_equal(out.data[out.len], '\0');
	assert_string_equal(why, "");
	assert_int_equal(logged.count, 0);	/* 0600: no warning */
	secret_file_free(&out);
	assert_null(out.data);
	assert_int_equal(out.len, 0);
}

static void
test_secret_file_reads_an_empty_file(void **state)
{
	struct secret_file out;
	char why[128] = "";

	(void)state;
	put("", 0, 0400);
	assert_int_equal(secret_file_read(path, "test secret", 16, &out, why, sizeof why),
	    0);
	assert_int_equal(out.len, 0);
	assert_string_equal(out.data, "");
	secret_file_free(&out);
}

static void
test_secret_file_refuses_a_directory(void **state)
{
	(void)state;
	assert_refused(dir, 1024, "not a regular file");
}

/* Opening a FIFO with no writer would block: it is refused at once instead. */
static void
test_secret_file_refuses_a_fifo_without_blocking(void **state)
{
	char fifo[160];

	(void)state;
	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	alarm(10);	/* a blocking open would end the test here */
	assert_refused(fifo, 1024, "not a regular file");
	alarm(0);
}

static void
test_secret_file_refuses_a_device(void **state)
{
	(void)state;
	assert_refused("/dev/null", 1024, "not a regular file");
}

/* max bytes are read; one more is refused with the limit in the reason. */
static void
test_secret_file_refuses_a_file_over_the_limit(void **state)
{
	struct secret_file out;
	char why[128] = "";

	(void)state;
	put("0123456789", 10, 0600);
	assert_int_equal(secret_file_read(path, "test secret", 10, &out, why, sizeof why),
	    0);
	assert_int_equal(out.len, 10);
	secret_file_free(&out);
	assert_refused(path, 9, "larger than 9 bytes");
}

static void
test_secret_file_reports_a_missing_file_with_strerror(void **state)
{
	char missing[160];

	(void)state;
	snprintf(missing, sizeof missing, "%s/missing", dir);
	assert_refused(missing, 1024, "No such file or directory");
}

static void
test_secret_file_free_wipes_the_copy_before_freeing_it(void **state)
{
	struct secret_file out;
	char why[128];

	(void)state;
	put("hunter2-hunter2\n", 16, 0600);
	assert_int_equal(secret_file_read(path, NULL, 64, &out, why, sizeof why), 0);
	freed.watch = out.data;
	freed.len = out.len + 1;
	secret_file_free(&out);
	assert_true(freed.freed);
	assert_true(freed.all_zero);
}

/* The warning the daemon's tests look for, with the path; none with what NULL. */
static void
test_secret_file_warns_when_group_or_others_can_read(void **state)
{
	struct secret_file out;
	char why[128];

	(void)state;
	put("secret\n", 7, 0640);
	assert_int_equal(secret_file_read(path, "API key file", 64, &out, why, sizeof why),
	    0);
	secret_file_free(&out);
	assert_int_equal(logged.count, 1);
	assert_int_equal(logged.level, LOG_LEVEL_WARN);
	assert_string_equal(logged.msg, "API key file is readable by group or others");
	assert_string_equal(logged.key, "path");
	assert_string_equal(logged.value, path);

	assert_int_equal(secret_file_read(path, NULL, 64, &out, why, sizeof why), 0);
	secret_file_free(&out);
	assert_int_equal(logged.count, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_secret_file_reads_exact_bytes_with_a_nul_after),
		T(test_secret_file_reads_an_empty_file),
		T(test_secret_file_refuses_a_directory),
		T(test_secret_file_refuses_a_fifo_without_blocking),
		T(test_secret_file_refuses_a_device),
		T(test_secret_file_refuses_a_file_over_the_limit),
		T(test_secret_file_reports_a_missing_file_with_strerror),
		T(test_secret_file_free_wipes_the_copy_before_freeing_it),
		T(test_secret_file_warns_when_group_or_others_can_read),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
