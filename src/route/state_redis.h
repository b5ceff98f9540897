/*
 * The redis backend of the room state (state.h): presence, unread counts, the
 * duplicate filter, notified marks and held messages in Redis, under [state] prefix,
 * shared by every instance with the same server and prefix (docs/state-redis.md lists
 * every key and script).
 *
 * One hiredis connection (redis_link.h, [redis]'s address, credentials and db) on
 * the loop. After every (re)connection the scripts are loaded (SCRIPT LOAD); calls
 * are EVALSHA, sent in the order they were made, pipelined. While the link is down
 * they wait, and state_ready() is false; once it is back (the scripts loaded again)
 * they are sent, those that were sent and not answered included: each script is
 * written so that running it twice does what running it once did (a message's
 * decide recognizes its own earlier run). An error answer fails the link (reconnect
 * with backoff, then every call again); a call that gets STATE_REDIS_ATTEMPTS error
 * answers is given up (a decide ends with STATE_EFAILED, an event's tracker is
 * abandoned: not acknowledged, it comes again), logged.
 *
 * Held messages are claimed when due by a poll, every 100 ms or a quarter of the
 * coalescing window if that is shorter, by whichever instance polls first. A claim
 * is leased (STATE_REDIS_LEASE_MS): the claiming instance renews the lease while the
 * batch is being sent and deletes the claim once its send has ended; a claim whose
 * lease runs out (its instance died) is claimed again by the next poll of any
 * instance, and sent to the devices its newest message was not marked as sent to.
 *
 * Loop thread only.
 */
#ifndef PUSHRELAY_STATE_REDIS_H
#define PUSHRELAY_STATE_REDIS_H

#include <stddef.h>

#include "state.h"

struct config;
struct event_base;

#define STATE_REDIS_LEASE_MS 30000	/* a claim not finished within it goes again */
#define STATE_REDIS_ATTEMPTS 3		/* error answers to one call before it is given up */

/*
 * The state in the Redis of config's [redis] section, under its [state] prefix; it
 * starts connecting at once. NULL with err set if [redis] address is not host:port.
 */
struct state *state_redis_new(struct event_base *base, const struct config *config,
    const struct state_options *options, char *err, size_t errlen);
/* Why the state is not ready, for /readyz: NULL when it is. */
const char *state_redis_why(const struct state *state);

#endif
