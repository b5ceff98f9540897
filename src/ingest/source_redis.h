/*
 * Room events from Redis ([redis], [pubsub] and [streams] in the configuration), on
 * hiredis's asynchronous API attached to the daemon's event base.
 *
 * Pub/Sub: PSUBSCRIBE to the pattern; each message is one event as JSON, and the part
 * of the channel name the pattern's * matched is the room of events that carry none
 * (pattern "room:*", channel "room:support-1": room "support-1"). Pub/Sub cannot
 * replay: an event the sink has no room for is dropped and counted, and what is
 * published while the connection is down is lost. The acknowledgement is a no-op.
 *
 * Streams: a consumer group (created with MKSTREAM when missing) on every key of
 * [streams] keys. Each entry's field "event" holds one event as JSON; other fields are
 * ignored. An entry is XACKed when the sink acknowledges its event, in any order;
 * entries without an event field, with malformed JSON or of an unknown type are XACKed
 * at once (skipped and counted) so they never block the group. On start and after
 * every reconnect the consumer's own pending entries are handed first (those the sink
 * still holds are not handed twice); every claim_idle/2 entries pending longer than
 * claim_idle in other consumers are taken over (XAUTOCLAIM, Redis 6.2 or later).
 * SOURCE_EFULL pauses reading; on resume the held entries are handed again in order.
 *
 * Both reconnect with exponential backoff and full jitter (up to [redis]
 * reconnect_max), logging a warning once per outage and an info line when back; the
 * password file is read again on every attempt.
 *
 * Stats: connected once subscribed (Pub/Sub) or once the groups exist (Streams);
 * reconnects counts the times it was connected again after losing the link; acked
 * counts handed events whose XACK Redis confirmed (skipped entries are not counted);
 * pending is handed and not acknowledged; lag is the sum over the keys of XINFO
 * GROUPS' lag, refreshed every 2 s, -1 when Redis does not know it (or before 7.0).
 * Pub/Sub cannot pause: pause and resume only show in paused.
 *
 * As source.h has it, on SOURCE_OK the sink takes the event by moving its contents
 * out (leaving it zeroed); the struct itself stays the source's. The sink must not
 * call an ack after stop: what it did not ack stays pending in Redis (Streams).
 */
#ifndef PUSHRELAY_SOURCE_REDIS_H
#define PUSHRELAY_SOURCE_REDIS_H

#include "source.h"

extern const struct source_ops source_redis_pubsub_ops;	/* "redis-pubsub" */
extern const struct source_ops source_redis_streams_ops;	/* "redis-streams" */

#endif
