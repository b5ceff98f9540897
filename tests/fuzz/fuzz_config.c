/*
 * A configuration file: config_load() must load it or refuse it with one error,
 * without crashing or leaking. The error goes to the log at start-up: it must be
 * valid UTF-8. A configuration that loads must be reloadable over itself.
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static int fd = -1;
static char path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	/* The derived paths must not depend on the environment the fuzzer runs in. */
	unsetenv("STATE_DIRECTORY");
	if ((fd = memfd_create("pushrelay.conf", 0)) < 0)
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config config, again;
	char err[512], name[128];

	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	memset(err, '#', sizeof err - 1);
	err[sizeof err - 1] = '\0';
	if (config_load(&config, path, err, sizeof err) != 0) {
		if (err[0] == '\0' || err[0] == '#')
			fuzz_fail("refused without an error");
		fuzz_check_utf8("error", err);
		return 0;
	}
	if (config.listen_count == 0 && config.unix_socket == NULL)
		fuzz_fail("loaded without a listen address");
	if (config.state_dir == NULL || config.api_key_file == NULL ||
	    config.store_path == NULL)
		fuzz_fail("a derived path is missing");
	for (size_t i = 0; i < config.apns_app_count; i++) {
		if (config.apns_apps[i].topic == NULL)
			fuzz_fail("an APNs app has no topic");
	}
	/* The same file again gives the same configuration: a reload that changes nothing. */
	if (config_load(&again, path, err, sizeof err) != 0)
		fuzz_fail("the second load failed: %s", err);
	if (config_check_reload(&config, &again, name, sizeof name) != 0)
		fuzz_fail("reloading the same file changes %s", name);
	config_free(&again);
	config_free(&config);
	return 0;
}
