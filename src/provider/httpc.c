/* Asynchronous HTTP requests with libcurl's multi socket interface on libevent. */
#include "autoconf.h"

#include <sys/queue.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "httpc.h"
#include "log.h"
#include "retry_after.h"
#include "xmalloc.h"

#define HTTPC_TIMEOUT_MS 30000
#define HTTPC_RESPONSE_LIMIT 65536

/* A socket libcurl asked us to watch. */
struct httpc_socket {
	LIST_ENTRY(httpc_socket) entry;
	struct httpc *client;
	curl_socket_t fd;
	struct event ev;
};

struct httpc_request {
	TAILQ_ENTRY(httpc_request) entry;
	struct httpc *client;
	CURL *easy;
	struct curl_slist *headers;
	httpc_done_fn *done;
	void *arg;
	char *body;			/* the response, NUL-terminated */
	size_t body_len;
	size_t body_cap;
	size_t body_limit;
	int body_truncated;
	int64_t retry_after_ms;
	char error[CURL_ERROR_SIZE];
};

struct httpc {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	TAILQ_HEAD(, httpc_request) requests;
	size_t nrequests;
	LIST_HEAD(, httpc_socket) sockets;
};

const char *
httpc_strerror(int error)
{
	switch (error) {
	case HTTPC_OK:
		return "success";
	case HTTPC_EINVAL:
		return "invalid request";
	case HTTPC_ETIMEDOUT:
		return "timed out";
	case HTTPC_ECONNECT:
		return "cannot connect";
	case HTTPC_ETLS:
		return "TLS failure";
	case HTTPC_ETRANSFER:
		return "transfer failed";
	}
	return "unknown error";
}

/* Map a libcurl result to an HTTPC_E* code. */
static int
httpc_error_from_curl(CURLcode code)
{
	switch (code) {
	case CURLE_OK:
		return HTTPC_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTPC_ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return HTTPC_ECONNECT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return HTTPC_ETLS;
	default:
		return HTTPC_ETRANSFER;
	}
}

/* Remove a request from the client and free it; no callback. */
static void
httpc_request_free(struct httpc_request *request)
{
	struct httpc *client = request->client;

	TAILQ_REMOVE(&client->requests, request, entry);
	client->nrequests--;
	curl_multi_remove_handle(client->multi, request->easy);
	curl_easy_cleanup(request->easy);
	curl_slist_free_all(request->headers);
	free(request->body);
	free(request);
}

/* Hand every finished transfer to its callback. */
static void
httpc_check_done(struct httpc *client)
{
	struct httpc_request *request;
	struct httpc_response response;
	CURLMsg *msg;
	CURLcode code;
	long status = 0;
	int left;

	while ((msg = curl_multi_info_read(client->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		request = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&request);
		if (request == NULL)
			continue;
		code = msg->data.result;
		memset(&response, 0, sizeof response);
		response.error = httpc_error_from_curl(code);
		if (response.error == HTTPC_OK) {
			curl_easy_getinfo(request->easy, CURLINFO_RESPONSE_CODE, &status);
			response.status = (int)status;
		} else
			response.error_text = request->error[0] != '\0' ? request->error :
			    curl_easy_strerror(code);
		response.body = request->body != NULL ? request->body : "";
		response.body_len = request->body_len;
		response.body_truncated = request->body_truncated;
		response.retry_after_ms = request->retry_after_ms;

		/* Out of the multi handle before the callback, which may start requests. */
		TAILQ_REMOVE(&client->requests, request, entry);
		client->nrequests--;
		curl_multi_remove_handle(client->multi, request->easy);
		request->done(&response, request->arg);
		curl_easy_cleanup(request->easy);
		curl_slist_free_all(request->headers);
		free(request->body);
		free(request);
	}
}

/* A watched socket is ready. */
static void
httpc_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *client = arg;
	int action = 0, running = 0;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	/* libcurl stops the timer itself (timeout -1) once nothing is left to time. */
	curl_multi_socket_action(client->multi, fd, action, &running);
	httpc_check_done(client);
}

/* libcurl's timeout expired. */
static void
httpc_timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *client = arg;
	int running = 0;

	(void)fd;
	(void)what;
	curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	httpc_check_done(client);
}

/* CURLMOPT_TIMERFUNCTION: (re)arm or stop the single timer. */
static int
httpc_timer_callback(CURLM *multi, long timeout_ms, void *arg)
{
	struct httpc *client = arg;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(client->timer);
		return 0;
	}
	/* Never act from inside libcurl: even "now" goes through the loop. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(client->timer, &tv);
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch, re-watch or forget a socket. */
static int
httpc_socket_callback(CURL *easy, curl_socket_t fd, int what, void *arg, void *socketp)
{
	struct httpc *client = arg;
	struct httpc_socket *sock = socketp;
	short events;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (sock != NULL) {
			event_del(&sock->ev);
			LIST_REMOVE(sock, entry);
			free(sock);
			curl_multi_assign(client->multi, fd, NULL);
		}
		return 0;
	}
	events = EV_PERSIST;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= EV_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= EV_WRITE;
	if (sock == NULL) {
		sock = xcalloc(1, sizeof *sock);
		sock->client = client;
		sock->fd = fd;
		LIST_INSERT_HEAD(&client->sockets, sock, entry);
		curl_multi_assign(client->multi, fd, sock);
	} else
		event_del(&sock->ev);
	event_assign(&sock->ev, client->base, fd, events, httpc_socket_event, client);
	event_add(&sock->ev, NULL);
	return 0;
}

/* CURLOPT_WRITEFUNCTION: keep the response body up to the limit. */
static size_t
httpc_write_callback(char *data, size_t size, size_t nmemb, void *arg)
{
	struct httpc_request *request = arg;
	size_t len = size * nmemb, keep = len;

	if (request->body_len + keep > request->body_limit) {
		keep = request->body_limit - request->body_len;
		request->body_truncated = 1;
	}
	if (keep > 0) {
		if (request->body_len + keep + 1 > request->body_cap) {
			request->body_cap = request->body_len + keep + 1;
			if (request->body_cap < 1024)
				request->body_cap = 1024;
			request->body = xreallocarray(request->body, 1, request->body_cap);
		}
		memcpy(request->body + request->body_len, data, keep);
		request->body_len += keep;
		request->body[request->body_len] = '\0';
	}
	return len;
}

/* CURLOPT_HEADERFUNCTION: pick Retry-After out of the final response's headers. */
static size_t
httpc_header_callback(char *data, size_t size, size_t nmemb, void *arg)
{
	struct httpc_request *request = arg;
	size_t len = size * nmemb, name_len = sizeof "retry-after:" - 1;
	char value[128];
	size_t start, end;

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue, say): forget the last one's. */
		request->retry_after_ms = -1;
		return len;
	}
	if (len <= name_len || strncasecmp(data, "retry-after:", name_len) != 0)
		return len;
	for (start = name_len; start < len && (data[start] == ' ' || data[start] == '\t');
	    start++)
		;
	for (end = len; end > start && isspace((unsigned char)data[end - 1]); end--)
		;
	if (end - start >= sizeof value)
		return len;
	memcpy(value, data + start, end - start);
	value[end - start] = '\0';
	request->retry_after_ms = retry_after_parse_ms(value, clock_now_ms());
	return len;
}

/* Is url http:// or https://? */
static int
httpc_scheme_ok(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

int
httpc_request(struct httpc *client, const struct httpc_options *options,
    httpc_done_fn *done, void *arg, struct httpc_request **out)
{
	struct httpc_request *request;
	const char *method;
	char *header;
	CURL *easy;

	if (out != NULL)
		*out = NULL;
	if (options->url == NULL || !httpc_scheme_ok(options->url) || done == NULL ||
	    (options->body == NULL && options->body_len > 0))
		return HTTPC_EINVAL;
	if ((easy = curl_easy_init()) == NULL)
		fatalx("curl_easy_init: out of memory");
	request = xcalloc(1, sizeof *request);
	request->client = client;
	request->easy = easy;
	request->done = done;
	request->arg = arg;
	request->retry_after_ms = -1;
	request->body_limit = options->response_limit > 0 ? options->response_limit :
	    HTTPC_RESPONSE_LIMIT;

	method = options->method != NULL ? options->method :
	    options->body != NULL ? "POST" : "GET";
	curl_easy_setopt(easy, CURLOPT_URL, options->url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, request);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, request->error);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(options->timeout_ms > 0 ?
	    options->timeout_ms : HTTPC_TIMEOUT_MS));
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	/* Like tls.c: a CA file's certificates are anchors only if they are CAs' roots. */
	curl_easy_setopt(easy, CURLOPT_SSL_OPTIONS, (long)CURLSSLOPT_NO_PARTIALCHAIN);
	if (options->ca_file != NULL)
		curl_easy_setopt(easy, CURLOPT_CAINFO, options->ca_file);
	if (options->proxy != NULL && *options->proxy != '\0') {
		/* "http://[user:password@]host:port" (provider_proxy_url), or host:port. */
		if (strstr(options->proxy, "://") != NULL)
			curl_easy_setopt(easy, CURLOPT_PROXY, options->proxy);	/* copied */
		else {
			header = xasprintf("http://%s", options->proxy);
			curl_easy_setopt(easy, CURLOPT_PROXY, header);	/* copied by libcurl */
			free(header);
		}
		curl_easy_setopt(easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
		curl_easy_setopt(easy, CURLOPT_NOPROXY, "");	/* no_proxy must not undo it */
	} else
		curl_easy_setopt(easy, CURLOPT_PROXY, "");	/* ignore *_proxy variables */
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, httpc_write_callback);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, request);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, httpc_header_callback);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, request);
	if (options->body != NULL) {
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)options->body_len);
		curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, options->body);
	}
	if (strcmp(method, "POST") != 0 || options->body == NULL)
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
	if (options->content_type != NULL) {
		header = xasprintf("Content-Type: %s", options->content_type);
		request->headers = curl_slist_append(request->headers, header);
		free(header);
	}
	/* No "Expect: 100-continue" round trip for small HTTP/1.1 bodies. */
	request->headers = curl_slist_append(request->headers, "Expect:");
	if (request->headers == NULL)
		fatalx("curl_slist_append: out of memory");
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);

	TAILQ_INSERT_TAIL(&client->requests, request, entry);
	client->nrequests++;
	if (curl_multi_add_handle(client->multi, easy) != CURLM_OK) {
		TAILQ_REMOVE(&client->requests, request, entry);
		client->nrequests--;
		curl_easy_cleanup(easy);
		curl_slist_free_all(request->headers);
		free(request);
		return HTTPC_EINVAL;
	}
	if (out != NULL)
		*out = request;
	return HTTPC_OK;
}

void
httpc_cancel(struct httpc_request *request)
{
	if (request != NULL)
		httpc_request_free(request);
}

size_t
httpc_pending(const struct httpc *client)
{
	return client->nrequests;
}

struct httpc *
httpc_new(struct event_base *base)
{
	struct httpc *client;

	/* Reference counted by libcurl itself: each httpc holds one. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	client = xcalloc(1, sizeof *client);
	client->base = base;
	TAILQ_INIT(&client->requests);
	LIST_INIT(&client->sockets);
	if ((client->multi = curl_multi_init()) == NULL)
		fatalx("curl_multi_init: out of memory");
	if ((client->timer = evtimer_new(base, httpc_timer_event, client)) == NULL)
		fatalx("evtimer_new: out of memory");
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, httpc_socket_callback);
	curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, httpc_timer_callback);
	curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
	return client;
}

void
httpc_free(struct httpc *client)
{
	struct httpc_socket *sock;

	if (client == NULL)
		return;
	while (!TAILQ_EMPTY(&client->requests))
		httpc_request_free(TAILQ_FIRST(&client->requests));
	/* Closing cached connections may still call the socket callback. */
	curl_multi_cleanup(client->multi);
	while ((sock = LIST_FIRST(&client->sockets)) != NULL) {
		event_del(&sock->ev);
		LIST_REMOVE(sock, entry);
		free(sock);
	}
	event_free(client->timer);
	free(client);
	curl_global_cleanup();
}
