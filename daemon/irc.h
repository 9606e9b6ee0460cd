/*
 * irc.h - the IRC gateway: a front-end (client.h, struct frontend) that
 * serves IRC clients on the same core as the native protocol
 * (docs/IRC.md).  irc.c holds a connection's state and its replies,
 * irc_login.c the registration, irc_register.c account registration
 * (REGISTER), irc_caps.c the capabilities, irc_commands.c the command
 * table, irc_history.c history playback and CHATHISTORY.  Everything here
 * runs in the connection's own thread; the state (struct irc_conn,
 * client->proto) is that thread's alone.
 */
#ifndef CHATD_IRC_H
#define CHATD_IRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "irc_msg.h"
#include "names.h"

/* The longest line read: 8191 bytes of tags and 512 of message (IRCv3 message-tags). */
#define IRC_LINE_MAX (8191 + 512)

/* The capabilities chatd offers (irc_caps.c: one table, in this order). */
enum irc_cap {
	CAP_ACCOUNT_REGISTRATION,
	CAP_ACCOUNT_TAG,
	CAP_BATCH,
	CAP_CAP_NOTIFY,
	CAP_CHATHISTORY,
	CAP_ECHO_MESSAGE,
	CAP_EVENT_PLAYBACK,
	CAP_LABELED_RESPONSE,
	CAP_MESSAGE_TAGS,
	CAP_SASL,
	CAP_SERVER_TIME,
	CAP_N
};
#define CAP_BIT(cap) (1u << (cap))

/* A connection's state (client->proto). */
struct irc_conn {
	/* registration */
	char nick[NAME_MAX_LEN + 1]; /* the nick given (NICK); after login the account name */
	bool have_nick, have_user, registered;
	bool cap_negotiating; /* CAP LS or REQ before registration: wait for CAP END */
	unsigned cap_version; /* 302 after CAP LS 302 */
	unsigned caps;        /* CAP_BIT()s enabled */
	unsigned offered;     /* CAP_BIT()s offered as the client last heard (irc_caps_notify) */
	bool offered_known;   /* offered is set (CAP LS, or the first command) */
	char *pass;           /* PASS, until registration uses it (wiped) */
	char *sasl;           /* AUTHENTICATE data gathered so far (wiped) */
	size_t sasl_len;
	bool sasl_plain; /* AUTHENTICATE PLAIN accepted, data expected */
	bool logged_in;  /* to an account (SASL, PASS, REGISTER): c->name; never a guest */
	bool registered_now;
	bool invisible; /* user mode +i (MODE nick +i): shown by 221, hides no one (docs/IRC.md) */
	/* flood control: a token bucket */
	double tokens;
	int64_t refilled_ms;
	/* replies of the command being handled, labels and batches applied at irc_commit() */
	char *pending;
	size_t pending_len, pending_cap, pending_lines;
	bool reply_lost;   /* a reply could not be gathered (no memory): irc_commit() fails */
	char label[65];    /* the command's label tag, escaped ("" none) */
	bool label_passed; /* the label went with a message: its echo answers it, no ACK */
	unsigned batch_seq;
};

extern const struct frontend irc_frontend;

static inline struct irc_conn *
irc_conn(struct client *c)
{
	return c->proto;
}

/* The nick numerics are addressed to: the account once logged in, else the NICK given, or "*". */
const char *irc_target(struct client *c);

/*
 * A parameter the client sent, as a reply echoes it before its text
 * ("401 me NICK :No such nick/channel", "FAIL REGISTER CODE ACCOUNT :text"):
 * "*" when it cannot be one middle parameter (empty, starting with ':', or
 * with a space: a trailing parameter may be all three), else at most
 * IRC_ECHO_MAX bytes of it, cut between characters.  Longer than any name
 * or channel (so a cut one is no valid name), short enough that a reply
 * echoing two of them behind the longest server name and nick keeps its
 * text within 512 bytes.  out: IRC_ECHO_MAX + 1 bytes; returns out or "*".
 */
#define IRC_ECHO_MAX 64
const char *irc_echo(char out[IRC_ECHO_MAX + 1], const char *param);

/*
 * Replies, gathered until irc_commit(), which queues them with the
 * command's label (labeled-response).  Each is a line without CRLF.
 * irc_send: as formatted.  irc_num: ":SERVER NUM TARGET " + formatted.
 * irc_send_line: a line the core formatted (its CRLF is dropped).  -1
 * without memory; then irc_commit() fails too, whether or not the caller
 * looked: a reply is missing, so the session ends (ERROR, say_bye()).
 */
int irc_send(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int irc_num(struct client *c, const char *num, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int irc_send_line(struct client *c, const struct line *l);
int irc_commit(struct client *c);

/*
 * The reply to a line irc_parse() did not take (pr: neither OK nor EMPTY),
 * gathered like a command's: 417 for one too long or with too many tags,
 * 400 for a malformed one (a NUL, CR or LF inside it, or no command), so
 * no line goes unanswered (docs/IRC.md "Limits").  -1 without memory.
 */
int irc_unparsed(struct client *c, enum irc_parse_result pr);

/*
 * PONG to PING token: ":SERVER PONG SERVER :TOKEN" with the token whole, or,
 * when that would not fit in 512 bytes, 417 (a token cut short would match
 * no PING of the client's: its lag check would never end), and when the
 * token is not UTF-8, "FAIL PING INVALID_UTF8" (every line chatd sends is
 * UTF-8: 005 says UTF8ONLY; a token with its bad bytes replaced would
 * match no PING either).
 */
int irc_pong(struct client *c, const char *token);

/*
 * A numeric that lists names after fixed parameters (353 "= #room :a b",
 * 303 ":a b"), on as many lines as they take, none cut: irc_list_add()
 * sends the line first when the name would not fit on it, irc_list_end()
 * what is left (an empty list when empty_too and no line went yet).
 */
struct irc_list {
	struct client *c;
	const char *num, *params; /* params: before the ':' of the names ("= #dev ", "") */
	size_t room, len;         /* bytes the names may take on a line, and take */
	bool sent;
	char names[IRC_BODY_MAX + 1];
};
void irc_list_start(struct irc_list *l, struct client *c, const char *num, const char *params);
int irc_list_add(struct irc_list *l, const char *name);
int irc_list_end(struct irc_list *l, bool empty_too);

/* A new batch reference, unique on the connection. */
void irc_batch_ref(struct client *c, char out[16]);

bool irc_has(const struct irc_conn *ic, enum irc_cap cap);

/* irc_caps.c: CAP LS/LIST/REQ/END (any time); the line form c's capabilities call for. */
int irc_cap_command(struct client *c, const struct irc_msg *m);
const char *irc_cap_name(enum irc_cap cap);
void irc_caps_apply(struct client *c);
/*
 * A reload changed what CAP LS offers (draft/account-registration with
 * registration): CAP * NEW and DEL to a client with cap-notify.  Checked
 * at each wake-up of a session online (a reload wakes them all:
 * room_wake_all_within) and before each command: settings_get() is atomic,
 * and the control thread that reloads never waits for a client.  -1 no memory,
 * 1 something was said, else 0.
 */
int irc_caps_notify(struct client *c);
/* Each wake-up of a session online and before each command: irc_caps_notify(), sent. */
int irc_woken(struct client *c, struct session_state *st);

/* irc_login.c: the registration, until c->name is set (the frontend's login). */
int irc_login(struct client *c, bool *registered, struct session_state *st);
/*
 * plain_login refuses a password in clear from c here (auth_plain_refused()):
 * true, logged, with st->why and st->text set for the connection's end.
 */
bool irc_plain_refused(struct client *c, struct session_state *st);

/*
 * irc_register.c: REGISTER and VERIFY (draft/account-registration), before
 * registration (login: that login's auth) or after it (login NULL: only a
 * guest may register).  0 answered, 1 the connection ends (st->why and
 * st->text say why), -1 without memory.  REGISTER wipes its password.
 */
struct auth;
int irc_register(struct client *c, struct auth *login, struct session_state *st, struct irc_msg *m);
int irc_verify(struct client *c, const struct irc_msg *m);

/* irc_commands.c: one registered client's line; and the command table for docs and tests. */
int irc_request(struct client *c, struct session_state *st, char *line, size_t len);
bool irc_in_order(const char *line, size_t len);
struct irc_command {
	const char *name;
	int (*run)(struct client *c, struct session_state *st, struct irc_msg *m);
	unsigned min_params;
	const char *summary; /* docs/IRC.md's table */
};
extern const struct irc_command irc_commands[];
extern const size_t irc_n_commands;
/* The table's entry for m's command; NULL if it has none. */
const struct irc_command *irc_command_find(const struct irc_msg *m);
/*
 * The label tag of command m (labeled-response), kept for irc_commit() if
 * it is short and safe to send back; before registration too.
 */
void irc_take_label(struct client *c, const struct irc_msg *m);

/* irc_history.c: a room's history in c's form (at login and JOIN), and CHATHISTORY. */
int irc_replay(struct client *c, const char *room, uint64_t first, uint64_t last_id);
int irc_chathistory(struct client *c, struct session_state *st, struct irc_msg *m);
/* The most one CHATHISTORY request returns (005 CHATHISTORY=): history_memory, at most 1000. */
int irc_chathistory_max(void);
/* The welcome numerics (001-005, MOTD) and the default room's JOIN reply. */
int irc_welcome(struct client *c, bool registered, struct room_join_reply *rep);
/* The JOIN reply for one room: JOIN, topic, names, history. */
int irc_join_reply(struct client *c, struct room_join_reply *rep);
/* The 005 tokens and the MOTD, for the welcome and MOTD. */
int irc_isupport(struct client *c);
int irc_motd(struct client *c);

#endif
