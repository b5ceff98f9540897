/*
 * The FCM HTTP v1 provider: one [fcm "APP_ID"] section per Firebase project, each with
 * its service account and OAuth access token (fcm_auth.c) and its own HTTP/2 pool.
 *
 * Until a project has an access token, sends wait in a small list and go when it
 * arrives, or fail as retryable after the request timeout.
 *
 * A 401 without an FcmError detail means FCM no longer takes our access token
 * (revoked, expired early): the token is dropped, so new sends wait for a fresh one,
 * and the delivery comes back as PROVIDER_RETRY with no delay so that the delivery
 * layer resends it with the new token. If the token fetched because of a 401 is itself
 * answered 401 before anything succeeds with it, the credentials are wrong in a way a
 * new token does not fix: those answers are PROVIDER_CONFIG.
 *
 * The send path does one allocation per delivery, holding the h2 request, its headers,
 * path and rendered body; the authorization header points into the reference-counted
 * token, kept alive while any request using it is in flight. The header is indexed by
 * HPACK: it is the same for every request of an hour, which saves its bytes on each.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "delivery.h"
#include "fcm.h"
#include "fcm_auth.h"
#include "h2_pool.h"
#include "httpc.h"
#include "log.h"
#include "payload.h"
#include "provider.h"
#include "retry_after.h"
#include "tls.h"
#include "utf8.h"
#include "xmalloc.h"

#define FCM_MAX_STREAMS 100		/* per connection, as fcm.googleapis.com allows */
/* Requests the pool keeps waiting for a stream: two connections' worth (see apns.c). */
#define FCM_QUEUE_LIMIT (2 * FCM_MAX_STREAMS)
#define FCM_PENDING_MAX 1024		/* sends waiting for a project's first token */
#define FCM_QUOTA_RETRY_MS 60000	/* QUOTA_EXCEEDED: "min initial delay 1 min" */
#define FCM_RESPONSE_BODY_LIMIT 8192

struct fcm_project;

/* One delivery in our hands, in a single allocation with its request. */
struct fcm_send {
	struct h2_request request;
	nghttp2_nv headers[2];
	struct fcm_project *project;
	struct delivery *delivery;
	provider_done_fn *done;		/* told of the result */
	void *done_arg;
	struct fcm_token *token;	/* while in flight */
	TAILQ_ENTRY(fcm_send) entry;	/* pending or finished list */
	int64_t deadline_ms;		/* pending: monotonic */
	struct provider_result result;	/* finished without an answer */
	size_t body_len;
	char *path;			/* both point into data */
	char *body;
	char data[];
};
TAILQ_HEAD(fcm_sends, fcm_send);

struct fcm_project {
	struct provider *fcm;
	char *app_id;			/* the section's name */
	char *ca_file;
	char *proxy;
	int request_timeout_ms;
	struct fcm_auth *auth;		/* the service account and its access tokens */
	char *path;			/* /v1/projects/<project_id>/messages:send */
	struct h2_pool *pool;
	int pool_draining;
	int pool_drained;

	struct fcm_sends pending;	/* waiting for an access token */
	size_t npending;
	struct event *pending_timer;
};

struct provider {
	struct event_base *base;
	struct httpc *httpc;
	struct fcm_project *projects;
	size_t nprojects;

	struct fcm_sends finished;	/* decided without sending: completed from the loop */
	struct event *finish_event;

	int draining;
	int freeing;
	void (*drain_done)(void *);
	void *drain_arg;
	struct event *drain_event;

	struct provider_stats stats;
};

static void fcm_drain_check(struct provider *);

/* ---- completing deliveries ---- */

static void
fcm_result_set(struct provider_result *result, enum provider_verdict verdict, int status,
    const char *reason, int64_t retry_after_ms)
{
	memset(result, 0, sizeof *result);
	result->verdict = verdict;
	result->status = status;
	snprintf(result->reason, sizeof result->reason, "%s", reason);
	result->retry_after_ms = retry_after_ms;
}

/* Count a verdict. */
static void
fcm_count(struct provider *fcm, const struct provider_result *result)
{
	switch (result->verdict) {
	case PROVIDER_SENT:
		fcm->stats.sent++;
		break;
	case PROVIDER_RETRY:
		fcm->stats.retried++;
		break;
	case PROVIDER_TOKEN_GONE:
		fcm->stats.token_gone++;
		break;
	case PROVIDER_REJECTED:
		fcm->stats.rejected++;
		break;
	case PROVIDER_CONFIG:
		fcm->stats.config_errors++;
		fcm->stats.auth_failures++;
		break;
	}
}

/* Free a send and report its delivery's result. */
static void
fcm_send_complete(struct fcm_send *send, const struct provider_result *result)
{
	struct provider *fcm = send->project->fcm;
	struct delivery *delivery = send->delivery;
	provider_done_fn *done = send->done;
	void *done_arg = send->done_arg;
	struct provider_result copy = *result;	/* it may live in send */

	fcm_count(fcm, &copy);
	fcm_token_unref(send->token);
	free(send);
	done(delivery, &copy, done_arg);
}

/* Complete the finished list from the loop. */
static void
fcm_finish_event(evutil_socket_t fd, short what, void *arg)
{
	struct provider *fcm = arg;
	struct fcm_send *send;

	(void)fd;
	(void)what;
	while ((send = TAILQ_FIRST(&fcm->finished)) != NULL) {
		TAILQ_REMOVE(&fcm->finished, send, entry);
		fcm_send_complete(send, &send->result);
	}
	fcm_drain_check(fcm);
}

/* Complete a send later, from the loop: never from inside provider send(). */
static void
fcm_finish_later(struct fcm_send *send, enum provider_verdict verdict, int status,
    const char *reason)
{
	struct provider *fcm = send->project->fcm;

	fcm_result_set(&send->result, verdict, status, reason, 0);
	TAILQ_INSERT_TAIL(&fcm->finished, send, entry);
	event_active(fcm->finish_event, EV_TIMEOUT, 0);
}

/* ---- classifying answers ---- */

/* What the Google error envelope says. */
struct fcm_error_info {
	char error_code[64];		/* FcmError errorCode, "" when absent */
	char status[64];		/* error.status, "" when absent */
	int token_violation;		/* the registration token is what is wrong */
};

/* Does s mention the registration token? */
static int
fcm_mentions_registration_token(const char *s)
{
	static const char needle[] = "registration token";
	size_t n = sizeof needle - 1;

	for (; *s != '\0'; s++) {
		if (strncasecmp(s, needle, n) == 0)
			return 1;
	}
	return 0;
}

/* Does a detail's "@type" name this type? */
static int
fcm_detail_is(json_t *detail, const char *type)
{
	const char *t = json_string_value(json_object_get(detail, "@type"));
	size_t tl, l = strlen(type);

	if (t == NULL)
		return 0;
	tl = strlen(t);
	return tl >= l && strcmp(t + tl - l, type) == 0 && (tl == l || t[tl - l - 1] == '/');
}

/* Parse {"error":{"code","message","status","details":[...]}}; missing parts stay "". */
static void
fcm_parse_error(const uint8_t *body, size_t len, struct fcm_error_info *info)
{
	json_t *root, *error, *details, *detail, *violations, *violation;
	const char *s;
	size_t i, j;

	memset(info, 0, sizeof *info);
	if (len == 0 || (root = json_loadb((const char *)body, len, 0, NULL)) == NULL)
		return;
	error = json_object_get(root, "error");
	/* Both may become the reason, for logs and the feedback's JSON: cut them whole. */
	if ((s = json_string_value(json_object_get(error, "status"))) != NULL)
		utf8_sanitize(info->status, sizeof info->status, s, strlen(s));
	if ((s = json_string_value(json_object_get(error, "message"))) != NULL &&
	    fcm_mentions_registration_token(s))
		info->token_violation = 1;
	details = json_object_get(error, "details");
	json_array_foreach(details, i, detail) {
		if (fcm_detail_is(detail, "google.firebase.fcm.v1.FcmError")) {
			s = json_string_value(json_object_get(detail, "errorCode"));
			if (s != NULL)
				utf8_sanitize(info->error_code, sizeof info->error_code, s,
				    strlen(s));
		} else if (fcm_detail_is(detail, "google.rpc.BadRequest")) {
			violations = json_object_get(detail, "fieldViolations");
			json_array_foreach(violations, j, violation) {
				s = json_string_value(json_object_get(violation, "field"));
				if (s != NULL && strcmp(s, "message.token") == 0)
					info->token_violation = 1;
			}
		}
	}
	json_decref(root);
}

/*
 * The table fcm_answer_classify() follows (fcm.h):
 *
 *	2xx					SENT
 *	429, QUOTA_EXCEEDED			RETRY after Retry-After, or 60 s when it is
 *						absent or 0 ("min initial delay 1 min")
 *	5xx, UNAVAILABLE, INTERNAL		RETRY after Retry-After (0: our backoff)
 *	UNREGISTERED, SENDER_ID_MISMATCH	TOKEN_GONE
 *	THIRD_PARTY_AUTH_ERROR (APNS_AUTH_ERROR) CONFIG: the APNs/web push credentials
 *						in Firebase, not ours; the token is kept
 *	401 without FcmError			our access token: fcm_unauthorized()
 *	400 on message.token, or whose message	TOKEN_GONE
 *	  mentions the registration token
 *	other 400				REJECTED: this payload will never go
 *	other 403 (PERMISSION_DENIED), 404	CONFIG: wrong project, or a wrong URL
 *	anything else				REJECTED
 */
int
fcm_answer_classify(const struct h2_response *response, struct provider_result *result)
{
	struct fcm_error_info info;
	const char *reason;
	int64_t retry_ms;
	int status = response->status;
	char fallback[32];

	memset(result, 0, sizeof *result);
	result->status = status;
	if (status >= 200 && status < 300) {
		result->verdict = PROVIDER_SENT;
		return 0;
	}
	fcm_parse_error(response->body, response->body_len, &info);
	if (info.error_code[0] != '\0')
		reason = info.error_code;
	else if (info.status[0] != '\0')
		reason = info.status;
	else {
		snprintf(fallback, sizeof fallback, "HTTP %d", status);
		reason = fallback;
	}
	utf8_sanitize(result->reason, sizeof result->reason, reason, strlen(reason));
	/* Malformed counts as absent; RETRY_AFTER_MAX_MS at most. */
	retry_ms = retry_after_parse_ms(h2_response_header(response, "retry-after"),
	    clock_now_ms());

	if (status == 429 || strcmp(info.error_code, "QUOTA_EXCEEDED") == 0) {
		result->verdict = PROVIDER_RETRY;
		result->retry_after_ms = retry_ms > 0 ? retry_ms : FCM_QUOTA_RETRY_MS;
	} else if (status >= 500 || strcmp(info.error_code, "UNAVAILABLE") == 0 ||
	    strcmp(info.error_code, "INTERNAL") == 0) {
		result->verdict = PROVIDER_RETRY;
		result->retry_after_ms = retry_ms > 0 ? retry_ms : 0;
	} else if (strcmp(info.error_code, "UNREGISTERED") == 0 ||
	    strcmp(info.error_code, "SENDER_ID_MISMATCH") == 0)
		result->verdict = PROVIDER_TOKEN_GONE;
	else if (strcmp(info.error_code, "THIRD_PARTY_AUTH_ERROR") == 0 ||
	    strcmp(info.error_code, "APNS_AUTH_ERROR") == 0)
		result->verdict = PROVIDER_CONFIG;
	else if (status == 401)
		return 1;
	else if (status == 400)
		result->verdict = info.token_violation ? PROVIDER_TOKEN_GONE : PROVIDER_REJECTED;
	else if (status == 403 || status == 404)
		/* PERMISSION_DENIED (wrong project), or a 404 without UNREGISTERED (a wrong URL). */
		result->verdict = PROVIDER_CONFIG;
	else
		result->verdict = PROVIDER_REJECTED;
	return 0;
}

/* A 401 without an FcmError: renew once, retry; twice in a row, it is our setup. */
static void
fcm_unauthorized(struct fcm_project *project, struct fcm_token *token,
    struct provider_result *result)
{
	result->verdict = PROVIDER_RETRY;
	result->retry_after_ms = 0;
	if (!fcm_auth_is_current(project->auth, token)) {
		/* Renewed (or dropped for renewal) since this request left: just resend. */
		return;
	}
	if (token->after_unauthorized && !token->proven) {
		result->verdict = PROVIDER_CONFIG;
		log_error("fcm refuses fresh access tokens: check the service account's "
		    "roles and that the FCM API is enabled", "app_id", project->app_id,
		    "project_id", fcm_auth_credentials(project->auth)->project_id, "reason",
		    result->reason, NULL);
		return;
	}
	log_warn("fcm refused the access token, renewing it", "app_id", project->app_id,
	    "reason", result->reason, NULL);
	fcm_auth_refused(project->auth);
}

static void fcm_pending_flush(struct fcm_project *);

/* The pool's answer to a send. */
static void
fcm_send_done(struct h2_request *request, const struct h2_response *response, void *arg)
{
	struct fcm_send *send = arg;
	struct fcm_project *project = send->project;
	struct provider_result result;
	char reason[sizeof result.reason];

	(void)request;
	if (response->error != 0) {
		if (response->error == H2_ECANCELLED && project->fcm->freeing)
			snprintf(reason, sizeof reason, "shutdown");
		else if (response->reason != NULL)
			snprintf(reason, sizeof reason, "%s: %s", h2_strerror(response->error),
			    response->reason);
		else
			snprintf(reason, sizeof reason, "%s", h2_strerror(response->error));
		fcm_result_set(&result, PROVIDER_RETRY, 0, reason, 0);
	} else if (fcm_answer_classify(response, &result) == 1)
		fcm_unauthorized(project, send->token, &result);
	else if (send->token != NULL && response->status != 401)
		send->token->proven = 1;
	if (result.verdict == PROVIDER_CONFIG) {
		char status[16];

		snprintf(status, sizeof status, "%d", response->status);
		log_error("fcm refused our credentials or setup", "app_id", project->app_id,
		    "project_id", fcm_auth_credentials(project->auth)->project_id,
		    "delivery_id", send->delivery->id, "status", status, "reason",
		    result.reason, NULL);
	}
	fcm_send_complete(send, &result);
	/* Room in the pool: sends that waited for a token and found it full go now. */
	if (project->npending > 0)
		fcm_pending_flush(project);
	fcm_drain_check(project->fcm);
}

/*
 * Hand a send with a token to the pool; on failure the send is completed or freed,
 * but a waiting one (from_send 0) that finds the pool full: PROVIDER_EBUSY, still
 * the caller's.
 */
static int
fcm_submit(struct fcm_project *project, struct fcm_send *send, struct fcm_token *token,
    int from_send)
{
	char reason[64];
	int rv;

	send->token = token;
	fcm_token_ref(token);
	send->headers[1].value = (uint8_t *)token->authorization;
	send->headers[1].valuelen = strlen(token->authorization);
	rv = h2_pool_submit(project->pool, &send->request);
	if (rv == 0)
		return PROVIDER_OK;
	fcm_token_unref(token);
	send->token = NULL;
	if (from_send && (rv == H2_EQUEUEFULL || rv == H2_ESHUTDOWN)) {
		free(send);
		return rv == H2_EQUEUEFULL ? PROVIDER_EBUSY : PROVIDER_ESHUTDOWN;
	}
	/* A waiting send that finds the pool full waits on, for the next completion. */
	if (!from_send && rv == H2_EQUEUEFULL)
		return PROVIDER_EBUSY;
	snprintf(reason, sizeof reason, "h2: %s", h2_strerror(rv));
	if (from_send)
		fcm_finish_later(send, PROVIDER_RETRY, 0, reason);
	else {
		struct provider_result result;

		fcm_result_set(&result, PROVIDER_RETRY, 0, reason, 0);
		fcm_send_complete(send, &result);
	}
	return PROVIDER_OK;
}

/* ---- sends waiting for a token ---- */

/* Arm the pending timer for the oldest waiting send. */
static void
fcm_pending_arm(struct fcm_project *project)
{
	struct fcm_send *send = TAILQ_FIRST(&project->pending);
	struct timeval tv;
	int64_t delay;

	if (send == NULL) {
		evtimer_del(project->pending_timer);
		return;
	}
	delay = send->deadline_ms - clock_monotonic_ms();
	if (delay < 0)
		delay = 0;
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(project->pending_timer, &tv);
}

/* Waiting sends whose time is up fail as retryable, with the OAuth problem. */
static void
fcm_pending_event(evutil_socket_t fd, short what, void *arg)
{
	struct fcm_project *project = arg;
	struct provider_result result;
	struct fcm_send *send;
	char reason[sizeof result.reason];

	(void)fd;
	(void)what;
	snprintf(reason, sizeof reason, "oauth: %.120s",
	    *fcm_auth_error(project->auth) != '\0' ? fcm_auth_error(project->auth) :
	    "no access token yet");
	while ((send = TAILQ_FIRST(&project->pending)) != NULL &&
	    send->deadline_ms <= clock_monotonic_ms()) {
		TAILQ_REMOVE(&project->pending, send, entry);
		project->npending--;
		fcm_result_set(&result, PROVIDER_RETRY, 0, reason, 0);
		fcm_send_complete(send, &result);
	}
	fcm_pending_arm(project);
	fcm_drain_check(project->fcm);
}

/* A token arrived: send everything that waited for it. */
static void
fcm_pending_flush(struct fcm_project *project)
{
	struct fcm_token *token;
	struct fcm_send *send;

	while ((token = fcm_auth_token(project->auth)) != NULL &&
	    (send = TAILQ_FIRST(&project->pending)) != NULL) {
		TAILQ_REMOVE(&project->pending, send, entry);
		project->npending--;
		if (fcm_submit(project, send, token, 0) == PROVIDER_EBUSY) {
			/* The pool is full: the rest go as its requests complete. */
			TAILQ_INSERT_HEAD(&project->pending, send, entry);
			project->npending++;
			break;
		}
	}
	fcm_pending_arm(project);
}

/* fcm_auth.c has a new access token for a project. */
static void
fcm_token_ready(void *arg)
{
	struct fcm_project *project = arg;

	fcm_pending_flush(project);
	fcm_drain_check(project->fcm);
}

/* ---- the provider ---- */

static void
fcm_project_free(struct fcm_project *project)
{
	struct provider_result result;
	struct fcm_send *send;

	fcm_result_set(&result, PROVIDER_RETRY, 0, "shutdown", 0);
	while ((send = TAILQ_FIRST(&project->pending)) != NULL) {
		TAILQ_REMOVE(&project->pending, send, entry);
		project->npending--;
		fcm_send_complete(send, &result);
	}
	if (project->pool != NULL)
		h2_pool_free(project->pool);
	fcm_auth_free(project->auth);
	if (project->pending_timer != NULL)
		event_free(project->pending_timer);
	free(project->app_id);
	free(project->ca_file);
	if (project->proxy != NULL)
		OPENSSL_cleanse(project->proxy, strlen(project->proxy));
	free(project->proxy);
	free(project->path);
}

/* Set up one [fcm] section: credentials, TLS, pool. */
static int
fcm_project_init(struct provider *fcm, struct fcm_project *project,
    const struct config_fcm_app *app, char *err, size_t errlen)
{
	struct tls_client_options tls;
	struct h2_pool_options options;
	SSL_CTX *ctx = NULL;
	char why[256], *authorization = NULL;
	int rc;

	project->fcm = fcm;
	project->app_id = xstrdup(app->name);
	project->ca_file = app->ca_file != NULL ? xstrdup(app->ca_file) : NULL;
	/* libcurl's form, credentials included, for the token exchange. */
	project->proxy = provider_proxy_url(&app->proxy_endpoint);
	project->request_timeout_ms = (int)app->request_timeout_ms;
	TAILQ_INIT(&project->pending);
	if ((project->pending_timer = evtimer_new(fcm->base, fcm_pending_event,
	    project)) == NULL)
		fatalx("evtimer_new: out of memory");

	if ((project->auth = fcm_auth_new(fcm->base, fcm->httpc, app->name,
	    app->service_account_file != NULL ? app->service_account_file : "",
	    project->ca_file, project->proxy, fcm_token_ready, project, err, errlen)) == NULL)
		return -1;
	project->path = xasprintf("/v1/projects/%s/messages:send",
	    fcm_auth_credentials(project->auth)->project_id);

	/* config_load() parsed the URLs: a config built otherwise must do it too. */
	if (app->endpoint.host[0] == '\0') {
		snprintf(err, errlen, "fcm \"%s\": url %s: not parsed by config_load()",
		    app->name, app->url != NULL ? app->url : "(none)");
		return -1;
	}
	if (app->proxy != NULL && *app->proxy != '\0' && app->proxy_endpoint.host[0] == '\0') {
		snprintf(err, errlen, "fcm \"%s\": proxy: not parsed by config_load()",
		    app->name);
		return -1;
	}
	memset(&tls, 0, sizeof tls);
	tls.ca_file = project->ca_file;
	if (tls_client_ctx_new(&tls, &ctx, why, sizeof why) != 0) {
		snprintf(err, errlen, "fcm \"%s\": %s", app->name, why);
		return -1;
	}
	memset(&options, 0, sizeof options);
	options.host = app->endpoint.host;
	options.port = app->endpoint.port;
	options.authority = app->endpoint.authority;
	options.ssl_ctx = ctx;
	if (project->proxy != NULL) {
		if (app->proxy_endpoint.from_environment)
			log_info("fcm proxy from the environment (https_proxy)", "app", app->name,
			    "proxy", app->proxy_endpoint.authority, NULL);
		options.proxy_host = app->proxy_endpoint.host;
		options.proxy_port = app->proxy_endpoint.port;
		options.proxy_authorization = authorization = provider_proxy_authorization(
		    &app->proxy_endpoint);
	}
	options.max_connections = app->connections > 0 ? (unsigned)app->connections : 1;
	options.idle_close_ms = (int)app->connection_idle_ms;
	options.max_streams_per_connection = FCM_MAX_STREAMS;
	options.queue_limit = FCM_QUEUE_LIMIT;
	options.request_timeout_ms = project->request_timeout_ms;
	options.response_body_limit = FCM_RESPONSE_BODY_LIMIT;
	rc = h2_pool_new(fcm->base, &options, &project->pool, why, sizeof why);
	if (authorization != NULL) {
		OPENSSL_cleanse(authorization, strlen(authorization));
		free(authorization);
	}
	if (rc != 0) {
		SSL_CTX_free(ctx);
		snprintf(err, errlen, "fcm \"%s\": %s", app->name, why);
		return -1;
	}
	SSL_CTX_free(ctx);	/* the pool keeps its reference */
	return 0;
}

static void fcm_free(struct provider *);
static void fcm_drain_event(evutil_socket_t, short, void *);

/* Create the provider and start fetching every project's first access token. */
static struct provider *
fcm_create(struct event_base *base, const struct config *config, char *err, size_t errlen)
{
	struct provider *fcm;
	size_t i;

	fcm = xcalloc(1, sizeof *fcm);
	fcm->base = base;
	TAILQ_INIT(&fcm->finished);
	if ((fcm->finish_event = event_new(base, -1, 0, fcm_finish_event, fcm)) == NULL ||
	    (fcm->drain_event = evtimer_new(base, fcm_drain_event, fcm)) == NULL)
		fatalx("event_new: out of memory");
	fcm->httpc = httpc_new(base);
	fcm->projects = xcalloc(config->fcm_app_count > 0 ? config->fcm_app_count : 1,
	    sizeof *fcm->projects);
	for (i = 0; i < config->fcm_app_count; i++) {
		fcm->nprojects++;
		if (fcm_project_init(fcm, &fcm->projects[i], &config->fcm_apps[i], err,
		    errlen) != 0) {
			fcm_free(fcm);
			return NULL;
		}
	}
	for (i = 0; i < fcm->nprojects; i++) {
		log_info("fcm project ready", "app_id", fcm->projects[i].app_id, "project_id",
		    fcm_auth_credentials(fcm->projects[i].auth)->project_id, "endpoint",
		    h2_pool_endpoint(fcm->projects[i].pool), NULL);
		fcm_auth_start(fcm->projects[i].auth);
	}
	return fcm;
}

static struct fcm_project *
fcm_project_find(struct provider *fcm, const char *app_id)
{
	for (size_t i = 0; i < fcm->nprojects; i++) {
		if (strcmp(fcm->projects[i].app_id, app_id) == 0)
			return &fcm->projects[i];
	}
	return NULL;
}

/* Take one delivery. */
static int
fcm_send(struct provider *fcm, struct delivery *delivery, provider_done_fn *done,
    void *done_arg)
{
	struct fcm_project *project;
	struct push_content *content = delivery->content;
	struct fcm_token *token;
	struct fcm_send *send;
	size_t path_len, body_max = 0;

	if (fcm->draining || fcm->freeing)
		return PROVIDER_ESHUTDOWN;
	if (delivery->app_id == NULL ||
	    (project = fcm_project_find(fcm, delivery->app_id)) == NULL)
		return PROVIDER_ENOAPP;
	payload_content_prepare(content, DEVICE_PLATFORM_FCM);
	token = fcm_auth_token(project->auth);
	if (token == NULL && content->fcm_error == PAYLOAD_OK &&
	    project->npending >= FCM_PENDING_MAX)
		return PROVIDER_EBUSY;

	path_len = strlen(project->path);
	if (content->fcm_error == PAYLOAD_OK)
		body_max = payload_render_max(&content->fcm, strlen(delivery->token));
	send = xmalloc(sizeof *send + path_len + 1 + body_max + 1);
	memset(send, 0, sizeof *send);
	send->project = project;
	send->delivery = delivery;
	send->done = done;
	send->done_arg = done_arg;
	send->path = send->data;
	memcpy(send->path, project->path, path_len + 1);
	send->body = send->data + path_len + 1;
	if (content->fcm_error != PAYLOAD_OK) {
		fcm_finish_later(send, PROVIDER_REJECTED, 0, payload_strerror(content->fcm_error));
		return PROVIDER_OK;
	}
	send->body_len = payload_render(&content->fcm, delivery->token, delivery->badge,
	    send->body);
	send->body[send->body_len] = '\0';

	send->headers[0].name = (uint8_t *)"content-type";
	send->headers[0].namelen = sizeof "content-type" - 1;
	send->headers[0].value = (uint8_t *)"application/json";
	send->headers[0].valuelen = sizeof "application/json" - 1;
	send->headers[1].name = (uint8_t *)"authorization";
	send->headers[1].namelen = sizeof "authorization" - 1;
	send->request.method = "POST";
	send->request.path = send->path;
	send->request.headers = send->headers;
	send->request.nheaders = 2;
	send->request.body = (const uint8_t *)send->body;
	send->request.body_len = send->body_len;
	send->request.done = fcm_send_done;
	send->request.arg = send;

	if (token != NULL)
		return fcm_submit(project, send, token, 1);

	send->deadline_ms = clock_monotonic_ms() + project->request_timeout_ms;
	TAILQ_INSERT_TAIL(&project->pending, send, entry);
	project->npending++;
	if (!evtimer_pending(project->pending_timer, NULL))
		fcm_pending_arm(project);
	fcm_auth_want(project->auth);
	return PROVIDER_OK;
}

/* Re-read every project's service account; all or nothing; apply 0 only checks. */
static int
fcm_reload_staged(struct provider *fcm, const struct config *config, int apply, char *err,
    size_t errlen)
{
	struct fcm_credentials *loaded;
	const struct config_fcm_app *app;
	struct fcm_project *project;
	size_t i;
	int rv = 0;

	if (config->fcm_app_count != fcm->nprojects) {
		snprintf(err, errlen, "fcm: adding or removing [fcm] sections needs a restart");
		return -1;
	}
	loaded = xcalloc(fcm->nprojects > 0 ? fcm->nprojects : 1, sizeof *loaded);
	for (i = 0; i < fcm->nprojects && rv == 0; i++) {
		project = &fcm->projects[i];
		if ((app = config_fcm_app_find(config, project->app_id)) == NULL) {
			snprintf(err, errlen, "fcm \"%s\": the section is gone: removing "
			    "[fcm] sections needs a restart", project->app_id);
			rv = -1;
		} else
			rv = fcm_credentials_load(app->name, app->service_account_file != NULL ?
			    app->service_account_file : "", &loaded[i], err, errlen);
	}
	if (rv != 0 || !apply) {
		for (i = 0; i < fcm->nprojects; i++)
			fcm_credentials_free(&loaded[i]);
		free(loaded);
		return rv != 0 ? -1 : 0;
	}
	for (i = 0; i < fcm->nprojects; i++) {
		project = &fcm->projects[i];
		if (!fcm_auth_adopt(project->auth, &loaded[i]))
			continue;
		free(project->path);
		project->path = xasprintf("/v1/projects/%s/messages:send",
		    fcm_auth_credentials(project->auth)->project_id);
	}
	free(loaded);
	return 0;
}

/* Check that a new configuration's service accounts load. */
static int
fcm_check(struct provider *fcm, const struct config *config, char *err, size_t errlen)
{
	return fcm_reload_staged(fcm, config, 0, err, errlen);
}

/* Adopt new service accounts; all or nothing. */
static int
fcm_reload(struct provider *fcm, const struct config *config, char *err, size_t errlen)
{
	return fcm_reload_staged(fcm, config, 1, err, errlen);
}

/* Tell the drain caller, from the loop. */
static void
fcm_drain_event(evutil_socket_t fd, short what, void *arg)
{
	struct provider *fcm = arg;
	void (*done)(void *) = fcm->drain_done;

	(void)fd;
	(void)what;
	fcm->drain_done = NULL;
	if (done != NULL)
		done(fcm->drain_arg);
}

static void
fcm_pool_drained(struct h2_pool *pool, void *arg)
{
	struct fcm_project *project = arg;

	(void)pool;
	project->pool_drained = 1;
	fcm_drain_check(project->fcm);
}

/* While draining: drain pools with nothing waiting, and finish when all are drained. */
static void
fcm_drain_check(struct provider *fcm)
{
	struct fcm_project *project;
	size_t i, drained = 0;

	if (!fcm->draining || fcm->freeing || fcm->drain_done == NULL)
		return;
	for (i = 0; i < fcm->nprojects; i++) {
		project = &fcm->projects[i];
		if (project->npending == 0 && !project->pool_draining) {
			project->pool_draining = 1;
			h2_pool_drain(project->pool, fcm_pool_drained, project);
		}
		if (project->pool_drained)
			drained++;
	}
	if (drained == fcm->nprojects && TAILQ_EMPTY(&fcm->finished) &&
	    !evtimer_pending(fcm->drain_event, NULL)) {
		struct timeval tv = { 0, 0 };

		evtimer_add(fcm->drain_event, &tv);
	}
}

/* Stop taking deliveries; call done once every one in our hands has completed. */
static void
fcm_drain(struct provider *fcm, void (*done)(void *), void *arg)
{
	if (fcm->draining)
		return;
	fcm->draining = 1;
	fcm->drain_done = done;
	fcm->drain_arg = arg;
	fcm_drain_check(fcm);
}

static void
fcm_free(struct provider *fcm)
{
	struct fcm_send *send;
	size_t i;

	if (fcm == NULL)
		return;
	fcm->freeing = 1;
	while ((send = TAILQ_FIRST(&fcm->finished)) != NULL) {
		TAILQ_REMOVE(&fcm->finished, send, entry);
		fcm_send_complete(send, &send->result);
	}
	for (i = 0; i < fcm->nprojects; i++)
		fcm_project_free(&fcm->projects[i]);
	free(fcm->projects);
	httpc_free(fcm->httpc);
	event_free(fcm->finish_event);
	event_free(fcm->drain_event);
	free(fcm);
}

static void
fcm_stats(const struct provider *fcm, struct provider_stats *stats)
{
	struct h2_pool_stats pool;
	uint64_t renewals, failures;

	*stats = fcm->stats;
	stats->connections = 0;
	stats->streams_in_flight = 0;
	stats->queued = 0;
	for (size_t i = 0; i < fcm->nprojects; i++) {
		if (fcm->projects[i].auth != NULL) {
			fcm_auth_counts(fcm->projects[i].auth, &renewals, &failures);
			stats->token_renewals += renewals;
			stats->auth_failures += failures;
		}
		stats->queued += (unsigned)fcm->projects[i].npending;
		if (fcm->projects[i].pool == NULL)
			continue;
		h2_pool_get_stats(fcm->projects[i].pool, &pool);
		stats->connections += pool.connections_open;
		stats->streams_in_flight += pool.streams_in_flight;
		stats->queued += pool.queue_depth;
	}
}

/* Every project's service account, loaded and dropped: what fcm_create would refuse. */
static size_t
fcm_check_offline(const struct config *config, provider_problem_fn *problem, void *arg)
{
	struct fcm_credentials cred;
	char err[512];
	size_t problems = 0;

	for (size_t i = 0; i < config->fcm_app_count; i++) {
		const struct config_fcm_app *c = &config->fcm_apps[i];

		memset(&cred, 0, sizeof cred);
		if (c->service_account_file == NULL) {
			snprintf(err, sizeof err, "[fcm \"%s\"] service_account_file is required",
			    c->name);
			problem(c->line, err, arg);
			problems++;
		} else if (fcm_credentials_load(c->name, c->service_account_file, &cred, err,
		    sizeof err) != 0) {
			problem(c->line, err, arg);
			problems++;
		}
		fcm_credentials_free(&cred);
	}
	return problems;
}

const struct provider_ops provider_fcm_ops = {
	.name = "fcm",
	.create = fcm_create,
	.send = fcm_send,
	.check = fcm_check,
	.reload = fcm_reload,
	.drain = fcm_drain,
	.free = fcm_free,
	.stats = fcm_stats,
	.check_offline = fcm_check_offline,
};
