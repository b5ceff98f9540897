/*
 * The room-event model: validation of one JSON event object into struct room_event.
 *
 * Fields that are not part of an event's type are ignored, so that chat servers can
 * send more than this daemon reads (and newer events to older daemons). A null value
 * counts as absent. Nothing is allocated unless the event is valid.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "log.h"
#include "model.h"
#include "xmalloc.h"

/* 9999-12-31T23:59:59.999Z: the last time RFC 3339 can write. */
#define EVENT_TS_MAX 253402300799999LL

static const char *const event_type_names[] = {
	[EVENT_MESSAGE] = "message",
	[EVENT_MESSAGE_UPDATE] = "message.update",
	[EVENT_MESSAGE_DELETE] = "message.delete",
	[EVENT_PRESENCE_ENTER] = "presence.enter",
	[EVENT_PRESENCE_LEAVE] = "presence.leave",
	[EVENT_PRESENCE_UPDATE] = "presence.update",
	[EVENT_PRESENCE_SYNC] = "presence.sync",
	[EVENT_MEMBER_JOIN] = "member.join",
	[EVENT_MEMBER_LEAVE] = "member.leave",
	[EVENT_READ] = "read",
};
#define EVENT_TYPE_COUNT (sizeof event_type_names / sizeof event_type_names[0])

/* FCM refuses these data keys (and any starting with "google" or "gcm"). */
static const char *const reserved_data_keys[] = { "from", "message_type", NULL };

/* Where a parse writes its reason. */
struct event_error {
	char *buf;
	size_t len;
};

/* Write the reason for a malformed event; returns EVENT_EMALFORMED. */
static int __attribute__((format(printf, 2, 3)))
event_fail(struct event_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err->buf != NULL && err->len > 0) {
		va_start(ap, fmt);
		vsnprintf(err->buf, err->len, fmt, ap);
		va_end(ap);
	}
	return EVENT_EMALFORMED;
}

const char *
room_event_type_name(enum event_type type)
{
	if ((size_t)type >= EVENT_TYPE_COUNT)
		return "unknown";
	return event_type_names[type];
}

/* The type named name, or -1. */
static int
event_type_from_string(const char *name)
{
	for (size_t i = 0; i < EVENT_TYPE_COUNT; i++) {
		if (strcmp(name, event_type_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

/* A field's value, NULL when absent or null. */
static json_t *
event_field(const json_t *object, const char *field)
{
	json_t *v = json_object_get(object, field);

	return json_is_null(v) ? NULL : v;
}

/* Check that s (of len bytes, from JSON) is an id; what names it in the error. */
static int
event_check_id(const char *s, size_t len, const char *what, struct event_error *err)
{
	struct model_error merr;

	if (strlen(s) != len)
		return event_fail(err, "%s: must not contain control characters", what);
	if (model_validate_id(s, what, &merr) != 0)
		return event_fail(err, "%s", merr.message);
	return 0;
}

/* An id field: 0 with *out a copy (NULL if absent and optional), or EVENT_EMALFORMED. */
static int
event_take_id(const json_t *object, const char *field, int required, char **out,
    struct event_error *err)
{
	json_t *v = event_field(object, field);

	if (v == NULL) {
		if (required)
			return event_fail(err, "%s: is required", field);
		return 0;
	}
	if (!json_is_string(v))
		return event_fail(err, "%s: must be a string", field);
	if (event_check_id(json_string_value(v), json_string_length(v), field, err) != 0)
		return EVENT_EMALFORMED;
	*out = xstrdup(json_string_value(v));
	return 0;
}

/* Length of the longest prefix of s, at most max bytes, that ends on a character. */
static size_t
event_cut_utf8(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	/* Back off continuation bytes (10xxxxxx) so a character is never split. */
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/*
 * A string field of at most max bytes (cut to max when cut is set, else rejected):
 * 0 with *out a copy (NULL if absent and optional), or EVENT_EMALFORMED.
 */
static int
event_take_string(const json_t *object, const char *field, int required, size_t max, int cut,
    char **out, struct event_error *err)
{
	json_t *v = event_field(object, field);
	const char *s;
	size_t len;

	if (v == NULL) {
		if (required)
			return event_fail(err, "%s: is required", field);
		return 0;
	}
	if (!json_is_string(v))
		return event_fail(err, "%s: must be a string", field);
	s = json_string_value(v);
	len = json_string_length(v);
	if (strlen(s) != len)
		return event_fail(err, "%s: must not contain NUL characters", field);
	if (len > max) {
		if (!cut)
			return event_fail(err, "%s: must be at most %zu bytes", field, max);
		len = event_cut_utf8(s, len, max);
	}
	*out = xstrndup(s, len);
	return 0;
}

/* ts: integer milliseconds since the epoch or an RFC 3339 string; 0 when absent. */
static int
event_take_ts(const json_t *object, int64_t *out, struct event_error *err)
{
	json_t *v = event_field(object, "ts");
	int64_t ms;

	if (v == NULL)
		return 0;
	if (json_is_integer(v))
		ms = json_integer_value(v);
	else if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
	    clock_parse_rfc3339(json_string_value(v), &ms) != 0)
		goto bad;
	if (ms < 0 || ms > EVENT_TS_MAX)
		goto bad;
	*out = ms;
	return 0;
bad:
	return event_fail(err, "ts: must be milliseconds since the epoch or an RFC 3339 time");
}

/* An array of ids (present, mentions): 0 with a copy, or EVENT_EMALFORMED. */
static int
event_take_ids(const json_t *object, const char *field, int required, size_t max,
    const char *what, char ***out, size_t *count, struct event_error *err)
{
	json_t *v = event_field(object, field), *item;
	struct event_error quiet = { NULL, 0 };
	char **ids;
	size_t n, i;

	if (v == NULL) {
		if (required)
			return event_fail(err, "%s: is required", field);
		return 0;
	}
	if (!json_is_array(v))
		return event_fail(err, "%s: must be an array of %s", field, what);
	n = json_array_size(v);
	if (n > max)
		return event_fail(err, "%s: must have at most %zu %s", field, max, what);
	json_array_foreach(v, i, item) {
		if (!json_is_string(item) || event_check_id(json_string_value(item),
		    json_string_length(item), field, &quiet) != 0)
			return event_fail(err, "%s: must be an array of %s", field, what);
	}
	ids = n > 0 ? xreallocarray(NULL, n, sizeof *ids) : NULL;
	json_array_foreach(v, i, item)
		ids[i] = xstrdup(json_string_value(item));
	*out = ids;
	*count = n;
	return 0;
}

/* push.data: an object of strings without FCM's reserved keys. */
static int
event_check_push_data(const json_t *data, struct event_error *err)
{
	const char *key;
	json_t *value;

	if (!json_is_object(data))
		return event_fail(err, "push.data: must be an object of strings");
	json_object_foreach((json_t *)data, key, value) {
		if (!json_is_string(value))
			return event_fail(err, "push.data.%s: must be a string", key);
		for (size_t i = 0; reserved_data_keys[i] != NULL; i++) {
			if (strcmp(key, reserved_data_keys[i]) == 0)
				return event_fail(err, "push.data.%s: is a reserved key", key);
		}
		if (strncmp(key, "google", 6) == 0 || strncmp(key, "gcm", 3) == 0)
			return event_fail(err, "push.data.%s: is a reserved key", key);
	}
	return 0;
}

/*
 * push: the message's notification overrides. Its known fields are type-checked and
 * copied into a new object (title, body, data, apns, fcm; NULL if none is set);
 * skip goes to *skip; other fields are ignored.
 */
static int
event_take_push(const json_t *object, json_t **out, int *skip, struct event_error *err)
{
	static const char *const copied[] = { "title", "body", "data", "apns", "fcm", NULL };
	json_t *push = event_field(object, "push"), *copy, *v;

	if (push == NULL)
		return 0;
	if (!json_is_object(push))
		return event_fail(err, "push: must be an object");
	for (size_t i = 0; i < 2; i++) {
		const char *field = copied[i];

		if ((v = event_field(push, field)) == NULL)
			continue;
		if (!json_is_string(v))
			return event_fail(err, "push.%s: must be a string", field);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return event_fail(err, "push.%s: must not contain NUL characters", field);
		if (json_string_length(v) > EVENT_TEXT_MAX)
			return event_fail(err, "push.%s: must be at most %d bytes", field,
			    EVENT_TEXT_MAX);
	}
	if ((v = event_field(push, "data")) != NULL && event_check_push_data(v, err) != 0)
		return EVENT_EMALFORMED;
	if ((v = event_field(push, "apns")) != NULL && !json_is_object(v))
		return event_fail(err, "push.apns: must be an object");
	if ((v = event_field(push, "fcm")) != NULL && !json_is_object(v))
		return event_fail(err, "push.fcm: must be an object");
	if ((v = event_field(push, "skip")) != NULL && !json_is_boolean(v))
		return event_fail(err, "push.skip: must be a boolean");
	*skip = json_is_true(v);

	/* A deep copy: the event outlives the object and may move to another thread. */
	if ((copy = json_object()) == NULL)
		fatalx("out of memory copying push overrides");
	for (size_t i = 0; copied[i] != NULL; i++) {
		if ((v = event_field(push, copied[i])) != NULL &&
		    json_object_set_new(copy, copied[i], json_deep_copy(v)) != 0)
			fatalx("out of memory copying push overrides");
	}
	if (json_object_size(copy) == 0) {
		json_decref(copy);
		copy = NULL;
	}
	*out = copy;
	return 0;
}

/* The fields of a message (all required) or of a message.update (only id). */
static int
event_take_message(const json_t *object, int update, struct room_event *ev,
    struct event_error *err)
{
	if (event_take_id(object, "id", 1, &ev->id, err) != 0 ||
	    event_take_id(object, "client_id", !update, &ev->client_id, err) != 0 ||
	    event_take_string(object, "text", !update, EVENT_TEXT_MAX, 1, &ev->text, err) != 0 ||
	    event_take_ts(object, &ev->ts, err) != 0 ||
	    event_take_string(object, "room_name", 0, EVENT_NAME_MAX, 0, &ev->room_name,
	    err) != 0 ||
	    event_take_string(object, "sender_name", 0, EVENT_NAME_MAX, 0, &ev->sender_name,
	    err) != 0 ||
	    event_take_ids(object, "mentions", 0, EVENT_MENTIONS_MAX, "ids", &ev->mentions,
	    &ev->mention_count, err) != 0 ||
	    event_take_push(object, &ev->push, &ev->push_skip, err) != 0)
		return EVENT_EMALFORMED;
	return 0;
}

/* The room: the object's, else the source's, validated either way. */
static int
event_take_room(const json_t *object, const char *room, struct room_event *ev,
    struct event_error *err)
{
	if (event_field(object, "room") != NULL)
		return event_take_id(object, "room", 1, &ev->room, err);
	if (room == NULL)
		return event_fail(err, "room: is required");
	if (event_check_id(room, strlen(room), "room", err) != 0)
		return EVENT_EMALFORMED;
	ev->room = xstrdup(room);
	return 0;
}

int
room_event_parse(const json_t *object, const char *room, struct room_event *out, char *errbuf,
    size_t errlen)
{
	struct event_error err = { errbuf, errlen };
	struct room_event ev;
	json_t *v;
	const char *name;
	char shown[65];
	int type, rc;

	memset(out, 0, sizeof *out);
	memset(&ev, 0, sizeof ev);
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (!json_is_object(object))
		return event_fail(&err, "an event must be a JSON object");
	if ((v = event_field(object, "type")) == NULL)
		return event_fail(&err, "type: is required");
	if (!json_is_string(v))
		return event_fail(&err, "type: must be a string");
	name = json_string_value(v);
	if ((type = event_type_from_string(name)) < 0) {
		/* The name goes to logs: shorten it and hide control characters. */
		size_t len = event_cut_utf8(name, strlen(name), sizeof shown - 1);

		memcpy(shown, name, len);
		shown[len] = '\0';
		for (char *c = shown; *c != '\0'; c++) {
			if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\'')
				*c = '?';
		}
		event_fail(&err, "unknown event type '%s'", shown);
		return EVENT_EUNKNOWN;
	}
	ev.type = (enum event_type)type;
	if ((rc = event_take_room(object, room, &ev, &err)) != 0)
		goto fail;

	switch (ev.type) {
	case EVENT_MESSAGE:
	case EVENT_MESSAGE_UPDATE:
		rc = event_take_message(object, ev.type == EVENT_MESSAGE_UPDATE, &ev, &err);
		break;
	case EVENT_MESSAGE_DELETE:
		rc = event_take_id(object, "id", 1, &ev.id, &err);
		break;
	case EVENT_PRESENCE_ENTER:
	case EVENT_PRESENCE_LEAVE:
	case EVENT_PRESENCE_UPDATE:
		if ((rc = event_take_id(object, "client_id", 1, &ev.client_id, &err)) == 0)
			rc = event_take_id(object, "connection_id", 0, &ev.connection_id, &err);
		break;
	case EVENT_PRESENCE_SYNC:
		rc = event_take_ids(object, "present", 1, SIZE_MAX, "client ids", &ev.present,
		    &ev.present_count, &err);
		break;
	case EVENT_MEMBER_JOIN:
	case EVENT_MEMBER_LEAVE:
		rc = event_take_id(object, "client_id", 1, &ev.client_id, &err);
		break;
	case EVENT_READ:
		if ((rc = event_take_id(object, "client_id", 1, &ev.client_id, &err)) == 0)
			rc = event_take_id(object, "up_to", 1, &ev.up_to, &err);
		break;
	}
	if (rc != 0)
		goto fail;
	*out = ev;
	return EVENT_OK;
fail:
	room_event_free(&ev);
	return EVENT_EMALFORMED;
}

int
room_event_parse_text(const char *text, size_t len, const char *room, struct room_event *out,
    char *errbuf, size_t errlen)
{
	struct event_error err = { errbuf, errlen };
	json_error_t jerr;
	json_t *object;
	int rc;

	memset(out, 0, sizeof *out);
	object = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (object == NULL)
		return event_fail(&err, "not valid JSON: %s", jerr.text);
	rc = room_event_parse(object, room, out, errbuf, errlen);
	json_decref(object);
	return rc;
}

void
room_event_free(struct room_event *event)
{
	free(event->room);
	free(event->id);
	free(event->client_id);
	free(event->connection_id);
	free(event->text);
	free(event->room_name);
	free(event->sender_name);
	for (size_t i = 0; i < event->mention_count; i++)
		free(event->mentions[i]);
	free(event->mentions);
	json_decref(event->push);
	for (size_t i = 0; i < event->present_count; i++)
		free(event->present[i]);
	free(event->present);
	free(event->up_to);
	memset(event, 0, sizeof *event);
}
