/*
 * Tests for siphash.c: the reference vectors, and keys that change every hash; and
 * for hash.h, the storage hash that must not change.
 */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"
#include "siphash.h"

/*
 * SipHash-2-4 of the messages 00, 00 01, ... 00 01 .. 3e (lengths 0 to 63) under the
 * key 00 01 .. 0f: vectors.h of the reference implementation (github.com/veorq/SipHash),
 * each 8-byte output read as a little-endian integer. Length 15 is the paper's worked
 * example in its Appendix A.
 */
static const uint64_t siphash24_vectors[64] = {
	0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL,
	0x85676696d7fb7e2dULL, 0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL,
	0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL, 0x93f5f5799a932462ULL,
	0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
	0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL,
	0xa129ca6149be45e5ULL, 0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL,
	0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL, 0xbed65cf21aa2ee98ULL,
	0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
	0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL,
	0x2f2e6163076bcfadULL, 0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL,
	0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL, 0x7127512f72f27cceULL,
	0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
	0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL,
	0x9abfd8766a33735cULL, 0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL,
	0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL, 0xf935451de4f21df2ULL,
	0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
	0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL,
	0xa192d576b245165aULL, 0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL,
	0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL, 0xb78dbfaf3a8d83bdULL,
	0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
	0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL,
	0x958a324ceb064572ULL,
};

/*
 * SipHash-1-3 of the same messages under the all-zero key, from the reference
 * implementation built with cROUNDS 1 and dROUNDS 3 (as OCaml's test suite lists
 * them): lengths 0 to 15, then every word boundary up to 63.
 */
static const struct {
	size_t len;
	uint64_t hash;
} siphash13_vectors[] = {
	{ 0, 0xd1fba762150c532cULL }, { 1, 0x68a914128e01e473ULL },
	{ 2, 0x010bac45c41e3669ULL }, { 3, 0x4d4c9a4a8ef6e0adULL },
	{ 4, 0x7cc43f98813e4dbdULL }, { 5, 0x5abe2169dff36275ULL },
	{ 6, 0xe3c25f87624f1cdbULL }, { 7, 0x2f098ab0c751325aULL },
	{ 8, 0xead411e67ebe2eeaULL }, { 9, 0x75927f9d95124362ULL },
	{ 10, 0xaf9f77a65ab51a1dULL }, { 11, 0xfe64ce8b6617fcffULL },
	{ 12, 0xa6baf4fb0f9fe1c2ULL }, { 13, 0xa0cf3211850f8e0dULL },
	{ 14, 0x7f86049379fbfe67ULL }, { 15, 0xf30eb725bb91c9eaULL },
	{ 16, 0x8972188433a5c5b7ULL }, { 23, 0x37332b1389daa4ffULL },
	{ 24, 0x31185a47af932f3aULL }, { 31, 0x169739443111d49bULL },
	{ 32, 0x31ef8061c910629bULL }, { 40, 0x95bc321ab41d8206ULL },
	{ 48, 0xfe1f2445ba50237fULL }, { 56, 0xa4f0cf4ba4adc016ULL },
	{ 63, 0x385d3e39e5f37359ULL },
};

/* The reference messages: byte i is i. */
static void
reference_message(unsigned char message[64])
{
	for (int i = 0; i < 64; i++)
		message[i] = (unsigned char)i;
}

static void
test_siphash24_matches_the_reference_vectors(void **state)
{
	/* The key bytes 00 01 .. 0f, read as two little-endian words. */
	struct siphash_key key = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
	unsigned char message[64];

	(void)state;
	reference_message(message);
	for (size_t len = 0; len < 64; len++) {
		if (siphash24(&key, message, len) != siphash24_vectors[len])
			fail_msg("SipHash-2-4 of %zu bytes: %016llx, expected %016llx", len,
			    (unsigned long long)siphash24(&key, message, len),
			    (unsigned long long)siphash24_vectors[len]);
	}
	/* The paper's example: 15 bytes, a129ca6149be45e5. */
	assert_true(siphash24(&key, message, 15) == 0xa129ca6149be45e5ULL);
}

static void
test_siphash13_matches_the_reference_vectors(void **state)
{
	struct siphash_key key = { 0, 0 };
	unsigned char message[64];
	size_t n = sizeof siphash13_vectors / sizeof siphash13_vectors[0];

	(void)state;
	reference_message(message);
	for (size_t i = 0; i < n; i++) {
		uint64_t h = siphash13(&key, message, siphash13_vectors[i].len);

		if (h != siphash13_vectors[i].hash)
			fail_msg("SipHash-1-3 of %zu bytes: %016llx, expected %016llx",
			    siphash13_vectors[i].len, (unsigned long long)h,
			    (unsigned long long)siphash13_vectors[i].hash);
	}
}

/* Unaligned input hashes as the same bytes aligned. */
static void
test_siphash_reads_unaligned_input(void **state)
{
	struct siphash_key key = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
	unsigned char buf[72];

	(void)state;
	for (int i = 0; i < 64; i++)
		buf[3 + i] = (unsigned char)i;
	assert_true(siphash24(&key, buf + 3, 63) == siphash24_vectors[63]);
	assert_true(siphash24(&key, buf + 3, 17) == siphash24_vectors[17]);
}

/* Random keys differ, and a different key gives a different hash of the same id. */
static void
test_siphash_key_random_gives_distinct_keys(void **state)
{
	struct siphash_key a, b;

	(void)state;
	siphash_key_random(&a);
	siphash_key_random(&b);
	assert_false(a.k0 == b.k0 && a.k1 == b.k1);
	assert_true(siphash13(&a, "room-1", 6) != siphash13(&b, "room-1", 6));
}

/* The notified table holds hash64(0, "room\0message"): these values are on disk. */
static void
test_hash64_storage_values_never_change(void **state)
{
	(void)state;
	assert_true(hash64(0, "", 0) == 0xefd01f60ba992926ULL);
	assert_true(hash64(0, "room-1\0msg-1", 12) == 0x2d9e66e36f639c79ULL);
	assert_true(hash64(0, "dm-42", 5) == 0xdd165328270269acULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash24_matches_the_reference_vectors),
		cmocka_unit_test(test_siphash13_matches_the_reference_vectors),
		cmocka_unit_test(test_siphash_reads_unaligned_input),
		cmocka_unit_test(test_siphash_key_random_gives_distinct_keys),
		cmocka_unit_test(test_hash64_storage_values_never_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
