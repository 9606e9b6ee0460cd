/*
 * client.h - the thread that serves one connection from greeting to BYE
 * and the small I/O helpers its parts share.
 * The thread's loop is the same for every protocol; what a protocol says
 * is its front-end's (struct frontend): the native line protocol's
 * (native_frontend: login.c runs the login dialogue, commands.c the slash
 * commands) or the IRC gateway's (irc_frontend, irc.h).  Everything here
 * runs in the client's own thread unless said otherwise.
 */
#ifndef CHATD_CLIENT_H
#define CHATD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto.h"
#include "room.h"
#include "session.h"

struct server;
struct history_entry;

/* Room for a front-end's last line (struct frontend's bye). */
#define BYE_LINE_MAX 512

/* The serving loop's state, which a front-end's request may change (why, text: the end). */
struct session_state {
	char *held; /* a command waiting for earlier messages' answers */
	size_t held_len;
	bool more_input;      /* lines may be buffered: do not sleep */
	bool eof;             /* the peer closed its side */
	bool went_deep;       /* logged in or ran a command since the last sleep */
	bool held_back;       /* input stopped by sender_held_back() */
	int64_t flood_ms;     /* input stopped by the front-end's flood control for this long */
	int64_t last_post_ms; /* when it last sent a room message (monotonic) */
	enum part_reason why;
	char text[256];
};

/*
 * What one protocol says on the connection: the client's thread calls
 * these, in that thread.  Each int-returning op returns 0, or -1 when the
 * session must end (st->why and st->text say why, when given st).
 */
struct frontend {
	const char *name;
	/* The login dialogue: 0 with c->name set; *registered: the name was registered now. */
	int (*login)(struct client *c, bool *registered, struct session_state *st);
	/* Online now (room_login done): the greeting and rep, the default room's (released here). */
	int (*welcome)(struct client *c, bool registered, struct room_join_reply *rep);
	/* Logged in, but no max_clients slot is free: the refusal line. */
	int (*refuse)(struct client *c, const char *why);
	/* Must this line wait until the answers of earlier messages came (a command)? */
	bool (*in_order)(const char *line, size_t len);
	/* One request line (not empty). */
	int (*request)(struct client *c, struct session_state *st, char *line, size_t len);
	/* A line longer than the connection's limit was dropped. */
	int (*overlong)(struct client *c);
	/*
	 * The last line (BYE, ERROR) for a session ending with why and text,
	 * written into buf (len bytes, at least BYE_LINE_MAX): its length.  It
	 * allocates nothing, so that a session out of memory still says why.
	 */
	size_t (*bye)(struct client *c, enum part_reason why, const char *text, char *buf,
		      size_t len);
	/* Flood control (NULL: none): milliseconds until the next line may be taken, 0 now. */
	int64_t (*line_wait)(struct client *c);
	/* The session woke, online (NULL: nothing to do): what it must say unasked; <0 ends it. */
	int (*woken)(struct client *c, struct session_state *st);
	/* The connection ends (NULL: nothing to do): frees c->proto. */
	void (*end)(struct client *c);
};

extern const struct frontend native_frontend;

/* The session ends for want of memory: sets st's why (PART_ERROR) and text; returns -1. */
int client_out_of_memory(struct session_state *st);

/*
 * Called by the listener: creates the client and gives it to a spare
 * thread (threadcache.h) or a new one.  Returns 0, or -1 when the client
 * or its thread could not be made (the caller refuses the connection and
 * still owns fd).
 */
int client_spawn(struct server *srv, int fd, const struct sockaddr_storage *addr, bool tls,
		 bool irc);

/* Queue a formatted reply line (the format includes no line end). */
int client_reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int client_reply_err(struct client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

enum client_read {
	CLIENT_LINE,      /* *line, *len: a complete line */
	CLIENT_OVERLONG,  /* a line was too long and is being dropped */
	CLIENT_EOF,       /* the peer closed or reset the connection */
	CLIENT_TIMEOUT,   /* deadline passed (or keepalive gave up) */
	CLIENT_SHUTDOWN,  /* the server is stopping */
	CLIENT_NO_MEMORY, /* the input buffer could not grow for the line */
};

/*
 * Next line, writing pending output meanwhile, until deadline (monotonic
 * ms).  Used before the client joins the room.
 */
enum client_read client_read_line(struct client *c, int64_t deadline, char **line, size_t *len);

/*
 * Queues HIST lines for the newest of n history entries that fit in half
 * the send queue, so replaying much history never overflows the client;
 * *sent says how many.  The entries stay the caller's.
 */
int client_push_history(struct client *c, const struct history_entry *e, size_t n, size_t *sent);

/*
 * Queues the HIST lines of room's last history_replay messages with ids
 * above first and up to last_id (the replay on joining it).
 */
int client_replay(struct client *c, const char *room, uint64_t first, uint64_t last_id);

/*
 * Drops (releasing them) the entries of e[0..n), oldest first, with ids up
 * to first: records of an earlier room of the same name (room_resolve).
 * Returns how many are left, moved to the front.
 */
size_t client_history_newer(struct history_entry *e, size_t n, uint64_t first);

/*
 * Queues the reply to joining a room but its final line: TOPIC (if any)
 * before USERS (/join) or after it (login), then the replay.  Releases
 * rep's lines.
 */
struct room_join_reply;
int client_push_join(struct client *c, struct room_join_reply *rep, bool topic_first);

/*
 * A message from c to room (NULL: its current room): stored, and answered
 * (OK ID sent, ERR 507) when the room publishes it; an error is answered
 * at once.  -1 only when even that could not be queued.
 */
int client_post(struct client *c, const char *room, const char *text, size_t len);

/*
 * The same without the native answer: 0 stored (answered through the
 * room), 1 refused (*res says why: not in that room, no memory...).
 */
int client_store(struct client *c, const char *room, const char *text, size_t len,
		 enum room_result *res);

/*
 * The same as kind (HK_MSG, HK_NOTICE) with what its live audience gets
 * beside the stored record (history.h: a label for its echo, client-only
 * tags; live's references are taken).  A guest's record says so
 * (history_entry.guest).
 */
int client_store_live(struct client *c, const char *room, enum history_kind kind, const char *text,
		      size_t len, struct history_live live, enum room_result *res);

/* Moves what the room has for c into its output (before a command's answer); -1: c must go. */
int client_collect(struct client *c, struct session_state *st);

/* Writes what c's output holds as far as the socket takes it now; -1 when writing failed. */
int client_flush(struct client *c);

/*
 * Waits ms milliseconds unless the server stops first (then false) or the
 * connection is shut down or reset meanwhile (then true at once).
 */
bool client_pause(struct client *c, int ms);

#endif
