/*
 * Inside the configuration module: the option table and what works on one option,
 * shared by config.c (reading a file), config_value.c (one value, parsed and
 * formatted) and config_options.c (the table, the example file and the man page).
 * Nothing outside src/core/config*.c includes it: everyone else has config.h.
 * Same threads as config.h: the main thread, at start-up and on reload.
 */
#ifndef PUSHRELAY_CONFIG_OPTIONS_H
#define PUSHRELAY_CONFIG_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CONFIG_ERROR_SIZE 512

#define KIB ((int64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define SECOND ((int64_t)1000)
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)

enum config_type {
	CONFIG_TYPE_STRING,	/* char *; values, when set, lists the allowed ones */
	CONFIG_TYPE_PATH,	/* char *, NULL when empty; max, when set, is the longest */
	CONFIG_TYPE_BOOL,	/* int, 0 or 1 */
	CONFIG_TYPE_INTEGER,	/* int, from min to max */
	CONFIG_TYPE_SIZE,	/* size_t bytes, from min to max */
	CONFIG_TYPE_DURATION,	/* int64_t milliseconds, from min to max */
	CONFIG_TYPE_MODE,	/* unsigned int permission bits, from min to max */
	CONFIG_TYPE_ENUM,	/* an enum set by parse_enum from one of values */
	CONFIG_TYPE_LIST,	/* char ** of host:port, its count at count_offset */
};

/*
 * A kind of named section, [NAME "instance"], of which a file may hold several: each
 * instance is a struct of instance_size in an array that struct config keeps.
 */
struct config_kind {
	const char *name;
	size_t instance_size;
	size_t array_offset;		/* the array's pointer in struct config */
	size_t count_offset;		/* its length in struct config */
	size_t line_offset;		/* the instance's int line (its header's) */
	const char *example_name;	/* the instance the example file shows */
	const char *help;
};

struct config_option {
	const char *section;
	const char *key;
	enum config_type type;
	size_t offset;
	size_t size;
	size_t count_offset;
	const char *default_value;
	int64_t min;
	int64_t max;
	const char *const *values;
	int (*parse_enum)(const char *value, void *field);
	int reloadable;
	const char *help;
	const struct config_kind *kind;	/* NULL for a plain [section] */
};

/* Every option, grouped by section in the order the example file shows them. */
extern const struct config_option config_options[];
extern const size_t config_option_count;
/* The kinds of named section, NULL-terminated. */
extern const struct config_kind *const config_kinds[];

/*
 * Set one option of base (struct config, or an instance of its kind) from its text;
 * 0, or -1 with err saying what is wrong, and nothing changed.
 */
int config_option_set(void *base, const struct config_option *option, const char *value,
    char *err, size_t errlen);
/* Free what an option of base holds and reset it. */
void config_option_clear(void *base, const struct config_option *option);
/* Do a and b (two structs of the option's kind) hold the same value for it? */
int config_option_equal(const void *a, const void *b, const struct config_option *option);
/* A bound as the file would write it, in the units of the option's type: "64M". */
void config_format_bound(const struct config_option *option, int64_t value, char *buf,
    size_t len);
/* "one of: full, normal". */
void config_format_values(const char *const *values, char *buf, size_t len);

#endif
