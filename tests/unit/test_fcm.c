/*
 * Tests for fcm.c (and httpc.c under it) against the mock FCM (tests/mocks/mock_fcm),
 * which serves both the OAuth token endpoint and the v1 send endpoint on 127.0.0.1.
 * Each send() gets record_completion() as its completion callback, with the test's
 * delivery as its argument.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "delivery.h"
#include "fcm.h"
#include "h2_client.h"
#include "jwt.h"
#include "log.h"
#include "notification.h"
#include "payload.h"
#include "provider.h"
#include "retry_after.h"
#include "utf8.h"

#define PROJECT "pushrelay-test"
#define CLIENT_EMAIL "relay@pushrelay-test.iam.gserviceaccount.com"
#define APP "com.example.chat"
#define SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define MAX_DELIVERIES 1100
#define PENDING_MAX 1024		/* FCM_PENDING_MAX in fcm.c */

static char certs_dir[PATH_MAX];
static char ca_file[PATH_MAX + 32], server_cert[PATH_MAX + 32], server_key[PATH_MAX + 32];
static char sa_key[PATH_MAX + 32], sa_pub[PATH_MAX + 32];

/* A delivery and what its completion said. */
struct tdelivery {
	struct delivery d;		/* what send() is given */
	char token[64];
	char device_id[32];
	int completions;
	struct provider_result result;
	int64_t sent_at;
	int64_t completed_at;
};

struct mock {
	pid_t pid;
	int out;
	int h2_port;
	int control_port;
};

struct fixture {
	char dir[PATH_MAX];
	char sa_path[PATH_MAX + 32];
	struct mock mock;
	struct event_base *base;
	struct event *tick;
	struct config config;
	struct config_fcm_app app;
	struct provider *provider;
	struct push_content content;
	struct tdelivery *dels;
	char token_uri[128];
	char url[64];
};

static const struct provider_ops *ops = &provider_fcm_ops;
static unsigned completed;

/* The completion callback: count the result against its delivery. */
static void
record_completion(struct delivery *delivery, const struct provider_result *result, void *arg)
{
	struct tdelivery *t = arg;

	assert_ptr_equal(delivery, &t->d);
	t->completions++;
	t->result = *result;
	t->completed_at = clock_monotonic_ms();
	completed++;
}

/* ---- the mock ---- */

static void
mock_start(struct mock *m, const char *const *extra)
{
	const char *builddir = getenv("PUSHRELAY_TOP_BUILDDIR");
	const char *argv[32];
	char bin[PATH_MAX + 32], line[128];
	struct pollfd pfd;
	size_t n = 0, len = 0;
	int fds[2], devnull;
	ssize_t r;

	snprintf(bin, sizeof bin, "%s/tests/mocks/mock_fcm", builddir != NULL ? builddir : ".");
	argv[n++] = bin;
	argv[n++] = "--cert";
	argv[n++] = server_cert;
	argv[n++] = "--key";
	argv[n++] = server_key;
	argv[n++] = "--project-id";
	argv[n++] = PROJECT;
	argv[n++] = "--service-account-key";
	argv[n++] = sa_pub;
	argv[n++] = "--client-email";
	argv[n++] = CLIENT_EMAIL;
	for (; extra != NULL && *extra != NULL; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;

	assert_int_equal(pipe(fds), 0);
	m->pid = fork();
	assert_true(m->pid >= 0);
	if (m->pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		if (getenv("FCM_TEST_VERBOSE") == NULL &&
		    (devnull = open("/dev/null", O_WRONLY)) >= 0)
			dup2(devnull, STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	m->out = fds[0];
	pfd.fd = m->out;
	pfd.events = POLLIN;
	while (memchr(line, '\n', len) == NULL) {
		if (poll(&pfd, 1, 10000) <= 0)
			fail_msg("mock_fcm (%s) did not print READY", bin);
		r = read(m->out, line + len, sizeof line - 1 - len);
		if (r <= 0)
			fail_msg("mock_fcm (%s) exited before READY", bin);
		len += (size_t)r;
	}
	line[len] = '\0';
	if (sscanf(line, "READY h2=%d control=%d", &m->h2_port, &m->control_port) != 2)
		fail_msg("unexpected mock output: %s", line);
}

static void
mock_stop(struct mock *m)
{
	int status;

	if (m->pid <= 0)
		return;
	kill(m->pid, SIGTERM);
	waitpid(m->pid, &status, 0);
	close(m->out);
	m->pid = 0;
}

struct buffer {
	char *data;
	size_t len;
};

static size_t
collect(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buffer *buf = arg;
	size_t len = size * nmemb;

	buf->data = realloc(buf->data, buf->len + len + 1);
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return len;
}

/* Call the mock's control API; returns its JSON answer. */
static json_t *
control(struct mock *m, const char *method, const char *path, const char *body)
{
	CURL *curl = curl_easy_init();
	struct buffer buf = { NULL, 0 };
	json_t *answer;
	char url[128];
	long status = 0;

	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", m->control_port, path);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	if (body != NULL)
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
	assert_int_equal(curl_easy_perform(curl), CURLE_OK);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);
	answer = buf.data != NULL ? json_loadb(buf.data, buf.len, 0, NULL) : NULL;
	if (status >= 300 || answer == NULL)
		fail_msg("control %s %s: %ld %s", method, path, status,
		    buf.data != NULL ? buf.data : "");
	free(buf.data);
	return answer;
}

static void
add_rule(struct fixture *f, const char *rule)
{
	json_decref(control(&f->mock, "POST", "/rules", rule));
}

/* The recorded requests to path ("/token" or the send path). */
static json_t *
records(struct fixture *f, const char *path)
{
	json_t *all = control(&f->mock, "GET", "/requests", NULL), *out = json_array(), *r;
	size_t i;

	json_array_foreach(json_object_get(all, "requests"), i, r) {
		if (strcmp(json_string_value(json_object_get(r, "path")), path) == 0)
			json_array_append(out, r);
	}
	json_decref(all);
	return out;
}

static json_int_t
mock_stat(struct fixture *f, const char *name)
{
	json_t *stats = control(&f->mock, "GET", "/stats", NULL);
	json_int_t v = json_integer_value(json_object_get(stats, name));

	json_decref(stats);
	return v;
}

static const char *
record_header(json_t *record, const char *name)
{
	return json_string_value(json_object_get(json_object_get(record, "headers"), name));
}

/* ---- fixture ---- */

/* The service-account JSON for the running mock. */
static void
write_sa(struct fixture *f, const char *path, const char *kid)
{
	FILE *fp = fopen(sa_key, "r");
	char pem[8192];
	size_t n;
	json_t *sa;

	assert_non_null(fp);
	n = fread(pem, 1, sizeof pem - 1, fp);
	fclose(fp);
	pem[n] = '\0';
	sa = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "type", "service_account",
	    "project_id", PROJECT, "private_key_id", kid, "private_key", pem,
	    "client_email", CLIENT_EMAIL, "client_id", "1234567890", "token_uri",
	    f->token_uri);
	assert_non_null(sa);
	assert_int_equal(json_dump_file(sa, path, JSON_INDENT(2)), 0);
	json_decref(sa);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct notification *n;

	snprintf(f->dir, sizeof f->dir, "%s/test_fcm.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->sa_path, sizeof f->sa_path, "%s/service-account.json", f->dir);
	f->base = event_base_new();
	f->dels = calloc(MAX_DELIVERIES, sizeof *f->dels);

	n = &f->content.notification;
	notification_init(n);
	n->title = strdup("Hello");
	n->body = strdup("You have a new message");
	n->data = json_pack("{s:s}", "room", "general");
	f->content.refcount = 1;
	f->content.fcm_error = payload_fcm_build(n, 0, &f->content.fcm);
	f->content.fcm_built = 1;
	f->content.apns_error = PAYLOAD_ETOOBIG;
	f->content.apns_built = 1;

	f->app.name = APP;
	f->app.service_account_file = f->sa_path;
	f->app.ca_file = ca_file;
	f->app.connections = 1;
	f->app.request_timeout_ms = 5000;
	f->config.fcm_apps = &f->app;
	f->config.fcm_app_count = 1;
	completed = 0;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[PATH_MAX + 16];

	if (f->provider != NULL)
		ops->free(f->provider);
	mock_stop(&f->mock);
	if (f->tick != NULL)
		event_free(f->tick);
	event_base_free(f->base);
	notification_free(&f->content.notification);
	payload_free(&f->content.fcm);
	free(f->dels);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Start the mock (with extra arguments), write the service account for it. */
static void
start(struct fixture *f, const char *const *extra)
{
	struct timeval tv = { 0, 10000 };

	mock_start(&f->mock, extra);
	snprintf(f->token_uri, sizeof f->token_uri, "https://127.0.0.1:%d/token",
	    f->mock.h2_port);
	snprintf(f->url, sizeof f->url, "https://127.0.0.1:%d", f->mock.h2_port);
	f->app.url = f->url;
	assert_int_equal(config_url_parse(&f->app.endpoint, f->url, CONFIG_URL_ORIGIN), 0);
	write_sa(f, f->sa_path, "kid-1");
	f->tick = event_new(f->base, -1, EV_PERSIST, tick, NULL);
	event_add(f->tick, &tv);
}

static void
create(struct fixture *f)
{
	char err[512] = "";

	f->provider = ops->create(f->base, &f->config, err, sizeof err);
	if (f->provider == NULL)
		fail_msg("create: %s", err);
}

static struct tdelivery *
delivery(struct fixture *f, size_t i, const char *token)
{
	struct tdelivery *t = &f->dels[i];

	memset(t, 0, sizeof *t);
	snprintf(t->token, sizeof t->token, "%s", token);
	snprintf(t->device_id, sizeof t->device_id, "device-%zu", i);
	t->d.content = &f->content;
	t->d.device_id = t->device_id;
	t->d.token = t->token;
	t->d.app_id = APP;
	t->d.platform = DEVICE_PLATFORM_FCM;
	t->d.attempt = 1;
	snprintf(t->d.id, sizeof t->d.id, "00000000-0000-4000-8000-%012zu", i);
	return t;
}

static int
send_one(struct fixture *f, struct tdelivery *t)
{
	t->sent_at = clock_monotonic_ms();
	return ops->send(f->provider, &t->d, record_completion, t);
}

/* Run the loop until *counter reaches want or timeout_ms passes. */
static void
run_until(struct fixture *f, const unsigned *counter, unsigned want, int timeout_ms)
{
	int64_t deadline = clock_monotonic_ms() + timeout_ms;

	while (*counter < want && clock_monotonic_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static void
run_for(struct fixture *f, int ms)
{
	static const unsigned never = 0;

	run_until(f, &never, 1, ms);
}

static struct provider_stats
stats(struct fixture *f)
{
	struct provider_stats s;

	ops->stats(f->provider, &s);
	return s;
}

/* Wait for the provider's token count to reach n. */
static void
wait_tokens(struct fixture *f, uint64_t n, int timeout_ms)
{
	int64_t deadline = clock_monotonic_ms() + timeout_ms;

	while (stats(f).token_renewals < n && clock_monotonic_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(stats(f).token_renewals, n);
}

/* Send one delivery to token under the current rules and return its result. */
static struct provider_result
send_and_wait(struct fixture *f, size_t i, const char *token)
{
	struct tdelivery *t = delivery(f, i, token);
	unsigned before = completed;

	assert_int_equal(send_one(f, t), PROVIDER_OK);
	run_until(f, &completed, before + 1, 5000);
	assert_int_equal(t->completions, 1);
	return t->result;
}

/* One delivery under one send rule, on a fresh mock. */
static struct provider_result
verdict_for(struct fixture *f, const char *rule, const char *token)
{
	start(f, NULL);
	if (rule != NULL)
		add_rule(f, rule);
	create(f);
	return send_and_wait(f, 0, token);
}

static char *
render(struct fixture *f, const char *token)
{
	char *buf = malloc(payload_render_max(&f->content.fcm, strlen(token)) + 1);
	size_t len = payload_render(&f->content.fcm, token, 0, buf);

	buf[len] = '\0';
	return buf;
}

/* Decode one application/x-www-form-urlencoded value in place. */
static void
form_decode(char *s)
{
	char *out = s;
	unsigned v;

	for (; *s != '\0'; s++) {
		if (*s == '%' && sscanf(s + 1, "%2x", &v) == 1) {
			*out++ = (char)v;
			s += 2;
		} else
			*out++ = *s == '+' ? ' ' : *s;
	}
	*out = '\0';
}

/* The assertion of a recorded token request, after checking the form's exact fields. */
static char *
form_assertion(json_t *record)
{
	char *form = strdup(json_string_value(json_object_get(record, "body")));
	char *grant, *assertion, *amp, *out;

	assert_int_equal(strncmp(form, "grant_type=", 11), 0);
	grant = form + 11;
	amp = strchr(grant, '&');
	assert_non_null(amp);
	*amp = '\0';
	assert_int_equal(strncmp(amp + 1, "assertion=", 10), 0);
	assertion = amp + 11;
	assert_null(strchr(assertion, '&'));
	form_decode(grant);
	form_decode(assertion);
	assert_string_equal(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer");
	out = strdup(assertion);
	free(form);
	return out;
}

/* ---- tests ---- */

static void
test_fcm_token_exchange_signs_assertion_and_send_carries_bearer(void **state)
{
	struct fixture *f = *state;
	struct provider_result r;
	struct jwt_key *pub;
	json_t *tokens, *sends, *header, *claims, *rec;
	char err[256], *assertion, *body, path[128];
	int64_t now = clock_now_ms() / 1000, iat, exp;

	start(f, NULL);
	create(f);
	r = send_and_wait(f, 0, "dA1:APA91b_token-0");
	assert_int_equal(r.verdict, PROVIDER_SENT);
	assert_int_equal(r.status, 200);

	tokens = records(f, "/token");
	assert_int_equal(json_array_size(tokens), 1);
	rec = json_array_get(tokens, 0);
	assert_string_equal(json_string_value(json_object_get(rec, "method")), "POST");
	assert_string_equal(record_header(rec, "content-type"),
	    "application/x-www-form-urlencoded");
	assert_int_equal(json_integer_value(json_object_get(rec, "status")), 200);
	assertion = form_assertion(rec);
	assert_int_equal(jwt_key_load_public_pem_file(sa_pub, JWT_ALG_RS256, &pub, err,
	    sizeof err), 0);
	assert_int_equal(jwt_verify(assertion, pub, JWT_ALG_RS256, &header, &claims), 0);
	assert_string_equal(json_string_value(json_object_get(header, "alg")), "RS256");
	assert_string_equal(json_string_value(json_object_get(header, "typ")), "JWT");
	assert_string_equal(json_string_value(json_object_get(header, "kid")), "kid-1");
	assert_string_equal(json_string_value(json_object_get(claims, "iss")), CLIENT_EMAIL);
	assert_string_equal(json_string_value(json_object_get(claims, "scope")), SCOPE);
	assert_string_equal(json_string_value(json_object_get(claims, "aud")), f->token_uri);
	iat = json_integer_value(json_object_get(claims, "iat"));
	exp = json_integer_value(json_object_get(claims, "exp"));
	assert_true(iat >= now - 5 && iat <= now + 5);
	assert_int_equal(exp - iat, 3600);

	sends = records(f, "/v1/projects/" PROJECT "/messages:send");
	assert_int_equal(json_array_size(sends), 1);
	rec = json_array_get(sends, 0);
	assert_string_equal(json_string_value(json_object_get(rec, "method")), "POST");
	assert_string_equal(record_header(rec, "content-type"), "application/json");
	assert_int_equal(strncmp(record_header(rec, "authorization"), "Bearer ya29.mock-", 17),
	    0);
	body = render(f, "dA1:APA91b_token-0");
	assert_string_equal(json_string_value(json_object_get(rec, "body")), body);
	snprintf(path, sizeof path, "/v1/projects/%s/messages:send", PROJECT);
	assert_string_equal(json_string_value(json_object_get(rec, "path")), path);
	/* The mock issued exactly one token and accepted the bearer: it is that token. */
	assert_int_equal(mock_stat(f, "access_tokens_issued"), 1);
	assert_int_equal(stats(f).token_renewals, 1);
	assert_int_equal(stats(f).sent, 1);
	assert_int_equal(stats(f).auth_failures, 0);

	free(body);
	free(assertion);
	json_decref(header);
	json_decref(claims);
	jwt_key_free(pub);
	json_decref(tokens);
	json_decref(sends);
}

static void
test_fcm_sends_wait_for_first_token_then_all_go(void **state)
{
	struct fixture *f = *state;
	json_t *sends, *tokens, *rec;
	const char *bearer = NULL;
	char token[32];
	size_t i;

	start(f, NULL);
	add_rule(f, "{\"endpoint\":\"token\",\"delay_ms\":400}");
	create(f);
	for (i = 0; i < 5; i++) {
		snprintf(token, sizeof token, "waiting-%zu", i);
		assert_int_equal(send_one(f, delivery(f, i, token)), PROVIDER_OK);
	}
	run_for(f, 200);
	assert_int_equal(completed, 0);
	assert_int_equal(stats(f).queued, 5);
	run_until(f, &completed, 5, 5000);
	assert_int_equal(completed, 5);
	for (i = 0; i < 5; i++)
		assert_int_equal(f->dels[i].result.verdict, PROVIDER_SENT);

	tokens = records(f, "/token");
	sends = records(f, "/v1/projects/" PROJECT "/messages:send");
	assert_int_equal(json_array_size(tokens), 1);
	assert_int_equal(json_array_size(sends), 5);
	json_array_foreach(sends, i, rec) {
		assert_true(json_integer_value(json_object_get(rec, "seq")) >
		    json_integer_value(json_object_get(json_array_get(tokens, 0), "seq")));
		if (bearer == NULL)
			bearer = record_header(rec, "authorization");
		assert_string_equal(record_header(rec, "authorization"), bearer);
		assert_int_equal(json_integer_value(json_object_get(rec, "status")), 200);
	}
	assert_int_equal(stats(f).queued, 0);
	json_decref(tokens);
	json_decref(sends);
}

/* Renewal test state: one send every 100 ms. */
struct pacer {
	struct fixture *f;
	size_t next;
	size_t total;
	struct event *ev;
};

static void
pace(evutil_socket_t fd, short what, void *arg)
{
	struct pacer *p = arg;
	char token[32];

	(void)fd;
	(void)what;
	if (p->next >= p->total) {
		event_del(p->ev);
		return;
	}
	snprintf(token, sizeof token, "steady-%zu", p->next);
	assert_int_equal(send_one(p->f, delivery(p->f, p->next, token)), PROVIDER_OK);
	p->next++;
}

static void
test_fcm_renews_token_ahead_of_expiry_while_sends_continue(void **state)
{
	static const char *const args[] = { "--token-lifetime", "2", NULL };
	struct fixture *f = *state;
	struct timeval tv = { 0, 100000 };
	struct pacer p = { f, 0, 28, NULL };
	json_t *sends, *tokens, *rec, *stats_json, *responses;
	const char *last = NULL;
	size_t i, distinct = 0;
	int64_t latency, worst = 0;

	start(f, args);
	/* Slow exchanges: sends must not wait for a renewal. */
	add_rule(f, "{\"endpoint\":\"token\",\"delay_ms\":400}");
	create(f);
	wait_tokens(f, 1, 5000);
	p.ev = event_new(f->base, -1, EV_PERSIST, pace, &p);
	event_add(p.ev, &tv);
	run_until(f, &completed, 28, 8000);
	event_free(p.ev);
	assert_int_equal(completed, 28);
	for (i = 0; i < 28; i++) {
		assert_int_equal(f->dels[i].result.verdict, PROVIDER_SENT);
		latency = f->dels[i].completed_at - f->dels[i].sent_at;
		if (latency > worst)
			worst = latency;
	}
	/*
	 * 2.8 s of sends outlive the first token (2 s), all accepted: the next one was
	 * there in time; and none waited for the 400 ms exchanges.
	 */
	assert_true(worst < 350);
	tokens = records(f, "/token");
	assert_true(json_array_size(tokens) >= 2);
	sends = records(f, "/v1/projects/" PROJECT "/messages:send");
	assert_int_equal(json_array_size(sends), 28);
	json_array_foreach(sends, i, rec) {
		const char *bearer = record_header(rec, "authorization");

		if (last == NULL || strcmp(last, bearer) != 0)
			distinct++;
		last = bearer;
	}
	/* Each token took over once, none came back: A..A B..B (C..C). */
	assert_true(distinct >= 2);
	assert_true(distinct <= json_array_size(tokens));
	stats_json = control(&f->mock, "GET", "/stats", NULL);
	responses = json_object_get(stats_json, "responses");
	assert_int_equal(json_object_size(responses), 1);
	assert_int_equal(json_integer_value(json_object_get(responses, "200")),
	    28 + json_array_size(tokens));
	json_decref(stats_json);
	json_decref(tokens);
	json_decref(sends);
}

static void
test_fcm_401_renews_token_once_and_asks_for_immediate_resend(void **state)
{
	struct fixture *f = *state;
	struct tdelivery *t;
	struct provider_result r;
	json_t *sends;

	start(f, NULL);
	add_rule(f, "{\"token\":\"expired-bearer\",\"status\":401,\"error_code\":\"\","
	    "\"google_status\":\"UNAUTHENTICATED\",\"times\":1}");
	create(f);
	r = send_and_wait(f, 0, "expired-bearer");
	assert_int_equal(r.verdict, PROVIDER_RETRY);
	assert_int_equal(r.status, 401);
	assert_int_equal(r.retry_after_ms, 0);
	assert_string_equal(r.reason, "UNAUTHENTICATED");

	/*
	 * The delivery layer resends at once: the refused token is not used again, the
	 * resend waits for the new one.
	 */
	t = &f->dels[0];
	t->completions = 0;
	assert_int_equal(send_one(f, t), PROVIDER_OK);
	run_until(f, &completed, 2, 5000);
	wait_tokens(f, 2, 5000);
	assert_int_equal(t->completions, 1);
	assert_int_equal(t->result.verdict, PROVIDER_SENT);
	sends = records(f, "/v1/projects/" PROJECT "/messages:send");
	assert_int_equal(json_array_size(sends), 2);
	assert_string_not_equal(record_header(json_array_get(sends, 0), "authorization"),
	    record_header(json_array_get(sends, 1), "authorization"));
	assert_int_equal(mock_stat(f, "access_tokens_issued"), 2);
	assert_int_equal(stats(f).token_renewals, 2);
	assert_int_equal(stats(f).config_errors, 0);
	json_decref(sends);
}

static void
test_fcm_second_401_in_a_row_is_a_config_error(void **state)
{
	struct fixture *f = *state;
	struct tdelivery *t;
	struct provider_result r;

	start(f, NULL);
	add_rule(f, "{\"token\":\"revoked\",\"status\":401,\"error_code\":\"\","
	    "\"google_status\":\"UNAUTHENTICATED\",\"times\":2}");
	create(f);
	r = send_and_wait(f, 0, "revoked");
	assert_int_equal(r.verdict, PROVIDER_RETRY);
	wait_tokens(f, 2, 5000);
	t = &f->dels[0];
	t->completions = 0;
	assert_int_equal(send_one(f, t), PROVIDER_OK);
	run_until(f, &completed, 2, 5000);
	assert_int_equal(t->result.verdict, PROVIDER_CONFIG);
	assert_int_equal(t->result.status, 401);
	run_for(f, 200);
	/* No renewal loop: still the one renewal the first 401 asked for. */
	assert_int_equal(stats(f).token_renewals, 2);
	assert_int_equal(stats(f).config_errors, 1);
	assert_int_equal(stats(f).auth_failures, 1);
}

static void
test_fcm_404_unregistered_is_token_gone(void **state)
{
	struct fixture *f = *state;
	struct provider_result r = verdict_for(f, "{\"token\":\"gone\",\"status\":404}", "gone");

	assert_int_equal(r.verdict, PROVIDER_TOKEN_GONE);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.reason, "UNREGISTERED");
	assert_int_equal(stats(f).token_gone, 1);
}

static void
test_fcm_400_token_field_violation_is_token_gone(void **state)
{
	struct fixture *f = *state;
	/* The mock refuses a token with characters no registration token has. */
	struct provider_result r = verdict_for(f, NULL, "not a token!");

	assert_int_equal(r.verdict, PROVIDER_TOKEN_GONE);
	assert_int_equal(r.status, 400);
	assert_string_equal(r.reason, "INVALID_ARGUMENT");
}

static void
test_fcm_400_other_invalid_argument_is_rejected(void **state)
{
	struct fixture *f = *state;
	struct provider_result r = verdict_for(f, "{\"token\":\"t400\",\"status\":400,"
	    "\"message\":\"Invalid value at 'message.android.ttl'\"}", "t400");

	assert_int_equal(r.verdict, PROVIDER_REJECTED);
	assert_int_equal(r.status, 400);
	assert_string_equal(r.reason, "INVALID_ARGUMENT");
	assert_int_equal(stats(f).rejected, 1);
}

static void
test_fcm_403_sender_id_mismatch_is_token_gone(void **state)
{
	struct fixture *f = *state;
	struct provider_result r = verdict_for(f, "{\"token\":\"other-project\","
	    "\"status\":403}", "other-project");

	assert_int_equal(r.verdict, PROVIDER_TOKEN_GONE);
	assert_int_equal(r.status, 403);
	assert_string_equal(r.reason, "SENDER_ID_MISMATCH");
}

static void
test_fcm_403_permission_denied_is_config(void **state)
{
	struct fixture *f = *state;
	struct provider_result r = verdict_for(f, "{\"token\":\"t403\",\"status\":403,"
	    "\"error_code\":\"\",\"google_status\":\"PERMISSION_DENIED\"}", "t403");

	assert_int_equal(r.verdict, PROVIDER_CONFIG);
	assert_string_equal(r.reason, "PERMISSION_DENIED");
	assert_int_equal(stats(f).config_errors, 1);
	assert_int_equal(stats(f).auth_failures, 1);
}

static void
test_fcm_401_third_party_auth_error_is_config(void **state)
{
	struct fixture *f = *state;
	struct provider_result r = verdict_for(f, "{\"token\":\"ios-device\",\"status\":401}",
	    "ios-device");

	assert_int_equal(r.verdict, PROVIDER_CONFIG);
	assert_int_equal(r.status, 401);
	assert_string_equal(r.reason, "THIRD_PARTY_AUTH_ERROR");
	/* Not our access token's fault: no renewal. */
	run_for(f, 100);
	assert_int_equal(stats(f).token_renewals, 1);
}

static void
test_fcm_429_without_retry_after_waits_at_least_a_minute(void **state)
{
	struct fixture *f = *state;
	struct provider_result r = verdict_for(f, "{\"token\":\"busy\",\"status\":429}", "busy");

	assert_int_equal(r.verdict, PROVIDER_RETRY);
	assert_int_equal(r.status, 429);
	assert_string_equal(r.reason, "QUOTA_EXCEEDED");
	assert_int_equal(r.retry_after_ms, 60000);
}

static void
test_fcm_429_honours_retry_after(void **state)
{
	struct fixture *f = *state;
	struct provider_result r = verdict_for(f, "{\"token\":\"busy\",\"status\":429,"
	    "\"retry_after\":7}", "busy");

	assert_int_equal(r.verdict, PROVIDER_RETRY);
	assert_int_equal(r.retry_after_ms, 7000);
}

static void
test_fcm_503_and_500_are_retried_with_retry_after(void **state)
{
	struct fixture *f = *state;
	struct provider_result r;

	start(f, NULL);
	add_rule(f, "[{\"token\":\"a\",\"status\":503,\"retry_after\":2},"
	    "{\"token\":\"b\",\"status\":500}]");
	create(f);
	r = send_and_wait(f, 0, "a");
	assert_int_equal(r.verdict, PROVIDER_RETRY);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.reason, "UNAVAILABLE");
	assert_int_equal(r.retry_after_ms, 2000);
	r = send_and_wait(f, 1, "b");
	assert_int_equal(r.verdict, PROVIDER_RETRY);
	assert_int_equal(r.status, 500);
	assert_string_equal(r.reason, "INTERNAL");
	assert_int_equal(r.retry_after_ms, 0);
	assert_int_equal(stats(f).retried, 2);
}

/* Retry-After values a broken or hostile server may send, and what they become. */
static void
test_fcm_retry_after_is_clamped_and_garbage_is_absent(void **state)
{
	struct fixture *f = *state;
	struct provider_result r;
	char rules[1024], soon[64], past[64];
	time_t t = time(NULL) + 120;
	struct tm tm;
	int i = 0;

	gmtime_r(&t, &tm);
	strftime(soon, sizeof soon, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	t -= 3600;
	gmtime_r(&t, &tm);
	strftime(past, sizeof past, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(rules, sizeof rules, "["
	    "{\"token\":\"huge\",\"status\":503,\"retry_after_text\":\"9223372036854774\"},"
	    "{\"token\":\"huger\",\"status\":503,"
	    "\"retry_after_text\":\"99999999999999999999999\"},"
	    "{\"token\":\"negative\",\"status\":503,\"retry_after_text\":\"-5\"},"
	    "{\"token\":\"words\",\"status\":503,\"retry_after_text\":\"soon\"},"
	    "{\"token\":\"fraction\",\"status\":503,\"retry_after_text\":\"1.5\"},"
	    "{\"token\":\"soon\",\"status\":503,\"retry_after_text\":\"%s\"},"
	    "{\"token\":\"past\",\"status\":503,\"retry_after_text\":\"%s\"},"
	    "{\"token\":\"far\",\"status\":503,"
	    "\"retry_after_text\":\"Fri, 31 Dec 9999 23:59:59 GMT\"},"
	    "{\"token\":\"quota\",\"status\":429,\"retry_after_text\":\"-5\"}]", soon, past);
	start(f, NULL);
	add_rule(f, rules);
	create(f);
	/* 9.2e15 s is 9.2e18 ms: at the edge of int64_t, the delivery layer's sums overflowed. */
	r = send_and_wait(f, i++, "huge");
	assert_int_equal(r.verdict, PROVIDER_RETRY);
	assert_int_equal(r.retry_after_ms, RETRY_AFTER_MAX_MS);
	r = send_and_wait(f, i++, "huger");
	assert_int_equal(r.retry_after_ms, RETRY_AFTER_MAX_MS);
	r = send_and_wait(f, i++, "negative");
	assert_int_equal(r.verdict, PROVIDER_RETRY);
	assert_int_equal(r.retry_after_ms, 0);
	r = send_and_wait(f, i++, "words");
	assert_int_equal(r.retry_after_ms, 0);
	r = send_and_wait(f, i++, "fraction");
	assert_int_equal(r.retry_after_ms, 0);
	r = send_and_wait(f, i++, "soon");
	assert_in_range(r.retry_after_ms, 100000, 120000);
	r = send_and_wait(f, i++, "past");
	assert_int_equal(r.retry_after_ms, 0);
	r = send_and_wait(f, i++, "far");
	assert_int_equal(r.retry_after_ms, RETRY_AFTER_MAX_MS);
	/* A 429 whose Retry-After is garbage waits the minute of one without it. */
	r = send_and_wait(f, i++, "quota");
	assert_int_equal(r.status, 429);
	assert_int_equal(r.retry_after_ms, 60000);
}

static void
test_fcm_no_answer_is_retry_with_h2_error(void **state)
{
	struct fixture *f = *state;
	struct provider_result r = verdict_for(f, "{\"token\":\"reset\","
	    "\"action\":\"rst_stream\",\"times\":1}", "reset");

	assert_int_equal(r.verdict, PROVIDER_RETRY);
	assert_int_equal(r.status, 0);
	assert_int_equal(strncmp(r.reason, h2_strerror(H2_ESTREAMRESET),
	    strlen(h2_strerror(H2_ESTREAMRESET))), 0);
}

static void
test_fcm_payload_error_is_rejected_after_send_returns(void **state)
{
	struct fixture *f = *state;
	struct tdelivery *t;
	json_t *sends;

	start(f, NULL);
	create(f);
	wait_tokens(f, 1, 5000);
	f->content.fcm_error = PAYLOAD_ETOOBIG;
	t = delivery(f, 0, "big");
	assert_int_equal(send_one(f, t), PROVIDER_OK);
	assert_int_equal(t->completions, 0);
	run_until(f, &completed, 1, 2000);
	assert_int_equal(t->completions, 1);
	assert_int_equal(t->result.verdict, PROVIDER_REJECTED);
	assert_string_equal(t->result.reason, payload_strerror(PAYLOAD_ETOOBIG));
	sends = records(f, "/v1/projects/" PROJECT "/messages:send");
	assert_int_equal(json_array_size(sends), 0);
	json_decref(sends);
	f->content.fcm_error = PAYLOAD_OK;
}

static void
test_fcm_unknown_app_is_enoapp(void **state)
{
	struct fixture *f = *state;
	struct tdelivery *t;

	start(f, NULL);
	create(f);
	t = delivery(f, 0, "tok");
	t->d.app_id = "com.example.other";
	assert_int_equal(send_one(f, t), PROVIDER_ENOAPP);
	run_for(f, 50);
	assert_int_equal(t->completions, 0);
}

static void
test_fcm_failed_exchange_is_retried_after_backoff_and_waiting_sends_go(void **state)
{
	struct fixture *f = *state;
	json_t *tokens;
	int64_t first, second;

	start(f, NULL);
	add_rule(f, "{\"endpoint\":\"token\",\"status\":400,\"error\":\"invalid_grant\","
	    "\"error_description\":\"Invalid JWT Signature.\",\"times\":1}");
	create(f);
	assert_int_equal(send_one(f, delivery(f, 0, "patient-0")), PROVIDER_OK);
	assert_int_equal(send_one(f, delivery(f, 1, "patient-1")), PROVIDER_OK);
	run_until(f, &completed, 2, 5000);
	assert_int_equal(f->dels[0].result.verdict, PROVIDER_SENT);
	assert_int_equal(f->dels[1].result.verdict, PROVIDER_SENT);
	tokens = records(f, "/token");
	assert_int_equal(json_array_size(tokens), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(tokens, 0),
	    "status")), 400);
	first = json_integer_value(json_object_get(json_array_get(tokens, 0), "time_ms"));
	second = json_integer_value(json_object_get(json_array_get(tokens, 1), "time_ms"));
	assert_true(second - first >= 900);
	assert_int_equal(stats(f).auth_failures, 1);
	assert_int_equal(stats(f).token_renewals, 1);
	json_decref(tokens);
}

static void
test_fcm_waiting_sends_fail_with_oauth_reason_after_timeout(void **state)
{
	struct fixture *f = *state;
	struct tdelivery *t;

	f->app.request_timeout_ms = 800;
	start(f, NULL);
	add_rule(f, "{\"endpoint\":\"token\",\"status\":400,\"error\":\"invalid_grant\","
	    "\"error_description\":\"Invalid JWT Signature.\"}");
	create(f);
	t = delivery(f, 0, "stranded");
	assert_int_equal(send_one(f, t), PROVIDER_OK);
	run_until(f, &completed, 1, 3000);
	assert_int_equal(t->completions, 1);
	assert_int_equal(t->result.verdict, PROVIDER_RETRY);
	assert_int_equal(t->result.status, 0);
	assert_string_equal(t->result.reason, "oauth: invalid_grant: Invalid JWT Signature.");
	assert_true(t->completed_at - t->sent_at >= 750);
	assert_true(stats(f).auth_failures >= 1);
	assert_int_equal(stats(f).token_renewals, 0);
}

static void
test_fcm_waiting_list_is_bounded(void **state)
{
	struct fixture *f = *state;
	char token[32];
	size_t i;

	start(f, NULL);
	add_rule(f, "{\"endpoint\":\"token\",\"delay_ms\":500}");
	create(f);
	for (i = 0; i < PENDING_MAX; i++) {
		snprintf(token, sizeof token, "queued-%zu", i);
		assert_int_equal(send_one(f, delivery(f, i, token)), PROVIDER_OK);
	}
	assert_int_equal(send_one(f, delivery(f, i, "one-too-many")), PROVIDER_EBUSY);
	assert_int_equal(stats(f).queued, PENDING_MAX);
	run_until(f, &completed, PENDING_MAX, 10000);
	assert_int_equal(completed, PENDING_MAX);
	assert_int_equal(f->dels[PENDING_MAX].completions, 0);
	assert_int_equal(stats(f).sent, PENDING_MAX);
}

static void
test_fcm_token_endpoint_certificate_is_verified(void **state)
{
	struct fixture *f = *state;
	struct tdelivery *t;
	char other_ca[PATH_MAX + 32], cmd[3 * PATH_MAX];

	/* Trust another CA only: the mock's certificate does not verify. */
	snprintf(other_ca, sizeof other_ca, "%s/other-ca.pem", f->dir);
	snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -keyout '%s/other-ca.key' -out '%s' -days 1 "
	    "-subj /CN=other-ca 2>/dev/null", f->dir, other_ca);
	assert_int_equal(system(cmd), 0);
	f->app.ca_file = other_ca;
	f->app.request_timeout_ms = 800;
	start(f, NULL);
	create(f);
	t = delivery(f, 0, "unverified");
	assert_int_equal(send_one(f, t), PROVIDER_OK);
	run_until(f, &completed, 1, 3000);
	assert_int_equal(t->result.verdict, PROVIDER_RETRY);
	if (strncmp(t->result.reason, "oauth: TLS failure: ", 20) != 0)
		fail_msg("reason: %s", t->result.reason);
	assert_int_equal(mock_stat(f, "access_tokens_issued"), 0);
	assert_true(stats(f).auth_failures >= 1);
}

static void
test_fcm_never_opens_more_than_100_streams_per_connection(void **state)
{
	static const char *const args[] = { "--max-streams", "1000", NULL };
	struct fixture *f = *state;
	char token[32];
	size_t i;

	start(f, args);
	add_rule(f, "{\"delay_ms\":300}");
	create(f);
	wait_tokens(f, 1, 5000);
	for (i = 0; i < 250; i++) {
		struct tdelivery *d;
		int rc;

		snprintf(token, sizeof token, "burst-%zu", i);
		d = delivery(f, i, token);
		/* The pool keeps two connections' worth waiting: past that, busy until one ends. */
		while ((rc = send_one(f, d)) == PROVIDER_EBUSY)
			run_until(f, &completed, completed + 1, 5000);
		assert_int_equal(rc, PROVIDER_OK);
	}
	run_until(f, &completed, 250, 10000);
	assert_int_equal(completed, 250);
	for (i = 0; i < 250; i++)
		assert_int_equal(f->dels[i].result.verdict, PROVIDER_SENT);
	assert_int_equal(mock_stat(f, "max_concurrent_streams_observed"), 100);
	assert_int_equal(mock_stat(f, "messages_accepted"), 250);
}

/* create() with a bad service account fails naming app and file, never the key. */
static void
expect_create_error(struct fixture *f, const char *content, const char *expected)
{
	char err[512] = "";
	FILE *fp = fopen(f->sa_path, "w");

	assert_non_null(fp);
	fputs(content, fp);
	fclose(fp);
	assert_null(ops->create(f->base, &f->config, err, sizeof err));
	assert_non_null(strstr(err, APP));
	assert_non_null(strstr(err, f->sa_path));
	assert_null(strstr(err, "SECRET"));
	if (strstr(err, expected) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", err, expected);
}

static void
test_fcm_create_reports_bad_service_account_without_key_material(void **state)
{
	struct fixture *f = *state;
	char err[512] = "", missing[PATH_MAX + 32];

	f->app.url = "https://127.0.0.1:9";
	assert_int_equal(config_url_parse(&f->app.endpoint, f->app.url, CONFIG_URL_ORIGIN),
	    0);
	snprintf(missing, sizeof missing, "%s/missing.json", f->dir);
	f->app.service_account_file = missing;
	assert_null(ops->create(f->base, &f->config, err, sizeof err));
	assert_non_null(strstr(err, missing));
	assert_non_null(strstr(err, "No such file"));
	f->app.service_account_file = f->sa_path;

	expect_create_error(f, "{\"private_key\": \"SECRET\\q\"}", "not a JSON object");
	expect_create_error(f, "{\"type\":\"authorized_user\",\"private_key\":\"SECRET\"}",
	    "expected \"service_account\"");
	expect_create_error(f, "{\"type\":\"service_account\",\"project_id\":\"p\","
	    "\"client_email\":\"a@b\",\"private_key\":\"-----BEGIN PRIVATE KEY-----\\n"
	    "SECRETSECRET\\n-----END PRIVATE KEY-----\\n\"}", "private_key");
	expect_create_error(f, "{\"type\":\"service_account\",\"project_id\":\"p\","
	    "\"private_key\":\"SECRET\"}", "client_email is missing");
}

static void
test_fcm_reload_refuses_unreadable_service_account_and_keeps_token(void **state)
{
	struct fixture *f = *state;
	struct provider_result r;
	char err[512] = "", broken[PATH_MAX + 32];
	FILE *fp;

	start(f, NULL);
	create(f);
	wait_tokens(f, 1, 5000);
	snprintf(broken, sizeof broken, "%s/broken.json", f->dir);
	fp = fopen(broken, "w");
	assert_non_null(fp);
	fputs("{\"type\":\"service_account\"", fp);
	fclose(fp);
	f->app.service_account_file = broken;
	assert_int_equal(ops->reload(f->provider, &f->config, err, sizeof err), -1);
	assert_non_null(strstr(err, broken));
	f->app.service_account_file = f->sa_path;
	r = send_and_wait(f, 0, "still-works");
	assert_int_equal(r.verdict, PROVIDER_SENT);
	assert_int_equal(stats(f).token_renewals, 1);
	assert_int_equal(mock_stat(f, "access_tokens_issued"), 1);
}

static void
test_fcm_reload_with_new_credentials_fetches_new_token(void **state)
{
	struct fixture *f = *state;
	struct provider_result r;
	struct jwt_key *pub;
	json_t *tokens, *sends, *header;
	char err[512] = "", *assertion;

	start(f, NULL);
	create(f);
	r = send_and_wait(f, 0, "before-reload");
	assert_int_equal(r.verdict, PROVIDER_SENT);

	/* Same content: nothing to do. */
	assert_int_equal(ops->reload(f->provider, &f->config, err, sizeof err), 0);
	run_for(f, 100);
	assert_int_equal(stats(f).token_renewals, 1);

	write_sa(f, f->sa_path, "kid-2");
	assert_int_equal(ops->reload(f->provider, &f->config, err, sizeof err), 0);
	wait_tokens(f, 2, 5000);
	r = send_and_wait(f, 1, "after-reload");
	assert_int_equal(r.verdict, PROVIDER_SENT);

	tokens = records(f, "/token");
	assert_int_equal(json_array_size(tokens), 2);
	assertion = form_assertion(json_array_get(tokens, 1));
	assert_int_equal(jwt_key_load_public_pem_file(sa_pub, JWT_ALG_RS256, &pub, err,
	    sizeof err), 0);
	assert_int_equal(jwt_verify(assertion, pub, JWT_ALG_RS256, &header, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(header, "kid")), "kid-2");
	sends = records(f, "/v1/projects/" PROJECT "/messages:send");
	assert_int_equal(json_array_size(sends), 2);
	assert_string_not_equal(record_header(json_array_get(sends, 0), "authorization"),
	    record_header(json_array_get(sends, 1), "authorization"));
	json_decref(header);
	jwt_key_free(pub);
	free(assertion);
	json_decref(tokens);
	json_decref(sends);
}

static unsigned drained;

static void
on_drained(void *arg)
{
	(void)arg;
	drained++;
}

static void
test_fcm_drain_finishes_in_flight_then_calls_done(void **state)
{
	struct fixture *f = *state;
	size_t i;

	start(f, NULL);
	add_rule(f, "{\"delay_ms\":300}");
	create(f);
	wait_tokens(f, 1, 5000);
	for (i = 0; i < 3; i++)
		assert_int_equal(send_one(f, delivery(f, i, "draining")), PROVIDER_OK);
	drained = 0;
	ops->drain(f->provider, on_drained, NULL);
	assert_int_equal(send_one(f, delivery(f, 3, "late")), PROVIDER_ESHUTDOWN);
	assert_int_equal(drained, 0);
	run_until(f, &drained, 1, 5000);
	assert_int_equal(drained, 1);
	assert_int_equal(completed, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(f->dels[i].result.verdict, PROVIDER_SENT);
	assert_int_equal(f->dels[3].completions, 0);
}

static void
test_fcm_free_completes_in_flight_with_shutdown(void **state)
{
	struct fixture *f = *state;
	int64_t deadline;

	start(f, NULL);
	add_rule(f, "{\"delay_ms\":3000}");
	create(f);
	wait_tokens(f, 1, 5000);
	assert_int_equal(send_one(f, delivery(f, 0, "in-flight-0")), PROVIDER_OK);
	assert_int_equal(send_one(f, delivery(f, 1, "in-flight-1")), PROVIDER_OK);
	deadline = clock_monotonic_ms() + 3000;
	while (stats(f).streams_in_flight < 2 && clock_monotonic_ms() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(stats(f).streams_in_flight, 2);
	ops->free(f->provider);
	f->provider = NULL;
	assert_int_equal(completed, 2);
	assert_int_equal(f->dels[0].result.verdict, PROVIDER_RETRY);
	assert_string_equal(f->dels[0].result.reason, "shutdown");
	assert_int_equal(f->dels[1].result.verdict, PROVIDER_RETRY);
	assert_string_equal(f->dels[1].result.reason, "shutdown");
}

static int
group_setup(void **state)
{
	const char *srcdir = getenv("PUSHRELAY_TOP_SRCDIR");
	char cmd[2 * PATH_MAX];

	(void)state;
	log_init();
	log_set_level(getenv("FCM_TEST_VERBOSE") != NULL ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	signal(SIGPIPE, SIG_IGN);
	snprintf(certs_dir, sizeof certs_dir, "%s/test_fcm_certs.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(certs_dir) == NULL)
		return -1;
	snprintf(cmd, sizeof cmd, "sh '%s/tests/gen-certs.sh' '%s'",
	    srcdir != NULL ? srcdir : ".", certs_dir);
	if (system(cmd) != 0)
		return -1;
	snprintf(ca_file, sizeof ca_file, "%s/ca.pem", certs_dir);
	snprintf(server_cert, sizeof server_cert, "%s/server.pem", certs_dir);
	snprintf(server_key, sizeof server_key, "%s/server.key", certs_dir);
	snprintf(sa_key, sizeof sa_key, "%s/fcm-sa.key", certs_dir);
	snprintf(sa_pub, sizeof sa_pub, "%s/fcm-sa.pub.pem", certs_dir);
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs_dir);
	curl_global_cleanup();
	return system(cmd) == 0 ? 0 : -1;
}

/* A long errorCode is cut between characters, for logs and the feedback's JSON. */
static void
test_fcm_long_error_code_is_cut_between_characters(void **state)
{
	struct provider_result result;
	struct h2_response response;
	char body[512], code[1 + 2 * 100 + 1];

	(void)state;
	code[0] = 'x';
	for (size_t i = 0; i < 100; i++)
		memcpy(code + 1 + 2 * i, "\xc3\xa9", 2);
	code[201] = '\0';
	snprintf(body, sizeof body, "{\"error\":{\"code\":400,\"details\":[{\"@type\":"
	    "\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"%s\"}]}}",
	    code);
	memset(&response, 0, sizeof response);
	response.status = 400;
	response.body = (const uint8_t *)body;
	response.body_len = strlen(body);
	assert_int_equal(fcm_answer_classify(&response, &result), 0);
	assert_int_equal(result.verdict, PROVIDER_REJECTED);
	/* "x" and 31 characters fill 63 bytes of the errorCode's 64. */
	assert_int_equal(strlen(result.reason), 63);
	assert_memory_equal(result.reason, code, 63);
	assert_true(utf8_valid(result.reason, strlen(result.reason)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fcm_long_error_code_is_cut_between_characters),
		cmocka_unit_test_setup_teardown(
		    test_fcm_token_exchange_signs_assertion_and_send_carries_bearer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fcm_sends_wait_for_first_token_then_all_go,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_renews_token_ahead_of_expiry_while_sends_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_401_renews_token_once_and_asks_for_immediate_resend, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fcm_second_401_in_a_row_is_a_config_error,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_404_unregistered_is_token_gone, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fcm_400_token_field_violation_is_token_gone,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_400_other_invalid_argument_is_rejected,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_403_sender_id_mismatch_is_token_gone,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_403_permission_denied_is_config, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fcm_401_third_party_auth_error_is_config,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_429_without_retry_after_waits_at_least_a_minute, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_429_honours_retry_after, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fcm_503_and_500_are_retried_with_retry_after,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_retry_after_is_clamped_and_garbage_is_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_no_answer_is_retry_with_h2_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_payload_error_is_rejected_after_send_returns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_unknown_app_is_enoapp, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_failed_exchange_is_retried_after_backoff_and_waiting_sends_go, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_waiting_sends_fail_with_oauth_reason_after_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_waiting_list_is_bounded, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fcm_token_endpoint_certificate_is_verified,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_never_opens_more_than_100_streams_per_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_create_reports_bad_service_account_without_key_material, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_reload_refuses_unreadable_service_account_and_keeps_token, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_fcm_reload_with_new_credentials_fetches_new_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_drain_finishes_in_flight_then_calls_done,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fcm_free_completes_in_flight_with_shutdown,
		    setup, teardown),
	};

	return cmocka_run_group_tests_name("fcm", tests, group_setup, group_teardown);
}
