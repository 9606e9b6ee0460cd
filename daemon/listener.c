/*
 * listener.c - listening sockets and the accept thread (see listener.h).
 *
 * The listener thread owns the listening sockets while it runs; the
 * control thread talks to it only through wake_fd (stop) and ping_fd (the
 * watchdog's health check), two eventfds, and joins it.  An accepted
 * socket is refused (ERR 503) if its descriptor falls in the reserve
 * (FD_RESERVE) or the connection limits say no (peers_admit(), which may
 * shut down another address's oldest login); otherwise it goes to a client
 * thread (a spare one from the thread cache, else a new one), which owns it
 * from then on.  The refusals' log lines are bounded (lograte.h).
 *
 * Some sockets may be TLS listeners (tls_listen / tls_port, or the socket
 * systemd names "tls"): a connection accepted there goes to its client
 * thread marked TLS, which makes the handshake itself (session.c), so the
 * listener never waits for a peer.  Such a connection is never sent a
 * refusal in plain text (the peer expects a TLS record): it is closed.
 *
 * With irc set, IRC listeners (irc_port, and irc_tls_port with TLS) follow:
 * their connections are served by the IRC front-end (irc.h) and a plain
 * one is refused with an IRC ERROR line instead.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "activation.h"
#include "client.h"
#include "config.h"
#include "fault.h"
#include "listener.h"
#include "log.h"
#include "lograte.h"
#include "peers.h"
#include "server.h"
#include "timefmt.h"

#define LISTEN_MAX ACTIVATION_MAX
/* Out of descriptors: stop accepting this long instead of spinning. */
#define EMFILE_BACKOFF_MS 100
/*
 * Descriptor numbers at the top of RLIMIT_NOFILE that no client connection
 * may hold (a quarter of the limit, if that is less): out of descriptors,
 * the admin socket, SIGHUP's reload and log reopen, the history and
 * identification files still get theirs.
 */
#define FD_RESERVE 64
/* How long pause, resume and shutdown wait for the thread to end. */
#define STOP_WAIT_MS 2000
/* Connections taken from one socket per turn, so others get their turn too. */
#define ACCEPT_BATCH 64

/*
 * Fields are written by the control thread only while the listener thread
 * is not running (listener_pause/resume stop and restart it), so the
 * thread reads them without a lock.
 */
struct listener {
	int fds[LISTEN_MAX]; /* -1 while paused, unless from systemd */
	struct sockaddr_storage addrs[LISTEN_MAX];
	bool activated[LISTEN_MAX]; /* passed by systemd: kept open when paused */
	bool tls[LISTEN_MAX];       /* a TLS listener */
	bool irc[LISTEN_MAX];       /* an IRC listener */
	size_t n;
	int port;    /* the plain port; -1 when there is no plain listener */
	bool paused; /* accept and refuse with ERR 503 */
	int wake_fd;
	/* Health check: the control thread pings, the thread counts answers. */
	int ping_fd;
	uint64_t pings; /* control thread only */
	atomic_uint_least64_t pongs;
	pthread_t thread;
	bool running;
	struct server *srv;
	int64_t fd_warned_ms; /* last "out of descriptors" warning */
	/*
	 * Held open so that, out of descriptors, one can be let go to accept
	 * a waiting connection and refuse it with ERR 503: without it the
	 * excess would wait unanswered in the backlog.  -1 when it could not
	 * be had back (tried again at the next shortage).
	 */
	int spare_fd;
};

/* ---- binding ---- */

static int
make_addr(const char *text, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	errno = EINVAL;
	return -1;
}

/* A listening socket on ss (port 0: the kernel picks, ss gets it); -1 with errno. */
static int
bind_sockaddr(struct sockaddr_storage *ss)
{
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	int one = 1, fd, saved;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A restart must not land on port+1 because of connections in TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* So "::" and "0.0.0.0" can both be bound on one port. */
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)ss, len) < 0 || listen(fd, SOMAXCONN) < 0)
		goto fail;
	len = sizeof(*ss);
	if (getsockname(fd, (struct sockaddr *)ss, &len) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* One listening socket on text:port; -1 with errno. */
static int
bind_one(const char *text, int port, struct sockaddr_storage *ss)
{
	socklen_t len;

	if (make_addr(text, port, ss, &len) < 0)
		return -1;
	return bind_sockaddr(ss);
}

static int
sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void
close_all(struct listener *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	l->n = 0;
}

/* An address that cannot exist here (IPv6 off) only matters if asked for. */
static bool
address_unavailable(int err)
{
	return err == EAFNOSUPPORT || err == EADDRNOTAVAIL;
}

/*
 * Binds every address on port.  Returns 0, 1 when the port is busy (all
 * closed again), -1 on another error (message in err).
 */
static int
bind_port(struct listener *l, const struct settings *s, int port, char *err, size_t errlen)
{
	if (s->port < 0) { /* no plain listener */
		l->port = -1;
		return 0;
	}
	for (size_t i = 0; i < s->n_listen && l->n < LISTEN_MAX; i++) {
		int fd = bind_one(s->listen[i], port, &l->addrs[l->n]);

		if (fd >= 0) {
			l->fds[l->n++] = fd;
			if (port == 0) /* the kernel chose: the others follow */
				port = sockaddr_port(&l->addrs[0]);
			continue;
		}
		if (errno == EADDRINUSE) {
			close_all(l);
			return 1;
		}
		if (s->listen_is_default && address_unavailable(errno)) {
			log_warning("not listening on %s: %s", s->listen[i], strerror(errno));
			continue;
		}
		snprintf(err, errlen, "cannot listen on %s port %d: %s", s->listen[i], port,
			 strerror(errno));
		close_all(l);
		return -1;
	}
	if (l->n == 0) {
		snprintf(err, errlen, "no address to listen on");
		return -1;
	}
	l->port = port;
	return 0;
}

/*
 * A listener after the plain one: every address of addrs on port (0: the
 * kernel's choice, the others follow), each socket marked tls and irc.  A
 * busy port is an error: clients know these ports from their
 * configuration.  what names it in messages ("TLS", "IRC"...).
 */
static int
bind_more(struct listener *l, char *const *addrs, size_t n, bool lenient, int port, bool tls,
	  bool irc, const char *what, char *err, size_t errlen)
{
	size_t first = l->n;

	for (size_t i = 0; i < n && l->n < LISTEN_MAX; i++) {
		int fd = bind_one(addrs[i], port, &l->addrs[l->n]);

		if (fd >= 0) {
			l->tls[l->n] = tls;
			l->irc[l->n] = irc;
			l->fds[l->n++] = fd;
			if (port == 0)
				port = sockaddr_port(&l->addrs[l->n - 1]);
			continue;
		}
		if (lenient && address_unavailable(errno)) {
			log_warning("not listening for %s on %s: %s", what, addrs[i],
				    strerror(errno));
			continue;
		}
		snprintf(err, errlen, "cannot listen for %s on %s port %d: %s", what, addrs[i],
			 port, strerror(errno));
		return -1;
	}
	if (l->n == first) {
		snprintf(err, errlen, "no address to listen on for %s", what);
		return -1;
	}
	return 0;
}

/*
 * Sockets systemd passed replace the listen, port, tls_listen and
 * irc_listen settings (irc_port and irc_tls_port tell IRC sockets).  TLS
 * listeners (which need tls_cert) are those named "tls"
 * (FileDescriptorName=tls in a socket unit of their own) and, with
 * tls_cert set, those on tls_port (a second ListenStream= in chatd.socket,
 * whose sockets all share one name).
 */
static struct listener *
adopt_activated(struct listener *l, const struct settings *s, const struct activation *act,
		char *err, size_t errlen)
{
	l->port = -1;
	for (size_t i = 0; i < act->n_tcp; i++) {
		socklen_t len = sizeof(l->addrs[i]);

		l->fds[i] = act->tcp[i];
		l->activated[i] = true;
		fcntl(l->fds[i], F_SETFL, fcntl(l->fds[i], F_GETFL) | O_NONBLOCK);
		if (getsockname(l->fds[i], (struct sockaddr *)&l->addrs[i], &len) < 0)
			memset(&l->addrs[i], 0, sizeof(l->addrs[i]));
		/* One socket unit names all its sockets alike: the ports tell them apart too. */
		int port = sockaddr_port(&l->addrs[i]);
		bool tls = s->tls_cert[0] != '\0';

		l->irc[i] = s->irc && ((s->irc_port > 0 && port == s->irc_port) ||
				       (tls && s->irc_tls_port > 0 && port == s->irc_tls_port));
		l->tls[i] = act->tcp_tls[i] || (tls && s->tls_port != 0 && port == s->tls_port) ||
			    (l->irc[i] && port == s->irc_tls_port);
		if (!l->tls[i] && !l->irc[i] && l->port < 0)
			l->port = sockaddr_port(&l->addrs[i]);
	}
	l->n = act->n_tcp;
	for (size_t i = 0; i < l->n; i++)
		if (l->tls[i] && s->tls_cert[0] == '\0') {
			snprintf(err, errlen,
				 "systemd passed a socket named tls, but tls_cert is not set");
			close_all(l);
			free(l);
			return NULL;
		}
	log_info("listening on %zu socket%s from systemd; listen, port, tls_listen and irc_listen "
		 "are not used",
		 l->n, l->n == 1 ? "" : "s");
	return l;
}

/* The plain listener is bound; now TLS, if a certificate is set, and IRC. */
static struct listener *
add_more(struct listener *l, const struct settings *s, char *err, size_t errlen)
{
	bool tls = s->tls_cert[0] != '\0', irc = s->irc;

	if ((!tls || bind_more(l, s->tls_listen, s->n_tls_listen, s->tls_listen_is_default,
			       s->tls_port, true, false, "TLS", err, errlen) == 0) &&
	    (!irc || s->irc_port < 0 ||
	     bind_more(l, s->irc_listen, s->n_irc_listen, s->irc_listen_is_default, s->irc_port,
		       false, true, "IRC", err, errlen) == 0) &&
	    (!irc || !tls || s->irc_tls_port < 0 ||
	     bind_more(l, s->irc_listen, s->n_irc_listen, s->irc_listen_is_default, s->irc_tls_port,
		       true, true, "IRC over TLS", err, errlen) == 0))
		return l;
	close_all(l);
	free(l);
	return NULL;
}

struct listener *
listener_open(const struct settings *s, const struct activation *act, char *err, size_t errlen)
{
	struct listener *l = calloc(1, sizeof(*l));

	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->wake_fd = l->ping_fd = l->spare_fd = -1;
	if (act->n_tcp > 0)
		return adopt_activated(l, s, act, err, errlen);
	for (int try = 0; try <= s->port_tries; try++) {
		int port = s->port == 0 ? 0 : s->port + try;

		if (port > 65535)
			break;
		switch (bind_port(l, s, port, err, errlen)) {
		case 0:
			if (try > 0)
				log_warning("port %d was busy; listening on port %d", s->port,
					    port);
			return add_more(l, s, err, errlen);
		case 1:
			log_warning("port %d is busy", port);
			continue;
		default:
			free(l);
			return NULL;
		}
	}
	if (s->port_tries > 0)
		snprintf(err, errlen, "cannot listen on ports %d-%d: all busy", s->port,
			 s->port + s->port_tries);
	else
		snprintf(err, errlen, "cannot listen on port %d: %s", s->port,
			 strerror(EADDRINUSE));
	free(l);
	return NULL;
}

int
listener_port(const struct listener *l)
{
	return l->port;
}

void
listener_describe(const struct listener *l, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->n && off < len; i++) {
		char a[ADDR_STR_MAX];
		bool v6 = l->addrs[i].ss_family == AF_INET6;

		peers_format(&l->addrs[i], a, sizeof(a));
		off += (size_t)snprintf(buf + off, len - off, "%s%s%s%s:%d%s", i ? ", " : "",
					v6 ? "[" : "", a, v6 ? "]" : "",
					sockaddr_port(&l->addrs[i]),
					l->irc[i]   ? (l->tls[i] ? " (IRC, TLS)" : " (IRC)")
					: l->tls[i] ? " (TLS)"
						    : "");
	}
}

int
listener_tls_port(const struct listener *l, bool irc)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->tls[i] && l->irc[i] == irc)
			return sockaddr_port(&l->addrs[i]);
	return -1;
}

/* ---- accepting ---- */

/*
 * TCP_NODELAY: a chat line must not wait for the peer's delayed ACK.
 * Keepalive and TCP_USER_TIMEOUT: a peer that vanished without a FIN or
 * RST is found out within peer_timeout, whether the line is idle or has
 * unacknowledged data.
 */
static void
tune_client_socket(int fd, int peer_timeout)
{
	int one = 1;
	int idle = peer_timeout / 2 > 0 ? peer_timeout / 2 : 1;
	int intvl = peer_timeout / 6 > 0 ? peer_timeout / 6 : 1;
	int cnt = 3;
	unsigned user_timeout = (unsigned)peer_timeout * 1000;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

/* What kind of connection a listening socket takes. */
struct kind {
	bool tls, irc;
};

/*
 * One line, for connections chatd cannot take, in the socket's protocol;
 * a TLS peer gets none (it would read garbage).
 */
static void
refusal(int fd, struct kind k, const char *why)
{
	char line[256];
	int n = k.irc ? snprintf(line, sizeof(line), "ERROR :%s\r\n", why)
		      : snprintf(line, sizeof(line), "ERR %d %s\n", ERR_UNAVAILABLE, why);

	if (!k.tls)
		send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void
refuse(int fd, struct kind k, const char *why)
{
	refusal(fd, k, why);
	close(fd);
}

/*
 * The refusals' log lines, bounded per limit (lograte.h): anyone can
 * cause them as fast as they can connect.  Which limit said no is read
 * from the start of peers_admit()'s answer.
 */
static struct log_rate refusals[] = {
	LOG_RATE_INIT(LVL_WARNING, "refused connections (over max_clients)"),
	LOG_RATE_INIT(LVL_WARNING, "refused connections (over max_clients_per_address)"),
	LOG_RATE_INIT(LVL_WARNING, "refused connections (over max_logins_per_address)"),
	LOG_RATE_INIT(LVL_WARNING, "refused connections (over max_logins)"),
	LOG_RATE_INIT(LVL_WARNING, "refused connections (other reasons)"),
};
static const char *const refusal_starts[] = {
	"server is full",
	"too many connections from your address",
	"too many logins in progress from your address",
	"too many logins in progress (",
};
/*
 * Refusals for want of descriptors: warn_out_of_fds() tells of the
 * shortage once in a while, and these are counted.
 */
static struct log_rate no_descriptor =
	LOG_RATE_COUNTED(LVL_WARNING, "connections refused for want of descriptors");
static struct log_rate no_thread =
	LOG_RATE_INIT(LVL_ERROR, "connections refused for want of a thread");

static struct log_rate *
refusal_kind(const char *why)
{
	size_t i = 0;

	while (i < sizeof(refusal_starts) / sizeof(refusal_starts[0]) &&
	       strncmp(why, refusal_starts[i], strlen(refusal_starts[i])) != 0)
		i++;
	return &refusals[i];
}

static void
take_connection(struct listener *l, int fd, const struct sockaddr_storage *addr, struct kind k)
{
	const struct settings *s = settings_get();
	const struct peers_limits lim = {
		.max_clients = s->max_clients,
		.max_clients_per_address = s->max_clients_per_address,
		.max_logins = s->max_logins,
		.max_logins_per_address = s->max_logins_per_address,
	};
	char why[128], a[ADDR_STR_MAX];

	if (l->paused) {
		refuse(fd, k, "server is paused; try again later");
		return;
	}
	if (!peers_admit(addr, fd, &lim, why, sizeof(why))) {
		peers_format(addr, a, sizeof(a));
		log_rated(refusal_kind(why), "refused %s: %s", a, why);
		refuse(fd, k, why);
		return;
	}
	tune_client_socket(fd, s->peer_timeout);
	if (client_spawn(l->srv, fd, addr, k.tls, k.irc) < 0) {
		int err = errno;

		peers_format(addr, a, sizeof(a));
		log_rated(&no_thread, "refused %s: cannot start a thread: %s", a, strerror(err));
		refusal(fd, k, "server cannot serve more clients now");
		peers_close(addr, fd);
	}
}

static int
open_spare(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/*
 * Out of descriptors: gives up the spare to take one waiting connection
 * and refuse it, then takes the spare back.  False when that did not work
 * (another thread took the freed number first, or nothing was waiting).
 */
static bool
refuse_with_spare(struct listener *l, int lfd, struct kind k)
{
	int fd;

	if (l->spare_fd < 0 && (l->spare_fd = open_spare()) < 0)
		return false;
	close(l->spare_fd);
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0) {
		refuse(fd, k, "server cannot serve more clients now");
		log_rate_count(&no_descriptor);
	}
	l->spare_fd = open_spare();
	return fd >= 0;
}

/*
 * The lowest descriptor number a client connection may not have.
 * Descriptors are handed out lowest first, so a connection that gets one at
 * or above it finds every number below taken: it is refused, and the top
 * FD_RESERVE numbers stay free of clients whichever thread opens what.
 */
static int
client_fd_ceiling(void)
{
	struct rlimit rl;
	rlim_t reserve;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > INT32_MAX)
		return INT32_MAX;
	reserve = rl.rlim_cur / 4 < FD_RESERVE ? rl.rlim_cur / 4 : FD_RESERVE;
	return (int)(rl.rlim_cur - reserve);
}

static void
warn_out_of_fds(struct listener *l, const char *why)
{
	int64_t now = time_mono_ms();

	if (now - l->fd_warned_ms > 10000) {
		log_warning("%s; refusing new connections meanwhile", why);
		l->fd_warned_ms = now;
	}
}

/* Accepts what is pending on socket i; false when out of descriptors. */
static bool
accept_batch(struct listener *l, size_t i_sock)
{
	int lfd = l->fds[i_sock];
	struct kind k = { .tls = l->tls[i_sock], .irc = l->irc[i_sock] };

	int ceiling = client_fd_ceiling();

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage addr;
		socklen_t len = sizeof(addr);
		int fd = accept4(lfd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= ceiling) {
			warn_out_of_fds(l, "out of descriptors for clients (the last ones are kept "
					   "for the admin socket, reloads and the log)");
			refuse(fd, k, "server cannot serve more clients now");
			log_rate_count(&no_descriptor);
			continue;
		}
		if (fd >= 0) {
			take_connection(l, fd, &addr, k);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			int err = errno;
			char why[128];

			snprintf(why, sizeof(why), "cannot accept: %s", strerror(err));
			warn_out_of_fds(l, why);
			if ((err == EMFILE || err == ENFILE) && refuse_with_spare(l, lfd, k))
				continue;
			return false;
		}
		/* EAGAIN: drained; ECONNABORTED and the like: that peer is gone. */
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return true;
	}
	return true;
}

static void *
listener_main(void *arg)
{
	struct listener *l = arg;
	struct pollfd pfd[LISTEN_MAX + 1];
	bool backoff = false;

	for (;;) {
		size_t n = 0;
		uint64_t count;

		pfd[n++] = (struct pollfd){ .fd = l->wake_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = l->ping_fd, .events = POLLIN };
		for (size_t i = 0; i < l->n; i++)
			pfd[n++] =
				(struct pollfd){ .fd = backoff ? -1 : l->fds[i], .events = POLLIN };
		int rc = poll(pfd, n, backoff ? EMFILE_BACKOFF_MS : -1);
		if (rc < 0 && errno != EINTR) {
			log_error("listener: poll: %s", strerror(errno));
			return NULL;
		}
		if (pfd[0].revents)
			return NULL;
		if ((pfd[1].revents & POLLIN) && read(l->ping_fd, &count, sizeof(count)) > 0)
			atomic_fetch_add(&l->pongs, count);
		backoff = false;
		for (size_t i = 0; i < l->n; i++) {
			if (!(pfd[i + 2].revents & POLLIN))
				continue;
			if (!accept_batch(l, i))
				backoff = true;
			if (fault_active(FAULT_LISTENER_HANG))
				fault_hang();
		}
	}
}

static int
start_thread(struct listener *l)
{
	int err = pthread_create(&l->thread, NULL, listener_main, l);

	if (err != 0) {
		errno = err;
		return -1;
	}
	l->running = true;
	return 0;
}

/*
 * Joins the thread; its wake-up is consumed so it can be started again.
 * -1 (ETIMEDOUT) if it did not end within STOP_WAIT_MS: stuck where it
 * cannot see the wake-up (starting a client thread waits for the room
 * lock).  The wake-up is then taken back, so the thread goes on serving
 * when it gets unstuck, and nothing of l changes.
 */
static int
stop_thread(struct listener *l)
{
	uint64_t one = 1;
	struct timespec until;
	int err;

	if (!l->running)
		return 0;
	if (write(l->wake_fd, &one, sizeof(one)) < 0)
		log_error("listener: cannot wake: %s", strerror(errno));
	until = time_after_ms(CLOCK_REALTIME, STOP_WAIT_MS);
	if ((err = pthread_timedjoin_np(l->thread, NULL, &until)) != 0) {
		/* Unless it saw the wake-up just now and ended after all. */
		if (read(l->wake_fd, &one, sizeof(one)) < 0 ||
		    pthread_tryjoin_np(l->thread, NULL) != 0) {
			log_error("listener: the thread did not stop within %d ms", STOP_WAIT_MS);
			errno = err;
			return -1;
		}
		l->running = false;
		return 0;
	}
	if (read(l->wake_fd, &one, sizeof(one)) < 0)
		log_error("listener: wake-up: %s", strerror(errno));
	l->running = false;
	return 0;
}

static bool
has_open_socket(const struct listener *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->fds[i] >= 0)
			return true;
	return false;
}

/* While paused the thread runs only to refuse on sockets systemd passed. */
static int
restart_thread(struct listener *l)
{
	if (!has_open_socket(l))
		return 0;
	if (start_thread(l) == 0)
		return 0;
	log_error("listener: cannot start the thread: %s", strerror(errno));
	return -1;
}

int
listener_start(struct listener *l, struct server *srv)
{
	l->srv = srv;
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->ping_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->spare_fd = open_spare();
	if (l->wake_fd < 0 || l->ping_fd < 0 || l->spare_fd < 0)
		return -1;
	return start_thread(l);
}

bool
listener_alive(struct listener *l)
{
	/* No thread (paused on sockets chatd bound): nothing to hang. */
	return !l->running || atomic_load(&l->pongs) >= l->pings;
}

void
listener_ping(struct listener *l)
{
	uint64_t one = 1;

	if (l->running && write(l->ping_fd, &one, sizeof(one)) == sizeof(one))
		l->pings++;
}

bool
listener_paused(const struct listener *l)
{
	return l->paused;
}

/*
 * Closing a listening socket resets the connections still in its backlog,
 * so nobody is left waiting for an accept that will not come.
 */
int
listener_pause(struct listener *l)
{
	if (l->paused)
		return 1;
	if (stop_thread(l) < 0)
		return -1;
	for (size_t i = 0; i < l->n; i++)
		if (!l->activated[i]) {
			close(l->fds[i]);
			l->fds[i] = -1;
		}
	l->paused = true;
	restart_thread(l);
	return 0;
}

int
listener_resume(struct listener *l, char *err, size_t errlen)
{
	size_t i;

	if (!l->paused)
		return 1;
	if (stop_thread(l) < 0) {
		snprintf(err, errlen, "the listener thread does not stop; still paused");
		return -1;
	}
	for (i = 0; i < l->n; i++) {
		if (l->activated[i])
			continue;
		if ((l->fds[i] = bind_sockaddr(&l->addrs[i])) < 0)
			break;
	}
	if (i < l->n) {
		char a[ADDR_STR_MAX];

		peers_format(&l->addrs[i], a, sizeof(a));
		snprintf(err, errlen, "cannot listen on %s port %d again: %s; still paused", a,
			 sockaddr_port(&l->addrs[i]), strerror(errno));
		while (i-- > 0)
			if (!l->activated[i]) {
				close(l->fds[i]);
				l->fds[i] = -1;
			}
		restart_thread(l);
		return -1;
	}
	l->paused = false;
	if (restart_thread(l) < 0) {
		snprintf(err, errlen, "cannot start the listener thread: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void
listener_close(struct listener *l)
{
	if (l == NULL || stop_thread(l) < 0) /* stuck: it may still use l */
		return;
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	if (l->ping_fd >= 0)
		close(l->ping_fd);
	if (l->spare_fd >= 0)
		close(l->spare_fd);
	close_all(l);
	free(l);
}
