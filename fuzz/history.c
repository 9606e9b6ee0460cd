/*
 * history.c - fuzz target for the history file reader (daemon/history.c,
 * history_open()).
 *
 * Input: the contents of a history file (version 2, or version 1, which is
 * converted at open), written to the target's temporary directory and
 * opened with a small memory per room (so the rings wrap) and no
 * compaction.  The history_io hooks keep write(2) but make fdatasync() a
 * no-op: durability is not what is fuzzed, and tmpfs has none to give.
 *
 * Checked: a refusal names the file; otherwise the file left behind is the
 * input cut after its last whole line (a version 1 input: its messages
 * rewritten as version 2 records in the default room), or just the
 * version line if the input was empty; each room's records in memory are
 * lines of that file, of that room, with strictly increasing ids, the
 * messages among them what history_recent() gives without events; and the
 * next record stored gets the id after the highest read, and is found
 * there by a second open (or, after the largest id the loader reads, is
 * refused).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "history.h"
#include "names.h"
#include "timefmt.h"

#define HEADER "chatd-history 2\n"
#define HEADER_LEN (sizeof(HEADER) - 1)
#define HEADER_V1 "chatd-history 1\n"
#define HEADER_V1_LEN (sizeof(HEADER_V1) - 1)
#define ROOMS 32                      /* rooms of a file checked, at most */
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

/* "ID TIME ROOM KIND NAME[ TEXT]\n" with ID == id, fields where the entry says. */
static void
check_entry(const struct history_entry *e, const char *room)
{
	const struct line *body = e->body;
	const char *kind = history_kind_name(e->kind);
	char want[32];
	int n = snprintf(want, sizeof(want), "%" PRIu64 " ", e->id);

	fuzz_assert(!e->failed && body->len > (unsigned)n + TIME_RFC3339_LEN + 3);
	fuzz_assert(memcmp(body->data, want, (size_t)n) == 0 && e->time_off == n);
	fuzz_assert(body->data[body->len - 1] == '\n');
	fuzz_assert(memchr(body->data, '\n', body->len - 1) == NULL);
	fuzz_assert(fuzz_check_lines(body->data, body->len) == 1);
	fuzz_assert(e->room_off == e->time_off + TIME_RFC3339_LEN + 1);
	fuzz_assert(e->room_len == strlen(e->room) && name_cmp(e->room, room) == 0);
	fuzz_assert(memcmp(body->data + e->room_off, e->room, e->room_len) == 0);
	fuzz_assert(memcmp(body->data + e->room_off + e->room_len + 1, kind, strlen(kind)) == 0);
	/* A guest's name ("~NAME") is past its mark. */
	fuzz_assert(e->name_off == e->room_off + e->room_len + 1 + strlen(kind) + 1 + e->guest);
	fuzz_assert(!e->guest || body->data[e->name_off - 1] == '~');
	fuzz_assert(e->name_len > 0 && e->text_off + e->text_len == body->len - 1);
	fuzz_assert(e->text_len == 0 ? e->text_off == e->name_off + e->name_len
				     : e->text_off == e->name_off + e->name_len + 1u);
	fuzz_assert(e->kind != HK_DELETE);
	fuzz_assert(e->kind != HK_MSG || e->text_len > 0);
}

/* The distinct rooms (ignoring case) the lines of file name, at most ROOMS; false if more. */
static bool
file_rooms(const char *file, size_t len, char rooms[][ROOM_NAME_MAX + 1], size_t *n)
{
	const char *p = memchr(file, '\n', len) + 1, *end = file + len;

	*n = 0;
	for (const char *nl; p < end && (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1) {
		const char *f = p;
		size_t flen;
		bool seen = false;

		for (int i = 0; i < 2 && f; i++) { /* past ID and TIME */
			f = memchr(f, ' ', (size_t)(nl - f));
			f = f ? f + 1 : NULL;
		}
		if (!f)
			continue;
		flen = strcspn(f, " \n");
		if (flen == 0 || flen > ROOM_NAME_MAX || f + flen > nl)
			continue;
		char room[ROOM_NAME_MAX + 1];
		memcpy(room, f, flen);
		room[flen] = '\0';
		for (size_t i = 0; i < *n && !seen; i++)
			seen = name_cmp(rooms[i], room) == 0;
		if (seen)
			continue;
		if (*n == ROOMS)
			return false;
		memcpy(rooms[(*n)++], room, flen + 1);
	}
	return true;
}

/* room's records in memory are lines of file with strictly increasing ids; how many. */
static size_t
check_room(struct history *h, const char *room, const char *file, size_t file_len)
{
	struct history_entry e[MEMORY], since[MEMORY], msgs[MEMORY];
	uint64_t first_held;
	size_t n = history_recent(h, room, MEMORY, UINT64_MAX, true, e), m, k = 0;

	fuzz_assert(n <= MEMORY);
	for (size_t i = 0; i < n; i++) {
		check_entry(&e[i], room);
		fuzz_assert(i == 0 || e[i - 1].id < e[i].id);
		fuzz_assert(memmem(file, file_len, e[i].body->data, e[i].body->len) != NULL);
	}

	/* history_since() from before the oldest gives the same records. */
	m = history_since(h, room, 0, MEMORY, true, since, &first_held);
	fuzz_assert(m == n && first_held == (n ? e[0].id : 0));
	for (size_t i = 0; i < m; i++)
		fuzz_assert(since[i].body == e[i].body);
	history_entries_release(since, m);

	/* Without events: the messages (and notices) among them. */
	m = history_recent(h, room, MEMORY, UINT64_MAX, false, msgs);
	for (size_t i = 0; i < n; i++)
		if (history_kind_message(e[i].kind))
			fuzz_assert(k < m && msgs[k++].body == e[i].body);
	fuzz_assert(k == m);
	history_entries_release(msgs, m);
	history_entries_release(e, n);
	return n;
}

/* Every room's memory holds lines of file; all of it when the file names few rooms. */
static void
check_memory(struct history *h, const char *file, size_t file_len)
{
	char rooms[ROOMS][ROOM_NAME_MAX + 1];
	struct history_stats st;
	size_t n, held = 0;
	bool all = file_rooms(file, file_len, rooms, &n);

	history_get_stats(h, &st);
	fuzz_assert(st.file_size == (int64_t)file_len);
	for (size_t i = 0; i < n; i++)
		held += check_room(h, rooms[i], file, file_len);
	fuzz_assert(all ? held == st.in_memory : held <= st.in_memory);
}

/* A version 1 input became version 2 messages in the default room. */
static void
check_converted(const char *file, size_t len)
{
	for (const char *p = file + HEADER_LEN, *nl; p < file + len; p = nl + 1) {
		const char *f = p;

		nl = memchr(p, '\n', (size_t)(file + len - p));
		fuzz_assert(nl != NULL);
		for (int i = 0; i < 2 && f; i++) {
			f = memchr(f, ' ', (size_t)(nl - f));
			f = f ? f + 1 : NULL;
		}
		fuzz_assert(f && strncmp(f, "lobby msg ", 10) == 0);
	}
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
			    (size < HEADER_LEN || memcmp(data, HEADER, HEADER_LEN) != 0) &&
			    (size < HEADER_V1_LEN || memcmp(data, HEADER_V1, HEADER_V1_LEN) != 0));
		return 0;
	}
	bool v1 = size >= HEADER_V1_LEN && memcmp(data, HEADER_V1, HEADER_V1_LEN) == 0;

	/* The file is the input up to its last whole line: only a torn tail is cut. */
	char *file = fuzz_read_file(path, &len);
	fuzz_assert(len >= HEADER_LEN && memcmp(file, HEADER, HEADER_LEN) == 0);
	fuzz_assert(file[len - 1] == '\n');
	if (v1)
		check_converted(file, len);
	else if (size > 0) {
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
	fuzz_assert(history_append(h, SENDER, "Fuzz", HK_MSG, "fuzz", "next", 4) == 0);
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
	if (before != ID_MAX) {
		struct history_entry last;

		fuzz_assert(history_recent(h, "fuzz", 1, UINT64_MAX, false, &last) == 1);
		fuzz_assert(last.id == before + 1);
		history_entries_release(&last, 1);
	}
	history_close(h);
	return 0;
}
