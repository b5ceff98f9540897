/*
 * The control API of the mocks: plain HTTP/1.1 with JSON bodies (evhttp, jansson) on a
 * loopback port of its own, used by the tests to read what the mock received and to
 * script its failures. It runs on the mock's event base, so it needs no locking.
 *
 *	GET    /requests	{"requests":[{"seq":1,"connection":1,"stream":1,...}]}
 *	DELETE /requests	forget them
 *	GET    /rules		{"rules":[...]}
 *	POST   /rules		one rule object or an array of them; {"ids":[...]}
 *	DELETE /rules		forget them
 *	POST   /settings	{"max_concurrent_streams":N}
 *	POST   /goaway		{"last_stream_id":N?,"error_code":0,"debug":"..."} on every connection
 *	POST   /disconnect	{"reset":false} drop every connection (reset: with a TCP RST)
 *	GET    /stats		counters; DELETE /stats zeroes them and empties the JWT cache
 *	GET    /arrivals	{"arrivals":[[TIME_US,"MESSAGE_ID"],...]} with --record-times:
 *			when each request arrived (CLOCK_REALTIME, microseconds) and the
 *			body's message_id (else its apns-id); DELETE /arrivals forgets them
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "log.h"
#include "mock_control.h"
#include "mock_h2.h"
#include "xmalloc.h"

/* Answer with a JSON body (reference stolen). */
static void
control_reply(struct evhttp_request *req, int code, json_t *json)
{
	struct evbuffer *out = evbuffer_new();
	char *dump;
	size_t len;

	dump = mock_json_dump_decref(json, &len);
	evbuffer_add(out, dump, len);
	evbuffer_add(out, "\n", 1);
	free(dump);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "application/json");
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 201 ? "Created" :
	    code == 404 ? "Not Found" : code == 405 ? "Method Not Allowed" : "Bad Request", out);
	evbuffer_free(out);
}

/* Answer {"error":message}. */
static void
control_error(struct evhttp_request *req, int code, const char *message)
{
	control_reply(req, code, json_pack("{s:s}", "error", message));
}

/* The request body as JSON; an empty body is an empty object. NULL on bad JSON. */
static json_t *
control_body(struct evhttp_request *req, char *err, size_t errlen)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t error;
	json_t *json;

	if (len == 0)
		return json_object();
	json = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &error);
	if (json == NULL)
		snprintf(err, errlen, "bad JSON: %s", error.text);
	return json;
}

/* Take an optional string member. */
static int
rule_string(json_t *json, const char *key, char **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(json, key);

	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s: expected a string", key);
		return -1;
	}
	*out = xstrdup(json_string_value(v));
	return 0;
}

/* Take an optional integer member within bounds. */
static int
rule_integer(json_t *json, const char *key, json_int_t min, json_int_t max, int64_t *out,
    char *err, size_t errlen)
{
	json_t *v = json_object_get(json, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		snprintf(err, errlen, "%s: expected an integer from %lld to %lld", key,
		    (long long)min, (long long)max);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

static const char *const rule_keys[] = {
	"token", "endpoint", "status", "reason", "message", "timestamp", "retry_after",
	"retry_after_text",
	"delay_ms", "times", "action", "h2_error", "topic", "error_code", "google_status",
	"error", "error_description", NULL,
};

/* Build a rule from its JSON; unknown keys are errors so typos in tests show. */
static struct mock_rule *
rule_parse(json_t *json, char *err, size_t errlen)
{
	struct mock_rule *rule;
	const char *key, *const *k;
	json_t *value;
	char *endpoint = NULL, *action = NULL;
	int64_t status = 0, timestamp = -1, retry_after = -1, delay = 0, times = -1;
	int64_t h2_error = -1;

	if (!json_is_object(json)) {
		snprintf(err, errlen, "a rule is an object");
		return NULL;
	}
	json_object_foreach(json, key, value) {
		for (k = rule_keys; *k != NULL && strcmp(*k, key) != 0; k++)
			;
		if (*k == NULL) {
			snprintf(err, errlen, "unknown rule key \"%s\"", key);
			return NULL;
		}
	}
	rule = xcalloc(1, sizeof *rule);
	if (rule_string(json, "token", &rule->token, err, errlen) != 0 ||
	    rule_string(json, "endpoint", &endpoint, err, errlen) != 0 ||
	    rule_string(json, "action", &action, err, errlen) != 0 ||
	    rule_string(json, "reason", &rule->reason, err, errlen) != 0 ||
	    (rule->reason == NULL &&
	    rule_string(json, "message", &rule->reason, err, errlen) != 0) ||
	    rule_string(json, "topic", &rule->topic, err, errlen) != 0 ||
	    rule_string(json, "retry_after_text", &rule->retry_after_text, err, errlen) != 0 ||
	    rule_string(json, "error_code", &rule->error_code, err, errlen) != 0 ||
	    rule_string(json, "google_status", &rule->google_status, err, errlen) != 0 ||
	    rule_string(json, "error", &rule->oauth_error, err, errlen) != 0 ||
	    rule_string(json, "error_description", &rule->oauth_description, err,
	    errlen) != 0 ||
	    rule_integer(json, "status", 100, 599, &status, err, errlen) != 0 ||
	    rule_integer(json, "timestamp", 0, INT64_MAX, &timestamp, err, errlen) != 0 ||
	    rule_integer(json, "retry_after", 0, INT32_MAX, &retry_after, err, errlen) != 0 ||
	    rule_integer(json, "delay_ms", 0, 600000, &delay, err, errlen) != 0 ||
	    rule_integer(json, "times", 1, INT32_MAX, &times, err, errlen) != 0 ||
	    rule_integer(json, "h2_error", 0, INT32_MAX, &h2_error, err, errlen) != 0)
		goto fail;
	rule->status = (int)status;
	rule->timestamp = timestamp;
	rule->retry_after = (int)retry_after;
	rule->delay_ms = (int)delay;
	rule->times = (int)times;
	rule->h2_error = (int)h2_error;
	if (endpoint != NULL) {
		if (strcmp(endpoint, "send") == 0)
			rule->endpoint = MOCK_ENDPOINT_SEND;
		else if (strcmp(endpoint, "token") == 0)
			rule->endpoint = MOCK_ENDPOINT_TOKEN;
		else {
			snprintf(err, errlen, "endpoint: expected \"send\" or \"token\"");
			goto fail;
		}
	}
	if (action != NULL && mock_action_from_string(action, &rule->action) != 0) {
		snprintf(err, errlen, "action: expected respond, goaway, reset or rst_stream");
		goto fail;
	}
	if (rule->topic != NULL && rule->token == NULL) {
		snprintf(err, errlen, "topic: a registration needs a token");
		goto fail;
	}
	free(endpoint);
	free(action);
	return rule;

fail:
	free(endpoint);
	free(action);
	mock_rule_free(rule);
	return NULL;
}

/* POST /rules: one rule or an array; all or none are added. */
static void
control_rules_add(struct mock_server *server, struct evhttp_request *req)
{
	struct mock_rule **rules;
	json_t *body, *item, *ids;
	size_t i, n;
	char err[256];

	if ((body = control_body(req, err, sizeof err)) == NULL) {
		control_error(req, 400, err);
		return;
	}
	n = json_is_array(body) ? json_array_size(body) : 1;
	rules = xcalloc(n, sizeof *rules);
	for (i = 0; i < n; i++) {
		item = json_is_array(body) ? json_array_get(body, i) : body;
		if ((rules[i] = rule_parse(item, err, sizeof err)) == NULL) {
			while (i-- > 0)
				mock_rule_free(rules[i]);
			free(rules);
			json_decref(body);
			control_error(req, 400, err);
			return;
		}
	}
	ids = json_array();
	for (i = 0; i < n; i++) {
		mock_rule_add(server, rules[i]);
		json_array_append_new(ids, json_integer((json_int_t)rules[i]->id));
	}
	free(rules);
	json_decref(body);
	control_reply(req, 201, json_pack("{s:o}", "ids", ids));
}

/* GET /rules: every rule, spent ones with times 0. */
static void
control_rules_list(struct mock_server *server, struct evhttp_request *req)
{
	struct mock_rule *rule;
	json_t *rules = json_array();

	TAILQ_FOREACH(rule, &server->rules, entry)
		json_array_append_new(rules, mock_rule_json(rule));
	control_reply(req, 200, json_pack("{s:o}", "rules", rules));
}

/* POST /settings: a new SETTINGS_MAX_CONCURRENT_STREAMS. */
static void
control_settings(struct mock_server *server, struct evhttp_request *req)
{
	json_t *body, *v;
	char err[256];

	if ((body = control_body(req, err, sizeof err)) == NULL) {
		control_error(req, 400, err);
		return;
	}
	v = json_object_get(body, "max_concurrent_streams");
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT32_MAX) {
		json_decref(body);
		control_error(req, 400, "max_concurrent_streams: expected an integer");
		return;
	}
	mock_server_settings(server, (uint32_t)json_integer_value(v));
	json_decref(body);
	control_reply(req, 200, json_pack("{s:I}", "max_concurrent_streams",
	    (json_int_t)server->config.max_streams));
}

/* POST /goaway on every live connection. */
static void
control_goaway(struct mock_server *server, struct evhttp_request *req)
{
	struct mock_conn *conn, *next;
	json_t *body, *last, *code, *debug;
	char err[256];
	size_t n = 0;

	if ((body = control_body(req, err, sizeof err)) == NULL) {
		control_error(req, 400, err);
		return;
	}
	last = json_object_get(body, "last_stream_id");
	code = json_object_get(body, "error_code");
	debug = json_object_get(body, "debug");
	if ((last != NULL && (!json_is_integer(last) || json_integer_value(last) < 0 ||
	    json_integer_value(last) > INT32_MAX)) ||
	    (code != NULL && (!json_is_integer(code) || json_integer_value(code) < 0 ||
	    json_integer_value(code) > UINT32_MAX)) ||
	    (debug != NULL && !json_is_string(debug))) {
		json_decref(body);
		control_error(req, 400, "expected last_stream_id, error_code integers, "
		    "debug string");
		return;
	}
	TAILQ_FOREACH_SAFE(conn, &server->conns, entry, next) {
		if (conn->session == NULL)
			continue;
		n++;
		mock_conn_goaway(conn, last != NULL ? (int32_t)json_integer_value(last) : -1,
		    code != NULL ? (uint32_t)json_integer_value(code) : 0,
		    debug != NULL ? json_string_value(debug) : NULL);
	}
	json_decref(body);
	control_reply(req, 200, json_pack("{s:I}", "connections", (json_int_t)n));
}

/* POST /disconnect: drop every connection. */
static void
control_disconnect(struct mock_server *server, struct evhttp_request *req)
{
	struct mock_conn *conn;
	json_t *body;
	char err[256];
	size_t n = 0;
	int reset;

	if ((body = control_body(req, err, sizeof err)) == NULL) {
		control_error(req, 400, err);
		return;
	}
	reset = json_is_true(json_object_get(body, "reset"));
	json_decref(body);
	while ((conn = TAILQ_FIRST(&server->conns)) != NULL) {
		n++;
		mock_conn_drop(conn, reset);
	}
	control_reply(req, 200, json_pack("{s:I}", "connections", (json_int_t)n));
}

/* GET /stats: the counters, and the mode's own. */
static void
control_stats(struct mock_server *server, struct evhttp_request *req)
{
	const struct mock_stats *s = &server->stats;
	json_t *stats, *responses;
	char status[8];
	size_t i;

	responses = json_object();
	for (i = 0; i < MOCK_STATUS_MAX; i++) {
		if (s->responses[i] == 0)
			continue;
		snprintf(status, sizeof status, "%zu", i);
		json_object_set_new(responses, status, json_integer((json_int_t)s->responses[i]));
	}
	stats = json_pack("{s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "connections_accepted", (json_int_t)s->connections_accepted,
	    "connections_live", (json_int_t)s->connections_live,
	    "requests", (json_int_t)s->requests,
	    "responses", responses,
	    "goaways", (json_int_t)s->goaways,
	    "resets", (json_int_t)s->resets,
	    "rst_streams", (json_int_t)s->rst_streams,
	    "max_concurrent_streams_observed", (json_int_t)s->max_concurrent_streams,
	    "max_concurrent_streams", (json_int_t)server->config.max_streams,
	    "jwt_verifications", (json_int_t)s->jwt_verifications,
	    "jwt_cache_hits", (json_int_t)s->jwt_cache_hits,
	    "records", (json_int_t)json_array_size(server->records),
	    "recording", (json_int_t)server->config.record);
	if (stats == NULL)
		fatalx("out of memory");
	if (server->mode->stats != NULL)
		server->mode->stats(server, stats);
	control_reply(req, 200, stats);
}

/* Zero the counters (live connections stay counted) and empty the mode's caches. */
static void
control_stats_clear(struct mock_server *server, struct evhttp_request *req)
{
	uint64_t live = server->stats.connections_live;

	memset(&server->stats, 0, sizeof server->stats);
	server->stats.connections_live = live;
	if (server->mode->reset != NULL)
		server->mode->reset(server);
	control_reply(req, 200, json_object());
}

/* GET /arrivals: [time_us, key] per request, in arrival order. */
static void
control_arrivals(struct mock_server *server, struct evhttp_request *req)
{
	json_t *list = json_array(), *pair;
	size_t i;

	if (list == NULL)
		fatalx("out of memory");
	for (i = 0; i < server->narrivals; i++) {
		pair = json_pack("[Is]", (json_int_t)server->arrivals[i].time_us,
		    server->arrivals[i].key);
		if (pair == NULL)
			pair = json_pack("[Is]", (json_int_t)server->arrivals[i].time_us, "");
		if (pair == NULL || json_array_append_new(list, pair) != 0)
			fatalx("out of memory");
	}
	control_reply(req, 200, json_pack("{s:o}", "arrivals", list));
}

/* Route a control request by path and method. */
static void
control_dispatch(struct evhttp_request *req, void *arg)
{
	struct mock_server *server = arg;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (path == NULL)
		path = "";
	if (strcmp(path, "/requests") == 0) {
		if (method == EVHTTP_REQ_GET) {
			control_reply(req, 200, json_pack("{s:O}", "requests", server->records));
			return;
		}
		if (method == EVHTTP_REQ_DELETE) {
			mock_records_clear(server);
			control_reply(req, 200, json_object());
			return;
		}
	} else if (strcmp(path, "/rules") == 0) {
		if (method == EVHTTP_REQ_GET) {
			control_rules_list(server, req);
			return;
		}
		if (method == EVHTTP_REQ_POST) {
			control_rules_add(server, req);
			return;
		}
		if (method == EVHTTP_REQ_DELETE) {
			mock_rules_clear(server);
			control_reply(req, 200, json_object());
			return;
		}
	} else if (strcmp(path, "/settings") == 0) {
		if (method == EVHTTP_REQ_POST) {
			control_settings(server, req);
			return;
		}
	} else if (strcmp(path, "/goaway") == 0) {
		if (method == EVHTTP_REQ_POST) {
			control_goaway(server, req);
			return;
		}
	} else if (strcmp(path, "/disconnect") == 0) {
		if (method == EVHTTP_REQ_POST) {
			control_disconnect(server, req);
			return;
		}
	} else if (strcmp(path, "/arrivals") == 0) {
		if (method == EVHTTP_REQ_GET) {
			control_arrivals(server, req);
			return;
		}
		if (method == EVHTTP_REQ_DELETE) {
			mock_arrivals_clear(server);
			control_reply(req, 200, json_object());
			return;
		}
	} else if (strcmp(path, "/stats") == 0) {
		if (method == EVHTTP_REQ_GET) {
			control_stats(server, req);
			return;
		}
		if (method == EVHTTP_REQ_DELETE) {
			control_stats_clear(server, req);
			return;
		}
	} else {
		control_error(req, 404, "no such control endpoint");
		return;
	}
	control_error(req, 405, "method not allowed here");
}

/* Listen for the control API on host:port; returns the bound port. */
int
mock_control_start(struct mock_server *server, const char *address)
{
	struct evconnlistener *listener;
	struct sockaddr_storage ss;
	socklen_t len;

	if (mock_parse_address(address, &ss, &len) != 0)
		fatalx("--control: expected a numeric HOST:PORT, got %s", address);
	server->control = evhttp_new(server->base);
	if (server->control == NULL)
		fatalx("evhttp_new failed");
	evhttp_set_allowed_methods(server->control, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(server->control, 16 * 1024 * 1024);
	evhttp_set_gencb(server->control, control_dispatch, server);
	/* evhttp frees the listener with itself. */
	listener = evconnlistener_new_bind(server->base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 128,
	    (struct sockaddr *)&ss, (int)len);
	if (listener == NULL)
		fatal("cannot listen on %s", address);
	if (evhttp_bind_listener(server->control, listener) == NULL)
		fatalx("evhttp_bind_listener failed");
	return mock_socket_port(evconnlistener_get_fd(listener));
}
