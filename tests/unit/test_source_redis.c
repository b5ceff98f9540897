/*
 * Tests for the Redis sources (redis_link.c, source_pubsub.c, source_streams.c): the
 * link's connection, authentication and backoff, and the Pub/Sub and Streams sources,
 * against a real redis-server that this file starts on a free loopback port (in a
 * temporary directory, without persistence) and kills at the end, on a real event
 * loop, with a fake sink that records what it is handed and can answer SOURCE_EFULL.
 * Skipped when redis-server is not installed.
 */
#include "autoconf.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "source.h"
#include "source_pubsub.h"
#include "source_streams.h"
#include "redis_server_fixture.h"

#define HANDLED_MAX 64
#define SKIPPED_MAX 16

#define MESSAGE(id) "{\"type\":\"message\",\"id\":\"" id "\",\"client_id\":\"alice\"," \
	"\"text\":\"hello\"}"
#define ROOM_MESSAGE(id) "{\"type\":\"message\",\"room\":\"general\",\"id\":\"" id "\"," \
	"\"client_id\":\"alice\",\"text\":\"hello\"}"

/* What the fake sink was handed. */
struct handled {
	char room[64];
	char id[64];
	source_ack_fn *ack;
	void *ctx;
	int acked;
};

struct fake_sink {
	struct handled handled[HANDLED_MAX];
	size_t count;
	int full;			/* answer SOURCE_EFULL */
	size_t accept_max;		/* answer SOURCE_EFULL from this count on; 0: never */
	unsigned efull;			/* SOURCE_EFULL answers given */
	char skipped[SKIPPED_MAX][16];	/* the reasons */
	unsigned nskipped;
	int stop_in_handle;		/* stop the source from inside handle */
	struct fixture *fixture;
};

/* The redis-server of this file. */
struct fixture {
	struct event_base *base;
	struct event *tick;
	redisContext *redis;		/* the test's own client */
	struct config config;
	struct fake_sink sink;
	struct source_sink source_sink;
	const struct source_ops *ops;
	struct source *source;
	char dir[300];
	char password_file[400];
	int saved_stderr;
};

/* ---- the fake sink ---- */

/* Take an event as the router does: move its contents out, keep what we check. */
static int
sink_handle(void *arg, struct room_event *event, source_ack_fn *ack, void *ctx)
{
	struct fake_sink *sink = arg;
	struct room_event taken;
	struct handled *h;

	if (sink->stop_in_handle) {
		sink->fixture->ops->stop(sink->fixture->source);
		sink->fixture->source = NULL;
		sink->stop_in_handle = 0;
		sink->efull++;
		return SOURCE_EFULL;
	}
	if (sink->full || (sink->accept_max > 0 && sink->count >= sink->accept_max)) {
		sink->efull++;
		return SOURCE_EFULL;
	}
	assert_true(sink->count < HANDLED_MAX);
	taken = *event;
	memset(event, 0, sizeof *event);
	h = &sink->handled[sink->count++];
	snprintf(h->room, sizeof h->room, "%s", taken.room != NULL ? taken.room : "");
	snprintf(h->id, sizeof h->id, "%s", taken.id != NULL ? taken.id : "");
	h->ack = ack;
	h->ctx = ctx;
	room_event_free(&taken);
	return SOURCE_OK;
}

static void
sink_skipped(void *arg, const char *source, const char *reason)
{
	struct fake_sink *sink = arg;

	if (sink->nskipped < SKIPPED_MAX)
		snprintf(sink->skipped[sink->nskipped], sizeof sink->skipped[0], "%s", reason);
	sink->nskipped++;
}

/* Acknowledge handled event i. */
static void
ack(struct fixture *f, size_t i)
{
	assert_true(i < f->sink.count);
	assert_false(f->sink.handled[i].acked);
	f->sink.handled[i].acked = 1;
	f->sink.handled[i].ack(f->sink.handled[i].ctx);
}

static void
ack_all(struct fixture *f)
{
	for (size_t i = 0; i < f->sink.count; i++)
		if (!f->sink.handled[i].acked)
			ack(f, i);
}

/* Forget what was handled (a new process, as far as the sink knows). */
static void
sink_reset(struct fixture *f)
{
	memset(&f->sink, 0, sizeof f->sink);
	f->sink.fixture = f;
}

/* ---- the test's own Redis client ---- */

/* Run a command, asserting it was not an error; the caller frees the reply. */
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

/* Run a command whose reply does not matter (errors included). */
static void
cmd_quiet(struct fixture *f, const char *fmt, ...)
{
	redisReply *reply;
	va_list ap;

	va_start(ap, fmt);
	reply = redisvCommand(f->redis, fmt, ap);
	va_end(ap);
	if (reply != NULL)
		freeReplyObject(reply);
}

static long long
cmd_integer(struct fixture *f, const char *fmt, ...)
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

/* XADD key * event json, the new id in id. */
static void
xadd(struct fixture *f, const char *key, const char *json, char *id, size_t idlen)
{
	redisReply *reply = cmd(f, "XADD %s * event %s", key, json);

	assert_int_equal(reply->type, REDIS_REPLY_STRING);
	if (id != NULL)
		snprintf(id, idlen, "%s", reply->str);
	freeReplyObject(reply);
}

/* XADD n messages m<first>.. in one transaction (so one XREADGROUP sees them all). */
static void
xadd_many(struct fixture *f, const char *key, int first, int n, char ids[][48])
{
	redisReply *reply;
	char json[128];

	freeReplyObject(cmd(f, "MULTI"));
	for (int i = 0; i < n; i++) {
		snprintf(json, sizeof json, "{\"type\":\"message\",\"room\":\"general\","
		    "\"id\":\"m%d\",\"client_id\":\"alice\",\"text\":\"hello\"}", first + i);
		freeReplyObject(cmd(f, "XADD %s * event %s", key, json));
	}
	reply = cmd(f, "EXEC");
	assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
	assert_int_equal(reply->elements, n);
	for (int i = 0; i < n; i++)
		snprintf(ids[i], 48, "%s", reply->element[i]->str);
	freeReplyObject(reply);
}

/* Entries pending in the group (XPENDING's count). */
static long long
xpending(struct fixture *f, const char *key)
{
	redisReply *reply = cmd(f, "XPENDING %s g", key);
	long long n;

	assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
	n = reply->element[0]->integer;
	freeReplyObject(reply);
	return n;
}

/* The ids of the entries pending in the group, space separated. */
static void
xpending_ids(struct fixture *f, const char *key, char *out, size_t outlen)
{
	redisReply *reply = cmd(f, "XPENDING %s g - + 100", key);

	out[0] = '\0';
	for (size_t i = 0; i < reply->elements; i++) {
		strncat(out, reply->element[i]->element[0]->str, outlen - strlen(out) - 1);
		if (i + 1 < reply->elements)
			strncat(out, " ", outlen - strlen(out) - 1);
	}
	freeReplyObject(reply);
}

/* A number from INFO. */
static long long
info_number(struct fixture *f, const char *section, const char *field)
{
	redisReply *reply = cmd(f, "INFO %s", section);
	char *p;
	long long n;

	assert_non_null(p = strstr(reply->str, field));
	n = strtoll(p + strlen(field) + 1, NULL, 10);
	freeReplyObject(reply);
	return n;
}

/* ---- the loop ---- */

static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until cond holds or ms pass. */
#define WAIT_FOR(f, cond, ms) do {						\
	int64_t deadline_ = clock_monotonic_ms() + (ms);			\
	while (!(cond) && clock_monotonic_ms() < deadline_)			\
		event_base_loop((f)->base, EVLOOP_ONCE);			\
} while (0)

/* Run the loop for ms. */
static void
run_for(struct fixture *f, int64_t ms)
{
	int64_t deadline = clock_monotonic_ms() + ms;

	while (clock_monotonic_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static struct source_stats
stats(struct fixture *f)
{
	struct source_stats s;

	f->ops->stats(f->source, &s);
	return s;
}

static void
start(struct fixture *f, const struct source_ops *ops)
{
	char err[256] = "";

	f->ops = ops;
	f->source = ops->start(f->base, &f->config, &f->source_sink, err, sizeof err);
	if (f->source == NULL)
		fail_msg("start: %s", err);
}

static void
start_connected(struct fixture *f, const struct source_ops *ops)
{
	start(f, ops);
	WAIT_FOR(f, stats(f).connected, 3000);
	assert_true(stats(f).connected);
}

static void
stop(struct fixture *f)
{
	if (f->source != NULL)
		f->ops->stop(f->source);
	f->source = NULL;
}

/* ---- the log ---- */

/* Send stderr (the log) to a file until log_capture_end(). */
static void
log_capture_begin(struct fixture *f)
{
	char path[400];
	int fd;

	snprintf(path, sizeof path, "%s/captured.log", f->dir);
	fflush(stderr);
	f->saved_stderr = dup(2);
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
	dup2(fd, 2);
	close(fd);
}

/* Restore stderr (copying the captured lines to it). */
static void
log_capture_end(struct fixture *f)
{
	char path[400], line[2048];
	FILE *file;

	if (f->saved_stderr == -1)
		return;
	fflush(stderr);
	dup2(f->saved_stderr, 2);
	close(f->saved_stderr);
	f->saved_stderr = -1;
	snprintf(path, sizeof path, "%s/captured.log", f->dir);
	if ((file = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof line, file) != NULL)
		fputs(line, stderr);
	fclose(file);
}

/* Captured lines that contain every needle (NULL-terminated). */
static unsigned
log_count(struct fixture *f, ...)
{
	char path[400], line[2048];
	const char *needle;
	unsigned n = 0;
	int all;
	FILE *file;
	va_list ap;

	snprintf(path, sizeof path, "%s/captured.log", f->dir);
	assert_non_null(file = fopen(path, "r"));
	while (fgets(line, sizeof line, file) != NULL) {
		all = 1;
		va_start(ap, f);
		while ((needle = va_arg(ap, const char *)) != NULL)
			if (strstr(line, needle) == NULL)
				all = 0;
		va_end(ap);
		n += all;
	}
	fclose(file);
	return n;
}

/* ---- fixtures ---- */

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct timeval tv = { 0, 5000 };

	assert_non_null(f);
	f->saved_stderr = -1;
	snprintf(f->dir, sizeof f->dir, "%s/test.XXXXXX", server.dir);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->password_file, sizeof f->password_file, "%s/password", f->dir);
	f->base = event_base_new();
	f->tick = event_new(f->base, -1, EV_PERSIST, tick, NULL);
	event_add(f->tick, &tv);
	f->redis = redisConnect("127.0.0.1", server.port);
	assert_true(f->redis != NULL && f->redis->err == 0);
	cmd_quiet(f, "CONFIG SET requirepass %s", "");
	cmd_quiet(f, "ACL DELUSER relay");
	cmd_quiet(f, "FLUSHALL");

	sink_reset(f);
	f->source_sink.handle = sink_handle;
	f->source_sink.skipped = sink_skipped;
	f->source_sink.arg = &f->sink;

	f->config.redis_address = server.address;
	f->config.redis_connect_timeout_ms = 1000;
	f->config.redis_reconnect_max_ms = 200;
	f->config.pubsub_enabled = 1;
	f->config.pubsub_pattern = "room:*";
	f->config.streams_enabled = 1;
	f->config.streams_keys = "s1";
	f->config.streams_group = "g";
	f->config.streams_consumer = "c1";
	f->config.streams_batch = 100;
	f->config.streams_block_ms = 100;
	f->config.streams_claim_idle_ms = 1000;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char path[400];

	log_capture_end(f);
	stop(f);
	event_free(f->tick);
	event_base_free(f->base);
	cmd_quiet(f, "CONFIG SET requirepass %s", "");
	cmd_quiet(f, "ACL DELUSER relay");
	redisFree(f->redis);
	unlink(f->password_file);
	snprintf(path, sizeof path, "%s/captured.log", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
write_password(struct fixture *f, const char *line)
{
	FILE *file;

	assert_non_null(file = fopen(f->password_file, "w"));
	fprintf(file, "%s\n", line);
	fclose(file);
	f->config.redis_password_file = f->password_file;
}

/* ---- Pub/Sub ---- */

static void
test_pubsub_hands_published_events_with_the_room_from_the_channel(void **state)
{
	struct fixture *f = *state;

	start_connected(f, &source_pubsub_ops);
	assert_int_equal(cmd_integer(f, "PUBLISH room:support-1 %s", MESSAGE("m1")), 1);
	assert_int_equal(cmd_integer(f, "PUBLISH room:x %s", ROOM_MESSAGE("m2")), 1);
	assert_int_equal(cmd_integer(f, "PUBLISH other:y %s", MESSAGE("m3")), 0);
	WAIT_FOR(f, f->sink.count == 2, 2000);
	run_for(f, 50);
	assert_int_equal(f->sink.count, 2);
	assert_string_equal(f->sink.handled[0].room, "support-1");
	assert_string_equal(f->sink.handled[0].id, "m1");
	assert_string_equal(f->sink.handled[1].room, "general");
	assert_string_equal(f->sink.handled[1].id, "m2");
	ack_all(f);
	assert_int_equal(stats(f).received, 2);
	assert_int_equal(stats(f).dropped, 0);
	assert_int_equal(stats(f).lag, -1);
}

static void
test_pubsub_skips_malformed_and_unknown_events_and_counts_them(void **state)
{
	struct fixture *f = *state;

	start_connected(f, &source_pubsub_ops);
	log_capture_begin(f);
	freeReplyObject(cmd(f, "PUBLISH room:a %s", "not json"));
	freeReplyObject(cmd(f, "PUBLISH room:a %s", "{\"type\":\"typing\",\"client_id\":\"x\"}"));
	freeReplyObject(cmd(f, "PUBLISH room:a %s",
	    "{\"type\":\"message\",\"client_id\":\"alice\",\"text\":\"no id\"}"));
	freeReplyObject(cmd(f, "PUBLISH room:a %s", MESSAGE("m1")));
	WAIT_FOR(f, f->sink.count == 1, 2000);
	assert_int_equal(f->sink.count, 1);
	assert_string_equal(f->sink.handled[0].id, "m1");
	assert_int_equal(stats(f).malformed, 2);
	assert_int_equal(stats(f).unknown, 1);
	assert_int_equal(stats(f).received, 1);
	assert_int_equal(f->sink.nskipped, 3);
	assert_string_equal(f->sink.skipped[0], "malformed");
	assert_string_equal(f->sink.skipped[1], "unknown");
	assert_string_equal(f->sink.skipped[2], "malformed");
	/* One warning a second: the next one counts the two kept quiet. */
	assert_int_equal(log_count(f, "level=warn", "event skipped", NULL), 1);
	assert_int_equal(log_count(f, "event skipped", "channel=room:a", "not valid JSON",
	    NULL), 1);
	run_for(f, 1100);
	freeReplyObject(cmd(f, "PUBLISH room:b %s", "[]"));
	WAIT_FOR(f, f->sink.nskipped == 4, 2000);
	assert_int_equal(stats(f).malformed, 3);
	assert_int_equal(log_count(f, "level=warn", "event skipped", NULL), 2);
	assert_int_equal(log_count(f, "event skipped", "channel=room:b", "suppressed=2", NULL),
	    1);
}

static void
test_pubsub_drops_and_counts_events_while_the_sink_is_full(void **state)
{
	struct fixture *f = *state;

	start_connected(f, &source_pubsub_ops);
	log_capture_begin(f);
	f->sink.full = 1;
	for (int i = 0; i < 3; i++)
		freeReplyObject(cmd(f, "PUBLISH room:a %s", MESSAGE("m1")));
	WAIT_FOR(f, stats(f).dropped == 3, 2000);
	assert_int_equal(stats(f).dropped, 3);
	assert_int_equal(stats(f).received, 0);
	assert_int_equal(f->sink.efull, 3);
	assert_int_equal(f->sink.count, 0);
	assert_int_equal(log_count(f, "level=warn", "event dropped", "dropped=1", NULL), 1);
	assert_int_equal(log_count(f, "event dropped", NULL), 1);
	/* Pub/Sub does not wait for resume: the next event goes through. */
	f->sink.full = 0;
	freeReplyObject(cmd(f, "PUBLISH room:a %s", MESSAGE("m2")));
	WAIT_FOR(f, f->sink.count == 1, 2000);
	assert_string_equal(f->sink.handled[0].id, "m2");
	assert_int_equal(stats(f).dropped, 3);
	assert_int_equal(stats(f).received, 1);
}

static void
test_pubsub_subscribes_again_after_its_connection_is_killed(void **state)
{
	struct fixture *f = *state;

	start_connected(f, &source_pubsub_ops);
	assert_int_equal(stats(f).reconnects, 0);
	log_capture_begin(f);
	assert_int_equal(cmd_integer(f, "CLIENT KILL TYPE pubsub"), 1);
	WAIT_FOR(f, !stats(f).connected, 2000);
	WAIT_FOR(f, stats(f).connected, 3000);
	assert_true(stats(f).connected);
	assert_int_equal(stats(f).reconnects, 1);
	assert_int_equal(cmd_integer(f, "PUBLISH room:back %s", MESSAGE("m1")), 1);
	WAIT_FOR(f, f->sink.count == 1, 2000);
	assert_string_equal(f->sink.handled[0].room, "back");
	assert_int_equal(log_count(f, "level=warn", "redis connection lost", NULL), 1);
	assert_int_equal(log_count(f, "level=info", "redis connection restored", NULL), 1);
}

static void
test_pubsub_authenticates_with_a_password(void **state)
{
	struct fixture *f = *state;

	freeReplyObject(cmd(f, "CONFIG SET requirepass %s", "s3cret pass"));
	write_password(f, "s3cret pass");
	start_connected(f, &source_pubsub_ops);
	assert_int_equal(cmd_integer(f, "PUBLISH room:a %s", MESSAGE("m1")), 1);
	WAIT_FOR(f, f->sink.count == 1, 2000);
	assert_int_equal(f->sink.count, 1);
}

static void
test_pubsub_authenticates_as_an_acl_user(void **state)
{
	struct fixture *f = *state;
	redisReply *reply;

	freeReplyObject(cmd(f, "ACL SETUSER relay on >relay-pw ~* &* +@all"));
	freeReplyObject(cmd(f, "CONFIG SET requirepass %s", "not-this-one"));
	write_password(f, "relay-pw");
	f->config.redis_username = "relay";
	start_connected(f, &source_pubsub_ops);
	reply = cmd(f, "CLIENT LIST TYPE pubsub");
	assert_non_null(strstr(reply->str, "user=relay"));
	freeReplyObject(reply);
	assert_int_equal(cmd_integer(f, "PUBLISH room:a %s", MESSAGE("m1")), 1);
	WAIT_FOR(f, f->sink.count == 1, 2000);
	assert_int_equal(f->sink.count, 1);
}

static void
test_redis_wrong_password_is_logged_once_and_retried(void **state)
{
	struct fixture *f = *state;
	long long connections;

	freeReplyObject(cmd(f, "CONFIG SET requirepass %s", "s3cret"));
	write_password(f, "wrong-password");
	connections = info_number(f, "stats", "total_connections_received");
	log_capture_begin(f);
	start(f, &source_pubsub_ops);
	run_for(f, 1000);
	assert_false(stats(f).connected);
	/* Tried again and again (backoff up to 200 ms), said so once. */
	assert_true(info_number(f, "stats", "total_connections_received") - connections >= 3);
	assert_int_equal(log_count(f, "level=error", "redis authentication failed",
	    "WRONGPASS", NULL), 1);
	assert_int_equal(log_count(f, "redis authentication failed", NULL), 1);
	/* The file is read again on every attempt. */
	write_password(f, "s3cret");
	WAIT_FOR(f, stats(f).connected, 3000);
	assert_true(stats(f).connected);
	assert_int_equal(stats(f).reconnects, 0);
	assert_int_equal(log_count(f, "level=info", "redis connection restored", NULL), 1);
	assert_int_equal(log_count(f, "wrong-password", NULL), 0);
	assert_int_equal(log_count(f, "s3cret", NULL), 0);
}

static void
test_redis_unreadable_password_file_is_an_error_and_retried(void **state)
{
	struct fixture *f = *state;

	f->config.redis_password_file = f->password_file;	/* not written yet */
	log_capture_begin(f);
	start(f, &source_pubsub_ops);
	run_for(f, 300);
	assert_false(stats(f).connected);
	assert_int_equal(log_count(f, "level=error", "cannot read the redis password file",
	    "No such file", NULL), 1);
	freeReplyObject(cmd(f, "CONFIG SET requirepass %s", "s3cret"));
	write_password(f, "s3cret");
	WAIT_FOR(f, stats(f).connected, 3000);
	assert_true(stats(f).connected);
}

static void
test_stop_while_connecting_or_waiting_frees_everything(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	char address[64];
	int fd;

	/* A server that accepts TCP (the kernel's backlog) but never answers. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(address, sizeof address, "127.0.0.1:%d", ntohs(sin.sin_port));
	f->config.redis_address = address;
	f->config.redis_connect_timeout_ms = 300;
	log_capture_begin(f);
	start(f, &source_streams_ops);
	run_for(f, 100);
	assert_false(stats(f).connected);
	stop(f);
	start(f, &source_pubsub_ops);
	run_for(f, 450);
	assert_false(stats(f).connected);
	assert_int_equal(log_count(f, "level=warn", "redis connect timed out", NULL), 1);
	stop(f);
	close(fd);

	/* Nobody listens: stopped while waiting to reconnect. */
	snprintf(address, sizeof address, "127.0.0.1:%d", free_port());
	start(f, &source_streams_ops);
	run_for(f, 100);
	assert_false(stats(f).connected);
	assert_int_equal(log_count(f, "level=warn", "cannot connect to redis", NULL), 1);
	stop(f);
}

static void
test_start_rejects_a_bad_address(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	f->config.redis_address = "redis.example:6379";
	assert_null(source_pubsub_ops.start(f->base, &f->config, &f->source_sink, err,
	    sizeof err));
	assert_string_equal(err, "[redis] address: not host:port: redis.example:6379");
	f->config.redis_address = server.address;
	f->config.streams_keys = "a b a";
	assert_null(source_streams_ops.start(f->base, &f->config, &f->source_sink, err,
	    sizeof err));
	assert_string_equal(err, "[streams] keys: a is named twice");
}

/* ---- Streams ---- */

static void
test_streams_creates_the_groups_with_mkstream_in_the_configured_db(void **state)
{
	struct fixture *f = *state;
	redisReply *reply;

	f->config.redis_db = 2;
	f->config.streams_keys = " s1  s2 ";
	start_connected(f, &source_streams_ops);
	run_for(f, 50);
	assert_int_equal(cmd_integer(f, "EXISTS s1 s2"), 0);
	freeReplyObject(cmd(f, "SELECT 2"));
	assert_int_equal(cmd_integer(f, "EXISTS s1 s2"), 2);
	reply = cmd(f, "XINFO GROUPS s2");
	assert_int_equal(reply->elements, 1);
	assert_string_equal(reply->element[0]->element[1]->str, "g");
	freeReplyObject(reply);
	/* A group that exists already is fine (BUSYGROUP). */
	stop(f);
	start_connected(f, &source_streams_ops);
	freeReplyObject(cmd(f, "SELECT 0"));
}

static void
test_streams_key_of_another_type_is_an_error_until_it_is_fixed(void **state)
{
	struct fixture *f = *state;

	freeReplyObject(cmd(f, "SET s1 %s", "not a stream"));
	log_capture_begin(f);
	start(f, &source_streams_ops);
	run_for(f, 600);
	assert_false(stats(f).connected);
	assert_int_equal(log_count(f, "level=error", "cannot create the redis consumer group",
	    "s1: WRONGTYPE", NULL), 1);
	assert_int_equal(log_count(f, "redis connected", NULL), 0);
	freeReplyObject(cmd(f, "DEL s1"));
	WAIT_FOR(f, stats(f).connected, 3000);
	assert_true(stats(f).connected);
	assert_int_equal(stats(f).reconnects, 0);
	assert_int_equal(log_count(f, "level=info", "redis connection restored", NULL), 1);
	assert_int_equal(cmd_integer(f, "EXISTS s1"), 1);
}

static void
test_streams_consumer_is_named_after_the_host_and_pid_by_default(void **state)
{
	struct fixture *f = *state;
	char hostname[256], expected[300];
	redisReply *reply;

	f->config.streams_consumer = NULL;
	start_connected(f, &source_streams_ops);
	xadd(f, "s1", ROOM_MESSAGE("m0"), NULL, 0);
	WAIT_FOR(f, f->sink.count == 1, 2000);
	assert_int_equal(gethostname(hostname, sizeof hostname), 0);
	snprintf(expected, sizeof expected, "%s-%ld", hostname, (long)getpid());
	reply = cmd(f, "XINFO CONSUMERS s1 g");
	assert_int_equal(reply->elements, 1);
	assert_string_equal(reply->element[0]->element[1]->str, expected);
	freeReplyObject(reply);
}

static void
test_streams_hands_entries_in_order_and_xacks_each_when_acked(void **state)
{
	struct fixture *f = *state;
	char ids[5][48], pending[512], expected[512];

	start_connected(f, &source_streams_ops);
	for (int i = 0; i < 5; i++) {
		char json[128];
		snprintf(json, sizeof json, "{\"type\":\"message\",\"room\":\"r\",\"id\":\"m%d\","
		    "\"client_id\":\"alice\",\"text\":\"hello\"}", i);
		xadd(f, "s1", json, ids[i], sizeof ids[i]);
	}
	WAIT_FOR(f, f->sink.count == 5, 2000);
	assert_int_equal(f->sink.count, 5);
	for (int i = 0; i < 5; i++) {
		char id[8];
		snprintf(id, sizeof id, "m%d", i);
		assert_string_equal(f->sink.handled[i].id, id);
		assert_string_equal(f->sink.handled[i].room, "r");
	}
	run_for(f, 50);
	assert_int_equal(xpending(f, "s1"), 5);
	assert_int_equal(stats(f).pending, 5);
	assert_int_equal(stats(f).received, 5);

	/* Out of order: exactly those entries go. */
	ack(f, 3);
	ack(f, 1);
	WAIT_FOR(f, xpending(f, "s1") == 3 && stats(f).acked == 2, 2000);
	xpending_ids(f, "s1", pending, sizeof pending);
	snprintf(expected, sizeof expected, "%s %s %s", ids[0], ids[2], ids[4]);
	assert_string_equal(pending, expected);
	assert_int_equal(stats(f).acked, 2);
	assert_int_equal(stats(f).pending, 3);
	ack_all(f);
	WAIT_FOR(f, xpending(f, "s1") == 0 && stats(f).acked == 5, 2000);
	assert_int_equal(xpending(f, "s1"), 0);
	assert_int_equal(stats(f).acked, 5);
	assert_int_equal(stats(f).pending, 0);
}

static void
test_streams_xacks_malformed_and_unknown_entries_at_once(void **state)
{
	struct fixture *f = *state;
	char id[48], pending[128];

	start_connected(f, &source_streams_ops);
	freeReplyObject(cmd(f, "XADD s1 * other %s", "x"));
	xadd(f, "s1", "not json", NULL, 0);
	xadd(f, "s1", "{\"type\":\"typing\",\"room\":\"r\"}", NULL, 0);
	xadd(f, "s1", MESSAGE("no-room"), NULL, 0);
	xadd(f, "s1", ROOM_MESSAGE("m1"), id, sizeof id);
	WAIT_FOR(f, f->sink.count == 1 && xpending(f, "s1") == 1, 2000);
	assert_int_equal(f->sink.count, 1);
	assert_string_equal(f->sink.handled[0].id, "m1");
	xpending_ids(f, "s1", pending, sizeof pending);
	assert_string_equal(pending, id);
	assert_int_equal(stats(f).malformed, 3);
	assert_int_equal(stats(f).unknown, 1);
	assert_int_equal(f->sink.nskipped, 4);
	assert_string_equal(f->sink.skipped[0], "malformed");
	assert_string_equal(f->sink.skipped[2], "unknown");
	/* Skipped entries are not counted as acknowledged events. */
	assert_int_equal(stats(f).acked, 0);
	ack(f, 0);
	WAIT_FOR(f, xpending(f, "s1") == 0 && stats(f).acked == 1, 2000);
	assert_int_equal(xpending(f, "s1"), 0);
	assert_int_equal(stats(f).acked, 1);
}

static void
test_streams_pauses_when_full_and_resumes_in_order_without_loss(void **state)
{
	struct fixture *f = *state;
	char ids[8][48];

	start_connected(f, &source_streams_ops);
	f->sink.accept_max = 2;
	xadd_many(f, "s1", 0, 5, ids);
	WAIT_FOR(f, f->sink.efull == 1, 2000);
	assert_int_equal(f->sink.count, 2);
	assert_true(stats(f).paused);
	/* Paused: nothing more is read (the new entries stay undelivered), nothing offered. */
	xadd_many(f, "s1", 5, 3, ids + 5);
	run_for(f, 400);
	assert_int_equal(f->sink.count, 2);
	assert_int_equal(f->sink.efull, 1);
	assert_int_equal(xpending(f, "s1"), 5);
	assert_int_equal(stats(f).pending, 2);

	f->sink.accept_max = 0;
	f->ops->resume(f->source);
	WAIT_FOR(f, f->sink.count == 8, 2000);
	run_for(f, 150);
	assert_int_equal(f->sink.count, 8);
	assert_int_equal(f->sink.efull, 1);
	for (int i = 0; i < 8; i++) {
		char id[8];
		snprintf(id, sizeof id, "m%d", i);
		assert_string_equal(f->sink.handled[i].id, id);
	}
	assert_false(stats(f).paused);
	ack_all(f);
	WAIT_FOR(f, xpending(f, "s1") == 0 && stats(f).acked == 8, 2000);
	assert_int_equal(stats(f).acked, 8);
}

static void
test_streams_pause_from_the_sink_stops_reading_until_resume(void **state)
{
	struct fixture *f = *state;
	char ids[2][48];

	start_connected(f, &source_streams_ops);
	f->ops->pause(f->source);
	run_for(f, 200);	/* the XREADGROUP in flight times out */
	xadd_many(f, "s1", 0, 2, ids);
	run_for(f, 300);
	assert_int_equal(f->sink.count, 0);
	assert_int_equal(xpending(f, "s1"), 0);
	assert_true(stats(f).paused);
	f->ops->resume(f->source);
	WAIT_FOR(f, f->sink.count == 2, 2000);
	assert_int_equal(f->sink.count, 2);
	assert_false(stats(f).paused);
	ack_all(f);
	WAIT_FOR(f, xpending(f, "s1") == 0 && stats(f).acked == 2, 2000);
	assert_int_equal(xpending(f, "s1"), 0);
	assert_int_equal(stats(f).acked, 2);
}

static void
test_streams_restart_hands_its_own_pending_entries_first(void **state)
{
	struct fixture *f = *state;
	char ids[5][48];

	start_connected(f, &source_streams_ops);
	xadd_many(f, "s1", 0, 3, ids);
	WAIT_FOR(f, f->sink.count == 3, 2000);
	assert_int_equal(f->sink.count, 3);
	stop(f);		/* "crash": nothing acked */
	xadd_many(f, "s1", 3, 2, ids + 3);

	sink_reset(f);
	start(f, &source_streams_ops);
	WAIT_FOR(f, f->sink.count == 5, 3000);
	run_for(f, 150);
	assert_int_equal(f->sink.count, 5);
	for (int i = 0; i < 5; i++) {
		char id[8];
		snprintf(id, sizeof id, "m%d", i);
		assert_string_equal(f->sink.handled[i].id, id);
	}
	ack_all(f);
	WAIT_FOR(f, xpending(f, "s1") == 0 && stats(f).acked == 5, 2000);
	assert_int_equal(xpending(f, "s1"), 0);
	assert_int_equal(stats(f).acked, 5);
}

static void
test_streams_claims_entries_a_stopped_consumer_left_exactly_once(void **state)
{
	struct fixture *f = *state;
	char ids[3][48];
	redisReply *reply;

	f->config.streams_consumer = "dead";
	start_connected(f, &source_streams_ops);
	xadd_many(f, "s1", 0, 3, ids);
	WAIT_FOR(f, f->sink.count == 3, 2000);
	stop(f);

	sink_reset(f);
	f->config.streams_consumer = "alive";
	start_connected(f, &source_streams_ops);
	run_for(f, 300);
	assert_int_equal(f->sink.count, 0);	/* not idle for claim_idle yet */
	WAIT_FOR(f, f->sink.count == 3, 3000);
	assert_int_equal(f->sink.count, 3);
	/* Our own entries idle past claim_idle are claimed again, and not handed twice. */
	run_for(f, 1300);
	assert_int_equal(f->sink.count, 3);
	for (int i = 0; i < 3; i++) {
		char id[8];
		snprintf(id, sizeof id, "m%d", i);
		assert_string_equal(f->sink.handled[i].id, id);
	}
	reply = cmd(f, "XPENDING s1 g");
	assert_int_equal(reply->element[0]->integer, 3);
	assert_int_equal(reply->element[3]->elements, 1);
	assert_string_equal(reply->element[3]->element[0]->element[0]->str, "alive");
	freeReplyObject(reply);
	ack_all(f);
	WAIT_FOR(f, xpending(f, "s1") == 0 && stats(f).acked == 3, 2000);
	assert_int_equal(stats(f).acked, 3);
}

static void
test_streams_reconnects_without_handing_held_entries_twice(void **state)
{
	struct fixture *f = *state;
	char id[48];

	start_connected(f, &source_streams_ops);
	xadd(f, "s1", ROOM_MESSAGE("m0"), id, sizeof id);
	WAIT_FOR(f, f->sink.count == 1, 2000);
	log_capture_begin(f);
	assert_int_equal(cmd_integer(f, "CLIENT KILL SKIPME yes TYPE normal"), 2);
	/* Acked across the outage: the XACK goes out once the link is back. */
	ack(f, 0);
	WAIT_FOR(f, stats(f).reconnects == 1 && stats(f).connected, 3000);
	assert_int_equal(stats(f).reconnects, 1);
	xadd(f, "s1", ROOM_MESSAGE("m1"), id, sizeof id);
	WAIT_FOR(f, f->sink.count == 2, 2000);
	run_for(f, 200);
	assert_int_equal(f->sink.count, 2);
	assert_string_equal(f->sink.handled[1].id, "m1");
	ack(f, 1);
	WAIT_FOR(f, xpending(f, "s1") == 0 && stats(f).acked == 2, 2000);
	assert_int_equal(xpending(f, "s1"), 0);
	assert_int_equal(stats(f).acked, 2);
	assert_int_equal(log_count(f, "level=warn", "redis connection lost", NULL), 1);
}

static void
test_streams_reports_lag_and_pending(void **state)
{
	struct fixture *f = *state;
	char ids[5][48];

	freeReplyObject(cmd(f, "XGROUP CREATE s1 g $ MKSTREAM"));
	f->config.streams_batch = 2;
	f->sink.full = 1;
	start_connected(f, &source_streams_ops);
	xadd_many(f, "s1", 0, 5, ids);
	WAIT_FOR(f, stats(f).lag == 3, 3000);
	assert_int_equal(stats(f).lag, 3);	/* two read (and held), three to go */
	assert_true(stats(f).paused);
	assert_int_equal(stats(f).pending, 0);
	assert_int_equal(f->sink.efull, 1);
	f->sink.full = 0;
	f->ops->resume(f->source);
	WAIT_FOR(f, f->sink.count == 5, 2000);
	assert_int_equal(stats(f).pending, 5);
	ack_all(f);
	WAIT_FOR(f, xpending(f, "s1") == 0 && stats(f).acked == 5, 2000);
	assert_int_equal(xpending(f, "s1"), 0);
	assert_int_equal(stats(f).acked, 5);
}

static void
test_streams_stopped_from_inside_the_sink(void **state)
{
	struct fixture *f = *state;
	char ids[2][48];

	start_connected(f, &source_streams_ops);
	f->sink.stop_in_handle = 1;
	xadd_many(f, "s1", 0, 2, ids);
	WAIT_FOR(f, f->source == NULL, 2000);
	assert_null(f->source);
	run_for(f, 100);
	assert_int_equal(xpending(f, "s1"), 2);

	/* The same for Pub/Sub. */
	start_connected(f, &source_pubsub_ops);
	f->sink.stop_in_handle = 1;
	freeReplyObject(cmd(f, "PUBLISH room:a %s", MESSAGE("m1")));
	WAIT_FOR(f, f->source == NULL, 2000);
	assert_null(f->source);
	run_for(f, 50);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_pubsub_hands_published_events_with_the_room_from_the_channel),
		TEST(test_pubsub_skips_malformed_and_unknown_events_and_counts_them),
		TEST(test_pubsub_drops_and_counts_events_while_the_sink_is_full),
		TEST(test_pubsub_subscribes_again_after_its_connection_is_killed),
		TEST(test_pubsub_authenticates_with_a_password),
		TEST(test_pubsub_authenticates_as_an_acl_user),
		TEST(test_redis_wrong_password_is_logged_once_and_retried),
		TEST(test_redis_unreadable_password_file_is_an_error_and_retried),
		TEST(test_stop_while_connecting_or_waiting_frees_everything),
		TEST(test_start_rejects_a_bad_address),
		TEST(test_streams_creates_the_groups_with_mkstream_in_the_configured_db),
		TEST(test_streams_key_of_another_type_is_an_error_until_it_is_fixed),
		TEST(test_streams_consumer_is_named_after_the_host_and_pid_by_default),
		TEST(test_streams_hands_entries_in_order_and_xacks_each_when_acked),
		TEST(test_streams_xacks_malformed_and_unknown_entries_at_once),
		TEST(test_streams_pauses_when_full_and_resumes_in_order_without_loss),
		TEST(test_streams_pause_from_the_sink_stops_reading_until_resume),
		TEST(test_streams_restart_hands_its_own_pending_entries_first),
		TEST(test_streams_claims_entries_a_stopped_consumer_left_exactly_once),
		TEST(test_streams_reconnects_without_handing_held_entries_twice),
		TEST(test_streams_reports_lag_and_pending),
		TEST(test_streams_stopped_from_inside_the_sink),
	};
	int rv;

	signal(SIGPIPE, SIG_IGN);
	if (!redis_server_installed()) {
		printf("1..0 # SKIP redis-server is not installed\n");
		return 0;
	}
	if (server_start("test_source_redis") != 0) {
		fprintf(stderr, "cannot start redis-server (see %s/redis.log)\n", server.dir);
		return 1;
	}
	rv = cmocka_run_group_tests_name("source_redis", tests, NULL, NULL);
	server_stop();
	return rv;
}
