/*
 * The log provider: a dry run for platforms without credentials. It writes what
 * would have been sent to the log and reports it delivered, so a fresh install shows
 * the whole path without an Apple or Google account.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "delivery.h"
#include "log.h"
#include "provider.h"
#include "xmalloc.h"

/* Deliveries wait here so that completion never happens inside send(). */
struct log_pending {
	TAILQ_ENTRY(log_pending) entry;
	struct delivery *delivery;
	provider_done_fn *done;		/* told of the result */
	void *done_arg;
};
TAILQ_HEAD(log_pending_list, log_pending);

struct provider {
	struct event *flush;
	struct log_pending_list pending;
	struct provider_stats stats;
	char *body;			/* render buffer, grown as needed */
	size_t body_size;
};

/* Log one delivery as it would have gone out, and report it sent. */
static void
log_deliver(struct provider *p, struct delivery *d, provider_done_fn *done, void *done_arg)
{
	const struct payload *payload;
	struct provider_result result;
	char redacted[LOG_REDACT_SIZE];
	size_t need, len;
	int error;

	payload_content_prepare(d->content, d->platform);
	payload = d->platform == DEVICE_PLATFORM_APNS ? &d->content->apns : &d->content->fcm;
	error = d->platform == DEVICE_PLATFORM_APNS ? d->content->apns_error :
	    d->content->fcm_error;
	memset(&result, 0, sizeof result);
	if (error != PAYLOAD_OK) {
		result.verdict = PROVIDER_REJECTED;
		snprintf(result.reason, sizeof result.reason, "%s", payload_strerror(error));
		p->stats.rejected++;
		done(d, &result, done_arg);
		return;
	}
	/* FCM bodies carry the token: log them with the redacted one. */
	log_redact(d->token, redacted);
	need = payload_render_max(payload, strlen(redacted)) + 1;
	if (need > p->body_size) {
		free(p->body);
		p->body_size = need;
		p->body = xmalloc(need);
	}
	len = payload_render(payload, redacted, d->badge, p->body);
	p->body[len] = '\0';
	log_info("dry run: would send", "platform", model_platform_name(d->platform),
	    "app_id", d->app_id, "environment", model_environment_name(d->environment),
	    "device_id", d->device_id, "client_id", d->client_id, "token", redacted, "id", d->id,
	    "payload", p->body, NULL);
	result.verdict = PROVIDER_SENT;
	result.status = 200;
	snprintf(result.reason, sizeof result.reason, "dry run: logged, not sent");
	p->stats.sent++;
	done(d, &result, done_arg);
}

static void
log_flush(evutil_socket_t fd, short what, void *arg)
{
	struct provider *p = arg;
	struct log_pending *item;

	while ((item = TAILQ_FIRST(&p->pending)) != NULL) {
		TAILQ_REMOVE(&p->pending, item, entry);
		p->stats.queued--;
		log_deliver(p, item->delivery, item->done, item->done_arg);
		free(item);
	}
}

static struct provider *
log_create(struct event_base *base, const struct config *config, char *err, size_t errlen)
{
	struct provider *p = xcalloc(1, sizeof *p);

	TAILQ_INIT(&p->pending);
	if ((p->flush = event_new(base, -1, 0, log_flush, p)) == NULL)
		fatalx("cannot create the log provider's event");
	return p;
}

static int
log_send(struct provider *p, struct delivery *d, provider_done_fn *done, void *done_arg)
{
	struct log_pending *item = xmalloc(sizeof *item);

	item->delivery = d;
	item->done = done;
	item->done_arg = done_arg;
	TAILQ_INSERT_TAIL(&p->pending, item, entry);
	p->stats.queued++;
	event_active(p->flush, 0, 0);
	return PROVIDER_OK;
}

static int
log_reload(struct provider *p, const struct config *config, char *err, size_t errlen)
{
	return 0;
}

static void
log_drain(struct provider *p, void (*done)(void *arg), void *arg)
{
	log_flush(-1, 0, p);
	done(arg);
}

static void
log_free(struct provider *p)
{
	struct provider_result result;
	struct log_pending *item;

	memset(&result, 0, sizeof result);
	result.verdict = PROVIDER_RETRY;
	snprintf(result.reason, sizeof result.reason, "shutdown");
	while ((item = TAILQ_FIRST(&p->pending)) != NULL) {
		TAILQ_REMOVE(&p->pending, item, entry);
		item->done(item->delivery, &result, item->done_arg);
		free(item);
	}
	event_free(p->flush);
	free(p->body);
	free(p);
}

static void
log_stats(const struct provider *p, struct provider_stats *stats)
{
	*stats = p->stats;
}

const struct provider_ops provider_log_ops = {
	.name = "log",
	.create = log_create,
	.send = log_send,
	.check = log_reload,
	.reload = log_reload,
	.drain = log_drain,
	.free = log_free,
	.stats = log_stats,
};
