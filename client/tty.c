/*
 * tty.c - the terminal mode: a person typing with readline while the room
 * talks.
 *
 * One thread, one poll() loop over the terminal, the socket and a
 * signalfd.  Readline's callback interface reads keys as they come; what
 * the server sends is rendered into t->screen and printed above the input
 * line (which is cleared and redrawn around it), so a half-typed line is
 * never garbled.  When the connection drops the client says so, reconnects
 * with backoff, logs in again with the name and password it already has,
 * joins its rooms again and switches back to its current room (rooms.h),
 * and sends what was typed meanwhile; requests that were sent but not
 * answered are sent again, except room messages the history replay shows
 * were stored after all.  Replies are matched to requests in order (t->sent):
 * an OK or ERR that no request waits for (srv_describe_unasked) breaks the
 * protocol and ends chat (status 5, the reason on stderr once the terminal
 * is restored).  Replies name no request, so requests go out with a check
 * behind them, "/ping chat-check-N" (REQ_CHECK): one behind each request,
 * or, when more is typed or pasted already (more input waiting), one behind
 * the last of the lines sent together (at most CHECK_BATCH_MAX), since
 * chatd answers a command only once the messages before it are stored: a
 * check behind each line of a paste would cost a disk commit each, one
 * after the other.  The final replies before the check's PONG are taken for
 * those requests' only when there is exactly one for each, in order
 * (t->answers); one more, nobody asked for (a broken server's second
 * answer), breaks the protocol and is never shown as the next one's.  The
 * check's PONG and OK are not shown.  After a password login it asks for a resume
 * token and presents it when it logs in again, so a reconnect costs the
 * server no password hash; a refused token falls back to the password.
 * The prompt shows the current room; Tab completes commands, room names
 * and users (complete.h), Alt-1..Alt-9 switch to the rooms joined.
 * Ctrl-Z gives the terminal back as it was before it stops chat (suspend()).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "answers.h"
#include "complete.h"
#include "conn.h"
#include "exitcode.h"
#include "login.h"
#include "names.h"
#include "options.h"
#include "render.h"
#include "reqq.h"
#include "rooms.h"
#include "secret.h"
#include "srvline.h"
#include "termout.h"
#include "timefmt.h"

#define RECONNECT_TIMEOUT_MS 5000 /* a reconnect attempt blocks the keyboard at most this long */
#define QUIT_WAIT_MS 2000         /* for the BYE that answers /quit */
#define LOGIN_TRIES 3             /* a login the server timed out while a password was typed */
#define CHECK_BATCH_MAX 64        /* requests sent together behind one check, at most */

enum tty_state { T_OFFLINE, T_LOGGING_IN, T_ONLINE };

struct tty {
	struct chat_options *o;
	char *host, *port, *name; /* owned: given or asked for */
	char *password;           /* owned; wiped at exit */
	char token[65];           /* the resume token, "" if none; wiped at exit */
	int64_t token_expiry;     /* wall clock ms */
	struct conn conn;
	struct login login;
	struct render r;
	struct strbuf screen; /* rendered, not yet printed */
	struct reqq sent;     /* sent, waiting for OK/ERR; a check behind the last of each batch */
	struct answers answers; /* the final replies to the requests before the first check */
	struct strbuf final;    /* scratch: the last OK or ERR as it came (srv_parse() cuts it) */
	unsigned long checks;   /* the checks sent: the last one's text is chat-check-N */
	struct reqq unsent;     /* to send once logged in (again) */
	struct reqq rejoin;     /* rooms to join again once logged in again, then the switch */
	size_t rejoin_left;     /* replies to those still to come: what is typed waits for them */
	enum tty_state state;
	struct rooms rooms;
	struct wordset people; /* users seen, for Tab after /msg */
	bool logged_in_before; /* this login is a reconnect */
	bool home_known;       /* this login's reply named the default room */
	/* The history replay being shown (login reply, rejoin): its room and what was shown of it. */
	char replay_room[ROOM_NAME_MAX + 1];
	int64_t replay_before;   /* the room's last id shown before the replay */
	unsigned prompt_changes; /* rooms.changes when the prompt was made */
	int64_t retry_at;        /* next reconnect attempt (monotonic ms) */
	int64_t login_deadline;
	int backoff_ms;
	bool quitting;
	int64_t quit_deadline;
	bool done;
	int exit_code;
	char broken[SRV_UNASKED_MAX]; /* why the server broke the protocol, for stderr at the end */
	bool ui_active;               /* the readline callback is installed */
	bool input_closed;            /* the terminal reached end of input */
	int sigfd;
	char prompt[NAME_MAX_LEN + ROOM_NAME_MAX + 32];
};

/* Readline's callbacks take no argument: the one session lives here. */
static struct tty *the_tty;

/* --- the screen ------------------------------------------------------ */

/* Prints what was rendered above the input line, then redraws that line. */
static void
flush_screen(struct tty *t)
{
	if (t->screen.len == 0)
		return;
	if (t->ui_active)
		rl_clear_visible_line();
	termout_write(stdout, t->screen.buf, t->screen.len);
	fflush(stdout);
	strbuf_reset(&t->screen);
	if (t->ui_active)
		rl_forced_update_display();
}

static void
set_prompt(struct tty *t)
{
	const char *room = rooms_current(&t->rooms);

	snprintf(t->prompt, sizeof(t->prompt), "%s%s%s%s> ", t->r.self, room ? " #" : "",
		 room ? room : "", t->state == T_ONLINE ? "" : " (offline)");
	t->prompt_changes = t->rooms.changes;
	if (t->ui_active) {
		rl_set_prompt(t->prompt);
		rl_redisplay();
	}
}

static void
finish(struct tty *t, int code)
{
	t->done = true;
	t->exit_code = code;
}

/* --- asking before the session starts ---------------------------------- */

/* A line from the terminal with a default; NULL at end of input. */
static char *
ask(const char *question, const char *def)
{
	char prompt[256];
	char *answer;

	snprintf(prompt, sizeof(prompt), "%s [%s]: ", question, def);
	answer = readline(prompt);
	if (answer != NULL && answer[0] == '\0') {
		free(answer);
		answer = strdup(def);
	}
	return answer;
}

static int
ask_host_port(struct tty *t)
{
	if (t->o->host != NULL) {
		t->host = strdup(t->o->host);
		t->port = strdup(t->o->port ? t->o->port : chat_default_port(t->o));
		return t->host && t->port ? 0 : -1;
	}
	if ((t->host = ask("Host", CHAT_DEFAULT_HOST)) == NULL)
		return -1;
	for (;;) {
		if ((t->port = ask("Port", chat_default_port(t->o))) == NULL)
			return -1;
		if (chat_port_valid(t->port))
			return 0;
		printf("A port is a number from 1 to 65535.\n");
		free(t->port);
	}
}

static const char *
default_name(void)
{
	const char *user = getenv("USER");

	return user != NULL && name_valid(user, strlen(user)) ? user : "guest";
}

static int
ask_name(struct tty *t)
{
	if (t->o->name != NULL)
		return (t->name = strdup(t->o->name)) ? 0 : -1;
	for (;;) {
		if ((t->name = ask("Name", default_name())) == NULL)
			return -1;
		if (name_valid(t->name, strlen(t->name)))
			return 0;
		printf("A name is 1 to %d letters, digits, '_', '.' or '-', starting with a letter "
		       "or a digit.\n",
		       NAME_MAX_LEN);
		free(t->name);
	}
}

/*
 * The password, typed without echo; a new name's twice; for a name the
 * server offers only as a guest's (PASS guest), Enter alone: the empty
 * line that comes in as a guest.  NULL: cancelled.
 */
static char *
ask_password(const struct tty *t)
{
	char prompt[128];

	if (t->login.guest_only) {
		snprintf(prompt, sizeof(prompt),
			 "%s is no user here and the server registers no new names; press Enter "
			 "to come in as a guest: ",
			 t->name);
		return secret_prompt(STDIN_FILENO, prompt);
	}
	for (;;) {
		char *pw, *again;

		if (t->login.is_new)
			snprintf(prompt, sizeof(prompt),
				 "%s is a new name; choose a password: ", t->name);
		else
			snprintf(prompt, sizeof(prompt), "Password for %s: ", t->name);
		if ((pw = secret_prompt(STDIN_FILENO, prompt)) == NULL)
			return NULL;
		if (pw[0] == '\0') {
			printf("The password cannot be empty.\n");
			secret_free(pw);
			continue;
		}
		if (!t->login.is_new)
			return pw;
		if ((again = secret_prompt(STDIN_FILENO, "Repeat the password: ")) == NULL) {
			secret_free(pw);
			return NULL;
		}
		if (strcmp(pw, again) == 0) {
			secret_free(again);
			return pw;
		}
		printf("The two passwords differ; again.\n");
		secret_free(pw);
		secret_free(again);
	}
}

/* --- connection and login ------------------------------------------- */

static int
open_connection(struct tty *t, int timeout_ms, char *err, size_t errsz)
{
	switch (conn_open(&t->conn, t->host, t->port, timeout_ms, err, errsz)) {
	case CONN_OK:
		return 0;
	case CONN_RESOLVE_FAILED:
		return CHAT_EXIT_RESOLVE;
	case CONN_CONNECT_FAILED:
		return CHAT_EXIT_CONNECT;
	case CONN_TLS_REFUSED:
		return CHAT_EXIT_TLS;
	case CONN_NO_MEMORY:
		break;
	}
	return CHAT_EXIT_USAGE;
}

/*
 * Only valid names: what Tab inserts and lists comes from the server.  A
 * guest's "~NAME" is remembered as NAME (/msg takes either).
 */
static void
note_person(struct tty *t, const char *who, size_t len)
{
	if (len > 1 && who[0] == '~') {
		who++;
		len--;
	}
	if (name_valid(who, len) &&
	    (len != strlen(t->r.self) || strncasecmp(who, t->r.self, len) != 0))
		wordset_add(&t->people, who, len);
}

/* Remembers the users a line names, for Tab after /msg. */
static void
note_people(struct tty *t, const struct srv_line *sl)
{
	const char *names;

	switch (sl->tag) {
	case SRV_USERS:
		for (names = sl->f[4]; *names; names += strspn(names, " ")) {
			size_t n = strcspn(names, " ");

			note_person(t, names, n);
			names += n;
		}
		return;
	case SRV_JOIN:
	case SRV_PART:
		note_person(t, sl->f[2], strlen(sl->f[2]));
		return;
	case SRV_MSG:
	case SRV_HIST:
		note_person(t, sl->f[3], strlen(sl->f[3]));
		return;
	case SRV_PRIV:
		note_person(t, sl->f[1], strlen(sl->f[1]));
		return;
	default:
		return;
	}
}

/* The requests out before the first check (all of them when their check is still owed). */
static size_t
unchecked(const struct tty *t)
{
	size_t n = 0;

	while (n < t->sent.count && t->sent.items[n].kind != REQ_CHECK)
		n++;
	return n;
}

/* The requests sent since the last check: they still need one behind them. */
static size_t
check_owed(const struct tty *t)
{
	size_t n = 0;

	while (n < t->sent.count && t->sent.items[t->sent.count - 1 - n].kind != REQ_CHECK &&
	       t->sent.items[t->sent.count - 1 - n].kind != REQ_QUIT)
		n++;
	return n;
}

/*
 * The check behind the requests sent since the last one; -1 if the
 * connection broke, 1 if memory ran out (the requests still owe it).
 */
static int
send_check(struct tty *t)
{
	char check[64];
	int n = snprintf(check, sizeof(check), "/ping " CHAT_CHECK "%lu", t->checks + 1);

	if (reqq_push(&t->sent, REQ_CHECK, check) < 0)
		return 1;
	t->checks++;
	return conn_send(&t->conn, check, (size_t)n);
}

/*
 * Sends a request; its check follows once nothing more waits to be sent
 * with it (send_owed_check()), after CHECK_BATCH_MAX requests, or before
 * /quit (BYE answers it, no check behind it).  -1 if the connection broke.
 * Out of memory nothing is sent: the request could not be matched with
 * its answer.
 */
static int
send_request(struct tty *t, enum req_kind kind, const char *line)
{
	int rc;

	if (kind == REQ_QUIT && check_owed(t) > 0 && (rc = send_check(t)) != 0) {
		if (rc > 0)
			render_error(&t->r, &t->screen, "out of memory: \"%s\" not sent", line);
		return rc < 0 ? -1 : 0;
	}
	if (reqq_push(&t->sent, kind, line) < 0) {
		render_error(&t->r, &t->screen, "out of memory: \"%s\" not sent", line);
		return 0;
	}
	if (conn_send(&t->conn, line, strlen(line)) < 0)
		return -1;
	if (check_owed(t) >= CHECK_BATCH_MAX)
		return send_check(t) < 0 ? -1 : 0;
	return 0;
}

/* Whether the terminal holds more input: a paste, or typing faster than chat reads it. */
static bool
input_waiting(const struct tty *t)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };

	return !t->input_closed && poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

/*
 * The requests sent since the last check get theirs, unless more input
 * waits to go with them; -1 if the connection broke.
 */
static int
send_owed_check(struct tty *t)
{
	if (!conn_is_open(&t->conn) || check_owed(t) == 0 || input_waiting(t))
		return 0;
	return send_check(t) < 0 ? -1 : 0;
}

/* Sends a request of chat's own, ahead of what was typed. */
static void
send_own(struct tty *t, enum req_kind kind, const char *line)
{
	send_request(t, kind, line);
}

/*
 * A new login puts us in the server's default room only: the rooms we were
 * in are to be joined again in the order they were joined, then the
 * current room made current again, before anything typed is sent (the
 * plan is made when the login reply names the default room, and sent once
 * logged in).
 */
static void
plan_rejoin(struct tty *t)
{
	const char *current = rooms_current(&t->rooms), *last = t->login.room, *room;
	char line[ROOM_NAME_MAX + 16];

	for (size_t i = 0; (room = rooms_nth(&t->rooms, i)) != NULL; i++) {
		if (name_cmp(room, t->login.room) == 0)
			continue;
		snprintf(line, sizeof(line), "/join %s", room);
		reqq_push(&t->rejoin, REQ_REJOIN, line);
		last = room;
	}
	if (current != NULL && name_cmp(current, last) != 0) {
		snprintf(line, sizeof(line), "/switch %s", current);
		reqq_push(&t->rejoin, REQ_REJOIN, line);
	}
}

/* The login reply's USERS line names the default room, where the login put us. */
static void
on_login_room(struct tty *t)
{
	reqq_free(&t->rejoin);
	plan_rejoin(t);
	rooms_login(&t->rooms, t->login.room);
}

static void
send_rejoin(struct tty *t)
{
	struct req rq;

	while (reqq_pop(&t->rejoin, &rq)) {
		send_own(t, rq.kind, rq.line);
		free(rq.line);
	}
}

/*
 * A HIST line of a replay (the login reply, or a room joined again): one
 * shown before is skipped; one of ours that was not acknowledged before
 * the connection dropped was stored after all, so it is not sent again.
 * Message ids are one sequence for all rooms: the oldest id replayed above
 * the last one shown says nothing about a gap, so any newer replay than
 * what was shown is said to maybe leave some out.
 */
static void
on_replayed(struct tty *t, const struct srv_line *sl)
{
	const char *room = sl->f[0];
	int64_t id = strtoll(sl->f[1], NULL, 10);

	if (t->replay_room[0] == '\0' || name_cmp(t->replay_room, room) != 0) {
		snprintf(t->replay_room, sizeof(t->replay_room), "%s", room);
		t->replay_before = rooms_last_id(&t->rooms, room);
		if (t->replay_before > 0 && id > t->replay_before)
			render_note(&t->r, &t->screen,
				    "#%s: messages after #%lld may be missing below: "
				    "/history %s since %lld lists those the server still holds",
				    room, (long long)t->replay_before, room,
				    (long long)t->replay_before);
	}
	if (!rooms_note_id(&t->rooms, room, id))
		return;
	if (name_cmp(sl->f[3], t->r.self) == 0 && reqq_remove_message(&t->unsent, sl->f[4]))
		return;
	render_line(&t->r, &t->screen, sl);
}

/* A line of the login reply. */
static void
on_login_show(struct tty *t, const struct srv_line *sl)
{
	if (sl->tag == SRV_WELCOME) {
		snprintf(t->r.self, sizeof(t->r.self), "%s", t->login.user);
		if (t->logged_in_before)
			return;
	}
	if (sl->tag == SRV_USERS && !t->home_known) {
		t->home_known = true;
		on_login_room(t);
	}
	rooms_follow(&t->rooms, sl, t->r.self);
	note_people(t, sl);
	if (sl->tag == SRV_HIST)
		on_replayed(t, sl);
	else
		render_line(&t->r, &t->screen, sl);
}

static void
send_unsent(struct tty *t)
{
	struct req rq;

	while (reqq_pop(&t->unsent, &rq)) {
		if (send_request(t, rq.kind, rq.line) < 0) {
			free(rq.line);
			return; /* the next poll sees the broken connection */
		}
		free(rq.line);
	}
}

static void
forget_token(struct tty *t)
{
	explicit_bzero(t->token, sizeof(t->token));
}

/* After a password login: a token for the next one, asked before what was typed. */
static void
ask_token(struct tty *t)
{
	if (t->login.token_refused)
		forget_token(t);
	if (t->login.resumed || t->o->guest) /* a guest gets no token */
		return;
	send_request(t, REQ_TOKEN, LOGIN_TOKEN_REQUEST);
}

static void
on_logged_in(struct tty *t)
{
	bool again = t->logged_in_before || t->backoff_ms > 0;

	ask_token(t);
	t->state = T_ONLINE;
	t->backoff_ms = 0;
	render_end_history(&t->r, &t->screen);
	t->replay_room[0] = '\0';
	if (again)
		render_note(&t->r, &t->screen, "logged in again as %s", t->r.self);
	t->rejoin_left = t->rejoin.count;
	send_rejoin(t);
	if (!t->logged_in_before && t->o->room != NULL) {
		char line[ROOM_NAME_MAX + 16];

		snprintf(line, sizeof(line), "/join %s", t->o->room);
		send_own(t, REQ_COMMAND, line);
	}
	t->logged_in_before = true;
	if (t->rejoin_left == 0)
		send_unsent(t);
	set_prompt(t);
}

static void
begin_login(struct tty *t, bool may_ask)
{
	login_start(&t->login, t->name, t->password, may_ask);
	if (t->o->guest)
		login_as_guest(&t->login);
	/* A token about to expire is not worth a refusal: the password then. */
	if (t->token[0] && t->token_expiry > time_now_ms() + 60000)
		login_use_token(&t->login, t->token);
	t->state = T_LOGGING_IN;
	t->replay_room[0] = '\0';
	t->home_known = false;
	t->login_deadline = time_mono_ms() + (int64_t)t->o->timeout_s * 1000;
}

/*
 * One attempt at the first login, before the terminal UI starts: 0 logged
 * in, -1 try again on a new connection, else an exit code.
 */
static int
first_login_attempt(struct tty *t)
{
	for (;;) {
		char *raw;
		size_t len;
		struct srv_line sl;
		int rc = conn_wait_line(&t->conn, t->login_deadline, &raw, &len);

		if (rc == 0 || rc == -1) {
			fprintf(stderr, "chat: %s\n",
				rc == 0 ? "no answer from the server"
					: "the connection was closed during login");
			return CHAT_EXIT_LOST;
		}
		if (rc == -2 || !srv_parse(raw, len, &sl)) {
			fprintf(stderr, "chat: the server broke the protocol during login\n");
			return CHAT_EXIT_LOST;
		}
		switch (login_feed(&t->login, &sl, &t->conn)) {
		case LOGIN_CONTINUE:
			break;
		case LOGIN_SHOW:
			on_login_show(t, &sl);
			break;
		case LOGIN_NEED_PASSWORD:
			flush_screen(t);
			if (t->login.wrong_password)
				printf("Wrong password.\n");
			secret_free(t->password);
			conn_warn_clear_password(&t->conn); /* before it is typed */
			if ((t->password = ask_password(t)) == NULL)
				return CHAT_EXIT_USAGE;
			if (login_send_password(&t->login, &t->conn, t->password) < 0)
				return -1;
			t->login_deadline = time_mono_ms() + (int64_t)t->o->timeout_s * 1000;
			break;
		case LOGIN_DONE:
			on_logged_in(t);
			return 0;
		case LOGIN_ERROR:
			/*
			 * A lost connection or a full server: a new connection may do.
			 * Too many failed logins (ERR 429) is final here: the same
			 * password at once would be refused again.
			 */
			if (t->login.retry && t->password != NULL &&
			    t->login.exit_code != CHAT_EXIT_LOGIN)
				return -1;
			termout_printf(stderr, "chat: %s\n", t->login.message);
			return t->login.exit_code;
		}
		flush_screen(t);
	}
}

static int
first_login(struct tty *t)
{
	char err[512];

	for (int attempt = 1;; attempt++) {
		int rc = open_connection(t, t->o->timeout_s * 1000, err, sizeof(err));

		if (rc != 0) {
			fprintf(stderr, "chat: %s\n", err);
			return rc;
		}
		begin_login(t, true);
		rc = first_login_attempt(t);
		flush_screen(t);
		if (rc == 0)
			return 0;
		conn_close(&t->conn);
		if (rc > 0 && t->login.name_taken && t->o->name == NULL) {
			/* ERR 409: the name was asked for, so ask for another (and its password). */
			free(t->name);
			if (ask_name(t) < 0)
				return CHAT_EXIT_USAGE;
			snprintf(t->r.self, sizeof(t->r.self), "%s", t->name);
			if (t->o->password == NULL) {
				secret_free(t->password);
				t->password = NULL;
			}
			attempt = 0;
			continue;
		}
		if (rc > 0)
			return rc;
		if (attempt == LOGIN_TRIES) {
			termout_printf(stderr, "chat: %s\n", t->login.message);
			return t->login.exit_code ? t->login.exit_code : CHAT_EXIT_LOST;
		}
		if (t->login.exit_code == CHAT_EXIT_CONNECT) {
			/* Full after the password (ERR 503): not at once, but 1-2 s, then 2-3 s later. */
			int delay = 1000 * attempt + (int)(random() % 1000);

			termout_printf(stderr, "chat: %s; trying again in %.1f s\n",
				       t->login.message, delay / 1000.0);
			poll(NULL, 0, delay);
		}
	}
}

/* --- losing and regaining the connection -------------------------------- */

static void
schedule_reconnect(struct tty *t, const char *why)
{
	int delay = conn_backoff_next(&t->backoff_ms);

	t->retry_at = time_mono_ms() + delay;
	render_note(&t->r, &t->screen, "%s; reconnecting in %.1f s", why, delay / 1000.0);
}

static void take_answers(struct tty *t);

static void
connection_lost(struct tty *t, const char *why)
{
	conn_close(&t->conn);
	if (t->quitting) {
		finish(t, CHAT_EXIT_OK);
		return;
	}
	/* Replies that came before their check's PONG stand: nothing contradicted them. */
	t->rejoin_left = 0;
	take_answers(t);
	/* Unanswered requests go again after the login, ahead of what was typed since. */
	reqq_drop_kind(&t->sent, REQ_CHECK);
	reqq_prepend_all(&t->unsent, &t->sent);
	t->state = T_OFFLINE;
	schedule_reconnect(t, why);
	set_prompt(t);
}

static void
try_reconnect(struct tty *t)
{
	char err[512];
	int timeout = t->o->timeout_s * 1000, rc;

	rc = open_connection(t, timeout < RECONNECT_TIMEOUT_MS ? timeout : RECONNECT_TIMEOUT_MS,
			     err, sizeof(err));
	if (rc == CHAT_EXIT_TLS) {
		/* The server is not the one trusted any more: no retrying, no plain. */
		render_error(&t->r, &t->screen, "%s", err);
		finish(t, rc);
		return;
	}
	if (rc != 0) {
		schedule_reconnect(t, err);
		return;
	}
	render_note(&t->r, &t->screen, "connected to %s port %s%s; logging in", t->host, t->port,
		    !conn_is_tls(&t->conn)   ? ""
		    : conn_resumed(&t->conn) ? " (TLS, session resumed)"
					     : " (TLS)");
	begin_login(t, false);
}

/* --- what the server says --------------------------------------------- */

static void
on_reconnect_login_line(struct tty *t, const struct srv_line *sl)
{
	switch (login_feed(&t->login, sl, &t->conn)) {
	case LOGIN_CONTINUE:
		break;
	case LOGIN_SHOW:
		on_login_show(t, sl);
		break;
	case LOGIN_DONE:
		on_logged_in(t);
		break;
	case LOGIN_NEED_PASSWORD: /* the password is known: cannot happen */
	case LOGIN_ERROR:
		if (t->login.token_refused)
			forget_token(t);
		if (t->login.retry) {
			connection_lost(t, t->login.message);
			break;
		}
		render_error(&t->r, &t->screen, "%s", t->login.message);
		finish(t, t->login.exit_code);
		break;
	}
}

/*
 * Whether the final reply sl answers the oldest request out.  BYE answers
 * /quit: an ERR does only when the server refused the line itself (too
 * long, a character it refuses), an OK never.
 */
static bool
reply_awaited(const struct tty *t, const struct srv_line *sl)
{
	return t->sent.count > 0 && (t->sent.items[0].kind != REQ_QUIT || sl->tag == SRV_ERR);
}

/* Forgets a final reply kept: it may hold a resume token. */
static void
wipe(struct strbuf *sb)
{
	if (sb->buf != NULL)
		explicit_bzero(sb->buf, sb->len);
	strbuf_reset(sb);
}

/* A final reply that answers no request: the server broke the protocol. */
static void
unasked(struct tty *t, const struct srv_line *sl)
{
	/* Taken for the next request's, it would misreport every reply after it. */
	srv_describe_unasked(sl, t->broken, sizeof(t->broken));
	answers_wipe(&t->answers);
	conn_close(&t->conn);
	finish(t, CHAT_EXIT_LOST);
}

/* The answer to the oldest request, confirmed (or /quit's ERR): shown as its kind wants. */
static void
answer_taken(struct tty *t, const struct srv_line *sl)
{
	struct req rq;

	rooms_follow(&t->rooms, sl, t->r.self);
	if (!reply_awaited(t, sl) || !reqq_pop(&t->sent, &rq)) {
		unasked(t, sl);
		return;
	}
	if (rq.kind == REQ_TOKEN) {
		/* An ERR: a server without tokens, or with them off; the password then. */
		if (!login_parse_token(sl, t->token, &t->token_expiry))
			forget_token(t);
		free(rq.line);
		return;
	}
	if (rq.kind == REQ_MESSAGE && sl->tag == SRV_OK) {
		/* The client's current room follows the replies: it is where this one went. */
		const char *room = rooms_current(&t->rooms);

		if (room != NULL)
			rooms_note_id(&t->rooms, room, strtoll(sl->f[0], NULL, 10));
		render_end_history(&t->r, &t->screen);
	} else if (rq.kind == REQ_MESSAGE || rq.kind == REQ_SAY) {
		if (sl->tag == SRV_ERR)
			render_error(&t->r, &t->screen, "not sent: \"%s\": %s (error %d)", rq.line,
				     sl->f[1], srv_err_code(sl));
		render_end_history(&t->r, &t->screen);
	} else if (rq.kind == REQ_REJOIN && sl->tag == SRV_ERR) {
		render_error(&t->r, &t->screen, "%s after logging in again: %s (error %d)", rq.line,
			     sl->f[1], srv_err_code(sl));
	} else if (!(rq.kind == REQ_PRIVATE && sl->tag == SRV_OK)) {
		if (rq.kind == REQ_PASSWD && sl->tag == SRV_OK) {
			/* The next automatic login needs the new password. */
			char *pw = strdup(rq.line + strlen("/passwd "));

			if (pw != NULL) {
				secret_free(t->password);
				t->password = pw;
			}
			forget_token(t); /* the server revoked it */
		}
		render_line(&t->r, &t->screen, sl);
	}
	if (rq.kind == REQ_PASSWD)
		explicit_bzero(rq.line, strlen(rq.line));
	/* Back in every room: what was typed meanwhile goes now, to the current room. */
	if (rq.kind == REQ_REJOIN && t->rejoin_left > 0 && --t->rejoin_left == 0)
		send_unsent(t);
	free(rq.line);
}

/*
 * The check's PONG came with one final reply kept for each request before
 * it: they answer those requests, in order.  (Also when the connection
 * went before the PONG: the replies that came stand.)
 */
static void
take_answers(struct tty *t)
{
	struct srv_line sl;
	size_t pos = 0, len;
	char *line;

	while (!t->done && answers_next(&t->answers, &pos, &line, &len))
		if (srv_parse(line, len, &sl)) /* it did when it came */
			answer_taken(t, &sl);
	answers_wipe(&t->answers);
}

/* Whether sl is the PONG of the first check out, each request before it answered. */
static bool
is_check_pong(const struct tty *t, const struct srv_line *sl)
{
	size_t out = unchecked(t);
	const char *check;

	if (sl->tag != SRV_PONG || out == 0 || out == t->sent.count || t->answers.count != out)
		return false;
	check = t->sent.items[out].line + strlen("/ping ");
	return sl->text_len == strlen(check) && strcmp(srv_text(sl), check) == 0;
}

/* An OK or ERR, in the order of the requests and their checks. */
static void
on_final(struct tty *t, const struct srv_line *sl)
{
	size_t out = unchecked(t);
	struct req rq;

	if (t->sent.count > 0 && t->sent.items[0].kind == REQ_CHECK) {
		/* The check's own OK, after its PONG: not shown. */
		if (sl->tag == SRV_ERR) {
			snprintf(t->broken, sizeof(t->broken),
				 "the server broke the protocol: it refused a /ping");
			conn_close(&t->conn);
			finish(t, CHAT_EXIT_LOST);
			return;
		}
		reqq_pop(&t->sent, &rq);
		free(rq.line);
		return;
	}
	if (t->answers.count < out && t->sent.items[t->answers.count].kind != REQ_QUIT) {
		/* Kept until the check's PONG says it is this request's. */
		if (answers_keep(&t->answers, t->final.buf, t->final.len) < 0) {
			render_error(&t->r, &t->screen, "out of memory");
			conn_close(&t->conn);
			finish(t, CHAT_EXIT_USAGE);
		}
		wipe(&t->final);
		return;
	}
	if (t->answers.count > 0) { /* one more than the requests before the check */
		unasked(t, sl);
		return;
	}
	answer_taken(t, sl); /* /quit's ERR, or one that answers nothing */
}

static void
on_bye(struct tty *t, const struct srv_line *sl)
{
	const char *reason = sl->f[0];

	/* The answer to our /quit: we left; the server ended nothing. */
	if (t->quitting && strcmp(reason, "quit") == 0)
		render_note(&t->r, &t->screen, "left chatd%s%s%s", sl->f[1][0] ? " (" : "",
			    sl->f[1], sl->f[1][0] ? ")" : "");
	else
		render_line(&t->r, &t->screen, sl);
	if (t->quitting) {
		conn_close(&t->conn);
		finish(t, CHAT_EXIT_OK);
	} else if (strcmp(reason, "replaced") == 0 || strcmp(reason, "kicked") == 0 ||
		   strcmp(reason, "refused") == 0 || strcmp(reason, "quit") == 0) {
		/*
		 * Reconnecting would only take the session back from whoever took it;
		 * "quit" answers a /quit, so one sent unasked is no normal end either.
		 */
		render_error(&t->r, &t->screen, "%s",
			     strcmp(reason, "replaced") == 0
				     ? "logged in elsewhere: this session is closed"
				     : "the server closed this session");
		conn_close(&t->conn);
		finish(t, CHAT_EXIT_LOST);
	} else {
		connection_lost(t, "the server closed the connection");
	}
}

/* Whether the oldest request still unanswered is one chat sent to join a room again. */
static bool
rejoining(const struct tty *t)
{
	size_t next = t->answers.count; /* those before it have their replies kept */

	return next < t->sent.count && t->sent.items[next].kind == REQ_REJOIN;
}

static void
on_session_line(struct tty *t, const struct srv_line *sl)
{
	if (is_check_pong(t, sl)) {
		take_answers(t);
		return;
	}
	if (sl->tag == SRV_OK || sl->tag == SRV_ERR) {
		on_final(t, sl); /* followed once taken for the request's */
		return;
	}
	rooms_follow(&t->rooms, sl, t->r.self);
	note_people(t, sl);
	if (sl->tag == SRV_HIST && rejoining(t)) {
		on_replayed(t, sl);
		return;
	}
	if (sl->tag == SRV_MSG || sl->tag == SRV_HIST)
		rooms_note_id(&t->rooms, sl->f[0], strtoll(sl->f[1], NULL, 10));
	if (sl->tag == SRV_BYE)
		on_bye(t, sl);
	else
		render_line(&t->r, &t->screen, sl);
}

static void
on_server_line(struct tty *t, char *raw, size_t len)
{
	struct srv_line sl;

	/* A final reply may be kept as it came, until its check confirms it. */
	wipe(&t->final);
	if ((strncmp(raw, "OK ", 3) == 0 || strncmp(raw, "ERR ", 4) == 0) && t->state == T_ONLINE &&
	    strbuf_add(&t->final, raw, len) < 0) {
		render_error(&t->r, &t->screen, "out of memory");
		conn_close(&t->conn);
		finish(t, CHAT_EXIT_USAGE);
		return;
	}
	if (!srv_parse(raw, len, &sl)) {
		struct strbuf s = { 0 };

		render_error(&t->r, &t->screen, "the server sent a line chat does not know:");
		if (strbuf_adds(&s, "   ") == 0 && strbuf_add(&s, raw, len) == 0)
			render_note(&t->r, &t->screen, "%s", s.buf);
		strbuf_free(&s);
		return;
	}
	if (t->state == T_LOGGING_IN)
		on_reconnect_login_line(t, &sl);
	else
		on_session_line(t, &sl);
	if (t->prompt_changes != t->rooms.changes)
		set_prompt(t);
}

/* Handles the complete lines received; stops when the connection goes. */
static void
drain_lines(struct tty *t)
{
	char *raw;
	size_t len;
	enum linebuf_result r;

	while (conn_is_open(&t->conn) && !t->done &&
	       (r = conn_next_line(&t->conn, &raw, &len)) != LB_NONE) {
		if (r == LB_OVERLONG)
			render_error(&t->r, &t->screen,
				     "the server sent a line longer than the "
				     "protocol allows (%d bytes); it was dropped",
				     CONN_MAX_LINE);
		else
			on_server_line(t, raw, len);
	}
}

static void
on_socket(struct tty *t)
{
	int rc = conn_read(&t->conn);

	if (rc <= 0) {
		connection_lost(t, rc == 0 ? "the server closed the connection"
					   : "the connection was lost");
		return;
	}
	drain_lines(t);
}

/* --- what the person types --------------------------------------------- */

static bool
is_command(const char *line, const char *cmd)
{
	size_t n = strlen(cmd);

	return strncmp(line, cmd, n) == 0 && (line[n] == '\0' || line[n] == ' ');
}

/* What is typed now waits: offline, or the rooms are being joined again. */
static bool
held(const struct tty *t)
{
	return t->state != T_ONLINE || t->rejoin_left > 0;
}

static void
submit(struct tty *t, enum req_kind kind, const char *line)
{
	if (held(t)) {
		reqq_push(&t->unsent, kind, line);
		return;
	}
	if (send_request(t, kind, line) < 0)
		connection_lost(t, "the connection was lost");
}

static void
local_help(struct tty *t)
{
	render_note(&t->r, &t->screen,
		    "keys: Up/Down recall earlier lines, Ctrl-R searches them, Tab completes "
		    "commands, rooms and names, Alt-1..Alt-9 switch to the 1st..9th room joined, "
		    "Ctrl-C clears the line (on an empty line it quits, as Ctrl-D and /quit do)");
	render_note(&t->r, &t->screen,
		    "rooms: /join ROOM, /leave [ROOM], /switch ROOM, /rooms, /topic [ROOM [TEXT]], "
		    "/say ROOM TEXT, /who [ROOM]; a plain line goes to the current room (the "
		    "prompt's)");
}

static void
quit(struct tty *t, const char *line)
{
	if (t->state != T_ONLINE) {
		finish(t, CHAT_EXIT_OK);
		return;
	}
	t->quitting = true;
	t->quit_deadline = time_mono_ms() + QUIT_WAIT_MS;
	submit(t, REQ_QUIT, line);
}

/*
 * "TARGET TEXT" as our own line shows it: TARGET (1 to max bytes) copied
 * to out, *text after the one space; false if either is missing.
 */
static bool
split_target(const char *s, size_t max, char *out, const char **text)
{
	size_t n = strcspn(s, " ");

	*text = s + n + (s[n] == ' ');
	if (n == 0 || n > max || **text == '\0')
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* /say ROOM TEXT: shown as our message in ROOM. */
static void
say(struct tty *t, const char *line)
{
	const char *to = line + strlen("/say"), *text;
	char room[ROOM_NAME_MAX + 1];

	to += strspn(to, " ");
	to = rooms_bare(to);
	if (split_target(to, ROOM_NAME_MAX, room, &text)) {
		struct chat_room *known = rooms_find(&t->rooms, to);

		render_own_message(&t->r, &t->screen, known ? known->name : room, text, held(t));
	}
	submit(t, REQ_SAY, line);
}

static void
private_message(struct tty *t, const char *line)
{
	const char *to = line + strlen("/msg"), *text;
	char name[NAME_MAX_LEN + 1];

	to += strspn(to, " ");
	if (split_target(to, NAME_MAX_LEN, name, &text))
		render_own_private(&t->r, &t->screen, name, text, held(t));
	submit(t, REQ_PRIVATE, line);
}

/* Any other command: the server's reply says how it went. */
static void
server_command(struct tty *t, const char *line)
{
	if (t->state != T_ONLINE)
		render_note(&t->r, &t->screen, "%s: will be sent once connected", line);
	submit(t, REQ_COMMAND, line);
}

static void
change_password(struct tty *t, const char *line)
{
	if (line[strlen("/passwd")] != ' ') {
		server_command(t, line); /* no password given: the server explains */
		return;
	}
	submit(t, REQ_PASSWD, line);
}

static void
help(struct tty *t, const char *line)
{
	local_help(t);
	server_command(t, line);
}

/* Commands the client looks at before (or instead of) sending them. */
static const struct {
	const char *name;
	void (*run)(struct tty *t, const char *line);
} COMMANDS[] = {
	/* clang-format off */
	{ "/quit", quit },
	{ "/msg", private_message },
	{ "/say", say },
	{ "/passwd", change_password },
	{ "/help", help },
	/* clang-format on */
};

/*
 * A command's trailing spaces go: Tab completion leaves one, and chatd takes
 * "/switch dev " for a usage error.  A new password keeps them.
 */
static void
trim_command(char *line)
{
	size_t n = strlen(line);

	if (is_command(line, "/passwd"))
		return;
	while (n > 1 && line[n - 1] == ' ')
		line[--n] = '\0';
}

static void
on_input(struct tty *t, char *line)
{
	if (srv_request_blank(line, strlen(line)))
		return;
	if (line[0] == '/' && line[1] != '/')
		trim_command(line);
	if (line[0] != '/' || line[1] == '/') {
		render_own_message(&t->r, &t->screen, rooms_current(&t->rooms),
				   line[0] == '/' ? line + 1 : line, held(t));
		submit(t, REQ_MESSAGE, line);
		return;
	}
	for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
		if (is_command(line, COMMANDS[i].name)) {
			COMMANDS[i].run(t, line);
			return;
		}
	}
	server_command(t, line);
}

/* Whether a line of text (one, or pasted with its line ends) is a /passwd. */
static bool
holds_passwd(const char *text)
{
	for (const char *line = text;;) {
		const char *lf = strchr(line, '\n');

		if (strncmp(line, "/passwd", 7) == 0)
			return true;
		if (lf == NULL)
			return false;
		line = lf + 1;
	}
}

/*
 * What was typed, or pasted with its line ends: chatd takes each LF for the
 * end of a request (dropping one CR before it) and answers each, and chat
 * matches the answers to its requests by order, so each line goes as the
 * request chatd will see.  A paste of several lines that holds a /passwd is
 * not sent at all: a new password is typed alone (and kept out of the
 * history), never sent between other lines.
 */
static void
on_typed(struct tty *t, char *text)
{
	char *line = text, *lf;

	if (holds_passwd(text) && strchr(text, '\n') != NULL) {
		render_error(
			&t->r, &t->screen,
			"/passwd is typed alone, not pasted with other lines: nothing was sent");
		return;
	}
	while ((lf = strchr(line, '\n')) != NULL) {
		*lf = '\0';
		if (lf > line && lf[-1] == '\r')
			lf[-1] = '\0';
		on_input(t, line);
		line = lf + 1;
	}
	on_input(t, line);
}

/*
 * Enter: the line is taken here instead of by readline's accept-line, so
 * readline never leaves the typed text on the screen; the message appears
 * above the input line in the same form as everyone else's.
 */
static int
on_enter(int count, int key)
{
	struct tty *t = the_tty;
	char *line = strdup(rl_line_buffer);

	if (line == NULL)
		return 0;
	bool secret = holds_passwd(line);
	size_t len = strlen(line);

	/* A new password must not come back with the Up key. */
	if (line[0] != '\0' && !secret)
		add_history(line);
	using_history();
	rl_replace_line("", 1);
	rl_point = 0;
	on_typed(t, line); /* cuts line at its line ends */
	if (secret)
		explicit_bzero(line, len);
	free(line);
	return 0;
}

/* Alt-1..Alt-9: /switch to the 1st..9th room joined. */
static int
on_switch_key(int count, int key)
{
	struct tty *t = the_tty;
	const char *room = rooms_nth(&t->rooms, (size_t)(key - '1'));
	char line[ROOM_NAME_MAX + 16];

	if (room == NULL) {
		render_note(&t->r, &t->screen, "no room %c: you are in %zu", key,
			    rooms_count(&t->rooms));
		return 0;
	}
	snprintf(line, sizeof(line), "/switch %s", room);
	server_command(t, line);
	return 0;
}

/* What Tab completes, for complete_match() (readline's generators take no argument). */
static enum complete_what completing;

static char *
complete_match(const char *word, int state)
{
	static size_t pos;

	if (state == 0)
		pos = 0;
	return complete_next(&the_tty->rooms, &the_tty->people, completing, word, &pos);
}

/* Tab: commands and room names (complete.h), never file names. */
static char **
on_complete(const char *word, int start, int end)
{
	rl_attempted_completion_over = 1;
	completing = complete_what(rl_line_buffer, (size_t)start);
	if (completing == COMPLETE_NOTHING)
		return NULL;
	return rl_completion_matches(word, complete_match);
}

/* Readline calls this only for Ctrl-D on an empty line (Enter is on_enter). */
static void
on_line(char *line)
{
	if (line == NULL) {
		/* A hung-up terminal stays readable: stop polling it. */
		the_tty->input_closed = true;
		quit(the_tty, "/quit");
	}
	free(line);
}

/* --- signals and the loop ---------------------------------------------- */

static int
signals_open(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGWINCH);
	sigaddset(&set, SIGTSTP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/*
 * Ctrl-Z: the terminal as it was before readline took it, then stopped as
 * SIGTSTP stops any program; once continued (fg), readline's modes again
 * and the prompt with the half-typed line redrawn.  SIGTSTP is blocked for
 * the signalfd, so it is raised again and let through for the stop.
 */
static void
suspend(struct tty *t)
{
	sigset_t tstp;

	if (t->ui_active) {
		rl_callback_sigcleanup();
		rl_echo_signal_char(SIGTSTP);
		rl_cleanup_after_signal();
	}
	fflush(stdout);
	sigemptyset(&tstp);
	sigaddset(&tstp, SIGTSTP);
	raise(SIGTSTP);
	sigprocmask(SIG_UNBLOCK, &tstp, NULL); /* stops here until SIGCONT */
	sigprocmask(SIG_BLOCK, &tstp, NULL);
	if (t->ui_active) {
		rl_reset_after_signal();
		rl_forced_update_display();
	}
}

static void
on_signal(struct tty *t)
{
	struct signalfd_siginfo si;

	while (read(t->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGWINCH:
			rl_resize_terminal();
			break;
		case SIGTSTP:
			suspend(t);
			break;
		case SIGINT:
			if (rl_end > 0) {
				rl_replace_line("", 1);
				rl_point = 0;
				rl_redisplay();
			} else {
				quit(t, "/quit");
			}
			break;
		default: /* SIGTERM, SIGHUP: leave at once, the terminal restored */
			finish(t, 128 + (int)si.ssi_signo);
			break;
		}
	}
}

static void
ui_start(struct tty *t)
{
	rl_catch_signals = 0; /* the signalfd has them */
	rl_catch_sigwinch = 0;
	set_prompt(t);
	rl_callback_handler_install(t->prompt, on_line);
	rl_bind_key_in_map('\r', on_enter, emacs_standard_keymap);
	rl_bind_key_in_map('\n', on_enter, emacs_standard_keymap);
	rl_bind_key_in_map('\r', on_enter, vi_insertion_keymap);
	rl_bind_key_in_map('\n', on_enter, vi_insertion_keymap);
	rl_bind_key_in_map('\r', on_enter, vi_movement_keymap);
	rl_bind_key_in_map('\n', on_enter, vi_movement_keymap);
	for (char seq[] = "\0331"; seq[1] <= '9'; seq[1]++)
		rl_bind_keyseq_in_map(seq, on_switch_key, emacs_standard_keymap);
	rl_attempted_completion_function = on_complete;
	rl_completer_word_break_characters = " ";
	rl_variable_bind("completion-ignore-case", "on");
	t->ui_active = true;
}

static void
ui_stop(struct tty *t)
{
	if (!t->ui_active)
		return;
	rl_clear_visible_line();
	rl_callback_handler_remove();
	t->ui_active = false;
	fflush(stdout);
	clear_history();
}

/* Milliseconds until the next timer, -1 for none. */
static int
poll_timeout(const struct tty *t)
{
	int64_t now = time_mono_ms(), at = -1;

	if (t->state == T_OFFLINE)
		at = t->retry_at;
	else if (t->state == T_LOGGING_IN)
		at = t->login_deadline;
	if (t->quitting && (at < 0 || t->quit_deadline < at))
		at = t->quit_deadline;
	if (at < 0)
		return -1;
	return at <= now ? 0 : (int)(at - now);
}

static void
on_timers(struct tty *t)
{
	int64_t now = time_mono_ms();

	if (t->quitting && now >= t->quit_deadline)
		finish(t, CHAT_EXIT_OK);
	else if (t->state == T_OFFLINE && now >= t->retry_at)
		try_reconnect(t);
	else if (t->state == T_LOGGING_IN && now >= t->login_deadline)
		connection_lost(t, "the login got no answer");
}

static void
loop(struct tty *t)
{
	while (!t->done) {
		struct pollfd pfd[3] = {
			{ .fd = t->input_closed ? -1 : STDIN_FILENO, .events = POLLIN },
			{ .fd = t->sigfd, .events = POLLIN },
			{ .fd = t->conn.fd, .events = POLLIN },
		};
		nfds_t n;
		int timeout;

		/* Lines that came in one read with the login reply are buffered already. */
		drain_lines(t);
		if (t->done)
			break;
		n = conn_is_open(&t->conn) ? 3 : 2;
		flush_screen(t);
		if (send_owed_check(t) < 0 ||
		    (conn_is_open(&t->conn) && conn_flush(&t->conn) < 0)) {
			connection_lost(t, "the connection was lost");
			continue;
		}
		pfd[2].events = conn_poll_events(&t->conn);
		/* TLS holds what arrived: read it without waiting. */
		timeout = n == 3 && conn_pending(&t->conn) ? 0 : poll_timeout(t);
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents & POLLIN)
			on_signal(t);
		if (!t->done && !t->input_closed && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			rl_callback_read_char();
		if (!t->done && n == 3 && conn_is_open(&t->conn) &&
		    conn_readable(&t->conn, pfd[2].revents))
			on_socket(t);
		if (!t->done)
			on_timers(t);
	}
	flush_screen(t);
}

static void
tty_free(struct tty *t)
{
	conn_close(&t->conn);
	reqq_free(&t->sent);
	reqq_free(&t->unsent);
	answers_free(&t->answers);
	wipe(&t->final);
	strbuf_free(&t->final);
	reqq_free(&t->rejoin);
	rooms_free(&t->rooms);
	wordset_free(&t->people);
	strbuf_free(&t->screen);
	free(t->host);
	free(t->port);
	free(t->name);
	secret_free(t->password);
	forget_token(t);
	if (t->sigfd >= 0)
		close(t->sigfd);
}

static bool
want_color(enum color_when when)
{
	const char *term = getenv("TERM");

	if (when != COLOR_AUTO)
		return when == COLOR_ALWAYS;
	return getenv("NO_COLOR") == NULL && term != NULL && strcmp(term, "dumb") != 0;
}

int
tty_run(struct chat_options *o)
{
	struct tty t = { .o = o, .sigfd = -1 };
	int rc;

	the_tty = &t;
	conn_init(&t.conn, o->tls_ctx);
	t.r.color = want_color(o->color);
	if (o->password != NULL && (t.password = strdup(o->password)) == NULL)
		return CHAT_EXIT_USAGE;
	if (ask_host_port(&t) < 0 || ask_name(&t) < 0) {
		tty_free(&t);
		return CHAT_EXIT_USAGE;
	}
	snprintf(t.r.self, sizeof(t.r.self), "%s", t.name);
	rc = first_login(&t);
	if (rc == 0 && (t.sigfd = signals_open()) < 0) {
		perror("chat: signalfd");
		rc = CHAT_EXIT_USAGE;
	}
	if (rc == 0) {
		ui_start(&t);
		loop(&t);
		ui_stop(&t);
		if (t.broken[0])
			termout_printf(stderr, "chat: %s\n", t.broken);
		rc = t.exit_code;
	}
	tty_free(&t);
	return rc;
}
