/* Direct publish: POST /v1/push and GET /v1/push/{push_id}. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "api.h"
#include "log.h"
#include "notification.h"
#include "push.h"
#include "xmalloc.h"

static const char *const push_fields[] = { "recipients", "notification", NULL };
static const char *const recipient_fields[] = {
	"client_ids", "device_ids", "room_id", "exclude_client_ids", NULL
};

/* An array of ids: 0 with *out (borrowed strings), or -1 with the answer sent. */
static int
id_array(struct api_request *r, const json_t *recipients, const char *field,
    const char ***out, size_t *count)
{
	json_t *v = json_object_get(recipients, field), *item;
	struct model_error merr;
	char name[64];
	size_t i;

	*out = NULL;
	*count = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	snprintf(name, sizeof name, "recipients.%s", field);
	if (!json_is_array(v)) {
		api_reply_error(r, 400, "invalid_field", name, "%s: must be an array of ids", name);
		return -1;
	}
	if (json_array_size(v) > PUSH_RECIPIENTS_MAX) {
		api_reply_error(r, 400, "invalid_field", name, "%s: must have at most %d ids",
		    name, PUSH_RECIPIENTS_MAX);
		return -1;
	}
	*out = xcalloc(json_array_size(v) + 1, sizeof **out);
	json_array_foreach(v, i, item) {
		if (!json_is_string(item)) {
			api_reply_error(r, 400, "invalid_field", name, "%s: must be an array of ids",
			    name);
			goto fail;
		}
		if (model_validate_id(json_string_value(item), name, &merr) != 0) {
			api_reply_model_error(r, &merr);
			goto fail;
		}
		(*out)[(*count)++] = json_string_value(item);
	}
	return 0;
fail:
	free(*out);
	*out = NULL;
	return -1;
}

/* Answer a push that was not accepted. */
static void
push_refused(struct api_request *r, int error, const struct push_accepted *accepted)
{
	switch (error) {
	case PUSH_EFULL:
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
		api_reply_error(r, 503, "unavailable", NULL,
		    "the delivery queue is full; retry later");
		break;
	case PUSH_EPAYLOAD:
		api_reply_error(r, 400, "invalid_field", "notification", "notification: %s",
		    accepted->payload_error);
		break;
	case PUSH_EINVALID:
		api_reply_error(r, 400, "invalid_field", "notification", "notification: %s",
		    push_strerror(error));
		break;
	default:
		api_reply_error(r, 503, "unavailable", NULL,
		    "the store failed; nothing was accepted, retry later");
		break;
	}
}

/* The push is stored (or refused): answer, if the client is still there. */
static void
push_answer(int error, const struct push_accepted *accepted, void *arg)
{
	struct api_deferred *deferred = arg;
	struct api_request *r = api_deferred_request(deferred);
	json_t *unknown;
	char count[24];

	if (error == PUSH_OK) {
		snprintf(count, sizeof count, "%zu", accepted->devices);
		log_info("push accepted", "push_id", accepted->push_id, "devices", count, NULL);
	}
	if (r == NULL) {
		api_deferred_free(deferred);
		return;
	}
	if (error != PUSH_OK)
		push_refused(r, error, accepted);
	else {
		unknown = json_array();
		for (size_t i = 0; i < accepted->unknown_count; i++)
			json_array_append_new(unknown, json_string(accepted->unknown_device_ids[i]));
		api_reply_json(r, 202, json_pack("{s:s, s:I, s:o}", "push_id", accepted->push_id,
		    "devices", (json_int_t)accepted->devices, "unknown_device_ids", unknown));
	}
	api_deferred_free(deferred);
}

/* POST /v1/push: accept a notification for clients, devices or a room. */
void
api_push_post(struct api_request *r)
{
	const json_t *recipients, *notification_json, *room;
	const char **clients = NULL, **devices = NULL, **excluded = NULL;
	struct push_recipients rec;
	struct notification notification;
	struct api_deferred *deferred;
	struct model_error merr;
	int rc;

	memset(&rec, 0, sizeof rec);
	if (model_check_fields(r->body, push_fields, NULL, &merr) != 0) {
		api_reply_model_error(r, &merr);
		return;
	}
	recipients = json_object_get(r->body, "recipients");
	if (recipients == NULL) {
		api_reply_error(r, 400, "missing_field", "recipients", "recipients: is required");
		return;
	}
	if (!json_is_object(recipients)) {
		api_reply_error(r, 400, "invalid_field", "recipients",
		    "recipients: must be an object");
		return;
	}
	if (model_check_fields(recipients, recipient_fields, NULL, &merr) != 0) {
		char field[160];

		snprintf(field, sizeof field, "recipients.%s", merr.field);
		api_reply_error(r, 400, "invalid_field", field, "recipients.%s", merr.message);
		return;
	}
	if (id_array(r, recipients, "client_ids", &clients, &rec.client_count) != 0 ||
	    id_array(r, recipients, "device_ids", &devices, &rec.device_count) != 0 ||
	    id_array(r, recipients, "exclude_client_ids", &excluded, &rec.exclude_count) != 0)
		goto done;
	room = json_object_get(recipients, "room_id");
	if (room != NULL && !json_is_null(room)) {
		if (!json_is_string(room)) {
			api_reply_error(r, 400, "invalid_field", "recipients.room_id",
			    "recipients.room_id: must be a string");
			goto done;
		}
		if (model_validate_id(json_string_value(room), "recipients.room_id", &merr) != 0) {
			api_reply_model_error(r, &merr);
			goto done;
		}
		rec.room_id = json_string_value(room);
	}
	if (rec.client_count == 0 && rec.device_count == 0 && rec.room_id == NULL) {
		api_reply_error(r, 400, "missing_field", "recipients",
		    "recipients: needs client_ids, device_ids or room_id");
		goto done;
	}
	rec.client_ids = clients;
	rec.device_ids = devices;
	rec.exclude_client_ids = excluded;

	notification_json = json_object_get(r->body, "notification");
	if (notification_json == NULL) {
		api_reply_error(r, 400, "missing_field", "notification",
		    "notification: is required");
		goto done;
	}
	if (notification_from_json(notification_json, "notification.", &notification,
	    &merr) != 0) {
		api_reply_model_error(r, &merr);
		goto done;
	}
	notification_free(&notification);
	if (r->pushes == NULL) {
		api_reply_error(r, 503, "unavailable", NULL, "pushes are not available");
		goto done;
	}

	deferred = api_defer(r);
	if ((rc = push_accept(r->pushes, &rec, notification_json, push_answer, deferred)) !=
	    PUSH_OK) {
		api_deferred_free(deferred);
		push_refused(r, rc, NULL);
	}
done:
	free(clients);
	free(devices);
	free(excluded);
}

/* The status is known (from memory, or read off the loop): answer. */
static void
push_status_answer(json_t *status, int error, void *arg)
{
	struct api_deferred *deferred = arg;
	struct api_request *r = api_deferred_request(deferred);

	if (r == NULL)
		json_decref(status);
	else if (status != NULL)
		api_reply_json(r, 200, status);
	else if (error == PUSH_ENOTFOUND)
		api_reply_error(r, 404, "not_found", NULL, "no such push (or it has expired)");
	else
		api_reply_error(r, 503, "unavailable", NULL, "the store failed; retry later");
	api_deferred_free(deferred);
}

/* GET /v1/push/{push_id}: the outcome per device. */
void
api_push_get(struct api_request *r)
{
	if (r->pushes == NULL) {
		api_reply_error(r, 503, "unavailable", NULL, "pushes are not available");
		return;
	}
	push_status_get(r->pushes, r->params[0], r->reader, push_status_answer, api_defer(r));
}
