/*
 * Bodies of the registry's API as JSON: a device (PUT /v1/devices/ID), membership
 * preferences and a membership body. Each validator accepts or refuses with an
 * error whose field and message are valid UTF-8, since both go into the JSON
 * answer. What is accepted must map back to JSON and read again the same: a device
 * through model_device_render(), preferences through the member's muted_until.
 */
#include "autoconf.h"

#include "clock.h"
#include "fuzz.h"
#include "model.h"

#define DEVICE_ID "device-1"
#define ROOM_ID "room-1"
#define CLIENT_ID "client-1"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

/* Abort unless a refusal names its field and reason in valid UTF-8. */
static void
check_error(const char *what, const struct model_error *err)
{
	if (err->kind != MODEL_ERROR_INVALID && err->kind != MODEL_ERROR_MISSING &&
	    err->kind != MODEL_ERROR_CONFLICT)
		fuzz_fail("%s: error kind %d", what, (int)err->kind);
	if (err->message[0] == '\0')
		fuzz_fail("%s: refused without a message", what);
	fuzz_check_utf8("error field", err->field);
	fuzz_check_utf8("error message", err->message);
}

/* A device that validated maps to JSON that validates again as the same device. */
static void
check_device_round_trip(const struct device *d)
{
	struct model_error err;
	struct device again;
	size_t len;
	char *text = model_device_render(d, &len);
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);

	/* The answer's text is JSON, UTF-8, and reads back as the same device. */
	if (o == NULL || len == 0 || text[len - 1] != '\n')
		fuzz_fail("the device's answer is not one JSON text: %s", text);
	fuzz_check_utf8("device answer", text);
	fuzz_check_json("device", o);
	free(text);
	if (model_device_from_json(o, d->device_id, &again, &err) != 0)
		fuzz_fail("the device's own JSON is refused: %s", err.message);
	fuzz_check_same("client_id", d->client_id, again.client_id);
	fuzz_check_same("token", d->token, again.token);
	fuzz_check_same("app_id", d->app_id, again.app_id);
	fuzz_check_same("locale", d->locale, again.locale);
	fuzz_check_same("metadata", d->metadata, again.metadata);
	if (d->platform != again.platform || d->environment != again.environment)
		fuzz_fail("platform or environment differs");
	model_device_free(&again);
	json_decref(o);
}

static void
check_device(const json_t *body)
{
	struct model_error err;
	struct device d;

	memset(&err, 0, sizeof err);
	if (model_device_from_json(body, DEVICE_ID, &d, &err) != 0) {
		check_error("device", &err);
		return;
	}
	if (d.token == NULL || d.client_id == NULL || d.app_id == NULL)
		fuzz_fail("an accepted device lacks a field");
	check_device_round_trip(&d);
	model_device_free(&d);
}

static void
check_prefs(const json_t *body)
{
	struct member current = { (char *)ROOM_ID, (char *)CLIENT_ID, 1000, 0, 0 };
	struct model_error err;
	int64_t muted_until, parsed;
	int mentions_only;
	json_t *o;

	memset(&err, 0, sizeof err);
	if (model_prefs_from_json(body, &current, &muted_until, &mentions_only, &err) != 0) {
		check_error("prefs", &err);
		return;
	}
	current.muted_until = muted_until;
	current.mentions_only = mentions_only;
	o = model_member_to_json(&current);
	fuzz_check_json("member", o);
	if (muted_until != 0 &&
	    (clock_parse_rfc3339(json_string_value(json_object_get(o, "muted_until")),
	    &parsed) != 0 || parsed != muted_until))
		fuzz_fail("muted_until %lld does not read back", (long long)muted_until);
	json_decref(o);
}

static void
check_member_body(const json_t *body)
{
	struct model_error err;

	memset(&err, 0, sizeof err);
	if (model_member_body_check(body, ROOM_ID, CLIENT_ID, &err) != 0)
		check_error("member", &err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model_error err;
	json_t *body;
	char *id;

	/* The raw text as an id from a URL. */
	id = fuzz_strndup(data, size);
	if (model_validate_id(id, "device_id", &err) != 0)
		check_error("id", &err);
	free(id);

	body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(body)) {
		json_decref(body);
		return 0;
	}
	check_device(body);
	check_prefs(body);
	check_member_body(body);
	json_decref(body);
	return 0;
}
