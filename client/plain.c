/*
 * plain.c - the script mode: no prompts, no colours, no reconnecting.
 *
 * It logs in with --name and the password from a file or the environment,
 * then sends one input line at a time and waits for its final reply (OK or
 * ERR) before the next, so a script knows each line was dealt with.  Every
 * line the server sends is printed as the protocol gives it (sanitized).
 * At the end of input it sends /quit and exits 0 if everything was
 * acknowledged, CHAT_EXIT_REFUSED if the server refused a line, and
 * CHAT_EXIT_LOST if the connection ended first.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "exitcode.h"
#include "login.h"
#include "options.h"
#include "sanitize.h"
#include "srvline.h"
#include "timefmt.h"

struct plain {
	struct chat_options *o;
	struct conn conn;
	struct strbuf input;	/* stdin bytes not yet sent */
	struct strbuf line;	/* scratch: one server line, sanitized */
	bool input_done;	/* stdin reached its end */
	bool waiting;		/* a request is out, its final reply not in yet */
	bool quitting;		/* the request out is /quit: BYE answers it */
	bool refused;		/* some request got ERR */
	int64_t reply_deadline;
};

static int64_t reply_deadline(const struct plain *p)
{
	return time_mono_ms() + (int64_t)p->o->timeout_s * 1000;
}

/* Prints a server line as received, unsafe bytes replaced. */
static void print_line(struct plain *p, const char *line, size_t len)
{
	strbuf_reset(&p->line);
	if (sanitize_append(&p->line, line, len) == 0 && strbuf_add(&p->line, "\n", 1) == 0)
		fwrite(p->line.buf, 1, p->line.len, stdout);
	fflush(stdout);
}

static int fail(int code, const char *what)
{
	fprintf(stderr, "chat: %s\n", what);
	return code;
}

/* HELLO to OK; 0 once logged in, else an exit code (message printed). */
static int log_in(struct plain *p)
{
	struct login l;

	login_start(&l, p->o->name, p->o->password, false);
	for (;;) {
		char *raw;
		size_t len;
		struct srv_line sl;
		int rc = conn_wait_line(&p->conn, reply_deadline(p), &raw, &len);

		if (rc == 0)
			return fail(CHAT_EXIT_LOST, "no answer from the server during login");
		if (rc == -2)
			return fail(CHAT_EXIT_LOST, "the server sent a line longer than the protocol allows");
		if (rc < 0)
			return fail(CHAT_EXIT_LOST, "the connection was closed during login");
		print_line(p, raw, len);
		if (!srv_parse(raw, len, &sl))
			return fail(CHAT_EXIT_LOST, "the server sent a line the protocol does not know");
		switch (login_feed(&l, &sl, &p->conn)) {
		case LOGIN_DONE:
			return 0;
		case LOGIN_ERROR:
			return fail(l.exit_code, l.message);
		case LOGIN_NEED_PASSWORD:	/* not with a password given and may_ask false */
		case LOGIN_CONTINUE:
		case LOGIN_SHOW:
			break;
		}
	}
}

/* The next complete input line (the last one may lack its LF), CR dropped. */
static bool next_input_line(struct plain *p, char **line, size_t *len, size_t *used)
{
	char *lf = p->input.len ? memchr(p->input.buf, '\n', p->input.len) : NULL;
	size_t n;

	if (lf == NULL && !(p->input_done && p->input.len > 0))
		return false;
	n = lf ? (size_t)(lf - p->input.buf) : p->input.len;
	*used = lf ? n + 1 : n;
	if (n > 0 && p->input.buf[n - 1] == '\r')
		n--;
	p->input.buf[n] = '\0';
	*line = p->input.buf;
	*len = n;
	return true;
}

static int send_request(struct plain *p, const char *line, size_t len)
{
	p->waiting = true;
	p->quitting = len >= 5 && strncmp(line, "/quit", 5) == 0 && (len == 5 || line[5] == ' ');
	p->reply_deadline = reply_deadline(p);
	return conn_send(&p->conn, line, len);
}

/*
 * Sends the next input line if no reply is awaited; blank lines get no
 * reply from chatd, so they are not sent.  At the end of input: /quit.
 */
static int send_next(struct plain *p)
{
	char *line;
	size_t len, used;

	while (!p->waiting && next_input_line(p, &line, &len, &used)) {
		int rc = len > 0 ? send_request(p, line, len) : 0;

		strbuf_consume(&p->input, used);
		if (rc < 0)
			return -1;
	}
	if (!p->waiting && p->input_done)
		return send_request(p, "/quit", 5);
	return 0;
}

static int read_input(struct plain *p)
{
	char buf[65536];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (n == 0)
		p->input_done = true;
	return strbuf_add(&p->input, buf, (size_t)n);
}

/* What one server line means for the session: -1 go on, else the exit code. */
static int on_server_line(struct plain *p, char *raw, size_t len)
{
	struct srv_line sl;

	print_line(p, raw, len);
	if (!srv_parse(raw, len, &sl))
		return fail(CHAT_EXIT_LOST, "the server sent a line the protocol does not know");
	if (sl.tag == SRV_BYE) {
		if (p->waiting && p->quitting)
			return p->refused ? CHAT_EXIT_REFUSED : CHAT_EXIT_OK;
		fprintf(stderr, "chat: the server ended the session (%s)\n", sl.f[0]);
		return CHAT_EXIT_LOST;
	}
	if ((sl.tag == SRV_OK || sl.tag == SRV_ERR) && p->waiting) {
		p->waiting = false;
		p->refused |= sl.tag == SRV_ERR;
	}
	return -1;
}

/* Handles every complete line received: -1 go on, else the exit code. */
static int drain_lines(struct plain *p)
{
	char *raw;
	size_t len;
	enum linebuf_result r;
	int rc;

	while ((r = conn_next_line(&p->conn, &raw, &len)) != LB_NONE) {
		if (r == LB_OVERLONG)
			return fail(CHAT_EXIT_LOST,
				    "the server sent a line longer than the protocol allows");
		if ((rc = on_server_line(p, raw, len)) >= 0)
			return rc;
	}
	return -1;
}

static int on_server_data(struct plain *p)
{
	int rc = conn_read(&p->conn);

	if (rc <= 0)
		return fail(CHAT_EXIT_LOST, rc == 0 ? "the server closed the connection"
						    : "the connection was lost");
	return drain_lines(p);
}

static int session(struct plain *p)
{
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = p->conn.fd, .events = POLLIN },
			{ .fd = STDIN_FILENO, .events = POLLIN },
		};
		bool want_input = !p->waiting && !p->input_done;
		int timeout = -1, rc;

		/* Lines that came with the login reply are in the buffer already. */
		if ((rc = drain_lines(p)) >= 0)
			return rc;
		if (send_next(p) < 0 || conn_flush(&p->conn) < 0)
			return fail(CHAT_EXIT_LOST, "the connection was lost");
		if (conn_wants_write(&p->conn))
			pfd[0].events |= POLLOUT;
		if (p->waiting) {
			int64_t left = p->reply_deadline - time_mono_ms();

			if (left <= 0) {
				fprintf(stderr, "chat: no reply from the server within %d s\n",
					p->o->timeout_s);
				return CHAT_EXIT_LOST;
			}
			timeout = (int)left;
		}
		want_input = !p->waiting && !p->input_done;
		if (poll(pfd, want_input ? 2 : 1, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return fail(CHAT_EXIT_LOST, strerror(errno));
		}
		if (want_input && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    read_input(p) < 0)
			return fail(CHAT_EXIT_USAGE, "cannot read the input");
		if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) && (rc = on_server_data(p)) >= 0)
			return rc;
	}
}

int plain_run(struct chat_options *o)
{
	struct plain p = { .o = o };
	const char *host = o->host ? o->host : CHAT_DEFAULT_HOST;
	const char *port = o->port ? o->port : CHAT_DEFAULT_PORT;
	char err[512];
	int rc;

	if (o->name == NULL)
		return fail(CHAT_EXIT_USAGE, "the plain mode (no terminal) needs --name NAME");
	if (o->password == NULL)
		return fail(CHAT_EXIT_USAGE, "no password: give --password-file FILE or set "
			    "CHAT_PASSWORD (the plain mode never asks)");
	conn_init(&p.conn);
	switch (conn_open(&p.conn, host, port, o->timeout_s * 1000, err, sizeof(err))) {
	case CONN_OK:
		break;
	case CONN_RESOLVE_FAILED:
		return fail(CHAT_EXIT_RESOLVE, err);
	case CONN_CONNECT_FAILED:
		return fail(CHAT_EXIT_CONNECT, err);
	case CONN_NO_MEMORY:
		return fail(CHAT_EXIT_USAGE, err);
	}
	rc = log_in(&p);
	if (rc == 0)
		rc = session(&p);
	conn_close(&p.conn);
	strbuf_free(&p.input);
	strbuf_free(&p.line);
	return rc;
}
