/*
 * irc_msg.h - one IRC line taken apart: IRCv3 message tags, source, command
 * and parameters (modern.ircdocs.horse, "Messages"; ircv3.net
 * message-tags), tag value escaping, and stripping of formatting codes.
 *
 * No state: any thread may call any of these at any time, each on its own
 * buffers.  irc_parse() works in place: the struct irc_msg it fills points
 * into the line it was given, which must outlive it.
 */
#ifndef CHATD_IRC_MSG_H
#define CHATD_IRC_MSG_H

#include <stdbool.h>
#include <stddef.h>

#define IRC_BODY_MAX 510 /* bytes of a line after its tags, without CRLF (RFC 1459 512 - 2) */
/* bytes of the tags part a client may send, excluding the leading '@' and the space after */
#define IRC_CLIENT_TAGS_MAX 4094
#define IRC_PARAMS_MAX 15
#define IRC_TAGS_N 32 /* tags kept; more is IRC_PARSE_BAD */

struct irc_tag {
	const char *key;
	const char *value; /* value unescaped in place; "" when absent or empty */
};

struct irc_msg {
	struct irc_tag tags[IRC_TAGS_N];
	size_t n_tags;                      /* distinct keys: a repeated key keeps its last value */
	const char *source;                 /* without ':'; NULL if none */
	const char *command;                /* as sent: compare with irc_cmd_is() */
	const char *params[IRC_PARAMS_MAX]; /* never NULL below n_params */
	size_t n_params;                    /* the last may be empty (a trailing ":") */
	bool trailing;                      /* the last parameter came after ':' */
};

enum irc_parse_result {
	IRC_PARSE_OK,
	IRC_PARSE_EMPTY,         /* nothing but spaces */
	IRC_PARSE_TAGS_TOO_LONG, /* tags part over IRC_CLIENT_TAGS_MAX bytes (417) */
	IRC_PARSE_TOO_LONG,      /* body over IRC_BODY_MAX bytes (417) */
	IRC_PARSE_TOO_MANY_TAGS, /* more than IRC_TAGS_N distinct tag keys (417) */
	IRC_PARSE_BAD,           /* malformed: a NUL, CR or LF inside, or no command (400) */
};

/*
 * Parses one line in place (NULs written into it).  line has no LF; one
 * trailing CR is ignored.  len excludes any NUL; line[len] must be
 * writable (a NUL goes there), as it is for a line from linebuf_next().
 *
 * IRC_PARSE_BAD: a NUL, CR (other than the last byte) or LF inside the
 * line; tags or a source but no command.  IRC_PARSE_TOO_MANY_TAGS: more
 * than IRC_TAGS_N distinct tag keys.  A tag whose key is invalid (not
 * [+][vendor/]name, vendor of letters, digits, '-' and '.', name of
 * letters, digits and '-') is dropped, the line kept (message-tags: a
 * bad key never costs the message).
 * Whitespace-only: IRC_PARSE_EMPTY.  The tags part is what follows a '@'
 * at the very start up to the first space; the body is everything after
 * that space (the whole line without tags).  Empty items in the tags part
 * ("a;;b", a final ';') are skipped.
 *
 * Several spaces between the parts and the parameters count as one;
 * spaces after the last middle parameter are no parameter.  The 15th
 * parameter takes the rest of the line, spaces included (a ':' before it
 * is dropped and sets trailing).
 *
 * On anything but IRC_PARSE_OK, *m is all zero (no tags, no command).
 */
enum irc_parse_result irc_parse(char *line, size_t len, struct irc_msg *m);

/* A short English phrase for r ("line too long", ...). */
const char *irc_parse_result_str(enum irc_parse_result r);

/* The value of the tag key (case-sensitive, "+" included); NULL if absent. */
const char *irc_tag_get(const struct irc_msg *m, const char *key);

/* Whether the command is upper, ASCII case-insensitive. */
bool irc_cmd_is(const struct irc_msg *m, const char *upper);

/*
 * Escapes a tag value (';' -> "\:", ' ' -> "\s", '\' -> "\\", CR -> "\r",
 * LF -> "\n") into dst (cap bytes incl NUL); returns the length the escaped
 * value needs (like snprintf).  When it does not fit, dst gets the longest
 * prefix of whole escapes that does (never a lone '\'); cap 0 writes nothing.
 */
size_t irc_tag_escape(char *dst, size_t cap, const char *src);

/*
 * Strips IRC formatting codes (\x02 bold, \x03 colour with up to two
 * digits [,two digits], \x04 hex colour with 6 hex digits [,6], \x0f reset,
 * \x11 monospace, \x16 reverse, \x1d italic, \x1e strikethrough, \x1f
 * underline) from s (len bytes) in place; returns the new length.  A ','
 * after a colour is kept unless a background colour follows it; \x04 with
 * fewer than 6 hex digits after it goes alone.  When the text got shorter,
 * a NUL follows it (so a NUL-terminated s stays one).
 */
size_t irc_strip_formatting(char *s, size_t len);

#endif
