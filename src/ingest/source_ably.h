/*
 * Ably outbound webhooks (integration rules) translated into room events: the three
 * delivery shapes, the outbox form a webhook is kept in, and its replay. The HTTP
 * source (source_http.c) calls it for each POST /v1/ingest/ably that api_ably.c
 * authenticated (the signing keys are ably_keys.h's), and again for each Ably row of
 * the outbox at start; ably_message.c translates the entries one by one. Pure
 * functions, no I/O, no logging: the HTTP source logs the skips a translation
 * reports, and api_ably.c answers.
 *
 * Shapes, told apart in this order:
 *	non-enveloped	the x-ably-envelope-source or x-ably-envelope-channel header is
 *			present. The body is the message's data alone (its type from the
 *			content type: JSON, text, else bytes); id, client id, connection id
 *			and timestamp come from the x-ably-message-* headers. Presence has
 *			no action header in Ably's list: x-ably-message-action is read when
 *			present (a number or a name) and a presence delivery without it is
 *			malformed. The body carries no name, serial, action or extras, so on a
 *			chat room channel a body that is an object with a string "text" is
 *			taken for a chat message create, and anything else for typing or
 *			reactions; updates and deletes need enveloped rules.
 *	batched		{"items":[...]}: each item's data.channelId and data.messages[] or
 *			data.presence[].
 *	enveloped	an object with a string "source": channel, and messages[] or
 *			presence[]. Which array is present decides, not source (Ably's own
 *			presence example says channel.message); with neither, a source other
 *			than channel.message / channel.presence is skipped as unsupported.
 * Anything else is ABLY_ESHAPE; a body that is not JSON, ABLY_EJSON; msgpack (the
 * rule's other format), ABLY_EMSGPACK; more than ABLY_ITEMS_MAX items or
 * ABLY_ENTRIES_MAX entries, ABLY_ETOOLARGE.
 *
 * Rooms are channel names with a trailing "::$chat" (an Ably Chat room) removed.
 *
 * Messages: encoding is undone right to left (json, base64, utf-8); a cipher+ step
 * skips the message as encrypted, any other step as an unsupported encoding. action
 * (a number, or a name like "message.create" / "message.created") 0 creates, 1 updates,
 * 2 deletes; anything else (3 meta, 4 summary, ...) is skipped. Ably Chat messages
 * (name "chat.message", data {text, metadata}) take their id from serial (else id) and
 * may be created, updated and deleted; other messages take id (else serial) and only
 * creates are translated, with text the data when it is a string, else data.text when
 * that is a string, else "" (docs/events.md: text is required, may be empty, and is
 * cut to EVENT_TEXT_MAX bytes at a character boundary). A create needs clientId (the
 * sender); server publishes without one are skipped as malformed. On a chat room
 * channel only chat.message becomes an event: typing, room reactions and the rest are
 * skipped. ts is timestamp (for an update or delete, version.timestamp when given),
 * else the item's or envelope's, else 0. A delete carries only id and ts.
 *
 * mentions: the union, in order and without repeats, of data.metadata.mentions (an
 * array of client ids) and extras.headers.mentions (an array of client ids, or one
 * string of client ids separated by commas, since Ably Chat headers hold only
 * scalars); at most EVENT_MENTIONS_MAX.
 *
 * The push object made from extras.push is held to room_event_check_push_limits(),
 * its errors naming extras.push.data, .apns, .fcm.
 *
 * extras.push becomes the event's push object (docs/events.md: title, body, data,
 * apns, fcm). Fields it has no place for become the provider overrides Ably makes of
 * them, under Ably's own apns and fcm overrides, which win:
 *	notification.title, .body	title, body (at most EVENT_TEXT_MAX bytes)
 *	notification.sound		apns.payload.aps.sound, fcm.android.notification.sound
 *	notification.collapseKey	apns.payload.aps.thread-id, fcm.android.collapse_key
 *	notification.icon		fcm.android.notification.icon
 *	data				data (non-string values as JSON text; FCM's
 *					reserved keys make the message malformed)
 *	apns				apns-headers as apns.headers (values as strings),
 *					the rest merged into apns.payload
 *	fcm				merged into fcm (the FCM v1 message)
 *	web and anything else		ignored
 *
 * Presence: action 0 absent and 3 leave are presence.leave, 1 present and 2 enter
 * presence.enter, 4 update presence.update (names accepted too); client_id is
 * clientId (required), connection_id connectionId. Presence data is not read.
 *
 * All on the event loop.
 */
#ifndef PUSHRELAY_SOURCE_ABLY_H
#define PUSHRELAY_SOURCE_ABLY_H

#include <stddef.h>

#include "event.h"

#define ABLY_CHAT_SUFFIX "::$chat"

enum ably_error {
	ABLY_OK = 0,
	ABLY_EMSGPACK = -1,		/* application/x-msgpack: 415 */
	ABLY_EJSON = -2,		/* the body is not JSON: 400 */
	ABLY_ESHAPE = -3,		/* JSON of no known delivery shape: 400 */
	ABLY_ETOOLARGE = -4,		/* over ABLY_ITEMS_MAX or ABLY_ENTRIES_MAX: 413 */
};

/*
 * The most one delivery may carry: items of a batched one (Ably bundles at most 1000
 * events into one request), and messages and presence entries of all its items
 * together. A delivery over either is refused whole, nothing translated.
 */
#define ABLY_ITEMS_MAX 1000
#define ABLY_ENTRIES_MAX 10000

/* Why a message, presence entry or batch item was skipped. */
enum ably_skip_kind {
	ABLY_SKIP_MALFORMED = 0,	/* a field is missing or wrong: the detail says which */
	ABLY_SKIP_ENCRYPTED,		/* a cipher+ encoding: undecodable without the key */
	ABLY_SKIP_ENCODING,		/* an encoding step other than json, base64, utf-8 */
	ABLY_SKIP_SOURCE,		/* channel.lifecycle, channel.occupancy, unknown */
	ABLY_SKIP_ACTION,		/* not a create, update or delete we translate */
	ABLY_SKIP_CHAT_OTHER,		/* typing, reactions ...: not chat.message on a room */
};
#define ABLY_SKIP_KINDS 6

enum ably_shape {
	ABLY_SHAPE_BATCHED = 0,
	ABLY_SHAPE_ENVELOPED,
	ABLY_SHAPE_NON_ENVELOPED,
};

struct ably_skip {
	enum ably_skip_kind kind;
	/* Where and why, without data or secrets: "items[2].data.messages[0]: id: ...". */
	char *detail;
};

/* One delivery as the HTTP layer received it; headers are NULL when absent. */
struct ably_request {
	const void *body;
	size_t len;
	const char *content_type;
	/* Non-enveloped deliveries: */
	const char *envelope_source;		/* x-ably-envelope-source */
	const char *envelope_channel;		/* x-ably-envelope-channel */
	const char *message_id;			/* x-ably-message-id */
	const char *message_client_id;		/* x-ably-message-client-id */
	const char *message_connection_id;	/* x-ably-message-connection-id */
	const char *message_timestamp;		/* x-ably-message-timestamp (ms) */
	const char *message_action;		/* x-ably-message-action, if Ably sends it */
};

struct ably_result {
	enum ably_shape shape;
	struct room_event *events;	/* in delivery order */
	size_t count;
	struct ably_skip *skips;	/* in delivery order */
	size_t skip_count;
	size_t skipped[ABLY_SKIP_KINDS];	/* skips by kind */
};

const char *source_ably_strerror(int error);
/* "malformed", "encrypted", "encoding", "source", "action", "chat_other". */
const char *source_ably_skip_kind_name(enum ably_skip_kind kind);

/*
 * Translate a delivery. ABLY_OK: out holds the events and what was skipped and why
 * (free it with source_ably_result_free even when empty). ABLY_EMSGPACK, ABLY_EJSON,
 * ABLY_ESHAPE or ABLY_ETOOLARGE with err set (valid UTF-8): out holds nothing.
 */
int source_ably_translate(const struct ably_request *request, struct ably_result *out,
    char *err, size_t errlen);
void source_ably_result_free(struct ably_result *result);

/* A request's header by its lower-case name: the value, or NULL when absent. */
typedef const char *source_ably_header_fn(const char *name, void *arg);

/*
 * The first of the headers the translation reads that is not UTF-8, or NULL. A
 * webhook with one is refused whole, so that the outbox (JSON) keeps them as they
 * came.
 */
const char *source_ably_header_not_utf8(source_ably_header_fn *header, void *arg);
/* A delivery as source_ably_translate() reads it, from its body and headers. */
void source_ably_request(struct ably_request *request, const void *body, size_t len,
    source_ably_header_fn *header, void *arg);
/*
 * The outbox form of a webhook, {"headers":{...},"body":"base64"}: a restart
 * translates it again exactly as it came. The headers must be UTF-8; NULL only when
 * memory runs out.
 */
char *source_ably_outbox_body(const void *body, size_t len, source_ably_header_fn *header,
    void *arg);
/*
 * Translate an outbox body back into events (taken over by the caller): 0, or -1 if
 * it is not one, or no longer translates.
 */
int source_ably_replay(const char *outbox_body, struct room_event **events,
    size_t *count);

#endif
