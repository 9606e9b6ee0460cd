/*
 * test_oom.c - a client thread out of memory (daemon/client.c and the
 * front-ends it runs, and the room and history work it does): whatever
 * allocation of its thread fails, the client gets an answer to its
 * request (an ERR 5xx, or IRC's numeric or FAIL) or a last line with a
 * reason (BYE, IRC's ERROR) before the close, never a bare close nor half
 * a line; the members of its rooms see what it did or are told out of
 * memory; a message answered OK is never called not stored, nor missing
 * from its room's memory between others.
 *
 * Real client threads (client_spawn, as the listener starts them) on one
 * end of a socketpair, with a real hub, history and identification file.
 * The code under test is linked with -Wl,--wrap for malloc, calloc,
 * realloc and strdup (tests/CMakeLists.txt): on a client thread (one that
 * entered session_thread_enter, wrapped too) the test makes the Nth
 * allocation fail, or every one from the Nth on, and tries each N from 1
 * until a request runs with no allocation failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"
#include "config.h"
#include "fault.h"
#include "history.h"
#include "ident.h"
#include "log.h"
#include "lograte.h"
#include "password.h"
#include "peers.h"
#include "resume.h"
#include "room.h"
#include "roomfile.h"
#include "server.h"
#include "session.h"
#include "test_addr.h"
#include "threadcache.h"
#include "timefmt.h"
#include "unit_fixture.h"
#include "wire.h"

/* ---- failing allocations on client threads ---- */

enum fail_mode { FAIL_OFF, FAIL_ONE, FAIL_FROM };

static _Thread_local bool on_client_thread;
static _Thread_local uint64_t thread_client; /* the id of the client the thread serves */
static atomic_int fail_mode;
static atomic_long fail_at, allocations, failures;
static _Atomic uint64_t fail_client; /* fail only its thread's allocations; 0: any client's */

static bool
fail_now(void)
{
	uint64_t only = atomic_load(&fail_client);

	if (!on_client_thread || atomic_load(&fail_mode) == FAIL_OFF ||
	    (only != 0 && thread_client != only))
		return false;
	long n = atomic_fetch_add(&allocations, 1) + 1, at = atomic_load(&fail_at);
	bool fail = atomic_load(&fail_mode) == FAIL_ONE ? n == at : n >= at;

	if (fail) {
		atomic_fetch_add(&failures, 1);
		errno = ENOMEM;
	}
	return fail;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void __real_session_thread_enter(struct client *c);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void __wrap_session_thread_enter(struct client *c);

void *
__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

char *
__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

void
__wrap_session_thread_enter(struct client *c)
{
	on_client_thread = true;
	thread_client = c->id;
	__real_session_thread_enter(c);
}

/* Fails allocation at (or every one from at on) of the client threads, or only of client only. */
static void
arm_for(enum fail_mode mode, long at, uint64_t only)
{
	atomic_store(&fail_client, only);
	atomic_store(&allocations, 0);
	atomic_store(&failures, 0);
	atomic_store(&fail_at, at);
	atomic_store(&fail_mode, mode);
}

static void
arm(enum fail_mode mode, long at)
{
	arm_for(mode, at, 0);
}

/* ---- the server ---- */

struct fixture {
	char dir[64];
	char path[4][96];
	struct server srv;
};

static int
setup_with(void **state, int sync_ms)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char err[256], conf[256];

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_oom.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path[0], sizeof(fx->path[0]), "%s/ident", fx->dir);
	snprintf(fx->path[1], sizeof(fx->path[1]), "%s/log", fx->dir);
	snprintf(fx->path[2], sizeof(fx->path[2]), "%s/history", fx->dir);
	snprintf(fx->path[3], sizeof(fx->path[3]), "%s/%s", fx->dir, RESUME_FILE);
	assert_int_equal(log_open(fx->path[1]), 0);
	snprintf(conf, sizeof(conf),
		 "hash_cost = 1;\nguests = true;\nroom_create = \"anyone\";\n"
		 "history_replay = 5;\nhistory_sync_ms = %d;\n",
		 sync_ms);
	publish_settings(conf);
	assert_int_equal(password_gate_init(1), 0);
	fx->srv.ident = ident_open(fx->path[0], err, sizeof(err));
	assert_non_null(fx->srv.ident);
	assert_int_equal(resume_open(fx->path[3], time_now_ms(), err, sizeof(err)), 0);
	fx->srv.hub = hub_new(wire_formats);
	assert_non_null(fx->srv.hub);
	struct history_config hc = { .path = fx->path[2],
				     .memory = 100,
				     .max_size = 1 << 20,
				     .sync_ms = sync_ms };
	fx->srv.history = history_open(&hc, room_publish_history, fx->srv.hub, err, sizeof(err));
	assert_non_null(fx->srv.history);
	hub_set_history(fx->srv.hub, fx->srv.history);
	fx->srv.tls_port = -1;
	fx->srv.irc_tls_port = -1;
	*state = fx;
	return 0;
}

static int
setup(void **state)
{
	return setup_with(state, 0);
}

/* history_sync_ms above 0: a sender's thread publishes its own message at once. */
static int
setup_relaxed(void **state)
{
	return setup_with(state, 1000);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	arm(FAIL_OFF, 0);
	room_shutdown(fx->srv.hub);
	assert_true(room_wait_empty(fx->srv.hub, time_mono_ms() + 5000));
	assert_true(thread_cache_close(time_mono_ms() + 5000));
	history_close(fx->srv.history);
	hub_free(fx->srv.hub);
	ident_close(fx->srv.ident);
	resume_close();
	password_gate_destroy();
	log_close();
	for (int i = 0; i < 4; i++)
		unlink(fx->path[i]);
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s.lock", fx->path[2]);
	unlink(tmp);
	snprintf(tmp, sizeof(tmp), "%s.tmp", fx->path[0]);
	unlink(tmp);
	snprintf(tmp, sizeof(tmp), "%s.tmp", fx->path[3]);
	unlink(tmp);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* ---- a connection ---- */

struct conn {
	int fd;
	char buf[1 << 16];
	size_t len;  /* bytes in buf */
	size_t seen; /* of them, lines already returned */
	bool eof;
};

/* A connection served by a client thread of its own, as the listener makes one. */
static void
connect_client(struct fixture *fx, struct conn *cn, bool irc)
{
	struct sockaddr_storage addr = test_addr("127.0.0.1");
	struct peers_limits lim = { 100, 100, 100, 100 };
	char why[128];
	int sv[2];

	memset(cn, 0, sizeof(*cn));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	cn->fd = sv[1];
	assert_true(peers_admit(&addr, sv[0], &lim, why, sizeof(why)));
	assert_int_equal(client_spawn(&fx->srv, sv[0], &addr, false, irc), 0);
}

/* The next line (without its LF) within 5 s; NULL at the end of the connection. */
static const char *
next_line(struct conn *cn)
{
	int64_t deadline = time_mono_ms() + 5000;

	for (;;) {
		char *lf = memchr(cn->buf + cn->seen, '\n', cn->len - cn->seen);

		if (lf != NULL) {
			const char *line = cn->buf + cn->seen;

			*lf = '\0';
			if (lf > line && lf[-1] == '\r')
				lf[-1] = '\0';
			cn->seen = (size_t)(lf - cn->buf) + 1;
			return line;
		}
		if (cn->eof)
			return NULL;
		struct pollfd pfd = { .fd = cn->fd, .events = POLLIN };
		int64_t left = deadline - time_mono_ms();

		if (left <= 0)
			fail_msg("no line within 5 s; have \"%.*s\"", (int)(cn->len - cn->seen),
				 cn->buf + cn->seen);
		poll(&pfd, 1, (int)left);
		ssize_t n = read(cn->fd, cn->buf + cn->len, sizeof(cn->buf) - 1 - cn->len);

		if (n == 0 || (n < 0 && errno != EAGAIN))
			cn->eof = true;
		else if (n > 0)
			cn->len += (size_t)n;
		assert_true(cn->len < sizeof(cn->buf) - 1);
	}
}

static void
say(struct conn *cn, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(line));
	assert_int_equal(write(cn->fd, line, (size_t)n), n);
}

/* Reads lines until one starts with prefix; fails at the end of the connection. */
static const char *
expect(struct conn *cn, const char *prefix)
{
	const char *l;

	while ((l = next_line(cn)) != NULL)
		if (strncmp(l, prefix, strlen(prefix)) == 0)
			return l;
	fail_msg("the connection ended before a line \"%s...\"", prefix);
	return NULL;
}

static void
native_login(struct fixture *fx, struct conn *cn, const char *name)
{
	connect_client(fx, cn, false);
	expect(cn, "HELLO ");
	say(cn, "%s\n", name);
	expect(cn, "PASS new ");
	say(cn, "\n");
	expect(cn, "OK - logged in");
}

/* Everything after the login, to the end of the connection, one line each. */
static void
transcript(struct conn *cn, char *out, size_t len)
{
	const char *l;
	size_t at = 0;

	out[0] = '\0';
	while ((l = next_line(cn)) != NULL)
		at += (size_t)snprintf(out + at, at < len ? len - at : 0, "%s\n", l);
	close(cn->fd);
}

/*
 * A line of t that is no whole line of the protocol (a line cut short
 * with the next glued to it, say), or NULL: natively each starts with
 * its tag, each OK with an id or "-"; on IRC with a source or tags, or
 * is ERROR or FAIL.
 */
static const char *
bad_line(const char *t, bool irc)
{
	static const char *const tags[] = { "OK ",    "ERR ",   "BYE ",    "MSG ",  "HIST ",
					    "USERS ", "TOPIC ", "JOIN ",   "PART ", "PONG ",
					    "HELP ",  "ROOM ",  "NOTICE ", "PRIV " };
	static char line[1024];

	for (const char *p = t; *p != '\0';) {
		const char *lf = strchr(p, '\n');
		size_t len = lf != NULL ? (size_t)(lf - p) : strlen(p);
		bool good = false;

		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		if (irc)
			good = line[0] == ':' || line[0] == '@' ||
			       strncmp(line, "ERROR :", 7) == 0 || strncmp(line, "FAIL ", 5) == 0;
		else
			for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]) && !good; i++)
				good = strncmp(line, tags[i], strlen(tags[i])) == 0;
		if (good && !irc && strncmp(line, "OK ", 3) == 0) {
			char *end;

			good = (line[3] == '-' && line[4] == ' ') ||
			       (strtoull(line + 3, &end, 10) > 0 && strcmp(end, " sent") == 0);
		}
		if (!good)
			return line;
		p += len + (lf != NULL);
	}
	return NULL;
}

/* The last line of a transcript. */
static const char *
last_line(const char *t)
{
	size_t n = strlen(t);

	if (n == 0)
		return t;
	const char *p = t + n - 1;
	while (p > t && p[-1] != '\n')
		p--;
	return p;
}

static void
irc_login(struct fixture *fx, struct conn *cn, const char *name)
{
	connect_client(fx, cn, true);
	say(cn, "NICK %s\r\nUSER %s 0 * :%s\r\n", name, name, name);
	expect(cn, ":");
	while (strstr(next_line(cn), " 376 ") == NULL)
		;
}

/*
 * Logs in (allocations succeed), then makes allocation N of the thread
 * fail (or every one from N on) while request and a quit are handled;
 * the transcript must end with the last line, BYE or ERROR.  Returns how
 * many failed.
 */
static long
one_case(struct fixture *fx, bool irc, const char *request, enum fail_mode mode, long n, char *t,
	 size_t tlen)
{
	struct conn cn;
	char name[16];
	static int seq;

	snprintf(name, sizeof(name), "g%d", ++seq);
	if (irc)
		irc_login(fx, &cn, name);
	else
		native_login(fx, &cn, name);
	arm(mode, n);
	if (irc)
		say(&cn, "%s\r\nQUIT\r\n", request);
	else
		say(&cn, "%s\n/quit\n", request);
	transcript(&cn, t, tlen);
	long failed = atomic_load(&failures);
	arm(FAIL_OFF, 0);
	const char *last = irc ? "ERROR :" : "BYE ", *bad = bad_line(t, irc);
	if (strncmp(last_line(t), last, strlen(last)) != 0)
		fail_msg("%s with allocation %ld failing (%s): no %s before the close:\n%s",
			 request, n, mode == FAIL_ONE ? "alone" : "and the rest", last, t);
	if (bad != NULL)
		fail_msg("%s with allocation %ld failing (%s): a line cut short: \"%s\" in\n%s",
			 request, n, mode == FAIL_ONE ? "alone" : "and the rest", bad, t);
	return failed;
}

/*
 * The login with allocation N of the thread failing (or every one from N
 * on), from its first: it ends with the last line, or goes on as a guest
 * that then quits; a PING before NICK on IRC, natively a line too long
 * before the name, is answered (PONG, ERR 413) unless the session ended
 * out of memory.  Returns how many failed.
 */
static long
login_case(struct fixture *fx, bool irc, enum fail_mode mode, long n, char *t, size_t tlen)
{
	struct conn cn;
	char name[16];
	static char overlong[PROTO_DEFAULT_MAX_LINE + 2];
	static int seq;

	snprintf(name, sizeof(name), "h%d", ++seq);
	memset(overlong, 'x', sizeof(overlong) - 1);
	arm(mode, n);
	connect_client(fx, &cn, irc);
	if (irc) {
		say(&cn, "PING x\r\nNICK %s\r\nUSER %s 0 * :%s\r\nQUIT\r\n", name, name, name);
	} else {
		/* A line too long first: it is answered ERR 413, the dialogue going on. */
		assert_int_equal(write(cn.fd, overlong, sizeof(overlong) - 1),
				 (ssize_t)sizeof(overlong) - 1);
		say(&cn, "\n%s\n\n/quit\n", name);
	}
	transcript(&cn, t, tlen);
	long failed = atomic_load(&failures);
	arm(FAIL_OFF, 0);
	const char *last = irc ? "ERROR :" : "BYE ";
	if (strncmp(last_line(t), last, strlen(last)) != 0)
		fail_msg("login with allocation %ld failing (%s): no %s before the close:\n%s", n,
			 mode == FAIL_ONE ? "alone" : "and the rest", last, t);
	if (strstr(t, irc ? " PONG " : "ERR 413 ") == NULL &&
	    strstr(last_line(t), irc ? "error (out of memory)" : "BYE error out of memory") == NULL)
		fail_msg("login with allocation %ld failing (%s): %s unanswered:\n%s", n,
			 mode == FAIL_ONE ? "alone" : "and the rest",
			 irc ? "PING" : "a line too long", t);
	return failed;
}

static void
login_every_allocation(struct fixture *fx, bool irc)
{
	static char t[1 << 16];

	for (long n = 1;; n++) {
		long a = login_case(fx, irc, FAIL_ONE, n, t, sizeof(t));

		login_case(fx, irc, FAIL_FROM, n, t, sizeof(t));
		if (a == 0)
			break;
		assert_true(n < 500);
	}
}

static void
test_logins_end_with_last_line(void **state)
{
	login_every_allocation(*state, false);
	login_every_allocation(*state, true);
}

/*
 * A member of room side alone, which another client joins and leaves (it
 * quits) with allocation N of its thread failing (or every one from N
 * on): the member sees both the JOIN and the departure, or neither (the
 * join failed), or its session ends with its last line out of memory;
 * with one allocation failing, never one without the other in a session
 * that goes on.  Returns how many failed.
 */
static long
event_case(struct fixture *fx, bool irc, enum fail_mode mode, long n, char *t, size_t tlen)
{
	struct conn member, joiner;
	char name[16], joiner_name[16];
	static int seq;
	const char *l;

	snprintf(name, sizeof(name), "m%d", ++seq);
	snprintf(joiner_name, sizeof(joiner_name), "j%d", seq);
	if (irc) {
		irc_login(fx, &member, name);
		say(&member, "JOIN #side\r\nPART #lobby\r\nPING joined\r\n");
		expect(&member, ":chatd PONG ");
	} else {
		native_login(fx, &member, name);
		say(&member, "/join side\n/leave lobby\n/ping joined\n");
		expect(&member, "PONG joined");
	}
	native_login(fx, &joiner, joiner_name);
	arm_for(mode, n, atomic_load(&fx->srv.next_client_id));
	say(&joiner, "/join side\n/quit\n");
	transcript(&joiner, t, tlen);
	long failed = atomic_load(&failures);
	arm(FAIL_OFF, 0);
	if (strncmp(last_line(t), "BYE ", 4) != 0)
		fail_msg("/join with allocation %ld failing: no BYE before the close:\n%s", n, t);

	/* What the member saw of it: the JOIN, or the end of its session. */
	say(&member, irc ? "PING done\r\n" : "/ping done\n");
	bool joined = false, left = false, ended = false;
	char join[64], quit[64];
	snprintf(join, sizeof(join), irc ? ":%s!%s@chatd JOIN #side" : "JOIN side ", joiner_name,
		 joiner_name);
	snprintf(quit, sizeof(quit), irc ? ":%s!%s@chatd QUIT " : "PART side ", joiner_name,
		 joiner_name);
	while ((l = next_line(&member)) != NULL) {
		if (strncmp(l, join, strlen(join)) == 0 && strstr(l, joiner_name) != NULL)
			joined = true;
		if (strncmp(l, quit, strlen(quit)) == 0 && strstr(l, joiner_name) != NULL)
			left = true;
		if (strstr(l, irc ? "ERROR :Closing link: error (out of memory)"
				  : "BYE error out of memory") == l)
			ended = true;
		if (strstr(l, "PONG") != NULL && strstr(l, "done") != NULL)
			break;
	}
	if (!ended && left && !joined)
		fail_msg("%s member: the JOIN of %s (allocation %ld failing, %s) went missing",
			 irc ? "an IRC" : "a native", joiner_name, n,
			 mode == FAIL_ONE ? "alone" : "and the rest");
	if (!ended && joined && !left && mode == FAIL_ONE)
		fail_msg("%s member: the departure of %s (allocation %ld failing) went missing",
			 irc ? "an IRC" : "a native", joiner_name, n);
	if (ended)
		while (next_line(&member) != NULL)
			;
	else
		say(&member, irc ? "QUIT\r\n" : "/quit\n");
	while (next_line(&member) != NULL)
		;
	close(member.fd);
	return failed;
}

static void
test_members_miss_no_event(void **state)
{
	static char t[1 << 16];

	for (int irc = 0; irc < 2; irc++)
		for (long n = 1;; n++) {
			long a = event_case(*state, irc, FAIL_ONE, n, t, sizeof(t));

			event_case(*state, irc, FAIL_FROM, n, t, sizeof(t));
			if (a == 0)
				break;
			assert_true(n < 500);
		}
}

/*
 * A member of the lobby and a sender whose thread publishes its message
 * itself (history_sync_ms above 0) with allocation N of that thread
 * failing: the message is stored or refused before it is published, so
 * the sender gets OK, ERR 500 (not queued) or BYE error, never ERR 507
 * (not stored: the disk is fine); and the member sees the message or is
 * told out of memory.  Returns how many failed.
 */
static long
message_case(struct fixture *fx, enum fail_mode mode, long n, char *t, size_t tlen)
{
	struct conn member, sender;
	char name[16], sender_name[16], text[32], msg[64];
	static int seq;
	const char *l;

	snprintf(name, sizeof(name), "r%d", ++seq);
	snprintf(sender_name, sizeof(sender_name), "s%d", seq);
	snprintf(text, sizeof(text), "note %d", seq);
	native_login(fx, &member, name);
	native_login(fx, &sender, sender_name);
	expect(&member, "JOIN lobby ");
	arm_for(mode, n, atomic_load(&fx->srv.next_client_id));
	say(&sender, "%s\n/quit\n", text);
	transcript(&sender, t, tlen);
	long failed = atomic_load(&failures);
	arm(FAIL_OFF, 0);
	if (strncmp(last_line(t), "BYE ", 4) != 0 || strstr(t, "ERR 507") != NULL)
		fail_msg("a message with allocation %ld failing (%s): no BYE, or ERR 507:\n%s", n,
			 mode == FAIL_ONE ? "alone" : "and the rest", t);
	bool acked = strncmp(t, "OK ", 3) == 0, seen = false, ended = false;

	snprintf(msg, sizeof(msg), " ~%s %s", sender_name, text); /* guests */
	say(&member, "/ping done\n");
	while ((l = next_line(&member)) != NULL) {
		if (strncmp(l, "MSG lobby ", 10) == 0 && strstr(l, msg) != NULL)
			seen = true;
		if (strcmp(l, "BYE error out of memory") == 0)
			ended = true;
		if (strcmp(l, "PONG done") == 0)
			break;
	}
	if (acked && !seen && !ended)
		fail_msg("a message answered OK (allocation %ld failing, %s) went missing:\n%s", n,
			 mode == FAIL_ONE ? "alone" : "and the rest", t);
	if (!ended)
		say(&member, "/quit\n");
	while (next_line(&member) != NULL)
		;
	close(member.fd);
	return failed;
}

static void
test_messages_published_by_their_sender(void **state)
{
	static char t[1 << 16];

	for (long n = 1;; n++) {
		long a = message_case(*state, FAIL_ONE, n, t, sizeof(t));

		message_case(*state, FAIL_FROM, n, t, sizeof(t));
		if (a == 0)
			break;
		assert_true(n < 500);
	}
}

/* Request with each allocation its thread makes for it failing in turn. */
static void
every_allocation(struct fixture *fx, bool irc, const char *request)
{
	static char t[1 << 16];

	for (long n = 1;; n++) {
		long a = one_case(fx, irc, request, FAIL_ONE, n, t, sizeof(t));

		one_case(fx, irc, request, FAIL_FROM, n, t, sizeof(t));
		if (a == 0)
			break;
		assert_true(n < 500);
	}
}

static void
test_native_commands_end_with_bye(void **state)
{
	struct fixture *fx = *state;
	static const char *const requests[] = {
		"/ping x",
		"/who",
		"/rooms",
		"/join side",
		"/history lobby 3",
		"/help",
		"hello",
		/* a burst: its answers take more than the 16 places an output queue starts with */
		"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20",
		/* longer than the 256 bytes an input buffer starts with */
		"/ping "
		"0123456789012345678901234567890123456789012345678901234567890123456789012345678901"
		"2345678901234567890123456789012345678901234567890123456789012345678901234567890123"
		"4567890123456789012345678901234567890123456789012345678901234567890123456789012345"
		"6789012345678901234567890123456789012345678901234567890123456789",
	};

	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
		every_allocation(fx, false, requests[i]);
}

static void
test_irc_commands_end_with_error(void **state)
{
	struct fixture *fx = *state;
	static const char *const requests[] = {
		"PING x",
		"WHO #lobby",
		"LIST",
		"JOIN #side",
		"NAMES #lobby",
		"PRIVMSG #lobby :hello",
		"CHATHISTORY LATEST #lobby * 5",
		"TOPIC #lobby",
	};

	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
		every_allocation(fx, true, requests[i]);
}

/*
 * A sender whose thread keeps its own messages in the room's memory
 * (history_sync_ms above 0: it publishes them) with allocation N failing:
 * the room's memory, what replay and /history show, has no hole: every
 * message answered OK from its oldest on is there.
 */
static void
test_memory_keeps_no_hole(void **state)
{
	struct fixture *fx = *state;
	static char t[1 << 16];
	struct history_entry e[100];

	for (long n = 1;; n++) {
		struct conn cn;
		char name[32], room[32];

		snprintf(name, sizeof(name), "k%ld", n);
		/* A new room each time: its memory starts small, and must grow for the burst. */
		snprintf(room, sizeof(room), "kept%ld", n);
		native_login(fx, &cn, name);
		say(&cn, "/join %s\n", room);
		expect(&cn, "OK - joined");
		arm_for(FAIL_ONE, n, atomic_load(&fx->srv.next_client_id));
		say(&cn, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n"
			 "19\n20\n/quit\n");
		transcript(&cn, t, sizeof(t));
		long failed = atomic_load(&failures);
		arm(FAIL_OFF, 0);

		size_t got = history_recent(fx->srv.history, room, 100, UINT64_MAX, false, e);
		uint64_t oldest = got > 0 ? e[0].id : UINT64_MAX;
		for (const char *p = t; (p = strstr(p, "OK ")) != NULL; p += 3) {
			char *end;
			uint64_t id = strtoull(p + 3, &end, 10);
			bool kept = false;

			if (id == 0 || strncmp(end, " sent", 5) != 0 || id < oldest)
				continue;
			for (size_t i = 0; i < got && !kept; i++)
				kept = e[i].id == id;
			if (!kept)
				fail_msg("allocation %ld failing: message %" PRIu64
					 " (OK) is not in "
					 "%s's memory, which has %zu from %" PRIu64 " on",
					 n, id, room, got, oldest);
		}
		history_entries_release(e, got);
		if (failed == 0)
			break;
		assert_true(n < 500);
	}
}

/* Whether the log has a line containing text. */
static bool
logged(struct fixture *fx, const char *text)
{
	return file_contains(fx->path[1], text);
}

/*
 * Not out of memory: a guest whose login the shutdown overtakes (it waits
 * before room_login(): the slow-guest fault) hears BYE shutdown with its
 * own text, not that of the default end (out of memory).  Switches the
 * fault on for the rest of the process: the last test.
 */
static void
test_shutdown_during_login_says_shutdown(void **state)
{
	struct fixture *fx = *state;
	struct conn cn;
	char err[128];
	static char t[4096];

	assert_int_equal(setenv("CHATD_TEST_FAULT", "slow-guest", 1), 0);
	assert_int_equal(fault_init(err, sizeof(err)), 0);
	/*
	 * The guests of the tests before used up the burst of guest logins
	 * (lograte.h): a flush ends the window, so this one's line is logged.
	 */
	log_rate_flush(time_mono_ms());
	connect_client(fx, &cn, false);
	expect(&cn, "HELLO ");
	say(&cn, "late\n");
	expect(&cn, "PASS new ");
	say(&cn, "\n");
	int64_t deadline = time_mono_ms() + 5000;
	while (!logged(fx, "login late from 127.0.0.1 as a guest"))
		assert_true(time_mono_ms() < deadline);
	room_shutdown(fx->srv.hub);
	transcript(&cn, t, sizeof(t));
	assert_string_equal(t, "BYE shutdown server is shutting down\n");
}

/*
 * Loading the rooms file with allocation N of this thread failing: the
 * load fails (chatd does not start), or every room of the file is there.
 * Before, a room that could not be made ended the load with success, and
 * the next save wrote the file without the rooms left out, topics and all.
 */
static void
test_rooms_file_loads_whole_or_not_at_all(void **state)
{
	struct fixture *fx = *state;
	struct roomfile_room v[40] = { 0 };
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/rooms-load", fx->dir);
	for (size_t i = 0; i < 40; i++) {
		snprintf(v[i].name, sizeof(v[i].name), "room%02zu", i);
		v[i].op_made = true;
		v[i].created_ms = 1;
	}
	snprintf(v[39].topic, sizeof(v[39].topic), "the last one");
	v[39].topic_ms = 2;
	snprintf(v[39].topic_by, sizeof(v[39].topic_by), "*");
	assert_int_equal(roomfile_save(path, v, 40, err, sizeof(err)), 0);
	for (long n = 1;; n++) {
		struct hub *h = hub_new(wire_formats);
		struct room_info *info;
		size_t count;

		assert_non_null(h);
		arm(FAIL_ONE, n);
		on_client_thread = true;
		int rc = hub_load_rooms(h, path, err, sizeof(err));
		on_client_thread = false;
		long failed = atomic_load(&failures);
		arm(FAIL_OFF, 0);
		if (rc == 0) {
			assert_int_equal(rooms_snapshot_within(h, 0, &info, &count), 0);
			if (count != 41) /* the file's 40 and the default room (hub_new()) */
				fail_msg(
					"allocation %ld failing: the load succeeded with %zu rooms of 41",
					n, count);
			free(info);
		}
		hub_free(h);
		if (failed == 0)
			break;
		assert_true(n < 500);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_native_commands_end_with_bye, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irc_commands_end_with_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logins_end_with_last_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_members_miss_no_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rooms_file_loads_whole_or_not_at_all, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_messages_published_by_their_sender,
						setup_relaxed, teardown),
		cmocka_unit_test_setup_teardown(test_memory_keeps_no_hole, setup_relaxed, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_during_login_says_shutdown, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
