/*
 * Dispatch: one notification to one recipient's devices, a delivery per device, and
 * the contents of messages on their way, so that an edit changes what has not left
 * yet and a deletion cancels it.
 *
 * A message sent at once (no coalescing) is built once and shared by all its
 * recipients (struct dispatch_message, a badge spliced in per delivery); it is kept
 * by (room, message id) while anyone holds it: the router while it routes the
 * message, and every send of it until its deliveries end. A coalesced notification
 * (dispatch_batch_send) has a content of its own, which edits do not reach (coalesce
 * applies them before it is built).
 *
 * A send ends when its last delivery has: sent, failed for good, or its token was
 * removed. Then it releases its trackers, so that the events it came from may be
 * acknowledged; a delivery dropped at shutdown abandons them instead. Each device a
 * message was sent to is reported through sent() (the notified marks).
 *
 * Owns the messages on their way and the sends (struct dispatch, which only
 * dispatch.c sees). The router calls every function on the event loop's thread; the
 * callback runs there too, from within the delivery layer.
 */
#ifndef PUSHRELAY_DISPATCH_H
#define PUSHRELAY_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

struct delivery_layer;
struct device_target;
struct notification;
struct notify_message;
struct tracker;
struct dispatch;
struct dispatch_message;

/* Return codes. */
#define DISPATCH_OK 0
#define DISPATCH_ENOTFOUND (-1)		/* no such message on its way */
#define DISPATCH_EINVALID (-2)		/* the edit does not make a notification */

/* A device was sent a message. */
typedef void dispatch_sent_fn(const char *room, const char *message_id, const char *device_id,
    void *arg);

struct dispatch_stats {
	uint64_t notifications;		/* sends started: one per recipient */
	size_t messages;		/* messages on their way */
};

/* Sends go to delivery; sent() hears of each device a message was sent to. */
struct dispatch *dispatch_new(struct delivery_layer *delivery, dispatch_sent_fn *sent,
    void *arg);
/* Free, once no send is left and no message is held. */
void dispatch_free(struct dispatch *dispatch);
void dispatch_get_stats(const struct dispatch *dispatch, struct dispatch_stats *stats);

/*
 * The shared content of a message sent at once, from n (taken over), its badge left to
 * each delivery. The caller holds the one reference. message gives its key and sender.
 */
struct dispatch_message *dispatch_message_new(struct dispatch *dispatch,
    const struct notify_message *message, struct notification *n);
void dispatch_message_release(struct dispatch_message *message);
/*
 * Send the message to one recipient: count targets (the array and its targets taken
 * over), with the recipient's badge; tracker is held until the send ends. now: ms.
 */
void dispatch_message_send(struct dispatch_message *message, struct tracker *tracker,
    struct device_target **targets, size_t count, int64_t badge, int64_t now);

/*
 * Send n (taken over, its badge in it) to one recipient for count messages of room:
 * message_ids, trackers and targets (arrays and elements) are taken over; the trackers'
 * references pass to the send. now: ms.
 */
void dispatch_batch_send(struct dispatch *dispatch, const char *room, struct notification *n,
    char **message_ids, struct tracker **trackers, size_t count,
    struct device_target **targets, size_t target_count, int64_t now);

/*
 * A deletion: fail, with reason, the deliveries of (room, message_id) not handed to a
 * provider yet. DISPATCH_OK with *cancelled, or DISPATCH_ENOTFOUND.
 */
int dispatch_cancel(struct dispatch *dispatch, const char *room, const char *message_id,
    const char *reason, size_t *cancelled);
/*
 * An edit: what the deliveries of edit's message not sent yet say becomes edit's text
 * (the message keeps its sender). DISPATCH_OK, DISPATCH_ENOTFOUND or DISPATCH_EINVALID.
 */
int dispatch_edit(struct dispatch *dispatch, const struct notify_message *edit);

#endif
