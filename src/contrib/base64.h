/*
 * Base64 (RFC 4648 section 4, padded) and base64url (section 5, unpadded) encoding of
 * arbitrary bytes. Ably webhook signatures use the standard alphabet; JWTs use base64url.
 *
 * Encoding cannot fail: the result is a NUL-terminated string from the xmalloc family
 * (free it with free()).
 *
 * Decoding is strict and returns 0 or -1: any character outside the alphabet (including
 * whitespace, NUL and the other variant's '+' '/' or '-' '_'), a length that no encoding
 * produces, padding that is missing, partial or not at the end, and nonzero unused bits in
 * the last character are all rejected, so each byte string has exactly one accepted
 * standard encoding and two accepted url encodings (with and without padding). On success
 * *out holds *outlen bytes followed by a NUL byte that is not counted (handy for text), to
 * be freed with free(); on failure *out is NULL and *outlen 0.
 *
 * Callers: the Ably signature check (ably_keys.c), the JWT code (jwt.c) and the mocks.
 * Pure functions: any thread.
 */
#ifndef PUSHRELAY_BASE64_H
#define PUSHRELAY_BASE64_H

#include <stddef.h>

/* Standard alphabet, padded with '=' to a multiple of 4 characters. */
char *base64_encode(const void *data, size_t len);
/* URL-safe alphabet ('-' and '_'), without padding. */
char *base64url_encode(const void *data, size_t len);

/* Standard alphabet; padding is required. */
int base64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen);
/* URL-safe alphabet; accepts input with complete padding or with none. */
int base64url_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen);

#endif
