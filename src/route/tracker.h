/*
 * Trackers: one per event the router takes, acknowledged to its source once every
 * part of the work the event caused (a store write, a notification to each
 * recipient, a message held for later) is done. Each part holds a reference.
 *
 * A tracker owns only itself. The router creates them; the route pieces that keep
 * part of an event's work (coalesce, dispatch, membership) hold and release them.
 * Event loop thread only.
 */
#ifndef PUSHRELAY_TRACKER_H
#define PUSHRELAY_TRACKER_H

#include "source.h"

struct tracker;

/* The last reference went: the event is off the owner's hands. */
typedef void tracker_done_fn(void *arg);

/*
 * A tracker with one reference, the caller's. When the last goes, ack(ctx) runs
 * (unless the tracker was abandoned, or ack is NULL), then done(arg).
 */
struct tracker *tracker_new(source_ack_fn *ack, void *ctx, tracker_done_fn *done, void *arg);
/* One more part of the work holds the event. */
void tracker_hold(struct tracker *tracker);
/*
 * Shutdown: the work was dropped, not done. The event is not acknowledged: its
 * source hands it again after a restart.
 */
void tracker_abandon(struct tracker *tracker);
/* A part of the work is done (or dropped); the last one acknowledges and frees. */
void tracker_release(struct tracker *tracker);

#endif
