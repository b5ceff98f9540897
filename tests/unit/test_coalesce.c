/*
 * Tests for coalesce.c with a fake monotonic clock: windows driven by coalesce_tick
 * (and once by its timer on a real event base), grace holds against a real presence,
 * edits and deletions of what waits, and the trackers each message holds.
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
#include <event2/event.h>

#include "coalesce.h"
#include "model.h"
#include "notification.h"
#include "notify_text.h"
#include "presence.h"
#include "tracker.h"

#define T0 INT64_C(5000000)
#define WINDOW INT64_C(1000)
#define BATCHES_MAX 8

/* What a send callback was handed. */
struct sent {
	char room[32];
	char client[32];
	char ids[128];		/* "m1,m2," */
	char text[64];		/* the latest message's */
	char body[128];		/* the notification notify_text makes of it */
	char devices[64];	/* "d1,d2," */
	size_t count;
};

struct fixture {
	struct event_base *base;
	struct presence *presence;
	struct coalesce *coalesce;
	struct sent sent[BATCHES_MAX];
	size_t batches;
	int take;		/* the callback takes the trackers (and releases them later) */
	struct tracker *taken[16];
	size_t taken_count;
	int acks;		/* events acknowledged */
	int done;		/* trackers gone, acknowledged or not */
};

static int64_t fake_now;

/* The fake monotonic clock of the timer test. */
static int64_t
fake_clock(void)
{
	return fake_now;
}

static void
on_send(struct coalesce_batch *b, void *arg)
{
	struct fixture *f = arg;
	struct sent *s = &f->sent[f->batches++];
	struct notification n;
	size_t len = 0;

	assert_true(f->batches <= BATCHES_MAX);
	snprintf(s->room, sizeof s->room, "%s", b->room);
	snprintf(s->client, sizeof s->client, "%s", b->client);
	snprintf(s->text, sizeof s->text, "%s", b->latest->text);
	s->count = b->count;
	for (size_t i = 0; i < b->count; i++)
		len += snprintf(s->ids + len, sizeof s->ids - len, "%s,", b->message_ids[i]);
	len = 0;
	for (size_t i = 0; i < b->target_count; i++)
		len += snprintf(s->devices + len, sizeof s->devices - len, "%s,",
		    b->targets[i]->device_id);
	assert_int_equal(notify_text_build(b->latest, b->count, -1, &n), NOTIFY_TEXT_OK);
	snprintf(s->body, sizeof s->body, "%s", n.body);
	notification_free(&n);
	if (f->take) {
		/* As dispatch does: the trackers move here, held until the send ends. */
		for (size_t i = 0; i < b->count; i++)
			f->taken[f->taken_count++] = b->trackers[i];
		free(b->trackers);
		b->trackers = NULL;
	}
}

static void
on_ack(void *ctx)
{
	struct fixture *f = ctx;

	f->acks++;
}

static void
on_done(void *arg)
{
	struct fixture *f = arg;

	f->done++;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct presence_options po = { 60000, 0, 0 };
	struct coalesce_options co = { NULL, NULL, WINDOW, NULL, on_send, f };

	if (f == NULL || (f->base = event_base_new()) == NULL)
		return -1;
	f->presence = presence_new(f->base, &po, NULL, NULL, NULL);
	co.presence = f->presence;
	f->coalesce = coalesce_new(&co);
	f->take = 1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	coalesce_free(f->coalesce);
	for (size_t i = 0; i < f->taken_count; i++)
		tracker_release(f->taken[i]);
	presence_free(f->presence);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Two devices for a client: "<client>-<tag>1" and "<client>-<tag>2". */
static struct device_target **
devices(const char *client, const char *tag, size_t *count)
{
	struct device_target **t = calloc(2, sizeof *t);
	char id[64];

	assert_non_null(t);
	for (int i = 0; i < 2; i++) {
		snprintf(id, sizeof id, "%s-%s%d", client, tag, i + 1);
		t[i] = model_target_new(id, client, id, "app", DEVICE_PLATFORM_APNS,
		    DEVICE_ENVIRONMENT_PRODUCTION, 0, 0);
	}
	*count = 2;
	return t;
}

/* Message id from alice in room for client, as the router holds it: its event done. */
static void
add(struct fixture *f, const char *room, const char *client, const char *id,
    const char *text, int window, int64_t now)
{
	struct notify_message m = { room, id, "alice", NULL, NULL, text, NULL };
	struct tracker *t = tracker_new(on_ack, f, on_done, f);
	struct device_target **targets;
	size_t count;

	targets = devices(client, id, &count);
	coalesce_add(f->coalesce, client, &m, t, targets, count, window, now);
	tracker_release(t);
}

static void
assert_pending(struct fixture *f, size_t pending, uint64_t joined)
{
	struct coalesce_stats stats;

	coalesce_get_stats(f->coalesce, &stats);
	assert_int_equal(stats.pending, pending);
	assert_int_equal(stats.joined, joined);
}

static void
test_coalesce_messages_within_the_window_go_as_one_with_count_and_latest_text(void **state)
{
	struct fixture *f = *state;

	add(f, "r1", "bob", "m1", "first", 1, T0);
	add(f, "r1", "bob", "m2", "second", 1, T0 + 300);
	add(f, "r1", "bob", "m3", "third", 1, T0 + 900);
	assert_int_equal(coalesce_waiting(f->coalesce, "r1", "bob"), 3);
	assert_pending(f, 1, 2);
	/* The window runs from the first message. */
	coalesce_tick(f->coalesce, T0 + WINDOW - 1);
	assert_int_equal(f->batches, 0);
	coalesce_tick(f->coalesce, T0 + WINDOW);
	assert_int_equal(f->batches, 1);
	assert_string_equal(f->sent[0].room, "r1");
	assert_string_equal(f->sent[0].client, "bob");
	assert_int_equal(f->sent[0].count, 3);
	assert_string_equal(f->sent[0].ids, "m1,m2,m3,");
	assert_string_equal(f->sent[0].text, "third");
	assert_string_equal(f->sent[0].body, "3 new messages: alice: third");
	/* The latest resolution of bob's devices. */
	assert_string_equal(f->sent[0].devices, "bob-m31,bob-m32,");
	assert_pending(f, 0, 2);
	/* The send holds the events: acknowledged when it lets them go. */
	assert_int_equal(f->acks, 0);
	for (size_t i = 0; i < f->taken_count; i++)
		tracker_release(f->taken[i]);
	f->taken_count = 0;
	assert_int_equal(f->acks, 3);
	/* The next message opens a new window. */
	add(f, "r1", "bob", "m4", "fourth", 1, T0 + WINDOW + 1);
	coalesce_tick(f->coalesce, T0 + 2 * WINDOW);
	assert_int_equal(f->batches, 1);
	coalesce_tick(f->coalesce, T0 + 2 * WINDOW + 1);
	assert_int_equal(f->batches, 2);
	assert_int_equal(f->sent[1].count, 1);
	assert_string_equal(f->sent[1].body, "alice: fourth");
}

static void
test_coalesce_each_recipient_and_room_has_its_own_window(void **state)
{
	struct fixture *f = *state;

	add(f, "r1", "bob", "m1", "to r1", 1, T0);
	add(f, "r1", "carol", "m1", "to r1", 1, T0 + 100);
	add(f, "r2", "bob", "m2", "to r2", 1, T0 + 200);
	assert_pending(f, 3, 0);
	coalesce_tick(f->coalesce, T0 + WINDOW + 100);
	assert_int_equal(f->batches, 2);
	assert_string_equal(f->sent[0].client, "bob");
	assert_string_equal(f->sent[0].room, "r1");
	assert_string_equal(f->sent[1].client, "carol");
	coalesce_tick(f->coalesce, T0 + WINDOW + 200);
	assert_int_equal(f->batches, 3);
	assert_string_equal(f->sent[2].room, "r2");
	assert_string_equal(f->sent[2].body, "alice: to r2");
	assert_pending(f, 0, 0);
}

static void
test_coalesce_grace_hold_is_dropped_when_the_member_returns(void **state)
{
	struct fixture *f = *state;

	presence_enter(f->presence, "r1", "bob", NULL);
	presence_leave(f->presence, "r1", "bob", NULL);
	assert_int_equal(presence_get(f->presence, "r1", "bob"), PRESENCE_GRACE);
	add(f, "r1", "bob", "m1", "while you were out", 0, T0);
	add(f, "r1", "bob", "m2", "still out", 0, T0 + 10);
	/* No window: time alone sends nothing. */
	coalesce_tick(f->coalesce, T0 + 100 * WINDOW);
	assert_int_equal(f->batches, 0);
	assert_int_equal(coalesce_waiting(f->coalesce, "r1", "bob"), 2);
	/* Back within the grace: read, not sent; the events are done. */
	presence_enter(f->presence, "r1", "bob", NULL);
	coalesce_return(f->coalesce, "r1", "bob");
	assert_int_equal(f->batches, 0);
	assert_int_equal(coalesce_waiting(f->coalesce, "r1", "bob"), 0);
	assert_int_equal(f->acks, 2);
	assert_pending(f, 0, 1);
}

static void
test_coalesce_grace_hold_goes_when_the_grace_ends(void **state)
{
	struct fixture *f = *state;

	/* Held while carol was in grace; now it ended (she is away): away sends it. */
	add(f, "r1", "carol", "m1", "held", 0, T0);
	add(f, "r1", "carol", "m2", "held too", 0, T0 + 10);
	coalesce_away(f->coalesce, "r1", "dave");
	assert_int_equal(f->batches, 0);
	coalesce_away(f->coalesce, "r1", "carol");
	assert_int_equal(f->batches, 1);
	assert_string_equal(f->sent[0].body, "2 new messages: alice: held too");
	assert_pending(f, 0, 1);
}

static void
test_coalesce_window_ending_in_grace_waits_for_the_grace(void **state)
{
	struct fixture *f = *state;

	add(f, "r1", "bob", "m1", "hello", 1, T0);
	presence_enter(f->presence, "r1", "bob", NULL);
	presence_leave(f->presence, "r1", "bob", NULL);
	coalesce_tick(f->coalesce, T0 + WINDOW);
	assert_int_equal(f->batches, 0);
	assert_int_equal(coalesce_waiting(f->coalesce, "r1", "bob"), 1);
	/* A later message joins it and opens no second window. */
	add(f, "r1", "bob", "m2", "again", 1, T0 + WINDOW + 1);
	coalesce_tick(f->coalesce, T0 + 3 * WINDOW);
	assert_int_equal(f->batches, 0);
	assert_int_equal(coalesce_waiting(f->coalesce, "r1", "bob"), 2);
	/* Grace still running when presence says so: away waits too. */
	coalesce_away(f->coalesce, "r1", "bob");
	assert_int_equal(f->batches, 0);
	presence_enter(f->presence, "r1", "bob", NULL);
	coalesce_return(f->coalesce, "r1", "bob");
	assert_int_equal(f->acks, 2);
	assert_int_equal(f->batches, 0);
}

static void
test_coalesce_recipient_present_at_the_end_of_the_window_has_read_it(void **state)
{
	struct fixture *f = *state;

	add(f, "r1", "bob", "m1", "hi", 1, T0);
	presence_enter(f->presence, "r1", "bob", NULL);
	coalesce_tick(f->coalesce, T0 + WINDOW);
	assert_int_equal(f->batches, 0);
	assert_int_equal(f->acks, 1);
	assert_pending(f, 0, 0);
}

static void
test_coalesce_send_leaving_the_batch_releases_its_trackers(void **state)
{
	struct fixture *f = *state;

	/* As when the recipient is over their rate: nothing taken, the events are done. */
	f->take = 0;
	add(f, "r1", "bob", "m1", "one", 1, T0);
	add(f, "r1", "bob", "m2", "two", 1, T0 + 1);
	coalesce_tick(f->coalesce, T0 + WINDOW);
	assert_int_equal(f->batches, 1);
	assert_int_equal(f->acks, 2);
	assert_int_equal(f->done, 2);
}

static void
test_coalesce_deletions_and_edits_reach_what_waits(void **state)
{
	struct fixture *f = *state;

	add(f, "r1", "bob", "m1", "typo", 1, T0);
	add(f, "r1", "bob", "m2", "fine", 1, T0 + 1);
	add(f, "r1", "carol", "m1", "typo", 1, T0 + 2);
	add(f, "r2", "bob", "m1", "other room", 1, T0 + 3);
	/* m1 of r1 goes: from bob's bucket, and carol's, which is then empty. */
	assert_int_equal(coalesce_change(f->coalesce, "r1", "m1", 1, NULL), 2);
	assert_int_equal(f->acks, 2);
	assert_int_equal(coalesce_waiting(f->coalesce, "r1", "bob"), 1);
	assert_int_equal(coalesce_waiting(f->coalesce, "r1", "carol"), 0);
	assert_int_equal(coalesce_waiting(f->coalesce, "r2", "bob"), 1);
	/* m2 is edited before it leaves; an edit without text changes nothing. */
	assert_int_equal(coalesce_change(f->coalesce, "r1", "m2", 0, "fine, edited"), 0);
	assert_int_equal(coalesce_change(f->coalesce, "r2", "m1", 0, NULL), 0);
	coalesce_tick(f->coalesce, T0 + WINDOW + 3);
	assert_int_equal(f->batches, 2);
	assert_string_equal(f->sent[0].ids, "m2,");
	assert_string_equal(f->sent[0].body, "alice: fine, edited");
	assert_string_equal(f->sent[1].room, "r2");
	assert_string_equal(f->sent[1].body, "alice: other room");
}

static void
test_coalesce_clear_abandons_what_waits(void **state)
{
	struct fixture *f = *state;

	add(f, "r1", "bob", "m1", "one", 1, T0);
	add(f, "r1", "carol", "m1", "one", 0, T0);
	coalesce_clear(f->coalesce);
	/* Not acknowledged: the sources hand the events again after a restart. */
	assert_int_equal(f->acks, 0);
	assert_int_equal(f->done, 2);
	assert_pending(f, 0, 0);
	coalesce_tick(f->coalesce, T0 + WINDOW);
	assert_int_equal(f->batches, 0);
}

static void
test_coalesce_timer_fires_by_the_clock_in_its_options(void **state)
{
	struct fixture *f = *state;
	struct coalesce_options co = { f->base, f->presence, 20, fake_clock, on_send, f };
	struct coalesce *c = coalesce_new(&co);
	struct notify_message m = { "r1", "m1", "alice", NULL, NULL, "timed", NULL };
	struct tracker *t = tracker_new(on_ack, f, on_done, f);
	struct device_target **targets;
	size_t count;

	fake_now = 1000;
	targets = devices("bob", "x", &count);
	coalesce_add(c, "bob", &m, t, targets, count, 1, fake_now);
	tracker_release(t);
	/* The timer fires after 20 ms, but the clock says 10: it waits for the rest. */
	fake_now = 1010;
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(f->batches, 0);
	fake_now = 1020;
	assert_int_equal(event_base_loop(f->base, EVLOOP_ONCE), 0);
	assert_int_equal(f->batches, 1);
	assert_string_equal(f->sent[0].body, "alice: timed");
	coalesce_free(c);
}

int
main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_coalesce_messages_within_the_window_go_as_one_with_count_and_latest_text),
		TEST(test_coalesce_each_recipient_and_room_has_its_own_window),
		TEST(test_coalesce_grace_hold_is_dropped_when_the_member_returns),
		TEST(test_coalesce_grace_hold_goes_when_the_grace_ends),
		TEST(test_coalesce_window_ending_in_grace_waits_for_the_grace),
		TEST(test_coalesce_recipient_present_at_the_end_of_the_window_has_read_it),
		TEST(test_coalesce_send_leaving_the_batch_releases_its_trackers),
		TEST(test_coalesce_deletions_and_edits_reach_what_waits),
		TEST(test_coalesce_clear_abandons_what_waits),
		TEST(test_coalesce_timer_fires_by_the_clock_in_its_options),
	};

	return cmocka_run_group_tests_name("coalesce", tests, NULL, NULL);
}
