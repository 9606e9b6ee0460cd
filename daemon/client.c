/*
 * client.c - one thread per connection, from greeting to BYE.
 *
 * The thread owns its socket: it alone reads from it, and it writes to it
 * except while it sleeps idle with its write rights handed to the room
 * (room_sleep: the write-through flusher, usually the publisher, or the
 * co-writer it hands the member to, then writes room traffic to the socket
 * itself and the thread takes the rights back with room_wake_up() the
 * moment it wakes).  A client that stops reading only ever blocks its own
 * thread, and never blocks even that (the socket is non-blocking; ppoll()
 * waits, session_wait()).  Others
 * reach the thread through the room: they publish into the fan-out ring or
 * its inbox and, if it sleeps, wake it (client_wake: a flag and a signal).
 *
 * TLS: a connection from the TLS listener first makes its handshake here
 * (handshake_timeout), then reads and writes through the session
 * (session_read, session_writev) like a plain one.  OpenSSL may hold
 * input the socket no longer shows (session_pending): the thread does not
 * sleep then.  Every SSL call is made with the write rights (session.h).
 *
 * Order of replies: a room message is answered (OK or ERR 507) when the
 * history has stored it, through the ring, while a command is answered at
 * once.  To keep replies in request order, a command that arrives while
 * messages are still unanswered is held until their answers came back;
 * messages themselves may be pipelined, within bounds: a sender with too
 * many unanswered, or with any unanswered while the history's backlog is
 * full, is held back (sender_held_back) and its socket not read until its
 * answers come; while some member is backed up every sender gets one
 * message in flight and one per HELD_BACK_GAP_MS.  So a burst slows down
 * its sender and nobody else.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "auth.h"
#include "client.h"
#include "commands.h"
#include "config.h"
#include "fault.h"
#include "peers.h"
#include "history.h"
#include "irc.h"
#include "log.h"
#include "login.h"
#include "lograte.h"
#include "room.h"
#include "server.h"
#include "threadcache.h"
#include "threadstack.h"
#include "timefmt.h"
#include "utf8.h"
#include "wire.h"

/* Lines handled per turn of the loop, so output keeps flowing under a flood. */
#define LINES_PER_TURN 64
/*
 * A sender may have at most 1/SENDER_SHARE of the history backlog's limit
 * unanswered (room_backlog_limits), so a few senders bursting at once
 * still leave room in it for others.
 */
#define SENDER_SHARE 2
/*
 * While a member is backed up, a sender gets one message in flight and one
 * every HELD_BACK_GAP_MS; a sender held back rechecks that often, as a
 * member that drains wakes nobody.
 */
#define HELD_BACK_GAP_MS 10
/* How often a client waiting to write checks whether it overflowed. */
#define OVERFLOW_CHECK_MS 250
/* How long a BYE may take to leave, and how long we wait for the peer's close. */
#define BYE_FLUSH_MS 1000
#define BYE_LINGER_MS 500

/* ---- small I/O helpers ---- */

/* prefix + formatted text + LF, formatted straight into a line: no length cap but max_line's. */
static int __attribute__((format(printf, 3, 0)))
reply_v(struct client *c, const char *prefix, const char *fmt, va_list ap)
{
	size_t plen = strlen(prefix);
	va_list copy;

	va_copy(copy, ap);
	int n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0)
		return -1;
	struct line *l = line_new(plen + (size_t)n + 1);
	if (l == NULL)
		return -1;
	memcpy(l->data, prefix, plen);
	vsnprintf(l->data + plen, (size_t)n + 1, fmt, ap);
	l->data[plen + (size_t)n] = '\n';
	return outq_push_line(&c->out, l);
}

int
client_reply(struct client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int rc = reply_v(c, "", fmt, ap);
	va_end(ap);
	return rc;
}

int
client_reply_err(struct client *c, int code, const char *fmt, ...)
{
	char prefix[16];
	va_list ap;

	snprintf(prefix, sizeof(prefix), "ERR %d ", code);
	va_start(ap, fmt);
	int rc = reply_v(c, prefix, fmt, ap);
	va_end(ap);
	return rc;
}

static int
poll_timeout(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - time_mono_ms();
	return left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
}

static ssize_t
write_session(void *arg, const struct iovec *iov, int n)
{
	return session_writev(arg, iov, n);
}

/* Writes what c->out holds as far as the socket takes it; -1 when it failed. */
static int
flush_out(struct client *c)
{
	return outq_flush_by(&c->out, write_session, c);
}

/* Reads what the socket has; maps the outcome onto enum client_read. */
static enum client_read
fill_input(struct client *c)
{
	size_t avail;
	char *space = linebuf_space(&c->in, &avail);

	if (space == NULL) /* not the peer's doing: say so (BYE error), not "lost" */
		return CLIENT_NO_MEMORY;
	ssize_t n = session_read(c, space, avail);

	if (n > 0)
		linebuf_commit(&c->in, (size_t)n);

	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return CLIENT_LINE;
	/*
	 * A peer that stopped answering: keepalive or TCP_USER_TIMEOUT gave
	 * up.  The kernel reports the last routing error instead of ETIMEDOUT
	 * when there was one (an ICMP unreachable, a route that went away).
	 */
	if (n < 0 && (errno == ETIMEDOUT || errno == EHOSTUNREACH || errno == ENETUNREACH ||
		      errno == EHOSTDOWN || errno == ENETDOWN))
		return CLIENT_TIMEOUT;
	return CLIENT_EOF;
}

enum client_read
client_read_line(struct client *c, int64_t deadline, char **line, size_t *len)
{
	for (;;) {
		/*
		 * Every bad line gets an answer: a peer that sends them without
		 * reading the answers would grow the queue without bound.  Past
		 * send_queue_limit no more input is taken until it reads (or
		 * the deadline ends the wait).
		 */
		bool backlogged = c->out.bytes > (size_t)settings_get()->send_queue_limit;

		switch (backlogged ? LB_NONE : linebuf_next(&c->in, line, len)) {
		case LB_LINE:
			return CLIENT_LINE;
		case LB_OVERLONG:
			return CLIENT_OVERLONG;
		case LB_NONE:
			break;
		}
		if (flush_out(c) < 0)
			return CLIENT_EOF;
		/* It read: lines may be buffered already, take them before waiting. */
		if (backlogged && c->out.bytes <= (size_t)settings_get()->send_queue_limit)
			continue;
		/* TLS: input OpenSSL holds already, which poll() would not show. */
		if (!backlogged && session_pending(c)) {
			enum client_read r = fill_input(c);
			if (r != CLIENT_LINE)
				return r;
			continue;
		}

		struct pollfd pfd[1] = {
			{ .fd = c->fd,
			  .events =
				  (backlogged ? 0 : POLLIN) | (outq_empty(&c->out) ? 0 : POLLOUT) },
		};
		bool woken;
		int rc = session_wait(c, pfd, 1, poll_timeout(deadline), &woken);
		if (rc < 0)
			return CLIENT_EOF;
		if (rc == 0 && !woken && deadline >= 0 && time_mono_ms() >= deadline)
			return CLIENT_TIMEOUT;
		if (woken && room_closing(c->srv->hub))
			return CLIENT_SHUTDOWN;
		if (!backlogged && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			enum client_read r = fill_input(c);
			if (r != CLIENT_LINE)
				return r;
		}
	}
}

int
client_flush(struct client *c)
{
	return flush_out(c);
}

bool
client_pause(struct client *c, int ms)
{
	int64_t deadline = time_mono_ms() + ms;

	for (;;) {
		bool woken;
		/* No events: poll() reports only a hang-up or an error, which end the wait. */
		struct pollfd pfd = { .fd = c->fd };
		int rc = session_wait(c, &pfd, 1, poll_timeout(deadline), &woken);

		if (woken && room_closing(c->srv->hub))
			return false;
		/* Shut down (dropped for the login budget) or reset: nobody to make wait. */
		if (rc > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
			return true;
		if (time_mono_ms() >= deadline)
			return true;
	}
}

/* ---- after login ---- */

/*
 * "HIST ROOM ID TIME NAME TEXT\n" from the stored record "ID TIME ROOM KIND
 * NAME TEXT\n": "HIST ", then three runs of the record itself (the room and
 * its space, the id and time, the name and text), no copy.  A guest's NAME
 * keeps its mark, "~NAME", as in the record.
 */
static size_t
hist_line_len(const struct history_entry *e)
{
	return 5 + e->room_len + 1u + e->room_off + (e->body->len - history_marked_name_off(e));
}

int
client_push_history(struct client *c, const struct history_entry *e, size_t n, size_t *sent)
{
	uint64_t budget = (uint64_t)settings_get()->send_queue_limit / 2, bytes = 0;
	size_t first = n;
	int rc = 0;

	while (first > 0 && bytes + hist_line_len(&e[first - 1]) <= budget)
		bytes += hist_line_len(&e[--first]);
	for (size_t i = first; i < n && rc == 0; i++) {
		struct line *b = e[i].body;

		/* A line in pieces goes whole, or not at all. */
		rc = outq_reserve(&c->out, 4);
		if (rc == 0)
			rc = outq_push_static(&c->out, "HIST ", 5);
		if (rc == 0)
			rc = outq_push(&c->out, b->data + e[i].room_off, e[i].room_len + 1u,
				       line_ref(b));
		if (rc == 0)
			rc = outq_push(&c->out, b->data, e[i].room_off, line_ref(b));
		if (rc == 0)
			rc = outq_push(&c->out, b->data + history_marked_name_off(&e[i]),
				       b->len - history_marked_name_off(&e[i]), line_ref(b));
	}
	*sent = n - first;
	return rc;
}

size_t
client_history_newer(struct history_entry *e, size_t n, uint64_t first)
{
	size_t old = 0;

	while (old < n && e[old].id <= first)
		old++;
	history_entries_release(e, old);
	memmove(e, e + old, (n - old) * sizeof(*e));
	return n - old;
}

int
client_replay(struct client *c, const char *room, uint64_t first, uint64_t last_id)
{
	size_t max = (size_t)settings_get()->history_replay, n = 0, sent;
	struct history_entry *e = max ? calloc(max, sizeof(*e)) : NULL;
	int rc;

	if (max && e == NULL)
		return -1;
	if (e != NULL)
		n = client_history_newer(
			e, history_recent(c->srv->history, room, max, last_id, false, e), first);
	rc = client_push_history(c, e, n, &sent);
	history_entries_release(e, n);
	free(e);
	return rc;
}

int
client_push_join(struct client *c, struct room_join_reply *rep, bool topic_first)
{
	int rc = 0;

	if (topic_first && rep->topic != NULL)
		rc = outq_push_line(&c->out, line_ref(rep->topic));
	if (rc == 0)
		rc = outq_push_line(&c->out, line_ref(rep->users));
	if (rc == 0 && !topic_first && rep->topic != NULL)
		rc = outq_push_line(&c->out, line_ref(rep->topic));
	room_join_reply_release(rep);
	return rc == 0 ? client_replay(c, rep->room, rep->first_id, rep->last_msg_id) : -1;
}

int
client_out_of_memory(struct session_state *st)
{
	st->why = PART_ERROR;
	snprintf(st->text, sizeof(st->text), "out of memory");
	return -1;
}

/*
 * The log lines anyone can cause by connecting, bounded per kind
 * (lograte.h): connections, guests refused, TLS handshakes that failed or
 * took too long, departures before login by reason, and those of guests.
 */
static struct log_rate connections = LOG_RATE_INIT(LVL_INFO, "connections");
static struct log_rate guest_departures = LOG_RATE_INIT(LVL_INFO, "guest departures");
static struct log_rate guests_refused = LOG_RATE_INIT(LVL_INFO, "guests refused");
static struct log_rate handshakes_failed = LOG_RATE_INIT(LVL_INFO, "TLS handshakes that failed");
static struct log_rate handshakes_too_long =
	LOG_RATE_INIT(LVL_INFO, "TLS handshakes that took too long");
/* clang-format off */
static struct log_rate departures[] = {
	[PART_QUIT] = LOG_RATE_INIT(LVL_INFO, "departures before login (quit)"),
	[PART_LOST] = LOG_RATE_INIT(LVL_INFO, "departures before login (lost)"),
	[PART_TIMEOUT] = LOG_RATE_INIT(LVL_INFO, "departures before login (timeout)"),
	[PART_OVERFLOW] = LOG_RATE_INIT(LVL_INFO, "departures before login (overflow)"),
	[PART_REPLACED] = LOG_RATE_INIT(LVL_INFO, "departures before login (replaced)"),
	[PART_KICKED] = LOG_RATE_INIT(LVL_INFO, "departures before login (kicked)"),
	[PART_SHUTDOWN] = LOG_RATE_INIT(LVL_INFO, "departures before login (shutdown)"),
	[PART_REFUSED] = LOG_RATE_INIT(LVL_INFO, "departures before login (refused)"),
	[PART_LEFT] = LOG_RATE_INIT(LVL_INFO, "departures before login (left)"),
	[PART_DELETED] = LOG_RATE_INIT(LVL_INFO, "departures before login (deleted)"),
	[PART_ERROR] = LOG_RATE_INIT(LVL_INFO, "departures before login (error)"),
};
/* clang-format on */

/* A guest does not go online after all: why, for its last words. */
static int
guest_refused(struct client *c, struct session_state *st, const char *why)
{
	log_rated(&guests_refused, "guest %s from %s refused: %s", c->name, c->addr_str, why);
	st->why = PART_REFUSED;
	snprintf(st->text, sizeof(st->text), "%s %s; choose another name", c->name, why);
	return -1;
}

/*
 * The client is who it says: it takes a max_clients slot (or ERR 503,
 * peers.h), goes online in the default room and is greeted in its
 * protocol.  A guest's name was found free by its front-end, but a login
 * of that name may have come in since: room_login() refuses a guest whose
 * name is online, and a guest online checks that its name is still
 * nobody's (a registration that ended since, its owner already gone).  A
 * registration after that check finds the guest online and replaces it.
 * Likewise an account online checks that it is still there, not deleted
 * (chatctl user del deletes it, then ends the sessions it finds online)
 * nor deleted and registered again by someone else (auth_account_now).
 */
static int
go_online(struct client *c, bool registered, struct session_state *st)
{
	const struct settings *s = settings_get();
	struct room_join_reply rep = { 0 };

	if (!peers_logged_in(&c->addr, c->fd, s->max_clients,
			     !c->is_tls && c->fe == &native_frontend)) {
		/* The plain native refusal went out from peers.c; the rest need the session. */
		if ((c->is_tls || c->fe != &native_frontend) &&
		    c->fe->refuse(c, "server is full") == 0)
			flush_out(c);
		return -1;
	}
	if (c->room.guest)
		fault_slow_guest();
	else
		fault_slow_account();
	if (room_login(c->srv->hub, c, &rep) < 0) {
		bool taken = errno == EEXIST;

		room_join_reply_release(&rep);
		/* ESHUTDOWN: client_main() says so. */
		return taken ? guest_refused(c, st, "is online") : client_out_of_memory(st);
	}
	if (c->room.guest && auth_registered_now(c)) {
		room_join_reply_release(&rep);
		return guest_refused(c, st, "was registered by someone else just now");
	}
	/*
	 * An account deleted while its password was checked: chatctl user del
	 * ended the sessions online, and this one is online only now.
	 */
	if (!c->room.guest && !auth_account_now(c)) {
		room_join_reply_release(&rep);
		log_info("login of %s from %s refused: the account was deleted meanwhile", c->name,
			 c->addr_str);
		st->why = PART_KICKED;
		snprintf(st->text, sizeof(st->text), "account deleted");
		return -1;
	}
	/* A greeting fails only for want of memory. */
	return c->fe->welcome(c, registered, &rep) < 0 ? client_out_of_memory(st) : 0;
}

/* The native greeting: WELCOME, USERS, TOPIC (if any), the default room's replay and OK. */
static int
native_welcome(struct client *c, bool registered, struct room_join_reply *rep)
{
	const char *how = c->room.guest ? "guest" : registered ? "registered" : "welcome back";

	if (client_reply(c, "WELCOME %s %s", c->name, how) < 0) {
		room_join_reply_release(rep);
		return -1;
	}
	if (client_push_join(c, rep, false) < 0) /* releases rep */
		return -1;
	return client_reply(c, "OK - logged in as %s", c->name);
}

static int
native_refuse(struct client *c, const char *why)
{
	return client_reply_err(c, ERR_UNAVAILABLE, "%s (%d clients)", why,
				settings_get()->max_clients);
}

int
client_store_live(struct client *c, const char *room, enum history_kind kind, const char *text,
		  size_t len, struct history_live live, enum room_result *res)
{
	char spelled[ROOM_NAME_MAX + 1];
	uint64_t made_after;
	int rc;

	if ((*res = room_target(c->srv->hub, c, room, spelled, &made_after)) != ROOM_DONE) {
		line_unref(live.label);
		line_unref(live.tags);
		return 1;
	}
	/* c->room.guest: only this thread writes it (at login, or REGISTER on IRC). */
	rc = history_append_live(c->srv->history, c->id, spelled, kind, c->name, c->room.guest,
				 text, len, live, made_after);
	if (rc != 0) {
		/* Deleted since it was looked up: not stored, so no namesake made since gets it. */
		*res = rc < 0 ? ROOM_NO_MEMORY : ROOM_GONE;
		return 1;
	}
	c->unacked++;
	return 0;
}

int
client_store(struct client *c, const char *room, const char *text, size_t len,
	     enum room_result *res)
{
	return client_store_live(c, room, HK_MSG, text, len, (struct history_live){ 0 }, res);
}

int
client_post(struct client *c, const char *room, const char *text, size_t len)
{
	char why[128];
	enum room_result res;

	if (client_store(c, room, text, len, &res) == 0)
		return 0;
	if (res == ROOM_NO_MEMORY)
		return client_reply_err(c, ERR_INTERNAL, "out of memory, message not sent");
	return client_reply_err(c, room_result_code(res), "%s",
				room_result_text(res, room, why, sizeof(why)));
}

/* A plain line: a message to the current room.  Its answer comes back through the room. */
static int
post_message(struct client *c, char *text, size_t len)
{
	if (text[0] == '/') { /* "//x" is the message "/x" */
		text++;
		len--;
	}
	return client_post(c, NULL, text, len);
}

/*
 * Push-back on a burst.  Messages wait in the history's backlog for the
 * next disk sync and then reach the room as one batch; unbounded, a
 * pipelining client made a batch longer than the fan-out ring, and every
 * member overflowed at once.  So a sender stops being read while it has
 * too many messages unanswered, or the backlog is full and it has any:
 * its own answers wake it (they come through the room), and only it waits.
 * A member with nothing unanswered is not held back by the backlog: one
 * message each always goes through, however many others burst.
 *
 * And a burst goes no faster than the members read: while one of them has
 * more than half its send queue limit waiting (in its queue and the
 * rings: room_backed_up), every
 * sender gets one message in flight and one per HELD_BACK_GAP_MS, which
 * is more than anyone types.  A member that stopped reading for good is
 * still disconnected at its limit, only later.
 */
static bool
sender_held_back(struct client *c, const struct session_state *st)
{
	size_t msgs, bytes, max_msgs, max_bytes;

	if (room_backed_up(c->srv->hub))
		return c->unacked > 0 || time_mono_ms() - st->last_post_ms < HELD_BACK_GAP_MS;
	if (c->unacked == 0)
		return false;
	room_backlog_limits(c->srv->hub, &max_msgs, &max_bytes);
	if (c->unacked >= max_msgs / SENDER_SHARE)
		return true;
	history_backlog(c->srv->history, &msgs, &bytes);
	return msgs >= max_msgs || bytes >= max_bytes;
}

static bool
is_command(const char *line, size_t len)
{
	(void)len;
	return line[0] == '/' && line[1] != '/';
}

/*
 * Moves what the room has for c into its output: all of it, or (not `all`)
 * up to half its send queue limit, the rest left in the ring until its
 * socket takes some (room_collect); -1 when c must go.
 */
static int
collect(struct client *c, struct session_state *st, bool all)
{
	int (*take)(struct hub *, struct client *, int64_t, enum part_reason *, char *, size_t) =
		all ? room_collect_all : room_collect;
	int rc;

	do
		rc = take(c->srv->hub, c, settings_get()->send_queue_limit, &st->why, st->text,
			  sizeof(st->text));
	while (rc > 0);
	return rc;
}

int
client_collect(struct client *c, struct session_state *st)
{
	return collect(c, st, true);
}

/* One native request line: returns 0 to go on, -1 when the session ends. */
static int
native_request(struct client *c, struct session_state *st, char *line, size_t len)
{
	enum text_check tc = text_check(line, len);

	if (tc != TEXT_OK)
		return client_reply_err(c, ERR_BAD_TEXT, "%s: not sent", text_check_str(tc)) < 0
			       ? -1
			       : 0;
	if (!is_command(line, len)) {
		st->last_post_ms = time_mono_ms();
		return post_message(c, line, len) < 0 ? -1 : 0;
	}

	/*
	 * Deliver everything that happened before the command first: a reply
	 * (say, to /ping) then tells the client it has seen all of that.
	 */
	if (collect(c, st, true) < 0)
		return -1;
	st->went_deep = true;
	switch (command_run(c, line, st->text, sizeof(st->text))) {
	case COMMAND_DONE:
		return 0;
	case COMMAND_QUIT:
		st->why = PART_QUIT;
		return -1;
	case COMMAND_FATAL:
		break;
	}
	return client_out_of_memory(st);
}

/*
 * Handles up to LINES_PER_TURN buffered lines.  A command behind messages
 * not yet answered is held (and reading stops) until they are; so is all
 * input while the sender is held back.
 */
static int
handle_input(struct client *c, struct session_state *st)
{
	st->more_input = false;
	st->held_back = false;
	st->flood_ms = 0;
	for (int i = 0; i < LINES_PER_TURN; i++) {
		char *line;
		size_t len;

		if (st->held != NULL) {
			if (c->unacked > 0)
				return 0;
			line = st->held;
			len = st->held_len;
			st->held = NULL;
		} else {
			enum linebuf_result r;

			if (sender_held_back(c, st)) {
				st->held_back = true;
				return 0;
			}
			if (c->fe->line_wait != NULL && (st->flood_ms = c->fe->line_wait(c)) > 0)
				return 0;
			r = linebuf_next(&c->in, &line, &len);
			if (r == LB_NONE)
				return 0;
			if (r == LB_OVERLONG) {
				if (c->fe->overlong(c) < 0)
					return -1;
				continue;
			}
			if (len == 0)
				continue;
			if (c->fe->in_order(line, len) && c->unacked > 0) {
				st->held = line;
				st->held_len = len;
				return 0;
			}
		}
		if (c->fe->request(c, st, line, len) < 0)
			return -1;
	}
	st->more_input = true;
	return 0;
}

/* Reads what came, with the write rights; -1 when the session ends. */
static int
take_input(struct client *c, struct session_state *st)
{
	switch (fill_input(c)) {
	case CLIENT_LINE:
		st->more_input = true;
		break;
	case CLIENT_TIMEOUT:
		st->why = PART_TIMEOUT;
		snprintf(st->text, sizeof(st->text), "%s", part_reason_text(PART_TIMEOUT));
		return -1;
	case CLIENT_NO_MEMORY:
		return client_out_of_memory(st);
	default:
		/* Answer what was already sent before going. */
		st->eof = true;
		break;
	}
	return 0;
}

/* Waits for input, output space or a wake-up; -1 when the session ends. */
static int
await_client_work(struct client *c, struct session_state *st)
{
	bool held_back = st->held_back && sender_held_back(c, st);
	bool want_input = st->held == NULL && !st->eof && !held_back && st->flood_ms == 0;
	int timeout;

	/* Answers came: lines held back may be buffered already. */
	if (st->more_input || (st->held != NULL && c->unacked == 0) ||
	    (st->held_back && !held_back))
		return 0;
	if (st->eof && c->unacked == 0 && outq_empty(&c->out)) {
		st->why = PART_LOST;
		snprintf(st->text, sizeof(st->text), "connection closed");
		return -1;
	}
	/* TLS input already in OpenSSL's hands: read it, the socket will not wake us. */
	if (want_input && session_pending(c))
		return take_input(c, st);
	/* Decided before room_sleep(): from there on c->out may be the room's. */
	bool pending = !outq_empty(&c->out), slept = false;
	struct pollfd pfd[1] = {
		{ .fd = c->fd, .events = (want_input ? POLLIN : 0) | (pending ? POLLOUT : 0) },
	};
	/*
	 * With output pending, the next publication wakes the thread too: a
	 * member whose socket is full collects at once, so its queue shows how
	 * far behind it is (room_backed_up holds pipelining senders back) before
	 * the ring has moved on too far for it.
	 */
	if (pending && !room_sleep(c->srv->hub, c, false))
		return 0;
	if (pending)
		timeout = OVERFLOW_CHECK_MS;
	else if ((slept = room_sleep(c->srv->hub, c, want_input)))
		timeout = -1;
	else
		return 0;
	if (held_back && (timeout < 0 || timeout > HELD_BACK_GAP_MS))
		timeout = HELD_BACK_GAP_MS;
	/* Flood control: the input waits until the front-end takes lines again. */
	if (st->flood_ms > 0 && (timeout < 0 || timeout > st->flood_ms))
		timeout = (int)st->flood_ms;
	/*
	 * An idle client sleeps for most of its life: the stack pages its
	 * login or a command (a password hash, a log line) touched go back.
	 */
	if (slept && st->went_deep) {
		thread_stack_release();
		st->went_deep = false;
	}

	bool woken;
	/* With nothing to wait for on the socket, do not let POLLHUP spin us. */
	if (pfd[0].events == 0)
		pfd[0].fd = -1;
	int rc = session_wait(c, pfd, 1, timeout, &woken);
	if (slept)
		room_wake_up(c->srv->hub, c);
	if (rc < 0) {
		st->why = PART_LOST;
		snprintf(st->text, sizeof(st->text), "%s", part_reason_text(PART_LOST));
		return -1;
	}
	if (want_input && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
		return take_input(c, st);
	return 0;
}

/*
 * The loop of a session online.  A step that ends it says why in st, but
 * for want of memory: a reply, a queue or a room's bookkeeping that could
 * not be had ends it with BYE error, said without memory (say_bye).
 */
static void
serve(struct client *c, struct session_state *st)
{
	client_out_of_memory(st);
	for (;;) {
		if ((c->fe->woken != NULL && c->fe->woken(c, st) < 0) || handle_input(c, st) < 0 ||
		    collect(c, st, false) < 0)
			return;
		if (flush_out(c) < 0) {
			st->why = PART_LOST;
			snprintf(st->text, sizeof(st->text), "%s", part_reason_text(PART_LOST));
			return;
		}
		if (await_client_work(c, st) < 0)
			return;
	}
}

/* ---- the end of a session ---- */

/*
 * Writes what c->out holds, then the len bytes of line, by the deadline;
 * false when the socket failed or did not take it all in time.  The line
 * goes from the caller's buffer, not through c->out: it needs no memory.
 */
static bool
flush_then_write(struct client *c, const char *line, size_t len, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };

		if (flush_out(c) < 0)
			return false;
		while (outq_empty(&c->out) && len > 0) {
			struct iovec iov = { .iov_base = (void *)line, .iov_len = len };
			ssize_t n = session_writev(c, &iov, 1);

			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return false;
			if (n <= 0)
				break;
			line += n;
			len -= (size_t)n;
		}
		if (outq_empty(&c->out) && len == 0)
			return true;
		if (time_mono_ms() >= deadline || poll(&pfd, 1, poll_timeout(deadline)) <= 0)
			return false;
	}
}

/*
 * Sends BYE (when the peer can still read it) and closes gracefully: our
 * side first, then whatever the peer still sends is read away, so the
 * kernel does not answer unread input with a reset that could destroy the
 * BYE before the peer reads it.  Out of memory, too: the line is made on
 * the stack and written after what is queued.
 */
static void
say_bye(struct client *c, enum part_reason why, const char *text)
{
	int64_t deadline = time_mono_ms() + BYE_FLUSH_MS;
	char line[BYE_LINE_MAX], sink[512];

	/*
	 * A lost peer cannot read it; an overflowing one has a partly written
	 * line pending, and BYE glued to it would be garbage, as it would for
	 * one out of memory in the middle of a line (out_cut, fanout.c).
	 */
	if (why == PART_LOST || (why == PART_OVERFLOW && !outq_empty(&c->out)) || c->room.out_cut)
		return;
	flush_then_write(c, line, c->fe->bye(c, why, text, line, sizeof(line)), deadline);
	session_close_notify(c);
	shutdown(c->fd, SHUT_WR);
	deadline = time_mono_ms() + BYE_LINGER_MS;
	/* Bounded by the clock too: a peer that never stops sending would keep poll() ready. */
	while (time_mono_ms() < deadline) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

		if (poll(&pfd, 1, poll_timeout(deadline)) <= 0 ||
		    read(c->fd, sink, sizeof(sink)) <= 0)
			break;
	}
}

/*
 * One line for the log.  A quit's text is the user's own words to the
 * room, chat text that the log never holds (README, chatd.conf(5)); the
 * other reasons' texts are chatd's or the operator's.  The name only of a
 * login that went through: what was typed at the name prompt of one that
 * did not may be a password typed there by mistake.  A departure before
 * login, or of a guest, is an event anyone can cause: bounded (lograte.h).
 */
static void
log_departure(struct client *c, bool shook, bool logged_in, enum part_reason why, const char *text)
{
	struct log_rate *kind = !shook && why == PART_TIMEOUT ? &handshakes_too_long
				: !shook && why == PART_LOST  ? &handshakes_failed
							      : &departures[why];

	if (why == PART_QUIT)
		text = part_reason_text(PART_QUIT);
	if (logged_in && c->name[0] && c->room.guest)
		log_rated(&guest_departures, "disconnect %s from %s: %s (%s)", c->name, c->addr_str,
			  part_reason_name(why), text);
	else if (logged_in && c->name[0])
		log_info("disconnect %s from %s: %s (%s)", c->name, c->addr_str,
			 part_reason_name(why), text);
	else
		log_rated(kind, "disconnect %s before login: %s (%s)", c->addr_str,
			  part_reason_name(why), text);
}

/*
 * The TLS handshake, bounded by handshake_timeout from the accept: a
 * client that never finishes it is dropped and logged as a timeout.
 */
static int
handshake(struct client *c, struct session_state *st)
{
	int64_t timeout = (int64_t)settings_get()->handshake_timeout * 1000;
	int64_t since = time_now_ms() - c->connected_ms;
	int64_t deadline = time_mono_ms() + timeout - (since < 0 ? 0 : since);
	int want;

	while ((want = session_handshake_step(c)) > 0) {
		struct pollfd pfd = { .fd = c->fd, .events = (short)want };
		bool woken;

		if (time_mono_ms() >= deadline) {
			st->why = PART_TIMEOUT;
			snprintf(st->text, sizeof(st->text), "TLS handshake took too long");
			return -1;
		}
		if (session_wait(c, &pfd, 1, poll_timeout(deadline), &woken) < 0)
			break;
		if (woken && room_closing(c->srv->hub)) {
			st->why = PART_SHUTDOWN;
			snprintf(st->text, sizeof(st->text), "%s", part_reason_text(PART_SHUTDOWN));
			return -1;
		}
	}
	if (want == 0)
		return 0;
	st->why = PART_LOST;
	snprintf(st->text, sizeof(st->text), "TLS handshake failed: %s",
		 errno == EPROTO ? "not TLS, or no version or cipher in common" : strerror(errno));
	return -1;
}

static size_t
native_bye(struct client *c, enum part_reason why, const char *text, char *buf, size_t len)
{
	(void)c;
	int n = snprintf(buf, len, "BYE %s %s\n", part_reason_name(why), text);

	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : 0;
}

static int
native_overlong(struct client *c)
{
	return client_reply_err(c, ERR_TOO_LONG, "line longer than %zu bytes: dropped",
				c->in.max_line);
}

static int
native_login(struct client *c, bool *registered, struct session_state *st)
{
	int rc = login_run(c, registered, &st->why, st->text, sizeof(st->text));

	/* Logged in: max_line holds from here on, for lines pipelined behind the login too. */
	linebuf_lower_max(&c->in, (size_t)settings_get()->max_line);
	return rc;
}

const struct frontend native_frontend = {
	.name = "line",
	.login = native_login,
	.welcome = native_welcome,
	.refuse = native_refuse,
	.in_order = is_command,
	.request = native_request,
	.overlong = native_overlong,
	.bye = native_bye,
};

/* One connection, from its accept to its end. */
static void
client_main(struct client *c)
{
	struct session_state st = { .why = PART_LOST, .went_deep = true };
	bool registered = false, logged_in = false;

	session_thread_enter(c);
	snprintf(st.text, sizeof(st.text), "%s", part_reason_text(PART_LOST));
	log_rated(&connections, "connection from %s%s", c->addr_str, c->is_tls ? " (TLS)" : "");
	/* After a failed handshake, no BYE: nothing can be said before it. */
	bool shook = !c->is_tls || handshake(c, &st) == 0;

	if (shook && c->fe->login(c, &registered, &st) == 0) {
		logged_in = true;
		if (go_online(c, registered, &st) == 0)
			serve(c, &st);
		else if (room_closing(c->srv->hub)) {
			st.why = PART_SHUTDOWN;
			snprintf(st.text, sizeof(st.text), "%s", part_reason_text(PART_SHUTDOWN));
		}
		room_logout(c->srv->hub, c, st.why, st.text);
	}
	if (shook)
		say_bye(c, st.why, st.text);
	log_departure(c, shook, logged_in, st.why, st.text);
	if (c->fe->end != NULL)
		c->fe->end(c);
	session_tls_free(c);
	peers_close(&c->addr, c->fd);
	room_detach(c->srv->hub, c);
	session_thread_leave(c);
	client_unref(c);
}

/*
 * A client thread: its first connection, then, instead of ending, the
 * next ones the listener hands it while it waits (threadcache.h).  A
 * connection leaves nothing of its own on the thread for the next (its
 * SSL object is freed, its room and peers entries are gone); the thread's
 * OpenSSL state stays for the next handshake and is freed as it ends,
 * before thread_cache_ended() lets chatd's shutdown go on to exit().
 */
static void *
client_thread(void *arg)
{
	struct client *c = arg;

	do
		client_main(c);
	while ((c = thread_cache_park()) != NULL);
	OPENSSL_thread_stop();
	thread_cache_ended();
	return NULL;
}

/* ---- creation ---- */

static struct client *
client_new(struct server *srv, int fd, const struct sockaddr_storage *addr, bool tls, bool irc)
{
	char addr_str[ADDR_STR_MAX];
	struct client *c;

	size_t max_line = (size_t)settings_get()->max_line;

	peers_format(addr, addr_str, sizeof(addr_str));
	/* A native login's lines may be longer than max_line (login.h); native_login() lowers it. */
	c = session_new(atomic_fetch_add(&srv->next_client_id, 1) + 1, fd, addr, addr_str,
			irc                         ? IRC_LINE_MAX
			: max_line > LOGIN_LINE_MAX ? max_line
						    : LOGIN_LINE_MAX,
			tls);
	if (c != NULL) {
		c->srv = srv;
		c->fe = irc ? &irc_frontend : &native_frontend;
		c->wire = irc ? WIRE_IRC : WIRE_LINE;
	}
	return c;
}

int
client_spawn(struct server *srv, int fd, const struct sockaddr_storage *addr, bool tls, bool irc)
{
	const struct settings *s = settings_get();
	struct client *c = client_new(srv, fd, addr, tls, irc);
	pthread_attr_t attr;
	pthread_t tid;
	int err;

	if (c == NULL)
		return -1;
	room_attach(srv->hub, c);
	if (thread_cache_give(c))
		return 0;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, (size_t)s->stack_size);
	thread_cache_started();
	err = pthread_create(&tid, &attr, client_thread, c);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		thread_cache_ended();
		room_detach(srv->hub, c);
		c->fd = -1; /* the caller still owns it */
		client_unref(c);
		errno = err;
		return -1;
	}
	return 0;
}
