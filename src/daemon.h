/* The daemon's life: start-up, the event loop, reload on SIGHUP, orderly shutdown. */
#ifndef PUSHRELAY_DAEMON_H
#define PUSHRELAY_DAEMON_H

/* Run pushrelayd with a configuration file (NULL: embedded defaults); the exit code. */
int daemon_run(const char *config_path);

#endif
