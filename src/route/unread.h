/*
 * Unread counts and badges: how many messages each client has not read in each
 * room, and their sum across rooms, which is the client's badge. A message counts
 * for each away recipient when it is routed; a read event sets the room's count to
 * zero.
 *
 * Owns the counts (struct unread, which only unread.c sees). They are loaded from
 * the store at start (unread_load) and written behind: unread_flush hands the counts
 * changed since the last flush to the store writer, each once, in one job (a count
 * of 0 deletes its row). Memory holds the truth; a failed write is logged by the
 * store and leaves the stored counts behind until the next change.
 *
 * The router calls every function, on the event loop's thread.
 */
#ifndef PUSHRELAY_UNREAD_H
#define PUSHRELAY_UNREAD_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct store_writer;
struct unread;

/* Counts kept for writer, which they must outlive (unread_free after the writer stops). */
struct unread *unread_new(struct store_writer *writer);
void unread_free(struct unread *unread);

/*
 * Load the counts the store holds, at start: STORE_OK, or the store's error (counts
 * then start from zero). Loaded counts are not written back.
 */
int unread_load(struct unread *unread, struct store *store);

/* Add delta to client's count in room; returns the client's new total (its badge). */
int64_t unread_add(struct unread *unread, const char *client, const char *room, int64_t delta);
/* Client read room: its count there is 0. Returns the client's new total. */
int64_t unread_reset(struct unread *unread, const char *client, const char *room);
/* Client's count in room: 0 when unknown. */
int64_t unread_count(const struct unread *unread, const char *client, const char *room);
/* Client's total across rooms (its badge): 0 when unknown. */
int64_t unread_total(const struct unread *unread, const char *client);
/* Counts changed since the last flush. */
size_t unread_dirty(const struct unread *unread);

/* Hand the changed counts to the writer (nothing when none changed). */
void unread_flush(struct unread *unread);

#endif
