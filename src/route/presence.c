/*
 * Presence: rooms hold clients, clients hold connections, each level a hash table
 * keyed by id (chained, SipHash-1-3 with a random key, so ids chosen by users cannot
 * pile into one bucket). Every operation costs O(1) but sync, which is O(room).
 *
 * A client with no connection is in its grace period or away; away clients are not
 * stored at all, and a room without clients is freed. The anonymous connection (an
 * enter without connection_id) is stored under the id "", which no valid id can be.
 *
 * Timers: everyone's grace period is equally long, so clients in grace sit on one
 * list in the order they left, which is the order their grace ends, under one timer
 * armed for the first of them. Connections likewise sit on one list in the order of
 * their last refresh, under one sweep timer. So expiry costs O(1) per entry that
 * expires, never a scan, and the oldest entry, to drop when the cap is reached, is
 * the head of one of the two lists. Each timer handles at most PRESENCE_SWEEP_MAX
 * entries per turn of the loop and comes back at once for the rest.
 *
 * Callbacks never run inside a presence call: on_away and on_return are queued and
 * run from the event loop (an event made active), in the order the transitions
 * happened. So a caller is never re-entered, and a callback may call any presence
 * function but presence_free. By the time a callback runs, the client may have moved
 * on (presence_get tells where it is now).
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "presence.h"
#include "siphash.h"
#include "xmalloc.h"

#define PRESENCE_TABLE_MIN 4	/* buckets in a table that has any entry */
#define PRESENCE_DROP_LOG_MS 60000	/* log drops past the cap at most this often */

/* What every table entry starts with. */
struct presence_node {
	struct presence_node *next;
	uint64_t hash;
	const char *key;
};

struct presence_table {
	struct presence_node **buckets;	/* NULL while empty */
	size_t size;			/* buckets, a power of two */
	size_t count;
};

struct presence_connection {
	struct presence_node node;
	struct presence_client *client;
	int64_t refreshed;				/* monotonic ms */
	TAILQ_ENTRY(presence_connection) client_entry;	/* the client's connections */
	TAILQ_ENTRY(presence_connection) ttl_entry;	/* everyone's, by refresh time */
	char id[];					/* "" when anonymous */
};
TAILQ_HEAD(presence_connection_list, presence_connection);

struct presence_client {
	struct presence_node node;
	struct presence_room *room;
	enum presence_state state;			/* PRESENT or GRACE while stored */
	struct presence_table connection_table;
	struct presence_connection_list connections;
	int64_t grace_since;				/* monotonic ms */
	uint64_t sync_mark;
	TAILQ_ENTRY(presence_client) grace_entry;
	char id[];
};
TAILQ_HEAD(presence_client_list, presence_client);

struct presence_room {
	struct presence_node node;
	struct presence_table clients;
	char id[];
};

/* A callback waiting for the event loop. */
struct presence_note {
	STAILQ_ENTRY(presence_note) entry;
	int returned;		/* on_return, else on_away */
	const char *client_id;	/* in room_id's allocation */
	char room_id[];
};
STAILQ_HEAD(presence_note_list, presence_note);

struct presence {
	struct event_base *base;
	struct presence_options options;
	presence_away_fn *on_away;
	presence_return_fn *on_return;
	void *arg;
	struct siphash_key hash_key;
	struct presence_table rooms;
	size_t clients_present;
	size_t clients_in_grace;
	size_t connections;
	uint64_t expired;
	uint64_t dropped;
	int64_t drop_logged;				/* monotonic ms of the last log */
	uint64_t sync_generation;
	struct presence_client_list grace;		/* by start, so by end */
	struct presence_connection_list by_refresh;	/* by refresh, so by expiry */
	struct presence_note_list notes;
	struct event *grace_timer;
	struct event *sweep_timer;			/* TTL expiry and the cap */
	struct event *notify_event;
};

/* SipHash-1-3 of an id under this presence's random key. */
static uint64_t
presence_hash(const struct presence *p, const char *s)
{
	return siphash13(&p->hash_key, s, strlen(s));
}

/* The entry with this key, or NULL. */
static struct presence_node *
presence_table_find(const struct presence_table *t, const char *key, uint64_t hash)
{
	struct presence_node *n;

	if (t->count == 0)
		return NULL;
	for (n = t->buckets[hash & (t->size - 1)]; n != NULL; n = n->next) {
		if (n->hash == hash && strcmp(n->key, key) == 0)
			return n;
	}
	return NULL;
}

/* Rehash into size buckets (0 frees them: the table is empty). */
static void
presence_table_resize(struct presence_table *t, size_t size)
{
	struct presence_node **buckets = NULL, *n, *next;

	if (size > 0)
		buckets = xcalloc(size, sizeof *buckets);
	for (size_t i = 0; i < t->size; i++) {
		for (n = t->buckets[i]; n != NULL; n = next) {
			next = n->next;
			n->next = buckets[n->hash & (size - 1)];
			buckets[n->hash & (size - 1)] = n;
		}
	}
	free(t->buckets);
	t->buckets = buckets;
	t->size = size;
}

/* Add an entry whose key is not in the table. */
static void
presence_table_insert(struct presence_table *t, struct presence_node *n)
{
	struct presence_node **bucket;

	if (t->count >= t->size)
		presence_table_resize(t, t->size == 0 ? PRESENCE_TABLE_MIN : t->size * 2);
	bucket = &t->buckets[n->hash & (t->size - 1)];
	n->next = *bucket;
	*bucket = n;
	t->count++;
}

/* Take an entry out; the table shrinks as it empties. */
static void
presence_table_remove(struct presence_table *t, struct presence_node *n)
{
	struct presence_node **pp = &t->buckets[n->hash & (t->size - 1)];

	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	t->count--;
	if (t->count == 0)
		presence_table_resize(t, 0);
	else if (t->size > PRESENCE_TABLE_MIN && t->count < t->size / 8)
		presence_table_resize(t, t->size / 2);
}

static struct presence_room *
presence_room_find(const struct presence *p, const char *room_id)
{
	return (struct presence_room *)presence_table_find(&p->rooms, room_id,
	    presence_hash(p, room_id));
}

/* The room, created if need be. */
static struct presence_room *
presence_room_get(struct presence *p, const char *room_id)
{
	uint64_t hash = presence_hash(p, room_id);
	struct presence_room *room;
	size_t len;

	room = (struct presence_room *)presence_table_find(&p->rooms, room_id, hash);
	if (room != NULL)
		return room;
	len = strlen(room_id);
	room = xcalloc(1, sizeof *room + len + 1);
	memcpy(room->id, room_id, len + 1);
	room->node.hash = hash;
	room->node.key = room->id;
	presence_table_insert(&p->rooms, &room->node);
	return room;
}

/* Free the room if nobody is left in it. */
static void
presence_room_release(struct presence *p, struct presence_room *room)
{
	if (room->clients.count > 0)
		return;
	presence_table_remove(&p->rooms, &room->node);
	free(room);
}

static struct presence_client *
presence_client_find(const struct presence *p, const struct presence_room *room,
    const char *client_id)
{
	return (struct presence_client *)presence_table_find(&room->clients, client_id,
	    presence_hash(p, client_id));
}

/* The client in the room, created away (with no connection) if need be. */
static struct presence_client *
presence_client_get(struct presence *p, struct presence_room *room, const char *client_id)
{
	uint64_t hash = presence_hash(p, client_id);
	struct presence_client *c;
	size_t len;

	c = (struct presence_client *)presence_table_find(&room->clients, client_id, hash);
	if (c != NULL)
		return c;
	len = strlen(client_id);
	c = xcalloc(1, sizeof *c + len + 1);
	memcpy(c->id, client_id, len + 1);
	c->node.hash = hash;
	c->node.key = c->id;
	c->room = room;
	c->state = PRESENCE_AWAY;
	TAILQ_INIT(&c->connections);
	presence_table_insert(&room->clients, &c->node);
	return c;
}

/* Forget an away client (its room stays until presence_room_release). */
static void
presence_client_release(struct presence_client *c)
{
	if (c->state != PRESENCE_AWAY)
		return;
	presence_table_remove(&c->room->clients, &c->node);
	free(c);
}

/* Queue a callback for the event loop. */
static void
presence_note(struct presence *p, struct presence_client *c, int returned)
{
	size_t room_len = strlen(c->room->id), client_len = strlen(c->id);
	struct presence_note *note;

	if ((returned && p->on_return == NULL) || (!returned && p->on_away == NULL))
		return;
	note = xmalloc(sizeof *note + room_len + 1 + client_len + 1);
	note->returned = returned;
	memcpy(note->room_id, c->room->id, room_len + 1);
	memcpy(note->room_id + room_len + 1, c->id, client_len + 1);
	note->client_id = note->room_id + room_len + 1;
	STAILQ_INSERT_TAIL(&p->notes, note, entry);
	event_active(p->notify_event, EV_TIMEOUT, 0);
}

/* Run the queued callbacks: those queued meanwhile wait for the next round. */
static void
presence_notify(evutil_socket_t fd, short what, void *arg)
{
	struct presence *p = arg;
	struct presence_note_list run = STAILQ_HEAD_INITIALIZER(run);
	struct presence_note *note;

	(void)fd;
	(void)what;
	STAILQ_CONCAT(&run, &p->notes);
	while ((note = STAILQ_FIRST(&run)) != NULL) {
		STAILQ_REMOVE_HEAD(&run, entry);
		if (note->returned)
			p->on_return(note->room_id, note->client_id, p->arg);
		else
			p->on_away(note->room_id, note->client_id, p->arg);
		free(note);
	}
}

/* Arm the timer for the first grace period to end, unless it is armed. */
static void
presence_arm_grace(struct presence *p)
{
	struct presence_client *first = TAILQ_FIRST(&p->grace);
	struct timeval tv;
	int64_t delay;

	if (first == NULL || evtimer_pending(p->grace_timer, NULL))
		return;
	delay = first->grace_since + p->options.grace_ms - clock_monotonic_ms();
	if (delay < 0)
		delay = 0;
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(p->grace_timer, &tv);
}

/* Connections and clients in grace: what max_entries holds. */
static size_t
presence_entries(const struct presence *p)
{
	return p->connections + p->clients_in_grace;
}

/* More entries than max_entries allows (never with no cap)? */
static int
presence_over_cap(const struct presence *p)
{
	return p->options.max_entries > 0 && presence_entries(p) > p->options.max_entries;
}

/*
 * Arm the sweep: at once when over the cap, else for the first connection to expire
 * unless it is armed (the first only ever gets later, so an armed timer is early).
 */
static void
presence_arm_sweep(struct presence *p)
{
	struct presence_connection *first = TAILQ_FIRST(&p->by_refresh);
	struct timeval tv = { 0, 0 };
	int64_t delay;

	if (presence_over_cap(p)) {
		evtimer_add(p->sweep_timer, &tv);
		return;
	}
	if (p->options.ttl_ms <= 0 || first == NULL || evtimer_pending(p->sweep_timer, NULL))
		return;
	delay = first->refreshed + p->options.ttl_ms - clock_monotonic_ms();
	if (delay < 0)
		delay = 0;
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(p->sweep_timer, &tv);
}

/* A client gained a connection: present, back from its grace period if it was in one. */
static void
presence_arrive(struct presence *p, struct presence_client *c)
{
	if (c->state == PRESENCE_PRESENT)
		return;
	if (c->state == PRESENCE_GRACE) {
		TAILQ_REMOVE(&p->grace, c, grace_entry);
		p->clients_in_grace--;
		presence_note(p, c, 1);
	}
	c->state = PRESENCE_PRESENT;
	p->clients_present++;
}

/*
 * After connections were removed: a present client with none left starts its grace
 * period, or is away at once without one (and then forgotten: c may be freed).
 */
static void
presence_settle(struct presence *p, struct presence_client *c)
{
	if (c->state != PRESENCE_PRESENT || !TAILQ_EMPTY(&c->connections))
		return;
	p->clients_present--;
	if (p->options.grace_ms > 0) {
		c->state = PRESENCE_GRACE;
		c->grace_since = clock_monotonic_ms();
		TAILQ_INSERT_TAIL(&p->grace, c, grace_entry);
		p->clients_in_grace++;
		presence_arm_grace(p);
		return;
	}
	c->state = PRESENCE_AWAY;
	presence_note(p, c, 0);
	presence_client_release(c);
}

/* Remove one connection, without settling its client. */
static void
presence_connection_remove(struct presence *p, struct presence_connection *conn)
{
	struct presence_client *c = conn->client;

	presence_table_remove(&c->connection_table, &conn->node);
	TAILQ_REMOVE(&c->connections, conn, client_entry);
	TAILQ_REMOVE(&p->by_refresh, conn, ttl_entry);
	p->connections--;
	free(conn);
}

/* Mark a connection as seen now: it moves to the end of the TTL order. */
static void
presence_connection_touch(struct presence *p, struct presence_connection *conn, int64_t now)
{
	conn->refreshed = now;
	TAILQ_REMOVE(&p->by_refresh, conn, ttl_entry);
	TAILQ_INSERT_TAIL(&p->by_refresh, conn, ttl_entry);
}

static struct presence_connection *
presence_connection_find(const struct presence *p, const struct presence_client *c,
    const char *id)
{
	return (struct presence_connection *)presence_table_find(&c->connection_table, id,
	    presence_hash(p, id));
}

/* Log drops past the cap, at most once per PRESENCE_DROP_LOG_MS. */
static void
presence_log_drop(struct presence *p)
{
	int64_t now = clock_monotonic_ms();
	char max[24], dropped[24];

	if (p->drop_logged != 0 && now - p->drop_logged < PRESENCE_DROP_LOG_MS)
		return;
	p->drop_logged = now;
	snprintf(max, sizeof max, "%zu", p->options.max_entries);
	snprintf(dropped, sizeof dropped, "%llu", (unsigned long long)p->dropped);
	log_warn("presence is full: dropping the oldest entries ([rooms] presence_max)",
	    "presence_max", max, "dropped_total", dropped, NULL);
}

/*
 * Drop the oldest entry to make room: the client in grace that left first, or the
 * connection refreshed least recently, whichever is older. A dropped connection
 * takes no grace period (that would only move the entry), so its client is away at
 * once if it has no other connection. Rooms and clients left empty are freed.
 */
static void
presence_drop_oldest(struct presence *p)
{
	struct presence_client *c = TAILQ_FIRST(&p->grace);
	struct presence_connection *conn = TAILQ_FIRST(&p->by_refresh);
	struct presence_room *room;

	if (c != NULL && (conn == NULL || c->grace_since <= conn->refreshed)) {
		TAILQ_REMOVE(&p->grace, c, grace_entry);
		p->clients_in_grace--;
	} else if (conn != NULL) {
		c = conn->client;
		presence_connection_remove(p, conn);
		if (!TAILQ_EMPTY(&c->connections))
			goto dropped;
		p->clients_present--;
	} else
		return;
	room = c->room;
	c->state = PRESENCE_AWAY;
	presence_note(p, c, 0);
	presence_client_release(c);
	presence_room_release(p, room);
dropped:
	p->dropped++;
	presence_log_drop(p);
}

/*
 * Add or refresh a connection. A connection with an id replaces the anonymous one,
 * which stood for connections whose ids were not known. Past the cap, the oldest
 * entry goes: never this one, which is the newest (and its client present, so not
 * in grace).
 */
static void
presence_connect(struct presence *p, struct presence_client *c, const char *connection_id)
{
	const char *id = connection_id != NULL ? connection_id : "";
	uint64_t hash = presence_hash(p, id);
	int64_t now = clock_monotonic_ms();
	struct presence_connection *conn;
	size_t len;

	conn = (struct presence_connection *)presence_table_find(&c->connection_table, id,
	    hash);
	if (conn != NULL)
		presence_connection_touch(p, conn, now);
	else {
		struct presence_connection *anonymous;

		if (id[0] != '\0' && (anonymous = presence_connection_find(p, c, "")) != NULL)
			presence_connection_remove(p, anonymous);
		len = strlen(id);
		conn = xcalloc(1, sizeof *conn + len + 1);
		memcpy(conn->id, id, len + 1);
		conn->node.hash = hash;
		conn->node.key = conn->id;
		conn->client = c;
		conn->refreshed = now;
		presence_table_insert(&c->connection_table, &conn->node);
		TAILQ_INSERT_TAIL(&c->connections, conn, client_entry);
		TAILQ_INSERT_TAIL(&p->by_refresh, conn, ttl_entry);
		p->connections++;
	}
	presence_arrive(p, c);
	/* One in, one out; more only after the cap was lowered: the sweep does those. */
	if (presence_over_cap(p))
		presence_drop_oldest(p);
	presence_arm_sweep(p);
}

/* Remove every connection of a client, without settling it. */
static void
presence_disconnect_all(struct presence *p, struct presence_client *c)
{
	struct presence_connection *conn;

	while ((conn = TAILQ_FIRST(&c->connections)) != NULL)
		presence_connection_remove(p, conn);
}

/* Grace periods ended: those clients are away. */
static void
presence_grace_end(evutil_socket_t fd, short what, void *arg)
{
	struct presence *p = arg;
	struct presence_client *c;
	struct presence_room *room;
	int64_t now = clock_monotonic_ms();
	size_t n = 0;

	(void)fd;
	(void)what;
	while (n++ < PRESENCE_SWEEP_MAX && (c = TAILQ_FIRST(&p->grace)) != NULL &&
	    c->grace_since + p->options.grace_ms <= now) {
		room = c->room;
		TAILQ_REMOVE(&p->grace, c, grace_entry);
		p->clients_in_grace--;
		c->state = PRESENCE_AWAY;
		presence_note(p, c, 0);
		presence_client_release(c);
		presence_room_release(p, room);
	}
	presence_arm_grace(p);
}

/*
 * Drop the oldest entries while over the cap, then let connections not refreshed
 * within the TTL leave (grace follows), PRESENCE_SWEEP_MAX in all; the timer comes
 * back at once if there is more.
 */
static void
presence_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct presence *p = arg;
	struct presence_connection *conn;
	struct presence_client *c;
	struct presence_room *room;
	int64_t now = clock_monotonic_ms();
	size_t n = 0;

	(void)fd;
	(void)what;
	for (; n < PRESENCE_SWEEP_MAX && presence_over_cap(p); n++)
		presence_drop_oldest(p);
	for (; n < PRESENCE_SWEEP_MAX && p->options.ttl_ms > 0 &&
	    (conn = TAILQ_FIRST(&p->by_refresh)) != NULL &&
	    conn->refreshed + p->options.ttl_ms <= now; n++) {
		c = conn->client;
		room = c->room;
		presence_connection_remove(p, conn);
		p->expired++;
		presence_settle(p, c);
		presence_room_release(p, room);
	}
	presence_arm_sweep(p);
}

struct presence *
presence_new(struct event_base *base, const struct presence_options *options,
    presence_away_fn *on_away, presence_return_fn *on_return, void *arg)
{
	struct presence *p = xcalloc(1, sizeof *p);

	p->base = base;
	if (options != NULL)
		p->options = *options;
	p->on_away = on_away;
	p->on_return = on_return;
	p->arg = arg;
	siphash_key_random(&p->hash_key);
	TAILQ_INIT(&p->grace);
	TAILQ_INIT(&p->by_refresh);
	STAILQ_INIT(&p->notes);
	if ((p->grace_timer = evtimer_new(base, presence_grace_end, p)) == NULL ||
	    (p->sweep_timer = evtimer_new(base, presence_sweep, p)) == NULL ||
	    (p->notify_event = event_new(base, -1, 0, presence_notify, p)) == NULL)
		fatalx("evtimer_new: out of memory");
	return p;
}

void
presence_set_options(struct presence *p, const struct presence_options *options)
{
	p->options = *options;
	evtimer_del(p->grace_timer);
	evtimer_del(p->sweep_timer);
	presence_arm_grace(p);
	presence_arm_sweep(p);
}

void
presence_free(struct presence *p)
{
	struct presence_node *rn, *rnext, *cn, *cnext;
	struct presence_note *note;

	if (p == NULL)
		return;
	event_free(p->grace_timer);
	event_free(p->sweep_timer);
	event_free(p->notify_event);
	for (size_t i = 0; i < p->rooms.size; i++) {
		for (rn = p->rooms.buckets[i]; rn != NULL; rn = rnext) {
			struct presence_room *room = (struct presence_room *)rn;

			rnext = rn->next;
			for (size_t j = 0; j < room->clients.size; j++) {
				for (cn = room->clients.buckets[j]; cn != NULL; cn = cnext) {
					struct presence_client *c = (struct presence_client *)cn;
					struct presence_connection *conn;

					cnext = cn->next;
					while ((conn = TAILQ_FIRST(&c->connections)) != NULL) {
						TAILQ_REMOVE(&c->connections, conn, client_entry);
						free(conn);
					}
					free(c->connection_table.buckets);
					free(c);
				}
			}
			free(room->clients.buckets);
			free(room);
		}
	}
	free(p->rooms.buckets);
	while ((note = STAILQ_FIRST(&p->notes)) != NULL) {
		STAILQ_REMOVE_HEAD(&p->notes, entry);
		free(note);
	}
	free(p);
}

void
presence_enter(struct presence *p, const char *room_id, const char *client_id,
    const char *connection_id)
{
	struct presence_room *room = presence_room_get(p, room_id);

	presence_connect(p, presence_client_get(p, room, client_id), connection_id);
}

/*
 * A leave with a connection id removes that connection, or, when the client has no
 * such connection, its anonymous one (which may stand for it). A leave without one
 * means the client left: every connection goes.
 */
void
presence_leave(struct presence *p, const char *room_id, const char *client_id,
    const char *connection_id)
{
	struct presence_room *room;
	struct presence_client *c;
	struct presence_connection *conn;

	if ((room = presence_room_find(p, room_id)) == NULL ||
	    (c = presence_client_find(p, room, client_id)) == NULL ||
	    c->state != PRESENCE_PRESENT)
		return;
	if (connection_id == NULL || connection_id[0] == '\0')
		presence_disconnect_all(p, c);
	else if ((conn = presence_connection_find(p, c, connection_id)) != NULL ||
	    (conn = presence_connection_find(p, c, "")) != NULL)
		presence_connection_remove(p, conn);
	presence_settle(p, c);
	presence_room_release(p, room);
}

void
presence_update(struct presence *p, const char *room_id, const char *client_id,
    const char *connection_id)
{
	presence_enter(p, room_id, client_id, connection_id);
}

/*
 * Listed clients are present: those without a connection get the anonymous one, and
 * those with connections keep them (refreshed), so their later leaves still match.
 * Present clients not listed lose every connection and start their grace period.
 */
void
presence_sync(struct presence *p, const char *room_id, const char *const *client_ids,
    size_t count)
{
	struct presence_room *room = presence_room_get(p, room_id);
	struct presence_client *c, **gone = NULL;
	struct presence_connection *conn;
	struct presence_node *n;
	uint64_t mark = ++p->sync_generation;
	int64_t now = clock_monotonic_ms();
	size_t ngone = 0, cap = 0;

	for (size_t i = 0; i < count; i++) {
		c = presence_client_get(p, room, client_ids[i]);
		c->sync_mark = mark;
		if (TAILQ_EMPTY(&c->connections))
			presence_connect(p, c, NULL);
		else {
			TAILQ_FOREACH(conn, &c->connections, client_entry)
				presence_connection_touch(p, conn, now);
		}
	}
	/* Collect first: leaving changes the table being walked. */
	for (size_t i = 0; i < room->clients.size; i++) {
		for (n = room->clients.buckets[i]; n != NULL; n = n->next) {
			c = (struct presence_client *)n;
			if (c->sync_mark == mark || c->state != PRESENCE_PRESENT)
				continue;
			if (ngone == cap) {
				cap = cap == 0 ? 16 : cap * 2;
				gone = xreallocarray(gone, cap, sizeof *gone);
			}
			gone[ngone++] = c;
		}
	}
	for (size_t i = 0; i < ngone; i++) {
		presence_disconnect_all(p, gone[i]);
		presence_settle(p, gone[i]);
	}
	free(gone);
	presence_arm_sweep(p);
	presence_room_release(p, room);
}

enum presence_state
presence_get(const struct presence *p, const char *room_id, const char *client_id)
{
	const struct presence_room *room;
	const struct presence_client *c;

	if ((room = presence_room_find(p, room_id)) == NULL ||
	    (c = presence_client_find(p, room, client_id)) == NULL)
		return PRESENCE_AWAY;
	return c->state;
}

void
presence_get_stats(const struct presence *p, struct presence_stats *stats)
{
	stats->rooms = p->rooms.count;
	stats->clients_present = p->clients_present;
	stats->clients_in_grace = p->clients_in_grace;
	stats->entries = presence_entries(p);
	stats->expired = p->expired;
	stats->dropped = p->dropped;
}

struct presence_entry *
presence_snapshot(const struct presence *p, const char *room_id, size_t *count)
{
	const struct presence_room *room = presence_room_find(p, room_id);
	struct presence_entry *out;
	const struct presence_node *n;
	size_t k = 0;

	*count = 0;
	if (room == NULL || room->clients.count == 0)
		return NULL;
	out = xcalloc(room->clients.count, sizeof *out);
	for (size_t i = 0; i < room->clients.size; i++) {
		for (n = room->clients.buckets[i]; n != NULL; n = n->next) {
			const struct presence_client *c = (const struct presence_client *)n;
			out[k].client_id = xstrdup(c->id);
			out[k].state = c->state;
			k++;
		}
	}
	*count = k;
	return out;
}

void
presence_snapshot_free(struct presence_entry *entries, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(entries[i].client_id);
	free(entries);
}
