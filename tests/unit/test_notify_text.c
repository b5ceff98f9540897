/*
 * Tests for notify_text.c: the exact title, body and data of a room notification for
 * one and several messages, with and without names, cut at the limit, and with the
 * message's push overrides (tests/integration/test_rooms.py's note() expects the same).
 */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"
#include "notification.h"
#include "notify_text.h"

/* A message of room r1 from alice, without names. */
static struct notify_message
message(const char *id, const char *text)
{
	struct notify_message m = { "r1", id, "alice", NULL, NULL, text, NULL };

	return m;
}

/* Build, check it worked, and check the fields every room notification has. */
static void
build(const struct notify_message *m, size_t count, int64_t badge, struct notification *n)
{
	char collapse[NOTIFY_COLLAPSE_ID_SIZE];

	assert_int_equal(notify_text_build(m, count, badge, n), NOTIFY_TEXT_OK);
	assert_string_equal(n->thread_id, m->room);
	assert_null(n->sound);
	/* The latest message's own collapse id (an override may replace the headers). */
	assert_int_equal(notify_collapse_id(m->room, m->id, collapse), 0);
	assert_string_equal(n->collapse_id, collapse);
	assert_int_equal(n->priority, NOTIFICATION_PRIORITY_HIGH);
	assert_int_equal(n->ttl, -1);
}

/* n's data, whichever form it has, as compact JSON with sorted keys. */
static char *
data_text(const struct notification *n)
{
	json_t *data;
	char *text, *wrapped;
	json_error_t error;

	if (n->data_members != NULL) {
		assert_null(n->data);
		assert_true(asprintf(&wrapped, "{%s}", n->data_members) > 0);
		data = json_loads(wrapped, 0, &error);
		free(wrapped);
	} else
		data = json_incref(n->data);
	assert_non_null(data);
	text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(data);
	return text;
}

static void
assert_data(const struct notification *n, const char *expected)
{
	char *text = data_text(n);

	assert_string_equal(text, expected);
	free(text);
}

static void
test_notify_text_one_message_without_names_is_titled_by_the_room(void **state)
{
	struct notify_message m = message("m1", "hello");
	struct notification n;

	build(&m, 1, -1, &n);
	assert_string_equal(n.title, "r1");
	assert_string_equal(n.body, "alice: hello");
	assert_int_equal(n.badge, -1);
	/* Serialized as the payloads write them, in this order. */
	assert_string_equal(n.data_members,
	    "\"room\":\"r1\",\"message_id\":\"m1\",\"sender\":\"alice\",\"count\":\"1\"");
	notification_free(&n);
}

static void
test_notify_text_sender_name_titles_and_signs_the_message(void **state)
{
	struct notify_message m = message("m2", "sender name");
	struct notification n;

	m.sender_name = "Alice";
	build(&m, 1, -1, &n);
	assert_string_equal(n.title, "Alice");
	assert_string_equal(n.body, "Alice: sender name");
	/* The data names the sender by client id, not by name. */
	assert_data(&n, "{\"count\":\"1\",\"message_id\":\"m2\",\"room\":\"r1\","
	    "\"sender\":\"alice\"}");
	notification_free(&n);
}

static void
test_notify_text_room_name_wins_the_title(void **state)
{
	struct notify_message m = message("m3", "both names");
	struct notification n;

	m.sender_name = "Alice";
	m.room_name = "General";
	build(&m, 1, -1, &n);
	assert_string_equal(n.title, "General");
	assert_string_equal(n.body, "Alice: both names");
	notification_free(&n);
}

/*
 * The collapse id is a fixed function of room and message id, the same everywhere:
 * values computed apart (Python's hashlib and base64) for a few of them.
 */
static void
test_notify_collapse_id_is_the_documented_hash(void **state)
{
	static const struct {
		const char *room, *id, *want;
	} cases[] = {
		{ "r1", "m1", "m-wPkAuMtEOTJrkzac2xlpdw" },
		{ "r1", "m2", "m-lSm73ZLnItkuzF1Bxzd9Tw" },
		{ "g\xc3\xa9n\xc3\xa9ral", "\xf0\x9f\x98\x80", "m-cO31iPYXBDskDD0BJLKz-A" },
	};
	char got[NOTIFY_COLLAPSE_ID_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(notify_collapse_id(cases[i].room, cases[i].id, got), 0);
		assert_string_equal(got, cases[i].want);
		assert_true(strlen(got) <= NOTIFICATION_COLLAPSE_ID_MAX);
	}
}

static void
test_notify_text_several_messages_count_and_show_the_latest(void **state)
{
	struct notify_message m = message("m9", "third");
	struct notification n;

	build(&m, 3, 7, &n);
	assert_string_equal(n.title, "r1");
	assert_string_equal(n.body, "3 new messages: alice: third");
	/* A coalesced notification carries its recipient's badge itself. */
	assert_int_equal(n.badge, 7);
	assert_data(&n, "{\"count\":\"3\",\"message_id\":\"m9\",\"room\":\"r1\","
	    "\"sender\":\"alice\"}");
	notification_free(&n);

	m.sender_name = "Alice";
	m.room_name = "Support";
	build(&m, 12, 0, &n);
	assert_string_equal(n.title, "Support");
	assert_string_equal(n.body, "12 new messages: Alice: third");
	assert_int_equal(n.badge, 0);
	notification_free(&n);
}

static void
test_notify_text_without_text_or_sender(void **state)
{
	struct notify_message m = message("m4", NULL);
	struct notification n;

	build(&m, 1, -1, &n);
	assert_string_equal(n.body, "alice: ");
	notification_free(&n);
	/* An anonymous sender (Ably without a clientId). */
	m.sender = "";
	m.text = "hi";
	build(&m, 1, -1, &n);
	assert_string_equal(n.body, ": hi");
	assert_data(&n, "{\"count\":\"1\",\"message_id\":\"m4\",\"room\":\"r1\","
	    "\"sender\":\"\"}");
	notification_free(&n);
}

static void
test_notify_text_body_is_cut_at_the_limit_on_a_character_boundary(void **state)
{
	char name[256], text[2 * 2048 + 1], *expected;
	struct notify_message m = message("m5", text);
	struct notification n;

	/* 255 + ": " + 2048 two-byte characters: byte 4096 is inside one of them. */
	memset(name, 'N', 255);
	name[255] = '\0';
	for (size_t i = 0; i < 2048; i++)
		memcpy(text + 2 * i, "\xc3\xa9", 2);
	text[2 * 2048] = '\0';
	m.sender_name = name;
	build(&m, 1, -1, &n);
	assert_int_equal(strlen(n.body), NOTIFICATION_TEXT_MAX - 1);
	assert_true(asprintf(&expected, "%s: %s", name, text) > 0);
	expected[NOTIFICATION_TEXT_MAX - 1] = '\0';
	assert_string_equal(n.body, expected);
	assert_string_equal(n.title, name);
	free(expected);
	notification_free(&n);
}

static void
test_notify_text_push_overrides_title_body_data_and_platforms(void **state)
{
	struct notify_message m = message("t4", "");
	struct notification n;
	json_error_t error;
	char *apns;

	m.room_name = "General";
	m.sender_name = "Alice";
	m.push = json_loads("{\"title\":\"Alice in #general\",\"body\":\"sent a photo\","
	    "\"data\":{\"deeplink\":\"chat://general/t4\",\"room\":\"mine\"},"
	    "\"apns\":{\"headers\":{\"apns-collapse-id\":\"photo-t4\"}},"
	    "\"fcm\":{\"android\":{\"collapse_key\":\"photo-t4\"}},"
	    "\"unknown\":\"ignored\"}", 0, &error);
	assert_non_null(m.push);
	build(&m, 1, 4, &n);
	assert_string_equal(n.title, "Alice in #general");
	assert_string_equal(n.body, "sent a photo");
	assert_int_equal(n.badge, 4);
	/* Data merges over the defaults, key by key. */
	assert_data(&n, "{\"count\":\"1\",\"deeplink\":\"chat://general/t4\","
	    "\"message_id\":\"t4\",\"room\":\"mine\",\"sender\":\"alice\"}");
	apns = json_dumps(n.apns, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(apns, "{\"headers\":{\"apns-collapse-id\":\"photo-t4\"}}");
	free(apns);
	assert_non_null(n.fcm);
	notification_free(&n);
	json_decref(m.push);
}

static void
test_notify_text_invalid_overrides_fall_back_to_the_defaults(void **state)
{
	struct notify_message m = message("m6", "plain");
	struct notification n;
	json_error_t error;

	/* A data value that is not a string: POST /v1/push refuses it, so do we. */
	m.push = json_loads("{\"title\":\"T\",\"body\":\"B\",\"data\":{\"n\":1},"
	    "\"fcm\":{\"android\":{}}}", 0, &error);
	assert_non_null(m.push);
	build(&m, 2, -1, &n);
	assert_string_equal(n.title, "r1");
	assert_string_equal(n.body, "2 new messages: alice: plain");
	assert_data(&n, "{\"count\":\"2\",\"message_id\":\"m6\",\"room\":\"r1\","
	    "\"sender\":\"alice\"}");
	assert_null(n.fcm);
	assert_null(n.apns);
	notification_free(&n);
	json_decref(m.push);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_text_one_message_without_names_is_titled_by_the_room),
		cmocka_unit_test(test_notify_text_sender_name_titles_and_signs_the_message),
		cmocka_unit_test(test_notify_text_room_name_wins_the_title),
		cmocka_unit_test(test_notify_collapse_id_is_the_documented_hash),
		cmocka_unit_test(test_notify_text_several_messages_count_and_show_the_latest),
		cmocka_unit_test(test_notify_text_without_text_or_sender),
		cmocka_unit_test(test_notify_text_body_is_cut_at_the_limit_on_a_character_boundary),
		cmocka_unit_test(test_notify_text_push_overrides_title_body_data_and_platforms),
		cmocka_unit_test(test_notify_text_invalid_overrides_fall_back_to_the_defaults),
	};

	log_init();
	log_set_level(LOG_LEVEL_ERROR);	/* the ignored overrides' warning */
	return cmocka_run_group_tests_name("notify_text", tests, NULL, NULL);
}
