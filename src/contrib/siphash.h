/*
 * SipHash (Aumasson and Bernstein, 2012): a keyed 64-bit hash of bytes, for hash
 * tables whose keys come from clients. Without the key, nobody can choose ids that
 * fall into one bucket. strmap and presence hash with SipHash-1-3, as Python and
 * Rust do for their tables; SipHash-2-4 is the paper's. Any thread may call these.
 *
 * Not a storage hash: keys are random, so values differ from one run to the next.
 * What is kept on disk uses hash64() (hash.h).
 */
#ifndef PUSHRELAY_SIPHASH_H
#define PUSHRELAY_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* The 128-bit key: its first 8 bytes little-endian in k0, the next 8 in k1. */
struct siphash_key {
	uint64_t k0;
	uint64_t k1;
};

/*
 * A new random key, from getrandom(); if the kernel has none to give yet (early
 * boot), from the clocks and the key's address, which is weaker but never blocks.
 */
void siphash_key_random(struct siphash_key *key);

/* SipHash-1-3 of data[0..len): one round per 8 bytes, three to finish. */
uint64_t siphash13(const struct siphash_key *key, const void *data, size_t len);

/* SipHash-2-4 of data[0..len), the paper's reference variant. */
uint64_t siphash24(const struct siphash_key *key, const void *data, size_t len);

#endif
