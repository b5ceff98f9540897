/*
 * pushrelayctl's main(): read the command line, find the daemon and the key, run one
 * command. The table of commands and the options are here; ctl.h says where the rest is.
 */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "xmalloc.h"

#include "ctl.h"

#define CTL_PAGE_MAX 1000		/* the API's largest page of members */

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

/* ---- usage ------------------------------------------------------------------- */

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
void
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

/* Add an id to a list given with repeated options. */
static void
ctl_list_add(char ***list, size_t *count, char *item)
{
	*list = xreallocarray(*list, *count + 1, sizeof **list);
	(*list)[(*count)++] = item;
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
