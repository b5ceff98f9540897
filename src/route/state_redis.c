/* Room state in Redis, shared by the instances with the same server and prefix. */
#include "autoconf.h"

#include <sys/queue.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "model.h"
#include "redis_link.h"
#include "state_bucket.h"
#include "state_redis.h"
#include "state_redis_scripts.h"
#include "tracker.h"
#include "utf8.h"
#include "xmalloc.h"

#define STATE_REDIS_POLL_MS 100		/* due buckets are polled this often, at most */
#define STATE_REDIS_POLL_MIN_MS 10
#define STATE_REDIS_POLL_MAX 100	/* buckets (and stale claims) claimed per poll */
#define STATE_REDIS_RENEW_MS 10000	/* claims still sending renew their lease */
#define STATE_REDIS_MARKS_MAX 1000	/* notified marks per flush call */

/* A command's arguments, each with its length (ids may hold any byte but NUL). */
struct redis_args {
	char **v;
	size_t *len;
	size_t count, capacity;
};

struct state_redis;
struct redis_message;

/* One script call: waiting while Redis is down, then sent, answered in order. */
struct redis_call {
	TAILQ_ENTRY(redis_call) entry;
	struct state_redis *s;
	enum state_script script;
	enum state_trip trip;
	struct redis_args args;		/* EVALSHA, the script's sha, numkeys, keys, args */
	unsigned errors;		/* error answers so far */
	struct redis_message *message;	/* a decide's */
	struct tracker *tracker;	/* an event's, held until it is answered */
	state_changed_fn *changed;
	void *arg;
	char what[160];			/* for logs: the script and what it was about */
};
TAILQ_HEAD(redis_call_list, redis_call);

/* A claimed batch while it is being sent: its lease is renewed until it is done. */
struct redis_claim {
	TAILQ_ENTRY(redis_claim) entry;
	struct state_redis *s;
	char *key;
	int finished;			/* its send ended: deleted at the next flush */
};
TAILQ_HEAD(redis_claim_list, redis_claim);

/* A message being routed: which decide of it comes next, and what the first said. */
struct redis_message {
	struct state_message base;
	const struct room_event *event;
	char token[64];			/* this routing's mark in the message's dedupe key */
	int64_t ts;			/* when it was posted: its ts, else when it came */
	unsigned chunk;
	int seen;			/* handled before: no unread, sent devices left out */
	struct state_candidate *candidates;
	size_t count;
	state_decided_fn *done;
	void *arg;
};

struct state_redis {
	struct state state;
	struct event_base *base;
	struct state_options options;
	struct state_callbacks callbacks;
	char *prefix;
	char token[24];			/* this instance's, random */
	uint64_t sequence;		/* of routings and polls */
	struct redis_link *link;
	struct script_load {
		struct state_redis *s;
		size_t index;
	} loads[STATE_SCRIPT_COUNT];		/* SCRIPT LOAD's privdata */
	char *scripts[STATE_SCRIPT_COUNT];	/* prelude and body */
	char sha[STATE_SCRIPT_COUNT][48];
	size_t loading;			/* SCRIPT LOADs not answered yet */
	int up;				/* the scripts are loaded: calls go */
	int stopping;
	struct redis_call_list waiting;	/* not sent yet */
	struct redis_call_list sent;	/* sent, not answered yet */
	size_t waiting_count, sent_count;
	char **marks;			/* written behind: room, message, device, ... */
	size_t mark_count, mark_capacity;	/* strings, three a mark */
	struct redis_claim_list claims;	/* batches this instance is sending */
	char **finished;		/* claims whose send ended, to delete */
	size_t finished_count, finished_capacity;
	int64_t renewed_at;		/* monotonic ms of the last lease renewal */
	struct event *poll_timer;
	int polling;			/* a poll is waiting or sent */
	size_t pending_recipients;	/* buckets waiting, as of the last poll */
	struct redis_ratelimit error_log;
	uint64_t round_trips[STATE_TRIP_KINDS];
	uint64_t script_errors;
};

static const struct state_ops state_redis_ops;
static void redis_pump(struct state_redis *);
static void redis_poll(struct state_redis *);
static void redis_answer(redisAsyncContext *, void *, void *);

/* ---- arguments ---- */

static void
args_add_len(struct redis_args *a, const char *s, size_t len)
{
	if (a->count == a->capacity) {
		a->capacity = a->capacity == 0 ? 32 : a->capacity * 2;
		a->v = xreallocarray(a->v, a->capacity, sizeof *a->v);
		a->len = xreallocarray(a->len, a->capacity, sizeof *a->len);
	}
	a->v[a->count] = xmalloc(len + 1);
	memcpy(a->v[a->count], s, len);
	a->v[a->count][len] = '\0';
	a->len[a->count++] = len;
}

/* Append a string argument. */
static void
args_add(struct redis_args *a, const char *s)
{
	args_add_len(a, s, strlen(s));
}

/* Append a number, in decimal. */
static void
args_add_int(struct redis_args *a, int64_t n)
{
	char buf[24];

	snprintf(buf, sizeof buf, "%" PRId64, n);
	args_add(a, buf);
}

/* prefix, what, "{room}" and, unless NULL, ":" and rest: a key of one room. */
static void
args_add_key(struct redis_args *a, const char *prefix, const char *what, const char *tag,
    const char *rest)
{
	size_t len = strlen(prefix) + strlen(what) + strlen(tag) + 3 +
	    (rest != NULL ? strlen(rest) + 1 : 0);
	char *key = xmalloc(len + 1);

	snprintf(key, len + 1, "%s%s{%s}%s%s", prefix, what, tag, rest != NULL ? ":" : "",
	    rest != NULL ? rest : "");
	args_add_len(a, key, strlen(key));
	free(key);
}

/* prefix and name: a key of no room (the due and claims indexes). */
static void
args_add_name(struct redis_args *a, const char *prefix, const char *name)
{
	size_t lp = strlen(prefix), ln = strlen(name);
	char *key = xmalloc(lp + ln + 1);

	memcpy(key, prefix, lp);
	memcpy(key + lp, name, ln + 1);
	args_add_len(a, key, lp + ln);
	free(key);
}

/* Free the arguments. */
static void
args_free(struct redis_args *a)
{
	for (size_t i = 0; i < a->count; i++)
		free(a->v[i]);
	free(a->v);
	free(a->len);
	memset(a, 0, sizeof *a);
}

/* ---- calls ---- */

/* What a call is about, for logs: cut, and kept valid UTF-8. */
static void
call_describe(struct redis_call *call, const char *fmt, ...)
{
	char raw[sizeof call->what];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	utf8_sanitize(call->what, sizeof call->what, raw, strlen(raw));
}

/* A call of script, its numkeys to follow. */
static struct redis_call *
call_new(struct state_redis *s, enum state_script script, enum state_trip trip,
    int numkeys)
{
	struct redis_call *call = xcalloc(1, sizeof *call);

	call->s = s;
	call->script = script;
	call->trip = trip;
	args_add(&call->args, "EVALSHA");
	args_add(&call->args, "");	/* the sha, set when it is sent */
	args_add_int(&call->args, numkeys);
	return call;
}

/* Free a call (not what it waited for). */
static void
call_free(struct redis_call *call)
{
	args_free(&call->args);
	free(call);
}

/* Queue a call; it goes at once if Redis is there. */
static void
call_submit(struct state_redis *s, struct redis_call *call)
{
	TAILQ_INSERT_TAIL(&s->waiting, call, entry);
	s->waiting_count++;
	redis_pump(s);
}

/*
 * A call that is not answered and never will be (a stop, or given up): its decide
 * ends with result, its event's tracker is abandoned (not acknowledged: it comes
 * again), and it is freed. The caller took it off its list.
 */
static void
call_fail(struct redis_call *call, int result)
{
	struct redis_message *m = call->message;

	if (m != NULL)
		m->done(result, NULL, 0, m->arg);
	if (call->tracker != NULL) {
		tracker_abandon(call->tracker);
		tracker_release(call->tracker);
	}
	if (call->script == STATE_SCRIPT_POLL)
		call->s->polling = 0;
	call_free(call);
}

/* Send what waits, in order, while Redis is there. */
static void
redis_pump(struct state_redis *s)
{
	redisAsyncContext *ac;
	struct redis_call *call;

	if (!s->up || s->stopping || (ac = redis_link_context(s->link, 0)) == NULL)
		return;
	while ((call = TAILQ_FIRST(&s->waiting)) != NULL) {
		free(call->args.v[1]);
		call->args.v[1] = xstrdup(s->sha[call->script]);
		call->args.len[1] = strlen(call->args.v[1]);
		if (redisAsyncCommandArgv(ac, redis_answer, call, (int)call->args.count,
		    (const char **)call->args.v, call->args.len) != REDIS_OK) {
			redis_link_fail(s->link, LOG_LEVEL_WARN, "cannot send to the redis state",
			    ac->errstr);
			return;
		}
		TAILQ_REMOVE(&s->waiting, call, entry);
		s->waiting_count--;
		TAILQ_INSERT_TAIL(&s->sent, call, entry);
		s->sent_count++;
		s->round_trips[call->trip]++;
	}
}

/* ---- answers ---- */

static int
reply_is_int(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_INTEGER;
}

/* A decide's answer: {2}, {1}, or {0, seen, {sent}, decision, badge, ...}. */
static int
answer_message(struct redis_call *call, const redisReply *r)
{
	struct redis_message *m = call->message;
	const char **sent = NULL;
	const redisReply *list;
	int status;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !reply_is_int(r->element[0]))
		return -1;
	status = (int)r->element[0]->integer;
	if (status == 1 || status == 2) {
		m->done(status == 1 ? STATE_DUPLICATE : STATE_DELETED, NULL, 0, m->arg);
		return 0;
	}
	if (status != 0 || r->elements != 3 + 2 * m->count || !reply_is_int(r->element[1]) ||
	    r->element[2]->type != REDIS_REPLY_ARRAY)
		return -1;
	list = r->element[2];
	for (size_t i = 0; i < list->elements; i++) {
		if (!redis_reply_is_string(list->element[i]))
			return -1;
	}
	for (size_t i = 0; i < m->count; i++) {
		const redisReply *code = r->element[3 + 2 * i], *badge = r->element[4 + 2 * i];

		if (!reply_is_int(code) || code->integer < 0 || code->integer > 3 ||
		    !reply_is_int(badge))
			return -1;
	}
	for (size_t i = 0; i < m->count; i++) {
		static const enum state_decision decisions[] = { STATE_SKIP, STATE_SEND,
			STATE_HOLD_WINDOW, STATE_HOLD_GRACE };

		m->candidates[i].decision = decisions[r->element[3 + 2 * i]->integer];
		m->candidates[i].badge = r->element[4 + 2 * i]->integer;
	}
	if (m->chunk == 0)
		m->seen = r->element[1]->integer != 0;
	m->chunk++;
	if (list->elements > 0) {
		sent = xcalloc(list->elements, sizeof *sent);
		for (size_t i = 0; i < list->elements; i++)
			sent[i] = list->element[i]->str;
	}
	m->done(STATE_OK, sent, list->elements, m->arg);
	free(sent);
	return 0;
}

/* A claimed batch's send ended (not abandoned): the claim goes at the next flush. */
static void
claim_sent(void *arg)
{
	struct redis_claim *c = arg;
	struct state_redis *s = c->s;

	c->finished = 1;
	if (s->finished_count == s->finished_capacity) {
		s->finished_capacity = s->finished_capacity == 0 ? 16 :
		    s->finished_capacity * 2;
		s->finished = xreallocarray(s->finished, s->finished_capacity,
		    sizeof *s->finished);
	}
	s->finished[s->finished_count++] = xstrdup(c->key);
}

/*
 * The batch's tracker is gone: sent (claim_sent ran), or abandoned at a stop (the
 * lease runs out and another instance sends it).
 */
static void
claim_done(void *arg)
{
	struct redis_claim *c = arg;

	TAILQ_REMOVE(&c->s->claims, c, entry);
	free(c->key);
	free(c);
}

/* A string reply as a valid id (room, client), or NULL. */
static const char *
reply_id(const redisReply *r)
{
	struct model_error err;

	if (!redis_reply_is_string(r) || strlen(r->str) != r->len ||
	    model_validate_id(r->str, "id", &err) != 0)
		return NULL;
	return r->str;
}

/*
 * One claimed batch {claim key, room, client, badge, claimed before, {sent},
 * entries...}: handed to the router as one notification, its send tracked so that
 * the claim is deleted once it has ended. -1 if the batch does not read.
 */
static int
answer_batch(struct state_redis *s, const redisReply *r)
{
	const char *key, *room, *client;
	const redisReply *sent;
	struct state_held *held;
	struct state_batch b;
	struct notify_message latest;
	struct redis_claim *claim;
	struct tracker *t;
	const char **sent_ids = NULL;
	size_t count = 0;
	char err[160];

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 6 ||
	    !redis_reply_is_string(r->element[0]) ||
	    (room = reply_id(r->element[1])) == NULL ||
	    (client = reply_id(r->element[2])) == NULL || !reply_is_int(r->element[3]) ||
	    !reply_is_int(r->element[4]) || r->element[5]->type != REDIS_REPLY_ARRAY)
		return -1;
	key = r->element[0]->str;
	sent = r->element[5];
	for (size_t i = 0; i < sent->elements; i++) {
		if (!redis_reply_is_string(sent->element[i]))
			return -1;
	}
	claim = xcalloc(1, sizeof *claim);
	claim->s = s;
	claim->key = xstrdup(key);
	TAILQ_INSERT_TAIL(&s->claims, claim, entry);
	/* The claim goes once the last holder of this tracker lets go of it. */
	t = tracker_new(claim_sent, claim, claim_done, claim);
	held = xcalloc(r->elements - 6 + 1, sizeof *held);
	for (size_t i = 6; i < r->elements; i++) {
		const redisReply *e = r->element[i];

		if (!redis_reply_is_string(e) || state_bucket_parse(e->str, e->len, &held[count],
		    err, sizeof err) != 0) {
			log_warn("a held message in redis does not read: left out", "claim", key,
			    "error", redis_reply_is_string(e) ? err : "not a string", NULL);
			continue;
		}
		count++;
	}
	if (count == 0) {
		tracker_release(t);
		free(held);
		return 0;
	}
	qsort(held, count, sizeof *held, state_held_compare);
	memset(&b, 0, sizeof b);
	b.room = room;
	b.client = client;
	state_held_message(&held[count - 1], room, &latest);
	b.latest = &latest;
	b.count = count;
	b.message_ids = xcalloc(count, sizeof *b.message_ids);
	b.trackers = xcalloc(count, sizeof *b.trackers);
	for (size_t i = 0; i < count; i++) {
		b.message_ids[i] = xstrdup(held[i].id);
		b.trackers[i] = t;
		if (i > 0)
			tracker_hold(t);
	}
	b.badge = r->element[3]->integer;
	if (sent->elements > 0) {
		sent_ids = xcalloc(sent->elements, sizeof *sent_ids);
		for (size_t i = 0; i < sent->elements; i++)
			sent_ids[i] = sent->element[i]->str;
		b.sent = sent_ids;
		b.sent_count = sent->elements;
	}
	if (s->callbacks.batch != NULL)
		s->callbacks.batch(&b, s->callbacks.arg);
	/* What the router left: freed, its trackers released (the claim is done then). */
	if (b.message_ids != NULL) {
		for (size_t i = 0; i < count; i++)
			free(b.message_ids[i]);
		free(b.message_ids);
	}
	if (b.trackers != NULL) {
		for (size_t i = 0; i < count; i++)
			tracker_release(b.trackers[i]);
		free(b.trackers);
	}
	for (size_t i = 0; i < count; i++)
		state_held_free(&held[i]);
	free(held);
	free(sent_ids);
	return 0;
}

/* A poll's answer: {waiting, more, batch...}. */
static int
answer_poll(struct state_redis *s, const redisReply *r)
{
	int more;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !reply_is_int(r->element[0]) ||
	    !reply_is_int(r->element[1]))
		return -1;
	s->pending_recipients = r->element[0]->integer > 0 ? (size_t)r->element[0]->integer : 0;
	more = r->element[1]->integer != 0;
	s->polling = 0;
	for (size_t i = 2; i < r->elements; i++) {
		if (answer_batch(s, r->element[i]) != 0)
			log_warn("a claimed batch in redis does not read: left to its lease", NULL);
	}
	if (more && !s->stopping)
		redis_poll(s);
	return 0;
}

/* What Redis answered to a call. */
static void
redis_answer(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_call *call = privdata;
	redisReply *reply = r;
	struct state_redis *s;
	uint64_t suppressed;
	int bad;

	/* Dropped with its connection: the call is sent again once Redis is back. */
	if (reply == NULL || ac->data == NULL)
		return;
	s = call->s;
	/* Off the list before anyone hears of it: a handler may queue calls. */
	TAILQ_REMOVE(&s->sent, call, entry);
	s->sent_count--;
	bad = reply->type == REDIS_REPLY_ERROR;
	if (!bad) {
		switch (call->script) {
		case STATE_SCRIPT_MESSAGE:
			bad = answer_message(call, reply) != 0;
			break;
		case STATE_SCRIPT_POLL:
			bad = answer_poll(s, reply) != 0;
			break;
		case STATE_SCRIPT_CHANGE:
			if (!(bad = !reply_is_int(reply)) && call->changed != NULL)
				call->changed(reply->integer > 0 ? (size_t)reply->integer : 0,
				    call->arg);
			break;
		default:
			bad = !reply_is_int(reply);
			break;
		}
	}
	if (!bad) {
		if (call->tracker != NULL)
			tracker_release(call->tracker);
		call_free(call);
		return;
	}
	/*
	 * An error (Redis out of memory, the scripts flushed, a key of another type
	 * under the prefix), or an answer no handler took: everything goes again after
	 * a reconnection, in order, with the scripts loaded again; a call that keeps
	 * failing is given up.
	 */
	s->script_errors++;
	call->errors++;
	if (redis_ratelimit_allow(&s->error_log, &suppressed)) {
		char count[24];

		snprintf(count, sizeof count, "%" PRIu64, suppressed);
		log_warn("redis state script failed", "call", call->what, "error",
		    reply->type == REDIS_REPLY_ERROR && reply->str != NULL ? reply->str :
		    "an answer of the wrong shape", "suppressed", count, NULL);
	}
	if (call->errors >= STATE_REDIS_ATTEMPTS) {
		log_error("redis state call given up: its event is not acknowledged", "call",
		    call->what, NULL);
		call_fail(call, STATE_EFAILED);
	} else {
		/* The oldest call sent: the first to go again. */
		TAILQ_INSERT_HEAD(&s->sent, call, entry);
		s->sent_count++;
	}
	redis_link_fail(s->link, LOG_LEVEL_WARN, "redis state script failed",
	    reply->type == REDIS_REPLY_ERROR ? reply->str : NULL);
}

/* ---- the link ---- */

/* The poll's period: 100 ms, or a quarter of the window when that is shorter. */
static int64_t
redis_poll_period(const struct state_redis *s)
{
	int64_t ms = STATE_REDIS_POLL_MS;

	if (s->options.coalesce_window_ms > 0 && s->options.coalesce_window_ms / 4 < ms)
		ms = s->options.coalesce_window_ms / 4;
	return ms < STATE_REDIS_POLL_MIN_MS ? STATE_REDIS_POLL_MIN_MS : ms;
}

/* A script is loaded; once all are, the state is up and what waits goes. */
static void
redis_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
	struct script_load *load = privdata;
	redisReply *reply = r;
	struct state_redis *s;

	if (reply == NULL || ac->data == NULL)
		return;
	s = load->s;
	if (reply->type == REDIS_REPLY_ERROR || !redis_reply_is_string(reply) ||
	    reply->len >= sizeof s->sha[0]) {
		s->script_errors++;
		redis_link_fail(s->link, LOG_LEVEL_ERROR, "redis refused the state's scripts",
		    reply->type == REDIS_REPLY_ERROR ? reply->str : NULL);
		return;
	}
	memcpy(s->sha[load->index], reply->str, reply->len);
	s->sha[load->index][reply->len] = '\0';
	if (--s->loading > 0)
		return;
	s->up = 1;
	redis_link_established(s->link);
	redis_pump(s);
	redis_timer_add_ms(s->poll_timer, redis_poll_period(s));
	if (s->callbacks.ready != NULL)
		s->callbacks.ready(s->callbacks.arg);
}

/* Connected: load the scripts (Redis may have restarted, or flushed them). */
static void
redis_ready(void *arg)
{
	struct state_redis *s = arg;
	redisAsyncContext *ac = redis_link_context(s->link, 0);
	const char *argv[3] = { "SCRIPT", "LOAD", NULL };

	s->loading = STATE_SCRIPT_COUNT;
	for (size_t i = 0; i < STATE_SCRIPT_COUNT; i++) {
		argv[2] = s->scripts[i];
		if (redisAsyncCommandArgv(ac, redis_script_loaded, &s->loads[i], 3, argv,
		    NULL) != REDIS_OK) {
			redis_link_fail(s->link, LOG_LEVEL_WARN, "cannot send to the redis state",
			    ac->errstr);
			return;
		}
	}
}

/* The link went down: what was sent and not answered goes again, first, once it is back. */
static void
redis_down(void *arg)
{
	struct state_redis *s = arg;

	s->up = 0;
	s->loading = 0;
	evtimer_del(s->poll_timer);
	TAILQ_CONCAT(&s->sent, &s->waiting, entry);
	TAILQ_CONCAT(&s->waiting, &s->sent, entry);
	s->waiting_count += s->sent_count;
	s->sent_count = 0;
}

/* ---- polls and flushes ---- */

/* Claim what is due (at most one poll at a time). */
static void
redis_poll(struct state_redis *s)
{
	struct redis_call *call;
	char id[64];

	if (s->polling || s->stopping)
		return;
	s->polling = 1;
	call = call_new(s, STATE_SCRIPT_POLL, STATE_TRIP_POLL, 2);
	call_describe(call, "poll");
	snprintf(id, sizeof id, "%s-%" PRIu64, s->token, ++s->sequence);
	args_add_name(&call->args, s->prefix, "due");
	args_add_name(&call->args, s->prefix, "claims");
	args_add(&call->args, s->prefix);
	args_add_int(&call->args, clock_now_ms());
	args_add_int(&call->args, STATE_REDIS_POLL_MAX);
	args_add_int(&call->args, s->options.presence_ttl_ms);
	args_add_int(&call->args, s->options.presence_grace_ms);
	args_add_int(&call->args, STATE_REDIS_LEASE_MS);
	args_add_int(&call->args, s->options.dedupe_window_ms);
	args_add(&call->args, id);
	call_submit(s, call);
}

/* The poll timer: claim what is due, while Redis is there. */
static void
redis_poll_timer(evutil_socket_t fd, short what, void *arg)
{
	struct state_redis *s = arg;

	if (!s->up || s->stopping)
		return;
	redis_poll(s);
	redis_timer_add_ms(s->poll_timer, redis_poll_period(s));
}

/*
 * Write behind: the notified marks, at most STATE_REDIS_MARKS_MAX a call; with the
 * first, the claims whose send ended and, every STATE_REDIS_RENEW_MS, the leases of
 * those still sending.
 */
static void
redis_flush(struct state *state)
{
	struct state_redis *s = (struct state_redis *)state;
	int64_t mono = clock_monotonic_ms();
	size_t renew = 0, next = 0, marks;
	struct redis_claim *c;
	struct redis_call *call;
	int first = 1;

	if (s->stopping)
		return;
	if (!TAILQ_EMPTY(&s->claims) && mono - s->renewed_at >= STATE_REDIS_RENEW_MS) {
		TAILQ_FOREACH(c, &s->claims, entry)
			renew += !c->finished;
	}
	while (next < s->mark_count || (first && (s->finished_count > 0 || renew > 0))) {
		marks = (s->mark_count - next) / 3;
		if (marks > STATE_REDIS_MARKS_MAX)
			marks = STATE_REDIS_MARKS_MAX;
		call = call_new(s, STATE_SCRIPT_FLUSH, STATE_TRIP_FLUSH, 1);
		call_describe(call, "flush");
		args_add_name(&call->args, s->prefix, "claims");
		args_add(&call->args, s->prefix);
		args_add_int(&call->args, clock_now_ms());
		args_add_int(&call->args, s->options.dedupe_window_ms);
		args_add_int(&call->args, STATE_REDIS_LEASE_MS);
		args_add_int(&call->args, (int64_t)marks);
		for (size_t i = 0; i < marks * 3; i++) {
			args_add(&call->args, s->marks[next + i]);
			free(s->marks[next + i]);
		}
		next += marks * 3;
		/* With the first call: the finished claims, and the leases to renew. */
		args_add_int(&call->args, first ? (int64_t)s->finished_count : 0);
		if (first) {
			for (size_t i = 0; i < s->finished_count; i++) {
				args_add(&call->args, s->finished[i]);
				free(s->finished[i]);
			}
			s->finished_count = 0;
		}
		args_add_int(&call->args, first ? (int64_t)renew : 0);
		if (first && renew > 0) {
			TAILQ_FOREACH(c, &s->claims, entry) {
				if (!c->finished)
					args_add(&call->args, c->key);
			}
			s->renewed_at = mono;
		}
		first = 0;
		call_submit(s, call);
	}
	s->mark_count = 0;
}

/* ---- the state's operations ---- */

static void
redis_set_callbacks(struct state *state, const struct state_callbacks *callbacks)
{
	struct state_redis *s = (struct state_redis *)state;

	s->callbacks = *callbacks;
}

/* A reload: calls made from now on take the new windows. */
static void
redis_set_options(struct state *state, const struct state_options *options)
{
	struct state_redis *s = (struct state_redis *)state;

	s->options = *options;
}

/* Connected, and the scripts loaded? */
static int
redis_ready_now(const struct state *state)
{
	return ((const struct state_redis *)state)->up;
}

/* The decide checks duplicates, across instances. */
static int
redis_admit(struct state *state, const struct room_event *e, int64_t now)
{
	return STATE_OK;
}

/* A routing of its own: the mark its decides leave on the message. */
static struct state_message *
redis_message_new(struct state *state, const struct room_event *e)
{
	struct state_redis *s = (struct state_redis *)state;
	struct redis_message *m = xcalloc(1, sizeof *m);

	m->base.state = state;
	m->event = e;
	m->ts = e->ts > 0 ? e->ts : clock_now_ms();
	snprintf(m->token, sizeof m->token, "%s-%" PRIu64, s->token, ++s->sequence);
	return &m->base;
}

/* The decide answers the devices sent before: the store's marks are not needed. */
static int
redis_message_fresh(const struct state_message *message)
{
	return 1;
}

/* The message is routed. */
static void
redis_message_free(struct state_message *message)
{
	free(message);
}

/* One script call for a chunk of the message's candidates. */
static void
redis_decide(struct state_message *message, struct state_candidate *c, size_t count,
    int count_unread, state_decided_fn *done, void *arg)
{
	struct redis_message *m = (struct redis_message *)message;
	struct state_redis *s = (struct state_redis *)m->base.state;
	const struct room_event *e = m->event;
	struct notify_message held;
	struct redis_call *call;
	char *json;

	held.room = e->room;
	held.id = e->id;
	held.sender = e->client_id != NULL ? e->client_id : "";
	held.sender_name = e->sender_name;
	held.room_name = e->room_name;
	held.text = e->text;
	held.push = e->push;
	if ((json = state_bucket_encode(&held, m->ts)) == NULL) {
		/* Over STATE_BUCKET_ENTRY_MAX: the event limits make it impossible. */
		done(STATE_EFAILED, NULL, 0, arg);
		return;
	}
	m->candidates = c;
	m->count = count;
	m->done = done;
	m->arg = arg;
	call = call_new(s, STATE_SCRIPT_MESSAGE, STATE_TRIP_MESSAGE, 4);
	call_describe(call, "message room=%s id=%s", e->room, e->id);
	call->message = m;
	args_add_key(&call->args, s->prefix, "msg:", e->room, e->id);
	args_add_key(&call->args, s->prefix, "sent:", e->room, e->id);
	args_add_key(&call->args, s->prefix, "held:", e->room, e->id);
	args_add_key(&call->args, s->prefix, "presence:", e->room, NULL);
	args_add(&call->args, s->prefix);
	args_add(&call->args, e->room);
	args_add(&call->args, e->id);
	args_add(&call->args, m->token);
	args_add_int(&call->args, m->chunk);
	args_add_int(&call->args, m->seen);
	args_add_int(&call->args, e->redelivered != 0);
	args_add_int(&call->args, clock_now_ms());
	args_add_int(&call->args, count_unread != 0);
	args_add_int(&call->args, s->options.dedupe_window_ms);
	args_add_int(&call->args, s->options.coalesce_window_ms);
	args_add_int(&call->args, s->options.presence_grace_ms);
	args_add_int(&call->args, s->options.presence_ttl_ms);
	args_add(&call->args, json);
	free(json);
	for (size_t i = 0; i < count; i++) {
		args_add(&call->args, c[i].client_id);
		args_add(&call->args, c[i].notify ? "1" : "0");
	}
	call_submit(s, call);
}

/* The decide held it in Redis already: only the devices are left to free. */
static void
redis_hold(struct state *state, const char *client, const struct notify_message *message,
    struct tracker *tracker, struct device_target **targets, size_t count,
    enum state_decision decision)
{
	for (size_t i = 0; i < count; i++)
		free(targets[i]);
	free(targets);
}

/* A call for an event, which holds the event's tracker until it is answered. */
static struct redis_call *
redis_event_call(struct state_redis *s, enum state_script script, enum state_trip trip,
    int numkeys, struct tracker *tracker)
{
	struct redis_call *call = call_new(s, script, trip, numkeys);

	if (tracker != NULL) {
		call->tracker = tracker;
		tracker_hold(tracker);
	}
	return call;
}

/* One script call for a presence event. */
static void
redis_presence(struct state *state, const struct room_event *e, struct tracker *tracker)
{
	struct state_redis *s = (struct state_redis *)state;
	struct redis_call *call;
	const char *op;

	switch (e->type) {
	case EVENT_PRESENCE_ENTER:
	case EVENT_PRESENCE_UPDATE:
		op = "enter";
		break;
	case EVENT_PRESENCE_LEAVE:
		op = "leave";
		break;
	case EVENT_PRESENCE_SYNC:
		op = "sync";
		break;
	default:
		return;
	}
	call = redis_event_call(s, STATE_SCRIPT_PRESENCE, STATE_TRIP_PRESENCE, 1, tracker);
	call_describe(call, "presence %s room=%s", op, e->room);
	args_add_key(&call->args, s->prefix, "presence:", e->room, NULL);
	args_add(&call->args, s->prefix);
	args_add(&call->args, e->room);
	args_add(&call->args, op);
	args_add_int(&call->args, clock_now_ms());
	args_add_int(&call->args, s->options.presence_ttl_ms);
	args_add_int(&call->args, s->options.presence_grace_ms);
	if (e->type == EVENT_PRESENCE_SYNC) {
		for (size_t i = 0; i < e->present_count; i++)
			args_add(&call->args, e->present[i]);
	} else {
		args_add(&call->args, e->client_id);
		args_add(&call->args, e->connection_id != NULL ? e->connection_id : "");
	}
	call_submit(s, call);
}

/* One script call for a read. */
static void
redis_read(struct state *state, const char *room, const char *client, struct tracker *tracker)
{
	struct state_redis *s = (struct state_redis *)state;
	struct redis_call *call;

	call = redis_event_call(s, STATE_SCRIPT_READ, STATE_TRIP_READ, 1, tracker);
	call_describe(call, "read room=%s", room);
	args_add_key(&call->args, s->prefix, "unread:", client, NULL);
	args_add(&call->args, s->prefix);
	args_add(&call->args, room);
	call_submit(s, call);
}

/* One script call for an edit with a text, or a deletion. */
static void
redis_change(struct state *state, const struct room_event *e, struct tracker *tracker,
    state_changed_fn *done, void *arg)
{
	struct state_redis *s = (struct state_redis *)state;
	struct redis_call *call;
	int delete = e->type == EVENT_MESSAGE_DELETE;

	if (!delete && e->text == NULL)
		return;		/* nothing a held message shows changes */
	call = redis_event_call(s, STATE_SCRIPT_CHANGE, STATE_TRIP_CHANGE, 2, tracker);
	call_describe(call, "%s room=%s id=%s",
	    delete ? "delete" : "edit", e->room, e->id);
	call->changed = done;
	call->arg = arg;
	args_add_key(&call->args, s->prefix, "held:", e->room, e->id);
	args_add_key(&call->args, s->prefix, "msg:", e->room, e->id);
	args_add(&call->args, s->prefix);
	args_add(&call->args, e->room);
	args_add(&call->args, e->id);
	args_add(&call->args, delete ? "1" : "0");
	args_add_int(&call->args, s->options.dedupe_window_ms);
	args_add(&call->args, e->text != NULL ? "1" : "0");
	args_add(&call->args, e->text != NULL ? e->text : "");
	call_submit(s, call);
}

/* A mark waits for the next flush. */
static void
redis_mark_sent(struct state *state, const char *room, const char *message_id,
    const char *device_id, int64_t now)
{
	struct state_redis *s = (struct state_redis *)state;

	if (s->stopping)
		return;
	if (s->mark_count + 3 > s->mark_capacity) {
		s->mark_capacity = s->mark_capacity == 0 ? 768 : s->mark_capacity * 2;
		s->marks = xreallocarray(s->marks, s->mark_capacity, sizeof *s->marks);
	}
	s->marks[s->mark_count++] = xstrdup(room);
	s->marks[s->mark_count++] = xstrdup(message_id);
	s->marks[s->mark_count++] = xstrdup(device_id);
}

/* Keys expire in Redis: nothing to sweep here. */
static void
redis_sweep(struct state *state, int64_t now)
{
}

/*
 * Stop: no more calls. What waits for an answer is not acknowledged (decides end
 * with STATE_ESTOPPED, events' trackers are abandoned); marks not written are lost
 * (docs/state-redis.md: a redelivered message may then notify a device again).
 */
static void
redis_stop(struct state *state)
{
	struct state_redis *s = (struct state_redis *)state;
	struct redis_call *call;

	if (s->stopping)
		return;
	s->stopping = 1;
	s->up = 0;
	evtimer_del(s->poll_timer);
	/* Their callbacks see the connection detached: they touch no call. */
	redis_link_stop(s->link);
	while ((call = TAILQ_FIRST(&s->sent)) != NULL) {
		TAILQ_REMOVE(&s->sent, call, entry);
		call_fail(call, STATE_ESTOPPED);
	}
	while ((call = TAILQ_FIRST(&s->waiting)) != NULL) {
		TAILQ_REMOVE(&s->waiting, call, entry);
		call_fail(call, STATE_ESTOPPED);
	}
	s->sent_count = s->waiting_count = 0;
	for (size_t i = 0; i < s->mark_count; i++)
		free(s->marks[i]);
	s->mark_count = 0;
}

/* Stop, then free everything. */
static void
redis_free(struct state *state)
{
	struct state_redis *s = (struct state_redis *)state;
	struct redis_claim *c;

	redis_stop(state);
	redis_link_free(s->link);
	event_free(s->poll_timer);
	/* Sends end before the state is freed; a claim left would be a leak, not a use. */
	while ((c = TAILQ_FIRST(&s->claims)) != NULL) {
		TAILQ_REMOVE(&s->claims, c, entry);
		free(c->key);
		free(c);
	}
	for (size_t i = 0; i < s->finished_count; i++)
		free(s->finished[i]);
	free(s->finished);
	free(s->marks);
	for (size_t i = 0; i < STATE_SCRIPT_COUNT; i++)
		free(s->scripts[i]);
	free(s->prefix);
	free(s);
}

/* The link's figures. */
static void
redis_get_stats(const struct state *state, struct state_stats *stats)
{
	const struct state_redis *s = (const struct state_redis *)state;

	memset(stats, 0, sizeof *stats);
	stats->backend = "redis";
	stats->up = s->up;
	stats->pending_recipients = s->pending_recipients;
	memcpy(stats->round_trips, s->round_trips, sizeof stats->round_trips);
	stats->script_errors = s->script_errors;
	stats->waiting = s->waiting_count + s->sent_count;
}

/* Why /readyz says not ready. */
const char *
state_redis_why(const struct state *state)
{
	const struct state_redis *s = (const struct state_redis *)state;

	if (s->up)
		return NULL;
	return redis_link_ready(s->link) ? "loading scripts" : "disconnected";
}

/* The state in [redis]'s server, under [state] prefix; connecting from now. */
struct state *
state_redis_new(struct event_base *base, const struct config *config,
    const struct state_options *options, char *err, size_t errlen)
{
	struct state_redis *s = xcalloc(1, sizeof *s);
	struct redis_link_options lo = { "state", { "state" }, 1, 1 };
	struct redis_link_callbacks cb = { redis_ready, redis_down, s };
	unsigned char raw[8];

	s->state.ops = &state_redis_ops;
	s->base = base;
	s->options = *options;
	s->prefix = xstrdup(config->state_prefix != NULL ? config->state_prefix : "");
	arc4random_buf(raw, sizeof raw);
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(s->token + 2 * i, 3, "%02x", raw[i]);
	TAILQ_INIT(&s->waiting);
	TAILQ_INIT(&s->sent);
	TAILQ_INIT(&s->claims);
	for (size_t i = 0; i < STATE_SCRIPT_COUNT; i++) {
		const struct state_redis_script *script = &state_redis_scripts[i];
		size_t lp = strlen(script->prelude), lb = strlen(script->body);

		s->scripts[i] = xmalloc(lp + lb + 1);
		memcpy(s->scripts[i], script->prelude, lp);
		memcpy(s->scripts[i] + lp, script->body, lb + 1);
		s->loads[i].s = s;
		s->loads[i].index = i;
	}
	if ((s->link = redis_link_new(base, config, &lo, &cb, err, errlen)) == NULL) {
		for (size_t i = 0; i < STATE_SCRIPT_COUNT; i++)
			free(s->scripts[i]);
		free(s->prefix);
		free(s);
		return NULL;
	}
	if ((s->poll_timer = evtimer_new(base, redis_poll_timer, s)) == NULL)
		fatalx("evtimer_new: out of memory");
	redis_link_start(s->link);
	return &s->state;
}

static const struct state_ops state_redis_ops = {
	.name = "redis",
	.synchronous = 0,
	.set_callbacks = redis_set_callbacks,
	.set_options = redis_set_options,
	.ready = redis_ready_now,
	.admit = redis_admit,
	.message_new = redis_message_new,
	.message_fresh = redis_message_fresh,
	.decide = redis_decide,
	.message_free = redis_message_free,
	.hold = redis_hold,
	.presence = redis_presence,
	.read = redis_read,
	.change = redis_change,
	.mark_sent = redis_mark_sent,
	.flush = redis_flush,
	.sweep = redis_sweep,
	.stop = redis_stop,
	.free = redis_free,
	.get_stats = redis_get_stats,
};
