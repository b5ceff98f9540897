/*
 * One TLS + HTTP/2 client connection (h2_client) and the request and response types
 * shared with the pool (h2_pool.h), which is what the rest of the daemon uses.
 *
 * A connection goes TCP connect -> optional HTTP CONNECT through a proxy -> TLS
 * handshake with ALPN h2 -> HTTP/2 preface -> the server's first SETTINGS. Only
 * then is it ready: the server's SETTINGS_MAX_CONCURRENT_STREAMS is known (APNs
 * starts at 1 with token authentication), so no stream is ever opened beyond it
 * and nghttp2's internal queueing is never used. The limit is followed when the
 * server changes it later.
 *
 * Requests on a connection are "exchanges" (struct h2_exchange) owned by the pool.
 * The connection hands each one back exactly once through events->done:
 *	0		the server answered (response.status is set);
 *	H2_EREFUSED	not processed by the server (REFUSED_STREAM, above a GOAWAY's
 *			last_stream_id, or never sent): safe to send again;
 *	H2_ESTREAMRESET	the server reset the stream (response.http2_error);
 *	H2_ECONNLOST	the connection died after the request was sent: the server
 *			may or may not have acted on it;
 *	H2_ECANCELLED	the exchange had already been completed by the pool (timeout)
 *			or the connection was freed.
 * All callbacks run on the connection's event base, never re-entering nghttp2 in a
 * way it forbids; closing is always deferred to a callback of the connection's own.
 *
 * Used by h2_pool.c only, on the event loop of the pool's event base.
 */
#ifndef PUSHRELAY_H2_CLIENT_H
#define PUSHRELAY_H2_CLIENT_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

struct event_base;

enum h2_error {
	H2_OK = 0,
	H2_EINVAL = -1,		/* bad request or options */
	H2_EQUEUEFULL = -2,	/* the pool's wait queue is full: back off */
	H2_ESHUTDOWN = -3,	/* the pool is draining or being freed */
	H2_ERESOLVE = -4,	/* the host or the proxy could not be resolved */
	H2_ECONNECT = -5,	/* TCP connect failed or timed out */
	H2_ETLS = -6,		/* TLS handshake or certificate verification failed */
	H2_EPROXY = -7,		/* the proxy refused or botched the CONNECT */
	H2_EPROTO = -8,		/* no h2 via ALPN, or an HTTP/2 protocol error */
	H2_ETIMEDOUT = -9,	/* the request's own timeout expired */
	H2_ECONNLOST = -10,	/* connection lost after the request was sent */
	H2_ESTREAMRESET = -11,	/* the server reset the stream */
	H2_EREFUSED = -12,	/* not processed, and resubmitted too often */
	H2_ECANCELLED = -13,	/* the pool was freed before an answer */
};

/* Response headers kept per request (name and value bytes, NUL included). */
#define H2_RESPONSE_HEADERS_MAX 12
#define H2_RESPONSE_HEADER_BYTES 512

/*
 * What a completion callback gets. Valid only during the callback. Either error is
 * 0 and status is the HTTP status, or error is an H2_E* code and reason says more
 * (the certificate verification failure, the errno text, the proxy's status line);
 * status is then 0, or the status of an answer that was cut off.
 */
struct h2_response {
	int error;
	int status;			/* :status, 0 when there was no HTTP answer */
	uint32_t http2_error;		/* RST_STREAM code with H2_ESTREAMRESET */
	const char *reason;		/* detail for errors, NULL otherwise */
	const uint8_t *body;		/* at most the pool's response_body_limit bytes */
	size_t body_len;
	int body_truncated;		/* the server sent more than was kept */

	/* Private: read headers with h2_response_header(). */
	unsigned nheaders;
	size_t header_used;
	uint16_t header_at[H2_RESPONSE_HEADERS_MAX][2];
	char header_bytes[H2_RESPONSE_HEADER_BYTES];
};

/*
 * One request. The caller owns this struct, the strings, the headers array and the
 * body until the completion callback, which is called exactly once for every
 * request h2_pool_submit() accepted (and never for one it refused).
 * Extra header names must be lowercase; pseudo-headers are added by the pool.
 * The pool asks nghttp2 to send :path as never-indexed (APNs: device tokens);
 * set NGHTTP2_NV_FLAG_NO_INDEX on other headers that should not be indexed.
 */
struct h2_request {
	const char *method;		/* "POST" */
	const char *path;		/* "/3/device/<token>" */
	const char *authority;		/* NULL: the pool's */
	const nghttp2_nv *headers;	/* extra headers, or NULL */
	size_t nheaders;
	const uint8_t *body;		/* sent by reference, never copied ahead */
	size_t body_len;
	int timeout_ms;			/* from submission, queueing included; 0: default */
	void (*done)(struct h2_request *request, const struct h2_response *response,
	    void *arg);
	void *arg;
};

/* Private to h2_client.c and h2_pool.c: one request in the pool's hands. */
struct h2_exchange {
	TAILQ_ENTRY(h2_exchange) entry;		/* queue, a connection's streams, free list */
	TAILQ_ENTRY(h2_exchange) deadline_entry;
	struct h2_request *request;	/* NULL once completed while a stream remains */
	struct h2_client *client;	/* connection carrying it, or NULL */
	int32_t stream_id;
	unsigned resubmits;
	int on_deadline_list;
	uint64_t deadline_ms;
	size_t body_sent;
	uint8_t *body_buf;		/* response body, kept across reuse */
	size_t body_cap;
	size_t body_limit;
	struct h2_response response;
};
TAILQ_HEAD(h2_exchange_list, h2_exchange);

struct h2_client;

struct h2_client_events {
	/* Ready, or streams may have been freed or the limit raised: submit more. */
	void (*writable)(struct h2_client *client, void *arg);
	/* The first SETTINGS arrived: the connection is usable. */
	void (*ready)(struct h2_client *client, void *arg);
	/* An exchange is handed back (see the codes above). */
	void (*done)(struct h2_client *client, struct h2_exchange *exchange, int error,
	    void *arg);
	/* The connection is gone, every exchange handed back: free it now. */
	void (*closed)(struct h2_client *client, int error, const char *reason, void *arg);
};

struct h2_client_options {
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	const struct sockaddr *addr;	/* the server, or the proxy with proxy_target */
	socklen_t addrlen;
	const char *server_name;	/* SNI and the certificate name to check */
	const char *proxy_target;	/* "host:port" to CONNECT to, or NULL */
	const char *proxy_authorization; /* Proxy-Authorization of the CONNECT, or NULL */
	const char *endpoint;		/* for logs */
	int connect_timeout_ms;		/* TCP + proxy + TLS + first SETTINGS */
	int ping_idle_ms;		/* PING after this long without reading */
	int ping_timeout_ms;		/* close when the PING ACK is this late */
	uint32_t max_streams;		/* local cap on the server's limit */
	const struct h2_client_events *events;
	void *arg;
};

/* Start connecting; failures are reported later through events->closed. */
struct h2_client *h2_client_new(const struct h2_client_options *options);
/* Hand back every remaining exchange with H2_ECANCELLED and free, without events. */
void h2_client_free(struct h2_client *client);

/* Streams that may be opened now: 0 unless ready and under the server's limit. */
unsigned h2_client_free_slots(const struct h2_client *client);
/* Will it take streams (connecting or ready, not going away)? */
int h2_client_is_accepting(const struct h2_client *client);
int h2_client_is_ready(const struct h2_client *client);
int h2_client_was_ready(const struct h2_client *client);
unsigned h2_client_streams(const struct h2_client *client);
/* h2_now_ms() when the last stream ended (or it became ready); 0 while streams are open. */
uint64_t h2_client_idle_since(const struct h2_client *client);
uint64_t h2_client_responses(const struct h2_client *client);
uint32_t h2_client_max_streams(const struct h2_client *client);

/*
 * Open a stream for exchange with the given header block (copied by nghttp2) and
 * its request body. Needs a free slot. Returns 0, or H2_EREFUSED when the
 * connection can take no more streams (the exchange is untouched).
 */
int h2_client_submit(struct h2_client *client, struct h2_exchange *exchange,
    const nghttp2_nv *nva, size_t nvlen);
/* Reset the stream of an exchange the pool has completed (RST_STREAM CANCEL). */
void h2_client_cancel(struct h2_client *client, struct h2_exchange *exchange);
/* Take no more streams; send GOAWAY and close once the last stream is done. */
void h2_client_shutdown(struct h2_client *client);

/*
 * Keep one response header in the response's small arena; one that does not fit is
 * dropped. The client calls it for each header it receives; any thread may call it on
 * a response it owns.
 */
void h2_response_add_header(struct h2_response *response, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen);
/* Look up a response header by lowercase name; NULL when absent. */
const char *h2_response_header(const struct h2_response *response, const char *name);
/* Monotonic milliseconds, the clock of every h2 deadline. */
uint64_t h2_now_ms(void);
const char *h2_strerror(int error);

#endif
