/* The router: recipients, grace and coalescing, badges, dedupe, acknowledgements. */
#include "autoconf.h"

#include <sys/queue.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "delivery.h"
#include "log.h"
#include "notification.h"
#include "payload.h"
#include "presence.h"
#include "router.h"
#include "store.h"
#include "store_writer.h"
#include "strmap.h"
#include "xmalloc.h"

#define ROUTER_FLUSH_MS 200		/* notified marks and unread counts, written behind */
#define ROUTER_SWEEP_MS (30 * 1000)	/* forget old message ids */
#define RATE_WINDOW_MS (60 * 1000)
#define SOURCES_MAX 8
/*
 * Message ids remembered in memory, at most: past it, duplicates are still caught by
 * the notified marks in the store, only later (after the read).
 */
#define ROUTER_SEEN_MAX 1000000
/* Rooms whose members and devices are kept in memory, at most. */
#define ROUTER_ROUTES_MAX 10000
/*
 * Members routed in one turn of the event loop. A big room's message goes on in the
 * next turn: its first requests are out meanwhile, and other events do not wait for
 * the whole room (10,000 members take some 20 ms).
 */
#define ROUTER_CHUNK_MEMBERS 256

/* One event being handled: acknowledged when its last part is done. */
struct tracker {
	struct router *router;
	source_ack_fn *ack;
	void *ctx;
	unsigned refs;
	int abandoned;			/* shutdown: its source hands it again later */
};

/* A message waiting for a recipient: coalescing, or the end of a grace period. */
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
	struct router *router;
	char *key;			/* "room\0client" */
	size_t keylen;
	const char *room;
	const char *client;
	struct held *messages;
	size_t count, capacity;
	struct device_target **targets;	/* the latest known devices, owned */
	size_t target_count;
	struct event *timer;		/* the coalescing window */
};

/* One notification to one recipient's devices. */
struct send {
	struct router *router;
	char *room;
	char **message_ids;		/* for the notified marks */
	size_t message_count;
	struct tracker **trackers;
	size_t tracker_count;
	struct device_target **targets;	/* owned: deliveries borrow their strings */
	size_t target_count;
	struct push_content *content;
	size_t outstanding;
	int abandoned;			/* a delivery was dropped at shutdown */
	struct message_content *message;	/* one-message sends: shared with its others */
};

/* The shared content of a message sent at once (no coalescing): for edits and deletes. */
struct message_content {
	struct push_content *content;
	unsigned sends;
	const char *sender;		/* the message's sender, which an edit keeps */
	size_t keylen;
	char key[];			/* "room\0id" in router->messages, a NUL, the sender */
};

/* A message being routed, between the store read and the routing. */
struct route_job {
	struct router *router;
	struct room_event *event;
	struct tracker *tracker;
	struct room_route route;
	int result;
	int cancelled;			/* deleted while its members were being read */
	uint64_t generation;		/* the registry's, before the read */
	int count_unread;
	struct presence_entry *present;	/* the room's presence when the message came */
	size_t present_count;
	struct strmap *present_map;	/* the same, for a big room */
	char *key;			/* in router->routing */
	size_t keylen;
	/* Routing, which a big room's message spreads over turns of the loop. */
	int64_t now;
	size_t next_member;
	struct push_content *content;	/* the message's, once someone is sent it */
	struct message_content *message;
	struct event *resume;
	TAILQ_ENTRY(route_job) resuming;
};

struct source_ref {
	const struct source_ops *ops;
	struct source *source;
};

/* A client's unread messages across rooms: the badge. */
struct unread_client {
	int64_t total;
};

/* A client's unread messages in one room, and whether the store is behind on it. */
struct unread_room {
	struct unread_client *client;
	int64_t count;
	int dirty;			/* on the router's unread_dirty list */
	size_t keylen;
	char key[];			/* "client\0room" and a NUL */
};

struct router {
	struct event_base *base;
	struct store *store;
	struct store_writer *writer;
	struct store_writer *reader;
	struct router_options options;
	struct presence *presence;
	struct source_sink sink;
	struct source_ref sources[SOURCES_MAX];
	size_t source_count;
	int sources_paused;
	int stopping;

	struct strmap *buckets;		/* "room\0client" -> struct bucket */
	struct strmap *messages;	/* "room\0id" -> struct message_content */
	struct strmap *routing;		/* "room\0id" -> struct route_job, being read or routed */
	TAILQ_HEAD(, route_job) resuming;	/* routed over several turns, waiting for the next */
	struct strmap *routes;		/* room -> struct route_cache */
	int64_t started_at;		/* ms: older messages may have notified before */
	struct strmap *seen;		/* "room\0id" -> boxed expiry (ms) */
	struct strmap *members;		/* "room\0client" known members (implicit joins) */
	struct strmap *unread;		/* "client\0room" -> struct unread_room */
	struct strmap *unread_total;	/* client -> struct unread_client */
	struct strmap *rates;		/* client -> struct rate */
	struct unread_room **unread_dirty;	/* counts to write, each once */
	size_t unread_dirty_count, unread_dirty_capacity;

	struct notified_mark *marks;	/* written behind; their ids point into mark_text */
	size_t mark_count, mark_capacity;
	char *mark_text;		/* the marks' ids, packed: "room\0message\0device\0" */
	size_t mark_text_len, mark_text_size;
	struct event *flush_timer;
	struct event *sweep_timer;
	int flush_running;

	struct router_stats stats;
};

struct rate {
	int64_t window_start;
	int count;
};

/* A room's members and devices as read at one registry generation. */
struct route_cache {
	uint64_t generation;
	struct room_route route;	/* without notified devices */
};

/* "a\0b": two strings as one map key. */
static char *
pair_key(const char *a, const char *b, size_t *len)
{
	size_t la = strlen(a), lb = strlen(b);
	char *key = xmalloc(la + lb + 2);

	memcpy(key, a, la + 1);
	memcpy(key + la + 1, b, lb + 1);
	*len = la + 1 + lb;
	return key;
}

/* Room for a pair key of two ids on the stack (ids are at most MODEL_ID_MAX bytes). */
#define PAIR_KEY_STACK (2 * 128 + 2)

/* A pair key for a lookup: in buf when it fits, else allocated (free if != buf). */
static char *
pair_key_into(char *buf, size_t bufsize, const char *a, const char *b, size_t *len)
{
	size_t la = strlen(a), lb = strlen(b);
	char *key = la + lb + 2 <= bufsize ? buf : xmalloc(la + lb + 2);

	memcpy(key, a, la + 1);
	memcpy(key + la + 1, b, lb + 1);
	*len = la + 1 + lb;
	return key;
}

static int64_t *
box(int64_t value)
{
	int64_t *p = xmalloc(sizeof *p);

	*p = value;
	return p;
}

/* ---- acknowledgements and backpressure ---- */

static struct tracker *
tracker_new(struct router *r, source_ack_fn *ack, void *ctx)
{
	struct tracker *t = xmalloc(sizeof *t);

	t->router = r;
	t->ack = ack;
	t->ctx = ctx;
	t->refs = 1;
	t->abandoned = 0;
	r->stats.in_flight++;
	return t;
}

/* Resume paused sources once there is room again. */
static void
maybe_resume(struct router *r)
{
	if (!r->sources_paused || r->stopping)
		return;
	if (r->stats.in_flight * 10 > r->options.queue_size * 9 || delivery_room() == 0)
		return;
	r->sources_paused = 0;
	for (size_t i = 0; i < r->source_count; i++) {
		if (r->sources[i].ops->resume != NULL)
			r->sources[i].ops->resume(r->sources[i].source);
	}
}

static void
tracker_release(struct tracker *t)
{
	struct router *r = t->router;

	if (--t->refs > 0)
		return;
	if (t->ack != NULL && !t->abandoned)
		t->ack(t->ctx);
	free(t);
	r->stats.in_flight--;
	maybe_resume(r);
}

/* ---- notified marks and unread counts, written behind ---- */

struct flush_job {
	struct notified_mark *marks;
	size_t mark_count;
	char *mark_text;
	struct unread_count *unread;
	size_t unread_count;
	int64_t expire_before;
};

static int
flush_run(struct store *store, void *arg)
{
	struct flush_job *job = arg;
	int rc = store_notified_add(store, job->marks, job->mark_count);

	if (rc == STORE_OK)
		rc = store_unread_put(store, job->unread, job->unread_count);
	if (rc == STORE_OK && job->expire_before > 0)
		rc = store_notified_expire(store, job->expire_before);
	return rc;
}

static void
flush_done(int result, void *arg)
{
	struct flush_job *job = arg;

	/* A failure is logged by the store: dedupe and badges then err on the safe side. */
	free(job->marks);
	free(job->mark_text);
	free(job->unread);
	free(job);
}

/*
 * Hand marks and changed unread counts to the store writer: three buffers, not a
 * string per id. The counts' ids are their records' keys, which live as long as
 * the router, and so longer than the writer.
 */
static void
router_flush(struct router *r, int64_t expire_before)
{
	struct flush_job *job;
	char *next;

	if (r->mark_count == 0 && r->unread_dirty_count == 0 && expire_before == 0)
		return;
	job = xcalloc(1, sizeof *job);
	/* The ids went into the text in the marks' order; it stays put from here on. */
	next = r->mark_text;
	for (size_t i = 0; i < r->mark_count; i++) {
		r->marks[i].room_id = next;
		next += strlen(next) + 1;
		r->marks[i].message_id = next;
		next += strlen(next) + 1;
		r->marks[i].device_id = next;
		next += strlen(next) + 1;
	}
	job->marks = r->marks;
	job->mark_count = r->mark_count;
	job->mark_text = r->mark_text;
	r->marks = NULL;
	r->mark_count = r->mark_capacity = 0;
	r->mark_text = NULL;
	r->mark_text_len = r->mark_text_size = 0;
	job->unread = xcalloc(r->unread_dirty_count + 1, sizeof *job->unread);
	for (size_t i = 0; i < r->unread_dirty_count; i++) {
		struct unread_room *u = r->unread_dirty[i];
		struct unread_count *c = &job->unread[job->unread_count++];

		c->client_id = u->key;
		c->room_id = u->key + strlen(u->key) + 1;
		c->count = u->count;
		u->dirty = 0;
	}
	r->unread_dirty_count = 0;
	job->expire_before = expire_before;
	store_writer_submit(r->writer, flush_run, flush_done, job);
}

static void
router_flush_tick(evutil_socket_t fd, short what, void *arg)
{
	router_flush(arg, 0);
}

/* Append an id, and its NUL, to the marks' text. */
static void
mark_text_add(struct router *r, const char *id)
{
	size_t len = strlen(id) + 1;

	if (r->mark_text_len + len > r->mark_text_size) {
		while (r->mark_text_len + len > r->mark_text_size)
			r->mark_text_size = r->mark_text_size == 0 ? 16384 : r->mark_text_size * 2;
		r->mark_text = xreallocarray(r->mark_text, 1, r->mark_text_size);
	}
	memcpy(r->mark_text + r->mark_text_len, id, len);
	r->mark_text_len += len;
}

/* Remember that a device was notified of a message, until the next flush. */
static void
add_mark(struct router *r, const char *room, const char *message_id, const char *device_id)
{
	if (r->mark_count == r->mark_capacity) {
		r->mark_capacity = r->mark_capacity == 0 ? 256 : r->mark_capacity * 2;
		r->marks = xreallocarray(r->marks, r->mark_capacity, sizeof *r->marks);
	}
	memset(&r->marks[r->mark_count], 0, sizeof r->marks[r->mark_count]);
	r->marks[r->mark_count].at = clock_now_ms();
	r->mark_count++;
	mark_text_add(r, room);
	mark_text_add(r, message_id);
	mark_text_add(r, device_id);
}

/* A client's unread total across rooms. */
static int64_t
unread_total(struct router *r, const char *client)
{
	struct unread_client *c = strmap_get(r->unread_total, client, strlen(client));

	return c != NULL ? c->total : 0;
}

/*
 * Change a client's unread count in a room by delta, or set it to 0 (reset); returns
 * the client's new total. One lookup for a pair seen before: the count leads to the
 * total, and the flush list replaces a set of changed keys.
 */
static int64_t
unread_change(struct router *r, const char *client, const char *room, int64_t delta,
    int reset)
{
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, client, room, &keylen);
	struct unread_room *u = strmap_get(r->unread, key, keylen);
	int64_t old = u != NULL ? u->count : 0, next = reset ? 0 : old + delta;
	struct unread_client *c;

	if (u == NULL && next == old) {
		if (key != kbuf)
			free(key);
		return unread_total(r, client);
	}
	if (u == NULL) {
		if ((c = strmap_get(r->unread_total, client, strlen(client))) == NULL) {
			c = xcalloc(1, sizeof *c);
			strmap_put(r->unread_total, client, strlen(client), c);
		}
		u = xcalloc(1, sizeof *u + keylen + 1);
		u->client = c;
		u->keylen = keylen;
		memcpy(u->key, key, keylen + 1);
		strmap_put(r->unread, key, keylen, u);
	}
	if (key != kbuf)
		free(key);
	if (next != old) {
		u->count = next;
		u->client->total += next - old;
		if (!u->dirty) {
			if (r->unread_dirty_count == r->unread_dirty_capacity) {
				r->unread_dirty_capacity = r->unread_dirty_capacity == 0 ? 256 :
				    r->unread_dirty_capacity * 2;
				r->unread_dirty = xreallocarray(r->unread_dirty,
				    r->unread_dirty_capacity, sizeof *r->unread_dirty);
			}
			r->unread_dirty[r->unread_dirty_count++] = u;
			u->dirty = 1;
		}
	}
	return u->client->total;
}

/* ---- sending ---- */

/* No send has a message's content any more: forget it. */
static void
message_content_forget(struct router *r, struct message_content *mc)
{
	struct message_content *current = strmap_remove(r->messages, mc->key, mc->keylen);

	/* A duplicate routed meanwhile (the seen map was full) may own the key now. */
	if (current != NULL && current != mc)
		strmap_put(r->messages, mc->key, mc->keylen, current);
	delivery_content_unref(mc->content);
	free(mc);
}

static void
send_free(struct send *s)
{
	struct router *r = s->router;

	for (size_t i = 0; i < s->tracker_count; i++) {
		s->trackers[i]->abandoned |= s->abandoned;
		tracker_release(s->trackers[i]);
	}
	if (s->message != NULL && --s->message->sends == 0)
		message_content_forget(r, s->message);
	for (size_t i = 0; i < s->target_count; i++)
		free(s->targets[i]);
	free(s->targets);
	for (size_t i = 0; i < s->message_count; i++)
		free(s->message_ids[i]);
	free(s->message_ids);
	free(s->trackers);
	free(s->room);
	delivery_content_unref(s->content);
	free(s);
}

/* A delivery of a send moved on; the send ends with its last delivery. */
static void
send_observe(struct delivery *d, enum delivery_state state, const char *reason, void *arg)
{
	struct send *s = arg;

	if (state == DELIVERY_SENT) {
		for (size_t i = 0; i < s->message_count; i++)
			add_mark(s->router, s->room, s->message_ids[i], d->device_id);
	}
	if (state == DELIVERY_ABANDONED)
		s->abandoned = 1;
	else if (state != DELIVERY_SENT && state != DELIVERY_FAILED &&
	    state != DELIVERY_TOKEN_REMOVED)
		return;
	if (--s->outstanding == 0)
		send_free(s);
}

/* Is this recipient over its rate? Counts the notification when not. */
static int
rate_limited(struct router *r, const char *client)
{
	struct rate *rate;
	int64_t now = clock_monotonic_ms();

	if (r->options.recipient_rate_limit <= 0)
		return 0;
	if ((rate = strmap_get(r->rates, client, strlen(client))) == NULL) {
		rate = xcalloc(1, sizeof *rate);
		strmap_put(r->rates, client, strlen(client), rate);
	}
	if (now - rate->window_start >= RATE_WINDOW_MS) {
		rate->window_start = now;
		rate->count = 0;
	}
	if (rate->count >= r->options.recipient_rate_limit)
		return 1;
	rate->count++;
	return 0;
}

/* Start the deliveries of a send: one per target, all of the same content. */
static void
send_start(struct send *s, int64_t badge)
{
	int64_t now = clock_now_ms();
	size_t n = s->target_count;

	s->outstanding = n;
	s->router->stats.notifications++;
	if (n == 0) {
		send_free(s);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct delivery *d = delivery_new(s->targets[i], s->content, badge, now);
		delivery_submit(d, send_observe, s, i);
	}
}

/* The default body, "sender: text", cut to what a notification may carry. */
static char *
default_body(const struct held *latest, size_t count, const char *sender)
{
	const char *text = latest->text != NULL ? latest->text : "";
	char *body;
	size_t len;

	if (count > 1)
		body = xasprintf("%zu new messages: %s: %s", count, sender, text);
	else
		body = xasprintf("%s: %s", sender, text);
	/* A name and a text at their limits exceed it: the payload shortens it anyway. */
	if ((len = strlen(body)) > NOTIFICATION_TEXT_MAX) {
		len = NOTIFICATION_TEXT_MAX;
		while (len > 0 && ((unsigned char)body[len] & 0xc0) == 0x80)
			len--;
		body[len] = '\0';
	}
	return body;
}

/*
 * A message's notification: the default content, with the message's push object
 * overriding it field by field and per platform. Without a push object (the common
 * case) the fields are filled in directly; with one, they go through the validation
 * of POST /v1/push.
 */
static int
build_notification(const struct held *latest, size_t count, const char *room,
    int badge_per_recipient, int64_t badge, struct notification *out)
{
	json_t *o, *data, *push = latest->push, *v;
	const char *sender = latest->sender_name != NULL ? latest->sender_name : latest->sender;
	const char *title = latest->room_name != NULL ? latest->room_name :
	    latest->sender_name != NULL ? latest->sender_name : room;
	struct model_error err;
	char *body, countbuf[24];
	int rc;

	body = default_body(latest, count, sender);
	snprintf(countbuf, sizeof countbuf, "%zu", count);
	if (push == NULL) {
		static const char *const keys[] = { "room", "message_id", "sender", "count" };
		const char *values[] = { room, latest->id, latest->sender, countbuf };

		/* Ids, names and the cut body are within the notification's bounds. */
		notification_init(out);
		out->title = xstrdup(title);
		out->body = body;
		out->thread_id = xstrdup(room);
		out->data_members = payload_members_text(keys, values, 4);
		if (!badge_per_recipient && badge >= 0)
			out->badge = badge;
		return 0;
	}
	/* Ids are valid UTF-8 (the event parser checks them), the count is digits. */
	if ((data = json_object()) == NULL ||
	    json_object_set_new_nocheck(data, "room", json_string_nocheck(room)) != 0 ||
	    json_object_set_new_nocheck(data, "message_id",
	    json_string_nocheck(latest->id)) != 0 ||
	    json_object_set_new_nocheck(data, "sender", json_string_nocheck(latest->sender)) != 0 ||
	    json_object_set_new_nocheck(data, "count", json_string_nocheck(countbuf)) != 0)
		fatalx("out of memory building a notification");

	o = json_object();
	json_object_set_new(o, "title", json_string(title));
	json_object_set_new(o, "body", json_string(body));
	free(body);
	json_object_set_new(o, "thread_id", json_string(room));
	if (!badge_per_recipient && badge >= 0)
		json_object_set_new(o, "badge", json_integer(badge));
	if (json_is_string(v = json_object_get(push, "title")))
		json_object_set(o, "title", v);
	if (json_is_string(v = json_object_get(push, "body")))
		json_object_set(o, "body", v);
	if (json_is_object(v = json_object_get(push, "data"))) {
		json_t *merged = json_deep_copy(data);

		json_object_update(merged, v);
		json_object_set_new(o, "data", merged);
	} else
		json_object_set(o, "data", data);
	if (json_is_object(v = json_object_get(push, "apns")))
		json_object_set(o, "apns", v);
	if (json_is_object(v = json_object_get(push, "fcm")))
		json_object_set(o, "fcm", v);
	rc = notification_from_json(o, "push.", out, &err);
	if (rc != 0) {
		/* The chat server's overrides do not make a notification: use the defaults. */
		log_warn("message push overrides ignored", "room", room, "message_id",
		    latest->id, "error", err.message, NULL);
		json_object_del(o, "apns");
		json_object_del(o, "fcm");
		json_object_set(o, "data", data);
		if (json_is_string(json_object_get(push, "title")) ||
		    json_is_string(json_object_get(push, "body"))) {
			json_object_set_new(o, "title", json_string(title));
			body = default_body(latest, count, sender);
			json_object_set_new(o, "body", json_string(body));
			free(body);
		}
		rc = notification_from_json(o, "push.", out, &err);
	}
	json_decref(data);
	json_decref(o);
	return rc;
}

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

static void
bucket_free(struct bucket *b)
{
	struct router *r = b->router;

	strmap_remove(r->buckets, b->key, b->keylen);
	r->stats.pending_recipients--;
	if (b->timer != NULL)
		event_free(b->timer);
	for (size_t i = 0; i < b->count; i++) {
		b->messages[i].tracker->abandoned |= r->stopping;
		tracker_release(b->messages[i].tracker);
		held_free(&b->messages[i]);
	}
	free(b->messages);
	for (size_t i = 0; i < b->target_count; i++)
		free(b->targets[i]);
	free(b->targets);
	free(b->key);
	free(b);
}

/* Send what a bucket holds as one notification, or drop it if the recipient is back. */
static void
bucket_flush(struct bucket *b)
{
	struct router *r = b->router;
	struct notification n;
	struct send *s;
	enum presence_state state = presence_get(r->presence, b->room, b->client);

	if (state == PRESENCE_GRACE)
		return;	/* the end of the grace decides */
	if (state == PRESENCE_PRESENT || b->count == 0 || rate_limited(r, b->client)) {
		if (state != PRESENCE_PRESENT && b->count > 0)
			r->stats.rate_limited++;
		bucket_free(b);
		return;
	}
	if (build_notification(&b->messages[b->count - 1], b->count, b->room, 0,
	    unread_total(r, b->client), &n) != 0) {
		bucket_free(b);
		return;
	}
	s = xcalloc(1, sizeof *s);
	s->router = r;
	s->room = xstrdup(b->room);
	s->content = delivery_content_new(&n, 0);
	s->message_ids = xcalloc(b->count, sizeof *s->message_ids);
	s->trackers = xcalloc(b->count, sizeof *s->trackers);
	for (size_t i = 0; i < b->count; i++) {
		/* Each message's tracker moves to the send. */
		s->message_ids[s->message_count++] = b->messages[i].id;
		b->messages[i].id = NULL;
		s->trackers[s->tracker_count++] = b->messages[i].tracker;
		held_free(&b->messages[i]);
	}
	r->stats.coalesced += b->count - 1;
	b->count = 0;
	s->targets = b->targets;
	s->target_count = b->target_count;
	b->targets = NULL;
	b->target_count = 0;
	bucket_free(b);
	send_start(s, -1);
}

static void
bucket_timer(evutil_socket_t fd, short what, void *arg)
{
	bucket_flush(arg);
}

/* Hold a message for a recipient (coalescing or grace), with its current devices. */
static void
bucket_add(struct router *r, const char *room, const char *client,
    const struct room_event *e, struct tracker *t, struct device_target **targets,
    size_t target_count, int arm_timer)
{
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, room, client, &keylen);
	struct bucket *b = strmap_get(r->buckets, key, keylen);
	struct held *h;
	struct timeval tv;

	if (b == NULL) {
		b = xcalloc(1, sizeof *b);
		b->router = r;
		b->key = xmalloc(keylen + 1);
		memcpy(b->key, key, keylen + 1);
		b->keylen = keylen;
		b->room = b->key;
		b->client = b->key + strlen(b->key) + 1;
		strmap_put(r->buckets, key, keylen, b);
		r->stats.pending_recipients++;
	} else
		r->stats.coalesced++;
	if (key != kbuf)
		free(key);
	/* The latest resolution of the recipient's devices wins. */
	for (size_t i = 0; i < b->target_count; i++)
		free(b->targets[i]);
	free(b->targets);
	b->targets = targets;
	b->target_count = target_count;
	if (b->count == b->capacity) {
		b->capacity = b->capacity == 0 ? 4 : b->capacity * 2;
		b->messages = xreallocarray(b->messages, b->capacity, sizeof *b->messages);
	}
	h = &b->messages[b->count++];
	h->id = xstrdup(e->id);
	h->sender = xstrdup(e->client_id);
	h->sender_name = e->sender_name != NULL ? xstrdup(e->sender_name) : NULL;
	h->room_name = e->room_name != NULL ? xstrdup(e->room_name) : NULL;
	h->text = e->text != NULL ? xstrdup(e->text) : NULL;
	h->push = e->push != NULL ? json_incref(e->push) : NULL;
	h->tracker = t;
	t->refs++;
	if (arm_timer && b->timer == NULL) {
		if ((b->timer = evtimer_new(r->base, bucket_timer, b)) == NULL)
			fatalx("cannot create a coalescing timer");
		tv.tv_sec = r->options.coalesce_window_ms / 1000;
		tv.tv_usec = (r->options.coalesce_window_ms % 1000) * 1000;
		evtimer_add(b->timer, &tv);
	}
}

/* ---- presence callbacks ---- */

/* What waits for a recipient in a room, if anything. */
static struct bucket *
bucket_find(struct router *r, const char *room, const char *client)
{
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, room, client, &keylen);
	struct bucket *b = strmap_get(r->buckets, key, keylen);

	if (key != kbuf)
		free(key);
	return b;
}

/* The grace ended without a return: send what was held. */
static void
on_away(const char *room, const char *client, void *arg)
{
	struct bucket *b = bucket_find(arg, room, client);

	if (b != NULL)
		bucket_flush(b);
}

/* Back in the room within the grace: what was said meanwhile is being read. */
static void
on_return(const char *room, const char *client, void *arg)
{
	struct bucket *b = bucket_find(arg, room, client);

	if (b != NULL)
		bucket_free(b);
}

/* ---- messages ---- */

/* Was the recipient mentioned? */
static int
mentioned(const struct room_event *e, const char *client)
{
	for (size_t i = 0; i < e->mention_count; i++) {
		if (strcmp(e->mentions[i], client) == 0)
			return 1;
	}
	return 0;
}

/* Copy a member's targets, leaving out devices already notified of this message. */
static struct device_target **
fresh_targets(struct room_member_route *m, const struct room_route *route, size_t *count)
{
	struct device_target **out = xcalloc(m->target_count + 1, sizeof *out);

	*count = 0;
	for (size_t i = 0; i < m->target_count; i++) {
		int done = 0;
		for (size_t n = 0; n < route->notified_count && !done; n++)
			done = strcmp(route->notified[n], m->targets[i]->device_id) == 0;
		if (done) {
			free(m->targets[i]);
		} else
			out[(*count)++] = m->targets[i];
		m->targets[i] = NULL;
	}
	m->target_count = 0;
	return out;
}

/* Copy a room's members and devices (not its notified devices). */
static void
route_copy(const struct room_route *from, struct room_route *to)
{
	memset(to, 0, sizeof *to);
	to->members = xcalloc(from->member_count + 1, sizeof *to->members);
	to->member_count = from->member_count;
	for (size_t i = 0; i < from->member_count; i++) {
		const struct room_member_route *m = &from->members[i];
		struct room_member_route *c = &to->members[i];

		c->client_id = xstrdup(m->client_id);
		c->muted_until = m->muted_until;
		c->mentions_only = m->mentions_only;
		c->target_count = m->target_count;
		c->targets = xcalloc(m->target_count + 1, sizeof *c->targets);
		for (size_t t = 0; t < m->target_count; t++) {
			const struct device_target *d = m->targets[t];
			c->targets[t] = model_target_new(d->device_id, d->client_id, d->token,
			    d->app_id, d->platform, d->environment, d->updated_at,
			    d->last_success_at);
		}
	}
}

/* Keep what was read of a room for the messages after, while the registry holds. */
static void
route_remember(struct router *r, const char *room, const struct room_route *route,
    uint64_t generation)
{
	struct route_cache *c = strmap_get(r->routes, room, strlen(room));

	if (c == NULL) {
		if (strmap_count(r->routes) >= ROUTER_ROUTES_MAX)
			return;
		c = xcalloc(1, sizeof *c);
		strmap_put(r->routes, room, strlen(room), c);
	} else
		store_room_route_free(&c->route);
	c->generation = generation;
	route_copy(route, &c->route);
}

/* Was a client present when the message came? */
static int
was_present(struct route_job *job, const char *client)
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
	struct router *r = job->router;

	if (job->key != NULL)
		strmap_remove(r->routing, job->key, job->keylen);
	if (job->content != NULL) {
		delivery_content_unref(job->content);
		if (--job->message->sends == 0)
			message_content_forget(r, job->message);
	}
	if (job->resume != NULL)
		event_free(job->resume);
	store_room_route_free(&job->route);
	job->tracker->abandoned |= r->stopping;
	tracker_release(job->tracker);
	room_event_free(job->event);
	free(job->event);
	presence_snapshot_free(job->present, job->present_count);
	strmap_free(job->present_map);
	free(job->key);
	free(job);
}

/* The message's content, the first time a member is sent it now; NULL if none can be. */
static struct push_content *
route_content(struct route_job *job)
{
	struct router *r = job->router;
	struct room_event *e = job->event;
	struct held latest = { e->id, e->client_id, e->sender_name, e->room_name, e->text,
		e->push, NULL };
	struct message_content *mc;
	struct notification n;
	size_t keylen;
	char kbuf[PAIR_KEY_STACK], *key;

	if (job->content != NULL)
		return job->content;
	if (build_notification(&latest, 1, e->room, 1, -1, &n) != 0)
		return NULL;
	job->content = delivery_content_new(&n, 1);
	key = pair_key_into(kbuf, sizeof kbuf, e->room, e->id, &keylen);
	/* Kept by key while it has sends, for edits and deletions. */
	mc = xcalloc(1, sizeof *mc + keylen + 1 + strlen(e->client_id) + 1);
	memcpy(mc->key, key, keylen + 1);
	mc->keylen = keylen;
	mc->sender = mc->key + keylen + 1;
	memcpy(mc->key + keylen + 1, e->client_id, strlen(e->client_id) + 1);
	mc->content = job->content;
	delivery_content_ref(job->content);
	/* The job counts as a send until it is routed: sends may end between turns. */
	mc->sends = 1;
	strmap_put(r->messages, key, keylen, mc);
	if (key != kbuf)
		free(key);
	job->message = mc;
	return job->content;
}

static void route_continue(struct route_job *job);

/* The next turn of a big room's routing. */
static void
route_resume(evutil_socket_t fd, short what, void *arg)
{
	struct route_job *job = arg;

	TAILQ_REMOVE(&job->router->resuming, job, resuming);
	route_continue(job);
}

/*
 * Leave the rest of the members to the next turn of the loop, after its I/O. The job
 * stays findable by key, so that an edit or a deletion meanwhile reaches it.
 */
static void
route_defer(struct route_job *job)
{
	struct router *r = job->router;
	struct timeval now = { 0, 0 };

	if (job->key == NULL) {
		job->key = pair_key(job->event->room, job->event->id, &job->keylen);
		strmap_put(r->routing, job->key, job->keylen, job);
	}
	if (job->resume == NULL &&
	    (job->resume = evtimer_new(r->base, route_resume, job)) == NULL)
		fatalx("cannot create a routing event");
	TAILQ_INSERT_TAIL(&r->resuming, job, resuming);
	evtimer_add(job->resume, &now);
}

/* Decide, for the next members of the room, whether, when and how to notify them. */
static void
route_continue(struct route_job *job)
{
	struct router *r = job->router;
	struct room_event *e = job->event;
	size_t end = job->next_member + ROUTER_CHUNK_MEMBERS;

	if (r->stopping || job->cancelled) {
		route_finish(job);
		return;
	}
	for (; job->next_member < job->route.member_count; job->next_member++) {
		struct room_member_route *m = &job->route.members[job->next_member];
		enum presence_state state;
		struct device_target **targets;
		struct push_content *content;
		size_t count;
		int64_t badge = -1;

		if (job->next_member == end) {
			route_defer(job);
			return;
		}
		if (strcmp(m->client_id, e->client_id) == 0)
			continue;
		/* Present then (saw it come) or now (reading): no notification. */
		if (was_present(job, m->client_id))
			continue;
		state = presence_get(r->presence, e->room, m->client_id);
		if (state == PRESENCE_PRESENT)
			continue;
		/* Away (or about to be): the message is unread for them. */
		if (job->count_unread)
			badge = unread_change(r, m->client_id, e->room, 1, 0);
		if (m->muted_until > job->now ||
		    (m->mentions_only && !mentioned(e, m->client_id)))
			continue;
		targets = fresh_targets(m, &job->route, &count);
		if (count == 0) {
			free(targets);
			continue;
		}
		if (state == PRESENCE_GRACE) {
			r->stats.held++;
			bucket_add(r, e->room, m->client_id, e, job->tracker, targets, count, 0);
			continue;
		}
		if (r->options.coalesce_window_ms > 0) {
			bucket_add(r, e->room, m->client_id, e, job->tracker, targets, count, 1);
			continue;
		}
		/* At once: one content for the message, each recipient's badge spliced in. */
		if (rate_limited(r, m->client_id)) {
			r->stats.rate_limited++;
			for (size_t t = 0; t < count; t++)
				free(targets[t]);
			free(targets);
			continue;
		}
		if ((content = route_content(job)) == NULL) {
			for (size_t t = 0; t < count; t++)
				free(targets[t]);
			free(targets);
			break;
		}
		{
			struct send *s = xcalloc(1, sizeof *s);

			s->router = r;
			s->room = xstrdup(e->room);
			s->message_ids = xmalloc(sizeof *s->message_ids);
			s->message_ids[0] = xstrdup(e->id);
			s->message_count = 1;
			s->trackers = xmalloc(sizeof *s->trackers);
			s->trackers[0] = job->tracker;
			s->tracker_count = 1;
			job->tracker->refs++;
			s->targets = targets;
			s->target_count = count;
			s->content = content;
			delivery_content_ref(content);
			s->message = job->message;
			job->message->sends++;
			send_start(s, badge >= 0 ? badge : unread_total(r, m->client_id));
		}
	}
	route_finish(job);
}

/* The store read is done (or the route came from memory): route the message. */
static void
route_resolved(int result, void *arg)
{
	struct route_job *job = arg;
	struct router *r = job->router;

	if (result != STORE_OK || r->stopping || job->cancelled) {
		route_finish(job);
		return;
	}
	/*
	 * Devices already notified of this message mean it was handled before (a
	 * redelivery after a restart): it is no news, so it does not count as unread.
	 */
	job->count_unread = job->route.notified_count == 0;
	if (job->generation != 0)
		route_remember(r, job->event->room, &job->route, job->generation);
	job->now = clock_now_ms();
	route_continue(job);
}

static int
route_read(struct store *store, void *arg)
{
	struct route_job *job = arg;

	return store_room_route(store, job->event->room, job->event->id, &job->route);
}

/* A write to the store (membership), acknowledged once committed. */
struct member_job {
	struct router *router;
	char *room;
	char *client;
	int join;
	struct tracker *tracker;
};

static int
member_run(struct store *store, void *arg)
{
	struct member_job *job = arg;
	int rc;

	if (job->join)
		return store_member_put(store, job->room, job->client, clock_now_ms(), NULL, NULL);
	rc = store_member_delete(store, job->room, job->client);
	return rc == STORE_ENOTFOUND ? STORE_OK : rc;
}

static void
member_done(int result, void *arg)
{
	struct member_job *job = arg;

	if (job->tracker != NULL)
		tracker_release(job->tracker);
	free(job->room);
	free(job->client);
	free(job);
}

/* Record a membership (once per process for implicit ones). */
static void
member_write(struct router *r, const char *room, const char *client, int join,
    struct tracker *t, int implicit)
{
	struct member_job *job;
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, room, client, &keylen);

	if (implicit && strmap_get(r->members, key, keylen) != NULL) {
		if (key != kbuf)
			free(key);
		return;
	}
	if (join)
		strmap_put(r->members, key, keylen, r);
	else
		strmap_remove(r->members, key, keylen);
	if (key != kbuf)
		free(key);
	job = xcalloc(1, sizeof *job);
	job->router = r;
	job->room = xstrdup(room);
	job->client = xstrdup(client);
	job->join = join;
	job->tracker = t;
	if (t != NULL)
		t->refs++;
	/* In line with the routing reads: a message sees the joins before it, only them. */
	store_writer_submit(r->reader, member_run, member_done, job);
}

/* A message: skip duplicates, then read its room's members off the loop. */
static void
route_message(struct router *r, struct room_event *e, struct tracker *t)
{
	struct route_job *job;
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, e->room, e->id, &keylen);

	r->stats.messages++;
	if (e->client_id == NULL)
		e->client_id = xstrdup("");	/* an anonymous sender (Ably without clientId) */
	if (strmap_get(r->seen, key, keylen) != NULL) {
		r->stats.duplicates++;
		if (key != kbuf)
			free(key);
		room_event_free(e);
		free(e);
		tracker_release(t);
		return;
	}
	if (strmap_count(r->seen) < ROUTER_SEEN_MAX)
		strmap_put(r->seen, key, keylen,
		    box(clock_now_ms() + r->options.dedupe_window_ms));
	if (key != kbuf)
		free(key);
	if (r->options.implicit_membership && e->client_id[0] != '\0')
		member_write(r, e->room, e->client_id, 1, NULL, 1);
	if (e->push_skip) {
		room_event_free(e);
		free(e);
		tracker_release(t);
		return;
	}
	job = xcalloc(1, sizeof *job);
	job->router = r;
	job->event = e;
	job->tracker = t;
	/* Who was in the room when the message came, not when its members are known. */
	job->present = presence_snapshot(r->presence, e->room, &job->present_count);
	{
		struct route_cache *c = strmap_get(r->routes, e->room, strlen(e->room));

		/*
		 * Known room, registry unchanged since it was read, nothing queued before
		 * this message on the read thread, and no chance it notified anyone before
		 * (not redelivered, not older than this process): route it now, from memory.
		 */
		if (c != NULL && c->generation == store_generation(r->store) &&
		    store_writer_pending(r->reader) == 0 && !e->redelivered &&
		    (e->ts == 0 || e->ts >= r->started_at)) {
			route_copy(&c->route, &job->route);
			route_resolved(STORE_OK, job);
			return;
		}
	}
	/* Being read: an edit or a deletion meanwhile finds it here. */
	job->key = pair_key(e->room, e->id, &job->keylen);
	strmap_put(r->routing, job->key, job->keylen, job);
	job->generation = store_generation(r->store);
	/*
	 * Reads go to their own thread, so that they never wait behind a batch of writes;
	 * membership changes from events go there too (member_write), so that reads and
	 * membership changes happen in the order of their events.
	 */
	store_writer_submit(r->reader, route_read, route_resolved, job);
}

/* An edit or a deletion, applied to every bucket of its room. */
struct bucket_change {
	struct router *router;
	struct room_event *event;
};

/* One bucket: drop or edit the held message the event names. */
static void
bucket_change_fn(const char *key, size_t keylen, void *value, void *arg)
{
	struct bucket *b = value;
	struct bucket_change *change = arg;
	struct room_event *e = change->event;

	if (strcmp(b->room, e->room) != 0)
		return;
	for (size_t i = 0; i < b->count; i++) {
		struct held *h = &b->messages[i];
		if (strcmp(h->id, e->id) != 0)
			continue;
		if (e->type == EVENT_MESSAGE_DELETE) {
			change->router->stats.cancelled++;
			tracker_release(h->tracker);
			held_free(h);
			memmove(h, h + 1, (b->count - i - 1) * sizeof *h);
			b->count--;
			i--;
		} else if (e->text != NULL) {
			free(h->text);
			h->text = xstrdup(e->text);
		}
	}
	if (b->count == 0)
		bucket_free(b);
}

/* Apply an edit or a deletion to what has not left yet. */
static void
route_change(struct router *r, struct room_event *e)
{
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, e->room, e->id, &keylen);
	struct message_content *mc = strmap_get(r->messages, key, keylen);
	struct route_job *reading = strmap_get(r->routing, key, keylen);
	struct bucket_change change = { r, e };

	if (key != kbuf)
		free(key);
	/* Still being read: change the message before it is routed. */
	if (reading != NULL) {
		if (e->type == EVENT_MESSAGE_DELETE) {
			reading->cancelled = 1;
			/* Half routed, its deliveries are counted as they are cancelled. */
			if (mc == NULL)
				r->stats.cancelled++;
		} else if (e->text != NULL) {
			free(reading->event->text);
			reading->event->text = xstrdup(e->text);
		}
	}
	if (mc != NULL) {
		if (e->type == EVENT_MESSAGE_DELETE) {
			r->stats.cancelled += delivery_cancel_content(mc->content,
			    "message deleted before it was sent");
		} else if (e->text != NULL) {
			struct notification n;
			struct held latest = { e->id, e->client_id != NULL ? e->client_id : "",
				e->sender_name, e->room_name, e->text, e->push, NULL };
			/* The content keeps its sender: only the text changes. */
			latest.sender = (char *)mc->sender;
			if (build_notification(&latest, 1, e->room, 1, -1, &n) == 0)
				delivery_content_update(mc->content, &n);
		}
	}
	strmap_foreach(r->buckets, bucket_change_fn, &change);
}

/* ---- the sink ---- */

static int
router_handle(void *arg, struct room_event *event, source_ack_fn *ack, void *ctx)
{
	struct router *r = arg;
	struct room_event *e;
	struct tracker *t;

	if (r->stopping || r->stats.in_flight >= r->options.queue_size ||
	    (event->type == EVENT_MESSAGE && delivery_room() == 0)) {
		r->sources_paused = 1;
		return SOURCE_EFULL;
	}
	r->stats.events++;
	/* The router owns the event from here: keep our own copy of the struct. */
	e = xmalloc(sizeof *e);
	*e = *event;
	memset(event, 0, sizeof *event);
	t = tracker_new(r, ack, ctx);
	if (e->client_id == NULL && e->type != EVENT_MESSAGE && e->type != EVENT_PRESENCE_SYNC &&
	    e->type != EVENT_MESSAGE_UPDATE && e->type != EVENT_MESSAGE_DELETE) {
		/* Only a source that builds events itself can get here (Ably). */
		r->stats.skipped++;
		room_event_free(e);
		free(e);
		tracker_release(t);
		return SOURCE_OK;
	}
	switch (e->type) {
	case EVENT_MESSAGE:
		route_message(r, e, t);
		return SOURCE_OK;
	case EVENT_MESSAGE_UPDATE:
	case EVENT_MESSAGE_DELETE:
		route_change(r, e);
		break;
	case EVENT_PRESENCE_ENTER:
		presence_enter(r->presence, e->room, e->client_id, e->connection_id);
		if (r->options.implicit_membership)
			member_write(r, e->room, e->client_id, 1, NULL, 1);
		break;
	case EVENT_PRESENCE_LEAVE:
		presence_leave(r->presence, e->room, e->client_id, e->connection_id);
		break;
	case EVENT_PRESENCE_UPDATE:
		presence_update(r->presence, e->room, e->client_id, e->connection_id);
		break;
	case EVENT_PRESENCE_SYNC:
		presence_sync(r->presence, e->room, (const char *const *)e->present,
		    e->present_count);
		break;
	case EVENT_MEMBER_JOIN:
	case EVENT_MEMBER_LEAVE:
		member_write(r, e->room, e->client_id, e->type == EVENT_MEMBER_JOIN, t, 0);
		break;
	case EVENT_READ:
		unread_change(r, e->client_id, e->room, 0, 1);
		break;
	}
	room_event_free(e);
	free(e);
	tracker_release(t);
	return SOURCE_OK;
}

static void
router_skipped(void *arg, const char *source, const char *reason)
{
	struct router *r = arg;

	r->stats.skipped++;
}

/* ---- life ---- */

struct sweep {
	struct router *router;
	int64_t now;			/* wall clock: seen ids */
	int64_t mono;			/* monotonic: rate windows */
};

static void
sweep_seen(const char *key, size_t keylen, void *value, void *arg)
{
	struct sweep *sw = arg;

	if (*(int64_t *)value <= sw->now)
		free(strmap_remove(sw->router->seen, key, keylen));
}

/* A recipient's rate window that has ended is forgotten: the map stays bounded. */
static void
sweep_rate(const char *key, size_t keylen, void *value, void *arg)
{
	struct sweep *sw = arg;
	struct rate *rate = value;

	if (sw->mono - rate->window_start >= RATE_WINDOW_MS)
		free(strmap_remove(sw->router->rates, key, keylen));
}

static void
router_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct router *r = arg;
	struct sweep sw = { r, clock_now_ms(), clock_monotonic_ms() };

	strmap_foreach(r->seen, sweep_seen, &sw);
	strmap_foreach(r->rates, sweep_rate, &sw);
	router_flush(r, sw.now - r->options.dedupe_window_ms);
}

struct router *
router_new(struct event_base *base, struct store *store, struct store_writer *writer,
    struct store_writer *reader, const struct router_options *options)
{
	struct router *r = xcalloc(1, sizeof *r);
	struct presence_options po = { options->presence_grace_ms, options->presence_ttl_ms,
		options->presence_max };
	struct timeval flush = { 0, ROUTER_FLUSH_MS * 1000 }, sweep = { ROUTER_SWEEP_MS / 1000,
		0 };
	struct unread_count *counts;
	size_t n;

	r->base = base;
	r->store = store;
	r->writer = writer;
	r->reader = reader;
	r->options = *options;
	r->presence = presence_new(base, &po, on_away, on_return, r);
	r->sink.handle = router_handle;
	r->sink.skipped = router_skipped;
	r->sink.arg = r;
	r->buckets = strmap_new();
	r->messages = strmap_new();
	r->routing = strmap_new();
	TAILQ_INIT(&r->resuming);
	r->routes = strmap_new();
	r->started_at = clock_now_ms();
	r->seen = strmap_new();
	r->members = strmap_new();
	r->unread = strmap_new();
	r->unread_total = strmap_new();
	r->rates = strmap_new();
	if (store_unread_load(store, &counts, &n) == STORE_OK) {
		for (size_t i = 0; i < n; i++) {
			unread_change(r, counts[i].client_id, counts[i].room_id, counts[i].count, 0);
		}
		store_unread_free(counts, n);
		/* Loaded, not changed: nothing to write back. */
		for (size_t i = 0; i < r->unread_dirty_count; i++)
			r->unread_dirty[i]->dirty = 0;
		r->unread_dirty_count = 0;
	}
	r->flush_timer = event_new(base, -1, EV_PERSIST, router_flush_tick, r);
	r->sweep_timer = event_new(base, -1, EV_PERSIST, router_sweep, r);
	if (r->flush_timer == NULL || r->sweep_timer == NULL)
		fatalx("cannot create router timers");
	event_add(r->flush_timer, &flush);
	event_add(r->sweep_timer, &sweep);
	return r;
}

void
router_set_options(struct router *r, const struct router_options *options)
{
	struct presence_options po = { options->presence_grace_ms, options->presence_ttl_ms,
		options->presence_max };

	r->options = *options;
	presence_set_options(r->presence, &po);
}

const struct source_sink *
router_sink(struct router *r)
{
	return &r->sink;
}

void
router_add_source(struct router *r, const struct source_ops *ops, struct source *source)
{
	if (r->source_count == SOURCES_MAX)
		fatalx("too many sources");
	r->sources[r->source_count].ops = ops;
	r->sources[r->source_count].source = source;
	r->source_count++;
}

static void
drop_bucket(const char *key, size_t keylen, void *value, void *arg)
{
	bucket_free(value);
}

void
router_stop(struct router *r)
{
	struct route_job *job;

	r->stopping = 1;
	/* Messages half routed: not acknowledged either, so handed again after a restart. */
	while ((job = TAILQ_FIRST(&r->resuming)) != NULL) {
		TAILQ_REMOVE(&r->resuming, job, resuming);
		route_finish(job);
	}
	/* What waits is not acknowledged: Streams and the outbox hand it again. */
	strmap_foreach(r->buckets, drop_bucket, NULL);
	router_flush(r, 0);
}

static void
free_value(const char *key, size_t keylen, void *value, void *arg)
{
	free(value);
}

static void
free_route(const char *key, size_t keylen, void *value, void *arg)
{
	struct route_cache *c = value;

	store_room_route_free(&c->route);
	free(c);
}

void
router_free(struct router *r)
{
	if (r == NULL)
		return;
	strmap_foreach(r->buckets, drop_bucket, NULL);
	event_free(r->flush_timer);
	event_free(r->sweep_timer);
	presence_free(r->presence);
	strmap_free(r->buckets);
	strmap_free(r->messages);
	strmap_free(r->routing);
	strmap_foreach(r->routes, free_route, NULL);
	strmap_free(r->routes);
	strmap_foreach(r->seen, free_value, NULL);
	strmap_free(r->seen);
	strmap_free(r->members);
	strmap_foreach(r->unread, free_value, NULL);
	strmap_free(r->unread);
	strmap_foreach(r->unread_total, free_value, NULL);
	strmap_free(r->unread_total);
	strmap_foreach(r->rates, free_value, NULL);
	strmap_free(r->rates);
	free(r->unread_dirty);
	free(r->marks);
	free(r->mark_text);
	free(r);
}

void
router_get_stats(const struct router *r, struct router_stats *stats)
{
	struct presence_stats presence;

	*stats = r->stats;
	presence_get_stats(r->presence, &presence);
	stats->presence_entries = presence.entries;
	stats->presence_expired = presence.expired;
	stats->presence_dropped = presence.dropped;
}

void
router_get_presence_stats(const struct router *r, struct presence_stats *stats)
{
	presence_get_stats(r->presence, stats);
}
