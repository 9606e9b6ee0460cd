/*
 * histfile.c - the history file: the backend behind histstore.h that
 * history.c stores its records in (docs/FILES.md, "History file").
 *
 * Offsets into the file, from the end backwards:
 *
 *	good_off	end of the last successful append: where the next
 *			lands (the file is O_APPEND and cut back here
 *			whenever a write fails)
 *	durable_off	end of what the last fdatasync() covered
 *
 * In durable mode (history_sync_ms == 0) the commit thread appends and
 * syncs each batch, and the bytes before durable_off never change again:
 * a failed write or sync only cuts back to it.  In relaxed mode records
 * are published once written, so it is good_off that nothing cuts back
 * past.  Compaction copies those settled bytes without holding the lock.
 *
 * Threads (histstore.h): f->lock guards the descriptor, the offsets and
 * the compaction schedule, which append (a sender's thread in relaxed
 * mode) shares with sync and compact (the commit thread).  It is taken
 * inside the history lock, never the other way round; a write or a sync
 * runs with it held only in append (whose callers are serialized anyway)
 * and at the end of a compaction (finish_compacted: the appends made
 * meanwhile copied, the temp file synced and renamed, its directory
 * synced), so an append waits for that end.
 * Loading runs before any other thread could reach the store (the commit
 * thread starts after it, clients later still).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "histstore.h"
#include "log.h"
#include "names.h"
#include "safefile.h"
#include "timefmt.h"
#include "utf8.h"

#define HEADER "chatd-history 2\n"
#define HEADER_LEN ((int64_t)sizeof(HEADER) - 1)
#define HEADER_V1 "chatd-history 1\n" /* converted at open */
#define UNKNOWN_FORMAT "unknown format (expected 'chatd-history 2')"
#define ID_MAX_DIGITS 19 /* below 2^64: the next id cannot wrap */
#define DAMAGED_SHOWN 10 /* damaged lines named one by one at load */
#define COMPACT_RETRY_MS 60000
#define COPY_CHUNK (1 << 20)
#define WRITE_CHUNK (64 * 1024) /* bytes of a batch per write() */

struct histfile {
	struct histstore base;
	char *path;
	char *tmp_path;
	char default_room[ROOM_NAME_MAX + 1];
	int64_t max_size;
	bool relaxed;
	struct history_io io;

	pthread_mutex_t lock;
	int fd;
	int64_t good_off;
	int64_t durable_off;
	bool tail_dirty;            /* a cut back failed: bytes past good_off */
	char *write_buf;            /* WRITE_CHUNK: a batch's records gathered */
	int64_t compact_after_size; /* after a failed compaction: retry when */
	int64_t compact_after_ms;   /* the file reaches this, or at this time */
	struct log_gate warnings;   /* failed cuts */
	uint64_t compactions;
};

/* Whole lines gathered into COPY_CHUNK bytes per write: conversion and compaction. */
struct bufout {
	struct histfile *f;
	int fd;
	char *buf; /* COPY_CHUNK */
	size_t used;
	int64_t written; /* bytes put */
	bool ok;
};

/* Reading the file. */
struct loader {
	const char *path;
	const char *data;
	size_t size;
	const struct histstore_loader *to;
	bool out_of_memory;
	uint64_t last_id;
	size_t end; /* end of the last complete line */
	size_t lineno;
	size_t damaged;
};

static ssize_t
libc_write(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len);
}

static int
libc_fdatasync(int fd)
{
	return fdatasync(fd);
}

static const struct history_io libc_io = { libc_write, libc_fdatasync };

/*
 * A short write to a regular file means the disk (or a size limit) is
 * full: retrying would only fail or tear the line further.
 */
static bool
write_whole(struct histfile *f, int fd, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = f->io.write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n >= 0 && (size_t)n < len)
		errno = ENOSPC;
	return n >= 0 && (size_t)n == len;
}

static void
bufout_flush(struct bufout *c)
{
	if (c->ok && c->used > 0)
		c->ok = write_whole(c->f, c->fd, c->buf, c->used);
	c->used = 0;
}

static void
bufout_put(struct bufout *c, const char *p, size_t len)
{
	while (c->ok && len > 0) {
		size_t n = COPY_CHUNK - c->used < len ? COPY_CHUNK - c->used : len;

		memcpy(c->buf + c->used, p, n);
		c->used += n;
		c->written += (int64_t)n;
		p += n;
		len -= n;
		if (c->used == COPY_CHUNK) {
			c->ok = write_whole(c->f, c->fd, c->buf, c->used);
			c->used = 0;
		}
	}
}

/* Until the cut succeeds, every append retries it: nothing may follow a torn line. */
static bool
cut_back_to(struct histfile *f, int64_t off)
{
	if (ftruncate(f->fd, off) == 0) {
		f->tail_dirty = false;
		return true;
	}
	int err = errno;

	f->tail_dirty = true;
	log_gate_warn_io(&f->warnings, f->path, "cannot cut the file back", err);
	errno = err;
	return false;
}

static int
fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, rc, err;

	if (!copy)
		return -1;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* --- records --- */

/* A room name: 1..ROOM_NAME_MAX of [A-Za-z0-9_.-], the first a letter (room_name_valid). */
static bool
record_room_valid(const char *s, size_t len)
{
	if (len == 0 || len > ROOM_NAME_MAX ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	return name_valid(s, len);
}

static bool
kind_parse(const char *s, size_t len, enum history_kind *kind)
{
	for (int k = HK_MSG; k <= HK_QUIT; k++)
		if (strlen(history_kind_name(k)) == len &&
		    memcmp(history_kind_name(k), s, len) == 0) {
			*kind = (enum history_kind)k;
			return true;
		}
	return false;
}

/* The next field of [*q, end) up to a space (skipped) or the end; false if empty. */
static bool
next_field(const char **q, const char *end, const char **field, size_t *len)
{
	const char *sp = memchr(*q, ' ', (size_t)(end - *q));

	*field = *q;
	*len = (size_t)((sp ? sp : end) - *q);
	*q = sp ? sp + 1 : end;
	return *len > 0;
}

/* "ID TIME " at p: the id (above after), *q past the time. */
static bool
parse_id_time(const char *p, const char *end, uint64_t after, uint64_t *id, const char **q)
{
	const char *r = p;
	uint64_t v = 0;
	int64_t ms;

	if (r == end || *r < '1' || *r > '9')
		return false;
	for (; r < end && *r >= '0' && *r <= '9'; r++) {
		if (r - p == ID_MAX_DIGITS)
			return false;
		v = v * 10 + (uint64_t)(*r - '0');
	}
	if (v <= after || r == end || *r++ != ' ')
		return false;
	if (end - r < TIME_RFC3339_LEN + 1 || r[TIME_RFC3339_LEN] != ' ' ||
	    !time_parse_ms(r, TIME_RFC3339_LEN, &ms))
		return false;
	*id = v;
	*q = r + TIME_RFC3339_LEN + 1;
	return true;
}

/*
 * "NAME[ TEXT]" from q to end: a valid name, the mark and a valid name
 * (a guest's: e->guest, the name past the mark), "-" for nobody or "*"
 * for an operator; a message needs a text, the other kinds may have none.
 */
static bool
parse_name_text(const char *p, const char *q, const char *end, struct history_entry *e)
{
	const char *name;
	size_t name_len;

	if (!next_field(&q, end, &name, &name_len) || (q == end && name + name_len < end))
		return false; /* no name, or a space and no text */
	e->guest = name[0] == HISTSTORE_GUEST_MARK;
	if (e->guest) { /* then a name: never "~" alone, "~~x", "~-" or "~*" */
		name++;
		name_len--;
	}
	if (!(!e->guest && name_len == 1 && (name[0] == '-' || name[0] == '*')) &&
	    !name_valid(name, name_len))
		return false; /* "-": nobody; "*": an operator */
	if (e->kind == HK_DELETE && (name[0] != '-' || q != end))
		return false;
	if ((q == end && history_kind_message(e->kind)) ||
	    (q < end && text_check(q, (size_t)(end - q)) != TEXT_OK))
		return false;
	e->name_off = (uint16_t)(name - p);
	e->name_len = (uint16_t)name_len;
	e->text_off = (uint32_t)(q - p);
	e->text_len = (uint32_t)(end - q);
	return true;
}

/*
 * A version 2 record "ID TIME ROOM KIND NAME[ TEXT]" (without its '\n')
 * with an id above after, into e (id, kind, room and the fields' offsets).
 */
static bool
parse_record(const char *p, size_t len, uint64_t after, struct history_entry *e)
{
	const char *end = p + len, *q, *room, *kind;
	size_t room_len, kind_len;

	if (len > UINT32_MAX || !parse_id_time(p, end, after, &e->id, &q))
		return false;
	e->time_off = (uint16_t)((const char *)memchr(p, ' ', len) - p + 1);
	if (!next_field(&q, end, &room, &room_len) || !record_room_valid(room, room_len) ||
	    q == end || !next_field(&q, end, &kind, &kind_len) ||
	    !kind_parse(kind, kind_len, &e->kind) || q == end)
		return false;
	e->room_off = (uint16_t)(room - p);
	e->room_len = (uint16_t)room_len;
	memcpy(e->room, room, room_len);
	e->room[room_len] = '\0';
	return parse_name_text(p, q, end, e);
}

/* A version 1 line "ID TIME NAME TEXT", a message, into e (id and the name's and text's offsets). */
static bool
parse_v1(const char *p, size_t len, uint64_t after, struct history_entry *e)
{
	const char *end = p + len, *q;

	if (len > UINT32_MAX || !parse_id_time(p, end, after, &e->id, &q))
		return false;
	e->kind = HK_MSG;
	/* Version 1 had no guests: a marked name is as damaged as any other bad one. */
	return parse_name_text(p, q, end, e) && !e->guest &&
	       name_valid(p + e->name_off, e->name_len);
}

/* --- appending and syncing --- */

/* write_whole() to the history file, adding what it wrote to *written. */
static bool
write_counted(struct histfile *f, const char *buf, size_t len, int64_t *written)
{
	if (!write_whole(f, f->fd, buf, len))
		return false;
	*written += (int64_t)len;
	return true;
}

/*
 * The bodies of the entries that did not fail, in order, with one write()
 * per WRITE_CHUNK bytes: a batch of the group commit is written by the
 * commit thread at once, rather than one write() each from every sender's
 * thread (ten senders took turns at the file system).  f->lock held.
 */
static bool
write_entries(struct histfile *f, const struct history_entry *e, size_t n, int64_t *written)
{
	size_t used = 0;
	bool ok = true;

	for (size_t i = 0; ok && i < n; i++) {
		const struct line *b = e[i].body;

		if (b == NULL) /* refused */
			continue;
		if (used > 0 && used + b->len > WRITE_CHUNK) {
			ok = write_counted(f, f->write_buf, used, written);
			used = 0;
		}
		if (ok && (b->len > WRITE_CHUNK || n == 1)) { /* one record: no copy */
			ok = write_counted(f, b->data, b->len, written);
		} else if (ok) {
			memcpy(f->write_buf + used, b->data, b->len);
			used += b->len;
		}
	}
	if (ok && used > 0)
		ok = write_counted(f, f->write_buf, used, written);
	return ok;
}

static int
file_append(struct histstore *s, const struct history_entry *e, size_t n)
{
	struct histfile *f = (struct histfile *)s;
	int64_t written = 0;
	bool ok;
	int err = 0;

	pthread_mutex_lock(&f->lock);
	ok = (!f->tail_dirty || cut_back_to(f, f->good_off)) && write_entries(f, e, n, &written);
	if (ok) {
		f->good_off += written;
	} else {
		err = errno;
		cut_back_to(f, f->good_off); /* nothing of this call stays, nor a torn line */
	}
	pthread_mutex_unlock(&f->lock);
	errno = err;
	return ok ? 0 : -1;
}

static int
file_sync(struct histstore *s)
{
	struct histfile *f = (struct histfile *)s;
	int64_t off;
	int fd, rc, err;

	pthread_mutex_lock(&f->lock);
	off = f->good_off;
	fd = f->fd; /* compaction, which changes it, runs on the syncing thread */
	pthread_mutex_unlock(&f->lock);
	if (off == f->durable_off) /* only the syncing thread writes it */
		return 0;
	rc = f->io.fdatasync(fd);
	err = errno;
	if (rc == 0) {
		pthread_mutex_lock(&f->lock);
		f->durable_off = off;
		pthread_mutex_unlock(&f->lock);
	}
	errno = err;
	return rc;
}

/*
 * Nothing written after durable_off may stay once a write or a sync has
 * failed (the kernel may have dropped those pages).
 */
static void
file_cut_back(struct histstore *s)
{
	struct histfile *f = (struct histfile *)s;

	pthread_mutex_lock(&f->lock);
	cut_back_to(f, f->durable_off);
	f->good_off = f->durable_off;
	pthread_mutex_unlock(&f->lock);
}

static void
file_stats(struct histstore *s, struct histstore_stats *st)
{
	struct histfile *f = (struct histfile *)s;

	pthread_mutex_lock(&f->lock);
	st->size = f->good_off;
	st->compactions = f->compactions;
	pthread_mutex_unlock(&f->lock);
}

/* --- compaction --- */

/* The end of the bytes that no failure will cut back any more. */
static int64_t
settled_end(const struct histfile *f)
{
	return f->relaxed ? f->good_off : f->durable_off;
}

/*
 * Measured on the settled bytes: a burst of appends not yet synced gives
 * compaction nothing it may cut yet.
 */
static bool
compaction_due(const struct histfile *f)
{
	int64_t end = settled_end(f);

	if (end <= f->max_size)
		return false;
	return end >= f->compact_after_size || time_mono_ms() >= f->compact_after_ms;
}

/*
 * The old file stays; retrying at once would only fail again, so wait for
 * the file to grow some more or for some time to pass.  Without a line to
 * cut at, or when every older record is still held in memory (quiet),
 * there was nothing to gain: not worth a warning, and only growth can
 * change that.
 */
static void
compaction_failed(struct histfile *f, int err, bool quiet)
{
	if (!quiet)
		log_warning("%s: compaction failed, keeping the whole file: %s", f->tmp_path,
			    strerror(err));
	f->compact_after_size = settled_end(f) + f->max_size / 4;
	f->compact_after_ms = quiet ? INT64_MAX : time_mono_ms() + COMPACT_RETRY_MS;
}

static int
mark_cmp(const void *a, const void *b)
{
	return strcmp(((const struct histstore_mark *)a)->key,
		      ((const struct histstore_mark *)b)->key);
}

/*
 * Whether an older record (before the newest half) stays: it is still in
 * its room's memory.  A deleted room has none, and deletions themselves
 * have nothing older left to speak for.  Damaged lines go too.
 */
static bool
keep_older(const struct histstore_mark *m, size_t n, const char *p, size_t len)
{
	struct history_entry e;
	struct histstore_mark want;
	const struct histstore_mark *found;

	if (!parse_record(p, len, 0, &e) || e.kind == HK_DELETE)
		return false;
	histstore_room_key(e.room, e.room_len, want.key);
	found = bsearch(&want, m, n, sizeof(*m), mark_cmp);
	return found && e.id >= found->first_id;
}

/* The lines of [start, end) (whole lines) that keep_older() keeps, into o. */
static bool
filter_range(int from, int64_t start, int64_t end, char *in, const struct histstore_mark *m,
	     size_t nm, struct bufout *o)
{
	bool skipping = false; /* in a line longer than a chunk: dropped */

	while (start < end && o->ok) {
		size_t want = (size_t)(end - start < COPY_CHUNK ? end - start : COPY_CHUNK);
		ssize_t n = pread(from, in, want, start);
		const char *p = in, *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errno = n == 0 ? EIO : errno;
			return false;
		}
		while ((nl = memchr(p, '\n', (size_t)(in + n - p))) != NULL) {
			if (!skipping && keep_older(m, nm, p, (size_t)(nl - p)))
				bufout_put(o, p, (size_t)(nl + 1 - p));
			skipping = false;
			p = nl + 1;
		}
		if (p == in) {
			skipping = true;
			p = in + n;
		}
		start += p - in;
	}
	return o->ok;
}

/*
 * Where the compacted file starts: the first line beginning at or after
 * end - max_size / 2, and never the last line's end, so the newest id
 * survives for the sequence to continue after a restart.  HEADER_LEN when
 * there is no such line (nothing to gain) or it cannot be read.
 */
static int64_t
find_cut(int fd, int64_t end, int64_t max_size, char *buf)
{
	int64_t pos = end - max_size / 2 - 1;

	if (pos < HEADER_LEN)
		return HEADER_LEN;
	while (pos < end - 1) {
		size_t want = (size_t)(end - 1 - pos < COPY_CHUNK ? end - 1 - pos : COPY_CHUNK);
		ssize_t n = pread(fd, buf, want, pos);
		const char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return HEADER_LEN;
		nl = memchr(buf, '\n', (size_t)n);
		if (nl)
			return pos + (nl - buf) + 1;
		pos += n;
	}
	return HEADER_LEN;
}

static bool
copy_range(struct histfile *f, int from, int64_t start, int64_t end, int to, char *buf)
{
	while (start < end) {
		size_t want = (size_t)(end - start < COPY_CHUNK ? end - start : COPY_CHUNK);
		ssize_t n = pread(from, buf, want, start);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EIO;
		if (n <= 0 || !write_whole(f, to, buf, (size_t)n))
			return false;
		start += n;
	}
	return true;
}

/*
 * Into a new temp file, synced: the header, the records before cut still
 * held in memory (marks), then [cut, end) as it is; its fd, *head the
 * end of the first two, or -1 (*nothing: every older record is kept, so
 * there is nothing to gain).  buf is two COPY_CHUNKs.
 */
static int
write_compacted(struct histfile *f, int fd, int64_t cut, int64_t end, char *buf,
		const struct histstore_mark *m, size_t nm, int64_t *head, bool *nothing)
{
	/* O_CREAT keeps the mode of a leftover temp file, so 0600 is set; it becomes the history. */
	int tmp = safefile_open(f->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600,
				SAFEFILE_SETMODE, NULL, 0);
	struct bufout o = { .f = f, .fd = tmp, .buf = buf + COPY_CHUNK, .ok = true };
	int err;

	if (tmp < 0)
		return -1;
	bufout_put(&o, HEADER, HEADER_LEN);
	if (filter_range(fd, HEADER_LEN, cut, buf, m, nm, &o)) {
		bufout_flush(&o);
		*head = o.written;
		*nothing = o.ok && *head == cut;
		if (*nothing)
			errno = 0;
	}
	if (o.ok && !*nothing && copy_range(f, fd, cut, end, tmp, buf) && f->io.fdatasync(tmp) == 0)
		return tmp;
	err = errno;
	close(tmp);
	unlink(f->tmp_path);
	errno = err;
	return -1;
}

/* Under the lock: the appends made meanwhile, then the temp file replaces the old one. */
static bool
finish_compacted(struct histfile *f, int tmp, int64_t end, char *buf)
{
	int err;

	if (copy_range(f, f->fd, end, f->good_off, tmp, buf) && f->io.fdatasync(tmp) == 0 &&
	    rename(f->tmp_path, f->path) == 0)
		return true;
	err = errno;
	close(tmp);
	unlink(f->tmp_path);
	errno = err;
	return false;
}

static void
switch_to_compacted(struct histfile *f, int tmp, int64_t cut, int64_t head)
{
	int64_t shift = cut - head;
	int64_t old_size = f->good_off;

	if (fsync_dir_of(f->path) < 0)
		log_warning("%s: cannot sync its directory after compaction: %s", f->path,
			    strerror(errno));
	close(f->fd);
	f->fd = tmp;
	f->tail_dirty = false;
	f->good_off -= shift;
	/*
	 * The temp file was synced whole, but in durable mode the queued
	 * messages are not published yet: a failed sync must still refuse them.
	 */
	f->durable_off = f->relaxed ? f->good_off : f->durable_off - shift;
	/* What memory holds may keep the file above max_size: then only growth calls again. */
	f->compact_after_size = f->good_off > f->max_size ? f->good_off + f->max_size / 4 : 0;
	f->compact_after_ms = f->good_off > f->max_size ? INT64_MAX : 0;
	f->compactions++;
	log_info("%s: compacted from %" PRId64 " to %" PRId64 " bytes", f->path, old_size,
		 f->good_off);
}

static bool
file_compact_due(struct histstore *s)
{
	struct histfile *f = (struct histfile *)s;
	bool due;

	pthread_mutex_lock(&f->lock);
	due = compaction_due(f);
	pthread_mutex_unlock(&f->lock);
	return due;
}

/*
 * The commit thread alone changes f->fd, so it may read the old file
 * without the lock while appends go on; the lock is held to finish.
 */
static void
file_compact(struct histstore *s, const struct histstore_mark *m, size_t nm)
{
	struct histfile *f = (struct histfile *)s;
	int64_t end, cut = HEADER_LEN, head = HEADER_LEN;
	int fd, tmp = -1, err = ENOMEM;
	char *buf = malloc(2 * COPY_CHUNK);
	bool nothing = false;

	pthread_mutex_lock(&f->lock);
	end = settled_end(f);
	fd = f->fd;
	pthread_mutex_unlock(&f->lock);
	if (buf)
		cut = find_cut(fd, end, f->max_size, buf);
	if (cut > HEADER_LEN) {
		tmp = write_compacted(f, fd, cut, end, buf, m, nm, &head, &nothing);
		err = errno;
	}
	pthread_mutex_lock(&f->lock);
	if (tmp >= 0 && finish_compacted(f, tmp, end, buf))
		switch_to_compacted(f, tmp, cut, head);
	else
		compaction_failed(f, tmp >= 0 ? errno : err, buf && (cut == HEADER_LEN || nothing));
	pthread_mutex_unlock(&f->lock);
	free(buf);
}

/* --- loading --- */

static void
note_damaged(struct loader *ld)
{
	if (ld->damaged++ < DAMAGED_SHOWN)
		log_warning("%s:%zu: damaged history line skipped", ld->path, ld->lineno);
}

/* A valid record at off to the history. */
static void
load_record(struct loader *ld, const struct history_entry *e, size_t off)
{
	if (!ld->to->record(ld->to->ctx, e, ld->data + off))
		ld->out_of_memory = true;
}

static void
scan_records(struct loader *ld)
{
	const char *p = ld->data + HEADER_LEN, *end = ld->data + ld->size;
	const char *nl;
	struct history_entry e;

	ld->lineno = 1;
	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) && !ld->out_of_memory) {
		ld->lineno++;
		if (parse_record(p, (size_t)(nl - p), ld->last_id, &e)) {
			load_record(ld, &e, (size_t)(p - ld->data));
			ld->last_id = e.id;
		} else {
			note_damaged(ld);
		}
		p = nl + 1;
	}
	ld->end = (size_t)(p - ld->data);
	if (ld->damaged > DAMAGED_SHOWN)
		log_warning("%s: %zu damaged history lines skipped in all", ld->path, ld->damaged);
}

/* Each valid v1 line as "ID TIME ROOM msg NAME TEXT\n"; how many. */
static size_t
convert_lines(struct bufout *c, struct loader *ld, const char *room)
{
	const char *p = ld->data + sizeof(HEADER_V1) - 1, *end = ld->data + ld->size, *nl;
	size_t converted = 0;
	struct history_entry e;

	ld->lineno = 1;
	while (c->ok && p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		ld->lineno++;
		if (parse_v1(p, (size_t)(nl - p), ld->last_id, &e)) {
			bufout_put(c, p, e.name_off);
			bufout_put(c, room, strlen(room));
			bufout_put(c, " msg ", 5);
			bufout_put(c, p + e.name_off, (size_t)(nl + 1 - p) - e.name_off);
			ld->last_id = e.id;
			converted++;
		} else {
			note_damaged(ld);
		}
		p = nl + 1;
	}
	if (p < end)
		log_warning("%s:%zu: torn last line cut off", ld->path, ld->lineno + 1);
	return converted;
}

/*
 * Rewrites the mapped version 1 file as version 2 (atomically: temp file,
 * fsync, rename, directory fsync), every message in the default room, and
 * makes the new file f->fd.
 */
static int
convert_v1(struct histfile *f, struct loader *ld, const char *room, char *err, size_t errlen)
{
	struct bufout c = { .f = f, .ok = true };
	size_t n;

	c.buf = malloc(COPY_CHUNK);
	if (!c.buf) {
		snprintf(err, errlen, "%s: out of memory", f->path);
		return -1;
	}
	c.fd = safefile_open(f->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600,
			     SAFEFILE_SETMODE, err, errlen);
	if (c.fd < 0) {
		free(c.buf);
		return -1;
	}
	bufout_put(&c, HEADER, HEADER_LEN);
	n = convert_lines(&c, ld, room);
	bufout_flush(&c);
	free(c.buf);
	if (!c.ok || f->io.fdatasync(c.fd) < 0 || rename(f->tmp_path, f->path) < 0) {
		snprintf(err, errlen, "%s: cannot convert to version 2: %s", f->tmp_path,
			 strerror(errno));
		close(c.fd);
		unlink(f->tmp_path);
		return -1;
	}
	if (fsync_dir_of(f->path) < 0)
		log_warning("%s: cannot sync its directory after conversion: %s", f->path,
			    strerror(errno));
	close(f->fd);
	f->fd = c.fd;
	log_info("%s: converted from version 1 to version 2 (%zu messages, in room %s)", f->path, n,
		 room);
	return 0;
}

/* An empty file is one whose creation was cut short: it gets its header. */
static int
init_empty(struct histfile *f)
{
	if (!write_whole(f, f->fd, HEADER, HEADER_LEN) || f->io.fdatasync(f->fd) < 0 ||
	    fsync_dir_of(f->path) < 0)
		return -1;
	f->good_off = f->durable_off = HEADER_LEN;
	return 0;
}

static int load_file(struct histfile *f, const struct histstore_loader *to, uint64_t *last_id,
		     char *err, size_t errlen);

static int
load_messages(struct histfile *f, size_t size, const struct histstore_loader *to, uint64_t *last_id,
	      char *err, size_t errlen)
{
	struct loader ld = { .path = f->path, .size = size, .to = to };
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, f->fd, 0);
	int rc = -1;

	if (map == MAP_FAILED) {
		snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
		return -1;
	}
	ld.data = map;
	madvise(map, size, MADV_SEQUENTIAL);
	if (size >= sizeof(HEADER_V1) - 1 &&
	    memcmp(ld.data, HEADER_V1, sizeof(HEADER_V1) - 1) == 0) {
		rc = convert_v1(f, &ld, f->default_room, err, errlen);
		munmap(map, size);
		return rc < 0 ? -1 : load_file(f, to, last_id, err, errlen);
	}
	if (memcmp(ld.data, HEADER, HEADER_LEN) != 0) {
		snprintf(err, errlen, "%s: " UNKNOWN_FORMAT, f->path);
		goto out;
	}
	scan_records(&ld);
	if (ld.out_of_memory || !to->done(to->ctx)) {
		snprintf(err, errlen, "%s: out of memory", f->path);
		goto out;
	}
	*last_id = ld.last_id;
	f->good_off = f->durable_off = (int64_t)ld.end;
	if (ld.end < size) {
		log_warning("%s:%zu: torn last line cut off", f->path, ld.lineno + 1);
		cut_back_to(f, f->good_off);
	}
	rc = 0;
out:
	munmap(map, size);
	return rc;
}

static int
load_file(struct histfile *f, const struct histstore_loader *to, uint64_t *last_id, char *err,
	  size_t errlen)
{
	struct stat st;

	if (fstat(f->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", f->path);
		return -1;
	}
	if (st.st_size == 0) {
		if (init_empty(f) == 0)
			return 0;
		snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
		return -1;
	}
	if (st.st_size < HEADER_LEN || (uint64_t)st.st_size > SIZE_MAX) {
		snprintf(err, errlen, "%s: " UNKNOWN_FORMAT, f->path);
		return -1;
	}
	return load_messages(f, (size_t)st.st_size, to, last_id, err, errlen);
}

static int
file_load(struct histstore *s, const struct histstore_loader *to, uint64_t *last_id, char *err,
	  size_t errlen)
{
	struct histfile *f = (struct histfile *)s;

	*last_id = 0;
	return load_file(f, to, last_id, err, errlen);
}

static void
file_close(struct histstore *s)
{
	struct histfile *f = (struct histfile *)s;

	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	pthread_mutex_destroy(&f->lock);
	free(f->write_buf);
	free(f->tmp_path);
	free(f->path);
	free(f);
}

static const struct histstore_ops file_ops = {
	.load = file_load,
	.append = file_append,
	.sync = file_sync,
	.cut_back = file_cut_back,
	.compact_due = file_compact_due,
	.compact = file_compact,
	.stats = file_stats,
	.close = file_close,
};

struct histstore *
histfile_open(const struct histfile_config *cfg, char *err, size_t errlen)
{
	struct histfile *f = calloc(1, sizeof(*f));

	if (!f || pthread_mutex_init(&f->lock, NULL) != 0) {
		free(f);
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		return NULL;
	}
	f->base.ops = &file_ops;
	f->fd = -1;
	if (cfg->max_size <= HEADER_LEN ||
	    !record_room_valid(cfg->default_room, strlen(cfg->default_room))) {
		snprintf(err, errlen, "%s",
			 cfg->max_size <= HEADER_LEN ? "history max size is too small"
						     : "the default room's name is not valid");
		file_close(&f->base);
		return NULL;
	}
	f->max_size = cfg->max_size;
	f->relaxed = cfg->relaxed;
	f->io = cfg->io ? *cfg->io : libc_io;
	snprintf(f->default_room, sizeof(f->default_room), "%s", cfg->default_room);
	f->path = strdup(cfg->path);
	if (f->path && asprintf(&f->tmp_path, "%s.tmp", cfg->path) < 0)
		f->tmp_path = NULL;
	f->write_buf = malloc(WRITE_CHUNK);
	if (!f->path || !f->tmp_path || !f->write_buf) {
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		file_close(&f->base);
		return NULL;
	}
	/* Chat text is private, whatever mode a copy put back by hand had; never through a link. */
	f->fd = safefile_open(f->path, O_RDWR | O_CREAT | O_APPEND, 0600, SAFEFILE_SETMODE, err,
			      errlen);
	if (f->fd < 0) {
		file_close(&f->base);
		return NULL;
	}
	return &f->base;
}
