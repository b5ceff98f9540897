/* Base64 and base64url encoding and strict decoding (RFC 4648). */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>

#include "base64.h"
#include "xmalloc.h"

static const char base64_std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char base64_url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encode with the given 64-character alphabet, padding the last group if asked. */
static char *
base64_encode_alphabet(const unsigned char *in, size_t len, const char *alphabet, int pad)
{
	size_t groups = len / 3 + (len % 3 != 0), i, o = 0;
	uint32_t v;
	char *out;

	/* One group more for the NUL: xreallocarray checks the size as any allocation. */
	out = xreallocarray(NULL, groups + 1, 4);

	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = alphabet[v >> 18 & 0x3f];
		out[o++] = alphabet[v >> 12 & 0x3f];
		out[o++] = alphabet[v >> 6 & 0x3f];
		out[o++] = alphabet[v & 0x3f];
	}
	switch (len - i) {
	case 1:
		v = (uint32_t)in[i] << 16;
		out[o++] = alphabet[v >> 18 & 0x3f];
		out[o++] = alphabet[v >> 12 & 0x3f];
		if (pad) {
			out[o++] = '=';
			out[o++] = '=';
		}
		break;
	case 2:
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = alphabet[v >> 18 & 0x3f];
		out[o++] = alphabet[v >> 12 & 0x3f];
		out[o++] = alphabet[v >> 6 & 0x3f];
		if (pad)
			out[o++] = '=';
		break;
	}
	out[o] = '\0';
	return out;
}

/* Encode bytes as padded standard base64. */
char *
base64_encode(const void *data, size_t len)
{
	return base64_encode_alphabet(data, len, base64_std_alphabet, 1);
}

/* Encode bytes as unpadded base64url. */
char *
base64url_encode(const void *data, size_t len)
{
	return base64_encode_alphabet(data, len, base64_url_alphabet, 0);
}

/* The 6-bit value of a character of either alphabet, or -1 if it is not in it. */
static int
base64_value(unsigned char c, int url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/*
 * Decode strictly. Padding, when present, must fill the last group of 4 exactly; the
 * standard variant requires it, the url variant accepts it or its absence.
 */
static int
base64_decode_variant(const char *in, size_t inlen, int url, unsigned char **out,
    size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t n = inlen, rest, i, o = 0;
	unsigned char *buf;
	uint32_t v;
	int c, j;

	*out = NULL;
	*outlen = 0;
	if (inlen % 4 == 0) {
		/* Strip at most two '='; a third is then a bad character below. */
		if (n > 0 && p[n - 1] == '=')
			n--;
		if (n > 0 && p[n - 1] == '=')
			n--;
	} else if (!url)
		return -1;
	rest = n % 4;
	if (rest == 1)
		return -1;

	buf = xmalloc(n / 4 * 3 + (rest == 0 ? 0 : rest - 1) + 1);
	for (i = 0; i + 4 <= n; i += 4) {
		v = 0;
		for (j = 0; j < 4; j++) {
			if ((c = base64_value(p[i + j], url)) < 0)
				goto fail;
			v = v << 6 | (uint32_t)c;
		}
		buf[o++] = v >> 16 & 0xff;
		buf[o++] = v >> 8 & 0xff;
		buf[o++] = v & 0xff;
	}
	if (rest != 0) {
		v = 0;
		for (j = 0; j < (int)rest; j++) {
			if ((c = base64_value(p[i + j], url)) < 0)
				goto fail;
			v = v << 6 | (uint32_t)c;
		}
		/* The bits below the last whole byte must be zero (RFC 4648 section 3.5). */
		if (rest == 2) {
			if ((v & 0xf) != 0)
				goto fail;
			buf[o++] = v >> 4 & 0xff;
		} else {
			if ((v & 0x3) != 0)
				goto fail;
			buf[o++] = v >> 10 & 0xff;
			buf[o++] = v >> 2 & 0xff;
		}
	}
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return 0;

fail:
	free(buf);
	return -1;
}

/* Decode padded standard base64. */
int
base64_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen)
{
	return base64_decode_variant(in, inlen, 0, out, outlen);
}

/* Decode base64url, padded or not. */
int
base64url_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen)
{
	return base64_decode_variant(in, inlen, 1, out, outlen);
}
