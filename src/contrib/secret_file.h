/*
 * Files that hold secrets (API keys, provider credentials, passwords): the one reader
 * every loader of such a file uses, and the check that other users cannot read them.
 * Called at start-up and on reload from the main thread, and by the Redis sources on
 * each reconnection; nothing here keeps state, so any thread may call it.
 *
 * The reader opens the path (following symbolic links, as Kubernetes and systemd
 * credentials are often links), then looks at what it opened: only a regular file is
 * read, so a FIFO, a device or a directory is refused without blocking or reading
 * without end. Files over a size limit are refused, and the copy in memory is wiped
 * when it is freed.
 */
#ifndef PUSHRELAY_SECRET_FILE_H
#define PUSHRELAY_SECRET_FILE_H

#include <stddef.h>

/* The contents of a secret file: len bytes and a NUL. */
struct secret_file {
	char *data;
	size_t len;
};

/*
 * Read path whole into out, at most max bytes. what names the file in the warning of
 * secret_file_check_mode() ("API key file"); NULL skips the check. Returns 0, or -1
 * with out zeroed and why set to the reason, without the path: strerror() of what
 * failed ("No such file or directory"), "not a regular file", "larger than N bytes"
 * or "changed while being read".
 */
int secret_file_read(const char *path, const char *what, size_t max,
    struct secret_file *out, char *why, size_t whylen);

/* Wipe and free what secret_file_read() read, and zero out; a zeroed one is fine. */
void secret_file_free(struct secret_file *file);

/*
 * Warn "<what> is readable by group or others" with the path when the file's mode
 * gives its group or others any access. fd is the open file, or -1 to stat path.
 * Returns 1 when it warned, else 0 (also when the file cannot be looked at: whoever
 * reads it reports that).
 */
int secret_file_check_mode(int fd, const char *what, const char *path);

#endif
