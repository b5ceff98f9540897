/* Liveness and readiness: /healthz, /readyz and the loop heartbeat behind it. */
#include "autoconf.h"

#include <stdlib.h>

#include <event2/event.h>

#include "api.h"
#include "clock.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

#define HEARTBEAT_PERIOD_MS 250
/* The loop counts as unresponsive when its timer ran this much later than due. */
#define HEARTBEAT_MAX_LAG_MS 2000

struct api_heartbeat {
	struct event *timer;
	int64_t due;		/* monotonic ms when the timer should run next */
	int64_t lag[2];		/* lateness of the last two runs */
};

/* Measure how late the timer ran, then arm it again. */
static void
heartbeat_tick(evutil_socket_t fd, short what, void *arg)
{
	struct api_heartbeat *hb = arg;
	int64_t now = clock_monotonic_ms();

	hb->lag[1] = hb->lag[0];
	hb->lag[0] = now > hb->due ? now - hb->due : 0;
	hb->due = now + HEARTBEAT_PERIOD_MS;
}

struct api_heartbeat *
api_heartbeat_new(struct event_base *base)
{
	struct api_heartbeat *hb = xcalloc(1, sizeof *hb);
	struct timeval tv = { 0, HEARTBEAT_PERIOD_MS * 1000 };

	hb->timer = event_new(base, -1, EV_PERSIST, heartbeat_tick, hb);
	if (hb->timer == NULL)
		fatalx("cannot create the heartbeat timer");
	hb->due = clock_monotonic_ms() + HEARTBEAT_PERIOD_MS;
	event_add(hb->timer, &tv);
	return hb;
}

int64_t
api_heartbeat_lag_ms(const struct api_heartbeat *hb)
{
	int64_t now = clock_monotonic_ms(), overdue = now > hb->due ? now - hb->due : 0;
	int64_t lag = hb->lag[0] > hb->lag[1] ? hb->lag[0] : hb->lag[1];

	/* A timer that has not run at all yet is as late as it is overdue. */
	return overdue > lag ? overdue : lag;
}

void
api_heartbeat_free(struct api_heartbeat *hb)
{
	if (hb == NULL)
		return;
	event_free(hb->timer);
	free(hb);
}

/* GET /healthz: the process is alive and its loop answers. */
void
api_healthz(struct api_request *r)
{
	api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* GET /readyz: the store answers and the loop keeps time. */
void
api_readyz(struct api_request *r)
{
	int64_t lag = api_heartbeat_lag_ms(r->heartbeat);
	int rc = store_ping(r->store);

	if (rc != 0) {
		api_reply_json(r, 503, json_pack("{s:s, s:s, s:I}", "status", "unavailable",
		    "store", store_strerror(rc), "loop_lag_ms", (json_int_t)lag));
		return;
	}
	if (lag > HEARTBEAT_MAX_LAG_MS) {
		api_reply_json(r, 503, json_pack("{s:s, s:s, s:s, s:I}", "status", "unavailable",
		    "store", "ok", "loop", "unresponsive", "loop_lag_ms", (json_int_t)lag));
		return;
	}
	api_reply_json(r, 200, json_pack("{s:s, s:s, s:I}", "status", "ready", "store", "ok",
	    "loop_lag_ms", (json_int_t)lag));
}
