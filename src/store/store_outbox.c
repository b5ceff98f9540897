/* The events outbox's calls: through the backend's table. */
#include "autoconf.h"

#include <stdlib.h>

#include "store_outbox.h"

/* The backend's outbox operations. */
static const struct store_outbox_ops *
ops(const struct store *store)
{
	return store->backend->outbox;
}

/* Keep event batches. */
int
store_outbox_add(struct store *store, const enum store_outbox_kind *kinds,
    const char *const *bodies, size_t count, int64_t at, int64_t *ids)
{
	return ops(store)->outbox_add(store, kinds, bodies, count, at, ids);
}

/* Drop handled event batches. */
int
store_outbox_delete(struct store *store, const int64_t *ids, size_t count)
{
	return ops(store)->outbox_delete(store, ids, count);
}

/* Read every kept event batch, oldest first. */
int
store_outbox_load(struct store *store, struct outbox_entry **out, size_t *count)
{
	return ops(store)->outbox_load(store, out, count);
}

/* Free loaded event batches. */
void
store_outbox_free(struct outbox_entry *entries, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(entries[i].body);
	free(entries);
}
