/*
 * Room events from Redis Pub/Sub ([redis] and [pubsub] in the configuration), over one
 * connection of a redis_link.h link. Runs on the loop's thread; daemon.c starts it
 * through source_pubsub_ops and the router calls the rest (source.h).
 *
 * PSUBSCRIBE to [pubsub] pattern; each message is one event as JSON, and the part of
 * the channel name the pattern's * matched is the room of events that carry none
 * (pattern "room:*", channel "room:support-1": room "support-1"). Malformed or unknown
 * events are skipped and counted. Pub/Sub cannot replay: an event the sink has no
 * room for (SOURCE_EFULL) is dropped and counted, and what is published while the
 * link is down is lost. The acknowledgement is a no-op, and pause and resume only
 * show in the stats' paused.
 *
 * Stats: connected once subscribed; reconnects counts the times it subscribed again
 * after losing the link; dropped what the full sink cost; lag is always -1.
 */
#ifndef PUSHRELAY_SOURCE_PUBSUB_H
#define PUSHRELAY_SOURCE_PUBSUB_H

#include "source.h"

extern const struct source_ops source_pubsub_ops;	/* "redis-pubsub" */

#endif
