/*
 * API keys: read from a file (one key per line, '#' comments), kept only as SHA-256
 * digests, and compared in constant time.
 *
 * Loaded by daemon.c at start-up and on reload; checked by api.c and api_conn.c on
 * the event loop.
 */
#ifndef PUSHRELAY_APIKEY_H
#define PUSHRELAY_APIKEY_H

#include <stddef.h>

#define APIKEY_MIN_LENGTH 16
#define APIKEY_MAX_LENGTH 512

struct apikeys;

/* Load the keys of a file; -1 with err set if it is unreadable, malformed or empty. */
int apikey_load(const char *path, struct apikeys **out, char *err, size_t errlen);
/*
 * Create path (mode 0600, never overwriting) holding one new random key; 0 on
 * success, 1 if the file already exists, -1 with err set on failure.
 */
int apikey_generate_file(const char *path, char *err, size_t errlen);
/* 1 if the presented key is one of the keys, else 0; constant time per key. */
int apikey_check(const struct apikeys *keys, const char *presented, size_t len);
/* "k-" and the first 8 hex digits of a key's SHA-256: names a key in logs, not it. */
#define APIKEY_ID_SIZE 11
/* apikey_check, and the id of the key that matched written to id ("" if none). */
int apikey_match(const struct apikeys *keys, const char *presented, size_t len,
    char id[APIKEY_ID_SIZE]);
size_t apikey_count(const struct apikeys *keys);
void apikey_free(struct apikeys *keys);

#endif
