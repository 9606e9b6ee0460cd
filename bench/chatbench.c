/*
 * chatbench.c - a load generator for chat servers on loopback.
 *
 * One process, one epoll loop, non-blocking sockets.  It opens N clients at
 * a paced connect rate, logs them in (the protocol module in proto_*.c
 * knows how), lets S of them send for D seconds, either at a total rate R
 * or as fast as possible with a bounded number of messages in flight per
 * sender, waits for the deliveries to drain, and prints one JSON object.
 *
 * Every message carries its sender, a sequence number and its send time
 * (CLOCK_MONOTONIC: sender and receivers are this one process), so each
 * receiver checks order and loss and records the delivery latency in a
 * histogram without allocating anything per delivery.
 *
 * The rooms layout (--rooms R): once everyone is logged in, each client
 * joins its room(s) (--login-window clients at a time), the join time and
 * the server's memory per membership are reported, and client i then
 * sends to and receives from room i mod R only: every receiver checks that
 * each message came from a sender of its own room.
 *
 * TLS (--tls): each connection does a full TLS handshake (tls.c) before
 * its login; the handshakes, how fast they went and, with
 * --handshake-only (each client closes once its handshake is done), the
 * server's CPU time per handshake are reported apart.  With --resume each
 * client also waits for the server's session ticket before it closes, and
 * once all are done a second round connects them again, each resuming its
 * session: the same figures for resumed handshakes.
 *
 * The login storm (--restart CMD): once everyone is logged in, CMD
 * restarts the server; every client that loses its connection reconnects
 * as chat does (the first try after 1 s, doubling up to 30 s, each wait
 * times a random 50..150 %), presenting its resume token with --tokens,
 * and the time from the restart until the last one is back is reported.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "histogram.h"
#include "linebuf.h"
#include "options.h"
#include "procstat.h"
#include "proto.h"
#include "tls.h"

#define OUT_CAP_SENDER 65536
/* Past this many senders (the rooms layout), each gets a smaller buffer. */
#define MANY_SENDERS 100
#define OUT_CAP_SENDER_MANY 8192
#define OUT_CAP_OTHER 2048
#define EPOLL_BATCH 512
#define READS_PER_EVENT 4
#define PIDFD_TAG UINT32_MAX
/* A delivery later than this counts as late (the "late" figures). */
#define LATE_NS (50 * 1000000LL)

/* ---- errors by kind ---- */

enum err_kind {
	E_CONNECT,
	E_REFUSED,
	E_LOGIN_TIMEOUT,
	E_CLOSED,
	E_SERVER_ERROR,
	E_PROTOCOL,
	E_GAP,
	E_DUPLICATE,
	E_ECHO,
	E_SEND_FULL,
	E_WRITE,
	E_WRONG_ROOM,
	E_JOIN_TIMEOUT,
	E_JOIN_REFUSED,
	E_TLS,
	E_KINDS
};

static const char *const err_names[E_KINDS] = {
	[E_CONNECT] = "connect",
	[E_REFUSED] = "refused",
	[E_LOGIN_TIMEOUT] = "login_timeout",
	[E_CLOSED] = "closed",
	[E_SERVER_ERROR] = "server_error",
	[E_PROTOCOL] = "protocol",
	[E_GAP] = "gap",
	[E_DUPLICATE] = "duplicate",
	[E_ECHO] = "echo",
	[E_SEND_FULL] = "send_full",
	[E_WRITE] = "write",
	[E_WRONG_ROOM] = "wrong_room",
	[E_JOIN_TIMEOUT] = "join_timeout",
	[E_JOIN_REFUSED] = "join_refused",
	[E_TLS] = "tls",
};

/* ---- clients ---- */

enum cstate {
	C_NEW,
	C_CONNECTING,
	C_HANDSHAKE, /* --tls: the TLS handshake */
	C_TICKET,    /* --resume: the handshake is done, the session ticket awaited */
	C_LOGIN,
	C_READY,
	C_CLOSED,
	C_WAIT /* to reconnect */
};

/* chat's reconnect backoff (client/conn.c, conn_backoff_next()). */
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 30000
/*
 * chat gives up on a login after its --timeout (default 30 s) without a
 * line from the server, and tries again: a connection the server never
 * accepted (a listen backlog that overflowed) must not hang forever.
 */
#define STORM_LOGIN_SILENCE_NS (30 * 1000000000LL)
/* --resume: a server that sent no session ticket within this after the handshake sends none. */
#define TICKET_WAIT_NS (1000000000LL)

struct client {
	struct session s;
	enum cstate state;
	int fd;
	bool sender, stalled;
	uint32_t late;   /* deliveries later than LATE_NS */
	uint32_t events; /* registered with epoll */
	bool dropped;    /* lost its connection in the storm */
	bool join_sent;  /* its joins are sent (the rooms layout) */
	unsigned joined; /* rooms joined */
	int backoff_ms;
	int64_t retry_at; /* C_WAIT: reconnect then */
	int64_t heard_at; /* connect, or the last line from the server */
	struct linebuf in;
	char *out;
	size_t out_len, out_cap;
	SSL *ssl;             /* --tls */
	SSL_SESSION *session; /* --resume: the server's ticket, for the second round */
	bool tls_want_write;  /* the last TLS read or write waits for output space */
	int64_t t_connected;  /* the TCP connection was up: the handshake's start */
};

struct sender {
	uint64_t sent, acked, delivered; /* delivered: to all receivers together */
	unsigned receivers;              /* live members of its room but itself, at send start */
	bool queued;                     /* on the send queue */
};

enum phase { P_LOGIN, P_SETTLE, P_JOIN, P_SEND, P_DRAIN, P_STORM, P_DONE };

struct bench {
	struct options o;
	int ep;
	struct client *c;
	struct sender *snd;
	/*
	 * Senders to look at in the next pass of send_due(): those whose window
	 * may have opened (a delivery, an acknowledgement, output space) or that
	 * have output to flush.  A pass over all of them each turn of the loop
	 * made chatbench, not the server, the limit with 1,000 senders or more.
	 */
	unsigned *sendq, nsendq;
	unsigned rooms;     /* 1 in the one-room layout */
	unsigned per_room;  /* sender slots per room: senders / rooms, rounded up */
	uint32_t *next_seq; /* [receiver * per_room + sender / rooms] */
	struct histogram hist;
	struct histogram hist_senders;           /* the deliveries the sending clients received */
	uint64_t late;                           /* deliveries later than LATE_NS, */
	int64_t late_sent_first, late_sent_last; /* sent between these times */
	uint64_t errors[E_KINDS];

	enum phase phase;
	unsigned started, ready, pending, closed_at_stop;
	int64_t t0, t_last_login, t_send, t_send_end, t_last_delivery, phase_end;
	uint64_t sent, expected, delivered, in_order, sent_rr;
	uint64_t acked; /* every sender's OKs (chatd's protocol answers each message) */
	struct procstat before, logged, after; /* logged: before the joins */
	/* the rooms layout's joins */
	bool joins_done;
	unsigned join_next, joining, joined_clients;
	uint64_t memberships;
	int64_t t_join, t_last_joined;
	/*
	 * CPU time (ms) used by the server and by chatbench itself while the
	 * joins and while the sending (and draining) went on: on a machine
	 * shared with other work, time per delivery says more than the wall
	 * clock.  [0] at the start, [1] at the end.
	 */
	int64_t join_cpu[2], join_self[2], send_cpu[2], send_self[2];
	double shutdown_ms;
	/* the login storm */
	const struct sockaddr_storage *ss;
	socklen_t sslen;
	/* --tls */
	SSL_CTX *tls;
	uint64_t handshakes;
	int64_t t_last_handshake;
	struct histogram hist_handshake;
	int64_t login_cpu[2], login_self[2];
	/* --resume: the second round */
	bool resume_round;
	int64_t t_pace; /* connect_due() paces from here: the start of the round */
	int64_t t_resume, t_last_resumed;
	uint64_t tickets, no_ticket, resumed_handshakes, reused;
	struct histogram hist_resume;
	int64_t resume_cpu[2], resume_self[2];
	int64_t t_restart, t_all_back, next_scan;
	unsigned storm_target, back, back_resumed, back_password, tokens_at_restart;
	uint64_t drops, connect_failures, refusals, silent;
	char pad[4096];
};

static struct bench B;

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
secs_ns(double s)
{
	return (int64_t)(s * 1e9);
}

static void
count_error(enum err_kind k)
{
	B.errors[k]++;
}

/* chatbench's own CPU time so far, ms. */
static int64_t
self_cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* Reads the server's CPU time and ours into cpu[i] and self[i]. */
static void
mark_cpu(int64_t *cpu, int64_t *self, int i)
{
	cpu[i] = B.o.server_pid > 0 ? procstat_cpu_ms(B.o.server_pid) : -1;
	self[i] = self_cpu_ms();
}

static void
sender_wake(unsigned si)
{
	if (B.snd[si].queued)
		return;
	B.snd[si].queued = true;
	B.sendq[B.nsendq++] = si;
}

/* ---- output ---- */

/* A stalled client stops reading once logged in and in its rooms. */
static bool
deaf(const struct client *c)
{
	return c->stalled && c->state == C_READY && c->joined == c->s.nrooms;
}

/* Registers what c waits for: input (unless deaf), output space while queued. */
static void
arm(struct client *c)
{
	uint32_t want =
		(deaf(c) ? 0 : EPOLLIN) | (c->out_len > 0 || c->tls_want_write ? EPOLLOUT : 0);

	if (c->fd < 0 || want == c->events)
		return;
	struct epoll_event ev = { .events = want, .data.u32 = c->s.index - B.o.first };
	epoll_ctl(B.ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->events = want;
}

static void client_close(struct client *c, enum err_kind why, bool count);

static void
flush_out(struct client *c)
{
	while (c->out_len > 0) {
		ssize_t n = c->ssl != NULL
				    ? btls_write(c->ssl, c->out, c->out_len, &c->tls_want_write)
				    : send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			client_close(c, E_WRITE, c->state == C_READY || c->state == C_LOGIN);
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	arm(c);
}

void
session_write(struct session *s, const char *buf, size_t len)
{
	struct client *c = (struct client *)s;

	if (c->out_cap - c->out_len < len) {
		count_error(E_SEND_FULL);
		return;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	if (c->state != C_CONNECTING && c->state != C_HANDSHAKE)
		flush_out(c);
}

/* ---- connections ---- */

/* In the storm a lost connection is tried again later, as chat does. */
static void
storm_schedule(struct client *c, enum err_kind why)
{
	int base = c->backoff_ms == 0 ? BACKOFF_FIRST_MS : c->backoff_ms * 2;

	c->backoff_ms = base > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base;
	c->retry_at = now_ns() + (int64_t)c->backoff_ms * (50 + random() % 101) / 100 * 1000000;
	c->state = C_WAIT;
	c->dropped = true;
	c->out_len = 0;
	linebuf_free(&c->in);
	if (why == E_CONNECT)
		B.connect_failures++;
	else if (why == E_LOGIN_TIMEOUT)
		B.silent++;
	else if (why == E_REFUSED)
		B.refusals++;
	else
		B.drops++;
}

static void
client_close(struct client *c, enum err_kind why, bool count)
{
	btls_free(c->ssl);
	c->ssl = NULL;
	c->tls_want_write = false;
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->state == C_CONNECTING || c->state == C_HANDSHAKE || c->state == C_TICKET ||
	    c->state == C_LOGIN)
		B.pending--;
	if (B.phase == P_JOIN && c->state == C_READY && c->join_sent && c->joined < c->s.nrooms)
		B.joining--;
	if (B.phase == P_STORM) {
		storm_schedule(c, why);
		return;
	}
	if (count)
		count_error(why);
	c->state = C_CLOSED;
}

static int
fill_sockaddr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		if ((ntohl(in4->sin_addr.s_addr) >> 24) != 127)
			return -1;
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return -1;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	return -1;
}

/*
 * Clients may come from many loopback addresses (127.0.1.1, 127.0.1.2...),
 * so a per-address connection limit is not what is measured.  The port is
 * chosen at connect() time (IP_BIND_ADDRESS_NO_PORT), per destination.
 */
static void
bind_source(int fd, unsigned i)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	int one = 1;

	if (B.o.sources <= 1)
		return;
	src.sin_addr.s_addr = htonl(0x7f000100u + 1 + i % B.o.sources);
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	bind(fd, (struct sockaddr *)&src, sizeof(src));
}

static void
client_start(struct client *c, const struct sockaddr_storage *ss, socklen_t sslen)
{
	int one = 1;

	c->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		count_error(E_CONNECT);
		c->state = C_CLOSED;
		return;
	}
	if (B.o.nodelay)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ss->ss_family == AF_INET)
		bind_source(c->fd, c->s.index - B.o.first);
	c->state = C_CONNECTING;
	c->heard_at = now_ns();
	B.pending++;
	if (connect(c->fd, (const struct sockaddr *)ss, sslen) < 0 && errno != EINPROGRESS) {
		client_close(c, E_CONNECT, true);
		return;
	}
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = c->s.index - B.o.first };
	c->events = EPOLLOUT;
	epoll_ctl(B.ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Waits for exactly these events on c's socket (the TLS handshake). */
static void
arm_exactly(struct client *c, uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.u32 = c->s.index - B.o.first };

	if (want == c->events)
		return;
	epoll_ctl(B.ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->events = want;
}

static void start_login(struct client *c);

/* --resume: reads what comes after the handshake until the session ticket has come. */
static void
ticket_step(struct client *c)
{
	char buf[4096];
	bool want_write = false;
	ssize_t n = 1;

	while (c->session == NULL && (n = btls_read(c->ssl, buf, sizeof(buf), &want_write)) != 0) {
		if (n < 0 && errno == EAGAIN) {
			arm_exactly(c, want_write ? EPOLLOUT : EPOLLIN);
			return;
		}
		if (n < 0)
			break;
	}
	if (c->session != NULL)
		B.tickets++;
	else
		B.no_ticket++;
	client_close(c, E_TLS, false);
}

/* A resumed handshake of the second round (--resume) is done. */
static void
resumed_done(struct client *c, int64_t t)
{
	B.resumed_handshakes++;
	B.reused += btls_resumed(c->ssl);
	B.t_last_resumed = t;
	hist_record(&B.hist_resume, (uint64_t)(t - c->t_connected));
	client_close(c, E_TLS, false);
}

/* One step of the TLS handshake; once done, the login (or with --handshake-only, the end). */
static void
handshake_step(struct client *c)
{
	int64_t t;

	switch (btls_handshake(c->ssl)) {
	case BTLS_WANT_READ:
		arm_exactly(c, EPOLLIN);
		return;
	case BTLS_WANT_WRITE:
		arm_exactly(c, EPOLLOUT);
		return;
	case BTLS_FAILED:
		client_close(c, E_TLS, true);
		return;
	case BTLS_DONE:
		break;
	}
	t = now_ns();
	if (B.resume_round) {
		resumed_done(c, t);
		return;
	}
	B.handshakes++;
	B.t_last_handshake = t;
	hist_record(&B.hist_handshake, (uint64_t)(t - c->t_connected));
	if (B.o.resume) {
		c->state = C_TICKET;
		c->heard_at = t;
		ticket_step(c);
		return;
	}
	if (B.o.handshake_only) {
		client_close(c, E_TLS, false);
		return;
	}
	start_login(c);
}

static void
client_connected(struct client *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err != 0) {
		client_close(c, E_CONNECT, true);
		return;
	}
	if (B.tls != NULL) {
		c->t_connected = now_ns();
		if ((c->ssl = btls_new(B.tls, c->fd, B.o.host, B.resume_round ? c->session : NULL,
				       B.o.resume && !B.resume_round ? &c->session : NULL)) ==
		    NULL) {
			client_close(c, E_TLS, true);
			return;
		}
		c->state = C_HANDSHAKE;
		handshake_step(c);
		return;
	}
	start_login(c);
}

static void
start_login(struct client *c)
{
	c->state = C_LOGIN;
	B.o.proto->connected(&c->s);
	flush_out(c);
	arm(c);
}

/* ---- deliveries ---- */

/*
 * A p99 far above the p50 is either a stall that delayed everyone for a
 * moment or a few clients served late all along: when the late messages
 * were sent and how many receivers got them tell which.
 */
static void
note_late(struct client *c, int64_t t_sent)
{
	if (B.late++ == 0 || t_sent < B.late_sent_first)
		B.late_sent_first = t_sent;
	if (t_sent > B.late_sent_last)
		B.late_sent_last = t_sent;
	c->late++;
}

/*
 * A decimal number after spaces; *p moves past it.  Every delivery has
 * three: strtoull() took a quarter of chatbench's time, and a load
 * generator that spends must not be what limits the server's figure.
 */
static bool
parse_decimal(const char **p, uint64_t *v)
{
	const char *s = *p;
	uint64_t n = 0;
	int digits = 0;

	while (*s == ' ')
		s++;
	for (; *s >= '0' && *s <= '9' && digits < 19; s++, digits++)
		n = n * 10 + (uint64_t)(*s - '0');
	*p = s;
	*v = n;
	return digits > 0 && !(*s >= '0' && *s <= '9');
}

static void
on_delivery(struct client *c, const char *payload, int64_t t_recv)
{
	const char *end = payload;
	uint64_t who, seq, t_sent;

	if (!parse_decimal(&end, &who) || !parse_decimal(&end, &seq) ||
	    !parse_decimal(&end, &t_sent) || (*end != ' ' && *end != '\0')) {
		count_error(E_PROTOCOL);
		return;
	}
	unsigned s = (unsigned)(who - B.o.first), r = c->s.index - B.o.first;
	if (who < B.o.first || s >= B.o.senders) {
		count_error(E_PROTOCOL);
		return;
	}
	if (s == r) {
		count_error(E_ECHO);
		return;
	}
	if (s % B.rooms != r % B.rooms) {
		count_error(E_WRONG_ROOM);
		return;
	}
	B.delivered++;
	B.snd[s].delivered++;
	if (B.o.rate == 0)
		sender_wake(s);
	B.t_last_delivery = t_recv;
	uint64_t latency = t_recv > (int64_t)t_sent ? (uint64_t)(t_recv - (int64_t)t_sent) : 0;
	hist_record(&B.hist, latency);
	if (c->sender)
		hist_record(&B.hist_senders, latency);
	if (latency > LATE_NS)
		note_late(c, (int64_t)t_sent);

	uint32_t *next = &B.next_seq[(size_t)r * B.per_room + s / B.rooms];
	if (seq == *next) {
		B.in_order++;
		(*next)++;
	} else if (seq > *next) {
		count_error(E_GAP);
		*next = (uint32_t)seq + 1;
	} else {
		count_error(E_DUPLICATE);
	}
}

static void
on_joined(struct client *c, int64_t t)
{
	if (B.phase != P_JOIN || c->joined >= c->s.nrooms)
		return;
	B.memberships++;
	if (++c->joined < c->s.nrooms)
		return;
	B.joining--;
	B.joined_clients++;
	B.t_last_joined = t;
	arm(c);
}

static void
on_line(struct client *c, char *line, size_t len, int64_t t_recv)
{
	const char *payload = NULL;

	c->heard_at = t_recv;
	switch (B.o.proto->line(&c->s, line, len, &payload)) {
	case PE_NONE:
		break;
	case PE_LOGGED_IN:
		c->state = C_READY;
		B.pending--;
		arm(c);
		if (B.phase == P_STORM) {
			c->backoff_ms = 0;
			if (c->dropped) {
				c->dropped = false;
				B.back++;
				B.t_all_back = t_recv;
				if (c->s.resumed)
					B.back_resumed++;
				else
					B.back_password++;
			}
			break;
		}
		B.ready++;
		B.t_last_login = t_recv;
		break;
	case PE_JOINED:
		on_joined(c, t_recv);
		break;
	case PE_DELIVERY:
		on_delivery(c, payload, t_recv);
		break;
	case PE_ACK:
		if (c->sender) {
			B.snd[c->s.index - B.o.first].acked++;
			B.acked++;
			if (B.o.rate == 0)
				sender_wake(c->s.index - B.o.first);
		}
		break;
	case PE_REFUSED:
		client_close(c, E_REFUSED, true);
		break;
	case PE_SERVER_ERROR:
		/* A join refused: the client cannot take part. */
		if (B.phase == P_JOIN && c->join_sent && c->joined < c->s.nrooms)
			client_close(c, E_JOIN_REFUSED, true);
		else
			count_error(E_SERVER_ERROR);
		break;
	case PE_CLOSING:
		break; /* the EOF that follows is counted */
	}
}

/* One read into c's line buffer, in clear or through TLS, as linebuf_fill(). */
static ssize_t
fill(struct client *c)
{
	size_t avail;
	char *space;
	ssize_t n;

	if (c->ssl == NULL)
		return linebuf_fill(&c->in, c->fd);
	if ((space = linebuf_space(&c->in, &avail)) == NULL)
		return -1;
	n = btls_read(c->ssl, space, avail, &c->tls_want_write);
	if (n > 0)
		linebuf_commit(&c->in, (size_t)n);
	else if (n < 0 && c->tls_want_write)
		arm(c);
	return n;
}

static void
client_readable(struct client *c)
{
	/* Bytes TLS decrypted but the buffer had no room for: epoll does not see them. */
	for (int r = 0; c->fd >= 0 && (r < READS_PER_EVENT || (c->ssl && SSL_pending(c->ssl)));
	     r++) {
		ssize_t n = fill(c);
		int64_t t = now_ns();

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			bool stopping = B.phase == P_DONE;

			if (stopping)
				B.closed_at_stop++;
			client_close(c, E_CLOSED, !stopping);
			return;
		}
		if (n < 0)
			return;
		/* A short read took all there was, unless TLS holds more. */
		bool more = c->in.filled || (c->ssl != NULL && SSL_pending(c->ssl) > 0);
		for (;;) {
			char *line;
			size_t len;
			enum linebuf_result lr = linebuf_next(&c->in, &line, &len);

			if (lr == LB_NONE)
				break;
			if (lr == LB_OVERLONG) {
				count_error(E_PROTOCOL);
				continue;
			}
			on_line(c, line, len, t);
			if (c->state == C_CLOSED || c->state == C_WAIT)
				return;
		}
		if (!more)
			return;
	}
}

static void
on_event(uint32_t idx, uint32_t events)
{
	struct client *c = &B.c[idx];

	if (c->state == C_CLOSED || c->fd < 0)
		return;
	if (c->state == C_CONNECTING) {
		client_connected(c);
		return;
	}
	if (c->state == C_HANDSHAKE) {
		handshake_step(c);
		return;
	}
	if (c->state == C_TICKET) {
		ticket_step(c);
		return;
	}
	/* A TLS read that had to write (a KeyUpdate reply) goes on once the socket takes it. */
	bool read_waits = c->tls_want_write && c->out_len == 0;
	if (events & EPOLLOUT) {
		flush_out(c);
		if (c->sender && B.phase == P_SEND)
			sender_wake(idx);
	}
	if (c->fd >= 0 &&
	    ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || (read_waits && (events & EPOLLOUT))))
		client_readable(c);
}

/* ---- sending ---- */

static bool
sender_may_send(const struct sender *s)
{
	if (B.o.rate > 0)
		return true;
	uint64_t done = s->receivers ? s->delivered / s->receivers : s->acked;

	return s->sent - done < B.o.window;
}

static void
send_one(unsigned si, int64_t t)
{
	struct client *c = &B.c[si];
	char text[4200], msg[4400];
	int n = snprintf(text, sizeof(text), "%u %" PRIu64 " %" PRId64 " ", c->s.index,
			 B.snd[si].sent, t);

	if (B.o.size > (unsigned)n)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%.*s",
			      (int)(B.o.size - (unsigned)n), B.pad);
	size_t len = B.o.proto->message(&c->s, msg, sizeof(msg), text, (size_t)n);
	if (len == 0 || c->out_cap - c->out_len < len) {
		count_error(E_SEND_FULL);
		return;
	}
	memcpy(c->out + c->out_len, msg, len);
	c->out_len += len;
	B.snd[si].sent++;
	B.sent++;
	B.expected += B.snd[si].receivers;
}

static void
send_due(int64_t t)
{
	if (B.o.rate > 0) {
		uint64_t due = (uint64_t)((double)(t - B.t_send) / 1e9 * B.o.rate);

		while (B.sent_rr < due) {
			unsigned si = (unsigned)(B.sent_rr++ % B.o.senders);

			if (B.c[si].state == C_READY) {
				send_one(si, t);
				sender_wake(si); /* to flush */
			}
		}
	}
	for (unsigned i = 0; i < B.nsendq; i++) {
		unsigned si = B.sendq[i];
		struct client *c = &B.c[si];

		B.snd[si].queued = false;
		while (B.o.rate == 0 && c->state == C_READY && sender_may_send(&B.snd[si]) &&
		       c->out_cap - c->out_len > 256 + B.o.size)
			send_one(si, t);
		if (c->state == C_READY && c->out_len > 0)
			flush_out(c);
	}
	B.nsendq = 0;
}

/* ---- phases ---- */

/* Each sender's receivers: the ready, reading clients of its room but itself. */
static void
start_sending(int64_t t)
{
	unsigned *live = calloc(B.rooms, sizeof(*live));

	if (live == NULL) {
		fprintf(stderr, "chatbench: out of memory\n");
		exit(1);
	}
	for (unsigned i = 0; i < B.o.clients; i++)
		if (B.c[i].state == C_READY && !B.c[i].stalled)
			live[i % B.rooms]++;
	for (unsigned si = 0; si < B.o.senders; si++) {
		B.snd[si].receivers = live[si % B.rooms] > 0 ? live[si % B.rooms] - 1 : 0;
		sender_wake(si);
	}
	free(live);
	mark_cpu(B.send_cpu, B.send_self, 0);
	B.phase = P_SEND;
	B.t_send = t;
	B.phase_end = t + secs_ns(B.o.duration);
}

static void
end_login(int64_t t)
{
	for (unsigned i = 0; i < B.o.clients; i++) {
		struct client *c = &B.c[i];

		if (c->state == C_NEW || c->state == C_CONNECTING || c->state == C_HANDSHAKE ||
		    c->state == C_TICKET || c->state == C_LOGIN)
			client_close(c, E_LOGIN_TIMEOUT, true);
	}
	if (B.resume_round) {
		mark_cpu(B.resume_cpu, B.resume_self, 1);
	} else {
		mark_cpu(B.login_cpu, B.login_self, 1);
		if (B.o.resume) {
			/* The second round: every client with a ticket comes back with it. */
			B.resume_round = true;
			B.started = 0;
			B.t_pace = B.t_resume = t;
			B.phase_end = t + secs_ns(B.o.login_timeout);
			mark_cpu(B.resume_cpu, B.resume_self, 0);
			return;
		}
	}
	B.phase = P_SETTLE;
	B.phase_end = t + secs_ns(B.o.settle);
}

/* --resume: clients that waited TICKET_WAIT_NS for a ticket give up (a scan every 10 ms). */
static void
ticket_timeouts(int64_t t)
{
	if (!B.o.resume || B.resume_round || t < B.next_scan)
		return;
	B.next_scan = t + 10000000;
	for (unsigned i = 0; i < B.o.clients; i++) {
		struct client *c = &B.c[i];

		if (c->state == C_TICKET && t - c->heard_at > TICKET_WAIT_NS) {
			B.no_ticket++;
			client_close(c, E_TLS, false);
		}
	}
}

static void
connect_due(int64_t t, const struct sockaddr_storage *ss, socklen_t sslen)
{
	uint64_t due = (uint64_t)((double)(t - B.t_pace) / 1e9 * B.o.connect_rate) + 1;

	while (B.started < B.o.clients && B.started < due && B.pending < B.o.login_window) {
		struct client *c = &B.c[B.started++];

		if (!B.resume_round || c->session != NULL)
			client_start(c, ss, sslen);
	}
}

/* The rooms layout: the joins of --login-window clients are in progress at once. */
static void
join_due(void)
{
	while (B.join_next < B.o.clients && B.joining < B.o.login_window) {
		struct client *c = &B.c[B.join_next++];

		if (c->state != C_READY)
			continue;
		B.joining++;
		c->join_sent = true;
		B.o.proto->join(&c->s);
	}
}

/* Everyone is logged in: the server's memory now, then the joins. */
static void
start_joins(int64_t t)
{
	if (B.o.server_pid > 0)
		procstat_read(B.o.server_pid, &B.logged);
	mark_cpu(B.join_cpu, B.join_self, 0);
	B.phase = P_JOIN;
	B.t_join = t;
	B.phase_end = t + secs_ns(B.o.join_timeout);
	join_due();
}

/* A client not in all its rooms by the end does not take part. */
static void
end_joins(int64_t t)
{
	for (unsigned i = 0; i < B.o.clients; i++) {
		struct client *c = &B.c[i];

		if (c->state == C_READY && c->joined < c->s.nrooms)
			client_close(c, E_JOIN_TIMEOUT, true);
	}
	mark_cpu(B.join_cpu, B.join_self, 1);
	B.joins_done = true;
	B.phase = P_SETTLE;
	B.phase_end = t + secs_ns(B.o.settle);
}

/* The restart command runs on its own; the server it starts outlives chatbench. */
static void
start_storm(int64_t t)
{
	pid_t pid;

	B.storm_target = B.ready;
	for (unsigned i = 0; i < B.o.clients; i++)
		B.tokens_at_restart += B.c[i].s.token[0] != '\0';
	B.t_restart = t;
	B.phase = P_STORM;
	B.phase_end = t + secs_ns(B.o.storm_timeout);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		/*
		 * The server it starts must not hold our stdout (whoever reads our
		 * JSON waits for its end), nor anything else of ours: CMD's own
		 * output goes where CMD redirects it, or nowhere.
		 */
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		close_range(3, ~0U, 0);
		execl("/bin/sh", "sh", "-c", B.o.restart, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		fprintf(stderr, "chatbench: cannot run the restart command: %s\n", strerror(errno));
		B.phase = P_DONE;
	}
}

/* Clients whose wait is over connect again (a scan every 2 ms at most). */
static int
storm_step(int64_t t)
{
	if (B.back >= B.storm_target || t >= B.phase_end) {
		B.phase = P_DONE;
		return 0;
	}
	if (t < B.next_scan)
		return 2;
	B.next_scan = t + 2000000;
	for (unsigned i = 0; i < B.o.clients; i++) {
		struct client *c = &B.c[i];

		if ((c->state == C_CONNECTING || c->state == C_HANDSHAKE || c->state == C_LOGIN) &&
		    t - c->heard_at > STORM_LOGIN_SILENCE_NS)
			client_close(c, E_LOGIN_TIMEOUT, false);
		if (c->state != C_WAIT || c->retry_at > t)
			continue;
		if (linebuf_init(&c->in, B.o.proto->max_line) < 0) {
			c->state = C_CLOSED;
			continue;
		}
		client_start(c, B.ss, B.sslen);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	return 2;
}

/* One step of the phase machine; returns the epoll timeout in ms. */
static int
advance(int64_t t, const struct sockaddr_storage *ss, socklen_t sslen)
{
	switch (B.phase) {
	case P_LOGIN:
		ticket_timeouts(t);
		connect_due(t, ss, sslen);
		if ((B.started == B.o.clients && B.pending == 0) || t >= B.phase_end)
			end_login(t);
		return 1;
	case P_SETTLE:
		if (t < B.phase_end)
			return 10;
		if (B.o.rooms > 0 && !B.joins_done) {
			start_joins(t);
			return 1;
		}
		if (B.o.server_pid > 0)
			procstat_read(B.o.server_pid, &B.after);
		if (B.o.restart != NULL) {
			start_storm(t);
			return 0;
		}
		if (B.o.senders == 0 || B.o.duration <= 0) {
			B.phase = P_DONE;
			return 0;
		}
		start_sending(t);
		/* fall through */
	case P_SEND:
		if (t < B.phase_end) {
			send_due(t);
			return B.o.rate > 0 ? 1 : 10;
		}
		B.t_send_end = t;
		B.phase = P_DRAIN;
		B.phase_end = t + secs_ns(B.o.drain);
		return 10;
	case P_JOIN:
		join_due();
		if ((B.join_next == B.o.clients && B.joining == 0) || t >= B.phase_end)
			end_joins(t);
		return 1;
	case P_DRAIN:
		/*
		 * Done when every delivery is in and, on chatd's protocol, every
		 * OK: a sender's OK may come after the last member's copy.
		 */
		if ((B.in_order >= B.expected &&
		     (B.o.proto != &proto_chatd || B.acked >= B.sent)) ||
		    t >= B.phase_end) {
			mark_cpu(B.send_cpu, B.send_self, 1);
			B.phase = P_DONE;
		}
		return 10;
	case P_STORM:
		return storm_step(t);
	case P_DONE:
		break;
	}
	return 0;
}

static void
run_loop(const struct sockaddr_storage *ss, socklen_t sslen)
{
	struct epoll_event ev[EPOLL_BATCH];

	B.t0 = B.t_pace = now_ns();
	mark_cpu(B.login_cpu, B.login_self, 0);
	B.phase = P_LOGIN;
	B.phase_end = B.t0 + secs_ns(B.o.login_timeout);
	while (B.phase != P_DONE) {
		int timeout = advance(now_ns(), ss, sslen);

		if (B.phase == P_DONE)
			break;
		int n = epoll_wait(B.ep, ev, EPOLL_BATCH, timeout);
		for (int i = 0; i < n; i++)
			on_event(ev[i].data.u32, ev[i].events);
	}
}

/*
 * Sends SIGTERM to the server and times its exit through a pidfd, reading
 * every client meanwhile (so BYE lines do not pile up in full buffers).
 */
static void
stop_server(void)
{
	struct epoll_event ev[EPOLL_BATCH];
	int pidfd = (int)syscall(SYS_pidfd_open, B.o.server_pid, 0);
	int64_t t0 = now_ns(), limit = t0 + secs_ns(30);

	if (pidfd < 0 || kill(B.o.server_pid, SIGTERM) < 0) {
		B.shutdown_ms = -1;
		return;
	}
	struct epoll_event pev = { .events = EPOLLIN, .data.u32 = PIDFD_TAG };
	epoll_ctl(B.ep, EPOLL_CTL_ADD, pidfd, &pev);
	B.shutdown_ms = -1;
	while (now_ns() < limit && B.shutdown_ms < 0) {
		int n = epoll_wait(B.ep, ev, EPOLL_BATCH, 100);

		for (int i = 0; i < n; i++) {
			if (ev[i].data.u32 == PIDFD_TAG)
				B.shutdown_ms = (double)(now_ns() - t0) / 1e6;
			else
				on_event(ev[i].data.u32, ev[i].events);
		}
	}
	close(pidfd);
}

/* ---- the report ---- */

static void
print_procstat(const char *key, const struct procstat *ps)
{
	printf("\"%s\":{\"rss_kib\":%" PRId64 ",\"threads\":%" PRId64 ",\"stack_rss_kib\":%" PRId64
	       ",\"cgroup_kib\":%" PRId64 ",\"cgroup_kmem_kib\":%" PRId64 "}",
	       key, ps->rss_kib, ps->threads, ps->stack_rss_kib, ps->cgroup_kib,
	       ps->cgroup_kmem_kib);
}

/* CPU seconds of the server and of chatbench between two marks, and the server's per item. */
static void
print_cpu(const int64_t *cpu, const int64_t *self, uint64_t items, const char *item)
{
	double server = cpu[0] >= 0 && cpu[1] >= 0 ? (double)(cpu[1] - cpu[0]) / 1e3 : -1;

	printf("\"server_cpu_s\":%.2f,\"chatbench_cpu_s\":%.2f,\"server_cpu_us_per_%s\":%.3f",
	       server, (double)(self[1] - self[0]) / 1e3, item,
	       server >= 0 && items > 0 ? server * 1e6 / (double)items : -1.0);
}

/* The rooms layout: what the joins added to the server, per membership. */
static void
print_membership_cost(void)
{
	const struct procstat *a = &B.logged, *b = &B.after;
	double m = (double)B.memberships;

	printf(",");
	print_procstat("logged_in", a);
	printf(",\"rss_per_membership_kib\":%.3f,\"cgroup_per_membership_kib\":%.3f",
	       m > 0 ? (double)(b->rss_kib - a->rss_kib) / m : 0.0,
	       m > 0 && a->cgroup_kib >= 0 && b->cgroup_kib >= 0
		       ? (double)(b->cgroup_kib - a->cgroup_kib) / m
		       : -1.0);
}

/*
 * --tls: the handshakes, from the first connection to the last handshake
 * done, and each one's time from the TCP connection up.  The server's CPU
 * per handshake is that of the whole connecting phase: with
 * --handshake-only the handshakes alone, else the logins with them.
 */
/* --resume: the second round, each client offering the session of its ticket. */
static void
print_resume(void)
{
	double span = B.resumed_handshakes ? (double)(B.t_last_resumed - B.t_resume) / 1e9 : 0;
	double server = B.resume_cpu[0] >= 0 && B.resume_cpu[1] >= 0
				? (double)(B.resume_cpu[1] - B.resume_cpu[0]) / 1e3
				: -1;

	printf("\"tls_resume\":{\"tickets\":%" PRIu64 ",\"no_ticket\":%" PRIu64
	       ",\"handshakes\":%" PRIu64 ",\"reused\":%" PRIu64
	       ",\"handshake_s\":%.3f,\"handshakes_per_s\":%.0f,"
	       "\"handshake_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
	       "\"server_cpu_s\":%.2f,\"chatbench_cpu_s\":%.2f,\"server_cpu_us_per_handshake\":%.1f},",
	       B.tickets, B.no_ticket, B.resumed_handshakes, B.reused, span,
	       span > 0 ? (double)B.resumed_handshakes / span : 0.0,
	       (double)hist_quantile(&B.hist_resume, 0.50) / 1e6,
	       (double)hist_quantile(&B.hist_resume, 0.99) / 1e6, (double)B.hist_resume.max / 1e6,
	       server, (double)(B.resume_self[1] - B.resume_self[0]) / 1e3,
	       server >= 0 && B.resumed_handshakes > 0 ? server * 1e6 / (double)B.resumed_handshakes
						       : -1.0);
}

static void
print_tls(void)
{
	double span = B.handshakes ? (double)(B.t_last_handshake - B.t0) / 1e9 : 0;
	double server = B.login_cpu[0] >= 0 && B.login_cpu[1] >= 0
				? (double)(B.login_cpu[1] - B.login_cpu[0]) / 1e3
				: -1;

	printf("\"tls\":{\"verified\":%s,\"handshake_only\":%s,\"handshakes\":%" PRIu64
	       ",\"handshake_s\":%.3f,\"handshakes_per_s\":%.0f,"
	       "\"handshake_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
	       "\"server_cpu_s\":%.2f,\"chatbench_cpu_s\":%.2f,\"server_cpu_us_per_handshake\":%.1f},",
	       B.o.ca_file ? "true" : "false", B.o.handshake_only ? "true" : "false", B.handshakes,
	       span, span > 0 ? (double)B.handshakes / span : 0.0,
	       (double)hist_quantile(&B.hist_handshake, 0.50) / 1e6,
	       (double)hist_quantile(&B.hist_handshake, 0.99) / 1e6,
	       (double)B.hist_handshake.max / 1e6, server,
	       (double)(B.login_self[1] - B.login_self[0]) / 1e3,
	       server >= 0 && B.handshakes > 0 ? server * 1e6 / (double)B.handshakes : -1.0);
	if (B.o.resume)
		print_resume();
}

static void
report(void)
{
	const struct options *o = &B.o;
	uint64_t expected = B.expected;
	int64_t t_end = B.t_last_delivery > B.t_send_end ? B.t_last_delivery : B.t_send_end;
	double span = B.t_send ? (double)(t_end - B.t_send) / 1e9 : 0;
	printf("{\"label\":\"%s\",\"proto\":\"%s\",\"clients\":%u,\"logged_in\":%u,"
	       "\"login_s\":%.3f,\"senders\":%u,\"stalled\":%u,\"duration_s\":%.1f,\"rate\":%.0f,"
	       "\"window\":%u,\"size\":%u,\"rooms\":%u,\"joins\":%u,",
	       o->label, o->proto->name, o->clients, B.ready,
	       B.ready ? (double)(B.t_last_login - B.t0) / 1e9 : 0.0, o->senders, o->stalled,
	       o->duration, o->rate, o->window, o->size, o->rooms, o->joins);
	if (o->proto == &proto_irc)
		printf("\"irc\":{\"pass\":%s,\"channel\":\"%s\"},", o->irc_pass ? "true" : "false",
		       o->rooms > 0 ? "" : o->channel);
	if (o->rooms > 0) {
		printf("\"join\":{\"clients\":%u,\"memberships\":%" PRIu64 ",\"join_s\":%.3f,",
		       B.joined_clients, B.memberships,
		       B.joined_clients ? (double)(B.t_last_joined - B.t_join) / 1e9 : 0.0);
		print_cpu(B.join_cpu, B.join_self, B.memberships, "join");
		printf("},");
	}
	if (B.t_send) {
		printf("\"send_cpu\":{");
		print_cpu(B.send_cpu, B.send_self, B.delivered, "delivery");
		printf("},");
	}
	printf("\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"expected\":%" PRIu64
	       ",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"deliveries_per_s\":%.0f,",
	       B.sent, B.acked, expected, B.delivered,
	       expected > B.in_order ? expected - B.in_order : 0,
	       span > 0 ? (double)B.delivered / span : 0.0);
	printf("\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},",
	       (double)hist_quantile(&B.hist, 0.50) / 1e6,
	       (double)hist_quantile(&B.hist, 0.90) / 1e6,
	       (double)hist_quantile(&B.hist, 0.99) / 1e6,
	       (double)hist_quantile(&B.hist, 0.999) / 1e6, (double)B.hist.max / 1e6);
	/* Senders are busy clients: their latency apart shows whether being busy costs. */
	printf("\"senders_latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
	       (double)hist_quantile(&B.hist_senders, 0.50) / 1e6,
	       (double)hist_quantile(&B.hist_senders, 0.99) / 1e6,
	       (double)B.hist_senders.max / 1e6);
	unsigned late_receivers = 0;
	for (unsigned i = 0; i < o->clients; i++)
		late_receivers += B.c[i].late > 0;
	printf("\"late\":{\"over_ms\":%d,\"deliveries\":%" PRIu64 ",\"receivers\":%u,"
	       "\"sent_from_s\":%.3f,\"sent_to_s\":%.3f},",
	       (int)(LATE_NS / 1000000), B.late, late_receivers,
	       B.late ? (double)(B.late_sent_first - B.t_send) / 1e9 : 0.0,
	       B.late ? (double)(B.late_sent_last - B.t_send) / 1e9 : 0.0);
	if (o->restart != NULL) {
		unsigned refused_tokens = 0;

		for (unsigned i = 0; i < o->clients; i++)
			refused_tokens += B.c[i].s.token_refused;
		printf("\"storm\":{\"tokens\":%s,\"online\":%u,\"tokens_held\":%u,\"back\":%u,"
		       "\"back_s\":%.3f,\"resumed\":%u,\"password\":%u,\"tokens_refused\":%u,"
		       "\"drops\":%" PRIu64 ",\"connect_failures\":%" PRIu64
		       ",\"refusals\":%" PRIu64 ",\"silent_30s\":%" PRIu64 ",\"timeout_s\":%.0f},",
		       o->tokens ? "true" : "false", B.storm_target, B.tokens_at_restart, B.back,
		       B.back ? (double)(B.t_all_back - B.t_restart) / 1e9 : 0.0, B.back_resumed,
		       B.back_password, refused_tokens, B.drops, B.connect_failures, B.refusals,
		       B.silent, o->storm_timeout);
	}
	if (B.tls != NULL)
		print_tls();
	printf("\"errors\":{");
	for (int k = 0; k < E_KINDS; k++)
		printf("%s\"%s\":%" PRIu64, k ? "," : "", err_names[k], B.errors[k]);
	printf("}");
	if (o->server_pid > 0) {
		printf(",\"server\":{\"pid\":%d,", (int)o->server_pid);
		print_procstat("before", &B.before);
		printf(",");
		print_procstat("loaded", &B.after);
		double per = B.ready ? (double)(B.after.rss_kib - B.before.rss_kib) / B.ready : 0;
		double cg = B.ready && B.after.cgroup_kib >= 0 && B.before.cgroup_kib >= 0
				    ? (double)(B.after.cgroup_kib - B.before.cgroup_kib) / B.ready
				    : -1;
		printf(",\"rss_per_client_kib\":%.2f,\"cgroup_per_client_kib\":%.2f", per, cg);
		if (o->rooms > 0)
			print_membership_cost();
		if (o->stop_server)
			printf(",\"shutdown_ms\":%.1f,\"closed_at_stop\":%u", B.shutdown_ms,
			       B.closed_at_stop);
		printf("}");
	}
	printf("}\n");
	fflush(stdout);
}

/* ---- set-up ---- */

/* Every client needs a descriptor: raise the soft limit, and the hard one if allowed. */
static void
raise_nofile(unsigned clients)
{
	rlim_t need = (rlim_t)clients + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max < need) {
		struct rlimit more = { need, need };

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need)
		fprintf(stderr,
			"chatbench: warning: open file limit %llu is below the %llu needed\n",
			(unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

static int
setup(void)
{
	const struct options *o = &B.o;

	B.rooms = o->rooms > 0 ? o->rooms : 1;
	B.per_room = o->senders > 0 ? (o->senders + B.rooms - 1) / B.rooms : 1;
	B.c = calloc(o->clients, sizeof(*B.c));
	B.snd = calloc(o->senders ? o->senders : 1, sizeof(*B.snd));
	B.sendq = calloc(o->senders ? o->senders : 1, sizeof(*B.sendq));
	B.next_seq = calloc((size_t)o->clients * B.per_room, sizeof(*B.next_seq));
	B.ep = epoll_create1(EPOLL_CLOEXEC);
	if (B.c == NULL || B.snd == NULL || B.sendq == NULL || B.next_seq == NULL || B.ep < 0)
		return -1;
	memset(B.pad, 'x', sizeof(B.pad) - 1);
	for (unsigned i = 0; i < o->clients; i++) {
		struct client *c = &B.c[i];

		c->s.index = o->first + i;
		c->s.password = o->password;
		c->s.want_token = o->tokens;
		c->s.send_pass = o->irc_pass;
		c->s.channel = o->channel;
		c->fd = -1;
		c->sender = i < o->senders;
		c->stalled = i >= o->clients - o->stalled;
		c->out_cap = !c->sender                   ? OUT_CAP_OTHER
			     : o->senders <= MANY_SENDERS ? OUT_CAP_SENDER
							  : OUT_CAP_SENDER_MANY;
		c->s.nrooms = o->rooms > 0 ? o->joins : 0;
		for (unsigned k = 0; k < c->s.nrooms; k++)
			c->s.rooms[k] = (unsigned)(((uint64_t)i * o->joins + k) % o->rooms);
		c->out = malloc(c->out_cap);
		if (c->out == NULL || linebuf_init(&c->in, o->proto->max_line) < 0)
			return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sslen;

	parse_options(argc, argv, &B.o);
	if (fill_sockaddr(B.o.host, B.o.port, &ss, &sslen) < 0) {
		fprintf(stderr,
			"chatbench: %s is not a numeric loopback address "
			"(127.0.0.0/8 or ::1): chatbench only loads this machine\n",
			B.o.host);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)now_ns() ^ (unsigned)getpid());
	if (B.o.tls && (B.tls = btls_ctx_new(B.o.ca_file, B.o.resume)) == NULL)
		return 1;
	B.ss = &ss;
	B.sslen = sslen;
	raise_nofile(B.o.clients);
	if (setup() < 0) {
		fprintf(stderr, "chatbench: out of memory for %u clients\n", B.o.clients);
		return 1;
	}
	if (B.o.server_pid > 0) {
		procstat_read(B.o.server_pid, &B.before);
		if (!B.before.ok) {
			fprintf(stderr, "chatbench: no process %d to watch\n", (int)B.o.server_pid);
			return 2;
		}
	}
	run_loop(&ss, sslen);
	if (B.o.stop_server)
		stop_server();
	report();
	return 0;
}
