/* What a room notification says: defaults, and the message's overrides merged over them. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base64.h"
#include "log.h"
#include "notification.h"
#include "notify_text.h"
#include "payload.h"
#include "utf8.h"
#include "xmalloc.h"

/* The default body, "sender: text", cut to what a notification may carry. */
static char *
notify_text_body(const struct notify_message *latest, size_t count, const char *sender)
{
	const char *text = latest->text != NULL ? latest->text : "";
	char *body;
	size_t len;

	if (count > 1)
		body = xasprintf("%zu new messages: %s: %s", count, sender, text);
	else
		body = xasprintf("%s: %s", sender, text);
	/* A name and a text at their limits exceed it: the payload shortens it anyway. */
	if ((len = strlen(body)) > NOTIFICATION_TEXT_MAX)
		body[utf8_cut(body, len, NOTIFICATION_TEXT_MAX)] = '\0';
	return body;
}

int
notify_collapse_id(const char *room, const char *message_id, char out[NOTIFY_COLLAPSE_ID_SIZE])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *text;
	int ok;

	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, room, strlen(room) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, message_id, strlen(message_id)) == 1 &&
	    EVP_DigestFinal_ex(ctx, digest, &len) == 1 && len >= 16;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		out[0] = '\0';
		return -1;
	}
	/* 16 bytes of the digest: 22 base64url characters. */
	text = base64url_encode(digest, 16);
	snprintf(out, NOTIFY_COLLAPSE_ID_SIZE, "m-%.22s", text);
	free(text);
	return 0;
}

/* The data every room notification carries, as a JSON object. */
static json_t *
notify_text_data(const struct notify_message *latest, const char *count)
{
	json_t *data;

	/* Ids are valid UTF-8 (the event parser checks them), the count is digits. */
	if ((data = json_object()) == NULL ||
	    json_object_set_new_nocheck(data, "room", json_string_nocheck(latest->room)) != 0 ||
	    json_object_set_new_nocheck(data, "message_id",
	    json_string_nocheck(latest->id)) != 0 ||
	    json_object_set_new_nocheck(data, "sender",
	    json_string_nocheck(latest->sender)) != 0 ||
	    json_object_set_new_nocheck(data, "count", json_string_nocheck(count)) != 0)
		fatalx("out of memory building a notification");
	return data;
}

/*
 * Without a push object (the common case) the fields are filled in directly; with
 * one, they go through the validation of POST /v1/push.
 */
int
notify_text_build(const struct notify_message *latest, size_t count, int64_t badge,
    struct notification *out)
{
	json_t *o, *data, *push = latest->push, *v;
	const char *sender = latest->sender_name != NULL ? latest->sender_name : latest->sender;
	const char *title = latest->room_name != NULL ? latest->room_name :
	    latest->sender_name != NULL ? latest->sender_name : latest->room;
	struct model_error err;
	char *body, countbuf[24], collapse[NOTIFY_COLLAPSE_ID_SIZE];
	int rc;

	body = notify_text_body(latest, count, sender);
	snprintf(countbuf, sizeof countbuf, "%zu", count);
	/* Without one (OpenSSL out of memory) the notification still goes, uncollapsed. */
	if (notify_collapse_id(latest->room, latest->id, collapse) != 0)
		log_warn("no collapse id for a notification", "room", latest->room, NULL);
	if (push == NULL) {
		static const char *const keys[] = { "room", "message_id", "sender", "count" };
		const char *values[] = { latest->room, latest->id, latest->sender, countbuf };

		/* Ids, names and the cut body are within the notification's bounds. */
		notification_init(out);
		out->title = xstrdup(title);
		out->body = body;
		out->thread_id = xstrdup(latest->room);
		out->collapse_id = collapse[0] != '\0' ? xstrdup(collapse) : NULL;
		out->data_members = payload_members_text(keys, values, 4);
		if (badge >= 0)
			out->badge = badge;
		return NOTIFY_TEXT_OK;
	}
	data = notify_text_data(latest, countbuf);
	o = json_object();
	json_object_set_new(o, "title", json_string(title));
	json_object_set_new(o, "body", json_string(body));
	free(body);
	json_object_set_new(o, "thread_id", json_string(latest->room));
	if (collapse[0] != '\0')
		json_object_set_new(o, "collapse_id", json_string(collapse));
	if (badge >= 0)
		json_object_set_new(o, "badge", json_integer(badge));
	if (json_is_string(v = json_object_get(push, "title")))
		json_object_set(o, "title", v);
	if (json_is_string(v = json_object_get(push, "body")))
		json_object_set(o, "body", v);
	if (json_is_object(v = json_object_get(push, "data"))) {
		json_t *merged = json_deep_copy(data);

		json_object_update(merged, v);
		json_object_set_new(o, "data", merged);
	} else
		json_object_set(o, "data", data);
	if (json_is_object(v = json_object_get(push, "apns")))
		json_object_set(o, "apns", v);
	if (json_is_object(v = json_object_get(push, "fcm")))
		json_object_set(o, "fcm", v);
	rc = notification_from_json(o, "push.", out, &err);
	if (rc != 0) {
		/* The chat server's overrides do not make a notification: use the defaults. */
		log_warn("message push overrides ignored", "room", latest->room, "message_id",
		    latest->id, "error", err.message, NULL);
		json_object_del(o, "apns");
		json_object_del(o, "fcm");
		json_object_set(o, "data", data);
		if (json_is_string(json_object_get(push, "title")) ||
		    json_is_string(json_object_get(push, "body"))) {
			json_object_set_new(o, "title", json_string(title));
			body = notify_text_body(latest, count, sender);
			json_object_set_new(o, "body", json_string(body));
			free(body);
		}
		rc = notification_from_json(o, "push.", out, &err);
	}
	json_decref(data);
	json_decref(o);
	return rc == 0 ? NOTIFY_TEXT_OK : NOTIFY_TEXT_EINVALID;
}
