/*
 * srvline.h - the lines chatd sends, split into their fields
 * (docs/PROTOCOL.md, "Server lines"), protocol version 2: USERS, HIST, MSG,
 * JOIN, PART, TOPIC and ROOM carry the room as their first field, NOTICE
 * its target (a room, or "*" for the whole server).
 */
#ifndef CHAT_SRVLINE_H
#define CHAT_SRVLINE_H

#include <stdbool.h>
#include <stddef.h>

enum srv_tag {
	SRV_HELLO,
	SRV_PASS,
	SRV_WELCOME,
	SRV_USERS,
	SRV_HIST,
	SRV_MSG,
	SRV_PRIV,
	SRV_JOIN,
	SRV_PART,
	SRV_NOTICE,
	SRV_TOPIC,
	SRV_ROOM,
	SRV_PONG,
	SRV_HELP,
	SRV_OK,
	SRV_ERR,
	SRV_BYE,
};

#define SRV_MAX_FIELDS 5

struct srv_line {
	enum srv_tag tag;
	size_t nfields;
	char *f[SRV_MAX_FIELDS]; /* NUL-terminated; the last is the free text, maybe "" */
	size_t text_len;         /* length of the free text (it may hold NUL bytes) */
};

/*
 * Splits line (len bytes, NUL-terminated) in place into tag and fields.
 * False for an unknown tag, too few fields or a NUL byte before the free
 * text: the line breaks the protocol.
 */
bool srv_parse(char *line, size_t len, struct srv_line *out);

/* The free text: the last field. */
static inline const char *
srv_text(const struct srv_line *l)
{
	return l->f[l->nfields - 1];
}

/* The protocol version chat speaks: HELLO's first field, its major number. */
#define SRV_PROTOCOL_MAJOR 2

/* The major number of a HELLO version field ("2", "2.1"), -1 if it is not one. */
int srv_version_major(const char *version);

/*
 * Whether chatd takes the request line (len bytes, without its LF) for a
 * blank line, which it does not answer: it drops one CR before the LF.
 */
static inline bool
srv_request_blank(const char *line, size_t len)
{
	return len == 0 || (len == 1 && line[0] == '\r');
}

/* The numeric code of an ERR line, 0 if it has none. */
int srv_err_code(const struct srv_line *l);

/*
 * chat's words for a final reply (OK or ERR) that answers no request: no
 * request of ours is waiting for one, or it is an OK and only /quit is out
 * (BYE answers /quit; an ERR, when chatd refused the line itself: too long,
 * a character it refuses).  chatd sends each request exactly one, in order,
 * and never one unasked (docs/PROTOCOL.md "After login"): chat matches
 * replies to requests by order, so such a line breaks the protocol; taken
 * for the answer to the next request, it would misreport that one and every
 * one after.  The line's start is quoted, sanitized; written to buf (len
 * bytes, SRV_UNASKED_MAX for the whole: never cut inside a character).
 */
#define SRV_UNASKED_MAX 512
void srv_describe_unasked(const struct srv_line *l, char *buf, size_t len);

#endif
