/* Ably webhooks: the delivery shapes, their outbox form and its replay. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "ably_message.h"
#include "base64.h"
#include "source_ably.h"
#include "utf8.h"
#include "xmalloc.h"

/* The headers the translation reads, which the outbox keeps with the body. */
static const char *const ably_headers[] = {
	"content-type", "x-ably-envelope-source", "x-ably-envelope-channel",
	"x-ably-message-id", "x-ably-message-client-id", "x-ably-message-connection-id",
	"x-ably-message-timestamp", "x-ably-message-action", NULL
};

/*
 * Write an error. Errors and skip details go to logs and JSON answers, and quote
 * what came in (headers, channel names, jansson's errors): they are cut at a
 * character boundary, and what is not UTF-8 replaced.
 */
static void __attribute__((format(printf, 3, 4)))
ably_fail(char *err, size_t errlen, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	utf8_sanitize(err, errlen, text, strlen(text));
}

/* The text of a translation error. */
const char *
source_ably_strerror(int error)
{
	switch (error) {
	case ABLY_OK: return "ok";
	case ABLY_EMSGPACK: return "msgpack is not supported; configure the rule for JSON";
	case ABLY_EJSON: return "the body is not JSON";
	case ABLY_ESHAPE: return "the body is not an Ably webhook delivery";
	case ABLY_ETOOLARGE: return "the delivery carries too many items or entries";
	}
	return "unknown Ably error";
}

/* A skip kind's name, as the answer's skipped object has it. */
const char *
source_ably_skip_kind_name(enum ably_skip_kind kind)
{
	switch (kind) {
	case ABLY_SKIP_MALFORMED: return "malformed";
	case ABLY_SKIP_ENCRYPTED: return "encrypted";
	case ABLY_SKIP_ENCODING: return "encoding";
	case ABLY_SKIP_SOURCE: return "source";
	case ABLY_SKIP_ACTION: return "action";
	case ABLY_SKIP_CHAT_OTHER: return "chat_other";
	}
	return "unknown";
}

/* Make err valid UTF-8 in place: it goes into a JSON error body and the log. */
static void
err_sanitize(char *err, size_t errlen)
{
	char *copy;

	if (err == NULL || errlen == 0)
		return;
	copy = xstrdup(err);
	utf8_sanitize(err, errlen, copy, strlen(copy));
	free(copy);
}

/* Results. */

/* Free what a translation produced. */
void
source_ably_result_free(struct ably_result *result)
{
	for (size_t i = 0; i < result->count; i++)
		room_event_free(&result->events[i]);
	free(result->events);
	for (size_t i = 0; i < result->skip_count; i++)
		free(result->skips[i].detail);
	free(result->skips);
	memset(result, 0, sizeof *result);
}

/* Shapes. */

/*
 * The entries of one item or envelope: messages[] and presence[] of container, on the
 * named channel. Returns 0, or -1 if container has neither array.
 */
static int
translate_entries(struct ably_translation *t, const json_t *container,
    const char *channel_key, int64_t ts, const char *path)
{
	const json_t *messages = json_object_get(container, "messages");
	const json_t *presence = json_object_get(container, "presence");
	const json_t *lists[2] = { messages, presence }, *entry;
	const char *names[2] = { "messages", "presence" }, *name;
	char why[ABLY_WHY_MAX], entry_path[ABLY_PATH_MAX];
	const char *where = *path != '\0' ? path : "envelope";
	struct ably_channel channel;
	size_t i;
	int rc;

	if (messages == NULL && presence == NULL)
		return -1;
	if ((rc = ably_message_string_member(container, channel_key, &name, why)) != 0) {
		if (rc > 0)
			snprintf(why, sizeof why, "%s: missing", channel_key);
		ably_message_skip(t, ABLY_SKIP_MALFORMED, where, "%s", why);
		return 0;
	}
	if (ably_message_channel_open(&channel, name, ts, why) != 0) {
		ably_message_skip(t, ABLY_SKIP_MALFORMED, where, "%s: %s", channel_key, why);
		return 0;
	}
	for (size_t l = 0; l < 2; l++) {
		if (lists[l] == NULL)
			continue;
		if (!json_is_array(lists[l])) {
			ably_message_skip(t, ABLY_SKIP_MALFORMED, where, "%s: must be an array",
			    names[l]);
			continue;
		}
		json_array_foreach(lists[l], i, entry) {
			snprintf(entry_path, sizeof entry_path, "%s%s%s[%zu]", path,
			    *path != '\0' ? "." : "", names[l], i);
			if (l == 0)
				ably_message_translate(t, entry, &channel, entry_path);
			else
				ably_message_translate_presence(t, entry, &channel, entry_path);
		}
	}
	ably_message_channel_close(&channel);
	return 0;
}

/* A source with neither messages[] nor presence[]: malformed for ours, else skipped. */
static void
skip_source(struct ably_translation *t, const char *source, const char *path)
{
	if (source == NULL)
		ably_message_skip(t, ABLY_SKIP_MALFORMED, path, "source: missing");
	else if (strcmp(source, "channel.message") == 0 ||
	    strcmp(source, "channel.presence") == 0)
		ably_message_skip(t, ABLY_SKIP_MALFORMED, path,
		    "%s without messages or presence", source);
	else
		ably_message_skip(t, ABLY_SKIP_SOURCE, path, "source %.64s is not translated",
		    source);
}

/* {"items":[{source, timestamp, data:{channelId, messages[] | presence[]}}, ...]}. */
static void
translate_batched(struct ably_translation *t, const json_t *items)
{
	const json_t *item, *data;
	const char *source;
	char path[ABLY_PATH_MAX], why[ABLY_WHY_MAX];
	int64_t ts;
	size_t i;

	json_array_foreach(items, i, item) {
		snprintf(path, sizeof path, "items[%zu]", i);
		ts = 0;
		if (!json_is_object(item)) {
			ably_message_skip(t, ABLY_SKIP_MALFORMED, path, "must be an object");
			continue;
		}
		if (ably_message_string_member(item, "source", &source, why) < 0 ||
		    ably_message_timestamp_member(item, "timestamp", &ts, why) < 0) {
			ably_message_skip(t, ABLY_SKIP_MALFORMED, path, "%s", why);
			continue;
		}
		data = json_object_get(item, "data");
		if (data != NULL && !json_is_object(data)) {
			ably_message_skip(t, ABLY_SKIP_MALFORMED, path, "data: must be an object");
			continue;
		}
		snprintf(path, sizeof path, "items[%zu].data", i);
		if (data == NULL || translate_entries(t, data, "channelId", ts, path) != 0) {
			snprintf(path, sizeof path, "items[%zu]", i);
			skip_source(t, source, path);
		}
	}
}

/* {source, appId, channel, site, ruleId, timestamp, messages[] | presence[]}. */
static void
translate_enveloped(struct ably_translation *t, const json_t *envelope)
{
	const char *source = json_string_value(json_object_get(envelope, "source"));
	char why[ABLY_WHY_MAX];
	int64_t ts = 0;

	if (ably_message_timestamp_member(envelope, "timestamp", &ts, why) < 0) {
		ably_message_skip(t, ABLY_SKIP_MALFORMED, "envelope", "%s", why);
		return;
	}
	if (translate_entries(t, envelope, "channel", ts, "") != 0)
		skip_source(t, source, "envelope");
}

/* Messages and presence entries of one item or envelope, as far as they are arrays. */
static size_t
count_entries(const json_t *container)
{
	return json_array_size(json_object_get(container, "messages")) +
	    json_array_size(json_object_get(container, "presence"));
}

/*
 * Refuse a delivery over ABLY_ITEMS_MAX items or ABLY_ENTRIES_MAX entries before any
 * is translated: ABLY_OK, or ABLY_ETOOLARGE with err set. items is NULL when the
 * delivery is enveloped (root alone holds entries).
 */
static int
check_delivery_size(const json_t *root, const json_t *items, char *err, size_t errlen)
{
	const json_t *item;
	size_t i, entries = 0;

	if (items == NULL)
		entries = count_entries(root);
	else if (json_array_size(items) > ABLY_ITEMS_MAX) {
		snprintf(err, errlen, "items: at most %d items in one delivery", ABLY_ITEMS_MAX);
		return ABLY_ETOOLARGE;
	} else {
		json_array_foreach(items, i, item)
			entries += count_entries(json_object_get(item, "data"));
	}
	if (entries > ABLY_ENTRIES_MAX) {
		snprintf(err, errlen, "at most %d messages and presence entries in one "
		    "delivery", ABLY_ENTRIES_MAX);
		return ABLY_ETOOLARGE;
	}
	return ABLY_OK;
}

/* The media type of a Content-Type value, compared without case and parameters. */
static int
media_type_is(const char *content_type, const char *type)
{
	size_t len = strlen(type);

	if (content_type == NULL)
		return 0;
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	if (strncasecmp(content_type, type, len) != 0)
		return 0;
	content_type += len;
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	return *content_type == '\0' || *content_type == ';';
}

/* application/json or any +json type. */
static int
media_type_is_json(const char *content_type)
{
	const char *end;

	if (content_type == NULL)
		return 0;
	if (media_type_is(content_type, "application/json"))
		return 1;
	if ((end = strchr(content_type, ';')) == NULL)
		end = content_type + strlen(content_type);
	while (end > content_type && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return end - content_type >= 5 && strncasecmp(end - 5, "+json", 5) == 0;
}

/* A decimal number of milliseconds, all of s; -1 if not. */
static int
parse_millis(const char *s, int64_t *out)
{
	int64_t n = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*s - '0');
	}
	*out = n;
	return 0;
}

/*
 * Headers and a body that is the message's data alone: rebuild the raw message (or
 * presence entry) from them and translate it like the others.
 */
static int
translate_non_enveloped(struct ably_translation *t, const struct ably_request *r, char *err,
    size_t errlen)
{
	const char *source = r->envelope_source;
	const char *header = NULL;
	json_t *message, *data = NULL, *action;
	struct ably_channel channel;
	json_error_t jerr;
	char why[ABLY_WHY_MAX];
	int64_t ts, n;
	int presence;

	if (source == NULL) {
		ably_message_skip(t, ABLY_SKIP_MALFORMED, "headers",
		    "x-ably-envelope-source: missing");
		return ABLY_OK;
	}
	presence = strcmp(source, "channel.presence") == 0;
	if (!presence && strcmp(source, "channel.message") != 0) {
		ably_message_skip(t, ABLY_SKIP_SOURCE, "headers", "source %.64s is not translated",
		    source);
		return ABLY_OK;
	}
	if (r->envelope_channel == NULL) {
		ably_message_skip(t, ABLY_SKIP_MALFORMED, "headers",
		    "x-ably-envelope-channel: missing");
		return ABLY_OK;
	}
	if (!presence) {
		if (media_type_is_json(r->content_type)) {
			data = json_loadb(r->body, r->len,
			    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
			if (data == NULL) {
				ably_fail(err, errlen, "the body is not JSON (line %d, column %d: "
				    "%s)", jerr.line, jerr.column, jerr.text);
				return ABLY_EJSON;
			}
		} else if (r->content_type != NULL &&
		    strncasecmp(r->content_type, "text/", 5) == 0 &&
		    utf8_valid(r->body, r->len))
			data = json_stringn(r->body, r->len);
	}
	if (ably_message_channel_open(&channel, r->envelope_channel, 0, why) != 0) {
		json_decref(data);
		ably_message_skip(t, ABLY_SKIP_MALFORMED, "headers",
		    "x-ably-envelope-channel: %s", why);
		return ABLY_OK;
	}
	message = json_object();
	if (data != NULL)
		json_object_set_new(message, "data", data);
	else if (!presence && r->len > 0) {
		/* Bytes: carried the way Ably carries them, as base64. */
		char *b64 = base64_encode(r->body, r->len);

		json_object_set_new(message, "data", json_string(b64));
		json_object_set_new(message, "encoding", json_string("base64"));
		free(b64);
	}
	/* A chat room's messages are chat.message when the data looks like one. */
	if (!presence && channel.chat_room && json_is_object(data) &&
	    json_is_string(json_object_get(data, "text")))
		json_object_set_new(message, "name", json_string("chat.message"));
	if (r->message_id != NULL)
		json_object_set_new(message, "id", json_string(r->message_id));
	if (r->message_client_id != NULL)
		json_object_set_new(message, "clientId", json_string(r->message_client_id));
	if (r->message_connection_id != NULL)
		json_object_set_new(message, "connectionId",
		    json_string(r->message_connection_id));
	if (r->message_timestamp != NULL) {
		if (parse_millis(r->message_timestamp, &ts) != 0) {
			header = "x-ably-message-timestamp: must be milliseconds";
			goto malformed;
		}
		json_object_set_new(message, "timestamp", json_integer(ts));
	}
	if (r->message_action != NULL) {
		action = parse_millis(r->message_action, &n) == 0 ? json_integer(n) :
		    json_string(r->message_action);
		json_object_set_new(message, "action", action);
	} else if (presence) {
		header = "x-ably-message-action: missing, needed for presence";
		goto malformed;
	}
	/* A header that is not UTF-8 made one of the values above NULL and unset. */
	if ((r->message_id != NULL && json_object_get(message, "id") == NULL) ||
	    (r->message_client_id != NULL && json_object_get(message, "clientId") == NULL) ||
	    (r->message_connection_id != NULL &&
	    json_object_get(message, "connectionId") == NULL) ||
	    (r->message_action != NULL && json_object_get(message, "action") == NULL)) {
		header = "x-ably-message-*: must be UTF-8";
		goto malformed;
	}
	if (presence)
		ably_message_translate_presence(t, message, &channel, "body");
	else
		ably_message_translate(t, message, &channel, "body");
	json_decref(message);
	ably_message_channel_close(&channel);
	return ABLY_OK;
malformed:
	ably_message_skip(t, ABLY_SKIP_MALFORMED, "headers", "%s", header);
	json_decref(message);
	ably_message_channel_close(&channel);
	return ABLY_OK;
}

/* source_ably_translate without its last step: err may hold the sender's text as is. */
static int
translate(const struct ably_request *request, struct ably_result *out, char *err,
    size_t errlen)
{
	struct ably_translation t = { .out = out };
	json_error_t jerr;
	json_t *root, *items;
	int rc = ABLY_OK;

	memset(out, 0, sizeof *out);
	if (media_type_is(request->content_type, "application/x-msgpack") ||
	    media_type_is(request->content_type, "application/msgpack")) {
		ably_fail(err, errlen, "%s", source_ably_strerror(ABLY_EMSGPACK));
		return ABLY_EMSGPACK;
	}
	if (request->envelope_source != NULL || request->envelope_channel != NULL) {
		out->shape = ABLY_SHAPE_NON_ENVELOPED;
		if ((rc = translate_non_enveloped(&t, request, err, errlen)) != ABLY_OK)
			source_ably_result_free(out);
		return rc;
	}
	root = json_loadb(request->body, request->len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		ably_fail(err, errlen, "the body is not JSON (line %d, column %d: %s)",
		    jerr.line, jerr.column, jerr.text);
		return ABLY_EJSON;
	}
	if (json_is_object(root) && (items = json_object_get(root, "items")) != NULL) {
		if (!json_is_array(items)) {
			snprintf(err, errlen, "items: must be an array");
			rc = ABLY_ESHAPE;
		} else if ((rc = check_delivery_size(root, items, err, errlen)) == ABLY_OK) {
			out->shape = ABLY_SHAPE_BATCHED;
			translate_batched(&t, items);
		}
	} else if (json_is_object(root) && json_is_string(json_object_get(root, "source"))) {
		if ((rc = check_delivery_size(root, NULL, err, errlen)) == ABLY_OK) {
			out->shape = ABLY_SHAPE_ENVELOPED;
			translate_enveloped(&t, root);
		}
	} else {
		ably_fail(err, errlen, "expected {\"items\":[...]} (batched), an object with "
		    "\"source\" (enveloped), or x-ably-envelope-* headers (non-enveloped)");
		rc = ABLY_ESHAPE;
	}
	json_decref(root);
	return rc;
}

/* Translate a delivery; errors come back as valid UTF-8. */
int
source_ably_translate(const struct ably_request *request, struct ably_result *out,
    char *err, size_t errlen)
{
	int rc = translate(request, out, err, errlen);

	if (rc != ABLY_OK)
		err_sanitize(err, errlen);
	return rc;
}

/* The outbox. */

/* The first header the translation reads that is not UTF-8, or NULL. */
const char *
source_ably_header_not_utf8(source_ably_header_fn *header, void *arg)
{
	for (size_t i = 0; ably_headers[i] != NULL; i++) {
		const char *v = header(ably_headers[i], arg);
		if (v != NULL && !utf8_valid(v, strlen(v)))
			return ably_headers[i];
	}
	return NULL;
}

/* A delivery from its body and headers. */
void
source_ably_request(struct ably_request *request, const void *body, size_t len,
    source_ably_header_fn *header, void *arg)
{
	memset(request, 0, sizeof *request);
	request->body = body;
	request->len = len;
	request->content_type = header("content-type", arg);
	request->envelope_source = header("x-ably-envelope-source", arg);
	request->envelope_channel = header("x-ably-envelope-channel", arg);
	request->message_id = header("x-ably-message-id", arg);
	request->message_client_id = header("x-ably-message-client-id", arg);
	request->message_connection_id = header("x-ably-message-connection-id", arg);
	request->message_timestamp = header("x-ably-message-timestamp", arg);
	request->message_action = header("x-ably-message-action", arg);
}

/* The outbox form of a webhook: its headers and its body in base64. */
char *
source_ably_outbox_body(const void *body, size_t len, source_ably_header_fn *header,
    void *arg)
{
	json_t *headers = json_object(), *o;
	char *b64 = base64_encode(body, len), *text;

	for (size_t i = 0; headers != NULL && ably_headers[i] != NULL; i++) {
		const char *v = header(ably_headers[i], arg);
		if (v != NULL && json_object_set_new(headers, ably_headers[i],
		    json_string(v)) != 0) {
			json_decref(headers);
			headers = NULL;
		}
	}
	o = headers != NULL ? json_pack("{s:o, s:s}", "headers", headers, "body", b64) : NULL;
	free(b64);
	text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return text;
}

/* A header of an outbox body's headers object. */
static const char *
header_from_json(const char *name, void *arg)
{
	return json_string_value(json_object_get(arg, name));
}

/* Translate an outbox body back into events. */
int
source_ably_replay(const char *outbox_body, struct room_event **events, size_t *count)
{
	json_t *o = json_loads(outbox_body, 0, NULL);
	json_t *headers = json_object_get(o, "headers");
	const char *b64 = json_string_value(json_object_get(o, "body"));
	struct ably_request request;
	struct ably_result result;
	unsigned char *body = NULL;
	size_t len = 0;
	char err[256];
	int rc;

	*events = NULL;
	*count = 0;
	if (!json_is_object(headers) || b64 == NULL ||
	    base64_decode(b64, strlen(b64), &body, &len) != 0) {
		json_decref(o);
		return -1;
	}
	source_ably_request(&request, body, len, header_from_json, headers);
	rc = source_ably_translate(&request, &result, err, sizeof err);
	free(body);
	json_decref(o);
	if (rc != ABLY_OK)
		return -1;
	/* The events move out of the result. */
	*events = result.events;
	*count = result.count;
	result.events = NULL;
	result.count = 0;
	source_ably_result_free(&result);
	return 0;
}
