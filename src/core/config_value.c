/*
 * One option's value: parsed from the text the file gives (bool, duration, size,
 * mode, host:port lists, enums), checked against the option's bounds with a message
 * in its own units, formatted back for the docs, compared for reloads.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "config_options.h"
#include "xmalloc.h"

#define CONFIG_HOST_SIZE 64
#define CONFIG_PORT_SIZE 8
#define CONFIG_BAD_HOST "host must be an IPv4 address, [IPv6 address] or localhost"

/* Read the decimal or octal digits at *s; -1 if none, else 0 with overflow flagged. */
static int
parse_digits(const char **s, int base, int64_t *out, int *overflow)
{
	const char *p = *s;
	int64_t n = 0;

	*overflow = 0;
	if (*p < '0' || *p >= '0' + base)
		return -1;
	for (; *p >= '0' && *p < '0' + base; p++) {
		if (n > (INT64_MAX - (*p - '0')) / base)
			*overflow = 1;
		else
			n = n * base + (*p - '0');
	}
	*s = p;
	*out = n;
	return 0;
}

/* Parse yes/no, true/false, on/off or 1/0 in any case. */
int
config_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Parse "250ms", "10s", "5m", "1h" or "10" (seconds) into milliseconds. */
int
config_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = {
		{ "", SECOND }, { "ms", 1 }, { "s", SECOND }, { "m", MINUTE }, { "h", HOUR },
	};
	int64_t n;
	int overflow;
	size_t i;

	if (parse_digits(&s, 10, &n, &overflow) != 0)
		return -1;
	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(s, units[i].suffix) != 0)
			continue;
		if (overflow || n > INT64_MAX / units[i].ms)
			return -2;
		*ms = n * units[i].ms;
		return 0;
	}
	return -1;
}

/* Parse "512", "64K", "8M" or "1G" (1024-based, either case) into bytes. */
int
config_parse_size(const char *s, int64_t *bytes)
{
	int64_t n, unit;
	int overflow;

	if (parse_digits(&s, 10, &n, &overflow) != 0)
		return -1;
	if (s[0] == '\0')
		unit = 1;
	else if (s[1] != '\0')
		return -1;
	else if (s[0] == 'K' || s[0] == 'k')
		unit = KIB;
	else if (s[0] == 'M' || s[0] == 'm')
		unit = MIB;
	else if (s[0] == 'G' || s[0] == 'g')
		unit = GIB;
	else
		return -1;
	if (overflow || n > INT64_MAX / unit)
		return -2;
	*bytes = n * unit;
	return 0;
}

/* Parse octal permission bits, with or without the leading 0. */
int
config_parse_mode(const char *s, unsigned int *mode)
{
	int64_t n;
	int overflow;

	if (parse_digits(&s, 8, &n, &overflow) != 0 || *s != '\0')
		return -1;
	if (overflow || n > UINT_MAX)
		return -2;
	*mode = (unsigned int)n;
	return 0;
}

/* Copy a part of a host:port if it fits. */
static int
copy_part(char *dst, size_t dstlen, const char *src, size_t len)
{
	if (len >= dstlen)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/* Split and check one host:port; NULL, or what is wrong with it. */
static const char *
hostport_split(const char *hostport, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	struct in6_addr addr6;
	struct in_addr addr4;
	const char *start, *end, *colon, *p;
	char buf[CONFIG_HOST_SIZE];
	int64_t n;
	int overflow;

	if (hostport[0] == '[') {
		start = hostport + 1;
		if ((end = strchr(start, ']')) == NULL)
			return "no closing ']'";
		if (end[1] == '\0')
			return "no port (write host:port)";
		if (end[1] != ':')
			return "expected ':' after ']'";
		colon = end + 1;
	} else {
		start = hostport;
		if ((colon = strrchr(hostport, ':')) == NULL)
			return "no port (write host:port)";
		end = colon;
		if (memchr(start, ':', end - start) != NULL)
			return "an IPv6 address needs brackets: [address]:port";
	}
	if (copy_part(buf, sizeof buf, start, end - start) != 0)
		return CONFIG_BAD_HOST;
	if (hostport[0] == '[') {
		if (inet_pton(AF_INET6, buf, &addr6) != 1)
			return CONFIG_BAD_HOST;
	} else if (strcmp(buf, "localhost") != 0 && inet_pton(AF_INET, buf, &addr4) != 1)
		return CONFIG_BAD_HOST;

	p = colon + 1;
	if (parse_digits(&p, 10, &n, &overflow) != 0 || *p != '\0' || overflow ||
	    n > 65535)
		return "port must be a number from 0 to 65535";

	if (copy_part(host, hostlen, buf, strlen(buf)) != 0 ||
	    copy_part(port, portlen, colon + 1, strlen(colon + 1)) != 0)
		return "too long";
	return NULL;
}

/* Split "host:port" / "[v6]:port" into parts; 0 on success. */
int
config_split_hostport(const char *hostport, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	return hostport_split(hostport, host, hostlen, port, portlen) == NULL ? 0 : -1;
}

/* Where an option lives in a configuration. */
static void *
option_field(void *base, const struct config_option *option)
{
	return (char *)base + option->offset;
}

static const void *
option_field_const(const void *base, const struct config_option *option)
{
	return (const char *)base + option->offset;
}

/* Where a list option keeps its length. */
static size_t *
option_count(void *base, const struct config_option *option)
{
	return (size_t *)(void *)((char *)base + option->count_offset);
}

/* Free a list of strings. */
static void
list_free(char **list, size_t count)
{
	size_t i;

	for (i = 0; i < count; i++)
		free(list[i]);
	free(list);
}

/* Free what an option holds and reset it. */
void
config_option_clear(void *config, const struct config_option *option)
{
	char **string;
	char ***list;
	size_t *count;

	switch (option->type) {
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_PATH:
		string = option_field(config, option);
		free(*string);
		*string = NULL;
		break;
	case CONFIG_TYPE_LIST:
		list = option_field(config, option);
		count = option_count(config, option);
		list_free(*list, *count);
		*list = NULL;
		*count = 0;
		break;
	default:
		break;
	}
}

/* Write a size the way the file would: the largest unit that divides it. */
static void
format_size(int64_t bytes, char *buf, size_t len)
{
	if (bytes != 0 && bytes % GIB == 0)
		snprintf(buf, len, "%" PRId64 "G", bytes / GIB);
	else if (bytes != 0 && bytes % MIB == 0)
		snprintf(buf, len, "%" PRId64 "M", bytes / MIB);
	else if (bytes != 0 && bytes % KIB == 0)
		snprintf(buf, len, "%" PRId64 "K", bytes / KIB);
	else
		snprintf(buf, len, "%" PRId64, bytes);
}

/* Write a duration the way the file would: the largest unit that divides it. */
static void
format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0s");
	else if (ms % HOUR == 0)
		snprintf(buf, len, "%" PRId64 "h", ms / HOUR);
	else if (ms % MINUTE == 0)
		snprintf(buf, len, "%" PRId64 "m", ms / MINUTE);
	else if (ms % SECOND == 0)
		snprintf(buf, len, "%" PRId64 "s", ms / SECOND);
	else
		snprintf(buf, len, "%" PRId64 "ms", ms);
}

/* Write a bound in the units of its option's type. */
void
config_format_bound(const struct config_option *option, int64_t value, char *buf, size_t len)
{
	switch (option->type) {
	case CONFIG_TYPE_SIZE:
		format_size(value, buf, len);
		break;
	case CONFIG_TYPE_DURATION:
		format_duration(value, buf, len);
		break;
	case CONFIG_TYPE_MODE:
		snprintf(buf, len, "%04" PRIo64, value);
		break;
	default:
		snprintf(buf, len, "%" PRId64, value);
		break;
	}
}

/* "must be between 1K and 64M", in the option's own units. */
static void
format_range_error(const struct config_option *option, char *err, size_t errlen)
{
	char min[32], max[32];

	config_format_bound(option, option->min, min, sizeof min);
	config_format_bound(option, option->max, max, sizeof max);
	snprintf(err, errlen, "must be between %s and %s", min, max);
}

/* "one of: full, normal". */
void
config_format_values(const char *const *values, char *buf, size_t len)
{
	size_t used, i;

	used = snprintf(buf, len, "one of:");
	for (i = 0; values[i] != NULL && used < len; i++)
		used += snprintf(buf + used, len - used, "%s %s", i > 0 ? "," : "", values[i]);
}

/* Is value one of the NULL-terminated values? */
static int
values_contain(const char *const *values, const char *value)
{
	for (; *values != NULL; values++) {
		if (strcmp(*values, value) == 0)
			return 1;
	}
	return 0;
}

/* Parse a list of host:port separated by blanks or commas. */
static int
parse_list(const char *value, char ***out, size_t *out_count, char *err, size_t errlen)
{
	char host[CONFIG_HOST_SIZE], port[CONFIG_PORT_SIZE];
	char **list = NULL, *item;
	const char *why;
	size_t count = 0, len, i;

	for (;;) {
		value += strspn(value, " \t,");
		if (*value == '\0')
			break;
		len = strcspn(value, " \t,");
		item = xstrndup(value, len);
		value += len;
		if ((why = hostport_split(item, host, sizeof host, port, sizeof port)) != NULL)
			snprintf(err, errlen, "'%s': %s", item, why);
		for (i = 0; why == NULL && i < count; i++) {
			if (strcmp(list[i], item) == 0) {
				snprintf(err, errlen, "'%s' is listed twice", item);
				why = "twice";
			}
		}
		if (why != NULL) {
			free(item);
			list_free(list, count);
			return -1;
		}
		list = xreallocarray(list, count + 1, sizeof *list);
		list[count++] = item;
	}
	*out = list;
	*out_count = count;
	return 0;
}

/* Turn a parser's result into a message; 0 if the value was good. */
static int
check_parsed(const struct config_option *option, int result, int64_t n, const char *value,
    const char *what, char *err, size_t errlen)
{
	if (result == -1) {
		snprintf(err, errlen, "'%s' is not %s", value, what);
		return -1;
	}
	if (result == -2 || n < option->min || n > option->max) {
		format_range_error(option, err, errlen);
		return -1;
	}
	return 0;
}

/* Set one option from its text; on error, err says what is wrong and nothing changes. */
int
config_option_set(void *config, const struct config_option *option, const char *value,
    char *err, size_t errlen)
{
	void *field = option_field(config, option);
	char values[128], **list, *end;
	unsigned int mode;
	size_t count;
	long long integer;
	int64_t n;
	int result, flag;

	if (*value == '\0' && option->type != CONFIG_TYPE_STRING &&
	    option->type != CONFIG_TYPE_PATH && option->type != CONFIG_TYPE_LIST) {
		snprintf(err, errlen, "empty value");
		return -1;
	}

	switch (option->type) {
	case CONFIG_TYPE_STRING:
		if (option->values != NULL && !values_contain(option->values, value)) {
			config_format_values(option->values, values, sizeof values);
			snprintf(err, errlen, "must be %s", values);
			return -1;
		}
		config_option_clear(config, option);
		*(char **)field = xstrdup(value);
		break;
	case CONFIG_TYPE_PATH:
		if (option->max != 0 && strlen(value) > (size_t)option->max) {
			snprintf(err, errlen, "must be at most %" PRId64 " bytes long",
			    option->max);
			return -1;
		}
		config_option_clear(config, option);
		*(char **)field = *value == '\0' ? NULL : xstrdup(value);
		break;
	case CONFIG_TYPE_BOOL:
		if (config_parse_bool(value, &flag) != 0) {
			snprintf(err, errlen, "must be one of: yes, no, true, false, on, off, 1, 0");
			return -1;
		}
		*(int *)field = flag;
		break;
	case CONFIG_TYPE_INTEGER:
		errno = 0;
		integer = strtoll(value, &end, 10);
		result = *end != '\0' || end == value ? -1 : errno == ERANGE ? -2 : 0;
		if (check_parsed(option, result, integer, value, "an integer", err, errlen) != 0)
			return -1;
		*(int *)field = (int)integer;
		break;
	case CONFIG_TYPE_SIZE:
		result = config_parse_size(value, &n);
		if (check_parsed(option, result, n, value,
		    "a size (a whole number of bytes, or with K, M or G)", err, errlen) != 0)
			return -1;
		*(size_t *)field = (size_t)n;
		break;
	case CONFIG_TYPE_DURATION:
		result = config_parse_duration(value, &n);
		if (check_parsed(option, result, n, value,
		    "a duration (a whole number with ms, s, m or h; alone, seconds)",
		    err, errlen) != 0)
			return -1;
		*(int64_t *)field = n;
		break;
	case CONFIG_TYPE_MODE:
		mode = 0;
		result = config_parse_mode(value, &mode);
		if (check_parsed(option, result, mode, value, "an octal mode such as 0660",
		    err, errlen) != 0)
			return -1;
		*(unsigned int *)field = mode;
		break;
	case CONFIG_TYPE_ENUM:
		if (!values_contain(option->values, value) ||
		    option->parse_enum(value, field) != 0) {
			config_format_values(option->values, values, sizeof values);
			snprintf(err, errlen, "must be %s", values);
			return -1;
		}
		break;
	case CONFIG_TYPE_LIST:
		if (parse_list(value, &list, &count, err, errlen) != 0)
			return -1;
		config_option_clear(config, option);
		*(char ***)field = list;
		*option_count(config, option) = count;
		break;
	}
	return 0;
}

/* Equal strings, where NULL only equals NULL. */
static int
string_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Do two configurations hold the same value for an option? */
int
config_option_equal(const void *a, const void *b, const struct config_option *option)
{
	const void *fa = option_field_const(a, option), *fb = option_field_const(b, option);
	char *const *la, *const *lb;
	size_t count, i;

	switch (option->type) {
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_PATH:
		return string_equal(*(char *const *)fa, *(char *const *)fb);
	case CONFIG_TYPE_LIST:
		count = *(const size_t *)(const void *)((const char *)a + option->count_offset);
		if (count != *(const size_t *)(const void *)((const char *)b +
		    option->count_offset))
			return 0;
		la = *(char **const *)fa;
		lb = *(char **const *)fb;
		for (i = 0; i < count; i++) {
			if (strcmp(la[i], lb[i]) != 0)
				return 0;
		}
		return 1;
	default:
		return memcmp(fa, fb, option->size) == 0;
	}
}

