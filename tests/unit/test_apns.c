/*
 * Tests for apns.c against the mock APNs (tests/mocks/mock_apns) on 127.0.0.1: what
 * the mock recorded of each request, and the provider_result of each delivery, as
 * the completion callback given to send() receives it.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "apns.h"
#include "clock.h"
#include "config.h"
#include "delivery.h"
#include "jwt.h"
#include "log.h"
#include "provider.h"
#include "utf8.h"

#define APP "com.example.app"
#define TEAM_ID "TEAM123456"
#define KEY_ID "KEY1234567"
#define TOKEN1 "aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44"
#define TOKEN2 "bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55"
#define MINUTE (60 * 1000)
#define RUN_TIMEOUT_MS 5000
#define MAX_DELIVERIES 256

/* A running mock_apns. */
struct mock {
	pid_t pid;
	int h2_port;
	int control_port;
};

/* What the completion callback saw. */
struct completion {
	struct delivery *delivery;
	struct provider_result result;
};

static struct {
	char dir[256];
	char ca[300], other_ca[300], server_cert[300], server_key[300], p8[300], pub[300];
	char p12[300], p12_password[300], rsa_key[300];
	char mock_path[512];
	struct jwt_key *public_key;
	struct mock mock;		/* token auth, one stream until authenticated */
} g;

/* Per test. */
static struct {
	struct event_base *base;
	struct config config;
	struct config_apns_app app;
	char url[64];
	struct provider *provider;
	struct delivery *deliveries[MAX_DELIVERIES];
	size_t ndeliveries;
	struct push_content *contents[16];
	size_t ncontents;
	struct completion completions[MAX_DELIVERIES];
	unsigned ncompletions;
	unsigned completed_in_send;
	int in_send;
	unsigned drained;
} t;

/* ---- the completion callback ---- */

/* Record a result, and whether it came from inside send(). */
static void
record_completion(struct delivery *delivery, const struct provider_result *result, void *arg)
{
	assert_ptr_equal(arg, &t);
	if (t.in_send)
		t.completed_in_send++;
	assert_true(t.ncompletions < MAX_DELIVERIES);
	t.completions[t.ncompletions].delivery = delivery;
	t.completions[t.ncompletions].result = *result;
	t.ncompletions++;
}

/* The one result of a delivery. */
static const struct provider_result *
result_of(const struct delivery *d)
{
	const struct provider_result *found = NULL;
	unsigned i;

	for (i = 0; i < t.ncompletions; i++) {
		if (t.completions[i].delivery == d) {
			assert_null(found);
			found = &t.completions[i].result;
		}
	}
	assert_non_null(found);
	return found;
}

/* ---- the mock ---- */

/* Start mock_apns with extra arguments (NULL-terminated); dies on failure. */
static void
mock_start(struct mock *m, ...)
{
	const char *argv[32];
	char line[256], log_path[300];
	int pipefd[2], logfd = -1, n = 0, len = 0;
	struct pollfd pfd;
	va_list ap;
	ssize_t r;

	argv[n++] = g.mock_path;
	argv[n++] = "--cert";
	argv[n++] = g.server_cert;
	argv[n++] = "--key";
	argv[n++] = g.server_key;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--control";
	argv[n++] = "127.0.0.1:0";
	va_start(ap, m);
	while ((argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);

	snprintf(log_path, sizeof log_path, "%s/mock.log", g.dir);
	if (pipe(pipefd) != 0)
		fail_msg("pipe: %s", strerror(errno));
	if ((logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644)) < 0)
		fail_msg("open %s: %s", log_path, strerror(errno));
	if ((m->pid = fork()) == 0) {
		dup2(pipefd[1], 1);
		dup2(logfd, 2);
		close(pipefd[0]);
		close(pipefd[1]);
		close(logfd);
		execv(g.mock_path, (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	close(logfd);
	pfd.fd = pipefd[0];
	pfd.events = POLLIN;
	while (len < (int)sizeof line - 1 && memchr(line, '\n', (size_t)len) == NULL) {
		if (poll(&pfd, 1, 10000) <= 0)
			break;
		if ((r = read(pipefd[0], line + len, sizeof line - 1 - (size_t)len)) <= 0)
			break;
		len += (int)r;
	}
	line[len] = '\0';
	close(pipefd[0]);
	if (sscanf(line, "READY h2=%d control=%d", &m->h2_port, &m->control_port) != 2)
		fail_msg("mock_apns did not start: \"%s\" (see %s)", line, log_path);
}

/* SIGTERM the mock and reap it. */
static void
mock_stop(struct mock *m)
{
	int status;

	if (m->pid <= 0)
		return;
	kill(m->pid, SIGTERM);
	waitpid(m->pid, &status, 0);
	m->pid = 0;
}

/* One call to the control API: the JSON answer (a new reference). */
static json_t *
control(const struct mock *m, const char *method, const char *path, const char *body)
{
	struct sockaddr_in sin;
	char request[1024], *response = NULL, *text;
	size_t len = 0, cap = 0;
	ssize_t r;
	int fd, status = 0;
	json_t *json;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)m->control_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	snprintf(request, sizeof request, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", method, path,
	    body != NULL ? strlen(body) : 0, body != NULL ? body : "");
	assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap * 2 + 8192;
			response = realloc(response, cap);
			assert_non_null(response);
		}
		if ((r = read(fd, response + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	response[len] = '\0';
	sscanf(response, "HTTP/1.%*d %d", &status);
	if (status < 200 || status > 299)
		fail_msg("%s %s: %s", method, path, response);
	text = strstr(response, "\r\n\r\n");
	assert_non_null(text);
	json = json_loads(text + 4, 0, NULL);
	assert_non_null(json);
	free(response);
	return json;
}

/* Forget requests, rules, counters and cached JWTs. */
static void
mock_reset(const struct mock *m)
{
	json_decref(control(m, "DELETE", "/requests", NULL));
	json_decref(control(m, "DELETE", "/rules", NULL));
	json_decref(control(m, "DELETE", "/stats", NULL));
}

/* Add one rule (or an array of them) to the main mock. */
static void
mock_rule(const char *rule)
{
	json_decref(control(&g.mock, "POST", "/rules", rule));
}

/* The requests the mock recorded (a new reference to the array). */
static json_t *
mock_requests(const struct mock *m)
{
	json_t *answer = control(m, "GET", "/requests", NULL), *requests;

	requests = json_incref(json_object_get(answer, "requests"));
	json_decref(answer);
	assert_true(json_is_array(requests));
	return requests;
}

/* One counter of GET /stats. */
static json_int_t
mock_stat(const char *name)
{
	json_t *stats = control(&g.mock, "GET", "/stats", NULL);
	json_int_t value = json_integer_value(json_object_get(stats, name));

	json_decref(stats);
	return value;
}

/* A recorded request header, or NULL. */
static const char *
header(const json_t *record, const char *name)
{
	return json_string_value(json_object_get(json_object_get(record, "headers"), name));
}

/*
 * The record's headers are exactly these name, value pairs (NULL-terminated); a NULL
 * value means present with any value.
 */
static void
assert_headers(const json_t *record, ...)
{
	const json_t *headers = json_object_get(record, "headers");
	const char *name, *value;
	size_t n = 0;
	va_list ap;

	va_start(ap, record);
	while ((name = va_arg(ap, const char *)) != NULL) {
		value = va_arg(ap, const char *);
		if (header(record, name) == NULL)
			fail_msg("header %s missing", name);
		if (value != NULL)
			assert_string_equal(header(record, name), value);
		n++;
	}
	va_end(ap);
	assert_int_equal(json_object_size(headers), n);
}

/* Verify an authorization header's JWT; returns its iat. */
static int64_t
assert_jwt(const char *authorization, const char *kid)
{
	json_t *h = NULL, *c = NULL;
	int64_t iat;

	assert_non_null(authorization);
	assert_int_equal(strncmp(authorization, "bearer ", 7), 0);
	assert_int_equal(jwt_verify(authorization + 7, g.public_key, JWT_ALG_ES256, &h, &c), 0);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), kid);
	assert_int_equal(json_object_size(h), 2);
	assert_string_equal(json_string_value(json_object_get(c, "iss")), TEAM_ID);
	assert_true(json_is_integer(json_object_get(c, "iat")));
	assert_int_equal(json_object_size(c), 2);
	iat = json_integer_value(json_object_get(c, "iat"));
	json_decref(h);
	json_decref(c);
	return iat;
}

/* How many different authorization values the records carry. */
static size_t
distinct_authorizations(const json_t *records)
{
	const char *seen[MAX_DELIVERIES], *a;
	size_t i, j, n = 0;

	for (i = 0; i < json_array_size(records); i++) {
		a = header(json_array_get(records, i), "authorization");
		assert_non_null(a);
		for (j = 0; j < n && strcmp(seen[j], a) != 0; j++)
			;
		if (j == n)
			seen[n++] = a;
	}
	return n;
}

/* ---- the log ---- */

static int saved_stderr = -1;

/* Send stderr (the log) to a file until log_capture_end(). */
static void
log_capture_begin(void)
{
	char path[300];
	int fd;

	snprintf(path, sizeof path, "%s/captured.log", g.dir);
	fflush(stderr);
	saved_stderr = dup(2);
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
	dup2(fd, 2);
	close(fd);
}

/* Restore stderr; the number of captured lines that contain all the needles. */
static unsigned
log_capture_end(const char *needle, const char *needle2)
{
	char path[300], line[2048];
	unsigned n = 0;
	FILE *f;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	snprintf(path, sizeof path, "%s/captured.log", g.dir);
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof line, f) != NULL) {
		fputs(line, stderr);
		if (strstr(line, needle) != NULL && strstr(line, needle2) != NULL)
			n++;
	}
	fclose(f);
	return n;
}

/* ---- the event loop ---- */

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until *counter reaches target; 1 if it did. */
static int
run_until(const unsigned *counter, unsigned target)
{
	struct timeval tv = { 0, 5000 };
	struct event *tick = event_new(t.base, -1, EV_PERSIST, tick_cb, NULL);
	int64_t end = clock_monotonic_ms() + RUN_TIMEOUT_MS;

	event_add(tick, &tv);
	while (*counter < target && clock_monotonic_ms() < end)
		event_base_loop(t.base, EVLOOP_ONCE);
	event_free(tick);
	return *counter >= target;
}

/* Run the loop for ms milliseconds. */
static void
run_for(int ms)
{
	int64_t end = clock_monotonic_ms() + ms;
	struct timeval tv = { 0, 5000 };
	struct event *tick = event_new(t.base, -1, EV_PERSIST, tick_cb, NULL);

	event_add(tick, &tv);
	while (clock_monotonic_ms() < end)
		event_base_loop(t.base, EVLOOP_ONCE);
	event_free(tick);
}

/* Run the loop until exactly n deliveries have completed. */
static void
wait_completions(unsigned n)
{
	if (!run_until(&t.ncompletions, n))
		fail_msg("%u of %u deliveries completed", t.ncompletions, n);
	assert_int_equal(t.ncompletions, n);
}

/* ---- fixtures ---- */

/* A token-auth app pointed at the mock, both environments. */
static void
config_default(const struct mock *m)
{
	memset(&t.config, 0, sizeof t.config);
	memset(&t.app, 0, sizeof t.app);
	snprintf(t.url, sizeof t.url, "https://127.0.0.1:%d", m->h2_port);
	t.app.name = APP;
	t.app.topic = APP;
	t.app.auth = CONFIG_APNS_AUTH_TOKEN;
	t.app.key_file = g.p8;
	t.app.key_id = KEY_ID;
	t.app.team_id = TEAM_ID;
	t.app.production_url = t.url;
	t.app.sandbox_url = t.url;
	assert_int_equal(config_url_parse(&t.app.production_endpoint, t.url,
	    CONFIG_URL_ORIGIN), 0);
	t.app.sandbox_endpoint = t.app.production_endpoint;
	t.app.ca_file = g.ca;
	t.app.connections = 2;
	t.app.token_refresh_ms = 40 * MINUTE;
	t.app.request_timeout_ms = 5000;
	t.config.apns_apps = &t.app;
	t.config.apns_app_count = 1;
}

/* Create the provider from t.config, failing the test on error. */
static void
provider_create(void)
{
	char err[512] = "";

	t.provider = provider_apns_ops.create(t.base, &t.config, err, sizeof err);
	if (t.provider == NULL)
		fail_msg("create: %s", err);
}

/* Content from a notification's JSON, as the delivery layer builds it. */
static struct push_content *
content_new(const char *json, int badge_per_recipient)
{
	struct push_content *c = calloc(1, sizeof *c);
	struct model_error err;
	json_t *o = json_loads(json, 0, NULL);

	assert_non_null(o);
	assert_true(t.ncontents < sizeof t.contents / sizeof t.contents[0]);
	c->refcount = 1;
	if (notification_from_json(o, "notification.", &c->notification, &err) != 0)
		fail_msg("notification: %s", err.message);
	json_decref(o);
	c->badge_per_recipient = badge_per_recipient;
	c->apns_error = payload_apns_build(&c->notification, badge_per_recipient, &c->apns);
	c->apns_built = 1;
	t.contents[t.ncontents++] = c;
	return c;
}

/* A production delivery of c to token for APP, freed by teardown. */
static struct delivery *
delivery_make(struct push_content *c, const char *token, int64_t badge)
{
	struct delivery *d = calloc(1, sizeof *d);

	assert_true(t.ndeliveries < MAX_DELIVERIES);
	d->content = c;
	d->device_id = strdup("device");
	d->client_id = strdup("client");
	d->token = strdup(token);
	d->app_id = strdup(APP);
	d->platform = DEVICE_PLATFORM_APNS;
	d->environment = DEVICE_ENVIRONMENT_PRODUCTION;
	d->badge = badge;
	snprintf(d->id, sizeof d->id, "0000%04zx-1111-4222-8333-0123456789ab", t.ndeliveries);
	d->accepted_at = clock_now_ms();
	d->attempt = 1;
	t.deliveries[t.ndeliveries++] = d;
	return d;
}

/* send(), flagged so that a completion from inside it is caught. */
static int
send_one(struct delivery *d)
{
	int rc;

	t.in_send = 1;
	rc = provider_apns_ops.send(t.provider, d, record_completion, &t);
	t.in_send = 0;
	return rc;
}

static struct provider_stats
stats(void)
{
	struct provider_stats s;

	provider_apns_ops.stats(t.provider, &s);
	return s;
}

/* A fresh event base, an empty mock and the default configuration. */
static int
setup(void **state)
{
	memset(&t, 0, sizeof t);
	clock_set_offset_ms(0);
	t.base = event_base_new();
	assert_non_null(t.base);
	mock_reset(&g.mock);
	config_default(&g.mock);
	return 0;
}

static int
teardown(void **state)
{
	size_t i;

	if (t.provider != NULL)
		provider_apns_ops.free(t.provider);
	event_base_free(t.base);
	clock_set_offset_ms(0);
	for (i = 0; i < t.ndeliveries; i++) {
		free((char *)t.deliveries[i]->device_id);
		free((char *)t.deliveries[i]->client_id);
		free((char *)t.deliveries[i]->token);
		free((char *)t.deliveries[i]->app_id);
		free(t.deliveries[i]);
	}
	for (i = 0; i < t.ncontents; i++) {
		notification_free(&t.contents[i]->notification);
		payload_free(&t.contents[i]->apns);
		free(t.contents[i]);
	}
	/* Never from inside send(), in any test. */
	assert_int_equal(t.completed_in_send, 0);
	return 0;
}

/* ---- tests ---- */

static void
test_apns_verdict_follows_reason_table(void **state)
{
	static const struct {
		int status;
		const char *reason;
		enum provider_verdict verdict;
	} cases[] = {
		{ 200, NULL, PROVIDER_SENT },
		{ 410, "Unregistered", PROVIDER_TOKEN_GONE },
		{ 410, "ExpiredToken", PROVIDER_TOKEN_GONE },
		{ 410, NULL, PROVIDER_TOKEN_GONE },
		{ 400, "BadDeviceToken", PROVIDER_TOKEN_GONE },
		{ 400, "DeviceTokenNotForTopic", PROVIDER_CONFIG },
		{ 400, "BadTopic", PROVIDER_CONFIG },
		{ 400, "TopicDisallowed", PROVIDER_CONFIG },
		{ 400, "MissingTopic", PROVIDER_CONFIG },
		{ 403, "InvalidProviderToken", PROVIDER_CONFIG },
		{ 403, "MissingProviderToken", PROVIDER_CONFIG },
		{ 403, "BadCertificate", PROVIDER_CONFIG },
		{ 403, "BadCertificateEnvironment", PROVIDER_CONFIG },
		{ 403, "Forbidden", PROVIDER_CONFIG },
		{ 403, "UnrelatedKeyIdInToken", PROVIDER_CONFIG },
		{ 403, "BadEnvironmentKeyIdInToken", PROVIDER_CONFIG },
		{ 403, "ExpiredProviderToken", PROVIDER_RETRY },
		{ 429, "TooManyProviderTokenUpdates", PROVIDER_RETRY },
		{ 429, "TooManyRequests", PROVIDER_RETRY },
		{ 429, NULL, PROVIDER_RETRY },
		{ 413, "PayloadTooLarge", PROVIDER_REJECTED },
		{ 400, "BadCollapseId", PROVIDER_REJECTED },
		{ 400, "BadExpirationDate", PROVIDER_REJECTED },
		{ 400, "BadPriority", PROVIDER_REJECTED },
		{ 400, "InvalidPushType", PROVIDER_REJECTED },
		{ 400, "PayloadEmpty", PROVIDER_REJECTED },
		{ 400, "BadMessageId", PROVIDER_REJECTED },
		{ 400, "DuplicateHeaders", PROVIDER_REJECTED },
		{ 400, "SomethingNew", PROVIDER_REJECTED },
		{ 404, "BadPath", PROVIDER_REJECTED },
		{ 400, NULL, PROVIDER_REJECTED },
		{ 500, "InternalServerError", PROVIDER_RETRY },
		{ 503, "ServiceUnavailable", PROVIDER_RETRY },
		{ 503, "Shutdown", PROVIDER_RETRY },
		{ 502, "SomethingNew", PROVIDER_RETRY },
		{ 500, NULL, PROVIDER_RETRY },
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (apns_verdict(cases[i].status, cases[i].reason) != cases[i].verdict)
			fail_msg("%d %s: verdict %d, expected %d", cases[i].status,
			    cases[i].reason ? cases[i].reason : "(none)",
			    apns_verdict(cases[i].status, cases[i].reason), cases[i].verdict);
	}
}

static void
test_apns_alert_sends_exact_request(void **state)
{
	struct push_content *c = content_new("{\"title\":\"Hi\",\"body\":\"Hello\","
	    "\"collapse_id\":\"c-1\",\"ttl\":3600,\"sound\":\"default\"}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	const struct provider_result *r;
	json_t *records, *rec;
	char expiration[32];
	int64_t iat, now_s = clock_now_ms() / 1000;

	d->accepted_at = 1700000000123;
	provider_create();
	assert_int_equal(stats().token_renewals, 1);
	assert_int_equal(send_one(d), PROVIDER_OK);
	assert_int_equal(t.ncompletions, 0);
	wait_completions(1);

	r = result_of(d);
	assert_int_equal(r->verdict, PROVIDER_SENT);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->reason, "");
	assert_int_equal(r->retry_after_ms, 0);
	assert_int_equal(r->token_invalid_since, 0);

	records = mock_requests(&g.mock);
	assert_int_equal(json_array_size(records), 1);
	rec = json_array_get(records, 0);
	assert_string_equal(json_string_value(json_object_get(rec, "method")), "POST");
	assert_string_equal(json_string_value(json_object_get(rec, "path")),
	    "/3/device/" TOKEN1);
	assert_int_equal(json_integer_value(json_object_get(rec, "status")), 200);
	snprintf(expiration, sizeof expiration, "%d", 1700000000 + 3600);
	assert_headers(rec, "apns-topic", APP, "apns-push-type", "alert", "apns-priority", "10",
	    "apns-expiration", expiration, "apns-collapse-id", "c-1", "apns-id", d->id,
	    "authorization", NULL, NULL);
	iat = assert_jwt(header(rec, "authorization"), KEY_ID);
	assert_true(iat >= now_s - 1 && iat <= now_s + 1);
	assert_string_equal(json_string_value(json_object_get(rec, "body")),
	    "{\"aps\":{\"alert\":{\"title\":\"Hi\",\"body\":\"Hello\"},\"sound\":\"default\"}}");
	json_decref(records);

	assert_int_equal(stats().sent, 1);
	assert_int_equal(stats().connections, 1);
	assert_int_equal(stats().streams_in_flight, 0);
	assert_int_equal(stats().queued, 0);
}

static void
test_apns_background_push_has_priority_5_and_no_expiration(void **state)
{
	struct push_content *c = content_new("{\"content_available\":true,"
	    "\"data\":{\"k\":\"v\"}}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	json_t *records, *rec;

	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	wait_completions(1);
	assert_int_equal(result_of(d)->verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_int_equal(json_array_size(records), 1);
	rec = json_array_get(records, 0);
	assert_headers(rec, "apns-topic", APP, "apns-push-type", "background",
	    "apns-priority", "5", "apns-id", d->id, "authorization", NULL, NULL);
	assert_string_equal(json_string_value(json_object_get(rec, "body")),
	    "{\"aps\":{\"content-available\":1},\"k\":\"v\"}");
	json_decref(records);
}

static void
test_apns_normal_priority_and_ttl_zero(void **state)
{
	struct push_content *c = content_new("{\"body\":\"later\",\"priority\":\"normal\","
	    "\"ttl\":0}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	json_t *records;

	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	wait_completions(1);
	assert_int_equal(result_of(d)->verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_headers(json_array_get(records, 0), "apns-topic", APP, "apns-push-type",
	    "alert", "apns-priority", "5", "apns-expiration", "0", "apns-id", d->id,
	    "authorization", NULL, NULL);
	json_decref(records);
}

static void
test_apns_notification_headers_override_ours(void **state)
{
	struct push_content *c = content_new("{\"body\":\"b\",\"collapse_id\":\"ours\","
	    "\"apns\":{\"headers\":{\"apns-collapse-id\":\"theirs\",\"apns-priority\":\"5\","
	    "\"apns-Push-Type\":\"voip\"}}}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	json_t *records, *rec;

	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	wait_completions(1);
	assert_int_equal(result_of(d)->verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	rec = json_array_get(records, 0);
	assert_int_equal(json_integer_value(json_object_get(rec, "status")), 200);
	assert_headers(rec, "apns-topic", APP, "apns-push-type", "voip", "apns-priority", "5",
	    "apns-collapse-id", "theirs", "apns-id", d->id, "authorization", NULL, NULL);
	json_decref(records);
}

static void
test_apns_badge_is_rendered_per_device(void **state)
{
	struct push_content *c = content_new("{\"body\":\"unread\"}", 1);
	struct delivery *d1 = delivery_make(c, TOKEN1, 3);
	struct delivery *d2 = delivery_make(c, TOKEN2, 17);
	json_t *records, *rec;
	size_t i;

	provider_create();
	assert_int_equal(send_one(d1), PROVIDER_OK);
	assert_int_equal(send_one(d2), PROVIDER_OK);
	wait_completions(2);
	assert_int_equal(result_of(d1)->verdict, PROVIDER_SENT);
	assert_int_equal(result_of(d2)->verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_int_equal(json_array_size(records), 2);
	json_array_foreach(records, i, rec) {
		const char *path = json_string_value(json_object_get(rec, "path"));
		const char *body = json_string_value(json_object_get(rec, "body"));

		if (strcmp(path, "/3/device/" TOKEN1) == 0)
			assert_string_equal(body,
			    "{\"aps\":{\"alert\":{\"body\":\"unread\"},\"badge\":3}}");
		else {
			assert_string_equal(path, "/3/device/" TOKEN2);
			assert_string_equal(body,
			    "{\"aps\":{\"alert\":{\"body\":\"unread\"},\"badge\":17}}");
		}
	}
	json_decref(records);
}

static void
test_apns_410_unregistered_is_token_gone_with_timestamp(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	const struct provider_result *r;

	mock_rule("{\"token\":\"" TOKEN1 "\",\"status\":410,\"reason\":\"Unregistered\","
	    "\"timestamp\":1700000000123}");
	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	wait_completions(1);
	r = result_of(d);
	assert_int_equal(r->verdict, PROVIDER_TOKEN_GONE);
	assert_int_equal(r->status, 410);
	assert_string_equal(r->reason, "Unregistered");
	assert_int_equal(r->token_invalid_since, 1700000000123);
	assert_int_equal(stats().token_gone, 1);
}

static void
test_apns_bad_device_token_is_token_gone(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d = delivery_make(c, "not-hex-at-all", 0);
	const struct provider_result *r;

	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	wait_completions(1);
	r = result_of(d);
	assert_int_equal(r->verdict, PROVIDER_TOKEN_GONE);
	assert_int_equal(r->status, 400);
	assert_string_equal(r->reason, "BadDeviceToken");
	assert_int_equal(r->token_invalid_since, 0);
}

static void
test_apns_device_token_not_for_topic_is_config_error(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d1 = delivery_make(c, TOKEN1, 0), *d2 = delivery_make(c, TOKEN1, 0);
	const struct provider_result *r;

	mock_rule("{\"token\":\"" TOKEN1 "\",\"topic\":\"com.other.app\"}");
	provider_create();
	log_capture_begin();
	assert_int_equal(send_one(d1), PROVIDER_OK);
	assert_int_equal(send_one(d2), PROVIDER_OK);
	wait_completions(2);
	/* Logged once a minute per app and reason, not per answer. */
	assert_int_equal(log_capture_end("level=error msg=\"apns refuses our configuration\" "
	    "app=com.example.app environment=production status=400 "
	    "reason=DeviceTokenNotForTopic", "suppressed=0"), 1);
	r = result_of(d1);
	assert_int_equal(r->verdict, PROVIDER_CONFIG);
	assert_int_equal(r->status, 400);
	assert_string_equal(r->reason, "DeviceTokenNotForTopic");
	assert_int_equal(result_of(d2)->verdict, PROVIDER_CONFIG);
	assert_int_equal(stats().config_errors, 2);
	assert_int_equal(stats().auth_failures, 0);
}

static void
test_apns_invalid_provider_token_is_config_error(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	const struct provider_result *r;
	json_t *records;

	t.app.key_id = "WRONGKEY00";
	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	wait_completions(1);
	r = result_of(d);
	assert_int_equal(r->verdict, PROVIDER_CONFIG);
	assert_int_equal(r->status, 403);
	assert_string_equal(r->reason, "InvalidProviderToken");
	assert_int_equal(stats().config_errors, 1);
	assert_int_equal(stats().auth_failures, 1);
	records = mock_requests(&g.mock);
	assert_jwt(header(json_array_get(records, 0), "authorization"), "WRONGKEY00");
	json_decref(records);
}

static void
test_apns_429_too_many_requests_is_retry_after(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	const struct provider_result *r;

	mock_rule("{\"token\":\"" TOKEN1 "\",\"status\":429,\"reason\":\"TooManyRequests\","
	    "\"retry_after\":7}");
	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	wait_completions(1);
	r = result_of(d);
	assert_int_equal(r->verdict, PROVIDER_RETRY);
	assert_int_equal(r->status, 429);
	assert_string_equal(r->reason, "TooManyRequests");
	assert_int_equal(r->retry_after_ms, 7000);
	assert_int_equal(stats().retried, 1);
}

static void
test_apns_5xx_is_retry_and_413_rejected(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d1 = delivery_make(c, TOKEN1, 0), *d2 = delivery_make(c, TOKEN2, 0);
	struct delivery *d3 = delivery_make(c, "cc33", 0);
	const struct provider_result *r;

	mock_rule("[{\"token\":\"" TOKEN1 "\",\"status\":503,\"reason\":\"Shutdown\"},"
	    "{\"token\":\"" TOKEN2 "\",\"status\":500},"
	    "{\"token\":\"cc33\",\"status\":413,\"reason\":\"PayloadTooLarge\"}]");
	provider_create();
	assert_int_equal(send_one(d1), PROVIDER_OK);
	assert_int_equal(send_one(d2), PROVIDER_OK);
	assert_int_equal(send_one(d3), PROVIDER_OK);
	wait_completions(3);
	r = result_of(d1);
	assert_int_equal(r->verdict, PROVIDER_RETRY);
	assert_int_equal(r->status, 503);
	assert_string_equal(r->reason, "Shutdown");
	assert_int_equal(r->retry_after_ms, 0);
	r = result_of(d2);
	assert_int_equal(r->verdict, PROVIDER_RETRY);
	assert_int_equal(r->status, 500);
	assert_string_equal(r->reason, "InternalServerError");
	r = result_of(d3);
	assert_int_equal(r->verdict, PROVIDER_REJECTED);
	assert_int_equal(r->status, 413);
	assert_string_equal(r->reason, "PayloadTooLarge");
	assert_int_equal(stats().retried, 2);
	assert_int_equal(stats().rejected, 1);
}

static void
test_apns_expired_provider_token_renews_and_next_request_has_new_jwt(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d1 = delivery_make(c, TOKEN1, 0), *d2 = delivery_make(c, TOKEN1, 0);
	const struct provider_result *r;
	json_t *records;
	const char *a1, *a2;

	mock_rule("{\"token\":\"" TOKEN1 "\",\"status\":403,"
	    "\"reason\":\"ExpiredProviderToken\",\"times\":1}");
	provider_create();
	assert_int_equal(send_one(d1), PROVIDER_OK);
	wait_completions(1);
	r = result_of(d1);
	assert_int_equal(r->verdict, PROVIDER_RETRY);
	assert_int_equal(r->status, 403);
	assert_string_equal(r->reason, "ExpiredProviderToken");
	assert_int_equal(r->retry_after_ms, 0);
	assert_int_equal(stats().token_renewals, 2);
	assert_int_equal(stats().auth_failures, 1);

	assert_int_equal(send_one(d2), PROVIDER_OK);
	wait_completions(2);
	assert_int_equal(result_of(d2)->verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_int_equal(json_array_size(records), 2);
	a1 = header(json_array_get(records, 0), "authorization");
	a2 = header(json_array_get(records, 1), "authorization");
	assert_jwt(a1, KEY_ID);
	assert_jwt(a2, KEY_ID);
	assert_string_not_equal(a1, a2);
	json_decref(records);
}

static void
test_apns_expired_provider_token_renews_once_for_requests_in_flight(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d[4];
	json_t *records;
	int i;

	mock_rule("{\"token\":\"" TOKEN1 "\",\"status\":403,"
	    "\"reason\":\"ExpiredProviderToken\",\"times\":3,\"delay_ms\":100}");
	provider_create();
	for (i = 0; i < 3; i++) {
		d[i] = delivery_make(c, TOKEN1, 0);
		assert_int_equal(send_one(d[i]), PROVIDER_OK);
	}
	wait_completions(3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(result_of(d[i])->verdict, PROVIDER_RETRY);
		assert_string_equal(result_of(d[i])->reason, "ExpiredProviderToken");
	}
	assert_int_equal(stats().token_renewals, 2);

	d[3] = delivery_make(c, TOKEN1, 0);
	assert_int_equal(send_one(d[3]), PROVIDER_OK);
	wait_completions(4);
	assert_int_equal(result_of(d[3])->verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_int_equal(json_array_size(records), 4);
	assert_int_equal(distinct_authorizations(records), 2);
	json_decref(records);
}

static void
test_apns_too_many_provider_token_updates_keeps_jwt(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d1 = delivery_make(c, TOKEN1, 0), *d2 = delivery_make(c, TOKEN1, 0);
	const struct provider_result *r;
	json_t *records;

	mock_rule("{\"token\":\"" TOKEN1 "\",\"status\":429,"
	    "\"reason\":\"TooManyProviderTokenUpdates\",\"times\":1}");
	provider_create();
	assert_int_equal(send_one(d1), PROVIDER_OK);
	wait_completions(1);
	r = result_of(d1);
	assert_int_equal(r->verdict, PROVIDER_RETRY);
	assert_string_equal(r->reason, "TooManyProviderTokenUpdates");
	assert_int_equal(stats().token_renewals, 1);
	assert_int_equal(send_one(d2), PROVIDER_OK);
	wait_completions(2);
	records = mock_requests(&g.mock);
	assert_int_equal(distinct_authorizations(records), 1);
	json_decref(records);
}

static void
test_apns_jwt_is_reused_across_requests(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	json_t *records;
	int i;

	provider_create();
	for (i = 0; i < 10; i++)
		assert_int_equal(send_one(delivery_make(c, i % 2 ? TOKEN1 : TOKEN2, 0)),
		    PROVIDER_OK);
	wait_completions(10);
	for (i = 0; i < 10; i++)
		assert_int_equal(t.completions[i].result.verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_int_equal(json_array_size(records), 10);
	assert_int_equal(distinct_authorizations(records), 1);
	json_decref(records);
	assert_int_equal(stats().token_renewals, 1);
	assert_int_equal(mock_stat("jwt_verifications"), 1);
}

static void
test_apns_jwt_is_renewed_after_token_refresh(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d1 = delivery_make(c, TOKEN1, 0), *d2 = delivery_make(c, TOKEN1, 0);
	json_t *records;
	int64_t iat1, iat2;

	/* Mint the first token 41 minutes ago (still good for APNs), then come back. */
	clock_set_offset_ms(-41 * MINUTE);
	provider_create();
	assert_int_equal(send_one(d1), PROVIDER_OK);
	wait_completions(1);
	assert_int_equal(result_of(d1)->verdict, PROVIDER_SENT);
	assert_int_equal(stats().token_renewals, 1);

	clock_set_offset_ms(0);
	assert_int_equal(send_one(d2), PROVIDER_OK);
	wait_completions(2);
	assert_int_equal(result_of(d2)->verdict, PROVIDER_SENT);
	assert_int_equal(stats().token_renewals, 2);
	records = mock_requests(&g.mock);
	assert_int_equal(distinct_authorizations(records), 2);
	iat1 = assert_jwt(header(json_array_get(records, 0), "authorization"), KEY_ID);
	iat2 = assert_jwt(header(json_array_get(records, 1), "authorization"), KEY_ID);
	assert_true(iat2 - iat1 >= 41 * 60 - 1 && iat2 - iat1 <= 41 * 60 + 1);
	json_decref(records);
}

static void
test_apns_jwt_is_not_renewed_before_20_minutes(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	json_t *records;

	/* A refresh below APNs' limit is raised to it. */
	t.app.token_refresh_ms = MINUTE;
	clock_set_offset_ms(-19 * MINUTE);
	provider_create();
	clock_set_offset_ms(0);
	assert_int_equal(send_one(delivery_make(c, TOKEN1, 0)), PROVIDER_OK);
	wait_completions(1);
	assert_int_equal(stats().token_renewals, 1);

	clock_set_offset_ms(MINUTE + 1000);
	assert_int_equal(send_one(delivery_make(c, TOKEN1, 0)), PROVIDER_OK);
	wait_completions(2);
	assert_int_equal(stats().token_renewals, 2);
	assert_int_equal(t.completions[0].result.verdict, PROVIDER_SENT);
	assert_int_equal(t.completions[1].result.verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_int_equal(distinct_authorizations(records), 2);
	json_decref(records);
}

static void
test_apns_burst_through_single_stream_until_authenticated(void **state)
{
	struct push_content *c = content_new("{\"body\":\"burst\"}", 0);
	json_t *records, *rec;
	size_t i;

	provider_create();
	for (i = 0; i < 200; i++)
		assert_int_equal(send_one(delivery_make(c, i % 2 ? TOKEN1 : TOKEN2, 0)),
		    PROVIDER_OK);
	wait_completions(200);
	for (i = 0; i < 200; i++)
		assert_int_equal(t.completions[i].result.verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_int_equal(json_array_size(records), 200);
	json_array_foreach(records, i, rec)
		assert_int_equal(json_integer_value(json_object_get(rec, "status")), 200);
	assert_int_equal(distinct_authorizations(records), 1);
	json_decref(records);
	assert_int_equal(stats().sent, 200);
	assert_true(mock_stat("max_concurrent_streams_observed") > 1);
}

static void
test_apns_payload_too_big_is_rejected_without_request(void **state)
{
	char *json = malloc(6000);
	struct push_content *c;
	struct delivery *d;
	const struct provider_result *r;
	json_t *records;

	snprintf(json, 6000, "{\"body\":\"x\",\"data\":{\"big\":\"%05000d\"}}", 0);
	c = content_new(json, 0);
	free(json);
	assert_int_equal(c->apns_error, PAYLOAD_ETOOBIG);
	d = delivery_make(c, TOKEN1, 0);
	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	assert_int_equal(t.ncompletions, 0);
	wait_completions(1);
	r = result_of(d);
	assert_int_equal(r->verdict, PROVIDER_REJECTED);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->reason, payload_strerror(PAYLOAD_ETOOBIG));
	assert_int_equal(stats().rejected, 1);
	run_for(50);
	records = mock_requests(&g.mock);
	assert_int_equal(json_array_size(records), 0);
	json_decref(records);
}

static void
test_apns_unknown_app_is_enoapp(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);

	free((char *)d->app_id);
	d->app_id = strdup("com.example.other");
	provider_create();
	assert_int_equal(send_one(d), PROVIDER_ENOAPP);
	run_for(20);
	assert_int_equal(t.ncompletions, 0);
}

static void
test_apns_create_fails_naming_app_and_file(void **state)
{
	char err[512], expected[512];

	t.app.key_file = "/nonexistent/AuthKey.p8";
	assert_null(provider_apns_ops.create(t.base, &t.config, err, sizeof err));
	assert_string_equal(err, "[apns \"com.example.app\"] key /nonexistent/AuthKey.p8: "
	    "No such file or directory");

	t.app.key_file = g.rsa_key;
	assert_null(provider_apns_ops.create(t.base, &t.config, err, sizeof err));
	snprintf(expected, sizeof expected, "[apns \"com.example.app\"] key %s", g.rsa_key);
	assert_int_equal(strncmp(err, expected, strlen(expected)), 0);

	t.app.key_file = g.p8;
	t.app.ca_file = "/nonexistent/ca.pem";
	assert_null(provider_apns_ops.create(t.base, &t.config, err, sizeof err));
	assert_non_null(strstr(err, "[apns \"com.example.app\"] "));
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
}

static void
test_apns_reload_new_key_id_mints_jwt_at_once(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d1 = delivery_make(c, TOKEN1, 0), *d2 = delivery_make(c, TOKEN1, 0);
	struct config_apns_app fixed;
	struct config config;
	char err[512] = "";
	json_t *records;

	t.app.key_id = "WRONGKEY00";
	provider_create();
	assert_int_equal(send_one(d1), PROVIDER_OK);
	wait_completions(1);
	assert_int_equal(result_of(d1)->verdict, PROVIDER_CONFIG);

	/* The same settings again change nothing. */
	assert_int_equal(provider_apns_ops.reload(t.provider, &t.config, err, sizeof err), 0);
	assert_int_equal(stats().token_renewals, 1);

	fixed = t.app;
	fixed.key_id = KEY_ID;
	config = t.config;
	config.apns_apps = &fixed;
	assert_int_equal(provider_apns_ops.reload(t.provider, &config, err, sizeof err), 0);
	assert_int_equal(stats().token_renewals, 2);
	assert_int_equal(send_one(d2), PROVIDER_OK);
	wait_completions(2);
	assert_int_equal(result_of(d2)->verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_jwt(header(json_array_get(records, 0), "authorization"), "WRONGKEY00");
	assert_jwt(header(json_array_get(records, 1), "authorization"), KEY_ID);
	json_decref(records);
}

static void
test_apns_reload_refuses_bad_key_and_keeps_jwt(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d1 = delivery_make(c, TOKEN1, 0), *d2 = delivery_make(c, TOKEN1, 0);
	struct config_apns_app broken;
	struct config config;
	char err[512] = "";
	json_t *records;

	provider_create();
	assert_int_equal(send_one(d1), PROVIDER_OK);
	wait_completions(1);

	broken = t.app;
	broken.key_file = "/nonexistent/new.p8";
	broken.key_id = "NEWKEY0000";
	config = t.config;
	config.apns_apps = &broken;
	assert_int_equal(provider_apns_ops.reload(t.provider, &config, err, sizeof err), -1);
	assert_string_equal(err, "[apns \"com.example.app\"] key /nonexistent/new.p8: "
	    "No such file or directory");
	assert_int_equal(stats().token_renewals, 1);

	assert_int_equal(send_one(d2), PROVIDER_OK);
	wait_completions(2);
	assert_int_equal(result_of(d2)->verdict, PROVIDER_SENT);
	records = mock_requests(&g.mock);
	assert_int_equal(distinct_authorizations(records), 1);
	assert_jwt(header(json_array_get(records, 1), "authorization"), KEY_ID);
	json_decref(records);
}

static void
test_apns_tls_verification_failure_is_retry_with_reason(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	const struct provider_result *r;

	t.app.ca_file = g.other_ca;
	t.app.request_timeout_ms = 400;
	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	wait_completions(1);
	r = result_of(d);
	assert_int_equal(r->verdict, PROVIDER_RETRY);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->reason,
	    "TLS handshake failed: unable to get local issuer certificate");
	assert_int_equal(stats().retried, 1);
}

static void
test_apns_sandbox_devices_use_sandbox_url(void **state)
{
	struct mock sandbox = { 0 };
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d1 = delivery_make(c, TOKEN1, 0), *d2 = delivery_make(c, TOKEN2, 0);
	char sandbox_url[64];
	json_t *records;

	mock_start(&sandbox, "--auth-key", g.pub, "--team-id", TEAM_ID, "--key-id", KEY_ID,
	    (char *)NULL);
	snprintf(sandbox_url, sizeof sandbox_url, "https://127.0.0.1:%d", sandbox.h2_port);
	t.app.sandbox_url = sandbox_url;
	assert_int_equal(config_url_parse(&t.app.sandbox_endpoint, sandbox_url,
	    CONFIG_URL_ORIGIN), 0);
	provider_create();
	d2->environment = DEVICE_ENVIRONMENT_SANDBOX;
	assert_int_equal(send_one(d1), PROVIDER_OK);
	assert_int_equal(send_one(d2), PROVIDER_OK);
	wait_completions(2);
	assert_int_equal(result_of(d1)->verdict, PROVIDER_SENT);
	assert_int_equal(result_of(d2)->verdict, PROVIDER_SENT);

	records = mock_requests(&g.mock);
	assert_int_equal(json_array_size(records), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(records, 0),
	    "path")), "/3/device/" TOKEN1);
	json_decref(records);
	records = mock_requests(&sandbox);
	assert_int_equal(json_array_size(records), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(records, 0),
	    "path")), "/3/device/" TOKEN2);
	json_decref(records);
	provider_apns_ops.free(t.provider);
	t.provider = NULL;
	mock_stop(&sandbox);
}

static void
test_apns_certificate_auth_sends_without_authorization(void **state)
{
	struct mock certmock = { 0 };
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	struct config_apns_app broken;
	struct config config;
	char err[512] = "";
	json_t *records;

	mock_start(&certmock, "--topic", APP, (char *)NULL);
	config_default(&certmock);
	t.app.auth = CONFIG_APNS_AUTH_CERTIFICATE;
	t.app.key_file = NULL;
	t.app.key_id = NULL;
	t.app.team_id = NULL;
	t.app.certificate_file = g.server_cert;
	t.app.certificate_key_file = g.server_key;
	provider_create();
	assert_int_equal(stats().token_renewals, 0);
	assert_int_equal(send_one(d), PROVIDER_OK);
	wait_completions(1);
	assert_int_equal(result_of(d)->verdict, PROVIDER_SENT);
	records = mock_requests(&certmock);
	assert_int_equal(json_array_size(records), 1);
	assert_headers(json_array_get(records, 0), "apns-topic", APP, "apns-push-type",
	    "alert", "apns-priority", "10", "apns-id", d->id, NULL);
	json_decref(records);

	/* A reload whose key does not match its certificate is refused. */
	broken = t.app;
	broken.certificate_key_file = g.p8;
	config = t.config;
	config.apns_apps = &broken;
	assert_int_equal(provider_apns_ops.reload(t.provider, &config, err, sizeof err), -1);
	assert_non_null(strstr(err, "[apns \"com.example.app\"] "));
	assert_non_null(strstr(err, g.p8));
	assert_int_equal(provider_apns_ops.reload(t.provider, &t.config, err, sizeof err), 0);

	provider_apns_ops.free(t.provider);
	t.provider = NULL;
	mock_stop(&certmock);
}

static void
test_apns_pkcs12_needs_its_password(void **state)
{
	char err[512] = "";

	t.app.auth = CONFIG_APNS_AUTH_CERTIFICATE;
	t.app.pkcs12_file = g.p12;
	t.app.pkcs12_password_file = g.p12_password;
	provider_create();
	provider_apns_ops.free(t.provider);
	t.provider = NULL;

	t.app.pkcs12_password_file = NULL;
	assert_null(provider_apns_ops.create(t.base, &t.config, err, sizeof err));
	assert_non_null(strstr(err, "[apns \"com.example.app\"] "));
	assert_non_null(strstr(err, g.p12));
}

static void
test_apns_free_completes_in_flight_with_shutdown(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct delivery *d = delivery_make(c, TOKEN1, 0);
	const struct provider_result *r;

	mock_rule("{\"token\":\"" TOKEN1 "\",\"delay_ms\":3000}");
	provider_create();
	assert_int_equal(send_one(d), PROVIDER_OK);
	run_for(200);
	assert_int_equal(t.ncompletions, 0);
	assert_int_equal(stats().streams_in_flight, 1);
	provider_apns_ops.free(t.provider);
	t.provider = NULL;
	assert_int_equal(t.ncompletions, 1);
	r = result_of(d);
	assert_int_equal(r->verdict, PROVIDER_RETRY);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->reason, "shutdown");
}

/* Drained: note how many deliveries had completed by then. */
static void
drained_cb(void *arg)
{
	unsigned *completed_at_drain = arg;

	*completed_at_drain = t.ncompletions;
	t.drained++;
}

static void
test_apns_drain_finishes_in_flight_then_calls_done(void **state)
{
	struct push_content *c = content_new("{\"body\":\"x\"}", 0);
	struct push_content *big;
	struct delivery *d[3];
	unsigned completed_at_drain = 0;
	char *json = malloc(6000);
	int i;

	snprintf(json, 6000, "{\"body\":\"x\",\"data\":{\"big\":\"%05000d\"}}", 0);
	big = content_new(json, 0);
	free(json);
	mock_rule("{\"token\":\"" TOKEN1 "\",\"delay_ms\":200}");
	provider_create();
	for (i = 0; i < 2; i++) {
		d[i] = delivery_make(c, TOKEN1, 0);
		assert_int_equal(send_one(d[i]), PROVIDER_OK);
	}
	/* A completion decided without APNs is waited for too. */
	d[2] = delivery_make(big, TOKEN1, 0);
	assert_int_equal(send_one(d[2]), PROVIDER_OK);

	provider_apns_ops.drain(t.provider, drained_cb, &completed_at_drain);
	assert_int_equal(t.drained, 0);
	assert_int_equal(send_one(delivery_make(c, TOKEN1, 0)), PROVIDER_ESHUTDOWN);
	if (!run_until(&t.drained, 1))
		fail_msg("not drained");
	assert_int_equal(completed_at_drain, 3);
	assert_int_equal(t.ncompletions, 3);
	assert_int_equal(result_of(d[0])->verdict, PROVIDER_SENT);
	assert_int_equal(result_of(d[1])->verdict, PROVIDER_SENT);
	assert_int_equal(result_of(d[2])->verdict, PROVIDER_REJECTED);
	assert_int_equal(stats().connections, 0);
	run_for(20);
	assert_int_equal(t.drained, 1);
}

static void
test_apns_drain_without_work_calls_done_from_loop(void **state)
{
	unsigned completed_at_drain = 99;

	provider_create();
	provider_apns_ops.drain(t.provider, drained_cb, &completed_at_drain);
	assert_int_equal(t.drained, 0);
	if (!run_until(&t.drained, 1))
		fail_msg("not drained");
	assert_int_equal(completed_at_drain, 0);
}

/* Credentials from tests/gen-certs.sh (plus a foreign CA and a .p12), and the mock. */
static int
group_setup(void **state)
{
	const char *tmp = getenv("TMPDIR"), *srcdir = getenv("PUSHRELAY_TOP_SRCDIR");
	const char *builddir = getenv("PUSHRELAY_TOP_BUILDDIR");
	char cmd[2048], err[256];
	FILE *f;

	log_init();
	snprintf(g.dir, sizeof g.dir, "%s/test_apns.XXXXXX", tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(g.dir) == NULL)
		return -1;
	if (srcdir == NULL)
		srcdir = "..";
	if (builddir == NULL)
		builddir = ".";
	snprintf(g.mock_path, sizeof g.mock_path, "%s/tests/mocks/mock_apns", builddir);
	snprintf(g.ca, sizeof g.ca, "%s/ca.pem", g.dir);
	snprintf(g.other_ca, sizeof g.other_ca, "%s/other-ca.pem", g.dir);
	snprintf(g.server_cert, sizeof g.server_cert, "%s/server.pem", g.dir);
	snprintf(g.server_key, sizeof g.server_key, "%s/server.key", g.dir);
	snprintf(g.p8, sizeof g.p8, "%s/apns.p8", g.dir);
	snprintf(g.pub, sizeof g.pub, "%s/apns.pub.pem", g.dir);
	snprintf(g.rsa_key, sizeof g.rsa_key, "%s/fcm-sa.key", g.dir);
	snprintf(g.p12, sizeof g.p12, "%s/client.p12", g.dir);
	snprintf(g.p12_password, sizeof g.p12_password, "%s/p12-password", g.dir);

	snprintf(cmd, sizeof cmd, "sh '%s/tests/gen-certs.sh' '%s' && cd '%s' && "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	    "-keyout other-ca.key -out other-ca.pem -subj /CN=other -days 1 2>/dev/null && "
	    "openssl pkcs12 -export -in server.pem -inkey server.key -out client.p12 "
	    "-passout pass:s3cret 2>/dev/null", srcdir, g.dir, g.dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "# cannot make test credentials: %s\n", cmd);
		return -1;
	}
	if ((f = fopen(g.p12_password, "w")) == NULL)
		return -1;
	fputs("s3cret\nignored second line\n", f);
	fclose(f);
	if (jwt_key_load_public_pem_file(g.pub, JWT_ALG_ES256, &g.public_key, err,
	    sizeof err) != 0) {
		fprintf(stderr, "# %s\n", err);
		return -1;
	}
	if (access(g.mock_path, X_OK) != 0) {
		fprintf(stderr, "# no mock at %s\n", g.mock_path);
		return -1;
	}
	mock_start(&g.mock, "--auth-key", g.pub, "--team-id", TEAM_ID, "--key-id", KEY_ID,
	    "--topic", APP, "--token-auth-initial-streams", "1", "--max-streams", "100",
	    (char *)NULL);
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[512];

	mock_stop(&g.mock);
	jwt_key_free(g.public_key);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g.dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* A reason longer than the result holds is cut between characters, for logs and JSON. */
static void
test_apns_long_reason_is_cut_between_characters(void **state)
{
	struct provider_result result;
	struct h2_response response;
	char body[512], reason[1 + 2 * 100 + 1];

	(void)state;
	reason[0] = 'x';
	for (size_t i = 0; i < 100; i++)
		memcpy(reason + 1 + 2 * i, "\xc3\xa9", 2);
	reason[201] = '\0';
	snprintf(body, sizeof body, "{\"reason\":\"%s\"}", reason);
	memset(&response, 0, sizeof response);
	response.status = 400;
	response.body = (const uint8_t *)body;
	response.body_len = strlen(body);
	memset(&result, 0, sizeof result);
	apns_answer_classify(&response, &result);
	assert_int_equal(result.verdict, PROVIDER_REJECTED);
	/* "x" and 63 characters: the 64th would need byte 128 of 128. */
	assert_int_equal(strlen(result.reason), 127);
	assert_memory_equal(result.reason, reason, 127);
}

/*
 * A self-signed certificate for the key in g.server_key, valid from now + from_s to
 * now + until_s, written to path.
 */
static void
write_certificate(const char *path, long from_s, long until_s)
{
	FILE *f = fopen(g.server_key, "r");
	EVP_PKEY *key = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	X509 *cert = X509_new();
	X509_NAME *name;

	assert_non_null(key);
	fclose(f);
	assert_non_null(cert);
	assert_int_equal(X509_set_version(cert, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(cert), from_s));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(cert), until_s));
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"push",
	    -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(cert, name), 1);
	assert_int_equal(X509_set_pubkey(cert, key), 1);
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(f, cert), 1);
	fclose(f);
	X509_free(cert);
	EVP_PKEY_free(key);
}

/* What check_offline reported. */
struct problems {
	int lines[4];
	char messages[4][512];
	size_t count;
};

static void
note_problem(int line, const char *message, void *arg)
{
	struct problems *p = arg;

	p->lines[p->count] = line;
	snprintf(p->messages[p->count++], sizeof p->messages[0], "%s", message);
}

/*
 * Offline, as pushrelayd -t and the start-up do: a client certificate must be valid
 * now, and token auth needs ids of Apple's shape; each problem names the section.
 */
static void
test_apns_check_offline_refuses_expired_certificates_and_bad_ids(void **state)
{
	struct config_apns_app apps[4];
	struct config config;
	struct problems found = { { 0 }, { { 0 } }, 0 };
	char expired[300], early[300], fine[300], want[700];

	snprintf(expired, sizeof expired, "%s/expired.pem", g.dir);
	snprintf(early, sizeof early, "%s/early.pem", g.dir);
	snprintf(fine, sizeof fine, "%s/fine.pem", g.dir);
	write_certificate(expired, -2 * 86400, -86400);
	write_certificate(early, 86400, 2 * 86400);
	write_certificate(fine, -60, 365 * 86400);
	memset(apps, 0, sizeof apps);
	for (size_t i = 0; i < 4; i++) {
		apps[i] = t.app;
		apps[i].line = (int)(10 * (i + 1));
		apps[i].auth = CONFIG_APNS_AUTH_CERTIFICATE;
		apps[i].certificate_key_file = g.server_key;
	}
	apps[0].name = "com.example.expired";
	apps[0].certificate_file = expired;
	apps[1].name = "com.example.early";
	apps[1].certificate_file = early;
	apps[2].name = "com.example.fine";
	apps[2].certificate_file = fine;
	apps[3].name = "com.example.ids";
	apps[3].auth = CONFIG_APNS_AUTH_TOKEN;
	apps[3].key_file = g.p8;
	apps[3].key_id = "ABC123DEFG";
	apps[3].team_id = "team123456";
	config = t.config;
	config.apns_apps = apps;
	config.apns_app_count = 4;

	assert_int_equal(provider_apns_ops.check_offline(&config, note_problem, &found), 3);
	assert_int_equal(found.count, 3);
	assert_int_equal(found.lines[0], 10);
	snprintf(want, sizeof want, "[apns \"com.example.expired\"] %s: the certificate has "
	    "expired", expired);
	assert_string_equal(found.messages[0], want);
	assert_int_equal(found.lines[1], 20);
	snprintf(want, sizeof want, "[apns \"com.example.early\"] %s: the certificate is not "
	    "valid yet", early);
	assert_string_equal(found.messages[1], want);
	/* The valid certificate (30), then the ids. */
	assert_int_equal(found.lines[2], 40);
	assert_string_equal(found.messages[2], "[apns \"com.example.ids\"] team_id "
	    "\"team123456\": must be the 10 upper-case letters and digits of the Apple "
	    "developer team's id");

	/* The daemon's create() refuses the same expired certificate. */
	config.apns_apps = &apps[0];
	config.apns_app_count = 1;
	assert_null(provider_apns_ops.create(t.base, &config, want, sizeof want));
	assert_non_null(strstr(want, "the certificate has expired"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apns_long_reason_is_cut_between_characters),
		cmocka_unit_test(test_apns_verdict_follows_reason_table),
		T(test_apns_alert_sends_exact_request),
		T(test_apns_background_push_has_priority_5_and_no_expiration),
		T(test_apns_normal_priority_and_ttl_zero),
		T(test_apns_notification_headers_override_ours),
		T(test_apns_badge_is_rendered_per_device),
		T(test_apns_410_unregistered_is_token_gone_with_timestamp),
		T(test_apns_bad_device_token_is_token_gone),
		T(test_apns_device_token_not_for_topic_is_config_error),
		T(test_apns_invalid_provider_token_is_config_error),
		T(test_apns_429_too_many_requests_is_retry_after),
		T(test_apns_5xx_is_retry_and_413_rejected),
		T(test_apns_expired_provider_token_renews_and_next_request_has_new_jwt),
		T(test_apns_expired_provider_token_renews_once_for_requests_in_flight),
		T(test_apns_too_many_provider_token_updates_keeps_jwt),
		T(test_apns_jwt_is_reused_across_requests),
		T(test_apns_jwt_is_renewed_after_token_refresh),
		T(test_apns_jwt_is_not_renewed_before_20_minutes),
		T(test_apns_burst_through_single_stream_until_authenticated),
		T(test_apns_payload_too_big_is_rejected_without_request),
		T(test_apns_unknown_app_is_enoapp),
		T(test_apns_create_fails_naming_app_and_file),
		T(test_apns_reload_new_key_id_mints_jwt_at_once),
		T(test_apns_reload_refuses_bad_key_and_keeps_jwt),
		T(test_apns_tls_verification_failure_is_retry_with_reason),
		T(test_apns_sandbox_devices_use_sandbox_url),
		T(test_apns_certificate_auth_sends_without_authorization),
		T(test_apns_pkcs12_needs_its_password),
		T(test_apns_check_offline_refuses_expired_certificates_and_bad_ids),
		T(test_apns_free_completes_in_flight_with_shutdown),
		T(test_apns_drain_finishes_in_flight_then_calls_done),
		T(test_apns_drain_without_work_calls_done_from_loop),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("apns", tests, group_setup, group_teardown);
}
