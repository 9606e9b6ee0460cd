/*
 * session.h - one connected client: struct client, its references and the
 * waking of its thread (session.c).  The front-end (client.c with login.c
 * and commands.c, or the IRC gateway's irc*.c) runs the thread and calls
 * the core (the hub: hub.c, room.c, fanout.c; the history), which calls
 * these; nothing here calls back up.
 *
 * Ownership and locking, field by field:
 * - Set before the client's thread starts, then read-only: id, fd, addr,
 *   addr_str, connected_ms, srv, fe, is_tls.
 * - wire (its line form) is set before the thread starts and changed only
 *   by its own thread under the room lock (an IRC session's capabilities,
 *   room_set_form); others read it under the room lock.
 * - proto, the front-end's own state (IRC: irc.c), is its thread's.
 * - tls, the connection's OpenSSL object (NULL on a plain connection), is
 *   made by the thread (session_handshake_step) and then used as writing
 *   to fd is (below): every SSL_* call on it, reads included (a read may
 *   write: a key update's answer), is made by the thread or, while it
 *   sleeps with a claim on it, by the write-through flusher or the
 *   co-writer it handed the member to (session_writev), and so is
 *   tls_broken set.  The thread reads only after room_wake_up().
 * - tid and wake_pending are atomic: others wake the thread with
 *   client_wake() (session.c), a flag and a signal, no descriptor.
 * - Owned by the client's own thread (no lock): name, account, in, out,
 *   unacked.
 *   Except: while room.rights is RIGHTS_HUB (the thread sleeps,
 *   room_sleep), out and unacked belong to whoever holds the room lock
 *   and claims them (RIGHTS_CLAIMED), and writing to fd to the
 *   write-through flusher that claimed them (with the room lock dropped,
 *   but for the publisher of stored messages: fanout.c, flush_pass), or
 *   the co-writer it handed the member to (cowriter.c); the thread takes
 *   them back with room_wake_up() (no lock unless a claim is under way,
 *   whose end it waits for) before it touches any of them.  name is
 *   written once by that thread before room_login() and read by others
 *   only under the room lock after that.
 * - Guarded by the room lock (hub.h): everything under "room", the
 *   memberships included (which rooms, cursors, the current room), but
 *   for two atomics: room.rights (above: claimed under the lock, taken
 *   back by the thread without it) and room.moves (changed only under the
 *   lock, read by the thread without it: room_target).
 * - Owned by the client's own thread: target, its last room_target().
 * - refs is atomic: the thread holds one reference for the client's whole
 *   life; room code takes a short one to wake a client after dropping the
 *   room lock, so the struct outlives the last waker.
 */
#ifndef CHATD_SESSION_H
#define CHATD_SESSION_H

#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "linebuf.h"
#include "names.h"
#include "outq.h"
#include "proto.h"

struct server;
struct room;
struct frontend;

/* client.room.rights: who may write a client's out and socket. */
enum {
	RIGHTS_THREAD,  /* its own thread */
	RIGHTS_HUB,     /* handed over by room_sleep(): whoever claims them */
	RIGHTS_CLAIMED, /* a write-through pass has them (fanout.c) */
};

/* A session's place in one room: the room and the next ring position to deliver. */
struct membership {
	struct room *room;
	uint64_t cursor;
};

#define ADDR_STR_MAX 64
/* The longest reason a PART or BYE carries, in bytes; longer ones are cut. */
#define REASON_TEXT_MAX 127

struct client {
	uint64_t id;              /* unique for the life of the process */
	int fd;                   /* the TCP connection, non-blocking */
	_Atomic pid_t tid;        /* the thread's kernel id; 0 before it runs and after */
	atomic_bool wake_pending; /* client_wake() was called; the thread clears it */
	struct sockaddr_storage addr;
	char addr_str[ADDR_STR_MAX]; /* "127.0.0.1" or "::1", for logs and users */
	int64_t connected_ms;        /* wall clock */
	struct server *srv;
	const struct frontend *fe; /* its protocol's front-end (client.h) */
	void *proto;               /* the front-end's state of this connection */
	unsigned wire;             /* its line form (enum wire, wire.h): the lines it gets */
	bool is_tls;               /* accepted on the TLS listener */
	SSL *tls;                  /* made by session_handshake_step(); under the write rights */
	bool tls_broken;           /* a fatal TLS error: no more SSL calls but SSL_free */
	atomic_uint refs;

	/* Owned by the client's thread. */
	char name[NAME_MAX_LEN + 1]; /* registered spelling, once logged in */
	struct linebuf in;
	struct outq out;
	unsigned unacked; /* room messages sent, outcome not yet seen */
	uint64_t account; /* the registration it logged in as (ident_account()); 0: a guest */

	/* Guarded by the room lock (hub.h). */
	struct {
		struct client *prev, *next; /* every connection (hub.c: conns) */
		bool member;                /* online: listed by name (logged in) */
		int64_t joined_ms;          /* wall clock, when it logged in */
		struct membership *rooms;   /* the rooms it is in, in the order joined */
		size_t n_rooms, cap_rooms;
		struct room *current; /* where its plain lines go; NULL: none */
		bool sleeping;        /* on the sleepers or the writers list (a writer
				       * that woke without the lock stays listed until
				       * its next room_sleep(): room.rights tells) */
		bool writer;          /* ... the writers list */
		/*
		 * Who may touch out, unacked and the socket (RIGHTS_*): an
		 * atomic, so that the thread takes its rights back without the
		 * lock when no pass has them claimed (fanout.c: room_wake_up).
		 */
		_Atomic int rights;
		bool claim_waiting;       /* its thread waits on unclaimed for a claim to end */
		pthread_cond_t unclaimed; /* (room_attach and room_detach: init, destroy) */
		struct client *sleep_prev, *sleep_next;
		bool targeted; /* on the targets list */
		struct client *target_next;
		bool evicted; /* taken offline by someone else */
		enum part_reason evict_reason;
		char evict_text[REASON_TEXT_MAX + 1];
		struct outq inbox;   /* lines other threads sent (PRIV, PART of a kick...) */
		unsigned inbox_acks; /* answers to its messages among them */
		bool out_lost;       /* a line for it could not be made or queued: no memory */
		bool out_cut;        /* and its socket got half a line: no BYE (say_bye) */
		bool backed_up;      /* its queue passed half its limit (room_backed_up) */
		bool echo;           /* IRC echo-message: its own messages come back whole */
		bool guest;          /* no account (guests): set by its thread before room_login(),
				      * cleared by it under the lock (room_set_account()); only
				      * its thread writes it, so it reads it without the lock */
		char *away;          /* IRC AWAY text; NULL: here */
		/* Bumped (under the lock) whenever its rooms or current room change. */
		_Atomic unsigned moves;
	} room;
	/*
	 * Owned by the client's thread: the last room_target() answer and the
	 * room.moves it was read at, so a message needs no room lock to find
	 * its room while c's rooms stay as they were (room.c: room_target).
	 */
	struct {
		unsigned moves;
		uint64_t made_after; /* the room's (room.made_after): history_append_live() */
		bool valid, current; /* current: the answer for "the current room" */
		char arg[ROOM_NAME_MAX + 2], spelled[ROOM_NAME_MAX + 1];
	} target;
};

static inline void
client_ref(struct client *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/*
 * A new client of connection fd (its thread not started): one reference,
 * the caller's.  NULL without memory.
 */
struct client *session_new(uint64_t id, int fd, const struct sockaddr_storage *addr,
			   const char *addr_str, size_t max_line, bool is_tls);

/* Drops a reference; the last one frees c (session.c). */
void client_unref(struct client *c);

/*
 * Wakes c's thread if it sleeps (or makes its next wait return at once).
 * Any thread may call it, with a reference to c and no lock held.
 */
void client_wake(struct client *c);

/* c's own thread, first and last: the wake-up signal reaches it from then on, until then. */
void session_thread_enter(struct client *c);
void session_thread_leave(struct client *c);

/*
 * ppoll() that client_wake() interrupts; *woken says whether it was called
 * since the last wait (then the descriptors are only looked at, timeout
 * 0).  Returns ppoll()'s count (0 when the wake-up cut the wait short), or
 * -1.
 * c's own thread only.
 */
int session_wait(struct client *c, struct pollfd *pfd, nfds_t n, int timeout_ms, bool *woken);

/*
 * One step of the TLS handshake of a connection accepted on the TLS
 * listener (its thread, before anything else): 0 once done, POLLIN or
 * POLLOUT for what to wait for before the next step, -1 when it failed
 * (errno: EPROTO for TLS, else the socket's error).
 */
int session_handshake_step(struct client *c);

/*
 * The connection's I/O, plain or TLS: read() and writev() on a plain one;
 * on a TLS one SSL_read_ex() and SSL_write_ex() of what iov holds, a record
 * of at most SESSION_TLS_WRITE bytes at a time (gathered into one buffer
 * when it spans iovecs), until all is written or the socket is full.  A
 * TLS write that has to be retried must be retried with at least the same
 * bytes first, as an outq does (what was not written stays at its head).
 * Both return what read() and writev() would: the bytes, 0 for the
 * peer's end (read), or -1 with errno (EAGAIN when the socket is not
 * ready, EPROTO for a TLS error, the socket's error under TLS, ECONNRESET
 * if it has none; after either, EPROTO for a read, EPIPE for a write).  A TLS write
 * that fails after some records went returns what went.  Only with the
 * write rights.
 */
#define SESSION_TLS_WRITE 16384
ssize_t session_read(struct client *c, void *buf, size_t len);
ssize_t session_writev(struct client *c, const struct iovec *iov, int n);

/* Decrypted bytes OpenSSL holds, not read yet: do not sleep on the socket. */
bool session_pending(const struct client *c);

/* Sends a TLS close_notify once, without waiting (the thread, at the end). */
void session_close_notify(struct client *c);

/*
 * Frees the OpenSSL object: the thread, at the connection's end, before
 * room_detach().  The thread's own OpenSSL state (its random generators,
 * its error queue) stays for its next connection; client.c frees it when
 * the thread ends, which chatd's shutdown waits for (threadcache.h).
 */
void session_tls_free(struct client *c);

#endif