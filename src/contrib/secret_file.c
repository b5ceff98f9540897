/* The reader and the permission check shared by every loader of a secret file. */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "secret_file.h"
#include "xmalloc.h"

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

/* Read exactly len bytes, or fewer at end of file; the count, or -1 with errno. */
static ssize_t
secret_file_read_fd(int fd, char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = read(fd, buf + done, len - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int
secret_file_read(const char *path, const char *what, size_t max,
    struct secret_file *out, char *why, size_t whylen)
{
	struct stat st;
	ssize_t n;
	size_t size;
	char extra;
	int fd;

	memset(out, 0, sizeof *out);
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(why, whylen, "%s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		goto fail;
	}
	if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
		snprintf(why, whylen, "larger than %zu bytes", max);
		goto fail;
	}
	if (what != NULL)
		secret_file_check_mode(fd, what, path);
	size = (size_t)st.st_size;
	out->data = xmalloc(size + 1);
	out->len = size;		/* what secret_file_free() wipes, until the read is done */
	if ((n = secret_file_read_fd(fd, out->data, size)) == -1) {
		snprintf(why, whylen, "%s", strerror(errno));
		goto fail;
	}
	/* A file that grew or shrank meanwhile is being rewritten: not read half-done. */
	if ((size_t)n != size || (n = secret_file_read_fd(fd, &extra, 1)) != 0) {
		snprintf(why, whylen, "%s", n == -1 ? strerror(errno) :
		    "changed while being read");
		explicit_bzero(&extra, sizeof extra);
		goto fail;
	}
	out->data[out->len] = '\0';
	close(fd);
	return 0;

fail:
	close(fd);
	secret_file_free(out);
	return -1;
}

void
secret_file_free(struct secret_file *file)
{
	if (file->data != NULL) {
		explicit_bzero(file->data, file->len + 1);
		free(file->data);
	}
	file->data = NULL;
	file->len = 0;
}
