/* The HTTP API server: listeners, routing, authentication, bodies and errors. */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "api.h"
#include "api_access.h"
#include "api_conn.h"
#include "ably_keys.h"
#include "apikey.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "store.h"
#include "utf8.h"
#include "xmalloc.h"

#define API_PATH_SEGMENTS_MAX 8
#define API_HEADERS_MAX_SIZE (16 * 1024)
#define API_EVHTTP_TIMEOUT_SLACK_S 5
/* The kernel caps it at net.core.somaxconn (4096 by default on Debian 12). */
#define API_LISTEN_BACKLOG 4096

enum api_route_flags {
	API_ROUTE_PUBLIC = 1 << 0,	/* no API key needed; every other route needs one */
	API_ROUTE_BODY = 1 << 1,	/* takes a JSON object body */
	API_ROUTE_BODY_OPTIONAL = 1 << 2, /* the body may be absent */
	API_ROUTE_RAW = 1 << 3,		/* the handler reads the body itself (size checked) */
	API_ROUTE_BODY_TEXT = 1 << 4,	/* with BODY: checked, parsed by the handler */
	API_ROUTE_METRICS = 1 << 5,	/* public while [api] metrics_public is on */
};

struct api_route {
	const char *pattern;		/* "/v1/devices/{device_id}" */
	enum evhttp_cmd_type method;
	api_handler_fn *handler;
	int flags;
};

/*
 * Every route. Whether a route needs the API key is decided here and nowhere else,
 * on the decoded path matched against these patterns (api_route_find), both when the
 * head comes in (the connection guard) and at dispatch.
 */
static const struct api_route api_routes[] = {
	{ "/healthz", EVHTTP_REQ_GET, api_healthz, API_ROUTE_PUBLIC },
	{ "/readyz", EVHTTP_REQ_GET, api_readyz, API_ROUTE_PUBLIC },
	{ "/v1/devices/{device_id}", EVHTTP_REQ_PUT, api_device_put, API_ROUTE_BODY },
	{ "/v1/devices/{device_id}", EVHTTP_REQ_GET, api_device_get, 0 },
	{ "/v1/devices/{device_id}", EVHTTP_REQ_DELETE, api_device_delete, 0 },
	{ "/v1/clients/{client_id}/devices", EVHTTP_REQ_GET, api_client_devices_get, 0 },
	{ "/v1/clients/{client_id}/devices", EVHTTP_REQ_DELETE, api_client_devices_delete, 0 },
	{ "/v1/rooms/{room_id}/members", EVHTTP_REQ_GET, api_members_get, 0 },
	{ "/v1/rooms/{room_id}/members/{client_id}", EVHTTP_REQ_PUT, api_member_put,
	    API_ROUTE_BODY | API_ROUTE_BODY_OPTIONAL },
	{ "/v1/rooms/{room_id}/members/{client_id}", EVHTTP_REQ_DELETE, api_member_delete, 0 },
	{ "/v1/rooms/{room_id}/members/{client_id}/prefs", EVHTTP_REQ_PUT,
	    api_member_prefs_put, API_ROUTE_BODY },
	{ "/v1/push", EVHTTP_REQ_POST, api_push_post, API_ROUTE_BODY },
	{ "/v1/push/{push_id}", EVHTTP_REQ_GET, api_push_get, 0 },
	{ "/v1/feedback", EVHTTP_REQ_GET, api_feedback_get, 0 },
	/* Batches of events: the handler reads the common ones without a jansson tree. */
	{ "/v1/events", EVHTTP_REQ_POST, api_events_post,
	    API_ROUTE_BODY | API_ROUTE_BODY_TEXT },
	/* Ably signs its webhooks: the handler checks the signature or the API key. */
	{ "/v1/ingest/ably", EVHTTP_REQ_POST, api_ably_post, API_ROUTE_PUBLIC | API_ROUTE_RAW },
	/* Metrics: /metrics for Prometheus (no key unless configured), /v1/stats as JSON. */
	{ "/metrics", EVHTTP_REQ_GET, api_metrics_get, API_ROUTE_METRICS },
	{ "/v1/stats", EVHTTP_REQ_GET, api_stats_get, 0 },
};

#define API_ROUTE_COUNT (sizeof api_routes / sizeof api_routes[0])

struct api_listener {
	struct evhttp_bound_socket *handle;
	struct evconnlistener *listener;
	char *name;			/* for the log */
};

struct api {
	struct event_base *base;
	struct evhttp *http;
	struct store_writer *writer;
	struct store_writer *reader;
	struct apikeys *keys;
	struct api_heartbeat *heartbeat;
	struct source_http *events;
	int ably_enabled;
	struct ably_keys *ably_keys;
	struct source_http *ably_source;
	struct push_ledger *pushes;
	struct feedback *feedback;
	const struct metrics *metrics;
	struct api_listener *listeners;
	size_t listener_count;
	char *unix_socket;
	struct api_conns *conns;	/* the connection guard */
	int metrics_public;
	struct api_access access;	/* the access log */
	size_t max_body_size;
	size_t in_flight;
	int closing;
	struct api_request_count *request_counts;	/* for metrics */
	size_t request_count_len;
};

static const struct {
	int status;
	const char *reason;
} api_reasons[] = {
	{ 200, "OK" }, { 201, "Created" }, { 202, "Accepted" }, { 204, "No Content" },
	{ 400, "Bad Request" }, { 401, "Unauthorized" }, { 404, "Not Found" },
	{ 405, "Method Not Allowed" }, { 409, "Conflict" }, { 413, "Payload Too Large" },
	{ 415, "Unsupported Media Type" }, { 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" },
	{ 503, "Service Unavailable" },
};

static const char *
status_reason(int status)
{
	for (size_t i = 0; i < sizeof api_reasons / sizeof api_reasons[0]; i++) {
		if (api_reasons[i].status == status)
			return api_reasons[i].reason;
	}
	return "Unknown";
}

static const char *
method_name(enum evhttp_cmd_type method)
{
	switch (method) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "?";
}

struct api_deferred {
	struct api_request request;	/* a copy: the original lived on the stack */
	char *path;
	int gone;			/* the client closed the connection first */
	int answered;			/* handed out for the answer */
};

/* The client of a deferred request closed its connection: nothing to answer. */
static void
api_deferred_closed(struct evhttp_connection *evcon, void *arg)
{
	struct api_deferred *d = arg;

	if (d->gone)
		return;
	d->gone = 1;
	/* Its completion callback will never run now. */
	if (d->request.api->in_flight > 0)
		d->request.api->in_flight--;
}

struct api_deferred *
api_defer(struct api_request *r)
{
	struct api_deferred *d = xcalloc(1, sizeof *d);

	d->request = *r;
	d->request.body = NULL;
	d->path = xstrdup(r->path);
	d->request.path = d->path;
	for (size_t i = 0; i < 4; i++)
		d->request.params[i] = NULL;
	evhttp_connection_set_closecb(evhttp_request_get_connection(r->req),
	    api_deferred_closed, d);
	return d;
}

struct api_request *
api_deferred_request(struct api_deferred *d)
{
	if (d->gone)
		return NULL;
	d->answered = 1;
	/* From here on, closing is the normal end of the answer. */
	evhttp_connection_set_closecb(evhttp_request_get_connection(d->request.req), NULL,
	    NULL);
	return &d->request;
}

void
api_deferred_free(struct api_deferred *d)
{
	if (d == NULL)
		return;
	/* Unanswered and the client still there: stop listening for its close. */
	if (!d->gone && !d->answered)
		evhttp_connection_set_closecb(evhttp_request_get_connection(d->request.req),
		    NULL, NULL);
	free(d->path);
	free(d);
}

/* Count a request as answered once its last byte has been written. */
static void
api_request_complete(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;

	if (api->in_flight > 0)
		api->in_flight--;
	api_conns_answered(api->conns, req);
}

/* Count an answer by route pattern, method and status (metrics). */
static void
api_count_request(struct api *api, const char *route, const char *method, int status)
{
	struct api_request_count *c;

	if (route == NULL)
		route = "unmatched";
	for (size_t i = 0; i < api->request_count_len; i++) {
		c = &api->request_counts[i];
		if (c->status == status && strcmp(c->route, route) == 0 &&
		    strcmp(c->method, method) == 0) {
			c->count++;
			return;
		}
	}
	api->request_counts = xreallocarray(api->request_counts, api->request_count_len + 1,
	    sizeof *api->request_counts);
	c = &api->request_counts[api->request_count_len++];
	c->route = route;
	c->method = method;
	c->status = status;
	c->count = 1;
}

void
api_get_connection_stats(const struct api *api, struct api_conn_stats *stats)
{
	api_conns_get_stats(api->conns, stats);
}

size_t
api_get_request_counts(const struct api *api, const struct api_request_count **counts)
{
	*counts = api->request_counts;
	return api->request_count_len;
}

/* Send a response: status, optional buffer, and the access log's lines. */
static void
api_send(struct api_request *r, int status, struct evbuffer *body)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);
	size_t bytes = body != NULL ? evbuffer_get_length(body) :
	    evbuffer_get_length(evhttp_request_get_output_buffer(r->req));

	api_count_request(r->api, r->route, method_name(r->method), status);
	if (r->api->closing)
		evhttp_add_header(headers, "Connection", "close");
	if (status == 401)
		api_access_refused(&r->api->access, r, method_name(r->method));
	evhttp_send_reply(r->req, status, status_reason(status), body);
	api_access_answered(&r->api->access, r, method_name(r->method), status, bytes);
}

/* The answer when the real one cannot be built: fixed text, valid JSON. */
#define API_FALLBACK_BODY \
	"{\"error\":{\"code\":\"internal\",\"message\":\"the answer could not be built\"}}\n"

/* Answer 500 with the fixed body (an answer that could not be built). */
static void
api_reply_fallback(struct api_request *r)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);

	evhttp_remove_header(headers, "Content-Type");
	evhttp_add_header(headers, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(r->req), API_FALLBACK_BODY,
	    sizeof API_FALLBACK_BODY - 1);
	log_error("an answer could not be built", "path", r->path, NULL);
	api_send(r, 500, NULL);
}

/* evbuffer_add_reference()'s cleanup of a rendered answer. */
static void
api_rendered_free(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

void
api_reply_json(struct api_request *r, int status, json_t *body)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	struct evbuffer *out = evhttp_request_get_output_buffer(r->req);

	json_decref(body);
	if (text == NULL || evbuffer_add(out, text, strlen(text)) != 0 ||
	    evbuffer_add(out, "\n", 1) != 0) {
		free(text);
		evbuffer_drain(out, evbuffer_get_length(out));
		api_reply_fallback(r);
		return;
	}
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
	    "application/json");
	api_send(r, status, NULL);
}

void
api_reply_rendered(struct api_request *r, int status, char *text, size_t len)
{
	if (text == NULL) {
		api_reply_fallback(r);
		return;
	}
	/* The buffer takes the text as it is: no copy (free() is its cleanup). */
	if (evbuffer_add_reference(evhttp_request_get_output_buffer(r->req), text, len,
	    api_rendered_free, NULL) != 0) {
		free(text);
		api_reply_fallback(r);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
	    "application/json");
	api_send(r, status, NULL);
}

void
api_reply_empty(struct api_request *r, int status)
{
	api_send(r, status, NULL);
}

void
api_reply_text(struct api_request *r, int status, const char *content_type,
    const char *body, size_t len)
{
	if (evbuffer_add(evhttp_request_get_output_buffer(r->req), body, len) != 0) {
		api_reply_fallback(r);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
	    content_type);
	api_send(r, status, NULL);
}

/*
 * The error object {"code","message"[,"field"]}: message and field may hold what a
 * client sent, so they are made valid UTF-8 (cut on a character, bad bytes replaced).
 */
json_t *
api_error_object(const char *code, const char *field, const char *message)
{
	char clean[API_ERROR_MESSAGE_MAX + 1], clean_field[API_ERROR_FIELD_MAX + 1];
	json_t *error;

	/* The sanitizer stops before a character that would not fit whole. */
	utf8_sanitize(clean, sizeof clean, message, strlen(message));
	if ((error = json_object()) == NULL ||
	    json_object_set_new(error, "code", json_string(code)) != 0 ||
	    json_object_set_new(error, "message", json_string(clean)) != 0) {
		json_decref(error);
		return NULL;
	}
	if (field != NULL) {
		utf8_sanitize(clean_field, sizeof clean_field, field, strlen(field));
		if (json_object_set_new(error, "field", json_string(clean_field)) != 0) {
			json_decref(error);
			return NULL;
		}
	}
	return error;
}

void
api_reply_error(struct api_request *r, int status, const char *code, const char *field,
    const char *fmt, ...)
{
	char message[4 * API_ERROR_MESSAGE_MAX];
	json_t *error, *body;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	if ((error = api_error_object(code, field, message)) == NULL ||
	    (body = json_object()) == NULL) {
		json_decref(error);
		api_reply_fallback(r);
		return;
	}
	json_object_set_new(body, "error", error);
	api_reply_json(r, status, body);
}

void
api_reply_model_error(struct api_request *r, const struct model_error *err)
{
	switch (err->kind) {
	case MODEL_ERROR_MISSING:
		api_reply_error(r, 400, "missing_field", err->field, "%s", err->message);
		break;
	case MODEL_ERROR_CONFLICT:
		api_reply_error(r, 409, "conflict", err->field, "%s", err->message);
		break;
	default:
		api_reply_error(r, 400, "invalid_field", err->field, "%s", err->message);
		break;
	}
}

void
api_reply_store_error(struct api_request *r, int error, const char *what)
{
	if (error == STORE_ENOTFOUND)
		api_reply_error(r, 404, "not_found", NULL, "%s", what);
	else
		api_reply_error(r, 503, "unavailable", NULL,
		    "the store failed (%s); nothing was written, retry later",
		    store_strerror(error));
}

void
api_print_routes(FILE *out)
{
	for (size_t i = 0; i < API_ROUTE_COUNT; i++) {
		const struct api_route *route = &api_routes[i];
		fprintf(out, "%s %s %s\n", method_name(route->method), route->pattern,
		    route->flags & API_ROUTE_METRICS ? "metrics" :
		    route->flags & API_ROUTE_PUBLIC ? "public" : "key");
	}
}

/* A request path matched against the route table. */
struct api_route_match {
	const struct api_route *route;	/* the route of this path and method; NULL: none */
	const char *pattern;		/* the first pattern the path matches; NULL: none */
	unsigned allow;			/* the methods the path has (API_METHOD_BIT), for 405 */
	const char *params[4];		/* decoded {ids}, in order (point into segments) */
	char *segments[API_PATH_SEGMENTS_MAX];
	size_t count;
};

/*
 * Split a raw path into percent-decoded segments: 0, or -1 if it is malformed (not
 * absolute, or more than API_PATH_SEGMENTS_MAX segments), with nothing left allocated.
 */
static int
split_path(const char *path, char **segments, size_t *count)
{
	const char *p = path, *slash;
	size_t n = 0, len, decoded_len;
	char raw[API_HEADERS_MAX_SIZE + 1];

	*count = 0;
	if (*p != '/' || strlen(path) > API_HEADERS_MAX_SIZE)
		return -1;
	p++;
	for (;;) {
		if (n == API_PATH_SEGMENTS_MAX)
			goto fail;
		slash = strchr(p, '/');
		len = slash != NULL ? (size_t)(slash - p) : strlen(p);
		memcpy(raw, p, len);
		raw[len] = '\0';
		if ((segments[n] = evhttp_uridecode(raw, 0, &decoded_len)) == NULL)
			goto fail;
		/* An encoded NUL would cut the id short: keep it for the validator. */
		if (strlen(segments[n]) != decoded_len)
			segments[n][0] = '\001';
		n++;
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	*count = n;
	return 0;
fail:
	while (n > 0)
		free(segments[--n]);
	return -1;
}

/* Match a route pattern against the segments, collecting {param} values. */
static int
route_match(const char *pattern, char **segments, size_t count, const char **params)
{
	const char *p = pattern + 1, *end;
	size_t i = 0, nparams = 0, len;

	for (; *p != '\0'; p = *end == '/' ? end + 1 : end, i++) {
		end = strchr(p, '/');
		if (end == NULL)
			end = p + strlen(p);
		len = (size_t)(end - p);
		if (i >= count)
			return 0;
		if (*p == '{') {
			if (nparams < 4)
				params[nparams++] = segments[i];
		} else if (strlen(segments[i]) != len || memcmp(p, segments[i], len) != 0)
			return 0;
	}
	return i == count;
}

/*
 * Find the route of a raw (still encoded) path and a method. 0 with m filled (its
 * route NULL when the path or the method has none), or -1 if the path is malformed.
 * Free with api_route_match_free() either way.
 */
static int
api_route_find(const char *raw_path, enum evhttp_cmd_type method, struct api_route_match *m)
{
	memset(m, 0, sizeof *m);
	if (split_path(raw_path, m->segments, &m->count) != 0)
		return -1;
	for (size_t i = 0; i < API_ROUTE_COUNT; i++) {
		const char *params[4] = { NULL, NULL, NULL, NULL };

		if (!route_match(api_routes[i].pattern, m->segments, m->count, params))
			continue;
		if (m->pattern == NULL)
			m->pattern = api_routes[i].pattern;
		/* Only a 405 spells them out (api_allow_format): no formatting per request. */
		m->allow |= (unsigned)api_routes[i].method;
		if (api_routes[i].method == method && m->route == NULL) {
			m->route = &api_routes[i];
			memcpy(m->params, params, sizeof params);
		}
	}
	return 0;
}

/* "GET, PUT, DELETE": the methods of a route match, in the route table's order. */
static void
api_allow_format(const struct api_route_match *m, char *out, size_t size)
{
	unsigned seen = 0;
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < API_ROUTE_COUNT; i++) {
		unsigned bit = (unsigned)api_routes[i].method;

		if (!(m->allow & bit) || (seen & bit))
			continue;
		seen |= bit;
		used += (size_t)snprintf(out + used, size - used, "%s%s", used > 0 ? ", " : "",
		    method_name(api_routes[i].method));
		if (used >= size)
			break;
	}
}

static void
api_route_match_free(struct api_route_match *m)
{
	for (size_t i = 0; i < m->count; i++)
		free(m->segments[i]);
	m->count = 0;
}

/* May this route be reached without an API key? */
static int
api_route_public(const struct api *api, const struct api_route *route)
{
	if (route == NULL)
		return 0;
	if (route->flags & API_ROUTE_METRICS)
		return api->metrics_public;
	return (route->flags & API_ROUTE_PUBLIC) != 0;
}

/* Does "Bearer <key>" carry one of our keys? */
static int
api_key_good(struct api *api, const char *authorization, char id[APIKEY_ID_SIZE])
{
	const char *h = authorization;

	if (id != NULL)
		id[0] = '\0';
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	return *h != '\0' && apikey_match(api->keys, h, strlen(h), id);
}

/*
 * May a request for this raw path and method go on: its route is public, or it has a
 * good key? Any path that is not a public route (an unknown one, one spelt otherwise,
 * a malformed one) needs the key.
 */
static int
api_access_path(struct api *api, enum evhttp_cmd_type method, const char *raw_path,
    const char *authorization)
{
	struct api_route_match m;
	int public = 0;

	if (api_route_find(raw_path, method, &m) == 0)
		public = api_route_public(api, m.route);
	api_route_match_free(&m);
	return public || api_key_good(api, authorization, NULL);
}

/* The connection guard's question, on the request target as evhttp will parse it. */
static int
api_access_target(void *arg, enum evhttp_cmd_type method, const char *target,
    const char *authorization)
{
	struct api *api = arg;
	struct evhttp_uri *uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	int ok;

	ok = api_access_path(api, method, path != NULL && *path != '\0' ? path : "/",
	    authorization);
	if (uri != NULL)
		evhttp_uri_free(uri);	/* libevent's free does not take NULL */
	return ok;
}

/* Does the request carry one of our API keys? Which one goes into id. */
static int
authorized(struct api *api, struct evhttp_request *req, char id[APIKEY_ID_SIZE])
{
	return api_key_good(api, evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization"), id);
}

/* The name of the n-th {param} of a pattern, e.g. "device_id". */
static void
param_name(const char *pattern, size_t n, char *out, size_t outlen)
{
	const char *p = pattern;

	for (size_t i = 0; (p = strchr(p, '{')) != NULL; i++, p++) {
		if (i == n) {
			const char *end = strchr(p, '}');
			snprintf(out, outlen, "%.*s", (int)(end - p - 1), p + 1);
			return;
		}
	}
	snprintf(out, outlen, "id");
}

/* Is the request's content type application/json (parameters allowed)? */
static int
is_json_content_type(struct evhttp_request *req)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Type");
	size_t n = strlen("application/json");

	if (ct == NULL)
		return 0;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, "application/json", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

int
api_parse_body(struct api_request *r)
{
	json_error_t jerr;

	r->body = json_loadb(r->body_text, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (r->body == NULL) {
		api_reply_error(r, 400, "invalid_json", NULL,
		    "request body is not valid JSON: %s at line %d, column %d", jerr.text,
		    jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_object(r->body)) {
		api_reply_error(r, 400, "invalid_json", NULL,
		    "request body must be a JSON object");
		return -1;
	}
	return 0;
}

/* Read, check and (unless the handler does) parse a route's body; 0 or -1 (answered). */
static int
read_body(struct api_request *r, const struct api_route *route)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);

	if (len > r->api->max_body_size) {
		api_reply_error(r, 413, "payload_too_large", NULL,
		    "request body exceeds %zu bytes", r->api->max_body_size);
		return -1;
	}
	if (len == 0 && (route->flags & API_ROUTE_BODY_OPTIONAL))
		return 0;
	if (!is_json_content_type(r->req)) {
		api_reply_error(r, 415, "unsupported_media_type", NULL,
		    "Content-Type must be application/json");
		return -1;
	}
	if (len == 0) {
		api_reply_error(r, 400, "invalid_json", NULL,
		    "request body must be a JSON object");
		return -1;
	}
	r->body_text = (const char *)evbuffer_pullup(in, -1);
	r->body_len = len;
	if (route->flags & API_ROUTE_BODY_TEXT)
		return 0;
	return api_parse_body(r);
}

/* Answer a request the connection guard stopped at its head. */
static void
api_reply_refusal(struct api_request *r, enum api_conn_refusal refusal, const char *method)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);

	evhttp_add_header(headers, "Connection", "close");
	switch (refusal) {
	case API_CONN_UNAUTHORIZED:
		evhttp_add_header(headers, "WWW-Authenticate", "Bearer realm=\"pushrelay\"");
		api_reply_error(r, 401, "unauthorized", NULL, "missing or invalid API key");
		break;
	case API_CONN_BAD_LENGTH:
		api_reply_error(r, 400, "bad_request", NULL,
		    "Content-Length is not a number of bytes");
		break;
	case API_CONN_HEADERS_TOO_LARGE:
		api_reply_error(r, 431, "headers_too_large", NULL,
		    "the request line and headers exceed %d bytes", API_HEADERS_MAX_SIZE);
		break;
	case API_CONN_BODY_TOO_LARGE:
		api_reply_error(r, 413, "payload_too_large", NULL,
		    "request body exceeds %zu bytes", r->api->max_body_size);
		break;
	case API_CONN_BAD_METHOD:
		api_reply_error(r, 405, "method_not_allowed", NULL,
		    "method %s is not supported", method);
		break;
	case API_CONN_MALFORMED:
	default:
		api_reply_error(r, 400, "bad_request", NULL,
		    "malformed request line or header line");
		break;
	}
}

/* Route one request: refusals, path, key, method, ids, body, then the handler. */
static void
api_dispatch(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	struct api_request r;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *raw_path = uri != NULL ? evhttp_uri_get_path(uri) : NULL, *bad_method;
	struct api_route_match m;
	const struct api_route *route;
	enum api_conn_refusal refusal;
	char *path;

	api->in_flight++;
	evhttp_request_set_on_complete_cb(req, api_request_complete, api);
	memset(&r, 0, sizeof r);
	memset(&m, 0, sizeof m);
	r.started_ms = clock_monotonic_ms();
	r.api = api;
	r.req = req;
	r.method = evhttp_request_get_command(req);
	r.writer = api->writer;
	r.reader = api->reader;
	r.heartbeat = api->heartbeat;
	r.events = api->events;
	r.ably_enabled = api->ably_enabled;
	r.ably_keys = api->ably_keys;
	r.ably_source = api->ably_source;
	r.pushes = api->pushes;
	r.feedback = api->feedback;
	r.metrics = api->metrics;
	path = utf8_sanitize_dup(raw_path != NULL && *raw_path != '\0' ? raw_path : "/",
	    raw_path != NULL && *raw_path != '\0' ? strlen(raw_path) : 1, API_HEADERS_MAX_SIZE);
	r.path = path;

	refusal = api_conns_dispatched(api->conns, req, &bad_method);
	if (api_route_find(raw_path != NULL && *raw_path != '\0' ? raw_path : "/", r.method,
	    &m) != 0) {
		if (refusal == API_CONN_OK && !authorized(api, req, r.key_id))
			refusal = API_CONN_UNAUTHORIZED;
		if (refusal != API_CONN_OK)
			api_reply_refusal(&r, refusal, bad_method);
		else
			api_reply_error(&r, 404, "not_found", NULL, "no such endpoint: %s", path);
		goto done;
	}
	r.route = m.pattern;
	route = m.route;
	if (refusal != API_CONN_OK) {
		api_reply_refusal(&r, refusal, bad_method);
		goto done;
	}
	/* The same decision as the guard's, on the same match: public, or a good key. */
	if (!api_route_public(api, route) && !authorized(api, req, r.key_id)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		    "Bearer realm=\"pushrelay\"");
		api_reply_error(&r, 401, "unauthorized", NULL, "missing or invalid API key");
		goto done;
	}
	if (m.pattern == NULL) {
		api_reply_error(&r, 404, "not_found", NULL, "no such endpoint: %s", path);
		goto done;
	}
	if (route == NULL) {
		char allow[64];

		api_allow_format(&m, allow, sizeof allow);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		api_reply_error(&r, 405, "method_not_allowed", NULL,
		    "method %s is not allowed here; allowed: %s", method_name(r.method), allow);
		goto done;
	}
	memcpy(r.params, m.params, sizeof r.params);
	for (size_t i = 0; strchr(route->pattern, '{') != NULL && i < 4; i++) {
		struct model_error merr;
		char name[32];
		if (r.params[i] == NULL)
			break;
		param_name(route->pattern, i, name, sizeof name);
		if (model_validate_id(r.params[i], name, &merr) != 0) {
			api_reply_model_error(&r, &merr);
			goto done;
		}
	}
	if ((route->flags & API_ROUTE_BODY) && read_body(&r, route) != 0)
		goto done;
	if ((route->flags & API_ROUTE_RAW) && evbuffer_get_length(
	    evhttp_request_get_input_buffer(req)) > api->max_body_size) {
		api_reply_error(&r, 413, "payload_too_large", NULL,
		    "request body exceeds %zu bytes", api->max_body_size);
		goto done;
	}
	route->handler(&r);
done:
	json_decref(r.body);
	api_route_match_free(&m);
	free(path);
}

/* Bind one TCP listener "host:port" and log the address it got. */
static int
bind_tcp(struct api *api, const char *hostport, char *err, size_t errlen)
{
	char host[256], port[16], name[300];
	struct evhttp_bound_socket *handle;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	char addr[INET6_ADDRSTRLEN];
	unsigned int bound_port = 0;

	if (config_split_hostport(hostport, host, sizeof host, port, sizeof port) != 0) {
		snprintf(err, errlen, "bad listen address '%s'", hostport);
		return -1;
	}
	handle = evhttp_bind_socket_with_handle(api->http, host, (ev_uint16_t)atoi(port));
	if (handle == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(errno));
		return -1;
	}
	/* evhttp listens with a backlog of 128: a burst of connects past it waits for
	 * SYN retransmits (1 s, then 3 s). listen() again raises it. */
	if (listen(evhttp_bound_socket_get_fd(handle), API_LISTEN_BACKLOG) == -1)
		log_warn("cannot raise the listen backlog", "address", hostport,
		    "error", strerror(errno), NULL);
	if (getsockname(evhttp_bound_socket_get_fd(handle), (struct sockaddr *)&ss,
	    &sslen) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
			bound_port = ntohs(s6->sin6_port);
			snprintf(name, sizeof name, "[%s]:%u", addr, bound_port);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
			bound_port = ntohs(s4->sin_port);
			snprintf(name, sizeof name, "%s:%u", addr, bound_port);
		}
	} else
		snprintf(name, sizeof name, "%s", hostport);
	api->listeners = xreallocarray(api->listeners, api->listener_count + 1,
	    sizeof *api->listeners);
	api->listeners[api->listener_count].handle = handle;
	api->listeners[api->listener_count].listener = evhttp_bound_socket_get_listener(handle);
	api->listeners[api->listener_count].name = xstrdup(name);
	api->listener_count++;
	api_conns_add_listener(api->conns, evhttp_bound_socket_get_listener(handle));
	log_info("listening", "address", name, NULL);
	return 0;
}

/* Is a live process accepting on this unix socket path? */
static int
unix_socket_in_use(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	if (fd == -1)
		return 0;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0;
	close(fd);
	return rc;
}

/* Bind the unix socket with its mode, replacing a stale one left by a crash. */
static int
bind_unix(struct api *api, const char *path, unsigned int mode, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct evconnlistener *listener;
	struct evhttp_bound_socket *handle;
	struct stat st;
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "unix socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket", path);
			return -1;
		}
		if (unix_socket_in_use(&sun)) {
			snprintf(err, errlen, "%s is in use by another process", path);
			return -1;
		}
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1 ||
	    chmod(path, mode) == -1 || listen(fd, API_LISTEN_BACKLOG) == -1) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	listener = evconnlistener_new(api->base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (listener == NULL || (handle = evhttp_bind_listener(api->http, listener)) == NULL) {
		snprintf(err, errlen, "cannot listen on %s", path);
		if (listener != NULL)
			evconnlistener_free(listener);
		else
			close(fd);
		return -1;
	}
	api->listeners = xreallocarray(api->listeners, api->listener_count + 1,
	    sizeof *api->listeners);
	api->listeners[api->listener_count].handle = handle;
	api->listeners[api->listener_count].listener = listener;
	api->listeners[api->listener_count].name = xstrdup(path);
	api->listener_count++;
	api_conns_add_listener(api->conns, listener);
	api->unix_socket = xstrdup(path);
	log_info("listening", "unix_socket", path, NULL);
	return 0;
}

struct api *
api_new(struct event_base *base, const struct api_options *options,
    struct store_writer *writer, struct store_writer *reader, struct apikeys *keys, char *err,
    size_t errlen)
{
	struct api *api = xcalloc(1, sizeof *api);
	struct api_conn_options guard;
	struct timeval tv;

	api->base = base;
	api->writer = writer;
	api->reader = reader;
	api->keys = keys;
	api->max_body_size = options->max_body_size;
	api->metrics_public = options->metrics_public;
	api->access.enabled = options->access_log;
	if ((api->http = evhttp_new(base)) == NULL)
		fatalx("cannot create the HTTP server");
	/*
	 * The guard refuses a Content-Length above max_body_size and a head above
	 * API_HEADERS_MAX_SIZE with our JSON errors before evhttp reads them. evhttp's own
	 * limits sit above ours: only a chunked body past max_body_size + 1 MiB meets
	 * libevent's plain-HTML 413 (below that, read_body answers ours).
	 */
	evhttp_set_max_body_size(api->http, (ev_ssize_t)(options->max_body_size + 1024 * 1024));
	evhttp_set_max_headers_size(api->http, API_HEADERS_MAX_SIZE + 1024);
	/* Every method evhttp knows reaches dispatch, which answers 405 in JSON. */
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
	    EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH);
	/*
	 * The guard's deadlines cut reads off (api_conn.c). evhttp's own idle timer stays
	 * as the net for an answer the client does not read, set past those deadlines so
	 * that they, not it, close a slow client.
	 */
	tv.tv_sec = options->request_timeout_ms / 1000 + API_EVHTTP_TIMEOUT_SLACK_S;
	tv.tv_usec = (options->request_timeout_ms % 1000) * 1000;
	evhttp_set_timeout_tv(api->http, &tv);
	memset(&guard, 0, sizeof guard);
	guard.max_connections = options->max_connections;
	guard.max_connections_per_peer = options->max_connections_per_peer;
	guard.header_timeout_ms = options->header_timeout_ms;
	guard.request_timeout_ms = options->request_timeout_ms;
	guard.max_headers_size = API_HEADERS_MAX_SIZE;
	guard.max_body_size = options->max_body_size;
	api->conns = api_conns_new(base, api->http, &guard, api_access_target, api);
	evhttp_set_gencb(api->http, api_dispatch, api);
	api->heartbeat = api_heartbeat_new(base);

	for (size_t i = 0; i < options->listen_count; i++) {
		if (bind_tcp(api, options->listen[i], err, errlen) != 0)
			goto fail;
	}
	if (options->unix_socket != NULL && bind_unix(api, options->unix_socket,
	    options->unix_socket_mode, err, errlen) != 0)
		goto fail;
	return api;
fail:
	api->keys = NULL;	/* still the caller's */
	api_free(api);
	return NULL;
}

void
api_set_ably(struct api *api, int enabled, struct ably_keys *keys,
    struct source_http *source)
{
	ably_keys_free(api->ably_keys);
	api->ably_enabled = enabled;
	api->ably_keys = keys;
	api->ably_source = source;
}

/* Does the request carry one of our API keys? */
int
api_request_authorized(struct api_request *r)
{
	return authorized(r->api, r->req, r->key_id);
}

void
api_set_events_source(struct api *api, struct source_http *source)
{
	api->events = source;
}

void
api_set_modules(struct api *api, struct push_ledger *pushes, struct feedback *feedback,
    const struct metrics *metrics)
{
	api->pushes = pushes;
	api->feedback = feedback;
	api->metrics = metrics;
}

void
api_set_keys(struct api *api, struct apikeys *keys)
{
	apikey_free(api->keys);
	api->keys = keys;
}

void
api_add_ready_check(struct api *api, const char *name, api_ready_check_fn *check, void *arg)
{
	api_heartbeat_add_check(api->heartbeat, name, check, arg);
}

void
api_stop_accepting(struct api *api)
{
	for (size_t i = 0; i < api->listener_count; i++) {
		if (api->listeners[i].handle != NULL) {
			api_conns_remove_listener(api->conns, api->listeners[i].listener);
			evhttp_del_accept_socket(api->http, api->listeners[i].handle);
			api->listeners[i].handle = NULL;
		}
	}
	if (api->unix_socket != NULL)
		unlink(api->unix_socket);
	api->closing = 1;
}

size_t
api_requests_in_flight(const struct api *api)
{
	return api->in_flight;
}

void
api_free(struct api *api)
{
	if (api == NULL)
		return;
	api_stop_accepting(api);
	if (api->http != NULL)
		evhttp_free(api->http);
	api_conns_free(api->conns);
	for (size_t i = 0; i < api->listener_count; i++)
		free(api->listeners[i].name);
	free(api->listeners);
	free(api->unix_socket);
	free(api->request_counts);
	api_heartbeat_free(api->heartbeat);
	apikey_free(api->keys);
	ably_keys_free(api->ably_keys);
	free(api);
}
