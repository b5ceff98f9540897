/*
 * The HTTP API (libevent evhttp, JSON with jansson): listeners, routing, API-key
 * authentication, body checks and the JSON error format. daemon.c creates it and
 * hands it the modules its handlers reach; everything runs on the event loop. The
 * endpoints are in api_devices.c, api_rooms.c, api_push.c, api_events.c,
 * api_ably.c, api_feedback.c, api_health.c and api_metrics.c: they authenticate
 * (here), hand over to their module, and answer, a store read or write answered
 * from its job's done callback (api_defer). api_conn.c guards the connections.
 */
#ifndef PUSHRELAY_API_H
#define PUSHRELAY_API_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "apikey.h"
#include "event.h"
#include "model.h"

struct api_heartbeat;
struct apikeys;
struct source_http;
struct source_http_answer;
struct feedback;
struct metrics;
struct push_ledger;
struct store;
struct store_writer;

struct api_options {
	char *const *listen;		/* "host:port" */
	size_t listen_count;
	const char *unix_socket;	/* NULL for none */
	unsigned int unix_socket_mode;
	size_t max_body_size;
	int64_t request_timeout_ms;	/* first byte to body in; idle keep-alive */
	int64_t header_timeout_ms;	/* first byte to the end of the headers */
	size_t max_connections;
	size_t max_connections_per_peer;
	int metrics_public;		/* GET /metrics needs no key */
	int access_log;			/* a line per request at info */
};

struct api;

/* What a handler gets: the request, the ids from the path, the parsed body. */
struct api_request {
	struct api *api;
	struct evhttp_request *req;
	enum evhttp_cmd_type method;
	const char *path;		/* decoded path, without the query */
	const char *route;		/* the matched route's pattern; NULL: none */
	const char *params[4];		/* decoded {ids} from the path, in order */
	json_t *body;			/* parsed JSON object; NULL without one, or unparsed */
	const char *body_text;		/* its bytes as received (not NUL-terminated) */
	size_t body_len;
	struct store_writer *writer;	/* store writes, answered from a done callback */
	struct store_writer *reader;	/* store reads, likewise (see api_defer) */
	const struct api_heartbeat *heartbeat;
	struct source_http *events;	/* the HTTP source, NULL when [events] is off */
	int ably_enabled;
	const struct ably_keys *ably_keys;	/* NULL: Ably signatures are not checked */
	struct source_http *ably_source;	/* where Ably webhooks go (the HTTP source) */
	struct push_ledger *pushes;	/* POST/GET /v1/push; NULL: they answer 503 */
	struct feedback *feedback;	/* GET /v1/feedback; NULL: it answers 503 */
	const struct metrics *metrics;	/* GET /metrics, /v1/stats; NULL: API figures only */
	int64_t started_ms;		/* monotonic: when dispatch began, for the access log */
	char key_id[APIKEY_ID_SIZE];	/* the API key's id (apikey.h), "" when none */
};

typedef void api_handler_fn(struct api_request *r);

/*
 * Print every route, one a line: method, path pattern, and "key" (it needs an API
 * key), "public" or "metrics" (public while [api] metrics_public is on).
 */
void api_print_routes(FILE *out);
/*
 * Bind every listener; -1 with err set if one cannot be bound. Handlers reach the
 * store only through jobs: writes on writer (group commit), reads on reader.
 */
struct api *api_new(struct event_base *base, const struct api_options *options,
    struct store_writer *writer, struct store_writer *reader, struct apikeys *keys,
    char *err, size_t errlen);
/* Replace the API keys (the API takes ownership and frees the old ones). */
void api_set_keys(struct api *api, struct apikeys *keys);
/* Ably webhooks: on or off, the signing keys (taken over; NULL: none), the source. */
struct ably_keys;
void api_set_ably(struct api *api, int enabled, struct ably_keys *keys,
    struct source_http *source);
/* Where POST /v1/events batches go (NULL: the endpoint answers 404). */
void api_set_events_source(struct api *api, struct source_http *source);
/*
 * The modules the handlers reach besides the store: the push ledger, the feedback
 * events and what a scrape reads. Each may be NULL; each must outlive the API.
 */
void api_set_modules(struct api *api, struct push_ledger *pushes, struct feedback *feedback,
    const struct metrics *metrics);
/* Stop accepting connections; answers go out with "Connection: close" from now on. */
void api_stop_accepting(struct api *api);
/* Requests received and not yet completely answered. */
size_t api_requests_in_flight(const struct api *api);
/* Answers sent, by route pattern ("unmatched" for no route), method and status. */
struct api_request_count {
	const char *route;
	const char *method;
	int status;
	uint64_t count;
};
/* The connection guard's figures (open connections, closes, refusals). */
struct api_conn_stats;
void api_get_connection_stats(const struct api *api, struct api_conn_stats *stats);
/* The counters; valid until the next request. */
size_t api_get_request_counts(const struct api *api, const struct api_request_count **counts);
void api_free(struct api *api);

/*
 * An answer given later, after work off the loop (e.g. a commit by the store writer):
 * every handler that needs the store submits a job and answers from its done
 * callback. The deferred copy keeps the request but not its params or body: a job
 * takes copies of what it needs. If the client goes away first,
 * api_deferred_request() returns NULL; either way the callback frees the deferred.
 */
struct api_deferred;
struct api_deferred *api_defer(struct api_request *r);
/* The request to answer with api_reply_*(), or NULL if the client has gone. */
struct api_request *api_deferred_request(struct api_deferred *deferred);
void api_deferred_free(struct api_deferred *deferred);

/* Does the request carry one of our API keys? */
int api_request_authorized(struct api_request *r);
/*
 * Parse the body text, checked but left unparsed for the handler, into r->body:
 * 0, or -1 answered 400 if it is not a JSON object.
 */
int api_parse_body(struct api_request *r);

/* Answer with a JSON value (reference stolen). */
void api_reply_json(struct api_request *r, int status, json_t *body);
/*
 * Answer with JSON text made ahead, with its final newline, as a store job renders
 * its answer off the loop (model_device_render): taken over; NULL: a 500.
 */
void api_reply_rendered(struct api_request *r, int status, char *text, size_t len);
/* Answer with no body (204). */
void api_reply_empty(struct api_request *r, int status);
/* Answer with a body of another content type. */
void api_reply_text(struct api_request *r, int status, const char *content_type,
    const char *body, size_t len);
/* Longest error message and field name in an answer, in bytes (cut on a character). */
#define API_ERROR_MESSAGE_MAX 512
#define API_ERROR_FIELD_MAX 256
/*
 * The error object {"code","message"[,"field"]}, message and field made valid UTF-8
 * and cut to the limits above; NULL only when memory runs out.
 */
json_t *api_error_object(const char *code, const char *field, const char *message);
/* Answer {"error":{"code","message"[,"field"]}}; a fixed 500 if it cannot be built. */
void api_reply_error(struct api_request *r, int status, const char *code, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void api_reply_model_error(struct api_request *r, const struct model_error *err);
/* Answer a store failure: 404 for STORE_ENOTFOUND with what, 503 otherwise. */
void api_reply_store_error(struct api_request *r, int error, const char *what);

/* Endpoints. */
api_handler_fn api_device_put, api_device_get, api_device_delete;
api_handler_fn api_client_devices_get, api_client_devices_delete;
api_handler_fn api_member_put, api_member_delete, api_members_get, api_member_prefs_put;
api_handler_fn api_healthz, api_readyz;
api_handler_fn api_push_post, api_push_get;
api_handler_fn api_feedback_get;
api_handler_fn api_events_post, api_ably_post;
api_handler_fn api_metrics_get, api_stats_get;
/*
 * The HTTP source's answer to a posted batch (source_http_answer_fn), given to the
 * request deferred in arg (api_defer(), freed here): 202 {"accepted", "skipped"}
 * once committed, or the error the source names.
 */
void api_events_answered(const struct source_http_answer *answer, void *arg);

/*
 * A check that /readyz runs: NULL when ready, else why not, in at most size bytes of
 * buf ("disconnected"). Runs on the loop, so it must only read state, never wait.
 */
typedef const char *api_ready_check_fn(void *arg, char *buf, size_t size);
/*
 * Add a check to /readyz under name, its key in the answer ("redis-pubsub": "ok" or
 * the reason). The check named "store" gives the value of the "store" key, which is
 * always there ("ok" without such a check). name and arg must outlive the API.
 */
void api_add_ready_check(struct api *api, const char *name, api_ready_check_fn *check,
    void *arg);

/* The readiness probe's loop heartbeat: a timer that measures how late it runs. */
struct api_heartbeat *api_heartbeat_new(struct event_base *base);
/* The worst lateness of the timer over its last two periods, in ms. */
int64_t api_heartbeat_lag_ms(const struct api_heartbeat *heartbeat);
void api_heartbeat_free(struct api_heartbeat *heartbeat);
/* Add a readiness check to the heartbeat (see api_add_ready_check). */
void api_heartbeat_add_check(struct api_heartbeat *heartbeat, const char *name,
    api_ready_check_fn *check, void *arg);

#endif
