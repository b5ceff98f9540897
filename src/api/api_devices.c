/*
 * Device endpoints: /v1/devices/{device_id} and /v1/clients/{client_id}/devices.
 * Writes go to the store writer and are answered once committed; reads go to the
 * API's store thread. The loop never waits for the store.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "api.h"
#include "clock.h"
#include "jsonw.h"
#include "log.h"
#include "store_registry.h"
#include "store_writer.h"
#include "xmalloc.h"

/* A device request on a store thread: what it needs in, what it gives back. */
struct device_job {
	struct api_deferred *deferred;
	char *id;			/* the device or client id from the path */
	struct device device;		/* PUT: the registration; GET: the device */
	int64_t now;
	enum store_put_result result;
	struct device stored;		/* PUT: the row as committed */
	char *reply;			/* the answer's JSON, rendered by the job */
	size_t reply_len;
	struct device_list list;
	size_t deleted;
};

/* Defer the answer and hand the job to a store thread. */
static struct device_job *
device_job_new(struct api_request *r)
{
	struct device_job *job = xcalloc(1, sizeof *job);

	job->id = xstrdup(r->params[0]);
	job->deferred = api_defer(r);
	return job;
}

static void
device_job_free(struct device_job *job)
{
	api_deferred_free(job->deferred);
	model_device_free(&job->device);
	model_device_free(&job->stored);
	model_device_list_free(&job->list);
	free(job->reply);
	free(job->id);
	free(job);
}

static int
device_put_run(struct store *store, void *arg)
{
	struct device_job *job = arg;
	int rc = store_device_put(store, &job->device, job->now, &job->result, &job->stored);

	/* The answer is made here, off the loop; it goes out only if the batch commits. */
	if (rc == STORE_OK)
		job->reply = model_device_render(&job->stored, &job->reply_len);
	return rc;
}

/* The registration is committed (or not): answer. */
static void
device_put_done(int result, void *arg)
{
	struct device_job *job = arg;
	struct api_request *r = api_deferred_request(job->deferred);
	char redacted[LOG_REDACT_SIZE], *location, *encoded;
	int created = job->result == STORE_PUT_CREATED;

	if (result != STORE_OK) {
		if (r != NULL)
			api_reply_store_error(r, result, "device not stored");
		device_job_free(job);
		return;
	}
	log_info(created ? "device registered" : "device updated", "device_id",
	    job->device.device_id, "client_id", job->device.client_id, "platform",
	    model_platform_name(job->device.platform), "token",
	    log_redact(job->device.token, redacted), NULL);
	if (r != NULL) {
		if (created) {
			encoded = evhttp_uriencode(job->device.device_id, -1, 0);
			location = xasprintf("/v1/devices/%s", encoded);
			evhttp_add_header(evhttp_request_get_output_headers(r->req),
			    "Location", location);
			free(location);
			free(encoded);
		}
		api_reply_rendered(r, created ? 201 : 200, job->reply, job->reply_len);
		job->reply = NULL;
	}
	device_job_free(job);
}

/* PUT /v1/devices/{device_id}: create or replace a registration. */
void
api_device_put(struct api_request *r)
{
	struct device device;
	struct model_error merr;
	struct device_job *job;

	if (model_device_from_json(r->body, r->params[0], &device, &merr) != 0) {
		api_reply_model_error(r, &merr);
		return;
	}
	job = device_job_new(r);
	job->device = device;
	job->now = clock_now_ms();
	store_writer_submit(r->writer, device_put_run, device_put_done, job);
}

static int
device_get_run(struct store *store, void *arg)
{
	struct device_job *job = arg;
	int rc = store_device_get(store, job->id, &job->device);

	if (rc == STORE_OK)
		job->reply = model_device_render(&job->device, &job->reply_len);
	return rc;
}

static void
device_get_done(int result, void *arg)
{
	struct device_job *job = arg;
	struct api_request *r = api_deferred_request(job->deferred);

	if (r != NULL && result != STORE_OK)
		api_reply_store_error(r, result, "no such device");
	else if (r != NULL) {
		api_reply_rendered(r, 200, job->reply, job->reply_len);
		job->reply = NULL;
	}
	device_job_free(job);
}

/* GET /v1/devices/{device_id}. */
void
api_device_get(struct api_request *r)
{
	store_writer_submit(r->reader, device_get_run, device_get_done, device_job_new(r));
}

static int
device_delete_run(struct store *store, void *arg)
{
	struct device_job *job = arg;

	return store_device_delete(store, job->id);
}

static void
device_delete_done(int result, void *arg)
{
	struct device_job *job = arg;
	struct api_request *r = api_deferred_request(job->deferred);

	if (result == STORE_OK)
		log_info("device removed", "device_id", job->id, "reason", "api", NULL);
	if (r != NULL && result != STORE_OK)
		api_reply_store_error(r, result, "no such device");
	else if (r != NULL)
		api_reply_empty(r, 204);
	device_job_free(job);
}

/* DELETE /v1/devices/{device_id}. */
void
api_device_delete(struct api_request *r)
{
	store_writer_submit(r->writer, device_delete_run, device_delete_done,
	    device_job_new(r));
}

static int
client_devices_get_run(struct store *store, void *arg)
{
	struct device_job *job = arg;
	struct jsonw w;
	int rc = store_client_devices_list(store, job->id, &job->list);

	if (rc != STORE_OK)
		return rc;
	jsonw_init(&w, 256 + 512 * job->list.count);
	jsonw_raw(&w, "{");
	jsonw_string_or_null_member(&w, "client_id", job->id);
	jsonw_key(&w, "devices");
	jsonw_raw(&w, "[");
	for (size_t i = 0; i < job->list.count; i++) {
		if (i > 0)
			jsonw_raw(&w, ",");
		model_device_write(&w, &job->list.items[i]);
	}
	jsonw_raw(&w, "]}\n");
	job->reply = jsonw_take(&w, &job->reply_len);
	return rc;
}

static void
client_devices_get_done(int result, void *arg)
{
	struct device_job *job = arg;
	struct api_request *r = api_deferred_request(job->deferred);

	if (r != NULL && result != STORE_OK)
		api_reply_store_error(r, result, "devices not listed");
	else if (r != NULL) {
		api_reply_rendered(r, 200, job->reply, job->reply_len);
		job->reply = NULL;
	}
	device_job_free(job);
}

/* GET /v1/clients/{client_id}/devices. */
void
api_client_devices_get(struct api_request *r)
{
	store_writer_submit(r->reader, client_devices_get_run, client_devices_get_done,
	    device_job_new(r));
}

static int
client_devices_delete_run(struct store *store, void *arg)
{
	struct device_job *job = arg;

	return store_client_devices_delete(store, job->id, &job->deleted);
}

static void
client_devices_delete_done(int result, void *arg)
{
	struct device_job *job = arg;
	struct api_request *r = api_deferred_request(job->deferred);
	char count[24];

	if (result == STORE_OK) {
		snprintf(count, sizeof count, "%zu", job->deleted);
		log_info("client devices removed", "client_id", job->id, "count", count, NULL);
	}
	if (r != NULL && result != STORE_OK)
		api_reply_store_error(r, result, "devices not removed");
	else if (r != NULL)
		api_reply_json(r, 200, json_pack("{s:s, s:I}", "client_id", job->id, "deleted",
		    (json_int_t)job->deleted));
	device_job_free(job);
}

/* DELETE /v1/clients/{client_id}/devices: forget every device of a client. */
void
api_client_devices_delete(struct api_request *r)
{
	store_writer_submit(r->writer, client_devices_delete_run, client_devices_delete_done,
	    device_job_new(r));
}
