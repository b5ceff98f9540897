/* Tests for event.c: every event type, the room's origin, ts formats, exact errors. */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event.h"

/* Parse text (with room from the source), asserting success. */
static void
parse_ok(const char *text, const char *room, struct room_event *ev)
{
	char err[256] = "";
	int rc = room_event_parse_text(text, strlen(text), room, ev, err, sizeof err);

	if (rc != EVENT_OK)
		fail_msg("rejected (%d): %s", rc, err);
	assert_string_equal(err, "");
}

/* Assert that an event is all zero: nothing allocated, nothing set. */
static void
assert_empty(const struct room_event *ev)
{
	struct room_event zero;

	memset(&zero, 0, sizeof zero);
	assert_memory_equal(ev, &zero, sizeof zero);
}

/* Parse an object, expecting the result rc with exactly the error message. */
static void
expect_object(json_t *object, const char *room, int rc, const char *message)
{
	struct room_event ev;
	char err[256];

	memset(&ev, 0xa5, sizeof ev);
	assert_int_equal(room_event_parse(object, room, &ev, err, sizeof err), rc);
	assert_string_equal(err, message);
	assert_empty(&ev);
	json_decref(object);
}

/* Parse text, expecting EVENT_EMALFORMED with exactly the error message. */
static void
expect_malformed(const char *text, const char *message)
{
	struct room_event ev;
	char err[256];

	memset(&ev, 0xa5, sizeof ev);
	assert_int_equal(room_event_parse_text(text, strlen(text), NULL, &ev, err, sizeof err),
	    EVENT_EMALFORMED);
	assert_string_equal(err, message);
	assert_empty(&ev);
}

/* A message object in room r with one field replaced (set_new semantics). */
static json_t *
message_with(const char *field, json_t *value)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "message", "room", "r",
	    "id", "m1", "client_id", "alice", "text", "hi");

	assert_non_null(o);
	assert_int_equal(json_object_set_new(o, field, value), 0);
	return o;
}

/* A string of n copies of c. */
static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static char *
dump_sorted(const json_t *value)
{
	char *s = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);

	assert_non_null(s);
	return s;
}

static void
test_event_message_with_every_field(void **state)
{
	struct room_event ev;
	char *push;

	(void)state;
	parse_ok("{\"type\":\"message\",\"room\":\"general\",\"id\":\"m-1\","
	    "\"client_id\":\"alice\",\"text\":\"Hello \\u00e9\",\"ts\":1795857302123,"
	    "\"room_name\":\"General\",\"sender_name\":\"Alice A.\","
	    "\"mentions\":[\"bob\",\"carol\"],"
	    "\"push\":{\"title\":\"T\",\"body\":\"B\",\"data\":{\"k\":\"v\"},"
	    "\"apns\":{\"headers\":{\"apns-priority\":\"5\"}},\"fcm\":{\"android\":{}},"
	    "\"skip\":false,\"sound\":\"ignored\"},"
	    "\"future_field\":{\"anything\":[1,2]}}", "other", &ev);
	assert_int_equal(ev.type, EVENT_MESSAGE);
	assert_string_equal(ev.room, "general");
	assert_string_equal(ev.id, "m-1");
	assert_string_equal(ev.client_id, "alice");
	assert_null(ev.connection_id);
	assert_string_equal(ev.text, "Hello \xc3\xa9");
	assert_int_equal(ev.ts, 1795857302123LL);
	assert_string_equal(ev.room_name, "General");
	assert_string_equal(ev.sender_name, "Alice A.");
	assert_int_equal(ev.mention_count, 2);
	assert_string_equal(ev.mentions[0], "bob");
	assert_string_equal(ev.mentions[1], "carol");
	assert_non_null(ev.push);
	push = dump_sorted(ev.push);
	assert_string_equal(push, "{\"apns\":{\"headers\":{\"apns-priority\":\"5\"}},"
	    "\"body\":\"B\",\"data\":{\"k\":\"v\"},\"fcm\":{\"android\":{}},\"title\":\"T\"}");
	free(push);
	assert_int_equal(ev.push_skip, 0);
	assert_null(ev.present);
	assert_int_equal(ev.present_count, 0);
	assert_null(ev.up_to);
	room_event_free(&ev);
	assert_empty(&ev);
}

static void
test_event_message_minimal_leaves_optional_fields_unset(void **state)
{
	struct room_event ev;

	(void)state;
	parse_ok("{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\","
	    "\"text\":\"\",\"ts\":null,\"room_name\":null,\"mentions\":null,\"push\":null}",
	    NULL, &ev);
	assert_int_equal(ev.type, EVENT_MESSAGE);
	assert_string_equal(ev.text, "");
	assert_int_equal(ev.ts, 0);
	assert_null(ev.room_name);
	assert_null(ev.sender_name);
	assert_null(ev.mentions);
	assert_int_equal(ev.mention_count, 0);
	assert_null(ev.push);
	assert_int_equal(ev.push_skip, 0);
	room_event_free(&ev);
}

static void
test_event_ts_accepts_rfc3339_and_milliseconds(void **state)
{
	struct room_event ev;

	(void)state;
	parse_ok("{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\","
	    "\"text\":\"x\",\"ts\":\"2026-11-28T09:15:02.123Z\"}", NULL, &ev);
	assert_int_equal(ev.ts, 1795857302123LL);
	room_event_free(&ev);
	parse_ok("{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\","
	    "\"text\":\"x\",\"ts\":\"2026-11-28T09:15:02+01:00\"}", NULL, &ev);
	assert_int_equal(ev.ts, 1795853702000LL);
	room_event_free(&ev);
	parse_ok("{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\","
	    "\"text\":\"x\",\"ts\":0}", NULL, &ev);
	assert_int_equal(ev.ts, 0);
	room_event_free(&ev);
}

static void
test_event_push_with_only_skip_has_no_overrides(void **state)
{
	struct room_event ev;

	(void)state;
	parse_ok("{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\","
	    "\"text\":\"x\",\"push\":{\"skip\":true}}", NULL, &ev);
	assert_null(ev.push);
	assert_int_equal(ev.push_skip, 1);
	room_event_free(&ev);
}

static void
test_event_long_text_is_cut_at_a_character_boundary(void **state)
{
	struct room_event ev;
	char err[256];
	char *text = repeat('a', EVENT_TEXT_MAX + 1);
	json_t *o;

	(void)state;
	/* 4095 a's, then "é" straddling the limit: the cut drops the whole character. */
	text[EVENT_TEXT_MAX - 1] = '\xc3';
	text[EVENT_TEXT_MAX] = '\xa9';
	o = message_with("text", json_string(text));
	assert_int_equal(room_event_parse(o, NULL, &ev, err, sizeof err), EVENT_OK);
	assert_int_equal(strlen(ev.text), EVENT_TEXT_MAX - 1);
	assert_memory_equal(ev.text, text, EVENT_TEXT_MAX - 1);
	room_event_free(&ev);
	/* Exactly the limit is kept whole. */
	text[EVENT_TEXT_MAX - 1] = 'a';
	text[EVENT_TEXT_MAX] = '\0';
	json_object_set_new(o, "text", json_string(text));
	assert_int_equal(room_event_parse(o, NULL, &ev, err, sizeof err), EVENT_OK);
	assert_string_equal(ev.text, text);
	room_event_free(&ev);
	json_decref(o);
	free(text);
}

static void
test_event_message_update_needs_only_id(void **state)
{
	struct room_event ev;

	(void)state;
	parse_ok("{\"type\":\"message.update\",\"room\":\"r\",\"id\":\"m\","
	    "\"text\":\"edited\"}", NULL, &ev);
	assert_int_equal(ev.type, EVENT_MESSAGE_UPDATE);
	assert_string_equal(ev.id, "m");
	assert_string_equal(ev.text, "edited");
	assert_null(ev.client_id);
	assert_null(ev.mentions);
	room_event_free(&ev);
	parse_ok("{\"type\":\"message.update\",\"room\":\"r\",\"id\":\"m\","
	    "\"mentions\":[\"bob\"],\"push\":{\"body\":\"b\"}}", NULL, &ev);
	assert_null(ev.text);
	assert_int_equal(ev.mention_count, 1);
	assert_string_equal(ev.mentions[0], "bob");
	assert_string_equal(json_string_value(json_object_get(ev.push, "body")), "b");
	room_event_free(&ev);
}

static void
test_event_message_delete(void **state)
{
	struct room_event ev;

	(void)state;
	parse_ok("{\"type\":\"message.delete\",\"room\":\"r\",\"id\":\"m9\","
	    "\"client_id\":\"ignored\",\"text\":\"ignored\"}", NULL, &ev);
	assert_int_equal(ev.type, EVENT_MESSAGE_DELETE);
	assert_string_equal(ev.room, "r");
	assert_string_equal(ev.id, "m9");
	assert_null(ev.client_id);
	assert_null(ev.text);
	room_event_free(&ev);
}

static void
test_event_presence_enter_leave_update(void **state)
{
	struct room_event ev;

	(void)state;
	parse_ok("{\"type\":\"presence.enter\",\"room\":\"r\",\"client_id\":\"alice\","
	    "\"connection_id\":\"c-1\"}", NULL, &ev);
	assert_int_equal(ev.type, EVENT_PRESENCE_ENTER);
	assert_string_equal(ev.client_id, "alice");
	assert_string_equal(ev.connection_id, "c-1");
	room_event_free(&ev);
	parse_ok("{\"type\":\"presence.leave\",\"room\":\"r\",\"client_id\":\"alice\"}", NULL,
	    &ev);
	assert_int_equal(ev.type, EVENT_PRESENCE_LEAVE);
	assert_string_equal(ev.client_id, "alice");
	assert_null(ev.connection_id);
	room_event_free(&ev);
	parse_ok("{\"type\":\"presence.update\",\"room\":\"r\",\"client_id\":\"bob\","
	    "\"connection_id\":\"c-2\"}", NULL, &ev);
	assert_int_equal(ev.type, EVENT_PRESENCE_UPDATE);
	assert_string_equal(ev.client_id, "bob");
	assert_string_equal(ev.connection_id, "c-2");
	room_event_free(&ev);
}

static void
test_event_presence_sync_lists_clients_and_may_be_empty(void **state)
{
	struct room_event ev;

	(void)state;
	parse_ok("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[\"a\",\"b\"]}", NULL,
	    &ev);
	assert_int_equal(ev.type, EVENT_PRESENCE_SYNC);
	assert_int_equal(ev.present_count, 2);
	assert_string_equal(ev.present[0], "a");
	assert_string_equal(ev.present[1], "b");
	room_event_free(&ev);
	parse_ok("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[]}", NULL, &ev);
	assert_int_equal(ev.type, EVENT_PRESENCE_SYNC);
	assert_int_equal(ev.present_count, 0);
	assert_null(ev.present);
	room_event_free(&ev);
}

static void
test_event_member_join_leave_and_read(void **state)
{
	struct room_event ev;

	(void)state;
	parse_ok("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"}", NULL, &ev);
	assert_int_equal(ev.type, EVENT_MEMBER_JOIN);
	assert_string_equal(ev.client_id, "a");
	room_event_free(&ev);
	parse_ok("{\"type\":\"member.leave\",\"room\":\"r\",\"client_id\":\"b\"}", NULL, &ev);
	assert_int_equal(ev.type, EVENT_MEMBER_LEAVE);
	assert_string_equal(ev.client_id, "b");
	room_event_free(&ev);
	parse_ok("{\"type\":\"read\",\"room\":\"r\",\"client_id\":\"c\",\"up_to\":\"m7\"}", NULL,
	    &ev);
	assert_int_equal(ev.type, EVENT_READ);
	assert_string_equal(ev.client_id, "c");
	assert_string_equal(ev.up_to, "m7");
	room_event_free(&ev);
}

static void
test_event_room_from_object_else_from_source(void **state)
{
	struct room_event ev;

	(void)state;
	parse_ok("{\"type\":\"member.join\",\"room\":\"in-object\",\"client_id\":\"a\"}",
	    "from-channel", &ev);
	assert_string_equal(ev.room, "in-object");
	room_event_free(&ev);
	parse_ok("{\"type\":\"member.join\",\"client_id\":\"a\"}", "from-channel", &ev);
	assert_string_equal(ev.room, "from-channel");
	room_event_free(&ev);
	parse_ok("{\"type\":\"member.join\",\"room\":null,\"client_id\":\"a\"}", "from-channel",
	    &ev);
	assert_string_equal(ev.room, "from-channel");
	room_event_free(&ev);
	expect_malformed("{\"type\":\"member.join\",\"client_id\":\"a\"}", "room: is required");
}

static void
test_event_bad_room_from_source_is_malformed(void **state)
{
	char *room = repeat('r', 129);

	(void)state;
	expect_object(json_pack("{s:s, s:s}", "type", "member.join", "client_id", "a"), room,
	    EVENT_EMALFORMED, "room: must be at most 128 bytes");
	expect_object(json_pack("{s:s, s:s}", "type", "member.join", "client_id", "a"), "",
	    EVENT_EMALFORMED, "room: must not be empty");
	free(room);
}

static void
test_event_unknown_type_is_reported_and_nothing_allocated(void **state)
{
	(void)state;
	expect_object(json_pack("{s:s, s:s}", "type", "typing.start", "room", "r"), NULL,
	    EVENT_EUNKNOWN, "unknown event type 'typing.start'");
	/* Unknown even without a room: the type is checked first. */
	expect_object(json_pack("{s:s}", "type", "reaction"), NULL, EVENT_EUNKNOWN,
	    "unknown event type 'reaction'");
	expect_object(json_pack("{s:s}", "type", "a\nb'c"), NULL, EVENT_EUNKNOWN,
	    "unknown event type 'a?b?c'");
}

static void
test_event_malformed_messages_name_the_field(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{ "{\"room\":\"r\"}", "type: is required" },
		{ "{\"type\":5,\"room\":\"r\"}", "type: must be a string" },
		{ "{\"type\":\"message\",\"room\":5}", "room: must be a string" },
		{ "{\"type\":\"message\",\"room\":\"\"}", "room: must not be empty" },
		{ "{\"type\":\"message\",\"room\":\"r\",\"client_id\":\"a\",\"text\":\"x\"}",
		    "id: is required" },
		{ "{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"text\":\"x\"}",
		    "client_id: is required" },
		{ "{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\"}",
		    "text: is required" },
		{ "{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\","
		    "\"text\":5}", "text: must be a string" },
		{ "{\"type\":\"message\",\"room\":\"r\",\"id\":7,\"client_id\":\"a\","
		    "\"text\":\"x\"}", "id: must be a string" },
		{ "{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"\","
		    "\"text\":\"x\"}", "client_id: must not be empty" },
		{ "{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\\tb\","
		    "\"text\":\"x\"}", "client_id: must not contain control characters" },
		{ "{\"type\":\"message.delete\",\"room\":\"r\"}", "id: is required" },
		{ "{\"type\":\"message.update\",\"room\":\"r\",\"text\":\"x\"}",
		    "id: is required" },
		{ "{\"type\":\"message.update\",\"room\":\"r\",\"id\":\"m\",\"client_id\":[]}",
		    "client_id: must be a string" },
		{ "{\"type\":\"presence.enter\",\"room\":\"r\"}", "client_id: is required" },
		{ "{\"type\":\"presence.enter\",\"room\":\"r\",\"client_id\":\"a\","
		    "\"connection_id\":5}", "connection_id: must be a string" },
		{ "{\"type\":\"presence.leave\",\"room\":\"r\",\"client_id\":\"a\","
		    "\"connection_id\":\"\"}", "connection_id: must not be empty" },
		{ "{\"type\":\"presence.sync\",\"room\":\"r\"}", "present: is required" },
		{ "{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":\"a\"}",
		    "present: must be an array of client ids" },
		{ "{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[\"a\",\"\"]}",
		    "present: must be an array of client ids" },
		{ "{\"type\":\"member.leave\",\"room\":\"r\"}", "client_id: is required" },
		{ "{\"type\":\"read\",\"room\":\"r\",\"client_id\":\"a\"}", "up_to: is required" },
		{ "{\"type\":\"read\",\"room\":\"r\",\"up_to\":\"m\"}", "client_id: is required" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_malformed(cases[i].text, cases[i].err);
}

static void
test_event_malformed_message_fields_name_the_field(void **state)
{
	static const char ts_err[] =
	    "ts: must be milliseconds since the epoch or an RFC 3339 time";
	char *name = repeat('n', EVENT_NAME_MAX + 1), *id = repeat('i', 129);
	json_t *many = json_array();

	(void)state;
	for (size_t i = 0; i <= EVENT_MENTIONS_MAX; i++)
		json_array_append_new(many, json_string("bob"));
	expect_object(message_with("ts", json_integer(-1)), NULL, EVENT_EMALFORMED, ts_err);
	expect_object(message_with("ts", json_real(1.5)), NULL, EVENT_EMALFORMED, ts_err);
	expect_object(message_with("ts", json_string("yesterday")), NULL, EVENT_EMALFORMED,
	    ts_err);
	expect_object(message_with("ts", json_string("1969-12-31T23:59:59Z")), NULL,
	    EVENT_EMALFORMED, ts_err);
	expect_object(message_with("ts", json_true()), NULL, EVENT_EMALFORMED, ts_err);
	expect_object(message_with("client_id", json_string(id)), NULL, EVENT_EMALFORMED,
	    "client_id: must be at most 128 bytes");
	expect_object(message_with("client_id", json_stringn("a\0b", 3)), NULL,
	    EVENT_EMALFORMED, "client_id: must not contain control characters");
	expect_object(message_with("text", json_stringn("a\0b", 3)), NULL, EVENT_EMALFORMED,
	    "text: must not contain NUL characters");
	expect_object(message_with("room_name", json_string(name)), NULL, EVENT_EMALFORMED,
	    "room_name: must be at most 256 bytes");
	expect_object(message_with("sender_name", json_integer(7)), NULL, EVENT_EMALFORMED,
	    "sender_name: must be a string");
	expect_object(message_with("mentions", json_string("bob")), NULL, EVENT_EMALFORMED,
	    "mentions: must be an array of ids");
	expect_object(message_with("mentions", json_pack("[s,i]", "bob", 1)), NULL,
	    EVENT_EMALFORMED, "mentions: must be an array of ids");
	expect_object(message_with("mentions", json_pack("[s]", id)), NULL, EVENT_EMALFORMED,
	    "mentions: must be an array of ids");
	expect_object(message_with("mentions", many), NULL, EVENT_EMALFORMED,
	    "mentions: must have at most 1000 ids");
	expect_object(message_with("push", json_string("x")), NULL, EVENT_EMALFORMED,
	    "push: must be an object");
	expect_object(message_with("push", json_pack("{s:i}", "title", 1)), NULL,
	    EVENT_EMALFORMED, "push.title: must be a string");
	expect_object(message_with("push", json_pack("{s:b}", "body", 1)), NULL,
	    EVENT_EMALFORMED, "push.body: must be a string");
	expect_object(message_with("push", json_pack("{s:[]}", "data")), NULL,
	    EVENT_EMALFORMED, "push.data: must be an object of strings");
	expect_object(message_with("push", json_pack("{s:{s:i}}", "data", "k", 1)), NULL,
	    EVENT_EMALFORMED, "push.data.k: must be a string");
	expect_object(message_with("push", json_pack("{s:{s:s}}", "data", "from", "x")), NULL,
	    EVENT_EMALFORMED, "push.data.from: is a reserved key");
	expect_object(message_with("push", json_pack("{s:{s:s}}", "data", "google.x", "x")),
	    NULL, EVENT_EMALFORMED, "push.data.google.x: is a reserved key");
	expect_object(message_with("push", json_pack("{s:s}", "apns", "x")), NULL,
	    EVENT_EMALFORMED, "push.apns: must be an object");
	expect_object(message_with("push", json_pack("{s:i}", "fcm", 1)), NULL,
	    EVENT_EMALFORMED, "push.fcm: must be an object");
	expect_object(message_with("push", json_pack("{s:s}", "skip", "yes")), NULL,
	    EVENT_EMALFORMED, "push.skip: must be a boolean");
	free(name);
	free(id);
}

static void
test_event_text_that_is_not_an_event_object(void **state)
{
	(void)state;
	expect_malformed("{\"type\":", "not valid JSON: unexpected token near end of file");
	expect_malformed("nope", "not valid JSON: invalid token near 'nope'");
	expect_malformed("{\"type\":\"read\",\"type\":\"read\"}",
	    "not valid JSON: duplicate object key near '\"type\"'");
	expect_malformed("[{\"type\":\"read\"}]", "an event must be a JSON object");
	expect_malformed("42", "an event must be a JSON object");
}

static void
test_event_type_names_are_the_wire_names(void **state)
{
	static const char *const names[] = {
		"message", "message.update", "message.delete", "presence.enter",
		"presence.leave", "presence.update", "presence.sync", "member.join",
		"member.leave", "read",
	};
	char text[128];

	(void)state;
	for (int t = EVENT_MESSAGE; t <= EVENT_READ; t++) {
		assert_string_equal(room_event_type_name((enum event_type)t), names[t]);
		/* Each name is known: without a room it is malformed, not unknown. */
		snprintf(text, sizeof text, "{\"type\":\"%s\"}", names[t]);
		expect_malformed(text, "room: is required");
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_message_with_every_field),
		cmocka_unit_test(test_event_message_minimal_leaves_optional_fields_unset),
		cmocka_unit_test(test_event_ts_accepts_rfc3339_and_milliseconds),
		cmocka_unit_test(test_event_push_with_only_skip_has_no_overrides),
		cmocka_unit_test(test_event_long_text_is_cut_at_a_character_boundary),
		cmocka_unit_test(test_event_message_update_needs_only_id),
		cmocka_unit_test(test_event_message_delete),
		cmocka_unit_test(test_event_presence_enter_leave_update),
		cmocka_unit_test(test_event_presence_sync_lists_clients_and_may_be_empty),
		cmocka_unit_test(test_event_member_join_leave_and_read),
		cmocka_unit_test(test_event_room_from_object_else_from_source),
		cmocka_unit_test(test_event_bad_room_from_source_is_malformed),
		cmocka_unit_test(test_event_unknown_type_is_reported_and_nothing_allocated),
		cmocka_unit_test(test_event_malformed_messages_name_the_field),
		cmocka_unit_test(test_event_malformed_message_fields_name_the_field),
		cmocka_unit_test(test_event_text_that_is_not_an_event_object),
		cmocka_unit_test(test_event_type_names_are_the_wire_names),
	};

	return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
