/*
 * Room events from Redis Pub/Sub and Redis Streams, on hiredis's asynchronous API
 * attached to the daemon's libevent loop.
 *
 * Each source has one link to Redis: one connection for Pub/Sub, two for Streams (a
 * blocked XREADGROUP holds its connection, so XACK, XAUTOCLAIM and XINFO go over the
 * other). The connections of a link come up and go down together: when one fails,
 * all are dropped and the link connects again after a backoff.
 *
 * hiredis frees a context by itself when its connection fails, and a context freed
 * from inside one of its own reply callbacks is only marked, then freed when the
 * callback returns (freeing it from its connect or disconnect callback is a double
 * free). So: a context is detached (ac->data = NULL) before anyone frees it, every
 * callback ignores a detached context, nothing is freed from a connect or disconnect
 * callback but the other connections of the link, and a source stopped by its sink
 * from inside a callback is freed when that callback unwinds (source->busy).
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "secret_file.h"
#include "source.h"
#include "source_redis.h"
#include "xmalloc.h"

#define REDIS_BACKOFF_BASE_MS 100	/* first reconnect waits up to this long */
#define REDIS_STABLE_MS 10000		/* up this long: the backoff starts over */
#define REDIS_LOG_INTERVAL_MS 1000	/* one skipped / dropped warning a second */
#define REDIS_INFO_INTERVAL_MS 2000	/* lag refresh and liveness check */
#define REDIS_ID_SIZE 48		/* a stream id: two 64-bit numbers and a dash */
#define REDIS_XACK_MAX 1000		/* ids in one XACK */
#define REDIS_XACK_DELAY_MS 1		/* gather XACKs for this long */
#define REDIS_PASSWORD_MAX 1024
#define REDIS_PASSWORD_FILE_MAX (64 * 1024)
#define REDIS_CONNS_MAX 2

enum redis_kind {
	REDIS_KIND_PUBSUB = 0,
	REDIS_KIND_STREAMS,
};

enum link_state {
	LINK_CONNECTING = 0,	/* connecting, authenticating, selecting */
	LINK_READY,
	LINK_WAITING,		/* down; the reconnect timer is armed */
	LINK_STOPPED,
};

/* What a connection sends before it is ready (the reply callback's privdata). */
enum setup_command {
	SETUP_AUTH = 1,
	SETUP_SELECT,
	SETUP_PING,
};

struct source;

/* One hiredis connection of a link. */
struct redis_conn {
	struct source *source;
	const char *role;		/* "subscriber", "reader", "commands": for logs */
	redisAsyncContext *ac;		/* NULL while down */
	int setup_pending;		/* setup replies still to come */
};

enum entry_state {
	ENTRY_READY = 0,	/* read, waiting to be handed (held while paused) */
	ENTRY_HANDED,		/* the sink has it and will ack it */
	ENTRY_DUE,		/* to be XACKed */
	ENTRY_ACKING,		/* in an XACK in flight */
	ENTRY_ACKED,		/* XACKed, remembered until the reader's reply in flight */
};

/*
 * A stream entry this source knows about, from the moment it is read until its XACK
 * is answered. Every one is in the hash, so one that is read again (the consumer's
 * own pending entries after a reconnect, or an XAUTOCLAIM of our own idle entries) is
 * not handed twice. The handed entry is the sink's ack context.
 */
struct stream_entry {
	TAILQ_ENTRY(stream_entry) queue;	/* ready, handed, due, acked, or a batch's */
	LIST_ENTRY(stream_entry) bucket;
	struct source *source;
	enum entry_state state;
	size_t key;			/* index in source->keys */
	int handed;			/* given to the sink (counted in acked) */
	struct room_event event;	/* the sink moves it out when it takes it */
	char id[REDIS_ID_SIZE];
};
TAILQ_HEAD(stream_entries, stream_entry);
LIST_HEAD(stream_bucket, stream_entry);

/* The entries of one XACK in flight (the reply callback's privdata). */
struct xack_batch {
	TAILQ_ENTRY(xack_batch) link;
	struct source *source;		/* NULL once the source stopped */
	size_t key;
	struct stream_entries entries;
};
TAILQ_HEAD(xack_batches, xack_batch);

/* One stream key. */
struct stream_key {
	struct source *source;
	char *name;
	char read_cursor[REDIS_ID_SIZE];	/* own pending entries: the last id read */
	int pending_done;			/* own pending entries all read */
	int seen;				/* in the last XREADGROUP reply */
	char claim_cursor[REDIS_ID_SIZE];	/* XAUTOCLAIM's next start */
	int claiming;				/* an XAUTOCLAIM is in flight */
};

/* At most one log line an interval, counting what it kept quiet. */
struct redis_ratelimit {
	int64_t last_ms;
	uint64_t suppressed;
	int used;
};

enum stream_phase {
	PHASE_PENDING = 0,	/* reading the consumer's own pending entries */
	PHASE_NEW,		/* reading new entries (>) */
};

struct source {
	enum redis_kind kind;
	const char *name;
	struct event_base *base;
	struct source_sink sink;
	int busy;			/* callbacks of ours on the stack */
	int stopping;

	/* [redis] */
	char *address;
	char *host;
	int port;
	char *username;			/* NULL: AUTH with the password alone */
	char *password_file;		/* NULL: no AUTH */
	int db;
	int64_t connect_timeout_ms;
	int64_t reconnect_max_ms;

	/* The link. */
	struct redis_conn conns[REDIS_CONNS_MAX];
	size_t nconns;
	enum link_state state;
	struct event *link_timer;	/* connect timeout, or the wait to reconnect */
	unsigned failures;		/* failed attempts since the link was last stable */
	int established;		/* subscribed, or the groups exist */
	int64_t established_ms;
	int ever_ready;
	int outage_logged;
	const char *outage_what;	/* the failure logged for this outage */
	int64_t down_since_ms;

	struct source_stats stats;
	struct redis_ratelimit skip_log;
	struct redis_ratelimit drop_log;
	int sink_paused;		/* pause() called, resume() not yet */

	/* [pubsub] */
	char *pattern;
	size_t prefix_len;		/* the pattern before its first * */
	size_t suffix_len;		/* and after it */

	/* [streams] */
	struct stream_key *keys;
	size_t nkeys;
	char *group;
	char *consumer;
	char batch_arg[16];
	char block_arg[24];
	char claim_idle_arg[24];
	int batch;
	int64_t block_ms;
	int64_t claim_idle_ms;
	enum stream_phase phase;
	size_t groups_pending;		/* XGROUP CREATE replies to come */
	int full;			/* the sink answered SOURCE_EFULL */
	int reading;			/* an XREADGROUP is in flight */
	int read_blocking;		/* ... with BLOCK */
	int64_t read_sent_ms;
	int claim_supported;
	size_t info_outstanding;	/* XINFO GROUPS replies to come */
	int64_t info_sent_ms;
	int64_t lag_sum;
	int lag_unknown;
	struct stream_entries ready;
	struct stream_entries handed;
	struct stream_entries due;
	struct stream_entries acked;
	struct xack_batches batches;
	struct stream_bucket *buckets;
	size_t nbuckets;
	size_t nentries;
	struct event *deliver_event;	/* hand held entries after resume */
	struct event *flush_event;	/* send the XACKs that are due */
	struct event *claim_timer;
	struct event *info_timer;
};

static void link_connect(struct source *);
static void link_fail(struct source *, enum log_level, const char *, const char *);
static void pubsub_subscribe(struct source *);
static void streams_link_up(struct source *);
static void streams_link_down(struct source *);
static void streams_deliver(struct source *);
static void streams_maybe_read(struct source *);
static void streams_schedule_flush(struct source *);
static void streams_claim(struct source *, struct stream_key *);
static void source_free(struct source *);

/* ---- small helpers ---- */

/* Is a reply a string (bulk or status)? */
static int
reply_is_string(const redisReply *reply)
{
	return reply != NULL && (reply->type == REDIS_REPLY_STRING ||
	    reply->type == REDIS_REPLY_STATUS) && reply->str != NULL;
}

/* Arm a timer for ms milliseconds. */
static void
timer_add_ms(struct event *timer, int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(timer, &tv);
}

/* A new event, or death. */
static struct event *
source_event_new(struct source *source, short what, event_callback_fn fn)
{
	struct event *ev;

	if ((ev = event_new(source->base, -1, what, fn, source)) == NULL)
		fatalx("event_new: out of memory");
	return ev;
}

/* May we log now? If so, *suppressed says how many lines were kept quiet. */
static int
ratelimit_allow(struct redis_ratelimit *limit, uint64_t *suppressed)
{
	int64_t now = clock_monotonic_ms();

	if (limit->used && now - limit->last_ms < REDIS_LOG_INTERVAL_MS) {
		limit->suppressed++;
		return 0;
	}
	*suppressed = limit->suppressed;
	limit->suppressed = 0;
	limit->last_ms = now;
	limit->used = 1;
	return 1;
}

/*
 * Read the first line of the password file into buf. Returns 0, or -1 with error
 * set (which never holds the password).
 */
static int
redis_read_password(const char *path, char *buf, size_t size, char *error, size_t errlen)
{
	struct secret_file file;
	char why[128];
	size_t line;

	/* The mode was checked once, at start: no warning on every reconnection. */
	if (secret_file_read(path, NULL, REDIS_PASSWORD_FILE_MAX, &file, why,
	    sizeof why) != 0) {
		snprintf(error, errlen, "%s: %s", path, why);
		return -1;
	}
	line = strcspn(file.data, "\r\n");
	if (line >= size || line == 0) {
		snprintf(error, errlen, "%s: the first line is %s", path, line == 0 ? "empty" :
		    "too long");
		secret_file_free(&file);
		return -1;
	}
	memcpy(buf, file.data, line);
	buf[line] = '\0';
	secret_file_free(&file);
	return 0;
}

/* Notice a dead peer on an idle connection (a Pub/Sub one can be quiet for days). */
static void
conn_keepalive(int fd)
{
	int on = 1, idle = 15, interval = 5, count = 3;

	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

/* Leave a callback of ours; free the source if it was stopped meanwhile. */
static void
source_release(struct source *source)
{
	if (--source->busy == 0 && source->stopping)
		source_free(source);
}

/* Count, report and log (rate-limited) an event that was skipped. */
static void
source_skip(struct source *source, int rv, const char *error, const char *where,
    const char *entry_id)
{
	const char *reason = rv == EVENT_EUNKNOWN ? "unknown" : "malformed";
	uint64_t suppressed;
	char n[24];

	if (rv == EVENT_EUNKNOWN)
		source->stats.unknown++;
	else
		source->stats.malformed++;
	if (source->sink.skipped != NULL)
		source->sink.skipped(source->sink.arg, source->name, reason);
	if (!ratelimit_allow(&source->skip_log, &suppressed))
		return;
	snprintf(n, sizeof n, "%llu", (unsigned long long)suppressed);
	if (source->kind == REDIS_KIND_PUBSUB)
		log_warn("event skipped", "source", source->name, "reason", reason,
		    "error", error, "channel", where,
		    suppressed > 0 ? "suppressed" : NULL, n, NULL);
	else
		log_warn("event skipped", "source", source->name, "reason", reason,
		    "error", error, "stream", where, "entry_id", entry_id,
		    suppressed > 0 ? "suppressed" : NULL, n, NULL);
}

/* ---- the link: connect, authenticate, fail, back off ---- */

/* Drop every connection of the link (their pending callbacks see them detached). */
static void
link_teardown(struct source *source)
{
	redisAsyncContext *ac;
	size_t i;

	for (i = 0; i < source->nconns; i++) {
		source->conns[i].setup_pending = 0;
		if ((ac = source->conns[i].ac) == NULL)
			continue;
		source->conns[i].ac = NULL;
		ac->data = NULL;
		/* In one of ac's reply callbacks this only marks it: hiredis frees it after. */
		redisAsyncFree(ac);
	}
}

/*
 * The link failed: drop it and connect again after a backoff. A failure is logged at
 * level once per outage (and again when the reason changes), else at debug.
 */
static void
link_fail(struct source *source, enum log_level level, const char *what, const char *error)
{
	uint64_t cap;
	int64_t delay;

	if (source->state == LINK_WAITING || source->state == LINK_STOPPED)
		return;
	/* A link that fails soon after each connect keeps backing off. */
	if (source->established &&
	    clock_monotonic_ms() - source->established_ms >= REDIS_STABLE_MS)
		source->failures = 0;
	link_teardown(source);
	source->state = LINK_WAITING;
	source->established = 0;
	if (source->kind == REDIS_KIND_STREAMS)
		streams_link_down(source);

	if (!source->outage_logged || source->outage_what != what) {
		log_write(level, what, "source", source->name, "address", source->address,
		    error != NULL ? "error" : NULL, error, NULL);
		if (!source->outage_logged)
			source->down_since_ms = clock_monotonic_ms();
		source->outage_logged = 1;
		source->outage_what = what;
	} else
		log_debug(what, "source", source->name, "address", source->address,
		    error != NULL ? "error" : NULL, error, NULL);

	/* Exponential backoff with full jitter. */
	cap = (uint64_t)REDIS_BACKOFF_BASE_MS << (source->failures < 20 ? source->failures : 20);
	if (cap > (uint64_t)source->reconnect_max_ms)
		cap = (uint64_t)source->reconnect_max_ms;
	if (cap > UINT32_MAX - 1)
		cap = UINT32_MAX - 1;
	source->failures++;
	delay = arc4random_uniform((uint32_t)cap + 1);
	timer_add_ms(source->link_timer, delay);
}

/* Every connection answered its setup: subscribe, or create the groups. */
static void
link_ready(struct source *source)
{
	source->state = LINK_READY;
	evtimer_del(source->link_timer);
	if (source->kind == REDIS_KIND_PUBSUB)
		pubsub_subscribe(source);
	else
		streams_link_up(source);
}

/* Subscribed, or the groups exist: the source works (again). */
static void
link_established(struct source *source)
{
	char down[24];

	source->established = 1;
	source->established_ms = clock_monotonic_ms();
	if (source->ever_ready)
		source->stats.reconnects++;
	if (source->outage_logged) {
		snprintf(down, sizeof down, "%lld",
		    (long long)(source->established_ms - source->down_since_ms));
		log_info("redis connection restored", "source", source->name,
		    "address", source->address, "down_ms", down, NULL);
	} else if (!source->ever_ready)
		log_info("redis connected", "source", source->name,
		    "address", source->address, NULL);
	source->outage_logged = 0;
	source->outage_what = NULL;
	source->ever_ready = 1;
}

/* The TCP connection is up, or could not be made. */
static void
conn_connected(const redisAsyncContext *ac, int status)
{
	struct redis_conn *conn = ac->data;
	char error[256];

	if (conn == NULL)
		return;
	if (status == REDIS_OK) {
		log_debug("redis connection established", "source", conn->source->name,
		    "connection", conn->role, NULL);
		return;
	}
	/* hiredis frees ac when this returns. */
	snprintf(error, sizeof error, "%s", ac->errstr != NULL ? ac->errstr : "failed");
	((redisAsyncContext *)ac)->data = NULL;
	conn->ac = NULL;
	link_fail(conn->source, LOG_LEVEL_WARN, "cannot connect to redis", error);
}

/* The connection was lost (hiredis frees ac when this returns). */
static void
conn_disconnected(const redisAsyncContext *ac, int status)
{
	struct redis_conn *conn = ac->data;
	char error[256];

	if (conn == NULL)
		return;
	snprintf(error, sizeof error, "%s", status == REDIS_OK ? "closed" :
	    ac->errstr != NULL ? ac->errstr : "failed");
	((redisAsyncContext *)ac)->data = NULL;
	conn->ac = NULL;
	link_fail(conn->source, LOG_LEVEL_WARN, "redis connection lost", error);
}

/* An answer to AUTH, SELECT or PING. */
static void
conn_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_conn *conn = ac->data;
	enum setup_command command = (enum setup_command)(intptr_t)privdata;
	redisReply *reply = r;
	size_t i;

	if (conn == NULL || reply == NULL)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		if (command == SETUP_AUTH)
			link_fail(conn->source, LOG_LEVEL_ERROR, "redis authentication failed",
			    reply->str);
		else if (command == SETUP_SELECT)
			link_fail(conn->source, LOG_LEVEL_ERROR, "redis SELECT failed",
			    reply->str);
		else
			link_fail(conn->source, LOG_LEVEL_ERROR, "redis refused the connection",
			    reply->str);
		return;
	}
	if (--conn->setup_pending > 0)
		return;
	for (i = 0; i < conn->source->nconns; i++)
		if (conn->source->conns[i].ac == NULL || conn->source->conns[i].setup_pending > 0)
			return;
	link_ready(conn->source);
}

/* Send a setup command on a connection; 0, or -1 if hiredis refused it. */
static int
conn_setup_send(struct redis_conn *conn, enum setup_command command, int argc,
    const char **argv)
{
	if (redisAsyncCommandArgv(conn->ac, conn_setup_reply, (void *)(intptr_t)command, argc,
	    argv, NULL) != REDIS_OK)
		return -1;
	conn->setup_pending++;
	return 0;
}

/*
 * Open every connection of the link and queue its setup (hiredis sends it once the
 * connection is up): AUTH with the password file's first line, SELECT for Streams,
 * or a PING, so that the link is ready only when Redis has answered.
 */
static void
link_connect(struct source *source)
{
	char password[REDIS_PASSWORD_MAX], error[256], db[16];
	const char *argv[3];
	struct redis_conn *conn;
	redisAsyncContext *ac;
	int have_password = 0, failed = 0;
	size_t i;

	source->state = LINK_CONNECTING;
	if (source->password_file != NULL) {
		if (redis_read_password(source->password_file, password, sizeof password, error,
		    sizeof error) != 0) {
			link_fail(source, LOG_LEVEL_ERROR, "cannot read the redis password file",
			    error);
			return;
		}
		have_password = 1;
	}
	snprintf(db, sizeof db, "%d", source->db);
	for (i = 0; i < source->nconns && !failed; i++) {
		conn = &source->conns[i];
		if ((ac = redisAsyncConnect(source->host, source->port)) == NULL)
			fatalx("redisAsyncConnect: out of memory");
		if (ac->err != 0) {
			snprintf(error, sizeof error, "%s", ac->errstr);
			redisAsyncFree(ac);
			failed = 1;
			break;
		}
		conn->ac = ac;
		ac->data = conn;
		redisLibeventAttach(ac, source->base);
		redisAsyncSetConnectCallback(ac, conn_connected);
		redisAsyncSetDisconnectCallback(ac, conn_disconnected);
		conn_keepalive(ac->c.fd);

		if (have_password) {
			argv[0] = "AUTH";
			if (source->username != NULL) {
				argv[1] = source->username;
				argv[2] = password;
			} else
				argv[1] = password;
			if (conn_setup_send(conn, SETUP_AUTH, source->username != NULL ? 3 : 2,
			    argv) != 0)
				failed = 1;
		}
		if (source->kind == REDIS_KIND_STREAMS && source->db != 0) {
			argv[0] = "SELECT";
			argv[1] = db;
			if (conn_setup_send(conn, SETUP_SELECT, 2, argv) != 0)
				failed = 1;
		}
		if (conn->setup_pending == 0) {
			argv[0] = "PING";
			if (conn_setup_send(conn, SETUP_PING, 1, argv) != 0)
				failed = 1;
		}
		if (failed)
			snprintf(error, sizeof error, "%s", ac->errstr != NULL ? ac->errstr :
			    "cannot queue a command");
	}
	explicit_bzero(password, sizeof password);
	if (failed) {
		link_fail(source, LOG_LEVEL_WARN, "cannot connect to redis", error);
		return;
	}
	timer_add_ms(source->link_timer, source->connect_timeout_ms);
}

/* Connect timeout, or the end of the wait before the next attempt. */
static void
link_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct source *source = arg;

	if (source->state == LINK_CONNECTING)
		link_fail(source, LOG_LEVEL_WARN, "redis connect timed out", NULL);
	else if (source->state == LINK_WAITING)
		link_connect(source);
}

/* ---- Pub/Sub ---- */

/* Pub/Sub cannot replay: nothing to acknowledge. */
static void
pubsub_ack(void *ctx)
{
}

/* One published message: parse it and hand it to the sink, or count why not. */
static void
pubsub_take(struct source *source, const redisReply *channel, const redisReply *payload)
{
	struct room_event event;
	char error[256], n[24], total[24];
	char *room = NULL;
	uint64_t suppressed;
	size_t len = channel->len;
	int rv;

	/* The room is what the pattern's * matched. */
	if (len > source->prefix_len + source->suffix_len &&
	    memcmp(channel->str, source->pattern, source->prefix_len) == 0 &&
	    memcmp(channel->str + len - source->suffix_len,
	    source->pattern + strlen(source->pattern) - source->suffix_len,
	    source->suffix_len) == 0)
		room = xstrndup(channel->str + source->prefix_len,
		    len - source->prefix_len - source->suffix_len);

	rv = room_event_parse_text(payload->str, payload->len, room, &event, error,
	    sizeof error);
	free(room);
	if (rv != EVENT_OK) {
		source_skip(source, rv, error, channel->str, NULL);
		return;
	}
	rv = source->sink.handle(source->sink.arg, &event, pubsub_ack, NULL);
	/* Taken, the sink moved the event out: this frees nothing then. */
	room_event_free(&event);
	if (rv != SOURCE_EFULL) {
		source->stats.received++;
		return;
	}
	source->stats.dropped++;
	if (!ratelimit_allow(&source->drop_log, &suppressed))
		return;
	snprintf(n, sizeof n, "%llu", (unsigned long long)suppressed);
	snprintf(total, sizeof total, "%llu", (unsigned long long)source->stats.dropped);
	log_warn("event dropped: the sink is full and pub/sub cannot wait",
	    "source", source->name, "channel", channel->str, "dropped", total,
	    suppressed > 0 ? "suppressed" : NULL, n, NULL);
}

/* The subscription's replies: its confirmation, then one per message. */
static void
pubsub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct source *source = privdata;
	redisReply *reply = r;
	const char *kind;

	if (ac->data == NULL || reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    !reply_is_string(reply->element[0]))
		return;
	kind = reply->element[0]->str;
	if (strcasecmp(kind, "psubscribe") == 0) {
		link_established(source);
		log_debug("redis pattern subscribed", "source", source->name,
		    "pattern", source->pattern, NULL);
		return;
	}
	if (strcasecmp(kind, "pmessage") != 0 || reply->elements < 4 ||
	    !reply_is_string(reply->element[2]) || !reply_is_string(reply->element[3]))
		return;
	source->busy++;
	pubsub_take(source, reply->element[2], reply->element[3]);
	source_release(source);
}

/* Subscribe to the pattern (again, after a reconnect). */
static void
pubsub_subscribe(struct source *source)
{
	const char *argv[2] = { "PSUBSCRIBE", source->pattern };

	/* Refused only when the connection is going down, which is handled there. */
	(void)redisAsyncCommandArgv(source->conns[0].ac, pubsub_reply, source, 2, argv, NULL);
}

/* ---- Streams: the entries this source knows ---- */

/* FNV-1a of the key index and the id. */
static size_t
entry_hash(size_t key, const char *id)
{
	uint32_t h = 2166136261u ^ (uint32_t)key;

	for (; *id != '\0'; id++) {
		h ^= (unsigned char)*id;
		h *= 16777619u;
	}
	return h;
}

/* The entry with this key and id, if this source knows it. */
static struct stream_entry *
entry_find(struct source *source, size_t key, const char *id)
{
	struct stream_entry *entry;

	LIST_FOREACH(entry, &source->buckets[entry_hash(key, id) % source->nbuckets], bucket)
		if (entry->key == key && strcmp(entry->id, id) == 0)
			return entry;
	return NULL;
}

/* Add an entry to the hash, growing it as it fills. */
static void
entry_insert(struct source *source, struct stream_entry *entry)
{
	struct stream_bucket *buckets;
	struct stream_entry *moved;
	size_t i, n;

	if (source->nentries >= source->nbuckets * 2) {
		n = source->nbuckets * 4;
		buckets = xreallocarray(NULL, n, sizeof *buckets);
		for (i = 0; i < n; i++)
			LIST_INIT(&buckets[i]);
		for (i = 0; i < source->nbuckets; i++) {
			while ((moved = LIST_FIRST(&source->buckets[i])) != NULL) {
				LIST_REMOVE(moved, bucket);
				LIST_INSERT_HEAD(&buckets[entry_hash(moved->key, moved->id) % n],
				    moved, bucket);
			}
		}
		free(source->buckets);
		source->buckets = buckets;
		source->nbuckets = n;
	}
	LIST_INSERT_HEAD(&source->buckets[entry_hash(entry->key, entry->id) % source->nbuckets],
	    entry, bucket);
	source->nentries++;
}

/* Take an entry out of the hash. */
static void
entry_remove(struct source *source, struct stream_entry *entry)
{
	LIST_REMOVE(entry, bucket);
	source->nentries--;
}

/* Forget an entry that is on no queue. */
static void
entry_free(struct source *source, struct stream_entry *entry)
{
	entry_remove(source, entry);
	room_event_free(&entry->event);
	free(entry);
}

/* Queue an entry for XACK. */
static void
entry_due(struct source *source, struct stream_entry *entry)
{
	entry->state = ENTRY_DUE;
	TAILQ_INSERT_TAIL(&source->due, entry, queue);
	streams_schedule_flush(source);
}

/* The index of a stream key, or -1. */
static ssize_t
streams_key_index(struct source *source, const redisReply *name)
{
	size_t k;

	for (k = 0; k < source->nkeys; k++)
		if (strlen(source->keys[k].name) == name->len &&
		    memcmp(source->keys[k].name, name->str, name->len) == 0)
			return (ssize_t)k;
	return -1;
}

/* Is reading paused (by the sink, or because it answered SOURCE_EFULL)? */
static int
streams_paused(const struct source *source)
{
	return source->sink_paused || source->full;
}

/*
 * Take one entry of an XREADGROUP or XAUTOCLAIM reply: queue its event to be handed,
 * or queue it for XACK at once when it has no valid event. Returns 1 if the entry was
 * new to this source, 0 if it is known already (or not an entry).
 */
static int
streams_take(struct source *source, size_t key, const redisReply *reply, int redelivered)
{
	const redisReply *fields, *value = NULL;
	struct stream_entry *entry;
	char error[256];
	size_t i;
	int rv;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
	    !reply_is_string(reply->element[0]) || reply->element[0]->len >= REDIS_ID_SIZE)
		return 0;
	if (entry_find(source, key, reply->element[0]->str) != NULL)
		return 0;
	entry = xcalloc(1, sizeof *entry);
	entry->source = source;
	entry->key = key;
	memcpy(entry->id, reply->element[0]->str, reply->element[0]->len + 1);
	entry_insert(source, entry);

	fields = reply->element[1];
	if (fields == NULL || fields->type != REDIS_REPLY_ARRAY) {
		/* Deleted from the stream while pending: only its id is left. */
		log_debug("stream entry deleted before it was handled", "source", source->name,
		    "stream", source->keys[key].name, "entry_id", entry->id, NULL);
		entry_due(source, entry);
		return 1;
	}
	for (i = 0; i + 1 < fields->elements; i += 2) {
		if (reply_is_string(fields->element[i]) && fields->element[i]->len == 5 &&
		    memcmp(fields->element[i]->str, "event", 5) == 0) {
			value = fields->element[i + 1];
			break;
		}
	}
	if (!reply_is_string(value)) {
		source_skip(source, EVENT_EMALFORMED, "the entry has no event field",
		    source->keys[key].name, entry->id);
		entry_due(source, entry);
		return 1;
	}
	rv = room_event_parse_text(value->str, value->len, NULL, &entry->event, error,
	    sizeof error);
	if (rv != EVENT_OK) {
		source_skip(source, rv, error, source->keys[key].name, entry->id);
		entry_due(source, entry);
		return 1;
	}
	entry->event.redelivered = redelivered;
	entry->state = ENTRY_READY;
	TAILQ_INSERT_TAIL(&source->ready, entry, queue);
	return 1;
}

/* ---- Streams: handing and acknowledging ---- */

/* The sink is done with an entry's event: XACK it soon. */
static void
streams_ack(void *ctx)
{
	struct stream_entry *entry = ctx;
	struct source *source = entry->source;

	if (entry->state != ENTRY_HANDED) {
		log_error("stream entry acknowledged twice", "source", source->name,
		    "stream", source->keys[entry->key].name, "entry_id", entry->id, NULL);
		return;
	}
	TAILQ_REMOVE(&source->handed, entry, queue);
	source->stats.pending--;
	entry_due(source, entry);
}

/* Hand the ready entries to the sink, in order, until it is full. */
static void
streams_deliver(struct source *source)
{
	struct stream_entry *entry;
	int rv;

	while (!source->stopping && !streams_paused(source) &&
	    (entry = TAILQ_FIRST(&source->ready)) != NULL) {
		/* Handed before the call: the sink may ack before it returns. */
		TAILQ_REMOVE(&source->ready, entry, queue);
		entry->state = ENTRY_HANDED;
		entry->handed = 1;
		TAILQ_INSERT_TAIL(&source->handed, entry, queue);
		source->stats.pending++;
		rv = source->sink.handle(source->sink.arg, &entry->event, streams_ack, entry);
		if (source->stopping)
			return;		/* stop() freed the entry */
		if (rv != SOURCE_EFULL) {
			source->stats.received++;
			continue;
		}
		TAILQ_REMOVE(&source->handed, entry, queue);
		source->stats.pending--;
		entry->state = ENTRY_READY;
		entry->handed = 0;
		TAILQ_INSERT_HEAD(&source->ready, entry, queue);
		source->full = 1;
		log_debug("sink full, stream reading paused", "source", source->name, NULL);
	}
	if (!source->stopping)
		streams_maybe_read(source);
}

/* resume() was called: hand what is held, then read on. */
static void
streams_deliver_fired(evutil_socket_t fd, short what, void *arg)
{
	struct source *source = arg;

	source->busy++;
	streams_deliver(source);
	source_release(source);
}

/* Put a batch's entries back on the due queue. */
static void
streams_batch_requeue(struct source *source, struct xack_batch *batch)
{
	struct stream_entry *entry;

	while ((entry = TAILQ_FIRST(&batch->entries)) != NULL) {
		TAILQ_REMOVE(&batch->entries, entry, queue);
		entry->state = ENTRY_DUE;
		TAILQ_INSERT_TAIL(&source->due, entry, queue);
	}
}

/* The answer to one XACK. */
static void
streams_xack_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct xack_batch *batch = privdata;
	struct source *source = batch->source;
	struct stream_entry *entry;
	redisReply *reply = r;

	if (source == NULL) {
		/* The source stopped and freed the entries. */
		free(batch);
		return;
	}
	TAILQ_REMOVE(&source->batches, batch, link);
	if (reply == NULL) {
		/* The connection went down: XACK them after the reconnect. */
		streams_batch_requeue(source, batch);
		free(batch);
		streams_schedule_flush(source);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR)
		log_warn("redis XACK failed", "source", source->name,
		    "stream", source->keys[batch->key].name, "error", reply->str, NULL);
	while ((entry = TAILQ_FIRST(&batch->entries)) != NULL) {
		TAILQ_REMOVE(&batch->entries, entry, queue);
		if (reply->type != REDIS_REPLY_ERROR && entry->handed)
			source->stats.acked++;
		/*
		 * A read of own pending entries in flight on the other connection may
		 * have run before this XACK: remember the entry until its reply is in,
		 * so that it is not handed again.
		 */
		if (source->reading && source->phase == PHASE_PENDING) {
			entry->state = ENTRY_ACKED;
			TAILQ_INSERT_TAIL(&source->acked, entry, queue);
		} else
			entry_free(source, entry);
	}
	free(batch);
}

/* Forget the XACKed entries remembered for a read that is now answered. */
static void
streams_forget_acked(struct source *source)
{
	struct stream_entry *entry;

	while ((entry = TAILQ_FIRST(&source->acked)) != NULL) {
		TAILQ_REMOVE(&source->acked, entry, queue);
		entry_free(source, entry);
	}
}

/* Send one XACK; 0, or -1 (the batch is back on the due queue) if hiredis refused. */
static int
streams_send_xack(struct source *source, struct xack_batch *batch, int argc,
    const char **argv)
{
	if (redisAsyncCommandArgv(source->conns[1].ac, streams_xack_reply, batch, argc, argv,
	    NULL) != REDIS_OK) {
		streams_batch_requeue(source, batch);
		free(batch);
		return -1;
	}
	TAILQ_INSERT_TAIL(&source->batches, batch, link);
	return 0;
}

/* XACK every due entry: one XACK per key (of up to REDIS_XACK_MAX ids). */
static void
streams_flush(struct source *source)
{
	struct stream_entry *entry, *next;
	struct xack_batch *batch;
	const char **argv;
	size_t k;
	int argc = 0;

	if (source->state != LINK_READY || TAILQ_EMPTY(&source->due))
		return;
	argv = xreallocarray(NULL, 3 + REDIS_XACK_MAX, sizeof *argv);
	for (k = 0; k < source->nkeys; k++) {
		batch = NULL;
		for (entry = TAILQ_FIRST(&source->due); entry != NULL; entry = next) {
			next = TAILQ_NEXT(entry, queue);
			if (entry->key != k)
				continue;
			if (batch == NULL) {
				batch = xcalloc(1, sizeof *batch);
				batch->source = source;
				batch->key = k;
				TAILQ_INIT(&batch->entries);
				argv[0] = "XACK";
				argv[1] = source->keys[k].name;
				argv[2] = source->group;
				argc = 3;
			}
			TAILQ_REMOVE(&source->due, entry, queue);
			entry->state = ENTRY_ACKING;
			TAILQ_INSERT_TAIL(&batch->entries, entry, queue);
			argv[argc++] = entry->id;
			if (argc == 3 + REDIS_XACK_MAX) {
				if (streams_send_xack(source, batch, argc, argv) != 0)
					goto out;
				batch = NULL;
			}
		}
		if (batch != NULL && streams_send_xack(source, batch, argc, argv) != 0)
			goto out;
	}
out:
	free(argv);
}

/* The flush event: XACK what is due. */
static void
streams_flush_fired(evutil_socket_t fd, short what, void *arg)
{
	streams_flush(arg);
}

/*
 * XACK what is due within REDIS_XACK_DELAY_MS. Answers from APNs and FCM come back a
 * few at a time; gathering them spares Redis and the loop a write per handful. An
 * entry not XACKed when the daemon dies is read again and its duplicates are
 * suppressed, as for any crash.
 */
static void
streams_schedule_flush(struct source *source)
{
	if (!source->stopping && !event_pending(source->flush_event, EV_TIMEOUT, NULL))
		timer_add_ms(source->flush_event, REDIS_XACK_DELAY_MS);
}

/* ---- Streams: reading ---- */

/* The answer to XREADGROUP: own pending entries (phase PENDING) or new ones. */
static void
streams_read_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct source *source = privdata;
	const redisReply *stream, *entries;
	redisReply *reply = r;
	struct stream_key *key;
	ssize_t k;
	size_t i, j;
	int pending, done;

	if (ac->data == NULL || reply == NULL)
		return;
	source->reading = 0;
	if (reply->type == REDIS_REPLY_ERROR) {
		link_fail(source, LOG_LEVEL_WARN, "redis XREADGROUP failed", reply->str);
		return;
	}
	source->busy++;
	pending = source->phase == PHASE_PENDING;
	for (i = 0; i < source->nkeys; i++)
		source->keys[i].seen = 0;
	for (i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
		stream = reply->element[i];
		if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2 ||
		    !reply_is_string(stream->element[0]) ||
		    (k = streams_key_index(source, stream->element[0])) < 0)
			continue;
		key = &source->keys[k];
		entries = stream->element[1];
		if (entries->type != REDIS_REPLY_ARRAY)
			continue;
		for (j = 0; j < entries->elements; j++) {
			streams_take(source, (size_t)k, entries->element[j], pending);
			if (source->stopping)
				goto out;
		}
		if (!pending)
			continue;
		key->seen = 1;
		/* A short page is the last one; else read on after its last id. */
		if (entries->elements < (size_t)source->batch)
			key->pending_done = 1;
		else {
			stream = entries->element[entries->elements - 1];
			if (stream->type == REDIS_REPLY_ARRAY && stream->elements >= 1 &&
			    reply_is_string(stream->element[0]) &&
			    stream->element[0]->len < REDIS_ID_SIZE)
				memcpy(key->read_cursor, stream->element[0]->str,
				    stream->element[0]->len + 1);
			else
				key->pending_done = 1;
		}
	}
	streams_forget_acked(source);
	if (pending) {
		done = 1;
		for (i = 0; i < source->nkeys; i++) {
			if (!source->keys[i].seen)
				source->keys[i].pending_done = 1;
			if (!source->keys[i].pending_done)
				done = 0;
		}
		if (done) {
			source->phase = PHASE_NEW;
			log_debug("own pending stream entries read", "source", source->name, NULL);
		}
	}
	streams_deliver(source);
out:
	source_release(source);
}

/*
 * Issue the next XREADGROUP, unless one is in flight, the link is down, or the sink
 * is full (or entries are held for it).
 */
static void
streams_maybe_read(struct source *source)
{
	const char **argv;
	size_t k, argc = 0;
	int phase_new = source->phase == PHASE_NEW;

	if (source->state != LINK_READY || source->reading || source->stopping ||
	    streams_paused(source) || !TAILQ_EMPTY(&source->ready))
		return;
	argv = xreallocarray(NULL, 10 + 2 * source->nkeys, sizeof *argv);
	argv[argc++] = "XREADGROUP";
	argv[argc++] = "GROUP";
	argv[argc++] = source->group;
	argv[argc++] = source->consumer;
	argv[argc++] = "COUNT";
	argv[argc++] = source->batch_arg;
	if (phase_new) {
		argv[argc++] = "BLOCK";
		argv[argc++] = source->block_arg;
	}
	argv[argc++] = "STREAMS";
	for (k = 0; k < source->nkeys; k++)
		if (phase_new || !source->keys[k].pending_done)
			argv[argc++] = source->keys[k].name;
	for (k = 0; k < source->nkeys; k++)
		if (phase_new || !source->keys[k].pending_done)
			argv[argc++] = phase_new ? ">" : source->keys[k].read_cursor;
	if (redisAsyncCommandArgv(source->conns[0].ac, streams_read_reply, source, (int)argc,
	    argv, NULL) == REDIS_OK) {
		source->reading = 1;
		source->read_blocking = phase_new;
		source->read_sent_ms = clock_monotonic_ms();
	}
	free(argv);
}

/* The answer to XGROUP CREATE. */
static void
streams_group_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct stream_key *key = privdata;
	redisReply *reply = r;
	char error[512];

	if (ac->data == NULL || reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ERROR || strncmp(reply->str, "BUSYGROUP", 9) == 0) {
		if (key->source->groups_pending > 0 && --key->source->groups_pending == 0)
			link_established(key->source);
		return;
	}
	snprintf(error, sizeof error, "%s: %s", key->name, reply->str);
	link_fail(key->source, LOG_LEVEL_ERROR, "cannot create the redis consumer group",
	    error);
}

/* ---- Streams: taking over entries of stopped consumers ---- */

/* The answer to XAUTOCLAIM: [next cursor, entries, (deleted ids)]. */
static void
streams_claim_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct stream_key *key = privdata;
	struct source *source;
	const redisReply *entries;
	redisReply *reply = r;
	size_t k, i, taken = 0;
	char n[24];

	if (ac->data == NULL || reply == NULL)
		return;
	source = key->source;
	key->claiming = 0;
	if (reply->type == REDIS_REPLY_ERROR) {
		if (strncasecmp(reply->str, "ERR unknown command", 19) == 0) {
			source->claim_supported = 0;
			log_warn("redis has no XAUTOCLAIM (6.2 or later): entries left pending "
			    "by stopped consumers are not taken over", "source", source->name,
			    NULL);
		} else
			log_warn("redis XAUTOCLAIM failed", "source", source->name,
			    "stream", key->name, "error", reply->str, NULL);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
	    !reply_is_string(reply->element[0]) || reply->element[0]->len >= REDIS_ID_SIZE)
		return;
	memcpy(key->claim_cursor, reply->element[0]->str, reply->element[0]->len + 1);
	entries = reply->element[1];
	k = (size_t)(key - source->keys);
	source->busy++;
	for (i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
		taken += streams_take(source, k, entries->element[i], 1);
		if (source->stopping)
			goto out;
	}
	if (taken > 0) {
		snprintf(n, sizeof n, "%zu", taken);
		log_info("took over stream entries left pending by another consumer",
		    "source", source->name, "stream", key->name, "entries", n, NULL);
	}
	streams_deliver(source);
	/* More to claim: go on while there is room. */
	if (!source->stopping && strcmp(key->claim_cursor, "0-0") != 0 &&
	    source->state == LINK_READY && !streams_paused(source) &&
	    TAILQ_EMPTY(&source->ready) && !key->claiming)
		streams_claim(source, key);
out:
	source_release(source);
}

/* XAUTOCLAIM entries of one key idle for claim_idle, from the key's cursor. */
static void
streams_claim(struct source *source, struct stream_key *key)
{
	const char *argv[8] = { "XAUTOCLAIM", key->name, source->group, source->consumer,
		source->claim_idle_arg, key->claim_cursor, "COUNT", source->batch_arg };

	if (redisAsyncCommandArgv(source->conns[1].ac, streams_claim_reply, key, 8, argv,
	    NULL) == REDIS_OK)
		key->claiming = 1;
}

/* Every claim_idle/2: look for entries stopped consumers left pending. */
static void
streams_claim_fired(evutil_socket_t fd, short what, void *arg)
{
	struct source *source = arg;
	size_t k;

	if (source->state != LINK_READY || source->groups_pending > 0 ||
	    !source->claim_supported || streams_paused(source) || !TAILQ_EMPTY(&source->ready))
		return;
	for (k = 0; k < source->nkeys; k++)
		if (!source->keys[k].claiming)
			streams_claim(source, &source->keys[k]);
}

/* ---- Streams: lag and liveness ---- */

/* The lag of this source's group in an XINFO GROUPS reply, or -1. */
static int64_t
streams_group_lag(const struct source *source, const redisReply *reply)
{
	const redisReply *group, *name, *value;
	int64_t lag;
	size_t i, j;

	if (reply->type != REDIS_REPLY_ARRAY)
		return -1;
	for (i = 0; i < reply->elements; i++) {
		group = reply->element[i];
		if (group->type != REDIS_REPLY_ARRAY)
			continue;
		lag = -1;
		name = NULL;
		for (j = 0; j + 1 < group->elements; j += 2) {
			if (!reply_is_string(group->element[j]))
				continue;
			value = group->element[j + 1];
			if (strcmp(group->element[j]->str, "name") == 0)
				name = value;
			else if (strcmp(group->element[j]->str, "lag") == 0 &&
			    value->type == REDIS_REPLY_INTEGER)
				lag = value->integer;
		}
		if (reply_is_string(name) && strcmp(name->str, source->group) == 0)
			return lag;
	}
	return -1;
}

/* The answer to XINFO GROUPS for one key. */
static void
streams_info_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct stream_key *key = privdata;
	struct source *source;
	redisReply *reply = r;
	int64_t lag;

	if (ac->data == NULL || reply == NULL)
		return;
	source = key->source;
	lag = streams_group_lag(source, reply);
	if (lag < 0)
		source->lag_unknown = 1;
	else
		source->lag_sum += lag;
	if (source->info_outstanding > 0 && --source->info_outstanding == 0)
		source->stats.lag = source->lag_unknown ? -1 : source->lag_sum;
}

/* Ask for every key's group lag. */
static void
streams_refresh_info(struct source *source)
{
	const char *argv[3] = { "XINFO", "GROUPS", NULL };
	size_t k;

	if (source->state != LINK_READY || source->info_outstanding > 0)
		return;
	source->lag_sum = 0;
	source->lag_unknown = 0;
	source->info_sent_ms = clock_monotonic_ms();
	for (k = 0; k < source->nkeys; k++) {
		argv[2] = source->keys[k].name;
		if (redisAsyncCommandArgv(source->conns[1].ac, streams_info_reply,
		    &source->keys[k], 3, argv, NULL) == REDIS_OK)
			source->info_outstanding++;
	}
}

/* Refresh the lag; drop a link whose server stopped answering. */
static void
streams_info_fired(evutil_socket_t fd, short what, void *arg)
{
	struct source *source = arg;
	int64_t now = clock_monotonic_ms(), grace;

	if (source->state != LINK_READY)
		return;
	grace = source->connect_timeout_ms + REDIS_INFO_INTERVAL_MS;
	if ((source->reading && now - source->read_sent_ms >
	    (source->read_blocking ? source->block_ms : 0) + grace) ||
	    (source->info_outstanding > 0 && now - source->info_sent_ms > grace)) {
		link_fail(source, LOG_LEVEL_WARN, "redis stopped answering", NULL);
		return;
	}
	streams_refresh_info(source);
}

/* ---- Streams: the link ---- */

/*
 * The link is up: create the groups and read the consumer's own pending entries on
 * the reader (pipelined: Redis runs them in order), and XACK what is due.
 */
static void
streams_link_up(struct source *source)
{
	const char *argv[6] = { "XGROUP", "CREATE", NULL, source->group, "$", "MKSTREAM" };
	struct stream_key *key;
	size_t k;

	source->groups_pending = 0;
	for (k = 0; k < source->nkeys; k++) {
		key = &source->keys[k];
		argv[2] = key->name;
		if (redisAsyncCommandArgv(source->conns[0].ac, streams_group_reply, key, 6,
		    argv, NULL) == REDIS_OK)
			source->groups_pending++;
		snprintf(key->read_cursor, sizeof key->read_cursor, "0");
		key->pending_done = 0;
		snprintf(key->claim_cursor, sizeof key->claim_cursor, "0-0");
		key->claiming = 0;
	}
	source->phase = PHASE_PENDING;
	source->reading = 0;
	streams_maybe_read(source);
	streams_schedule_flush(source);
	streams_refresh_info(source);
}

/*
 * The link is down: forget what is in flight and the entries held for the sink (they
 * are pending in Redis for this consumer and are read again after the reconnect).
 * Entries the sink holds, and acks still to send, are kept.
 */
static void
streams_link_down(struct source *source)
{
	struct stream_entry *entry;
	size_t k;

	source->reading = 0;
	source->info_outstanding = 0;
	source->stats.lag = -1;
	for (k = 0; k < source->nkeys; k++)
		source->keys[k].claiming = 0;
	while ((entry = TAILQ_FIRST(&source->ready)) != NULL) {
		TAILQ_REMOVE(&source->ready, entry, queue);
		entry_free(source, entry);
	}
	streams_forget_acked(source);
}

/* ---- the ops ---- */

/* Free a source (stopped, with no callback of ours on the stack). */
static void
source_free(struct source *source)
{
	size_t k;

	if (source->link_timer != NULL)
		event_free(source->link_timer);
	if (source->deliver_event != NULL)
		event_free(source->deliver_event);
	if (source->flush_event != NULL)
		event_free(source->flush_event);
	if (source->claim_timer != NULL)
		event_free(source->claim_timer);
	if (source->info_timer != NULL)
		event_free(source->info_timer);
	for (k = 0; k < source->nkeys; k++)
		free(source->keys[k].name);
	free(source->keys);
	free(source->buckets);
	free(source->group);
	free(source->consumer);
	free(source->pattern);
	free(source->address);
	free(source->host);
	free(source->username);
	free(source->password_file);
	free(source);
}

/* Split [streams] keys; 0, or -1 with err set. */
static int
streams_parse_keys(struct source *source, const char *keys, char *err, size_t errlen)
{
	const char *p = keys;
	size_t len, k;
	char *name;

	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		len = strcspn(p, " \t");
		name = xstrndup(p, len);
		p += len;
		for (k = 0; k < source->nkeys; k++) {
			if (strcmp(source->keys[k].name, name) == 0) {
				snprintf(err, errlen, "[streams] keys: %s is named twice", name);
				free(name);
				return -1;
			}
		}
		source->keys = xreallocarray(source->keys, source->nkeys + 1,
		    sizeof *source->keys);
		memset(&source->keys[source->nkeys], 0, sizeof *source->keys);
		source->keys[source->nkeys].source = source;
		source->keys[source->nkeys].name = name;
		source->nkeys++;
	}
	if (source->nkeys == 0) {
		snprintf(err, errlen, "[streams] keys: names no stream");
		return -1;
	}
	return 0;
}

/* Start a source of either kind; NULL with err set on a configuration error. */
static struct source *
redis_source_start(enum redis_kind kind, struct event_base *base,
    const struct config *config, const struct source_sink *sink, char *err, size_t errlen)
{
	struct source *source;
	char host[256], port[16], hostname[256], *end;
	const char *star;
	long number;
	size_t i;

	if (config->redis_address == NULL || config_split_hostport(config->redis_address,
	    host, sizeof host, port, sizeof port) != 0) {
		snprintf(err, errlen, "[redis] address: not host:port: %s",
		    config->redis_address != NULL ? config->redis_address : "(none)");
		return NULL;
	}
	errno = 0;
	number = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno != 0 || number < 1 || number > 65535) {
		snprintf(err, errlen, "[redis] address: bad port: %s", config->redis_address);
		return NULL;
	}

	source = xcalloc(1, sizeof *source);
	source->kind = kind;
	source->name = kind == REDIS_KIND_PUBSUB ? source_redis_pubsub_ops.name :
	    source_redis_streams_ops.name;
	source->base = base;
	source->sink = *sink;
	source->address = xstrdup(config->redis_address);
	source->host = xstrdup(host);
	source->port = (int)number;
	if (config->redis_username != NULL && *config->redis_username != '\0')
		source->username = xstrdup(config->redis_username);
	if (config->redis_password_file != NULL && *config->redis_password_file != '\0') {
		/* Checked once here: the file is read again on every reconnection. */
		secret_file_check_mode(-1, "Redis password_file", config->redis_password_file);
		source->password_file = xstrdup(config->redis_password_file);
	}
	source->db = config->redis_db;
	source->connect_timeout_ms = config->redis_connect_timeout_ms > 0 ?
	    config->redis_connect_timeout_ms : 5000;
	source->reconnect_max_ms = config->redis_reconnect_max_ms > 0 ?
	    config->redis_reconnect_max_ms : 30000;
	source->stats.lag = -1;
	TAILQ_INIT(&source->ready);
	TAILQ_INIT(&source->handed);
	TAILQ_INIT(&source->due);
	TAILQ_INIT(&source->acked);
	TAILQ_INIT(&source->batches);

	if (kind == REDIS_KIND_PUBSUB) {
		if (config->pubsub_pattern == NULL ||
		    (star = strchr(config->pubsub_pattern, '*')) == NULL) {
			snprintf(err, errlen, "[pubsub] pattern: must contain a * (the room id)");
			source_free(source);
			return NULL;
		}
		source->pattern = xstrdup(config->pubsub_pattern);
		source->prefix_len = (size_t)(star - config->pubsub_pattern);
		source->suffix_len = strlen(star + 1);
		source->nconns = 1;
		source->conns[0].role = "subscriber";
	} else {
		if (streams_parse_keys(source, config->streams_keys != NULL ?
		    config->streams_keys : "", err, errlen) != 0) {
			source_free(source);
			return NULL;
		}
		source->group = xstrdup(config->streams_group != NULL ? config->streams_group :
		    "pushrelay");
		if (config->streams_consumer != NULL && *config->streams_consumer != '\0')
			source->consumer = xstrdup(config->streams_consumer);
		else {
			if (gethostname(hostname, sizeof hostname) != 0)
				snprintf(hostname, sizeof hostname, "pushrelay");
			hostname[sizeof hostname - 1] = '\0';
			source->consumer = xasprintf("%s-%ld", hostname, (long)getpid());
		}
		source->batch = config->streams_batch > 0 ? config->streams_batch : 100;
		source->block_ms = config->streams_block_ms > 0 ? config->streams_block_ms : 1000;
		source->claim_idle_ms = config->streams_claim_idle_ms > 0 ?
		    config->streams_claim_idle_ms : 60000;
		snprintf(source->batch_arg, sizeof source->batch_arg, "%d", source->batch);
		snprintf(source->block_arg, sizeof source->block_arg, "%lld",
		    (long long)source->block_ms);
		snprintf(source->claim_idle_arg, sizeof source->claim_idle_arg, "%lld",
		    (long long)source->claim_idle_ms);
		source->claim_supported = 1;
		source->nbuckets = 64;
		source->buckets = xreallocarray(NULL, source->nbuckets, sizeof *source->buckets);
		for (i = 0; i < source->nbuckets; i++)
			LIST_INIT(&source->buckets[i]);
		source->nconns = 2;
		source->conns[0].role = "reader";
		source->conns[1].role = "commands";
		source->deliver_event = source_event_new(source, 0, streams_deliver_fired);
		source->flush_event = source_event_new(source, 0, streams_flush_fired);
		source->claim_timer = source_event_new(source, EV_PERSIST, streams_claim_fired);
		source->info_timer = source_event_new(source, EV_PERSIST, streams_info_fired);
		timer_add_ms(source->claim_timer, source->claim_idle_ms / 2 > 0 ?
		    source->claim_idle_ms / 2 : 1);
		timer_add_ms(source->info_timer, REDIS_INFO_INTERVAL_MS);
	}
	for (i = 0; i < source->nconns; i++)
		source->conns[i].source = source;
	source->link_timer = source_event_new(source, 0, link_timer_fired);
	link_connect(source);
	return source;
}

/* Start following rooms on Pub/Sub. */
static struct source *
pubsub_start(struct event_base *base, const struct config *config,
    const struct source_sink *sink, char *err, size_t errlen)
{
	return redis_source_start(REDIS_KIND_PUBSUB, base, config, sink, err, errlen);
}

/* Start reading the streams in the consumer group. */
static struct source *
streams_start(struct event_base *base, const struct config *config,
    const struct source_sink *sink, char *err, size_t errlen)
{
	return redis_source_start(REDIS_KIND_STREAMS, base, config, sink, err, errlen);
}

/* The sink has no room: stop reading (Pub/Sub cannot; it only notes it). */
static void
redis_source_pause(struct source *source)
{
	source->sink_paused = 1;
}

/* The sink has room again: hand what is held, then read on. */
static void
redis_source_resume(struct source *source)
{
	source->sink_paused = 0;
	source->full = 0;
	if (source->kind == REDIS_KIND_STREAMS && !source->stopping)
		event_active(source->deliver_event, EV_TIMEOUT, 0);
}

/*
 * Stop: drop the connections and forget every entry (what was not XACKed stays
 * pending in Redis, for this consumer's next start or another's XAUTOCLAIM). The sink
 * must not ack after this. The source is freed now or, when stopped from inside one
 * of its callbacks, when that callback returns.
 */
static void
redis_source_stop(struct source *source)
{
	struct stream_entry *entry;
	struct xack_batch *batch;

	if (source == NULL || source->stopping)
		return;
	source->stopping = 1;
	/* XACKs in flight: their replies, run as the contexts are freed, free the batch. */
	while ((batch = TAILQ_FIRST(&source->batches)) != NULL) {
		TAILQ_REMOVE(&source->batches, batch, link);
		batch->source = NULL;
		while ((entry = TAILQ_FIRST(&batch->entries)) != NULL) {
			TAILQ_REMOVE(&batch->entries, entry, queue);
			entry_free(source, entry);
		}
	}
	link_teardown(source);
	source->state = LINK_STOPPED;
	evtimer_del(source->link_timer);
	if (source->kind == REDIS_KIND_STREAMS) {
		event_del(source->deliver_event);
		event_del(source->flush_event);
		event_del(source->claim_timer);
		event_del(source->info_timer);
	}
	while ((entry = TAILQ_FIRST(&source->handed)) != NULL) {
		TAILQ_REMOVE(&source->handed, entry, queue);
		entry_free(source, entry);
	}
	while ((entry = TAILQ_FIRST(&source->ready)) != NULL) {
		TAILQ_REMOVE(&source->ready, entry, queue);
		entry_free(source, entry);
	}
	while ((entry = TAILQ_FIRST(&source->due)) != NULL) {
		TAILQ_REMOVE(&source->due, entry, queue);
		entry_free(source, entry);
	}
	streams_forget_acked(source);
	log_info("redis source stopped", "source", source->name, NULL);
	if (source->busy == 0)
		source_free(source);
}

/* The counters, and whether the source is connected and paused now. */
static void
redis_source_stats(const struct source *source, struct source_stats *stats)
{
	*stats = source->stats;
	if (source->kind == REDIS_KIND_PUBSUB) {
		stats->connected = source->established;
		stats->lag = -1;
	} else
		stats->connected = source->established;
	stats->paused = streams_paused(source);
}

const struct source_ops source_redis_pubsub_ops = {
	.name = "redis-pubsub",
	.start = pubsub_start,
	.pause = redis_source_pause,
	.resume = redis_source_resume,
	.stop = redis_source_stop,
	.stats = redis_source_stats,
};

const struct source_ops source_redis_streams_ops = {
	.name = "redis-streams",
	.start = streams_start,
	.pause = redis_source_pause,
	.resume = redis_source_resume,
	.stop = redis_source_stop,
	.stats = redis_source_stats,
};
