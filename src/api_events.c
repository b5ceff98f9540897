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

/* Parse the events of a batch; malformed ones are listed in skipped (if not NULL). */
static struct room_event *
parse_events(const json_t *array, size_t *count, json_t *skipped, json_t *kept)
{
	struct room_event *events = xcalloc(json_array_size(array) + 1, sizeof *events);
	const json_t *item;
	char err[256];
	size_t i;

	*count = 0;
	json_array_foreach(array, i, item) {
		int rc = room_event_parse(item, NULL, &events[*count], err, sizeof err);
		if (rc != EVENT_OK) {
			if (skipped != NULL)
				json_array_append_new(skipped, json_pack("{s:I, s:s}", "index",
				    (json_int_t)i, "reason", err));
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
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
	api_reply_error(r, 503, "unavailable", NULL, "too many events are waiting; retry later");
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

/* POST /v1/events: {"events": [...]}. */
void
api_events_post(struct api_request *r)
{
	struct model_error merr;
	struct room_event *events;
	json_t *array, *kept, *outbox, *skipped;
	size_t count;
	char *text, skipped_count[24];

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
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
		api_reply_error(r, 503, "unavailable", NULL,
		    "too many events are waiting; retry later");
		return;
	}
	skipped = json_array();
	kept = json_array();
	events = parse_events(array, &count, skipped, kept);
	if (json_array_size(skipped) > 0) {
		snprintf(skipped_count, sizeof skipped_count, "%zu", json_array_size(skipped));
		log_warn("malformed events skipped", "source", "http", "count", skipped_count,
		    "first", json_string_value(json_object_get(json_array_get(skipped, 0),
		    "reason")), NULL);
	}
	/*
	 * The outbox keeps the events that parsed, in their wire form: the body as it
	 * came when all did (it holds nothing else, and no NUL: jansson read it).
	 */
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
