/*
 * test_log.c - the service log (line format, levels, escaping, rotation,
 * truncation, stderr, write errors, concurrent writers) and the refcounted
 * line of line.h, which shares the daemon library and the TSan run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "line.h"
#include "log.h"
#include "timefmt.h"

struct logdir {
	char dir[64];
	char path[96];
};

static int
setup_logdir(void **state)
{
	struct logdir *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -1;
	strcpy(d->dir, "/tmp/chatd-test-log-XXXXXX");
	if (mkdtemp(d->dir) == NULL)
		return -1;
	snprintf(d->path, sizeof(d->path), "%s/chatd.log", d->dir);
	log_set_level(LVL_DEBUG);
	log_set_stderr(false, false);
	*state = d;
	return 0;
}

static int
teardown_logdir(void **state)
{
	struct logdir *d = *state;
	char cmd[128];

	log_close();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	free(d);
	return system(cmd) == 0 ? 0 : -1;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	*len = (size_t)ftell(f);
	rewind(f);
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, *len, f), *len);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* Checks "TIME LEVEL " at line and returns the message after it. */
static const char *
message_of(const char *line, const char *level)
{
	int64_t ms;
	size_t n = strlen(level);

	assert_true(time_parse_ms(line, TIME_RFC3339_LEN, &ms));
	assert_true(ms > time_now_ms() - 3600 * 1000);
	assert_int_equal(line[TIME_RFC3339_LEN], ' ');
	assert_memory_equal(line + TIME_RFC3339_LEN + 1, level, n);
	assert_int_equal(line[TIME_RFC3339_LEN + 1 + n], ' ');
	return line + TIME_RFC3339_LEN + 2 + n;
}

static size_t
count_lines(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += s[i] == '\n';
	return n;
}

static void
test_line_format_and_levels(void **state)
{
	struct logdir *d = *state;
	static const char *const names[] = { "error", "warning", "notice", "info", "debug" };
	size_t len;
	char *text, *p;
	struct stat st;
	mode_t old_umask = umask(0);

	assert_int_equal(log_open(d->path), 0);
	umask(old_umask);
	assert_string_equal(log_path(), d->path);
	log_error("e %d", 1);
	log_warning("w %s", "two");
	log_notice("n");
	log_info("i");
	log_debug("d");
	text = slurp(d->path, &len);
	assert_int_equal(count_lines(text, len), 5);
	p = text;
	for (int i = 0; i < 5; i++) {
		const char *msg = message_of(p, names[i]);
		char *nl = strchr(msg, '\n');

		assert_non_null(nl);
		assert_int_equal(msg[0], names[i][0]);
		p = nl + 1;
	}
	assert_non_null(strstr(text, " error e 1\n"));
	assert_non_null(strstr(text, " warning w two\n"));
	free(text);
	assert_int_equal(stat(d->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
}

static void
test_level_names(void **state)
{
	for (int level = LVL_ERROR; level <= LVL_DEBUG; level++)
		assert_int_equal(log_level_parse(log_level_name((enum log_level)level)), level);
	assert_int_equal(log_level_parse("info"), LVL_INFO);
	assert_int_equal(log_level_parse("warning"), LVL_WARNING);
	assert_int_equal(log_level_parse("warn"), -1);
	assert_int_equal(log_level_parse("INFO"), -1);
	assert_int_equal(log_level_parse(""), -1);
	assert_int_equal(log_level_parse("info "), -1);
	assert_string_equal(log_level_name(LVL_NOTICE), "notice");
}

static void
test_level_filter(void **state)
{
	struct logdir *d = *state;
	size_t len;
	char *text;

	assert_int_equal(log_open(d->path), 0);
	log_set_level(LVL_NOTICE);
	log_debug("hidden debug");
	log_info("hidden info");
	log_notice("shown notice");
	log_error("shown error");
	log_set_level(LVL_ERROR);
	log_warning("hidden warning");
	text = slurp(d->path, &len);
	assert_int_equal(count_lines(text, len), 2);
	assert_null(strstr(text, "hidden"));
	assert_non_null(strstr(text, " notice shown notice\n"));
	assert_non_null(strstr(text, " error shown error\n"));
	free(text);
}

static void
test_message_is_escaped(void **state)
{
	struct logdir *d = *state;
	size_t len;
	char *text;

	assert_int_equal(log_open(d->path), 0);
	log_info("login from %s", "bob\n2026-11-21T09:30:00.000Z error forged\x1b[2J\\");
	text = slurp(d->path, &len);
	assert_int_equal(count_lines(text, len), 1);
	assert_string_equal(
		message_of(text, "info"),
		"login from bob\\x0a2026-11-21T09:30:00.000Z error forged\\x1b[2J\\x5c\n");
	free(text);
}

/* The line is cut to the buffer, ends in LF, and never ends inside an escape. */
static void
test_long_message_is_cut_whole(void **state)
{
	struct logdir *d = *state;
	char big[3000];
	size_t len;
	char *text;

	assert_int_equal(log_open(d->path), 0);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	memset(big, 0xff, sizeof(big) - 1);
	log_info("x%s", big);
	text = slurp(d->path, &len);
	assert_int_equal(count_lines(text, len), 2);
	assert_true(len <= 2 * 1024);
	assert_true(strchr(text, '\n') - text > 800);
	assert_memory_equal(text + len - 5, "\\xff\n", 5);
	free(text);
}

static void
test_reopen_after_rename(void **state)
{
	struct logdir *d = *state;
	char rotated[128];
	size_t len;
	char *text;

	assert_int_equal(log_open(d->path), 0);
	log_notice("before rotation");
	snprintf(rotated, sizeof(rotated), "%s.1", d->path);
	assert_int_equal(rename(d->path, rotated), 0);
	log_notice("still to the old file");
	assert_int_equal(log_reopen(), 0);
	log_notice("after rotation");

	text = slurp(rotated, &len);
	assert_int_equal(count_lines(text, len), 2);
	assert_non_null(strstr(text, "before rotation\n"));
	assert_non_null(strstr(text, "still to the old file\n"));
	free(text);
	text = slurp(d->path, &len);
	assert_int_equal(count_lines(text, len), 1);
	assert_string_equal(message_of(text, "notice"), "after rotation\n");
	free(text);
}

static void
test_truncate(void **state)
{
	struct logdir *d = *state;
	size_t len;
	char *text;

	assert_int_equal(log_open(d->path), 0);
	for (int i = 0; i < 100; i++)
		log_info("filler line %d", i);
	assert_int_equal(log_truncate(), 0);
	log_info("first after truncate");
	text = slurp(d->path, &len);
	assert_int_equal(strlen(text), len); /* no NUL hole */
	assert_int_equal(count_lines(text, len), 1);
	assert_string_equal(message_of(text, "info"), "first after truncate\n");
	free(text);
}

static void
test_not_open(void **state)
{
	struct logdir *d = *state;
	char missing[128];

	assert_int_equal(log_reopen(), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(log_truncate(), -1);
	assert_int_equal(errno, EBADF);
	snprintf(missing, sizeof(missing), "%s/no/such/dir.log", d->dir);
	assert_int_equal(log_open(missing), -1);
	assert_int_equal(errno, ENOENT);
	assert_null(log_path());
}

/* Runs fn with stderr sent to a file; returns what was written there. */
static char *
capture_stderr(struct logdir *d, void (*fn)(void))
{
	char path[128];
	int saved = dup(STDERR_FILENO);
	int fd;
	size_t len;

	snprintf(path, sizeof(path), "%s/stderr", d->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	fn();
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	return slurp(path, &len);
}

static void
log_one_warning(void)
{
	log_warning("disk %s", "almost full");
}

static void
test_stderr(void **state)
{
	struct logdir *d = *state;
	size_t len;
	char *err, *text;

	/* not open: stderr only, full line */
	err = capture_stderr(d, log_one_warning);
	assert_string_equal(message_of(err, "warning"), "disk almost full\n");
	free(err);

	/* journal style: priority prefix, no timestamp */
	log_set_stderr(true, true);
	err = capture_stderr(d, log_one_warning);
	assert_string_equal(err, "<4>warning disk almost full\n");
	free(err);

	/* open and plain stderr: the same line in both places */
	assert_int_equal(log_open(d->path), 0);
	log_set_stderr(true, false);
	err = capture_stderr(d, log_one_warning);
	text = slurp(d->path, &len);
	assert_string_equal(message_of(err, "warning"), "disk almost full\n");
	assert_string_equal(err, text);
	free(text);
	free(err);

	/* open and stderr off: nothing on stderr */
	log_set_stderr(false, false);
	err = capture_stderr(d, log_one_warning);
	assert_string_equal(err, "");
	free(err);
}

static void
test_write_error_is_counted(void **state)
{
	unsigned long before = log_write_errors();

	assert_int_equal(log_open("/dev/full"), 0);
	errno = 1234;
	log_error("this cannot be written");
	log_error("nor this");
	assert_int_equal(errno, 1234);
	assert_int_equal(log_write_errors(), before + 2);
}

enum { WRITERS = 4, LINES_PER_WRITER = 5000, ROTATIONS = 20 };
#define PADDING "padding padding padding padding padding padding padding padding"

static atomic_int lines_written;

static void *
writer(void *arg)
{
	int id = (int)(intptr_t)arg;

	for (int i = 0; i < LINES_PER_WRITER; i++) {
		log_info("writer %d line %d " PADDING, id, i);
		atomic_fetch_add(&lines_written, 1);
	}
	return NULL;
}

/* Spreads the rotations over the writing, so they race with writers. */
static void
await_lines_written(int n)
{
	while (atomic_load(&lines_written) < n)
		sched_yield();
}

static void
tally_lines(const char *path, bool seen[WRITERS][LINES_PER_WRITER], size_t *total)
{
	size_t len;
	char *text = slurp(path, &len);
	char *p = text;

	assert_int_equal(strlen(text), len);
	while (p < text + len) {
		char *nl = strchr(p, '\n');
		char want[128];
		int id, n;

		assert_non_null(nl);
		*nl = '\0';
		assert_int_equal(sscanf(message_of(p, "info"), "writer %d line %d", &id, &n), 2);
		assert_true(id >= 0 && id < WRITERS && n >= 0 && n < LINES_PER_WRITER);
		snprintf(want, sizeof(want), "writer %d line %d " PADDING, id, n);
		assert_string_equal(message_of(p, "info"), want);
		assert_false(seen[id][n]);
		seen[id][n] = true;
		(*total)++;
		p = nl + 1;
	}
	free(text);
}

/* Whole lines only, none lost, while logrotate renames and SIGHUP reopens. */
static void
test_concurrent_writers_and_rotation(void **state)
{
	struct logdir *d = *state;
	static bool seen[WRITERS][LINES_PER_WRITER];
	pthread_t threads[WRITERS];
	char rotated[128];
	size_t total = 0;

	assert_int_equal(log_open(d->path), 0);
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, writer, (void *)(intptr_t)i), 0);
	for (int r = 0; r < ROTATIONS; r++) {
		await_lines_written((r + 1) * WRITERS * LINES_PER_WRITER / (ROTATIONS + 1));
		snprintf(rotated, sizeof(rotated), "%s.%d", d->path, r);
		assert_int_equal(rename(d->path, rotated), 0);
		assert_int_equal(log_reopen(), 0);
	}
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);

	memset(seen, 0, sizeof(seen));
	tally_lines(d->path, seen, &total);
	for (int r = 0; r < ROTATIONS; r++) {
		snprintf(rotated, sizeof(rotated), "%s.%d", d->path, r);
		tally_lines(rotated, seen, &total);
	}
	assert_int_equal(total, WRITERS * LINES_PER_WRITER);
}

static void
test_line_new_and_printf(void **state)
{
	struct line *l = line_new(5);
	char big[5000];

	assert_non_null(l);
	assert_int_equal(l->len, 5);
	assert_int_equal(l->data[5], '\0');
	assert_int_equal(atomic_load(&l->refs), 1);
	line_unref(l);

	l = line_printf("MSG %d %s\n", 42, "hello");
	assert_non_null(l);
	assert_int_equal(l->len, strlen("MSG 42 hello\n"));
	assert_string_equal(l->data, "MSG 42 hello\n");
	line_unref(l);

	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	l = line_printf("%s!", big);
	assert_non_null(l);
	assert_int_equal(l->len, sizeof(big));
	assert_int_equal(l->data[sizeof(big) - 1], '!');
	assert_int_equal(l->data[sizeof(big)], '\0');
	line_unref(l);

	l = line_printf("%s", "");
	assert_non_null(l);
	assert_int_equal(l->len, 0);
	assert_string_equal(l->data, "");
	line_unref(l);

	line_unref(NULL);
	assert_null(line_new((size_t)UINT_MAX + 1));
}

static void
test_line_refcount(void **state)
{
	struct line *l = line_printf("x");

	assert_ptr_equal(line_ref(l), l);
	line_ref(l);
	assert_int_equal(atomic_load(&l->refs), 3);
	line_unref(l);
	line_unref(l);
	assert_int_equal(atomic_load(&l->refs), 1);
	line_unref(l); /* freed here: ASan reports a leak or a double free otherwise */
}

struct sharer {
	struct line *l;
	size_t sum;
};

/* Each thread reads the bytes and drops its reference; the last one frees. */
static void *
share_and_drop(void *arg)
{
	struct sharer *s = arg;

	for (int i = 0; i < 1000; i++) {
		struct line *mine = line_ref(s->l);

		s->sum += mine->data[i % mine->len] == 's';
		line_unref(mine);
	}
	line_unref(s->l);
	return NULL;
}

static void
test_line_shared_between_threads(void **state)
{
	struct line *l = line_printf("shared bytes");
	struct sharer sharers[WRITERS];
	pthread_t threads[WRITERS];

	for (int i = 0; i < WRITERS; i++) {
		sharers[i] = (struct sharer){ .l = line_ref(l), .sum = 0 };
		assert_int_equal(pthread_create(&threads[i], NULL, share_and_drop, &sharers[i]), 0);
	}
	line_unref(l);
	for (int i = 0; i < WRITERS; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_true(sharers[i].sum > 0);
	}
}

/* Lines logged before log_open() (after log_hold()) land first in the file, not on stderr. */
static void
test_held_until_open(void **state)
{
	struct logdir *d = *state;
	size_t len;
	char *text;

	log_hold();
	log_notice("before the file");
	log_warning("still before");
	assert_int_equal(log_open(d->path), 0);
	log_notice("after");
	text = slurp(d->path, &len);
	assert_int_equal(count_lines(text, len), 3);
	assert_memory_equal(message_of(text, "notice"), "before the file\n", 16);
	assert_non_null(strstr(text, " notice before the file\n"));
	assert_true(strstr(text, "before the file") < strstr(text, "still before"));
	assert_true(strstr(text, "still before") < strstr(text, " notice after\n"));
	free(text);
}

/* A symbolic link at the log's path is never followed (safefile.h). */
static void
test_symlink_refused(void **state)
{
	struct logdir *d = *state;
	char victim[128];
	struct stat st;
	int fd;

	snprintf(victim, sizeof(victim), "%s/victim", d->dir);
	fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlink(victim, d->path), 0);
	assert_int_equal(log_open(d->path), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 07777, 0644);
}

#define LOG_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_logdir, teardown_logdir)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		LOG_TEST(test_line_format_and_levels),
		cmocka_unit_test(test_level_names),
		LOG_TEST(test_level_filter),
		LOG_TEST(test_message_is_escaped),
		LOG_TEST(test_long_message_is_cut_whole),
		LOG_TEST(test_reopen_after_rename),
		LOG_TEST(test_truncate),
		LOG_TEST(test_not_open),
		LOG_TEST(test_stderr),
		LOG_TEST(test_write_error_is_counted),
		LOG_TEST(test_concurrent_writers_and_rotation),
		LOG_TEST(test_held_until_open),
		LOG_TEST(test_symlink_refused),
		cmocka_unit_test(test_line_new_and_printf),
		cmocka_unit_test(test_line_refcount),
		cmocka_unit_test(test_line_shared_between_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
