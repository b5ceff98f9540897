/* Tests for base64.c: RFC 4648 vectors, the url variant, strict decoding. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"

struct vector {
	const char *plain;
	const char *encoded;
};

/* RFC 4648 section 10. */
static const struct vector rfc4648_vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};
#define NVECTORS (sizeof rfc4648_vectors / sizeof rfc4648_vectors[0])

/* Decode with the standard variant, expecting success and exact bytes. */
static void
assert_std_decodes(const char *in, const void *expected, size_t expected_len)
{
	unsigned char *out;
	size_t outlen;

	assert_int_equal(base64_decode(in, strlen(in), &out, &outlen), 0);
	assert_int_equal(outlen, expected_len);
	assert_memory_equal(out, expected, expected_len);
	assert_int_equal(out[outlen], '\0');
	free(out);
}

/* Decode with the url variant, expecting success and exact bytes. */
static void
assert_url_decodes(const char *in, const void *expected, size_t expected_len)
{
	unsigned char *out;
	size_t outlen;

	assert_int_equal(base64url_decode(in, strlen(in), &out, &outlen), 0);
	assert_int_equal(outlen, expected_len);
	assert_memory_equal(out, expected, expected_len);
	assert_int_equal(out[outlen], '\0');
	free(out);
}

/* Expect the standard decoder to reject len bytes of in. */
static void
assert_std_rejects(const char *in, size_t len)
{
	unsigned char *out = (unsigned char *)"sentinel";
	size_t outlen = 99;

	assert_int_equal(base64_decode(in, len, &out, &outlen), -1);
	assert_null(out);
	assert_int_equal(outlen, 0);
}

/* Expect the url decoder to reject len bytes of in. */
static void
assert_url_rejects(const char *in, size_t len)
{
	unsigned char *out = (unsigned char *)"sentinel";
	size_t outlen = 99;

	assert_int_equal(base64url_decode(in, len, &out, &outlen), -1);
	assert_null(out);
	assert_int_equal(outlen, 0);
}

static void
test_base64_encode_rfc4648_vectors(void **state)
{
	size_t i;
	char *s;

	for (i = 0; i < NVECTORS; i++) {
		s = base64_encode(rfc4648_vectors[i].plain, strlen(rfc4648_vectors[i].plain));
		assert_string_equal(s, rfc4648_vectors[i].encoded);
		free(s);
	}
}

static void
test_base64_decode_rfc4648_vectors(void **state)
{
	size_t i;

	for (i = 0; i < NVECTORS; i++)
		assert_std_decodes(rfc4648_vectors[i].encoded, rfc4648_vectors[i].plain,
		    strlen(rfc4648_vectors[i].plain));
}

static void
test_base64url_encode_rfc4648_vectors_without_padding(void **state)
{
	static const char *const expected[NVECTORS] = {
		"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy",
	};
	size_t i;
	char *s;

	for (i = 0; i < NVECTORS; i++) {
		s = base64url_encode(rfc4648_vectors[i].plain, strlen(rfc4648_vectors[i].plain));
		assert_string_equal(s, expected[i]);
		free(s);
	}
}

static void
test_base64url_decode_accepts_padded_and_unpadded(void **state)
{
	assert_url_decodes("Zg", "f", 1);
	assert_url_decodes("Zg==", "f", 1);
	assert_url_decodes("Zm8", "fo", 2);
	assert_url_decodes("Zm8=", "fo", 2);
	assert_url_decodes("Zm9vYmFy", "foobar", 6);
	assert_url_decodes("", "", 0);
}

static void
test_base64_variants_use_their_own_alphabet_for_62_and_63(void **state)
{
	static const unsigned char bytes[] = { 0xfb, 0xff, 0xbf, 0xfe };
	char *s;

	s = base64_encode(bytes, sizeof bytes);
	assert_string_equal(s, "+/+//g==");
	free(s);
	s = base64url_encode(bytes, sizeof bytes);
	assert_string_equal(s, "-_-__g");
	free(s);

	assert_std_decodes("+/+//g==", bytes, sizeof bytes);
	assert_url_decodes("-_-__g", bytes, sizeof bytes);
	assert_std_rejects("-_-__g==", 8);
	assert_url_rejects("+/+//g", 6);
	assert_url_rejects("+/+//g==", 8);
}

static void
test_base64_round_trips_every_byte_value_at_every_length(void **state)
{
	unsigned char bytes[256], *out;
	size_t len, outlen;
	char *s;

	for (len = 0; len < sizeof bytes; len++)
		bytes[len] = (unsigned char)(255 - len);
	for (len = 0; len <= sizeof bytes; len++) {
		s = base64_encode(bytes, len);
		assert_int_equal(strlen(s), (len + 2) / 3 * 4);
		assert_int_equal(base64_decode(s, strlen(s), &out, &outlen), 0);
		assert_int_equal(outlen, len);
		assert_memory_equal(out, bytes, len);
		free(out);
		free(s);

		s = base64url_encode(bytes, len);
		assert_int_equal(strlen(s), (len * 4 + 2) / 3);
		assert_null(strchr(s, '='));
		assert_int_equal(base64url_decode(s, strlen(s), &out, &outlen), 0);
		assert_int_equal(outlen, len);
		assert_memory_equal(out, bytes, len);
		free(out);
		free(s);
	}
}

static void
test_base64_decode_uses_only_the_given_length(void **state)
{
	unsigned char *out;
	size_t outlen;

	/* "Zm9vYmFy" cut to its first 4 characters, and garbage after the length. */
	assert_int_equal(base64_decode("Zm9vYmFy", 4, &out, &outlen), 0);
	assert_int_equal(outlen, 3);
	assert_memory_equal(out, "foo", 3);
	free(out);
	assert_int_equal(base64url_decode("Zm9v!!!", 4, &out, &outlen), 0);
	assert_int_equal(outlen, 3);
	free(out);
}

static void
test_base64_decode_rejects_missing_or_partial_padding(void **state)
{
	assert_std_rejects("Zg", 2);
	assert_std_rejects("Zg=", 3);
	assert_std_rejects("Zm8", 3);
	assert_std_rejects("Zm9vYg", 6);
	assert_url_rejects("Zg=", 3);
	assert_url_rejects("Zm9vYg=", 7);
}

static void
test_base64_decode_rejects_misplaced_or_excess_padding(void **state)
{
	assert_std_rejects("Zg===", 5);
	assert_std_rejects("Z===", 4);
	assert_std_rejects("====", 4);
	assert_std_rejects("=Zg=", 4);
	assert_std_rejects("Zg==Zg==", 8);
	assert_std_rejects("Zm=v", 4);
	assert_url_rejects("Z===", 4);
	assert_url_rejects("Zg==Zg", 6);
	assert_url_rejects("Zm8==", 5);
}

static void
test_base64_decode_rejects_impossible_lengths(void **state)
{
	assert_std_rejects("Z", 1);
	assert_std_rejects("Zm9vY", 5);
	assert_url_rejects("Z", 1);
	assert_url_rejects("Zm9vY", 5);
}

static void
test_base64_decode_rejects_characters_outside_the_alphabet(void **state)
{
	assert_std_rejects("Zm9v\n", 5);
	assert_std_rejects("Zm9v\nYmFy", 9);
	assert_std_rejects("Zm 9", 4);
	assert_std_rejects("Zm9*", 4);
	assert_std_rejects("Zm\0v", 4);
	assert_std_rejects("Zm9\xc3", 4);
	assert_url_rejects("Zm9v ", 5);
	assert_url_rejects("Zm.v", 4);
	assert_url_rejects("Zm\0v", 4);
}

static void
test_base64_decode_rejects_nonzero_unused_bits(void **state)
{
	/* "Zg" is the canonical "f"; "Zh" and "Zm9=" set bits that carry no byte. */
	assert_std_rejects("Zh==", 4);
	assert_std_rejects("Zm9=", 4);
	assert_url_rejects("Zh", 2);
	assert_url_rejects("Zm9", 3);
	assert_url_decodes("Zm8", "fo", 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_encode_rfc4648_vectors),
		cmocka_unit_test(test_base64_decode_rfc4648_vectors),
		cmocka_unit_test(test_base64url_encode_rfc4648_vectors_without_padding),
		cmocka_unit_test(test_base64url_decode_accepts_padded_and_unpadded),
		cmocka_unit_test(test_base64_variants_use_their_own_alphabet_for_62_and_63),
		cmocka_unit_test(test_base64_round_trips_every_byte_value_at_every_length),
		cmocka_unit_test(test_base64_decode_uses_only_the_given_length),
		cmocka_unit_test(test_base64_decode_rejects_missing_or_partial_padding),
		cmocka_unit_test(test_base64_decode_rejects_misplaced_or_excess_padding),
		cmocka_unit_test(test_base64_decode_rejects_impossible_lengths),
		cmocka_unit_test(test_base64_decode_rejects_characters_outside_the_alphabet),
		cmocka_unit_test(test_base64_decode_rejects_nonzero_unused_bits),
	};

	return cmocka_run_group_tests_name("base64", tests, NULL, NULL);
}
