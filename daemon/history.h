/*
 * history.h - the room's message history: the file, its group commit, and
 * the last messages kept in memory for replay and /history.
 *
 * The history owns the id sequence.  history_append() gives a message the
 * next id and the server's timestamp and queues it; the commit thread then
 * writes a batch of appends to the file, makes it durable with one
 * fdatasync() and hands it, in id order, to the publish callback.  So
 * nobody sees a message, and its sender gets no acknowledgement, before
 * it is on disk.  With history_sync_ms > 0 history_append() writes the
 * message itself, the callback runs at once from it (or, if another
 * thread is publishing, from the commit thread with the next batch), and
 * the commit thread syncs every that many milliseconds instead.
 *
 * A message that cannot be stored (a failed or short write or a failed
 * fdatasync, after which what is not yet durable is cut back off the file;
 * with history_sync_ms > 0 a failed write refuses that message only) is
 * published too, with failed set, in its place in the sequence, so its
 * sender learns of it in order.
 *
 * File format (docs/FILES.md): a version line "chatd-history 1", then one
 * message a line: "ID TIME NAME TEXT\n".  A damaged line is skipped with a
 * warning, a torn last line is cut off, and the file is compacted (atomic
 * rewrite keeping its newest half) when it grows past history_max_size.
 *
 * Locking: the history lock guards the file offset, the id sequence, the
 * queue of appends not yet durable and the memory ring; the backlog counts
 * (history_backlog) change under it and are read without it.  The publish
 * callback runs with the history lock dropped and one publisher at a time
 * (that is what keeps publication in id order while senders append), so
 * the callback may take locks of its own (the room's) but must never call
 * back into the history.  The history and room locks are never held
 * together.
 */
#ifndef CHATD_HISTORY_H
#define CHATD_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "line.h"

struct history;

struct history_entry {
	uint64_t id;       /* 0 when failed */
	uint64_t sender;   /* the session id given to history_append() */
	struct line *body; /* "ID TIME NAME TEXT\n"; NULL when failed */
	bool failed;       /* could not be stored: nobody gets it */
};

/*
 * Called without the history lock, by one thread at a time and in id
 * order: the commit thread, or in relaxed mode a sender's thread.  The
 * entries (and their bodies) are only lent.
 */
typedef void (*history_publish_fn)(void *ctx, const struct history_entry *entries, size_t n);

/* The file operations, replaceable by tests to simulate short writes and full disks. */
struct history_io {
	ssize_t (*write)(int fd, const void *buf, size_t len);
	int (*fdatasync)(int fd);
};

struct history_config {
	const char *path;
	size_t memory;               /* messages held in memory (>= 1) */
	int64_t max_size;            /* compact above this many bytes */
	int sync_ms;                 /* 0: durable acknowledgement */
	const struct history_io *io; /* NULL: write(2) and fdatasync(2) */
};

struct history_stats {
	uint64_t last_id;  /* highest id stored (durable) */
	uint64_t appended; /* messages stored since open */
	uint64_t failed;   /* messages refused since open */
	size_t in_memory;
	int64_t file_size;
	uint64_t compactions;
};

/*
 * Reads the file (creating it, mode 0600, if missing), fills the memory
 * with its newest messages and starts the commit thread.  NULL with a
 * message in err if the file cannot be opened or has an unknown version.
 */
struct history *history_open(const struct history_config *cfg, history_publish_fn publish,
			     void *ctx, char *err, size_t errlen);

/*
 * Stores a room message from session sender.  The outcome reaches the
 * publish callback.  -1 (ENOMEM) only if it could not even be queued.
 * name and text must be valid (checked by the caller).
 */
int history_append(struct history *h, uint64_t sender, const char *name, const char *text,
		   size_t text_len);

/*
 * Copies into out (with a reference on each body) up to max of the newest
 * durable messages whose id is <= max_id, oldest first.  Returns how many.
 */
size_t history_recent(struct history *h, size_t max, uint64_t max_id, struct history_entry *out);

/*
 * Copies up to max durable messages with id > after_id, oldest first.
 * *first_held is the oldest id still in memory (0 if none), so a caller
 * can tell whether messages after after_id were already dropped.
 */
size_t history_since(struct history *h, uint64_t after_id, size_t max, struct history_entry *out,
		     uint64_t *first_held);

/*
 * The backlog: messages appended but not yet handed to the publish
 * callback (written and syncing, or waiting for the next batch), and the
 * bytes of their bodies.  Read without the lock, so a moment old; it
 * shrinks before the callback sees the messages it no longer counts.
 * What a sender that pipelines may pile up is bounded with it (client.c).
 */
void history_backlog(struct history *h, size_t *msgs, size_t *bytes);

void history_get_stats(struct history *h, struct history_stats *st);

/* Releases the references history_recent()/history_since() gave. */
void history_entries_release(struct history_entry *e, size_t n);

/* Makes everything appended durable, stops the commit thread, closes. */
void history_close(struct history *h);

#endif
