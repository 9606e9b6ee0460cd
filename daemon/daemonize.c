/*
 * daemonize.c - detaching for chatd --daemon (see daemonize.h).
 *
 * Owned by the control thread; the state here is set before any other
 * thread exists and only read at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemonize.h"
#include "safefile.h"

static int ready_fd = -1; /* the child's end of the readiness pipe */
static int pid_fd = -1;
static char *pid_path;

/* The parent: exit as the child does, 0 once it says it serves. */
static void __attribute__((noreturn)) wait_for_child(pid_t child, int fd)
{
	char byte;
	ssize_t n;
	int status;

	while ((n = read(fd, &byte, 1)) < 0 && errno == EINTR)
		;
	if (n == 1)
		_exit(0);
	/* The pipe closed without a word: the child exited; its error is already printed. */
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
	fprintf(stderr, "chatd: the daemon died of signal %d before it was ready\n",
		WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	_exit(1);
}

int
daemonize_start(char *err, size_t errlen)
{
	int pipefd[2];
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		close(pipefd[1]);
		wait_for_child(pid, pipefd[0]);
	}
	close(pipefd[0]);
	ready_fd = pipefd[1];
	/* A new session: no controlling terminal, no signals from the shell's job control. */
	if (setsid() < 0) {
		snprintf(err, errlen, "setsid: %s", strerror(errno));
		return -1;
	}
	umask(027);
	if (chdir("/") < 0) {
		snprintf(err, errlen, "chdir /: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
daemonize_pidfile(const char *path, char *err, size_t errlen)
{
	char buf[32], why[512];
	int fd = safefile_open(path, O_RDWR | O_CREAT, 0644, 0, why, sizeof(why));
	int n;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open the pid file: %s", why);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		n = (int)pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(err, errlen, "chatd is already running (pid %s, pid file %s)",
			 buf[0] ? buf : "unknown", path);
		close(fd);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		snprintf(err, errlen, "cannot write the pid file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	pid_fd = fd;
	pid_path = strdup(path);
	return 0;
}

void
daemonize_ready(void)
{
	int null;

	if (ready_fd < 0)
		return;
	fflush(stdout);
	fflush(stderr);
	if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	if (write(ready_fd, "R", 1) != 1) {
		/* The parent is gone already; nobody waits for the word. */
	}
	close(ready_fd);
	ready_fd = -1;
}

void
daemonize_finish(void)
{
	if (pid_fd < 0)
		return;
	unlink(pid_path);
	close(pid_fd);
	free(pid_path);
	pid_fd = -1;
	pid_path = NULL;
}
