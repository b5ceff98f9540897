/* TLS client contexts: TLS 1.2+, ALPN h2, verification always on. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "secret_file.h"
#include "tls.h"

/* A PKCS#12 bundle or a PEM key is a few kB; refuse what cannot be one. */
#define TLS_SECRET_FILE_MAX (1024 * 1024)

static const unsigned char tls_alpn_h2[] = "\x02h2";

/* Format "what file: OpenSSL reason" into err and clear OpenSSL's error queue. */
static int
tls_fail(int code, char *err, size_t errlen, const char *what, const char *file)
{
	char reason[256];
	unsigned long e = ERR_peek_last_error();

	if (e != 0)
		ERR_error_string_n(e, reason, sizeof reason);
	else
		snprintf(reason, sizeof reason, "unknown error");
	ERR_clear_error();
	if (err != NULL && errlen > 0) {
		if (file != NULL)
			snprintf(err, errlen, "%s %s: %s", what, file, reason);
		else
			snprintf(err, errlen, "%s: %s", what, reason);
	}
	return code;
}

/*
 * A secret file (a PKCS#12 bundle, a client key) in memory, through the one
 * secret-file reader: the copy is wiped when the BIO's owner frees it.
 */
static BIO *
tls_secret_bio(const char *file, const char *what, struct secret_file *copy, int code,
    char *err, size_t errlen)
{
	char why[128];
	BIO *bio;

	if (secret_file_read(file, NULL, TLS_SECRET_FILE_MAX, copy, why, sizeof why) != 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "cannot read %s %s: %s", what, file, why);
		return NULL;
	}
	if ((bio = BIO_new_mem_buf(copy->data, (int)copy->len)) == NULL) {
		secret_file_free(copy);
		tls_fail(code, err, errlen, "cannot read", file);
	}
	return bio;
}

/* Load a PKCS#12 bundle as the client certificate, its key and its chain. */
static int
tls_load_pkcs12(SSL_CTX *ctx, const char *file, const char *password, char *err,
    size_t errlen)
{
	struct secret_file copy;
	BIO *bio;
	PKCS12 *p12;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *chain = NULL;
	int rc = TLS_OK;

	if ((bio = tls_secret_bio(file, "PKCS#12 file", &copy, TLS_EPKCS12, err,
	    errlen)) == NULL)
		return TLS_EPKCS12;
	p12 = d2i_PKCS12_bio(bio, NULL);
	BIO_free(bio);
	secret_file_free(&copy);
	if (p12 == NULL)
		return tls_fail(TLS_EPKCS12, err, errlen, "cannot parse PKCS#12 file", file);
	if (!PKCS12_parse(p12, password != NULL ? password : "", &key, &cert, &chain)) {
		PKCS12_free(p12);
		return tls_fail(TLS_EPKCS12, err, errlen, "cannot decrypt PKCS#12 file", file);
	}
	PKCS12_free(p12);
	if (cert == NULL || key == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "PKCS#12 file %s lacks a certificate or a key",
			    file);
		rc = TLS_EPKCS12;
	} else if (SSL_CTX_use_cert_and_key(ctx, cert, key, chain, 1) != 1)
		rc = tls_fail(TLS_EKEY, err, errlen, "PKCS#12 certificate and key rejected",
		    file);
	X509_free(cert);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

/* Load the client's PEM private key. */
static int
tls_load_key(SSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
	struct secret_file copy;
	EVP_PKEY *key;
	BIO *bio;
	int ok;

	if ((bio = tls_secret_bio(file, "client key", &copy, TLS_EKEY, err, errlen)) == NULL)
		return TLS_EKEY;
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	secret_file_free(&copy);
	ok = key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1;
	EVP_PKEY_free(key);
	return ok ? TLS_OK : tls_fail(TLS_EKEY, err, errlen, "cannot load client key", file);
}

/* Build a client context: see tls.h. */
int
tls_client_ctx_new(const struct tls_client_options *options, SSL_CTX **out, char *err,
    size_t errlen)
{
	SSL_CTX *ctx;
	const char *key_file;
	int rc;

	*out = NULL;
	if (options->pkcs12_file != NULL && options->cert_file != NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "use either a PEM certificate or a PKCS#12 file, not both");
		return TLS_EINVAL;
	}
	if (options->key_file != NULL && options->cert_file == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "a client key needs a client certificate");
		return TLS_EINVAL;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return tls_fail(TLS_ESSL, err, errlen, "cannot create TLS context", NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Unlike most of OpenSSL, set_alpn_protos returns 0 on success. */
	if (SSL_CTX_set_alpn_protos(ctx, tls_alpn_h2, sizeof tls_alpn_h2 - 1) != 0) {
		rc = tls_fail(TLS_ESSL, err, errlen, "cannot set ALPN", NULL);
		goto fail;
	}

	if (options->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, options->ca_file, NULL) != 1) {
			rc = tls_fail(TLS_ECA, err, errlen, "cannot load CA file",
			    options->ca_file);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		rc = tls_fail(TLS_ECA, err, errlen, "cannot load the system CA store", NULL);
		goto fail;
	}

	if (options->cert_file != NULL) {
		key_file = options->key_file != NULL ? options->key_file : options->cert_file;
		if (SSL_CTX_use_certificate_chain_file(ctx, options->cert_file) != 1) {
			rc = tls_fail(TLS_ECERT, err, errlen, "cannot load client certificate",
			    options->cert_file);
			goto fail;
		}
		if ((rc = tls_load_key(ctx, key_file, err, errlen)) != TLS_OK)
			goto fail;
		if (SSL_CTX_check_private_key(ctx) != 1) {
			rc = tls_fail(TLS_EKEY, err, errlen,
			    "client key does not match the certificate", key_file);
			goto fail;
		}
	} else if (options->pkcs12_file != NULL) {
		rc = tls_load_pkcs12(ctx, options->pkcs12_file, options->pkcs12_password, err,
		    errlen);
		if (rc != TLS_OK)
			goto fail;
	}
	*out = ctx;
	return TLS_OK;

fail:
	SSL_CTX_free(ctx);
	return rc;
}

/* Is name an IPv4 or IPv6 literal? */
static int
tls_is_ip_literal(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* Set SNI and the certificate name check for one connection. */
int
tls_client_prepare(SSL *ssl, const char *server_name)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

	if (server_name == NULL || *server_name == '\0')
		return TLS_EINVAL;
	if (tls_is_ip_literal(server_name)) {
		/* RFC 6066: SNI carries host names only. */
		if (X509_VERIFY_PARAM_set1_ip_asc(param, server_name) != 1)
			return TLS_EINVAL;
		return TLS_OK;
	}
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(ssl, server_name) != 1)
		return TLS_EINVAL;
	if (SSL_set_tlsext_host_name(ssl, server_name) != 1)
		return TLS_EINVAL;
	return TLS_OK;
}

/* Say why a handshake failed: see tls.h. */
const char *
tls_failure_reason(const SSL *ssl, unsigned long ssl_error, char *buf, size_t len)
{
	long verify;

	if (ssl != NULL && (verify = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(buf, len, "%s", X509_verify_cert_error_string(verify));
		return buf;
	}
	if (ssl_error != 0) {
		ERR_error_string_n(ssl_error, buf, len);
		return buf;
	}
	snprintf(buf, len, "handshake failed");
	return buf;
}

/* Describe a TLS_E* code. */
const char *
tls_strerror(int error)
{
	switch (error) {
	case TLS_OK:
		return "success";
	case TLS_EINVAL:
		return "invalid TLS options";
	case TLS_ECA:
		return "cannot load CA certificates";
	case TLS_ECERT:
		return "cannot load client certificate";
	case TLS_EKEY:
		return "cannot load client key";
	case TLS_EPKCS12:
		return "cannot load PKCS#12 file";
	case TLS_ESSL:
		return "TLS library error";
	}
	return "unknown TLS error";
}
