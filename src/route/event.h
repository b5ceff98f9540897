/*
 * The one room-event model every source produces (docs/events.md is the contract
 * chat servers integrate against). One JSON object per event:
 *
 *	message		{type, room, id, client_id, text, ts; room_name, sender_name,
 *			 mentions[], push {title, body, data, apns, fcm, skip}}
 *	message.update	{type, room, id, ...the message fields that changed}
 *	message.delete	{type, room, id}
 *	presence.enter | presence.leave | presence.update
 *			{type, room, client_id, connection_id}
 *	presence.sync	{type, room, present[] (client ids)}
 *	member.join | member.leave
 *			{type, room, client_id}
 *	read		{type, room, client_id, up_to (a message id)}
 *
 * ts is milliseconds since the epoch (a number) or an RFC 3339 string.
 *
 * The functions are room_event_*: libevent already owns the event_* names.
 *
 * The sources (src/ingest/) parse events on the event loop and hand them to the
 * router's sink (source.h). Parsing keeps no state: any thread may call it.
 */
#ifndef PUSHRELAY_EVENT_H
#define PUSHRELAY_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define EVENT_TEXT_MAX 4096		/* message text kept, in bytes: longer is cut */
#define EVENT_NAME_MAX 256		/* room_name, sender_name, in bytes */
/*
 * Limits on what one event carries (docs/events.md lists them): an event over any
 * of them is malformed, on the fast path and the generic one alike.
 */
#define EVENT_MENTIONS_MAX 1000		/* mentions: ids */
#define EVENT_PRESENT_MAX 10000		/* presence.sync present: client ids */
#define EVENT_PUSH_DATA_MAX 100		/* push.data: members */
#define EVENT_PUSH_JSON_MAX 4096	/* push.data, push.apns, push.fcm: bytes as JSON */
/* One event's JSON text (a Pub/Sub message, a stream entry), in bytes: a full sync fits. */
#define EVENT_JSON_MAX (2 * 1024 * 1024)

enum event_type {
	EVENT_MESSAGE = 0,
	EVENT_MESSAGE_UPDATE,
	EVENT_MESSAGE_DELETE,
	EVENT_PRESENCE_ENTER,
	EVENT_PRESENCE_LEAVE,
	EVENT_PRESENCE_UPDATE,
	EVENT_PRESENCE_SYNC,
	EVENT_MEMBER_JOIN,
	EVENT_MEMBER_LEAVE,
	EVENT_READ,
};

enum event_parse_result {
	EVENT_OK = 0,
	EVENT_EMALFORMED = -1,	/* not a valid event: err says why; count, log, skip */
	EVENT_EUNKNOWN = -2,	/* a well-formed object of an unknown type: count, ignore */
};

struct room_event {
	enum event_type type;
	char *room;
	char *id;		/* message id: message, message.update, message.delete */
	char *client_id;	/* sender, presence client, member, reader */
	char *connection_id;	/* presence; NULL when not given */
	char *text;		/* message; NULL when absent */
	int64_t ts;		/* ms; 0 when absent (the receiver fills in now) */
	char *room_name;
	char *sender_name;
	char **mentions;	/* client ids */
	size_t mention_count;
	json_t *push;		/* the message's push overrides, or NULL */
	int push_skip;		/* push.skip: no notification for this message */
	char **present;		/* presence.sync: client ids */
	size_t present_count;
	char *up_to;		/* read: a message id */
	int redelivered;	/* handed before (a pending stream entry, an outbox replay) */
};

const char *room_event_type_name(enum event_type type);

/*
 * Check a message's push overrides (data, apns, fcm: of the types docs/events.md
 * gives) against the limits above: 0, or EVENT_EMALFORMED with err naming the field
 * as prefix.FIELD ("push.data: must have at most 100 members"). room_event_parse
 * checks its own; a source that builds push objects itself (ably.c) calls this.
 */
int room_event_check_push_limits(const json_t *push, const char *prefix, char *err,
    size_t errlen);

/*
 * Parse one event object. room, when the object has none, comes from the source
 * (a Pub/Sub channel name, an Ably channel); NULL otherwise. On EVENT_EMALFORMED err
 * names the field and the problem ("client_id: is required"); on
 * EVENT_EUNKNOWN it names the type. Nothing is allocated unless EVENT_OK.
 */
int room_event_parse(const json_t *object, const char *room, struct room_event *out, char *err,
    size_t errlen);
/*
 * Parse JSON text holding one event object: the fast path when it handles the text,
 * else the generic one. Either way the result is what the generic path gives. Text
 * over EVENT_JSON_MAX bytes is malformed, unread.
 */
int room_event_parse_text(const char *text, size_t len, const char *room,
    struct room_event *out, char *err, size_t errlen);

/*
 * The two halves of room_event_parse_text, exposed for the tests that prove them
 * equivalent. The generic path parses with jansson: it is the reference, handles
 * any text and writes every "not valid JSON" error. The fast path reads the common
 * flat events straight from the text, with the generic path's result (an unknown
 * type or a bad field included); for anything else it returns EVENT_FAST_DEFERRED,
 * with nothing allocated and err untouched, leaving the text to the generic path.
 */
#define EVENT_FAST_DEFERRED 1
int room_event_parse_text_generic(const char *text, size_t len, const char *room,
    struct room_event *out, char *err, size_t errlen);
int room_event_parse_text_fast(const char *text, size_t len, const char *room,
    struct room_event *out, char *err, size_t errlen);

/* Room for any reason a parse writes, NUL included: longer ones are cut. */
#define EVENT_REASON_MAX 256

/* An element of a batch that is not a valid event: where, and why. */
struct room_event_skip {
	size_t index;
	char *reason;
};

/* The elements of a batch read by the fast path. */
struct room_event_batch {
	struct room_event *events;		/* the valid ones, in order; never NULL */
	size_t count;
	struct room_event_skip *skipped;	/* the others, malformed or unknown, in order */
	size_t skipped_count;
};

/*
 * Read a batch body, {"events":[...]} with events its only field, without a
 * jansson tree: EVENT_OK with every element decided as room_event_parse() decides
 * it (room from the element alone) and the reason written into EVENT_REASON_MAX
 * bytes. It takes only a body that jansson reads as such an object whose array
 * holds 1 to max_events elements, each one the single-event fast path reads;
 * anything else, valid or not, gets EVENT_FAST_DEFERRED with nothing allocated,
 * leaving the body to jansson and its exact errors.
 */
int room_event_parse_batch_fast(const char *text, size_t len, size_t max_events,
    struct room_event_batch *out);
/* Free what the batch still holds (the caller may have taken the events). */
void room_event_batch_free(struct room_event_batch *batch);

void room_event_free(struct room_event *event);

#endif
