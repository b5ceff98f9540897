/*
 * A 64-bit hash of bytes: FNV-1a from a seed, then MurmurHash3's finalizer, which
 * spreads the low bits (short ids that differ in a digit or two hash apart). Not
 * cryptographic. The store keeps hashes made with seed 0: the function must not
 * change.
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
