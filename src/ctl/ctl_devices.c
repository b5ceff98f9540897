/* pushrelayctl devices: a client's devices, one device, removing them. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "xmalloc.h"

#include "ctl.h"

/* A device's token as text: its first characters and its length, never whole. */
static char *
ctl_token_text(const json_t *device)
{
	const char *token = json_string_value(json_object_get(device, "token"));
	char redacted[LOG_REDACT_SIZE];

	if (token == NULL)
		return xstrdup("-");
	return ctl_sanitize(log_redact(token, redacted));
}

/* A client's devices. */
int
ctl_devices_list(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	const json_t *devices, *device;
	char *path = ctl_path(ctl, "/v1/clients/", args[0], "/devices", NULL), *client;
	size_t i;
	int rc;

	rc = ctl_call(ctl, "GET", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	devices = json_object_get(response.json, "devices");
	if (ctl->json)
		ctl_print_json(response.json);
	else if (json_array_size(devices) == 0) {
		client = ctl_sanitize(args[0]);
		printf("client %s has no devices\n", client);
		free(client);
	} else {
		ctl_table_init(&table, 7);
		ctl_table_add(&table, "DEVICE_ID", "PLATFORM", "ENVIRONMENT", "APP_ID", "TOKEN",
		    "UPDATED_AT", "LAST_SUCCESS_AT");
		json_array_foreach(devices, i, device) {
			ctl_table_add_owned(&table, (char *[]){ ctl_field(device, "device_id"),
			    ctl_field(device, "platform"), ctl_field(device, "environment"),
			    ctl_field(device, "app_id"), ctl_token_text(device),
			    ctl_field(device, "updated_at"),
			    ctl_field(device, "last_success_at") });
		}
		ctl_table_print(&table);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* One device, every field. */
int
ctl_devices_show(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	char *path = ctl_path(ctl, "/v1/devices/", args[0], NULL);
	const char *key;
	json_t *value;
	int rc;

	rc = ctl_call(ctl, "GET", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(response.json);
	else {
		ctl_table_init(&table, 2);
		json_object_foreach(response.json, key, value) {
			ctl_table_add_owned(&table, (char *[]){ ctl_sanitize(key),
			    strcmp(key, "token") == 0 ? ctl_token_text(response.json) :
			    ctl_text(value) });
		}
		ctl_table_print(&table);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Remove one device. */
int
ctl_devices_remove(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/devices/", args[0], NULL), *device;
	json_t *out;
	int rc;

	rc = ctl_call(ctl, "DELETE", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json) {
		out = json_pack("{s:s, s:b}", "device_id", args[0], "removed", 1);
		ctl_print_json(out);
		json_decref(out);
	} else {
		device = ctl_sanitize(args[0]);
		printf("removed device %s\n", device);
		free(device);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Remove every device of a client. */
int
ctl_devices_remove_client(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/clients/", args[0], "/devices", NULL), *client;
	json_int_t deleted;
	int rc;

	rc = ctl_call(ctl, "DELETE", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(response.json);
	else {
		deleted = json_integer_value(json_object_get(response.json, "deleted"));
		client = ctl_sanitize(args[0]);
		printf("removed %" JSON_INTEGER_FORMAT " device%s of client %s\n", deleted,
		    deleted == 1 ? "" : "s", client);
		free(client);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}
