/*
 * The APNs provider: POST /3/device/<token> over one HTTP/2 pool per app and
 * environment, classifying each answer into a provider_result (see apns.h).
 *
 * A send costs one allocation: the h2_request, its header array, the path and the
 * body rendered for the device live in one block, freed when the request completes.
 * Error bodies are parsed only for error answers.
 *
 * With token authentication an app has one provider token (JWT) that every request
 * carries until it is older than token_refresh, and never replaced sooner than 20
 * minutes after it was minted (APNs answers 429 TooManyProviderTokenUpdates), except
 * at once when APNs answers ExpiredProviderToken to a request that carried the
 * current token. Tokens are reference counted so that requests in flight keep the
 * one they were sent with.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "apns.h"
#include "apns_credentials.h"
#include "clock.h"
#include "config.h"
#include "delivery.h"
#include "h2_pool.h"
#include "jwt.h"
#include "log.h"
#include "retry_after.h"
#include "secret_file.h"
#include "tls.h"
#include "utf8.h"
#include "xmalloc.h"

/* APNs refuses a new provider token sooner than this on one connection. */
#define APNS_TOKEN_MIN_AGE_MS (20 * 60 * 1000)
/* After a token failed to sign, wait this long before trying again. */
#define APNS_TOKEN_RETRY_MS (60 * 1000)
/* Configuration errors and TLS failures are logged at most this often per app. */
#define APNS_LOG_INTERVAL_MS (60 * 1000)
#define APNS_ENVIRONMENTS 2
/*
 * Requests a pool keeps waiting for a stream, at most: two connections' worth. More
 * wait in the delivery layer, whose round robin lets a message to one device pass a
 * fan-out; the pool's own queue is first come, first served.
 */
#define APNS_QUEUE_LIMIT 2000
/* Our headers: topic, push type, priority, expiration, collapse id, id, authorization. */
#define APNS_OWN_HEADERS 7

/* A provider token, shared by the app and the requests that carry it. */
struct apns_token {
	unsigned refcount;
	int64_t minted_at;		/* clock_now_ms() when signed */
	size_t len;
	char authorization[];		/* "bearer <JWT>" */
};

/* What an APNs reason means. */
struct apns_reason {
	const char *name;
	enum provider_verdict verdict;
	int auth;			/* blames our credentials: counted in auth_failures */
	const char *hint;		/* for the configuration error log */
};

static const struct apns_reason apns_reasons[] = {
	{ "BadDeviceToken", PROVIDER_TOKEN_GONE, 0, NULL },
	{ "Unregistered", PROVIDER_TOKEN_GONE, 0, NULL },
	{ "ExpiredToken", PROVIDER_TOKEN_GONE, 0, NULL },
	{ "DeviceTokenNotForTopic", PROVIDER_CONFIG, 0,
	    "the device is registered for another topic: check the app's topic" },
	{ "BadTopic", PROVIDER_CONFIG, 0, "check the app's topic" },
	{ "TopicDisallowed", PROVIDER_CONFIG, 0,
	    "the credentials may not push to this topic: check the topic" },
	{ "MissingTopic", PROVIDER_CONFIG, 0, "set the app's topic" },
	{ "InvalidProviderToken", PROVIDER_CONFIG, 1,
	    "check key_file, key_id and team_id" },
	{ "MissingProviderToken", PROVIDER_CONFIG, 1,
	    "APNs wants a provider token: use auth = token" },
	{ "BadCertificate", PROVIDER_CONFIG, 1, "check the client certificate" },
	{ "BadCertificateEnvironment", PROVIDER_CONFIG, 1,
	    "the certificate is for the other environment" },
	{ "Forbidden", PROVIDER_CONFIG, 1, "APNs refuses these credentials" },
	{ "UnrelatedKeyIdInToken", PROVIDER_CONFIG, 1,
	    "key_id does not belong to team_id" },
	{ "BadEnvironmentKeyIdInToken", PROVIDER_CONFIG, 1,
	    "the key is not enabled for this environment" },
	{ "ExpiredProviderToken", PROVIDER_RETRY, 1, NULL },
	{ "TooManyProviderTokenUpdates", PROVIDER_RETRY, 0, NULL },
	{ "TooManyRequests", PROVIDER_RETRY, 0, NULL },
	{ "IdleTimeout", PROVIDER_RETRY, 0, NULL },
	{ "InternalServerError", PROVIDER_RETRY, 0, NULL },
	{ "ServiceUnavailable", PROVIDER_RETRY, 0, NULL },
	{ "Shutdown", PROVIDER_RETRY, 0, NULL },
	{ "PayloadTooLarge", PROVIDER_REJECTED, 0, NULL },
	{ "BadCollapseId", PROVIDER_REJECTED, 0, NULL },
	{ "BadExpirationDate", PROVIDER_REJECTED, 0, NULL },
	{ "BadMessageId", PROVIDER_REJECTED, 0, NULL },
	{ "BadPriority", PROVIDER_REJECTED, 0, NULL },
	{ "InvalidPushType", PROVIDER_REJECTED, 0, NULL },
	{ "PayloadEmpty", PROVIDER_REJECTED, 0, NULL },
	{ "DuplicateHeaders", PROVIDER_REJECTED, 0, NULL },
	{ "MissingDeviceToken", PROVIDER_REJECTED, 0, NULL },
	{ "BadPath", PROVIDER_REJECTED, 0, NULL },
	{ "MethodNotAllowed", PROVIDER_REJECTED, 0, NULL },
};
#define APNS_REASONS (sizeof apns_reasons / sizeof apns_reasons[0])

/* A rate-limited log line: when it was last written and how many were held back. */
struct apns_log_limit {
	int64_t last_ms;
	unsigned suppressed;
};

/* One [apns "APP_ID"] section, live. */
struct apns_app {
	struct provider *provider;
	char *name;
	char *topic;
	enum config_apns_auth auth;

	/* Token authentication. */
	struct jwt_key *key;
	unsigned char key_digest[32];	/* SHA-256 of the key file: did a reload change it? */
	char *key_id;
	char *team_id;
	int64_t token_refresh_ms;
	struct apns_token *token;
	int64_t token_retry_at;		/* after a signing failure */

	SSL_CTX *ssl_ctx;		/* shared by both pools; holds the client certificate */
	struct h2_pool *pools[APNS_ENVIRONMENTS];	/* by enum device_environment */

	struct apns_log_limit config_log[APNS_REASONS];
	struct apns_log_limit tls_log;
};

/* A completion decided without asking APNs, delivered from the event loop. */
struct apns_deferred {
	TAILQ_ENTRY(apns_deferred) entry;
	struct delivery *delivery;
	provider_done_fn *done;
	void *done_arg;
	struct provider_result result;
};
TAILQ_HEAD(apns_deferred_list, apns_deferred);

struct provider {
	struct event_base *base;
	struct apns_app *apps;
	size_t napps;
	struct provider_stats stats;	/* counters only; the gauges come from the pools */

	struct event *deferred_ev;
	struct apns_deferred_list deferred;
	size_t ndeferred;

	int draining;
	int freeing;
	unsigned pools_draining;
	void (*drain_done)(void *);
	void *drain_arg;
};

/* One send: everything a request needs, in one allocation. */
struct apns_request {
	struct h2_request request;
	struct apns_app *app;
	struct delivery *delivery;
	provider_done_fn *done;		/* told of the result */
	void *done_arg;
	struct apns_token *token;	/* the one sent, referenced; NULL with certificates */
	int environment;
	char expiration[24];
	nghttp2_nv headers[];		/* then the path, header names and the body */
};

static const char *const apns_environment_names[APNS_ENVIRONMENTS] = {
	"production", "sandbox"
};

/* What an answer means: see apns.h. */
enum provider_verdict
apns_verdict(int status, const char *reason)
{
	size_t i;

	if (status == 200)
		return PROVIDER_SENT;
	if (reason != NULL) {
		for (i = 0; i < APNS_REASONS; i++) {
			if (strcmp(apns_reasons[i].name, reason) == 0)
				return apns_reasons[i].verdict;
		}
	}
	if (status == 410)
		return PROVIDER_TOKEN_GONE;
	if (status >= 400 && status < 500 && status != 429)
		return PROVIDER_REJECTED;
	return PROVIDER_RETRY;
}

/* The table entry of a reason, or NULL. */
static const struct apns_reason *
apns_reason_find(const char *reason)
{
	size_t i;

	for (i = 0; reason != NULL && i < APNS_REASONS; i++) {
		if (strcmp(apns_reasons[i].name, reason) == 0)
			return &apns_reasons[i];
	}
	return NULL;
}

/* May a rate-limited line be written now? Counts the ones held back. */
static int
apns_log_allowed(struct apns_log_limit *limit, char *suppressed, size_t len)
{
	int64_t now = clock_monotonic_ms();

	if (limit->last_ms != 0 && now - limit->last_ms < APNS_LOG_INTERVAL_MS) {
		limit->suppressed++;
		return 0;
	}
	snprintf(suppressed, len, "%u", limit->suppressed);
	limit->last_ms = now;
	limit->suppressed = 0;
	return 1;
}

/* ---- provider tokens ---- */

/* Drop a reference; the last one wipes the token. */
static void
apns_token_unref(struct apns_token *token)
{
	if (token != NULL && --token->refcount == 0) {
		OPENSSL_cleanse(token->authorization, token->len);
		free(token);
	}
}

/* Sign a new provider token with the app's key. */
static int
apns_token_mint(struct apns_app *app, struct apns_token **out)
{
	struct apns_token *token;
	int64_t now = clock_now_ms();
	char *jwt;
	size_t len;
	int error;

	*out = NULL;
	if ((error = jwt_sign_es256(app->key, app->key_id, app->team_id, now / 1000,
	    &jwt)) != 0)
		return error;
	len = strlen(jwt);
	token = xmalloc(sizeof *token + 7 + len + 1);
	token->refcount = 1;
	token->minted_at = now;
	token->len = 7 + len;
	memcpy(token->authorization, "bearer ", 7);
	memcpy(token->authorization + 7, jwt, len + 1);
	OPENSSL_cleanse(jwt, len);
	free(jwt);
	*out = token;
	return 0;
}

/* Replace the app's token with a new one; why says what prompted it, for the log. */
static void
apns_token_renew(struct apns_app *app, const char *why)
{
	struct apns_token *token;
	char renewals[24];
	int error;

	if ((error = apns_token_mint(app, &token)) != 0) {
		app->token_retry_at = clock_now_ms() + APNS_TOKEN_RETRY_MS;
		log_error("apns provider token not renewed", "app", app->name, "key_id",
		    app->key_id, "error", jwt_strerror(error), NULL);
		return;
	}
	apns_token_unref(app->token);
	app->token = token;
	app->token_retry_at = 0;
	app->provider->stats.token_renewals++;
	snprintf(renewals, sizeof renewals, "%" PRIu64, app->provider->stats.token_renewals);
	log_info("apns provider token renewed", "app", app->name, "key_id", app->key_id,
	    "team_id", app->team_id, "why", why, "renewals", renewals, NULL);
}

/* Renew the token at send time when it is due: one comparison when it is not. */
static void
apns_token_check(struct apns_app *app)
{
	int64_t now = clock_now_ms(), age = now - app->token->minted_at;

	if (age < app->token_refresh_ms || age < APNS_TOKEN_MIN_AGE_MS)
		return;
	if (app->token_retry_at != 0 && now < app->token_retry_at)
		return;
	apns_token_renew(app, "age");
}

/* ---- set-up ---- */

/* The pool for one environment of an app. */
static int
apns_pool_new(struct provider *p, struct apns_app *app, const struct config_apns_app *c,
    int environment, char *err, size_t errlen)
{
	struct h2_pool_options o;
	const int sandbox = environment == DEVICE_ENVIRONMENT_SANDBOX;
	const struct config_url *url = sandbox ? &c->sandbox_endpoint :
	    &c->production_endpoint;
	const char *text = sandbox ? c->sandbox_url : c->production_url;
	const char *key = sandbox ? "sandbox_url" : "production_url";
	char reason[256], *authorization = NULL;
	int rc;

	/* config_load() parsed the URLs: a config built otherwise must do it too. */
	if (url->host[0] == '\0') {
		snprintf(err, errlen, "[apns \"%s\"] %s %s: not parsed by config_load()",
		    c->name, key, text != NULL ? text : "(none)");
		return -1;
	}
	if (c->proxy != NULL && *c->proxy != '\0' && c->proxy_endpoint.host[0] == '\0') {
		snprintf(err, errlen, "[apns \"%s\"] proxy %s: not parsed by config_load()",
		    c->name, c->proxy);
		return -1;
	}
	memset(&o, 0, sizeof o);
	o.host = url->host;
	o.port = url->port;
	o.authority = url->authority;
	o.ssl_ctx = app->ssl_ctx;
	if (c->proxy_endpoint.host[0] != '\0') {
		o.proxy_host = c->proxy_endpoint.host;
		o.proxy_port = c->proxy_endpoint.port;
		o.proxy_authorization = authorization = provider_proxy_authorization(
		    &c->proxy_endpoint);
	}
	o.max_connections = c->connections > 0 ? (unsigned)c->connections : 1;
	o.idle_close_ms = (int)c->connection_idle_ms;
	o.queue_limit = APNS_QUEUE_LIMIT;
	o.request_timeout_ms = (int)c->request_timeout_ms;
	rc = h2_pool_new(p->base, &o, &app->pools[environment], reason, sizeof reason);
	if (authorization != NULL) {
		OPENSSL_cleanse(authorization, strlen(authorization));
		free(authorization);
	}
	if (rc != 0) {
		snprintf(err, errlen, "[apns \"%s\"] %s %s: %s", c->name, key, text, reason);
		return -1;
	}
	return 0;
}

/* Bring one app up: credentials, first token, both pools. */
static int
apns_app_init(struct provider *p, struct apns_app *app, const struct config_apns_app *c,
    char *err, size_t errlen)
{
	int error, environment;

	app->provider = p;
	app->name = xstrdup(c->name);
	app->topic = xstrdup(c->topic != NULL ? c->topic : c->name);
	app->auth = c->auth;
	if (c->auth == CONFIG_APNS_AUTH_TOKEN) {
		if (apns_identity_check(c, err, errlen) != 0)
			return -1;
		if (apns_key_load(c, &app->key, app->key_digest, err, errlen) != 0)
			return -1;
		app->key_id = xstrdup(c->key_id);
		app->team_id = xstrdup(c->team_id);
		app->token_refresh_ms = c->token_refresh_ms;
		if ((error = apns_token_mint(app, &app->token)) != 0) {
			snprintf(err, errlen, "[apns \"%s\"] key %s: cannot sign a provider "
			    "token: %s", c->name, c->key_file, jwt_strerror(error));
			return -1;
		}
		p->stats.token_renewals++;
	}
	if (apns_tls_load(c, &app->ssl_ctx, err, errlen) != 0)
		return -1;
	if (c->auth == CONFIG_APNS_AUTH_CERTIFICATE &&
	    apns_certificate_check(c, app->ssl_ctx, err, errlen) != 0)
		return -1;
	for (environment = 0; environment < APNS_ENVIRONMENTS; environment++) {
		if (apns_pool_new(p, app, c, environment, err, errlen) != 0)
			return -1;
	}
	if (c->proxy_endpoint.from_environment)
		log_info("apns proxy from the environment (https_proxy)", "app", app->name,
		    "proxy", c->proxy_endpoint.authority, NULL);
	log_info("apns app ready", "app", app->name, "topic", app->topic, "auth",
	    c->auth == CONFIG_APNS_AUTH_TOKEN ? "token" : "certificate", "key_id",
	    app->key_id != NULL ? app->key_id : "-", "production",
	    h2_pool_endpoint(app->pools[DEVICE_ENVIRONMENT_PRODUCTION]), "sandbox",
	    h2_pool_endpoint(app->pools[DEVICE_ENVIRONMENT_SANDBOX]), NULL);
	return 0;
}

static void apns_free(struct provider *);
static void apns_deferred_cb(evutil_socket_t, short, void *);

/* Create the provider: every app's credentials are checked now. */
static struct provider *
apns_create(struct event_base *base, const struct config *config, char *err, size_t errlen)
{
	struct provider *p;
	size_t i;

	p = xcalloc(1, sizeof *p);
	p->base = base;
	TAILQ_INIT(&p->deferred);
	if ((p->deferred_ev = event_new(base, -1, 0, apns_deferred_cb, p)) == NULL)
		fatalx("event_new: out of memory");
	p->apps = xcalloc(config->apns_app_count > 0 ? config->apns_app_count : 1,
	    sizeof *p->apps);
	for (i = 0; i < config->apns_app_count; i++) {
		p->napps++;
		if (apns_app_init(p, &p->apps[i], &config->apns_apps[i], err, errlen) != 0) {
			apns_free(p);
			return NULL;
		}
	}
	return p;
}

/* ---- completions ---- */

/* Complete a delivery from the event loop, not from inside send(). */
static void
apns_defer(struct provider *p, struct delivery *d, provider_done_fn *done, void *done_arg,
    const struct provider_result *result)
{
	struct apns_deferred *item = xmalloc(sizeof *item);

	item->delivery = d;
	item->done = done;
	item->done_arg = done_arg;
	item->result = *result;
	TAILQ_INSERT_TAIL(&p->deferred, item, entry);
	p->ndeferred++;
	event_active(p->deferred_ev, EV_TIMEOUT, 0);
}

/* Count a verdict. */
static void
apns_count(struct provider *p, enum provider_verdict verdict)
{
	switch (verdict) {
	case PROVIDER_SENT: p->stats.sent++; break;
	case PROVIDER_RETRY: p->stats.retried++; break;
	case PROVIDER_TOKEN_GONE: p->stats.token_gone++; break;
	case PROVIDER_REJECTED: p->stats.rejected++; break;
	case PROVIDER_CONFIG: p->stats.config_errors++; break;
	}
}

/* Draining: call done once nothing is left. */
static void
apns_check_drained(struct provider *p)
{
	void (*done)(void *);

	if (!p->draining || p->pools_draining > 0 || p->ndeferred > 0 || p->drain_done == NULL)
		return;
	done = p->drain_done;
	p->drain_done = NULL;
	log_info("apns provider drained", NULL);
	done(p->drain_arg);
}

/* Deliver the completions decided in send(). */
static void
apns_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct provider *p = arg;
	struct apns_deferred_list list = TAILQ_HEAD_INITIALIZER(list);
	struct apns_deferred *item;

	/* Completions may send again and defer more: those wait for the next round. */
	TAILQ_CONCAT(&list, &p->deferred, entry);
	while ((item = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, item, entry);
		p->ndeferred--;
		item->done(item->delivery, &item->result, item->done_arg);
		free(item);
	}
	apns_check_drained(p);
}

/* Milliseconds from a Retry-After header; 0 when absent or malformed. */
static int64_t
apns_retry_after(const struct h2_response *response)
{
	int64_t ms = retry_after_parse_ms(h2_response_header(response, "retry-after"),
	    clock_now_ms());

	return ms > 0 ? ms : 0;
}

void
apns_answer_classify(const struct h2_response *response, struct provider_result *result)
{
	json_t *root = NULL, *value;
	const char *reason = NULL;

	if (response->body_len > 0)
		root = json_loadb((const char *)response->body, response->body_len, 0, NULL);
	if ((value = json_object_get(root, "reason")) != NULL && json_is_string(value))
		reason = json_string_value(value);
	if ((value = json_object_get(root, "timestamp")) != NULL && json_is_integer(value))
		result->token_invalid_since = json_integer_value(value);
	/* The reason goes to logs and the feedback's JSON: cut it between characters. */
	if (reason != NULL)
		utf8_sanitize(result->reason, sizeof result->reason, reason, strlen(reason));
	else
		snprintf(result->reason, sizeof result->reason, "HTTP %d", response->status);
	result->verdict = apns_verdict(response->status, reason);
	if (result->verdict == PROVIDER_RETRY)
		result->retry_after_ms = apns_retry_after(response);
	if (result->verdict != PROVIDER_TOKEN_GONE || response->status != 410)
		result->token_invalid_since = 0;
	json_decref(root);
}

/* An answer that is not 200: read its reason and act on what it says of us. */
static void
apns_classify_error(struct apns_request *r, const struct h2_response *response,
    struct provider_result *result)
{
	struct apns_app *app = r->app;
	struct provider *p = app->provider;
	const struct apns_reason *known;
	char status[8], suppressed[16], redacted[LOG_REDACT_SIZE];

	apns_answer_classify(response, result);
	/* A reason of the table is short: result->reason holds it whole. */
	known = apns_reason_find(result->reason);

	snprintf(status, sizeof status, "%d", response->status);
	if (known != NULL && known->auth)
		p->stats.auth_failures++;
	if (known != NULL && strcmp(known->name, "ExpiredProviderToken") == 0) {
		/* Renew now, but once: other requests with the same old token just retry. */
		if (app->auth == CONFIG_APNS_AUTH_TOKEN && r->token == app->token)
			apns_token_renew(app, "ExpiredProviderToken");
		result->retry_after_ms = 0;
	} else if (result->verdict == PROVIDER_CONFIG && known != NULL &&
	    apns_log_allowed(&app->config_log[known - apns_reasons], suppressed,
	    sizeof suppressed))
		log_error("apns refuses our configuration", "app", app->name, "environment",
		    apns_environment_names[r->environment], "status", status, "reason",
		    known->name, "hint", known->hint, "suppressed", suppressed, NULL);
	log_debug("apns error answer", "app", app->name, "id", r->delivery->id, "token",
	    log_redact(r->delivery->token, redacted), "status", status, "reason",
	    result->reason, NULL);
}

/* No HTTP answer: always worth another try, and a TLS failure is worth a loud line. */
static void
apns_classify_failure(struct apns_request *r, const struct h2_response *response,
    struct provider_result *result)
{
	struct apns_app *app = r->app;
	char suppressed[16];

	result->verdict = PROVIDER_RETRY;
	if (response->error == H2_ECANCELLED && app->provider->freeing) {
		snprintf(result->reason, sizeof result->reason, "shutdown");
		return;
	}
	if (response->reason != NULL && *response->reason != '\0')
		snprintf(result->reason, sizeof result->reason, "%s: %s",
		    h2_strerror(response->error), response->reason);
	else
		snprintf(result->reason, sizeof result->reason, "%s",
		    h2_strerror(response->error));
	if (response->error == H2_ETLS && apns_log_allowed(&app->tls_log, suppressed,
	    sizeof suppressed))
		log_error("apns TLS failure", "app", app->name, "endpoint",
		    h2_pool_endpoint(app->pools[r->environment]), "reason",
		    response->reason != NULL ? response->reason : "", "suppressed", suppressed,
		    NULL);
}

/* The request completed: classify, free, report. */
static void
apns_request_done(struct h2_request *request, const struct h2_response *response,
    void *arg)
{
	struct apns_request *r = arg;
	struct provider *p = r->app->provider;
	struct delivery *d = r->delivery;
	provider_done_fn *done = r->done;
	void *done_arg = r->done_arg;
	struct provider_result result;

	memset(&result, 0, sizeof result);
	result.status = response->error == 0 ? response->status : 0;
	if (response->error != 0)
		apns_classify_failure(r, response, &result);
	else if (response->status == 200)
		result.verdict = PROVIDER_SENT;
	else
		apns_classify_error(r, response, &result);
	apns_count(p, result.verdict);
	apns_token_unref(r->token);
	free(r);
	done(d, &result, done_arg);
}

/* ---- sending ---- */

/* Fill one header; name and value must outlive the request. */
static void
apns_nv(nghttp2_nv *nv, const char *name, const char *value, uint8_t flags)
{
	nv->name = (uint8_t *)(uintptr_t)name;
	nv->namelen = strlen(name);
	nv->value = (uint8_t *)(uintptr_t)value;
	nv->valuelen = strlen(value);
	nv->flags = flags;
}

/* Is a header of ours given by the notification's apns.headers? */
static int
apns_overridden(const nghttp2_nv *given, size_t ngiven, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < ngiven; i++) {
		if (given[i].namelen == len && memcmp(given[i].name, name, len) == 0)
			return 1;
	}
	return 0;
}

/* The app a delivery is for, or NULL. */
static struct apns_app *
apns_app_find(struct provider *p, const char *app_id)
{
	size_t i;

	for (i = 0; i < p->napps; i++) {
		if (strcmp(p->apps[i].name, app_id) == 0)
			return &p->apps[i];
	}
	return NULL;
}

/* Take one delivery: build its request in one allocation and hand it to the pool. */
static int
apns_send(struct provider *p, struct delivery *d, provider_done_fn *done, void *done_arg)
{
	struct push_content *content = d->content;
	const struct notification *n = &content->notification;
	struct provider_result result;
	struct apns_app *app;
	struct apns_request *r;
	json_t *extra, *value;
	const char *key;
	char *at, *path;
	size_t token_len, name_bytes = 0, nextra = 0, size, nh, i, ngiven;
	int environment, background, error;

	if (p->draining || p->freeing)
		return PROVIDER_ESHUTDOWN;
	if ((app = apns_app_find(p, d->app_id)) == NULL)
		return PROVIDER_ENOAPP;
	payload_content_prepare(content, DEVICE_PLATFORM_APNS);
	if (content->apns_error != PAYLOAD_OK) {
		memset(&result, 0, sizeof result);
		result.verdict = PROVIDER_REJECTED;
		snprintf(result.reason, sizeof result.reason, "%s",
		    payload_strerror(content->apns_error));
		p->stats.rejected++;
		apns_defer(p, d, done, done_arg, &result);
		return PROVIDER_OK;
	}
	environment = d->environment == DEVICE_ENVIRONMENT_SANDBOX ?
	    DEVICE_ENVIRONMENT_SANDBOX : DEVICE_ENVIRONMENT_PRODUCTION;
	if (app->auth == CONFIG_APNS_AUTH_TOKEN)
		apns_token_check(app);

	extra = n->apns != NULL ? json_object_get(n->apns, "headers") : NULL;
	if (!json_is_object(extra))
		extra = NULL;
	json_object_foreach(extra, key, value) {
		if (json_is_string(value)) {
			nextra++;
			name_bytes += strlen(key) + 1;
		}
	}
	token_len = strlen(d->token);
	nh = APNS_OWN_HEADERS + nextra;
	size = sizeof *r + nh * sizeof r->headers[0] + sizeof "/3/device/" + token_len +
	    name_bytes + payload_render_max(&content->apns, token_len);
	r = xmalloc(size);
	memset(r, 0, sizeof *r);
	r->app = app;
	r->delivery = d;
	r->done = done;
	r->done_arg = done_arg;
	r->environment = environment;
	at = (char *)(r->headers + nh);

	path = at;
	memcpy(at, "/3/device/", 10);
	memcpy(at + 10, d->token, token_len + 1);
	at += 10 + token_len + 1;

	/* The notification's apns.headers first: they override ours. */
	ngiven = 0;
	json_object_foreach(extra, key, value) {
		if (!json_is_string(value))
			continue;
		for (i = 0; key[i] != '\0'; i++)
			at[i] = (char)tolower((unsigned char)key[i]);
		at[i] = '\0';
		apns_nv(&r->headers[ngiven++], at, json_string_value(value),
		    NGHTTP2_NV_FLAG_NONE);
		at += i + 1;
	}
	nh = ngiven;
	background = n->title == NULL && n->body == NULL;
	if (!apns_overridden(r->headers, ngiven, "apns-topic"))
		apns_nv(&r->headers[nh++], "apns-topic", app->topic, NGHTTP2_NV_FLAG_NONE);
	if (!apns_overridden(r->headers, ngiven, "apns-push-type"))
		apns_nv(&r->headers[nh++], "apns-push-type", background ? "background" :
		    "alert", NGHTTP2_NV_FLAG_NONE);
	if (!apns_overridden(r->headers, ngiven, "apns-priority"))
		apns_nv(&r->headers[nh++], "apns-priority", background ||
		    n->priority == NOTIFICATION_PRIORITY_NORMAL ? "5" : "10",
		    NGHTTP2_NV_FLAG_NONE);
	if (n->ttl >= 0 && !apns_overridden(r->headers, ngiven, "apns-expiration")) {
		snprintf(r->expiration, sizeof r->expiration, "%" PRId64,
		    n->ttl == 0 ? 0 : d->accepted_at / 1000 + n->ttl);
		apns_nv(&r->headers[nh++], "apns-expiration", r->expiration,
		    NGHTTP2_NV_FLAG_NONE);
	}
	if (n->collapse_id != NULL && !apns_overridden(r->headers, ngiven, "apns-collapse-id"))
		apns_nv(&r->headers[nh++], "apns-collapse-id", n->collapse_id,
		    NGHTTP2_NV_FLAG_NONE);
	/* Unique per request: indexing them would only push useful entries out. */
	if (!apns_overridden(r->headers, ngiven, "apns-id"))
		apns_nv(&r->headers[nh++], "apns-id", d->id, NGHTTP2_NV_FLAG_NO_INDEX);
	if (app->auth == CONFIG_APNS_AUTH_TOKEN) {
		r->token = app->token;
		r->token->refcount++;
		apns_nv(&r->headers[nh++], "authorization", r->token->authorization,
		    NGHTTP2_NV_FLAG_NO_INDEX);
	}

	r->request.method = "POST";
	r->request.path = path;
	r->request.headers = r->headers;
	r->request.nheaders = nh;
	r->request.body = (const uint8_t *)at;
	r->request.body_len = payload_render(&content->apns, d->token, d->badge, at);
	r->request.done = apns_request_done;
	r->request.arg = r;

	if ((error = h2_pool_submit(app->pools[environment], &r->request)) == 0)
		return PROVIDER_OK;
	apns_token_unref(r->token);
	free(r);
	if (error == H2_EQUEUEFULL)
		return PROVIDER_EBUSY;
	if (error == H2_ESHUTDOWN)
		return PROVIDER_ESHUTDOWN;
	memset(&result, 0, sizeof result);
	result.verdict = PROVIDER_REJECTED;
	snprintf(result.reason, sizeof result.reason, "%s", h2_strerror(error));
	p->stats.rejected++;
	apns_defer(p, d, done, done_arg, &result);
	return PROVIDER_OK;
}

/* ---- reload, drain, free, stats ---- */

/* A new app's credentials, loaded before anything is changed. */
struct apns_staged {
	const struct config_apns_app *config;
	struct jwt_key *key;
	unsigned char key_digest[32];
	SSL_CTX *ssl_ctx;
};

/* Put the client certificate of from into the app's context (used by new connections). */
static int
apns_certificate_adopt(struct apns_app *app, SSL_CTX *from, char *err, size_t errlen)
{
	X509 *cert = SSL_CTX_get0_certificate(from);
	EVP_PKEY *key = SSL_CTX_get0_privatekey(from);
	STACK_OF(X509) *chain = NULL;

	if (cert == NULL || key == NULL || SSL_CTX_get0_chain_certs(from, &chain) != 1 ||
	    SSL_CTX_use_cert_and_key(app->ssl_ctx, cert, key, chain, 1) != 1) {
		snprintf(err, errlen, "[apns \"%s\"] the new client certificate was refused",
		    app->name);
		return -1;
	}
	return 0;
}

/* Adopt new credentials: all of them, or none if any fails to load. */
static int
apns_reload_staged(struct provider *p, const struct config *config, int apply, char *err,
    size_t errlen)
{
	struct apns_staged *staged;
	struct apns_app *app;
	const struct config_apns_app *c;
	size_t i;
	int rc = -1, changed;

	staged = xcalloc(p->napps > 0 ? p->napps : 1, sizeof *staged);
	for (i = 0; i < p->napps; i++) {
		app = &p->apps[i];
		c = config_apns_app_find(config, app->name);
		if (c == NULL || c->auth != app->auth) {
			snprintf(err, errlen, "[apns \"%s\"] %s: that needs a restart", app->name,
			    c == NULL ? "removed" : "auth changed");
			goto done;
		}
		staged[i].config = c;
		if (c->auth == CONFIG_APNS_AUTH_TOKEN) {
			if (apns_identity_check(c, err, errlen) != 0)
				goto done;
			if (apns_key_load(c, &staged[i].key, staged[i].key_digest, err,
			    errlen) != 0)
				goto done;
		} else if (apns_tls_load(c, &staged[i].ssl_ctx, err, errlen) != 0 ||
		    apns_certificate_check(c, staged[i].ssl_ctx, err, errlen) != 0)
			goto done;
	}

	rc = 0;
	for (i = 0; apply && i < p->napps; i++) {
		app = &p->apps[i];
		c = staged[i].config;
		if (app->auth == CONFIG_APNS_AUTH_CERTIFICATE) {
			if (apns_certificate_adopt(app, staged[i].ssl_ctx, err, errlen) != 0)
				rc = -1;
			else
				log_info("apns client certificate reloaded", "app", app->name,
				    NULL);
			continue;
		}
		app->token_refresh_ms = c->token_refresh_ms;
		changed = memcmp(app->key_digest, staged[i].key_digest,
		    sizeof app->key_digest) != 0 || strcmp(app->key_id, c->key_id) != 0 ||
		    strcmp(app->team_id, c->team_id) != 0;
		if (!changed)
			continue;
		/* A new key or identity: its token is due now, whatever its age. */
		jwt_key_free(app->key);
		app->key = staged[i].key;
		staged[i].key = NULL;
		memcpy(app->key_digest, staged[i].key_digest, sizeof app->key_digest);
		free(app->key_id);
		app->key_id = xstrdup(c->key_id);
		free(app->team_id);
		app->team_id = xstrdup(c->team_id);
		apns_token_renew(app, "reload");
	}

done:
	for (i = 0; i < p->napps; i++) {
		jwt_key_free(staged[i].key);
		SSL_CTX_free(staged[i].ssl_ctx);
	}
	free(staged);
	return rc;
}

/* Check that a new configuration's credentials load. */
static int
apns_check(struct provider *p, const struct config *config, char *err, size_t errlen)
{
	return apns_reload_staged(p, config, 0, err, errlen);
}

/* Adopt new credentials; all or nothing. */
static int
apns_reload(struct provider *p, const struct config *config, char *err, size_t errlen)
{
	return apns_reload_staged(p, config, 1, err, errlen);
}

/* One pool has finished its requests and closed its connections. */
static void
apns_pool_drained(struct h2_pool *pool, void *arg)
{
	struct provider *p = arg;

	p->pools_draining--;
	apns_check_drained(p);
}

/* Take no more deliveries; call done when every request has completed. */
static void
apns_drain(struct provider *p, void (*done)(void *), void *arg)
{
	size_t i;
	int environment;

	if (p->draining)
		return;
	p->draining = 1;
	p->drain_done = done;
	p->drain_arg = arg;
	for (i = 0; i < p->napps; i++) {
		for (environment = 0; environment < APNS_ENVIRONMENTS; environment++) {
			if (p->apps[i].pools[environment] != NULL)
				p->pools_draining++;
		}
	}
	for (i = 0; i < p->napps; i++) {
		for (environment = 0; environment < APNS_ENVIRONMENTS; environment++) {
			if (p->apps[i].pools[environment] != NULL)
				h2_pool_drain(p->apps[i].pools[environment], apns_pool_drained, p);
		}
	}
	/* Nothing to wait for still answers from the event loop. */
	event_active(p->deferred_ev, EV_TIMEOUT, 0);
}

/* Free: requests in flight complete with PROVIDER_RETRY "shutdown". */
static void
apns_free(struct provider *p)
{
	struct apns_deferred *item;
	struct apns_app *app;
	size_t i;
	int environment;

	if (p == NULL)
		return;
	p->freeing = 1;
	for (i = 0; i < p->napps; i++) {
		for (environment = 0; environment < APNS_ENVIRONMENTS; environment++) {
			h2_pool_free(p->apps[i].pools[environment]);
			p->apps[i].pools[environment] = NULL;
		}
	}
	while ((item = TAILQ_FIRST(&p->deferred)) != NULL) {
		TAILQ_REMOVE(&p->deferred, item, entry);
		p->ndeferred--;
		item->done(item->delivery, &item->result, item->done_arg);
		free(item);
	}
	event_free(p->deferred_ev);
	for (i = 0; i < p->napps; i++) {
		app = &p->apps[i];
		apns_token_unref(app->token);
		jwt_key_free(app->key);
		SSL_CTX_free(app->ssl_ctx);
		free(app->name);
		free(app->topic);
		free(app->key_id);
		free(app->team_id);
	}
	free(p->apps);
	free(p);
}

/* Counters, and the pools' gauges summed. */
static void
apns_stats(const struct provider *p, struct provider_stats *stats)
{
	struct h2_pool_stats ps;
	size_t i;
	int environment;

	*stats = p->stats;
	stats->connections = 0;
	stats->streams_in_flight = 0;
	stats->queued = 0;
	for (i = 0; i < p->napps; i++) {
		for (environment = 0; environment < APNS_ENVIRONMENTS; environment++) {
			if (p->apps[i].pools[environment] == NULL)
				continue;
			h2_pool_get_stats(p->apps[i].pools[environment], &ps);
			stats->connections += ps.connections_open;
			stats->streams_in_flight += ps.streams_in_flight;
			stats->queued += ps.queue_depth;
		}
	}
}

const struct provider_ops provider_apns_ops = {
	.name = "apns",
	.create = apns_create,
	.send = apns_send,
	.check = apns_check,
	.reload = apns_reload,
	.drain = apns_drain,
	.free = apns_free,
	.stats = apns_stats,
	.check_offline = apns_check_offline,
};
