/* The HTTP source: posted batches parsed, kept in the outbox with group commit, handed. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "model.h"
#include "source_ably.h"
#include "source_http.h"
#include "store_outbox.h"
#include "store_writer.h"
#include "xmalloc.h"

/* Batches waiting for the router, at most, before new ones are refused. */
#define HTTP_WAITING_MAX 64

struct batch {
	TAILQ_ENTRY(batch) entry;
	TAILQ_ENTRY(batch) live_entry;	/* every batch alive, to free at stop */
	struct source_http *source;
	int64_t id;			/* outbox row, once committed */
	enum store_outbox_kind kind;
	char *body;			/* the outbox form */
	struct room_event *events;
	size_t count;
	size_t handed;			/* events taken by the router */
	size_t acked;
	json_t *skipped;		/* for the answer */
	source_http_answer_fn *answer;	/* NULL once answered, and for a replayed batch */
	void *arg;
};
TAILQ_HEAD(batch_list, batch);

/* The router's view of the source (source.h's struct source): the handle behind it. */
struct source {
	struct source_http *http;
};

struct source_http {
	struct source view;
	struct event_base *base;
	struct store *store;
	struct store_writer *writer;
	struct source_sink sink;
	int max_batch;			/* [events] max_batch */
	struct batch_list committing;	/* waiting for the writer */
	struct batch_list storing;	/* in the commit running now */
	struct batch_list handing;	/* committed, events not all handed */
	struct batch_list live;		/* all of them, and those handed in full */
	size_t waiting;			/* batches committing, storing or handing */
	int64_t *deletes;		/* outbox rows to drop, written behind */
	size_t delete_count, delete_capacity;
	int store_running;
	int paused;
	int stopping;
	struct event *hand_event;
	struct source_stats stats;
};

/* Tell a post's handler how it went. */
static void
answer_error(source_http_answer_fn *answer, void *arg, enum source_http_result result,
    const char *field, const char *message)
{
	struct source_http_answer a;

	memset(&a, 0, sizeof a);
	a.result = result;
	a.field = field;
	a.message = message;
	answer(&a, arg);
}

/* Refuse a post: too much waits already. */
static void
answer_busy(source_http_answer_fn *answer, void *arg)
{
	answer_error(answer, arg, SOURCE_HTTP_EBUSY, NULL,
	    "too many events are waiting; retry later");
}

/* Free a batch and the events it still holds. */
static void
batch_free(struct batch *b)
{
	TAILQ_REMOVE(&b->source->live, b, live_entry);
	for (size_t i = b->handed; i < b->count; i++)
		room_event_free(&b->events[i]);
	free(b->events);
	free(b->body);
	json_decref(b->skipped);
	free(b);
}

/* ---- dropping handled batches from the outbox ---- */

struct delete_job {
	int64_t *ids;
	size_t count;
};

/* On the writer thread: drop the rows. */
static int
delete_run(struct store *store, void *arg)
{
	struct delete_job *job = arg;

	return store_outbox_delete(store, job->ids, job->count);
}

/* Back on the loop: the rows are dropped, or stay. */
static void
delete_done(int result, void *arg)
{
	struct delete_job *job = arg;

	/* On failure the rows stay: a restart hands them again, dedupe keeps it quiet. */
	free(job->ids);
	free(job);
}

/* Hand the rows to drop to the writer. */
static void
start_deletes(struct source_http *s)
{
	struct delete_job *job;

	if (s->delete_count == 0)
		return;
	job = xmalloc(sizeof *job);
	job->ids = s->deletes;
	job->count = s->delete_count;
	s->deletes = NULL;
	s->delete_count = s->delete_capacity = 0;
	store_writer_submit(s->writer, delete_run, delete_done, job);
}

/* A batch whose events are all handed and acknowledged leaves the outbox. */
static void
batch_maybe_done(struct batch *b)
{
	struct source_http *s = b->source;

	if (b->acked < b->count || b->handed < b->count)
		return;
	if (b->id != 0) {
		if (s->delete_count == s->delete_capacity) {
			s->delete_capacity = s->delete_capacity == 0 ? 64 : s->delete_capacity * 2;
			s->deletes = xreallocarray(s->deletes, s->delete_capacity,
			    sizeof *s->deletes);
		}
		s->deletes[s->delete_count++] = b->id;
		start_deletes(s);
	}
	batch_free(b);
}

/* The router is done with one event of a batch. */
static void
batch_event_acked(void *ctx)
{
	struct batch *b = ctx;

	b->source->stats.acked++;
	b->acked++;
	batch_maybe_done(b);
}

/* Hand committed events to the router, in order, until it is full. */
static void
hand_out(struct source_http *s)
{
	struct batch *b;

	while (!s->paused && !s->stopping && (b = TAILQ_FIRST(&s->handing)) != NULL) {
		while (b->handed < b->count) {
			struct room_event *e = &b->events[b->handed];
			if (s->sink.handle(s->sink.arg, e, batch_event_acked, b) == SOURCE_EFULL) {
				s->paused = 1;
				s->stats.paused = 1;
				return;
			}
			b->handed++;
			s->stats.received++;
		}
		TAILQ_REMOVE(&s->handing, b, entry);
		s->waiting--;
		/* All handed: done now if every ack is already in, else at the last. */
		batch_maybe_done(b);
	}
}

/* Hand out from the loop (after start or resume). */
static void
hand_event(evutil_socket_t fd, short what, void *arg)
{
	hand_out(arg);
}

/* ---- committing batches to the outbox ---- */

struct store_job {
	struct source_http *source;
	enum store_outbox_kind *kinds;
	const char **bodies;
	int64_t *ids;
	size_t count;
	int64_t at;
};

/* On the writer thread: commit the batches. */
static int
store_run(struct store *store, void *arg)
{
	struct store_job *job = arg;

	return store_outbox_add(store, job->kinds, job->bodies, job->count, job->at, job->ids);
}

static void start_store(struct source_http *s);

/* The commit is done: answer its batches, then hand their events. */
static void
store_done(int result, void *arg)
{
	struct store_job *job = arg;
	struct source_http *s = job->source;
	struct source_http_answer answer;
	struct batch *b;
	size_t i = 0;

	s->store_running = 0;
	while ((b = TAILQ_FIRST(&s->storing)) != NULL) {
		TAILQ_REMOVE(&s->storing, b, entry);
		if (result != STORE_OK) {
			s->waiting--;
			answer_error(b->answer, b->arg, SOURCE_HTTP_ESTORE, NULL,
			    "the store failed; nothing was accepted, retry later");
			batch_free(b);
			continue;
		}
		b->id = job->ids[i++];
		memset(&answer, 0, sizeof answer);
		answer.result = SOURCE_HTTP_ACCEPTED;
		answer.accepted = b->count;
		answer.skipped = b->skipped;
		b->answer(&answer, b->arg);
		b->answer = NULL;
		json_decref(b->skipped);
		b->skipped = NULL;
		TAILQ_INSERT_TAIL(&s->handing, b, entry);
	}
	free(job->kinds);
	free(job->bodies);
	free(job->ids);
	free(job);
	hand_out(s);
	start_store(s);
}

/* Commit every batch waiting, in one transaction: the group commit. */
static void
start_store(struct source_http *s)
{
	struct store_job *job;
	struct batch *b;
	size_t n = 0;

	if (s->store_running || TAILQ_EMPTY(&s->committing))
		return;
	TAILQ_CONCAT(&s->storing, &s->committing, entry);
	TAILQ_FOREACH(b, &s->storing, entry)
		n++;
	job = xcalloc(1, sizeof *job);
	job->source = s;
	job->kinds = xcalloc(n, sizeof *job->kinds);
	job->bodies = xcalloc(n, sizeof *job->bodies);
	job->ids = xcalloc(n, sizeof *job->ids);
	job->at = clock_now_ms();
	TAILQ_FOREACH(b, &s->storing, entry) {
		job->kinds[job->count] = b->kind;
		job->bodies[job->count++] = b->body;
	}
	s->store_running = 1;
	store_writer_submit(s->writer, store_run, store_done, job);
}

/* Is there room for another batch now? */
static int
http_ready(const struct source_http *s)
{
	return !s->paused && !s->stopping && s->waiting < HTTP_WAITING_MAX;
}

/*
 * Keep a batch of parsed events (taken over, count may be 0, and skipped too) whose
 * durable form is body: answered once committed, or now if there is no room.
 */
static void
http_submit(struct source_http *s, enum store_outbox_kind kind, struct room_event *events,
    size_t count, const char *body, json_t *skipped, source_http_answer_fn *answer,
    void *arg)
{
	struct batch *b;

	if (!http_ready(s)) {
		for (size_t i = 0; i < count; i++)
			room_event_free(&events[i]);
		free(events);
		json_decref(skipped);
		answer_busy(answer, arg);
		return;
	}
	b = xcalloc(1, sizeof *b);
	b->source = s;
	TAILQ_INSERT_TAIL(&s->live, b, live_entry);
	b->kind = kind;
	b->events = events;
	b->count = count;
	b->body = xstrdup(body);
	b->skipped = skipped;
	b->answer = answer;
	b->arg = arg;
	TAILQ_INSERT_TAIL(&s->committing, b, entry);
	s->waiting++;
	start_store(s);
}

/* ---- POST /v1/events ---- */

static const char *const events_fields[] = { "events", NULL };

/* List a skipped event in the answer. */
static void
add_skipped(json_t *skipped, size_t index, const char *reason)
{
	json_array_append_new(skipped, json_pack("{s:I, s:s}", "index", (json_int_t)index,
	    "reason", reason));
}

/* Parse the events of a batch; malformed ones are listed in skipped (if not NULL). */
static struct room_event *
parse_events(const json_t *array, size_t *count, json_t *skipped, json_t *kept)
{
	struct room_event *events = xcalloc(json_array_size(array) + 1, sizeof *events);
	const json_t *item;
	char err[EVENT_REASON_MAX];
	size_t i;

	*count = 0;
	json_array_foreach(array, i, item) {
		int rc = room_event_parse(item, NULL, &events[*count], err, sizeof err);
		if (rc != EVENT_OK) {
			if (skipped != NULL)
				add_skipped(skipped, i, err);
			continue;
		}
		if (kept != NULL)
			json_array_append(kept, (json_t *)item);
		(*count)++;
	}
	return events;
}

/* Read an events row of the outbox back: 0, or -1 if it is not {"events":[...]}. */
static int
events_replay(const char *body, struct room_event **events, size_t *count)
{
	json_t *o = json_loads(body, 0, NULL), *array;

	*events = NULL;
	*count = 0;
	if (o == NULL || !json_is_array(array = json_object_get(o, "events"))) {
		json_decref(o);
		return -1;
	}
	*events = parse_events(array, count, NULL, NULL);
	json_decref(o);
	return 0;
}

/*
 * Log what a parsed batch skipped and keep it (events, skipped and kept taken over).
 * The outbox keeps the events that parsed in their wire form: the body as it came
 * when nothing was skipped (it holds nothing else, and no NUL: it is valid JSON),
 * else kept, their jansson values, re-serialized.
 */
static void
accept_events(struct source_http *s, const char *body, size_t len,
    struct room_event *events, size_t count, json_t *skipped, json_t *kept,
    source_http_answer_fn *answer, void *arg)
{
	json_t *outbox;
	char *text, skipped_count[24];

	if (json_array_size(skipped) > 0) {
		snprintf(skipped_count, sizeof skipped_count, "%zu", json_array_size(skipped));
		log_warn("malformed events skipped", "source", "http", "count", skipped_count,
		    "first", json_string_value(json_object_get(json_array_get(skipped, 0),
		    "reason")), NULL);
	}
	if (json_array_size(skipped) == 0) {
		json_decref(kept);
		text = xstrndup(body, len);
	} else {
		outbox = json_pack("{s:o}", "events", kept);
		text = json_dumps(outbox, JSON_COMPACT);
		json_decref(outbox);
		if (text == NULL)
			fatalx("out of memory serializing events");
	}
	http_submit(s, STORE_OUTBOX_EVENTS, events, count, text, skipped, answer, arg);
	free(text);
}

/*
 * The events of a batch read by the fast path that were not skipped, as jansson
 * values for the outbox: the body is parsed again, which only a batch with skipped
 * events needs. NULL if jansson does not read it as the fast path did (which the
 * tests say cannot happen).
 */
static json_t *
kept_events(const char *body, size_t len, const struct room_event_batch *batch)
{
	json_t *root, *item, *kept;
	json_error_t jerr;
	size_t i, next = 0;

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_array(json_object_get(root, "events"))) {
		json_decref(root);
		return NULL;
	}
	if ((kept = json_array()) == NULL)
		fatalx("out of memory reading a batch again");
	json_array_foreach(json_object_get(root, "events"), i, item) {
		if (next < batch->skipped_count && batch->skipped[next].index == i) {
			next++;
			continue;
		}
		json_array_append(kept, item);
	}
	json_decref(root);
	return kept;
}

/* A batch parsed by jansson, with every check and its error. */
static void
post_parsed_events(struct source_http *s, const char *body, size_t len,
    source_http_answer_fn *answer, void *arg)
{
	struct model_error merr;
	struct room_event *events;
	json_t *root, *array, *kept, *skipped;
	json_error_t jerr;
	char message[512];
	size_t count;

	if ((root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(message, sizeof message, "request body is not valid JSON: %s at line "
		    "%d, column %d", jerr.text, jerr.line, jerr.column);
		answer_error(answer, arg, SOURCE_HTTP_EJSON, NULL, message);
		return;
	}
	if (!json_is_object(root)) {
		answer_error(answer, arg, SOURCE_HTTP_EJSON, NULL,
		    "request body must be a JSON object");
		goto out;
	}
	if (model_check_fields(root, events_fields, NULL, &merr) != 0) {
		answer_error(answer, arg, merr.kind == MODEL_ERROR_MISSING ?
		    SOURCE_HTTP_EMISSING : SOURCE_HTTP_EINVALID, merr.field, merr.message);
		goto out;
	}
	array = json_object_get(root, "events");
	if (array == NULL) {
		answer_error(answer, arg, SOURCE_HTTP_EMISSING, "events", "events: is required");
		goto out;
	}
	if (!json_is_array(array) || json_array_size(array) == 0) {
		answer_error(answer, arg, SOURCE_HTTP_EINVALID, "events",
		    "events: must be a non-empty array of event objects");
		goto out;
	}
	if (json_array_size(array) > (size_t)s->max_batch) {
		snprintf(message, sizeof message, "events: at most %d events per request",
		    s->max_batch);
		answer_error(answer, arg, SOURCE_HTTP_ETOOLARGE, "events", message);
		goto out;
	}
	if (!http_ready(s)) {
		answer_busy(answer, arg);
		goto out;
	}
	skipped = json_array();
	kept = json_array();
	events = parse_events(array, &count, skipped, kept);
	accept_events(s, body, len, events, count, skipped, kept, answer, arg);
out:
	json_decref(root);
}

/* A batch the fast path took: its body passes every check. */
static void
post_scanned_events(struct source_http *s, const char *body, size_t len,
    struct room_event_batch *batch, source_http_answer_fn *answer, void *arg)
{
	json_t *skipped, *kept = NULL;
	struct room_event *events;
	size_t count;

	if (!http_ready(s)) {
		room_event_batch_free(batch);
		answer_busy(answer, arg);
		return;
	}
	if (batch->skipped_count > 0 && (kept = kept_events(body, len, batch)) == NULL) {
		log_warn("event batch read two ways differently", "source", "http", NULL);
		room_event_batch_free(batch);
		post_parsed_events(s, body, len, answer, arg);
		return;
	}
	skipped = json_array();
	for (size_t i = 0; i < batch->skipped_count; i++)
		add_skipped(skipped, batch->skipped[i].index, batch->skipped[i].reason);
	events = batch->events;
	count = batch->count;
	batch->events = NULL;
	batch->count = 0;
	room_event_batch_free(batch);
	accept_events(s, body, len, events, count, skipped, kept, answer, arg);
}

/*
 * {"events": [...]}: a batch of flat events, the common one, is read without a
 * jansson tree. Everything else, every error included, goes the way of jansson,
 * whose errors come first.
 */
void
source_http_post_events(struct source_http *s, const char *body, size_t len,
    source_http_answer_fn *answer, void *arg)
{
	struct room_event_batch batch;

	if (room_event_parse_batch_fast(body, len, (size_t)s->max_batch, &batch) == EVENT_OK)
		post_scanned_events(s, body, len, &batch, answer, arg);
	else
		post_parsed_events(s, body, len, answer, arg);
}

/* ---- POST /v1/ingest/ably ---- */

/* An Ably webhook: translated, kept, answered. */
void
source_http_post_ably(struct source_http *s, const void *body, size_t len,
    source_ably_header_fn *header, void *header_arg, source_http_answer_fn *answer,
    void *arg)
{
	struct ably_request request;
	struct ably_result result;
	json_t *skipped;
	char err[256], message[300], count[24], *text;
	const char *bad;
	int rc;

	if (!http_ready(s)) {
		answer_busy(answer, arg);
		return;
	}
	/* Refused whole, so that the outbox (JSON) can keep the headers as they came. */
	if ((bad = source_ably_header_not_utf8(header, header_arg)) != NULL) {
		snprintf(message, sizeof message, "%s: must be UTF-8", bad);
		answer_error(answer, arg, SOURCE_HTTP_EINVALID, bad, message);
		return;
	}
	source_ably_request(&request, body, len, header, header_arg);
	if ((rc = source_ably_translate(&request, &result, err, sizeof err)) != ABLY_OK) {
		answer_error(answer, arg, rc == ABLY_EMSGPACK ? SOURCE_HTTP_EMEDIATYPE :
		    rc == ABLY_ETOOLARGE ? SOURCE_HTTP_ETOOLARGE : SOURCE_HTTP_EJSON, NULL, err);
		return;
	}
	skipped = json_object();
	for (int k = 0; k < ABLY_SKIP_KINDS; k++) {
		if (result.skipped[k] > 0)
			json_object_set_new(skipped, source_ably_skip_kind_name(k),
			    json_integer((json_int_t)result.skipped[k]));
	}
	if (result.skip_count > 0) {
		snprintf(count, sizeof count, "%zu", result.skip_count);
		log_warn("Ably items skipped", "count", count, "first", result.skips[0].detail,
		    NULL);
	}
	if ((text = source_ably_outbox_body(body, len, header, header_arg)) == NULL) {
		log_error("out of memory keeping an Ably webhook", NULL);
		json_decref(skipped);
		source_ably_result_free(&result);
		answer_error(answer, arg, SOURCE_HTTP_ENOMEM, NULL,
		    "cannot keep the webhook; retry later");
		return;
	}
	/* The events move to the batch. */
	http_submit(s, STORE_OUTBOX_ABLY, result.events, result.count, text, skipped, answer,
	    arg);
	result.events = NULL;
	result.count = 0;
	source_ably_result_free(&result);
	free(text);
}

/* ---- the outbox at start ---- */

/* Read an outbox row back as its kind says: 0, or -1 if it does not read. */
static int
replay_read(const struct outbox_entry *entry, struct room_event **events, size_t *count)
{
	switch (entry->kind) {
	case STORE_OUTBOX_EVENTS:
		return events_replay(entry->body, events, count);
	case STORE_OUTBOX_ABLY:
		return source_ably_replay(entry->body, events, count);
	}
	*events = NULL;
	*count = 0;
	return -1;
}

/* Hand again what the outbox kept from before a restart. */
static void
http_replay(struct source_http *s)
{
	struct outbox_entry *entries;
	size_t n;
	char count[24], id[24];

	if (store_outbox_load(s->store, &entries, &n) != STORE_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		struct batch *b = xcalloc(1, sizeof *b);

		b->source = s;
		TAILQ_INSERT_TAIL(&s->live, b, live_entry);
		b->id = entries[i].id;
		b->kind = entries[i].kind;
		if (replay_read(&entries[i], &b->events, &b->count) != 0) {
			snprintf(id, sizeof id, "%lld", (long long)entries[i].id);
			log_warn("outbox batch cannot be read back, dropped", "kind",
			    entries[i].kind == STORE_OUTBOX_ABLY ? "ably" : "events", "id", id,
			    NULL);
		}
		for (size_t e = 0; e < b->count; e++)
			b->events[e].redelivered = 1;
		TAILQ_INSERT_TAIL(&s->handing, b, entry);
		s->waiting++;
	}
	if (n > 0) {
		snprintf(count, sizeof count, "%zu", n);
		log_info("resuming event batches accepted before the restart", "batches", count,
		    NULL);
	}
	store_outbox_free(entries, n);
	event_active(s->hand_event, 0, 0);
}

/* Start the HTTP source and hand again what the outbox kept. */
struct source_http *
source_http_start(struct event_base *base, const struct config *config,
    struct store *store, struct store_writer *writer, const struct source_sink *sink)
{
	struct source_http *s = xcalloc(1, sizeof *s);

	s->view.http = s;
	s->base = base;
	s->store = store;
	s->writer = writer;
	s->sink = *sink;
	s->max_batch = config->events_max_batch;
	s->stats.connected = 1;
	s->stats.lag = -1;
	TAILQ_INIT(&s->committing);
	TAILQ_INIT(&s->storing);
	TAILQ_INIT(&s->handing);
	TAILQ_INIT(&s->live);
	if ((s->hand_event = event_new(base, -1, 0, hand_event, s)) == NULL)
		fatalx("cannot create the HTTP source's event");
	http_replay(s);
	return s;
}

/* The source as the router sees it. */
struct source *
source_http_source(struct source_http *http)
{
	return &http->view;
}

/* The sink is full: refuse new batches and stop handing. */
static void
http_pause(struct source *view)
{
	struct source_http *s = view->http;

	s->paused = 1;
	s->stats.paused = 1;
}

/* The sink has room again: hand what waits. */
static void
http_resume(struct source *view)
{
	struct source_http *s = view->http;

	s->paused = 0;
	s->stats.paused = 0;
	event_active(s->hand_event, 0, 0);
}

/* Free the source; what was not acknowledged stays in the outbox. */
static void
http_stop(struct source *view)
{
	struct source_http *s = view->http;
	struct batch *b;

	s->stopping = 1;
	start_deletes(s);
	/*
	 * Committed batches not fully handled stay in the outbox for the next start. The
	 * router stopped first: no acknowledgement comes after this, so every batch
	 * still alive is freed here.
	 */
	while ((b = TAILQ_FIRST(&s->live)) != NULL)
		batch_free(b);
	event_free(s->hand_event);
	free(s->deletes);
	free(s);
}

/* The counters; pending is the batches waiting. */
static void
http_stats(const struct source *view, struct source_stats *stats)
{
	const struct source_http *s = view->http;

	*stats = s->stats;
	stats->pending = s->waiting;
}

const struct source_ops source_http_ops = {
	.name = "http",
	.start = NULL,			/* source_http_start(): it needs the store */
	.pause = http_pause,
	.resume = http_resume,
	.stop = http_stop,
	.stats = http_stats,
};
