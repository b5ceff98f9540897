/*
 * JSON Web Tokens (RFC 7519, JWS compact serialization) for provider authentication:
 * ES256 provider tokens for APNs and RS256 assertions for the Google OAuth token
 * exchange of FCM, plus verification for the mock servers.
 *
 * Keys are PEM: private keys as PKCS#8 ("BEGIN PRIVATE KEY", the APNs .p8 file and the
 * service-account private_key) or traditional ("BEGIN EC PRIVATE KEY", "BEGIN RSA
 * PRIVATE KEY"), public keys as SubjectPublicKeyInfo ("BEGIN PUBLIC KEY"). Encrypted
 * keys are refused (never prompted for). A key is bound to one algorithm when loaded:
 * ES256 needs an EC P-256 key, RS256 an RSA key of at least 2048 bits.
 *
 * ES256 signatures are the raw 64-byte r||s of RFC 7518 section 3.4, not DER.
 *
 * Every int function returns 0 or a negative JWT_E* code; jwt_strerror() names it.
 * Tokens and keys are secrets: log them only through log_redact().
 *
 * Callers: apns.c (provider tokens) and fcm_auth.c (OAuth assertions), on the event
 * loop, and the mock servers. No shared state: any thread.
 */
#ifndef PUSHRELAY_JWT_H
#define PUSHRELAY_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum jwt_error {
	JWT_OK = 0,
	JWT_EIO = -1,		/* the key file could not be read */
	JWT_EKEY = -2,		/* no usable PEM key (garbage, encrypted, public for private) */
	JWT_EKEYTYPE = -3,	/* the key does not fit the algorithm */
	JWT_EINVAL = -4,	/* bad argument: NULL, or a string that is not UTF-8 */
	JWT_ESIGN = -5,		/* OpenSSL failed to sign */
	JWT_EMALFORMED = -6,	/* not header.claims.signature of base64url JSON objects */
	JWT_EALG = -7,		/* header "alg" missing or not the expected algorithm */
	JWT_EDERSIG = -8,	/* ES256 signature in DER form instead of raw r||s */
	JWT_ESIGNATURE = -9,	/* the signature does not verify (or has the wrong size) */
};

enum jwt_alg {
	JWT_ALG_ES256 = 1,	/* ECDSA P-256 with SHA-256 (APNs) */
	JWT_ALG_RS256,		/* RSASSA-PKCS1-v1_5 with SHA-256 (Google OAuth) */
};

/* A key bound to one algorithm; private keys also verify. */
struct jwt_key;

const char *jwt_strerror(int error);
/* "ES256" or "RS256", as in the "alg" header. */
const char *jwt_alg_name(enum jwt_alg alg);

/*
 * Load a private key for alg from a PEM file. On failure *out is NULL and err says why,
 * naming the path: "key /etc/pushrelay/apns.p8 is an RSA key, ES256 needs an EC P-256 key".
 * Returns JWT_EIO, JWT_EKEY or JWT_EKEYTYPE on failure.
 */
int jwt_key_load_pem_file(const char *path, enum jwt_alg alg, struct jwt_key **out,
    char *err, size_t errlen);
/* Load a private key from len bytes of PEM in memory; name stands for it in err. */
int jwt_key_load_pem(const char *pem, size_t len, const char *name, enum jwt_alg alg,
    struct jwt_key **out, char *err, size_t errlen);
/* Load a public key (SubjectPublicKeyInfo PEM) for verifying, from a file or memory. */
int jwt_key_load_public_pem_file(const char *path, enum jwt_alg alg, struct jwt_key **out,
    char *err, size_t errlen);
int jwt_key_load_public_pem(const char *pem, size_t len, const char *name, enum jwt_alg alg,
    struct jwt_key **out, char *err, size_t errlen);
void jwt_key_free(struct jwt_key *key);
enum jwt_alg jwt_key_alg(const struct jwt_key *key);

/*
 * Mint an APNs provider token: header {"alg":"ES256","kid":KID}, claims
 * {"iss":TEAM_ID,"iat":IAT}. *out is the token, to be freed with free().
 * JWT_EKEYTYPE if key is not a private ES256 key.
 */
int jwt_sign_es256(const struct jwt_key *key, const char *kid, const char *iss, int64_t iat,
    char **out);
/*
 * Mint a Google OAuth assertion: header {"alg":"RS256","typ":"JWT"} (plus "kid" when kid
 * is not NULL), claims {"iss","scope","aud","iat","exp"} in that order.
 * JWT_EKEYTYPE if key is not a private RS256 key.
 */
int jwt_sign_rs256(const struct jwt_key *key, const char *kid, const char *iss,
    const char *scope, const char *aud, int64_t iat, int64_t exp, char **out);

/*
 * Verify a compact token against key for the expected alg, checking in this order: the
 * key is for alg (JWT_EKEYTYPE); three parts of unpadded base64url, the first two JSON
 * objects without duplicate names (JWT_EMALFORMED); the header's "alg" is alg
 * (JWT_EALG); for ES256 a DER signature, refused whether or not it would verify
 * (JWT_EDERSIG); the signature (JWT_ESIGNATURE).
 * Claims such as iat and exp are not checked: that is the caller's policy. On success
 * *header and *claims (each optional) hold new references for json_decref(); on failure
 * they are NULL.
 */
int jwt_verify(const char *token, const struct jwt_key *key, enum jwt_alg alg,
    json_t **header, json_t **claims);

#endif
