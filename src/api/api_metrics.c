/* GET /metrics (Prometheus, no key) and GET /v1/stats (JSON, API key). */
#include "autoconf.h"

#include "api.h"
#include "metrics.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Everything a scrape shows, the API's own request counts included. */
static void
api_metrics_collect(struct api_request *r, struct metrics_snapshot *snapshot)
{
	metrics_collect(r->metrics, snapshot);
	snapshot->request_count = api_get_request_counts(r->api, &snapshot->requests);
	snapshot->has_api_connections = 1;
	api_get_connection_stats(r->api, &snapshot->api_connections);
}

/* GET /metrics: the Prometheus text exposition, rendered now. */
void
api_metrics_get(struct api_request *r)
{
	struct metrics_snapshot snapshot;
	struct metrics_text text;

	api_metrics_collect(r, &snapshot);
	metrics_text_init(&text);
	metrics_render_text(&snapshot, &text);
	api_reply_text(r, 200, METRICS_CONTENT_TYPE, text.data, text.len);
	metrics_text_free(&text);
}

/* GET /v1/stats: the same figures as one JSON object. */
void
api_stats_get(struct api_request *r)
{
	struct metrics_snapshot snapshot;

	api_metrics_collect(r, &snapshot);
	api_reply_json(r, 200, metrics_render_json(&snapshot));
}
