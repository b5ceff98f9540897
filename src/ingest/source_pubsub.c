/* Room events from Redis Pub/Sub: one pattern subscription on a redis_link. */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "config.h"
#include "event.h"
#include "log.h"
#include "redis_link.h"
#include "source.h"
#include "source_pubsub.h"
#include "xmalloc.h"

struct source {
	const char *name;
	struct source_sink sink;
	struct redis_link *link;
	int busy;			/* callbacks of ours on the stack */
	int stopping;
	struct source_stats stats;
	struct redis_ratelimit skip_log;
	struct redis_ratelimit drop_log;
	int sink_paused;		/* pause() called, resume() not yet */
	char *pattern;
	size_t prefix_len;		/* the pattern before its first * */
	size_t suffix_len;		/* and after it */
};

/* Free a source (stopped, with no callback of ours on the stack). */
static void
pubsub_free(struct source *source)
{
	redis_link_free(source->link);
	free(source->pattern);
	free(source);
}

/* Leave a callback of ours; free the source if it was stopped meanwhile. */
static void
pubsub_release(struct source *source)
{
	if (--source->busy == 0 && source->stopping)
		pubsub_free(source);
}

/* Count, report and log (rate-limited) an event that was skipped. */
static void
pubsub_skip(struct source *source, int rv, const char *error, const char *channel)
{
	const char *reason = rv == EVENT_EUNKNOWN ? "unknown" : "malformed";
	uint64_t suppressed;
	char n[24];

	if (rv == EVENT_EUNKNOWN)
		source->stats.unknown++;
	else
		source->stats.malformed++;
	if (source->sink.skipped != NULL)
		source->sink.skipped(source->sink.arg, source->name, reason);
	if (!redis_ratelimit_allow(&source->skip_log, &suppressed))
		return;
	snprintf(n, sizeof n, "%llu", (unsigned long long)suppressed);
	log_warn("event skipped", "source", source->name, "reason", reason, "error", error,
	    "channel", channel, suppressed > 0 ? "suppressed" : NULL, n, NULL);
}

/* Pub/Sub cannot replay: nothing to acknowledge. */
static void
pubsub_ack(void *ctx)
{
}

/* One published message: parse it and hand it to the sink, or count why not. */
static void
pubsub_take(struct source *source, const redisReply *channel, const redisReply *payload)
{
	struct room_event event;
	char error[256], n[24], total[24];
	char *room = NULL;
	uint64_t suppressed;
	size_t len = channel->len;
	int rv;

	/* The room is what the pattern's * matched. */
	if (len > source->prefix_len + source->suffix_len &&
	    memcmp(channel->str, source->pattern, source->prefix_len) == 0 &&
	    memcmp(channel->str + len - source->suffix_len,
	    source->pattern + strlen(source->pattern) - source->suffix_len,
	    source->suffix_len) == 0)
		room = xstrndup(channel->str + source->prefix_len,
		    len - source->prefix_len - source->suffix_len);

	rv = room_event_parse_text(payload->str, payload->len, room, &event, error,
	    sizeof error);
	free(room);
	if (rv != EVENT_OK) {
		pubsub_skip(source, rv, error, channel->str);
		return;
	}
	rv = source->sink.handle(source->sink.arg, &event, pubsub_ack, NULL);
	/* Taken, the sink moved the event out: this frees nothing then. */
	room_event_free(&event);
	if (rv != SOURCE_EFULL) {
		source->stats.received++;
		return;
	}
	source->stats.dropped++;
	if (!redis_ratelimit_allow(&source->drop_log, &suppressed))
		return;
	snprintf(n, sizeof n, "%llu", (unsigned long long)suppressed);
	snprintf(total, sizeof total, "%llu", (unsigned long long)source->stats.dropped);
	log_warn("event dropped: the sink is full and pub/sub cannot wait",
	    "source", source->name, "channel", channel->str, "dropped", total,
	    suppressed > 0 ? "suppressed" : NULL, n, NULL);
}

/* The subscription's replies: its confirmation, then one per message. */
static void
pubsub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct source *source = privdata;
	redisReply *reply = r;
	const char *kind;

	if (ac->data == NULL || reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    !redis_reply_is_string(reply->element[0]))
		return;
	kind = reply->element[0]->str;
	if (strcasecmp(kind, "psubscribe") == 0) {
		redis_link_established(source->link);
		log_debug("redis pattern subscribed", "source", source->name,
		    "pattern", source->pattern, NULL);
		return;
	}
	if (strcasecmp(kind, "pmessage") != 0 || reply->elements < 4 ||
	    !redis_reply_is_string(reply->element[2]) ||
	    !redis_reply_is_string(reply->element[3]))
		return;
	source->busy++;
	pubsub_take(source, reply->element[2], reply->element[3]);
	pubsub_release(source);
}

/* The link is up: subscribe to the pattern (again, after a reconnect). */
static void
pubsub_subscribe(void *arg)
{
	struct source *source = arg;
	const char *argv[2] = { "PSUBSCRIBE", source->pattern };

	/* Refused only when the connection is going down, which is handled there. */
	(void)redisAsyncCommandArgv(redis_link_context(source->link, 0), pubsub_reply, source,
	    2, argv, NULL);
}

/* Start following rooms on Pub/Sub; NULL with err set on a configuration error. */
static struct source *
pubsub_start(struct event_base *base, const struct config *config,
    const struct source_sink *sink, char *err, size_t errlen)
{
	struct redis_link_options options = {
		.name = source_pubsub_ops.name, .roles = { "subscriber" }, .count = 1,
	};
	struct redis_link_callbacks callbacks = { .ready = pubsub_subscribe };
	struct source *source = xcalloc(1, sizeof *source);
	const char *star;

	source->name = source_pubsub_ops.name;
	source->sink = *sink;
	source->stats.lag = -1;
	callbacks.arg = source;
	if ((source->link = redis_link_new(base, config, &options, &callbacks, err,
	    errlen)) == NULL) {
		pubsub_free(source);
		return NULL;
	}
	if (config->pubsub_pattern == NULL ||
	    (star = strchr(config->pubsub_pattern, '*')) == NULL) {
		snprintf(err, errlen, "[pubsub] pattern: must contain a * (the room id)");
		pubsub_free(source);
		return NULL;
	}
	source->pattern = xstrdup(config->pubsub_pattern);
	source->prefix_len = (size_t)(star - config->pubsub_pattern);
	source->suffix_len = strlen(star + 1);
	redis_link_start(source->link);
	return source;
}

/* The sink has no room: Pub/Sub cannot stop, it only notes it. */
static void
pubsub_pause(struct source *source)
{
	source->sink_paused = 1;
}

/* The sink has room again (nothing was held). */
static void
pubsub_resume(struct source *source)
{
	source->sink_paused = 0;
}

/*
 * Stop: drop the connection. The source is freed now or, when stopped from inside
 * one of its callbacks, when that callback returns.
 */
static void
pubsub_stop(struct source *source)
{
	if (source == NULL || source->stopping)
		return;
	source->stopping = 1;
	redis_link_stop(source->link);
	log_info("redis source stopped", "source", source->name, NULL);
	if (source->busy == 0)
		pubsub_free(source);
}

/* The counters, and whether the source is connected and paused now. */
static void
pubsub_stats(const struct source *source, struct source_stats *stats)
{
	*stats = source->stats;
	stats->reconnects = redis_link_reconnects(source->link);
	stats->connected = redis_link_is_established(source->link);
	stats->lag = -1;
	stats->paused = source->sink_paused;
}

const struct source_ops source_pubsub_ops = {
	.name = "redis-pubsub",
	.start = pubsub_start,
	.pause = pubsub_pause,
	.resume = pubsub_resume,
	.stop = pubsub_stop,
	.stats = pubsub_stats,
};
