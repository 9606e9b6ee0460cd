/*
 * history.c - the room's history file, its group commit (the commit
 * thread), compaction, and the ring of newest messages kept in memory.
 *
 * Offsets into the file, from the end backwards:
 *
 *	good_off	end of the last successful write: where the next
 *			append lands (the file is O_APPEND and cut back here
 *			whenever a write fails)
 *	durable_off	end of what the last fdatasync() covered
 *
 * In durable mode (sync_ms == 0) the commit thread writes and syncs each
 * batch, and the bytes before durable_off never change again: a failed
 * write or sync only cuts back to it.  In relaxed mode messages are
 * published once written, so it is good_off that nothing cuts back past.
 * Compaction copies those settled bytes without holding the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "history.h"
#include "log.h"
#include "names.h"
#include "safefile.h"
#include "timefmt.h"
#include "utf8.h"

#define HEADER "chatd-history 2\n"
#define HEADER_LEN ((int64_t)sizeof(HEADER) - 1)
#define HEADER_V1 "chatd-history 1\n" /* converted at open */
#define UNKNOWN_FORMAT "unknown format (expected 'chatd-history 2')"
#define DEFAULT_ROOM "lobby"
#define KIND_MAX_LEN 6                /* "delete" */
#define ID_MAX_DIGITS 19              /* below 2^64: the next id cannot wrap */
#define ID_MAX 9999999999999999999ULL /* the largest id of ID_MAX_DIGITS */
#define DAMAGED_SHOWN 10              /* damaged lines named one by one at load */
#define WARN_INTERVAL_MS 10000        /* write/sync failures: one warning per */
#define SLOW_SYNC_MS 100              /* a sync this long is worth a warning */
#define COMPACT_RETRY_MS 60000
#define COPY_CHUNK (1 << 20)
#define WRITE_CHUNK (64 * 1024) /* durable mode: bytes of a batch per write() */

/* One warning of a kind per WARN_INTERVAL_MS; the others are counted. */
struct warn_gate {
	int64_t quiet_until;
	unsigned long held; /* held back since the last warning */
};

struct entry_vec {
	struct history_entry *e;
	size_t n, cap;
};

/* The newest messages, oldest first from head; ids strictly increase. */
struct ring {
	struct history_entry *e;
	size_t cap, head, n;
};

struct history {
	char *path;
	char *tmp_path;
	char default_room[ROOM_NAME_MAX + 1]; /* a version 1 file's messages go here */
	size_t memory;
	int64_t max_size;
	int sync_ms;
	struct history_io io;
	history_publish_fn publish;
	void *ctx;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the commit thread waits here */
	bool stopping;
	bool publishing; /* a thread is in the publish callback */

	int fd;
	int64_t good_off;
	int64_t durable_off;
	bool tail_dirty; /* a cut back failed: bytes past good_off */
	uint64_t next_id;
	uint64_t last_id;       /* the newest id published as stored */
	struct entry_vec queue; /* appended, waiting for the next sync (relaxed: to be published) */
	/*
	 * Messages appended and not yet handed to the publish callback (queue
	 * and batch), and the bytes of their bodies: the backlog a burst
	 * piles up.  Written under the lock, read without it (history_backlog).
	 */
	atomic_size_t backlog_msgs, backlog_bytes;
	struct entry_vec batch; /* being synced or published */
	char *write_buf;        /* durable mode: the commit thread's, WRITE_CHUNK */
	struct ring ring;

	int64_t compact_after_size; /* after a failed compaction: retry when */
	int64_t compact_after_ms;   /* the file reaches this, or at this time */

	struct warn_gate io_warnings;   /* failed writes and syncs */
	struct warn_gate slow_warnings; /* slow syncs */
	int64_t slow_longest_ms;        /* of the slow syncs held back */

	uint64_t appended, failed, compactions;
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

/* Lock held: only the writers of the counters hold it, so load and store do not race. */
static void
backlog_add(atomic_size_t *v, size_t n)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void
backlog_sub(atomic_size_t *v, size_t n)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) - n,
			      memory_order_relaxed);
}

/*
 * Whether a warning may go out now; if not, it is counted.  *held is how
 * many were held back before this one.
 */
static bool
warn_gate_pass(struct warn_gate *g, unsigned long *held)
{
	int64_t now = time_mono_ms();

	if (now < g->quiet_until) {
		g->held++;
		return false;
	}
	*held = g->held;
	g->held = 0;
	g->quiet_until = now + WARN_INTERVAL_MS;
	return true;
}

/*
 * A disk that is full stays full for a while: one warning per interval,
 * with the count of those held back, instead of one per refused message.
 */
static void
warn_io(struct history *h, const char *what, int err)
{
	unsigned long held;

	if (!warn_gate_pass(&h->io_warnings, &held))
		return;
	if (held)
		log_warning("%s: %s: %s (and %lu more since the last warning)", h->path, what,
			    strerror(err), held);
	else
		log_warning("%s: %s: %s", h->path, what, strerror(err));
}

/*
 * A short write to a regular file means the disk (or a size limit) is
 * full: retrying would only fail or tear the line further.
 */
static bool
write_whole(struct history *h, int fd, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = h->io.write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n >= 0 && (size_t)n < len)
		errno = ENOSPC;
	return n >= 0 && (size_t)n == len;
}

/* Until the cut succeeds, every append retries it: nothing may follow a torn line. */
static bool
cut_back(struct history *h, int64_t off)
{
	if (ftruncate(h->fd, off) == 0) {
		h->tail_dirty = false;
		return true;
	}
	int err = errno;

	h->tail_dirty = true;
	warn_io(h, "cannot cut the file back", err);
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

static struct history_entry *
ring_at(const struct ring *r, size_t i)
{
	return &r->e[(r->head + i) % r->cap];
}

/* Takes over e's reference; the oldest message falls out when full. */
static void
ring_push(struct ring *r, struct history_entry e)
{
	if (r->n < r->cap) {
		*ring_at(r, r->n++) = e;
		return;
	}
	line_unref(r->e[r->head].body);
	r->e[r->head] = e;
	r->head = (r->head + 1) % r->cap;
}

/* How many messages in the ring have an id <= id. */
static size_t
ring_rank(const struct ring *r, uint64_t id)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ring_at(r, mid)->id <= id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Moves the stored entries of v into the memory ring, then hands v to the
 * publish callback with the history lock dropped (called and returns with
 * it held), and empties v.  The room writes a batch to a thousand members
 * in milliseconds: meanwhile senders go on appending.  The ring comes
 * first, so a member who joins meanwhile finds in it every message up to
 * the room's last id, and the room delivers the rest: nothing is missed or
 * seen twice.  Only one thread publishes at a time (the commit thread, or
 * in relaxed mode whichever sender finds nobody publishing), which keeps
 * the order; v is that thread's own while the lock is dropped.
 */
static void
publish_entries(struct history *h, struct entry_vec *v)
{
	struct history_entry *e = v->e;
	size_t n = v->n;

	if (n == 0)
		return;
	/*
	 * Out of the backlog before the room sees them: a sender held back by
	 * it (client.c) is woken by this publication and must find it smaller.
	 */
	backlog_sub(&h->backlog_msgs, n);
	for (size_t i = 0; i < n; i++) {
		if (e[i].failed) {
			h->failed++;
			continue;
		}
		backlog_sub(&h->backlog_bytes, e[i].body->len);
		h->appended++;
		h->last_id = e[i].id;
		struct history_entry kept = e[i];

		kept.body = line_ref(e[i].body);
		ring_push(&h->ring, kept);
	}
	h->publishing = true;
	pthread_mutex_unlock(&h->lock);
	h->publish(h->ctx, e, n);
	pthread_mutex_lock(&h->lock);
	h->publishing = false;
	for (size_t i = 0; i < n; i++)
		line_unref(e[i].body);
	v->n = 0;
}

/* Takes the queue and publishes it; lock held.  Others may queue meanwhile. */
static void
publish_queued(struct history *h)
{
	struct entry_vec taken = h->queue;

	h->queue = h->batch;
	h->batch = taken;
	publish_entries(h, &h->batch);
}

/* Lock held; e is in the backlog (queued or in the batch): it becomes a failed entry (ERR 507). */
static void
fail_entry(struct history *h, struct history_entry *e)
{
	if (e->body)
		backlog_sub(&h->backlog_bytes, e->body->len);
	line_unref(e->body);
	e->body = NULL;
	e->id = 0;
	e->failed = true;
	e->time_off = e->room_off = e->room_len = e->name_off = e->name_len = 0;
	e->text_off = e->text_len = 0;
}

static void
fail_entries(struct history *h, struct entry_vec *v)
{
	for (size_t i = 0; i < v->n; i++)
		fail_entry(h, &v->e[i]);
}

/* Reserved before writing, so a message that was written is always queued. */
static bool
vec_reserve(struct entry_vec *v)
{
	size_t cap;
	struct history_entry *e;

	if (v->n < v->cap)
		return true;
	cap = v->cap ? 2 * v->cap : 64;
	e = realloc(v->e, cap * sizeof(*e));
	if (!e)
		return false;
	v->e = e;
	v->cap = cap;
	return true;
}

static const char *const kind_names[] = {
	[HK_MSG] = "msg",     [HK_JOIN] = "join",     [HK_PART] = "part",
	[HK_TOPIC] = "topic", [HK_DELETE] = "delete",
};

const char *
history_kind_name(enum history_kind kind)
{
	return (unsigned)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : "?";
}

/* The record "ID TIME ROOM KIND NAME[ TEXT]\n" for e (id, kind and room set), its fields noted. */
static struct line *
format_body(struct history_entry *e, const char *name, const char *text, size_t text_len)
{
	char ts[TIME_RFC3339_LEN + 1];
	char head[ID_MAX_DIGITS + 1 + TIME_RFC3339_LEN + 1 + ROOM_NAME_MAX + 1 + KIND_MAX_LEN + 1 +
		  NAME_MAX_LEN + 2];
	const char *kind = history_kind_name(e->kind);
	size_t room_len = strlen(e->room), name_len = strlen(name), len;
	struct line *l;
	int n;

	time_format_ms(ts, time_now_ms());
	n = snprintf(head, sizeof(head), "%" PRIu64 " %s %s %s %s%s", e->id, ts, e->room, kind,
		     name, text_len ? " " : "");
	if (n < 0 || (size_t)n >= sizeof(head) || text_len > UINT32_MAX - sizeof(head)) {
		errno = EINVAL;
		return NULL;
	}
	len = (size_t)n + text_len + 1;
	l = line_new(len);
	if (!l)
		return NULL;
	memcpy(l->data, head, (size_t)n);
	memcpy(l->data + n, text, text_len);
	l->data[len - 1] = '\n';
	e->time_off = (uint16_t)(strchr(head, ' ') - head + 1);
	e->room_off = (uint16_t)(e->time_off + TIME_RFC3339_LEN + 1);
	e->room_len = (uint16_t)room_len;
	e->name_off = (uint16_t)(e->room_off + room_len + 1 + strlen(kind) + 1);
	e->name_len = (uint16_t)name_len;
	e->text_off = (uint32_t)n;
	e->text_len = (uint32_t)text_len;
	return l;
}

static bool
store_body(struct history *h, const struct line *body)
{
	int err;

	if (h->tail_dirty && !cut_back(h, h->good_off))
		return false;
	if (write_whole(h, h->fd, body->data, body->len))
		return true;
	err = errno;
	warn_io(h, "write failed, message refused", err);
	cut_back(h, h->good_off);
	return false;
}

int
history_append(struct history *h, uint64_t sender, const char *room, enum history_kind kind,
	       const char *name, const char *text, size_t text_len)
{
	struct history_entry e = { .sender = sender, .kind = kind };
	size_t room_len = strlen(room);
	int err;

	if (room_len == 0 || room_len > ROOM_NAME_MAX) {
		errno = EINVAL;
		return -1;
	}
	memcpy(e.room, room, room_len + 1);
	if (!name || !*name)
		name = "-";
	pthread_mutex_lock(&h->lock);
	if (!vec_reserve(&h->queue)) {
		err = ENOMEM;
		goto fail;
	}
	e.id = h->next_id;
	e.body = format_body(&e, name, text, text_len);
	if (!e.body) {
		err = errno;
		goto fail;
	}
	/*
	 * The loader skips an id longer than ID_MAX_DIGITS as damaged, so once
	 * the ids reach ID_MAX (a hand-edited file) no message can be stored:
	 * it would be lost at the next start and its id given out again.
	 */
	backlog_add(&h->backlog_msgs, 1);
	backlog_add(&h->backlog_bytes, e.body->len);
	if (e.id > ID_MAX) {
		warn_io(h, "no message ids left, message refused", EOVERFLOW);
		fail_entry(h, &e);
	} else if (h->sync_ms == 0) {
		h->next_id++; /* the commit thread writes it */
	} else if (store_body(h, e.body)) {
		h->next_id++;
		h->good_off += e.body->len;
	} else {
		fail_entry(h, &e);
	}
	h->queue.e[h->queue.n++] = e;
	/*
	 * Relaxed mode publishes written messages at once, from the sender's
	 * thread, unless someone is publishing: then the message waits in the
	 * queue for the next batch.  A sender publishes one batch only and
	 * leaves what came meanwhile to the commit thread, or under steady
	 * load it would never get back to its own client.
	 */
	if (h->sync_ms > 0 && !h->publishing)
		publish_queued(h);
	if (h->queue.n > 0)
		pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	return 0;
fail:
	pthread_mutex_unlock(&h->lock);
	errno = err;
	return -1;
}

/*
 * In durable mode nobody sees a message before its sync, so a disk that
 * stalls stalls the room: the log says so, or the operator sees late
 * messages and a quiet daemon.
 */
static void
note_sync_time(struct history *h, int64_t ms)
{
	unsigned long held;

	if (ms < SLOW_SYNC_MS)
		return;
	if (!warn_gate_pass(&h->slow_warnings, &held)) {
		if (ms > h->slow_longest_ms)
			h->slow_longest_ms = ms;
		return;
	}
	if (held)
		log_warning("%s: a disk sync took %" PRId64 " ms (and %lu more took %d ms or more "
			    "since the last warning, the longest %" PRId64 " ms)",
			    h->path, ms, held, SLOW_SYNC_MS, h->slow_longest_ms);
	else
		log_warning("%s: a disk sync took %" PRId64 " ms", h->path, ms);
	h->slow_longest_ms = 0;
}

/* Called and returns with the lock held; appends go on meanwhile: the group commit. */
static int
sync_unlocked(struct history *h, int fd, int *err)
{
	int64_t start = time_mono_ms();
	int rc;

	pthread_mutex_unlock(&h->lock);
	fault_slow_sync();
	rc = h->io.fdatasync(fd);
	*err = errno;
	pthread_mutex_lock(&h->lock);
	note_sync_time(h, time_mono_ms() - start);
	return rc;
}

/*
 * Nothing written after durable_off may be published any more once a write
 * or a sync has failed (the kernel may have dropped those pages), so every
 * message not yet durable is refused, in order, and its id given out again.
 */
static void
refuse_undurable(struct history *h)
{
	fail_entries(h, &h->batch);
	/* The next commit publishes these, in order, before what comes after. */
	fail_entries(h, &h->queue);
	cut_back(h, h->durable_off);
	h->good_off = h->durable_off;
	h->next_id = h->last_id + 1;
	publish_entries(h, &h->batch);
}

/* write_whole() to the history file, adding what it wrote to *written. */
static bool
write_counted(struct history *h, const char *buf, size_t len, int64_t *written)
{
	if (!write_whole(h, h->fd, buf, len))
		return false;
	*written += (int64_t)len;
	return true;
}

/*
 * Durable mode: the batch's messages, in order, with one write() per
 * WRITE_CHUNK bytes from the commit thread, rather than one write() each
 * from every sender's thread with the lock held (ten senders took turns
 * at the file system).  Called and returns with the lock held; only the
 * commit thread writes the file in this mode, so it writes unlocked.
 */
static bool
write_batch_unlocked(struct history *h, const struct entry_vec *v, int *err)
{
	size_t used = 0;
	int64_t written = 0;
	bool ok = true;

	if (h->tail_dirty && !cut_back(h, h->good_off)) {
		*err = errno;
		return false;
	}
	pthread_mutex_unlock(&h->lock);
	for (size_t i = 0; ok && i < v->n; i++) {
		const struct line *b = v->e[i].body;

		if (b == NULL) /* refused */
			continue;
		if (used > 0 && used + b->len > WRITE_CHUNK) {
			ok = write_counted(h, h->write_buf, used, &written);
			used = 0;
		}
		if (ok && b->len > WRITE_CHUNK) { /* longer than any line chatd takes */
			ok = write_counted(h, b->data, b->len, &written);
		} else if (ok) {
			memcpy(h->write_buf + used, b->data, b->len);
			used += b->len;
		}
	}
	if (ok && used > 0)
		ok = write_counted(h, h->write_buf, used, &written);
	*err = errno;
	pthread_mutex_lock(&h->lock);
	h->good_off += written;
	return ok;
}

static void
commit_queue(struct history *h)
{
	struct entry_vec taken = h->queue;
	int err = 0;

	if (taken.n == 0)
		return;
	h->queue = h->batch;
	h->batch = taken;
	if (!write_batch_unlocked(h, &h->batch, &err)) {
		warn_io(h, "write failed, unsynced messages refused", err);
		refuse_undurable(h);
		return;
	}
	/* A batch of refusals only has nothing new to sync. */
	if (h->good_off != h->durable_off && sync_unlocked(h, h->fd, &err) != 0) {
		warn_io(h, "fdatasync failed, unsynced messages refused", err);
		refuse_undurable(h);
		return;
	}
	h->durable_off = h->good_off;
	publish_entries(h, &h->batch);
}

static void
sync_written(struct history *h)
{
	int64_t off = h->good_off;
	int err;

	if (off == h->durable_off)
		return;
	if (sync_unlocked(h, h->fd, &err) == 0)
		h->durable_off = off;
	else
		warn_io(h, "fdatasync failed, the last messages may not survive a crash", err);
}

/* The end of the bytes that no failure will cut back any more. */
static int64_t
settled_end(const struct history *h)
{
	return h->sync_ms ? h->good_off : h->durable_off;
}

/*
 * Measured on the settled bytes: a burst of appends not yet synced gives
 * compaction nothing it may cut yet.
 */
static bool
compaction_due(const struct history *h)
{
	int64_t end = settled_end(h);

	if (end <= h->max_size)
		return false;
	return end >= h->compact_after_size || time_mono_ms() >= h->compact_after_ms;
}

/*
 * The old file stays; retrying at once would only fail again, so wait for
 * the file to grow some more or for some time to pass.  Without a line to
 * cut at (quiet) there was nothing to gain: not worth a warning.
 */
static void
compaction_failed(struct history *h, int err, bool quiet)
{
	if (!quiet)
		log_warning("%s: compaction failed, keeping the whole file: %s", h->tmp_path,
			    strerror(err));
	h->compact_after_size = settled_end(h) + h->max_size / 4;
	h->compact_after_ms = time_mono_ms() + COMPACT_RETRY_MS;
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
copy_range(struct history *h, int from, int64_t start, int64_t end, int to, char *buf)
{
	while (start < end) {
		size_t want = (size_t)(end - start < COPY_CHUNK ? end - start : COPY_CHUNK);
		ssize_t n = pread(from, buf, want, start);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			errno = EIO;
		if (n <= 0 || !write_whole(h, to, buf, (size_t)n))
			return false;
		start += n;
	}
	return true;
}

/* Header and [cut, end) into a new temp file, synced; its fd or -1. */
static int
write_compacted(struct history *h, int fd, int64_t cut, int64_t end, char *buf)
{
	/* O_CREAT keeps the mode of a leftover temp file, so 0600 is set; it becomes the history. */
	int tmp = safefile_open(h->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600,
				SAFEFILE_SETMODE, NULL, 0);
	int err;

	if (tmp < 0)
		return -1;
	if (write_whole(h, tmp, HEADER, HEADER_LEN) && copy_range(h, fd, cut, end, tmp, buf) &&
	    h->io.fdatasync(tmp) == 0)
		return tmp;
	err = errno;
	close(tmp);
	unlink(h->tmp_path);
	errno = err;
	return -1;
}

/* Under the lock: the appends made meanwhile, then the temp file replaces the old one. */
static bool
finish_compacted(struct history *h, int tmp, int64_t end, char *buf)
{
	int err;

	if (copy_range(h, h->fd, end, h->good_off, tmp, buf) && h->io.fdatasync(tmp) == 0 &&
	    rename(h->tmp_path, h->path) == 0)
		return true;
	err = errno;
	close(tmp);
	unlink(h->tmp_path);
	errno = err;
	return false;
}

static void
switch_to_compacted(struct history *h, int tmp, int64_t cut)
{
	int64_t shift = cut - HEADER_LEN;
	int64_t old_size = h->good_off;

	if (fsync_dir_of(h->path) < 0)
		log_warning("%s: cannot sync its directory after compaction: %s", h->path,
			    strerror(errno));
	close(h->fd);
	h->fd = tmp;
	h->tail_dirty = false;
	h->good_off -= shift;
	/*
	 * The temp file was synced whole, but in durable mode the queued
	 * messages are not published yet: a failed sync must still refuse them.
	 */
	h->durable_off = h->sync_ms ? h->good_off : h->durable_off - shift;
	h->compact_after_size = 0;
	h->compact_after_ms = 0;
	h->compactions++;
	log_info("%s: compacted from %" PRId64 " to %" PRId64 " bytes", h->path, old_size,
		 h->good_off);
}

/*
 * Called with the lock held, by the commit thread only: it alone changes
 * h->fd, so it may read the old file unlocked while appends go on.
 */
static void
compact(struct history *h)
{
	int64_t end = settled_end(h);
	int fd = h->fd;
	char *buf;
	int64_t cut = HEADER_LEN;
	int tmp = -1, err = ENOMEM;

	pthread_mutex_unlock(&h->lock);
	buf = malloc(COPY_CHUNK);
	if (buf)
		cut = find_cut(fd, end, h->max_size, buf);
	if (cut > HEADER_LEN) {
		tmp = write_compacted(h, fd, cut, end, buf);
		err = errno;
	}
	pthread_mutex_lock(&h->lock);
	if (tmp >= 0 && finish_compacted(h, tmp, end, buf))
		switch_to_compacted(h, tmp, cut);
	else
		compaction_failed(h, tmp >= 0 ? errno : err, buf && cut == HEADER_LEN);
	free(buf);
}

/* Queued messages a publisher can take: in relaxed mode, once nobody is publishing. */
static bool
queue_ready(const struct history *h)
{
	return h->queue.n > 0 && (h->sync_ms == 0 || !h->publishing);
}

static bool
time_reached(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/*
 * Waits for queued messages or, in relaxed mode, for the time of the next
 * sync; returns whether history_close() asked the thread to stop.
 */
static bool
wait_for_work(struct history *h, const struct timespec *sync_at)
{
	while (!h->stopping && !queue_ready(h)) {
		if (h->sync_ms == 0)
			pthread_cond_wait(&h->wake, &h->lock);
		else if (pthread_cond_timedwait(&h->wake, &h->lock, sync_at) == ETIMEDOUT)
			break;
	}
	return h->stopping;
}

static void *
commit_thread(void *arg)
{
	struct history *h = arg;
	struct timespec sync_at = time_after_ms(CLOCK_MONOTONIC, h->sync_ms);

	pthread_mutex_lock(&h->lock);
	for (;;) {
		bool stopping = wait_for_work(h, &sync_at);

		if (h->sync_ms == 0) {
			commit_queue(h);
		} else {
			while (queue_ready(h))
				publish_queued(h);
			if (stopping || time_reached(&sync_at)) {
				sync_written(h);
				sync_at = time_after_ms(CLOCK_MONOTONIC, h->sync_ms);
			}
		}
		if (stopping && h->queue.n == 0)
			break;
		if (compaction_due(h))
			compact(h);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* --- loading --- */

/* Where a valid line is in the mapped file. */
struct slot {
	size_t off, len;
	uint64_t id;
};

struct loader {
	const char *path;
	const char *data;
	size_t size;
	struct slot *slots; /* the newest valid lines: slots[i % cap] */
	size_t cap;
	size_t valid;
	uint64_t last_id;
	size_t end; /* end of the last complete line */
	size_t lineno;
	size_t damaged;
};

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
	for (size_t k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
		if (strlen(kind_names[k]) == len && memcmp(kind_names[k], s, len) == 0) {
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
 * "NAME[ TEXT]" from q to end: a valid name, or "-" for nobody; a message
 * needs a text, the other kinds may have none.
 */
static bool
parse_name_text(const char *p, const char *q, const char *end, struct history_entry *e)
{
	const char *name;
	size_t name_len;

	if (!next_field(&q, end, &name, &name_len))
		return false;
	if (!(name_len == 1 && name[0] == '-') && !name_valid(name, name_len))
		return false;
	if (e->kind == HK_DELETE && (name[0] != '-' || q != end))
		return false;
	if ((q == end && e->kind == HK_MSG) ||
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
	return parse_name_text(p, q, end, e) && p[e->name_off] != '-';
}

static void
note_damaged(struct loader *ld)
{
	if (ld->damaged++ < DAMAGED_SHOWN)
		log_warning("%s:%zu: damaged history line skipped", ld->path, ld->lineno);
}

static void
scan_records(struct loader *ld)
{
	const char *p = ld->data + HEADER_LEN, *end = ld->data + ld->size;
	const char *nl;
	struct history_entry e;

	ld->lineno = 1;
	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		ld->lineno++;
		if (parse_record(p, (size_t)(nl - p), ld->last_id, &e)) {
			ld->slots[ld->valid++ % ld->cap] =
				(struct slot){ (size_t)(p - ld->data), (size_t)(nl + 1 - p), e.id };
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

static bool
fill_ring(struct history *h, const struct loader *ld)
{
	size_t first = ld->valid > ld->cap ? ld->valid - ld->cap : 0;

	for (size_t i = first; i < ld->valid; i++) {
		const struct slot *s = &ld->slots[i % ld->cap];
		struct history_entry e = { 0 };

		parse_record(ld->data + s->off, s->len - 1, 0, &e);
		e.body = line_new(s->len);
		if (!e.body)
			return false;
		memcpy(e.body->data, ld->data + s->off, s->len);
		ring_push(&h->ring, e);
	}
	return true;
}

/* --- converting a version 1 file --- */

struct converter {
	struct history *h;
	int fd;
	char *buf; /* COPY_CHUNK */
	size_t used;
	bool ok;
};

static void
conv_put(struct converter *c, const char *p, size_t len)
{
	while (c->ok && len > 0) {
		size_t n = COPY_CHUNK - c->used < len ? COPY_CHUNK - c->used : len;

		memcpy(c->buf + c->used, p, n);
		c->used += n;
		p += n;
		len -= n;
		if (c->used == COPY_CHUNK) {
			c->ok = write_whole(c->h, c->fd, c->buf, c->used);
			c->used = 0;
		}
	}
}

/* Each valid v1 line as "ID TIME ROOM msg NAME TEXT\n"; how many. */
static size_t
convert_lines(struct converter *c, struct loader *ld, const char *room)
{
	const char *p = ld->data + sizeof(HEADER_V1) - 1, *end = ld->data + ld->size, *nl;
	size_t converted = 0;
	struct history_entry e;

	ld->lineno = 1;
	while (c->ok && p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		ld->lineno++;
		if (parse_v1(p, (size_t)(nl - p), ld->last_id, &e)) {
			conv_put(c, p, e.name_off);
			conv_put(c, room, strlen(room));
			conv_put(c, " msg ", 5);
			conv_put(c, p + e.name_off, (size_t)(nl + 1 - p) - e.name_off);
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
 * makes the new file h->fd.
 */
static int
convert_v1(struct history *h, struct loader *ld, const char *room, char *err, size_t errlen)
{
	struct converter c = { .h = h, .ok = true };
	size_t n;

	c.buf = malloc(COPY_CHUNK);
	if (!c.buf) {
		snprintf(err, errlen, "%s: out of memory", h->path);
		return -1;
	}
	c.fd = safefile_open(h->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600,
			     SAFEFILE_SETMODE, err, errlen);
	if (c.fd < 0) {
		free(c.buf);
		return -1;
	}
	conv_put(&c, HEADER, HEADER_LEN);
	n = convert_lines(&c, ld, room);
	if (c.ok && c.used > 0)
		c.ok = write_whole(h, c.fd, c.buf, c.used);
	free(c.buf);
	if (!c.ok || h->io.fdatasync(c.fd) < 0 || rename(h->tmp_path, h->path) < 0) {
		snprintf(err, errlen, "%s: cannot convert to version 2: %s", h->tmp_path,
			 strerror(errno));
		close(c.fd);
		unlink(h->tmp_path);
		return -1;
	}
	if (fsync_dir_of(h->path) < 0)
		log_warning("%s: cannot sync its directory after conversion: %s", h->path,
			    strerror(errno));
	close(h->fd);
	h->fd = c.fd;
	log_info("%s: converted from version 1 to version 2 (%zu messages, in room %s)", h->path, n,
		 room);
	return 0;
}

/* An empty file is one whose creation was cut short: it gets its header. */
static int
init_empty(struct history *h)
{
	if (!write_whole(h, h->fd, HEADER, HEADER_LEN) || h->io.fdatasync(h->fd) < 0 ||
	    fsync_dir_of(h->path) < 0)
		return -1;
	h->good_off = h->durable_off = HEADER_LEN;
	return 0;
}

static int load_file(struct history *h, char *err, size_t errlen);

static int
load_messages(struct history *h, size_t size, char *err, size_t errlen)
{
	struct loader ld = { .path = h->path, .size = size, .cap = h->memory };
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, h->fd, 0);
	int rc = -1;

	if (map == MAP_FAILED) {
		snprintf(err, errlen, "%s: %s", h->path, strerror(errno));
		return -1;
	}
	ld.data = map;
	madvise(map, size, MADV_SEQUENTIAL);
	if (size >= sizeof(HEADER_V1) - 1 &&
	    memcmp(ld.data, HEADER_V1, sizeof(HEADER_V1) - 1) == 0) {
		rc = convert_v1(h, &ld, h->default_room, err, errlen);
		munmap(map, size);
		return rc < 0 ? -1 : load_file(h, err, errlen);
	}
	if (memcmp(ld.data, HEADER, HEADER_LEN) != 0) {
		snprintf(err, errlen, "%s: " UNKNOWN_FORMAT, h->path);
		goto out;
	}
	ld.slots = calloc(ld.cap, sizeof(*ld.slots));
	if (!ld.slots) {
		snprintf(err, errlen, "%s: out of memory", h->path);
		goto out;
	}
	scan_records(&ld);
	if (!fill_ring(h, &ld)) {
		snprintf(err, errlen, "%s: out of memory", h->path);
		goto out;
	}
	h->last_id = ld.last_id;
	h->good_off = h->durable_off = (int64_t)ld.end;
	if (ld.end < size) {
		log_warning("%s:%zu: torn last line cut off", h->path, ld.lineno + 1);
		cut_back(h, h->good_off);
	}
	rc = 0;
out:
	free(ld.slots);
	munmap(map, size);
	return rc;
}

static int
load_file(struct history *h, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(h->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", h->path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", h->path);
		return -1;
	}
	if (st.st_size == 0) {
		if (init_empty(h) == 0)
			return 0;
		snprintf(err, errlen, "%s: %s", h->path, strerror(errno));
		return -1;
	}
	if (st.st_size < HEADER_LEN || (uint64_t)st.st_size > SIZE_MAX) {
		snprintf(err, errlen, "%s: " UNKNOWN_FORMAT, h->path);
		return -1;
	}
	return load_messages(h, (size_t)st.st_size, err, errlen);
}

static bool
config_valid(const struct history_config *cfg, char *err, size_t errlen)
{
	const char *why = NULL;

	if (!cfg->path || !*cfg->path)
		why = "no history file given";
	else if (cfg->memory < 1)
		why = "history memory must be at least 1";
	else if (cfg->max_size <= HEADER_LEN)
		why = "history max size is too small";
	else if (cfg->sync_ms < 0)
		why = "history sync interval must not be negative";
	else if (cfg->default_room &&
		 !record_room_valid(cfg->default_room, strlen(cfg->default_room)))
		why = "the default room's name is not valid";
	if (why)
		snprintf(err, errlen, "%s", why);
	return !why;
}

static void
history_free(struct history *h)
{
	for (size_t i = 0; i < h->ring.n; i++)
		line_unref(ring_at(&h->ring, i)->body);
	if (h->fd >= 0)
		close(h->fd);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	free(h->ring.e);
	free(h->queue.e);
	free(h->batch.e);
	free(h->write_buf);
	free(h->tmp_path);
	free(h->path);
	free(h);
}

static int
init_sync(struct history *h)
{
	pthread_condattr_t attr;
	int rc;

	if (pthread_condattr_init(&attr) != 0)
		return -1;
	rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(&h->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (rc != 0)
		return -1;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		pthread_cond_destroy(&h->wake);
		return -1;
	}
	return 0;
}

struct history *
history_open(const struct history_config *cfg, history_publish_fn publish, void *ctx, char *err,
	     size_t errlen)
{
	struct history *h;
	int rc;

	if (!config_valid(cfg, err, errlen))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h || init_sync(h) < 0) {
		free(h);
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		return NULL;
	}
	h->fd = -1;
	h->memory = cfg->memory;
	h->max_size = cfg->max_size;
	h->sync_ms = cfg->sync_ms;
	h->io = cfg->io ? *cfg->io : libc_io;
	h->publish = publish;
	h->ctx = ctx;
	snprintf(h->default_room, sizeof(h->default_room), "%s",
		 cfg->default_room ? cfg->default_room : DEFAULT_ROOM);
	h->path = strdup(cfg->path);
	if (h->path && asprintf(&h->tmp_path, "%s.tmp", cfg->path) < 0)
		h->tmp_path = NULL;
	h->ring.cap = cfg->memory;
	h->ring.e = calloc(cfg->memory, sizeof(*h->ring.e));
	if (h->sync_ms == 0)
		h->write_buf = malloc(WRITE_CHUNK);
	if (!h->path || !h->tmp_path || !h->ring.e || (h->sync_ms == 0 && !h->write_buf)) {
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		goto fail;
	}
	/* Chat text is private, whatever mode a copy put back by hand had; never through a link. */
	h->fd = safefile_open(h->path, O_RDWR | O_CREAT | O_APPEND, 0600, SAFEFILE_SETMODE, err,
			      errlen);
	if (h->fd < 0)
		goto fail;
	if (load_file(h, err, errlen) < 0)
		goto fail;
	h->next_id = h->last_id + 1;
	rc = pthread_create(&h->thread, NULL, commit_thread, h);
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot start the commit thread: %s", h->path,
			 strerror(rc));
		goto fail;
	}
	return h;
fail:
	history_free(h);
	return NULL;
}

/*
 * Whether the ring's entry i is one of room's records that may be given
 * out: *stop once a deletion of room is reached (older ones are gone).
 */
static bool
ring_match(const struct ring *r, size_t i, const char *room, bool events, bool *stop)
{
	const struct history_entry *e = ring_at(r, i);

	if (name_cmp(e->room, room) != 0)
		return false;
	if (e->kind == HK_DELETE) {
		*stop = true;
		return false;
	}
	return events || e->kind == HK_MSG;
}

/* Copies the ring's entries at idx[n - 1] .. idx[0] (newest last) into out. */
static size_t
ring_copy_picked(const struct ring *r, const size_t *idx, size_t n, struct history_entry *out)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = *ring_at(r, idx[n - 1 - i]);
		line_ref(out[i].body);
	}
	return n;
}

size_t
history_recent(struct history *h, const char *room, size_t max, uint64_t max_id, bool events,
	       struct history_entry *out)
{
	size_t end, n = 0, *idx = max ? calloc(max, sizeof(*idx)) : NULL;
	bool stop = false;

	if (!idx)
		return 0;
	pthread_mutex_lock(&h->lock);
	end = ring_rank(&h->ring, max_id);
	for (size_t i = end; i-- > 0 && n < max && !stop;)
		if (ring_match(&h->ring, i, room, events, &stop))
			idx[n++] = i;
	n = ring_copy_picked(&h->ring, idx, n, out);
	pthread_mutex_unlock(&h->lock);
	free(idx);
	return n;
}

size_t
history_since(struct history *h, const char *room, uint64_t after_id, size_t max, bool events,
	      struct history_entry *out, uint64_t *first_held)
{
	size_t start, n = 0, *idx = calloc(h->ring.cap, sizeof(*idx)), held = 0;
	bool stop = false;

	*first_held = 0;
	if (!idx)
		return 0;
	pthread_mutex_lock(&h->lock);
	start = ring_rank(&h->ring, after_id);
	/* Newest first: the room's records back to its last deletion. */
	for (size_t i = h->ring.n; i-- > 0 && !stop;)
		if (ring_match(&h->ring, i, room, true, &stop)) {
			*first_held = ring_at(&h->ring, i)->id;
			if (i >= start && (events || ring_at(&h->ring, i)->kind == HK_MSG))
				idx[held++] = i;
		}
	/* The oldest max of them after after_id. */
	n = held < max ? held : max;
	for (size_t i = 0; i < n; i++) {
		out[i] = *ring_at(&h->ring, idx[held - 1 - i]);
		line_ref(out[i].body);
	}
	pthread_mutex_unlock(&h->lock);
	free(idx);
	return n;
}

void
history_drop_room(struct history *h, const char *room)
{
	if (history_append(h, 0, room, HK_DELETE, NULL, "", 0) < 0)
		log_warning("%s: room %s deleted, but its deletion could not be recorded: %s",
			    h->path, room, strerror(errno));
}

void
history_backlog(struct history *h, size_t *msgs, size_t *bytes)
{
	*msgs = atomic_load_explicit(&h->backlog_msgs, memory_order_relaxed);
	*bytes = atomic_load_explicit(&h->backlog_bytes, memory_order_relaxed);
}

void
history_get_stats(struct history *h, struct history_stats *st)
{
	pthread_mutex_lock(&h->lock);
	*st = (struct history_stats){
		.last_id = h->last_id,
		.appended = h->appended,
		.failed = h->failed,
		.in_memory = h->ring.n,
		.file_size = h->good_off,
		.compactions = h->compactions,
	};
	pthread_mutex_unlock(&h->lock);
}

void
history_entries_release(struct history_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		line_unref(e[i].body);
		e[i].body = NULL;
	}
}

void
history_close(struct history *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	history_free(h);
}
