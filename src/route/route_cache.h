/*
 * Routing reads and the route cache: a message's room members, their preferences
 * and devices, and the devices the message notified before.
 *
 * Reads run on the reader (a store writer thread of its own, so that they never wait
 * behind a batch of writes), in order with the membership changes events make there.
 * What a read found is kept by room (without the notified devices) at the registry's
 * generation before the read. A later message in the same room is routed from memory
 * when nothing can make the read differ: the generation is unchanged (no device or
 * membership changed since), nothing is queued on the reader before it, and the
 * message cannot have notified anyone before (it is fresh, see dedupe_is_fresh).
 *
 * Owns the cached routes (struct route_cache, which only route_cache.c sees), at most
 * rooms_max rooms: past that, new rooms are read every time. The router calls every
 * function on the event loop's thread; done callbacks run there too.
 */
#ifndef PUSHRELAY_ROUTE_CACHE_H
#define PUSHRELAY_ROUTE_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct room_route;
struct store;
struct store_writer;
struct route_cache;

/* What route_cache_route did. */
#define ROUTE_CACHE_HIT 0		/* out is filled from memory: done will not run */
#define ROUTE_CACHE_READING 1		/* out is being read: done runs when it is */

/* A read finished: STORE_OK with the route in out, or the store's error. */
typedef void route_cache_done_fn(int result, void *arg);

/* Reads of store's registry on reader; at most rooms_max rooms kept. */
struct route_cache *route_cache_new(struct store *store, struct store_writer *reader,
    size_t rooms_max);
/* Free, once the reads handed to the reader are done (the reader stopped). */
void route_cache_free(struct route_cache *cache);

/*
 * The route of a message (room, message_id) into out (zeroed first; the caller frees
 * it with store_room_route_free). fresh: the message cannot have notified anyone
 * before, so the cache may answer. room, message_id and out must live until done.
 */
int route_cache_route(struct route_cache *cache, const char *room, const char *message_id,
    int fresh, struct room_route *out, route_cache_done_fn *done, void *arg);

/* Rooms kept in memory. */
size_t route_cache_rooms(const struct route_cache *cache);

#endif
