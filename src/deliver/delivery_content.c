/*
 * The content every delivery of one notification shares: the notification and its
 * APNs and FCM payloads, built the first time a provider needs them.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "xmalloc.h"

struct push_content *
delivery_content_new(struct notification *notification, int badge_per_recipient)
{
	struct push_content *c = xcalloc(1, sizeof *c);

	c->refcount = 1;
	c->notification = *notification;
	notification_init(notification);
	c->badge_per_recipient = badge_per_recipient;
	return c;
}

void
delivery_content_prepare(struct push_content *c, enum device_platform platform)
{
	if (platform == DEVICE_PLATFORM_APNS && !c->apns_built) {
		c->apns_error = payload_apns_build(&c->notification, c->badge_per_recipient,
		    &c->apns);
		c->apns_built = 1;
	} else if (platform == DEVICE_PLATFORM_FCM && !c->fcm_built) {
		c->fcm_error = payload_fcm_build(&c->notification, c->badge_per_recipient,
		    &c->fcm);
		c->fcm_built = 1;
	}
}

void
delivery_content_ref(struct push_content *content)
{
	content->refcount++;
}

void
delivery_content_update(struct push_content *c, struct notification *notification)
{
	notification_free(&c->notification);
	payload_free(&c->apns);
	payload_free(&c->fcm);
	c->notification = *notification;
	notification_init(notification);
	/* Rebuilt on their next use. */
	c->apns_built = c->fcm_built = 0;
	c->apns_error = c->fcm_error = PAYLOAD_OK;
}

void
delivery_content_unref(struct push_content *content)
{
	if (content == NULL || --content->refcount > 0)
		return;
	notification_free(&content->notification);
	payload_free(&content->apns);
	payload_free(&content->fcm);
	free(content);
}
