/* UTF-8 validation, cutting and sanitizing for text that goes out. */
#include "autoconf.h"

#include <string.h>

#include "utf8.h"
#include "xmalloc.h"

size_t
utf8_char_len(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned int c, cp, min;
	size_t len;

	if (n == 0)
		return 0;
	c = p[0];
	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t
utf8_valid_prefix(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		if (p[i] < 0x80 && p[i] != 0) {
			i++;
			continue;
		}
		if ((n = utf8_char_len(s + i, len - i)) == 0)
			break;
		i += n;
	}
	return i;
}

int
utf8_valid(const char *s, size_t len)
{
	return utf8_valid_prefix(s, len) == len;
}

size_t
utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

size_t
utf8_sanitize(char *out, size_t outsize, const char *s, size_t len)
{
	size_t i = 0, o = 0, n;
	const char *from;

	if (outsize == 0)
		return 0;
	while (i < len) {
		n = utf8_char_len(s + i, len - i);
		from = n > 0 ? s + i : UTF8_REPLACEMENT;
		if (n == 0) {
			n = sizeof UTF8_REPLACEMENT - 1;
			i++;
		} else
			i += n;
		if (o + n >= outsize)
			break;
		memcpy(out + o, from, n);
		o += n;
	}
	out[o] = '\0';
	return o;
}

char *
utf8_sanitize_dup(const char *s, size_t len, size_t max)
{
	/* Each byte becomes at most 3: size the copy for the worst case, up to max. */
	size_t size = (len > max / 3 ? max : len * 3) + 1;
	char *out = xmalloc(size);

	utf8_sanitize(out, size, s, len);
	return out;
}
