/*
 * The room-event model: validation of one JSON event object into struct room_event.
 *
 * Fields that are not part of an event's type are ignored, so that chat servers can
 * send more than this daemon reads (and newer events to older daemons). A null value
 * counts as absent. Nothing is allocated unless the event is valid.
 *
 * Objects come two ways: as a jansson tree, or, on the hot path of JSON text from
 * the sources and of batches posted to the API, from a fast scanner that reads flat
 * events without building one. The rules read fields through struct event_object,
 * which hides which way it came, so that both are held to the same rules.
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
#include "utf8.h"
#include "xmalloc.h"

/* 9999-12-31T23:59:59.999Z: the last time RFC 3339 can write. */
#define EVENT_TS_MAX 253402300799999LL

/* The most fields the fast path reads from one object; it defers on more. */
#define EVENT_SCAN_FIELDS_MAX 16
/* The most digits the fast path reads in an integer: any such fits in int64_t. */
#define EVENT_SCAN_DIGITS_MAX 18

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

/* What a field holds, as far as the rules care. */
enum event_value_kind {
	EVENT_VALUE_ABSENT = 0,		/* missing or null: the same to every rule */
	EVENT_VALUE_STRING,
	EVENT_VALUE_INTEGER,
	EVENT_VALUE_ARRAY,
	EVENT_VALUE_OBJECT,		/* only from jansson: the scanner defers on objects */
	EVENT_VALUE_OTHER,		/* a boolean or a real */
};

/* One field's value, read from a jansson object or from scanned text. */
struct event_value {
	enum event_value_kind kind;
	const char *text;	/* a string's bytes (not NUL-terminated); a scanned array's text */
	size_t length;		/* bytes at text */
	size_t count;		/* an array's items */
	int64_t integer;
	const json_t *json;	/* the jansson value, NULL when scanned */
};

/* A field the fast scanner found: key and value point into the text. */
struct event_scanned_field {
	const char *key;
	size_t key_length;
	struct event_value value;
};

/* An event object as the rules read it: a jansson object, or scanned fields. */
struct event_object {
	const json_t *json;
	const struct event_scanned_field *fields;
	size_t field_count;
};

/* A walk over an array's items, in order. */
struct event_items {
	const struct event_value *array;
	size_t index;		/* jansson: the next item */
	const char *next;	/* scanned: where the next item's opening quote is looked for */
};

/*
 * Write the reason for a malformed event; returns EVENT_EMALFORMED. Reasons go to
 * logs and JSON answers, and may quote the text (jansson's errors do, and keys are
 * long): they are cut at a character boundary, and what is not UTF-8 replaced.
 */
static int __attribute__((format(printf, 2, 3)))
event_fail(struct event_error *err, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	/* The reason goes into JSON bodies and logs: cut it on a character boundary. */
	if (err->buf != NULL && err->len > 0) {
		va_start(ap, fmt);
		vsnprintf(text, sizeof text, fmt, ap);
		va_end(ap);
		utf8_sanitize(err->buf, err->len, text, strlen(text));
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

/* The type named by the len bytes at name, or -1. */
static int
event_type_from_name(const char *name, size_t len)
{
	for (size_t i = 0; i < EVENT_TYPE_COUNT; i++) {
		if (strlen(event_type_names[i]) == len &&
		    memcmp(name, event_type_names[i], len) == 0)
			return (int)i;
	}
	return -1;
}

/* A member of a jansson object, NULL when absent or null. */
static json_t *
event_json_get(const json_t *object, const char *field)
{
	json_t *v = json_object_get(object, field);

	return json_is_null(v) ? NULL : v;
}

/* Describe a jansson value (NULL when absent) for the rules. */
static void
event_value_from_json(const json_t *v, struct event_value *out)
{
	memset(out, 0, sizeof *out);
	out->json = v;
	if (v == NULL || json_is_null(v))
		out->kind = EVENT_VALUE_ABSENT;
	else if (json_is_string(v)) {
		out->kind = EVENT_VALUE_STRING;
		out->text = json_string_value(v);
		out->length = json_string_length(v);
	} else if (json_is_integer(v)) {
		out->kind = EVENT_VALUE_INTEGER;
		out->integer = json_integer_value(v);
	} else if (json_is_array(v)) {
		out->kind = EVENT_VALUE_ARRAY;
		out->count = json_array_size(v);
	} else if (json_is_object(v))
		out->kind = EVENT_VALUE_OBJECT;
	else
		out->kind = EVENT_VALUE_OTHER;
}

/* The scanned field whose key is the len bytes at key, or NULL. */
static const struct event_scanned_field *
event_find_scanned(const struct event_scanned_field *fields, size_t count, const char *key,
    size_t len)
{
	for (size_t i = 0; i < count; i++) {
		if (fields[i].key_length == len && memcmp(fields[i].key, key, len) == 0)
			return &fields[i];
	}
	return NULL;
}

/* A field's value; its kind is EVENT_VALUE_ABSENT when it is missing or null. */
static void
event_field(const struct event_object *object, const char *name, struct event_value *out)
{
	const struct event_scanned_field *f;

	if (object->json != NULL) {
		event_value_from_json(json_object_get(object->json, name), out);
		return;
	}
	f = event_find_scanned(object->fields, object->field_count, name, strlen(name));
	if (f != NULL)
		*out = f->value;
	else
		memset(out, 0, sizeof *out);
}

/* Start a walk over the items of array. */
static void
event_items_start(struct event_items *items, const struct event_value *array)
{
	items->array = array;
	items->index = 0;
	items->next = array->text;
}

/* The next item; the caller walks no further than the array's count. */
static void
event_items_next(struct event_items *items, struct event_value *item)
{
	const char *end, *open, *close;

	if (items->array->json != NULL) {
		event_value_from_json(json_array_get(items->array->json, items->index++), item);
		return;
	}
	/* The scanner let through only arrays of strings without escapes. */
	end = items->array->text + items->array->length;
	open = memchr(items->next, '"', end - items->next);
	close = memchr(open + 1, '"', end - open - 1);
	memset(item, 0, sizeof *item);
	item->kind = EVENT_VALUE_STRING;
	item->text = open + 1;
	item->length = close - open - 1;
	items->next = close + 1;
}

/* Copy the len bytes at s to *out if they are an id; what names it in the error. */
static int
event_copy_id(const char *s, size_t len, const char *what, char **out,
    struct event_error *err)
{
	struct model_error merr;
	char *id;

	if (memchr(s, '\0', len) != NULL)
		return event_fail(err, "%s: must not contain control characters", what);
	/* model_validate_id wants a C string: check the copy the event would keep. */
	id = xstrndup(s, len);
	if (model_validate_id(id, what, &merr) != 0) {
		free(id);
		return event_fail(err, "%s", merr.message);
	}
	*out = id;
	return 0;
}

/* An id field: 0 with *out a copy (NULL if absent and optional), or EVENT_EMALFORMED. */
static int
event_take_id(const struct event_object *object, const char *field, int required,
    char **out, struct event_error *err)
{
	struct event_value v;

	event_field(object, field, &v);
	if (v.kind == EVENT_VALUE_ABSENT) {
		if (required)
			return event_fail(err, "%s: is required", field);
		return 0;
	}
	if (v.kind != EVENT_VALUE_STRING)
		return event_fail(err, "%s: must be a string", field);
	return event_copy_id(v.text, v.length, field, out, err);
}

/*
 * A string field of at most max bytes (cut to max when cut is set, else rejected):
 * 0 with *out a copy (NULL if absent and optional), or EVENT_EMALFORMED.
 */
static int
event_take_string(const struct event_object *object, const char *field, int required,
    size_t max, int cut, char **out, struct event_error *err)
{
	struct event_value v;
	size_t len;

	event_field(object, field, &v);
	if (v.kind == EVENT_VALUE_ABSENT) {
		if (required)
			return event_fail(err, "%s: is required", field);
		return 0;
	}
	if (v.kind != EVENT_VALUE_STRING)
		return event_fail(err, "%s: must be a string", field);
	if (memchr(v.text, '\0', v.length) != NULL)
		return event_fail(err, "%s: must not contain NUL characters", field);
	len = v.length;
	if (len > max) {
		if (!cut)
			return event_fail(err, "%s: must be at most %zu bytes", field, max);
		len = utf8_cut(v.text, len, max);
	}
	*out = xstrndup(v.text, len);
	return 0;
}

/* Parse the len bytes at s as an RFC 3339 time: 0, or -1 if they are not one. */
static int
event_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
	char buf[64], *copy = buf;
	int rc;

	if (memchr(s, '\0', len) != NULL)
		return -1;
	/* clock_parse_rfc3339 wants a C string; only a long fraction needs the heap. */
	if (len >= sizeof buf)
		copy = xmalloc(len + 1);
	memcpy(copy, s, len);
	copy[len] = '\0';
	rc = clock_parse_rfc3339(copy, ms);
	if (copy != buf)
		free(copy);
	return rc;
}

/* ts: integer milliseconds since the epoch or an RFC 3339 string; 0 when absent. */
static int
event_take_ts(const struct event_object *object, int64_t *out, struct event_error *err)
{
	struct event_value v;
	int64_t ms;

	event_field(object, "ts", &v);
	if (v.kind == EVENT_VALUE_ABSENT)
		return 0;
	if (v.kind == EVENT_VALUE_INTEGER)
		ms = v.integer;
	else if (v.kind != EVENT_VALUE_STRING || event_parse_rfc3339(v.text, v.length, &ms) != 0)
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
event_take_ids(const struct event_object *object, const char *field, int required,
    size_t max, const char *what, char ***out, size_t *count, struct event_error *err)
{
	struct event_error quiet = { NULL, 0 };
	struct event_value v, item;
	struct event_items items;
	char **ids = NULL;
	size_t i;

	event_field(object, field, &v);
	if (v.kind == EVENT_VALUE_ABSENT) {
		if (required)
			return event_fail(err, "%s: is required", field);
		return 0;
	}
	if (v.kind != EVENT_VALUE_ARRAY)
		return event_fail(err, "%s: must be an array of %s", field, what);
	if (v.count > max)
		return event_fail(err, "%s: must have at most %zu %s", field, max, what);
	if (v.count > 0)
		ids = xreallocarray(NULL, v.count, sizeof *ids);
	event_items_start(&items, &v);
	for (i = 0; i < v.count; i++) {
		event_items_next(&items, &item);
		if (item.kind != EVENT_VALUE_STRING ||
		    event_copy_id(item.text, item.length, field, &ids[i], &quiet) != 0)
			break;
	}
	if (i < v.count) {
		while (i > 0)
			free(ids[--i]);
		free(ids);
		return event_fail(err, "%s: must be an array of %s", field, what);
	}
	*out = ids;
	*count = v.count;
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

/* Hold push overrides to the limits that event.h sets. */
int
room_event_check_push_limits(const json_t *push, const char *prefix, char *errbuf,
    size_t errlen)
{
	static const char *const sized[] = { "data", "apns", "fcm", NULL };
	struct event_error err = { errbuf, errlen };
	const json_t *v;

	if ((v = event_json_get(push, "data")) != NULL &&
	    json_object_size(v) > EVENT_PUSH_DATA_MAX)
		return event_fail(&err, "%s.data: must have at most %d members", prefix,
		    EVENT_PUSH_DATA_MAX);
	/* Neither APNs nor FCM takes a payload over 4 KiB: a larger override never goes. */
	for (size_t i = 0; sized[i] != NULL; i++) {
		if ((v = event_json_get(push, sized[i])) != NULL &&
		    json_dumpb(v, NULL, 0, JSON_COMPACT) > EVENT_PUSH_JSON_MAX)
			return event_fail(&err, "%s.%s: must be at most %d bytes as JSON", prefix,
			    sized[i], EVENT_PUSH_JSON_MAX);
	}
	return 0;
}

/*
 * push: the message's notification overrides. Its known fields are type-checked and
 * copied into a new object (title, body, data, apns, fcm; NULL if none is set);
 * skip goes to *skip; other fields are ignored.
 */
static int
event_take_push(const struct event_object *object, json_t **out, int *skip,
    struct event_error *err)
{
	static const char *const copied[] = { "title", "body", "data", "apns", "fcm", NULL };
	struct event_value value;
	const json_t *push;
	json_t *copy, *v;

	event_field(object, "push", &value);
	if (value.kind == EVENT_VALUE_ABSENT)
		return 0;
	if (value.kind != EVENT_VALUE_OBJECT)
		return event_fail(err, "push: must be an object");
	push = value.json;
	for (size_t i = 0; i < 2; i++) {
		const char *field = copied[i];

		if ((v = event_json_get(push, field)) == NULL)
			continue;
		if (!json_is_string(v))
			return event_fail(err, "push.%s: must be a string", field);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return event_fail(err, "push.%s: must not contain NUL characters", field);
		if (json_string_length(v) > EVENT_TEXT_MAX)
			return event_fail(err, "push.%s: must be at most %d bytes", field,
			    EVENT_TEXT_MAX);
	}
	if ((v = event_json_get(push, "data")) != NULL && event_check_push_data(v, err) != 0)
		return EVENT_EMALFORMED;
	if ((v = event_json_get(push, "apns")) != NULL && !json_is_object(v))
		return event_fail(err, "push.apns: must be an object");
	if ((v = event_json_get(push, "fcm")) != NULL && !json_is_object(v))
		return event_fail(err, "push.fcm: must be an object");
	if ((v = event_json_get(push, "skip")) != NULL && !json_is_boolean(v))
		return event_fail(err, "push.skip: must be a boolean");
	*skip = json_is_true(v);
	if (room_event_check_push_limits(push, "push", err->buf, err->len) != 0)
		return EVENT_EMALFORMED;

	/* A deep copy: the event outlives the object and may move to another thread. */
	if ((copy = json_object()) == NULL)
		fatalx("out of memory copying push overrides");
	for (size_t i = 0; copied[i] != NULL; i++) {
		if ((v = event_json_get(push, copied[i])) != NULL &&
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
event_take_message(const struct event_object *object, int update, struct room_event *ev,
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
event_take_room(const struct event_object *object, const char *room, struct room_event *ev,
    struct event_error *err)
{
	struct event_value v;

	event_field(object, "room", &v);
	if (v.kind != EVENT_VALUE_ABSENT)
		return event_take_id(object, "room", 1, &ev->room, err);
	if (room == NULL)
		return event_fail(err, "room: is required");
	return event_copy_id(room, strlen(room), "room", &ev->room, err);
}

/* type: the event's type, or an error naming what is wrong with the field. */
static int
event_take_type(const struct event_object *object, enum event_type *out,
    struct event_error *err)
{
	struct event_value v;
	char shown[65];
	size_t len;
	int type;

	event_field(object, "type", &v);
	if (v.kind == EVENT_VALUE_ABSENT)
		return event_fail(err, "type: is required");
	if (v.kind != EVENT_VALUE_STRING)
		return event_fail(err, "type: must be a string");
	/* The name ends at a NUL, as a C string would (only jansson objects hold one). */
	len = strnlen(v.text, v.length);
	if ((type = event_type_from_name(v.text, len)) < 0) {
		/* The name goes to logs: shorten it and hide control characters. */
		len = utf8_cut(v.text, len, sizeof shown - 1);
		memcpy(shown, v.text, len);
		shown[len] = '\0';
		for (char *c = shown; *c != '\0'; c++) {
			if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\'')
				*c = '?';
		}
		event_fail(err, "unknown event type '%s'", shown);
		return EVENT_EUNKNOWN;
	}
	*out = (enum event_type)type;
	return 0;
}

/* The rules for every event, whichever way its object came. */
static int
event_parse_object(const struct event_object *object, const char *room,
    struct room_event *out, char *errbuf, size_t errlen)
{
	struct event_error err = { errbuf, errlen };
	struct room_event ev;
	int rc;

	memset(out, 0, sizeof *out);
	memset(&ev, 0, sizeof ev);
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if ((rc = event_take_type(object, &ev.type, &err)) != 0)
		return rc;
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
		rc = event_take_ids(object, "present", 1, EVENT_PRESENT_MAX, "client ids",
		    &ev.present, &ev.present_count, &err);
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
room_event_parse(const json_t *json, const char *room, struct room_event *out, char *errbuf,
    size_t errlen)
{
	struct event_object object = { json, NULL, 0 };
	struct event_error err = { errbuf, errlen };

	if (!json_is_object(json)) {
		memset(out, 0, sizeof *out);
		return event_fail(&err, "an event must be a JSON object");
	}
	return event_parse_object(&object, room, out, errbuf, errlen);
}

/*
 * The fast path's scanner. It reads one object whose values are strings without
 * escapes, integers, null, or arrays of such strings, into fields that point into
 * the text. It accepts only text that is valid JSON and means the same to
 * jansson; anything else, valid or not (an escape, a real, true, a nested object,
 * more fields than it holds), it refuses, leaving the text to the generic path.
 */
struct event_scanner {
	const char *p;
	const char *end;
};

/* Skip JSON whitespace. */
static void
event_scan_space(struct event_scanner *s)
{
	while (s->p < s->end &&
	    (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* After whitespace, consume c if it is next: 1 if it was, else 0. */
static int
event_scan_accept(struct event_scanner *s, char c)
{
	event_scan_space(s);
	if (s->p == s->end || *s->p != c)
		return 0;
	s->p++;
	return 1;
}

/* A string without escapes: its bytes, or -1 if it is not one or jansson refuses it. */
static int
event_scan_string(struct event_scanner *s, const char **out, size_t *len)
{
	const unsigned char *p, *end = (const unsigned char *)s->end;
	unsigned char high = 0;

	if (!event_scan_accept(s, '"'))
		return -1;
	for (p = (const unsigned char *)s->p; p < end && *p != '"'; p++) {
		/* JSON forbids raw control characters in strings. */
		if (*p < 0x20 || *p == '\\')
			return -1;
		high |= *p;
	}
	if (p == end)
		return -1;
	/* jansson refuses text that is not UTF-8; ASCII needs no check. */
	if ((high & 0x80) != 0 && !utf8_valid(s->p, (const char *)p - s->p))
		return -1;
	*out = s->p;
	*len = (const char *)p - s->p;
	s->p = (const char *)p + 1;
	return 0;
}

/*
 * An integer short enough to fit int64_t, or -1. Only whitespace, ',' or '}' may
 * follow a value, which rules out leading zeros (01), fractions and exponents.
 */
static int
event_scan_integer(struct event_scanner *s, int64_t *out)
{
	int64_t n = 0;
	int negative = 0;
	size_t digits = 0;

	if (s->p < s->end && *s->p == '-') {
		negative = 1;
		s->p++;
	}
	if (s->p == s->end || *s->p < '0' || *s->p > '9')
		return -1;
	if (*s->p == '0')
		s->p++;
	else {
		for (; s->p < s->end && *s->p >= '0' && *s->p <= '9'; s->p++) {
			if (++digits > EVENT_SCAN_DIGITS_MAX)
				return -1;
			n = n * 10 + (*s->p - '0');
		}
	}
	*out = negative ? -n : n;
	return 0;
}

/* An array of strings: its text and number of items, or -1. */
static int
event_scan_array(struct event_scanner *s, struct event_value *out)
{
	const char *start = s->p, *item;
	size_t len, count = 0;

	s->p++;
	if (!event_scan_accept(s, ']')) {
		do {
			if (event_scan_string(s, &item, &len) != 0)
				return -1;
			count++;
		} while (event_scan_accept(s, ','));
		if (!event_scan_accept(s, ']'))
			return -1;
	}
	out->kind = EVENT_VALUE_ARRAY;
	out->text = start;
	out->length = s->p - start;
	out->count = count;
	return 0;
}

/* A value: a string, an integer, null (absent) or an array of strings, or -1. */
static int
event_scan_value(struct event_scanner *s, struct event_value *out)
{
	memset(out, 0, sizeof *out);
	event_scan_space(s);
	if (s->p == s->end)
		return -1;
	switch (*s->p) {
	case '"':
		out->kind = EVENT_VALUE_STRING;
		return event_scan_string(s, &out->text, &out->length);
	case '[':
		return event_scan_array(s, out);
	case 'n':
		/* null: left EVENT_VALUE_ABSENT, as every rule reads it. */
		if (s->end - s->p < 4 || memcmp(s->p, "null", 4) != 0)
			return -1;
		s->p += 4;
		return 0;
	default:
		out->kind = EVENT_VALUE_INTEGER;
		return event_scan_integer(s, &out->integer);
	}
}

/* Scan the object that comes next into fields (at most EVENT_SCAN_FIELDS_MAX), or -1. */
static int
event_scan_fields(struct event_scanner *s, struct event_scanned_field *fields,
    size_t *count)
{
	struct event_scanned_field *f;
	size_t n = 0;

	if (!event_scan_accept(s, '{'))
		return -1;
	if (!event_scan_accept(s, '}')) {
		do {
			if (n == EVENT_SCAN_FIELDS_MAX)
				return -1;
			f = &fields[n];
			if (event_scan_string(s, &f->key, &f->key_length) != 0 ||
			    !event_scan_accept(s, ':') || event_scan_value(s, &f->value) != 0)
				return -1;
			/* jansson refuses duplicate keys (JSON_REJECT_DUPLICATES). */
			if (event_find_scanned(fields, n, f->key, f->key_length) != NULL)
				return -1;
			n++;
		} while (event_scan_accept(s, ','));
		if (!event_scan_accept(s, '}'))
			return -1;
	}
	*count = n;
	return 0;
}

/* After whitespace, is the text at its end? */
static int
event_scan_end(struct event_scanner *s)
{
	event_scan_space(s);
	return s->p == s->end;
}

/* Scan text holding one object into fields, or -1. */
static int
event_scan_object(const char *text, size_t len, struct event_scanned_field *fields,
    size_t *count)
{
	struct event_scanner s = { text, text + len };

	if (event_scan_fields(&s, fields, count) != 0 || !event_scan_end(&s))
		return -1;
	return 0;
}

int
room_event_parse_text_fast(const char *text, size_t len, const char *room,
    struct room_event *out, char *errbuf, size_t errlen)
{
	struct event_scanned_field fields[EVENT_SCAN_FIELDS_MAX];
	struct event_object object = { NULL, fields, 0 };

	memset(out, 0, sizeof *out);
	if (text == NULL || len > EVENT_JSON_MAX ||
	    event_scan_object(text, len, fields, &object.field_count) != 0)
		return EVENT_FAST_DEFERRED;
	/* Well-formed JSON that jansson reads as these fields: the rules decide alike. */
	return event_parse_object(&object, room, out, errbuf, errlen);
}

int
room_event_parse_text_generic(const char *text, size_t len, const char *room,
    struct room_event *out, char *errbuf, size_t errlen)
{
	struct event_error err = { errbuf, errlen };
	json_error_t jerr;
	json_t *object;
	int rc;

	memset(out, 0, sizeof *out);
	if (len > EVENT_JSON_MAX)
		return event_fail(&err, "an event must be at most %d bytes of JSON",
		    EVENT_JSON_MAX);
	object = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (object == NULL)
		return event_fail(&err, "not valid JSON: %s", jerr.text);
	rc = room_event_parse(object, room, out, errbuf, errlen);
	json_decref(object);
	return rc;
}

int
room_event_parse_text(const char *text, size_t len, const char *room, struct room_event *out,
    char *errbuf, size_t errlen)
{
	int rc;

	rc = room_event_parse_text_fast(text, len, room, out, errbuf, errlen);
	if (rc == EVENT_FAST_DEFERRED)
		rc = room_event_parse_text_generic(text, len, room, out, errbuf, errlen);
	return rc;
}

/* Room in an array of *allocated items for one more after used; grows it by doubling. */
static void *
event_grow(void *array, size_t used, size_t *allocated, size_t size)
{
	if (used < *allocated)
		return array;
	*allocated = *allocated == 0 ? 16 : *allocated * 2;
	return xreallocarray(array, *allocated, size);
}

/*
 * The batch scanner: the object around the elements is read here, each element by
 * the single-event scanner, so that the body is taken only if all of it is text
 * that jansson reads the same way. One element outside the fast path's subset
 * defers the whole body: jansson decides it, from its first byte to its last.
 */
int
room_event_parse_batch_fast(const char *text, size_t len, size_t max_events,
    struct room_event_batch *out)
{
	struct event_scanner s = { text, text + len };
	struct event_scanned_field fields[EVENT_SCAN_FIELDS_MAX];
	struct event_object object = { NULL, fields, 0 };
	struct room_event event;
	struct room_event_skip *skip;
	size_t events_allocated = 0, skipped_allocated = 0, index = 0, key_length;
	char reason[EVENT_REASON_MAX];
	const char *key;
	int rc;

	memset(out, 0, sizeof *out);
	if (text == NULL || !event_scan_accept(&s, '{') ||
	    event_scan_string(&s, &key, &key_length) != 0 ||
	    key_length != strlen("events") || memcmp(key, "events", key_length) != 0 ||
	    !event_scan_accept(&s, ':') || !event_scan_accept(&s, '['))
		return EVENT_FAST_DEFERRED;
	out->events = event_grow(NULL, 0, &events_allocated, sizeof *out->events);
	do {
		if (index == max_events ||
		    event_scan_fields(&s, fields, &object.field_count) != 0)
			goto defer;
		rc = event_parse_object(&object, NULL, &event, reason, sizeof reason);
		if (rc == EVENT_OK) {
			out->events = event_grow(out->events, out->count, &events_allocated,
			    sizeof *out->events);
			out->events[out->count++] = event;
		} else {
			out->skipped = event_grow(out->skipped, out->skipped_count,
			    &skipped_allocated, sizeof *out->skipped);
			skip = &out->skipped[out->skipped_count++];
			skip->index = index;
			skip->reason = xstrdup(reason);
		}
		index++;
	} while (event_scan_accept(&s, ','));
	/* The array ends, then the object, whose only field events was. */
	if (!event_scan_accept(&s, ']') || !event_scan_accept(&s, '}') || !event_scan_end(&s))
		goto defer;
	return EVENT_OK;
defer:
	room_event_batch_free(out);
	return EVENT_FAST_DEFERRED;
}

void
room_event_batch_free(struct room_event_batch *batch)
{
	for (size_t i = 0; i < batch->count; i++)
		room_event_free(&batch->events[i]);
	free(batch->events);
	for (size_t i = 0; i < batch->skipped_count; i++)
		free(batch->skipped[i].reason);
	free(batch->skipped);
	memset(batch, 0, sizeof *batch);
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
