/*
 * test_wire_irc.c - the IRC gateway's line forms (daemon/wire_irc.c): a
 * stored message in each form (a guest's, and a guest's TAGMSG, with no
 * account tag), a long text cut into lines of at most 512 bytes, "/me" as
 * CTCP ACTION, events (PART, QUIT, KICK, NOTICE), private messages; and
 * through the hub, a room with a native and an IRC member over
 * socketpairs: each gets its own protocol's line, the IRC sender its echo
 * only with echo-message, labeled when the message carried a label.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "room_fixture.h"
#include "wire.h"

#define TS "2026-12-02T10:00:00.000Z"
#define LIMIT (1 << 20)

/* The peer's bytes, all of them, compared with want. */
static void
expect_lines(int peer, const char *want)
{
	size_t len;
	char *got = read_all(peer, &len);

	if (strcmp(got, want) != 0)
		fail_msg("got \"%s\", want \"%s\"", got, want);
	free(got);
}

/* A stored message "ID TIME ROOM msg NAME TEXT\n". */
static struct history_entry
stored(uint64_t id, uint64_t sender, const char *room, const char *name, const char *text)
{
	int time_off, room_off, name_off, text_off;
	struct line *l = line_printf("%" PRIu64 " %n" TS " %n%s msg %n%s %n%s\n", id, &time_off,
				     &room_off, room, &name_off, name, &text_off, text);
	struct history_entry e = { .id = id, .sender = sender, .kind = HK_MSG, .body = l };

	assert_non_null(l);
	e.time_off = (uint16_t)time_off;
	e.room_off = (uint16_t)room_off;
	e.room_len = (uint16_t)strlen(room);
	e.name_off = (uint16_t)name_off;
	e.name_len = (uint16_t)strlen(name);
	e.text_off = (uint32_t)text_off;
	e.text_len = (uint32_t)strlen(text);
	snprintf(e.room, sizeof(e.room), "%s", room);
	return e;
}

/* The bytes f makes of e, as a string to free. */
static char *
formatted(const struct wire_format *f, const struct history_entry *e)
{
	size_t len = f->msg_len(e);
	char *s = calloc(1, len + 1);
	uint32_t id_off, id_len;

	assert_non_null(s);
	f->msg_put(e, s, &id_off, &id_len);
	assert_int_equal(strlen(s), len);
	return s;
}

static void
test_a_message_in_each_form(void **state)
{
	struct history_entry e = stored(42, 1, "dev", "alice", "hello there");
	char *none = formatted(&wire_irc, &e), *time = formatted(&wire_irc_time, &e);
	char *tags = formatted(&wire_irc_tags, &e);

	(void)state;
	assert_string_equal(none, ":alice!alice@chatd PRIVMSG #dev :hello there\r\n");
	assert_string_equal(time, "@time=" TS " :alice!alice@chatd PRIVMSG #dev :hello there\r\n");
	assert_string_equal(tags, "@time=" TS ";msgid=42;account=alice :alice!alice@chatd PRIVMSG "
				  "#dev :hello there\r\n");
	free(none), free(time), free(tags);
	line_unref(e.body);
}

/*
 * A guest's message (the entry's guest, live or read back from the file)
 * and room TAGMSG carry no account tag in any form, and the guest's '~'
 * in the prefix (NICK!~NICK@chatd); a registered name's carry the tag.
 */
static void
test_no_account_tag_for_a_guest(void **state)
{
	struct history_entry e = stored(43, 1, "dev", "visitor", "hello there");
	struct wire_event tagmsg = { .kind = WE_TAGMSG,
				     .room = "dev",
				     .ms = 1,
				     .name = "visitor",
				     .text = "+typing=active" };
	const struct wire_format *forms[] = { &wire_irc_account, &wire_irc_time_account,
					      &wire_irc_tags };
	struct line *l;

	(void)state;
	e.guest = true;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		char *s = formatted(forms[i], &e);

		assert_null(strstr(s, "account="));
		assert_non_null(strstr(s, ":visitor!~visitor@chatd PRIVMSG #dev :hello there\r\n"));
		free(s);
	}
	line_unref(e.body);

	l = wire_irc_tags.event(&tagmsg);
	assert_string_equal(l->data,
			    "@time=1970-01-01T00:00:00.001Z;account=visitor;+typing=active "
			    ":visitor!visitor@chatd TAGMSG #dev\r\n");
	line_unref(l);
	tagmsg.guest = true;
	l = wire_irc_tags.event(&tagmsg);
	assert_string_equal(l->data, "@time=1970-01-01T00:00:00.001Z;+typing=active "
				     ":visitor!~visitor@chatd TAGMSG #dev\r\n");
	line_unref(l);
}

static void
test_me_is_a_ctcp_action(void **state)
{
	struct history_entry e = stored(7, 1, "dev", "bob", "/me waves");
	char *s = formatted(&wire_irc, &e);

	(void)state;
	assert_string_equal(s, ":bob!bob@chatd PRIVMSG #dev :\001ACTION waves\001\r\n");
	free(s);
	line_unref(e.body);
}

/* Every line of s ends in CR LF and has at most 512 bytes after its tags; the texts joined. */
static void
check_lines(const char *s, const char *head, char *joined, size_t cap)
{
	size_t n = 0;

	joined[0] = '\0';
	while (*s) {
		const char *end = strstr(s, "\r\n");
		const char *body = s[0] == '@' ? strchr(s, ' ') + 1 : s;

		assert_non_null(end);
		assert_true((size_t)(end + 2 - body) <= 512);
		assert_true(strncmp(body, head, strlen(head)) == 0);
		n += (size_t)snprintf(joined + n, cap - n, "%.*s", (int)(end - body - strlen(head)),
				      body + strlen(head));
		s = end + 2;
	}
}

static void
test_a_long_text_is_cut_into_lines_of_512_bytes(void **state)
{
	char text[4001], joined[8192];
	size_t n = 0;

	(void)state;
	for (int i = 0; n + 10 < sizeof(text); i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "w%04d ", i);
	text[n - 1] = '\0';
	struct history_entry e = stored(9, 1, "dev", "alice", text);
	char *tags = formatted(&wire_irc_tags, &e);

	check_lines(tags, ":alice!alice@chatd PRIVMSG #dev :", joined, sizeof(joined));
	assert_string_equal(joined, text);
	/* msgid on the first line only. */
	assert_non_null(strstr(tags, "msgid=9"));
	assert_null(strstr(strstr(tags, "msgid=9") + 1, "msgid="));
	free(tags);
	line_unref(e.body);

	/* Multi-byte characters are never cut in two. */
	n = 0;
	while (n + 3 < sizeof(text))
		n += (size_t)snprintf(text + n, sizeof(text) - n, "\xc3\xa9");
	e = stored(10, 1, "dev", "alice", text);
	tags = formatted(&wire_irc, &e);
	check_lines(tags, ":alice!alice@chatd PRIVMSG #dev :", joined, sizeof(joined));
	assert_string_equal(joined, text);
	free(tags);
	line_unref(e.body);

	/* A guest's prefix has a '~': its lines hold a byte less, and still fit. */
	const char *nick = "g0123456789012345678901234567890"; /* 32 bytes */
	char head[128];

	memset(text, 'x', 1000);
	text[1000] = '\0';
	e = stored(11, 1, "dev", nick, text);
	e.guest = true;
	tags = formatted(&wire_irc, &e);
	snprintf(head, sizeof(head), ":%s!~%s@chatd PRIVMSG #dev :", nick, nick);
	check_lines(tags, head, joined, sizeof(joined));
	assert_string_equal(joined, text);
	free(tags);
	line_unref(e.body);
	size_t fits = 510 - strlen(head) + 1; /* as an account's: one byte too many for a guest */

	text[fits] = '\0';
	assert_true(wire_irc_one_line(nick, false, "PRIVMSG", "#dev", text, fits));
	assert_false(wire_irc_one_line(nick, true, "PRIVMSG", "#dev", text, fits));
	assert_true(wire_irc_one_line(nick, true, "PRIVMSG", "#dev", text, fits - 1));
}

static void
test_events(void **state)
{
	struct wire_event part = { .kind = WE_PART,
				   .room = "dev",
				   .ms = 1,
				   .name = "bob",
				   .reason = "left",
				   .text = "bye" };
	struct wire_event quit = part, kick = part;
	struct wire_event notice = { .kind = WE_NOTICE, .ms = 1, .text = "maintenance at 5" };
	struct wire_private pm = { .from = "carol", .to = "alice", .ms = 1, .text = "/me hugs" };
	struct line *l;

	(void)state;
	quit.offline = true;
	quit.reason = "quit";
	kick.reason = "kicked";
	kick.text = "spam";
	l = wire_irc.event(&part);
	assert_string_equal(l->data, ":bob!bob@chatd PART #dev :bye\r\n");
	line_unref(l);
	l = wire_irc.event(&quit);
	assert_string_equal(l->data, ":bob!bob@chatd QUIT :bye\r\n");
	line_unref(l);
	l = wire_irc.event(&kick);
	assert_string_equal(l->data, ":chatd KICK #dev bob :spam\r\n");
	line_unref(l);
	l = wire_irc.event(&notice);
	assert_string_equal(l->data, ":chatd NOTICE * :maintenance at 5\r\n");
	line_unref(l);
	l = wire_irc.priv(&pm);
	assert_string_equal(l->data, ":carol!carol@chatd PRIVMSG alice :\001ACTION hugs\001\r\n");
	line_unref(l);
	l = wire_line.priv(&pm);
	assert_string_equal(l->data, "PRIV 1970-01-01T00:00:00.001Z carol alice /me hugs\n");
	line_unref(l);
}

/*
 * Through the hub: alice (native), bob (IRC, every tag) in the lobby; bob
 * sends, then alice.  alice gets MSG lines and OK for her own; bob gets
 * PRIVMSG for alice's, and for his own nothing until echo-message is on,
 * then his echo, labeled when his message carried a label.
 */
static void
test_a_room_of_two_protocols(void **state)
{
	struct hub *h = hub_new(wire_formats);
	int pa, pb;
	struct client *a = member_login(h, "alice", 1, &pa);
	struct client *b = member_login(h, "bob", 2, &pb);
	struct history_entry e[5];

	(void)state;
	room_set_form(h, b, WIRE_IRC_TAGS, false);
	collect_all(h, a, LIMIT), collect_all(h, b, LIMIT);
	drain(pa), drain(pb);
	assert_true(room_sleep(h, a, true));
	assert_true(room_sleep(h, b, true));
	e[0] = stored(1, 2, "lobby", "bob", "from irc");
	e[1] = stored(2, 1, "lobby", "alice", "from native");
	a->unacked = 1, b->unacked = 1;
	room_publish_history(h, e, 2);
	expect_lines(pa, "MSG lobby 1 " TS " bob from irc\nOK 2 sent\n");
	expect_lines(pb, "@time=" TS ";msgid=2;account=alice :alice!alice@chatd PRIVMSG #lobby "
			 ":from native\r\n");
	assert_int_equal(b->unacked, 0);

	room_wake_up(h, b);
	room_set_form(h, b, WIRE_IRC, true);
	assert_true(room_sleep(h, b, true));
	e[2] = stored(3, 2, "lobby", "bob", "echoed");
	e[3] = stored(4, 2, "lobby", "bob", "labeled");
	e[3].live.label = line_printf("@label=x1");
	b->unacked = 2;
	room_publish_history(h, e + 2, 2);
	expect_lines(pb, ":bob!bob@chatd PRIVMSG #lobby :echoed\r\n"
			 "@label=x1 :bob!bob@chatd PRIVMSG #lobby :labeled\r\n");
	assert_int_equal(b->unacked, 0);

	/* A form with tags: the label joins them. */
	room_wake_up(h, b);
	room_set_form(h, b, WIRE_IRC_TIME, true);
	assert_true(room_sleep(h, b, true));
	e[4] = stored(5, 2, "lobby", "bob", "tagged");
	e[4].live.label = line_printf("@label=x2");
	b->unacked = 1;
	room_publish_history(h, e + 4, 1);
	expect_lines(pb, "@label=x2;time=" TS " :bob!bob@chatd PRIVMSG #lobby :tagged\r\n");
	for (int i = 0; i < 5; i++) {
		line_unref(e[i].body);
		line_unref(e[i].live.label);
	}
	member_free(h, a, pa);
	member_free(h, b, pb);
	hub_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_message_in_each_form),
		cmocka_unit_test(test_no_account_tag_for_a_guest),
		cmocka_unit_test(test_me_is_a_ctcp_action),
		cmocka_unit_test(test_a_long_text_is_cut_into_lines_of_512_bytes),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_a_room_of_two_protocols),
	};

	publish_send_queue_limit(1 << 20);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
