/*
 * The router: who gets what. It is the sink every source hands room events to.
 *
 * For a message, the recipients are the room's members, minus the sender, minus who
 * is present (a member in the grace period after leaving counts as present, and
 * what is said meanwhile waits for the end of the grace), minus the muted, minus the
 * mentions-only members who are not mentioned. Each recipient's devices get one
 * notification; messages to the same away recipient in the same room within the
 * coalescing window become one ("3 new messages: ..."). The badge is the recipient's
 * unread messages across rooms, reset by read events. A message deleted before its
 * notification left is not sent; an edit before it left changes it. The same message
 * never notifies the same device twice within the dedupe window, across restarts.
 *
 * An event is acknowledged to its source once every notification it caused has been
 * sent or has failed for good. The sink's handle returns SOURCE_OK (taken), or
 * SOURCE_EFULL (not taken: queue_size events are in flight, the delivery queue is
 * full, or the router is stopping); the source is then paused, and resumed once the
 * events in flight are under 90% of queue_size and the delivery queue has room.
 *
 * The router is the event switch. The state it decides with belongs to its pieces:
 * the room state (state.h: presence, unread counts, seen messages and notified
 * marks, what is held for coalescing and grace; in this process or in Redis), which
 * daemon.c creates and the router borrows, and those it creates and wires itself:
 * route.h (a message's routing), route_cache.h (room members, read and kept),
 * rate_limit.h, membership.h (membership writes), dispatch.h (sends, edits and
 * deletions of what is on its way), notify_text.h (what a notification says) and
 * tracker.h (acknowledgements). While the state cannot answer (redis: Redis is
 * down) the sink answers SOURCE_EFULL, and the sources resume once it can. Every
 * function, and every callback, runs on the event loop's thread.
 */
#ifndef PUSHRELAY_ROUTER_H
#define PUSHRELAY_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "source.h"
#include "state.h"

struct delivery_layer;
struct event_base;
struct store;
struct store_writer;
struct router;

struct router_options {
	int64_t presence_grace_ms;
	int64_t presence_ttl_ms;
	size_t presence_max;		/* presence entries, at most */
	int implicit_membership;
	int64_t coalesce_window_ms;
	int64_t dedupe_window_ms;
	int recipient_rate_limit;	/* per minute; 0: none */
	size_t queue_size;		/* events in flight, at most */
};

struct router_stats {
	uint64_t events;		/* handled, by any source */
	uint64_t messages;
	uint64_t duplicates;		/* messages seen before, skipped */
	uint64_t notifications;		/* sent to a recipient (one per recipient) */
	uint64_t coalesced;		/* messages folded into another's notification */
	uint64_t held;			/* messages held for a member in grace */
	uint64_t rate_limited;
	uint64_t cancelled;		/* deleted before they left */
	uint64_t skipped;		/* malformed or unknown events */
	size_t in_flight;		/* events not acknowledged yet */
	size_t pending_recipients;	/* (room, recipient) waiting: coalescing or grace */
	size_t presence_entries;	/* connections and members in grace */
	uint64_t presence_expired;	/* connections that left on the presence TTL */
	uint64_t presence_dropped;	/* entries dropped past presence_max */
	struct state_stats state;	/* the room state's own figures */
};

/*
 * Start. Messages' members are read, and the membership changes that events make
 * are written, in event order by reader (a store thread of its own, so reads never
 * wait behind a batch of writes), which also reads the devices of the batches the
 * state hands back. Notifications go to delivery. state (borrowed: it must outlive
 * the router) is what routing decides with; the router sets its callbacks.
 */
struct router *router_new(struct event_base *base, struct store *store,
    struct store_writer *reader, struct delivery_layer *delivery, struct state *state,
    const struct router_options *options);
/* The state's options that follow from the router's. */
void router_state_options(const struct router_options *options, struct state_options *so);
void router_set_options(struct router *router, const struct router_options *options);
/* What sources hand events to. */
const struct source_sink *router_sink(struct router *router);
/* A source the router may resume when it has room again after SOURCE_EFULL. */
void router_add_source(struct router *router, const struct source_ops *ops,
    struct source *source);
/* Stop: drop what waits (unacknowledged events come back from their sources). */
void router_stop(struct router *router);
void router_free(struct router *router);
void router_get_stats(const struct router *router, struct router_stats *stats);

#endif
