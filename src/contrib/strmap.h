/*
 * A hash map from byte strings to pointers: open addressing with linear probing,
 * growing as it fills, keys copied (any bytes, NUL included: the length counts) and
 * hashed with SipHash-1-3 under a random key per map, so ids chosen by clients cannot
 * collide on purpose. The router keeps its state in these maps. A map is not locked:
 * one thread at a time (the one that owns it) may use it.
 */
#ifndef PUSHRELAY_STRMAP_H
#define PUSHRELAY_STRMAP_H

#include <stddef.h>

struct strmap;

/* An empty map (xmalloc: never NULL). */
struct strmap *strmap_new(void);
/* Free the map and its key copies, not the values; NULL is fine. */
void strmap_free(struct strmap *map);
/* The value of key, or NULL when it is not in the map. */
void *strmap_get(const struct strmap *map, const char *key, size_t keylen);
/* Set key to value, replacing (and returning) any previous value, else NULL. */
void *strmap_put(struct strmap *map, const char *key, size_t keylen, void *value);
/* Remove key; returns its value, or NULL. */
void *strmap_remove(struct strmap *map, const char *key, size_t keylen);
size_t strmap_count(const struct strmap *map);
/*
 * Call fn for every entry, in no particular order; fn may remove the entry it is
 * given, and only that one, and must not add keys (that may rebuild the table).
 */
void strmap_foreach(struct strmap *map, void (*fn)(const char *key, size_t keylen,
    void *value, void *arg), void *arg);

#endif
