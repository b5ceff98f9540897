/*
 * FCM credentials: a project's service account, and the OAuth access tokens minted
 * from it (fcm_auth.h says when they are fetched and renewed).
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "clock.h"
#include "config.h"
#include "fcm_auth.h"
#include "httpc.h"
#include "jwt.h"
#include "log.h"
#include "secret_file.h"
#include "utf8.h"
#include "xmalloc.h"

#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define FCM_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define FCM_GRANT_TYPE "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
#define FCM_ASSERTION_LIFETIME 3600	/* seconds: Google's maximum */
#define FCM_OAUTH_TIMEOUT_MS 20000
#define FCM_OAUTH_BACKOFF_MIN_MS 1000
#define FCM_OAUTH_BACKOFF_MAX_MS 60000
#define FCM_RENEW_AHEAD_MS (5 * 60 * 1000)
#define FCM_SERVICE_ACCOUNT_MAX (256 * 1024)

/* One project's access token, and the exchange that fetches the next. */
struct fcm_auth {
	struct httpc *httpc;
	char *app_id;			/* the [fcm] section's name, for logs */
	char *ca_file;			/* NULL: the system store */
	char *proxy;			/* NULL: none */
	struct fcm_credentials cred;
	fcm_auth_ready_fn *ready;
	void *ready_arg;

	struct fcm_token *token;	/* NULL: sends wait */
	int64_t token_expires_ms;	/* monotonic */
	int next_after_unauthorized;
	struct httpc_request *exchange;	/* a token exchange in flight */
	struct event *timer;		/* the next renewal, or a retry after a failure */
	int64_t backoff_ms;
	char error[256];		/* the last exchange failure */
	uint64_t renewals, failures;
};

/* ---- service accounts ---- */

void
fcm_credentials_free(struct fcm_credentials *cred)
{
	free(cred->project_id);
	free(cred->private_key_id);
	free(cred->client_email);
	free(cred->token_uri);
	jwt_key_free(cred->key);
	memset(cred, 0, sizeof *cred);
}

/* A required (or, with optional, possibly absent) string member; -1 if unusable. */
static int
fcm_sa_string(json_t *root, const char *name, int optional, char **out, const char *app,
    const char *path, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, name);

	*out = NULL;
	if (v == NULL && optional)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0) {
		snprintf(err, errlen, "fcm \"%s\": service account %s: %s %s", app, path, name,
		    v == NULL ? "is missing" : "must be a non-empty string");
		return -1;
	}
	*out = xstrdup(json_string_value(v));
	return 0;
}

/*
 * Load a service-account JSON file. Errors name the app and the file, never the key:
 * JSON syntax errors give only the position, as jansson's text may quote the input.
 */
int
fcm_credentials_load(const char *app, const char *path, struct fcm_credentials *cred,
    char *err, size_t errlen)
{
	struct config_url token_url;
	struct secret_file text;
	json_t *root;
	json_error_t jerr;
	char *type = NULL, *pem = NULL, name[512], why[256];
	int rv = -1;

	memset(cred, 0, sizeof *cred);
	if (secret_file_read(path, "FCM service_account_file", FCM_SERVICE_ACCOUNT_MAX,
	    &text, why, sizeof why) != 0) {
		snprintf(err, errlen, "fcm \"%s\": service account %s: %s", app, path, why);
		return -1;
	}
	root = json_loadb(text.data, text.len, JSON_REJECT_DUPLICATES, &jerr);
	secret_file_free(&text);
	if (root == NULL || !json_is_object(root)) {
		snprintf(err, errlen, "fcm \"%s\": service account %s: not a JSON object "
		    "(line %d, column %d)", app, path, root == NULL ? jerr.line : 1,
		    root == NULL ? jerr.column : 1);
		json_decref(root);
		return -1;
	}
	if (fcm_sa_string(root, "type", 0, &type, app, path, err, errlen) != 0)
		goto out;
	if (strcmp(type, "service_account") != 0) {
		snprintf(err, errlen, "fcm \"%s\": service account %s: type is \"%.64s\", "
		    "expected \"service_account\"", app, path, type);
		goto out;
	}
	if (fcm_sa_string(root, "project_id", 0, &cred->project_id, app, path, err,
	    errlen) != 0 ||
	    fcm_sa_string(root, "private_key_id", 1, &cred->private_key_id, app, path, err,
	    errlen) != 0 ||
	    fcm_sa_string(root, "client_email", 0, &cred->client_email, app, path, err,
	    errlen) != 0 ||
	    fcm_sa_string(root, "token_uri", 1, &cred->token_uri, app, path, err,
	    errlen) != 0 ||
	    fcm_sa_string(root, "private_key", 0, &pem, app, path, err, errlen) != 0)
		goto out;
	if (cred->token_uri == NULL)
		cred->token_uri = xstrdup(FCM_DEFAULT_TOKEN_URI);
	if (config_url_parse(&token_url, cred->token_uri, CONFIG_URL_HTTPS) != 0) {
		snprintf(err, errlen, "fcm \"%s\": service account %s: token_uri must be %s",
		    app, path, config_url_expected(CONFIG_URL_HTTPS));
		goto out;
	}
	for (const char *p = cred->project_id; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.' &&
		    *p != ':') {
			snprintf(err, errlen, "fcm \"%s\": service account %s: project_id has "
			    "characters a project id cannot have", app, path);
			goto out;
		}
	}
	snprintf(name, sizeof name, "\"private_key\" in service account %s", path);
	if (jwt_key_load_pem(pem, strlen(pem), name, JWT_ALG_RS256, &cred->key, why,
	    sizeof why) != 0) {
		snprintf(err, errlen, "fcm \"%s\": %s", app, why);
		goto out;
	}
	EVP_Digest(pem, strlen(pem), cred->key_digest, NULL, EVP_sha256(), NULL);
	rv = 0;

out:
	if (pem != NULL) {
		OPENSSL_cleanse(pem, strlen(pem));
		free(pem);
	}
	free(type);
	json_decref(root);	/* jansson does not wipe the key: the file is on disk anyway */
	if (rv != 0)
		fcm_credentials_free(cred);
	return rv;
}

/* Do two loads of a service account differ in anything a token depends on? */
static int
fcm_credentials_differ(const struct fcm_credentials *a, const struct fcm_credentials *b)
{
	const char *ka = a->private_key_id != NULL ? a->private_key_id : "";
	const char *kb = b->private_key_id != NULL ? b->private_key_id : "";

	return strcmp(a->project_id, b->project_id) != 0 || strcmp(ka, kb) != 0 ||
	    strcmp(a->client_email, b->client_email) != 0 ||
	    strcmp(a->token_uri, b->token_uri) != 0 ||
	    memcmp(a->key_digest, b->key_digest, sizeof a->key_digest) != 0;
}

/* ---- tokens ---- */

void
fcm_token_ref(struct fcm_token *token)
{
	token->refs++;
}

void
fcm_token_unref(struct fcm_token *token)
{
	if (token == NULL || --token->refs > 0)
		return;
	OPENSSL_cleanse(token->authorization, strlen(token->authorization));
	free(token->authorization);
	free(token);
}

/* Stop using the project's token: new sends wait for the next one. */
static void
fcm_auth_drop_token(struct fcm_auth *auth)
{
	fcm_token_unref(auth->token);
	auth->token = NULL;
}

struct fcm_token *
fcm_auth_token(struct fcm_auth *auth)
{
	if (auth->token != NULL && clock_monotonic_ms() >= auth->token_expires_ms) {
		log_warn("fcm access token expired before it was renewed", "app_id",
		    auth->app_id, "error", auth->error, NULL);
		fcm_auth_drop_token(auth);
	}
	return auth->token;
}

int
fcm_auth_is_current(const struct fcm_auth *auth, const struct fcm_token *token)
{
	return token == auth->token;
}

/* ---- the OAuth token exchange ---- */

static void
fcm_oauth_arm(struct fcm_auth *auth, int64_t delay_ms)
{
	struct timeval tv;

	tv.tv_sec = delay_ms / 1000;
	tv.tv_usec = (delay_ms % 1000) * 1000;
	evtimer_add(auth->timer, &tv);
}

/* An exchange failed: remember why, count it, log it, and try again later. */
static void
fcm_oauth_failed(struct fcm_auth *auth, int status, const char *reason)
{
	char status_text[16], retry[24];

	auth->failures++;
	snprintf(auth->error, sizeof auth->error, "%s", reason);
	if (auth->backoff_ms < FCM_OAUTH_BACKOFF_MIN_MS)
		auth->backoff_ms = FCM_OAUTH_BACKOFF_MIN_MS;
	snprintf(status_text, sizeof status_text, "%d", status);
	snprintf(retry, sizeof retry, "%lld", (long long)auth->backoff_ms);
	log_error("fcm access token exchange failed", "app_id", auth->app_id,
	    "token_uri", auth->cred.token_uri, "client_email", auth->cred.client_email,
	    "status", status_text, "error", reason, "retry_in_ms", retry, NULL);
	fcm_oauth_arm(auth, auth->backoff_ms);
	auth->backoff_ms *= 2;
	if (auth->backoff_ms > FCM_OAUTH_BACKOFF_MAX_MS)
		auth->backoff_ms = FCM_OAUTH_BACKOFF_MAX_MS;
}

/* When to renew a token of this lifetime, in ms from now. */
static int64_t
fcm_renew_delay(int64_t lifetime_ms)
{
	int64_t at = lifetime_ms * 8 / 10;

	if (lifetime_ms - FCM_RENEW_AHEAD_MS < at)
		at = lifetime_ms - FCM_RENEW_AHEAD_MS;
	if (at < lifetime_ms / 2)
		at = lifetime_ms / 2;	/* short-lived tokens: not in a loop */
	return at;
}

/* The token endpoint answered. */
static void
fcm_oauth_done(const struct httpc_response *response, void *arg)
{
	struct fcm_auth *auth = arg;
	struct fcm_token *token;
	json_t *root = NULL, *v;
	const char *access_token, *error, *description;
	int64_t lifetime_ms;
	char reason[256], text[512], expires[24];

	auth->exchange = NULL;
	if (response->error != 0) {
		snprintf(reason, sizeof reason, "%s: %s", httpc_strerror(response->error),
		    response->error_text);
		fcm_oauth_failed(auth, 0, reason);
		return;
	}
	root = json_loadb(response->body, response->body_len, 0, NULL);
	if (response->status != 200) {
		error = json_string_value(json_object_get(root, "error"));
		description = json_string_value(json_object_get(root, "error_description"));
		/* The endpoint's words go to the log: cut them between characters. */
		if (error != NULL && description != NULL) {
			snprintf(text, sizeof text, "%s: %s", error, description);
			utf8_sanitize(reason, sizeof reason, text, strlen(text));
		} else if (error != NULL)
			utf8_sanitize(reason, sizeof reason, error, strlen(error));
		else
			snprintf(reason, sizeof reason, "HTTP %d from the token endpoint",
			    response->status);
		json_decref(root);
		fcm_oauth_failed(auth, response->status, reason);
		return;
	}
	access_token = json_string_value(json_object_get(root, "access_token"));
	v = json_object_get(root, "expires_in");
	if (access_token == NULL || *access_token == '\0' ||
	    (v != NULL && (!json_is_integer(v) || json_integer_value(v) <= 0))) {
		json_decref(root);
		fcm_oauth_failed(auth, response->status,
		    "the token endpoint's answer has no access_token or a bad expires_in");
		return;
	}
	lifetime_ms = v != NULL ? (int64_t)json_integer_value(v) * 1000 : 3600 * 1000;
	if (lifetime_ms > 24 * 3600 * 1000)
		lifetime_ms = 24 * 3600 * 1000;

	token = xcalloc(1, sizeof *token);
	token->refs = 1;
	token->authorization = xasprintf("Bearer %s", access_token);
	token->after_unauthorized = auth->next_after_unauthorized;
	auth->next_after_unauthorized = 0;
	json_decref(root);

	fcm_auth_drop_token(auth);
	auth->token = token;
	auth->token_expires_ms = clock_monotonic_ms() + lifetime_ms;
	auth->backoff_ms = 0;
	auth->error[0] = '\0';
	auth->renewals++;
	snprintf(expires, sizeof expires, "%lld", (long long)(lifetime_ms / 1000));
	log_info("fcm access token obtained", "app_id", auth->app_id, "expires_in",
	    expires, NULL);
	fcm_oauth_arm(auth, fcm_renew_delay(lifetime_ms));
	auth->ready(auth->ready_arg);
}

/* Append s to buf, percent-encoding what a form value cannot hold. */
static void
fcm_form_append(char *buf, size_t *w, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
			buf[(*w)++] = (char)c;
		else {
			buf[(*w)++] = '%';
			buf[(*w)++] = hex[c >> 4];
			buf[(*w)++] = hex[c & 15];
		}
	}
	buf[*w] = '\0';
}

/* Mint an assertion and start exchanging it for an access token. */
void
fcm_auth_start(struct fcm_auth *auth)
{
	struct fcm_credentials *cred = &auth->cred;
	struct httpc_options options;
	char *assertion = NULL, *form, reason[128];
	int64_t iat = clock_now_ms() / 1000;
	size_t w = 0, size;
	int rv;

	evtimer_del(auth->timer);
	if (auth->exchange != NULL) {
		httpc_cancel(auth->exchange);
		auth->exchange = NULL;
	}
	rv = jwt_sign_rs256(cred->key, cred->private_key_id, cred->client_email, FCM_SCOPE,
	    cred->token_uri, iat, iat + FCM_ASSERTION_LIFETIME, &assertion);
	if (rv != 0) {
		snprintf(reason, sizeof reason, "cannot sign the assertion: %s",
		    jwt_strerror(rv));
		fcm_oauth_failed(auth, 0, reason);
		return;
	}
	size = sizeof "grant_type=" FCM_GRANT_TYPE "&assertion=" + 3 * strlen(assertion);
	form = xmalloc(size);
	w = (size_t)snprintf(form, size, "grant_type=%s&assertion=", FCM_GRANT_TYPE);
	fcm_form_append(form, &w, assertion);
	OPENSSL_cleanse(assertion, strlen(assertion));
	free(assertion);

	memset(&options, 0, sizeof options);
	options.url = cred->token_uri;
	options.content_type = "application/x-www-form-urlencoded";
	options.body = form;
	options.body_len = w;
	options.ca_file = auth->ca_file;
	options.proxy = auth->proxy;
	options.timeout_ms = FCM_OAUTH_TIMEOUT_MS;
	rv = httpc_request(auth->httpc, &options, fcm_oauth_done, auth, &auth->exchange);
	OPENSSL_cleanse(form, w);
	free(form);
	if (rv != 0) {
		snprintf(reason, sizeof reason, "cannot start the request: %s",
		    httpc_strerror(rv));
		fcm_oauth_failed(auth, 0, reason);
	}
}

/* The renewal or retry timer. */
static void
fcm_oauth_event(evutil_socket_t fd, short what, void *arg)
{
	struct fcm_auth *auth = arg;

	(void)fd;
	(void)what;
	if (auth->exchange == NULL)
		fcm_auth_start(auth);
}

void
fcm_auth_want(struct fcm_auth *auth)
{
	if (auth->exchange == NULL && !evtimer_pending(auth->timer, NULL))
		fcm_auth_start(auth);
}

void
fcm_auth_refused(struct fcm_auth *auth)
{
	fcm_auth_drop_token(auth);
	auth->next_after_unauthorized = 1;
	if (auth->exchange == NULL)
		fcm_auth_start(auth);
}

/* ---- the object ---- */

struct fcm_auth *
fcm_auth_new(struct event_base *base, struct httpc *httpc, const char *app_id,
    const char *path, const char *ca_file, const char *proxy, fcm_auth_ready_fn *ready,
    void *arg, char *err, size_t errlen)
{
	struct fcm_auth *auth = xcalloc(1, sizeof *auth);

	if ((auth->timer = evtimer_new(base, fcm_oauth_event, auth)) == NULL)
		fatalx("evtimer_new: out of memory");
	auth->httpc = httpc;
	auth->app_id = xstrdup(app_id);
	auth->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	auth->proxy = proxy != NULL ? xstrdup(proxy) : NULL;
	auth->ready = ready;
	auth->ready_arg = arg;
	if (fcm_credentials_load(app_id, path, &auth->cred, err, errlen) != 0) {
		fcm_auth_free(auth);
		return NULL;
	}
	return auth;
}

void
fcm_auth_free(struct fcm_auth *auth)
{
	if (auth == NULL)
		return;
	if (auth->exchange != NULL)
		httpc_cancel(auth->exchange);
	event_free(auth->timer);
	fcm_auth_drop_token(auth);
	fcm_credentials_free(&auth->cred);
	free(auth->app_id);
	free(auth->ca_file);
	free(auth->proxy);
	free(auth);
}

const struct fcm_credentials *
fcm_auth_credentials(const struct fcm_auth *auth)
{
	return &auth->cred;
}

int
fcm_auth_adopt(struct fcm_auth *auth, struct fcm_credentials *cred)
{
	if (!fcm_credentials_differ(&auth->cred, cred)) {
		fcm_credentials_free(cred);
		return 0;
	}
	fcm_credentials_free(&auth->cred);
	auth->cred = *cred;
	memset(cred, 0, sizeof *cred);
	log_info("fcm service account changed: fetching a new access token", "app_id",
	    auth->app_id, "project_id", auth->cred.project_id, NULL);
	fcm_auth_drop_token(auth);
	auth->next_after_unauthorized = 0;
	auth->backoff_ms = 0;
	auth->error[0] = '\0';
	fcm_auth_start(auth);
	return 1;
}

const char *
fcm_auth_error(const struct fcm_auth *auth)
{
	return auth->error;
}

void
fcm_auth_counts(const struct fcm_auth *auth, uint64_t *renewals, uint64_t *failures)
{
	*renewals = auth->renewals;
	*failures = auth->failures;
}
