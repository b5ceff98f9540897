/* Pushes: recipients, the durable record, per-device progress and status. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "clock.h"
#include "delivery.h"
#include "log.h"
#include "notification.h"
#include "push.h"
#include "store_ledger.h"
#include "store_registry.h"
#include "store_writer.h"
#include "xmalloc.h"

/* Progress is written to the store this often, in one transaction. */
#define PUSH_FLUSH_MS 100
#define PUSH_EXPIRE_MS (60 * 1000)

/* One device's part of a push in progress. */
struct push_slot {
	struct device_target *target;	/* owned; its delivery borrows its strings */
	int64_t badge;
	enum delivery_state state;
	char *reason;
	int attempts;
	int64_t updated_at;
	int dirty;
};

struct push {
	struct push_ledger *ledger;	/* the one it is in */
	TAILQ_ENTRY(push) entry;
	char id[PUSH_ID_SIZE];
	int64_t created_at;
	int64_t finished_at;
	struct push_slot *slots;
	size_t count;
	size_t outstanding;		/* slots not in a final state */
	int finish_written;
	int finish_in_flight;		/* in the flush being written */
};
TAILQ_HEAD(push_list, push);

/* A slot whose change is not in the store yet. */
struct push_dirty {
	struct push *push;
	size_t index;
};

struct push_ledger {
	struct event_base *base;
	struct store *store;		/* the loop's connection: start-up reads only */
	struct store_writer *writer;	/* writes, off the loop */
	struct delivery_layer *delivery;	/* where the pushes' deliveries go */
	int flush_running;
	int closing;
	int64_t retention_ms;
	struct push_list active;	/* pushes with outstanding deliveries or unwritten changes */
	struct push_dirty *dirty;
	size_t dirty_count, dirty_capacity;
	struct event *flush_timer;
	struct event *expire_timer;
};

const char *
push_strerror(int error)
{
	switch (error) {
	case PUSH_OK: return "ok";
	case PUSH_EFULL: return "the delivery queue is full";
	case PUSH_ESTORE: return "the store failed";
	case PUSH_ENOTFOUND: return "no such push";
	case PUSH_EPAYLOAD: return "the notification cannot be made into a payload";
	case PUSH_EINVALID: return "the notification is not valid";
	}
	return "unknown push error";
}

static int
state_is_final(enum delivery_state state)
{
	return state == DELIVERY_SENT || state == DELIVERY_FAILED ||
	    state == DELIVERY_TOKEN_REMOVED;
}

static int
state_from_name(const char *name, enum delivery_state *out)
{
	for (int s = DELIVERY_QUEUED; s <= DELIVERY_TOKEN_REMOVED; s++) {
		if (strcmp(name, delivery_state_name((enum delivery_state)s)) == 0) {
			*out = (enum delivery_state)s;
			return 0;
		}
	}
	return -1;
}

static void
push_free(struct push *p)
{
	for (size_t i = 0; i < p->count; i++) {
		free(p->slots[i].target);
		free(p->slots[i].reason);
	}
	free(p->slots);
	free(p);
}

static void
mark_dirty(struct push *p, size_t index)
{
	struct push_ledger *ledger = p->ledger;

	if (p->slots[index].dirty)
		return;
	p->slots[index].dirty = 1;
	if (ledger->dirty_count == ledger->dirty_capacity) {
		ledger->dirty_capacity = ledger->dirty_capacity == 0 ? 1024 :
		    ledger->dirty_capacity * 2;
		ledger->dirty = xreallocarray(ledger->dirty, ledger->dirty_capacity,
		    sizeof *ledger->dirty);
	}
	ledger->dirty[ledger->dirty_count].push = p;
	ledger->dirty[ledger->dirty_count].index = index;
	ledger->dirty_count++;
}

/* One batch of progress, copied so that the loop can go on changing slots. */
struct flush_job {
	struct push_ledger *ledger;
	struct push_row_update *updates;
	size_t count;
	struct push_dirty *slots;	/* the slots written, to retry on failure */
	size_t slot_count;
	struct push_finish *finished;
	struct push **finished_pushes;
	size_t finished_count;
};

static int
flush_run(struct store *store, void *arg)
{
	struct flush_job *job = arg;

	return store_push_update(store, job->updates, job->count, job->finished,
	    job->finished_count);
}

static void push_flush(evutil_socket_t fd, short what, void *arg);

/* Order dirty slots by push, then by index, so that neighbours form runs. */
static int
dirty_cmp(const void *a, const void *b)
{
	const struct push_dirty *x = a, *y = b;

	if (x->push != y->push)
		return x->push->created_at != y->push->created_at ?
		    (x->push->created_at < y->push->created_at ? -1 : 1) :
		    strcmp(x->push->id, y->push->id);
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Does a push still have a change to write? */
static int
push_has_dirty(const struct push *p)
{
	for (size_t i = 0; i < p->count; i++) {
		if (p->slots[i].dirty)
			return 1;
	}
	return 0;
}

/* A flush is written (or failed): free what is done, retry what is not. */
static void
flush_done(int result, void *arg)
{
	struct flush_job *job = arg;
	struct push_ledger *ledger = job->ledger;
	struct push *p, *next;

	ledger->flush_running = 0;
	if (result != STORE_OK) {
		/* Logged by the store: write these again, with their newest state. */
		for (size_t i = 0; i < job->slot_count; i++)
			mark_dirty(job->slots[i].push, job->slots[i].index);
		for (size_t i = 0; i < job->finished_count; i++)
			job->finished_pushes[i]->finish_in_flight = 0;
	} else {
		for (size_t i = 0; i < job->finished_count; i++) {
			job->finished_pushes[i]->finish_in_flight = 0;
			job->finished_pushes[i]->finish_written = 1;
		}
	}
	for (size_t i = 0; i < job->count; i++)
		free((char *)job->updates[i].reason);
	free(job->updates);
	free(job->slots);
	free(job->finished);
	free(job->finished_pushes);
	free(job);
	for (p = TAILQ_FIRST(&ledger->active); p != NULL; p = next) {
		next = TAILQ_NEXT(p, entry);
		if (p->outstanding == 0 && p->finish_written && !push_has_dirty(p)) {
			/* Written in full: GET reads it from the store from now on. */
			TAILQ_REMOVE(&ledger->active, p, entry);
			push_free(p);
		}
	}
	if (ledger->closing)
		push_flush(-1, 0, ledger);
}

/* Hand changed rows and finished pushes to the store writer, one batch at a time. */
static void
push_flush(evutil_socket_t fd, short what, void *arg)
{
	struct push_ledger *ledger = arg;
	struct flush_job *job;
	struct push *p;
	size_t capacity = 0;

	if (ledger->flush_running)
		return;
	job = xcalloc(1, sizeof *job);
	job->ledger = ledger;
	TAILQ_FOREACH(p, &ledger->active, entry) {
		if (p->outstanding != 0 || p->finish_written || p->finish_in_flight)
			continue;
		if (job->finished_count == capacity) {
			capacity = capacity == 0 ? 16 : capacity * 2;
			job->finished = xreallocarray(job->finished, capacity,
			    sizeof *job->finished);
			job->finished_pushes = xreallocarray(job->finished_pushes, capacity,
			    sizeof *job->finished_pushes);
		}
		job->finished[job->finished_count].push_id = p->id;
		job->finished[job->finished_count].finished_at = p->finished_at;
		job->finished_pushes[job->finished_count++] = p;
		p->finish_in_flight = 1;
	}
	if (ledger->dirty_count == 0 && job->finished_count == 0) {
		free(job);
		return;
	}
	job->slot_count = ledger->dirty_count;
	job->slots = ledger->dirty;
	job->updates = xcalloc(job->slot_count == 0 ? 1 : job->slot_count,
	    sizeof *job->updates);
	/* Runs of neighbouring rows in the same state become one update each. */
	if (job->slot_count > 1)	/* slots is NULL when only finishes are due */
		qsort(job->slots, job->slot_count, sizeof *job->slots, dirty_cmp);
	for (size_t i = 0; i < job->slot_count; i++) {
		struct push *owner = job->slots[i].push;
		struct push_slot *slot = &owner->slots[job->slots[i].index];
		struct push_row_update *last = job->count > 0 ? &job->updates[job->count - 1] :
		    NULL;

		slot->dirty = 0;
		if (last != NULL && last->push_id == owner->id &&
		    last->index_last + 1 == job->slots[i].index && slot->reason == NULL &&
		    last->reason == NULL && last->attempts == slot->attempts &&
		    strcmp(last->state, delivery_state_name(slot->state)) == 0) {
			last->index_last++;
			if (slot->updated_at > last->updated_at)
				last->updated_at = slot->updated_at;
			continue;
		}
		last = &job->updates[job->count++];
		last->push_id = owner->id;
		last->index = last->index_last = job->slots[i].index;
		last->state = delivery_state_name(slot->state);
		last->reason = slot->reason != NULL ? xstrdup(slot->reason) : NULL;
		last->attempts = slot->attempts;
		last->updated_at = slot->updated_at;
	}
	/* The dirty list moves into the job; a new one starts empty. */
	ledger->dirty = NULL;
	ledger->dirty_count = ledger->dirty_capacity = 0;
	ledger->flush_running = 1;
	store_writer_submit(ledger->writer, flush_run, flush_done, job);
}

/* Expiry, on the writer. */
static int
expire_run(struct store *store, void *arg)
{
	int64_t *before = arg;
	size_t deleted = 0;
	char count[24];
	int rc = store_pushes_expire(store, *before, &deleted);

	if (rc == STORE_OK && deleted > 0) {
		snprintf(count, sizeof count, "%zu", deleted);
		log_debug("expired finished pushes", "count", count, NULL);
	}
	return rc;
}

static void
expire_done(int result, void *arg)
{
	free(arg);
}

/* Delete pushes that finished longer ago than the retention. */
static void
push_expire(evutil_socket_t fd, short what, void *arg)
{
	struct push_ledger *ledger = arg;
	int64_t *before = xmalloc(sizeof *before);

	*before = clock_now_ms() - ledger->retention_ms;
	store_writer_submit(ledger->writer, expire_run, expire_done, before);
}

/* The delivery layer reports a slot's progress. */
static void
push_observe(struct delivery *d, enum delivery_state state, const char *reason, void *arg)
{
	struct push *p = arg;
	struct push_slot *slot = &p->slots[d->observer_index];

	if (state == DELIVERY_ABANDONED)
		return;		/* still queued in the store: the next start resumes it */
	slot->state = state;
	free(slot->reason);
	slot->reason = reason != NULL ? xstrdup(reason) : NULL;
	slot->attempts = d->attempt;
	slot->updated_at = clock_now_ms();
	mark_dirty(p, d->observer_index);
	if (state_is_final(state) && --p->outstanding == 0)
		p->finished_at = slot->updated_at;
}

static void
push_make_id(char out[PUSH_ID_SIZE])
{
	unsigned char raw[16];

	/* arc4random_buf cannot fail, where RAND_bytes can at run time. */
	arc4random_buf(raw, sizeof raw);
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* Order targets by device id, for deduplication. */
static int
target_cmp(const void *a, const void *b)
{
	return strcmp((*(struct device_target *const *)a)->device_id,
	    (*(struct device_target *const *)b)->device_id);
}

/* Resolve recipients to distinct devices; unknown device ids are listed. */
static int
resolve(struct store *store, const struct push_recipients *r, struct target_list *out,
    struct push_accepted *accepted)
{
	size_t kept = 0, before;

	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < r->device_count; i++) {
		before = out->count;
		if (store_targets_add(store, STORE_TARGETS_DEVICE, r->device_ids[i], out) !=
		    STORE_OK)
			goto fail;
		if (out->count == before) {
			accepted->unknown_device_ids = xreallocarray(accepted->unknown_device_ids,
			    accepted->unknown_count + 1, sizeof *accepted->unknown_device_ids);
			accepted->unknown_device_ids[accepted->unknown_count++] =
			    xstrdup(r->device_ids[i]);
		}
	}
	for (size_t i = 0; i < r->client_count; i++) {
		if (store_targets_add(store, STORE_TARGETS_CLIENT, r->client_ids[i], out) !=
		    STORE_OK)
			goto fail;
	}
	if (r->room_id != NULL &&
	    store_targets_add(store, STORE_TARGETS_ROOM, r->room_id, out) != STORE_OK)
		goto fail;
	if (out->count == 0)
		return 0;
	qsort(out->items, out->count, sizeof *out->items, target_cmp);
	for (size_t i = 0; i < out->count; i++) {
		int drop = kept > 0 && strcmp(out->items[kept - 1]->device_id,
		    out->items[i]->device_id) == 0;
		for (size_t x = 0; !drop && x < r->exclude_count; x++)
			drop = strcmp(out->items[i]->client_id, r->exclude_client_ids[x]) == 0;
		if (drop)
			free(out->items[i]);
		else
			out->items[kept++] = out->items[i];
	}
	out->count = kept;
	return 0;
fail:
	model_target_list_free(out);
	return -1;
}

/* A push in memory, its slots taken from the devices. */
static struct push *
push_new(struct push_ledger *ledger, const char *id, int64_t created_at, size_t count)
{
	struct push *p = xcalloc(1, sizeof *p);

	p->ledger = ledger;
	snprintf(p->id, sizeof p->id, "%s", id);
	p->created_at = created_at;
	p->count = count;
	p->slots = xcalloc(count == 0 ? 1 : count, sizeof *p->slots);
	return p;
}

/* A push being accepted: recipients in, devices and the record out. */
struct accept_job {
	struct push_ledger *ledger;
	/* In: owned copies, the loop does not touch them while the writer works. */
	struct push_recipients recipients;
	char **strings;			/* every id above, to free */
	size_t nstrings;
	char *content_text;		/* the notification as JSON */
	struct push_content *content;	/* built on the loop, read-only here */
	size_t room;			/* free places in the delivery queue */
	int64_t now;
	push_accept_cb *cb;
	void *arg;
	/* Out. */
	int error;
	struct push_accepted accepted;
	struct target_list devices;
	struct push *push;		/* once resolved: the push in memory */
};

/* Copy a list of ids into the job. */
static const char *const *
job_copy_ids(struct accept_job *job, const char *const *ids, size_t count)
{
	char **copy;

	if (count == 0)
		return NULL;
	copy = xcalloc(count, sizeof *copy);
	job->strings = xreallocarray(job->strings, job->nstrings + count, sizeof *job->strings);
	for (size_t i = 0; i < count; i++) {
		copy[i] = xstrdup(ids[i]);
		job->strings[job->nstrings++] = copy[i];
	}
	return (const char *const *)copy;
}

static void
accept_job_free(struct accept_job *job)
{
	for (size_t i = 0; i < job->nstrings; i++)
		free(job->strings[i]);
	free(job->strings);
	free((void *)job->recipients.client_ids);
	free((void *)job->recipients.device_ids);
	free((void *)job->recipients.exclude_client_ids);
	free((char *)job->recipients.room_id);
	free(job->content_text);
	delivery_content_unref(job->content);
	for (size_t i = 0; i < job->accepted.unknown_count; i++)
		free(job->accepted.unknown_device_ids[i]);
	free(job->accepted.unknown_device_ids);
	model_target_list_free(&job->devices);
	free(job);
}

/* On the writer: resolve the recipients and check that they can be served. */
static int
accept_resolve(struct store *store, void *arg)
{
	struct accept_job *job = arg;

	if (resolve(store, &job->recipients, &job->devices, &job->accepted) != 0)
		return job->error = PUSH_ESTORE;
	if (job->devices.count > job->room)
		return job->error = PUSH_EFULL;
	for (size_t i = 0; i < job->devices.count; i++) {
		int apns = job->devices.items[i]->platform == DEVICE_PLATFORM_APNS;
		int perror = apns ? job->content->apns_error : job->content->fcm_error;
		if (perror != PAYLOAD_OK) {
			snprintf(job->accepted.payload_error, sizeof job->accepted.payload_error,
			    "%s for %s", payload_strerror(perror), apns ? "APNs" : "FCM");
			return job->error = PUSH_EPAYLOAD;
		}
	}
	job->accepted.devices = job->devices.count;
	return job->error = PUSH_OK;
}

/* On the writer: store the push with a row per device, in one transaction. */
static int
accept_store(struct store *store, void *arg)
{
	struct accept_job *job = arg;
	struct push_record record;
	const char *queued = delivery_state_name(DELIVERY_QUEUED);
	int rc;

	memset(&record, 0, sizeof record);
	record.push_id = job->accepted.push_id;
	record.created_at = job->now;
	record.content = job->content_text;
	record.rows = xcalloc(job->push->count == 0 ? 1 : job->push->count,
	    sizeof *record.rows);
	record.count = job->push->count;
	/* The loop never changes these fields of a slot: reading them here is safe. */
	for (size_t i = 0; i < job->push->count; i++) {
		const struct push_slot *slot = &job->push->slots[i];
		record.rows[i].device_id = (char *)slot->target->device_id;
		record.rows[i].client_id = (char *)slot->target->client_id;
		record.rows[i].platform = slot->target->platform;
		record.rows[i].app_id = (char *)slot->target->app_id;
		record.rows[i].badge = slot->badge;
		record.rows[i].state = (char *)queued;
		record.rows[i].updated_at = job->now;
	}
	rc = store_push_insert(store, &record);
	free(record.rows);
	return job->error = rc == STORE_OK ? PUSH_OK : PUSH_ESTORE;
}

/* On the loop: the push is stored; tell the caller. */
static void
accept_stored(int result, void *arg)
{
	struct accept_job *job = arg;

	/* The group commit failed after the job did its part. */
	if (result != STORE_OK && job->error == PUSH_OK)
		job->error = PUSH_ESTORE;
	job->cb(job->error, &job->accepted, job->arg);
	accept_job_free(job);
}

/*
 * On the loop: the devices are known. Deliveries start now, while the writer stores
 * the push: the answer waits for the commit, and any progress is written after it
 * (the writer runs jobs in order). A crash before the commit means no answer, and
 * the client's retry may repeat a notification: at least once, never lost once
 * acknowledged.
 */
static void
accept_resolved(int result, void *arg)
{
	struct accept_job *job = arg;
	struct push_ledger *ledger = job->ledger;
	struct push *p;

	/* The batch the read ran in failed: it may have seen writes that were undone. */
	if (result != STORE_OK && job->error == PUSH_OK)
		job->error = PUSH_ESTORE;
	if (job->error != PUSH_OK) {
		job->cb(job->error, &job->accepted, job->arg);
		accept_job_free(job);
		return;
	}
	p = push_new(ledger, job->accepted.push_id, job->now, job->devices.count);
	p->outstanding = job->devices.count;
	if (p->outstanding == 0)
		p->finished_at = job->now;	/* nothing to do: finished once written */
	TAILQ_INSERT_TAIL(&ledger->active, p, entry);
	job->push = p;
	/* The slots take the targets over. */
	for (size_t i = 0; i < job->devices.count; i++) {
		struct push_slot *slot = &p->slots[i];

		slot->target = job->devices.items[i];
		slot->badge = -1;
		slot->state = DELIVERY_QUEUED;
		slot->updated_at = job->now;
	}
	job->devices.count = 0;
	store_writer_submit(ledger->writer, accept_store, accept_stored, job);
	for (size_t i = 0; i < p->count; i++) {
		struct delivery *d = delivery_new(ledger->delivery, p->slots[i].target,
		    job->content, job->content->notification.badge, job->now);
		delivery_submit(d, push_observe, p, i);
	}
}

int
push_accept(struct push_ledger *ledger, const struct push_recipients *recipients,
    const json_t *notification_json, push_accept_cb *cb, void *arg)
{
	struct notification notification;
	struct model_error merr;
	struct accept_job *job;
	size_t room = delivery_room(ledger->delivery);
	const char *room_id;

	if (room == 0)
		return PUSH_EFULL;
	/* Validated by the caller already; if not, this push is refused, nothing more. */
	if (notification_from_json(notification_json, "notification.", &notification,
	    &merr) != 0) {
		log_error("push refused: the notification was not validated", "error",
		    merr.message, NULL);
		return PUSH_EINVALID;
	}
	job = xcalloc(1, sizeof *job);
	job->ledger = ledger;
	job->content = delivery_content_new(&notification, 0);
	/* Both payloads now, on the loop: the writer reads their errors. */
	payload_content_prepare(job->content, DEVICE_PLATFORM_APNS);
	payload_content_prepare(job->content, DEVICE_PLATFORM_FCM);
	job->content_text = json_dumps(notification_json, JSON_COMPACT);
	if (job->content_text == NULL)
		fatalx("out of memory serializing a notification");
	job->recipients.client_ids = job_copy_ids(job, recipients->client_ids,
	    recipients->client_count);
	job->recipients.client_count = recipients->client_count;
	job->recipients.device_ids = job_copy_ids(job, recipients->device_ids,
	    recipients->device_count);
	job->recipients.device_count = recipients->device_count;
	job->recipients.exclude_client_ids = job_copy_ids(job, recipients->exclude_client_ids,
	    recipients->exclude_count);
	job->recipients.exclude_count = recipients->exclude_count;
	room_id = recipients->room_id;
	job->recipients.room_id = room_id != NULL ? xstrdup(room_id) : NULL;
	job->room = room;
	job->now = clock_now_ms();
	job->cb = cb;
	job->arg = arg;
	push_make_id(job->accepted.push_id);
	store_writer_submit(ledger->writer, accept_resolve, accept_resolved, job);
	return PUSH_OK;
}

/* Resume one unfinished push from its record (start-up: the loop's connection). */
static void
push_resume(struct push_ledger *ledger, struct push_record *record)
{
	struct notification notification;
	struct push_content *content = NULL;
	struct model_error merr;
	struct push *p = push_new(ledger, record->push_id, record->created_at, record->count);
	json_t *json = json_loads(record->content, 0, NULL);
	size_t resumed = 0;
	char count[24];

	if (json == NULL || notification_from_json(json, "notification.", &notification,
	    &merr) != 0) {
		log_error("cannot resume push: its stored notification is invalid", "push_id",
		    record->push_id, NULL);
		notification_init(&notification);
	} else
		content = delivery_content_new(&notification, record->badge_per_recipient);
	json_decref(json);
	TAILQ_INSERT_TAIL(&ledger->active, p, entry);
	for (size_t i = 0; i < record->count; i++) {
		struct push_row *row = &record->rows[i];
		struct push_slot *slot = &p->slots[i];
		struct device device;

		slot->badge = row->badge;
		slot->attempts = row->attempts;
		slot->updated_at = row->updated_at;
		slot->reason = row->reason != NULL ? xstrdup(row->reason) : NULL;
		if (state_from_name(row->state, &slot->state) != 0)
			slot->state = DELIVERY_QUEUED;
		/* As the row says; a live device brings its current token below. */
		slot->target = model_target_new(row->device_id, row->client_id, "", row->app_id,
		    row->platform, DEVICE_ENVIRONMENT_PRODUCTION, 0, 0);
		if (state_is_final(slot->state))
			continue;
		p->outstanding++;
		if (content == NULL || store_device_get(ledger->store, row->device_id, &device) !=
		    STORE_OK) {
			/* Count it outstanding, then report it failed like any other. */
			slot->state = DELIVERY_FAILED;
			free(slot->reason);
			slot->reason = xstrdup(content == NULL ? "stored notification is invalid" :
			    "device no longer registered");
			slot->updated_at = clock_now_ms();
			mark_dirty(p, i);
			if (--p->outstanding == 0)
				p->finished_at = slot->updated_at;
			continue;
		}
		{
			struct delivery *d;

			free(slot->target);
			slot->target = model_target_new(device.device_id, device.client_id,
			    device.token, device.app_id, device.platform, device.environment,
			    device.updated_at, device.last_success_at);
			d = delivery_new(ledger->delivery, slot->target, content, row->badge,
			    record->created_at);
			d->attempt = row->attempts;
			delivery_submit(d, push_observe, p, i);
			resumed++;
		}
		model_device_free(&device);
	}
	if (p->outstanding == 0 && p->finished_at == 0)
		p->finished_at = clock_now_ms();
	delivery_content_unref(content);
	snprintf(count, sizeof count, "%zu", resumed);
	log_info("resumed push", "push_id", record->push_id, "deliveries", count, NULL);
}

struct push_ledger *
push_ledger_new(struct event_base *base, struct store *store, struct store_writer *writer,
    struct delivery_layer *delivery, int64_t retention_ms)
{
	struct timeval flush = { 0, PUSH_FLUSH_MS * 1000 }, expire = { PUSH_EXPIRE_MS / 1000, 0 };
	struct push_ledger *ledger = xcalloc(1, sizeof *ledger);
	struct push_record *records;
	size_t count;

	ledger->base = base;
	ledger->store = store;
	ledger->writer = writer;
	ledger->delivery = delivery;
	ledger->retention_ms = retention_ms;
	TAILQ_INIT(&ledger->active);
	ledger->flush_timer = event_new(base, -1, EV_PERSIST, push_flush, ledger);
	ledger->expire_timer = event_new(base, -1, EV_PERSIST, push_expire, ledger);
	if (ledger->flush_timer == NULL || ledger->expire_timer == NULL)
		fatalx("cannot create push timers");
	event_add(ledger->flush_timer, &flush);
	event_add(ledger->expire_timer, &expire);
	if (store_pushes_unfinished(store, &records, &count) != STORE_OK) {
		log_error("cannot read unfinished pushes; they will resume at the next start",
		    NULL);
		return ledger;
	}
	for (size_t i = 0; i < count; i++) {
		push_resume(ledger, &records[i]);
		store_push_record_free(&records[i]);
	}
	free(records);
	push_expire(-1, 0, ledger);
	return ledger;
}

void
push_set_retention(struct push_ledger *ledger, int64_t retention_ms)
{
	ledger->retention_ms = retention_ms;
}

void
push_ledger_shutdown(struct push_ledger *ledger)
{
	ledger->closing = 1;
	push_flush(-1, 0, ledger);
}

void
push_ledger_free(struct push_ledger *ledger)
{
	struct push *p;

	if (ledger == NULL)
		return;
	while ((p = TAILQ_FIRST(&ledger->active)) != NULL) {
		TAILQ_REMOVE(&ledger->active, p, entry);
		push_free(p);
	}
	free(ledger->dirty);
	event_free(ledger->flush_timer);
	event_free(ledger->expire_timer);
	free(ledger);
}

/* The status answer from one row's fields. */
static json_t *
slot_json(const char *device_id, const char *client_id, enum device_platform platform,
    const char *app_id, const char *state, const char *reason, int attempts,
    int64_t updated_at)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:i, s:o}", "device_id", device_id,
	    "client_id", client_id, "platform", model_platform_name(platform), "app_id", app_id,
	    "state", state, "reason", model_text_json(reason),
	    "attempts", attempts, "updated_at", model_time_json(updated_at));
}

/* Count states into the "counts" object. */
static void
count_state(json_t *counts, const char *state)
{
	json_t *v = json_object_get(counts, state);

	json_object_set_new(counts, state, json_integer(json_integer_value(v) + 1));
}

static json_t *
counts_new(void)
{
	json_t *counts = json_object();

	for (int s = DELIVERY_QUEUED; s <= DELIVERY_TOKEN_REMOVED; s++)
		json_object_set_new(counts, delivery_state_name((enum delivery_state)s),
		    json_integer(0));
	return counts;
}

/* The answer from a push in progress, in memory. */
static json_t *
status_from_push(const struct push *p)
{
	json_t *devices = json_array(), *counts = counts_new();

	for (size_t i = 0; i < p->count; i++) {
		const struct push_slot *s = &p->slots[i];
		const char *state = delivery_state_name(s->state);
		json_array_append_new(devices, slot_json(s->target->device_id,
		    s->target->client_id, s->target->platform, s->target->app_id, state,
		    s->reason, s->attempts, s->updated_at));
		count_state(counts, state);
	}
	return json_pack("{s:s, s:o, s:o, s:o, s:o}", "push_id", p->id, "created_at",
	    model_time_json(p->created_at), "finished_at",
	    model_time_json(p->outstanding == 0 ? p->finished_at : 0), "counts", counts,
	    "devices", devices);
}

/* The answer from a push's record in the store. */
static json_t *
status_from_record(const struct push_record *record)
{
	json_t *devices = json_array(), *counts = counts_new();

	for (size_t i = 0; i < record->count; i++) {
		const struct push_row *row = &record->rows[i];
		json_array_append_new(devices, slot_json(row->device_id, row->client_id,
		    row->platform, row->app_id, row->state, row->reason, row->attempts,
		    row->updated_at));
		count_state(counts, row->state);
	}
	return json_pack("{s:s, s:o, s:o, s:o, s:o}", "push_id", record->push_id,
	    "created_at", model_time_json(record->created_at), "finished_at",
	    model_time_json(record->finished_at), "counts", counts, "devices", devices);
}

/* A status read from the store. */
struct status_job {
	char *push_id;
	struct push_record record;
	push_status_cb *cb;
	void *arg;
};

/* On a store thread: read the push. */
static int
status_read(struct store *store, void *arg)
{
	struct status_job *job = arg;

	return store_push_get(store, job->push_id, &job->record);
}

/* On the loop: answer from the record. */
static void
status_read_done(int result, void *arg)
{
	struct status_job *job = arg;

	if (result == STORE_OK)
		job->cb(status_from_record(&job->record), PUSH_OK, job->arg);
	else
		job->cb(NULL, result == STORE_ENOTFOUND ? PUSH_ENOTFOUND : PUSH_ESTORE,
		    job->arg);
	store_push_record_free(&job->record);
	free(job->push_id);
	free(job);
}

void
push_status_get(struct push_ledger *ledger, const char *push_id, struct store_writer *reader,
    push_status_cb *cb, void *arg)
{
	struct status_job *job;
	struct push *p;

	TAILQ_FOREACH(p, &ledger->active, entry) {
		if (strcmp(p->id, push_id) == 0) {
			cb(status_from_push(p), PUSH_OK, arg);
			return;
		}
	}
	job = xcalloc(1, sizeof *job);
	job->push_id = xstrdup(push_id);
	job->cb = cb;
	job->arg = arg;
	store_writer_submit(reader, status_read, status_read_done, job);
}
