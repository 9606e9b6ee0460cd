/*
 * listener.h - the listening sockets and the thread that accepts clients.
 *
 * The control thread opens the sockets (listener_open) before any client
 * can connect, so a busy port or a bad address stops chatd at start; the
 * listener thread then only accepts, applies the connection limits and
 * hands each connection to a client thread (a spare one waiting in the
 * thread cache, threadcache.h, else a new one).
 */
#ifndef CHATD_LISTENER_H
#define CHATD_LISTENER_H

#include <stddef.h>

#include <stdbool.h>

struct activation;
struct listener;
struct server;
struct settings;

/*
 * Uses the TCP sockets systemd passed, if any; else binds every configured
 * address on the configured port, moving on to the next port (up to
 * port_tries times) while it is busy.  NULL with a message in err when
 * nothing could be bound.
 */
struct listener *listener_open(const struct settings *s, const struct activation *act, char *err,
			       size_t errlen);

/*
 * The plain port bound (-1: no plain listener), the TLS port of the native
 * protocol or, with irc, of IRC (-1: none), and "127.0.0.1:7777,
 * [::]:7777, 127.0.0.1:7778 (TLS), 127.0.0.1:6667 (IRC)" for messages.
 */
int listener_port(const struct listener *l);
int listener_tls_port(const struct listener *l, bool irc);
void listener_describe(const struct listener *l, char *buf, size_t len);

int listener_start(struct listener *l, struct server *srv);

/*
 * Pause: no new client gets in.  Sockets chatd bound are closed (connects
 * are refused, the backlog is reset); sockets from systemd must be kept, so
 * there each connection is accepted and closed with "ERR 503 server is
 * paused".  Resume binds the same addresses and port again; if that fails
 * (the port was taken meanwhile) -1 with a message, and chatd stays paused.
 * Both return 1 when there was nothing to do.  Pause returns -1
 * (ETIMEDOUT) when the listener thread did not stop within 2 s (it is
 * stuck, as on a stuck room lock), and nothing changed.  Control thread only.
 */
int listener_pause(struct listener *l);
int listener_resume(struct listener *l, char *err, size_t errlen);
bool listener_paused(const struct listener *l);

/*
 * Health check for the watchdog: listener_alive() is true if the thread
 * answered every listener_ping() so far; ping after each check.
 */
bool listener_alive(struct listener *l);
void listener_ping(struct listener *l);
/*
 * Stops accepting, joins the thread, closes the sockets, frees l.  A thread
 * that does not stop within 2 s is left running, with l (chatd is exiting).
 */
void listener_close(struct listener *l);

#endif
