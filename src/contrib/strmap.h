/* A hash map from strings to pointers: chained, growing, keys copied. */
#ifndef PUSHRELAY_STRMAP_H
#define PUSHRELAY_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
/* Free the map (not the values). */
void strmap_free(struct strmap *map);
void *strmap_get(const struct strmap *map, const char *key, size_t keylen);
/* Set key to value, replacing (and returning) any previous value. */
void *strmap_put(struct strmap *map, const char *key, size_t keylen, void *value);
/* Remove key; returns its value, or NULL. */
void *strmap_remove(struct strmap *map, const char *key, size_t keylen);
size_t strmap_count(const struct strmap *map);
/* Call fn for every entry; fn may remove the entry it is given, and only that one. */
void strmap_foreach(struct strmap *map, void (*fn)(const char *key, size_t keylen,
    void *value, void *arg), void *arg);

#endif
