/*
 * roomfile.c - the rooms file (rooms_file, docs/FILES.md): the rooms and
 * their topics, so that they outlive a restart.
 *
 *   chatd-rooms 1
 *   NAME FLAGS CREATED_MS TOPIC_MS TOPIC_SETTER TOPIC
 *
 * FLAGS is "op" (made by an operator, or the default room: never expires)
 * or "user"; TOPIC_MS and TOPIC_SETTER are "-" for a room never given a
 * topic; TOPIC_SETTER is a name, "~NAME" for a guest (as in the history
 * file; a file of an older chatd has no '~') or "*" for an operator;
 * TOPIC is the rest of the line.  The file is small and changes
 * rarely (a room made or deleted, a topic set): every change rewrites it
 * whole, atomically (a temp file written, synced, mode 0600, renamed over
 * it, the directory synced).  Called by one thread at a time: room.c
 * serializes saves under its save lock, and loading happens at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "roomfile.h"
#include "safefile.h"
#include "utf8.h"

#define ROOMFILE_HEADER "chatd-rooms 1"
/* Before a guest's name, as in the history file (HISTSTORE_GUEST_MARK): no name has it. */
#define GUEST_MARK '~'
#define GUEST_MARK_STR "~"
/* The longest line: name, flags, two times, a setter and a topic. */
#define ROOMFILE_LINE_MAX (ROOM_NAME_MAX + NAME_MAX_LEN + MAX_TOPIC_BYTES + 64)

static bool
parse_ms(const char *s, bool dash_ok, int64_t *out)
{
	char *end;

	if (dash_ok && strcmp(s, "-") == 0) {
		*out = 0;
		return true;
	}
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return false;
	*out = v;
	return true;
}

/* A topic's setter: "*", a name, or '~' and a name (a guest's); false if none of those. */
static bool
parse_setter(const char *s, struct roomfile_room *r)
{
	bool guest = s[0] == GUEST_MARK;
	const char *name = guest ? s + 1 : s;

	if ((guest || strcmp(s, "*") != 0) && !name_valid(name, strlen(name)))
		return false;
	r->topic_guest = guest;
	snprintf(r->topic_by, sizeof(r->topic_by), "%s", name);
	return true;
}

/* One line (without its LF) into r; false if damaged. */
static bool
parse_line(char *line, struct roomfile_room *r)
{
	char *f[5], *p = line;

	for (int i = 0; i < 5; i++) {
		f[i] = p;
		if ((p = strchr(p, ' ')) == NULL) {
			if (i < 4)
				return false;
			p = f[i] + strlen(f[i]); /* no topic */
		} else
			*p++ = '\0';
	}
	memset(r, 0, sizeof(*r));
	if (!room_name_valid(f[0], strlen(f[0])) ||
	    (strcmp(f[1], "op") != 0 && strcmp(f[1], "user") != 0) ||
	    !parse_ms(f[2], false, &r->created_ms) || !parse_ms(f[3], true, &r->topic_ms))
		return false;
	if ((r->topic_ms == 0) != (strcmp(f[4], "-") == 0) ||
	    (r->topic_ms != 0 && !parse_setter(f[4], r)) || strlen(p) > MAX_TOPIC_BYTES ||
	    text_check(p, strlen(p)) != TEXT_OK)
		return false;
	snprintf(r->name, sizeof(r->name), "%s", f[0]);
	r->op_made = strcmp(f[1], "op") == 0;
	if (r->topic_ms != 0)
		snprintf(r->topic, sizeof(r->topic), "%s", p);
	return true;
}

/* Rooms (pointers into one array) by name, ignoring case, then by place: file order. */
static int
by_name(const void *a, const void *b)
{
	const struct roomfile_room *r = *(const struct roomfile_room *const *)a,
				   *s = *(const struct roomfile_room *const *)b;
	int cmp = name_cmp(r->name, s->name);

	return cmp != 0 ? cmp : (r > s) - (r < s);
}

/*
 * A room named twice (ignoring case) is an error at the line of its second
 * mention, the first such line in the file.  By sorting, not by comparing
 * each room with those before it: max_rooms may be a million.
 */
static int
check_twice(const struct roomfile_room *v, size_t n, const char *path, char *err, size_t errlen)
{
	const struct roomfile_room **order;
	size_t twice = SIZE_MAX;

	if (n < 2)
		return 0;
	if ((order = malloc(n * sizeof(*order))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		order[i] = &v[i];
	qsort(order, n, sizeof(*order), by_name);
	for (size_t i = 1; i < n; i++)
		if (name_cmp(order[i - 1]->name, order[i]->name) == 0 &&
		    (size_t)(order[i] - v) < twice)
			twice = (size_t)(order[i] - v);
	free(order);
	if (twice == SIZE_MAX)
		return 0;
	/* Line 1 is the header; room i is on line i + 2. */
	snprintf(err, errlen, "%s:%zu: room %s is there twice", path, twice + 2, v[twice].name);
	return -1;
}

static int
load_lines(FILE *f, const char *path, struct roomfile_room **out, size_t *n, char *err,
	   size_t errlen)
{
	char line[ROOMFILE_LINE_MAX + 2];
	size_t cap = 0;
	unsigned lineno = 0;

	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);

		lineno++;
		if (len == 0 || line[len - 1] != '\n') {
			snprintf(err, errlen, "%s:%u: line too long or cut short", path, lineno);
			return -1;
		}
		line[len - 1] = '\0';
		if (lineno == 1) {
			if (strcmp(line, ROOMFILE_HEADER) != 0) {
				snprintf(err, errlen, "%s:1: not a rooms file (expected \"%s\")",
					 path, ROOMFILE_HEADER);
				return -1;
			}
			continue;
		}
		if (*n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct roomfile_room *v = realloc(*out, ncap * sizeof(*v));

			if (v == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				return -1;
			}
			*out = v;
			cap = ncap;
		}
		if (!parse_line(line, &(*out)[*n])) {
			snprintf(err, errlen, "%s:%u: damaged room line", path, lineno);
			return -1;
		}
		(*n)++;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	return check_twice(*out, *n, path, err, errlen);
}

int
roomfile_load(const char *path, struct roomfile_room **out, size_t *n, char *err, size_t errlen)
{
	int fd = safefile_open(path, O_RDONLY, 0600, SAFEFILE_SETMODE, err, errlen);
	FILE *f;

	*out = NULL;
	*n = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	int rc = load_lines(f, path, out, n, err, errlen);
	fclose(f);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

static int
write_rooms(int fd, const struct roomfile_room *v, size_t n)
{
	char line[ROOMFILE_LINE_MAX + 2], ms[24];

	if (safefile_write_all(fd, ROOMFILE_HEADER "\n", strlen(ROOMFILE_HEADER) + 1) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct roomfile_room *r = &v[i];
		int len;

		snprintf(ms, sizeof(ms), "%" PRId64, r->topic_ms);
		len = snprintf(line, sizeof(line), "%s %s %" PRId64 " %s %s%s %s\n", r->name,
			       r->op_made ? "op" : "user", r->created_ms, r->topic_ms ? ms : "-",
			       r->topic_ms && r->topic_guest ? GUEST_MARK_STR : "",
			       r->topic_ms ? r->topic_by : "-", r->topic_ms ? r->topic : "");
		if (len < 0 || (size_t)len >= sizeof(line) ||
		    safefile_write_all(fd, line, (size_t)len) < 0)
			return -1;
	}
	return 0;
}

/* Syncs the directory of path, so that a rename in it is durable. */
static int
sync_dir(const char *path)
{
	char dir[4096], *slash;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		slash[slash == dir] = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
roomfile_save(const char *path, const struct roomfile_room *v, size_t n, char *err, size_t errlen)
{
	char tmp[4096];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp); /* a leftover, or a planted link: the link itself goes */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write_rooms(fd, v, n) < 0 || fchmod(fd, 0600) < 0 || fdatasync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0 || sync_dir(path) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}
