/*
 * The configuration file. One table describes every option (section, key, type,
 * default, bounds, reloadable, help) and drives the defaults, parsing, checks, reload
 * comparison, the example file and the man page, so an option is added in one place.
 */
#include "autoconf.h"

#include "config.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "log.h"
#include "store.h"
#include "utf8.h"
#include "xmalloc.h"

#define CONFIG_ERROR_SIZE 512
#define CONFIG_HOST_SIZE 64
#define CONFIG_PORT_SIZE 8
#define CONFIG_BAD_HOST "host must be an IPv4 address, [IPv6 address] or localhost"

#define KIB ((int64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define SECOND ((int64_t)1000)
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)

#define CONFIG_UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

enum config_type {
	CONFIG_TYPE_STRING,	/* char *; values, when set, lists the allowed ones */
	CONFIG_TYPE_PATH,	/* char *, NULL when empty; max, when set, is the longest */
	CONFIG_TYPE_BOOL,	/* int, 0 or 1 */
	CONFIG_TYPE_INTEGER,	/* int, from min to max */
	CONFIG_TYPE_SIZE,	/* size_t bytes, from min to max */
	CONFIG_TYPE_DURATION,	/* int64_t milliseconds, from min to max */
	CONFIG_TYPE_MODE,	/* unsigned int permission bits, from min to max */
	CONFIG_TYPE_ENUM,	/* an enum set by parse_enum from one of values */
	CONFIG_TYPE_LIST,	/* char ** of host:port, its count at count_offset */
};

/*
 * A kind of named section, [NAME "instance"], of which a file may hold several: each
 * instance is a struct of instance_size in an array that struct config keeps.
 */
struct config_kind {
	const char *name;
	size_t instance_size;
	size_t array_offset;		/* the array's pointer in struct config */
	size_t count_offset;		/* its length in struct config */
	const char *example_name;	/* the instance the example file shows */
	const char *help;
};

struct config_option {
	const char *section;
	const char *key;
	enum config_type type;
	size_t offset;
	size_t size;
	size_t count_offset;
	const char *default_value;
	int64_t min;
	int64_t max;
	const char *const *values;
	int (*parse_enum)(const char *value, void *field);
	int reloadable;
	const char *help;
	const struct config_kind *kind;	/* NULL for a plain [section] */
};

#define FIELD(name) \
	.offset = offsetof(struct config, name), .size = sizeof(((struct config *)0)->name)

static int parse_log_level(const char *, void *);
static int parse_log_format(const char *, void *);
static int parse_store_sync(const char *, void *);

static const char *const config_store_backends[] = { "sqlite", NULL };
static const char *const config_store_syncs[] = { "full", "normal", NULL };
static const char *const config_log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const config_log_formats[] = { "text", "json", NULL };

static const struct config_kind config_kind_apns = {
	.name = "apns", .instance_size = sizeof(struct config_apns_app),
	.array_offset = offsetof(struct config, apns_apps),
	.count_offset = offsetof(struct config, apns_app_count),
	.example_name = "com.example.chat",
	.help = "An iOS app, one section per app: [apns \"APP_ID\"], where APP_ID is the\n"
	    "app_id its devices register with (usually the bundle id). Without any\n"
	    "[apns] section, APNs notifications go to the log instead (a dry run).",
};

static const struct config_kind config_kind_fcm = {
	.name = "fcm", .instance_size = sizeof(struct config_fcm_app),
	.array_offset = offsetof(struct config, fcm_apps),
	.count_offset = offsetof(struct config, fcm_app_count),
	.example_name = "example-project",
	.help = "A Firebase project, one section per project: [fcm \"APP_ID\"], where APP_ID\n"
	    "is the app_id its devices register with. Without any [fcm] section, FCM\n"
	    "notifications go to the log instead (a dry run).",
};

static const struct config_kind *const config_kinds[] = {
	&config_kind_apns, &config_kind_fcm, NULL
};

#define APNS(name) .kind = &config_kind_apns, .section = "apns", \
	.offset = offsetof(struct config_apns_app, name), \
	.size = sizeof(((struct config_apns_app *)0)->name)
#define FCM(name) .kind = &config_kind_fcm, .section = "fcm", \
	.offset = offsetof(struct config_fcm_app, name), \
	.size = sizeof(((struct config_fcm_app *)0)->name)

static int parse_apns_auth(const char *, void *);
static const char *const config_apns_auths[] = { "token", "certificate", NULL };

static const struct config_option config_options[] = {
	{ "server", "state_dir", CONFIG_TYPE_PATH, FIELD(state_dir),
	  .default_value = "",
	  .help = "Directory for the database and the generated API key file. Empty: the\n"
	      "first directory in $STATE_DIRECTORY (set by systemd's StateDirectory=),\n"
	      "else ./pushrelay-state. A relative path is taken from the working\n"
	      "directory." },
	{ "server", "shutdown_timeout", CONFIG_TYPE_DURATION, FIELD(shutdown_timeout_ms),
	  .default_value = "10s", .min = 0, .max = 10 * MINUTE, .reloadable = 1,
	  .help = "How long a shutdown lets requests and deliveries in flight finish\n"
	      "before it closes them." },

	{ "api", "listen", CONFIG_TYPE_LIST, FIELD(listen),
	  .count_offset = offsetof(struct config, listen_count),
	  .default_value = "127.0.0.1:" CONFIG_DEFAULT_PORT,
	  .help = "Addresses the HTTP API listens on, separated by spaces or commas: an\n"
	      "IPv4 address, an [IPv6] address or localhost, then :port. Port 0 takes\n"
	      "any free port (the daemon logs the one it got). Empty: no TCP listener,\n"
	      "which needs unix_socket." },
	{ "api", "unix_socket", CONFIG_TYPE_PATH, FIELD(unix_socket),
	  .default_value = "", .max = CONFIG_UNIX_PATH_MAX,
	  .help = "Also serve the API on this unix socket. Empty: no unix socket." },
	{ "api", "unix_socket_mode", CONFIG_TYPE_MODE, FIELD(unix_socket_mode),
	  .default_value = "0660", .min = 0, .max = 0777,
	  .help = "Permission bits of the unix socket." },
	{ "api", "api_key_file", CONFIG_TYPE_PATH, FIELD(api_key_file),
	  .default_value = "", .reloadable = 1,
	  .help = "File of API keys, one per line (# starts a comment), re-read on\n"
	      "reload. Empty: STATE_DIR/api-keys, created with a new key on first start." },
	{ "api", "max_body_size", CONFIG_TYPE_SIZE, FIELD(max_body_size),
	  .default_value = "1M", .min = KIB, .max = 64 * MIB,
	  .help = "Largest request body accepted; a larger one gets 413 payload_too_large." },
	{ "api", "request_timeout", CONFIG_TYPE_DURATION, FIELD(request_timeout_ms),
	  .default_value = "30s", .min = SECOND, .max = HOUR,
	  .help = "Deadline for one request: from its first byte until its body is in.\n"
	      "Trickling bytes does not extend it. An idle keep-alive connection is also\n"
	      "closed after this long." },
	{ "api", "header_timeout", CONFIG_TYPE_DURATION, FIELD(header_timeout_ms),
	  .default_value = "10s", .min = 100, .max = HOUR,
	  .help = "Deadline for a request's line and headers, from its first byte (at\n"
	      "most request_timeout)." },
	{ "api", "max_connections", CONFIG_TYPE_INTEGER, FIELD(max_connections),
	  .default_value = "4096", .min = 1, .max = 1000000,
	  .help = "Connections open at once; at the limit the listeners pause until one\n"
	      "closes. Keep it below the descriptor limit (LimitNOFILE in the unit)." },
	{ "api", "max_connections_per_peer", CONFIG_TYPE_INTEGER,
	  FIELD(max_connections_per_peer),
	  .default_value = "1024", .min = 1, .max = 1000000,
	  .help = "Connections open at once from one IP address; past it a new one is\n"
	      "closed at once. The unix socket counts only towards max_connections." },
	{ "api", "metrics_public", CONFIG_TYPE_BOOL, FIELD(metrics_public),
	  .default_value = "yes",
	  .help = "Serve GET /metrics without an API key (for a Prometheus scraper that\n"
	      "reaches the API's address). no: it needs a key, as every /v1 route does." },

	{ "store", "backend", CONFIG_TYPE_STRING, FIELD(store_backend),
	  .default_value = "sqlite", .values = config_store_backends,
	  .help = "Device registry backend." },
	{ "store", "path", CONFIG_TYPE_PATH, FIELD(store_path),
	  .default_value = "",
	  .help = "Database file. Empty: STATE_DIR/pushrelay.db." },
	{ "store", "synchronous", CONFIG_TYPE_ENUM, FIELD(store_sync),
	  .default_value = "full", .values = config_store_syncs,
	  .parse_enum = parse_store_sync,
	  .help = "full: every write is fsynced and survives a power loss. normal: writes\n"
	      "survive a crash of the daemon but not of the host, and are faster." },
	{ "store", "busy_timeout", CONFIG_TYPE_DURATION, FIELD(store_busy_timeout_ms),
	  .default_value = "5s", .min = 0, .max = MINUTE,
	  .help = "How long a write waits for a locked database before it fails." },
	{ "store", "cache_size", CONFIG_TYPE_SIZE, FIELD(store_cache_size),
	  .default_value = "32M", .min = MIB, .max = 64 * 1024 * MIB,
	  .help = "Database pages each of the daemon's three connections keeps in memory,\n"
	      "at most. The notified-devices index outgrows SQLite's own default (2 MiB)\n"
	      "at a few thousand notifications/s, and every write then reads it again." },
	{ "store", "checkpoint_size", CONFIG_TYPE_SIZE, FIELD(store_checkpoint_size),
	  .default_value = "32M", .min = MIB, .max = 64 * 1024 * MIB,
	  .help = "Write-ahead log size at which its pages are copied back into the\n"
	      "database. Larger: fewer checkpoints, each page copied once for many\n"
	      "writes; the log file grows to about this size." },

	{ "delivery", "queue_size", CONFIG_TYPE_INTEGER, FIELD(delivery_queue_size),
	  .default_value = "100000", .min = 100, .max = 10000000,
	  .help = "Notifications waiting to be sent, at most; past it, POST /v1/push\n"
	      "answers 503 with Retry-After." },
	{ "delivery", "max_attempts", CONFIG_TYPE_INTEGER, FIELD(delivery_max_attempts),
	  .default_value = "5", .min = 1, .max = 100, .reloadable = 1,
	  .help = "Sends of one notification to one device before it fails for good\n"
	      "(429, 5xx, timeouts and lost connections are retried)." },
	{ "delivery", "retry_initial", CONFIG_TYPE_DURATION, FIELD(delivery_retry_initial_ms),
	  .default_value = "1s", .min = 10, .max = HOUR, .reloadable = 1,
	  .help = "First retry delay; each retry doubles it, with full jitter, unless the\n"
	      "provider's Retry-After asks for longer." },
	{ "delivery", "retry_max", CONFIG_TYPE_DURATION, FIELD(delivery_retry_max_ms),
	  .default_value = "5m", .min = 10, .max = 24 * HOUR, .reloadable = 1,
	  .help = "Longest delay between two retries." },
	{ "delivery", "max_age", CONFIG_TYPE_DURATION, FIELD(delivery_max_age_ms),
	  .default_value = "1h", .min = SECOND, .max = 28 * 24 * HOUR, .reloadable = 1,
	  .help = "A notification not delivered this long after it was accepted fails\n"
	      "instead of being retried." },
	{ "delivery", "push_retention", CONFIG_TYPE_DURATION, FIELD(push_retention_ms),
	  .default_value = "1h", .min = MINUTE, .max = 30 * 24 * HOUR, .reloadable = 1,
	  .help = "How long GET /v1/push/{id} can report a finished push." },
	{ "delivery", "feedback_url", CONFIG_TYPE_STRING, FIELD(feedback_url),
	  .default_value = "", .reloadable = 1,
	  .help = "When a provider says a token is gone, POST a JSON event here (http or\n"
	      "https URL), so the chat backend can forget the device too. Empty: none." },
	{ "delivery", "feedback_max_attempts", CONFIG_TYPE_INTEGER,
	  FIELD(feedback_max_attempts),
	  .default_value = "8", .min = 1, .max = 100, .reloadable = 1,
	  .help = "Attempts to deliver one feedback event, with exponential backoff." },
	{ "delivery", "feedback_timeout", CONFIG_TYPE_DURATION, FIELD(feedback_timeout_ms),
	  .default_value = "10s", .min = 100, .max = 5 * MINUTE, .reloadable = 1,
	  .help = "Timeout of one feedback POST." },

	{ "redis", "address", CONFIG_TYPE_STRING, FIELD(redis_address),
	  .default_value = "127.0.0.1:6379",
	  .help = "The Redis server the [pubsub] and [streams] sources read, host:port." },
	{ "redis", "username", CONFIG_TYPE_STRING, FIELD(redis_username),
	  .default_value = "",
	  .help = "ACL user name for AUTH. Empty: AUTH with the password alone." },
	{ "redis", "password_file", CONFIG_TYPE_PATH, FIELD(redis_password_file),
	  .default_value = "", .reloadable = 1,
	  .help = "A file whose first line is the Redis password. Empty: no AUTH." },
	{ "redis", "db", CONFIG_TYPE_INTEGER, FIELD(redis_db),
	  .default_value = "0", .min = 0, .max = 1023,
	  .help = "Database number (SELECT) for stream keys." },
	{ "redis", "connect_timeout", CONFIG_TYPE_DURATION, FIELD(redis_connect_timeout_ms),
	  .default_value = "5s", .min = 100, .max = MINUTE,
	  .help = "Time to connect (and authenticate) before trying again." },
	{ "redis", "reconnect_max", CONFIG_TYPE_DURATION, FIELD(redis_reconnect_max_ms),
	  .default_value = "30s", .min = 100, .max = 10 * MINUTE,
	  .help = "Longest wait between reconnects; waits grow exponentially, with jitter." },

	{ "pubsub", "enabled", CONFIG_TYPE_BOOL, FIELD(pubsub_enabled),
	  .default_value = "no",
	  .help = "Follow rooms on Redis Pub/Sub. Pub/Sub cannot replay: what is published\n"
	      "while the daemon is down or disconnected is lost. Use [streams] for that." },
	{ "pubsub", "pattern", CONFIG_TYPE_STRING, FIELD(pubsub_pattern),
	  .default_value = "room:*",
	  .help = "PSUBSCRIBE pattern with one *; the part that * matched is the room id\n"
	      "of events that carry none." },

	{ "streams", "enabled", CONFIG_TYPE_BOOL, FIELD(streams_enabled),
	  .default_value = "no",
	  .help = "Follow rooms on Redis Streams, in a consumer group: an entry is\n"
	      "acknowledged once every notification it caused is sent or failed for\n"
	      "good, so a crash loses nothing." },
	{ "streams", "keys", CONFIG_TYPE_STRING, FIELD(streams_keys),
	  .default_value = "rooms",
	  .help = "Stream keys to read, separated by spaces. Each entry's field event\n"
	      "holds one event as JSON." },
	{ "streams", "group", CONFIG_TYPE_STRING, FIELD(streams_group),
	  .default_value = "pushrelay",
	  .help = "Consumer group (created if missing); instances in one group share the\n"
	      "work." },
	{ "streams", "consumer", CONFIG_TYPE_STRING, FIELD(streams_consumer),
	  .default_value = "",
	  .help = "This instance's consumer name. Empty: host name and process id. Keep it\n"
	      "stable across restarts to resume its own pending entries at once." },
	{ "streams", "batch", CONFIG_TYPE_INTEGER, FIELD(streams_batch),
	  .default_value = "100", .min = 1, .max = 10000,
	  .help = "Entries read per XREADGROUP." },
	{ "streams", "block", CONFIG_TYPE_DURATION, FIELD(streams_block_ms),
	  .default_value = "1s", .min = 10, .max = MINUTE,
	  .help = "How long one XREADGROUP waits for new entries." },
	{ "streams", "claim_idle", CONFIG_TYPE_DURATION, FIELD(streams_claim_idle_ms),
	  .default_value = "60s", .min = SECOND, .max = 24 * HOUR,
	  .help = "Entries pending this long in a consumer that stopped are claimed\n"
	      "(XAUTOCLAIM) by this one." },

	{ "events", "enabled", CONFIG_TYPE_BOOL, FIELD(events_enabled),
	  .default_value = "yes",
	  .help = "Take events over HTTP: POST /v1/events." },
	{ "events", "max_batch", CONFIG_TYPE_INTEGER, FIELD(events_max_batch),
	  .default_value = "1000", .min = 1, .max = 100000,
	  .help = "Events in one POST /v1/events, at most." },

	{ "ably", "enabled", CONFIG_TYPE_BOOL, FIELD(ably_enabled),
	  .default_value = "no",
	  .help = "Take Ably webhooks (batched, enveloped or not): POST /v1/ingest/ably." },
	{ "ably", "keys_file", CONFIG_TYPE_PATH, FIELD(ably_keys_file),
	  .default_value = "", .reloadable = 1,
	  .help = "Ably keys that sign webhooks, one appId.keyId:secret per line; with it,\n"
	      "unsigned or badly signed requests are refused. Empty: not checked." },

	{ "rooms", "presence_grace", CONFIG_TYPE_DURATION, FIELD(presence_grace_ms),
	  .default_value = "15s", .min = 0, .max = HOUR, .reloadable = 1,
	  .help = "A member who leaves and comes back within this time is not notified of\n"
	      "what was said meanwhile; one who does not is notified when it ends." },
	{ "rooms", "presence_ttl", CONFIG_TYPE_DURATION, FIELD(presence_ttl_ms),
	  .default_value = "24h", .min = 0, .max = 7 * 24 * HOUR, .reloadable = 1,
	  .help = "A connection not refreshed (presence.enter, .update or .sync) within\n"
	      "this time leaves, as if by presence.leave, so joins that never leave\n"
	      "do not pile up. 0: presence does not expire (presence_max still holds)." },
	{ "rooms", "presence_max", CONFIG_TYPE_SIZE, FIELD(presence_max),
	  .default_value = "1000000", .min = 100, .max = 100000000, .reloadable = 1,
	  .help = "Presence entries (connections, and members in their grace period)\n"
	      "kept, at most; past it the oldest is dropped and counted. Each takes\n"
	      "about 300 bytes with short ids: the default, some 300 MB." },
	{ "rooms", "implicit_membership", CONFIG_TYPE_BOOL, FIELD(implicit_membership),
	  .default_value = "yes", .reloadable = 1,
	  .help = "Entering presence or sending a message makes a client a member." },
	{ "rooms", "coalesce_window", CONFIG_TYPE_DURATION, FIELD(coalesce_window_ms),
	  .default_value = "2s", .min = 0, .max = 10 * MINUTE, .reloadable = 1,
	  .help = "Messages to the same away member in the same room within this time\n"
	      "become one notification (\"3 new messages\"). 0: one per message." },
	{ "rooms", "dedupe_window", CONFIG_TYPE_DURATION, FIELD(dedupe_window_ms),
	  .default_value = "1h", .min = SECOND, .max = 7 * 24 * HOUR, .reloadable = 1,
	  .help = "The same message id never notifies the same device twice within this\n"
	      "time (duplicate events, redelivered stream entries). Each notification is\n"
	      "remembered in the store that long: at high message rates, keep it short." },
	{ "rooms", "recipient_rate_limit", CONFIG_TYPE_INTEGER, FIELD(recipient_rate_limit),
	  .default_value = "0", .min = 0, .max = 100000, .reloadable = 1,
	  .help = "Notifications per recipient per minute, at most; what goes over is\n"
	      "counted and dropped. 0: no limit." },
	{ "rooms", "queue_size", CONFIG_TYPE_SIZE, FIELD(router_queue_size),
	  .default_value = "100000", .min = 100, .max = 10000000,
	  .help = "Events being routed at once, at most; beyond it Streams stop reading,\n"
	      "POST /v1/events answers 503 and Pub/Sub drops (counted)." },

	{ "log", "level", CONFIG_TYPE_ENUM, FIELD(log_level),
	  .default_value = "info", .values = config_log_levels,
	  .parse_enum = parse_log_level, .reloadable = 1,
	  .help = "Least severe messages logged." },
	{ "log", "format", CONFIG_TYPE_ENUM, FIELD(log_format),
	  .default_value = "text", .values = config_log_formats,
	  .parse_enum = parse_log_format, .reloadable = 1,
	  .help = "text: one key=value line per event; json: one JSON object per line." },

	{ APNS(topic), .key = "topic", .type = CONFIG_TYPE_STRING, .default_value = "",
	  .help = "apns-topic of every notification. Empty: the section's APP_ID." },
	{ APNS(auth), .key = "auth", .type = CONFIG_TYPE_ENUM, .default_value = "token",
	  .values = config_apns_auths, .parse_enum = parse_apns_auth,
	  .help = "token: ES256 provider tokens signed with key_file (the .p8 key),\n"
	      "key_id and team_id. certificate: a TLS client certificate, from\n"
	      "certificate_file and certificate_key_file, or from pkcs12_file." },
	{ APNS(key_file), .key = "key_file", .type = CONFIG_TYPE_PATH, .default_value = "",
	  .reloadable = 1, .help = "Token auth: the .p8 key file from Apple." },
	{ APNS(key_id), .key = "key_id", .type = CONFIG_TYPE_STRING, .default_value = "",
	  .reloadable = 1, .help = "Token auth: the key's 10-character Key ID." },
	{ APNS(team_id), .key = "team_id", .type = CONFIG_TYPE_STRING, .default_value = "",
	  .reloadable = 1, .help = "Token auth: the 10-character Team ID." },
	{ APNS(certificate_file), .key = "certificate_file", .type = CONFIG_TYPE_PATH,
	  .default_value = "", .reloadable = 1,
	  .help = "Certificate auth: the PEM certificate." },
	{ APNS(certificate_key_file), .key = "certificate_key_file", .type = CONFIG_TYPE_PATH,
	  .default_value = "", .reloadable = 1,
	  .help = "Certificate auth: the certificate's PEM private key." },
	{ APNS(pkcs12_file), .key = "pkcs12_file", .type = CONFIG_TYPE_PATH,
	  .default_value = "", .reloadable = 1,
	  .help = "Certificate auth: a .p12 bundle instead of the two PEM files." },
	{ APNS(pkcs12_password_file), .key = "pkcs12_password_file", .type = CONFIG_TYPE_PATH,
	  .default_value = "", .reloadable = 1,
	  .help = "A file whose first line is the .p12 password. Empty: no password." },
	{ APNS(production_url), .key = "production_url", .type = CONFIG_TYPE_STRING,
	  .default_value = "https://api.push.apple.com",
	  .help = "APNs for devices registered with environment production." },
	{ APNS(sandbox_url), .key = "sandbox_url", .type = CONFIG_TYPE_STRING,
	  .default_value = "https://api.sandbox.push.apple.com",
	  .help = "APNs for devices registered with environment sandbox." },
	{ APNS(ca_file), .key = "ca_file", .type = CONFIG_TYPE_PATH, .default_value = "",
	  .help = "CA certificates to verify APNs with. Empty: the system's store." },
	{ APNS(proxy), .key = "proxy", .type = CONFIG_TYPE_STRING, .default_value = "",
	  .help = "Reach APNs through this HTTP CONNECT proxy, host:port. Empty: directly." },
	{ APNS(connections), .key = "connections", .type = CONFIG_TYPE_INTEGER,
	  .default_value = "2", .min = 1, .max = 64,
	  .help = "HTTP/2 connections per environment, opened as load needs them." },
	{ APNS(token_refresh_ms), .key = "token_refresh", .type = CONFIG_TYPE_DURATION,
	  .default_value = "40m", .min = 20 * MINUTE, .max = 50 * MINUTE, .reloadable = 1,
	  .help = "Age at which a provider token is replaced (APNs refuses tokens older\n"
	      "than an hour and more than one new token per 20 minutes)." },
	{ APNS(request_timeout_ms), .key = "request_timeout", .type = CONFIG_TYPE_DURATION,
	  .default_value = "10s", .min = 100, .max = 5 * MINUTE,
	  .help = "Time for one send, waiting for a stream included, before it is retried." },

	{ FCM(service_account_file), .key = "service_account_file", .type = CONFIG_TYPE_PATH,
	  .default_value = "", .reloadable = 1,
	  .help = "The project's Google service-account JSON (project_id, client_email,\n"
	      "private_key, token_uri)." },
	{ FCM(url), .key = "url", .type = CONFIG_TYPE_STRING,
	  .default_value = "https://fcm.googleapis.com",
	  .help = "The FCM HTTP v1 API." },
	{ FCM(ca_file), .key = "ca_file", .type = CONFIG_TYPE_PATH, .default_value = "",
	  .help = "CA certificates to verify FCM and the token endpoint with. Empty: the\n"
	      "system's store." },
	{ FCM(proxy), .key = "proxy", .type = CONFIG_TYPE_STRING, .default_value = "",
	  .help = "Reach FCM through this HTTP CONNECT proxy, host:port. Empty: directly." },
	{ FCM(connections), .key = "connections", .type = CONFIG_TYPE_INTEGER,
	  .default_value = "2", .min = 1, .max = 64,
	  .help = "HTTP/2 connections, opened as load needs them (FCM allows about 100\n"
	      "streams on each)." },
	{ FCM(request_timeout_ms), .key = "request_timeout", .type = CONFIG_TYPE_DURATION,
	  .default_value = "10s", .min = 100, .max = 5 * MINUTE,
	  .help = "Time for one send, waiting for a stream included, before it is retried." },
};

#define CONFIG_OPTION_COUNT (sizeof config_options / sizeof config_options[0])

/* A named section met while parsing: where its instance is and what was set. */
struct config_named {
	const struct config_kind *kind;
	size_t index;			/* in the kind's array */
	char *section;			/* the header as written: apns "com.example" */
	int line;
	int set_on[CONFIG_OPTION_COUNT];
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
	int set_on[CONFIG_OPTION_COUNT];	/* the line each option was set on, 0 if not */
	const struct config_option *last;	/* the option set by the previous handler call */
	struct config_named *named;		/* named sections seen, in file order */
	size_t named_count;
	int error_line;			/* the first error's line, 0 for none */
	char error[CONFIG_ERROR_SIZE];
};

/* Enum setters for the table: each takes a name and writes its own enum type. */
static int
parse_log_level(const char *value, void *field)
{
	return log_level_from_string(value, field);
}

static int
parse_log_format(const char *value, void *field)
{
	return log_format_from_string(value, field);
}

static int
parse_apns_auth(const char *value, void *field)
{
	if (strcmp(value, "token") == 0)
		*(enum config_apns_auth *)field = CONFIG_APNS_AUTH_TOKEN;
	else if (strcmp(value, "certificate") == 0)
		*(enum config_apns_auth *)field = CONFIG_APNS_AUTH_CERTIFICATE;
	else
		return -1;
	return 0;
}

static int
parse_store_sync(const char *value, void *field)
{
	enum store_sync *sync = field;

	if (strcmp(value, "full") == 0)
		*sync = STORE_SYNC_FULL;
	else if (strcmp(value, "normal") == 0)
		*sync = STORE_SYNC_NORMAL;
	else
		return -1;
	return 0;
}

/* Read the decimal or octal digits at *s; -1 if none, else 0 with overflow flagged. */
static int
parse_digits(const char **s, int base, int64_t *out, int *overflow)
{
	const char *p = *s;
	int64_t n = 0;

	*overflow = 0;
	if (*p < '0' || *p >= '0' + base)
		return -1;
	for (; *p >= '0' && *p < '0' + base; p++) {
		if (n > (INT64_MAX - (*p - '0')) / base)
			*overflow = 1;
		else
			n = n * base + (*p - '0');
	}
	*s = p;
	*out = n;
	return 0;
}

/* Parse yes/no, true/false, on/off or 1/0 in any case. */
int
config_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Parse "250ms", "10s", "5m", "1h" or "10" (seconds) into milliseconds. */
int
config_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = {
		{ "", SECOND }, { "ms", 1 }, { "s", SECOND }, { "m", MINUTE }, { "h", HOUR },
	};
	int64_t n;
	int overflow;
	size_t i;

	if (parse_digits(&s, 10, &n, &overflow) != 0)
		return -1;
	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(s, units[i].suffix) != 0)
			continue;
		if (overflow || n > INT64_MAX / units[i].ms)
			return -2;
		*ms = n * units[i].ms;
		return 0;
	}
	return -1;
}

/* Parse "512", "64K", "8M" or "1G" (1024-based, either case) into bytes. */
int
config_parse_size(const char *s, int64_t *bytes)
{
	int64_t n, unit;
	int overflow;

	if (parse_digits(&s, 10, &n, &overflow) != 0)
		return -1;
	if (s[0] == '\0')
		unit = 1;
	else if (s[1] != '\0')
		return -1;
	else if (s[0] == 'K' || s[0] == 'k')
		unit = KIB;
	else if (s[0] == 'M' || s[0] == 'm')
		unit = MIB;
	else if (s[0] == 'G' || s[0] == 'g')
		unit = GIB;
	else
		return -1;
	if (overflow || n > INT64_MAX / unit)
		return -2;
	*bytes = n * unit;
	return 0;
}

/* Parse octal permission bits, with or without the leading 0. */
int
config_parse_mode(const char *s, unsigned int *mode)
{
	int64_t n;
	int overflow;

	if (parse_digits(&s, 8, &n, &overflow) != 0 || *s != '\0')
		return -1;
	if (overflow || n > UINT_MAX)
		return -2;
	*mode = (unsigned int)n;
	return 0;
}

/* Copy a part of a host:port if it fits. */
static int
copy_part(char *dst, size_t dstlen, const char *src, size_t len)
{
	if (len >= dstlen)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/* Split and check one host:port; NULL, or what is wrong with it. */
static const char *
hostport_split(const char *hostport, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	struct in6_addr addr6;
	struct in_addr addr4;
	const char *start, *end, *colon, *p;
	char buf[CONFIG_HOST_SIZE];
	int64_t n;
	int overflow;

	if (hostport[0] == '[') {
		start = hostport + 1;
		if ((end = strchr(start, ']')) == NULL)
			return "no closing ']'";
		if (end[1] == '\0')
			return "no port (write host:port)";
		if (end[1] != ':')
			return "expected ':' after ']'";
		colon = end + 1;
	} else {
		start = hostport;
		if ((colon = strrchr(hostport, ':')) == NULL)
			return "no port (write host:port)";
		end = colon;
		if (memchr(start, ':', end - start) != NULL)
			return "an IPv6 address needs brackets: [address]:port";
	}
	if (copy_part(buf, sizeof buf, start, end - start) != 0)
		return CONFIG_BAD_HOST;
	if (hostport[0] == '[') {
		if (inet_pton(AF_INET6, buf, &addr6) != 1)
			return CONFIG_BAD_HOST;
	} else if (strcmp(buf, "localhost") != 0 && inet_pton(AF_INET, buf, &addr4) != 1)
		return CONFIG_BAD_HOST;

	p = colon + 1;
	if (parse_digits(&p, 10, &n, &overflow) != 0 || *p != '\0' || overflow ||
	    n > 65535)
		return "port must be a number from 0 to 65535";

	if (copy_part(host, hostlen, buf, strlen(buf)) != 0 ||
	    copy_part(port, portlen, colon + 1, strlen(colon + 1)) != 0)
		return "too long";
	return NULL;
}

/* Split "host:port" / "[v6]:port" into parts; 0 on success. */
int
config_split_hostport(const char *hostport, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	return hostport_split(hostport, host, hostlen, port, portlen) == NULL ? 0 : -1;
}

/* Where an option lives in a configuration. */
static void *
option_field(void *base, const struct config_option *option)
{
	return (char *)base + option->offset;
}

static const void *
option_field_const(const void *base, const struct config_option *option)
{
	return (const char *)base + option->offset;
}

/* Where a list option keeps its length. */
static size_t *
option_count(void *base, const struct config_option *option)
{
	return (size_t *)(void *)((char *)base + option->count_offset);
}

/* Free a list of strings. */
static void
list_free(char **list, size_t count)
{
	size_t i;

	for (i = 0; i < count; i++)
		free(list[i]);
	free(list);
}

/* Free what an option holds and reset it. */
static void
option_clear(void *config, const struct config_option *option)
{
	char **string;
	char ***list;
	size_t *count;

	switch (option->type) {
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_PATH:
		string = option_field(config, option);
		free(*string);
		*string = NULL;
		break;
	case CONFIG_TYPE_LIST:
		list = option_field(config, option);
		count = option_count(config, option);
		list_free(*list, *count);
		*list = NULL;
		*count = 0;
		break;
	default:
		break;
	}
}

/* Write a size the way the file would: the largest unit that divides it. */
static void
format_size(int64_t bytes, char *buf, size_t len)
{
	if (bytes != 0 && bytes % GIB == 0)
		snprintf(buf, len, "%" PRId64 "G", bytes / GIB);
	else if (bytes != 0 && bytes % MIB == 0)
		snprintf(buf, len, "%" PRId64 "M", bytes / MIB);
	else if (bytes != 0 && bytes % KIB == 0)
		snprintf(buf, len, "%" PRId64 "K", bytes / KIB);
	else
		snprintf(buf, len, "%" PRId64, bytes);
}

/* Write a duration the way the file would: the largest unit that divides it. */
static void
format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0s");
	else if (ms % HOUR == 0)
		snprintf(buf, len, "%" PRId64 "h", ms / HOUR);
	else if (ms % MINUTE == 0)
		snprintf(buf, len, "%" PRId64 "m", ms / MINUTE);
	else if (ms % SECOND == 0)
		snprintf(buf, len, "%" PRId64 "s", ms / SECOND);
	else
		snprintf(buf, len, "%" PRId64 "ms", ms);
}

/* Write a bound in the units of its option's type. */
static void
format_bound(const struct config_option *option, int64_t value, char *buf, size_t len)
{
	switch (option->type) {
	case CONFIG_TYPE_SIZE:
		format_size(value, buf, len);
		break;
	case CONFIG_TYPE_DURATION:
		format_duration(value, buf, len);
		break;
	case CONFIG_TYPE_MODE:
		snprintf(buf, len, "%04" PRIo64, value);
		break;
	default:
		snprintf(buf, len, "%" PRId64, value);
		break;
	}
}

/* "must be between 1K and 64M", in the option's own units. */
static void
format_range_error(const struct config_option *option, char *err, size_t errlen)
{
	char min[32], max[32];

	format_bound(option, option->min, min, sizeof min);
	format_bound(option, option->max, max, sizeof max);
	snprintf(err, errlen, "must be between %s and %s", min, max);
}

/* "one of: full, normal". */
static void
format_values(const char *const *values, char *buf, size_t len)
{
	size_t used, i;

	used = snprintf(buf, len, "one of:");
	for (i = 0; values[i] != NULL && used < len; i++)
		used += snprintf(buf + used, len - used, "%s %s", i > 0 ? "," : "", values[i]);
}

/* Is value one of the NULL-terminated values? */
static int
values_contain(const char *const *values, const char *value)
{
	for (; *values != NULL; values++) {
		if (strcmp(*values, value) == 0)
			return 1;
	}
	return 0;
}

/* Parse a list of host:port separated by blanks or commas. */
static int
parse_list(const char *value, char ***out, size_t *out_count, char *err, size_t errlen)
{
	char host[CONFIG_HOST_SIZE], port[CONFIG_PORT_SIZE];
	char **list = NULL, *item;
	const char *why;
	size_t count = 0, len, i;

	for (;;) {
		value += strspn(value, " \t,");
		if (*value == '\0')
			break;
		len = strcspn(value, " \t,");
		item = xstrndup(value, len);
		value += len;
		if ((why = hostport_split(item, host, sizeof host, port, sizeof port)) != NULL)
			snprintf(err, errlen, "'%s': %s", item, why);
		for (i = 0; why == NULL && i < count; i++) {
			if (strcmp(list[i], item) == 0) {
				snprintf(err, errlen, "'%s' is listed twice", item);
				why = "twice";
			}
		}
		if (why != NULL) {
			free(item);
			list_free(list, count);
			return -1;
		}
		list = xreallocarray(list, count + 1, sizeof *list);
		list[count++] = item;
	}
	*out = list;
	*out_count = count;
	return 0;
}

/* Turn a parser's result into a message; 0 if the value was good. */
static int
check_parsed(const struct config_option *option, int result, int64_t n, const char *value,
    const char *what, char *err, size_t errlen)
{
	if (result == -1) {
		snprintf(err, errlen, "'%s' is not %s", value, what);
		return -1;
	}
	if (result == -2 || n < option->min || n > option->max) {
		format_range_error(option, err, errlen);
		return -1;
	}
	return 0;
}

/* Set one option from its text; on error, err says what is wrong and nothing changes. */
static int
option_set(void *config, const struct config_option *option, const char *value,
    char *err, size_t errlen)
{
	void *field = option_field(config, option);
	char values[128], **list, *end;
	unsigned int mode;
	size_t count;
	long long integer;
	int64_t n;
	int result, flag;

	if (*value == '\0' && option->type != CONFIG_TYPE_STRING &&
	    option->type != CONFIG_TYPE_PATH && option->type != CONFIG_TYPE_LIST) {
		snprintf(err, errlen, "empty value");
		return -1;
	}

	switch (option->type) {
	case CONFIG_TYPE_STRING:
		if (option->values != NULL && !values_contain(option->values, value)) {
			format_values(option->values, values, sizeof values);
			snprintf(err, errlen, "must be %s", values);
			return -1;
		}
		option_clear(config, option);
		*(char **)field = xstrdup(value);
		break;
	case CONFIG_TYPE_PATH:
		if (option->max != 0 && strlen(value) > (size_t)option->max) {
			snprintf(err, errlen, "must be at most %" PRId64 " bytes long",
			    option->max);
			return -1;
		}
		option_clear(config, option);
		*(char **)field = *value == '\0' ? NULL : xstrdup(value);
		break;
	case CONFIG_TYPE_BOOL:
		if (config_parse_bool(value, &flag) != 0) {
			snprintf(err, errlen, "must be one of: yes, no, true, false, on, off, 1, 0");
			return -1;
		}
		*(int *)field = flag;
		break;
	case CONFIG_TYPE_INTEGER:
		errno = 0;
		integer = strtoll(value, &end, 10);
		result = *end != '\0' || end == value ? -1 : errno == ERANGE ? -2 : 0;
		if (check_parsed(option, result, integer, value, "an integer", err, errlen) != 0)
			return -1;
		*(int *)field = (int)integer;
		break;
	case CONFIG_TYPE_SIZE:
		result = config_parse_size(value, &n);
		if (check_parsed(option, result, n, value,
		    "a size (a whole number of bytes, or with K, M or G)", err, errlen) != 0)
			return -1;
		*(size_t *)field = (size_t)n;
		break;
	case CONFIG_TYPE_DURATION:
		result = config_parse_duration(value, &n);
		if (check_parsed(option, result, n, value,
		    "a duration (a whole number with ms, s, m or h; alone, seconds)",
		    err, errlen) != 0)
			return -1;
		*(int64_t *)field = n;
		break;
	case CONFIG_TYPE_MODE:
		mode = 0;
		result = config_parse_mode(value, &mode);
		if (check_parsed(option, result, mode, value, "an octal mode such as 0660",
		    err, errlen) != 0)
			return -1;
		*(unsigned int *)field = mode;
		break;
	case CONFIG_TYPE_ENUM:
		if (!values_contain(option->values, value) ||
		    option->parse_enum(value, field) != 0) {
			format_values(option->values, values, sizeof values);
			snprintf(err, errlen, "must be %s", values);
			return -1;
		}
		break;
	case CONFIG_TYPE_LIST:
		if (parse_list(value, &list, &count, err, errlen) != 0)
			return -1;
		option_clear(config, option);
		*(char ***)field = list;
		*option_count(config, option) = count;
		break;
	}
	return 0;
}

/* Set every option to the default written in the table. */
static void
config_set_defaults(struct config *config)
{
	char err[CONFIG_ERROR_SIZE];
	size_t i;

	for (i = 0; i < CONFIG_OPTION_COUNT; i++) {
		if (config_options[i].kind != NULL)
			continue;
		if (option_set(config, &config_options[i], config_options[i].default_value,
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

	for (i = 0; i < CONFIG_OPTION_COUNT; i++) {
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

	for (i = 0; i < CONFIG_OPTION_COUNT; i++) {
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
	for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
		if (config_options[i].kind != kind)
			continue;
		if (option_set(instance, &config_options[i], config_options[i].default_value,
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
			for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
				if (config_options[i].kind == kind)
					option_clear(instance, &config_options[i]);
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
	named->index = kind_add(parse->config, kind, name);
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
		for (i = 0; i < CONFIG_OPTION_COUNT; i++) {
			if (config_options[i].kind == named->kind &&
			    strcmp(config_options[i].key, key) == 0)
				break;
		}
		if (i == CONFIG_OPTION_COUNT) {
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
		if (option_set(kind_instance(parse->config, named->kind, named->index), option,
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
	if (option_set(parse->config, option, value, err, sizeof err) != 0) {
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
	result = ini_parse_stream(config_read_line, &parse, config_handle, &parse);
	fclose(parse.fp);
	free(parse.line);
	for (size_t i = 0; i < parse.named_count; i++)
		free(parse.named[i].section);
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
	    parse_url(&app->proxy_endpoint, app->proxy, CONFIG_URL_HOSTPORT, 1, "apns",
	    app->name, "proxy", prefix, colon, err, errlen) != 0)
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
		    parse_url(&app->proxy_endpoint, app->proxy, CONFIG_URL_HOSTPORT, 1, "fcm",
		    app->name, "proxy", prefix, colon, err, errlen) != 0)
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

	for (i = 0; i < CONFIG_OPTION_COUNT; i++) {
		if (config_options[i].kind == NULL)
			option_clear(config, &config_options[i]);
	}
	kinds_free(config);
	free(config->path);
	memset(config, 0, sizeof *config);
}

/* Equal strings, where NULL only equals NULL. */
static int
string_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Do two configurations hold the same value for an option? */
static int
option_equal(const void *a, const void *b, const struct config_option *option)
{
	const void *fa = option_field_const(a, option), *fb = option_field_const(b, option);
	char *const *la, *const *lb;
	size_t count, i;

	switch (option->type) {
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_PATH:
		return string_equal(*(char *const *)fa, *(char *const *)fb);
	case CONFIG_TYPE_LIST:
		count = *(const size_t *)(const void *)((const char *)a + option->count_offset);
		if (count != *(const size_t *)(const void *)((const char *)b +
		    option->count_offset))
			return 0;
		la = *(char **const *)fa;
		lb = *(char **const *)fb;
		for (i = 0; i < count; i++) {
			if (strcmp(la[i], lb[i]) != 0)
				return 0;
		}
		return 1;
	default:
		return memcmp(fa, fb, option->size) == 0;
	}
}

/* Name the first option that differs and cannot change without a restart. */
int
config_check_reload(const struct config *old, const struct config *new, char *name,
    size_t namelen)
{
	const struct config_option *option;
	size_t i;

	for (i = 0; i < CONFIG_OPTION_COUNT; i++) {
		option = &config_options[i];
		if (option->kind != NULL || option->reloadable || option_equal(old, new, option))
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
			for (i = 0; i < CONFIG_OPTION_COUNT; i++) {
				option = &config_options[i];
				if (option->kind != kind || option->reloadable ||
				    option_equal(a, b, option))
					continue;
				snprintf(name, namelen, "%s \"%s\".%s", kind->name,
				    *(char *const *)a, option->key);
				return -1;
			}
		}
	}
	return 0;
}

/* "duration, 0s to 10m; reloadable": what the example and man page say of a type. */
static void
format_note(const struct config_option *option, char *buf, size_t len)
{
	char what[160], min[32], max[32];

	format_bound(option, option->min, min, sizeof min);
	format_bound(option, option->max, max, sizeof max);
	switch (option->type) {
	case CONFIG_TYPE_STRING:
		if (option->values != NULL)
			format_values(option->values, what, sizeof what);
		else
			snprintf(what, sizeof what, "string");
		break;
	case CONFIG_TYPE_PATH:
		if (option->max != 0)
			snprintf(what, sizeof what, "path, at most %" PRId64 " bytes",
			    option->max);
		else
			snprintf(what, sizeof what, "path");
		break;
	case CONFIG_TYPE_BOOL:
		snprintf(what, sizeof what, "yes or no");
		break;
	case CONFIG_TYPE_INTEGER:
		snprintf(what, sizeof what, "integer, %s to %s", min, max);
		break;
	case CONFIG_TYPE_SIZE:
		snprintf(what, sizeof what, "size, %s to %s", min, max);
		break;
	case CONFIG_TYPE_DURATION:
		snprintf(what, sizeof what, "duration, %s to %s", min, max);
		break;
	case CONFIG_TYPE_MODE:
		snprintf(what, sizeof what, "octal mode, %s to %s", min, max);
		break;
	case CONFIG_TYPE_ENUM:
		format_values(option->values, what, sizeof what);
		break;
	case CONFIG_TYPE_LIST:
		snprintf(what, sizeof what, "list of host:port");
		break;
	}
	snprintf(buf, len, "%s; %s", what,
	    option->reloadable ? "reloadable" : "needs a restart");
}

/* Write text as comment lines, one per line of it. */
static void
write_comment(FILE *out, const char *text)
{
	size_t len;

	while (*text != '\0') {
		len = strcspn(text, "\n");
		if (len == 0)
			fprintf(out, "#\n");
		else
			fprintf(out, "# %.*s\n", (int)len, text);
		text += len;
		if (*text == '\n')
			text++;
	}
}

static const char config_example_header[] =
    "pushrelay.conf: the configuration of pushrelayd, the push-notification relay.\n"
    "\n"
    "Every option is below, commented out at its default value: to change one,\n"
    "remove the leading '#' and edit the value. As shipped, this file sets nothing.\n"
    "\n"
    "A line is a [section] header, a key = value, or a comment starting with '#'\n"
    "or ';'; a ';' after a blank also starts a comment at the end of a line.\n"
    "Values are not quoted and fit on one line. Unknown sections and keys, keys\n"
    "set twice and bad values are errors, reported with the file and line.\n"
    "\n"
    "Durations are whole numbers with ms, s, m or h; a plain number is seconds.\n"
    "Sizes are whole numbers of bytes, or with K, M or G (1024-based).\n"
    "Options marked reloadable take effect on reload (SIGHUP); any other change\n"
    "needs a restart.\n";

/* Write the fully commented example configuration, every option at its default. */
void
config_write_example(FILE *out)
{
	const struct config_option *option;
	const char *section = NULL;
	char note[256];
	size_t i;

	write_comment(out, config_example_header);
	for (i = 0; i < CONFIG_OPTION_COUNT; i++) {
		option = &config_options[i];
		if (section == NULL || strcmp(section, option->section) != 0) {
			section = option->section;
			if (option->kind != NULL) {
				/* A named section is shown commented out, with a sample name. */
				fprintf(out, "\n");
				write_comment(out, option->kind->help);
				fprintf(out, "#[%s \"%s\"]\n", section, option->kind->example_name);
			} else
				fprintf(out, "\n[%s]\n", section);
		}
		format_note(option, note, sizeof note);
		fprintf(out, "\n");
		write_comment(out, option->help);
		write_comment(out, note);
		if (*option->default_value == '\0')
			fprintf(out, "#%s =\n", option->key);
		else
			fprintf(out, "#%s = %s\n", option->key, option->default_value);
	}
}

/* Write text for roff: backslashes escaped, no line starting with a control character. */
static void
write_roff(FILE *out, const char *text, int code)
{
	int line_start = 1;

	for (; *text != '\0'; text++) {
		if (line_start && (*text == '.' || *text == '\''))
			fputs("\\&", out);
		line_start = *text == '\n';
		if (*text == '\\')
			fputs("\\e", out);
		else if (*text == '-' && code)
			fputs("\\-", out);
		else
			fputc(*text, out);
	}
}

/* Write the options as roff for pushrelay.conf(5). */
void
config_write_man(FILE *out)
{
	const struct config_option *option;
	const char *section = NULL;
	char note[256];
	size_t i;

	for (i = 0; i < CONFIG_OPTION_COUNT; i++) {
		option = &config_options[i];
		if (section == NULL || strcmp(section, option->section) != 0) {
			section = option->section;
			if (option->kind != NULL) {
				fprintf(out, ".SS [%s \\(dqAPP_ID\\(dq]\n", section);
				write_roff(out, option->kind->help, 0);
				fprintf(out, "\n");
			} else
				fprintf(out, ".SS [%s]\n", section);
		}
		fprintf(out, ".TP\n\\fB");
		write_roff(out, option->key, 1);
		fprintf(out, "\\fR =");
		if (*option->default_value != '\0') {
			fprintf(out, " \\fI");
			write_roff(out, option->default_value, 1);
			fprintf(out, "\\fR");
		}
		fprintf(out, "\n");
		write_roff(out, option->help, 0);
		format_note(option, note, sizeof note);
		fprintf(out, "\n.br\n");
		write_roff(out, note, 0);
		fprintf(out, ".\n");
	}
}
