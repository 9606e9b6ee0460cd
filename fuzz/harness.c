/*
 * harness.c - the support every fuzz target shares (see harness.h): the
 * temporary directory and its files, published settings, a client without
 * a socket, and the check that chatd's replies are well-formed lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "log.h"
#include "timefmt.h"
#include "utf8.h"

static char dir[PATH_MAX];

static void
die(const char *what)
{
	fprintf(stderr, "fuzz harness: %s: %s\n", what, strerror(errno));
	abort();
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void
remove_dir(void)
{
	if (dir[0] != '\0')
		nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

const char *
fuzz_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	if (dir[0] != '\0')
		return dir;
	snprintf(dir, sizeof(dir), "%s/chatd-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	atexit(remove_dir);
	return dir;
}

void
fuzz_path(char out[], const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", fuzz_dir(), name);
}

void
fuzz_init_process(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	/* Defaults must not depend on where the fuzzer happens to run. */
	unsetenv("STATE_DIRECTORY");
	unsetenv("LOGS_DIRECTORY");
	unsetenv("RUNTIME_DIRECTORY");
	if (log_open("/dev/null") < 0)
		die("log_open /dev/null");
	log_set_level(LVL_DEBUG);
	fuzz_dir();
}

void
fuzz_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = data;

	if (fd < 0)
		die(path);
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die(path);
		p += n;
		len -= (size_t)n;
	}
	close(fd);
}

char *
fuzz_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (f == NULL)
		die(path);
	do {
		if (cap - n < 4096) {
			cap = cap * 2 + 4096;
			if ((buf = realloc(buf, cap + 1)) == NULL)
				die("realloc");
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	if (ferror(f))
		die(path);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

void
fuzz_publish_settings(const char *conf)
{
	char path[PATH_MAX], err[512];
	struct settings *s = calloc(1, sizeof(*s));

	if (s == NULL)
		die("calloc");
	fuzz_path(path, "harness.conf");
	fuzz_write_file(path, conf, strlen(conf));
	if (settings_load(path, s, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz harness: bad settings: %s\n", err);
		abort();
	}
	settings_publish(s);
}

struct client *
fuzz_client_new(struct server *srv)
{
	struct client *c = calloc(1, sizeof(*c));
	static uint64_t next_id;

	if (c == NULL)
		die("calloc");
	if (linebuf_init(&c->in, (size_t)settings_get()->max_line) < 0)
		die("linebuf_init");
	c->id = ++next_id;
	c->fd = -1;
	snprintf(c->addr_str, sizeof(c->addr_str), "192.0.2.1");
	c->connected_ms = time_now_ms();
	c->srv = srv;
	/* No thread (tid 0): client_wake() only sets wake_pending, sends no signal. */
	atomic_init(&c->tid, 0);
	atomic_init(&c->wake_pending, false);
	atomic_init(&c->refs, 1);
	outq_init(&c->out);
	return c;
}

void
fuzz_client_free(struct client *c)
{
	client_unref(c);
}

char *
fuzz_outq_take(struct outq *q, size_t *len)
{
	char *buf = malloc(q->bytes + 1);
	size_t n = 0;

	if (buf == NULL)
		die("malloc");
	for (size_t i = 0; i < q->count; i++) {
		const struct outq_item *it = &q->items[(q->head + i) % q->cap];

		memcpy(buf + n, it->iov.iov_base, it->iov.iov_len);
		n += it->iov.iov_len;
	}
	fuzz_assert(n == q->bytes);
	buf[n] = '\0';
	*len = n;
	outq_free(q);
	outq_init(q);
	return buf;
}

size_t
fuzz_check_lines(const char *buf, size_t len)
{
	size_t lines = 0;

	while (len > 0) {
		const char *lf = memchr(buf, '\n', len);
		size_t n;

		fuzz_assert(lf != NULL); /* every line is whole */
		n = (size_t)(lf - buf);
		fuzz_assert(text_check(buf, n) == TEXT_OK);
		buf += n + 1;
		len -= n + 1;
		lines++;
	}
	return lines;
}

char *
fuzz_strndup(const uint8_t *data, size_t len)
{
	char *s = malloc(len + 1);

	if (s == NULL)
		die("malloc");
	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}
