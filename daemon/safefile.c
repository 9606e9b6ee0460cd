/*
 * safefile.c - safe paths, safe opens, file locks and whole writes for
 * chatd's own files (see safefile.h).  The trusted ids are written by the
 * main thread before any other thread starts; every function here may then
 * run on any thread.
 */
#include <acl/libacl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safefile.h"

/* As the kernel: at most this many symbolic links in one walk. */
#define MAX_LINKS 40
#define PATH_BUF (2 * PATH_MAX)

static uid_t trusted_uid = (uid_t)-1;
static gid_t trusted_gid = (gid_t)-1;

void
safefile_trust(uid_t uid, gid_t gid)
{
	trusted_uid = uid;
	trusted_gid = gid;
}

static bool
uid_trusted(uid_t uid)
{
	return uid == 0 || uid == geteuid() || (trusted_uid != (uid_t)-1 && uid == trusted_uid);
}

static bool
gid_trusted(gid_t gid)
{
	return gid == 0 || gid == getegid() || (trusted_gid != (gid_t)-1 && gid == trusted_gid);
}

/* Why ACL entry e would let someone untrusted write, or NULL. */
static const char *
entry_problem(acl_entry_t e, char *why, size_t len)
{
	const char *problem = NULL;
	acl_permset_t perms;
	acl_tag_t tag;
	void *id;

	if (acl_get_tag_type(e, &tag) < 0 || acl_get_permset(e, &perms) < 0)
		goto unreadable;
	if ((tag != ACL_USER && tag != ACL_GROUP) || acl_get_perm(perms, ACL_WRITE) != 1)
		return NULL;
	if ((id = acl_get_qualifier(e)) == NULL)
		goto unreadable;
	if (tag == ACL_USER && !uid_trusted(*(uid_t *)id)) {
		snprintf(why, len, "writable by uid %u through its ACL", (unsigned)*(uid_t *)id);
		problem = why;
	} else if (tag == ACL_GROUP && !gid_trusted(*(gid_t *)id)) {
		snprintf(why, len, "writable by group %u through its ACL", (unsigned)*(gid_t *)id);
		problem = why;
	}
	acl_free(id);
	return problem;
unreadable:
	snprintf(why, len, "with an ACL chatd cannot read (%s)", strerror(errno));
	return why;
}

/*
 * Why the POSIX ACL of fd (st) would let someone untrusted write it, or
 * NULL (libacl reads it).  With an ACL the mode's group bits are its mask,
 * which caps every named entry: only when they allow writing may a named
 * user or group.  An O_PATH descriptor has no xattr calls of its own: its
 * /proc/self/fd name then.  No ACL, or none on this file system, is fine
 * (libacl gives the mode's three entries); an ACL that cannot be read is
 * not.
 */
static const char *
acl_problem(int fd, const struct stat *st, char *why, size_t len)
{
	const char *problem = NULL;
	char proc[64];
	acl_entry_t e;
	acl_t acl;
	int more;

	if (!(st->st_mode & S_IWGRP))
		return NULL;
	acl = acl_get_fd(fd);
	if (acl == NULL && errno == EBADF) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		acl = acl_get_file(proc, ACL_TYPE_ACCESS);
	}
	if (acl == NULL) {
		snprintf(why, len, "with an ACL chatd cannot read (%s)", strerror(errno));
		return why;
	}
	for (more = acl_get_entry(acl, ACL_FIRST_ENTRY, &e); more == 1 && problem == NULL;
	     more = acl_get_entry(acl, ACL_NEXT_ENTRY, &e))
		problem = entry_problem(e, why, len);
	if (more < 0 && problem == NULL) {
		snprintf(why, len, "with an ACL chatd cannot read (%s)", strerror(errno));
		problem = why;
	}
	acl_free(acl);
	return problem;
}

/*
 * Why fd's (st's) owner or write rights would let someone untrusted change
 * it, or NULL: owned by root or chatd's user, and (unless sticky, where
 * only owners may remove or rename) writable by no one else, nor by a
 * foreign group, nor by anyone an ACL names.
 */
static const char *
rights_problem(int fd, const struct stat *st, bool sticky, char *why, size_t len)
{
	if (!uid_trusted(st->st_uid)) {
		snprintf(why, len, "owned by uid %u, neither root nor chatd's user",
			 (unsigned)st->st_uid);
		return why;
	}
	if (sticky)
		return NULL;
	if (st->st_mode & S_IWOTH) {
		snprintf(why, len, "writable by everyone (mode %04o)",
			 (unsigned)(st->st_mode & 07777));
		return why;
	}
	if ((st->st_mode & S_IWGRP) && !gid_trusted(st->st_gid)) {
		snprintf(why, len, "writable by group %u (mode %04o), neither root's nor chatd's",
			 (unsigned)st->st_gid, (unsigned)(st->st_mode & 07777));
		return why;
	}
	return acl_problem(fd, st, why, len);
}

/* Why a directory would let someone untrusted change what is in it, or NULL. */
static const char *
dir_problem(int fd, const struct stat *st, char *why, size_t len)
{
	if (!S_ISDIR(st->st_mode))
		return "not a directory";
	return rights_problem(fd, st, st->st_mode & S_ISVTX, why, len);
}

/* shown = shown + "/" + name, or its parent for "..": the path as walked, for messages. */
static void
shown_step(char *shown, size_t len, const char *name)
{
	size_t n = strlen(shown);

	if (strcmp(name, "..") == 0) {
		char *slash = strrchr(shown, '/');

		if (slash != NULL)
			slash[slash == shown] = '\0';
		return;
	}
	snprintf(shown + n, len - n, "%s%s", n > 0 && shown[n - 1] == '/' ? "" : "/", name);
}

static int
open_root(char *shown, size_t len, char *err, size_t errlen)
{
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		snprintf(err, errlen, "/: %s", strerror(errno));
	snprintf(shown, len, "/");
	return fd;
}

static int
check_fd_dir(int fd, const char *shown, const char *risk, char *err, size_t errlen)
{
	struct stat st;
	char why[96];
	const char *problem;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", shown, strerror(errno));
		return -1;
	}
	if ((problem = dir_problem(fd, &st, why, sizeof(why))) != NULL) {
		snprintf(err, errlen, "%s is %s: refused, %s", shown, problem, risk);
		return -1;
	}
	return 0;
}

/* What a walk is for: the directories chatd writes in, or a file it only reads. */
struct walk {
	bool file;               /* the last component is the file: its links are followed too */
	const char *risk;        /* what someone who could change the way could do, for messages */
	int dirfd;               /* at the end, with file: the checked directory the file is in */
	char name[NAME_MAX + 1]; /* ...and the file's name in it */
	char shown[PATH_BUF];    /* the path as walked, links replaced by their targets */
	int links;               /* symbolic links followed */
};

/*
 * Walks path from / one component at a time, as the kernel would, checking
 * each directory reached and each symbolic link followed (a link is as
 * safe as its owner: in a sticky directory its owner may still change it).
 * Without w->file every component is a directory and a missing one ends the
 * walk with 0 (chatd creates the rest); with it, the last component is the
 * file: a link there is followed and checked like the others, and the walk
 * ends with w->dirfd open on the checked directory the file is in and
 * w->name its name there.  0, or -1 with a message in err.
 */
static int
walk(const char *path, struct walk *w, char *err, size_t errlen)
{
	char rest[PATH_BUF], next[PATH_BUF], link[PATH_MAX];
	int cur, rc = -1;
	char *p;

	w->dirfd = -1;
	w->links = 0;
	if (path[0] == '/')
		snprintf(rest, sizeof(rest), "%s", path);
	else {
		char cwd[PATH_MAX];

		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			snprintf(err, errlen, "%s: cannot tell the current directory: %s", path,
				 strerror(errno));
			return -1;
		}
		snprintf(rest, sizeof(rest), "%s/%s", cwd, path);
	}
	if ((cur = open_root(w->shown, sizeof(w->shown), err, errlen)) < 0)
		return -1;
	if (check_fd_dir(cur, w->shown, w->risk, err, errlen) < 0)
		goto out;
	p = rest;
	for (;;) {
		struct stat st;
		char *name, *end;
		bool last;
		int fd;

		while (*p == '/')
			p++;
		if (*p == '\0') {
			if (w->file) {
				snprintf(err, errlen, "%s: %s", w->shown, strerror(EISDIR));
				goto out;
			}
			break;
		}
		name = p;
		end = strchr(p, '/');
		p = end ? end + 1 : p + strlen(p);
		if (end)
			*end = '\0';
		/* The file's own name: the last, with no slash after it (a directory's then). */
		last = w->file && end == NULL;
		if (strcmp(name, ".") == 0 && !last)
			continue;
		if (fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT && !w->file) {
				rc = 0; /* the rest does not exist yet */
				goto out;
			}
			snprintf(err, errlen, "%s%s%s: %s", w->shown,
				 w->shown[strlen(w->shown) - 1] == '/' ? "" : "/", name,
				 strerror(errno));
			goto out;
		}
		if (S_ISLNK(st.st_mode)) {
			ssize_t n;

			shown_step(w->shown, sizeof(w->shown), name);
			if (!uid_trusted(st.st_uid)) {
				snprintf(err, errlen,
					 "%s is a symbolic link owned by uid %u, neither root nor "
					 "chatd's user: refused",
					 w->shown, (unsigned)st.st_uid);
				goto out;
			}
			if (++w->links > MAX_LINKS ||
			    (n = readlinkat(cur, name, link, sizeof(link) - 1)) < 0) {
				snprintf(err, errlen, "%s: %s", w->shown,
					 strerror(w->links > MAX_LINKS ? ELOOP : errno));
				goto out;
			}
			link[n] = '\0';
			snprintf(next, sizeof(next), "%s%s%s", link, end ? "/" : "", p);
			memcpy(rest, next, sizeof(rest));
			p = rest;
			shown_step(w->shown, sizeof(w->shown), "..");
			if (link[0] == '/') {
				close(cur);
				if ((cur = open_root(w->shown, sizeof(w->shown), err, errlen)) < 0)
					return -1;
			}
			continue;
		}
		if (last) {
			/* The file itself: the caller opens it from the directory checked. */
			size_t n = strlen(name);

			shown_step(w->shown, sizeof(w->shown), name);
			if (n >= sizeof(w->name)) {
				snprintf(err, errlen, "%s: %s", w->shown, strerror(ENAMETOOLONG));
				goto out;
			}
			memcpy(w->name, name, n + 1);
			w->dirfd = cur;
			return 0;
		}
		shown_step(w->shown, sizeof(w->shown), name);
		fd = openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "%s: %s", w->shown, strerror(errno));
			goto out;
		}
		close(cur);
		cur = fd;
		if (check_fd_dir(cur, w->shown, w->risk, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	close(cur);
	return rc;
}

int
safefile_check_dir(const char *dir, char *err, size_t errlen)
{
	struct walk w = { .risk = "others could redirect chatd's files" };

	return walk(dir, &w, err, errlen);
}

/* Why chatd must not use an open file, or NULL. */
static const char *
file_problem(const struct stat *st, int opts, char *why, size_t len)
{
	if (S_ISCHR(st->st_mode) && (opts & SAFEFILE_DEVICE_OK))
		return NULL;
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (!uid_trusted(st->st_uid)) {
		snprintf(why, len, "owned by uid %u, neither root nor chatd's user",
			 (unsigned)st->st_uid);
		return why;
	}
	if (st->st_nlink > 1) {
		snprintf(why, len,
			 "a file with %lu hard links (chatd writes to files of its own only)",
			 (unsigned long)st->st_nlink);
		return why;
	}
	return NULL;
}

static void
describe_link(const char *path, char *err, size_t errlen)
{
	snprintf(err, errlen,
		 "%s is a symbolic link: refused (chatd never follows a link to its own files)",
		 path);
}

/* The directory path is in ("." for a bare name). */
static void
dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(dir, len, ".");
	else
		snprintf(dir, len, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

int
safefile_check_file(const char *path, int opts, char *err, size_t errlen)
{
	char dir[PATH_BUF], why[96];
	const char *problem;
	struct stat st;

	dir_of(path, dir, sizeof(dir));
	if (safefile_check_dir(dir, err, errlen) < 0)
		return -1;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISLNK(st.st_mode)) {
		describe_link(path, err, errlen);
		return -1;
	}
	if ((problem = file_problem(&st, opts, why, sizeof(why))) != NULL) {
		snprintf(err, errlen, "%s is %s: refused", path, problem);
		return -1;
	}
	return 0;
}

/* Why a file chatd reads would let someone untrusted change it, or NULL. */
static const char *
read_problem(int fd, const struct stat *st, char *why, size_t len)
{
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	return rights_problem(fd, st, false, why, len);
}

int
safefile_open_read(const char *path, char *err, size_t errlen)
{
	struct walk w = { .file = true, .risk = "others could put a file of their own there" };
	char sub[PATH_BUF + 256], why[128];
	const char *problem;
	struct stat st;
	int fd;

	if (walk(path, &w, sub, sizeof(sub)) < 0) {
		snprintf(err, errlen, "%s%s", w.links > 0 ? "through its symbolic link, " : "",
			 sub);
		return -1;
	}
	/* O_NONBLOCK: a FIFO put there after all would not hang the open. */
	fd = openat(w.dirfd, w.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		snprintf(sub, sizeof(sub), "%s", strerror(errno));
	else if (fstat(fd, &st) < 0)
		snprintf(sub, sizeof(sub), "%s", strerror(errno));
	else if ((problem = read_problem(fd, &st, why, sizeof(why))) != NULL)
		snprintf(sub, sizeof(sub), "%s", problem);
	else {
		close(w.dirfd);
		return fd;
	}
	if (w.links > 0)
		snprintf(err, errlen, "leads to %s: %s", w.shown, sub);
	else
		snprintf(err, errlen, "%s", sub);
	if (fd >= 0)
		close(fd);
	close(w.dirfd);
	return -1;
}

int
safefile_open(const char *path, int flags, mode_t mode, int opts, char *err, size_t errlen)
{
	int fd = open(path, (flags & ~O_TRUNC) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
	const char *problem;
	struct stat st;
	char why[96];
	int saved;

	if (fd < 0) {
		saved = errno;
		if (err != NULL && saved == ELOOP)
			describe_link(path, err, errlen);
		else if (err != NULL)
			snprintf(err, errlen, "%s: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	if (fstat(fd, &st) < 0)
		goto failed;
	/* Checked before anything changes the file: truncation and mode come after. */
	if ((problem = file_problem(&st, opts, why, sizeof(why))) != NULL) {
		if (err != NULL)
			snprintf(err, errlen, "%s is %s: refused", path, problem);
		close(fd);
		errno = EPERM;
		return -1;
	}
	/* O_NONBLOCK only so that a FIFO could not hang the open above. */
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		goto failed;
	if ((flags & O_TRUNC) && S_ISREG(st.st_mode) && ftruncate(fd, 0) < 0)
		goto failed;
	if ((opts & SAFEFILE_SETMODE) && (st.st_mode & 07777) != mode && fchmod(fd, mode) < 0) {
		saved = errno;
		if (err != NULL)
			snprintf(err, errlen, "%s: cannot set mode %04o: %s", path, (unsigned)mode,
				 strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
failed:
	saved = errno;
	if (err != NULL)
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
	close(fd);
	errno = saved;
	return -1;
}

int
safefile_lock(const char *path, char *err, size_t errlen)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char lockpath[PATH_BUF], pid[32];
	int fd, n;

	if (snprintf(lockpath, sizeof(lockpath), "%s.lock", path) >= (int)sizeof(lockpath)) {
		snprintf(err, errlen, "%s: %s", path, strerror(ENAMETOOLONG));
		return -1;
	}
	fd = safefile_open(lockpath, O_RDWR | O_CREAT, 0600, SAFEFILE_SETMODE, err, errlen);
	if (fd < 0)
		return -1;
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		if (errno == EAGAIN || errno == EACCES) {
			ssize_t got = pread(fd, pid, sizeof(pid) - 1, 0);

			pid[got > 0 ? got : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			snprintf(err, errlen, "%s is in use by another chatd (pid %s, lock %s)",
				 path, pid[0] ? pid : "unknown", lockpath);
		} else
			snprintf(err, errlen, "%s: cannot lock: %s", lockpath, strerror(errno));
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		snprintf(err, errlen, "%s: cannot write: %s", lockpath, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
safefile_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
