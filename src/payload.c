/* APNs and FCM request bodies, serialized once and spliced per device. */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "payload.h"
#include "xmalloc.h"

/* Placeholders that cannot come from user input in the positions we search. */
#define TOKEN_SENTINEL "@@pushrelay-token@@"
#define BADGE_SENTINEL 1999999999
#define BADGE_SENTINEL_TEXT "1999999999"
#define ELLIPSIS "\xe2\x80\xa6"

typedef json_t *payload_build_fn(const struct notification *n, const char *body,
    int with_badge, int *error);

const char *
payload_strerror(int error)
{
	switch (error) {
	case PAYLOAD_OK: return "ok";
	case PAYLOAD_ETOOBIG: return "payload too large even with the body shortened";
	case PAYLOAD_EOVERRIDE: return "an override makes the payload invalid";
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
	if (n->data != NULL)
		json_object_set(message, "data", n->data);

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

/* Serialize, then cut the sentinels out and remember where they were. */
static void
extract_splices(char *text, struct payload *out)
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

	out->splices = 0;
	for (;;) {
		char *first = NULL, *p;
		size_t which = 0, cut_len, keep;

		for (size_t i = 0; i < sizeof sentinels / sizeof sentinels[0]; i++) {
			p = strstr(text, sentinels[i].needle);
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
	}
	out->text = text;
	out->len = len;
}

/* The longest prefix of s, at most max bytes, that ends on a character boundary. */
static size_t
utf8_prefix(const char *s, size_t max)
{
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* Serialized size with the sentinels counted at their widest. */
static char *
dump(json_t *root, size_t *len)
{
	char *text = json_dumps(root, JSON_COMPACT);

	if (text == NULL)
		fatalx("out of memory serializing a payload");
	*len = strlen(text);
	return text;
}

/* Build, shortening the body by binary search on its length until it fits. */
static int
build_fitting(const struct notification *n, int with_badge, size_t limit,
    size_t token_reserve, payload_build_fn *build, struct payload *out)
{
	json_t *root;
	char *text, *best = NULL, *shortened;
	size_t len, body_len, lo, hi, best_len = 0;
	int error = PAYLOAD_OK;

	memset(out, 0, sizeof *out);
	if ((root = build(n, n->body, with_badge, &error)) == NULL)
		return error;
	text = dump(root, &len);
	json_decref(root);
	/* The token's sentinel stands in the text; the real token may be longer. */
	if (len + token_reserve <= limit) {
		extract_splices(text, out);
		return PAYLOAD_OK;
	}
	free(text);
	if (n->body == NULL)
		return PAYLOAD_ETOOBIG;
	body_len = strlen(n->body);
	lo = 0;
	hi = body_len;
	shortened = xmalloc(body_len + sizeof ELLIPSIS);
	while (lo <= hi) {
		size_t mid = lo + (hi - lo) / 2, cut = utf8_prefix(n->body, mid);

		memcpy(shortened, n->body, cut);
		memcpy(shortened + cut, ELLIPSIS, sizeof ELLIPSIS);
		root = build(n, shortened, with_badge, &error);
		text = dump(root, &len);
		json_decref(root);
		if (len + token_reserve <= limit) {
			free(best);
			best = text;
			best_len = cut;
			lo = mid + 1;
		} else {
			free(text);
			if (mid == 0)
				break;
			hi = mid - 1;
		}
	}
	free(shortened);
	if (best == NULL)
		return PAYLOAD_ETOOBIG;
	(void)best_len;
	extract_splices(best, out);
	out->shortened = 1;
	return PAYLOAD_OK;
}

int
payload_apns_build(const struct notification *n, int with_badge, struct payload *out)
{
	return build_fitting(n, with_badge, PAYLOAD_APNS_MAX, 0, apns_build, out);
}

int
payload_fcm_build(const struct notification *n, int with_badge, struct payload *out)
{
	/* FCM's limit is on the message's content; the token is not counted. */
	return build_fitting(n, with_badge, PAYLOAD_FCM_MAX + strlen(TOKEN_SENTINEL), 0,
	    fcm_build, out);
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
