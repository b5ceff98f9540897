/* Test-only TLS HTTP/2 server, CONNECT proxy and PKI: see h2_test_server.h. */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "h2_test_server.h"

struct ts_conn;

struct ts_stream {
	TAILQ_ENTRY(ts_stream) entry;
	struct ts_conn *conn;
	int32_t id;
	char path[256];
	struct event *delay_ev;
	char body[20480];
	size_t body_len;
	size_t body_off;
	int status;
};

struct ts_conn {
	TAILQ_ENTRY(ts_conn) entry;
	struct h2_test_server *srv;
	struct bufferevent *bev;
	nghttp2_session *session;
	unsigned open;
	unsigned requests;
	int goaway_sent;
	int32_t goaway_last;
	int await_ack;
	int acked;
	int drop;
	TAILQ_HEAD(, ts_stream) streams;
};
TAILQ_HEAD(ts_conn_list, ts_conn);

struct ts_priv {
	SSL_CTX *ctx;
	struct evconnlistener *listener;
	int fd;
	struct ts_conn_list conns;
	int raised;
};

static void ts_conn_free(struct ts_conn *);

/* Write whatever nghttp2 has to send. */
static void
ts_flush(struct ts_conn *conn)
{
	const uint8_t *data;
	ssize_t n;

	while ((n = nghttp2_session_mem_send(conn->session, &data)) > 0)
		bufferevent_write(conn->bev, data, (size_t)n);
}

/* Close when nghttp2 is done with the session and everything is written. */
static void
ts_maybe_close(struct ts_conn *conn)
{
	if (conn->drop || (!nghttp2_session_want_read(conn->session) &&
	    !nghttp2_session_want_write(conn->session) &&
	    evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0))
		ts_conn_free(conn);
}

/* Feed a response body. */
static ssize_t
ts_body_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
    uint32_t *flags, nghttp2_data_source *source, void *arg)
{
	struct ts_stream *s = source->ptr;
	size_t n = s->body_len - s->body_off;

	if (n > length)
		n = length;
	memcpy(buf, s->body + s->body_off, n);
	s->body_off += n;
	if (s->body_off == s->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Submit the answer for stream s. */
static void
ts_respond(struct ts_stream *s)
{
	struct ts_conn *conn = s->conn;
	struct ts_priv *priv = conn->srv->priv;
	nghttp2_settings_entry raise;
	nghttp2_data_provider provider;
	nghttp2_nv nv[4];
	char status[8], apns_id[64];
	size_t n = 0;

	snprintf(status, sizeof status, "%d", s->status);
	snprintf(apns_id, sizeof apns_id, "id-%d", s->id);
#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), 0 }
	nghttp2_nv st = NV(":status", status), id = NV("apns-id", apns_id);
	nghttp2_nv ct = NV("content-type", s->status == 200 ? "text/plain" : "application/json");
	nghttp2_nv ra = NV("retry-after", "7");
#undef NV
	nv[n++] = st;
	nv[n++] = id;
	nv[n++] = ct;
	if (s->status != 200)
		nv[n++] = ra;
	provider.source.ptr = s;
	provider.read_callback = ts_body_read;
	nghttp2_submit_response(conn->session, s->id, nv, n, &provider);
	if (conn->srv->opt.raise_to != 0 && !priv->raised) {
		priv->raised = 1;
		conn->srv->max_open_at_raise = conn->srv->max_open;
		raise.settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
		raise.value = conn->srv->opt.raise_to;
		nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, &raise, 1);
	}
}

/* A delayed answer is due. */
static void
ts_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ts_stream *s = arg;
	struct ts_conn *conn = s->conn;

	ts_respond(s);
	ts_flush(conn);
}

/* A whole request arrived. */
static void
ts_on_request(struct ts_conn *conn, struct ts_stream *s)
{
	struct h2_test_server *srv = conn->srv;
	struct timeval tv;
	unsigned n;
	int delay;

	if (conn->goaway_sent && s->id > conn->goaway_last) {
		srv->ignored++;
		return;
	}
	conn->requests++;
	if (srv->opt.drop_after != 0 && conn->requests == srv->opt.drop_after) {
		conn->drop = 1;
		return;
	}
	if (srv->refused < srv->opt.refuse_first) {
		srv->refused++;
		nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, s->id,
		    NGHTTP2_REFUSED_STREAM);
		return;
	}
	if (srv->opt.goaway_after != 0 && conn->requests == srv->opt.goaway_after) {
		conn->goaway_sent = 1;
		conn->goaway_last = s->id;
		nghttp2_submit_goaway(conn->session, NGHTTP2_FLAG_NONE, s->id,
		    NGHTTP2_NO_ERROR, (const uint8_t *)"{\"reason\":\"Test\"}", 17);
	}
	srv->requests++;
	if (sscanf(s->path, "/r/%u", &n) == 1 && n < H2_TEST_PATHS)
		srv->path_count[n]++;

	s->status = 200;
	if (sscanf(s->path, "/status/%d", &s->status) == 1)
		s->body_len = (size_t)snprintf(s->body, sizeof s->body,
		    "{\"reason\":\"TooManyRequests\"}");
	else if (strcmp(s->path, "/big") == 0) {
		memset(s->body, 'x', 20000);
		s->body_len = 20000;
	} else
		s->body_len = (size_t)snprintf(s->body, sizeof s->body, "ok %s", s->path);

	delay = strncmp(s->path, "/slow/", 6) == 0 ? srv->opt.slow_delay_ms : srv->opt.delay_ms;
	if (delay > 0) {
		s->delay_ev = evtimer_new(srv->base, ts_delay_cb, s);
		tv.tv_sec = delay / 1000;
		tv.tv_usec = (delay % 1000) * 1000;
		evtimer_add(s->delay_ev, &tv);
	} else
		ts_respond(s);
}

/* A request stream opens: count it. */
static int
ts_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct ts_conn *conn = arg;
	struct ts_stream *s;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = calloc(1, sizeof *s);
	s->conn = conn;
	TAILQ_INSERT_TAIL(&conn->streams, s, entry);
	s->id = frame->hd.stream_id;
	nghttp2_session_set_stream_user_data(session, s->id, s);
	conn->open++;
	if (conn->open > conn->srv->max_open)
		conn->srv->max_open = conn->open;
	if (conn->acked && conn->open > conn->srv->max_open_after_ack)
		conn->srv->max_open_after_ack = conn->open;
	return 0;
}

/* Keep the :path. */
static int
ts_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *arg)
{
	struct ts_stream *s;

	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (s != NULL && namelen == 5 && memcmp(name, ":path", 5) == 0 &&
	    valuelen < sizeof s->path) {
		memcpy(s->path, value, valuelen);
		s->path[valuelen] = '\0';
	}
	return 0;
}

/* Requests, resets, pings, GOAWAYs and SETTINGS ACKs. */
static int
ts_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
	struct ts_conn *conn = arg;
	struct ts_stream *s;

	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
	case NGHTTP2_DATA:
		if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
			break;
		s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
		if (s != NULL)
			ts_on_request(conn, s);
		break;
	case NGHTTP2_RST_STREAM:
		if (frame->rst_stream.error_code == NGHTTP2_CANCEL)
			conn->srv->rst_cancel++;
		break;
	case NGHTTP2_PING:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
			conn->srv->pings++;
		break;
	case NGHTTP2_GOAWAY:
		conn->srv->goaways_received++;
		break;
	case NGHTTP2_SETTINGS:
		if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && conn->await_ack) {
			conn->await_ack = 0;
			conn->acked = 1;
		}
		break;
	}
	return 0;
}

/* A stream closed: uncount it. */
static int
ts_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
    void *arg)
{
	struct ts_conn *conn = arg;
	struct ts_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);

	if (s == NULL)
		return 0;
	conn->open--;
	TAILQ_REMOVE(&conn->streams, s, entry);
	if (s->delay_ev != NULL)
		event_free(s->delay_ev);
	free(s);
	return 0;
}

/* Close a connection and free its streams. */
static void
ts_conn_free(struct ts_conn *conn)
{
	struct ts_priv *priv = conn->srv->priv;
	struct ts_stream *s;

	TAILQ_REMOVE(&priv->conns, conn, entry);
	/* nghttp2_session_del() calls no stream close callbacks. */
	while ((s = TAILQ_FIRST(&conn->streams)) != NULL) {
		TAILQ_REMOVE(&conn->streams, s, entry);
		if (s->delay_ev != NULL)
			event_free(s->delay_ev);
		free(s);
	}
	if (conn->session != NULL)
		nghttp2_session_del(conn->session);
	bufferevent_free(conn->bev);
	free(conn);
}

/* Bytes from the client. */
static void
ts_read_cb(struct bufferevent *bev, void *arg)
{
	struct ts_conn *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	ssize_t rv;

	rv = nghttp2_session_mem_recv(conn->session, evbuffer_pullup(in, -1), len);
	evbuffer_drain(in, len);
	if (rv < 0) {
		ts_conn_free(conn);
		return;
	}
	ts_flush(conn);
	ts_maybe_close(conn);
}

/* Output drained: close if the session is over. */
static void
ts_write_cb(struct bufferevent *bev, void *arg)
{
	struct ts_conn *conn = arg;

	if (conn->session != NULL)
		ts_maybe_close(conn);
}

/* Handshake done (start HTTP/2) or connection gone. */
static void
ts_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ts_conn *conn = arg;
	struct h2_test_server *srv = conn->srv;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *option;
	nghttp2_settings_entry settings[1];
	X509 *peer;
	size_t n = 0;

	if (!(what & BEV_EVENT_CONNECTED)) {
		ts_conn_free(conn);
		return;
	}
	srv->connections++;
	if ((peer = SSL_get1_peer_certificate(bufferevent_openssl_get_ssl(bev))) != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
		    srv->client_cn, sizeof srv->client_cn);
		X509_free(peer);
	}
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, ts_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, ts_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, ts_on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, ts_on_stream_close);
	nghttp2_option_new(&option);
	if (srv->opt.no_ping_ack)
		nghttp2_option_set_no_auto_ping_ack(option, 1);
	nghttp2_session_server_new2(&conn->session, cbs, conn, option);
	nghttp2_option_del(option);
	nghttp2_session_callbacks_del(cbs);
	if (srv->opt.max_streams != 0) {
		settings[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
		settings[0].value = srv->opt.max_streams;
		n = 1;
	}
	nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, n);
	ts_flush(conn);
}

/* Choose h2 by ALPN, or fail the handshake. */
static int
ts_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h2[] = "\x02h2";

	if (SSL_select_next_proto((unsigned char **)out, outlen, h2, 3, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

/* A client connects: TLS on the socket. */
static void
ts_accept_cb(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
    int socklen, void *arg)
{
	struct h2_test_server *srv = arg;
	struct ts_priv *priv = srv->priv;
	struct ts_conn *conn = calloc(1, sizeof *conn);
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	conn->srv = srv;
	TAILQ_INIT(&conn->streams);
	conn->bev = bufferevent_openssl_socket_new(srv->base, fd, SSL_new(priv->ctx),
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	TAILQ_INSERT_TAIL(&priv->conns, conn, entry);
	bufferevent_setcb(conn->bev, ts_read_cb, ts_write_cb, ts_event_cb, conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
}

/* Start a server on 127.0.0.1 and a free port. */
struct h2_test_server *
h2_test_server_new(struct event_base *base, const char *cert_file, const char *key_file,
    const struct h2_test_server_options *options)
{
	struct h2_test_server *srv = calloc(1, sizeof *srv);
	struct ts_priv *priv = calloc(1, sizeof *priv);
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;

	srv->base = base;
	srv->opt = *options;
	srv->priv = priv;
	TAILQ_INIT(&priv->conns);
	priv->ctx = SSL_CTX_new(TLS_server_method());
	if (SSL_CTX_use_certificate_chain_file(priv->ctx, cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(priv->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "test server: cannot load %s / %s\n", cert_file, key_file);
		abort();
	}
	SSL_CTX_set_alpn_select_cb(priv->ctx, ts_alpn_select, NULL);
	if (options->client_ca_file != NULL) {
		SSL_CTX_load_verify_locations(priv->ctx, options->client_ca_file, NULL);
		SSL_CTX_set_verify(priv->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		    NULL);
	}

	priv->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(priv->fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    getsockname(priv->fd, (struct sockaddr *)&sin, &len) != 0)
		abort();
	srv->port = ntohs(sin.sin_port);
	if (!options->deferred_listen)
		h2_test_server_listen(srv);
	return srv;
}

/* Start accepting (connections were refused until now). */
void
h2_test_server_listen(struct h2_test_server *srv)
{
	struct ts_priv *priv = srv->priv;

	priv->listener = evconnlistener_new(srv->base, ts_accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128, priv->fd);
	if (priv->listener == NULL)
		abort();
}

/* Advertise a new stream limit on every connection. */
void
h2_test_server_set_max_streams(struct h2_test_server *srv, uint32_t max_streams)
{
	struct ts_priv *priv = srv->priv;
	struct ts_conn *conn;
	nghttp2_settings_entry entry = { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams };

	srv->max_open_after_ack = 0;
	TAILQ_FOREACH(conn, &priv->conns, entry) {
		if (conn->session == NULL)
			continue;
		conn->await_ack = 1;
		conn->acked = 0;
		nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, &entry, 1);
		ts_flush(conn);
	}
}

/* Close everything. */
void
h2_test_server_free(struct h2_test_server *srv)
{
	struct ts_priv *priv = srv->priv;

	while (!TAILQ_EMPTY(&priv->conns))
		ts_conn_free(TAILQ_FIRST(&priv->conns));
	if (priv->listener != NULL)
		evconnlistener_free(priv->listener);
	else
		close(priv->fd);
	SSL_CTX_free(priv->ctx);
	free(priv);
	free(srv);
}

/* ---- CONNECT proxy ---- */

struct tp_tunnel {
	TAILQ_ENTRY(tp_tunnel) entry;
	struct h2_test_proxy *proxy;
	struct bufferevent *client;
	struct bufferevent *server;
	int established;
};

struct tp_priv {
	struct evconnlistener *listener;
	TAILQ_HEAD(, tp_tunnel) tunnels;
};

/* Close both ends of a tunnel. */
static void
tp_tunnel_free(struct tp_tunnel *t)
{
	struct tp_priv *priv = t->proxy->priv;

	TAILQ_REMOVE(&priv->tunnels, t, entry);
	if (t->client != NULL)
		bufferevent_free(t->client);
	if (t->server != NULL)
		bufferevent_free(t->server);
	free(t);
}

/* Copy bytes across the tunnel. */
static void
tp_relay_cb(struct bufferevent *from, void *arg)
{
	struct tp_tunnel *t = arg;
	struct bufferevent *to = from == t->client ? t->server : t->client;

	evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
}

/* Target connected (answer 200 and relay), or an end closed. */
static void
tp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tp_tunnel *t = arg;

	if (what & BEV_EVENT_CONNECTED) {
		evbuffer_add_printf(bufferevent_get_output(t->client),
		    "HTTP/1.1 200 Connection established\r\n\r\n");
		t->established = 1;
		bufferevent_setcb(t->client, tp_relay_cb, NULL, tp_event_cb, t);
		bufferevent_setcb(t->server, tp_relay_cb, NULL, tp_event_cb, t);
		bufferevent_enable(t->server, EV_READ | EV_WRITE);
		return;
	}
	tp_tunnel_free(t);
}

/* Read the CONNECT request head, then connect to the target or refuse. */
static void
tp_request_cb(struct bufferevent *bev, void *arg)
{
	struct tp_tunnel *t = arg;
	struct h2_test_proxy *proxy = t->proxy;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end;
	struct sockaddr_storage ss;
	int sslen = sizeof ss;
	char *head, *auth, target[128];

	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0)
		return;
	head = malloc((size_t)end.pos + 5);
	evbuffer_remove(in, head, (size_t)end.pos + 4);
	head[end.pos + 4] = '\0';
	if (sscanf(head, "CONNECT %127s HTTP/1.1", target) != 1) {
		free(head);
		tp_tunnel_free(t);
		return;
	}
	proxy->last_authorization[0] = '\0';
	if ((auth = strcasestr(head, "\r\nProxy-Authorization: ")) != NULL) {
		auth += strlen("\r\nProxy-Authorization: ");
		snprintf(proxy->last_authorization, sizeof proxy->last_authorization, "%.*s",
		    (int)strcspn(auth, "\r\n"), auth);
	}
	free(head);
	proxy->connects++;
	snprintf(proxy->last_target, sizeof proxy->last_target, "%s", target);
	if (proxy->require_authorization != NULL &&
	    strcmp(proxy->last_authorization, proxy->require_authorization) != 0) {
		evbuffer_add_printf(bufferevent_get_output(bev),
		    "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
		bufferevent_disable(bev, EV_READ);
		return;
	}
	if (proxy->reply_status != 200) {
		evbuffer_add_printf(bufferevent_get_output(bev),
		    "HTTP/1.1 %d Forbidden\r\nContent-Length: 0\r\n\r\n", proxy->reply_status);
		bufferevent_disable(bev, EV_READ);
		return;
	}
	if (evutil_parse_sockaddr_port(target, (struct sockaddr *)&ss, &sslen) != 0) {
		tp_tunnel_free(t);
		return;
	}
	t->server = bufferevent_socket_new(bufferevent_get_base(bev), -1,
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(t->server, NULL, NULL, tp_event_cb, t);
	bufferevent_disable(bev, EV_READ);
	if (bufferevent_socket_connect(t->server, (struct sockaddr *)&ss, sslen) != 0)
		tp_tunnel_free(t);
	else
		bufferevent_enable(bev, EV_READ);
}

/* The client left before the tunnel was up. */
static void
tp_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	tp_tunnel_free(arg);
}

/* A client connects to the proxy. */
static void
tp_accept_cb(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
    int socklen, void *arg)
{
	struct h2_test_proxy *proxy = arg;
	struct tp_priv *priv = proxy->priv;
	struct tp_tunnel *t = calloc(1, sizeof *t);
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	t->proxy = proxy;
	TAILQ_INSERT_TAIL(&priv->tunnels, t, entry);
	t->client = bufferevent_socket_new(evconnlistener_get_base(listener), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(t->client, tp_request_cb, NULL, tp_client_event_cb, t);
	bufferevent_enable(t->client, EV_READ | EV_WRITE);
}

/* Start a CONNECT proxy on 127.0.0.1 and a free port. */
struct h2_test_proxy *
h2_test_proxy_new(struct event_base *base, int reply_status)
{
	struct h2_test_proxy *proxy = calloc(1, sizeof *proxy);
	struct tp_priv *priv = calloc(1, sizeof *priv);
	struct evconnlistener *listener;
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listener = evconnlistener_new_bind(base, tp_accept_cb, proxy,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin, sizeof sin);
	if (listener == NULL)
		abort();
	getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&sin, &len);
	proxy->port = ntohs(sin.sin_port);
	proxy->reply_status = reply_status;
	priv->listener = listener;
	TAILQ_INIT(&priv->tunnels);
	proxy->priv = priv;
	return proxy;
}

/* Close the proxy and its tunnels. */
void
h2_test_proxy_free(struct h2_test_proxy *proxy)
{
	struct tp_priv *priv = proxy->priv;

	while (!TAILQ_EMPTY(&priv->tunnels))
		tp_tunnel_free(TAILQ_FIRST(&priv->tunnels));
	evconnlistener_free(priv->listener);
	free(priv);
	free(proxy);
}

/* ---- PKI ---- */

/* Add one X.509v3 extension from its config text. */
static int
cert_add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	int ok;

	if (ext == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A certificate for key, signed by issuer (self-signed when NULL). */
static X509 *
cert_make(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int is_ca,
    const char *san, long serial)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
	    -1, 0);
	X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	if (!cert_add_ext(x, &v3, NID_basic_constraints,
	    is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") ||
	    !cert_add_ext(x, &v3, NID_key_usage, is_ca ? "critical,keyCertSign,cRLSign" :
	    "critical,digitalSignature") ||
	    !cert_add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
	    (!is_ca && !cert_add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth")) ||
	    (san != NULL && !cert_add_ext(x, &v3, NID_subject_alt_name, san)) ||
	    X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) == 0) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Write a certificate or a key as PEM. */
static int
pem_write(const char *dir, const char *file, X509 *cert, EVP_PKEY *key)
{
	char path[4096];
	FILE *f;
	int ok;

	snprintf(path, sizeof path, "%s/%s", dir, file);
	if ((f = fopen(path, "w")) == NULL)
		return 0;
	ok = cert != NULL ? PEM_write_X509(f, cert) :
	    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	return ok;
}

/* Write the test PKI: see h2_test_server.h. */
int
h2_test_certs_make(const char *dir)
{
	EVP_PKEY *ca_key, *other_key, *server_key, *rogue_key, *client_key;
	X509 *ca, *other, *server, *rogue, *client;
	PKCS12 *p12;
	char path[4096];
	FILE *f;
	int ok;

	ca_key = EVP_EC_gen("P-256");
	other_key = EVP_EC_gen("P-256");
	server_key = EVP_EC_gen("P-256");
	rogue_key = EVP_EC_gen("P-256");
	client_key = EVP_EC_gen("P-256");
	ca = cert_make(ca_key, "pushrelay test CA", NULL, NULL, 1, NULL, 1);
	other = cert_make(other_key, "unknown test CA", NULL, NULL, 1, NULL, 2);
	server = cert_make(server_key, "localhost", ca, ca_key, 0,
	    "DNS:localhost,IP:127.0.0.1", 3);
	rogue = cert_make(rogue_key, "localhost", other, other_key, 0,
	    "DNS:localhost,IP:127.0.0.1", 4);
	client = cert_make(client_key, "pushrelay-test-client", ca, ca_key, 0, NULL, 5);
	ok = ca != NULL && other != NULL && server != NULL && rogue != NULL && client != NULL;
	ok = ok && pem_write(dir, "ca.pem", ca, NULL) &&
	    pem_write(dir, "server.pem", server, NULL) &&
	    pem_write(dir, "server.key", NULL, server_key) &&
	    pem_write(dir, "rogue.pem", rogue, NULL) &&
	    pem_write(dir, "rogue.key", NULL, rogue_key) &&
	    pem_write(dir, "client.pem", client, NULL) &&
	    pem_write(dir, "client.key", NULL, client_key);
	if (ok) {
		p12 = PKCS12_create("secret", "client", client_key, client, NULL, 0, 0, 0, 0, 0);
		snprintf(path, sizeof path, "%s/client.p12", dir);
		ok = p12 != NULL && (f = fopen(path, "wb")) != NULL;
		if (ok) {
			ok = i2d_PKCS12_fp(f, p12) == 1;
			fclose(f);
		}
		PKCS12_free(p12);
	}
	X509_free(ca);
	X509_free(other);
	X509_free(server);
	X509_free(rogue);
	X509_free(client);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(server_key);
	EVP_PKEY_free(rogue_key);
	EVP_PKEY_free(client_key);
	return ok ? 0 : -1;
}
