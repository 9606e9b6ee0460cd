/*
 * harness.h - what the libFuzzer targets in fuzz/ share: a private
 * temporary directory for the files a parser reads, settings published
 * from a configuration text, a stand-in client without a socket, and the
 * property check that stops a run.
 *
 * Every file a target writes lives in the directory fuzz_dir() made under
 * $TMPDIR (or /tmp); it is removed when the target exits.  The service log
 * goes to /dev/null, so the log formatting still runs on fuzzed names.
 */
#ifndef CHATD_FUZZ_HARNESS_H
#define CHATD_FUZZ_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "session.h"

struct server;

/* A property the code under test must keep: abort() is a crash to libFuzzer. */
#define fuzz_assert(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, \
				#cond); \
			abort(); \
		} \
	} while (0)

/* Quiet, deterministic process state: log to /dev/null, no systemd directories. */
void fuzz_init_process(void);

/* The private temporary directory (made on first use, removed at exit). */
const char *fuzz_dir(void);

/* fuzz_dir()/name into out (PATH_MAX bytes). */
void fuzz_path(char out[], const char *name);

/* Replaces the file at path with len bytes of data. */
void fuzz_write_file(const char *path, const void *data, size_t len);

/* Reads the whole file at path (NUL-terminated); *len gets its size.  The caller frees. */
char *fuzz_read_file(const char *path, size_t *len);

/* Loads conf (chatd.conf syntax, must be valid) and publishes it as the current settings. */
void fuzz_publish_settings(const char *conf);

/* A logged-out client of srv with no socket: replies pile up in c->out. */
struct client *fuzz_client_new(struct server *srv);
void fuzz_client_free(struct client *c);

/* Moves everything queued in q into one malloc'd, NUL-terminated buffer and empties q. */
char *fuzz_outq_take(struct outq *q, size_t *len);

/*
 * Checks that buf (len bytes) is a run of whole protocol lines, each ending
 * in LF with valid text (docs/PROTOCOL.md, "Framing") before it: nothing
 * chatd sends may carry a control character or broken UTF-8.  Returns how
 * many lines there are.
 */
size_t fuzz_check_lines(const char *buf, size_t len);

/* A copy of data as a NUL-terminated string (the caller frees). */
char *fuzz_strndup(const uint8_t *data, size_t len);

#endif
