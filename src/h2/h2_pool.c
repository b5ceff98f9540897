/* A pool of HTTP/2 connections to one endpoint: see h2_pool.h. */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <openssl/crypto.h>

#include "h2_pool.h"
#include "log.h"
#include "xmalloc.h"

#define H2_POOL_ADDRS_MAX 8

enum h2_pool_state {
	H2_POOL_RUNNING = 0,
	H2_POOL_DRAINING,
	H2_POOL_FREEING,
};

struct h2_pool {
	struct event_base *base;
	enum h2_pool_state state;
	struct h2_pool_options opt;	/* strings below, defaults applied */
	char *host;
	char *server_name;
	char *authority;
	size_t authority_len;
	char *proxy_target;		/* "host:port" for CONNECT */
	char *proxy_authorization;	/* its Proxy-Authorization, or NULL: a secret */
	char *endpoint;
	SSL_CTX *ssl_ctx;

	struct sockaddr_storage addrs[H2_POOL_ADDRS_MAX];
	socklen_t addrlens[H2_POOL_ADDRS_MAX];
	unsigned naddrs;
	unsigned next_addr;

	struct h2_client **clients;
	unsigned nclients;
	unsigned clients_cap;

	struct h2_exchange_list queue;
	unsigned queued;
	struct h2_exchange *requeue_tail;	/* last resent one at the queue's head */
	struct h2_exchange_list free_list;
	struct h2_exchange_list deadlines;
	struct event *deadline_ev;
	uint64_t deadline_armed_ms;	/* when deadline_ev fires, 0: not armed */

	struct event *dispatch_ev;
	int dispatch_pending;
	struct event *backoff_ev;
	int backoff_pending;
	struct event *idle_ev;		/* closes connections idle for idle_close_ms */
	unsigned connect_failures;
	int last_error;			/* last failed connect, 0 once one succeeds */
	char last_reason[192];

	nghttp2_nv *nva;
	size_t nva_cap;

	void (*drain_cb)(struct h2_pool *, void *);
	void *drain_arg;
	struct event *drain_ev;
	int drain_notified;
	int callback_depth;

	struct h2_pool_stats stats;
};

static const struct h2_client_events pool_client_events;

/* Wipe and free a secret string (NULL is fine). */
static void
pool_secret_free(char *secret)
{
	if (secret != NULL)
		OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
}

static void pool_dispatch(struct h2_pool *);

/* Schedule a dispatch for the next loop iteration. */
static void
pool_schedule_dispatch(struct h2_pool *pool)
{
	if (pool->dispatch_pending || pool->state == H2_POOL_FREEING)
		return;
	pool->dispatch_pending = 1;
	event_active(pool->dispatch_ev, EV_TIMEOUT, 0);
}

/* A free-listed exchange for a new request. */
static struct h2_exchange *
pool_exchange_get(struct h2_pool *pool, struct h2_request *request)
{
	struct h2_exchange *ex;

	if ((ex = TAILQ_FIRST(&pool->free_list)) != NULL)
		TAILQ_REMOVE(&pool->free_list, ex, entry);
	else {
		ex = xcalloc(1, sizeof *ex);
		ex->body_limit = pool->opt.response_body_limit;
	}
	ex->request = request;
	ex->client = NULL;
	ex->stream_id = 0;
	ex->resubmits = 0;
	ex->on_deadline_list = 0;
	return ex;
}

/* Return an exchange to the free list (its body buffer is kept). */
static void
pool_exchange_put(struct h2_pool *pool, struct h2_exchange *ex)
{
	ex->request = NULL;
	TAILQ_INSERT_HEAD(&pool->free_list, ex, entry);
}

/* Take an exchange off the wait queue. */
static void
pool_queue_remove(struct h2_pool *pool, struct h2_exchange *ex)
{
	if (ex == pool->requeue_tail)
		pool->requeue_tail = TAILQ_PREV(ex, h2_exchange_list, entry);
	TAILQ_REMOVE(&pool->queue, ex, entry);
	pool->queued--;
}

/*
 * Put a not-processed exchange back ahead of the never-sent ones, after those
 * resent before it, so a refused batch keeps its order.
 */
static void
pool_queue_requeue(struct h2_pool *pool, struct h2_exchange *ex)
{
	if (pool->requeue_tail != NULL)
		TAILQ_INSERT_AFTER(&pool->queue, pool->requeue_tail, ex, entry);
	else
		TAILQ_INSERT_HEAD(&pool->queue, ex, entry);
	pool->requeue_tail = ex;
	pool->queued++;
}

/* Forget any previous answer before (re)sending. */
static void
response_reset(struct h2_response *r)
{
	r->error = 0;
	r->status = 0;
	r->http2_error = 0;
	r->reason = NULL;
	r->body = NULL;
	r->body_len = 0;
	r->body_truncated = 0;
	r->nheaders = 0;
	r->header_used = 0;
}

/* Arm a timer in milliseconds. */
static void
timer_add_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

/* Make sure the deadline timer fires no later than the earliest deadline. */
static void
pool_deadline_arm(struct h2_pool *pool, uint64_t now)
{
	struct h2_exchange *head = TAILQ_FIRST(&pool->deadlines);

	if (head == NULL)
		return;
	if (pool->deadline_armed_ms != 0 && pool->deadline_armed_ms <= head->deadline_ms)
		return;
	pool->deadline_armed_ms = head->deadline_ms;
	timer_add_ms(pool->deadline_ev, head->deadline_ms > now ? head->deadline_ms - now : 0);
}

/* Insert into the sorted deadline list, from the tail: O(1) for equal timeouts. */
static void
pool_deadline_insert(struct h2_pool *pool, struct h2_exchange *ex, uint64_t now)
{
	struct h2_exchange *at;

	TAILQ_FOREACH_REVERSE(at, &pool->deadlines, h2_exchange_list, deadline_entry) {
		if (at->deadline_ms <= ex->deadline_ms)
			break;
	}
	if (at != NULL)
		TAILQ_INSERT_AFTER(&pool->deadlines, at, ex, deadline_entry);
	else {
		TAILQ_INSERT_HEAD(&pool->deadlines, ex, deadline_entry);
		pool_deadline_arm(pool, now);
	}
	ex->on_deadline_list = 1;
}

/* Unlink from the deadline list; the timer is left to fire and re-arm. */
static void
pool_deadline_remove(struct h2_pool *pool, struct h2_exchange *ex)
{
	if (!ex->on_deadline_list)
		return;
	TAILQ_REMOVE(&pool->deadlines, ex, deadline_entry);
	ex->on_deadline_list = 0;
}

/* Complete a request: the one place a completion callback is called. */
static void
pool_complete(struct h2_pool *pool, struct h2_exchange *ex, int error, const char *reason)
{
	struct h2_request *request = ex->request;

	pool_deadline_remove(pool, ex);
	ex->request = NULL;
	ex->response.error = error;
	if (reason != NULL)
		ex->response.reason = reason;
	ex->response.body = ex->response.body_len > 0 ? ex->body_buf : NULL;
	pool->stats.requests_completed++;
	pool->callback_depth++;
	request->done(request, &ex->response, request->arg);
	pool->callback_depth--;
}

/* Build the header block and open a stream on client. */
static int
pool_send(struct h2_pool *pool, struct h2_client *client, struct h2_exchange *ex)
{
	const struct h2_request *r = ex->request;
	nghttp2_nv *nv;
	size_t n = 4 + r->nheaders;

	if (n > pool->nva_cap) {
		pool->nva = xreallocarray(pool->nva, n, sizeof *pool->nva);
		pool->nva_cap = n;
	}
	nv = pool->nva;
	nv[0].name = (uint8_t *)":method";
	nv[0].namelen = 7;
	nv[0].value = (uint8_t *)r->method;
	nv[0].valuelen = strlen(r->method);
	nv[0].flags = NGHTTP2_NV_FLAG_NONE;
	nv[1].name = (uint8_t *)":scheme";
	nv[1].namelen = 7;
	nv[1].value = (uint8_t *)"https";
	nv[1].valuelen = 5;
	nv[1].flags = NGHTTP2_NV_FLAG_NONE;
	nv[2].name = (uint8_t *)":authority";
	nv[2].namelen = 10;
	if (r->authority != NULL) {
		nv[2].value = (uint8_t *)r->authority;
		nv[2].valuelen = strlen(r->authority);
	} else {
		nv[2].value = (uint8_t *)pool->authority;
		nv[2].valuelen = pool->authority_len;
	}
	nv[2].flags = NGHTTP2_NV_FLAG_NONE;
	nv[3].name = (uint8_t *)":path";
	nv[3].namelen = 5;
	nv[3].value = (uint8_t *)r->path;
	nv[3].valuelen = strlen(r->path);
	/* Paths carry device tokens: never fill the HPACK table with them. */
	nv[3].flags = NGHTTP2_NV_FLAG_NO_INDEX;
	if (r->nheaders > 0)
		memcpy(nv + 4, r->headers, r->nheaders * sizeof *nv);
	return h2_client_submit(client, ex, nv, n);
}

/* A connection with a free stream, first fit: load spreads only when it must. */
static struct h2_client *
pool_pick_client(struct h2_pool *pool)
{
	unsigned i;

	for (i = 0; i < pool->nclients; i++) {
		if (h2_client_free_slots(pool->clients[i]) > 0)
			return pool->clients[i];
	}
	return NULL;
}

/* Open one more connection. */
static void
pool_connect(struct h2_pool *pool)
{
	struct h2_client_options co;
	unsigned i = pool->next_addr % pool->naddrs;

	memset(&co, 0, sizeof co);
	co.base = pool->base;
	co.ssl_ctx = pool->ssl_ctx;
	co.addr = (const struct sockaddr *)&pool->addrs[i];
	co.addrlen = pool->addrlens[i];
	co.server_name = pool->server_name;
	co.proxy_target = pool->proxy_target;
	co.proxy_authorization = pool->proxy_authorization;
	co.endpoint = pool->endpoint;
	co.connect_timeout_ms = pool->opt.connect_timeout_ms;
	co.ping_idle_ms = pool->opt.ping_idle_ms;
	co.ping_timeout_ms = pool->opt.ping_timeout_ms;
	co.max_streams = pool->opt.max_streams_per_connection;
	co.events = &pool_client_events;
	co.arg = pool;
	if (pool->nclients == pool->clients_cap) {
		pool->clients_cap = pool->clients_cap ? pool->clients_cap * 2 : 4;
		pool->clients = xreallocarray(pool->clients, pool->clients_cap,
		    sizeof *pool->clients);
	}
	pool->clients[pool->nclients++] = h2_client_new(&co);
	log_debug("h2 connecting", "endpoint", pool->endpoint, NULL);
}

/*
 * Open connections while requests wait for a stream: one connect at a time, or one
 * for each connection's worth of waiting requests (max_streams_per_connection) when
 * more wait, so that a burst reaches the cap in one round trip, not one per
 * connection. Never more than max_connections.
 */
static void
pool_maybe_connect(struct h2_pool *pool)
{
	unsigned i, accepting = 0, connecting = 0, want;

	if (pool->queued == 0 || pool->backoff_pending || pool->state == H2_POOL_FREEING)
		return;
	for (i = 0; i < pool->nclients; i++) {
		if (!h2_client_is_accepting(pool->clients[i]))
			continue;
		accepting++;
		if (!h2_client_is_ready(pool->clients[i]))
			connecting++;
	}
	want = 1 + (pool->queued - 1) / pool->opt.max_streams_per_connection;
	for (; connecting < want && accepting < pool->opt.max_connections; connecting++) {
		pool_connect(pool);
		accepting++;
	}
}

/*
 * Close the connections that had no stream for idle_close_ms, all but one: what a
 * burst opened goes once it is over, and the next request still finds a connection.
 * The last ones opened go first (requests fill the first connections first).
 */
static void
pool_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_pool *pool = arg;
	uint64_t now = h2_now_ms(), since;
	unsigned i, open = 0;
	char idle_ms[24];

	for (i = 0; i < pool->nclients; i++) {
		if (h2_client_is_accepting(pool->clients[i]) && h2_client_is_ready(pool->clients[i]))
			open++;
	}
	for (i = pool->nclients; i-- > 0 && open > 1;) {
		struct h2_client *client = pool->clients[i];

		if (!h2_client_is_accepting(client) || !h2_client_is_ready(client))
			continue;
		since = h2_client_idle_since(client);
		if (since == 0 || now - since < (uint64_t)pool->opt.idle_close_ms)
			continue;
		snprintf(idle_ms, sizeof idle_ms, "%llu", (unsigned long long)(now - since));
		log_info("h2 connection idle: closing", "endpoint", pool->endpoint, "idle_ms",
		    idle_ms, NULL);
		pool->stats.connections_closed_idle++;
		h2_client_shutdown(client);
		open--;
	}
}

/* Draining: close idle connections, and report once everything is closed. */
static void
pool_check_drained(struct h2_pool *pool)
{
	unsigned i;

	if (pool->state != H2_POOL_DRAINING || pool->queued > 0)
		return;
	for (i = 0; i < pool->nclients; i++) {
		if (h2_client_streams(pool->clients[i]) == 0)
			h2_client_shutdown(pool->clients[i]);
	}
	if (pool->nclients == 0 && !pool->drain_notified) {
		pool->drain_notified = 1;
		event_active(pool->drain_ev, EV_TIMEOUT, 0);
	}
}

/* Move queued requests onto free streams, open connections, follow a drain. */
static void
pool_dispatch(struct h2_pool *pool)
{
	struct h2_client *client;
	struct h2_exchange *ex;
	unsigned slots;

	while (pool->queued > 0 && (client = pool_pick_client(pool)) != NULL) {
		slots = h2_client_free_slots(client);
		while (slots-- > 0 && (ex = TAILQ_FIRST(&pool->queue)) != NULL) {
			pool_queue_remove(pool, ex);
			if (pool_send(pool, client, ex) != 0) {
				TAILQ_INSERT_HEAD(&pool->queue, ex, entry);
				pool->queued++;
				break;
			}
		}
	}
	pool_maybe_connect(pool);
	pool_check_drained(pool);
}

/* Deferred dispatch. */
static void
pool_dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_pool *pool = arg;

	pool->dispatch_pending = 0;
	pool_dispatch(pool);
}

/* Expire requests whose deadline has passed. */
static void
pool_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_pool *pool = arg;
	struct h2_exchange *ex;
	uint64_t now = h2_now_ms();
	int error;
	const char *reason;

	pool->deadline_armed_ms = 0;
	while ((ex = TAILQ_FIRST(&pool->deadlines)) != NULL && ex->deadline_ms <= now) {
		if (ex->client == NULL) {
			/* Still queued: say why it never got a connection, if we know. */
			pool_queue_remove(pool, ex);
			error = pool->last_error != 0 ? pool->last_error : H2_ETIMEDOUT;
			reason = pool->last_error != 0 ? pool->last_reason : NULL;
			pool_complete(pool, ex, error, reason);
			pool_exchange_put(pool, ex);
		} else {
			/* In flight: the stream stays until nghttp2 closes it. */
			h2_client_cancel(ex->client, ex);
			pool_complete(pool, ex, H2_ETIMEDOUT, NULL);
		}
	}
	pool_deadline_arm(pool, now);
	pool_check_drained(pool);
}

/* Backoff over: try connecting again if requests are waiting. */
static void
pool_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_pool *pool = arg;

	pool->backoff_pending = 0;
	pool_dispatch(pool);
}

/* Tell the drain caller, from the loop so it may free the pool. */
static void
pool_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_pool *pool = arg;

	if (pool->drain_cb != NULL)
		pool->drain_cb(pool, pool->drain_arg);
}

/* Client event: streams freed or limit raised. */
static void
pool_on_writable(struct h2_client *client, void *arg)
{
	pool_dispatch(arg);
}

/* Client event: connected and SETTINGS received. */
static void
pool_on_ready(struct h2_client *client, void *arg)
{
	struct h2_pool *pool = arg;
	char streams[16];

	pool->stats.connects_succeeded++;
	pool->last_error = 0;
	pool->last_reason[0] = '\0';
	snprintf(streams, sizeof streams, "%u", h2_client_max_streams(client));
	log_info("h2 connection ready", "endpoint", pool->endpoint, "max_streams", streams,
	    NULL);
}

/* Client event: an exchange comes back; complete it or send it again. */
static void
pool_on_done(struct h2_client *client, struct h2_exchange *ex, int error, void *arg)
{
	struct h2_pool *pool = arg;

	if (ex->request == NULL) {
		pool_exchange_put(pool, ex);	/* completed earlier (timeout) */
		return;
	}
	if (error == H2_EREFUSED && ex->resubmits < pool->opt.max_resubmits &&
	    pool->state != H2_POOL_FREEING) {
		ex->resubmits++;
		pool->stats.requests_resubmitted++;
		response_reset(&ex->response);
		pool_queue_requeue(pool, ex);
		pool_schedule_dispatch(pool);
		return;
	}
	if (error == 0)
		pool->connect_failures = 0;
	pool_complete(pool, ex, error, NULL);
	pool_exchange_put(pool, ex);
}

/* Client event: a connection is gone; free it, back off if it never worked. */
static void
pool_on_closed(struct h2_client *client, int error, const char *reason, void *arg)
{
	struct h2_pool *pool = arg;
	char delay_text[16];
	uint64_t delay, cap;
	unsigned i, shift;
	int was_ready = h2_client_was_ready(client);
	uint64_t responses = h2_client_responses(client);

	for (i = 0; i < pool->nclients; i++) {
		if (pool->clients[i] == client) {
			pool->clients[i] = pool->clients[--pool->nclients];
			break;
		}
	}
	if (pool->state == H2_POOL_FREEING) {
		h2_client_free(client);
		return;
	}

	if (error != 0 && (!was_ready || responses == 0)) {
		/* Never worked: back off before the next try. */
		if (!was_ready) {
			pool->stats.connects_failed++;
			pool->last_error = error;
			snprintf(pool->last_reason, sizeof pool->last_reason, "%s", reason);
			pool->next_addr++;
		}
		pool->connect_failures++;
		shift = pool->connect_failures - 1 < 20 ? pool->connect_failures - 1 : 20;
		cap = (uint64_t)pool->opt.backoff_base_ms << shift;
		if (cap > (uint64_t)pool->opt.backoff_max_ms)
			cap = (uint64_t)pool->opt.backoff_max_ms;
		delay = arc4random_uniform((uint32_t)cap + 1);
		snprintf(delay_text, sizeof delay_text, "%llu", (unsigned long long)delay);
		log_warn(was_ready ? "h2 connection failed before any response" :
		    "h2 connect failed", "endpoint", pool->endpoint, "error",
		    h2_strerror(error), "reason", reason, "retry_in_ms", delay_text, NULL);
		pool->backoff_pending = 1;
		timer_add_ms(pool->backoff_ev, delay);
	} else if (error != 0)
		log_warn("h2 connection lost", "endpoint", pool->endpoint, "error",
		    h2_strerror(error), "reason", reason, NULL);
	else
		log_info("h2 connection closed", "endpoint", pool->endpoint, "reason", reason,
		    NULL);
	h2_client_free(client);	/* reason lives in it */
	pool_schedule_dispatch(pool);
}

static const struct h2_client_events pool_client_events = {
	.writable = pool_on_writable,
	.ready = pool_on_ready,
	.done = pool_on_done,
	.closed = pool_on_closed,
};

/* "host:port", bracketing IPv6 literals. */
static char *
pool_host_port(const char *host, unsigned port)
{
	if (strchr(host, ':') != NULL)
		return xasprintf("[%s]:%u", host, port);
	return xasprintf("%s:%u", host, port);
}

/* Resolve host once; keep up to H2_POOL_ADDRS_MAX addresses. */
static int
pool_resolve(struct h2_pool *pool, const char *host, unsigned port, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char service[8];
	int rv;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof service, "%u", port);
	if ((rv = getaddrinfo(host, service, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rv));
		return H2_ERESOLVE;
	}
	for (ai = res; ai != NULL && pool->naddrs < H2_POOL_ADDRS_MAX; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof pool->addrs[0])
			continue;
		memcpy(&pool->addrs[pool->naddrs], ai->ai_addr, ai->ai_addrlen);
		pool->addrlens[pool->naddrs++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (pool->naddrs == 0) {
		snprintf(err, errlen, "cannot resolve %s: no usable address", host);
		return H2_ERESOLVE;
	}
	return 0;
}

/* Create a pool: see h2_pool.h. */
int
h2_pool_new(struct event_base *base, const struct h2_pool_options *options,
    struct h2_pool **out, char *err, size_t errlen)
{
	struct h2_pool *pool;
	struct h2_pool_options *o;
	int rv;

	*out = NULL;
	if (options->host == NULL || *options->host == '\0' || options->ssl_ctx == NULL) {
		snprintf(err, errlen, "h2 pool needs a host and a TLS context");
		return H2_EINVAL;
	}
	pool = xcalloc(1, sizeof *pool);
	pool->base = base;
	pool->opt = *options;
	o = &pool->opt;
	if (o->port == 0)
		o->port = 443;
	if (o->proxy_port == 0)
		o->proxy_port = 3128;
	if (o->max_connections == 0)
		o->max_connections = 1;
	if (o->max_streams_per_connection == 0)
		o->max_streams_per_connection = 1000;
	if (o->queue_limit == 0)
		o->queue_limit = 10000;
	if (o->request_timeout_ms <= 0)
		o->request_timeout_ms = 30000;
	if (o->connect_timeout_ms <= 0)
		o->connect_timeout_ms = 10000;
	if (o->ping_idle_ms <= 0)
		o->ping_idle_ms = 3600 * 1000;
	if (o->ping_timeout_ms <= 0)
		o->ping_timeout_ms = 10000;
	if (o->backoff_base_ms <= 0)
		o->backoff_base_ms = 500;
	if (o->backoff_max_ms <= 0)
		o->backoff_max_ms = 60000;
	if (o->backoff_max_ms < o->backoff_base_ms)
		o->backoff_max_ms = o->backoff_base_ms;
	if (o->max_resubmits == 0)
		o->max_resubmits = 3;
	if (o->response_body_limit == 0)
		o->response_body_limit = 8192;
	if (o->idle_close_ms <= 0)
		o->idle_close_ms = 300000;

	pool->host = xstrdup(o->host);
	pool->server_name = xstrdup(o->server_name != NULL ? o->server_name : o->host);
	if (o->authority != NULL)
		pool->authority = xstrdup(o->authority);
	else if (o->port == 443)
		pool->authority = xstrdup(pool->server_name);
	else
		pool->authority = pool_host_port(pool->server_name, o->port);
	pool->authority_len = strlen(pool->authority);
	if (o->proxy_host != NULL) {
		char *target = pool_host_port(o->host, o->port);
		char *proxy = pool_host_port(o->proxy_host, o->proxy_port);

		pool->proxy_target = target;
		if (o->proxy_authorization != NULL)
			pool->proxy_authorization = xstrdup(o->proxy_authorization);
		pool->endpoint = xasprintf("%s via %s", target, proxy);
		free(proxy);
	} else
		pool->endpoint = pool_host_port(o->host, o->port);
	o->host = pool->host;
	o->server_name = pool->server_name;
	o->authority = pool->authority;
	o->proxy_host = NULL;	/* not kept: only its addresses are */
	o->proxy_authorization = NULL;	/* kept as pool->proxy_authorization */

	if (options->proxy_host != NULL)
		rv = pool_resolve(pool, options->proxy_host, o->proxy_port, err, errlen);
	else
		rv = pool_resolve(pool, o->host, o->port, err, errlen);
	if (rv != 0) {
		free(pool->host);
		free(pool->server_name);
		free(pool->authority);
		free(pool->proxy_target);
		pool_secret_free(pool->proxy_authorization);
		free(pool->endpoint);
		free(pool);
		return rv;
	}

	SSL_CTX_up_ref(o->ssl_ctx);
	pool->ssl_ctx = o->ssl_ctx;
	TAILQ_INIT(&pool->queue);
	TAILQ_INIT(&pool->free_list);
	TAILQ_INIT(&pool->deadlines);
	if ((pool->deadline_ev = evtimer_new(base, pool_deadline_cb, pool)) == NULL ||
	    (pool->dispatch_ev = event_new(base, -1, 0, pool_dispatch_cb, pool)) == NULL ||
	    (pool->backoff_ev = evtimer_new(base, pool_backoff_cb, pool)) == NULL ||
	    (pool->drain_ev = event_new(base, -1, 0, pool_drain_cb, pool)) == NULL ||
	    (pool->idle_ev = event_new(base, -1, EV_PERSIST, pool_idle_cb, pool)) == NULL)
		fatalx("event_new: out of memory");
	/* Checked four times per idle period: a connection goes within 1.25 of it. */
	timer_add_ms(pool->idle_ev, (uint64_t)(o->idle_close_ms / 4 > 0 ? o->idle_close_ms / 4 : 1));
	*out = pool;
	return 0;
}

/* Start or queue a request: see h2_pool.h. */
int
h2_pool_submit(struct h2_pool *pool, struct h2_request *request)
{
	struct h2_client *client;
	struct h2_exchange *ex;
	uint64_t now;
	int timeout;

	if (pool->state != H2_POOL_RUNNING)
		return H2_ESHUTDOWN;
	if (request->method == NULL || request->path == NULL || request->done == NULL ||
	    (request->body == NULL && request->body_len > 0))
		return H2_EINVAL;
	client = pool->queued == 0 ? pool_pick_client(pool) : NULL;
	if (client == NULL && pool->queued >= pool->opt.queue_limit)
		return H2_EQUEUEFULL;

	now = h2_now_ms();
	ex = pool_exchange_get(pool, request);
	response_reset(&ex->response);
	timeout = request->timeout_ms > 0 ? request->timeout_ms : pool->opt.request_timeout_ms;
	ex->deadline_ms = now + (uint64_t)timeout;
	pool_deadline_insert(pool, ex, now);
	pool->stats.requests_submitted++;
	if (client != NULL && pool_send(pool, client, ex) == 0)
		return 0;
	TAILQ_INSERT_TAIL(&pool->queue, ex, entry);
	pool->queued++;
	pool_schedule_dispatch(pool);
	return 0;
}

/* Stop taking requests and close once everything is answered. */
void
h2_pool_drain(struct h2_pool *pool, void (*done)(struct h2_pool *, void *), void *arg)
{
	if (pool->state != H2_POOL_RUNNING)
		return;
	pool->state = H2_POOL_DRAINING;
	pool->drain_cb = done;
	pool->drain_arg = arg;
	log_info("h2 pool draining", "endpoint", pool->endpoint, NULL);
	pool_schedule_dispatch(pool);
}

/* Cancel everything and free the pool. */
void
h2_pool_free(struct h2_pool *pool)
{
	struct h2_exchange *ex;

	if (pool == NULL)
		return;
	if (pool->callback_depth > 0) {
		log_error("h2_pool_free called from a completion callback", "endpoint",
		    pool->endpoint, NULL);
		abort();
	}
	pool->state = H2_POOL_FREEING;
	while ((ex = TAILQ_FIRST(&pool->queue)) != NULL) {
		pool_queue_remove(pool, ex);
		pool_complete(pool, ex, H2_ECANCELLED, NULL);
		pool_exchange_put(pool, ex);
	}
	/* Completed-in-flight exchanges come back through pool_on_done. */
	while (pool->nclients > 0)
		h2_client_free(pool->clients[--pool->nclients]);
	while ((ex = TAILQ_FIRST(&pool->free_list)) != NULL) {
		TAILQ_REMOVE(&pool->free_list, ex, entry);
		free(ex->body_buf);
		free(ex);
	}
	event_free(pool->deadline_ev);
	event_free(pool->dispatch_ev);
	event_free(pool->backoff_ev);
	event_free(pool->drain_ev);
	event_free(pool->idle_ev);
	SSL_CTX_free(pool->ssl_ctx);
	free(pool->clients);
	free(pool->nva);
	free(pool->host);
	free(pool->server_name);
	free(pool->authority);
	free(pool->proxy_target);
	pool_secret_free(pool->proxy_authorization);
	free(pool->endpoint);
	free(pool);
}

/* Numbers for metrics. */
void
h2_pool_get_stats(const struct h2_pool *pool, struct h2_pool_stats *stats)
{
	unsigned i;

	*stats = pool->stats;
	stats->connections_open = 0;
	stats->connections_connecting = 0;
	stats->streams_in_flight = 0;
	for (i = 0; i < pool->nclients; i++) {
		if (h2_client_is_ready(pool->clients[i]))
			stats->connections_open++;
		else
			stats->connections_connecting++;
		stats->streams_in_flight += h2_client_streams(pool->clients[i]);
	}
	stats->queue_depth = pool->queued;
}

/* The endpoint as logged. */
const char *
h2_pool_endpoint(const struct h2_pool *pool)
{
	return pool->endpoint;
}
