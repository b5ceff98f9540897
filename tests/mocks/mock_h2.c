/*
 * The shared core of the mock APNs and FCM servers: TLS and HTTP/2 on libevent, after
 * nghttp2's examples/libevent-server.c, with rules, records and counters.
 *
 * Speed matters (the mocks are the far end of the benchmarks): frames nghttp2 produces are
 * gathered into 16 KiB writes so TLS records are full, input is fed to nghttp2 straight
 * from the evbuffer chains, a request's headers live in one arena inside its stream, and
 * recording can be switched off.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "mock_control.h"
#include "mock_h2.h"
#include "xmalloc.h"

/* Gather frames into writes of this size: one full TLS record each. */
#define MOCK_WRITE_CHUNK 16384
/* Stop producing frames while this much output waits for a slow client. */
#define MOCK_OUTPUT_HIGH (1024 * 1024)

static nghttp2_session_callbacks *mock_callbacks;
static nghttp2_option *mock_h2_option;

static void conn_free(struct mock_conn *conn);
static int conn_send(struct mock_conn *conn);
static void conn_goaway(struct mock_conn *conn, int32_t last_stream_id, uint32_t error_code,
    const char *debug);

/* Set up a server with the defaults every mock shares. */
void
mock_server_init(struct mock_server *server, const struct mock_mode *mode,
    uint32_t default_max_streams)
{
	memset(server, 0, sizeof *server);
	server->mode = mode;
	server->config.listen = "127.0.0.1:0";
	server->config.control = "127.0.0.1:0";
	server->config.max_streams = default_max_streams;
	server->config.record = 1;
	TAILQ_INIT(&server->conns);
	TAILQ_INIT(&server->rules);
	server->records = json_array();
	if (server->records == NULL)
		fatalx("out of memory");
	if (RAND_bytes((unsigned char *)server->random_state, sizeof server->random_state) != 1)
		fatalx("RAND_bytes failed");
	server->random_state[0] |= 1;
}

/* Parse a number option or die. */
int64_t
mock_option_number(const char *option, const char *arg, int64_t min, int64_t max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v < min || v > max)
		fatalx("--%s: expected a number from %lld to %lld, got \"%s\"", option,
		    (long long)min, (long long)max, arg);
	return v;
}

/* Handle an option every mock takes; 1 if it was one, 0 if not. */
int
mock_option_common(struct mock_server *server, int option, const char *arg)
{
	switch (option) {
	case MOCK_OPT_LISTEN:
		server->config.listen = arg;
		return 1;
	case MOCK_OPT_CONTROL:
		server->config.control = arg;
		return 1;
	case MOCK_OPT_CERT:
		server->config.cert = arg;
		return 1;
	case MOCK_OPT_KEY:
		server->config.key = arg;
		return 1;
	case MOCK_OPT_MAX_STREAMS:
		server->config.max_streams = (uint32_t)mock_option_number("max-streams", arg, 1,
		    INT32_MAX);
		return 1;
	case MOCK_OPT_NO_RECORD:
		server->config.record = 0;
		return 1;
	case MOCK_OPT_NOW_OFFSET:
		server->config.now_offset = mock_option_number("now-offset", arg,
		    -100L * 365 * 86400, 100L * 365 * 86400);
		return 1;
	case MOCK_OPT_VERBOSE:
		log_set_level(LOG_LEVEL_DEBUG);
		return 1;
	case MOCK_OPT_RECORD_TIMES:
		server->config.record_times = 1;
		return 1;
	}
	return 0;
}

/* Seconds since the epoch, shifted by --now-offset (time() is a vDSO call, no syscall). */
int64_t
mock_now(const struct mock_server *server)
{
	return (int64_t)time(NULL) + server->config.now_offset;
}

/* Milliseconds since the epoch, shifted by --now-offset. */
int64_t
mock_now_ms(const struct mock_server *server)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec + server->config.now_offset) * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift128+: not for secrets, only for ids that must differ. */
uint64_t
mock_random(struct mock_server *server)
{
	uint64_t s1 = server->random_state[0];
	uint64_t s0 = server->random_state[1];

	server->random_state[0] = s0;
	s1 ^= s1 << 23;
	server->random_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return server->random_state[1] + s0;
}

/* A random version 4 UUID in canonical lower-case form. */
void
mock_random_uuid(struct mock_server *server, char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	uint64_t r[2];
	size_t i, o = 0;

	r[0] = mock_random(server);
	r[1] = mock_random(server);
	memcpy(b, r, sizeof b);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
	}
	out[o] = '\0';
}

/* ---- JSON helpers ---- */

/* A JSON string of possibly invalid UTF-8: bytes jansson refuses become '?'. */
json_t *
mock_json_string(const char *s, size_t len)
{
	json_t *json;
	char *copy;
	size_t i;

	json = json_stringn(s, len);
	if (json != NULL)
		return json;
	copy = xstrndup(s, len);
	for (i = 0; i < len; i++) {
		if ((unsigned char)copy[i] >= 0x80 || copy[i] == '\0')
			copy[i] = '?';
	}
	json = json_stringn(copy, len);
	free(copy);
	if (json == NULL)
		fatalx("out of memory");
	return json;
}

/* Compact JSON as an xmalloc'd string (freed with free()). */
char *
mock_json_dump(const json_t *json, size_t *len)
{
	char *dump, *copy;

	dump = json_dumps(json, JSON_COMPACT);
	if (dump == NULL)
		fatalx("out of memory");
	copy = xstrdup(dump);
	free(dump);
	if (len != NULL)
		*len = strlen(copy);
	return copy;
}

/* Compact JSON of a value whose reference is taken (NULL: out of memory). */
char *
mock_json_dump_decref(json_t *json, size_t *len)
{
	char *dump;

	if (json == NULL)
		fatalx("out of memory");
	dump = mock_json_dump(json, len);
	json_decref(json);
	return dump;
}

/* ---- hash table ---- */

struct mock_table_entry {
	struct mock_table_entry *next;
	uint64_t hash;
	void *value;
	size_t len;
	char key[];
};

struct mock_table {
	struct mock_table_entry **buckets;
	size_t nbuckets;		/* a power of two */
	size_t count;
	size_t limit;			/* clear everything when full: it is a cache */
};

/* FNV-1a, 64 bits. */
uint64_t
mock_hash(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* A table that forgets everything once it holds limit entries. */
struct mock_table *
mock_table_new(size_t limit)
{
	struct mock_table *table = xcalloc(1, sizeof *table);

	table->nbuckets = 64;
	table->buckets = xcalloc(table->nbuckets, sizeof *table->buckets);
	table->limit = limit;
	return table;
}

/* The value stored under key, or NULL. */
void *
mock_table_get(struct mock_table *table, const char *key, size_t len)
{
	struct mock_table_entry *e;
	uint64_t h = mock_hash(key, len);

	for (e = table->buckets[h & (table->nbuckets - 1)]; e != NULL; e = e->next) {
		if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
			return e->value;
	}
	return NULL;
}

/* Double the buckets. */
static void
table_grow(struct mock_table *table)
{
	struct mock_table_entry **buckets, *e, *next;
	size_t n = table->nbuckets * 2, i;

	buckets = xcalloc(n, sizeof *buckets);
	for (i = 0; i < table->nbuckets; i++) {
		for (e = table->buckets[i]; e != NULL; e = next) {
			next = e->next;
			e->next = buckets[e->hash & (n - 1)];
			buckets[e->hash & (n - 1)] = e;
		}
	}
	free(table->buckets);
	table->buckets = buckets;
	table->nbuckets = n;
}

/* Store value (malloc'd, owned by the table) under key, replacing an older one. */
void
mock_table_put(struct mock_table *table, const char *key, size_t len, void *value)
{
	struct mock_table_entry *e;
	uint64_t h = mock_hash(key, len);
	size_t b;

	for (e = table->buckets[h & (table->nbuckets - 1)]; e != NULL; e = e->next) {
		if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) {
			free(e->value);
			e->value = value;
			return;
		}
	}
	if (table->count >= table->limit)
		mock_table_clear(table);
	if (table->count + 1 > table->nbuckets / 4 * 3)
		table_grow(table);
	e = xmalloc(sizeof *e + len + 1);
	e->hash = h;
	e->value = value;
	e->len = len;
	memcpy(e->key, key, len);
	e->key[len] = '\0';
	b = h & (table->nbuckets - 1);
	e->next = table->buckets[b];
	table->buckets[b] = e;
	table->count++;
}

/* Forget every entry. */
void
mock_table_clear(struct mock_table *table)
{
	struct mock_table_entry *e, *next;
	size_t i;

	for (i = 0; i < table->nbuckets; i++) {
		for (e = table->buckets[i]; e != NULL; e = next) {
			next = e->next;
			free(e->value);
			free(e);
		}
		table->buckets[i] = NULL;
	}
	table->count = 0;
}

/* How many entries the table holds. */
size_t
mock_table_count(const struct mock_table *table)
{
	return table->count;
}

/* Free a table and its values. */
void
mock_table_free(struct mock_table *table)
{
	if (table == NULL)
		return;
	mock_table_clear(table);
	free(table->buckets);
	free(table);
}

/* ---- rules ---- */

static const char *const mock_action_names[] = {
	"respond", "goaway", "reset", "rst_stream",
};

/* The name of an action, as in rules. */
const char *
mock_action_name(enum mock_action action)
{
	return mock_action_names[action];
}

/* Parse an action name; 0 or -1. */
int
mock_action_from_string(const char *name, enum mock_action *out)
{
	size_t i;

	for (i = 0; i < sizeof mock_action_names / sizeof mock_action_names[0]; i++) {
		if (strcmp(name, mock_action_names[i]) == 0) {
			*out = (enum mock_action)i;
			return 0;
		}
	}
	return -1;
}

/* Append a rule; the server owns it from now on. */
void
mock_rule_add(struct mock_server *server, struct mock_rule *rule)
{
	rule->id = ++server->next_rule_id;
	TAILQ_INSERT_TAIL(&server->rules, rule, entry);
}

/* Free a rule and its strings. */
void
mock_rule_free(struct mock_rule *rule)
{
	free(rule->token);
	free(rule->reason);
	free(rule->topic);
	free(rule->error_code);
	free(rule->google_status);
	free(rule->oauth_error);
	free(rule->oauth_description);
	free(rule->retry_after_text);
	free(rule);
}

/* Forget every rule (DELETE /rules). */
void
mock_rules_clear(struct mock_server *server)
{
	struct mock_rule *rule;

	while ((rule = TAILQ_FIRST(&server->rules)) != NULL) {
		TAILQ_REMOVE(&server->rules, rule, entry);
		mock_rule_free(rule);
	}
}

/*
 * The first live answer rule for this endpoint and token, counting one use. Spent rules
 * stay in the list (with times 0) until DELETE /rules so a pending delayed answer never
 * points at freed memory. Rules with a topic are registrations, not answers.
 */
struct mock_rule *
mock_rule_match(struct mock_server *server, enum mock_endpoint endpoint, const char *token)
{
	struct mock_rule *rule;

	TAILQ_FOREACH(rule, &server->rules, entry) {
		if (rule->times == 0 || rule->topic != NULL || rule->endpoint != endpoint)
			continue;
		if (rule->token != NULL && (token == NULL || strcmp(rule->token, token) != 0))
			continue;
		if (rule->times > 0)
			rule->times--;
		return rule;
	}
	return NULL;
}

/* The registration rule giving this token a topic, if any. */
struct mock_rule *
mock_rule_topic(struct mock_server *server, const char *token)
{
	struct mock_rule *rule;

	TAILQ_FOREACH(rule, &server->rules, entry) {
		if (rule->topic != NULL && rule->times != 0 && rule->token != NULL &&
		    strcmp(rule->token, token) == 0)
			return rule;
	}
	return NULL;
}

/* A rule as JSON, for GET /rules. */
json_t *
mock_rule_json(const struct mock_rule *rule)
{
	json_t *json = json_object();

	json_object_set_new(json, "id", json_integer((json_int_t)rule->id));
	if (rule->token != NULL)
		json_object_set_new(json, "token", json_string(rule->token));
	json_object_set_new(json, "endpoint",
	    json_string(rule->endpoint == MOCK_ENDPOINT_TOKEN ? "token" : "send"));
	if (rule->status != 0)
		json_object_set_new(json, "status", json_integer(rule->status));
	if (rule->reason != NULL)
		json_object_set_new(json, "reason", json_string(rule->reason));
	if (rule->timestamp >= 0)
		json_object_set_new(json, "timestamp", json_integer(rule->timestamp));
	if (rule->retry_after >= 0)
		json_object_set_new(json, "retry_after", json_integer(rule->retry_after));
	if (rule->retry_after_text != NULL)
		json_object_set_new(json, "retry_after_text",
		    json_string(rule->retry_after_text));
	if (rule->delay_ms > 0)
		json_object_set_new(json, "delay_ms", json_integer(rule->delay_ms));
	json_object_set_new(json, "times", json_integer(rule->times));
	json_object_set_new(json, "action", json_string(mock_action_name(rule->action)));
	if (rule->h2_error >= 0)
		json_object_set_new(json, "h2_error", json_integer(rule->h2_error));
	if (rule->topic != NULL)
		json_object_set_new(json, "topic", json_string(rule->topic));
	if (rule->error_code != NULL)
		json_object_set_new(json, "error_code", json_string(rule->error_code));
	if (rule->google_status != NULL)
		json_object_set_new(json, "google_status", json_string(rule->google_status));
	if (rule->oauth_error != NULL)
		json_object_set_new(json, "error", json_string(rule->oauth_error));
	if (rule->oauth_description != NULL)
		json_object_set_new(json, "error_description",
		    json_string(rule->oauth_description));
	return json;
}

/* ---- records ---- */

/* Forget the record of requests (DELETE /requests). */
void
mock_records_clear(struct mock_server *server)
{
	json_array_clear(server->records);
	server->next_seq = 0;
}

/* Keep what a request was and how it was answered, for GET /requests. */
static void
record_add(struct mock_server *server, struct mock_stream *stream, const char *reason)
{
	json_t *record, *headers, *body;
	char *b64;
	size_t i, kept;
	struct mock_header *h;

	record = json_object();
	headers = json_object();
	if (record == NULL || headers == NULL)
		fatalx("out of memory");
	for (i = 0; i < stream->nheaders; i++) {
		h = &stream->headers[i];
		if (stream->arena[h->name] == ':')
			continue;
		json_object_set_new(headers, stream->arena + h->name,
		    mock_json_string(stream->arena + h->value, h->value_len));
	}
	json_object_set_new(record, "seq", json_integer((json_int_t)++server->next_seq));
	json_object_set_new(record, "connection", json_integer((json_int_t)stream->conn->id));
	json_object_set_new(record, "stream", json_integer(stream->id));
	json_object_set_new(record, "method", json_string(stream->method));
	json_object_set_new(record, "path", mock_json_string(stream->path, strlen(stream->path)));
	json_object_set_new(record, "authority",
	    mock_json_string(stream->authority, strlen(stream->authority)));
	json_object_set_new(record, "headers", headers);
	kept = stream->body_len < MOCK_BODY_KEEP ? stream->body_len : MOCK_BODY_KEEP;
	body = json_stringn(kept > 0 ? stream->body : "", kept);
	if (body == NULL) {
		/* Not UTF-8: keep it readable and exact. */
		body = mock_json_string(stream->body, kept);
		b64 = xmalloc(4 * ((kept + 2) / 3) + 1);
		EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)stream->body, (int)kept);
		json_object_set_new(record, "body_base64", json_string(b64));
		free(b64);
	}
	json_object_set_new(record, "body", body);
	json_object_set_new(record, "body_length", json_integer((json_int_t)stream->body_len));
	json_object_set_new(record, "status", json_integer(stream->status));
	if (reason != NULL)
		json_object_set_new(record, "reason", json_string(reason));
	if (stream->action != MOCK_ACTION_RESPOND)
		json_object_set_new(record, "action",
		    json_string(mock_action_name(stream->action)));
	json_object_set_new(record, "time_ms", json_integer(mock_now_ms(server)));
	json_array_append_new(server->records, record);
}

/* Forget the arrival times (DELETE /arrivals). */
void
mock_arrivals_clear(struct mock_server *server)
{
	size_t i;

	for (i = 0; i < server->narrivals; i++)
		free(server->arrivals[i].key);
	server->narrivals = 0;
}

/* The first "message_id" string in the body (APNs and FCM payloads alike), or NULL. */
static char *
arrival_message_id(const struct mock_stream *stream)
{
	static const char name[] = "\"message_id\"";
	size_t kept = stream->body_len < MOCK_BODY_KEEP ? stream->body_len : MOCK_BODY_KEEP;
	const char *p, *end = stream->body + kept, *q;

	if (kept == 0 || (p = memmem(stream->body, kept, name, sizeof name - 1)) == NULL)
		return NULL;
	for (p += sizeof name - 1; p < end && (*p == ' ' || *p == ':'); p++)
		;
	if (p == end || *p++ != '"' || (q = memchr(p, '"', (size_t)(end - p))) == NULL)
		return NULL;
	return xstrndup(p, (size_t)(q - p));
}

/* Note when a complete request arrived and which message it carried (--record-times). */
static void
arrival_add(struct mock_server *server, struct mock_stream *stream)
{
	struct mock_arrival *a;
	struct timespec ts;
	const char *apns_id;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (server->narrivals == server->arrivals_size) {
		server->arrivals_size = server->arrivals_size == 0 ? 4096 :
		    server->arrivals_size * 2;
		server->arrivals = xreallocarray(server->arrivals, server->arrivals_size,
		    sizeof *server->arrivals);
	}
	a = &server->arrivals[server->narrivals++];
	a->time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	if ((a->key = arrival_message_id(stream)) == NULL) {
		apns_id = mock_stream_header(stream, "apns-id");
		a->key = xstrdup(apns_id != NULL ? apns_id : "");
	}
}

/* ---- streams ---- */

/* A stream for a new request, linked to its connection. */
static struct mock_stream *
stream_new(struct mock_conn *conn, int32_t id)
{
	struct mock_stream *stream = xcalloc(1, sizeof *stream);

	stream->conn = conn;
	stream->id = id;
	stream->arena = stream->arena_inline;
	stream->arena_size = sizeof stream->arena_inline;
	stream->headers = stream->headers_inline;
	stream->headers_size = sizeof stream->headers_inline / sizeof stream->headers_inline[0];
	TAILQ_INSERT_TAIL(&conn->streams, stream, entry);
	return stream;
}

/* Free a stream, cancelling a pending delayed answer. */
static void
stream_free(struct mock_stream *stream)
{
	size_t i;

	if (stream->delay != NULL)
		event_free(stream->delay);
	if (stream->arena != stream->arena_inline)
		free(stream->arena);
	if (stream->headers != stream->headers_inline)
		free(stream->headers);
	for (i = 0; i < 2 * MOCK_RESPONSE_HEADERS; i++)
		free(stream->response_strings[i]);
	free(stream->body);
	free(stream->response_body);
	free(stream);
}

/* Copy bytes into the header arena, NUL-terminated; returns the offset. */
static uint32_t
stream_arena_add(struct mock_stream *stream, const uint8_t *s, size_t len)
{
	size_t offset = stream->arena_len, size;

	if (offset + len + 1 > stream->arena_size) {
		size = stream->arena_size * 2;
		while (offset + len + 1 > size)
			size *= 2;
		if (stream->arena == stream->arena_inline) {
			stream->arena = xmalloc(size);
			memcpy(stream->arena, stream->arena_inline, offset);
		} else
			stream->arena = xreallocarray(stream->arena, 1, size);
		stream->arena_size = size;
	}
	memcpy(stream->arena + offset, s, len);
	stream->arena[offset + len] = '\0';
	stream->arena_len = offset + len + 1;
	return (uint32_t)offset;
}

/* Keep one request header, noting a regular header sent twice. */
static void
stream_header_add(struct mock_stream *stream, const uint8_t *name, size_t name_len,
    const uint8_t *value, size_t value_len)
{
	struct mock_header *h;
	size_t i;

	for (i = 0; i < stream->nheaders; i++) {
		h = &stream->headers[i];
		if (h->name_len == name_len && memcmp(stream->arena + h->name, name,
		    name_len) == 0 && name[0] != ':')
			stream->duplicate_header = 1;
	}
	if (stream->nheaders == stream->headers_size) {
		stream->headers_size *= 2;
		if (stream->headers == stream->headers_inline) {
			stream->headers = xreallocarray(NULL, stream->headers_size,
			    sizeof *stream->headers);
			memcpy(stream->headers, stream->headers_inline,
			    sizeof stream->headers_inline);
		} else
			stream->headers = xreallocarray(stream->headers, stream->headers_size,
			    sizeof *stream->headers);
	}
	h = &stream->headers[stream->nheaders++];
	h->name = stream_arena_add(stream, name, name_len);
	h->name_len = (uint32_t)name_len;
	h->value = stream_arena_add(stream, value, value_len);
	h->value_len = (uint32_t)value_len;
}

/* The value of a request header (the last if repeated), or NULL. */
const char *
mock_stream_header(const struct mock_stream *stream, const char *name)
{
	const struct mock_header *h;
	size_t i = stream->nheaders, len = strlen(name);

	while (i-- > 0) {
		h = &stream->headers[i];
		if (h->name_len == len && memcmp(stream->arena + h->name, name, len) == 0)
			return stream->arena + h->value;
	}
	return NULL;
}

/* Keep body bytes up to MOCK_BODY_KEEP, counting all. */
static void
stream_body_add(struct mock_stream *stream, const uint8_t *data, size_t len)
{
	size_t keep = len, size;

	if (stream->body_len >= MOCK_BODY_KEEP)
		keep = 0;
	else if (stream->body_len + keep > MOCK_BODY_KEEP)
		keep = MOCK_BODY_KEEP - stream->body_len;
	if (keep > 0) {
		if (stream->body_len + keep + 1 > stream->body_size) {
			size = stream->body_size == 0 ? 512 : stream->body_size * 2;
			while (size < stream->body_len + keep + 1)
				size *= 2;
			stream->body = xreallocarray(stream->body, 1, size);
			stream->body_size = size;
		}
		memcpy(stream->body + stream->body_len, data, keep);
		stream->body[stream->body_len + keep] = '\0';
	}
	stream->body_len += len;
}

/* Copy a string for a response header into a slot freed with the stream. */
static char *
stream_response_string(struct mock_stream *stream, const char *s, size_t len, size_t slot)
{
	stream->response_strings[slot] = xstrndup(s, len);
	return stream->response_strings[slot];
}

/* Add a response header; at most MOCK_RESPONSE_HEADERS per response. */
void
mock_stream_add_header(struct mock_stream *stream, const char *name, const char *value)
{
	nghttp2_nv *nv;
	size_t n = stream->nnv == 0 ? 0 : stream->nnv - 1;

	if (n >= MOCK_RESPONSE_HEADERS)
		fatalx("too many response headers");
	if (stream->nnv == 0)
		stream->nnv = 1;	/* :status comes first, filled in by finish */
	nv = &stream->nva[stream->nnv++];
	nv->namelen = strlen(name);
	nv->valuelen = strlen(value);
	nv->name = (uint8_t *)stream_response_string(stream, name, nv->namelen, 2 * n);
	nv->value = (uint8_t *)stream_response_string(stream, value, nv->valuelen, 2 * n + 1);
	nv->flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
}

/* Feed the response body to nghttp2. */
static ssize_t
stream_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
    uint32_t *data_flags, nghttp2_data_source *source, void *arg)
{
	struct mock_stream *stream = source->ptr;
	size_t n = stream->response_len - stream->response_sent;

	if (n > length)
		n = length;
	memcpy(buf, stream->response_body + stream->response_sent, n);
	stream->response_sent += n;
	if (stream->response_sent == stream->response_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Submit the HEADERS (and DATA) of the answer. */
static void
stream_submit_response(struct mock_stream *stream)
{
	nghttp2_data_provider provider;
	int status = stream->status;

	stream->status_text[0] = (char)('0' + status / 100);
	stream->status_text[1] = (char)('0' + status / 10 % 10);
	stream->status_text[2] = (char)('0' + status % 10);
	if (stream->nnv == 0)
		stream->nnv = 1;
	stream->nva[0].name = (uint8_t *)":status";
	stream->nva[0].namelen = 7;
	stream->nva[0].value = (uint8_t *)stream->status_text;
	stream->nva[0].valuelen = 3;
	stream->nva[0].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
	if (stream->response_len == 0) {
		nghttp2_submit_response(stream->conn->session, stream->id, stream->nva,
		    stream->nnv, NULL);
		return;
	}
	provider.source.ptr = stream;
	provider.read_callback = stream_read_body;
	nghttp2_submit_response(stream->conn->session, stream->id, stream->nva, stream->nnv,
	    &provider);
}

/* Carry out the answer decided for a stream. */
static void
stream_execute(struct mock_stream *stream)
{
	struct mock_conn *conn = stream->conn;
	struct mock_server *server = conn->server;
	int32_t last;

	switch (stream->action) {
	case MOCK_ACTION_RESPOND:
		stream_submit_response(stream);
		break;
	case MOCK_ACTION_GOAWAY:
		if (stream->status != 0) {
			/* Answer, then close gracefully: everything received so far is processed. */
			stream_submit_response(stream);
			conn_goaway(conn, -1,
			    stream->h2_error >= 0 ? (uint32_t)stream->h2_error : NGHTTP2_NO_ERROR,
			    stream->response_body);
		} else {
			/* Refuse this stream and those after it: the client must retry them. */
			last = stream->id > 2 ? stream->id - 2 : 0;
			conn_goaway(conn, last,
			    stream->h2_error >= 0 ? (uint32_t)stream->h2_error : NGHTTP2_NO_ERROR,
			    NULL);
		}
		break;
	case MOCK_ACTION_RESET:
		server->stats.resets++;
		mock_conn_drop(conn, 1);
		return;		/* conn may be gone */
	case MOCK_ACTION_RST_STREAM:
		server->stats.rst_streams++;
		nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, stream->id,
		    stream->h2_error >= 0 ? (uint32_t)stream->h2_error : NGHTTP2_INTERNAL_ERROR);
		break;
	}
	if (!conn->in_recv && conn_send(conn) != 0)
		conn_free(conn);
}

/* The delay of a rule is over. */
static void
stream_delay_done(evutil_socket_t fd, short events, void *arg)
{
	struct mock_stream *stream = arg;

	stream_execute(stream);
}

/*
 * Answer a complete request: status with an optional body (xmalloc'd, owned by the stream
 * from now on), shaped by the matched rule if any (retry-after, delay, action). reason is
 * what the record shows (APNs reason, FCM errorCode or status).
 */
void
mock_stream_finish(struct mock_stream *stream, int status, const char *reason,
    const char *content_type, char *body, size_t len, const struct mock_rule *rule)
{
	struct mock_server *server = stream->conn->server;
	struct timeval tv;
	char retry_after[24];

	if (stream->finished) {
		free(body);
		return;
	}
	stream->finished = 1;
	stream->status = status;
	stream->action = rule != NULL ? rule->action : MOCK_ACTION_RESPOND;
	stream->h2_error = rule != NULL ? rule->h2_error : -1;
	stream->response_body = body;
	stream->response_len = body != NULL ? len : 0;
	if (body != NULL && content_type != NULL)
		mock_stream_add_header(stream, "content-type", content_type);
	if (rule != NULL && rule->retry_after_text != NULL)
		mock_stream_add_header(stream, "retry-after", rule->retry_after_text);
	else if (rule != NULL && rule->retry_after >= 0) {
		snprintf(retry_after, sizeof retry_after, "%d", rule->retry_after);
		mock_stream_add_header(stream, "retry-after", retry_after);
	}
	if (status > 0 && status < MOCK_STATUS_MAX && (stream->action == MOCK_ACTION_RESPOND ||
	    stream->action == MOCK_ACTION_GOAWAY))
		server->stats.responses[status]++;
	if (server->config.record)
		record_add(server, stream, reason);
	if (rule != NULL && rule->delay_ms > 0) {
		stream->delay = evtimer_new(server->base, stream_delay_done, stream);
		if (stream->delay == NULL)
			fatalx("out of memory");
		tv.tv_sec = rule->delay_ms / 1000;
		tv.tv_usec = (rule->delay_ms % 1000) * 1000;
		evtimer_add(stream->delay, &tv);
		return;
	}
	stream_execute(stream);
}

/* ---- nghttp2 callbacks ---- */

/* A request starts: give it a stream and count concurrency. */
static int
on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct mock_conn *conn = arg;
	struct mock_stream *stream;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	stream = stream_new(conn, frame->hd.stream_id);
	nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, stream);
	conn->open_streams++;
	if (conn->open_streams > conn->server->stats.max_concurrent_streams)
		conn->server->stats.max_concurrent_streams = conn->open_streams;
	return 0;
}

/* Keep one request header. */
static int
on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
    size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags, void *arg)
{
	struct mock_stream *stream;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (stream != NULL)
		stream_header_add(stream, name, name_len, value, value_len);
	return 0;
}

/* Keep request body bytes. */
static int
on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
    const uint8_t *data, size_t len, void *arg)
{
	struct mock_stream *stream;

	stream = nghttp2_session_get_stream_user_data(session, stream_id);
	if (stream != NULL)
		stream_body_add(stream, data, len);
	return 0;
}

/* A request is complete: resolve its pseudo-headers and let the mode answer. */
static void
stream_request(struct mock_conn *conn, struct mock_stream *stream)
{
	struct mock_server *server = conn->server;

	stream->method = mock_stream_header(stream, ":method");
	stream->path = mock_stream_header(stream, ":path");
	stream->authority = mock_stream_header(stream, ":authority");
	if (stream->method == NULL)
		stream->method = "";
	if (stream->path == NULL)
		stream->path = "";
	if (stream->authority == NULL)
		stream->authority = "";
	server->stats.requests++;
	if (server->config.record_times)
		arrival_add(server, stream);
	server->mode->request(server, stream);
}

/* A request is complete once END_STREAM arrives. */
static int
on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct mock_conn *conn = arg;
	struct mock_stream *stream;

	if (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0)
		return 0;
	stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (stream != NULL && stream->method == NULL)
		stream_request(conn, stream);
	return 0;
}

/* A stream is done (answered, reset or refused): free it. */
static int
on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *arg)
{
	struct mock_conn *conn = arg;
	struct mock_stream *stream;

	stream = nghttp2_session_get_stream_user_data(session, stream_id);
	if (stream == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	TAILQ_REMOVE(&conn->streams, stream, entry);
	conn->open_streams--;
	stream_free(stream);
	return 0;
}

/* Build the callback table and options once. */
static void
callbacks_init(void)
{
	if (nghttp2_session_callbacks_new(&mock_callbacks) != 0 ||
	    nghttp2_option_new(&mock_h2_option) != 0)
		fatalx("out of memory");
	nghttp2_session_callbacks_set_on_begin_headers_callback(mock_callbacks,
	    on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(mock_callbacks, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(mock_callbacks,
	    on_data_chunk_recv);
	nghttp2_session_callbacks_set_on_frame_recv_callback(mock_callbacks, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(mock_callbacks, on_stream_close);
	/* No priority tree of closed streams: nobody here uses RFC 7540 priorities. */
	nghttp2_option_set_no_closed_streams(mock_h2_option, 1);
}

/* ---- connections ---- */

/* Move whatever nghttp2 has to send into the output buffer, in 16 KiB writes. */
static int
conn_send(struct mock_conn *conn)
{
	struct evbuffer *output = bufferevent_get_output(conn->bev);
	uint8_t chunk[MOCK_WRITE_CHUNK];
	const uint8_t *data;
	size_t len = 0;
	ssize_t n;

	for (;;) {
		if (evbuffer_get_length(output) + len > MOCK_OUTPUT_HIGH)
			break;
		n = nghttp2_session_mem_send(conn->session, &data);
		if (n < 0) {
			log_debug("h2 send failed", "error",
			    nghttp2_strerror((int)n), NULL);
			return -1;
		}
		if (n == 0)
			break;
		if (len + (size_t)n > sizeof chunk) {
			bufferevent_write(conn->bev, chunk, len);
			len = 0;
		}
		if ((size_t)n >= sizeof chunk) {
			bufferevent_write(conn->bev, data, (size_t)n);
			continue;
		}
		memcpy(chunk + len, data, (size_t)n);
		len += (size_t)n;
	}
	if (len > 0)
		bufferevent_write(conn->bev, chunk, len);
	return 0;
}

/* Done with a connection when neither side has anything left to say. */
static int
conn_finished(struct mock_conn *conn)
{
	return !nghttp2_session_want_read(conn->session) &&
	    !nghttp2_session_want_write(conn->session) &&
	    evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0;
}

/* Close a connection (with a RST if it was dropped so) and free it. */
static void
conn_free(struct mock_conn *conn)
{
	struct mock_server *server = conn->server;
	struct mock_stream *stream;
	struct linger linger;
	evutil_socket_t fd;
	char id[24];

	snprintf(id, sizeof id, "%llu", (unsigned long long)conn->id);
	log_debug("connection closed", "connection", id, "reset", conn->drop == 2 ? "yes" : "no",
	    NULL);
	if (conn->drop == 2) {
		fd = bufferevent_getfd(conn->bev);
		linger.l_onoff = 1;
		linger.l_linger = 0;
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
	}
	while ((stream = TAILQ_FIRST(&conn->streams)) != NULL) {
		TAILQ_REMOVE(&conn->streams, stream, entry);
		stream_free(stream);
	}
	if (conn->session != NULL)
		nghttp2_session_del(conn->session);
	bufferevent_free(conn->bev);
	TAILQ_REMOVE(&server->conns, conn, entry);
	server->stats.connections_live--;
	free(conn);
}

/* Drop a connection (reset: with a TCP RST), now or once out of nghttp2's hands. */
void
mock_conn_drop(struct mock_conn *conn, int reset)
{
	conn->drop = reset ? 2 : 1;
	if (!conn->in_recv)
		conn_free(conn);
}

/* Queue a GOAWAY; last_stream_id -1 means the last stream received. */
static void
conn_goaway(struct mock_conn *conn, int32_t last_stream_id, uint32_t error_code,
    const char *debug)
{
	if (last_stream_id < 0)
		last_stream_id = nghttp2_session_get_last_proc_stream_id(conn->session);
	nghttp2_submit_goaway(conn->session, NGHTTP2_FLAG_NONE, last_stream_id, error_code,
	    (const uint8_t *)debug, debug != NULL ? strlen(debug) : 0);
	conn->server->stats.goaways++;
}

/* Send GOAWAY now (the connection may be freed); last_stream_id -1: the last received. */
void
mock_conn_goaway(struct mock_conn *conn, int32_t last_stream_id, uint32_t error_code,
    const char *debug)
{
	if (conn->session == NULL)
		return;
	conn_goaway(conn, last_stream_id, error_code, debug);
	if (!conn->in_recv && conn_send(conn) != 0)
		conn_free(conn);
}

/* Advertise a stream limit on a connection. */
static void
conn_settings(struct mock_conn *conn, uint32_t max_streams)
{
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams },
	};

	nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, iv, 1);
}

/* Raise the stream limit from the initial one to --max-streams (APNs after a valid token). */
void
mock_conn_raise_streams(struct mock_conn *conn)
{
	if (conn->raised || conn->session == NULL)
		return;
	conn->raised = 1;
	conn_settings(conn, conn->server->config.max_streams);
	if (!conn->in_recv && conn_send(conn) != 0)
		conn_free(conn);
}

/* Change --max-streams, telling the connections already past their initial limit. */
void
mock_server_settings(struct mock_server *server, uint32_t max_streams)
{
	struct mock_conn *conn, *next;

	server->config.max_streams = max_streams;
	TAILQ_FOREACH_SAFE(conn, &server->conns, entry, next) {
		if (conn->session == NULL || !conn->raised)
			continue;
		conn_settings(conn, max_streams);
		if (conn_send(conn) != 0)
			conn_free(conn);
	}
}

/* The TLS handshake is done: insist on h2 and start the session. */
static int
conn_start(struct mock_conn *conn)
{
	struct mock_server *server = conn->server;
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;

	SSL_get0_alpn_selected(bufferevent_openssl_get_ssl(conn->bev), &alpn, &alpn_len);
	if (alpn == NULL || alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
		log_debug("client did not negotiate h2", NULL);
		return -1;
	}
	if (nghttp2_session_server_new2(&conn->session, mock_callbacks, conn,
	    mock_h2_option) != 0)
		fatalx("out of memory");
	conn->raised = server->config.initial_streams == 0;
	conn_settings(conn, conn->raised ? server->config.max_streams :
	    server->config.initial_streams);
	return conn_send(conn);
}

/* Feed received bytes to nghttp2 straight from the evbuffer chains. */
static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct mock_conn *conn = arg;
	struct evbuffer *input = bufferevent_get_input(bev);
	struct evbuffer_iovec iov[16];
	ssize_t rv;
	size_t total;
	int n, i;

	if (conn->session == NULL)
		return;
	conn->in_recv = 1;
	while (evbuffer_get_length(input) > 0) {
		n = evbuffer_peek(input, -1, NULL, iov, 16);
		if (n > 16)
			n = 16;
		total = 0;
		for (i = 0; i < n; i++) {
			rv = nghttp2_session_mem_recv(conn->session, iov[i].iov_base,
			    iov[i].iov_len);
			if (rv < 0) {
				log_debug("h2 receive failed", "error",
				    nghttp2_strerror((int)rv), NULL);
				conn->in_recv = 0;
				conn_free(conn);
				return;
			}
			total += (size_t)rv;
		}
		evbuffer_drain(input, total);
		if (conn->drop)
			break;
	}
	conn->in_recv = 0;
	if (conn->drop) {
		conn_free(conn);
		return;
	}
	if (conn_send(conn) != 0 || conn_finished(conn))
		conn_free(conn);
}

/* Output drained: send more, or close when both sides are done. */
static void
conn_write(struct bufferevent *bev, void *arg)
{
	struct mock_conn *conn = arg;

	if (conn->session == NULL)
		return;
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (conn_finished(conn)) {
		conn_free(conn);
		return;
	}
	if (conn_send(conn) != 0)
		conn_free(conn);
}

/* Handshake done, or the connection ended. */
static void
conn_event(struct bufferevent *bev, short events, void *arg)
{
	struct mock_conn *conn = arg;
	unsigned long err;
	char buf[256];

	if (events & BEV_EVENT_CONNECTED) {
		if (conn_start(conn) != 0)
			conn_free(conn);
		return;
	}
	if (events & BEV_EVENT_ERROR) {
		while ((err = bufferevent_get_openssl_error(bev)) != 0) {
			ERR_error_string_n(err, buf, sizeof buf);
			log_debug("TLS error", "error", buf, NULL);
		}
	}
	conn_free(conn);
}

/* A new TCP connection: start the TLS handshake. */
static void
listener_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
    int socklen, void *arg)
{
	struct mock_server *server = arg;
	struct mock_conn *conn;
	SSL *ssl;
	int one = 1;

	ssl = SSL_new(server->ssl_ctx);
	if (ssl == NULL)
		fatalx("SSL_new failed");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	conn = xcalloc(1, sizeof *conn);
	conn->server = server;
	conn->id = ++server->next_conn_id;
	TAILQ_INIT(&conn->streams);
	conn->bev = bufferevent_openssl_socket_new(server->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (conn->bev == NULL)
		fatalx("bufferevent_openssl_socket_new failed");
	bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
	bufferevent_set_max_single_read(conn->bev, 65536);
	bufferevent_set_max_single_write(conn->bev, 65536);
	bufferevent_setcb(conn->bev, conn_read, conn_write, conn_event, conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&server->conns, conn, entry);
	server->stats.connections_accepted++;
	server->stats.connections_live++;
}

/* ---- start-up ---- */

/* Choose h2 or fail the handshake: these servers speak nothing else. */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *out_len,
    const unsigned char *in, unsigned int in_len, void *arg)
{
	if (nghttp2_select_next_protocol((unsigned char **)out, out_len, in, in_len) != 1)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

/* The TLS context: TLS 1.2+, HTTP/2-safe ciphers, ALPN h2 only. */
static SSL_CTX *
tls_context(const struct mock_config *config)
{
	SSL_CTX *ctx;

	if (config->cert == NULL || config->key == NULL)
		fatalx("--cert and --key are required");
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		fatalx("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* TLS 1.2 suites HTTP/2 allows (RFC 7540 9.2.2); TLS 1.3 ones are all fine. */
	if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
		fatalx("SSL_CTX_set_cipher_list failed");
	if (SSL_CTX_use_certificate_chain_file(ctx, config->cert) != 1)
		fatalx("cannot load certificate %s", config->cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, config->key, SSL_FILETYPE_PEM) != 1)
		fatalx("cannot load key %s", config->key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		fatalx("key %s does not match certificate %s", config->key, config->cert);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	return ctx;
}

/* Parse HOST:PORT or [V6]:PORT with a numeric host; port 0 is fine. 0 or -1. */
int
mock_parse_address(const char *address, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	const char *colon = strrchr(address, ':');
	char host[64], *end;
	size_t host_len;
	long port;

	if (colon == NULL)
		return -1;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
		return -1;
	host_len = (size_t)(colon - address);
	if (host_len >= 2 && address[0] == '[' && address[host_len - 1] == ']') {
		address++;
		host_len -= 2;
	}
	if (host_len >= sizeof host)
		return -1;
	memcpy(host, address, host_len);
	host[host_len] = '\0';
	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof *sin;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof *sin6;
		return 0;
	}
	return -1;
}

/* The port a socket is bound to. */
int
mock_socket_port(evutil_socket_t fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		fatal("getsockname");
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void
listen_h2(struct mock_server *server)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (mock_parse_address(server->config.listen, &ss, &len) != 0)
		fatalx("--listen: expected a numeric HOST:PORT, got %s", server->config.listen);
	server->listener = evconnlistener_new_bind(server->base, listener_accept, server,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
	    (struct sockaddr *)&ss, (int)len);
	if (server->listener == NULL)
		fatal("cannot listen on %s", server->config.listen);
	server->h2_port = mock_socket_port(evconnlistener_get_fd(server->listener));
}

/* SIGTERM or SIGINT: leave the event loop. */
static void
signal_stop(evutil_socket_t fd, short events, void *arg)
{
	struct mock_server *server = arg;

	event_base_loopbreak(server->base);
}

/* Listen, print the READY line, run until SIGTERM or SIGINT. */
int
mock_server_main(struct mock_server *server)
{
	struct event *sigterm, *sigint;
	struct mock_conn *conn;
	char h2_port[8], control_port[8];

	signal(SIGPIPE, SIG_IGN);
	callbacks_init();
	server->base = event_base_new();
	if (server->base == NULL)
		fatalx("event_base_new failed");
	server->ssl_ctx = tls_context(&server->config);
	listen_h2(server);
	server->control_port = mock_control_start(server, server->config.control);
	sigterm = evsignal_new(server->base, SIGTERM, signal_stop, server);
	sigint = evsignal_new(server->base, SIGINT, signal_stop, server);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);

	printf("READY h2=%d control=%d\n", server->h2_port, server->control_port);
	fflush(stdout);
	snprintf(h2_port, sizeof h2_port, "%d", server->h2_port);
	snprintf(control_port, sizeof control_port, "%d", server->control_port);
	log_info("mock ready", "mode", server->mode->name, "h2_port", h2_port,
	    "control_port", control_port, NULL);

	event_base_dispatch(server->base);

	log_info("mock stopping", "mode", server->mode->name, NULL);
	while ((conn = TAILQ_FIRST(&server->conns)) != NULL)
		conn_free(conn);
	mock_rules_clear(server);
	json_decref(server->records);
	mock_arrivals_clear(server);
	free(server->arrivals);
	evconnlistener_free(server->listener);
	evhttp_free(server->control);
	event_free(sigterm);
	event_free(sigint);
	SSL_CTX_free(server->ssl_ctx);
	event_base_free(server->base);
	nghttp2_session_callbacks_del(mock_callbacks);
	nghttp2_option_del(mock_h2_option);
	return 0;
}
