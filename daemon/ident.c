/*
 * ident.c - the identification store: a sorted table of names and password
 * hashes in memory, mirrored to a file (see ident.h and docs/FILES.md): a
 * base of sorted "NAME:HASH" lines, then one record appended per change
 * ("+NAME:HASH" or "-NAME"; the changes that wait together go out with one
 * write() and one fdatasync(): group commit).  The
 * file is rewritten whole and atomically (a compaction) when the records
 * outgrow the base, at startup when it holds records or a torn tail, when
 * it is not as chatd last left it, and to clear it.  Called from the login
 * threads, the control thread and its admin workers, and logged-in
 * clients' commands: the table and the file under the one lock (id->lock),
 * the changes waiting for the next batch under the queue lock, which is
 * never held together with it.
 *
 * Every change is made in memory first, then written; if the write fails
 * the change is undone (an append is cut back off the file), so memory and
 * file never disagree.  Each entry carries two generations from one
 * store-wide counter: "born" identifies its registration (a name deleted
 * and registered again is another entry) and "changed" its current hash.
 * Work done outside the lock is written back only if the generation it
 * started from is still there.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "ident.h"
#include "log.h"
#include "password.h"
#include "safefile.h"

#define VERSION_LINE "chatd-ident 1\n"
#define JOURNAL_MIN ((off_t)64 * 1024)
/* The longest record: '+', name, ':', hash, LF. */
#define RECORD_MAX (NAME_MAX_LEN + PASSWORD_HASH_MAX + 3)

struct entry {
	uint64_t born;
	uint64_t changed;
	char name[NAME_MAX_LEN + 1];
	char hash[PASSWORD_HASH_MAX];
};

struct ident {
	pthread_mutex_t lock;
	struct entry **v; /* sorted by name_cmp() */
	size_t n, cap;
	uint64_t gen; /* the last generation handed out */
	char *path;
	char *tmp_path;
	char *dir_path;
	/*
	 * The file as chatd last left it.  A change is appended only while
	 * file_ok and the file still has this inode, size and mode 0600;
	 * otherwise (missing, torn tail, a failed sync, changed by someone
	 * else) the change rewrites the whole file from memory.
	 */
	bool file_ok;
	dev_t dev;
	ino_t ino;
	off_t size;                     /* the base and the records after it */
	off_t base_size;                /* the size of the last rewrite */
	off_t journal_min;              /* records may take this much even past the base's size */
	atomic_ulong appends, rewrites; /* for ident_get_stats() */
	/* Group commit (change_submit()); never held together with lock. */
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_cond;
	struct change *queue, **queue_tail;
	size_t waiting; /* changes queued or being committed */
	bool committing;
};

static bool
name_acceptable(const char *name)
{
	return name != NULL && name_valid(name, strnlen(name, NAME_MAX_LEN + 1));
}

/* Binary search; *pos is where name is or would be inserted. */
static struct entry *
table_find(const struct ident *id, const char *name, size_t *pos)
{
	size_t lo = 0, hi = id->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(name, id->v[mid]->name);

		if (c == 0) {
			if (pos != NULL)
				*pos = mid;
			return id->v[mid];
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (pos != NULL)
		*pos = lo;
	return NULL;
}

/* Cannot fail when an entry was just removed: the room is still there. */
static int
table_insert(struct ident *id, struct entry *e, size_t pos)
{
	if (id->n == id->cap) {
		size_t ncap = id->cap ? id->cap * 2 : 64;
		struct entry **nv = realloc(id->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		id->v = nv;
		id->cap = ncap;
	}
	memmove(&id->v[pos + 1], &id->v[pos], (id->n - pos) * sizeof(*id->v));
	id->v[pos] = e;
	id->n++;
	return 0;
}

static void
table_remove(struct ident *id, size_t pos)
{
	id->n--;
	memmove(&id->v[pos], &id->v[pos + 1], (id->n - pos) * sizeof(*id->v));
}

static void
table_free(struct entry **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static struct entry *
entry_new(struct ident *id, const char *name, const char *hash)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->born = e->changed = ++id->gen;
	strcpy(e->name, name);
	strcpy(e->hash, hash);
	return e;
}

/* The whole file in one buffer, so it goes out in a single write(). */
static char *
format_file(const struct ident *id, size_t *lenp)
{
	size_t len = strlen(VERSION_LINE), off;
	char *buf;

	for (size_t i = 0; i < id->n; i++)
		len += strlen(id->v[i]->name) + strlen(id->v[i]->hash) + 2;
	buf = malloc(len + 1);
	if (buf == NULL)
		return NULL;
	off = (size_t)sprintf(buf, "%s", VERSION_LINE);
	for (size_t i = 0; i < id->n; i++)
		off += (size_t)sprintf(buf + off, "%s:%s\n", id->v[i]->name, id->v[i]->hash);
	*lenp = off;
	return buf;
}

/*
 * Once rename() succeeded the new contents are what readers see, so a
 * failing directory fsync is only a durability warning: reporting failure
 * would make memory disagree with the file.
 */
static void
sync_dir(const struct ident *id)
{
	int fd = open(id->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) != 0)
		log_warning("%s: cannot sync directory: %s", id->dir_path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* Keeps errno: the caller reports why the write failed, not this. */
static void
remove_temp(const struct ident *id)
{
	int saved = errno;

	unlink(id->tmp_path);
	errno = saved;
}

/*
 * Writes buf to PATH.tmp and renames that over PATH.  fchmod() because
 * O_CREAT leaves the mode of a leftover temp file alone; a temp file we
 * could not open is not ours to remove.  *st gets the new file's identity:
 * the next changes are appended to it.
 */
static int
replace_file(const struct ident *id, const char *buf, size_t len, struct stat *st)
{
	int fd, saved;
	bool ok;

	char why[512];

	/* Checked before the truncation: no link, no other hard links, no FIFO (safefile.h). */
	fd = safefile_open(id->tmp_path, O_CREAT | O_TRUNC | O_WRONLY, 0600, 0, why, sizeof(why));
	if (fd < 0) {
		saved = errno;
		log_error("%s", why);
		errno = saved;
		return -1;
	}
	ok = fchmod(fd, 0600) == 0 && safefile_write_all(fd, buf, len) == 0 && fsync(fd) == 0 &&
	     fstat(fd, st) == 0;
	saved = errno;
	if (close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	errno = saved;
	ok = ok && rename(id->tmp_path, id->path) == 0;
	if (!ok)
		remove_temp(id);
	return ok ? 0 : -1;
}

/*
 * Replaces the file with the table, folding every record into the new base
 * (a compaction).  On failure the old file is untouched.  A crash at any
 * step leaves either the old file, records and all, or the new one: there
 * is only ever one file to read, so nothing is applied twice or lost.
 */
static enum ident_result
store_write(struct ident *id)
{
	enum ident_result r = IDENT_OK;
	struct stat st;
	size_t len;
	char *buf = format_file(id, &len);

	if (buf == NULL) {
		log_error("%s: out of memory writing the identification file", id->path);
		return IDENT_NO_MEMORY;
	}
	if (replace_file(id, buf, len, &st) != 0) {
		log_error("%s: cannot write: %s", id->tmp_path, strerror(errno));
		r = IDENT_IO_ERROR;
	} else {
		id->file_ok = true;
		id->dev = st.st_dev;
		id->ino = st.st_ino;
		id->size = id->base_size = (off_t)len;
		id->rewrites++;
		sync_dir(id);
	}
	free(buf);
	return r;
}

/* Would a record of len bytes take the records past their bound? */
static bool
journal_full(const struct ident *id, size_t len)
{
	off_t bound = id->base_size > id->journal_min ? id->base_size : id->journal_min;

	return id->size - id->base_size + (off_t)len > bound;
}

/* Is the file still the one chatd last wrote, as it left it? */
static bool
file_unchanged(const struct ident *id, const struct stat *st)
{
	return st->st_dev == id->dev && st->st_ino == id->ino && st->st_size == id->size &&
	       (st->st_mode & 07777) == 0600;
}

/*
 * Appends a batch's records with one write() and makes them durable.  A
 * write or sync that fails is cut back off the file.  After a failed sync
 * the page cache need not match the disk, and a failed cut leaves a torn
 * record, so then the next change rewrites the whole file: nothing ever
 * follows a torn record.  Returns 0, -1 with errno set, or 1 if the file must be
 * rewritten instead (someone else changed it).
 */
static int
append_record(struct ident *id, const char *rec, size_t len)
{
	/* Not through a link, nor blocking on a FIFO put in its place (safefile.h). */
	int fd = safefile_open(id->path, O_WRONLY | O_APPEND, 0600, 0, NULL, 0);
	struct stat st;
	bool written;
	int saved;

	if (fd < 0)
		return errno == EPERM || errno == ELOOP ? 1 : -1; /* not ours: rewritten */
	if (fstat(fd, &st) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (!file_unchanged(id, &st)) {
		close(fd);
		log_warning("%s: not as chatd left it (replaced, edited or another mode); "
			    "rewritten from memory",
			    id->path);
		return 1;
	}
	written = safefile_write_all(fd, rec, len) == 0;
	if (!written || fdatasync(fd) != 0) {
		saved = errno;
		id->file_ok = ftruncate(fd, id->size) == 0 && fdatasync(fd) == 0 && !written;
		close(fd);
		errno = saved;
		return -1;
	}
	/* Once the record is durable a failing close() changes nothing. */
	close(fd);
	id->size += (off_t)len;
	id->appends++;
	return 0;
}

/*
 * Stores changes already made in memory, rec being their records: appended
 * when possible, otherwise by rewriting the whole file (which holds the
 * changes too).  Lock held.
 */
static enum ident_result
store_change(struct ident *id, const char *rec, size_t len)
{
	int rc;

	if (!id->file_ok || journal_full(id, len))
		return store_write(id);
	rc = append_record(id, rec, len);
	if (rc > 0)
		return store_write(id);
	if (rc < 0) {
		log_error("%s: cannot append a change: %s", id->path, strerror(errno));
		return IDENT_IO_ERROR;
	}
	return IDENT_OK;
}

static bool
hash_char_valid(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != ':';
}

/* NULL if s[0..len) (no LF) is a valid "NAME:HASH". */
static const char *
entry_problem(const char *s, size_t len)
{
	const char *colon = memchr(s, ':', len);
	size_t hashlen;

	if (len > NAME_MAX_LEN + PASSWORD_HASH_MAX)
		return "line too long";
	if (colon == NULL)
		return "no ':' between name and hash";
	if (!name_valid(s, (size_t)(colon - s)))
		return "invalid name";
	hashlen = len - (size_t)(colon - s) - 1;
	if (hashlen == 0 || colon[1] != '$')
		return "hash does not start with '$'";
	if (hashlen >= PASSWORD_HASH_MAX)
		return "hash too long";
	for (size_t i = 1; i <= hashlen; i++)
		if (!hash_char_valid((unsigned char)colon[i]))
			return "invalid character in hash";
	return NULL;
}

/* What load() learns beyond the table. */
struct load_state {
	int lineno;
	size_t records; /* lines that are, or look like, records */
	off_t record_bytes;
	bool torn; /* the last line has no LF */
};

static int
skip_line(const struct ident *id, int lineno, const char *problem)
{
	log_warning("%s:%d: %s; line skipped", id->path, lineno, problem);
	return 0;
}

/* Splits a checked "NAME:HASH" at its ':' and returns the hash. */
static char *
split_entry(char *s)
{
	char *hash = strchr(s, ':');

	*hash++ = '\0';
	return hash;
}

/*
 * A base line "NAME:HASH" or a record "+NAME:HASH" (after its '+'), NUL-
 * terminated, no LF.  A record sets NAME's hash, in this spelling,
 * registered before or not; a base line repeating a name is skipped.  -1
 * when out of memory.
 */
static int
load_entry(struct ident *id, char *line, size_t len, int lineno, bool record)
{
	const char *problem = entry_problem(line, len);
	struct entry *e;
	char *hash;
	size_t pos;

	if (problem != NULL)
		return skip_line(id, lineno, problem);
	hash = split_entry(line);
	e = table_find(id, line, &pos);
	if (e != NULL && !record)
		return skip_line(id, lineno, "name already registered on an earlier line");
	if (e != NULL) {
		strcpy(e->name, line);
		strcpy(e->hash, hash);
		e->born = e->changed = ++id->gen;
		return 0;
	}
	e = entry_new(id, line, hash);
	if (e == NULL || table_insert(id, e, pos) != 0) {
		free(e);
		return -1;
	}
	return 0;
}

/* A record "-NAME": NAME was deleted. */
static int
load_delete(struct ident *id, const char *rec, size_t len, int lineno)
{
	size_t pos;

	if (!name_valid(rec, len))
		return skip_line(id, lineno, "invalid name");
	if (table_find(id, rec, &pos) == NULL)
		return skip_line(id, lineno, "deletion of a name not registered");
	free(id->v[pos]);
	table_remove(id, pos);
	return 0;
}

/* One line as getline() returned it.  -1 only when out of memory. */
static int
load_line(struct ident *id, char *line, size_t len, struct load_state *ls)
{
	if (line[0] == '+' || line[0] == '-') {
		ls->records++;
		ls->record_bytes += (off_t)len;
	}
	if (line[len - 1] != '\n') {
		ls->torn = true;
		log_warning("%s:%d: last line cut short (a torn write); dropped", id->path,
			    ls->lineno);
		return 0;
	}
	line[--len] = '\0';
	if (len > 0 && line[0] == '+')
		return load_entry(id, line + 1, len - 1, ls->lineno, true);
	if (len > 0 && line[0] == '-')
		return load_delete(id, line + 1, len - 1, ls->lineno);
	return load_entry(id, line, len, ls->lineno, false);
}

/*
 * Reads the base, then replays the records in order.  Lines we wrote are
 * sorted, so each insert appends and loading is fast.
 */
static int
load(struct ident *id, struct load_state *ls, char *err, size_t errlen)
{
	int fd = open(id->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
	char *line = NULL;
	struct stat st;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;

	if (f == NULL) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		if (saved == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", id->path, strerror(saved));
		return -1;
	}
	ls->lineno = 1;
	len = getline(&line, &cap, f);
	if (len < 0 || strcmp(line, VERSION_LINE) != 0) {
		if (ferror(f))
			snprintf(err, errlen, "%s: %s", id->path, strerror(errno));
		else
			snprintf(err, errlen, "%s: unknown format (expected 'chatd-ident 1')",
				 id->path);
		rc = -1;
	}
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		ls->lineno++;
		if (load_line(id, line, (size_t)len, ls) != 0) {
			snprintf(err, errlen, "%s: out of memory", id->path);
			rc = -1;
		}
	}
	if (rc == 0 && (ferror(f) || fstat(fileno(f), &st) != 0)) {
		snprintf(err, errlen, "%s: %s", id->path, strerror(errno));
		rc = -1;
	}
	if (rc == 0) {
		/* Changes are appended only after a whole last line, to the file as read. */
		id->file_ok = !ls->torn;
		id->dev = st.st_dev;
		id->ino = st.st_ino;
		id->size = st.st_size;
		id->base_size = st.st_size - ls->record_bytes;
	}
	free(line);
	fclose(f);
	return rc;
}

static char *
path_with_suffix(const char *path, const char *suffix)
{
	size_t len = strlen(path) + strlen(suffix) + 1;
	char *s = malloc(len);

	if (s != NULL)
		snprintf(s, len, "%s%s", path, suffix);
	return s;
}

static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

struct ident *
ident_open(const char *path, char *err, size_t errlen)
{
	struct ident *id = calloc(1, sizeof(*id));
	struct load_state ls = { 0 };

	if (id == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	pthread_mutex_init(&id->lock, NULL);
	pthread_mutex_init(&id->queue_lock, NULL);
	pthread_cond_init(&id->queue_cond, NULL);
	id->queue_tail = &id->queue;
	id->path = strdup(path);
	id->tmp_path = path_with_suffix(path, ".tmp");
	id->dir_path = dir_of(path);
	if (id->path == NULL || id->tmp_path == NULL || id->dir_path == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		ident_close(id);
		return NULL;
	}
	id->journal_min = JOURNAL_MIN;
	if (load(id, &ls, err, errlen) != 0) {
		ident_close(id);
		return NULL;
	}
	/*
	 * Folds the records of the last run into the base and writes a torn
	 * tail out of the file.  A failure only means the records stay (and a
	 * torn tail makes the next change try again).
	 */
	if (ls.records > 0 || ls.torn) {
		pthread_mutex_lock(&id->lock);
		if (store_write(id) == IDENT_OK)
			log_info("%s: %zu changes folded into the file", id->path, ls.records);
		pthread_mutex_unlock(&id->lock);
	}
	return id;
}

void
ident_close(struct ident *id)
{
	if (id == NULL)
		return;
	pthread_mutex_destroy(&id->lock);
	pthread_mutex_destroy(&id->queue_lock);
	pthread_cond_destroy(&id->queue_cond);
	table_free(id->v, id->n);
	free(id->path);
	free(id->tmp_path);
	free(id->dir_path);
	free(id);
}

bool
ident_lookup(struct ident *id, const char *name, char canonical[NAME_MAX_LEN + 1])
{
	struct entry *e;

	if (!name_acceptable(name))
		return false;
	pthread_mutex_lock(&id->lock);
	e = table_find(id, name, NULL);
	if (e != NULL && canonical != NULL)
		strcpy(canonical, e->name);
	pthread_mutex_unlock(&id->lock);
	return e != NULL;
}

/* A copy of name's entry, to work on without the lock. */
static bool
snapshot(struct ident *id, const char *name, struct entry *copy)
{
	struct entry *e;

	if (!name_acceptable(name))
		return false;
	pthread_mutex_lock(&id->lock);
	e = table_find(id, name, NULL);
	if (e != NULL)
		*copy = *e;
	pthread_mutex_unlock(&id->lock);
	return e != NULL;
}

/*
 * Group commit.  A change (registration, password change, rehash,
 * deletion) is queued; the first thread to find no commit running takes
 * the whole queue, applies it in memory under the lock, appends one record
 * per change with one write() and one fdatasync() (or rewrites the file),
 * and tells every thread of the batch its result.  If that fails, the
 * batch is undone in reverse order, so memory and file still agree.  The
 * lock stays held across the sync: nobody sees a change before it is
 * durable.  Changes that arrive meanwhile wait for the next batch.
 */
enum change_kind { CH_REGISTER, CH_SET_PASSWORD, CH_REHASH, CH_DELETE };

struct change {
	struct change *next; /* in the queue, then in the batch */
	struct change *undo; /* the changes applied before this one, latest first */
	enum change_kind kind;
	const char *name;
	const char *hash; /* not for CH_DELETE */
	uint64_t seen;    /* born (CH_SET_PASSWORD) or changed (CH_REHASH) when hashed */
	enum ident_result r;
	bool done;
	struct entry *e;  /* the entry applied to */
	struct entry old; /* its state before, for a new hash */
};

/* Makes ch in memory and appends its record to buf.  Lock held. */
static enum ident_result
change_apply(struct ident *id, struct change *ch, char *buf, size_t *off)
{
	size_t pos;
	struct entry *e = table_find(id, ch->name, &pos);

	switch (ch->kind) {
	case CH_REGISTER:
		if (e != NULL)
			return IDENT_EXISTS;
		if ((e = entry_new(id, ch->name, ch->hash)) == NULL)
			return IDENT_NO_MEMORY;
		if (table_insert(id, e, pos) != 0) {
			free(e);
			return IDENT_NO_MEMORY;
		}
		break;
	case CH_SET_PASSWORD:
	case CH_REHASH:
		/* Deleted and registered again, or changed, while we hashed: not ours to set. */
		if (e == NULL || (ch->kind == CH_SET_PASSWORD ? e->born : e->changed) != ch->seen)
			return IDENT_UNKNOWN;
		ch->old = *e;
		strcpy(e->hash, ch->hash);
		e->changed = ++id->gen;
		break;
	case CH_DELETE:
		if (e == NULL)
			return IDENT_UNKNOWN;
		table_remove(id, pos); /* freed once the deletion is stored */
		break;
	}
	ch->e = e;
	if (ch->kind == CH_DELETE)
		*off += (size_t)snprintf(buf + *off, RECORD_MAX + 1, "-%s\n", e->name);
	else
		*off += (size_t)snprintf(buf + *off, RECORD_MAX + 1, "+%s:%s\n", e->name, e->hash);
	return IDENT_OK;
}

/* Takes an applied change back.  Lock held; the latest change first. */
static void
change_undo(struct ident *id, struct change *ch)
{
	size_t pos;

	switch (ch->kind) {
	case CH_REGISTER:
		table_find(id, ch->e->name, &pos);
		table_remove(id, pos);
		free(ch->e);
		break;
	case CH_SET_PASSWORD:
	case CH_REHASH:
		*ch->e = ch->old;
		break;
	case CH_DELETE:
		/* Cannot fail: the room the entry had is still there. */
		table_find(id, ch->e->name, &pos);
		table_insert(id, ch->e, pos);
		break;
	}
}

static void
commit_batch(struct ident *id, struct change *batch)
{
	struct change *ch, *applied = NULL;
	size_t n = 0, len = 0;
	enum ident_result r;
	char *buf;

	for (ch = batch; ch != NULL; ch = ch->next)
		n++;
	buf = malloc(n * RECORD_MAX + 1);
	pthread_mutex_lock(&id->lock);
	for (ch = batch; ch != NULL; ch = ch->next) {
		ch->r = buf == NULL ? IDENT_NO_MEMORY : change_apply(id, ch, buf, &len);
		if (ch->r == IDENT_OK) {
			ch->undo = applied;
			applied = ch;
		}
	}
	if (applied != NULL) {
		r = store_change(id, buf, len);
		for (ch = applied; ch != NULL; ch = ch->undo) {
			if (r != IDENT_OK) {
				change_undo(id, ch);
				ch->r = r;
			} else if (ch->kind == CH_DELETE)
				free(ch->e);
		}
	}
	pthread_mutex_unlock(&id->lock);
	free(buf);
}

/* Queues ch and returns once it is stored or refused. */
static enum ident_result
change_submit(struct ident *id, struct change *ch)
{
	pthread_mutex_lock(&id->queue_lock);
	ch->next = NULL;
	ch->done = false;
	*id->queue_tail = ch;
	id->queue_tail = &ch->next;
	id->waiting++;
	while (!ch->done) {
		struct change *batch, *next;

		if (id->committing) {
			pthread_cond_wait(&id->queue_cond, &id->queue_lock);
			continue;
		}
		batch = id->queue;
		id->queue = NULL;
		id->queue_tail = &id->queue;
		id->committing = true;
		pthread_mutex_unlock(&id->queue_lock);
		commit_batch(id, batch);
		pthread_mutex_lock(&id->queue_lock);
		for (; batch != NULL; batch = next) {
			next = batch->next;
			batch->done = true; /* its thread may return once we unlock */
			id->waiting--;
		}
		id->committing = false;
		pthread_cond_broadcast(&id->queue_cond);
	}
	pthread_mutex_unlock(&id->queue_lock);
	return ch->r;
}

static enum ident_result
hash_error(int err)
{
	if (err == ENOMEM)
		return IDENT_NO_MEMORY;
	return err == EINVAL ? IDENT_INVALID : IDENT_IO_ERROR;
}

/* Upgrades a verified hash unless the entry changed while we hashed. */
static void
rehash(struct ident *id, const struct entry *seen, const char *password, int cost)
{
	char hash[PASSWORD_HASH_MAX];
	struct change ch = { .kind = CH_REHASH,
			     .name = seen->name,
			     .hash = hash,
			     .seen = seen->changed };

	if (password_hash(password, cost, hash) != 0) {
		log_warning("%s: cannot rehash the password of %s: %s", id->path, seen->name,
			    strerror(errno));
		return;
	}
	change_submit(id, &ch);
}

/*
 * A known name costs one hash whether the password is right or wrong; only
 * a successful login may pay for the rehash on top.
 */
enum ident_result
ident_verify(struct ident *id, const char *name, const char *password, int cost,
	     char canonical[NAME_MAX_LEN + 1])
{
	struct entry seen;

	if (!snapshot(id, name, &seen))
		return IDENT_UNKNOWN;
	if (!password_check(password, seen.hash))
		return IDENT_BAD_PASSWORD;
	if (password_needs_rehash(seen.hash, cost))
		rehash(id, &seen, password, cost);
	if (canonical != NULL)
		strcpy(canonical, seen.name);
	return IDENT_OK;
}

enum ident_result
ident_register(struct ident *id, const char *name, const char *password, int cost)
{
	char hash[PASSWORD_HASH_MAX];
	struct change ch = { .kind = CH_REGISTER, .name = name, .hash = hash };

	if (!name_acceptable(name))
		return IDENT_INVALID;
	if (ident_lookup(id, name, NULL))
		return IDENT_EXISTS;
	if (password_hash(password, cost, hash) != 0)
		return hash_error(errno);
	return change_submit(id, &ch);
}

enum ident_result
ident_set_password(struct ident *id, const char *name, const char *password, int cost)
{
	char hash[PASSWORD_HASH_MAX];
	struct entry seen;
	struct change ch = { .kind = CH_SET_PASSWORD, .name = name, .hash = hash };

	if (!snapshot(id, name, &seen))
		return IDENT_UNKNOWN;
	if (password_hash(password, cost, hash) != 0)
		return hash_error(errno);
	ch.seen = seen.born;
	return change_submit(id, &ch);
}

enum ident_result
ident_delete(struct ident *id, const char *name)
{
	struct change ch = { .kind = CH_DELETE, .name = name };

	if (!name_acceptable(name))
		return IDENT_UNKNOWN;
	return change_submit(id, &ch);
}

enum ident_result
ident_clear(struct ident *id)
{
	struct entry **v;
	size_t n, cap;
	enum ident_result r;

	pthread_mutex_lock(&id->lock);
	v = id->v;
	n = id->n;
	cap = id->cap;
	id->v = NULL;
	id->n = id->cap = 0;
	r = store_write(id);
	if (r == IDENT_OK)
		table_free(v, n);
	else {
		id->v = v;
		id->n = n;
		id->cap = cap;
	}
	pthread_mutex_unlock(&id->lock);
	return r;
}

size_t
ident_count(struct ident *id)
{
	size_t n;

	pthread_mutex_lock(&id->lock);
	n = id->n;
	pthread_mutex_unlock(&id->lock);
	return n;
}

void
ident_foreach(struct ident *id, void (*fn)(void *ctx, const char *name), void *ctx)
{
	pthread_mutex_lock(&id->lock);
	for (size_t i = 0; i < id->n; i++)
		fn(ctx, id->v[i]->name);
	pthread_mutex_unlock(&id->lock);
}

void
ident_get_stats(struct ident *id, struct ident_stats *st)
{
	pthread_mutex_lock(&id->queue_lock);
	st->waiting = id->waiting;
	pthread_mutex_unlock(&id->queue_lock);
	st->appends = id->appends;
	st->rewrites = id->rewrites;
}

void
ident_set_journal_min(struct ident *id, size_t bytes)
{
	pthread_mutex_lock(&id->lock);
	id->journal_min = (off_t)bytes;
	pthread_mutex_unlock(&id->lock);
}

const char *
ident_result_str(enum ident_result r)
{
	switch (r) {
	case IDENT_OK:
		return "ok";
	case IDENT_UNKNOWN:
		return "no such name";
	case IDENT_BAD_PASSWORD:
		return "wrong password";
	case IDENT_EXISTS:
		return "name already registered";
	case IDENT_IO_ERROR:
		return "cannot write the identification file";
	case IDENT_NO_MEMORY:
		return "out of memory";
	case IDENT_INVALID:
		return "invalid name, password or cost";
	}
	return "unknown result";
}
