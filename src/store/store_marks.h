/*
 * The router's marks: which devices each room message notified, so that a message
 * handed again (a redelivery, a replay after a restart) notifies no device twice
 * within the dedupe window; and each client's unread count in each room (the badge
 * is their sum).
 *
 * Called by the router's pieces that own this state in memory and write it behind:
 * dedupe.c (notified marks) and unread.c (unread counts), from store jobs
 * (store_writer.h); unread.c also loads the counts at start-up (router_new). The
 * marks are read back with a room's route (store_room_route, store_registry.h).
 * Threads, durability and errors as store.h says.
 */
#ifndef PUSHRELAY_STORE_MARKS_H
#define PUSHRELAY_STORE_MARKS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A device notified of a message, for deduplication across restarts. */
struct notified_mark {
	const char *room_id;
	const char *message_id;
	const char *device_id;
	int64_t at;
};

/* A client's unread messages in a room (the badge is their sum). */
struct unread_count {
	char *client_id;
	char *room_id;
	int64_t count;
};

/* The marks' part of a backend (store_backend.marks). */
struct store_marks_ops {
	int (*notified_add)(struct store *store, const struct notified_mark *marks,
	    size_t count);
	int (*notified_expire)(struct store *store, int64_t before);
	int (*unread_put)(struct store *store, const struct unread_count *counts, size_t count);
	int (*unread_load)(struct store *store, struct unread_count **out, size_t *count);
};

/*
 * Remember notified devices (one write); forget those older than before. Thread:
 * connection. 0, STORE_EIO.
 */
int store_notified_add(struct store *store, const struct notified_mark *marks, size_t count);
int store_notified_expire(struct store *store, int64_t before);
/*
 * Set unread counts (0 deletes the row), one write; load them all (start-up).
 * Thread: connection. 0, STORE_EIO.
 */
int store_unread_put(struct store *store, const struct unread_count *counts, size_t count);
int store_unread_load(struct store *store, struct unread_count **out, size_t *count);
/* Free what store_unread_load() gave. Any thread. */
void store_unread_free(struct unread_count *counts, size_t count);

#endif
