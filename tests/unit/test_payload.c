/* Tests for notification.c and payload.c: validation, exact bodies, shortening. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"
#include "notification.h"
#include "payload.h"
#include "utf8.h"

/* Parse a notification from JSON text, asserting success. */
static void
parse(const char *text, struct notification *n)
{
	struct model_error err;
	json_t *o = json_loads(text, 0, NULL);

	assert_non_null(o);
	if (notification_from_json(o, "notification.", n, &err) != 0)
		fail_msg("rejected: %s", err.message);
	json_decref(o);
}

static void
expect_invalid(const char *text, const char *message)
{
	struct notification n;
	struct model_error err;
	json_t *o = json_loads(text, 0, NULL);

	assert_non_null(o);
	assert_int_equal(notification_from_json(o, "notification.", &n, &err), -1);
	assert_string_equal(err.message, message);
	assert_null(n.title);
	json_decref(o);
}

/* Render a payload for one device into a new string. */
static char *
render(const struct payload *p, const char *token, int64_t badge)
{
	char *buf = malloc(payload_render_max(p, strlen(token)) + 1);
	size_t len = payload_render(p, token, badge, buf);

	buf[len] = '\0';
	return buf;
}

static void
test_apns_payload_is_exact(void **state)
{
	struct notification n;
	struct payload p;
	char *text;

	parse("{\"title\":\"Support\",\"body\":\"agent: hello\",\"badge\":3,\"sound\":\"default\","
	    "\"thread_id\":\"room-1\",\"mutable_content\":true,"
	    "\"data\":{\"room\":\"room-1\",\"message_id\":\"m1\"}}", &n);
	assert_int_equal(payload_apns_build(&n, 0, &p), PAYLOAD_OK);
	text = render(&p, "ignored", 0);
	assert_string_equal(text, "{\"aps\":{\"alert\":{\"title\":\"Support\",\"body\":"
	    "\"agent: hello\"},\"badge\":3,\"sound\":\"default\",\"thread-id\":\"room-1\","
	    "\"mutable-content\":1},\"room\":\"room-1\",\"message_id\":\"m1\"}");
	assert_int_equal(p.shortened, 0);
	free(text);
	payload_free(&p);
	notification_free(&n);
}

static void
test_apns_payload_splices_badge_per_recipient(void **state)
{
	struct notification n;
	struct payload p;
	char *a, *b;

	parse("{\"body\":\"hi\"}", &n);
	assert_int_equal(payload_apns_build(&n, 1, &p), PAYLOAD_OK);
	assert_int_equal(p.splices, 1);
	a = render(&p, "", 7);
	b = render(&p, "", 123456);
	assert_string_equal(a, "{\"aps\":{\"alert\":{\"body\":\"hi\"},\"badge\":7}}");
	assert_string_equal(b, "{\"aps\":{\"alert\":{\"body\":\"hi\"},\"badge\":123456}}");
	free(a);
	free(b);
	payload_free(&p);
	notification_free(&n);
}

static void
test_apns_override_merges_and_null_deletes(void **state)
{
	struct notification n;
	struct payload p;
	char *text;

	parse("{\"title\":\"T\",\"body\":\"B\",\"sound\":\"default\",\"apns\":{\"payload\":"
	    "{\"aps\":{\"category\":\"REPLY\",\"sound\":null},\"custom\":{\"k\":1}}}}", &n);
	assert_int_equal(payload_apns_build(&n, 0, &p), PAYLOAD_OK);
	text = render(&p, "", 0);
	assert_string_equal(text, "{\"aps\":{\"alert\":{\"title\":\"T\",\"body\":\"B\"},"
	    "\"category\":\"REPLY\"},\"custom\":{\"k\":1}}");
	free(text);
	payload_free(&p);
	notification_free(&n);
}

static void
test_fcm_message_splices_token_and_is_exact(void **state)
{
	struct notification n;
	struct payload p;
	char *text;

	parse("{\"title\":\"Support\",\"body\":\"agent: hello\",\"thread_id\":\"room-1\","
	    "\"collapse_id\":\"c1\",\"ttl\":3600,\"priority\":\"normal\","
	    "\"data\":{\"room\":\"room-1\"}}", &n);
	assert_int_equal(payload_fcm_build(&n, 0, &p), PAYLOAD_OK);
	text = render(&p, "fcm:TOKEN-1", 0);
	assert_string_equal(text, "{\"message\":{\"token\":\"fcm:TOKEN-1\","
	    "\"notification\":{\"title\":\"Support\",\"body\":\"agent: hello\"},"
	    "\"data\":{\"room\":\"room-1\"},\"android\":{\"priority\":\"NORMAL\","
	    "\"ttl\":\"3600s\",\"collapse_key\":\"c1\",\"notification\":{\"tag\":\"room-1\"}},"
	    "\"apns\":{\"headers\":{\"apns-priority\":\"5\",\"apns-collapse-id\":\"c1\"},"
	    "\"payload\":{\"aps\":{\"thread-id\":\"room-1\"}}}}}");
	free(text);
	/* Characters JSON must escape are escaped in the spliced token. */
	text = render(&p, "a\"b\\c", 0);
	assert_non_null(strstr(text, "\"token\":\"a\\\"b\\\\c\""));
	free(text);
	payload_free(&p);
	notification_free(&n);
}

static void
test_fcm_override_cannot_change_the_recipient(void **state)
{
	struct notification n;
	struct payload p;

	parse("{\"body\":\"x\",\"fcm\":{\"topic\":\"everyone\"}}", &n);
	assert_int_equal(payload_fcm_build(&n, 0, &p), PAYLOAD_EOVERRIDE);
	notification_free(&n);
	parse("{\"body\":\"x\",\"fcm\":{\"token\":\"someone-else\"}}", &n);
	assert_int_equal(payload_fcm_build(&n, 0, &p), PAYLOAD_EOVERRIDE);
	notification_free(&n);
	parse("{\"body\":\"x\",\"fcm\":{\"android\":{\"notification\":{\"channel_id\":\"chat\"}}}}",
	    &n);
	assert_int_equal(payload_fcm_build(&n, 0, &p), PAYLOAD_OK);
	assert_non_null(strstr(p.text, "\"channel_id\":\"chat\""));
	payload_free(&p);
	notification_free(&n);
}

static void
test_long_body_is_shortened_at_a_character_boundary(void **state)
{
	struct notification n;
	struct payload p;
	char *body = malloc(4000 * 2 + 1), *text;
	json_t *parsed;
	const char *shortened;
	size_t len;

	/* 4000 two-byte characters: 8000 bytes, far over the limit. */
	for (int i = 0; i < 4000; i++)
		memcpy(body + 2 * i, "\xc3\xa9", 2);
	body[8000] = '\0';
	notification_init(&n);
	n.title = strdup("Room");
	n.body = body;
	assert_int_equal(payload_apns_build(&n, 1, &p), PAYLOAD_OK);
	assert_int_equal(p.shortened, 1);
	text = render(&p, "", 999999);
	len = strlen(text);
	assert_true(len <= PAYLOAD_APNS_MAX);
	/* As long as fits: one more character would not. */
	assert_true(len > PAYLOAD_APNS_MAX - 2 - 10);
	parsed = json_loads(text, 0, NULL);
	assert_non_null(parsed);
	shortened = json_string_value(json_object_get(json_object_get(json_object_get(parsed,
	    "aps"), "alert"), "body"));
	assert_non_null(shortened);
	assert_true(utf8_valid(shortened, strlen(shortened)));
	assert_string_equal(shortened + strlen(shortened) - 3, "\xe2\x80\xa6");
	assert_int_equal(memcmp(shortened, body, strlen(shortened) - 3), 0);
	json_decref(parsed);
	free(text);
	payload_free(&p);
	notification_free(&n);
}

static void
test_payload_that_cannot_fit_fails(void **state)
{
	struct notification n;
	struct payload p;
	json_t *data = json_object();
	char big[5000];

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	json_object_set_new(data, "blob", json_string(big));
	notification_init(&n);
	n.body = strdup("hello");
	n.data = data;
	assert_int_equal(payload_apns_build(&n, 0, &p), PAYLOAD_ETOOBIG);
	assert_int_equal(payload_fcm_build(&n, 0, &p), PAYLOAD_ETOOBIG);
	notification_free(&n);
}

/* Assert that two builds gave the same result, field by field. */
static void
assert_same_payload(int error, const struct payload *p, int expected_error,
    const struct payload *expected)
{
	assert_int_equal(error, expected_error);
	if (error != PAYLOAD_OK)
		return;
	assert_int_equal(p->len, expected->len);
	assert_memory_equal(p->text, expected->text, expected->len + 1);
	assert_int_equal(p->splices, expected->splices);
	for (size_t i = 0; i < expected->splices; i++) {
		assert_int_equal(p->splice_at[i], expected->splice_at[i]);
		assert_int_equal(p->splice_kind[i], expected->splice_kind[i]);
	}
	assert_int_equal(p->shortened, expected->shortened);
}

/* Assert that the direct writer and the jansson path agree, with and without badges. */
static void
assert_same_as_generic(const struct notification *n)
{
	struct payload direct, generic;
	int error, expected;

	for (int with_badge = 0; with_badge <= 1; with_badge++) {
		error = payload_apns_build(n, with_badge, &direct);
		expected = payload_apns_build_generic(n, with_badge, &generic);
		assert_same_payload(error, &direct, expected, &generic);
		if (error == PAYLOAD_OK) {
			payload_free(&direct);
			payload_free(&generic);
		}
		error = payload_fcm_build(n, with_badge, &direct);
		expected = payload_fcm_build_generic(n, with_badge, &generic);
		assert_same_payload(error, &direct, expected, &generic);
		if (error == PAYLOAD_OK) {
			payload_free(&direct);
			payload_free(&generic);
		}
	}
}

/* A string of count copies of unit. */
static char *
repeat(const char *unit, size_t count)
{
	size_t len = strlen(unit);
	char *s = malloc(len * count + 1);

	for (size_t i = 0; i < count; i++)
		memcpy(s + i * len, unit, len);
	s[len * count] = '\0';
	return s;
}

static void
test_direct_writer_matches_the_jansson_path(void **state)
{
	static const char *notifications[] = {
		"{\"title\":\"Support chat\",\"body\":\"Alice: hello there\","
		"\"thread_id\":\"room-42\",\"badge\":3,\"data\":{\"room\":\"room-42\","
		"\"message_id\":\"m-1\",\"sender\":\"alice\",\"count\":\"2\"}}",
		"{\"title\":\"say \\\"hi\\\" \\\\ back/slash\",\"body\":\"a\\nb\\tc\\rd\\be\\ff"
		" \\u0001 \\u001f \\u007f /\",\"badge\":0}",
		"{\"title\":\"caf\xc3\xa9 \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x98\x80\","
		"\"body\":\"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd done\",\"sound\":\"ping.caf\"}",
		"{\"body\":\"only a body\"}",
		"{\"body\":\"b\",\"mutable_content\":true}",
		"{\"title\":\"only a title\",\"badge\":999999}",
		"{\"content_available\":true}",
		"{\"content_available\":true,\"data\":{\"sync\":\"1\"},\"priority\":\"normal\"}",
		"{\"title\":\"t\",\"body\":\"b\",\"content_available\":true}",
		"{\"body\":\"b\",\"sound\":\"default\",\"collapse_id\":\"c-1\",\"ttl\":0,"
		"\"mutable_content\":true,\"interruption_level\":\"time-sensitive\","
		"\"priority\":\"high\"}",
		"{\"title\":\"t\",\"thread_id\":\"th\\\"1\",\"collapse_id\":\"c\\\\2\","
		"\"ttl\":2419200,\"priority\":\"normal\",\"interruption_level\":\"passive\"}",
		"{\"body\":\"x\",\"data\":{\"aps\":\"shadowed\",\"a\\\"k\\u0002\":\"v\\\\\\n\","
		"\"url\":\"https://example.com/a/b\",\"empty\":\"\",\"badge\":\"7\"}}",
		"{\"data\":{\"room\":\"r\"}}",
		"{\"body\":\"x\",\"data\":{}}",
		"{\"body\":\"x\",\"sound\":\"s\",\"apns\":{\"headers\":{\"apns-priority\":\"5\"}}}",
	};
	static const struct {
		const char *unit;
		size_t count;
	} long_bodies[] = {
		{ "a", 5000 },
		{ "\xc3\xa9", 3000 },
		{ "\xe6\xbc\xa2", 2000 },
		{ "\xf0\x9f\x98\x80", 1500 },
		{ "ab\xf0\x9f\x98\x80", 1000 },
		{ "\"", 3000 },
		{ "\x01", 1000 },
		{ "x\\\n\x1f", 1500 },
	};
	struct notification n;
	struct payload p;
	json_t *data;

	for (size_t i = 0; i < sizeof notifications / sizeof notifications[0]; i++) {
		parse(notifications[i], &n);
		assert_same_as_generic(&n);
		notification_free(&n);
	}
	for (size_t i = 0; i < sizeof long_bodies / sizeof long_bodies[0]; i++) {
		parse("{\"title\":\"Room \\\"42\\\"\",\"sound\":\"default\",\"thread_id\":\"r\","
		    "\"data\":{\"room\":\"r\",\"aps\":\"x\"}}", &n);
		n.body = repeat(long_bodies[i].unit, long_bodies[i].count);
		n.badge = (int64_t)i;
		assert_int_equal(payload_apns_build(&n, 0, &p), PAYLOAD_OK);
		assert_int_equal(p.shortened, 1);
		payload_free(&p);
		assert_same_as_generic(&n);
		notification_free(&n);
	}

	/* Data values are strings in practice, but others serialize as jansson does. */
	data = json_pack("{s:s, s:i, s:{s:[i,s,n,b,f]}, s:s}", "s", "x", "n", 42, "nested",
	    "a", 1, "b\"", 1, 1.5, "last", "\xc3\xa9");
	assert_non_null(data);
	notification_init(&n);
	n.body = strdup("hello");
	n.data = data;
	assert_same_as_generic(&n);
	notification_free(&n);

	/* Too big even with the body shortened away: both fail alike. */
	notification_init(&n);
	n.title = repeat("t", 5000);
	n.body = strdup("hello");
	assert_same_as_generic(&n);
	free(n.body);
	n.body = NULL;
	assert_same_as_generic(&n);
	notification_free(&n);
}

static void
test_direct_writer_renders_exact_bodies(void **state)
{
	struct notification n;
	struct payload p;
	char *text;

	parse("{\"title\":\"Hi \\\"you\\\"\",\"body\":\"caf\xc3\xa9\\n/\",\"thread_id\":\"t1\","
	    "\"data\":{\"room\":\"r1\",\"aps\":\"dropped\"}}", &n);
	assert_int_equal(payload_apns_build(&n, 1, &p), PAYLOAD_OK);
	text = render(&p, "ignored", 5);
	assert_string_equal(text, "{\"aps\":{\"alert\":{\"title\":\"Hi \\\"you\\\"\","
	    "\"body\":\"caf\xc3\xa9\\n/\"},\"badge\":5,\"thread-id\":\"t1\"},\"room\":\"r1\"}");
	free(text);
	payload_free(&p);
	notification_free(&n);

	parse("{\"body\":\"there\",\"data\":{\"aps\":\"kept\"}}", &n);
	assert_int_equal(payload_fcm_build(&n, 1, &p), PAYLOAD_OK);
	assert_int_equal(p.splices, 3);
	text = render(&p, "fcm:TOKEN-2", 12);
	assert_string_equal(text, "{\"message\":{\"token\":\"fcm:TOKEN-2\","
	    "\"notification\":{\"body\":\"there\"},\"data\":{\"aps\":\"kept\"},"
	    "\"android\":{\"priority\":\"HIGH\",\"notification\":{\"notification_count\":12}},"
	    "\"apns\":{\"headers\":{\"apns-priority\":\"10\"},"
	    "\"payload\":{\"aps\":{\"badge\":12}}}}}");
	free(text);
	payload_free(&p);
	notification_free(&n);
}

static void
test_text_like_the_token_placeholder_is_not_replaced_by_the_token(void **state)
{
	struct notification n;
	struct payload p;
	char *text;

	parse("{\"body\":\"@@pushrelay-token@@\"}", &n);
	assert_int_equal(payload_apns_build(&n, 0, &p), PAYLOAD_OK);
	assert_int_equal(p.splices, 0);
	payload_free(&p);
	assert_int_equal(payload_fcm_build(&n, 0, &p), PAYLOAD_OK);
	text = render(&p, "TOKEN", 0);
	assert_string_equal(text, "{\"message\":{\"token\":\"TOKEN\","
	    "\"notification\":{\"body\":\"@@pushrelay-token@@\"},"
	    "\"android\":{\"priority\":\"HIGH\"},"
	    "\"apns\":{\"headers\":{\"apns-priority\":\"10\"}}}}");
	free(text);
	payload_free(&p);
	notification_free(&n);

	/* The same through the override path (jansson, then the sentinels cut out). */
	parse("{\"body\":\"@@pushrelay-token@@\",\"apns\":{\"payload\":{\"x\":\"1\"}},"
	    "\"fcm\":{\"android\":{\"ttl\":\"60s\"}}}", &n);
	assert_int_equal(payload_apns_build(&n, 0, &p), PAYLOAD_OK);
	assert_int_equal(p.splices, 0);
	text = render(&p, "TOKEN", 0);
	assert_string_equal(text, "{\"aps\":{\"alert\":{\"body\":\"@@pushrelay-token@@\"}},"
	    "\"x\":\"1\"}");
	free(text);
	payload_free(&p);
	assert_int_equal(payload_fcm_build(&n, 0, &p), PAYLOAD_OK);
	assert_int_equal(p.splices, 1);
	text = render(&p, "TOKEN", 0);
	assert_string_equal(text, "{\"message\":{\"token\":\"TOKEN\","
	    "\"notification\":{\"body\":\"@@pushrelay-token@@\"},"
	    "\"android\":{\"priority\":\"HIGH\",\"ttl\":\"60s\"},"
	    "\"apns\":{\"headers\":{\"apns-priority\":\"10\"}}}}");
	free(text);
	payload_free(&p);
	notification_free(&n);
}

/* Both providers' payloads of a and b are the same, with and without badges. */
static void
assert_same_builds(const struct notification *a, const struct notification *b)
{
	struct payload pa, pb;
	int ea, eb;

	for (int with_badge = 0; with_badge <= 1; with_badge++) {
		ea = payload_apns_build(a, with_badge, &pa);
		eb = payload_apns_build(b, with_badge, &pb);
		assert_same_payload(ea, &pa, eb, &pb);
		payload_free(&pa);
		payload_free(&pb);
		ea = payload_fcm_build(a, with_badge, &pa);
		eb = payload_fcm_build(b, with_badge, &pb);
		assert_same_payload(ea, &pa, eb, &pb);
		payload_free(&pa);
		payload_free(&pb);
	}
}

/* Both builds of n, its data given as an object and as serialized members, agree. */
static void
assert_members_same_as_object(const char *text)
{
	struct notification object, members;
	const char *keys[8], *values[8], *key;
	json_t *value;
	size_t count = 0;

	parse(text, &object);
	parse(text, &members);
	json_object_foreach(members.data, key, value) {
		keys[count] = key;
		values[count++] = json_string_value(value);
	}
	/* The members win over the object; then they stand alone. */
	members.data_members = payload_members_text(keys, values, count);
	assert_same_builds(&members, &object);
	json_decref(members.data);
	members.data = NULL;
	assert_same_as_generic(&members);
	assert_same_builds(&members, &object);
	notification_free(&members);
	notification_free(&object);
}

/* The FCM payload merges its override's data into a copy: APNs never sees it. */
static void
test_fcm_data_override_does_not_reach_the_apns_payload(void **state)
{
	struct notification n;
	struct payload p;
	char *text;

	parse("{\"body\":\"b\",\"data\":{\"room\":\"r\"},"
	    "\"fcm\":{\"data\":{\"only_fcm\":\"1\"}}}", &n);
	assert_int_equal(payload_fcm_build(&n, 0, &p), PAYLOAD_OK);
	text = render(&p, "TOKEN", 0);
	assert_non_null(strstr(text, "\"data\":{\"room\":\"r\",\"only_fcm\":\"1\"}"));
	free(text);
	payload_free(&p);
	assert_int_equal(payload_apns_build(&n, 0, &p), PAYLOAD_OK);
	text = render(&p, "TOKEN", 0);
	assert_string_equal(text, "{\"aps\":{\"alert\":{\"body\":\"b\"}},\"room\":\"r\"}");
	free(text);
	payload_free(&p);
	notification_free(&n);
}

/* Room messages carry their data as serialized members: the payloads are the same. */
static void
test_data_members_give_the_payloads_of_the_data_object(void **state)
{
	assert_members_same_as_object("{\"title\":\"General\",\"body\":\"Alice: hi\","
	    "\"thread_id\":\"general\",\"data\":{\"room\":\"general\","
	    "\"message_id\":\"m-1\",\"sender\":\"alice\",\"count\":\"1\"}}");
	/* Escapes and characters beyond ASCII in keys and values. */
	assert_members_same_as_object("{\"body\":\"b\",\"badge\":3,\"data\":{"
	    "\"q\\\"uote\":\"a\\\\b\\u0001c\\n\",\"\u00e9t\u00e9\":\"\u2603 \\ud83d\\ude00\","
	    "\"slash\":\"a/b\"}}");
	/* An empty data object. */
	assert_members_same_as_object("{\"body\":\"b\",\"data\":{}}");
	/* Overrides take the jansson path, which reads the members back. */
	assert_members_same_as_object("{\"body\":\"b\",\"data\":{\"room\":\"r\"},"
	    "\"apns\":{\"payload\":{\"room\":\"over\",\"x\":1}},"
	    "\"fcm\":{\"data\":{\"extra\":\"e\"}}}");
}

static void
test_notification_rejects_bad_fields_with_exact_messages(void **state)
{
	expect_invalid("{\"body\":\"x\",\"data\":{\"n\":1}}",
	    "notification.data.n: must be a string");
	expect_invalid("{\"body\":\"x\",\"data\":{\"google.x\":\"v\"}}",
	    "notification.data.google.x: is a reserved key");
	expect_invalid("{\"body\":\"x\",\"colour\":\"red\"}", "notification.colour: unknown field");
	expect_invalid("{\"body\":\"x\",\"priority\":\"urgent\"}",
	    "notification.priority: must be one of: high, normal");
	expect_invalid("{\"body\":\"x\",\"badge\":-1}",
	    "notification.badge: must be an integer from 0 to 999999");
	expect_invalid("{\"body\":\"x\",\"ttl\":2419201}",
	    "notification.ttl: must be an integer from 0 to 2419200");
	expect_invalid("{\"body\":\"x\",\"collapse_id\":\"0123456789012345678901234567890123456789"
	    "01234567890123456789012345\"}",
	    "notification.collapse_id: must be at most 64 bytes");
	expect_invalid("{\"body\":\"x\",\"interruption_level\":\"loud\"}",
	    "notification.interruption_level: must be one of: passive, active, "
	    "time-sensitive, critical");
	expect_invalid("{\"body\":\"x\",\"apns\":{\"headers\":{\"x-foo\":\"1\"}}}",
	    "notification.apns.headers: must map apns-* header names to strings");
	expect_invalid("{\"body\":\"x\",\"apns\":{\"headers\":{\"apns-id\":\"a\\r\\nb\"}}}",
	    "notification.apns.headers: values must not contain control characters");
	expect_invalid("{\"sound\":\"default\"}",
	    "notification.body: is required unless there is a title, or the "
	    "notification is silent (content_available or data)");
}

/* A long unknown key of two-byte characters: field and message are cut between them. */
static void
test_notification_error_for_a_long_key_stays_valid_utf8(void **state)
{
	struct notification n;
	struct model_error err;
	char key[2 * 150 + 1], text[400];
	json_t *o;

	for (size_t i = 0; i < 150; i++)
		memcpy(key + 2 * i, "\xc3\xa9", 2);
	key[300] = '\0';
	snprintf(text, sizeof text, "{\"%s\":1}", key);
	o = json_loads(text, 0, NULL);
	assert_non_null(o);
	assert_int_equal(notification_from_json(o, "notification.", &n, &err), -1);
	/* "notification." and 25 characters fill the 63 bytes of the field. */
	assert_int_equal(strlen(err.field), 63);
	assert_memory_equal(err.field, "notification.", 13);
	assert_memory_equal(err.field + 13, key, 50);
	/* The name gives way to the reason: 239 bytes of it, ": ", "unknown field". */
	assert_int_equal(strlen(err.message), 254);
	assert_string_equal(err.message + 239, ": unknown field");
	assert_true(utf8_valid(err.message, strlen(err.message)));
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apns_payload_is_exact),
		cmocka_unit_test(test_apns_payload_splices_badge_per_recipient),
		cmocka_unit_test(test_apns_override_merges_and_null_deletes),
		cmocka_unit_test(test_fcm_message_splices_token_and_is_exact),
		cmocka_unit_test(test_fcm_override_cannot_change_the_recipient),
		cmocka_unit_test(test_long_body_is_shortened_at_a_character_boundary),
		cmocka_unit_test(test_payload_that_cannot_fit_fails),
		cmocka_unit_test(test_direct_writer_matches_the_jansson_path),
		cmocka_unit_test(test_direct_writer_renders_exact_bodies),
		cmocka_unit_test(test_text_like_the_token_placeholder_is_not_replaced_by_the_token),
		cmocka_unit_test(test_fcm_data_override_does_not_reach_the_apns_payload),
		cmocka_unit_test(test_data_members_give_the_payloads_of_the_data_object),
		cmocka_unit_test(test_notification_rejects_bad_fields_with_exact_messages),
		cmocka_unit_test(test_notification_error_for_a_long_key_stays_valid_utf8),
	};

	return cmocka_run_group_tests_name("payload", tests, NULL, NULL);
}
