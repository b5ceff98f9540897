/* pushrelayctl feedback: the token-removed events, kept or as they happen. */
#include "autoconf.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "xmalloc.h"

#include "ctl.h"

#define CTL_FOLLOW_WAIT_S 25		/* each long-poll of feedback follow */

/* The cells of a feedback event, in the columns of feedback recent. */
static void
ctl_feedback_cells(const json_t *event, char **cells)
{
	cells[0] = ctl_field(event, "seq");
	cells[1] = ctl_field(event, "at");
	cells[2] = ctl_field(event, "device_id");
	cells[3] = ctl_field(event, "client_id");
	cells[4] = ctl_field(event, "platform");
	cells[5] = ctl_field(event, "app_id");
	cells[6] = ctl_field(event, "reason");
}

/* GET /v1/feedback after a seq, waiting up to wait seconds; 0 or the exit status. */
static int
ctl_feedback_get(struct ctl *ctl, uint64_t after, int wait, struct ctl_response *response)
{
	char *path = xasprintf("/v1/feedback?after=%" PRIu64 "&wait=%d", after, wait);
	int rc;

	rc = ctl_request(ctl, "GET", path, NULL, (wait + 15) * 1000L, response);
	free(path);
	if (rc != 0)
		return rc;
	if (response->status != 200 || !json_is_array(json_object_get(response->json,
	    "events")) || !json_is_integer(json_object_get(response->json, "next"))) {
		if (response->status == 200)
			fprintf(stderr, "pushrelayctl: HTTP 200: not a feedback answer\n");
		rc = response->status == 200 ? CTL_EXIT_REFUSED : ctl_refused(ctl, response);
		ctl_response_free(response);
		return rc;
	}
	return 0;
}

/* The token-removed events the daemon keeps. */
int
ctl_feedback_recent(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	const json_t *events, *event;
	char *cells[7];
	size_t i;
	int rc;

	(void)args;
	if ((rc = ctl_feedback_get(ctl, ctl->after, 0, &response)) != 0)
		return rc;
	events = json_object_get(response.json, "events");
	if (ctl->json)
		ctl_print_json(response.json);
	else if (json_array_size(events) == 0)
		printf("no feedback events\n");
	else {
		ctl_table_init(&table, 7);
		ctl_table_add(&table, "SEQ", "AT", "DEVICE_ID", "CLIENT_ID", "PLATFORM", "APP_ID",
		    "REASON");
		json_array_foreach(events, i, event) {
			ctl_feedback_cells(event, cells);
			ctl_table_add_owned(&table, cells);
		}
		ctl_table_print(&table);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}

/* Print token-removed events as they happen, until interrupted. */
int
ctl_feedback_follow(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	const json_t *event;
	char *cells[7];
	uint64_t after = ctl->after;
	size_t i;
	int rc;

	(void)args;
	if (!(ctl->seen & CTL_OPT_AFTER)) {
		/* From now on: skip what the daemon already keeps. */
		if ((rc = ctl_feedback_get(ctl, 0, 0, &response)) != 0)
			return rc;
		after = (uint64_t)json_integer_value(json_object_get(response.json, "next"));
		ctl_response_free(&response);
	}
	for (;;) {
		if ((rc = ctl_feedback_get(ctl, after, CTL_FOLLOW_WAIT_S, &response)) != 0)
			return rc;
		json_array_foreach(json_object_get(response.json, "events"), i, event) {
			if (ctl->json)
				ctl_print_json(event);
			else {
				ctl_feedback_cells(event, cells);
				printf("%s %s %s %s %s %s %s\n", cells[0], cells[1], cells[2],
				    cells[3], cells[4], cells[5], cells[6]);
				for (size_t c = 0; c < 7; c++)
					free(cells[c]);
			}
		}
		if (fflush(stdout) != 0) {
			ctl_response_free(&response);
			return CTL_EXIT_REFUSED;
		}
		after = (uint64_t)json_integer_value(json_object_get(response.json, "next"));
		ctl_response_free(&response);
	}
}
