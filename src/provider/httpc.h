/*
 * An asynchronous HTTP client on the daemon's event loop, for the occasional request:
 * the OAuth token exchange of FCM and the feedback webhook. (Notifications themselves
 * go through the HTTP/2 pool, h2_pool.h.)
 *
 * It drives libcurl's multi interface from libevent with the socket and timer
 * callbacks (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION), as in curl's hiperfifo
 * example, so nothing blocks the loop: names are resolved by libcurl's threaded
 * resolver, connections and TLS run non-blocking. Connections are kept and reused
 * between requests to the same host. HTTPS always verifies the server certificate and
 * its name, against a CA file or the system store; HTTP/2 is used when the server
 * offers it through ALPN, HTTP/1.1 otherwise. Redirects are not followed.
 *
 * Every request httpc_request() accepted completes exactly once through its callback,
 * from the event loop (never from inside httpc_request()), unless it is cancelled
 * first with httpc_cancel() or httpc_free(), which call nothing. A callback may start
 * or cancel requests; it must not call httpc_free().
 */
#ifndef PUSHRELAY_HTTPC_H
#define PUSHRELAY_HTTPC_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct httpc;
struct httpc_request;

enum httpc_error {
	HTTPC_OK = 0,
	HTTPC_EINVAL = -1,	/* bad options (no URL, a scheme other than http or https) */
	HTTPC_ETIMEDOUT = -2,	/* the request's timeout expired */
	HTTPC_ECONNECT = -3,	/* the host or proxy could not be resolved or reached */
	HTTPC_ETLS = -4,	/* TLS handshake or certificate verification failed */
	HTTPC_ETRANSFER = -5,	/* the connection failed during the exchange */
};

/* Zero fields take the defaults in brackets. */
struct httpc_options {
	const char *method;		/* ["POST" with a body, "GET" without] */
	const char *url;		/* http:// or https:// */
	const char *content_type;	/* of the body, or NULL */
	const void *body;		/* copied: the caller may free it at once */
	size_t body_len;
	const char *ca_file;		/* PEM bundle to trust; NULL: the system store */
	const char *proxy;		/* HTTP CONNECT proxy: host:port, or a URL with
					 * credentials (provider_proxy_url()); NULL: none */
	int timeout_ms;			/* for the whole request, connecting included [30000] */
	size_t response_limit;		/* response body bytes kept [65536] */
};

/*
 * What a callback gets, valid only during the callback. Either error is 0 and status
 * is the HTTP status (any status, 4xx and 5xx included), or error is an HTTPC_E* code
 * and error_text says what went wrong (libcurl's message: the certificate problem, the
 * connect failure).
 */
struct httpc_response {
	int error;
	int status;
	const char *error_text;		/* NULL when error is 0 */
	const char *body;		/* NUL-terminated; "" when none */
	size_t body_len;
	int body_truncated;		/* the server sent more than response_limit */
	int64_t retry_after_ms;		/* from Retry-After (seconds or a date); -1: absent */
};

typedef void httpc_done_fn(const struct httpc_response *response, void *arg);

const char *httpc_strerror(int error);

/* A client on base; it owns a libcurl multi handle and its connection cache. */
struct httpc *httpc_new(struct event_base *base);
/* Cancel every request without calling back, close connections, free. */
void httpc_free(struct httpc *client);

/*
 * Start a request: 0, with *out (optional) set to a handle for httpc_cancel() that is
 * valid until the callback returns; or HTTPC_EINVAL, and done will not be called.
 */
int httpc_request(struct httpc *client, const struct httpc_options *options,
    httpc_done_fn *done, void *arg, struct httpc_request **out);
/* Abandon a request before its callback: it will not be called. */
void httpc_cancel(struct httpc_request *request);
/* Requests started and not yet completed or cancelled. */
size_t httpc_pending(const struct httpc *client);

#endif
