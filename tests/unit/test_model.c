/* Tests for model.c: validation messages and the JSON contract of records. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

static void
test_device_to_json_uses_contract_names_and_rfc3339(void **state)
{
	struct device d = {
		.device_id = "dev-1", .client_id = "alice", .platform = DEVICE_PLATFORM_FCM,
		.token = "tok", .app_id = "proj", .environment = DEVICE_ENVIRONMENT_PRODUCTION,
		.locale = NULL, .metadata = "{\"a\":1}", .created_at = 1764321302123LL,
		.updated_at = 1764321303000LL, .last_success_at = 0, .last_error = "Unregistered",
	};
	json_t *j = model_device_to_json(&d);
	char *text = json_dumps(j, JSON_COMPACT);

	assert_string_equal(text, "{\"device_id\":\"dev-1\",\"client_id\":\"alice\","
	    "\"platform\":\"fcm\",\"token\":\"tok\",\"app_id\":\"proj\","
	    "\"environment\":\"production\",\"locale\":null,\"metadata\":{\"a\":1},"
	    "\"created_at\":\"2025-11-28T09:15:02.123Z\","
	    "\"updated_at\":\"2025-11-28T09:15:03.000Z\",\"last_success_at\":null,"
	    "\"last_error\":\"Unregistered\"}");
	free(text);
	json_decref(j);
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

/* A long unknown key of two-byte characters: field and message are cut between them. */
static void
test_error_for_a_long_unknown_key_stays_valid_utf8(void **state)
{
	struct model_error err;
	struct device device;
	char key[2 * 150 + 1], text[400];
	json_t *body;

	for (size_t i = 0; i < 150; i++)
		memcpy(key + 2 * i, "\xc3\xa9", 2);
	key[300] = '\0';
	snprintf(text, sizeof text, "{\"%s\":1}", key);
	body = json_loads(text, 0, NULL);
	assert_non_null(body);
	assert_int_equal(model_device_from_json(body, "dev-1", &device, &err), -1);
	/* 31 characters fill 62 of the 63 bytes; the 32nd does not fit whole. */
	assert_int_equal(strlen(err.field), 62);
	assert_memory_equal(err.field, key, 62);
	assert_true(utf8_valid(err.message, strlen(err.message)));
	assert_int_equal(strlen(err.message), 254);
	assert_memory_equal(err.message, key, 254);
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
		cmocka_unit_test(test_device_to_json_uses_contract_names_and_rfc3339),
		cmocka_unit_test(test_prefs_from_json_keeps_absent_fields),
		cmocka_unit_test(test_prefs_from_json_rejects_bad_values),
		cmocka_unit_test(test_member_bodies_with_other_ids_conflict),
		cmocka_unit_test(test_error_for_a_long_unknown_key_stays_valid_utf8),
	};

	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
