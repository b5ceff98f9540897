/*
 * Routes changed by other instances on one PostgreSQL database (store.h's
 * store_watch_start): LISTEN on a connection of the event loop's own, NOTIFY after
 * each commit that changed a room's route.
 *
 * A write that may change a route (a membership, a member's device) moves the
 * generation after its commit (store.c); for this backend that also sends
 * NOTIFY pushrelay_routes on the writing connection (pg_routes_changed, on its store
 * thread). Every instance's watch LISTENs on that channel and moves its own
 * generation for each notification, so its route cache reads the room again.
 *
 * The watch never blocks the loop: it connects with PQconnectStart/PQconnectPoll,
 * sends LISTEN with PQsendQuery on a non-blocking connection, and reads with
 * PQconsumeInput when its socket is readable. When the server goes away it logs
 * once, closes, and connects again after a backoff (100 ms doubling to 5 s); once it
 * listens again it moves the generation, since a notification may have been missed
 * meanwhile. Its connection string is the store's.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "clock.h"
#include "log.h"
#include "pg_internal.h"
#include "store.h"
#include "xmalloc.h"

#define PG_WATCH_CHANNEL "pushrelay_routes"
#define PG_WATCH_RETRY_FIRST_MS 100
#define PG_WATCH_RETRY_MAX_MS 5000

enum pg_watch_state {
	WATCH_CONNECTING,	/* PQconnectPoll until CONNECTION_OK */
	WATCH_SUBSCRIBING,	/* LISTEN sent, its result not read yet */
	WATCH_LISTENING,
	WATCH_WAITING,		/* no connection: the retry timer runs */
};

struct pg_watch {
	struct store_watch watch;	/* first: store_watch_stop() calls its stop */
	struct event_base *base;
	struct store *store;		/* whose generation moves */
	char *conninfo;
	char *display;			/* without its password, for logs */
	PGconn *conn;
	int fd;				/* PQsocket() the event watches, or -1 */
	short what;			/* EV_READ or EV_WRITE, as PQconnectPoll asks */
	struct event *io;
	struct event *retry;
	int64_t backoff_ms;
	enum pg_watch_state state;
	int down;			/* lost: logged once until it listens again */
	uint64_t notifications;
};

static void watch_io(evutil_socket_t fd, short what, void *arg);
static void watch_connect(struct pg_watch *w);

/* Watch fd for what (EV_READ or EV_WRITE); a new socket gets a new event. */
static void
watch_arm(struct pg_watch *w, int fd, short what)
{
	if (w->io != NULL && (w->fd != fd || w->what != what)) {
		event_free(w->io);
		w->io = NULL;
	}
	if (w->io == NULL) {
		w->fd = fd;
		w->what = what;
		if ((w->io = event_new(w->base, fd, what | EV_PERSIST, watch_io, w)) == NULL)
			fatalx("event_new: out of memory");
		event_add(w->io, NULL);
	}
}

/* Close the connection and try again after the backoff. */
static void
watch_fail(struct pg_watch *w, const char *why)
{
	struct timeval tv;

	if (!w->down)
		log_warn("store watch lost PostgreSQL: other instances' route changes wait "
		    "until it is back", "server", w->display, "error", why, NULL);
	w->down = 1;
	if (w->io != NULL) {
		event_free(w->io);
		w->io = NULL;
	}
	w->fd = -1;
	if (w->conn != NULL) {
		PQfinish(w->conn);
		w->conn = NULL;
	}
	w->state = WATCH_WAITING;
	w->backoff_ms = w->backoff_ms == 0 ? PG_WATCH_RETRY_FIRST_MS :
	    w->backoff_ms * 2 > PG_WATCH_RETRY_MAX_MS ? PG_WATCH_RETRY_MAX_MS :
	    w->backoff_ms * 2;
	tv.tv_sec = (time_t)(w->backoff_ms / 1000);
	tv.tv_usec = (suseconds_t)(w->backoff_ms % 1000) * 1000;
	evtimer_add(w->retry, &tv);
}

/* The connection's error, first line, at most a log line's worth. */
static const char *
watch_error(struct pg_watch *w, char *buf, size_t size)
{
	const char *message = w->conn != NULL ? PQerrorMessage(w->conn) : "no connection";

	snprintf(buf, size, "%.*s", (int)strcspn(message, "\r\n"), message);
	return buf[0] != '\0' ? buf : "connection lost";
}

/* Connected: subscribe. */
static void
watch_subscribe(struct pg_watch *w)
{
	char why[256];

	if (PQsetnonblocking(w->conn, 1) != 0 ||
	    PQsendQuery(w->conn, "LISTEN " PG_WATCH_CHANNEL) != 1) {
		watch_fail(w, watch_error(w, why, sizeof why));
		return;
	}
	w->state = WATCH_SUBSCRIBING;
	/* PQflush: 0 sent, 1 more to send (wait for writable), -1 failed. */
	switch (PQflush(w->conn)) {
	case 0:
		watch_arm(w, PQsocket(w->conn), EV_READ);
		break;
	case 1:
		watch_arm(w, PQsocket(w->conn), EV_WRITE);
		break;
	default:
		watch_fail(w, watch_error(w, why, sizeof why));
		break;
	}
}

/* Read what came: LISTEN's result, notifications; a lost connection fails. */
static void
watch_read(struct pg_watch *w)
{
	PGnotify *notify;
	PGresult *result;
	char why[256];
	int moved = 0;

	if (PQconsumeInput(w->conn) != 1) {
		watch_fail(w, watch_error(w, why, sizeof why));
		return;
	}
	while (!PQisBusy(w->conn) && (result = PQgetResult(w->conn)) != NULL) {
		if (w->state == WATCH_SUBSCRIBING && PQresultStatus(result) != PGRES_COMMAND_OK) {
			PQclear(result);
			watch_fail(w, watch_error(w, why, sizeof why));
			return;
		}
		PQclear(result);
	}
	if (w->state == WATCH_SUBSCRIBING && !PQisBusy(w->conn)) {
		w->state = WATCH_LISTENING;
		w->backoff_ms = 0;
		if (w->down)
			log_info("store watch is back: routes are read again", "server",
			    w->display, NULL);
		else
			log_info("store watch listens for other instances' route changes",
			    "server", w->display, "channel", PG_WATCH_CHANNEL, NULL);
		w->down = 0;
		/* What changed while nobody listened is not known: everything, then. */
		moved = 1;
	}
	while ((notify = PQnotifies(w->conn)) != NULL) {
		w->notifications++;
		moved = 1;
		PQfreemem(notify);
	}
	if (moved)
		store_generation_moved_elsewhere(w->store);
	if (PQstatus(w->conn) != CONNECTION_OK)
		watch_fail(w, watch_error(w, why, sizeof why));
}

/* The socket is ready: go on connecting, flushing or reading. */
static void
watch_io(evutil_socket_t fd, short what, void *arg)
{
	struct pg_watch *w = arg;
	char why[256];

	(void)fd;
	(void)what;
	if (w->state == WATCH_CONNECTING) {
		watch_connect(w);
		return;
	}
	if (w->what == EV_WRITE) {
		int rc = PQflush(w->conn);

		if (rc == -1)
			watch_fail(w, watch_error(w, why, sizeof why));
		else if (rc == 0)
			watch_arm(w, PQsocket(w->conn), EV_READ);
		return;
	}
	watch_read(w);
}

/* Start or go on with the asynchronous connect. */
static void
watch_connect(struct pg_watch *w)
{
	char why[256];

	if (w->conn == NULL) {
		const char *const keywords[] = { "application_name", "keepalives_idle",
			"keepalives_interval", "keepalives_count", "tcp_user_timeout", "dbname",
			NULL };
		const char *const values[] = { "pushrelayd-watch", "30", "10", "3", "60000",
			w->conninfo, NULL };

		w->state = WATCH_CONNECTING;
		w->conn = PQconnectStartParams(keywords, values, 1);
		if (w->conn == NULL || PQstatus(w->conn) == CONNECTION_BAD) {
			watch_fail(w, watch_error(w, why, sizeof why));
			return;
		}
	}
	switch (PQconnectPoll(w->conn)) {
	case PGRES_POLLING_READING:
		watch_arm(w, PQsocket(w->conn), EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		watch_arm(w, PQsocket(w->conn), EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		watch_subscribe(w);
		break;
	default:
		watch_fail(w, watch_error(w, why, sizeof why));
		break;
	}
}

static void
watch_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	watch_connect(arg);
}

static void
pg_watch_stop(struct store_watch *watch)
{
	struct pg_watch *w = (struct pg_watch *)watch;

	if (w->io != NULL)
		event_free(w->io);
	event_free(w->retry);
	if (w->conn != NULL)
		PQfinish(w->conn);
	free(w->conninfo);
	free(w->display);
	free(w);
}

struct store_watch *
pg_watch_start(struct event_base *base, struct store *store)
{
	struct pg_store *s = store->data;
	struct pg_watch *w = xcalloc(1, sizeof *w);

	w->watch.stop = pg_watch_stop;
	w->base = base;
	w->store = store;
	w->conninfo = xstrdup(s->conninfo);
	w->display = xstrdup(s->display);
	w->fd = -1;
	if ((w->retry = evtimer_new(base, watch_retry, w)) == NULL)
		fatalx("evtimer_new: out of memory");
	watch_connect(w);
	return &w->watch;
}

/* A route changed here, committed: tell the other instances (their watches). */
void
pg_routes_changed(struct store *store)
{
	struct pg_store *s = store->data;
	PGresult *result;

	if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK)
		return;		/* the call that changed it failed already, or will */
	result = PQexec(s->conn, "NOTIFY " PG_WATCH_CHANNEL);
	if (PQresultStatus(result) != PGRES_COMMAND_OK)
		log_warn("cannot tell other instances that a route changed: their cached "
		    "routes stay as they are until their next change", "server", s->display,
		    NULL);
	PQclear(result);
}
