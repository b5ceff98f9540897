/*
 * Tests for config.c: defaults and derived paths, every option read from a file, each
 * class of error with its exact message and line, value parsing, reload checks, and
 * the committed example file.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "store.h"

/* Options of the plain sections, and of each kind of named section. */
#define OPTION_COUNT 61
#define APNS_OPTION_COUNT 17
#define FCM_OPTION_COUNT 7

struct fixture {
	char dir[PATH_MAX];
	char file[PATH_MAX + 32];
	char *saved_state_directory;
};

/* A fresh temp directory for the test's file, and STATE_DIRECTORY unset. */
static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);
	const char *tmp = getenv("TMPDIR");
	const char *saved = getenv("STATE_DIRECTORY");

	assert_non_null(fx);
	snprintf(fx->dir, sizeof fx->dir, "%s/test_config.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->file, sizeof fx->file, "%s/pushrelay.conf", fx->dir);
	if (saved != NULL)
		fx->saved_state_directory = strdup(saved);
	/* Tests that depend on it set it; the others must not see the caller's. */
	unsetenv("STATE_DIRECTORY");
	*state = fx;
	return 0;
}

/* Remove the temp directory and restore STATE_DIRECTORY. */
static int
teardown(void **state)
{
	struct fixture *fx = *state;

	unlink(fx->file);
	rmdir(fx->dir);
	if (fx->saved_state_directory != NULL)
		setenv("STATE_DIRECTORY", fx->saved_state_directory, 1);
	else
		unsetenv("STATE_DIRECTORY");
	free(fx->saved_state_directory);
	free(fx);
	return 0;
}

/* Write text to path, replacing it. */
static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Read a whole file; NULL if it cannot be opened. */
static char *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t size = 0, n;

	if (fp == NULL)
		return NULL;
	*len = 0;
	for (;;) {
		if (*len + 4096 > size) {
			size = *len + 8192;
			buf = realloc(buf, size);
			assert_non_null(buf);
		}
		n = fread(buf + *len, 1, size - *len - 1, fp);
		*len += n;
		if (n == 0)
			break;
	}
	buf[*len] = '\0';
	fclose(fp);
	return buf;
}

/* config_write_example() or config_write_man() into a string. */
static char *
capture(void (*writer)(FILE *), size_t *len)
{
	char *buf = NULL;
	FILE *fp = open_memstream(&buf, len);

	assert_non_null(fp);
	writer(fp);
	assert_int_equal(fclose(fp), 0);
	return buf;
}

/* Load text as the fixture's file, expecting success. */
static void
load_text(struct fixture *fx, const char *text, struct config *config)
{
	char err[512] = "";
	int result;

	write_file(fx->file, text);
	result = config_load(config, fx->file, err, sizeof err);
	if (result != 0)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(result, 0);
}

/* Load text, expecting exactly "FILE" followed by suffix and a zeroed config. */
static void
assert_load_error(struct fixture *fx, const char *text, const char *suffix)
{
	struct config config, zero;
	char err[512], expected[PATH_MAX + 512];

	write_file(fx->file, text);
	memset(&config, 0xa5, sizeof config);
	memset(&zero, 0, sizeof zero);
	assert_int_equal(config_load(&config, fx->file, err, sizeof err), -1);
	snprintf(expected, sizeof expected, "%s%s", fx->file, suffix);
	assert_string_equal(err, expected);
	assert_memory_equal(&config, &zero, sizeof config);
}

/* Every field at its default, with state_dir as given. */
static void
assert_defaults(const struct config *config, const char *state_dir)
{
	char path[PATH_MAX];

	assert_string_equal(config->state_dir, state_dir);
	assert_int_equal(config->shutdown_timeout_ms, 10000);
	assert_int_equal(config->listen_count, 1);
	assert_string_equal(config->listen[0], "127.0.0.1:8470");
	assert_null(config->unix_socket);
	assert_int_equal(config->unix_socket_mode, 0660);
	snprintf(path, sizeof path, "%s/api-keys", state_dir);
	assert_string_equal(config->api_key_file, path);
	assert_int_equal(config->api_key_file_is_default, 1);
	assert_int_equal(config->max_body_size, 1024 * 1024);
	assert_int_equal(config->request_timeout_ms, 30000);
	assert_int_equal(config->header_timeout_ms, 10000);
	assert_int_equal(config->max_connections, 4096);
	assert_int_equal(config->max_connections_per_peer, 1024);
	assert_int_equal(config->metrics_public, 1);
	assert_string_equal(config->store_backend, "sqlite");
	snprintf(path, sizeof path, "%s/pushrelay.db", state_dir);
	assert_string_equal(config->store_path, path);
	assert_null(config->store_postgresql);
	assert_int_equal(config->store_sync, STORE_SYNC_FULL);
	assert_int_equal(config->store_busy_timeout_ms, 5000);
	assert_int_equal(config->store_cache_size, 32 * 1024 * 1024);
	assert_int_equal(config->store_checkpoint_size, 32 * 1024 * 1024);
	/* Presence expires and is capped unless told otherwise. */
	assert_int_equal(config->presence_ttl_ms, 24 * 3600 * 1000);
	assert_int_equal(config->presence_max, 1000000);
	assert_int_equal(config->log_level, LOG_LEVEL_INFO);
	assert_int_equal(config->log_format, LOG_FORMAT_TEXT);
}

/* Equal strings, or both NULL. */
static void
assert_optional_string_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Every option equal, reloadable or not (the file path aside). */
static void
assert_configs_equal(const struct config *a, const struct config *b)
{
	size_t i;

	assert_string_equal(a->state_dir, b->state_dir);
	assert_int_equal(a->shutdown_timeout_ms, b->shutdown_timeout_ms);
	assert_int_equal(a->listen_count, b->listen_count);
	for (i = 0; i < a->listen_count; i++)
		assert_string_equal(a->listen[i], b->listen[i]);
	assert_optional_string_equal(a->unix_socket, b->unix_socket);
	assert_int_equal(a->unix_socket_mode, b->unix_socket_mode);
	assert_string_equal(a->api_key_file, b->api_key_file);
	assert_int_equal(a->api_key_file_is_default, b->api_key_file_is_default);
	assert_int_equal(a->max_body_size, b->max_body_size);
	assert_int_equal(a->request_timeout_ms, b->request_timeout_ms);
	assert_int_equal(a->header_timeout_ms, b->header_timeout_ms);
	assert_int_equal(a->max_connections, b->max_connections);
	assert_int_equal(a->max_connections_per_peer, b->max_connections_per_peer);
	assert_int_equal(a->metrics_public, b->metrics_public);
	assert_string_equal(a->store_backend, b->store_backend);
	assert_string_equal(a->store_path, b->store_path);
	assert_true((a->store_postgresql == NULL) == (b->store_postgresql == NULL));
	if (a->store_postgresql != NULL)
		assert_string_equal(a->store_postgresql, b->store_postgresql);
	assert_int_equal(a->store_sync, b->store_sync);
	assert_int_equal(a->store_busy_timeout_ms, b->store_busy_timeout_ms);
	assert_int_equal(a->store_cache_size, b->store_cache_size);
	assert_int_equal(a->store_checkpoint_size, b->store_checkpoint_size);
	assert_string_equal(a->state_backend, b->state_backend);
	assert_string_equal(a->state_prefix, b->state_prefix);
	assert_int_equal(a->log_level, b->log_level);
	assert_int_equal(a->log_format, b->log_format);
}

static void
test_config_defaults_without_file_use_first_state_directory(void **state)
{
	struct config config;
	char err[256];

	(void)state;
	setenv("STATE_DIRECTORY", "/var/lib/pushrelay:/var/lib/other", 1);
	assert_int_equal(config_load(&config, NULL, err, sizeof err), 0);
	assert_null(config.path);
	assert_defaults(&config, "/var/lib/pushrelay");
	config_free(&config);
}

static void
test_config_defaults_without_state_directory_use_local_dir(void **state)
{
	struct config config;
	char err[256];

	(void)state;
	assert_int_equal(config_load(&config, NULL, err, sizeof err), 0);
	assert_defaults(&config, "./pushrelay-state");
	assert_string_equal(config.api_key_file, "./pushrelay-state/api-keys");
	assert_string_equal(config.store_path, "./pushrelay-state/pushrelay.db");
	config_free(&config);

	setenv("STATE_DIRECTORY", "", 1);
	assert_int_equal(config_load(&config, NULL, err, sizeof err), 0);
	assert_defaults(&config, "./pushrelay-state");
	config_free(&config);
}

static void
test_config_empty_file_gives_defaults_and_records_path(void **state)
{
	struct fixture *fx = *state;
	struct config config;

	setenv("STATE_DIRECTORY", "/srv/state", 1);
	load_text(fx, "# nothing\n\n", &config);
	assert_string_equal(config.path, fx->file);
	assert_defaults(&config, "/srv/state");
	config_free(&config);
}

static void
test_config_file_sets_every_key(void **state)
{
	struct fixture *fx = *state;
	struct config config;

	setenv("STATE_DIRECTORY", "/ignored", 1);
	load_text(fx,
	    "[server]\n"
	    "state_dir = /var/lib/relay\n"
	    "shutdown_timeout = 250ms\n"
	    "[api]\n"
	    "listen = 127.0.0.1:9000, [::1]:0 localhost:9001\n"
	    "unix_socket = /run/pushrelay/api.sock\n"
	    "unix_socket_mode = 0600\n"
	    "api_key_file = /etc/pushrelay/keys\n"
	    "max_body_size = 8M\n"
	    "request_timeout = 2m\n"
	    "[store]\n"
	    "backend = sqlite\n"
	    "path = /data/devices.db\n"
	    "synchronous = normal\n"
	    "busy_timeout = 0\n"
	    "cache_size = 256M\n"
	    "checkpoint_size = 4M\n"
	    "[log]\n"
	    "level = debug\n"
	    "format = json\n",
	    &config);
	assert_string_equal(config.state_dir, "/var/lib/relay");
	assert_int_equal(config.shutdown_timeout_ms, 250);
	assert_int_equal(config.listen_count, 3);
	assert_string_equal(config.listen[0], "127.0.0.1:9000");
	assert_string_equal(config.listen[1], "[::1]:0");
	assert_string_equal(config.listen[2], "localhost:9001");
	assert_string_equal(config.unix_socket, "/run/pushrelay/api.sock");
	assert_int_equal(config.unix_socket_mode, 0600);
	assert_string_equal(config.api_key_file, "/etc/pushrelay/keys");
	assert_int_equal(config.api_key_file_is_default, 0);
	assert_int_equal(config.max_body_size, 8 * 1024 * 1024);
	assert_int_equal(config.request_timeout_ms, 120000);
	assert_string_equal(config.store_backend, "sqlite");
	assert_string_equal(config.store_path, "/data/devices.db");
	assert_int_equal(config.store_sync, STORE_SYNC_NORMAL);
	assert_int_equal(config.store_busy_timeout_ms, 0);
	assert_int_equal(config.store_cache_size, 256 * 1024 * 1024);
	assert_int_equal(config.store_checkpoint_size, 4 * 1024 * 1024);
	assert_int_equal(config.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(config.log_format, LOG_FORMAT_JSON);
	config_free(&config);
}

static void
test_config_relative_state_dir_derives_relative_paths(void **state)
{
	struct fixture *fx = *state;
	struct config config;

	setenv("STATE_DIRECTORY", "/ignored", 1);
	load_text(fx, "[server]\nstate_dir = var/state/\n", &config);
	assert_string_equal(config.state_dir, "var/state/");
	assert_string_equal(config.api_key_file, "var/state/api-keys");
	assert_int_equal(config.api_key_file_is_default, 1);
	assert_string_equal(config.store_path, "var/state/pushrelay.db");
	config_free(&config);

	/* Explicit relative paths stay relative to the working directory, not state_dir. */
	load_text(fx, "[server]\nstate_dir = data\n[store]\npath = db/x.db\n"
	    "[api]\napi_key_file = keys\n", &config);
	assert_string_equal(config.store_path, "db/x.db");
	assert_string_equal(config.api_key_file, "keys");
	assert_int_equal(config.api_key_file_is_default, 0);
	config_free(&config);
}

static void
test_config_crlf_and_comments_are_accepted(void **state)
{
	struct fixture *fx = *state;
	struct config config;

	load_text(fx, "; comment\r\n# comment\r\n[log]\r\nlevel = warn ; why\r\n"
	    "[api]\r\nlisten = 127.0.0.1:1\r\n", &config);
	assert_int_equal(config.log_level, LOG_LEVEL_WARN);
	assert_int_equal(config.listen_count, 1);
	assert_string_equal(config.listen[0], "127.0.0.1:1");
	config_free(&config);
}

static void
test_config_missing_file_is_cannot_open(void **state)
{
	struct fixture *fx = *state;
	struct config config;
	char err[512], expected[PATH_MAX + 64];

	memset(&config, 0xa5, sizeof config);
	assert_int_equal(config_load(&config, fx->file, err, sizeof err), -1);
	snprintf(expected, sizeof expected, "%s: cannot open: %s", fx->file,
	    strerror(ENOENT));
	assert_string_equal(err, expected);
	assert_null(config.path);
	assert_null(config.state_dir);
}

static void
test_config_unknown_section_is_error_at_its_header(void **state)
{
	struct fixture *fx = *state;

	assert_load_error(fx, "[log]\nlevel = info\n[tls]\n", ":3: unknown section [tls]");
	assert_load_error(fx, "[log]\n  [tls]\n  cert = x\n", ":3: unknown section [tls]");
}

static void
test_config_key_before_any_section_is_error(void **state)
{
	assert_load_error(*state, "\nlevel = info\n", ":2: key 'level' before any [section]");
}

static void
test_config_unknown_key_is_error_without_suggestion(void **state)
{
	assert_load_error(*state, "[api]\nlisten = 127.0.0.1:1\nlistn = 127.0.0.1:2\n",
	    ":3: unknown key 'listn' in [api]");
}

static void
test_config_key_set_twice_is_error_naming_first_line(void **state)
{
	assert_load_error(*state, "[log]\nlevel = info\nformat = text\n\nlevel = debug\n",
	    ":5: [log] level: set twice, first on line 2");
	/* Twice even when both values are the same and sections are split. */
	assert_load_error(*state, "[log]\nlevel = info\n[api]\n[log]\nlevel = info\n",
	    ":5: [log] level: set twice, first on line 2");
}

static void
test_config_indented_continuation_is_error(void **state)
{
	assert_load_error(*state, "[api]\nlisten = 127.0.0.1:1\n  [::1]:1\n",
	    ":3: [api] listen: continuation lines are not supported; "
	    "write the value on one line");
}

static void
test_config_empty_value_is_error_for_non_string_types(void **state)
{
	struct fixture *fx = *state;

	assert_load_error(fx, "[api]\nmax_body_size =\n", ":2: [api] max_body_size: empty value");
	assert_load_error(fx, "[server]\nshutdown_timeout = \n",
	    ":2: [server] shutdown_timeout: empty value");
	assert_load_error(fx, "[api]\nunix_socket_mode =\n",
	    ":2: [api] unix_socket_mode: empty value");
	assert_load_error(fx, "[log]\nlevel =\n", ":2: [log] level: empty value");
	assert_load_error(fx, "[store]\nbackend =\n",
	    ":2: [store] backend: must be one of: sqlite, postgresql");
}

/* backend = postgresql takes a connection string that libpq parses; none is an error. */
static void
test_config_postgresql_backend_needs_a_connection_string_that_parses(void **state)
{
	struct fixture *fx = *state;
	struct config config;

	load_text(fx, "[store]\nbackend = postgresql\n"
	    "postgresql = host=db port=5433 dbname=pushrelay user=relay\n", &config);
	assert_string_equal(config.store_backend, "postgresql");
	assert_string_equal(config.store_postgresql,
	    "host=db port=5433 dbname=pushrelay user=relay");
	config_free(&config);
	/* Set but unused by sqlite; empty is none. */
	load_text(fx, "[store]\npostgresql =\n", &config);
	assert_null(config.store_postgresql);
	config_free(&config);

	assert_load_error(fx, "[store]\nbackend = postgresql\n",
	    ": [store] backend = postgresql needs postgresql (a libpq connection string)");
	assert_load_error(fx, "[store]\nbackend = postgresql\npostgresql = nosuch=x\n",
	    ": [store] postgresql: invalid connection option \"...\"");
	assert_load_error(fx, "[store]\nbackend = postgresql\n"
	    "postgresql = host=db password 'secret\n",
	    ": [store] postgresql: missing \"=\" after \"...\" in connection info string");
}

static void
test_config_out_of_range_values_name_the_bounds(void **state)
{
	struct fixture *fx = *state;

	assert_load_error(fx, "[api]\nmax_body_size = 65M\n",
	    ":2: [api] max_body_size: must be between 1K and 64M");
	assert_load_error(fx, "[api]\nmax_body_size = 1023\n",
	    ":2: [api] max_body_size: must be between 1K and 64M");
	assert_load_error(fx, "[api]\nmax_body_size = 99999999999999999999G\n",
	    ":2: [api] max_body_size: must be between 1K and 64M");
	assert_load_error(fx, "[server]\nshutdown_timeout = 601s\n",
	    ":2: [server] shutdown_timeout: must be between 0s and 10m");
	assert_load_error(fx, "[api]\nrequest_timeout = 999ms\n",
	    ":2: [api] request_timeout: must be between 1s and 1h");
	assert_load_error(fx, "[store]\nbusy_timeout = 61\n",
	    ":2: [store] busy_timeout: must be between 0s and 1m");
	assert_load_error(fx, "[api]\nunix_socket_mode = 1777\n",
	    ":2: [api] unix_socket_mode: must be between 0000 and 0777");
}

static void
test_config_boundary_values_are_accepted(void **state)
{
	struct fixture *fx = *state;
	struct config config;

	load_text(fx, "[api]\nmax_body_size = 64M\nrequest_timeout = 1h\n"
	    "[server]\nshutdown_timeout = 10m\n[store]\nbusy_timeout = 1m\n", &config);
	assert_int_equal(config.max_body_size, 64 * 1024 * 1024);
	assert_int_equal(config.request_timeout_ms, 3600000);
	assert_int_equal(config.shutdown_timeout_ms, 600000);
	assert_int_equal(config.store_busy_timeout_ms, 60000);
	config_free(&config);

	load_text(fx, "[api]\nmax_body_size = 1024\nrequest_timeout = 1000ms\n"
	    "unix_socket_mode = 0\n[server]\nshutdown_timeout = 0\n", &config);
	assert_int_equal(config.max_body_size, 1024);
	assert_int_equal(config.request_timeout_ms, 1000);
	assert_int_equal(config.unix_socket_mode, 0);
	assert_int_equal(config.shutdown_timeout_ms, 0);
	config_free(&config);
}

static void
test_config_bad_enum_names_allowed_values(void **state)
{
	struct fixture *fx = *state;

	assert_load_error(fx, "[store]\nsynchronous = off\n",
	    ":2: [store] synchronous: must be one of: full, normal");
	assert_load_error(fx, "[store]\nsynchronous = FULL\n",
	    ":2: [store] synchronous: must be one of: full, normal");
	assert_load_error(fx, "[store]\nbackend = redis\n",
	    ":2: [store] backend: must be one of: sqlite, postgresql");
	assert_load_error(fx, "[log]\nlevel = verbose\n",
	    ":2: [log] level: must be one of: error, warn, info, debug");
	assert_load_error(fx, "[log]\nformat = xml\n",
	    ":2: [log] format: must be one of: text, json");
}

static void
test_config_malformed_values_are_errors(void **state)
{
	struct fixture *fx = *state;

	assert_load_error(fx, "[server]\nshutdown_timeout = 1.5s\n",
	    ":2: [server] shutdown_timeout: '1.5s' is not a duration "
	    "(a whole number with ms, s, m or h; alone, seconds)");
	assert_load_error(fx, "[server]\nshutdown_timeout = 10 s\n",
	    ":2: [server] shutdown_timeout: '10 s' is not a duration "
	    "(a whole number with ms, s, m or h; alone, seconds)");
	assert_load_error(fx, "[api]\nmax_body_size = 1.5M\n",
	    ":2: [api] max_body_size: '1.5M' is not a size "
	    "(a whole number of bytes, or with K, M or G)");
	assert_load_error(fx, "[api]\nmax_body_size = 1MB\n",
	    ":2: [api] max_body_size: '1MB' is not a size "
	    "(a whole number of bytes, or with K, M or G)");
	assert_load_error(fx, "[api]\nunix_socket_mode = 0668\n",
	    ":2: [api] unix_socket_mode: '0668' is not an octal mode such as 0660");
	assert_load_error(fx, "[api]\nunix_socket_mode = u=rw\n",
	    ":2: [api] unix_socket_mode: 'u=rw' is not an octal mode such as 0660");
}

static void
test_config_syntax_error_is_reported_before_a_later_bad_value(void **state)
{
	/* inih only reports the line of a syntax error; a later value error must not win. */
	assert_load_error(*state, "[log]\nlevel debug\nformat = xml\n",
	    ":2: syntax error: expected [section] or key = value");
	assert_load_error(*state, "[log\nlevel = debug\n",
	    ":1: syntax error: expected [section] or key = value");
	/* And a value error before a syntax error keeps its own line. */
	assert_load_error(*state, "[log]\nformat = xml\nlevel debug\n",
	    ":2: [log] format: must be one of: text, json");
}

static void
test_config_overlong_line_is_error_not_split(void **state)
{
	struct fixture *fx = *state;
	char text[400];

	snprintf(text, sizeof text, "[api]\n# %0300d\nlisten = 127.0.0.1:1\n", 0);
	assert_load_error(fx, text, ":2: line longer than 197 characters");

	/* 197 characters is still one line. */
	snprintf(text, sizeof text, "[api]\n#%0196d\nlisten = 127.0.0.1:1\n", 0);
	assert_int_equal(strlen(strchr(text, '#')), 197 + 1 + strlen("listen = 127.0.0.1:1\n"));
	{
		struct config config;

		load_text(fx, text, &config);
		config_free(&config);
	}
}

static void
test_config_empty_listen_needs_unix_socket(void **state)
{
	struct fixture *fx = *state;
	struct config config;

	assert_load_error(fx, "[api]\nlisten =\n",
	    ": no listen address and no unix_socket: the API would be unreachable");

	load_text(fx, "[api]\nlisten = ,\nunix_socket = relay.sock\n", &config);
	assert_int_equal(config.listen_count, 0);
	assert_null(config.listen);
	assert_string_equal(config.unix_socket, "relay.sock");
	config_free(&config);
}

static void
test_config_state_defaults_to_memory_with_the_pushrelay_prefix(void **state)
{
	struct fixture *fx = *state;
	struct config config;

	load_text(fx, "", &config);
	assert_string_equal(config.state_backend, "memory");
	assert_string_equal(config.state_prefix, "pushrelay:");
	config_free(&config);
	load_text(fx, "[state]\nbackend = redis\nprefix = chat-eu:\n", &config);
	assert_string_equal(config.state_backend, "redis");
	assert_string_equal(config.state_prefix, "chat-eu:");
	config_free(&config);
}

static void
test_config_state_redis_needs_a_redis_address_and_a_prefix_without_braces(void **state)
{
	struct fixture *fx = *state;

	assert_load_error(fx, "[state]\nbackend = redis\n[redis]\naddress =\n",
	    ": [state] backend = redis needs [redis] address, the Redis server the room "
	    "state is kept in");
	assert_load_error(fx, "[state]\nbackend = redis\nprefix = a{b}:\n",
	    ": [state] prefix: must be at most 64 bytes, without { or }");
	assert_load_error(fx, "[state]\nbackend = redis\nprefix = "
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	    ": [state] prefix: must be at most 64 bytes, without { or }");
	assert_load_error(fx, "[state]\nbackend = etcd\n",
	    ":2: [state] backend: must be one of: memory, redis");
}

static void
test_config_bad_listen_entries_are_errors(void **state)
{
	struct fixture *fx = *state;

	assert_load_error(fx, "[api]\nlisten = 127.0.0.1\n",
	    ":2: [api] listen: '127.0.0.1': no port (write host:port)");
	assert_load_error(fx, "[api]\nlisten = 127.0.0.1:1 ::1:8470\n",
	    ":2: [api] listen: '::1:8470': an IPv6 address needs brackets: [address]:port");
	assert_load_error(fx, "[api]\nlisten = example.com:80\n",
	    ":2: [api] listen: 'example.com:80': "
	    "host must be an IPv4 address, [IPv6 address] or localhost");
	assert_load_error(fx, "[api]\nlisten = [fe80::1%eth0]:80\n",
	    ":2: [api] listen: '[fe80::1%eth0]:80': "
	    "host must be an IPv4 address, [IPv6 address] or localhost");
	assert_load_error(fx, "[api]\nlisten = 1.2.3.4:65536\n",
	    ":2: [api] listen: '1.2.3.4:65536': port must be a number from 0 to 65535");
	assert_load_error(fx, "[api]\nlisten = 1.2.3.4:\n",
	    ":2: [api] listen: '1.2.3.4:': port must be a number from 0 to 65535");
	assert_load_error(fx, "[api]\nlisten = [::1\n",
	    ":2: [api] listen: '[::1': no closing ']'");
	assert_load_error(fx, "[api]\nlisten = [::1]8470\n",
	    ":2: [api] listen: '[::1]8470': expected ':' after ']'");
	assert_load_error(fx, "[api]\nlisten = 127.0.0.1:1, 127.0.0.1:1\n",
	    ":2: [api] listen: '127.0.0.1:1' is listed twice");
}

static void
test_config_mode_accepts_with_and_without_leading_zero(void **state)
{
	struct fixture *fx = *state;
	struct config config;

	load_text(fx, "[api]\nunix_socket_mode = 660\n", &config);
	assert_int_equal(config.unix_socket_mode, 0660);
	config_free(&config);
	load_text(fx, "[api]\nunix_socket_mode = 0600\n", &config);
	assert_int_equal(config.unix_socket_mode, 0600);
	config_free(&config);
}

static void
test_config_unix_socket_longer_than_sun_path_is_error(void **state)
{
	struct fixture *fx = *state;
	struct config config;
	char text[256];

	snprintf(text, sizeof text, "[api]\nunix_socket = /%0106d\n", 0);
	load_text(fx, text, &config);
	assert_int_equal(strlen(config.unix_socket), 107);
	config_free(&config);

	snprintf(text, sizeof text, "[api]\nunix_socket = /%0107d\n", 0);
	assert_load_error(fx, text, ":2: [api] unix_socket: must be at most 107 bytes long");
}

static void
test_config_log_levels_match_log_module(void **state)
{
	struct fixture *fx = *state;
	struct config config;
	enum log_level level, expected;
	char text[64];

	for (level = LOG_LEVEL_ERROR; level <= LOG_LEVEL_DEBUG; level++) {
		snprintf(text, sizeof text, "[log]\nlevel = %s\n", log_level_name(level));
		load_text(fx, text, &config);
		assert_int_equal(log_level_from_string(log_level_name(level), &expected), 0);
		assert_int_equal(config.log_level, expected);
		assert_int_equal(config.log_level, level);
		config_free(&config);
	}
}

static void
test_config_parse_duration_units_and_edges(void **state)
{
	int64_t ms = -1;

	(void)state;
	assert_int_equal(config_parse_duration("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(config_parse_duration("10s", &ms), 0);
	assert_int_equal(ms, 10000);
	assert_int_equal(config_parse_duration("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(config_parse_duration("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(config_parse_duration("7", &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(config_parse_duration("0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(config_parse_duration("007s", &ms), 0);
	assert_int_equal(ms, 7000);

	ms = 42;
	assert_int_equal(config_parse_duration("1.5s", &ms), -1);
	assert_int_equal(config_parse_duration("", &ms), -1);
	assert_int_equal(config_parse_duration("s", &ms), -1);
	assert_int_equal(config_parse_duration("-1s", &ms), -1);
	assert_int_equal(config_parse_duration("+1s", &ms), -1);
	assert_int_equal(config_parse_duration("10S", &ms), -1);
	assert_int_equal(config_parse_duration("1d", &ms), -1);
	assert_int_equal(config_parse_duration("1sec", &ms), -1);
	assert_int_equal(config_parse_duration("1m30s", &ms), -1);
	assert_int_equal(config_parse_duration(" 1s", &ms), -1);
	assert_int_equal(ms, 42);
	assert_int_equal(config_parse_duration("9223372036854775807ms", &ms), 0);
	assert_int_equal(ms, INT64_MAX);
	assert_int_equal(config_parse_duration("9223372036854775808ms", &ms), -2);
	assert_int_equal(config_parse_duration("9223372036854775807", &ms), -2);
	assert_int_equal(config_parse_duration("99999999999999999999x", &ms), -1);
}

static void
test_config_parse_size_suffixes_and_edges(void **state)
{
	int64_t bytes = -1;

	(void)state;
	assert_int_equal(config_parse_size("512", &bytes), 0);
	assert_int_equal(bytes, 512);
	assert_int_equal(config_parse_size("1K", &bytes), 0);
	assert_int_equal(bytes, 1024);
	assert_int_equal(config_parse_size("64k", &bytes), 0);
	assert_int_equal(bytes, 65536);
	assert_int_equal(config_parse_size("8M", &bytes), 0);
	assert_int_equal(bytes, 8388608);
	assert_int_equal(config_parse_size("2g", &bytes), 0);
	assert_int_equal(bytes, 2147483648LL);
	assert_int_equal(config_parse_size("0", &bytes), 0);
	assert_int_equal(bytes, 0);

	bytes = 42;
	assert_int_equal(config_parse_size("1.5M", &bytes), -1);
	assert_int_equal(config_parse_size("1MB", &bytes), -1);
	assert_int_equal(config_parse_size("1KiB", &bytes), -1);
	assert_int_equal(config_parse_size("M", &bytes), -1);
	assert_int_equal(config_parse_size("", &bytes), -1);
	assert_int_equal(config_parse_size("1T", &bytes), -1);
	assert_int_equal(config_parse_size("-1", &bytes), -1);
	assert_int_equal(bytes, 42);
	assert_int_equal(config_parse_size("8589934591G", &bytes), 0);
	assert_int_equal(config_parse_size("8589934592G", &bytes), -2);
}

static void
test_config_parse_mode_edges(void **state)
{
	unsigned int mode = 1;

	(void)state;
	assert_int_equal(config_parse_mode("0660", &mode), 0);
	assert_int_equal(mode, 0660);
	assert_int_equal(config_parse_mode("660", &mode), 0);
	assert_int_equal(mode, 0660);
	assert_int_equal(config_parse_mode("0", &mode), 0);
	assert_int_equal(mode, 0);
	assert_int_equal(config_parse_mode("1777", &mode), 0);
	assert_int_equal(mode, 01777);

	mode = 1;
	assert_int_equal(config_parse_mode("0668", &mode), -1);
	assert_int_equal(config_parse_mode("0x1ff", &mode), -1);
	assert_int_equal(config_parse_mode("0o660", &mode), -1);
	assert_int_equal(config_parse_mode("-660", &mode), -1);
	assert_int_equal(config_parse_mode("", &mode), -1);
	assert_int_equal(mode, 1);
	assert_int_equal(config_parse_mode("77777777777777", &mode), -2);
}

static void
test_config_parse_bool_spellings(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES", "True" };
	static const char *const no[] = { "no", "false", "off", "0", "No", "OFF" };
	static const char *const bad[] = { "", "y", "2", "yess", "enabled", " yes" };
	size_t i;
	int flag;

	(void)state;
	for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		flag = -1;
		assert_int_equal(config_parse_bool(yes[i], &flag), 0);
		assert_int_equal(flag, 1);
	}
	for (i = 0; i < sizeof no / sizeof no[0]; i++) {
		flag = -1;
		assert_int_equal(config_parse_bool(no[i], &flag), 0);
		assert_int_equal(flag, 0);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		flag = -1;
		assert_int_equal(config_parse_bool(bad[i], &flag), -1);
		assert_int_equal(flag, -1);
	}
}

static void
test_config_split_hostport_parts(void **state)
{
	char host[64], port[8], tiny[4];

	(void)state;
	assert_int_equal(config_split_hostport("[::1]:0", host, sizeof host, port,
	    sizeof port), 0);
	assert_string_equal(host, "::1");
	assert_string_equal(port, "0");
	assert_int_equal(config_split_hostport("127.0.0.1:8470", host, sizeof host, port,
	    sizeof port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_string_equal(port, "8470");
	assert_int_equal(config_split_hostport("localhost:65535", host, sizeof host, port,
	    sizeof port), 0);
	assert_string_equal(host, "localhost");
	assert_string_equal(port, "65535");
	assert_int_equal(config_split_hostport("[2001:db8::2:1]:443", host, sizeof host,
	    port, sizeof port), 0);
	assert_string_equal(host, "2001:db8::2:1");
	assert_string_equal(port, "443");

	assert_int_equal(config_split_hostport("::1:80", host, sizeof host, port,
	    sizeof port), -1);
	assert_int_equal(config_split_hostport("[127.0.0.1]:80", host, sizeof host, port,
	    sizeof port), -1);
	assert_int_equal(config_split_hostport("1.2.3:80", host, sizeof host, port,
	    sizeof port), -1);
	assert_int_equal(config_split_hostport(":80", host, sizeof host, port,
	    sizeof port), -1);
	assert_int_equal(config_split_hostport("1.2.3.4:+80", host, sizeof host, port,
	    sizeof port), -1);
	assert_int_equal(config_split_hostport("1.2.3.4:080000", host, sizeof host, port,
	    sizeof port), -1);
	assert_int_equal(config_split_hostport("127.0.0.1:80", tiny, sizeof tiny, port,
	    sizeof port), -1);
	assert_int_equal(config_split_hostport("127.0.0.1:8470", host, sizeof host, tiny,
	    sizeof tiny), -1);
}

static void
test_config_check_reload_names_changed_listen(void **state)
{
	struct fixture *fx = *state;
	struct config old, new;
	char name[64] = "";

	load_text(fx, "[api]\nlisten = 127.0.0.1:1 127.0.0.1:2\n", &old);
	load_text(fx, "[api]\nlisten = 127.0.0.1:1 127.0.0.1:3\n", &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), -1);
	assert_string_equal(name, "api.listen");
	config_free(&new);

	load_text(fx, "[api]\nlisten = 127.0.0.1:1\n", &new);
	strcpy(name, "");
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), -1);
	assert_string_equal(name, "api.listen");
	config_free(&new);
	config_free(&old);
}

static void
test_config_check_reload_accepts_reloadable_changes(void **state)
{
	struct fixture *fx = *state;
	struct config old, new;
	char name[64] = "untouched";

	load_text(fx, "[log]\nlevel = info\n", &old);
	load_text(fx, "[log]\nlevel = debug\n", &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), 0);
	assert_string_equal(name, "untouched");
	config_free(&new);

	load_text(fx, "[log]\nformat = json\n[server]\nshutdown_timeout = 1s\n"
	    "[api]\napi_key_file = /etc/keys\n", &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), 0);
	config_free(&new);

	/* The same configuration, written differently, needs nothing. */
	load_text(fx, "[store]\nbusy_timeout = 5000ms\n[api]\nmax_body_size = 1024K\n"
	    "unix_socket_mode = 660\n", &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), 0);
	config_free(&new);
	config_free(&old);
}

static void
test_config_check_reload_names_first_restart_option(void **state)
{
	struct fixture *fx = *state;
	struct config old, new;
	char name[64];

	load_text(fx, "[log]\nlevel = info\n", &old);
	load_text(fx, "[store]\nsynchronous = normal\n[log]\nlevel = debug\n", &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), -1);
	assert_string_equal(name, "store.synchronous");
	config_free(&new);

	load_text(fx, "[store]\nsynchronous = normal\n[api]\nunix_socket = /run/a.sock\n",
	    &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), -1);
	assert_string_equal(name, "api.unix_socket");
	config_free(&new);

	load_text(fx, "[server]\nstate_dir = /elsewhere\n", &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), -1);
	assert_string_equal(name, "server.state_dir");
	config_free(&new);
	config_free(&old);
}

static void
test_config_committed_example_is_generated_and_parses_to_defaults(void **state)
{
	struct config example, defaults;
	const char *top = getenv("PUSHRELAY_TOP_SRCDIR");
	char path[PATH_MAX], err[512];
	char *committed, *generated;
	size_t committed_len, generated_len;

	(void)state;
	if (top == NULL)
		skip();
	snprintf(path, sizeof path, "%s/pushrelay.conf.example", top);
	committed = read_file(path, &committed_len);
	assert_non_null(committed);
	generated = capture(config_write_example, &generated_len);
	assert_string_equal(committed, generated);
	assert_int_equal(committed_len, generated_len);
	free(generated);
	free(committed);

	setenv("STATE_DIRECTORY", "/var/lib/pushrelay", 1);
	assert_int_equal(config_load(&example, path, err, sizeof err), 0);
	assert_int_equal(config_load(&defaults, NULL, err, sizeof err), 0);
	assert_configs_equal(&example, &defaults);
	assert_defaults(&example, "/var/lib/pushrelay");
	config_free(&example);
	config_free(&defaults);
}

static void
test_config_example_with_every_option_uncommented_gives_defaults(void **state)
{
	struct fixture *fx = *state;
	struct config example, defaults;
	char *text, *line, *next, *out;
	size_t len, options = 0;
	char err[512];

	text = capture(config_write_example, &len);
	out = calloc(1, len + 1);
	assert_non_null(out);
	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		next = next != NULL ? next + 1 : line + strlen(line);
		/* Named sections come last, commented out with their header. */
		if (strncmp(line, "#[", 2) == 0)
			break;
		/* "#key = value" lines are options; "# text" lines are comments. */
		if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z') {
			line++;
			options++;
		}
		strncat(out, line, next - line);
	}
	assert_int_equal(options, OPTION_COUNT);

	load_text(fx, out, &example);
	assert_int_equal(config_load(&defaults, NULL, err, sizeof err), 0);
	assert_configs_equal(&example, &defaults);
	config_free(&example);
	config_free(&defaults);
	free(out);
	free(text);
}

static void
test_config_man_lists_every_option_with_default(void **state)
{
	char *man, *p;
	size_t len, tagged = 0;

	(void)state;
	man = capture(config_write_man, &len);
	for (p = man; (p = strstr(p, ".TP\n")) != NULL; p++)
		tagged++;
	assert_int_equal(tagged, OPTION_COUNT + APNS_OPTION_COUNT + FCM_OPTION_COUNT);
	assert_non_null(strstr(man, ".SS [server]\n.TP\n\\fBstate_dir\\fR =\n"));
	assert_non_null(strstr(man, ".SS [api]\n.TP\n\\fBlisten\\fR = \\fI127.0.0.1:8470\\fR\n"));
	assert_non_null(strstr(man, ".TP\n\\fBmax_body_size\\fR = \\fI1M\\fR\n"
	    "Largest request body accepted; a larger one gets 413 payload_too_large.\n"
	    ".br\nsize, 1K to 64M; needs a restart.\n"));
	assert_non_null(strstr(man, ".SS [log]\n"));
	/* No line may start with a roff control character other than our requests. */
	for (p = man; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (*p == '.')
			assert_true(strncmp(p, ".SS ", 4) == 0 || strncmp(p, ".TP\n", 4) == 0 ||
			    strncmp(p, ".br\n", 4) == 0);
		assert_true(*p != '\'');
	}
	free(man);
}

static void
test_config_named_app_sections_fill_their_own_structs(void **state)
{
	struct fixture *fx = *state;
	struct config config;
	const struct config_apns_app *apns;
	const struct config_fcm_app *fcm;

	load_text(fx, "[apns \"com.example.chat\"]\nkey_file = /etc/k.p8\nkey_id = ABC123DEFG\n"
	    "team_id = TEAM123456\nsandbox_url = https://127.0.0.1:8443\nconnections = 4\n"
	    "[apns \"com.example.other\"]\nauth = certificate\npkcs12_file = /etc/c.p12\n"
	    "topic = com.example.other.voip\n"
	    "production_url = https://api.development.push.apple.com:2197\n"
	    "[fcm \"my-project\"]\nservice_account_file = /etc/sa.json\n"
	    "proxy = proxy.corp.example:3128\n",
	    &config);
	assert_int_equal(config.apns_app_count, 2);
	assert_int_equal(config.fcm_app_count, 1);
	apns = config_apns_app_find(&config, "com.example.chat");
	assert_non_null(apns);
	assert_string_equal(apns->topic, "com.example.chat");
	assert_int_equal(apns->auth, CONFIG_APNS_AUTH_TOKEN);
	assert_string_equal(apns->key_file, "/etc/k.p8");
	assert_string_equal(apns->key_id, "ABC123DEFG");
	assert_string_equal(apns->team_id, "TEAM123456");
	assert_string_equal(apns->production_url, "https://api.push.apple.com");
	assert_string_equal(apns->sandbox_url, "https://127.0.0.1:8443");
	assert_int_equal(apns->connections, 4);
	assert_int_equal(apns->token_refresh_ms, 40 * 60 * 1000);
	apns = config_apns_app_find(&config, "com.example.other");
	assert_int_equal(apns->auth, CONFIG_APNS_AUTH_CERTIFICATE);
	assert_string_equal(apns->topic, "com.example.other.voip");
	assert_string_equal(apns->pkcs12_file, "/etc/c.p12");
	assert_null(config_apns_app_find(&config, "com.unknown"));
	fcm = config_fcm_app_find(&config, "my-project");
	assert_non_null(fcm);
	assert_string_equal(fcm->service_account_file, "/etc/sa.json");
	assert_string_equal(fcm->url, "https://fcm.googleapis.com");
	assert_string_equal(fcm->proxy, "proxy.corp.example:3128");
	assert_int_equal(fcm->connections, 12);	/* the default */
	config_free(&config);
}

static void
test_config_named_app_sections_report_errors(void **state)
{
	struct fixture *fx = *state;

	assert_load_error(fx, "[apns \"a\"]\nkey_file = /k\n",
	    ": [apns \"a\"] token auth needs key_file, key_id and team_id");
	assert_load_error(fx, "[apns \"a\"]\nauth = certificate\ncertificate_file = /c\n",
	    ": [apns \"a\"] certificate auth needs certificate_file and "
	    "certificate_key_file, or pkcs12_file");
	assert_load_error(fx, "[fcm \"p\"]\nurl = https://fcm.googleapis.com\n",
	    ": [fcm \"p\"] needs service_account_file");
	assert_load_error(fx, "[fcm \"p\"]\nservice_account_file = /s\nurl = http://x\n",
	    ": [fcm \"p\"] url: must be https://host or https://host:port, without a path");
	assert_load_error(fx, "[apns \"a\"]\nkeyfile = /k\n", ":2: unknown key 'keyfile' in "
	    "[apns \"a\"]");
	assert_load_error(fx, "[apns \"a\"]\nkey_file = /k\nkey_file = /j\n",
	    ":3: [apns \"a\"] key_file: set twice, first on line 2");
	assert_load_error(fx, "[apns \"a\"]\n[apns \"a\"]\n",
	    ":2: [apns \"a\"] appears twice, first on line 1");
	assert_load_error(fx, "[apns \"\"]\n", ":1: [apns \"\"]: the name must be one non-empty "
	    "quoted string, as in [apns \"com.example.chat\"]");
	assert_load_error(fx, "[gcm \"a\"]\n", ":1: unknown section [gcm \"a\"]");
	assert_load_error(fx, "[fcm \"p\"]\nservice_account_file = /s\nurl = https://x/v1\n",
	    ": [fcm \"p\"] url: must be https://host or https://host:port, without a path");
	assert_load_error(fx, "[fcm \"p\"]\nservice_account_file = /s\nproxy = squid\n",
	    ": [fcm \"p\"] proxy: must be host:port, or http://user:password@host:port");
	assert_load_error(fx, "[fcm \"p\"]\nservice_account_file = /s\nproxy = a b:1\n",
	    ": [fcm \"p\"] proxy: must be host:port, or http://user:password@host:port");
	assert_load_error(fx, "[apns \"a\"]\nconnections = 0\n",
	    ":2: [apns \"a\"] connections: must be between 1 and 64");
}

/* Each provider URL is parsed once, at load: the parts the providers connect with. */
static void
test_config_urls_are_parsed_into_host_port_and_authority(void **state)
{
	struct fixture *fx = *state;
	struct config config;
	const struct config_apns_app *apns;
	const struct config_fcm_app *fcm;

	load_text(fx, "[apns \"a\"]\nkey_file = /k\nkey_id = K\nteam_id = T\n"
	    "sandbox_url = https://[::1]:8443\nproxy = [2001:db8::1]:3128\n"
	    "[apns \"b\"]\nkey_file = /k\nkey_id = K\nteam_id = T\n"
	    "production_url = HTTPS://Push.Example:443/\nsandbox_url = https://10.0.0.1:2197\n"
	    "[fcm \"p\"]\nservice_account_file = /s\nproxy = proxy.corp.example:3128\n"
	    "[delivery]\nfeedback_url = http://user:pw@hooks.example:8080/removed?k=1#x\n",
	    &config);
	apns = config_apns_app_find(&config, "a");
	assert_string_equal(apns->production_endpoint.scheme, "https");
	assert_string_equal(apns->production_endpoint.host, "api.push.apple.com");
	assert_int_equal(apns->production_endpoint.port, 443);
	assert_string_equal(apns->production_endpoint.authority, "api.push.apple.com");
	assert_string_equal(apns->sandbox_endpoint.host, "::1");
	assert_int_equal(apns->sandbox_endpoint.port, 8443);
	assert_string_equal(apns->sandbox_endpoint.authority, "[::1]:8443");
	assert_string_equal(apns->proxy_endpoint.scheme, "");
	assert_string_equal(apns->proxy_endpoint.host, "2001:db8::1");
	assert_int_equal(apns->proxy_endpoint.port, 3128);
	apns = config_apns_app_find(&config, "b");
	/* The default port is left out of :authority, as a browser leaves it out. */
	assert_string_equal(apns->production_endpoint.host, "Push.Example");
	assert_int_equal(apns->production_endpoint.port, 443);
	assert_string_equal(apns->production_endpoint.authority, "Push.Example");
	assert_string_equal(apns->sandbox_endpoint.host, "10.0.0.1");
	assert_string_equal(apns->sandbox_endpoint.authority, "10.0.0.1:2197");
	assert_string_equal(apns->proxy_endpoint.host, "");	/* none */
	fcm = config_fcm_app_find(&config, "p");
	assert_string_equal(fcm->endpoint.host, "fcm.googleapis.com");
	assert_int_equal(fcm->endpoint.port, 443);
	assert_string_equal(fcm->endpoint.authority, "fcm.googleapis.com");
	assert_string_equal(fcm->proxy_endpoint.host, "proxy.corp.example");
	assert_int_equal(fcm->proxy_endpoint.port, 3128);
	/* The webhook's URL is kept as written: libcurl is given it whole. */
	assert_string_equal(config.feedback_url,
	    "http://user:pw@hooks.example:8080/removed?k=1#x");
	config_free(&config);
}

/* A URL that is not what its option needs is refused at load, naming the option. */
static void
test_config_bad_urls_are_errors_naming_the_option(void **state)
{
	struct fixture *fx = *state;
	static const char *const origins[] = {
		"api.push.apple.com",		/* no scheme */
		"https://",			/* no host */
		"https://a b",			/* not a host name */
		"https://x:0",			/* port 0 */
		"https://x:65536",
		"https://x?q=1",		/* a query */
		"https://x#top",		/* a fragment */
		"https://user@x",		/* a user */
		"https://[fe80::1%25eth0]:1",	/* an IPv6 zone */
		"ftp://x",
		"http://x",
		"https://x/3/device",		/* a path */
	};
	/* http://, and credentials before the host, are allowed (see the proxy test). */
	static const char *const proxies[] = {
		"squid", "https://proxy:3128", "proxy:3128/x", "socks5://proxy:1080", "proxy:0",
		"a b:1", "[::1]", "http://proxy", ":secret@proxy:3128", "us%0d%0aer@proxy:3128",
	};
	const char *expected = ": [delivery] feedback_url: must be an http:// or https:// URL";
	char text[256];

	for (size_t i = 0; i < sizeof origins / sizeof origins[0]; i++) {
		snprintf(text, sizeof text, "[apns \"a\"]\nkey_file = /k\nkey_id = K\n"
		    "team_id = T\nsandbox_url = %s\n", origins[i]);
		assert_load_error(fx, text, ": [apns \"a\"] sandbox_url: must be https://host "
		    "or https://host:port, without a path");
		snprintf(text, sizeof text, "[fcm \"p\"]\nservice_account_file = /s\n"
		    "url = %s\n", origins[i]);
		assert_load_error(fx, text, ": [fcm \"p\"] url: must be https://host or "
		    "https://host:port, without a path");
	}
	for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) {
		snprintf(text, sizeof text, "[apns \"a\"]\nkey_file = /k\nkey_id = K\n"
		    "team_id = T\nproxy = %s\n", proxies[i]);
		assert_load_error(fx, text, ": [apns \"a\"] proxy: must be host:port, or "
		    "http://user:password@host:port");
	}
	assert_load_error(fx, "[delivery]\nfeedback_url = ftp://hooks.example/x\n", expected);
	assert_load_error(fx, "[delivery]\nfeedback_url = hooks.example/x\n", expected);
	assert_load_error(fx, "[delivery]\nfeedback_url = https://\n", expected);
}

/* The kinds of config_url_parse(), as the FCM token URI uses one of them. */
static void
test_config_url_parse_kinds(void **state)
{
	struct config_url url;

	(void)state;
	assert_int_equal(config_url_parse(&url, "https://oauth2.googleapis.com/token",
	    CONFIG_URL_HTTPS), 0);
	assert_string_equal(url.host, "oauth2.googleapis.com");
	assert_int_equal(url.port, 443);
	assert_int_equal(config_url_parse(&url, "http://127.0.0.1:9/token",
	    CONFIG_URL_HTTPS), -1);
	assert_string_equal(url.host, "");	/* zeroed on error */
	assert_int_equal(config_url_parse(&url, "http://127.0.0.1/token", CONFIG_URL_HTTP),
	    0);
	assert_string_equal(url.scheme, "http");
	assert_int_equal(url.port, 80);
	assert_string_equal(url.authority, "127.0.0.1");
	assert_int_equal(config_url_parse(&url, "https://x/token", CONFIG_URL_ORIGIN), -1);
	assert_int_equal(config_url_parse(&url, NULL, CONFIG_URL_ORIGIN), -1);
	assert_string_equal(config_url_expected(CONFIG_URL_HTTPS), "an https:// URL");
	assert_string_equal(config_url_expected(CONFIG_URL_PROXY),
	    "host:port, or http://user:password@host:port");
	/* A proxy: its credentials decoded, apart from the host it connects to. */
	assert_int_equal(config_url_parse(&url, "http://relay:p%40ss%3Aw0rd@proxy.corp:3128",
	    CONFIG_URL_PROXY), 0);
	assert_string_equal(url.host, "proxy.corp");
	assert_int_equal(url.port, 3128);
	assert_string_equal(url.authority, "proxy.corp:3128");
	assert_string_equal(url.user, "relay");
	assert_string_equal(url.password, "p@ss:w0rd");
	assert_int_equal(config_url_parse(&url, "relay@[2001:db8::1]:3128", CONFIG_URL_PROXY), 0);
	assert_string_equal(url.host, "2001:db8::1");
	assert_string_equal(url.user, "relay");
	assert_string_equal(url.password, "");
	assert_int_equal(config_url_parse(&url, "proxy:3128", CONFIG_URL_PROXY), 0);
	assert_string_equal(url.user, "");
	assert_int_equal(url.from_environment, 0);
}

/*
 * Without a proxy option, https_proxy (or HTTPS_PROXY) of the environment is the
 * proxy, unless no_proxy (or NO_PROXY) names the endpoint's host.
 */
static void
test_config_proxy_from_the_environment_unless_no_proxy(void **state)
{
	struct fixture *fx = *state;
	struct config config;
	const char *text = "[apns \"a\"]\nkey_file = /k\nkey_id = K\nteam_id = T\n"
	    "production_url = https://api.push.apple.com\n"
	    "[fcm \"p\"]\nservice_account_file = /s\nurl = https://fcm.googleapis.com\n";
	static const struct {
		const char *no_proxy;
		int apns, fcm;		/* proxied? */
	} cases[] = {
		{ NULL, 1, 1 },
		{ "", 1, 1 },
		{ "*", 0, 0 },
		{ "localhost, .apple.com", 0, 1 },
		{ "googleapis.com", 1, 0 },
		{ "push.apple.co,fcm", 1, 1 },		/* neither a suffix nor the host */
		{ "API.PUSH.APPLE.COM", 0, 1 },
	};

	unsetenv("HTTPS_PROXY");
	unsetenv("NO_PROXY");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		setenv("https_proxy", "http://relay:s3cret@proxy.corp:3128", 1);
		if (cases[i].no_proxy != NULL)
			setenv("no_proxy", cases[i].no_proxy, 1);
		else
			unsetenv("no_proxy");
		load_text(fx, text, &config);
		assert_string_equal(config.apns_apps[0].proxy_endpoint.host,
		    cases[i].apns ? "proxy.corp" : "");
		assert_int_equal(config.apns_apps[0].proxy_endpoint.from_environment,
		    cases[i].apns);
		assert_string_equal(config.fcm_apps[0].proxy_endpoint.host,
		    cases[i].fcm ? "proxy.corp" : "");
		if (cases[i].fcm)
			assert_string_equal(config.fcm_apps[0].proxy_endpoint.password, "s3cret");
		config_free(&config);
	}
	/* The option wins over the environment. */
	unsetenv("no_proxy");
	load_text(fx, "[fcm \"p\"]\nservice_account_file = /s\nproxy = own:8080\n", &config);
	assert_string_equal(config.fcm_apps[0].proxy_endpoint.host, "own");
	assert_int_equal(config.fcm_apps[0].proxy_endpoint.from_environment, 0);
	config_free(&config);
	/* A broken https_proxy is an error that says where it came from. */
	setenv("https_proxy", "socks5://x:1", 1);
	assert_load_error(fx, "[fcm \"p\"]\nservice_account_file = /s\n", ": [fcm \"p\"] no "
	    "proxy set, and the environment's https_proxy is not host:port, or "
	    "http://user:password@host:port");
	unsetenv("https_proxy");
	(void)state;
}

static void
test_config_check_reload_allows_credentials_not_endpoints(void **state)
{
	struct fixture *fx = *state;
	struct config old, new;
	char name[128];
	const char *base = "[apns \"a\"]\nkey_id = K1\nteam_id = T1\nkey_file = /k1\n";

	load_text(fx, base, &old);
	load_text(fx, "[apns \"a\"]\nkey_id = K2\nteam_id = T2\nkey_file = /k2\n", &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), 0);
	config_free(&new);
	load_text(fx, "[apns \"a\"]\nkey_id = K1\nteam_id = T1\nkey_file = /k1\n"
	    "production_url = https://127.0.0.1:9\n", &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), -1);
	assert_string_equal(name, "apns \"a\".production_url");
	config_free(&new);
	load_text(fx, "[apns \"b\"]\nkey_id = K1\nteam_id = T1\nkey_file = /k1\n", &new);
	assert_int_equal(config_check_reload(&old, &new, name, sizeof name), -1);
	assert_string_equal(name, "the [apns] sections");
	config_free(&new);
	config_free(&old);
}

/* The error quotes the file: bytes that are not UTF-8 are replaced, for the log. */
static void
test_config_error_quoting_bytes_that_are_not_utf8_is_utf8(void **state)
{
	assert_load_error(*state, "[api]\nlisten = 127.0.0.1:1\n\xff\xc3nknown = 1\n",
	    ":3: unknown key '\xef\xbf\xbd\xef\xbf\xbdnknown' in [api]");
	assert_load_error(*state, "[api]\nlisten = 127.0.0.\xe2\x82:1\n",
	    ":2: [api] listen: '127.0.0.\xef\xbf\xbd\xef\xbf\xbd:1': "
	    "host must be an IPv4 address, [IPv6 address] or localhost");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_config_defaults_without_file_use_first_state_directory),
		T(test_config_defaults_without_state_directory_use_local_dir),
		T(test_config_empty_file_gives_defaults_and_records_path),
		T(test_config_file_sets_every_key),
		T(test_config_relative_state_dir_derives_relative_paths),
		T(test_config_crlf_and_comments_are_accepted),
		T(test_config_missing_file_is_cannot_open),
		T(test_config_unknown_section_is_error_at_its_header),
		T(test_config_key_before_any_section_is_error),
		T(test_config_unknown_key_is_error_without_suggestion),
		T(test_config_key_set_twice_is_error_naming_first_line),
		T(test_config_indented_continuation_is_error),
		T(test_config_empty_value_is_error_for_non_string_types),
		T(test_config_postgresql_backend_needs_a_connection_string_that_parses),
		T(test_config_out_of_range_values_name_the_bounds),
		T(test_config_boundary_values_are_accepted),
		T(test_config_bad_enum_names_allowed_values),
		T(test_config_malformed_values_are_errors),
		T(test_config_syntax_error_is_reported_before_a_later_bad_value),
		T(test_config_overlong_line_is_error_not_split),
		T(test_config_empty_listen_needs_unix_socket),
		T(test_config_state_defaults_to_memory_with_the_pushrelay_prefix),
		T(test_config_state_redis_needs_a_redis_address_and_a_prefix_without_braces),
		T(test_config_bad_listen_entries_are_errors),
		T(test_config_mode_accepts_with_and_without_leading_zero),
		T(test_config_unix_socket_longer_than_sun_path_is_error),
		T(test_config_log_levels_match_log_module),
		T(test_config_parse_duration_units_and_edges),
		T(test_config_parse_size_suffixes_and_edges),
		T(test_config_parse_mode_edges),
		T(test_config_parse_bool_spellings),
		T(test_config_split_hostport_parts),
		T(test_config_check_reload_names_changed_listen),
		T(test_config_check_reload_accepts_reloadable_changes),
		T(test_config_check_reload_names_first_restart_option),
		T(test_config_committed_example_is_generated_and_parses_to_defaults),
		T(test_config_example_with_every_option_uncommented_gives_defaults),
		T(test_config_man_lists_every_option_with_default),
		T(test_config_named_app_sections_fill_their_own_structs),
		T(test_config_named_app_sections_report_errors),
		T(test_config_check_reload_allows_credentials_not_endpoints),
		T(test_config_urls_are_parsed_into_host_port_and_authority),
		T(test_config_bad_urls_are_errors_naming_the_option),
		T(test_config_url_parse_kinds),
		T(test_config_proxy_from_the_environment_unless_no_proxy),
		T(test_config_error_quoting_bytes_that_are_not_utf8_is_utf8),
#undef T
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
