/* Tests for the TLS + HTTP/2 client pool against a TLS h2 server on 127.0.0.1. */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/x509.h>

#include "h2_pool.h"
#include "h2_test_server.h"
#include "log.h"
#include "tls.h"

static char certs_dir[256];
static char ca_file[300], server_cert[300], server_key[300], rogue_cert[300],
    rogue_key[300], client_cert[300], client_key[300], client_p12[300];

/* One request and what its completion said. */
struct call {
	struct h2_request request;
	char path[64];
	unsigned calls;
	int error;
	int status;
	uint32_t http2_error;
	char reason[192];
	char apns_id[64];
	char retry_after[16];
	char content_type[64];
	char body[128];
	size_t body_len;
	int body_truncated;
	unsigned *done;		/* shared completion counter */
};

struct fixture {
	struct event_base *base;
	SSL_CTX *ctx;
	struct h2_test_server *srv;
	struct h2_pool *pool;
	struct call *calls;
	unsigned ncalls;
	unsigned done;
};

static const uint8_t body[] = "{\"aps\":{\"alert\":\"hello\"}}";

/* Completion callback: record everything the test asserts on. */
static void
on_done(struct h2_request *request, const struct h2_response *response, void *arg)
{
	struct call *c = arg;
	const char *v;
	size_t n;

	c->calls++;
	c->error = response->error;
	c->status = response->status;
	c->http2_error = response->http2_error;
	snprintf(c->reason, sizeof c->reason, "%s", response->reason ? response->reason : "");
	v = h2_response_header(response, "apns-id");
	snprintf(c->apns_id, sizeof c->apns_id, "%s", v ? v : "");
	v = h2_response_header(response, "retry-after");
	snprintf(c->retry_after, sizeof c->retry_after, "%s", v ? v : "");
	v = h2_response_header(response, "content-type");
	snprintf(c->content_type, sizeof c->content_type, "%s", v ? v : "");
	c->body_len = response->body_len;
	c->body_truncated = response->body_truncated;
	n = response->body_len < sizeof c->body - 1 ? response->body_len : sizeof c->body - 1;
	if (n > 0)
		memcpy(c->body, response->body, n);
	c->body[n] = '\0';
	(*c->done)++;
}

/* Wakes the loop so run_until() can check its clock. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until *counter reaches target or timeout_ms pass. */
static int
run_until(struct event_base *base, const unsigned *counter, unsigned target, int timeout_ms)
{
	struct timeval tv = { 0, 5000 };
	struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	uint64_t end = h2_now_ms() + (uint64_t)timeout_ms;

	event_add(tick, &tv);
	while (*counter < target && h2_now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
	return *counter >= target;
}

/* Run the loop for ms. */
static void
run_for(struct event_base *base, int ms)
{
	unsigned never = 0;

	run_until(base, &never, 1, ms);
}

/* A base, a client TLS context trusting the test CA, and a server. */
static struct fixture *
fixture_new(const struct h2_test_server_options *so, const char *cert, const char *key)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct tls_client_options to = { .ca_file = ca_file };
	char err[256];

	f->base = event_base_new();
	assert_int_equal(tls_client_ctx_new(&to, &f->ctx, err, sizeof err), 0);
	if (so != NULL)
		f->srv = h2_test_server_new(f->base, cert ? cert : server_cert,
		    key ? key : server_key, so);
	return f;
}

/* Default pool options for the fixture's server. */
static struct h2_pool_options
pool_options(struct fixture *f)
{
	struct h2_pool_options o;

	memset(&o, 0, sizeof o);
	o.host = "127.0.0.1";
	o.port = f->srv != NULL ? (unsigned)f->srv->port : 9;
	o.server_name = "localhost";
	o.ssl_ctx = f->ctx;
	o.connect_timeout_ms = 2000;
	o.backoff_base_ms = 20;
	o.backoff_max_ms = 100;
	return o;
}

/* Create the fixture's pool. */
static void
pool_open(struct fixture *f, const struct h2_pool_options *o)
{
	char err[256];

	assert_int_equal(h2_pool_new(f->base, o, &f->pool, err, sizeof err), 0);
}

/* Prepare n calls with paths prefix<i>. */
static void
calls_make(struct fixture *f, unsigned n, const char *prefix)
{
	unsigned i;

	f->calls = calloc(n, sizeof *f->calls);
	f->ncalls = n;
	for (i = 0; i < n; i++) {
		struct call *c = &f->calls[i];

		snprintf(c->path, sizeof c->path, "%s%u", prefix, i);
		c->request.method = "POST";
		c->request.path = c->path;
		c->request.body = body;
		c->request.body_len = sizeof body - 1;
		c->request.timeout_ms = 5000;
		c->request.done = on_done;
		c->request.arg = c;
		c->done = &f->done;
	}
}

/* Submit calls [from, to). */
static void
calls_submit(struct fixture *f, unsigned from, unsigned to)
{
	unsigned i;

	for (i = from; i < to; i++)
		assert_int_equal(h2_pool_submit(f->pool, &f->calls[i].request), 0);
}

/* Free the pool first: its completions write into the calls. */
static void
fixture_free(struct fixture *f)
{
	h2_pool_free(f->pool);
	if (f->srv != NULL)
		h2_test_server_free(f->srv);
	SSL_CTX_free(f->ctx);
	event_base_free(f->base);
	free(f->calls);
	free(f);
}

/* Every call completed exactly once with 200, and the server saw each path once. */
static void
assert_all_ok_once(struct fixture *f)
{
	unsigned i;

	for (i = 0; i < f->ncalls; i++) {
		assert_int_equal(f->calls[i].calls, 1);
		assert_int_equal(f->calls[i].error, 0);
		assert_int_equal(f->calls[i].status, 200);
		if (f->srv != NULL)
			assert_int_equal(f->srv->path_count[i], 1);
	}
}

static void
test_h2_thousand_requests_complete_once_within_stream_limit(void **state)
{
	struct h2_test_server_options so = { .max_streams = 10, .delay_ms = 1 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;
	char want[80];

	o.max_connections = 2;
	pool_open(f, &o);
	calls_make(f, 1000, "/r/");
	calls_submit(f, 0, 1000);
	assert_true(run_until(f->base, &f->done, 1000, 10000));
	run_for(f->base, 20);
	assert_all_ok_once(f);
	assert_int_equal(f->srv->requests, 1000);
	/* The limit was used fully and never exceeded. */
	assert_int_equal(f->srv->max_open, 10);
	snprintf(want, sizeof want, "ok %s", f->calls[7].path);
	assert_string_equal(f->calls[7].body, want);
	assert_int_equal(strncmp(f->calls[7].apns_id, "id-", 3), 0);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.requests_completed, 1000);
	assert_int_equal(st.requests_resubmitted, 0);
	assert_int_equal(st.streams_in_flight, 0);
	assert_int_equal(st.queue_depth, 0);
	/* Busy streams made the pool open a second connection, and no more. */
	assert_int_equal(st.connections_open, 2);
	assert_int_equal(f->srv->connections, 2);
	fixture_free(f);
}

/* Many waiting requests open every connection they need at once, not one by one. */
static void
test_h2_deep_queue_opens_the_connections_it_needs_at_once(void **state)
{
	struct h2_test_server_options so = { .max_streams = 10, .delay_ms = 100 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	o.max_connections = 4;
	o.max_streams_per_connection = 10;
	pool_open(f, &o);
	calls_make(f, 100, "/r/");
	calls_submit(f, 0, 100);
	/* The first dispatch: ten connections' worth wait, the cap is four. */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connections_open + st.connections_connecting, 4);
	assert_int_equal(f->done, 0);
	assert_true(run_until(f->base, &f->done, 100, 10000));
	assert_all_ok_once(f);
	assert_int_equal(f->srv->connections, 4);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connects_succeeded, 4);
	fixture_free(f);
}

/* A few waiting requests still open one connection at a time. */
static void
test_h2_shallow_queue_opens_one_connection_at_a_time(void **state)
{
	struct h2_test_server_options so = { .max_streams = 10, .delay_ms = 100 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	o.max_connections = 4;
	o.max_streams_per_connection = 10;
	pool_open(f, &o);
	calls_make(f, 10, "/r/");
	calls_submit(f, 0, 10);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connections_open + st.connections_connecting, 1);
	assert_true(run_until(f->base, &f->done, 10, 10000));
	assert_all_ok_once(f);
	assert_int_equal(f->srv->connections, 1);
	fixture_free(f);
}

/* After a burst, idle connections close, all but one, which the next requests use. */
static void
test_h2_idle_connections_close_all_but_one(void **state)
{
	struct h2_test_server_options so = { .max_streams = 5, .delay_ms = 20 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	o.max_connections = 3;
	o.max_streams_per_connection = 5;
	o.idle_close_ms = 200;
	pool_open(f, &o);
	calls_make(f, 65, "/r/");
	calls_submit(f, 0, 60);
	assert_true(run_until(f->base, &f->done, 60, 10000));
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connections_open, 3);
	assert_int_equal(st.connections_closed_idle, 0);
	/* Idle a bit past the period (checked four times in it): two go. */
	run_for(f->base, 400);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connections_open, 1);
	assert_int_equal(st.connections_closed_idle, 2);
	assert_int_equal(f->srv->goaways_received, 2);
	/* The one left takes the next requests: no new connection. */
	calls_submit(f, 60, 65);
	assert_true(run_until(f->base, &f->done, 65, 10000));
	assert_all_ok_once(f);
	assert_int_equal(f->srv->connections, 3);
	run_for(f->base, 400);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connections_open, 1);
	fixture_free(f);
}

static void
test_h2_follows_max_streams_raised_after_first_answer(void **state)
{
	struct h2_test_server_options so = { .max_streams = 1, .raise_to = 5 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);

	pool_open(f, &o);
	calls_make(f, 100, "/r/");
	calls_submit(f, 0, 100);
	assert_true(run_until(f->base, &f->done, 100, 5000));
	assert_all_ok_once(f);
	assert_int_equal(f->srv->max_open_at_raise, 1);
	assert_int_equal(f->srv->max_open, 5);
	assert_int_equal(f->srv->connections, 1);
	fixture_free(f);
}

static void
test_h2_respects_max_streams_lowered_mid_run(void **state)
{
	struct h2_test_server_options so = { .max_streams = 8, .delay_ms = 2 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);

	pool_open(f, &o);
	calls_make(f, 300, "/r/");
	calls_submit(f, 0, 300);
	assert_true(run_until(f->base, &f->done, 50, 5000));
	assert_int_equal(f->srv->max_open, 8);
	h2_test_server_set_max_streams(f->srv, 3);
	assert_true(run_until(f->base, &f->done, 300, 10000));
	assert_all_ok_once(f);
	assert_int_equal(f->srv->max_open_after_ack, 3);
	fixture_free(f);
}

static void
test_h2_goaway_mid_batch_resends_unprocessed_once(void **state)
{
	struct h2_test_server_options so = { .max_streams = 10, .goaway_after = 25 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	pool_open(f, &o);
	calls_make(f, 200, "/r/");
	calls_submit(f, 0, 200);
	assert_true(run_until(f->base, &f->done, 200, 10000));
	run_for(f->base, 20);
	/* None lost, none processed twice. */
	assert_all_ok_once(f);
	assert_int_equal(f->srv->requests, 200);
	assert_true(f->srv->connections >= 8);
	h2_pool_get_stats(f->pool, &st);
	assert_true(st.requests_resubmitted > 0);
	assert_true(st.requests_resubmitted >= f->srv->ignored);
	/* GOAWAY'd connections closed once idle. */
	assert_true(st.connections_open <= 1);
	fixture_free(f);
}

static void
test_h2_refused_stream_is_resent(void **state)
{
	struct h2_test_server_options so = { .max_streams = 10, .refuse_first = 3 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	pool_open(f, &o);
	calls_make(f, 10, "/r/");
	calls_submit(f, 0, 10);
	assert_true(run_until(f->base, &f->done, 10, 5000));
	assert_all_ok_once(f);
	assert_int_equal(f->srv->refused, 3);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.requests_resubmitted, 3);
	fixture_free(f);
}

static void
test_h2_refused_too_often_fails_with_erefused(void **state)
{
	struct h2_test_server_options so = { .max_streams = 10, .refuse_first = 100 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);

	o.max_resubmits = 2;
	pool_open(f, &o);
	calls_make(f, 1, "/r/");
	calls_submit(f, 0, 1);
	assert_true(run_until(f->base, &f->done, 1, 5000));
	assert_int_equal(f->calls[0].calls, 1);
	assert_int_equal(f->calls[0].error, H2_EREFUSED);
	assert_int_equal(f->srv->refused, 3);
	assert_int_equal(f->srv->requests, 0);
	fixture_free(f);
}

static void
test_h2_timeout_completes_etimedout_and_cancels_stream(void **state)
{
	struct h2_test_server_options so = { .max_streams = 10, .slow_delay_ms = 3000 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	uint64_t start;

	pool_open(f, &o);
	calls_make(f, 2, "/slow/");
	f->calls[0].request.timeout_ms = 150;
	start = h2_now_ms();
	calls_submit(f, 0, 1);
	assert_true(run_until(f->base, &f->done, 1, 2000));
	assert_true(h2_now_ms() - start >= 140);
	assert_int_equal(f->calls[0].error, H2_ETIMEDOUT);
	assert_int_equal(f->calls[0].status, 0);
	assert_true(run_until(f->base, &f->srv->rst_cancel, 1, 1000));
	/* The connection stays usable. */
	snprintf(f->calls[1].path, sizeof f->calls[1].path, "/r/1");
	calls_submit(f, 1, 2);
	assert_true(run_until(f->base, &f->done, 2, 2000));
	assert_int_equal(f->calls[1].status, 200);
	assert_int_equal(f->calls[0].calls, 1);
	assert_int_equal(f->srv->connections, 1);
	fixture_free(f);
}

static void
test_h2_queued_request_times_out_without_being_sent(void **state)
{
	struct h2_test_server_options so = { .max_streams = 1, .slow_delay_ms = 400 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	pool_open(f, &o);
	calls_make(f, 2, "/slow/");
	f->calls[1].request.timeout_ms = 100;
	calls_submit(f, 0, 2);
	assert_true(run_until(f->base, &f->done, 1, 2000));
	assert_int_equal(f->calls[1].calls, 1);
	assert_int_equal(f->calls[1].error, H2_ETIMEDOUT);
	assert_int_equal(f->calls[0].calls, 0);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.queue_depth, 0);
	assert_int_equal(st.streams_in_flight, 1);
	assert_true(run_until(f->base, &f->done, 2, 2000));
	assert_int_equal(f->calls[0].status, 200);
	assert_int_equal(f->srv->requests, 1);	/* the timed-out one never left */
	assert_int_equal(f->srv->rst_cancel, 0);
	fixture_free(f);
}

static void
test_h2_unknown_ca_fails_with_verify_reason(void **state)
{
	struct h2_test_server_options so = { 0 };
	struct fixture *f = fixture_new(&so, rogue_cert, rogue_key);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	pool_open(f, &o);
	calls_make(f, 1, "/r/");
	f->calls[0].request.timeout_ms = 300;
	calls_submit(f, 0, 1);
	assert_true(run_until(f->base, &f->done, 1, 2000));
	assert_int_equal(f->calls[0].error, H2_ETLS);
	assert_string_equal(f->calls[0].reason,
	    X509_verify_cert_error_string(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
	assert_int_equal(f->srv->requests, 0);
	h2_pool_get_stats(f->pool, &st);
	assert_true(st.connects_failed >= 2);	/* it kept trying, with backoff */
	assert_int_equal(st.connects_succeeded, 0);
	fixture_free(f);
}

static void
test_h2_wrong_hostname_fails_with_hostname_mismatch(void **state)
{
	struct h2_test_server_options so = { 0 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);

	o.server_name = "push.example.net";
	pool_open(f, &o);
	calls_make(f, 1, "/r/");
	f->calls[0].request.timeout_ms = 200;
	calls_submit(f, 0, 1);
	assert_true(run_until(f->base, &f->done, 1, 2000));
	assert_int_equal(f->calls[0].error, H2_ETLS);
	assert_string_equal(f->calls[0].reason,
	    X509_verify_cert_error_string(X509_V_ERR_HOSTNAME_MISMATCH));
	assert_int_equal(f->srv->connections, 0);
	fixture_free(f);
}

static void
test_h2_full_queue_returns_equeuefull(void **state)
{
	struct h2_test_server_options so = { .max_streams = 1 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);

	o.queue_limit = 2;
	pool_open(f, &o);
	calls_make(f, 3, "/r/");
	calls_submit(f, 0, 2);
	assert_int_equal(h2_pool_submit(f->pool, &f->calls[2].request), H2_EQUEUEFULL);
	assert_true(run_until(f->base, &f->done, 2, 5000));
	run_for(f->base, 20);
	assert_int_equal(f->calls[0].status, 200);
	assert_int_equal(f->calls[1].status, 200);
	assert_int_equal(f->calls[2].calls, 0);	/* refused: never completed */
	fixture_free(f);
}

static void
test_h2_connection_refused_backs_off_then_succeeds(void **state)
{
	struct h2_test_server_options so = { .deferred_listen = 1 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	pool_open(f, &o);
	calls_make(f, 1, "/r/");
	calls_submit(f, 0, 1);
	run_for(f->base, 300);
	h2_pool_get_stats(f->pool, &st);
	assert_true(st.connects_failed >= 2);
	assert_true(st.connects_failed <= 30);	/* backed off, not spinning */
	assert_int_equal(st.queue_depth, 1);
	assert_int_equal(f->done, 0);
	h2_test_server_listen(f->srv);
	assert_true(run_until(f->base, &f->done, 1, 2000));
	assert_int_equal(f->calls[0].error, 0);
	assert_int_equal(f->calls[0].status, 200);
	fixture_free(f);
}

/* A proxy with credentials gets them in Proxy-Authorization; without them, a 407. */
static void
test_h2_proxy_authorization_is_sent_with_connect(void **state)
{
	struct h2_test_server_options so = { 0 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_test_proxy *proxy = h2_test_proxy_new(f->base, 200);
	/* base64("relay:s3cret") */
	const char *basic = "Basic cmVsYXk6czNjcmV0";

	proxy->require_authorization = basic;
	o.proxy_host = "127.0.0.1";
	o.proxy_port = (unsigned)proxy->port;
	o.proxy_authorization = basic;
	pool_open(f, &o);
	calls_make(f, 2, "/r/");
	calls_submit(f, 0, 2);
	assert_true(run_until(f->base, &f->done, 2, 5000));
	assert_all_ok_once(f);
	assert_string_equal(proxy->last_authorization, basic);
	h2_pool_free(f->pool);
	f->pool = NULL;

	/* Without the credentials the proxy refuses, and the reason says so. */
	o.proxy_authorization = NULL;
	o.request_timeout_ms = 300;
	pool_open(f, &o);
	free(f->calls);
	f->done = 0;
	calls_make(f, 1, "/n/");
	f->calls[0].request.timeout_ms = 300;
	calls_submit(f, 0, 1);
	assert_true(run_until(f->base, &f->done, 1, 5000));
	assert_int_equal(f->calls[0].error, H2_EPROXY);
	assert_string_equal(proxy->last_authorization, "");
	h2_pool_free(f->pool);
	f->pool = NULL;
	h2_test_proxy_free(proxy);
	fixture_free(f);
}

static void
test_h2_proxy_connect_tunnels_to_server(void **state)
{
	struct h2_test_server_options so = { 0 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_test_proxy *proxy = h2_test_proxy_new(f->base, 200);
	char want[64];

	o.proxy_host = "127.0.0.1";
	o.proxy_port = (unsigned)proxy->port;
	pool_open(f, &o);
	calls_make(f, 3, "/r/");
	calls_submit(f, 0, 3);
	assert_true(run_until(f->base, &f->done, 3, 5000));
	assert_all_ok_once(f);
	assert_int_equal(proxy->connects, 1);
	snprintf(want, sizeof want, "127.0.0.1:%d", f->srv->port);
	assert_string_equal(proxy->last_target, want);
	h2_pool_free(f->pool);
	f->pool = NULL;
	h2_test_proxy_free(proxy);
	fixture_free(f);
}

static void
test_h2_proxy_refusal_fails_with_eproxy(void **state)
{
	struct h2_test_server_options so = { 0 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_test_proxy *proxy = h2_test_proxy_new(f->base, 403);

	o.proxy_host = "127.0.0.1";
	o.proxy_port = (unsigned)proxy->port;
	pool_open(f, &o);
	calls_make(f, 1, "/r/");
	f->calls[0].request.timeout_ms = 200;
	calls_submit(f, 0, 1);
	assert_true(run_until(f->base, &f->done, 1, 2000));
	assert_int_equal(f->calls[0].error, H2_EPROXY);
	assert_string_equal(f->calls[0].reason, "proxy: HTTP/1.1 403 Forbidden");
	assert_int_equal(f->srv->connections, 0);
	h2_pool_free(f->pool);
	f->pool = NULL;
	h2_test_proxy_free(proxy);
	fixture_free(f);
}

static void
test_h2_dropped_connection_fails_sent_requests_with_econnlost(void **state)
{
	struct h2_test_server_options so = { .max_streams = 10, .drop_after = 3,
	    .delay_ms = 100 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	unsigned i;

	pool_open(f, &o);
	calls_make(f, 4, "/r/");
	calls_submit(f, 0, 3);
	assert_true(run_until(f->base, &f->done, 3, 2000));
	for (i = 0; i < 3; i++) {
		assert_int_equal(f->calls[i].calls, 1);
		assert_int_equal(f->calls[i].error, H2_ECONNLOST);
	}
	/* The pool reconnects for the next request. */
	calls_submit(f, 3, 4);
	assert_true(run_until(f->base, &f->done, 4, 2000));
	assert_int_equal(f->calls[3].status, 200);
	assert_int_equal(f->srv->connections, 2);
	fixture_free(f);
}

static void
test_h2_idle_connection_is_kept_alive_with_ping(void **state)
{
	struct h2_test_server_options so = { 0 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	o.ping_idle_ms = 50;
	o.ping_timeout_ms = 100;
	pool_open(f, &o);
	calls_make(f, 1, "/r/");
	calls_submit(f, 0, 1);
	assert_true(run_until(f->base, &f->done, 1, 2000));
	run_for(f->base, 400);
	assert_true(f->srv->pings >= 2);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connections_open, 1);
	assert_int_equal(f->srv->connections, 1);
	fixture_free(f);
}

static void
test_h2_missing_ping_ack_closes_connection(void **state)
{
	struct h2_test_server_options so = { .no_ping_ack = 1 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;

	o.ping_idle_ms = 50;
	o.ping_timeout_ms = 50;
	pool_open(f, &o);
	calls_make(f, 1, "/r/");
	calls_submit(f, 0, 1);
	assert_true(run_until(f->base, &f->done, 1, 2000));
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connections_open, 1);
	run_for(f->base, 300);
	assert_true(f->srv->pings >= 1);
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connections_open, 0);
	assert_int_equal(st.connections_connecting, 0);
	fixture_free(f);
}

/* Drain callback: count. */
static void
drained(struct h2_pool *pool, void *arg)
{
	(*(unsigned *)arg)++;
}

static void
test_h2_drain_finishes_requests_then_sends_goaway(void **state)
{
	struct h2_test_server_options so = { .max_streams = 5, .delay_ms = 20 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	struct h2_pool_stats st;
	unsigned drain_done = 0;

	pool_open(f, &o);
	calls_make(f, 21, "/r/");
	calls_submit(f, 0, 20);
	h2_pool_drain(f->pool, drained, &drain_done);
	assert_int_equal(h2_pool_submit(f->pool, &f->calls[20].request), H2_ESHUTDOWN);
	assert_true(run_until(f->base, &drain_done, 1, 5000));
	assert_int_equal(f->done, 20);
	f->ncalls = 20;
	assert_all_ok_once(f);
	assert_int_equal(f->calls[20].calls, 0);
	assert_true(run_until(f->base, &f->srv->goaways_received, 1, 1000));
	h2_pool_get_stats(f->pool, &st);
	assert_int_equal(st.connections_open + st.connections_connecting, 0);
	fixture_free(f);
}

static void
test_h2_free_cancels_queued_and_in_flight(void **state)
{
	struct h2_test_server_options so = { .max_streams = 2, .delay_ms = 2000 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	unsigned i;

	pool_open(f, &o);
	calls_make(f, 5, "/r/");
	calls_submit(f, 0, 5);
	assert_true(run_until(f->base, &f->srv->requests, 2, 2000));
	h2_pool_free(f->pool);
	f->pool = NULL;
	for (i = 0; i < 5; i++) {
		assert_int_equal(f->calls[i].calls, 1);
		assert_int_equal(f->calls[i].error, H2_ECANCELLED);
	}
	fixture_free(f);
}

static void
test_h2_response_exposes_status_headers_and_bounded_body(void **state)
{
	struct h2_test_server_options so = { 0 };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);

	pool_open(f, &o);
	calls_make(f, 2, "/r/");
	snprintf(f->calls[0].path, sizeof f->calls[0].path, "/status/429");
	snprintf(f->calls[1].path, sizeof f->calls[1].path, "/big");
	f->calls[1].request.method = "GET";
	f->calls[1].request.body = NULL;
	f->calls[1].request.body_len = 0;
	calls_submit(f, 0, 2);
	assert_true(run_until(f->base, &f->done, 2, 2000));
	assert_int_equal(f->calls[0].error, 0);
	assert_int_equal(f->calls[0].status, 429);
	assert_string_equal(f->calls[0].retry_after, "7");
	assert_string_equal(f->calls[0].content_type, "application/json");
	assert_string_equal(f->calls[0].body, "{\"reason\":\"TooManyRequests\"}");
	assert_int_equal(f->calls[0].body_truncated, 0);
	assert_int_equal(f->calls[1].status, 200);
	assert_int_equal(f->calls[1].body_len, 8192);
	assert_int_equal(f->calls[1].body_truncated, 1);
	fixture_free(f);
}

/* One request to a server requiring a client certificate, with ctx. */
static int
client_cert_request(SSL_CTX *ctx, char *cn, size_t cnlen)
{
	struct h2_test_server_options so = { .client_ca_file = ca_file };
	struct fixture *f = fixture_new(&so, NULL, NULL);
	struct h2_pool_options o = pool_options(f);
	int result;

	o.ssl_ctx = ctx;
	pool_open(f, &o);
	calls_make(f, 1, "/r/");
	f->calls[0].request.timeout_ms = 300;
	calls_submit(f, 0, 1);
	assert_true(run_until(f->base, &f->done, 1, 2000));
	result = f->calls[0].error != 0 ? f->calls[0].error : f->calls[0].status;
	snprintf(cn, cnlen, "%s", f->srv->client_cn);
	fixture_free(f);
	return result;
}

static void
test_tls_client_certificate_from_pem_or_pkcs12(void **state)
{
	struct tls_client_options pem = { .ca_file = ca_file, .cert_file = client_cert,
	    .key_file = client_key };
	struct tls_client_options p12 = { .ca_file = ca_file, .pkcs12_file = client_p12,
	    .pkcs12_password = "secret" };
	struct tls_client_options none = { .ca_file = ca_file };
	SSL_CTX *ctx;
	char err[256], cn[128];

	assert_int_equal(tls_client_ctx_new(&pem, &ctx, err, sizeof err), 0);
	assert_int_equal(client_cert_request(ctx, cn, sizeof cn), 200);
	assert_string_equal(cn, "pushrelay-test-client");
	SSL_CTX_free(ctx);

	assert_int_equal(tls_client_ctx_new(&p12, &ctx, err, sizeof err), 0);
	assert_int_equal(client_cert_request(ctx, cn, sizeof cn), 200);
	assert_string_equal(cn, "pushrelay-test-client");
	SSL_CTX_free(ctx);

	assert_int_equal(tls_client_ctx_new(&none, &ctx, err, sizeof err), 0);
	assert_int_equal(client_cert_request(ctx, cn, sizeof cn), H2_ETLS);
	SSL_CTX_free(ctx);
}

static void
test_tls_ctx_rejects_bad_files(void **state)
{
	struct tls_client_options o;
	SSL_CTX *ctx;
	char err[256], missing[320];

	snprintf(missing, sizeof missing, "%s/missing.pem", certs_dir);
	memset(&o, 0, sizeof o);
	o.ca_file = missing;
	assert_int_equal(tls_client_ctx_new(&o, &ctx, err, sizeof err), TLS_ECA);
	assert_non_null(strstr(err, missing));
	assert_null(ctx);

	memset(&o, 0, sizeof o);
	o.ca_file = ca_file;
	o.cert_file = client_cert;
	o.key_file = server_key;
	assert_int_equal(tls_client_ctx_new(&o, &ctx, err, sizeof err), TLS_EKEY);

	memset(&o, 0, sizeof o);
	o.ca_file = ca_file;
	o.pkcs12_file = client_p12;
	o.pkcs12_password = "wrong";
	assert_int_equal(tls_client_ctx_new(&o, &ctx, err, sizeof err), TLS_EPKCS12);

	o.cert_file = client_cert;
	assert_int_equal(tls_client_ctx_new(&o, &ctx, err, sizeof err), TLS_EINVAL);
	assert_string_equal(tls_strerror(TLS_EPKCS12), "cannot load PKCS#12 file");

	/* Secret files go through the one reader: only regular files, named in errors. */
	memset(&o, 0, sizeof o);
	o.ca_file = ca_file;
	o.pkcs12_file = certs_dir;
	assert_int_equal(tls_client_ctx_new(&o, &ctx, err, sizeof err), TLS_EPKCS12);
	snprintf(missing, sizeof missing, "cannot read PKCS#12 file %s: not a regular file",
	    certs_dir);
	assert_string_equal(err, missing);
	memset(&o, 0, sizeof o);
	o.ca_file = ca_file;
	o.cert_file = client_cert;
	o.key_file = "/nonexistent/client.key";
	assert_int_equal(tls_client_ctx_new(&o, &ctx, err, sizeof err), TLS_EKEY);
	assert_string_equal(err,
	    "cannot read client key /nonexistent/client.key: No such file or directory");
	assert_null(ctx);
	assert_string_equal(h2_strerror(H2_EQUEUEFULL), "request queue full");
}

/* Write the test PKI into a temporary directory. */
static int
group_setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(certs_dir, sizeof certs_dir, "%s/test_h2.XXXXXX", tmp ? tmp : "/tmp");
	if (mkdtemp(certs_dir) == NULL)
		return -1;
	snprintf(ca_file, sizeof ca_file, "%s/ca.pem", certs_dir);
	snprintf(server_cert, sizeof server_cert, "%s/server.pem", certs_dir);
	snprintf(server_key, sizeof server_key, "%s/server.key", certs_dir);
	snprintf(rogue_cert, sizeof rogue_cert, "%s/rogue.pem", certs_dir);
	snprintf(rogue_key, sizeof rogue_key, "%s/rogue.key", certs_dir);
	snprintf(client_cert, sizeof client_cert, "%s/client.pem", certs_dir);
	snprintf(client_key, sizeof client_key, "%s/client.key", certs_dir);
	snprintf(client_p12, sizeof client_p12, "%s/client.p12", certs_dir);
	log_set_level(getenv("H2_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	return h2_test_certs_make(certs_dir);
}

/* Remove the PKI. */
static int
group_teardown(void **state)
{
	const char *files[] = { "ca.pem", "server.pem", "server.key", "rogue.pem",
	    "rogue.key", "client.pem", "client.key", "client.p12" };
	char path[400];
	size_t i;

	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", certs_dir, files[i]);
		unlink(path);
	}
	return rmdir(certs_dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_h2_thousand_requests_complete_once_within_stream_limit),
		cmocka_unit_test(test_h2_deep_queue_opens_the_connections_it_needs_at_once),
		cmocka_unit_test(test_h2_shallow_queue_opens_one_connection_at_a_time),
		cmocka_unit_test(test_h2_idle_connections_close_all_but_one),
		cmocka_unit_test(test_h2_follows_max_streams_raised_after_first_answer),
		cmocka_unit_test(test_h2_respects_max_streams_lowered_mid_run),
		cmocka_unit_test(test_h2_goaway_mid_batch_resends_unprocessed_once),
		cmocka_unit_test(test_h2_refused_stream_is_resent),
		cmocka_unit_test(test_h2_refused_too_often_fails_with_erefused),
		cmocka_unit_test(test_h2_timeout_completes_etimedout_and_cancels_stream),
		cmocka_unit_test(test_h2_queued_request_times_out_without_being_sent),
		cmocka_unit_test(test_h2_unknown_ca_fails_with_verify_reason),
		cmocka_unit_test(test_h2_wrong_hostname_fails_with_hostname_mismatch),
		cmocka_unit_test(test_h2_full_queue_returns_equeuefull),
		cmocka_unit_test(test_h2_connection_refused_backs_off_then_succeeds),
		cmocka_unit_test(test_h2_proxy_connect_tunnels_to_server),
		cmocka_unit_test(test_h2_proxy_authorization_is_sent_with_connect),
		cmocka_unit_test(test_h2_proxy_refusal_fails_with_eproxy),
		cmocka_unit_test(test_h2_dropped_connection_fails_sent_requests_with_econnlost),
		cmocka_unit_test(test_h2_idle_connection_is_kept_alive_with_ping),
		cmocka_unit_test(test_h2_missing_ping_ack_closes_connection),
		cmocka_unit_test(test_h2_drain_finishes_requests_then_sends_goaway),
		cmocka_unit_test(test_h2_free_cancels_queued_and_in_flight),
		cmocka_unit_test(test_h2_response_exposes_status_headers_and_bounded_body),
		cmocka_unit_test(test_tls_client_certificate_from_pem_or_pkcs12),
		cmocka_unit_test(test_tls_ctx_rejects_bad_files),
	};

	/* TLS writes to a closed socket; the daemon ignores SIGPIPE the same way. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("h2", tests, group_setup, group_teardown);
}
