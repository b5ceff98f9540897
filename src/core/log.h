/*
 * Structured logging to stderr, one line per event.
 *
 * A line is a message and key=value fields:
 *	log_info("device registered", "device_id", id, "token", redacted, NULL);
 * In text format:  level=info msg="device registered" device_id=abc token=0a1b2c3d…
 * In json format:  {"level":"info","msg":"device registered","device_id":"abc",...}
 * Under journald (JOURNAL_STREAM set) the timestamp is left to the journal and the
 * line is prefixed with the syslog priority (<3>, <4>, <6>, <7>).
 *
 * Any module, any thread: a line is written with one write(2).
 */
#ifndef PUSHRELAY_LOG_H
#define PUSHRELAY_LOG_H

#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

enum log_format {
	LOG_FORMAT_TEXT = 0,
	LOG_FORMAT_JSON,
};

/* Room for a redacted secret: 8 visible characters, an ellipsis and a length. */
#define LOG_REDACT_SIZE 40

void log_init(void);
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
enum log_level log_get_level(void);
int log_level_from_string(const char *name, enum log_level *out);
int log_format_from_string(const char *name, enum log_format *out);
const char *log_level_name(enum log_level level);

/* Write one line: a message, then NULL-terminated key, value string pairs. */
void log_write(enum log_level level, const char *msg, ...) __attribute__((sentinel));
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Keep the first 8 characters of a secret and its length: "0a1b2c3d…(64)". */
const char *log_redact(const char *secret, char out[LOG_REDACT_SIZE]);

/* Die at start-up or on out-of-memory; fatal() appends strerror(errno). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
