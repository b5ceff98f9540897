/* The push ledger's calls: through the backend's table. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "store_ledger.h"

/* The backend's ledger operations. */
static const struct store_ledger_ops *
ops(const struct store *store)
{
	return store->backend->ledger;
}

/* Insert a push with its rows. */
int
store_push_insert(struct store *store, const struct push_record *record)
{
	return ops(store)->push_insert(store, record);
}

/* Apply a batch of push row changes. */
int
store_push_update(struct store *store, const struct push_row_update *updates, size_t count,
    const struct push_finish *finished, size_t finished_count)
{
	return ops(store)->push_update(store, updates, count, finished, finished_count);
}

/* Read a push with its rows. */
int
store_push_get(struct store *store, const char *push_id, struct push_record *out)
{
	return ops(store)->push_get(store, push_id, out);
}

/* Read every unfinished push. */
int
store_pushes_unfinished(struct store *store, struct push_record **out, size_t *count)
{
	return ops(store)->pushes_unfinished(store, out, count);
}

/* Delete pushes finished before a time. */
int
store_pushes_expire(struct store *store, int64_t finished_before, size_t *deleted)
{
	return ops(store)->pushes_expire(store, finished_before, deleted);
}

/* Free a push record and its rows. */
void
store_push_record_free(struct push_record *record)
{
	if (record == NULL)
		return;
	for (size_t i = 0; i < record->count; i++) {
		free(record->rows[i].device_id);
		free(record->rows[i].client_id);
		free(record->rows[i].app_id);
		free(record->rows[i].state);
		free(record->rows[i].reason);
	}
	free(record->rows);
	free(record->push_id);
	free(record->content);
	memset(record, 0, sizeof *record);
}
