/*
 * A real redis-server for a unit test file: started on a free loopback port in a
 * temporary directory, without persistence, killed when the tests end (or when they
 * crash: PR_SET_PDEATHSIG), and stopped and started again on the same port when a
 * test needs Redis to go away and come back. Shared by test_source_redis.c and
 * test_state_redis.c; include it once per test file.
 */
#ifndef PUSHRELAY_TESTS_REDIS_SERVER_FIXTURE_H
#define PUSHRELAY_TESTS_REDIS_SERVER_FIXTURE_H

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"

static struct {
	pid_t pid;
	int port;
	char dir[256];
	char address[64];
} server;

/* A loopback port nobody listens on (bound and closed at once). */
static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* Is redis-server on PATH? */
static int
redis_server_installed(void)
{
	return system("command -v redis-server >/dev/null 2>&1") == 0;
}

/* Start redis-server on server.port; 0 once it answers PING. */
static int
server_run(void)
{
	char port[16], log[300];
	redisContext *c;
	redisReply *reply;
	int64_t deadline;
	int fd;

	snprintf(port, sizeof port, "%d", server.port);
	snprintf(server.address, sizeof server.address, "127.0.0.1:%d", server.port);
	snprintf(log, sizeof log, "%s/redis.log", server.dir);
	if ((server.pid = fork()) == -1)
		return -1;
	if (server.pid == 0) {
		/* Never outlive the tests, even when they crash. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644)) != -1) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		    "--save", "", "--appendonly", "no", "--dir", server.dir, "--daemonize", "no",
		    (char *)NULL);
		_exit(127);
	}
	deadline = clock_monotonic_ms() + 5000;
	while (clock_monotonic_ms() < deadline) {
		if (waitpid(server.pid, NULL, WNOHANG) == server.pid)
			break;	/* died: the port was taken meanwhile? */
		c = redisConnect("127.0.0.1", server.port);
		if (c != NULL && c->err == 0 && (reply = redisCommand(c, "PING")) != NULL) {
			freeReplyObject(reply);
			redisFree(c);
			return 0;
		}
		if (c != NULL)
			redisFree(c);
		usleep(20000);
	}
	kill(server.pid, SIGKILL);
	waitpid(server.pid, NULL, 0);
	server.pid = 0;
	return -1;
}

/* Start redis-server on a free port, in a temporary directory named after name. */
static int
server_start(const char *name)
{
	snprintf(server.dir, sizeof server.dir, "%s/%s.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp", name);
	if (mkdtemp(server.dir) == NULL)
		return -1;
	for (int attempt = 0; attempt < 3; attempt++) {
		if ((server.port = free_port()) < 0)
			return -1;
		if (server_run() == 0)
			return 0;
	}
	return -1;
}

/* Kill the server (SIGKILL: nothing is saved), keeping its port for server_resume. */
static __attribute__((unused)) void
server_kill(void)
{
	if (server.pid > 0) {
		kill(server.pid, SIGKILL);
		waitpid(server.pid, NULL, 0);
		server.pid = 0;
	}
}

/* Start it again on the same port, empty. */
static __attribute__((unused)) int
server_resume(void)
{
	return server_run();
}

/* Stop the server and remove its directory. */
static void
server_stop(void)
{
	char command[400];

	if (server.pid > 0) {
		kill(server.pid, SIGTERM);
		waitpid(server.pid, NULL, 0);
		server.pid = 0;
	}
	snprintf(command, sizeof command, "rm -rf '%s'", server.dir);
	if (system(command) != 0)
		fprintf(stderr, "cannot remove %s\n", server.dir);
}

#endif
