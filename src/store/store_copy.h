/*
 * Copying a SQLite registry into a PostgreSQL store, offline: `pushrelayd
 * --copy-store FILE` (main.c), run with no daemon on either database. Every table
 * (devices, memberships with their preferences, the push ledger, the events outbox,
 * unread counts and notified marks) goes over in one PostgreSQL transaction, rows
 * and ids as they are, so that the target has all of it or none. Start-up thread.
 */
#ifndef PUSHRELAY_STORE_COPY_H
#define PUSHRELAY_STORE_COPY_H

#include <stddef.h>

#include "store.h"

/* Rows copied, per table. */
struct store_copy_counts {
	size_t devices;
	size_t memberships;
	size_t pushes;
	size_t push_devices;
	size_t outbox;
	size_t unread;
	size_t notified;
};

/*
 * Copy the SQLite database at from (migrated to STORE_SCHEMA_VERSION first, as the
 * daemon would) into to, a store opened with the postgresql backend. A target that
 * has rows already is refused unless replace is set; then its rows are deleted first,
 * in the same transaction. 0 with counts set; or STORE_EINVAL (to is not PostgreSQL,
 * from does not exist, the target is not empty), STORE_ENEWER, STORE_EIO, with err
 * set and the target unchanged.
 */
int store_copy_from_sqlite(const char *from, struct store *to, int replace,
    struct store_copy_counts *counts, char *err, size_t errlen);

#endif
