/*
 * Metrics: what the daemon's modules count, shown to Prometheus at GET /metrics (text
 * exposition format 0.0.4) and to pushrelayctl at GET /v1/stats (JSON).
 *
 * Pull model: nothing is sampled in the background. A scrape asks each module for its
 * stats (metrics_collect() into a struct metrics_snapshot) and renders them at once,
 * on the loop; the only query is a COUNT of devices on the loop's store connection.
 * A struct metrics (made by daemon.c once everything it reads is started, and
 * given to the API) is the list of modules a scrape reads; it keeps nothing else.
 * Every series is named pushrelay_*, with its unit in the name and _total on counters.
 * Label values are bounded: providers, apps (capped by the delivery layer), sources,
 * route patterns (never raw paths), methods and statuses.
 *
 * The renderer (metrics_text, metrics_family, metrics_sample*, metrics_histogram) is
 * generic: any family can be written with it, with labels escaped as the format wants.
 */
#ifndef PUSHRELAY_METRICS_H
#define PUSHRELAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api_conn.h"
#include "delivery.h"
#include "feedback.h"
#include "provider.h"
#include "router.h"
#include "source.h"

struct api_request_count;
struct store;

/* ---- the text format ---- */

/* A growing text buffer, always NUL-terminated once initialised. */
struct metrics_text {
	char *data;
	size_t len;
	size_t size;
};

enum metrics_type {
	METRICS_COUNTER = 0,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

struct metrics_label {
	const char *name;
	const char *value;	/* escaped when written: \ " and newline */
};

void metrics_text_init(struct metrics_text *text);
void metrics_text_free(struct metrics_text *text);
void metrics_text_printf(struct metrics_text *text, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The "# HELP" and "# TYPE" lines that open a family; its samples must follow. */
void metrics_family(struct metrics_text *text, const char *name, enum metrics_type type,
    const char *help);
/* One sample: name{labels} value (NaN and infinities as the format spells them). */
void metrics_sample(struct metrics_text *text, const char *name,
    const struct metrics_label *labels, size_t label_count, double value);
/* One sample with an exact integer value (counters past 2^53 stay exact). */
void metrics_sample_uint(struct metrics_text *text, const char *name,
    const struct metrics_label *labels, size_t label_count, uint64_t value);
/*
 * The samples of one histogram series: name_bucket{labels,le="..."} for each bound
 * and +Inf (cumulative), name_sum and name_count. buckets has bound_count + 1
 * entries, each counting its own bucket (not cumulative), the last above every bound.
 */
void metrics_histogram(struct metrics_text *text, const char *name,
    const struct metrics_label *labels, size_t label_count, const double *bounds,
    const uint64_t *buckets, size_t bound_count, double sum);

/* ---- what the daemon shows ---- */

#define METRICS_PROVIDERS 2		/* one per platform, in enum device_platform order */
#define METRICS_SOURCES_MAX 8

/* The modules a scrape reads; each may be NULL (its figures are then left out or 0). */
struct metrics_inputs {
	struct delivery_layer *delivery;
	struct router *router;		/* NULL: none */
	const struct provider_ops *provider_ops[METRICS_PROVIDERS];
	struct provider *providers[METRICS_PROVIDERS];
	const struct source_ops *source_ops[METRICS_SOURCES_MAX];
	struct source *sources[METRICS_SOURCES_MAX];
	size_t source_count;
	struct feedback *feedback;	/* NULL: none */
};

/* Everything one scrape shows. Pointers are borrowed until the loop runs again. */
struct metrics_snapshot {
	const char *version;
	int64_t start_ms;		/* wall clock, when metrics_new() ran */
	int64_t now_ms;
	int has_devices;		/* the device count is known (the API reads it off the loop) */
	size_t devices;
	struct delivery_stats delivery;
	size_t delivery_free;		/* places left in the delivery queue */
	const struct delivery_outcome_counts *outcomes;
	size_t outcome_count;
	struct delivery_latency latency[METRICS_PROVIDERS];
	struct {
		const char *name;	/* the platform: "apns", "fcm" */
		const char *backend;	/* the provider: "apns", "fcm", "log" (dry run) */
		struct provider_stats stats;
	} providers[METRICS_PROVIDERS];
	size_t provider_count;
	struct {
		const char *name;	/* "http", "redis-streams", ... */
		struct source_stats stats;
	} sources[METRICS_SOURCES_MAX];
	size_t source_count;
	int has_router;
	struct router_stats router;
	int has_feedback;
	struct feedback_stats feedback;
	const struct api_request_count *requests;
	size_t request_count;
	int has_api_connections;
	struct api_conn_stats api_connections;
};

struct metrics;

/* Remember what to read (copied) and the start time (now). */
struct metrics *metrics_new(const struct metrics_inputs *inputs);
/* Free; no scrape may run after the modules it reads are freed. NULL is fine. */
void metrics_free(struct metrics *metrics);
/*
 * Ask every module for its figures, on the loop (the API's request counts and
 * connection figures are the caller's to add). NULL metrics: only the version and
 * the time are set.
 */
void metrics_collect(const struct metrics *metrics, struct metrics_snapshot *snapshot);
/* The Prometheus text exposition (format 0.0.4). */
void metrics_render_text(const struct metrics_snapshot *snapshot, struct metrics_text *text);
/* The same figures as one JSON object (GET /v1/stats). */
json_t *metrics_render_json(const struct metrics_snapshot *snapshot);

#endif
