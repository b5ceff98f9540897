/*
 * What a notification says, independent of the provider: the content of a POST /v1/push
 * or of a room message. payload.c turns it into APNs and FCM request bodies.
 */
#ifndef PUSHRELAY_NOTIFICATION_H
#define PUSHRELAY_NOTIFICATION_H

#include <stdint.h>

#include <jansson.h>

#include "model.h"

#define NOTIFICATION_TEXT_MAX 4096	/* title or body, in bytes, before shortening */
#define NOTIFICATION_COLLAPSE_ID_MAX 64	/* apns-collapse-id limit */
#define NOTIFICATION_THREAD_ID_MAX 256
#define NOTIFICATION_TTL_MAX 2419200	/* 28 days, FCM's maximum */

enum notification_priority {
	NOTIFICATION_PRIORITY_HIGH = 0,	/* deliver now: APNs 10, FCM HIGH */
	NOTIFICATION_PRIORITY_NORMAL,	/* may be batched: APNs 5, FCM NORMAL */
};

struct notification {
	char *title;			/* NULL when none */
	char *body;			/* NULL when none */
	json_t *data;			/* object of string values, or NULL */
	/*
	 * Or the data's members already serialized ("room":"r1","count":"1"), as
	 * payload_members_text() writes them: string values, no key named "aps". The
	 * router fills it for room messages, which spares a JSON object per message.
	 */
	char *data_members;
	int64_t badge;			/* -1: leave the app's badge alone */
	char *sound;			/* NULL: silent */
	char *thread_id;		/* groups notifications: APNs thread-id, FCM tag */
	char *collapse_id;		/* replaces an undelivered one with the same id */
	enum notification_priority priority;
	int64_t ttl;			/* seconds to keep trying; -1: provider default */
	int content_available;
	int mutable_content;
	char *interruption_level;	/* passive | active | time-sensitive | critical */
	json_t *apns;			/* {"headers":{...},"payload":{...}} merged last */
	json_t *fcm;			/* merged into the FCM message last */
};

/* An empty notification: no badge change, high priority, default TTL. */
void notification_init(struct notification *n);
/*
 * Fill n from a JSON object (the "notification" of POST /v1/push); field names in err
 * are prefixed with prefix ("notification."). -1 with err set leaves n empty.
 */
int notification_from_json(const json_t *object, const char *prefix, struct notification *n,
    struct model_error *err);
void notification_free(struct notification *n);

#endif
