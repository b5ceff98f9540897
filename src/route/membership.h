/*
 * Membership changes that room events make: member.join and member.leave, and the
 * implicit joins of a sender or of a client entering presence (rooms.implicit_membership).
 *
 * Writes go to the reader (the store thread that reads routes, see route_cache.h),
 * so that a message's route sees exactly the membership changes of the events before
 * it. Owns the set of (room, client) pairs this process has made members (struct
 * membership, which only membership.c sees), so that an implicit join is written once
 * per process, not per message.
 *
 * The router calls every function on the event loop's thread.
 */
#ifndef PUSHRELAY_MEMBERSHIP_H
#define PUSHRELAY_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>

struct store_writer;
struct tracker;
struct membership;

/* Writes go to reader (a write in flight owns its copies: free at any time). */
struct membership *membership_new(struct store_writer *reader);
void membership_free(struct membership *membership);

/*
 * A join (joined at now, ms) or a leave. tracker (may be NULL) is held until the
 * write is committed or has failed (the store logs why): then the event is done.
 */
void membership_write(struct membership *membership, const char *room, const char *client,
    int join, int64_t now, struct tracker *tracker);
/* A join that events imply: written unless this process made client a member before. */
void membership_join_implicit(struct membership *membership, const char *room,
    const char *client, int64_t now);
/* Pairs this process knows are members. */
size_t membership_known(const struct membership *membership);

#endif
