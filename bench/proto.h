/*
 * proto.h - what chatbench needs to know about a server's protocol.
 *
 * A protocol module logs a connection in, joins it to its rooms (the rooms
 * layout: chatd's /join, IRC's JOIN), recognises the lines that carry a
 * benchmark message to a receiver, and wraps a message for sending.  The
 * load generator itself (chatbench.c) knows nothing of any protocol.
 */
#ifndef BENCH_PROTO_H
#define BENCH_PROTO_H

#include <stdbool.h>
#include <stddef.h>

/* Rooms one client may be asked to join (--joins). */
#define SESSION_ROOMS_MAX 16

/* One connection as a protocol module sees it. */
struct session {
	unsigned index; /* client number: its user name is b<index> */
	int phase;      /* the module's own login progress, 0 at connect */
	const char *password;
	bool want_token;     /* chatd: ask for a resume token after a password login */
	bool resumed;        /* chatd: the last login used the token */
	bool token_refused;  /* chatd: the server refused the token (then the password) */
	char token[65];      /* chatd: the resume token, "" if none */
	int version;         /* chatd: the protocol version its HELLO announced */
	bool send_pass;      /* IRC: PASS password before NICK and USER (chatd's IRC port) */
	const char *channel; /* IRC: the one-room layout's channel (default #bench) */
	/*
	 * The rooms layout (--rooms): the rooms r<number> this client joins
	 * after its login; it sends to the last one.  nrooms 0: the one-room
	 * layout (chatd's default room, IRC's channel joined at login).
	 */
	unsigned nrooms;
	unsigned rooms[SESSION_ROOMS_MAX];
};

/* Queue bytes for the server (implemented by chatbench.c). */
void session_write(struct session *s, const char *buf, size_t len);

enum proto_event {
	PE_NONE,         /* nothing the benchmark counts (JOIN, NAMES, HIST...) */
	PE_LOGGED_IN,    /* the session may now send and receive (or join its rooms) */
	PE_JOINED,       /* one of the session's rooms joined */
	PE_DELIVERY,     /* a benchmark message: *payload points at its text */
	PE_ACK,          /* the server accepted one of our own messages */
	PE_REFUSED,      /* the server refused the login or the connection */
	PE_SERVER_ERROR, /* an error reply after login */
	PE_CLOSING,      /* the server says it closes the connection */
};

struct proto_ops {
	const char *name;
	/* Called once the TCP connection is up. */
	void (*connected)(struct session *s);
	/* One line from the server, without its line end, NUL-terminated. */
	enum proto_event (*line)(struct session *s, char *line, size_t len, const char **payload);
	/* Sends the commands that join every room in s->rooms (rooms layout). */
	void (*join)(struct session *s);
	/* Wrap text as a message to s's room into buf; returns its length (0: no space). */
	size_t (*message)(const struct session *s, char *buf, size_t cap, const char *text,
			  size_t len);
	/* Server lines may be this long (for the input buffer). */
	size_t max_line;
};

extern const struct proto_ops proto_chatd, proto_irc, proto_raw;

/* A message as one line, text and LF: what chatd and the raw reference take (proto_raw.c). */
size_t proto_line_message(const struct session *s, char *buf, size_t cap, const char *text,
			  size_t len);

#endif
