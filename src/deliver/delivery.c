/* Deliveries: queues per platform, provider hand-off, retries and outcomes. */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "clock.h"
#include "delivery.h"
#include "feedback.h"
#include "log.h"
#include "store_registry.h"
#include "store_writer.h"
#include "xmalloc.h"

/* Successes are written to the store in batches, this often. */
#define DELIVERY_SUCCESS_FLUSH_MS 1000
#define DELIVERY_SUCCESS_PRECISION_MS (60 * 1000)
#define PLATFORMS 2

/*
 * A flow: the deliveries of one content ready in one layer for one platform, in
 * order. It exists while it has some, in its layer's round robin.
 */
struct delivery_flow {
	struct delivery_layer *layer;
	struct push_content *content;
	int platform;
	struct delivery_queue ready;
	TAILQ_ENTRY(delivery_flow) entry;	/* in layer->flows[platform] */
	struct delivery_flow *next;		/* the content's other flows */
};
TAILQ_HEAD(delivery_flows, delivery_flow);

struct delivery_provider {
	const struct provider_ops *ops;
	struct provider *provider;
};

struct delivery_layer {
	struct event_base *base;
	struct store *store;
	struct store_writer *writer;
	struct delivery_provider providers[PLATFORMS];
	struct feedback *feedback;
	struct delivery_options options;
	/*
	 * Deliveries waiting for their provider, by content: each turn of the round robin
	 * hands one delivery of the first content to the provider and moves that content
	 * to the end, so that a message to one device goes out after one delivery of each
	 * fan-out ahead of it, not after all of them.
	 */
	struct delivery_flows flows[PLATFORMS];
	struct delivery_queue waiting;		/* waiting for their retry time */
	int blocked[PLATFORMS];			/* the provider said busy */
	struct event *pump_event;
	struct event *flush_timer;
	char **successes;			/* device ids to mark, deduplicated lazily */
	size_t success_count, success_capacity;
	size_t queued, retrying, in_flight;
	uint64_t sent, failed, token_removed, retries;
	uint64_t environment_switches, environment_corrections;
	uint64_t rng;
	int running;
	size_t token_jobs;			/* removals and environment corrections on the
						 * writer, not answered yet */
	int freed;				/* delivery_layer_free() came before they did */
	/* Metrics: outcomes by platform and app, latency by platform. */
	struct delivery_outcome_counts *outcomes;
	size_t outcome_count;
	size_t outcome_apps[PLATFORMS];
	struct delivery_latency latency[PLATFORMS];
};

static void delivery_flush_successes(evutil_socket_t fd, short what, void *arg);
static provider_done_fn delivery_complete;

static const char *const delivery_state_names[] = {
	[DELIVERY_QUEUED] = "queued",
	[DELIVERY_SENDING] = "sending",
	[DELIVERY_RETRYING] = "retrying",
	[DELIVERY_SENT] = "sent",
	[DELIVERY_FAILED] = "failed",
	[DELIVERY_TOKEN_REMOVED] = "token_removed",
	[DELIVERY_ABANDONED] = "abandoned",
};

const char *
delivery_state_name(enum delivery_state state)
{
	return delivery_state_names[state];
}

/* ---- metrics (BEGIN metrics) ---- */

const int64_t delivery_latency_bounds_ms[DELIVERY_LATENCY_BUCKETS] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
};

static const char *const delivery_outcome_names[] = {
	[DELIVERY_OUTCOME_SENT] = "sent",
	[DELIVERY_OUTCOME_FAILED] = "failed",
	[DELIVERY_OUTCOME_TOKEN_REMOVED] = "token_removed",
	[DELIVERY_OUTCOME_RETRIED] = "retried",
	[DELIVERY_OUTCOME_REJECTED] = "rejected",
	[DELIVERY_OUTCOME_CONFIG_ERROR] = "config_error",
	[DELIVERY_OUTCOME_CANCELLED] = "cancelled",
};

const char *
delivery_outcome_name(enum delivery_outcome outcome)
{
	return delivery_outcome_names[outcome];
}

/*
 * Count an outcome under the delivery's platform and app. app_id comes from
 * registrations, so the apps counted apart are bounded: the rest share one row.
 */
static void
count_outcome(const struct delivery *d, enum delivery_outcome outcome)
{
	struct delivery_layer *layer = d->layer;
	const char *app = d->app_id;
	struct delivery_outcome_counts *row;
	size_t i;

	for (;;) {
		for (i = 0; i < layer->outcome_count; i++) {
			row = &layer->outcomes[i];
			if (row->platform == d->platform && strcmp(row->app_id, app) == 0) {
				row->counts[outcome]++;
				return;
			}
		}
		if (layer->outcome_apps[d->platform] < DELIVERY_OUTCOME_APPS_MAX ||
		    strcmp(app, DELIVERY_OUTCOME_OTHER_APP) == 0)
			break;
		app = DELIVERY_OUTCOME_OTHER_APP;
	}
	layer->outcomes = xreallocarray(layer->outcomes, layer->outcome_count + 1,
	    sizeof *layer->outcomes);
	row = &layer->outcomes[layer->outcome_count++];
	memset(row, 0, sizeof *row);
	row->platform = d->platform;
	row->app_id = xstrdup(app);
	row->counts[outcome] = 1;
	layer->outcome_apps[d->platform]++;
}

/* Time from acceptance to the final answer, into the platform's histogram. */
static void
observe_latency(const struct delivery *d)
{
	struct delivery_latency *h = &d->layer->latency[d->platform];
	int64_t ms = clock_now_ms() - d->accepted_at;
	size_t b = 0;

	if (ms < 0)
		ms = 0;
	while (b < DELIVERY_LATENCY_BUCKETS && ms > delivery_latency_bounds_ms[b])
		b++;
	h->buckets[b]++;
	h->count++;
	h->sum_ms += (uint64_t)ms;
}

size_t
delivery_get_outcomes(const struct delivery_layer *layer,
    const struct delivery_outcome_counts **rows)
{
	*rows = layer->outcomes;
	return layer->outcome_count;
}

void
delivery_get_latency(const struct delivery_layer *layer, enum device_platform platform,
    struct delivery_latency *latency)
{
	*latency = layer->latency[platform];
}

/* ---- END metrics ---- */

/* ---- the content every delivery of one notification shares ---- */

/* Take the notification over; payloads are built when a provider first needs them. */
struct push_content *
delivery_content_new(struct notification *notification, int badge_per_recipient)
{
	struct push_content *c = xcalloc(1, sizeof *c);

	c->refcount = 1;
	c->notification = *notification;
	notification_init(notification);
	c->badge_per_recipient = badge_per_recipient;
	return c;
}

/* One more delivery (or router bucket) shares the content. */
void
delivery_content_ref(struct push_content *content)
{
	content->refcount++;
}

/* An edit before it was sent: deliveries not handed out yet send the new text. */
void
delivery_content_update(struct push_content *c, struct notification *notification)
{
	notification_free(&c->notification);
	payload_free(&c->apns);
	payload_free(&c->fcm);
	c->notification = *notification;
	notification_init(notification);
	/* Rebuilt on their next use. */
	c->apns_built = c->fcm_built = 0;
	c->apns_error = c->fcm_error = PAYLOAD_OK;
}

/* Free the content with its last reference. */
void
delivery_content_unref(struct push_content *content)
{
	if (content == NULL || --content->refcount > 0)
		return;
	notification_free(&content->notification);
	payload_free(&content->apns);
	payload_free(&content->fcm);
	free(content);
}

/* xorshift64*: jitter and ids need speed, not secrecy. */
static uint64_t
rng_next(struct delivery_layer *layer)
{
	uint64_t x = layer->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	layer->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* A random (version 4) UUID, lowercase, as apns-id wants it. */
static void
uuid_generate(struct delivery_layer *layer, char out[37])
{
	uint64_t hi = rng_next(layer), lo = rng_next(layer);

	hi = (hi & ~0xf000ULL) | 0x4000ULL;
	lo = (lo & ~(0xcULL << 60)) | (0x8ULL << 60);
	snprintf(out, 37, "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
	    hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48, lo & (uint64_t)0xffffffffffff);
}

struct delivery *
delivery_new(struct delivery_layer *layer, const struct device_target *target,
    struct push_content *content, int64_t badge, int64_t accepted_at)
{
	struct delivery *d = xcalloc(1, sizeof *d);

	d->layer = layer;
	d->content = content;
	delivery_content_ref(content);
	d->device_id = target->device_id;
	d->client_id = target->client_id;
	d->token = target->token;
	d->app_id = target->app_id;
	d->platform = target->platform;
	d->environment = target->environment;
	d->registered_at = target->updated_at;
	d->last_success_at = target->last_success_at;
	d->badge = badge;
	d->accepted_at = accepted_at;
	uuid_generate(layer, d->id);
	return d;
}

static void
delivery_free(struct delivery *d)
{
	if (d->retry_timer != NULL)
		event_free(d->retry_timer);
	delivery_content_unref(d->content);
	free(d);
}

/* Tell the observer; a final state frees the delivery. */
static void
delivery_set_state(struct delivery *d, enum delivery_state state, const char *reason)
{
	d->state = state;
	if (d->observer != NULL)
		d->observer(d, state, reason, d->observer_arg);
	if (state == DELIVERY_SENT || state == DELIVERY_FAILED || state == DELIVERY_TOKEN_REMOVED)
		delivery_free(d);
}

/* Drop a delivery at shutdown: its owner hears it was abandoned, not finished. */
static void
delivery_abandon(struct delivery *d)
{
	if (d->observer != NULL)
		d->observer(d, DELIVERY_ABANDONED, "shutdown", d->observer_arg);
	delivery_free(d);
}

/* Run the pump from the loop, never from inside a caller's callback. */
/* The delivery whose turn it is for platform p: the first of the first flow. */
static struct delivery *
ready_first(struct delivery_layer *layer, int p)
{
	struct delivery_flow *flow = TAILQ_FIRST(&layer->flows[p]);

	return flow != NULL ? TAILQ_FIRST(&flow->ready) : NULL;
}

/* d's flow in its layer, made (at the end of the round robin) if it has none. */
static struct delivery_flow *
flow_of(struct delivery *d)
{
	struct delivery_layer *layer = d->layer;
	struct push_content *c = d->content;
	struct delivery_flow *flow;

	for (flow = c->flows; flow != NULL; flow = flow->next) {
		if (flow->layer == layer && flow->platform == (int)d->platform)
			return flow;
	}
	flow = xcalloc(1, sizeof *flow);
	flow->layer = layer;
	flow->content = c;
	flow->platform = (int)d->platform;
	TAILQ_INIT(&flow->ready);
	flow->next = c->flows;
	c->flows = flow;
	TAILQ_INSERT_TAIL(&layer->flows[flow->platform], flow, entry);
	return flow;
}

/* Take d out of its flow; a flow left empty leaves the round robin and is freed. */
static void
ready_remove(struct delivery_layer *layer, struct delivery *d)
{
	struct delivery_flow *flow = d->flow, **link;

	TAILQ_REMOVE(&flow->ready, d, entry);
	d->flow = NULL;
	if (!TAILQ_EMPTY(&flow->ready))
		return;
	TAILQ_REMOVE(&layer->flows[flow->platform], flow, entry);
	for (link = &flow->content->flows; *link != flow; link = &(*link)->next)
		;
	*link = flow->next;
	free(flow);
}

/* d (the first of the first flow) went to its provider: the flow's turn ends. */
static void
ready_take_turn(struct delivery_layer *layer, struct delivery *d)
{
	struct delivery_flow *flow = d->flow;

	if (TAILQ_NEXT(d, entry) != NULL) {
		/* Others of the content wait: to the end of the round robin. */
		TAILQ_REMOVE(&layer->flows[flow->platform], flow, entry);
		TAILQ_INSERT_TAIL(&layer->flows[flow->platform], flow, entry);
	}
	ready_remove(layer, d);
}

static void
schedule_pump(struct delivery_layer *layer)
{
	if (layer->pump_event != NULL && layer->running)
		event_active(layer->pump_event, 0, 0);
}

/* Hand ready deliveries to their providers until they are empty or a provider is busy. */
static void
delivery_pump(evutil_socket_t fd, short what, void *arg)
{
	struct delivery_layer *layer = arg;

	if (!layer->running)
		return;
	for (int p = 0; p < PLATFORMS; p++) {
		struct delivery *d;

		layer->blocked[p] = 0;
		while ((d = ready_first(layer, p)) != NULL) {
			const struct delivery_provider *provider = &layer->providers[p];
			int rc;

			d->attempt++;
			rc = provider->ops->send(provider->provider, d, delivery_complete, layer);
			if (rc == PROVIDER_EBUSY) {
				d->attempt--;
				layer->blocked[p] = 1;
				break;
			}
			ready_take_turn(layer, d);
			layer->queued--;
			if (rc == PROVIDER_OK) {
				layer->in_flight++;
				d->state = DELIVERY_SENDING;
				continue;
			}
			layer->failed++;
			if (rc == PROVIDER_ENOAPP) {
				char reason[160];
				snprintf(reason, sizeof reason, "no [%s \"%s\"] section for this app_id",
				    model_platform_name(d->platform), d->app_id);
				count_outcome(d, DELIVERY_OUTCOME_CONFIG_ERROR);
				delivery_set_state(d, DELIVERY_FAILED, reason);
			} else {
				count_outcome(d, DELIVERY_OUTCOME_FAILED);
				delivery_set_state(d, DELIVERY_FAILED, "provider shutting down");
			}
		}
	}
}

struct delivery_layer *
delivery_layer_new(struct event_base *base, struct store *store, struct store_writer *writer,
    const struct provider_ops *apns_ops, struct provider *apns,
    const struct provider_ops *fcm_ops, struct provider *fcm, struct feedback *feedback,
    const struct delivery_options *options)
{
	struct timeval tv = { DELIVERY_SUCCESS_FLUSH_MS / 1000,
		(DELIVERY_SUCCESS_FLUSH_MS % 1000) * 1000 };
	struct delivery_layer *layer = xcalloc(1, sizeof *layer);

	layer->base = base;
	layer->store = store;
	layer->writer = writer;
	layer->providers[DEVICE_PLATFORM_APNS].ops = apns_ops;
	layer->providers[DEVICE_PLATFORM_APNS].provider = apns;
	layer->providers[DEVICE_PLATFORM_FCM].ops = fcm_ops;
	layer->providers[DEVICE_PLATFORM_FCM].provider = fcm;
	layer->feedback = feedback;
	layer->options = *options;
	for (int p = 0; p < PLATFORMS; p++)
		TAILQ_INIT(&layer->flows[p]);
	TAILQ_INIT(&layer->waiting);
	if (RAND_bytes((unsigned char *)&layer->rng, sizeof layer->rng) != 1 || layer->rng == 0)
		layer->rng = (uint64_t)clock_now_ms() | 1;
	layer->pump_event = event_new(base, -1, 0, delivery_pump, layer);
	layer->flush_timer = event_new(base, -1, EV_PERSIST, delivery_flush_successes, layer);
	if (layer->pump_event == NULL || layer->flush_timer == NULL)
		fatalx("cannot create delivery events");
	event_add(layer->flush_timer, &tv);
	layer->running = 1;
	return layer;
}

void
delivery_set_options(struct delivery_layer *layer, const struct delivery_options *options)
{
	layer->options = *options;
}

/* A batch of successes for the store writer. */
struct success_job {
	char **device_ids;
	size_t count;
	int64_t at;
};

static int
success_run(struct store *store, void *arg)
{
	struct success_job *job = arg;
	char count[24];
	int rc = store_devices_mark_success(store, (const char *const *)job->device_ids,
	    job->count, job->at);

	if (rc != STORE_OK) {
		snprintf(count, sizeof count, "%zu", job->count);
		log_warn("could not record delivery successes", "devices", count, NULL);
	}
	return rc;
}

static void
success_done(int result, void *arg)
{
	struct success_job *job = arg;

	for (size_t i = 0; i < job->count; i++)
		free(job->device_ids[i]);
	free(job->device_ids);
	free(job);
}

/* Hand the successes gathered since the last flush to the store writer. */
static void
delivery_flush_successes(evutil_socket_t fd, short what, void *arg)
{
	struct delivery_layer *layer = arg;
	struct success_job *job;

	if (layer->success_count == 0)
		return;
	job = xmalloc(sizeof *job);
	job->device_ids = layer->successes;
	job->count = layer->success_count;
	job->at = clock_now_ms();
	layer->successes = NULL;
	layer->success_count = layer->success_capacity = 0;
	store_writer_submit(layer->writer, success_run, success_done, job);
}

void
delivery_stop(struct delivery_layer *layer)
{
	layer->running = 0;
}

void
delivery_layer_free(struct delivery_layer *layer)
{
	struct delivery *d;

	if (layer == NULL)
		return;
	layer->running = 0;
	delivery_flush_successes(-1, 0, layer);
	/* Queued and retrying deliveries stay queued in the store: a restart resumes them. */
	for (int p = 0; p < PLATFORMS; p++) {
		while ((d = ready_first(layer, p)) != NULL) {
			ready_remove(layer, d);
			delivery_abandon(d);
		}
	}
	while ((d = TAILQ_FIRST(&layer->waiting)) != NULL) {
		TAILQ_REMOVE(&layer->waiting, d, entry);
		delivery_abandon(d);
	}
	event_free(layer->pump_event);
	event_free(layer->flush_timer);
	for (size_t i = 0; i < layer->outcome_count; i++)
		free(layer->outcomes[i].app_id);
	free(layer->outcomes);
	layer->outcomes = NULL;
	/* A token removal still on the writer answers here when the writer stops. */
	layer->freed = 1;
	if (layer->token_jobs == 0)
		free(layer);
}

size_t
delivery_cancel_content(struct delivery_layer *layer, const struct push_content *content,
    const char *reason)
{
	/* Held: failing its last delivery may drop the content. */
	struct push_content *c = (struct push_content *)content;
	struct delivery_flow *flow;
	struct delivery *d, *next;
	size_t cancelled = 0;

	delivery_content_ref(c);
	for (int p = 0; p < PLATFORMS; p++) {
		/* The content's flow in this layer: its ready deliveries are all in it. */
		for (flow = c->flows; flow != NULL; flow = flow->next) {
			if (flow->layer == layer && flow->platform == p)
				break;
		}
		for (d = flow != NULL ? TAILQ_FIRST(&flow->ready) : NULL; d != NULL; d = next) {
			next = TAILQ_NEXT(d, entry);
			ready_remove(layer, d);
			layer->queued--;
			layer->failed++;
			cancelled++;
			count_outcome(d, DELIVERY_OUTCOME_CANCELLED);
			delivery_set_state(d, DELIVERY_FAILED, reason);
		}
	}
	for (d = TAILQ_FIRST(&layer->waiting); d != NULL; d = next) {
		next = TAILQ_NEXT(d, entry);
		if (d->content != content)
			continue;
		TAILQ_REMOVE(&layer->waiting, d, entry);
		evtimer_del(d->retry_timer);
		layer->retrying--;
		layer->failed++;
		cancelled++;
		count_outcome(d, DELIVERY_OUTCOME_CANCELLED);
		delivery_set_state(d, DELIVERY_FAILED, reason);
	}
	delivery_content_unref(c);
	return cancelled;
}

size_t
delivery_room(const struct delivery_layer *layer)
{
	size_t used = layer->queued + layer->retrying + layer->in_flight;

	return used >= layer->options.queue_size ? 0 : layer->options.queue_size - used;
}

/* Put a delivery at the end of its content's flow, and the flow in the round robin. */
static void
enqueue(struct delivery *d)
{
	struct delivery_layer *layer = d->layer;

	d->state = DELIVERY_QUEUED;
	d->flow = flow_of(d);
	TAILQ_INSERT_TAIL(&d->flow->ready, d, entry);
	layer->queued++;
	if (!layer->blocked[d->platform])
		schedule_pump(layer);
}

void
delivery_submit(struct delivery *d, delivery_observer_fn *observer, void *arg, size_t index)
{
	d->observer = observer;
	d->observer_arg = arg;
	d->observer_index = index;
	enqueue(d);
}

/* A retry's time has come. */
static void
delivery_retry_due(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;
	struct delivery_layer *layer = d->layer;

	layer->retrying--;
	TAILQ_REMOVE(&layer->waiting, d, entry);
	if (!layer->running) {
		delivery_abandon(d);
		return;
	}
	enqueue(d);
}

/* Backoff before retry n (1-based): base * 2^(n-1) capped, with jitter in [half, all]. */
static int64_t
retry_delay(struct delivery_layer *layer, int attempt, int64_t retry_after_ms)
{
	int64_t base = layer->options.retry_initial_ms, delay;

	for (int i = 1; i < attempt && base < layer->options.retry_max_ms; i++)
		base *= 2;
	if (base > layer->options.retry_max_ms)
		base = layer->options.retry_max_ms;
	delay = base / 2 + (int64_t)(rng_next(layer) % (uint64_t)(base / 2 + 1));
	return retry_after_ms > delay ? retry_after_ms : delay;
}

/* Schedule a retry, or fail the delivery when it is out of attempts or time. */
static void
delivery_retry(struct delivery *d, const struct provider_result *result)
{
	struct delivery_layer *layer = d->layer;
	int64_t delay = retry_delay(layer, d->attempt, result->retry_after_ms);
	int64_t age = clock_now_ms() - d->accepted_at;
	struct timeval tv;
	char reason[200];

	if (d->attempt >= layer->options.max_attempts || delay > layer->options.max_age_ms - age) {
		snprintf(reason, sizeof reason, "gave up after %d attempts: %s", d->attempt,
		    result->reason);
		layer->failed++;
		observe_latency(d);
		count_outcome(d, DELIVERY_OUTCOME_FAILED);
		delivery_set_state(d, DELIVERY_FAILED, reason);
		return;
	}
	if (d->retry_timer == NULL &&
	    (d->retry_timer = evtimer_new(layer->base, delivery_retry_due, d)) == NULL)
		fatalx("cannot create a retry timer");
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(d->retry_timer, &tv);
	TAILQ_INSERT_TAIL(&layer->waiting, d, entry);
	layer->retrying++;
	layer->retries++;
	count_outcome(d, DELIVERY_OUTCOME_RETRIED);
	delivery_set_state(d, DELIVERY_RETRYING, result->reason);
}

/* A dead token's removal, on the store writer. */
struct token_job {
	struct delivery *delivery;	/* waits for the removal, in no queue */
	enum device_platform platform;
	char *token;
	int64_t since;
	int removed;
	struct provider_result result;	/* the provider's answer, for the outcome */
};

static int
token_remove_run(struct store *store, void *arg)
{
	struct token_job *job = arg;

	return store_device_remove_token(store, job->platform, job->token, job->since,
	    &job->removed);
}

/* The registration is removed (or kept, or the store failed): the delivery's outcome. */
static void
token_remove_done(int result, void *arg)
{
	struct token_job *job = arg;
	struct delivery *d = job->delivery;
	struct delivery_layer *layer = d->layer;
	const struct provider_result *pr = &job->result;
	char redacted[LOG_REDACT_SIZE], reason[200];

	layer->token_jobs--;
	if (layer->freed) {
		/* Shut down meanwhile: the push resumes it at the next start. */
		delivery_abandon(d);
		if (layer->token_jobs == 0)
			free(layer);
	} else if (result != STORE_OK) {
		/* Logged by the store; the device stays, the notification failed. */
		layer->failed++;
		count_outcome(d, DELIVERY_OUTCOME_FAILED);
		delivery_set_state(d, DELIVERY_FAILED, pr->reason);
	} else if (!job->removed) {
		log_info("token reported gone but registered again since, kept", "device_id",
		    d->device_id, "token", log_redact(d->token, redacted), "reason",
		    pr->reason, NULL);
		snprintf(reason, sizeof reason, "%s (device kept: registered again since)",
		    pr->reason);
		layer->failed++;
		count_outcome(d, DELIVERY_OUTCOME_FAILED);
		delivery_set_state(d, DELIVERY_FAILED, reason);
	} else {
		layer->token_removed++;
		count_outcome(d, DELIVERY_OUTCOME_TOKEN_REMOVED);
		if (layer->feedback != NULL) {
			struct feedback_event event = {
				.device_id = d->device_id,
				.client_id = d->client_id,
				.platform = model_platform_name(d->platform),
				.app_id = d->app_id,
				.reason = pr->reason,
				.status = pr->status,
				.at = clock_now_ms(),
			};
			feedback_emit(layer->feedback, &event);
		}
		delivery_set_state(d, DELIVERY_TOKEN_REMOVED, pr->reason);
	}
	free(job->token);
	free(job);
}

/*
 * A dead token: remove the registration unless it was registered again since. The
 * store writer does it; the delivery waits for its outcome until then.
 */
static void
delivery_token_gone(struct delivery *d, const struct provider_result *result)
{
	struct token_job *job = xcalloc(1, sizeof *job);

	job->delivery = d;
	job->platform = d->platform;
	job->token = xstrdup(d->token);
	job->since = result->token_invalid_since > 0 ? result->token_invalid_since :
	    d->registered_at;
	job->result = *result;
	d->layer->token_jobs++;
	store_writer_submit(d->layer->writer, token_remove_run, token_remove_done, job);
}

/* A device's environment to correct in the store, after it worked in the other one. */
struct environment_job {
	struct delivery_layer *layer;
	char *device_id;
	enum device_environment environment;
	int64_t since;			/* the registration the delivery was made for */
};

static int
environment_set_run(struct store *store, void *arg)
{
	struct environment_job *job = arg;

	return store_device_set_environment(store, job->device_id, job->environment,
	    job->since);
}

static void
environment_set_done(int result, void *arg)
{
	struct environment_job *job = arg;
	struct delivery_layer *layer = job->layer;

	if (result == STORE_OK) {
		layer->environment_corrections++;
		log_info("apns device environment corrected", "device_id", job->device_id,
		    "environment", model_environment_name(job->environment), NULL);
	} else if (result == STORE_ENOTFOUND)
		log_info("apns device environment not corrected: registered again since",
		    "device_id", job->device_id, NULL);
	free(job->device_id);
	free(job);
	if (--layer->token_jobs == 0 && layer->freed)
		free(layer);
}

/*
 * An APNs token refused as BadDeviceToken: try it once in the other environment (a
 * sandbox build's token registered as production, or the reverse: the most common
 * "sent but nothing arrives"). 1 if it goes again, 0 to treat it as gone.
 */
static int
environment_fallback(struct delivery *d, const struct provider_result *result)
{
	struct delivery_layer *layer = d->layer;
	enum device_environment other;

	if (d->platform != DEVICE_PLATFORM_APNS || d->environment_switched ||
	    !layer->options.apns_environment_fallback || !layer->running ||
	    strcmp(result->reason, "BadDeviceToken") != 0)
		return 0;
	other = d->environment == DEVICE_ENVIRONMENT_PRODUCTION ?
	    DEVICE_ENVIRONMENT_SANDBOX : DEVICE_ENVIRONMENT_PRODUCTION;
	log_info("apns token refused in its environment: trying the other", "device_id",
	    d->device_id, "from", model_environment_name(d->environment), "to",
	    model_environment_name(other), NULL);
	d->environment = other;
	d->environment_switched = 1;
	layer->environment_switches++;
	enqueue(d);
	return 1;
}

/* It worked in the other environment: the store's registration follows. */
static void
environment_correct(struct delivery *d)
{
	struct delivery_layer *layer = d->layer;
	struct environment_job *job;

	if (layer->writer == NULL)
		return;
	job = xcalloc(1, sizeof *job);
	job->layer = layer;
	job->device_id = xstrdup(d->device_id);
	job->environment = d->environment;
	job->since = d->registered_at;
	layer->token_jobs++;
	store_writer_submit(layer->writer, environment_set_run, environment_set_done, job);
}

/* Remember a success for the next batch write. */
static void
record_success(const struct delivery *d)
{
	struct delivery_layer *layer = d->layer;

	/*
	 * last_success_at is kept to the minute: a device that succeeded less than a
	 * minute before it was resolved is not written again, which spares a busy
	 * device a write per notification.
	 */
	if (d->last_success_at > 0 &&
	    clock_now_ms() - d->last_success_at < DELIVERY_SUCCESS_PRECISION_MS)
		return;
	if (layer->success_count == layer->success_capacity) {
		layer->success_capacity = layer->success_capacity == 0 ? 256 :
		    layer->success_capacity * 2;
		layer->successes = xreallocarray(layer->successes, layer->success_capacity,
		    sizeof *layer->successes);
	}
	layer->successes[layer->success_count++] = xstrdup(d->device_id);
}

/* A provider's answer for a delivery it took: exactly once per accepted send(). */
static void
delivery_complete(struct delivery *d, const struct provider_result *result, void *arg)
{
	struct delivery_layer *layer = arg;
	char status[8], attempt[8];

	layer->in_flight--;
	if (layer->blocked[d->platform])
		schedule_pump(layer);
	if (result->verdict != PROVIDER_RETRY)
		observe_latency(d);
	switch (result->verdict) {
	case PROVIDER_SENT:
		layer->sent++;
		count_outcome(d, DELIVERY_OUTCOME_SENT);
		record_success(d);
		if (d->environment_switched)
			environment_correct(d);
		/* A reason on success is informative, e.g. the log provider's dry run. */
		delivery_set_state(d, DELIVERY_SENT,
		    result->reason[0] != '\0' ? result->reason : NULL);
		break;
	case PROVIDER_RETRY:
		if (!layer->running) {
			/* Shutting down: leave it queued in the store for the next start. */
			delivery_abandon(d);
			break;
		}
		delivery_retry(d, result);
		break;
	case PROVIDER_TOKEN_GONE:
		if (!environment_fallback(d, result))
			delivery_token_gone(d, result);
		break;
	case PROVIDER_REJECTED:
	case PROVIDER_CONFIG:
		snprintf(status, sizeof status, "%d", result->status);
		snprintf(attempt, sizeof attempt, "%d", d->attempt);
		log_warn(result->verdict == PROVIDER_CONFIG ?
		    "notification failed: provider configuration" : "notification rejected",
		    "device_id", d->device_id, "platform", model_platform_name(d->platform),
		    "app_id", d->app_id, "status", status, "reason", result->reason, "attempt",
		    attempt, NULL);
		layer->failed++;
		count_outcome(d, result->verdict == PROVIDER_CONFIG ? DELIVERY_OUTCOME_CONFIG_ERROR :
		    DELIVERY_OUTCOME_REJECTED);
		delivery_set_state(d, DELIVERY_FAILED, result->reason);
		break;
	}
}

void
delivery_get_stats(const struct delivery_layer *layer, struct delivery_stats *stats)
{
	stats->queued = layer->queued;
	stats->retrying = layer->retrying;
	stats->in_flight = layer->in_flight;
	stats->sent = layer->sent;
	stats->failed = layer->failed;
	stats->token_removed = layer->token_removed;
	stats->retries = layer->retries;
	stats->environment_switches = layer->environment_switches;
	stats->environment_corrections = layer->environment_corrections;
}
