/* JSON Web Tokens: ES256 and RS256 signing and verification with OpenSSL 3 EVP. */
#include "autoconf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base64.h"
#include "jwt.h"
#include "log.h"
#include "secret_file.h"
#include "xmalloc.h"

/* Key files are a few kilobytes; anything this large is not one. */
#define JWT_KEY_FILE_MAX (1024 * 1024)
/* Size of one P-256 coordinate, and of the raw r||s signature. */
#define JWT_ES256_HALF 32
#define JWT_ES256_SIG (2 * JWT_ES256_HALF)
#define JWT_RSA_MIN_BITS 2048

struct jwt_key {
	EVP_PKEY *pkey;
	enum jwt_alg alg;
	int private;
};

/* Describe an error code. */
const char *
jwt_strerror(int error)
{
	switch (error) {
	case JWT_OK:
		return "success";
	case JWT_EIO:
		return "cannot read key file";
	case JWT_EKEY:
		return "no usable PEM key";
	case JWT_EKEYTYPE:
		return "key does not fit the algorithm";
	case JWT_EINVAL:
		return "invalid argument";
	case JWT_ESIGN:
		return "signing failed";
	case JWT_EMALFORMED:
		return "malformed token";
	case JWT_EALG:
		return "unexpected token algorithm";
	case JWT_EDERSIG:
		return "ES256 signature is DER, not raw r||s";
	case JWT_ESIGNATURE:
		return "bad signature";
	}
	return "unknown jwt error";
}

/* The JOSE name of an algorithm. */
const char *
jwt_alg_name(enum jwt_alg alg)
{
	switch (alg) {
	case JWT_ALG_ES256:
		return "ES256";
	case JWT_ALG_RS256:
		return "RS256";
	}
	return "unknown";
}

/* The algorithm a key was loaded for. */
enum jwt_alg
jwt_key_alg(const struct jwt_key *key)
{
	return key->alg;
}

/* Free a key. */
void
jwt_key_free(struct jwt_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

/* Refuse to prompt for a passphrase; note that the key was encrypted. */
static int
pem_refuse_password(char *buf, int size, int rwflag, void *arg)
{
	int *encrypted = arg;

	*encrypted = 1;
	return -1;
}

/* Is a named EC group P-256? OpenSSL calls it prime256v1. */
static int
group_is_p256(const char *group)
{
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ||
	    strcmp(group, "secp256r1") == 0;
}

/* Say what a key is, for errors: "an RSA key", "an EC key on curve secp384r1". */
static void
key_describe(EVP_PKEY *pkey, char *buf, size_t size)
{
	char group[64];

	if (EVP_PKEY_is_a(pkey, "RSA"))
		snprintf(buf, size, "a %d-bit RSA key", EVP_PKEY_get_bits(pkey));
	else if (EVP_PKEY_is_a(pkey, "EC")) {
		if (EVP_PKEY_get_group_name(pkey, group, sizeof group, NULL) == 1)
			snprintf(buf, size, "an EC key on curve %s", group);
		else
			snprintf(buf, size, "an EC key on an unnamed curve");
	} else
		snprintf(buf, size, "a key of type %s", EVP_PKEY_get0_type_name(pkey));
	ERR_clear_error();
}

/* Check that a key fits an algorithm; err names the key and what was needed. */
static int
key_check(EVP_PKEY *pkey, enum jwt_alg alg, const char *name, char *err, size_t errlen)
{
	char group[64], what[128];

	switch (alg) {
	case JWT_ALG_ES256:
		if (EVP_PKEY_is_a(pkey, "EC") &&
		    EVP_PKEY_get_group_name(pkey, group, sizeof group, NULL) == 1 &&
		    group_is_p256(group))
			return 0;
		ERR_clear_error();
		if (EVP_PKEY_is_a(pkey, "RSA"))
			snprintf(what, sizeof what, "an RSA key");
		else
			key_describe(pkey, what, sizeof what);
		snprintf(err, errlen, "key %s is %s, ES256 needs an EC P-256 key", name, what);
		return JWT_EKEYTYPE;
	case JWT_ALG_RS256:
		if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) >= JWT_RSA_MIN_BITS)
			return 0;
		key_describe(pkey, what, sizeof what);
		snprintf(err, errlen, "key %s is %s, RS256 needs an RSA key of at least %d bits",
		    name, what, JWT_RSA_MIN_BITS);
		return JWT_EKEYTYPE;
	}
	snprintf(err, errlen, "key %s: unknown algorithm", name);
	return JWT_EINVAL;
}

/*
 * Does an EC or RSA key hold its private half? A defence: PEM_read_bio_PrivateKey does
 * not document that it never returns a public key.
 */
static int
key_has_private(EVP_PKEY *pkey)
{
	BIGNUM *bn = NULL;
	const char *param;
	int ok;

	if (EVP_PKEY_is_a(pkey, "RSA"))
		param = OSSL_PKEY_PARAM_RSA_D;
	else
		param = OSSL_PKEY_PARAM_PRIV_KEY;
	ok = EVP_PKEY_get_bn_param(pkey, param, &bn) == 1;
	BN_clear_free(bn);
	ERR_clear_error();
	return ok;
}

/* Does len bytes of PEM text contain a marker? */
static int
pem_contains(const char *pem, size_t len, const char *marker)
{
	size_t n = strlen(marker), i;

	for (i = 0; i + n <= len; i++) {
		if (memcmp(pem + i, marker, n) == 0)
			return 1;
	}
	return 0;
}

/* Say why PEM did not parse: OpenSSL 3 only says "unsupported". */
static void
key_parse_error(const char *pem, size_t len, const char *name, int private, int encrypted,
    char *err, size_t errlen)
{
	const char *half = private ? "private" : "public";

	if (encrypted)
		snprintf(err, errlen, "key %s is encrypted; pushrelay needs an unencrypted key",
		    name);
	else if (!pem_contains(pem, len, "-----BEGIN "))
		snprintf(err, errlen, "key %s: no PEM data found", name);
	else if (private && pem_contains(pem, len, "-----BEGIN PUBLIC KEY-----"))
		snprintf(err, errlen, "key %s is a public key, a private key is needed", name);
	else if (!private && pem_contains(pem, len, "PRIVATE KEY-----"))
		snprintf(err, errlen, "key %s is a private key, a public key is needed", name);
	else
		snprintf(err, errlen, "key %s: cannot parse the PEM %s key (damaged, or of a "
		    "type OpenSSL does not know)", name, half);
}

/* Parse a PEM key from memory and check it against alg. */
static int
key_load(const char *pem, size_t len, const char *name, int private, enum jwt_alg alg,
    struct jwt_key **out, char *err, size_t errlen)
{
	struct jwt_key *key;
	EVP_PKEY *pkey;
	BIO *bio;
	int encrypted = 0, error;

	*out = NULL;
	if (name == NULL)
		name = "(in memory)";
	if (pem == NULL || len > INT_MAX) {
		snprintf(err, errlen, "key %s: no PEM data found", name);
		return JWT_EKEY;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		fatalx("out of memory reading a PEM key");
	if (private)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, pem_refuse_password, &encrypted);
	else
		pkey = PEM_read_bio_PUBKEY(bio, NULL, pem_refuse_password, &encrypted);
	BIO_free(bio);
	if (pkey == NULL) {
		key_parse_error(pem, len, name, private, encrypted, err, errlen);
		ERR_clear_error();
		return JWT_EKEY;
	}
	if ((error = key_check(pkey, alg, name, err, errlen)) != 0) {
		EVP_PKEY_free(pkey);
		return error;
	}
	if (private && !key_has_private(pkey)) {
		snprintf(err, errlen, "key %s is a public key, a private key is needed", name);
		EVP_PKEY_free(pkey);
		return JWT_EKEY;
	}

	key = xcalloc(1, sizeof *key);
	key->pkey = pkey;
	key->alg = alg;
	key->private = private;
	*out = key;
	return 0;
}

/* Load a key file; the copy in memory is wiped afterwards. */
static int
key_load_file(const char *path, int private, enum jwt_alg alg, struct jwt_key **out,
    char *err, size_t errlen)
{
	struct secret_file pem;
	char why[128];
	int error;

	*out = NULL;
	/* Only a private key is a secret whose mode matters. */
	if (secret_file_read(path, private ? "private key file" : NULL, JWT_KEY_FILE_MAX,
	    &pem, why, sizeof why) != 0) {
		snprintf(err, errlen, "cannot read key %s: %s", path, why);
		return JWT_EIO;
	}
	error = key_load(pem.data, pem.len, path, private, alg, out, err, errlen);
	secret_file_free(&pem);
	return error;
}

/* Load a private key from a PEM file. */
int
jwt_key_load_pem_file(const char *path, enum jwt_alg alg, struct jwt_key **out, char *err,
    size_t errlen)
{
	return key_load_file(path, 1, alg, out, err, errlen);
}

/* Load a private key from PEM in memory. */
int
jwt_key_load_pem(const char *pem, size_t len, const char *name, enum jwt_alg alg,
    struct jwt_key **out, char *err, size_t errlen)
{
	return key_load(pem, len, name, 1, alg, out, err, errlen);
}

/* Load a public key from a PEM file. */
int
jwt_key_load_public_pem_file(const char *path, enum jwt_alg alg, struct jwt_key **out,
    char *err, size_t errlen)
{
	return key_load_file(path, 0, alg, out, err, errlen);
}

/* Load a public key from PEM in memory. */
int
jwt_key_load_public_pem(const char *pem, size_t len, const char *name, enum jwt_alg alg,
    struct jwt_key **out, char *err, size_t errlen)
{
	return key_load(pem, len, name, 0, alg, out, err, errlen);
}

/* Convert a DER ECDSA-Sig-Value to raw r||s; -1 unless it is exactly one DER value. */
static int
ecdsa_der_to_raw(const unsigned char *der, size_t len, unsigned char raw[JWT_ES256_SIG])
{
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;
	int ok = 0;

	if (len > LONG_MAX)
		return -1;
	if ((sig = d2i_ECDSA_SIG(NULL, &p, (long)len)) != NULL) {
		if (p == der + len) {
			ECDSA_SIG_get0(sig, &r, &s);
			ok = BN_bn2binpad(r, raw, JWT_ES256_HALF) == JWT_ES256_HALF;
			ok = ok && BN_bn2binpad(s, raw + JWT_ES256_HALF, JWT_ES256_HALF) ==
			    JWT_ES256_HALF;
		}
		ECDSA_SIG_free(sig);
	}
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* Does a signature look like DER (a client bug) rather than raw r||s? */
static int
ecdsa_sig_is_der(const unsigned char *sig, size_t len)
{
	unsigned char raw[JWT_ES256_SIG];

	return ecdsa_der_to_raw(sig, len, raw) == 0;
}

/* Convert raw r||s to DER for EVP_DigestVerify; *der is for OPENSSL_free(). */
static int
ecdsa_raw_to_der(const unsigned char raw[JWT_ES256_SIG], unsigned char **der, size_t *derlen)
{
	BIGNUM *r, *s;
	ECDSA_SIG *sig;
	int len;

	*der = NULL;
	if ((sig = ECDSA_SIG_new()) == NULL)
		fatalx("out of memory converting a signature");
	r = BN_bin2bn(raw, JWT_ES256_HALF, NULL);
	s = BN_bin2bn(raw + JWT_ES256_HALF, JWT_ES256_HALF, NULL);
	if (r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1)
		fatalx("out of memory converting a signature");
	len = i2d_ECDSA_SIG(sig, der);
	ECDSA_SIG_free(sig);
	if (len <= 0) {
		ERR_clear_error();
		return -1;
	}
	*derlen = (size_t)len;
	return 0;
}

/* Sign data with SHA-256; for ES256 the DER result is turned into raw r||s. */
static int
sign_data(const struct jwt_key *key, const char *data, size_t len, unsigned char **out,
    size_t *outlen)
{
	unsigned char *sig = NULL, *raw;
	EVP_MD_CTX *ctx;
	size_t siglen;

	*out = NULL;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		fatalx("out of memory signing a token");
	if (EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key->pkey, NULL) != 1 ||
	    EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)data, len) != 1)
		goto fail;
	sig = xmalloc(siglen);
	if (EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)data, len) != 1)
		goto fail;
	EVP_MD_CTX_free(ctx);

	if (key->alg == JWT_ALG_ES256) {
		raw = xmalloc(JWT_ES256_SIG);
		if (ecdsa_der_to_raw(sig, siglen, raw) != 0) {
			free(raw);
			free(sig);
			return JWT_ESIGN;
		}
		free(sig);
		sig = raw;
		siglen = JWT_ES256_SIG;
	}
	*out = sig;
	*outlen = siglen;
	return 0;

fail:
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	free(sig);
	return JWT_ESIGN;
}

/* Serialize one JSON object compactly and encode it as base64url. */
static char *
json_part_encode(const json_t *object)
{
	char *text, *part;

	if ((text = json_dumps(object, JSON_COMPACT)) == NULL)
		fatalx("out of memory serializing a token");
	part = base64url_encode(text, strlen(text));
	free(text);
	return part;
}

/* Assemble header.claims.signature, signed with key. */
static int
token_build(const struct jwt_key *key, const json_t *header, const json_t *claims,
    char **out)
{
	char *header_part, *claims_part, *input, *sig_part;
	unsigned char *sig;
	size_t siglen;
	int error;

	header_part = json_part_encode(header);
	claims_part = json_part_encode(claims);
	input = xasprintf("%s.%s", header_part, claims_part);
	free(header_part);
	free(claims_part);

	if ((error = sign_data(key, input, strlen(input), &sig, &siglen)) != 0) {
		free(input);
		return error;
	}
	sig_part = base64url_encode(sig, siglen);
	free(sig);
	*out = xasprintf("%s.%s", input, sig_part);
	free(input);
	free(sig_part);
	return 0;
}

/* Can key sign for alg? */
static int
key_can_sign(const struct jwt_key *key, enum jwt_alg alg)
{
	return key->alg == alg && key->private;
}

/* Mint an APNs provider token. */
int
jwt_sign_es256(const struct jwt_key *key, const char *kid, const char *iss, int64_t iat,
    char **out)
{
	json_t *header, *claims;
	int error;

	*out = NULL;
	if (key == NULL || kid == NULL || iss == NULL)
		return JWT_EINVAL;
	if (!key_can_sign(key, JWT_ALG_ES256))
		return JWT_EKEYTYPE;

	/* json_pack fails on a string that is not UTF-8. */
	header = json_pack("{s:s, s:s}", "alg", "ES256", "kid", kid);
	claims = json_pack("{s:s, s:I}", "iss", iss, "iat", (json_int_t)iat);
	if (header == NULL || claims == NULL)
		error = JWT_EINVAL;
	else
		error = token_build(key, header, claims, out);
	json_decref(header);
	json_decref(claims);
	return error;
}

/* Mint a Google OAuth service-account assertion. */
int
jwt_sign_rs256(const struct jwt_key *key, const char *kid, const char *iss,
    const char *scope, const char *aud, int64_t iat, int64_t exp, char **out)
{
	json_t *header, *claims;
	int error;

	*out = NULL;
	if (key == NULL || iss == NULL || scope == NULL || aud == NULL)
		return JWT_EINVAL;
	if (!key_can_sign(key, JWT_ALG_RS256))
		return JWT_EKEYTYPE;

	if (kid != NULL)
		header = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", kid);
	else
		header = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
	claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", iss, "scope", scope, "aud", aud,
	    "iat", (json_int_t)iat, "exp", (json_int_t)exp);
	if (header == NULL || claims == NULL)
		error = JWT_EINVAL;
	else
		error = token_build(key, header, claims, out);
	json_decref(header);
	json_decref(claims);
	return error;
}

/* Decode one base64url part holding a JSON object. */
static json_t *
json_part_decode(const char *part, size_t len)
{
	unsigned char *text;
	size_t textlen;
	json_error_t jerr;
	json_t *object;

	if (len == 0 || base64url_decode(part, len, &text, &textlen) != 0)
		return NULL;
	object = json_loadb((const char *)text, textlen, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (object != NULL && !json_is_object(object)) {
		json_decref(object);
		return NULL;
	}
	return object;
}

/* Run EVP_DigestVerify over data; 0 if the signature holds. */
static int
verify_data(EVP_PKEY *pkey, const char *data, size_t len, const unsigned char *sig,
    size_t siglen)
{
	EVP_MD_CTX *ctx;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		fatalx("out of memory verifying a token");
	ok = EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)data, len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* Check the signature of the signing input, in the form alg calls for. */
static int
signature_check(const struct jwt_key *key, const char *input, size_t inputlen,
    const unsigned char *sig, size_t siglen)
{
	unsigned char *der;
	size_t derlen;
	int ok;

	if (key->alg == JWT_ALG_RS256)
		return verify_data(key->pkey, input, inputlen, sig, siglen) == 0 ? 0 :
		    JWT_ESIGNATURE;

	/* ES256: a 64-byte r||s, converted to the DER that OpenSSL verifies. */
	if (siglen != JWT_ES256_SIG)
		return ecdsa_sig_is_der(sig, siglen) ? JWT_EDERSIG : JWT_ESIGNATURE;
	if (ecdsa_raw_to_der(sig, &der, &derlen) != 0)
		return JWT_ESIGNATURE;
	ok = verify_data(key->pkey, input, inputlen, der, derlen) == 0;
	OPENSSL_free(der);
	if (ok)
		return 0;
	/* A short DER signature can be exactly 64 bytes too. */
	return ecdsa_sig_is_der(sig, siglen) ? JWT_EDERSIG : JWT_ESIGNATURE;
}

/* Verify a compact token and hand back its header and claims. */
int
jwt_verify(const char *token, const struct jwt_key *key, enum jwt_alg alg, json_t **header,
    json_t **claims)
{
	json_t *header_json = NULL, *claims_json = NULL;
	const char *dot1, *dot2, *sig_part, *token_alg;
	unsigned char *sig = NULL;
	size_t siglen;
	int error;

	if (header != NULL)
		*header = NULL;
	if (claims != NULL)
		*claims = NULL;
	if (token == NULL || key == NULL)
		return JWT_EINVAL;
	if (key->alg != alg)
		return JWT_EKEYTYPE;

	/* Compact serialization: exactly two dots, base64url without padding. */
	if ((dot1 = strchr(token, '.')) == NULL || (dot2 = strchr(dot1 + 1, '.')) == NULL)
		return JWT_EMALFORMED;
	sig_part = dot2 + 1;
	if (strchr(sig_part, '.') != NULL || strchr(token, '=') != NULL)
		return JWT_EMALFORMED;
	error = JWT_EMALFORMED;
	if ((header_json = json_part_decode(token, (size_t)(dot1 - token))) == NULL ||
	    (claims_json = json_part_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1))) == NULL ||
	    base64url_decode(sig_part, strlen(sig_part), &sig, &siglen) != 0)
		goto out;

	token_alg = json_string_value(json_object_get(header_json, "alg"));
	if (token_alg == NULL || strcmp(token_alg, jwt_alg_name(alg)) != 0) {
		error = JWT_EALG;
		goto out;
	}
	if ((error = signature_check(key, token, (size_t)(dot2 - token), sig, siglen)) != 0)
		goto out;

	if (header != NULL) {
		*header = header_json;
		header_json = NULL;
	}
	if (claims != NULL) {
		*claims = claims_json;
		claims_json = NULL;
	}
out:
	json_decref(header_json);
	json_decref(claims_json);
	free(sig);
	return error;
}
