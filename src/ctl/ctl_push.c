/* pushrelayctl send and push show: publish a notification, and its outcome. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "log.h"
#include "xmalloc.h"

#include "ctl.h"

#define CTL_WAIT_POLL_MIN_MS 100	/* send --wait: first pause, doubled up to the max */
#define CTL_WAIT_POLL_MAX_MS 1000

/* A push's outcome: its times and counts, then a row per device. */
static void
ctl_push_print(const json_t *push)
{
	const json_t *counts = json_object_get(push, "counts");
	const json_t *devices = json_object_get(push, "devices"), *device, *value;
	struct ctl_table table;
	char *line = xstrdup(""), *next, *text;
	const char *key;
	size_t i;

	ctl_table_init(&table, 2);
	ctl_table_add_owned(&table, (char *[]){ xstrdup("push_id"), ctl_field(push, "push_id") });
	ctl_table_add_owned(&table, (char *[]){ xstrdup("created_at"),
	    ctl_field(push, "created_at") });
	ctl_table_add_owned(&table, (char *[]){ xstrdup("finished_at"),
	    ctl_field(push, "finished_at") });
	json_object_foreach((json_t *)counts, key, value) {
		text = ctl_text(value);
		next = xasprintf("%s%s%s %s", line, *line != '\0' ? ", " : "", key, text);
		free(text);
		free(line);
		line = next;
	}
	ctl_table_add_owned(&table, (char *[]){ xstrdup("counts"), ctl_sanitize(line) });
	free(line);
	ctl_table_print(&table);
	if (json_array_size(devices) == 0)
		return;
	printf("\n");
	ctl_table_init(&table, 8);
	ctl_table_add(&table, "DEVICE_ID", "CLIENT_ID", "PLATFORM", "APP_ID", "STATE", "REASON",
	    "ATTEMPTS", "UPDATED_AT");
	json_array_foreach(devices, i, device) {
		ctl_table_add_owned(&table, (char *[]){ ctl_field(device, "device_id"),
		    ctl_field(device, "client_id"), ctl_field(device, "platform"),
		    ctl_field(device, "app_id"), ctl_field(device, "state"),
		    ctl_field(device, "reason"), ctl_field(device, "attempts"),
		    ctl_field(device, "updated_at") });
	}
	ctl_table_print(&table);
}

/* Sleep for some milliseconds. */
static void
ctl_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Poll a push until it has finished; 0 with its outcome, or the exit status. */
static int
ctl_push_wait(struct ctl *ctl, const char *push_id, struct ctl_response *response)
{
	char *path = ctl_path(ctl, "/v1/push/", push_id, NULL);
	long pause = CTL_WAIT_POLL_MIN_MS;
	int rc;

	for (;;) {
		if ((rc = ctl_call(ctl, "GET", path, NULL, response)) != 0)
			break;
		if (!json_is_null(json_object_get(response->json, "finished_at")))
			break;
		ctl_response_free(response);
		ctl_sleep_ms(pause);
		if ((pause *= 2) > CTL_WAIT_POLL_MAX_MS)
			pause = CTL_WAIT_POLL_MAX_MS;
	}
	free(path);
	return rc;
}

/* An array of strings (checked UTF-8) as JSON. */
static json_t *
ctl_json_strings(char **items, size_t count)
{
	json_t *array = json_array();

	for (size_t i = 0; i < count; i++) {
		if (json_array_append_new(array, json_string(items[i])) != 0)
			fatalx("json_array_append_new: out of memory");
	}
	return array;
}

/* A usage error unless text is valid UTF-8 (as JSON strings must be). */
static void
ctl_check_utf8(const struct ctl_command *command, const char *option, const char *text)
{
	json_t *string;

	if (text == NULL)
		return;
	if ((string = json_string(text)) == NULL)
		ctl_usage_error(command, "%s: '%s' is not valid UTF-8", option, text);
	json_decref(string);
}

/* Check send's options before anything is built from them. */
static void
ctl_send_check(struct ctl *ctl)
{
	const char *eq, *other;
	size_t i, j;

	if (ctl->client_count == 0 && ctl->device_count == 0 && ctl->room == NULL)
		ctl_usage_error(ctl->command, "say who gets it: --client, --device or --room");
	for (i = 0; i < ctl->client_count; i++)
		ctl_check_utf8(ctl->command, "--client", ctl->clients[i]);
	for (i = 0; i < ctl->device_count; i++)
		ctl_check_utf8(ctl->command, "--device", ctl->devices[i]);
	ctl_check_utf8(ctl->command, "--room", ctl->room);
	ctl_check_utf8(ctl->command, "--title", ctl->title);
	ctl_check_utf8(ctl->command, "--body", ctl->body);
	for (i = 0; i < ctl->data_count; i++) {
		if ((eq = strchr(ctl->data[i], '=')) == NULL || eq == ctl->data[i])
			ctl_usage_error(ctl->command, "--data: '%s' is not KEY=VALUE",
			    ctl->data[i]);
		ctl_check_utf8(ctl->command, "--data", ctl->data[i]);
		for (j = 0; j < i; j++) {
			other = ctl->data[j];
			if (strncmp(other, ctl->data[i], (size_t)(eq - ctl->data[i]) + 1) == 0)
				ctl_usage_error(ctl->command, "--data: %.*s given twice",
				    (int)(eq - ctl->data[i]), ctl->data[i]);
		}
	}
}

/* Publish one notification (POST /v1/push); with --wait, until it has finished. */
int
ctl_send(struct ctl *ctl, char **args)
{
	struct ctl_response response, outcome;
	json_t *recipients, *notification, *data, *body, *unknown, *counts;
	const char *push_id;
	char *key, *value, *text;
	size_t i;
	int rc;

	(void)args;
	ctl_send_check(ctl);
	recipients = json_object();
	if (ctl->client_count > 0)
		json_object_set_new(recipients, "client_ids",
		    ctl_json_strings(ctl->clients, ctl->client_count));
	if (ctl->device_count > 0)
		json_object_set_new(recipients, "device_ids",
		    ctl_json_strings(ctl->devices, ctl->device_count));
	if (ctl->room != NULL)
		json_object_set_new(recipients, "room_id", json_string(ctl->room));
	notification = json_object();
	if (ctl->title != NULL)
		json_object_set_new(notification, "title", json_string(ctl->title));
	if (ctl->body != NULL)
		json_object_set_new(notification, "body", json_string(ctl->body));
	if (ctl->data_count > 0) {
		data = json_object();
		for (i = 0; i < ctl->data_count; i++) {
			key = xstrdup(ctl->data[i]);
			value = strchr(key, '=');
			*value++ = '\0';
			json_object_set_new(data, key, json_string(value));
			free(key);
		}
		json_object_set_new(notification, "data", data);
	}
	body = json_pack("{s:o, s:o}", "recipients", recipients, "notification", notification);

	rc = ctl_call(ctl, "POST", "/v1/push", body, &response);
	json_decref(body);
	if (rc != 0)
		return rc;
	push_id = json_string_value(json_object_get(response.json, "push_id"));
	if (push_id == NULL) {
		fprintf(stderr, "pushrelayctl: the answer has no push_id\n");
		ctl_response_free(&response);
		return CTL_EXIT_REFUSED;
	}
	unknown = json_object_get(response.json, "unknown_device_ids");
	for (i = 0; i < json_array_size(unknown); i++) {
		text = ctl_text(json_array_get(unknown, i));
		fprintf(stderr, "pushrelayctl: warning: no such device: %s\n", text);
		free(text);
	}
	if (!(ctl->seen & CTL_OPT_WAIT)) {
		if (ctl->json)
			ctl_print_json(response.json);
		else {
			text = ctl_sanitize(push_id);
			printf("%s\n", text);
			free(text);
		}
		ctl_response_free(&response);
		return CTL_EXIT_OK;
	}

	rc = ctl_push_wait(ctl, push_id, &outcome);
	ctl_response_free(&response);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(outcome.json);
	else
		ctl_push_print(outcome.json);
	counts = json_object_get(outcome.json, "counts");
	rc = json_integer_value(json_object_get(counts, "failed")) > 0 ||
	    json_integer_value(json_object_get(counts, "token_removed")) > 0 ?
	    CTL_EXIT_REFUSED : CTL_EXIT_OK;
	ctl_response_free(&outcome);
	return rc;
}

/* A push's outcome per device. */
int
ctl_push_show(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	char *path = ctl_path(ctl, "/v1/push/", args[0], NULL);
	int rc;

	rc = ctl_call(ctl, "GET", path, NULL, &response);
	free(path);
	if (rc != 0)
		return rc;
	if (ctl->json)
		ctl_print_json(response.json);
	else
		ctl_push_print(response.json);
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}
