/*
 * Tests for dispatch.c over the real delivery layer with a fake provider that keeps
 * what it is sent: one delivery per device with the recipient's badge, the notified
 * devices reported, trackers released when the last delivery ends (abandoned at
 * shutdown), and edits and deletions of a message on its way.
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

#include "clock.h"
#include "delivery.h"
#include "dispatch.h"
#include "model.h"
#include "notification.h"
#include "notify_text.h"
#include "tracker.h"
#include "xmalloc.h"

#define NOW INT64_C(1700000000000)

struct fixture {
	struct event_base *base;
	struct delivery_layer *delivery;
	struct dispatch *dispatch;
	struct delivery *taken[16];	/* what the provider was sent */
	provider_done_fn *done_fn[16];	/* and how to tell the layer it is done */
	void *done_arg[16];
	size_t taken_count;
	char marks[256];		/* "room/message/device;" as reported */
	int acks;
	int done;
};

static struct fixture *current;

/* A provider that keeps what it is sent, to complete it when the test says. */
static int
fake_send(struct provider *provider, struct delivery *d, provider_done_fn *done, void *arg)
{
	current->done_fn[current->taken_count] = done;
	current->done_arg[current->taken_count] = arg;
	current->taken[current->taken_count++] = d;
	return PROVIDER_OK;
}

static const struct provider_ops fake_ops = { .name = "fake", .send = fake_send };

static void
on_sent(const char *room, const char *message_id, const char *device_id, void *arg)
{
	struct fixture *f = arg;
	size_t len = strlen(f->marks);

	snprintf(f->marks + len, sizeof f->marks - len, "%s/%s/%s;", room, message_id,
	    device_id);
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
	struct fixture *f = xcalloc(1, sizeof *f);
	struct delivery_options options = { .max_attempts = 3, .retry_initial_ms = 60000,
		.retry_max_ms = 60000, .max_age_ms = 3600000, .queue_size = 1000 };

	current = f;
	f->base = event_base_new();
	assert_non_null(f->base);
	f->delivery = delivery_layer_new(f->base, NULL, NULL, &fake_ops, NULL, &fake_ops, NULL,
	    NULL, &options);
	f->dispatch = dispatch_new(f->delivery, on_sent, f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	delivery_layer_free(f->delivery);
	dispatch_free(f->dispatch);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* count devices of client, succeeded just now (no success to write to a store). */
static struct device_target **
devices(const char *client, size_t count)
{
	struct device_target **t = xcalloc(count, sizeof *t);
	char id[64];

	for (size_t i = 0; i < count; i++) {
		snprintf(id, sizeof id, "%s-d%zu", client, i + 1);
		t[i] = model_target_new(id, client, id, "app", i % 2 == 0 ?
		    DEVICE_PLATFORM_APNS : DEVICE_PLATFORM_FCM, DEVICE_ENVIRONMENT_PRODUCTION,
		    NOW, clock_now_ms());
	}
	return t;
}

/* The deliveries go to the provider. */
static void
pump(struct fixture *f)
{
	assert_true(event_base_loop(f->base, EVLOOP_NONBLOCK) >= 0);
}

static void
complete(struct delivery *d, enum provider_verdict verdict)
{
	struct provider_result result;

	memset(&result, 0, sizeof result);
	result.verdict = verdict;
	result.status = verdict == PROVIDER_SENT ? 200 : 400;
	for (size_t i = 0; i < current->taken_count; i++) {
		if (current->taken[i] == d) {
			current->done_fn[i](d, &result, current->done_arg[i]);
			return;
		}
	}
	fail_msg("the provider was not sent this delivery");
}

/* The message m1 of r1 from alice, sent at once: its shared content. */
static struct dispatch_message *
message(struct fixture *f, const char *text)
{
	struct notify_message m = { "r1", "m1", "alice", NULL, NULL, text, NULL };
	struct notification n;

	assert_int_equal(notify_text_build(&m, 1, -1, &n), NOTIFY_TEXT_OK);
	return dispatch_message_new(f->dispatch, &m, &n);
}

static void
assert_stats(struct fixture *f, uint64_t notifications, size_t messages)
{
	struct dispatch_stats stats;

	dispatch_get_stats(f->dispatch, &stats);
	assert_int_equal(stats.notifications, notifications);
	assert_int_equal(stats.messages, messages);
}

static void
test_dispatch_message_goes_to_each_device_with_its_recipients_badge(void **state)
{
	struct fixture *f = *state;
	struct dispatch_message *m = message(f, "hello");
	struct tracker *t = tracker_new(on_ack, f, on_done, f);

	dispatch_message_send(m, t, devices("bob", 2), 2, 3, NOW);
	dispatch_message_send(m, t, devices("carol", 1), 1, 7, NOW);
	tracker_release(t);
	assert_stats(f, 2, 1);
	pump(f);
	assert_int_equal(f->taken_count, 3);
	assert_string_equal(f->taken[0]->device_id, "bob-d1");
	assert_int_equal(f->taken[0]->badge, 3);
	assert_string_equal(f->taken[1]->device_id, "carol-d1");
	assert_int_equal(f->taken[1]->badge, 7);
	assert_string_equal(f->taken[2]->device_id, "bob-d2");
	assert_int_equal(f->taken[2]->badge, 3);
	/* One content for every recipient, its badge spliced in per delivery. */
	assert_ptr_equal(f->taken[0]->content, f->taken[1]->content);
	assert_string_equal(f->taken[0]->content->notification.body, "alice: hello");
	complete(f->taken[0], PROVIDER_SENT);
	complete(f->taken[1], PROVIDER_REJECTED);
	/* Only devices sent the message are marked; bob's send still has a delivery. */
	assert_string_equal(f->marks, "r1/m1/bob-d1;");
	assert_int_equal(f->acks, 0);
	complete(f->taken[2], PROVIDER_SENT);
	assert_string_equal(f->marks, "r1/m1/bob-d1;r1/m1/bob-d2;");
	assert_int_equal(f->acks, 1);
	/* The router still holds the message: it is on its way until released. */
	assert_stats(f, 2, 1);
	dispatch_message_release(m);
	assert_stats(f, 2, 0);
}

static void
test_dispatch_deletion_cancels_what_has_not_left(void **state)
{
	struct fixture *f = *state;
	struct dispatch_message *m = message(f, "oops");
	struct tracker *t = tracker_new(on_ack, f, on_done, f);
	size_t cancelled;

	dispatch_message_send(m, t, devices("bob", 2), 2, 1, NOW);
	tracker_release(t);
	dispatch_message_release(m);
	/* Nothing has left yet: both deliveries fail, the send ends, the event is done. */
	assert_int_equal(dispatch_cancel(f->dispatch, "r1", "m1", "deleted", &cancelled),
	    DISPATCH_OK);
	assert_int_equal(cancelled, 2);
	assert_int_equal(f->acks, 1);
	assert_string_equal(f->marks, "");
	assert_stats(f, 1, 0);
	pump(f);
	assert_int_equal(f->taken_count, 0);
	/* Gone now; and other messages were never here. */
	assert_int_equal(dispatch_cancel(f->dispatch, "r1", "m1", "deleted", &cancelled),
	    DISPATCH_ENOTFOUND);
	assert_int_equal(cancelled, 0);
	assert_int_equal(dispatch_cancel(f->dispatch, "r2", "m1", "deleted", &cancelled),
	    DISPATCH_ENOTFOUND);
}

static void
test_dispatch_edit_changes_the_text_and_keeps_the_sender(void **state)
{
	struct fixture *f = *state;
	struct dispatch_message *m = message(f, "teh typo");
	struct tracker *t = tracker_new(on_ack, f, on_done, f);
	struct notify_message edit = { "r1", "m1", "", NULL, NULL, "the typo", NULL };
	struct notify_message other = { "r1", "m2", "", NULL, NULL, "x", NULL };

	dispatch_message_send(m, t, devices("bob", 1), 1, 1, NOW);
	tracker_release(t);
	/* An edit event names no sender: the message keeps alice. */
	assert_int_equal(dispatch_edit(f->dispatch, &edit), DISPATCH_OK);
	assert_int_equal(dispatch_edit(f->dispatch, &other), DISPATCH_ENOTFOUND);
	pump(f);
	assert_int_equal(f->taken_count, 1);
	assert_string_equal(f->taken[0]->content->notification.body, "alice: the typo");
	complete(f->taken[0], PROVIDER_SENT);
	dispatch_message_release(m);
	assert_int_equal(f->acks, 1);
}

static void
test_dispatch_batch_marks_every_message_and_releases_every_tracker(void **state)
{
	struct fixture *f = *state;
	struct notify_message latest = { "r1", "m2", "alice", NULL, NULL, "second", NULL };
	struct notification n;
	char **ids = xcalloc(2, sizeof *ids);
	struct tracker **trackers = xcalloc(2, sizeof *trackers);

	ids[0] = xstrdup("m1");
	ids[1] = xstrdup("m2");
	trackers[0] = tracker_new(on_ack, f, on_done, f);
	trackers[1] = tracker_new(on_ack, f, on_done, f);
	assert_int_equal(notify_text_build(&latest, 2, 5, &n), NOTIFY_TEXT_OK);
	dispatch_batch_send(f->dispatch, "r1", &n, ids, trackers, 2, devices("bob", 1), 1, NOW);
	assert_stats(f, 1, 0);
	pump(f);
	assert_int_equal(f->taken_count, 1);
	assert_string_equal(f->taken[0]->content->notification.body,
	    "2 new messages: alice: second");
	assert_int_equal(f->taken[0]->content->notification.badge, 5);
	assert_int_equal(f->taken[0]->badge, -1);
	complete(f->taken[0], PROVIDER_SENT);
	assert_string_equal(f->marks, "r1/m1/bob-d1;r1/m2/bob-d1;");
	assert_int_equal(f->acks, 2);
	/* A coalesced notification is no message on its way: edits do not reach it. */
	assert_int_equal(dispatch_edit(f->dispatch, &latest), DISPATCH_ENOTFOUND);
}

static void
test_dispatch_send_without_devices_ends_at_once(void **state)
{
	struct fixture *f = *state;
	struct dispatch_message *m = message(f, "nobody home");
	struct tracker *t = tracker_new(on_ack, f, on_done, f);

	dispatch_message_send(m, t, xcalloc(1, sizeof(struct device_target *)), 0, 1, NOW);
	tracker_release(t);
	assert_int_equal(f->acks, 1);
	assert_stats(f, 1, 1);
	dispatch_message_release(m);
	assert_stats(f, 1, 0);
}

static void
test_dispatch_delivery_dropped_at_shutdown_abandons_the_event(void **state)
{
	struct fixture *f = *state;
	struct dispatch_message *m = message(f, "late");
	struct tracker *t = tracker_new(on_ack, f, on_done, f);

	dispatch_message_send(m, t, devices("bob", 1), 1, 1, NOW);
	tracker_release(t);
	dispatch_message_release(m);
	/* Still queued when the layer shuts down: not acknowledged, handed again later. */
	delivery_stop(f->delivery);
	delivery_layer_free(f->delivery);
	f->delivery = NULL;
	assert_int_equal(f->done, 1);
	assert_int_equal(f->acks, 0);
	assert_stats(f, 1, 0);
}

int
main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		TEST(test_dispatch_message_goes_to_each_device_with_its_recipients_badge),
		TEST(test_dispatch_deletion_cancels_what_has_not_left),
		TEST(test_dispatch_edit_changes_the_text_and_keeps_the_sender),
		TEST(test_dispatch_batch_marks_every_message_and_releases_every_tracker),
		TEST(test_dispatch_send_without_devices_ends_at_once),
		TEST(test_dispatch_delivery_dropped_at_shutdown_abandons_the_event),
	};

	return cmocka_run_group_tests_name("dispatch", tests, NULL, NULL);
}
