/*
 * test_chat_login.c - chat's login exchange (client/login.c) against lines
 * a hostile server could send: a token reply cut right after the token
 * (nothing may be read past the line's end), and a WELCOME of another name
 * than the one sent.  One thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn.h"
#include "login.h"
#include "srvline.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/*
 * text copied so that its NUL is the last byte before a page that cannot
 * be read: a read past the end of the line is a SIGSEGV, not a quiet pass.
 */
static char *
at_page_end(const char *text, void **map, size_t *maplen)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = strlen(text) + 1;
	char *p;

	*maplen = 2 * (size_t)page;
	*map = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(*map != MAP_FAILED);
	assert_int_equal(mprotect((char *)*map + page, (size_t)page, PROT_NONE), 0);
	p = (char *)*map + page - len;
	memcpy(p, text, len);
	return p;
}

static void
test_a_token_reply_cut_after_the_token_is_no_token(void **state)
{
	static const char *const cut[] = {
		"OK - " TOKEN " ",
		"OK - " TOKEN " 2099-01-01",
		"OK - " TOKEN " 2099-01-01T00:00:00.000",
	};
	struct srv_line l;
	char token[65];
	int64_t expiry;
	void *map;
	size_t maplen;

	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		char *line = at_page_end(cut[i], &map, &maplen);

		assert_true(srv_parse(line, strlen(line), &l));
		assert_false(login_parse_token(&l, token, &expiry));
		munmap(map, maplen);
	}
	{
		char *line = at_page_end("OK - " TOKEN " 2099-01-01T00:00:00.000Z", &map, &maplen);

		assert_true(srv_parse(line, strlen(line), &l));
		assert_true(login_parse_token(&l, token, &expiry));
		assert_string_equal(token, TOKEN);
		munmap(map, maplen);
	}
}

/* Feeds text as one server line; the event. */
static enum login_event
feed(struct login *l, struct conn *c, const char *text)
{
	char buf[256];
	struct srv_line sl;

	snprintf(buf, sizeof(buf), "%s", text);
	assert_true(srv_parse(buf, strlen(buf), &sl));
	return login_feed(l, &sl, c);
}

/* A TCP connection on 127.0.0.1 (no warning about a password in clear): both ends. */
static void
loopback_pair(int sv[2])
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	sv[0] = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(sv[0], (struct sockaddr *)&sin, sizeof(sin)), 0);
	sv[1] = accept(lfd, NULL, NULL);
	assert_true(sv[1] >= 0);
	close(lfd);
}

/* A login of ann up to the WELCOME, on one end of a loopback connection. */
static void
up_to_welcome(struct login *l, struct conn *c, int sv[2])
{
	loopback_pair(sv);
	conn_init(c, NULL);
	c->fd = sv[0];
	login_start(l, "ann", "pw", false);
	assert_int_equal(feed(l, c, "HELLO 2 chatd/0.2.0 hi"), LOGIN_CONTINUE);
	assert_int_equal(feed(l, c, "PASS known ann password"), LOGIN_CONTINUE);
}

static void
test_the_welcome_must_name_who_logged_in(void **state)
{
	static const char *const others[] = {
		"WELCOME bob registered",
		"WELCOME ann\033]0;x\007 registered",
		"WELCOME annie registered",
	};
	struct login l;
	struct conn c;
	int sv[2];

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		up_to_welcome(&l, &c, sv);
		assert_int_equal(feed(&l, &c, others[i]), LOGIN_ERROR);
		assert_int_equal(l.exit_code, 5);
		assert_non_null(strstr(l.message, "welcomed another name than 'ann'"));
		assert_null(strchr(l.message, '\033'));
		conn_close(&c);
		close(sv[1]);
	}
	/* The registered spelling may differ in case. */
	up_to_welcome(&l, &c, sv);
	assert_int_equal(feed(&l, &c, "WELCOME Ann registered"), LOGIN_SHOW);
	assert_string_equal(l.user, "Ann");
	conn_close(&c);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_token_reply_cut_after_the_token_is_no_token),
		cmocka_unit_test(test_the_welcome_must_name_who_logged_in),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
