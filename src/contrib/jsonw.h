/*
 * A JSON text writer: compact JSON appended to a growing buffer, byte for byte what
 * jansson's json_dumps(..., JSON_COMPACT) makes of the same members in the same
 * order, without building a tree first. For the texts made on hot paths: the
 * providers' payloads (payload.c) and the device answers of the API (model.c).
 *
 * Strings are escaped as jansson escapes them and must be UTF-8; jsonw_string()
 * replaces what is not (jansson would refuse the whole string), so whatever is
 * written is valid UTF-8. Memory runs out only through xmalloc's fatal error.
 * Any thread; a writer is used by one at a time.
 */
#ifndef PUSHRELAY_JSONW_H
#define PUSHRELAY_JSONW_H

#include <stddef.h>
#include <stdint.h>

struct jsonw {
	char *text;			/* always NUL-terminated */
	size_t len;
	size_t size;			/* bytes allocated for text */
};

/* Start an empty text with room for size bytes (it grows as needed). */
void jsonw_init(struct jsonw *w, size_t size);
/* Append bytes as they are: JSON syntax, or text already JSON. */
void jsonw_bytes(struct jsonw *w, const char *bytes, size_t len);
void jsonw_raw(struct jsonw *w, const char *text);
/* A JSON string of len bytes, quoted and escaped. */
void jsonw_string(struct jsonw *w, const char *s, size_t len);
/*
 * Start a member of the object being written: a comma unless it is the first (the
 * last byte written is the object's '{'), the key, a colon.
 */
void jsonw_key(struct jsonw *w, const char *key);
/* A member whose value is a string, or null when value is NULL. */
void jsonw_string_or_null_member(struct jsonw *w, const char *key, const char *value);
/* A member whose value is a string; nothing at all when value is NULL. */
void jsonw_string_member(struct jsonw *w, const char *key, const char *value);
/* A member whose value is an integer. */
void jsonw_integer_member(struct jsonw *w, const char *key, int64_t value);
/* Give the text (NUL-terminated; its length in *len) to the caller, who frees it. */
char *jsonw_take(struct jsonw *w, size_t *len);

#endif
