/*
 * plain.c - the script mode: no prompts, no colours, and no reconnecting
 * unless --reconnect asks for it.
 *
 * It logs in with --name and the password from a file or the environment,
 * then sends the input lines it has (one, or the lines of a pipe already
 * read, at most PLAIN_BATCH_MAX) and waits for their final replies (OK or
 * ERR) before the next, so a script knows each line was dealt with.  Every
 * line the server sends is printed as the protocol gives it (sanitized).
 * At the end of input it sends /quit and exits 0 if everything was
 * acknowledged, CHAT_EXIT_REFUSED if the server refused a line, and
 * CHAT_EXIT_LOST if the connection ended first or the server broke the
 * protocol (an OK or ERR when no line is out, or an OK for /quit, which
 * BYE answers: srv_describe_unasked()), and CHAT_EXIT_USAGE as soon as
 * standard output takes no more (a full disk, a reader gone).
 *
 * Replies carry nothing that names their request: they match by order.  So
 * that a final reply nobody asked for (a broken server's second answer to
 * a line before) is never taken for the answer of a line out, the lines
 * sent together (all but /quit, which goes alone) go out with a check
 * behind the last of them, "/ping chat-check-N": their answers count only
 * once the check's PONG came after exactly one final reply for each line
 * (struct plain's phase and answers).  One more before the PONG breaks the
 * protocol; one that comes after the check's OK answers no request.  The
 * check's PONG and OK are not printed.  One check for the lines of a pipe,
 * not one each: chatd answers a command only once the messages before it
 * are stored, so a check behind each line would cost each its own disk
 * commit, one after the other.
 *
 * With --reconnect a connection that drops (or a server that shuts down)
 * is opened again after a backoff with jitter (conn_backoff_next()), at
 * most PLAIN_RECONNECT_TRIES times in a row, and the session goes on with
 * the next input line; the lines whose replies were lost are not sent
 * again (stderr says how many, and the exit code is then
 * CHAT_EXIT_REFUSED).  After
 * a password login it asks for a resume token (the reply is not printed)
 * and presents it when it logs in again: no password hash for the server.
 *
 * Rooms: with --room ROOM it sends "/join ROOM" after the login, before the
 * first input line, so every line goes to ROOM (the server's current room)
 * unless the input switches; it follows the rooms joined and the current
 * one from the replies (rooms.h), and after logging in again it joins them
 * again and switches back before the next input line.  If the server
 * refuses one of those, answers one with an OK that names another room
 * than the one asked for (rooms_ok_answers()), or an operator puts us out
 * of the --room room, nothing more is sent (the lines would go
 * elsewhere): CHAT_EXIT_ROOM.
 * Those requests, and /token, go alone, each with its check.
 * Owns the plain mode's state (struct plain); chat's one thread.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "answers.h"
#include "conn.h"
#include "exitcode.h"
#include "login.h"
#include "options.h"
#include "reqq.h"
#include "rooms.h"
#include "sanitize.h"
#include "srvline.h"
#include "termout.h"
#include "timefmt.h"

/* Where the requests out stand. */
enum reply_phase {
	PHASE_IDLE, /* nothing out */
	PHASE_SENT, /* requests (and their check) out, not each with its final reply yet */
	PHASE_ANSWERED, /* each one's final reply in, kept in answers: no other may come before the check's PONG */
	PHASE_CHECKED, /* the check's PONG in: the check's OK ends the requests */
};

struct plain {
	struct chat_options *o;
	struct conn conn;
	struct strbuf input; /* stdin bytes not yet sent */
	struct strbuf line;  /* scratch: one server line, sanitized */
	bool input_done;     /* stdin reached its end */
	bool waiting; /* requests are out, their final replies (and their check's) not in yet */
	enum reply_phase phase;
	size_t out;             /* the requests out */
	struct answers answers; /* their final replies, until their check's PONG */
	unsigned long checks;   /* the checks sent: the last one's PONG text is chat-check-N */
	bool quitting;          /* the request out is /quit: BYE answers it */
	bool refused;           /* some request got ERR */
	int64_t reply_deadline;
	bool token_pending;   /* the request out is /token: its reply is kept, not printed */
	char token[65];       /* the resume token, "" if none */
	int64_t token_expiry; /* wall clock ms */
	bool login_retry;     /* the last login failed for a reason a new connection may not have */
	int backoff_ms;
	struct rooms rooms;
	char self[NAME_MAX_LEN + 1]; /* our name, from WELCOME */
	struct reqq own;             /* chat's /join and /switch to send before the input */
	bool own_pending;            /* the request out is one of those: own_out */
	char own_out[ROOM_NAME_MAX + 16];
	bool room_joined; /* --room was joined once (then it is one of the rooms) */
	bool home_known;  /* this login's reply named the default room */
};

#define PLAIN_RECONNECT_TRIES 10
#define PLAIN_BATCH_MAX 64 /* input lines sent together behind one check, at most */
#define PLAIN_LOST 1000    /* session(): the connection dropped; --reconnect reconnects */

static int64_t
reply_deadline(const struct plain *p)
{
	return time_mono_ms() + (int64_t)p->o->timeout_s * 1000;
}

/*
 * Prints a server line as received, unsafe bytes replaced; -1 (errno set)
 * when standard output takes it no more: a full disk, or a reader gone
 * while SIGPIPE is ignored (as systemd's services have it), where going on
 * would talk to the server for nobody.
 */
static int
print_line(struct plain *p, const char *line, size_t len)
{
	strbuf_reset(&p->line);
	if (sanitize_append(&p->line, line, len) == 0 && strbuf_add(&p->line, "\n", 1) == 0)
		termout_write(stdout, p->line.buf, p->line.len);
	if (fflush(stdout) == EOF || ferror(stdout))
		return -1;
	return 0;
}

/*
 * "chat: what" on standard error; what may quote the server (a BYE reason,
 * a room name it gave), so it is sanitized as a server line is.
 */
static void
complain(const char *what)
{
	struct strbuf s = { 0 };

	if (sanitize_append(&s, what, strlen(what)) == 0 && s.buf != NULL)
		termout_printf(stderr, "chat: %s\n", s.buf);
	else
		fprintf(stderr, "chat: out of memory\n");
	strbuf_free(&s);
}

static int
fail(int code, const char *what)
{
	complain(what);
	return code;
}

/* Standard output failed (print_line()): a local error, the session ends. */
static int
output_failed(void)
{
	char why[160];

	snprintf(why, sizeof(why), "cannot write to standard output: %s", strerror(errno));
	return fail(CHAT_EXIT_USAGE, why);
}

static void
forget_token(struct plain *p)
{
	explicit_bzero(p->token, sizeof(p->token));
}

/* Whether a request line is /quit, which BYE answers: it goes alone, without a check. */
static bool
is_quit(const char *line, size_t len)
{
	return len >= 5 && strncmp(line, "/quit", 5) == 0 && (len == 5 || line[5] == ' ');
}

/* Sends a request; send_check() follows the last of those sent together. */
static int
send_request(struct plain *p, const char *line, size_t len)
{
	p->waiting = true;
	p->phase = PHASE_SENT;
	p->out++;
	p->quitting = is_quit(line, len);
	p->reply_deadline = reply_deadline(p);
	return conn_send(&p->conn, line, len);
}

/* The check behind the requests just sent. */
static int
send_check(struct plain *p)
{
	char check[64];
	int n = snprintf(check, sizeof(check), "/ping " CHAT_CHECK "%lu", ++p->checks);

	return conn_send(&p->conn, check, (size_t)n);
}

/* After a password login, with --reconnect: /token goes out as the first request (not a guest's). */
static int
ask_token(struct plain *p, const struct login *l)
{
	if (l->token_refused)
		forget_token(p);
	if (!p->o->reconnect || l->resumed || p->o->guest) /* a guest gets no token */
		return 0;
	p->token_pending = true;
	if (send_request(p, LOGIN_TOKEN_REQUEST, strlen(LOGIN_TOKEN_REQUEST)) < 0)
		return -1;
	return send_check(p);
}

/*
 * The login reply named the default room (its USERS line): what to send
 * before the input is planned from the rooms we were in (or --room), then
 * the login's room is the only one.
 */
static void
on_login_room(struct plain *p, const char *home)
{
	const char *current = rooms_current(&p->rooms), *last = home, *room;
	char line[ROOM_NAME_MAX + 16];
	struct reqq plan = { 0 };

	if (p->o->room != NULL && !p->room_joined) {
		snprintf(line, sizeof(line), "/join %s", p->o->room);
		reqq_push(&plan, REQ_REJOIN, line);
	}
	for (size_t i = 0; (room = rooms_nth(&p->rooms, i)) != NULL; i++) {
		if (name_cmp(room, home) == 0)
			continue;
		snprintf(line, sizeof(line), "/join %s", room);
		reqq_push(&plan, REQ_REJOIN, line);
		last = room;
	}
	if (current != NULL && name_cmp(current, last) != 0) {
		snprintf(line, sizeof(line), "/switch %s", current);
		reqq_push(&plan, REQ_REJOIN, line);
	}
	/* What an earlier connection did not get to send goes after it. */
	reqq_prepend_all(&p->own, &plan);
	reqq_free(&plan);
	rooms_login(&p->rooms, home);
}

/*
 * HELLO to OK; 0 once logged in, else an exit code (message printed).  Each
 * reply (to the connection, the name, the password or token) must be whole
 * within --timeout: its lines coming one by one do not put that off.
 */
static int
log_in(struct plain *p)
{
	struct login l;
	int64_t deadline = reply_deadline(p);

	login_start(&l, p->o->name, p->o->password, false);
	if (p->o->guest)
		login_as_guest(&l);
	if (p->token[0] && p->token_expiry > time_now_ms() + 60000)
		login_use_token(&l, p->token);
	p->login_retry = true;
	p->home_known = false;
	for (;;) {
		char *raw;
		size_t len;
		struct srv_line sl;
		int rc = conn_wait_line(&p->conn, deadline, &raw, &len);

		if (rc == 0)
			return fail(CHAT_EXIT_LOST, "no answer from the server during login");
		if (rc == -2)
			return fail(CHAT_EXIT_LOST,
				    "the server sent a line longer than the protocol allows");
		if (rc < 0)
			return fail(CHAT_EXIT_LOST, "the connection was closed during login");
		if (print_line(p, raw, len) < 0)
			return output_failed();
		if (!srv_parse(raw, len, &sl))
			return fail(CHAT_EXIT_LOST,
				    "the server sent a line the protocol does not know");
		switch (login_feed(&l, &sl, &p->conn)) {
		case LOGIN_SHOW:
			if (sl.tag == SRV_WELCOME)
				snprintf(p->self, sizeof(p->self), "%s", l.user);
			if (sl.tag == SRV_USERS && !p->home_known) {
				p->home_known = true;
				on_login_room(p, l.room);
			}
			break;
		case LOGIN_DONE:
			p->login_retry = false;
			return ask_token(p, &l) < 0
				       ? fail(CHAT_EXIT_LOST, "the connection was lost")
				       : 0;
		case LOGIN_ERROR:
			if (l.token_refused)
				forget_token(p);
			p->login_retry = l.retry;
			return fail(l.exit_code, l.message);
		case LOGIN_CONTINUE: /* the name, password or token went out: a new reply */
			deadline = reply_deadline(p);
			break;
		case LOGIN_NEED_PASSWORD: /* not with a password given and may_ask false */
			break;
		}
	}
}

/*
 * The next complete input line (the last one may lack its LF), CR dropped:
 * its length, and the bytes it takes in the input with its line end.
 */
static bool
peek_input_line(const struct plain *p, size_t *len, size_t *used)
{
	const char *lf = p->input.len ? memchr(p->input.buf, '\n', p->input.len) : NULL;
	size_t n;

	if (lf == NULL && !(p->input_done && p->input.len > 0))
		return false;
	n = lf ? (size_t)(lf - p->input.buf) : p->input.len;
	*used = lf ? n + 1 : n;
	if (n > 0 && p->input.buf[n - 1] == '\r')
		n--;
	*len = n;
	return true;
}

/*
 * If no reply is awaited: chat's own next request, or the input lines read
 * (PLAIN_BATCH_MAX at most) with one check behind the last.  Blank lines
 * get no reply from chatd, so they are not sent; /quit goes alone, after
 * the replies to the lines before it.  At the end of input: /quit.
 */
static int
send_next(struct plain *p)
{
	char *line;
	size_t len, used;
	struct req rq;

	if (p->waiting)
		return 0;
	if (reqq_pop(&p->own, &rq)) {
		int rc = send_request(p, rq.line, strlen(rq.line));

		p->own_pending = true;
		snprintf(p->own_out, sizeof(p->own_out), "%s", rq.line);
		free(rq.line);
		return rc < 0 ? -1 : send_check(p);
	}
	while (!p->quitting && p->out < PLAIN_BATCH_MAX && peek_input_line(p, &len, &used)) {
		int rc = 0;

		line = p->input.buf;
		if (is_quit(line, len) && p->out > 0)
			break;
		line[len] = '\0';
		if (!srv_request_blank(line, len))
			rc = send_request(p, line, len);
		strbuf_consume(&p->input, used);
		if (rc < 0)
			return -1;
	}
	if (p->out > 0)
		return p->quitting ? 0 : send_check(p);
	if (p->input_done)
		return send_request(p, "/quit", 5);
	return 0;
}

static int
read_input(struct plain *p)
{
	char buf[65536];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (n == 0)
		p->input_done = true;
	return strbuf_add(&p->input, buf, (size_t)n);
}

/* The connection is gone: PLAIN_LOST to reconnect (--reconnect), else CHAT_EXIT_LOST. */
static int
lost(struct plain *p, const char *what)
{
	complain(what);
	return p->o->reconnect && !(p->waiting && p->quitting) ? PLAIN_LOST : CHAT_EXIT_LOST;
}

/* Whether a BYE reason means a new connection would only be refused again, or take over. */
static bool
final_bye(const char *reason)
{
	return strcmp(reason, "replaced") == 0 || strcmp(reason, "kicked") == 0 ||
	       strcmp(reason, "refused") == 0 || strcmp(reason, "quit") == 0;
}

/* chat's own /join or /switch got ERR: the next lines would go to another room. */
static int
own_refused(const struct plain *p)
{
	char why[ROOM_NAME_MAX + 128];

	snprintf(why, sizeof(why),
		 "the server refused \"%s\", which puts us in the room; nothing more is sent",
		 p->own_out);
	return fail(CHAT_EXIT_ROOM, why);
}

/*
 * chat's own /join or /switch got an OK that names another room than the
 * one asked for (or none): the next lines would go to that room.
 */
static int
own_misanswered(const struct plain *p, const struct srv_line *sl)
{
	char why[ROOM_NAME_MAX + SRV_UNASKED_MAX + 128];

	snprintf(why, sizeof(why),
		 "the server answered \"%s\" with \"OK %s %.*s\", not the room asked for; "
		 "nothing more is sent",
		 p->own_out, sl->f[0], 200, srv_text(sl));
	return fail(CHAT_EXIT_ROOM, why);
}

/* A PART of our own name from the --room room: kicked, or the room deleted. */
static bool
put_out_of_room(const struct plain *p, const struct srv_line *sl)
{
	return sl->tag == SRV_PART && p->o->room != NULL && name_cmp(sl->f[2], p->self) == 0 &&
	       name_cmp(sl->f[0], p->o->room) == 0 &&
	       (strcmp(sl->f[3], "kicked") == 0 || strcmp(sl->f[3], "deleted") == 0);
}

/* Whether raw is the PONG of the last check sent. */
static bool
is_check_pong(const struct plain *p, const char *raw, size_t len)
{
	char want[64];
	int n = snprintf(want, sizeof(want), "PONG " CHAT_CHECK "%lu", p->checks);

	return len == (size_t)n && memcmp(raw, want, len) == 0;
}

/* The final reply of a request out, confirmed: -1 go on, else the exit code. */
static int
answer_taken(struct plain *p, const struct srv_line *sl)
{
	int rc = -1;

	if (p->token_pending) {
		if (!login_parse_token(sl, p->token, &p->token_expiry))
			forget_token(p);
		p->token_pending = false;
	} else {
		rooms_follow(&p->rooms, sl, p->self);
		p->refused |= sl->tag == SRV_ERR;
		if (p->own_pending && sl->tag == SRV_ERR)
			rc = own_refused(p);
		else if (p->own_pending && !rooms_ok_answers(sl, p->own_out))
			rc = own_misanswered(p, sl);
		p->room_joined |= p->own_pending; /* the first of them is --room's /join */
		p->own_pending = false;
	}
	return rc;
}

/*
 * The check's PONG came with one final reply kept for each request out
 * (or the connection went before it: the replies that came stand): they
 * answer those requests, in order.  -1 go on, else the exit code.
 */
static int
take_answers(struct plain *p)
{
	struct srv_line sl;
	size_t pos = 0, len;
	char *line;
	int rc = -1;

	p->phase = PHASE_CHECKED;
	while (rc < 0 && answers_next(&p->answers, &pos, &line, &len)) {
		/* They parsed when they came (copies: parsing cuts the line in place). */
		if (!srv_parse(line, len, &sl))
			rc = fail(CHAT_EXIT_LOST,
				  "the server sent a line the protocol does not know");
		else
			rc = answer_taken(p, &sl);
	}
	answers_wipe(&p->answers);
	p->out = 0;
	return rc;
}

/* A final reply that answers nothing: the server broke the protocol. */
static int
unasked(struct plain *p, const struct srv_line *sl)
{
	char why[SRV_UNASKED_MAX];

	answers_wipe(&p->answers);
	srv_describe_unasked(sl, why, sizeof(why));
	return fail(CHAT_EXIT_LOST, why);
}

/*
 * A final reply (OK or ERR) in the order of requests and checks: -1 go on,
 * else the exit code.
 */
static int
on_final_reply(struct plain *p, const struct srv_line *sl)
{
	switch (p->phase) {
	case PHASE_IDLE:     /* no line waits for it */
	case PHASE_ANSWERED: /* one more answer than requests before the check's PONG */
		return unasked(p, sl);
	case PHASE_SENT:
		if (!p->quitting) {
			/* Kept in answers until the check's PONG. */
			p->reply_deadline = reply_deadline(p);
			if (p->answers.count == p->out)
				p->phase = PHASE_ANSWERED;
			return -1;
		}
		/* BYE answers /quit, or an ERR refusing the line itself. */
		if (sl->tag == SRV_OK)
			return unasked(p, sl);
		break;
	case PHASE_CHECKED:
		if (sl->tag == SRV_ERR)
			return fail(CHAT_EXIT_LOST,
				    "the server broke the protocol: it refused a /ping");
		break;
	}
	p->waiting = false;
	p->phase = PHASE_IDLE;
	p->out = 0;
	p->refused |= sl->tag == SRV_ERR;
	return -1;
}

/* What one server line means for the session: -1 go on, else the exit code. */
static int
on_server_line(struct plain *p, char *raw, size_t len)
{
	struct srv_line sl;
	bool final = strncmp(raw, "OK ", 3) == 0 || strncmp(raw, "ERR ", 4) == 0;
	bool check_pong = p->phase == PHASE_ANSWERED && is_check_pong(p, raw, len);
	bool kept = final && p->phase == PHASE_SENT && !p->quitting;

	/* The token is a secret, and the check and its OK are chat's own: never printed. */
	if (!check_pong && !(kept && p->token_pending) &&
	    !(p->phase == PHASE_CHECKED && strncmp(raw, "OK ", 3) == 0) &&
	    print_line(p, raw, len) < 0)
		return output_failed();
	if (kept && answers_keep(&p->answers, raw, len) < 0)
		return fail(CHAT_EXIT_USAGE, "out of memory");
	if (!srv_parse(raw, len, &sl))
		return fail(CHAT_EXIT_LOST, "the server sent a line the protocol does not know");
	if (kept && p->token_pending) /* only the copy in answers is needed */
		explicit_bzero(raw, len);
	if (sl.tag == SRV_BYE) {
		char why[160];

		if (p->waiting && p->quitting)
			return p->refused ? CHAT_EXIT_REFUSED : CHAT_EXIT_OK;
		snprintf(why, sizeof(why), "the server ended the session (%s)", sl.f[0]);
		if (final_bye(sl.f[0]))
			return fail(CHAT_EXIT_LOST, why);
		return lost(p, why);
	}
	if (check_pong)
		return take_answers(p);
	if (final)
		return on_final_reply(p, &sl);
	rooms_follow(&p->rooms, &sl, p->self);
	if (put_out_of_room(p, &sl))
		return fail(CHAT_EXIT_ROOM, "an operator put us out of the --room room; nothing "
					    "more is sent");
	return -1;
}

/* Handles every complete line received: -1 go on, else the exit code. */
static int
drain_lines(struct plain *p)
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

static int
on_server_data(struct plain *p)
{
	int rc = conn_read(&p->conn);

	if (rc <= 0)
		return lost(p, rc == 0 ? "the server closed the connection"
				       : "the connection was lost");
	return drain_lines(p);
}

static int
session(struct plain *p)
{
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = p->conn.fd },
			{ .fd = STDIN_FILENO, .events = POLLIN },
		};
		bool want_input = !p->waiting && !p->input_done;
		int timeout = -1, rc;

		/* Lines that came with the login reply are in the buffer already. */
		if ((rc = drain_lines(p)) >= 0)
			return rc;
		if (send_next(p) < 0 || conn_flush(&p->conn) < 0)
			return lost(p, "the connection was lost");
		pfd[0].events = conn_poll_events(&p->conn);
		if (p->waiting) {
			int64_t left = p->reply_deadline - time_mono_ms();

			if (left <= 0) {
				fprintf(stderr, "chat: no reply from the server within %d s\n",
					p->o->timeout_s);
				return lost(p, "giving up on this connection");
			}
			timeout = (int)left;
		}
		want_input = !p->waiting && !p->input_done;
		if (conn_pending(&p->conn))
			timeout = 0; /* TLS holds what arrived: read it first */
		if (poll(pfd, want_input ? 2 : 1, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return fail(CHAT_EXIT_LOST, strerror(errno));
		}
		if (want_input && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    read_input(p) < 0)
			return fail(CHAT_EXIT_USAGE, "cannot read the input");
		if (conn_readable(&p->conn, pfd[0].revents) && (rc = on_server_data(p)) >= 0)
			return rc;
	}
}

/* chat's own request whose reply was lost goes first again. */
static void
own_again(struct plain *p)
{
	struct reqq back = { 0 };

	if (reqq_push(&back, REQ_REJOIN, p->own_out) == 0)
		reqq_prepend_all(&p->own, &back);
	reqq_free(&back);
}

/*
 * --reconnect: after the backoff, a new connection and a login (the token
 * first), at most PLAIN_RECONNECT_TRIES attempts; 0 logged in again, else
 * the exit code.
 */
static int
reconnect(struct plain *p, const char *host, const char *port)
{
	char err[512];
	int rc;

	size_t unanswered = p->waiting && p->phase != PHASE_CHECKED ? p->out - p->answers.count : 0;

	/*
	 * The connection went between lines' final replies and their check's
	 * PONG: nothing contradicted those replies, so they answer the lines.
	 */
	if (p->answers.count > 0 && (rc = take_answers(p)) >= 0)
		return rc;
	if (unanswered > 0) {
		/* chat's own /join or /switch goes again after the login. */
		if (p->own_pending)
			own_again(p);
		else if (!p->token_pending)
			fprintf(stderr,
				"chat: no reply came for the last %zu line%s sent; %s not sent "
				"again\n",
				unanswered, unanswered == 1 ? "" : "s",
				unanswered == 1 ? "it is" : "they are");
		p->refused |= !p->token_pending && !p->own_pending;
	}
	p->waiting = p->token_pending = p->own_pending = false;
	p->phase = PHASE_IDLE;
	p->out = 0;
	for (int i = 0; i < PLAIN_RECONNECT_TRIES; i++) {
		int delay = conn_backoff_next(&p->backoff_ms);

		fprintf(stderr, "chat: reconnecting in %.1f s\n", delay / 1000.0);
		poll(NULL, 0, delay);
		conn_close(&p->conn);
		switch (conn_open(&p->conn, host, port, p->o->timeout_s * 1000, err, sizeof(err))) {
		case CONN_OK:
			break;
		case CONN_TLS_REFUSED: /* not a passing fault: the server is not the one trusted */
			return fail(CHAT_EXIT_TLS, err);
		default:
			complain(err);
			continue;
		}
		if ((rc = log_in(p)) == 0) {
			p->backoff_ms = 0;
			return 0;
		}
		if (!p->login_retry)
			return rc;
	}
	fprintf(stderr, "chat: giving up after %d tries\n", PLAIN_RECONNECT_TRIES);
	return CHAT_EXIT_LOST;
}

int
plain_run(struct chat_options *o)
{
	struct plain p = { .o = o };
	const char *host = o->host ? o->host : CHAT_DEFAULT_HOST;
	const char *port = o->port ? o->port : chat_default_port(o);
	char err[512];
	int rc;

	if (o->name == NULL)
		return fail(CHAT_EXIT_USAGE, "the plain mode (no terminal) needs --name NAME");
	if (o->password == NULL && !o->guest)
		return fail(CHAT_EXIT_USAGE, "no password: give --password-file FILE or set "
					     "CHAT_PASSWORD (the plain mode never asks)");
	conn_init(&p.conn, o->tls_ctx);
	switch (conn_open(&p.conn, host, port, o->timeout_s * 1000, err, sizeof(err))) {
	case CONN_OK:
		break;
	case CONN_TLS_REFUSED:
		return fail(CHAT_EXIT_TLS, err);
	case CONN_RESOLVE_FAILED:
		return fail(CHAT_EXIT_RESOLVE, err);
	case CONN_CONNECT_FAILED:
		return fail(CHAT_EXIT_CONNECT, err);
	case CONN_NO_MEMORY:
		return fail(CHAT_EXIT_USAGE, err);
	}
	rc = log_in(&p);
	if (rc == 0)
		while ((rc = session(&p)) == PLAIN_LOST && (rc = reconnect(&p, host, port)) == 0)
			;
	forget_token(&p);
	answers_free(&p.answers);
	conn_close(&p.conn);
	strbuf_free(&p.input);
	strbuf_free(&p.line);
	reqq_free(&p.own);
	rooms_free(&p.rooms);
	return rc;
}
