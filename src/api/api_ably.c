/*
 * POST /v1/ingest/ably: Ably webhooks (batched, enveloped or not), translated to room
 * events (ably.c) and accepted like POST /v1/events: 2xx only once committed, 5xx
 * only when nothing was accepted, as Ably's retries expect.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "source_ably.h"
#include "api.h"
#include "base64.h"
#include "log.h"
#include "source_http.h"
#include "utf8.h"
#include "xmalloc.h"

/* The headers the non-enveloped shape carries its metadata in. */
static const char *const ably_headers[] = {
	"content-type", "x-ably-envelope-source", "x-ably-envelope-channel",
	"x-ably-message-id", "x-ably-message-client-id", "x-ably-message-connection-id",
	"x-ably-message-timestamp", "x-ably-message-action", NULL
};

/* A request as ably_translate() wants it, from a header lookup function. */
static void
fill_request(struct ably_request *req, const void *body, size_t len,
    const char *(*get)(const char *name, void *arg), void *arg)
{
	memset(req, 0, sizeof *req);
	req->body = body;
	req->len = len;
	req->content_type = get("content-type", arg);
	req->envelope_source = get("x-ably-envelope-source", arg);
	req->envelope_channel = get("x-ably-envelope-channel", arg);
	req->message_id = get("x-ably-message-id", arg);
	req->message_client_id = get("x-ably-message-client-id", arg);
	req->message_connection_id = get("x-ably-message-connection-id", arg);
	req->message_timestamp = get("x-ably-message-timestamp", arg);
	req->message_action = get("x-ably-message-action", arg);
}

static const char *
header_from_request(const char *name, void *arg)
{
	return evhttp_find_header(evhttp_request_get_input_headers(arg), name);
}

static const char *
header_from_json(const char *name, void *arg)
{
	return json_string_value(json_object_get(arg, name));
}

/* The first of the headers the translation reads that is not UTF-8, or NULL. */
static const char *
header_not_utf8(struct evhttp_request *req)
{
	for (size_t i = 0; ably_headers[i] != NULL; i++) {
		const char *v = header_from_request(ably_headers[i], req);
		if (v != NULL && !utf8_valid(v, strlen(v)))
			return ably_headers[i];
	}
	return NULL;
}

/*
 * The outbox keeps the webhook as received (headers and base64 body), so a restart
 * translates it again exactly as it was. The headers were checked to be UTF-8, so
 * only a lack of memory makes it NULL.
 */
static char *
outbox_body(struct evhttp_request *req, const void *body, size_t len)
{
	json_t *headers = json_object(), *o;
	char *b64 = base64_encode(body, len), *text;

	for (size_t i = 0; headers != NULL && ably_headers[i] != NULL; i++) {
		const char *v = header_from_request(ably_headers[i], req);
		if (v != NULL && json_object_set_new(headers, ably_headers[i],
		    json_string(v)) != 0) {
			json_decref(headers);
			headers = NULL;
		}
	}
	o = headers != NULL ? json_pack("{s:{s:o, s:s}}", "ably", "headers", headers, "body",
	    b64) : NULL;
	free(b64);
	text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return text;
}

/* Translate an outbox body kept by api_ably_post() back into events. */
int
api_ably_replay(const json_t *ably, struct room_event **events, size_t *count)
{
	json_t *headers = json_object_get(ably, "headers");
	const char *b64 = json_string_value(json_object_get(ably, "body"));
	struct ably_request req;
	struct ably_result result;
	unsigned char *body = NULL;
	size_t len = 0;
	char err[256];

	*events = NULL;
	*count = 0;
	if (!json_is_object(headers) || b64 == NULL ||
	    base64_decode(b64, strlen(b64), &body, &len) != 0)
		return -1;
	fill_request(&req, body, len, header_from_json, headers);
	if (ably_translate(&req, &result, err, sizeof err) != ABLY_OK) {
		free(body);
		return -1;
	}
	free(body);
	/* The events move out of the result. */
	*events = result.events;
	*count = result.count;
	result.events = NULL;
	result.count = 0;
	ably_result_free(&result);
	return 0;
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
		rc = ably_verify(r->ably_keys, key, signature, body, len, err, sizeof err);
		if (rc == ABLY_OK)
			return 1;
		if (rc == ABLY_EHMAC) {
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
	struct ably_request req;
	struct ably_result result;
	json_t *skipped;
	char err[256], count[24], *text;
	const char *header;
	int rc;

	if (!r->ably_enabled || r->ably_source == NULL) {
		api_reply_error(r, 404, "not_found", NULL,
		    "POST /v1/ingest/ably is off ([ably] enabled = no)");
		return;
	}
	if (!ably_authorized(r, body, len))
		return;
	if (!source_http_ready(r->ably_source)) {
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
		api_reply_error(r, 503, "unavailable", NULL,
		    "too many events are waiting; retry later");
		return;
	}
	/* Refused whole, so the outbox (JSON) can keep the headers as they came. */
	if ((header = header_not_utf8(r->req)) != NULL) {
		api_reply_error(r, 400, "invalid_field", header, "%s: must be UTF-8", header);
		return;
	}
	fill_request(&req, body, len, header_from_request, r->req);
	rc = ably_translate(&req, &result, err, sizeof err);
	if (rc == ABLY_EMSGPACK) {
		api_reply_error(r, 415, "unsupported_media_type", NULL,
		    "msgpack is not supported; configure the rule for JSON");
		return;
	}
	if (rc == ABLY_ETOOLARGE) {
		api_reply_error(r, 413, "payload_too_large", NULL, "%s", err);
		return;
	}
	if (rc != ABLY_OK) {
		api_reply_error(r, 400, "invalid_json", NULL, "%s", err);
		return;
	}
	skipped = json_object();
	for (int k = 0; k < ABLY_SKIP_KINDS; k++) {
		if (result.skipped[k] > 0)
			json_object_set_new(skipped, ably_skip_kind_name(k),
			    json_integer((json_int_t)result.skipped[k]));
	}
	if (result.skip_count > 0) {
		snprintf(count, sizeof count, "%zu", result.skip_count);
		log_warn("Ably items skipped", "count", count, "first",
		    result.skips[0].detail, NULL);
	}
	if ((text = outbox_body(r->req, body, len)) == NULL) {
		log_error("out of memory keeping an Ably webhook", NULL);
		json_decref(skipped);
		ably_result_free(&result);
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
		api_reply_error(r, 503, "unavailable", NULL, "cannot keep the webhook; retry later");
		return;
	}
	/* The events move to the outbox's batch. */
	api_events_accept(r, r->ably_source, result.events, result.count, text, skipped);
	result.events = NULL;
	result.count = 0;
	ably_result_free(&result);
	free(text);
}
