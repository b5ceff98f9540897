/* The permission check shared by every loader of a secret file. */
#include "autoconf.h"

#include <stdio.h>
#include <sys/stat.h>

#include "log.h"
#include "secret_file.h"

int
secret_file_check_mode(int fd, const char *what, const char *path)
{
	struct stat st;
	char msg[128];

	if ((fd != -1 ? fstat(fd, &st) : stat(path, &st)) == -1 || (st.st_mode & 0077) == 0)
		return 0;
	snprintf(msg, sizeof msg, "%s is readable by group or others", what);
	log_warn(msg, "path", path, NULL);
	return 1;
}
