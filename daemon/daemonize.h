/*
 * daemonize.h - chatd --daemon: the classic detach for a start outside
 * systemd (under systemd, Type=notify wants chatd in the foreground).
 *
 * daemonize_start() forks before any thread exists; the parent waits on a
 * readiness pipe and exits 0 only once the child serves, or with the
 * child's own exit code (its error already on the terminal) if it fails.
 * The child starts a new session and keeps a pid file locked with flock()
 * while it runs, so a second chatd --daemon is refused.
 */
#ifndef CHATD_DAEMONIZE_H
#define CHATD_DAEMONIZE_H

#include <stddef.h>

/* Returns in the child only; the parent exits.  -1 with a message if fork fails. */
int daemonize_start(char *err, size_t errlen);
/* Writes and locks the pid file; -1 with a message if another chatd holds it. */
int daemonize_pidfile(const char *path, char *err, size_t errlen);
/* The child serves: release the parent, detach stdin/stdout/stderr. */
void daemonize_ready(void);
/* At exit: remove the pid file. */
void daemonize_finish(void);

#endif
