/*
 * The per-recipient rate limit: at most limit notifications a minute to one client,
 * counted in fixed windows of a minute that start with the client's first
 * notification after the last window ended.
 *
 * Owns the clients' windows (struct rate_limit, which only rate_limit.c sees); a
 * sweep forgets the windows that have ended, so memory follows the recipients of the
 * last minute. Time is monotonic milliseconds, passed in (now). The router calls
 * every function, on the event loop's thread.
 */
#ifndef PUSHRELAY_RATE_LIMIT_H
#define PUSHRELAY_RATE_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATE_LIMIT_WINDOW_MS (60 * 1000)

/* What rate_limit_take says. */
#define RATE_LIMIT_OK 0			/* under the limit: counted */
#define RATE_LIMIT_EXCEEDED 1		/* over it: not notified, not counted */

struct rate_limit;

/* limit: notifications a minute per recipient; 0 (or less): no limit. */
struct rate_limit *rate_limit_new(int limit);
void rate_limit_set(struct rate_limit *rate, int limit);
void rate_limit_free(struct rate_limit *rate);

/* May client be notified now? Counts the notification when it may. */
int rate_limit_take(struct rate_limit *rate, const char *client, int64_t now);
/* Forget the windows that ended by now. */
void rate_limit_sweep(struct rate_limit *rate, int64_t now);
/* Clients with a window kept. */
size_t rate_limit_clients(const struct rate_limit *rate);

#endif
