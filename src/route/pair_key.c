/* Two ids as one map key. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "pair_key.h"
#include "xmalloc.h"

/* "a\0b\0", allocated. */
char *
pair_key_new(const char *a, const char *b, size_t *len)
{
	size_t la = strlen(a), lb = strlen(b);
	char *key = xmalloc(la + lb + 2);

	memcpy(key, a, la + 1);
	memcpy(key + la + 1, b, lb + 1);
	*len = la + 1 + lb;
	return key;
}

/* "a\0b\0" in buf when it fits, else allocated. */
char *
pair_key_into(char *buf, size_t bufsize, const char *a, const char *b, size_t *len)
{
	size_t la = strlen(a), lb = strlen(b);
	char *key = la + lb + 2 <= bufsize ? buf : xmalloc(la + lb + 2);

	memcpy(key, a, la + 1);
	memcpy(key + la + 1, b, lb + 1);
	*len = la + 1 + lb;
	return key;
}

/* What follows the first id and its NUL. */
const char *
pair_key_second(const char *key)
{
	return key + strlen(key) + 1;
}
