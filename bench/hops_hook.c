/*
 * Function-entry recorder for bench/hops.py, linked into a build compiled with
 * -finstrument-functions. When PUSHRELAY_HOPS_FILE names a file, every function
 * entry appends one record (thread, call depth, monotonic ns, the function's offset
 * in the executable) to it; without it, the hooks only count depth.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct hops_record {
	uint64_t ns;
	uint64_t offset;
	uint32_t tid;
	uint32_t depth;
};

extern char __executable_start;
static int hops_fd = -2;
static __thread uint32_t hops_depth;
static __thread uint32_t hops_tid;

void __cyg_profile_func_enter(void *fn, void *site) __attribute__((no_instrument_function));
void __cyg_profile_func_exit(void *fn, void *site) __attribute__((no_instrument_function));

void
__cyg_profile_func_enter(void *fn, void *site)
{
	struct hops_record r;
	struct timespec ts;
	const char *path;

	(void)site;
	hops_depth++;
	if (hops_fd == -2) {
		path = getenv("PUSHRELAY_HOPS_FILE");
		hops_fd = path == NULL ? -1 :
		    open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	}
	if (hops_fd < 0)
		return;
	if (hops_tid == 0)
		hops_tid = (uint32_t)syscall(SYS_gettid);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	r.ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	r.offset = (uint64_t)((char *)fn - &__executable_start);
	r.tid = hops_tid;
	r.depth = hops_depth;
	(void)!write(hops_fd, &r, sizeof r);
}

void
__cyg_profile_func_exit(void *fn, void *site)
{
	(void)fn;
	(void)site;
	hops_depth--;
}
