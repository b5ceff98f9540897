/* The APNs provider's credentials: see apns_credentials.h. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "apns_credentials.h"
#include "log.h"
#include "secret_file.h"
#include "tls.h"

/* A .p8 key or a password file is small: larger is not one. */
#define APNS_KEY_FILE_MAX (64 * 1024)

/* ---- credentials ---- */

/*
 * Read a small secret file whole; 0 or -1 with err set. what names it in errors,
 * option in the warning when others can read it.
 */
static int
apns_read_file(const char *what, const char *option, const char *path,
    struct secret_file *out, char *err, size_t errlen)
{
	char label[64], why[128];

	snprintf(label, sizeof label, "APNs %s", option);
	if (secret_file_read(path, label, APNS_KEY_FILE_MAX, out, why, sizeof why) != 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, why);
		return -1;
	}
	return 0;
}

/* Load the .p8 key and the digest of its file. */
int
apns_key_load(const struct config_apns_app *c, struct jwt_key **key,
    unsigned char digest[32], char *err, size_t errlen)
{
	struct secret_file pem;
	char reason[256];
	int error;

	*key = NULL;
	if (apns_read_file("key", "key_file", c->key_file, &pem, reason,
	    sizeof reason) != 0) {
		snprintf(err, errlen, "[apns \"%s\"] %s", c->name, reason);
		return -1;
	}
	if (EVP_Digest(pem.data, pem.len, digest, NULL, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "[apns \"%s\"] cannot compute the SHA-256 of %s", c->name,
		    c->key_file);
		secret_file_free(&pem);
		return -1;
	}
	error = jwt_key_load_pem(pem.data, pem.len, c->key_file, JWT_ALG_ES256, key, reason,
	    sizeof reason);
	secret_file_free(&pem);
	if (error != 0) {
		snprintf(err, errlen, "[apns \"%s\"] %s", c->name, reason);
		return -1;
	}
	return 0;
}

/* The TLS context of an app: its CA file, and its client certificate if it uses one. */
int
apns_tls_load(const struct config_apns_app *c, SSL_CTX **out, char *err, size_t errlen)
{
	struct tls_client_options options;
	struct secret_file text;
	char reason[256], password[1024];
	int error;

	*out = NULL;
	memset(&options, 0, sizeof options);
	options.ca_file = c->ca_file;
	password[0] = '\0';
	if (c->auth == CONFIG_APNS_AUTH_CERTIFICATE) {
		if (c->pkcs12_file != NULL) {
			secret_file_check_mode(-1, "APNs pkcs12_file", c->pkcs12_file);
			options.pkcs12_file = c->pkcs12_file;
			if (c->pkcs12_password_file != NULL) {
				if (apns_read_file("pkcs12_password_file", "pkcs12_password_file",
				    c->pkcs12_password_file, &text, reason, sizeof reason) != 0) {
					snprintf(err, errlen, "[apns \"%s\"] %s", c->name, reason);
					return -1;
				}
				/* The first line, up to the first CR or LF. */
				snprintf(password, sizeof password, "%.*s",
				    (int)strcspn(text.data, "\r\n"), text.data);
				secret_file_free(&text);
			}
			options.pkcs12_password = password;
		} else {
			options.cert_file = c->certificate_file;
			options.key_file = c->certificate_key_file;
			if (c->certificate_key_file != NULL)
				secret_file_check_mode(-1, "APNs certificate_key_file",
				    c->certificate_key_file);
		}
	}
	error = tls_client_ctx_new(&options, out, reason, sizeof reason);
	OPENSSL_cleanse(password, sizeof password);
	if (error != 0) {
		snprintf(err, errlen, "[apns \"%s\"] %s", c->name, reason);
		return -1;
	}
	return 0;
}

/* Apple's key and team ids: 10 characters, upper-case letters and digits. */
static int
apns_id_valid(const char *id)
{
	size_t n = 0;

	for (; id[n] != '\0'; n++) {
		if (!((id[n] >= 'A' && id[n] <= 'Z') || (id[n] >= '0' && id[n] <= '9')))
			return 0;
	}
	return n == 10;
}

/* Token auth: the options it needs, and ids of the shape Apple gives. */
int
apns_identity_check(const struct config_apns_app *c, char *err, size_t errlen)
{
	if (c->key_file == NULL || c->key_id == NULL || c->team_id == NULL) {
		snprintf(err, errlen, "[apns \"%s\"] token auth needs key_file, key_id and "
		    "team_id", c->name);
		return -1;
	}
	if (!apns_id_valid(c->key_id)) {
		snprintf(err, errlen, "[apns \"%s\"] key_id \"%s\": must be the 10 upper-case "
		    "letters and digits of the key's id (from its AuthKey_KEYID.p8 name)", c->name,
		    c->key_id);
		return -1;
	}
	if (!apns_id_valid(c->team_id)) {
		snprintf(err, errlen, "[apns \"%s\"] team_id \"%s\": must be the 10 upper-case "
		    "letters and digits of the Apple developer team's id", c->name, c->team_id);
		return -1;
	}
	return 0;
}

/*
 * Certificate auth: the client certificate (its key pair was checked when loaded)
 * must be valid now; one that expires within 30 days is only warned about.
 */
int
apns_certificate_check(const struct config_apns_app *c, SSL_CTX *ctx, char *err,
    size_t errlen)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	const char *file = c->pkcs12_file != NULL ? c->pkcs12_file : c->certificate_file;
	int days = 0, secs = 0;

	if (cert == NULL) {
		snprintf(err, errlen, "[apns \"%s\"] %s: no client certificate", c->name, file);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
		snprintf(err, errlen, "[apns \"%s\"] %s: the certificate is not valid yet",
		    c->name, file);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		snprintf(err, errlen, "[apns \"%s\"] %s: the certificate has expired", c->name,
		    file);
		return -1;
	}
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) == 1 && days < 30) {
		char left[16];

		snprintf(left, sizeof left, "%d", days);
		log_warn("apns certificate expires soon", "app", c->name, "file", file,
		    "days_left", left, NULL);
	}
	return 0;
}

/* Every credential of one app, loaded and dropped: what apns_app_init would refuse. */
static int
apns_app_check_offline(const struct config_apns_app *c, char *err, size_t errlen)
{
	unsigned char digest[32];
	struct jwt_key *key = NULL;
	SSL_CTX *ctx = NULL;
	int rc = -1;

	if (c->auth == CONFIG_APNS_AUTH_TOKEN) {
		if (apns_identity_check(c, err, errlen) == 0 &&
		    apns_key_load(c, &key, digest, err, errlen) == 0 &&
		    apns_tls_load(c, &ctx, err, errlen) == 0)
			rc = 0;
	} else if (apns_tls_load(c, &ctx, err, errlen) == 0 &&
	    apns_certificate_check(c, ctx, err, errlen) == 0)
		rc = 0;
	jwt_key_free(key);
	SSL_CTX_free(ctx);
	return rc;
}

size_t
apns_check_offline(const struct config *config, provider_problem_fn *problem, void *arg)
{
	char err[512];
	size_t problems = 0;

	for (size_t i = 0; i < config->apns_app_count; i++) {
		if (apns_app_check_offline(&config->apns_apps[i], err, sizeof err) != 0) {
			problem(config->apns_apps[i].line, err, arg);
			problems++;
		}
	}
	return problems;
}

