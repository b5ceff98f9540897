/*
 * Room events from Redis Streams: a consumer group read with XREADGROUP on a
 * redis_link's reader connection, XACK, XAUTOCLAIM and XINFO on its other one.
 *
 * A source stopped by its sink from inside one of our callbacks is freed when that
 * callback unwinds (source->busy).
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "redis_link.h"
#include "source.h"
#include "source_streams.h"
#include "strmap.h"
#include "xmalloc.h"

#define REDIS_INFO_INTERVAL_MS 2000	/* lag refresh and liveness check */
#define REDIS_ID_SIZE 48		/* a stream id: two 64-bit numbers and a dash */
#define REDIS_XACK_MAX 1000		/* ids in one XACK */
#define REDIS_XACK_DELAY_MS 1		/* gather XACKs for this long */

struct source;

enum entry_state {
	ENTRY_READY = 0,	/* read, waiting to be handed (held while paused) */
	ENTRY_HANDED,		/* the sink has it and will ack it */
	ENTRY_DUE,		/* to be XACKed */
	ENTRY_ACKING,		/* in an XACK in flight */
	ENTRY_ACKED,		/* XACKed, remembered until the reader's reply in flight */
};

/*
 * A stream entry this source knows about, from the moment it is read until its XACK
 * is answered. Every one is in its key's map, so one that is read again (the
 * consumer's own pending entries after a reconnect, or an XAUTOCLAIM of our own idle
 * entries) is not handed twice. The handed entry is the sink's ack context.
 */
struct stream_entry {
	TAILQ_ENTRY(stream_entry) queue;	/* ready, handed, due, acked, or a batch's */
	struct source *source;
	enum entry_state state;
	size_t key;			/* index in source->keys */
	int handed;			/* given to the sink (counted in acked) */
	struct room_event event;	/* the sink moves it out when it takes it */
	char id[REDIS_ID_SIZE];
};
TAILQ_HEAD(stream_entries, stream_entry);

/* The entries of one XACK in flight (the reply callback's privdata). */
struct xack_batch {
	TAILQ_ENTRY(xack_batch) link;
	struct source *source;		/* NULL once the source stopped */
	size_t key;
	struct stream_entries entries;
};
TAILQ_HEAD(xack_batches, xack_batch);

/* One stream key. */
struct stream_key {
	struct source *source;
	char *name;
	struct strmap *entries;			/* id -> struct stream_entry */
	char read_cursor[REDIS_ID_SIZE];	/* own pending entries: the last id read */
	int pending_done;			/* own pending entries all read */
	int seen;				/* in the last XREADGROUP reply */
	char claim_cursor[REDIS_ID_SIZE];	/* XAUTOCLAIM's next start */
	int claiming;				/* an XAUTOCLAIM is in flight */
};

enum stream_phase {
	PHASE_PENDING = 0,	/* reading the consumer's own pending entries */
	PHASE_NEW,		/* reading new entries (>) */
};

struct source {
	const char *name;
	struct event_base *base;
	struct source_sink sink;
	struct redis_link *link;	/* 0: the reader, 1: commands */
	int busy;			/* callbacks of ours on the stack */
	int stopping;

	struct source_stats stats;
	struct redis_ratelimit skip_log;
	int sink_paused;		/* pause() called, resume() not yet */

	/* [streams] */
	struct stream_key *keys;
	size_t nkeys;
	char *group;
	char *consumer;
	char batch_arg[16];
	char block_arg[24];
	char claim_idle_arg[24];
	int batch;
	int64_t block_ms;
	int64_t claim_idle_ms;
	enum stream_phase phase;
	size_t groups_pending;		/* XGROUP CREATE replies to come */
	int full;			/* the sink answered SOURCE_EFULL */
	int reading;			/* an XREADGROUP is in flight */
	int read_blocking;		/* ... with BLOCK */
	int64_t read_sent_ms;
	int claim_supported;
	size_t info_outstanding;	/* XINFO GROUPS replies to come */
	int64_t info_sent_ms;
	int64_t lag_sum;
	int lag_unknown;
	struct stream_entries ready;
	struct stream_entries handed;
	struct stream_entries due;
	struct stream_entries acked;
	struct xack_batches batches;
	struct event *deliver_event;	/* hand held entries after resume */
	struct event *flush_event;	/* send the XACKs that are due */
	struct event *claim_timer;
	struct event *info_timer;
};

static void streams_deliver(struct source *);
static void streams_maybe_read(struct source *);
static void streams_schedule_flush(struct source *);
static void streams_claim(struct source *, struct stream_key *);
static void streams_free(struct source *);

/* A new event, or death. */
static struct event *
streams_event_new(struct source *source, short what, event_callback_fn fn)
{
	struct event *ev;

	if ((ev = event_new(source->base, -1, what, fn, source)) == NULL)
		fatalx("event_new: out of memory");
	return ev;
}

/* Leave a callback of ours; free the source if it was stopped meanwhile. */
static void
streams_release(struct source *source)
{
	if (--source->busy == 0 && source->stopping)
		streams_free(source);
}

/* Count, report and log (rate-limited) an entry that was skipped. */
static void
streams_skip(struct source *source, int rv, const char *error, const char *stream,
    const char *entry_id)
{
	const char *reason = rv == EVENT_EUNKNOWN ? "unknown" : "malformed";
	uint64_t suppressed;
	char n[24];

	if (rv == EVENT_EUNKNOWN)
		source->stats.unknown++;
	else
		source->stats.malformed++;
	if (source->sink.skipped != NULL)
		source->sink.skipped(source->sink.arg, source->name, reason);
	if (!redis_ratelimit_allow(&source->skip_log, &suppressed))
		return;
	snprintf(n, sizeof n, "%llu", (unsigned long long)suppressed);
	log_warn("event skipped", "source", source->name, "reason", reason,
	    "error", error, "stream", stream, "entry_id", entry_id,
	    suppressed > 0 ? "suppressed" : NULL, n, NULL);
}

/* ---- Streams: the entries this source knows ---- */

/* The entry with this key and id, if this source knows it. */
static struct stream_entry *
entry_find(struct source *source, size_t key, const char *id)
{
	return strmap_get(source->keys[key].entries, id, strlen(id));
}

/* Remember an entry until its XACK is answered. */
static void
entry_insert(struct source *source, struct stream_entry *entry)
{
	strmap_put(source->keys[entry->key].entries, entry->id, strlen(entry->id), entry);
}

/* Forget an entry that is on no queue. */
static void
entry_free(struct source *source, struct stream_entry *entry)
{
	strmap_remove(source->keys[entry->key].entries, entry->id, strlen(entry->id));
	room_event_free(&entry->event);
	free(entry);
}

/* Queue an entry for XACK. */
static void
entry_due(struct source *source, struct stream_entry *entry)
{
	entry->state = ENTRY_DUE;
	TAILQ_INSERT_TAIL(&source->due, entry, queue);
	streams_schedule_flush(source);
}

/* The index of a stream key, or -1. */
static ssize_t
streams_key_index(struct source *source, const redisReply *name)
{
	size_t k;

	for (k = 0; k < source->nkeys; k++)
		if (strlen(source->keys[k].name) == name->len &&
		    memcmp(source->keys[k].name, name->str, name->len) == 0)
			return (ssize_t)k;
	return -1;
}

/* Is reading paused (by the sink, or because it answered SOURCE_EFULL)? */
static int
streams_paused(const struct source *source)
{
	return source->sink_paused || source->full;
}

/*
 * Take one entry of an XREADGROUP or XAUTOCLAIM reply: queue its event to be handed,
 * or queue it for XACK at once when it has no valid event. Returns 1 if the entry was
 * new to this source, 0 if it is known already (or not an entry).
 */
static int
streams_take(struct source *source, size_t key, const redisReply *reply, int redelivered)
{
	const redisReply *fields, *value = NULL;
	struct stream_entry *entry;
	char error[256];
	size_t i;
	int rv;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
	    !redis_reply_is_string(reply->element[0]) ||
	    reply->element[0]->len >= REDIS_ID_SIZE)
		return 0;
	if (entry_find(source, key, reply->element[0]->str) != NULL)
		return 0;
	entry = xcalloc(1, sizeof *entry);
	entry->source = source;
	entry->key = key;
	memcpy(entry->id, reply->element[0]->str, reply->element[0]->len + 1);
	entry_insert(source, entry);

	fields = reply->element[1];
	if (fields == NULL || fields->type != REDIS_REPLY_ARRAY) {
		/* Deleted from the stream while pending: only its id is left. */
		log_debug("stream entry deleted before it was handled", "source", source->name,
		    "stream", source->keys[key].name, "entry_id", entry->id, NULL);
		entry_due(source, entry);
		return 1;
	}
	for (i = 0; i + 1 < fields->elements; i += 2) {
		if (redis_reply_is_string(fields->element[i]) && fields->element[i]->len == 5 &&
		    memcmp(fields->element[i]->str, "event", 5) == 0) {
			value = fields->element[i + 1];
			break;
		}
	}
	if (!redis_reply_is_string(value)) {
		streams_skip(source, EVENT_EMALFORMED, "the entry has no event field",
		    source->keys[key].name, entry->id);
		entry_due(source, entry);
		return 1;
	}
	rv = room_event_parse_text(value->str, value->len, NULL, &entry->event, error,
	    sizeof error);
	if (rv != EVENT_OK) {
		streams_skip(source, rv, error, source->keys[key].name, entry->id);
		entry_due(source, entry);
		return 1;
	}
	entry->event.redelivered = redelivered;
	entry->state = ENTRY_READY;
	TAILQ_INSERT_TAIL(&source->ready, entry, queue);
	return 1;
}

/* ---- Streams: handing and acknowledging ---- */

/* The sink is done with an entry's event: XACK it soon. */
static void
streams_ack(void *ctx)
{
	struct stream_entry *entry = ctx;
	struct source *source = entry->source;

	if (entry->state != ENTRY_HANDED) {
		log_error("stream entry acknowledged twice", "source", source->name,
		    "stream", source->keys[entry->key].name, "entry_id", entry->id, NULL);
		return;
	}
	TAILQ_REMOVE(&source->handed, entry, queue);
	source->stats.pending--;
	entry_due(source, entry);
}

/* Hand the ready entries to the sink, in order, until it is full. */
static void
streams_deliver(struct source *source)
{
	struct stream_entry *entry;
	int rv;

	while (!source->stopping && !streams_paused(source) &&
	    (entry = TAILQ_FIRST(&source->ready)) != NULL) {
		/* Handed before the call: the sink may ack before it returns. */
		TAILQ_REMOVE(&source->ready, entry, queue);
		entry->state = ENTRY_HANDED;
		entry->handed = 1;
		TAILQ_INSERT_TAIL(&source->handed, entry, queue);
		source->stats.pending++;
		rv = source->sink.handle(source->sink.arg, &entry->event, streams_ack, entry);
		if (source->stopping)
			return;		/* stop() freed the entry */
		if (rv != SOURCE_EFULL) {
			source->stats.received++;
			continue;
		}
		TAILQ_REMOVE(&source->handed, entry, queue);
		source->stats.pending--;
		entry->state = ENTRY_READY;
		entry->handed = 0;
		TAILQ_INSERT_HEAD(&source->ready, entry, queue);
		source->full = 1;
		log_debug("sink full, stream reading paused", "source", source->name, NULL);
	}
	if (!source->stopping)
		streams_maybe_read(source);
}

/* resume() was called: hand what is held, then read on. */
static void
streams_deliver_fired(evutil_socket_t fd, short what, void *arg)
{
	struct source *source = arg;

	source->busy++;
	streams_deliver(source);
	streams_release(source);
}

/* Put a batch's entries back on the due queue. */
static void
streams_batch_requeue(struct source *source, struct xack_batch *batch)
{
	struct stream_entry *entry;

	while ((entry = TAILQ_FIRST(&batch->entries)) != NULL) {
		TAILQ_REMOVE(&batch->entries, entry, queue);
		entry->state = ENTRY_DUE;
		TAILQ_INSERT_TAIL(&source->due, entry, queue);
	}
}

/* The answer to one XACK. */
static void
streams_xack_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct xack_batch *batch = privdata;
	struct source *source = batch->source;
	struct stream_entry *entry;
	redisReply *reply = r;

	if (source == NULL) {
		/* The source stopped and freed the entries. */
		free(batch);
		return;
	}
	TAILQ_REMOVE(&source->batches, batch, link);
	if (reply == NULL) {
		/* The connection went down: XACK them after the reconnect. */
		streams_batch_requeue(source, batch);
		free(batch);
		streams_schedule_flush(source);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR)
		log_warn("redis XACK failed", "source", source->name,
		    "stream", source->keys[batch->key].name, "error", reply->str, NULL);
	while ((entry = TAILQ_FIRST(&batch->entries)) != NULL) {
		TAILQ_REMOVE(&batch->entries, entry, queue);
		if (reply->type != REDIS_REPLY_ERROR && entry->handed)
			source->stats.acked++;
		/*
		 * A read of own pending entries in flight on the other connection may
		 * have run before this XACK: remember the entry until its reply is in,
		 * so that it is not handed again.
		 */
		if (source->reading && source->phase == PHASE_PENDING) {
			entry->state = ENTRY_ACKED;
			TAILQ_INSERT_TAIL(&source->acked, entry, queue);
		} else
			entry_free(source, entry);
	}
	free(batch);
}

/* Forget the XACKed entries remembered for a read that is now answered. */
static void
streams_forget_acked(struct source *source)
{
	struct stream_entry *entry;

	while ((entry = TAILQ_FIRST(&source->acked)) != NULL) {
		TAILQ_REMOVE(&source->acked, entry, queue);
		entry_free(source, entry);
	}
}

/* Send one XACK; 0, or -1 (the batch is back on the due queue) if hiredis refused. */
static int
streams_send_xack(struct source *source, struct xack_batch *batch, int argc,
    const char **argv)
{
	if (redisAsyncCommandArgv(redis_link_context(source->link, 1), streams_xack_reply,
	    batch, argc, argv, NULL) != REDIS_OK) {
		streams_batch_requeue(source, batch);
		free(batch);
		return -1;
	}
	TAILQ_INSERT_TAIL(&source->batches, batch, link);
	return 0;
}

/* XACK every due entry: one XACK per key (of up to REDIS_XACK_MAX ids). */
static void
streams_flush(struct source *source)
{
	struct stream_entry *entry, *next;
	struct xack_batch *batch;
	const char **argv;
	size_t k;
	int argc = 0;

	if (!redis_link_ready(source->link) || TAILQ_EMPTY(&source->due))
		return;
	argv = xreallocarray(NULL, 3 + REDIS_XACK_MAX, sizeof *argv);
	for (k = 0; k < source->nkeys; k++) {
		batch = NULL;
		for (entry = TAILQ_FIRST(&source->due); entry != NULL; entry = next) {
			next = TAILQ_NEXT(entry, queue);
			if (entry->key != k)
				continue;
			if (batch == NULL) {
				batch = xcalloc(1, sizeof *batch);
				batch->source = source;
				batch->key = k;
				TAILQ_INIT(&batch->entries);
				argv[0] = "XACK";
				argv[1] = source->keys[k].name;
				argv[2] = source->group;
				argc = 3;
			}
			TAILQ_REMOVE(&source->due, entry, queue);
			entry->state = ENTRY_ACKING;
			TAILQ_INSERT_TAIL(&batch->entries, entry, queue);
			argv[argc++] = entry->id;
			if (argc == 3 + REDIS_XACK_MAX) {
				if (streams_send_xack(source, batch, argc, argv) != 0)
					goto out;
				batch = NULL;
			}
		}
		if (batch != NULL && streams_send_xack(source, batch, argc, argv) != 0)
			goto out;
	}
out:
	free(argv);
}

/* The flush event: XACK what is due. */
static void
streams_flush_fired(evutil_socket_t fd, short what, void *arg)
{
	streams_flush(arg);
}

/*
 * XACK what is due within REDIS_XACK_DELAY_MS. Answers from APNs and FCM come back a
 * few at a time; gathering them spares Redis and the loop a write per handful. An
 * entry not XACKed when the daemon dies is read again and its duplicates are
 * suppressed, as for any crash.
 */
static void
streams_schedule_flush(struct source *source)
{
	if (!source->stopping && !event_pending(source->flush_event, EV_TIMEOUT, NULL))
		redis_timer_add_ms(source->flush_event, REDIS_XACK_DELAY_MS);
}

/* ---- Streams: reading ---- */

/* The answer to XREADGROUP: own pending entries (phase PENDING) or new ones. */
static void
streams_read_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct source *source = privdata;
	const redisReply *stream, *entries;
	redisReply *reply = r;
	struct stream_key *key;
	ssize_t k;
	size_t i, j;
	int pending, done;

	if (ac->data == NULL || reply == NULL)
		return;
	source->reading = 0;
	if (reply->type == REDIS_REPLY_ERROR) {
		redis_link_fail(source->link, LOG_LEVEL_WARN, "redis XREADGROUP failed",
		    reply->str);
		return;
	}
	source->busy++;
	pending = source->phase == PHASE_PENDING;
	for (i = 0; i < source->nkeys; i++)
		source->keys[i].seen = 0;
	for (i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
		stream = reply->element[i];
		if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2 ||
		    !redis_reply_is_string(stream->element[0]) ||
		    (k = streams_key_index(source, stream->element[0])) < 0)
			continue;
		key = &source->keys[k];
		entries = stream->element[1];
		if (entries->type != REDIS_REPLY_ARRAY)
			continue;
		for (j = 0; j < entries->elements; j++) {
			streams_take(source, (size_t)k, entries->element[j], pending);
			if (source->stopping)
				goto out;
		}
		if (!pending)
			continue;
		key->seen = 1;
		/* A short page is the last one; else read on after its last id. */
		if (entries->elements < (size_t)source->batch)
			key->pending_done = 1;
		else {
			stream = entries->element[entries->elements - 1];
			if (stream->type == REDIS_REPLY_ARRAY && stream->elements >= 1 &&
			    redis_reply_is_string(stream->element[0]) &&
			    stream->element[0]->len < REDIS_ID_SIZE)
				memcpy(key->read_cursor, stream->element[0]->str,
				    stream->element[0]->len + 1);
			else
				key->pending_done = 1;
		}
	}
	streams_forget_acked(source);
	if (pending) {
		done = 1;
		for (i = 0; i < source->nkeys; i++) {
			if (!source->keys[i].seen)
				source->keys[i].pending_done = 1;
			if (!source->keys[i].pending_done)
				done = 0;
		}
		if (done) {
			source->phase = PHASE_NEW;
			log_debug("own pending stream entries read", "source", source->name, NULL);
		}
	}
	streams_deliver(source);
out:
	streams_release(source);
}

/*
 * Issue the next XREADGROUP, unless one is in flight, the link is down, or the sink
 * is full (or entries are held for it).
 */
static void
streams_maybe_read(struct source *source)
{
	const char **argv;
	size_t k, argc = 0;
	int phase_new = source->phase == PHASE_NEW;

	if (!redis_link_ready(source->link) || source->reading || source->stopping ||
	    streams_paused(source) || !TAILQ_EMPTY(&source->ready))
		return;
	argv = xreallocarray(NULL, 10 + 2 * source->nkeys, sizeof *argv);
	argv[argc++] = "XREADGROUP";
	argv[argc++] = "GROUP";
	argv[argc++] = source->group;
	argv[argc++] = source->consumer;
	argv[argc++] = "COUNT";
	argv[argc++] = source->batch_arg;
	if (phase_new) {
		argv[argc++] = "BLOCK";
		argv[argc++] = source->block_arg;
	}
	argv[argc++] = "STREAMS";
	for (k = 0; k < source->nkeys; k++)
		if (phase_new || !source->keys[k].pending_done)
			argv[argc++] = source->keys[k].name;
	for (k = 0; k < source->nkeys; k++)
		if (phase_new || !source->keys[k].pending_done)
			argv[argc++] = phase_new ? ">" : source->keys[k].read_cursor;
	if (redisAsyncCommandArgv(redis_link_context(source->link, 0), streams_read_reply,
	    source, (int)argc, argv, NULL) == REDIS_OK) {
		source->reading = 1;
		source->read_blocking = phase_new;
		source->read_sent_ms = clock_monotonic_ms();
	}
	free(argv);
}

/* The answer to XGROUP CREATE. */
static void
streams_group_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct stream_key *key = privdata;
	redisReply *reply = r;
	char error[512];

	if (ac->data == NULL || reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ERROR || strncmp(reply->str, "BUSYGROUP", 9) == 0) {
		if (key->source->groups_pending > 0 && --key->source->groups_pending == 0)
			redis_link_established(key->source->link);
		return;
	}
	snprintf(error, sizeof error, "%s: %s", key->name, reply->str);
	redis_link_fail(key->source->link, LOG_LEVEL_ERROR,
	    "cannot create the redis consumer group", error);
}

/* ---- Streams: taking over entries of stopped consumers ---- */

/* The answer to XAUTOCLAIM: [next cursor, entries, (deleted ids)]. */
static void
streams_claim_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct stream_key *key = privdata;
	struct source *source;
	const redisReply *entries;
	redisReply *reply = r;
	size_t k, i, taken = 0;
	char n[24];

	if (ac->data == NULL || reply == NULL)
		return;
	source = key->source;
	key->claiming = 0;
	if (reply->type == REDIS_REPLY_ERROR) {
		if (strncasecmp(reply->str, "ERR unknown command", 19) == 0) {
			source->claim_supported = 0;
			log_warn("redis has no XAUTOCLAIM (6.2 or later): entries left pending "
			    "by stopped consumers are not taken over", "source", source->name,
			    NULL);
		} else
			log_warn("redis XAUTOCLAIM failed", "source", source->name,
			    "stream", key->name, "error", reply->str, NULL);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
	    !redis_reply_is_string(reply->element[0]) ||
	    reply->element[0]->len >= REDIS_ID_SIZE)
		return;
	memcpy(key->claim_cursor, reply->element[0]->str, reply->element[0]->len + 1);
	entries = reply->element[1];
	k = (size_t)(key - source->keys);
	source->busy++;
	for (i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
		taken += streams_take(source, k, entries->element[i], 1);
		if (source->stopping)
			goto out;
	}
	if (taken > 0) {
		snprintf(n, sizeof n, "%zu", taken);
		log_info("took over stream entries left pending by another consumer",
		    "source", source->name, "stream", key->name, "entries", n, NULL);
	}
	streams_deliver(source);
	/* More to claim: go on while there is room. */
	if (!source->stopping && strcmp(key->claim_cursor, "0-0") != 0 &&
	    redis_link_ready(source->link) && !streams_paused(source) &&
	    TAILQ_EMPTY(&source->ready) && !key->claiming)
		streams_claim(source, key);
out:
	streams_release(source);
}

/* XAUTOCLAIM entries of one key idle for claim_idle, from the key's cursor. */
static void
streams_claim(struct source *source, struct stream_key *key)
{
	const char *argv[8] = { "XAUTOCLAIM", key->name, source->group, source->consumer,
		source->claim_idle_arg, key->claim_cursor, "COUNT", source->batch_arg };

	if (redisAsyncCommandArgv(redis_link_context(source->link, 1), streams_claim_reply,
	    key, 8, argv, NULL) == REDIS_OK)
		key->claiming = 1;
}

/* Every claim_idle/2: look for entries stopped consumers left pending. */
static void
streams_claim_fired(evutil_socket_t fd, short what, void *arg)
{
	struct source *source = arg;
	size_t k;

	if (!redis_link_ready(source->link) || source->groups_pending > 0 ||
	    !source->claim_supported || streams_paused(source) ||
	    !TAILQ_EMPTY(&source->ready))
		return;
	for (k = 0; k < source->nkeys; k++)
		if (!source->keys[k].claiming)
			streams_claim(source, &source->keys[k]);
}

/* ---- Streams: lag and liveness ---- */

/* The lag of this source's group in an XINFO GROUPS reply, or -1. */
static int64_t
streams_group_lag(const struct source *source, const redisReply *reply)
{
	const redisReply *group, *name, *value;
	int64_t lag;
	size_t i, j;

	if (reply->type != REDIS_REPLY_ARRAY)
		return -1;
	for (i = 0; i < reply->elements; i++) {
		group = reply->element[i];
		if (group->type != REDIS_REPLY_ARRAY)
			continue;
		lag = -1;
		name = NULL;
		for (j = 0; j + 1 < group->elements; j += 2) {
			if (!redis_reply_is_string(group->element[j]))
				continue;
			value = group->element[j + 1];
			if (strcmp(group->element[j]->str, "name") == 0)
				name = value;
			else if (strcmp(group->element[j]->str, "lag") == 0 &&
			    value->type == REDIS_REPLY_INTEGER)
				lag = value->integer;
		}
		if (redis_reply_is_string(name) && strcmp(name->str, source->group) == 0)
			return lag;
	}
	return -1;
}

/* The answer to XINFO GROUPS for one key. */
static void
streams_info_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct stream_key *key = privdata;
	struct source *source;
	redisReply *reply = r;
	int64_t lag;

	if (ac->data == NULL || reply == NULL)
		return;
	source = key->source;
	lag = streams_group_lag(source, reply);
	if (lag < 0)
		source->lag_unknown = 1;
	else
		source->lag_sum += lag;
	if (source->info_outstanding > 0 && --source->info_outstanding == 0)
		source->stats.lag = source->lag_unknown ? -1 : source->lag_sum;
}

/* Ask for every key's group lag. */
static void
streams_refresh_info(struct source *source)
{
	const char *argv[3] = { "XINFO", "GROUPS", NULL };
	size_t k;

	if (!redis_link_ready(source->link) || source->info_outstanding > 0)
		return;
	source->lag_sum = 0;
	source->lag_unknown = 0;
	source->info_sent_ms = clock_monotonic_ms();
	for (k = 0; k < source->nkeys; k++) {
		argv[2] = source->keys[k].name;
		if (redisAsyncCommandArgv(redis_link_context(source->link, 1), streams_info_reply,
		    &source->keys[k], 3, argv, NULL) == REDIS_OK)
			source->info_outstanding++;
	}
}

/* Refresh the lag; drop a link whose server stopped answering. */
static void
streams_info_fired(evutil_socket_t fd, short what, void *arg)
{
	struct source *source = arg;
	int64_t now = clock_monotonic_ms(), grace;

	if (!redis_link_ready(source->link))
		return;
	grace = redis_link_connect_timeout_ms(source->link) + REDIS_INFO_INTERVAL_MS;
	if ((source->reading && now - source->read_sent_ms >
	    (source->read_blocking ? source->block_ms : 0) + grace) ||
	    (source->info_outstanding > 0 && now - source->info_sent_ms > grace)) {
		redis_link_fail(source->link, LOG_LEVEL_WARN, "redis stopped answering", NULL);
		return;
	}
	streams_refresh_info(source);
}

/* ---- Streams: the link ---- */

/*
 * The link is up: create the groups and read the consumer's own pending entries on
 * the reader (pipelined: Redis runs them in order), and XACK what is due.
 */
static void
streams_link_up(void *arg)
{
	struct source *source = arg;
	const char *argv[6] = { "XGROUP", "CREATE", NULL, source->group, "$", "MKSTREAM" };
	struct stream_key *key;
	size_t k;

	source->groups_pending = 0;
	for (k = 0; k < source->nkeys; k++) {
		key = &source->keys[k];
		argv[2] = key->name;
		if (redisAsyncCommandArgv(redis_link_context(source->link, 0),
		    streams_group_reply, key, 6, argv, NULL) == REDIS_OK)
			source->groups_pending++;
		snprintf(key->read_cursor, sizeof key->read_cursor, "0");
		key->pending_done = 0;
		snprintf(key->claim_cursor, sizeof key->claim_cursor, "0-0");
		key->claiming = 0;
	}
	source->phase = PHASE_PENDING;
	source->reading = 0;
	streams_maybe_read(source);
	streams_schedule_flush(source);
	streams_refresh_info(source);
}

/*
 * The link is down: forget what is in flight and the entries held for the sink (they
 * are pending in Redis for this consumer and are read again after the reconnect).
 * Entries the sink holds, and acks still to send, are kept.
 */
static void
streams_link_down(void *arg)
{
	struct source *source = arg;
	struct stream_entry *entry;
	size_t k;

	source->reading = 0;
	source->info_outstanding = 0;
	source->stats.lag = -1;
	for (k = 0; k < source->nkeys; k++)
		source->keys[k].claiming = 0;
	while ((entry = TAILQ_FIRST(&source->ready)) != NULL) {
		TAILQ_REMOVE(&source->ready, entry, queue);
		entry_free(source, entry);
	}
	streams_forget_acked(source);
}

/* ---- the ops ---- */

/* Free a source (stopped, with no callback of ours on the stack). */
static void
streams_free(struct source *source)
{
	size_t k;

	redis_link_free(source->link);
	if (source->deliver_event != NULL)
		event_free(source->deliver_event);
	if (source->flush_event != NULL)
		event_free(source->flush_event);
	if (source->claim_timer != NULL)
		event_free(source->claim_timer);
	if (source->info_timer != NULL)
		event_free(source->info_timer);
	for (k = 0; k < source->nkeys; k++) {
		free(source->keys[k].name);
		strmap_free(source->keys[k].entries);
	}
	free(source->keys);
	free(source->group);
	free(source->consumer);
	free(source);
}

/* Split [streams] keys; 0, or -1 with err set. */
static int
streams_parse_keys(struct source *source, const char *keys, char *err, size_t errlen)
{
	const char *p = keys;
	size_t len, k;
	char *name;

	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		len = strcspn(p, " \t");
		name = xstrndup(p, len);
		p += len;
		for (k = 0; k < source->nkeys; k++) {
			if (strcmp(source->keys[k].name, name) == 0) {
				snprintf(err, errlen, "[streams] keys: %s is named twice", name);
				free(name);
				return -1;
			}
		}
		source->keys = xreallocarray(source->keys, source->nkeys + 1,
		    sizeof *source->keys);
		memset(&source->keys[source->nkeys], 0, sizeof *source->keys);
		source->keys[source->nkeys].source = source;
		source->keys[source->nkeys].name = name;
		source->keys[source->nkeys].entries = strmap_new();
		source->nkeys++;
	}
	if (source->nkeys == 0) {
		snprintf(err, errlen, "[streams] keys: names no stream");
		return -1;
	}
	return 0;
}

/* Start reading the streams in the consumer group; NULL with err set on a bad config. */
static struct source *
streams_start(struct event_base *base, const struct config *config,
    const struct source_sink *sink, char *err, size_t errlen)
{
	struct redis_link_options options = {
		.name = source_streams_ops.name, .roles = { "reader", "commands" },
		.count = 2, .select_db = 1,
	};
	struct redis_link_callbacks callbacks = {
		.ready = streams_link_up, .down = streams_link_down,
	};
	struct source *source = xcalloc(1, sizeof *source);
	char hostname[256];

	source->name = source_streams_ops.name;
	source->base = base;
	source->sink = *sink;
	source->stats.lag = -1;
	TAILQ_INIT(&source->ready);
	TAILQ_INIT(&source->handed);
	TAILQ_INIT(&source->due);
	TAILQ_INIT(&source->acked);
	TAILQ_INIT(&source->batches);
	callbacks.arg = source;
	if ((source->link = redis_link_new(base, config, &options, &callbacks, err,
	    errlen)) == NULL || streams_parse_keys(source, config->streams_keys != NULL ?
	    config->streams_keys : "", err, errlen) != 0) {
		streams_free(source);
		return NULL;
	}
	source->group = xstrdup(config->streams_group != NULL ? config->streams_group :
	    "pushrelay");
	if (config->streams_consumer != NULL && *config->streams_consumer != '\0')
		source->consumer = xstrdup(config->streams_consumer);
	else {
		if (gethostname(hostname, sizeof hostname) != 0)
			snprintf(hostname, sizeof hostname, "pushrelay");
		hostname[sizeof hostname - 1] = '\0';
		source->consumer = xasprintf("%s-%ld", hostname, (long)getpid());
	}
	source->batch = config->streams_batch > 0 ? config->streams_batch : 100;
	source->block_ms = config->streams_block_ms > 0 ? config->streams_block_ms : 1000;
	source->claim_idle_ms = config->streams_claim_idle_ms > 0 ?
	    config->streams_claim_idle_ms : 60000;
	snprintf(source->batch_arg, sizeof source->batch_arg, "%d", source->batch);
	snprintf(source->block_arg, sizeof source->block_arg, "%lld",
	    (long long)source->block_ms);
	snprintf(source->claim_idle_arg, sizeof source->claim_idle_arg, "%lld",
	    (long long)source->claim_idle_ms);
	source->claim_supported = 1;
	source->deliver_event = streams_event_new(source, 0, streams_deliver_fired);
	source->flush_event = streams_event_new(source, 0, streams_flush_fired);
	source->claim_timer = streams_event_new(source, EV_PERSIST, streams_claim_fired);
	source->info_timer = streams_event_new(source, EV_PERSIST, streams_info_fired);
	redis_timer_add_ms(source->claim_timer, source->claim_idle_ms / 2 > 0 ?
	    source->claim_idle_ms / 2 : 1);
	redis_timer_add_ms(source->info_timer, REDIS_INFO_INTERVAL_MS);
	redis_link_start(source->link);
	return source;
}

/* The sink has no room: stop reading. */
static void
streams_pause(struct source *source)
{
	source->sink_paused = 1;
}

/* The sink has room again: hand what is held, then read on. */
static void
streams_resume(struct source *source)
{
	source->sink_paused = 0;
	source->full = 0;
	if (!source->stopping)
		event_active(source->deliver_event, EV_TIMEOUT, 0);
}

/*
 * Stop: drop the connections and forget every entry (what was not XACKed stays
 * pending in Redis, for this consumer's next start or another's XAUTOCLAIM). The sink
 * must not ack after this. The source is freed now or, when stopped from inside one
 * of its callbacks, when that callback returns.
 */
static void
streams_stop(struct source *source)
{
	struct stream_entry *entry;
	struct xack_batch *batch;

	if (source == NULL || source->stopping)
		return;
	source->stopping = 1;
	/* XACKs in flight: their replies, run as the contexts are freed, free the batch. */
	while ((batch = TAILQ_FIRST(&source->batches)) != NULL) {
		TAILQ_REMOVE(&source->batches, batch, link);
		batch->source = NULL;
		while ((entry = TAILQ_FIRST(&batch->entries)) != NULL) {
			TAILQ_REMOVE(&batch->entries, entry, queue);
			entry_free(source, entry);
		}
	}
	redis_link_stop(source->link);
	event_del(source->deliver_event);
	event_del(source->flush_event);
	event_del(source->claim_timer);
	event_del(source->info_timer);
	while ((entry = TAILQ_FIRST(&source->handed)) != NULL) {
		TAILQ_REMOVE(&source->handed, entry, queue);
		entry_free(source, entry);
	}
	while ((entry = TAILQ_FIRST(&source->ready)) != NULL) {
		TAILQ_REMOVE(&source->ready, entry, queue);
		entry_free(source, entry);
	}
	while ((entry = TAILQ_FIRST(&source->due)) != NULL) {
		TAILQ_REMOVE(&source->due, entry, queue);
		entry_free(source, entry);
	}
	streams_forget_acked(source);
	log_info("redis source stopped", "source", source->name, NULL);
	if (source->busy == 0)
		streams_free(source);
}

/* The counters, and whether the source is connected and paused now. */
static void
streams_stats(const struct source *source, struct source_stats *stats)
{
	*stats = source->stats;
	stats->reconnects = redis_link_reconnects(source->link);
	stats->connected = redis_link_is_established(source->link);
	stats->paused = streams_paused(source);
}

const struct source_ops source_streams_ops = {
	.name = "redis-streams",
	.start = streams_start,
	.pause = streams_pause,
	.resume = streams_resume,
	.stop = streams_stop,
	.stats = streams_stats,
};
