/*
 * One TLS + HTTP/2 client connection on libevent and nghttp2.
 *
 * TCP connect and the proxy CONNECT run on a plain event on the socket; then the
 * socket is handed to an OpenSSL bufferevent. nghttp2 frames are produced with
 * nghttp2_session_mem_send() straight into the bufferevent's output buffer (the
 * send callback would copy the same bytes the same way) and parsed with
 * nghttp2_session_mem_recv() over the input buffer's chunks, without a pullup.
 * Submissions only schedule a flush, so a burst of requests becomes one pass of
 * frames, one TLS write.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "h2_client.h"
#include "log.h"
#include "tls.h"
#include "xmalloc.h"

/* Stop producing frames while this much is waiting for the socket. */
#define H2_OUTPUT_HIGH (256 * 1024)
/*
 * Frames are gathered into pieces of up to this size before they go into the output
 * buffer. The TLS bufferevent writes one record, and makes one write(2), per buffer
 * chain, and frames added one by one made chains of 1 to 4 KiB.
 */
#define H2_OUTPUT_CHUNK (16 * 1024)
/* How long a closing connection may take to flush its GOAWAY. */
#define H2_CLOSE_GRACE_MS 1000
/* Our receive windows: responses are small, never make the server wait. */
#define H2_STREAM_WINDOW (1 << 20)
#define H2_CONNECTION_WINDOW (1 << 24)

enum h2_client_state {
	H2_CLIENT_CONNECTING = 0,	/* TCP */
	H2_CLIENT_PROXY,		/* waiting for the proxy's answer to CONNECT */
	H2_CLIENT_HANDSHAKE,		/* TLS */
	H2_CLIENT_SETTINGS,		/* waiting for the server's first SETTINGS */
	H2_CLIENT_READY,
	H2_CLIENT_GOAWAY,		/* no new streams; close when the last one ends */
	H2_CLIENT_CLOSING,		/* our GOAWAY is being flushed */
	H2_CLIENT_DEAD,
};

struct h2_client {
	struct h2_client_options opt;
	enum h2_client_state state;
	int fd;				/* owned here until the bufferevent takes it */
	struct event *io_ev;		/* connect and proxy reply, before TLS */
	struct event *timer_ev;		/* connect timeout, PING, close grace, closing */
	struct event *flush_ev;
	struct bufferevent *bev;
	SSL *ssl;			/* owned here until the bufferevent takes it */
	nghttp2_session *session;

	struct h2_exchange_list streams;
	unsigned nstreams;		/* exchanges with a stream, completed ones too */
	uint64_t idle_since;		/* h2_now_ms() when nstreams last fell to 0 */
	uint32_t max_streams;		/* min(server's limit, our cap) */
	int32_t last_sent_id;		/* last request HEADERS serialized */
	int32_t goaway_last_id;
	int goaway_received;
	int shutdown;			/* the pool asked to close when idle */
	int ever_ready;
	uint64_t responses;

	int slots_changed;
	int flush_pending;
	int close_pending;
	int close_error;
	int ping_outstanding;
	uint64_t last_read_ms;

	char proxy_buf[1024];
	size_t proxy_len;
	char reason[192];
};

static void client_close_soon(struct h2_client *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void client_flush(struct h2_client *);
static void client_after_io(struct h2_client *);

/* Monotonic milliseconds. */
uint64_t
h2_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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

/* Close from the connection's own timer callback, outside any other callback. */
static void
client_close_soon(struct h2_client *c, int error, const char *fmt, ...)
{
	va_list ap;

	if (c->close_pending || c->state == H2_CLIENT_DEAD)
		return;
	c->close_pending = 1;
	c->close_error = error;
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(c->reason, sizeof c->reason, fmt, ap);
		va_end(ap);
	} else
		c->reason[0] = '\0';
	event_active(c->timer_ev, EV_TIMEOUT, 0);
}

/* Hand an exchange back to the pool. */
static void
client_hand_back(struct h2_client *c, struct h2_exchange *ex, int error)
{
	ex->client = NULL;
	c->opt.events->done(c, ex, error, c->opt.arg);
}

/* Take an exchange off the stream list. */
static void
client_detach(struct h2_client *c, struct h2_exchange *ex)
{
	TAILQ_REMOVE(&c->streams, ex, entry);
	if (--c->nstreams == 0)
		c->idle_since = h2_now_ms();
	c->slots_changed = 1;
}

/*
 * Tear the connection down and hand everything back. A request whose HEADERS never
 * left (or that is above the server's GOAWAY last_stream_id) was not processed;
 * every other one may have been, so it fails with H2_ECONNLOST and the caller, who
 * knows whether sending twice is harmless, decides about a retry.
 */
static void
client_teardown(struct h2_client *c, int error, const char *reason)
{
	struct h2_exchange *ex;
	int result;

	if (c->state == H2_CLIENT_DEAD)
		return;
	c->state = H2_CLIENT_DEAD;
	if (reason != c->reason)
		snprintf(c->reason, sizeof c->reason, "%s", reason != NULL ? reason : "");
	evtimer_del(c->timer_ev);
	event_del(c->flush_ev);
	if (c->io_ev != NULL)
		event_del(c->io_ev);
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	while ((ex = TAILQ_FIRST(&c->streams)) != NULL) {
		client_detach(c, ex);
		if (ex->request == NULL)
			result = H2_ECANCELLED;
		else if (ex->stream_id > c->last_sent_id ||
		    (c->goaway_received && ex->stream_id > c->goaway_last_id))
			result = H2_EREFUSED;
		else {
			result = H2_ECONNLOST;
			ex->response.reason = c->reason;
		}
		client_hand_back(c, ex, result);
	}
	c->opt.events->closed(c, error, c->reason, c->opt.arg);
	/* The pool has freed c. */
}

/* Send GOAWAY and close once it is flushed (or the grace period ends). */
static void
client_begin_close(struct h2_client *c)
{
	if (c->state == H2_CLIENT_CLOSING || c->state == H2_CLIENT_DEAD)
		return;
	c->state = H2_CLIENT_CLOSING;
	nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	evtimer_del(c->timer_ev);
	timer_add_ms(c->timer_ev, H2_CLOSE_GRACE_MS);
	client_flush(c);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		client_close_soon(c, 0, "closed");
}

/* Recompute the stream limit from the server's SETTINGS and our cap. */
static void
client_update_limit(struct h2_client *c)
{
	uint32_t remote;

	remote = nghttp2_session_get_remote_settings(c->session,
	    NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	c->max_streams = remote < c->opt.max_streams ? remote : c->opt.max_streams;
	c->slots_changed = 1;
}

/* nghttp2: a frame arrived. */
static int
client_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct h2_client *c = arg;
	char last[16], debug[256];
	size_t n;

	switch (frame->hd.type) {
	case NGHTTP2_SETTINGS:
		if (frame->hd.flags & NGHTTP2_FLAG_ACK)
			break;
		client_update_limit(c);
		if (c->state == H2_CLIENT_SETTINGS) {
			c->state = H2_CLIENT_READY;
			c->ever_ready = 1;
			c->idle_since = h2_now_ms();
			evtimer_del(c->timer_ev);
			timer_add_ms(c->timer_ev, (uint64_t)c->opt.ping_idle_ms);
			c->opt.events->ready(c, c->opt.arg);
		}
		break;
	case NGHTTP2_GOAWAY:
		c->goaway_received = 1;
		c->goaway_last_id = frame->goaway.last_stream_id;
		if (c->state == H2_CLIENT_READY || c->state == H2_CLIENT_SETTINGS)
			c->state = H2_CLIENT_GOAWAY;
		/* APNs puts a JSON reason in the debug data. */
		n = frame->goaway.opaque_data_len < sizeof debug - 1 ?
		    frame->goaway.opaque_data_len : sizeof debug - 1;
		if (n > 0)
			memcpy(debug, frame->goaway.opaque_data, n);
		debug[n] = '\0';
		snprintf(last, sizeof last, "%d", frame->goaway.last_stream_id);
		log_info("h2 goaway received", "endpoint", c->opt.endpoint, "error",
		    nghttp2_http2_strerror(frame->goaway.error_code), "last_stream_id", last,
		    "debug", debug, NULL);
		break;
	case NGHTTP2_PING:
		if (frame->hd.flags & NGHTTP2_FLAG_ACK)
			c->ping_outstanding = 0;
		break;
	}
	return 0;
}

/* nghttp2: a request's HEADERS went out. */
static int
client_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct h2_client *c = arg;

	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		c->last_sent_id = frame->hd.stream_id;
	return 0;
}

/*
 * nghttp2: a request's HEADERS will never go out (GOAWAY arrived first, or the
 * stream was cancelled while queued). No stream was opened, so no close callback
 * follows: hand the exchange back here. Rare, hence the list walk.
 */
static int
client_on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame,
    int lib_error, void *arg)
{
	struct h2_client *c = arg;
	struct h2_exchange *ex;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	TAILQ_FOREACH_REVERSE(ex, &c->streams, h2_exchange_list, entry) {
		if (ex->stream_id == frame->hd.stream_id)
			break;
	}
	if (ex == NULL)
		return 0;
	client_detach(c, ex);
	client_hand_back(c, ex, ex->request != NULL ? H2_EREFUSED : H2_ECANCELLED);
	return 0;
}

/* nghttp2: a stream is closed; the exchange is answered, refused or reset. */
static int
client_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
    void *arg)
{
	struct h2_client *c = arg;
	struct h2_exchange *ex;
	int result;

	if ((ex = nghttp2_session_get_stream_user_data(session, stream_id)) == NULL)
		return 0;
	client_detach(c, ex);
	if (ex->request == NULL)
		result = H2_ECANCELLED;
	else if (error_code == NGHTTP2_NO_ERROR && ex->response.status != 0) {
		result = 0;
		c->responses++;
	} else if (error_code == NGHTTP2_REFUSED_STREAM)
		result = H2_EREFUSED;
	else {
		result = H2_ESTREAMRESET;
		ex->response.http2_error = error_code;
		ex->response.reason = nghttp2_http2_strerror(error_code);
	}
	client_hand_back(c, ex, result);
	return 0;
}

void
h2_response_add_header(struct h2_response *r, const uint8_t *name, size_t namelen,
    const uint8_t *value, size_t valuelen)
{
	size_t need = namelen + valuelen + 2;

	if (r->nheaders >= H2_RESPONSE_HEADERS_MAX ||
	    r->header_used + need > sizeof r->header_bytes)
		return;
	r->header_at[r->nheaders][0] = (uint16_t)r->header_used;
	memcpy(r->header_bytes + r->header_used, name, namelen);
	r->header_bytes[r->header_used + namelen] = '\0';
	r->header_at[r->nheaders][1] = (uint16_t)(r->header_used + namelen + 1);
	memcpy(r->header_bytes + r->header_used + namelen + 1, value, valuelen);
	r->header_bytes[r->header_used + need - 1] = '\0';
	r->header_used += need;
	r->nheaders++;
}

/* nghttp2: one response header. */
static int
client_on_header(nghttp2_session *session, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen,
    uint8_t flags, void *arg)
{
	struct h2_exchange *ex;
	int status;

	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	ex = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (ex == NULL || ex->request == NULL)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		/* nghttp2 has checked it is three digits. */
		status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
		if (status >= 200 || ex->response.status == 0)
			ex->response.status = status;
		return 0;
	}
	h2_response_add_header(&ex->response, name, namelen, value, valuelen);
	return 0;
}

/* nghttp2: response body bytes; keep up to the limit. */
static int
client_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
    const uint8_t *data, size_t len, void *arg)
{
	struct h2_exchange *ex;
	size_t room, cap;

	ex = nghttp2_session_get_stream_user_data(session, stream_id);
	if (ex == NULL || ex->request == NULL)
		return 0;
	room = ex->body_limit - ex->response.body_len;
	if (len > room) {
		len = room;
		ex->response.body_truncated = 1;
	}
	if (len == 0)
		return 0;
	if (ex->response.body_len + len > ex->body_cap) {
		cap = ex->body_cap != 0 ? ex->body_cap : 256;
		while (cap < ex->response.body_len + len)
			cap *= 2;
		if (cap > ex->body_limit)
			cap = ex->body_limit;
		ex->body_buf = xreallocarray(ex->body_buf, cap, 1);
		ex->body_cap = cap;
	}
	memcpy(ex->body_buf + ex->response.body_len, data, len);
	ex->response.body_len += len;
	return 0;
}

/* nghttp2: fill a DATA frame from the caller's body. */
static ssize_t
client_body_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
    uint32_t *data_flags, nghttp2_data_source *source, void *arg)
{
	struct h2_exchange *ex = source->ptr;
	size_t left;

	/* Completed (timed out): the body may be gone; reset the stream. */
	if (ex->request == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	left = ex->request->body_len - ex->body_sent;
	if (length > left)
		length = left;
	memcpy(buf, ex->request->body + ex->body_sent, length);
	ex->body_sent += length;
	if (ex->body_sent == ex->request->body_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)length;
}

/* Produce frames into the output buffer until nghttp2 has none or it is full. */
static void
client_flush(struct h2_client *c)
{
	struct evbuffer *out;
	const uint8_t *data;
	uint8_t chunk[H2_OUTPUT_CHUNK];
	size_t used = 0;
	ssize_t n;

	if (c->session == NULL || c->state == H2_CLIENT_DEAD || c->close_pending)
		return;
	out = bufferevent_get_output(c->bev);
	while (evbuffer_get_length(out) + used < H2_OUTPUT_HIGH) {
		n = nghttp2_session_mem_send(c->session, &data);
		if (n < 0) {
			client_close_soon(c, H2_EPROTO, "%s", nghttp2_strerror((int)n));
			break;
		}
		if (n == 0)
			break;
		if (used + (size_t)n > sizeof chunk) {
			evbuffer_add(out, chunk, used);
			used = 0;
		}
		if ((size_t)n > sizeof chunk)
			evbuffer_add(out, data, (size_t)n);
		else {
			memcpy(chunk + used, data, (size_t)n);
			used += (size_t)n;
		}
	}
	if (used > 0)
		evbuffer_add(out, chunk, used);
}

/* After reading or submitting: refill streams, send, and close when done. */
static void
client_after_io(struct h2_client *c)
{
	int rounds;

	/* Sending can free slots too (a cancelled stream closes once its RST is out). */
	for (rounds = 0; rounds < 4; rounds++) {
		if (c->state == H2_CLIENT_DEAD || c->close_pending)
			return;
		if (c->slots_changed && c->state == H2_CLIENT_READY) {
			c->slots_changed = 0;
			c->opt.events->writable(c, c->opt.arg);
			if (c->state == H2_CLIENT_DEAD || c->close_pending)
				return;
		}
		client_flush(c);
		if (!c->slots_changed || c->state != H2_CLIENT_READY)
			break;
	}
	if (c->close_pending || c->state == H2_CLIENT_CLOSING)
		return;
	if ((c->state == H2_CLIENT_GOAWAY || c->shutdown) && c->nstreams == 0)
		client_begin_close(c);
	else if (!nghttp2_session_want_read(c->session) &&
	    !nghttp2_session_want_write(c->session))
		client_close_soon(c, c->nstreams > 0 ? H2_ECONNLOST : 0,
		    "session ended by the server");
}

/* Deferred flush after submissions. */
static void
client_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_client *c = arg;

	c->flush_pending = 0;
	client_after_io(c);
}

/* Flush once this loop iteration is done submitting. */
static void
client_schedule_flush(struct h2_client *c)
{
	if (c->flush_pending)
		return;
	c->flush_pending = 1;
	event_active(c->flush_ev, EV_WRITE, 0);
}

/* Bytes from the server: feed nghttp2 chunk by chunk. */
static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct h2_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec iov[16];
	size_t consumed;
	ssize_t rv;
	int i, n;

	if (c->session == NULL || c->state == H2_CLIENT_DEAD)
		return;
	c->last_read_ms = h2_now_ms();
	while (evbuffer_get_length(in) > 0) {
		n = evbuffer_peek(in, -1, NULL, iov, 16);
		if (n > 16)
			n = 16;
		consumed = 0;
		for (i = 0; i < n; i++) {
			rv = nghttp2_session_mem_recv(c->session, iov[i].iov_base,
			    iov[i].iov_len);
			if (rv < 0) {
				client_close_soon(c, H2_EPROTO, "%s",
				    nghttp2_strerror((int)rv));
				return;
			}
			consumed += iov[i].iov_len;
			if (c->close_pending)
				break;
		}
		evbuffer_drain(in, consumed);
		if (c->close_pending)
			return;
	}
	client_after_io(c);
}

/* The output buffer drained: produce more, or finish closing. */
static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct h2_client *c = arg;

	if (c->state == H2_CLIENT_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			client_close_soon(c, 0, "closed");
		return;
	}
	if (c->session != NULL && nghttp2_session_want_write(c->session))
		client_after_io(c);
}

/* The nghttp2 callbacks, shared by every connection. */
static nghttp2_session_callbacks *
client_callbacks(void)
{
	static nghttp2_session_callbacks *callbacks;

	if (callbacks != NULL)
		return callbacks;
	if (nghttp2_session_callbacks_new(&callbacks) != 0)
		fatalx("nghttp2_session_callbacks_new: out of memory");
	nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, client_on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, client_on_frame_send);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks,
	    client_on_frame_not_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(callbacks,
	    client_on_stream_close);
	nghttp2_session_callbacks_set_on_header_callback(callbacks, client_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
	    client_on_data_chunk);
	return callbacks;
}

/* TLS is up: check ALPN and start HTTP/2. */
static void
client_start_h2(struct h2_client *c)
{
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW },
	};
	const unsigned char *alpn = NULL;
	unsigned int alpnlen = 0;

	SSL_get0_alpn_selected(bufferevent_openssl_get_ssl(c->bev), &alpn, &alpnlen);
	if (alpnlen != 2 || memcmp(alpn, "h2", 2) != 0) {
		client_teardown(c, H2_EPROTO, "server did not negotiate h2 (ALPN)");
		return;
	}
	if (nghttp2_session_client_new(&c->session, client_callbacks(), c) != 0)
		fatalx("nghttp2_session_client_new: out of memory");
	nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings,
	    sizeof settings / sizeof settings[0]);
	nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
	    H2_CONNECTION_WINDOW);
	c->state = H2_CLIENT_SETTINGS;
	c->last_read_ms = h2_now_ms();
	client_flush(c);
}

/* Connected, closed or failed, at the TLS level. */
static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct h2_client *c = arg;
	char buf[192];
	unsigned long ssl_error;
	int saved_errno = errno;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == H2_CLIENT_HANDSHAKE)
			client_start_h2(c);
		return;
	}
	if (c->state == H2_CLIENT_DEAD)
		return;
	ssl_error = bufferevent_get_openssl_error(bev);
	while (bufferevent_get_openssl_error(bev) != 0)
		continue;
	/*
	 * With TLS 1.3 the server checks our certificate after our side of the
	 * handshake is done: its alert arrives while we wait for SETTINGS.
	 */
	if (c->state == H2_CLIENT_HANDSHAKE ||
	    (c->state == H2_CLIENT_SETTINGS && ssl_error != 0)) {
		if (ssl_error == 0 && SSL_get_verify_result(c->ssl) == X509_V_OK) {
			if ((what & BEV_EVENT_EOF) || saved_errno == 0)
				snprintf(buf, sizeof buf, "connection closed during TLS handshake");
			else
				snprintf(buf, sizeof buf, "TLS handshake: %s",
				    strerror(saved_errno));
		} else
			tls_failure_reason(c->ssl, ssl_error, buf, sizeof buf);
		client_teardown(c, H2_ETLS, buf);
		return;
	}
	if (c->state == H2_CLIENT_CLOSING) {
		client_teardown(c, 0, "closed");
		return;
	}
	if (c->ever_ready && c->nstreams == 0) {
		client_teardown(c, 0, what & BEV_EVENT_EOF ? "closed by the server" :
		    "connection error while idle");
		return;
	}
	if (what & BEV_EVENT_EOF)
		snprintf(buf, sizeof buf, "connection closed by the server");
	else if (ssl_error != 0)
		ERR_error_string_n(ssl_error, buf, sizeof buf);
	else
		snprintf(buf, sizeof buf, "%s", strerror(saved_errno));
	client_teardown(c, c->ever_ready ? H2_ECONNLOST : H2_EPROTO, buf);
}

/* Hand the connected socket to TLS. */
static void
client_start_tls(struct h2_client *c)
{
	if (c->io_ev != NULL) {
		event_free(c->io_ev);
		c->io_ev = NULL;
	}
	if ((c->ssl = SSL_new(c->opt.ssl_ctx)) == NULL) {
		client_teardown(c, H2_ETLS, "SSL_new failed");
		return;
	}
	if (tls_client_prepare(c->ssl, c->opt.server_name) != 0) {
		client_teardown(c, H2_ETLS, "invalid server name");
		return;
	}
	c->bev = bufferevent_openssl_socket_new(c->opt.base, c->fd, c->ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL) {
		client_teardown(c, H2_ETLS, "cannot create TLS bufferevent");
		return;
	}
	c->fd = -1;	/* both now belong to the bufferevent */
	c->state = H2_CLIENT_HANDSHAKE;
	/* A peer closing without close_notify is just a close here. */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, H2_OUTPUT_HIGH / 2, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* The proxy answered (part of) its reply to CONNECT. */
static void
client_proxy_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_client *c = arg;
	char *end, *eol;
	ssize_t n;
	int status;

	n = recv(fd, c->proxy_buf + c->proxy_len, sizeof c->proxy_buf - 1 - c->proxy_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_teardown(c, H2_EPROXY, n == 0 ? "proxy closed the connection" :
		    strerror(errno));
		return;
	}
	c->proxy_len += (size_t)n;
	c->proxy_buf[c->proxy_len] = '\0';
	if ((end = strstr(c->proxy_buf, "\r\n\r\n")) == NULL) {
		if (c->proxy_len == sizeof c->proxy_buf - 1)
			client_teardown(c, H2_EPROXY, "proxy reply too long");
		return;
	}
	if ((eol = strstr(c->proxy_buf, "\r\n")) != NULL)
		*eol = '\0';
	if (sscanf(c->proxy_buf, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
		snprintf(c->reason, sizeof c->reason, "proxy: %.120s", c->proxy_buf);
		client_teardown(c, H2_EPROXY, c->reason);
		return;
	}
	/* The server speaks TLS only after our ClientHello: nothing may follow. */
	if ((size_t)(end + 4 - c->proxy_buf) != c->proxy_len) {
		client_teardown(c, H2_EPROXY, "proxy sent data after its reply");
		return;
	}
	client_start_tls(c);
}

/* TCP connect finished (or failed). */
static void
client_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_client *c = arg;
	/* The CONNECT line and Host (2 x 264), and a Basic authorization of two 255s. */
	char request[1536];
	socklen_t len = sizeof(int);
	int error = 0, n;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
		error = errno;
	if (error != 0) {
		client_teardown(c, H2_ECONNECT, strerror(error));
		return;
	}
	if (c->opt.proxy_target == NULL) {
		client_start_tls(c);
		return;
	}
	n = snprintf(request, sizeof request, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n",
	    c->opt.proxy_target, c->opt.proxy_target,
	    c->opt.proxy_authorization != NULL ? "Proxy-Authorization: " : "",
	    c->opt.proxy_authorization != NULL ? c->opt.proxy_authorization : "",
	    c->opt.proxy_authorization != NULL ? "\r\n" : "");
	/* A few hundred bytes always fit an empty socket buffer. */
	if (n <= 0 || (size_t)n >= sizeof request ||
	    send(fd, request, (size_t)n, MSG_NOSIGNAL) != n) {
		OPENSSL_cleanse(request, sizeof request);
		client_teardown(c, H2_EPROXY, "cannot send CONNECT to the proxy");
		return;
	}
	OPENSSL_cleanse(request, sizeof request);	/* it may hold the proxy's password */
	c->state = H2_CLIENT_PROXY;
	event_free(c->io_ev);
	c->io_ev = event_new(c->opt.base, fd, EV_READ | EV_PERSIST, client_proxy_read_cb, c);
	event_add(c->io_ev, NULL);
}

/* Connect timeout, PING schedule, close grace, and deferred closing. */
static void
client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_client *c = arg;
	uint64_t now, idle;

	if (c->close_pending) {
		client_teardown(c, c->close_error, c->reason);
		return;
	}
	switch (c->state) {
	case H2_CLIENT_CONNECTING:
		client_teardown(c, H2_ECONNECT, "connect timed out");
		return;
	case H2_CLIENT_PROXY:
		client_teardown(c, H2_EPROXY, "proxy did not answer CONNECT in time");
		return;
	case H2_CLIENT_HANDSHAKE:
		client_teardown(c, H2_ETLS, "TLS handshake timed out");
		return;
	case H2_CLIENT_SETTINGS:
		client_teardown(c, H2_EPROTO, "no SETTINGS from the server in time");
		return;
	case H2_CLIENT_CLOSING:
		client_teardown(c, 0, "closed");
		return;
	case H2_CLIENT_DEAD:
		return;
	case H2_CLIENT_READY:
	case H2_CLIENT_GOAWAY:
		break;
	}
	if (c->ping_outstanding) {
		snprintf(c->reason, sizeof c->reason, "no PING ACK within %d ms",
		    c->opt.ping_timeout_ms);
		client_teardown(c, H2_ECONNLOST, c->reason);
		return;
	}
	now = h2_now_ms();
	idle = now - c->last_read_ms;
	if (idle + 1 >= (uint64_t)c->opt.ping_idle_ms) {
		nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL);
		c->ping_outstanding = 1;
		timer_add_ms(c->timer_ev, (uint64_t)c->opt.ping_timeout_ms);
		client_schedule_flush(c);
	} else
		timer_add_ms(c->timer_ev, (uint64_t)c->opt.ping_idle_ms - idle);
}

/* Start connecting: see h2_client.h. */
struct h2_client *
h2_client_new(const struct h2_client_options *options)
{
	struct h2_client *c;
	int one = 1, rv;

	c = xcalloc(1, sizeof *c);
	c->opt = *options;
	c->fd = -1;
	c->state = H2_CLIENT_CONNECTING;
	TAILQ_INIT(&c->streams);
	if ((c->timer_ev = evtimer_new(c->opt.base, client_timer_cb, c)) == NULL ||
	    (c->flush_ev = event_new(c->opt.base, -1, 0, client_flush_cb, c)) == NULL)
		fatalx("event_new: out of memory");
	timer_add_ms(c->timer_ev, (uint64_t)c->opt.connect_timeout_ms);

	c->fd = socket(c->opt.addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		client_close_soon(c, H2_ECONNECT, "socket: %s", strerror(errno));
		return c;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	rv = connect(c->fd, c->opt.addr, c->opt.addrlen);
	if (rv != 0 && errno != EINPROGRESS) {
		client_close_soon(c, H2_ECONNECT, "%s", strerror(errno));
		return c;
	}
	/* Writable once connected or failed, immediately when already connected. */
	c->io_ev = event_new(c->opt.base, c->fd, EV_WRITE, client_connect_cb, c);
	event_add(c->io_ev, NULL);
	return c;
}

/* Free a connection, handing back what it still carries: see h2_client.h. */
void
h2_client_free(struct h2_client *c)
{
	struct h2_exchange *ex;

	if (c == NULL)
		return;
	c->state = H2_CLIENT_DEAD;
	while ((ex = TAILQ_FIRST(&c->streams)) != NULL) {
		client_detach(c, ex);
		client_hand_back(c, ex, H2_ECANCELLED);
	}
	if (c->session != NULL)
		nghttp2_session_del(c->session);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	else {
		if (c->ssl != NULL)
			SSL_free(c->ssl);
		if (c->fd >= 0)
			close(c->fd);
	}
	if (c->io_ev != NULL)
		event_free(c->io_ev);
	event_free(c->timer_ev);
	event_free(c->flush_ev);
	free(c);
}

/* Streams that may be opened now. */
unsigned
h2_client_free_slots(const struct h2_client *c)
{
	if (c->state != H2_CLIENT_READY || c->shutdown || c->close_pending)
		return 0;
	return c->max_streams > c->nstreams ? c->max_streams - c->nstreams : 0;
}

/* Connecting or ready, and not going away. */
int
h2_client_is_accepting(const struct h2_client *c)
{
	return c->state <= H2_CLIENT_READY && !c->shutdown && !c->close_pending;
}

/* Has SETTINGS arrived (and the connection not died since)? */
int
h2_client_is_ready(const struct h2_client *c)
{
	return c->state >= H2_CLIENT_READY && c->state != H2_CLIENT_DEAD;
}

/* Did the connection ever become ready? */
int
h2_client_was_ready(const struct h2_client *c)
{
	return c->ever_ready;
}

/* Since when the connection has had no stream (h2_now_ms()); 0 while it has some. */
uint64_t
h2_client_idle_since(const struct h2_client *c)
{
	return c->nstreams == 0 ? c->idle_since : 0;
}

/* Streams open, cancelled ones still closing included. */
unsigned
h2_client_streams(const struct h2_client *c)
{
	return c->nstreams;
}

/* HTTP answers received on this connection. */
uint64_t
h2_client_responses(const struct h2_client *c)
{
	return c->responses;
}

/* The stream limit in force. */
uint32_t
h2_client_max_streams(const struct h2_client *c)
{
	return c->max_streams;
}

/* Open a stream for an exchange: see h2_client.h. */
int
h2_client_submit(struct h2_client *c, struct h2_exchange *ex, const nghttp2_nv *nva,
    size_t nvlen)
{
	nghttp2_data_provider provider;
	int32_t id;

	if (h2_client_free_slots(c) == 0)
		return H2_EREFUSED;
	ex->body_sent = 0;
	provider.source.ptr = ex;
	provider.read_callback = client_body_read;
	id = nghttp2_submit_request(c->session, NULL, nva, nvlen,
	    ex->request->body_len > 0 ? &provider : NULL, ex);
	if (id < 0) {
		/* Stream IDs used up (or GOAWAY): retire this connection. */
		if (c->state == H2_CLIENT_READY)
			c->state = H2_CLIENT_GOAWAY;
		client_schedule_flush(c);
		return H2_EREFUSED;
	}
	ex->stream_id = id;
	ex->client = c;
	TAILQ_INSERT_TAIL(&c->streams, ex, entry);
	c->nstreams++;
	/* About a billion requests on one connection: let a fresh one take over. */
	if (id >= INT32_MAX - 2 && c->state == H2_CLIENT_READY)
		c->state = H2_CLIENT_GOAWAY;
	client_schedule_flush(c);
	return 0;
}

/* Reset a completed exchange's stream; it comes back through done(H2_ECANCELLED). */
void
h2_client_cancel(struct h2_client *c, struct h2_exchange *ex)
{
	if (c->session == NULL || c->state == H2_CLIENT_DEAD)
		return;
	nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, ex->stream_id,
	    NGHTTP2_CANCEL);
	client_schedule_flush(c);
}

/* Stop taking streams; GOAWAY and close when idle. */
void
h2_client_shutdown(struct h2_client *c)
{
	if (c->shutdown || c->state == H2_CLIENT_DEAD)
		return;
	c->shutdown = 1;
	if (c->state < H2_CLIENT_SETTINGS)
		client_close_soon(c, 0, "shut down while connecting");
	else
		client_schedule_flush(c);
}

/* Look up a kept response header. */
const char *
h2_response_header(const struct h2_response *r, const char *name)
{
	unsigned i;

	for (i = 0; i < r->nheaders; i++) {
		if (strcmp(r->header_bytes + r->header_at[i][0], name) == 0)
			return r->header_bytes + r->header_at[i][1];
	}
	return NULL;
}

/* Describe an H2_E* code. */
const char *
h2_strerror(int error)
{
	switch (error) {
	case H2_OK:
		return "success";
	case H2_EINVAL:
		return "invalid argument";
	case H2_EQUEUEFULL:
		return "request queue full";
	case H2_ESHUTDOWN:
		return "pool shutting down";
	case H2_ERESOLVE:
		return "cannot resolve host";
	case H2_ECONNECT:
		return "connect failed";
	case H2_ETLS:
		return "TLS handshake failed";
	case H2_EPROXY:
		return "proxy CONNECT failed";
	case H2_EPROTO:
		return "HTTP/2 protocol error";
	case H2_ETIMEDOUT:
		return "request timed out";
	case H2_ECONNLOST:
		return "connection lost";
	case H2_ESTREAMRESET:
		return "stream reset by server";
	case H2_EREFUSED:
		return "request not processed";
	case H2_ECANCELLED:
		return "request cancelled";
	}
	return "unknown h2 error";
}
