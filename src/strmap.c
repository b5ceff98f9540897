/* String-keyed hash map (FNV-1a, separate chaining, doubling at load 1). */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "xmalloc.h"

struct strmap_entry {
	struct strmap_entry *next;
	uint64_t hash;
	void *value;
	size_t keylen;
	char key[];			/* keylen bytes and a NUL */
};

struct strmap {
	struct strmap_entry **buckets;
	size_t nbuckets;		/* a power of two */
	size_t count;
};

static uint64_t
strmap_hash(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct strmap *
strmap_new(void)
{
	struct strmap *map = xcalloc(1, sizeof *map);

	map->nbuckets = 16;
	map->buckets = xcalloc(map->nbuckets, sizeof *map->buckets);
	return map;
}

void
strmap_free(struct strmap *map)
{
	if (map == NULL)
		return;
	for (size_t i = 0; i < map->nbuckets; i++) {
		struct strmap_entry *e = map->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(map->buckets);
	free(map);
}

static struct strmap_entry **
strmap_find(const struct strmap *map, const char *key, size_t keylen, uint64_t hash)
{
	struct strmap_entry **at = &map->buckets[hash & (map->nbuckets - 1)];

	for (; *at != NULL; at = &(*at)->next) {
		if ((*at)->hash == hash && (*at)->keylen == keylen &&
		    memcmp((*at)->key, key, keylen) == 0)
			break;
	}
	return at;
}

void *
strmap_get(const struct strmap *map, const char *key, size_t keylen)
{
	struct strmap_entry **at = strmap_find(map, key, keylen, strmap_hash(key, keylen));

	return *at != NULL ? (*at)->value : NULL;
}

/* Double the buckets, rehashing every entry. */
static void
strmap_grow(struct strmap *map)
{
	size_t n = map->nbuckets * 2;
	struct strmap_entry **buckets = xcalloc(n, sizeof *buckets);

	for (size_t i = 0; i < map->nbuckets; i++) {
		struct strmap_entry *e = map->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			e->next = buckets[e->hash & (n - 1)];
			buckets[e->hash & (n - 1)] = e;
		}
	}
	free(map->buckets);
	map->buckets = buckets;
	map->nbuckets = n;
}

void *
strmap_put(struct strmap *map, const char *key, size_t keylen, void *value)
{
	uint64_t hash = strmap_hash(key, keylen);
	struct strmap_entry **at = strmap_find(map, key, keylen, hash), *e;
	void *old;

	if (*at != NULL) {
		old = (*at)->value;
		(*at)->value = value;
		return old;
	}
	if (map->count >= map->nbuckets) {
		strmap_grow(map);
		at = strmap_find(map, key, keylen, hash);
	}
	e = xmalloc(sizeof *e + keylen + 1);
	e->next = NULL;
	e->hash = hash;
	e->value = value;
	e->keylen = keylen;
	memcpy(e->key, key, keylen);
	e->key[keylen] = '\0';
	*at = e;
	map->count++;
	return NULL;
}

void *
strmap_remove(struct strmap *map, const char *key, size_t keylen)
{
	struct strmap_entry **at = strmap_find(map, key, keylen, strmap_hash(key, keylen)), *e;
	void *value;

	if ((e = *at) == NULL)
		return NULL;
	*at = e->next;
	value = e->value;
	free(e);
	map->count--;
	return value;
}

size_t
strmap_count(const struct strmap *map)
{
	return map->count;
}

void
strmap_foreach(struct strmap *map, void (*fn)(const char *, size_t, void *, void *),
    void *arg)
{
	for (size_t i = 0; i < map->nbuckets; i++) {
		struct strmap_entry *e = map->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			fn(e->key, e->keylen, e->value, arg);
		}
	}
}
