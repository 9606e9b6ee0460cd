/*
 * test_irc_msg.c - the IRC line parser (daemon/irc_msg.c): the ircdocs
 * parser-tests splitting vectors (msg-split.yaml) and more, the length
 * limits at their edges, NUL and CR, tag keys, tag value escaping both
 * ways, and formatting-code stripping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "irc_msg.h"

/* Parses a copy of the NUL-terminated in (into buf, which must hold it). */
static enum irc_parse_result
parse_str(char *buf, size_t cap, const char *in, struct irc_msg *m)
{
	size_t len = strlen(in);

	assert_true(len < cap);
	memcpy(buf, in, len + 1);
	return irc_parse(buf, len, m);
}

struct split_case {
	const char *in;
	const char *tags[6][2]; /* key, value; ends at a NULL key */
	const char *source;
	const char *verb;
	const char *params[IRC_PARAMS_MAX + 1]; /* ends at NULL */
	bool trailing;
};

/* clang-format off */
static const struct split_case split_cases[] = {
	/* ircdocs parser-tests, msg-split.yaml, in its order */
	{ "foo bar baz asdf", { { NULL } }, NULL, "foo", { "bar", "baz", "asdf" }, false },
	{ ":coolguy foo bar baz asdf", { { NULL } }, "coolguy", "foo", { "bar", "baz", "asdf" }, false },
	{ "foo bar baz :asdf quux", { { NULL } }, NULL, "foo", { "bar", "baz", "asdf quux" }, true },
	{ "foo bar baz :", { { NULL } }, NULL, "foo", { "bar", "baz", "" }, true },
	{ "foo bar baz ::asdf", { { NULL } }, NULL, "foo", { "bar", "baz", ":asdf" }, true },
	{ ":coolguy foo bar baz :asdf quux", { { NULL } }, "coolguy", "foo", { "bar", "baz", "asdf quux" }, true },
	{ ":coolguy foo bar baz :  asdf quux ", { { NULL } }, "coolguy", "foo", { "bar", "baz", "  asdf quux " }, true },
	{ ":coolguy PRIVMSG bar :lol :) ", { { NULL } }, "coolguy", "PRIVMSG", { "bar", "lol :) " }, true },
	{ ":coolguy foo bar baz :", { { NULL } }, "coolguy", "foo", { "bar", "baz", "" }, true },
	{ ":coolguy foo bar baz :  ", { { NULL } }, "coolguy", "foo", { "bar", "baz", "  " }, true },
	{ "@a=b;c=32;k;rt=ql7 foo", { { "a", "b" }, { "c", "32" }, { "k", "" }, { "rt", "ql7" } }, NULL, "foo", { NULL }, false },
	{ "@a=b\\\\and\\nk;c=72\\s45;d=gh\\:764 foo", { { "a", "b\\and\nk" }, { "c", "72 45" }, { "d", "gh;764" } }, NULL, "foo", { NULL }, false },
	{ "@c;h=;a=b :quux ab cd", { { "c", "" }, { "h", "" }, { "a", "b" } }, "quux", "ab", { "cd" }, false },
	{ ":src JOIN #chan", { { NULL } }, "src", "JOIN", { "#chan" }, false },
	{ ":src JOIN :#chan", { { NULL } }, "src", "JOIN", { "#chan" }, true },
	{ ":src AWAY", { { NULL } }, "src", "AWAY", { NULL }, false },
	{ ":src AWAY ", { { NULL } }, "src", "AWAY", { NULL }, false },
	{ ":cool\tguy foo bar baz", { { NULL } }, "cool\tguy", "foo", { "bar", "baz" }, false },
	{ ":coolguy!ag@net\x03" "5w\x03" "ork.admin PRIVMSG foo :bar baz", { { NULL } },
	  "coolguy!ag@net\x03" "5w\x03" "ork.admin", "PRIVMSG", { "foo", "bar baz" }, true },
	{ ":coolguy!~ag@n\x02" "et\x03" "05w\x0f" "ork.admin PRIVMSG foo :bar baz", { { NULL } },
	  "coolguy!~ag@n\x02" "et\x03" "05w\x0f" "ork.admin", "PRIVMSG", { "foo", "bar baz" }, true },
	{ "@tag1=value1;tag2;vendor1/tag3=value2;vendor2/tag4= :irc.example.com COMMAND param1 param2 :param3 param3",
	  { { "tag1", "value1" }, { "tag2", "" }, { "vendor1/tag3", "value2" }, { "vendor2/tag4", "" } },
	  "irc.example.com", "COMMAND", { "param1", "param2", "param3 param3" }, true },
	{ ":irc.example.com COMMAND param1 param2 :param3 param3", { { NULL } },
	  "irc.example.com", "COMMAND", { "param1", "param2", "param3 param3" }, true },
	{ "@tag1=value1;tag2;vendor1/tag3=value2;vendor2/tag4 COMMAND param1 param2 :param3 param3",
	  { { "tag1", "value1" }, { "tag2", "" }, { "vendor1/tag3", "value2" }, { "vendor2/tag4", "" } },
	  NULL, "COMMAND", { "param1", "param2", "param3 param3" }, true },
	{ "COMMAND", { { NULL } }, NULL, "COMMAND", { NULL }, false },
	{ "@foo=\\\\\\\\\\:\\\\s\\s\\r\\n COMMAND", { { "foo", "\\\\;\\s \r\n" } }, NULL, "COMMAND", { NULL }, false },
	{ ":gravel.mozilla.org 432  #momo :Erroneous Nickname: Illegal characters", { { NULL } },
	  "gravel.mozilla.org", "432", { "#momo", "Erroneous Nickname: Illegal characters" }, true },
	{ ":gravel.mozilla.org MODE #tckk +n ", { { NULL } }, "gravel.mozilla.org", "MODE", { "#tckk", "+n" }, false },
	{ ":services.esper.net MODE #foo-bar +o foobar  ", { { NULL } },
	  "services.esper.net", "MODE", { "#foo-bar", "+o", "foobar" }, false },
	{ "@tag1=value\\\\ntest COMMAND", { { "tag1", "value\\ntest" } }, NULL, "COMMAND", { NULL }, false },
	{ "@tag1=value\\1 COMMAND", { { "tag1", "value1" } }, NULL, "COMMAND", { NULL }, false },
	{ "@tag1=value1\\ COMMAND", { { "tag1", "value1" } }, NULL, "COMMAND", { NULL }, false },
	{ "@tag1=1;tag2=3;tag3=4;tag1=5 COMMAND", { { "tag1", "5" }, { "tag2", "3" }, { "tag3", "4" } },
	  NULL, "COMMAND", { NULL }, false },
	{ "@tag1=1;tag2=3;tag3=4;tag1=5;vendor/tag2=8 COMMAND",
	  { { "tag1", "5" }, { "tag2", "3" }, { "tag3", "4" }, { "vendor/tag2", "8" } }, NULL, "COMMAND", { NULL }, false },
	{ ":SomeOp MODE #channel :+i", { { NULL } }, "SomeOp", "MODE", { "#channel", "+i" }, true },
	{ ":SomeOp MODE #channel +oo SomeUser :AnotherUser", { { NULL } },
	  "SomeOp", "MODE", { "#channel", "+oo", "SomeUser", "AnotherUser" }, true },

	/* chatd's own: what clients send */
	{ "privmsg #dev :hello there", { { NULL } }, NULL, "privmsg", { "#dev", "hello there" }, true },
	{ "  PING   x  ", { { NULL } }, NULL, "PING", { "x" }, false },
	{ "PING :", { { NULL } }, NULL, "PING", { "" }, true },
	{ "@+draft/reply=abc;+typing=active TAGMSG #dev", { { "+draft/reply", "abc" }, { "+typing", "active" } },
	  NULL, "TAGMSG", { "#dev" }, false },
	{ "@label=x  :src   PRIVMSG   #a   :hi  there", { { "label", "x" } }, "src", "PRIVMSG", { "#a", "hi  there" }, true },
	{ "@ PING", { { NULL } }, NULL, "PING", { NULL }, false },
	{ "@a;;b; PING", { { "a", "" }, { "b", "" } }, NULL, "PING", { NULL }, false },
	{ "@a=x=y PING", { { "a", "x=y" } }, NULL, "PING", { NULL }, false },
	{ "@solanum.chat/oper=1;ex-ample.org/foo-bar PING", { { "solanum.chat/oper", "1" }, { "ex-ample.org/foo-bar", "" } },
	  NULL, "PING", { NULL }, false },
	{ ": PING x", { { NULL } }, "", "PING", { "x" }, false },
	{ "PRIVMSG #a :\x01" "ACTION waves\x01", { { NULL } }, NULL, "PRIVMSG", { "#a", "\x01" "ACTION waves\x01" }, true },
	{ "PRIVMSG #a :caf\xc3\xa9 \xe2\x9c\x93", { { NULL } }, NULL, "PRIVMSG", { "#a", "caf\xc3\xa9 \xe2\x9c\x93" }, true },
	{ "PING x\r", { { NULL } }, NULL, "PING", { "x" }, false },
	{ "PING :x \r", { { NULL } }, NULL, "PING", { "x " }, true },

	/* 15 parameters and beyond: the 15th takes the rest */
	{ "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", { { NULL } }, NULL, "CMD",
	  { "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15" }, false },
	{ "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", { { NULL } }, NULL, "CMD",
	  { "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15 16 17" }, false },
	{ "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :15 16", { { NULL } }, NULL, "CMD",
	  { "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15 16" }, true },
	{ "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 :16", { { NULL } }, NULL, "CMD",
	  { "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15 :16" }, false },
	{ "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14   15  16  ", { { NULL } }, NULL, "CMD",
	  { "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15  16  " }, false },
	{ "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 :14 15 16", { { NULL } }, NULL, "CMD",
	  { "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14 15 16" }, true },
};
/* clang-format on */

static void
assert_inside(const char *p, const char *buf, size_t cap)
{
	assert_non_null(p);
	assert_true(p >= buf && p < buf + cap);
}

static void
test_split_vectors(void **state)
{
	static char buf[1024];

	assert_true(sizeof(split_cases) / sizeof(split_cases[0]) >= 30);
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		const struct split_case *c = &split_cases[i];
		struct irc_msg m;
		size_t nt = 0, np = 0;

		print_message("case %zu: %s\n", i, c->in);
		assert_int_equal(parse_str(buf, sizeof(buf), c->in, &m), IRC_PARSE_OK);
		while (nt < 6 && c->tags[nt][0] != NULL)
			nt++;
		assert_int_equal(m.n_tags, nt);
		for (size_t t = 0; t < nt; t++) {
			assert_string_equal(m.tags[t].key, c->tags[t][0]);
			assert_string_equal(m.tags[t].value, c->tags[t][1]);
			assert_string_equal(irc_tag_get(&m, c->tags[t][0]), c->tags[t][1]);
			assert_inside(m.tags[t].key, buf, sizeof(buf));
			assert_inside(m.tags[t].value, buf, sizeof(buf));
		}
		if (c->source == NULL) {
			assert_null(m.source);
		} else {
			assert_inside(m.source, buf, sizeof(buf));
			assert_string_equal(m.source, c->source);
		}
		assert_string_equal(m.command, c->verb);
		assert_true(irc_cmd_is(&m, c->verb));
		while (c->params[np] != NULL)
			np++;
		assert_int_equal(m.n_params, np);
		for (size_t p = 0; p < np; p++) {
			assert_inside(m.params[p], buf, sizeof(buf));
			assert_string_equal(m.params[p], c->params[p]);
		}
		assert_int_equal(m.trailing, c->trailing);
	}
}

static void
expect_result(const char *in, size_t len, enum irc_parse_result want)
{
	char *buf = malloc(len + 1);
	struct irc_msg m;

	assert_non_null(buf);
	memcpy(buf, in, len);
	buf[len] = '\0';
	memset(&m, 0xa5, sizeof(m));
	assert_int_equal(irc_parse(buf, len, &m), want);
	if (want != IRC_PARSE_OK) {
		/* Nothing half-parsed is left behind. */
		assert_null(m.command);
		assert_null(m.source);
		assert_int_equal(m.n_tags, 0);
		assert_int_equal(m.n_params, 0);
	}
	free(buf);
}

#define EXPECT(lit, want) expect_result(lit, sizeof(lit) - 1, want)

static void
test_empty_lines(void **state)
{
	EXPECT("", IRC_PARSE_EMPTY);
	EXPECT(" ", IRC_PARSE_EMPTY);
	EXPECT("     ", IRC_PARSE_EMPTY);
	EXPECT("\r", IRC_PARSE_EMPTY);
	EXPECT("   \r", IRC_PARSE_EMPTY);
	/* A tab is no space (msg-split.yaml): it is a command. */
	EXPECT("\t", IRC_PARSE_OK);
}

static void
test_no_command(void **state)
{
	EXPECT("@a=b", IRC_PARSE_BAD);
	EXPECT("@a=b ", IRC_PARSE_BAD);
	EXPECT("@a=b    \r", IRC_PARSE_BAD);
	EXPECT("@", IRC_PARSE_BAD);
	EXPECT("@ ", IRC_PARSE_BAD);
	EXPECT(":src", IRC_PARSE_BAD);
	EXPECT(":src ", IRC_PARSE_BAD);
	EXPECT(":src    ", IRC_PARSE_BAD);
	EXPECT(":", IRC_PARSE_BAD);
	EXPECT("@a=b :src", IRC_PARSE_BAD);
	EXPECT("@a=b :src  ", IRC_PARSE_BAD);
}

static void
test_nul_cr_lf(void **state)
{
	EXPECT("\0", IRC_PARSE_BAD);
	EXPECT("PING\0", IRC_PARSE_BAD);
	EXPECT("PING x\0y", IRC_PARSE_BAD);
	EXPECT("PRIVMSG #a :hi\0there", IRC_PARSE_BAD);
	EXPECT("@a=b\0c PING", IRC_PARSE_BAD);
	EXPECT(" \0", IRC_PARSE_BAD);
	EXPECT("PING\0\r", IRC_PARSE_BAD);
	/* One trailing CR is ignored; any other CR, or an LF, is malformed. */
	EXPECT("PING\r", IRC_PARSE_OK);
	EXPECT("PING\r\r", IRC_PARSE_BAD);
	EXPECT("PING x\ry", IRC_PARSE_BAD);
	EXPECT("PRIVMSG #a :a\rb", IRC_PARSE_BAD);
	EXPECT("\rPING", IRC_PARSE_BAD);
	EXPECT("PING\n", IRC_PARSE_BAD);
	EXPECT("PING x\ny", IRC_PARSE_BAD);
	EXPECT("@a=\n PING", IRC_PARSE_BAD);

	/* len excludes the NUL; a stripped CR's place gets the NUL. */
	char buf[] = "PING x\r";
	struct irc_msg m;

	assert_int_equal(irc_parse(buf, strlen(buf), &m), IRC_PARSE_OK);
	assert_string_equal(m.params[0], "x");
	assert_int_equal(buf[6], '\0');
}

static void
test_tag_keys(void **state)
{
	EXPECT("@a PING", IRC_PARSE_OK);
	EXPECT("@A-9 PING", IRC_PARSE_OK);
	EXPECT("@+a PING", IRC_PARSE_OK);
	EXPECT("@example.com/a PING", IRC_PARSE_OK);
	EXPECT("@+example.com/a-b=1 PING", IRC_PARSE_OK);
	EXPECT("@draft/reply=1 PING", IRC_PARSE_OK);

	EXPECT("@=x PING", IRC_PARSE_OK);
	EXPECT("@a;=x PING", IRC_PARSE_OK);
	EXPECT("@+ PING", IRC_PARSE_OK);
	EXPECT("@+=x PING", IRC_PARSE_OK);
	EXPECT("@++a PING", IRC_PARSE_OK);
	EXPECT("@a+ PING", IRC_PARSE_OK);
	EXPECT("@a/ PING", IRC_PARSE_OK);
	EXPECT("@/a PING", IRC_PARSE_OK);
	EXPECT("@+/a PING", IRC_PARSE_OK);
	EXPECT("@a/b/c PING", IRC_PARSE_OK);
	EXPECT("@a.b PING", IRC_PARSE_OK);
	EXPECT("@example.com/a.b PING", IRC_PARSE_OK);
	EXPECT("@a_b PING", IRC_PARSE_OK);
	EXPECT("@a\tb PING", IRC_PARSE_OK);
	EXPECT("@caf\xc3\xa9=1 PING", IRC_PARSE_OK);
	EXPECT("@ok;b\x01=1 PING", IRC_PARSE_OK);

	/* An invalid key drops that tag, never the line. */
	char buf[64];
	struct irc_msg m;

	snprintf(buf, sizeof(buf), "@a.b=1;c=2;a_b PING");
	assert_int_equal(irc_parse(buf, strlen(buf), &m), IRC_PARSE_OK);
	assert_int_equal(m.n_tags, 1);
	assert_string_equal(m.tags[0].key, "c");
	assert_string_equal(m.command, "PING");
}

/* "@t0;t1;...;t{n-1} PING" in buf; a key repeated when dup. */
static size_t
many_tags(char *buf, size_t cap, int n, bool dup)
{
	size_t len = 0;

	buf[len++] = '@';
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%st%d", i ? ";" : "",
					dup && i == n - 1 ? 0 : i);
	len += (size_t)snprintf(buf + len, cap - len, " PING");
	assert_true(len < cap);
	return len;
}

static void
test_tag_count(void **state)
{
	char buf[512];
	struct irc_msg m;
	size_t len;

	len = many_tags(buf, sizeof(buf), IRC_TAGS_N, false);
	assert_int_equal(irc_parse(buf, len, &m), IRC_PARSE_OK);
	assert_int_equal(m.n_tags, IRC_TAGS_N);
	assert_non_null(irc_tag_get(&m, "t31"));

	len = many_tags(buf, sizeof(buf), IRC_TAGS_N + 1, false);
	assert_int_equal(irc_parse(buf, len, &m), IRC_PARSE_TOO_MANY_TAGS);
	assert_int_equal(m.n_tags, 0);

	/* 33 items, 32 distinct keys: kept. */
	len = many_tags(buf, sizeof(buf), IRC_TAGS_N + 1, true);
	assert_int_equal(irc_parse(buf, len, &m), IRC_PARSE_OK);
	assert_int_equal(m.n_tags, IRC_TAGS_N);
}

/* A line of tags_len bytes of tags ("a=xxx...", 0 for none) and body_len bytes of body. */
static char *
sized_line(size_t tags_len, size_t body_len, bool cr, size_t *len)
{
	char *buf = malloc(tags_len + body_len + 4), *p = buf;

	assert_non_null(buf);
	assert_true(body_len >= 13);
	if (tags_len > 0) {
		assert_true(tags_len >= 2);
		*p++ = '@';
		memcpy(p, "a=", 2);
		memset(p + 2, 'x', tags_len - 2);
		p += tags_len;
		*p++ = ' ';
	}
	memcpy(p, "PRIVMSG #a :", 12);
	memset(p + 12, 'y', body_len - 12);
	p += body_len;
	if (cr)
		*p++ = '\r';
	*p = '\0';
	*len = (size_t)(p - buf);
	return buf;
}

static enum irc_parse_result
parse_sized(size_t tags_len, size_t body_len, bool cr, struct irc_msg *m)
{
	size_t len;
	char *buf = sized_line(tags_len, body_len, cr, &len);
	enum irc_parse_result r = irc_parse(buf, len, m);

	if (r == IRC_PARSE_OK) {
		assert_int_equal(strlen(m->params[1]), body_len - 12);
		if (tags_len > 0)
			assert_int_equal(strlen(irc_tag_get(m, "a")), tags_len - 2);
	}
	free(buf);
	return r;
}

static void
test_length_limits(void **state)
{
	struct irc_msg m;

	/* The body: 510 bytes, CR not counted. */
	assert_int_equal(parse_sized(0, IRC_BODY_MAX, false, &m), IRC_PARSE_OK);
	assert_int_equal(parse_sized(0, IRC_BODY_MAX, true, &m), IRC_PARSE_OK);
	assert_int_equal(parse_sized(0, IRC_BODY_MAX + 1, false, &m), IRC_PARSE_TOO_LONG);
	assert_int_equal(parse_sized(0, IRC_BODY_MAX + 1, true, &m), IRC_PARSE_TOO_LONG);

	/* The tags: 4094 bytes between '@' and the space, apart from the body. */
	assert_int_equal(parse_sized(IRC_CLIENT_TAGS_MAX, IRC_BODY_MAX, true, &m), IRC_PARSE_OK);
	assert_int_equal(parse_sized(IRC_CLIENT_TAGS_MAX + 1, 20, false, &m),
			 IRC_PARSE_TAGS_TOO_LONG);
	assert_int_equal(parse_sized(IRC_CLIENT_TAGS_MAX, IRC_BODY_MAX + 1, false, &m),
			 IRC_PARSE_TOO_LONG);
	assert_int_equal(parse_sized(IRC_CLIENT_TAGS_MAX + 1, IRC_BODY_MAX + 1, false, &m),
			 IRC_PARSE_TAGS_TOO_LONG);
	assert_int_equal(parse_sized(2, IRC_BODY_MAX, false, &m), IRC_PARSE_OK);

	/* Tags too long with no space after them at all. */
	char *buf = malloc(IRC_CLIENT_TAGS_MAX + 3);

	assert_non_null(buf);
	buf[0] = '@';
	memset(buf + 1, 'k', IRC_CLIENT_TAGS_MAX + 1);
	buf[IRC_CLIENT_TAGS_MAX + 2] = '\0';
	assert_int_equal(irc_parse(buf, IRC_CLIENT_TAGS_MAX + 2, &m), IRC_PARSE_TAGS_TOO_LONG);
	free(buf);

	/* Spaces after the tags belong to the body. */
	char line[IRC_BODY_MAX + 16];

	memcpy(line, "@a  ", 4);
	memset(line + 4, 'Z', IRC_BODY_MAX);
	line[4 + IRC_BODY_MAX] = '\0';
	assert_int_equal(irc_parse(line, 4 + IRC_BODY_MAX, &m), IRC_PARSE_TOO_LONG);
	memcpy(line, "@a  ", 4);
	memset(line + 4, 'Z', IRC_BODY_MAX - 1);
	line[4 + IRC_BODY_MAX - 1] = '\0';
	assert_int_equal(irc_parse(line, 4 + IRC_BODY_MAX - 1, &m), IRC_PARSE_OK);
	assert_int_equal(strlen(m.command), IRC_BODY_MAX - 1);
}

static void
test_values_point_into_the_line(void **state)
{
	char buf[] = "@a;b=;c=1 :s CMD x :";
	struct irc_msg m;

	assert_int_equal(irc_parse(buf, strlen(buf), &m), IRC_PARSE_OK);
	assert_int_equal(m.n_tags, 3);
	for (size_t i = 0; i < m.n_tags; i++) {
		assert_inside(m.tags[i].key, buf, sizeof(buf));
		assert_inside(m.tags[i].value, buf, sizeof(buf));
	}
	assert_string_equal(m.tags[0].value, "");
	assert_string_equal(m.tags[1].value, "");
	assert_null(irc_tag_get(&m, "d"));
	assert_null(irc_tag_get(&m, "A"));
	assert_int_equal(m.n_params, 2);
	assert_inside(m.params[1], buf, sizeof(buf));
	assert_string_equal(m.params[1], "");
	assert_true(m.trailing);
}

static void
test_cmd_is(void **state)
{
	char buf[64];
	struct irc_msg m;

	assert_int_equal(parse_str(buf, sizeof(buf), "pRiVmSg #a :x", &m), IRC_PARSE_OK);
	assert_true(irc_cmd_is(&m, "PRIVMSG"));
	assert_true(irc_cmd_is(&m, "privmsg"));
	assert_false(irc_cmd_is(&m, "PRIVMS"));
	assert_false(irc_cmd_is(&m, "PRIVMSGS"));
	assert_false(irc_cmd_is(&m, "NOTICE"));
	assert_false(irc_cmd_is(&m, ""));
	assert_int_equal(parse_str(buf, sizeof(buf), "001 x", &m), IRC_PARSE_OK);
	assert_true(irc_cmd_is(&m, "001"));
	/* Only ASCII folds. */
	assert_int_equal(parse_str(buf, sizeof(buf), "\xc3\xa9 x", &m), IRC_PARSE_OK);
	assert_false(irc_cmd_is(&m, "\xc3\x89"));
	assert_int_equal(parse_str(buf, sizeof(buf), "", &m), IRC_PARSE_EMPTY);
	assert_false(irc_cmd_is(&m, "PING"));
}

static void
test_result_strings(void **state)
{
	enum irc_parse_result all[] = {
		IRC_PARSE_OK,       IRC_PARSE_EMPTY,         IRC_PARSE_TAGS_TOO_LONG,
		IRC_PARSE_TOO_LONG, IRC_PARSE_TOO_MANY_TAGS, IRC_PARSE_BAD
	};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		assert_true(strlen(irc_parse_result_str(all[i])) > 0);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(irc_parse_result_str(all[i]),
						irc_parse_result_str(all[j]));
	}
}

static void
test_escape_vectors(void **state)
{
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "a;b c\\d\re\nf", "a\\:b\\sc\\\\d\\re\\nf" },
		{ "\\s", "\\\\s" },
		{ ";;", "\\:\\:" },
		{ "\t\x01=caf\xc3\xa9", "\t\x01=caf\xc3\xa9" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(irc_tag_escape(out, sizeof(out), v[i].in), strlen(v[i].out));
		assert_string_equal(out, v[i].out);
	}
}

static void
test_escape_short_buffer(void **state)
{
	char out[8];

	/* Whole escapes only: never a lone '\' at the end. */
	memset(out, 'Q', sizeof(out));
	assert_int_equal(irc_tag_escape(out, 3, "a;b"), 4);
	assert_string_equal(out, "a");
	assert_int_equal(out[3], 'Q');
	assert_int_equal(irc_tag_escape(out, 4, "a;b"), 4);
	assert_string_equal(out, "a\\:");
	assert_int_equal(irc_tag_escape(out, 5, "a;b"), 4);
	assert_string_equal(out, "a\\:b");
	assert_int_equal(irc_tag_escape(out, 1, "abc"), 3);
	assert_string_equal(out, "");
	/* Nothing past a stop, even if a later character would fit. */
	assert_int_equal(irc_tag_escape(out, 3, "a b"), 4);
	assert_string_equal(out, "a");
	assert_int_equal(irc_tag_escape(NULL, 0, "a b"), 4);
}

/* Escapes value, parses "@k=ESCAPED PING" and checks that k reads back as value. */
static void
assert_round_trip(const char *value)
{
	size_t need = irc_tag_escape(NULL, 0, value);
	char *line = malloc(need + 16);
	struct irc_msg m;

	assert_non_null(line);
	memcpy(line, "@k=", 3);
	assert_int_equal(irc_tag_escape(line + 3, need + 1, value), need);
	memcpy(line + 3 + need, " PING", 6);
	assert_null(memchr(line, ';', need + 3));
	assert_int_equal(irc_parse(line, need + 8, &m), IRC_PARSE_OK);
	assert_int_equal(m.n_tags, 1);
	assert_string_equal(irc_tag_get(&m, "k"), value);
	free(line);
}

static void
test_escape_round_trip(void **state)
{
	static const char *values[] = {
		"",
		"x",
		"a;b c\\d\re\nf",
		"\\",
		"\\\\",
		"\\:",
		"\\s",
		"ends with \\",
		"; ;\r\n\\",
		"2026-12-02T10:00:00.000Z",
		"caf\xc3\xa9 \xe2\x9c\x93",
	};
	char every[256];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		assert_round_trip(values[i]);
	for (int c = 1; c < 256; c++)
		every[c - 1] = (char)c;
	every[255] = '\0';
	assert_round_trip(every);
}

static void
assert_stripped(const char *in, const char *want)
{
	char buf[128];
	size_t len = strlen(in);

	assert_true(len < sizeof(buf));
	memcpy(buf, in, len + 1);
	assert_int_equal(irc_strip_formatting(buf, len), strlen(want));
	assert_string_equal(buf, want);
}

static void
test_strip_formatting(void **state)
{
	assert_stripped("", "");
	assert_stripped("plain text", "plain text");
	assert_stripped("\x02"
			"bold\x02 and \x1d"
			"italic\x1d",
			"bold and italic");
	assert_stripped("a\x0f"
			"b\x11"
			"c\x16"
			"d\x1d"
			"e\x1e"
			"f\x1f"
			"g",
			"abcdefg");
	/* \x03: up to two digits, then ,bg of up to two digits. */
	assert_stripped("\x03"
			"4red",
			"red");
	assert_stripped("\x03"
			"04red",
			"red");
	assert_stripped("\x03"
			"123",
			"3");
	assert_stripped("\x03"
			"4,12x",
			"x");
	assert_stripped("\x03"
			"12,345",
			"5");
	assert_stripped("\x03"
			"4,x",
			",x");
	assert_stripped("\x03"
			",5",
			",5");
	assert_stripped("\x03"
			"x",
			"x");
	assert_stripped("end\x03", "end");
	assert_stripped("end\x03"
			"1,",
			"end,");
	assert_stripped("\x03"
			"3,04green on white\x03 plain",
			"green on white plain");
	/* \x04: exactly six hex digits, then ,six more. */
	assert_stripped("\x04"
			"FF00aaHi",
			"Hi");
	assert_stripped("\x04"
			"FF00aa,00ff00Hi",
			"Hi");
	assert_stripped("\x04"
			"FF00aa,00ff0",
			",00ff0");
	assert_stripped("\x04"
			"FF00a",
			"FF00a");
	assert_stripped("\x04"
			"ABCDEF1",
			"1");
	assert_stripped("\x04", "");
	/* Other control characters and UTF-8 stay. */
	assert_stripped("\x01"
			"ACTION\x01\t\x07",
			"\x01"
			"ACTION\x01\t\x07");
	assert_stripped("caf\xc3\xa9 \x02\xe2\x9c\x93", "caf\xc3\xa9 \xe2\x9c\x93");

	/* Only len bytes are looked at; nothing is written past them. */
	char buf[] = "ab\x02"
		     "cd\x02"
		     "ef";
	assert_int_equal(irc_strip_formatting(buf, 3), 2);
	assert_memory_equal(buf,
			    "ab\0cd\x02"
			    "ef",
			    sizeof(buf));
	char same[] = { 'x', 'y', 'Z' };
	assert_int_equal(irc_strip_formatting(same, 2), 2);
	assert_int_equal(same[2], 'Z');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_vectors),
		cmocka_unit_test(test_empty_lines),
		cmocka_unit_test(test_no_command),
		cmocka_unit_test(test_nul_cr_lf),
		cmocka_unit_test(test_tag_keys),
		cmocka_unit_test(test_tag_count),
		cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_values_point_into_the_line),
		cmocka_unit_test(test_cmd_is),
		cmocka_unit_test(test_result_strings),
		cmocka_unit_test(test_escape_vectors),
		cmocka_unit_test(test_escape_short_buffer),
		cmocka_unit_test(test_escape_round_trip),
		cmocka_unit_test(test_strip_formatting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
