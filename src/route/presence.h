/*
 * Who is in each room right now, by client, counting connections: a client on two
 * devices has left only when both connections have left.
 *
 * A leave takes effect after a grace period: until it ends the client still counts
 * as present (PRESENCE_GRACE), so one who drops and comes back within it is never
 * notified of what was said meanwhile; when it ends without a return, the owner is
 * told (on_away) so that what was held back can be sent. With a TTL, presence that is
 * not refreshed (enter/update/sync) within it expires like a leave. presence.sync
 * replaces a room's presence. After a restart nothing is known: everyone counts as
 * away.
 *
 * Memory is bounded: what is stored is connections and clients in their grace period
 * (entries), at most max_entries of them. Past that the oldest entry is dropped: a
 * connection (the least recently refreshed) leaves without a grace period, a client
 * in grace ends it; either way the client is away if nothing else holds it present,
 * and on_away follows. Expiry and drops past the cap are swept from the event loop at
 * most PRESENCE_SWEEP_MAX at a time, so no presence call or turn of the loop does
 * more than that.
 *
 * Every function runs on the event loop's thread.
 */
#ifndef PUSHRELAY_PRESENCE_H
#define PUSHRELAY_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct presence;

enum presence_state {
	PRESENCE_AWAY = 0,	/* not in the room (or unknown) */
	PRESENCE_PRESENT,	/* at least one live connection */
	PRESENCE_GRACE,		/* left, within the grace period */
};

/* Entries expired or dropped in one turn of the event loop, at most. */
#define PRESENCE_SWEEP_MAX 1000

struct presence_options {
	int64_t grace_ms;	/* 0: a leave takes effect at once */
	int64_t ttl_ms;		/* 0: presence does not expire */
	size_t max_entries;	/* connections and clients in grace; 0: no cap */
};

/*
 * Callbacks run from the event loop, never inside a presence call, in the order the
 * transitions happened; they may call any presence function but presence_free. By
 * the time one runs the client may have moved on: presence_get says where it is now.
 */
/* A client's grace period ended without a return, or its presence expired. */
typedef void presence_away_fn(const char *room, const char *client_id, void *arg);
/* A client in its grace period came back. */
typedef void presence_return_fn(const char *room, const char *client_id, void *arg);

struct presence *presence_new(struct event_base *base, const struct presence_options *options,
    presence_away_fn *on_away, presence_return_fn *on_return, void *arg);
void presence_set_options(struct presence *presence, const struct presence_options *options);
void presence_free(struct presence *presence);

/*
 * connection_id may be NULL: the client's connection without an id. An enter with an
 * id replaces that anonymous connection. A leave with an id the client does not have
 * ends its anonymous connection, if any; a leave without an id ends them all.
 */
void presence_enter(struct presence *presence, const char *room, const char *client_id,
    const char *connection_id);
void presence_leave(struct presence *presence, const char *room, const char *client_id,
    const char *connection_id);
/* A refresh: like enter for a connection not known yet. */
void presence_update(struct presence *presence, const char *room, const char *client_id,
    const char *connection_id);
/*
 * Replace the room's presence with these clients: those without a connection get the
 * anonymous one, those with connections keep them (refreshed); the others leave.
 */
void presence_sync(struct presence *presence, const char *room, const char *const *client_ids,
    size_t count);

/* Never allocates: called per member per message. */
enum presence_state presence_get(const struct presence *presence, const char *room,
    const char *client_id);

/* A client's state in a room at one moment. */
struct presence_entry {
	char *client_id;
	enum presence_state state;
};

/*
 * Who is in a room (present or in grace) right now, for deciding later as of now:
 * an array the caller frees with presence_snapshot_free(). Clients not listed are
 * away.
 */
struct presence_entry *presence_snapshot(const struct presence *presence, const char *room,
    size_t *count);
void presence_snapshot_free(struct presence_entry *entries, size_t count);

struct presence_stats {
	size_t rooms;
	size_t clients_present;
	size_t clients_in_grace;
	size_t entries;		/* connections and clients in grace, held to max_entries */
	uint64_t expired;	/* connections that left because of the TTL */
	uint64_t dropped;	/* entries dropped, oldest first, past max_entries */
};
void presence_get_stats(const struct presence *presence, struct presence_stats *stats);

#endif
