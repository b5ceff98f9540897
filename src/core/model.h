/*
 * The registry's records (devices, room memberships) and their JSON mapping.
 *
 * JSON field names are a public contract: device_id, client_id, platform, token,
 * app_id, environment, locale, metadata, created_at, updated_at, last_success_at,
 * last_error; room_id, joined_at, muted_until, mentions_only. Times are int64
 * milliseconds since the epoch in memory and RFC 3339 strings in JSON; 0 means "never".
 *
 * Used by the API (parsing and answering, on the event loop) and by the store
 * (rows, on the store threads). No shared state: any thread.
 */
#ifndef PUSHRELAY_MODEL_H
#define PUSHRELAY_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define MODEL_ID_MAX 128		/* device, client and room ids, in bytes */
#define MODEL_APP_ID_MAX 255
#define MODEL_LOCALE_MAX 35
#define MODEL_METADATA_MAX 4096		/* serialized JSON bytes */
#define MODEL_APNS_TOKEN_MIN 32		/* hex digits */
#define MODEL_APNS_TOKEN_MAX 512
#define MODEL_FCM_TOKEN_MAX 4096

enum device_platform {
	DEVICE_PLATFORM_APNS = 0,
	DEVICE_PLATFORM_FCM,
};

enum device_environment {
	DEVICE_ENVIRONMENT_PRODUCTION = 0,
	DEVICE_ENVIRONMENT_SANDBOX,
};

struct device {
	char *device_id;
	char *client_id;
	enum device_platform platform;
	char *token;
	char *app_id;
	enum device_environment environment;
	char *locale;		/* NULL when not set */
	char *metadata;		/* compact JSON object text, NULL when not set */
	int64_t created_at;
	int64_t updated_at;
	int64_t last_success_at;
	char *last_error;	/* NULL when none */
	int64_t last_error_at;
};

struct device_list {
	struct device *items;
	size_t count;
};

/*
 * What a delivery needs of a device, in one allocation: the strings live right after
 * the struct, so a fan-out costs one malloc per device.
 */
struct device_target {
	const char *device_id;
	const char *client_id;
	const char *token;
	const char *app_id;
	enum device_platform platform;
	enum device_environment environment;
	int64_t updated_at;
	int64_t last_success_at;
};

struct target_list {
	struct device_target **items;
	size_t count;
	size_t capacity;
};

struct member {
	char *room_id;
	char *client_id;
	int64_t joined_at;
	int64_t muted_until;	/* 0 when not muted */
	int mentions_only;
};

struct member_list {
	struct member *items;
	size_t count;
};

/* A validation failure: which field and why, for the API's error body. */
enum model_error_kind {
	MODEL_ERROR_INVALID = 0,	/* a value is wrong: 400 invalid_field */
	MODEL_ERROR_MISSING,		/* a required field is absent: 400 missing_field */
	MODEL_ERROR_CONFLICT,		/* an id in the body differs from the URL: 409 */
};

struct model_error {
	enum model_error_kind kind;
	char field[64];
	char message[256];	/* "<field>: <what is wrong>" */
};

/*
 * Set err to "<prefix><field>: <what>", field and message cut to their buffers at
 * a character boundary, so that both stay valid UTF-8 for the API's error body; the
 * message shortens the name, never the reason.
 */
void model_error_set(struct model_error *err, enum model_error_kind kind, const char *prefix,
    const char *field, const char *what);

const char *model_platform_name(enum device_platform platform);
int model_platform_from_string(const char *name, enum device_platform *out);
const char *model_environment_name(enum device_environment environment);
int model_environment_from_string(const char *name, enum device_environment *out);

/* 0 if s is a valid id (1..MODEL_ID_MAX bytes of UTF-8, no control characters). */
int model_validate_id(const char *s, const char *what, struct model_error *err);
/* Check that a body has only the named fields (plus the read-only ones, ignored). */
int model_check_fields(const json_t *body, const char *const *allowed,
    const char *const *read_only, struct model_error *err);

/*
 * Fill a device from a PUT body; device_id comes from the URL. On error returns -1
 * with err set and leaves nothing allocated in out. APNs tokens are lower-cased.
 */
int model_device_from_json(const json_t *body, const char *device_id, struct device *out,
    struct model_error *err);
struct jsonw;
/*
 * A device as the API answers it, written with jsonw (the same text as jansson's
 * compact dump of the same members): {"device_id":...,"last_error":...}. Any thread.
 */
void model_device_write(struct jsonw *w, const struct device *device);
/* That text alone, with a newline, for an answer; the caller frees it. Any thread. */
char *model_device_render(const struct device *device, size_t *len);
/* A time (ms) as an RFC 3339 string, or null for 0 ("never"). Any thread. */
json_t *model_time_json(int64_t ms);
/*
 * A text, or null for NULL; text that is not UTF-8 (a provider's answer cut inside a
 * character) has its bad bytes replaced rather than dropped. Any thread.
 */
json_t *model_text_json(const char *s);
json_t *model_member_to_json(const struct member *member);

/* Parse a prefs body: muted_until (RFC 3339 string or null), mentions_only (bool). */
int model_prefs_from_json(const json_t *body, const struct member *current, int64_t *muted_until,
    int *mentions_only, struct model_error *err);

/* Check a membership PUT body: {} or only read-only fields, ids matching the URL. */
int model_member_body_check(const json_t *body, const char *room_id, const char *client_id,
    struct model_error *err);

/* A target with copies of the strings, in one allocation (free it with free()). */
struct device_target *model_target_new(const char *device_id, const char *client_id,
    const char *token, const char *app_id, enum device_platform platform,
    enum device_environment environment, int64_t updated_at, int64_t last_success_at);
void model_target_list_add(struct target_list *list, struct device_target *target);
void model_target_list_free(struct target_list *list);

void model_device_free(struct device *device);
void model_device_list_free(struct device_list *list);
void model_member_free(struct member *member);
void model_member_list_free(struct member_list *list);

#endif
