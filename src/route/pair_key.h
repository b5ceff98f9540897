/*
 * Two ids as one map key, "a\0b": how the route pieces key what they keep per
 * (room, client), (client, room) or (room, message). Pure functions: any thread.
 */
#ifndef PUSHRELAY_PAIR_KEY_H
#define PUSHRELAY_PAIR_KEY_H

#include <stddef.h>

/* Room for a pair key of two ids on the stack (ids are at most MODEL_ID_MAX bytes). */
#define PAIR_KEY_STACK (2 * 128 + 2)

/* "a\0b" and a NUL, allocated; *len is its length without the last NUL. */
char *pair_key_new(const char *a, const char *b, size_t *len);
/* The same in buf when it fits (bufsize bytes), else allocated: free it if != buf. */
char *pair_key_into(char *buf, size_t bufsize, const char *a, const char *b, size_t *len);
/* The second id of a pair key. */
const char *pair_key_second(const char *key);

#endif
