/* The room state's calls, handed to its backend. */
#include "autoconf.h"

#include "state.h"

/* The backend's name. */
const char *
state_backend(const struct state *state)
{
	return state->ops->name;
}

/* Does every call complete before it returns? */
int
state_synchronous(const struct state *state)
{
	return state->ops->synchronous;
}

/* Where batches go, and whom to tell when ready again. */
void
state_set_callbacks(struct state *state, const struct state_callbacks *callbacks)
{
	state->ops->set_callbacks(state, callbacks);
}

/* New options, from a reload. */
void
state_set_options(struct state *state, const struct state_options *options)
{
	state->ops->set_options(state, options);
}

/* Can calls be answered now? */
int
state_ready(const struct state *state)
{
	return state->ops->ready(state);
}

/* Before anything else of a message. */
int
state_admit(struct state *state, const struct room_event *e, int64_t now)
{
	return state->ops->admit(state, e, now);
}

/* What the state keeps of a message while it is routed. */
struct state_message *
state_message_new(struct state *state, const struct room_event *e)
{
	return state->ops->message_new(state, e);
}

/* Can the message not have notified anyone before? */
int
state_message_fresh(const struct state_message *message)
{
	return message->state->ops->message_fresh(message);
}

/* Decide for a chunk of candidates. */
void
state_decide(struct state_message *message, struct state_candidate *candidates,
    size_t count, int count_unread, state_decided_fn *done, void *arg)
{
	message->state->ops->decide(message, candidates, count, count_unread, done, arg);
}

/* The message is routed, or given up. */
void
state_message_free(struct state_message *message)
{
	if (message != NULL)
		message->state->ops->message_free(message);
}

/* A held decision, with the recipient's devices. */
void
state_hold(struct state *state, const char *client, const struct notify_message *message,
    struct tracker *tracker, struct device_target **targets, size_t count,
    enum state_decision decision)
{
	state->ops->hold(state, client, message, tracker, targets, count, decision);
}

/* A presence event. */
void
state_presence(struct state *state, const struct room_event *e, struct tracker *tracker)
{
	state->ops->presence(state, e, tracker);
}

/* A read: the room's unread count to 0. */
void
state_read(struct state *state, const char *room, const char *client, struct tracker *tracker)
{
	state->ops->read(state, room, client, tracker);
}

/* An edit or a deletion, applied to what is held. */
void
state_change(struct state *state, const struct room_event *e, struct tracker *tracker,
    state_changed_fn *done, void *arg)
{
	state->ops->change(state, e, tracker, done, arg);
}

/* A device was sent a message. */
void
state_mark_sent(struct state *state, const char *room, const char *message_id,
    const char *device_id, int64_t now)
{
	state->ops->mark_sent(state, room, message_id, device_id, now);
}

/* Write behind what waits. */
void
state_flush(struct state *state)
{
	state->ops->flush(state);
}

/* Forget what is older than the dedupe window. */
void
state_sweep(struct state *state, int64_t now)
{
	state->ops->sweep(state, now);
}

/* Shutdown: drop what waits for this process. */
void
state_stop(struct state *state)
{
	state->ops->stop(state);
}

/* Free the backend. */
void
state_free(struct state *state)
{
	if (state != NULL)
		state->ops->free(state);
}

/* The backend's figures. */
void
state_get_stats(const struct state *state, struct state_stats *stats)
{
	state->ops->get_stats(state, stats);
}

/* The label of a round-trip kind. */
const char *
state_trip_name(enum state_trip trip)
{
	static const char *const names[STATE_TRIP_KINDS] = { "message", "presence", "read",
		"change", "poll", "flush" };

	return trip < STATE_TRIP_KINDS ? names[trip] : "unknown";
}
