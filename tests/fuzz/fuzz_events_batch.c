/*
 * A POST /v1/events body: the batch reader must either defer with nothing
 * allocated or take a body that the jansson path accepts, deciding every element
 * as room_event_parse() does (same events, same skips, same reasons). Every
 * reason must be valid UTF-8, since it goes into the JSON answer and the log.
 */
#include "autoconf.h"

#include "event.h"
#include "../event_reference.h"
#include "fuzz.h"

/* As [events] max_batch might be: small, so that the limit is reached too. */
#define FUZZ_MAX_EVENTS 8

static void
check_same_ids(const char *what, char *const *a, size_t a_count, char *const *b,
    size_t b_count)
{
	if (a_count != b_count)
		fuzz_fail("%s: %zu and %zu ids", what, a_count, b_count);
	for (size_t i = 0; i < a_count; i++)
		fuzz_check_same(what, a[i], b[i]);
}

/* Abort unless two events are the same, field by field. */
static void
check_same_event(const struct room_event *a, const struct room_event *b)
{
	if (a->type != b->type || a->ts != b->ts || a->push_skip != b->push_skip ||
	    a->redelivered != b->redelivered)
		fuzz_fail("type, ts or flags differ");
	fuzz_check_same("room", a->room, b->room);
	fuzz_check_same("id", a->id, b->id);
	fuzz_check_same("client_id", a->client_id, b->client_id);
	fuzz_check_same("connection_id", a->connection_id, b->connection_id);
	fuzz_check_same("text", a->text, b->text);
	fuzz_check_same("room_name", a->room_name, b->room_name);
	fuzz_check_same("sender_name", a->sender_name, b->sender_name);
	fuzz_check_same("up_to", a->up_to, b->up_to);
	check_same_ids("mentions", a->mentions, a->mention_count, b->mentions, b->mention_count);
	check_same_ids("present", a->present, a->present_count, b->present, b->present_count);
	if ((a->push == NULL) != (b->push == NULL) ||
	    (a->push != NULL && !json_equal(a->push, b->push)))
		fuzz_fail("push differs");
}

/* Abort unless a skip can be listed in the answer as source_http.c lists it. */
static void
check_skip_answer(const struct room_event_skip *skip)
{
	json_t *entry;

	fuzz_check_utf8("reason", skip->reason);
	entry = json_pack("{s:I, s:s}", "index", (json_int_t)skip->index, "reason",
	    skip->reason);
	if (entry == NULL)
		fuzz_fail("skip %zu cannot go into the answer", skip->index);
	json_decref(entry);
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
	struct room_event_batch want, fast, zero;
	char *text = malloc(size > 0 ? size : 1);
	int accepted, rc;

	if (text == NULL)
		abort();
	memcpy(text, data, size);
	memset(&zero, 0, sizeof zero);
	accepted = event_reference_batch(text, size, FUZZ_MAX_EVENTS, &want) == 0;
	for (size_t i = 0; accepted && i < want.skipped_count; i++)
		fuzz_check_utf8("reference reason", want.skipped[i].reason);
	memset(&fast, 0xa5, sizeof fast);
	rc = room_event_parse_batch_fast(text, size, FUZZ_MAX_EVENTS, &fast);
	if (rc == EVENT_FAST_DEFERRED) {
		if (memcmp(&fast, &zero, sizeof zero) != 0)
			fuzz_fail("a deferred batch is not left empty");
	} else {
		if (rc != EVENT_OK)
			fuzz_fail("batch reader returned %d", rc);
		if (!accepted)
			fuzz_fail("the batch reader took a body the jansson path refuses");
		if (fast.events == NULL)
			fuzz_fail("events is NULL");
		if (fast.count != want.count || fast.skipped_count != want.skipped_count)
			fuzz_fail("%zu events, %zu skipped; jansson: %zu, %zu", fast.count,
			    fast.skipped_count, want.count, want.skipped_count);
		for (size_t i = 0; i < want.count; i++)
			check_same_event(&want.events[i], &fast.events[i]);
		for (size_t i = 0; i < want.skipped_count; i++) {
			if (fast.skipped[i].index != want.skipped[i].index)
				fuzz_fail("skip %zu: index %zu, jansson %zu", i,
				    fast.skipped[i].index, want.skipped[i].index);
			fuzz_check_same("reason", fast.skipped[i].reason, want.skipped[i].reason);
			check_skip_answer(&fast.skipped[i]);
		}
		room_event_batch_free(&fast);
	}
	for (size_t i = 0; accepted && i < want.skipped_count; i++)
		check_skip_answer(&want.skipped[i]);
	room_event_batch_free(&want);
	free(text);
	return 0;
}
