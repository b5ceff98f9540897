/*
 * Allocation that never returns NULL: running out of memory ends the daemon. Every
 * module uses it, on any thread.
 */
#ifndef PUSHRELAY_XMALLOC_H
#define PUSHRELAY_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
