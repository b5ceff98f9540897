/* The API's access log: see api_access.h. */
#include "autoconf.h"

#include <stdio.h>

#include <event2/http.h>

#include "api.h"
#include "api_access.h"
#include "clock.h"
#include "log.h"

void
api_access_refused(struct api_access *a, const struct api_request *r, const char *method)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
	int64_t now = clock_monotonic_ms();
	const char *peer = NULL;
	char port[8], suppressed[16];
	ev_uint16_t peer_port = 0;

	if (now - a->refused_window_ms >= 60000) {
		if (a->refused_suppressed > 0) {
			snprintf(suppressed, sizeof suppressed, "%u", a->refused_suppressed);
			log_warn("api keys refused, not logged one by one", "count", suppressed,
			    NULL);
		}
		a->refused_window_ms = now;
		a->refused_logged = a->refused_suppressed = 0;
	}
	if (a->refused_logged >= API_ACCESS_REFUSED_MAX) {
		a->refused_suppressed++;
		return;
	}
	a->refused_logged++;
	if (conn != NULL)
		evhttp_connection_get_peer(conn, (char **)&peer, &peer_port);
	snprintf(port, sizeof port, "%u", (unsigned)peer_port);
	log_warn("api key refused", "peer", peer != NULL && *peer != '\0' ? peer : "unix",
	    "port", port, "method", method, "route", r->route != NULL ? r->route : "-", NULL);
}

void
api_access_answered(struct api_access *a, const struct api_request *r, const char *method,
    int status, size_t bytes)
{
	char code[8], took[24], sent[24];

	snprintf(code, sizeof code, "%d", status);
	if (a->enabled) {
		snprintf(took, sizeof took, "%lld",
		    (long long)(clock_monotonic_ms() - r->started_ms));
		snprintf(sent, sizeof sent, "%zu", bytes);
		/* The route's template, not the path: ids stay out of the access log. */
		log_info("api request", "method", method, "route",
		    r->route != NULL ? r->route : "-", "status", code, "duration_ms", took,
		    "bytes", sent, "key", r->key_id[0] != '\0' ? r->key_id : "-", NULL);
	}
	/* At debug, the path itself too (its ids). */
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		log_debug("request", "method", method, "path", r->path, "status", code, NULL);
}
