/* The daemon's life: start-up, the event loop, reload on SIGHUP, orderly shutdown. */
#ifndef PUSHRELAY_DAEMON_H
#define PUSHRELAY_DAEMON_H

#include <stddef.h>

#include "provider.h"

struct config;

/* Run pushrelayd with a configuration file (NULL: embedded defaults); the exit code. */
int daemon_run(const char *config_path);
/*
 * Load every credential of config offline (pushrelayd -t; the daemon does the same
 * before it starts its providers) and report each problem with its section's line:
 * the number of problems.
 */
size_t daemon_check_credentials(const struct config *config, provider_problem_fn *problem,
    void *arg);

#endif
