/* Routing one message to its room's members: who, when, and how. */
#include "autoconf.h"

#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "coalesce.h"
#include "dedupe.h"
#include "dispatch.h"
#include "event.h"
#include "log.h"
#include "membership.h"
#include "notification.h"
#include "notify_text.h"
#include "pair_key.h"
#include "presence.h"
#include "rate_limit.h"
#include "route.h"
#include "route_cache.h"
#include "store_registry.h"
#include "strmap.h"
#include "tracker.h"
#include "unread.h"
#include "xmalloc.h"

/* A message being routed, between the store read and the routing. */
struct route_job {
	struct route *route;
	struct room_event *event;
	struct tracker *tracker;
	struct room_route members;
	int cancelled;			/* deleted while its members were being read */
	int count_unread;
	struct presence_entry *present;	/* the room's presence when the message came */
	size_t present_count;
	struct strmap *present_map;	/* the same, for a big room */
	char *key;			/* in route->jobs */
	size_t keylen;
	/* Routing, which a big room's message spreads over turns of the loop. */
	int64_t now;
	size_t next_member;
	struct dispatch_message *message;	/* the message's content, once someone is sent it */
	struct event *resume;
	TAILQ_ENTRY(route_job) resuming;
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

/* Was a client present when the message came? */
static int
route_was_present(struct route_job *job, const char *client)
{
	if (job->present_count > 16) {
		/* A busy room: look up, do not scan, for each of its members. */
		if (job->present_map == NULL) {
			job->present_map = strmap_new();
			for (size_t i = 0; i < job->present_count; i++) {
				if (job->present[i].state == PRESENCE_PRESENT)
					strmap_put(job->present_map, job->present[i].client_id,
					    strlen(job->present[i].client_id), job);
			}
		}
		return strmap_get(job->present_map, client, strlen(client)) != NULL;
	}
	for (size_t i = 0; i < job->present_count; i++) {
		if (job->present[i].state == PRESENCE_PRESENT &&
		    strcmp(job->present[i].client_id, client) == 0)
			return 1;
	}
	return 0;
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
	route_event_done(job->event, job->tracker);
	presence_snapshot_free(job->present, job->present_count);
	strmap_free(job->present_map);
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

/*
 * Leave the rest of the members to the next turn of the loop, after its I/O. The job
 * stays findable by key, so that an edit or a deletion meanwhile reaches it.
 */
static void
route_defer(struct route_job *job)
{
	struct route *route = job->route;
	struct timeval now = { 0, 0 };

	if (job->key == NULL) {
		job->key = pair_key_new(job->event->room, job->event->id, &job->keylen);
		strmap_put(route->jobs, job->key, job->keylen, job);
	}
	if (job->resume == NULL &&
	    (job->resume = evtimer_new(route->pieces.base, route_resume, job)) == NULL)
		fatalx("cannot create a routing event");
	TAILQ_INSERT_TAIL(&route->resuming, job, resuming);
	evtimer_add(job->resume, &now);
}

/* Notify an away member now, or hold the message for them; 0, or -1 to stop routing. */
static int
route_member(struct route_job *job, struct room_member_route *m, enum presence_state state,
    int64_t badge)
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
	if (state == PRESENCE_GRACE || coalesce_window(p->coalesce) > 0) {
		/* In grace: held to its end. Else coalesced in a window. */
		if (state == PRESENCE_GRACE)
			route->stats.held++;
		route_notify_message(job->event, &held);
		coalesce_add(p->coalesce, m->client_id, &held, job->tracker, targets, count,
		    state != PRESENCE_GRACE, clock_monotonic_ms());
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
	dispatch_message_send(message, job->tracker, targets, count,
	    badge >= 0 ? badge : unread_total(p->unread, m->client_id), clock_now_ms());
	return 0;
}

/* Decide, for the next members of the room, whether, when and how to notify them. */
static void
route_continue(struct route_job *job)
{
	struct route *route = job->route;
	struct room_event *e = job->event;
	size_t end = job->next_member + ROUTE_CHUNK_MEMBERS;

	if (route->stopping || job->cancelled) {
		route_finish(job);
		return;
	}
	for (; job->next_member < job->members.member_count; job->next_member++) {
		struct room_member_route *m = &job->members.members[job->next_member];
		enum presence_state state;
		int64_t badge = -1;

		if (job->next_member == end) {
			route_defer(job);
			return;
		}
		if (strcmp(m->client_id, e->client_id) == 0)
			continue;
		/* Present then (saw it come) or now (reading): no notification. */
		if (route_was_present(job, m->client_id))
			continue;
		state = presence_get(route->pieces.presence, e->room, m->client_id);
		if (state == PRESENCE_PRESENT)
			continue;
		/* Away (or about to be): the message is unread for them. */
		if (job->count_unread)
			badge = unread_add(route->pieces.unread, m->client_id, e->room, 1);
		if (m->muted_until > job->now ||
		    (m->mentions_only && !route_mentioned(e, m->client_id)))
			continue;
		if (route_member(job, m, state, badge) != 0)
			break;
	}
	route_finish(job);
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
	if (dedupe_seen(p->dedupe, e->room, e->id, clock_now_ms()) == DEDUPE_DUPLICATE) {
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
	/* Who was in the room when the message came, not when its members are known. */
	job->present = presence_snapshot(p->presence, e->room, &job->present_count);
	fresh = dedupe_is_fresh(p->dedupe, e->redelivered, e->ts);
	if (route_cache_route(p->routes, e->room, e->id, fresh, &job->members, route_resolved,
	    job) == ROUTE_CACHE_HIT) {
		route_resolved(STORE_OK, job);
		return;
	}
	/* Being read: an edit or a deletion meanwhile finds it here. */
	job->key = pair_key_new(e->room, e->id, &job->keylen);
	strmap_put(route->jobs, job->key, job->keylen, job);
}

/* Apply an edit or a deletion to what has not left yet. */
void
route_change(struct route *route, const struct room_event *e)
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
	route->stats.cancelled += coalesce_change(p->coalesce, e->room, e->id, delete, e->text);
}

/* A recipient's bucket is due: send it as one notification, within the rate limit. */
void
route_send_batch(struct route *route, struct coalesce_batch *b)
{
	struct route_pieces *p = &route->pieces;
	struct notification n;

	if (rate_limit_take(p->rates, b->client, clock_monotonic_ms()) != RATE_LIMIT_OK) {
		route->stats.rate_limited++;
		return;
	}
	if (notify_text_build(b->latest, b->count, unread_total(p->unread, b->client),
	    &n) != NOTIFY_TEXT_OK)
		return;
	route->stats.coalesced += b->count - 1;
	dispatch_batch_send(p->dispatch, b->room, &n, b->message_ids, b->trackers, b->count,
	    b->targets, b->target_count, clock_now_ms());
	b->message_ids = NULL;
	b->trackers = NULL;
	b->targets = NULL;
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
