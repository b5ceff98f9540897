/* The JSON text writer: a buffer, and jansson's escaping. */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "utf8.h"
#include "xmalloc.h"

void
jsonw_init(struct jsonw *w, size_t size)
{
	w->size = size > 16 ? size : 16;
	w->text = xmalloc(w->size);
	w->text[0] = '\0';
	w->len = 0;
}

/* Make room for len more bytes and the terminating NUL. */
static void
reserve(struct jsonw *w, size_t len)
{
	if (w->len + len >= w->size) {
		while (w->len + len >= w->size)
			w->size *= 2;
		w->text = xreallocarray(w->text, 1, w->size);
	}
}

void
jsonw_bytes(struct jsonw *w, const char *bytes, size_t len)
{
	reserve(w, len);
	memcpy(w->text + w->len, bytes, len);
	w->len += len;
	w->text[w->len] = '\0';
}

void
jsonw_raw(struct jsonw *w, const char *text)
{
	jsonw_bytes(w, text, strlen(text));
}

/*
 * The escaped string, as jansson escapes it: the short escape where JSON has one,
 * else \u00XX for the other control bytes; '/', DEL and non-ASCII bytes as they are.
 * Room is made once for the worst case (6 bytes a byte).
 */
static void
write_escaped(struct jsonw *w, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	char *out;

	reserve(w, 6 * len);
	out = w->text + w->len;
	for (; p < end; p++) {
		unsigned char c = *p;

		if (c >= 0x20 && c != '"' && c != '\\') {
			*out++ = (char)c;
			continue;
		}
		*out++ = '\\';
		switch (c) {
		case '"': *out++ = '"'; break;
		case '\\': *out++ = '\\'; break;
		case '\b': *out++ = 'b'; break;
		case '\f': *out++ = 'f'; break;
		case '\n': *out++ = 'n'; break;
		case '\r': *out++ = 'r'; break;
		case '\t': *out++ = 't'; break;
		default:
			*out++ = 'u';
			*out++ = '0';
			*out++ = '0';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 0xf];
			break;
		}
	}
	w->len = (size_t)(out - w->text);
	w->text[w->len] = '\0';
}

void
jsonw_string(struct jsonw *w, const char *s, size_t len)
{
	char *clean;

	jsonw_bytes(w, "\"", 1);
	if (utf8_valid(s, len))
		write_escaped(w, s, len);
	else {
		clean = utf8_sanitize_dup(s, len, 3 * len);
		write_escaped(w, clean, strlen(clean));
		free(clean);
	}
	jsonw_bytes(w, "\"", 1);
}

void
jsonw_key(struct jsonw *w, const char *key)
{
	if (w->len > 0 && w->text[w->len - 1] != '{')
		jsonw_bytes(w, ",", 1);
	jsonw_string(w, key, strlen(key));
	jsonw_bytes(w, ":", 1);
}

void
jsonw_string_or_null_member(struct jsonw *w, const char *key, const char *value)
{
	jsonw_key(w, key);
	if (value == NULL)
		jsonw_bytes(w, "null", 4);
	else
		jsonw_string(w, value, strlen(value));
}

void
jsonw_string_member(struct jsonw *w, const char *key, const char *value)
{
	if (value != NULL)
		jsonw_string_or_null_member(w, key, value);
}

void
jsonw_integer_member(struct jsonw *w, const char *key, int64_t value)
{
	char digits[24];
	int len;

	jsonw_key(w, key);
	len = snprintf(digits, sizeof digits, "%" PRId64, value);
	jsonw_bytes(w, digits, (size_t)len);
}

char *
jsonw_take(struct jsonw *w, size_t *len)
{
	char *text = w->text;

	if (len != NULL)
		*len = w->len;
	w->text = NULL;
	w->len = w->size = 0;
	return text;
}
