/* pushrelayd: the push-notification relay daemon. */
#include "autoconf.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "config.h"
#include "daemon.h"
#include "log.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: pushrelayd [-t] [-c FILE]\n"
	    "\n"
	    "  -c, --config FILE  read the configuration from FILE\n"
	    "                     (without it: the embedded defaults)\n"
	    "  -t, --test         check the configuration and its credentials, and exit\n"
	    "      --routes       list the API's routes (method, path, access) and exit\n"
	    "  -V, --version      print the version and exit\n"
	    "  -h, --help         print this help and exit\n");
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
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL;
	struct config config;
	char err[1024];
	int c, test = 0;

	while ((c = getopt_long(argc, argv, "c:tVh", options, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 't': test = 1; break;
		case 'V': printf("pushrelayd %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		case 'R': api_print_routes(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A file size limit fails the write (EFBIG), which the store reports: no crash. */
	signal(SIGXFSZ, SIG_IGN);
	log_init();
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
