/* POST /v1/events: room events in batches, durably accepted before the answer. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "api.h"
#include "log.h"
#include "source_http.h"
#include "xmalloc.h"

static const char *const events_fields[] = { "events", NULL };

/* What a batch's answer reports. */
struct events_answer {
	struct api_deferred *deferred;
	size_t accepted;
	json_t *skipped;		/* [{"index", "reason"}] */
};

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

int
api_events_replay(const char *body, struct room_event **events, size_t *count)
{
	json_t *o = json_loads(body, 0, NULL), *array;

	*events = NULL;
	*count = 0;
	if (o != NULL && json_is_object(json_object_get(o, "ably"))) {
		int rc = api_ably_replay(json_object_get(o, "ably"), events, count);
		json_decref(o);
		return rc;
	}
	if (o == NULL || !json_is_array(array = json_object_get(o, "events"))) {
		json_decref(o);
		return -1;
	}
	*events = parse_events(array, count, NULL, NULL);
	json_decref(o);
	return 0;
}

/* Answer 503: the source holds too many events already. */
static void
reply_busy(struct api_request *r)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
	api_reply_error(r, 503, "unavailable", NULL, "too many events are waiting; retry later");
}

/* The batch is committed (or not): answer, if the client is still there. */
static void
events_committed(int result, void *arg);

void
api_events_accept(struct api_request *r, struct source *source, struct room_event *events,
    size_t count, const char *outbox_body, json_t *skipped)
{
	struct events_answer *a = xcalloc(1, sizeof *a);

	a->accepted = count;
	a->skipped = skipped;
	a->deferred = api_defer(r);
	if (source_http_submit(source, events, count, outbox_body, events_committed, a) ==
	    SOURCE_HTTP_ACCEPTED)
		return;
	api_deferred_free(a->deferred);
	json_decref(a->skipped);
	free(a);
	reply_busy(r);
}

static void
events_committed(int result, void *arg)
{
	struct events_answer *a = arg;
	struct api_request *r = api_deferred_request(a->deferred);

	if (r != NULL) {
		if (result == SOURCE_HTTP_ACCEPTED)
			api_reply_json(r, 202, json_pack("{s:I, s:O}", "accepted",
			    (json_int_t)a->accepted, "skipped", a->skipped));
		else
			api_reply_error(r, 503, "unavailable", NULL,
			    "the store failed; nothing was accepted, retry later");
	}
	api_deferred_free(a->deferred);
	json_decref(a->skipped);
	free(a);
}

/*
 * Log what a parsed batch skipped and hand it over (events, skipped and kept taken
 * over). The outbox keeps the events that parsed in their wire form: the body as it
 * came when nothing was skipped (it holds nothing else, and no NUL: it is valid
 * JSON), else kept, their jansson values, re-serialized.
 */
static void
accept_events(struct api_request *r, struct room_event *events, size_t count,
    json_t *skipped, json_t *kept)
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
		text = xstrndup(r->body_text, r->body_len);
	} else {
		outbox = json_pack("{s:o}", "events", kept);
		text = json_dumps(outbox, JSON_COMPACT);
		json_decref(outbox);
		if (text == NULL)
			fatalx("out of memory serializing events");
	}
	api_events_accept(r, r->events, events, count, text, skipped);
	free(text);
}

/*
 * The events of a batch read by the fast path that were not skipped, as jansson
 * values for the outbox: the body is parsed again, which only a batch with skipped
 * events needs. NULL if jansson does not read it as the fast path did (which the
 * tests say cannot happen).
 */
static json_t *
kept_events(struct api_request *r, const struct room_event_batch *batch)
{
	json_t *body, *item, *kept;
	json_error_t jerr;
	size_t i, next = 0;

	body = json_loadb(r->body_text, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_array(json_object_get(body, "events"))) {
		json_decref(body);
		return NULL;
	}
	if ((kept = json_array()) == NULL)
		fatalx("out of memory reading a batch again");
	json_array_foreach(json_object_get(body, "events"), i, item) {
		if (next < batch->skipped_count && batch->skipped[next].index == i) {
			next++;
			continue;
		}
		json_array_append(kept, item);
	}
	json_decref(body);
	return kept;
}

static void post_parsed_events(struct api_request *);

/* POST /v1/events for a batch the fast path took: its body passes every check. */
static void
post_scanned_events(struct api_request *r, struct room_event_batch *batch)
{
	json_t *skipped, *kept = NULL;
	struct room_event *events;
	size_t count;

	if (!source_http_ready(r->events)) {
		room_event_batch_free(batch);
		reply_busy(r);
		return;
	}
	if (batch->skipped_count > 0 && (kept = kept_events(r, batch)) == NULL) {
		log_warn("event batch read two ways differently", "source", "http", NULL);
		room_event_batch_free(batch);
		if (api_parse_body(r) == 0)
			post_parsed_events(r);
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
	accept_events(r, events, count, skipped, kept);
}

/* POST /v1/events for a batch parsed by jansson, with every check and its error. */
static void
post_parsed_events(struct api_request *r)
{
	struct model_error merr;
	struct room_event *events;
	json_t *array, *kept, *skipped;
	size_t count;

	if (r->events == NULL) {
		api_reply_error(r, 404, "not_found", NULL,
		    "POST /v1/events is off ([events] enabled = no)");
		return;
	}
	if (model_check_fields(r->body, events_fields, NULL, &merr) != 0) {
		api_reply_model_error(r, &merr);
		return;
	}
	array = json_object_get(r->body, "events");
	if (array == NULL) {
		api_reply_error(r, 400, "missing_field", "events", "events: is required");
		return;
	}
	if (!json_is_array(array) || json_array_size(array) == 0) {
		api_reply_error(r, 400, "invalid_field", "events",
		    "events: must be a non-empty array of event objects");
		return;
	}
	if (json_array_size(array) > (size_t)r->events_max_batch) {
		api_reply_error(r, 413, "payload_too_large", "events",
		    "events: at most %d events per request", r->events_max_batch);
		return;
	}
	if (!source_http_ready(r->events)) {
		reply_busy(r);
		return;
	}
	skipped = json_array();
	kept = json_array();
	events = parse_events(array, &count, skipped, kept);
	accept_events(r, events, count, skipped, kept);
}

/*
 * POST /v1/events: {"events": [...]}. The route leaves the body unparsed: a batch
 * of flat events, the common one, is read without a jansson tree. Everything
 * else, every error included, goes the way of jansson, whose errors come first.
 */
void
api_events_post(struct api_request *r)
{
	struct room_event_batch batch;

	if (r->events != NULL && room_event_parse_batch_fast(r->body_text, r->body_len,
	    (size_t)r->events_max_batch, &batch) == EVENT_OK) {
		post_scanned_events(r, &batch);
		return;
	}
	if (api_parse_body(r) != 0)
		return;
	post_parsed_events(r);
}
