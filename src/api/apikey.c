/* API key file handling and constant-time key checks. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "apikey.h"
#include "log.h"
#include "secret_file.h"
#include "xmalloc.h"

#define APIKEY_DIGEST_SIZE 32
#define APIKEY_RANDOM_BYTES 32
#define APIKEY_FILE_MAX (1024 * 1024)

struct apikeys {
	unsigned char (*digests)[APIKEY_DIGEST_SIZE];
	size_t count;
	/*
	 * SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 look the implementation up
	 * again on every digest, which cost more than the digest of a key itself.
	 */
	EVP_MD *sha256;
};

/* The SHA-256 of a key: 0, or -1 if OpenSSL could not compute it. */
static int
digest(const EVP_MD *md, const char *key, size_t len, unsigned char out[APIKEY_DIGEST_SIZE])
{
	unsigned int outlen = APIKEY_DIGEST_SIZE;

	if (md == NULL || EVP_Digest(key, len, out, &outlen, md, NULL) != 1)
		return -1;
	return 0;
}

/* Strip a comment and surrounding white space in place. */
static char *
trim_line(char *line)
{
	char *end, *hash = strchr(line, '#');

	if (hash != NULL)
		*hash = '\0';
	while (*line == ' ' || *line == '\t')
		line++;
	end = line + strlen(line);
	while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
	    end[-1] == '\r'))
		*--end = '\0';
	return line;
}

int
apikey_load(const char *path, struct apikeys **out, char *err, size_t errlen)
{
	struct secret_file file;
	struct apikeys *keys;
	char *line, *next, *end, *key, why[128];
	size_t lineno = 0;

	if (secret_file_read(path, "API key file", APIKEY_FILE_MAX, &file, why,
	    sizeof why) != 0) {
		snprintf(err, errlen, "API key file %s: %s", path, why);
		return -1;
	}
	keys = xcalloc(1, sizeof *keys);
	keys->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	end = file.data + file.len;
	for (line = file.data; line < end; line = next) {
		if ((next = memchr(line, '\n', (size_t)(end - line))) != NULL)
			*next++ = '\0';
		else
			next = end;	/* the last line ends at the NUL after the data */
		lineno++;
		key = trim_line(line);
		if (*key == '\0')
			continue;
		if (strlen(key) < APIKEY_MIN_LENGTH || strlen(key) > APIKEY_MAX_LENGTH ||
		    strpbrk(key, " \t") != NULL) {
			snprintf(err, errlen, "%s:%zu: an API key must be %d to %d characters "
			    "without spaces", path, lineno, APIKEY_MIN_LENGTH, APIKEY_MAX_LENGTH);
			goto fail;
		}
		keys->digests = xreallocarray(keys->digests, keys->count + 1,
		    sizeof *keys->digests);
		if (digest(keys->sha256, key, strlen(key), keys->digests[keys->count++]) != 0) {
			snprintf(err, errlen, "%s:%zu: cannot compute the key's SHA-256", path,
			    lineno);
			goto fail;
		}
	}
	if (keys->count == 0) {
		snprintf(err, errlen, "API key file %s has no keys", path);
		goto fail;
	}
	secret_file_free(&file);
	*out = keys;
	return 0;
fail:
	secret_file_free(&file);
	apikey_free(keys);
	return -1;
}

int
apikey_generate_file(const char *path, char *err, size_t errlen)
{
	unsigned char random[APIKEY_RANDOM_BYTES];
	char text[APIKEY_RANDOM_BYTES * 2 + 2];
	size_t len;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 && errno == EEXIST)
		return 1;
	if (fd == -1) {
		snprintf(err, errlen, "cannot create API key file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (RAND_bytes(random, sizeof random) != 1) {
		snprintf(err, errlen, "cannot create API key file %s: no randomness", path);
		close(fd);
		unlink(path);
		return -1;
	}
	for (size_t i = 0; i < sizeof random; i++)
		snprintf(text + 2 * i, 3, "%02x", random[i]);
	len = strlen(text);
	text[len++] = '\n';
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write API key file %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		OPENSSL_cleanse(text, sizeof text);
		return -1;
	}
	close(fd);
	OPENSSL_cleanse(text, sizeof text);
	OPENSSL_cleanse(random, sizeof random);
	return 0;
}

int
apikey_match(const struct apikeys *keys, const char *presented, size_t len,
    char id[APIKEY_ID_SIZE])
{
	unsigned char d[APIKEY_DIGEST_SIZE];
	int match = 0;

	if (id != NULL)
		id[0] = '\0';
	if (keys == NULL)
		return 0;
	if (digest(keys->sha256, presented, len, d) != 0) {
		log_error("cannot compute an API key's SHA-256; refusing it", NULL);
		return 0;
	}
	/* Compare against every key, so the time does not tell which one matched. */
	for (size_t i = 0; i < keys->count; i++)
		match |= CRYPTO_memcmp(d, keys->digests[i], APIKEY_DIGEST_SIZE) == 0;
	/* The presented key is the matched key: its digest names it. */
	if (match && id != NULL)
		snprintf(id, APIKEY_ID_SIZE, "k-%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
	OPENSSL_cleanse(d, sizeof d);
	return match;
}

int
apikey_check(const struct apikeys *keys, const char *presented, size_t len)
{
	return apikey_match(keys, presented, len, NULL);
}

size_t
apikey_count(const struct apikeys *keys)
{
	return keys != NULL ? keys->count : 0;
}

void
apikey_free(struct apikeys *keys)
{
	if (keys == NULL)
		return;
	EVP_MD_free(keys->sha256);
	free(keys->digests);
	free(keys);
}
