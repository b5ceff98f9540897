/* Feedback events: log every removed token and POST it to the feedback webhook. */
#include "autoconf.h"

#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "feedback.h"
#include "httpc.h"
#include "log.h"
#include "xmalloc.h"

#define FEEDBACK_CONCURRENCY 4		/* posts in flight at once */
#define FEEDBACK_BACKOFF_BASE_MS 500
#define FEEDBACK_BACKOFF_MAX_MS (5 * 60 * 1000)
#define FEEDBACK_DROP_LOG_INTERVAL_MS 10000

/* One event still to be delivered. */
struct feedback_item {
	TAILQ_ENTRY(feedback_item) all_entry;	/* every item, oldest first */
	TAILQ_ENTRY(feedback_item) ready_entry;	/* due for a post */
	struct feedback *feedback;
	char *body;
	size_t len;
	char *device_id;		/* for logs */
	int attempts;
	int ready;			/* on the ready list */
	struct httpc_request *request;	/* while being posted */
	struct event *timer;		/* while waiting for a retry */
};
TAILQ_HEAD(feedback_items, feedback_item);

/* Someone waiting for the next event. */
struct feedback_watch {
	TAILQ_ENTRY(feedback_watch) entry;
	struct feedback *feedback;
	feedback_watch_fn *fn;
	void *arg;
};
TAILQ_HEAD(feedback_watches, feedback_watch);

struct feedback {
	struct event_base *base;
	struct httpc *httpc;
	char *url;			/* NULL: log only */
	int max_attempts;
	int timeout_ms;

	struct feedback_items all;
	struct feedback_items ready;
	size_t count;
	size_t in_flight;

	uint64_t emitted, posted, failed, dropped;
	uint64_t drops_unlogged;
	int64_t last_drop_log_ms;

	/* The recent events (seq last_seq is newest), for GET /v1/feedback. */
	json_t *recent[FEEDBACK_RECENT_MAX];	/* seq s at (s - 1) % FEEDBACK_RECENT_MAX */
	size_t recent_count;
	uint64_t last_seq;
	struct feedback_watches watches;
	int watches_stopped;		/* no more watches */
};

static void feedback_dispatch(struct feedback *);

/* Forget an item, wherever it is. */
static void
feedback_item_free(struct feedback_item *item)
{
	struct feedback *feedback = item->feedback;

	TAILQ_REMOVE(&feedback->all, item, all_entry);
	feedback->count--;
	if (item->ready)
		TAILQ_REMOVE(&feedback->ready, item, ready_entry);
	if (item->request != NULL) {
		httpc_cancel(item->request);
		feedback->in_flight--;
	}
	if (item->timer != NULL)
		event_free(item->timer);
	free(item->body);
	free(item->device_id);
	free(item);
}

/* Log drops at most once per interval, with how many there were. */
static void
feedback_log_drops(struct feedback *feedback, const char *why)
{
	int64_t now = clock_monotonic_ms();
	char n[24], total[24];

	if (feedback->drops_unlogged == 0 || (feedback->last_drop_log_ms != 0 &&
	    now - feedback->last_drop_log_ms < FEEDBACK_DROP_LOG_INTERVAL_MS))
		return;
	snprintf(n, sizeof n, "%llu", (unsigned long long)feedback->drops_unlogged);
	snprintf(total, sizeof total, "%llu", (unsigned long long)feedback->dropped);
	log_warn("feedback events dropped", "why", why, "count", n, "total", total, NULL);
	feedback->drops_unlogged = 0;
	feedback->last_drop_log_ms = now;
}

/* Make an item due for posting. */
static void
feedback_item_ready(struct feedback_item *item)
{
	TAILQ_INSERT_TAIL(&item->feedback->ready, item, ready_entry);
	item->ready = 1;
}

/* A retry's time has come. */
static void
feedback_retry_event(evutil_socket_t fd, short what, void *arg)
{
	struct feedback_item *item = arg;

	(void)fd;
	(void)what;
	feedback_item_ready(item);
	feedback_dispatch(item->feedback);
}

/* Give up on an item. */
static void
feedback_item_fail(struct feedback_item *item, const char *status, const char *error)
{
	char attempts[16];

	snprintf(attempts, sizeof attempts, "%d", item->attempts);
	log_warn("feedback post failed, event given up", "device_id", item->device_id,
	    "status", status, "error", error, "attempts", attempts, NULL);
	item->feedback->failed++;
	feedback_item_free(item);
}

/* The webhook answered, or did not. */
static void
feedback_post_done(const struct httpc_response *response, void *arg)
{
	struct feedback_item *item = arg;
	struct feedback *feedback = item->feedback;
	struct timeval tv;
	char status[16], error[256];
	int64_t cap, delay;

	item->request = NULL;
	feedback->in_flight--;
	snprintf(status, sizeof status, "%d", response->status);
	if (response->error == 0 && response->status >= 200 && response->status < 300) {
		feedback->posted++;
		feedback_item_free(item);
		feedback_dispatch(feedback);
		return;
	}
	if (response->error != 0)
		snprintf(error, sizeof error, "%s: %s", httpc_strerror(response->error),
		    response->error_text);
	else
		snprintf(error, sizeof error, "HTTP %d", response->status);
	if (response->error == 0 && response->status != 429 && response->status < 500) {
		feedback_item_fail(item, status, error);
		feedback_dispatch(feedback);
		return;
	}
	if (item->attempts >= feedback->max_attempts) {
		feedback_item_fail(item, status, error);
		feedback_dispatch(feedback);
		return;
	}

	/* Exponential backoff with equal jitter, and at least the server's Retry-After. */
	cap = FEEDBACK_BACKOFF_BASE_MS;
	for (int i = 1; i < item->attempts && cap < FEEDBACK_BACKOFF_MAX_MS; i++)
		cap *= 2;
	if (cap > FEEDBACK_BACKOFF_MAX_MS)
		cap = FEEDBACK_BACKOFF_MAX_MS;
	delay = cap / 2 + arc4random_uniform((uint32_t)(cap / 2) + 1);
	if (response->retry_after_ms > delay)
		delay = response->retry_after_ms < FEEDBACK_BACKOFF_MAX_MS ?
		    response->retry_after_ms : FEEDBACK_BACKOFF_MAX_MS;
	log_debug("feedback post failed, will retry", "device_id", item->device_id,
	    "status", status, "error", error, NULL);
	if (item->timer == NULL &&
	    (item->timer = evtimer_new(feedback->base, feedback_retry_event, item)) == NULL)
		fatalx("evtimer_new: out of memory");
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(item->timer, &tv);
	feedback_dispatch(feedback);
}

/* Post what is due, up to the concurrency limit. */
static void
feedback_dispatch(struct feedback *feedback)
{
	struct httpc_options options;
	struct feedback_item *item;
	int rv;

	while (feedback->url != NULL && feedback->in_flight < FEEDBACK_CONCURRENCY &&
	    (item = TAILQ_FIRST(&feedback->ready)) != NULL) {
		TAILQ_REMOVE(&feedback->ready, item, ready_entry);
		item->ready = 0;
		item->attempts++;
		memset(&options, 0, sizeof options);
		options.url = feedback->url;
		options.content_type = "application/json";
		options.body = item->body;
		options.body_len = item->len;
		options.timeout_ms = feedback->timeout_ms;
		rv = httpc_request(feedback->httpc, &options, feedback_post_done, item,
		    &item->request);
		if (rv != 0) {
			feedback_item_fail(item, "0", httpc_strerror(rv));
			continue;
		}
		feedback->in_flight++;
	}
}

/* The JSON object of an event; NULL if a field is not UTF-8. */
static json_t *
feedback_event_json(const struct feedback_event *event)
{
	char at[CLOCK_RFC3339_SIZE];

	clock_format_rfc3339(event->at != 0 ? event->at : clock_now_ms(), at);
	return json_pack("{s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:s}",
	    "event", "token_removed",
	    "device_id", event->device_id,
	    "client_id", event->client_id,
	    "platform", event->platform,
	    "app_id", event->app_id,
	    "reason", event->reason,
	    "at", at);
}

/* The webhook's body: the event's JSON. */
static char *
feedback_body(const json_t *json, size_t *len)
{
	char *body = json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (body == NULL)
		fatalx("json_dumps: out of memory");
	*len = strlen(body);
	return body;
}

/* Fire every watch, each once; watches added meanwhile wait for the next time. */
static void
feedback_fire_watches(struct feedback *feedback, int stopping)
{
	struct feedback_watches fired = TAILQ_HEAD_INITIALIZER(fired);
	struct feedback_watch *watch;

	TAILQ_CONCAT(&fired, &feedback->watches, entry);
	while ((watch = TAILQ_FIRST(&fired)) != NULL) {
		TAILQ_REMOVE(&fired, watch, entry);
		watch->fn(stopping, watch->arg);
		free(watch);
	}
}

/* Keep an event as the newest, numbered, pushing out the oldest; wake the watches. */
static void
feedback_recent_add(struct feedback *feedback, const json_t *json)
{
	size_t slot = feedback->last_seq % FEEDBACK_RECENT_MAX;
	json_t *kept;

	kept = json_pack("{s:I}", "seq", (json_int_t)(feedback->last_seq + 1));
	if (kept == NULL || json_object_update(kept, (json_t *)json) != 0)
		fatalx("json: out of memory");
	json_decref(feedback->recent[slot]);
	feedback->recent[slot] = kept;
	feedback->last_seq++;
	if (feedback->recent_count < FEEDBACK_RECENT_MAX)
		feedback->recent_count++;
	feedback_fire_watches(feedback, 0);
}

json_t *
feedback_recent(const struct feedback *feedback, uint64_t after)
{
	json_t *events = json_array();
	uint64_t first = feedback->last_seq - feedback->recent_count + 1;

	if (events == NULL)
		fatalx("json_array: out of memory");
	if (after > feedback->last_seq)
		after = 0;
	for (uint64_t seq = after + 1 > first ? after + 1 : first; seq <= feedback->last_seq;
	    seq++) {
		if (json_array_append(events,
		    feedback->recent[(seq - 1) % FEEDBACK_RECENT_MAX]) != 0)
			fatalx("json_array_append: out of memory");
	}
	return events;
}

uint64_t
feedback_recent_last(const struct feedback *feedback)
{
	return feedback->last_seq;
}

struct feedback_watch *
feedback_watch(struct feedback *feedback, feedback_watch_fn *fn, void *arg)
{
	struct feedback_watch *watch;

	if (feedback->watches_stopped)
		return NULL;
	watch = xcalloc(1, sizeof *watch);
	watch->feedback = feedback;
	watch->fn = fn;
	watch->arg = arg;
	TAILQ_INSERT_TAIL(&feedback->watches, watch, entry);
	return watch;
}

void
feedback_unwatch(struct feedback_watch *watch)
{
	if (watch == NULL)
		return;
	TAILQ_REMOVE(&watch->feedback->watches, watch, entry);
	free(watch);
}

void
feedback_stop_watches(struct feedback *feedback)
{
	feedback->watches_stopped = 1;
	feedback_fire_watches(feedback, 1);
}

void
feedback_emit(struct feedback *feedback, const struct feedback_event *event)
{
	struct feedback_item *item;
	char status[16];
	json_t *json;

	feedback->emitted++;
	snprintf(status, sizeof status, "%d", event->status);
	log_info("token removed", "device_id", event->device_id != NULL ?
	    event->device_id : "", "client_id", event->client_id != NULL ?
	    event->client_id : "", "platform", event->platform != NULL ? event->platform : "",
	    "app_id", event->app_id != NULL ? event->app_id : "", "reason",
	    event->reason != NULL ? event->reason : "", "status", status, NULL);
	if ((json = feedback_event_json(event)) != NULL)
		feedback_recent_add(feedback, json);
	if (feedback->url == NULL) {
		json_decref(json);
		return;
	}
	if (json == NULL) {
		log_warn("feedback event not posted: a field is not UTF-8", "device_id",
		    event->device_id != NULL ? event->device_id : "", NULL);
		feedback->failed++;
		return;
	}

	item = xcalloc(1, sizeof *item);
	item->feedback = feedback;
	item->body = feedback_body(json, &item->len);
	json_decref(json);
	item->device_id = xstrdup(event->device_id != NULL ? event->device_id : "");
	if (feedback->count >= FEEDBACK_QUEUE_MAX) {
		feedback->dropped++;
		feedback->drops_unlogged++;
		feedback_item_free(TAILQ_FIRST(&feedback->all));
		feedback_log_drops(feedback, "queue full");
	}
	TAILQ_INSERT_TAIL(&feedback->all, item, all_entry);
	feedback->count++;
	feedback_item_ready(item);
	feedback_dispatch(feedback);
}

/* Copy the options that matter here. */
static void
feedback_configure(struct feedback *feedback, const struct config *config)
{
	free(feedback->url);
	feedback->url = config->feedback_url != NULL && *config->feedback_url != '\0' ?
	    xstrdup(config->feedback_url) : NULL;
	feedback->max_attempts = config->feedback_max_attempts > 0 ?
	    config->feedback_max_attempts : 1;
	feedback->timeout_ms = config->feedback_timeout_ms > 0 ?
	    (int)config->feedback_timeout_ms : 10000;
}

struct feedback *
feedback_new(struct event_base *base, const struct config *config)
{
	struct feedback *feedback;

	feedback = xcalloc(1, sizeof *feedback);
	feedback->base = base;
	feedback->httpc = httpc_new(base);
	TAILQ_INIT(&feedback->all);
	TAILQ_INIT(&feedback->ready);
	TAILQ_INIT(&feedback->watches);
	feedback_configure(feedback, config);
	return feedback;
}

void
feedback_reload(struct feedback *feedback, const struct config *config)
{
	feedback_configure(feedback, config);
	if (feedback->url == NULL && feedback->count > 0) {
		feedback->dropped += feedback->count;
		feedback->drops_unlogged += feedback->count;
		while (!TAILQ_EMPTY(&feedback->all))
			feedback_item_free(TAILQ_FIRST(&feedback->all));
		feedback->last_drop_log_ms = 0;
		feedback_log_drops(feedback, "feedback_url unset");
	}
	feedback_dispatch(feedback);
}

void
feedback_get_stats(const struct feedback *feedback, struct feedback_stats *stats)
{
	stats->emitted = feedback->emitted;
	stats->posted = feedback->posted;
	stats->failed = feedback->failed;
	stats->dropped = feedback->dropped;
	stats->queued = feedback->count;
}

void
feedback_free(struct feedback *feedback)
{
	if (feedback == NULL)
		return;
	while (!TAILQ_EMPTY(&feedback->all))
		feedback_item_free(TAILQ_FIRST(&feedback->all));
	httpc_free(feedback->httpc);
	feedback_stop_watches(feedback);
	for (size_t i = 0; i < FEEDBACK_RECENT_MAX; i++)
		json_decref(feedback->recent[i]);
	free(feedback->url);
	free(feedback);
}
