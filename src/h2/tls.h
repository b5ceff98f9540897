/*
 * TLS client contexts for the HTTP/2 connections to APNs and FCM.
 *
 * Every context speaks TLS 1.2 or later, offers only ALPN "h2" and always verifies
 * the server: SSL_VERIFY_PEER against a CA file or the system store, and the
 * certificate's name against the name the connection was made for (see
 * tls_client_prepare()). A client certificate (APNs certificate authentication)
 * can come from PEM files or from a PKCS#12 bundle.
 *
 * Contexts are made at start-up and on reload by the providers (apns.c, fcm.c), on
 * the event loop; the h2 connections use them there.
 */
#ifndef PUSHRELAY_TLS_H
#define PUSHRELAY_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

enum tls_error {
	TLS_OK = 0,
	TLS_EINVAL = -1,	/* contradictory options (PEM and PKCS#12, key without cert) */
	TLS_ECA = -2,		/* the CA file or the system store could not be loaded */
	TLS_ECERT = -3,		/* the client certificate could not be loaded */
	TLS_EKEY = -4,		/* the private key could not be loaded or does not match */
	TLS_EPKCS12 = -5,	/* the PKCS#12 file could not be read or decrypted */
	TLS_ESSL = -6,		/* OpenSSL refused to build the context */
};

struct tls_client_options {
	const char *ca_file;		/* PEM bundle to trust; NULL: the system store */
	const char *cert_file;		/* client certificate chain (PEM), optional */
	const char *key_file;		/* its private key (PEM); NULL: read from cert_file */
	const char *pkcs12_file;	/* client certificate and key as PKCS#12 instead */
	const char *pkcs12_password;	/* NULL: empty password */
};

/*
 * Build a client context. Returns 0 and sets *out (free with SSL_CTX_free()), or a
 * negative TLS_E* code with a message naming the file and OpenSSL's reason in err.
 */
int tls_client_ctx_new(const struct tls_client_options *options, SSL_CTX **out, char *err,
    size_t errlen);

/*
 * Set the name a new connection must prove: SNI and the certificate host check for a
 * DNS name, the certificate IP check (and no SNI) for an IP literal. Returns 0 or
 * TLS_EINVAL.
 */
int tls_client_prepare(SSL *ssl, const char *server_name);

/*
 * Why a handshake failed, for logs and callers: the certificate verification reason
 * ("certificate has expired", "hostname mismatch", ...) when verification failed,
 * else OpenSSL's error text for ssl_error (0: "handshake failed").
 */
const char *tls_failure_reason(const SSL *ssl, unsigned long ssl_error, char *buf,
    size_t len);

const char *tls_strerror(int error);

#endif
