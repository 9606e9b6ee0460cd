/*
 * ctl_conn.c - chatctl's side of the admin protocol (see ctl_conn.h and
 * docs/ADMIN.md).  Owns the connection (its socket and reply buffer);
 * chatctl's one thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin_proto.h"
#include "ctl_conn.h"
#include "escape.h"
#include "termcs.h"
#include "utf8.h"

/* A data line is a log line at most; chatd leaves out longer ones. */
#define CTL_MAX_LINE (128 * 1024)

static int
unreachable(const char *path, int err)
{
	switch (err) {
	case ENOENT:
		fprintf(stderr, "chatctl: chatd is not running: no socket at %s\n", path);
		break;
	case ECONNREFUSED:
		fprintf(stderr, "chatctl: chatd is not running: nobody answers on %s\n", path);
		break;
	case EACCES:
	case EPERM:
		fprintf(stderr,
			"chatctl: permission denied: %s (root, chatd's user and its "
			"admin group may use it)\n",
			path);
		break;
	case ETIMEDOUT:
		fprintf(stderr, "chatctl: chatd does not answer on %s\n", path);
		break;
	default:
		fprintf(stderr, "chatctl: cannot reach chatd on %s: %s\n", path, strerror(err));
	}
	return CTL_UNREACHABLE;
}

/* Waits for events on fd for the timeout; false (errno ETIMEDOUT) if none came. */
static bool
wait_for(const struct ctl_conn *c, short events)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };
	int n;

	while ((n = poll(&pfd, 1, c->timeout_ms)) < 0 && errno == EINTR)
		;
	if (n == 0)
		errno = ETIMEDOUT;
	return n > 0;
}

/*
 * Whether the listener on c may hear a command: its uid (SO_PEERCRED)
 * trusted by c->trust.  CTL_OK, or CTL_UNREACHABLE with the reason on
 * stderr.  Called before anything is written to c.
 */
static int
check_listener(const struct ctl_conn *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	const struct passwd *pw;
	char trusted[1024];

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
		fprintf(stderr,
			"chatctl: refusing %s: cannot tell who serves it (SO_PEERCRED: %s); "
			"nothing was sent\n",
			c->path, strerror(errno));
		return CTL_UNREACHABLE;
	}
	if (ctl_uid_trusted(cred.uid, c->trust->own, c->trust->user))
		return CTL_OK;
	if (cred.uid == CTL_NO_UID) {
		fprintf(stderr,
			"chatctl: refusing %s: the kernel does not say who serves it; "
			"nothing was sent\n",
			c->path);
		return CTL_UNREACHABLE;
	}
	ctl_trust_describe(c->trust, trusted, sizeof(trusted));
	pw = getpwuid(cred.uid);
	fprintf(stderr,
		"chatctl: refusing %s: it is served by uid %u (%s), pid %ld, not by %s; "
		"nothing was sent\n",
		c->path, (unsigned)cred.uid, pw != NULL ? pw->pw_name : "no user name",
		(long)cred.pid, trusted);
	return CTL_UNREACHABLE;
}

int
ctl_connect(struct ctl_conn *c, const char *path, const struct ctl_trust *trust, int timeout_ms)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int err = 0;
	socklen_t len = sizeof(err);

	c->path = path;
	c->timeout_ms = timeout_ms;
	c->trust = trust;
	c->fd = -1;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "chatctl: socket path too long: %s\n", path);
		return CTL_USAGE;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (linebuf_init(&c->in, CTL_MAX_LINE) < 0 ||
	    (c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return unreachable(path, errno);
	/* A full backlog makes connect() wait: bound that wait too. */
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno != EAGAIN && errno != EINPROGRESS)
			err = errno;
		else if (!wait_for(c, POLLOUT))
			err = errno;
		else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
	}
	if (err != 0) {
		ctl_close(c);
		return unreachable(path, err);
	}
	if ((err = check_listener(c)) != CTL_OK)
		ctl_close(c);
	return err;
}

void
ctl_close(struct ctl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	linebuf_free(&c->in);
}

bool
ctl_closed(struct ctl_conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	char byte;

	if (c->fd < 0)
		return true;
	if (poll(&pfd, 1, 0) <= 0)
		return false;
	/* Between requests chatd sends nothing: readable means closed (or a refusal). */
	return recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

static int
send_all(struct ctl_conn *c, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_for(c, POLLOUT))
				return -1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Next reply line; NULL (message printed) when the connection ends or stalls. */
static char *
read_line(struct ctl_conn *c)
{
	for (;;) {
		char *line;
		size_t len;
		ssize_t n;

		switch (linebuf_next(&c->in, &line, &len)) {
		case LB_LINE:
			return line;
		case LB_OVERLONG:
			fprintf(stderr, "chatctl: a reply line longer than %d bytes was cut\n",
				CTL_MAX_LINE);
			continue;
		case LB_NONE:
			break;
		}
		if (!wait_for(c, POLLIN)) {
			fprintf(stderr, "chatctl: no answer from chatd within %d s\n",
				c->timeout_ms / 1000);
			return NULL;
		}
		n = linebuf_fill(&c->in, c->fd);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			fprintf(stderr, "chatctl: chatd closed the connection\n");
			return NULL;
		}
	}
}

/* Whether text has a byte beyond ASCII. */
static bool
beyond_ascii(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] >= 0x80)
			return true;
	return false;
}

/*
 * Whether f is a terminal that does not take UTF-8 (termcs.h), where the
 * bytes of a UTF-8 character could be C1 controls: looked up once per stream.
 */
static bool
terminal_8bit(FILE *f)
{
	static signed char known[3] = { -1, -1, -1 };
	int fd = fileno(f);

	if (fd < 0 || fd > 2)
		return false;
	if (known[fd] < 0)
		known[fd] = terminal_not_utf8(fd);
	return known[fd] > 0;
}

/*
 * Prints text, escaping anything that could steer the terminal: what
 * text_check() refuses, and on a terminal that does not take UTF-8 every
 * byte beyond ASCII.
 */
static void
print_clean(FILE *f, const char *text)
{
	size_t len = strlen(text);

	if (text_check(text, len) == TEXT_OK && !(beyond_ascii(text, len) && terminal_8bit(f))) {
		fprintf(f, "%s\n", text);
		return;
	}
	char *esc = malloc(len * 4 + 1);
	if (esc != NULL) {
		escape_bytes(esc, len * 4 + 1, text, len);
		fprintf(f, "%s\n", esc);
		free(esc);
	}
}

int
ctl_request(struct ctl_conn *c, const char *request)
{
	size_t len = strlen(request);
	char *msg = malloc(len + 2);

	if (msg == NULL)
		return unreachable(c->path, ENOMEM);
	memcpy(msg, request, len);
	memcpy(msg + len, "\n", 2);
	int rc = send_all(c, msg, len + 1), send_errno = errno;
	explicit_bzero(msg, len + 1); /* it may hold a password */
	free(msg);
	/* A refusal may have closed the socket before the request went out: read it anyway. */
	if (rc < 0 && send_errno != EPIPE && send_errno != ECONNRESET)
		return unreachable(c->path, send_errno);
	/* The OK text is a summary: shown only when no data came, so output pipes cleanly. */
	for (bool data = false;;) {
		const char *line = read_line(c), *text;
		int code;

		if (line == NULL)
			return CTL_UNREACHABLE;
		switch (admin_classify(line, &code, &text)) {
		case ADMIN_LINE_DATA:
			print_clean(stdout, text);
			data = true;
			continue;
		case ADMIN_LINE_OK:
			if (!data && text[0] != '\0')
				print_clean(stdout, text);
			return fflush(stdout) == 0 ? CTL_OK : CTL_REFUSED;
		case ADMIN_LINE_ERR:
			fputs("chatctl: ", stderr);
			print_clean(stderr, text);
			return code == ADMIN_ERR_FORBIDDEN ? CTL_UNREACHABLE : CTL_REFUSED;
		case ADMIN_LINE_BAD:
			fprintf(stderr, "chatctl: not an admin protocol line from chatd: ");
			print_clean(stderr, line);
			return CTL_UNREACHABLE;
		}
	}
}
