/*
 * pushrelayctl: administer a running pushrelayd through its HTTP API, over the unix
 * socket of the packaged configuration or over TCP. One command per run; text for
 * people, --json for scripts, and exit codes a script can rely on (see pushrelayctl(1)).
 *
 * The files of src/ctl/:
 *   pushrelayctl.c   main(): the options, the table of commands, usage and help,
 *                    where the daemon is; then it runs one command
 *   ctl_http.c       the API key, one HTTP request to the daemon, its errors, paths
 *   ctl_output.c     text for people: sanitized cells, aligned tables; JSON lines
 *   ctl_status.c     status and stats
 *   ctl_devices.c    devices list|show|remove|remove-client
 *   ctl_members.c    members list|add|remove|mute|mentions-only (a room's members)
 *   ctl_push.c       send and push show
 *   ctl_feedback.c   feedback recent|follow
 * A command is a function `int ctl_NAME(struct ctl *, char **args)` returning an exit
 * status; it prints its answer itself, and says on stderr why it failed.
 *
 * A command-line program of one thread: nothing here runs inside the daemon.
 */
#ifndef PUSHRELAY_CTL_H
#define PUSHRELAY_CTL_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#define CTL_DEFAULT_SOCKET "/run/pushrelay/api.sock"
#define CTL_DEFAULT_KEY_FILE "/var/lib/pushrelay/api-keys"
#define CTL_TIMEOUT_MS 30000		/* of a request, but for feedback's long-polls */

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

/* pushrelayctl.c */
void ctl_usage_error(const struct ctl_command *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* ctl_http.c */
void ctl_load_key(struct ctl *ctl);
int ctl_request(struct ctl *ctl, const char *method, const char *path, const json_t *body,
    long timeout_ms, struct ctl_response *response);
int ctl_call(struct ctl *ctl, const char *method, const char *path, const json_t *body,
    struct ctl_response *response);
int ctl_refused(struct ctl *ctl, const struct ctl_response *response);
void ctl_response_free(struct ctl_response *response);
char *ctl_escape(struct ctl *ctl, const char *id);
char *ctl_path(struct ctl *ctl, const char *first, ...) __attribute__((sentinel));

/* ctl_output.c */
char *ctl_sanitize(const char *s);
char *ctl_text(const json_t *value);
char *ctl_field(const json_t *object, const char *key);
void ctl_table_init(struct ctl_table *table, size_t columns);
void ctl_table_add_owned(struct ctl_table *table, char **cells);
void ctl_table_add(struct ctl_table *table, ...);
void ctl_table_print(struct ctl_table *table);
void ctl_print_json(const json_t *value);

/* The commands, one file a group. */
int ctl_status(struct ctl *ctl, char **args);
int ctl_stats(struct ctl *ctl, char **args);
int ctl_devices_list(struct ctl *ctl, char **args);
int ctl_devices_show(struct ctl *ctl, char **args);
int ctl_devices_remove(struct ctl *ctl, char **args);
int ctl_devices_remove_client(struct ctl *ctl, char **args);
int ctl_members_list(struct ctl *ctl, char **args);
int ctl_members_add(struct ctl *ctl, char **args);
int ctl_members_remove(struct ctl *ctl, char **args);
int ctl_members_mute(struct ctl *ctl, char **args);
int ctl_members_mentions_only(struct ctl *ctl, char **args);
int ctl_send(struct ctl *ctl, char **args);
int ctl_push_show(struct ctl *ctl, char **args);
int ctl_feedback_recent(struct ctl *ctl, char **args);
int ctl_feedback_follow(struct ctl *ctl, char **args);

#endif
