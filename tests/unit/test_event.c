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
#include "../event_reference.h"
#include "utf8.h"

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

/* A presence.sync object in room r listing n clients c0, c1, ... */
static json_t *
sync_of(size_t n)
{
	json_t *present = json_array();
	char id[32];

	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof id, "c%zu", i);
		json_array_append_new(present, json_string(id));
	}
	return json_pack("{s:s, s:s, s:o}", "type", "presence.sync", "room", "r", "present",
	    present);
}

static void
test_event_presence_sync_takes_at_most_present_max_clients(void **state)
{
	struct room_event ev;
	json_t *at_limit = sync_of(EVENT_PRESENT_MAX);
	char err[256];

	(void)state;
	assert_int_equal(room_event_parse(at_limit, NULL, &ev, err, sizeof err), EVENT_OK);
	assert_int_equal(ev.present_count, EVENT_PRESENT_MAX);
	room_event_free(&ev);
	json_decref(at_limit);
	expect_object(sync_of(EVENT_PRESENT_MAX + 1), NULL, EVENT_EMALFORMED,
	    "present: must have at most 10000 client ids");
}

/* A push object {field: {"k0": "v", "k1": "v", ...}} with n members of value_len bytes. */
static json_t *
push_with_members(const char *field, size_t n, size_t value_len)
{
	json_t *members = json_object();
	char key[32], *value = repeat('v', value_len);

	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof key, "k%zu", i);
		json_object_set_new(members, key, json_string(value));
	}
	free(value);
	return json_pack("{s:o}", field, members);
}

static void
test_event_push_overrides_are_held_to_their_limits(void **state)
{
	struct room_event ev;
	json_t *o;
	char err[256];

	(void)state;
	/* 100 members of data, and {"k0":"vvv..."} of exactly 4096 bytes, pass. */
	o = message_with("push", push_with_members("data", EVENT_PUSH_DATA_MAX, 1));
	assert_int_equal(room_event_parse(o, NULL, &ev, err, sizeof err), EVENT_OK);
	assert_int_equal(json_object_size(json_object_get(ev.push, "data")),
	    EVENT_PUSH_DATA_MAX);
	room_event_free(&ev);
	json_decref(o);
	o = message_with("push", push_with_members("apns", 1, EVENT_PUSH_JSON_MAX - 9));
	assert_int_equal(room_event_parse(o, NULL, &ev, err, sizeof err), EVENT_OK);
	room_event_free(&ev);
	json_decref(o);

	expect_object(message_with("push", push_with_members("data", EVENT_PUSH_DATA_MAX + 1,
	    1)), NULL, EVENT_EMALFORMED, "push.data: must have at most 100 members");
	expect_object(message_with("push", push_with_members("data", 1,
	    EVENT_PUSH_JSON_MAX)), NULL, EVENT_EMALFORMED,
	    "push.data: must be at most 4096 bytes as JSON");
	expect_object(message_with("push", push_with_members("apns", 1,
	    EVENT_PUSH_JSON_MAX - 8)), NULL, EVENT_EMALFORMED,
	    "push.apns: must be at most 4096 bytes as JSON");
	expect_object(message_with("push", push_with_members("fcm", 1,
	    EVENT_PUSH_JSON_MAX)), NULL, EVENT_EMALFORMED,
	    "push.fcm: must be at most 4096 bytes as JSON");
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
test_event_text_over_event_json_max_is_malformed_unread(void **state)
{
	static const char join[] = "{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"}";
	char *text = repeat(' ', EVENT_JSON_MAX + 1);
	struct room_event ev;

	(void)state;
	/* A valid event, then spaces: only its size is wrong. */
	memcpy(text, join, strlen(join));
	expect_malformed(text, "an event must be at most 2097152 bytes of JSON");
	text[EVENT_JSON_MAX] = '\0';
	parse_ok(text, NULL, &ev);
	assert_string_equal(ev.client_id, "a");
	room_event_free(&ev);
	free(text);
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

/* Text of known length for the fast-path tests: literals may hold NUL bytes. */
struct text {
	const char *bytes;
	size_t len;
};
#define TEXT(literal) { literal, sizeof literal - 1 }

/* The fields every message case starts with. */
#define MESSAGE_FIELDS "\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\""
#define MESSAGE(fields) "{" MESSAGE_FIELDS fields "}"

/* The typical event of each common kind, as chat servers send them. */
static const struct text common_events[] = {
	TEXT("{\"type\":\"message\",\"room\":\"dm-17\",\"id\":\"m-123\",\"client_id\":\"alice\","
	    "\"text\":\"hello there (due 1795857302123)\",\"ts\":1795857302123}"),
	TEXT("{\"type\":\"message\",\"room\":\"general\",\"id\":\"m-124\",\"client_id\":\"bob\","
	    "\"text\":\"@alice lunch?\",\"ts\":1795857302124,\"room_name\":\"General\","
	    "\"sender_name\":\"Bob\",\"mentions\":[\"alice\"]}"),
	TEXT("{\"type\":\"message.delete\",\"room\":\"dm-17\",\"id\":\"m-123\"}"),
	TEXT("{\"type\":\"presence.enter\",\"room\":\"dm-17\",\"client_id\":\"alice\","
	    "\"connection_id\":\"c-9\"}"),
	TEXT("{\"type\":\"presence.leave\",\"room\":\"dm-17\",\"client_id\":\"alice\"}"),
	TEXT("{\"type\":\"presence.update\",\"room\":\"dm-17\",\"client_id\":\"alice\","
	    "\"connection_id\":\"c-9\",\"ts\":1795857302125}"),
	TEXT("{\"type\":\"presence.sync\",\"room\":\"dm-17\",\"present\":[\"alice\",\"bob\"]}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"dm-17\",\"client_id\":\"bob\"}"),
	TEXT("{\"type\":\"member.leave\",\"room\":\"dm-17\",\"client_id\":\"bob\"}"),
	TEXT("{\"type\":\"read\",\"room\":\"dm-17\",\"client_id\":\"bob\",\"up_to\":\"m-123\"}"),
};

/* Inputs for the comparison of the two paths: valid, invalid, and everything between. */
static const struct text equivalence_cases[] = {
	/* Every type, valid and with fields missing or of the wrong type. */
	TEXT(MESSAGE(",\"text\":\"x\"")),
	TEXT(MESSAGE(",\"text\":\"\",\"ts\":null,\"room_name\":null,\"mentions\":null,"
	    "\"push\":null")),
	TEXT(MESSAGE(",\"text\":\"x\",\"room_name\":\"General\",\"sender_name\":\"Alice A.\","
	    "\"mentions\":[\"bob\",\"carol\"]")),
	TEXT(MESSAGE("")),
	TEXT(MESSAGE(",\"text\":null")),
	TEXT(MESSAGE(",\"text\":5")),
	TEXT(MESSAGE(",\"text\":[]")),
	TEXT(MESSAGE(",\"text\":[\"x\"]")),
	TEXT(MESSAGE(",\"text\":{}")),
	TEXT(MESSAGE(",\"text\":true")),
	TEXT("{\"type\":\"message\",\"room\":\"r\",\"client_id\":\"a\",\"text\":\"x\"}"),
	TEXT("{\"type\":\"message\",\"room\":\"r\",\"id\":7,\"client_id\":\"a\",\"text\":\"x\"}"),
	TEXT("{\"type\":\"message\",\"room\":\"r\",\"id\":[],\"client_id\":\"a\",\"text\":\"x\"}"),
	TEXT("{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"text\":\"x\"}"),
	TEXT("{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"\","
	    "\"text\":\"x\"}"),
	TEXT("{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":1.5,"
	    "\"text\":\"x\"}"),
	TEXT(MESSAGE(",\"text\":\"x\",\"room_name\":7")),
	TEXT(MESSAGE(",\"text\":\"x\",\"sender_name\":[]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":\"bob\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[1]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[\"bob\",1]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[null]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[[]]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[\"bob\",\"\"]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[\"a\\tb\"]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[ \"bob\" , \"carol\" ]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[\"bob\",]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[,\"bob\"]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":[\"bob\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"mentions\":{}")),
	TEXT(MESSAGE(",\"text\":\"x\",\"push\":{\"skip\":true}")),
	TEXT(MESSAGE(",\"text\":\"x\",\"push\":{\"title\":\"T\",\"data\":{\"k\":\"v\"}}")),
	TEXT(MESSAGE(",\"text\":\"x\",\"push\":{\"data\":{\"from\":\"x\"}}")),
	TEXT(MESSAGE(",\"text\":\"x\",\"push\":\"x\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"push\":[]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"push\":[\"x\"]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"push\":7")),
	TEXT("{\"type\":\"message.update\",\"room\":\"r\",\"id\":\"m\"}"),
	TEXT("{\"type\":\"message.update\",\"room\":\"r\",\"id\":\"m\",\"text\":\"edited\"}"),
	TEXT("{\"type\":\"message.update\",\"room\":\"r\",\"id\":\"m\",\"mentions\":[\"bob\"]}"),
	TEXT("{\"type\":\"message.update\",\"room\":\"r\",\"text\":\"x\"}"),
	TEXT("{\"type\":\"message.update\",\"room\":\"r\",\"id\":\"m\",\"client_id\":[]}"),
	TEXT("{\"type\":\"message.delete\",\"room\":\"r\",\"id\":\"m9\",\"client_id\":\"x\"}"),
	TEXT("{\"type\":\"message.delete\",\"room\":\"r\"}"),
	TEXT("{\"type\":\"message.delete\",\"room\":\"r\",\"id\":\"\"}"),
	TEXT("{\"type\":\"presence.enter\",\"room\":\"r\",\"client_id\":\"a\","
	    "\"connection_id\":\"c-1\"}"),
	TEXT("{\"type\":\"presence.enter\",\"room\":\"r\"}"),
	TEXT("{\"type\":\"presence.enter\",\"room\":\"r\",\"client_id\":\"a\","
	    "\"connection_id\":5}"),
	TEXT("{\"type\":\"presence.leave\",\"room\":\"r\",\"client_id\":\"a\","
	    "\"connection_id\":\"\"}"),
	TEXT("{\"type\":\"presence.leave\",\"room\":\"r\",\"client_id\":\"a\","
	    "\"connection_id\":null}"),
	TEXT("{\"type\":\"presence.update\",\"room\":\"r\",\"client_id\":\"b\"}"),
	TEXT("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[]}"),
	TEXT("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[\"a\",\"b\",\"c\"]}"),
	TEXT("{\"type\":\"presence.sync\",\"room\":\"r\"}"),
	TEXT("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":null}"),
	TEXT("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":\"a\"}"),
	TEXT("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[\"a\",\"\"]}"),
	TEXT("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[\"a\",2]}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"}"),
	TEXT("{\"type\":\"member.join\",\"client_id\":\"a\"}"),
	TEXT("{\"type\":\"member.join\",\"room\":null,\"client_id\":\"a\"}"),
	TEXT("{\"type\":\"member.join\",\"room\":5,\"client_id\":\"a\"}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"\",\"client_id\":\"a\"}"),
	TEXT("{\"type\":\"member.leave\",\"room\":\"r\"}"),
	TEXT("{\"type\":\"read\",\"room\":\"r\",\"client_id\":\"c\",\"up_to\":\"m7\"}"),
	TEXT("{\"type\":\"read\",\"room\":\"r\",\"client_id\":\"a\"}"),
	TEXT("{\"type\":\"read\",\"room\":\"r\",\"up_to\":\"m\"}"),
	TEXT("{\"type\":\"read\",\"room\":\"r\",\"client_id\":\"a\",\"up_to\":[]}"),
	/* The type: missing, of the wrong kind, unknown. */
	TEXT("{\"room\":\"r\"}"),
	TEXT("{\"type\":null,\"room\":\"r\"}"),
	TEXT("{\"type\":5,\"room\":\"r\"}"),
	TEXT("{\"type\":[\"read\"],\"room\":\"r\"}"),
	TEXT("{\"type\":{},\"room\":\"r\"}"),
	TEXT("{\"type\":false}"),
	TEXT("{\"type\":\"typing.start\",\"room\":\"r\"}"),
	TEXT("{\"type\":\"reaction\"}"),
	TEXT("{\"type\":\"\"}"),
	TEXT("{\"type\":\"Message\",\"room\":\"r\"}"),
	TEXT("{\"type\":\"a\\nb'c\"}"),
	TEXT("{\"type\":\"t\xc3\xbfpe\x7f'\"}"),
	TEXT("{\"type\":\"read\\u0000\"}"),
	TEXT("{\"type\":\"0123456789012345678901234567890123456789012345678901234567890"
	    "12\xe2\x82\xac\"}"),
	TEXT("{\"type\":\"0123456789012345678901234567890123456789012345678901234567890"
	    "1\xe2\x82\xac\"}"),
	/* Extra, unknown and duplicate keys. */
	TEXT(MESSAGE(",\"text\":\"x\",\"future\":\"y\",\"n\":12,\"list\":[\"p\"],\"z\":null")),
	TEXT(MESSAGE(",\"text\":\"x\",\"future\":{\"anything\":[1,2]}")),
	TEXT(MESSAGE(",\"text\":\"x\",\"flag\":true")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ratio\":0.5")),
	TEXT(MESSAGE(",\"text\":\"x\",\"list\":[1,2]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"\":\"empty key\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"k\xc3\xa9y\":\"v\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"text\":\"y\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"future\":1,\"future\":2")),
	TEXT(MESSAGE(",\"text\":\"x\",\"\":1,\"\":2")),
	TEXT("{\"type\":\"read\",\"type\":\"read\"}"),
	TEXT("{\"room\":null,\"type\":\"member.join\",\"client_id\":\"a\",\"room\":\"r\"}"),
	TEXT(MESSAGE(",\"text\":\"x\",\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,"
	    "\"k7\":7,\"k8\":8,\"k9\":9,\"k10\":10,\"k11\":11")),
	TEXT(MESSAGE(",\"text\":\"x\",\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,"
	    "\"k7\":7,\"k8\":8,\"k9\":9,\"k10\":10,\"k11\":11,\"k12\":12")),
	TEXT(MESSAGE(",\"text\":\"x\",\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,"
	    "\"k7\":7,\"k8\":8,\"k9\":9,\"k10\":10,\"k11\":11,\"k1\":12")),
	/* Escapes, in values and keys. */
	TEXT(MESSAGE(",\"text\":\"line\\nbreak \\\"quoted\\\" back\\\\slash \\/\"")),
	TEXT(MESSAGE(",\"text\":\"Hello \\u00e9 \\ud83d\\ude00\"")),
	TEXT(MESSAGE(",\"text\":\"nul \\u0000 inside\"")),
	TEXT(MESSAGE(",\"text\":\"lone \\ud800 surrogate\"")),
	TEXT(MESSAGE(",\"text\":\"bad \\x escape\"")),
	TEXT(MESSAGE(",\"text\":\"short \\u12\"")),
	TEXT(MESSAGE(",\"text\":\"trailing \\")),
	TEXT("{\"\\u0074ype\":\"read\",\"room\":\"r\",\"client_id\":\"a\",\"up_to\":\"m\"}"),
	TEXT("{\"type\":\"read\",\"\\u0074ype\":\"read\"}"),
	TEXT("{\"type\":\"re\\u0061d\",\"room\":\"r\",\"client_id\":\"a\",\"up_to\":\"m\"}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\\tb\"}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\\u0000b\"}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"\\u00e9\"}"),
	/* Raw UTF-8: valid 2-, 3- and 4-byte characters, then every kind of invalid. */
	TEXT(MESSAGE(",\"text\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"")),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\xc3\xa9\","
	    "\"client_id\":\"\xf0\x9f\x98\x80\"}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\xc2\x80\"}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\x7f\"}"),
	TEXT(MESSAGE(",\"text\":\"C1 \xc2\x80 and DEL \x7f are text\"")),
	TEXT(MESSAGE(",\"text\":\"lone continuation \x80\"")),
	TEXT(MESSAGE(",\"text\":\"truncated \xc3\"")),
	TEXT(MESSAGE(",\"text\":\"truncated \xe2\x82\"")),
	TEXT(MESSAGE(",\"text\":\"overlong \xc0\xaf\"")),
	TEXT(MESSAGE(",\"text\":\"overlong \xc1\xbf\"")),
	TEXT(MESSAGE(",\"text\":\"overlong \xe0\x80\xaf\"")),
	TEXT(MESSAGE(",\"text\":\"overlong \xf0\x80\x80\xaf\"")),
	TEXT(MESSAGE(",\"text\":\"surrogate \xed\xa0\x80\"")),
	TEXT(MESSAGE(",\"text\":\"surrogate \xed\xbf\xbf\"")),
	TEXT(MESSAGE(",\"text\":\"last before surrogates \xed\x9f\xbf\"")),
	TEXT(MESSAGE(",\"text\":\"last code point \xf4\x8f\xbf\xbf\"")),
	TEXT(MESSAGE(",\"text\":\"beyond U+10FFFF \xf4\x90\x80\x80\"")),
	TEXT(MESSAGE(",\"text\":\"F5 \xf5\x80\x80\x80\"")),
	TEXT(MESSAGE(",\"text\":\"FE FF \xfe\xff\"")),
	TEXT(MESSAGE(",\"text\":\"5-byte \xf8\x88\x80\x80\x80\"")),
	TEXT(MESSAGE(",\"k\xff\":1,\"text\":\"x\"")),
	TEXT(MESSAGE(",\"text\":\"x\"\xc3\xa9")),
	TEXT("\xef\xbb\xbf{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"}"),
	/* Raw control characters and NUL bytes, inside and outside strings. */
	TEXT(MESSAGE(",\"text\":\"tab\there\"")),
	TEXT(MESSAGE(",\"text\":\"newline\nhere\"")),
	TEXT(MESSAGE(",\"text\":\"unit separator \x1f\"")),
	TEXT(MESSAGE(",\"text\":\"nul \0 inside\"")),
	TEXT(MESSAGE(",\"k\x01\":1,\"text\":\"x\"")),
	TEXT(MESSAGE(",\"text\":\"x\"") "\0"),
	TEXT("\0" MESSAGE(",\"text\":\"x\"")),
	TEXT(MESSAGE(",\"text\":\"x\"\0")),
	TEXT("{\"type\":\0\"read\"}"),
	/* Whitespace: JSON's four, anywhere between tokens; nothing else. */
	TEXT(" \t\r\n{ \"type\" : \"member.join\" ,\n\t\"room\"\r:\"r\" , "
	    "\"client_id\":\"a\" } \n"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"}\f"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"}\v"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"}\xc2\xa0"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"\f}"),
	TEXT("{ }"),
	TEXT("{}"),
	/* Not an object, not JSON, or more after it. */
	TEXT(""),
	TEXT("   "),
	TEXT("null"),
	TEXT("42"),
	TEXT("\"member.join\""),
	TEXT("[{\"type\":\"read\"}]"),
	TEXT("nope"),
	TEXT("{"),
	TEXT("{\"type\":"),
	TEXT("{\"type\":\"read\""),
	TEXT("{\"type\":\"read"),
	TEXT("{\"type\" \"read\"}"),
	TEXT("{\"type\":\"read\" \"room\":\"r\"}"),
	TEXT("{\"type\":\"read\",}"),
	TEXT("{,\"type\":\"read\"}"),
	TEXT("{type:\"read\"}"),
	TEXT("{'type':'read'}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"}x"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"}}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"} {}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\"},"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\",\"x\":nul}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\",\"x\":nullx}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\",\"x\":NULL}"),
	TEXT("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\",\"x\":null }"),
	/* Numbers, as ts and elsewhere. */
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":0")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":-0")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":-1")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":01")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":-01")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":00")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1.0")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1.")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":.5")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1e3")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1E3")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1e")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1.5e2")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":+1")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":-")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":--1")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1x")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":0x10")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1795857302123")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":253402300799999")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":253402300800000")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":999999999999999999")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":-999999999999999999")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1000000000000000000")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":9223372036854775807")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":9223372036854775808")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":-9223372036854775808")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":-9223372036854775809")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":123456789012345678901234567890")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":true")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":[]")),
	TEXT(MESSAGE(",\"text\":\"x\",\"count\":007")),
	/* ts as an RFC 3339 string. */
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"2026-11-28T09:15:02.123Z\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"2026-11-28T09:15:02+01:00\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"2026-11-28t09:15:02z\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"2026-11-28T09:15:02."
	    "123456789012345678901234567890123456789012345678901234567890Z\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"2026-11-28T09:15:02."
	    "123456789012345678901234567890123456789012345678901234567890\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"1969-12-31T23:59:59Z\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"9999-12-31T23:59:59.999Z\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"2026-02-30T00:00:00Z\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"2026-11-28T09:15:02Z \"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"2026-11-28T09:15:02Z\\u0000\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"yesterday\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"\"")),
	TEXT(MESSAGE(",\"text\":\"x\",\"ts\":\"1795857302123\"")),
};

/* Rooms a source may give, good and bad. */
static const char *const source_rooms[] = {
	NULL, "from-channel", "", "a\tb", "\xff", "caf\xc3\xa9",
	"0123456789012345678901234567890123456789012345678901234567890123"
	"45678901234567890123456789012345678901234567890123456789012345678",
};

/* Printable text for a failure message: other bytes as \xNN, long text shortened. */
static const char *
show_text(const char *text, size_t len)
{
	static char shown[512];
	size_t n = 0;

	for (size_t i = 0; i < len && n < sizeof shown - 8; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			shown[n++] = (char)c;
		else
			n += (size_t)snprintf(shown + n, sizeof shown - n, "\\x%02x", c);
	}
	if (n >= sizeof shown - 8)
		n += (size_t)snprintf(shown + n, sizeof shown - n, "...");
	shown[n] = '\0';
	return shown;
}

/* Are a and b the same string (or both NULL)? */
static int
same_string(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Are two id lists the same? */
static int
same_ids(char *const *a, size_t a_count, char *const *b, size_t b_count)
{
	if (a_count != b_count || (a == NULL) != (b == NULL))
		return 0;
	for (size_t i = 0; i < a_count; i++) {
		if (!same_string(a[i], b[i]))
			return 0;
	}
	return 1;
}

/* The first field of struct room_event in which a and b differ, or NULL. */
static const char *
event_difference(const struct room_event *a, const struct room_event *b)
{
	if (a->type != b->type)
		return "type";
	if (!same_string(a->room, b->room))
		return "room";
	if (!same_string(a->id, b->id))
		return "id";
	if (!same_string(a->client_id, b->client_id))
		return "client_id";
	if (!same_string(a->connection_id, b->connection_id))
		return "connection_id";
	if (!same_string(a->text, b->text))
		return "text";
	if (a->ts != b->ts)
		return "ts";
	if (!same_string(a->room_name, b->room_name))
		return "room_name";
	if (!same_string(a->sender_name, b->sender_name))
		return "sender_name";
	if (!same_ids(a->mentions, a->mention_count, b->mentions, b->mention_count))
		return "mentions";
	if ((a->push == NULL) != (b->push == NULL) ||
	    (a->push != NULL && !json_equal(a->push, b->push)))
		return "push";
	if (a->push_skip != b->push_skip)
		return "push_skip";
	if (!same_ids(a->present, a->present_count, b->present, b->present_count))
		return "present";
	if (!same_string(a->up_to, b->up_to))
		return "up_to";
	if (a->redelivered != b->redelivered)
		return "redelivered";
	return NULL;
}

/* One path's verdict on a text. */
struct verdict {
	int rc;
	char err[256];
	struct room_event ev;
};

typedef int (*parse_text_fn)(const char *, size_t, const char *, struct room_event *, char *,
    size_t);

/* Run one path, with err and the event prefilled with garbage. */
static void
run_path(parse_text_fn parse, const char *text, size_t len, const char *room,
    struct verdict *v)
{
	memset(v->err, '#', sizeof v->err - 1);
	v->err[sizeof v->err - 1] = '\0';
	memset(&v->ev, 0xa5, sizeof v->ev);
	v->rc = parse(text, len, room, &v->ev, v->err, sizeof v->err);
}

/* Fail unless got is the reference verdict: same code, error and event. */
static void
assert_same_verdict(const struct verdict *want, const struct verdict *got, const char *path,
    const char *text, size_t len, const char *room)
{
	const char *field;

	if (got->rc != want->rc || strcmp(got->err, want->err) != 0)
		fail_msg("%s path: %d '%s', generic: %d '%s'; room %s; text %s", path, got->rc,
		    got->err, want->rc, want->err, room == NULL ? "NULL" : room,
		    show_text(text, len));
	if ((field = event_difference(&want->ev, &got->ev)) != NULL)
		fail_msg("%s path: %s differs from generic; room %s; text %s", path, field,
		    room == NULL ? "NULL" : room, show_text(text, len));
	if (got->rc != EVENT_OK)
		assert_empty(&got->ev);
}

/*
 * Parse text on the generic, fast and combined paths, failing unless the fast path
 * (when it does not defer) and the combined one agree with the generic one. The
 * text is copied to a buffer of exactly len bytes so that overreads are caught.
 * Returns 1 if the fast path handled the text, 0 if it deferred.
 */
static int
assert_paths_agree(const char *text, size_t len, const char *room)
{
	struct verdict generic, fast, combined;
	char *copy = malloc(len > 0 ? len : 1);
	int handled;

	assert_non_null(copy);
	memcpy(copy, text, len);
	run_path(room_event_parse_text_generic, copy, len, room, &generic);
	assert_true(generic.rc == EVENT_OK || generic.rc == EVENT_EMALFORMED ||
	    generic.rc == EVENT_EUNKNOWN);
	run_path(room_event_parse_text_fast, copy, len, room, &fast);
	handled = fast.rc != EVENT_FAST_DEFERRED;
	if (handled)
		assert_same_verdict(&generic, &fast, "fast", text, len, room);
	else
		assert_empty(&fast.ev);
	run_path(room_event_parse_text, copy, len, room, &combined);
	assert_same_verdict(&generic, &combined, "combined", text, len, room);
	room_event_free(&generic.ev);
	if (handled)
		room_event_free(&fast.ev);
	room_event_free(&combined.ev);
	free(copy);
	return handled;
}

/* Text formatted into a new string. */
static char * __attribute__((format(printf, 1, 2)))
format(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* A JSON array of n copies of the string item, as text. */
static char *
id_array(const char *item, size_t n)
{
	size_t item_len = strlen(item), len = 0;
	char *s = malloc(2 + n * (item_len + 3));

	assert_non_null(s);
	s[len++] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			s[len++] = ',';
		s[len++] = '"';
		memcpy(s + len, item, item_len);
		len += item_len;
		s[len++] = '"';
	}
	s[len++] = ']';
	s[len] = '\0';
	return s;
}

/* Cases too long to write out: limits on text, names, ids and arrays. */
static char **
long_cases(size_t *count)
{
	char *a4095 = repeat('a', EVENT_TEXT_MAX - 1), *a4094 = repeat('a', EVENT_TEXT_MAX - 2);
	char *name = repeat('n', EVENT_NAME_MAX), *id = repeat('i', 128);
	char *mentions = id_array("bob", EVENT_MENTIONS_MAX);
	char *too_many = id_array("bob", EVENT_MENTIONS_MAX + 1);
	char *present = id_array("c", 3000);
	char *present_max = id_array("c", EVENT_PRESENT_MAX);
	char *present_over = id_array("c", EVENT_PRESENT_MAX + 1);
	char *huge = repeat('a', EVENT_JSON_MAX);
	char **cases = malloc(20 * sizeof *cases);
	size_t n = 0;

	assert_non_null(cases);
	/* Text at the limit, over it, and with characters straddling it. */
	cases[n++] = format(MESSAGE(",\"text\":\"%sa\""), a4095);
	cases[n++] = format(MESSAGE(",\"text\":\"%saa\""), a4095);
	cases[n++] = format(MESSAGE(",\"text\":\"%s\xc3\xa9\""), a4095);
	cases[n++] = format(MESSAGE(",\"text\":\"%s\xe2\x82\xac\""), a4094);
	cases[n++] = format(MESSAGE(",\"text\":\"%s\xf0\x9f\x98\x80\""), a4094);
	cases[n++] = format(MESSAGE(",\"text\":\"%s%s%s\""), a4095, a4095, a4095);
	cases[n++] = format(MESSAGE(",\"text\":\"%s\\u00e9\""), a4095);
	/* Names at and over their limit; ids at and over theirs. */
	cases[n++] = format(MESSAGE(",\"text\":\"x\",\"room_name\":\"%s\""), name);
	cases[n++] = format(MESSAGE(",\"text\":\"x\",\"sender_name\":\"%sn\""), name);
	cases[n++] = format("{\"type\":\"member.join\",\"room\":\"%s\",\"client_id\":\"%s\"}",
	    id, id);
	cases[n++] = format("{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"%si\"}",
	    id);
	cases[n++] = format("{\"type\":\"member.join\",\"room\":\"%si\",\"client_id\":\"a\"}",
	    id);
	/* Arrays at and over their limit. */
	cases[n++] = format(MESSAGE(",\"text\":\"x\",\"mentions\":%s"), mentions);
	cases[n++] = format(MESSAGE(",\"text\":\"x\",\"mentions\":%s"), too_many);
	cases[n++] = format("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":%s}",
	    present);
	cases[n++] = format("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":%s}",
	    present_max);
	cases[n++] = format("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":%s}",
	    present_over);
	/* One byte of JSON over EVENT_JSON_MAX: malformed, whatever it holds. */
	cases[n++] = format(MESSAGE(",\"text\":\"%s\""), huge + strlen(MESSAGE(",\"text\":\"\""))
	    - 1);
	free(a4095);
	free(a4094);
	free(name);
	free(id);
	free(mentions);
	free(too_many);
	free(present);
	free(present_max);
	free(present_over);
	free(huge);
	*count = n;
	return cases;
}

static void
test_event_fast_path_agrees_with_generic_on_every_case(void **state)
{
	const size_t rooms = sizeof source_rooms / sizeof source_rooms[0];
	size_t long_count, handled = 0, total = 0;
	char **longs = long_cases(&long_count);

	(void)state;
	for (size_t r = 0; r < rooms; r++) {
		for (size_t i = 0; i < sizeof equivalence_cases / sizeof equivalence_cases[0];
		    i++, total++)
			handled += (size_t)assert_paths_agree(equivalence_cases[i].bytes,
			    equivalence_cases[i].len, source_rooms[r]);
		for (size_t i = 0; i < sizeof common_events / sizeof common_events[0];
		    i++, total++)
			handled += (size_t)assert_paths_agree(common_events[i].bytes,
			    common_events[i].len, source_rooms[r]);
		for (size_t i = 0; i < long_count; i++, total++)
			handled += (size_t)assert_paths_agree(longs[i], strlen(longs[i]),
			    source_rooms[r]);
	}
	/* The comparison means something only if both paths ran on many cases. */
	assert_true(handled > total / 3);
	assert_true(handled < total);
	for (size_t i = 0; i < long_count; i++)
		free(longs[i]);
	free(longs);
}

/* xorshift64*: a fixed sequence, the same on every platform. */
static uint64_t
fuzz_next(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 2685821657736338717ULL;
}

/* A random number below n. */
static size_t
fuzz_below(uint64_t *state, size_t n)
{
	return (size_t)(fuzz_next(state) % n);
}

#define FUZZ_ITERATIONS 200000
#define FUZZ_TEXT_MAX 1024

/* Apply one random mutation to the len bytes at buf; returns the new length. */
static size_t
fuzz_mutate(uint64_t *state, char *buf, size_t len)
{
	/* Bytes that matter to a JSON scanner, UTF-8 lead bytes and control bytes. */
	static const char interesting[] = "\"\\{}[],: \t\n0123456789-+.eEnul\0\x01\x1f\x7f"
	    "\x80\xbf\xc0\xc3\xc2\xe2\xed\xf0\xf4\xf5\xff";
	/* Fragments that make a valid object into another valid one or nearly one. */
	static const char *const fragments[] = {
		"\\u00e9", "\\n", "\\\"", "\\ud83d\\ude00", "\\u0000", "null", "[]",
		"[\"x\"]", "{}", "true", "1.5", "1e3", "-0", "01", "99999999999999999999",
		",\"x\":1", ",\"type\":\"read\"", ",\"text\":\"y\"", ",\"push\":{\"skip\":true}",
		"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\xa0\x80", "\xc0\xaf",
		"\"2026-11-28T09:15:02Z\"",
	};
	size_t pos = fuzz_below(state, len + 1), n, from;
	const char *insert;

	switch (fuzz_below(state, 7)) {
	case 0:			/* flip a bit */
		if (len > 0)
			buf[pos % len] ^= (char)(1 << fuzz_below(state, 8));
		return len;
	case 1:			/* overwrite a byte with an interesting one */
		if (len > 0)
			buf[pos % len] = interesting[fuzz_below(state, sizeof interesting - 1)];
		return len;
	case 2:			/* overwrite a byte with any byte */
		if (len > 0)
			buf[pos % len] = (char)fuzz_below(state, 256);
		return len;
	case 3:			/* delete a run of bytes */
		n = 1 + fuzz_below(state, 4);
		if (pos + n > len)
			return len;
		memmove(buf + pos, buf + pos + n, len - pos - n);
		return len - n;
	case 4:			/* insert an interesting byte */
		insert = &interesting[fuzz_below(state, sizeof interesting - 1)];
		n = 1;
		break;
	case 5:			/* insert a fragment */
		insert = fragments[fuzz_below(state, sizeof fragments / sizeof fragments[0])];
		n = strlen(insert);
		break;
	default:		/* insert a copy of part of the text: duplicate keys, say */
		if (len == 0)
			return len;
		from = fuzz_below(state, len);
		n = 1 + fuzz_below(state, len - from);
		if (len + n > FUZZ_TEXT_MAX)
			return len;
		memmove(buf + pos + n, buf + pos, len - pos);
		memmove(buf + pos, buf + (from < pos ? from : from + n), n);
		return len + n;
	}
	if (len + n > FUZZ_TEXT_MAX)
		return len;
	memmove(buf + pos + n, buf + pos, len - pos);
	memcpy(buf + pos, insert, n);
	return len + n;
}

static void
test_event_fast_path_agrees_with_generic_under_mutation(void **state)
{
	static const char *const seeds[] = {
		"{\"type\":\"message\",\"room\":\"dm-17\",\"id\":\"m-123\",\"client_id\":\"alice\","
		    "\"text\":\"hello there (due 1795857302123)\",\"ts\":1795857302123}",
		"{\"type\":\"message\",\"room\":\"general\",\"id\":\"m-1\","
		    "\"client_id\":\"bob\",\"text\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\","
		    "\"room_name\":\"General\",\"sender_name\":\"Bob\","
		    "\"mentions\":[\"alice\",\"carol\"],\"ts\":0}",
		"{ \"type\" : \"message.update\" , \"room\" : \"r\" , \"id\" : \"m\" ,\n"
		    "  \"text\" : \"edited\" , \"ts\" : \"2026-11-28T09:15:02.123Z\" }\n",
		MESSAGE(",\"text\":\"x\",\"push\":{\"title\":\"T\",\"skip\":false}"),
		"{\"type\":\"message.delete\",\"room\":\"r\",\"id\":\"m9\"}",
		"{\"type\":\"presence.enter\",\"room\":\"dm-17\",\"client_id\":\"alice\","
		    "\"connection_id\":\"c-9\"}",
		"{\"type\":\"presence.leave\",\"client_id\":\"alice\",\"connection_id\":null}",
		"{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[\"a\",\"b\",\"c\"]}",
		"{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\",\"extra\":[]}",
		"{\"type\":\"read\",\"room\":\"dm-17\",\"client_id\":\"bob\",\"up_to\":\"m-123\"}",
	};
	const size_t seed_count = sizeof seeds / sizeof seeds[0];
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	char buf[FUZZ_TEXT_MAX];
	size_t handled = 0, len;

	(void)state;
	for (size_t i = 0; i < seed_count; i++) {
		struct room_event ev;
		char err[256];

		if (room_event_parse_text_generic(seeds[i], strlen(seeds[i]), "chan", &ev, err,
		    sizeof err) != EVENT_OK)
			fail_msg("seed %zu is not a valid event: %s", i, err);
		room_event_free(&ev);
	}
	for (size_t i = 0; i < FUZZ_ITERATIONS; i++) {
		const char *seed = seeds[fuzz_below(&rng, seed_count)];
		size_t mutations = 1 + fuzz_below(&rng, 3);

		len = strlen(seed);
		memcpy(buf, seed, len);
		for (size_t m = 0; m < mutations; m++)
			len = fuzz_mutate(&rng, buf, len);
		handled += (size_t)assert_paths_agree(buf, len, i % 2 == 0 ? NULL : "chan");
	}
	/* Both paths must have had a real share of the mutants. */
	assert_true(handled > FUZZ_ITERATIONS / 10);
	assert_true(handled < FUZZ_ITERATIONS - FUZZ_ITERATIONS / 10);
}

static void
test_event_fast_path_handles_common_events(void **state)
{
	struct room_event ev;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof common_events / sizeof common_events[0]; i++) {
		int rc = room_event_parse_text_fast(common_events[i].bytes, common_events[i].len,
		    NULL, &ev, err, sizeof err);

		if (rc != EVENT_OK)
			fail_msg("fast path gave %d for %s", rc, common_events[i].bytes);
		assert_string_equal(err, "");
		room_event_free(&ev);
	}
	/* The typical message, field by field. */
	assert_int_equal(room_event_parse_text_fast(common_events[0].bytes, common_events[0].len,
	    NULL, &ev, err, sizeof err), EVENT_OK);
	assert_int_equal(ev.type, EVENT_MESSAGE);
	assert_string_equal(ev.room, "dm-17");
	assert_string_equal(ev.id, "m-123");
	assert_string_equal(ev.client_id, "alice");
	assert_string_equal(ev.text, "hello there (due 1795857302123)");
	assert_int_equal(ev.ts, 1795857302123LL);
	room_event_free(&ev);
	/* Well-formed but invalid or unknown events are decided without jansson too. */
	assert_int_equal(room_event_parse_text_fast("{\"type\":\"typing.start\"}", 23, NULL, &ev,
	    err, sizeof err), EVENT_EUNKNOWN);
	assert_string_equal(err, "unknown event type 'typing.start'");
	assert_int_equal(room_event_parse_text_fast("{\"type\":\"read\"}", 15, "r", &ev, err,
	    sizeof err), EVENT_EMALFORMED);
	assert_string_equal(err, "client_id: is required");
	assert_empty(&ev);
}

static void
test_event_fast_path_defers_outside_its_subset(void **state)
{
	static const struct text deferred[] = {
		TEXT(MESSAGE(",\"text\":\"x\",\"push\":{\"title\":\"T\"}")),
		TEXT(MESSAGE(",\"text\":\"an \\\"escape\\\"\"")),
		TEXT("{\"\\u0074ype\":\"read\"}"),
		TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1.5")),
		TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1e3")),
		TEXT(MESSAGE(",\"text\":\"x\",\"ts\":01")),
		TEXT(MESSAGE(",\"text\":\"x\",\"ts\":1234567890123456789")),
		TEXT(MESSAGE(",\"text\":\"x\",\"flag\":true")),
		TEXT(MESSAGE(",\"text\":\"x\",\"list\":[1]")),
		TEXT(MESSAGE(",\"text\":\"x\",\"text\":\"y\"")),
		TEXT(MESSAGE(",\"text\":\"tab\there\"")),
		TEXT(MESSAGE(",\"text\":\"nul \0 inside\"")),
		TEXT(MESSAGE(",\"text\":\"overlong \xc0\xaf\"")),
		TEXT(MESSAGE(",\"text\":\"x\"") "\0"),
		TEXT(MESSAGE(",\"text\":\"x\"") "x"),
		TEXT(MESSAGE(",\"text\":\"x\",\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,"
		    "\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,\"k10\":10,\"k11\":11,\"k12\":12")),
		TEXT("[{\"type\":\"read\"}]"),
		TEXT(""),
	};
	struct room_event ev;
	char err[16] = "untouched";

	(void)state;
	for (size_t i = 0; i < sizeof deferred / sizeof deferred[0]; i++) {
		if (room_event_parse_text_fast(deferred[i].bytes, deferred[i].len, "r", &ev, err,
		    sizeof err) != EVENT_FAST_DEFERRED)
			fail_msg("fast path did not defer %s",
			    show_text(deferred[i].bytes, deferred[i].len));
		assert_empty(&ev);
		assert_string_equal(err, "untouched");
	}
}

/* Events of a typical batch, and the body around them. */
#define BATCH_MESSAGE "{\"type\":\"message\",\"room\":\"dm-17\",\"id\":\"m-123\"," \
	"\"client_id\":\"s-17\",\"text\":\"hello there\"}"
#define BATCH_ENTER "{\"type\":\"presence.enter\",\"room\":\"dm-17\",\"client_id\":\"bob\"," \
	"\"connection_id\":\"c-1\"}"
#define BATCH_READ "{\"type\":\"read\",\"room\":\"dm-17\",\"client_id\":\"bob\"," \
	"\"up_to\":\"m-123\"}"
#define BATCH(events) "{\"events\":[" events "]}"

/* Fail unless the fast path's batch is the reference's, element by element. */
static void
assert_same_batch(const struct room_event_batch *want, const struct room_event_batch *got,
    const char *text, size_t len)
{
	const char *field;

	if (got->count != want->count || got->skipped_count != want->skipped_count)
		fail_msg("fast path: %zu events, %zu skipped; reference: %zu, %zu; body %s",
		    got->count, got->skipped_count, want->count, want->skipped_count,
		    show_text(text, len));
	assert_non_null(got->events);
	for (size_t i = 0; i < want->count; i++) {
		if ((field = event_difference(&want->events[i], &got->events[i])) != NULL)
			fail_msg("fast path: event %zu differs in %s; body %s", i, field,
			    show_text(text, len));
	}
	for (size_t i = 0; i < want->skipped_count; i++) {
		if (got->skipped[i].index != want->skipped[i].index ||
		    strcmp(got->skipped[i].reason, want->skipped[i].reason) != 0)
			fail_msg("fast path skipped %zu '%s', reference %zu '%s'; body %s",
			    got->skipped[i].index, got->skipped[i].reason, want->skipped[i].index,
			    want->skipped[i].reason, show_text(text, len));
	}
}

/*
 * Read a batch body on the fast path and as today's path does, failing unless the
 * fast path defers (with nothing allocated) or takes a body today's path accepts
 * and decides every element alike. The body is copied to a buffer of exactly len
 * bytes so that overreads are caught. Sets *accepted to whether today's path
 * accepts the body; returns 1 if the fast path took it, 0 if it deferred.
 */
static int
assert_batch_paths_agree(const char *text, size_t len, size_t max_events, int *accepted)
{
	struct room_event_batch want, fast, zero;
	char *copy = malloc(len > 0 ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, text, len);
	memset(&zero, 0, sizeof zero);
	*accepted = event_reference_batch(copy, len, max_events, &want) == 0;
	memset(&fast, 0xa5, sizeof fast);
	rc = room_event_parse_batch_fast(copy, len, max_events, &fast);
	if (rc == EVENT_FAST_DEFERRED)
		assert_memory_equal(&fast, &zero, sizeof zero);
	else {
		assert_int_equal(rc, EVENT_OK);
		if (!*accepted)
			fail_msg("fast path took a body today's path refuses: %s",
			    show_text(text, len));
		assert_same_batch(&want, &fast, text, len);
		room_event_batch_free(&fast);
		assert_memory_equal(&fast, &zero, sizeof zero);
	}
	room_event_batch_free(&want);
	free(copy);
	return rc == EVENT_OK;
}

/* A batch body, the most events it may hold, and what each path must make of it. */
struct batch_case {
	struct text body;
	size_t max_events;
	int handled;		/* the fast path takes it */
	int accepted;		/* today's path accepts it (else it answers an error) */
};

static const struct batch_case batch_cases[] = {
	/* Flat events: taken, with the malformed and unknown ones skipped. */
	{ TEXT(BATCH(BATCH_MESSAGE)), 5, 1, 1 },
	{ TEXT(BATCH(BATCH_MESSAGE "," BATCH_ENTER "," BATCH_READ)), 5, 1, 1 },
	{ TEXT(" \t\r\n{ \"events\" :\n [ " BATCH_MESSAGE " ,\n\t" BATCH_READ "\r] } \n"), 5, 1,
	    1 },
	{ TEXT(BATCH("{}")), 5, 1, 1 },
	{ TEXT(BATCH(" { } ")), 5, 1, 1 },
	{ TEXT(BATCH(BATCH_MESSAGE ",{\"type\":\"message\",\"room\":\"r\",\"id\":\"k0\","
	    "\"text\":\"no sender\"}," BATCH_READ)), 5, 1, 1 },
	{ TEXT(BATCH("{\"type\":\"typing.start\",\"room\":\"r\"}," BATCH_MESSAGE)), 5, 1, 1 },
	{ TEXT(BATCH("{\"type\":5}," "{\"type\":\"read\",\"room\":\"r\",\"client_id\":\"a\"},"
	    "{\"room\":\"r\"}")), 5, 1, 1 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"x\",\"mentions\":\"bob\"") ","
	    MESSAGE(",\"text\":\"x\",\"ts\":\"yesterday\"") "," MESSAGE(",\"text\":7") ","
	    MESSAGE(",\"text\":\"x\",\"mentions\":[\"a\",\"\"]"))), 5, 1, 1 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"caf\xc3\xa9 \xe2\x82\xac\",\"ts\":1795857302123,"
	    "\"room_name\":\"G\",\"sender_name\":\"S\",\"mentions\":[\"a\",\"b\"]") ","
	    MESSAGE(",\"text\":\"\",\"ts\":null,\"room_name\":null,\"push\":null"))), 5, 1, 1 },
	{ TEXT(BATCH("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[]},"
	    "{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[\"a\",\"b\"]},"
	    "{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\",\"extra\":[]},"
	    "{\"type\":\"message.delete\",\"room\":\"r\",\"id\":\"m\"}")), 5, 1, 1 },
	{ TEXT(BATCH(BATCH_MESSAGE "," BATCH_MESSAGE "," BATCH_MESSAGE "," BATCH_MESSAGE ","
	    BATCH_MESSAGE)), 5, 1, 1 },
	/* Valid, but an element outside the fast path's subset: the whole body defers. */
	{ TEXT(BATCH("1")), 5, 0, 1 },
	{ TEXT(BATCH(BATCH_MESSAGE ",\"not an object\"")), 5, 0, 1 },
	{ TEXT(BATCH("null")), 5, 0, 1 },
	{ TEXT(BATCH("[]")), 5, 0, 1 },
	{ TEXT(BATCH("[" BATCH_MESSAGE "]")), 5, 0, 1 },
	{ TEXT(BATCH(BATCH_MESSAGE "," MESSAGE(",\"text\":\"say \\\"hi\\\"\""))), 5, 0, 1 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"x\",\"push\":{\"title\":\"T\"}") ","
	    BATCH_READ)), 5, 0, 1 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"x\",\"ts\":1.5"))), 5, 0, 1 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"x\",\"flag\":true"))), 5, 0, 1 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"x\",\"x\":{\"y\":[1,{\"z\":null}]}"))), 5, 0, 1 },
	{ TEXT("{\"\\u0065vents\":[" BATCH_MESSAGE "]}"), 5, 0, 1 },
	/* Not a body today's path accepts: the fast path leaves the error to jansson. */
	{ TEXT(""), 5, 0, 0 },
	{ TEXT("   "), 5, 0, 0 },
	{ TEXT("{}"), 5, 0, 0 },
	{ TEXT("[]"), 5, 0, 0 },
	{ TEXT("null"), 5, 0, 0 },
	{ TEXT("[" BATCH_MESSAGE "]"), 5, 0, 0 },
	{ TEXT(BATCH("")), 5, 0, 0 },
	{ TEXT(BATCH(" ")), 5, 0, 0 },
	{ TEXT("{\"events\":{}}"), 5, 0, 0 },
	{ TEXT("{\"events\":null}"), 5, 0, 0 },
	{ TEXT("{\"events\":\"x\"}"), 5, 0, 0 },
	{ TEXT("{\"events\":[" BATCH_MESSAGE "],\"batch_id\":\"1\"}"), 5, 0, 0 },
	{ TEXT("{\"batch_id\":\"1\",\"events\":[" BATCH_MESSAGE "]}"), 5, 0, 0 },
	{ TEXT("{\"events\":[" BATCH_MESSAGE "],\"events\":[" BATCH_MESSAGE "]}"), 5, 0, 0 },
	{ TEXT("{\"Events\":[" BATCH_MESSAGE "]}"), 5, 0, 0 },
	/* Duplicate keys in an element: jansson refuses the whole body. */
	{ TEXT(BATCH("{\"type\":\"read\",\"type\":\"read\"}")), 5, 0, 0 },
	{ TEXT(BATCH(BATCH_MESSAGE "," MESSAGE(",\"text\":\"x\",\"text\":\"y\""))), 5, 0, 0 },
	{ TEXT(BATCH(BATCH_MESSAGE "," MESSAGE(",\"text\":\"x\",\"x\":{\"a\":1,\"a\":2}"))), 5,
	    0, 0 },
	/* Broken structure, or more after the body. */
	{ TEXT(BATCH(BATCH_MESSAGE) "x"), 5, 0, 0 },
	{ TEXT(BATCH(BATCH_MESSAGE) "}"), 5, 0, 0 },
	{ TEXT(BATCH(BATCH_MESSAGE) "\0"), 5, 0, 0 },
	{ TEXT(BATCH(BATCH_MESSAGE) "\f"), 5, 0, 0 },
	{ TEXT(BATCH(BATCH_MESSAGE) " {}"), 5, 0, 0 },
	{ TEXT("\xef\xbb\xbf" BATCH(BATCH_MESSAGE)), 5, 0, 0 },
	{ TEXT("{\"events\":[" BATCH_MESSAGE ",]}"), 5, 0, 0 },
	{ TEXT("{\"events\":[," BATCH_MESSAGE "]}"), 5, 0, 0 },
	{ TEXT("{\"events\":[" BATCH_MESSAGE " " BATCH_MESSAGE "]}"), 5, 0, 0 },
	{ TEXT("{\"events\":[" BATCH_MESSAGE "],}"), 5, 0, 0 },
	{ TEXT("{\"events\":[" BATCH_MESSAGE "]"), 5, 0, 0 },
	{ TEXT("{\"events\":[" BATCH_MESSAGE "}"), 5, 0, 0 },
	{ TEXT("{\"events\":[" BATCH_MESSAGE), 5, 0, 0 },
	{ TEXT("{\"events\" [" BATCH_MESSAGE "]}"), 5, 0, 0 },
	{ TEXT("{events:[" BATCH_MESSAGE "]}"), 5, 0, 0 },
	/* Bad text inside an element: escapes, UTF-8, control characters, numbers. */
	{ TEXT(BATCH(MESSAGE(",\"text\":\"bad \\x escape\""))), 5, 0, 0 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"lone \\ud800 surrogate\""))), 5, 0, 0 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"overlong \xc0\xaf\""))), 5, 0, 0 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"surrogate \xed\xa0\x80\""))), 5, 0, 0 },
	{ TEXT(BATCH(MESSAGE(",\"k\xff\":1,\"text\":\"x\""))), 5, 0, 0 },
	{ TEXT(BATCH(BATCH_MESSAGE) "\xc3\xa9"), 5, 0, 0 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"tab\there\""))), 5, 0, 0 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"nul \0 inside\""))), 5, 0, 0 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"x\",\"ts\":01"))), 5, 0, 0 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"x\",\"ts\":-"))), 5, 0, 0 },
	{ TEXT(BATCH(MESSAGE(",\"text\":\"x\",\"ts\":99999999999999999999"))), 5, 0, 0 },
	/* More events than a batch may hold: jansson reads the body before the 413. */
	{ TEXT(BATCH(BATCH_MESSAGE "," BATCH_MESSAGE "," BATCH_MESSAGE "," BATCH_MESSAGE ","
	    BATCH_MESSAGE "," BATCH_MESSAGE)), 5, 0, 0 },
	{ TEXT(BATCH(BATCH_MESSAGE "," BATCH_MESSAGE)), 1, 0, 0 },
	{ TEXT(BATCH(BATCH_MESSAGE)), 0, 0, 0 },
};

/* A batch of n typical messages. */
static char *
typical_batch(size_t n)
{
	static const char head[] = "{\"events\":[", tail[] = "]}";
	size_t event_len = strlen(BATCH_MESSAGE), len = 0;
	char *s = malloc(sizeof head + n * (event_len + 1) + sizeof tail);

	assert_non_null(s);
	memcpy(s, head, sizeof head - 1);
	len = sizeof head - 1;
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			s[len++] = ',';
		memcpy(s + len, BATCH_MESSAGE, event_len);
		len += event_len;
	}
	memcpy(s + len, tail, sizeof tail);
	return s;
}

/* A batch of one read event with an extra field nested depth arrays deep. */
static char *
nested_batch(size_t depth)
{
	static const char head[] = "{\"events\":[{\"type\":\"read\",\"room\":\"r\","
	    "\"client_id\":\"a\",\"up_to\":\"m\",\"x\":", tail[] = "}]}";
	char *s = malloc(sizeof head + 2 * depth + sizeof tail);
	size_t len = sizeof head - 1;

	assert_non_null(s);
	memcpy(s, head, len);
	memset(s + len, '[', depth);
	memset(s + len + depth, ']', depth);
	memcpy(s + len + 2 * depth, tail, sizeof tail);
	return s;
}

static void
test_event_batch_fast_path_agrees_with_jansson_on_every_case(void **state)
{
	struct {
		char *body;
		size_t max_events;
		int handled, accepted;
	} generated[] = {
		{ typical_batch(1000), 1000, 1, 1 },
		{ typical_batch(1000), 999, 0, 0 },
		/* jansson reads at most 2048 levels; the body and the element take 3. */
		{ nested_batch(2045), 5, 0, 1 },
		{ nested_batch(2046), 5, 0, 0 },
	};
	int accepted;

	(void)state;
	for (size_t i = 0; i < sizeof batch_cases / sizeof batch_cases[0]; i++) {
		const struct batch_case *c = &batch_cases[i];

		if (assert_batch_paths_agree(c->body.bytes, c->body.len, c->max_events,
		    &accepted) != c->handled || accepted != c->accepted)
			fail_msg("case %zu: fast path %s, today's path %s: %s", i,
			    c->handled ? "deferred" : "took it", accepted ? "accepts" : "refuses",
			    show_text(c->body.bytes, c->body.len));
	}
	for (size_t i = 0; i < sizeof generated / sizeof generated[0]; i++) {
		if (assert_batch_paths_agree(generated[i].body, strlen(generated[i].body),
		    generated[i].max_events, &accepted) != generated[i].handled ||
		    accepted != generated[i].accepted)
			fail_msg("generated case %zu: fast path %s, today's path %s", i,
			    generated[i].handled ? "deferred" : "took it",
			    accepted ? "accepts" : "refuses");
		free(generated[i].body);
	}
}

static void
test_event_batch_fast_path_reports_each_element(void **state)
{
	static const char body[] = BATCH(BATCH_MESSAGE ",{\"type\":\"message\",\"room\":\"r\","
	    "\"id\":\"k0\",\"text\":\"no sender\"},{\"type\":\"typing.start\"}," BATCH_READ);
	struct room_event_batch batch;

	(void)state;
	assert_int_equal(room_event_parse_batch_fast(body, sizeof body - 1, 4, &batch),
	    EVENT_OK);
	assert_int_equal(batch.count, 2);
	assert_int_equal(batch.events[0].type, EVENT_MESSAGE);
	assert_string_equal(batch.events[0].id, "m-123");
	assert_string_equal(batch.events[0].client_id, "s-17");
	assert_string_equal(batch.events[0].text, "hello there");
	assert_int_equal(batch.events[1].type, EVENT_READ);
	assert_string_equal(batch.events[1].up_to, "m-123");
	assert_int_equal(batch.skipped_count, 2);
	assert_int_equal(batch.skipped[0].index, 1);
	assert_string_equal(batch.skipped[0].reason, "client_id: is required");
	assert_int_equal(batch.skipped[1].index, 2);
	assert_string_equal(batch.skipped[1].reason, "unknown event type 'typing.start'");
	room_event_batch_free(&batch);
	/* Every element skipped: still an events array, with nothing in it. */
	assert_int_equal(room_event_parse_batch_fast(BATCH("{}"), sizeof BATCH("{}") - 1, 1,
	    &batch), EVENT_OK);
	assert_non_null(batch.events);
	assert_int_equal(batch.count, 0);
	assert_int_equal(batch.skipped_count, 1);
	assert_string_equal(batch.skipped[0].reason, "type: is required");
	room_event_batch_free(&batch);
}

#define BATCH_FUZZ_ITERATIONS 100000
#define BATCH_FUZZ_MAX_EVENTS 4

static void
test_event_batch_fast_path_agrees_with_jansson_under_mutation(void **state)
{
	static const char *const seeds[] = {
		BATCH(BATCH_MESSAGE "," BATCH_ENTER "," BATCH_READ),
		"{ \"events\" : [\n  {\"type\": \"message\", \"room\": \"general\", "
		    "\"id\": \"m-1\", \"client_id\": \"bob\", "
		    "\"text\": \"caf\xc3\xa9 \xe2\x82\xac\", "
		    "\"mentions\": [\"alice\", \"carol\"], \"ts\": 1795857302123},\n"
		    "  {\"type\": \"message.update\", \"room\": \"general\", \"id\": \"m-1\", "
		    "\"text\": \"edited\", \"ts\": \"2026-11-28T09:15:02.123Z\"}\n] }\n",
		BATCH("{\"type\":\"message\",\"room\":\"r\",\"id\":\"k0\",\"text\":\"no sender\"},"
		    "{\"type\":\"typing.start\",\"room\":\"r\"}," BATCH_MESSAGE),
		BATCH("{\"type\":\"presence.sync\",\"room\":\"r\",\"present\":[\"a\",\"b\"]},"
		    "{\"type\":\"member.join\",\"room\":\"r\",\"client_id\":\"a\",\"extra\":null},"
		    "{\"type\":\"message.delete\",\"room\":\"r\",\"id\":\"m9\"},"
		    "{\"type\":\"presence.leave\",\"room\":\"r\",\"client_id\":\"a\"}"),
		BATCH(MESSAGE(",\"text\":\"x\",\"push\":{\"title\":\"T\",\"skip\":false}")),
	};
	const size_t seed_count = sizeof seeds / sizeof seeds[0];
	uint64_t rng = 0x2545f4914f6cdd1dULL;
	char buf[FUZZ_TEXT_MAX];
	size_t handled = 0, len;
	int accepted;

	(void)state;
	/* Every seed is a batch today's path accepts; the fast path takes all but the last. */
	for (size_t i = 0; i < seed_count; i++) {
		assert_int_equal(assert_batch_paths_agree(seeds[i], strlen(seeds[i]),
		    BATCH_FUZZ_MAX_EVENTS, &accepted), i < seed_count - 1);
		assert_true(accepted);
	}
	for (size_t i = 0; i < BATCH_FUZZ_ITERATIONS; i++) {
		const char *seed = seeds[fuzz_below(&rng, seed_count)];
		size_t mutations = 1 + fuzz_below(&rng, 2);
		/* Some batches may hold fewer events, so that more are too many. */
		size_t max_events = i % 8 == 7 ? 2 : BATCH_FUZZ_MAX_EVENTS;

		len = strlen(seed);
		assert_true(len <= FUZZ_TEXT_MAX);
		memcpy(buf, seed, len);
		for (size_t m = 0; m < mutations; m++)
			len = fuzz_mutate(&rng, buf, len);
		handled += (size_t)assert_batch_paths_agree(buf, len, max_events, &accepted);
	}
	/* Both outcomes must have had a real share of the mutants. */
	assert_true(handled > BATCH_FUZZ_ITERATIONS / 10);
	assert_true(handled < BATCH_FUZZ_ITERATIONS - BATCH_FUZZ_ITERATIONS / 10);
}

/* Parse text, expecting EVENT_EMALFORMED with a reason that is valid UTF-8. */
static const char *
malformed_reason(const char *text, char *err, size_t errlen)
{
	struct room_event ev;

	assert_int_equal(room_event_parse_text(text, strlen(text), NULL, &ev, err, errlen),
	    EVENT_EMALFORMED);
	assert_true(utf8_valid(err, strlen(err)));
	return err;
}

static void
test_event_reasons_stay_valid_utf8(void **state)
{
	char err[EVENT_REASON_MAX], key[2 * 200 + 1], *text;
	const char *prefix = "push.data.";

	(void)state;
	/* jansson quotes the text up to the bad escape, cutting the emoji after it. */
	malformed_reason("{\"t\\u\xf0\x9f\x98\x80\"}", err, sizeof err);
	assert_string_equal(err, "not valid JSON: invalid escape near '\"t\\u\xef\xbf\xbd'");
	/* A long key in the reason: cut between its characters, not inside one. */
	for (size_t i = 0; i < 200; i++)
		memcpy(key + 2 * i, "\xc3\xa9", 2);
	key[400] = '\0';
	text = format("{\"type\":\"message\",\"room\":\"r\",\"id\":\"m\",\"client_id\":\"a\","
	    "\"text\":\"x\",\"push\":{\"data\":{\"%s\":1}}}", key);
	malformed_reason(text, err, sizeof err);
	assert_int_equal(strlen(err), 254);
	assert_memory_equal(err, prefix, strlen(prefix));
	assert_memory_equal(err + strlen(prefix), key, 254 - strlen(prefix));
	free(text);
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
		cmocka_unit_test(test_event_presence_sync_takes_at_most_present_max_clients),
		cmocka_unit_test(test_event_push_overrides_are_held_to_their_limits),
		cmocka_unit_test(test_event_member_join_leave_and_read),
		cmocka_unit_test(test_event_room_from_object_else_from_source),
		cmocka_unit_test(test_event_bad_room_from_source_is_malformed),
		cmocka_unit_test(test_event_unknown_type_is_reported_and_nothing_allocated),
		cmocka_unit_test(test_event_malformed_messages_name_the_field),
		cmocka_unit_test(test_event_malformed_message_fields_name_the_field),
		cmocka_unit_test(test_event_text_that_is_not_an_event_object),
		cmocka_unit_test(test_event_text_over_event_json_max_is_malformed_unread),
		cmocka_unit_test(test_event_reasons_stay_valid_utf8),
		cmocka_unit_test(test_event_type_names_are_the_wire_names),
		cmocka_unit_test(test_event_fast_path_agrees_with_generic_on_every_case),
		cmocka_unit_test(test_event_fast_path_agrees_with_generic_under_mutation),
		cmocka_unit_test(test_event_fast_path_handles_common_events),
		cmocka_unit_test(test_event_fast_path_defers_outside_its_subset),
		cmocka_unit_test(test_event_batch_fast_path_agrees_with_jansson_on_every_case),
		cmocka_unit_test(test_event_batch_fast_path_reports_each_element),
		cmocka_unit_test(test_event_batch_fast_path_agrees_with_jansson_under_mutation),
	};

	return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
