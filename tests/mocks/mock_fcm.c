/*
 * Mock FCM: the HTTP v1 send endpoint and the Google OAuth token endpoint of a service
 * account, both on the same HTTP/2 listener (libcurl negotiates h2 through ALPN for both).
 *
 * POST /token (form: grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT)
 *	grant_type other -> 400 unsupported_grant_type; no assertion -> 400 invalid_request;
 *	not an RS256 JWT signed by --service-account-key -> 400 invalid_grant
 *	"Invalid JWT Signature."; iss != --client-email -> 400 invalid_grant "Invalid grant:
 *	account not found"; aud != the token URL (--token-audience, by default
 *	https://<:authority>/token) -> 400 invalid_grant "Invalid JWT: Failed audience
 *	check..."; scope without firebase.messaging or cloud-platform -> 400 invalid_scope;
 *	iat/exp not integers, exp <= iat, exp - iat > 3600, iat more than 5 minutes ahead or
 *	exp past -> 400 invalid_grant "Invalid JWT: Token must be a short-lived token...";
 *	then token-endpoint rules ({"endpoint":"token","status":400,"error":"invalid_grant",
 *	"error_description":"..."}); then 200 {"access_token":"ya29.mock-<hex>",
 *	"expires_in":--token-lifetime,"token_type":"Bearer"}. Issued tokens are remembered
 *	with their expiry.
 *
 * POST /v1/projects/{project}/messages:send
 *	other method or path -> 404 NOT_FOUND; bearer token unknown or expired -> 401
 *	UNAUTHENTICATED (no FcmError detail, www-authenticate: Bearer); project !=
 *	--project-id -> 403 PERMISSION_DENIED; body not JSON, unknown field names (snake_case
 *	and lowerCamelCase are both known), values of the wrong type, data values that are not
 *	strings ("Invalid value at 'message.data[0].value' (TYPE_STRING), 1"), more than one
 *	of token/topic/condition, android.priority not NORMAL|HIGH, android.ttl not
 *	"<seconds>[.fraction]s" -> 400 INVALID_ARGUMENT with a google.rpc.BadRequest detail;
 *	no target, reserved data keys, payload (data keys and values, notification title,
 *	body and image) over 4096 bytes (2048 for topics and conditions), a token that is
 *	not [A-Za-z0-9_:-]+ -> 400 INVALID_ARGUMENT with an FcmError detail; then rules by
 *	device token; then 200 {"name":"projects/P/messages/0:..."} (validate_only: the
 *	fake_message_id name).
 *
 * Errors use the Google envelope {"error":{"code":N,"message":"...","status":"...",
 * "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError",
 * "errorCode":"UNREGISTERED"}]}}. A rule's error_code "" leaves the FcmError out.
 *
 * Streams: SETTINGS_MAX_CONCURRENT_STREAMS is --max-streams (default 100, as observed on
 * fcm.googleapis.com). A client opening more streams than that gets what nghttp2 does:
 * once the SETTINGS are acknowledged, GOAWAY PROTOCOL_ERROR with the debug data
 * "request HEADERS: max concurrent streams exceeded" (the whole connection ends, as
 * reported for the real service); before the acknowledgement, RST_STREAM REFUSED_STREAM.
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

#define FCM_PAYLOAD_MAX 4096
#define FCM_PAYLOAD_MAX_TOPIC 2048
#define FCM_ASSERTION_MAX_LIFETIME 3600
#define FCM_CLOCK_SLACK 300
#define FCM_ACCESS_TOKENS_MAX (1024 * 1024)
#define FCM_JWT_BEARER "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define FCM_SCOPE_MESSAGING "https://www.googleapis.com/auth/firebase.messaging"
#define FCM_SCOPE_CLOUD "https://www.googleapis.com/auth/cloud-platform"
#define FCM_JSON "application/json; charset=UTF-8"

struct fcm {
	const char *project_id;
	const char *client_email;
	const char *key_path;
	struct jwt_key *key;
	const char *audience;		/* NULL: https://<:authority>/token */
	int64_t token_lifetime;
	struct mock_table *access_tokens;	/* token -> int64_t expiry in ms */
	uint64_t tokens_issued;
	uint64_t messages;
};

/* Why a message was refused: enough to build the Google error envelope. */
struct fcm_refusal {
	char message[512];
	const char *error_code;		/* FcmError errorCode, or NULL */
	const char *field;		/* BadRequest field, or NULL */
	int bad_request;		/* add a google.rpc.BadRequest detail */
};

/* ---- error bodies ---- */

/* The Google status string of an HTTP status. */
static const char *
fcm_google_status(int status)
{
	switch (status) {
	case 400: return "INVALID_ARGUMENT";
	case 401: return "UNAUTHENTICATED";
	case 403: return "PERMISSION_DENIED";
	case 404: return "NOT_FOUND";
	case 409: return "ALREADY_EXISTS";
	case 429: return "RESOURCE_EXHAUSTED";
	case 500: return "INTERNAL";
	case 501: return "UNIMPLEMENTED";
	case 503: return "UNAVAILABLE";
	case 504: return "DEADLINE_EXCEEDED";
	}
	return "UNKNOWN";
}

/* The FcmError errorCode a rule with only a status means. */
static const char *
fcm_default_error_code(int status)
{
	switch (status) {
	case 400: return "INVALID_ARGUMENT";
	case 401: return "THIRD_PARTY_AUTH_ERROR";
	case 403: return "SENDER_ID_MISMATCH";
	case 404: return "UNREGISTERED";
	case 429: return "QUOTA_EXCEEDED";
	case 500: return "INTERNAL";
	case 503: return "UNAVAILABLE";
	}
	return "UNSPECIFIED_ERROR";
}

/* The message text the real service sends with an errorCode. */
static const char *
fcm_default_message(const char *error_code, int status)
{
	if (strcmp(error_code, "UNREGISTERED") == 0)
		return "Requested entity was not found.";
	if (strcmp(error_code, "SENDER_ID_MISMATCH") == 0)
		return "SenderId mismatch";
	if (strcmp(error_code, "QUOTA_EXCEEDED") == 0)
		return "Quota exceeded for quota metric 'Send requests' and limit 'Send requests "
		    "per minute' of service 'fcm.googleapis.com'.";
	if (strcmp(error_code, "UNAVAILABLE") == 0 || status == 503)
		return "The service is currently unavailable.";
	if (strcmp(error_code, "INTERNAL") == 0 || status == 500)
		return "Internal error encountered.";
	if (strcmp(error_code, "THIRD_PARTY_AUTH_ERROR") == 0)
		return "Auth error from APNS or Web Push Service";
	return "Request contains an invalid argument.";
}

/* Answer with the Google error envelope. */
static void
fcm_error(struct mock_stream *stream, int status, const char *google_status,
    const char *message, const char *error_code, const char *field, int bad_request,
    const struct mock_rule *rule)
{
	json_t *details, *violation, *error;
	char *body;
	size_t len;

	details = json_array();
	if (error_code != NULL && *error_code != '\0')
		json_array_append_new(details, json_pack("{s:s,s:s}",
		    "@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError",
		    "errorCode", error_code));
	if (bad_request || field != NULL) {
		violation = json_pack("{s:s}", "description", message);
		if (field != NULL)
			json_object_set_new(violation, "field", json_string(field));
		json_array_append_new(details, json_pack("{s:s,s:[o]}",
		    "@type", "type.googleapis.com/google.rpc.BadRequest",
		    "fieldViolations", violation));
	}
	error = json_pack("{s:i,s:s,s:s}", "code", status, "message", message,
	    "status", google_status);
	if (details == NULL || error == NULL)
		fatalx("out of memory");
	if (json_array_size(details) > 0)
		json_object_set_new(error, "details", details);
	else
		json_decref(details);
	body = mock_json_dump_decref(json_pack("{s:o}", "error", error), &len);
	mock_stream_finish(stream, status, error_code != NULL && *error_code != '\0' ?
	    error_code : google_status, FCM_JSON, body, len, rule);
}

/* A 400 INVALID_ARGUMENT for a message the service refuses. */
static void
fcm_refuse(struct mock_stream *stream, const struct fcm_refusal *refusal)
{
	fcm_error(stream, 400, "INVALID_ARGUMENT", refusal->message, refusal->error_code,
	    refusal->field, refusal->bad_request, NULL);
}

/* Answer the token endpoint with an OAuth error. */
static void
fcm_oauth_error(struct mock_stream *stream, int status, const char *error,
    const char *description, const struct mock_rule *rule)
{
	char *body;
	size_t len;

	body = mock_json_dump_decref(json_pack("{s:s,s:s}", "error", error, "error_description",
	    description), &len);
	mock_stream_finish(stream, status, error, FCM_JSON, body, len, rule);
}

/* ---- the token endpoint ---- */

/* Decode %XX and '+' in place. */
static void
fcm_form_decode(char *s)
{
	char *out = s;
	int hi, lo;

	for (; *s != '\0'; s++) {
		if (*s == '+')
			*out++ = ' ';
		else if (*s == '%' && isxdigit((unsigned char)s[1]) &&
		    isxdigit((unsigned char)s[2])) {
			hi = isdigit((unsigned char)s[1]) ? s[1] - '0' : (tolower(s[1]) - 'a' + 10);
			lo = isdigit((unsigned char)s[2]) ? s[2] - '0' : (tolower(s[2]) - 'a' + 10);
			*out++ = (char)(hi * 16 + lo);
			s += 2;
		} else
			*out++ = *s;
	}
	*out = '\0';
}

/* Find a form field; the form (a copy) is cut up in place. */
static const char *
fcm_form_get(char *form, size_t len, const char *name)
{
	size_t name_len = strlen(name), i = 0, end, eq;

	while (i < len) {
		for (end = i; end < len && form[end] != '&'; end++)
			;
		for (eq = i; eq < end && form[eq] != '='; eq++)
			;
		if (eq - i == name_len && memcmp(form + i, name, name_len) == 0 && eq < end) {
			form[end] = '\0';
			fcm_form_decode(form + eq + 1);
			return form + eq + 1;
		}
		i = end + 1;
	}
	return NULL;
}

/* Does a space-separated scope list allow FCM? */
static int
fcm_scope_ok(const char *scope)
{
	const char *p = scope, *end;
	size_t len;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		for (end = p; *end != '\0' && *end != ' '; end++)
			;
		len = (size_t)(end - p);
		if ((len == strlen(FCM_SCOPE_MESSAGING) && memcmp(p, FCM_SCOPE_MESSAGING, len) == 0) ||
		    (len == strlen(FCM_SCOPE_CLOUD) && memcmp(p, FCM_SCOPE_CLOUD, len) == 0))
			return 1;
		p = end;
	}
	return 0;
}

/* Check an assertion's claims; NULL if good, else the invalid_grant description. */
static const char *
fcm_check_claims(struct mock_server *server, struct fcm *fcm, struct mock_stream *stream,
    json_t *claims, const char **error, char *audience, size_t audience_size)
{
	const char *iss, *aud, *scope;
	json_t *iat, *exp;
	int64_t now = mock_now(server);

	*error = "invalid_grant";
	iss = json_string_value(json_object_get(claims, "iss"));
	if (iss == NULL || strcmp(iss, fcm->client_email) != 0)
		return "Invalid grant: account not found";
	if (fcm->audience != NULL)
		snprintf(audience, audience_size, "%s", fcm->audience);
	else
		snprintf(audience, audience_size, "https://%s/token", stream->authority);
	aud = json_string_value(json_object_get(claims, "aud"));
	if (aud == NULL || strcmp(aud, audience) != 0)
		return "Invalid JWT: Failed audience check.";
	scope = json_string_value(json_object_get(claims, "scope"));
	if (scope == NULL || !fcm_scope_ok(scope)) {
		*error = "invalid_scope";
		return "Invalid OAuth scope or ID token audience provided.";
	}
	iat = json_object_get(claims, "iat");
	exp = json_object_get(claims, "exp");
	if (!json_is_integer(iat) || !json_is_integer(exp) ||
	    json_integer_value(exp) <= json_integer_value(iat) ||
	    json_integer_value(exp) - json_integer_value(iat) > FCM_ASSERTION_MAX_LIFETIME ||
	    json_integer_value(iat) > now + FCM_CLOCK_SLACK || json_integer_value(exp) <= now)
		return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
		    "reasonable timeframe. Check your iat and exp values in the JWT claim.";
	return NULL;
}

/* Exchange a signed assertion for an access token. */
static void
fcm_token(struct mock_server *server, struct fcm *fcm, struct mock_stream *stream)
{
	const char *grant, *assertion, *description, *error;
	struct mock_rule *rule;
	json_t *claims = NULL;
	int64_t *expiry;
	char *form, *body, description_buf[1024], audience[512], token[64];
	size_t len;
	int rv;

	if (strcmp(stream->method, "POST") != 0) {
		fcm_oauth_error(stream, 405, "invalid_request", "Method Not Allowed", NULL);
		return;
	}
	form = xstrndup(stream->body_len > 0 ? stream->body : "", stream->body_len);
	grant = fcm_form_get(form, stream->body_len, "grant_type");
	if (grant == NULL || strcmp(grant, FCM_JWT_BEARER) != 0) {
		snprintf(description_buf, sizeof description_buf, "Invalid grant_type: %s",
		    grant != NULL ? grant : "");
		free(form);
		fcm_oauth_error(stream, 400, "unsupported_grant_type", description_buf, NULL);
		return;
	}
	free(form);
	form = xstrndup(stream->body_len > 0 ? stream->body : "", stream->body_len);
	assertion = fcm_form_get(form, stream->body_len, "assertion");
	if (assertion == NULL || *assertion == '\0') {
		free(form);
		fcm_oauth_error(stream, 400, "invalid_request",
		    "Missing required parameter: assertion", NULL);
		return;
	}
	server->stats.jwt_verifications++;
	rv = jwt_verify(assertion, fcm->key, JWT_ALG_RS256, NULL, &claims);
	free(form);
	if (rv != 0) {
		log_info("assertion refused", "error", jwt_strerror(rv), NULL);
		fcm_oauth_error(stream, 400, "invalid_grant", "Invalid JWT Signature.", NULL);
		return;
	}
	description = fcm_check_claims(server, fcm, stream, claims, &error, audience,
	    sizeof audience);
	json_decref(claims);
	if (description != NULL) {
		if (strncmp(description, "Invalid JWT: Failed audience", 28) == 0) {
			snprintf(description_buf, sizeof description_buf,
			    "%s The right audience is %s", description, audience);
			description = description_buf;
		}
		log_info("assertion refused", "error", description, NULL);
		fcm_oauth_error(stream, 400, error, description, NULL);
		return;
	}

	rule = TAILQ_EMPTY(&server->rules) ? NULL :
	    mock_rule_match(server, MOCK_ENDPOINT_TOKEN, NULL);
	if (rule != NULL && rule->status != 0 && rule->status != 200) {
		fcm_oauth_error(stream, rule->status,
		    rule->oauth_error != NULL ? rule->oauth_error : "invalid_grant",
		    rule->oauth_description != NULL ? rule->oauth_description :
		    rule->reason != NULL ? rule->reason : "", rule);
		return;
	}
	snprintf(token, sizeof token, "ya29.mock-%016llx%016llx",
	    (unsigned long long)mock_random(server), (unsigned long long)mock_random(server));
	expiry = xmalloc(sizeof *expiry);
	*expiry = mock_now_ms(server) + fcm->token_lifetime * 1000;
	mock_table_put(fcm->access_tokens, token, strlen(token), expiry);
	fcm->tokens_issued++;
	body = mock_json_dump_decref(json_pack("{s:s,s:I,s:s}", "access_token", token,
	    "expires_in", (json_int_t)fcm->token_lifetime, "token_type", "Bearer"), &len);
	mock_stream_finish(stream, 200, NULL, FCM_JSON, body, len, rule);
}

/* ---- the send endpoint ---- */

/* A JSON value as the real service quotes it after a type error. */
static void
fcm_value_text(json_t *value, char *out, size_t size)
{
	char *dump = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);

	snprintf(out, size, "%s", dump != NULL ? dump : "");
	free(dump);
}

/* "Invalid value at 'path' (type), value" */
static void
fcm_invalid_value(struct fcm_refusal *refusal, const char *path, const char *type,
    json_t *value)
{
	char text[128];

	fcm_value_text(value, text, sizeof text);
	snprintf(refusal->message, sizeof refusal->message, "Invalid value at '%s' (%s), %s",
	    path, type, text);
	refusal->bad_request = 1;
	refusal->field = NULL;
}

/* Refuse unknown names in an object; where is NULL at the top level. */
static int
fcm_known_fields(json_t *object, const char *const *known, const char *where,
    struct fcm_refusal *refusal)
{
	const char *key, *const *k;
	json_t *value;

	json_object_foreach(object, key, value) {
		for (k = known; *k != NULL && strcmp(*k, key) != 0; k++)
			;
		if (*k != NULL)
			continue;
		if (where == NULL)
			snprintf(refusal->message, sizeof refusal->message,
			    "Invalid JSON payload received. Unknown name \"%s\": Cannot find field.",
			    key);
		else
			snprintf(refusal->message, sizeof refusal->message,
			    "Invalid JSON payload received. Unknown name \"%s\" at '%s': Cannot "
			    "find field.", key, where);
		refusal->bad_request = 1;
		return -1;
	}
	return 0;
}

/* Either spelling of a field (proto3 JSON accepts both). */
static json_t *
fcm_get(json_t *object, const char *snake, const char *camel)
{
	json_t *v = json_object_get(object, snake);

	return v != NULL || camel == NULL ? v : json_object_get(object, camel);
}

/* A map<string,string>: every value a string. Adds the bytes of keys and values. */
static int
fcm_check_string_map(json_t *map, const char *path, int check_reserved, size_t *size,
    struct fcm_refusal *refusal)
{
	const char *key;
	json_t *value;
	char where[128];
	size_t i = 0;

	if (map == NULL)
		return 0;
	if (!json_is_object(map)) {
		fcm_invalid_value(refusal, path, "type.googleapis.com/google.protobuf.Struct", map);
		return -1;
	}
	json_object_foreach(map, key, value) {
		if (!json_is_string(value)) {
			snprintf(where, sizeof where, "%s[%zu].value", path, i);
			fcm_invalid_value(refusal, where, "TYPE_STRING", value);
			refusal->field = NULL;
			return -1;
		}
		if (check_reserved && (strcmp(key, "from") == 0 ||
		    strcmp(key, "message_type") == 0 || strncmp(key, "google", 6) == 0 ||
		    strncmp(key, "gcm", 3) == 0)) {
			snprintf(refusal->message, sizeof refusal->message,
			    "Invalid data payload key: %s", key);
			refusal->error_code = "INVALID_ARGUMENT";
			return -1;
		}
		*size += strlen(key) + json_string_length(value);
		i++;
	}
	return 0;
}

/* An optional string field. */
static int
fcm_check_string(json_t *object, const char *snake, const char *camel, const char *path,
    struct fcm_refusal *refusal)
{
	json_t *v = fcm_get(object, snake, camel);

	if (v == NULL || json_is_string(v))
		return 0;
	fcm_invalid_value(refusal, path, "TYPE_STRING", v);
	return -1;
}

/* An optional object field. */
static int
fcm_check_object(json_t *v, const char *path, const char *type, struct fcm_refusal *refusal)
{
	if (v == NULL || json_is_object(v))
		return 0;
	fcm_invalid_value(refusal, path, type, v);
	return -1;
}

/* "<seconds>[.fraction]s" with at most 9 fraction digits. */
static int
fcm_duration_ok(const char *s)
{
	size_t digits = 0;

	for (; isdigit((unsigned char)*s); s++)
		digits++;
	if (digits == 0)
		return 0;
	if (*s == '.') {
		s++;
		for (digits = 0; isdigit((unsigned char)*s); s++)
			digits++;
		if (digits == 0 || digits > 9)
			return 0;
	}
	return s[0] == 's' && s[1] == '\0';
}

static const char *const fcm_request_fields[] = {
	"message", "validate_only", "validateOnly", NULL,
};
static const char *const fcm_message_fields[] = {
	"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
	"fcmOptions", "token", "topic", "condition", NULL,
};
static const char *const fcm_notification_fields[] = {
	"title", "body", "image", NULL,
};
static const char *const fcm_android_fields[] = {
	"collapse_key", "collapseKey", "priority", "ttl", "restricted_package_name",
	"restrictedPackageName", "data", "notification", "fcm_options", "fcmOptions",
	"direct_boot_ok", "directBootOk", NULL,
};
static const char *const fcm_apns_fields[] = {
	"headers", "payload", "fcm_options", "fcmOptions", "live_activity_token",
	"liveActivityToken", NULL,
};

/* The android part of a message. */
static int
fcm_check_android(json_t *android, size_t *size, struct fcm_refusal *refusal)
{
	json_t *v;

	if (android == NULL)
		return 0;
	if (fcm_check_object(android, "message.android",
	    "type.googleapis.com/google.firebase.fcm.v1.AndroidConfig", refusal) != 0 ||
	    fcm_known_fields(android, fcm_android_fields, "message.android", refusal) != 0 ||
	    fcm_check_string(android, "collapse_key", "collapseKey",
	    "message.android.collapse_key", refusal) != 0 ||
	    fcm_check_string(android, "restricted_package_name", "restrictedPackageName",
	    "message.android.restricted_package_name", refusal) != 0)
		return -1;
	v = json_object_get(android, "priority");
	if (v != NULL && (!json_is_string(v) || (strcmp(json_string_value(v), "NORMAL") != 0 &&
	    strcmp(json_string_value(v), "HIGH") != 0))) {
		fcm_invalid_value(refusal, "message.android.priority",
		    "type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority", v);
		return -1;
	}
	v = json_object_get(android, "ttl");
	if (v != NULL && (!json_is_string(v) || !fcm_duration_ok(json_string_value(v)))) {
		fcm_invalid_value(refusal, "message.android.ttl",
		    "type.googleapis.com/google.protobuf.Duration", v);
		return -1;
	}
	if (fcm_check_string_map(json_object_get(android, "data"), "message.android.data", 1,
	    size, refusal) != 0)
		return -1;
	return fcm_check_object(json_object_get(android, "notification"),
	    "message.android.notification",
	    "type.googleapis.com/google.firebase.fcm.v1.AndroidNotification", refusal);
}

/* The apns part of a message. */
static int
fcm_check_apns(json_t *apns, struct fcm_refusal *refusal)
{
	size_t ignored = 0;

	if (apns == NULL)
		return 0;
	if (fcm_check_object(apns, "message.apns",
	    "type.googleapis.com/google.firebase.fcm.v1.ApnsConfig", refusal) != 0 ||
	    fcm_known_fields(apns, fcm_apns_fields, "message.apns", refusal) != 0 ||
	    fcm_check_string_map(json_object_get(apns, "headers"), "message.apns.headers", 0,
	    &ignored, refusal) != 0)
		return -1;
	return fcm_check_object(json_object_get(apns, "payload"), "message.apns.payload",
	    "type.googleapis.com/google.protobuf.Struct", refusal);
}

/* Is this a plausible registration token? */
static int
fcm_token_ok(const char *token)
{
	if (*token == '\0')
		return 0;
	for (; *token != '\0'; token++) {
		if (!isalnum((unsigned char)*token) && *token != '_' && *token != '-' &&
		    *token != ':')
			return 0;
	}
	return 1;
}

/* Is this a valid topic name ("/topics/" prefix allowed)? */
static int
fcm_topic_ok(const char *topic)
{
	if (strncmp(topic, "/topics/", 8) == 0)
		topic += 8;
	if (*topic == '\0')
		return 0;
	for (; *topic != '\0'; topic++) {
		if (!isalnum((unsigned char)*topic) && strchr("-_.~%", *topic) == NULL)
			return 0;
	}
	return 1;
}

/*
 * Validate a send request's JSON. On success *token is the device token (NULL for topic
 * and condition messages) and *validate_only is set.
 */
static int
fcm_check_message(json_t *root, const char **token, int *validate_only,
    struct fcm_refusal *refusal)
{
	static const char *const targets[] = { "token", "topic", "condition", NULL };
	json_t *message, *v, *notification;
	const char *key, *target = NULL;
	json_t *value;
	size_t size = 0, limit;
	char path[64];
	int i;

	if (!json_is_object(root)) {
		snprintf(refusal->message, sizeof refusal->message,
		    "Invalid JSON payload received. Unexpected token.");
		refusal->bad_request = 1;
		return -1;
	}
	if (fcm_known_fields(root, fcm_request_fields, NULL, refusal) != 0)
		return -1;
	v = fcm_get(root, "validate_only", "validateOnly");
	if (v != NULL && !json_is_boolean(v)) {
		fcm_invalid_value(refusal, "validate_only", "TYPE_BOOL", v);
		return -1;
	}
	*validate_only = json_is_true(v);
	message = json_object_get(root, "message");
	if (fcm_check_object(message, "message",
	    "type.googleapis.com/google.firebase.fcm.v1.Message", refusal) != 0 ||
	    (message != NULL && fcm_known_fields(message, fcm_message_fields, "message",
	    refusal) != 0))
		return -1;

	/* Exactly one target, named in the order the client wrote them. */
	if (message != NULL) {
		json_object_foreach(message, key, value) {
			for (i = 0; targets[i] != NULL && strcmp(targets[i], key) != 0; i++)
				;
			if (targets[i] == NULL)
				continue;
			if (target != NULL) {
				snprintf(refusal->message, sizeof refusal->message,
				    "Invalid JSON payload received. Oneof field 'target' is "
				    "already set. Cannot set '%s'", key);
				refusal->bad_request = 1;
				return -1;
			}
			if (!json_is_string(value)) {
				snprintf(path, sizeof path, "message.%s", key);
				fcm_invalid_value(refusal, path, "TYPE_STRING", value);
				return -1;
			}
			target = key;
		}
	}
	if (target == NULL) {
		snprintf(refusal->message, sizeof refusal->message,
		    "Recipient of the message is not set.");
		refusal->error_code = "INVALID_ARGUMENT";
		return -1;
	}

	if (fcm_check_string_map(json_object_get(message, "data"), "message.data", 1, &size,
	    refusal) != 0)
		return -1;
	notification = json_object_get(message, "notification");
	if (fcm_check_object(notification, "message.notification",
	    "type.googleapis.com/google.firebase.fcm.v1.Notification", refusal) != 0)
		return -1;
	if (notification != NULL) {
		if (fcm_known_fields(notification, fcm_notification_fields,
		    "message.notification", refusal) != 0 ||
		    fcm_check_string(notification, "title", NULL, "message.notification.title",
		    refusal) != 0 ||
		    fcm_check_string(notification, "body", NULL, "message.notification.body",
		    refusal) != 0 ||
		    fcm_check_string(notification, "image", NULL, "message.notification.image",
		    refusal) != 0)
			return -1;
		for (i = 0; fcm_notification_fields[i] != NULL; i++) {
			v = json_object_get(notification, fcm_notification_fields[i]);
			if (v != NULL)
				size += json_string_length(v);
		}
	}
	if (fcm_check_android(json_object_get(message, "android"), &size, refusal) != 0 ||
	    fcm_check_apns(json_object_get(message, "apns"), refusal) != 0 ||
	    fcm_check_object(json_object_get(message, "webpush"), "message.webpush",
	    "type.googleapis.com/google.firebase.fcm.v1.WebpushConfig", refusal) != 0)
		return -1;

	limit = strcmp(target, "token") == 0 ? FCM_PAYLOAD_MAX : FCM_PAYLOAD_MAX_TOPIC;
	if (size > limit) {
		snprintf(refusal->message, sizeof refusal->message, "Message is too big");
		refusal->error_code = "INVALID_ARGUMENT";
		return -1;
	}
	v = json_object_get(message, target);
	if (strcmp(target, "token") == 0) {
		if (!fcm_token_ok(json_string_value(v))) {
			snprintf(refusal->message, sizeof refusal->message,
			    "The registration token is not a valid FCM registration token");
			refusal->error_code = "INVALID_ARGUMENT";
			refusal->field = "message.token";
			return -1;
		}
		*token = json_string_value(v);
	} else if (strcmp(target, "topic") == 0 && !fcm_topic_ok(json_string_value(v))) {
		snprintf(refusal->message, sizeof refusal->message, "Invalid topic name.");
		refusal->error_code = "INVALID_ARGUMENT";
		refusal->field = "message.topic";
		return -1;
	}
	return 0;
}

/* Is the bearer token one we issued and still valid? */
static int
fcm_authorized(struct mock_server *server, struct fcm *fcm, const struct mock_stream *stream)
{
	const char *authorization = mock_stream_header(stream, "authorization");
	int64_t *expiry;

	if (authorization == NULL || strncasecmp(authorization, "bearer ", 7) != 0)
		return 0;
	expiry = mock_table_get(fcm->access_tokens, authorization + 7,
	    strlen(authorization + 7));
	return expiry != NULL && *expiry > mock_now_ms(server);
}

/* Answer a rule on the send endpoint. */
static void
fcm_rule_error(struct mock_stream *stream, const struct mock_rule *rule)
{
	const char *error_code, *google_status, *message;

	error_code = rule->error_code != NULL ? rule->error_code :
	    fcm_default_error_code(rule->status);
	google_status = rule->google_status != NULL ? rule->google_status :
	    fcm_google_status(rule->status);
	message = rule->reason != NULL ? rule->reason :
	    fcm_default_message(error_code, rule->status);
	fcm_error(stream, rule->status, google_status, message, error_code, NULL, 0, rule);
}

/* Answer POST /v1/projects/{project}/messages:send. */
static void
fcm_send(struct mock_server *server, struct fcm *fcm, struct mock_stream *stream,
    const char *project, size_t project_len)
{
	struct fcm_refusal refusal;
	struct mock_rule *rule;
	const char *token = NULL;
	json_t *root;
	char message[512], *body;
	size_t len;
	int validate_only = 0;

	if (!fcm_authorized(server, fcm, stream)) {
		mock_stream_add_header(stream, "www-authenticate",
		    "Bearer realm=\"https://accounts.google.com/\"");
		fcm_error(stream, 401, "UNAUTHENTICATED",
		    "Request had invalid authentication credentials. Expected OAuth 2 access "
		    "token, login cookie or other valid authentication credential. See "
		    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
		    NULL, NULL, 0, NULL);
		return;
	}
	if (project_len != strlen(fcm->project_id) ||
	    memcmp(project, fcm->project_id, project_len) != 0) {
		snprintf(message, sizeof message, "Permission 'cloudmessaging.messages.create' "
		    "denied on resource '//cloudresourcemanager.googleapis.com/projects/%.*s' "
		    "(or it may not exist).", (int)project_len, project);
		fcm_error(stream, 403, "PERMISSION_DENIED", message, NULL, NULL, 0, NULL);
		return;
	}
	memset(&refusal, 0, sizeof refusal);
	root = json_loadb(stream->body_len > 0 ? stream->body : "", stream->body_len, 0, NULL);
	if (root == NULL) {
		snprintf(refusal.message, sizeof refusal.message,
		    "Invalid JSON payload received. Unexpected token.");
		refusal.bad_request = 1;
		fcm_refuse(stream, &refusal);
		return;
	}
	if (fcm_check_message(root, &token, &validate_only, &refusal) != 0) {
		json_decref(root);
		fcm_refuse(stream, &refusal);
		return;
	}

	rule = TAILQ_EMPTY(&server->rules) ? NULL :
	    mock_rule_match(server, MOCK_ENDPOINT_SEND, token);
	json_decref(root);		/* token is not used after this */
	if (rule != NULL && rule->status != 0 && rule->status != 200) {
		fcm_rule_error(stream, rule);
		return;
	}
	if (rule != NULL && rule->status == 0 && rule->action != MOCK_ACTION_RESPOND) {
		mock_stream_finish(stream, 0, NULL, NULL, NULL, 0, rule);
		return;
	}
	fcm->messages++;
	if (validate_only)
		body = xasprintf("{\"name\":\"projects/%s/messages/fake_message_id\"}",
		    fcm->project_id);
	else
		body = xasprintf("{\"name\":\"projects/%s/messages/0:%lld%%%016llx\"}",
		    fcm->project_id, (long long)mock_now_ms(server) * 1000 +
		    (long long)(fcm->messages % 1000), (unsigned long long)mock_random(server));
	len = strlen(body);
	mock_stream_finish(stream, 200, NULL, FCM_JSON, body, len, rule);
}

/* Answer one complete request: the token endpoint or the send endpoint. */
static void
fcm_request(struct mock_server *server, struct mock_stream *stream)
{
	struct fcm *fcm = server->mode_data;
	const char *path = stream->path, *project, *end;
	size_t len = strlen(path);

	if (strcmp(path, "/token") == 0) {
		fcm_token(server, fcm, stream);
		return;
	}
	if (strcmp(stream->method, "POST") == 0 && strncmp(path, "/v1/projects/", 13) == 0 &&
	    len > 13 + 14 && strcmp(path + len - 14, "/messages:send") == 0) {
		project = path + 13;
		end = path + len - 14;
		if (memchr(project, '/', (size_t)(end - project)) == NULL) {
			fcm_send(server, fcm, stream, project, (size_t)(end - project));
			return;
		}
	}
	fcm_error(stream, 404, "NOT_FOUND", "Requested entity was not found.", NULL, NULL, 0,
	    NULL);
}

/* Add issued tokens and accepted messages to GET /stats. */
static void
fcm_stats(struct mock_server *server, json_t *stats)
{
	struct fcm *fcm = server->mode_data;

	json_object_set_new(stats, "access_tokens_issued",
	    json_integer((json_int_t)fcm->tokens_issued));
	json_object_set_new(stats, "messages_accepted", json_integer((json_int_t)fcm->messages));
}

/* Zero the mode's counters (DELETE /stats); issued tokens stay valid. */
static void
fcm_reset(struct mock_server *server)
{
	struct fcm *fcm = server->mode_data;

	fcm->tokens_issued = 0;
	fcm->messages = 0;
}

static const struct mock_mode fcm_mode = {
	.name = "fcm",
	.request = fcm_request,
	.stats = fcm_stats,
	.reset = fcm_reset,
};

enum {
	FCM_OPT_PROJECT_ID = MOCK_OPT_MODE_FIRST,
	FCM_OPT_SERVICE_ACCOUNT_KEY,
	FCM_OPT_CLIENT_EMAIL,
	FCM_OPT_TOKEN_LIFETIME,
	FCM_OPT_TOKEN_AUDIENCE,
	FCM_OPT_HELP,
};

static const struct option fcm_options[] = {
	MOCK_COMMON_OPTIONS,
	{ "project-id", required_argument, NULL, FCM_OPT_PROJECT_ID },
	{ "service-account-key", required_argument, NULL, FCM_OPT_SERVICE_ACCOUNT_KEY },
	{ "client-email", required_argument, NULL, FCM_OPT_CLIENT_EMAIL },
	{ "token-lifetime", required_argument, NULL, FCM_OPT_TOKEN_LIFETIME },
	{ "token-audience", required_argument, NULL, FCM_OPT_TOKEN_AUDIENCE },
	{ "help", no_argument, NULL, FCM_OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Print usage and exit. */
static void __attribute__((noreturn))
fcm_usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: mock_fcm --cert PEM --key PEM --project-id ID --service-account-key PEM\n"
	    "    --client-email EMAIL [options]\n"
	    MOCK_COMMON_USAGE
	    "  --project-id ID           the project of /v1/projects/ID/messages:send\n"
	    "  --service-account-key PEM public key that signs the OAuth assertions\n"
	    "  --client-email EMAIL      the assertions' iss\n"
	    "  --token-lifetime SECONDS  access token lifetime (default 3600)\n"
	    "  --token-audience URL      the assertions' aud (default https://<authority>/token)\n");
	exit(status);
}

/* Parse options, load the service-account public key, serve until SIGTERM. */
int
main(int argc, char **argv)
{
	struct mock_server server;
	struct fcm fcm;
	char err[256];
	int ch;

	log_init();
	mock_server_init(&server, &fcm_mode, 100);
	memset(&fcm, 0, sizeof fcm);
	fcm.token_lifetime = 3600;
	server.mode_data = &fcm;
	while ((ch = getopt_long(argc, argv, "", fcm_options, NULL)) != -1) {
		if (mock_option_common(&server, ch, optarg))
			continue;
		switch (ch) {
		case FCM_OPT_PROJECT_ID:
			fcm.project_id = optarg;
			break;
		case FCM_OPT_SERVICE_ACCOUNT_KEY:
			fcm.key_path = optarg;
			break;
		case FCM_OPT_CLIENT_EMAIL:
			fcm.client_email = optarg;
			break;
		case FCM_OPT_TOKEN_LIFETIME:
			fcm.token_lifetime = mock_option_number("token-lifetime", optarg, 1,
			    INT32_MAX);
			break;
		case FCM_OPT_TOKEN_AUDIENCE:
			fcm.audience = optarg;
			break;
		case FCM_OPT_HELP:
			fcm_usage(0);
		default:
			fcm_usage(2);
		}
	}
	if (optind != argc || fcm.project_id == NULL || fcm.key_path == NULL ||
	    fcm.client_email == NULL)
		fcm_usage(2);
	if (jwt_key_load_public_pem_file(fcm.key_path, JWT_ALG_RS256, &fcm.key, err,
	    sizeof err) != 0)
		fatalx("%s", err);
	fcm.access_tokens = mock_table_new(FCM_ACCESS_TOKENS_MAX);

	mock_server_main(&server);

	mock_table_free(fcm.access_tokens);
	jwt_key_free(fcm.key);
	return 0;
}
