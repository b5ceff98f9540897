/*
 * One room event as JSON text (a Redis Pub/Sub or Streams payload): the fast
 * scanner must give exactly what the generic jansson path gives, or defer with
 * nothing allocated; the combined path must too. What an event keeps and every
 * reason written must be valid UTF-8.
 */
#include "autoconf.h"

#include "event.h"
#include "fuzz.h"

/* Rooms a source may hand over with the text: none, and a channel name. */
static const char *const rooms[] = { NULL, "from-channel" };

/* One path's verdict on a text. */
struct verdict {
	int rc;
	char err[EVENT_REASON_MAX];
	struct room_event ev;
};

typedef int (*parse_fn)(const char *, size_t, const char *, struct room_event *, char *,
    size_t);

static void
run(parse_fn parse, const char *text, size_t len, const char *room, struct verdict *v)
{
	memset(v->err, '#', sizeof v->err - 1);
	v->err[sizeof v->err - 1] = '\0';
	memset(&v->ev, 0xa5, sizeof v->ev);
	v->rc = parse(text, len, room, &v->ev, v->err, sizeof v->err);
}

static void
check_same_ids(const char *what, char *const *a, size_t a_count, char *const *b,
    size_t b_count)
{
	if (a_count != b_count || (a == NULL) != (b == NULL))
		fuzz_fail("%s: %zu and %zu ids", what, a_count, b_count);
	for (size_t i = 0; i < a_count; i++)
		fuzz_check_same(what, a[i], b[i]);
}

/* Abort unless two events are the same, field by field. */
static void
check_same_event(const struct room_event *a, const struct room_event *b)
{
	if (a->type != b->type)
		fuzz_fail("type differs: %d and %d", (int)a->type, (int)b->type);
	fuzz_check_same("room", a->room, b->room);
	fuzz_check_same("id", a->id, b->id);
	fuzz_check_same("client_id", a->client_id, b->client_id);
	fuzz_check_same("connection_id", a->connection_id, b->connection_id);
	fuzz_check_same("text", a->text, b->text);
	if (a->ts != b->ts)
		fuzz_fail("ts differs: %lld and %lld", (long long)a->ts, (long long)b->ts);
	fuzz_check_same("room_name", a->room_name, b->room_name);
	fuzz_check_same("sender_name", a->sender_name, b->sender_name);
	check_same_ids("mentions", a->mentions, a->mention_count, b->mentions, b->mention_count);
	if ((a->push == NULL) != (b->push == NULL) ||
	    (a->push != NULL && !json_equal(a->push, b->push)))
		fuzz_fail("push differs");
	if (a->push_skip != b->push_skip)
		fuzz_fail("push_skip differs");
	check_same_ids("present", a->present, a->present_count, b->present, b->present_count);
	fuzz_check_same("up_to", a->up_to, b->up_to);
	if (a->redelivered != b->redelivered)
		fuzz_fail("redelivered differs");
}

/* Abort unless an event holds only text fit for JSON and logs. */
static void
check_event_text(const struct room_event *ev)
{
	fuzz_check_utf8("room", ev->room);
	fuzz_check_utf8("id", ev->id);
	fuzz_check_utf8("client_id", ev->client_id);
	fuzz_check_utf8("connection_id", ev->connection_id);
	fuzz_check_utf8("text", ev->text);
	fuzz_check_utf8("room_name", ev->room_name);
	fuzz_check_utf8("sender_name", ev->sender_name);
	fuzz_check_utf8("up_to", ev->up_to);
	for (size_t i = 0; i < ev->mention_count; i++)
		fuzz_check_utf8("mention", ev->mentions[i]);
	for (size_t i = 0; i < ev->present_count; i++)
		fuzz_check_utf8("present", ev->present[i]);
	fuzz_check_json("push", ev->push);
	if (ev->text != NULL && strlen(ev->text) > EVENT_TEXT_MAX)
		fuzz_fail("text longer than EVENT_TEXT_MAX");
}

/* Abort unless got is the reference verdict: same code, reason and event. */
static void
check_same_verdict(const struct verdict *want, const struct verdict *got)
{
	if (got->rc != want->rc || strcmp(got->err, want->err) != 0)
		fuzz_fail("%d '%s', generic %d '%s'", got->rc, got->err, want->rc, want->err);
	check_same_event(&want->ev, &got->ev);
}

/* Abort unless a failed parse left the event empty. */
static void
check_empty(const struct room_event *ev)
{
	struct room_event zero;

	memset(&zero, 0, sizeof zero);
	if (memcmp(ev, &zero, sizeof zero) != 0)
		fuzz_fail("a refused event is not left empty");
}

static void
check_text(const char *text, size_t len, const char *room)
{
	struct verdict generic, fast, combined;

	run(room_event_parse_text_generic, text, len, room, &generic);
	if (generic.rc != EVENT_OK && generic.rc != EVENT_EMALFORMED &&
	    generic.rc != EVENT_EUNKNOWN)
		fuzz_fail("generic path returned %d", generic.rc);
	if (generic.rc == EVENT_OK)
		check_event_text(&generic.ev);
	else {
		check_empty(&generic.ev);
		fuzz_check_utf8("reason", generic.err);
	}
	run(room_event_parse_text_fast, text, len, room, &fast);
	if (fast.rc != EVENT_FAST_DEFERRED)
		check_same_verdict(&generic, &fast);
	else
		check_empty(&fast.ev);
	run(room_event_parse_text, text, len, room, &combined);
	check_same_verdict(&generic, &combined);
	room_event_free(&generic.ev);
	if (fast.rc != EVENT_FAST_DEFERRED)
		room_event_free(&fast.ev);
	room_event_free(&combined.ev);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so that reading past the end is caught. */
	char *text = malloc(size > 0 ? size : 1);

	if (text == NULL)
		abort();
	memcpy(text, data, size);
	for (size_t i = 0; i < sizeof rooms / sizeof rooms[0]; i++)
		check_text(text, size, rooms[i]);
	free(text);
	return 0;
}
