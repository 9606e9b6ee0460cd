/*
 * fanout_ref.c - the bare fan-out reference: what this machine allows.
 *
 * A minimal single-threaded epoll server: it greets every connection with
 * one line, and writes every complete line it reads to all other
 * connections.  Output is buffered per socket and flushed once per turn of
 * the loop, so a burst of lines costs each recipient one send().  No login,
 * no storage, no formatting: a chat server cannot do less work per
 * delivery, which makes this the yardstick chatbench compares against.
 *
 * Rooms, for chatbench's rooms layout: a connection whose input starts
 * with "/join rN" lines (N a number) is put in those rooms, each answered
 * "joined rN"; from then on its lines go to the other members of the last
 * room it joined, not to everyone.
 *
 * usage: fanout_ref [ADDRESS [PORT]]   (default 127.0.0.1, port 0: any)
 * Prints "fanout_ref: listening on ADDRESS:PORT" once ready; SIGTERM or
 * SIGINT stop it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP 65536
#define OUT_LIMIT (16u << 20) /* a connection further behind is dropped */
#define EPOLL_BATCH 512
#define TAG_LISTEN UINT32_MAX
#define TAG_SIGNAL (UINT32_MAX - 1)
#define ROOMS_MAX (1u << 20)
#define CONN_ROOMS 16

struct room {
	int *fds;
	size_t n, cap;
};

struct conn {
	int fd;
	bool dirty;      /* on the flush list */
	unsigned nrooms; /* rooms joined; its lines go to the last one */
	unsigned rooms[CONN_ROOMS];
	uint32_t events;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_cap;
};

static struct conn *conns; /* indexed by fd */
static size_t n_slots;
static int *live; /* fds of open connections */
static size_t n_live;
static int *flush_list;
static size_t n_flush;
static int ep;
static struct room *rooms; /* indexed by room number */
static size_t n_rooms;

static void
room_remove(unsigned r, int fd)
{
	struct room *rm = &rooms[r];

	for (size_t i = 0; i < rm->n; i++)
		if (rm->fds[i] == fd) {
			rm->fds[i] = rm->fds[--rm->n];
			return;
		}
}

static void
conn_close(int fd)
{
	struct conn *c = &conns[fd];

	close(fd);
	free(c->in);
	free(c->out);
	for (unsigned i = 0; i < c->nrooms; i++)
		room_remove(c->rooms[i], fd);
	for (size_t i = 0; i < n_live; i++)
		if (live[i] == fd) {
			live[i] = live[--n_live];
			break;
		}
	bool dirty = c->dirty;
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->dirty = dirty; /* still on the flush list; flush skips closed ones */
}

static int
out_append(struct conn *c, const char *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;

		while (cap < c->out_len + n)
			cap *= 2;
		if (cap > OUT_LIMIT)
			return -1;
		char *o = realloc(c->out, cap);
		if (o == NULL)
			return -1;
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	if (!c->dirty) {
		c->dirty = true;
		flush_list[n_flush++] = c->fd;
	}
	return 0;
}

static void
arm(struct conn *c)
{
	uint32_t want = EPOLLIN | (c->out_len ? EPOLLOUT : 0);

	if (want != c->events) {
		struct epoll_event ev = { .events = want, .data.u32 = (uint32_t)c->fd };

		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->events = want;
	}
}

static void
flush_conn(struct conn *c)
{
	while (c->out_len > 0) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				conn_close(c->fd);
			else
				arm(c);
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	arm(c);
}

/* Every complete line read from src goes, as one block, to every other connection of its room. */
static void
fan_out(int src, const char *p, size_t n)
{
	const struct conn *s = &conns[src];
	int *to = live;
	size_t *count = &n_live;

	if (s->nrooms > 0) {
		to = rooms[s->rooms[s->nrooms - 1]].fds;
		count = &rooms[s->rooms[s->nrooms - 1]].n;
	}
	for (size_t i = 0; i < *count; i++) {
		int fd = to[i];

		if (fd != src && out_append(&conns[fd], p, n) < 0) {
			conn_close(fd);
			i--; /* to[i] now holds another fd */
		}
	}
}

/* "/join rN": c joins room N, and is told so. */
static int
join(struct conn *c, const char *line)
{
	char *end;
	unsigned long r = strtoul(line + 7, &end, 10);
	char reply[32];

	if (strncmp(line, "/join r", 7) != 0 || *end != '\n' || r >= ROOMS_MAX ||
	    c->nrooms == CONN_ROOMS)
		return -1;
	if (r >= n_rooms) {
		size_t n = n_rooms ? n_rooms : 64;

		while (n <= r)
			n *= 2;
		struct room *more = realloc(rooms, n * sizeof(*rooms));
		if (more == NULL)
			return -1;
		memset(more + n_rooms, 0, (n - n_rooms) * sizeof(*rooms));
		rooms = more;
		n_rooms = n;
	}
	struct room *rm = &rooms[r];
	if (rm->n == rm->cap) {
		size_t cap = rm->cap ? rm->cap * 2 : 8;
		int *fds = realloc(rm->fds, cap * sizeof(*fds));

		if (fds == NULL)
			return -1;
		rm->fds = fds;
		rm->cap = cap;
	}
	rm->fds[rm->n++] = c->fd;
	c->rooms[c->nrooms++] = (unsigned)r;
	int n = snprintf(reply, sizeof(reply), "joined r%lu\n", r);
	return out_append(c, reply, (size_t)n);
}

/* Leading "/join" lines of c's input; returns how many bytes they took (-1: close c). */
static ssize_t
joins(struct conn *c)
{
	size_t done = 0;

	while (c->in_len - done > 7 && c->in[done] == '/') {
		char *nl = memchr(c->in + done, '\n', c->in_len - done);

		if (nl == NULL || join(c, c->in + done) < 0)
			return nl == NULL ? (ssize_t)done : -1;
		done = (size_t)(nl - c->in) + 1;
	}
	return (ssize_t)done;
}

static void
conn_read(int fd)
{
	struct conn *c = &conns[fd];
	ssize_t n = recv(fd, c->in + c->in_len, IN_CAP - c->in_len, 0);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_close(fd);
		return;
	}
	if (n < 0)
		return;
	c->in_len += (size_t)n;
	ssize_t cmd = c->in[0] == '/' ? joins(c) : 0;
	if (cmd < 0) {
		conn_close(fd);
		return;
	}
	memmove(c->in, c->in + cmd, c->in_len - (size_t)cmd);
	c->in_len -= (size_t)cmd;
	char *last = memrchr(c->in, '\n', c->in_len);
	if (last == NULL) {
		if (c->in_len == IN_CAP) /* a line longer than the buffer: drop it */
			c->in_len = 0;
		return;
	}
	size_t whole = (size_t)(last - c->in) + 1;
	fan_out(fd, c->in, whole);
	memmove(c->in, c->in + whole, c->in_len - whole);
	c->in_len -= whole;
}

static void
accept_all(int lfd)
{
	static const char greeting[] = "HELLO fanout_ref\n";
	int one = 1;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		if ((size_t)fd >= n_slots || (conns[fd].in = malloc(IN_CAP)) == NULL) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conns[fd].fd = fd;
		conns[fd].events = EPOLLIN;
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)fd };
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		live[n_live++] = fd;
		out_append(&conns[fd], greeting, sizeof(greeting) - 1);
	}
}

static int
listen_on(const char *addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, fd;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1 ||
	    (ntohl(sin.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "fanout_ref: %s is not an IPv4 loopback address\n", addr);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 4096) < 0) {
		perror("fanout_ref: bind/listen");
		close(fd);
		return -1;
	}
	socklen_t len = sizeof(sin);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	printf("fanout_ref: listening on %s:%d\n", addr, ntohs(sin.sin_port));
	fflush(stdout);
	return fd;
}

static int
setup(const char *addr, int port)
{
	struct rlimit rl;
	sigset_t sigs;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	n_slots = rl.rlim_cur;
	conns = calloc(n_slots, sizeof(*conns));
	live = calloc(n_slots, sizeof(*live));
	flush_list = calloc(n_slots, sizeof(*flush_list));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (conns == NULL || live == NULL || flush_list == NULL || ep < 0)
		return -1;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	int lfd = listen_on(addr, port);
	if (sfd < 0 || lfd < 0)
		return -1;
	struct epoll_event lev = { .events = EPOLLIN, .data.u32 = TAG_LISTEN };
	struct epoll_event sev = { .events = EPOLLIN, .data.u32 = TAG_SIGNAL };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev);
	return lfd;
}

int
main(int argc, char **argv)
{
	struct epoll_event ev[EPOLL_BATCH];
	int lfd = setup(argc > 1 ? argv[1] : "127.0.0.1", argc > 2 ? atoi(argv[2]) : 0);

	if (lfd < 0)
		return 1;
	for (;;) {
		int n = epoll_wait(ep, ev, EPOLL_BATCH, -1);

		for (int i = 0; i < n; i++) {
			uint32_t tag = ev[i].data.u32;

			if (tag == TAG_SIGNAL)
				return 0;
			if (tag == TAG_LISTEN)
				accept_all(lfd);
			else if (conns[tag].fd == (int)tag && (ev[i].events & EPOLLOUT))
				flush_conn(&conns[tag]);
			if (tag != TAG_LISTEN && conns[tag].fd == (int)tag &&
			    (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				conn_read((int)tag);
		}
		for (size_t i = 0; i < n_flush; i++) {
			struct conn *c = &conns[flush_list[i]];

			c->dirty = false;
			if (c->fd >= 0)
				flush_conn(c);
		}
		n_flush = 0;
	}
}
