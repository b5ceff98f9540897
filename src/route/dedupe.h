/*
 * Deduplication: the same message never notifies the same device twice within the
 * dedupe window, across restarts.
 *
 * Owns (struct dedupe, which only dedupe.c sees):
 *  - the message ids seen in this process, by (room, message id), each until the
 *    window after it was first seen has passed and a sweep forgot it: a copy handed
 *    again (a redelivery, a replay) is a duplicate. At most seen_max ids are kept;
 *    past that, duplicates are caught by the notified marks, only later.
 *  - the notified marks (room, message, device, when) of this process not yet
 *    written: dedupe_flush hands them to the store writer, in one job with the
 *    removal of marks older than a time. The store's marks are what a message's
 *    route read returns as its notified devices, which dedupe_fresh_targets leaves
 *    out.
 *
 * Time is wall-clock milliseconds, passed in (now): marks and their expiry must
 * mean the same across restarts. The router calls every function, on the event
 * loop's thread.
 */
#ifndef PUSHRELAY_DEDUPE_H
#define PUSHRELAY_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

struct device_target;
struct room_member_route;
struct room_route;
struct store_writer;
struct dedupe;

struct dedupe_options {
	int64_t window_ms;		/* how long a message id and its marks count */
	size_t seen_max;		/* message ids kept in memory, at most */
};

/* What dedupe_seen says of a message. */
#define DEDUPE_NEW 0			/* first seen now: remembered, route it */
#define DEDUPE_DUPLICATE 1		/* seen within the window: skip it */

/* Marks are written by writer; now (ms) is when this process began. */
struct dedupe *dedupe_new(struct store_writer *writer, const struct dedupe_options *options,
    int64_t now);
void dedupe_set_options(struct dedupe *dedupe, const struct dedupe_options *options);
void dedupe_free(struct dedupe *dedupe);

/* DEDUPE_NEW (remembered until now + window, if there is room) or DEDUPE_DUPLICATE. */
int dedupe_seen(struct dedupe *dedupe, const char *room, const char *message_id, int64_t now);
/* Message ids remembered. */
size_t dedupe_seen_count(const struct dedupe *dedupe);
/*
 * Could no device have been notified of this message before, so that its route
 * needs no notified devices from the store? Not if it was handed before
 * (redelivered), nor if it is older (ts, ms; 0: unknown) than this process.
 */
int dedupe_is_fresh(const struct dedupe *dedupe, int redelivered, int64_t ts);

/* A device was sent a message at now: its mark is written at the next flush. */
void dedupe_mark(struct dedupe *dedupe, const char *room, const char *message_id,
    const char *device_id, int64_t now);
/* Marks not written yet. */
size_t dedupe_marks_pending(const struct dedupe *dedupe);
/*
 * Hand the pending marks to the writer, with the removal of the stored marks older
 * than expire_before (0: none); nothing when there is neither.
 */
void dedupe_flush(struct dedupe *dedupe, int64_t expire_before);
/*
 * Forget the message ids whose window has passed by now, and flush, removing the
 * marks older than the window.
 */
void dedupe_sweep(struct dedupe *dedupe, int64_t now);

/*
 * A member's devices this message has not notified yet (route's notified devices):
 * moved out of the member (its targets become empty), the others freed. An array of
 * *count targets the caller owns.
 */
struct device_target **dedupe_fresh_targets(struct room_member_route *member,
    const struct room_route *route, size_t *count);

#endif
