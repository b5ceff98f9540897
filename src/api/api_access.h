/*
 * The API's access log: a line per answered request at info ("api request": method,
 * route template, status, duration, bytes, the API key's id; never the key, nor the
 * path's ids, which a debug line adds), and a warning per refused key with the peer,
 * API_ACCESS_REFUSED_MAX a minute at most (a scan must not flood the log; the rest
 * are counted in one line).
 *
 * api.c calls it on the event loop as it answers.
 */
#ifndef PUSHRELAY_API_ACCESS_H
#define PUSHRELAY_API_ACCESS_H

#include <stddef.h>
#include <stdint.h>

struct api_request;

#define API_ACCESS_REFUSED_MAX 10

struct api_access {
	int enabled;			/* [api] access_log: the per-request lines */
	int64_t refused_window_ms;	/* monotonic: the minute being counted */
	unsigned refused_logged, refused_suppressed;
};

/* A 401 is about to go: who asked (whether or not the per-request lines are on). */
void api_access_refused(struct api_access *access, const struct api_request *r,
    const char *method);
/* An answer went: its line, and at debug the path's. */
void api_access_answered(struct api_access *access, const struct api_request *r,
    const char *method, int status, size_t bytes);

#endif
