/*
 * Coalescing and grace holds: messages that wait for one recipient in one room (a
 * bucket), to go as one notification.
 *
 * Two reasons to wait. Coalescing: the first message to an away recipient opens a
 * window of window_ms (monotonic); the messages that come meanwhile join it, and when
 * it ends they go as one notification ("3 new messages: ...", the latest message's
 * text). Grace: a recipient who left within the presence grace period still counts
 * as present; what is said meanwhile waits without a window, and goes when the grace
 * ends without a return (coalesce_away), or is dropped, read, when they come back
 * (coalesce_return). A window that ends while the recipient is in grace leaves the
 * bucket to the end of the grace.
 *
 * When a bucket is due and its recipient is away, it is handed to the owner's send
 * callback; a recipient who is present again has read it: it is dropped. Deletions
 * and edits reach the messages still waiting (coalesce_change). Each held message
 * holds its event's tracker; a dropped one releases it.
 *
 * Owns the buckets and the window timer (struct coalesce, which only coalesce.c sees).
 * Time is monotonic ms: passed in (now) by the callers, and read from options.clock
 * when the timer fires. Without an event base there is no timer: the owner calls
 * coalesce_tick (what tests do, with a fake now). The router calls every function on
 * the event loop's thread; the send callback runs there, never inside coalesce_add.
 */
#ifndef PUSHRELAY_COALESCE_H
#define PUSHRELAY_COALESCE_H

#include <stddef.h>
#include <stdint.h>

#include "notify_text.h"

struct device_target;
struct event_base;
struct presence;
struct tracker;
struct coalesce;

/*
 * What waits for a recipient, now due, handed to the send callback. It lives until
 * the callback returns. The callback may take message_ids, trackers and targets
 * (setting the pointer to NULL): it then owns the arrays, what they point to, and the
 * trackers' references. What it leaves is freed, and trackers left are released, after.
 */
struct coalesce_batch {
	const char *room;
	const char *client;
	const struct notify_message *latest;	/* the newest message, whose text shows */
	size_t count;				/* messages, at least 1 */
	char **message_ids;			/* count of them, oldest first */
	struct tracker **trackers;		/* count of them, one per message */
	struct device_target **targets;		/* the recipient's latest known devices */
	size_t target_count;
};

typedef void coalesce_send_fn(struct coalesce_batch *batch, void *arg);

struct coalesce_options {
	struct event_base *base;	/* for the window timer; NULL: coalesce_tick only */
	struct presence *presence;	/* whether a recipient is back, or in grace */
	int64_t window_ms;
	int64_t (*clock)(void);		/* monotonic ms when the timer fires; NULL: clock.h's */
	coalesce_send_fn *send;
	void *arg;
};

struct coalesce_stats {
	size_t pending;			/* (room, recipient) pairs with messages waiting */
	uint64_t joined;		/* messages added to a bucket that already waited */
};

struct coalesce *coalesce_new(const struct coalesce_options *options);
/* A new window for the buckets opened from now on. */
void coalesce_set_window(struct coalesce *coalesce, int64_t window_ms);
/* The window: 0 means messages are not coalesced (only held for a grace). */
int64_t coalesce_window(const struct coalesce *coalesce);
/* Shutdown: drop every bucket, abandoning its trackers (their events come again). */
void coalesce_clear(struct coalesce *coalesce);
/* coalesce_clear, then free. */
void coalesce_free(struct coalesce *coalesce);
void coalesce_get_stats(const struct coalesce *coalesce, struct coalesce_stats *stats);

/*
 * Hold message (copied) for client in message->room, with the recipient's devices
 * (targets: count of them, taken over; they replace what the bucket had). tracker is
 * held. window: open the coalescing window at now if the bucket never had one; else
 * (grace) the bucket waits for coalesce_away.
 */
void coalesce_add(struct coalesce *coalesce, const char *client,
    const struct notify_message *message, struct tracker *tracker,
    struct device_target **targets, size_t count, int window, int64_t now);
/* Send the buckets whose window has ended by now. */
void coalesce_tick(struct coalesce *coalesce, int64_t now);
/* The grace of client in room ended without a return: what waits goes. */
void coalesce_away(struct coalesce *coalesce, const char *room, const char *client);
/* client came back to room within the grace: what waits is read, dropped. */
void coalesce_return(struct coalesce *coalesce, const char *room, const char *client);
/*
 * A deletion (delete: the held copies go, their trackers released) or an edit (the
 * held copies take text; NULL: nothing changes) of message id in room. Returns the
 * held copies deleted.
 */
size_t coalesce_change(struct coalesce *coalesce, const char *room, const char *id,
    int delete, const char *text);
/* Messages waiting for client in room. */
size_t coalesce_waiting(const struct coalesce *coalesce, const char *room, const char *client);

#endif
