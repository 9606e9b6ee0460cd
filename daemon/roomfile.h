/*
 * roomfile.h - the rooms file (rooms_file): the rooms and their topics,
 * as room.c saves and loads them (format in roomfile.c and
 * docs/FILES.md).  Called by one thread at a time (room.c serializes
 * saves under its save lock; loading happens at start).
 */
#ifndef CHATD_ROOMFILE_H
#define CHATD_ROOMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

struct roomfile_room {
	char name[ROOM_NAME_MAX + 1];
	bool op_made; /* made by an operator (or the default room): never expires */
	int64_t created_ms;
	int64_t topic_ms;                /* 0: never set */
	char topic_by[NAME_MAX_LEN + 1]; /* a name, or "*": an operator */
	bool topic_guest;                /* topic_by was a guest: "~NAME" in the file */
	char topic[MAX_TOPIC_BYTES + 1];
};

/* A missing file is no rooms; a file there is given mode 0600 (docs/FILES.md, "Modes").
 * -1 with "FILE:LINE: what" in err. */
int roomfile_load(const char *path, struct roomfile_room **out, size_t *n, char *err,
		  size_t errlen);
/* Atomic (temp, fsync, rename, directory fsync), mode 0600.  -1 with a message in err. */
int roomfile_save(const char *path, const struct roomfile_room *v, size_t n, char *err,
		  size_t errlen);

#endif
