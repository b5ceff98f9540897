/*
 * Tests for the redis room state (state_redis.c, its scripts in state_redis_scripts.c,
 * the bucket entries of state_bucket.c), against a real redis-server that this file
 * starts on a free loopback port (tests/unit/redis_server_fixture.h).
 *
 * Two levels. The scripts are run by the test's own client with fixed times, and
 * their exact effects checked: keys, values, expiries, answers. The state is run on
 * a real event loop through state.h, as the router runs it: round trips, answers
 * parsed, two instances claiming one bucket, Redis going away and coming back,
 * scripts flushed under it. Skipped when redis-server is not installed.
 */
#include "autoconf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "redis_server_fixture.h"
#include "state.h"
#include "state_bucket.h"
#include "state_redis.h"
#include "state_redis_scripts.h"
#include "tracker.h"

#define PREFIX "t:"
#define NOW 1800000000000LL		/* the scripts' clock, in the script tests */
#define TTL 60000
#define GRACE 15000
#define WINDOW 2000
#define DEDUPE 3600000
#define LEASE "30000"
#define BATCHES_MAX 8

/* A batch the state handed over, as the router would see it. */
struct seen_batch {
	char room[64];
	char client[64];
	size_t count;
	char ids[8][64];
	char latest_text[128];
	int64_t badge;
	size_t sent_count;
	char sent[4][64];
	int targets_known;
};

/* What a decide said. */
struct decided {
	int done;
	int result;
	size_t sent_count;
	char sent[4][64];
};

struct recorder {
	struct seen_batch batches[BATCHES_MAX];
	size_t count;
	unsigned ready;			/* state ready callbacks */
};

struct fixture {
	struct event_base *base;
	struct event *tick;
	redisContext *redis;		/* the test's own client */
	char sha[STATE_SCRIPT_COUNT][48];
	struct config config;
	struct state_options options;
	struct state *state, *other;
	struct recorder rec, other_rec;
	unsigned acks, tracker_done;
	size_t changed;
	unsigned changed_calls;
};

/* ---- the test's own client ---- */

static redisReply *
cmd(struct fixture *f, const char *fmt, ...)
{
	redisReply *reply;
	va_list ap;

	va_start(ap, fmt);
	reply = redisvCommand(f->redis, fmt, ap);
	va_end(ap);
	if (reply == NULL)
		fail_msg("redis: %s", f->redis->errstr);
	if (reply->type == REDIS_REPLY_ERROR)
		fail_msg("redis: %s: %s", fmt, reply->str);
	return reply;
}

static long long
cmd_int(struct fixture *f, const char *fmt, ...)
{
	redisReply *reply;
	long long n;
	va_list ap;

	va_start(ap, fmt);
	reply = redisvCommand(f->redis, fmt, ap);
	va_end(ap);
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER)
		fail_msg("redis: %s: not an integer", fmt);
	n = reply->integer;
	freeReplyObject(reply);
	return n;
}

/* The score of a sorted set's member, as an integer (-1: none). */
static long long
cmd_score(struct fixture *f, const char *key, const char *member)
{
	redisReply *reply = redisCommand(f->redis, "ZSCORE %s %s", key, member);
	long long n = -1;

	if (reply == NULL)
		fail_msg("redis: %s", f->redis->errstr);
	if (reply->type == REDIS_REPLY_STRING)
		n = strtoll(reply->str, NULL, 10);
	else if (reply->type != REDIS_REPLY_NIL)
		fail_msg("ZSCORE %s %s: not a score", key, member);
	freeReplyObject(reply);
	return n;
}

/* A string reply (NULL: nil), copied into out. */
static const char *
cmd_str(struct fixture *f, char *out, size_t outlen, const char *fmt, ...)
{
	redisReply *reply;
	va_list ap;

	va_start(ap, fmt);
	reply = redisvCommand(f->redis, fmt, ap);
	va_end(ap);
	if (reply == NULL)
		fail_msg("redis: %s", f->redis->errstr);
	if (reply->type == REDIS_REPLY_NIL) {
		freeReplyObject(reply);
		return NULL;
	}
	if (reply->type != REDIS_REPLY_STRING)
		fail_msg("redis: %s: not a string", fmt);
	snprintf(out, outlen, "%s", reply->str);
	freeReplyObject(reply);
	return out;
}

/* Is a key's remaining time to live within [low, high] ms? */
static void
assert_pttl(struct fixture *f, const char *key, long long low, long long high)
{
	long long ttl = cmd_int(f, "PTTL %s", key);

	if (ttl < low || ttl > high)
		fail_msg("PTTL %s = %lld, not within [%lld, %lld]", key, ttl, low, high);
}

/* The JSON value of a hash field equals expected (as JSON, whatever the key order). */
static void
assert_field_json(struct fixture *f, const char *key, const char *field, const char *expected)
{
	char buf[4096];
	json_t *got, *want;

	if (cmd_str(f, buf, sizeof buf, "HGET %s %s", key, field) == NULL)
		fail_msg("HGET %s %s: nil, not %s", key, field, expected);
	got = json_loads(buf, 0, NULL);
	want = json_loads(expected, 0, NULL);
	assert_non_null(got);
	assert_non_null(want);
	if (!json_equal(got, want))
		fail_msg("HGET %s %s = %s, not %s", key, field, buf, expected);
	json_decref(got);
	json_decref(want);
}

/*
 * Run a script with the test's client: numkeys, then the keys and the arguments
 * after the prefix (which comes first), NULL-terminated.
 */
static redisReply *
script(struct fixture *f, enum state_script which, int numkeys, ...)
{
	const char *argv[128];
	char nk[8];
	int argc = 0;
	const char *a;
	redisReply *reply;
	va_list ap;

	snprintf(nk, sizeof nk, "%d", numkeys);
	argv[argc++] = "EVALSHA";
	argv[argc++] = f->sha[which];
	argv[argc++] = nk;
	va_start(ap, numkeys);
	for (int i = 0; i < numkeys; i++)
		argv[argc++] = va_arg(ap, const char *);
	argv[argc++] = PREFIX;
	while ((a = va_arg(ap, const char *)) != NULL) {
		assert_true(argc < 127);
		argv[argc++] = a;
	}
	va_end(ap);
	reply = redisCommandArgv(f->redis, argc, argv, NULL);
	if (reply == NULL)
		fail_msg("redis: %s", f->redis->errstr);
	if (reply->type == REDIS_REPLY_ERROR)
		fail_msg("script %s: %s", state_redis_scripts[which].name, reply->str);
	return reply;
}

/* The integer answer of a script (presence, read, change, flush). */
#define SCRIPT_INT(f, which, ...) ({						\
	redisReply *r_ = script((f), (which), __VA_ARGS__);			\
	long long n_;								\
	assert_int_equal(r_->type, REDIS_REPLY_INTEGER);			\
	n_ = r_->integer;							\
	freeReplyObject(r_);							\
	n_;									\
})

/* ---- script helpers: the arguments the state passes ---- */

#define NS(n) ({ static char b_[8][24]; static int i_; i_ = (i_ + 1) % 8;	\
	snprintf(b_[i_], sizeof b_[i_], "%lld", (long long)(n)); b_[i_]; })

static long long
presence(struct fixture *f, const char *op, int64_t now, const char *client,
    const char *conn)
{
	return SCRIPT_INT(f, STATE_SCRIPT_PRESENCE, 1, PREFIX "presence:{r}", "r", op, NS(now),
	    NS(TTL), NS(GRACE), client, conn, NULL);
}

/* Decide chunk 0 of message id for candidates "client,notify,...". */
static redisReply *
message(struct fixture *f, const char *id, const char *token, int redelivered, int64_t now,
    int64_t window, const char *c1, const char *c2)
{
	char msg[64], sent[64], held[64], json[128];

	snprintf(msg, sizeof msg, PREFIX "msg:{r}:%s", id);
	snprintf(sent, sizeof sent, PREFIX "sent:{r}:%s", id);
	snprintf(held, sizeof held, PREFIX "held:{r}:%s", id);
	snprintf(json, sizeof json, "{\"id\":\"%s\",\"sender\":\"alice\",\"text\":\"t-%s\"}", id,
	    id);
	return script(f, STATE_SCRIPT_MESSAGE, 4, msg, sent, held, PREFIX "presence:{r}", "r",
	    id, token, "0", "0", redelivered ? "1" : "0", NS(now), "1", NS(DEDUPE), NS(window),
	    NS(GRACE), NS(TTL), json, c1, "1", c2, c2 != NULL ? "1" : NULL, NULL);
}

/* The decision and badge of candidate i of a decide's answer. */
static void
assert_decision(const redisReply *r, size_t i, long long code, long long badge)
{
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_true(r->elements >= 5 + 2 * i);
	assert_int_equal(r->element[3 + 2 * i]->integer, code);
	assert_int_equal(r->element[4 + 2 * i]->integer, badge);
}

static redisReply *
poll_at(struct fixture *f, int64_t now, const char *claim_id)
{
	return script(f, STATE_SCRIPT_POLL, 2, PREFIX "due", PREFIX "claims", NS(now), "100",
	    NS(TTL), NS(GRACE), LEASE, NS(DEDUPE), claim_id, NULL);
}

/* ---- the loop ---- */

static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

#define WAIT_FOR(f, cond, ms) do {						\
	int64_t deadline_ = clock_monotonic_ms() + (ms);			\
	while (!(cond) && clock_monotonic_ms() < deadline_)			\
		event_base_loop((f)->base, EVLOOP_ONCE);			\
} while (0)

static void
run_for(struct fixture *f, int64_t ms)
{
	int64_t deadline = clock_monotonic_ms() + ms;

	while (clock_monotonic_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
}

/* ---- the state's callbacks ---- */

static void
on_batch(struct state_batch *b, void *arg)
{
	struct recorder *rec = arg;
	struct seen_batch *s;

	assert_true(rec->count < BATCHES_MAX);
	s = &rec->batches[rec->count++];
	snprintf(s->room, sizeof s->room, "%s", b->room);
	snprintf(s->client, sizeof s->client, "%s", b->client);
	s->count = b->count;
	for (size_t i = 0; i < b->count && i < 8; i++)
		snprintf(s->ids[i], sizeof s->ids[i], "%s", b->message_ids[i]);
	snprintf(s->latest_text, sizeof s->latest_text, "%s",
	    b->latest->text != NULL ? b->latest->text : "");
	s->badge = b->badge;
	s->targets_known = b->targets_known;
	s->sent_count = b->sent_count;
	for (size_t i = 0; i < b->sent_count && i < 4; i++)
		snprintf(s->sent[i], sizeof s->sent[i], "%s", b->sent[i]);
}

static void
on_ready(void *arg)
{
	((struct recorder *)arg)->ready++;
}

static void
on_decided(int result, const char *const *sent, size_t count, void *arg)
{
	struct decided *d = arg;

	d->done++;
	d->result = result;
	d->sent_count = count;
	for (size_t i = 0; i < count && i < 4; i++)
		snprintf(d->sent[i], sizeof d->sent[i], "%s", sent[i]);
}

static void
on_ack(void *ctx)
{
	((struct fixture *)ctx)->acks++;
}

static void
on_tracker_done(void *arg)
{
	((struct fixture *)arg)->tracker_done++;
}

static void
on_changed(size_t cancelled, void *arg)
{
	struct fixture *f = arg;

	f->changed += cancelled;
	f->changed_calls++;
}

/* A state on the test's server, ready. */
static struct state *
state_start(struct fixture *f, struct recorder *rec)
{
	struct state_callbacks cb = { on_batch, on_ready, rec };
	char err[256] = "";
	struct state *s;

	s = state_redis_new(f->base, &f->config, &f->options, err, sizeof err);
	if (s == NULL)
		fail_msg("state_redis_new: %s", err);
	state_set_callbacks(s, &cb);
	WAIT_FOR(f, state_ready(s), 3000);
	assert_true(state_ready(s));
	return s;
}

static struct state_stats
stats(const struct state *s)
{
	struct state_stats st;

	state_get_stats(s, &st);
	return st;
}

/* A message event (the strings are the test's: never freed). */
static struct room_event
message_event(const char *room, const char *id, const char *text)
{
	struct room_event e;

	memset(&e, 0, sizeof e);
	e.type = EVENT_MESSAGE;
	e.room = (char *)room;
	e.id = (char *)id;
	e.client_id = (char *)"alice";
	e.text = (char *)text;
	return e;
}

static struct room_event
presence_event(enum event_type type, const char *room, const char *client, const char *conn)
{
	struct room_event e;

	memset(&e, 0, sizeof e);
	e.type = type;
	e.room = (char *)room;
	e.client_id = (char *)client;
	e.connection_id = (char *)conn;
	return e;
}

/* Decide one message for candidates through the state, waiting for the answer. */
static void
decide(struct fixture *f, struct state *s, const struct room_event *e,
    struct state_candidate *c, size_t n, struct decided *d)
{
	struct state_message *m = state_message_new(s, e);

	memset(d, 0, sizeof *d);
	assert_int_equal(state_message_fresh(m), 1);
	state_decide(m, c, n, 1, on_decided, d);
	WAIT_FOR(f, d->done, 3000);
	assert_int_equal(d->done, 1);
	state_message_free(m);
}

/* ---- fixtures ---- */

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct timeval tv = { 0, 5000 };
	redisReply *reply;

	assert_non_null(f);
	if (server.pid == 0)
		assert_int_equal(server_resume(), 0);
	f->base = event_base_new();
	f->tick = event_new(f->base, -1, EV_PERSIST, tick, NULL);
	event_add(f->tick, &tv);
	f->redis = redisConnect("127.0.0.1", server.port);
	assert_true(f->redis != NULL && f->redis->err == 0);
	freeReplyObject(cmd(f, "FLUSHALL"));
	freeReplyObject(cmd(f, "SCRIPT FLUSH"));
	for (size_t i = 0; i < STATE_SCRIPT_COUNT; i++) {
		const struct state_redis_script *s = &state_redis_scripts[i];
		size_t lp = strlen(s->prelude), lb = strlen(s->body);
		char *text = malloc(lp + lb + 1);

		memcpy(text, s->prelude, lp);
		memcpy(text + lp, s->body, lb + 1);
		reply = cmd(f, "SCRIPT LOAD %s", text);
		snprintf(f->sha[i], sizeof f->sha[i], "%s", reply->str);
		freeReplyObject(reply);
		free(text);
	}
	f->config.redis_address = server.address;
	f->config.redis_connect_timeout_ms = 1000;
	f->config.redis_reconnect_max_ms = 200;
	f->config.state_prefix = PREFIX;
	f->options.presence_grace_ms = GRACE;
	f->options.presence_ttl_ms = TTL;
	f->options.presence_max = 1000;
	f->options.coalesce_window_ms = 200;
	f->options.dedupe_window_ms = DEDUPE;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f->state != NULL) {
		state_stop(f->state);
		state_free(f->state);
	}
	if (f->other != NULL) {
		state_stop(f->other);
		state_free(f->other);
	}
	event_free(f->tick);
	event_base_free(f->base);
	redisFree(f->redis);
	free(f);
	return 0;
}

/* ---- the scripts, with fixed times ---- */

static void
test_presence_counts_connections_and_the_last_leave_starts_the_grace(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(presence(f, "enter", NOW, "bob", "c1"), 0);
	assert_int_equal(presence(f, "enter", NOW + 10, "bob", "c2"), 0);
	assert_field_json(f, PREFIX "presence:{r}", "bob",
	    "{\"c\":{\"c1\":1800000000000,\"c2\":1800000000010}}");
	/* Every room key expires: a connection lives TTL, then its grace. */
	assert_pttl(f, PREFIX "presence:{r}", TTL + GRACE - 1000, TTL + GRACE);
	assert_int_equal(presence(f, "leave", NOW + 20, "bob", "c1"), 0);
	assert_field_json(f, PREFIX "presence:{r}", "bob", "{\"c\":{\"c2\":1800000000010}}");
	assert_int_equal(presence(f, "leave", NOW + 30, "bob", "c2"), 0);
	assert_field_json(f, PREFIX "presence:{r}", "bob", "{\"c\":{},\"g\":1800000015030}");
	/* A leave of someone not present changes nothing. */
	assert_int_equal(presence(f, "leave", NOW + 40, "bob", "c2"), 0);
	assert_int_equal(presence(f, "leave", NOW + 40, "carol", ""), 0);
	assert_field_json(f, PREFIX "presence:{r}", "bob", "{\"c\":{},\"g\":1800000015030}");
	assert_int_equal(cmd_int(f, "HEXISTS %s carol", PREFIX "presence:{r}"), 0);
}

static void
test_presence_id_replaces_anonymous_and_leave_without_id_ends_every_connection(void **state)
{
	struct fixture *f = *state;

	presence(f, "enter", NOW, "bob", "");
	assert_field_json(f, PREFIX "presence:{r}", "bob", "{\"c\":{\"\":1800000000000}}");
	presence(f, "enter", NOW + 1, "bob", "c1");
	assert_field_json(f, PREFIX "presence:{r}", "bob", "{\"c\":{\"c1\":1800000000001}}");
	/* An id the client does not have ends its anonymous connection, if any. */
	presence(f, "enter", NOW + 2, "bob", "");
	presence(f, "leave", NOW + 3, "bob", "c9");
	assert_field_json(f, PREFIX "presence:{r}", "bob", "{\"c\":{\"c1\":1800000000001}}");
	presence(f, "enter", NOW + 4, "bob", "c2");
	presence(f, "leave", NOW + 5, "bob", "");
	assert_field_json(f, PREFIX "presence:{r}", "bob", "{\"c\":{},\"g\":1800000015005}");
}

static void
test_presence_expires_after_the_ttl_then_the_grace_runs_from_the_expiry(void **state)
{
	struct fixture *f = *state;
	redisReply *r;

	presence(f, "enter", NOW, "bob", "c1");
	/* Just before the TTL: present, skipped. */
	r = message(f, "m1", "A-1", 0, NOW + TTL - 1, 0, "bob", NULL);
	assert_decision(r, 0, 0, -1);
	freeReplyObject(r);
	/* Expired at NOW + TTL: in its grace until NOW + TTL + GRACE, held to then. */
	r = message(f, "m2", "A-2", 0, NOW + TTL + 5, 0, "bob", NULL);
	assert_decision(r, 0, 3, 1);
	freeReplyObject(r);
	assert_int_equal(cmd_score(f, PREFIX "due", "1:rbob"),
	    NOW + TTL + GRACE);
	/* After it: away, sent now. */
	r = message(f, "m3", "A-3", 0, NOW + TTL + GRACE, 0, "bob", NULL);
	assert_decision(r, 0, 1, 2);
	freeReplyObject(r);
	/* A later leave finds nothing present, and takes the expired entry away. */
	presence(f, "leave", NOW + TTL + GRACE + 1, "bob", "c1");
	assert_int_equal(cmd_int(f, "HEXISTS %s bob", PREFIX "presence:{r}"), 0);
}

static void
test_presence_sync_makes_the_room_exactly_the_listed_clients(void **state)
{
	struct fixture *f = *state;

	presence(f, "enter", NOW, "bob", "b1");		/* listed: keeps b1, refreshed */
	presence(f, "enter", NOW, "carol", "c1");	/* not listed: leaves, grace */
	presence(f, "enter", NOW, "dave", "d1");
	presence(f, "leave", NOW + 1, "dave", "d1");	/* listed in grace: back */
	freeReplyObject(message(f, "m1", "A-1", 0, NOW + 2, 0, "dave", NULL));
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "bucket:{r}:dave"), 1);
	assert_int_equal(SCRIPT_INT(f, STATE_SCRIPT_PRESENCE, 1, PREFIX "presence:{r}", "r",
	    "sync", NS(NOW + 100), NS(TTL), NS(GRACE), "bob", "dave", "erin", NULL), 1);
	assert_field_json(f, PREFIX "presence:{r}", "bob", "{\"c\":{\"b1\":1800000000100}}");
	assert_field_json(f, PREFIX "presence:{r}", "carol", "{\"c\":{},\"g\":1800000015100}");
	assert_field_json(f, PREFIX "presence:{r}", "dave", "{\"c\":{\"\":1800000000100}}");
	assert_field_json(f, PREFIX "presence:{r}", "erin", "{\"c\":{\"\":1800000000100}}");
	/* Back within the grace: what was held for dave is read. */
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "bucket:{r}:dave"), 0);
	assert_int_equal(cmd_int(f, "ZCARD %s", PREFIX "due"), 0);
}

static void
test_return_within_the_grace_drops_what_was_held(void **state)
{
	struct fixture *f = *state;

	presence(f, "enter", NOW, "bob", "c1");
	presence(f, "leave", NOW + 1, "bob", "c1");
	freeReplyObject(message(f, "m1", "A-1", 0, NOW + 2, WINDOW, "bob", NULL));
	assert_int_equal(cmd_int(f, "HLEN %s", PREFIX "bucket:{r}:bob"), 2);
	assert_int_equal(presence(f, "enter", NOW + 3, "bob", "c1"), 1);
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "bucket:{r}:bob"), 0);
	assert_int_equal(cmd_int(f, "ZCARD %s", PREFIX "due"), 0);
}

static void
test_message_counts_unread_for_the_away_and_dedupes_the_id(void **state)
{
	struct fixture *f = *state;
	char buf[64];
	redisReply *r;

	presence(f, "enter", NOW, "bob", "c1");
	r = message(f, "m1", "A-7", 0, NOW, 0, "bob", "carol");
	assert_int_equal(r->element[0]->integer, 0);	/* routed */
	assert_int_equal(r->element[1]->integer, 0);	/* not seen before */
	assert_int_equal(r->element[2]->elements, 0);
	assert_decision(r, 0, 0, -1);			/* bob present: skipped */
	assert_decision(r, 1, 1, 1);			/* carol away: now, badge 1 */
	freeReplyObject(r);
	assert_string_equal(cmd_str(f, buf, sizeof buf, "GET %s", PREFIX "msg:{r}:m1"), "A-7:0");
	assert_pttl(f, PREFIX "msg:{r}:m1", DEDUPE - 1000, DEDUPE);
	assert_string_equal(cmd_str(f, buf, sizeof buf, "HGET %s r", PREFIX "unread:{carol}"),
	    "1");
	assert_string_equal(cmd_str(f, buf, sizeof buf, "HGET %s %s", PREFIX "unread:{carol}",
	    ""), "1");
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "unread:{bob}"), 0);
	/* The same id from anyone else: a duplicate, nothing counted. */
	r = message(f, "m1", "B-1", 0, NOW + 1, 0, "bob", "carol");
	assert_int_equal(r->elements, 1);
	assert_int_equal(r->element[0]->integer, 1);
	freeReplyObject(r);
	assert_string_equal(cmd_str(f, buf, sizeof buf, "HGET %s %s", PREFIX "unread:{carol}",
	    ""), "1");
	/* Another message: carol's badge is her total across rooms. */
	freeReplyObject(cmd(f, "HSET %s other 4 %s 5", PREFIX "unread:{carol}", ""));
	r = message(f, "m2", "A-8", 0, NOW + 2, 0, "carol", NULL);
	assert_decision(r, 0, 1, 6);
	freeReplyObject(r);
}

static void
test_message_holds_in_grace_to_its_end_and_away_for_the_window(void **state)
{
	struct fixture *f = *state;
	redisReply *r;

	presence(f, "enter", NOW, "bob", "c1");
	presence(f, "leave", NOW + 10, "bob", "c1");	/* grace to NOW + 10 + GRACE */
	r = message(f, "m1", "A-1", 0, NOW + 20, WINDOW, "bob", "carol");
	assert_decision(r, 0, 3, 1);		/* bob: held to the end of his grace */
	assert_decision(r, 1, 2, 1);		/* carol: held for the window */
	freeReplyObject(r);
	assert_field_json(f, PREFIX "bucket:{r}:bob", "m1",
	    "{\"n\":1,\"id\":\"m1\",\"sender\":\"alice\",\"text\":\"t-m1\"}");
	assert_int_equal(cmd_score(f, PREFIX "due", "1:rbob"), NOW + 10 + GRACE);
	assert_int_equal(cmd_score(f, PREFIX "due", "1:rcarol"), NOW + 20 + WINDOW);
	assert_pttl(f, PREFIX "bucket:{r}:carol", WINDOW + DEDUPE - 1000, WINDOW + DEDUPE);
	assert_int_equal(cmd_int(f, "SISMEMBER %s bob", PREFIX "held:{r}:m1"), 1);
	assert_int_equal(cmd_int(f, "SISMEMBER %s carol", PREFIX "held:{r}:m1"), 1);
	assert_pttl(f, PREFIX "held:{r}:m1", DEDUPE - 1000, DEDUPE);
	/* The second joins the bucket; the window keeps its first end. */
	r = message(f, "m2", "A-2", 0, NOW + 500, WINDOW, "carol", NULL);
	assert_decision(r, 0, 2, 2);
	freeReplyObject(r);
	assert_field_json(f, PREFIX "bucket:{r}:carol", "m2",
	    "{\"n\":2,\"id\":\"m2\",\"sender\":\"alice\",\"text\":\"t-m2\"}");
	assert_int_equal(cmd_score(f, PREFIX "due", "1:rcarol"), NOW + 20 + WINDOW);
}

static void
test_message_decided_again_by_its_own_routing_counts_nothing_twice(void **state)
{
	struct fixture *f = *state;
	char buf[64];
	redisReply *r;

	presence(f, "enter", NOW, "bob", "c1");
	presence(f, "leave", NOW + 1, "bob", "c1");
	r = message(f, "m1", "A-1", 0, NOW + 2, 0, "bob", "carol");
	assert_decision(r, 0, 3, 1);
	assert_decision(r, 1, 1, 1);
	freeReplyObject(r);
	freeReplyObject(cmd(f, "SADD %s carol-phone", PREFIX "sent:{r}:m1"));
	/* Its answer was lost: the same token again is a redelivery, not a duplicate. */
	r = message(f, "m1", "A-1", 0, NOW + 3, 0, "bob", "carol");
	assert_int_equal(r->element[0]->integer, 0);
	assert_int_equal(r->element[1]->integer, 1);		/* seen */
	assert_int_equal(r->element[2]->elements, 1);
	assert_string_equal(r->element[2]->element[0]->str, "carol-phone");
	assert_decision(r, 0, 0, -1);	/* held before: its bucket has it */
	assert_decision(r, 1, 1, 1);	/* sent now, but not to carol-phone */
	freeReplyObject(r);
	assert_string_equal(cmd_str(f, buf, sizeof buf, "HGET %s %s", PREFIX "unread:{carol}",
	    ""), "1");
	assert_int_equal(cmd_int(f, "HLEN %s", PREFIX "bucket:{r}:bob"), 2);
	/* Redelivered by another instance: the same. */
	r = message(f, "m1", "B-9", 1, NOW + 4, 0, "bob", "carol");
	assert_int_equal(r->element[1]->integer, 1);
	assert_decision(r, 0, 0, -1);
	assert_decision(r, 1, 1, 1);
	freeReplyObject(r);
	/* carol came and went since: in her grace, she was here after it: skipped. */
	presence(f, "enter", NOW + 5, "carol", "c1");
	presence(f, "leave", NOW + 6, "carol", "c1");
	r = message(f, "m1", "B-10", 1, NOW + 7, 0, "bob", "carol");
	assert_decision(r, 1, 0, -1);
	freeReplyObject(r);
}

static void
test_message_deleted_before_it_is_routed_is_deleted_for_every_chunk(void **state)
{
	struct fixture *f = *state;
	redisReply *r;

	/* A deletion first (through any instance): the message never counts. */
	assert_int_equal(SCRIPT_INT(f, STATE_SCRIPT_CHANGE, 2, PREFIX "held:{r}:m1",
	    PREFIX "msg:{r}:m1", "r", "m1", "1", NS(DEDUPE), "0", "", NULL), 0);
	r = message(f, "m1", "A-1", 1, NOW, 0, "carol", NULL);
	assert_int_equal(r->elements, 1);
	assert_int_equal(r->element[0]->integer, 2);
	freeReplyObject(r);
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "unread:{carol}"), 0);
	/* The next chunk of a big room's message deleted meanwhile stops too. */
	freeReplyObject(message(f, "m2", "A-2", 0, NOW, 0, "carol", NULL));
	SCRIPT_INT(f, STATE_SCRIPT_CHANGE, 2, PREFIX "held:{r}:m2", PREFIX "msg:{r}:m2", "r",
	    "m2", "1", NS(DEDUPE), "0", "", NULL);
	r = script(f, STATE_SCRIPT_MESSAGE, 4, PREFIX "msg:{r}:m2", PREFIX "sent:{r}:m2",
	    PREFIX "held:{r}:m2", PREFIX "presence:{r}", "r", "m2", "A-2", "1", "0", "0",
	    NS(NOW), "1", NS(DEDUPE), "0", NS(GRACE), NS(TTL), "{\"id\":\"m2\"}", "dave", "1",
	    NULL);
	assert_int_equal(r->element[0]->integer, 2);
	freeReplyObject(r);
}

static void
test_read_resets_the_room_and_an_empty_hash_goes(void **state)
{
	struct fixture *f = *state;
	char buf[64];

	freeReplyObject(cmd(f, "HSET %s r1 3 r2 2 %s 5", PREFIX "unread:{bob}", ""));
	assert_int_equal(SCRIPT_INT(f, STATE_SCRIPT_READ, 1, PREFIX "unread:{bob}", "r1", NULL),
	    2);
	assert_int_equal(cmd_int(f, "HEXISTS %s r1", PREFIX "unread:{bob}"), 0);
	assert_string_equal(cmd_str(f, buf, sizeof buf, "HGET %s %s", PREFIX "unread:{bob}",
	    ""), "2");
	/* Nothing unread there: nothing changes. */
	assert_int_equal(SCRIPT_INT(f, STATE_SCRIPT_READ, 1, PREFIX "unread:{bob}", "r9", NULL),
	    2);
	assert_int_equal(SCRIPT_INT(f, STATE_SCRIPT_READ, 1, PREFIX "unread:{bob}", "r2", NULL),
	    0);
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "unread:{bob}"), 0);
}

static void
test_change_edits_and_deletes_the_held_copies(void **state)
{
	struct fixture *f = *state;

	freeReplyObject(message(f, "m1", "A-1", 0, NOW, WINDOW, "bob", "carol"));
	freeReplyObject(message(f, "m2", "A-2", 0, NOW + 1, WINDOW, "bob", NULL));
	assert_int_equal(SCRIPT_INT(f, STATE_SCRIPT_CHANGE, 2, PREFIX "held:{r}:m1",
	    PREFIX "msg:{r}:m1", "r", "m1", "0", NS(DEDUPE), "1", "edited \"text\"/é", NULL), 0);
	assert_field_json(f, PREFIX "bucket:{r}:bob", "m1",
	    "{\"n\":1,\"id\":\"m1\",\"sender\":\"alice\",\"text\":\"edited \\\"text\\\"/é\"}");
	assert_field_json(f, PREFIX "bucket:{r}:carol", "m1",
	    "{\"n\":1,\"id\":\"m1\",\"sender\":\"alice\",\"text\":\"edited \\\"text\\\"/é\"}");
	/* Deleted: carol's bucket is left empty, and goes; bob's keeps m2. */
	assert_int_equal(SCRIPT_INT(f, STATE_SCRIPT_CHANGE, 2, PREFIX "held:{r}:m1",
	    PREFIX "msg:{r}:m1", "r", "m1", "1", NS(DEDUPE), "0", "", NULL), 2);
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "bucket:{r}:carol"), 0);
	assert_int_equal(cmd_score(f, PREFIX "due", "1:rbob"), NOW + WINDOW);
	assert_int_equal(cmd_int(f, "ZCARD %s", PREFIX "due"), 1);
	assert_int_equal(cmd_int(f, "HEXISTS %s m1", PREFIX "bucket:{r}:bob"), 0);
	assert_int_equal(cmd_int(f, "HEXISTS %s m2", PREFIX "bucket:{r}:bob"), 1);
}

static void
test_poll_claims_due_buckets_once_drops_the_returned_and_waits_for_a_grace(void **state)
{
	struct fixture *f = *state;
	const redisReply *b;
	redisReply *r;

	freeReplyObject(message(f, "m1", "A-1", 0, NOW, WINDOW, "bob", "carol"));
	freeReplyObject(message(f, "m2", "A-2", 0, NOW + 1, WINDOW, "bob", "dave"));
	presence(f, "enter", NOW + 2, "dave", "d1");	/* here when it is due: read */
	presence(f, "enter", NOW + 2, "carol", "c1");	/* carol came and left again: */
	presence(f, "leave", NOW + 3, "carol", "c1");	/* her grace decides */
	/* Not due yet. */
	r = poll_at(f, NOW + WINDOW - 1, "X-1");
	assert_int_equal(r->elements, 2);
	assert_int_equal(r->element[0]->integer, 3);
	freeReplyObject(r);
	r = poll_at(f, NOW + WINDOW + 1, "X-2");
	/* bob's claimed; carol's waits for her grace; dave's was dropped (back). */
	assert_int_equal(r->elements, 3);
	assert_int_equal(r->element[0]->integer, 1);
	assert_int_equal(r->element[1]->integer, 0);
	b = r->element[2];
	assert_int_equal(b->elements, 8);
	assert_string_equal(b->element[0]->str, PREFIX "claim:{r}:X-2:1");
	assert_string_equal(b->element[1]->str, "r");
	assert_string_equal(b->element[2]->str, "bob");
	assert_int_equal(b->element[3]->integer, 2);	/* bob's badge */
	assert_int_equal(b->element[4]->integer, 0);	/* a first claim */
	assert_int_equal(b->element[5]->elements, 0);
	freeReplyObject(r);
	assert_int_equal(cmd_score(f, PREFIX "due", "1:rcarol"),
	    NOW + 3 + GRACE);
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "bucket:{r}:bob"), 0);
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "bucket:{r}:dave"), 0);
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "bucket:{r}:carol"), 1);
	assert_int_equal(cmd_score(f, PREFIX "claims", PREFIX "claim:{r}:X-2:1"),
	    NOW + WINDOW + 1 + 30000);
	assert_field_json(f, PREFIX "claim:{r}:X-2:1", "",
	    "{\"room\":\"r\",\"client\":\"bob\"}");
	/* Claimed once: a second poller finds nothing of it. */
	r = poll_at(f, NOW + WINDOW + 2, "Y-1");
	assert_int_equal(r->elements, 2);
	freeReplyObject(r);
}

static void
test_poll_claims_a_claim_whose_lease_ran_out_with_the_devices_sent_before(void **state)
{
	struct fixture *f = *state;
	const redisReply *b;
	redisReply *r;

	freeReplyObject(message(f, "m1", "A-1", 0, NOW, WINDOW, "bob", NULL));
	freeReplyObject(message(f, "m2", "A-2", 0, NOW + 1, WINDOW, "bob", NULL));
	freeReplyObject(poll_at(f, NOW + WINDOW, "X-1"));
	/* X sent the newest message to one device, then died. */
	freeReplyObject(cmd(f, "SADD %s bob-phone", PREFIX "sent:{r}:m2"));
	r = poll_at(f, NOW + WINDOW + 29999, "Y-1");
	assert_int_equal(r->elements, 2);
	freeReplyObject(r);
	r = poll_at(f, NOW + WINDOW + 30000, "Y-2");
	assert_int_equal(r->elements, 3);
	b = r->element[2];
	assert_string_equal(b->element[0]->str, PREFIX "claim:{r}:X-1:1");
	assert_string_equal(b->element[2]->str, "bob");
	assert_int_equal(b->element[4]->integer, 1);	/* claimed before */
	assert_int_equal(b->element[5]->elements, 1);
	assert_string_equal(b->element[5]->element[0]->str, "bob-phone");
	assert_int_equal(b->elements, 8);		/* both messages */
	freeReplyObject(r);
	/* Leased again, to Y. */
	assert_int_equal(cmd_score(f, PREFIX "claims", PREFIX "claim:{r}:X-1:1"),
	    NOW + WINDOW + 60000);
}

static void
test_flush_writes_marks_deletes_finished_claims_and_renews_leases(void **state)
{
	struct fixture *f = *state;

	freeReplyObject(cmd(f, "ZADD %s 100 %s 100 %s", PREFIX "claims", PREFIX "claim:{r}:a",
	    PREFIX "claim:{r}:b"));
	freeReplyObject(cmd(f, "HSET %s %s x", PREFIX "claim:{r}:a", ""));
	freeReplyObject(cmd(f, "HSET %s %s x", PREFIX "claim:{r}:b", ""));
	assert_int_equal(SCRIPT_INT(f, STATE_SCRIPT_FLUSH, 1, PREFIX "claims", NS(NOW),
	    NS(DEDUPE), LEASE, "3", "r", "m1", "d1", "r", "m1", "d2", "r", "m2", "d1",
	    "1", PREFIX "claim:{r}:a", "2", PREFIX "claim:{r}:b", PREFIX "claim:{r}:gone",
	    NULL), 0);
	assert_int_equal(cmd_int(f, "SCARD %s", PREFIX "sent:{r}:m1"), 2);
	assert_int_equal(cmd_int(f, "SISMEMBER %s d1", PREFIX "sent:{r}:m2"), 1);
	assert_pttl(f, PREFIX "sent:{r}:m1", DEDUPE - 1000, DEDUPE);
	assert_int_equal(cmd_int(f, "EXISTS %s", PREFIX "claim:{r}:a"), 0);
	assert_int_equal(cmd_int(f, "ZCARD %s", PREFIX "claims"), 1);
	assert_int_equal(cmd_score(f, PREFIX "claims", PREFIX "claim:{r}:b"),
	    NOW + 30000);
	assert_pttl(f, PREFIX "claim:{r}:b", 30000 + DEDUPE - 1000, 30000 + DEDUPE);
}

static void
test_bucket_entries_read_back_are_checked_field_by_field(void **state)
{
	struct state_held h;
	char err[160];
	static const char *const bad[] = {
		"", "[]", "{\"id\":\"m1\",\"sender\":\"a\"}",
		"{\"n\":0,\"id\":\"m1\",\"sender\":\"a\"}",
		"{\"n\":1,\"id\":\"\",\"sender\":\"a\"}",
		"{\"n\":1,\"id\":\"m\\u0001\",\"sender\":\"a\"}",
		"{\"n\":1,\"id\":\"m1\"}",
		"{\"n\":1,\"id\":\"m1\",\"sender\":\"a\",\"text\":7}",
		"{\"n\":1,\"id\":\"m1\",\"sender\":\"a\",\"push\":\"[1]\"}",
		"{\"n\":1,\"id\":\"m1\",\"sender\":\"a\",\"push\":{}}",
		"{\"n\":1,\"n\":2,\"id\":\"m1\",\"sender\":\"a\"}",
		"{\"n\":1,\"id\":\"m1\",\"sender\":\"a\",\"text\":\"\\ud800\"}",
		"{\"n\":1,\"ts\":-1,\"id\":\"m1\",\"sender\":\"a\"}",
		"{\"n\":1,\"ts\":\"1\",\"id\":\"m1\",\"sender\":\"a\"}",
	};
	struct notify_message m = { "r", "m1", "alice", "Alice", NULL, "hi \"there\"", NULL };
	char *text, with_n[256];
	json_t *push = json_pack("{s:{s:s}}", "data", "k", "v");

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (state_bucket_parse(bad[i], strlen(bad[i]), &h, err, sizeof err) == 0)
			fail_msg("entry %zu (%s) was read", i, bad[i]);
		assert_null(h.id);
	}
	m.push = push;
	assert_non_null(text = state_bucket_encode(&m, 1795857302123LL));
	/* What the script stores: the order first. */
	snprintf(with_n, sizeof with_n, "{\"n\":3,%s", text + 1);
	assert_int_equal(state_bucket_parse(with_n, strlen(with_n), &h, err, sizeof err), 0);
	assert_int_equal(h.order, 3);
	assert_int_equal(h.ts, 1795857302123LL);
	assert_string_equal(h.id, "m1");
	assert_string_equal(h.sender, "alice");
	assert_string_equal(h.sender_name, "Alice");
	assert_null(h.room_name);
	assert_string_equal(h.text, "hi \"there\"");
	assert_true(json_equal(h.push, push));
	state_held_free(&h);
	free(text);
	json_decref(push);
}

/* ---- the state on the loop ---- */

static void
test_state_is_ready_once_its_scripts_are_loaded(void **state)
{
	struct fixture *f = *state;
	struct state_stats st;

	f->state = state_start(f, &f->rec);
	assert_string_equal(state_backend(f->state), "redis");
	assert_int_equal(state_synchronous(f->state), 0);
	assert_int_equal(f->rec.ready, 1);
	assert_null(state_redis_why(f->state));
	st = stats(f->state);
	assert_int_equal(st.up, 1);
	assert_int_equal(st.script_errors, 0);
}

static void
test_decide_costs_one_round_trip_and_answers_each_candidate(void **state)
{
	struct fixture *f = *state;
	struct room_event e1 = message_event("r", "m1", "one"), e2 = message_event("r", "m1", "x");
	struct room_event enter = presence_event(EVENT_PRESENCE_ENTER, "r", "bob", "c1");
	struct state_candidate c[3] = { { "bob", 1, 0, 0 }, { "carol", 1, 0, 0 },
		{ "dave", 0, 0, 0 } };
	struct tracker *t = tracker_new(on_ack, f, on_tracker_done, f);
	struct decided d;

	f->options.coalesce_window_ms = 0;
	f->state = state_start(f, &f->rec);
	state_presence(f->state, &enter, t);
	tracker_release(t);
	assert_int_equal(f->acks, 0);	/* held until Redis has it */
	WAIT_FOR(f, f->acks == 1, 3000);
	assert_int_equal(f->acks, 1);
	decide(f, f->state, &e1, c, 3, &d);
	assert_int_equal(d.result, STATE_OK);
	assert_int_equal(c[0].decision, STATE_SKIP);
	assert_int_equal(c[1].decision, STATE_SEND);
	assert_int_equal(c[1].badge, 1);
	assert_int_equal(c[2].decision, STATE_SKIP);	/* muted: unread only */
	{
		char buf[16];

		assert_string_equal(cmd_str(f, buf, sizeof buf, "HGET %s r",
		    PREFIX "unread:{dave}"), "1");
	}
	assert_int_equal(stats(f->state).round_trips[STATE_TRIP_MESSAGE], 1);
	assert_int_equal(stats(f->state).round_trips[STATE_TRIP_PRESENCE], 1);
	/* The same id from another routing: a duplicate. */
	decide(f, f->state, &e2, c, 3, &d);
	assert_int_equal(d.result, STATE_DUPLICATE);
	assert_int_equal(stats(f->state).round_trips[STATE_TRIP_MESSAGE], 2);
}

static void
test_redelivered_message_answers_the_devices_marked_sent(void **state)
{
	struct fixture *f = *state;
	struct room_event e = message_event("r", "m1", "one");
	struct state_candidate c[1] = { { "carol", 1, 0, 0 } };
	struct decided d;

	f->options.coalesce_window_ms = 0;
	f->state = state_start(f, &f->rec);
	decide(f, f->state, &e, c, 1, &d);
	assert_int_equal(c[0].decision, STATE_SEND);
	state_mark_sent(f->state, "r", "m1", "carol-phone", clock_now_ms());
	state_flush(f->state);
	WAIT_FOR(f, stats(f->state).waiting == 0, 3000);
	assert_int_equal(cmd_int(f, "SISMEMBER %s carol-phone", PREFIX "sent:{r}:m1"), 1);
	assert_int_equal(stats(f->state).round_trips[STATE_TRIP_FLUSH], 1);
	e.redelivered = 1;
	decide(f, f->state, &e, c, 1, &d);
	assert_int_equal(d.result, STATE_OK);
	assert_int_equal(d.sent_count, 1);
	assert_string_equal(d.sent[0], "carol-phone");
	assert_int_equal(c[0].decision, STATE_SEND);
	assert_int_equal(c[0].badge, 1);		/* not counted again */
}

static void
test_two_instances_claim_a_due_bucket_exactly_once(void **state)
{
	struct fixture *f = *state;
	struct room_event e1 = message_event("r", "m1", "first");
	struct room_event e2 = message_event("r", "m2", "second");
	struct state_candidate c[1] = { { "bob", 1, 0, 0 } };
	struct decided d;
	struct seen_batch *b;

	f->options.coalesce_window_ms = 100;	/* polled every 25 ms by each */
	f->state = state_start(f, &f->rec);
	f->other = state_start(f, &f->other_rec);
	/* Posted in this order, held in the other: the batch goes by when they were posted. */
	e1.ts = 1795857302123LL;
	e2.ts = e1.ts + 1;
	decide(f, f->other, &e2, c, 1, &d);
	assert_int_equal(c[0].decision, STATE_HOLD_WINDOW);
	decide(f, f->state, &e1, c, 1, &d);
	assert_int_equal(c[0].decision, STATE_HOLD_WINDOW);
	WAIT_FOR(f, f->rec.count + f->other_rec.count > 0, 3000);
	run_for(f, 300);
	assert_int_equal(f->rec.count + f->other_rec.count, 1);
	b = f->rec.count == 1 ? &f->rec.batches[0] : &f->other_rec.batches[0];
	assert_string_equal(b->room, "r");
	assert_string_equal(b->client, "bob");
	assert_int_equal(b->count, 2);
	assert_string_equal(b->ids[0], "m1");
	assert_string_equal(b->ids[1], "m2");
	assert_string_equal(b->latest_text, "second");
	assert_int_equal(b->badge, 2);
	assert_int_equal(b->targets_known, 0);
	assert_int_equal(b->sent_count, 0);
	/* Its send is over (nothing took the batch): the claim goes with the next flush. */
	assert_int_equal(cmd_int(f, "ZCARD %s", PREFIX "claims"), 1);
	state_flush(f->state);
	state_flush(f->other);
	WAIT_FOR(f, cmd_int(f, "ZCARD %s", PREFIX "claims") == 0, 3000);
	assert_int_equal(cmd_int(f, "ZCARD %s", PREFIX "claims"), 0);
	assert_int_equal(cmd_int(f, "ZCARD %s", PREFIX "due"), 0);
	assert_int_equal(stats(f->state).pending_recipients, 0);
}

static void
test_edits_and_deletions_reach_held_messages_through_the_state(void **state)
{
	struct fixture *f = *state;
	struct room_event e1 = message_event("r", "m1", "helo"), e2 = message_event("r", "m2", "x");
	struct room_event edit = message_event("r", "m1", "hello"), del = message_event("r", "m2",
	    NULL);
	struct state_candidate c[1] = { { "bob", 1, 0, 0 } };
	struct decided d;

	edit.type = EVENT_MESSAGE_UPDATE;
	del.type = EVENT_MESSAGE_DELETE;
	f->options.coalesce_window_ms = 300;
	f->state = state_start(f, &f->rec);
	decide(f, f->state, &e1, c, 1, &d);
	decide(f, f->state, &e2, c, 1, &d);
	state_change(f->state, &edit, NULL, on_changed, f);
	state_change(f->state, &del, NULL, on_changed, f);
	WAIT_FOR(f, f->changed_calls == 2, 3000);
	assert_int_equal(f->changed, 1);
	assert_int_equal(stats(f->state).round_trips[STATE_TRIP_CHANGE], 2);
	WAIT_FOR(f, f->rec.count == 1, 3000);
	assert_int_equal(f->rec.count, 1);
	assert_int_equal(f->rec.batches[0].count, 1);
	assert_string_equal(f->rec.batches[0].ids[0], "m1");
	assert_string_equal(f->rec.batches[0].latest_text, "hello");
}

static void
test_calls_wait_while_redis_is_down_and_go_in_order_once_it_is_back(void **state)
{
	struct fixture *f = *state;
	struct room_event enter = presence_event(EVENT_PRESENCE_ENTER, "r", "bob", "c1");
	struct room_event e = message_event("r", "m1", "one");
	struct state_candidate c[1] = { { "bob", 1, 0, 0 } };
	struct tracker *t = tracker_new(on_ack, f, on_tracker_done, f);
	struct state_message *m;
	struct decided d;

	f->state = state_start(f, &f->rec);
	server_kill();
	WAIT_FOR(f, !state_ready(f->state), 3000);
	assert_false(state_ready(f->state));
	assert_string_equal(state_redis_why(f->state), "disconnected");
	assert_int_equal(stats(f->state).up, 0);
	state_presence(f->state, &enter, t);
	tracker_release(t);
	memset(&d, 0, sizeof d);
	m = state_message_new(f->state, &e);
	state_decide(m, c, 1, 1, on_decided, &d);
	run_for(f, 300);
	assert_int_equal(f->acks, 0);
	assert_int_equal(d.done, 0);
	assert_int_equal(stats(f->state).waiting, 2);
	assert_int_equal(server_resume(), 0);
	redisFree(f->redis);
	f->redis = redisConnect("127.0.0.1", server.port);
	WAIT_FOR(f, d.done, 5000);
	assert_true(state_ready(f->state));
	assert_int_equal(f->rec.ready, 2);
	assert_int_equal(f->acks, 1);
	/* In order: bob entered before the message, so he is present for it. */
	assert_int_equal(d.result, STATE_OK);
	assert_int_equal(c[0].decision, STATE_SKIP);
	assert_int_equal(stats(f->state).waiting, 0);
	state_message_free(m);
}

static void
test_scripts_flushed_under_the_state_are_loaded_again_and_the_call_sent_again(void **state)
{
	struct fixture *f = *state;
	struct room_event enter = presence_event(EVENT_PRESENCE_ENTER, "r", "bob", "c1");
	struct tracker *t = tracker_new(on_ack, f, on_tracker_done, f);

	f->state = state_start(f, &f->rec);
	freeReplyObject(cmd(f, "SCRIPT FLUSH"));
	state_presence(f->state, &enter, t);
	tracker_release(t);
	WAIT_FOR(f, f->acks == 1, 5000);
	assert_int_equal(f->acks, 1);
	assert_int_equal(stats(f->state).script_errors, 1);
	assert_int_equal(cmd_int(f, "HEXISTS %s bob", PREFIX "presence:{r}"), 1);
}

static void
test_a_call_failing_every_time_is_given_up_unacknowledged(void **state)
{
	struct fixture *f = *state;
	struct room_event enter = presence_event(EVENT_PRESENCE_ENTER, "r", "bob", "c1");
	struct tracker *t = tracker_new(on_ack, f, on_tracker_done, f);

	f->state = state_start(f, &f->rec);
	/* A key of another type where the room's presence goes. */
	freeReplyObject(cmd(f, "SET %s x", PREFIX "presence:{r}"));
	state_presence(f->state, &enter, t);
	tracker_release(t);
	WAIT_FOR(f, f->tracker_done == 1, 5000);
	assert_int_equal(f->tracker_done, 1);
	assert_int_equal(f->acks, 0);
	assert_int_equal(stats(f->state).script_errors, STATE_REDIS_ATTEMPTS);
	WAIT_FOR(f, state_ready(f->state), 3000);
	assert_true(state_ready(f->state));
}

static void
test_stop_abandons_what_waits_for_redis(void **state)
{
	struct fixture *f = *state;
	struct room_event enter = presence_event(EVENT_PRESENCE_ENTER, "r", "bob", "c1");
	struct room_event e = message_event("r", "m1", "one");
	struct state_candidate c[1] = { { "bob", 1, 0, 0 } };
	struct tracker *t = tracker_new(on_ack, f, on_tracker_done, f);
	struct state_message *m;
	struct decided d;

	f->state = state_start(f, &f->rec);
	server_kill();
	WAIT_FOR(f, !state_ready(f->state), 3000);
	state_presence(f->state, &enter, t);
	tracker_release(t);
	memset(&d, 0, sizeof d);
	m = state_message_new(f->state, &e);
	state_decide(m, c, 1, 1, on_decided, &d);
	state_stop(f->state);
	assert_int_equal(d.done, 1);
	assert_int_equal(d.result, STATE_ESTOPPED);
	assert_int_equal(f->tracker_done, 1);
	assert_int_equal(f->acks, 0);
	state_message_free(m);
	assert_int_equal(server_resume(), 0);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_presence_counts_connections_and_the_last_leave_starts_the_grace),
		TEST(test_presence_id_replaces_anonymous_and_leave_without_id_ends_every_connection),
		TEST(test_presence_expires_after_the_ttl_then_the_grace_runs_from_the_expiry),
		TEST(test_presence_sync_makes_the_room_exactly_the_listed_clients),
		TEST(test_return_within_the_grace_drops_what_was_held),
		TEST(test_message_counts_unread_for_the_away_and_dedupes_the_id),
		TEST(test_message_holds_in_grace_to_its_end_and_away_for_the_window),
		TEST(test_message_decided_again_by_its_own_routing_counts_nothing_twice),
		TEST(test_message_deleted_before_it_is_routed_is_deleted_for_every_chunk),
		TEST(test_read_resets_the_room_and_an_empty_hash_goes),
		TEST(test_change_edits_and_deletes_the_held_copies),
		TEST(test_poll_claims_due_buckets_once_drops_the_returned_and_waits_for_a_grace),
		TEST(test_poll_claims_a_claim_whose_lease_ran_out_with_the_devices_sent_before),
		TEST(test_flush_writes_marks_deletes_finished_claims_and_renews_leases),
		TEST(test_bucket_entries_read_back_are_checked_field_by_field),
		TEST(test_state_is_ready_once_its_scripts_are_loaded),
		TEST(test_decide_costs_one_round_trip_and_answers_each_candidate),
		TEST(test_redelivered_message_answers_the_devices_marked_sent),
		TEST(test_two_instances_claim_a_due_bucket_exactly_once),
		TEST(test_edits_and_deletions_reach_held_messages_through_the_state),
		TEST(test_calls_wait_while_redis_is_down_and_go_in_order_once_it_is_back),
		TEST(test_scripts_flushed_under_the_state_are_loaded_again_and_the_call_sent_again),
		TEST(test_a_call_failing_every_time_is_given_up_unacknowledged),
		TEST(test_stop_abandons_what_waits_for_redis),
	};
	int rv;

	signal(SIGPIPE, SIG_IGN);
	if (!redis_server_installed()) {
		printf("1..0 # SKIP redis-server is not installed\n");
		return 0;
	}
	if (server_start("test_state_redis") != 0) {
		fprintf(stderr, "cannot start redis-server (see %s/redis.log)\n", server.dir);
		return 1;
	}
	rv = cmocka_run_group_tests_name("state_redis", tests, NULL, NULL);
	server_stop();
	return rv;
}
