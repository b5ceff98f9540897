/*
 * The configuration: one INI file read with inih, described by one table of options
 * (section, key, type, default, bounds, reloadable, help) that drives parsing,
 * validation, the example file and the man page.
 *
 * Unknown sections and keys, keys set twice, and values of the wrong type or out of
 * bounds are errors, reported as "FILE:LINE: [section] key: what is wrong".
 *
 * Loaded by daemon.c at start-up and on SIGHUP (reload), on the main thread;
 * the running modules get copies of their options.
 */
#ifndef PUSHRELAY_CONFIG_H
#define PUSHRELAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "store.h"

#define CONFIG_DEFAULT_PORT "8470"
#define CONFIG_STATE_PREFIX_MAX 64	/* [state] prefix, in bytes */

/*
 * A URL of the configuration, parsed once with libcurl's curl_url() when the file is
 * loaded (config_url_parse()), so that no provider splits a URL again. Fixed-size
 * fields: a config copied by value shares nothing and nothing needs freeing.
 */
#define CONFIG_URL_HOST_SIZE 256
#define CONFIG_URL_AUTHORITY_SIZE (CONFIG_URL_HOST_SIZE + 8)
#define CONFIG_URL_USER_SIZE 256

struct config_url {
	char scheme[8];			/* "https" or "http"; "" when there is none */
	char host[CONFIG_URL_HOST_SIZE];	/* to connect to: IPv6 without brackets */
	unsigned int port;		/* as written, else the scheme's default */
	char authority[CONFIG_URL_AUTHORITY_SIZE];	/* :authority and Host: host,
					 * [IPv6], and ":port" unless the default */
	/* A proxy's credentials from its URL, decoded; "" when none. Secrets. */
	char user[CONFIG_URL_USER_SIZE];
	char password[CONFIG_URL_USER_SIZE];
	int from_environment;		/* a proxy taken from https_proxy */
};

/* What config_url_parse() accepts. */
enum config_url_kind {
	CONFIG_URL_ORIGIN,	/* https://host[:port] and nothing more: APNs, FCM */
	CONFIG_URL_HTTPS,	/* https://host[:port]/any/path?query: an OAuth token URI */
	CONFIG_URL_HTTP,	/* the same with http:// too: the feedback webhook */
	CONFIG_URL_PROXY,	/* [http://][user[:password]@]host:port, the port required */
};

enum config_apns_auth {
	CONFIG_APNS_AUTH_TOKEN = 0,	/* ES256 provider tokens from a .p8 key */
	CONFIG_APNS_AUTH_CERTIFICATE,	/* a TLS client certificate per app */
};

/* One [apns "APP_ID"] section: an iOS app, by the app_id its devices register with. */
struct config_apns_app {
	char *name;			/* the section's name: the app_id */
	int line;			/* its header's line in the file, for messages */
	char *topic;			/* apns-topic; resolved: never NULL */
	enum config_apns_auth auth;
	char *key_file;			/* token auth: the .p8 key */
	char *key_id;
	char *team_id;
	char *certificate_file;		/* certificate auth: PEM certificate ... */
	char *certificate_key_file;	/* ... and its key, or */
	char *pkcs12_file;		/* a .p12 bundle ... */
	char *pkcs12_password_file;	/* ... and a file holding its password */
	char *production_url;		/* https://host[:port] */
	char *sandbox_url;
	char *ca_file;			/* NULL: the system's CA store */
	char *proxy;			/* HTTP CONNECT proxy host:port, NULL for none */
	struct config_url production_endpoint;	/* production_url, parsed */
	struct config_url sandbox_endpoint;	/* sandbox_url, parsed */
	struct config_url proxy_endpoint;	/* proxy, parsed; host "" for none */
	int connections;		/* at most, opened as load needs them */
	int64_t connection_idle_ms;	/* a connection idle that long closes, but one */
	int64_t token_refresh_ms;
	int64_t request_timeout_ms;
};

/* One [fcm "APP_ID"] section: a Firebase project, by the app_id devices register with. */
struct config_fcm_app {
	char *name;
	int line;			/* its header's line in the file, for messages */
	char *service_account_file;	/* Google service-account JSON */
	char *url;			/* https://host[:port] of the FCM v1 API */
	char *ca_file;
	char *proxy;
	struct config_url endpoint;	/* url, parsed */
	struct config_url proxy_endpoint;	/* proxy, parsed; host "" for none */
	int connections;		/* at most, opened as load needs them */
	int64_t connection_idle_ms;	/* a connection idle that long closes, but one */
	int64_t request_timeout_ms;
};

struct config {
	char *path;			/* the file read, NULL for embedded defaults */

	/* [server] */
	char *state_dir;		/* resolved: never empty after config_load */
	int64_t shutdown_timeout_ms;

	/* [api] */
	char **listen;			/* "host:port" ("[v6]:port"); port 0 = any free port */
	size_t listen_count;
	char *unix_socket;		/* NULL when none */
	unsigned int unix_socket_mode;
	char *api_key_file;		/* resolved: never empty after config_load */
	int api_key_file_is_default;	/* generated on first start when missing */
	size_t max_body_size;
	int64_t request_timeout_ms;
	int64_t header_timeout_ms;
	int max_connections;
	int max_connections_per_peer;
	int metrics_public;
	int api_access_log;		/* GET /metrics without an API key */

	/* [store] */
	char *store_backend;
	char *store_path;		/* resolved: never empty after config_load */
	char *store_postgresql;		/* libpq connection string; NULL when empty */
	enum store_sync store_sync;
	int64_t store_busy_timeout_ms;
	size_t store_cache_size;	/* bytes per connection */
	size_t store_checkpoint_size;	/* WAL bytes that trigger a checkpoint */

	/* [delivery] */
	int delivery_queue_size;
	int delivery_max_attempts;
	int delivery_apns_environment_fallback;
	int64_t delivery_retry_initial_ms;
	int64_t delivery_retry_max_ms;
	int64_t delivery_max_age_ms;
	int64_t push_retention_ms;
	char *feedback_url;		/* NULL: no feedback webhook */
	int feedback_max_attempts;
	int64_t feedback_timeout_ms;

	/* [redis]: the connection the Redis sources (and a redis [state]) share */
	char *redis_address;		/* host:port */
	char *redis_username;		/* NULL: none (AUTH password only, or no AUTH) */
	char *redis_password_file;	/* NULL: no AUTH */
	int redis_db;
	int64_t redis_connect_timeout_ms;
	int64_t redis_reconnect_max_ms;

	/* [pubsub] */
	int pubsub_enabled;
	char *pubsub_pattern;		/* PSUBSCRIBE pattern; the room is what * matched */

	/* [streams] */
	int streams_enabled;
	char *streams_keys;		/* stream keys, separated by spaces */
	char *streams_group;
	char *streams_consumer;		/* NULL: host name and process id */
	int streams_batch;
	int64_t streams_block_ms;
	int64_t streams_claim_idle_ms;

	/* [events]: POST /v1/events */
	int events_enabled;
	int events_max_batch;

	/* [ably]: POST /v1/ingest/ably */
	int ably_enabled;
	char *ably_keys_file;		/* NULL: signatures are not checked */

	/* [rooms] */
	int64_t presence_grace_ms;
	int64_t presence_ttl_ms;
	size_t presence_max;
	int implicit_membership;
	int64_t coalesce_window_ms;
	int64_t dedupe_window_ms;
	int recipient_rate_limit;	/* notifications per recipient per minute; 0: none */
	size_t router_queue_size;	/* events being routed, at most */

	/* [state]: where the room state lives */
	char *state_backend;		/* "memory" or "redis" */
	char *state_prefix;		/* of its keys in Redis */

	/* [log] */
	enum log_level log_level;
	enum log_format log_format;

	/* [apns "APP_ID"] and [fcm "APP_ID"] sections, in file order */
	struct config_apns_app *apns_apps;
	size_t apns_app_count;
	struct config_fcm_app *fcm_apps;
	size_t fcm_app_count;
};

/*
 * Load a configuration: the embedded defaults, then the file at path (NULL: defaults
 * only), then derived paths (state_dir defaults to $STATE_DIRECTORY when systemd sets
 * it, else ./pushrelay-state; api_key_file to STATE_DIR/api-keys; store path to
 * STATE_DIR/pushrelay.db). Returns 0, or -1 with err set; on error config holds nothing.
 */
int config_load(struct config *config, const char *path, char *err, size_t errlen);
void config_free(struct config *config);

/*
 * After a reload: 0 if new only differs from old in reloadable options, else -1 with
 * the first option that needs a restart written to name ("section.key").
 */
int config_check_reload(const struct config *old, const struct config *new, char *name,
    size_t namelen);

/* Write the fully commented example configuration, every option at its default. */
void config_write_example(FILE *out);

/* Write the options as roff for pushrelay.conf(5). */
void config_write_man(FILE *out);

/* The [apns "app_id"] / [fcm "app_id"] section for an app, or NULL. */
const struct config_apns_app *config_apns_app_find(const struct config *config,
    const char *app_id);
const struct config_fcm_app *config_fcm_app_find(const struct config *config,
    const char *app_id);

/*
 * Parse text as kind allows, with curl_url(), into url. Returns 0, or -1 if text is
 * not such a URL (a user name, a query or a fragment are allowed only in
 * CONFIG_URL_HTTPS and CONFIG_URL_HTTP URLs, port 0 never, IPv6 zones never); url is
 * zeroed then. Any thread.
 */
int config_url_parse(struct config_url *url, const char *text, enum config_url_kind kind);
/* What kind of URL is expected, for errors: "must be " and this. */
const char *config_url_expected(enum config_url_kind kind);

/*
 * Split "host:port" / "[v6]:port" into parts; 0 on success. The host must be an IPv4
 * address, a bracketed IPv6 address (written to host without brackets) or localhost,
 * the port 0 to 65535; -1 if not, or if host or port does not fit its buffer.
 */
int config_split_hostport(const char *hostport, char *host, size_t hostlen, char *port,
    size_t portlen);

/*
 * Parse one value as the configuration file spells it. Each returns 0, -1 if s is
 * malformed, or -2 if it is too large to represent (bounds are checked by the caller).
 *	bool:		yes/no, true/false, on/off, 1/0 (any case)
 *	duration:	a whole number with ms, s, m or h; a plain number is seconds
 *	size:		a whole number of bytes, or with K, M or G (1024-based)
 *	mode:		octal digits, the leading 0 optional ("0660" and "660" are equal)
 */
int config_parse_bool(const char *s, int *out);
int config_parse_duration(const char *s, int64_t *ms);
int config_parse_size(const char *s, int64_t *bytes);
int config_parse_mode(const char *s, unsigned int *mode);

#endif
