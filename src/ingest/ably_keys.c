/* Ably's webhook signing keys: the key file, and the check of a signature. */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ably_keys.h"
#include "base64.h"
#include "secret_file.h"
#include "utf8.h"
#include "xmalloc.h"

#define ABLY_SIGNATURE_SIZE 32		/* HMAC-SHA256 */
#define ABLY_KEY_NAME_MAX 256
#define ABLY_KEY_FILE_MAX (1024 * 1024)

struct ably_key {
	char *name;			/* appId.keyId */
	unsigned char *secret;
	size_t secret_len;
};

struct ably_keys {
	struct ably_key *items;
	size_t count;
};

/*
 * Write an error. Errors quote what came in (paths, key names): they are cut at a
 * character boundary, and what is not UTF-8 replaced.
 */
static void __attribute__((format(printf, 3, 4)))
keys_fail(char *err, size_t errlen, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	utf8_sanitize(err, errlen, text, strlen(text));
}

/* The text of a key or signature error. */
const char *
ably_keys_strerror(int error)
{
	switch (error) {
	case ABLY_KEYS_OK: return "ok";
	case ABLY_KEYS_ENOKEY: return "no X-Ably-Key header";
	case ABLY_KEYS_EUNKNOWNKEY: return "X-Ably-Key names an unknown key";
	case ABLY_KEYS_ENOSIGNATURE: return "no X-Ably-Signature header";
	case ABLY_KEYS_EBADSIGNATURE: return "X-Ably-Signature does not match the body";
	case ABLY_KEYS_EHMAC: return "cannot compute the body's HMAC-SHA256";
	}
	return "unknown Ably key error";
}

/* Strip surrounding white space and the line end in place. */
static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
	    end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/* 0 if name is appId.keyId: two non-empty parts around a dot, printable, no spaces. */
static int
key_name_valid(const char *name, size_t len)
{
	const char *dot = memchr(name, '.', len);

	if (len == 0 || len > ABLY_KEY_NAME_MAX || dot == NULL || dot == name ||
	    dot == name + len - 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isgraph((unsigned char)name[i]))
			return -1;
	}
	return 0;
}

/* Read the key file: one appId.keyId:secret a line. */
int
ably_keys_load(const char *path, struct ably_keys **out, char *err, size_t errlen)
{
	struct secret_file file;
	struct ably_keys *keys;
	struct ably_key *key;
	char *line, *next, *end, *text, *colon, why[128];
	size_t lineno = 0, name_len;

	if (secret_file_read(path, "Ably key file", ABLY_KEY_FILE_MAX, &file, why,
	    sizeof why) != 0) {
		keys_fail(err, errlen, "Ably key file %s: %s", path, why);
		return -1;
	}
	keys = xcalloc(1, sizeof *keys);
	end = file.data + file.len;
	for (line = file.data; line < end; line = next) {
		if ((next = memchr(line, '\n', (size_t)(end - line))) != NULL)
			*next++ = '\0';
		else
			next = end;
		lineno++;
		text = trim(line);
		if (*text == '\0' || *text == '#')
			continue;
		colon = strchr(text, ':');
		name_len = colon != NULL ? (size_t)(colon - text) : strlen(text);
		if (colon == NULL || key_name_valid(text, name_len) != 0 || colon[1] == '\0' ||
		    strpbrk(colon + 1, " \t") != NULL) {
			keys_fail(err, errlen, "%s:%zu: expected appId.keyId:secret", path, lineno);
			goto fail;
		}
		for (size_t i = 0; i < keys->count; i++) {
			if (strlen(keys->items[i].name) == name_len &&
			    memcmp(keys->items[i].name, text, name_len) == 0) {
				keys_fail(err, errlen, "%s:%zu: key %.*s is listed twice", path,
				    lineno, (int)name_len, text);
				goto fail;
			}
		}
		keys->items = xreallocarray(keys->items, keys->count + 1, sizeof *keys->items);
		key = &keys->items[keys->count++];
		key->name = xstrndup(text, name_len);
		key->secret_len = strlen(colon + 1);
		key->secret = xmalloc(key->secret_len);
		memcpy(key->secret, colon + 1, key->secret_len);
	}
	if (keys->count == 0) {
		keys_fail(err, errlen, "Ably key file %s has no keys", path);
		goto fail;
	}
	secret_file_free(&file);
	*out = keys;
	return 0;
fail:
	secret_file_free(&file);
	ably_keys_free(keys);
	return -1;
}

/* How many keys were loaded. */
size_t
ably_keys_count(const struct ably_keys *keys)
{
	return keys != NULL ? keys->count : 0;
}

/* Free the keys, wiping the secrets. */
void
ably_keys_free(struct ably_keys *keys)
{
	if (keys == NULL)
		return;
	for (size_t i = 0; i < keys->count; i++) {
		OPENSSL_cleanse(keys->items[i].secret, keys->items[i].secret_len);
		free(keys->items[i].secret);
		free(keys->items[i].name);
	}
	free(keys->items);
	free(keys);
}

/* Check a delivery's signature against the key it names. */
int
ably_keys_verify(const struct ably_keys *keys, const char *key_name,
    const char *signature, const void *body, size_t len, char *err, size_t errlen)
{
	const struct ably_key *key = NULL;
	unsigned char mac[EVP_MAX_MD_SIZE], *presented;
	char shown[65];
	unsigned int mac_len = 0;
	size_t presented_len;
	int match;

	if (key_name == NULL || *key_name == '\0') {
		keys_fail(err, errlen, "%s", ably_keys_strerror(ABLY_KEYS_ENOKEY));
		return ABLY_KEYS_ENOKEY;
	}
	for (size_t i = 0; keys != NULL && i < keys->count; i++) {
		if (strcmp(keys->items[i].name, key_name) == 0)
			key = &keys->items[i];
	}
	if (key == NULL) {
		/* The name is the client's: at most 64 bytes, cut whole, and UTF-8. */
		utf8_sanitize(shown, sizeof shown, key_name, strnlen(key_name, 4 * 64));
		snprintf(err, errlen, "X-Ably-Key names an unknown key: %s", shown);
		return ABLY_KEYS_EUNKNOWNKEY;
	}
	if (signature == NULL || *signature == '\0') {
		keys_fail(err, errlen, "%s", ably_keys_strerror(ABLY_KEYS_ENOSIGNATURE));
		return ABLY_KEYS_ENOSIGNATURE;
	}
	if (HMAC(EVP_sha256(), key->secret, (int)key->secret_len, body, len, mac,
	    &mac_len) == NULL) {
		snprintf(err, errlen, "%s", ably_keys_strerror(ABLY_KEYS_EHMAC));
		return ABLY_KEYS_EHMAC;
	}
	if (base64_decode(signature, strlen(signature), &presented, &presented_len) != 0) {
		keys_fail(err, errlen, "X-Ably-Signature is not base64");
		return ABLY_KEYS_EBADSIGNATURE;
	}
	match = presented_len == mac_len && mac_len == ABLY_SIGNATURE_SIZE &&
	    CRYPTO_memcmp(presented, mac, mac_len) == 0;
	free(presented);
	OPENSSL_cleanse(mac, sizeof mac);
	if (!match) {
		keys_fail(err, errlen, "X-Ably-Signature does not match the body (key %.64s)",
		    key->name);
		return ABLY_KEYS_EBADSIGNATURE;
	}
	return ABLY_KEYS_OK;
}
