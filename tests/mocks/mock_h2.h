/*
 * The shared core of the mock APNs and FCM servers: a TLS + HTTP/2 server (ALPN h2 only),
 * the rules that script failures, the record of requests, counters, and the command line
 * options both mocks take. The control API that drives all of this is in mock_control.c.
 *
 * A mock is one process and one thread: everything runs on one event base, so the core
 * keeps a single struct mock_server and hands it to the mode (mock_apns.c, mock_fcm.c),
 * which decides the answer to each complete request with mock_stream_finish().
 *
 * The hot path does no per-request system call beyond the socket I/O, no scan of all
 * requests or connections, and with --no-record keeps nothing once a stream closes.
 */
#ifndef PUSHRELAY_MOCK_H2_H
#define PUSHRELAY_MOCK_H2_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <getopt.h>

#include <event2/event.h>
#include <jansson.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#ifndef TAILQ_FOREACH_SAFE	/* not in glibc's sys/queue.h */
#define TAILQ_FOREACH_SAFE(var, head, field, next) \
	for ((var) = TAILQ_FIRST(head); \
	    (var) != NULL && ((next) = TAILQ_NEXT(var, field), 1); (var) = (next))
#endif

#define MOCK_STATUS_MAX 600
/* Request bodies are kept up to this size; beyond it only their length is counted. */
#define MOCK_BODY_KEEP (1024 * 1024)
/* Response headers a mode may add besides :status. */
#define MOCK_RESPONSE_HEADERS 6

enum mock_action {
	MOCK_ACTION_RESPOND = 0,	/* answer with the status */
	MOCK_ACTION_GOAWAY,		/* answer (if a status is set), then GOAWAY */
	MOCK_ACTION_RESET,		/* drop the TCP connection with a RST, no GOAWAY */
	MOCK_ACTION_RST_STREAM,		/* RST_STREAM on the request's stream */
};

/* Which endpoint a rule applies to (FCM has two; APNs only the first). */
enum mock_endpoint {
	MOCK_ENDPOINT_SEND = 0,
	MOCK_ENDPOINT_TOKEN,
};

/* A scripted answer, matched by device token (or any) in insertion order. */
struct mock_rule {
	TAILQ_ENTRY(mock_rule) entry;
	uint64_t id;
	char *token;			/* NULL: every request */
	enum mock_endpoint endpoint;
	int status;			/* 0: no answer of its own, only delay/action */
	char *reason;			/* APNs reason, FCM message text */
	int64_t timestamp;		/* APNs 410 timestamp in ms; -1: now */
	int retry_after;		/* seconds for retry-after; -1: none */
	char *retry_after_text;		/* retry-after sent as is (wins over retry_after) */
	int delay_ms;
	int times;			/* matches left; -1: unlimited */
	enum mock_action action;
	int h2_error;			/* error code of the RST_STREAM or GOAWAY; -1: default */
	char *topic;			/* APNs: the token belongs to this topic */
	char *error_code;		/* FCM errorCode, e.g. UNREGISTERED */
	char *google_status;		/* FCM status string, e.g. NOT_FOUND */
	char *oauth_error;		/* FCM token endpoint: "error" */
	char *oauth_description;	/* FCM token endpoint: "error_description" */
};
TAILQ_HEAD(mock_rules, mock_rule);

struct mock_header {
	uint32_t name;			/* offsets into the stream's header arena */
	uint32_t name_len;
	uint32_t value;
	uint32_t value_len;
};

struct mock_conn;

/* One request and its answer. */
struct mock_stream {
	TAILQ_ENTRY(mock_stream) entry;
	struct mock_conn *conn;
	int32_t id;

	/* The request: headers live in one arena, NUL-terminated. */
	char *arena;
	size_t arena_len;
	size_t arena_size;
	char arena_inline[512];
	struct mock_header *headers;
	size_t nheaders;
	size_t headers_size;
	struct mock_header headers_inline[16];
	int duplicate_header;		/* a regular header came twice */
	const char *method;		/* pseudo-headers, set when the request is complete */
	const char *path;
	const char *authority;
	char *body;
	size_t body_len;		/* bytes received, may exceed what is kept */
	size_t body_size;

	/* The answer. */
	int finished;
	int status;
	enum mock_action action;
	int h2_error;
	char status_text[4];
	nghttp2_nv nva[1 + MOCK_RESPONSE_HEADERS];
	size_t nnv;
	char *response_strings[2 * MOCK_RESPONSE_HEADERS];
	char *response_body;
	size_t response_len;
	size_t response_sent;
	struct event *delay;
};
TAILQ_HEAD(mock_streams, mock_stream);

/* One client connection. */
struct mock_conn {
	TAILQ_ENTRY(mock_conn) entry;
	struct mock_server *server;
	uint64_t id;
	struct bufferevent *bev;
	nghttp2_session *session;
	struct mock_streams streams;
	uint32_t open_streams;
	int authenticated;		/* a valid provider token was seen (APNs) */
	int raised;			/* the full stream limit was advertised */
	int in_recv;			/* inside nghttp2_session_mem_recv */
	int drop;			/* close once out of nghttp2: 1 FIN, 2 RST */
	uint64_t last_token;		/* hash of the last provider token (APNs) */
	int64_t last_token_at;
};
TAILQ_HEAD(mock_conns, mock_conn);

struct mock_stats {
	uint64_t connections_accepted;
	uint64_t connections_live;
	uint64_t requests;
	uint64_t responses[MOCK_STATUS_MAX];
	uint64_t goaways;
	uint64_t resets;
	uint64_t rst_streams;
	uint32_t max_concurrent_streams;
	uint64_t jwt_verifications;
	uint64_t jwt_cache_hits;
};

struct mock_server;

/* What a mode plugs into the core. */
struct mock_mode {
	const char *name;
	/* A complete request arrived: answer it with mock_stream_finish(). */
	void (*request)(struct mock_server *server, struct mock_stream *stream);
	/* Add the mode's counters to GET /stats. */
	void (*stats)(struct mock_server *server, json_t *stats);
	/* Forget what the mode cached (DELETE /stats). */
	void (*reset)(struct mock_server *server);
};

struct mock_config {
	const char *listen;		/* host:port of the HTTP/2 listener */
	const char *control;		/* host:port of the control API */
	const char *cert;
	const char *key;
	uint32_t max_streams;		/* SETTINGS_MAX_CONCURRENT_STREAMS */
	uint32_t initial_streams;	/* before authentication; 0: max_streams at once */
	int record;
	int record_times;		/* keep arrival times (GET /arrivals) */
	int64_t now_offset;		/* seconds added to the clock */
};

/* When a complete request arrived, and which message it carried (--record-times). */
struct mock_arrival {
	int64_t time_us;		/* CLOCK_REALTIME, microseconds since the epoch */
	char *key;			/* the body's message_id, else apns-id, else "" */
};

struct mock_server {
	const struct mock_mode *mode;
	void *mode_data;
	struct mock_config config;
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	struct evconnlistener *listener;
	struct evhttp *control;
	int h2_port;
	int control_port;
	struct mock_conns conns;
	uint64_t next_conn_id;
	struct mock_rules rules;
	uint64_t next_rule_id;
	json_t *records;
	uint64_t next_seq;
	struct mock_arrival *arrivals;
	size_t narrivals;
	size_t arrivals_size;
	struct mock_stats stats;
	uint64_t random_state[2];
};

/* The long options every mock takes; getopt_long values from 0x100. */
enum mock_option {
	MOCK_OPT_LISTEN = 0x100,
	MOCK_OPT_CONTROL,
	MOCK_OPT_CERT,
	MOCK_OPT_KEY,
	MOCK_OPT_MAX_STREAMS,
	MOCK_OPT_NO_RECORD,
	MOCK_OPT_NOW_OFFSET,
	MOCK_OPT_VERBOSE,
	MOCK_OPT_RECORD_TIMES,
	MOCK_OPT_MODE_FIRST = 0x200,	/* modes number theirs from here */
};
#define MOCK_COMMON_OPTIONS \
	{ "listen", required_argument, NULL, MOCK_OPT_LISTEN }, \
	{ "control", required_argument, NULL, MOCK_OPT_CONTROL }, \
	{ "cert", required_argument, NULL, MOCK_OPT_CERT }, \
	{ "key", required_argument, NULL, MOCK_OPT_KEY }, \
	{ "max-streams", required_argument, NULL, MOCK_OPT_MAX_STREAMS }, \
	{ "no-record", no_argument, NULL, MOCK_OPT_NO_RECORD }, \
	{ "now-offset", required_argument, NULL, MOCK_OPT_NOW_OFFSET }, \
	{ "verbose", no_argument, NULL, MOCK_OPT_VERBOSE }, \
	{ "record-times", no_argument, NULL, MOCK_OPT_RECORD_TIMES }
#define MOCK_COMMON_USAGE \
	"  --listen HOST:PORT        HTTP/2 over TLS listener (default 127.0.0.1:0)\n" \
	"  --control HOST:PORT       control API, plain HTTP/1.1 (default 127.0.0.1:0)\n" \
	"  --cert PEM --key PEM      server certificate and key\n" \
	"  --max-streams N           SETTINGS_MAX_CONCURRENT_STREAMS\n" \
	"  --no-record               keep no record of requests (benchmarks)\n" \
	"  --record-times            keep arrival times and message ids (GET /arrivals)\n" \
	"  --now-offset SECONDS      shift the mock's clock\n" \
	"  --verbose                 debug logging\n"

/* Start-up. */
void mock_server_init(struct mock_server *server, const struct mock_mode *mode,
    uint32_t default_max_streams);
int mock_option_common(struct mock_server *server, int option, const char *arg);
int64_t mock_option_number(const char *option, const char *arg, int64_t min, int64_t max);
int mock_server_main(struct mock_server *server);

/* Numeric HOST:PORT or [V6]:PORT (port 0 allowed); 0 or -1. */
int mock_parse_address(const char *address, struct sockaddr_storage *ss, socklen_t *len);
int mock_socket_port(evutil_socket_t fd);

/* The clock, shifted by --now-offset. */
int64_t mock_now(const struct mock_server *server);
int64_t mock_now_ms(const struct mock_server *server);

/* Cheap randomness (xorshift seeded from OpenSSL) for ids and tokens. */
uint64_t mock_random(struct mock_server *server);
void mock_random_uuid(struct mock_server *server, char out[37]);

/* Requests. */
const char *mock_stream_header(const struct mock_stream *stream, const char *name);
void mock_stream_add_header(struct mock_stream *stream, const char *name, const char *value);
void mock_stream_finish(struct mock_stream *stream, int status, const char *reason,
    const char *content_type, char *body, size_t len, const struct mock_rule *rule);

/* Connections. */
void mock_conn_raise_streams(struct mock_conn *conn);
void mock_conn_goaway(struct mock_conn *conn, int32_t last_stream_id, uint32_t error_code,
    const char *debug);
void mock_conn_drop(struct mock_conn *conn, int reset);
void mock_server_settings(struct mock_server *server, uint32_t max_streams);

/* Rules. */
struct mock_rule *mock_rule_match(struct mock_server *server, enum mock_endpoint endpoint,
    const char *token);
struct mock_rule *mock_rule_topic(struct mock_server *server, const char *token);
void mock_rule_add(struct mock_server *server, struct mock_rule *rule);
void mock_rules_clear(struct mock_server *server);
void mock_rule_free(struct mock_rule *rule);
json_t *mock_rule_json(const struct mock_rule *rule);
const char *mock_action_name(enum mock_action action);
int mock_action_from_string(const char *name, enum mock_action *out);

/* The record of requests, and of arrival times. */
void mock_records_clear(struct mock_server *server);
void mock_arrivals_clear(struct mock_server *server);

/* A string-keyed hash table of malloc'd values, for caches. */
struct mock_table;
uint64_t mock_hash(const char *key, size_t len);
struct mock_table *mock_table_new(size_t limit);
void *mock_table_get(struct mock_table *table, const char *key, size_t len);
void mock_table_put(struct mock_table *table, const char *key, size_t len, void *value);
void mock_table_clear(struct mock_table *table);
size_t mock_table_count(const struct mock_table *table);
void mock_table_free(struct mock_table *table);

/* JSON helpers. */
json_t *mock_json_string(const char *s, size_t len);
char *mock_json_dump(const json_t *json, size_t *len);
char *mock_json_dump_decref(json_t *json, size_t *len);

#endif
