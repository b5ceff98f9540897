/*
 * A pool of HTTP/2 connections to one endpoint (host, port, TLS name, authority):
 * what providers send every notification through.
 *
 * h2_pool_submit() starts a request on a connection with a free stream, or puts it
 * at the end of a bounded FIFO queue; H2_EQUEUEFULL tells the caller to back off.
 * Connections are opened lazily, when queued requests find every stream busy, up to
 * max_connections (connections that received GOAWAY do not count: they finish their
 * streams and close): one connect at a time, or one per connection's worth of waiting
 * requests (max_streams_per_connection) at once when more wait. Requests fill the
 * first connections first, so after a burst the last ones opened fall idle: every
 * connection but one that had no stream for idle_close_ms is closed (GOAWAY). The
 * server's SETTINGS_MAX_CONCURRENT_STREAMS is honoured exactly, also when it changes.
 *
 * Every accepted request completes exactly once, on the pool's event base:
 *  - with the HTTP answer (response->error 0, response->status);
 *  - with H2_ETIMEDOUT at its own deadline (queueing counts), after which its
 *    stream is reset with CANCEL. A request that never got a connection because
 *    connecting kept failing completes at its deadline with the last connect error
 *    instead (H2_ECONNECT, H2_ETLS with the verification reason, H2_EPROXY,
 *    H2_EPROTO), so a bad CA or hostname shows as such;
 *  - with H2_ECONNLOST when the connection died after the request was sent. The
 *    server may have delivered it: a push is not idempotent (the user could see it
 *    twice), so the pool does not resend; the caller decides;
 *  - with H2_ESTREAMRESET when the server reset the stream (response->http2_error);
 *  - with H2_ECANCELLED when the pool is freed first.
 * Requests the server did not process (REFUSED_STREAM, streams above a GOAWAY's
 * last_stream_id, requests never sent when a connection died) are resent
 * transparently, at the head of the queue, up to max_resubmits times (then
 * H2_EREFUSED); they do not count as failures.
 *
 * Deadlines live in one list per pool sorted by deadline, under a single timer
 * armed for the earliest: most requests share a timeout, so insertion from the tail
 * is O(1), and completing a request only unlinks it (the timer is not re-armed
 * until it fires). This costs far less per request than one libevent timer each.
 *
 * After a failed connect the pool waits an exponential backoff with full jitter
 * (uniform in [0, min(backoff_max, backoff_base * 2^failures)]) before trying
 * again; queued requests stay queued meanwhile. A connection that is silent for
 * ping_idle_ms gets a PING and is closed if no ACK comes within ping_timeout_ms.
 *
 * Address resolution happens once, in h2_pool_new() (blocking getaddrinfo; use it at
 * start-up), and connects rotate through the addresses found.
 *
 * Completion callbacks may submit requests; they must not call h2_pool_free().
 *
 * Callers: the providers (apns.c, fcm.c), on the event loop that owns the pool.
 */
#ifndef PUSHRELAY_H2_POOL_H
#define PUSHRELAY_H2_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "h2_client.h"

struct event_base;
struct h2_pool;

/* Zero fields take the defaults in brackets. */
struct h2_pool_options {
	const char *host;		/* name or address to connect to */
	unsigned port;			/* [443] */
	const char *server_name;	/* SNI and certificate name [host] */
	const char *authority;		/* :authority [server_name, ":port" unless 443] */
	SSL_CTX *ssl_ctx;		/* from tls_client_ctx_new(); the pool keeps a ref */
	const char *proxy_host;		/* HTTP CONNECT proxy, or NULL */
	unsigned proxy_port;		/* [3128] */
	const char *proxy_authorization; /* Proxy-Authorization of each CONNECT ("Basic
					 * ..."), or NULL; copied, and wiped on free */
	unsigned max_connections;	/* [1] */
	unsigned max_streams_per_connection; /* cap on the server's limit [1000] */
	unsigned queue_limit;		/* requests waiting for a stream [10000] */
	int request_timeout_ms;		/* for requests with timeout_ms 0 [30000] */
	int connect_timeout_ms;		/* TCP, proxy, TLS and first SETTINGS [10000] */
	int ping_idle_ms;		/* [3600000]: APNs wants connections kept for hours */
	int ping_timeout_ms;		/* [10000] */
	int backoff_base_ms;		/* [500] */
	int backoff_max_ms;		/* [60000] */
	unsigned max_resubmits;		/* sends of a not-processed request after the first [3] */
	size_t response_body_limit;	/* [8192] */
	int idle_close_ms;		/* close connections idle that long, but one [300000] */
};

struct h2_pool_stats {
	unsigned connections_open;	/* ready, finishing ones included */
	unsigned connections_connecting;
	unsigned streams_in_flight;
	unsigned queue_depth;
	uint64_t requests_submitted;
	uint64_t requests_completed;
	uint64_t requests_resubmitted;	/* not-processed requests sent again */
	uint64_t connects_succeeded;
	uint64_t connects_failed;
	uint64_t connections_closed_idle;	/* closed after idle_close_ms without a stream */
};

/*
 * Create a pool (no connection is opened yet). Returns 0 and sets *out, or
 * H2_EINVAL / H2_ERESOLVE with a message in err.
 */
int h2_pool_new(struct event_base *base, const struct h2_pool_options *options,
    struct h2_pool **out, char *err, size_t errlen);
/*
 * Start or queue a request: 0 (the callback will be called exactly once),
 * H2_EQUEUEFULL, H2_ESHUTDOWN or H2_EINVAL (it will not be called).
 */
int h2_pool_submit(struct h2_pool *pool, struct h2_request *request);
/*
 * Stop taking requests, finish queued and in-flight ones, send GOAWAY and close
 * every connection, then call done (from the event loop; it may free the pool).
 */
void h2_pool_drain(struct h2_pool *pool, void (*done)(struct h2_pool *, void *),
    void *arg);
/* Complete everything left with H2_ECANCELLED and free the pool. */
void h2_pool_free(struct h2_pool *pool);
void h2_pool_get_stats(const struct h2_pool *pool, struct h2_pool_stats *stats);
/* "host:port" (and " via proxy:port"), for logs. */
const char *h2_pool_endpoint(const struct h2_pool *pool);

#endif
