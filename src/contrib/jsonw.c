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

void
jsonw_bytes(struct jsonw *w, const char *bytes, size_t len)
{
	if (w->len + len >= w->size) {
		while (w->len + len >= w->size)
			w->size *= 2;
		w->text = xreallocarray(w->text, 1, w->size);
	}
	memcpy(w->text + w->len, bytes, len);
	w->len += len;
	w->text[w->len] = '\0';
}

void
jsonw_raw(struct jsonw *w, const char *text)
{
	jsonw_bytes(w, text, strlen(text));
}

/* Escape one byte as jansson does: the short escape if JSON has one, else \u00XX. */
static void
write_escape(struct jsonw *w, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char sequence[] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf] };

	switch (c) {
	case '"': jsonw_bytes(w, "\\\"", 2); break;
	case '\\': jsonw_bytes(w, "\\\\", 2); break;
	case '\b': jsonw_bytes(w, "\\b", 2); break;
	case '\f': jsonw_bytes(w, "\\f", 2); break;
	case '\n': jsonw_bytes(w, "\\n", 2); break;
	case '\r': jsonw_bytes(w, "\\r", 2); break;
	case '\t': jsonw_bytes(w, "\\t", 2); break;
	default: jsonw_bytes(w, sequence, sizeof sequence); break;
	}
}

/* Whether jansson escapes byte c; it leaves '/', DEL and non-ASCII bytes as they are. */
static int
needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

/* The escaped string, copied in runs between the bytes that need escaping. */
static void
write_escaped(struct jsonw *w, const char *s, size_t len)
{
	const char *end = s + len, *run = s;

	for (; s < end; s++) {
		if (!needs_escape((unsigned char)*s))
			continue;
		jsonw_bytes(w, run, (size_t)(s - run));
		write_escape(w, (unsigned char)*s);
		run = s + 1;
	}
	jsonw_bytes(w, run, (size_t)(end - run));
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
