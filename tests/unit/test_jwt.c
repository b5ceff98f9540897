/* Tests for jwt.c: ES256 and RS256 signing, verification and PEM key loading. */
#include "autoconf.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base64.h"
#include "jwt.h"
#include "xmalloc.h"

#define KID "ABC123DEFG"
#define TEAM "DEF123GHIJ"
#define IAT 1700000000
#define SA_EMAIL "relay@example-project.iam.gserviceaccount.com"
#define SA_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define SA_AUD "https://oauth2.googleapis.com/token"

/* Keys generated once for the group: RSA key generation is slow under valgrind. */
struct fixture {
	char dir[64];
	EVP_PKEY *ec;			/* P-256, signs */
	EVP_PKEY *ec_other;		/* P-256, a different key */
	EVP_PKEY *ec384;
	EVP_PKEY *rsa;			/* 2048 bits */
	EVP_PKEY *rsa1024;
	struct jwt_key *es_private;
	struct jwt_key *es_public;
	struct jwt_key *es_other_public;
	struct jwt_key *rs_private;
	struct jwt_key *rs_public;
};

static struct fixture fx;

/* Serialize a key as PEM: PKCS#8 or traditional private key, or SubjectPublicKeyInfo. */
enum pem_form {
	PEM_PKCS8,
	PEM_TRADITIONAL,
	PEM_PUBLIC,
};

static char *
pem_of(EVP_PKEY *pkey, enum pem_form form)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *copy;
	long len;
	int ok = 0;

	assert_non_null(bio);
	switch (form) {
	case PEM_PKCS8:
		ok = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
		break;
	case PEM_TRADITIONAL:
		ok = PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL);
		break;
	case PEM_PUBLIC:
		ok = PEM_write_bio_PUBKEY(bio, pkey);
		break;
	}
	assert_int_equal(ok, 1);
	len = BIO_get_mem_data(bio, &data);
	copy = xstrndup(data, (size_t)len);
	BIO_free(bio);
	return copy;
}

/* Write text to a new file in the test directory; returns its path. */
static char *
file_write(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", fx.dir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static struct jwt_key *
load_private(EVP_PKEY *pkey, enum jwt_alg alg)
{
	struct jwt_key *key;
	char err[256], *pem = pem_of(pkey, PEM_PKCS8);

	assert_int_equal(jwt_key_load_pem(pem, strlen(pem), "test", alg, &key, err, sizeof err),
	    0);
	free(pem);
	return key;
}

static struct jwt_key *
load_public(EVP_PKEY *pkey, enum jwt_alg alg)
{
	struct jwt_key *key;
	char err[256], *pem = pem_of(pkey, PEM_PUBLIC);

	assert_int_equal(jwt_key_load_public_pem(pem, strlen(pem), "test", alg, &key, err,
	    sizeof err), 0);
	free(pem);
	return key;
}

static int
group_setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(fx.dir, sizeof fx.dir, "%s/test_jwt.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	fx.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	fx.ec_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	fx.ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	fx.rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	if (fx.ec == NULL || fx.ec_other == NULL || fx.ec384 == NULL || fx.rsa == NULL ||
	    fx.rsa1024 == NULL)
		return -1;
	fx.es_private = load_private(fx.ec, JWT_ALG_ES256);
	fx.es_public = load_public(fx.ec, JWT_ALG_ES256);
	fx.es_other_public = load_public(fx.ec_other, JWT_ALG_ES256);
	fx.rs_private = load_private(fx.rsa, JWT_ALG_RS256);
	fx.rs_public = load_public(fx.rsa, JWT_ALG_RS256);
	return 0;
}

static int
group_teardown(void **state)
{
	struct dirent *de;
	char *path;
	DIR *dir;

	jwt_key_free(fx.es_private);
	jwt_key_free(fx.es_public);
	jwt_key_free(fx.es_other_public);
	jwt_key_free(fx.rs_private);
	jwt_key_free(fx.rs_public);
	EVP_PKEY_free(fx.ec);
	EVP_PKEY_free(fx.ec_other);
	EVP_PKEY_free(fx.ec384);
	EVP_PKEY_free(fx.rsa);
	EVP_PKEY_free(fx.rsa1024);
	if ((dir = opendir(fx.dir)) != NULL) {
		while ((de = readdir(dir)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			path = xasprintf("%s/%s", fx.dir, de->d_name);
			unlink(path);
			free(path);
		}
		closedir(dir);
	}
	return rmdir(fx.dir);
}

/* Split a token at its dots into exactly three new strings. */
static void
token_split(const char *token, char *parts[3])
{
	const char *dot1 = strchr(token, '.'), *dot2;

	assert_non_null(dot1);
	dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);
	assert_null(strchr(dot2 + 1, '.'));
	parts[0] = xstrndup(token, (size_t)(dot1 - token));
	parts[1] = xstrndup(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	parts[2] = xstrdup(dot2 + 1);
}

static void
parts_free(char *parts[3])
{
	free(parts[0]);
	free(parts[1]);
	free(parts[2]);
}

/* Decode a base64url part, asserting that it decodes. */
static unsigned char *
part_decode(const char *part, size_t *len)
{
	unsigned char *out;

	assert_int_equal(base64url_decode(part, strlen(part), &out, len), 0);
	return out;
}

/* Decode a base64url part and compare it with exact text. */
static void
assert_part_text(const char *part, const char *expected)
{
	unsigned char *text;
	size_t len;

	text = part_decode(part, &len);
	assert_string_equal((char *)text, expected);
	assert_int_equal(len, strlen(expected));
	free(text);
}

/* A token from three parts given as JSON text (encoded here) and a raw signature. */
static char *
token_assemble(const char *header_json, const char *claims_json, const unsigned char *sig,
    size_t siglen)
{
	char *h = base64url_encode(header_json, strlen(header_json));
	char *c = base64url_encode(claims_json, strlen(claims_json));
	char *s = base64url_encode(sig, siglen);
	char *token = xasprintf("%s.%s.%s", h, c, s);

	free(h);
	free(c);
	free(s);
	return token;
}

/* Expect jwt_verify to fail with error and leave both outputs NULL. */
static void
assert_verify_fails(const char *token, const struct jwt_key *key, enum jwt_alg alg,
    int error)
{
	json_t *sentinel = json_object(), *header = sentinel, *claims = sentinel;

	assert_int_equal(jwt_verify(token, key, alg, &header, &claims), error);
	assert_null(header);
	assert_null(claims);
	json_decref(sentinel);
}

/*
 * DER-encode a big-endian unsigned integer as an ASN.1 INTEGER, written here
 * independently of jwt.c: minimal length, a zero byte before a set high bit.
 */
static size_t
der_integer(const unsigned char *be, size_t len, unsigned char *out)
{
	size_t pad;

	while (len > 1 && be[0] == 0) {
		be++;
		len--;
	}
	pad = (be[0] & 0x80) != 0;
	out[0] = 0x02;
	out[1] = (unsigned char)(len + pad);
	if (pad)
		out[2] = 0;
	memcpy(out + 2 + pad, be, len);
	return 2 + pad + len;
}

/* SEQUENCE { INTEGER r, INTEGER s } from raw r||s; at most 72 bytes, short-form lengths. */
static size_t
der_from_raw(const unsigned char raw[64], unsigned char der[72])
{
	size_t n;

	n = der_integer(raw, 32, der + 2);
	n += der_integer(raw + 32, 32, der + 2 + n);
	der[0] = 0x30;
	der[1] = (unsigned char)n;
	return n + 2;
}

/* EVP_DigestVerify with SHA-256 straight from OpenSSL: 1 if the signature holds. */
static int
openssl_verify(EVP_PKEY *pkey, const char *data, size_t len, const unsigned char *sig,
    size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc;

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
	rc = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)data, len);
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

static char *
sign_es256(void)
{
	char *token;

	assert_int_equal(jwt_sign_es256(fx.es_private, KID, TEAM, IAT, &token), 0);
	assert_non_null(token);
	return token;
}

static void
test_jwt_es256_token_has_exact_header_and_claims(void **state)
{
	char *token = sign_es256(), *parts[3];
	unsigned char *sig;
	size_t siglen;

	assert_null(strchr(token, '='));
	token_split(token, parts);
	assert_part_text(parts[0], "{\"alg\":\"ES256\",\"kid\":\"" KID "\"}");
	assert_part_text(parts[1], "{\"iss\":\"" TEAM "\",\"iat\":1700000000}");
	sig = part_decode(parts[2], &siglen);
	assert_int_equal(siglen, 64);
	assert_int_equal(strlen(parts[2]), 86);
	free(sig);
	parts_free(parts);
	free(token);
}

static void
test_jwt_es256_token_verifies_and_returns_header_and_claims(void **state)
{
	char *token = sign_es256();
	json_t *header, *claims;

	assert_int_equal(jwt_verify(token, fx.es_public, JWT_ALG_ES256, &header, &claims), 0);
	assert_string_equal(json_string_value(json_object_get(header, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(header, "kid")), KID);
	assert_int_equal(json_object_size(header), 2);
	assert_string_equal(json_string_value(json_object_get(claims, "iss")), TEAM);
	assert_int_equal(json_integer_value(json_object_get(claims, "iat")), IAT);
	assert_int_equal(json_object_size(claims), 2);
	json_decref(header);
	json_decref(claims);

	/* A private key verifies too, and the outputs are optional. */
	assert_int_equal(jwt_verify(token, fx.es_private, JWT_ALG_ES256, NULL, NULL), 0);
	free(token);
}

static void
test_jwt_es256_raw_signature_verifies_in_openssl_as_own_der(void **state)
{
	char *token = sign_es256(), *parts[3], *input;
	unsigned char *raw, der[72];
	size_t rawlen, derlen;

	token_split(token, parts);
	input = xasprintf("%s.%s", parts[0], parts[1]);
	raw = part_decode(parts[2], &rawlen);
	assert_int_equal(rawlen, 64);

	derlen = der_from_raw(raw, der);
	assert_int_equal(openssl_verify(fx.ec, input, strlen(input), der, derlen), 1);
	/* The raw form itself is not what OpenSSL verifies, and another key fails. */
	assert_int_not_equal(openssl_verify(fx.ec, input, strlen(input), raw, rawlen), 1);
	assert_int_not_equal(openssl_verify(fx.ec_other, input, strlen(input), der, derlen), 1);

	free(raw);
	free(input);
	parts_free(parts);
	free(token);
}

static void
test_jwt_es256_tokens_for_same_claims_differ_but_both_verify(void **state)
{
	char *a = sign_es256(), *b = sign_es256();

	/* ECDSA signatures are randomized: equal signing input, different signature. */
	assert_string_not_equal(a, b);
	assert_int_equal(jwt_verify(a, fx.es_public, JWT_ALG_ES256, NULL, NULL), 0);
	assert_int_equal(jwt_verify(b, fx.es_public, JWT_ALG_ES256, NULL, NULL), 0);
	free(a);
	free(b);
}

static void
test_jwt_verify_rejects_tampered_claims(void **state)
{
	char *token = sign_es256(), *parts[3], *claims, *forged;

	token_split(token, parts);
	claims = base64url_encode("{\"iss\":\"" TEAM "\",\"iat\":1700000001}",
	    strlen("{\"iss\":\"" TEAM "\",\"iat\":1700000001}"));
	forged = xasprintf("%s.%s.%s", parts[0], claims, parts[2]);
	assert_verify_fails(forged, fx.es_public, JWT_ALG_ES256, JWT_ESIGNATURE);

	/* The untouched token still verifies: the failure is the tampering. */
	assert_int_equal(jwt_verify(token, fx.es_public, JWT_ALG_ES256, NULL, NULL), 0);
	free(forged);
	free(claims);
	parts_free(parts);
	free(token);
}

static void
test_jwt_verify_rejects_wrong_key(void **state)
{
	char *token = sign_es256();

	assert_verify_fails(token, fx.es_other_public, JWT_ALG_ES256, JWT_ESIGNATURE);
	free(token);
}

static void
test_jwt_verify_rejects_der_signature_with_its_own_error(void **state)
{
	char *token = sign_es256(), *parts[3], *input, *der_token, *sig_part;
	unsigned char der[80];
	size_t derlen = sizeof der;
	EVP_MD_CTX *ctx;

	/* Sign the same input the way a buggy client would: OpenSSL's DER as is. */
	token_split(token, parts);
	input = xasprintf("%s.%s", parts[0], parts[1]);
	ctx = EVP_MD_CTX_new();
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, fx.ec), 1);
	assert_int_equal(EVP_DigestSign(ctx, der, &derlen, (unsigned char *)input,
	    strlen(input)), 1);
	EVP_MD_CTX_free(ctx);
	assert_int_equal(der[0], 0x30);
	assert_int_equal(openssl_verify(fx.ec, input, strlen(input), der, derlen), 1);

	sig_part = base64url_encode(der, derlen);
	der_token = xasprintf("%s.%s", input, sig_part);
	assert_verify_fails(der_token, fx.es_public, JWT_ALG_ES256, JWT_EDERSIG);

	free(sig_part);
	free(der_token);
	free(input);
	parts_free(parts);
	free(token);
}

static void
test_jwt_verify_rejects_es256_signature_of_wrong_size(void **state)
{
	static const unsigned char zeros[64];
	char *token;

	token = token_assemble("{\"alg\":\"ES256\"}", "{}", zeros, 63);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_ESIGNATURE);
	free(token);
	token = token_assemble("{\"alg\":\"ES256\"}", "{}", zeros, 64);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_ESIGNATURE);
	free(token);
	token = token_assemble("{\"alg\":\"ES256\"}", "{}", zeros, 0);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_ESIGNATURE);
	free(token);
}

static void
test_jwt_verify_rejects_alg_mismatch(void **state)
{
	static const unsigned char sig[64] = { 1 };
	char *es = sign_es256(), *token;

	/* An ES256 token offered to an RS256 verifier. */
	assert_verify_fails(es, fx.rs_public, JWT_ALG_RS256, JWT_EALG);
	/* A key loaded for another algorithm than the one expected. */
	assert_verify_fails(es, fx.rs_public, JWT_ALG_ES256, JWT_EKEYTYPE);
	free(es);

	token = token_assemble("{\"alg\":\"none\"}", "{\"iss\":\"x\"}", sig, 0);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EALG);
	free(token);
	token = token_assemble("{\"alg\":\"HS256\"}", "{\"iss\":\"x\"}", sig, 32);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EALG);
	free(token);
	token = token_assemble("{\"alg\":\"es256\"}", "{\"iss\":\"x\"}", sig, 64);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EALG);
	free(token);
	token = token_assemble("{\"kid\":\"" KID "\"}", "{\"iss\":\"x\"}", sig, 64);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EALG);
	free(token);
	token = token_assemble("{\"alg\":256}", "{\"iss\":\"x\"}", sig, 64);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EALG);
	free(token);
}

static void
test_jwt_verify_rejects_malformed_tokens(void **state)
{
	static const unsigned char sig[64] = { 1 };
	char *good = sign_es256(), *parts[3], *token;
	size_t i;
	const char *const bad_structure[] = {
		"", ".", "..", "abc", "a.b", "...",
	};
	const char *const bad_json[][2] = {
		{ "[]", "{}" },				/* header not an object */
		{ "{\"alg\":\"ES256\"}", "\"x\"" },	/* claims not an object */
		{ "{\"alg\":\"ES256\"", "{}" },		/* truncated */
		{ "{\"alg\":\"ES256\"} x", "{}" },		/* trailing garbage */
		{ "{\"alg\":\"ES256\",\"alg\":\"ES256\"}", "{}" }, /* duplicate name */
		{ "{\"alg\":\"ES256\"}", "" },		/* empty claims */
	};

	for (i = 0; i < sizeof bad_structure / sizeof bad_structure[0]; i++)
		assert_verify_fails(bad_structure[i], fx.es_public, JWT_ALG_ES256,
		    JWT_EMALFORMED);
	for (i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
		token = token_assemble(bad_json[i][0], bad_json[i][1], sig, sizeof sig);
		assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EMALFORMED);
		free(token);
	}

	token_split(good, parts);
	/* Four parts. */
	token = xasprintf("%s.%s.%s.%s", parts[0], parts[1], parts[2], parts[2]);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EMALFORMED);
	free(token);
	/* Padding, even where the part would decode with it. */
	token = xasprintf("%s.%s.%s==", parts[0], parts[1], parts[2]);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EMALFORMED);
	free(token);
	/* The standard alphabet instead of base64url. */
	token = xasprintf("%s.%s.%s", parts[0], parts[1], parts[2]);
	token[strlen(token) - 1] = '+';
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EMALFORMED);
	free(token);
	/* Whitespace around a part. */
	token = xasprintf("%s .%s.%s", parts[0], parts[1], parts[2]);
	assert_verify_fails(token, fx.es_public, JWT_ALG_ES256, JWT_EMALFORMED);
	free(token);

	assert_verify_fails(NULL, fx.es_public, JWT_ALG_ES256, JWT_EINVAL);
	assert_verify_fails(good, NULL, JWT_ALG_ES256, JWT_EINVAL);
	parts_free(parts);
	free(good);
}

static void
test_jwt_rs256_round_trip_with_exact_header_and_claims(void **state)
{
	char *token, *again, *parts[3];
	unsigned char *sig;
	size_t siglen;
	json_t *header, *claims;

	assert_int_equal(jwt_sign_rs256(fx.rs_private, "0123456789abcdef", SA_EMAIL, SA_SCOPE,
	    SA_AUD, IAT, IAT + 3600, &token), 0);
	token_split(token, parts);
	assert_part_text(parts[0],
	    "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"0123456789abcdef\"}");
	assert_part_text(parts[1],
	    "{\"iss\":\"" SA_EMAIL "\",\"scope\":\"" SA_SCOPE "\",\"aud\":\"" SA_AUD "\","
	    "\"iat\":1700000000,\"exp\":1700003600}");
	sig = part_decode(parts[2], &siglen);
	assert_int_equal(siglen, 256);
	free(sig);
	parts_free(parts);

	assert_int_equal(jwt_verify(token, fx.rs_public, JWT_ALG_RS256, &header, &claims), 0);
	assert_string_equal(json_string_value(json_object_get(claims, "aud")), SA_AUD);
	assert_int_equal(json_integer_value(json_object_get(claims, "exp")), IAT + 3600);
	json_decref(header);
	json_decref(claims);

	/* Deterministic PKCS#1 v1.5: the same input gives the same token. */
	assert_int_equal(jwt_sign_rs256(fx.rs_private, "0123456789abcdef", SA_EMAIL, SA_SCOPE,
	    SA_AUD, IAT, IAT + 3600, &again), 0);
	assert_string_equal(again, token);
	free(again);
	free(token);
}

static void
test_jwt_rs256_without_kid_and_tampering_fails(void **state)
{
	char *token, *parts[3], *claims, *forged;

	assert_int_equal(jwt_sign_rs256(fx.rs_private, NULL, SA_EMAIL, SA_SCOPE, SA_AUD, IAT,
	    IAT + 3600, &token), 0);
	token_split(token, parts);
	assert_part_text(parts[0], "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	assert_int_equal(jwt_verify(token, fx.rs_public, JWT_ALG_RS256, NULL, NULL), 0);

	claims = base64url_encode("{\"iss\":\"evil\"}", strlen("{\"iss\":\"evil\"}"));
	forged = xasprintf("%s.%s.%s", parts[0], claims, parts[2]);
	assert_verify_fails(forged, fx.rs_public, JWT_ALG_RS256, JWT_ESIGNATURE);
	free(forged);
	free(claims);
	parts_free(parts);
	free(token);
}

static void
test_jwt_key_load_pkcs8_file_signs_verifiable_tokens(void **state)
{
	char err[256] = "", *pem = pem_of(fx.ec, PEM_PKCS8), *path, *token;
	struct jwt_key *key;

	/* The shape of an APNs AuthKey_KEYID.p8 file. */
	assert_int_equal(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28), 0);
	path = file_write("AuthKey_" KID ".p8", pem);
	assert_int_equal(jwt_key_load_pem_file(path, JWT_ALG_ES256, &key, err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_int_equal(jwt_key_alg(key), JWT_ALG_ES256);
	assert_int_equal(jwt_sign_es256(key, KID, TEAM, IAT, &token), 0);
	assert_int_equal(jwt_verify(token, fx.es_public, JWT_ALG_ES256, NULL, NULL), 0);
	free(token);
	jwt_key_free(key);
	unlink(path);
	free(path);
	free(pem);
}

static void
test_jwt_key_load_public_file_verifies(void **state)
{
	char err[256], *pem = pem_of(fx.rsa, PEM_PUBLIC), *path, *token;
	struct jwt_key *key;

	assert_int_equal(strncmp(pem, "-----BEGIN PUBLIC KEY-----\n", 27), 0);
	path = file_write("rsa.pub", pem);
	assert_int_equal(jwt_key_load_public_pem_file(path, JWT_ALG_RS256, &key, err,
	    sizeof err), 0);
	assert_int_equal(jwt_sign_rs256(fx.rs_private, NULL, SA_EMAIL, SA_SCOPE, SA_AUD, IAT,
	    IAT + 60, &token), 0);
	assert_int_equal(jwt_verify(token, key, JWT_ALG_RS256, NULL, NULL), 0);
	/* A public key cannot sign. */
	free(token);
	assert_int_equal(jwt_sign_rs256(key, NULL, SA_EMAIL, SA_SCOPE, SA_AUD, IAT, IAT + 60,
	    &token), JWT_EKEYTYPE);
	assert_null(token);
	jwt_key_free(key);
	unlink(path);
	free(path);
	free(pem);
}

static void
test_jwt_key_load_accepts_traditional_pem(void **state)
{
	char err[256], *ec = pem_of(fx.ec, PEM_TRADITIONAL), *rsa = pem_of(fx.rsa,
	    PEM_TRADITIONAL), *with_params, *token;
	struct jwt_key *key;

	assert_int_equal(strncmp(ec, "-----BEGIN EC PRIVATE KEY-----\n", 31), 0);
	assert_int_equal(strncmp(rsa, "-----BEGIN RSA PRIVATE KEY-----\n", 32), 0);

	/* As written by "openssl ecparam -genkey": a parameters block first. */
	with_params = xasprintf("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
	    "-----END EC PARAMETERS-----\n%s", ec);
	assert_int_equal(jwt_key_load_pem(with_params, strlen(with_params), "ec.pem",
	    JWT_ALG_ES256, &key, err, sizeof err), 0);
	assert_int_equal(jwt_sign_es256(key, KID, TEAM, IAT, &token), 0);
	assert_int_equal(jwt_verify(token, fx.es_public, JWT_ALG_ES256, NULL, NULL), 0);
	free(token);
	jwt_key_free(key);

	assert_int_equal(jwt_key_load_pem(rsa, strlen(rsa), "rsa.pem", JWT_ALG_RS256, &key,
	    err, sizeof err), 0);
	assert_int_equal(jwt_sign_rs256(key, NULL, SA_EMAIL, SA_SCOPE, SA_AUD, IAT, IAT + 60,
	    &token), 0);
	assert_int_equal(jwt_verify(token, fx.rs_public, JWT_ALG_RS256, NULL, NULL), 0);
	free(token);
	jwt_key_free(key);
	free(with_params);
	free(ec);
	free(rsa);
}

static void
test_jwt_key_load_rejects_rsa_key_for_es256(void **state)
{
	char err[256], *pem = pem_of(fx.rsa, PEM_PKCS8), *path, *expected;
	struct jwt_key *key = (struct jwt_key *)&fx;

	path = file_write("rsa.pem", pem);
	assert_int_equal(jwt_key_load_pem_file(path, JWT_ALG_ES256, &key, err, sizeof err),
	    JWT_EKEYTYPE);
	assert_null(key);
	expected = xasprintf("key %s is an RSA key, ES256 needs an EC P-256 key", path);
	assert_string_equal(err, expected);
	free(expected);
	unlink(path);
	free(path);
	free(pem);
}

static void
test_jwt_key_load_rejects_other_curves_for_es256(void **state)
{
	char err[256], *pem = pem_of(fx.ec384, PEM_PKCS8);
	struct jwt_key *key;

	assert_int_equal(jwt_key_load_pem(pem, strlen(pem), "p384.pem", JWT_ALG_ES256, &key,
	    err, sizeof err), JWT_EKEYTYPE);
	assert_null(key);
	assert_string_equal(err,
	    "key p384.pem is an EC key on curve secp384r1, ES256 needs an EC P-256 key");
	free(pem);
}

static void
test_jwt_key_load_rejects_ec_and_short_rsa_keys_for_rs256(void **state)
{
	char err[256], *ec = pem_of(fx.ec, PEM_PKCS8), *rsa = pem_of(fx.rsa1024, PEM_PKCS8);
	struct jwt_key *key;

	assert_int_equal(jwt_key_load_pem(ec, strlen(ec), "sa.json", JWT_ALG_RS256, &key, err,
	    sizeof err), JWT_EKEYTYPE);
	assert_null(key);
	assert_string_equal(err, "key sa.json is an EC key on curve prime256v1, "
	    "RS256 needs an RSA key of at least 2048 bits");
	assert_int_equal(jwt_key_load_pem(rsa, strlen(rsa), "sa.json", JWT_ALG_RS256, &key, err,
	    sizeof err), JWT_EKEYTYPE);
	assert_null(key);
	assert_string_equal(err, "key sa.json is a 1024-bit RSA key, "
	    "RS256 needs an RSA key of at least 2048 bits");
	free(ec);
	free(rsa);
}

static void
test_jwt_key_load_missing_file_is_io_error(void **state)
{
	char err[256], *path = xasprintf("%s/missing.p8", fx.dir), *expected;
	struct jwt_key *key;

	assert_int_equal(jwt_key_load_pem_file(path, JWT_ALG_ES256, &key, err, sizeof err),
	    JWT_EIO);
	assert_null(key);
	expected = xasprintf("cannot read key %s: No such file or directory", path);
	assert_string_equal(err, expected);
	free(expected);
	assert_int_equal(jwt_key_load_pem_file(fx.dir, JWT_ALG_ES256, &key, err, sizeof err),
	    JWT_EIO);
	free(path);
}

static void
test_jwt_key_load_rejects_garbage_and_keys_of_the_wrong_half(void **state)
{
	static const char garbage[] = "this is not a key\n";
	char err[256], *pub = pem_of(fx.ec, PEM_PUBLIC), *priv = pem_of(fx.ec, PEM_PKCS8);
	struct jwt_key *key;

	assert_int_equal(jwt_key_load_pem(garbage, strlen(garbage), "junk", JWT_ALG_ES256, &key,
	    err, sizeof err), JWT_EKEY);
	assert_null(key);
	assert_string_equal(err, "key junk: no PEM data found");

	assert_int_equal(jwt_key_load_pem(pub, strlen(pub), "pub.pem", JWT_ALG_ES256, &key, err,
	    sizeof err), JWT_EKEY);
	assert_null(key);
	assert_string_equal(err, "key pub.pem is a public key, a private key is needed");

	assert_int_equal(jwt_key_load_public_pem(priv, strlen(priv), "priv.pem", JWT_ALG_ES256,
	    &key, err, sizeof err), JWT_EKEY);
	assert_null(key);
	assert_string_equal(err, "key priv.pem is a private key, a public key is needed");

	/* A PEM cut short; the OpenSSL error queue is left empty for the next caller. */
	assert_int_equal(jwt_key_load_pem(priv, strlen(priv) / 2, "half.pem", JWT_ALG_ES256,
	    &key, err, sizeof err), JWT_EKEY);
	assert_null(key);
	assert_string_equal(err, "key half.pem: cannot parse the PEM private key (damaged, or "
	    "of a type OpenSSL does not know)");
	assert_int_equal(ERR_peek_error(), 0);

	assert_int_equal(jwt_key_load_pem(NULL, 0, NULL, JWT_ALG_ES256, &key, err, sizeof err),
	    JWT_EKEY);
	assert_string_equal(err, "key (in memory): no PEM data found");
	free(pub);
	free(priv);
}

static void
test_jwt_key_load_refuses_encrypted_key_without_prompting(void **state)
{
	char err[256], *pem;
	struct jwt_key *key;
	long len;
	BIO *bio;

	bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, fx.ec, EVP_aes_256_cbc(), NULL, 0,
	    NULL, (void *)"passphrase"), 1);
	len = BIO_get_mem_data(bio, &pem);
	assert_int_equal(jwt_key_load_pem(pem, (size_t)len, "enc.p8", JWT_ALG_ES256, &key, err,
	    sizeof err), JWT_EKEY);
	assert_null(key);
	assert_string_equal(err, "key enc.p8 is encrypted; pushrelay needs an unencrypted key");
	BIO_free(bio);
}

static void
test_jwt_sign_refuses_key_of_other_algorithm_or_public_key(void **state)
{
	char *token = (char *)"sentinel";

	assert_int_equal(jwt_sign_es256(fx.es_public, KID, TEAM, IAT, &token), JWT_EKEYTYPE);
	assert_null(token);
	assert_int_equal(jwt_sign_es256(fx.rs_private, KID, TEAM, IAT, &token), JWT_EKEYTYPE);
	assert_null(token);
	assert_int_equal(jwt_sign_rs256(fx.es_private, NULL, SA_EMAIL, SA_SCOPE, SA_AUD, IAT,
	    IAT + 60, &token), JWT_EKEYTYPE);
	assert_null(token);
}

static void
test_jwt_sign_rejects_missing_or_non_utf8_strings(void **state)
{
	char *token = (char *)"sentinel";

	assert_int_equal(jwt_sign_es256(fx.es_private, "\xff\xfe", TEAM, IAT, &token),
	    JWT_EINVAL);
	assert_null(token);
	assert_int_equal(jwt_sign_es256(fx.es_private, KID, NULL, IAT, &token), JWT_EINVAL);
	assert_null(token);
	assert_int_equal(jwt_sign_rs256(fx.rs_private, "\xc3", SA_EMAIL, SA_SCOPE, SA_AUD, IAT,
	    IAT + 60, &token), JWT_EINVAL);
	assert_null(token);
	assert_int_equal(jwt_sign_rs256(fx.rs_private, NULL, SA_EMAIL, SA_SCOPE, NULL, IAT,
	    IAT + 60, &token), JWT_EINVAL);
	assert_null(token);
}

static void
test_jwt_sign_escapes_json_in_claims(void **state)
{
	char *token, *parts[3];

	assert_int_equal(jwt_sign_es256(fx.es_private, "k\"1", "t\\2/\xc3\xa9", -5, &token), 0);
	token_split(token, parts);
	assert_part_text(parts[0], "{\"alg\":\"ES256\",\"kid\":\"k\\\"1\"}");
	assert_part_text(parts[1], "{\"iss\":\"t\\\\2/\xc3\xa9\",\"iat\":-5}");
	parts_free(parts);
	free(token);
}

static void
test_jwt_strerror_names_every_code_distinctly(void **state)
{
	int a, b;

	for (a = JWT_ESIGNATURE; a <= JWT_OK; a++) {
		assert_string_not_equal(jwt_strerror(a), "unknown jwt error");
		for (b = a + 1; b <= JWT_OK; b++)
			assert_string_not_equal(jwt_strerror(a), jwt_strerror(b));
	}
	assert_string_equal(jwt_strerror(JWT_ESIGNATURE - 1), "unknown jwt error");
	assert_string_equal(jwt_strerror(JWT_EDERSIG), "ES256 signature is DER, not raw r||s");
	assert_string_equal(jwt_alg_name(JWT_ALG_ES256), "ES256");
	assert_string_equal(jwt_alg_name(JWT_ALG_RS256), "RS256");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwt_es256_token_has_exact_header_and_claims),
		cmocka_unit_test(test_jwt_es256_token_verifies_and_returns_header_and_claims),
		cmocka_unit_test(test_jwt_es256_raw_signature_verifies_in_openssl_as_own_der),
		cmocka_unit_test(test_jwt_es256_tokens_for_same_claims_differ_but_both_verify),
		cmocka_unit_test(test_jwt_verify_rejects_tampered_claims),
		cmocka_unit_test(test_jwt_verify_rejects_wrong_key),
		cmocka_unit_test(test_jwt_verify_rejects_der_signature_with_its_own_error),
		cmocka_unit_test(test_jwt_verify_rejects_es256_signature_of_wrong_size),
		cmocka_unit_test(test_jwt_verify_rejects_alg_mismatch),
		cmocka_unit_test(test_jwt_verify_rejects_malformed_tokens),
		cmocka_unit_test(test_jwt_rs256_round_trip_with_exact_header_and_claims),
		cmocka_unit_test(test_jwt_rs256_without_kid_and_tampering_fails),
		cmocka_unit_test(test_jwt_key_load_pkcs8_file_signs_verifiable_tokens),
		cmocka_unit_test(test_jwt_key_load_public_file_verifies),
		cmocka_unit_test(test_jwt_key_load_accepts_traditional_pem),
		cmocka_unit_test(test_jwt_key_load_rejects_rsa_key_for_es256),
		cmocka_unit_test(test_jwt_key_load_rejects_other_curves_for_es256),
		cmocka_unit_test(test_jwt_key_load_rejects_ec_and_short_rsa_keys_for_rs256),
		cmocka_unit_test(test_jwt_key_load_missing_file_is_io_error),
		cmocka_unit_test(test_jwt_key_load_rejects_garbage_and_keys_of_the_wrong_half),
		cmocka_unit_test(test_jwt_key_load_refuses_encrypted_key_without_prompting),
		cmocka_unit_test(test_jwt_sign_refuses_key_of_other_algorithm_or_public_key),
		cmocka_unit_test(test_jwt_sign_rejects_missing_or_non_utf8_strings),
		cmocka_unit_test(test_jwt_sign_escapes_json_in_claims),
		cmocka_unit_test(test_jwt_strerror_names_every_code_distinctly),
	};

	return cmocka_run_group_tests_name("jwt", tests, group_setup, group_teardown);
}
