/*
 * What the libFuzzer targets share: quiet logs, a deterministic jansson, and the
 * checks every target makes of the text it sees produced. A failed check prints
 * what failed and aborts, which libFuzzer reports as a crash with the input saved.
 */
#ifndef PUSHRELAY_FUZZ_H
#define PUSHRELAY_FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Print why the input is wrong and abort. */
static void __attribute__((noreturn, format(printf, 1, 2), unused))
fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz check failed: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* Parsers log only errors, and jansson hashes the same way in every run. */
static void __attribute__((unused))
fuzz_setup(void)
{
	log_init();
	log_set_level(LOG_LEVEL_ERROR);
	json_object_seed(1);
}

/* Abort unless s, text bound for JSON or a log line, is valid UTF-8 (NULL is fine). */
static void __attribute__((unused))
fuzz_check_utf8(const char *what, const char *s)
{
	if (s != NULL && !utf8_valid(s, strlen(s)))
		fuzz_fail("%s is not valid UTF-8: '%s'", what, s);
}

/* Abort unless value serializes (jansson refuses text that is not UTF-8). */
static void __attribute__((unused))
fuzz_check_json(const char *what, const json_t *value)
{
	char *text;

	if (value == NULL)
		return;
	if ((text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		fuzz_fail("%s does not serialize", what);
	fuzz_check_utf8(what, text);
	free(text);
}

/* Abort unless the two strings are equal (NULL equals only NULL). */
static void __attribute__((unused))
fuzz_check_same(const char *what, const char *a, const char *b)
{
	if ((a == NULL || b == NULL) ? a != b : strcmp(a, b) != 0)
		fuzz_fail("%s differs: '%s' and '%s'", what, a != NULL ? a : "(null)",
		    b != NULL ? b : "(null)");
}

/* A NUL-terminated copy of the input, for the parsers that take C strings. */
static char * __attribute__((unused))
fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
