/*
 * histstore.h - where the history keeps its records: the interface between
 * daemon/history.c and a storage backend.
 *
 * history.c owns the id sequence, the queue of appends, the group commit
 * (its commit thread), the rooms' memory rings and publication; a backend
 * only stores records and reads them back.  histfile.c is the backend
 * chatd has: the history file (docs/FILES.md).  Another (a Redis stream
 * per room, say) is a second struct histstore_ops and a constructor next
 * to histfile_open(); rooms and sessions never see the difference.
 *
 * A record is a history_entry (history.h) whose body is the line
 * "ID TIME ROOM KIND NAME[ TEXT]\n" (a guest's NAME: HISTSTORE_GUEST_MARK,
 * then the name); a backend stores those bytes as they are and gives them
 * back the same, with the entry's guest set and name_off past the mark.
 *
 * Threads and the history lock (history.c's), call by call:
 *
 *   load	once, first, from history_open(), before any other call
 *   append	one caller at a time, records in id order: the commit
 *		thread without the history lock (durable mode), or a sender
 *		holding it (history_sync_ms > 0)
 *   sync	the commit thread, without the history lock; in relaxed
 *		mode appends may run meanwhile
 *   cut_back	the commit thread, never alongside append or sync
 *   compact_due	the commit thread, holding the history lock
 *   compact	the commit thread, without the history lock; appends may
 *		run meanwhile (relaxed mode)
 *   stats	any thread, the history lock held or not
 *   close	once, last, after the commit thread ended
 *
 * So a backend guards what append and sync/compact share (histfile.c:
 * the descriptor and its offsets) with a lock of its own, taken inside
 * the history lock and never around a call back into history.c.
 */
#ifndef CHATD_HISTSTORE_H
#define CHATD_HISTSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history.h"

struct histstore;

/* Before a guest's name in a record: a character no name has (names.h). */
#define HISTSTORE_GUEST_MARK '~'

/*
 * A room that history.c holds records of, by its key (histstore_room_key)
 * and the oldest id it holds: compaction keeps that room's records from
 * this id on.  A room not named has nothing in memory (deleted, or not
 * yet seen): its older records may go.
 */
struct histstore_mark {
	char key[ROOM_NAME_MAX + 1];
	uint64_t first_id;
};

/* What load() hands over, record by record. */
struct histstore_loader {
	/*
	 * A record read, in id order within its room (rooms may interleave
	 * any way): e has id, kind, room and the offsets of its fields (no
	 * body, no sender); bytes are its e->text_off + e->text_len + 1 bytes
	 * (the last a '\n'), valid until load() returns.  An HK_DELETE says
	 * the room's earlier records are gone.  false: out of memory, stop.
	 */
	bool (*record)(void *ctx, const struct history_entry *e, const char *bytes);
	/* Every record was read; the bytes given to record() are still valid. */
	bool (*done)(void *ctx);
	void *ctx;
};

struct histstore_stats {
	int64_t size; /* bytes stored (the file's size) */
	uint64_t compactions;
};

struct histstore_ops {
	/*
	 * Reads every record through ld; *last_id is the highest id the store
	 * holds (0 for none), which the sequence goes on after.  0, or -1 with
	 * a message in err (the store is unusable: close it).
	 */
	int (*load)(struct histstore *s, const struct histstore_loader *ld, uint64_t *last_id,
		    char *err, size_t errlen);
	/*
	 * Stores the bodies of the n entries that did not fail, in order,
	 * after what was appended before.  0, or -1 with errno: then nothing
	 * of this call is stored (what was appended before stays).
	 */
	int (*append)(struct histstore *s, const struct history_entry *e, size_t n);
	/* Makes durable every record appended before the call.  0, or -1 with errno. */
	int (*sync)(struct histstore *s);
	/*
	 * Takes back every record appended since the last successful sync
	 * (after a failed append or sync, whose records are refused).
	 */
	void (*cut_back)(struct histstore *s);
	/* Whether compact() has work: the store outgrew its limit. */
	bool (*compact_due)(struct histstore *s);
	/*
	 * Drops old records: by its own measure of age (the file: all but its
	 * newest half), but never one a mark still holds, never the newest,
	 * and the records of rooms the marks do not name first (m sorted by
	 * key).  Failures are the store's to log and retry.
	 */
	void (*compact)(struct histstore *s, const struct histstore_mark *m, size_t n);
	void (*stats)(struct histstore *s, struct histstore_stats *st);
	void (*close)(struct histstore *s);
};

/* A backend's state starts with this. */
struct histstore {
	const struct histstore_ops *ops;
};

/* The key a room is known by in marks (and history.c's table): ASCII lower case. */
static inline void
histstore_room_key(const char *room, size_t len, char key[ROOM_NAME_MAX + 1])
{
	for (size_t i = 0; i < len; i++)
		key[i] = (char)(room[i] >= 'A' && room[i] <= 'Z' ? room[i] - 'A' + 'a' : room[i]);
	key[len] = '\0';
}

/* The history file (histfile.c). */
struct histfile_config {
	const char *path;
	const char *default_room;    /* a version 1 file's messages go here */
	int64_t max_size;            /* compact above this many bytes */
	bool relaxed;                /* history_sync_ms > 0: appends are published unsynced */
	const struct history_io *io; /* NULL: write(2) and fdatasync(2) */
};

/*
 * Opens (creating it, mode 0600) the history file; load() reads it.  NULL
 * with a message in err if it cannot be opened.
 */
struct histstore *histfile_open(const struct histfile_config *cfg, char *err, size_t errlen);

#endif
