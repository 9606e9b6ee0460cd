/*
 * notify.h - what systemd hears from chatd (sd_notify(3)): READY=1 once the
 * chat port and the admin socket accept, a STATUS= line kept current
 * (listening or paused, users online), RELOADING=1 around a reload,
 * STOPPING=1 at shutdown, and WATCHDOG=1 at half the interval systemd asks
 * for, sent only while chatd is healthy: the control loop turns, the
 * listener thread answers, and the room lock can be taken.
 *
 * Without $NOTIFY_SOCKET every call does nothing.  Control thread only.
 */
#ifndef CHATD_NOTIFY_H
#define CHATD_NOTIFY_H

#include <stdint.h>

struct server;

/* Reads $WATCHDOG_USEC (through sd_watchdog_enabled). */
void notify_init(void);
void notify_ready(struct server *srv);
void notify_reloading(void);
void notify_stopping(void);
/* Listening/paused changed, or the count of users online may have. */
void notify_status(struct server *srv);

/* Due work (watchdog, status refresh); ms until the next call is due, -1: none. */
int notify_tick(struct server *srv);

#endif
