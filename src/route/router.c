/*
 * The router: the event switch, acknowledgements and backpressure, and the wiring of
 * the pieces that own the state routing decides with.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "delivery.h"
#include "dispatch.h"
#include "event.h"
#include "log.h"
#include "membership.h"
#include "rate_limit.h"
#include "route.h"
#include "route_cache.h"
#include "router.h"
#include "state.h"
#include "tracker.h"
#include "xmalloc.h"

#define ROUTER_FLUSH_MS 200		/* notified marks and unread counts, written behind */
#define ROUTER_SWEEP_MS (30 * 1000)	/* forget old message ids and rate windows */
#define SOURCES_MAX 8
/* Rooms whose members and devices are kept in memory, at most. */
#define ROUTER_ROUTES_MAX 10000

struct source_ref {
	const struct source_ops *ops;
	struct source *source;
};

struct router {
	struct event_base *base;
	struct delivery_layer *delivery;	/* where notifications go */
	struct router_options options;
	struct source_sink sink;
	struct source_ref sources[SOURCES_MAX];
	size_t source_count;
	int sources_paused;
	int stopping;

	/* The pieces, each the owner of its state. */
	struct state *state;		/* borrowed: presence, unread, dedupe, what is held */
	struct route_cache *routes;
	struct rate_limit *rates;
	struct membership *members;
	struct dispatch *dispatch;
	struct route *route;		/* the messages in hand */

	struct event *flush_timer;
	struct event *sweep_timer;

	struct router_stats stats;	/* the router's own counters; the pieces keep theirs */
};

/* ---- acknowledgements and backpressure ---- */

/* Resume paused sources once there is room again. */
static void
router_maybe_resume(struct router *r)
{
	if (!r->sources_paused || r->stopping)
		return;
	if (r->stats.in_flight * 10 > r->options.queue_size * 9 ||
	    delivery_room(r->delivery) == 0 || !state_ready(r->state))
		return;
	r->sources_paused = 0;
	for (size_t i = 0; i < r->source_count; i++) {
		if (r->sources[i].ops->resume != NULL)
			r->sources[i].ops->resume(r->sources[i].source);
	}
}

/* An event is off our hands: acknowledged, or abandoned at shutdown. */
static void
router_tracker_done(void *arg)
{
	struct router *r = arg;

	r->stats.in_flight--;
	router_maybe_resume(r);
}

/* An event that needs nothing more: free it and release its tracker. */
static void
router_event_done(struct room_event *e, struct tracker *t)
{
	room_event_free(e);
	free(e);
	tracker_release(t);
}

/* ---- what the pieces report ---- */

/* The state: a recipient's bucket is due, and the recipient away. */
static void
router_send_batch(struct state_batch *batch, void *arg)
{
	struct router *r = arg;

	route_send_batch(r->route, batch);
}

/* The state can answer again (redis: back after an outage): resume the sources. */
static void
router_state_ready(void *arg)
{
	struct router *r = arg;

	router_maybe_resume(r);
}

/* Dispatch: a device was sent a message; its mark keeps it from a second time. */
static void
router_sent(const char *room, const char *message_id, const char *device_id, void *arg)
{
	struct router *r = arg;

	state_mark_sent(r->state, room, message_id, device_id, clock_now_ms());
}

/* ---- the sink ---- */

/* Take one event from a source: SOURCE_OK, or SOURCE_EFULL to pause it. */
static int
router_handle(void *arg, struct room_event *event, source_ack_fn *ack, void *ctx)
{
	struct router *r = arg;
	struct room_event *e;
	struct tracker *t;
	int64_t now;

	if (r->stopping || r->stats.in_flight >= r->options.queue_size || !state_ready(r->state) ||
	    (event->type == EVENT_MESSAGE && delivery_room(r->delivery) == 0)) {
		r->sources_paused = 1;
		return SOURCE_EFULL;
	}
	r->stats.events++;
	/* The router owns the event from here: keep our own copy of the struct. */
	e = xmalloc(sizeof *e);
	*e = *event;
	memset(event, 0, sizeof *event);
	t = tracker_new(ack, ctx, router_tracker_done, r);
	r->stats.in_flight++;
	if (e->client_id == NULL && e->type != EVENT_MESSAGE && e->type != EVENT_PRESENCE_SYNC &&
	    e->type != EVENT_MESSAGE_UPDATE && e->type != EVENT_MESSAGE_DELETE) {
		/* Only a source that builds events itself can get here (Ably). */
		r->stats.skipped++;
		router_event_done(e, t);
		return SOURCE_OK;
	}
	now = clock_now_ms();
	switch (e->type) {
	case EVENT_MESSAGE:
		route_message(r->route, e, t);
		return SOURCE_OK;
	case EVENT_MESSAGE_UPDATE:
	case EVENT_MESSAGE_DELETE:
		route_change(r->route, e, t);
		break;
	case EVENT_PRESENCE_ENTER:
		state_presence(r->state, e, t);
		if (r->options.implicit_membership)
			membership_join_implicit(r->members, e->room, e->client_id, now);
		break;
	case EVENT_PRESENCE_LEAVE:
	case EVENT_PRESENCE_UPDATE:
	case EVENT_PRESENCE_SYNC:
		state_presence(r->state, e, t);
		break;
	case EVENT_MEMBER_JOIN:
	case EVENT_MEMBER_LEAVE:
		membership_write(r->members, e->room, e->client_id, e->type == EVENT_MEMBER_JOIN,
		    now, t);
		break;
	case EVENT_READ:
		state_read(r->state, e->room, e->client_id, t);
		break;
	}
	router_event_done(e, t);
	return SOURCE_OK;
}

/* A source dropped an event it could not make sense of. */
static void
router_skipped(void *arg, const char *source, const char *reason)
{
	struct router *r = arg;

	r->stats.skipped++;
}

/* ---- life ---- */

/* Write notified marks and unread counts behind. */
static void
router_flush(evutil_socket_t fd, short what, void *arg)
{
	struct router *r = arg;

	state_flush(r->state);
}

/* Forget old message ids, marks and rate windows. */
static void
router_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct router *r = arg;

	rate_limit_sweep(r->rates, clock_monotonic_ms());
	state_sweep(r->state, clock_now_ms());
}

/* The state's options, from the router's. */
void
router_state_options(const struct router_options *options, struct state_options *so)
{
	memset(so, 0, sizeof *so);
	so->presence_grace_ms = options->presence_grace_ms;
	so->presence_ttl_ms = options->presence_ttl_ms;
	so->presence_max = options->presence_max;
	so->coalesce_window_ms = options->coalesce_window_ms;
	so->dedupe_window_ms = options->dedupe_window_ms;
}

/* Create the pieces, wire them, and start the write-behind and sweep timers. */
struct router *
router_new(struct event_base *base, struct store *store, struct store_writer *reader,
    struct delivery_layer *delivery, struct state *state, const struct router_options *options)
{
	struct router *r = xcalloc(1, sizeof *r);
	struct route_pieces pieces;
	struct state_callbacks callbacks = { router_send_batch, router_state_ready, r };
	struct timeval flush = { 0, ROUTER_FLUSH_MS * 1000 }, sweep = { ROUTER_SWEEP_MS / 1000,
		0 };

	r->base = base;
	r->options = *options;
	r->sink.handle = router_handle;
	r->sink.skipped = router_skipped;
	r->sink.arg = r;
	r->state = state;
	state_set_callbacks(state, &callbacks);
	r->routes = route_cache_new(store, reader, ROUTER_ROUTES_MAX);
	r->rates = rate_limit_new(options->recipient_rate_limit);
	r->members = membership_new(reader);
	r->delivery = delivery;
	r->dispatch = dispatch_new(delivery, router_sent, r);
	pieces.base = base;
	pieces.state = state;
	pieces.routes = r->routes;
	pieces.reader = reader;
	pieces.rates = r->rates;
	pieces.members = r->members;
	pieces.dispatch = r->dispatch;
	pieces.implicit_membership = options->implicit_membership;
	r->route = route_new(&pieces);
	r->flush_timer = event_new(base, -1, EV_PERSIST, router_flush, r);
	r->sweep_timer = event_new(base, -1, EV_PERSIST, router_sweep, r);
	if (r->flush_timer == NULL || r->sweep_timer == NULL)
		fatalx("cannot create router timers");
	event_add(r->flush_timer, &flush);
	event_add(r->sweep_timer, &sweep);
	return r;
}

/* A reload: each piece takes its new options. */
void
router_set_options(struct router *r, const struct router_options *options)
{
	struct state_options so;

	router_state_options(options, &so);
	r->options = *options;
	state_set_options(r->state, &so);
	rate_limit_set(r->rates, options->recipient_rate_limit);
	route_set_implicit_membership(r->route, options->implicit_membership);
}

/* What sources hand events to. */
const struct source_sink *
router_sink(struct router *r)
{
	return &r->sink;
}

/* A source to resume when there is room again. */
void
router_add_source(struct router *r, const struct source_ops *ops, struct source *source)
{
	if (r->source_count == SOURCES_MAX)
		fatalx("too many sources");
	r->sources[r->source_count].ops = ops;
	r->sources[r->source_count].source = source;
	r->source_count++;
}

/* Stop taking events; drop what waits, unacknowledged; write what is behind. */
void
router_stop(struct router *r)
{
	r->stopping = 1;
	route_stop(r->route);
	/* What waits is not acknowledged: Streams and the outbox hand it again. */
	state_stop(r->state);
}

/* Free the pieces, once the store writers have stopped (the state is the caller's). */
void
router_free(struct router *r)
{
	if (r == NULL)
		return;
	event_free(r->flush_timer);
	event_free(r->sweep_timer);
	route_free(r->route);
	route_cache_free(r->routes);
	rate_limit_free(r->rates);
	membership_free(r->members);
	dispatch_free(r->dispatch);
	free(r);
}

/* The router's counters, gathered from its pieces. */
void
router_get_stats(const struct router *r, struct router_stats *stats)
{
	struct dispatch_stats dispatch;
	struct route_stats route;

	*stats = r->stats;
	route_get_stats(r->route, &route);
	dispatch_get_stats(r->dispatch, &dispatch);
	state_get_stats(r->state, &stats->state);
	stats->messages = route.messages;
	stats->duplicates = route.duplicates;
	stats->held = route.held;
	stats->rate_limited = route.rate_limited;
	stats->cancelled = route.cancelled;
	/* Counted once, when the notification they were folded into is sent. */
	stats->coalesced = route.coalesced;
	stats->pending_recipients = stats->state.pending_recipients;
	stats->notifications = dispatch.notifications;
	stats->presence_entries = stats->state.presence_entries;
	stats->presence_expired = stats->state.presence_expired;
	stats->presence_dropped = stats->state.presence_dropped;
}
