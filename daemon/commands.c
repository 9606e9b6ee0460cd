/*
 * commands.c - the slash commands of a logged-in client.
 *
 * command_table, made from the list in chat_commands.h (which chat's Tab
 * completion is made from too), drives parsing, dispatch and /help: each
 * command NAME runs cmd_NAME() here.  Each command runs in
 * the client's own thread and answers with data lines and exactly one final
 * OK or ERR (docs/PROTOCOL.md "After login").  The request line was checked
 * by text_check() before it got here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_commands.h"
#include "client.h"
#include "commands.h"
#include "config.h"
#include "history.h"
#include "ident.h"
#include "log.h"
#include "lograte.h"
#include "password.h"
#include "resume.h"
#include "room.h"
#include "server.h"
#include "timefmt.h"
#include "utf8.h"
#include "wire.h"

#define HISTORY_DEFAULT 20

/*
 * Anyone can log in as a guest (guests = true) as often as they like: the
 * lines of its rooms made and topics set are bounded (lograte.h), an
 * account's logged each.
 */
static struct log_rate guest_rooms = LOG_RATE_INIT(LVL_INFO, "rooms made by guests");
static struct log_rate guest_topics = LOG_RATE_INIT(LVL_INFO, "topics set by guests");

/* Parses a whole decimal number in [1, max]; false otherwise. */
static bool
parse_count(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > max)
		return false;
	*out = v;
	return true;
}

/* ---- what a room operation came to, in words (room.h: enum room_result) ---- */

int
room_result_code(enum room_result r)
{
	switch (r) {
	case ROOM_DONE:
	case ROOM_ALREADY:
		return 0;
	case ROOM_BAD_NAME:
		return ERR_BAD_NAME;
	case ROOM_NO_SUCH:
	case ROOM_NOT_MEMBER:
	case ROOM_IN_NONE:
	case ROOM_GONE:
		return ERR_NOT_FOUND;
	case ROOM_CREATE_DENIED:
		return ERR_REGISTRATION_CLOSED;
	case ROOM_MAX_ROOMS:
	case ROOM_MAX_PER_USER:
		return ERR_ROOM_LIMIT;
	case ROOM_TOPIC_LONG:
		return ERR_BAD_REQUEST;
	case ROOM_NO_MEMORY:
		return ERR_INTERNAL;
	case ROOM_CLOSING:
		return ERR_UNAVAILABLE;
	}
	return ERR_INTERNAL;
}

const char *
room_result_text(enum room_result r, const char *room, char *buf, size_t len)
{
	const struct settings *s = settings_get();

	if (room != NULL && room[0] == '#')
		room++;
	switch (r) {
	case ROOM_DONE:
	case ROOM_ALREADY:
		snprintf(buf, len, "done");
		break;
	case ROOM_BAD_NAME:
		snprintf(buf, len,
			 "invalid room name: 1-%d of A-Z a-z 0-9 _ . -, the first a letter",
			 ROOM_NAME_MAX);
		break;
	case ROOM_NO_SUCH:
		snprintf(buf, len, "no such room: %s", room);
		break;
	case ROOM_NOT_MEMBER:
		snprintf(buf, len, "you are not in %s", room);
		break;
	case ROOM_GONE:
		snprintf(buf, len, "%s was deleted as you wrote: message not sent",
			 room != NULL ? room : "the room");
		break;
	case ROOM_IN_NONE:
		snprintf(buf, len, "you are in no room; /join one");
		break;
	case ROOM_CREATE_DENIED:
		snprintf(buf, len, "only %s may create rooms here",
			 s->room_create == ROOM_CREATE_ADMIN ? "an operator" : "registered users");
		break;
	case ROOM_MAX_ROOMS:
		snprintf(buf, len, "too many rooms (max_rooms %d)", s->max_rooms);
		break;
	case ROOM_MAX_PER_USER:
		snprintf(buf, len, "you are in too many rooms (max %d); /leave one",
			 s->max_rooms_per_user);
		break;
	case ROOM_TOPIC_LONG:
		snprintf(buf, len, "topic too long (max %zu bytes)", room_topic_limit());
		break;
	case ROOM_NO_MEMORY:
		snprintf(buf, len, "out of memory");
		break;
	case ROOM_CLOSING:
		snprintf(buf, len, "the server is shutting down");
		break;
	}
	return buf;
}

static enum command_result
done(int rc)
{
	return rc < 0 ? COMMAND_FATAL : COMMAND_DONE;
}

/* Cuts the first word off *args (at one space): the word, *args the rest ("" if none). */
static char *
next_word(char **args)
{
	char *word = *args, *sp = strchr(word, ' ');

	if (sp != NULL) {
		*sp = '\0';
		*args = sp + 1;
	} else
		*args = word + strlen(word);
	return word;
}

/*
 * Room names start with a letter (or '#'), counts with a digit: an
 * argument that looks like no count ("-3" does) is a room.
 */
static bool
is_count(const char *s)
{
	return (*s >= '0' && *s <= '9') || *s == '-' || *s == '+';
}

/* ERR for a room operation that did not succeed. */
static enum command_result
room_refused(struct client *c, enum room_result res, const char *room)
{
	char why[128];

	if (res == ROOM_NO_MEMORY)
		return COMMAND_FATAL;
	return done(client_reply_err(c, room_result_code(res), "%s",
				     room_result_text(res, room, why, sizeof(why))));
}

static enum command_result
cmd_who(struct client *c, char *args, char *text, size_t textlen)
{
	const char *room = *args && !is_count(args) ? next_word(&args) : NULL;
	uint64_t page = 1;
	struct line *l;
	enum room_result res;

	if (*args && !parse_count(args, UINT32_MAX, &page))
		return done(client_reply_err(c, ERR_BAD_REQUEST, "usage: /who [ROOM] [PAGE]"));
	if ((res = room_users_line(c->srv->hub, c, room, (unsigned)page, &l)) != ROOM_DONE)
		return room_refused(c, res, room);
	if (outq_push_line(&c->out, l) < 0)
		return COMMAND_FATAL;
	return done(client_reply(c, "OK - page %" PRIu64, page));
}

static enum command_result
cmd_join(struct client *c, char *args, char *text, size_t textlen)
{
	struct room_join_reply rep = { 0 };
	enum room_result res;

	if (*args == '\0' || strchr(args, ' ') != NULL)
		return done(client_reply_err(c, ERR_BAD_REQUEST, "usage: /join ROOM"));
	res = room_join(c->srv->hub, c, args, &rep);
	if (res == ROOM_ALREADY)
		return done(client_reply(c, "OK - already in %s", rep.room));
	if (res != ROOM_DONE) {
		room_join_reply_release(&rep);
		return room_refused(c, res, args);
	}
	if (rep.created && c->room.guest)
		log_rated(&guest_rooms, "~%s made room %s", c->name, rep.room);
	else if (rep.created)
		log_info("%s made room %s", c->name, rep.room);
	if (client_push_join(c, &rep, true) < 0)
		return COMMAND_FATAL;
	return done(client_reply(c, "OK - joined %s", rep.room));
}

static enum command_result
cmd_leave(struct client *c, char *args, char *text, size_t textlen)
{
	char spelled[ROOM_NAME_MAX + 1];
	const char *room = *args ? next_word(&args) : NULL;
	enum room_result res = room_part(c->srv->hub, c, room, args, spelled);

	if (res != ROOM_DONE)
		return room_refused(c, res, room);
	return done(client_reply(c, "OK - left %s", spelled));
}

static enum command_result
cmd_rooms(struct client *c, char *args, char *text, size_t textlen)
{
	uint64_t page = 1;
	size_t pages, rooms;
	struct line *l;

	if (*args && !parse_count(args, UINT32_MAX, &page))
		return done(client_reply_err(c, ERR_BAD_REQUEST, "usage: /rooms [PAGE]"));
	if ((l = room_list(c->srv->hub, c, (unsigned)page, &pages, &rooms)) == NULL)
		return COMMAND_FATAL;
	if (l->len > 0 && outq_push_line(&c->out, l) < 0)
		return COMMAND_FATAL;
	if (l->len == 0)
		line_unref(l);
	return done(client_reply(c, "OK - page %" PRIu64 " of %zu, %zu rooms", page, pages, rooms));
}

static enum command_result
cmd_switch(struct client *c, char *args, char *text, size_t textlen)
{
	char spelled[ROOM_NAME_MAX + 1];
	enum room_result res;

	if (*args == '\0' || strchr(args, ' ') != NULL)
		return done(client_reply_err(c, ERR_BAD_REQUEST, "usage: /switch ROOM"));
	if ((res = room_switch(c->srv->hub, c, args, spelled)) != ROOM_DONE)
		return room_refused(c, res, args);
	return done(client_reply(c, "OK - talking in %s", spelled));
}

/* A message to a room without switching to it; answered as a plain line. */
static enum command_result
cmd_say(struct client *c, char *args, char *text, size_t textlen)
{
	const char *room = next_word(&args);

	if (*room == '\0' || *args == '\0')
		return done(client_reply_err(c, ERR_BAD_REQUEST, "usage: /say ROOM TEXT"));
	return done(client_post(c, room, args, strlen(args)));
}

static enum command_result
cmd_topic(struct client *c, char *args, char *text, size_t textlen)
{
	char spelled[ROOM_NAME_MAX + 1];
	const char *room = *args ? next_word(&args) : NULL;
	enum room_result res;
	struct line *l;

	if (*args != '\0') {
		if ((res = room_topic_set(c->srv->hub, c, room, args, spelled, &l)) != ROOM_DONE)
			return room_refused(c, res, room);
		if (c->room.guest)
			log_rated(&guest_topics, "~%s set the topic of %s", c->name, spelled);
		else
			log_info("%s set the topic of %s", c->name, spelled);
		if (l == NULL || outq_push_line(&c->out, l) < 0)
			return COMMAND_FATAL;
		return done(client_reply(c, "OK - topic set"));
	}
	if ((res = room_topic_line(c->srv->hub, c, room, &l)) != ROOM_DONE)
		return room_refused(c, res, room);
	if (outq_push_line(&c->out, l) < 0)
		return COMMAND_FATAL;
	return done(client_reply(c, "OK - topic"));
}

static enum command_result
cmd_msg(struct client *c, char *args, char *text, size_t textlen)
{
	char *body = strchr(args, ' ');

	if (body == NULL || body[1] == '\0')
		return done(client_reply_err(c, ERR_BAD_REQUEST, "usage: /msg NAME TEXT"));
	*body++ = '\0';
	if (args[0] == '~') /* a guest's name as the server shows it (USERS, MSG...) */
		args++;
	if (args[0] == '\0') /* "/msg  TEXT", "/msg ~ TEXT": no name, not nobody online */
		return done(client_reply_err(c, ERR_BAD_REQUEST, "usage: /msg NAME TEXT"));
	struct wire_private pm = { .from = c->name,
				   .to = args,
				   .ms = time_now_ms(),
				   .text = body,
				   .guest = c->room.guest };
	char to[NAME_MAX_LEN + 2]; /* "~NAME" */
	int rc = room_send_private_to(c->srv->hub, &pm, to, sizeof(to));
	if (rc == -2)
		return COMMAND_FATAL;
	if (rc < 0)
		return done(client_reply_err(c, ERR_NOT_FOUND, "%s is not online", args));
	return done(client_reply(c, "OK - sent to %s", to)); /* as the recipient spells it */
}

/* HIST lines for n entries (released here), then "OK - n messages" ("1 message") and a note. */
static enum command_result
send_history(struct client *c, struct history_entry *e, size_t n, const char *note)
{
	size_t sent;
	int rc = client_push_history(c, e, n, &sent);

	history_entries_release(e, n);
	free(e);
	if (rc < 0)
		return COMMAND_FATAL;
	return done(client_reply(c, "OK - %zu message%s%s%s", sent, sent == 1 ? "" : "s", note,
				 sent < n ? " (the newest that fit in the send queue)" : ""));
}

/* "/history [ROOM] since ID": the messages after ID still held in memory. */
static enum command_result
history_since_id(struct client *c, const char *room, uint64_t first, const char *arg, size_t memory)
{
	uint64_t after = 0, first_held;
	char note[64] = "";
	struct history_entry *e;
	size_t n;

	if (strcmp(arg, "0") != 0 && !parse_count(arg, UINT64_MAX, &after))
		return done(
			client_reply_err(c, ERR_BAD_REQUEST, "usage: /history [ROOM] since ID"));
	if (after < first) /* the room was made again after the records before first */
		after = first;
	if ((e = calloc(memory, sizeof(*e))) == NULL)
		return COMMAND_FATAL;
	n = history_since(c->srv->history, room, after, memory, false, e, &first_held);
	if (after < UINT64_MAX && first_held > after + 1) /* nothing comes after the last id */
		snprintf(note, sizeof(note), ", complete from id %" PRIu64 " on", first_held);
	return send_history(c, e, n, note);
}

/* The word "since" (not "sincere"): /history's keyword. */
static bool
is_since(const char *args)
{
	return strncmp(args, "since", 5) == 0 && (args[5] == ' ' || args[5] == '\0');
}

/* "/history [ROOM] [N]" and "/history [ROOM] since ID"; a room called "since" needs its '#'. */
static enum command_result
cmd_history(struct client *c, char *args, char *text, size_t textlen)
{
	size_t memory = (size_t)settings_get()->history_memory;
	char spelled[ROOM_NAME_MAX + 1];
	const char *room = NULL;
	uint64_t n = HISTORY_DEFAULT, first;
	struct history_entry *e;
	enum room_result res;

	if (*args && !is_count(args) && !is_since(args))
		room = next_word(&args);
	if ((res = room_resolve(c->srv->hub, c, room, spelled, &first)) != ROOM_DONE)
		return room_refused(c, res, room);
	if (is_since(args))
		return history_since_id(c, spelled, first, args[5] ? args + 6 : "", memory);
	if (*args && !parse_count(args, UINT64_MAX, &n))
		return done(
			client_reply_err(c, ERR_BAD_REQUEST,
					 "usage: /history [ROOM] [N] | /history [ROOM] since ID"));
	if (n > memory)
		n = memory;
	if ((e = calloc(n, sizeof(*e))) == NULL)
		return COMMAND_FATAL;
	n = history_recent(c->srv->history, spelled, n, UINT64_MAX, false, e);
	return send_history(c, e, client_history_newer(e, n, first), "");
}

/* The session's account is not the name's any more (ident clear, then perhaps a new one). */
static int
account_gone(struct client *c, const char *what)
{
	return client_reply_err(
		c, ERR_REGISTRATION_CLOSED,
		"your account is no longer registered (deleted or cleared since you "
		"logged in): %s",
		what);
}

static enum command_result
cmd_passwd(struct client *c, char *args, char *text, size_t textlen)
{
	size_t len = strlen(args);
	enum ident_result r;

	/* A guest's name is no account: if someone registered it since, it is theirs. */
	if (c->room.guest) {
		explicit_bzero(args, len);
		return done(client_reply_err(c, ERR_REGISTRATION_CLOSED,
					     "a guest has no password to change"));
	}
	if (len == 0 || len > PASSWORD_MAX_LEN)
		return done(client_reply_err(c, ERR_BAD_REQUEST, "usage: /passwd NEW (1-%d bytes)",
					     PASSWORD_MAX_LEN));
	/* Only its own account: after ident clear the name may be someone else's by now. */
	r = ident_set_password(c->srv->ident, c->name, args, settings_get()->hash_cost, c->account);
	explicit_bzero(args, len);
	if (r == IDENT_UNKNOWN)
		return done(account_gone(c, "password not changed"));
	if (r != IDENT_OK) {
		log_error("password change for %s failed: %s", c->name, ident_result_str(r));
		return done(client_reply_err(c, ERR_INTERNAL, "password not changed: %s",
					     ident_result_str(r)));
	}
	resume_revoke(c->name); /* a new password ends every resume token of the name */
	log_notice("password changed for %s from %s", c->name, c->addr_str);
	return done(client_reply(c, "OK - password changed"));
}

/* A resume token for the next login (docs/PROTOCOL.md "Resume tokens"). */
static enum command_result
cmd_token(struct client *c, char *args, char *text, size_t textlen)
{
	char token[RESUME_TOKEN_HEX + 1], expiry[TIME_RFC3339_LEN + 1];
	int64_t ttl_ms = (int64_t)settings_get()->resume_token_ttl * 1000, until;
	int rc;

	if (*args)
		return done(client_reply_err(c, ERR_BAD_REQUEST, "usage: /token"));
	/* A token logs in to the account of the name: a guest has none (its name may be one's later). */
	if (c->room.guest)
		return done(client_reply_err(c, ERR_REGISTRATION_CLOSED,
					     "a guest has no account to log in to again"));
	if (ttl_ms == 0)
		return done(
			client_reply_err(c, ERR_REGISTRATION_CLOSED, "resume tokens are off here"));
	/*
	 * A token logs in to whoever holds the name: only while that is still
	 * this session's account (after ident clear it may be someone else's).
	 * Looked at again after the issue: a clear or registration after that
	 * revokes the token itself; one in between is caught there.
	 */
	if (ident_account(c->srv->ident, c->name) != c->account)
		return done(account_gone(c, "no token"));
	if (resume_issue(c->name, time_now_ms(), ttl_ms, token, &until) < 0)
		return done(client_reply_err(c, ERR_INTERNAL, "cannot issue a token now"));
	if (ident_account(c->srv->ident, c->name) != c->account) {
		explicit_bzero(token, sizeof(token));
		resume_revoke(c->name);
		return done(account_gone(c, "no token"));
	}
	time_format_ms(expiry, until);
	rc = client_reply(c, "OK - %s %s resume token", token, expiry);
	explicit_bzero(token, sizeof(token));
	return done(rc);
}

static enum command_result
cmd_ping(struct client *c, char *args, char *text, size_t textlen)
{
	if (client_reply(c, "PONG %s", args) < 0)
		return COMMAND_FATAL;
	return done(client_reply(c, "OK - pong"));
}

static enum command_result
cmd_quit(struct client *c, char *args, char *text, size_t textlen)
{
	const char *reason = *args ? args : part_reason_text(PART_QUIT);

	/*
	 * Everyone online sees the reason (PART, BYE): a long one is cut
	 * between characters, never inside one, so it stays valid UTF-8.
	 */
	snprintf(text, textlen, "%.*s", (int)text_fit(reason, strlen(reason), textlen - 1), reason);
	return COMMAND_QUIT;
}

static enum command_result
cmd_help(struct client *c, char *args, char *text, size_t textlen)
{
	int rc = client_reply(c, "HELP a line not starting with / goes to everyone in your "
				 "current room; start it with // to send a leading /; "
				 "a ROOM may be written #ROOM");

	for (size_t i = 0; i < command_count && rc == 0; i++)
		rc = client_reply(c, "HELP %-32s %s", command_table[i].usage,
				  command_table[i].help);
	if (rc < 0)
		return COMMAND_FATAL;
	return done(client_reply(c, "OK - help"));
}

#define COMMAND_ROW(name, usage, help) { #name, cmd_##name, usage, help },
const struct command command_table[] = { CHAT_COMMANDS(COMMAND_ROW) };
#undef COMMAND_ROW
const size_t command_count = sizeof(command_table) / sizeof(command_table[0]);

const struct command *
command_parse(char *line, char **args)
{
	char *name = line + 1;
	size_t len = strcspn(name, " ");

	*args = name[len] == ' ' ? name + len + 1 : name + len;
	for (size_t i = 0; i < command_count; i++)
		if (strlen(command_table[i].name) == len &&
		    strncmp(command_table[i].name, name, len) == 0)
			return &command_table[i];
	return NULL;
}

enum command_result
command_run(struct client *c, char *line, char *text, size_t textlen)
{
	char *args;
	const struct command *cmd = command_parse(line, &args);

	if (cmd == NULL) {
		int len = (int)strcspn(line, " ");
		return done(client_reply_err(c, ERR_BAD_REQUEST,
					     "unknown command %.*s; /help lists them", len, line));
	}
	return cmd->run(c, args, text, textlen);
}
