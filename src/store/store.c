/*
 * What every owner's data shares: a backend found by name, connections to one
 * database, group commit, and the generation. The owners' calls are in
 * store_registry.c, store_ledger.c, store_outbox.c and store_marks.c.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "xmalloc.h"

/* Shared by the connections to one database: freed with the last of them. */
struct store_shared {
	uint64_t generation;		/* atomic: bumped after changes of routes */
	unsigned int refs;		/* atomic: connections open */
	const struct store_backend *backend;
	struct store_options options;
	char *path;			/* options.path, owned */
	char *conninfo;			/* options.conninfo, owned */
};

uint64_t
store_generation(const struct store *store)
{
	return __atomic_load_n(&store->shared->generation, __ATOMIC_ACQUIRE);
}

/*
 * Move the generation: after a commit, so that a read that sees it sees the change;
 * and tell the other processes on the database, if the backend has any.
 */
static void
generation_bump(struct store *store)
{
	__atomic_add_fetch(&store->shared->generation, 1, __ATOMIC_RELEASE);
	if (store->backend->routes_changed != NULL)
		store->backend->routes_changed(store);
}

void
store_generation_moved_elsewhere(struct store *store)
{
	__atomic_add_fetch(&store->shared->generation, 1, __ATOMIC_RELEASE);
}

struct store_watch *
store_watch_start(struct event_base *base, struct store *store)
{
	if (store->backend->watch_start == NULL)
		return NULL;
	return store->backend->watch_start(base, store);
}

void
store_watch_stop(struct store_watch *watch)
{
	if (watch != NULL)
		watch->stop(watch);
}

/*
 * A write that may change routes happened. In a batch nobody else sees it before the
 * commit: the generation moves then.
 */
void
store_generation_move(struct store *store)
{
	if (store->batch)
		store->batch_changed = 1;
	else
		generation_bump(store);
}

static const struct store_backend *const store_backends[] = {
	&store_sqlite_backend,
	&store_postgresql_backend,
};

#define STORE_BACKEND_COUNT (sizeof store_backends / sizeof store_backends[0])

void
store_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Describe a STORE_E* code. */
const char *
store_strerror(int error)
{
	switch (error) {
	case STORE_OK:
		return "success";
	case STORE_ENOTFOUND:
		return "not found";
	case STORE_EIO:
		return "storage error";
	case STORE_ENEWER:
		return "database written by a newer pushrelayd";
	case STORE_EINVAL:
		return "invalid store options";
	}
	return "unknown store error";
}

/* Open a connection with a backend; the shared part is given, or made here. */
static int
store_connect(const struct store_backend *backend, const struct store_options *options,
    struct store_shared *shared, struct store **out, char *err, size_t errlen)
{
	struct store *store = xcalloc(1, sizeof *store);
	int error;

	store->backend = backend;
	if ((error = backend->open(store, options, err, errlen)) != 0) {
		free(store);
		return error;
	}
	if (shared == NULL) {
		shared = xcalloc(1, sizeof *shared);
		shared->generation = 1;
		shared->backend = backend;
		shared->options = *options;
		shared->path = options->path != NULL ? xstrdup(options->path) : NULL;
		shared->options.path = shared->path;
		shared->conninfo = options->conninfo != NULL ? xstrdup(options->conninfo) :
		    NULL;
		shared->options.conninfo = shared->conninfo;
	}
	__atomic_add_fetch(&shared->refs, 1, __ATOMIC_RELAXED);
	store->shared = shared;
	*out = store;
	return STORE_OK;
}

/* Open a store with the named backend; on failure *out is NULL and err says why. */
int
store_open(const char *backend, const struct store_options *options, struct store **out,
    char *err, size_t errlen)
{
	const struct store_backend *found = NULL;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	for (size_t i = 0; i < STORE_BACKEND_COUNT && backend != NULL; i++) {
		if (strcmp(store_backends[i]->name, backend) == 0) {
			found = store_backends[i];
			break;
		}
	}
	if (found == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "unknown store backend \"%s\" (known: %s, %s)",
			    backend == NULL ? "" : backend, store_backends[0]->name,
			    store_backends[1]->name);
		return STORE_EINVAL;
	}
	return store_connect(found, options, NULL, out, err, errlen);
}

/* Open another connection to the same database, sharing the generation. */
int
store_open_another(struct store *store, struct store **out, char *err, size_t errlen)
{
	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	return store_connect(store->shared->backend, &store->shared->options, store->shared,
	    out, err, errlen);
}

/* Close a connection and free it; the shared part goes with the last one. */
void
store_close(struct store *store)
{
	struct store_shared *shared;

	if (store == NULL)
		return;
	if (store->batch)
		store_batch_rollback(store);
	store->backend->close(store);
	shared = store->shared;
	if (__atomic_sub_fetch(&shared->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(shared->path);
		free(shared->conninfo);
		free(shared);
	}
	free(store);
}

/* Check that the backend still answers. */
int
store_ping(struct store *store)
{
	return store->backend->ping(store);
}

/* Write and take back a little, to see that writes still commit. */
int
store_probe_write(struct store *store, char *err, size_t errlen)
{
	return store->backend->probe_write(store, err, errlen);
}

/* Open a batch: one transaction for many jobs. */
int
store_batch_begin(struct store *store)
{
	int rc = store->backend->batch_begin(store);

	if (rc == STORE_OK) {
		store->batch = 1;
		store->batch_changed = 0;
	}
	return rc;
}

/* Start a job of the batch: what it writes can be undone alone. */
int
store_batch_job_begin(struct store *store)
{
	return store->backend->job_begin(store);
}

/* End a job of the batch, keeping or undoing what it wrote. */
int
store_batch_job_end(struct store *store, int keep)
{
	return store->backend->job_end(store, keep);
}

/* Close the batch, committing it or rolling it back; then move the generation. */
static int
batch_end(struct store *store, int commit)
{
	int rc = store->backend->batch_end(store, commit);

	store->batch = 0;
	if (store->batch_changed)
		generation_bump(store);
	store->batch_changed = 0;
	return rc;
}

/* Commit the batch: every job kept in it is durable now, or none is. */
int
store_batch_commit(struct store *store)
{
	return batch_end(store, 1);
}

/* Commits stop waiting for the disk; store_flush() does it for them. */
int
store_flush_apart(struct store *store)
{
	if (store->backend->flush_apart == NULL || store->backend->flush == NULL)
		return STORE_EINVAL;
	return store->backend->flush_apart(store);
}

/* Make this connection's commits so far durable. */
int
store_flush(struct store *store)
{
	return store->backend->flush(store);
}

/* Roll the batch back (what of it the backend has not already). */
void
store_batch_rollback(struct store *store)
{
	batch_end(store, 0);
}
