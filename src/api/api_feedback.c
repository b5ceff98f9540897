/* Feedback events over the API: GET /v1/feedback, at once or as a long-poll. */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api.h"
#include "feedback.h"
#include "log.h"
#include "xmalloc.h"

/* The longest a client may ask to wait, in seconds. */
#define API_FEEDBACK_WAIT_MAX 60

/* A long-poll waiting for an event after its seq, or for its time to run out. */
struct api_feedback_poll {
	struct feedback *feedback;
	struct api_deferred *deferred;
	struct feedback_watch *watch;	/* NULL once fired */
	struct event *timer;
	uint64_t after;
};

/* {"events":[...],"next":SEQ}: the events after a seq, and where the next look starts. */
static json_t *
api_feedback_answer(const struct feedback *feedback, uint64_t after)
{
	json_t *events = feedback_recent(feedback, after);
	uint64_t last = feedback_recent_last(feedback), next;

	if (json_array_size(events) > 0)
		next = last;
	else
		next = after < last ? after : last;
	return json_pack("{s:o, s:I}", "events", events, "next", (json_int_t)next);
}

/* Answer a long-poll (if its client is still there) and forget it. */
static void
api_feedback_poll_end(struct api_feedback_poll *poll)
{
	struct api_request *r = api_deferred_request(poll->deferred);

	if (poll->watch != NULL)
		feedback_unwatch(poll->watch);
	if (r != NULL)
		api_reply_json(r, 200, api_feedback_answer(poll->feedback, poll->after));
	api_deferred_free(poll->deferred);
	event_free(poll->timer);
	free(poll);
}

/* The wait ran out. */
static void
api_feedback_poll_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	api_feedback_poll_end(arg);
}

/* An event came, or the daemon is stopping: answer now. */
static void
api_feedback_poll_woken(int stopping, void *arg)
{
	struct api_feedback_poll *poll = arg;

	(void)stopping;
	poll->watch = NULL;		/* a watch fires once, then is gone */
	api_feedback_poll_end(poll);
}

/* Parse a decimal query parameter within [0, max]; 0 or -1 (answered). */
static int
api_feedback_number(struct api_request *r, const char *name, const char *value,
    uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (value == NULL)
		return 0;
	errno = 0;
	v = strtoull(value, &end, 10);
	if (*value < '0' || *value > '9' || *end != '\0' || errno != 0 || v > max) {
		api_reply_error(r, 400, "invalid_field", name,
		    "%s: must be an integer between 0 and %" PRIu64, name, max);
		return -1;
	}
	*out = v;
	return 0;
}

/*
 * GET /v1/feedback?after=SEQ&wait=SECONDS: the recent token-removed events after SEQ
 * (default 0). With wait, an answer without events is held until one comes or the
 * wait (at most 60 s) runs out.
 */
void
api_feedback_get(struct api_request *r)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
	const char *query_string = evhttp_uri_get_query(uri);
	struct api_feedback_poll *poll;
	struct evkeyvalq query;
	struct evkeyval *param;
	struct event_base *base;
	struct timeval tv;
	uint64_t after = 0, wait = 0;

	TAILQ_INIT(&query);
	if (query_string != NULL && evhttp_parse_query_str(query_string, &query) != 0) {
		api_reply_error(r, 400, "invalid_field", NULL, "malformed query string");
		goto done;
	}
	TAILQ_FOREACH(param, &query, next) {
		if (strcmp(param->key, "after") != 0 && strcmp(param->key, "wait") != 0) {
			api_reply_error(r, 400, "invalid_field", param->key,
			    "%s: unknown query parameter", param->key);
			goto done;
		}
	}
	if (api_feedback_number(r, "after", evhttp_find_header(&query, "after"), INT64_MAX,
	    &after) != 0 || api_feedback_number(r, "wait", evhttp_find_header(&query, "wait"),
	    API_FEEDBACK_WAIT_MAX, &wait) != 0)
		goto done;
	if (r->feedback == NULL) {
		api_reply_error(r, 503, "unavailable", NULL, "feedback is not available");
		goto done;
	}

	if (after > feedback_recent_last(r->feedback))
		after = 0;		/* the daemon restarted: everything kept is new */
	if (wait == 0 || feedback_recent_last(r->feedback) > after) {
		api_reply_json(r, 200, api_feedback_answer(r->feedback, after));
		goto done;
	}

	poll = xcalloc(1, sizeof *poll);
	poll->feedback = r->feedback;
	poll->after = after;
	if ((poll->watch = feedback_watch(r->feedback, api_feedback_poll_woken, poll)) == NULL) {
		/* The daemon is stopping: no waiting. */
		free(poll);
		api_reply_json(r, 200, api_feedback_answer(r->feedback, after));
		goto done;
	}
	base = evhttp_connection_get_base(evhttp_request_get_connection(r->req));
	if ((poll->timer = evtimer_new(base, api_feedback_poll_timeout, poll)) == NULL)
		fatalx("evtimer_new: out of memory");
	poll->deferred = api_defer(r);
	tv.tv_sec = (time_t)wait;
	tv.tv_usec = 0;
	evtimer_add(poll->timer, &tv);
done:
	evhttp_clear_headers(&query);
}
