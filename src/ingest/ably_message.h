/*
 * The entries of an Ably webhook delivery, one at a time: a message or a presence
 * entry into a room event (the rules are in source_ably.h), and the pieces the
 * delivery shapes share with them: skips, fields and channels. Only source_ably.c
 * calls this, for each entry of a delivery it unpacked; pure functions, any thread.
 */
#ifndef PUSHRELAY_ABLY_MESSAGE_H
#define PUSHRELAY_ABLY_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "source_ably.h"

#define ABLY_PATH_MAX 128		/* "items[2].data.messages[0]" */
#define ABLY_WHY_MAX 256		/* the reason of a skip */

/* What a translation has produced so far: out, and what its arrays can hold. */
struct ably_translation {
	struct ably_result *out;
	size_t events_cap;
	size_t skips_cap;
};

/* Where the entries of one item or envelope go. */
struct ably_channel {
	char *room;
	int chat_room;			/* the channel was ROOM::$chat */
	int64_t ts;			/* the item's or envelope's timestamp, 0 if none */
};

/* Record a skip of kind: "PATH: WHAT", made valid UTF-8. */
void ably_message_skip(struct ably_translation *t, enum ably_skip_kind kind,
    const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/*
 * An optional string member: 0 and *out set, 1 if absent or null, -1 if of another
 * type (why, of ABLY_WHY_MAX bytes, set).
 */
int ably_message_string_member(const json_t *object, const char *key, const char **out,
    char *why);
/* An optional millisecond timestamp member: 0 (or -1 with why set); absent leaves *ts. */
int ably_message_timestamp_member(const json_t *object, const char *key, int64_t *ts,
    char *why);
/* Split a channel name into a room, without the Ably Chat suffix; -1 with why set. */
int ably_message_channel_open(struct ably_channel *channel, const char *name, int64_t ts,
    char *why);
void ably_message_channel_close(struct ably_channel *channel);

/* Translate one raw message into a message, message.update or message.delete event. */
void ably_message_translate(struct ably_translation *t, const json_t *message,
    const struct ably_channel *channel, const char *path);
/* Translate one presence entry into presence.enter, presence.leave or presence.update. */
void ably_message_translate_presence(struct ably_translation *t, const json_t *entry,
    const struct ably_channel *channel, const char *path);

#endif
