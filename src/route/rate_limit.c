/* Notifications per recipient and minute, in fixed windows. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "rate_limit.h"
#include "strmap.h"
#include "xmalloc.h"

struct rate_limit {
	int limit;
	struct strmap *clients;		/* client -> struct rate_window */
};

/* One client's current window. */
struct rate_window {
	int64_t start;
	int count;
};

/* A sweep at one time. */
struct rate_sweep {
	struct rate_limit *rate;
	int64_t now;
};

/* No client counted yet. */
struct rate_limit *
rate_limit_new(int limit)
{
	struct rate_limit *rate = xcalloc(1, sizeof *rate);

	rate->limit = limit;
	rate->clients = strmap_new();
	return rate;
}

/* A new limit, for the windows running too. */
void
rate_limit_set(struct rate_limit *rate, int limit)
{
	rate->limit = limit;
}

/* Free a window. */
static void
rate_free_window(const char *key, size_t keylen, void *value, void *arg)
{
	free(value);
}

/* Forget every window. */
void
rate_limit_free(struct rate_limit *rate)
{
	if (rate == NULL)
		return;
	strmap_foreach(rate->clients, rate_free_window, NULL);
	strmap_free(rate->clients);
	free(rate);
}

/* Count a notification to client, unless it is over the limit. */
int
rate_limit_take(struct rate_limit *rate, const char *client, int64_t now)
{
	struct rate_window *w;

	if (rate->limit <= 0)
		return RATE_LIMIT_OK;
	if ((w = strmap_get(rate->clients, client, strlen(client))) == NULL) {
		w = xcalloc(1, sizeof *w);
		w->start = now;
		strmap_put(rate->clients, client, strlen(client), w);
	} else if (now - w->start >= RATE_LIMIT_WINDOW_MS) {
		w->start = now;
		w->count = 0;
	}
	if (w->count >= rate->limit)
		return RATE_LIMIT_EXCEEDED;
	w->count++;
	return RATE_LIMIT_OK;
}

/* Forget one window if it has ended: the map stays bounded. */
static void
rate_sweep_window(const char *key, size_t keylen, void *value, void *arg)
{
	struct rate_sweep *sweep = arg;
	struct rate_window *w = value;

	if (sweep->now - w->start >= RATE_LIMIT_WINDOW_MS)
		free(strmap_remove(sweep->rate->clients, key, keylen));
}

/* Forget the windows that have ended. */
void
rate_limit_sweep(struct rate_limit *rate, int64_t now)
{
	struct rate_sweep sweep = { rate, now };

	strmap_foreach(rate->clients, rate_sweep_window, &sweep);
}

/* How many clients have a window. */
size_t
rate_limit_clients(const struct rate_limit *rate)
{
	return strmap_count(rate->clients);
}
