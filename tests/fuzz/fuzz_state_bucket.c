/*
 * A held message as the redis state reads it back from a bucket (state_bucket.h):
 * outside input, since anything with access to Redis may have written it.
 * state_bucket_parse refuses with a UTF-8 reason and nothing allocated, or accepts
 * an entry whose fields hold to the event limits (ids valid, strings UTF-8 within
 * their lengths, push an object within the push limits, ts not negative); what it accepted encodes
 * back (state_bucket_encode, the order put first as the script does) to an entry that
 * reads again the same, and makes a notification or is refused by notify_text.
 */
#include "autoconf.h"

#include "event.h"
#include "fuzz.h"
#include "model.h"
#include "notification.h"
#include "notify_text.h"
#include "state_bucket.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

/* A string field within max bytes, UTF-8 (NULL is fine when optional). */
static void
check_field(const char *what, const char *s, size_t max, int required)
{
	if (s == NULL) {
		if (required)
			fuzz_fail("%s: accepted without it", what);
		return;
	}
	if (strlen(s) > max)
		fuzz_fail("%s: %zu bytes accepted, more than %zu", what, strlen(s), max);
	fuzz_check_utf8(what, s);
}

static void
check_same_json(const char *what, const json_t *a, const json_t *b)
{
	if ((a == NULL) != (b == NULL) || (a != NULL && !json_equal(a, b)))
		fuzz_fail("%s: not the same after a round trip", what);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state_held h, again;
	struct notify_message m;
	struct notification n;
	struct model_error merr;
	char err[160], *text, *with_order;
	size_t len;

	err[0] = '\0';
	if (state_bucket_parse((const char *)data, size, &h, err, sizeof err) != 0) {
		if (h.id != NULL || h.sender != NULL || h.push != NULL)
			fuzz_fail("refused, but something was kept");
		if (err[0] == '\0')
			fuzz_fail("refused without a reason");
		fuzz_check_utf8("reason", err);
		return 0;
	}
	if (h.order < 1)
		fuzz_fail("order %lld accepted", (long long)h.order);
	if (model_validate_id(h.id, "id", &merr) != 0)
		fuzz_fail("id accepted: %s", merr.message);
	check_field("sender", h.sender, MODEL_ID_MAX, 1);
	check_field("sender_name", h.sender_name, EVENT_NAME_MAX, 0);
	check_field("room_name", h.room_name, EVENT_NAME_MAX, 0);
	check_field("text", h.text, EVENT_TEXT_MAX, 0);
	if (h.push != NULL) {
		if (!json_is_object(h.push))
			fuzz_fail("push accepted that is not an object");
		if (room_event_check_push_limits(h.push, "push", err, sizeof err) != 0)
			fuzz_fail("push accepted over its limits: %s", err);
		fuzz_check_json("push", h.push);
	}

	/* Written again as the state writes it, it reads the same. */
	state_held_message(&h, "room-1", &m);
	if ((text = state_bucket_encode(&m, h.ts)) == NULL)
		fuzz_fail("an accepted entry does not encode");
	len = strlen(text);
	if (len < 2 || text[0] != '{')
		fuzz_fail("not an object: %s", text);
	with_order = malloc(len + 32);
	if (with_order == NULL)
		abort();
	snprintf(with_order, len + 32, "{\"n\":%lld,%s", (long long)h.order, text + 1);
	if (state_bucket_parse(with_order, strlen(with_order), &again, err, sizeof err) != 0)
		fuzz_fail("its own entry is refused: %s (%s)", err, with_order);
	if (again.order != h.order || again.ts != h.ts)
		fuzz_fail("order or ts: not the same after a round trip");
	fuzz_check_same("id", h.id, again.id);
	fuzz_check_same("sender", h.sender, again.sender);
	fuzz_check_same("sender_name", h.sender_name, again.sender_name);
	fuzz_check_same("room_name", h.room_name, again.room_name);
	fuzz_check_same("text", h.text, again.text);
	check_same_json("push", h.push, again.push);
	state_held_free(&again);
	free(with_order);
	free(text);

	/* What the batch of it says: a notification, or a refusal, never a crash. */
	if (notify_text_build(&m, 3, 7, &n) == NOTIFY_TEXT_OK) {
		check_field("title", n.title, SIZE_MAX, 0);
		check_field("body", n.body, SIZE_MAX, 0);
		notification_free(&n);
	}
	state_held_free(&h);
	return 0;
}
