/* Room state in this process: presence, unread counts, dedupe and coalescing. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "coalesce.h"
#include "dedupe.h"
#include "event.h"
#include "presence.h"
#include "state_memory.h"
#include "strmap.h"
#include "unread.h"
#include "xmalloc.h"

/*
 * Message ids remembered in memory, at most: past it, duplicates are still caught by
 * the notified marks in the store, only later (after the read).
 */
#define STATE_MEMORY_SEEN_MAX 1000000

struct state_memory {
	struct state state;
	struct state_options options;
	struct state_callbacks callbacks;
	struct presence *presence;
	struct dedupe *dedupe;
	struct unread *unread;
	struct coalesce *coalesce;
};

/* A message being routed: the room's presence when it came. */
struct memory_message {
	struct state_message base;
	const struct room_event *event;
	struct presence_entry *present;
	size_t present_count;
	struct strmap *present_map;	/* the same, for a big room */
	int fresh;
};

static const struct state_ops state_memory_ops;

/* The pieces' options from the state's. */
static void
memory_piece_options(const struct state_options *options, struct presence_options *po,
    struct dedupe_options *dopts)
{
	po->grace_ms = options->presence_grace_ms;
	po->ttl_ms = options->presence_ttl_ms;
	po->max_entries = options->presence_max;
	dopts->window_ms = options->dedupe_window_ms;
	dopts->seen_max = STATE_MEMORY_SEEN_MAX;
}

/* Presence: the grace ended without a return. */
static void
memory_on_away(const char *room, const char *client, void *arg)
{
	struct state_memory *s = arg;

	coalesce_away(s->coalesce, room, client);
}

/* Presence: back in the room within the grace. */
static void
memory_on_return(const char *room, const char *client, void *arg)
{
	struct state_memory *s = arg;

	coalesce_return(s->coalesce, room, client);
}

/* Coalescing: a bucket is due and its recipient away; the router sends it. */
static void
memory_send(struct coalesce_batch *cb, void *arg)
{
	struct state_memory *s = arg;
	struct state_batch b;

	memset(&b, 0, sizeof b);
	b.room = cb->room;
	b.client = cb->client;
	b.latest = cb->latest;
	b.count = cb->count;
	b.message_ids = cb->message_ids;
	b.trackers = cb->trackers;
	b.badge = unread_total(s->unread, cb->client);
	b.targets_known = 1;
	b.targets = cb->targets;
	b.target_count = cb->target_count;
	if (s->callbacks.batch != NULL)
		s->callbacks.batch(&b, s->callbacks.arg);
	/* What the router took is not coalesce's to free any more. */
	cb->message_ids = b.message_ids;
	cb->trackers = b.trackers;
	cb->targets = b.targets;
}

/* Create and wire the pieces. */
struct state *
state_memory_new(struct event_base *base, struct store *store, struct store_writer *writer,
    const struct state_options *options)
{
	struct state_memory *s = xcalloc(1, sizeof *s);
	struct presence_options po;
	struct dedupe_options dopts;
	struct coalesce_options co = { base, NULL, options->coalesce_window_ms, NULL,
		memory_send, s };

	s->state.ops = &state_memory_ops;
	s->options = *options;
	memory_piece_options(options, &po, &dopts);
	s->presence = presence_new(base, &po, memory_on_away, memory_on_return, s);
	s->dedupe = dedupe_new(writer, &dopts, clock_now_ms());
	s->unread = unread_new(writer);
	/* Without the stored counts (the store logged why), badges start from zero. */
	unread_load(s->unread, store);
	co.presence = s->presence;
	s->coalesce = coalesce_new(&co);
	return &s->state;
}

/* Where batches go. */
static void
memory_set_callbacks(struct state *state, const struct state_callbacks *callbacks)
{
	struct state_memory *s = (struct state_memory *)state;

	s->callbacks = *callbacks;
}

/* A reload: each piece takes its new options. */
static void
memory_set_options(struct state *state, const struct state_options *options)
{
	struct state_memory *s = (struct state_memory *)state;
	struct presence_options po;
	struct dedupe_options dopts;

	s->options = *options;
	memory_piece_options(options, &po, &dopts);
	presence_set_options(s->presence, &po);
	dedupe_set_options(s->dedupe, &dopts);
	coalesce_set_window(s->coalesce, options->coalesce_window_ms);
}

/* Always ready: nothing to wait for. */
static int
memory_ready(const struct state *state)
{
	return 1;
}

/* Seen in this process within the window? */
static int
memory_admit(struct state *state, const struct room_event *e, int64_t now)
{
	struct state_memory *s = (struct state_memory *)state;

	return dedupe_seen(s->dedupe, e->room, e->id, now) == DEDUPE_DUPLICATE ?
	    STATE_DUPLICATE : STATE_OK;
}

/* Who was in the room when the message came, not when its members are known. */
static struct state_message *
memory_message_new(struct state *state, const struct room_event *e)
{
	struct state_memory *s = (struct state_memory *)state;
	struct memory_message *m = xcalloc(1, sizeof *m);

	m->base.state = state;
	m->event = e;
	m->present = presence_snapshot(s->presence, e->room, &m->present_count);
	m->fresh = dedupe_is_fresh(s->dedupe, e->redelivered, e->ts);
	return &m->base;
}

/* Neither handed before nor older than this process? */
static int
memory_message_fresh(const struct state_message *message)
{
	return ((const struct memory_message *)message)->fresh;
}

/* The message is routed: its presence snapshot goes. */
static void
memory_message_free(struct state_message *message)
{
	struct memory_message *m = (struct memory_message *)message;

	presence_snapshot_free(m->present, m->present_count);
	strmap_free(m->present_map);
	free(m);
}

/* Was a client present when the message came? */
static int
memory_was_present(struct memory_message *m, const char *client)
{
	if (m->present_count > 16) {
		/* A busy room: look up, do not scan, for each of its members. */
		if (m->present_map == NULL) {
			m->present_map = strmap_new();
			for (size_t i = 0; i < m->present_count; i++) {
				if (m->present[i].state == PRESENCE_PRESENT)
					strmap_put(m->present_map, m->present[i].client_id,
					    strlen(m->present[i].client_id), m);
			}
		}
		return strmap_get(m->present_map, client, strlen(client)) != NULL;
	}
	for (size_t i = 0; i < m->present_count; i++) {
		if (m->present[i].state == PRESENCE_PRESENT &&
		    strcmp(m->present[i].client_id, client) == 0)
			return 1;
	}
	return 0;
}

/*
 * Present then (saw it come) or now (reading): skipped. Else the message is unread
 * for them (away, or about to be: in grace), then held in grace, coalesced when there
 * is a window, or sent now with the badge.
 */
static void
memory_decide(struct state_message *message, struct state_candidate *c, size_t count,
    int count_unread, state_decided_fn *done, void *arg)
{
	struct memory_message *m = (struct memory_message *)message;
	struct state_memory *s = (struct state_memory *)m->base.state;
	const char *room = m->event->room;

	for (size_t i = 0; i < count; i++) {
		enum presence_state presence;
		int64_t badge = -1;

		c[i].decision = STATE_SKIP;
		c[i].badge = -1;
		if (memory_was_present(m, c[i].client_id))
			continue;
		presence = presence_get(s->presence, room, c[i].client_id);
		if (presence == PRESENCE_PRESENT)
			continue;
		if (count_unread)
			badge = unread_add(s->unread, c[i].client_id, room, 1);
		if (!c[i].notify)
			continue;
		if (presence == PRESENCE_GRACE)
			c[i].decision = STATE_HOLD_GRACE;
		else if (coalesce_window(s->coalesce) > 0)
			c[i].decision = STATE_HOLD_WINDOW;
		else {
			c[i].decision = STATE_SEND;
			c[i].badge = badge >= 0 ? badge : unread_total(s->unread, c[i].client_id);
		}
	}
	done(STATE_OK, NULL, 0, arg);
}

/* Hold a message for a recipient: in grace to its end, else in a window. */
static void
memory_hold(struct state *state, const char *client, const struct notify_message *message,
    struct tracker *tracker, struct device_target **targets, size_t count,
    enum state_decision decision)
{
	struct state_memory *s = (struct state_memory *)state;

	coalesce_add(s->coalesce, client, message, tracker, targets, count,
	    decision != STATE_HOLD_GRACE, clock_monotonic_ms());
}

/* A presence event, to presence.c. */
static void
memory_presence(struct state *state, const struct room_event *e, struct tracker *tracker)
{
	struct state_memory *s = (struct state_memory *)state;

	switch (e->type) {
	case EVENT_PRESENCE_ENTER:
		presence_enter(s->presence, e->room, e->client_id, e->connection_id);
		break;
	case EVENT_PRESENCE_LEAVE:
		presence_leave(s->presence, e->room, e->client_id, e->connection_id);
		break;
	case EVENT_PRESENCE_UPDATE:
		presence_update(s->presence, e->room, e->client_id, e->connection_id);
		break;
	case EVENT_PRESENCE_SYNC:
		presence_sync(s->presence, e->room, (const char *const *)e->present,
		    e->present_count);
		break;
	default:
		break;
	}
}

/* A read: the room's count to 0. */
static void
memory_read(struct state *state, const char *room, const char *client, struct tracker *tracker)
{
	struct state_memory *s = (struct state_memory *)state;

	unread_reset(s->unread, client, room);
}

/* An edit or a deletion of what coalesce.c holds. */
static void
memory_change(struct state *state, const struct room_event *e, struct tracker *tracker,
    state_changed_fn *done, void *arg)
{
	struct state_memory *s = (struct state_memory *)state;
	size_t cancelled;

	cancelled = coalesce_change(s->coalesce, e->room, e->id,
	    e->type == EVENT_MESSAGE_DELETE, e->text);
	if (done != NULL)
		done(cancelled, arg);
}

/* A notified mark, written at the next flush. */
static void
memory_mark_sent(struct state *state, const char *room, const char *message_id,
    const char *device_id, int64_t now)
{
	struct state_memory *s = (struct state_memory *)state;

	dedupe_mark(s->dedupe, room, message_id, device_id, now);
}

/* Notified marks and unread counts, to the store writer. */
static void
memory_flush(struct state *state)
{
	struct state_memory *s = (struct state_memory *)state;

	dedupe_flush(s->dedupe, 0);
	unread_flush(s->unread);
}

/* Forget old message ids and marks. */
static void
memory_sweep(struct state *state, int64_t now)
{
	struct state_memory *s = (struct state_memory *)state;

	dedupe_sweep(s->dedupe, now);
	unread_flush(s->unread);
}

/* What waits is not acknowledged: Streams and the outbox hand it again. */
static void
memory_stop(struct state *state)
{
	struct state_memory *s = (struct state_memory *)state;

	coalesce_clear(s->coalesce);
	dedupe_flush(s->dedupe, 0);
	unread_flush(s->unread);
}

/* Free the pieces, coalesce first: it asks presence. */
static void
memory_free(struct state *state)
{
	struct state_memory *s = (struct state_memory *)state;

	coalesce_free(s->coalesce);
	presence_free(s->presence);
	dedupe_free(s->dedupe);
	unread_free(s->unread);
	free(s);
}

/* Presence's and coalescing's figures. */
static void
memory_get_stats(const struct state *state, struct state_stats *stats)
{
	const struct state_memory *s = (const struct state_memory *)state;
	struct presence_stats presence;
	struct coalesce_stats coalesce;

	memset(stats, 0, sizeof *stats);
	presence_get_stats(s->presence, &presence);
	coalesce_get_stats(s->coalesce, &coalesce);
	stats->backend = "memory";
	stats->up = 1;
	stats->pending_recipients = coalesce.pending;
	stats->presence_entries = presence.entries;
	stats->presence_expired = presence.expired;
	stats->presence_dropped = presence.dropped;
}

static const struct state_ops state_memory_ops = {
	.name = "memory",
	.synchronous = 1,
	.set_callbacks = memory_set_callbacks,
	.set_options = memory_set_options,
	.ready = memory_ready,
	.admit = memory_admit,
	.message_new = memory_message_new,
	.message_fresh = memory_message_fresh,
	.decide = memory_decide,
	.message_free = memory_message_free,
	.hold = memory_hold,
	.presence = memory_presence,
	.read = memory_read,
	.change = memory_change,
	.mark_sent = memory_mark_sent,
	.flush = memory_flush,
	.sweep = memory_sweep,
	.stop = memory_stop,
	.free = memory_free,
	.get_stats = memory_get_stats,
};
