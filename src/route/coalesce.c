/* Messages waiting for a recipient: coalescing windows and grace holds. */
#include "autoconf.h"

#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "coalesce.h"
#include "log.h"
#include "model.h"
#include "pair_key.h"
#include "presence.h"
#include "strmap.h"
#include "tracker.h"
#include "xmalloc.h"

/* A message waiting for a recipient: its own copy of what the notification shows. */
struct held {
	char *id;
	char *sender;
	char *sender_name;
	char *room_name;
	char *text;
	json_t *push;
	struct tracker *tracker;
};

/* What waits for one recipient in one room. */
struct bucket {
	char *key;			/* "room\0client" */
	size_t keylen;
	const char *room;
	const char *client;
	struct held *messages;
	size_t count, capacity;
	struct device_target **targets;	/* the latest known devices, owned */
	size_t target_count;
	int windowed;			/* a window was opened (it may have ended) */
	int queued;			/* on the due list: its window runs */
	int64_t deadline;		/* monotonic ms: the end of its window */
	TAILQ_ENTRY(bucket) due;
};

TAILQ_HEAD(bucket_list, bucket);

struct coalesce {
	struct coalesce_options options;
	struct strmap *buckets;		/* "room\0client" -> struct bucket */
	struct bucket_list due;		/* buckets in their window, by deadline */
	struct event *timer;		/* for the head of due; NULL without a base */
	int timer_set;
	int64_t timer_deadline;		/* what the timer is set for */
	struct coalesce_stats stats;
};

static void coalesce_timer(evutil_socket_t fd, short what, void *arg);

/* No bucket yet. */
struct coalesce *
coalesce_new(const struct coalesce_options *options)
{
	struct coalesce *c = xcalloc(1, sizeof *c);

	c->options = *options;
	if (c->options.clock == NULL)
		c->options.clock = clock_monotonic_ms;
	c->buckets = strmap_new();
	TAILQ_INIT(&c->due);
	if (options->base != NULL &&
	    (c->timer = evtimer_new(options->base, coalesce_timer, c)) == NULL)
		fatalx("cannot create the coalescing timer");
	return c;
}

/* Windows opened from now on last window_ms. */
void
coalesce_set_window(struct coalesce *c, int64_t window_ms)
{
	c->options.window_ms = window_ms;
}

/* The window of the buckets opened now. */
int64_t
coalesce_window(const struct coalesce *c)
{
	return c->options.window_ms;
}

/* Counters. */
void
coalesce_get_stats(const struct coalesce *c, struct coalesce_stats *stats)
{
	*stats = c->stats;
}

/* Free a held message's copy (not its tracker). */
static void
held_free(struct held *h)
{
	free(h->id);
	free(h->sender);
	free(h->sender_name);
	free(h->room_name);
	free(h->text);
	json_decref(h->push);
}

/* Set the timer for the first deadline, unless it is set for it already. */
static void
coalesce_arm(struct coalesce *c, int64_t now)
{
	struct bucket *b = TAILQ_FIRST(&c->due);
	struct timeval tv;
	int64_t delay;

	if (c->timer == NULL)
		return;
	if (b == NULL) {
		if (c->timer_set)
			evtimer_del(c->timer);
		c->timer_set = 0;
		return;
	}
	if (c->timer_set && c->timer_deadline == b->deadline)
		return;
	delay = b->deadline > now ? b->deadline - now : 0;
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(c->timer, &tv);
	c->timer_set = 1;
	c->timer_deadline = b->deadline;
}

/* Take a bucket out of the map and the due list: nothing finds it any more. */
static void
bucket_detach(struct coalesce *c, struct bucket *b)
{
	strmap_remove(c->buckets, b->key, b->keylen);
	c->stats.pending--;
	if (b->queued) {
		TAILQ_REMOVE(&c->due, b, due);
		b->queued = 0;
	}
}

/* Free a detached bucket, releasing (abandon: abandoning) the trackers it holds. */
static void
bucket_destroy(struct bucket *b, int abandon)
{
	for (size_t i = 0; i < b->count; i++) {
		if (b->messages[i].tracker != NULL) {
			if (abandon)
				tracker_abandon(b->messages[i].tracker);
			tracker_release(b->messages[i].tracker);
		}
		held_free(&b->messages[i]);
	}
	free(b->messages);
	for (size_t i = 0; i < b->target_count; i++)
		free(b->targets[i]);
	free(b->targets);
	free(b->key);
	free(b);
}

/* Hand a detached bucket to the owner, then free what it left. */
static void
bucket_send(struct coalesce *c, struct bucket *b)
{
	struct held *last = &b->messages[b->count - 1];
	struct notify_message latest = { b->room, last->id, last->sender, last->sender_name,
		last->room_name, last->text, last->push };
	struct coalesce_batch batch;

	batch.room = b->room;
	batch.client = b->client;
	batch.latest = &latest;
	batch.count = b->count;
	batch.message_ids = xcalloc(b->count, sizeof *batch.message_ids);
	batch.trackers = xcalloc(b->count, sizeof *batch.trackers);
	for (size_t i = 0; i < b->count; i++) {
		/* The trackers move to the batch; latest keeps pointing into the bucket. */
		batch.message_ids[i] = xstrdup(b->messages[i].id);
		batch.trackers[i] = b->messages[i].tracker;
		b->messages[i].tracker = NULL;
	}
	batch.targets = b->targets;
	batch.target_count = b->target_count;
	b->targets = NULL;
	b->target_count = 0;
	c->options.send(&batch, c->options.arg);
	if (batch.message_ids != NULL) {
		for (size_t i = 0; i < batch.count; i++)
			free(batch.message_ids[i]);
		free(batch.message_ids);
	}
	if (batch.trackers != NULL) {
		for (size_t i = 0; i < batch.count; i++)
			tracker_release(batch.trackers[i]);
		free(batch.trackers);
	}
	if (batch.targets != NULL) {
		for (size_t i = 0; i < batch.target_count; i++)
			free(batch.targets[i]);
		free(batch.targets);
	}
	bucket_destroy(b, 0);
}

/* Send what a bucket holds, or drop it if the recipient is back; in grace it waits. */
static void
bucket_flush(struct coalesce *c, struct bucket *b)
{
	enum presence_state state = presence_get(c->options.presence, b->room, b->client);

	if (state == PRESENCE_GRACE)
		return;	/* the end of the grace decides */
	bucket_detach(c, b);
	if (state == PRESENCE_PRESENT || b->count == 0)
		bucket_destroy(b, 0);
	else
		bucket_send(c, b);
}

/* The timer: the head of the due list, if its window has ended by the clock. */
static void
coalesce_timer(evutil_socket_t fd, short what, void *arg)
{
	struct coalesce *c = arg;

	c->timer_set = 0;
	coalesce_tick(c, c->options.clock());
}

/* Flush the buckets whose window has ended. */
void
coalesce_tick(struct coalesce *c, int64_t now)
{
	struct bucket *b;

	while ((b = TAILQ_FIRST(&c->due)) != NULL && b->deadline <= now) {
		TAILQ_REMOVE(&c->due, b, due);
		b->queued = 0;
		bucket_flush(c, b);
	}
	coalesce_arm(c, now);
}

/* Put a bucket on the due list in deadline order (the window may have changed). */
static void
coalesce_queue(struct coalesce *c, struct bucket *b, int64_t now)
{
	struct bucket *after = TAILQ_LAST(&c->due, bucket_list);

	b->windowed = 1;
	b->queued = 1;
	b->deadline = now + c->options.window_ms;
	while (after != NULL && after->deadline > b->deadline)
		after = TAILQ_PREV(after, bucket_list, due);
	if (after == NULL)
		TAILQ_INSERT_HEAD(&c->due, b, due);
	else
		TAILQ_INSERT_AFTER(&c->due, after, b, due);
	coalesce_arm(c, now);
}

/* What waits for a recipient in a room, if anything. */
static struct bucket *
coalesce_find(const struct coalesce *c, const char *room, const char *client)
{
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, room, client, &keylen);
	struct bucket *b = strmap_get(c->buckets, key, keylen);

	if (key != kbuf)
		free(key);
	return b;
}

/* Hold a message for a recipient, with its current devices. */
void
coalesce_add(struct coalesce *c, const char *client, const struct notify_message *m,
    struct tracker *t, struct device_target **targets, size_t count, int window,
    int64_t now)
{
	struct bucket *b = coalesce_find(c, m->room, client);
	struct held *h;

	if (b == NULL) {
		b = xcalloc(1, sizeof *b);
		b->key = pair_key_new(m->room, client, &b->keylen);
		b->room = b->key;
		b->client = pair_key_second(b->key);
		strmap_put(c->buckets, b->key, b->keylen, b);
		c->stats.pending++;
	} else
		c->stats.joined++;
	/* The latest resolution of the recipient's devices wins. */
	for (size_t i = 0; i < b->target_count; i++)
		free(b->targets[i]);
	free(b->targets);
	b->targets = targets;
	b->target_count = count;
	if (b->count == b->capacity) {
		b->capacity = b->capacity == 0 ? 4 : b->capacity * 2;
		b->messages = xreallocarray(b->messages, b->capacity, sizeof *b->messages);
	}
	h = &b->messages[b->count++];
	h->id = xstrdup(m->id);
	h->sender = xstrdup(m->sender);
	h->sender_name = m->sender_name != NULL ? xstrdup(m->sender_name) : NULL;
	h->room_name = m->room_name != NULL ? xstrdup(m->room_name) : NULL;
	h->text = m->text != NULL ? xstrdup(m->text) : NULL;
	h->push = m->push != NULL ? json_incref(m->push) : NULL;
	h->tracker = t;
	tracker_hold(t);
	if (window && !b->windowed)
		coalesce_queue(c, b, now);
}

/* The grace ended without a return: send what was held. */
void
coalesce_away(struct coalesce *c, const char *room, const char *client)
{
	struct bucket *b = coalesce_find(c, room, client);

	if (b != NULL)
		bucket_flush(c, b);
}

/* Back in the room within the grace: what was said meanwhile is being read. */
void
coalesce_return(struct coalesce *c, const char *room, const char *client)
{
	struct bucket *b = coalesce_find(c, room, client);

	if (b != NULL) {
		bucket_detach(c, b);
		bucket_destroy(b, 0);
	}
}

/* An edit or a deletion, applied to every bucket of its room. */
struct coalesce_edit {
	struct coalesce *coalesce;
	const char *room;
	const char *id;
	int delete;
	const char *text;
	size_t deleted;
};

/* One bucket: drop or edit the held message the event names. */
static void
coalesce_change_bucket(const char *key, size_t keylen, void *value, void *arg)
{
	struct bucket *b = value;
	struct coalesce_edit *edit = arg;

	if (strcmp(b->room, edit->room) != 0)
		return;
	for (size_t i = 0; i < b->count; i++) {
		struct held *h = &b->messages[i];

		if (strcmp(h->id, edit->id) != 0)
			continue;
		if (edit->delete) {
			edit->deleted++;
			tracker_release(h->tracker);
			held_free(h);
			memmove(h, h + 1, (b->count - i - 1) * sizeof *h);
			b->count--;
			i--;
		} else if (edit->text != NULL) {
			free(h->text);
			h->text = xstrdup(edit->text);
		}
	}
	if (b->count == 0) {
		bucket_detach(edit->coalesce, b);
		bucket_destroy(b, 0);
	}
}

/* Apply an edit or a deletion to what waits. */
size_t
coalesce_change(struct coalesce *c, const char *room, const char *id, int delete,
    const char *text)
{
	struct coalesce_edit edit = { c, room, id, delete, text, 0 };

	/* A window whose bucket went ends with nothing to do: the timer is left alone. */
	strmap_foreach(c->buckets, coalesce_change_bucket, &edit);
	return edit.deleted;
}

/* How many messages wait for a recipient in a room. */
size_t
coalesce_waiting(const struct coalesce *c, const char *room, const char *client)
{
	struct bucket *b = coalesce_find(c, room, client);

	return b != NULL ? b->count : 0;
}

/* Drop one bucket at shutdown. */
static void
coalesce_clear_bucket(const char *key, size_t keylen, void *value, void *arg)
{
	struct bucket *b = value;

	bucket_detach(arg, b);
	bucket_destroy(b, 1);
}

/* What waits is not acknowledged: Streams and the outbox hand it again. */
void
coalesce_clear(struct coalesce *c)
{
	strmap_foreach(c->buckets, coalesce_clear_bucket, c);
}

/* Drop what waits, then free. */
void
coalesce_free(struct coalesce *c)
{
	if (c == NULL)
		return;
	coalesce_clear(c);
	if (c->timer != NULL)
		event_free(c->timer);
	strmap_free(c->buckets);
	free(c);
}
