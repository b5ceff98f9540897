/* Metrics: the Prometheus text format, and what a scrape of the daemon shows. */
#include "autoconf.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "model.h"
#include "xmalloc.h"

/* What a scrape reads, as metrics_new() was given it. */
struct metrics {
	int64_t start_ms;
	struct metrics_inputs inputs;
};

/* ---- the text format ---- */

void
metrics_text_init(struct metrics_text *t)
{
	t->size = 4096;
	t->data = xmalloc(t->size);
	t->data[0] = '\0';
	t->len = 0;
}

void
metrics_text_free(struct metrics_text *t)
{
	free(t->data);
	t->data = NULL;
	t->len = t->size = 0;
}

/* Make room for n more bytes and the NUL. */
static void
text_reserve(struct metrics_text *t, size_t n)
{
	if (t->len + n + 1 <= t->size)
		return;
	while (t->len + n + 1 > t->size)
		t->size *= 2;
	t->data = xreallocarray(t->data, t->size, 1);
}

static void
text_append(struct metrics_text *t, const char *s, size_t n)
{
	text_reserve(t, n);
	memcpy(t->data + t->len, s, n);
	t->len += n;
	t->data[t->len] = '\0';
}

static void
text_putc(struct metrics_text *t, char c)
{
	text_append(t, &c, 1);
}

void
metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t->data + t->len, t->size - t->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		log_error("cannot format a metric", "format", fmt, NULL);
		return;
	}
	if ((size_t)n >= t->size - t->len) {
		text_reserve(t, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(t->data + t->len, t->size - t->len, fmt, ap);
		va_end(ap);
	}
	t->len += (size_t)n;
}

/* Append s escaped: always backslash and newline; the double quote in label values. */
static void
text_escaped(struct metrics_text *t, const char *s, int quote)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			text_append(t, "\\\\", 2);
		else if (*s == '\n')
			text_append(t, "\\n", 2);
		else if (*s == '"' && quote)
			text_append(t, "\\\"", 2);
		else
			text_putc(t, *s);
	}
}

/* A float as the format spells it: shortest round figure, NaN, +Inf, -Inf. */
static void
format_double(double v, char *out, size_t outlen)
{
	if (isnan(v))
		snprintf(out, outlen, "NaN");
	else if (isinf(v))
		snprintf(out, outlen, "%s", v > 0 ? "+Inf" : "-Inf");
	else
		snprintf(out, outlen, "%.15g", v);
}

static const char *
type_name(enum metrics_type type)
{
	switch (type) {
	case METRICS_COUNTER: return "counter";
	case METRICS_GAUGE: return "gauge";
	case METRICS_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

void
metrics_family(struct metrics_text *t, const char *name, enum metrics_type type,
    const char *help)
{
	metrics_text_printf(t, "# HELP %s ", name);
	text_escaped(t, help, 0);
	metrics_text_printf(t, "\n# TYPE %s %s\n", name, type_name(type));
}

/* name{labels[,le="..."]} and a space; no braces without labels. */
static void
write_series(struct metrics_text *t, const char *name, const char *suffix,
    const struct metrics_label *labels, size_t count, const char *le)
{
	metrics_text_printf(t, "%s%s", name, suffix);
	if (count == 0 && le == NULL) {
		text_putc(t, ' ');
		return;
	}
	text_putc(t, '{');
	for (size_t i = 0; i < count; i++) {
		metrics_text_printf(t, "%s%s=\"", i > 0 ? "," : "", labels[i].name);
		text_escaped(t, labels[i].value, 1);
		text_putc(t, '"');
	}
	if (le != NULL)
		metrics_text_printf(t, "%sle=\"%s\"", count > 0 ? "," : "", le);
	text_append(t, "} ", 2);
}

void
metrics_sample(struct metrics_text *t, const char *name, const struct metrics_label *labels,
    size_t count, double value)
{
	char v[64];

	format_double(value, v, sizeof v);
	write_series(t, name, "", labels, count, NULL);
	metrics_text_printf(t, "%s\n", v);
}

void
metrics_sample_uint(struct metrics_text *t, const char *name,
    const struct metrics_label *labels, size_t count, uint64_t value)
{
	write_series(t, name, "", labels, count, NULL);
	metrics_text_printf(t, "%" PRIu64 "\n", value);
}

void
metrics_histogram(struct metrics_text *t, const char *name, const struct metrics_label *labels,
    size_t count, const double *bounds, const uint64_t *buckets, size_t bound_count,
    double sum)
{
	uint64_t cumulative = 0;
	char le[64], v[64];

	for (size_t i = 0; i < bound_count; i++) {
		cumulative += buckets[i];
		format_double(bounds[i], le, sizeof le);
		write_series(t, name, "_bucket", labels, count, le);
		metrics_text_printf(t, "%" PRIu64 "\n", cumulative);
	}
	cumulative += buckets[bound_count];
	write_series(t, name, "_bucket", labels, count, "+Inf");
	metrics_text_printf(t, "%" PRIu64 "\n", cumulative);
	format_double(sum, v, sizeof v);
	write_series(t, name, "_sum", labels, count, NULL);
	metrics_text_printf(t, "%s\n", v);
	write_series(t, name, "_count", labels, count, NULL);
	metrics_text_printf(t, "%" PRIu64 "\n", cumulative);
}

/* ---- collecting ---- */

struct metrics *
metrics_new(const struct metrics_inputs *inputs)
{
	struct metrics *metrics = xcalloc(1, sizeof *metrics);

	metrics->inputs = *inputs;
	if (metrics->inputs.source_count > METRICS_SOURCES_MAX)
		metrics->inputs.source_count = METRICS_SOURCES_MAX;
	metrics->start_ms = clock_now_ms();
	return metrics;
}

void
metrics_free(struct metrics *metrics)
{
	free(metrics);
}

void
metrics_collect(const struct metrics *metrics, struct metrics_snapshot *s)
{
	const struct metrics_inputs *in;

	memset(s, 0, sizeof *s);
	s->version = PACKAGE_VERSION;
	s->now_ms = clock_now_ms();
	if (metrics == NULL)
		return;
	in = &metrics->inputs;
	s->start_ms = metrics->start_ms;
	if (in->delivery != NULL) {
		delivery_get_stats(in->delivery, &s->delivery);
		s->delivery_free = delivery_room(in->delivery);
		s->outcome_count = delivery_get_outcomes(in->delivery, &s->outcomes);
		for (int p = 0; p < METRICS_PROVIDERS; p++)
			delivery_get_latency(in->delivery, (enum device_platform)p,
			    &s->latency[p]);
	}
	for (int p = 0; p < METRICS_PROVIDERS; p++) {
		if (in->provider_ops[p] == NULL || in->providers[p] == NULL)
			continue;
		s->providers[s->provider_count].name =
		    model_platform_name((enum device_platform)p);
		s->providers[s->provider_count].backend = in->provider_ops[p]->name;
		if (in->provider_ops[p]->stats != NULL)
			in->provider_ops[p]->stats(in->providers[p],
			    &s->providers[s->provider_count].stats);
		s->provider_count++;
	}
	for (size_t i = 0; i < in->source_count; i++) {
		if (in->source_ops[i] == NULL || in->sources[i] == NULL)
			continue;
		s->sources[s->source_count].name = in->source_ops[i]->name;
		if (in->source_ops[i]->stats != NULL)
			in->source_ops[i]->stats(in->sources[i], &s->sources[s->source_count].stats);
		else
			s->sources[s->source_count].stats.lag = -1;
		s->source_count++;
	}
	if (in->router != NULL) {
		router_get_stats(in->router, &s->router);
		s->has_router = 1;
	}
	if (in->feedback != NULL) {
		feedback_get_stats(in->feedback, &s->feedback);
		s->has_feedback = 1;
	}
}

/* Pushes accepted: POST /v1/push answered 202. */
static uint64_t
pushes_accepted(const struct metrics_snapshot *s)
{
	uint64_t n = 0;

	for (size_t i = 0; i < s->request_count; i++) {
		const struct api_request_count *c = &s->requests[i];
		if (c->status == 202 && strcmp(c->route, "/v1/push") == 0 &&
		    strcmp(c->method, "POST") == 0)
			n += c->count;
	}
	return n;
}

/* The outcomes that end a delivery, in the order they are shown. */
static const enum delivery_outcome final_outcomes[] = {
	DELIVERY_OUTCOME_SENT, DELIVERY_OUTCOME_TOKEN_REMOVED, DELIVERY_OUTCOME_FAILED,
	DELIVERY_OUTCOME_REJECTED, DELIVERY_OUTCOME_CONFIG_ERROR, DELIVERY_OUTCOME_CANCELLED,
};
#define FINAL_OUTCOMES (sizeof final_outcomes / sizeof final_outcomes[0])

/* ---- rendering: text ---- */

/* A family of one unlabelled sample. */
static void
single_uint(struct metrics_text *t, const char *name, enum metrics_type type,
    const char *help, uint64_t value)
{
	metrics_family(t, name, type, help);
	metrics_sample_uint(t, name, NULL, 0, value);
}

static void
render_delivery(const struct metrics_snapshot *s, struct metrics_text *t)
{
	double bounds[DELIVERY_LATENCY_BUCKETS];

	metrics_family(t, "pushrelay_notifications_total", METRICS_COUNTER,
	    "Notifications finished, by platform, app and outcome.");
	for (size_t i = 0; i < s->outcome_count; i++) {
		const struct delivery_outcome_counts *row = &s->outcomes[i];
		for (size_t o = 0; o < FINAL_OUTCOMES; o++) {
			struct metrics_label labels[] = {
				{ "provider", model_platform_name(row->platform) },
				{ "app", row->app_id },
				{ "outcome", delivery_outcome_name(final_outcomes[o]) },
			};
			metrics_sample_uint(t, "pushrelay_notifications_total", labels, 3,
			    row->counts[final_outcomes[o]]);
		}
	}
	metrics_family(t, "pushrelay_retries_total", METRICS_COUNTER,
	    "Attempts that failed and were scheduled again, by platform and app.");
	for (size_t i = 0; i < s->outcome_count; i++) {
		const struct delivery_outcome_counts *row = &s->outcomes[i];
		struct metrics_label labels[] = {
			{ "provider", model_platform_name(row->platform) },
			{ "app", row->app_id },
		};
		metrics_sample_uint(t, "pushrelay_retries_total", labels, 2,
		    row->counts[DELIVERY_OUTCOME_RETRIED]);
	}
	for (size_t b = 0; b < DELIVERY_LATENCY_BUCKETS; b++)
		bounds[b] = (double)delivery_latency_bounds_ms[b] / 1000.0;
	metrics_family(t, "pushrelay_notification_latency_seconds", METRICS_HISTOGRAM,
	    "Time from acceptance to the provider's final answer, by platform.");
	for (int p = 0; p < METRICS_PROVIDERS; p++) {
		struct metrics_label labels[] = {
			{ "provider", model_platform_name((enum device_platform)p) },
		};
		metrics_histogram(t, "pushrelay_notification_latency_seconds", labels, 1, bounds,
		    s->latency[p].buckets, DELIVERY_LATENCY_BUCKETS,
		    (double)s->latency[p].sum_ms / 1000.0);
	}
	single_uint(t, "pushrelay_deliveries_queued", METRICS_GAUGE,
	    "Deliveries waiting for their provider.", s->delivery.queued);
	single_uint(t, "pushrelay_deliveries_retrying", METRICS_GAUGE,
	    "Deliveries waiting for their retry time.", s->delivery.retrying);
	single_uint(t, "pushrelay_deliveries_in_flight", METRICS_GAUGE,
	    "Deliveries handed to a provider, not answered yet.", s->delivery.in_flight);
	single_uint(t, "pushrelay_apns_environment_switches_total", METRICS_COUNTER,
	    "APNs tokens refused as BadDeviceToken and tried in the other environment.",
	    s->delivery.environment_switches);
	single_uint(t, "pushrelay_apns_environment_corrections_total", METRICS_COUNTER,
	    "Of those, devices whose environment was corrected in the store.",
	    s->delivery.environment_corrections);
	single_uint(t, "pushrelay_delivery_queue_free", METRICS_GAUGE,
	    "Places left in the delivery queue ([delivery] queue_size).", s->delivery_free);
}

/* One family with a sample per provider: values[i] for provider i. */
static void
per_provider(const struct metrics_snapshot *s, struct metrics_text *t, const char *name,
    enum metrics_type type, const char *help, const uint64_t *values)
{
	metrics_family(t, name, type, help);
	for (size_t i = 0; i < s->provider_count; i++) {
		struct metrics_label labels[] = { { "provider", s->providers[i].name } };
		metrics_sample_uint(t, name, labels, 1, values[i]);
	}
}

static void
render_providers(const struct metrics_snapshot *s, struct metrics_text *t)
{
	uint64_t dry_run[METRICS_PROVIDERS], connections[METRICS_PROVIDERS];
	uint64_t streams[METRICS_PROVIDERS], queued[METRICS_PROVIDERS];
	uint64_t renewals[METRICS_PROVIDERS], auth_failures[METRICS_PROVIDERS];

	for (size_t i = 0; i < s->provider_count; i++) {
		const struct provider_stats *ps = &s->providers[i].stats;
		dry_run[i] = strcmp(s->providers[i].backend, "log") == 0;
		connections[i] = ps->connections;
		streams[i] = ps->streams_in_flight;
		queued[i] = ps->queued;
		renewals[i] = ps->token_renewals;
		auth_failures[i] = ps->auth_failures;
	}
	per_provider(s, t, "pushrelay_provider_dry_run", METRICS_GAUGE,
	    "1 when the platform has no credentials and notifications are only logged.",
	    dry_run);
	per_provider(s, t, "pushrelay_h2_connections", METRICS_GAUGE,
	    "HTTP/2 connections open to the provider.", connections);
	per_provider(s, t, "pushrelay_h2_streams_in_flight", METRICS_GAUGE,
	    "HTTP/2 requests sent to the provider and not answered yet.", streams);
	per_provider(s, t, "pushrelay_h2_queued_requests", METRICS_GAUGE,
	    "Requests waiting for a free HTTP/2 stream.", queued);
	per_provider(s, t, "pushrelay_provider_token_renewals_total", METRICS_COUNTER,
	    "Provider tokens minted (APNs JWT, FCM OAuth access token).", renewals);
	per_provider(s, t, "pushrelay_provider_auth_failures_total", METRICS_COUNTER,
	    "Provider answers that blamed our credentials.", auth_failures);
}

/* One family with a sample per source: values[i] for source i. */
static void
per_source(const struct metrics_snapshot *s, struct metrics_text *t, const char *name,
    enum metrics_type type, const char *help, const uint64_t *values)
{
	metrics_family(t, name, type, help);
	for (size_t i = 0; i < s->source_count; i++) {
		struct metrics_label labels[] = { { "source", s->sources[i].name } };
		metrics_sample_uint(t, name, labels, 1, values[i]);
	}
}

static void
render_sources(const struct metrics_snapshot *s, struct metrics_text *t)
{
	uint64_t received[METRICS_SOURCES_MAX], dropped[METRICS_SOURCES_MAX];
	uint64_t reconnects[METRICS_SOURCES_MAX], connected[METRICS_SOURCES_MAX];
	uint64_t paused[METRICS_SOURCES_MAX], pending[METRICS_SOURCES_MAX];

	if (s->source_count == 0)
		return;
	for (size_t i = 0; i < s->source_count; i++) {
		const struct source_stats *ss = &s->sources[i].stats;
		received[i] = ss->received;
		dropped[i] = ss->dropped;
		reconnects[i] = ss->reconnects;
		connected[i] = ss->connected != 0;
		paused[i] = ss->paused != 0;
		pending[i] = ss->pending;
	}
	per_source(s, t, "pushrelay_events_total", METRICS_COUNTER,
	    "Room events handed to the router, by source.", received);
	metrics_family(t, "pushrelay_events_skipped_total", METRICS_COUNTER,
	    "Room events skipped, by source and reason (malformed, unknown).");
	for (size_t i = 0; i < s->source_count; i++) {
		struct metrics_label malformed[] = { { "source", s->sources[i].name },
			{ "reason", "malformed" } };
		struct metrics_label unknown[] = { { "source", s->sources[i].name },
			{ "reason", "unknown" } };
		metrics_sample_uint(t, "pushrelay_events_skipped_total", malformed, 2,
		    s->sources[i].stats.malformed);
		metrics_sample_uint(t, "pushrelay_events_skipped_total", unknown, 2,
		    s->sources[i].stats.unknown);
	}
	per_source(s, t, "pushrelay_events_dropped_total", METRICS_COUNTER,
	    "Room events lost while the router was full (Pub/Sub cannot pause).", dropped);
	per_source(s, t, "pushrelay_source_reconnects_total", METRICS_COUNTER,
	    "Reconnections of the source to its server.", reconnects);
	per_source(s, t, "pushrelay_source_connected", METRICS_GAUGE,
	    "1 while the source is connected.", connected);
	per_source(s, t, "pushrelay_source_paused", METRICS_GAUGE,
	    "1 while the source is paused because the router is full.", paused);
	per_source(s, t, "pushrelay_source_pending_events", METRICS_GAUGE,
	    "Events read and not acknowledged yet (Streams: entries not XACKed).", pending);
	metrics_family(t, "pushrelay_stream_lag_entries", METRICS_GAUGE,
	    "Stream entries behind the end of the stream; absent when unknown.");
	for (size_t i = 0; i < s->source_count; i++) {
		struct metrics_label labels[] = { { "source", s->sources[i].name } };
		if (s->sources[i].stats.lag >= 0)
			metrics_sample_uint(t, "pushrelay_stream_lag_entries", labels, 1,
			    (uint64_t)s->sources[i].stats.lag);
	}
}

/*
 * The room state in Redis: whether it answers, and its round trips. Left out with the
 * memory backend, which has neither.
 */
static void
render_state(const struct state_stats *st, struct metrics_text *t)
{
	struct metrics_label backend[] = { { "backend", "redis" } };

	if (st->backend == NULL || strcmp(st->backend, "redis") != 0)
		return;
	metrics_family(t, "pushrelay_state_up", METRICS_GAUGE,
	    "1 while the room state in Redis can answer: connected, its scripts loaded.");
	metrics_sample_uint(t, "pushrelay_state_up", backend, 1, st->up ? 1 : 0);
	metrics_family(t, "pushrelay_state_round_trips_total", METRICS_COUNTER,
	    "Script calls sent to the Redis room state, by what they were for.");
	for (int k = 0; k < STATE_TRIP_KINDS; k++) {
		struct metrics_label kind[] = { { "kind", state_trip_name(k) } };
		metrics_sample_uint(t, "pushrelay_state_round_trips_total", kind, 1,
		    st->round_trips[k]);
	}
	single_uint(t, "pushrelay_state_script_errors_total", METRICS_COUNTER,
	    "Error answers of the Redis room state's scripts.", st->script_errors);
	single_uint(t, "pushrelay_state_calls_waiting", METRICS_GAUGE,
	    "Calls to the Redis room state sent or waiting for Redis, not answered yet.",
	    st->waiting);
}

static void
render_router(const struct metrics_snapshot *s, struct metrics_text *t)
{
	const struct router_stats *r = &s->router;

	if (!s->has_router)
		return;
	single_uint(t, "pushrelay_router_events_in_flight", METRICS_GAUGE,
	    "Room events not acknowledged to their source yet.", r->in_flight);
	single_uint(t, "pushrelay_router_pending_recipients", METRICS_GAUGE,
	    "(room, recipient) pairs waiting: coalescing or presence grace.",
	    r->pending_recipients);
	single_uint(t, "pushrelay_router_events_total", METRICS_COUNTER,
	    "Room events handled, from any source.", r->events);
	single_uint(t, "pushrelay_router_messages_total", METRICS_COUNTER,
	    "Messages handled.", r->messages);
	single_uint(t, "pushrelay_router_recipients_notified_total", METRICS_COUNTER,
	    "Notifications sent to a recipient (one per recipient, all devices).",
	    r->notifications);
	single_uint(t, "pushrelay_router_coalesced_total", METRICS_COUNTER,
	    "Messages folded into another message's notification.", r->coalesced);
	single_uint(t, "pushrelay_router_held_total", METRICS_COUNTER,
	    "Messages held for a member in the presence grace period.", r->held);
	single_uint(t, "pushrelay_router_duplicates_total", METRICS_COUNTER,
	    "Messages seen before, skipped.", r->duplicates);
	single_uint(t, "pushrelay_router_rate_limited_total", METRICS_COUNTER,
	    "Notifications not sent because of recipient_rate_limit.", r->rate_limited);
	single_uint(t, "pushrelay_router_cancelled_total", METRICS_COUNTER,
	    "Notifications cancelled: the message was deleted before it left.", r->cancelled);
	single_uint(t, "pushrelay_router_events_skipped_total", METRICS_COUNTER,
	    "Malformed or unknown room events.", r->skipped);
	single_uint(t, "pushrelay_presence_entries", METRICS_GAUGE,
	    "Presence entries kept: connections and members in grace.", r->presence_entries);
	single_uint(t, "pushrelay_presence_expired_total", METRICS_COUNTER,
	    "Connections that left because [rooms] presence_ttl passed.", r->presence_expired);
	single_uint(t, "pushrelay_presence_dropped_total", METRICS_COUNTER,
	    "Presence entries dropped, oldest first, past [rooms] presence_max.",
	    r->presence_dropped);
	render_state(&r->state, t);
}

static void
render_feedback(const struct metrics_snapshot *s, struct metrics_text *t)
{
	static const char *const results[] = { "posted", "failed", "dropped" };
	uint64_t values[] = { s->feedback.posted, s->feedback.failed, s->feedback.dropped };

	if (!s->has_feedback)
		return;
	metrics_family(t, "pushrelay_feedback_events_total", METRICS_COUNTER,
	    "Token-removed events for [delivery] feedback_url, by result.");
	for (size_t i = 0; i < 3; i++) {
		struct metrics_label labels[] = { { "result", results[i] } };
		metrics_sample_uint(t, "pushrelay_feedback_events_total", labels, 1, values[i]);
	}
	single_uint(t, "pushrelay_feedback_queue", METRICS_GAUGE,
	    "Feedback events waiting or being posted.", s->feedback.queued);
}

/* The API's connections: how many are open, and why the guard closed some. */
static void
render_api_connections(const struct api_conn_stats *c, struct metrics_text *t)
{
	struct metrics_label peer[] = { { "reason", "peer_limit" } };
	struct metrics_label deadline[] = { { "reason", "deadline" } };

	single_uint(t, "pushrelay_api_connections", METRICS_GAUGE,
	    "API connections open now ([api] max_connections at most).", c->open);
	single_uint(t, "pushrelay_api_connections_accepted_total", METRICS_COUNTER,
	    "API connections accepted.", c->accepted);
	metrics_family(t, "pushrelay_api_connections_closed_total", METRICS_COUNTER,
	    "API connections the daemon closed: past max_connections_per_peer, or at a "
	    "header_timeout or request_timeout deadline.");
	metrics_sample_uint(t, "pushrelay_api_connections_closed_total", peer, 1,
	    c->refused_per_peer);
	metrics_sample_uint(t, "pushrelay_api_connections_closed_total", deadline, 1,
	    c->timed_out);
	single_uint(t, "pushrelay_api_accept_errors_total", METRICS_COUNTER,
	    "accept() failures on the API's listeners (EMFILE, ENFILE, ...): each pauses them.",
	    c->accept_errors);
	single_uint(t, "pushrelay_api_requests_refused_total", METRICS_COUNTER,
	    "Requests answered from their head without reading the body (no key, too "
	    "large, malformed).", c->refused);
}

static void
render_api(const struct metrics_snapshot *s, struct metrics_text *t)
{
	metrics_family(t, "pushrelay_api_requests_total", METRICS_COUNTER,
	    "API answers, by route pattern (unmatched: no route), method and status.");
	for (size_t i = 0; i < s->request_count; i++) {
		const struct api_request_count *c = &s->requests[i];
		char status[12];
		struct metrics_label labels[] = {
			{ "route", c->route }, { "method", c->method }, { "status", status },
		};

		snprintf(status, sizeof status, "%d", c->status);
		metrics_sample_uint(t, "pushrelay_api_requests_total", labels, 3, c->count);
	}
	single_uint(t, "pushrelay_pushes_accepted_total", METRICS_COUNTER,
	    "Pushes accepted by POST /v1/push (202).", pushes_accepted(s));
	if (s->has_api_connections)
		render_api_connections(&s->api_connections, t);
}

void
metrics_render_text(const struct metrics_snapshot *s, struct metrics_text *t)
{
	struct metrics_label version[] = { { "version", s->version } };

	metrics_family(t, "pushrelay_build_info", METRICS_GAUGE,
	    "Always 1; the version of the running daemon.");
	metrics_sample_uint(t, "pushrelay_build_info", version, 1, 1);
	if (s->start_ms > 0) {
		metrics_family(t, "pushrelay_start_time_seconds", METRICS_GAUGE,
		    "When the daemon started, in seconds since the epoch.");
		metrics_sample(t, "pushrelay_start_time_seconds", NULL, 0,
		    (double)s->start_ms / 1000.0);
	}
	if (s->has_devices)
		single_uint(t, "pushrelay_registry_devices", METRICS_GAUGE,
		    "Devices registered.", s->devices);
	render_api(s, t);
	render_delivery(s, t);
	render_providers(s, t);
	render_sources(s, t);
	render_router(s, t);
	render_feedback(s, t);
}

/* ---- rendering: JSON ---- */

static json_t *
json_uint(uint64_t value)
{
	return json_integer((json_int_t)value);
}

static json_t *
json_latency(const struct delivery_latency *h)
{
	json_t *buckets = json_array();
	uint64_t cumulative = 0;

	for (size_t b = 0; b < DELIVERY_LATENCY_BUCKETS; b++) {
		cumulative += h->buckets[b];
		json_array_append_new(buckets, json_pack("{s:I, s:o}", "le_ms",
		    (json_int_t)delivery_latency_bounds_ms[b], "count", json_uint(cumulative)));
	}
	/* In ms, as integers: JSON floats would print 0.005 as 0.0050000000000000001. */
	return json_pack("{s:o, s:o, s:o}", "count", json_uint(h->count), "sum_ms",
	    json_uint(h->sum_ms), "buckets", buckets);
}

json_t *
metrics_render_json(const struct metrics_snapshot *s)
{
	json_t *root, *notifications, *latency, *providers, *sources, *requests;
	char started[CLOCK_RFC3339_SIZE];

	notifications = json_array();
	for (size_t i = 0; i < s->outcome_count; i++) {
		const struct delivery_outcome_counts *row = &s->outcomes[i];
		json_t *o = json_pack("{s:s, s:s}", "provider", model_platform_name(row->platform),
		    "app", row->app_id);
		for (int k = 0; k < DELIVERY_OUTCOMES; k++)
			json_object_set_new(o, delivery_outcome_name((enum delivery_outcome)k),
			    json_uint(row->counts[k]));
		json_array_append_new(notifications, o);
	}
	latency = json_object();
	for (int p = 0; p < METRICS_PROVIDERS; p++)
		json_object_set_new(latency, model_platform_name((enum device_platform)p),
		    json_latency(&s->latency[p]));
	providers = json_object();
	for (size_t i = 0; i < s->provider_count; i++) {
		const struct provider_stats *ps = &s->providers[i].stats;
		json_object_set_new(providers, s->providers[i].name, json_pack(
		    "{s:s, s:b, s:o, s:o, s:o, s:o, s:o}",
		    "backend", s->providers[i].backend,
		    "dry_run", strcmp(s->providers[i].backend, "log") == 0,
		    "h2_connections", json_uint(ps->connections),
		    "h2_streams_in_flight", json_uint(ps->streams_in_flight),
		    "h2_queued_requests", json_uint(ps->queued),
		    "token_renewals", json_uint(ps->token_renewals),
		    "auth_failures", json_uint(ps->auth_failures)));
	}
	sources = json_object();
	for (size_t i = 0; i < s->source_count; i++) {
		const struct source_stats *ss = &s->sources[i].stats;
		json_object_set_new(sources, s->sources[i].name, json_pack(
		    "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:b}",
		    "events", json_uint(ss->received),
		    "malformed", json_uint(ss->malformed),
		    "unknown", json_uint(ss->unknown),
		    "dropped", json_uint(ss->dropped),
		    "reconnects", json_uint(ss->reconnects),
		    "pending", json_uint(ss->pending),
		    "lag", ss->lag >= 0 ? json_integer(ss->lag) : json_null(),
		    "connected", ss->connected != 0,
		    "paused", ss->paused != 0));
	}
	requests = json_array();
	for (size_t i = 0; i < s->request_count; i++)
		json_array_append_new(requests, json_pack("{s:s, s:s, s:i, s:o}",
		    "route", s->requests[i].route, "method", s->requests[i].method,
		    "status", s->requests[i].status, "count", json_uint(s->requests[i].count)));

	root = json_pack("{s:s, s:o, s:o, s:o}", "version", s->version,
	    "devices", s->has_devices ? json_uint(s->devices) : json_null(),
	    "pushes_accepted", json_uint(pushes_accepted(s)),
	    "delivery", json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "queued", json_uint(s->delivery.queued),
	    "retrying", json_uint(s->delivery.retrying),
	    "in_flight", json_uint(s->delivery.in_flight),
	    "queue_free", json_uint(s->delivery_free),
	    "sent", json_uint(s->delivery.sent),
	    "failed", json_uint(s->delivery.failed),
	    "token_removed", json_uint(s->delivery.token_removed),
	    "retries", json_uint(s->delivery.retries)));
	if (root == NULL)
		fatalx("out of memory building stats");
	if (s->start_ms > 0) {
		clock_format_rfc3339(s->start_ms, started);
		json_object_set_new(root, "started_at", json_string(started));
		json_object_set_new(root, "uptime_seconds",
		    json_integer((json_int_t)((s->now_ms - s->start_ms) / 1000)));
	}
	json_object_set_new(root, "notifications", notifications);
	json_object_set_new(root, "latency", latency);
	json_object_set_new(root, "providers", providers);
	json_object_set_new(root, "sources", sources);
	if (s->has_router) {
		const struct router_stats *r = &s->router;
		json_object_set_new(root, "router", json_pack(
		    "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		    "events_in_flight", json_uint(r->in_flight),
		    "pending_recipients", json_uint(r->pending_recipients),
		    "events", json_uint(r->events),
		    "messages", json_uint(r->messages),
		    "recipients_notified", json_uint(r->notifications),
		    "coalesced", json_uint(r->coalesced),
		    "held", json_uint(r->held),
		    "duplicates", json_uint(r->duplicates),
		    "rate_limited", json_uint(r->rate_limited),
		    "cancelled", json_uint(r->cancelled),
		    "skipped", json_uint(r->skipped)));
	} else
		json_object_set_new(root, "router", json_null());
	if (s->has_feedback)
		json_object_set_new(root, "feedback", json_pack("{s:o, s:o, s:o, s:o, s:o}",
		    "emitted", json_uint(s->feedback.emitted),
		    "posted", json_uint(s->feedback.posted),
		    "failed", json_uint(s->feedback.failed),
		    "dropped", json_uint(s->feedback.dropped),
		    "queue", json_uint(s->feedback.queued)));
	else
		json_object_set_new(root, "feedback", json_null());
	json_object_set_new(root, "api_requests", requests);
	return root;
}
