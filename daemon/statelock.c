/*
 * statelock.c - the state directory's lock file (see statelock.h); opened
 * through safefile_open(), so never through a symbolic link.  Main thread,
 * at start-up.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "safefile.h"
#include "statelock.h"

#define LOCK_NAME "chatd.lock"

static void
describe_owner(int fd, const char *path, char *err, size_t errlen)
{
	char pid[32] = "";
	ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);

	if (n > 0)
		pid[strcspn(pid, "\n")] = '\0';
	if (n > 0 && pid[0])
		snprintf(err, errlen, "%s is in use by another chatd (pid %s)", path, pid);
	else
		snprintf(err, errlen, "%s is in use by another chatd", path);
}

int
statelock_acquire(const char *state_dir, char *err, size_t errlen)
{
	char path[4096];
	char pid[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/%s", state_dir, LOCK_NAME);
	fd = safefile_open(path, O_RDWR | O_CREAT, 0600, 0, err, errlen);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			describe_owner(fd, state_dir, err, errlen);
		else
			snprintf(err, errlen, "%s: cannot lock: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
