/* Message ids seen, notified marks written behind, and devices already notified. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "dedupe.h"
#include "model.h"
#include "pair_key.h"
#include "store_marks.h"
#include "store_registry.h"
#include "store_writer.h"
#include "strmap.h"
#include "xmalloc.h"

struct dedupe {
	struct store_writer *writer;
	struct dedupe_options options;
	int64_t started_at;		/* ms: older messages may have notified before */
	struct strmap *seen;		/* "room\0id" -> boxed expiry (ms) */
	struct notified_mark *marks;	/* written behind; their ids point into mark_text */
	size_t mark_count, mark_capacity;
	char *mark_text;		/* the marks' ids, packed: "room\0message\0device\0" */
	size_t mark_text_len, mark_text_size;
};

/* The marks of one flush and an expiry, on their way to the store. */
struct dedupe_job {
	struct notified_mark *marks;
	size_t mark_count;
	char *mark_text;
	int64_t expire_before;
};

/* Deduplication for this process, begun at now. */
struct dedupe *
dedupe_new(struct store_writer *writer, const struct dedupe_options *options, int64_t now)
{
	struct dedupe *d = xcalloc(1, sizeof *d);

	d->writer = writer;
	d->options = *options;
	d->started_at = now;
	d->seen = strmap_new();
	return d;
}

/* A new window or bound: ids already seen keep their expiry. */
void
dedupe_set_options(struct dedupe *d, const struct dedupe_options *options)
{
	d->options = *options;
}

/* Free a map value. */
static void
dedupe_free_value(const char *key, size_t keylen, void *value, void *arg)
{
	free(value);
}

/* Forget everything, written or not. */
void
dedupe_free(struct dedupe *d)
{
	if (d == NULL)
		return;
	strmap_foreach(d->seen, dedupe_free_value, NULL);
	strmap_free(d->seen);
	free(d->marks);
	free(d->mark_text);
	free(d);
}

/* Remember a message id, or tell it was seen. */
int
dedupe_seen(struct dedupe *d, const char *room, const char *message_id, int64_t now)
{
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, room, message_id, &keylen);
	int64_t *expiry;

	if (strmap_get(d->seen, key, keylen) != NULL) {
		if (key != kbuf)
			free(key);
		return DEDUPE_DUPLICATE;
	}
	if (strmap_count(d->seen) < d->options.seen_max) {
		expiry = xmalloc(sizeof *expiry);
		*expiry = now + d->options.window_ms;
		strmap_put(d->seen, key, keylen, expiry);
	}
	if (key != kbuf)
		free(key);
	return DEDUPE_NEW;
}

/* How many ids are remembered. */
size_t
dedupe_seen_count(const struct dedupe *d)
{
	return strmap_count(d->seen);
}

/* Neither handed before nor older than this process. */
int
dedupe_is_fresh(const struct dedupe *d, int redelivered, int64_t ts)
{
	return !redelivered && (ts == 0 || ts >= d->started_at);
}

/* Append an id, and its NUL, to the marks' text. */
static void
dedupe_text_add(struct dedupe *d, const char *id)
{
	size_t len = strlen(id) + 1;

	if (d->mark_text_len + len > d->mark_text_size) {
		while (d->mark_text_len + len > d->mark_text_size)
			d->mark_text_size = d->mark_text_size == 0 ? 16384 :
			    d->mark_text_size * 2;
		d->mark_text = xreallocarray(d->mark_text, 1, d->mark_text_size);
	}
	memcpy(d->mark_text + d->mark_text_len, id, len);
	d->mark_text_len += len;
}

/* Remember that a device was notified of a message, until the next flush. */
void
dedupe_mark(struct dedupe *d, const char *room, const char *message_id,
    const char *device_id, int64_t now)
{
	if (d->mark_count == d->mark_capacity) {
		d->mark_capacity = d->mark_capacity == 0 ? 256 : d->mark_capacity * 2;
		d->marks = xreallocarray(d->marks, d->mark_capacity, sizeof *d->marks);
	}
	memset(&d->marks[d->mark_count], 0, sizeof d->marks[d->mark_count]);
	d->marks[d->mark_count].at = now;
	d->mark_count++;
	dedupe_text_add(d, room);
	dedupe_text_add(d, message_id);
	dedupe_text_add(d, device_id);
}

/* How many marks wait for the next flush. */
size_t
dedupe_marks_pending(const struct dedupe *d)
{
	return d->mark_count;
}

/* Writer thread: the marks, then the expiry. */
static int
dedupe_job_run(struct store *store, void *arg)
{
	struct dedupe_job *job = arg;
	int rc = STORE_OK;

	if (job->mark_count > 0)
		rc = store_notified_add(store, job->marks, job->mark_count);
	if (rc == STORE_OK && job->expire_before > 0)
		rc = store_notified_expire(store, job->expire_before);
	return rc;
}

/* Loop thread: written, or logged by the store (dedupe then errs on the safe side). */
static void
dedupe_job_done(int result, void *arg)
{
	struct dedupe_job *job = arg;

	free(job->marks);
	free(job->mark_text);
	free(job);
}

/* Hand the marks over as two buffers, not a string per id. */
void
dedupe_flush(struct dedupe *d, int64_t expire_before)
{
	struct dedupe_job *job;
	char *next;

	if (d->mark_count == 0 && expire_before == 0)
		return;
	job = xcalloc(1, sizeof *job);
	/* The ids went into the text in the marks' order; it stays put from here on. */
	next = d->mark_text;
	for (size_t i = 0; i < d->mark_count; i++) {
		d->marks[i].room_id = next;
		next += strlen(next) + 1;
		d->marks[i].message_id = next;
		next += strlen(next) + 1;
		d->marks[i].device_id = next;
		next += strlen(next) + 1;
	}
	job->marks = d->marks;
	job->mark_count = d->mark_count;
	job->mark_text = d->mark_text;
	job->expire_before = expire_before;
	d->marks = NULL;
	d->mark_count = d->mark_capacity = 0;
	d->mark_text = NULL;
	d->mark_text_len = d->mark_text_size = 0;
	store_writer_submit(d->writer, dedupe_job_run, dedupe_job_done, job);
}

/* A sweep of the seen ids at one time. */
struct dedupe_sweep {
	struct dedupe *dedupe;
	int64_t now;
};

/* Forget one id if its window has passed. */
static void
dedupe_sweep_seen(const char *key, size_t keylen, void *value, void *arg)
{
	struct dedupe_sweep *sweep = arg;

	if (*(int64_t *)value <= sweep->now)
		free(strmap_remove(sweep->dedupe->seen, key, keylen));
}

/* Forget what is older than the window, in memory and in the store. */
void
dedupe_sweep(struct dedupe *d, int64_t now)
{
	struct dedupe_sweep sweep = { d, now };

	strmap_foreach(d->seen, dedupe_sweep_seen, &sweep);
	dedupe_flush(d, now - d->options.window_ms);
}

/* Move a member's targets out, leaving out (and freeing) those already notified. */
struct device_target **
dedupe_fresh_targets(struct room_member_route *m, const struct room_route *route,
    size_t *count)
{
	struct device_target **out = xcalloc(m->target_count + 1, sizeof *out);

	*count = 0;
	for (size_t i = 0; i < m->target_count; i++) {
		int done = 0;

		for (size_t n = 0; n < route->notified_count && !done; n++)
			done = strcmp(route->notified[n], m->targets[i]->device_id) == 0;
		if (done)
			free(m->targets[i]);
		else
			out[(*count)++] = m->targets[i];
		m->targets[i] = NULL;
	}
	m->target_count = 0;
	return out;
}
