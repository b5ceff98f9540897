/* The API's connection guard: limits, deadlines and the head check before evhttp. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "api_conn.h"
#include "clock.h"
#include "log.h"
#include "strmap.h"
#include "utf8.h"
#include "xmalloc.h"

/* Bytes a connection may have waiting while its previous request is answered. */
#define CONN_HOLD_MAX (64 * 1024)
/* After the answer: how long, and how much, to read and drop before closing. */
#define CONN_LINGER_MS 2000
#define CONN_LINGER_MAX (256 * 1024)
/* accept() failing for want of descriptors: pause this long, doubling up to the max. */
#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000
/* At most one log line about accept() failures per this many ms. */
#define ACCEPT_LOG_INTERVAL_MS 10000

enum conn_phase {
	CONN_IDLE,		/* waiting for the first byte of a request */
	CONN_HEAD,		/* reading the request line and headers */
	CONN_BODY,		/* passing body_left bytes of a Content-Length body */
	CONN_BODY_CHUNKED,	/* passing a chunked body until dispatch */
	CONN_COMPLETE,		/* the request is with evhttp: hold what follows */
	CONN_DISPATCHED,	/* the handler has it: hold what follows */
	CONN_DISCARD,		/* refused: drop everything, the connection closes */
};

struct api_conn {
	struct api_conns *conns;
	struct api_conn *prev, *next;
	struct bufferevent *filter;	/* evhttp's; NULL once evhttp has let go */
	struct bufferevent *socket;	/* ours, under the filter */
	evutil_socket_t fd;		/* -1 until evhttp has set it */
	struct event *deadline;
	struct event *wake;
	struct event *flush;		/* moves evhttp's answer to the socket */
	struct event *writable;		/* the socket takes more of an answer */
	enum conn_phase phase;
	uint64_t body_left;
	size_t scanned;			/* head bytes already searched for its end */
	int64_t request_start_ms;
	enum api_conn_refusal refusal;
	char method[32];		/* an unknown method's name, for the answer */
	char peer[1 + 16];		/* family, then the address bytes */
	size_t peer_len;		/* 0: not counted (not TCP, or not yet known) */
	int over_limit;			/* accepted past max_connections: close */
	int dead;			/* closed by us or by the client: no lingering */
	int lingering;
	int owns_socket;		/* we keep the socket past the filter (lingering) */
	size_t lingered;		/* bytes read and dropped while lingering */
};

struct api_conns {
	struct api_conns *next_guard;
	struct event_base *base;
	struct evhttp *http;
	struct api_conn_options options;
	api_conn_access_fn *access;
	void *access_arg;
	struct api_conn *conns;		/* every connection, lingering ones too */
	struct api_conn **by_fd;	/* dispatch finds a request's connection here */
	size_t by_fd_len;
	struct strmap *peers;		/* address -> connections open (as a pointer) */
	char *head;			/* scratch for one head, max_headers_size + 1 */
	struct evconnlistener **listeners;
	size_t listener_count;
	int full;			/* open >= max_connections: listeners paused */
	int backing_off;		/* accept() failed: listeners paused */
	int freeing;			/* 1: in api_conns_free(); 2: go when the last closes */
	int64_t backoff_ms;
	struct event *backoff_timer;
	int64_t accept_logged_ms;
	uint64_t accept_errors_unlogged;
	struct api_conn_stats stats;
};

/*
 * libevent hands accept()'s error callback evhttp's pointer, not ours: this index
 * finds the guard of that evhttp. It holds one entry per live guard.
 */
static struct api_conns *api_conns_guards;

static void conn_close(struct api_conn *c);
static void api_conns_release(struct api_conns *g);
static void conn_flush_cb(evutil_socket_t fd, short what, void *arg);

static int64_t
ms_since(int64_t start)
{
	return clock_monotonic_ms() - start;
}

static void
timer_start(struct event *ev, int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

/* Enable the listeners unless the guard is full or backing off. */
static void
listeners_update(struct api_conns *g)
{
	int pause = g->full || g->backing_off;

	for (size_t i = 0; i < g->listener_count; i++) {
		if (pause)
			evconnlistener_disable(g->listeners[i]);
		else
			evconnlistener_enable(g->listeners[i]);
	}
}

/*
 * Does evhttp still hold the filter? Between evhttp's bufferevent_free() and the
 * filter's finalizer (which calls conn_detach) the filter has no callbacks and must
 * not be touched: a call into it then would free it a second time.
 */
static int
conn_filter_live(const struct api_conn *c)
{
	bufferevent_event_cb eventcb = NULL;

	if (c->filter == NULL)
		return 0;
	bufferevent_getcb(c->filter, NULL, NULL, &eventcb, NULL);
	return eventcb != NULL;
}

/* Close a connection now: the client gets a FIN, evhttp an end of file. */
static void
conn_kill(struct api_conn *c)
{
	c->dead = 1;
	if (c->fd != -1)
		shutdown(c->fd, SHUT_RDWR);
	if (conn_filter_live(c))
		bufferevent_trigger_event(c->filter, BEV_EVENT_EOF, 0);	/* may free c */
	else if (c->filter == NULL)
		conn_close(c);
	/* else the filter's finalizer is coming: conn_detach() closes. */
}

/* Arm the deadline of the phase the connection is in. */
static void
conn_arm(struct api_conn *c)
{
	const struct api_conn_options *o = &c->conns->options;
	int64_t left, header_left;

	evtimer_del(c->deadline);
	switch (c->phase) {
	case CONN_IDLE:
		timer_start(c->deadline, o->request_timeout_ms);
		break;
	case CONN_HEAD:
		left = o->request_timeout_ms - ms_since(c->request_start_ms);
		header_left = o->header_timeout_ms - ms_since(c->request_start_ms);
		timer_start(c->deadline, header_left < left ? header_left : left);
		break;
	case CONN_BODY:
	case CONN_BODY_CHUNKED:
		timer_start(c->deadline, o->request_timeout_ms - ms_since(c->request_start_ms));
		break;
	default:
		break;
	}
}

static void
conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_conn *c = arg;

	if (c->lingering) {
		conn_close(c);
		return;
	}
	if (c->phase != CONN_IDLE)
		c->conns->stats.timed_out++;
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		log_debug("connection closed at its deadline", "phase",
		    c->phase == CONN_IDLE ? "idle" : c->phase == CONN_HEAD ? "head" : "body",
		    NULL);
	conn_kill(c);
}

/* Learn the connection's descriptor and peer once evhttp has set them. */
static int
conn_register(struct api_conn *c)
{
	struct api_conns *g = c->conns;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	uintptr_t count;

	if (c->fd != -1)
		return 0;
	if ((c->fd = bufferevent_getfd(c->socket)) < 0) {
		c->fd = -1;
		return 0;
	}
	if ((size_t)c->fd >= g->by_fd_len) {
		size_t len = (size_t)c->fd * 2 + 16;
		g->by_fd = xreallocarray(g->by_fd, len, sizeof *g->by_fd);
		memset(g->by_fd + g->by_fd_len, 0, (len - g->by_fd_len) * sizeof *g->by_fd);
		g->by_fd_len = len;
	}
	g->by_fd[c->fd] = c;
	if ((c->writable = event_new(g->base, c->fd, EV_WRITE, conn_flush_cb, c)) == NULL)
		fatalx("out of memory creating a connection");
	if (c->over_limit)
		return -1;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &sslen) != 0)
		return 0;
	if (ss.ss_family == AF_INET) {
		c->peer[0] = 4;
		memcpy(c->peer + 1, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		c->peer_len = 5;
	} else if (ss.ss_family == AF_INET6) {
		c->peer[0] = 6;
		memcpy(c->peer + 1, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		c->peer_len = 17;
	} else
		return 0;
	count = (uintptr_t)strmap_get(g->peers, c->peer, c->peer_len);
	if (count >= g->options.max_connections_per_peer) {
		c->peer_len = 0;
		g->stats.refused_per_peer++;
		return -1;
	}
	strmap_put(g->peers, c->peer, c->peer_len, (void *)(count + 1));
	return 0;
}

/* Run the input filter again on bytes held while the last request was answered. */
static void
conn_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_conn *c = arg;

	if (!conn_filter_live(c))
		return;
	if (conn_register(c) != 0) {
		conn_kill(c);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_input(c->socket)) > 0)
		bufferevent_trigger(c->socket, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

/* What a head said, as evhttp will read it. */
struct conn_head {
	const char *request_line;
	size_t request_line_len;
	enum evhttp_cmd_type method;
	int method_known;
	const char *target;		/* NUL-terminated in the scratch */
	const char *authorization;	/* first one, NUL-terminated; NULL: none */
	const char *content_length;
	const char *transfer_encoding;
};

static const struct {
	const char *name;
	enum evhttp_cmd_type method;
} conn_methods[] = {
	{ "GET", EVHTTP_REQ_GET }, { "POST", EVHTTP_REQ_POST }, { "HEAD", EVHTTP_REQ_HEAD },
	{ "PUT", EVHTTP_REQ_PUT }, { "DELETE", EVHTTP_REQ_DELETE },
	{ "OPTIONS", EVHTTP_REQ_OPTIONS }, { "TRACE", EVHTTP_REQ_TRACE },
	{ "PATCH", EVHTTP_REQ_PATCH },
};

/*
 * Parse the request line the way evhttp does (evhttp_parse_request_line): trailing
 * spaces dropped, the method up to the first space, the version after the last.
 * 0, or -1 if evhttp would refuse it.
 */
static int
conn_parse_request_line(char *line, struct conn_head *h)
{
	size_t len = strlen(line);
	char *uri, *version, ch;
	int major, minor;
	struct evhttp_uri *parsed;

	while (len > 0 && line[len - 1] == ' ')
		line[--len] = '\0';
	h->request_line = line;
	h->request_line_len = len;
	if (len < strlen("GET / HTTP/1.0"))
		return -1;
	if ((uri = strchr(line, ' ')) == NULL)
		return -1;
	*uri++ = '\0';
	if ((version = strrchr(uri, ' ')) == NULL || version == uri)
		return -1;
	*version++ = '\0';
	if (sscanf(version, "HTTP/%d.%d%c", &major, &minor, &ch) != 2 || major > 1)
		return -1;
	for (size_t i = 0; i < sizeof conn_methods / sizeof conn_methods[0]; i++) {
		if (strcmp(line, conn_methods[i].name) == 0) {
			h->method = conn_methods[i].method;
			h->method_known = 1;
		}
	}
	h->target = uri;
	/* CONNECT takes an authority, not a path: not ours, like an unknown method. */
	if (!h->method_known)
		return 0;
	if ((parsed = evhttp_uri_parse_with_flags(uri, EVHTTP_URI_NONCONFORMANT)) == NULL)
		return -1;
	evhttp_uri_free(parsed);
	return 0;
}

/*
 * Split the head in g->head (len bytes, complete) into lines as evhttp reads them
 * (each ends at LF, a CR before it dropped; a NUL ends the text of a line) and pick
 * the request line and the headers that decide what happens. 0, or -1 if evhttp would
 * refuse a line.
 */
static int
conn_parse_head(char *head, size_t len, struct conn_head *h)
{
	char *p = head, *end = head + len, *nl, *colon, *value;
	int first = 1, ours = 0;

	memset(h, 0, sizeof *h);
	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		char *line = p;
		*nl = '\0';
		if (nl > line && nl[-1] == '\r')
			nl[-1] = '\0';
		p = nl + 1;
		if (first) {
			first = 0;
			if (conn_parse_request_line(line, h) != 0)
				return -1;
			continue;
		}
		if (*line == '\0')
			return 0;	/* the end of the head */
		if (*line == ' ' || *line == '\t') {
			/* A folded line: refused where it would change a header we read. */
			if (ours)
				return -1;
			continue;
		}
		if ((colon = strchr(line, ':')) == NULL || strchr(line, '\r') != NULL)
			return -1;
		*colon = '\0';
		value = colon + 1 + strspn(colon + 1, " ");
		for (char *e = value + strlen(value); e > value && (e[-1] == ' ' ||
		    e[-1] == '\t'); e--)
			e[-1] = '\0';
		ours = 1;
		if (strcasecmp(line, "Authorization") == 0) {
			if (h->authorization == NULL)
				h->authorization = value;
		} else if (strcasecmp(line, "Content-Length") == 0) {
			if (h->content_length == NULL)
				h->content_length = value;
		} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
			if (h->transfer_encoding == NULL)
				h->transfer_encoding = value;
		} else
			ours = 0;
	}
	return -1;
}

/* The length of the head at the front of src, 0 if it is not all there yet. */
static size_t
conn_head_length(struct api_conn *c, struct evbuffer *src)
{
	struct evbuffer_ptr at;
	size_t eol_len;

	for (;;) {
		if (evbuffer_ptr_set(src, &at, c->scanned, EVBUFFER_PTR_SET) != 0)
			return 0;
		at = evbuffer_search_eol(src, &at, &eol_len, EVBUFFER_EOL_CRLF);
		if (at.pos < 0)
			return 0;
		/* An empty line after the request line ends the head. */
		if ((size_t)at.pos == c->scanned && c->scanned > 0)
			return c->scanned + eol_len;
		c->scanned = (size_t)at.pos + eol_len;
	}
}

/* The head evhttp gets instead of a refused one: no headers, so no body. */
static void
conn_refuse(struct api_conn *c, struct evbuffer *dst, enum api_conn_refusal refusal,
    const struct conn_head *h)
{
	c->refusal = refusal;
	c->phase = CONN_DISCARD;
	c->conns->stats.refused++;
	evtimer_del(c->deadline);
	if (h != NULL && h->method_known && refusal != API_CONN_BAD_METHOD &&
	    refusal != API_CONN_MALFORMED) {
		/* The request line evhttp would have read, its target as sent. */
		evbuffer_add_printf(dst, "%s %s HTTP/1.1\r\n", h->request_line, h->target);
	} else
		evbuffer_add_printf(dst, "GET / HTTP/1.1\r\n");
	evbuffer_add_printf(dst, "Connection: close\r\n\r\n");
}

/*
 * Decide on the complete head of len bytes at the front of src: pass it to evhttp as it
 * came, or drop it and pass the head of a refusal.
 */
static void
conn_take_head(struct api_conn *c, struct evbuffer *src, struct evbuffer *dst, size_t len)
{
	struct api_conns *g = c->conns;
	struct conn_head h;
	long long content_length = 0;
	char *endp;

	/* Parse a copy: the parser cuts its lines up in place. */
	evbuffer_copyout(src, g->head, len);
	g->head[len] = '\0';
	c->scanned = 0;
	if (conn_parse_head(g->head, len, &h) != 0) {
		evbuffer_drain(src, len);
		conn_refuse(c, dst, API_CONN_MALFORMED, NULL);
		return;
	}
	if (!g->access(g->access_arg, h.method_known ? h.method : (enum evhttp_cmd_type)0,
	    h.target, h.authorization)) {
		evbuffer_drain(src, len);
		conn_refuse(c, dst, API_CONN_UNAUTHORIZED, &h);
		return;
	}
	if (!h.method_known) {
		utf8_sanitize(c->method, sizeof c->method, h.request_line,
		    strlen(h.request_line));
		evbuffer_drain(src, len);
		conn_refuse(c, dst, API_CONN_BAD_METHOD, &h);
		return;
	}
	/* The body as evhttp_get_body() reads it. */
	if (h.method == EVHTTP_REQ_HEAD || h.method == EVHTTP_REQ_TRACE)
		h.transfer_encoding = h.content_length = NULL;
	if (h.transfer_encoding != NULL && strcasecmp(h.transfer_encoding, "chunked") == 0) {
		content_length = -1;
	} else if (h.content_length != NULL) {
		errno = 0;
		content_length = strtoll(h.content_length, &endp, 10);
		if (*h.content_length == '\0' || *endp != '\0' || content_length < 0 ||
		    errno == ERANGE) {
			evbuffer_drain(src, len);
			conn_refuse(c, dst, API_CONN_BAD_LENGTH, &h);
			return;
		}
		if ((unsigned long long)content_length > g->options.max_body_size) {
			evbuffer_drain(src, len);
			conn_refuse(c, dst, API_CONN_BODY_TOO_LARGE, &h);
			return;
		}
	}
	evbuffer_remove_buffer(src, dst, len);
	c->phase = content_length < 0 ? CONN_BODY_CHUNKED : content_length > 0 ? CONN_BODY :
	    CONN_COMPLETE;
	c->body_left = content_length > 0 ? (uint64_t)content_length : 0;
}

/* The input filter: everything the client sends passes here before evhttp. */
static enum bufferevent_filter_result
conn_input(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct api_conn *c = arg;
	struct api_conns *g = c->conns;
	size_t have = evbuffer_get_length(src), len, moved = 0;

	if (conn_register(c) != 0) {
		evbuffer_drain(src, have);
		c->dead = 1;
		if (c->fd != -1)
			shutdown(c->fd, SHUT_RDWR);
		return BEV_ERROR;
	}
	while ((have = evbuffer_get_length(src)) > 0) {
		switch (c->phase) {
		case CONN_IDLE:
			c->phase = CONN_HEAD;
			c->request_start_ms = clock_monotonic_ms();
			c->scanned = 0;
			conn_arm(c);
			/* FALLTHROUGH */
		case CONN_HEAD:
			if ((len = conn_head_length(c, src)) == 0) {
				if (have > g->options.max_headers_size) {
					evbuffer_drain(src, have);
					conn_refuse(c, dst, API_CONN_HEADERS_TOO_LARGE, NULL);
					return BEV_OK;
				}
				return moved > 0 ? BEV_OK : BEV_NEED_MORE;
			}
			if (len > g->options.max_headers_size) {
				evbuffer_drain(src, have);
				conn_refuse(c, dst, API_CONN_HEADERS_TOO_LARGE, NULL);
				return BEV_OK;
			}
			conn_take_head(c, src, dst, len);
					moved = 1;
			if (c->phase == CONN_DISCARD) {
				evbuffer_drain(src, evbuffer_get_length(src));
				return BEV_OK;
			}
			conn_arm(c);
			break;
		case CONN_BODY:
			len = have < c->body_left ? have : (size_t)c->body_left;
			evbuffer_remove_buffer(src, dst, len);
			c->body_left -= len;
			moved = 1;
			if (c->body_left == 0) {
				c->phase = CONN_COMPLETE;
				evtimer_del(c->deadline);
			}
			break;
		case CONN_BODY_CHUNKED:
			evbuffer_add_buffer(dst, src);
			return BEV_OK;
		case CONN_DISCARD:
			evbuffer_drain(src, have);
			return moved > 0 ? BEV_OK : BEV_NEED_MORE;
		case CONN_COMPLETE:
		case CONN_DISPATCHED:
			/* One request at a time: the next waits for this one's answer. */
			return moved > 0 ? BEV_OK : BEV_NEED_MORE;
		}
	}
	return moved > 0 ? BEV_OK : BEV_NEED_MORE;
}

static void
conn_linger_read_cb(struct bufferevent *bev, void *arg)
{
	struct api_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	c->lingered += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (c->lingered > CONN_LINGER_MAX)
		conn_close(c);
}

static void
conn_linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_close(arg);
}

/*
 * evhttp has let go (the filter's last callback): the answer is in the kernel and the
 * socket shut down for writing. If the client may still be sending (a refused body),
 * read and drop it for a moment: closing with unread bytes would send a reset, which
 * can make the client lose the answer.
 */
static void
conn_detach(void *arg)
{
	struct api_conn *c = arg;
	struct api_conns *g = c->conns;
	struct evbuffer *in = bufferevent_get_input(c->socket);

	c->filter = NULL;
	evtimer_del(c->wake);
	evtimer_del(c->flush);
	evtimer_del(c->deadline);
	if (c->writable != NULL)
		event_del(c->writable);
	if (c->fd != -1 && (size_t)c->fd < g->by_fd_len && g->by_fd[c->fd] == c)
		g->by_fd[c->fd] = NULL;
	/* Only a refusal has an answer the client may lose to a reset while it sends. */
	if (c->dead || c->fd == -1 || g->freeing || c->phase != CONN_DISCARD) {
		conn_close(c);
		return;
	}
	/* The filter's end frees the socket: keep it for the linger. */
	bufferevent_incref(c->socket);
	c->owns_socket = 1;
	c->lingering = 1;
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_setwatermark(c->socket, EV_READ, 0, 0);
	bufferevent_setcb(c->socket, conn_linger_read_cb, NULL, conn_linger_event_cb, c);
	bufferevent_enable(c->socket, EV_READ);
	timer_start(c->deadline, CONN_LINGER_MS);
}

/* The socket is done with: free what is ours and count it closed. */
static void
conn_close(struct api_conn *c)
{
	struct api_conns *g = c->conns;

	if (c->filter != NULL) {
		/* evhttp still holds the filter: it frees it and calls conn_detach(). */
		c->dead = 1;
		return;
	}
	if (c->peer_len > 0) {
		uintptr_t count = (uintptr_t)strmap_get(g->peers, c->peer, c->peer_len);
		if (count <= 1)
			strmap_remove(g->peers, c->peer, c->peer_len);
		else
			strmap_put(g->peers, c->peer, c->peer_len, (void *)(count - 1));
	}
	event_free(c->deadline);
	event_free(c->wake);
	event_free(c->flush);
	if (c->writable != NULL)
		event_free(c->writable);
	/* Without a linger the filter's end frees the socket (and closes it). */
	if (c->owns_socket)
		bufferevent_free(c->socket);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		g->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
	g->stats.open--;
	if (g->freeing) {
		if (g->freeing == 2 && g->conns == NULL)
			api_conns_release(g);
		return;
	}
	if (g->full && g->stats.open < g->options.max_connections) {
		g->full = 0;
		listeners_update(g);
	}
}

/*
 * evhttp adds an answer to the filter's output before it enables writing, and the
 * filter only moves output when data is added while writing is on, or when the socket
 * asks for more: an answer would wait for a timeout. So each addition schedules a flush
 * for the next turn of the loop, when writing is on.
 */
static void
conn_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct api_conn *c = arg;

	if (info->n_added > 0 && conn_filter_live(c))
		event_active(c->flush, EV_TIMEOUT, 1);
}

static void
conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_conn *c = arg;

	if (!conn_filter_live(c))
		return;
	if (c->dead) {
		conn_kill(c);	/* frees c */
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->filter)) > 0)
		bufferevent_flush(c->filter, EV_WRITE, BEV_NORMAL);	/* may free c */
}

/*
 * The output filter writes straight to the socket. evhttp takes an answer as sent once
 * the filter's output is empty, then shuts the socket down and frees the filter: were
 * the answer in a buffer below, that shutdown would cut it off. Writing through, an
 * answer is in the kernel by then; what the kernel does not take yet waits here, and
 * goes on when the socket is writable.
 */
static enum bufferevent_filter_result
conn_output(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
    enum bufferevent_flush_mode mode, void *arg)
{
	struct api_conn *c = arg;
	int written, moved = 0;

	if (c->fd == -1 || c->dead)
		return BEV_NEED_MORE;
	while (evbuffer_get_length(src) > 0) {
		if ((written = evbuffer_write(src, c->fd)) > 0) {
			moved = 1;
			continue;
		}
		if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			event_add(c->writable, NULL);
			break;
		}
		/* The client is gone: close once this callback has returned. */
		c->dead = 1;
		event_active(c->flush, EV_TIMEOUT, 1);
		break;
	}
	return moved ? BEV_OK : BEV_NEED_MORE;
}

/* evhttp's bevcb: a new connection was accepted; its bytes go through our filter. */
static struct bufferevent *
conn_new(struct event_base *base, void *arg)
{
	struct api_conns *g = arg;
	struct api_conn *c = xcalloc(1, sizeof *c);

	c->conns = g;
	c->fd = -1;
	c->phase = CONN_IDLE;
	c->socket = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->socket == NULL)
		fatalx("out of memory creating a connection");
	c->filter = bufferevent_filter_new(c->socket, conn_input, conn_output,
	    BEV_OPT_CLOSE_ON_FREE, conn_detach, c);
	c->deadline = evtimer_new(base, conn_deadline_cb, c);
	c->wake = evtimer_new(base, conn_wake_cb, c);
	c->flush = evtimer_new(base, conn_flush_cb, c);
	if (c->filter == NULL || c->deadline == NULL || c->wake == NULL || c->flush == NULL ||
	    evbuffer_add_cb(bufferevent_get_output(c->filter), conn_output_added, c) == NULL)
		fatalx("out of memory creating a connection");
	bufferevent_setwatermark(c->socket, EV_READ, 0, CONN_HOLD_MAX);
	/*
	 * The socket below never writes (conn_output writes through): keep its write
	 * callback off. libevent 2.1's filter would run evhttp's write callback from it
	 * without holding a reference, and evhttp may free the filter there.
	 */
	bufferevent_disable(c->socket, EV_WRITE);
	c->next = g->conns;
	if (g->conns != NULL)
		g->conns->prev = c;
	g->conns = c;
	g->stats.open++;
	g->stats.accepted++;
	g->backoff_ms = 0;
	if (g->stats.open > g->options.max_connections)
		c->over_limit = 1;
	if (g->stats.open >= g->options.max_connections && !g->full) {
		g->full = 1;
		listeners_update(g);
	}
	/* After evhttp has set the descriptor: count the peer, start the idle deadline. */
	timer_start(c->wake, 0);
	conn_arm(c);
	return c->filter;
}

static void
accept_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api_conns *g = arg;

	g->backing_off = 0;
	listeners_update(g);
}

/* accept() failed (not EAGAIN): pause the listeners instead of spinning on it. */
static void
accept_error_cb(struct evconnlistener *listener, void *http)
{
	int error = EVUTIL_SOCKET_ERROR();
	struct api_conns *g;
	char count[24];

	for (g = api_conns_guards; g != NULL && g->http != http; g = g->next_guard)
		;
	if (g == NULL)
		return;
	g->stats.accept_errors++;
	g->accept_errors_unlogged++;
	if (g->accept_logged_ms == 0 || ms_since(g->accept_logged_ms) >= ACCEPT_LOG_INTERVAL_MS) {
		snprintf(count, sizeof count, "%llu", (unsigned long long)g->accept_errors_unlogged);
		log_warn("accept() failed: pausing the API listeners", "error", strerror(error),
		    "failures", count, NULL);
		g->accept_logged_ms = clock_monotonic_ms();
		g->accept_errors_unlogged = 0;
	}
	g->backoff_ms = g->backoff_ms == 0 ? ACCEPT_BACKOFF_MIN_MS :
	    g->backoff_ms * 2 > ACCEPT_BACKOFF_MAX_MS ? ACCEPT_BACKOFF_MAX_MS : g->backoff_ms * 2;
	g->backing_off = 1;
	listeners_update(g);
	timer_start(g->backoff_timer, g->backoff_ms);
}

struct api_conns *
api_conns_new(struct event_base *base, struct evhttp *http,
    const struct api_conn_options *options, api_conn_access_fn *access, void *arg)
{
	struct api_conns *g = xcalloc(1, sizeof *g);

	g->base = base;
	g->http = http;
	g->options = *options;
	if (g->options.header_timeout_ms > g->options.request_timeout_ms)
		g->options.header_timeout_ms = g->options.request_timeout_ms;
	g->access = access;
	g->access_arg = arg;
	g->peers = strmap_new();
	g->head = xmalloc(options->max_headers_size + 1);
	if ((g->backoff_timer = evtimer_new(base, accept_backoff_cb, g)) == NULL)
		fatalx("cannot create the API's accept timer");
	evhttp_set_bevcb(http, conn_new, g);
	g->next_guard = api_conns_guards;
	api_conns_guards = g;
	return g;
}

void
api_conns_add_listener(struct api_conns *g, struct evconnlistener *listener)
{
	g->listeners = xreallocarray(g->listeners, g->listener_count + 1, sizeof *g->listeners);
	g->listeners[g->listener_count++] = listener;
	evconnlistener_set_error_cb(listener, accept_error_cb);
	if (g->full || g->backing_off)
		evconnlistener_disable(listener);
}

void
api_conns_remove_listener(struct api_conns *g, struct evconnlistener *listener)
{
	for (size_t i = 0; i < g->listener_count; i++) {
		if (g->listeners[i] == listener) {
			g->listeners[i] = g->listeners[--g->listener_count];
			return;
		}
	}
}

/* The guard's record of the connection a request came on, or NULL. */
static struct api_conn *
conn_of(struct api_conns *g, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	evutil_socket_t fd;

	if (evcon == NULL || (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return NULL;
	fd = bufferevent_getfd(bev);
	if (fd < 0 || (size_t)fd >= g->by_fd_len || g->by_fd[fd] == NULL ||
	    g->by_fd[fd]->filter != bev)
		return NULL;
	return g->by_fd[fd];
}

enum api_conn_refusal
api_conns_dispatched(struct api_conns *g, struct evhttp_request *req,
    const char **method_name)
{
	struct api_conn *c = conn_of(g, req);

	*method_name = "";
	if (c == NULL)
		return API_CONN_OK;
	evtimer_del(c->deadline);
	*method_name = c->method;
	if (c->phase != CONN_DISCARD)
		c->phase = CONN_DISPATCHED;
	return c->refusal;
}

void
api_conns_answered(struct api_conns *g, struct evhttp_request *req)
{
	struct api_conn *c = conn_of(g, req);

	if (c == NULL || c->phase == CONN_DISCARD)
		return;
	c->phase = CONN_IDLE;
	conn_arm(c);
	/* After evhttp has set up the next request: then pass what was held. */
	event_active(c->wake, EV_TIMEOUT, 1);
}

void
api_conns_get_stats(const struct api_conns *g, struct api_conn_stats *stats)
{
	*stats = g->stats;
}

/* Free the guard itself, once no connection refers to it. */
static void
api_conns_release(struct api_conns *g)
{
	struct api_conns **p;

	for (p = &api_conns_guards; *p != NULL; p = &(*p)->next_guard) {
		if (*p == g) {
			*p = g->next_guard;
			break;
		}
	}
	event_free(g->backoff_timer);
	strmap_free(g->peers);
	free(g->by_fd);
	free(g->head);
	free(g->listeners);
	free(g);
}

void
api_conns_free(struct api_conns *g)
{
	struct api_conn *c, *next;

	if (g == NULL)
		return;
	g->freeing = 1;
	g->listener_count = 0;
	/*
	 * Close what lingers. A connection evhttp_free() let go of is detached by libevent
	 * later (its finalizer): the guard goes when the last one has.
	 */
	for (c = g->conns; c != NULL; c = next) {
		next = c->next;
		if (c->filter == NULL)
			conn_close(c);
	}
	if (g->conns == NULL)
		api_conns_release(g);
	else
		g->freeing = 2;
}
