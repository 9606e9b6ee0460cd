/*
 * unit_fixture.h - what the unit tests that run chatd's code under given
 * settings share (test_auth.c, test_oom.c): publish_settings() loads
 * chatd.conf text (the rest defaults) through a temporary file and
 * publishes it, as a reload does; file_contains() looks for a text in a
 * file such as the log.  Include after <cmocka.h>.
 */
#ifndef CHATD_UNIT_FIXTURE_H
#define CHATD_UNIT_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static void
publish_settings(const char *text)
{
	char path[] = "/tmp/chatd-unit.conf.XXXXXX", err[256];
	int fd = mkstemp(path);
	struct settings *s = calloc(1, sizeof(*s));

	assert_true(fd >= 0);
	assert_non_null(s);
	assert_true(dprintf(fd, "%s", text) >= 0);
	close(fd);
	if (settings_load(path, s, err, sizeof(err)) != 0)
		fail_msg("settings_load: %s", err);
	unlink(path);
	settings_publish(s);
}

/* Whether the file at path (its first MiB) holds text. */
static bool
file_contains(const char *path, const char *text)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "re");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

#endif
