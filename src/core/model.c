/* Validation of registry records and their mapping to and from JSON. */
#include "autoconf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jsonw.h"
#include "model.h"
#include "utf8.h"
#include "xmalloc.h"

static const char *const device_fields[] = {
	"device_id", "client_id", "platform", "token", "app_id", "environment", "locale",
	"metadata", NULL
};
static const char *const device_read_only[] = {
	"created_at", "updated_at", "last_success_at", "last_error", NULL
};
static const char *const prefs_fields[] = { "muted_until", "mentions_only", NULL };
static const char *const member_read_only[] = { "room_id", "client_id", "joined_at", NULL };

/* Record an error as "<field>: <message>"; see model_error_set(). */
static int __attribute__((format(printf, 4, 5)))
model_fail(struct model_error *err, enum model_error_kind kind, const char *field,
    const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	model_error_set(err, kind, "", field, what);
	return -1;
}

/*
 * The field name may be a client's (an unknown key) and of any length: both texts are
 * cut on a character boundary and what is not UTF-8 is replaced, since they go into a
 * JSON body. The message shortens the name rather than the reason, so that the
 * reason is always whole.
 */
void
model_error_set(struct model_error *err, enum model_error_kind kind, const char *prefix,
    const char *field, const char *what)
{
	char *name = xasprintf("%s%s", prefix, field), *message;
	size_t len = strlen(name), reason = strlen(what) + 2, budget;

	err->kind = kind;
	utf8_sanitize(err->field, sizeof err->field, name, len);
	budget = reason < sizeof err->message ? sizeof err->message - 1 - reason : 0;
	message = xasprintf("%.*s: %s", (int)utf8_cut(name, len, budget), name, what);
	utf8_sanitize(err->message, sizeof err->message, message, strlen(message));
	free(name);
	free(message);
}

const char *
model_platform_name(enum device_platform platform)
{
	return platform == DEVICE_PLATFORM_FCM ? "fcm" : "apns";
}

int
model_platform_from_string(const char *name, enum device_platform *out)
{
	if (strcmp(name, "apns") == 0)
		*out = DEVICE_PLATFORM_APNS;
	else if (strcmp(name, "fcm") == 0)
		*out = DEVICE_PLATFORM_FCM;
	else
		return -1;
	return 0;
}

const char *
model_environment_name(enum device_environment environment)
{
	return environment == DEVICE_ENVIRONMENT_SANDBOX ? "sandbox" : "production";
}

int
model_environment_from_string(const char *name, enum device_environment *out)
{
	if (strcmp(name, "production") == 0)
		*out = DEVICE_ENVIRONMENT_PRODUCTION;
	else if (strcmp(name, "sandbox") == 0)
		*out = DEVICE_ENVIRONMENT_SANDBOX;
	else
		return -1;
	return 0;
}

/* Is there a C0/C1 control character or DEL in s? */
static int
has_control(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 1;
		/* U+0080..U+009F are encoded as C2 80..C2 9F. */
		if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return 1;
	}
	return 0;
}

int
model_validate_id(const char *s, const char *what, struct model_error *err)
{
	size_t len = strlen(s);

	if (len == 0)
		return model_fail(err, MODEL_ERROR_INVALID, what, "must not be empty");
	if (len > MODEL_ID_MAX)
		return model_fail(err, MODEL_ERROR_INVALID, what, "must be at most %d bytes",
		    MODEL_ID_MAX);
	if (!utf8_valid(s, len))
		return model_fail(err, MODEL_ERROR_INVALID, what, "must be valid UTF-8");
	if (has_control(s))
		return model_fail(err, MODEL_ERROR_INVALID, what,
		    "must not contain control characters");
	return 0;
}

static int
name_in(const char *name, const char *const *list)
{
	for (; list != NULL && *list != NULL; list++) {
		if (strcmp(name, *list) == 0)
			return 1;
	}
	return 0;
}

int
model_check_fields(const json_t *body, const char *const *allowed,
    const char *const *read_only, struct model_error *err)
{
	const char *key;
	json_t *value;

	json_object_foreach((json_t *)body, key, value) {
		if (!name_in(key, allowed) && !name_in(key, read_only))
			return model_fail(err, MODEL_ERROR_INVALID, key, "unknown field");
	}
	return 0;
}

/* Get a string field: 0 and *out, 1 if absent (or null when nullable), -1 on error. */
static int
get_string(const json_t *body, const char *field, int nullable, const char **out,
    struct model_error *err)
{
	json_t *v = json_object_get(body, field);

	if (v == NULL || (nullable && json_is_null(v)))
		return 1;
	if (!json_is_string(v))
		return model_fail(err, MODEL_ERROR_INVALID, field, "must be a string");
	*out = json_string_value(v);
	if (strlen(*out) != json_string_length(v))
		return model_fail(err, MODEL_ERROR_INVALID, field,
		    "must not contain control characters");
	return 0;
}

/* A required string field. */
static int
require_string(const json_t *body, const char *field, const char **out,
    struct model_error *err)
{
	int rc = get_string(body, field, 0, out, err);

	if (rc == 1)
		return model_fail(err, MODEL_ERROR_MISSING, field, "is required");
	return rc;
}

static int
validate_apns_token(const char *token, struct model_error *err)
{
	size_t len = strlen(token);

	for (size_t i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)token[i]))
			return model_fail(err, MODEL_ERROR_INVALID, "token",
			    "must be hexadecimal for platform apns");
	}
	if (len % 2 != 0 || len < MODEL_APNS_TOKEN_MIN || len > MODEL_APNS_TOKEN_MAX)
		return model_fail(err, MODEL_ERROR_INVALID, "token",
		    "must be an even number of hexadecimal digits, %d to %d",
		    MODEL_APNS_TOKEN_MIN, MODEL_APNS_TOKEN_MAX);
	return 0;
}

static int
validate_fcm_token(const char *token, struct model_error *err)
{
	size_t len = strlen(token);

	if (len == 0)
		return model_fail(err, MODEL_ERROR_INVALID, "token", "must not be empty");
	if (len > MODEL_FCM_TOKEN_MAX)
		return model_fail(err, MODEL_ERROR_INVALID, "token", "must be at most %d bytes",
		    MODEL_FCM_TOKEN_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)token[i];
		if (c <= ' ' || c >= 0x7f)
			return model_fail(err, MODEL_ERROR_INVALID, "token",
			    "must not contain whitespace or control characters");
	}
	return 0;
}

static int
validate_app_id(const char *app_id, struct model_error *err)
{
	size_t len = strlen(app_id);

	if (len == 0)
		return model_fail(err, MODEL_ERROR_INVALID, "app_id", "must not be empty");
	if (len > MODEL_APP_ID_MAX)
		return model_fail(err, MODEL_ERROR_INVALID, "app_id", "must be at most %d bytes",
		    MODEL_APP_ID_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)app_id[i];
		if (c <= ' ' || c >= 0x7f)
			return model_fail(err, MODEL_ERROR_INVALID, "app_id",
			    "must be printable ASCII without spaces");
	}
	return 0;
}

/*
 * A language tag as apps report them: a 2 to 8 letter language, then subtags of 1 to
 * 8 letters or digits separated by '-' or '_' ("en", "en-GB", "zh_Hant_TW").
 */
static int
validate_locale(const char *locale, struct model_error *err)
{
	size_t len = strlen(locale), run = 0, i;
	int ok = len > 0 && len <= MODEL_LOCALE_MAX, first = 1;

	for (i = 0; ok && i <= len; i++) {
		unsigned char c = (unsigned char)locale[i];
		if (c == '\0' || c == '-' || c == '_') {
			ok = first ? run >= 2 && run <= 8 : run >= 1 && run <= 8;
			first = 0;
			run = 0;
		} else if (first ? isalpha(c) : isalnum(c))
			run++;
		else
			ok = 0;
	}
	if (!ok)
		return model_fail(err, MODEL_ERROR_INVALID, "locale",
		    "must be a language tag such as en-US");
	return 0;
}

/* Serialize the metadata object, bounded in size. */
static int
metadata_from_json(const json_t *v, char **out, struct model_error *err)
{
	char *text;

	if (v == NULL || json_is_null(v)) {
		*out = NULL;
		return 0;
	}
	if (!json_is_object(v))
		return model_fail(err, MODEL_ERROR_INVALID, "metadata", "must be an object");
	text = json_dumps(v, JSON_COMPACT);
	if (text == NULL)
		return model_fail(err, MODEL_ERROR_INVALID, "metadata", "must be an object");
	if (strlen(text) > MODEL_METADATA_MAX) {
		free(text);
		return model_fail(err, MODEL_ERROR_INVALID, "metadata",
		    "must be at most %d bytes as JSON", MODEL_METADATA_MAX);
	}
	*out = text;
	return 0;
}

int
model_device_from_json(const json_t *body, const char *device_id, struct device *out,
    struct model_error *err)
{
	const char *client_id, *platform, *token, *app_id, *environment = NULL, *locale = NULL;
	const char *body_id;
	enum device_platform p;
	enum device_environment env = DEVICE_ENVIRONMENT_PRODUCTION;
	char *metadata = NULL, *lowered;
	int rc;

	memset(out, 0, sizeof *out);
	if (model_check_fields(body, device_fields, device_read_only, err) != 0)
		return -1;
	if ((rc = get_string(body, "device_id", 0, &body_id, err)) == -1)
		return -1;
	if (rc == 0 && strcmp(body_id, device_id) != 0)
		return model_fail(err, MODEL_ERROR_CONFLICT, "device_id",
		    "does not match the URL");

	if (require_string(body, "client_id", &client_id, err) != 0 ||
	    model_validate_id(client_id, "client_id", err) != 0)
		return -1;
	if (require_string(body, "platform", &platform, err) != 0)
		return -1;
	if (model_platform_from_string(platform, &p) != 0)
		return model_fail(err, MODEL_ERROR_INVALID, "platform",
		    "must be one of: apns, fcm");
	if (require_string(body, "token", &token, err) != 0)
		return -1;
	if ((p == DEVICE_PLATFORM_APNS ? validate_apns_token(token, err) :
	    validate_fcm_token(token, err)) != 0)
		return -1;
	if (require_string(body, "app_id", &app_id, err) != 0 || validate_app_id(app_id, err))
		return -1;
	if ((rc = get_string(body, "environment", 1, &environment, err)) == -1)
		return -1;
	if (rc == 0) {
		if (model_environment_from_string(environment, &env) != 0)
			return model_fail(err, MODEL_ERROR_INVALID, "environment",
			    "must be one of: production, sandbox");
		if (env == DEVICE_ENVIRONMENT_SANDBOX && p != DEVICE_PLATFORM_APNS)
			return model_fail(err, MODEL_ERROR_INVALID, "environment",
			    "sandbox applies only to platform apns");
	}
	if ((rc = get_string(body, "locale", 1, &locale, err)) == -1)
		return -1;
	if (rc == 0 && validate_locale(locale, err) != 0)
		return -1;
	if (metadata_from_json(json_object_get(body, "metadata"), &metadata, err) != 0)
		return -1;

	out->device_id = xstrdup(device_id);
	out->client_id = xstrdup(client_id);
	out->platform = p;
	lowered = xstrdup(token);
	if (p == DEVICE_PLATFORM_APNS) {
		for (char *c = lowered; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	out->token = lowered;
	out->app_id = xstrdup(app_id);
	out->environment = env;
	out->locale = locale != NULL ? xstrdup(locale) : NULL;
	if (metadata != NULL) {
		/* jansson allocates with malloc too, but keep ownership uniform. */
		out->metadata = xstrdup(metadata);
		free(metadata);
	}
	return 0;
}

/* A time as an RFC 3339 string, or null for 0 ("never"). */
json_t *
model_time_json(int64_t ms)
{
	char buf[CLOCK_RFC3339_SIZE];

	if (ms == 0)
		return json_null();
	clock_format_rfc3339(ms, buf);
	return json_string(buf);
}

/*
 * A string, or null for NULL. last_error is a provider's text cut to a fixed size,
 * maybe inside a character: what is not UTF-8 is replaced rather than dropped.
 */
json_t *
model_text_json(const char *s)
{
	json_t *v;
	char *clean;

	if (s == NULL)
		return json_null();
	if ((v = json_string(s)) != NULL)
		return v;
	clean = utf8_sanitize_dup(s, strlen(s), 3 * strlen(s));
	v = json_string(clean);
	free(clean);
	return v;
}

/* A time member: an RFC 3339 string, or null for 0 ("never"). */
static void
write_time_member(struct jsonw *w, const char *key, int64_t ms)
{
	char buf[CLOCK_RFC3339_SIZE];

	if (ms == 0) {
		jsonw_string_or_null_member(w, key, NULL);
		return;
	}
	clock_format_rfc3339(ms, buf);
	jsonw_string_or_null_member(w, key, buf);
}

void
model_device_write(struct jsonw *w, const struct device *d)
{
	json_t *metadata = NULL;
	char *text;

	jsonw_raw(w, "{");
	jsonw_string_or_null_member(w, "device_id", d->device_id);
	jsonw_string_or_null_member(w, "client_id", d->client_id);
	jsonw_string_or_null_member(w, "platform", model_platform_name(d->platform));
	jsonw_string_or_null_member(w, "token", d->token);
	jsonw_string_or_null_member(w, "app_id", d->app_id);
	jsonw_string_or_null_member(w, "environment",
	    model_environment_name(d->environment));
	jsonw_string_or_null_member(w, "locale", d->locale);
	/* Stored as compact JSON, but read back through jansson: the store is not trusted. */
	jsonw_key(w, "metadata");
	if (d->metadata != NULL && (metadata = json_loads(d->metadata, 0, NULL)) != NULL &&
	    (text = json_dumps(metadata, JSON_COMPACT)) != NULL) {
		jsonw_raw(w, text);
		free(text);
	} else
		jsonw_raw(w, "null");
	json_decref(metadata);
	write_time_member(w, "created_at", d->created_at);
	write_time_member(w, "updated_at", d->updated_at);
	write_time_member(w, "last_success_at", d->last_success_at);
	jsonw_string_or_null_member(w, "last_error", d->last_error);
	jsonw_raw(w, "}");
}

char *
model_device_render(const struct device *d, size_t *len)
{
	struct jsonw w;

	jsonw_init(&w, 512);
	model_device_write(&w, d);
	jsonw_raw(&w, "\n");
	return jsonw_take(&w, len);
}

json_t *
model_member_to_json(const struct member *m)
{
	json_t *o = json_object();

	json_object_set_new(o, "room_id", json_string(m->room_id));
	json_object_set_new(o, "client_id", json_string(m->client_id));
	json_object_set_new(o, "joined_at", model_time_json(m->joined_at));
	json_object_set_new(o, "muted_until", model_time_json(m->muted_until));
	json_object_set_new(o, "mentions_only", json_boolean(m->mentions_only));
	return o;
}

/* Ids sent back in a membership body must be the ones in the URL. */
static int
check_member_ids(const json_t *body, const char *room_id, const char *client_id,
    struct model_error *err)
{
	const char *fields[] = { "room_id", "client_id" }, *expected[] = { room_id, client_id };
	json_t *v;

	for (size_t i = 0; i < 2; i++) {
		if ((v = json_object_get(body, fields[i])) == NULL)
			continue;
		if (!json_is_string(v))
			return model_fail(err, MODEL_ERROR_INVALID, fields[i], "must be a string");
		if (strcmp(json_string_value(v), expected[i]) != 0 ||
		    strlen(expected[i]) != json_string_length(v))
			return model_fail(err, MODEL_ERROR_CONFLICT, fields[i],
			    "does not match the URL");
	}
	return 0;
}

int
model_prefs_from_json(const json_t *body, const struct member *current, int64_t *muted_until,
    int *mentions_only, struct model_error *err)
{
	json_t *v;

	if (model_check_fields(body, prefs_fields, member_read_only, err) != 0 ||
	    check_member_ids(body, current->room_id, current->client_id, err) != 0)
		return -1;
	*muted_until = current->muted_until;
	*mentions_only = current->mentions_only;
	v = json_object_get(body, "muted_until");
	if (v != NULL) {
		if (json_is_null(v))
			*muted_until = 0;
		else if (!json_is_string(v) ||
		    clock_parse_rfc3339(json_string_value(v), muted_until) != 0)
			return model_fail(err, MODEL_ERROR_INVALID, "muted_until",
			    "must be an RFC 3339 time such as 2026-01-02T15:04:05Z, or null");
		/* 0 means "not muted"; past 9999 it would come back as year 0000. */
		else if (*muted_until <= 0 || *muted_until > CLOCK_RFC3339_MAX_MS)
			return model_fail(err, MODEL_ERROR_INVALID, "muted_until",
			    "must be between 1970-01-01T00:00:00.001Z and "
			    "9999-12-31T23:59:59.999Z, or null");
	}
	v = json_object_get(body, "mentions_only");
	if (v != NULL) {
		if (!json_is_boolean(v))
			return model_fail(err, MODEL_ERROR_INVALID, "mentions_only",
			    "must be a boolean");
		*mentions_only = json_is_true(v);
	}
	return 0;
}

/* Check a membership PUT body: empty, or only read-only fields matching the URL. */
int
model_member_body_check(const json_t *body, const char *room_id, const char *client_id,
    struct model_error *err)
{
	if (model_check_fields(body, NULL, member_read_only, err) != 0)
		return -1;
	return check_member_ids(body, room_id, client_id, err);
}

struct device_target *
model_target_new(const char *device_id, const char *client_id, const char *token,
    const char *app_id, enum device_platform platform, enum device_environment environment,
    int64_t updated_at, int64_t last_success_at)
{
	size_t ld = strlen(device_id) + 1, lc = strlen(client_id) + 1, lt = strlen(token) + 1;
	size_t la = strlen(app_id) + 1;
	struct device_target *t = xmalloc(sizeof *t + ld + lc + lt + la);
	char *p = (char *)(t + 1);

	t->device_id = memcpy(p, device_id, ld);
	t->client_id = memcpy(p += ld, client_id, lc);
	t->token = memcpy(p += lc, token, lt);
	t->app_id = memcpy(p + lt, app_id, la);
	t->platform = platform;
	t->environment = environment;
	t->updated_at = updated_at;
	t->last_success_at = last_success_at;
	return t;
}

void
model_target_list_add(struct target_list *list, struct device_target *target)
{
	if (list->count == list->capacity) {
		list->capacity = list->capacity == 0 ? 64 : list->capacity * 2;
		list->items = xreallocarray(list->items, list->capacity, sizeof *list->items);
	}
	list->items[list->count++] = target;
}

void
model_target_list_free(struct target_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	memset(list, 0, sizeof *list);
}

void
model_device_free(struct device *d)
{
	if (d == NULL)
		return;
	free(d->device_id);
	free(d->client_id);
	free(d->token);
	free(d->app_id);
	free(d->locale);
	free(d->metadata);
	free(d->last_error);
	memset(d, 0, sizeof *d);
}

void
model_device_list_free(struct device_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		model_device_free(&list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

void
model_member_free(struct member *m)
{
	if (m == NULL)
		return;
	free(m->room_id);
	free(m->client_id);
	memset(m, 0, sizeof *m);
}

void
model_member_list_free(struct member_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		model_member_free(&list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}
