/*
 * SipHash-c-d, following the paper's specification: the key XORed into the four
 * constants, each 8-byte little-endian word of the input compressed with c rounds,
 * the last word padded with the input's length in its top byte, then d rounds.
 */
#include "autoconf.h"

#include <sys/random.h>

#include <endian.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "siphash.h"

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

struct siphash_state {
	uint64_t v0, v1, v2, v3;
};

/* One SipRound. */
static inline void
siphash_round(struct siphash_state *s)
{
	s->v0 += s->v1;
	s->v1 = ROTL64(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = ROTL64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = ROTL64(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = ROTL64(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = ROTL64(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = ROTL64(s->v2, 32);
}

/* Compress one message word with c rounds. */
static inline void
siphash_compress(struct siphash_state *s, uint64_t m, int c)
{
	s->v3 ^= m;
	for (int i = 0; i < c; i++)
		siphash_round(s);
	s->v0 ^= m;
}

/* SipHash with c compression and d finalization rounds. */
static inline uint64_t
siphash(const struct siphash_key *key, const void *data, size_t len, int c, int d)
{
	const unsigned char *p = data;
	struct siphash_state s = {
		.v0 = 0x736f6d6570736575ULL ^ key->k0,
		.v1 = 0x646f72616e646f6dULL ^ key->k1,
		.v2 = 0x6c7967656e657261ULL ^ key->k0,
		.v3 = 0x7465646279746573ULL ^ key->k1,
	};
	uint64_t m, last = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, p + i, 8);
		siphash_compress(&s, le64toh(m), c);
	}
	for (size_t j = 0; i + j < len; j++)
		last |= (uint64_t)p[i + j] << (8 * j);
	siphash_compress(&s, last, c);
	s.v2 ^= 0xff;
	for (int k = 0; k < d; k++)
		siphash_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t
siphash13(const struct siphash_key *key, const void *data, size_t len)
{
	return siphash(key, data, len, 1, 3);
}

uint64_t
siphash24(const struct siphash_key *key, const void *data, size_t len)
{
	return siphash(key, data, len, 2, 4);
}

void
siphash_key_random(struct siphash_key *key)
{
	struct timespec ts;

	if (getrandom(key, sizeof *key, GRND_NONBLOCK) == (ssize_t)sizeof *key)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	key->k0 = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
	    (uint64_t)(uintptr_t)key;
	clock_gettime(CLOCK_REALTIME, &ts);
	key->k1 = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec;
}
