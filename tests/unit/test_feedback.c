/*
 * Tests for feedback.c (and httpc.c under it) against a small HTTP/1.1 webhook served
 * by evhttp on 127.0.0.1 in this process, on the same event base.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "clock.h"
#include "config.h"
#include "feedback.h"
#include "log.h"

#define HANG 0			/* a scripted "answer": never reply */
#define POSTS_MAX 64

struct post {
	char method[8];
	char path[64];
	char content_type[64];
	char body[512];
	int64_t at;
};

struct fixture {
	struct event_base *base;
	struct evhttp *http;
	struct event *tick;
	int port;
	char url[64];
	int script[8];			/* statuses to answer with, then 200 */
	size_t nscript;
	struct post posts[POSTS_MAX];
	unsigned nposts;
	struct config config;
	struct feedback *feedback;
};

/* The webhook: record the request, answer from the script. */
static void
hook(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct post *p = &f->posts[f->nposts < POSTS_MAX ? f->nposts : POSTS_MAX - 1];
	const char *ct;
	size_t len = evbuffer_get_length(in);
	int status;

	memset(p, 0, sizeof *p);
	snprintf(p->method, sizeof p->method, "%s",
	    evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "other");
	snprintf(p->path, sizeof p->path, "%s", evhttp_request_get_uri(req));
	ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	snprintf(p->content_type, sizeof p->content_type, "%s", ct != NULL ? ct : "");
	if (len >= sizeof p->body)
		len = sizeof p->body - 1;
	evbuffer_remove(in, p->body, len);
	p->at = clock_monotonic_ms();
	status = f->nposts < f->nscript ? f->script[f->nposts] : 200;
	f->nposts++;
	if (status == HANG)
		return;		/* evhttp frees it when the client gives up */
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Scripted", NULL);
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	struct timeval tv = { 0, 10000 };

	f->base = event_base_new();
	f->http = evhttp_new(f->base);
	evhttp_set_gencb(f->http, hook, f);
	bound = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	if (bound == NULL)
		return -1;
	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len) != 0)
		return -1;
	f->port = ntohs(sin.sin_port);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/hook", f->port);
	f->config.feedback_url = f->url;
	f->config.feedback_max_attempts = 8;
	f->config.feedback_timeout_ms = 2000;
	f->tick = event_new(f->base, -1, EV_PERSIST, tick, NULL);
	event_add(f->tick, &tv);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f->feedback != NULL)
		feedback_free(f->feedback);
	evhttp_free(f->http);
	event_free(f->tick);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void
run_until_posts(struct fixture *f, unsigned want, int timeout_ms)
{
	int64_t deadline = clock_monotonic_ms() + timeout_ms;

	while (f->nposts < want && clock_monotonic_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static void
run_for(struct fixture *f, int ms)
{
	int64_t deadline = clock_monotonic_ms() + ms;

	while (clock_monotonic_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
}

/* Run until nothing is queued (answers take a loop turn to reach the client). */
static void
run_until_idle(struct fixture *f, int timeout_ms)
{
	struct feedback_stats s;
	int64_t deadline = clock_monotonic_ms() + timeout_ms;

	do {
		event_base_loop(f->base, EVLOOP_ONCE);
		feedback_get_stats(f->feedback, &s);
	} while (s.queued > 0 && clock_monotonic_ms() < deadline);
}

static struct feedback_stats
stats(struct fixture *f)
{
	struct feedback_stats s;

	feedback_get_stats(f->feedback, &s);
	return s;
}

static const struct feedback_event event = {
	.device_id = "dev-1",
	.client_id = "client-7",
	.platform = "fcm",
	.app_id = "com.example.chat",
	.reason = "UNREGISTERED",
	.status = 404,
	.at = 1700000000123,
};

static const char event_json[] = "{\"event\":\"token_removed\",\"device_id\":\"dev-1\","
    "\"client_id\":\"client-7\",\"platform\":\"fcm\",\"app_id\":\"com.example.chat\","
    "\"reason\":\"UNREGISTERED\",\"at\":\"2023-11-14T22:13:20.123Z\"}";

/* Capture what the logger writes to stderr. */
static char captured[4096];

static void
capture_begin(int *saved, FILE **tmp)
{
	fflush(stderr);
	*tmp = tmpfile();
	assert_non_null(*tmp);
	*saved = dup(STDERR_FILENO);
	dup2(fileno(*tmp), STDERR_FILENO);
}

static const char *
capture_end(int saved, FILE *tmp)
{
	size_t n;

	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(captured, 1, sizeof captured - 1, tmp);
	captured[n] = '\0';
	fclose(tmp);
	return captured;
}

static void
test_feedback_posts_the_exact_event_and_logs_it(void **state)
{
	struct fixture *f = *state;
	FILE *tmp;
	int saved;

	f->feedback = feedback_new(f->base, &f->config);
	capture_begin(&saved, &tmp);
	feedback_emit(f->feedback, &event);
	assert_string_equal(capture_end(saved, tmp), "<6>level=info msg=\"token removed\" "
	    "device_id=dev-1 client_id=client-7 platform=fcm app_id=com.example.chat "
	    "reason=UNREGISTERED status=404\n");
	run_until_posts(f, 1, 3000);
	run_until_idle(f, 3000);
	assert_int_equal(f->nposts, 1);
	assert_string_equal(f->posts[0].method, "POST");
	assert_string_equal(f->posts[0].path, "/hook");
	assert_string_equal(f->posts[0].content_type, "application/json");
	assert_string_equal(f->posts[0].body, event_json);
	assert_int_equal(stats(f).emitted, 1);
	assert_int_equal(stats(f).posted, 1);
	assert_int_equal(stats(f).failed, 0);
	assert_int_equal(stats(f).queued, 0);
}

static void
test_feedback_client_id_absent_is_null(void **state)
{
	struct fixture *f = *state;
	struct feedback_event e = event;

	e.client_id = NULL;
	f->feedback = feedback_new(f->base, &f->config);
	feedback_emit(f->feedback, &e);
	run_until_posts(f, 1, 3000);
	assert_string_equal(f->posts[0].body, "{\"event\":\"token_removed\","
	    "\"device_id\":\"dev-1\",\"client_id\":null,\"platform\":\"fcm\","
	    "\"app_id\":\"com.example.chat\",\"reason\":\"UNREGISTERED\","
	    "\"at\":\"2023-11-14T22:13:20.123Z\"}");
}

static void
test_feedback_posts_more_events_than_run_at_once(void **state)
{
	struct fixture *f = *state;
	struct feedback_event e = event;
	char id[16], want[32];

	f->feedback = feedback_new(f->base, &f->config);
	for (int i = 0; i < 9; i++) {
		snprintf(id, sizeof id, "dev-%d", i);
		e.device_id = id;
		feedback_emit(f->feedback, &e);
	}
	assert_int_equal(stats(f).queued, 9);
	run_until_posts(f, 9, 5000);
	run_until_idle(f, 3000);
	assert_int_equal(f->nposts, 9);
	assert_int_equal(stats(f).posted, 9);
	assert_int_equal(stats(f).queued, 0);
	for (int i = 0; i < 9; i++) {
		snprintf(want, sizeof want, "\"device_id\":\"dev-%d\"", i);
		assert_non_null(strstr(f->posts[i].body, want));
	}
}

static void
test_feedback_retries_5xx_and_429_with_backoff_until_accepted(void **state)
{
	struct fixture *f = *state;

	f->script[0] = 500;
	f->script[1] = 429;
	f->nscript = 2;
	f->feedback = feedback_new(f->base, &f->config);
	feedback_emit(f->feedback, &event);
	run_until_posts(f, 3, 5000);
	run_until_idle(f, 3000);
	assert_int_equal(f->nposts, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_string_equal(f->posts[i].body, event_json);
	/* Backoff: 250-500 ms, then 500-1000 ms. */
	assert_true(f->posts[1].at - f->posts[0].at >= 240);
	assert_true(f->posts[2].at - f->posts[1].at >= 490);
	assert_int_equal(stats(f).posted, 1);
	assert_int_equal(stats(f).failed, 0);
	assert_int_equal(stats(f).queued, 0);
	run_for(f, 300);
	assert_int_equal(f->nposts, 3);
}

static void
test_feedback_400_is_final_and_not_retried(void **state)
{
	struct fixture *f = *state;

	f->script[0] = 400;
	f->nscript = 1;
	f->feedback = feedback_new(f->base, &f->config);
	feedback_emit(f->feedback, &event);
	run_until_posts(f, 1, 3000);
	run_for(f, 1200);
	assert_int_equal(f->nposts, 1);
	assert_int_equal(stats(f).posted, 0);
	assert_int_equal(stats(f).failed, 1);
	assert_int_equal(stats(f).queued, 0);
}

static void
test_feedback_gives_up_after_max_attempts(void **state)
{
	struct fixture *f = *state;

	f->script[0] = f->script[1] = f->script[2] = 503;
	f->nscript = 3;
	f->config.feedback_max_attempts = 2;
	f->feedback = feedback_new(f->base, &f->config);
	feedback_emit(f->feedback, &event);
	run_until_posts(f, 2, 3000);
	run_until_idle(f, 3000);
	run_for(f, 1200);
	assert_int_equal(f->nposts, 2);
	assert_int_equal(stats(f).failed, 1);
	assert_int_equal(stats(f).queued, 0);
}

static void
test_feedback_timeout_is_retried(void **state)
{
	struct fixture *f = *state;

	f->script[0] = HANG;
	f->nscript = 1;
	f->config.feedback_timeout_ms = 300;
	f->feedback = feedback_new(f->base, &f->config);
	feedback_emit(f->feedback, &event);
	run_until_posts(f, 2, 5000);
	run_until_idle(f, 3000);
	assert_int_equal(f->nposts, 2);
	assert_true(f->posts[1].at - f->posts[0].at >= 300 + 240);
	assert_int_equal(stats(f).posted, 1);
}

static void
test_feedback_without_url_only_logs_and_counts(void **state)
{
	struct fixture *f = *state;

	f->config.feedback_url = NULL;
	f->feedback = feedback_new(f->base, &f->config);
	feedback_emit(f->feedback, &event);
	run_for(f, 300);
	assert_int_equal(f->nposts, 0);
	assert_int_equal(stats(f).emitted, 1);
	assert_int_equal(stats(f).posted, 0);
	assert_int_equal(stats(f).queued, 0);
}

static void
test_feedback_full_queue_drops_oldest(void **state)
{
	struct fixture *f = *state;
	struct feedback_event e = event;
	char id[32];

	for (size_t i = 0; i < 8; i++)
		f->script[i] = HANG;
	f->nscript = 8;
	log_set_level(LOG_LEVEL_ERROR);	/* 10001 "token removed" lines */
	f->feedback = feedback_new(f->base, &f->config);
	for (int i = 0; i <= FEEDBACK_QUEUE_MAX; i++) {
		snprintf(id, sizeof id, "dev-%d", i);
		e.device_id = id;
		feedback_emit(f->feedback, &e);
	}
	log_set_level(LOG_LEVEL_INFO);
	assert_int_equal(stats(f).emitted, FEEDBACK_QUEUE_MAX + 1);
	assert_int_equal(stats(f).dropped, 1);
	assert_int_equal(stats(f).queued, FEEDBACK_QUEUE_MAX);
	/* dev-0 was being posted: its post is cancelled; the next four go out. */
	run_until_posts(f, 4, 3000);
	assert_int_equal(f->nposts, 4);
	assert_non_null(strstr(f->posts[0].body, "\"device_id\":\"dev-1\""));
	assert_non_null(strstr(f->posts[3].body, "\"device_id\":\"dev-4\""));
}

static void
test_feedback_reload_unsetting_url_drops_queue(void **state)
{
	struct fixture *f = *state;

	f->script[0] = HANG;
	f->nscript = 1;
	f->feedback = feedback_new(f->base, &f->config);
	feedback_emit(f->feedback, &event);
	run_until_posts(f, 1, 3000);
	assert_int_equal(stats(f).queued, 1);
	f->config.feedback_url = NULL;
	feedback_reload(f->feedback, &f->config);
	assert_int_equal(stats(f).queued, 0);
	assert_int_equal(stats(f).dropped, 1);
	feedback_emit(f->feedback, &event);
	run_for(f, 300);
	assert_int_equal(f->nposts, 1);
	assert_int_equal(stats(f).emitted, 2);
}

/* A watch's calls. */
struct watched {
	int calls;
	int stopping;
};

static void
watched(int stopping, void *arg)
{
	struct watched *w = arg;

	w->calls++;
	w->stopping = stopping;
}

/* The JSON text of the i-th kept event after a seq, which the caller frees. */
static char *
recent_text(const struct feedback *feedback, uint64_t after, size_t i)
{
	json_t *events = feedback_recent(feedback, after);
	char *text = json_dumps(json_array_get(events, i), JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(events);
	assert_non_null(text);
	return text;
}

static void
test_feedback_recent_keeps_the_last_events_numbered_with_seq(void **state)
{
	struct fixture *f = *state;
	struct feedback_event e = event;
	char id[32], expected[512], *text;
	json_t *events;
	uint64_t base;

	f->config.feedback_url = NULL;	/* kept whether or not a webhook is set */
	f->feedback = feedback_new(f->base, &f->config);
	base = feedback_recent_last(f->feedback);
	assert_int_equal(base, 0);	/* a new feedback object starts its own numbering */
	log_set_level(LOG_LEVEL_ERROR);
	for (int i = 1; i <= FEEDBACK_RECENT_MAX + 5; i++) {
		snprintf(id, sizeof id, "dev-%d", i);
		e.device_id = id;
		feedback_emit(f->feedback, &e);
	}
	log_set_level(LOG_LEVEL_INFO);
	assert_int_equal(feedback_recent_last(f->feedback), base + FEEDBACK_RECENT_MAX + 5);

	/* The oldest five were pushed out. */
	events = feedback_recent(f->feedback, 0);
	assert_int_equal(json_array_size(events), FEEDBACK_RECENT_MAX);
	json_decref(events);
	text = recent_text(f->feedback, 0, 0);
	snprintf(expected, sizeof expected, "{\"seq\":%llu,\"event\":\"token_removed\","
	    "\"device_id\":\"dev-6\",\"client_id\":\"client-7\",\"platform\":\"fcm\","
	    "\"app_id\":\"com.example.chat\",\"reason\":\"UNREGISTERED\","
	    "\"at\":\"2023-11-14T22:13:20.123Z\"}", (unsigned long long)base + 6);
	assert_string_equal(text, expected);
	free(text);

	/* After a seq: only what is newer. */
	events = feedback_recent(f->feedback, base + FEEDBACK_RECENT_MAX + 3);
	assert_int_equal(json_array_size(events), 2);
	json_decref(events);
	text = recent_text(f->feedback, base + FEEDBACK_RECENT_MAX + 3, 1);
	assert_non_null(strstr(text, "\"device_id\":\"dev-1005\""));
	free(text);
	events = feedback_recent(f->feedback, base + FEEDBACK_RECENT_MAX + 5);
	assert_int_equal(json_array_size(events), 0);
	json_decref(events);

	/* Beyond the newest (the caller saw another run of the daemon): as from 0. */
	events = feedback_recent(f->feedback, base + FEEDBACK_RECENT_MAX + 6);
	assert_int_equal(json_array_size(events), FEEDBACK_RECENT_MAX);
	json_decref(events);
}

static void
test_feedback_watch_fires_once_at_the_next_event(void **state)
{
	struct fixture *f = *state;
	struct watched a = { 0, -1 }, b = { 0, -1 }, c = { 0, -1 };
	struct feedback_watch *cancelled;

	f->config.feedback_url = NULL;
	f->feedback = feedback_new(f->base, &f->config);
	assert_non_null(feedback_watch(f->feedback, watched, &a));
	assert_non_null(feedback_watch(f->feedback, watched, &b));
	assert_non_null(cancelled = feedback_watch(f->feedback, watched, &c));
	feedback_unwatch(cancelled);
	feedback_emit(f->feedback, &event);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.stopping, 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(c.calls, 0);
	feedback_emit(f->feedback, &event);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
}

static void
test_feedback_stopping_ends_watches_and_refuses_new_ones(void **state)
{
	struct fixture *f = *state;
	struct watched a = { 0, -1 }, b = { 0, -1 };
	json_t *events;

	f->config.feedback_url = NULL;
	f->feedback = feedback_new(f->base, &f->config);
	assert_non_null(feedback_watch(f->feedback, watched, &a));
	feedback_stop_watches(f->feedback);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.stopping, 1);
	assert_null(feedback_watch(f->feedback, watched, &b));
	feedback_emit(f->feedback, &event);
	assert_int_equal(a.calls, 1);
	feedback_free(f->feedback);

	/* A new start takes watches again; feedback_free() ends them, forgets events. */
	f->feedback = feedback_new(f->base, &f->config);
	feedback_emit(f->feedback, &event);
	assert_non_null(feedback_watch(f->feedback, watched, &b));
	feedback_free(f->feedback);
	f->feedback = NULL;
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.stopping, 1);
	f->feedback = feedback_new(f->base, &f->config);
	events = feedback_recent(f->feedback, 0);
	assert_int_equal(json_array_size(events), 0);
	json_decref(events);
}

/* Two feedback objects in one process: events, numbering and watches are each's own. */
static void
test_feedback_objects_keep_their_own_events_and_watches(void **state)
{
	struct fixture *f = *state;
	struct watched a = { 0, -1 }, b = { 0, -1 };
	struct feedback *other;
	json_t *events;

	f->config.feedback_url = NULL;
	f->feedback = feedback_new(f->base, &f->config);
	other = feedback_new(f->base, &f->config);
	assert_non_null(feedback_watch(f->feedback, watched, &a));
	assert_non_null(feedback_watch(other, watched, &b));
	feedback_emit(f->feedback, &event);
	feedback_emit(f->feedback, &event);
	assert_int_equal(feedback_recent_last(f->feedback), 2);
	assert_int_equal(feedback_recent_last(other), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	events = feedback_recent(other, 0);
	assert_int_equal(json_array_size(events), 0);
	json_decref(events);
	/* Stopping one leaves the other's watches alone. */
	feedback_stop_watches(f->feedback);
	assert_int_equal(b.calls, 0);
	assert_null(feedback_watch(f->feedback, watched, &a));
	feedback_emit(other, &event);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.stopping, 0);
	feedback_free(other);
}

static int
group_setup(void **state)
{
	(void)state;
	setenv("JOURNAL_STREAM", "8:1234", 1);	/* fixed line prefix, no timestamp */
	log_init();
	log_set_level(LOG_LEVEL_INFO);
	log_set_format(LOG_FORMAT_TEXT);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_feedback_posts_the_exact_event_and_logs_it,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_feedback_client_id_absent_is_null, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_feedback_posts_more_events_than_run_at_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_feedback_retries_5xx_and_429_with_backoff_until_accepted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_feedback_400_is_final_and_not_retried,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_feedback_gives_up_after_max_attempts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_feedback_timeout_is_retried, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_feedback_without_url_only_logs_and_counts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_feedback_full_queue_drops_oldest, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_feedback_reload_unsetting_url_drops_queue,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_feedback_recent_keeps_the_last_events_numbered_with_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_feedback_watch_fires_once_at_the_next_event,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_feedback_stopping_ends_watches_and_refuses_new_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_feedback_objects_keep_their_own_events_and_watches, setup, teardown),
	};

	return cmocka_run_group_tests_name("feedback", tests, group_setup, NULL);
}
