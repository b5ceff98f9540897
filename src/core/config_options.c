/*
 * The option table: every option of the configuration file with its type, default,
 * bounds, reload rule and help, in the order the example file lists them. It drives
 * the defaults, parsing and reload checks (config.c, config_value.c), and here the
 * example file (pushrelay.conf.example, packaging/pushrelay.conf) and the man page
 * (docs/pushrelay.conf.5): `make update-packaging-docs` rewrites them after a change.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_options.h"
#include "log.h"
#include "store.h"

#define CONFIG_UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

#define FIELD(name) \
	.offset = offsetof(struct config, name), .size = sizeof(((struct config *)0)->name)

static int parse_log_level(const char *, void *);
static int parse_log_format(const char *, void *);
static int parse_store_sync(const char *, void *);

static const char *const config_store_backends[] = { "sqlite", "postgresql", NULL };
static const char *const config_store_syncs[] = { "full", "normal", NULL };
static const char *const config_state_backends[] = { "memory", "redis", NULL };
static const char *const config_log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const config_log_formats[] = { "text", "json", NULL };

static const struct config_kind config_kind_apns = {
	.name = "apns", .instance_size = sizeof(struct config_apns_app),
	.array_offset = offsetof(struct config, apns_apps),
	.count_offset = offsetof(struct config, apns_app_count),
	.line_offset = offsetof(struct config_apns_app, line),
	.example_name = "com.example.chat",
	.help = "An iOS app, one section per app: [apns \"APP_ID\"], where APP_ID is the\n"
	    "app_id its devices register with (usually the bundle id). Without any\n"
	    "[apns] section, APNs notifications go to the log instead (a dry run).",
};

static const struct config_kind config_kind_fcm = {
	.name = "fcm", .instance_size = sizeof(struct config_fcm_app),
	.array_offset = offsetof(struct config, fcm_apps),
	.count_offset = offsetof(struct config, fcm_app_count),
	.line_offset = offsetof(struct config_fcm_app, line),
	.example_name = "example-project",
	.help = "A Firebase project, one section per project: [fcm \"APP_ID\"], where APP_ID\n"
	    "is the app_id its devices register with. Without any [fcm] section, FCM\n"
	    "notifications go to the log instead (a dry run).",
};

const struct config_kind *const config_kinds[] = {
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

const struct config_option config_options[] = {
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
	{ "api", "access_log", CONFIG_TYPE_BOOL, FIELD(api_access_log), .default_value = "yes",
	  .help = "A line per request at info level: method, route template (no ids),\n"
	      "status, duration, bytes and the API key's id (k- and 8 hex digits of its\n"
	      "SHA-256, never the key). Refused keys are logged with the peer either way,\n"
	      "10 a minute at most." },
	{ "api", "metrics_public", CONFIG_TYPE_BOOL, FIELD(metrics_public),
	  .default_value = "yes",
	  .help = "Serve GET /metrics without an API key (for a Prometheus scraper that\n"
	      "reaches the API's address). no: it needs a key, as every /v1 route does." },

	{ "store", "backend", CONFIG_TYPE_STRING, FIELD(store_backend),
	  .default_value = "sqlite", .values = config_store_backends,
	  .help = "Where the registry, the push ledger and the events outbox live. sqlite:\n"
	      "an embedded database file (path). postgresql: a PostgreSQL server\n"
	      "(postgresql), which several instances can share; see docs/scaling.md." },
	{ "store", "path", CONFIG_TYPE_PATH, FIELD(store_path),
	  .default_value = "",
	  .help = "sqlite: the database file. Empty: STATE_DIR/pushrelay.db." },
	{ "store", "postgresql", CONFIG_TYPE_STRING, FIELD(store_postgresql),
	  .default_value = "",
	  .help = "postgresql: a libpq connection string, \"host=db.example port=5432\n"
	      "dbname=pushrelay user=pushrelay\" or \"postgresql://...\". Keep the password\n"
	      "out of it: libpq reads it from passfile= (~/.pgpass); the log never shows\n"
	      "one. An instance holds four connections: one per store thread, and the\n"
	      "start-up one." },
	{ "store", "synchronous", CONFIG_TYPE_ENUM, FIELD(store_sync),
	  .default_value = "full", .values = config_store_syncs,
	  .parse_enum = parse_store_sync,
	  .help = "full: every write is fsynced and survives a power loss. normal: writes\n"
	      "survive a crash of the daemon but not of the host, and are faster.\n"
	      "postgresql: synchronous_commit on (full) or off (normal) for its sessions." },
	{ "store", "busy_timeout", CONFIG_TYPE_DURATION, FIELD(store_busy_timeout_ms),
	  .default_value = "5s", .min = 0, .max = MINUTE,
	  .help = "How long a write waits for a locked database (postgresql: a locked\n"
	      "row, as lock_timeout) before it fails." },
	{ "store", "cache_size", CONFIG_TYPE_SIZE, FIELD(store_cache_size),
	  .default_value = "32M", .min = MIB, .max = 64 * 1024 * MIB,
	  .help = "sqlite: database pages each of the daemon's three connections keeps in\n"
	      "memory, at most. The notified-devices index outgrows SQLite's own default\n"
	      "(2 MiB) "
	      "at a few thousand notifications/s, and every write then reads it again." },
	{ "store", "checkpoint_size", CONFIG_TYPE_SIZE, FIELD(store_checkpoint_size),
	  .default_value = "32M", .min = MIB, .max = 64 * 1024 * MIB,
	  .help = "sqlite: write-ahead log size at which its pages are copied back into the\n"
	      "database. Larger: fewer checkpoints, each page copied once for many\n"
	      "writes; the log file grows to about this size." },

	{ "delivery", "queue_size", CONFIG_TYPE_INTEGER, FIELD(delivery_queue_size),
	  .default_value = "100000", .min = 100, .max = 10000000,
	  .help = "Notifications waiting to be sent, at most; past it, POST /v1/push\n"
	      "answers 503 with Retry-After." },
	{ "delivery", "apns_environment_fallback", CONFIG_TYPE_BOOL,
	  FIELD(delivery_apns_environment_fallback), .default_value = "yes", .reloadable = 1,
	  .help = "An APNs token refused as BadDeviceToken in its environment (a\n"
	      "development build's token registered as production, or the reverse) is\n"
	      "tried once in the other; if that works, the device's environment is\n"
	      "corrected in the registry and logged. no: the device is removed at once." },
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
	  .help = "The Redis server the [pubsub] and [streams] sources read, and the one\n"
	      "[state] backend = redis keeps the room state in, host:port." },
	{ "redis", "username", CONFIG_TYPE_STRING, FIELD(redis_username),
	  .default_value = "",
	  .help = "ACL user name for AUTH. Empty: AUTH with the password alone." },
	{ "redis", "password_file", CONFIG_TYPE_PATH, FIELD(redis_password_file),
	  .default_value = "", .reloadable = 1,
	  .help = "A file whose first line is the Redis password. Empty: no AUTH." },
	{ "redis", "db", CONFIG_TYPE_INTEGER, FIELD(redis_db),
	  .default_value = "0", .min = 0, .max = 1023,
	  .help = "Database number (SELECT) for stream keys and the room state's keys." },
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

	{ "state", "backend", CONFIG_TYPE_STRING, FIELD(state_backend),
	  .default_value = "memory", .values = config_state_backends,
	  .help = "Where the room state lives: presence, unread counts, the duplicate\n"
	      "filter, coalescing windows, grace holds and notified marks. memory: in\n"
	      "this process (unread counts and marks written to the store). redis: in\n"
	      "the Redis of [redis] (address, credentials, db), shared by every instance\n"
	      "with the same prefix, so that several instances act as one. Give that\n"
	      "Redis appendonly persistence: held messages are acknowledged once Redis\n"
	      "has them (docs/state-redis.md)." },
	{ "state", "prefix", CONFIG_TYPE_STRING, FIELD(state_prefix),
	  .default_value = "pushrelay:",
	  .help = "Prefix of the room state's keys in Redis (backend = redis): instances\n"
	      "with the same prefix share their state. At most 64 bytes, without { or }:\n"
	      "the keys of a room carry the room in braces, as their hash tag." },

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
	  .help = "Reach APNs through this HTTP CONNECT proxy: host:port, or\n"
	      "http://user:password@host:port for a proxy that wants Basic credentials\n"
	      "(percent-encode what is not a letter or digit). Empty: the environment's\n"
	      "https_proxy, unless no_proxy names the production host (\"*\", hosts\n"
	      "and domains), else directly." },
	{ APNS(connections), .key = "connections", .type = CONFIG_TYPE_INTEGER,
	  .default_value = "16", .min = 1, .max = 64,
	  .help = "HTTP/2 connections per environment, at most: opened when requests wait\n"
	      "and every stream is busy. APNs allows 1000 streams on each; at a 150 ms\n"
	      "round trip one connection carries about 6,500 notifications/s, 16 about\n"
	      "100,000/s." },
	{ APNS(connection_idle_ms), .key = "connection_idle", .type = CONFIG_TYPE_DURATION,
	  .default_value = "5m", .min = 1000, .max = 24 * HOUR,
	  .help = "A connection without a request for this long is closed, all but one\n"
	      "per environment (APNs wants connections kept, not reopened per burst)." },
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
	  .help = "Reach FCM and its token endpoint through this HTTP CONNECT proxy:\n"
	      "host:port, or http://user:password@host:port. Empty: the environment's\n"
	      "https_proxy, unless no_proxy names the FCM host, else directly." },
	{ FCM(connections), .key = "connections", .type = CONFIG_TYPE_INTEGER,
	  .default_value = "12", .min = 1, .max = 64,
	  .help = "HTTP/2 connections, at most: opened when requests wait and every\n"
	      "stream is busy. FCM allows about 100 streams on each; at an 80 ms round\n"
	      "trip one connection carries about 1,250 messages/s, 12 about 15,000/s,\n"
	      "past the 10,000/s of a project's default quota." },
	{ FCM(connection_idle_ms), .key = "connection_idle", .type = CONFIG_TYPE_DURATION,
	  .default_value = "5m", .min = 1000, .max = 24 * HOUR,
	  .help = "A connection without a request for this long is closed, all but one." },
	{ FCM(request_timeout_ms), .key = "request_timeout", .type = CONFIG_TYPE_DURATION,
	  .default_value = "10s", .min = 100, .max = 5 * MINUTE,
	  .help = "Time for one send, waiting for a stream included, before it is retried." },
};

const size_t config_option_count = sizeof config_options / sizeof config_options[0];

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

/* "duration, 0s to 10m; reloadable": what the example and man page say of a type. */
static void
format_note(const struct config_option *option, char *buf, size_t len)
{
	char what[160], min[32], max[32];

	config_format_bound(option, option->min, min, sizeof min);
	config_format_bound(option, option->max, max, sizeof max);
	switch (option->type) {
	case CONFIG_TYPE_STRING:
		if (option->values != NULL)
			config_format_values(option->values, what, sizeof what);
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
		config_format_values(option->values, what, sizeof what);
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
	for (i = 0; i < config_option_count; i++) {
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

	for (i = 0; i < config_option_count; i++) {
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

