/* Reads of a message's route, and the routes kept by room while the registry holds. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "route_cache.h"
#include "store_registry.h"
#include "store_writer.h"
#include "strmap.h"
#include "xmalloc.h"

struct route_cache {
	struct store *store;		/* whose registry generation the cache follows */
	struct store_writer *reader;
	size_t rooms_max;
	struct strmap *rooms;		/* room -> struct route_cache_room */
};

/* A room's members and devices as read at one registry generation. */
struct route_cache_room {
	uint64_t generation;
	struct room_route route;	/* without notified devices */
};

/* One read on the reader thread. */
struct route_cache_read {
	struct route_cache *cache;
	const char *room;
	const char *message_id;
	struct room_route *out;
	uint64_t generation;		/* the registry's, before the read */
	route_cache_done_fn *done;
	void *arg;
};

/*
 * The registry's generation: what is cached is good while it stays the same. The
 * only place that asks the store for it.
 */
static uint64_t
route_cache_generation(const struct route_cache *cache)
{
	return store_generation(cache->store);
}

/* Nothing kept yet. */
struct route_cache *
route_cache_new(struct store *store, struct store_writer *reader, size_t rooms_max)
{
	struct route_cache *cache = xcalloc(1, sizeof *cache);

	cache->store = store;
	cache->reader = reader;
	cache->rooms_max = rooms_max;
	cache->rooms = strmap_new();
	return cache;
}

/* Free one kept room. */
static void
route_cache_free_room(const char *key, size_t keylen, void *value, void *arg)
{
	struct route_cache_room *c = value;

	store_room_route_free(&c->route);
	free(c);
}

/* Forget every room; reads still queued must have finished. */
void
route_cache_free(struct route_cache *cache)
{
	if (cache == NULL)
		return;
	strmap_foreach(cache->rooms, route_cache_free_room, NULL);
	strmap_free(cache->rooms);
	free(cache);
}

/* Copy a room's members and devices (not its notified devices). */
static void
route_cache_copy(const struct room_route *from, struct room_route *to)
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
route_cache_remember(struct route_cache *cache, const char *room,
    const struct room_route *route, uint64_t generation)
{
	struct route_cache_room *c = strmap_get(cache->rooms, room, strlen(room));

	if (c == NULL) {
		if (strmap_count(cache->rooms) >= cache->rooms_max)
			return;
		c = xcalloc(1, sizeof *c);
		strmap_put(cache->rooms, room, strlen(room), c);
	} else
		store_room_route_free(&c->route);
	c->generation = generation;
	route_cache_copy(route, &c->route);
}

/* Reader thread: read the route. */
static int
route_cache_read_run(struct store *store, void *arg)
{
	struct route_cache_read *read = arg;

	return store_room_route(store, read->room, read->message_id, read->out);
}

/* Loop thread: keep what was read, then hand it to the caller, who may change it. */
static void
route_cache_read_done(int result, void *arg)
{
	struct route_cache_read *read = arg;

	if (result == STORE_OK)
		route_cache_remember(read->cache, read->room, read->out, read->generation);
	read->done(result, read->arg);
	free(read);
}

/* From memory when nothing could make a read differ, else read in order. */
int
route_cache_route(struct route_cache *cache, const char *room, const char *message_id,
    int fresh, struct room_route *out, route_cache_done_fn *done, void *arg)
{
	struct route_cache_room *c = strmap_get(cache->rooms, room, strlen(room));
	struct route_cache_read *read;

	memset(out, 0, sizeof *out);
	if (c != NULL && fresh && c->generation == route_cache_generation(cache) &&
	    store_writer_pending(cache->reader) == 0) {
		route_cache_copy(&c->route, out);
		return ROUTE_CACHE_HIT;
	}
	read = xcalloc(1, sizeof *read);
	read->cache = cache;
	read->room = room;
	read->message_id = message_id;
	read->out = out;
	read->generation = route_cache_generation(cache);
	read->done = done;
	read->arg = arg;
	store_writer_submit(cache->reader, route_cache_read_run, route_cache_read_done, read);
	return ROUTE_CACHE_READING;
}

/* How many rooms are kept. */
size_t
route_cache_rooms(const struct route_cache *cache)
{
	return strmap_count(cache->rooms);
}
