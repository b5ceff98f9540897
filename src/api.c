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
#include "ably.h"
#include "apikey.h"
#include "config.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

#define API_PATH_SEGMENTS_MAX 8
#define API_HEADERS_MAX_SIZE (16 * 1024)

enum api_route_flags {
	API_ROUTE_AUTH = 1 << 0,	/* needs an API key */
	API_ROUTE_BODY = 1 << 1,	/* takes a JSON object body */
	API_ROUTE_BODY_OPTIONAL = 1 << 2, /* the body may be absent */
	API_ROUTE_RAW = 1 << 3,		/* the handler reads the body itself (size checked) */
	API_ROUTE_BODY_TEXT = 1 << 4,	/* with BODY: checked, parsed by the handler */
};

struct api_route {
	const char *pattern;		/* "/v1/devices/{device_id}" */
	enum evhttp_cmd_type method;
	api_handler_fn *handler;
	int flags;
};

static const struct api_route api_routes[] = {
	{ "/healthz", EVHTTP_REQ_GET, api_healthz, 0 },
	{ "/readyz", EVHTTP_REQ_GET, api_readyz, 0 },
	{ "/v1/devices/{device_id}", EVHTTP_REQ_PUT, api_device_put,
	    API_ROUTE_AUTH | API_ROUTE_BODY },
	{ "/v1/devices/{device_id}", EVHTTP_REQ_GET, api_device_get, API_ROUTE_AUTH },
	{ "/v1/devices/{device_id}", EVHTTP_REQ_DELETE, api_device_delete, API_ROUTE_AUTH },
	{ "/v1/clients/{client_id}/devices", EVHTTP_REQ_GET, api_client_devices_get,
	    API_ROUTE_AUTH },
	{ "/v1/clients/{client_id}/devices", EVHTTP_REQ_DELETE, api_client_devices_delete,
	    API_ROUTE_AUTH },
	{ "/v1/rooms/{room_id}/members", EVHTTP_REQ_GET, api_members_get, API_ROUTE_AUTH },
	{ "/v1/rooms/{room_id}/members/{client_id}", EVHTTP_REQ_PUT, api_member_put,
	    API_ROUTE_AUTH | API_ROUTE_BODY | API_ROUTE_BODY_OPTIONAL },
	{ "/v1/rooms/{room_id}/members/{client_id}", EVHTTP_REQ_DELETE, api_member_delete,
	    API_ROUTE_AUTH },
	{ "/v1/rooms/{room_id}/members/{client_id}/prefs", EVHTTP_REQ_PUT,
	    api_member_prefs_put, API_ROUTE_AUTH | API_ROUTE_BODY },
	{ "/v1/push", EVHTTP_REQ_POST, api_push_post, API_ROUTE_AUTH | API_ROUTE_BODY },
	{ "/v1/push/{push_id}", EVHTTP_REQ_GET, api_push_get, API_ROUTE_AUTH },
	{ "/v1/feedback", EVHTTP_REQ_GET, api_feedback_get, API_ROUTE_AUTH },
	/* Batches of events: the handler reads the common ones without a jansson tree. */
	{ "/v1/events", EVHTTP_REQ_POST, api_events_post,
	    API_ROUTE_AUTH | API_ROUTE_BODY | API_ROUTE_BODY_TEXT },
	/* Ably signs its webhooks: the handler checks the signature or the API key. */
	{ "/v1/ingest/ably", EVHTTP_REQ_POST, api_ably_post, API_ROUTE_RAW },
	/* Metrics: /metrics for Prometheus (no key, like /healthz), /v1/stats as JSON. */
	{ "/metrics", EVHTTP_REQ_GET, api_metrics_get, 0 },
	{ "/v1/stats", EVHTTP_REQ_GET, api_stats_get, API_ROUTE_AUTH },
};

struct api_listener {
	struct evhttp_bound_socket *handle;
	char *name;			/* for the log */
};

struct api {
	struct event_base *base;
	struct evhttp *http;
	struct store *store;
	struct apikeys *keys;
	struct api_heartbeat *heartbeat;
	struct source *events;
	int events_max_batch;
	int ably_enabled;
	struct ably_keys *ably_keys;
	struct source *ably_source;
	struct api_listener *listeners;
	size_t listener_count;
	char *unix_socket;
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
	{ 415, "Unsupported Media Type" }, { 500, "Internal Server Error" },
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

size_t
api_get_request_counts(const struct api *api, const struct api_request_count **counts)
{
	*counts = api->request_counts;
	return api->request_count_len;
}

/* Send a response: status, optional buffer, access log line at debug. */
static void
api_send(struct api_request *r, int status, struct evbuffer *body)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(r->req);
	char code[8];

	api_count_request(r->api, r->route, method_name(r->method), status);
	if (r->api->closing)
		evhttp_add_header(headers, "Connection", "close");
	evhttp_send_reply(r->req, status, status_reason(status), body);
	if (log_get_level() >= LOG_LEVEL_DEBUG) {
		snprintf(code, sizeof code, "%d", status);
		log_debug("request", "method", method_name(r->method), "path", r->path, "status",
		    code, NULL);
	}
}

void
api_reply_json(struct api_request *r, int status, json_t *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *text = json_dumps(body, JSON_COMPACT);

	if (buf == NULL || text == NULL)
		fatalx("out of memory building a response");
	evbuffer_add(buf, text, strlen(text));
	evbuffer_add(buf, "\n", 1);
	free(text);
	json_decref(body);
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
	    "application/json");
	api_send(r, status, buf);
	evbuffer_free(buf);
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
	struct evbuffer *buf = evbuffer_new();

	if (buf == NULL || evbuffer_add(buf, body, len) != 0)
		fatalx("out of memory building a response");
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
	    content_type);
	api_send(r, status, buf);
	evbuffer_free(buf);
}

void
api_reply_error(struct api_request *r, int status, const char *code, const char *field,
    const char *fmt, ...)
{
	char message[512];
	json_t *error;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	error = json_pack("{s:s, s:s}", "code", code, "message", message);
	if (error == NULL)
		fatalx("out of memory building an error");
	if (field != NULL)
		json_object_set_new(error, "field", json_string(field));
	api_reply_json(r, status, json_pack("{s:o}", "error", error));
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

/* Split a raw path into percent-decoded segments; -1 if it is malformed. */
static int
split_path(const char *path, char **segments, size_t *count)
{
	const char *p = path, *slash;
	size_t n = 0, decoded_len;

	if (*p != '/')
		return -1;
	p++;
	for (;;) {
		if (n == API_PATH_SEGMENTS_MAX)
			return -1;
		slash = strchr(p, '/');
		{
			size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
			char *raw = xstrndup(p, len);
			segments[n] = evhttp_uridecode(raw, 0, &decoded_len);
			free(raw);
			if (segments[n] == NULL)
				fatalx("out of memory decoding a path");
			/* An encoded NUL would cut the id short: keep it for the validator. */
			if (strlen(segments[n]) != decoded_len)
				segments[n][0] = '\001';
			n++;
		}
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	*count = n;
	return 0;
}

/* Match a route pattern against the segments, collecting {param} values. */
static int
route_match(const char *pattern, char **segments, size_t count, const char **params)
{
	char buf[128], *save = NULL, *tok;
	size_t i = 0, nparams = 0;

	snprintf(buf, sizeof buf, "%s", pattern);
	for (tok = strtok_r(buf, "/", &save); tok != NULL; tok = strtok_r(NULL, "/", &save)) {
		if (i >= count)
			return 0;
		if (tok[0] == '{') {
			if (nparams < 4)
				params[nparams++] = segments[i];
		} else if (strcmp(tok, segments[i]) != 0)
			return 0;
		i++;
	}
	return i == count;
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

/* The pattern of the first route whose path matches, whatever its method; or NULL. */
static const char *
route_pattern(char **segments, size_t count)
{
	for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
		const char *params[4];
		if (route_match(api_routes[i].pattern, segments, count, params))
			return api_routes[i].pattern;
	}
	return NULL;
}

/* Check "Authorization: Bearer <key>". */
static int
authorized(struct api *api, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	return apikey_check(api->keys, h, strlen(h));
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

/* Route one request: auth, path, method, ids, body, then the handler. */
static void
api_dispatch(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	struct api_request r;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *raw_path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	char *segments[API_PATH_SEGMENTS_MAX], allow[64] = "", *path;
	const struct api_route *route = NULL;
	size_t count = 0;
	int path_known = 0;

	api->in_flight++;
	evhttp_request_set_on_complete_cb(req, api_request_complete, api);
	memset(&r, 0, sizeof r);
	r.api = api;
	r.req = req;
	r.method = evhttp_request_get_command(req);
	r.store = api->store;
	r.heartbeat = api->heartbeat;
	r.events = api->events;
	r.events_max_batch = api->events_max_batch;
	r.ably_enabled = api->ably_enabled;
	r.ably_keys = api->ably_keys;
	r.ably_source = api->ably_source;
	path = xstrdup(raw_path != NULL && *raw_path != '\0' ? raw_path : "/");
	r.path = path;

	if (split_path(path, segments, &count) != 0) {
		api_reply_error(&r, 404, "not_found", NULL, "no such endpoint: %s", path);
		goto done;
	}
	if (strncmp(path, "/v1/", 4) == 0 && strcmp(path, "/v1/ingest/ably") != 0 &&
	    !authorized(api, req)) {
		r.route = route_pattern(segments, count);
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		    "Bearer realm=\"pushrelay\"");
		api_reply_error(&r, 401, "unauthorized", NULL, "missing or invalid API key");
		goto done;
	}
	for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
		const char *params[4] = { NULL, NULL, NULL, NULL };
		if (!route_match(api_routes[i].pattern, segments, count, params))
			continue;
		path_known = 1;
		if (r.route == NULL)
			r.route = api_routes[i].pattern;
		if (strstr(allow, method_name(api_routes[i].method)) == NULL) {
			size_t used = strlen(allow);
			snprintf(allow + used, sizeof allow - used, "%s%s", used > 0 ? ", " : "",
			    method_name(api_routes[i].method));
		}
		if (api_routes[i].method == r.method && route == NULL) {
			route = &api_routes[i];
			memcpy(r.params, params, sizeof params);
		}
	}
	if (!path_known) {
		api_reply_error(&r, 404, "not_found", NULL, "no such endpoint: %s", path);
		goto done;
	}
	if (route == NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		api_reply_error(&r, 405, "method_not_allowed", NULL,
		    "method %s is not allowed here; allowed: %s", method_name(r.method), allow);
		goto done;
	}
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
	for (size_t i = 0; i < count; i++)
		free(segments[i]);
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
	api->listeners[api->listener_count].name = xstrdup(name);
	api->listener_count++;
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
	    chmod(path, mode) == -1 || listen(fd, 128) == -1) {
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
	api->listeners[api->listener_count].name = xstrdup(path);
	api->listener_count++;
	api->unix_socket = xstrdup(path);
	log_info("listening", "unix_socket", path, NULL);
	return 0;
}

struct api *
api_new(struct event_base *base, const struct api_options *options, struct store *store,
    struct apikeys *keys, char *err, size_t errlen)
{
	struct api *api = xcalloc(1, sizeof *api);
	struct timeval tv;

	api->base = base;
	api->store = store;
	api->keys = keys;
	api->max_body_size = options->max_body_size;
	if ((api->http = evhttp_new(base)) == NULL)
		fatalx("cannot create the HTTP server");
	/*
	 * libevent 2.1 answers a body past its own limit with a plain-HTML 413 before we
	 * see it, and has no hook to change that. Keep its limit 1 MiB above ours: an
	 * oversize body up to there gets our JSON error; beyond, libevent's 413 without
	 * reading it. Either way the body is bounded in memory.
	 */
	evhttp_set_max_body_size(api->http, (ev_ssize_t)(options->max_body_size + 1024 * 1024));
	evhttp_set_max_headers_size(api->http, API_HEADERS_MAX_SIZE);
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
	    EVHTTP_REQ_PATCH);
	tv.tv_sec = options->request_timeout_ms / 1000;
	tv.tv_usec = (options->request_timeout_ms % 1000) * 1000;
	evhttp_set_timeout_tv(api->http, &tv);
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
api_set_ably(struct api *api, int enabled, struct ably_keys *keys, struct source *source)
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
	return authorized(r->api, r->req);
}

void
api_set_events_source(struct api *api, struct source *source, int max_batch)
{
	api->events = source;
	api->events_max_batch = max_batch;
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
