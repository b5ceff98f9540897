/*
 * String-keyed hash map: open addressing with linear probing over a table of
 * (hash, entry) slots, hashed with SipHash-1-3 under a random key per map.
 *
 * The router looks up a few maps per message, some with a million keys; each lookup
 * that walks to a separately allocated node is a cache miss. Here a probe reads the
 * slot table, which holds each key's full hash, and only a slot whose hash matches
 * leads to the entry (its key copy and value): a missing key costs one miss, and
 * neighbouring probes share a cache line.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"
#include "strmap.h"
#include "xmalloc.h"

#define STRMAP_MIN_SLOTS 16

struct strmap_entry {
	void *value;
	size_t keylen;
	char key[];			/* keylen bytes and a NUL */
};

struct strmap_slot {
	uint64_t hash;
	struct strmap_entry *entry;	/* NULL: empty; &strmap_deleted: removed */
};

struct strmap {
	struct strmap_slot *slots;
	size_t nslots;			/* a power of two */
	size_t count;			/* entries */
	size_t deleted;			/* slots marked removed, which probes pass over */
	struct siphash_key key;
};

/* Marks a slot whose entry was removed: a probe goes on past it. */
static struct strmap_entry strmap_deleted;

/*
 * A key's hash under the map's own random key: ids chosen by clients cannot pile up
 * on one slot. Each map has its own key so that copying one map into another in
 * slot order does not fill a run of neighbouring slots (linear probing's weak spot).
 */
static uint64_t
strmap_hash(const struct strmap *map, const char *key, size_t len)
{
	return siphash13(&map->key, key, len);
}

struct strmap *
strmap_new(void)
{
	struct strmap *map = xcalloc(1, sizeof *map);

	siphash_key_random(&map->key);
	map->nslots = STRMAP_MIN_SLOTS;
	map->slots = xcalloc(map->nslots, sizeof *map->slots);
	return map;
}

/* Does a slot hold an entry (neither empty nor removed)? */
static int
slot_used(const struct strmap_slot *slot)
{
	return slot->entry != NULL && slot->entry != &strmap_deleted;
}

void
strmap_free(struct strmap *map)
{
	if (map == NULL)
		return;
	for (size_t i = 0; i < map->nslots; i++) {
		if (slot_used(&map->slots[i]))
			free(map->slots[i].entry);
	}
	free(map->slots);
	free(map);
}

/* The slot holding key, or NULL. */
static struct strmap_slot *
strmap_find(const struct strmap *map, const char *key, size_t keylen, uint64_t hash)
{
	size_t mask = map->nslots - 1;

	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct strmap_slot *slot = &map->slots[i];

		if (slot->entry == NULL)
			return NULL;
		if (slot->hash == hash && slot->entry != &strmap_deleted &&
		    slot->entry->keylen == keylen && memcmp(slot->entry->key, key, keylen) == 0)
			return slot;
	}
}

void *
strmap_get(const struct strmap *map, const char *key, size_t keylen)
{
	struct strmap_slot *slot = strmap_find(map, key, keylen,
	    strmap_hash(map, key, keylen));

	return slot != NULL ? slot->entry->value : NULL;
}

/* Put an entry in the first free slot of its probe sequence (the key is not there). */
static void
strmap_place(struct strmap *map, uint64_t hash, struct strmap_entry *entry)
{
	size_t mask = map->nslots - 1, i = hash & mask;

	while (slot_used(&map->slots[i]))
		i = (i + 1) & mask;
	if (map->slots[i].entry == &strmap_deleted)
		map->deleted--;
	map->slots[i].hash = hash;
	map->slots[i].entry = entry;
}

/* Rebuild the table with nslots slots, dropping the removed marks. */
static void
strmap_resize(struct strmap *map, size_t nslots)
{
	struct strmap_slot *old = map->slots;
	size_t nold = map->nslots;

	map->slots = xcalloc(nslots, sizeof *map->slots);
	map->nslots = nslots;
	map->deleted = 0;
	for (size_t i = 0; i < nold; i++) {
		if (slot_used(&old[i]))
			strmap_place(map, old[i].hash, old[i].entry);
	}
	free(old);
}

void *
strmap_put(struct strmap *map, const char *key, size_t keylen, void *value)
{
	uint64_t hash = strmap_hash(map, key, keylen);
	struct strmap_slot *slot = strmap_find(map, key, keylen, hash);
	struct strmap_entry *e;
	void *old;

	if (slot != NULL) {
		old = slot->entry->value;
		slot->entry->value = value;
		return old;
	}
	/*
	 * At most three quarters of the slots in use, counting removed ones. A map grows
	 * at half full; one whose keys come and go (more removed than kept: messages in
	 * flight) already at a quarter, so that removed marks pile up for longer between
	 * rebuilds and probes stay short meanwhile.
	 */
	if ((map->count + map->deleted + 1) * 4 > map->nslots * 3) {
		size_t nslots = map->nslots;

		if ((map->count + 1) * 2 > nslots ||
		    (map->deleted > map->count && (map->count + 1) * 4 > nslots))
			nslots *= 2;
		strmap_resize(map, nslots);
	}
	e = xmalloc(sizeof *e + keylen + 1);
	e->value = value;
	e->keylen = keylen;
	memcpy(e->key, key, keylen);
	e->key[keylen] = '\0';
	strmap_place(map, hash, e);
	map->count++;
	return NULL;
}

void *
strmap_remove(struct strmap *map, const char *key, size_t keylen)
{
	struct strmap_slot *slot = strmap_find(map, key, keylen,
	    strmap_hash(map, key, keylen));
	void *value;

	if (slot == NULL)
		return NULL;
	value = slot->entry->value;
	free(slot->entry);
	slot->entry = &strmap_deleted;
	map->count--;
	map->deleted++;
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
	/* Removing an entry only marks its slot: nothing moves under the walk. */
	for (size_t i = 0; i < map->nslots; i++) {
		struct strmap_slot *slot = &map->slots[i];

		if (slot_used(slot))
			fn(slot->entry->key, slot->entry->keylen, slot->entry->value, arg);
	}
}
