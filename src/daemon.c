/* Start-up, signals, reload and shutdown around one libevent loop. */
#include "autoconf.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "ably_keys.h"
#include "api.h"
#include "apikey.h"
#include "config.h"
#include "daemon.h"
#include "delivery.h"
#include "feedback.h"
#include "log.h"
#include "metrics.h"
#include "provider.h"
#include "push.h"
#include "router.h"
#include "source.h"
#include "source_http.h"
#include "source_pubsub.h"
#include "source_streams.h"
#include "state.h"
#include "state_memory.h"
#include "state_redis.h"
#include "store.h"
#include "store_writer.h"
#include "xmalloc.h"

#define DAEMON_DRAIN_CHECK_MS 10
/* How often the store writer proves that writes commit, for /readyz. */
#define DAEMON_WRITE_PROBE_MS 5000
/* How often the API's store thread proves that reads answer, for /readyz. */
#define DAEMON_READ_PING_MS 1000

struct daemon {
	struct event_base *base;
	struct config config;
	const char *config_path;
	struct store *store;		/* start-up only: the threads open theirs from it */
	struct store_watch *store_watch;	/* other instances' route changes, or NULL */
	struct store_writer *writer;	/* writes off the loop, group-committed */
	struct store_writer *reader;	/* routing reads, on another: never behind writes */
	struct store_writer *api_reader;	/* the API's reads, on a third */
	struct store_options store_options;
	struct api *api;
	struct metrics *metrics;	/* what GET /metrics and /v1/stats read */
	struct feedback *feedback;
	/* The provider of each platform: APNs / FCM, or the log provider (dry run). */
	const struct provider_ops *provider_ops[2];
	struct provider *providers[2];
	struct delivery_layer *delivery;	/* NULL until started */
	struct push_ledger *pushes;
	struct state *state;		/* the room state the router decides with */
	struct router *router;
	/* The room-event sources that are on, with their operations. */
	struct source_http *http;	/* POST /v1/events and Ably webhooks, if on */
	const struct source_ops *source_ops[4];
	struct source *sources[4];
	size_t source_count;
	struct daemon_source_check {	/* /readyz's view of each Redis source */
		const struct source_ops *ops;
		struct source *source;
	} source_checks[4];
	struct event *sigterm, *sigint, *sighup;
	struct event *drain_timer;	/* checks whether in-flight work is done */
	struct event *deadline_timer;	/* bounds the shutdown */
	int stopping;
	int providers_draining;		/* drains not finished yet */
};

/* Tell systemd about our state; a no-op without libsystemd. */
static void
daemon_notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

/* Create a directory and its parents. */
static int
mkdir_parents(const char *path, mode_t mode)
{
	char *copy = xstrdup(path);

	for (char *p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) == -1 && errno != EEXIST) {
			free(copy);
			return -1;
		}
		*p = '/';
	}
	free(copy);
	if (mkdir(path, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * Load the API keys, generating the default key file on the first start only. On a
 * reload a missing file is an error: a new key would lock out every client.
 */
static struct apikeys *
daemon_load_keys(const struct config *config, int starting, char *err, size_t errlen)
{
	struct apikeys *keys;
	int rc;

	if (config->api_key_file_is_default && starting) {
		rc = apikey_generate_file(config->api_key_file, err, errlen);
		if (rc == -1)
			return NULL;
		if (rc == 0)
			log_info("generated API key", "path", config->api_key_file, NULL);
	}
	if (config->api_key_file_is_default && !starting &&
	    access(config->api_key_file, F_OK) == -1 && errno == ENOENT) {
		snprintf(err, errlen, "API key file %s is missing: a reload does not generate "
		    "a new key (restore the file, or restart to generate one)",
		    config->api_key_file);
		return NULL;
	}
	if (apikey_load(config->api_key_file, &keys, err, errlen) != 0)
		return NULL;
	return keys;
}

/* /readyz: does the store answer reads, and do the store writer's commits work? */
static const char *
daemon_store_ready(void *arg, char *buf, size_t size)
{
	struct daemon *d = arg;
	char why[128];

	if (store_writer_read_error(d->api_reader, buf, size) != NULL)
		return buf;
	if (store_writer_write_error(d->writer, why, sizeof why) == NULL)
		return NULL;
	snprintf(buf, size, "cannot write: %s", why);
	return buf;
}

/* /readyz: is a Redis source connected (subscribed, or its groups ready)? */
static const char *
daemon_source_ready(void *arg, char *buf, size_t size)
{
	const struct daemon_source_check *c = arg;
	struct source_stats stats;

	memset(&stats, 0, sizeof stats);
	c->ops->stats(c->source, &stats);
	if (stats.connected)
		return NULL;
	snprintf(buf, size, "disconnected");
	return buf;
}

/* /readyz: can the room state answer (redis: connected, its scripts loaded)? */
static const char *
daemon_state_ready(void *arg, char *buf, size_t size)
{
	struct daemon *d = arg;
	const char *why = state_redis_why(d->state);

	if (why == NULL)
		return NULL;
	snprintf(buf, size, "%s", why);
	return buf;
}

/* What /readyz checks besides the store's answer and the loop. */
static void
daemon_ready_checks(struct daemon *d)
{
	store_writer_watch_writes(d->writer, DAEMON_WRITE_PROBE_MS);
	store_writer_watch_reads(d->api_reader, DAEMON_READ_PING_MS);
	api_add_ready_check(d->api, "store", daemon_store_ready, d);
	if (d->state != NULL && strcmp(state_backend(d->state), "redis") == 0)
		api_add_ready_check(d->api, "state", daemon_state_ready, d);
	for (size_t i = 0; i < d->source_count; i++) {
		if (strncmp(d->source_ops[i]->name, "redis-", 6) != 0)
			continue;
		d->source_checks[i].ops = d->source_ops[i];
		d->source_checks[i].source = d->sources[i];
		api_add_ready_check(d->api, d->source_ops[i]->name, daemon_source_ready,
		    &d->source_checks[i]);
	}
}

/* Leave the loop: shutdown is complete or has run out of time. */
static void
daemon_finish(struct daemon *d)
{
	event_base_loopbreak(d->base);
}

/* A provider has finished its sends in flight. */
static void
daemon_provider_drained(void *arg)
{
	struct daemon *d = arg;

	if (--d->providers_draining == 0)
		daemon_finish(d);
}

/* Wait for the API's answers, then for the sends in flight; bounded by the deadline. */
static void
daemon_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = { 0, DAEMON_DRAIN_CHECK_MS * 1000 };

	if (api_requests_in_flight(d->api) != 0) {
		evtimer_add(d->drain_timer, &tv);
		return;
	}
	if (d->delivery == NULL) {
		daemon_finish(d);
		return;
	}
	/* Nothing new goes out; what is queued stays queued in the store. */
	delivery_stop(d->delivery);
	d->providers_draining = 2;
	for (int p = 0; p < 2; p++)
		d->provider_ops[p]->drain(d->providers[p], daemon_provider_drained, d);
}

static void
daemon_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	char count[24];

	snprintf(count, sizeof count, "%zu", api_requests_in_flight(d->api));
	log_warn("shutdown timeout reached, closing with requests in flight", "requests",
	    count, NULL);
	daemon_finish(d);
}

/* Begin an orderly shutdown: stop accepting, let in-flight work finish, in bounds. */
static void
daemon_stop(struct daemon *d, const char *signame)
{
	struct timeval deadline, now = { 0, 0 };

	if (d->stopping) {
		log_warn("second stop signal, exiting now", "signal", signame, NULL);
		daemon_finish(d);
		return;
	}
	d->stopping = 1;
	daemon_notify("STOPPING=1");
	log_info("shutting down", "signal", signame, NULL);
	api_stop_accepting(d->api);
	feedback_stop_watches(d->feedback);	/* long-polls answer now */
	for (size_t i = 0; i < d->source_count; i++)
		d->source_ops[i]->pause(d->sources[i]);
	deadline.tv_sec = d->config.shutdown_timeout_ms / 1000;
	deadline.tv_usec = (d->config.shutdown_timeout_ms % 1000) * 1000;
	d->drain_timer = evtimer_new(d->base, daemon_drain_check, d);
	d->deadline_timer = evtimer_new(d->base, daemon_deadline, d);
	if (d->drain_timer == NULL || d->deadline_timer == NULL)
		fatalx("cannot create shutdown timers");
	evtimer_add(d->deadline_timer, &deadline);
	evtimer_add(d->drain_timer, &now);
}

/* The delivery layer's settings from a configuration. */
static void
daemon_delivery_options(const struct config *config, struct delivery_options *options)
{
	memset(options, 0, sizeof *options);
	options->max_attempts = config->delivery_max_attempts;
	options->retry_initial_ms = config->delivery_retry_initial_ms;
	options->retry_max_ms = config->delivery_retry_max_ms;
	options->max_age_ms = config->delivery_max_age_ms;
	options->queue_size = (size_t)config->delivery_queue_size;
	options->apns_environment_fallback = config->delivery_apns_environment_fallback;
}

/* The router's settings from a configuration. */
static void
router_options_from(const struct config *config, struct router_options *options)
{
	memset(options, 0, sizeof *options);
	options->presence_grace_ms = config->presence_grace_ms;
	options->presence_ttl_ms = config->presence_ttl_ms;
	options->presence_max = config->presence_max;
	options->implicit_membership = config->implicit_membership;
	options->coalesce_window_ms = config->coalesce_window_ms;
	options->dedupe_window_ms = config->dedupe_window_ms;
	options->recipient_rate_limit = config->recipient_rate_limit;
	options->queue_size = config->router_queue_size;
}

/* Keep a started source and let the router resume it. */
static void
daemon_add_source(struct daemon *d, const struct source_ops *ops, struct source *source)
{
	d->source_ops[d->source_count] = ops;
	d->sources[d->source_count++] = source;
	router_add_source(d->router, ops, source);
	log_info("following room events", "source", ops->name, NULL);
}

/* Start one source from its operations. */
static int
daemon_start_source(struct daemon *d, const struct source_ops *ops, char *err, size_t errlen)
{
	struct source *source = ops->start(d->base, &d->config, router_sink(d->router), err,
	    errlen);

	if (source == NULL)
		return -1;
	daemon_add_source(d, ops, source);
	return 0;
}

/* The room state of [state] backend. */
static int
daemon_start_state(struct daemon *d, const struct router_options *options, char *err,
    size_t errlen)
{
	struct state_options so;

	router_state_options(options, &so);
	if (strcmp(d->config.state_backend, "redis") == 0) {
		d->state = state_redis_new(d->base, &d->config, &so, err, errlen);
		if (d->state == NULL)
			return -1;
		log_info("room state in redis", "address", d->config.redis_address,
		    "prefix", d->config.state_prefix, NULL);
		return 0;
	}
	d->state = state_memory_new(d->base, d->store, d->writer, &so);
	return 0;
}

/* The router and the sources the configuration turns on. */
static int
daemon_start_rooms(struct daemon *d, char *err, size_t errlen)
{
	struct router_options options;

	router_options_from(&d->config, &options);
	d->reader = store_writer_start(d->base, d->store, STORE_WRITER_EACH, err, errlen);
	if (d->reader == NULL)
		return -1;
	store_writer_name(d->reader, "router-store");
	if (daemon_start_state(d, &options, err, errlen) != 0)
		return -1;
	d->router = router_new(d->base, d->store, d->reader, d->delivery, d->state, &options);
	if (d->config.events_enabled || d->config.ably_enabled) {
		d->http = source_http_start(d->base, &d->config, d->store, d->writer,
		    router_sink(d->router));
		daemon_add_source(d, &source_http_ops, source_http_source(d->http));
	}
	if (d->config.pubsub_enabled &&
	    daemon_start_source(d, &source_pubsub_ops, err, errlen) != 0)
		return -1;
	if (d->config.streams_enabled &&
	    daemon_start_source(d, &source_streams_ops, err, errlen) != 0)
		return -1;
	return 0;
}

/* The platforms' providers whose credentials a configuration may hold. */
static const struct provider_ops *const daemon_real_providers[] = {
	&provider_apns_ops, &provider_fcm_ops,
};

size_t
daemon_check_credentials(const struct config *config, provider_problem_fn *problem, void *arg)
{
	size_t problems = 0;

	for (size_t p = 0; p < 2; p++) {
		if (daemon_real_providers[p]->check_offline != NULL)
			problems += daemon_real_providers[p]->check_offline(config, problem, arg);
	}
	return problems;
}

/* What the start-up check says of a problem: logged, the first kept for the error. */
struct start_problems {
	const char *path;
	char first[512];
};

static void
daemon_start_problem(int line, const char *message, void *arg)
{
	struct start_problems *sp = arg;
	char where[32];

	snprintf(where, sizeof where, "%d", line);
	log_error("credentials refused", "file", sp->path, "line", where, "error", message, NULL);
	if (sp->first[0] == '\0')
		snprintf(sp->first, sizeof sp->first, "%s:%d: %s", sp->path, line, message);
}

/* Create the provider of each platform: real credentials, or the log provider. */
static int
daemon_start_providers(struct daemon *d, char *err, size_t errlen)
{
	struct start_problems sp = { d->config.path != NULL ? d->config.path : "-", "" };
	size_t problems;

	/* What pushrelayd -t says, refused the same way: not a restart loop of failures. */
	if ((problems = daemon_check_credentials(&d->config, daemon_start_problem, &sp)) > 0) {
		snprintf(err, errlen, "%s%s", sp.first, problems > 1 ? " (and more: see above)" :
		    "");
		return -1;
	}
	static const char *const names[] = { "apns", "fcm" };
	size_t counts[2] = { d->config.apns_app_count, d->config.fcm_app_count };

	for (int p = 0; p < 2; p++) {
		d->provider_ops[p] = counts[p] > 0 ? daemon_real_providers[p] : &provider_log_ops;
		d->providers[p] = d->provider_ops[p]->create(d->base, &d->config, err, errlen);
		if (d->providers[p] == NULL)
			return -1;
		if (counts[p] == 0)
			log_info("no credentials: notifications will be logged, not sent",
			    "platform", names[p], NULL);
	}
	return 0;
}

/* Apply the reloadable options of a new configuration, or refuse it whole. */
static void
daemon_reload(struct daemon *d)
{
	struct config next;
	struct ably_keys *ably_keys = NULL;
	struct apikeys *keys;
	char err[1024], name[64];

	daemon_notify("RELOADING=1");
	if (config_load(&next, d->config_path, err, sizeof err) != 0) {
		log_error("reload refused", "error", err, NULL);
		goto done;
	}
	if (config_check_reload(&d->config, &next, name, sizeof name) != 0) {
		log_error("reload refused", "error", "option needs a restart", "option", name,
		    NULL);
		config_free(&next);
		goto done;
	}
	if ((keys = daemon_load_keys(&next, 0, err, sizeof err)) == NULL) {
		log_error("reload refused", "error", err, NULL);
		config_free(&next);
		goto done;
	}
	if (next.ably_enabled && next.ably_keys_file != NULL &&
	    ably_keys_load(next.ably_keys_file, &ably_keys, err, sizeof err) != 0) {
		log_error("reload refused", "error", err, NULL);
		apikey_free(keys);
		config_free(&next);
		goto done;
	}
	/* Check every provider's new credentials before any adopts them. */
	for (int p = 0; p < 2; p++) {
		const struct provider_ops *ops = d->provider_ops[p];
		if ((ops->check != NULL ? ops->check(d->providers[p], &next, err, sizeof err) :
		    0) != 0) {
			log_error("reload refused", "error", err, NULL);
			apikey_free(keys);
			ably_keys_free(ably_keys);
			config_free(&next);
			goto done;
		}
	}
	for (int p = 0; p < 2; p++) {
		if (d->provider_ops[p]->reload(d->providers[p], &next, err, sizeof err) != 0)
			/* Checked a moment ago: only a file changed since can get here. */
			log_error("provider reload failed after its check", "error", err, NULL);
	}
	api_set_keys(d->api, keys);
	if (next.ably_enabled)
		api_set_ably(d->api, 1, ably_keys, d->http);
	feedback_reload(d->feedback, &next);
	{
		struct delivery_options delivery_options;
		struct router_options options;

		daemon_delivery_options(&next, &delivery_options);
		delivery_set_options(d->delivery, &delivery_options);
		push_set_retention(d->pushes, next.push_retention_ms);
		router_options_from(&next, &options);
		router_set_options(d->router, &options);
	}
	log_set_level(next.log_level);
	log_set_format(next.log_format);
	config_free(&d->config);
	d->config = next;
	log_info("configuration reloaded", "log_level", log_level_name(next.log_level), NULL);
done:
	daemon_notify("READY=1");
}

static void
daemon_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	switch (sig) {
	case SIGTERM: daemon_stop(d, "SIGTERM"); break;
	case SIGINT: daemon_stop(d, "SIGINT"); break;
	case SIGHUP: daemon_reload(d); break;
	}
}

#ifdef HAVE_JEMALLOC
#define DAEMON_MALLOC "jemalloc"
#else
#define DAEMON_MALLOC "libc"
#endif

/* What a scrape reads, once everything it reads is started. */
static void
daemon_metrics_setup(struct daemon *d)
{
	struct metrics_inputs inputs;

	memset(&inputs, 0, sizeof inputs);
	inputs.delivery = d->delivery;
	inputs.router = d->router;
	inputs.feedback = d->feedback;
	for (int p = 0; p < 2; p++) {
		inputs.provider_ops[p] = d->provider_ops[p];
		inputs.providers[p] = d->providers[p];
	}
	for (size_t i = 0; i < d->source_count && i < METRICS_SOURCES_MAX; i++) {
		inputs.source_ops[i] = d->source_ops[i];
		inputs.sources[i] = d->sources[i];
		inputs.source_count++;
	}
	d->metrics = metrics_new(&inputs);
}

/* Open everything the daemon needs; -1 with err set. */
static int
daemon_start(struct daemon *d, char *err, size_t errlen)
{
	struct store_options *store_options = &d->store_options;
	struct api_options api_options;
	struct apikeys *keys;
	int rc;

	if (mkdir_parents(d->config.state_dir, 0750) != 0) {
		snprintf(err, errlen, "cannot create state directory %s: %s",
		    d->config.state_dir, strerror(errno));
		return -1;
	}
	if ((keys = daemon_load_keys(&d->config, 1, err, errlen)) == NULL)
		return -1;
	memset(store_options, 0, sizeof *store_options);
	store_options->path = d->config.store_path;
	store_options->sync = d->config.store_sync;
	store_options->busy_timeout_ms = (int)d->config.store_busy_timeout_ms;
	store_options->cache_size = d->config.store_cache_size;
	store_options->checkpoint_size = d->config.store_checkpoint_size;
	store_options->conninfo = d->config.store_postgresql;
	rc = store_open(d->config.store_backend, store_options, &d->store, err, errlen);
	if (rc != 0) {
		apikey_free(keys);
		return -1;
	}
	if (daemon_start_providers(d, err, errlen) != 0) {
		apikey_free(keys);
		return -1;
	}
	d->writer = store_writer_start(d->base, d->store, STORE_WRITER_GROUP_COMMIT, err,
	    errlen);
	if (d->writer == NULL ||
	    (d->api_reader = store_writer_start(d->base, d->store, STORE_WRITER_EACH, err,
	    errlen)) == NULL) {
		apikey_free(keys);
		return -1;
	}
	store_writer_name(d->api_reader, "api-store");
	/* Several instances on one database: their route changes reach our cache. */
	d->store_watch = store_watch_start(d->base, d->store);
	d->feedback = feedback_new(d->base, &d->config);
	{
		struct delivery_options options;

		daemon_delivery_options(&d->config, &options);
		d->delivery = delivery_layer_new(d->base, d->store, d->writer, d->provider_ops[0],
		    d->providers[0], d->provider_ops[1], d->providers[1], d->feedback, &options);
	}
	d->pushes = push_ledger_new(d->base, d->store, d->writer, d->delivery,
	    d->config.push_retention_ms);
	if (daemon_start_rooms(d, err, errlen) != 0) {
		apikey_free(keys);
		return -1;
	}
	daemon_metrics_setup(d);
	memset(&api_options, 0, sizeof api_options);
	api_options.listen = d->config.listen;
	api_options.listen_count = d->config.listen_count;
	api_options.unix_socket = d->config.unix_socket;
	api_options.unix_socket_mode = d->config.unix_socket_mode;
	api_options.max_body_size = d->config.max_body_size;
	api_options.request_timeout_ms = d->config.request_timeout_ms;
	api_options.header_timeout_ms = d->config.header_timeout_ms;
	api_options.max_connections = (size_t)d->config.max_connections;
	api_options.max_connections_per_peer = (size_t)d->config.max_connections_per_peer;
	api_options.metrics_public = d->config.metrics_public;
	api_options.access_log = d->config.api_access_log;
	d->api = api_new(d->base, &api_options, d->writer, d->api_reader, keys, err, errlen);
	if (d->api == NULL) {
		apikey_free(keys);
		return -1;
	}
	api_set_modules(d->api, d->pushes, d->feedback, d->metrics);
	if (d->config.events_enabled)
		api_set_events_source(d->api, d->http);
	if (d->config.ably_enabled) {
		struct ably_keys *ably_keys = NULL;

		if (d->config.ably_keys_file != NULL && ably_keys_load(d->config.ably_keys_file,
		    &ably_keys, err, errlen) != 0)
			return -1;
		api_set_ably(d->api, 1, ably_keys, d->http);
	}
	daemon_ready_checks(d);
	d->sigterm = evsignal_new(d->base, SIGTERM, daemon_signal, d);
	d->sigint = evsignal_new(d->base, SIGINT, daemon_signal, d);
	d->sighup = evsignal_new(d->base, SIGHUP, daemon_signal, d);
	if (d->sigterm == NULL || d->sigint == NULL || d->sighup == NULL ||
	    evsignal_add(d->sigterm, NULL) != 0 || evsignal_add(d->sigint, NULL) != 0 ||
	    evsignal_add(d->sighup, NULL) != 0)
		fatalx("cannot install signal handlers");
	return 0;
}

/* Release everything, the store last so that it closes cleanly. */
static void
daemon_cleanup(struct daemon *d)
{
	if (d->sigterm != NULL)
		event_free(d->sigterm);
	if (d->sigint != NULL)
		event_free(d->sigint);
	if (d->sighup != NULL)
		event_free(d->sighup);
	if (d->drain_timer != NULL)
		event_free(d->drain_timer);
	if (d->deadline_timer != NULL)
		event_free(d->deadline_timer);
	api_free(d->api);
	metrics_free(d->metrics);
	/* Reads still due answer nobody now. */
	store_writer_stop(d->api_reader);
	d->api_reader = NULL;
	if (d->delivery != NULL) {
		/* Sends still in flight complete as the providers go; pushes record them. */
		delivery_stop(d->delivery);
		for (int p = 0; p < 2; p++)
			d->provider_ops[p]->free(d->providers[p]);
		/* The last writes go to the writer, which finishes them as it stops. */
		push_ledger_shutdown(d->pushes);
		if (d->router != NULL)
			router_stop(d->router);
		/* Reads still due route nothing now; then the last writes. */
		store_writer_stop(d->reader);
		d->reader = NULL;
		delivery_layer_free(d->delivery);
		store_writer_stop(d->writer);
		d->writer = NULL;
		push_ledger_free(d->pushes);
		/* Nothing is acknowledged after this: the sources can go. */
		for (size_t i = 0; i < d->source_count; i++)
			d->source_ops[i]->stop(d->sources[i]);
		d->source_count = 0;
		d->http = NULL;
		router_free(d->router);
		d->router = NULL;
		state_free(d->state);
		d->state = NULL;
	} else {
		for (int p = 0; p < 2; p++) {
			if (d->providers[p] != NULL)
				d->provider_ops[p]->free(d->providers[p]);
		}
	}
	if (d->feedback != NULL)
		feedback_free(d->feedback);
	store_writer_stop(d->reader);
	store_writer_stop(d->writer);
	store_watch_stop(d->store_watch);
	if (d->store != NULL)
		store_close(d->store);
	config_free(&d->config);
	if (d->base != NULL)
		event_base_free(d->base);
}

int
daemon_run(const char *config_path)
{
	struct daemon d;
	char err[1024];
	int code = 0;

	memset(&d, 0, sizeof d);
	d.config_path = config_path;
	if (config_load(&d.config, config_path, err, sizeof err) != 0) {
		log_error("invalid configuration", "error", err, NULL);
		return 1;
	}
	log_set_level(d.config.log_level);
	log_set_format(d.config.log_format);
	if ((d.base = event_base_new()) == NULL)
		fatalx("cannot create the event loop");
	if (daemon_start(&d, err, sizeof err) != 0) {
		log_error("cannot start", "error", err, NULL);
		code = 1;
		goto out;
	}
	log_info("ready", "version", PACKAGE_VERSION, "state_dir", d.config.state_dir,
	    "config", config_path != NULL ? config_path : "(embedded defaults)",
	    "malloc", DAEMON_MALLOC, NULL);
	daemon_notify("READY=1");
	if (event_base_dispatch(d.base) == -1) {
		log_error("event loop failed", NULL);
		code = 1;
	}
out:
	daemon_cleanup(&d);
	if (code == 0)
		log_info("stopped", NULL);
	return code;
}
