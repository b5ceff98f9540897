/* Unread counts per client and room, their totals (badges), and their write-behind. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "pair_key.h"
#include "store_marks.h"
#include "store_writer.h"
#include "strmap.h"
#include "unread.h"
#include "xmalloc.h"

/* A client's unread messages across rooms: the badge. */
struct unread_client {
	int64_t total;
};

/* A client's unread messages in one room, and whether the store is behind on it. */
struct unread_room {
	struct unread_client *client;
	int64_t count;
	int dirty;			/* on the dirty list */
	size_t keylen;
	char key[];			/* "client\0room" and a NUL */
};

struct unread {
	struct store_writer *writer;
	struct strmap *rooms;		/* "client\0room" -> struct unread_room */
	struct strmap *clients;		/* client -> struct unread_client */
	struct unread_room **dirty;	/* counts to write, each once */
	size_t dirty_count, dirty_capacity;
};

/* The counts of one flush, on their way to the store. */
struct unread_job {
	struct unread_count *counts;
	size_t count;
};

/* Counts for writer. */
struct unread *
unread_new(struct store_writer *writer)
{
	struct unread *u = xcalloc(1, sizeof *u);

	u->writer = writer;
	u->rooms = strmap_new();
	u->clients = strmap_new();
	return u;
}

/* Free a map value. */
static void
unread_free_value(const char *key, size_t keylen, void *value, void *arg)
{
	free(value);
}

/* Forget every count. */
void
unread_free(struct unread *u)
{
	if (u == NULL)
		return;
	strmap_foreach(u->rooms, unread_free_value, NULL);
	strmap_free(u->rooms);
	strmap_foreach(u->clients, unread_free_value, NULL);
	strmap_free(u->clients);
	free(u->dirty);
	free(u);
}

/*
 * Change a client's count in a room by delta, or set it to 0 (reset); returns the
 * client's new total. One lookup for a pair seen before: the count leads to the
 * total, and the dirty list replaces a set of changed keys.
 */
static int64_t
unread_change(struct unread *u, const char *client, const char *room, int64_t delta,
    int reset)
{
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, client, room, &keylen);
	struct unread_room *r = strmap_get(u->rooms, key, keylen);
	int64_t old = r != NULL ? r->count : 0, next = reset ? 0 : old + delta;
	struct unread_client *c;

	if (r == NULL && next == old) {
		if (key != kbuf)
			free(key);
		return unread_total(u, client);
	}
	if (r == NULL) {
		if ((c = strmap_get(u->clients, client, strlen(client))) == NULL) {
			c = xcalloc(1, sizeof *c);
			strmap_put(u->clients, client, strlen(client), c);
		}
		r = xcalloc(1, sizeof *r + keylen + 1);
		r->client = c;
		r->keylen = keylen;
		memcpy(r->key, key, keylen + 1);
		strmap_put(u->rooms, key, keylen, r);
	}
	if (key != kbuf)
		free(key);
	if (next != old) {
		r->count = next;
		r->client->total += next - old;
		if (!r->dirty) {
			if (u->dirty_count == u->dirty_capacity) {
				u->dirty_capacity = u->dirty_capacity == 0 ? 256 :
				    u->dirty_capacity * 2;
				u->dirty = xreallocarray(u->dirty, u->dirty_capacity,
				    sizeof *u->dirty);
			}
			u->dirty[u->dirty_count++] = r;
			r->dirty = 1;
		}
	}
	return r->client->total;
}

/* Start from what the store holds. */
int
unread_load(struct unread *u, struct store *store)
{
	struct unread_count *counts;
	size_t n;
	int rc;

	if ((rc = store_unread_load(store, &counts, &n)) != STORE_OK)
		return rc;
	for (size_t i = 0; i < n; i++)
		unread_change(u, counts[i].client_id, counts[i].room_id, counts[i].count, 0);
	store_unread_free(counts, n);
	/* Loaded, not changed: nothing to write back. */
	for (size_t i = 0; i < u->dirty_count; i++)
		u->dirty[i]->dirty = 0;
	u->dirty_count = 0;
	return STORE_OK;
}

/* One more (or fewer) unread message. */
int64_t
unread_add(struct unread *u, const char *client, const char *room, int64_t delta)
{
	return unread_change(u, client, room, delta, 0);
}

/* Everything in the room is read. */
int64_t
unread_reset(struct unread *u, const char *client, const char *room)
{
	return unread_change(u, client, room, 0, 1);
}

/* A client's count in a room. */
int64_t
unread_count(const struct unread *u, const char *client, const char *room)
{
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, client, room, &keylen);
	struct unread_room *r = strmap_get(u->rooms, key, keylen);

	if (key != kbuf)
		free(key);
	return r != NULL ? r->count : 0;
}

/* A client's total across rooms. */
int64_t
unread_total(const struct unread *u, const char *client)
{
	struct unread_client *c = strmap_get(u->clients, client, strlen(client));

	return c != NULL ? c->total : 0;
}

/* How many counts the store is behind on. */
size_t
unread_dirty(const struct unread *u)
{
	return u->dirty_count;
}

/* Writer thread: write one flush's counts. */
static int
unread_job_run(struct store *store, void *arg)
{
	struct unread_job *job = arg;

	return store_unread_put(store, job->counts, job->count);
}

/* Loop thread: the counts are written (or the store logged why not). */
static void
unread_job_done(int result, void *arg)
{
	struct unread_job *job = arg;

	free(job->counts);
	free(job);
}

/*
 * The counts' ids are their records' keys, which live as long as the counts, and so
 * longer than the writer: one buffer, not a string per id.
 */
void
unread_flush(struct unread *u)
{
	struct unread_job *job;

	if (u->dirty_count == 0)
		return;
	job = xcalloc(1, sizeof *job);
	job->counts = xcalloc(u->dirty_count, sizeof *job->counts);
	for (size_t i = 0; i < u->dirty_count; i++) {
		struct unread_room *r = u->dirty[i];
		struct unread_count *c = &job->counts[job->count++];

		c->client_id = r->key;
		c->room_id = (char *)pair_key_second(r->key);
		c->count = r->count;
		r->dirty = 0;
	}
	u->dirty_count = 0;
	store_writer_submit(u->writer, unread_job_run, unread_job_done, job);
}
