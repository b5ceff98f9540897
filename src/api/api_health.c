/* Liveness and readiness: /healthz, /readyz and the loop heartbeat behind it. */
#include "autoconf.h"

#include <stdlib.h>

#include <event2/event.h>

#include "api.h"
#include "clock.h"
#include "log.h"
#include "xmalloc.h"

#define HEARTBEAT_PERIOD_MS 250
/* The loop counts as unresponsive when its timer ran this much later than due. */
#define HEARTBEAT_MAX_LAG_MS 2000
#define READY_CHECKS_MAX 8
#define READY_REASON_SIZE 160

struct ready_check {
	const char *name;
	api_ready_check_fn *check;
	void *arg;
};

struct api_heartbeat {
	struct event *timer;
	int64_t due;		/* monotonic ms when the timer should run next */
	int64_t lag[2];		/* lateness of the last two runs */
	struct ready_check checks[READY_CHECKS_MAX];	/* what else /readyz asks */
	size_t check_count;
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
api_heartbeat_add_check(struct api_heartbeat *hb, const char *name,
    api_ready_check_fn *check, void *arg)
{
	if (hb->check_count == READY_CHECKS_MAX)
		fatalx("too many readiness checks");
	hb->checks[hb->check_count++] = (struct ready_check){ name, check, arg };
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

/*
 * GET /readyz: the store answers and takes writes, the loop keeps time, and every
 * added check (a Redis source's link) passes. Each check is a key whose value is "ok"
 * or why not; "loop" shows only when it is unresponsive. The checks only read what
 * the store threads found last (store_writer.h): the loop never waits for SQLite.
 */
void
api_readyz(struct api_request *r)
{
	const struct api_heartbeat *hb = r->heartbeat;
	int64_t lag = api_heartbeat_lag_ms(hb);
	int ready = 1;
	char buf[READY_REASON_SIZE];
	const char *why;
	json_t *body = json_object();

	json_object_set_new(body, "status", json_string("ready"));
	json_object_set_new(body, "store", json_string("ok"));	/* first in the answer */
	for (size_t i = 0; i < hb->check_count; i++) {
		why = hb->checks[i].check(hb->checks[i].arg, buf, sizeof buf);
		if (why != NULL)
			ready = 0;
		json_object_set_new(body, hb->checks[i].name, json_string(why != NULL ? why :
		    "ok"));
	}
	if (lag > HEARTBEAT_MAX_LAG_MS) {
		json_object_set_new(body, "loop", json_string("unresponsive"));
		ready = 0;
	}
	json_object_set_new(body, "loop_lag_ms", json_integer((json_int_t)lag));
	if (!ready)
		json_object_set_new(body, "status", json_string("unavailable"));
	api_reply_json(r, ready ? 200 : 503, body);
}
