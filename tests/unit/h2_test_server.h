/*
 * Test-only helpers for test_h2: a TLS HTTP/2 server and an HTTP CONNECT proxy
 * running on the test's own event base, and a throwaway PKI written with OpenSSL.
 *
 * The server answers "ok <path>" with 200 (paths /status/NNN answer NNN with a
 * JSON body and retry-after; /big answers 20000 bytes; /slow/... waits
 * slow_delay_ms) and can misbehave on purpose: advertise and change
 * SETTINGS_MAX_CONCURRENT_STREAMS, send GOAWAY mid-batch, refuse streams, delay,
 * drop the connection, ignore PINGs. It records what a test asserts on.
 */
#ifndef PUSHRELAY_H2_TEST_SERVER_H
#define PUSHRELAY_H2_TEST_SERVER_H

#include <stdint.h>

struct event_base;

#define H2_TEST_PATHS 4096	/* /r/<n> paths counted per n */

struct h2_test_server_options {
	uint32_t max_streams;		/* advertised; 0: no limit sent */
	uint32_t raise_to;		/* advertised after the first answer; 0: never */
	unsigned goaway_after;		/* per connection: GOAWAY at the Nth request */
	unsigned refuse_first;		/* RST_STREAM(REFUSED_STREAM) the first N requests */
	unsigned drop_after;		/* per connection: close at the Nth request */
	int delay_ms;			/* answer every request after this long */
	int slow_delay_ms;		/* answer /slow/ paths after this long */
	int no_ping_ack;
	int deferred_listen;		/* bind now, listen on h2_test_server_listen() */
	const char *client_ca_file;	/* require a client certificate from this CA */
};

struct h2_test_server {
	struct event_base *base;
	struct h2_test_server_options opt;
	int port;
	/* What happened. */
	unsigned connections;		/* accepted TLS connections */
	unsigned requests;		/* processed (answered or being answered) */
	unsigned refused;
	unsigned ignored;		/* above our GOAWAY's last_stream_id */
	unsigned max_open;		/* most streams open at once on one connection */
	unsigned max_open_at_raise;	/* max_open when raise_to was sent */
	unsigned max_open_after_ack;	/* max open at a new stream after a change was ACKed */
	unsigned rst_cancel;		/* RST_STREAM(CANCEL) received */
	unsigned pings;
	unsigned goaways_received;
	unsigned path_count[H2_TEST_PATHS];
	char client_cn[128];		/* subject CN of the last client certificate */
	void *priv;
};

struct h2_test_server *h2_test_server_new(struct event_base *base, const char *cert_file,
    const char *key_file, const struct h2_test_server_options *options);
void h2_test_server_listen(struct h2_test_server *server);
/* Advertise a new limit to every connection now. */
void h2_test_server_set_max_streams(struct h2_test_server *server, uint32_t max_streams);
void h2_test_server_free(struct h2_test_server *server);

struct h2_test_proxy {
	int port;
	int reply_status;		/* 200 tunnels; anything else refuses */
	unsigned connects;
	char last_target[128];
	char last_authorization[256];	/* Proxy-Authorization of the last CONNECT, or "" */
	const char *require_authorization;	/* answer 407 to a CONNECT without it */
	void *priv;
};

struct h2_test_proxy *h2_test_proxy_new(struct event_base *base, int reply_status);
void h2_test_proxy_free(struct h2_test_proxy *proxy);

/*
 * Write a PKI into dir: ca.pem; server.pem/server.key (localhost, 127.0.0.1, from
 * ca); rogue.pem/rogue.key (localhost, from another CA); client.pem/client.key
 * (CN pushrelay-test-client, from ca); client.p12 (password "secret").
 * Returns 0 or -1.
 */
int h2_test_certs_make(const char *dir);

#endif
