/*
 * test_auth.c - the protocol-neutral login checks (daemon/auth.c): a
 * password for a known name, registration (open, closed, lost to a race,
 * an empty password; auth_register(), which never checks a password),
 * wrong passwords until login_attempts, the throttle's refusals, the
 * deadline, a dropped connection, resume tokens, bad input, and
 * plain_login's loopback rule.  A real identification file, throttle and
 * password gate; the client is one end of a socketpair, with no thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "config.h"
#include "ident.h"
#include "log.h"
#include "password.h"
#include "resume.h"
#include "room.h"
#include "server.h"
#include "test_addr.h"
#include "throttle.h"
#include "timefmt.h"
#include "unit_fixture.h"
#include "wire.h"

struct fixture {
	char dir[64];
	char ident[96], log[96], resume[96];
	struct server srv;
	struct client *c;
	int peer; /* the test's end of c's socket */
};

#define BASE_SETTINGS \
	"hash_cost = 1;\n" \
	"login_attempts = 2;\n" \
	"login_fail_delay_ms = 0;\n" \
	"login_timeout = 30;\n"

static void
set_address(struct client *c, const char *ip)
{
	c->addr = test_addr(ip);
	snprintf(c->addr_str, sizeof(c->addr_str), "%s", ip);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char err[256];
	int sv[2];

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_auth.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->ident, sizeof(fx->ident), "%s/ident", fx->dir);
	snprintf(fx->log, sizeof(fx->log), "%s/log", fx->dir);
	snprintf(fx->resume, sizeof(fx->resume), "%s/%s", fx->dir, RESUME_FILE);
	assert_int_equal(log_open(fx->log), 0);
	publish_settings(BASE_SETTINGS);
	throttle_reset();
	fx->srv.ident = ident_open(fx->ident, err, sizeof(err));
	assert_non_null(fx->srv.ident);
	assert_int_equal(ident_register(fx->srv.ident, "Alice", "right one", 1, NULL), IDENT_OK);
	fx->srv.hub = hub_new(wire_formats);
	assert_non_null(fx->srv.hub);
	fx->srv.tls_port = -1;

	struct client *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	c->fd = sv[0];
	fx->peer = sv[1];
	c->srv = &fx->srv;
	c->connected_ms = time_now_ms();
	atomic_init(&c->tid, 0);
	atomic_init(&c->wake_pending, false);
	atomic_init(&c->refs, 1);
	set_address(c, "127.0.0.1");
	fx->c = c;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char tmp[128];

	close(fx->c->fd);
	if (fx->peer >= 0)
		close(fx->peer);
	free(fx->c);
	hub_free(fx->srv.hub);
	ident_close(fx->srv.ident);
	resume_close();
	log_close();
	snprintf(tmp, sizeof(tmp), "%s.tmp", fx->ident);
	unlink(tmp);
	unlink(fx->ident);
	snprintf(tmp, sizeof(tmp), "%s.tmp", fx->resume);
	unlink(tmp);
	unlink(fx->resume);
	unlink(fx->log);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* Whether the log has a line containing text. */
static bool
logged(struct fixture *fx, const char *text)
{
	return file_contains(fx->log, text);
}

static enum auth_outcome
password(struct auth *a, const char *name, const char *pw, int64_t *wait)
{
	return auth_password(a, name, pw, strlen(pw), wait);
}

static void
test_right_password_logs_in_with_the_registered_spelling(void **state)
{
	struct fixture *fx = *state;
	struct auth a;
	int64_t wait = -1;

	auth_start(&a, fx->c);
	assert_int_equal(password(&a, "ALICE", "right one", &wait), AUTH_OK);
	assert_string_equal(fx->c->name, "Alice");
	assert_int_equal(wait, 0);
	assert_int_equal(a.failures, 0);
	assert_true(logged(fx, "login Alice from 127.0.0.1"));
}

static void
test_known_gives_the_spelling_and_password_holds_to_it(void **state)
{
	struct fixture *fx = *state;
	char canonical[NAME_MAX_LEN + 1];
	struct auth a;
	int64_t wait;

	auth_start(&a, fx->c);
	assert_true(auth_known(&a, "alice", canonical));
	assert_string_equal(canonical, "Alice");
	assert_false(auth_known(&a, "nobody", canonical));
	assert_string_equal(canonical, "Alice"); /* untouched for an unknown name */
	assert_true(auth_known(&a, "aLiCe", NULL));
	assert_int_equal(password(&a, "alice", "right one", &wait), AUTH_OK);
	assert_string_equal(fx->c->name, "Alice");
}

static void
test_wrong_passwords_until_the_attempts_run_out(void **state)
{
	struct fixture *fx = *state;
	struct auth a;
	int64_t wait;

	auth_start(&a, fx->c);
	assert_int_equal(password(&a, "alice", "wrong", &wait), AUTH_BAD_PASSWORD);
	assert_int_equal(a.failures, 1);
	assert_string_equal(fx->c->name, "Alice");
	assert_true(logged(fx, "login failed for Alice from 127.0.0.1; next try in 0 ms"));
	assert_int_equal(password(&a, "alice", "wrong again", &wait), AUTH_TOO_MANY);
	assert_int_equal(a.failures, 2);
}

static void
test_unknown_name_registers_when_open(void **state)
{
	struct fixture *fx = *state;
	char canonical[NAME_MAX_LEN + 1];
	struct auth a;
	int64_t wait;

	auth_start(&a, fx->c);
	assert_int_equal(password(&a, "Newcomer", "its password", &wait), AUTH_REGISTERED);
	assert_string_equal(fx->c->name, "Newcomer");
	assert_int_equal(ident_verify(fx->srv.ident, "newcomer", "its password", 1, canonical,
				      NULL),
			 IDENT_OK);
	assert_string_equal(canonical, "Newcomer");
	assert_true(logged(fx, "registered Newcomer from 127.0.0.1"));
}

static void
test_unknown_name_with_registration_closed(void **state)
{
	struct fixture *fx = *state;
	struct auth a;
	int64_t wait;

	publish_settings(BASE_SETTINGS "registration = false;\n");
	auth_start(&a, fx->c);
	assert_int_equal(password(&a, "newcomer", "its password", &wait), AUTH_CLOSED);
	assert_false(ident_lookup(fx->srv.ident, "newcomer", NULL));
	/* A known name still logs in. */
	assert_int_equal(password(&a, "alice", "right one", &wait), AUTH_OK);
}

/*
 * Registration closed by a reload after the name was looked up (the native
 * dialogue said PASS new): closed all the same, so that an operator who
 * closes it during a flood is not overrun by the dialogues under way.
 */
static void
test_registration_closed_after_the_name_was_looked_up(void **state)
{
	struct fixture *fx = *state;
	struct auth a;
	int64_t wait;

	auth_start(&a, fx->c);
	assert_false(auth_known(&a, "newcomer", NULL));
	publish_settings(BASE_SETTINGS "registration = false;\n");
	assert_int_equal(password(&a, "newcomer", "its password", &wait), AUTH_CLOSED);
	assert_false(ident_lookup(fx->srv.ident, "newcomer", NULL));
	assert_int_equal(a.failures, 0);
	/* Nor the other way round: closed when looked up, opened since, PASS guest said no. */
	publish_settings(BASE_SETTINGS "registration = false;\n");
	assert_false(auth_known(&a, "later", NULL));
	publish_settings(BASE_SETTINGS "registration = true;\n");
	assert_int_equal(password(&a, "later", "its password", &wait), AUTH_CLOSED);
}

static void
test_a_registration_race_is_taken_then_a_check(void **state)
{
	struct fixture *fx = *state;
	struct auth a;
	int64_t wait;

	auth_start(&a, fx->c);
	assert_false(auth_known(&a, "bob", NULL));
	assert_int_equal(ident_register(fx->srv.ident, "Bob", "bob's own", 1, NULL), IDENT_OK);
	assert_int_equal(password(&a, "bob", "mine", &wait), AUTH_TAKEN);
	assert_int_equal(a.failures, 0);
	assert_true(logged(fx, "bob was registered by someone else while 127.0.0.1 chose"));
	/* Looked up again: now it is Bob's password that is checked. */
	assert_int_equal(password(&a, "bob", "bob's own", &wait), AUTH_OK);
	assert_string_equal(fx->c->name, "Bob");
}

static void
test_bad_input_checks_and_counts_nothing(void **state)
{
	struct fixture *fx = *state;
	char long_pw[PASSWORD_MAX_LEN + 2];
	struct auth a;
	int64_t wait;

	memset(long_pw, 'x', sizeof(long_pw) - 1);
	long_pw[sizeof(long_pw) - 1] = '\0';
	auth_start(&a, fx->c);
	assert_int_equal(password(&a, "no spaces", "pw", &wait), AUTH_BAD_INPUT);
	assert_int_equal(password(&a, "", "pw", &wait), AUTH_BAD_INPUT);
	assert_int_equal(password(&a, "alice", "tab\there", &wait), AUTH_BAD_INPUT);
	assert_int_equal(password(&a, "alice", long_pw, &wait), AUTH_BAD_INPUT);
	assert_int_equal(auth_password(&a, "alice", "right one", 5, &wait), AUTH_BAD_INPUT);
	assert_int_equal(auth_token(&a, "alice", "not a token", &wait), AUTH_BAD_INPUT);
	assert_int_equal(a.failures, 0);
	assert_false(ident_lookup(fx->srv.ident, "no spaces", NULL));
}

/* auth_register(): a new name only, its rules in order, never a password check. */
static void
test_register_only_registers(void **state)
{
	struct fixture *fx = *state;
	char long_pw[PASSWORD_MAX_LEN + 2];
	struct auth a;

	memset(long_pw, 'x', sizeof(long_pw) - 1);
	long_pw[sizeof(long_pw) - 1] = '\0';
	auth_start(&a, fx->c);
	assert_int_equal(auth_register(&a, "no spaces", "pw", 2), AUTH_BAD_NAME);
	assert_int_equal(auth_register(&a, "", "pw", 2), AUTH_BAD_NAME);
	/* A known name is taken, whatever the password: nothing is checked or counted. */
	assert_int_equal(auth_register(&a, "ALICE", "right one", 9), AUTH_TAKEN);
	assert_int_equal(auth_register(&a, "alice", "wrong", 5), AUTH_TAKEN);
	assert_int_equal(a.failures, 0);
	assert_int_equal(auth_register(&a, "newcomer", "", 0), AUTH_WEAK_PASSWORD);
	assert_int_equal(auth_register(&a, "newcomer", "tab\there", 8), AUTH_BAD_INPUT);
	assert_int_equal(auth_register(&a, "newcomer", long_pw, strlen(long_pw)), AUTH_BAD_INPUT);
	assert_int_equal(auth_register(&a, "newcomer", "right one", 5), AUTH_BAD_INPUT);
	assert_false(ident_lookup(fx->srv.ident, "newcomer", NULL));
	assert_string_equal(fx->c->name, ""); /* refused before the hash: no name set */
	long_pw[PASSWORD_MAX_LEN] = '\0';
	assert_int_equal(auth_register(&a, "Newcomer", long_pw, PASSWORD_MAX_LEN), AUTH_REGISTERED);
	assert_string_equal(fx->c->name, "Newcomer");
	assert_int_equal(ident_verify(fx->srv.ident, "newcomer", long_pw, 1, NULL, NULL), IDENT_OK);
	assert_true(logged(fx, "registered Newcomer from 127.0.0.1"));
	assert_int_equal(auth_register(&a, "newcomer", "again", 5), AUTH_TAKEN);
	/* Registration closed: closed, even for a known name. */
	publish_settings(BASE_SETTINGS "registration = false;\n");
	assert_int_equal(auth_register(&a, "other", "its password", 12), AUTH_CLOSED);
	assert_int_equal(auth_register(&a, "alice", "its password", 12), AUTH_CLOSED);
	assert_false(ident_lookup(fx->srv.ident, "other", NULL));
}

/* An online connection passes c->name itself: registered, and its name left alone. */
static void
test_register_own_name_leaves_it_alone(void **state)
{
	struct fixture *fx = *state;
	struct auth a;

	snprintf(fx->c->name, sizeof(fx->c->name), "Visitor");
	auth_start(&a, fx->c);
	assert_int_equal(auth_register(&a, fx->c->name, "its password", 12), AUTH_REGISTERED);
	assert_string_equal(fx->c->name, "Visitor");
	assert_true(ident_lookup(fx->srv.ident, "visitor", NULL));
}

/* An empty password registers nothing through auth_password() either. */
static void
test_empty_password_registers_nothing(void **state)
{
	struct fixture *fx = *state;
	struct auth a;
	int64_t wait;

	auth_start(&a, fx->c);
	assert_int_equal(password(&a, "newcomer", "", &wait), AUTH_WEAK_PASSWORD);
	assert_false(ident_lookup(fx->srv.ident, "newcomer", NULL));
	assert_int_equal(a.failures, 0);
	/* For a known name it is a wrong password like any other. */
	assert_int_equal(password(&a, "alice", "", &wait), AUTH_BAD_PASSWORD);
}

/*
 * A delay that outlasts the login ends it (at the deadline, not after the
 * delay); the next try is refused unchecked until the delay is over.
 */
static void
test_delay_past_the_deadline_then_throttled(void **state)
{
	struct fixture *fx = *state;
	struct auth a, b;
	int64_t wait = -1;

	publish_settings("hash_cost = 1;\nlogin_fail_delay_ms = 5000;\n");
	auth_start(&a, fx->c);
	a.deadline = time_mono_ms() + 100;
	int64_t before = time_mono_ms();

	assert_int_equal(password(&a, "alice", "wrong", &wait), AUTH_TIMEOUT);
	assert_true(time_mono_ms() - before < 2000);
	assert_int_equal(a.failures, 1);
	auth_start(&b, fx->c);
	assert_int_equal(password(&b, "alice", "right one", &wait), AUTH_THROTTLED);
	assert_true(wait > 2000 && wait <= 5000);
	assert_int_equal(b.failures, 0);
	/* A token for the name is refused unchecked too. */
	wait = -1;
	assert_int_equal(auth_token(&b, "alice",
				    "0123456789abcdef0123456789abcdef"
				    "0123456789abcdef0123456789abcdef",
				    &wait),
			 AUTH_THROTTLED);
	assert_true(wait > 2000 && wait <= 5000);
}

/* Another check from the address runs: waited for until the deadline. */
static void
test_waits_for_another_check_until_the_deadline(void **state)
{
	struct fixture *fx = *state;
	struct throttle_ticket t;
	struct auth a;
	int64_t wait;

	assert_int_equal(throttle_begin(&t, &fx->c->addr, "someone", time_mono_ms(), &wait),
			 THROTTLE_GO);
	auth_start(&a, fx->c);
	a.deadline = time_mono_ms() + 100;
	assert_int_equal(password(&a, "alice", "right one", &wait), AUTH_TIMEOUT);
	assert_true(time_mono_ms() >= a.deadline);
	throttle_abandon(&t);
	auth_start(&a, fx->c);
	assert_int_equal(password(&a, "alice", "right one", &wait), AUTH_OK);
}

/* ... and a dropped connection stops the wait. */
static void
test_a_dropped_connection_gives_up_the_wait(void **state)
{
	struct fixture *fx = *state;
	struct throttle_ticket t;
	struct auth a;
	int64_t wait;

	assert_int_equal(throttle_begin(&t, &fx->c->addr, "someone", time_mono_ms(), &wait),
			 THROTTLE_GO);
	auth_start(&a, fx->c);
	shutdown(fx->c->fd, SHUT_RDWR);
	assert_int_equal(password(&a, "alice", "right one", &wait), AUTH_GONE);
	assert_true(time_mono_ms() < a.deadline);
	assert_true(logged(fx, "gave up checking the password for Alice from 127.0.0.1"));
	throttle_abandon(&t);
}

static void
test_resume_tokens(void **state)
{
	struct fixture *fx = *state;
	char token[RESUME_TOKEN_HEX + 1], err[256];
	int64_t expiry, wait;
	struct auth a;

	assert_int_equal(resume_open(fx->resume, time_now_ms(), err, sizeof(err)), 0);
	assert_int_equal(resume_issue("alice", time_now_ms(), 60000, token, &expiry), 0);
	auth_start(&a, fx->c);
	assert_int_equal(auth_token(&a, "ALICE", token, &wait), AUTH_OK);
	assert_string_equal(fx->c->name, "Alice");
	assert_true(logged(fx, "login Alice from 127.0.0.1 with a resume token"));

	/* A wrong one costs a failure, and its name is the one tried. */
	token[0] = token[0] == '0' ? '1' : '0';
	assert_int_equal(auth_token(&a, "ALICE", token, &wait), AUTH_BAD_PASSWORD);
	assert_string_equal(fx->c->name, "ALICE");
	assert_int_equal(a.failures, 1);
	assert_true(logged(fx, "resume token refused for ALICE from 127.0.0.1"));

	/* resume_token_ttl = 0 turns tokens off. */
	token[0] = token[0] == '0' ? '1' : '0';
	publish_settings(BASE_SETTINGS "resume_token_ttl = 0;\n");
	assert_int_equal(auth_token(&a, "alice", token, &wait), AUTH_TOO_MANY);
}

static void
test_plain_login_loopback_rule(void **state)
{
	struct fixture *fx = *state;
	struct client *c = fx->c;

	/* Default plain_login: loopback. */
	assert_false(auth_plain_refused(c, -1)); /* no TLS port: never */
	assert_false(auth_plain_refused(c, 0));
	assert_false(auth_plain_refused(c, 7443));
	set_address(c, "127.1.2.3");
	assert_false(auth_plain_refused(c, 7443));
	set_address(c, "::1");
	assert_false(auth_plain_refused(c, 7443));
	set_address(c, "::ffff:127.0.0.1");
	assert_false(auth_plain_refused(c, 7443));
	set_address(c, "192.0.2.1");
	assert_true(auth_plain_refused(c, 7443));
	set_address(c, "::ffff:192.0.2.1");
	assert_true(auth_plain_refused(c, 7443));
	set_address(c, "2001:db8::1");
	assert_true(auth_plain_refused(c, 7443));
	assert_false(auth_plain_refused(c, -1));
	c->is_tls = true;
	assert_false(auth_plain_refused(c, 7443));
	c->is_tls = false;
	publish_settings(BASE_SETTINGS "plain_login = \"allow\";\n");
	assert_false(auth_plain_refused(c, 7443));
	publish_settings(BASE_SETTINGS "plain_login = \"deny\";\n");
	set_address(c, "127.0.0.1");
	assert_true(auth_plain_refused(c, 7443));
	assert_false(auth_plain_refused(c, -1));
}

static void
test_outcome_names_are_distinct(void **state)
{
	for (int i = AUTH_OK; i <= AUTH_BAD_NAME; i++) {
		assert_string_not_equal(auth_outcome_str((enum auth_outcome)i), "?");
		for (int j = AUTH_OK; j < i; j++)
			assert_string_not_equal(auth_outcome_str((enum auth_outcome)i),
						auth_outcome_str((enum auth_outcome)j));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_right_password_logs_in_with_the_registered_spelling),
		T(test_known_gives_the_spelling_and_password_holds_to_it),
		T(test_wrong_passwords_until_the_attempts_run_out),
		T(test_unknown_name_registers_when_open),
		T(test_unknown_name_with_registration_closed),
		T(test_registration_closed_after_the_name_was_looked_up),
		T(test_a_registration_race_is_taken_then_a_check),
		T(test_bad_input_checks_and_counts_nothing),
		T(test_register_only_registers),
		T(test_register_own_name_leaves_it_alone),
		T(test_empty_password_registers_nothing),
		T(test_delay_past_the_deadline_then_throttled),
		T(test_waits_for_another_check_until_the_deadline),
		T(test_a_dropped_connection_gives_up_the_wait),
		T(test_resume_tokens),
		T(test_plain_login_loopback_rule),
		T(test_outcome_names_are_distinct),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
