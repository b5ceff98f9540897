/* Acknowledging an event to its source once the last part of its work is done. */
#include "autoconf.h"

#include <stdlib.h>

#include "tracker.h"
#include "xmalloc.h"

struct tracker {
	source_ack_fn *ack;
	void *ctx;
	tracker_done_fn *done;
	void *arg;
	unsigned refs;
	int abandoned;			/* shutdown: its source hands it again later */
};

/* A tracker held by its creator. */
struct tracker *
tracker_new(source_ack_fn *ack, void *ctx, tracker_done_fn *done, void *arg)
{
	struct tracker *t = xcalloc(1, sizeof *t);

	t->ack = ack;
	t->ctx = ctx;
	t->done = done;
	t->arg = arg;
	t->refs = 1;
	return t;
}

/* Count one more holder. */
void
tracker_hold(struct tracker *t)
{
	t->refs++;
}

/* Do not acknowledge, whatever the other holders do. */
void
tracker_abandon(struct tracker *t)
{
	t->abandoned = 1;
}

/* Drop a holder: the last acknowledges the event, tells the owner and frees. */
void
tracker_release(struct tracker *t)
{
	tracker_done_fn *done = t->done;
	void *arg = t->arg;

	if (--t->refs > 0)
		return;
	if (t->ack != NULL && !t->abandoned)
		t->ack(t->ctx);
	free(t);
	if (done != NULL)
		done(arg);
}
