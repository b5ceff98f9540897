/*
 * Request bodies for APNs and FCM, built once per notification and rendered per device.
 *
 * A payload is serialized JSON with splice points where the device token and the badge
 * go, so that a fan-out to N devices serializes once and copies N times. A body that
 * would exceed the provider's limit is shortened at a UTF-8 character boundary, with an
 * ellipsis, until it fits; if even an empty body does not fit, building fails.
 *
 * Built on the event loop: by the providers in send() (payload_content_prepare), by
 * push.c before it accepts a push, and for a room notification's data by notify_text.c.
 * No shared state.
 */
#ifndef PUSHRELAY_PAYLOAD_H
#define PUSHRELAY_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "notification.h"

#define PAYLOAD_APNS_MAX 4096
#define PAYLOAD_FCM_MAX 4096
#define PAYLOAD_SPLICES_MAX 4
/* Room for the digits of the largest badge (notification.c bounds it to 999999). */
#define PAYLOAD_BADGE_DIGITS 10

enum payload_error {
	PAYLOAD_OK = 0,
	PAYLOAD_ETOOBIG = -1,		/* cannot fit even with an empty body */
	PAYLOAD_EOVERRIDE = -2,		/* an override made the payload invalid */
	PAYLOAD_EDATA = -3,		/* the data members do not read back as JSON */
};

enum payload_splice_kind {
	PAYLOAD_SPLICE_TOKEN = 1,	/* the device token, as a JSON string's content */
	PAYLOAD_SPLICE_BADGE,		/* the badge, as a JSON number */
};

struct payload {
	char *text;			/* serialized JSON without the spliced values */
	size_t len;
	size_t splice_at[PAYLOAD_SPLICES_MAX];	/* offsets into text, ascending */
	enum payload_splice_kind splice_kind[PAYLOAD_SPLICES_MAX];
	size_t splices;
	int shortened;			/* the body was shortened to fit */
};

const char *payload_strerror(int error);

/*
 * The APNs body: {"aps":{...}} with alert, badge, sound, thread-id, flags, then the
 * data keys at the top level, then the apns.payload override merged in. with_badge
 * adds a badge splice (for per-recipient unread counts) instead of n->badge.
 */
int payload_apns_build(const struct notification *n, int with_badge, struct payload *out);
/*
 * The FCM HTTP v1 body: {"message":{"token":...,"notification":{...},"data":{...},
 * "android":{...},"apns":{...}}} with the fcm override merged into "message".
 */
int payload_fcm_build(const struct notification *n, int with_badge, struct payload *out);
/*
 * The reference path: the same bodies made as jansson trees, which the two functions
 * above use when there is an override to merge, and tests compare the direct writer with.
 */
int payload_apns_build_generic(const struct notification *n, int with_badge,
    struct payload *out);
int payload_fcm_build_generic(const struct notification *n, int with_badge,
    struct payload *out);

/*
 * The members of a data object of count string values, serialized as the payloads
 * write them, for notification.data_members. Keys and values are valid UTF-8.
 */
char *payload_members_text(const char *const *keys, const char *const *values,
    size_t count);

/* The rendered length for a token of token_len bytes (an upper bound with escaping). */
size_t payload_render_max(const struct payload *p, size_t token_len);
/* Render into buf (size from payload_render_max); returns the length written. */
size_t payload_render(const struct payload *p, const char *token, int64_t badge, char *buf);

void payload_free(struct payload *p);

struct push_content;
/*
 * Build a content's payload for a platform if it is not built yet, setting
 * content->apns_error or fcm_error (PAYLOAD_OK or why it cannot be built). Providers
 * call it in send() before they read content->apns / content->fcm; push.c calls it
 * before accepting a push. A message to iPhones only never builds FCM's. Loop thread.
 */
void payload_content_prepare(struct push_content *content, enum device_platform platform);

#endif
