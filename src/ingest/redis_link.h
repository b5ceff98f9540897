/*
 * The link of a Redis source to its server ([redis] in the configuration): one or two
 * hiredis asynchronous connections on the daemon's event base that come up and go
 * down together. source_pubsub.c holds one (the subscriber), source_streams.c two (a
 * blocked XREADGROUP holds the reader, so XACK, XAUTOCLAIM and XINFO go over the
 * other). Everything here runs on the loop's thread.
 *
 * Connecting: each connection sends AUTH with the first line of [redis]
 * password_file (read again on every attempt; with [redis] username when set), then
 * SELECT [redis] db when the source asks for it, or else a PING; the link is ready
 * once Redis has answered every one, and it tells the source through ready(). The
 * source then subscribes or creates its groups and calls redis_link_established().
 *
 * Failing: when a connection is lost, cannot be made, times out ([redis]
 * connect_timeout) or is refused, or when the source calls redis_link_fail(), every
 * connection is dropped, down() is called, and the link connects again after an
 * exponential backoff with full jitter (from 100 ms up to [redis] reconnect_max; it
 * starts over once a link stayed up 10 s). A warning is logged once per outage (and
 * again when the reason changes), an info line when the link is established again.
 *
 * hiredis frees a context by itself when its connection fails, and a context freed
 * from inside one of its own reply callbacks is only marked, then freed when the
 * callback returns (freeing it from its connect or disconnect callback is a double
 * free). So: a context is detached (ac->data = NULL) before anyone frees it, and a
 * reply callback of the source must return at once when ac->data is NULL. The link
 * calls ready() and down() from hiredis callbacks and its timer; neither may stop the
 * source.
 */
#ifndef PUSHRELAY_REDIS_LINK_H
#define PUSHRELAY_REDIS_LINK_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "log.h"

#define REDIS_LINK_CONNS_MAX 2

struct config;
struct redis_link;

/* What the link tells its source. */
struct redis_link_callbacks {
	/* Every connection is set up: subscribe, or create the groups. */
	void (*ready)(void *arg);
	/* The link dropped its connections (NULL: nothing to do); it connects again. */
	void (*down)(void *arg);
	void *arg;
};

struct redis_link_options {
	const char *name;			/* the source's, for logs */
	const char *roles[REDIS_LINK_CONNS_MAX];	/* "subscriber", "reader": for logs */
	size_t count;				/* connections: 1 or 2 */
	int select_db;				/* SELECT [redis] db when it is not 0 */
};

/*
 * A link from [redis] (address, username, password_file, db, connect_timeout,
 * reconnect_max); it connects at redis_link_start(). NULL with err set if the
 * address is not host:port.
 */
struct redis_link *redis_link_new(struct event_base *base, const struct config *config,
    const struct redis_link_options *options,
    const struct redis_link_callbacks *callbacks, char *err, size_t errlen);
/* Make the first attempt. */
void redis_link_start(struct redis_link *link);
/* Connection i's context while the link is up, else NULL. */
redisAsyncContext *redis_link_context(const struct redis_link *link, size_t i);
/* Is every connection set up (ready() was called, no failure since)? */
int redis_link_ready(const struct redis_link *link);
/* The source works: subscribed, or its groups exist. Logs a connect or a recovery. */
void redis_link_established(struct redis_link *link);
/* Established and not failed since: the source's "connected". */
int redis_link_is_established(const struct redis_link *link);
/* The times the link was established again after it had been before. */
uint64_t redis_link_reconnects(const struct redis_link *link);
int64_t redis_link_connect_timeout_ms(const struct redis_link *link);
/* The source saw the link fail (a command refused, no answer): drop it, back off. */
void redis_link_fail(struct redis_link *link, enum log_level level, const char *what,
    const char *error);
/* Drop the connections for good (no reconnect); the link stays until freed. */
void redis_link_stop(struct redis_link *link);
void redis_link_free(struct redis_link *link);

/* Is a reply a string (bulk or status)? */
int redis_reply_is_string(const redisReply *reply);
/* Arm a timer for ms milliseconds. */
void redis_timer_add_ms(struct event *timer, int64_t ms);

/* At most one log line a second, counting what it kept quiet. */
struct redis_ratelimit {
	int64_t last_ms;
	uint64_t suppressed;
	int used;
};
/* May we log now? If so, *suppressed says how many lines were kept quiet. */
int redis_ratelimit_allow(struct redis_ratelimit *limit, uint64_t *suppressed);

#endif
