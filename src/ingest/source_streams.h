/*
 * Room events from Redis Streams ([redis] and [streams] in the configuration), over
 * the two connections of a redis_link.h link. Runs on the loop's thread; daemon.c
 * starts it through source_streams_ops and the router calls the rest (source.h).
 *
 * A consumer group (created with MKSTREAM when missing) on every key of [streams]
 * keys. Each entry's field "event" holds one event as JSON; other fields are ignored.
 * An entry is XACKed when the sink acknowledges its event, in any order; entries
 * without an event field, with malformed JSON or of an unknown type are XACKed at
 * once (skipped and counted) so they never block the group. On start and after every
 * reconnect the consumer's own pending entries are handed first (those the sink still
 * holds are not handed twice); every claim_idle/2 entries pending longer than
 * claim_idle in other consumers are taken over (XAUTOCLAIM, Redis 6.2 or later).
 * SOURCE_EFULL, or pause(), stops reading; on resume the held entries are handed
 * again in order.
 *
 * Stats: connected once the groups exist; reconnects counts the times they were
 * ready again after losing the link; acked counts handed events whose XACK Redis
 * confirmed (skipped entries are not counted); pending is handed and not
 * acknowledged; lag is the sum over the keys of XINFO GROUPS' lag, refreshed every
 * 2 s, -1 when Redis does not know it (or before 7.0).
 *
 * As source.h has it, on SOURCE_OK the sink takes the event by moving its contents
 * out (leaving it zeroed); the struct itself stays the source's. The sink must not
 * call an ack after stop: what it did not ack stays pending in Redis.
 */
#ifndef PUSHRELAY_SOURCE_STREAMS_H
#define PUSHRELAY_SOURCE_STREAMS_H

#include "source.h"

extern const struct source_ops source_streams_ops;	/* "redis-streams" */

#endif
