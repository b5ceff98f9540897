/*
 * The API's connection guard: what happens to a connection before evhttp parses a
 * request from it, and after evhttp lets go of it.
 *
 * Every accepted connection gets a filter bufferevent (evhttp's bevcb) that sees its
 * bytes first. It enforces, per connection:
 *  - limits on open connections, in total (the listeners pause at the limit) and per
 *    peer address (a connection past it is closed at once);
 *  - deadlines: the head of a request must be in within header_timeout of its first
 *    byte, and the whole request within request_timeout; an idle keep-alive connection
 *    is closed after request_timeout. These are deadlines, not idle timers: trickling
 *    bytes does not extend them;
 *  - the head, checked before evhttp sees it: the request line, the size of the
 *    headers and Content-Length. The API key is decided here, on the same decoded route
 *    that dispatch uses (the access callback), so a request that may not go on never
 *    has its body read: evhttp gets a head without headers and dispatch answers the
 *    project's JSON error from the refusal;
 *  - one request at a time: bytes after a complete request wait until it is answered
 *    (after a chunked body, whose end only evhttp finds, what follows in the same read
 *    reaches evhttp without this check; dispatch still decides the key on it);
 *  - a lingering close: an answer still being written when evhttp closes is written
 *    out, then the rest of the client's bytes are read and dropped for a moment, so
 *    that the client reads the answer instead of a reset.
 * It also backs the listeners off when accept() fails for want of descriptors.
 *
 * Everything runs on the API's event loop thread.
 */
#ifndef PUSHRELAY_API_CONN_H
#define PUSHRELAY_API_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

struct api_conn_options {
	size_t max_connections;		/* open at once, in total */
	size_t max_connections_per_peer; /* open at once from one address (TCP only) */
	int64_t header_timeout_ms;	/* first byte to the end of the head */
	int64_t request_timeout_ms;	/* first byte to the end of the body; idle keep-alive */
	size_t max_headers_size;	/* request line and headers */
	size_t max_body_size;		/* Content-Length above it is refused */
};

/* Why the guard stopped a request; dispatch answers it instead of routing. */
enum api_conn_refusal {
	API_CONN_OK = 0,
	API_CONN_UNAUTHORIZED,		/* 401: the route needs a key the request lacks */
	API_CONN_MALFORMED,		/* 400: the request line or a header line is bad */
	API_CONN_BAD_LENGTH,		/* 400: Content-Length is not a number */
	API_CONN_HEADERS_TOO_LARGE,	/* 431 */
	API_CONN_BODY_TOO_LARGE,	/* 413: Content-Length above max_body_size */
	API_CONN_BAD_METHOD,		/* 405: a method the API does not know */
};

/*
 * May a request go on? method is the request line's method (a known one), target its
 * request target, authorization the first Authorization header or NULL. Returns 1 if
 * the route is public or the key is good, 0 if the request must stop with 401.
 */
typedef int api_conn_access_fn(void *arg, enum evhttp_cmd_type method, const char *target,
    const char *authorization);

struct api_conns;

/* Guard every connection of http from now on (installs evhttp's bevcb). */
struct api_conns *api_conns_new(struct event_base *base, struct evhttp *http,
    const struct api_conn_options *options, api_conn_access_fn *access, void *arg);
/* Pause and back off this listener when accept() fails or the total limit is hit. */
void api_conns_add_listener(struct api_conns *conns, struct evconnlistener *listener);
/* Forget a listener about to be freed. */
void api_conns_remove_listener(struct api_conns *conns, struct evconnlistener *listener);

/*
 * A request reached dispatch: its deadlines stop (the handler answers in its own time)
 * and the refusal the guard decided for it is returned. *method_name is set to the
 * unknown method's name for API_CONN_BAD_METHOD (valid UTF-8, until the next request).
 */
enum api_conn_refusal api_conns_dispatched(struct api_conns *conns,
    struct evhttp_request *req, const char **method_name);
/* The answer to req is written: the connection may read its next request. */
void api_conns_answered(struct api_conns *conns, struct evhttp_request *req);

struct api_conn_stats {
	uint64_t open;			/* connections open now */
	uint64_t accepted;		/* since start */
	uint64_t refused_per_peer;	/* closed at once: the peer had too many */
	uint64_t timed_out;		/* closed by a deadline */
	uint64_t accept_errors;		/* accept() failures (EMFILE, ENFILE, ...) */
	uint64_t refused;		/* requests stopped at the head (any refusal) */
};
void api_conns_get_stats(const struct api_conns *conns, struct api_conn_stats *stats);

/* Stop guarding: connections still lingering are closed. */
void api_conns_free(struct api_conns *conns);

#endif
