/* Routing one message to its room's members: who, when, and how. */
#include "autoconf.h"

#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "dedupe.h"
#include "dispatch.h"
#include "event.h"
#include "log.h"
#include "membership.h"
#include "model.h"
#include "notification.h"
#include "notify_text.h"
#include "pair_key.h"
#include "rate_limit.h"
#include "route.h"
#include "route_cache.h"
#include "state.h"
#include "store_registry.h"
#include "store_writer.h"
#include "strmap.h"
#include "tracker.h"
#include "xmalloc.h"

/* A message being routed, between the store read and the routing. */
struct route_job {
	struct route *route;
	struct room_event *event;
	struct tracker *tracker;
	struct room_route members;
	int cancelled;			/* deleted while its members were being read */
	int count_unread;
	struct state_message *state;	/* what the state keeps of it */
	char *key;			/* in route->jobs */
	size_t keylen;
	/* Routing, which a big room's message spreads over turns of the loop. */
	int64_t now;
	size_t next_member;
	size_t chunk_end;		/* the members the state is deciding end here */
	struct state_candidate *candidates;	/* the chunk's, for the state */
	size_t *candidate_members;	/* their places in members */
	size_t candidate_count;
	struct dispatch_message *message;	/* the message's content, once someone is sent it */
	struct event *resume;
	TAILQ_ENTRY(route_job) resuming;
};

/* A batch waiting for its recipient's devices to be read. */
struct route_batch {
	struct route *route;
	char *room;
	char *client;
	struct notification notification;
	char **message_ids;
	struct tracker **trackers;
	size_t count;
	char **sent;			/* devices sent this batch before */
	size_t sent_count;
	struct target_list targets;	/* read on the reader */
};

struct route {
	struct route_pieces pieces;
	int stopping;
	struct strmap *jobs;		/* "room\0id" -> struct route_job, being read or routed */
	TAILQ_HEAD(, route_job) resuming;	/* routed over several turns, waiting for the next */
	struct route_stats stats;
};

/* Nothing in hand yet. */
struct route *
route_new(const struct route_pieces *pieces)
{
	struct route *route = xcalloc(1, sizeof *route);

	route->pieces = *pieces;
	route->jobs = strmap_new();
	TAILQ_INIT(&route->resuming);
	return route;
}

/* Whether a sender becomes a member, from now on. */
void
route_set_implicit_membership(struct route *route, int implicit_membership)
{
	route->pieces.implicit_membership = implicit_membership;
}

/* Counters. */
void
route_get_stats(const struct route *route, struct route_stats *stats)
{
	*stats = route->stats;
}

/* An event that needs nothing more: free it and release its tracker. */
static void
route_event_done(struct room_event *e, struct tracker *t)
{
	room_event_free(e);
	free(e);
	tracker_release(t);
}

/* What a message's notification tells of. */
static void
route_notify_message(const struct room_event *e, struct notify_message *m)
{
	m->room = e->room;
	m->id = e->id;
	m->sender = e->client_id != NULL ? e->client_id : "";
	m->sender_name = e->sender_name;
	m->room_name = e->room_name;
	m->text = e->text;
	m->push = e->push;
}

/* Was the recipient mentioned? */
static int
route_mentioned(const struct room_event *e, const char *client)
{
	for (size_t i = 0; i < e->mention_count; i++) {
		if (strcmp(e->mentions[i], client) == 0)
			return 1;
	}
	return 0;
}

/* Free targets nobody is sent to. */
static void
route_targets_free(struct device_target **targets, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(targets[i]);
	free(targets);
}

/* The message is routed, or given up: release what routing it held. */
static void
route_finish(struct route_job *job)
{
	struct route *route = job->route;

	if (job->key != NULL)
		strmap_remove(route->jobs, job->key, job->keylen);
	if (job->message != NULL)
		dispatch_message_release(job->message);
	if (job->resume != NULL)
		event_free(job->resume);
	store_room_route_free(&job->members);
	if (route->stopping)
		tracker_abandon(job->tracker);
	state_message_free(job->state);
	route_event_done(job->event, job->tracker);
	free(job->candidates);
	free(job->candidate_members);
	free(job->key);
	free(job);
}

/* The message's content, the first time a member is sent it now; NULL if none can be. */
static struct dispatch_message *
route_content(struct route_job *job)
{
	struct notify_message m;
	struct notification n;

	if (job->message != NULL)
		return job->message;
	route_notify_message(job->event, &m);
	if (notify_text_build(&m, 1, -1, &n) != NOTIFY_TEXT_OK)
		return NULL;
	/* The job holds it until it is routed: sends may end between turns. */
	job->message = dispatch_message_new(job->route->pieces.dispatch, &m, &n);
	return job->message;
}

static void route_continue(struct route_job *job);

/* The next turn of a big room's routing. */
static void
route_resume(evutil_socket_t fd, short what, void *arg)
{
	struct route_job *job = arg;

	TAILQ_REMOVE(&job->route->resuming, job, resuming);
	route_continue(job);
}

/* Make the job findable by key, so that an edit or a deletion meanwhile reaches it. */
static void
route_keep(struct route_job *job)
{
	if (job->key == NULL) {
		job->key = pair_key_new(job->event->room, job->event->id, &job->keylen);
		strmap_put(job->route->jobs, job->key, job->keylen, job);
	}
}

/* Leave the rest of the members to the next turn of the loop, after its I/O. */
static void
route_defer(struct route_job *job)
{
	struct route *route = job->route;
	struct timeval now = { 0, 0 };

	route_keep(job);
	if (job->resume == NULL &&
	    (job->resume = evtimer_new(route->pieces.base, route_resume, job)) == NULL)
		fatalx("cannot create a routing event");
	TAILQ_INSERT_TAIL(&route->resuming, job, resuming);
	evtimer_add(job->resume, &now);
}

/* Notify an away member now, or hold the message for them; 0, or -1 to stop routing. */
static int
route_member(struct route_job *job, struct room_member_route *m,
    enum state_decision decision, int64_t badge)
{
	struct route *route = job->route;
	struct route_pieces *p = &route->pieces;
	struct device_target **targets;
	struct dispatch_message *message;
	struct notify_message held;
	size_t count;

	targets = dedupe_fresh_targets(m, &job->members, &count);
	if (count == 0) {
		free(targets);
		return 0;
	}
	if (decision == STATE_HOLD_GRACE || decision == STATE_HOLD_WINDOW) {
		/* In grace: held to its end. Else coalesced in a window. */
		if (decision == STATE_HOLD_GRACE)
			route->stats.held++;
		route_notify_message(job->event, &held);
		state_hold(p->state, m->client_id, &held, job->tracker, targets, count, decision);
		return 0;
	}
	/* At once: one content for the message, each recipient's badge spliced in. */
	if (rate_limit_take(p->rates, m->client_id, clock_monotonic_ms()) != RATE_LIMIT_OK) {
		route->stats.rate_limited++;
		route_targets_free(targets, count);
		return 0;
	}
	if ((message = route_content(job)) == NULL) {
		route_targets_free(targets, count);
		return -1;
	}
	dispatch_message_send(message, job->tracker, targets, count, badge, clock_now_ms());
	return 0;
}

/* Devices the state says this message was sent to before join the route's notified. */
static void
route_add_notified(struct route_job *job, const char *const *sent, size_t count)
{
	struct room_route *r = &job->members;

	r->notified = xreallocarray(r->notified, r->notified_count + count + 1,
	    sizeof *r->notified);
	for (size_t i = 0; i < count; i++)
		r->notified[r->notified_count++] = xstrdup(sent[i]);
	r->notified[r->notified_count] = NULL;
}

/* The state decided for a chunk of members: notify or hold who it says, then go on. */
static void
route_decided(int result, const char *const *sent, size_t sent_count, void *arg)
{
	struct route_job *job = arg;
	struct route *route = job->route;

	if (result == STATE_ESTOPPED || result == STATE_EFAILED || route->stopping ||
	    job->cancelled) {
		/* Not decided: not acknowledged either, it comes again. */
		if (result == STATE_EFAILED)
			tracker_abandon(job->tracker);
		route_finish(job);
		return;
	}
	if (result == STATE_DUPLICATE || result == STATE_DELETED) {
		if (result == STATE_DUPLICATE)
			route->stats.duplicates++;
		else
			route->stats.cancelled++;
		route_finish(job);
		return;
	}
	if (sent_count > 0)
		route_add_notified(job, sent, sent_count);
	for (size_t i = 0; i < job->candidate_count; i++) {
		struct state_candidate *c = &job->candidates[i];

		if (c->decision == STATE_SKIP)
			continue;
		if (route_member(job, &job->members.members[job->candidate_members[i]],
		    c->decision, c->badge) != 0) {
			route_finish(job);
			return;
		}
	}
	job->next_member = job->chunk_end;
	if (job->next_member < job->members.member_count) {
		route_defer(job);
		return;
	}
	route_finish(job);
}

/*
 * Hand the next members of the room (ROUTE_CHUNK_MEMBERS, the sender left out) to
 * the state, which decides whether, when and how to notify each.
 */
static void
route_continue(struct route_job *job)
{
	struct route *route = job->route;
	struct room_event *e = job->event;
	size_t end = job->next_member + ROUTE_CHUNK_MEMBERS, n = 0;

	if (route->stopping || job->cancelled ||
	    job->next_member >= job->members.member_count) {
		route_finish(job);
		return;
	}
	if (end > job->members.member_count)
		end = job->members.member_count;
	if (job->candidates == NULL) {
		job->candidates = xcalloc(ROUTE_CHUNK_MEMBERS, sizeof *job->candidates);
		job->candidate_members = xcalloc(ROUTE_CHUNK_MEMBERS,
		    sizeof *job->candidate_members);
	}
	for (size_t i = job->next_member; i < end; i++) {
		struct room_member_route *m = &job->members.members[i];
		struct state_candidate *c = &job->candidates[n];

		if (strcmp(m->client_id, e->client_id) == 0)
			continue;
		c->client_id = m->client_id;
		/* Muted or not mentioned: the message is still unread for them. */
		c->notify = m->target_count > 0 && m->muted_until <= job->now &&
		    (!m->mentions_only || route_mentioned(e, m->client_id));
		c->decision = STATE_SKIP;
		c->badge = -1;
		job->candidate_members[n++] = i;
	}
	job->candidate_count = n;
	job->chunk_end = end;
	/* Being decided elsewhere: an edit or a deletion meanwhile finds it here. */
	if (!state_synchronous(route->pieces.state))
		route_keep(job);
	/* A synchronous state decides (and may finish the job) before this returns. */
	state_decide(job->state, job->candidates, n, job->count_unread, route_decided, job);
}

/* The store read is done (or the route came from memory): route the message. */
static void
route_resolved(int result, void *arg)
{
	struct route_job *job = arg;

	if (result != STORE_OK || job->route->stopping || job->cancelled) {
		route_finish(job);
		return;
	}
	/*
	 * Devices already notified of this message mean it was handled before (a
	 * redelivery after a restart): it is no news, so it does not count as unread.
	 */
	job->count_unread = job->members.notified_count == 0;
	job->now = clock_now_ms();
	route_continue(job);
}

/* A message: skip duplicates, then find its room's members, from memory or the store. */
void
route_message(struct route *route, struct room_event *e, struct tracker *t)
{
	struct route_pieces *p = &route->pieces;
	struct route_job *job;
	int fresh;

	route->stats.messages++;
	if (e->client_id == NULL)
		e->client_id = xstrdup("");	/* an anonymous sender (Ably without clientId) */
	if (state_admit(p->state, e, clock_now_ms()) == STATE_DUPLICATE) {
		route->stats.duplicates++;
		route_event_done(e, t);
		return;
	}
	if (p->implicit_membership && e->client_id[0] != '\0')
		membership_join_implicit(p->members, e->room, e->client_id, clock_now_ms());
	if (e->push_skip) {
		route_event_done(e, t);
		return;
	}
	job = xcalloc(1, sizeof *job);
	job->route = route;
	job->event = e;
	job->tracker = t;
	/* What the state keeps of it: memory, who was in the room when it came. */
	job->state = state_message_new(p->state, e);
	fresh = state_message_fresh(job->state);
	if (route_cache_route(p->routes, e->room, e->id, fresh, &job->members, route_resolved,
	    job) == ROUTE_CACHE_HIT) {
		route_resolved(STORE_OK, job);
		return;
	}
	/* Being read: an edit or a deletion meanwhile finds it here. */
	route_keep(job);
}

/* The state applied an edit or a deletion to what it holds. */
static void
route_changed(size_t cancelled, void *arg)
{
	struct route *route = arg;

	route->stats.cancelled += cancelled;
}

/* Apply an edit or a deletion to what has not left yet. */
void
route_change(struct route *route, const struct room_event *e, struct tracker *t)
{
	struct route_pieces *p = &route->pieces;
	size_t keylen, cancelled;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, e->room, e->id, &keylen);
	struct route_job *reading = strmap_get(route->jobs, key, keylen);
	int delete = e->type == EVENT_MESSAGE_DELETE, sent;
	struct notify_message edit;

	if (key != kbuf)
		free(key);
	if (delete) {
		/* Sent at once: its deliveries not handed out yet are cancelled, and counted. */
		sent = dispatch_cancel(p->dispatch, e->room, e->id,
		    "message deleted before it was sent", &cancelled) == DISPATCH_OK;
		route->stats.cancelled += cancelled;
		/* Still being read or routed: it goes no further. */
		if (reading != NULL) {
			reading->cancelled = 1;
			/* Half routed, its deliveries are counted as they are cancelled. */
			if (!sent)
				route->stats.cancelled++;
		}
	} else if (e->text != NULL) {
		/* Still being read: change the message before it is routed. */
		if (reading != NULL) {
			free(reading->event->text);
			reading->event->text = xstrdup(e->text);
		}
		route_notify_message(e, &edit);
		dispatch_edit(p->dispatch, &edit);
	}
	state_change(p->state, e, t, route_changed, route);
}

/* Free a batch that waited for its devices, releasing (abandon: abandoning) its trackers. */
static void
route_batch_free(struct route_batch *b, int abandon)
{
	for (size_t i = 0; i < b->count; i++) {
		if (abandon)
			tracker_abandon(b->trackers[i]);
		tracker_release(b->trackers[i]);
		free(b->message_ids[i]);
	}
	free(b->trackers);
	free(b->message_ids);
	for (size_t i = 0; i < b->sent_count; i++)
		free(b->sent[i]);
	free(b->sent);
	notification_free(&b->notification);
	model_target_list_free(&b->targets);
	free(b->room);
	free(b->client);
	free(b);
}

/* Reader thread: the recipient's devices. */
static int
route_batch_read(struct store *store, void *arg)
{
	struct route_batch *b = arg;

	return store_targets_add(store, STORE_TARGETS_CLIENT, b->client, &b->targets);
}

/* Loop thread: send the batch to the devices read, but those it was sent to before. */
static void
route_batch_read_done(int result, void *arg)
{
	struct route_batch *b = arg;
	struct route *route = b->route;
	struct device_target **targets;
	size_t count = 0;

	if (result != STORE_OK || route->stopping) {
		route_batch_free(b, route->stopping);
		return;
	}
	targets = xcalloc(b->targets.count + 1, sizeof *targets);
	for (size_t i = 0; i < b->targets.count; i++) {
		struct device_target *t = b->targets.items[i];
		int sent = 0;

		for (size_t k = 0; k < b->sent_count && !sent; k++)
			sent = strcmp(b->sent[k], t->device_id) == 0;
		if (sent)
			free(t);
		else
			targets[count++] = t;
		b->targets.items[i] = NULL;
	}
	b->targets.count = 0;
	if (count == 0) {
		free(targets);
		route_batch_free(b, 0);
		return;
	}
	dispatch_batch_send(route->pieces.dispatch, b->room, &b->notification, b->message_ids,
	    b->trackers, b->count, targets, count, clock_now_ms());
	/* The send owns them now. */
	memset(&b->notification, 0, sizeof b->notification);
	b->message_ids = NULL;
	b->trackers = NULL;
	b->count = 0;
	route_batch_free(b, 0);
}

/*
 * A recipient's bucket is due: send it as one notification, within the rate limit,
 * to the devices it carries, or to the recipient's devices once they are read.
 */
void
route_send_batch(struct route *route, struct state_batch *b)
{
	struct route_pieces *p = &route->pieces;
	struct route_batch *wait;
	struct notification n;

	if (rate_limit_take(p->rates, b->client, clock_monotonic_ms()) != RATE_LIMIT_OK) {
		route->stats.rate_limited++;
		return;
	}
	if (notify_text_build(b->latest, b->count, b->badge, &n) != NOTIFY_TEXT_OK)
		return;
	route->stats.coalesced += b->count - 1;
	if (b->targets_known) {
		dispatch_batch_send(p->dispatch, b->room, &n, b->message_ids, b->trackers,
		    b->count, b->targets, b->target_count, clock_now_ms());
		b->message_ids = NULL;
		b->trackers = NULL;
		b->targets = NULL;
		return;
	}
	wait = xcalloc(1, sizeof *wait);
	wait->route = route;
	wait->room = xstrdup(b->room);
	wait->client = xstrdup(b->client);
	wait->notification = n;
	wait->message_ids = b->message_ids;
	wait->trackers = b->trackers;
	wait->count = b->count;
	b->message_ids = NULL;
	b->trackers = NULL;
	if (b->sent_count > 0) {
		wait->sent = xcalloc(b->sent_count, sizeof *wait->sent);
		for (size_t i = 0; i < b->sent_count; i++)
			wait->sent[i] = xstrdup(b->sent[i]);
		wait->sent_count = b->sent_count;
	}
	store_writer_submit(p->reader, route_batch_read, route_batch_read_done, wait);
}

/* Drop the messages waiting for their next turn. */
void
route_stop(struct route *route)
{
	struct route_job *job;

	route->stopping = 1;
	/* Messages half routed: not acknowledged either, so handed again after a restart. */
	while ((job = TAILQ_FIRST(&route->resuming)) != NULL) {
		TAILQ_REMOVE(&route->resuming, job, resuming);
		route_finish(job);
	}
}

/* Free what is left: nothing, once the reads finished. */
void
route_free(struct route *route)
{
	if (route == NULL)
		return;
	strmap_free(route->jobs);
	free(route);
}
