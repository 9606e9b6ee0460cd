/*
 * test_history.c - the history file: format, loading and repair, the
 * group commit, failed writes and syncs, compaction, the memory ring,
 * guests' records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "history.h"
#include "log.h"
#include "names.h"
#include "timefmt.h"

#define HEADER "chatd-history 2\n"
#define HEADER_V1 "chatd-history 1\n"
#define TS "2026-11-21T09:30:00.123Z"

/* --- what the publish callback was given --- */

struct record {
	uint64_t id;
	uint64_t sender;
	bool failed;
	char *body; /* NULL when failed */
};

#define SENDERS 4

struct sink {
	pthread_mutex_t lock;
	pthread_cond_t grown;
	struct record *r;
	size_t n, cap;
	size_t by_sender[SENDERS + 1]; /* published per sender 1..SENDERS */
	unsigned calls;                /* publish callbacks so far */
	unsigned released; /* callback number k waits here (after recording) while k > this */
};

/* Runs on the commit thread: no cmocka assertions here, the tests check the records. */
static void
sink_publish(void *ctx, const struct history_entry *e, size_t n)
{
	struct sink *s = ctx;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		if (s->n == s->cap) {
			s->cap = s->cap ? 2 * s->cap : 256;
			s->r = realloc(s->r, s->cap * sizeof(*s->r));
			if (!s->r)
				abort();
		}
		s->r[s->n++] = (struct record){
			.id = e[i].id,
			.sender = e[i].sender,
			.failed = e[i].failed,
			.body = e[i].body ? strndup(e[i].body->data, e[i].body->len) : NULL,
		};
		if (e[i].sender <= SENDERS)
			s->by_sender[e[i].sender]++;
	}
	unsigned call = ++s->calls;
	pthread_cond_broadcast(&s->grown);
	while (call > s->released)
		pthread_cond_wait(&s->grown, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

/* From now on callbacks wait in the sink, or (false) none does. */
static void
sink_hold(struct sink *s, bool hold)
{
	pthread_mutex_lock(&s->lock);
	s->released = hold ? s->calls : UINT_MAX;
	pthread_cond_broadcast(&s->grown);
	pthread_mutex_unlock(&s->lock);
}

/* Lets the next held callback go on. */
static void
sink_release_one(struct sink *s)
{
	pthread_mutex_lock(&s->lock);
	s->released++;
	pthread_cond_broadcast(&s->grown);
	pthread_mutex_unlock(&s->lock);
}

static void
sink_wait(struct sink *s, size_t n)
{
	pthread_mutex_lock(&s->lock);
	while (s->n < n)
		pthread_cond_wait(&s->grown, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

static void
sink_wait_sender(struct sink *s, uint64_t sender, size_t n)
{
	pthread_mutex_lock(&s->lock);
	while (s->by_sender[sender] < n)
		pthread_cond_wait(&s->grown, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

static size_t
sink_count(struct sink *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Every test's records: a failed entry has no body and no id, a stored one both. */
static void
sink_clear(struct sink *s)
{
	for (size_t i = 0; i < s->n; i++) {
		assert_true(s->r[i].failed == (s->r[i].body == NULL));
		assert_true(s->r[i].failed == (s->r[i].id == 0));
		free(s->r[i].body);
	}
	s->n = 0;
}

/* --- the file operations, with failures on demand --- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int short_writes;     /* this many writes write half and say so */
	int enospc_writes;    /* this many writes fail with ENOSPC */
	bool fail_tmp_writes; /* writes to a "*.tmp" file fail with ENOSPC */
	int failing_syncs;    /* this many fdatasyncs of the history file fail with EIO */
	bool gate_closed;     /* fdatasync waits while closed */
	bool hold_tmp_sync;   /* the next sync of a "*.tmp" file closes the gate */
	unsigned syncs_entered, syncs_done, tmp_syncs_done, tmp_write_failures, tmp_syncs_held;
	unsigned writes; /* write() calls, failed ones too */
} io = { .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER };

static bool
is_tmp_file(int fd)
{
	char link[64], target[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 4)
		return false;
	target[n] = '\0';
	return strcmp(target + n - 4, ".tmp") == 0;
}

static ssize_t
hook_write(int fd, const void *buf, size_t len)
{
	bool fail_tmp = false, cut_short = false, enospc = false;

	pthread_mutex_lock(&io.lock);
	io.writes++;
	if (io.fail_tmp_writes && is_tmp_file(fd)) {
		fail_tmp = true;
		io.tmp_write_failures++;
	} else if (io.short_writes > 0) {
		io.short_writes--;
		cut_short = true;
	} else if (io.enospc_writes > 0) {
		io.enospc_writes--;
		enospc = true;
	}
	pthread_mutex_unlock(&io.lock);
	if (fail_tmp || enospc) {
		errno = ENOSPC;
		return -1;
	}
	return write(fd, buf, cut_short ? len / 2 : len);
}

static int
hook_fdatasync(int fd)
{
	bool tmp = is_tmp_file(fd), fail;

	pthread_mutex_lock(&io.lock);
	io.syncs_entered++;
	if (tmp && io.hold_tmp_sync) {
		io.hold_tmp_sync = false;
		io.gate_closed = true;
		io.tmp_syncs_held++;
	}
	pthread_cond_broadcast(&io.changed);
	while (io.gate_closed)
		pthread_cond_wait(&io.changed, &io.lock);
	fail = !tmp && io.failing_syncs > 0;
	if (fail)
		io.failing_syncs--;
	pthread_mutex_unlock(&io.lock);
	if (fail) {
		errno = EIO;
		return -1;
	}
	if (fdatasync(fd) < 0)
		return -1;
	pthread_mutex_lock(&io.lock);
	io.syncs_done++;
	io.tmp_syncs_done += tmp;
	pthread_cond_broadcast(&io.changed);
	pthread_mutex_unlock(&io.lock);
	return 0;
}

static const struct history_io hooks = { hook_write, hook_fdatasync };

static void
io_set_gate(bool closed)
{
	pthread_mutex_lock(&io.lock);
	io.gate_closed = closed;
	pthread_cond_broadcast(&io.changed);
	pthread_mutex_unlock(&io.lock);
}

static void
io_wait(const unsigned *counter, unsigned n)
{
	pthread_mutex_lock(&io.lock);
	while (*counter < n)
		pthread_cond_wait(&io.changed, &io.lock);
	pthread_mutex_unlock(&io.lock);
}

/* Reads one of the io counters (never assert while holding io.lock: a failure would leave it locked). */
static unsigned
io_read(const unsigned *counter)
{
	unsigned n;

	pthread_mutex_lock(&io.lock);
	n = *counter;
	pthread_mutex_unlock(&io.lock);
	return n;
}

static void
io_reset(void)
{
	pthread_mutex_lock(&io.lock);
	io.short_writes = io.enospc_writes = io.failing_syncs = 0;
	io.fail_tmp_writes = io.gate_closed = io.hold_tmp_sync = false;
	io.syncs_entered = io.syncs_done = io.tmp_syncs_done = 0;
	io.tmp_write_failures = io.tmp_syncs_held = io.writes = 0;
	pthread_cond_broadcast(&io.changed);
	pthread_mutex_unlock(&io.lock);
}

/* --- fixture --- */

struct fixture {
	char dir[64];
	char path[128];
	char log[128];
	struct sink sink;
	struct history_config cfg;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_history.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/history", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/log", f->dir);
	assert_int_equal(log_open(f->log), 0);
	pthread_mutex_init(&f->sink.lock, NULL);
	pthread_cond_init(&f->sink.grown, NULL);
	f->sink.released = UINT_MAX;
	f->cfg = (struct history_config){
		.path = f->path,
		.memory = 100,
		.max_size = INT64_C(1) << 40,
		.sync_ms = 0,
		.io = &hooks,
	};
	io_reset();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *de;

	log_close();
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	rmdir(f->dir);
	sink_clear(&f->sink);
	free(f->sink.r);
	pthread_cond_destroy(&f->sink.grown);
	pthread_mutex_destroy(&f->sink.lock);
	free(f);
	return 0;
}

static struct history *
open_history(struct fixture *f)
{
	char err[512] = "";
	struct history *h = history_open(&f->cfg, sink_publish, &f->sink, err, sizeof(err));

	if (!h)
		fail_msg("history_open: %s", err);
	return h;
}

static void
append(struct history *h, uint64_t sender, const char *name, const char *text)
{
	assert_int_equal(history_append(h, sender, "lobby", HK_MSG, name, text, strlen(text)), 0);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static void
spill(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static int64_t
file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* How often needle occurs in the service log. */
static int
log_count(const struct fixture *f, const char *needle)
{
	size_t len;
	char *text = slurp(f->log, &len);
	int n = 0;

	for (char *p = text; (p = strstr(p, needle)); p++)
		n++;
	free(text);
	return n;
}

/*
 * Checks the whole file strictly (header, then "ID TIME NAME TEXT\n" with
 * strictly increasing ids) and returns its ids in a malloc'ed array.
 */
static uint64_t *
file_ids(const char *path, size_t *count)
{
	size_t len, n = 0;
	char *data = slurp(path, &len);
	uint64_t *ids = malloc((len / 16 + 1) * sizeof(*ids));
	char *p = data + strlen(HEADER);

	assert_non_null(ids);
	assert_true(len >= strlen(HEADER));
	assert_memory_equal(data, HEADER, strlen(HEADER));
	while (p < data + len) {
		char *nl = strchr(p, '\n'), *end;
		uint64_t id = strtoull(p, &end, 10);
		int64_t ms;

		assert_non_null(nl);
		assert_true(end > p && *end == ' ');
		assert_true(n == 0 || id > ids[n - 1]);
		assert_true(time_parse_ms(end + 1, TIME_RFC3339_LEN, &ms));
		assert_int_equal(end[1 + TIME_RFC3339_LEN], ' ');
		assert_non_null(memchr(end + 2 + TIME_RFC3339_LEN, ' ',
				       (size_t)(nl - end - 2 - TIME_RFC3339_LEN)));
		ids[n++] = id;
		p = nl + 1;
	}
	free(data);
	*count = n;
	return ids;
}

/* The file holds ids first_min.. up to last without a gap; returns how many. */
static size_t
assert_file_tail(const char *path, uint64_t first_min, uint64_t last)
{
	size_t n;
	uint64_t *ids = file_ids(path, &n);

	assert_true(n >= 1);
	assert_true(ids[0] >= first_min);
	assert_int_equal(ids[n - 1], last);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], ids[0] + i);
	free(ids);
	return n;
}

static void
assert_file_ids_are(const char *path, uint64_t first, uint64_t last)
{
	assert_int_equal(assert_file_tail(path, first, last), last - first + 1);
}

static char *
message_line(uint64_t id, const char *name, const char *text)
{
	char *s;

	assert_true(asprintf(&s, "%" PRIu64 " " TS " lobby msg %s %s\n", id, name, text) > 0);
	return s;
}

/* --- tests --- */

static void
test_append_publishes_in_order(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	int64_t before = time_now_ms(), after;
	struct history_stats st;
	char *file, expect[256];
	size_t len, off = strlen(HEADER);

	for (int i = 0; i < 50; i++) {
		char text[64];

		snprintf(text, sizeof(text), "message %d: h\xc3\xa9llo, w\xc3\xb6rld", i);
		append(h, 1000 + (uint64_t)i, "alice", text);
	}
	sink_wait(&f->sink, 50);
	after = time_now_ms();
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 50);
	assert_int_equal(st.appended, 50);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.in_memory, 50);
	history_close(h);

	file = slurp(f->path, &len);
	assert_int_equal(st.file_size, (int64_t)len);
	assert_memory_equal(file, HEADER, strlen(HEADER));
	assert_int_equal(f->sink.n, 50);
	for (size_t i = 0; i < 50; i++) {
		const struct record *r = &f->sink.r[i];
		char ts[TIME_RFC3339_LEN + 1];
		int64_t ms;

		assert_int_equal(r->id, i + 1);
		assert_int_equal(r->sender, 1000 + i);
		assert_false(r->failed);
		assert_non_null(r->body);
		/* The timestamp is the server's, taken at append time. */
		memcpy(ts, strchr(r->body, ' ') + 1, TIME_RFC3339_LEN);
		ts[TIME_RFC3339_LEN] = '\0';
		assert_true(time_parse_ms(ts, TIME_RFC3339_LEN, &ms));
		assert_true(ms >= before && ms <= after);
		snprintf(expect, sizeof(expect),
			 "%zu %s lobby msg alice message %zu: h\xc3\xa9llo, w\xc3\xb6rld\n", i + 1,
			 ts, i);
		assert_string_equal(r->body, expect);
		/* The file holds the very same bytes. */
		assert_memory_equal(file + off, r->body, strlen(r->body));
		off += strlen(r->body);
	}
	assert_int_equal(off, len);
	free(file);
}

static void
test_reopen_continues_ids(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	struct history_stats st;

	for (int i = 0; i < 5; i++)
		append(h, 1, "bob", "hi");
	history_close(h);
	sink_clear(&f->sink);

	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 5);
	assert_int_equal(st.in_memory, 5);
	assert_int_equal(st.appended, 0);
	append(h, 2, "bob", "again");
	sink_wait(&f->sink, 1);
	assert_int_equal(f->sink.r[0].id, 6);
	history_close(h);
	assert_file_ids_are(f->path, 1, 6);
}

/* Ids are at most 19 digits when read: past the largest, messages are refused, not lost later. */
static void
test_no_ids_past_the_largest_read(void **state)
{
	static const char file[] = HEADER "9999999999999999999 " TS " lobby msg bob the last id\n";
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;

	spill(f->path, file, sizeof(file) - 1);
	h = open_history(f);
	append(h, 1, "bob", "one too many");
	sink_wait(&f->sink, 1);
	assert_true(f->sink.r[0].failed);
	history_close(h);
	assert_int_equal(file_size(f->path), (int64_t)sizeof(file) - 1);

	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, UINT64_C(9999999999999999999));
	history_close(h);
}

static void
test_recent_with_max_id(void **state)
{
	struct fixture *f = *state;
	struct history_entry e[16];
	struct history *h;
	size_t n;

	f->cfg.memory = 8;
	h = open_history(f);
	for (int i = 1; i <= 10; i++) {
		char text[16];

		snprintf(text, sizeof(text), "m%d", i);
		append(h, 1, "carol", text);
	}
	sink_wait(&f->sink, 10);

	n = history_recent(h, "lobby", 5, UINT64_MAX, false, e);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(e[i].id, 6 + i);
	assert_string_equal(e[4].body->data, f->sink.r[9].body);
	history_entries_release(e, n);

	n = history_recent(h, "lobby", 3, 7, false, e);
	assert_int_equal(n, 3);
	assert_int_equal(e[0].id, 5);
	assert_int_equal(e[2].id, 7);
	history_entries_release(e, n);

	/* Only ids 3..10 are held. */
	n = history_recent(h, "lobby", 16, 4, false, e);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].id, 3);
	assert_int_equal(e[1].id, 4);
	history_entries_release(e, n);
	assert_int_equal(history_recent(h, "lobby", 16, 2, false, e), 0);
	assert_int_equal(history_recent(h, "lobby", 0, UINT64_MAX, false, e), 0);

	/* The bodies outlive the history while referenced. */
	n = history_recent(h, "lobby", 16, UINT64_MAX, false, e);
	assert_int_equal(n, 8);
	history_close(h);
	assert_string_equal(e[7].body->data, f->sink.r[9].body);
	history_entries_release(e, n);
}

static void
test_since_with_first_held(void **state)
{
	struct fixture *f = *state;
	struct history_entry e[16];
	struct history *h;
	uint64_t first;
	size_t n;

	f->cfg.memory = 4;
	h = open_history(f);
	assert_int_equal(history_since(h, "lobby", 0, 16, false, e, &first), 0);
	assert_int_equal(first, 0);
	for (int i = 0; i < 10; i++)
		append(h, 1, "dave", "text");
	history_close(h);

	h = open_history(f);
	n = history_since(h, "lobby", 0, 16, false, e, &first);
	assert_int_equal(first, 7);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(e[i].id, 7 + i);
	history_entries_release(e, n);

	n = history_since(h, "lobby", 8, 16, false, e, &first);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].id, 9);
	assert_int_equal(e[1].id, 10);
	history_entries_release(e, n);

	n = history_since(h, "lobby", 7, 1, false, e, &first);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].id, 8);
	history_entries_release(e, n);

	assert_int_equal(history_since(h, "lobby", 10, 16, false, e, &first), 0);
	assert_int_equal(first, 7);
	history_close(h);
}

static void
test_damaged_lines_skipped(void **state)
{
	struct fixture *f = *state;
	struct history_entry e[16];
	struct history *h;
	struct history_stats st;
	char *l1 = message_line(1, "ann", "first"), *l2 = message_line(2, "bob", "second");
	char *l5 = message_line(5, "ann", "fifth"), *l6 = message_line(6, "bob", "sixth");
	char *data;
	size_t n;

	/* clang-format off */
	assert_true(asprintf(&data, HEADER "%s%s"
			     "hello world\n"				/* line 4: no id */
			     "2 " TS " lobby msg bob not increasing\n"		/* 5 */
			     "3 2026-13-21T09:30:00.123Z bob bad month\n"	/* 6 */
			     "3 " TS " lobby msg -bob bad name\n"			/* 7 */
			     "3 " TS " lobby msg bob bad \x01 control\n"		/* 8 */
			     "3 " TS " lobby msg bob bad \xc3 utf8\n"		/* 9 */
			     "\n"					/* 10: empty */
			     "3 " TS " lobby msg bob\n"				/* 11: no text */
			     "03 " TS " lobby msg bob leading zero\n"		/* 12 */
			     "4 " TS " lobby msg  two spaces\n"			/* 13 */
			     "%s%s", l1, l2, l5, l6) > 0);
	/* clang-format on */
	spill(f->path, data, strlen(data));

	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 6);
	assert_int_equal(st.in_memory, 4);
	/* Skipping is not repairing: the file is left as it is. */
	assert_int_equal(st.file_size, (int64_t)strlen(data));
	assert_int_equal(file_size(f->path), (int64_t)strlen(data));

	n = history_recent(h, "lobby", 16, UINT64_MAX, false, e);
	assert_int_equal(n, 4);
	assert_string_equal(e[0].body->data, l1);
	assert_string_equal(e[1].body->data, l2);
	assert_string_equal(e[2].body->data, l5);
	assert_string_equal(e[3].body->data, l6);
	history_entries_release(e, n);

	append(h, 1, "ann", "next");
	sink_wait(&f->sink, 1);
	assert_int_equal(f->sink.r[0].id, 7);
	history_close(h);

	assert_int_equal(log_count(f, "damaged history line skipped"), 10);
	for (int line = 4; line <= 13; line++) {
		char needle[160];

		snprintf(needle, sizeof(needle), "%s:%d: damaged", f->path, line);
		assert_int_equal(log_count(f, needle), 1);
	}
	free(data);
	free(l1);
	free(l2);
	free(l5);
	free(l6);
}

static void
test_damaged_warnings_capped(void **state)
{
	struct fixture *f = *state;
	struct history *h;
	struct history_stats st;
	size_t cap = 1 << 16, len;
	char *data = malloc(cap);

	assert_non_null(data);
	len = (size_t)snprintf(data, cap, HEADER "1 " TS " lobby msg ann ok\n");
	for (int i = 0; i < 500; i++)
		len += (size_t)snprintf(data + len, cap - len, "garbage %d\n", i);
	len += (size_t)snprintf(data + len, cap - len, "2 " TS " lobby msg ann still ok\n");
	spill(f->path, data, len);

	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 2);
	assert_int_equal(st.in_memory, 2);
	history_close(h);
	assert_int_equal(log_count(f, "damaged history line skipped"), 10);
	assert_int_equal(log_count(f, "500 damaged history lines skipped in all"), 1);
	free(data);
}

static void
test_torn_last_line_cut_off(void **state)
{
	struct fixture *f = *state;
	struct history *h;
	struct history_stats st;
	char *l1 = message_line(1, "ann", "one"), *l2 = message_line(2, "ann", "two");
	char *data, *file;
	size_t good, len;

	assert_true(asprintf(&data, HEADER "%s%s3 " TS " lobby msg ann thr", l1, l2) > 0);
	good = strlen(HEADER) + strlen(l1) + strlen(l2);
	spill(f->path, data, strlen(data));

	h = open_history(f);
	assert_int_equal(file_size(f->path), (int64_t)good);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 2);
	assert_int_equal(st.file_size, (int64_t)good);
	assert_int_equal(log_count(f, "torn last line cut off"), 1);

	append(h, 5, "bob", "clean");
	sink_wait(&f->sink, 1);
	assert_int_equal(f->sink.r[0].id, 3);
	history_close(h);

	file = slurp(f->path, &len);
	assert_int_equal(len, good + strlen(f->sink.r[0].body));
	assert_memory_equal(file, data, good);
	assert_string_equal(file + good, f->sink.r[0].body);
	free(file);

	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 3);
	assert_int_equal(st.in_memory, 3);
	history_close(h);
	assert_int_equal(log_count(f, "torn"), 1);
	assert_int_equal(log_count(f, "damaged"), 0);
	free(data);
	free(l1);
	free(l2);
}

static void
assert_refused(struct fixture *f, const char *content, const char *reason)
{
	char err[512] = "", expect[512];
	struct history *h;

	spill(f->path, content, strlen(content));
	h = history_open(&f->cfg, sink_publish, &f->sink, err, sizeof(err));
	assert_null(h);
	snprintf(expect, sizeof(expect), "%s: %s", f->path, reason);
	assert_string_equal(err, expect);
	assert_int_equal(file_size(f->path), (int64_t)strlen(content));
}

static void
test_unknown_version_refused(void **state)
{
	struct fixture *f = *state;
	const char *unknown = "unknown format (expected 'chatd-history 2')";
	char err[512] = "";

	assert_refused(f, "chatd-history 3\n1 " TS " lobby msg ann hi\n", unknown);
	assert_refused(f, "chatd-history 1 \n", unknown);
	assert_refused(f, "chatd", unknown);
	/* clang-format off */
	assert_refused(f, "\x7f" "ELF binary junk\n\x01\x02", unknown);
	/* clang-format on */

	/* Not a file at all. */
	f->cfg.path = f->dir;
	assert_null(history_open(&f->cfg, sink_publish, &f->sink, err, sizeof(err)));
	assert_non_null(strstr(err, f->dir));

	f->cfg.path = f->path;
	f->cfg.memory = 0;
	assert_null(history_open(&f->cfg, sink_publish, &f->sink, err, sizeof(err)));
	assert_string_equal(err, "history memory must be at least 1");
}

static void
test_created_and_empty_files_get_header(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	struct stat st;
	size_t len;
	char *file;

	history_close(h);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	file = slurp(f->path, &len);
	assert_string_equal(file, HEADER);
	free(file);

	/* A file whose creation was cut short before the header, with a loose mode. */
	spill(f->path, "", 0);
	assert_int_equal(chmod(f->path, 0644), 0);
	h = open_history(f);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	append(h, 1, "ann", "first");
	history_close(h);
	assert_file_ids_are(f->path, 1, 1);
}

static void
test_failed_write_cut_back(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	struct history_stats st;
	int64_t size;

	append(h, 1, "ann", "one");
	append(h, 2, "ann", "two");
	sink_wait(&f->sink, 2);
	size = file_size(f->path);

	pthread_mutex_lock(&io.lock);
	io.short_writes = 1;
	pthread_mutex_unlock(&io.lock);
	append(h, 77, "ann", "this one is torn by a short write");
	sink_wait(&f->sink, 3);
	assert_true(f->sink.r[2].failed);
	assert_int_equal(f->sink.r[2].sender, 77);
	assert_int_equal(f->sink.r[2].id, 0);
	assert_null(f->sink.r[2].body);
	assert_int_equal(file_size(f->path), size);

	pthread_mutex_lock(&io.lock);
	io.enospc_writes = 1;
	pthread_mutex_unlock(&io.lock);
	append(h, 78, "ann", "this one finds the disk full");
	sink_wait(&f->sink, 4);
	append(h, 79, "ann", "three");
	sink_wait(&f->sink, 5);
	assert_true(f->sink.r[3].failed);
	assert_int_equal(f->sink.r[3].sender, 78);
	assert_false(f->sink.r[4].failed);
	assert_int_equal(f->sink.r[4].id, 3);
	assert_int_equal(f->sink.r[4].sender, 79);

	history_get_stats(h, &st);
	assert_int_equal(st.appended, 3);
	assert_int_equal(st.failed, 2);
	assert_int_equal(st.last_id, 3);
	history_close(h);

	assert_file_ids_are(f->path, 1, 3);
	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 3);
	history_close(h);
	assert_int_equal(log_count(f, "damaged"), 0);
	assert_int_equal(log_count(f, "torn"), 0);
	/* Two failures in a row: the second warning is held back. */
	assert_int_equal(log_count(f, "write failed"), 1);
}

/* Appends n messages from sender while the sync of one more is held: one batch after it. */
static void
queue_behind_a_sync(struct history *h, uint64_t sender, int n)
{
	unsigned entered = io_read(&io.syncs_entered);

	io_set_gate(true);
	append(h, 1, "ann", "being synced");
	io_wait(&io.syncs_entered, entered + 1);
	for (int i = 0; i < n; i++)
		append(h, sender, "ann", "queued meanwhile");
}

/* Durable mode: what queues during a sync is written with one write(), and refused together. */
static void
test_batch_written_together(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	unsigned writes;

	queue_behind_a_sync(h, 2, 20);
	writes = io_read(&io.writes);
	io_set_gate(false);
	sink_wait(&f->sink, 21);
	assert_int_equal(io_read(&io.writes), writes + 1);
	for (size_t i = 0; i < 21; i++)
		assert_false(f->sink.r[i].failed);

	/* The disk is full when the batch is written: all of it is refused, its ids given again. */
	queue_behind_a_sync(h, 3, 20);
	pthread_mutex_lock(&io.lock);
	io.enospc_writes = 1;
	pthread_mutex_unlock(&io.lock);
	io_set_gate(false);
	sink_wait(&f->sink, 42);
	assert_false(f->sink.r[21].failed);
	for (size_t i = 22; i < 42; i++) {
		assert_true(f->sink.r[i].failed);
		assert_int_equal(f->sink.r[i].sender, 3);
	}
	append(h, 4, "ann", "after");
	sink_wait(&f->sink, 43);
	assert_int_equal(f->sink.r[42].id, 23);
	history_close(h);
	assert_file_ids_are(f->path, 1, 23);
	assert_int_equal(log_count(f, "write failed"), 1);
}

static void
test_failed_sync_refuses_all_pending(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	struct history_stats st;
	unsigned entered;
	int64_t durable;

	for (int i = 0; i < 3; i++)
		append(h, 1, "ann", "durable");
	sink_wait(&f->sink, 3);
	durable = file_size(f->path);

	/* A is being synced while B and C are appended; then the sync fails. */
	entered = io_read(&io.syncs_entered);
	io_set_gate(true);
	append(h, 10, "ann", "A");
	io_wait(&io.syncs_entered, entered + 1);
	append(h, 11, "ann", "B");
	append(h, 12, "ann", "C");
	assert_int_equal(sink_count(&f->sink), 3);
	assert_true(file_size(f->path) > durable);
	pthread_mutex_lock(&io.lock);
	io.failing_syncs = 1;
	pthread_mutex_unlock(&io.lock);
	io_set_gate(false);

	sink_wait(&f->sink, 6);
	for (size_t i = 3; i < 6; i++) {
		assert_true(f->sink.r[i].failed);
		assert_int_equal(f->sink.r[i].sender, 10 + i - 3);
		assert_int_equal(f->sink.r[i].id, 0);
	}
	assert_int_equal(file_size(f->path), durable);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 3);
	assert_int_equal(st.failed, 3);
	assert_int_equal(st.file_size, durable);

	append(h, 13, "ann", "D");
	sink_wait(&f->sink, 7);
	assert_false(f->sink.r[6].failed);
	assert_int_equal(f->sink.r[6].id, 4);
	history_close(h);

	assert_file_ids_are(f->path, 1, 4);
	assert_int_equal(log_count(f, "fdatasync failed"), 1);
	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 4);
	history_close(h);
}

#define PER_SENDER 100

struct sender_arg {
	struct history *h;
	struct sink *acks; /* wait for each message to be published, as a client waits for OK */
	uint64_t id;
	int count;
};

static void *
sender_main(void *p)
{
	struct sender_arg *a = p;

	for (int i = 0; i < a->count; i++) {
		char text[128];

		snprintf(text, sizeof(text), "%d%s", i,
			 a->acks ? " padding the line so that the file grows faster" : "");
		if (history_append(a->h, a->id, "lobby", HK_MSG, "sender", text, strlen(text)) != 0)
			return p;
		if (a->acks)
			sink_wait_sender(a->acks, a->id, (size_t)i + 1);
	}
	return NULL;
}

static void
run_senders(struct history *h, int count, struct sink *acks, void (*meanwhile)(void))
{
	pthread_t t[SENDERS];
	struct sender_arg a[SENDERS];

	for (int i = 0; i < SENDERS; i++) {
		a[i] = (struct sender_arg){ h, acks, (uint64_t)i + 1, count };
		assert_int_equal(pthread_create(&t[i], NULL, sender_main, &a[i]), 0);
	}
	if (meanwhile)
		meanwhile();
	for (int i = 0; i < SENDERS; i++) {
		void *rc;

		assert_int_equal(pthread_join(t[i], &rc), 0);
		assert_null(rc);
	}
}

/* Every sender's messages were published in the order it sent them. */
static void
assert_senders_in_order(const struct sink *s, int count)
{
	int next[SENDERS + 1] = { 0 };

	for (size_t i = 0; i < s->n; i++) {
		const struct record *r = &s->r[i];
		const char *text = strstr(r->body, " sender ") + strlen(" sender ");

		assert_false(r->failed);
		assert_int_equal(r->id, i + 1);
		assert_true(r->sender >= 1 && r->sender <= SENDERS);
		assert_int_equal(atoi(text), next[r->sender]++);
	}
	for (int i = 1; i <= SENDERS; i++)
		assert_int_equal(next[i], count);
}

static void
wait_first_sync(void)
{
	io_wait(&io.syncs_entered, 1);
}

/* Holds the next sync of the history file for `ms`, a disk taking its time. */
static void
slow_sync(struct history *h, struct fixture *f, size_t published, int ms)
{
	unsigned entered = io_read(&io.syncs_entered);
	struct timespec slow_disk = { ms / 1000, (long)(ms % 1000) * 1000000L };

	io_set_gate(true);
	append(h, 1, "ann", "slow");
	io_wait(&io.syncs_entered, entered + 1);
	nanosleep(&slow_disk, NULL);
	io_set_gate(false);
	sink_wait(&f->sink, published);
}

/* A sync that kept the room waiting is logged, once per warning interval. */
static void
test_slow_sync_warned(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);

	slow_sync(h, f, 1, 150);
	assert_int_equal(log_count(f, "a disk sync took"), 1);
	slow_sync(h, f, 2, 150);
	history_close(h);
	assert_int_equal(log_count(f, "a disk sync took"), 1);
}

/*
 * The backlog (history_backlog) counts what was appended and not yet
 * published, in messages and body bytes, and is what the room holds a
 * burst to: a batch leaves it before the publish callback sees it (a
 * sender held back by it is woken by that very publication), and refused
 * messages leave it too.
 */
static void
test_backlog_until_published(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	/* "ID TIME lobby msg NAME TEXT\n": 2 + 24 + 1 + 10 + 4 + text + 1 bytes. */
	const size_t a = 43, bb = 44, ccc = 45;
	unsigned entered = io_read(&io.syncs_entered);
	size_t msgs, bytes;

	history_backlog(h, &msgs, &bytes);
	assert_int_equal(msgs, 0);
	assert_int_equal(bytes, 0);
	io_set_gate(true);
	append(h, 1, "ann", "A");
	io_wait(&io.syncs_entered, entered + 1); /* A is being synced */
	append(h, 2, "bob", "BB");
	append(h, 3, "bob", "CCC");
	history_backlog(h, &msgs, &bytes);
	assert_int_equal(msgs, 3);
	assert_int_equal(bytes, a + bb + ccc);

	/* In the callback for A: A is out, B and C wait for their sync. */
	sink_hold(&f->sink, true);
	io_set_gate(false);
	sink_wait(&f->sink, 1);
	history_backlog(h, &msgs, &bytes);
	assert_int_equal(msgs, 2);
	assert_int_equal(bytes, bb + ccc);
	sink_release_one(&f->sink);
	sink_wait(&f->sink, 3);
	history_backlog(h, &msgs, &bytes);
	assert_int_equal(msgs, 0);
	assert_int_equal(bytes, 0);
	sink_hold(&f->sink, false);

	/* A failed sync refuses D and E: out of the backlog once published. */
	entered = io_read(&io.syncs_entered);
	io_set_gate(true);
	append(h, 4, "ann", "D");
	io_wait(&io.syncs_entered, entered + 1);
	append(h, 4, "ann", "E");
	pthread_mutex_lock(&io.lock);
	io.failing_syncs = 1;
	pthread_mutex_unlock(&io.lock);
	io_set_gate(false);
	sink_wait(&f->sink, 5);
	assert_true(f->sink.r[3].failed && f->sink.r[4].failed);
	history_backlog(h, &msgs, &bytes);
	assert_int_equal(msgs, 0);
	assert_int_equal(bytes, 0);
	history_close(h);
}

static void
test_group_commit(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	const unsigned messages = SENDERS * PER_SENDER;
	unsigned syncs;

	/*
	 * Every sender finishes all its appends while the first sync is
	 * still blocked: appends never wait for a sync.
	 */
	io_reset();
	io_set_gate(true);
	run_senders(h, PER_SENDER, NULL, wait_first_sync);
	assert_true(sink_count(&f->sink) < messages);
	io_set_gate(false);
	sink_wait(&f->sink, messages);
	history_close(h);

	syncs = io_read(&io.syncs_done);
	print_message("%u messages, %u syncs\n", messages, syncs);
	assert_true(syncs >= 1);
	assert_true(syncs < messages / 4);
	assert_int_equal(f->sink.n, messages);
	assert_senders_in_order(&f->sink, PER_SENDER);
	assert_file_ids_are(f->path, 1, messages);
}

static void
test_relaxed_publishes_before_sync(void **state)
{
	struct fixture *f = *state;
	struct history_entry e[4];
	struct history *h;
	size_t n;

	f->cfg.sync_ms = 10;
	h = open_history(f);
	io_reset();
	io_set_gate(true);
	append(h, 7, "ann", "fast");
	/* Published from history_append() itself, before any sync. */
	assert_int_equal(sink_count(&f->sink), 1);
	assert_int_equal(f->sink.r[0].id, 1);
	assert_int_equal(f->sink.r[0].sender, 7);
	n = history_recent(h, "lobby", 4, UINT64_MAX, false, e);
	assert_int_equal(n, 1);
	history_entries_release(e, n);

	/* The periodic sync runs, and appends go on while it is blocked. */
	io_wait(&io.syncs_entered, 1);
	append(h, 8, "ann", "during the sync");
	assert_int_equal(sink_count(&f->sink), 2);
	assert_int_equal(io_read(&io.syncs_done), 0);
	io_set_gate(false);
	history_close(h);
	assert_file_ids_are(f->path, 1, 2);
}

struct appender {
	struct history *h;
	uint64_t sender;
	const char *text;
	int rc;
};

static void *
append_thread(void *arg)
{
	struct appender *a = arg;

	a->rc = history_append(a->h, a->sender, "lobby", HK_MSG, "ann", a->text, strlen(a->text));
	return NULL;
}

/*
 * The publish callback runs without the history lock: while it is busy
 * (the room writing to every member), senders go on appending, and a
 * message being published is already in the memory ring, where a member
 * who joins meanwhile replays it from.
 */
static void
test_appends_go_on_while_publishing(void **state)
{
	struct fixture *f = *state;
	struct history_entry e[4];
	struct history *h;
	size_t n;

	h = open_history(f);
	sink_hold(&f->sink, true);
	append(h, 1, "ann", "first");
	sink_wait(&f->sink, 1);           /* the commit thread is in the callback */
	append(h, 2, "bob", "meanwhile"); /* returns: the lock is free */
	n = history_recent(h, "lobby", 4, UINT64_MAX, false, e);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].id, 1);
	history_entries_release(e, n);
	sink_hold(&f->sink, false);
	sink_wait(&f->sink, 2);
	assert_int_equal(f->sink.r[1].id, 2);
	history_close(h);
}

/*
 * In relaxed mode the sender publishes; senders who come while it does
 * only queue, and their messages go out next, in one batch, in order,
 * published by the commit thread: the first sender is back at once.
 */
static void
test_relaxed_publishes_in_batches(void **state)
{
	struct fixture *f = *state;
	struct appender first;
	pthread_t t;
	struct history *h;

	f->cfg.sync_ms = 60000;
	h = open_history(f);
	first = (struct appender){ .h = h, .sender = 1, .text = "first", .rc = -1 };
	sink_hold(&f->sink, true);
	assert_int_equal(pthread_create(&t, NULL, append_thread, &first), 0);
	sink_wait(&f->sink, 1);        /* the first sender is publishing */
	append(h, 2, "bob", "second"); /* queued for it, not published here */
	append(h, 3, "cy", "third");
	assert_int_equal(sink_count(&f->sink), 1);
	sink_release_one(&f->sink); /* the first batch only */
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(first.rc, 0);
	sink_hold(&f->sink, false);
	sink_wait(&f->sink, 3);
	assert_int_equal(f->sink.calls, 2);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(f->sink.r[i].id, i + 1);
		assert_int_equal(f->sink.r[i].sender, i + 1);
	}
	history_close(h);
	assert_file_ids_are(f->path, 1, 3);
}

/*
 * The commit thread finishes its work (compaction included) before it
 * takes the next batch: once a message appended after everything else was
 * published, and then one more, all that work is done.
 */
static void
barrier(struct fixture *f, struct history *h, size_t *sent)
{
	for (int i = 0; i < 2; i++) {
		append(h, 99, "barrier", "b");
		sink_wait(&f->sink, ++*sent);
	}
}

/*
 * Appends until the file reaches `until` bytes or is compacted, each
 * message published before the next (in durable mode the file grows only
 * as they are committed), so none is left queued behind the compaction
 * this may start.
 */
static void
fill(struct fixture *f, struct history *h, size_t *sent, int64_t until)
{
	struct history_stats st;
	uint64_t compactions;

	history_get_stats(h, &st);
	compactions = st.compactions;
	do {
		append(h, 1, "ann", "filling up the history file, line after line");
		sink_wait(&f->sink, ++*sent);
		history_get_stats(h, &st);
	} while (st.file_size < until && st.compactions == compactions);
}

static void
test_compaction_under_load(void **state)
{
	struct fixture *f = *state;
	const unsigned messages = SENDERS * 500;
	struct history_entry e[50];
	struct history_stats st;
	struct history *h;
	uint64_t *ids;
	size_t n, len, off;
	char *file, tmp[160];

	f->cfg.max_size = 16384;
	f->cfg.memory = 50;
	h = open_history(f);
	run_senders(h, 500, &f->sink, NULL);
	sink_wait(&f->sink, messages);
	history_get_stats(h, &st);
	print_message("%" PRIu64 " compactions\n", st.compactions);
	assert_true(st.compactions > 0);
	assert_int_equal(st.last_id, messages);

	n = history_recent(h, "lobby", 50, UINT64_MAX, false, e);
	assert_int_equal(n, 50);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(e[i].body->data, f->sink.r[messages - 50 + i].body);
	history_entries_release(e, n);
	history_close(h);
	assert_senders_in_order(&f->sink, 500);

	/* The file is a clean run of the newest messages, byte for byte as published. */
	ids = file_ids(f->path, &n);
	assert_true(n >= 50 && n < messages);
	assert_int_equal(ids[n - 1], messages);
	file = slurp(f->path, &len);
	assert_true(len <= 2 * (size_t)f->cfg.max_size);
	assert_int_equal(assert_file_tail(f->path, 2, messages), n);
	off = strlen(HEADER);
	for (size_t i = 0; i < n; i++) {
		const char *body = f->sink.r[ids[0] - 1 + i].body;

		assert_int_equal(ids[i], ids[0] + i);
		assert_memory_equal(file + off, body, strlen(body));
		off += strlen(body);
	}
	assert_int_equal(off, len);
	free(file);
	free(ids);
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	assert_int_equal(access(tmp, F_OK), -1);

	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, messages);
	history_close(h);
}

/*
 * Fills the file past max_size and holds the compaction this starts at the
 * sync of its temp file (by then the settled part is copied, unlocked);
 * appends three messages meanwhile, then lets it finish, failing their
 * sync if asked.
 */
static void
compact_with_appends_meanwhile(struct fixture *f, struct history *h, size_t *sent, bool fail_sync)
{
	unsigned held = io_read(&io.tmp_syncs_held);

	pthread_mutex_lock(&io.lock);
	io.hold_tmp_sync = true;
	pthread_mutex_unlock(&io.lock);
	fill(f, h, sent, f->cfg.max_size + 1);
	io_wait(&io.tmp_syncs_held, held + 1);
	sink_wait(&f->sink, *sent);

	for (uint64_t i = 1; i <= 3; i++)
		append(h, i, "ann", "appended during compaction");
	*sent += 3;
	pthread_mutex_lock(&io.lock);
	io.failing_syncs = fail_sync;
	pthread_mutex_unlock(&io.lock);
	io_set_gate(false);
	sink_wait(&f->sink, *sent);
}

static void
test_compaction_keeps_appends_made_meanwhile(void **state)
{
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;
	char *file;
	size_t sent = 0, len, n;

	f->cfg.max_size = 8192;
	f->cfg.memory = 10; /* far less than the file: compaction has older records to drop */
	h = open_history(f);
	fill(f, h, &sent, f->cfg.max_size - 200);
	sink_wait(&f->sink, sent);

	compact_with_appends_meanwhile(f, h, &sent, false);
	history_get_stats(h, &st);
	assert_int_equal(st.compactions, 1);
	assert_int_equal(st.last_id, sent);
	n = assert_file_tail(f->path, 2, sent);
	assert_true(n >= 3 && n < sent);
	file = slurp(f->path, &len);
	assert_int_equal(len, (size_t)st.file_size);
	for (size_t i = sent - 3; i < sent; i++)
		assert_non_null(strstr(file, f->sink.r[i].body));
	free(file);

	/* A failed sync right after a compaction cuts back to the right offset. */
	compact_with_appends_meanwhile(f, h, &sent, true);
	history_get_stats(h, &st);
	assert_int_equal(st.compactions, 2);
	assert_int_equal(st.failed, 3);
	assert_int_equal(st.last_id, sent - 3);
	for (size_t i = sent - 3; i < sent; i++)
		assert_true(f->sink.r[i].failed);
	assert_int_equal(file_size(f->path), st.file_size);
	assert_file_tail(f->path, 2, sent - 3);

	append(h, 4, "ann", "after the failed sync");
	sink_wait(&f->sink, ++sent);
	assert_int_equal(f->sink.r[sent - 1].id, st.last_id + 1);
	history_close(h);
	assert_file_tail(f->path, 2, st.last_id + 1);

	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, sent - 3);
	history_close(h);
}

static void
test_relaxed_compaction(void **state)
{
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;
	size_t sent = 0;

	f->cfg.sync_ms = 5;
	f->cfg.max_size = 8192;
	f->cfg.memory = 10;
	h = open_history(f);
	fill(f, h, &sent, f->cfg.max_size + 1);
	assert_int_equal(sink_count(&f->sink), sent);
	/* The temp file is synced twice; the switch completes before the lock is free again. */
	io_wait(&io.tmp_syncs_done, 2);
	history_get_stats(h, &st);
	assert_int_equal(st.compactions, 1);
	assert_true(st.file_size < f->cfg.max_size);
	append(h, 1, "ann", "after the compaction");
	history_close(h);

	assert_file_tail(f->path, 2, sent + 1);
	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, sent + 1);
	history_close(h);
}

static void
test_compaction_disk_full(void **state)
{
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;
	char tmp[160];
	int64_t failed_at;
	size_t sent = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	f->cfg.max_size = 8192;
	f->cfg.memory = 10;
	h = open_history(f);
	pthread_mutex_lock(&io.lock);
	io.fail_tmp_writes = true;
	pthread_mutex_unlock(&io.lock);
	fill(f, h, &sent, f->cfg.max_size + 1);
	barrier(f, h, &sent);

	assert_int_equal(io_read(&io.tmp_write_failures), 1);
	pthread_mutex_lock(&io.lock);
	io.fail_tmp_writes = false;
	pthread_mutex_unlock(&io.lock);
	history_get_stats(h, &st);
	assert_int_equal(st.compactions, 0);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(log_count(f, "compaction failed"), 1);
	failed_at = st.file_size;

	/* The disk has room again, but no retry before another max_size / 4. */
	barrier(f, h, &sent);
	history_get_stats(h, &st);
	assert_int_equal(st.compactions, 0);
	fill(f, h, &sent, failed_at + f->cfg.max_size / 4);
	barrier(f, h, &sent);
	history_get_stats(h, &st);
	assert_int_equal(st.compactions, 1);
	assert_true(st.file_size < f->cfg.max_size);
	assert_int_equal(st.file_size, file_size(f->path));
	history_close(h);

	assert_int_equal(access(tmp, F_OK), -1);
	assert_file_tail(f->path, 2, st.last_id);
}

static void
test_load_million(void **state)
{
	struct fixture *f = *state;
	const uint64_t count = 1000000;
	struct history_entry e[1000];
	struct history_stats st;
	struct history *h;
	size_t cap = count * 48, len;
	char *data = malloc(cap), *p;
	int64_t start;
	size_t n;

	assert_non_null(data);
	p = mempcpy(data, HEADER, strlen(HEADER));
	for (uint64_t id = 1; id <= count; id++) {
		char digits[24];
		int d = 0;

		/* sprintf per line would make generating the file slower than loading it. */
		for (uint64_t v = id; v; v /= 10)
			digits[d++] = (char)('0' + v % 10);
		while (d)
			*p++ = digits[--d];
		memcpy(p, " " TS " lobby msg u x\n", sizeof(" " TS " lobby msg u x\n") - 1);
		p += sizeof(" " TS " lobby msg u x\n") - 1;
	}
	len = (size_t)(p - data);
	spill(f->path, data, len);
	free(data);

	f->cfg.memory = 1000;
	start = time_mono_ms();
	h = open_history(f);
	print_message("loaded %" PRIu64 " messages (%zu bytes) in %" PRId64 " ms\n", count, len,
		      time_mono_ms() - start);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, count);
	assert_int_equal(st.in_memory, 1000);
	assert_int_equal(st.file_size, (int64_t)len);
	n = history_recent(h, "lobby", 1000, UINT64_MAX, false, e);
	assert_int_equal(n, 1000);
	assert_int_equal(e[0].id, count - 999);
	assert_string_equal(e[999].body->data, "1000000 " TS " lobby msg u x\n");
	history_entries_release(e, n);
	append(h, 1, "u", "y");
	sink_wait(&f->sink, 1);
	assert_int_equal(f->sink.r[0].id, count + 1);
	history_close(h);
	assert_int_equal(log_count(f, "damaged"), 0);
}

/* --- rooms --- */

static void
append_in(struct history *h, const char *room, enum history_kind kind, const char *name,
	  const char *text)
{
	assert_int_equal(history_append(h, 1, room, kind, name, text, strlen(text)), 0);
}

/* The texts of room's records in memory (events too if asked), joined by '|'. */
static char *
room_texts(struct history *h, const char *room, bool events)
{
	struct history_entry e[64];
	size_t n = history_recent(h, room, 64, UINT64_MAX, events, e), len = 0;
	char *out = calloc(1, 64 * 256);

	assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(name_cmp(e[i].room, room), 0);
		len += (size_t)snprintf(out + len, 64 * 256 - len, "%s%.*s", i ? "|" : "",
					(int)e[i].text_len, e[i].body->data + e[i].text_off);
	}
	history_entries_release(e, n);
	return out;
}

static void
assert_room_texts(struct history *h, const char *room, bool events, const char *want)
{
	char *got = room_texts(h, room, events);

	assert_string_equal(got, want);
	free(got);
}

static void
test_rooms_kept_apart(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	struct history_stats st;
	struct history_entry e[4];
	uint64_t first;
	size_t n;

	append_in(h, "lobby", HK_MSG, "ann", "l1");
	append_in(h, "Rust", HK_MSG, "bob", "r1");
	append_in(h, "go", HK_MSG, "ann", "g1");
	append_in(h, "rust", HK_MSG, "ann", "r2"); /* the same room: names ignore case */
	append_in(h, "lobby", HK_MSG, "bob", "l2");
	sink_wait(&f->sink, 5);
	assert_room_texts(h, "lobby", false, "l1|l2");
	assert_room_texts(h, "RUST", false, "r1|r2");
	assert_room_texts(h, "go", false, "g1");
	assert_room_texts(h, "nowhere", false, "");
	assert_room_texts(h, "a-name-far-too-long-for-any-room-at-all", false, "");

	/* An entry carries its room as stored, and its fields. */
	n = history_recent(h, "rust", 4, UINT64_MAX, false, e);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].room, "Rust");
	assert_string_equal(e[1].room, "rust");
	assert_int_equal(e[0].id, 2);
	assert_int_equal(e[1].id, 4);
	assert_int_equal(e[0].kind, HK_MSG);
	assert_memory_equal(e[0].body->data + e[0].name_off, "bob", e[0].name_len);
	assert_memory_equal(e[0].body->data + e[0].room_off, "Rust", e[0].room_len);
	assert_memory_equal(e[0].body->data + e[0].time_off, "20", 2);
	history_entries_release(e, n);

	/* Ids are one sequence: a room sees gaps. */
	n = history_since(h, "lobby", 1, 4, false, e, &first);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].id, 5);
	assert_int_equal(first, 1);
	history_entries_release(e, n);

	history_get_stats(h, &st);
	assert_int_equal(st.rooms, 3);
	assert_int_equal(st.in_memory, 5);
	history_close(h);

	/* And so after a restart. */
	h = open_history(f);
	assert_room_texts(h, "lobby", false, "l1|l2");
	assert_room_texts(h, "rust", false, "r1|r2");
	assert_room_texts(h, "go", false, "g1");
	history_close(h);
}

static void
test_events_only_when_asked(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	struct history_entry e[8];
	uint64_t first;
	size_t n, len;
	char *file;

	append_in(h, "rust", HK_JOIN, "ann", "");
	append_in(h, "rust", HK_TOPIC, "ann", "all about rust");
	append_in(h, "rust", HK_MSG, "ann", "hello");
	append_in(h, "rust", HK_PART, "ann", "left gone for lunch");
	append_in(h, "rust", HK_TOPIC, "*", "set by an operator");
	sink_wait(&f->sink, 5);
	assert_room_texts(h, "rust", false, "hello");
	assert_room_texts(h, "rust", true,
			  "|all about rust|hello|left gone for lunch|set by an operator");

	/* The newest N counts messages only when events are not asked for. */
	n = history_recent(h, "rust", 1, UINT64_MAX, false, e);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].id, 3);
	history_entries_release(e, n);
	n = history_recent(h, "rust", 2, UINT64_MAX, true, e);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].id, 4);
	assert_int_equal(e[0].kind, HK_PART);
	assert_int_equal(e[1].kind, HK_TOPIC);
	assert_memory_equal(e[1].body->data + e[1].name_off, "*", 1);
	history_entries_release(e, n);
	n = history_since(h, "rust", 1, 8, false, e, &first);
	assert_int_equal(n, 1);
	assert_int_equal(first, 1);
	history_entries_release(e, n);
	n = history_since(h, "rust", 1, 8, true, e, &first);
	assert_int_equal(n, 4);
	history_entries_release(e, n);
	history_close(h);

	/* The records as the file holds them. */
	file = slurp(f->path, &len);
	assert_non_null(strstr(file, " rust join ann\n"));
	assert_non_null(strstr(file, " rust topic ann all about rust\n"));
	assert_non_null(strstr(file, " rust msg ann hello\n"));
	assert_non_null(strstr(file, " rust part ann left gone for lunch\n"));
	assert_non_null(strstr(file, " rust topic * set by an operator\n"));
	free(file);
	assert_int_equal(sink_count(&f->sink), 5);
	assert_int_equal(f->sink.r[0].id, 1);

	h = open_history(f);
	assert_room_texts(h, "rust", true,
			  "|all about rust|hello|left gone for lunch|set by an operator");
	history_close(h);
}

static void
test_version_1_converted(void **state)
{
	struct fixture *f = *state;
	struct history *h;
	struct stat st;
	size_t len;
	char *file;

	static const char v1[] = HEADER_V1 "3 " TS " ann one\n"
					   "4 " TS " bob two words\n"
					   "4 " TS " bob not increasing\n"
					   "7 " TS " ann three\n"
					   "8 " TS " ann tor";
	static const char v2[] = HEADER "3 " TS " Hall msg ann one\n"
					"4 " TS " Hall msg bob two words\n"
					"7 " TS " Hall msg ann three\n";

	spill(f->path, v1, sizeof(v1) - 1);
	chmod(f->path, 0644);
	f->cfg.default_room = "Hall";
	h = open_history(f);
	assert_room_texts(h, "hall", false, "one|two words|three");
	assert_room_texts(h, "lobby", false, "");
	append_in(h, "hall", HK_MSG, "ann", "after");
	sink_wait(&f->sink, 1);
	assert_int_equal(f->sink.r[0].id, 8);
	history_close(h);

	/* The messages in the default room, then the one appended after the conversion. */
	file = slurp(f->path, &len);
	assert_memory_equal(file, v2, sizeof(v2) - 1);
	assert_non_null(strstr(file + sizeof(v2) - 1, " hall msg ann after\n"));
	free(file);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(log_count(f, "converted from version 1 to version 2 (3 messages"), 1);
	assert_int_equal(log_count(f, "damaged history line skipped"), 1);

	/* Converted once: the next start reads version 2. */
	h = open_history(f);
	assert_room_texts(h, "hall", false, "one|two words|three|after");
	history_close(h);
	assert_int_equal(log_count(f, "converted from"), 1);
}

static void
test_quiet_room_survives_compaction(void **state)
{
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;
	size_t sent = 0, len, n;
	uint64_t *ids;
	char *file;

	f->cfg.max_size = 4096;
	f->cfg.memory = 5;
	h = open_history(f);
	append_in(h, "quiet", HK_TOPIC, "ann", "nobody talks here");
	append_in(h, "quiet", HK_MSG, "ann", "first and last words");
	sent = 2;
	sink_wait(&f->sink, sent);
	for (int i = 0; i < 3; i++)
		fill(f, h, &sent, INT64_MAX);
	history_get_stats(h, &st);
	assert_true(st.compactions >= 3);
	assert_true(st.file_size < 4096);
	assert_room_texts(h, "quiet", true, "nobody talks here|first and last words");
	history_close(h);

	file = slurp(f->path, &len);
	assert_non_null(strstr(file, " quiet msg ann first and last words\n"));
	free(file);
	ids = file_ids(f->path, &n); /* ids increase; the newest stays; quiet's are there */
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_true(ids[2] > 3);
	assert_int_equal(ids[n - 1], sent);
	free(ids);
	h = open_history(f);
	assert_room_texts(h, "quiet", true, "nobody talks here|first and last words");
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, sent);
	assert_int_equal(st.in_memory, 2 + 5); /* quiet's two, lobby's newest five */
	history_close(h);
}

/* A compaction that finds everything it could drop still in memory keeps the file as it is. */
static void
test_compaction_with_nothing_to_drop(void **state)
{
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;
	size_t sent = 0;

	f->cfg.max_size = 4096;
	f->cfg.memory = 1000;
	h = open_history(f);
	fill(f, h, &sent, 4096 + 1000);
	history_get_stats(h, &st);
	assert_int_equal(st.compactions, 0);
	assert_int_equal(st.in_memory, sent);
	assert_int_equal(log_count(f, "compaction failed"), 0);
	history_close(h);
	assert_file_ids_are(f->path, 1, sent);
}

static void
test_deleted_room(void **state)
{
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;
	size_t sent = 0, len;
	char *file;

	f->cfg.max_size = 4096;
	f->cfg.memory = 5;
	h = open_history(f);
	append_in(h, "gone", HK_MSG, "ann", "before the deletion");
	append_in(h, "stay", HK_MSG, "ann", "staying");
	history_drop_room(h, "Gone", 1);
	sink_wait(&f->sink, 3);
	/* The deletion is published like any record. */
	assert_int_equal(f->sink.r[2].id, 3);
	assert_non_null(strstr(f->sink.r[2].body, " Gone delete -\n"));
	assert_room_texts(h, "gone", true, "");
	assert_room_texts(h, "stay", true, "staying");
	history_get_stats(h, &st);
	assert_int_equal(st.rooms, 1);
	assert_int_equal(st.in_memory, 1);

	/* A room of that name made later starts empty. */
	append_in(h, "GONE", HK_MSG, "bob", "a new room");
	sink_wait(&f->sink, 4);
	assert_room_texts(h, "gone", true, "a new room");
	history_close(h);

	/* The loader drops what came before the deletion. */
	h = open_history(f);
	assert_room_texts(h, "gone", true, "a new room");
	assert_room_texts(h, "stay", true, "staying");
	history_drop_room(h, "gone", 2);
	sent = 5;
	sink_wait(&f->sink, sent);
	history_close(h);
	h = open_history(f);
	assert_room_texts(h, "gone", true, "");
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 5); /* the deletion's id is not given out again */

	/* Compaction drops the deleted room's records, and the deletions. */
	for (int i = 0; i < 2; i++)
		fill(f, h, &sent, INT64_MAX);
	history_close(h);
	file = slurp(f->path, &len);
	assert_null(strstr(file, "gone"));
	assert_null(strstr(file, "Gone"));
	assert_null(strstr(file, "GONE"));
	assert_non_null(strstr(file, " stay msg ann staying\n"));
	free(file);
}

/*
 * An event given with the deletions its room was made after: one of a
 * room deleted since (a deletion numbered higher) is the gone room's and
 * is not stored; one of a room made after the deletion is, and so is
 * everything of other rooms and every message.
 */
static void
test_late_event_of_a_deleted_room(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);

	assert_int_equal(history_append_event(h, "dev", HK_JOIN, "ann", false, "", 0, 0), 0);
	history_drop_room(h, "Dev", 3);
	sink_wait(&f->sink, 2);
	/* Made before deletion 3 (after 2): the old room's, left out. */
	assert_int_equal(history_append_event(h, "DEV", HK_PART, "ann", false, "left", 4, 2), 0);
	/* Another room, and a message, are not touched. */
	assert_int_equal(history_append_event(h, "ops", HK_PART, "ann", false, "left", 4, 0), 0);
	append_in(h, "dev", HK_MSG, "bob", "a message");
	/* Made after deletion 3: the new room's. */
	assert_int_equal(history_append_event(h, "dev", HK_JOIN, "bob", false, "", 0, 3), 0);
	sink_wait(&f->sink, 5);
	assert_room_texts(h, "dev", true, "a message|");
	assert_room_texts(h, "ops", true, "left");
	history_close(h);

	h = open_history(f);
	assert_room_texts(h, "dev", true, "a message|");
	history_close(h);
}

/*
 * A message looked up in a room just before the room was deleted, stored
 * after the deletion record, is the old room's: not stored (1), so a room
 * made again under the name never shows it; one of the new room is.
 */
static void
test_late_message_of_a_deleted_room(void **state)
{
	struct fixture *f = *state;
	struct history *h = open_history(f);
	const char *late = "meant for the old dev", *fresh = "for the new dev";

	history_drop_room(h, "dev", 3);
	sink_wait(&f->sink, 1);
	assert_int_equal(history_append_live(h, 1, "Dev", HK_MSG, "ann", false, late, strlen(late),
					     (struct history_live){ 0 }, 2),
			 1);
	assert_int_equal(history_append_live(h, 1, "dev", HK_MSG, "ann", false, fresh,
					     strlen(fresh), (struct history_live){ 0 }, 3),
			 0);
	sink_wait(&f->sink, 2);
	assert_room_texts(h, "dev", false, "for the new dev");
	history_close(h);
	h = open_history(f);
	assert_room_texts(h, "dev", false, "for the new dev");
	history_close(h);
}

/* A thousand rooms of one message each cost a small ring each, not history_memory's worth. */
static void
test_many_quiet_rooms(void **state)
{
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;
	char room[16];

	f->cfg.memory = 1000;
	h = open_history(f);
	for (int i = 0; i < 1000; i++) {
		snprintf(room, sizeof(room), "room%d", i);
		append_in(h, room, HK_MSG, "ann", room);
	}
	sink_wait(&f->sink, 1000);
	history_get_stats(h, &st);
	assert_int_equal(st.rooms, 1000);
	assert_int_equal(st.in_memory, 1000);
	assert_room_texts(h, "ROOM517", false, "room517");
	history_close(h);
	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.rooms, 1000);
	assert_room_texts(h, "room999", false, "room999");
	history_close(h);
}

/* --- guests --- */

static void
append_as(struct history *h, const char *room, enum history_kind kind, const char *name, bool guest,
	  const char *text)
{
	assert_int_equal(history_append_live(h, 1, room, kind, name, guest, text, strlen(text),
					     (struct history_live){ 0 }, HISTORY_ANY_ROOM),
			 0);
}

/*
 * room's records in memory, events too, as "NAME" or, for a guest's,
 * "~NAME" (the mark made here from the entry's guest: the name read
 * must not have it), joined by '|'.
 */
static char *
room_names(struct history *h, const char *room)
{
	struct history_entry e[64];
	size_t n = history_recent(h, room, 64, UINT64_MAX, true, e), len = 0;
	char *out = calloc(1, 64 * 64);

	assert_non_null(out);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, 64 * 64 - len, "%s%s%.*s", i ? "|" : "",
					e[i].guest ? "~" : "", (int)e[i].name_len,
					e[i].body->data + e[i].name_off);
	history_entries_release(e, n);
	return out;
}

static void
assert_room_names(struct history *h, const char *room, const char *want)
{
	char *got = room_names(h, room);

	assert_string_equal(got, want);
	free(got);
}

/* The kinds of room's records, with events, oldest first: "join|msg|part...". */
static char *
room_kinds(struct history *h, const char *room)
{
	struct history_entry e[64];
	size_t n = history_recent(h, room, 64, UINT64_MAX, true, e), len = 0;
	char *out = malloc(64 * 8);

	assert_non_null(out);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, 64 * 8 - len, "%s%s", i ? "|" : "",
					history_kind_name(e[i].kind));
	history_entries_release(e, n);
	return out;
}

/*
 * The quit record (an operator's kick off the server, as each room of the
 * session records it) came after the others: a file the previous chatd
 * wrote, every kind of record in it, loads as it did, and the records
 * read the same; a quit record is stored, published and read back like a
 * part, with its own kind, after a restart too.
 */
static void
test_previous_files_load_and_quit_records(void **state)
{
	struct fixture *f = *state;
	struct history *h;
	size_t len;
	char *file, *kinds;

	static const char before[] =
		HEADER "1 " TS " ops join ann\n"
		       "2 " TS " ops join ~visitor\n"
		       "3 " TS " ops topic ann ops only\n"
		       "4 " TS " ops msg ann hello\n"
		       "5 " TS " ops notice ~visitor a guest's notice\n"
		       "6 " TS " ops part ~visitor kicked taken out of the room\n"
		       "7 " TS " ops topic * set by an operator\n"
		       "8 " TS " ops part ann left bye\n"
		       "9 " TS " gone msg ann soon deleted\n"
		       "10 " TS " gone delete -\n";

	spill(f->path, before, sizeof(before) - 1);
	h = open_history(f);
	kinds = room_kinds(h, "ops");
	assert_string_equal(kinds, "join|join|topic|msg|notice|part|topic|part");
	free(kinds);
	assert_room_texts(
		h, "ops", true,
		"||ops only|hello|a guest's notice|kicked taken out of the room|set by an "
		"operator|left bye");
	assert_room_texts(h, "ops", false, "hello|a guest's notice");
	assert_room_names(h, "ops", "ann|~visitor|ann|ann|~visitor|~visitor|*|ann");
	assert_room_texts(h, "gone", true, "");
	assert_int_equal(log_count(f, "damaged"), 0);

	append_as(h, "ops", HK_QUIT, "bob", false, "kicked spamming");
	append_as(h, "ops", HK_QUIT, "visitor", true, "kicked");
	sink_wait(&f->sink, 2);
	assert_int_equal(f->sink.r[0].id, 11);
	assert_non_null(strstr(f->sink.r[0].body, " ops quit bob kicked spamming\n"));
	assert_non_null(strstr(f->sink.r[1].body, " ops quit ~visitor kicked\n"));
	history_close(h);

	file = slurp(f->path, &len);
	assert_memory_equal(file, before, sizeof(before) - 1);
	free(file);
	h = open_history(f);
	kinds = room_kinds(h, "ops");
	assert_string_equal(kinds, "join|join|topic|msg|notice|part|topic|part|quit|quit");
	free(kinds);
	assert_room_names(h, "ops", "ann|~visitor|ann|ann|~visitor|~visitor|*|ann|bob|~visitor");
	assert_room_texts(h, "ops", false, "hello|a guest's notice");
	history_close(h);
	assert_int_equal(log_count(f, "damaged"), 0);
}

/*
 * A guest's records say so in the file ("~NAME"); read back after a
 * restart and after compactions, the entry has guest set and the name
 * without the mark.  "-" and "*" are nobody's: never a guest's.
 */
static void
test_guest_records(void **state)
{
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;
	size_t sent, len;
	char *file;

	f->cfg.max_size = 4096;
	f->cfg.memory = 8;
	h = open_history(f);
	append_as(h, "quiet", HK_JOIN, "visitor", true, "");
	append_as(h, "quiet", HK_TOPIC, "visitor", true, "guests welcome");
	append_as(h, "quiet", HK_MSG, "visitor", true, "hello from a guest");
	append_as(h, "quiet", HK_NOTICE, "visitor", true, "a guest's notice");
	append_as(h, "quiet", HK_MSG, "bob", false, "hello from an account");
	append_as(h, "quiet", HK_TOPIC, "*", true, "set by an operator");
	append_as(h, "quiet", HK_PART, "visitor", true, "left bye");
	sent = 7;
	sink_wait(&f->sink, sent);
	/* The records published are the ones stored, mark and all. */
	assert_non_null(strstr(f->sink.r[0].body, " quiet join ~visitor\n"));
	assert_non_null(strstr(f->sink.r[2].body, " quiet msg ~visitor hello from a guest\n"));
	assert_non_null(strstr(f->sink.r[4].body, " quiet msg bob hello from an account\n"));
	assert_non_null(strstr(f->sink.r[5].body, " quiet topic * set by an operator\n"));
	assert_room_names(h, "quiet", "~visitor|~visitor|~visitor|~visitor|bob|*|~visitor");
	assert_room_texts(h, "quiet", true,
			  "|guests welcome|hello from a guest|a guest's notice|hello from an "
			  "account|set by an operator|left bye");
	history_close(h);

	file = slurp(f->path, &len);
	assert_non_null(strstr(file, " quiet join ~visitor\n"));
	assert_non_null(strstr(file, " quiet topic ~visitor guests welcome\n"));
	assert_non_null(strstr(file, " quiet msg ~visitor hello from a guest\n"));
	assert_non_null(strstr(file, " quiet notice ~visitor a guest's notice\n"));
	assert_non_null(strstr(file, " quiet msg bob hello from an account\n"));
	assert_non_null(strstr(file, " quiet part ~visitor left bye\n"));
	free(file);

	/* After a restart. */
	h = open_history(f);
	assert_room_names(h, "quiet", "~visitor|~visitor|~visitor|~visitor|bob|*|~visitor");
	assert_room_texts(h, "quiet", false,
			  "hello from a guest|a guest's notice|hello from an account");

	/* Compaction keeps the mark: the quiet room's records are copied as they are. */
	for (int i = 0; i < 3; i++)
		fill(f, h, &sent, INT64_MAX);
	history_get_stats(h, &st);
	assert_true(st.compactions >= 3);
	assert_room_names(h, "quiet", "~visitor|~visitor|~visitor|~visitor|bob|*|~visitor");
	history_close(h);
	file = slurp(f->path, &len);
	assert_non_null(strstr(file, " quiet msg ~visitor hello from a guest\n"));
	assert_non_null(strstr(file, " quiet msg bob hello from an account\n"));
	free(file);
	h = open_history(f);
	assert_room_names(h, "quiet", "~visitor|~visitor|~visitor|~visitor|bob|*|~visitor");
	history_close(h);
}

/* The mark must be followed by a name: "~" alone, "~~x", "~-", "~*" are damaged lines. */
static void
test_damaged_guest_marks_skipped(void **state)
{
	static const char file[] = HEADER "1 " TS " lobby msg ~visitor a guest\n"
					  "2 " TS " lobby msg ~ the mark alone\n"
					  "3 " TS " lobby msg ~~x two marks\n"
					  "4 " TS " lobby msg ~- a guest nobody\n"
					  "5 " TS " lobby topic ~* a guest operator\n"
					  "6 " TS " lobby delete ~-\n"
					  "7 " TS " lobby msg ~bad~name inside\n"
					  "8 " TS " lobby join ~\n"
					  "9 " TS " lobby msg bob~ trailing\n"
					  "10 " TS " lobby msg ~Visitor again\n";
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;

	spill(f->path, file, sizeof(file) - 1);
	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 10);
	assert_int_equal(st.in_memory, 2);
	assert_room_names(h, "lobby", "~visitor|~Visitor");
	assert_room_texts(h, "lobby", true, "a guest|again");
	history_close(h);
	assert_int_equal(log_count(f, "damaged history line skipped"), 8);
	for (int line = 3; line <= 10; line++) {
		char needle[160];

		snprintf(needle, sizeof(needle), "%s:%d: damaged", f->path, line);
		assert_int_equal(log_count(f, needle), 1);
	}
}

/*
 * The mark's edges: a name of 32 characters after it is a name, of 33 is
 * not; a deletion is nobody's, never a guest's; a guest's event may have
 * no text, its message may not, and a space still needs a text after it.
 */
static void
test_guest_mark_edges(void **state)
{
	static const char file[] =
		HEADER "1 " TS " lobby msg ~visitor a guest\n"
		       "2 " TS " lobby delete ~visitor\n"
		       "3 " TS " lobby msg ~aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 33\n"
		       "4 " TS " lobby msg ~aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 32\n"
		       "5 " TS " lobby msg ~visitor \n"
		       "6 " TS " lobby join ~visitor\n"
		       "7 " TS " lobby msg ~\n"
		       "8 " TS " lobby part ~visitor left\n";
	struct fixture *f = *state;
	struct history_stats st;
	struct history *h;

	spill(f->path, file, sizeof(file) - 1);
	h = open_history(f);
	history_get_stats(h, &st);
	assert_int_equal(st.last_id, 8);
	assert_int_equal(st.in_memory, 4);
	assert_room_names(h, "lobby",
			  "~visitor|~aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa|~visitor|~visitor");
	assert_room_texts(h, "lobby", true, "a guest|32||left");
	history_close(h);
	assert_int_equal(log_count(f, "damaged history line skipped"), 4);
	for (int line = 2; line <= 9; line++) {
		char needle[160];
		bool damaged = line == 3 || line == 4 || line == 6 || line == 8;

		snprintf(needle, sizeof(needle), "%s:%d: damaged", f->path, line);
		assert_int_equal(log_count(f, needle), damaged ? 1 : 0);
	}
}

/* Version 1 had no guests: a marked name there is damaged, not converted. */
static void
test_version_1_has_no_guests(void **state)
{
	static const char v1[] = HEADER_V1 "1 " TS " ~ann marked\n"
					   "2 " TS " bob plain\n";
	struct fixture *f = *state;
	struct history *h;
	size_t len;
	char *file;

	spill(f->path, v1, sizeof(v1) - 1);
	h = open_history(f);
	assert_room_names(h, "lobby", "bob");
	history_close(h);
	file = slurp(f->path, &len);
	assert_string_equal(file, HEADER "2 " TS " lobby msg bob plain\n");
	free(file);
	assert_int_equal(log_count(f, "damaged history line skipped"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_publishes_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_continues_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_ids_past_the_largest_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recent_with_max_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_since_with_first_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_lines_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_warnings_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_line_cut_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_created_and_empty_files_get_header, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_cut_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_written_together, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_sync_refuses_all_pending, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_slow_sync_warned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backlog_until_published, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relaxed_publishes_before_sync, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_appends_go_on_while_publishing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_relaxed_publishes_in_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_under_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_keeps_appends_made_meanwhile, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_relaxed_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_million, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rooms_kept_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_only_when_asked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_1_converted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiet_room_survives_compaction, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_compaction_with_nothing_to_drop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deleted_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_event_of_a_deleted_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_message_of_a_deleted_room, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_quiet_rooms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_previous_files_load_and_quit_records, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_damaged_guest_marks_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_mark_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_1_has_no_guests, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
