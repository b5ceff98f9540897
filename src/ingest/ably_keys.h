/*
 * The keys Ably signs its webhooks with ([ably] keys_file), and the check of a
 * delivery's signature. daemon.c loads the keys at start and on reload; api_ably.c
 * checks each POST /v1/ingest/ably with them, on the loop's thread. Nothing here logs
 * but ably_keys_load (a warning about the file's permissions).
 */
#ifndef PUSHRELAY_ABLY_KEYS_H
#define PUSHRELAY_ABLY_KEYS_H

#include <stddef.h>

enum ably_keys_error {
	ABLY_KEYS_OK = 0,
	ABLY_KEYS_ENOKEY = -1,		/* no X-Ably-Key header: 401 */
	ABLY_KEYS_EUNKNOWNKEY = -2,	/* X-Ably-Key names no key of the file: 401 */
	ABLY_KEYS_ENOSIGNATURE = -3,	/* no X-Ably-Signature header: 401 */
	ABLY_KEYS_EBADSIGNATURE = -4,	/* the signature does not match the body: 401 */
	ABLY_KEYS_EHMAC = -5,		/* the HMAC could not be computed: 503 */
};

struct ably_keys;

const char *ably_keys_strerror(int error);

/*
 * Load signing keys: one appId.keyId:secret per line, blank lines and lines starting
 * with '#' ignored (a '#' later in a line belongs to the secret). -1 with err set
 * (never showing a secret) if the file is unreadable, a line is malformed, a key is
 * listed twice, or there are no keys.
 */
int ably_keys_load(const char *path, struct ably_keys **out, char *err, size_t errlen);
size_t ably_keys_count(const struct ably_keys *keys);
/* Free, wiping the secrets. */
void ably_keys_free(struct ably_keys *keys);

/*
 * Check a delivery's signature: X-Ably-Signature must be the base64 HMAC-SHA256 of the
 * raw body under the secret of the key X-Ably-Key names, compared in constant time.
 * Returns ABLY_KEYS_OK, or another ably_keys_error with err set (valid UTF-8, whatever
 * the headers held). An empty header counts as missing.
 */
int ably_keys_verify(const struct ably_keys *keys, const char *key_name,
    const char *signature, const void *body, size_t len, char *err, size_t errlen);

#endif
