/*
 * test_safefile.c - safefile.h: the path checks (directories others may
 * write, links and their owners), the checked open (links, hard links,
 * foreign files, FIFOs, truncation and mode only after the checks) and the
 * sidecar lock that outlives a rename of the file it guards; the checked
 * open of a file chatd only reads (links followed, each link and every
 * directory of a chain of links checked).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/acl.h>
#include <unistd.h>

#include "safefile.h"

struct dir {
	char path[64];
	char err[1024];
};

static int
setup_dir(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -1;
	strcpy(d->path, "/tmp/chatd-test-safefile-XXXXXX");
	if (mkdtemp(d->path) == NULL)
		return -1;
	*state = d;
	return 0;
}

static int
teardown_dir(void **state)
{
	struct dir *d = *state;
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s'; rm -rf '%s'", d->path, d->path);
	free(d);
	return system(cmd) == 0 ? 0 : -1;
}

static char *
in(const struct dir *d, const char *name)
{
	static char buf[8][256];
	static int next;
	char *p = buf[next++ % 8];

	snprintf(p, sizeof(buf[0]), "%s/%s", d->path, name);
	return p;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
assert_file(const char *path, const char *text, mode_t mode)
{
	char buf[256];
	struct stat st;
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	assert_string_equal(buf, text);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, mode);
}

static void
test_dirs(void **state)
{
	struct dir *d = *state;

	assert_int_equal(safefile_check_dir(d->path, d->err, sizeof(d->err)), 0);
	/* Missing parts are fine: chatd creates them. */
	assert_int_equal(safefile_check_dir(in(d, "a/b/c"), d->err, sizeof(d->err)), 0);
	assert_int_equal(mkdir(in(d, "open"), 0755), 0);
	assert_int_equal(chmod(in(d, "open"), 0777), 0);
	assert_int_equal(safefile_check_dir(in(d, "open/state"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by everyone"));
	assert_non_null(strstr(d->err, in(d, "open")));
	assert_int_equal(safefile_check_file(in(d, "open/history"), 0, d->err, sizeof(d->err)), -1);
	/* The sticky bit: others may not replace what is not theirs. */
	assert_int_equal(chmod(in(d, "open"), 01777), 0);
	assert_int_equal(safefile_check_dir(in(d, "open/state"), d->err, sizeof(d->err)), 0);
	/* A group other than root's or ours. */
	if (geteuid() == 0) {
		assert_int_equal(chmod(in(d, "open"), 0775), 0);
		assert_int_equal(chown(in(d, "open"), 0, 65534), 0);
		assert_int_equal(safefile_check_dir(in(d, "open"), d->err, sizeof(d->err)), -1);
		assert_non_null(strstr(d->err, "writable by group 65534"));
		/* Owned by someone else. */
		assert_int_equal(chmod(in(d, "open"), 0755), 0);
		assert_int_equal(chown(in(d, "open"), 65534, 0), 0);
		assert_int_equal(safefile_check_dir(in(d, "open"), d->err, sizeof(d->err)), -1);
		assert_non_null(strstr(d->err, "owned by uid 65534"));
		/* ...unless that is the user chatd drops root for. */
		safefile_trust(65534, 65534);
		assert_int_equal(safefile_check_dir(in(d, "open"), d->err, sizeof(d->err)), 0);
		safefile_trust((uid_t)-1, (gid_t)-1);
	}
	/* A relative path is walked from the current directory. */
	assert_int_equal(chdir(d->path), 0);
	assert_int_equal(safefile_check_dir("./x/../y", d->err, sizeof(d->err)), 0);
	assert_int_equal(chdir("/"), 0);
}

static void
test_links_in_directories(void **state)
{
	struct dir *d = *state;

	assert_int_equal(mkdir(in(d, "real"), 0750), 0);
	assert_int_equal(symlink(in(d, "real"), in(d, "abs")), 0);
	assert_int_equal(symlink("real/../real", in(d, "rel")), 0);
	assert_int_equal(safefile_check_file(in(d, "abs/history"), 0, d->err, sizeof(d->err)), 0);
	assert_int_equal(safefile_check_file(in(d, "rel/history"), 0, d->err, sizeof(d->err)), 0);
	/* A link leading through a directory others may write is as bad as the directory. */
	assert_int_equal(mkdir(in(d, "open"), 0777), 0);
	assert_int_equal(chmod(in(d, "open"), 0777), 0);
	assert_int_equal(symlink(in(d, "open"), in(d, "toopen")), 0);
	assert_int_equal(safefile_check_dir(in(d, "toopen/state"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by everyone"));
	/* A loop ends. */
	assert_int_equal(symlink("loop", in(d, "loop")), 0);
	assert_int_equal(safefile_check_dir(in(d, "loop/x"), d->err, sizeof(d->err)), -1);
	/* A link owned by someone else may be changed by them (in a sticky directory). */
	if (geteuid() == 0) {
		assert_int_equal(lchown(in(d, "abs"), 65534, 65534), 0);
		assert_int_equal(safefile_check_dir(in(d, "abs"), d->err, sizeof(d->err)), -1);
		assert_non_null(strstr(d->err, "symbolic link owned by uid 65534"));
	}
}

static void
test_file_itself(void **state)
{
	struct dir *d = *state;

	write_file(in(d, "victim"), "victim\n", 0644);
	assert_int_equal(symlink(in(d, "victim"), in(d, "history")), 0);
	assert_int_equal(safefile_check_file(in(d, "history"), 0, d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "is a symbolic link"));
	assert_int_equal(safefile_open(in(d, "history"), O_RDWR | O_CREAT | O_TRUNC, 0600,
				       SAFEFILE_SETMODE, d->err, sizeof(d->err)),
			 -1);
	assert_int_equal(errno, ELOOP);
	assert_non_null(strstr(d->err, "is a symbolic link"));
	assert_file(in(d, "victim"), "victim\n", 0644);

	/* A hard link: refused before O_TRUNC or the mode could touch the other name's file. */
	assert_int_equal(unlink(in(d, "history")), 0);
	assert_int_equal(link(in(d, "victim"), in(d, "history")), 0);
	assert_int_equal(safefile_check_file(in(d, "history"), 0, d->err, sizeof(d->err)), -1);
	assert_int_equal(safefile_open(in(d, "history"), O_RDWR | O_CREAT | O_TRUNC, 0600,
				       SAFEFILE_SETMODE, d->err, sizeof(d->err)),
			 -1);
	assert_int_equal(errno, EPERM);
	assert_non_null(strstr(d->err, "2 hard links"));
	assert_file(in(d, "victim"), "victim\n", 0644);

	/* A FIFO neither hangs the open nor is used. */
	assert_int_equal(unlink(in(d, "history")), 0);
	assert_int_equal(mkfifo(in(d, "history"), 0600), 0);
	assert_int_equal(safefile_check_file(in(d, "history"), 0, d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "not a regular file"));
	assert_int_equal(safefile_open(in(d, "history"), O_RDWR | O_CREAT, 0600, 0, d->err,
				       sizeof(d->err)),
			 -1);
	/* A device only where allowed (the log: /dev/null). */
	assert_int_equal(safefile_check_file("/dev/null", 0, d->err, sizeof(d->err)), -1);
	assert_int_equal(safefile_check_file("/dev/null", SAFEFILE_DEVICE_OK, d->err,
					     sizeof(d->err)),
			 0);

	if (geteuid() == 0) {
		assert_int_equal(unlink(in(d, "history")), 0);
		write_file(in(d, "history"), "theirs\n", 0644);
		assert_int_equal(chown(in(d, "history"), 65534, 65534), 0);
		assert_int_equal(safefile_open(in(d, "history"), O_RDWR | O_TRUNC, 0600,
					       SAFEFILE_SETMODE, d->err, sizeof(d->err)),
				 -1);
		assert_non_null(strstr(d->err, "owned by uid 65534"));
		assert_file(in(d, "history"), "theirs\n", 0644);
	}
}

/* safefile_open_read() as a check: 0 (the descriptor closed) or -1. */
static int
check_read(const char *path, char *err, size_t errlen)
{
	int fd = safefile_open_read(path, err, errlen);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* A file chatd only reads (the TLS pair): links followed, owners and write rights checked. */
static void
test_open_read(void **state)
{
	struct dir *d = *state;
	char buf[16];
	int fd;

	write_file(in(d, "key"), "key\n", 0600);
	assert_int_equal(check_read(in(d, "key"), d->err, sizeof(d->err)), 0);
	/* The descriptor is the file's, read-only. */
	fd = safefile_open_read(in(d, "key"), d->err, sizeof(d->err));
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "key\n", 4);
	assert_int_equal(write(fd, "x", 1), -1);
	close(fd);
	/* A name with a slash after it, or a directory, is no file. */
	assert_int_equal(check_read(in(d, "key/"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "Not a directory"));
	assert_int_equal(check_read(d->path, d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "not a regular file"));
	/* A link to a file of ours is followed, unlike for the files chatd writes. */
	assert_int_equal(symlink(in(d, "key"), in(d, "live")), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), 0);
	assert_int_equal(check_read(in(d, "missing"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "No such file"));

	assert_int_equal(chmod(in(d, "key"), 0602), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by everyone (mode 0602)"));
	assert_int_equal(chmod(in(d, "key"), 0620), 0);
	assert_int_equal(check_read(in(d, "key"), d->err, sizeof(d->err)), 0);

	assert_int_equal(mkfifo(in(d, "fifo"), 0600), 0);
	assert_int_equal(check_read(in(d, "fifo"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "not a regular file"));

	if (geteuid() != 0)
		return;
	/* Group-writable only for root's group or ours. */
	assert_int_equal(chown(in(d, "key"), 0, 65534), 0);
	assert_int_equal(check_read(in(d, "key"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by group 65534"));
	assert_int_equal(chmod(in(d, "key"), 0640), 0);
	assert_int_equal(check_read(in(d, "key"), d->err, sizeof(d->err)), 0);
	/* Another owner may chmod it at will. */
	assert_int_equal(chown(in(d, "key"), 65534, 0), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "owned by uid 65534"));
	assert_int_equal(chown(in(d, "key"), 0, 0), 0);
	/* Where the link leads counts too: a directory another user owns. */
	assert_int_equal(mkdir(in(d, "theirs"), 0755), 0);
	write_file(in(d, "theirs/key"), "key\n", 0600);
	assert_int_equal(chown(in(d, "theirs"), 65534, 65534), 0);
	assert_int_equal(unlink(in(d, "live")), 0);
	assert_int_equal(symlink(in(d, "theirs/key"), in(d, "live")), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "through its symbolic link, "));
	assert_non_null(strstr(d->err, "owned by uid 65534"));
	assert_int_equal(chown(in(d, "theirs"), 0, 0), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), 0);
}

/*
 * Every link on the way to a file chatd reads counts, not only the directories of the path and
 * of the file it ends at: a link in a directory others may write, or a link owned by someone
 * else (in a sticky directory), may be pointed anywhere after the check.
 */
static void
test_open_read_link_chains(void **state)
{
	struct dir *d = *state;

	write_file(in(d, "key"), "key\n", 0600);
	/* live -> open/hop -> key: open/ is writable by everyone, so hop may be swapped. */
	assert_int_equal(mkdir(in(d, "open"), 0777), 0);
	assert_int_equal(chmod(in(d, "open"), 0777), 0);
	assert_int_equal(symlink(in(d, "key"), in(d, "open/hop")), 0);
	assert_int_equal(symlink(in(d, "open/hop"), in(d, "live")), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by everyone"));
	assert_non_null(strstr(d->err, in(d, "open")));
	/* The same hop, relative. */
	assert_int_equal(unlink(in(d, "live")), 0);
	assert_int_equal(symlink("open/hop", in(d, "live")), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by everyone"));
	/* A chain through directories of ours is fine. */
	assert_int_equal(chmod(in(d, "open"), 0755), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), 0);

	if (geteuid() != 0)
		return;
	/* A link owned by someone else, at the file's place in a sticky directory. */
	assert_int_equal(mkdir(in(d, "sticky"), 01777), 0);
	assert_int_equal(chmod(in(d, "sticky"), 01777), 0);
	assert_int_equal(symlink(in(d, "key"), in(d, "sticky/key")), 0);
	assert_int_equal(lchown(in(d, "sticky/key"), 65534, 65534), 0);
	assert_int_equal(check_read(in(d, "sticky/key"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "symbolic link owned by uid 65534"));
	/* ...or in the middle of a chain. */
	assert_int_equal(unlink(in(d, "live")), 0);
	assert_int_equal(symlink(in(d, "sticky/key"), in(d, "live")), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "symbolic link owned by uid 65534"));
	/* A hop in a directory another user owns. */
	assert_int_equal(lchown(in(d, "open/hop"), 0, 0), 0);
	assert_int_equal(chown(in(d, "open"), 65534, 65534), 0);
	assert_int_equal(unlink(in(d, "live")), 0);
	assert_int_equal(symlink(in(d, "open/hop"), in(d, "live")), 0);
	assert_int_equal(check_read(in(d, "live"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "owned by uid 65534"));
}

/*
 * Gives uid (or, with group, gid) id read and write rights on path through a POSIX ACL;
 * the mode's group bits become the ACL's mask (rw).  false if the file system has no ACLs.
 */
static bool
grant_by_acl(const char *path, bool group, unsigned id)
{
	char text[128];
	acl_t acl;
	int rc;

	snprintf(text, sizeof(text), "u::rwx,%s:%u:rw-,g::---,m::rw-,o::---", group ? "g" : "u",
		 id);
	acl = acl_from_text(text);
	assert_non_null(acl);
	rc = acl_set_file(path, ACL_TYPE_ACCESS, acl);
	acl_free(acl);
	if (rc == 0)
		return true;
	assert_int_equal(errno, EOPNOTSUPP);
	return false;
}

/*
 * An ACL entry is as good as the owner's rights for whom it names: a key or a directory
 * that the mode shows writable only by root's group (the ACL's mask) but that the ACL lets
 * another user or group write is refused; an entry for chatd's own user is fine.
 */
static void
test_acl_writers(void **state)
{
	struct dir *d = *state;

	write_file(in(d, "key"), "key\n", 0600);
	if (!grant_by_acl(in(d, "key"), false, 65534))
		skip();
	assert_int_equal(check_read(in(d, "key"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by uid 65534 through its ACL"));
	assert_true(grant_by_acl(in(d, "key"), true, 65534));
	assert_int_equal(check_read(in(d, "key"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by group 65534 through its ACL"));
	assert_true(grant_by_acl(in(d, "key"), false, geteuid()));
	assert_int_equal(check_read(in(d, "key"), d->err, sizeof(d->err)), 0);

	assert_int_equal(mkdir(in(d, "dir"), 0750), 0);
	assert_true(grant_by_acl(in(d, "dir"), false, 65534));
	assert_int_equal(safefile_check_dir(in(d, "dir/state"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by uid 65534 through its ACL"));
	write_file(in(d, "dir/key"), "key\n", 0600);
	assert_int_equal(check_read(in(d, "dir/key"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "writable by uid 65534 through its ACL"));
}

static void
test_open_sets_mode_and_truncates(void **state)
{
	struct dir *d = *state;
	struct stat st;
	int fd;

	write_file(in(d, "ident"), "old\n", 0644);
	fd = safefile_open(in(d, "ident"), O_RDONLY, 0600, SAFEFILE_SETMODE, d->err,
			   sizeof(d->err));
	assert_true(fd >= 0);
	close(fd);
	assert_file(in(d, "ident"), "old\n", 0600);
	fd = safefile_open(in(d, "ident"), O_WRONLY | O_TRUNC, 0600, 0, NULL, 0);
	assert_true(fd >= 0);
	/* O_NONBLOCK was only for the open. */
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(fd);
	assert_int_equal(stat(in(d, "ident"), &st), 0);
	assert_int_equal(st.st_size, 0);
	/* Without SAFEFILE_SETMODE an existing file keeps its mode (the log). */
	assert_int_equal(chmod(in(d, "ident"), 0644), 0);
	fd = safefile_open(in(d, "ident"), O_WRONLY | O_APPEND | O_CREAT, 0640, 0, NULL, 0);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(stat(in(d, "ident"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	/* Missing without O_CREAT: ENOENT, which the identification file takes as empty. */
	assert_int_equal(safefile_open(in(d, "none"), O_RDONLY, 0600, 0, NULL, 0), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_lock(void **state)
{
	struct dir *d = *state;
	char pid[32];
	int first, second;

	first = safefile_lock(in(d, "history"), d->err, sizeof(d->err));
	assert_true(first >= 0);
	assert_file(in(d, "history.lock"),
		    (snprintf(pid, sizeof(pid), "%ld\n", (long)getpid()), pid), 0600);
	/* OFD locks conflict between two opens even in one process, as between two chatds. */
	second = safefile_lock(in(d, "history"), d->err, sizeof(d->err));
	assert_int_equal(second, -1);
	assert_non_null(strstr(d->err, "in use by another chatd"));
	assert_non_null(strstr(d->err, in(d, "history")));
	pid[strlen(pid) - 1] = '\0';
	assert_non_null(strstr(d->err, pid));
	/* The file itself replaced by a rename (compaction): the lock still holds. */
	write_file(in(d, "history.tmp"), "new\n", 0600);
	assert_int_equal(rename(in(d, "history.tmp"), in(d, "history")), 0);
	assert_int_equal(safefile_lock(in(d, "history"), d->err, sizeof(d->err)), -1);
	/* Released with its descriptor; the lock file stays. */
	close(first);
	second = safefile_lock(in(d, "history"), d->err, sizeof(d->err));
	assert_true(second >= 0);
	close(second);
	/* A planted link at the lock file is not followed. */
	write_file(in(d, "victim"), "victim\n", 0644);
	assert_int_equal(symlink(in(d, "victim"), in(d, "ident.lock")), 0);
	assert_int_equal(safefile_lock(in(d, "ident"), d->err, sizeof(d->err)), -1);
	assert_non_null(strstr(d->err, "symbolic link"));
	assert_file(in(d, "victim"), "victim\n", 0644);
}

/* safefile_write_all(): every byte, or -1 with errno. */
static void
test_write_all(void **state)
{
	struct dir *d = *state;
	static char big[1 << 20];
	char *path = in(d, "whole");
	struct stat st;
	int fd, pipefd[2];

	memset(big, 'x', sizeof(big));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(safefile_write_all(fd, big, sizeof(big)), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, sizeof(big));
	close(fd);
	/* A pipe nobody reads: the write fails (EPIPE, SIGPIPE ignored) instead of hanging. */
	assert_int_equal(pipe(pipefd), 0);
	close(pipefd[0]);
	signal(SIGPIPE, SIG_IGN);
	errno = 0;
	assert_int_equal(safefile_write_all(pipefd[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(pipefd[1]);
	errno = 0;
	assert_int_equal(safefile_write_all(-1, "x", 1), -1);
	assert_int_equal(errno, EBADF);
}

#define DIR_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_dir, teardown_dir)

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		DIR_TEST(test_dirs),
		DIR_TEST(test_links_in_directories),
		DIR_TEST(test_file_itself),
		DIR_TEST(test_open_read),
		DIR_TEST(test_open_read_link_chains),
		DIR_TEST(test_acl_writers),
		DIR_TEST(test_open_sets_mode_and_truncates),
		DIR_TEST(test_lock),
		DIR_TEST(test_write_all),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
