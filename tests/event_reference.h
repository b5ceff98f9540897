/*
 * The reference the fast batch reader is held to, shared by tests/unit/test_event.c
 * and tests/fuzz/fuzz_events_batch.c: a POST /v1/events body read the generic way,
 * with jansson, the checks of the body, then room_event_parse() on each element.
 */
#ifndef PUSHRELAY_EVENT_REFERENCE_H
#define PUSHRELAY_EVENT_REFERENCE_H

#include <string.h>

#include <jansson.h>

#include "event.h"
#include "xmalloc.h"

/*
 * 0 with the outcome in out, as the fast path gives it, or -1 where the generic path
 * answers an error for the whole body.
 */
static int __attribute__((unused))
event_reference_batch(const char *text, size_t len, size_t max_events,
    struct room_event_batch *out)
{
	json_t *body = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL), *array, *item;
	char err[EVENT_REASON_MAX];
	size_t i, n;

	memset(out, 0, sizeof *out);
	/* An object whose only field is events (model_check_fields), a non-empty array. */
	array = json_object_get(body, "events");
	n = json_array_size(array);
	if (!json_is_object(body) || json_object_size(body) != 1 || !json_is_array(array) ||
	    n == 0 || n > max_events) {
		json_decref(body);
		return -1;
	}
	out->events = xcalloc(n, sizeof *out->events);
	out->skipped = xcalloc(n, sizeof *out->skipped);
	json_array_foreach(array, i, item) {
		if (room_event_parse(item, NULL, &out->events[out->count], err, sizeof err) ==
		    EVENT_OK) {
			out->count++;
			continue;
		}
		out->skipped[out->skipped_count].index = i;
		out->skipped[out->skipped_count].reason = xstrdup(err);
		out->skipped_count++;
	}
	json_decref(body);
	return 0;
}

#endif
