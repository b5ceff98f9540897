/*
 * One Ably message or presence entry into a room event: fields checked, encodings
 * undone, mentions gathered, extras.push mapped (the rules are in source_ably.h).
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ably_message.h"
#include "base64.h"
#include "log.h"
#include "model.h"
#include "utf8.h"
#include "xmalloc.h"

#define ABLY_TS_MAX 253402300799999LL	/* 9999-12-31T23:59:59.999Z, as event.c */

enum message_op {
	MESSAGE_CREATE = 0,
	MESSAGE_UPDATE,
	MESSAGE_DELETE,
	MESSAGE_OTHER,
};

/* Message data once its encoding is undone: a JSON value or bytes. */
struct decoded {
	json_t *value;			/* NULL when bytes (or when there is no data) */
	unsigned char *bytes;
	size_t len;
};

/* A growing list of distinct client ids. */
struct id_list {
	char **items;
	size_t count;
};

/* A new, zeroed event at the end of the result. */
static struct room_event *
event_add(struct ably_translation *t, enum event_type type,
    const struct ably_channel *channel)
{
	struct ably_result *out = t->out;
	struct room_event *event;

	if (out->count == t->events_cap) {
		t->events_cap = t->events_cap == 0 ? 8 : t->events_cap * 2;
		out->events = xreallocarray(out->events, t->events_cap, sizeof *out->events);
	}
	event = &out->events[out->count++];
	memset(event, 0, sizeof *event);
	event->type = type;
	event->room = xstrdup(channel->room);
	return event;
}

/* Record a skip: "PATH: WHAT". */
void
ably_message_skip(struct ably_translation *t, enum ably_skip_kind kind, const char *path,
    const char *fmt, ...)
{
	struct ably_result *out = t->out;
	char what[ABLY_WHY_MAX], *detail;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (out->skip_count == t->skips_cap) {
		t->skips_cap = t->skips_cap == 0 ? 4 : t->skips_cap * 2;
		out->skips = xreallocarray(out->skips, t->skips_cap, sizeof *out->skips);
	}
	out->skips[out->skip_count].kind = kind;
	/* Details quote the sender's text, cut anywhere by vsnprintf: keep them UTF-8. */
	detail = xasprintf("%s: %s", path, what);
	out->skips[out->skip_count].detail = utf8_sanitize_dup(detail, strlen(detail),
	    ABLY_WHY_MAX + 64);
	free(detail);
	out->skip_count++;
	out->skipped[kind]++;
}

/* Fields. */

/*
 * An optional string member: 0 and *out set, 1 if absent or null, -1 if of another
 * type (why set).
 */
int
ably_message_string_member(const json_t *object, const char *key, const char **out,
    char *why)
{
	const json_t *v = json_object_get(object, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 1;
	if (!json_is_string(v)) {
		snprintf(why, ABLY_WHY_MAX, "%s: must be a string", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* An optional id member, validated; as string_member. */
static int
id_member(const json_t *object, const char *key, const char **out, char *why)
{
	struct model_error error;
	int rc;

	if ((rc = ably_message_string_member(object, key, out, why)) != 0)
		return rc;
	if (model_validate_id(*out, key, &error) != 0) {
		snprintf(why, ABLY_WHY_MAX, "%s", error.message);
		return -1;
	}
	return 0;
}

/* An optional millisecond timestamp member: 0 (or -1 with why set); absent leaves *ts. */
int
ably_message_timestamp_member(const json_t *object, const char *key, int64_t *ts,
    char *why)
{
	const json_t *v = json_object_get(object, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > ABLY_TS_MAX) {
		snprintf(why, ABLY_WHY_MAX, "%s: must be milliseconds since the epoch", key);
		return -1;
	}
	*ts = json_integer_value(v);
	return 0;
}

/* Split a channel name into a room, without the Ably Chat suffix; -1 with why set. */
int
ably_message_channel_open(struct ably_channel *channel, const char *name, int64_t ts,
    char *why)
{
	size_t len = strlen(name), suffix = strlen(ABLY_CHAT_SUFFIX);
	struct model_error error;

	memset(channel, 0, sizeof *channel);
	channel->ts = ts;
	if (len >= suffix && strcmp(name + len - suffix, ABLY_CHAT_SUFFIX) == 0) {
		channel->chat_room = 1;
		len -= suffix;
	}
	channel->room = xstrndup(name, len);
	if (model_validate_id(channel->room, "room", &error) != 0) {
		snprintf(why, ABLY_WHY_MAX, "%s", error.message);
		free(channel->room);
		channel->room = NULL;
		return -1;
	}
	return 0;
}

/* Free what ably_message_channel_open() made. */
void
ably_message_channel_close(struct ably_channel *channel)
{
	free(channel->room);
	channel->room = NULL;
}

/* Encodings. */

/* Free decoded data. */
static void
decoded_free(struct decoded *d)
{
	json_decref(d->value);
	free(d->bytes);
	memset(d, 0, sizeof *d);
}

/*
 * Undo an encoding chain, right to left: 0 with out set, or -1 with the kind of skip
 * and why set.
 */
static int
decode_data(const json_t *data, const char *encoding, struct decoded *out,
    enum ably_skip_kind *kind, char *why)
{
	char *chain, *step, *save, *steps[16];
	size_t nsteps = 0, len;
	json_error_t jerr;
	json_t *parsed;
	const char *text;

	memset(out, 0, sizeof *out);
	out->value = json_incref((json_t *)data);
	if (encoding == NULL || *encoding == '\0')
		return 0;
	chain = xstrdup(encoding);
	if (chain[strlen(chain) - 1] == '/' || chain[0] == '/' || strstr(chain, "//") != NULL) {
		snprintf(why, ABLY_WHY_MAX, "encoding: has an empty step");
		*kind = ABLY_SKIP_MALFORMED;
		goto fail;
	}
	for (step = strtok_r(chain, "/", &save); step != NULL; step = strtok_r(NULL, "/", &save)) {
		if (strncmp(step, "cipher", 6) == 0) {
			snprintf(why, ABLY_WHY_MAX, "encoding: %.64s: encrypted data", step);
			*kind = ABLY_SKIP_ENCRYPTED;
			goto fail;
		}
		if (nsteps == sizeof steps / sizeof steps[0]) {
			snprintf(why, ABLY_WHY_MAX, "encoding: too many steps");
			*kind = ABLY_SKIP_MALFORMED;
			goto fail;
		}
		steps[nsteps++] = step;
	}
	for (size_t i = 0; i < nsteps; i++) {
		step = steps[i];
		if (strcmp(step, "json") != 0 && strcmp(step, "base64") != 0 &&
		    strcmp(step, "utf-8") != 0) {
			snprintf(why, ABLY_WHY_MAX, "encoding: %.64s is not supported", step);
			*kind = ABLY_SKIP_ENCODING;
			goto fail;
		}
	}
	while (nsteps > 0) {
		step = steps[--nsteps];
		if (strcmp(step, "base64") == 0) {
			if (!json_is_string(out->value)) {
				snprintf(why, ABLY_WHY_MAX, "data: base64 needs a string");
				*kind = ABLY_SKIP_MALFORMED;
				goto fail;
			}
			if (base64_decode(json_string_value(out->value),
			    json_string_length(out->value), &out->bytes, &out->len) != 0) {
				snprintf(why, ABLY_WHY_MAX, "data: is not base64");
				*kind = ABLY_SKIP_MALFORMED;
				goto fail;
			}
			json_decref(out->value);
			out->value = NULL;
			continue;
		}
		/* utf-8 and json both need text: the bytes as UTF-8, or a string. */
		if (out->value == NULL) {
			if (!utf8_valid((const char *)out->bytes, out->len)) {
				snprintf(why, ABLY_WHY_MAX, "data: is not UTF-8");
				*kind = ABLY_SKIP_MALFORMED;
				goto fail;
			}
			out->value = json_stringn((const char *)out->bytes, out->len);
			free(out->bytes);
			out->bytes = NULL;
			out->len = 0;
		} else if (!json_is_string(out->value)) {
			snprintf(why, ABLY_WHY_MAX, "data: %s needs a string", step);
			*kind = ABLY_SKIP_MALFORMED;
			goto fail;
		}
		if (strcmp(step, "utf-8") == 0)
			continue;
		text = json_string_value(out->value);
		len = json_string_length(out->value);
		if ((parsed = json_loadb(text, len, JSON_DECODE_ANY, &jerr)) == NULL) {
			snprintf(why, ABLY_WHY_MAX, "data: encoding json: not JSON");
			*kind = ABLY_SKIP_MALFORMED;
			goto fail;
		}
		json_decref(out->value);
		out->value = parsed;
	}
	free(chain);
	return 0;
fail:
	free(chain);
	decoded_free(out);
	return -1;
}

/* Mentions. */

/* Add one client id unless already listed; -1 with why set if it is not an id. */
static int
id_list_add(struct id_list *list, const char *id, size_t len, const char *what, char *why)
{
	struct model_error error;
	char *copy = xstrndup(id, len);

	if (strlen(copy) != len || model_validate_id(copy, what, &error) != 0) {
		snprintf(why, ABLY_WHY_MAX, "%s", strlen(copy) != len ?
		    "mentions: must not contain NUL" : error.message);
		free(copy);
		return -1;
	}
	for (size_t i = 0; i < list->count; i++) {
		if (strcmp(list->items[i], copy) == 0) {
			free(copy);
			return 0;
		}
	}
	if (list->count == EVENT_MENTIONS_MAX) {
		snprintf(why, ABLY_WHY_MAX, "mentions: must have at most %d ids",
		    EVENT_MENTIONS_MAX);
		free(copy);
		return -1;
	}
	list->items = xreallocarray(list->items, list->count + 1, sizeof *list->items);
	list->items[list->count++] = copy;
	return 0;
}

/* Free a list of client ids. */
static void
id_list_free(struct id_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	memset(list, 0, sizeof *list);
}

/* Add an array of client ids (or, if commas is set, a comma-separated string). */
static int
mentions_add(struct id_list *list, const json_t *v, int commas, const char *what, char *why)
{
	const char *s, *end, *start, *stop;
	json_t *element;
	size_t i;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_array(v)) {
		json_array_foreach(v, i, element) {
			if (!json_is_string(element)) {
				snprintf(why, ABLY_WHY_MAX, "%s: must be an array of client ids",
				    what);
				return -1;
			}
			if (id_list_add(list, json_string_value(element),
			    json_string_length(element), what, why) != 0)
				return -1;
		}
		return 0;
	}
	if (!commas || !json_is_string(v)) {
		snprintf(why, ABLY_WHY_MAX, "%s: must be an array of client ids%s", what,
		    commas ? " or a string of them separated by commas" : "");
		return -1;
	}
	s = json_string_value(v);
	end = s + json_string_length(v);
	while (s < end) {
		start = s;
		if ((stop = memchr(s, ',', (size_t)(end - s))) == NULL)
			stop = end;
		s = stop + 1;
		while (start < stop && (*start == ' ' || *start == '\t'))
			start++;
		while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
			stop--;
		if (stop > start &&
		    id_list_add(list, start, (size_t)(stop - start), what, why) != 0)
			return -1;
	}
	return 0;
}

/* Push. */

/* A JSON value as a string: strings as they are, anything else as compact JSON. */
static json_t *
as_string(const json_t *v)
{
	char *text;
	json_t *s;

	if (json_is_string(v))
		return json_string(json_string_value(v));
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text == NULL)
		fatalx("out of memory");
	s = json_string(text);
	free(text);
	return s;
}

/* An object with every value made a string. */
static json_t *
stringify_values(const json_t *object)
{
	json_t *out = json_object(), *value;
	const char *key;

	json_object_foreach((json_t *)object, key, value)
		json_object_set_new(out, key, as_string(value));
	return out;
}

/* The object at key in parent, created if absent; NULL if something else is there. */
static json_t *
object_at(json_t *parent, const char *key)
{
	json_t *v = json_object_get(parent, key);

	if (v == NULL) {
		v = json_object();
		json_object_set_new(parent, key, v);
	}
	return json_is_object(v) ? v : NULL;
}

/* Merge src into dst as the providers' overrides are merged: objects recursively. */
static void
merge(json_t *dst, const json_t *src)
{
	json_t *value, *existing;
	const char *key;

	json_object_foreach((json_t *)src, key, value) {
		existing = json_object_get(dst, key);
		if (json_is_object(value) && json_is_object(existing))
			merge(existing, value);
		else
			json_object_set_new(dst, key, json_deep_copy(value));
	}
}

/* Set path (NULL-terminated keys) to a string in root, unless something is in the way. */
static void
set_path(json_t *root, const char *const *keys, const char *value)
{
	json_t *node = root;

	for (; keys[1] != NULL && node != NULL; keys++)
		node = object_at(node, keys[0]);
	if (node != NULL)
		json_object_set_new(node, keys[0], json_string(value));
}

/* An optional string of extras.push.notification; -1 with why set if not a string. */
static int
notification_string(const json_t *notification, const char *key, const char **out, char *why)
{
	if (ably_message_string_member(notification, key, out, why) < 0) {
		snprintf(why, ABLY_WHY_MAX, "extras.push.notification.%s: must be a string", key);
		return -1;
	}
	return 0;
}

/* extras.push.data as push.data: strings (others as JSON text), no key FCM refuses. */
static int
push_data(const json_t *data, json_t **out, char *why)
{
	const char *key;
	json_t *value;

	json_object_foreach((json_t *)data, key, value) {
		if (strcmp(key, "from") == 0 || strcmp(key, "message_type") == 0 ||
		    strncmp(key, "google", 6) == 0 || strncmp(key, "gcm", 3) == 0) {
			snprintf(why, ABLY_WHY_MAX, "extras.push.data.%.64s: is a reserved key",
			    key);
			return -1;
		}
	}
	*out = json_object_size(data) > 0 ? stringify_values(data) : NULL;
	return 0;
}

/*
 * Map Ably's extras.push to the event's push object (title, body, data, apns, fcm:
 * docs/events.md); *out is NULL if nothing maps. sound, collapseKey and icon have no
 * field of their own there, so they become provider overrides as Ably applies them
 * (collapseKey: APNs aps.thread-id and FCM android.collapse_key), under Ably's own
 * apns and fcm overrides, which win.
 */
static int
push_from_ably(const json_t *ably, json_t **out, char *why)
{
	static const char *const aps_sound[] = { "payload", "aps", "sound", NULL };
	static const char *const aps_thread[] = { "payload", "aps", "thread-id", NULL };
	static const char *const fcm_sound[] = { "android", "notification", "sound", NULL };
	static const char *const fcm_icon[] = { "android", "notification", "icon", NULL };
	static const char *const fcm_collapse[] = { "android", "collapse_key", NULL };
	static const char *const objects[] = { "notification", "data", "apns", "fcm" };
	const char *title, *body, *sound, *collapse, *icon, *key;
	const json_t *notification, *data, *apns_in, *fcm_in, *headers;
	json_t *push, *apns, *fcm, *payload, *value, *mapped;

	*out = NULL;
	if (ably == NULL || json_is_null(ably))
		return 0;
	if (!json_is_object(ably)) {
		snprintf(why, ABLY_WHY_MAX, "extras.push: must be an object");
		return -1;
	}
	for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++) {
		value = json_object_get(ably, objects[i]);
		if (value != NULL && !json_is_null(value) && !json_is_object(value)) {
			snprintf(why, ABLY_WHY_MAX, "extras.push.%s: must be an object",
			    objects[i]);
			return -1;
		}
	}
	notification = json_object_get(ably, "notification");
	data = json_object_get(ably, "data");
	apns_in = json_object_get(ably, "apns");
	fcm_in = json_object_get(ably, "fcm");
	if (notification_string(notification, "title", &title, why) != 0 ||
	    notification_string(notification, "body", &body, why) != 0 ||
	    notification_string(notification, "sound", &sound, why) != 0 ||
	    notification_string(notification, "collapseKey", &collapse, why) != 0 ||
	    notification_string(notification, "icon", &icon, why) != 0)
		return -1;
	if ((title != NULL && strlen(title) > EVENT_TEXT_MAX) ||
	    (body != NULL && strlen(body) > EVENT_TEXT_MAX)) {
		snprintf(why, ABLY_WHY_MAX, "extras.push.notification.%s: must be at most %d "
		    "bytes", title != NULL && strlen(title) > EVENT_TEXT_MAX ? "title" : "body",
		    EVENT_TEXT_MAX);
		return -1;
	}
	headers = json_is_object(apns_in) ? json_object_get(apns_in, "apns-headers") : NULL;
	if (headers != NULL && !json_is_null(headers) && !json_is_object(headers)) {
		snprintf(why, ABLY_WHY_MAX, "extras.push.apns.apns-headers: must be an object");
		return -1;
	}
	mapped = NULL;
	if (json_is_object(data) && push_data(data, &mapped, why) != 0)
		return -1;

	push = json_object();
	if (title != NULL)
		json_object_set_new(push, "title", json_string(title));
	if (body != NULL)
		json_object_set_new(push, "body", json_string(body));
	if (mapped != NULL)
		json_object_set_new(push, "data", mapped);

	/* APNs: {"headers": apns-headers, "payload": the rest of apns}. */
	apns = json_object();
	if (sound != NULL)
		set_path(apns, aps_sound, sound);
	if (collapse != NULL && *collapse != '\0')
		set_path(apns, aps_thread, collapse);
	if (json_is_object(apns_in)) {
		payload = json_object();
		json_object_foreach((json_t *)apns_in, key, value) {
			if (strcmp(key, "apns-headers") != 0)
				json_object_set_new(payload, key, json_deep_copy(value));
		}
		if (json_object_size(payload) > 0)
			merge(object_at(apns, "payload"), payload);
		json_decref(payload);
		if (json_is_object(headers) && json_object_size(headers) > 0)
			json_object_set_new(apns, "headers", stringify_values(headers));
	}
	if (json_object_size(apns) > 0)
		json_object_set_new(push, "apns", apns);
	else
		json_decref(apns);

	/* FCM: merged into the v1 message. */
	fcm = json_object();
	if (sound != NULL)
		set_path(fcm, fcm_sound, sound);
	if (icon != NULL)
		set_path(fcm, fcm_icon, icon);
	if (collapse != NULL && *collapse != '\0')
		set_path(fcm, fcm_collapse, collapse);
	if (json_is_object(fcm_in))
		merge(fcm, fcm_in);
	if (json_object_size(fcm) > 0)
		json_object_set_new(push, "fcm", fcm);
	else
		json_decref(fcm);

	if (json_object_size(push) == 0) {
		json_decref(push);
		return 0;
	}
	if (room_event_check_push_limits(push, "extras.push", why, ABLY_WHY_MAX) != 0) {
		json_decref(push);
		return -1;
	}
	*out = push;
	return 0;
}

/* Messages. */

/* Read a message action: 0 with *op and label set, -1 if it is neither number nor name. */
static int
message_action(const json_t *v, enum message_op *op, char *label, size_t labellen)
{
	static const struct {
		const char *name;
		enum message_op op;
	} names[] = {
		{ "message.create", MESSAGE_CREATE }, { "message.created", MESSAGE_CREATE },
		{ "message.update", MESSAGE_UPDATE }, { "message.updated", MESSAGE_UPDATE },
		{ "message.delete", MESSAGE_DELETE }, { "message.deleted", MESSAGE_DELETE },
	};
	static const char *const numbered[] = {
		"message.create", "message.update", "message.delete", "meta", "message.summary"
	};
	json_int_t n;

	if (v == NULL || json_is_null(v)) {
		*op = MESSAGE_CREATE;
		snprintf(label, labellen, "none");
		return 0;
	}
	if (json_is_integer(v)) {
		n = json_integer_value(v);
		*op = n >= 0 && n <= 2 ? (enum message_op)n : MESSAGE_OTHER;
		if (n >= 0 && n < (json_int_t)(sizeof numbered / sizeof numbered[0]))
			snprintf(label, labellen, "%lld (%s)", (long long)n, numbered[n]);
		else
			snprintf(label, labellen, "%lld", (long long)n);
		return 0;
	}
	if (json_is_string(v)) {
		*op = MESSAGE_OTHER;
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			if (strcmp(json_string_value(v), names[i].name) == 0)
				*op = names[i].op;
		}
		snprintf(label, labellen, "%.64s", json_string_value(v));
		return 0;
	}
	return -1;
}

/* The mentions of a message: data.metadata.mentions, then extras.headers.mentions. */
static int
message_mentions(const json_t *value, const json_t *extras, struct id_list *mentions,
    char *why)
{
	const json_t *metadata, *headers;

	metadata = json_is_object(value) ? json_object_get(value, "metadata") : NULL;
	if (json_is_object(metadata) && mentions_add(mentions,
	    json_object_get(metadata, "mentions"), 0, "data.metadata.mentions", why) != 0)
		return -1;
	headers = extras != NULL ? json_object_get(extras, "headers") : NULL;
	if (headers != NULL && !json_is_null(headers) && !json_is_object(headers)) {
		snprintf(why, ABLY_WHY_MAX, "extras.headers: must be an object");
		return -1;
	}
	if (json_is_object(headers) && mentions_add(mentions,
	    json_object_get(headers, "mentions"), 1, "extras.headers.mentions", why) != 0)
		return -1;
	return 0;
}

/* Translate one raw message into a message, message.update or message.delete event. */
void
ably_message_translate(struct ably_translation *t, const json_t *message,
    const struct ably_channel *channel, const char *path)
{
	const char *name, *id, *serial, *client_id, *encoding, *text = NULL;
	const json_t *extras, *version, *value;
	struct id_list mentions = { 0 };
	struct decoded decoded = { 0 };
	struct room_event *event;
	enum message_op op;
	char why[ABLY_WHY_MAX], label[80];
	json_t *push = NULL;
	enum ably_skip_kind kind;
	int64_t ts = channel->ts;
	int chat;

	if (!json_is_object(message)) {
		ably_message_skip(t, ABLY_SKIP_MALFORMED, path, "must be an object");
		return;
	}
	if (ably_message_string_member(message, "name", &name, why) < 0)
		goto malformed;
	chat = name != NULL && strcmp(name, "chat.message") == 0;
	if (channel->chat_room && !chat) {
		if (name != NULL)
			ably_message_skip(t, ABLY_SKIP_CHAT_OTHER, path,
			    "%.64s is not a chat message", name);
		else
			ably_message_skip(t, ABLY_SKIP_CHAT_OTHER, path,
			    "a message without a name is not a chat message");
		return;
	}
	if (message_action(json_object_get(message, "action"), &op, label, sizeof label) != 0) {
		snprintf(why, sizeof why, "action: must be a number or a name");
		goto malformed;
	}
	if (op == MESSAGE_OTHER) {
		ably_message_skip(t, ABLY_SKIP_ACTION, path, "action %s is not translated", label);
		return;
	}
	if (!chat && op != MESSAGE_CREATE) {
		ably_message_skip(t, ABLY_SKIP_ACTION, path,
		    "action %s is translated for chat.message only", label);
		return;
	}
	if (id_member(message, "id", &id, why) < 0 ||
	    id_member(message, "serial", &serial, why) < 0 ||
	    id_member(message, "clientId", &client_id, why) < 0 ||
	    ably_message_string_member(message, "encoding", &encoding, why) < 0 ||
	    ably_message_timestamp_member(message, "timestamp", &ts, why) < 0)
		goto malformed;
	/* An update's or delete's own time is its version's. */
	if (op != MESSAGE_CREATE && json_is_object(version = json_object_get(message,
	    "version")) && ably_message_timestamp_member(version, "timestamp", &ts, why) < 0) {
		snprintf(why, sizeof why, "version.timestamp: must be milliseconds since the "
		    "epoch");
		goto malformed;
	}
	if (id == NULL && serial == NULL) {
		snprintf(why, sizeof why, "%s: missing", chat ? "serial" : "id");
		goto malformed;
	}
	if (chat && serial != NULL)
		id = serial;
	else if (id == NULL)
		id = serial;

	if (op == MESSAGE_DELETE) {
		event = event_add(t, EVENT_MESSAGE_DELETE, channel);
		event->id = xstrdup(id);
		event->ts = ts;
		return;
	}
	if (op == MESSAGE_CREATE && client_id == NULL) {
		snprintf(why, sizeof why, "clientId: missing (a message needs its sender)");
		goto malformed;
	}

	extras = json_object_get(message, "extras");
	if (extras != NULL && !json_is_null(extras) && !json_is_object(extras)) {
		snprintf(why, sizeof why, "extras: must be an object");
		goto malformed;
	}
	if (json_is_null(extras))
		extras = NULL;
	value = json_object_get(message, "data");
	if (value != NULL && !json_is_null(value) &&
	    decode_data(value, encoding, &decoded, &kind, why) != 0) {
		ably_message_skip(t, kind, path, "%s", why);
		return;
	}
	value = decoded.value;
	if (json_is_string(value) && !chat)
		text = json_string_value(value);
	else if (json_is_object(value) && json_is_string(json_object_get(value, "text")))
		text = json_string_value(json_object_get(value, "text"));
	else if (chat) {
		snprintf(why, sizeof why, "data.text: must be a string");
		goto malformed;
	}
	/* A message has text, if only "" (docs/events.md). */
	if (op == MESSAGE_CREATE && text == NULL)
		text = "";
	if (message_mentions(value, extras, &mentions, why) != 0 ||
	    push_from_ably(extras != NULL ? json_object_get(extras, "push") : NULL, &push,
	    why) != 0)
		goto malformed;

	event = event_add(t, op == MESSAGE_UPDATE ? EVENT_MESSAGE_UPDATE : EVENT_MESSAGE,
	    channel);
	event->id = xstrdup(id);
	event->client_id = client_id != NULL ? xstrdup(client_id) : NULL;
	event->text = text != NULL ? xstrndup(text, utf8_cut(text, strlen(text), EVENT_TEXT_MAX)) : NULL;
	event->ts = ts;
	event->mentions = mentions.items;
	event->mention_count = mentions.count;
	event->push = push;
	decoded_free(&decoded);
	return;
malformed:
	ably_message_skip(t, ABLY_SKIP_MALFORMED, path, "%s", why);
	id_list_free(&mentions);
	decoded_free(&decoded);
}

/* Presence. */

/* Read a presence action: 0 with *type set, 1 if not one we translate, -1 if malformed. */
static int
presence_action(const json_t *v, enum event_type *type)
{
	static const char *const names[] = { "absent", "present", "enter", "leave", "update" };
	static const enum event_type types[] = {
		EVENT_PRESENCE_LEAVE, EVENT_PRESENCE_ENTER, EVENT_PRESENCE_ENTER,
		EVENT_PRESENCE_LEAVE, EVENT_PRESENCE_UPDATE,
	};
	json_int_t n;

	if (json_is_integer(v)) {
		n = json_integer_value(v);
		if (n < 0 || n > 4)
			return 1;
		*type = types[n];
		return 0;
	}
	if (json_is_string(v)) {
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			if (strcmp(json_string_value(v), names[i]) == 0) {
				*type = types[i];
				return 0;
			}
		}
		return 1;
	}
	return -1;
}

/* Translate one presence entry into presence.enter, presence.leave or presence.update. */
void
ably_message_translate_presence(struct ably_translation *t, const json_t *entry,
    const struct ably_channel *channel, const char *path)
{
	const char *client_id, *connection_id;
	struct room_event *event;
	enum event_type type;
	char why[ABLY_WHY_MAX];
	int64_t ts = channel->ts;
	int rc;

	if (!json_is_object(entry)) {
		ably_message_skip(t, ABLY_SKIP_MALFORMED, path, "must be an object");
		return;
	}
	if ((rc = presence_action(json_object_get(entry, "action"), &type)) < 0) {
		ably_message_skip(t, ABLY_SKIP_MALFORMED, path,
		    "action: must be 0 to 4 or absent, present, enter, leave, update");
		return;
	}
	if (rc > 0) {
		ably_message_skip(t, ABLY_SKIP_ACTION, path, "presence action is not translated");
		return;
	}
	if ((rc = id_member(entry, "clientId", &client_id, why)) != 0) {
		ably_message_skip(t, ABLY_SKIP_MALFORMED, path, "%s",
		    rc > 0 ? "clientId: missing" : why);
		return;
	}
	if (id_member(entry, "connectionId", &connection_id, why) < 0 ||
	    ably_message_timestamp_member(entry, "timestamp", &ts, why) < 0) {
		ably_message_skip(t, ABLY_SKIP_MALFORMED, path, "%s", why);
		return;
	}
	event = event_add(t, type, channel);
	event->client_id = xstrdup(client_id);
	event->connection_id = connection_id != NULL ? xstrdup(connection_id) : NULL;
	event->ts = ts;
}
