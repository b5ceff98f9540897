/*
 * What a room notification says: the title, the body and the data of one message's
 * notification, or of several messages' coalesced into one ("3 new messages: ..."),
 * with the message's push object overriding them.
 *
 * Owns no state. The router and its pieces (coalesce, dispatch) call it on the event
 * loop's thread; it is pure apart from a warning logged when overrides are ignored.
 *
 * Title: the room's name, else the sender's name, else the room id. Body: "sender:
 * text" (the sender's name, else its client id), "N new messages: sender: text" for
 * N > 1, cut to NOTIFICATION_TEXT_MAX bytes on a UTF-8 boundary. Data: room,
 * message_id, sender (the client id) and count (decimal), all strings. A push
 * object's title, body, data (merged over the defaults), apns and fcm override
 * those; when they do not make a valid notification (as POST /v1/push checks it),
 * the overrides are dropped, with a warning, and the defaults go.
 *
 * Collapse id: "m-" and the first 16 bytes of SHA-256(room, a NUL byte, message id)
 * in base64url without padding (22 characters), of the latest message: the same on every instance and after every restart,
 * so a notification sent again (at-least-once delivery after a crash) replaces its
 * first copy on the phone instead of showing twice (apns-collapse-id; FCM's
 * android.collapse_key and the apns-collapse-id of its apns block).
 */
#ifndef PUSHRELAY_NOTIFY_TEXT_H
#define PUSHRELAY_NOTIFY_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct notification;

/* The message a notification tells of (the latest one, when several are coalesced). */
struct notify_message {
	const char *room;
	const char *id;
	const char *sender;		/* the sender's client id ("" when anonymous) */
	const char *sender_name;	/* NULL when none */
	const char *room_name;		/* NULL when none */
	const char *text;		/* NULL: empty */
	json_t *push;			/* the message's push overrides, or NULL */
};

/* "m-" + 22 characters + NUL. */
#define NOTIFY_COLLAPSE_ID_SIZE 25

/*
 * The collapse id of a message's notification (see above): 0, or -1 with out empty
 * when OpenSSL cannot hash (out of memory). Any thread.
 */
int notify_collapse_id(const char *room, const char *message_id,
    char out[NOTIFY_COLLAPSE_ID_SIZE]);

/* Return codes. */
#define NOTIFY_TEXT_OK 0
#define NOTIFY_TEXT_EINVALID (-1)	/* even the defaults do not make a notification */

/*
 * Fill out (initialized here; the caller frees it with notification_free) with the
 * notification of count messages, latest the newest. badge >= 0 sets the badge;
 * -1 leaves it to each recipient's delivery. NOTIFY_TEXT_OK, or NOTIFY_TEXT_EINVALID
 * with out empty.
 */
int notify_text_build(const struct notify_message *latest, size_t count, int64_t badge,
    struct notification *out);

#endif
