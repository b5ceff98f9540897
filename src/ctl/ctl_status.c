/* pushrelayctl status and stats: is the daemon ready, and its counters. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "xmalloc.h"

#include "ctl.h"

/* Is pushrelayd live and ready? 0 ready, 1 not ready, 3 unreachable. */
int
ctl_status(struct ctl *ctl, char **args)
{
	struct ctl_response health, ready;
	struct ctl_table table;
	const char *key;
	json_t *value;
	int rc;

	(void)args;
	if ((rc = ctl_call(ctl, "GET", "/healthz", NULL, &health)) != 0)
		return rc;
	if ((rc = ctl_request(ctl, "GET", "/readyz", NULL, CTL_TIMEOUT_MS, &ready)) != 0) {
		ctl_response_free(&health);
		return rc;
	}
	if ((ready.status != 200 && ready.status != 503) || !json_is_object(ready.json)) {
		rc = ctl_refused(ctl, &ready);
		goto done;
	}
	if (ctl->json) {
		json_t *both = json_pack("{s:O, s:O}", "healthz", health.json, "readyz",
		    ready.json);
		ctl_print_json(both);
		json_decref(both);
	} else {
		ctl_table_init(&table, 2);
		ctl_table_add_owned(&table, (char *[]){ xstrdup("healthz"),
		    ctl_field(health.json, "status") });
		json_object_foreach(ready.json, key, value) {
			ctl_table_add_owned(&table, (char *[]){ xstrdup(strcmp(key, "status") == 0 ?
			    "readyz" : key), ctl_text(value) });
		}
		ctl_table_print(&table);
	}
	rc = ready.status == 200 ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
done:
	ctl_response_free(&health);
	ctl_response_free(&ready);
	return rc;
}

/* Add "a.b.c  value" rows for every leaf of a JSON value. */
static void
ctl_flatten(struct ctl_table *table, const char *prefix, const json_t *value)
{
	const char *key;
	json_t *item;
	size_t i;
	char *name;

	if (json_is_object(value) && json_object_size(value) > 0) {
		json_object_foreach((json_t *)value, key, item) {
			name = *prefix != '\0' ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
			ctl_flatten(table, name, item);
			free(name);
		}
	} else if (json_is_array(value) && json_array_size(value) > 0) {
		json_array_foreach(value, i, item) {
			name = xasprintf("%s.%zu", prefix, i);
			ctl_flatten(table, name, item);
			free(name);
		}
	} else
		ctl_table_add_owned(table, (char *[]){ ctl_sanitize(prefix), ctl_text(value) });
}

/* The daemon's counters (GET /v1/stats). */
int
ctl_stats(struct ctl *ctl, char **args)
{
	struct ctl_response response;
	struct ctl_table table;
	int rc;

	(void)args;
	if ((rc = ctl_request(ctl, "GET", "/v1/stats", NULL, CTL_TIMEOUT_MS, &response)) != 0)
		return rc;
	if (response.status == 404) {
		fprintf(stderr, "pushrelayctl: this pushrelayd has no statistics endpoint "
		    "(GET /v1/stats): it is older than pushrelayctl\n");
		ctl_response_free(&response);
		return CTL_EXIT_REFUSED;
	}
	if (response.status != 200 || !json_is_object(response.json)) {
		rc = ctl_refused(ctl, &response);
		ctl_response_free(&response);
		return rc;
	}
	if (ctl->json)
		ctl_print_json(response.json);
	else {
		ctl_table_init(&table, 2);
		ctl_flatten(&table, "", response.json);
		ctl_table_print(&table);
	}
	ctl_response_free(&response);
	return CTL_EXIT_OK;
}
