/* The room state's calls, handed to its backend. */
#include "autoconf.h"

#include "state.h"

const char *
state_backend(const struct state *state)
{
	return state->ops->name;
}

int
state_synchronous(const struct state *state)
{
	return state->ops->synchronous;
}

void
state_set_callbacks(struct state *state, const struct state_callbacks *callbacks)
{
	state->ops->set_callbacks(state, callbacks);
}

void
state_set_options(struct state *state, const struct state_options *options)
{
	state->ops->set_options(state, options);
}

int
state_ready(const struct state *state)
{
	return state->ops->ready(state);
}

int
state_admit(struct state *state, const struct room_event *e, int64_t now)
{
	return state->ops->admit(state, e, now);
}

struct state_message *
state_message_new(struct state *state, const struct room_event *e)
{
	return state->ops->message_new(state, e);
}

int
state_message_fresh(const struct state_message *message)
{
	return message->state->ops->message_fresh(message);
}

void
state_decide(struct state_message *message, struct state_candidate *candidates,
    size_t count, int count_unread, state_decided_fn *done, void *arg)
{
	message->state->ops->decide(message, candidates, count, count_unread, done, arg);
}

void
state_message_free(struct state_message *message)
{
	if (message != NULL)
		message->state->ops->message_free(message);
}

void
state_hold(struct state *state, const char *client, const struct notify_message *message,
    struct tracker *tracker, struct device_target **targets, size_t count,
    enum state_decision decision)
{
	state->ops->hold(state, client, message, tracker, targets, count, decision);
}

void
state_presence(struct state *state, const struct room_event *e, struct tracker *tracker)
{
	state->ops->presence(state, e, tracker);
}

void
state_read(struct state *state, const char *room, const char *client, struct tracker *tracker)
{
	state->ops->read(state, room, client, tracker);
}

void
state_change(struct state *state, const struct room_event *e, struct tracker *tracker,
    state_changed_fn *done, void *arg)
{
	state->ops->change(state, e, tracker, done, arg);
}

void
state_mark_sent(struct state *state, const char *room, const char *message_id,
    const char *device_id, int64_t now)
{
	state->ops->mark_sent(state, room, message_id, device_id, now);
}

void
state_flush(struct state *state)
{
	state->ops->flush(state);
}

void
state_sweep(struct state *state, int64_t now)
{
	state->ops->sweep(state, now);
}

void
state_stop(struct state *state)
{
	state->ops->stop(state);
}

void
state_free(struct state *state)
{
	if (state != NULL)
		state->ops->free(state);
}

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
