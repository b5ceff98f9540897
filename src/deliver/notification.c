/* The provider-independent notification and its validation. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notification.h"
#include "xmalloc.h"

static const char *const notification_fields[] = {
	"title", "body", "data", "badge", "sound", "thread_id", "collapse_id", "priority",
	"ttl", "content_available", "mutable_content", "interruption_level", "apns", "fcm",
	NULL
};

static const char *const interruption_levels[] = {
	"passive", "active", "time-sensitive", "critical", NULL
};

/* FCM refuses these data keys (and any starting with "google" or "gcm"). */
static const char *const reserved_data_keys[] = { "from", "message_type", NULL };

static int __attribute__((format(printf, 4, 5)))
fail(struct model_error *err, const char *prefix, const char *field, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	model_error_set(err, MODEL_ERROR_INVALID, prefix, field, what);
	return -1;
}

void
notification_init(struct notification *n)
{
	memset(n, 0, sizeof *n);
	n->badge = -1;
	n->ttl = -1;
	n->priority = NOTIFICATION_PRIORITY_HIGH;
}

/* An optional bounded string: 0 (set or absent/null) or -1. */
static int
take_string(const json_t *o, const char *prefix, const char *field, size_t max, char **out,
    struct model_error *err)
{
	json_t *v = json_object_get(o, field);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(err, prefix, field, "must be a string");
	if (json_string_length(v) > max)
		return fail(err, prefix, field, "must be at most %zu bytes", max);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(err, prefix, field, "must not contain NUL characters");
	*out = xstrdup(json_string_value(v));
	return 0;
}

static int
take_bool(const json_t *o, const char *prefix, const char *field, int *out,
    struct model_error *err)
{
	json_t *v = json_object_get(o, field);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return fail(err, prefix, field, "must be a boolean");
	*out = json_is_true(v);
	return 0;
}

static int
take_integer(const json_t *o, const char *prefix, const char *field, int64_t min,
    int64_t max, int64_t *out, struct model_error *err)
{
	json_t *v = json_object_get(o, field);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return fail(err, prefix, field, "must be an integer from %lld to %lld",
		    (long long)min, (long long)max);
	*out = json_integer_value(v);
	return 0;
}

/* data: an object whose values are all strings, without FCM's reserved keys. */
static int
take_data(const json_t *o, const char *prefix, json_t **out, struct model_error *err)
{
	json_t *v = json_object_get(o, "data"), *value;
	const char *key;
	char field[160];

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return fail(err, prefix, "data", "must be an object of strings");
	json_object_foreach(v, key, value) {
		snprintf(field, sizeof field, "data.%s", key);
		if (!json_is_string(value))
			return fail(err, prefix, field, "must be a string");
		for (size_t i = 0; reserved_data_keys[i] != NULL; i++) {
			if (strcmp(key, reserved_data_keys[i]) == 0)
				return fail(err, prefix, field, "is a reserved key");
		}
		if (strncmp(key, "google", 6) == 0 || strncmp(key, "gcm", 3) == 0)
			return fail(err, prefix, field, "is a reserved key");
	}
	*out = json_incref(v);
	return 0;
}

/* apns: {"headers": {string: string}, "payload": {...}}. */
static int
take_apns(const json_t *o, const char *prefix, json_t **out, struct model_error *err)
{
	json_t *v = json_object_get(o, "apns"), *headers, *payload, *value;
	const char *key;

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return fail(err, prefix, "apns", "must be an object");
	json_object_foreach(v, key, value) {
		if (strcmp(key, "headers") != 0 && strcmp(key, "payload") != 0)
			return fail(err, prefix, "apns", "unknown field '%s' (headers, payload)",
			    key);
	}
	headers = json_object_get(v, "headers");
	if (headers != NULL) {
		if (!json_is_object(headers))
			return fail(err, prefix, "apns.headers", "must be an object of strings");
		json_object_foreach(headers, key, value) {
			if (!json_is_string(value) || strncmp(key, "apns-", 5) != 0)
				return fail(err, prefix, "apns.headers",
				    "must map apns-* header names to strings");
			for (const char *c = json_string_value(value); *c != '\0'; c++) {
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					return fail(err, prefix, "apns.headers",
					    "values must not contain control characters");
			}
			for (const char *c = key; *c != '\0'; c++) {
				if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				    (*c >= '0' && *c <= '9') || *c == '-'))
					return fail(err, prefix, "apns.headers",
					    "must map apns-* header names to strings");
			}
		}
	}
	payload = json_object_get(v, "payload");
	if (payload != NULL && !json_is_object(payload))
		return fail(err, prefix, "apns.payload", "must be an object");
	*out = json_incref(v);
	return 0;
}

int
notification_from_json(const json_t *o, const char *prefix, struct notification *n,
    struct model_error *err)
{
	const char *key;
	json_t *value, *v;
	char *level = NULL;
	int ok = 0;

	notification_init(n);
	if (!json_is_object(o))
		return fail(err, "", prefix[0] != '\0' ? "notification" : "body",
		    "must be an object");
	json_object_foreach((json_t *)o, key, value) {
		size_t i;
		for (i = 0; notification_fields[i] != NULL; i++) {
			if (strcmp(key, notification_fields[i]) == 0)
				break;
		}
		if (notification_fields[i] == NULL)
			return fail(err, prefix, key, "unknown field");
	}
	if (take_string(o, prefix, "title", NOTIFICATION_TEXT_MAX, &n->title, err) ||
	    take_string(o, prefix, "body", NOTIFICATION_TEXT_MAX, &n->body, err) ||
	    take_data(o, prefix, &n->data, err) ||
	    take_integer(o, prefix, "badge", 0, 999999, &n->badge, err) ||
	    take_string(o, prefix, "sound", 256, &n->sound, err) ||
	    take_string(o, prefix, "thread_id", NOTIFICATION_THREAD_ID_MAX, &n->thread_id, err) ||
	    take_string(o, prefix, "collapse_id", NOTIFICATION_COLLAPSE_ID_MAX, &n->collapse_id,
	    err) ||
	    take_integer(o, prefix, "ttl", 0, NOTIFICATION_TTL_MAX, &n->ttl, err) ||
	    take_bool(o, prefix, "content_available", &n->content_available, err) ||
	    take_bool(o, prefix, "mutable_content", &n->mutable_content, err) ||
	    take_string(o, prefix, "interruption_level", 32, &level, err) ||
	    take_apns(o, prefix, &n->apns, err))
		goto fail;
	v = json_object_get(o, "priority");
	if (v != NULL && !json_is_null(v)) {
		if (json_is_string(v) && strcmp(json_string_value(v), "high") == 0)
			n->priority = NOTIFICATION_PRIORITY_HIGH;
		else if (json_is_string(v) && strcmp(json_string_value(v), "normal") == 0)
			n->priority = NOTIFICATION_PRIORITY_NORMAL;
		else {
			fail(err, prefix, "priority", "must be one of: high, normal");
			goto fail;
		}
	}
	if (level != NULL) {
		for (size_t i = 0; interruption_levels[i] != NULL; i++)
			ok |= strcmp(level, interruption_levels[i]) == 0;
		if (!ok) {
			fail(err, prefix, "interruption_level",
			    "must be one of: passive, active, time-sensitive, critical");
			goto fail;
		}
		n->interruption_level = level;
		level = NULL;
	}
	v = json_object_get(o, "fcm");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_object(v)) {
			fail(err, prefix, "fcm", "must be an object");
			goto fail;
		}
		n->fcm = json_incref(v);
	}
	if (n->title == NULL && n->body == NULL && !n->content_available && n->data == NULL &&
	    n->data_members == NULL) {
		fail(err, prefix, "body", "is required unless there is a title, or the "
		    "notification is silent (content_available or data)");
		err->kind = MODEL_ERROR_MISSING;
		goto fail;
	}
	return 0;
fail:
	free(level);
	notification_free(n);
	return -1;
}

void
notification_free(struct notification *n)
{
	free(n->title);
	free(n->body);
	json_decref(n->data);
	free(n->data_members);
	free(n->sound);
	free(n->thread_id);
	free(n->collapse_id);
	free(n->interruption_level);
	json_decref(n->apns);
	json_decref(n->fcm);
	notification_init(n);
}
