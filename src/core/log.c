/* Structured logging to stderr; libevent's own messages are routed here too. */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "utf8.h"

#define LOG_LINE_MAX 8192
/* Kept free to close a cut value and the line: '"', ",\"truncated\":true}", "\n\0". */
#define LOG_LINE_RESERVE 32

static enum log_level log_level = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;
static int log_journal;

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };
/* syslog priorities for the journal's <N> line prefix */
static const int log_level_priority[] = { 3, 4, 6, 7 };

/*
 * A line is built from whole pieces (a character, an escape, a field's opening): a
 * piece that does not fit marks the line truncated and nothing more is added, so a
 * line is never cut inside a character or an escape.
 */
struct log_line {
	char buf[LOG_LINE_MAX];
	size_t len;
	int truncated;
};

/* Append one piece whole, or mark the line truncated; 0 if it went in. */
static int
line_append(struct log_line *line, const char *s, size_t n)
{
	if (line->truncated || n > sizeof line->buf - LOG_LINE_RESERVE - line->len) {
		line->truncated = 1;
		return -1;
	}
	memcpy(line->buf + line->len, s, n);
	line->len += n;
	return 0;
}

static int
line_puts(struct log_line *line, const char *s)
{
	return line_append(line, s, strlen(s));
}

/* Append what closes a line into the reserved room, truncated or not. */
static void
line_close(struct log_line *line, const char *s)
{
	size_t n = strlen(s);

	memcpy(line->buf + line->len, s, n);
	line->len += n;
}

/* Does a text-format value need quotes? */
static int
text_needs_quotes(const char *v)
{
	if (*v == '\0')
		return 1;
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;
		if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
			return 1;
	}
	return 0;
}

/*
 * Append a value, escaped for a quoted text or JSON string when escape is set. Bytes
 * that are not UTF-8 become U+FFFD, so every line is valid UTF-8.
 */
static void
line_value(struct log_line *line, const char *v, int escape)
{
	char esc[8];
	size_t n;

	while (*v != '\0' && !line->truncated) {
		unsigned char c = (unsigned char)*v;

		if (c >= 0x80) {
			/* strnlen stops at the NUL: a short sequence at the end is refused. */
			if ((n = utf8_char_len(v, strnlen(v, 4))) == 0) {
				line_puts(line, UTF8_REPLACEMENT);
				n = 1;
			} else
				line_append(line, v, n);
			v += n;
			continue;
		}
		v++;
		if (!escape) {
			line_append(line, (const char *)&c, 1);
			continue;
		}
		switch (c) {
		case '"': line_puts(line, "\\\""); break;
		case '\\': line_puts(line, "\\\\"); break;
		case '\n': line_puts(line, "\\n"); break;
		case '\r': line_puts(line, "\\r"); break;
		case '\t': line_puts(line, "\\t"); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				snprintf(esc, sizeof esc, "\\u%04x", c);
				line_puts(line, esc);
			} else
				line_append(line, (const char *)&c, 1);
		}
	}
}

/* Append key=value (text) or ,"key":"value" (JSON); a quoted value is always closed. */
static void
line_field(struct log_line *line, const char *key, const char *value)
{
	if (value == NULL)
		value = "";
	if (line->truncated)
		return;
	if (log_format == LOG_FORMAT_JSON) {
		if (line_puts(line, ",\"") != 0)
			return;
		line_value(line, key, 1);
		if (line_puts(line, "\":\"") != 0) {
			/* Cut inside the key: end it and give it an empty value. */
			line_close(line, "\":\"\"");
			return;
		}
		line_value(line, value, 1);
		line_close(line, "\"");
		return;
	}
	if (line_puts(line, " ") != 0)
		return;
	line_value(line, key, 0);
	if (line_puts(line, "=") != 0)
		return;
	if (text_needs_quotes(value)) {
		if (line_puts(line, "\"") != 0)
			return;
		line_value(line, value, 1);
		line_close(line, "\"");
	} else
		line_value(line, value, 0);
}

static void
format_now(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* Build and write one line; a single write(2) keeps lines whole. */
static void
log_vwrite(enum log_level level, const char *msg, va_list ap)
{
	struct log_line line;
	char prefix[8], now[64];
	const char *key, *value;
	int saved_errno = errno;
	ssize_t unused;

	line.len = 0;
	line.truncated = 0;
	if (log_journal) {
		snprintf(prefix, sizeof prefix, "<%d>", log_level_priority[level]);
		line_puts(&line, prefix);
	}
	if (log_format == LOG_FORMAT_JSON) {
		line_puts(&line, "{");
		if (!log_journal) {
			format_now(now, sizeof now);
			line_puts(&line, "\"ts\":\"");
			line_puts(&line, now);
			line_puts(&line, "\",");
		}
		line_puts(&line, "\"level\":\"");
		line_puts(&line, log_level_names[level]);
		line_puts(&line, "\"");
		line_field(&line, "msg", msg);
	} else {
		if (!log_journal) {
			format_now(now, sizeof now);
			line_puts(&line, "ts=");
			line_puts(&line, now);
			line_puts(&line, " ");
		}
		line_puts(&line, "level=");
		line_puts(&line, log_level_names[level]);
		line_field(&line, "msg", msg);
	}
	while ((key = va_arg(ap, const char *)) != NULL) {
		value = va_arg(ap, const char *);
		line_field(&line, key, value);
	}
	/* A truncated JSON line still has to close its object. */
	if (line.truncated)
		line_close(&line, log_format == LOG_FORMAT_JSON ? ",\"truncated\":true" :
		    " truncated=true");
	if (log_format == LOG_FORMAT_JSON)
		line_close(&line, "}");
	line_close(&line, "\n");
	unused = write(STDERR_FILENO, line.buf, line.len);
	(void)unused;
	errno = saved_errno;
}

/* Write one structured line if the level is enabled. */
void
log_write(enum log_level level, const char *msg, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, msg);
	log_vwrite(level, msg, ap);
	va_end(ap);
}

/* Route libevent's warnings and errors into our log. */
static void
log_libevent_callback(int severity, const char *msg)
{
	enum log_level level;

	switch (severity) {
	case EVENT_LOG_DEBUG: level = LOG_LEVEL_DEBUG; break;
	case EVENT_LOG_MSG: level = LOG_LEVEL_INFO; break;
	case EVENT_LOG_WARN: level = LOG_LEVEL_WARN; break;
	default: level = LOG_LEVEL_ERROR; break;
	}
	log_write(level, "libevent", "detail", msg, NULL);
}

/* Set up logging: journald detection and libevent's log callback. */
void
log_init(void)
{
	log_journal = getenv("JOURNAL_STREAM") != NULL;
	event_set_log_callback(log_libevent_callback);
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

void
log_set_format(enum log_format format)
{
	log_format = format;
}

const char *
log_level_name(enum log_level level)
{
	return log_level_names[level];
}

/* Parse a level name; 0 on success, -1 if unknown. */
int
log_level_from_string(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof log_level_names / sizeof log_level_names[0]; i++) {
		if (strcmp(name, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* Parse a format name; 0 on success, -1 if unknown. */
int
log_format_from_string(const char *name, enum log_format *out)
{
	if (strcmp(name, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcmp(name, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -1;
	return 0;
}

/* Keep enough of a secret to tell two apart in the log, never the whole. */
const char *
log_redact(const char *secret, char out[LOG_REDACT_SIZE])
{
	size_t len;

	if (secret == NULL) {
		snprintf(out, LOG_REDACT_SIZE, "(none)");
		return out;
	}
	len = strlen(secret);
	if (len <= 16)
		snprintf(out, LOG_REDACT_SIZE, "…(%zu)", len);
	else
		snprintf(out, LOG_REDACT_SIZE, "%.*s…(%zu)", (int)utf8_cut(secret, len, 8),
		    secret, len);
	return out;
}

static void __attribute__((noreturn, format(printf, 2, 0)))
vfatal(int with_errno, const char *fmt, va_list ap)
{
	char msg[1024];
	int saved_errno = errno;

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (with_errno)
		log_write(LOG_LEVEL_ERROR, msg, "error", strerror(saved_errno), NULL);
	else
		log_write(LOG_LEVEL_ERROR, msg, NULL);
	exit(1);
}

/* Log a fatal error with strerror(errno) and exit. */
void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfatal(1, fmt, ap);
}

/* Log a fatal error and exit. */
void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfatal(0, fmt, ap);
}
