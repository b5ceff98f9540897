/*
 * A notification as POST /v1/push takes it (JSON): notification_from_json()
 * validates it, then the direct payload writer must give byte for byte what the
 * generic jansson path gives, for APNs and FCM, with and without the badge splice,
 * and with its data given as serialized members. Every body rendered must be JSON
 * that jansson reads back, and every validation error valid UTF-8.
 */
#include "autoconf.h"

#include "fuzz.h"
#include "notification.h"
#include "payload.h"

#define APNS_TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FCM_TOKEN "fcm-token:APA91b_Qx-1"

typedef int (*build_fn)(const struct notification *, int, struct payload *);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

/* Abort unless two builds gave the same result, field by field. */
static void
check_same_payload(const char *what, int error, const struct payload *p, int expected_error,
    const struct payload *expected)
{
	if (error != expected_error)
		fuzz_fail("%s: direct %d, generic %d", what, error, expected_error);
	if (error != PAYLOAD_OK)
		return;
	if (p->len != expected->len || memcmp(p->text, expected->text, p->len + 1) != 0)
		fuzz_fail("%s: direct '%s', generic '%s'", what, p->text, expected->text);
	if (p->splices != expected->splices || p->shortened != expected->shortened)
		fuzz_fail("%s: splices or shortened differ", what);
	for (size_t i = 0; i < p->splices; i++) {
		if (p->splice_at[i] != expected->splice_at[i] ||
		    p->splice_kind[i] != expected->splice_kind[i])
			fuzz_fail("%s: splice %zu differs", what, i);
	}
}

/* Abort unless a payload renders as JSON for a device. */
static void
check_render(const char *what, const struct payload *p, const char *token)
{
	size_t max = payload_render_max(p, strlen(token)), len;
	char *buf = malloc(max + 1);
	json_t *parsed;
	json_error_t jerr;

	if (buf == NULL)
		abort();
	len = payload_render(p, token, 42, buf);
	if (len > max)
		fuzz_fail("%s: rendered %zu bytes, at most %zu announced", what, len, max);
	if (!utf8_valid(buf, len))
		fuzz_fail("%s: the body is not valid UTF-8", what);
	if ((parsed = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		fuzz_fail("%s: the body is not JSON (%s): %.*s", what, jerr.text, (int)len, buf);
	json_decref(parsed);
	free(buf);
}

/* The direct writer against the generic one, with and without a badge splice. */
static void
check_builds(const struct notification *n, const char *what, build_fn direct,
    build_fn generic, const char *token)
{
	struct payload a, b;
	int ea, eb;

	for (int with_badge = 0; with_badge <= 1; with_badge++) {
		ea = direct(n, with_badge, &a);
		eb = generic(n, with_badge, &b);
		check_same_payload(what, ea, &a, eb, &b);
		if (ea != PAYLOAD_OK)
			continue;
		check_render(what, &a, token);
		payload_free(&a);
		payload_free(&b);
	}
}

static void
check_notification(const struct notification *n)
{
	check_builds(n, "apns", payload_apns_build, payload_apns_build_generic, APNS_TOKEN);
	check_builds(n, "fcm", payload_fcm_build, payload_fcm_build_generic, FCM_TOKEN);
}

/* The data again as serialized members, as the router gives room messages. */
static void
check_members(struct notification *n)
{
	const char *keys[64], *values[64], *key;
	json_t *value, *data = n->data;
	size_t count = 0;

	if (data == NULL || n->apns != NULL || n->fcm != NULL || json_object_size(data) > 64)
		return;
	json_object_foreach(data, key, value) {
		/* Members are string values without NUL, and never a key named aps. */
		if (!json_is_string(value) || strcmp(key, "aps") == 0 ||
		    strlen(json_string_value(value)) != json_string_length(value))
			return;
		keys[count] = key;
		values[count++] = json_string_value(value);
	}
	n->data_members = payload_members_text(keys, values, count);
	fuzz_check_utf8("data members", n->data_members);
	n->data = NULL;
	check_notification(n);
	n->data = data;
	free(n->data_members);
	n->data_members = NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model_error err;
	struct notification n;
	json_t *object;

	object = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (object == NULL)
		return 0;
	memset(&err, 0, sizeof err);
	if (notification_from_json(object, size % 2 ? "notification." : "", &n, &err) != 0) {
		fuzz_check_utf8("error field", err.field);
		fuzz_check_utf8("error message", err.message);
		json_decref(object);
		return 0;
	}
	check_notification(&n);
	check_members(&n);
	notification_free(&n);
	json_decref(object);
	return 0;
}
