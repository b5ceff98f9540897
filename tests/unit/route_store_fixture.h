/*
 * A store for the route pieces' tests: a SQLite file in a temp dir, the loop's
 * connection, and a store writer thread on an event base, as the daemon has them.
 * Included by test_unread.c, test_dedupe.c, test_route_cache.c and test_membership.c,
 * with the store headers they read back through: the registry and the marks.
 */
#ifndef PUSHRELAY_ROUTE_STORE_FIXTURE_H
#define PUSHRELAY_ROUTE_STORE_FIXTURE_H

#include <sys/stat.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "store_marks.h"
#include "store_registry.h"
#include "store_writer.h"

struct route_store_fixture {
	char dir[256];
	char path[PATH_MAX];
	struct event_base *base;
	struct store *store;		/* the loop's connection */
	struct store_writer *writer;	/* a thread with its own */
};

/* Open a fresh store and start a writer on it; 0 or -1. */
static int
route_store_open(struct route_store_fixture *f, const char *name)
{
	struct store_options options = { f->path, STORE_SYNC_NORMAL, 1000, 0, 0, NULL };
	const char *tmp = getenv("TMPDIR");
	char err[512];

	snprintf(f->dir, sizeof f->dir, "%s/%s.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp", name);
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/registry.db", f->dir);
	if (store_open("sqlite", &options, &f->store, err, sizeof err) != STORE_OK) {
		fprintf(stderr, "store_open: %s\n", err);
		return -1;
	}
	if ((f->base = event_base_new()) == NULL)
		return -1;
	f->writer = store_writer_start(f->base, f->store, STORE_WRITER_EACH, err, sizeof err);
	if (f->writer == NULL) {
		fprintf(stderr, "store_writer_start: %s\n", err);
		return -1;
	}
	return 0;
}

/* Run the loop until every job handed to the writer is done, callbacks included. */
static void
route_store_drain(struct route_store_fixture *f)
{
	while (store_writer_pending(f->writer) > 0)
		event_base_loop(f->base, EVLOOP_ONCE);
}

/* nftw callback: remove one file or (emptied) directory. */
static int
route_store_remove(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

/* Stop the writer (finishing its jobs), close the store, remove the temp dir. */
static void
route_store_close(struct route_store_fixture *f)
{
	if (f->writer != NULL)
		store_writer_stop(f->writer);
	if (f->store != NULL)
		store_close(f->store);
	if (f->base != NULL)
		event_base_free(f->base);
	nftw(f->dir, route_store_remove, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
