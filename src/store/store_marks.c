/* The router's marks' calls: through the backend's table. */
#include "autoconf.h"

#include <stdlib.h>

#include "store_marks.h"

/* The backend's marks operations. */
static const struct store_marks_ops *
ops(const struct store *store)
{
	return store->backend->marks;
}

/* Remember notified devices. */
int
store_notified_add(struct store *store, const struct notified_mark *marks, size_t count)
{
	return ops(store)->notified_add(store, marks, count);
}

/* Forget notified devices older than a time. */
int
store_notified_expire(struct store *store, int64_t before)
{
	return ops(store)->notified_expire(store, before);
}

/* Set unread counts. */
int
store_unread_put(struct store *store, const struct unread_count *counts, size_t count)
{
	return ops(store)->unread_put(store, counts, count);
}

/* Load every unread count. */
int
store_unread_load(struct store *store, struct unread_count **out, size_t *count)
{
	return ops(store)->unread_load(store, out, count);
}

/* Free loaded unread counts. */
void
store_unread_free(struct unread_count *counts, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(counts[i].client_id);
		free(counts[i].room_id);
	}
	free(counts);
}
