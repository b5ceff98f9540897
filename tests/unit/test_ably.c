/*
 * Tests for the Ably webhook: key files and signatures (ably_keys.c), the three
 * delivery shapes (source_ably.c) and the mapping of their entries (ably_message.c).
 */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "ably_keys.h"
#include "source_ably.h"
#include "utf8.h"

#ifndef ABLY_FIXTURE_DIR
#define ABLY_FIXTURE_DIR "tests/fixtures/ably"
#endif

#define KEY1_NAME "aBCdEf.kEy1"
#define KEY1_SECRET "s3cr3t#with-hash"
#define KEY2_NAME "aBCdEf.kEy2"
#define KEY2_SECRET "another/secret+value="

struct fixture {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof f->dir, "%s/test_ably.XXXXXX",
	    tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/ably-keys", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fchmod(fileno(fp), 0600), 0);
	fputs(text, fp);
	fclose(fp);
}

/* A fixture's bytes (NUL-terminated, the NUL not counted). */
static char *
read_fixture(const char *name, size_t *len)
{
	char path[512];
	char *text;
	long size;
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", ABLY_FIXTURE_DIR, name);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	size = ftell(fp);
	assert_true(size > 0);
	rewind(fp);
	text = malloc((size_t)size + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)size, fp), (size_t)size);
	text[size] = '\0';
	fclose(fp);
	*len = (size_t)size;
	return text;
}

/* Translate a JSON body (batched or enveloped), expecting ABLY_OK. */
static void
translate_body(const char *body, size_t len, struct ably_result *out)
{
	struct ably_request request = {
		.body = body, .len = len, .content_type = "application/json",
	};
	char err[256] = "";
	int rc;

	rc = source_ably_translate(&request, out, err, sizeof err);
	if (rc != ABLY_OK)
		fail_msg("ably_translate: %d %s", rc, err);
}

static void
translate_fixture(const char *name, struct ably_result *out)
{
	size_t len;
	char *body = read_fixture(name, &len);

	translate_body(body, len, out);
	free(body);
}

static void
assert_string_or_null(const char *actual, const char *expected)
{
	if (expected == NULL)
		assert_null(actual);
	else {
		assert_non_null(actual);
		assert_string_equal(actual, expected);
	}
}

/* Every field of an event without mentions or push. */
static void
assert_event(const struct room_event *e, enum event_type type, const char *room,
    const char *id, const char *client_id, const char *connection_id, const char *text,
    int64_t ts)
{
	assert_int_equal(e->type, type);
	assert_string_or_null(e->room, room);
	assert_string_or_null(e->id, id);
	assert_string_or_null(e->client_id, client_id);
	assert_string_or_null(e->connection_id, connection_id);
	assert_string_or_null(e->text, text);
	assert_int_equal(e->ts, ts);
	assert_null(e->room_name);
	assert_null(e->sender_name);
	assert_int_equal(e->push_skip, 0);
	assert_null(e->present);
	assert_int_equal(e->present_count, 0);
	assert_null(e->up_to);
}

static void
assert_no_extras(const struct room_event *e)
{
	assert_int_equal(e->mention_count, 0);
	assert_null(e->mentions);
	assert_null(e->push);
}

/* mentions equal the NULL-terminated list, in order. */
static void
assert_mentions(const struct room_event *e, const char *const *expected)
{
	size_t n = 0;

	while (expected[n] != NULL)
		n++;
	assert_int_equal(e->mention_count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(e->mentions[i], expected[i]);
}

static void
assert_skip(const struct ably_result *r, size_t i, enum ably_skip_kind kind,
    const char *detail)
{
	assert_true(i < r->skip_count);
	assert_int_equal(r->skips[i].kind, kind);
	assert_string_equal(r->skips[i].detail, detail);
}

static void
assert_skip_counts(const struct ably_result *r, size_t malformed, size_t encrypted,
    size_t encoding, size_t source, size_t action, size_t chat_other)
{
	assert_int_equal(r->skipped[ABLY_SKIP_MALFORMED], malformed);
	assert_int_equal(r->skipped[ABLY_SKIP_ENCRYPTED], encrypted);
	assert_int_equal(r->skipped[ABLY_SKIP_ENCODING], encoding);
	assert_int_equal(r->skipped[ABLY_SKIP_SOURCE], source);
	assert_int_equal(r->skipped[ABLY_SKIP_ACTION], action);
	assert_int_equal(r->skipped[ABLY_SKIP_CHAT_OTHER], chat_other);
	assert_int_equal(r->skip_count,
	    malformed + encrypted + encoding + source + action + chat_other);
}

/* Shapes. */

static void
test_batched_translates_items_and_skips_lifecycle(void **state)
{
	struct ably_result r;

	translate_fixture("batched.json", &r);
	assert_int_equal(r.shape, ABLY_SHAPE_BATCHED);
	assert_int_equal(r.count, 5);
	assert_event(&r.events[0], EVENT_MESSAGE, "general", "cbfKayO1uV:0:0", "alice", NULL,
	    "hello", 1700000000100);
	assert_no_extras(&r.events[0]);
	assert_event(&r.events[1], EVENT_MESSAGE, "general", "dXkLmN2pQr:3:0", "bob", NULL,
	    "hi all", 1700000000200);
	assert_no_extras(&r.events[1]);
	assert_event(&r.events[2], EVENT_PRESENCE_ENTER, "general", NULL, "alice",
	    "cbfKayO1uV", NULL, 1700000001500);
	assert_event(&r.events[3], EVENT_PRESENCE_LEAVE, "general", NULL, "bob",
	    "dXkLmN2pQr", NULL, 1700000001600);
	assert_event(&r.events[4], EVENT_MESSAGE, "support",
	    "01700000004500-000@eFgHiJ0kLm:000", "carol", NULL, "can someone help?",
	    1700000004500);
	assert_no_extras(&r.events[4]);
	assert_skip_counts(&r, 0, 0, 0, 2, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_SOURCE, "items[2]: source channel.lifecycle is not "
	    "translated");
	assert_skip(&r, 1, ABLY_SKIP_SOURCE, "items[3]: source channel.occupancy is not "
	    "translated");
	source_ably_result_free(&r);
	assert_int_equal(r.count, 0);
	assert_null(r.events);
}

static void
test_enveloped_messages_need_a_sender_and_take_envelope_time(void **state)
{
	static const char *const erin[] = { "erin", NULL };
	struct ably_result r;

	translate_fixture("enveloped_messages.json", &r);
	assert_int_equal(r.shape, ABLY_SHAPE_ENVELOPED);
	assert_int_equal(r.count, 2);
	assert_event(&r.events[0], EVENT_MESSAGE, "room-1", "fGhIjKlMnO:0:0", "dave", NULL,
	    "from json", 1700000009900);
	assert_mentions(&r.events[0], erin);
	assert_null(r.events[0].push);
	assert_event(&r.events[1], EVENT_MESSAGE, "room-1", "fGhIjKlMnO:0:1", "dave", NULL,
	    "no timestamp", 1700000010000);
	assert_no_extras(&r.events[1]);
	/* The room-event contract requires a sender: server publishes without one are not. */
	assert_skip_counts(&r, 1, 0, 0, 0, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED,
	    "messages[2]: clientId: missing (a message needs its sender)");
	source_ably_result_free(&r);
}

static void
test_enveloped_presence_with_wrong_source_is_presence(void **state)
{
	struct ably_result r;

	translate_fixture("enveloped_presence.json", &r);
	assert_int_equal(r.shape, ABLY_SHAPE_ENVELOPED);
	assert_int_equal(r.count, 4);
	assert_event(&r.events[0], EVENT_PRESENCE_ENTER, "room-2", NULL, "erin", "gHiJkLmNoP",
	    NULL, 1700000019000);
	assert_event(&r.events[1], EVENT_PRESENCE_UPDATE, "room-2", NULL, "erin",
	    "gHiJkLmNoP", NULL, 1700000019100);
	assert_event(&r.events[2], EVENT_PRESENCE_LEAVE, "room-2", NULL, "frank",
	    "hIjKlMnOpQ", NULL, 1700000020000);
	assert_event(&r.events[3], EVENT_PRESENCE_ENTER, "room-2", NULL, "grace", NULL, NULL,
	    1700000019300);
	for (size_t i = 0; i < r.count; i++)
		assert_no_extras(&r.events[i]);
	assert_skip_counts(&r, 0, 0, 0, 0, 0, 0);
	source_ably_result_free(&r);
}

static void
test_enveloped_lifecycle_is_skipped_as_source(void **state)
{
	const char *body = "{\"source\":\"channel.lifecycle\",\"appId\":\"aBCdEf\","
	    "\"channel\":\"general\",\"data\":{\"name\":\"channel.opened\"}}";
	struct ably_result r;

	translate_body(body, strlen(body), &r);
	assert_int_equal(r.shape, ABLY_SHAPE_ENVELOPED);
	assert_int_equal(r.count, 0);
	assert_skip_counts(&r, 0, 0, 0, 1, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_SOURCE, "envelope: source channel.lifecycle is not "
	    "translated");
	source_ably_result_free(&r);
}

/* A non-enveloped request with the documented headers. */
static struct ably_request
non_enveloped(const char *source, const char *channel, const char *content_type,
    const char *body, size_t len)
{
	struct ably_request request = {
		.body = body, .len = len, .content_type = content_type,
		.envelope_source = source, .envelope_channel = channel,
		.message_id = "kLmNoPqRsT:2:0", .message_client_id = "mallory",
		.message_connection_id = "kLmNoPqRsT", .message_timestamp = "1700000070000",
	};

	return request;
}

static void
test_non_enveloped_chat_message_comes_from_headers_and_body(void **state)
{
	static const char *const mentioned[] = { "carol", "dave", NULL };
	struct ably_request request;
	struct ably_result r;
	char err[256] = "", *body;
	size_t len;

	body = read_fixture("non_enveloped_message.json", &len);
	request = non_enveloped("channel.message", "lobby::$chat",
	    "application/json; charset=utf-8", body, len);
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.shape, ABLY_SHAPE_NON_ENVELOPED);
	assert_int_equal(r.count, 1);
	assert_event(&r.events[0], EVENT_MESSAGE, "lobby", "kLmNoPqRsT:2:0", "mallory", NULL,
	    "hello from headers", 1700000070000);
	assert_mentions(&r.events[0], mentioned);
	assert_null(r.events[0].push);
	assert_skip_counts(&r, 0, 0, 0, 0, 0, 0);
	source_ably_result_free(&r);
	free(body);
}

static void
test_non_enveloped_text_and_binary_bodies(void **state)
{
	const char bytes[] = { 'a', '\0', (char)0xff };
	struct ably_request request;
	struct ably_result r;
	char err[256] = "";

	request = non_enveloped("channel.message", "plain", "text/plain", "plain words", 11);
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 1);
	assert_event(&r.events[0], EVENT_MESSAGE, "plain", "kLmNoPqRsT:2:0", "mallory", NULL,
	    "plain words", 1700000070000);
	source_ably_result_free(&r);

	/* Text that is not UTF-8 and bytes are data without text: the text is "". */
	request = non_enveloped("channel.message", "plain", "text/plain", bytes, sizeof bytes);
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 1);
	assert_event(&r.events[0], EVENT_MESSAGE, "plain", "kLmNoPqRsT:2:0", "mallory", NULL,
	    "", 1700000070000);
	source_ably_result_free(&r);

	request = non_enveloped("channel.message", "plain", "application/octet-stream", bytes,
	    sizeof bytes);
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.events[0].text, "");
	source_ably_result_free(&r);
}

static void
test_non_enveloped_chat_room_text_body_is_not_a_chat_message(void **state)
{
	struct ably_request request;
	struct ably_result r;
	char err[256] = "";

	request = non_enveloped("channel.message", "lobby::$chat", "text/plain", "typing", 6);
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 0);
	assert_skip_counts(&r, 0, 0, 0, 0, 0, 1);
	assert_skip(&r, 0, ABLY_SKIP_CHAT_OTHER,
	    "body: a message without a name is not a chat message");
	source_ably_result_free(&r);
}

static void
test_non_enveloped_presence_takes_action_header(void **state)
{
	struct ably_request request;
	struct ably_result r;
	char err[256] = "";

	request = non_enveloped("channel.presence", "lobby::$chat", "text/plain", "here", 4);
	request.message_action = "enter";
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 1);
	assert_event(&r.events[0], EVENT_PRESENCE_ENTER, "lobby", NULL, "mallory",
	    "kLmNoPqRsT", NULL, 1700000070000);
	source_ably_result_free(&r);

	request.message_action = "3";
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 1);
	assert_event(&r.events[0], EVENT_PRESENCE_LEAVE, "lobby", NULL, "mallory",
	    "kLmNoPqRsT", NULL, 1700000070000);
	source_ably_result_free(&r);

	request.message_action = NULL;
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 0);
	assert_skip_counts(&r, 1, 0, 0, 0, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED,
	    "headers: x-ably-message-action: missing, needed for presence");
	source_ably_result_free(&r);
}

static void
test_non_enveloped_bad_headers_are_skipped(void **state)
{
	struct ably_request request;
	struct ably_result r;
	char err[256] = "";

	request = non_enveloped("channel.occupancy", "lobby", "application/json", "{}", 2);
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_skip_counts(&r, 0, 0, 0, 1, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_SOURCE,
	    "headers: source channel.occupancy is not translated");
	source_ably_result_free(&r);

	request = non_enveloped("channel.message", "lobby", "text/plain", "x", 1);
	request.message_timestamp = "12:00";
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 0);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED,
	    "headers: x-ably-message-timestamp: must be milliseconds");
	source_ably_result_free(&r);

	request = non_enveloped("channel.message", NULL, "text/plain", "x", 1);
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED, "headers: x-ably-envelope-channel: missing");
	source_ably_result_free(&r);

	request = non_enveloped("channel.message", "lobby", "text/plain", "x", 1);
	request.message_id = NULL;
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 0);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED, "body: id: missing");
	source_ably_result_free(&r);
}

static void
test_non_enveloped_json_body_that_is_not_json_is_an_error(void **state)
{
	struct ably_request request;
	struct ably_result r;
	char err[256] = "";

	request = non_enveloped("channel.message", "lobby", "application/json", "{oops", 5);
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_EJSON);
	assert_int_equal(strncmp(err, "the body is not JSON", 20), 0);
	assert_int_equal(r.count, 0);
	assert_null(r.events);
	assert_int_equal(r.skip_count, 0);
}

/* Errors that answer the whole request. */

static void
test_msgpack_is_refused_with_its_own_error(void **state)
{
	struct ably_request request = {
		.body = "\x81\xa5items\x90", .len = 9,
		.content_type = "Application/X-Msgpack ; charset=binary",
	};
	struct ably_result r;
	char err[256] = "";

	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_EMSGPACK);
	assert_string_equal(err, "msgpack is not supported; configure the rule for JSON");
	assert_int_equal(r.count, 0);
	assert_string_equal(source_ably_strerror(ABLY_EMSGPACK),
	    "msgpack is not supported; configure the rule for JSON");
}

static void
test_garbage_and_unknown_shapes_are_errors(void **state)
{
	static const struct {
		const char *body;
		int rc;
	} cases[] = {
		{ "", ABLY_EJSON },
		{ "not json at all", ABLY_EJSON },
		{ "{\"items\":[]", ABLY_EJSON },
		{ "{\"a\":1,\"a\":2}", ABLY_EJSON },
		{ "[1,2,3]", ABLY_ESHAPE },
		{ "{\"hello\":\"world\"}", ABLY_ESHAPE },
		{ "{\"items\":5}", ABLY_ESHAPE },
		{ "{\"source\":7,\"messages\":[]}", ABLY_ESHAPE },
	};
	struct ably_result r;
	char err[256];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ably_request request = {
			.body = cases[i].body, .len = strlen(cases[i].body),
			.content_type = "application/json",
		};

		err[0] = '\0';
		assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), cases[i].rc);
		assert_true(err[0] != '\0');
		assert_int_equal(r.count, 0);
		assert_int_equal(r.skip_count, 0);
	}
}

static void
test_empty_batch_is_ok_with_nothing(void **state)
{
	struct ably_result r;

	translate_body("{\"items\":[]}", 12, &r);
	assert_int_equal(r.shape, ABLY_SHAPE_BATCHED);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.skip_count, 0);
	source_ably_result_free(&r);
}

/* Ably Chat. */

static void
test_chat_create_update_delete_and_summary_skipped(void **state)
{
	static const char *const create_mentions[] = { "ivan", "judy", NULL };
	const char *serial = "01700000030000-000@iJkLmNoPqR:000";
	struct ably_result r;

	translate_fixture("chat_actions.json", &r);
	assert_int_equal(r.count, 4);
	assert_event(&r.events[0], EVENT_MESSAGE, "design", serial, "heidi", NULL,
	    "first draft", 1700000030000);
	assert_mentions(&r.events[0], create_mentions);
	assert_null(r.events[0].push);
	assert_event(&r.events[1], EVENT_MESSAGE_UPDATE, "design", serial, "heidi", NULL,
	    "second draft", 1700000031000);
	assert_no_extras(&r.events[1]);
	assert_event(&r.events[2], EVENT_MESSAGE_DELETE, "design", serial, NULL, NULL, NULL,
	    1700000032000);
	assert_no_extras(&r.events[2]);
	assert_event(&r.events[3], EVENT_MESSAGE, "design",
	    "01700000035000-000@jKlMnOpQrS:000", "ivan", NULL, "named action", 1700000035000);
	assert_skip_counts(&r, 0, 0, 0, 0, 1, 1);
	assert_skip(&r, 0, ABLY_SKIP_ACTION,
	    "messages[3]: action 4 (message.summary) is not translated");
	assert_skip(&r, 1, ABLY_SKIP_CHAT_OTHER,
	    "messages[4]: typing.started is not a chat message");
	source_ably_result_free(&r);
}

static void
test_chat_message_without_text_is_malformed(void **state)
{
	const char *body = "{\"source\":\"channel.message\",\"channel\":\"r::$chat\","
	    "\"messages\":[{\"name\":\"chat.message\",\"serial\":\"s1\",\"clientId\":\"c\","
	    "\"data\":\"bare\"},"
	    "{\"name\":\"chat.message\",\"action\":1,\"data\":{\"text\":\"x\"}}]}";
	struct ably_result r;

	translate_body(body, strlen(body), &r);
	assert_int_equal(r.count, 0);
	assert_skip_counts(&r, 2, 0, 0, 0, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED, "messages[0]: data.text: must be a string");
	assert_skip(&r, 1, ABLY_SKIP_MALFORMED, "messages[1]: serial: missing");
	source_ably_result_free(&r);
}

static void
test_channel_suffix_is_removed_only_at_the_end(void **state)
{
	const char *body = "{\"source\":\"channel.message\",\"channel\":\"a::$chat::b\","
	    "\"messages\":[{\"id\":\"m\",\"clientId\":\"c\",\"data\":\"t\"}]}";
	const char *chat = "{\"source\":\"channel.presence\",\"channel\":\"team:ops::$chat\","
	    "\"presence\":[{\"clientId\":\"c\",\"action\":2}]}";
	struct ably_result r;

	translate_body(body, strlen(body), &r);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.events[0].room, "a::$chat::b");
	source_ably_result_free(&r);
	translate_body(chat, strlen(chat), &r);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.events[0].room, "team:ops");
	source_ably_result_free(&r);
}

/* Encodings. */

static void
test_encodings_are_undone_right_to_left(void **state)
{
	struct ably_result r;

	translate_fixture("encodings.json", &r);
	assert_int_equal(r.count, 4);
	assert_event(&r.events[0], EVENT_MESSAGE, "codec", "enc-json", "kim", NULL,
	    "json text", 1700000050000);
	assert_event(&r.events[1], EVENT_MESSAGE, "codec", "enc-base64", "kim", NULL, "",
	    1700000050000);
	assert_event(&r.events[2], EVENT_MESSAGE, "codec", "enc-utf8", "kim", NULL,
	    "h\xc3\xa9llo \xe2\x98\x83", 1700000050000);
	assert_event(&r.events[3], EVENT_MESSAGE, "codec", "enc-chain", "kim", NULL,
	    "deep \xc3\xa9", 1700000050000);
	assert_skip_counts(&r, 3, 1, 1, 0, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_ENCRYPTED,
	    "messages[4]: encoding: cipher+aes-128-cbc: encrypted data");
	assert_skip(&r, 1, ABLY_SKIP_ENCODING, "messages[5]: encoding: vcdiff is not supported");
	assert_skip(&r, 2, ABLY_SKIP_MALFORMED, "messages[6]: data: encoding json: not JSON");
	assert_skip(&r, 3, ABLY_SKIP_MALFORMED, "messages[7]: data: is not base64");
	assert_skip(&r, 4, ABLY_SKIP_MALFORMED, "messages[8]: data: is not UTF-8");
	source_ably_result_free(&r);
}

static void
test_encrypted_delete_is_still_translated(void **state)
{
	const char *body = "{\"source\":\"channel.message\",\"channel\":\"vault::$chat\","
	    "\"messages\":[{\"name\":\"chat.message\",\"action\":2,\"serial\":\"s9\","
	    "\"encoding\":\"cipher+aes-256-cbc/base64\",\"data\":\"AAAA\"},"
	    "{\"name\":\"chat.message\",\"action\":0,\"serial\":\"s10\",\"clientId\":\"c\","
	    "\"encoding\":\"cipher+aes-256-cbc/base64\",\"data\":\"AAAA\"}]}";
	struct ably_result r;

	translate_body(body, strlen(body), &r);
	assert_int_equal(r.count, 1);
	assert_event(&r.events[0], EVENT_MESSAGE_DELETE, "vault", "s9", NULL, NULL, NULL, 0);
	assert_skip_counts(&r, 0, 1, 0, 0, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_ENCRYPTED,
	    "messages[1]: encoding: cipher+aes-256-cbc: encrypted data");
	source_ably_result_free(&r);
}

/* Push. */

static void
test_push_extras_map_to_the_push_object(void **state)
{
	static const char *const mentioned[] = { "mallory", "niaj", NULL };
	const char *expected_text = "{\"title\":\"Ops\",\"body\":\"Server on fire\","
	    "\"data\":{\"severity\":\"high\",\"count\":\"3\",\"ack\":\"true\"},"
	    "\"apns\":{\"headers\":{\"apns-priority\":\"10\",\"apns-push-type\":\"alert\"},"
	    "\"payload\":{\"aps\":{\"category\":\"ALERT\",\"sound\":\"siren.caf\","
	    "\"thread-id\":\"ops-alerts\"}}},"
	    "\"fcm\":{\"android\":{\"priority\":\"high\",\"collapse_key\":\"ops-alerts\","
	    "\"notification\":{\"icon\":\"flame\",\"sound\":\"siren.caf\"}}}}";
	json_t *expected;
	struct ably_result r;

	translate_fixture("push.json", &r);
	assert_int_equal(r.count, 1);
	assert_event(&r.events[0], EVENT_MESSAGE, "alerts", "push-1", "lena", NULL,
	    "server on fire", 1700000059000);
	assert_mentions(&r.events[0], mentioned);
	assert_non_null(r.events[0].push);
	expected = json_loads(expected_text, 0, NULL);
	assert_non_null(expected);
	if (!json_equal(r.events[0].push, expected)) {
		char *got = json_dumps(r.events[0].push, JSON_COMPACT | JSON_SORT_KEYS);

		fail_msg("push: %s", got);
	}
	json_decref(expected);
	assert_skip_counts(&r, 1, 0, 0, 0, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED,
	    "messages[1]: extras.push.notification.title: must be a string");
	source_ably_result_free(&r);
}

static void
test_push_overrides_of_ably_win_and_bad_push_is_malformed(void **state)
{
	const char *body = "{\"source\":\"channel.message\",\"channel\":\"r\",\"messages\":["
	    "{\"id\":\"m1\",\"clientId\":\"c\",\"data\":\"t\",\"extras\":{\"push\":{"
	    "\"notification\":{\"collapseKey\":\"k\",\"sound\":\"a.caf\"},"
	    "\"apns\":{\"aps\":{\"thread-id\":\"mine\"}},"
	    "\"fcm\":{\"android\":{\"collapse_key\":\"mine\"}},\"web\":{}}}},"
	    "{\"id\":\"m2\",\"clientId\":\"c\",\"data\":\"t\",\"extras\":{\"push\":"
	    "{\"web\":{\"x\":1}}}},"
	    "{\"id\":\"m3\",\"clientId\":\"c\",\"data\":\"t\",\"extras\":{\"push\":"
	    "{\"data\":{\"google.x\":\"1\"}}}},"
	    "{\"id\":\"m4\",\"clientId\":\"c\",\"data\":\"t\",\"extras\":{\"push\":"
	    "{\"fcm\":[]}}},"
	    "{\"id\":\"m5\",\"clientId\":\"c\",\"data\":\"t\",\"extras\":{\"push\":"
	    "{\"apns\":{\"apns-headers\":\"x\"}}}}]}";
	const char *expected_text = "{\"apns\":{\"payload\":{\"aps\":{\"sound\":\"a.caf\","
	    "\"thread-id\":\"mine\"}}},\"fcm\":{\"android\":{\"collapse_key\":\"mine\","
	    "\"notification\":{\"sound\":\"a.caf\"}}}}";
	struct ably_result r;
	json_t *expected;

	translate_body(body, strlen(body), &r);
	assert_int_equal(r.count, 2);
	expected = json_loads(expected_text, 0, NULL);
	assert_non_null(expected);
	assert_true(json_equal(r.events[0].push, expected));
	json_decref(expected);
	/* Nothing of a web-only push applies. */
	assert_string_equal(r.events[1].id, "m2");
	assert_null(r.events[1].push);
	assert_skip_counts(&r, 3, 0, 0, 0, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED,
	    "messages[2]: extras.push.data.google.x: is a reserved key");
	assert_skip(&r, 1, ABLY_SKIP_MALFORMED, "messages[3]: extras.push.fcm: must be an object");
	assert_skip(&r, 2, ABLY_SKIP_MALFORMED,
	    "messages[4]: extras.push.apns.apns-headers: must be an object");
	source_ably_result_free(&r);
}

static void
test_push_over_the_event_limits_is_malformed(void **state)
{
	struct ably_result r;
	json_t *data = json_object(), *body;
	char key[16], *text, *big = malloc(EVENT_PUSH_JSON_MAX + 1);

	(void)state;
	for (int i = 0; i <= EVENT_PUSH_DATA_MAX; i++) {
		snprintf(key, sizeof key, "k%d", i);
		json_object_set_new(data, key, json_string("v"));
	}
	assert_non_null(big);
	memset(big, 'x', EVENT_PUSH_JSON_MAX);
	big[EVENT_PUSH_JSON_MAX] = '\0';
	body = json_pack("{s:s, s:s, s:[{s:s, s:s, s:s, s:{s:{s:o}}},"
	    "{s:s, s:s, s:s, s:{s:{s:{s:s}}}}]}",
	    "source", "channel.message", "channel", "r", "messages",
	    "id", "m1", "clientId", "c", "data", "t", "extras", "push", "data", data,
	    "id", "m2", "clientId", "c", "data", "t", "extras", "push", "fcm", "x", big);
	assert_non_null(body);
	text = json_dumps(body, JSON_COMPACT);
	translate_body(text, strlen(text), &r);
	assert_int_equal(r.count, 0);
	assert_skip_counts(&r, 2, 0, 0, 0, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED,
	    "messages[0]: extras.push.data: must have at most 100 members");
	assert_skip(&r, 1, ABLY_SKIP_MALFORMED,
	    "messages[1]: extras.push.fcm: must be at most 4096 bytes as JSON");
	source_ably_result_free(&r);
	json_decref(body);
	free(text);
	free(big);
}

/* Translate body, expecting ABLY_ETOOLARGE with exactly the error message. */
static void
expect_too_large(const char *body, const char *message)
{
	struct ably_request request = {
		.body = body, .len = strlen(body), .content_type = "application/json",
	};
	struct ably_result r;
	char err[256] = "";

	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_ETOOLARGE);
	assert_string_equal(err, message);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.skip_count, 0);
	assert_null(r.events);
}

/* A batched delivery of items, each a channel.presence item with entries entries. */
static char *
batch_of(size_t items, size_t entries)
{
	json_t *array = json_array(), *presence, *body;
	char *text;

	for (size_t i = 0; i < items; i++) {
		presence = json_array();
		for (size_t e = 0; e < entries; e++)
			json_array_append_new(presence, json_pack("{s:i, s:s}", "action", 2,
			    "clientId", "c"));
		json_array_append_new(array, json_pack("{s:s, s:{s:s, s:o}}", "source",
		    "channel.presence", "data", "channelId", "r", "presence", presence));
	}
	body = json_pack("{s:o}", "items", array);
	text = json_dumps(body, JSON_COMPACT);
	assert_non_null(text);
	json_decref(body);
	return text;
}

static void
test_delivery_over_the_item_or_entry_limit_is_refused_whole(void **state)
{
	struct ably_result r;
	char *text;
	json_t *presence = json_array(), *envelope;

	(void)state;
	/* At the limits: translated. */
	text = batch_of(ABLY_ITEMS_MAX, ABLY_ENTRIES_MAX / ABLY_ITEMS_MAX);
	translate_body(text, strlen(text), &r);
	assert_int_equal(r.count, ABLY_ENTRIES_MAX);
	source_ably_result_free(&r);
	free(text);

	text = batch_of(ABLY_ITEMS_MAX + 1, 0);
	expect_too_large(text, "items: at most 1000 items in one delivery");
	free(text);
	text = batch_of(2, ABLY_ENTRIES_MAX / 2 + 1);
	expect_too_large(text, "at most 10000 messages and presence entries in one delivery");
	free(text);

	for (size_t e = 0; e <= ABLY_ENTRIES_MAX; e++)
		json_array_append_new(presence, json_pack("{s:i, s:s}", "action", 2, "clientId",
		    "c"));
	envelope = json_pack("{s:s, s:s, s:o}", "source", "channel.presence", "channel", "r",
	    "presence", presence);
	text = json_dumps(envelope, JSON_COMPACT);
	expect_too_large(text, "at most 10000 messages and presence entries in one delivery");
	free(text);
	json_decref(envelope);
}

static void
test_long_text_is_cut_at_a_character_boundary(void **state)
{
	struct ably_request request;
	struct ably_result r;
	char err[256] = "", *body;
	size_t len = EVENT_TEXT_MAX + 10;

	/* "a" then two-byte characters: byte 4096 falls inside one. */
	body = malloc(len);
	assert_non_null(body);
	body[0] = 'a';
	for (size_t i = 1; i + 1 < len; i += 2) {
		body[i] = (char)0xc3;
		body[i + 1] = (char)0xa9;
	}
	request = non_enveloped("channel.message", "plain", "text/plain", body, len - 1);
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.count, 1);
	assert_int_equal(strlen(r.events[0].text), EVENT_TEXT_MAX - 1);
	assert_memory_equal(r.events[0].text, body, EVENT_TEXT_MAX - 1);
	source_ably_result_free(&r);
	free(body);
}

static void
test_header_mentions_accept_an_array_and_validate_ids(void **state)
{
	static const char *const mentioned[] = { "a", "b", NULL };
	const char *body = "{\"source\":\"channel.message\",\"channel\":\"r\",\"messages\":["
	    "{\"id\":\"m1\",\"clientId\":\"c\",\"data\":\"t\",\"extras\":{\"headers\":"
	    "{\"mentions\":[\"a\",\"b\",\"a\"]}}},"
	    "{\"id\":\"m2\",\"clientId\":\"c\",\"data\":\"t\",\"extras\":{\"headers\":"
	    "{\"mentions\":7}}},"
	    "{\"id\":\"m3\",\"clientId\":\"c\",\"data\":\"t\",\"extras\":{\"headers\":"
	    "{\"mentions\":[\"\\u0001\"]}}},"
	    "{\"id\":\"m4\",\"clientId\":\"c\",\"data\":\"t\",\"extras\":{\"headers\":"
	    "{\"mentions\":\" , \"}}}]}";
	struct ably_result r;

	translate_body(body, strlen(body), &r);
	assert_int_equal(r.count, 2);
	assert_string_equal(r.events[0].id, "m1");
	assert_mentions(&r.events[0], mentioned);
	assert_string_equal(r.events[1].id, "m4");
	assert_int_equal(r.events[1].mention_count, 0);
	assert_skip_counts(&r, 2, 0, 0, 0, 0, 0);
	assert_skip(&r, 0, ABLY_SKIP_MALFORMED, "messages[1]: extras.headers.mentions: must be "
	    "an array of client ids or a string of them separated by commas");
	assert_skip(&r, 1, ABLY_SKIP_MALFORMED, "messages[2]: extras.headers.mentions: must "
	    "not contain control characters");
	source_ably_result_free(&r);
}

/* Garbage within a valid delivery. */

static void
test_malformed_entries_are_skipped_and_the_rest_kept(void **state)
{
	static const struct {
		enum ably_skip_kind kind;
		const char *detail;
	} skips[] = {
		{ ABLY_SKIP_MALFORMED, "items[0]: must be an object" },
		{ ABLY_SKIP_MALFORMED, "items[1].data.messages[0]: must be an object" },
		{ ABLY_SKIP_MALFORMED, "items[1].data.messages[2]: id: missing" },
		{ ABLY_SKIP_MALFORMED, "items[1].data.messages[3]: id: must not be empty" },
		{ ABLY_SKIP_MALFORMED, "items[1].data.messages[4]: clientId: must be a string" },
		{ ABLY_SKIP_MALFORMED, "items[1].data.messages[5]: timestamp: must be "
		    "milliseconds since the epoch" },
		{ ABLY_SKIP_MALFORMED, "items[1].data.messages[6]: extras: must be an object" },
		{ ABLY_SKIP_MALFORMED, "items[1].data.messages[7]: data.metadata.mentions: must "
		    "be an array of client ids" },
		{ ABLY_SKIP_ACTION, "items[1].data.messages[8]: action 1 (message.update) is "
		    "translated for chat.message only" },
		{ ABLY_SKIP_MALFORMED, "items[1].data.messages[9]: clientId: missing (a message "
		    "needs its sender)" },
		{ ABLY_SKIP_MALFORMED, "items[2].data: channelId: missing" },
		{ ABLY_SKIP_MALFORMED, "items[3].data.presence[0]: clientId: missing" },
		{ ABLY_SKIP_ACTION, "items[3].data.presence[1]: presence action is not "
		    "translated" },
		{ ABLY_SKIP_ACTION, "items[3].data.presence[2]: presence action is not "
		    "translated" },
		{ ABLY_SKIP_MALFORMED, "items[4]: source: missing" },
		{ ABLY_SKIP_MALFORMED, "items[5].data: channelId: room: must not be empty" },
		{ ABLY_SKIP_MALFORMED, "items[6].data: messages: must be an array" },
	};
	struct ably_result r;

	translate_fixture("malformed.json", &r);
	assert_int_equal(r.count, 2);
	assert_event(&r.events[0], EVENT_MESSAGE, "ok-room", "good-1", "olivia", NULL, "fine",
	    0);
	assert_event(&r.events[1], EVENT_PRESENCE_ENTER, "r", NULL, "quinn", "c-1", NULL, 0);
	assert_skip_counts(&r, 14, 0, 0, 0, 3, 0);
	for (size_t i = 0; i < sizeof skips / sizeof skips[0]; i++)
		assert_skip(&r, i, skips[i].kind, skips[i].detail);
	source_ably_result_free(&r);
}

static void
test_every_truncated_fixture_is_refused_as_not_json(void **state)
{
	static const char *const names[] = {
		"batched.json", "chat_actions.json", "encodings.json", "enveloped_messages.json",
		"enveloped_presence.json", "malformed.json", "push.json",
	};
	struct ably_result r;
	char err[256], *body;
	size_t len, end;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		body = read_fixture(names[i], &len);
		for (end = len; end > 0 && body[end - 1] != '}'; end--)
			;
		for (size_t n = 0; n < end; n++) {
			struct ably_request request = {
				.body = body, .len = n, .content_type = "application/json",
			};

			if (source_ably_translate(&request, &r, err, sizeof err) != ABLY_EJSON)
				fail_msg("%s cut at %zu was not refused", names[i], n);
		}
		free(body);
	}
}

static void
test_skip_kind_names(void **state)
{
	assert_string_equal(source_ably_skip_kind_name(ABLY_SKIP_MALFORMED), "malformed");
	assert_string_equal(source_ably_skip_kind_name(ABLY_SKIP_ENCRYPTED), "encrypted");
	assert_string_equal(source_ably_skip_kind_name(ABLY_SKIP_ENCODING), "encoding");
	assert_string_equal(source_ably_skip_kind_name(ABLY_SKIP_SOURCE), "source");
	assert_string_equal(source_ably_skip_kind_name(ABLY_SKIP_ACTION), "action");
	assert_string_equal(source_ably_skip_kind_name(ABLY_SKIP_CHAT_OTHER), "chat_other");
}

/* Keys and signatures. */

/* base64(HMAC-SHA256(secret, body)), computed with EVP_MAC, not with ably.c's code. */
static void
expected_signature(const char *secret, const void *body, size_t len, char out[64])
{
	unsigned char mac[32];
	size_t mac_len = 0;
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx;
	OSSL_PARAM params[2];

	assert_non_null(hmac);
	ctx = EVP_MAC_CTX_new(hmac);
	assert_non_null(ctx);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	assert_int_equal(EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret),
	    params), 1);
	assert_int_equal(EVP_MAC_update(ctx, body, len), 1);
	assert_int_equal(EVP_MAC_final(ctx, mac, &mac_len, sizeof mac), 1);
	assert_int_equal(mac_len, 32);
	assert_int_equal(EVP_EncodeBlock((unsigned char *)out, mac, 32), 44);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
}

static struct ably_keys *
load_test_keys(struct fixture *f)
{
	struct ably_keys *keys = NULL;
	char err[256] = "";

	write_file(f->path, "# Ably keys that sign webhooks\n"
	    "  " KEY1_NAME ":" KEY1_SECRET "  \n"
	    "\n"
	    "\t# another comment\n"
	    KEY2_NAME ":" KEY2_SECRET "\r\n");
	assert_int_equal(ably_keys_load(f->path, &keys, err, sizeof err), 0);
	assert_int_equal(ably_keys_count(keys), 2);
	return keys;
}

static void
test_verify_accepts_the_signature_of_the_named_key(void **state)
{
	struct ably_keys *keys = load_test_keys(*state);
	char sig1[64], sig2[64], err[256] = "", *body;
	size_t len;

	body = read_fixture("batched.json", &len);
	expected_signature(KEY1_SECRET, body, len, sig1);
	expected_signature(KEY2_SECRET, body, len, sig2);
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME, sig1, body, len, err, sizeof err),
	    ABLY_KEYS_OK);
	assert_int_equal(ably_keys_verify(keys, KEY2_NAME, sig2, body, len, err, sizeof err),
	    ABLY_KEYS_OK);
	free(body);
	ably_keys_free(keys);
}

static void
test_verify_refuses_bad_signatures(void **state)
{
	struct ably_keys *keys = load_test_keys(*state);
	char sig1[64], sig2[64], err[256], *body;
	size_t len;

	body = read_fixture("batched.json", &len);
	expected_signature(KEY1_SECRET, body, len, sig1);
	expected_signature(KEY2_SECRET, body, len, sig2);
	/* Another key's signature. */
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME, sig2, body, len, err, sizeof err),
	    ABLY_KEYS_EBADSIGNATURE);
	assert_null(strstr(err, KEY1_SECRET));
	/* The body changed by one byte. */
	body[len - 2] ^= 1;
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME, sig1, body, len, err, sizeof err),
	    ABLY_KEYS_EBADSIGNATURE);
	body[len - 2] ^= 1;
	/* Not base64, truncated, or a digest of the wrong length. */
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME, "!!!!", body, len, err, sizeof err),
	    ABLY_KEYS_EBADSIGNATURE);
	assert_string_equal(err, "X-Ably-Signature is not base64");
	sig1[40] = '\0';
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME, sig1, body, len, err, sizeof err),
	    ABLY_KEYS_EBADSIGNATURE);
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME, "AAAA", body, len, err, sizeof err),
	    ABLY_KEYS_EBADSIGNATURE);
	free(body);
	ably_keys_free(keys);
}

static void
test_verify_tells_missing_and_unknown_apart(void **state)
{
	struct ably_keys *keys = load_test_keys(*state);
	char sig[64], err[256];
	const char *body = "{\"items\":[]}";

	expected_signature(KEY1_SECRET, body, strlen(body), sig);
	assert_int_equal(ably_keys_verify(keys, NULL, sig, body, strlen(body), err, sizeof err),
	    ABLY_KEYS_ENOKEY);
	assert_string_equal(err, "no X-Ably-Key header");
	assert_int_equal(ably_keys_verify(keys, "", sig, body, strlen(body), err, sizeof err),
	    ABLY_KEYS_ENOKEY);
	assert_int_equal(ably_keys_verify(keys, "aBCdEf.other", sig, body, strlen(body), err,
	    sizeof err), ABLY_KEYS_EUNKNOWNKEY);
	assert_string_equal(err, "X-Ably-Key names an unknown key: aBCdEf.other");
	/* The secret is not a key name. */
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME ":" KEY1_SECRET, sig, body,
	    strlen(body), err, sizeof err), ABLY_KEYS_EUNKNOWNKEY);
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME, NULL, body, strlen(body), err,
	    sizeof err), ABLY_KEYS_ENOSIGNATURE);
	assert_string_equal(err, "no X-Ably-Signature header");
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME, "", body, strlen(body), err,
	    sizeof err), ABLY_KEYS_ENOSIGNATURE);
	assert_int_equal(ably_keys_verify(keys, KEY1_NAME, sig, body, strlen(body), err,
	    sizeof err), ABLY_KEYS_OK);
	ably_keys_free(keys);
}

/* A malformed X-Ably-Key is refused with a message that is UTF-8 and short. */
static void
test_verify_shows_a_malformed_key_name_as_short_utf8(void **state)
{
	struct ably_keys *keys = load_test_keys(*state);
	char sig[64], err[256], name[5000];
	const char *body = "{\"items\":[]}";
	json_t *copy;

	expected_signature(KEY1_SECRET, body, strlen(body), sig);
	assert_int_equal(ably_keys_verify(keys, "bad\xff\xfekey\xc3", sig, body, strlen(body),
	    err, sizeof err), ABLY_KEYS_EUNKNOWNKEY);
	assert_string_equal(err, "X-Ably-Key names an unknown key: "
	    "bad\xef\xbf\xbd\xef\xbf\xbdkey\xef\xbf\xbd");
	/* Huge, with a 2-byte character across the 64-byte cut. */
	memset(name, 'k', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	memcpy(name + 63, "\xc3\xa9", 2);
	assert_int_equal(ably_keys_verify(keys, name, sig, body, strlen(body), err, sizeof err),
	    ABLY_KEYS_EUNKNOWNKEY);
	assert_int_equal(strlen(err), strlen("X-Ably-Key names an unknown key: ") + 63);
	copy = json_string(err);
	assert_non_null(copy);
	json_decref(copy);
	ably_keys_free(keys);
}

/* A parse error quoting the body, cut anywhere, comes back as UTF-8. */
static void
test_parse_error_text_is_utf8_wherever_it_is_cut(void **state)
{
	struct ably_request req = { 0 };
	struct ably_result result;
	char err[256];
	size_t errlen;

	(void)state;
	/* jansson quotes the token it stopped at: here a 3-byte character. */
	req.body = "\xe2\x82\xac";
	req.len = 3;
	req.content_type = "application/json";
	assert_int_equal(source_ably_translate(&req, &result, err, sizeof err), ABLY_EJSON);
	assert_non_null(strstr(err, "\xe2\x82\xac"));
	/* Every shorter buffer cuts the message somewhere, also inside that character. */
	for (errlen = 1; errlen <= strlen(err); errlen++) {
		char cut[256];

		assert_int_equal(source_ably_translate(&req, &result, cut, errlen), ABLY_EJSON);
		assert_true(strlen(cut) < errlen);
		assert_true(utf8_valid(cut, strlen(cut)));
	}
}

static void
test_keys_load_refuses_bad_files_without_showing_secrets(void **state)
{
	static const struct {
		const char *text;
		const char *err_end;
	} cases[] = {
		{ "aBCdEf.kEy1\n", ":1: expected appId.keyId:secret" },
		{ "# c\nnodot:topsecret\n", ":2: expected appId.keyId:secret" },
		{ ".kEy1:topsecret\n", ":1: expected appId.keyId:secret" },
		{ "aBCdEf.:topsecret\n", ":1: expected appId.keyId:secret" },
		{ "aBCdEf.kEy1:\n", ":1: expected appId.keyId:secret" },
		{ "aBCdEf.kEy1:top secret\n", ":1: expected appId.keyId:secret" },
		{ "aBCdEf.kEy1:topsecret\naBCdEf.kEy1:topsecret2\n",
		  ":2: key aBCdEf.kEy1 is listed twice" },
		{ "# only comments\n\n", " has no keys" },
	};
	struct fixture *f = *state;
	struct ably_keys *keys;
	char err[512];
	size_t elen, tlen;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_file(f->path, cases[i].text);
		keys = NULL;
		err[0] = '\0';
		assert_int_equal(ably_keys_load(f->path, &keys, err, sizeof err), -1);
		elen = strlen(err);
		tlen = strlen(cases[i].err_end);
		assert_true(elen >= tlen);
		assert_string_equal(err + elen - tlen, cases[i].err_end);
		assert_null(strstr(err, "topsecret"));
	}
	unlink(f->path);
	assert_int_equal(ably_keys_load(f->path, &keys, err, sizeof err), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	assert_int_equal(ably_keys_count(NULL), 0);
	ably_keys_free(NULL);
}

/* A header that is not UTF-8, quoted in the error: replaced, so the answer's JSON holds. */
static void
test_verify_error_for_a_key_name_that_is_not_utf8_is_utf8(void **state)
{
	struct ably_keys *keys = load_test_keys(*state);
	char err[256];
	const char *body = "{\"items\":[]}";

	assert_int_equal(ably_keys_verify(keys, "aBCdEf.\xff\xc3", "AAAA", body, strlen(body),
	    err, sizeof err), ABLY_KEYS_EUNKNOWNKEY);
	assert_string_equal(err,
	    "X-Ably-Key names an unknown key: aBCdEf.\xef\xbf\xbd\xef\xbf\xbd");
	ably_keys_free(keys);
}

/* Sources quoted in skip details: not UTF-8 (a header), or cut by %.64s (JSON). */
static void
test_skip_details_quoting_a_source_stay_utf8(void **state)
{
	struct ably_request request;
	struct ably_result r;
	char err[256], body[512], source[1 + 2 * 40 + 1];

	(void)state;
	memset(&request, 0, sizeof request);
	request.body = "{}";
	request.len = 2;
	request.content_type = "application/json";
	request.envelope_source = "channel.\xe2\x82";
	request.envelope_channel = "room-1";
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.skip_count, 1);
	assert_string_equal(r.skips[0].detail,
	    "headers: source channel.\xef\xbf\xbd\xef\xbf\xbd is not translated");
	source_ably_result_free(&r);

	/* "x" and 40 two-byte characters: %.64s would keep half of the 32nd. */
	source[0] = 'x';
	for (size_t i = 0; i < 40; i++)
		memcpy(source + 1 + 2 * i, "\xc3\xa9", 2);
	source[81] = '\0';
	snprintf(body, sizeof body, "{\"source\":\"%s\",\"channel\":\"r\"}", source);
	memset(&request, 0, sizeof request);
	request.body = body;
	request.len = strlen(body);
	request.content_type = "application/json";
	assert_int_equal(source_ably_translate(&request, &r, err, sizeof err), ABLY_OK);
	assert_int_equal(r.skip_count, 1);
	assert_true(utf8_valid(r.skips[0].detail, strlen(r.skips[0].detail)));
	source_ably_result_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batched_translates_items_and_skips_lifecycle),
		cmocka_unit_test(test_enveloped_messages_need_a_sender_and_take_envelope_time),
		cmocka_unit_test(test_enveloped_presence_with_wrong_source_is_presence),
		cmocka_unit_test(test_enveloped_lifecycle_is_skipped_as_source),
		cmocka_unit_test(test_non_enveloped_chat_message_comes_from_headers_and_body),
		cmocka_unit_test(test_non_enveloped_text_and_binary_bodies),
		cmocka_unit_test(test_non_enveloped_chat_room_text_body_is_not_a_chat_message),
		cmocka_unit_test(test_non_enveloped_presence_takes_action_header),
		cmocka_unit_test(test_non_enveloped_bad_headers_are_skipped),
		cmocka_unit_test(test_non_enveloped_json_body_that_is_not_json_is_an_error),
		cmocka_unit_test(test_msgpack_is_refused_with_its_own_error),
		cmocka_unit_test(test_garbage_and_unknown_shapes_are_errors),
		cmocka_unit_test(test_empty_batch_is_ok_with_nothing),
		cmocka_unit_test(test_chat_create_update_delete_and_summary_skipped),
		cmocka_unit_test(test_chat_message_without_text_is_malformed),
		cmocka_unit_test(test_channel_suffix_is_removed_only_at_the_end),
		cmocka_unit_test(test_encodings_are_undone_right_to_left),
		cmocka_unit_test(test_encrypted_delete_is_still_translated),
		cmocka_unit_test(test_push_extras_map_to_the_push_object),
		cmocka_unit_test(test_push_overrides_of_ably_win_and_bad_push_is_malformed),
		cmocka_unit_test(test_push_over_the_event_limits_is_malformed),
		cmocka_unit_test(test_delivery_over_the_item_or_entry_limit_is_refused_whole),
		cmocka_unit_test(test_long_text_is_cut_at_a_character_boundary),
		cmocka_unit_test(test_header_mentions_accept_an_array_and_validate_ids),
		cmocka_unit_test(test_malformed_entries_are_skipped_and_the_rest_kept),
		cmocka_unit_test(test_every_truncated_fixture_is_refused_as_not_json),
		cmocka_unit_test(test_skip_kind_names),
		cmocka_unit_test_setup_teardown(test_verify_accepts_the_signature_of_the_named_key,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_refuses_bad_signatures, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_tells_missing_and_unknown_apart, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_verify_shows_a_malformed_key_name_as_short_utf8, setup, teardown),
		cmocka_unit_test(test_parse_error_text_is_utf8_wherever_it_is_cut),
		cmocka_unit_test_setup_teardown(
		    test_keys_load_refuses_bad_files_without_showing_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_verify_error_for_a_key_name_that_is_not_utf8_is_utf8, setup, teardown),
		cmocka_unit_test(test_skip_details_quoting_a_source_stay_utf8),
	};

	return cmocka_run_group_tests_name("ably", tests, NULL, NULL);
}
