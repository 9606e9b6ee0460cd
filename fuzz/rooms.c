/*
 * rooms.c - fuzz target for the rooms file reader and writer
 * (daemon/roomfile.c, roomfile_load() and roomfile_save()).
 *
 * Input: the contents of a rooms file, written to the target's temporary
 * directory and loaded.
 *
 * Checked: a refusal names the file (and, for a bad line, its number); a
 * file is accepted only after its version line (or empty); every room
 * loaded has a valid name, a creation time, and a topic that is valid
 * text no longer than MAX_TOPIC_BYTES, set by a valid name or "*" exactly
 * when it has a time; and what roomfile_save() writes of them (mode 0600,
 * no temporary file left) loads back to the very same rooms.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "names.h"
#include "roomfile.h"
#include "utf8.h"

#define HEADER "chatd-rooms 1\n"
#define HEADER_LEN (sizeof(HEADER) - 1)

static char path[PATH_MAX], saved[PATH_MAX], saved_tmp[PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_process();
	fuzz_path(path, "rooms");
	fuzz_path(saved, "rooms-saved");
	fuzz_path(saved_tmp, "rooms-saved.tmp");
	return 0;
}

static void
check_room(const struct roomfile_room *r)
{
	size_t topic_len = strnlen(r->topic, sizeof(r->topic));

	fuzz_assert(room_name_valid(r->name, strnlen(r->name, sizeof(r->name))));
	fuzz_assert(r->created_ms > 0 && r->topic_ms >= 0);
	fuzz_assert(topic_len <= MAX_TOPIC_BYTES && text_check(r->topic, topic_len) == TEXT_OK);
	if (r->topic_ms == 0) {
		fuzz_assert(r->topic_by[0] == '\0' && r->topic[0] == '\0');
	} else {
		size_t by = strnlen(r->topic_by, sizeof(r->topic_by));

		fuzz_assert(strcmp(r->topic_by, "*") == 0 || name_valid(r->topic_by, by));
	}
}

static bool
same_room(const struct roomfile_room *a, const struct roomfile_room *b)
{
	return strcmp(a->name, b->name) == 0 && a->op_made == b->op_made &&
	       a->created_ms == b->created_ms && a->topic_ms == b->topic_ms &&
	       strcmp(a->topic_by, b->topic_by) == 0 && strcmp(a->topic, b->topic) == 0;
}

/* What roomfile_save() writes of v loads back to v. */
static void
check_round_trip(const struct roomfile_room *v, size_t n)
{
	struct roomfile_room *back;
	struct stat st;
	size_t m;
	char err[512];

	unlink(saved);
	fuzz_assert(roomfile_save(saved, v, n, err, sizeof(err)) == 0);
	fuzz_assert(stat(saved, &st) == 0 && (st.st_mode & 07777) == 0600);
	fuzz_assert(access(saved_tmp, F_OK) != 0);
	fuzz_assert(roomfile_load(saved, &back, &m, err, sizeof(err)) == 0);
	fuzz_assert(m == n);
	for (size_t i = 0; i < n; i++)
		fuzz_assert(same_room(&v[i], &back[i]));
	free(back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct roomfile_room *v;
	size_t n;
	char err[512];

	unlink(path);
	fuzz_write_file(path, data, size);
	if (roomfile_load(path, &v, &n, err, sizeof(err)) < 0) {
		fuzz_assert(v == NULL && n == 0);
		fuzz_assert(strstr(err, path) != NULL);
		fuzz_assert(size > 0);
		return 0;
	}
	/* Accepted: empty, or the version line first. */
	fuzz_assert(size == 0 || (size >= HEADER_LEN && memcmp(data, HEADER, HEADER_LEN) == 0));
	fuzz_assert(size == 0 || data[size - 1] == '\n');
	for (size_t i = 0; i < n; i++)
		check_room(&v[i]);
	check_round_trip(v, n);
	free(v);
	return 0;
}
