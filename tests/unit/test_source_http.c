/*
 * Tests for source_http.c: what a post answers, what the outbox keeps of it and of
 * which kind, and how the rows left at start are read back by their kind. A real
 * SQLite store and store writer in a temporary directory, on a real event loop, with
 * a fake sink that records what it is handed.
 */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "base64.h"
#include "clock.h"
#include "config.h"
#include "event.h"
#include "source.h"
#include "source_http.h"
#include "store_outbox.h"
#include "store_writer.h"

#define HANDLED_MAX 16

/* An enveloped Ably webhook with one message, and the event it becomes. */
#define ABLY_BODY "{\"source\":\"channel.message\",\"appId\":\"app\",\"channel\":" \
	"\"r2::$chat\",\"messages\":[{\"id\":\"x\",\"serial\":\"s2\",\"name\":" \
	"\"chat.message\",\"clientId\":\"bob\",\"data\":{\"text\":\"from ably\"}," \
	"\"timestamp\":1000}]}"
#define EVENT_M1 "{\"type\":\"message\",\"room\":\"r1\",\"id\":\"m1\"," \
	"\"client_id\":\"alice\",\"text\":\"hi\"}"

/* What the fake sink was handed. */
struct handled {
	enum event_type type;
	char room[32];
	char id[32];
	char client_id[32];
	char text[32];
	int redelivered;
};

/* A post's answer, copied. */
struct answered {
	int count;
	enum source_http_result result;
	size_t accepted;
	char skipped[256];
	char field[64];
	char message[256];
};

struct fixture {
	char dir[64];
	char path[128];
	struct store_options options;
	struct event_base *base;
	struct store *store;
	struct store_writer *writer;
	struct config config;
	struct source_sink sink;
	struct source_http *http;
	struct handled handled[HANDLED_MAX];
	size_t count;
	int ack;			/* ack what is handed at once */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");
	char err[256];

	snprintf(f->dir, sizeof f->dir, "%s/test_source_http.XXXXXX",
	    tmp != NULL && strlen(tmp) < 32 ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/state.db", f->dir);
	f->options.path = f->path;
	f->options.sync = STORE_SYNC_FULL;
	f->options.busy_timeout_ms = 1000;
	f->base = event_base_new();
	if (f->base == NULL || store_open("sqlite", &f->options, &f->store, err,
	    sizeof err) != STORE_OK)
		return -1;
	f->writer = store_writer_start(f->base, f->store, STORE_WRITER_GROUP_COMMIT, err,
	    sizeof err);
	if (f->writer == NULL)
		return -1;
	f->config.events_max_batch = 10;
	f->ack = 1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char path[160];

	if (f->http != NULL)
		source_http_ops.stop(source_http_source(f->http));
	store_writer_stop(f->writer);
	store_close(f->store);
	event_base_free(f->base);
	snprintf(path, sizeof path, "%s-wal", f->path);
	unlink(path);
	snprintf(path, sizeof path, "%s-shm", f->path);
	unlink(path);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Take an event as the router does (moving it out), and ack it if asked to. */
static int
sink_handle(void *arg, struct room_event *event, source_ack_fn *ack, void *ctx)
{
	struct fixture *f = arg;
	struct handled *h;

	assert_true(f->count < HANDLED_MAX);
	h = &f->handled[f->count++];
	h->type = event->type;
	snprintf(h->room, sizeof h->room, "%s", event->room != NULL ? event->room : "");
	snprintf(h->id, sizeof h->id, "%s", event->id != NULL ? event->id : "");
	snprintf(h->client_id, sizeof h->client_id, "%s",
	    event->client_id != NULL ? event->client_id : "");
	snprintf(h->text, sizeof h->text, "%s", event->text != NULL ? event->text : "");
	h->redelivered = event->redelivered;
	room_event_free(event);
	memset(event, 0, sizeof *event);
	if (f->ack)
		ack(ctx);
	return SOURCE_OK;
}

static void
start(struct fixture *f)
{
	f->sink.handle = sink_handle;
	f->sink.arg = f;
	f->http = source_http_start(f->base, &f->config, f->store, f->writer, &f->sink);
	assert_non_null(f->http);
}

static void
stop(struct fixture *f)
{
	source_http_ops.stop(source_http_source(f->http));
	f->http = NULL;
}

/* Run the loop until *done, or fail after 5 s. */
static void
run_until(struct fixture *f, const int *done)
{
	int64_t deadline = clock_monotonic_ms() + 5000;

	while (!*done) {
		assert_true(clock_monotonic_ms() < deadline);
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

/* Run the loop until the outbox holds n rows (the writer deletes behind). */
static void
run_until_rows(struct fixture *f, size_t n)
{
	int64_t deadline = clock_monotonic_ms() + 5000;
	struct outbox_entry *rows;
	size_t count;

	for (;;) {
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		assert_int_equal(store_outbox_load(f->store, &rows, &count), STORE_OK);
		store_outbox_free(rows, count);
		if (count == n)
			return;
		assert_true(clock_monotonic_ms() < deadline);
		usleep(1000);
	}
}

static void
record_answer(const struct source_http_answer *answer, void *arg)
{
	struct answered *a = arg;
	char *skipped = answer->skipped != NULL ? json_dumps(answer->skipped,
	    JSON_COMPACT) : NULL;

	a->count++;
	a->result = answer->result;
	a->accepted = answer->accepted;
	snprintf(a->skipped, sizeof a->skipped, "%s", skipped != NULL ? skipped : "");
	snprintf(a->field, sizeof a->field, "%s", answer->field != NULL ? answer->field : "");
	snprintf(a->message, sizeof a->message, "%s",
	    answer->message != NULL ? answer->message : "");
	free(skipped);
}

/* Headers of a request, from a NULL-terminated list of name, value pairs. */
static const char *
header_from_list(const char *name, void *arg)
{
	const char *const *list = arg;

	for (; list[0] != NULL; list += 2) {
		if (strcmp(list[0], name) == 0)
			return list[1];
	}
	return NULL;
}

/* Ably's outbox form of ABLY_BODY posted as application/json. */
static char *
ably_outbox_form(void)
{
	char *b64 = base64_encode(ABLY_BODY, strlen(ABLY_BODY)), *form;

	assert_true(asprintf(&form, "{\"headers\":{\"content-type\":\"application/json\"},"
	    "\"body\":\"%s\"}", b64) > 0);
	free(b64);
	return form;
}

static void
assert_handled(const struct handled *h, const char *room, const char *id,
    const char *client_id, const char *text, int redelivered)
{
	assert_int_equal(h->type, EVENT_MESSAGE);
	assert_string_equal(h->room, room);
	assert_string_equal(h->id, id);
	assert_string_equal(h->client_id, client_id);
	assert_string_equal(h->text, text);
	assert_int_equal(h->redelivered, redelivered);
}

/*
 * The row's kind, not its body, picks the reader: an Ably row goes through the Ably
 * translation, an events row through the events parser, and a body of the other kind
 * is read by neither (dropped, not handed).
 */
static void
test_outbox_kind_drives_replay(void **state)
{
	struct fixture *f = *state;
	char *ably = ably_outbox_form();
	const char *events = "{\"events\":[" EVENT_M1 "]}";
	const char *bodies[4] = { events, ably, ably, events };
	const enum store_outbox_kind kinds[4] = {
		STORE_OUTBOX_EVENTS, STORE_OUTBOX_ABLY, STORE_OUTBOX_EVENTS, STORE_OUTBOX_ABLY,
	};
	int64_t ids[4];

	assert_int_equal(store_outbox_add(f->store, kinds, bodies, 4, 1, ids), STORE_OK);
	start(f);
	/* Every row leaves the outbox: those read once acknowledged, the others at once. */
	run_until_rows(f, 0);
	assert_int_equal(f->count, 2);
	assert_handled(&f->handled[0], "r1", "m1", "alice", "hi", 1);
	assert_handled(&f->handled[1], "r2", "s2", "bob", "from ably", 1);
	free(ably);
}

/*
 * A post is answered once committed; the outbox keeps events as the kept events
 * (the skipped one left out) and Ably webhooks as headers and base64 body, each with
 * its kind, until their events are acknowledged; a restart hands them again.
 */
static void
test_posted_batches_are_kept_with_their_kind_and_replayed(void **state)
{
	struct fixture *f = *state;
	const char *events = "{\"events\":[" EVENT_M1 ",{\"type\":\"message\",\"room\":"
	    "\"r1\",\"id\":\"m9\"}]}";
	const char *headers[] = { "content-type", "application/json", NULL };
	struct answered events_answer = { 0 }, ably_answer = { 0 };
	struct outbox_entry *rows;
	char *ably = ably_outbox_form();
	size_t n;

	f->ack = 0;
	start(f);
	source_http_post_events(f->http, events, strlen(events), record_answer,
	    &events_answer);
	source_http_post_ably(f->http, ABLY_BODY, strlen(ABLY_BODY), header_from_list,
	    (void *)headers, record_answer, &ably_answer);
	assert_int_equal(events_answer.count, 0);	/* not before the commit */
	run_until(f, &ably_answer.count);
	assert_int_equal(events_answer.count, 1);
	assert_int_equal(events_answer.result, SOURCE_HTTP_ACCEPTED);
	assert_int_equal(events_answer.accepted, 1);
	assert_string_equal(events_answer.skipped,
	    "[{\"index\":1,\"reason\":\"client_id: is required\"}]");
	assert_int_equal(ably_answer.count, 1);
	assert_int_equal(ably_answer.result, SOURCE_HTTP_ACCEPTED);
	assert_int_equal(ably_answer.accepted, 1);
	assert_string_equal(ably_answer.skipped, "{}");

	assert_int_equal(store_outbox_load(f->store, &rows, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(rows[0].kind, STORE_OUTBOX_EVENTS);
	assert_string_equal(rows[0].body, "{\"events\":[" EVENT_M1 "]}");
	assert_int_equal(rows[1].kind, STORE_OUTBOX_ABLY);
	assert_string_equal(rows[1].body, ably);
	store_outbox_free(rows, n);
	assert_int_equal(f->count, 2);
	assert_handled(&f->handled[0], "r1", "m1", "alice", "hi", 0);
	assert_handled(&f->handled[1], "r2", "s2", "bob", "from ably", 0);

	/* Not acknowledged: the next start hands both again, each read by its kind. */
	stop(f);
	f->count = 0;
	f->ack = 1;
	start(f);
	run_until_rows(f, 0);
	assert_int_equal(f->count, 2);
	assert_handled(&f->handled[0], "r1", "m1", "alice", "hi", 1);
	assert_handled(&f->handled[1], "r2", "s2", "bob", "from ably", 1);
	free(ably);
}

/* What is refused is answered before the post returns, and nothing is kept. */
static void
test_refused_posts_are_answered_at_once_and_keep_nothing(void **state)
{
	struct fixture *f = *state;
	const char *msgpack[] = { "content-type", "application/x-msgpack", NULL };
	const char *bad_header[] = { "content-type", "application/json",
	    "x-ably-envelope-channel", "r\xff", NULL };
	struct answered a = { 0 };
	struct outbox_entry *rows;
	size_t n;

	start(f);
	source_http_post_events(f->http, "{\"events\":", 10, record_answer, &a);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.result, SOURCE_HTTP_EJSON);
	assert_string_equal(a.message, "request body is not valid JSON: unexpected token "
	    "near end of file at line 1, column 10");
	memset(&a, 0, sizeof a);
	source_http_post_events(f->http, "{\"events\":[],\"x\":1}", 19, record_answer, &a);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.result, SOURCE_HTTP_EINVALID);
	assert_string_equal(a.field, "x");
	memset(&a, 0, sizeof a);
	source_http_post_ably(f->http, "\x81", 1, header_from_list, (void *)msgpack,
	    record_answer, &a);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.result, SOURCE_HTTP_EMEDIATYPE);
	assert_string_equal(a.message, "msgpack is not supported; configure the rule for JSON");
	memset(&a, 0, sizeof a);
	source_http_post_ably(f->http, "hello", 5, header_from_list, (void *)bad_header,
	    record_answer, &a);
	assert_int_equal(a.count, 1);
	assert_int_equal(a.result, SOURCE_HTTP_EINVALID);
	assert_string_equal(a.field, "x-ably-envelope-channel");
	assert_string_equal(a.message, "x-ably-envelope-channel: must be UTF-8");
	assert_int_equal(store_outbox_load(f->store, &rows, &n), STORE_OK);
	assert_int_equal(n, 0);
	store_outbox_free(rows, n);
	assert_int_equal(f->count, 0);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_outbox_kind_drives_replay),
		TEST(test_posted_batches_are_kept_with_their_kind_and_replayed),
		TEST(test_refused_posts_are_answered_at_once_and_keep_nothing),
	};

	return cmocka_run_group_tests_name("source_http", tests, NULL, NULL);
}
