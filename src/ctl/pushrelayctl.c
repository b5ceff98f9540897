/*
 * pushrelayctl: administer a running pushrelayd through its HTTP API, over the unix
 * socket of the packaged configuration or over TCP. One command per run; text for
 * people, --json for scripts, and exit codes a script can rely on (see pushrelayctl(1)).
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "xmalloc.h"

#define CTL_DEFAULT_SOCKET "/run/pushrelay/api.sock"
#define CTL_DEFAULT_KEY_FILE "/var/lib/pushrelay/api-keys"
#define CTL_CONNECT_TIMEOUT_MS 5000
#define CTL_TIMEOUT_MS 30000
#define CTL_RESPONSE_MAX (64 * 1024 * 1024)
#define CTL_PAGE_MAX 1000		/* the API's largest page of members */
#define CTL_FOLLOW_WAIT_S 25		/* each long-poll of feedback follow */
#define CTL_WAIT_POLL_MIN_MS 100	/* send --wait: first pause, doubled up to the max */
#define CTL_WAIT_POLL_MAX_MS 1000

/* What the exit status means; documented in pushrelayctl(1). */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_REFUSED = 1,		/* the server refused or reported a failure */
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_UNREACHABLE = 3,
	CTL_EXIT_NOT_FOUND = 4,
};

/* Options: the global ones apply to every command, the others to some. */
enum ctl_option {
	CTL_OPT_LIMIT = 1 << 0,
	CTL_OPT_PAGE_SIZE = 1 << 1,
	CTL_OPT_UNTIL = 1 << 2,
	CTL_OPT_OFF = 1 << 3,
	CTL_OPT_CLIENT = 1 << 4,
	CTL_OPT_DEVICE = 1 << 5,
	CTL_OPT_ROOM = 1 << 6,
	CTL_OPT_TITLE = 1 << 7,
	CTL_OPT_BODY = 1 << 8,
	CTL_OPT_DATA = 1 << 9,
	CTL_OPT_WAIT = 1 << 10,
	CTL_OPT_AFTER = 1 << 11,
};

/* getopt_long values of the long-only options. */
enum {
	CTL_LONG_LIMIT = 256,
	CTL_LONG_PAGE_SIZE,
	CTL_LONG_UNTIL,
	CTL_LONG_OFF,
	CTL_LONG_CLIENT,
	CTL_LONG_DEVICE,
	CTL_LONG_ROOM,
	CTL_LONG_TITLE,
	CTL_LONG_BODY,
	CTL_LONG_DATA,
	CTL_LONG_WAIT,
	CTL_LONG_AFTER,
};

static const struct option ctl_long_options[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "url", required_argument, NULL, 'u' },
	{ "key-file", required_argument, NULL, 'k' },
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "limit", required_argument, NULL, CTL_LONG_LIMIT },
	{ "page-size", required_argument, NULL, CTL_LONG_PAGE_SIZE },
	{ "until", required_argument, NULL, CTL_LONG_UNTIL },
	{ "off", no_argument, NULL, CTL_LONG_OFF },
	{ "client", required_argument, NULL, CTL_LONG_CLIENT },
	{ "device", required_argument, NULL, CTL_LONG_DEVICE },
	{ "room", required_argument, NULL, CTL_LONG_ROOM },
	{ "title", required_argument, NULL, CTL_LONG_TITLE },
	{ "body", required_argument, NULL, CTL_LONG_BODY },
	{ "data", required_argument, NULL, CTL_LONG_DATA },
	{ "wait", no_argument, NULL, CTL_LONG_WAIT },
	{ "after", required_argument, NULL, CTL_LONG_AFTER },
	{ NULL, 0, NULL, 0 },
};

/* The names of the options, for "does not apply" messages. */
static const struct {
	int flag;
	const char *name;
} ctl_option_names[] = {
	{ CTL_OPT_LIMIT, "--limit" }, { CTL_OPT_PAGE_SIZE, "--page-size" },
	{ CTL_OPT_UNTIL, "--until" }, { CTL_OPT_OFF, "--off" },
	{ CTL_OPT_CLIENT, "--client" }, { CTL_OPT_DEVICE, "--device" },
	{ CTL_OPT_ROOM, "--room" }, { CTL_OPT_TITLE, "--title" }, { CTL_OPT_BODY, "--body" },
	{ CTL_OPT_DATA, "--data" }, { CTL_OPT_WAIT, "--wait" }, { CTL_OPT_AFTER, "--after" },
};

/* One run: where the daemon is, the key, the options given. */
struct ctl {
	CURL *curl;
	char *socket_path;		/* NULL: TCP at url */
	char *url;			/* base URL without a trailing '/' */
	char *key;			/* NULL: none found */
	const char *key_file;		/* given with -k or PUSHRELAY_KEY_FILE */
	int json;

	const struct ctl_command *command;
	int seen;			/* CTL_OPT_* given */
	uint64_t limit;			/* 0: all */
	uint64_t page_size;
	const char *until;
	char **clients, **devices, **data;
	size_t client_count, device_count, data_count;
	const char *room, *title, *body;
	uint64_t after;
};

/* An answer from the daemon. */
struct ctl_response {
	long status;
	char *data;
	size_t len;
	json_t *json;			/* the body parsed, or NULL */
};

/* A command: its words, its arguments, the options it takes, what runs it. */
struct ctl_command {
	const char *group;		/* "devices", or the command itself */
	const char *name;		/* "list", or NULL */
	int args;			/* positional arguments after the words */
	int options;			/* CTL_OPT_* */
	const char *usage;		/* after "pushrelayctl [OPTIONS] " */
	int (*run)(struct ctl *ctl, char **args);
};

/* Rows of text cells, printed in aligned columns. */
struct ctl_table {
	size_t columns;
	size_t rows;
	char **cells;
};

static void ctl_usage_error(const struct ctl_command *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static char *ctl_path(struct ctl *ctl, const char *first, ...) __attribute__((sentinel));

/* ---- text -------------------------------------------------------------------- */

/* A copy of s with control characters (which could drive the terminal) as '?'. */
static char *
ctl_sanitize(const char *s)
{
	char *copy = xstrdup(s);

	for (char *p = copy; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	return copy;
}

/* The width of UTF-8 text in columns, one per code point. */
static size_t
ctl_width(const char *s)
{
	size_t width = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			width++;
	}
	return width;
}

/* A JSON value as text for people: "-" for null or absent, yes/no for booleans. */
static char *
ctl_text(const json_t *value)
{
	char *text, *clean;

	if (value == NULL || json_is_null(value))
		return xstrdup("-");
	if (json_is_string(value))
		return ctl_sanitize(json_string_value(value));
	if (json_is_true(value))
		return xstrdup("yes");
	if (json_is_false(value))
		return xstrdup("no");
	if (json_is_integer(value))
		return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(value));
	if (json_is_real(value))
		return xasprintf("%g", json_real_value(value));
	if ((text = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		fatalx("json_dumps: out of memory");
	clean = ctl_sanitize(text);
	free(text);
	return clean;
}

/* A field of an object as text. */
static char *
ctl_field(const json_t *object, const char *key)
{
	return ctl_text(json_object_get(object, key));
}

/* An empty table of so many columns. */
static void
ctl_table_init(struct ctl_table *table, size_t columns)
{
	memset(table, 0, sizeof *table);
	table->columns = columns;
}

/* Add a row of cells, taking ownership of the strings. */
static void
ctl_table_add_owned(struct ctl_table *table, char **cells)
{
	table->cells = xreallocarray(table->cells, (table->rows + 1) * table->columns,
	    sizeof *table->cells);
	memcpy(table->cells + table->rows * table->columns, cells,
	    table->columns * sizeof *cells);
	table->rows++;
}

/* Add a row of literal cells (copied, sanitized). */
static void
ctl_table_add(struct ctl_table *table, ...)
{
	char *cells[16];
	va_list ap;

	va_start(ap, table);
	for (size_t i = 0; i < table->columns; i++)
		cells[i] = ctl_sanitize(va_arg(ap, const char *));
	va_end(ap);
	ctl_table_add_owned(table, cells);
}

/* Print the rows in columns two spaces apart, without trailing blanks; then free. */
static void
ctl_table_print(struct ctl_table *table)
{
	size_t widths[16] = { 0 }, w;
	char *cell;

	for (size_t r = 0; r < table->rows; r++) {
		for (size_t c = 0; c < table->columns; c++) {
			if ((w = ctl_width(table->cells[r * table->columns + c])) > widths[c])
				widths[c] = w;
		}
	}
	for (size_t r = 0; r < table->rows; r++) {
		for (size_t c = 0; c < table->columns; c++) {
			cell = table->cells[r * table->columns + c];
			if (c + 1 == table->columns)
				printf("%s\n", cell);
			else
				printf("%s%*s", cell, (int)(widths[c] - ctl_width(cell) + 2), "");
		}
	}
	for (size_t i = 0; i < table->rows * table->columns; i++)
		free(table->cells[i]);
	free(table->cells);
	table->cells = NULL;
	table->rows = 0;
}

/* Print a JSON value on one line. */
static void
ctl_print_json(const json_t *value)
{
	if (json_dumpf(value, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0)
		fatalx("json_dumpf: cannot write");
	putchar('\n');
}

/* ---- usage ------------------------------------------------------------------- */

static int ctl_status(struct ctl *, char **);
static int ctl_stats(struct ctl *, char **);
static int ctl_devices_list(struct ctl *, char **);
static int ctl_devices_show(struct ctl *, char **);
static int ctl_devices_remove(struct ctl *, char **);
static int ctl_devices_remove_client(struct ctl *, char **);
static int ctl_members_list(struct ctl *, char **);
static int ctl_members_add(struct ctl *, char **);
static int ctl_members_remove(struct ctl *, char **);
static int ctl_members_mute(struct ctl *, char **);
static int ctl_members_mentions_only(struct ctl *, char **);
static int ctl_send(struct ctl *, char **);
static int ctl_push_show(struct ctl *, char **);
static int ctl_feedback_recent(struct ctl *, char **);
static int ctl_feedback_follow(struct ctl *, char **);

static const struct ctl_command ctl_commands[] = {
	{ "status", NULL, 0, 0, "status", ctl_status },
	{ "stats", NULL, 0, 0, "stats", ctl_stats },
	{ "devices", "list", 1, 0, "devices list CLIENT", ctl_devices_list },
	{ "devices", "show", 1, 0, "devices show DEVICE", ctl_devices_show },
	{ "devices", "remove", 1, 0, "devices remove DEVICE", ctl_devices_remove },
	{ "devices", "remove-client", 1, 0, "devices remove-client CLIENT",
	    ctl_devices_remove_client },
	{ "members", "list", 1, CTL_OPT_LIMIT | CTL_OPT_PAGE_SIZE,
	    "members list ROOM [--limit N] [--page-size N]", ctl_members_list },
	{ "members", "add", 2, 0, "members add ROOM CLIENT", ctl_members_add },
	{ "members", "remove", 2, 0, "members remove ROOM CLIENT", ctl_members_remove },
	{ "members", "mute", 2, CTL_OPT_UNTIL | CTL_OPT_OFF,
	    "members mute ROOM CLIENT --until TIME | --off", ctl_members_mute },
	{ "members", "mentions-only", 3, 0, "members mentions-only ROOM CLIENT on|off",
	    ctl_members_mentions_only },
	{ "send", NULL, 0, CTL_OPT_CLIENT | CTL_OPT_DEVICE | CTL_OPT_ROOM | CTL_OPT_TITLE |
	    CTL_OPT_BODY | CTL_OPT_DATA | CTL_OPT_WAIT,
	    "send (--client C | --device D | --room R)... [--title T] [--body B] "
	    "[--data K=V]... [--wait]", ctl_send },
	{ "push", "show", 1, 0, "push show PUSH_ID", ctl_push_show },
	{ "feedback", "recent", 0, CTL_OPT_AFTER, "feedback recent [--after SEQ]",
	    ctl_feedback_recent },
	{ "feedback", "follow", 0, CTL_OPT_AFTER, "feedback follow [--after SEQ]",
	    ctl_feedback_follow },
};

#define CTL_COMMAND_COUNT (sizeof ctl_commands / sizeof ctl_commands[0])

/* The whole usage text. */
static void
ctl_help(FILE *out)
{
	fprintf(out, "usage: pushrelayctl [-s PATH | -u URL] [-k FILE] [--json] COMMAND [ARGS]\n"
	    "\ncommands:\n");
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++)
		fprintf(out, "  %s\n", ctl_commands[i].usage);
	fprintf(out, "\noptions:\n"
	    "  -s, --socket PATH     the API's unix socket (default " CTL_DEFAULT_SOCKET ")\n"
	    "  -u, --url URL         the API over TCP, e.g. http://127.0.0.1:8470\n"
	    "  -k, --key-file FILE   the API key file (default " CTL_DEFAULT_KEY_FILE ")\n"
	    "  -j, --json            print the answer as JSON\n"
	    "  -h, --help            print this help\n"
	    "  -V, --version         print the version\n"
	    "  --limit N             members list: at most N members\n"
	    "  --page-size N         members list: N members per request (default 1000)\n"
	    "  --until TIME | --off  members mute: until when (RFC 3339), or unmute\n"
	    "  --client C            send: to a client's devices (repeatable)\n"
	    "  --device D            send: to a device (repeatable)\n"
	    "  --room R              send: to the devices of every member of a room\n"
	    "  --title T, --body B   send: the notification's title and body\n"
	    "  --data K=V            send: a key of its data (repeatable)\n"
	    "  --wait                send: wait for the outcome on every device\n"
	    "  --after SEQ           feedback: the events after SEQ\n"
	    "\nenvironment: PUSHRELAY_SOCKET, PUSHRELAY_URL, PUSHRELAY_KEY_FILE\n"
	    "exit status: 0 done, 1 refused or failed, 2 usage, 3 unreachable, 4 not found\n");
}

/* Say what is wrong with the command line and exit 2. */
static void
ctl_usage_error(const struct ctl_command *command, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pushrelayctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (command != NULL)
		fprintf(stderr, "usage: pushrelayctl [OPTIONS] %s\n", command->usage);
	else
		fprintf(stderr, "Try 'pushrelayctl --help'.\n");
	exit(CTL_EXIT_USAGE);
}

/* A decimal number within [min, max] for an option, or a usage error. */
static uint64_t
ctl_number(const char *option, const char *text, uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (*text < '0' || *text > '9' || *end != '\0' || errno != 0 || v < min || v > max)
		ctl_usage_error(NULL, "%s: must be a number from %" PRIu64 " to %" PRIu64,
		    option, min, max);
	return v;
}

/* ---- the API key --------------------------------------------------------------- */

/* The first key of a key file (as pushrelayd reads it); NULL with errno or EINVAL. */
static char *
ctl_read_key(const char *path)
{
	char *line = NULL, *key = NULL, *p, *end;
	size_t cap = 0;
	FILE *fp;

	if ((fp = fopen(path, "re")) == NULL)
		return NULL;
	while (key == NULL && getline(&line, &cap, fp) != -1) {
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		end = p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
		    end[-1] == '\r'))
			*--end = '\0';
		if (*p != '\0')
			key = xstrdup(p);
	}
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	fclose(fp);
	if (key == NULL)
		errno = EINVAL;
	return key;
}

/* Find the key: -k or PUSHRELAY_KEY_FILE must be readable; the default may not be. */
static void
ctl_load_key(struct ctl *ctl)
{
	if (ctl->key_file != NULL) {
		if ((ctl->key = ctl_read_key(ctl->key_file)) == NULL) {
			fprintf(stderr, "pushrelayctl: cannot read an API key from %s: %s\n",
			    ctl->key_file, errno == EINVAL ? "no key in the file" :
			    strerror(errno));
			exit(CTL_EXIT_USAGE);
		}
		return;
	}
	ctl->key = ctl_read_key(CTL_DEFAULT_KEY_FILE);
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
static void
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
static int
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
static int
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
static int
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
static char *
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
static char *
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

/* ---- status and stats ---------------------------------------------------------- */

/* Is pushrelayd live and ready? 0 ready, 1 not ready, 3 unreachable. */
static int
ctl_status(struct ctl *ctl, char **args)
{
	struct ctl_response health, ready;
	struct ctl_table table;
	const char *key;
	json_t *value;
	int rc;

	(void)args;
	if ((rc = ctl_call(ctl, "GET", "/healthz", NULL, &health)) != 0)
		return rc;
	if ((rc = ctl_request(ctl, "GET", "/readyz", NULL, CTL_TIMEOUT_MS, &ready)) != 0) {
		ctl_response_free(&health);
		return rc;
	}
	if ((ready.status != 200 && ready.status != 503) || !json_is_object(ready.json)) {
		rc = ctl_refused(ctl, &ready);
		goto done;
	}
	if (ctl->json) {
		json_t *both = json_pack("{s:O, s:O}", "healthz", health.json, "readyz",
		    ready.json);
		ctl_print_json(both);
		json_decref(both);
	} else {
		ctl_table_init(&table, 2);
		ctl_table_add_owned(&table, (char *[]){ xstrdup("healthz"),
		    ctl_field(health.json, "status") });
		json_object_foreach(ready.json, key, value) {
			ctl_table_add_owned(&table, (char *[]){ xstrdup(strcmp(key, "status") == 0 ?
			    "readyz" : key), ctl_text(value) });
		}
		ctl_table_print(&table);
	}
	rc = ready.status == 200 ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
done:
	ctl_response_free(&health);
	ctl_response_free(&ready);
	return rc;
}

/* Add "a.b.c  value" rows for every leaf of a JSON value. */
static void
ctl_flatten(struct ctl_table *table, const char *prefix, const json_t *value)
{
	const char *key;
	json_t *item;
	size_t i;
	char *name;

	if (json_is_object(value) && json_object_size(value) > 0) {
		json_object_foreach((json_t *)value, key, item) {
			name = *prefix != '\0' ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
			ctl_flatten(table, name, item);
			free(name);
		}
	} else if (json_is_array(value) && json_array_size(value) > 0) {
		json_array_foreach(value, i, item) {
			name = xasprintf("%s.%zu", prefix, i);
			ctl_flatten(table, name, item);
			free(name);
		}
	} else
		ctl_table_add_owned(table, (char *[]){ ctl_sanitize(prefix), ctl_text(value) });
}

/* The daemon's counters (GET /v1/stats). */
static int
ctl_stats(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	int rc;

	(void)args;
	if ((rc = ctl_request(ctl, "GET", "/v1/stats", NULL, CTL_TIMEOUT_MS, &response)) != 0)
		return rc;
	if (response.status == 404) {
		fprintf(stderr, "pushrelayctl: this pushrelayd has no statistics endpoint "
		    "(GET /v1/stats): it is older than pushrelayctl\n");
		ctl_response_free(&response);
		return CTL_EXIT_REFUSED;
	}
	if (response.status != 200 || !json_is_object(response.json)) {
		rc = ctl_refused(ctl, &response);
		ctl_response_free(&response);
		return rc;
	}
	if (ctl->json)
		ctl_print_json(response.json);
	else {
		ctl_table_init(&table, 2);
		ctl_flatten(&table, "", response.json);
		ctl_table_print(&table);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* ---- devices ------------------------------------------------------------------- */

/* A device's token as text: its first characters and its length, never whole. */
static char *
ctl_token_text(const json_t *device)
{
	const char *token = json_string_value(json_object_get(device, "token"));
	char redacted[LOG_REDACT_SIZE];

	if (token == NULL)
		return xstrdup("-");
	return ctl_sanitize(log_redact(token, redacted));
}

/* A client's devices. */
static int
ctl_devices_list(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	const json_t *devices, *device;
	char *path = ctl_path(ctl, "/v1/clients/", args[0], "/devices", NULL), *client;
	size_t i;
	int rc;

	rc = ctl_call(ctl, "GET", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	devices = json_object_get(response.json, "devices");
	if (ctl->json)
		ctl_print_json(response.json);
	else if (json_array_size(devices) == 0) {
		client = ctl_sanitize(args[0]);
		printf("client %s has no devices\n", client);
		free(client);
	} else {
		ctl_table_init(&table, 7);
		ctl_table_add(&table, "DEVICE_ID", "PLATFORM", "ENVIRONMENT", "APP_ID", "TOKEN",
		    "UPDATED_AT", "LAST_SUCCESS_AT");
		json_array_foreach(devices, i, device) {
			ctl_table_add_owned(&table, (char *[]){ ctl_field(device, "device_id"),
			    ctl_field(device, "platform"), ctl_field(device, "environment"),
			    ctl_field(device, "app_id"), ctl_token_text(device),
			    ctl_field(device, "updated_at"),
			    ctl_field(device, "last_success_at") });
		}
		ctl_table_print(&table);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* One device, every field. */
static int
ctl_devices_show(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	char *path = ctl_path(ctl, "/v1/devices/", args[0], NULL);
	const char *key;
	json_t *value;
	int rc;

	rc = ctl_call(ctl, "GET", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(response.json);
	else {
		ctl_table_init(&table, 2);
		json_object_foreach(response.json, key, value) {
			ctl_table_add_owned(&table, (char *[]){ ctl_sanitize(key),
			    strcmp(key, "token") == 0 ? ctl_token_text(response.json) :
			    ctl_text(value) });
		}
		ctl_table_print(&table);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Remove one device. */
static int
ctl_devices_remove(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/devices/", args[0], NULL), *device;
	json_t *out;
	int rc;

	rc = ctl_call(ctl, "DELETE", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json) {
		out = json_pack("{s:s, s:b}", "device_id", args[0], "removed", 1);
		ctl_print_json(out);
		json_decref(out);
	} else {
		device = ctl_sanitize(args[0]);
		printf("removed device %s\n", device);
		free(device);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Remove every device of a client. */
static int
ctl_devices_remove_client(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/clients/", args[0], "/devices", NULL), *client;
	json_int_t deleted;
	int rc;

	rc = ctl_call(ctl, "DELETE", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(response.json);
	else {
		deleted = json_integer_value(json_object_get(response.json, "deleted"));
		client = ctl_sanitize(args[0]);
		printf("removed %" JSON_INTEGER_FORMAT " device%s of client %s\n", deleted,
		    deleted == 1 ? "" : "s", client);
		free(client);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* ---- members ------------------------------------------------------------------- */

/* A room's members, page after page, at most --limit of them. */
static int
ctl_members_list(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	json_t *members = json_array(), *member, *out, *next = json_null();
	char *room = ctl_escape(ctl, args[0]), *after = NULL, *path, *text;
	uint64_t page;
	size_t i;
	int rc = CTL_EXIT_OK;

	for (;;) {
		page = ctl->page_size;
		if (ctl->limit != 0 && ctl->limit - json_array_size(members) < page)
			page = ctl->limit - json_array_size(members);
		path = xasprintf("/v1/rooms/%s/members?limit=%" PRIu64 "%s%s", room, page,
		    after != NULL ? "&after=" : "", after != NULL ? after : "");
		rc = ctl_call(ctl, "GET", path, NULL, &response);
		free(path);
		free(after);
		after = NULL;
		if (rc != 0)
			goto done;
		json_array_extend(members, json_object_get(response.json, "members"));
		json_decref(next);
		next = json_incref(json_object_get(response.json, "next_after"));
		if (next == NULL)
			next = json_null();
		ctl_response_free(&response);
		if (!json_is_string(next) || (ctl->limit != 0 &&
		    json_array_size(members) >= ctl->limit))
			break;
		after = ctl_escape(ctl, json_string_value(next));
	}

	if (ctl->json) {
		out = json_pack("{s:s, s:O, s:O}", "room_id", args[0], "members", members,
		    "next_after", next);
		ctl_print_json(out);
		json_decref(out);
	} else if (json_array_size(members) == 0) {
		text = ctl_sanitize(args[0]);
		printf("room %s has no members\n", text);
		free(text);
	} else {
		ctl_table_init(&table, 4);
		ctl_table_add(&table, "CLIENT_ID", "JOINED_AT", "MUTED_UNTIL", "MENTIONS_ONLY");
		json_array_foreach(members, i, member) {
			ctl_table_add_owned(&table, (char *[]){ ctl_field(member, "client_id"),
			    ctl_field(member, "joined_at"), ctl_field(member, "muted_until"),
			    ctl_field(member, "mentions_only") });
		}
		ctl_table_print(&table);
	}
done:
	json_decref(members);
	json_decref(next);
	free(room);
	return rc;
}

/* Add a member. */
static int
ctl_members_add(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/rooms/", args[0], "/members/",
	    args[1], NULL);
	char *room, *client;
	int rc;

	rc = ctl_call(ctl, "PUT", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(response.json);
	else {
		room = ctl_sanitize(args[0]);
		client = ctl_sanitize(args[1]);
		if (response.status == 201)
			printf("added %s to room %s\n", client, room);
		else
			printf("%s is already a member of room %s\n", client, room);
		free(room);
		free(client);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Remove a member. */
static int
ctl_members_remove(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/rooms/", args[0], "/members/",
	    args[1], NULL);
	char *room, *client;
	json_t *out;
	int rc;

	rc = ctl_call(ctl, "DELETE", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json) {
		out = json_pack("{s:s, s:s, s:b}", "room_id", args[0], "client_id", args[1],
		    "removed", 1);
		ctl_print_json(out);
		json_decref(out);
	} else {
		room = ctl_sanitize(args[0]);
		client = ctl_sanitize(args[1]);
		printf("removed %s from room %s\n", client, room);
		free(room);
		free(client);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Set a member's preferences; the membership comes back in response. */
static int
ctl_members_prefs(struct ctl *ctl, char **args, json_t *prefs, struct ctl_response *response)
{
	char *path = ctl_path(ctl, "/v1/rooms/", args[0], "/members/",
	    args[1], "/prefs", NULL);
	int rc;

	rc = ctl_call(ctl, "PUT", path, prefs, response);
	free(path);
	json_decref(prefs);
	if (rc == 0 && ctl->json)
		ctl_print_json(response->json);
	return rc;
}

/* Mute a member until a time, or unmute. */
static int
ctl_members_mute(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *room, *client, *until;
	int rc;

	if ((ctl->seen & (CTL_OPT_UNTIL | CTL_OPT_OFF)) == 0 ||
	    (ctl->seen & (CTL_OPT_UNTIL | CTL_OPT_OFF)) == (CTL_OPT_UNTIL | CTL_OPT_OFF))
		ctl_usage_error(ctl->command, "give one of --until TIME and --off");
	rc = ctl_members_prefs(ctl, args, json_pack("{s:s?}", "muted_until", ctl->until),
	    &response);
	if (rc != 0)
		return rc;
	if (!ctl->json) {
		room = ctl_sanitize(args[0]);
		client = ctl_sanitize(args[1]);
		until = ctl_field(response.json, "muted_until");
		if (ctl->until != NULL)
			printf("muted %s in room %s until %s\n", client, room, until);
		else
			printf("unmuted %s in room %s\n", client, room);
		free(room);
		free(client);
		free(until);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Notify a member only when mentioned, or of every message. */
static int
ctl_members_mentions_only(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *room, *client;
	int on, rc;

	if (strcmp(args[2], "on") == 0)
		on = 1;
	else if (strcmp(args[2], "off") == 0)
		on = 0;
	else
		ctl_usage_error(ctl->command, "mentions-only: say on or off, not '%s'", args[2]);
	rc = ctl_members_prefs(ctl, args, json_pack("{s:b}", "mentions_only", on), &response);
	if (rc != 0)
		return rc;
	if (!ctl->json) {
		room = ctl_sanitize(args[0]);
		client = ctl_sanitize(args[1]);
		printf("%s in room %s: notified %s\n", client, room,
		    on ? "only when mentioned" : "of every message");
		free(room);
		free(client);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* ---- pushes -------------------------------------------------------------------- */

/* A push's outcome: its times and counts, then a row per device. */
static void
ctl_push_print(const json_t *push)
{
	const json_t *counts = json_object_get(push, "counts");
	const json_t *devices = json_object_get(push, "devices"), *device, *value;
	struct ctl_table table;
	char *line = xstrdup(""), *next, *text;
	const char *key;
	size_t i;

	ctl_table_init(&table, 2);
	ctl_table_add_owned(&table, (char *[]){ xstrdup("push_id"), ctl_field(push, "push_id") });
	ctl_table_add_owned(&table, (char *[]){ xstrdup("created_at"),
	    ctl_field(push, "created_at") });
	ctl_table_add_owned(&table, (char *[]){ xstrdup("finished_at"),
	    ctl_field(push, "finished_at") });
	json_object_foreach((json_t *)counts, key, value) {
		text = ctl_text(value);
		next = xasprintf("%s%s%s %s", line, *line != '\0' ? ", " : "", key, text);
		free(text);
		free(line);
		line = next;
	}
	ctl_table_add_owned(&table, (char *[]){ xstrdup("counts"), ctl_sanitize(line) });
	free(line);
	ctl_table_print(&table);
	if (json_array_size(devices) == 0)
		return;
	printf("\n");
	ctl_table_init(&table, 8);
	ctl_table_add(&table, "DEVICE_ID", "CLIENT_ID", "PLATFORM", "APP_ID", "STATE", "REASON",
	    "ATTEMPTS", "UPDATED_AT");
	json_array_foreach(devices, i, device) {
		ctl_table_add_owned(&table, (char *[]){ ctl_field(device, "device_id"),
		    ctl_field(device, "client_id"), ctl_field(device, "platform"),
		    ctl_field(device, "app_id"), ctl_field(device, "state"),
		    ctl_field(device, "reason"), ctl_field(device, "attempts"),
		    ctl_field(device, "updated_at") });
	}
	ctl_table_print(&table);
}

/* Sleep for some milliseconds. */
static void
ctl_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Poll a push until it has finished; 0 with its outcome, or the exit status. */
static int
ctl_push_wait(struct ctl *ctl, const char *push_id, struct ctl_response *response)
{
	char *path = ctl_path(ctl, "/v1/push/", push_id, NULL);
	long pause = CTL_WAIT_POLL_MIN_MS;
	int rc;

	for (;;) {
		if ((rc = ctl_call(ctl, "GET", path, NULL, response)) != 0)
			break;
		if (!json_is_null(json_object_get(response->json, "finished_at")))
			break;
		ctl_response_free(response);
		ctl_sleep_ms(pause);
		if ((pause *= 2) > CTL_WAIT_POLL_MAX_MS)
			pause = CTL_WAIT_POLL_MAX_MS;
	}
	free(path);
	return rc;
}

/* Add an id to a list given with repeated options. */
static void
ctl_list_add(char ***list, size_t *count, char *item)
{
	*list = xreallocarray(*list, *count + 1, sizeof **list);
	(*list)[(*count)++] = item;
}

/* An array of strings (checked UTF-8) as JSON. */
static json_t *
ctl_json_strings(char **items, size_t count)
{
	json_t *array = json_array();

	for (size_t i = 0; i < count; i++) {
		if (json_array_append_new(array, json_string(items[i])) != 0)
			fatalx("json_array_append_new: out of memory");
	}
	return array;
}

/* A usage error unless text is valid UTF-8 (as JSON strings must be). */
static void
ctl_check_utf8(const struct ctl_command *command, const char *option, const char *text)
{
	json_t *string;

	if (text == NULL)
		return;
	if ((string = json_string(text)) == NULL)
		ctl_usage_error(command, "%s: '%s' is not valid UTF-8", option, text);
	json_decref(string);
}

/* Check send's options before anything is built from them. */
static void
ctl_send_check(struct ctl *ctl)
{
	const char *eq, *other;
	size_t i, j;

	if (ctl->client_count == 0 && ctl->device_count == 0 && ctl->room == NULL)
		ctl_usage_error(ctl->command, "say who gets it: --client, --device or --room");
	for (i = 0; i < ctl->client_count; i++)
		ctl_check_utf8(ctl->command, "--client", ctl->clients[i]);
	for (i = 0; i < ctl->device_count; i++)
		ctl_check_utf8(ctl->command, "--device", ctl->devices[i]);
	ctl_check_utf8(ctl->command, "--room", ctl->room);
	ctl_check_utf8(ctl->command, "--title", ctl->title);
	ctl_check_utf8(ctl->command, "--body", ctl->body);
	for (i = 0; i < ctl->data_count; i++) {
		if ((eq = strchr(ctl->data[i], '=')) == NULL || eq == ctl->data[i])
			ctl_usage_error(ctl->command, "--data: '%s' is not KEY=VALUE",
			    ctl->data[i]);
		ctl_check_utf8(ctl->command, "--data", ctl->data[i]);
		for (j = 0; j < i; j++) {
			other = ctl->data[j];
			if (strncmp(other, ctl->data[i], (size_t)(eq - ctl->data[i]) + 1) == 0)
				ctl_usage_error(ctl->command, "--data: %.*s given twice",
				    (int)(eq - ctl->data[i]), ctl->data[i]);
		}
	}
}

/* Publish one notification (POST /v1/push); with --wait, until it has finished. */
static int
ctl_send(struct ctl *ctl, char **args)
{
	struct ctl_response response, outcome;
	json_t *recipients, *notification, *data, *body, *unknown, *counts;
	const char *push_id;
	char *key, *value, *text;
	size_t i;
	int rc;

	(void)args;
	ctl_send_check(ctl);
	recipients = json_object();
	if (ctl->client_count > 0)
		json_object_set_new(recipients, "client_ids",
		    ctl_json_strings(ctl->clients, ctl->client_count));
	if (ctl->device_count > 0)
		json_object_set_new(recipients, "device_ids",
		    ctl_json_strings(ctl->devices, ctl->device_count));
	if (ctl->room != NULL)
		json_object_set_new(recipients, "room_id", json_string(ctl->room));
	notification = json_object();
	if (ctl->title != NULL)
		json_object_set_new(notification, "title", json_string(ctl->title));
	if (ctl->body != NULL)
		json_object_set_new(notification, "body", json_string(ctl->body));
	if (ctl->data_count > 0) {
		data = json_object();
		for (i = 0; i < ctl->data_count; i++) {
			key = xstrdup(ctl->data[i]);
			value = strchr(key, '=');
			*value++ = '\0';
			json_object_set_new(data, key, json_string(value));
			free(key);
		}
		json_object_set_new(notification, "data", data);
	}
	body = json_pack("{s:o, s:o}", "recipients", recipients, "notification", notification);

	rc = ctl_call(ctl, "POST", "/v1/push", body, &response);
	json_decref(body);
	if (rc != 0)
		return rc;
	push_id = json_string_value(json_object_get(response.json, "push_id"));
	if (push_id == NULL) {
		fprintf(stderr, "pushrelayctl: the answer has no push_id\n");
		ctl_response_free(&response);
		return CTL_EXIT_REFUSED;
	}
	unknown = json_object_get(response.json, "unknown_device_ids");
	for (i = 0; i < json_array_size(unknown); i++) {
		text = ctl_text(json_array_get(unknown, i));
		fprintf(stderr, "pushrelayctl: warning: no such device: %s\n", text);
		free(text);
	}
	if (!(ctl->seen & CTL_OPT_WAIT)) {
		if (ctl->json)
			ctl_print_json(response.json);
		else {
			text = ctl_sanitize(push_id);
			printf("%s\n", text);
			free(text);
		}
		ctl_response_free(&response);
		return CTL_EXIT_OK;
	}

	rc = ctl_push_wait(ctl, push_id, &outcome);
	ctl_response_free(&response);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(outcome.json);
	else
		ctl_push_print(outcome.json);
	counts = json_object_get(outcome.json, "counts");
	rc = json_integer_value(json_object_get(counts, "failed")) > 0 ||
	    json_integer_value(json_object_get(counts, "token_removed")) > 0 ?
	    CTL_EXIT_REFUSED : CTL_EXIT_OK;
	ctl_response_free(&outcome);
	return rc;
}

/* A push's outcome per device. */
static int
ctl_push_show(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/push/", args[0], NULL);
	int rc;

	rc = ctl_call(ctl, "GET", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(response.json);
	else
		ctl_push_print(response.json);
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* ---- feedback ------------------------------------------------------------------ */

/* The cells of a feedback event, in the columns of feedback recent. */
static void
ctl_feedback_cells(const json_t *event, char **cells)
{
	cells[0] = ctl_field(event, "seq");
	cells[1] = ctl_field(event, "at");
	cells[2] = ctl_field(event, "device_id");
	cells[3] = ctl_field(event, "client_id");
	cells[4] = ctl_field(event, "platform");
	cells[5] = ctl_field(event, "app_id");
	cells[6] = ctl_field(event, "reason");
}

/* GET /v1/feedback after a seq, waiting up to wait seconds; 0 or the exit status. */
static int
ctl_feedback_get(struct ctl *ctl, uint64_t after, int wait, struct ctl_response *response)
{
	char *path = xasprintf("/v1/feedback?after=%" PRIu64 "&wait=%d", after, wait);
	int rc;

	rc = ctl_request(ctl, "GET", path, NULL, (wait + 15) * 1000L, response);
	free(path);
	if (rc != 0)
		return rc;
	if (response->status != 200 || !json_is_array(json_object_get(response->json,
	    "events")) || !json_is_integer(json_object_get(response->json, "next"))) {
		if (response->status == 200)
			fprintf(stderr, "pushrelayctl: HTTP 200: not a feedback answer\n");
		rc = response->status == 200 ? CTL_EXIT_REFUSED : ctl_refused(ctl, response);
		ctl_response_free(response);
		return rc;
	}
	return 0;
}

/* The token-removed events the daemon keeps. */
static int
ctl_feedback_recent(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	const json_t *events, *event;
	char *cells[7];
	size_t i;
	int rc;

	(void)args;
	if ((rc = ctl_feedback_get(ctl, ctl->after, 0, &response)) != 0)
		return rc;
	events = json_object_get(response.json, "events");
	if (ctl->json)
		ctl_print_json(response.json);
	else if (json_array_size(events) == 0)
		printf("no feedback events\n");
	else {
		ctl_table_init(&table, 7);
		ctl_table_add(&table, "SEQ", "AT", "DEVICE_ID", "CLIENT_ID", "PLATFORM", "APP_ID",
		    "REASON");
		json_array_foreach(events, i, event) {
			ctl_feedback_cells(event, cells);
			ctl_table_add_owned(&table, cells);
		}
		ctl_table_print(&table);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Print token-removed events as they happen, until interrupted. */
static int
ctl_feedback_follow(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	const json_t *event;
	char *cells[7];
	uint64_t after = ctl->after;
	size_t i;
	int rc;

	(void)args;
	if (!(ctl->seen & CTL_OPT_AFTER)) {
		/* From now on: skip what the daemon already keeps. */
		if ((rc = ctl_feedback_get(ctl, 0, 0, &response)) != 0)
			return rc;
		after = (uint64_t)json_integer_value(json_object_get(response.json, "next"));
		ctl_response_free(&response);
	}
	for (;;) {
		if ((rc = ctl_feedback_get(ctl, after, CTL_FOLLOW_WAIT_S, &response)) != 0)
			return rc;
		json_array_foreach(json_object_get(response.json, "events"), i, event) {
			if (ctl->json)
				ctl_print_json(event);
			else {
				ctl_feedback_cells(event, cells);
				printf("%s %s %s %s %s %s %s\n", cells[0], cells[1], cells[2],
				    cells[3], cells[4], cells[5], cells[6]);
				for (size_t c = 0; c < 7; c++)
					free(cells[c]);
			}
		}
		if (fflush(stdout) != 0) {
			ctl_response_free(&response);
			return CTL_EXIT_REFUSED;
		}
		after = (uint64_t)json_integer_value(json_object_get(response.json, "next"));
		ctl_response_free(&response);
	}
}

/* ---- main ---------------------------------------------------------------------- */

/* Where the daemon is: -u or -s, else PUSHRELAY_URL or PUSHRELAY_SOCKET, else the default. */
static void
ctl_endpoint(struct ctl *ctl, const char *socket_path, const char *url)
{
	const char *env_socket = getenv("PUSHRELAY_SOCKET"), *env_url = getenv("PUSHRELAY_URL");
	size_t len;

	if (socket_path != NULL && url != NULL)
		ctl_usage_error(NULL, "give -s or -u, not both");
	if (socket_path == NULL && url == NULL) {
		if (env_socket != NULL && *env_socket != '\0' && env_url != NULL &&
		    *env_url != '\0')
			ctl_usage_error(NULL, "PUSHRELAY_SOCKET and PUSHRELAY_URL are both set");
		if (env_url != NULL && *env_url != '\0')
			url = env_url;
		else if (env_socket != NULL && *env_socket != '\0')
			socket_path = env_socket;
		else
			socket_path = CTL_DEFAULT_SOCKET;
	}
	if (url != NULL) {
		if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
			ctl_usage_error(NULL, "%s: the URL must start with http:// or https://",
			    url);
		ctl->url = xstrdup(url);
		len = strlen(ctl->url);
		while (len > 0 && ctl->url[len - 1] == '/')
			ctl->url[--len] = '\0';
	} else {
		ctl->socket_path = xstrdup(socket_path);
		ctl->url = xstrdup("http://localhost");
	}
}

/* The command named by the first words of the arguments; *used is how many. */
static const struct ctl_command *
ctl_find_command(int argc, char **argv, int *used)
{
	int group_known = 0;

	if (argc == 0)
		ctl_usage_error(NULL, "no command given");
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++) {
		const struct ctl_command *c = &ctl_commands[i];
		if (strcmp(c->group, argv[0]) != 0)
			continue;
		group_known = 1;
		if (c->name == NULL) {
			*used = 1;
			return c;
		}
		if (argc > 1 && strcmp(c->name, argv[1]) == 0) {
			*used = 2;
			return c;
		}
	}
	if (!group_known)
		ctl_usage_error(NULL, "unknown command '%s'", argv[0]);
	if (argc == 1)
		ctl_usage_error(NULL, "%s: say which (pushrelayctl --help lists them)", argv[0]);
	ctl_usage_error(NULL, "%s: unknown command '%s'", argv[0], argv[1]);
}

/* Parse the command line, find the daemon and the key, run the command. */
int
main(int argc, char **argv)
{
	const char *socket_path = NULL, *url = NULL, *env;
	const struct ctl_command *command;
	struct ctl ctl;
	int opt, used, rc;

	memset(&ctl, 0, sizeof ctl);
	ctl.page_size = CTL_PAGE_MAX;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:u:k:jhV", ctl_long_options, NULL)) != -1) {
		switch (opt) {
		case 's': socket_path = optarg; break;
		case 'u': url = optarg; break;
		case 'k': ctl.key_file = optarg; break;
		case 'j': ctl.json = 1; break;
		case 'h':
			ctl_help(stdout);
			return CTL_EXIT_OK;
		case 'V':
			printf("pushrelayctl %s\n", PACKAGE_VERSION);
			return CTL_EXIT_OK;
		case CTL_LONG_LIMIT:
			ctl.seen |= CTL_OPT_LIMIT;
			ctl.limit = ctl_number("--limit", optarg, 1, INT64_MAX);
			break;
		case CTL_LONG_PAGE_SIZE:
			ctl.seen |= CTL_OPT_PAGE_SIZE;
			ctl.page_size = ctl_number("--page-size", optarg, 1, CTL_PAGE_MAX);
			break;
		case CTL_LONG_UNTIL:
			ctl.seen |= CTL_OPT_UNTIL;
			ctl.until = optarg;
			break;
		case CTL_LONG_OFF: ctl.seen |= CTL_OPT_OFF; break;
		case CTL_LONG_CLIENT:
			ctl.seen |= CTL_OPT_CLIENT;
			ctl_list_add(&ctl.clients, &ctl.client_count, optarg);
			break;
		case CTL_LONG_DEVICE:
			ctl.seen |= CTL_OPT_DEVICE;
			ctl_list_add(&ctl.devices, &ctl.device_count, optarg);
			break;
		case CTL_LONG_ROOM:
			if (ctl.seen & CTL_OPT_ROOM)
				ctl_usage_error(NULL, "--room: give one room");
			ctl.seen |= CTL_OPT_ROOM;
			ctl.room = optarg;
			break;
		case CTL_LONG_TITLE: ctl.seen |= CTL_OPT_TITLE; ctl.title = optarg; break;
		case CTL_LONG_BODY: ctl.seen |= CTL_OPT_BODY; ctl.body = optarg; break;
		case CTL_LONG_DATA:
			ctl.seen |= CTL_OPT_DATA;
			ctl_list_add(&ctl.data, &ctl.data_count, optarg);
			break;
		case CTL_LONG_WAIT: ctl.seen |= CTL_OPT_WAIT; break;
		case CTL_LONG_AFTER:
			ctl.seen |= CTL_OPT_AFTER;
			ctl.after = ctl_number("--after", optarg, 0, INT64_MAX);
			break;
		case ':':
			ctl_usage_error(NULL, "%s needs a value", argv[optind - 1]);
		default:
			ctl_usage_error(NULL, "unknown option %s", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	command = ctl_find_command(argc, argv, &used);
	ctl.command = command;
	argc -= used;
	argv += used;
	if (argc != command->args)
		ctl_usage_error(command, "%s arguments", argc < command->args ? "missing" :
		    "too many");
	for (size_t i = 0; i < sizeof ctl_option_names / sizeof ctl_option_names[0]; i++) {
		if ((ctl.seen & ctl_option_names[i].flag) &&
		    !(command->options & ctl_option_names[i].flag))
			ctl_usage_error(command, "%s does not apply here",
			    ctl_option_names[i].name);
	}
	if (ctl.key_file == NULL && (env = getenv("PUSHRELAY_KEY_FILE")) != NULL &&
	    *env != '\0')
		ctl.key_file = env;

	ctl_endpoint(&ctl, socket_path, url);
	if (command->run != ctl_status)
		ctl_load_key(&ctl);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (ctl.curl = curl_easy_init()) == NULL)
		fatalx("cannot initialise libcurl");
	rc = command->run(&ctl, argv);

	curl_easy_cleanup(ctl.curl);
	curl_global_cleanup();
	if (ctl.key != NULL) {
		explicit_bzero(ctl.key, strlen(ctl.key));
		free(ctl.key);
	}
	free(ctl.clients);
	free(ctl.devices);
	free(ctl.data);
	free(ctl.socket_path);
	free(ctl.url);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "pushrelayctl: cannot write the output: %s\n", strerror(errno));
		return CTL_EXIT_REFUSED;
	}
	return rc;
}
