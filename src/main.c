/* pushrelayd: the push-notification relay daemon. */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "store.h"
#include "store_copy.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: pushrelayd [-t] [-c FILE]\n"
	    "       pushrelayd -c FILE --copy-store SQLITE_FILE [--force]\n"
	    "\n"
	    "  -c, --config FILE  read the configuration from FILE\n"
	    "                     (without it: the embedded defaults)\n"
	    "  -t, --test         check the configuration and its credentials, and exit\n"
	    "      --copy-store SQLITE_FILE\n"
	    "                     copy a SQLite registry into the PostgreSQL store that\n"
	    "                     FILE names, in one transaction, and exit (offline)\n"
	    "      --force        with --copy-store: replace what the store has\n"
	    "      --routes       list the API's routes (method, path, access) and exit\n"
	    "  -V, --version      print the version and exit\n"
	    "  -h, --help         print this help and exit\n");
}

/*
 * --copy-store: the SQLite registry at from into the store the configuration names
 * (backend = postgresql), with no daemon running on either. Prints the counts.
 */
static int
copy_store(const char *config_path, const char *from, int force)
{
	struct store_copy_counts counts;
	struct store_options options;
	struct config config;
	struct store *to = NULL;
	char err[1024];
	int rc;

	if (config_load(&config, config_path, err, sizeof err) != 0) {
		fprintf(stderr, "pushrelayd: %s\n", err);
		return 1;
	}
	if (strcmp(config.store_backend, "postgresql") != 0) {
		fprintf(stderr, "pushrelayd: --copy-store copies into the PostgreSQL store of "
		    "the configuration: [store] backend = postgresql\n");
		config_free(&config);
		return 1;
	}
	memset(&options, 0, sizeof options);
	options.sync = config.store_sync;
	options.busy_timeout_ms = (int)config.store_busy_timeout_ms;
	options.conninfo = config.store_postgresql;
	rc = store_open(config.store_backend, &options, &to, err, sizeof err);
	if (rc == STORE_OK)
		rc = store_copy_from_sqlite(from, to, force, &counts, err, sizeof err);
	store_close(to);
	config_free(&config);
	if (rc != STORE_OK) {
		fprintf(stderr, "pushrelayd: --copy-store: %s\n", err);
		return 1;
	}
	printf("copied %s: devices %zu, memberships %zu, pushes %zu (device rows %zu), "
	    "outbox batches %zu, unread counts %zu, notified marks %zu\n", from,
	    counts.devices, counts.memberships, counts.pushes, counts.push_devices,
	    counts.outbox, counts.unread, counts.notified);
	return 0;
}

/* pushrelayd -t: a credential's problem, as file:line: what. */
static void
print_problem(int line, const char *message, void *arg)
{
	const char *path = arg;

	fprintf(stderr, "pushrelayd: %s:%d: %s\n", path != NULL ? path : "-", line, message);
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "routes", no_argument, NULL, 'R' },
		{ "copy-store", required_argument, NULL, 'C' },
		{ "force", no_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *copy_from = NULL;
	struct config config;
	char err[1024];
	int c, test = 0, force = 0;

	while ((c = getopt_long(argc, argv, "c:tVh", options, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 't': test = 1; break;
		case 'V': printf("pushrelayd %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		case 'R': api_print_routes(stdout); return 0;
		case 'C': copy_from = optarg; break;
		case 'F': force = 1; break;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (force && copy_from == NULL) || (test && copy_from != NULL)) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit fails the write (EFBIG), which the store reports: no crash. */
	signal(SIGXFSZ, SIG_IGN);
	log_init();
	if (copy_from != NULL)
		return copy_store(config_path, copy_from, force);
	if (test) {
		if (config_load(&config, config_path, err, sizeof err) != 0) {
			fprintf(stderr, "pushrelayd: %s\n", err);
			return 1;
		}
		if (daemon_check_credentials(&config, print_problem, (void *)config_path) > 0) {
			config_free(&config);
			return 1;
		}
		config_free(&config);
		fprintf(stderr, "pushrelayd: configuration %s is valid\n",
		    config_path != NULL ? config_path : "(embedded defaults)");
		return 0;
	}
	return daemon_run(config_path);
}
