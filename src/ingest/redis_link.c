/* The connections of a Redis source: connect, authenticate, fail, back off. */
#include "autoconf.h"

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
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "redis_link.h"
#include "secret_file.h"
#include "xmalloc.h"

#define REDIS_BACKOFF_BASE_MS 100	/* first reconnect waits up to this long */
#define REDIS_STABLE_MS 10000		/* up this long: the backoff starts over */
#define REDIS_LOG_INTERVAL_MS 1000	/* one rate-limited line a second */
#define REDIS_PASSWORD_MAX 1024
#define REDIS_PASSWORD_FILE_MAX (64 * 1024)

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

/* One hiredis connection of a link. */
struct redis_conn {
	struct redis_link *link;
	const char *role;
	redisAsyncContext *ac;		/* NULL while down */
	int setup_pending;		/* setup replies still to come */
};

struct redis_link {
	struct event_base *base;
	struct redis_link_callbacks callbacks;
	const char *name;
	int select_db;

	/* [redis] */
	char *address;
	char *host;
	int port;
	char *username;			/* NULL: AUTH with the password alone */
	char *password_file;		/* NULL: no AUTH */
	int db;
	int64_t connect_timeout_ms;
	int64_t reconnect_max_ms;

	struct redis_conn conns[REDIS_LINK_CONNS_MAX];
	size_t count;
	enum link_state state;
	struct event *timer;		/* connect timeout, or the wait to reconnect */
	unsigned failures;		/* failed attempts since the link was last stable */
	int established;		/* subscribed, or the groups exist */
	int64_t established_ms;
	int ever_established;
	uint64_t reconnects;
	int outage_logged;
	const char *outage_what;	/* the failure logged for this outage */
	int64_t down_since_ms;
};

static void link_connect(struct redis_link *);

/* Is a reply a string (bulk or status)? */
int
redis_reply_is_string(const redisReply *reply)
{
	return reply != NULL && (reply->type == REDIS_REPLY_STRING ||
	    reply->type == REDIS_REPLY_STATUS) && reply->str != NULL;
}

/* Arm a timer for ms milliseconds. */
void
redis_timer_add_ms(struct event *timer, int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(timer, &tv);
}

/* May we log now? If so, *suppressed says how many lines were kept quiet. */
int
redis_ratelimit_allow(struct redis_ratelimit *limit, uint64_t *suppressed)
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
link_read_password(const char *path, char *buf, size_t size, char *error, size_t errlen)
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

/* Drop every connection of the link (their pending callbacks see them detached). */
static void
link_teardown(struct redis_link *link)
{
	redisAsyncContext *ac;

	for (size_t i = 0; i < link->count; i++) {
		link->conns[i].setup_pending = 0;
		if ((ac = link->conns[i].ac) == NULL)
			continue;
		link->conns[i].ac = NULL;
		ac->data = NULL;
		/* In one of ac's reply callbacks this only marks it: hiredis frees it after. */
		redisAsyncFree(ac);
	}
}

/* Drop the link and connect again after a backoff; log once per outage. */
void
redis_link_fail(struct redis_link *link, enum log_level level, const char *what,
    const char *error)
{
	uint64_t cap;
	int64_t delay;

	if (link->state == LINK_WAITING || link->state == LINK_STOPPED)
		return;
	/* A link that fails soon after each connect keeps backing off. */
	if (link->established &&
	    clock_monotonic_ms() - link->established_ms >= REDIS_STABLE_MS)
		link->failures = 0;
	link_teardown(link);
	link->state = LINK_WAITING;
	link->established = 0;
	if (link->callbacks.down != NULL)
		link->callbacks.down(link->callbacks.arg);

	if (!link->outage_logged || link->outage_what != what) {
		log_write(level, what, "source", link->name, "address", link->address,
		    error != NULL ? "error" : NULL, error, NULL);
		if (!link->outage_logged)
			link->down_since_ms = clock_monotonic_ms();
		link->outage_logged = 1;
		link->outage_what = what;
	} else
		log_debug(what, "source", link->name, "address", link->address,
		    error != NULL ? "error" : NULL, error, NULL);

	/* Exponential backoff with full jitter. */
	cap = (uint64_t)REDIS_BACKOFF_BASE_MS << (link->failures < 20 ? link->failures : 20);
	if (cap > (uint64_t)link->reconnect_max_ms)
		cap = (uint64_t)link->reconnect_max_ms;
	if (cap > UINT32_MAX - 1)
		cap = UINT32_MAX - 1;
	link->failures++;
	delay = arc4random_uniform((uint32_t)cap + 1);
	redis_timer_add_ms(link->timer, delay);
}

/* Every connection answered its setup: the source subscribes, or creates its groups. */
static void
link_ready(struct redis_link *link)
{
	link->state = LINK_READY;
	evtimer_del(link->timer);
	link->callbacks.ready(link->callbacks.arg);
}

/* The source works (again): count a reconnect, log a connect or a recovery. */
void
redis_link_established(struct redis_link *link)
{
	char down[24];

	link->established = 1;
	link->established_ms = clock_monotonic_ms();
	if (link->ever_established)
		link->reconnects++;
	if (link->outage_logged) {
		snprintf(down, sizeof down, "%lld",
		    (long long)(link->established_ms - link->down_since_ms));
		log_info("redis connection restored", "source", link->name,
		    "address", link->address, "down_ms", down, NULL);
	} else if (!link->ever_established)
		log_info("redis connected", "source", link->name, "address", link->address,
		    NULL);
	link->outage_logged = 0;
	link->outage_what = NULL;
	link->ever_established = 1;
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
		log_debug("redis connection established", "source", conn->link->name,
		    "connection", conn->role, NULL);
		return;
	}
	/* hiredis frees ac when this returns. */
	snprintf(error, sizeof error, "%s", ac->errstr != NULL ? ac->errstr : "failed");
	((redisAsyncContext *)ac)->data = NULL;
	conn->ac = NULL;
	redis_link_fail(conn->link, LOG_LEVEL_WARN, "cannot connect to redis", error);
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
	redis_link_fail(conn->link, LOG_LEVEL_WARN, "redis connection lost", error);
}

/* An answer to AUTH, SELECT or PING. */
static void
conn_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_conn *conn = ac->data;
	enum setup_command command = (enum setup_command)(intptr_t)privdata;
	redisReply *reply = r;
	struct redis_link *link;

	if (conn == NULL || reply == NULL)
		return;
	link = conn->link;
	if (reply->type == REDIS_REPLY_ERROR) {
		if (command == SETUP_AUTH)
			redis_link_fail(link, LOG_LEVEL_ERROR, "redis authentication failed",
			    reply->str);
		else if (command == SETUP_SELECT)
			redis_link_fail(link, LOG_LEVEL_ERROR, "redis SELECT failed", reply->str);
		else
			redis_link_fail(link, LOG_LEVEL_ERROR, "redis refused the connection",
			    reply->str);
		return;
	}
	if (--conn->setup_pending > 0)
		return;
	for (size_t i = 0; i < link->count; i++)
		if (link->conns[i].ac == NULL || link->conns[i].setup_pending > 0)
			return;
	link_ready(link);
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
 * connection is up): AUTH with the password file's first line, SELECT if asked, or
 * a PING, so that the link is ready only when Redis has answered.
 */
static void
link_connect(struct redis_link *link)
{
	char password[REDIS_PASSWORD_MAX], error[256], db[16];
	const char *argv[3];
	struct redis_conn *conn;
	redisAsyncContext *ac;
	int have_password = 0, failed = 0;

	link->state = LINK_CONNECTING;
	if (link->password_file != NULL) {
		if (link_read_password(link->password_file, password, sizeof password, error,
		    sizeof error) != 0) {
			redis_link_fail(link, LOG_LEVEL_ERROR,
			    "cannot read the redis password file", error);
			return;
		}
		have_password = 1;
	}
	snprintf(db, sizeof db, "%d", link->db);
	for (size_t i = 0; i < link->count && !failed; i++) {
		conn = &link->conns[i];
		if ((ac = redisAsyncConnect(link->host, link->port)) == NULL)
			fatalx("redisAsyncConnect: out of memory");
		if (ac->err != 0) {
			snprintf(error, sizeof error, "%s", ac->errstr);
			redisAsyncFree(ac);
			failed = 1;
			break;
		}
		conn->ac = ac;
		ac->data = conn;
		redisLibeventAttach(ac, link->base);
		redisAsyncSetConnectCallback(ac, conn_connected);
		redisAsyncSetDisconnectCallback(ac, conn_disconnected);
		conn_keepalive(ac->c.fd);

		if (have_password) {
			argv[0] = "AUTH";
			if (link->username != NULL) {
				argv[1] = link->username;
				argv[2] = password;
			} else
				argv[1] = password;
			if (conn_setup_send(conn, SETUP_AUTH, link->username != NULL ? 3 : 2,
			    argv) != 0)
				failed = 1;
		}
		if (link->select_db && link->db != 0) {
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
		redis_link_fail(link, LOG_LEVEL_WARN, "cannot connect to redis", error);
		return;
	}
	redis_timer_add_ms(link->timer, link->connect_timeout_ms);
}

/* Connect timeout, or the end of the wait before the next attempt. */
static void
link_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct redis_link *link = arg;

	if (link->state == LINK_CONNECTING)
		redis_link_fail(link, LOG_LEVEL_WARN, "redis connect timed out", NULL);
	else if (link->state == LINK_WAITING)
		link_connect(link);
}

/* A link from [redis], not connected yet; NULL with err set on a bad address. */
struct redis_link *
redis_link_new(struct event_base *base, const struct config *config,
    const struct redis_link_options *options,
    const struct redis_link_callbacks *callbacks, char *err, size_t errlen)
{
	struct redis_link *link;
	char host[256], port[16], *end;
	long number;

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

	link = xcalloc(1, sizeof *link);
	link->base = base;
	link->callbacks = *callbacks;
	link->name = options->name;
	link->select_db = options->select_db;
	link->address = xstrdup(config->redis_address);
	link->host = xstrdup(host);
	link->port = (int)number;
	if (config->redis_username != NULL && *config->redis_username != '\0')
		link->username = xstrdup(config->redis_username);
	if (config->redis_password_file != NULL && *config->redis_password_file != '\0') {
		/* Checked once here: the file is read again on every reconnection. */
		secret_file_check_mode(-1, "Redis password_file", config->redis_password_file);
		link->password_file = xstrdup(config->redis_password_file);
	}
	link->db = config->redis_db;
	link->connect_timeout_ms = config->redis_connect_timeout_ms > 0 ?
	    config->redis_connect_timeout_ms : 5000;
	link->reconnect_max_ms = config->redis_reconnect_max_ms > 0 ?
	    config->redis_reconnect_max_ms : 30000;
	link->count = options->count;
	for (size_t i = 0; i < link->count; i++) {
		link->conns[i].link = link;
		link->conns[i].role = options->roles[i];
	}
	link->state = LINK_STOPPED;
	if ((link->timer = event_new(base, -1, 0, link_timer_fired, link)) == NULL)
		fatalx("event_new: out of memory");
	return link;
}

/* Make the first attempt. */
void
redis_link_start(struct redis_link *link)
{
	link_connect(link);
}

/* Connection i's context while it is up, else NULL. */
redisAsyncContext *
redis_link_context(const struct redis_link *link, size_t i)
{
	return i < link->count ? link->conns[i].ac : NULL;
}

/* Is every connection set up? */
int
redis_link_ready(const struct redis_link *link)
{
	return link->state == LINK_READY;
}

/* Established and not failed since. */
int
redis_link_is_established(const struct redis_link *link)
{
	return link->established;
}

/* The times the link was established again. */
uint64_t
redis_link_reconnects(const struct redis_link *link)
{
	return link->reconnects;
}

/* [redis] connect_timeout. */
int64_t
redis_link_connect_timeout_ms(const struct redis_link *link)
{
	return link->connect_timeout_ms;
}

/* Drop the connections for good: no reconnect. */
void
redis_link_stop(struct redis_link *link)
{
	link_teardown(link);
	link->state = LINK_STOPPED;
	link->established = 0;
	evtimer_del(link->timer);
}

/* Stop and free the link. */
void
redis_link_free(struct redis_link *link)
{
	if (link == NULL)
		return;
	redis_link_stop(link);
	event_free(link->timer);
	free(link->address);
	free(link->host);
	free(link->username);
	free(link->password_file);
	free(link);
}
