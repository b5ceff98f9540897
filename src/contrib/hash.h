/*
 * A storage hash, not a map hash: the 64-bit hash sqlite_schema.c keeps in the
 * notified table (seed 0), so it must give the same value in every run and must never
 * change. FNV-1a from a seed, then MurmurHash3's finalizer, which spreads the low bits
 * (short ids that differ in a digit or two hash apart). Not keyed and not
 * cryptographic: anyone can find ids that collide, so hash tables whose keys come
 * from clients use SipHash under a random key instead (siphash.h, strmap.h).
 *
 * Called by the SQLite backend (sqlite_schema.c) on the store threads; a pure
 * function, so any thread.
 */
#ifndef PUSHRELAY_HASH_H
#define PUSHRELAY_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t
hash64(uint64_t seed, const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

#endif
