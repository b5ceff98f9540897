/*
 * Room state: what the router decides with, behind one interface with two backends
 * ([state] backend):
 *
 *  - memory (state_memory.c): this process's own pieces, presence.h (who is in each
 *    room), unread.h (badges), dedupe.h (message ids seen, notified marks) and
 *    coalesce.h (coalescing windows, grace holds), with unread counts and notified
 *    marks written behind to the store. Every call has completed when it returns.
 *  - redis (state_redis.c): the same state in Redis, shared by every instance that
 *    uses the same server and [state] prefix, through Lua scripts over one
 *    connection: one round trip per message (per ROUTE_CHUNK_MEMBERS members), per
 *    presence event, per read, per edit or deletion, per poll of the due buckets and
 *    per write-behind of the notified marks (docs/state-redis.md). Calls complete
 *    later, from the loop, in the order they were made. While Redis is down the
 *    calls wait, state_ready() is false (the router then pauses its sources), and
 *    they go on once it is back.
 *
 * A message goes through the state in steps: state_admit (memory: a duplicate?),
 * state_message_new (what the state keeps of it while it is routed), then for each
 * chunk of its room's members state_decide: for each candidate (a member but the
 * sender), present (skip), or away: unread counted, then sent now with its badge, or
 * held (coalescing window, grace). What is held comes back through the batch
 * callback, due, as one notification. A redis hold is in Redis once the decide has
 * completed: the event need not wait for it; a memory hold (state_hold) keeps the
 * event's tracker until its batch is sent.
 *
 * Return codes and outcomes are listed with each function. Every function is called
 * by the router (router.c, route.c) on the event loop's thread; callbacks run there,
 * never inside the call that caused them unless the backend is synchronous
 * (state_synchronous), in which case a decide's callback runs before it returns.
 */
#ifndef PUSHRELAY_STATE_H
#define PUSHRELAY_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "notify_text.h"

struct device_target;
struct room_event;
struct tracker;
struct state;
struct state_message;

/* What state_admit and a decide say of a message. */
#define STATE_OK 0			/* route it */
#define STATE_DUPLICATE 1		/* seen within the dedupe window: skip it */
#define STATE_DELETED 2			/* deleted (through any instance) before it was routed */
#define STATE_ESTOPPED (-1)		/* the state stopped before it answered */
#define STATE_EFAILED (-2)		/* the state could not answer (redis: given up) */

/* What a decide says of one candidate. */
enum state_decision {
	STATE_SKIP = 0,		/* present, or away but not to be notified now */
	STATE_SEND,		/* away: notify now, with badge */
	STATE_HOLD_WINDOW,	/* away: held for the coalescing window */
	STATE_HOLD_GRACE,	/* in the grace period: held to its end */
};

/* A member a message may notify (not its sender), and what the state decided. */
struct state_candidate {
	const char *client_id;
	int notify;			/* 0: only counts as unread (muted, not mentioned,
					 * no device) */
	enum state_decision decision;	/* out */
	int64_t badge;			/* out, STATE_SEND: the recipient's unread total */
};

/*
 * A decide is over: result (STATE_OK, STATE_DUPLICATE, STATE_DELETED, STATE_ESTOPPED
 * or STATE_EFAILED: the message is then dropped unacknowledged); on STATE_OK each
 * candidate's decision is set, and sent lists the devices this message was sent to
 * before (a redelivery; the strings live during the call only).
 */
typedef void state_decided_fn(int result, const char *const *sent, size_t sent_count,
    void *arg);
/* An edit or a deletion reached what is held: cancelled held copies were deleted. */
typedef void state_changed_fn(size_t cancelled, void *arg);

/*
 * What waits for one recipient in one room, now due, as one notification. It lives
 * until the callback returns. The callback may take message_ids, trackers and
 * targets (setting the pointer to NULL): it then owns the arrays, what they point
 * to, and the trackers' references. What it leaves is freed, and trackers left are
 * released, after.
 */
struct state_batch {
	const char *room;
	const char *client;
	const struct notify_message *latest;	/* the newest message, whose text shows */
	size_t count;				/* messages, at least 1 */
	char **message_ids;			/* count of them, oldest first */
	struct tracker **trackers;		/* count of them, one per message */
	int64_t badge;				/* the recipient's unread total */
	int targets_known;			/* targets are the devices to notify; else
						 * read the client's from the registry */
	struct device_target **targets;
	size_t target_count;
	const char *const *sent;		/* devices sent this batch before (redis:
						 * a batch claimed again); NULL when none */
	size_t sent_count;
};

struct state_callbacks {
	/* A batch is due and its recipient away. */
	void (*batch)(struct state_batch *batch, void *arg);
	/* The state is ready again (state_ready() turned true). */
	void (*ready)(void *arg);
	void *arg;
};

struct state_options {
	int64_t presence_grace_ms;	/* 0: a leave takes effect at once */
	int64_t presence_ttl_ms;	/* 0: presence does not expire */
	size_t presence_max;		/* memory: entries kept, at most */
	int64_t coalesce_window_ms;	/* 0: no coalescing */
	int64_t dedupe_window_ms;
};

/* Kinds of round trip to Redis, for the counters. */
enum state_trip {
	STATE_TRIP_MESSAGE = 0,		/* a decide */
	STATE_TRIP_PRESENCE,		/* a presence event */
	STATE_TRIP_READ,		/* a read event */
	STATE_TRIP_CHANGE,		/* an edit or a deletion */
	STATE_TRIP_POLL,		/* a poll of the due buckets */
	STATE_TRIP_FLUSH,		/* notified marks and finished claims, written behind */
	STATE_TRIP_KINDS,
};

struct state_stats {
	const char *backend;		/* "memory", "redis" */
	int up;				/* state_ready() */
	size_t pending_recipients;	/* (room, recipient) buckets waiting (redis: all
					 * instances', as of the last poll) */
	size_t presence_entries;	/* memory only */
	uint64_t presence_expired;	/* memory only */
	uint64_t presence_dropped;	/* memory only */
	uint64_t round_trips[STATE_TRIP_KINDS];	/* redis only */
	uint64_t script_errors;		/* redis: error replies to a script */
	size_t waiting;			/* redis: calls waiting for Redis */
};

/* The backend's operations: state.c calls them for the functions below. */
struct state_ops {
	const char *name;
	int synchronous;
	void (*set_callbacks)(struct state *, const struct state_callbacks *);
	void (*set_options)(struct state *, const struct state_options *);
	int (*ready)(const struct state *);
	int (*admit)(struct state *, const struct room_event *, int64_t);
	struct state_message *(*message_new)(struct state *, const struct room_event *);
	int (*message_fresh)(const struct state_message *);
	void (*decide)(struct state_message *, struct state_candidate *, size_t, int,
	    state_decided_fn *, void *);
	void (*message_free)(struct state_message *);
	void (*hold)(struct state *, const char *, const struct notify_message *,
	    struct tracker *, struct device_target **, size_t, enum state_decision);
	void (*presence)(struct state *, const struct room_event *, struct tracker *);
	void (*read)(struct state *, const char *, const char *, struct tracker *);
	void (*change)(struct state *, const struct room_event *, struct tracker *,
	    state_changed_fn *, void *);
	void (*mark_sent)(struct state *, const char *, const char *, const char *, int64_t);
	void (*flush)(struct state *);
	void (*sweep)(struct state *, int64_t);
	void (*stop)(struct state *);
	void (*free)(struct state *);
	void (*get_stats)(const struct state *, struct state_stats *);
};

/* What every backend's struct starts with. */
struct state {
	const struct state_ops *ops;
};

/* What every backend's message starts with. */
struct state_message {
	struct state *state;
};

/* The backend's name: "memory" or "redis". */
const char *state_backend(const struct state *state);
/* Does every call complete before it returns? (memory) */
int state_synchronous(const struct state *state);
/* Where batches go, and whom to tell when the state is ready again. */
void state_set_callbacks(struct state *state, const struct state_callbacks *callbacks);
/* New options (a reload): windows opened from now on take them. */
void state_set_options(struct state *state, const struct state_options *options);
/* Can calls be answered now? (redis: connected, scripts loaded) */
int state_ready(const struct state *state);

/*
 * Before anything else of a message e: STATE_OK, or STATE_DUPLICATE (memory: its
 * id was seen in this process within the window; redis: always STATE_OK, the
 * decide checks, across instances). now: wall-clock ms.
 */
int state_admit(struct state *state, const struct room_event *e, int64_t now);
/*
 * What the state keeps of message e while it is routed (memory: the room's
 * presence as the message came). e must live, and stay the same event, until
 * state_message_free; its text may change (an edit while it is routed).
 */
struct state_message *state_message_new(struct state *state, const struct room_event *e);
/*
 * Can the message not have notified anyone before, so that its route needs no
 * notified devices from the store? (memory: dedupe_is_fresh; redis: always, the
 * decide answers the devices sent before.)
 */
int state_message_fresh(const struct state_message *message);
/*
 * Decide for count candidates (the next chunk of the room's members; the array
 * must live until done runs): whether each is present, counts the message as
 * unread (when count_unread), and is notified now or held. done runs once.
 */
void state_decide(struct state_message *message, struct state_candidate *candidates,
    size_t count, int count_unread, state_decided_fn *done, void *arg);
/* The message is routed, or given up. No decide of it may be waiting. */
void state_message_free(struct state_message *message);

/*
 * A held decision (STATE_HOLD_*) of a decide, with the recipient's devices (targets:
 * count of them, taken over) and the event's tracker (held while memory holds the
 * message). redis: the decide held it already; only the targets are freed.
 */
void state_hold(struct state *state, const char *client, const struct notify_message *message,
    struct tracker *tracker, struct device_target **targets, size_t count,
    enum state_decision decision);

/*
 * A presence event (enter, leave, update, sync). tracker is held until the state has
 * it (redis: the script's answer; released, or abandoned at a stop).
 */
void state_presence(struct state *state, const struct room_event *e, struct tracker *tracker);
/* client read room: its unread count there is 0. tracker as state_presence. */
void state_read(struct state *state, const char *room, const char *client,
    struct tracker *tracker);
/*
 * An edit (text) or a deletion of a message, applied to what is held (e's fields are
 * copied). done (may be NULL) runs once with the held copies deleted; not after a stop.
 * tracker as state_presence.
 */
void state_change(struct state *state, const struct room_event *e, struct tracker *tracker,
    state_changed_fn *done, void *arg);

/* A device was sent a message at now (wall ms): written behind, at the next flush. */
void state_mark_sent(struct state *state, const char *room, const char *message_id,
    const char *device_id, int64_t now);
/* Write behind what waits (the router's flush timer). */
void state_flush(struct state *state);
/* Forget what is older than the dedupe window (the router's sweep timer). */
void state_sweep(struct state *state, int64_t now);
/*
 * Shutdown: drop what waits for this process (not acknowledged: it comes again);
 * calls waiting get STATE_ESTOPPED (decides) or abandon their trackers. memory
 * writes its marks and counts behind.
 */
void state_stop(struct state *state);
void state_free(struct state *state);
void state_get_stats(const struct state *state, struct state_stats *stats);

/* The name of a round-trip kind, for the metrics' label. */
const char *state_trip_name(enum state_trip trip);

#endif
