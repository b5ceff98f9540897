/* APNs and FCM request bodies, serialized once and spliced per device. */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "jsonw.h"
#include "log.h"
#include "payload.h"
#include "utf8.h"
#include "xmalloc.h"

/* Placeholders that cannot come from user input in the positions we search. */
#define TOKEN_SENTINEL "@@pushrelay-token@@"
#define BADGE_SENTINEL 1999999999
#define BADGE_SENTINEL_TEXT "1999999999"
#define ELLIPSIS "\xe2\x80\xa6"
/* FCM's limit is on the message's content; the token, here its sentinel, is not counted. */
#define FCM_MEASURED_MAX (PAYLOAD_FCM_MAX + sizeof TOKEN_SENTINEL - 1)

/* Makes the jansson tree of a body. */
typedef json_t *payload_build_fn(const struct notification *n, const char *body,
    int with_badge, int *error);
/* Writes a body into out: through a jansson tree or directly. */
typedef int payload_write_fn(const struct notification *n, const char *body,
    int with_badge, struct payload *out);

const char *
payload_strerror(int error)
{
	switch (error) {
	case PAYLOAD_OK: return "ok";
	case PAYLOAD_ETOOBIG: return "payload too large even with the body shortened";
	case PAYLOAD_EOVERRIDE: return "an override makes the payload invalid";
	case PAYLOAD_EDATA: return "the notification's data is not JSON";
	}
	return "unknown payload error";
}

/* Merge src into dst: objects recursively, other values replaced, null deletes. */
static void
merge(json_t *dst, const json_t *src)
{
	const char *key;
	json_t *value, *existing;

	json_object_foreach((json_t *)src, key, value) {
		existing = json_object_get(dst, key);
		if (json_is_null(value))
			json_object_del(dst, key);
		else if (json_is_object(value) && json_is_object(existing))
			merge(existing, value);
		else
			json_object_set(dst, key, value);
	}
}

/* The APNs body as a jansson tree, with the apns.payload override merged in. */
static json_t *
apns_build(const struct notification *n, const char *body, int with_badge, int *error)
{
	json_t *root = json_object(), *aps = json_object(), *alert, *payload;
	const char *key;
	json_t *value;

	if (n->title != NULL || body != NULL) {
		alert = json_object();
		if (n->title != NULL)
			json_object_set_new(alert, "title", json_string(n->title));
		if (body != NULL)
			json_object_set_new(alert, "body", json_string(body));
		json_object_set_new(aps, "alert", alert);
	}
	if (with_badge)
		json_object_set_new(aps, "badge", json_integer(BADGE_SENTINEL));
	else if (n->badge >= 0)
		json_object_set_new(aps, "badge", json_integer(n->badge));
	if (n->sound != NULL)
		json_object_set_new(aps, "sound", json_string(n->sound));
	if (n->thread_id != NULL)
		json_object_set_new(aps, "thread-id", json_string(n->thread_id));
	if (n->content_available)
		json_object_set_new(aps, "content-available", json_integer(1));
	if (n->mutable_content)
		json_object_set_new(aps, "mutable-content", json_integer(1));
	if (n->interruption_level != NULL)
		json_object_set_new(aps, "interruption-level", json_string(n->interruption_level));
	json_object_set_new(root, "aps", aps);
	if (n->data != NULL) {
		json_object_foreach(n->data, key, value) {
			if (strcmp(key, "aps") != 0)
				json_object_set(root, key, value);
		}
	}
	payload = n->apns != NULL ? json_object_get(n->apns, "payload") : NULL;
	if (payload != NULL) {
		merge(root, payload);
		if (!json_is_object(json_object_get(root, "aps"))) {
			*error = PAYLOAD_EOVERRIDE;
			json_decref(root);
			return NULL;
		}
	}
	return root;
}

/* The FCM body as a jansson tree, with the fcm override merged into "message". */
static json_t *
fcm_build(const struct notification *n, const char *body, int with_badge, int *error)
{
	json_t *root = json_object(), *message = json_object(), *notification, *android;
	json_t *android_notification, *apns, *apns_headers, *aps;
	char ttl[32], priority[4];

	json_object_set_new(message, "token", json_string(TOKEN_SENTINEL));
	if (n->title != NULL || body != NULL) {
		notification = json_object();
		if (n->title != NULL)
			json_object_set_new(notification, "title", json_string(n->title));
		if (body != NULL)
			json_object_set_new(notification, "body", json_string(body));
		json_object_set_new(message, "notification", notification);
	}
	/* A copy: merging the fcm override's data must not change the notification's. */
	if (n->data != NULL)
		json_object_set_new(message, "data", json_copy(n->data));

	android = json_object();
	android_notification = json_object();
	json_object_set_new(android, "priority",
	    json_string(n->priority == NOTIFICATION_PRIORITY_HIGH ? "HIGH" : "NORMAL"));
	if (n->ttl >= 0) {
		snprintf(ttl, sizeof ttl, "%" PRId64 "s", n->ttl);
		json_object_set_new(android, "ttl", json_string(ttl));
	}
	if (n->collapse_id != NULL)
		json_object_set_new(android, "collapse_key", json_string(n->collapse_id));
	if (n->thread_id != NULL)
		json_object_set_new(android_notification, "tag", json_string(n->thread_id));
	if (n->sound != NULL)
		json_object_set_new(android_notification, "sound", json_string(n->sound));
	if (with_badge)
		json_object_set_new(android_notification, "notification_count",
		    json_integer(BADGE_SENTINEL));
	else if (n->badge >= 0)
		json_object_set_new(android_notification, "notification_count",
		    json_integer(n->badge));
	if (json_object_size(android_notification) > 0 && (n->title != NULL || body != NULL))
		json_object_set_new(android, "notification", android_notification);
	else
		json_decref(android_notification);
	json_object_set_new(message, "android", android);

	/* FCM forwards the apns block to APNs for iOS apps registered with Firebase. */
	apns = json_object();
	apns_headers = json_object();
	aps = json_object();
	snprintf(priority, sizeof priority, "%d",
	    n->priority == NOTIFICATION_PRIORITY_HIGH && !(n->content_available &&
	    n->title == NULL && body == NULL) ? 10 : 5);
	json_object_set_new(apns_headers, "apns-priority", json_string(priority));
	if (n->collapse_id != NULL)
		json_object_set_new(apns_headers, "apns-collapse-id", json_string(n->collapse_id));
	if (with_badge)
		json_object_set_new(aps, "badge", json_integer(BADGE_SENTINEL));
	else if (n->badge >= 0)
		json_object_set_new(aps, "badge", json_integer(n->badge));
	if (n->sound != NULL)
		json_object_set_new(aps, "sound", json_string(n->sound));
	if (n->thread_id != NULL)
		json_object_set_new(aps, "thread-id", json_string(n->thread_id));
	if (n->content_available)
		json_object_set_new(aps, "content-available", json_integer(1));
	if (n->mutable_content)
		json_object_set_new(aps, "mutable-content", json_integer(1));
	json_object_set_new(apns, "headers", apns_headers);
	if (json_object_size(aps) > 0)
		json_object_set_new(apns, "payload", json_pack("{s:o}", "aps", aps));
	else
		json_decref(aps);
	json_object_set_new(message, "apns", apns);

	if (n->fcm != NULL) {
		merge(message, n->fcm);
		/* The recipient is ours to set. */
		if (json_object_get(message, "topic") != NULL ||
		    json_object_get(message, "condition") != NULL ||
		    !json_is_string(json_object_get(message, "token")) ||
		    strcmp(json_string_value(json_object_get(message, "token")),
		    TOKEN_SENTINEL) != 0) {
			*error = PAYLOAD_EOVERRIDE;
			json_decref(message);
			json_decref(root);
			return NULL;
		}
	}
	json_object_set_new(root, "message", message);
	return root;
}

/*
 * Cut the sentinels out of serialized text and remember where they were. The token
 * is spliced once, at its first place (the FCM message's first member): a title or a
 * value that happens to read like the sentinel later in the text stays as it is.
 */
static void
extract_splices(char *text, int with_token, struct payload *out)
{
	static const struct {
		const char *needle;
		enum payload_splice_kind kind;
	} sentinels[] = {
		{ "\"" TOKEN_SENTINEL "\"", PAYLOAD_SPLICE_TOKEN },
		{ "\"badge\":" BADGE_SENTINEL_TEXT, PAYLOAD_SPLICE_BADGE },
		{ "\"notification_count\":" BADGE_SENTINEL_TEXT, PAYLOAD_SPLICE_BADGE },
	};
	size_t len = strlen(text);
	char *from = text;

	out->splices = 0;
	for (;;) {
		char *first = NULL, *p;
		size_t which = 0, cut_len, keep;

		for (size_t i = 0; i < sizeof sentinels / sizeof sentinels[0]; i++) {
			if (sentinels[i].kind == PAYLOAD_SPLICE_TOKEN && !with_token)
				continue;
			p = strstr(from, sentinels[i].needle);
			if (p != NULL && (first == NULL || p < first)) {
				first = p;
				which = i;
			}
		}
		if (first == NULL || out->splices == PAYLOAD_SPLICES_MAX)
			break;
		if (sentinels[which].kind == PAYLOAD_SPLICE_TOKEN) {
			keep = 1;	/* keep the opening quote */
			cut_len = strlen(TOKEN_SENTINEL);
			with_token = 0;
		} else {
			keep = strlen(sentinels[which].needle) - strlen(BADGE_SENTINEL_TEXT);
			cut_len = strlen(BADGE_SENTINEL_TEXT);
		}
		first += keep;
		memmove(first, first + cut_len, len - (size_t)(first - text) - cut_len + 1);
		len -= cut_len;
		out->splice_at[out->splices] = (size_t)(first - text);
		out->splice_kind[out->splices] = sentinels[which].kind;
		out->splices++;
		from = first;
	}
	out->text = text;
	out->len = len;
}

/* Build a jansson tree with build, then serialize it into out. */
static int
write_tree(payload_build_fn *build, const struct notification *n, const char *body,
    int with_badge, int with_token, struct payload *out)
{
	json_t *root;
	char *text;
	int error = PAYLOAD_OK;

	if ((root = build(n, body, with_badge, &error)) == NULL)
		return error;
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text == NULL)
		fatalx("out of memory serializing a payload");
	extract_splices(text, with_token, out);
	return PAYLOAD_OK;
}

/* The APNs body through jansson, which the apns.payload override needs. */
static int
apns_write_tree(const struct notification *n, const char *body, int with_badge,
    struct payload *out)
{
	return write_tree(apns_build, n, body, with_badge, 0, out);
}

/* The FCM body through jansson, which the fcm override needs. */
static int
fcm_write_tree(const struct notification *n, const char *body, int with_badge,
    struct payload *out)
{
	return write_tree(fcm_build, n, body, with_badge, 1, out);
}

/*
 * The direct writer: the same JSON as json_dumps(..., JSON_COMPACT) of the trees above,
 * written straight into the payload's text (jsonw.h), recording splice points as it
 * goes. The notification's strings are valid UTF-8, as notification_from_json
 * guarantees (jansson would drop a member whose value is not; jsonw would mend it).
 */
struct writer {
	struct jsonw json;
	struct payload *out;
};

/* Start an empty payload. */
static void
writer_start(struct writer *w, struct payload *out)
{
	memset(out, 0, sizeof *out);
	w->out = out;
	jsonw_init(&w->json, 512);	/* most bodies fit without growing */
}

/* Append len bytes. */
static void
write_bytes(struct writer *w, const char *bytes, size_t len)
{
	jsonw_bytes(&w->json, bytes, len);
}

/* Append a string of JSON syntax. */
static void
write_text(struct writer *w, const char *text)
{
	jsonw_raw(&w->json, text);
}

/* The text is the payload's. */
static void
writer_finish(struct writer *w)
{
	w->out->text = jsonw_take(&w->json, &w->out->len);
}

/* A JSON string of len bytes. */
static void
write_string(struct writer *w, const char *s, size_t len)
{
	jsonw_string(&w->json, s, len);
}

/* Start a member of the object being written. */
static void
write_key(struct writer *w, const char *key)
{
	jsonw_key(&w->json, key);
}

/* A string member, or nothing if value is NULL. */
static void
write_string_member(struct writer *w, const char *key, const char *value)
{
	jsonw_string_member(&w->json, key, value);
}

/* An integer member. */
static void
write_integer_member(struct writer *w, const char *key, int64_t value)
{
	jsonw_integer_member(&w->json, key, value);
}

/* Record that the value of kind goes here when rendering. */
static void
write_splice(struct writer *w, enum payload_splice_kind kind)
{
	struct payload *out = w->out;

	out->splice_at[out->splices] = w->json.len;
	out->splice_kind[out->splices] = kind;
	out->splices++;
}

/* The badge member under key: spliced per recipient, n->badge, or nothing. */
static void
write_badge_member(struct writer *w, const char *key, const struct notification *n,
    int with_badge)
{
	if (with_badge) {
		write_key(w, key);
		write_splice(w, PAYLOAD_SPLICE_BADGE);
	} else if (n->badge >= 0)
		write_integer_member(w, key, n->badge);
}

/* The aps members both providers' APNs payloads have: badge, sound, thread, flags. */
static void
write_aps_members(struct writer *w, const struct notification *n, int with_badge)
{
	write_badge_member(w, "badge", n, with_badge);
	write_string_member(w, "sound", n->sound);
	write_string_member(w, "thread-id", n->thread_id);
	if (n->content_available)
		write_integer_member(w, "content-available", 1);
	if (n->mutable_content)
		write_integer_member(w, "mutable-content", 1);
}

/* json_dump_callback's sink: append to the writer. */
static int
write_dumped(const char *buffer, size_t size, void *data)
{
	write_bytes(data, buffer, size);
	return 0;
}

/* The members of the data object, except one named skip (NULL to keep all). */
static void
write_data_members(struct writer *w, json_t *data, const char *skip)
{
	const char *key;
	json_t *value;

	json_object_foreach(data, key, value) {
		if (skip != NULL && strcmp(key, skip) == 0)
			continue;
		write_key(w, key);
		if (json_is_string(value))
			write_string(w, json_string_value(value), json_string_length(value));
		else if (json_dump_callback(value, write_dumped, w,
		    JSON_COMPACT | JSON_ENCODE_ANY) != 0)
			fatalx("cannot serialize a payload's data");
	}
}

/* The APNs body written directly, member for member as apns_build makes it. */
static int
apns_write(const struct notification *n, const char *body, int with_badge,
    struct payload *out)
{
	struct writer w;

	writer_start(&w, out);
	write_text(&w, "{\"aps\":{");
	if (n->title != NULL || body != NULL) {
		write_key(&w, "alert");
		write_text(&w, "{");
		write_string_member(&w, "title", n->title);
		write_string_member(&w, "body", body);
		write_text(&w, "}");
	}
	write_aps_members(&w, n, with_badge);
	write_string_member(&w, "interruption-level", n->interruption_level);
	write_text(&w, "}");
	/* Data keys go beside "aps", which they cannot replace. */
	if (n->data_members != NULL && n->data_members[0] != '\0') {
		write_text(&w, ",");
		write_text(&w, n->data_members);
	} else if (n->data != NULL)
		write_data_members(&w, n->data, "aps");
	write_text(&w, "}");
	writer_finish(&w);
	return PAYLOAD_OK;
}

/* The FCM body written directly, member for member as fcm_build makes it. */
static int
fcm_write(const struct notification *n, const char *body, int with_badge,
    struct payload *out)
{
	struct writer w;
	char ttl[32];
	int has_alert = n->title != NULL || body != NULL;

	writer_start(&w, out);
	write_text(&w, "{\"message\":{\"token\":\"");
	write_splice(&w, PAYLOAD_SPLICE_TOKEN);
	write_text(&w, "\"");
	if (has_alert) {
		write_key(&w, "notification");
		write_text(&w, "{");
		write_string_member(&w, "title", n->title);
		write_string_member(&w, "body", body);
		write_text(&w, "}");
	}
	if (n->data_members != NULL) {
		write_key(&w, "data");
		write_text(&w, "{");
		write_text(&w, n->data_members);
		write_text(&w, "}");
	} else if (n->data != NULL) {
		write_key(&w, "data");
		write_text(&w, "{");
		write_data_members(&w, n->data, NULL);
		write_text(&w, "}");
	}

	write_key(&w, "android");
	write_text(&w, "{");
	write_string_member(&w, "priority",
	    n->priority == NOTIFICATION_PRIORITY_HIGH ? "HIGH" : "NORMAL");
	if (n->ttl >= 0) {
		snprintf(ttl, sizeof ttl, "%" PRId64 "s", n->ttl);
		write_string_member(&w, "ttl", ttl);
	}
	write_string_member(&w, "collapse_key", n->collapse_id);
	if (has_alert && (n->thread_id != NULL || n->sound != NULL || with_badge ||
	    n->badge >= 0)) {
		write_key(&w, "notification");
		write_text(&w, "{");
		write_string_member(&w, "tag", n->thread_id);
		write_string_member(&w, "sound", n->sound);
		write_badge_member(&w, "notification_count", n, with_badge);
		write_text(&w, "}");
	}
	write_text(&w, "}");

	/* FCM forwards the apns block to APNs for iOS apps registered with Firebase. */
	write_key(&w, "apns");
	write_text(&w, "{\"headers\":{");
	write_string_member(&w, "apns-priority",
	    n->priority == NOTIFICATION_PRIORITY_HIGH && !(n->content_available && !has_alert) ?
	    "10" : "5");
	write_string_member(&w, "apns-collapse-id", n->collapse_id);
	write_text(&w, "}");
	if (with_badge || n->badge >= 0 || n->sound != NULL || n->thread_id != NULL ||
	    n->content_available || n->mutable_content) {
		write_key(&w, "payload");
		write_text(&w, "{\"aps\":{");
		write_aps_members(&w, n, with_badge);
		write_text(&w, "}}");
	}
	write_text(&w, "}");
	write_text(&w, "}}");	/* the message, the body */
	writer_finish(&w);
	return PAYLOAD_OK;
}

/* The length with the sentinels in place, which is what the limits are measured on. */
static size_t
measured_len(const struct payload *p)
{
	size_t len = p->len;

	for (size_t i = 0; i < p->splices; i++)
		len += p->splice_kind[i] == PAYLOAD_SPLICE_TOKEN ? strlen(TOKEN_SENTINEL) :
		    strlen(BADGE_SENTINEL_TEXT);
	return len;
}

/* Build, shortening the body by binary search on its length until it fits. */
static int
build_fitting(const struct notification *n, int with_badge, size_t limit,
    payload_write_fn *write, struct payload *out)
{
	struct payload attempt, best;
	char *shortened;
	size_t body_len, lo, hi;
	int error;

	memset(out, 0, sizeof *out);
	if ((error = write(n, n->body, with_badge, out)) != PAYLOAD_OK)
		return error;
	if (measured_len(out) <= limit)
		return PAYLOAD_OK;
	payload_free(out);
	if (n->body == NULL)
		return PAYLOAD_ETOOBIG;
	memset(&best, 0, sizeof best);
	body_len = strlen(n->body);
	lo = 0;
	hi = body_len;
	shortened = xmalloc(body_len + sizeof ELLIPSIS);
	while (lo <= hi) {
		size_t mid = lo + (hi - lo) / 2, cut = utf8_cut(n->body, body_len, mid);

		memcpy(shortened, n->body, cut);
		memcpy(shortened + cut, ELLIPSIS, sizeof ELLIPSIS);
		if ((error = write(n, shortened, with_badge, &attempt)) != PAYLOAD_OK)
			break;
		if (measured_len(&attempt) <= limit) {
			payload_free(&best);
			best = attempt;
			lo = mid + 1;
		} else {
			payload_free(&attempt);
			if (mid == 0)
				break;
			hi = mid - 1;
		}
	}
	free(shortened);
	if (error == PAYLOAD_OK && best.text == NULL)
		error = PAYLOAD_ETOOBIG;
	if (error != PAYLOAD_OK) {
		payload_free(&best);
		return error;
	}
	*out = best;
	out->shortened = 1;
	return PAYLOAD_OK;
}

char *
payload_members_text(const char *const *keys, const char *const *values, size_t count)
{
	struct payload text;
	struct writer w;

	writer_start(&w, &text);
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			write_text(&w, ",");
		write_string(&w, keys[i], strlen(keys[i]));
		write_text(&w, ":");
		write_string(&w, values[i], strlen(values[i]));
	}
	writer_finish(&w);
	return text.text;
}

/*
 * Build through jansson, which merging an override needs. Serialized data members
 * become the object the trees are made of first.
 */
static int
build_generic(const struct notification *n, int with_badge, size_t limit,
    payload_write_fn *write, struct payload *out)
{
	struct notification with_data;
	json_error_t error;
	char *object;
	int rc;

	if (n->data_members == NULL)
		return build_fitting(n, with_badge, limit, write, out);
	with_data = *n;
	with_data.data_members = NULL;
	object = xasprintf("{%s}", n->data_members);
	with_data.data = json_loads(object, 0, &error);
	free(object);
	/* Written by payload_members_text, so they read back; if not, this one fails. */
	if (with_data.data == NULL) {
		memset(out, 0, sizeof *out);
		log_error("notification data members are not JSON", "error", error.text, NULL);
		return PAYLOAD_EDATA;
	}
	rc = build_fitting(&with_data, with_badge, limit, write, out);
	json_decref(with_data.data);
	return rc;
}

int
payload_apns_build(const struct notification *n, int with_badge, struct payload *out)
{
	/* Only an apns.payload override needs jansson, to merge it. */
	if (n->apns != NULL && json_object_get(n->apns, "payload") != NULL)
		return payload_apns_build_generic(n, with_badge, out);
	return build_fitting(n, with_badge, PAYLOAD_APNS_MAX, apns_write, out);
}

int
payload_fcm_build(const struct notification *n, int with_badge, struct payload *out)
{
	/* Only an fcm override needs jansson, to merge it. */
	if (n->fcm != NULL)
		return payload_fcm_build_generic(n, with_badge, out);
	return build_fitting(n, with_badge, FCM_MEASURED_MAX, fcm_write, out);
}

int
payload_apns_build_generic(const struct notification *n, int with_badge,
    struct payload *out)
{
	return build_generic(n, with_badge, PAYLOAD_APNS_MAX, apns_write_tree, out);
}

int
payload_fcm_build_generic(const struct notification *n, int with_badge,
    struct payload *out)
{
	return build_generic(n, with_badge, FCM_MEASURED_MAX, fcm_write_tree, out);
}

size_t
payload_render_max(const struct payload *p, size_t token_len)
{
	size_t max = p->len;

	for (size_t i = 0; i < p->splices; i++)
		max += p->splice_kind[i] == PAYLOAD_SPLICE_TOKEN ? token_len * 2 :
		    PAYLOAD_BADGE_DIGITS;
	return max;
}

size_t
payload_render(const struct payload *p, const char *token, int64_t badge, char *buf)
{
	size_t from = 0, w = 0;
	char digits[24];
	int n;

	for (size_t i = 0; i < p->splices; i++) {
		memcpy(buf + w, p->text + from, p->splice_at[i] - from);
		w += p->splice_at[i] - from;
		from = p->splice_at[i];
		if (p->splice_kind[i] == PAYLOAD_SPLICE_TOKEN) {
			/* Tokens are printable ASCII; escape what JSON needs escaped. */
			for (const char *t = token; *t != '\0'; t++) {
				if (*t == '"' || *t == '\\')
					buf[w++] = '\\';
				buf[w++] = *t;
			}
		} else {
			n = snprintf(digits, sizeof digits, "%" PRId64, badge < 0 ? 0 : badge);
			memcpy(buf + w, digits, (size_t)n);
			w += (size_t)n;
		}
	}
	memcpy(buf + w, p->text + from, p->len - from);
	w += p->len - from;
	return w;
}

void
payload_free(struct payload *p)
{
	free(p->text);
	memset(p, 0, sizeof *p);
}

/* Build a platform's payload once: a message to iPhones only never builds FCM's. */
void
payload_content_prepare(struct push_content *c, enum device_platform platform)
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
