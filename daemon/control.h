/*
 * control.h - the admin socket: a Unix-domain socket that chatctl talks to
 * in the admin protocol (docs/ADMIN.md, common/admin_proto.h).
 *
 * Everything here runs in the control (main) thread, which polls the admin
 * socket and its connections beside the signalfd.  No admin connection can
 * stall another or the chat: sockets are non-blocking, replies are queued
 * and written as the peer reads, a long log is streamed in pieces, and a
 * password hash runs in a worker thread (admin_run_job).
 *
 * The socket file and the peer check (root, chatd's own user, members of
 * admin_group) are adminsock.c's; the file mode (0660) is only a second
 * fence.
 */
#ifndef CHATD_CONTROL_H
#define CHATD_CONTROL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct control;
struct admin_conn;
struct server;
struct settings;

/* Enough pollfds for control_pollfds(), whatever is connected. */
#define CONTROL_POLLFDS_MAX 20

/*
 * Serves the admin socket at s->admin_socket, or the one systemd passed
 * (activated_fd >= 0, kept as it is).  A stale socket file is replaced; if
 * another chatd answers on it, or the path is not a socket, NULL with a
 * message in err.
 */
struct control *control_open(struct server *srv, const struct settings *s, int activated_fd,
			     char *err, size_t errlen);
/* Waits for running jobs, closes every connection, removes the socket file. */
void control_close(struct control *ctl);

/* The descriptors to poll, and the poll timeout they need (-1: none). */
size_t control_pollfds(struct control *ctl, struct pollfd *pfd, size_t max, int *timeout_ms);
/* Handles what poll() reported for the descriptors control_pollfds() gave. */
void control_dispatch(struct control *ctl, const struct pollfd *pfd, size_t n);
/* Writes what can be written now to every connection (before chatd exits). */
void control_flush(struct control *ctl);

/* ---- for the command handlers (admin.c) ---- */

struct server *admin_server(struct admin_conn *ac);
/* "uid 1000 (alice) pid 4242", for the log. */
const char *admin_peer(const struct admin_conn *ac);

/* A data line ("- " is added; text that is not clean UTF-8 is escaped). */
void admin_data(struct admin_conn *ac, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The status line; each request gets exactly one. */
void admin_ok(struct admin_conn *ac, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void admin_err(struct admin_conn *ac, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Sends fd's lines from offset `from` up to its size now as data lines,
 * then `OK ok_text`, as fast as the peer reads.  Takes fd.
 */
void admin_stream_file(struct admin_conn *ac, int fd, off_t from, const char *ok_text);

/*
 * Runs work(arg) in a worker thread; then, back in the control thread,
 * done(ac, arg) answers the request and frees arg (ac is NULL if the peer
 * went away meanwhile).  -1 if no thread could be started.
 */
int admin_run_job(struct admin_conn *ac, void (*work)(void *arg),
		  void (*done)(struct admin_conn *ac, void *arg), void *arg);

#endif
