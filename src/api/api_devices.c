/* Device endpoints: /v1/devices/{device_id} and /v1/clients/{client_id}/devices. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>

#include <event2/http.h>

#include "api.h"
#include "clock.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

/* PUT /v1/devices/{device_id}: create or replace a registration. */
void
api_device_put(struct api_request *r)
{
	struct device device, stored;
	struct model_error merr;
	enum store_put_result result;
	char redacted[LOG_REDACT_SIZE], *location, *encoded;
	int rc;

	if (model_device_from_json(r->body, r->params[0], &device, &merr) != 0) {
		api_reply_model_error(r, &merr);
		return;
	}
	rc = store_device_put(r->store, &device, clock_now_ms(), &result, &stored);
	if (rc != 0) {
		model_device_free(&device);
		api_reply_store_error(r, rc, "device not stored");
		return;
	}
	log_info(result == STORE_PUT_CREATED ? "device registered" : "device updated",
	    "device_id", device.device_id, "client_id", device.client_id, "platform",
	    model_platform_name(device.platform), "token", log_redact(device.token, redacted),
	    NULL);
	if (result == STORE_PUT_CREATED) {
		encoded = evhttp_uriencode(device.device_id, -1, 0);
		location = xasprintf("/v1/devices/%s", encoded);
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Location",
		    location);
		free(location);
		free(encoded);
	}
	api_reply_json(r, result == STORE_PUT_CREATED ? 201 : 200,
	    model_device_to_json(&stored));
	model_device_free(&device);
	model_device_free(&stored);
}

/* GET /v1/devices/{device_id}. */
void
api_device_get(struct api_request *r)
{
	struct device device;
	int rc = store_device_get(r->store, r->params[0], &device);

	if (rc != 0) {
		api_reply_store_error(r, rc, "no such device");
		return;
	}
	api_reply_json(r, 200, model_device_to_json(&device));
	model_device_free(&device);
}

/* DELETE /v1/devices/{device_id}. */
void
api_device_delete(struct api_request *r)
{
	int rc = store_device_delete(r->store, r->params[0]);

	if (rc != 0) {
		api_reply_store_error(r, rc, "no such device");
		return;
	}
	log_info("device removed", "device_id", r->params[0], "reason", "api", NULL);
	api_reply_empty(r, 204);
}

/* GET /v1/clients/{client_id}/devices. */
void
api_client_devices_get(struct api_request *r)
{
	struct device_list list;
	json_t *devices;
	int rc = store_client_devices_list(r->store, r->params[0], &list);

	if (rc != 0) {
		api_reply_store_error(r, rc, "devices not listed");
		return;
	}
	devices = json_array();
	for (size_t i = 0; i < list.count; i++)
		json_array_append_new(devices, model_device_to_json(&list.items[i]));
	model_device_list_free(&list);
	api_reply_json(r, 200, json_pack("{s:s, s:o}", "client_id", r->params[0], "devices",
	    devices));
}

/* DELETE /v1/clients/{client_id}/devices: forget every device of a client. */
void
api_client_devices_delete(struct api_request *r)
{
	size_t deleted = 0;
	char count[24];
	int rc = store_client_devices_delete(r->store, r->params[0], &deleted);

	if (rc != 0) {
		api_reply_store_error(r, rc, "devices not removed");
		return;
	}
	snprintf(count, sizeof count, "%zu", deleted);
	log_info("client devices removed", "client_id", r->params[0], "count", count, NULL);
	api_reply_json(r, 200, json_pack("{s:s, s:I}", "client_id", r->params[0], "deleted",
	    (json_int_t)deleted));
}
