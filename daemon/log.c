/*
 * log.c - the service log: one escaped line per event, written with one
 * system call so concurrent threads never interleave inside a line.
 *
 * No lock on the hot path: the settings are atomics, the file descriptor
 * number never changes while the log is open (log_reopen() swaps the file
 * under it with dup3()), and O_APPEND lets the kernel place each line.
 * log_open() and log_close() belong to the main thread (startup, shutdown).
 *
 * Before the file is open (chatd opens it only once root is dropped) lines
 * go to stderr, or after log_hold() are kept in memory instead (up to
 * HELD_MAX bytes) for log_open() to write first: start-up lines reach the
 * file as if it had been open all along; if chatd fails before that, its
 * error is on stderr (server.c's fail()).  Only the main thread runs then;
 * a mutex guards the buffer anyway.
 *
 * A log_gate belongs to its caller and is guarded by the caller's lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "escape.h"
#include "log.h"
#include "safefile.h"
#include "timefmt.h"

/* Log calls run on threads with small stacks: both buffers fit in 2 KiB. */
#define LOG_MSG_MAX 896
#define LOG_LINE_MAX 1024
/* Where "LEVEL message" starts, after "TIME ". */
#define LOG_TEXT_OFFSET (TIME_RFC3339_LEN + 1)
/* Start-up lines kept for the file until it opens. */
#define HELD_MAX (64 * 1024)

enum stderr_mode {
	STDERR_OFF,
	STDERR_PLAIN,
	STDERR_PRIORITY,
};

static atomic_int log_fd = -1;
static atomic_int log_min_level = LVL_INFO;
static atomic_int log_stderr_mode = STDERR_OFF;
static atomic_ulong log_lost_lines;
static char *log_file_path;
static atomic_bool log_holding;
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static char *held;
static size_t held_len;

/* clang-format off */
static const char *const level_names[] = {
	[LVL_ERROR] = "error",
	[LVL_WARNING] = "warning",
	[LVL_NOTICE] = "notice",
	[LVL_INFO] = "info",
	[LVL_DEBUG] = "debug",
};
/* clang-format on */

int
log_level_parse(const char *name)
{
	for (int level = LVL_ERROR; level <= LVL_DEBUG; level++)
		if (strcmp(name, level_names[level]) == 0)
			return level;
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	if (level < LVL_ERROR || level > LVL_DEBUG)
		return "unknown";
	return level_names[level];
}

/* Never through a symbolic link, never someone else's file (safefile.h). */
static int
open_log_file(const char *path)
{
	return safefile_open(path, O_WRONLY | O_APPEND | O_CREAT, 0640, SAFEFILE_DEVICE_OK, NULL,
			     0);
}

/*
 * Writers may be inside write() on fd right now: dup3() replaces the file
 * behind the number atomically, where close() and open() would leave a
 * moment with no file (or someone else's) under it.
 */
static int
swap_file(int fd, int new_fd)
{
	int rc = dup3(new_fd, fd, O_CLOEXEC);
	int saved = errno;

	close(new_fd);
	errno = saved;
	return rc < 0 ? -1 : 0;
}

void
log_hold(void)
{
	atomic_store(&log_holding, true);
}

/* A line written before the file opened, kept for it; the excess is counted as lost. */
static void
hold_line(const char *line, size_t len)
{
	pthread_mutex_lock(&held_lock);
	if (held == NULL)
		held = malloc(HELD_MAX);
	if (held != NULL && held_len + len <= HELD_MAX) {
		memcpy(held + held_len, line, len);
		held_len += len;
	} else
		atomic_fetch_add_explicit(&log_lost_lines, 1, memory_order_relaxed);
	pthread_mutex_unlock(&held_lock);
}

static void
release_held(int fd)
{
	atomic_store(&log_holding, false);
	pthread_mutex_lock(&held_lock);
	if (fd >= 0 && held_len > 0 && write(fd, held, held_len) != (ssize_t)held_len)
		atomic_fetch_add_explicit(&log_lost_lines, 1, memory_order_relaxed);
	free(held);
	held = NULL;
	held_len = 0;
	pthread_mutex_unlock(&held_lock);
}

int
log_open(const char *path)
{
	char *copy = strdup(path);
	int old_fd = atomic_load(&log_fd);
	int fd;

	if (copy == NULL)
		return -1;
	fd = open_log_file(copy);
	if (fd < 0 || (old_fd >= 0 && swap_file(old_fd, fd) < 0)) {
		int saved = errno;

		free(copy);
		errno = saved;
		return -1;
	}
	if (old_fd < 0) {
		release_held(fd);
		atomic_store(&log_fd, fd);
	}
	free(log_file_path);
	log_file_path = copy;
	return 0;
}

int
log_reopen(void)
{
	int fd = atomic_load(&log_fd);
	int new_fd;

	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	new_fd = open_log_file(log_file_path);
	if (new_fd < 0)
		return -1;
	return swap_file(fd, new_fd);
}

int
log_truncate(void)
{
	int fd = atomic_load(&log_fd);

	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	return ftruncate(fd, 0);
}

void
log_close(void)
{
	int fd = atomic_exchange(&log_fd, -1);

	if (fd >= 0)
		close(fd);
	release_held(-1);
	free(log_file_path);
	log_file_path = NULL;
}

const char *
log_path(void)
{
	return log_file_path;
}

void
log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_min_level, level, memory_order_relaxed);
}

bool
log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

void
log_set_stderr(bool enabled, bool with_priority)
{
	int mode = !enabled ? STDERR_OFF : with_priority ? STDERR_PRIORITY : STDERR_PLAIN;

	atomic_store_explicit(&log_stderr_mode, mode, memory_order_relaxed);
}

unsigned long
log_write_errors(void)
{
	return atomic_load_explicit(&log_lost_lines, memory_order_relaxed);
}

/*
 * A full disk or a closed stderr must not stop the daemon, and retrying a
 * short write could split a line around another thread's: count and go on.
 */
static void
write_or_count(int fd, const struct iovec *iov, int iovcnt, size_t len)
{
	if (writev(fd, iov, iovcnt) != (ssize_t)len)
		atomic_fetch_add_explicit(&log_lost_lines, 1, memory_order_relaxed);
}

/* journald stamps the time itself and reads the priority from "<N>". */
static void
write_stderr_priority(enum log_level level, const char *text, size_t len)
{
	char prefix[16];
	int n = snprintf(prefix, sizeof(prefix), "<%d>", (int)level);
	struct iovec iov[2] = {
		{ .iov_base = prefix, .iov_len = (size_t)n },
		{ .iov_base = (char *)text, .iov_len = len },
	};

	write_or_count(STDERR_FILENO, iov, 2, (size_t)n + len);
}

static void
emit(enum log_level level, char *line, size_t len)
{
	int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
	int mode = atomic_load_explicit(&log_stderr_mode, memory_order_relaxed);
	struct iovec whole = { .iov_base = line, .iov_len = len };
	bool held_for_file = fd < 0 && atomic_load_explicit(&log_holding, memory_order_relaxed);

	if (fd >= 0)
		write_or_count(fd, &whole, 1, len);
	else if (held_for_file)
		hold_line(line, len);
	if (mode == STDERR_PRIORITY)
		write_stderr_priority(level, line + LOG_TEXT_OFFSET, len - LOG_TEXT_OFFSET);
	else if ((fd < 0 && !held_for_file) || mode == STDERR_PLAIN)
		write_or_count(STDERR_FILENO, &whole, 1, len);
}

/* Builds "TIME LEVEL escaped-message\n"; returns its length. */
static size_t
format_line(char line[LOG_LINE_MAX], enum log_level level, const char *msg, size_t msg_len)
{
	size_t len;

	time_format_ms(line, time_now_ms());
	line[TIME_RFC3339_LEN] = ' ';
	len = LOG_TEXT_OFFSET + (size_t)snprintf(line + LOG_TEXT_OFFSET,
						 LOG_LINE_MAX - LOG_TEXT_OFFSET, "%s ",
						 log_level_name(level));
	len += escape_bytes(line + len, LOG_LINE_MAX - len - 1, msg, msg_len);
	line[len++] = '\n';
	return len;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char msg[LOG_MSG_MAX];
	char line[LOG_LINE_MAX];
	size_t len;
	int saved_errno = errno;
	va_list ap;
	int n;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = snprintf(msg, sizeof(msg), "(unformattable log message: %s)", fmt);
	len = format_line(line, level, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
	emit(level, line, len);
	/* Callers log an error and then still look at errno. */
	errno = saved_errno;
}

bool
log_gate_pass(struct log_gate *g, unsigned long *held_back)
{
	int64_t now = time_mono_ms();

	if (now < g->quiet_until) {
		g->held++;
		return false;
	}
	*held_back = g->held;
	g->held = 0;
	g->quiet_until = now + LOG_GATE_INTERVAL_MS;
	return true;
}

void
log_gate_warn_io(struct log_gate *g, const char *path, const char *what, int err)
{
	unsigned long n;

	if (!log_gate_pass(g, &n))
		return;
	if (n)
		log_warning("%s: %s: %s (and %lu more since the last warning)", path, what,
			    strerror(err), n);
	else
		log_warning("%s: %s: %s", path, what, strerror(err));
}
