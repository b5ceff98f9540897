/*
 * POST /v1/ingest/ably: Ably webhooks (batched, enveloped or not). This handler checks
 * the signature (ably_keys.h) or our API key, hands the raw body and its headers to
 * the HTTP source, which translates and keeps them (source_http.h), and answers as
 * POST /v1/events does: 2xx only once committed, 5xx only when nothing was accepted,
 * as Ably's retries expect.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "ably_keys.h"
#include "api.h"
#include "log.h"
#include "source_http.h"

/* A header of the request, for the source. */
static const char *
header_from_request(const char *name, void *arg)
{
	return evhttp_find_header(evhttp_request_get_input_headers(arg), name);
}

/* Check the webhook's signature, or else our API key. */
static int
ably_authorized(struct api_request *r, const void *body, size_t len)
{
	struct evkeyvalq *headers = evhttp_request_get_input_headers(r->req);
	const char *key = evhttp_find_header(headers, "X-Ably-Key");
	const char *signature = evhttp_find_header(headers, "X-Ably-Signature");
	char err[256];
	int rc;

	if (r->ably_keys != NULL && (key != NULL || signature != NULL)) {
		rc = ably_keys_verify(r->ably_keys, key, signature, body, len, err, sizeof err);
		if (rc == ABLY_KEYS_OK)
			return 1;
		if (rc == ABLY_KEYS_EHMAC) {
			log_error("cannot check an Ably webhook's signature", "error", err, NULL);
			evhttp_add_header(evhttp_request_get_output_headers(r->req),
			    "Retry-After", "1");
			api_reply_error(r, 503, "unavailable", NULL, "%s; retry later", err);
			return 0;
		}
		log_warn("Ably webhook refused", "error", err, NULL);
		api_reply_error(r, 401, "unauthorized", NULL, "%s", err);
		return 0;
	}
	if (api_request_authorized(r))
		return 1;
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate",
	    "Bearer realm=\"pushrelay\"");
	api_reply_error(r, 401, "unauthorized", NULL, r->ably_keys != NULL ?
	    "missing X-Ably-Signature (or an API key)" : "missing or invalid API key");
	return 0;
}

/* POST /v1/ingest/ably. */
void
api_ably_post(struct api_request *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	const void *body = evbuffer_pullup(in, -1);

	if (!r->ably_enabled || r->ably_source == NULL) {
		api_reply_error(r, 404, "not_found", NULL,
		    "POST /v1/ingest/ably is off ([ably] enabled = no)");
		return;
	}
	if (!ably_authorized(r, body, len))
		return;
	source_http_post_ably(r->ably_source, body, len, header_from_request, r->req,
	    api_events_answered, api_defer(r));
}
