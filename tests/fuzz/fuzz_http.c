/*
 * The HTTP request path, driven through the real server in-process: the connection
 * guard (head check, limits), evhttp, decoding, routing, authentication and the
 * handlers, over a loopback connection to an API on a real SQLite store.
 *
 * The input is what a client sends. Checks: every answer is well formed with a valid
 * UTF-8 body (JSON parses when it says JSON); no route answers 2xx to a request that
 * does not carry the key, unless the route is public; and the daemon never stops.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "api.h"
#include "apikey.h"
#include "fuzz.h"
#include "store.h"
#include "store_writer.h"

#define FUZZ_KEY "fuzz0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"

static struct event_base *base;
static struct api *api;
static int port;

/* The port the API got (it listens on 127.0.0.1:0). */
static int
listening_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;

	/* The API logs its port; ask the kernel for a free one and bind there instead. */
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		fuzz_fail("no free port");
	close(fd);
	return ntohs(sin.sin_port);
}

/* The store the API's threads open theirs from: kept for the whole run, as the API. */
static struct store *store;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/pushrelay-fuzz-http-XXXXXX", path[256], listen[64], err[512];
	char *const listens[] = { listen };
	struct store_options store_options = { path, STORE_SYNC_NORMAL, 1000, 0, 0, NULL };
	struct api_options options;
	struct apikeys *keys;
	struct store_writer *writer, *reader;
	int fd;

	fuzz_setup();
	if (mkdtemp(dir) == NULL)
		fuzz_fail("mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/api-keys", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, FUZZ_KEY "\n", strlen(FUZZ_KEY) + 1) < 0 || close(fd) != 0)
		fuzz_fail("cannot write the key file");
	if (apikey_load(path, &keys, err, sizeof err) != 0)
		fuzz_fail("apikey_load: %s", err);
	snprintf(path, sizeof path, "%s/registry.db", dir);
	if (store_open("sqlite", &store_options, &store, err, sizeof err) != 0)
		fuzz_fail("store_open: %s", err);
	base = event_base_new();
	port = listening_port();
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	memset(&options, 0, sizeof options);
	options.listen = listens;
	options.listen_count = 1;
	options.max_body_size = 64 * 1024;
	options.request_timeout_ms = 2000;
	options.header_timeout_ms = 1000;
	options.max_connections = 64;
	options.max_connections_per_peer = 64;
	options.metrics_public = 0;
	writer = store_writer_start(base, store, STORE_WRITER_GROUP_COMMIT, err, sizeof err);
	reader = store_writer_start(base, store, STORE_WRITER_EACH, err, sizeof err);
	if (writer == NULL || reader == NULL)
		fuzz_fail("store_writer_start: %s", err);
	if ((api = api_new(base, &options, writer, reader, keys, err, sizeof err)) == NULL)
		fuzz_fail("api_new: %s", err);
	return 0;
}

struct exchange {
	int fd;
	struct evbuffer *answer;
	int done;
};

static void
client_readable(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *x = arg;
	char buf[16384];
	ssize_t n;

	if (what & EV_TIMEOUT) {
		x->done = 1;
		return;
	}
	while ((n = read(fd, buf, sizeof buf)) > 0)
		evbuffer_add(x->answer, buf, (size_t)n);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		x->done = 1;
}

/* Does the request carry the key anywhere (the fuzzer may put it in any header)? */
static int
carries_key(const uint8_t *data, size_t size)
{
	return memmem(data, size, FUZZ_KEY, strlen(FUZZ_KEY)) != NULL;
}

/* Check every answer in the bytes the server sent back. */
static void
check_answers(struct evbuffer *answer, int keyed)
{
	char *line;
	size_t len;

	while ((line = evbuffer_readln(answer, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		int status = 0, json = 0;
		long content_length = -1;
		char *header;

		if (sscanf(line, "HTTP/1.%*d %d", &status) != 1) {
			free(line);
			return;		/* libevent's own answers end the check */
		}
		free(line);
		while ((header = evbuffer_readln(answer, &len, EVBUFFER_EOL_CRLF)) != NULL &&
		    *header != '\0') {
			if (strncasecmp(header, "Content-Type: application/json", 30) == 0)
				json = 1;
			if (strncasecmp(header, "Content-Length:", 15) == 0)
				content_length = strtol(header + 15, NULL, 10);
			free(header);
		}
		free(header);
		if (content_length < 0 || (size_t)content_length > evbuffer_get_length(answer))
			return;
		{
			char *body = malloc((size_t)content_length + 1);
			evbuffer_remove(answer, body, (size_t)content_length);
			body[content_length] = '\0';
			if (!utf8_valid(body, (size_t)content_length) && json)
				fuzz_fail("a JSON answer is not UTF-8: %s", body);
			if (json) {
				json_t *parsed = json_loads(body, 0, NULL);
				if (parsed == NULL)
					fuzz_fail("a JSON answer does not parse: %s", body);
				json_decref(parsed);
			}
			/* Only /healthz and /readyz answer 2xx without the key here. */
			if (status >= 200 && status < 300 && !keyed &&
			    strncmp(body, "{\"status\":", 10) != 0)
				fuzz_fail("%d without a key: %s", status, body);
			free(body);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sin;
	struct exchange x = { -1, evbuffer_new(), 0 };
	struct event *ev;
	struct timeval tv = { 3, 0 };

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if ((x.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
		fuzz_fail("socket: %s", strerror(errno));
	/* Non-blocking, and waited for: libFuzzer's SIGALRM would interrupt a connect(). */
	if (connect(x.fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		struct pollfd pfd = { x.fd, POLLOUT, 0 };
		int error = 0;
		socklen_t len = sizeof error;
		if (errno != EINPROGRESS && errno != EINTR)
			fuzz_fail("connect: %s", strerror(errno));
		while (poll(&pfd, 1, 5000) == -1 && errno == EINTR)
			;
		if (getsockopt(x.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0)
			fuzz_fail("connect: %s", strerror(error));
	}
	/* The request, then the end of it: the server answers and closes. */
	if (size > 0 && send(x.fd, data, size, MSG_NOSIGNAL) < 0 && errno != EAGAIN &&
	    errno != EINTR && errno != ECONNRESET && errno != EPIPE)
		fuzz_fail("send: %s", strerror(errno));
	shutdown(x.fd, SHUT_WR);
	ev = event_new(base, x.fd, EV_READ | EV_PERSIST | EV_TIMEOUT, client_readable, &x);
	event_add(ev, &tv);
	while (!x.done)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
	close(x.fd);
	check_answers(x.answer, carries_key(data, size));
	evbuffer_free(x.answer);
	/* Let the server finish with the connection before the next input. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	return 0;
}
