/*
 * The configuration file. One table describes every option (section, key, type,
 * default, bounds, reloadable, help: config_options.c) and drives the defaults,
 * parsing, checks, reload comparison, the example file and the man page, so an option
 * is added in one place. Here: reading a file with inih into the table's fields (one
 * value at a time through config_value.c), the named [apns "..."] and [fcm "..."]
 * sections, the checks across options (URLs through config_url.c), and reloads.
 */
#include "autoconf.h"

#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config_options.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

/* A named section met while parsing: where its instance is and what was set. */
struct config_named {
	const struct config_kind *kind;
	size_t index;			/* in the kind's array */
	char *section;			/* the header as written: apns "com.example" */
	int line;
	int *set_on;			/* by option index: the line it was set on, or 0 */
};

/* What the inih callbacks share while one file is parsed. */
struct config_parse {
	struct config *config;
	FILE *fp;
	char *line;			/* getline's buffer */
	size_t line_size;
	int lineno;			/* the line inih is handling: we hand it lines one by one */
	int indented;			/* that line starts with a blank */
	int read_errno;
	int *set_on;			/* by option index: the line it was set on, or 0 */
	const struct config_option *last;	/* the option set by the previous handler call */
	struct config_named *named;		/* named sections seen, in file order */
	size_t named_count;
	int error_line;			/* the first error's line, 0 for none */
	char error[CONFIG_ERROR_SIZE];
};

/* Set every option to the default written in the table. */
static void
config_set_defaults(struct config *config)
{
	char err[CONFIG_ERROR_SIZE];
	size_t i;

	for (i = 0; i < config_option_count; i++) {
		if (config_options[i].kind != NULL)
			continue;
		if (config_option_set(config, &config_options[i], config_options[i].default_value,
		    err, sizeof err) != 0)
			fatalx("bad default for %s.%s: %s", config_options[i].section,
			    config_options[i].key, err);
	}
}

/* The option for section and key, with its index in the table; NULL if none. */
static const struct config_option *
option_find(const char *section, const char *key, size_t *index)
{
	size_t i;

	for (i = 0; i < config_option_count; i++) {
		if (config_options[i].kind == NULL &&
		    strcmp(config_options[i].section, section) == 0 &&
		    strcmp(config_options[i].key, key) == 0) {
			*index = i;
			return &config_options[i];
		}
	}
	return NULL;
}

/* Keep the first error only, with the line being parsed. */
static void __attribute__((format(printf, 2, 3)))
parse_error(struct config_parse *parse, const char *fmt, ...)
{
	va_list ap;

	if (parse->error_line != 0)
		return;
	parse->error_line = parse->lineno;
	va_start(ap, fmt);
	vsnprintf(parse->error, sizeof parse->error, fmt, ap);
	va_end(ap);
}

/*
 * Split a named section header, KIND "NAME", into its kind and name; 0 if it is
 * one, -1 if it is not, -2 (with err) if the kind is known but the name is bad.
 */
static int
section_named(const char *section, const struct config_kind **kind, char *name,
    size_t namelen, char *err, size_t errlen)
{
	const char *quote = strchr(section, '"'), *end;
	size_t kind_len, len;

	if (quote == NULL || quote == section || quote[-1] != ' ')
		return -1;
	kind_len = (size_t)(quote - section - 1);
	for (size_t k = 0; config_kinds[k] != NULL; k++) {
		if (strlen(config_kinds[k]->name) != kind_len ||
		    strncmp(section, config_kinds[k]->name, kind_len) != 0)
			continue;
		end = strrchr(quote + 1, '"');
		len = end != NULL ? (size_t)(end - quote - 1) : 0;
		if (end == NULL || end[1] != '\0' || len == 0 || len >= namelen ||
		    memchr(quote + 1, '"', len) != NULL) {
			snprintf(err, errlen, "[%s]: the name must be one non-empty quoted string, "
			    "as in [%s \"%s\"]", section, config_kinds[k]->name,
			    config_kinds[k]->example_name);
			return -2;
		}
		for (size_t i = 0; i < len; i++) {
			if ((unsigned char)quote[1 + i] < 0x20 || quote[1 + i] == 0x7f) {
				snprintf(err, errlen, "[%s]: the name has a control character",
				    section);
				return -2;
			}
		}
		memcpy(name, quote + 1, len);
		name[len] = '\0';
		*kind = config_kinds[k];
		return 0;
	}
	return -1;
}

/* Does any option live in this plain section? */
static int
section_exists(const char *section)
{
	size_t i;

	for (i = 0; i < config_option_count; i++) {
		if (config_options[i].kind == NULL &&
		    strcmp(config_options[i].section, section) == 0)
			return 1;
	}
	return 0;
}

/* The array of a kind's instances, and its length, in a configuration. */
static char **
kind_array(struct config *config, const struct config_kind *kind)
{
	return (char **)(void *)((char *)config + kind->array_offset);
}

static size_t *
kind_count(struct config *config, const struct config_kind *kind)
{
	return (size_t *)(void *)((char *)config + kind->count_offset);
}

static void *
kind_instance(struct config *config, const struct config_kind *kind, size_t index)
{
	return *kind_array(config, kind) + index * kind->instance_size;
}

/* Add an instance with its name and its options' defaults. */
static size_t
kind_add(struct config *config, const struct config_kind *kind, const char *name)
{
	char err[CONFIG_ERROR_SIZE];
	size_t *count = kind_count(config, kind), index = *count;
	void *instance;

	*kind_array(config, kind) = xreallocarray(*kind_array(config, kind), index + 1,
	    kind->instance_size);
	(*count)++;
	instance = kind_instance(config, kind, index);
	memset(instance, 0, kind->instance_size);
	/* Every instance struct starts with its name. */
	*(char **)instance = xstrdup(name);
	for (size_t i = 0; i < config_option_count; i++) {
		if (config_options[i].kind != kind)
			continue;
		if (config_option_set(instance, &config_options[i], config_options[i].default_value,
		    err, sizeof err) != 0)
			fatalx("bad default for %s.%s: %s", kind->name, config_options[i].key,
			    err);
	}
	return index;
}

/* Free every instance of every kind. */
static void
kinds_free(struct config *config)
{
	for (size_t k = 0; config_kinds[k] != NULL; k++) {
		const struct config_kind *kind = config_kinds[k];
		for (size_t n = 0; n < *kind_count(config, kind); n++) {
			void *instance = kind_instance(config, kind, n);
			for (size_t i = 0; i < config_option_count; i++) {
				if (config_options[i].kind == kind)
					config_option_clear(instance, &config_options[i]);
			}
			free(*(char **)instance);
		}
		free(*kind_array(config, kind));
		*kind_array(config, kind) = NULL;
		*kind_count(config, kind) = 0;
	}
}

/* Open a named section at its header; errors go to the parse. */
static void
named_open(struct config_parse *parse, const char *section)
{
	const struct config_kind *kind;
	struct config_named *named;
	char name[256], err[CONFIG_ERROR_SIZE];
	int rc = section_named(section, &kind, name, sizeof name, err, sizeof err);

	if (rc == -1) {
		parse_error(parse, "unknown section [%s]", section);
		return;
	}
	if (rc == -2) {
		parse_error(parse, "%s", err);
		return;
	}
	for (size_t i = 0; i < parse->named_count; i++) {
		if (strcmp(parse->named[i].section, section) == 0) {
			parse_error(parse, "[%s] appears twice, first on line %d", section,
			    parse->named[i].line);
			return;
		}
		if (parse->named[i].kind == kind && strcmp(*(char **)kind_instance(parse->config,
		    kind, parse->named[i].index), name) == 0) {
			parse_error(parse, "[%s] names the same %s app as line %d", section,
			    kind->name, parse->named[i].line);
			return;
		}
	}
	parse->named = xreallocarray(parse->named, parse->named_count + 1,
	    sizeof *parse->named);
	named = &parse->named[parse->named_count++];
	memset(named, 0, sizeof *named);
	named->kind = kind;
	named->section = xstrdup(section);
	named->line = parse->lineno;
	named->set_on = xcalloc(config_option_count, sizeof *named->set_on);
	named->index = kind_add(parse->config, kind, name);
	*(int *)((char *)kind_instance(parse->config, kind, named->index) + kind->line_offset) =
	    parse->lineno;
}

/* The named section being parsed, if section is one. */
static struct config_named *
named_find(struct config_parse *parse, const char *section)
{
	for (size_t i = 0; i < parse->named_count; i++) {
		if (strcmp(parse->named[i].section, section) == 0)
			return &parse->named[i];
	}
	return NULL;
}


/*
 * Hand inih one line at a time. Counting lines here gives the handler the line
 * number that libinih 55 does not pass, so errors point at the right line even when a
 * syntax error (reported only through ini_parse's return) comes first. inih would
 * split a line longer than its buffer into two, so such a line is an error here.
 */
static char *
config_read_line(char *str, int num, void *stream)
{
	struct config_parse *parse = stream;
	const char *line, *end;
	ssize_t n;
	size_t len;

	if ((n = getline(&parse->line, &parse->line_size, parse->fp)) == -1) {
		if (ferror(parse->fp))
			parse->read_errno = errno;
		return NULL;
	}
	parse->lineno++;
	line = parse->line;
	if (parse->lineno == 1 && strncmp(line, "\xef\xbb\xbf", 3) == 0)
		line += 3;
	parse->indented = line[0] == ' ' || line[0] == '\t';

	len = n;
	if (len > 0 && parse->line[len - 1] == '\n')
		len--;
	if (len > 0 && parse->line[len - 1] == '\r')
		len--;
	if (num < 3 || len > (size_t)num - 3) {
		parse_error(parse, "line longer than %d characters", num - 3);
		snprintf(str, num, "\n");
		return str;
	}
	/* A header at the start of a line is always a section; empty ones count too. */
	if (line[0] == '[' && (end = strchr(line, ']')) != NULL) {
		len = end - line - 1;
		if (len < CONFIG_ERROR_SIZE / 2) {
			char section[CONFIG_ERROR_SIZE / 2];

			memcpy(section, line + 1, len);
			section[len] = '\0';
			if (!section_exists(section))
				named_open(parse, section);
		}
	}
	memcpy(str, parse->line, n + 1);
	return str;
}

/* inih's callback: one key = value. */
static int
config_handle(void *user, const char *section, const char *key, const char *value)
{
	struct config_parse *parse = user;
	const struct config_option *option;
	char err[CONFIG_ERROR_SIZE];
	size_t i;

	if (*section == '\0') {
		parse_error(parse, "key '%s' before any [section]", key);
		return 0;
	}
	if (!section_exists(section)) {
		struct config_named *named = named_find(parse, section);
		if (named == NULL) {
			/* An indented header reaches us only through its keys. */
			named_open(parse, section);
			if ((named = named_find(parse, section)) == NULL)
				return 0;
		}
		for (i = 0; i < config_option_count; i++) {
			if (config_options[i].kind == named->kind &&
			    strcmp(config_options[i].key, key) == 0)
				break;
		}
		if (i == config_option_count) {
			parse_error(parse, "unknown key '%s' in [%s]", key, section);
			return 0;
		}
		option = &config_options[i];
		if (named->set_on[i] != 0) {
			parse_error(parse, "[%s] %s: set twice, first on line %d", section, key,
			    named->set_on[i]);
			return 0;
		}
		named->set_on[i] = parse->lineno;
		parse->last = option;
		if (config_option_set(kind_instance(parse->config, named->kind, named->index), option,
		    value, err, sizeof err) != 0) {
			parse_error(parse, "[%s] %s: %s", section, key, err);
			return 0;
		}
		return 1;
	}
	if ((option = option_find(section, key, &i)) == NULL) {
		parse_error(parse, "unknown key '%s' in [%s]", key, section);
		return 0;
	}
	if (parse->set_on[i] != 0) {
		/* inih hands an indented line over as more of the previous value. */
		if (parse->indented && parse->last == option)
			parse_error(parse, "[%s] %s: continuation lines are not supported; "
			    "write the value on one line", section, key);
		else
			parse_error(parse, "[%s] %s: set twice, first on line %d", section, key,
			    parse->set_on[i]);
		return 0;
	}
	parse->set_on[i] = parse->lineno;
	parse->last = option;
	if (config_option_set(parse->config, option, value, err, sizeof err) != 0) {
		parse_error(parse, "[%s] %s: %s", section, key, err);
		return 0;
	}
	return 1;
}

/* Parse the file over the defaults already in config. */
static int
config_parse_file(struct config *config, const char *path, char *err, size_t errlen)
{
	struct config_parse parse;
	int result;

	memset(&parse, 0, sizeof parse);
	parse.config = config;
	if ((parse.fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	parse.set_on = xcalloc(config_option_count, sizeof *parse.set_on);
	result = ini_parse_stream(config_read_line, &parse, config_handle, &parse);
	fclose(parse.fp);
	free(parse.line);
	free(parse.set_on);
	for (size_t i = 0; i < parse.named_count; i++) {
		free(parse.named[i].section);
		free(parse.named[i].set_on);
	}
	free(parse.named);

	if (parse.read_errno != 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(parse.read_errno));
		return -1;
	}
	if (result < 0) {
		snprintf(err, errlen, "%s: cannot parse", path);
		return -1;
	}
	/* inih returns the first failing line: ours, or one it could not parse. */
	if (result > 0 && (parse.error_line == 0 || result < parse.error_line)) {
		snprintf(err, errlen, "%s:%d: syntax error: expected [section] or key = value",
		    path, result);
		return -1;
	}
	if (parse.error_line != 0) {
		snprintf(err, errlen, "%s:%d: %s", path, parse.error_line, parse.error);
		return -1;
	}
	return 0;
}

/* dir/name, without doubling a trailing slash. */
static char *
path_join(const char *dir, const char *name)
{
	size_t len = strlen(dir);

	if (len > 0 && dir[len - 1] == '/')
		return xasprintf("%s%s", dir, name);
	return xasprintf("%s/%s", dir, name);
}

/*
 * Parse the URL of option key in a named section into url; an optional one (proxy)
 * may be empty, which leaves url zeroed. 0, or -1 with err set.
 */
static int
parse_url(struct config_url *url, const char *text, enum config_url_kind kind,
    int optional, const char *kind_name, const char *name, const char *key,
    const char *prefix, const char *colon, char *err, size_t errlen)
{
	memset(url, 0, sizeof *url);
	if (optional && (text == NULL || *text == '\0'))
		return 0;
	if (config_url_parse(url, text, kind) != 0) {
		snprintf(err, errlen, "%s%s[%s \"%s\"] %s: must be %s", prefix, colon, kind_name,
		    name, key, config_url_expected(kind));
		return -1;
	}
	return 0;
}

/* Does a no_proxy list ("*", or hosts and domains, comma- or space-separated) name host? */
static int
no_proxy_matches(const char *list, const char *host)
{
	size_t hostlen = strlen(host);

	while (*list != '\0') {
		size_t len = strcspn(list, ", \t");
		const char *entry = list;

		list += len;
		list += strspn(list, ", \t");
		if (len == 1 && entry[0] == '*')
			return 1;
		if (len > 0 && entry[0] == '.') {
			entry++;
			len--;
		}
		if (len == 0 || len > hostlen)
			continue;
		/* The host itself, or a name under it (".example.com" or "example.com"). */
		if (strncasecmp(host + hostlen - len, entry, len) == 0 &&
		    (hostlen == len || host[hostlen - len - 1] == '.'))
			return 1;
	}
	return 0;
}

/*
 * The proxy of a section: its proxy option, else the environment's https_proxy (or
 * HTTPS_PROXY) unless no_proxy (or NO_PROXY) names host. 0, or -1 with err set.
 */
static int
parse_proxy(struct config_url *url, const char *text, const char *host, const char *kind_name,
    const char *name, const char *prefix, const char *colon, char *err, size_t errlen)
{
	const char *env, *no_proxy;

	if (text != NULL && *text != '\0')
		return parse_url(url, text, CONFIG_URL_PROXY, 1, kind_name, name, "proxy", prefix,
		    colon, err, errlen);
	memset(url, 0, sizeof *url);
	if ((env = getenv("https_proxy")) == NULL || *env == '\0')
		env = getenv("HTTPS_PROXY");
	if (env == NULL || *env == '\0')
		return 0;
	if ((no_proxy = getenv("no_proxy")) == NULL || *no_proxy == '\0')
		no_proxy = getenv("NO_PROXY");
	if (no_proxy != NULL && no_proxy_matches(no_proxy, host))
		return 0;
	if (config_url_parse(url, env, CONFIG_URL_PROXY) != 0) {
		snprintf(err, errlen, "%s%s[%s \"%s\"] no proxy set, and the environment's "
		    "https_proxy is not %s", prefix, colon, kind_name, name,
		    config_url_expected(CONFIG_URL_PROXY));
		return -1;
	}
	url->from_environment = 1;
	return 0;
}

/* Check an [apns] section's credentials and fill in its topic. */
static int
apns_app_resolve(struct config_apns_app *app, const char *prefix, const char *colon,
    char *err, size_t errlen)
{
	if (app->topic == NULL || *app->topic == '\0') {
		free(app->topic);
		app->topic = xstrdup(app->name);
	}
	if (app->auth == CONFIG_APNS_AUTH_TOKEN &&
	    (app->key_file == NULL || app->key_id == NULL || *app->key_id == '\0' ||
	    app->team_id == NULL || *app->team_id == '\0')) {
		snprintf(err, errlen, "%s%s[apns \"%s\"] token auth needs key_file, key_id and "
		    "team_id", prefix, colon, app->name);
		return -1;
	}
	if (app->auth == CONFIG_APNS_AUTH_CERTIFICATE && app->pkcs12_file == NULL &&
	    (app->certificate_file == NULL || app->certificate_key_file == NULL)) {
		snprintf(err, errlen, "%s%s[apns \"%s\"] certificate auth needs "
		    "certificate_file and certificate_key_file, or pkcs12_file", prefix, colon,
		    app->name);
		return -1;
	}
	if (parse_url(&app->production_endpoint, app->production_url, CONFIG_URL_ORIGIN, 0,
	    "apns", app->name, "production_url", prefix, colon, err, errlen) != 0 ||
	    parse_url(&app->sandbox_endpoint, app->sandbox_url, CONFIG_URL_ORIGIN, 0,
	    "apns", app->name, "sandbox_url", prefix, colon, err, errlen) != 0 ||
	    parse_proxy(&app->proxy_endpoint, app->proxy, app->production_endpoint.host, "apns",
	    app->name, prefix, colon, err, errlen) != 0)
		return -1;
	return 0;
}

const struct config_apns_app *
config_apns_app_find(const struct config *config, const char *app_id)
{
	for (size_t i = 0; i < config->apns_app_count; i++) {
		if (strcmp(config->apns_apps[i].name, app_id) == 0)
			return &config->apns_apps[i];
	}
	return NULL;
}

const struct config_fcm_app *
config_fcm_app_find(const struct config *config, const char *app_id)
{
	for (size_t i = 0; i < config->fcm_app_count; i++) {
		if (strcmp(config->fcm_apps[i].name, app_id) == 0)
			return &config->fcm_apps[i];
	}
	return NULL;
}

/* Fill in the derived paths and check what involves more than one option. */
static int
config_resolve(struct config *config, char *err, size_t errlen)
{
	struct config_url url;
	const char *env;
	const char *prefix = config->path != NULL ? config->path : "";
	const char *colon = config->path != NULL ? ": " : "";
	size_t len;

	if (config->state_dir == NULL) {
		env = getenv("STATE_DIRECTORY");
		len = env != NULL ? strcspn(env, ":") : 0;
		if (len > 0)
			config->state_dir = xstrndup(env, len);
		else
			config->state_dir = xstrdup("./pushrelay-state");
	}
	if (config->api_key_file == NULL) {
		config->api_key_file = path_join(config->state_dir, "api-keys");
		config->api_key_file_is_default = 1;
	} else
		config->api_key_file_is_default = 0;
	if (config->store_path == NULL)
		config->store_path = path_join(config->state_dir, "pushrelay.db");
	if (config->store_postgresql != NULL && *config->store_postgresql == '\0') {
		free(config->store_postgresql);
		config->store_postgresql = NULL;
	}
	if (strcmp(config->store_backend, "postgresql") == 0) {
		char why[256];

		if (config->store_postgresql == NULL) {
			snprintf(err, errlen, "%s%s[store] backend = postgresql needs postgresql "
			    "(a libpq connection string)", prefix, colon);
			return -1;
		}
		if (store_postgresql_conninfo_check(config->store_postgresql, why,
		    sizeof why) != 0) {
			snprintf(err, errlen, "%s%s[store] postgresql: %s", prefix, colon, why);
			return -1;
		}
	}

	for (size_t i = 0; i < config->apns_app_count; i++) {
		if (apns_app_resolve(&config->apns_apps[i], prefix, colon, err, errlen) != 0)
			return -1;
	}
	for (size_t i = 0; i < config->fcm_app_count; i++) {
		struct config_fcm_app *app = &config->fcm_apps[i];
		if (app->service_account_file == NULL) {
			snprintf(err, errlen, "%s%s[fcm \"%s\"] needs service_account_file", prefix,
			    colon, app->name);
			return -1;
		}
		if (parse_url(&app->endpoint, app->url, CONFIG_URL_ORIGIN, 0, "fcm", app->name,
		    "url", prefix, colon, err, errlen) != 0 ||
		    parse_proxy(&app->proxy_endpoint, app->proxy, app->endpoint.host, "fcm",
		    app->name, prefix, colon, err, errlen) != 0)
			return -1;
	}
	/* The webhook's URL goes to libcurl whole: checked here, nothing kept. */
	if (config->feedback_url != NULL && *config->feedback_url != '\0' &&
	    config_url_parse(&url, config->feedback_url, CONFIG_URL_HTTP) != 0) {
		snprintf(err, errlen, "%s%s[delivery] feedback_url: must be %s", prefix, colon,
		    config_url_expected(CONFIG_URL_HTTP));
		return -1;
	}
	/* Empty strings mean "none" for these. */
	{
		char **optional[] = { &config->feedback_url, &config->redis_username,
			&config->streams_consumer };
		for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++) {
			if (*optional[i] != NULL && **optional[i] == '\0') {
				free(*optional[i]);
				*optional[i] = NULL;
			}
		}
	}
	if (config->pubsub_enabled && strchr(config->pubsub_pattern, '*') == NULL) {
		snprintf(err, errlen, "%s%s[pubsub] pattern: must contain a * (the room id)",
		    prefix, colon);
		return -1;
	}
	if (config->streams_enabled && strspn(config->streams_keys, " ") ==
	    strlen(config->streams_keys)) {
		snprintf(err, errlen, "%s%s[streams] keys: names no stream", prefix, colon);
		return -1;
	}

	if (strcmp(config->state_backend, "redis") == 0) {
		if (config->redis_address == NULL || *config->redis_address == '\0') {
			snprintf(err, errlen, "%s%s[state] backend = redis needs [redis] address, "
			    "the Redis server the room state is kept in", prefix, colon);
			return -1;
		}
		if (strlen(config->state_prefix) > CONFIG_STATE_PREFIX_MAX ||
		    strpbrk(config->state_prefix, "{}") != NULL) {
			snprintf(err, errlen, "%s%s[state] prefix: must be at most %d bytes, "
			    "without { or }", prefix, colon, CONFIG_STATE_PREFIX_MAX);
			return -1;
		}
	}

	if (config->listen_count == 0 && config->unix_socket == NULL) {
		snprintf(err, errlen, "%s%sno listen address and no unix_socket: "
		    "the API would be unreachable", prefix, colon);
		return -1;
	}
	return 0;
}

/*
 * The error quotes the file, which need not be UTF-8, and may have been cut inside a
 * character: it goes to the log, so what is not UTF-8 is replaced.
 */
static void
config_error_sanitize(char *err, size_t errlen)
{
	char *copy;

	if (err == NULL || errlen == 0)
		return;
	copy = xstrndup(err, strnlen(err, errlen - 1));
	utf8_sanitize(err, errlen, copy, strlen(copy));
	free(copy);
}

/* Load the defaults, then the file, then the derived paths. */
int
config_load(struct config *config, const char *path, char *err, size_t errlen)
{
	struct config new;

	memset(&new, 0, sizeof new);
	config_set_defaults(&new);
	if (path != NULL) {
		new.path = xstrdup(path);
		if (config_parse_file(&new, path, err, errlen) != 0)
			goto fail;
	}
	if (config_resolve(&new, err, errlen) != 0)
		goto fail;
	*config = new;
	return 0;

fail:
	config_free(&new);
	memset(config, 0, sizeof *config);
	config_error_sanitize(err, errlen);
	return -1;
}

/* Free everything a loaded configuration holds; a zeroed one is fine too. */
void
config_free(struct config *config)
{
	size_t i;

	for (i = 0; i < config_option_count; i++) {
		if (config_options[i].kind == NULL)
			config_option_clear(config, &config_options[i]);
	}
	kinds_free(config);
	free(config->path);
	memset(config, 0, sizeof *config);
}

/* Name the first option that differs and cannot change without a restart. */
int
config_check_reload(const struct config *old, const struct config *new, char *name,
    size_t namelen)
{
	const struct config_option *option;
	size_t i;

	for (i = 0; i < config_option_count; i++) {
		option = &config_options[i];
		if (option->kind != NULL || option->reloadable || config_option_equal(old, new, option))
			continue;
		snprintf(name, namelen, "%s.%s", option->section, option->key);
		return -1;
	}
	/* Apps are added and removed with a restart; their credentials reload. */
	for (size_t k = 0; config_kinds[k] != NULL; k++) {
		const struct config_kind *kind = config_kinds[k];
		struct config *o = (struct config *)old, *n = (struct config *)new;
		size_t count = *kind_count(o, kind);

		if (count != *kind_count(n, kind)) {
			snprintf(name, namelen, "the [%s] sections", kind->name);
			return -1;
		}
		for (size_t j = 0; j < count; j++) {
			const void *a = kind_instance(o, kind, j), *b = kind_instance(n, kind, j);
			if (strcmp(*(char *const *)a, *(char *const *)b) != 0) {
				snprintf(name, namelen, "the [%s] sections", kind->name);
				return -1;
			}
			for (i = 0; i < config_option_count; i++) {
				option = &config_options[i];
				if (option->kind != kind || option->reloadable ||
				    config_option_equal(a, b, option))
					continue;
				snprintf(name, namelen, "%s \"%s\".%s", kind->name,
				    *(char *const *)a, option->key);
				return -1;
			}
		}
	}
	return 0;
}

