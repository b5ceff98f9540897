/* Membership writes from events, in order with the routing reads. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "membership.h"
#include "pair_key.h"
#include "store_registry.h"
#include "store_writer.h"
#include "strmap.h"
#include "tracker.h"
#include "xmalloc.h"

struct membership {
	struct store_writer *reader;
	struct strmap *members;		/* "room\0client" known members (implicit joins) */
};

/* A write to the store, acknowledged once committed. */
struct membership_job {
	char *room;
	char *client;
	int join;
	int64_t now;
	struct tracker *tracker;
};

/* No member known yet. */
struct membership *
membership_new(struct store_writer *reader)
{
	struct membership *m = xcalloc(1, sizeof *m);

	m->reader = reader;
	m->members = strmap_new();
	return m;
}

/* Forget the known members (the values are not allocated). */
void
membership_free(struct membership *m)
{
	if (m == NULL)
		return;
	strmap_free(m->members);
	free(m);
}

/* Reader thread: a join, or a leave of someone who may not be a member. */
static int
membership_job_run(struct store *store, void *arg)
{
	struct membership_job *job = arg;
	int rc;

	if (job->join)
		return store_member_put(store, job->room, job->client, job->now, NULL, NULL);
	rc = store_member_delete(store, job->room, job->client);
	return rc == STORE_ENOTFOUND ? STORE_OK : rc;
}

/* Loop thread: the write is done. */
static void
membership_job_done(int result, void *arg)
{
	struct membership_job *job = arg;

	if (job->tracker != NULL)
		tracker_release(job->tracker);
	free(job->room);
	free(job->client);
	free(job);
}

/* Record a membership (once per process for implicit ones). */
static void
membership_change(struct membership *m, const char *room, const char *client, int join,
    int64_t now, struct tracker *t, int implicit)
{
	struct membership_job *job;
	size_t keylen;
	char kbuf[PAIR_KEY_STACK];
	char *key = pair_key_into(kbuf, sizeof kbuf, room, client, &keylen);

	if (implicit && strmap_get(m->members, key, keylen) != NULL) {
		if (key != kbuf)
			free(key);
		return;
	}
	if (join)
		strmap_put(m->members, key, keylen, m);
	else
		strmap_remove(m->members, key, keylen);
	if (key != kbuf)
		free(key);
	job = xcalloc(1, sizeof *job);
	job->room = xstrdup(room);
	job->client = xstrdup(client);
	job->join = join;
	job->now = now;
	job->tracker = t;
	if (t != NULL)
		tracker_hold(t);
	/* In line with the routing reads: a message sees the joins before it, only them. */
	store_writer_submit(m->reader, membership_job_run, membership_job_done, job);
}

/* An explicit join or leave. */
void
membership_write(struct membership *m, const char *room, const char *client, int join,
    int64_t now, struct tracker *t)
{
	membership_change(m, room, client, join, now, t, 0);
}

/* A join implied by a message or a presence enter. */
void
membership_join_implicit(struct membership *m, const char *room, const char *client,
    int64_t now)
{
	membership_change(m, room, client, 1, now, NULL, 1);
}

/* How many pairs are known members. */
size_t
membership_known(const struct membership *m)
{
	return strmap_count(m->members);
}
