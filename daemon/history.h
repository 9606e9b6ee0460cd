/*
 * history.h - the rooms' history: the file, its group commit, and the
 * newest records of each room kept in memory for replay and /history.
 *
 * The history owns the id sequence, one for the whole server.
 * history_append() gives a record (a room message, or a join, part, topic
 * change, room deletion or the operator's kick off the server) the next id and the server's timestamp and
 * queues it; the commit thread then writes a batch of appends, for all
 * rooms together, to the file, makes it durable with one fdatasync() and
 * hands it, in id order, to the publish callback.  So nobody sees a
 * message, and its sender gets no acknowledgement, before it is on disk.
 * With history_sync_ms > 0 history_append() writes the record itself, the
 * callback runs at once from it (or, if another thread is publishing,
 * from the commit thread with the next batch), and the commit thread
 * syncs every that many milliseconds instead.
 *
 * A record that cannot be stored (a failed or short write or a failed
 * fdatasync, after which what is not yet durable is cut back off the file;
 * with history_sync_ms > 0 a failed write refuses that record only) is
 * published too, with failed set, in its place in the sequence, so its
 * sender learns of it in order.
 *
 * File format (docs/FILES.md): a version line "chatd-history 2", then one
 * record a line: "ID TIME ROOM KIND NAME TEXT\n", NAME "~NAME" when it was
 * a guest's (history_entry.guest).  A version 1 file is
 * converted at open.  A damaged line is skipped with a warning, a torn
 * last line is cut off, and the file is compacted (atomic rewrite keeping
 * its newest half and every record still held in memory) when it grows
 * past history_max_size.
 *
 * Locking: the history lock guards the id sequence, the queue of appends
 * not yet durable and the rooms' memory rings; the storage behind it
 * (histstore.h; the file, histfile.c) has a lock of its own, taken inside
 * the history lock, never around it.  The backlog counts
 * (history_backlog) change under it and are read without it.  The publish callback runs with the history lock dropped and one
 * publisher at a time (that is what keeps publication in id order while
 * senders append), so the callback may take locks of its own (the room's)
 * but must never call back into the history.  The history and room locks
 * are never held together.
 */
#ifndef CHATD_HISTORY_H
#define CHATD_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "line.h"
#include "names.h"

struct history;

/*
 * What a record is.  HK_PART's text is "REASON TEXT"; HK_DELETE (name
 * "-", no text) says the room's older records are gone; HK_NOTICE came
 * after the others, HK_QUIT after it (a file of an older chatd has
 * neither).  HK_QUIT: name left the server, so every room at once (an
 * operator's server-wide kick: IRC's QUIT, where HK_PART "kicked" is a
 * KICK out of the one room); its text is "REASON TEXT" too.
 */
enum history_kind { HK_MSG, HK_JOIN, HK_PART, HK_TOPIC, HK_DELETE, HK_NOTICE, HK_QUIT };

/*
 * A message, as a room's members see it: HK_MSG, or HK_NOTICE (IRC's
 * NOTICE to a channel: a message that bots never answer; natively MSG too).
 */
static inline bool
history_kind_message(enum history_kind kind)
{
	return kind == HK_MSG || kind == HK_NOTICE;
}

/*
 * What a message carries to those who get it live but never into the
 * store or the memory of the room (history_append_live): the publish
 * callback sees it, then it is released.
 */
struct history_live {
	struct line *label; /* "@label=X" for the sender's echo (IRC labeled-response); NULL none */
	struct line *tags;  /* the sender's client-only tags ("+a=b;+c", IRC); NULL none */
};

struct history_entry {
	uint64_t id;            /* 0 when failed */
	uint64_t sender;        /* the session id given to history_append(); 0 for none */
	enum history_kind kind; /* also set when failed */
	bool failed;            /* could not be stored: nobody gets it */
	/*
	 * NAME was a guest's, not an account (no account tag on IRC, live or
	 * replayed): stored as "~NAME" ('~' is in no name), name_off is past
	 * the '~', so whoever reads the name gets it as the guest spelled it;
	 * the native protocol shows the mark (history_marked_name_off()).
	 */
	bool guest;
	/*
	 * A deletion stored again because it could not be the first time
	 * (the room was gone already, its memory freed): no deletion of its own.
	 */
	bool again;
	/* The record "ID TIME ROOM KIND [~]NAME[ TEXT]\n"; NULL when failed. */
	struct line *body;
	/* Where the fields are in body->data (all 0 when failed); id at 0, length time_off - 1. */
	uint16_t time_off, room_off, room_len, name_off, name_len;
	uint32_t text_off, text_len;  /* text_len 0: no text */
	char room[ROOM_NAME_MAX + 1]; /* as stored (given to history_append()); set when failed */
	/* What its live audience gets beside the record (history_append_live()). */
	struct history_live live;
};

/*
 * Where e's name begins with its guest mark, if any: "~NAME" for a guest,
 * as the native protocol shows it (MSG, HIST).
 */
static inline size_t
history_marked_name_off(const struct history_entry *e)
{
	return e->name_off - (e->guest ? 1u : 0u);
}

/*
 * The spelling of a kind in the file: "msg", "join", "part", "topic",
 * "delete", "notice", "quit".
 */
const char *history_kind_name(enum history_kind kind);

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
	size_t memory;               /* records held in memory per room (>= 1) */
	int64_t max_size;            /* compact above this many bytes */
	int sync_ms;                 /* 0: durable acknowledgement */
	const struct history_io *io; /* NULL: write(2) and fdatasync(2) */
	/*
	 * A version 1 file's messages go here (NULL: "lobby"); and the
	 * records of this room, stored in another case, read back in this
	 * spelling (NULL: as stored).
	 */
	const char *default_room;
};

struct history_stats {
	uint64_t last_id;  /* highest id published (durable; with history_sync_ms > 0 written) */
	uint64_t appended; /* records stored since open */
	uint64_t failed;   /* records refused since open */
	size_t in_memory;  /* records held in memory, all rooms */
	size_t rooms;      /* rooms with records in memory */
	int64_t file_size;
	uint64_t compactions;
};

/*
 * Reads the file (creating it, mode 0600, if missing; converting a version
 * 1 file), fills each room's memory with its newest records and starts the
 * commit thread.  NULL with a message in err if the file cannot be opened
 * or has an unknown version.
 */
struct history *history_open(const struct history_config *cfg, history_publish_fn publish,
			     void *ctx, char *err, size_t errlen);

/*
 * Stores a record of kind in room for session sender (0 for none): name
 * is who did it (NULL or "-" for nobody, "*" for an operator), text its
 * text (may be empty but for HK_MSG; HK_PART: "REASON TEXT").  The
 * outcome reaches the publish callback.  -1 (ENOMEM) only if it could not
 * even be queued; EINVAL for a room, name or text too long for a record.
 * room, name and text must be valid (checked by the caller).
 */
int history_append(struct history *h, uint64_t sender, const char *room, enum history_kind kind,
		   const char *name, const char *text, size_t text_len);

/*
 * The same for a name that may be a guest's (guest: stored as "~NAME",
 * the entry's guest set; ignored for "-" and "*"), with what its live
 * audience gets beside the record (the history takes over live's
 * references, releasing them after the publish callback, or at once on
 * failure).  made_after: the room's (the deletions numbered when it was
 * made, history_drop_room), or HISTORY_ANY_ROOM; a record of a room
 * deleted since is not stored (it belongs to the room that is gone, not
 * to one made again under the name) and 1 is returned.
 */
int history_append_live(struct history *h, uint64_t sender, const char *room,
			enum history_kind kind, const char *name, bool guest, const char *text,
			size_t text_len, struct history_live live, uint64_t made_after);

/* history_append_live() without the check for a room deleted since. */
#define HISTORY_ANY_ROOM UINT64_MAX

/*
 * A room event (a join, part, topic or quit: sender 0, nothing for the
 * live audience) as history_append_live(), of a room made after the
 * deletion numbered made_after (history_drop_room; 0: before any).  An
 * event stored late, after a later deletion of its room, belongs to the
 * room that is gone, not to one made again under its name: it is not
 * stored, and 0 is returned (the deletions are kept in mind 30 s).
 */
int history_append_event(struct history *h, const char *room, enum history_kind kind,
			 const char *name, bool guest, const char *text, size_t text_len,
			 uint64_t made_after);

/*
 * Copies into out (with a reference on each body) up to max of room's
 * newest durable records whose id is <= max_id, oldest first: messages
 * only (notices count as messages), or with events (joins, parts, topics,
 * quits) too.  Returns how many.
 * Rooms compare ignoring ASCII case.
 */
size_t history_recent(struct history *h, const char *room, size_t max, uint64_t max_id, bool events,
		      struct history_entry *out);

/*
 * Copies up to max of room's durable records with id > after_id, oldest
 * first.  *first_held is the oldest id of room still in memory (0 if
 * none), so a caller can tell whether records after after_id were already
 * dropped.
 */
size_t history_since(struct history *h, const char *room, uint64_t after_id, size_t max,
		     bool events, struct history_entry *out, uint64_t *first_held);

/*
 * The room was deleted: appends an HK_DELETE record (published like any
 * other) and frees the room's memory; its older records leave the file
 * at the next compaction.  A room of that name made later starts empty.
 * drop numbers the deletion, higher than every deletion before it (see
 * history_append_event).
 * A record that cannot be stored is appended again before the next
 * record of any room, and once more at history_close(), so the old
 * records do not count again after a restart.
 */
void history_drop_room(struct history *h, const char *room, uint64_t drop);

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
