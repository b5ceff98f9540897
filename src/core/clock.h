/*
 * Wall-clock and monotonic time in milliseconds, and RFC 3339 conversion. Any module,
 * any thread; clock_set_offset_ms() is for tests, before threads start.
 */
#ifndef PUSHRELAY_CLOCK_H
#define PUSHRELAY_CLOCK_H

#include <stdint.h>

/* "2026-11-28T09:15:02.123Z" and its terminating NUL. */
#define CLOCK_RFC3339_SIZE 25
/* 9999-12-31T23:59:59.999Z: RFC 3339 has four-digit years, so no later time fits. */
#define CLOCK_RFC3339_MAX_MS 253402300799999LL

/* Milliseconds since the epoch, shifted by the test offset (see clock_set_offset_ms). */
int64_t clock_now_ms(void);
/* Milliseconds of CLOCK_MONOTONIC, for intervals and deadlines. */
int64_t clock_monotonic_ms(void);
/* Shift clock_now_ms() by offset ms: lets tests move time without sleeping. */
void clock_set_offset_ms(int64_t offset);

/* Format ms since the epoch as UTC RFC 3339 with milliseconds. */
void clock_format_rfc3339(int64_t ms, char out[CLOCK_RFC3339_SIZE]);
/*
 * Parse an RFC 3339 date-time ("Z" or a numeric offset, optional fraction, which is
 * truncated to milliseconds). Returns 0, or -1 if s is not one. An offset or a leap
 * second can carry the result past CLOCK_RFC3339_MAX_MS ("9999-12-31T23:59:59-01:00"):
 * callers that keep the time check the range.
 */
int clock_parse_rfc3339(const char *s, int64_t *ms);

#endif
