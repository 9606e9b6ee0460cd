/*
 * history.c - fuzz target for the history file reader (daemon/history.c,
 * history_open()).
 *
 * Input: the contents of a history file, written to the target's temporary
 * directory and opened with a small memory (so the ring wraps) and no
 * compaction.  The history_io hooks keep write(2) but make fdatasync() a
 * no-op: durability is not what is fuzzed, and tmpfs has none to give.
 *
 * Checked: a refusal names the file; otherwise the file left behind is the
 * input cut after its last whole line (or just the version line if the
 * input was empty), the messages in memory are lines of that file with
 * strictly increasing ids ending at the highest, and the next message
 * stored gets the id after it, and is found there by a second open (or,
 * after the largest id the loader reads, is refused).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "history.h"
#include "timefmt.h"

#define HEADER "chatd-history 1\n"
#define HEADER_LEN (sizeof(HEADER) - 1)
#define ID_MAX 9999999999999999999ULL /* 19 digits: the longest id read */
#define MEMORY 8
#define SENDER 7

static char path[PATH_MAX];

/* What the publish callback saw (it runs on the commit thread, under the history lock). */
struct published {
	uint64_t id;
	bool failed;
	size_t count;
};

static int
no_fdatasync(int fd)
{
	return 0;
}

static const struct history_io io = { .write = write, .fdatasync = no_fdatasync };

static void
publish(void *ctx, const struct history_entry *e, size_t n)
{
	struct published *p = ctx;

	for (size_t i = 0; i < n; i++) {
		fuzz_assert(e[i].sender == SENDER);
		p->id = e[i].id;
		p->failed = e[i].failed;
		p->count++;
	}
}

static struct history *
open_history(struct published *p, char *err, size_t errlen)
{
	struct history_config cfg = {
		.path = path,
		.memory = MEMORY,
		.max_size = INT64_MAX,
		.sync_ms = 0,
		.io = &io,
	};

	return history_open(&cfg, publish, p, err, errlen);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_process();
	fuzz_path(path, "history");
	return 0;
}

/* "ID TIME NAME TEXT\n" with ID == id. */
static void
check_body(const struct line *body, uint64_t id)
{
	char want[32];
	int n = snprintf(want, sizeof(want), "%" PRIu64 " ", id);

	fuzz_assert(body->len > (unsigned)n + TIME_RFC3339_LEN + 3);
	fuzz_assert(memcmp(body->data, want, (size_t)n) == 0);
	fuzz_assert(body->data[body->len - 1] == '\n');
	fuzz_assert(memchr(body->data, '\n', body->len - 1) == NULL);
	fuzz_assert(fuzz_check_lines(body->data, body->len) == 1);
}

/* The memory holds lines of file, ids strictly increasing up to last_id. */
static void
check_memory(struct history *h, const char *file, size_t file_len)
{
	struct history_entry e[MEMORY], since[MEMORY];
	struct history_stats st;
	uint64_t first_held;

	history_get_stats(h, &st);
	size_t n = history_recent(h, MEMORY, UINT64_MAX, e);
	fuzz_assert(n == st.in_memory && n <= MEMORY);
	fuzz_assert(st.file_size == (int64_t)file_len);
	for (size_t i = 0; i < n; i++) {
		check_body(e[i].body, e[i].id);
		fuzz_assert(i == 0 || e[i - 1].id < e[i].id);
		fuzz_assert(memmem(file, file_len, e[i].body->data, e[i].body->len) != NULL);
	}
	fuzz_assert(n == 0 ? st.last_id == 0 : e[n - 1].id == st.last_id);

	/* history_since() from before the oldest gives the same messages. */
	size_t m = history_since(h, 0, MEMORY, since, &first_held);
	fuzz_assert(m == n && first_held == (n ? e[0].id : 0));
	for (size_t i = 0; i < m; i++)
		fuzz_assert(since[i].body == e[i].body);
	history_entries_release(e, n);
	history_entries_release(since, m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct published p = { 0 };
	struct history_stats st;
	struct history *h;
	char err[512];
	size_t len;

	unlink(path);
	fuzz_write_file(path, data, size);
	if ((h = open_history(&p, err, sizeof(err))) == NULL) {
		fuzz_assert(strncmp(err, path, strlen(path)) == 0);
		/* Refused only for a version line that is not ours. */
		fuzz_assert(size > 0 &&
			    (size < HEADER_LEN || memcmp(data, HEADER, HEADER_LEN) != 0));
		return 0;
	}

	/* The file is the input up to its last whole line: only a torn tail is cut. */
	char *file = fuzz_read_file(path, &len);
	fuzz_assert(len >= HEADER_LEN && memcmp(file, HEADER, HEADER_LEN) == 0);
	fuzz_assert(file[len - 1] == '\n');
	if (size > 0) {
		fuzz_assert(len <= size && memcmp(file, data, len) == 0);
		fuzz_assert(memchr(data + len, '\n', size - len) == NULL);
	}
	check_memory(h, file, len);
	free(file);

	/*
	 * The sequence goes on after the highest id read, with ids the loader
	 * accepts again: at the largest one, the message is refused instead.
	 */
	history_get_stats(h, &st);
	uint64_t before = st.last_id;
	fuzz_assert(history_append(h, SENDER, "fuzz", "next", 4) == 0);
	history_close(h);
	fuzz_assert(p.count == 1);
	if (before == ID_MAX)
		fuzz_assert(p.failed && p.id == 0);
	else
		fuzz_assert(!p.failed && p.id == before + 1);

	h = open_history(&p, err, sizeof(err));
	fuzz_assert(h != NULL);
	history_get_stats(h, &st);
	fuzz_assert(st.last_id == (before == ID_MAX ? ID_MAX : before + 1));
	file = fuzz_read_file(path, &len);
	check_memory(h, file, len);
	free(file);
	history_close(h);
	return 0;
}
