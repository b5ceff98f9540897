/*
 * Tests for metrics.c (the Prometheus text format, what a scrape renders) and for the
 * delivery layer's outcome and latency counters that it reads.
 */
#include "autoconf.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "api.h"
#include "clock.h"
#include "delivery.h"
#include "metrics.h"
#include "model.h"
#include "notification.h"
#include "xmalloc.h"

/* Render with fn into a fresh buffer and compare with the exact expected text. */
static void
assert_text(const struct metrics_text *t, const char *expected)
{
	if (strcmp(t->data, expected) != 0)
		fail_msg("rendered:\n%s\nexpected:\n%s", t->data, expected);
	assert_int_equal(t->len, strlen(expected));
}

/* Does the rendered text hold this exact line? */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	}
	return 0;
}

#define assert_line(text, line) do {					\
	if (!has_line((text), (line)))					\
		fail_msg("no line '%s' in:\n%s", (line), (text));	\
} while (0)
#define assert_no_line_starting(text, prefix) do {			\
	const char *p_ = strstr((text), (prefix));			\
	if (p_ != NULL && (p_ == (text) || p_[-1] == '\n'))		\
		fail_msg("unexpected line '%s...' in:\n%s", (prefix), (text)); \
} while (0)

/* ---- the text format ---- */

static void
test_family_writes_help_then_type(void **state)
{
	struct metrics_text t;

	metrics_text_init(&t);
	metrics_family(&t, "pushrelay_x_total", METRICS_COUNTER, "Things counted.");
	metrics_family(&t, "pushrelay_y", METRICS_GAUGE, "A level.");
	metrics_family(&t, "pushrelay_z_seconds", METRICS_HISTOGRAM, "A spread.");
	assert_text(&t,
	    "# HELP pushrelay_x_total Things counted.\n"
	    "# TYPE pushrelay_x_total counter\n"
	    "# HELP pushrelay_y A level.\n"
	    "# TYPE pushrelay_y gauge\n"
	    "# HELP pushrelay_z_seconds A spread.\n"
	    "# TYPE pushrelay_z_seconds histogram\n");
	metrics_text_free(&t);
}

static void
test_help_escapes_backslash_and_newline_but_not_quotes(void **state)
{
	struct metrics_text t;

	metrics_text_init(&t);
	metrics_family(&t, "m", METRICS_GAUGE, "a\\b\nc \"d\"");
	assert_text(&t, "# HELP m a\\\\b\\nc \"d\"\n# TYPE m gauge\n");
	metrics_text_free(&t);
}

static void
test_label_values_escape_backslash_quote_and_newline(void **state)
{
	struct metrics_text t;
	struct metrics_label labels[] = {
		{ "app", "com.\"x\"\\y\nz" }, { "outcome", "sent" },
	};

	metrics_text_init(&t);
	metrics_sample_uint(&t, "m_total", labels, 2, 7);
	assert_text(&t, "m_total{app=\"com.\\\"x\\\"\\\\y\\nz\",outcome=\"sent\"} 7\n");
	metrics_text_free(&t);
}

static void
test_sample_without_labels_has_no_braces(void **state)
{
	struct metrics_text t;

	metrics_text_init(&t);
	metrics_sample_uint(&t, "m", NULL, 0, 0);
	metrics_sample(&t, "g", NULL, 0, 1.5);
	assert_text(&t, "m 0\ng 1.5\n");
	metrics_text_free(&t);
}

static void
test_integer_samples_stay_exact_past_2_pow_53(void **state)
{
	struct metrics_text t;

	metrics_text_init(&t);
	metrics_sample_uint(&t, "m_total", NULL, 0, UINT64_MAX);
	metrics_sample_uint(&t, "n_total", NULL, 0, (UINT64_C(1) << 53) + 1);
	assert_text(&t, "m_total 18446744073709551615\nn_total 9007199254740993\n");
	metrics_text_free(&t);
}

static void
test_float_samples_spell_nan_and_infinities(void **state)
{
	struct metrics_text t;

	metrics_text_init(&t);
	metrics_sample(&t, "a", NULL, 0, NAN);
	metrics_sample(&t, "b", NULL, 0, INFINITY);
	metrics_sample(&t, "c", NULL, 0, -INFINITY);
	metrics_sample(&t, "d", NULL, 0, 0.1);
	metrics_sample(&t, "e", NULL, 0, 1780000000.123);
	assert_text(&t, "a NaN\nb +Inf\nc -Inf\nd 0.1\ne 1780000000.123\n");
	metrics_text_free(&t);
}

static void
test_histogram_buckets_are_cumulative_and_end_with_inf_sum_count(void **state)
{
	static const double bounds[] = { 0.005, 0.25, 1, 10 };
	static const uint64_t buckets[] = { 2, 0, 3, 1, 4 };
	struct metrics_label labels[] = { { "provider", "apns" } };
	struct metrics_text t;

	metrics_text_init(&t);
	metrics_histogram(&t, "lat_seconds", labels, 1, bounds, buckets, 4, 61.25);
	assert_text(&t,
	    "lat_seconds_bucket{provider=\"apns\",le=\"0.005\"} 2\n"
	    "lat_seconds_bucket{provider=\"apns\",le=\"0.25\"} 2\n"
	    "lat_seconds_bucket{provider=\"apns\",le=\"1\"} 5\n"
	    "lat_seconds_bucket{provider=\"apns\",le=\"10\"} 6\n"
	    "lat_seconds_bucket{provider=\"apns\",le=\"+Inf\"} 10\n"
	    "lat_seconds_sum{provider=\"apns\"} 61.25\n"
	    "lat_seconds_count{provider=\"apns\"} 10\n");
	metrics_text_free(&t);
}

static void
test_histogram_without_labels_has_only_le(void **state)
{
	static const double bounds[] = { 0.5 };
	static const uint64_t buckets[] = { 0, 0 };
	struct metrics_text t;

	metrics_text_init(&t);
	metrics_histogram(&t, "h", NULL, 0, bounds, buckets, 1, 0);
	assert_text(&t, "h_bucket{le=\"0.5\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
	metrics_text_free(&t);
}

static void
test_text_grows_past_its_first_allocation(void **state)
{
	struct metrics_text t;
	char name[32], expected[40];
	size_t at = 0;

	metrics_text_init(&t);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof name, "metric_%d", i);
		metrics_sample_uint(&t, name, NULL, 0, (uint64_t)i);
	}
	assert_true(t.len > 4096);
	assert_int_equal(strlen(t.data), t.len);
	for (int i = 0; i < 2000; i++) {
		int n = snprintf(expected, sizeof expected, "metric_%d %d\n", i, i);
		assert_memory_equal(t.data + at, expected, (size_t)n);
		at += (size_t)n;
	}
	assert_int_equal(at, t.len);
	metrics_text_free(&t);
}

/* ---- what a scrape renders ---- */

static struct delivery_outcome_counts sample_outcomes[2];
static struct api_request_count sample_requests[4];

/* A snapshot with a bit of everything, as metrics_collect() would fill it. */
static void
sample_snapshot(struct metrics_snapshot *s)
{
	memset(s, 0, sizeof *s);
	s->version = "9.8.7";
	s->start_ms = INT64_C(1780000000123);
	s->now_ms = s->start_ms + 65000;
	s->has_devices = 1;
	s->devices = 42;
	s->delivery.queued = 5;
	s->delivery.retrying = 2;
	s->delivery.in_flight = 3;
	s->delivery.sent = 11;
	s->delivery_free = 90;

	memset(sample_outcomes, 0, sizeof sample_outcomes);
	sample_outcomes[0].platform = DEVICE_PLATFORM_APNS;
	sample_outcomes[0].app_id = "com.example.chat";
	sample_outcomes[0].counts[DELIVERY_OUTCOME_SENT] = 3;
	sample_outcomes[0].counts[DELIVERY_OUTCOME_TOKEN_REMOVED] = 1;
	sample_outcomes[0].counts[DELIVERY_OUTCOME_RETRIED] = 4;
	sample_outcomes[1].platform = DEVICE_PLATFORM_FCM;
	sample_outcomes[1].app_id = "example-project";
	sample_outcomes[1].counts[DELIVERY_OUTCOME_CONFIG_ERROR] = 2;
	s->outcomes = sample_outcomes;
	s->outcome_count = 2;

	s->latency[DEVICE_PLATFORM_APNS].buckets[0] = 1;	/* <= 5 ms */
	s->latency[DEVICE_PLATFORM_APNS].buckets[3] = 2;	/* <= 50 ms */
	s->latency[DEVICE_PLATFORM_APNS].buckets[DELIVERY_LATENCY_BUCKETS] = 1;
	s->latency[DEVICE_PLATFORM_APNS].count = 4;
	s->latency[DEVICE_PLATFORM_APNS].sum_ms = 61234;

	s->providers[0].name = "apns";
	s->providers[0].backend = "apns";
	s->providers[0].stats.connections = 2;
	s->providers[0].stats.streams_in_flight = 17;
	s->providers[0].stats.token_renewals = 3;
	s->providers[0].stats.auth_failures = 1;
	s->providers[1].name = "fcm";
	s->providers[1].backend = "log";
	s->provider_count = 2;

	s->sources[0].name = "http";
	s->sources[0].stats.received = 8;
	s->sources[0].stats.malformed = 1;
	s->sources[0].stats.lag = -1;
	s->sources[0].stats.connected = 1;
	s->sources[1].name = "redis-streams";
	s->sources[1].stats.received = 100;
	s->sources[1].stats.pending = 4;
	s->sources[1].stats.lag = 12;
	s->sources[1].stats.reconnects = 2;
	s->sources[1].stats.paused = 1;
	s->source_count = 2;

	s->has_router = 1;
	s->router.in_flight = 6;
	s->router.coalesced = 9;
	s->router.duplicates = 1;
	s->router.rate_limited = 2;
	s->router.presence_entries = 12;
	s->router.presence_dropped = 5;

	s->has_feedback = 1;
	s->feedback.posted = 4;
	s->feedback.failed = 1;
	s->feedback.queued = 2;

	sample_requests[0] = (struct api_request_count){ "/v1/push", "POST", 202, 3 };
	sample_requests[1] = (struct api_request_count){ "/v1/push", "POST", 400, 1 };
	sample_requests[2] = (struct api_request_count){ "/v1/devices/{device_id}", "PUT", 201,
	    5 };
	sample_requests[3] = (struct api_request_count){ "unmatched", "GET", 404, 2 };
	s->requests = sample_requests;
	s->request_count = 4;
}

static char *
render(const struct metrics_snapshot *s)
{
	struct metrics_text t;

	metrics_text_init(&t);
	metrics_render_text(s, &t);
	return t.data;
}

static void
test_render_counts_notifications_by_provider_app_and_final_outcome(void **state)
{
	struct metrics_snapshot s;
	char *text;

	sample_snapshot(&s);
	text = render(&s);
	assert_line(text, "# TYPE pushrelay_notifications_total counter");
	assert_line(text, "pushrelay_notifications_total{provider=\"apns\",app=\"com.example.chat\","
	    "outcome=\"sent\"} 3");
	assert_line(text, "pushrelay_notifications_total{provider=\"apns\",app=\"com.example.chat\","
	    "outcome=\"token_removed\"} 1");
	assert_line(text, "pushrelay_notifications_total{provider=\"apns\",app=\"com.example.chat\","
	    "outcome=\"failed\"} 0");
	assert_line(text, "pushrelay_notifications_total{provider=\"fcm\",app=\"example-project\","
	    "outcome=\"config_error\"} 2");
	/* A retry is not an outcome: it has its own counter. */
	assert_null(strstr(text, "outcome=\"retried\""));
	assert_line(text, "pushrelay_retries_total{provider=\"apns\",app=\"com.example.chat\"} 4");
	assert_line(text, "pushrelay_retries_total{provider=\"fcm\",app=\"example-project\"} 0");
	free(text);
}

static void
test_render_latency_histogram_in_seconds_per_provider(void **state)
{
	struct metrics_snapshot s;
	char *text;

	sample_snapshot(&s);
	text = render(&s);
	assert_line(text, "# TYPE pushrelay_notification_latency_seconds histogram");
	assert_line(text, "pushrelay_notification_latency_seconds_bucket{provider=\"apns\","
	    "le=\"0.005\"} 1");
	assert_line(text, "pushrelay_notification_latency_seconds_bucket{provider=\"apns\","
	    "le=\"0.025\"} 1");
	assert_line(text, "pushrelay_notification_latency_seconds_bucket{provider=\"apns\","
	    "le=\"0.05\"} 3");
	assert_line(text, "pushrelay_notification_latency_seconds_bucket{provider=\"apns\","
	    "le=\"60\"} 3");
	assert_line(text, "pushrelay_notification_latency_seconds_bucket{provider=\"apns\","
	    "le=\"+Inf\"} 4");
	assert_line(text, "pushrelay_notification_latency_seconds_sum{provider=\"apns\"} 61.234");
	assert_line(text, "pushrelay_notification_latency_seconds_count{provider=\"apns\"} 4");
	assert_line(text, "pushrelay_notification_latency_seconds_count{provider=\"fcm\"} 0");
	free(text);
}

static void
test_render_gauges_providers_and_process(void **state)
{
	struct metrics_snapshot s;
	char *text;

	sample_snapshot(&s);
	text = render(&s);
	assert_line(text, "pushrelay_build_info{version=\"9.8.7\"} 1");
	assert_line(text, "pushrelay_start_time_seconds 1780000000.123");
	assert_line(text, "pushrelay_registry_devices 42");
	assert_line(text, "pushrelay_deliveries_queued 5");
	assert_line(text, "pushrelay_deliveries_retrying 2");
	assert_line(text, "pushrelay_deliveries_in_flight 3");
	assert_line(text, "pushrelay_delivery_queue_free 90");
	assert_line(text, "pushrelay_h2_connections{provider=\"apns\"} 2");
	assert_line(text, "pushrelay_h2_streams_in_flight{provider=\"apns\"} 17");
	assert_line(text, "pushrelay_provider_token_renewals_total{provider=\"apns\"} 3");
	assert_line(text, "pushrelay_provider_auth_failures_total{provider=\"apns\"} 1");
	assert_line(text, "pushrelay_provider_dry_run{provider=\"apns\"} 0");
	assert_line(text, "pushrelay_provider_dry_run{provider=\"fcm\"} 1");
	assert_line(text, "pushrelay_router_events_in_flight 6");
	assert_line(text, "pushrelay_router_coalesced_total 9");
	assert_line(text, "pushrelay_router_duplicates_total 1");
	assert_line(text, "pushrelay_router_rate_limited_total 2");
	assert_line(text, "pushrelay_presence_entries 12");
	assert_line(text, "pushrelay_presence_expired_total 0");
	assert_line(text, "pushrelay_presence_dropped_total 5");
	assert_line(text, "pushrelay_feedback_events_total{result=\"posted\"} 4");
	assert_line(text, "pushrelay_feedback_events_total{result=\"failed\"} 1");
	assert_line(text, "pushrelay_feedback_events_total{result=\"dropped\"} 0");
	assert_line(text, "pushrelay_feedback_queue 2");
	free(text);
}

static void
test_render_sources_omit_unknown_stream_lag(void **state)
{
	struct metrics_snapshot s;
	char *text;

	sample_snapshot(&s);
	text = render(&s);
	assert_line(text, "pushrelay_events_total{source=\"http\"} 8");
	assert_line(text, "pushrelay_events_total{source=\"redis-streams\"} 100");
	assert_line(text, "pushrelay_events_skipped_total{source=\"http\",reason=\"malformed\"} 1");
	assert_line(text, "pushrelay_source_reconnects_total{source=\"redis-streams\"} 2");
	assert_line(text, "pushrelay_source_connected{source=\"http\"} 1");
	assert_line(text, "pushrelay_source_paused{source=\"redis-streams\"} 1");
	assert_line(text, "pushrelay_source_pending_events{source=\"redis-streams\"} 4");
	assert_line(text, "pushrelay_stream_lag_entries{source=\"redis-streams\"} 12");
	assert_null(strstr(text, "pushrelay_stream_lag_entries{source=\"http\"}"));
	free(text);
}

static void
test_render_api_requests_by_route_pattern_and_pushes_accepted(void **state)
{
	struct metrics_snapshot s;
	char *text;

	sample_snapshot(&s);
	text = render(&s);
	assert_line(text, "pushrelay_api_requests_total{route=\"/v1/push\",method=\"POST\","
	    "status=\"202\"} 3");
	assert_line(text, "pushrelay_api_requests_total{route=\"/v1/devices/{device_id}\","
	    "method=\"PUT\",status=\"201\"} 5");
	assert_line(text, "pushrelay_api_requests_total{route=\"unmatched\",method=\"GET\","
	    "status=\"404\"} 2");
	assert_line(text, "pushrelay_pushes_accepted_total 3");
	free(text);
}

static void
test_render_leaves_out_what_is_not_running(void **state)
{
	struct metrics_snapshot s;
	char *text;

	sample_snapshot(&s);
	s.has_devices = 0;
	s.has_router = 0;
	s.has_feedback = 0;
	s.source_count = 0;
	s.start_ms = 0;
	text = render(&s);
	assert_no_line_starting(text, "pushrelay_registry_devices");
	assert_no_line_starting(text, "# HELP pushrelay_router_");
	assert_no_line_starting(text, "# HELP pushrelay_feedback_");
	assert_no_line_starting(text, "# HELP pushrelay_events_total");
	assert_no_line_starting(text, "pushrelay_start_time_seconds");
	assert_line(text, "pushrelay_deliveries_queued 5");
	free(text);
}

/* The family a sample line belongs to: its name, less a histogram's suffix. */
static void
sample_family(const char *line, const char *histograms, char *out, size_t outlen)
{
	size_t n = strcspn(line, "{ ");
	static const char *const suffixes[] = { "_bucket", "_sum", "_count" };

	snprintf(out, outlen, "%.*s", (int)n, line);
	for (size_t i = 0; i < 3; i++) {
		size_t sl = strlen(suffixes[i]), ol = strlen(out);
		char base[128];
		if (ol <= sl || strcmp(out + ol - sl, suffixes[i]) != 0)
			continue;
		snprintf(base, sizeof base, " %.*s ", (int)(ol - sl), out);
		if (strstr(histograms, base) != NULL) {
			out[ol - sl] = '\0';
			return;
		}
	}
}

static void
test_render_declares_each_family_once_before_its_samples(void **state)
{
	struct metrics_snapshot s;
	char *text, *save = NULL, *line, current[128] = "", family[128];
	char seen[8192] = " ", histograms[1024] = " ";
	int samples = 0, families = 0;

	sample_snapshot(&s);
	text = render(&s);
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char name[128], type[32], key[140];
		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s", name), 1);
			snprintf(key, sizeof key, " %s ", name);
			if (strstr(seen, key) != NULL)
				fail_msg("family %s declared twice", name);
			strncat(seen, key + 1, sizeof seen - strlen(seen) - 1);
			snprintf(current, sizeof current, "%s", name);
			families++;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s %31s", name, type), 2);
			assert_string_equal(name, current);
			if (strcmp(type, "histogram") == 0) {
				snprintf(key, sizeof key, "%s ", name);
				strncat(histograms, key, sizeof histograms - strlen(histograms) - 1);
			}
			continue;
		}
		sample_family(line, histograms, family, sizeof family);
		if (strcmp(family, current) != 0)
			fail_msg("sample '%s' outside its family (in %s)", line, current);
		assert_true(strncmp(family, "pushrelay_", 10) == 0);
		samples++;
	}
	assert_int_equal(families, 44);
	assert_int_equal(samples, 107);
	free(text);
}

static void
test_stats_json_shows_the_same_figures(void **state)
{
	struct metrics_snapshot s;
	json_t *j, *row, *bucket;

	sample_snapshot(&s);
	j = metrics_render_json(&s);
	assert_string_equal(json_string_value(json_object_get(j, "version")), "9.8.7");
	assert_string_equal(json_string_value(json_object_get(j, "started_at")),
	    "2026-05-28T20:26:40.123Z");
	assert_int_equal(json_integer_value(json_object_get(j, "uptime_seconds")), 65);
	assert_int_equal(json_integer_value(json_object_get(j, "devices")), 42);
	assert_int_equal(json_integer_value(json_object_get(j, "pushes_accepted")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "delivery"),
	    "queued")), 5);
	row = json_array_get(json_object_get(j, "notifications"), 0);
	assert_string_equal(json_string_value(json_object_get(row, "provider")), "apns");
	assert_string_equal(json_string_value(json_object_get(row, "app")), "com.example.chat");
	assert_int_equal(json_integer_value(json_object_get(row, "sent")), 3);
	assert_int_equal(json_integer_value(json_object_get(row, "retried")), 4);
	bucket = json_array_get(json_object_get(json_object_get(json_object_get(j, "latency"),
	    "apns"), "buckets"), 3);
	assert_int_equal(json_integer_value(json_object_get(bucket, "le_ms")), 50);
	assert_int_equal(json_integer_value(json_object_get(bucket, "count")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j,
	    "latency"), "apns"), "sum_ms")), 61234);
	assert_true(json_is_true(json_object_get(json_object_get(json_object_get(j,
	    "providers"), "fcm"), "dry_run")));
	assert_true(json_is_null(json_object_get(json_object_get(json_object_get(j, "sources"),
	    "http"), "lag")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j,
	    "sources"), "redis-streams"), "lag")), 12);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "router"),
	    "coalesced")), 9);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "feedback"),
	    "posted")), 4);
	row = json_array_get(json_object_get(j, "api_requests"), 2);
	assert_string_equal(json_string_value(json_object_get(row, "route")),
	    "/v1/devices/{device_id}");
	assert_int_equal(json_integer_value(json_object_get(row, "status")), 201);
	assert_int_equal(json_integer_value(json_object_get(row, "count")), 5);
	json_decref(j);
}

/* ---- the delivery layer's counters ---- */

/* A provider that keeps what it is sent, or refuses everything with refuse. */
static struct {
	struct delivery *sent[16];
	provider_done_fn *done[16];	/* each send's completion callback */
	void *done_arg[16];
	size_t count;
	int refuse;
} fake;

static int
fake_send(struct provider *provider, struct delivery *d, provider_done_fn *done,
    void *done_arg)
{
	if (fake.refuse != 0)
		return fake.refuse;
	fake.done[fake.count] = done;
	fake.done_arg[fake.count] = done_arg;
	fake.sent[fake.count++] = d;
	return PROVIDER_OK;
}

static const struct provider_ops fake_ops = { .name = "fake", .send = fake_send };

struct delivery_fixture {
	struct event_base *base;
	struct delivery_layer *layer;
	struct push_content *content;
	struct device_target *targets[80];
	char apps[80][24];
};

static int
delivery_setup(void **state)
{
	struct delivery_fixture *f = xcalloc(1, sizeof *f);
	struct delivery_options options = { .max_attempts = 3, .retry_initial_ms = 60000,
		.retry_max_ms = 60000, .max_age_ms = 3600000, .queue_size = 1000 };
	struct notification n;

	memset(&fake, 0, sizeof fake);
	f->base = event_base_new();
	assert_non_null(f->base);
	f->layer = delivery_layer_new(f->base, NULL, NULL, &fake_ops, NULL, &fake_ops, NULL, NULL,
	    &options);
	notification_init(&n);
	n.body = xstrdup("hello");
	f->content = delivery_content_new(&n, 0);
	*state = f;
	return 0;
}

static int
delivery_teardown(void **state)
{
	struct delivery_fixture *f = *state;

	delivery_layer_free(f->layer);
	delivery_content_unref(f->content);
	for (size_t i = 0; i < 80; i++)
		free(f->targets[i]);
	event_base_free(f->base);
	free(f);
	return 0;
}

/*
 * Submit a delivery to app (a target kept in the fixture), accepted ago_ms before
 * now; last_success_at is now so that a success is not written to the (absent) store.
 */
static void
submit(struct delivery_fixture *f, size_t i, enum device_platform platform, const char *app,
    int64_t ago_ms)
{
	struct device_target *t = xcalloc(1, sizeof *t);

	snprintf(f->apps[i], sizeof f->apps[i], "%s", app);
	t->device_id = "device";
	t->client_id = "client";
	t->token = "00";
	t->app_id = f->apps[i];
	t->platform = platform;
	t->last_success_at = clock_now_ms();
	f->targets[i] = t;
	delivery_submit(delivery_new(f->layer, t, f->content, -1, clock_now_ms() - ago_ms), NULL,
	    NULL, 0);
}

static const struct delivery_outcome_counts *
find_row(const struct delivery_fixture *f, enum device_platform platform, const char *app)
{
	const struct delivery_outcome_counts *rows;
	size_t n = delivery_get_outcomes(f->layer, &rows);

	for (size_t i = 0; i < n; i++) {
		if (rows[i].platform == platform && strcmp(rows[i].app_id, app) == 0)
			return &rows[i];
	}
	return NULL;
}

static void
complete(struct delivery *d, enum provider_verdict verdict, int status)
{
	struct provider_result result;

	memset(&result, 0, sizeof result);
	result.verdict = verdict;
	result.status = status;
	snprintf(result.reason, sizeof result.reason, "%s", provider_verdict_name(verdict));
	for (size_t i = 0; i < fake.count; i++) {
		if (fake.sent[i] == d) {
			fake.done[i](d, &result, fake.done_arg[i]);
			return;
		}
	}
	fail_msg("completing a delivery the provider was not sent");
}

static void
test_delivery_counts_outcomes_by_platform_and_app(void **state)
{
	struct delivery_fixture *f = *state;
	const struct delivery_outcome_counts *apns, *fcm;

	submit(f, 0, DEVICE_PLATFORM_APNS, "com.a", 0);
	submit(f, 1, DEVICE_PLATFORM_APNS, "com.a", 0);
	submit(f, 2, DEVICE_PLATFORM_APNS, "com.a", 0);
	submit(f, 3, DEVICE_PLATFORM_FCM, "proj-b", 0);
	submit(f, 4, DEVICE_PLATFORM_FCM, "proj-b", 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(fake.count, 5);
	complete(fake.sent[0], PROVIDER_SENT, 200);
	complete(fake.sent[1], PROVIDER_RETRY, 503);
	complete(fake.sent[2], PROVIDER_REJECTED, 400);
	complete(fake.sent[3], PROVIDER_CONFIG, 403);
	complete(fake.sent[4], PROVIDER_SENT, 200);

	apns = find_row(f, DEVICE_PLATFORM_APNS, "com.a");
	fcm = find_row(f, DEVICE_PLATFORM_FCM, "proj-b");
	assert_non_null(apns);
	assert_non_null(fcm);
	assert_null(find_row(f, DEVICE_PLATFORM_FCM, "com.a"));
	assert_int_equal(apns->counts[DELIVERY_OUTCOME_SENT], 1);
	assert_int_equal(apns->counts[DELIVERY_OUTCOME_RETRIED], 1);
	assert_int_equal(apns->counts[DELIVERY_OUTCOME_REJECTED], 1);
	assert_int_equal(apns->counts[DELIVERY_OUTCOME_FAILED], 0);
	assert_int_equal(fcm->counts[DELIVERY_OUTCOME_CONFIG_ERROR], 1);
	assert_int_equal(fcm->counts[DELIVERY_OUTCOME_SENT], 1);
	assert_string_equal(delivery_outcome_name(DELIVERY_OUTCOME_CONFIG_ERROR), "config_error");
	assert_string_equal(delivery_outcome_name(DELIVERY_OUTCOME_TOKEN_REMOVED),
	    "token_removed");
}

static void
test_delivery_latency_counts_final_answers_only(void **state)
{
	struct delivery_fixture *f = *state;
	struct delivery_latency apns, fcm;

	submit(f, 0, DEVICE_PLATFORM_APNS, "com.a", 30);	/* bucket <= 50 ms */
	submit(f, 1, DEVICE_PLATFORM_APNS, "com.a", 100000);	/* above 60 s */
	submit(f, 2, DEVICE_PLATFORM_APNS, "com.a", 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(fake.count, 3);
	complete(fake.sent[0], PROVIDER_SENT, 200);
	complete(fake.sent[1], PROVIDER_REJECTED, 400);
	complete(fake.sent[2], PROVIDER_RETRY, 503);	/* not final: not observed */

	delivery_get_latency(f->layer, DEVICE_PLATFORM_APNS, &apns);
	delivery_get_latency(f->layer, DEVICE_PLATFORM_FCM, &fcm);
	assert_int_equal(apns.count, 2);
	assert_int_equal(apns.buckets[3], 1);
	assert_int_equal(apns.buckets[DELIVERY_LATENCY_BUCKETS], 1);
	assert_true(apns.sum_ms >= 100030 && apns.sum_ms < 100030 + 5000);
	assert_int_equal(fcm.count, 0);
	assert_int_equal(delivery_latency_bounds_ms[3], 50);
	assert_int_equal(delivery_latency_bounds_ms[DELIVERY_LATENCY_BUCKETS - 1], 60000);
}

static void
test_delivery_counts_cancelled_apart_from_failed(void **state)
{
	struct delivery_fixture *f = *state;
	const struct delivery_outcome_counts *row;

	submit(f, 0, DEVICE_PLATFORM_FCM, "proj-c", 0);
	submit(f, 1, DEVICE_PLATFORM_FCM, "proj-c", 0);
	assert_int_equal(delivery_cancel_content(f->layer, f->content, "deleted"), 2);
	row = find_row(f, DEVICE_PLATFORM_FCM, "proj-c");
	assert_non_null(row);
	assert_int_equal(row->counts[DELIVERY_OUTCOME_CANCELLED], 2);
	assert_int_equal(row->counts[DELIVERY_OUTCOME_FAILED], 0);
}

static void
test_delivery_counts_apps_past_the_cap_as_other(void **state)
{
	struct delivery_fixture *f = *state;
	const struct delivery_outcome_counts *rows, *other;
	char app[24];
	size_t n;

	fake.refuse = PROVIDER_ENOAPP;
	for (size_t i = 0; i < DELIVERY_OUTCOME_APPS_MAX + 3; i++) {
		snprintf(app, sizeof app, "app-%zu", i);
		submit(f, i, DEVICE_PLATFORM_APNS, app, 0);
	}
	submit(f, DELIVERY_OUTCOME_APPS_MAX + 3, DEVICE_PLATFORM_FCM, "fcm-app", 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	n = delivery_get_outcomes(f->layer, &rows);
	assert_int_equal(n, DELIVERY_OUTCOME_APPS_MAX + 2);
	assert_non_null(find_row(f, DEVICE_PLATFORM_APNS, "app-63"));
	assert_null(find_row(f, DEVICE_PLATFORM_APNS, "app-64"));
	other = find_row(f, DEVICE_PLATFORM_APNS, DELIVERY_OUTCOME_OTHER_APP);
	assert_non_null(other);
	assert_int_equal(other->counts[DELIVERY_OUTCOME_CONFIG_ERROR], 3);
	/* The cap is per platform. */
	assert_non_null(find_row(f, DEVICE_PLATFORM_FCM, "fcm-app"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_writes_help_then_type),
		cmocka_unit_test(test_help_escapes_backslash_and_newline_but_not_quotes),
		cmocka_unit_test(test_label_values_escape_backslash_quote_and_newline),
		cmocka_unit_test(test_sample_without_labels_has_no_braces),
		cmocka_unit_test(test_integer_samples_stay_exact_past_2_pow_53),
		cmocka_unit_test(test_float_samples_spell_nan_and_infinities),
		cmocka_unit_test(test_histogram_buckets_are_cumulative_and_end_with_inf_sum_count),
		cmocka_unit_test(test_histogram_without_labels_has_only_le),
		cmocka_unit_test(test_text_grows_past_its_first_allocation),
		cmocka_unit_test(test_render_counts_notifications_by_provider_app_and_final_outcome),
		cmocka_unit_test(test_render_latency_histogram_in_seconds_per_provider),
		cmocka_unit_test(test_render_gauges_providers_and_process),
		cmocka_unit_test(test_render_sources_omit_unknown_stream_lag),
		cmocka_unit_test(test_render_api_requests_by_route_pattern_and_pushes_accepted),
		cmocka_unit_test(test_render_leaves_out_what_is_not_running),
		cmocka_unit_test(test_render_declares_each_family_once_before_its_samples),
		cmocka_unit_test(test_stats_json_shows_the_same_figures),
		cmocka_unit_test_setup_teardown(test_delivery_counts_outcomes_by_platform_and_app,
		    delivery_setup, delivery_teardown),
		cmocka_unit_test_setup_teardown(test_delivery_latency_counts_final_answers_only,
		    delivery_setup, delivery_teardown),
		cmocka_unit_test_setup_teardown(test_delivery_counts_cancelled_apart_from_failed,
		    delivery_setup, delivery_teardown),
		cmocka_unit_test_setup_teardown(test_delivery_counts_apps_past_the_cap_as_other,
		    delivery_setup, delivery_teardown),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
