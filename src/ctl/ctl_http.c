/*
 * pushrelayctl's link to the daemon: the API key, one HTTP request over the unix
 * socket or TCP, the error an answer carries, and paths with their ids escaped.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "secret_file.h"
#include "xmalloc.h"

#include "ctl.h"

#define CTL_CONNECT_TIMEOUT_MS 5000
#define CTL_RESPONSE_MAX (64 * 1024 * 1024)
/* As pushrelayd's limit for a key file. */
#define CTL_KEY_FILE_MAX (1024 * 1024)

/* ---- the API key --------------------------------------------------------------- */

/* The first key of a key file (as pushrelayd reads it); NULL with why set. */
static char *
ctl_read_key(const char *path, char *why, size_t whylen)
{
	struct secret_file file;
	char *key = NULL, *line, *next, *p, *end;

	if (secret_file_read(path, NULL, CTL_KEY_FILE_MAX, &file, why, whylen) != 0)
		return NULL;
	for (line = file.data; key == NULL && line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		end = p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (*p != '\0')
			key = xstrdup(p);
	}
	secret_file_free(&file);
	if (key == NULL)
		snprintf(why, whylen, "no key in the file");
	return key;
}

/* Find the key: -k or PUSHRELAY_KEY_FILE must be readable; the default may not be. */
void
ctl_load_key(struct ctl *ctl)
{
	char why[256];

	if (ctl->key_file != NULL) {
		if ((ctl->key = ctl_read_key(ctl->key_file, why, sizeof why)) == NULL) {
			fprintf(stderr, "pushrelayctl: cannot read an API key from %s: %s\n",
			    ctl->key_file, why);
			exit(CTL_EXIT_USAGE);
		}
		return;
	}
	ctl->key = ctl_read_key(CTL_DEFAULT_KEY_FILE, why, sizeof why);
}

/* ---- HTTP ---------------------------------------------------------------------- */

/* Collect the body, up to a bound. */
static size_t
ctl_write(char *data, size_t size, size_t count, void *arg)
{
	struct ctl_response *response = arg;
	size_t n = size * count;

	if (response->len + n > CTL_RESPONSE_MAX)
		return 0;
	response->data = xreallocarray(response->data, response->len + n + 1, 1);
	memcpy(response->data + response->len, data, n);
	response->len += n;
	response->data[response->len] = '\0';
	return n;
}

/* Forget an answer. */
void
ctl_response_free(struct ctl_response *response)
{
	free(response->data);
	json_decref(response->json);
	memset(response, 0, sizeof *response);
}

/* Why the unix socket cannot be connected to, from connect(2) itself. */
static const char *
ctl_socket_error(const char *path)
{
	struct sockaddr_un sun;
	int fd, error = 0;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		return strerror(ENAMETOOLONG);
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return strerror(errno);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1)
		error = errno;
	close(fd);
	return error != 0 ? strerror(error) : NULL;
}

/* Add a request header. */
static struct curl_slist *
ctl_header(struct curl_slist *headers, const char *header)
{
	struct curl_slist *added = curl_slist_append(headers, header);

	if (added == NULL)
		fatalx("curl_slist_append: out of memory");
	return added;
}

/*
 * One request: 0 with the answer (whatever its status), or CTL_EXIT_UNREACHABLE after
 * saying why. The key goes only in the Authorization header of /v1 requests.
 */
int
ctl_request(struct ctl *ctl, const char *method, const char *path, const json_t *body,
    long timeout_ms, struct ctl_response *response)
{
	char error[CURL_ERROR_SIZE] = "", *url, *text = NULL, *auth = NULL;
	struct curl_slist *headers = NULL;
	const char *why;
	CURLcode rc;

	memset(response, 0, sizeof *response);
	url = xasprintf("%s%s", ctl->url, path);
	curl_easy_reset(ctl->curl);
	curl_easy_setopt(ctl->curl, CURLOPT_URL, url);
	curl_easy_setopt(ctl->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(ctl->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(ctl->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(ctl->curl, CURLOPT_PROXY, "");	/* the key goes to the daemon only */
	curl_easy_setopt(ctl->curl, CURLOPT_ERRORBUFFER, error);
	curl_easy_setopt(ctl->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)CTL_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(ctl->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(ctl->curl, CURLOPT_USERAGENT, "pushrelayctl/" PACKAGE_VERSION);
	curl_easy_setopt(ctl->curl, CURLOPT_WRITEFUNCTION, ctl_write);
	curl_easy_setopt(ctl->curl, CURLOPT_WRITEDATA, response);
	if (ctl->socket_path != NULL)
		curl_easy_setopt(ctl->curl, CURLOPT_UNIX_SOCKET_PATH, ctl->socket_path);
	headers = ctl_header(headers, "Accept: application/json");
	headers = ctl_header(headers, "Expect:");
	if (ctl->key != NULL && strncmp(path, "/v1/", 4) == 0) {
		auth = xasprintf("Authorization: Bearer %s", ctl->key);
		headers = ctl_header(headers, auth);
	}
	if (strcmp(method, "GET") != 0)
		curl_easy_setopt(ctl->curl, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		if ((text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
			fatalx("json_dumps: out of memory");
		headers = ctl_header(headers, "Content-Type: application/json");
		curl_easy_setopt(ctl->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
		curl_easy_setopt(ctl->curl, CURLOPT_POSTFIELDS, text);
	}
	curl_easy_setopt(ctl->curl, CURLOPT_HTTPHEADER, headers);

	rc = curl_easy_perform(ctl->curl);

	curl_slist_free_all(headers);
	if (auth != NULL) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	free(text);
	free(url);
	if (rc != CURLE_OK) {
		if (ctl->socket_path != NULL) {
			why = rc == CURLE_COULDNT_CONNECT ? ctl_socket_error(ctl->socket_path) : NULL;
			fprintf(stderr, "pushrelayctl: cannot reach pushrelayd at %s: %s\n",
			    ctl->socket_path, why != NULL ? why : *error != '\0' ? error :
			    curl_easy_strerror(rc));
		} else
			fprintf(stderr, "pushrelayctl: cannot reach pushrelayd at %s: %s\n",
			    ctl->url, *error != '\0' ? error : curl_easy_strerror(rc));
		ctl_response_free(response);
		return CTL_EXIT_UNREACHABLE;
	}
	curl_easy_getinfo(ctl->curl, CURLINFO_RESPONSE_CODE, &response->status);
	if (response->len > 0)
		response->json = json_loadb(response->data, response->len, 0, NULL);
	return 0;
}

/*
 * Report an answer that is not a success: "pushrelayctl: CODE: MESSAGE" from the
 * API's error body, and the exit status (4 for 404, else 1).
 */
int
ctl_refused(struct ctl *ctl, const struct ctl_response *response)
{
	const json_t *error = json_object_get(response->json, "error");
	const char *code = json_string_value(json_object_get(error, "code"));
	const char *message = json_string_value(json_object_get(error, "message"));
	char *text, *clean_code, *line;

	if (code != NULL && message != NULL) {
		clean_code = ctl_sanitize(code);
		text = ctl_sanitize(message);
		fprintf(stderr, "pushrelayctl: %s: %s\n", clean_code, text);
		free(clean_code);
	} else {
		/* Not our error format: the first line of whatever came, if anything. */
		line = xstrndup(response->data != NULL ? response->data : "", 200);
		line[strcspn(line, "\r\n")] = '\0';
		text = ctl_sanitize(line);
		free(line);
		fprintf(stderr, "pushrelayctl: HTTP %ld%s%s\n", response->status,
		    *text != '\0' ? ": " : "", text);
	}
	free(text);
	if (response->status == 401 && ctl->key == NULL)
		fprintf(stderr, "pushrelayctl: no API key was sent: give -k FILE or set "
		    "PUSHRELAY_KEY_FILE (" CTL_DEFAULT_KEY_FILE " is not readable)\n");
	return response->status == 404 ? CTL_EXIT_NOT_FOUND : CTL_EXIT_REFUSED;
}

/*
 * A request whose success is a 2xx with a JSON object (or no body where allowed):
 * 0 with the answer, or the exit status after saying what went wrong.
 */
int
ctl_call(struct ctl *ctl, const char *method, const char *path, const json_t *body,
    struct ctl_response *response)
{
	int rc;

	if ((rc = ctl_request(ctl, method, path, body, CTL_TIMEOUT_MS, response)) != 0)
		return rc;
	if (response->status < 200 || response->status > 299) {
		rc = ctl_refused(ctl, response);
		ctl_response_free(response);
		return rc;
	}
	if (response->status != 204 && !json_is_object(response->json)) {
		fprintf(stderr, "pushrelayctl: HTTP %ld: the answer is not a JSON object\n",
		    response->status);
		ctl_response_free(response);
		return CTL_EXIT_REFUSED;
	}
	return 0;
}

/* An id as a path segment, every reserved character percent-encoded. */
char *
ctl_escape(struct ctl *ctl, const char *id)
{
	char *escaped = curl_easy_escape(ctl->curl, id, 0), *copy;

	if (escaped == NULL)
		fatalx("curl_easy_escape: out of memory");
	copy = xstrdup(escaped);
	curl_free(escaped);
	return copy;
}

/* A path from literal parts and ids in turn, up to a NULL; the ids percent-encoded. */
char *
ctl_path(struct ctl *ctl, const char *first, ...)
{
	char *path = xstrdup(first), *escaped, *longer;
	const char *part;
	va_list ap;
	int id = 1;

	va_start(ap, first);
	while ((part = va_arg(ap, const char *)) != NULL) {
		escaped = id ? ctl_escape(ctl, part) : xstrdup(part);
		longer = xasprintf("%s%s", path, escaped);
		free(escaped);
		free(path);
		path = longer;
		id = !id;
	}
	va_end(ap);
	return path;
}
