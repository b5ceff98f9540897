/* A held message as JSON in a Redis bucket: written with jansson, read back checked. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "model.h"
#include "state_bucket.h"
#include "utf8.h"
#include "xmalloc.h"

/* Set a string member, or leave it out when s is NULL; -1 if jansson refused it. */
static int
bucket_set_string(json_t *o, const char *key, const char *s)
{
	if (s == NULL)
		return 0;
	return json_object_set_new(o, key, json_string(s));
}

/* The JSON of a held message, without its order. */
char *
state_bucket_encode(const struct notify_message *m, int64_t ts)
{
	json_t *o = json_object();
	char *push = NULL, *text = NULL;

	if (o == NULL)
		return NULL;
	if (m->push != NULL)
		push = json_dumps(m->push, JSON_COMPACT);
	/* Every string was checked as UTF-8 by the event parser: json_string takes it. */
	if ((ts <= 0 || json_object_set_new(o, "ts", json_integer(ts)) == 0) &&
	    bucket_set_string(o, "id", m->id) == 0 &&
	    bucket_set_string(o, "sender", m->sender != NULL ? m->sender : "") == 0 &&
	    bucket_set_string(o, "sender_name", m->sender_name) == 0 &&
	    bucket_set_string(o, "room_name", m->room_name) == 0 &&
	    bucket_set_string(o, "text", m->text) == 0 &&
	    bucket_set_string(o, "push", push) == 0)
		text = json_dumps(o, JSON_COMPACT);
	free(push);
	json_decref(o);
	if (text != NULL && strlen(text) > STATE_BUCKET_ENTRY_MAX) {
		free(text);
		text = NULL;
	}
	return text;
}

/* Say what is wrong with an entry, in UTF-8 (jansson may quote the bytes it read). */
static int
bucket_fail(char *err, size_t errlen, const char *fmt, ...)
{
	char raw[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	utf8_sanitize(err, errlen, raw, strlen(raw));
	return -1;
}

/*
 * A string member of at most max bytes of UTF-8 without NUL: *out a copy, or NULL
 * when it is absent and not required. 0, or -1 with err set.
 */
static int
bucket_take_string(const json_t *o, const char *key, size_t max, int required, char **out,
    char *err, size_t errlen)
{
	const json_t *v = json_object_get(o, key);
	const char *s;
	size_t len;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return bucket_fail(err, errlen, "%s: is required", key);
		return 0;
	}
	if (!json_is_string(v))
		return bucket_fail(err, errlen, "%s: must be a string", key);
	s = json_string_value(v);
	len = json_string_length(v);
	if (len > max)
		return bucket_fail(err, errlen, "%s: must be at most %zu bytes", key, max);
	if (!utf8_valid(s, len))
		return bucket_fail(err, errlen, "%s: must be UTF-8 without NUL", key);
	*out = xstrndup(s, len);
	return 0;
}

/* An id member: 1 to MODEL_ID_MAX bytes of UTF-8 without control characters. */
static int
bucket_take_id(const json_t *o, const char *key, char **out, char *err, size_t errlen)
{
	struct model_error merr;

	if (bucket_take_string(o, key, MODEL_ID_MAX, 1, out, err, errlen) != 0)
		return -1;
	if (model_validate_id(*out, key, &merr) != 0) {
		free(*out);
		*out = NULL;
		return bucket_fail(err, errlen, "%s", merr.message);
	}
	return 0;
}

/* Read one entry of a bucket, every field checked. */
int
state_bucket_parse(const char *text, size_t len, struct state_held *out, char *err,
    size_t errlen)
{
	json_error_t jerr;
	json_t *o, *n;
	char *push = NULL;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (len > STATE_BUCKET_ENTRY_MAX)
		return bucket_fail(err, errlen, "an entry must be at most %d bytes",
		    STATE_BUCKET_ENTRY_MAX);
	if ((o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return bucket_fail(err, errlen, "not JSON: %s", jerr.text);
	if (!json_is_object(o)) {
		bucket_fail(err, errlen, "not a JSON object");
		goto done;
	}
	n = json_object_get(o, "n");
	if (!json_is_integer(n) || json_integer_value(n) < 1) {
		bucket_fail(err, errlen, "n: must be a positive integer");
		goto done;
	}
	out->order = json_integer_value(n);
	n = json_object_get(o, "ts");
	if (n != NULL && !json_is_null(n) && (!json_is_integer(n) ||
	    json_integer_value(n) < 0)) {
		bucket_fail(err, errlen, "ts: must be milliseconds since the epoch");
		goto done;
	}
	out->ts = n != NULL && json_is_integer(n) ? json_integer_value(n) : 0;
	if (bucket_take_id(o, "id", &out->id, err, errlen) != 0 ||
	    bucket_take_string(o, "sender", MODEL_ID_MAX, 1, &out->sender, err, errlen) != 0 ||
	    bucket_take_string(o, "sender_name", EVENT_NAME_MAX, 0, &out->sender_name, err,
	    errlen) != 0 ||
	    bucket_take_string(o, "room_name", EVENT_NAME_MAX, 0, &out->room_name, err,
	    errlen) != 0 ||
	    bucket_take_string(o, "text", EVENT_TEXT_MAX, 0, &out->text, err, errlen) != 0 ||
	    bucket_take_string(o, "push", STATE_BUCKET_ENTRY_MAX, 0, &push, err, errlen) != 0)
		goto done;
	if (push != NULL) {
		out->push = json_loads(push, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(out->push)) {
			bucket_fail(err, errlen, "push: must be a JSON object as text");
			goto done;
		}
		if (room_event_check_push_limits(out->push, "push", err, errlen) != 0)
			goto done;
	}
	rc = 0;
done:
	free(push);
	json_decref(o);
	if (rc != 0)
		state_held_free(out);
	return rc;
}

void
state_held_free(struct state_held *h)
{
	free(h->id);
	free(h->sender);
	free(h->sender_name);
	free(h->room_name);
	free(h->text);
	json_decref(h->push);
	memset(h, 0, sizeof *h);
}

/* What notify_text.h takes. */
void
state_held_message(const struct state_held *h, const char *room, struct notify_message *out)
{
	out->room = room;
	out->id = h->id;
	out->sender = h->sender;
	out->sender_name = h->sender_name;
	out->room_name = h->room_name;
	out->text = h->text;
	out->push = h->push;
}

/* Oldest first: by when they were posted, then in the order they were held. */
int
state_held_compare(const void *a, const void *b)
{
	const struct state_held *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}
