/*
 * Mock APNs: the HTTP/2 provider API (POST /3/device/<token>) with token authentication,
 * answering with the real status codes and {"reason":...} bodies.
 *
 * Checks run in the order of pushy's MockApnsServer, the first failure answers:
 *	DuplicateHeaders (a regular header sent twice)
 *	apns-id not a UUID (8-4-4-4-12 hex, either case) -> 400 BadMessageId
 *	method not POST -> 405 MethodNotAllowed
 *	apns-topic missing -> 400 MissingTopic; not a --topic (or one of them plus a known
 *	    suffix such as .voip) -> 400 TopicDisallowed
 *	apns-collapse-id over 64 bytes -> 400 BadCollapseId
 *	apns-priority not 10, 5 or 1 -> 400 BadPriority
 *	apns-push-type not a known type -> 400 InvalidPushType
 *	apns-expiration not a number -> 400 BadExpirationDate
 *	path /3/device/ with no token -> 400 MissingDeviceToken; not hex -> 400 BadDeviceToken;
 *	    any other path -> 404 BadPath
 *	token registered to another topic by a rule {"token":T,"topic":X}
 *	    -> 400 DeviceTokenNotForTopic
 *	with --auth-key: no authorization -> 403 MissingProviderToken; not "bearer <JWT>",
 *	    malformed, not ES256, DER signature, bad signature, kid != --key-id,
 *	    iss != --team-id, iat not an integer or more than 5 minutes ahead
 *	    -> 403 InvalidProviderToken; iat older than --jwt-max-age -> 403
 *	    ExpiredProviderToken; a new token on a connection within --token-update-interval
 *	    of the last -> 429 TooManyProviderTokenUpdates
 *	empty body -> 400 PayloadEmpty; over 4096 bytes (5120 for voip) -> 413 PayloadTooLarge
 *	body not a JSON object with an "aps" object -> 400 BadPayload. Not an Apple reason:
 *	    Apple documents no JSON check, but a relay that sends broken JSON has a bug the
 *	    tests should see.
 *	the first matching rule (by device token)
 *	200 with apns-id (the request's, or a new UUID).
 *
 * Verified tokens are cached by their text, so a connection reusing its JWT costs a hash
 * lookup. With --token-auth-initial-streams N a new connection advertises N concurrent
 * streams until a request passes authentication, then SETTINGS raise it to --max-streams
 * ("APNs allows only one stream until you post a request with a valid authentication
 * token"). Without --auth-key no provider token is checked, as with certificate auth.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "log.h"
#include "mock_h2.h"
#include "xmalloc.h"

#define APNS_PAYLOAD_MAX 4096
#define APNS_PAYLOAD_MAX_VOIP 5120
#define APNS_COLLAPSE_ID_MAX 64
#define APNS_JWT_CACHE_MAX 65536
/* iat further ahead than this is a client clock (or milliseconds) bug. */
#define APNS_JWT_FUTURE_SLACK 300

struct apns {
	const char *team_id;
	const char *key_id;
	const char *auth_key_path;
	struct jwt_key *auth_key;
	const char **topics;
	size_t ntopics;
	int64_t jwt_max_age;
	int64_t token_update_interval;
	struct mock_table *jwt_cache;
};

/* What verifying a token once taught us; the clock checks are redone every time. */
struct apns_token {
	const char *invalid;		/* NULL: signature, kid and iss are good */
	int64_t iat;
};

static const char *const apns_push_types[] = {
	"alert", "background", "location", "voip", "complication", "fileprovider", "mdm",
	"liveactivity", "pushtotalk", NULL,
};

static const char *const apns_topic_suffixes[] = {
	"", ".voip", ".complication", ".pushkit.fileprovider", ".location-query",
	".push-type.liveactivity", ".voip-ptt", NULL,
};

/* Answer with an APNs error body, {"reason":...} (+ "timestamp" for 410). */
static void
apns_error(struct mock_stream *stream, int status, const char *reason, int64_t timestamp,
    const struct mock_rule *rule)
{
	json_t *json;
	char *body;
	size_t len;

	json = json_pack("{s:s}", "reason", reason);
	if (json == NULL)
		fatalx("out of memory");
	if (status == 410)
		json_object_set_new(json, "timestamp", json_integer(timestamp));
	body = mock_json_dump_decref(json, &len);
	mock_stream_finish(stream, status, reason, "application/json", body, len, rule);
}

/* Is s a UUID in 8-4-4-4-12 hex form? */
static int
apns_is_uuid(const char *s)
{
	size_t i;

	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]))
			return 0;
	}
	return s[36] == '\0';
}

/* Is the topic one of --topic, possibly with a push-type suffix? No --topic allows all. */
static int
apns_topic_allowed(const struct apns *apns, const char *topic)
{
	const char *const *suffix;
	size_t i, len, topic_len = strlen(topic);

	if (apns->ntopics == 0)
		return 1;
	for (i = 0; i < apns->ntopics; i++) {
		len = strlen(apns->topics[i]);
		if (topic_len < len || memcmp(topic, apns->topics[i], len) != 0)
			continue;
		for (suffix = apns_topic_suffixes; *suffix != NULL; suffix++) {
			if (strcmp(topic + len, *suffix) == 0)
				return 1;
		}
	}
	return 0;
}

/* Is s a non-empty run of decimal digits? */
static int
apns_is_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return 0;
	}
	return 1;
}

/* Verify a token the slow way; the verdict goes into the cache. */
static struct apns_token *
apns_token_verify(struct mock_server *server, struct apns *apns, const char *jwt)
{
	struct apns_token *token = xcalloc(1, sizeof *token);
	json_t *header = NULL, *claims = NULL, *iat;
	const char *kid, *iss;
	char redacted[LOG_REDACT_SIZE];
	int error;

	server->stats.jwt_verifications++;
	error = jwt_verify(jwt, apns->auth_key, JWT_ALG_ES256, &header, &claims);
	if (error != 0) {
		token->invalid = "InvalidProviderToken";
		log_info("provider token refused", "token", log_redact(jwt, redacted),
		    "error", jwt_strerror(error), NULL);
		return token;
	}
	kid = json_string_value(json_object_get(header, "kid"));
	iss = json_string_value(json_object_get(claims, "iss"));
	iat = json_object_get(claims, "iat");
	if (kid == NULL || strcmp(kid, apns->key_id) != 0)
		token->invalid = "InvalidProviderToken";
	else if (iss == NULL || strcmp(iss, apns->team_id) != 0)
		token->invalid = "InvalidProviderToken";
	else if (!json_is_integer(iat))
		token->invalid = "InvalidProviderToken";
	else
		token->iat = json_integer_value(iat);
	if (token->invalid != NULL)
		log_info("provider token refused", "token", log_redact(jwt, redacted), "error",
		    kid == NULL || strcmp(kid, apns->key_id) != 0 ? "kid is not --key-id" :
		    iss == NULL || strcmp(iss, apns->team_id) != 0 ? "iss is not --team-id" :
		    "iat is not an integer", NULL);
	json_decref(header);
	json_decref(claims);
	return token;
}

/* Check the authorization header; NULL if fine, else the 403/429 reason (status set). */
static const char *
apns_check_auth(struct mock_server *server, struct apns *apns, struct mock_stream *stream,
    int *status)
{
	const char *authorization = mock_stream_header(stream, "authorization"), *jwt;
	struct apns_token *token;
	struct mock_conn *conn = stream->conn;
	uint64_t hash;
	int64_t now;
	size_t len;

	*status = 403;
	if (authorization == NULL)
		return "MissingProviderToken";
	if (strncasecmp(authorization, "bearer ", 7) != 0)
		return "InvalidProviderToken";
	jwt = authorization + 7;
	len = strlen(jwt);
	token = mock_table_get(apns->jwt_cache, jwt, len);
	if (token != NULL)
		server->stats.jwt_cache_hits++;
	else {
		token = apns_token_verify(server, apns, jwt);
		mock_table_put(apns->jwt_cache, jwt, len, token);
	}
	if (token->invalid != NULL)
		return token->invalid;
	now = mock_now(server);
	if (token->iat > now + APNS_JWT_FUTURE_SLACK)
		return "InvalidProviderToken";
	if (now - token->iat > apns->jwt_max_age)
		return "ExpiredProviderToken";
	hash = mock_hash(jwt, len);
	if (conn->last_token != hash) {
		if (conn->last_token != 0 && apns->token_update_interval > 0 &&
		    now - conn->last_token_at < apns->token_update_interval) {
			*status = 429;
			return "TooManyProviderTokenUpdates";
		}
		conn->last_token = hash;
		conn->last_token_at = now;
	}
	return NULL;
}

/* Is the body a JSON object with an "aps" object? */
static int
apns_payload_ok(const struct mock_stream *stream)
{
	json_t *root;
	int ok;

	root = json_loadb(stream->body, stream->body_len, 0, NULL);
	ok = json_is_object(json_object_get(root, "aps"));
	json_decref(root);
	return ok;
}

/* Default reason for a rule status without one. */
static const char *
apns_default_reason(int status)
{
	switch (status) {
	case 400: return "BadDeviceToken";
	case 403: return "Forbidden";
	case 404: return "BadPath";
	case 405: return "MethodNotAllowed";
	case 410: return "Unregistered";
	case 413: return "PayloadTooLarge";
	case 429: return "TooManyRequests";
	case 500: return "InternalServerError";
	case 503: return "ServiceUnavailable";
	}
	return "InternalServerError";
}

/* Answer 200 with the apns-id. */
static void
apns_success(struct mock_server *server, struct mock_stream *stream, const char *apns_id,
    const struct mock_rule *rule)
{
	char uuid[37];

	if (apns_id == NULL) {
		mock_random_uuid(server, uuid);
		apns_id = uuid;
	}
	mock_stream_add_header(stream, "apns-id", apns_id);
	mock_stream_finish(stream, 200, NULL, NULL, NULL, 0, rule);
}

/* Answer one complete request, checks in the order of the file comment. */
static void
apns_request(struct mock_server *server, struct mock_stream *stream)
{
	struct apns *apns = server->mode_data;
	const char *apns_id, *topic, *value, *token, *reason;
	const char *const *type;
	struct mock_rule *rule;
	size_t limit;
	int status;

	if (stream->duplicate_header) {
		apns_error(stream, 400, "DuplicateHeaders", 0, NULL);
		return;
	}
	apns_id = mock_stream_header(stream, "apns-id");
	if (apns_id != NULL && !apns_is_uuid(apns_id)) {
		apns_error(stream, 400, "BadMessageId", 0, NULL);
		return;
	}
	if (strcmp(stream->method, "POST") != 0) {
		apns_error(stream, 405, "MethodNotAllowed", 0, NULL);
		return;
	}
	topic = mock_stream_header(stream, "apns-topic");
	if (topic == NULL && apns->auth_key == NULL && apns->ntopics == 1)
		topic = apns->topics[0];	/* certificate auth: the certificate's topic */
	if (topic == NULL) {
		apns_error(stream, 400, "MissingTopic", 0, NULL);
		return;
	}
	if (!apns_topic_allowed(apns, topic)) {
		apns_error(stream, 400, "TopicDisallowed", 0, NULL);
		return;
	}
	value = mock_stream_header(stream, "apns-collapse-id");
	if (value != NULL && strlen(value) > APNS_COLLAPSE_ID_MAX) {
		apns_error(stream, 400, "BadCollapseId", 0, NULL);
		return;
	}
	value = mock_stream_header(stream, "apns-priority");
	if (value != NULL && strcmp(value, "10") != 0 && strcmp(value, "5") != 0 &&
	    strcmp(value, "1") != 0) {
		apns_error(stream, 400, "BadPriority", 0, NULL);
		return;
	}
	value = mock_stream_header(stream, "apns-push-type");
	if (value != NULL) {
		for (type = apns_push_types; *type != NULL && strcmp(*type, value) != 0; type++)
			;
		if (*type == NULL) {
			apns_error(stream, 400, "InvalidPushType", 0, NULL);
			return;
		}
	}
	limit = value != NULL && strcmp(value, "voip") == 0 ? APNS_PAYLOAD_MAX_VOIP :
	    APNS_PAYLOAD_MAX;
	value = mock_stream_header(stream, "apns-expiration");
	if (value != NULL && !apns_is_digits(value)) {
		apns_error(stream, 400, "BadExpirationDate", 0, NULL);
		return;
	}

	if (strncmp(stream->path, "/3/device/", 10) == 0)
		token = stream->path + 10;
	else if (strcmp(stream->path, "/3/device") == 0)
		token = "";
	else {
		apns_error(stream, 404, "BadPath", 0, NULL);
		return;
	}
	if (*token == '\0') {
		apns_error(stream, 400, "MissingDeviceToken", 0, NULL);
		return;
	}
	for (value = token; *value != '\0' && isxdigit((unsigned char)*value); value++)
		;
	if (*value != '\0') {
		apns_error(stream, 400, "BadDeviceToken", 0, NULL);
		return;
	}
	if (!TAILQ_EMPTY(&server->rules) && (rule = mock_rule_topic(server, token)) != NULL &&
	    strcmp(rule->topic, topic) != 0) {
		apns_error(stream, 400, "DeviceTokenNotForTopic", 0, NULL);
		return;
	}

	if (apns->auth_key != NULL) {
		if ((reason = apns_check_auth(server, apns, stream, &status)) != NULL) {
			apns_error(stream, status, reason, 0, NULL);
			return;
		}
		stream->conn->authenticated = 1;
		mock_conn_raise_streams(stream->conn);
	}

	if (stream->body_len == 0) {
		apns_error(stream, 400, "PayloadEmpty", 0, NULL);
		return;
	}
	if (stream->body_len > limit) {
		apns_error(stream, 413, "PayloadTooLarge", 0, NULL);
		return;
	}
	if (!apns_payload_ok(stream)) {
		apns_error(stream, 400, "BadPayload", 0, NULL);
		return;
	}

	rule = TAILQ_EMPTY(&server->rules) ? NULL :
	    mock_rule_match(server, MOCK_ENDPOINT_SEND, token);
	if (rule != NULL && rule->status != 0 && rule->status != 200) {
		apns_error(stream, rule->status, rule->reason != NULL ? rule->reason :
		    apns_default_reason(rule->status), rule->timestamp >= 0 ? rule->timestamp :
		    mock_now_ms(server), rule);
		return;
	}
	if (rule != NULL && rule->status == 0 && (rule->action == MOCK_ACTION_RESET ||
	    rule->action == MOCK_ACTION_RST_STREAM || rule->action == MOCK_ACTION_GOAWAY)) {
		mock_stream_finish(stream, 0, NULL, NULL, NULL, 0, rule);
		return;
	}
	apns_success(server, stream, apns_id, rule);
}

/* Add the size of the token cache to GET /stats. */
static void
apns_stats(struct mock_server *server, json_t *stats)
{
	struct apns *apns = server->mode_data;

	json_object_set_new(stats, "jwt_cache_size",
	    json_integer((json_int_t)mock_table_count(apns->jwt_cache)));
}

/* Forget verified tokens (DELETE /stats), so the next use verifies again. */
static void
apns_reset(struct mock_server *server)
{
	struct apns *apns = server->mode_data;

	mock_table_clear(apns->jwt_cache);
}

static const struct mock_mode apns_mode = {
	.name = "apns",
	.request = apns_request,
	.stats = apns_stats,
	.reset = apns_reset,
};

enum {
	APNS_OPT_TEAM_ID = MOCK_OPT_MODE_FIRST,
	APNS_OPT_KEY_ID,
	APNS_OPT_AUTH_KEY,
	APNS_OPT_TOPIC,
	APNS_OPT_INITIAL_STREAMS,
	APNS_OPT_JWT_MAX_AGE,
	APNS_OPT_TOKEN_UPDATE_INTERVAL,
	APNS_OPT_HELP,
};

static const struct option apns_options[] = {
	MOCK_COMMON_OPTIONS,
	{ "team-id", required_argument, NULL, APNS_OPT_TEAM_ID },
	{ "key-id", required_argument, NULL, APNS_OPT_KEY_ID },
	{ "auth-key", required_argument, NULL, APNS_OPT_AUTH_KEY },
	{ "topic", required_argument, NULL, APNS_OPT_TOPIC },
	{ "token-auth-initial-streams", required_argument, NULL, APNS_OPT_INITIAL_STREAMS },
	{ "jwt-max-age", required_argument, NULL, APNS_OPT_JWT_MAX_AGE },
	{ "token-update-interval", required_argument, NULL, APNS_OPT_TOKEN_UPDATE_INTERVAL },
	{ "help", no_argument, NULL, APNS_OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Print usage and exit. */
static void __attribute__((noreturn))
apns_usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: mock_apns --cert PEM --key PEM [options]\n"
	    MOCK_COMMON_USAGE
	    "  --auth-key PEM            APNs public key: check ES256 provider tokens\n"
	    "  --team-id ID --key-id ID  the iss and kid tokens must carry\n"
	    "  --topic BUNDLE_ID         an allowed topic (repeatable; none: any)\n"
	    "  --token-auth-initial-streams N  streams until a token is valid (default off)\n"
	    "  --jwt-max-age SECONDS     older tokens are expired (default 3600)\n"
	    "  --token-update-interval SECONDS  429 on a new token sooner (default 0: off)\n");
	exit(status);
}

/* Parse options, load the provider public key, serve until SIGTERM. */
int
main(int argc, char **argv)
{
	struct mock_server server;
	struct apns apns;
	char err[256];
	int ch;

	log_init();
	mock_server_init(&server, &apns_mode, 1000);
	memset(&apns, 0, sizeof apns);
	apns.jwt_max_age = 3600;
	server.mode_data = &apns;
	while ((ch = getopt_long(argc, argv, "", apns_options, NULL)) != -1) {
		if (mock_option_common(&server, ch, optarg))
			continue;
		switch (ch) {
		case APNS_OPT_TEAM_ID:
			apns.team_id = optarg;
			break;
		case APNS_OPT_KEY_ID:
			apns.key_id = optarg;
			break;
		case APNS_OPT_AUTH_KEY:
			apns.auth_key_path = optarg;
			break;
		case APNS_OPT_TOPIC:
			apns.topics = xreallocarray(apns.topics, apns.ntopics + 1,
			    sizeof *apns.topics);
			apns.topics[apns.ntopics++] = optarg;
			break;
		case APNS_OPT_INITIAL_STREAMS:
			server.config.initial_streams = (uint32_t)mock_option_number(
			    "token-auth-initial-streams", optarg, 1, INT32_MAX);
			break;
		case APNS_OPT_JWT_MAX_AGE:
			apns.jwt_max_age = mock_option_number("jwt-max-age", optarg, 0, INT32_MAX);
			break;
		case APNS_OPT_TOKEN_UPDATE_INTERVAL:
			apns.token_update_interval = mock_option_number("token-update-interval",
			    optarg, 0, INT32_MAX);
			break;
		case APNS_OPT_HELP:
			apns_usage(0);
		default:
			apns_usage(2);
		}
	}
	if (optind != argc)
		apns_usage(2);
	if (apns.auth_key_path != NULL) {
		if (apns.team_id == NULL || apns.key_id == NULL)
			fatalx("--auth-key needs --team-id and --key-id");
		if (jwt_key_load_public_pem_file(apns.auth_key_path, JWT_ALG_ES256,
		    &apns.auth_key, err, sizeof err) != 0)
			fatalx("%s", err);
	} else if (server.config.initial_streams != 0)
		fatalx("--token-auth-initial-streams needs --auth-key");
	apns.jwt_cache = mock_table_new(APNS_JWT_CACHE_MAX);

	mock_server_main(&server);

	mock_table_free(apns.jwt_cache);
	jwt_key_free(apns.auth_key);
	free(apns.topics);
	return 0;
}
