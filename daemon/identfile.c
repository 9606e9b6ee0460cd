/*
 * identfile.c - the identification file: the backend behind
 * identstore.h that ident.c keeps its users in (docs/FILES.md,
 * "Identification file").
 *
 * A base of sorted "NAME:HASH" lines, then one record appended per change
 * ("+NAME:HASH" or "-NAME"; a batch of changes goes out with one write()
 * and one fdatasync()).  The file is rewritten whole and atomically (a
 * compaction) when the records outgrow the base, at startup when it holds
 * records or a torn tail, when it is not as chatd last left it (or gone, or
 * something else put in its place), and to
 * clear it.  Every call but load, close (ident_open, ident_close: no
 * other thread then) and stats comes under the ident lock (ident.c): no
 * lock here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "identstore.h"
#include "log.h"
#include "names.h"
#include "password.h"
#include "safefile.h"

#define VERSION_LINE "chatd-ident 1\n"
#define JOURNAL_MIN ((off_t)64 * 1024)

struct identfile {
	struct identstore base;
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
	atomic_ulong appends, rewrites; /* for stats */
};

/* What loading learns beyond the users. */
struct load_state {
	int lineno;
	size_t records; /* lines that are, or look like, records */
	off_t record_bytes;
	bool torn; /* the last line has no LF */
};

/* The whole file in one buffer, so it goes out in a single write(). */
static char *
format_file(const struct identstore_users *all, size_t *lenp)
{
	size_t len = strlen(VERSION_LINE), off;
	char *buf;

	for (size_t i = 0; i < all->n; i++)
		len += strlen(all->name(all->ctx, i)) + strlen(all->hash(all->ctx, i)) + 2;
	buf = malloc(len + 1);
	if (buf == NULL)
		return NULL;
	off = (size_t)sprintf(buf, "%s", VERSION_LINE);
	for (size_t i = 0; i < all->n; i++)
		off += (size_t)sprintf(buf + off, "%s:%s\n", all->name(all->ctx, i),
				       all->hash(all->ctx, i));
	*lenp = off;
	return buf;
}

/*
 * Once rename() succeeded the new contents are what readers see, so a
 * failing directory fsync is only a durability warning: reporting failure
 * would make memory disagree with the file.
 */
static void
sync_dir(const struct identfile *f)
{
	int fd = open(f->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) != 0)
		log_warning("%s: cannot sync directory: %s", f->dir_path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* Keeps errno: the caller reports why the write failed, not this. */
static void
remove_temp(const struct identfile *f)
{
	int saved = errno;

	unlink(f->tmp_path);
	errno = saved;
}

/*
 * Writes buf to PATH.tmp and renames that over PATH.  fchmod() because
 * O_CREAT leaves the mode of a leftover temp file alone; a temp file we
 * could not open is not ours to remove.  *st gets the new file's identity:
 * the next changes are appended to it.
 */
static int
replace_file(const struct identfile *f, const char *buf, size_t len, struct stat *st)
{
	int fd, saved;
	bool ok;

	char why[512];

	/* Checked before the truncation: no link, no other hard links, no FIFO (safefile.h). */
	fd = safefile_open(f->tmp_path, O_CREAT | O_TRUNC | O_WRONLY, 0600, 0, why, sizeof(why));
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
	ok = ok && rename(f->tmp_path, f->path) == 0;
	if (!ok)
		remove_temp(f);
	return ok ? 0 : -1;
}

/*
 * Replaces the file with every user, folding every record into the new
 * base (a compaction).  On failure the old file is untouched.  A crash at
 * any step leaves either the old file, records and all, or the new one:
 * there is only ever one file to read, so nothing is applied twice or lost.
 */
static enum ident_result
file_rewrite(struct identstore *s, const struct identstore_users *all)
{
	struct identfile *f = (struct identfile *)s;
	enum ident_result r = IDENT_OK;
	struct stat st;
	size_t len;
	char *buf = format_file(all, &len);

	if (buf == NULL) {
		log_error("%s: out of memory writing the identification file", f->path);
		return IDENT_NO_MEMORY;
	}
	if (replace_file(f, buf, len, &st) != 0) {
		log_error("%s: cannot write: %s", f->tmp_path, strerror(errno));
		r = IDENT_IO_ERROR;
	} else {
		f->file_ok = true;
		f->dev = st.st_dev;
		f->ino = st.st_ino;
		f->size = f->base_size = (off_t)len;
		f->rewrites++;
		sync_dir(f);
	}
	free(buf);
	return r;
}

/* Would a record of len bytes take the records past their bound? */
static bool
journal_full(const struct identfile *f, size_t len)
{
	off_t bound = f->base_size > f->journal_min ? f->base_size : f->journal_min;

	return f->size - f->base_size + (off_t)len > bound;
}

/* Is the file still the one chatd last wrote, as it left it? */
static bool
file_unchanged(const struct identfile *f, const struct stat *st)
{
	return st->st_dev == f->dev && st->st_ino == f->ino && st->st_size == f->size &&
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
append_record(struct identfile *f, const char *rec, size_t len)
{
	/* Not through a link, nor blocking on a FIFO put in its place (safefile.h). */
	char why[512];
	int fd = safefile_open(f->path, O_WRONLY | O_APPEND, 0600, 0, why, sizeof(why));
	struct stat st;
	bool written;
	int saved;

	/*
	 * Not ours (a link, a FIFO: ENXIO when nobody reads it), or gone: the
	 * rewrite puts a file of chatd's own in its place, from memory.
	 */
	if (fd < 0) {
		saved = errno;
		if (saved != EPERM && saved != ELOOP && saved != ENXIO && saved != ENOENT)
			return -1;
		log_warning("%s; rewritten from memory", why);
		return 1;
	}
	if (fstat(fd, &st) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (!file_unchanged(f, &st)) {
		close(fd);
		log_warning("%s: not as chatd left it (replaced, edited or another mode); "
			    "rewritten from memory",
			    f->path);
		return 1;
	}
	written = safefile_write_all(fd, rec, len) == 0;
	if (!written || fdatasync(fd) != 0) {
		saved = errno;
		f->file_ok = ftruncate(fd, f->size) == 0 && fdatasync(fd) == 0 && !written;
		close(fd);
		errno = saved;
		return -1;
	}
	/* Once the record is durable a failing close() changes nothing. */
	close(fd);
	f->size += (off_t)len;
	f->appends++;
	return 0;
}

/*
 * Stores changes already made in memory, rec being their records: appended
 * when possible, otherwise by rewriting the whole file (which holds the
 * changes too).
 */
static enum ident_result
file_store(struct identstore *s, const char *rec, size_t len, const struct identstore_users *all)
{
	struct identfile *f = (struct identfile *)s;
	int rc;

	if (!f->file_ok || journal_full(f, len))
		return file_rewrite(s, all);
	rc = append_record(f, rec, len);
	if (rc > 0)
		return file_rewrite(s, all);
	if (rc < 0) {
		log_error("%s: cannot append a change: %s", f->path, strerror(errno));
		return IDENT_IO_ERROR;
	}
	return IDENT_OK;
}

/* --- loading --- */

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

static int
skip_line(const struct identfile *f, int lineno, const char *problem)
{
	log_warning("%s:%d: %s; line skipped", f->path, lineno, problem);
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

/* One line as getline() returned it.  -1 only when out of memory. */
static int
load_line(struct identfile *f, const struct identstore_loader *ld, char *line, size_t len,
	  struct load_state *ls)
{
	char where[4096 + 16];
	bool record = len > 0 && line[0] == '+';
	const char *problem;

	if (line[0] == '+' || line[0] == '-') {
		ls->records++;
		ls->record_bytes += (off_t)len;
	}
	if (line[len - 1] != '\n') {
		ls->torn = true;
		log_warning("%s:%d: last line cut short (a torn write); dropped", f->path,
			    ls->lineno);
		return 0;
	}
	line[--len] = '\0';
	snprintf(where, sizeof(where), "%s:%d", f->path, ls->lineno);
	if (len > 0 && line[0] == '-') {
		if (!name_valid(line + 1, len - 1))
			return skip_line(f, ls->lineno, "invalid name");
		return ld->del(ld->ctx, line + 1, where);
	}
	if (record) {
		line++;
		len--;
	}
	if ((problem = entry_problem(line, len)) != NULL)
		return skip_line(f, ls->lineno, problem);
	char *hash = split_entry(line);

	return ld->set(ld->ctx, line, hash, record, where);
}

/*
 * Reads the base, then replays the records in order.  Lines we wrote are
 * sorted, so each insert appends and loading is fast.
 */
static int
file_load(struct identstore *s, const struct identstore_loader *ld, bool *fold, size_t *changes,
	  char *err, size_t errlen)
{
	struct identfile *f = (struct identfile *)s;
	/* Checked again on the descriptor: a FIFO put there since start-up's check must not hang
	 * us, nor a hard link be read as ours. */
	char why[PATH_MAX + 128] = "";
	int fd = safefile_open(f->path, O_RDONLY, 0600, 0, why, sizeof(why));
	FILE *fp = fd < 0 ? NULL : fdopen(fd, "r");
	struct load_state ls = { 0 };
	char *line = NULL;
	struct stat st;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;

	*fold = false;
	*changes = 0;
	if (fp == NULL) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		if (saved == ENOENT)
			return 0;
		if (why[0] != '\0')
			snprintf(err, errlen, "%s", why);
		else
			snprintf(err, errlen, "%s: %s", f->path, strerror(saved));
		return -1;
	}
	ls.lineno = 1;
	len = getline(&line, &cap, fp);
	if (len < 0 || strcmp(line, VERSION_LINE) != 0) {
		if (ferror(fp))
			snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
		else
			snprintf(err, errlen, "%s: unknown format (expected 'chatd-ident 1')",
				 f->path);
		rc = -1;
	}
	while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
		ls.lineno++;
		if (load_line(f, ld, line, (size_t)len, &ls) != 0) {
			snprintf(err, errlen, "%s: out of memory", f->path);
			rc = -1;
		}
	}
	if (rc == 0 && (ferror(fp) || fstat(fileno(fp), &st) != 0)) {
		snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
		rc = -1;
	}
	if (rc == 0) {
		/* Changes are appended only after a whole last line, to the file as read. */
		f->file_ok = !ls.torn;
		f->dev = st.st_dev;
		f->ino = st.st_ino;
		f->size = st.st_size;
		f->base_size = st.st_size - ls.record_bytes;
		*fold = ls.records > 0 || ls.torn;
		*changes = ls.records;
	}
	free(line);
	fclose(fp);
	return rc;
}

static void
file_set_journal_min(struct identstore *s, size_t bytes)
{
	((struct identfile *)s)->journal_min = (off_t)bytes;
}

static void
file_stats(struct identstore *s, unsigned long *appends, unsigned long *rewrites)
{
	struct identfile *f = (struct identfile *)s;

	*appends = f->appends;
	*rewrites = f->rewrites;
}

static void
file_close(struct identstore *s)
{
	struct identfile *f = (struct identfile *)s;

	if (f == NULL)
		return;
	free(f->path);
	free(f->tmp_path);
	free(f->dir_path);
	free(f);
}

static const struct identstore_ops file_ops = {
	.load = file_load,
	.store = file_store,
	.rewrite = file_rewrite,
	.set_journal_min = file_set_journal_min,
	.stats = file_stats,
	.close = file_close,
};

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

struct identstore *
identfile_open(const char *path, char *err, size_t errlen)
{
	struct identfile *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	f->base.ops = &file_ops;
	f->journal_min = JOURNAL_MIN;
	f->path = strdup(path);
	f->tmp_path = path_with_suffix(path, ".tmp");
	f->dir_path = dir_of(path);
	if (f->path == NULL || f->tmp_path == NULL || f->dir_path == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		file_close(&f->base);
		return NULL;
	}
	return &f->base;
}
