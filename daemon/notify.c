/*
 * notify.c - readiness, status and watchdog for systemd (see notify.h).
 *
 * Control thread only.  Nothing here waits on the room lock for long: the
 * online count in STATUS= is taken only if the lock is free within
 * STATUS_ROOM_WAIT_MS (else the last one is kept), and the health check waits at most ROOM_PROBE_MS, so a
 * stuck room is reported and the pings stop instead of the thread hanging.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "listener.h"
#include "tls.h"
#include "log.h"
#include "notify.h"
#include "room.h"
#include "server.h"
#include "timefmt.h"

/* The users-online count in STATUS= is refreshed at most this often. */
#define STATUS_REFRESH_MS 2000
/* How long the refresh waits for the room lock before it keeps the last count. */
#define STATUS_ROOM_WAIT_MS 10
/* How long the health check waits for the room lock. */
#define ROOM_PROBE_MS 500
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static struct {
	bool enabled;        /* $NOTIFY_SOCKET is set */
	int64_t watchdog_ms; /* half of WATCHDOG_USEC; 0: no watchdog */
	int64_t next_watchdog;
	int64_t next_status;
	char last_status[1024];
	bool unhealthy_logged;
	size_t online; /* the last count had from the room */
} nt;

void
notify_init(void)
{
	uint64_t usec = 0;

	nt.enabled = getenv("NOTIFY_SOCKET") != NULL;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		nt.watchdog_ms = (int64_t)(usec / 2000);
		if (nt.watchdog_ms < 1)
			nt.watchdog_ms = 1;
		log_info("systemd watchdog: pinging every %lld ms", (long long)nt.watchdog_ms);
	}
	nt.next_watchdog = nt.next_status = time_mono_ms();
}

void
notify_ready(struct server *srv)
{
	notify_status(srv);
	sd_notify(0, "READY=1");
}

void
notify_reloading(void)
{
	sd_notify(0, "RELOADING=1");
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void
notify_status(struct server *srv)
{
	char where[512], cert[384], status[sizeof(nt.last_status)];
	size_t conns;

	/* A busy or stuck room lock: the last count stands. */
	room_counts_within(srv->hub, STATUS_ROOM_WAIT_MS, &nt.online, &conns);
	listener_describe(srv->listener, where, sizeof(where));
	tls_describe(cert, sizeof(cert));
	snprintf(status, sizeof(status), "%s %s; %zu online%s%s",
		 listener_paused(srv->listener) ? "paused; was listening on" : "listening on",
		 where, nt.online, cert[0] ? "; TLS certificate " : "", cert);
	if (strcmp(status, nt.last_status) == 0)
		return;
	snprintf(nt.last_status, sizeof(nt.last_status), "%s", status);
	sd_notifyf(0, "STATUS=%s", status);
}

/*
 * The control loop reaching this is the first sign of health; the
 * listener must have answered the previous ping, and the room lock must
 * be free within ROOM_PROBE_MS (a deadlock in the fan-out path shows there).
 */
static bool
healthy(struct server *srv)
{
	const char *what = NULL;

	if (!listener_alive(srv->listener))
		what = "the listener thread does not answer";
	else if (!room_lock_probe(srv->hub, ROOM_PROBE_MS))
		what = "the room lock is stuck (not free within " STRINGIFY(ROOM_PROBE_MS) " ms)";
	listener_ping(srv->listener);
	if (what == NULL) {
		nt.unhealthy_logged = false;
		return true;
	}
	if (!nt.unhealthy_logged)
		log_error("unhealthy: %s; withholding the watchdog ping", what);
	nt.unhealthy_logged = true;
	return false;
}

int
notify_tick(struct server *srv)
{
	int64_t now = time_mono_ms(), next;

	if (!nt.enabled)
		return -1;
	if (nt.watchdog_ms > 0 && now >= nt.next_watchdog) {
		if (healthy(srv))
			sd_notify(0, "WATCHDOG=1");
		nt.next_watchdog = now + nt.watchdog_ms;
	}
	if (now >= nt.next_status) {
		notify_status(srv);
		nt.next_status = now + STATUS_REFRESH_MS;
	}
	next = nt.next_status;
	if (nt.watchdog_ms > 0 && nt.next_watchdog < next)
		next = nt.next_watchdog;
	return next > now ? (int)(next - now) : 0;
}
