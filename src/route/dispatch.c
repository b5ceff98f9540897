/* Sends to a recipient's devices, and the messages on their way for edits and deletions. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "dispatch.h"
#include "notification.h"
#include "notify_text.h"
#include "pair_key.h"
#include "strmap.h"
#include "tracker.h"
#include "xmalloc.h"

struct dispatch {
	struct delivery_layer *delivery;	/* where the deliveries go */
	dispatch_sent_fn *sent;
	void *arg;
	struct strmap *messages;	/* "room\0id" -> struct dispatch_message */
	uint64_t notifications;
};

/* The shared content of a message sent at once: for edits and deletes. */
struct dispatch_message {
	struct dispatch *dispatch;
	struct push_content *content;
	unsigned refs;			/* the router while routing, and each send */
	const char *sender;		/* the message's sender, which an edit keeps */
	size_t keylen;
	char key[];			/* "room\0id" in messages, a NUL, the sender */
};

/* One notification to one recipient's devices. */
struct send {
	struct dispatch *dispatch;
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
	struct dispatch_message *message;	/* one-message sends: shared with its others */
};

/* Nothing on its way yet. */
struct dispatch *
dispatch_new(struct delivery_layer *delivery, dispatch_sent_fn *sent, void *arg)
{
	struct dispatch *d = xcalloc(1, sizeof *d);

	d->delivery = delivery;
	d->sent = sent;
	d->arg = arg;
	d->messages = strmap_new();
	return d;
}

/* Free the map; every message was released with its last send. */
void
dispatch_free(struct dispatch *d)
{
	if (d == NULL)
		return;
	strmap_free(d->messages);
	free(d);
}

/* Counters. */
void
dispatch_get_stats(const struct dispatch *d, struct dispatch_stats *stats)
{
	stats->notifications = d->notifications;
	stats->messages = strmap_count(d->messages);
}

/* A message's content, kept by key while held, for edits and deletions. */
struct dispatch_message *
dispatch_message_new(struct dispatch *d, const struct notify_message *message,
    struct notification *n)
{
	struct dispatch_message *m;
	size_t keylen, senderlen = strlen(message->sender);
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, message->room, message->id, &keylen);

	m = xcalloc(1, sizeof *m + keylen + 1 + senderlen + 1);
	m->dispatch = d;
	memcpy(m->key, key, keylen + 1);
	m->keylen = keylen;
	m->sender = m->key + keylen + 1;
	memcpy(m->key + keylen + 1, message->sender, senderlen + 1);
	m->content = delivery_content_new(n, 1);
	m->refs = 1;
	strmap_put(d->messages, key, keylen, m);
	if (key != kbuf)
		free(key);
	return m;
}

/* Nobody holds the message any more: forget it. */
void
dispatch_message_release(struct dispatch_message *m)
{
	struct dispatch *d = m->dispatch;
	struct dispatch_message *current;

	if (--m->refs > 0)
		return;
	current = strmap_remove(d->messages, m->key, m->keylen);
	/* A duplicate routed meanwhile (the seen ids were full) may own the key now. */
	if (current != NULL && current != m)
		strmap_put(d->messages, m->key, m->keylen, current);
	delivery_content_unref(m->content);
	free(m);
}

/* The send is over: release what it held. */
static void
dispatch_send_free(struct send *s)
{
	for (size_t i = 0; i < s->tracker_count; i++) {
		if (s->abandoned)
			tracker_abandon(s->trackers[i]);
		tracker_release(s->trackers[i]);
	}
	if (s->message != NULL)
		dispatch_message_release(s->message);
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
dispatch_observe(struct delivery *delivery, enum delivery_state state, const char *reason,
    void *arg)
{
	struct send *s = arg;
	struct dispatch *d = s->dispatch;

	if (state == DELIVERY_SENT) {
		for (size_t i = 0; i < s->message_count; i++)
			d->sent(s->room, s->message_ids[i], delivery->device_id, d->arg);
	}
	if (state == DELIVERY_ABANDONED)
		s->abandoned = 1;
	else if (state != DELIVERY_SENT && state != DELIVERY_FAILED &&
	    state != DELIVERY_TOKEN_REMOVED)
		return;
	if (--s->outstanding == 0)
		dispatch_send_free(s);
}

/* Start the deliveries of a send: one per target, all of the same content. */
static void
dispatch_send_start(struct send *s, int64_t badge, int64_t now)
{
	size_t n = s->target_count;

	s->outstanding = n;
	s->dispatch->notifications++;
	if (n == 0) {
		dispatch_send_free(s);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct delivery *delivery = delivery_new(s->dispatch->delivery, s->targets[i],
		    s->content, badge, now);

		delivery_submit(delivery, dispatch_observe, s, i);
	}
}

/* One recipient of a message sent at once. */
void
dispatch_message_send(struct dispatch_message *m, struct tracker *t,
    struct device_target **targets, size_t count, int64_t badge, int64_t now)
{
	struct send *s = xcalloc(1, sizeof *s);

	s->dispatch = m->dispatch;
	s->room = xstrdup(m->key);
	s->message_ids = xmalloc(sizeof *s->message_ids);
	s->message_ids[0] = xstrdup(pair_key_second(m->key));
	s->message_count = 1;
	s->trackers = xmalloc(sizeof *s->trackers);
	s->trackers[0] = t;
	s->tracker_count = 1;
	tracker_hold(t);
	s->targets = targets;
	s->target_count = count;
	s->content = m->content;
	delivery_content_ref(m->content);
	s->message = m;
	m->refs++;
	dispatch_send_start(s, badge, now);
}

/* One recipient of a coalesced notification. */
void
dispatch_batch_send(struct dispatch *d, const char *room, struct notification *n,
    char **message_ids, struct tracker **trackers, size_t count,
    struct device_target **targets, size_t target_count, int64_t now)
{
	struct send *s = xcalloc(1, sizeof *s);

	s->dispatch = d;
	s->room = xstrdup(room);
	s->content = delivery_content_new(n, 0);
	s->message_ids = message_ids;
	s->message_count = count;
	s->trackers = trackers;
	s->tracker_count = count;
	s->targets = targets;
	s->target_count = target_count;
	dispatch_send_start(s, -1, now);
}

/* The message on its way under (room, message_id), if any. */
static struct dispatch_message *
dispatch_find(struct dispatch *d, const char *room, const char *message_id)
{
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, room, message_id, &keylen);
	struct dispatch_message *m = strmap_get(d->messages, key, keylen);

	if (key != kbuf)
		free(key);
	return m;
}

/* Cancel what has not left of a deleted message. */
int
dispatch_cancel(struct dispatch *d, const char *room, const char *message_id,
    const char *reason, size_t *cancelled)
{
	struct dispatch_message *m = dispatch_find(d, room, message_id);

	*cancelled = 0;
	if (m == NULL)
		return DISPATCH_ENOTFOUND;
	*cancelled = delivery_cancel_content(d->delivery, m->content, reason);
	return DISPATCH_OK;
}

/* Change what has not left of an edited message: the content keeps its sender. */
int
dispatch_edit(struct dispatch *d, const struct notify_message *edit)
{
	struct dispatch_message *m = dispatch_find(d, edit->room, edit->id);
	struct notify_message message = *edit;
	struct notification n;

	if (m == NULL)
		return DISPATCH_ENOTFOUND;
	message.sender = m->sender;
	if (notify_text_build(&message, 1, -1, &n) != NOTIFY_TEXT_OK)
		return DISPATCH_EINVALID;
	delivery_content_update(m->content, &n);
	return DISPATCH_OK;
}
