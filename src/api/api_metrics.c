/*
 * GET /metrics (Prometheus, no key) and GET /v1/stats (JSON, API key). The registry's
 * device count is read by a job on the API's store reader; the answer is rendered on
 * the loop once it is back, with every other figure as it is then.
 */
#include "autoconf.h"

#include <stdlib.h>

#include "api.h"
#include "metrics.h"
#include "store_registry.h"
#include "store_writer.h"
#include "xmalloc.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A scrape waiting for the device count. */
struct scrape {
	struct api_deferred *deferred;
	int json;			/* /v1/stats; else /metrics */
	size_t devices;
};

/* Everything a scrape shows, the API's own request counts included. */
static void
api_metrics_collect(struct api_request *r, struct metrics_snapshot *snapshot)
{
	metrics_collect(r->metrics, snapshot);
	snapshot->request_count = api_get_request_counts(r->api, &snapshot->requests);
	snapshot->has_api_connections = 1;
	api_get_connection_stats(r->api, &snapshot->api_connections);
}

static int
scrape_count_devices(struct store *store, void *arg)
{
	struct scrape *scrape = arg;

	return store_device_count(store, &scrape->devices);
}

/* The count is in (or the store failed: the gauge is left out): answer. */
static void
scrape_done(int result, void *arg)
{
	struct scrape *scrape = arg;
	struct api_request *r = api_deferred_request(scrape->deferred);
	struct metrics_snapshot snapshot;
	struct metrics_text text;

	if (r != NULL) {
		api_metrics_collect(r, &snapshot);
		if (result == STORE_OK) {
			snapshot.has_devices = 1;
			snapshot.devices = scrape->devices;
		}
		if (scrape->json)
			api_reply_json(r, 200, metrics_render_json(&snapshot));
		else {
			metrics_text_init(&text);
			metrics_render_text(&snapshot, &text);
			api_reply_text(r, 200, METRICS_CONTENT_TYPE, text.data, text.len);
			metrics_text_free(&text);
		}
	}
	api_deferred_free(scrape->deferred);
	free(scrape);
}

/* Count the devices off the loop, then answer. */
static void
scrape_start(struct api_request *r, int json)
{
	struct scrape *scrape = xcalloc(1, sizeof *scrape);

	scrape->json = json;
	scrape->deferred = api_defer(r);
	if (r->reader == NULL)
		scrape_done(STORE_EIO, scrape);	/* no store: all but the device count */
	else
		store_writer_submit(r->reader, scrape_count_devices, scrape_done, scrape);
}

/* GET /metrics: the Prometheus text exposition. */
void
api_metrics_get(struct api_request *r)
{
	scrape_start(r, 0);
}

/* GET /v1/stats: the same figures as one JSON object. */
void
api_stats_get(struct api_request *r)
{
	scrape_start(r, 1);
}
