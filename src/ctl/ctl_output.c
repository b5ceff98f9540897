/* pushrelayctl's output: text for people in aligned columns, JSON for scripts. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "xmalloc.h"

#include "ctl.h"

/* A copy of s with control characters (which could drive the terminal) as '?'. */
char *
ctl_sanitize(const char *s)
{
	char *copy = xstrdup(s);

	for (char *p = copy; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	return copy;
}

/* The width of UTF-8 text in columns, one per code point. */
static size_t
ctl_width(const char *s)
{
	size_t width = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			width++;
	}
	return width;
}

/* A JSON value as text for people: "-" for null or absent, yes/no for booleans. */
char *
ctl_text(const json_t *value)
{
	char *text, *clean;

	if (value == NULL || json_is_null(value))
		return xstrdup("-");
	if (json_is_string(value))
		return ctl_sanitize(json_string_value(value));
	if (json_is_true(value))
		return xstrdup("yes");
	if (json_is_false(value))
		return xstrdup("no");
	if (json_is_integer(value))
		return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(value));
	if (json_is_real(value))
		return xasprintf("%g", json_real_value(value));
	if ((text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		fatalx("json_dumps: out of memory");
	clean = ctl_sanitize(text);
	free(text);
	return clean;
}

/* A field of an object as text. */
char *
ctl_field(const json_t *object, const char *key)
{
	return ctl_text(json_object_get(object, key));
}

/* An empty table of so many columns. */
void
ctl_table_init(struct ctl_table *table, size_t columns)
{
	memset(table, 0, sizeof *table);
	table->columns = columns;
}

/* Add a row of cells, taking ownership of the strings. */
void
ctl_table_add_owned(struct ctl_table *table, char **cells)
{
	table->cells = xreallocarray(table->cells, (table->rows + 1) * table->columns,
	    sizeof *table->cells);
	memcpy(table->cells + table->rows * table->columns, cells,
	    table->columns * sizeof *cells);
	table->rows++;
}

/* Add a row of literal cells (copied, sanitized). */
void
ctl_table_add(struct ctl_table *table, ...)
{
	char *cells[16];
	va_list ap;

	va_start(ap, table);
	for (size_t i = 0; i < table->columns; i++)
		cells[i] = ctl_sanitize(va_arg(ap, const char *));
	va_end(ap);
	ctl_table_add_owned(table, cells);
}

/* Print the rows in columns two spaces apart, without trailing blanks; then free. */
void
ctl_table_print(struct ctl_table *table)
{
	size_t widths[16] = { 0 }, w;
	char *cell;

	for (size_t r = 0; r < table->rows; r++) {
		for (size_t c = 0; c < table->columns; c++) {
			if ((w = ctl_width(table->cells[r * table->columns + c])) > widths[c])
				widths[c] = w;
		}
	}
	for (size_t r = 0; r < table->rows; r++) {
		for (size_t c = 0; c < table->columns; c++) {
			cell = table->cells[r * table->columns + c];
			if (c + 1 == table->columns)
				printf("%s\n", cell);
			else
				printf("%s%*s", cell, (int)(widths[c] - ctl_width(cell) + 2), "");
		}
	}
	for (size_t i = 0; i < table->rows * table->columns; i++)
		free(table->cells[i]);
	free(table->cells);
	table->cells = NULL;
	table->rows = 0;
}

/* Print a JSON value on one line. */
void
ctl_print_json(const json_t *value)
{
	if (json_dumpf(value, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0)
		fatalx("json_dumpf: cannot write");
	putchar('\n');
}
