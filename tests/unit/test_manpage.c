/*
 * Tests that the shipped documentation and packaging follow the code: the options
 * part of docs/pushrelay.conf.5 is config_write_man()'s output, packaging/pushrelay.conf
 * is the example with the packaged paths set and loads to them, pushrelayd(8) and
 * pushrelayctl(1) document every option of their --help, and the man pages, the RPM
 * spec and the Debian changelog carry configure's version.
 *
 * The same binary regenerates the two generated files (make update-packaging-docs):
 *	test_manpage --print-conf-man PAGE	PAGE with its options part regenerated
 *	test_manpage --print-packaged-conf	packaging/pushrelay.conf
 *	test_manpage --print-example-conf	pushrelay.conf.example
 */
#include "autoconf.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define MAN_BEGIN ".\\\" BEGIN OPTIONS\n"
#define MAN_END ".\\\" END OPTIONS\n"

#define PACKAGED_STATE_DIR "/var/lib/pushrelay"
#define PACKAGED_UNIX_SOCKET "/run/pushrelay/api.sock"

/* What the packaged file says before the example's sections. */
static const char packaged_header[] =
    "# /etc/pushrelay/pushrelay.conf: the configuration of pushrelayd, the\n"
    "# push-notification relay, as the pushrelay packages install it. The service\n"
    "# pushrelayd.service runs \"pushrelayd -c /etc/pushrelay/pushrelay.conf\".\n"
    "#\n"
    "# Every option is below with its default value. The packages set two:\n"
    "#   [server] state_dir = " PACKAGED_STATE_DIR "    (the service's StateDirectory)\n"
    "#   [api] unix_socket = " PACKAGED_UNIX_SOCKET "  (in its RuntimeDirectory,\n"
    "#       for members of the group pushrelay)\n"
    "# every other one is commented out. The API key file is generated on first\n"
    "# start as " PACKAGED_STATE_DIR "/api-keys (mode 0600, owner pushrelay).\n"
    "#\n"
    "# To change an option, remove the leading '#' and edit the value; a line is a\n"
    "# [section], key = value, or a '#' comment. Check the file with\n"
    "# \"pushrelayd -t -c /etc/pushrelay/pushrelay.conf\", then reload the service\n"
    "# (\"systemctl reload pushrelayd\") for options marked reloadable, or restart\n"
    "# it. The syntax and the value types are in pushrelay.conf(5).\n"
    "\n";

/* The example's option lines that the packaged file sets, and what it sets them to. */
static const struct {
	const char *from;
	const char *to;
} packaged_values[] = {
	{ "\n#state_dir =\n", "\nstate_dir = " PACKAGED_STATE_DIR "\n" },
	{ "\n#unix_socket =\n", "\nunix_socket = " PACKAGED_UNIX_SOCKET "\n" },
};

/* Read a whole file; NULL if it cannot be read. */
static char *
read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t size = 0, len = 0, n;

	if (fp == NULL)
		return NULL;
	for (;;) {
		if (len + 4096 > size) {
			size = len + 8192;
			if ((buf = realloc(buf, size)) == NULL)
				abort();
		}
		if ((n = fread(buf + len, 1, size - len - 1, fp)) == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	fclose(fp);
	return buf;
}

/* Read a file of the source tree, failing the test when it cannot be read. */
static char *
read_source_file(const char *name)
{
	const char *top = getenv("PUSHRELAY_TOP_SRCDIR");
	char path[PATH_MAX];
	char *text;

	if (top == NULL)
		fail_msg("PUSHRELAY_TOP_SRCDIR is not set: run the test with make check");
	snprintf(path, sizeof path, "%s/%s", top, name);
	if ((text = read_file(path)) == NULL)
		fail_msg("cannot read %s", path);
	return text;
}

/* config_write_example() or config_write_man() into *text, which the caller frees. */
static void
capture(void (*writer)(FILE *), char **text)
{
	size_t len;
	FILE *fp;

	*text = NULL;
	if ((fp = open_memstream(text, &len)) == NULL)
		abort();
	writer(fp);
	if (fclose(fp) != 0)
		abort();
}

/* A copy of text with the one occurrence of from replaced; NULL if not exactly one. */
static char *
replace_once(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	size_t head, tail;
	char *out;

	if (at == NULL || strstr(at + 1, from) != NULL)
		return NULL;
	head = at - text;
	tail = strlen(at + strlen(from));
	if ((out = malloc(head + strlen(to) + tail + 1)) == NULL)
		abort();
	memcpy(out, text, head);
	memcpy(out + head, to, strlen(to));
	memcpy(out + head + strlen(to), at + strlen(from), tail + 1);
	return out;
}

/*
 * packaging/pushrelay.conf as it must be: the packaged header, then the example from
 * its first [section] on, with the packaged options set. NULL with a message on
 * stderr if the example no longer has the lines this relies on.
 */
static char *
packaged_conf(void)
{
	char *example, *text, *next;
	const char *body;
	size_t i;

	capture(config_write_example, &example);
	if ((body = strstr(example, "\n[")) == NULL) {
		fprintf(stderr, "the example has no [section]\n");
		free(example);
		return NULL;
	}
	body++;
	if ((text = malloc(strlen(packaged_header) + strlen(body) + 1)) == NULL)
		abort();
	strcpy(text, packaged_header);
	strcat(text, body);
	free(example);
	for (i = 0; i < sizeof packaged_values / sizeof packaged_values[0]; i++) {
		next = replace_once(text, packaged_values[i].from, packaged_values[i].to);
		free(text);
		if (next == NULL) {
			fprintf(stderr, "the example has not exactly one line \"%s\"\n",
			    packaged_values[i].from + 1);
			return NULL;
		}
		text = next;
	}
	return text;
}

/* The part of a man page between the option markers; NULL if they are missing. */
static char *
man_options_part(const char *page)
{
	const char *begin = strstr(page, MAN_BEGIN), *end;
	char *part;

	if (begin == NULL)
		return NULL;
	begin += strlen(MAN_BEGIN);
	if ((end = strstr(begin, MAN_END)) == NULL)
		return NULL;
	if ((part = strndup(begin, end - begin)) == NULL)
		abort();
	return part;
}

/* page with its options part replaced by config_write_man(); NULL without markers. */
static char *
man_regenerate(const char *page)
{
	const char *begin = strstr(page, MAN_BEGIN), *end;
	char *options, *out;
	size_t head;

	if (begin == NULL || (end = strstr(begin, MAN_END)) == NULL)
		return NULL;
	head = begin + strlen(MAN_BEGIN) - page;
	capture(config_write_man, &options);
	if ((out = malloc(head + strlen(options) + strlen(end) + 1)) == NULL)
		abort();
	memcpy(out, page, head);
	strcpy(out + head, options);
	strcat(out, end);
	free(options);
	return out;
}

static void
test_conf_man_options_part_is_config_write_man_output(void **state)
{
	char *page, *part, *generated;

	(void)state;
	page = read_source_file("docs/pushrelay.conf.5");
	part = man_options_part(page);
	if (part == NULL)
		fail_msg("docs/pushrelay.conf.5 lacks the BEGIN/END OPTIONS markers");
	capture(config_write_man, &generated);
	if (strcmp(part, generated) != 0)
		print_error("docs/pushrelay.conf.5 is out of date: make update-packaging-docs\n");
	assert_string_equal(part, generated);
	free(generated);
	free(part);
	free(page);
}

static void
test_packaged_conf_is_example_with_packaged_paths_set(void **state)
{
	char *committed, *generated;

	(void)state;
	committed = read_source_file("packaging/pushrelay.conf");
	generated = packaged_conf();
	assert_non_null(generated);
	if (strcmp(committed, generated) != 0)
		print_error("packaging/pushrelay.conf is out of date: "
		    "make update-packaging-docs\n");
	assert_string_equal(committed, generated);
	free(generated);
	free(committed);
}

static void
test_packaged_conf_loads_to_packaged_paths(void **state)
{
	const char *top = getenv("PUSHRELAY_TOP_SRCDIR");
	char *saved = getenv("STATE_DIRECTORY");
	struct config config;
	char path[PATH_MAX], err[512] = "";
	int result;

	(void)state;
	assert_non_null(top);
	snprintf(path, sizeof path, "%s/packaging/pushrelay.conf", top);
	if (saved != NULL && (saved = strdup(saved)) == NULL)
		abort();
	/* The packaged paths must not depend on systemd's environment. */
	setenv("STATE_DIRECTORY", "/elsewhere", 1);
	result = config_load(&config, path, err, sizeof err);
	if (saved != NULL)
		setenv("STATE_DIRECTORY", saved, 1);
	else
		unsetenv("STATE_DIRECTORY");
	free(saved);
	if (result != 0)
		print_error("%s\n", err);
	assert_int_equal(result, 0);

	assert_string_equal(config.state_dir, PACKAGED_STATE_DIR);
	assert_string_equal(config.unix_socket, PACKAGED_UNIX_SOCKET);
	assert_int_equal(config.unix_socket_mode, 0660);
	assert_string_equal(config.api_key_file, PACKAGED_STATE_DIR "/api-keys");
	assert_int_equal(config.api_key_file_is_default, 1);
	assert_string_equal(config.store_path, PACKAGED_STATE_DIR "/pushrelay.db");
	assert_int_equal(config.listen_count, 1);
	assert_string_equal(config.listen[0], "127.0.0.1:" CONFIG_DEFAULT_PORT);
	config_free(&config);
}

static void
test_unit_uses_packaged_paths_and_outlasts_shutdown_timeout(void **state)
{
	char *unit, *line;
	struct config defaults;
	char err[512];
	long seconds;

	(void)state;
	unit = read_source_file("packaging/systemd/pushrelayd.service");
	assert_non_null(strstr(unit, "\nExecStartPre=/usr/sbin/pushrelayd -t -c "
	    "/etc/pushrelay/pushrelay.conf\n"));
	assert_non_null(strstr(unit, "\nExecStart=/usr/sbin/pushrelayd -c "
	    "/etc/pushrelay/pushrelay.conf\n"));
	assert_non_null(strstr(unit, "\nStateDirectory=pushrelay\n"));
	assert_non_null(strstr(unit, "\nRuntimeDirectory=pushrelay\n"));
	assert_non_null(strstr(unit, "\nType=notify\n"));

	/* systemd must not kill the daemon while it drains within its own bound. */
	line = strstr(unit, "\nTimeoutStopSec=");
	assert_non_null(line);
	assert_int_equal(sscanf(line, "\nTimeoutStopSec=%lds\n", &seconds), 1);
	assert_int_equal(config_load(&defaults, NULL, err, sizeof err), 0);
	assert_true(seconds * 1000 > defaults.shutdown_timeout_ms);
	config_free(&defaults);
	free(unit);
}

/* Every option that "program --help" shows is in the man page; at least minimum of them. */
static void
check_help_options_documented(const char *program, const char *page_name, size_t minimum)
{
	char command[PATH_MAX + 32], word[64], roff[160];
	char *page, *help, *p;
	size_t i, j, options = 0;
	FILE *fp;

	assert_non_null(program);
	assert_null(strchr(program, '\''));
	snprintf(command, sizeof command, "'%s' --help", program);
	fp = popen(command, "r");
	assert_non_null(fp);
	if ((help = calloc(1, 8192)) == NULL)
		abort();
	assert_true(fread(help, 1, 8191, fp) > 0);
	assert_int_equal(pclose(fp), 0);
	page = read_source_file(page_name);

	/* Every word of --help that starts with '-' is an option: "-c," "--config". */
	for (p = help; *p != '\0'; p++) {
		if (*p != '-' || (p > help && p[-1] != ' '))
			continue;
		for (i = 0; p[i] == '-' || (p[i] >= 'a' && p[i] <= 'z') ||
		    (p[i] >= 'A' && p[i] <= 'Z'); i++)
			word[i] = p[i];
		word[i] = '\0';
		p += i - 1;
		for (i = 0, j = 0; word[i] != '\0'; i++) {
			if (word[i] == '-')
				roff[j++] = '\\';
			roff[j++] = word[i];
		}
		roff[j] = '\0';
		if (strstr(page, roff) == NULL)
			print_error("%s does not document %s\n", page_name, word);
		assert_non_null(strstr(page, roff));
		options++;
	}
	assert_true(options >= minimum);
	free(page);
	free(help);
}

static void
test_daemon_man_page_documents_every_help_option(void **state)
{
	(void)state;
	/* -c --config -t --test -V --version -h --help at least. */
	check_help_options_documented(getenv("PUSHRELAYD"), "docs/pushrelayd.8", 8);
}

static void
test_ctl_man_page_documents_every_help_option(void **state)
{
	const char *top = getenv("PUSHRELAY_TOP_BUILDDIR");
	char program[PATH_MAX];

	(void)state;
	assert_non_null(top);
	snprintf(program, sizeof program, "%s/src/pushrelayctl", top);
	/* The global options, with short and long names, and the commands' options. */
	check_help_options_documented(program, "docs/pushrelayctl.1", 24);
}

static void
test_versions_match_configure(void **state)
{
	const char *th = " \"pushrelay " PACKAGE_VERSION "\" ";
	char *text;

	(void)state;
	text = read_source_file("docs/pushrelayd.8");
	assert_non_null(strstr(text, "\n.TH PUSHRELAYD 8 "));
	assert_non_null(strstr(text, th));
	free(text);
	text = read_source_file("docs/pushrelay.conf.5");
	assert_non_null(strstr(text, "\n.TH PUSHRELAY.CONF 5 "));
	assert_non_null(strstr(text, th));
	free(text);
	text = read_source_file("docs/pushrelayctl.1");
	assert_non_null(strstr(text, "\n.TH PUSHRELAYCTL 1 "));
	assert_non_null(strstr(text, th));
	free(text);
	text = read_source_file("packaging/rpm/pushrelay.spec");
	assert_non_null(strstr(text, "\nVersion:        " PACKAGE_VERSION "\n"));
	free(text);
	text = read_source_file("packaging/debian/changelog");
	assert_memory_equal(text, "pushrelay (" PACKAGE_VERSION "-",
	    strlen("pushrelay (" PACKAGE_VERSION "-"));
	free(text);
}

/* Print what a generated file must hold, for make update-packaging-docs. */
static int
print_generated(int argc, char **argv)
{
	char *page, *text;

	if (argc == 2 && strcmp(argv[1], "--print-packaged-conf") == 0)
		text = packaged_conf();
	else if (argc == 2 && strcmp(argv[1], "--print-example-conf") == 0) {
		FILE *out = open_memstream(&text, &(size_t){ 0 });
		if (out == NULL)
			return 1;
		config_write_example(out);
		if (fclose(out) != 0)
			return 1;
	}
	else if (argc == 3 && strcmp(argv[1], "--print-conf-man") == 0) {
		if ((page = read_file(argv[2])) == NULL) {
			fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[2]);
			return 1;
		}
		if ((text = man_regenerate(page)) == NULL)
			fprintf(stderr, "%s: no BEGIN/END OPTIONS markers\n", argv[2]);
		free(page);
	} else {
		fprintf(stderr, "usage: %s [--print-packaged-conf | --print-example-conf |\n"
		    "    --print-conf-man PAGE]\n",
		    argv[0]);
		return 2;
	}
	if (text == NULL)
		return 1;
	fputs(text, stdout);
	free(text);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_man_options_part_is_config_write_man_output),
		cmocka_unit_test(test_packaged_conf_is_example_with_packaged_paths_set),
		cmocka_unit_test(test_packaged_conf_loads_to_packaged_paths),
		cmocka_unit_test(test_unit_uses_packaged_paths_and_outlasts_shutdown_timeout),
		cmocka_unit_test(test_daemon_man_page_documents_every_help_option),
		cmocka_unit_test(test_ctl_man_page_documents_every_help_option),
		cmocka_unit_test(test_versions_match_configure),
	};

	if (argc > 1)
		return print_generated(argc, argv);
	return cmocka_run_group_tests_name("manpage", tests, NULL, NULL);
}
