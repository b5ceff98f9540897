/*
 * A held message as the redis state keeps it in a bucket (docs/state-redis.md): the
 * fields of a notify_message as one JSON object,
 *
 *	{"n": ORDER, "ts": MS, "id": ..., "sender": ..., "sender_name": ..., "room_name": ...,
 *	 "text": ..., "push": "the push overrides as JSON text"}
 *
 * where n, the message's place in its bucket, is added by the script that holds it;
 * ts is when the message was posted (its event's ts, else when the instance that held
 * it took it), which orders a bucket whose messages came through several instances;
 * and the optional fields are absent when the message has none. push is kept as text
 * so that a script may decode and encode an entry (an edit) without touching it.
 *
 * What is read back from Redis is outside input: state_bucket_parse checks every
 * field as the event parser would (ids, UTF-8, lengths, the push limits). Pure
 * functions: any thread.
 */
#ifndef PUSHRELAY_STATE_BUCKET_H
#define PUSHRELAY_STATE_BUCKET_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "notify_text.h"

/* One entry of a bucket, at most (a message's fields fit several times over). */
#define STATE_BUCKET_ENTRY_MAX (64 * 1024)

/* A held message read back. */
struct state_held {
	int64_t order;
	int64_t ts;			/* ms; 0 when absent */
	char *id;
	char *sender;			/* "" when anonymous */
	char *sender_name;		/* NULL when none */
	char *room_name;		/* NULL when none */
	char *text;			/* NULL when none */
	json_t *push;			/* NULL when none */
};

/*
 * The entry of m posted at ts (ms; 0: left out), without n, allocated; NULL only if it
 * is over STATE_BUCKET_ENTRY_MAX.
 */
char *state_bucket_encode(const struct notify_message *m, int64_t ts);
/* Order held messages oldest first: by ts, then by the order they were held in. */
int state_held_compare(const void *a, const void *b);
/*
 * Read an entry of len bytes: 0 with out filled (free it with state_held_free), or
 * -1 with err saying what is wrong and nothing allocated.
 */
int state_bucket_parse(const char *text, size_t len, struct state_held *out, char *err,
    size_t errlen);
void state_held_free(struct state_held *held);
/* A held message as notify_text.h takes it (pointers into held; room is the caller's). */
void state_held_message(const struct state_held *held, const char *room,
    struct notify_message *out);

#endif
