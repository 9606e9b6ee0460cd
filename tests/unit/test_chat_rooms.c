/*
 * test_chat_rooms.c - chat's side of protocol version 2 (client/srvline.c,
 * rooms.c, complete.c, render.c): server lines split into their fields with
 * the room first, the rooms joined and the current one followed from the
 * replies as the server moves them, Tab completion of commands and rooms,
 * each room line shown with its room, and the words for a reply that
 * answers no request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "complete.h"
#include "render.h"
#include "rooms.h"
#include "srvline.h"
#include "wordset.h"

/* Parses text (copied: srv_parse() cuts in place) into l; false if it breaks the protocol. */
static bool
parse(const char *text, struct srv_line *l, char *buf, size_t size)
{
	snprintf(buf, size, "%s", text);
	return srv_parse(buf, strlen(buf), l);
}

static void
test_room_lines_have_the_room_first(void **state)
{
	char buf[256];
	struct srv_line l;

	assert_true(
		parse("MSG dev 42 2026-12-02T09:30:00.000Z alice hi there", &l, buf, sizeof(buf)));
	assert_int_equal(l.tag, SRV_MSG);
	assert_int_equal(l.nfields, 5);
	assert_string_equal(l.f[0], "dev");
	assert_string_equal(l.f[1], "42");
	assert_string_equal(l.f[3], "alice");
	assert_string_equal(srv_text(&l), "hi there");

	assert_true(
		parse("HIST lobby 7 2026-12-02T09:30:00.000Z bob old news", &l, buf, sizeof(buf)));
	assert_int_equal(l.tag, SRV_HIST);
	assert_string_equal(l.f[0], "lobby");
	assert_string_equal(l.f[4], "old news");

	assert_true(parse("USERS lobby 2 1 1 alice bob", &l, buf, sizeof(buf)));
	assert_string_equal(l.f[0], "lobby");
	assert_string_equal(l.f[4], "alice bob");
	/* Page 0: too many to list, the empty list's space left out. */
	assert_true(parse("USERS lobby 600 0 6", &l, buf, sizeof(buf)));
	assert_string_equal(l.f[3], "6");
	assert_string_equal(l.f[4], "");
}

static void
test_join_part_topic_room_notice(void **state)
{
	char buf[256];
	struct srv_line l;

	/* JOIN's text is usually empty, its space left out. */
	assert_true(parse("JOIN dev 2026-12-02T09:30:00.000Z carol", &l, buf, sizeof(buf)));
	assert_int_equal(l.tag, SRV_JOIN);
	assert_string_equal(l.f[0], "dev");
	assert_string_equal(l.f[2], "carol");
	assert_string_equal(l.f[3], "");

	assert_true(parse("PART dev 2026-12-02T09:30:00.000Z carol left going home", &l, buf,
			  sizeof(buf)));
	assert_int_equal(l.tag, SRV_PART);
	assert_string_equal(l.f[3], "left");
	assert_string_equal(l.f[4], "going home");

	assert_true(parse("TOPIC dev 2026-12-02T09:30:00.000Z alice release on friday", &l, buf,
			  sizeof(buf)));
	assert_int_equal(l.tag, SRV_TOPIC);
	assert_string_equal(l.f[2], "alice");
	assert_string_equal(l.f[3], "release on friday");
	assert_true(parse("TOPIC ops - - ", &l, buf, sizeof(buf)));
	assert_string_equal(l.f[1], "-");
	assert_string_equal(l.f[3], "");

	assert_true(parse("ROOM dev 3 release on friday", &l, buf, sizeof(buf)));
	assert_int_equal(l.tag, SRV_ROOM);
	assert_string_equal(l.f[1], "3");
	assert_string_equal(l.f[2], "release on friday");

	assert_true(
		parse("NOTICE * 2026-12-02T09:30:00.000Z restart at noon", &l, buf, sizeof(buf)));
	assert_int_equal(l.tag, SRV_NOTICE);
	assert_string_equal(l.f[0], "*");
	assert_string_equal(l.f[2], "restart at noon");

	/* PRIV is unchanged: no room. */
	assert_true(parse("PRIV 2026-12-02T09:30:00.000Z eve dan psst", &l, buf, sizeof(buf)));
	assert_string_equal(l.f[1], "eve");
	assert_string_equal(l.f[3], "psst");
}

static void
test_too_few_fields_break_the_protocol(void **state)
{
	char buf[256];
	struct srv_line l;

	/* A protocol 1 MSG has no room: one field short. */
	assert_false(parse("MSG 42 2026-12-02T09:30:00.000Z", &l, buf, sizeof(buf)));
	assert_false(parse("ROOM dev", &l, buf, sizeof(buf)));
	assert_false(parse("PART dev 2026-12-02T09:30:00.000Z", &l, buf, sizeof(buf)));
	assert_false(parse("WHAT dev", &l, buf, sizeof(buf)));
}

/*
 * The names kept for completion: each once ignoring case, in the spelling
 * and order first seen, WORDSET_MAX at most, found again however many are
 * kept (the hash index's probes).
 */
static void
test_the_names_kept_for_completion(void **state)
{
	struct wordset w = { 0 };
	char name[32];

	assert_int_equal(wordset_add(&w, "Alice", 5), 0);
	assert_int_equal(wordset_add(&w, "bob", 3), 0);
	assert_int_equal(wordset_add(&w, "ALICE", 5), 0);
	assert_int_equal(wordset_add(&w, "alic", 4), 0);
	assert_int_equal(wordset_add(&w, "", 0), 0);
	assert_int_equal(w.n, 3);
	assert_string_equal(w.words[0], "Alice");
	assert_string_equal(w.words[1], "bob");
	assert_string_equal(w.words[2], "alic");
	for (int i = 0; i < 2 * WORDSET_MAX; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		assert_int_equal(wordset_add(&w, name, strlen(name)), 0);
	}
	assert_int_equal(w.n, WORDSET_MAX);
	assert_string_equal(w.words[WORDSET_MAX - 1], "u4092");
	/* Full: every name kept is still found once, the rest not added. */
	wordset_free(&w);
	for (int i = 0; i < WORDSET_MAX - 1; i++) {
		snprintf(name, sizeof(name), "U%d", i);
		assert_int_equal(wordset_add(&w, name, strlen(name)), 0);
	}
	for (int i = 0; i < WORDSET_MAX - 1; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		assert_int_equal(wordset_add(&w, name, strlen(name)), 0);
	}
	assert_int_equal(w.n, WORDSET_MAX - 1);
	assert_string_equal(w.words[7], "U7");
	wordset_free(&w);
}

/* Parses len bytes (NUL bytes allowed) copied into buf. */
static bool
parse_bytes(const char *bytes, size_t len, struct srv_line *l, char *buf)
{
	memcpy(buf, bytes, len);
	buf[len] = '\0';
	return srv_parse(buf, len, l);
}

/*
 * chatd never sends a NUL.  One in the tag or a field would make chat read
 * another line than the one that came ("OK\0x" an OK, "lobby\0x" the room
 * lobby): it breaks the protocol.  The free text keeps what it holds.
 */
static void
test_a_nul_in_the_tag_or_a_field_breaks_the_protocol(void **state)
{
	static const char tag[] = "OK\0junk - fine";
	static const char code[] = "ERR 507\0x not stored";
	static const char room[] = "MSG lobby\0x 4 2026-12-02T09:30:00.000Z eve hi";
	static const char last[] = "USERS lobby 1 1\0";
	static const char text[] = "MSG lobby 4 2026-12-02T09:30:00.000Z eve h\0i";
	char buf[256];
	struct srv_line l;

	assert_false(parse_bytes(tag, sizeof(tag) - 1, &l, buf));
	assert_false(parse_bytes(code, sizeof(code) - 1, &l, buf));
	assert_false(parse_bytes(room, sizeof(room) - 1, &l, buf));
	assert_false(parse_bytes(last, sizeof(last) - 1, &l, buf));
	assert_true(parse_bytes(text, sizeof(text) - 1, &l, buf));
	assert_int_equal(l.text_len, 3);
}

static void
test_hello_version(void **state)
{
	assert_int_equal(srv_version_major("2"), 2);
	assert_int_equal(srv_version_major("2.1"), 2);
	assert_int_equal(srv_version_major("1"), 1);
	assert_int_equal(srv_version_major("10"), 10);
	assert_int_equal(srv_version_major("two"), -1);
	assert_int_equal(srv_version_major("2x"), -1);
	assert_int_equal(srv_version_major(""), -1);
}

/* An OK or ERR that answers no request: quoted, its escapes replaced, a long text cut. */
static void
test_an_unasked_reply_is_described_sanitized(void **state)
{
	char buf[1024], why[SRV_UNASKED_MAX];
	struct srv_line l;
	size_t n;

	assert_true(parse("ERR 507 not stored \x1b]0;x\x07", &l, buf, sizeof(buf)));
	srv_describe_unasked(&l, why, sizeof(why));
	assert_string_equal(why, "the server broke the protocol: \"ERR 507 not stored "
				 "\xef\xbf\xbd]0;x\xef\xbf\xbd\" answers no request");

	snprintf(buf, sizeof(buf), "OK 7 %0300d", 0);
	assert_true(srv_parse(buf, strlen(buf), &l));
	srv_describe_unasked(&l, why, sizeof(why));
	assert_non_null(strstr(why, "\"OK 7 0000"));
	assert_non_null(strstr(why, "000...\" answers no request"));
	assert_true(strlen(why) < 300); /* not the 300 digits */

	/* Every byte quoted replaced (3 bytes each): the words still end whole. */
	memcpy(buf, "ERR ", 4);
	memset(buf + 4, 0xff, 40);
	buf[44] = ' ';
	memset(buf + 45, 0xff, 300);
	n = 345;
	buf[n] = '\0';
	assert_true(srv_parse(buf, n, &l));
	srv_describe_unasked(&l, why, sizeof(why));
	assert_non_null(strstr(why, "\xef\xbf\xbd...\" answers no request"));
}

/* Feeds the server line text to r, as user self. */
static void
follow(struct rooms *r, const char *text)
{
	char buf[256];
	struct srv_line l;

	assert_true(parse(text, &l, buf, sizeof(buf)));
	rooms_follow(r, &l, "alice");
}

static void
assert_current(const struct rooms *r, const char *want)
{
	if (want == NULL)
		assert_null(rooms_current(r));
	else
		assert_string_equal(rooms_current(r), want);
}

static void
test_rooms_follow_the_replies(void **state)
{
	struct rooms r = { 0 };

	assert_int_equal(rooms_login(&r, "lobby"), 0);
	assert_current(&r, "lobby");
	follow(&r, "OK - joined Dev");
	follow(&r, "OK - joined ops");
	assert_current(&r, "ops");
	assert_int_equal(rooms_count(&r), 3);
	assert_string_equal(rooms_nth(&r, 1), "Dev");
	/* Rooms compare ignoring case; '#' is allowed when typed. */
	assert_true(rooms_in(&r, "#DEV"));
	follow(&r, "OK - talking in dev");
	assert_current(&r, "Dev");
	follow(&r, "OK - already in lobby");
	assert_current(&r, "lobby");
	/* Leaving another room keeps the current one. */
	follow(&r, "OK - left ops");
	assert_current(&r, "lobby");
	assert_false(rooms_in(&r, "ops"));
	/* Other OKs change nothing. */
	follow(&r, "OK - logged in as alice");
	follow(&r, "OK 17 sent");
	assert_int_equal(rooms_count(&r), 2);
	rooms_free(&r);
}

/* Bytes a hostile server calls a room never become one: the prompt shows the current room. */
static void
test_a_name_that_is_no_room_name_is_never_taken(void **state)
{
	struct rooms r = { 0 };

	assert_int_equal(rooms_login(&r, "lobby"), 0);
	follow(&r, "OK - joined r\033]0;pwned\007");
	follow(&r, "JOIN r\302\233x 2026-12-02T09:30:00.000Z alice joined");
	follow(&r, "ROOM \342\200\256evil 1 ");
	follow(&r, "OK - joined abcdefghijklmnopqrstuvwxyz0123456789");
	assert_current(&r, "lobby");
	assert_int_equal(rooms_count(&r), 1);
	assert_true(rooms_note_id(&r, "r\033[2J", 5));
	assert_int_equal(rooms_last_id(&r, "r\033[2J"), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.seen.n, 1); /* lobby */
	rooms_free(&r);
	assert_int_equal(rooms_login(&r, "r\033]0;x"), -1);
	assert_null(rooms_current(&r));
	rooms_free(&r);
}

/* Ever new rooms from the server: the record stays bounded, the rooms we are in stay. */
static void
test_ever_new_rooms_keep_the_record_bounded(void **state)
{
	struct rooms r = { 0 };
	char room[32];

	assert_int_equal(rooms_login(&r, "lobby"), 0);
	follow(&r, "OK - joined dev");
	assert_true(rooms_note_id(&r, "dev", 7));
	for (int i = 0; i < 3 * ROOMS_KEPT_MAX; i++) {
		snprintf(room, sizeof(room), "r%d", i);
		assert_true(rooms_note_id(&r, room, i + 1));
		assert_true(r.n <= ROOMS_KEPT_MAX);
	}
	assert_int_equal(r.n, ROOMS_KEPT_MAX);
	assert_int_equal(rooms_count(&r), 2);
	assert_int_equal(rooms_last_id(&r, "dev"), 7);
	assert_int_equal(rooms_last_id(&r, "r0"), 0); /* the oldest forgotten */
	snprintf(room, sizeof(room), "r%d", 3 * ROOMS_KEPT_MAX - 1);
	assert_false(rooms_note_id(&r, room, 1)); /* the newest kept */
	assert_current(&r, "dev");
	rooms_free(&r);
}

static void
test_leaving_the_current_room_falls_back_as_the_server_does(void **state)
{
	struct rooms r = { 0 };

	rooms_login(&r, "lobby");
	follow(&r, "OK - joined a");
	follow(&r, "OK - joined b");
	/* The default room while in it. */
	follow(&r, "OK - left b");
	assert_current(&r, "lobby");
	/* Else the first room joined that is left. */
	follow(&r, "OK - joined c");
	follow(&r, "OK - left lobby");
	assert_current(&r, "c");
	follow(&r, "OK - left c");
	assert_current(&r, "a");
	/* Put out by an operator: a PART of our own name. */
	follow(&r, "PART a 2026-12-02T09:30:00.000Z alice kicked spam");
	assert_current(&r, NULL);
	assert_int_equal(rooms_count(&r), 0);
	/* Put back in the default room (a JOIN of our own name). */
	follow(&r, "JOIN lobby 2026-12-02T09:30:00.000Z alice");
	assert_current(&r, "lobby");
	/* A room deleted by an operator: its members are put in the default room. */
	follow(&r, "OK - joined d");
	follow(&r, "OK - left lobby");
	follow(&r, "OK - joined e");
	follow(&r, "PART e 2026-12-02T09:30:00.000Z alice deleted");
	assert_current(&r, "lobby");
	assert_true(rooms_in(&r, "d") && rooms_in(&r, "lobby") && !rooms_in(&r, "e"));
	/* Someone else's PART changes nothing. */
	follow(&r, "PART lobby 2026-12-02T09:30:00.000Z bob quit");
	assert_current(&r, "lobby");
	rooms_free(&r);
}

static void
test_a_new_login_keeps_the_ids_shown(void **state)
{
	struct rooms r = { 0 };

	rooms_login(&r, "lobby");
	follow(&r, "OK - joined dev");
	assert_true(rooms_note_id(&r, "dev", 40));
	assert_true(rooms_note_id(&r, "lobby", 45));
	/* A replay: ids are one sequence, but each room is counted apart. */
	assert_false(rooms_note_id(&r, "dev", 40));
	assert_true(rooms_note_id(&r, "dev", 41));
	rooms_login(&r, "lobby");
	assert_int_equal(rooms_count(&r), 1);
	assert_false(rooms_in(&r, "dev"));
	assert_int_equal(rooms_last_id(&r, "dev"), 41);
	follow(&r, "OK - joined dev");
	assert_false(rooms_note_id(&r, "dev", 41));
	assert_string_equal(rooms_nth(&r, 1), "dev");
	/* The replay of a /join comes before its OK: its ids are kept too. */
	assert_true(rooms_note_id(&r, "ops", 30));
	assert_false(rooms_in(&r, "ops"));
	assert_int_equal(rooms_count(&r), 2);
	follow(&r, "OK - joined ops");
	assert_int_equal(rooms_last_id(&r, "ops"), 30);
	assert_string_equal(rooms_nth(&r, 2), "ops");
	rooms_free(&r);
}

/* The users seen, for /msg. */
static struct wordset people;

/* All the candidates for word at the end of line, joined by spaces. */
static void
assert_completes(const struct rooms *r, const char *line, const char *want)
{
	size_t start = strlen(line), pos = 0;
	char got[512] = "";
	char *c;

	while (start > 0 && line[start - 1] != ' ')
		start--;
	while ((c = complete_next(r, &people, complete_what(line, start), line + start, &pos)) !=
	       NULL) {
		if (got[0])
			strcat(got, " ");
		strcat(got, c);
		free(c);
	}
	assert_string_equal(got, want);
}

static void
test_completion(void **state)
{
	struct rooms r = { 0 };

	rooms_login(&r, "lobby");
	follow(&r, "OK - joined dev");
	follow(&r, "ROOM devops 2 ops people");
	follow(&r, "ROOM design 1");
	assert_completes(&r, "/jo", "/join");
	/* Every command of chatd's list (chat_commands.h), in /help's order. */
	assert_completes(&r, "/",
			 "/join /leave /rooms /switch /say /topic /who /msg /history /passwd "
			 "/token /ping /quit /help");
	assert_completes(&r, "/to", "/topic /token");
	/* /join: any room seen; /switch: the rooms joined. */
	assert_completes(&r, "/join de", "dev devops design");
	assert_completes(&r, "/switch de", "dev");
	assert_completes(&r, "/switch ", "lobby dev");
	assert_completes(&r, "/join #DEV", "#dev #devops");
	/* A word with '#' anywhere later; other words nothing (no file names). */
	assert_completes(&r, "see #des", "#design");
	assert_completes(&r, "see des", "");
	assert_completes(&r, "/msg de", "");
	assert_completes(&r, "/say dev hi #lo", "#lobby");
	/* /msg: the users seen, each once. */
	wordset_add(&people, "Dennis", 6);
	wordset_add(&people, "dennis", 6);
	wordset_add(&people, "deb", 3);
	wordset_add(&people, "eve", 3);
	assert_completes(&r, "/msg de", "Dennis deb");
	assert_completes(&r, "/msg DEN", "Dennis");
	assert_completes(&r, "/msg dennis de", "");
	wordset_free(&people);
	rooms_free(&r);
}

/* The display form of the server line text, colours off, in UTC. */
static void
assert_renders(const char *text, const char *want)
{
	struct render r = { .color = false, .self = "alice" };
	struct strbuf out = { 0 };
	char buf[256];
	struct srv_line l;

	assert_true(parse(text, &l, buf, sizeof(buf)));
	assert_int_equal(render_line(&r, &out, &l), 0);
	assert_non_null(out.buf);
	assert_string_equal(out.buf, want);
	strbuf_free(&out);
}

static void
test_lines_show_their_room(void **state)
{
	assert_renders("MSG dev 42 2026-12-02T09:30:00.000Z bob hi", "09:30 #dev <bob> hi\n");
	assert_renders("JOIN dev 2026-12-02T09:30:00.000Z bob", "09:30 #dev --> bob joined\n");
	assert_renders("PART dev 2026-12-02T09:30:00.000Z bob left", "09:30 #dev <-- bob left\n");
	assert_renders("PART dev 2026-12-02T09:30:00.000Z bob left lunch",
		       "09:30 #dev <-- bob left (lunch)\n");
	assert_renders("PART dev 2026-12-02T09:30:00.000Z bob quit bye",
		       "09:30 #dev <-- bob left (quit: bye)\n");
	assert_renders("NOTICE * 2026-12-02T09:30:00.000Z restart", "09:30 !! notice: restart\n");
	assert_renders("NOTICE dev 2026-12-02T09:30:00.000Z moved",
		       "09:30 #dev !! notice: moved\n");
	assert_renders("PRIV 2026-12-02T09:30:00.000Z eve alice psst", "09:30 *eve* psst\n");
	assert_renders("USERS dev 2 1 1 alice bob", "-- #dev: 2 online: alice bob\n");
	/* Page 0: too many to list on joining, or /who asked for a page past the last. */
	assert_renders("USERS big 600 0 6",
		       "-- #big: 600 online (not listed here; 6 pages: /who big PAGE)\n");
	assert_renders("USERS dev 2 0 1 ",
		       "-- #dev: 2 online (not listed here; 1 page: /who dev PAGE)\n");
	assert_renders("USERS dev 0 0 0 ", "-- #dev: nobody online\n");
	assert_renders("TOPIC dev - - ", "-- #dev has no topic\n");
	assert_renders("TOPIC dev 2026-12-02T09:30:00.000Z bob ship it",
		       "-- #dev topic: ship it (set by bob, 2026-12-02 09:30)\n");
	assert_renders("TOPIC dev 2026-12-02T09:30:00.000Z * rules",
		       "-- #dev topic: rules (set by an operator, 2026-12-02 09:30)\n");
	assert_renders("TOPIC dev 2026-12-02T09:30:00.000Z ~eve hi all",
		       "-- #dev topic: hi all (set by eve, a guest, 2026-12-02 09:30)\n");
	assert_renders("ROOM dev 3 ship it", "-- #dev, 3 members: ship it\n");
	assert_renders("ROOM ops 1", "-- #ops, 1 member\n");
}

static void
test_history_is_set_apart_by_room(void **state)
{
	struct render r = { .color = false, .self = "alice" };
	struct strbuf out = { 0 };
	const char *lines[] = {
		"HIST lobby 1 2026-12-02T09:30:00.000Z bob one",
		"HIST lobby 2 2026-12-02T09:31:00.000Z bob two",
		"HIST dev 3 2026-12-02T09:32:00.000Z eve three",
		"OK - joined dev",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		char buf[256];
		struct srv_line l;

		assert_true(parse(lines[i], &l, buf, sizeof(buf)));
		assert_int_equal(render_line(&r, &out, &l), 0);
	}
	assert_string_equal(out.buf, "-- history of #lobby\n"
				     "2026-12-02 09:30 #lobby <bob> one\n"
				     "2026-12-02 09:31 #lobby <bob> two\n"
				     "-- end of history\n"
				     "-- history of #dev\n"
				     "2026-12-02 09:32 #dev <eve> three\n"
				     "-- end of history\n"
				     "-- joined dev\n");
	strbuf_free(&out);
	assert_int_equal(render_own_message(&r, &out, "dev", "mine", false), 0);
	assert_non_null(strstr(out.buf, " #dev <alice> mine\n"));
	strbuf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_room_lines_have_the_room_first),
		cmocka_unit_test(test_join_part_topic_room_notice),
		cmocka_unit_test(test_too_few_fields_break_the_protocol),
		cmocka_unit_test(test_a_nul_in_the_tag_or_a_field_breaks_the_protocol),
		cmocka_unit_test(test_the_names_kept_for_completion),
		cmocka_unit_test(test_hello_version),
		cmocka_unit_test(test_an_unasked_reply_is_described_sanitized),
		cmocka_unit_test(test_rooms_follow_the_replies),
		cmocka_unit_test(test_a_name_that_is_no_room_name_is_never_taken),
		cmocka_unit_test(test_ever_new_rooms_keep_the_record_bounded),
		cmocka_unit_test(test_leaving_the_current_room_falls_back_as_the_server_does),
		cmocka_unit_test(test_a_new_login_keeps_the_ids_shown),
		cmocka_unit_test(test_completion),
		cmocka_unit_test(test_lines_show_their_room),
		cmocka_unit_test(test_history_is_set_apart_by_room),
	};

	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
