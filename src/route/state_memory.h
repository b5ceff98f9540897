/*
 * The memory backend of the room state (state.h): this process's presence.h,
 * unread.h, dedupe.h and coalesce.h, which it creates, wires and owns. Unread counts
 * are loaded from the store at start and, with the notified marks, written behind
 * by the store writer. Every call completes before it returns. Loop thread only.
 */
#ifndef PUSHRELAY_STATE_MEMORY_H
#define PUSHRELAY_STATE_MEMORY_H

#include "state.h"

struct event_base;
struct store;
struct store_writer;

/*
 * The state of this process; unread counts are loaded from store (started from zero,
 * the store having logged why, if they cannot be), and written with the notified
 * marks by writer, which the state must outlive (state_free after it stops).
 */
struct state *state_memory_new(struct event_base *base, struct store *store,
    struct store_writer *writer, const struct state_options *options);

#endif
