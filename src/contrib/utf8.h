/*
 * UTF-8 for text that leaves the daemon: JSON bodies and log lines must be valid
 * UTF-8 whatever a client sent. One decoder of a character, one validator, one cutter
 * that never splits a character, and one sanitizer that replaces what is not UTF-8.
 * Pure functions: any thread may call them.
 */
#ifndef PUSHRELAY_UTF8_H
#define PUSHRELAY_UTF8_H

#include <stddef.h>

/* U+FFFD, what the sanitizer puts in place of each byte that is not UTF-8. */
#define UTF8_REPLACEMENT "\xef\xbf\xbd"

/*
 * The length of the character s[0..len) starts with, 1 to 4 bytes, or 0 if it does
 * not start with a valid one (or with NUL, or len is 0).
 */
size_t utf8_char_len(const char *s, size_t len);
/*
 * The length of the longest valid UTF-8 prefix of s[0..len) (shortest forms only, no
 * surrogates, nothing above U+10FFFF, no NUL). It is len when all of s is valid.
 */
size_t utf8_valid_prefix(const char *s, size_t len);
/* 1 when s[0..len) is valid UTF-8 without NUL, 0 otherwise. */
int utf8_valid(const char *s, size_t len);
/*
 * The length of s[0..len) cut to at most max bytes without splitting a character:
 * len when len <= max, else max backed off over continuation bytes.
 */
size_t utf8_cut(const char *s, size_t len, size_t max);
/*
 * Copy s[0..len) into out (size outsize > 0), NUL-terminated, replacing each byte that
 * does not begin a valid character (and each NUL) by U+FFFD, and stopping before a
 * character that would not fit whole. Returns the length written. The result is always
 * valid UTF-8.
 */
size_t utf8_sanitize(char *out, size_t outsize, const char *s, size_t len);
/* The same into a new string (xmalloc: never NULL); max bounds the result's length. */
char *utf8_sanitize_dup(const char *s, size_t len, size_t max);

#endif
