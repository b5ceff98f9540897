/* Tests for model.c: validation messages and the JSON contract of records. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "model.h"
#include "utf8.h"

#define TOKEN64 "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"

/* Parse a body and expect a validation failure with an exact message. */
static void
expect_device_error(const char *body_text, enum model_error_kind kind, const char *field,
    const char *message)
{
	struct model_error err;
	struct device device;
	json_t *body = json_loads(body_text, 0, NULL);

	assert_non_null(body);
	assert_int_equal(model_device_from_json(body, "dev-1", &device, &err), -1);
	assert_int_equal(err.kind, kind);
	assert_string_equal(err.field, field);
	assert_string_equal(err.message, message);
	assert_null(device.device_id);
	json_decref(body);
}

static void
test_device_from_json_fills_every_field(void **state)
{
	struct model_error err;
	struct device d;
	json_t *body = json_loads("{\"client_id\":\"alice\",\"platform\":\"apns\","
	    "\"token\":\"" TOKEN64 "\",\"app_id\":\"com.example.chat\","
	    "\"environment\":\"sandbox\",\"locale\":\"en-GB\","
	    "\"metadata\":{\"v\":\"4.2\",\"n\":1}}", 0, NULL);

	assert_int_equal(model_device_from_json(body, "dev-1", &d, &err), 0);
	assert_string_equal(d.device_id, "dev-1");
	assert_string_equal(d.client_id, "alice");
	assert_int_equal(d.platform, DEVICE_PLATFORM_APNS);
	/* APNs tokens are stored lower-case. */
	assert_string_equal(d.token,
	    "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	assert_string_equal(d.app_id, "com.example.chat");
	assert_int_equal(d.environment, DEVICE_ENVIRONMENT_SANDBOX);
	assert_string_equal(d.locale, "en-GB");
	assert_string_equal(d.metadata, "{\"v\":\"4.2\",\"n\":1}");
	model_device_free(&d);
	json_decref(body);
}

static void
test_device_from_json_defaults_environment_and_keeps_fcm_token(void **state)
{
	struct model_error err;
	struct device d;
	json_t *body = json_loads("{\"client_id\":\"bob\",\"platform\":\"fcm\","
	    "\"token\":\"fGh:APA91bX-_Ab\",\"app_id\":\"my-project\",\"locale\":null,"
	    "\"metadata\":null,\"created_at\":\"ignored\"}", 0, NULL);

	assert_int_equal(model_device_from_json(body, "dev-2", &d, &err), 0);
	assert_int_equal(d.platform, DEVICE_PLATFORM_FCM);
	assert_string_equal(d.token, "fGh:APA91bX-_Ab");
	assert_int_equal(d.environment, DEVICE_ENVIRONMENT_PRODUCTION);
	assert_null(d.locale);
	assert_null(d.metadata);
	model_device_free(&d);
	json_decref(body);
}

static void
test_device_from_json_names_missing_fields_in_order(void **state)
{
	expect_device_error("{}", MODEL_ERROR_MISSING, "client_id", "client_id: is required");
	expect_device_error("{\"client_id\":\"a\"}", MODEL_ERROR_MISSING, "platform",
	    "platform: is required");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\"}", MODEL_ERROR_MISSING,
	    "token", "token: is required");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"t\"}",
	    MODEL_ERROR_MISSING, "app_id", "app_id: is required");
}

static void
test_device_from_json_rejects_bad_values_with_exact_messages(void **state)
{
	expect_device_error("{\"client_id\":7}", MODEL_ERROR_INVALID, "client_id",
	    "client_id: must be a string");
	expect_device_error("{\"client_id\":\"\"}", MODEL_ERROR_INVALID, "client_id",
	    "client_id: must not be empty");
	expect_device_error("{\"client_id\":\"a\\u0001b\"}", MODEL_ERROR_INVALID, "client_id",
	    "client_id: must not contain control characters");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"wns\"}", MODEL_ERROR_INVALID,
	    "platform", "platform: must be one of: apns, fcm");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"apns\",\"token\":\"xyz\"}",
	    MODEL_ERROR_INVALID, "token", "token: must be hexadecimal for platform apns");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"apns\",\"token\":\"abc\"}",
	    MODEL_ERROR_INVALID, "token",
	    "token: must be an even number of hexadecimal digits, 32 to 512");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"a b\"}",
	    MODEL_ERROR_INVALID, "token",
	    "token: must not contain whitespace or control characters");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"t\","
	    "\"app_id\":\"my app\"}", MODEL_ERROR_INVALID, "app_id",
	    "app_id: must be printable ASCII without spaces");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"t\","
	    "\"app_id\":\"p\",\"environment\":\"staging\"}", MODEL_ERROR_INVALID, "environment",
	    "environment: must be one of: production, sandbox");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"t\","
	    "\"app_id\":\"p\",\"environment\":\"sandbox\"}", MODEL_ERROR_INVALID, "environment",
	    "environment: sandbox applies only to platform apns");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"t\","
	    "\"app_id\":\"p\",\"locale\":\"en US\"}", MODEL_ERROR_INVALID, "locale",
	    "locale: must be a language tag such as en-US");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"t\","
	    "\"app_id\":\"p\",\"locale\":\"en-\"}", MODEL_ERROR_INVALID, "locale",
	    "locale: must be a language tag such as en-US");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"t\","
	    "\"app_id\":\"p\",\"locale\":\"e-US\"}", MODEL_ERROR_INVALID, "locale",
	    "locale: must be a language tag such as en-US");
	expect_device_error("{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"t\","
	    "\"app_id\":\"p\",\"metadata\":[1]}", MODEL_ERROR_INVALID, "metadata",
	    "metadata: must be an object");
	expect_device_error("{\"client_id\":\"a\",\"enviroment\":\"sandbox\"}",
	    MODEL_ERROR_INVALID, "enviroment", "enviroment: unknown field");
}

static void
test_device_from_json_flags_device_id_conflict(void **state)
{
	expect_device_error("{\"device_id\":\"other\",\"client_id\":\"a\"}", MODEL_ERROR_CONFLICT,
	    "device_id", "device_id: does not match the URL");
}

static void
test_device_from_json_bounds_metadata_and_ids(void **state)
{
	char big[MODEL_METADATA_MAX + 256], id[MODEL_ID_MAX + 2], body[MODEL_ID_MAX + 64];

	memset(id, 'x', MODEL_ID_MAX + 1);
	id[MODEL_ID_MAX + 1] = '\0';
	snprintf(body, sizeof body, "{\"client_id\":\"%s\"}", id);
	expect_device_error(body, MODEL_ERROR_INVALID, "client_id",
	    "client_id: must be at most 128 bytes");
	snprintf(big, sizeof big, "{\"client_id\":\"a\",\"platform\":\"fcm\",\"token\":\"t\","
	    "\"app_id\":\"p\",\"metadata\":{\"k\":\"%0*d\"}}", MODEL_METADATA_MAX, 0);
	expect_device_error(big, MODEL_ERROR_INVALID, "metadata",
	    "metadata: must be at most 4096 bytes as JSON");
}

static void
test_validate_id_rejects_bad_utf8_and_c1_controls(void **state)
{
	struct model_error err;

	assert_int_equal(model_validate_id("caf\xc3\xa9", "room_id", &err), 0);
	assert_int_equal(model_validate_id("\xf0\x9f\x92\xac room", "room_id", &err), 0);
	assert_int_equal(model_validate_id("a\xc3", "room_id", &err), -1);
	assert_string_equal(err.message, "room_id: must be valid UTF-8");
	assert_int_equal(model_validate_id("\xc0\xaf", "room_id", &err), -1);	/* overlong */
	assert_int_equal(model_validate_id("\xed\xa0\x80", "room_id", &err), -1); /* surrogate */
	assert_int_equal(model_validate_id("a\xc2\x85", "room_id", &err), -1);	/* NEL */
	assert_string_equal(err.message, "room_id: must not contain control characters");
	assert_int_equal(model_validate_id("a\x7f", "room_id", &err), -1);
}

/* The device as the jansson tree the API answered with before jsonw: the reference. */
static json_t *
device_tree(const struct device *d)
{
	json_t *o = json_object(), *metadata = NULL;

	if (d->metadata != NULL)
		metadata = json_loads(d->metadata, 0, NULL);
	json_object_set_new(o, "device_id", json_string(d->device_id));
	json_object_set_new(o, "client_id", json_string(d->client_id));
	json_object_set_new(o, "platform", json_string(model_platform_name(d->platform)));
	json_object_set_new(o, "token", json_string(d->token));
	json_object_set_new(o, "app_id", json_string(d->app_id));
	json_object_set_new(o, "environment",
	    json_string(model_environment_name(d->environment)));
	json_object_set_new(o, "locale", model_text_json(d->locale));
	json_object_set_new(o, "metadata", metadata != NULL ? metadata : json_null());
	json_object_set_new(o, "created_at", model_time_json(d->created_at));
	json_object_set_new(o, "updated_at", model_time_json(d->updated_at));
	json_object_set_new(o, "last_success_at", model_time_json(d->last_success_at));
	json_object_set_new(o, "last_error", model_text_json(d->last_error));
	return o;
}

/* The written device is byte for byte jansson's compact dump of the same members. */
static void
test_device_render_is_janssons_dump_of_the_same_members(void **state)
{
	static const char *const texts[] = {
		"a", "quote \" backslash \\ slash /", "tab\tnewline\ncr\rbs\bff\f",
		"\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80", "",
	};
	static const char *const metadata[] = {
		NULL, "{}", "{\"a\":1}", "{\"n\":{\"x\":[1,2.5,\"\\u00e9\",null,true]},\"b\":\"\\\"\"}",
		"not json",
	};
	static const int64_t times[] = { 0, 1, 1764321302123LL, 253402300799999LL };
	size_t n = 0;

	(void)state;
	for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
		for (size_t m = 0; m < sizeof metadata / sizeof metadata[0]; m++) {
			struct device d = {
				.device_id = "dev-1", .client_id = (char *)texts[t],
				.platform = (enum device_platform)(t % 2),
				.token = (char *)texts[(t + 1) % 6], .app_id = "com.example",
				.environment = (enum device_environment)(m % 2),
				.locale = m % 3 == 0 ? NULL : (char *)texts[(t + 2) % 6],
				.metadata = (char *)metadata[m],
				.created_at = times[(t + m) % 4], .updated_at = times[(t + 1) % 4],
				.last_success_at = times[m % 4],
				.last_error = m % 2 == 0 ? NULL : (char *)texts[(t + 3) % 6],
			};
			json_t *tree = device_tree(&d);
			char *want = json_dumps(tree, JSON_COMPACT), *got;
			size_t len;

			got = model_device_render(&d, &len);
			assert_non_null(want);
			assert_int_equal(len, strlen(want) + 1);
			assert_memory_equal(got, want, strlen(want));
			assert_int_equal(got[len - 1], '\n');
			free(got);
			free(want);
			json_decref(tree);
			n++;
		}
	}
	assert_int_equal(n, 30);
}

static void
test_device_to_json_uses_contract_names_and_rfc3339(void **state)
{
	struct device d = {
		.device_id = "dev-1", .client_id = "alice", .platform = DEVICE_PLATFORM_FCM,
		.token = "tok", .app_id = "proj", .environment = DEVICE_ENVIRONMENT_PRODUCTION,
		.locale = NULL, .metadata = "{\"a\":1}", .created_at = 1764321302123LL,
		.updated_at = 1764321303000LL, .last_success_at = 0, .last_error = "Unregistered",
	};
	size_t len;
	char *text = model_device_render(&d, &len);

	assert_string_equal(text, "{\"device_id\":\"dev-1\",\"client_id\":\"alice\","
	    "\"platform\":\"fcm\",\"token\":\"tok\",\"app_id\":\"proj\","
	    "\"environment\":\"production\",\"locale\":null,\"metadata\":{\"a\":1},"
	    "\"created_at\":\"2025-11-28T09:15:02.123Z\","
	    "\"updated_at\":\"2025-11-28T09:15:03.000Z\",\"last_success_at\":null,"
	    "\"last_error\":\"Unregistered\"}\n");
	assert_int_equal(len, strlen(text));
	free(text);
}

/* A provider's reason cut inside a character still comes back, made UTF-8. */
static void
test_device_to_json_keeps_a_cut_last_error_as_utf8(void **state)
{
	struct device d = {
		.device_id = "dev-1", .client_id = "alice", .platform = DEVICE_PLATFORM_APNS,
		.token = "tok", .app_id = "app", .last_error = "HTTP 400: caf\xc3",
	};
	char *text = model_device_render(&d, NULL);
	json_t *j = json_loads(text, 0, NULL);

	(void)state;
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "last_error")),
	    "HTTP 400: caf\xef\xbf\xbd");
	json_decref(j);
	free(text);
}

static void
test_prefs_from_json_keeps_absent_fields(void **state)
{
	struct member current = { .room_id = "r", .client_id = "c", .joined_at = 1,
		.muted_until = 5000, .mentions_only = 1 };
	struct model_error err;
	int64_t muted;
	int mentions;
	json_t *body = json_loads("{\"mentions_only\":false}", 0, NULL);

	assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err), 0);
	assert_int_equal(muted, 5000);
	assert_int_equal(mentions, 0);
	json_decref(body);
	body = json_loads("{\"muted_until\":\"2025-11-28T09:15:02.123Z\"}", 0, NULL);
	assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err), 0);
	assert_int_equal(muted, 1764321302123LL);
	assert_int_equal(mentions, 1);
	json_decref(body);
	body = json_loads("{\"muted_until\":null}", 0, NULL);
	assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err), 0);
	assert_int_equal(muted, 0);
	json_decref(body);
}

static void
test_member_bodies_with_other_ids_conflict(void **state)
{
	struct member current = { .room_id = "r", .client_id = "c" };
	struct model_error err;
	int64_t muted;
	int mentions;
	json_t *body = json_loads("{\"room_id\":\"other\",\"mentions_only\":true}", 0, NULL);

	assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err), -1);
	assert_int_equal(err.kind, MODEL_ERROR_CONFLICT);
	assert_string_equal(err.message, "room_id: does not match the URL");
	json_decref(body);
	body = json_loads("{\"room_id\":\"r\",\"client_id\":\"d\"}", 0, NULL);
	assert_int_equal(model_member_body_check(body, "r", "c", &err), -1);
	assert_int_equal(err.kind, MODEL_ERROR_CONFLICT);
	assert_string_equal(err.message, "client_id: does not match the URL");
	json_decref(body);
	body = json_loads("{\"room_id\":\"r\",\"client_id\":\"c\",\"joined_at\":\"x\"}", 0,
	    NULL);
	assert_int_equal(model_member_body_check(body, "r", "c", &err), 0);
	json_decref(body);
}

static void
test_prefs_from_json_rejects_bad_values(void **state)
{
	struct member current = { .room_id = "r", .client_id = "c" };
	struct model_error err;
	int64_t muted;
	int mentions;
	json_t *body = json_loads("{\"muted_until\":\"next week\"}", 0, NULL);

	assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err), -1);
	assert_string_equal(err.message,
	    "muted_until: must be an RFC 3339 time such as 2026-01-02T15:04:05Z, or null");
	json_decref(body);
	body = json_loads("{\"mentions_only\":\"yes\"}", 0, NULL);
	assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err), -1);
	assert_string_equal(err.message, "mentions_only: must be a boolean");
	json_decref(body);
	body = json_loads("{\"mute\":true}", 0, NULL);
	assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err), -1);
	assert_string_equal(err.message, "mute: unknown field");
	json_decref(body);
}

/* An unknown field's name comes from the client: it is cut whole-character and kept UTF-8. */
static void
test_long_unknown_field_is_cut_on_a_character_boundary(void **state)
{
	char name[400], body_text[512];
	struct model_error err;
	struct device device;
	json_t *body, *copy;
	size_t len;

	(void)state;
	/* 62 ASCII bytes, then 2-byte characters: every cut at an even offset splits one. */
	memset(name, 'a', 62);
	for (len = 62; len < 362; len += 2)
		memcpy(name + len, "\xc3\xa9", 2);
	name[len] = '\0';
	snprintf(body_text, sizeof body_text, "{\"%s\":1}", name);
	body = json_loads(body_text, 0, NULL);
	assert_non_null(body);
	assert_int_equal(model_device_from_json(body, "dev-1", &device, &err), -1);
	assert_int_equal(err.kind, MODEL_ERROR_INVALID);
	/* The field keeps 62 bytes: the next character would not fit whole in 63. */
	assert_int_equal(strlen(err.field), 62);
	assert_true(utf8_valid(err.field, strlen(err.field)));
	assert_true(utf8_valid(err.message, strlen(err.message)));
	/* The reason stays whole; the name before it is a prefix of the name sent. */
	len = strlen(err.message);
	assert_true(len < sizeof err.message);
	assert_string_equal(err.message + len - strlen(": unknown field"), ": unknown field");
	len -= strlen(": unknown field");
	assert_true(len > 200);
	assert_memory_equal(err.message, name, len);
	assert_true(((unsigned char)name[len] & 0xc0) != 0x80);
	/* And jansson takes it back as a string. */
	copy = json_string(err.message);
	assert_non_null(copy);
	json_decref(copy);
	json_decref(body);
}

static void
test_prefs_from_json_refuses_times_outside_1970_to_9999(void **state)
{
	static const char *const outside[] = {
		"9999-12-31T23:59:59-01:00",	/* 10000-01-01T00:59:59Z: came back as 0000 */
		"9999-12-31T23:59:60Z",		/* a leap second into 10000 */
		"1970-01-01T00:00:00Z",		/* 0 stands for "not muted" */
		"1969-12-31T23:59:59Z",
		"0000-01-01T00:00:00Z",
		"1970-01-01T00:00:00+00:01",
	};
	struct member current = { .room_id = "r", .client_id = "c" };
	struct model_error err;
	char text[128], out[CLOCK_RFC3339_SIZE];
	int64_t muted;
	int mentions;
	json_t *body;

	for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
		snprintf(text, sizeof text, "{\"muted_until\":\"%s\"}", outside[i]);
		body = json_loads(text, 0, NULL);
		muted = 42;
		assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err),
		    -1);
		assert_int_equal(err.kind, MODEL_ERROR_INVALID);
		assert_string_equal(err.field, "muted_until");
		assert_string_equal(err.message, "muted_until: must be between "
		    "1970-01-01T00:00:00.001Z and 9999-12-31T23:59:59.999Z, or null");
		json_decref(body);
	}
	/* The edges themselves are kept, and read back as they were given. */
	body = json_loads("{\"muted_until\":\"9999-12-31T23:59:59.999Z\"}", 0, NULL);
	assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err), 0);
	assert_int_equal(muted, CLOCK_RFC3339_MAX_MS);
	clock_format_rfc3339(muted, out);
	assert_string_equal(out, "9999-12-31T23:59:59.999Z");
	json_decref(body);
	body = json_loads("{\"muted_until\":\"1970-01-01T00:00:00.001Z\"}", 0, NULL);
	assert_int_equal(model_prefs_from_json(body, &current, &muted, &mentions, &err), 0);
	assert_int_equal(muted, 1);
	json_decref(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_from_json_fills_every_field),
		cmocka_unit_test(test_device_from_json_defaults_environment_and_keeps_fcm_token),
		cmocka_unit_test(test_device_from_json_names_missing_fields_in_order),
		cmocka_unit_test(test_device_from_json_rejects_bad_values_with_exact_messages),
		cmocka_unit_test(test_device_from_json_flags_device_id_conflict),
		cmocka_unit_test(test_device_from_json_bounds_metadata_and_ids),
		cmocka_unit_test(test_validate_id_rejects_bad_utf8_and_c1_controls),
		cmocka_unit_test(test_device_render_is_janssons_dump_of_the_same_members),
		cmocka_unit_test(test_device_to_json_uses_contract_names_and_rfc3339),
		cmocka_unit_test(test_device_to_json_keeps_a_cut_last_error_as_utf8),
		cmocka_unit_test(test_prefs_from_json_keeps_absent_fields),
		cmocka_unit_test(test_prefs_from_json_rejects_bad_values),
		cmocka_unit_test(test_prefs_from_json_refuses_times_outside_1970_to_9999),
		cmocka_unit_test(test_member_bodies_with_other_ids_conflict),
		cmocka_unit_test(test_long_unknown_field_is_cut_on_a_character_boundary),
	};

	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
