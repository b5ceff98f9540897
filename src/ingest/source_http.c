/* The HTTP source: an outbox with group commit in front of the router. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "source_http.h"
#include "store.h"
#include "store_writer.h"
#include "xmalloc.h"

/* Batches waiting for the router, at most, before new ones get 503. */
#define HTTP_WAITING_MAX 64

struct batch {
	TAILQ_ENTRY(batch) entry;
	TAILQ_ENTRY(batch) live_entry;	/* every batch alive, to free at stop */
	struct source *source;
	int64_t id;			/* outbox row, once committed */
	char *body;			/* the outbox form */
	struct room_event *events;
	size_t count;
	size_t handed;			/* events taken by the router */
	size_t acked;
	source_http_done_fn *done;
	void *arg;
};
TAILQ_HEAD(batch_list, batch);

struct source {
	struct event_base *base;
	struct source_sink sink;
	struct batch_list committing;	/* waiting for the writer */
	struct batch_list storing;	/* in the commit running now */
	struct batch_list handing;	/* committed, events not all handed */
	struct batch_list live;		/* all of them, and those handed in full */
	size_t waiting;			/* batches committing, storing or handing */
	int64_t *deletes;		/* outbox rows to drop, written behind */
	size_t delete_count, delete_capacity;
	int store_running;
	int delete_running;
	int paused;
	int stopping;
	struct event *hand_event;
	struct source_stats stats;
};

static struct store *http_store;
static struct store_writer *http_writer;
static source_http_replay_fn *http_replay;

void
source_http_setup(struct store *store, struct store_writer *writer)
{
	http_store = store;
	http_writer = writer;
}

void
source_http_set_replay(source_http_replay_fn *replay)
{
	http_replay = replay;
}

static void
batch_free(struct batch *b)
{
	TAILQ_REMOVE(&b->source->live, b, live_entry);
	for (size_t i = b->handed; i < b->count; i++)
		room_event_free(&b->events[i]);
	free(b->events);
	free(b->body);
	free(b);
}

/* ---- dropping handled batches from the outbox ---- */

struct delete_job {
	int64_t *ids;
	size_t count;
};

static int
delete_run(struct store *store, void *arg)
{
	struct delete_job *job = arg;

	return store_outbox_delete(store, job->ids, job->count);
}

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
start_deletes(struct source *s)
{
	struct delete_job *job;

	if (s->delete_count == 0)
		return;
	job = xmalloc(sizeof *job);
	job->ids = s->deletes;
	job->count = s->delete_count;
	s->deletes = NULL;
	s->delete_count = s->delete_capacity = 0;
	store_writer_submit(http_writer, delete_run, delete_done, job);
}

/* A batch whose events are all handed and acknowledged leaves the outbox. */
static void
batch_maybe_done(struct batch *b)
{
	struct source *s = b->source;

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
hand_out(struct source *s)
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

static void
hand_event(evutil_socket_t fd, short what, void *arg)
{
	hand_out(arg);
}

/* ---- committing batches to the outbox ---- */

struct store_job {
	struct source *source;
	const char **bodies;
	int64_t *ids;
	size_t count;
	int64_t at;
};

static int
store_run(struct store *store, void *arg)
{
	struct store_job *job = arg;

	return store_outbox_add(store, job->bodies, job->count, job->at, job->ids);
}

static void start_store(struct source *s);

static void
store_done(int result, void *arg)
{
	struct store_job *job = arg;
	struct source *s = job->source;
	struct batch *b;
	size_t i = 0;

	s->store_running = 0;
	while ((b = TAILQ_FIRST(&s->storing)) != NULL) {
		TAILQ_REMOVE(&s->storing, b, entry);
		if (result != STORE_OK) {
			s->waiting--;
			b->done(SOURCE_HTTP_STORE, b->arg);
			batch_free(b);
			continue;
		}
		b->id = job->ids[i++];
		b->done(SOURCE_HTTP_ACCEPTED, b->arg);
		TAILQ_INSERT_TAIL(&s->handing, b, entry);
	}
	free(job->bodies);
	free(job->ids);
	free(job);
	hand_out(s);
	start_store(s);
}

/* Commit every batch waiting, in one transaction: the group commit. */
static void
start_store(struct source *s)
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
	job->bodies = xcalloc(n, sizeof *job->bodies);
	job->ids = xcalloc(n, sizeof *job->ids);
	job->at = clock_now_ms();
	TAILQ_FOREACH(b, &s->storing, entry)
		job->bodies[job->count++] = b->body;
	s->store_running = 1;
	store_writer_submit(http_writer, store_run, store_done, job);
}

int
source_http_ready(const struct source *s)
{
	return !s->paused && s->waiting < HTTP_WAITING_MAX;
}

int
source_http_submit(struct source *s, struct room_event *events, size_t count,
    const char *outbox_body, source_http_done_fn *done, void *arg)
{
	struct batch *b;

	if (!source_http_ready(s) || s->stopping) {
		for (size_t i = 0; i < count; i++)
			room_event_free(&events[i]);
		free(events);
		return SOURCE_HTTP_BUSY;
	}
	b = xcalloc(1, sizeof *b);
	b->source = s;
	TAILQ_INSERT_TAIL(&s->live, b, live_entry);
	b->events = events;
	b->count = count;
	b->body = xstrdup(outbox_body);
	b->done = done;
	b->arg = arg;
	TAILQ_INSERT_TAIL(&s->committing, b, entry);
	s->waiting++;
	start_store(s);
	return SOURCE_HTTP_ACCEPTED;
}

/* Nothing to tell about a replayed batch: it was answered before the restart. */
static void
replay_done(int result, void *arg)
{
}

/* Hand again what the outbox kept from before a restart. */
static void
source_http_replay(struct source *s)
{
	struct outbox_entry *entries;
	size_t n;
	char count[24];

	if (http_replay == NULL || store_outbox_load(http_store, &entries, &n) != STORE_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		struct batch *b = xcalloc(1, sizeof *b);

		b->source = s;
		TAILQ_INSERT_TAIL(&s->live, b, live_entry);
		b->id = entries[i].id;
		b->done = replay_done;
		if (http_replay(entries[i].body, &b->events, &b->count) != 0)
			log_warn("outbox batch cannot be read back, dropped", NULL);
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

static struct source *
http_start(struct event_base *base, const struct config *config,
    const struct source_sink *sink, char *err, size_t errlen)
{
	struct source *s = xcalloc(1, sizeof *s);

	s->base = base;
	s->sink = *sink;
	s->stats.connected = 1;
	s->stats.lag = -1;
	TAILQ_INIT(&s->committing);
	TAILQ_INIT(&s->storing);
	TAILQ_INIT(&s->handing);
	TAILQ_INIT(&s->live);
	if ((s->hand_event = event_new(base, -1, 0, hand_event, s)) == NULL)
		fatalx("cannot create the HTTP source's event");
	source_http_replay(s);
	return s;
}

static void
http_pause(struct source *s)
{
	s->paused = 1;
	s->stats.paused = 1;
}

static void
http_resume(struct source *s)
{
	s->paused = 0;
	s->stats.paused = 0;
	event_active(s->hand_event, 0, 0);
}

static void
http_stop(struct source *s)
{
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

static void
http_stats(const struct source *s, struct source_stats *stats)
{
	*stats = s->stats;
	stats->pending = s->waiting;
}

const struct source_ops source_http_ops = {
	.name = "http",
	.start = http_start,
	.pause = http_pause,
	.resume = http_resume,
	.stop = http_stop,
	.stats = http_stats,
};
