/*
 * POST /v1/events: room events in batches. The HTTP source (source_http.h) parses
 * them and keeps them durably; this handler only hands the body over and answers
 * what the source says, which api_ably.c does too.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "api.h"
#include "source_http.h"

/* Answer what the HTTP source said about a batch. */
static void
events_reply(struct api_request *r, const struct source_http_answer *answer)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);

	switch (answer->result) {
	case SOURCE_HTTP_ACCEPTED:
		api_reply_json(r, 202, json_pack("{s:I, s:O}", "accepted",
		    (json_int_t)answer->accepted, "skipped", answer->skipped));
		break;
	case SOURCE_HTTP_EBUSY:
	case SOURCE_HTTP_ENOMEM:
		evhttp_add_header(headers, "Retry-After", "1");
		api_reply_error(r, 503, "unavailable", NULL, "%s", answer->message);
		break;
	case SOURCE_HTTP_ESTORE:
		api_reply_error(r, 503, "unavailable", NULL, "%s", answer->message);
		break;
	case SOURCE_HTTP_EJSON:
		api_reply_error(r, 400, "invalid_json", answer->field, "%s", answer->message);
		break;
	case SOURCE_HTTP_EMISSING:
		api_reply_error(r, 400, "missing_field", answer->field, "%s", answer->message);
		break;
	case SOURCE_HTTP_EINVALID:
		api_reply_error(r, 400, "invalid_field", answer->field, "%s", answer->message);
		break;
	case SOURCE_HTTP_ETOOLARGE:
		api_reply_error(r, 413, "payload_too_large", answer->field, "%s",
		    answer->message);
		break;
	case SOURCE_HTTP_EMEDIATYPE:
		api_reply_error(r, 415, "unsupported_media_type", answer->field, "%s",
		    answer->message);
		break;
	}
}

/* Answer a deferred request with what the HTTP source said. */
void
api_events_answered(const struct source_http_answer *answer, void *arg)
{
	struct api_deferred *deferred = arg;
	struct api_request *r = api_deferred_request(deferred);

	/* NULL: the client went away before the commit. */
	if (r != NULL)
		events_reply(r, answer);
	api_deferred_free(deferred);
}

/*
 * POST /v1/events: {"events": [...]}. The route leaves the body unparsed for the
 * source. With [events] off there is no source: a body that is not a JSON object
 * is still answered 400 first, as on every route.
 */
void
api_events_post(struct api_request *r)
{
	if (r->events == NULL) {
		if (api_parse_body(r) == 0)
			api_reply_error(r, 404, "not_found", NULL,
			    "POST /v1/events is off ([events] enabled = no)");
		return;
	}
	source_http_post_events(r->events, r->body_text, r->body_len, api_events_answered,
	    api_defer(r));
}
