/*
 * Routing one message: who gets it, and how. For each member of its room but the
 * sender, the room state (state.h) decides: present (then, when it came, or now:
 * skipped), or away: the message is unread for them; then, unless they are muted,
 * a mentions-only member it does not mention, or without a device it did not notify
 * before, held to the end of their grace, coalesced (when there is a window) or sent
 * at once, within the rate limit. A batch the state hands back, due, goes as one
 * notification, to the devices it carries or, when the state does not know them
 * (redis), to the recipient's devices read from the registry first.
 *
 * Owns the messages in hand (struct route, which only route.c sees): those whose
 * room is being read, those the state is deciding, and those routed over several
 * turns of the loop (a big room goes ROUTE_CHUNK_MEMBERS members a turn, one decide
 * each), findable by (room, id) so that an edit or a deletion meanwhile reaches
 * them. It borrows the pieces that keep the state it decides with (struct
 * route_pieces): the router creates them and frees them after the route.
 *
 * Each message holds its event's tracker until it is routed or dropped. The router
 * calls every function on the event loop's thread.
 */
#ifndef PUSHRELAY_ROUTE_H
#define PUSHRELAY_ROUTE_H

#include <stddef.h>
#include <stdint.h>

struct dispatch;
struct event_base;
struct membership;
struct rate_limit;
struct room_event;
struct route_cache;
struct state;
struct state_batch;
struct store_writer;
struct tracker;
struct route;

/*
 * Members routed in one turn of the event loop, at most. A big room's message goes on
 * in the next turn: its first requests are out meanwhile, and other events do not
 * wait for the whole room (10,000 members take some 20 ms).
 */
#define ROUTE_CHUNK_MEMBERS 256

/* What routing decides with: borrowed, they outlive the route. */
struct route_pieces {
	struct event_base *base;
	struct state *state;		/* presence, unread, dedupe, what is held */
	struct route_cache *routes;
	struct store_writer *reader;	/* the devices of a batch the state hands back */
	struct rate_limit *rates;
	struct membership *members;
	struct dispatch *dispatch;
	int implicit_membership;	/* a sender becomes a member */
};

struct route_stats {
	uint64_t messages;
	uint64_t duplicates;		/* messages seen before, skipped */
	uint64_t coalesced;		/* messages sent in another's notification */
	uint64_t held;			/* messages held for a member in grace */
	uint64_t rate_limited;
	uint64_t cancelled;		/* deleted before they left */
};

struct route *route_new(const struct route_pieces *pieces);
void route_set_implicit_membership(struct route *route, int implicit_membership);
/* Shutdown: drop the messages routed over turns (not acknowledged: they come again). */
void route_stop(struct route *route);
/* Free, once the reads still due have finished (the reader stopped). */
void route_free(struct route *route);
void route_get_stats(const struct route *route, struct route_stats *stats);

/* Route message e (taken over), holding tracker t (the caller's reference, taken). */
void route_message(struct route *route, struct room_event *e, struct tracker *t);
/*
 * An edit or a deletion (e stays the caller's) of a message not routed or sent yet;
 * tracker (the caller's) is held until the state has applied it.
 */
void route_change(struct route *route, const struct room_event *e, struct tracker *tracker);
/* The state's batch callback: a recipient's bucket is due and the recipient away. */
void route_send_batch(struct route *route, struct state_batch *batch);

#endif
