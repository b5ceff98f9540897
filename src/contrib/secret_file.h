/*
 * Files that hold secrets (API keys, provider credentials, passwords): one check that
 * other users cannot read them. Any thread.
 */
#ifndef PUSHRELAY_SECRET_FILE_H
#define PUSHRELAY_SECRET_FILE_H

/*
 * Warn "<what> is readable by group or others" with the path when the file's mode
 * gives its group or others any access. fd is the open file, or -1 to stat path.
 * Returns 1 when it warned, else 0 (also when the file cannot be looked at: whoever
 * reads it reports that).
 */
int secret_file_check_mode(int fd, const char *what, const char *path);

#endif
