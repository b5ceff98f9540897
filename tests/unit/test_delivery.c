/*
 * Tests for delivery.c as a handle: two delivery layers in one process, each with its
 * own providers (a fake that keeps what it is sent, or the log provider), share no
 * queue, no counters and no outcome figures.
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
#include "config.h"
#include "delivery.h"
#include "log.h"
#include "notification.h"
#include "provider.h"
#include "xmalloc.h"

#define SENDS_MAX 32

/* A fake provider: keeps each delivery it is sent with its completion callback. */
struct provider {
	struct delivery *sent[SENDS_MAX];
	const struct push_content *content[SENDS_MAX];	/* sent[i]'s, kept after it is freed */
	provider_done_fn *done[SENDS_MAX];
	void *done_arg[SENDS_MAX];
	size_t count;
	size_t busy_at;			/* answer PROVIDER_EBUSY once count reaches it; 0: never */
};

static int
fake_send(struct provider *p, struct delivery *d, provider_done_fn *done, void *done_arg)
{
	if (p->busy_at > 0 && p->count >= p->busy_at)
		return PROVIDER_EBUSY;
	assert_true(p->count < SENDS_MAX);
	p->sent[p->count] = d;
	p->content[p->count] = d->content;
	p->done[p->count] = done;
	p->done_arg[p->count] = done_arg;
	p->count++;
	return PROVIDER_OK;
}

static const struct provider_ops fake_ops = { .name = "fake", .send = fake_send };

/* What an observer heard of one layer's deliveries. */
struct heard {
	unsigned retrying, sent, failed, abandoned;
	char last_reason[128];
};

static void
observe(struct delivery *d, enum delivery_state state, const char *reason, void *arg)
{
	struct heard *h = arg;

	(void)d;
	switch (state) {
	case DELIVERY_RETRYING: h->retrying++; break;
	case DELIVERY_SENT: h->sent++; break;
	case DELIVERY_FAILED: h->failed++; break;
	case DELIVERY_ABANDONED: h->abandoned++; break;
	default: fail_msg("observer told of state %s", delivery_state_name(state));
	}
	snprintf(h->last_reason, sizeof h->last_reason, "%s", reason != NULL ? reason : "");
}

/* Two layers, A and B, each with a fake provider per platform. */
struct fixture {
	struct event_base *base;
	struct provider apns[2], fcm[2];
	struct delivery_layer *layer[2];
	struct heard heard[2];
	struct push_content *content;
	struct device_target targets[8];
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	struct delivery_options a = { .max_attempts = 3, .retry_initial_ms = 60000,
		.retry_max_ms = 60000, .max_age_ms = 3600000, .queue_size = 10 };
	struct delivery_options b = a;
	struct notification n;

	b.queue_size = 5;
	f->base = event_base_new();
	assert_non_null(f->base);
	f->layer[0] = delivery_layer_new(f->base, NULL, NULL, &fake_ops, &f->apns[0], &fake_ops,
	    &f->fcm[0], NULL, &a);
	f->layer[1] = delivery_layer_new(f->base, NULL, NULL, &fake_ops, &f->apns[1], &fake_ops,
	    &f->fcm[1], NULL, &b);
	notification_init(&n);
	n.body = xstrdup("hello");
	f->content = delivery_content_new(&n, 0);
	for (size_t i = 0; i < 8; i++) {
		f->targets[i].device_id = "device";
		f->targets[i].client_id = "client";
		f->targets[i].token = "00";
		f->targets[i].app_id = i % 2 == 0 ? "com.a" : "proj-b";
		f->targets[i].platform = i % 2 == 0 ? DEVICE_PLATFORM_APNS : DEVICE_PLATFORM_FCM;
		/* A success this recent is not written again: no store is needed. */
		f->targets[i].last_success_at = clock_now_ms();
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	delivery_layer_free(f->layer[0]);
	delivery_layer_free(f->layer[1]);
	delivery_content_unref(f->content);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Submit target i's delivery to layer l. */
static struct delivery *
submit(struct fixture *f, int l, size_t i)
{
	struct delivery *d = delivery_new(f->layer[l], &f->targets[i], f->content, -1,
	    clock_now_ms());

	delivery_submit(d, observe, &f->heard[l], i);
	return d;
}

/* Complete the n-th send a fake provider took, through the callback it was given. */
static void
complete(struct provider *p, size_t n, enum provider_verdict verdict)
{
	struct provider_result result;

	assert_true(n < p->count);
	memset(&result, 0, sizeof result);
	result.verdict = verdict;
	result.status = verdict == PROVIDER_SENT ? 200 : 503;
	snprintf(result.reason, sizeof result.reason, "%s", provider_verdict_name(verdict));
	p->done[n](p->sent[n], &result, p->done_arg[n]);
}

static struct delivery_stats
stats_of(const struct fixture *f, int l)
{
	struct delivery_stats s;

	delivery_get_stats(f->layer[l], &s);
	return s;
}

static uint64_t
outcome_count(const struct fixture *f, int l, enum device_platform platform, const char *app,
    enum delivery_outcome outcome)
{
	const struct delivery_outcome_counts *rows;
	size_t n = delivery_get_outcomes(f->layer[l], &rows);

	for (size_t i = 0; i < n; i++) {
		if (rows[i].platform == platform && strcmp(rows[i].app_id, app) == 0)
			return rows[i].counts[outcome];
	}
	return 0;
}

/*
 * Ready deliveries are served a content at a time, in turn: a message to one device
 * that comes behind a fan-out goes after one more delivery of the fan-out, not after
 * all of it.
 */
static void
test_delivery_a_small_message_is_not_held_behind_a_fan_out(void **state)
{
	struct fixture *f = *state;
	struct provider *apns = &f->apns[0];
	struct push_content *small;
	struct notification n;
	struct delivery *one;
	size_t i, small_at = SENDS_MAX;

	notification_init(&n);
	n.body = xstrdup("to one");
	small = delivery_content_new(&n, 0);
	/* The fan-out: 12 APNs deliveries of f->content; the provider takes 4, then is busy. */
	apns->busy_at = 4;
	for (i = 0; i < 12; i++)
		submit(f, 0, 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(apns->count, 4);
	one = delivery_new(f->layer[0], &f->targets[2], small, -1, clock_now_ms());
	delivery_submit(one, observe, &f->heard[0], 2);
	/* Room again: one more of the fan-out (its turn), then the small message. */
	apns->busy_at = 6;
	complete(apns, 0, PROVIDER_SENT);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(apns->count, 6);
	for (i = 4; i < 6; i++) {
		if (apns->content[i] == small)
			small_at = i;
	}
	assert_int_equal(small_at, 5);
	assert_ptr_equal(apns->content[4], f->content);
	/* Then the rest of the fan-out. */
	apns->busy_at = 0;
	complete(apns, 1, PROVIDER_SENT);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(apns->count, 13);
	for (i = 6; i < 13; i++)
		assert_ptr_equal(apns->content[i], f->content);
	for (i = 2; i < 13; i++)
		complete(apns, i, PROVIDER_SENT);
	assert_int_equal(f->heard[0].sent, 13);
	delivery_content_unref(small);
}

/* Cancelling a content empties its flow and leaves the others' order as it was. */
static void
test_delivery_cancel_takes_a_content_out_of_the_round_robin(void **state)
{
	struct fixture *f = *state;
	struct provider *apns = &f->apns[0];
	struct push_content *other;
	struct notification n;
	size_t i;

	notification_init(&n);
	n.body = xstrdup("other");
	other = delivery_content_new(&n, 0);
	apns->busy_at = 1;
	for (i = 0; i < 3; i++) {
		submit(f, 0, 0);
		delivery_submit(delivery_new(f->layer[0], &f->targets[2], other, -1,
		    clock_now_ms()), observe, &f->heard[0], 2);
	}
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(apns->count, 1);
	/* Two of f->content wait, three of other: cancel other's. */
	assert_int_equal(delivery_cancel_content(f->layer[0], other, "deleted"), 3);
	assert_int_equal(f->heard[0].failed, 3);
	assert_string_equal(f->heard[0].last_reason, "deleted");
	apns->busy_at = 0;
	complete(apns, 0, PROVIDER_SENT);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(apns->count, 3);
	for (i = 0; i < 3; i++)
		assert_ptr_equal(apns->content[i], f->content);
	complete(apns, 1, PROVIDER_SENT);
	complete(apns, 2, PROVIDER_SENT);
	delivery_content_unref(other);
}

static void
test_delivery_two_layers_keep_their_own_queues_and_stats(void **state)
{
	struct fixture *f = *state;
	struct delivery_latency latency;

	submit(f, 0, 0);
	submit(f, 0, 1);
	submit(f, 0, 2);
	submit(f, 1, 3);
	/* Each layer counts its own room against its own queue_size. */
	assert_int_equal(delivery_room(f->layer[0]), 10 - 3);
	assert_int_equal(delivery_room(f->layer[1]), 5 - 1);
	assert_int_equal(stats_of(f, 0).queued, 3);
	assert_int_equal(stats_of(f, 1).queued, 1);

	/* Each pump hands its own queue to its own providers. */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->apns[0].count, 2);
	assert_int_equal(f->fcm[0].count, 1);
	assert_int_equal(f->apns[1].count, 0);
	assert_int_equal(f->fcm[1].count, 1);
	assert_int_equal(stats_of(f, 0).queued, 0);
	assert_int_equal(stats_of(f, 0).in_flight, 3);
	assert_int_equal(stats_of(f, 1).in_flight, 1);

	/* A's completions are A's alone. */
	complete(&f->apns[0], 0, PROVIDER_SENT);
	complete(&f->apns[0], 1, PROVIDER_SENT);
	complete(&f->fcm[0], 0, PROVIDER_REJECTED);
	assert_int_equal(stats_of(f, 0).sent, 2);
	assert_int_equal(stats_of(f, 0).failed, 1);
	assert_int_equal(stats_of(f, 0).in_flight, 0);
	assert_int_equal(stats_of(f, 1).sent, 0);
	assert_int_equal(stats_of(f, 1).failed, 0);
	assert_int_equal(stats_of(f, 1).in_flight, 1);
	assert_int_equal(f->heard[0].sent, 2);
	assert_int_equal(f->heard[0].failed, 1);
	assert_int_equal(f->heard[1].sent + f->heard[1].failed, 0);
	assert_int_equal(outcome_count(f, 0, DEVICE_PLATFORM_APNS, "com.a",
	    DELIVERY_OUTCOME_SENT), 2);
	assert_int_equal(outcome_count(f, 0, DEVICE_PLATFORM_FCM, "proj-b",
	    DELIVERY_OUTCOME_REJECTED), 1);
	assert_int_equal(outcome_count(f, 1, DEVICE_PLATFORM_APNS, "com.a",
	    DELIVERY_OUTCOME_SENT), 0);
	delivery_get_latency(f->layer[1], DEVICE_PLATFORM_APNS, &latency);
	assert_int_equal(latency.count, 0);
	delivery_get_latency(f->layer[0], DEVICE_PLATFORM_APNS, &latency);
	assert_int_equal(latency.count, 2);

	/* B's completion is B's alone. */
	complete(&f->fcm[1], 0, PROVIDER_SENT);
	assert_int_equal(stats_of(f, 1).sent, 1);
	assert_int_equal(stats_of(f, 0).sent, 2);
	assert_int_equal(outcome_count(f, 1, DEVICE_PLATFORM_FCM, "proj-b",
	    DELIVERY_OUTCOME_SENT), 1);
	assert_int_equal(outcome_count(f, 0, DEVICE_PLATFORM_FCM, "proj-b",
	    DELIVERY_OUTCOME_SENT), 0);
	assert_int_equal(delivery_room(f->layer[0]), 10);
	assert_int_equal(delivery_room(f->layer[1]), 5);
}

static void
test_delivery_retry_waits_in_its_own_layer(void **state)
{
	struct fixture *f = *state;

	submit(f, 0, 0);
	submit(f, 1, 2);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	complete(&f->apns[0], 0, PROVIDER_RETRY);
	assert_int_equal(stats_of(f, 0).retrying, 1);
	assert_int_equal(stats_of(f, 0).retries, 1);
	assert_int_equal(stats_of(f, 1).retrying, 0);
	assert_int_equal(stats_of(f, 1).retries, 0);
	assert_int_equal(stats_of(f, 1).in_flight, 1);
	assert_int_equal(f->heard[0].retrying, 1);
	assert_string_equal(f->heard[0].last_reason, "retry");
	assert_int_equal(f->heard[1].retrying, 0);
	assert_int_equal(delivery_room(f->layer[0]), 10 - 1);
	assert_int_equal(delivery_room(f->layer[1]), 5 - 1);
	/* Freeing A abandons what waits in A; B's delivery is still B's. */
	delivery_layer_free(f->layer[0]);
	f->layer[0] = NULL;
	assert_int_equal(f->heard[0].abandoned, 1);
	assert_int_equal(f->heard[1].abandoned, 0);
	complete(&f->apns[1], 0, PROVIDER_SENT);
	assert_int_equal(stats_of(f, 1).sent, 1);
	assert_int_equal(f->heard[1].sent, 1);
}

static void
test_delivery_cancel_and_stop_reach_only_their_own_layer(void **state)
{
	struct fixture *f = *state;

	/* The same content queued in both: a cancel in A leaves B's. */
	submit(f, 0, 0);
	submit(f, 0, 1);
	submit(f, 1, 2);
	assert_int_equal(delivery_cancel_content(f->layer[0], f->content, "deleted"), 2);
	assert_int_equal(f->heard[0].failed, 2);
	assert_string_equal(f->heard[0].last_reason, "deleted");
	assert_int_equal(outcome_count(f, 0, DEVICE_PLATFORM_APNS, "com.a",
	    DELIVERY_OUTCOME_CANCELLED), 1);
	assert_int_equal(stats_of(f, 1).queued, 1);
	assert_int_equal(outcome_count(f, 1, DEVICE_PLATFORM_APNS, "com.a",
	    DELIVERY_OUTCOME_CANCELLED), 0);

	/* A stopped layer sends nothing; the other goes on. */
	delivery_stop(f->layer[0]);
	submit(f, 0, 4);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->apns[0].count, 0);
	assert_int_equal(f->apns[1].count, 1);
	assert_int_equal(stats_of(f, 0).queued, 1);
	assert_int_equal(stats_of(f, 1).in_flight, 1);
	complete(&f->apns[1], 0, PROVIDER_SENT);
	assert_int_equal(f->heard[1].sent, 1);
}

/* Run the loop until *counter reaches want or a second passes. */
static void
run_until(struct event_base *base, const unsigned *counter, unsigned want)
{
	int64_t deadline = clock_monotonic_ms() + 1000;

	while (*counter < want && clock_monotonic_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void
test_delivery_two_layers_with_log_providers_complete_apart(void **state)
{
	struct fixture *f = *state;
	const struct provider_ops *log = &provider_log_ops;
	struct delivery_options options = { .max_attempts = 3, .retry_initial_ms = 1000,
		.retry_max_ms = 1000, .max_age_ms = 60000, .queue_size = 10 };
	struct provider *providers[2][2];
	struct delivery_layer *layers[2];
	struct heard heard[2];
	struct config config;
	char err[256];

	memset(&config, 0, sizeof config);
	memset(heard, 0, sizeof heard);
	log_set_level(LOG_LEVEL_ERROR);	/* the dry run logs each send at info */
	for (int l = 0; l < 2; l++) {
		for (int p = 0; p < 2; p++) {
			providers[l][p] = log->create(f->base, &config, err, sizeof err);
			assert_non_null(providers[l][p]);
		}
		layers[l] = delivery_layer_new(f->base, NULL, NULL, log, providers[l][0], log,
		    providers[l][1], NULL, &options);
	}
	delivery_submit(delivery_new(layers[0], &f->targets[0], f->content, -1,
	    clock_now_ms()), observe, &heard[0], 0);
	delivery_submit(delivery_new(layers[0], &f->targets[1], f->content, -1,
	    clock_now_ms()), observe, &heard[0], 1);
	delivery_submit(delivery_new(layers[1], &f->targets[2], f->content, -1,
	    clock_now_ms()), observe, &heard[1], 2);
	run_until(f->base, &heard[0].sent, 2);
	run_until(f->base, &heard[1].sent, 1);
	log_set_level(LOG_LEVEL_INFO);

	assert_int_equal(heard[0].sent, 2);
	assert_int_equal(heard[1].sent, 1);
	assert_string_equal(heard[1].last_reason, "dry run: logged, not sent");
	{
		struct delivery_stats a, b;

		delivery_get_stats(layers[0], &a);
		delivery_get_stats(layers[1], &b);
		assert_int_equal(a.sent, 2);
		assert_int_equal(b.sent, 1);
		assert_int_equal(a.in_flight + b.in_flight, 0);
	}
	{
		struct provider_stats s;

		log->stats(providers[0][DEVICE_PLATFORM_APNS], &s);
		assert_int_equal(s.sent, 1);
		log->stats(providers[1][DEVICE_PLATFORM_APNS], &s);
		assert_int_equal(s.sent, 1);
		log->stats(providers[1][DEVICE_PLATFORM_FCM], &s);
		assert_int_equal(s.sent, 0);
	}
	for (int l = 0; l < 2; l++) {
		delivery_stop(layers[l]);
		for (int p = 0; p < 2; p++)
			log->free(providers[l][p]);
		delivery_layer_free(layers[l]);
	}
}

static int
group_setup(void **state)
{
	(void)state;
	log_init();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_delivery_a_small_message_is_not_held_behind_a_fan_out, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_delivery_cancel_takes_a_content_out_of_the_round_robin, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_delivery_two_layers_keep_their_own_queues_and_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_retry_waits_in_its_own_layer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_delivery_cancel_and_stop_reach_only_their_own_layer, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_delivery_two_layers_with_log_providers_complete_apart, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
