/*
 * test_ident.c - the identification store: lookups, passwords, the file it
 * keeps (format, damage, records appended per change, compaction, crashes
 * between its steps, atomic rewrites, mode) and concurrent use.
 *
 * Each test gets a fresh directory; warnings go to a log file in it so the
 * tests can check what was reported.  Hash cost 1 keeps them fast.  Races
 * are staged by holding one thread inside crypt_r() (crypt_probe.h) while
 * the test changes the store under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "crypt_probe.h"
#include "ident.h"
#include "log.h"
#include "password.h"

#define COST 1
#define VERSION_LINE "chatd-ident 1\n"
#define BIG_STORE 10000
/* The longest record: '+', name, ':', hash, LF, NUL. */
#define RECORD_LEN (NAME_MAX_LEN + PASSWORD_HASH_MAX + 4)

struct fixture {
	char dir[64];
	char path[96];
	char tmp[112];
	char copy[112], copy_tmp[120];
	char log[96];
	struct ident *id;
	bool fsize_limited, nofile_limited;
	struct rlimit fsize, nofile; /* to restore even when a test fails */
};

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	FILE *mem;
	int c;

	if (f == NULL)
		return NULL;
	mem = open_memstream(&buf, &len);
	assert_non_null(mem);
	while ((c = getc(f)) != EOF)
		putc(c, mem);
	fclose(mem);
	fclose(f);
	return buf;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/test_ident.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/ident", fx->dir);
	snprintf(fx->tmp, sizeof(fx->tmp), "%s.tmp", fx->path);
	snprintf(fx->copy, sizeof(fx->copy), "%s/copy", fx->dir);
	snprintf(fx->copy_tmp, sizeof(fx->copy_tmp), "%s.tmp", fx->copy);
	snprintf(fx->log, sizeof(fx->log), "%s/log", fx->dir);
	if (log_open(fx->log) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	probe_disarm();
	if (fx->fsize_limited) {
		setrlimit(RLIMIT_FSIZE, &fx->fsize);
		signal(SIGXFSZ, SIG_DFL);
	}
	if (fx->nofile_limited)
		setrlimit(RLIMIT_NOFILE, &fx->nofile);
	ident_close(fx->id);
	log_close();
	unlink(fx->path);
	rmdir(fx->tmp);
	unlink(fx->tmp);
	unlink(fx->copy);
	unlink(fx->copy_tmp);
	unlink(fx->log);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static struct ident *
open_ok(struct fixture *fx)
{
	char err[256] = "";
	struct ident *id = ident_open(fx->path, err, sizeof(err));

	if (id == NULL)
		fail_msg("ident_open: %s", err);
	return id;
}

static void
reopen(struct fixture *fx)
{
	ident_close(fx->id);
	fx->id = open_ok(fx);
}

/*
 * The hash the file gives name, replaying it as docs/FILES.md says (base
 * lines, then "+NAME:HASH" and "-NAME" records), or "" if none.
 */
static void
file_hash(const struct fixture *fx, const char *name, char hash[PASSWORD_HASH_MAX])
{
	char *text = read_file(fx->path);
	char *line, *save = NULL;
	size_t nlen = strlen(name);

	assert_non_null(text);
	hash[0] = '\0';
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		const char *p = line + (line[0] == '+' || line[0] == '-');

		if (strncasecmp(p, name, nlen) != 0)
			continue;
		if (line[0] == '-' && p[nlen] == '\0')
			hash[0] = '\0';
		else if (line[0] != '-' && p[nlen] == ':') {
			assert_true(strlen(p + nlen + 1) < PASSWORD_HASH_MAX);
			strcpy(hash, p + nlen + 1);
		}
	}
	free(text);
}

static off_t
file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static ino_t
file_inode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

static void
append_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
assert_mode_0600(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static bool
log_contains(const struct fixture *fx, const char *what)
{
	char *text = read_file(fx->log);
	bool found = text != NULL && strstr(text, what) != NULL;

	free(text);
	return found;
}

static void
test_missing_file_is_empty_store(void **state)
{
	struct fixture *fx = *state;

	fx->id = open_ok(fx);
	assert_int_equal(ident_count(fx->id), 0);
	assert_int_equal(access(fx->path, F_OK), -1);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(access(fx->path, F_OK), 0);
}

static void
test_register_lookup_ignores_case(void **state)
{
	struct fixture *fx = *state;
	char canon[NAME_MAX_LEN + 1];

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "Alice", "pw", COST, NULL), IDENT_OK);
	assert_true(ident_lookup(fx->id, "alice", canon));
	assert_string_equal(canon, "Alice");
	assert_true(ident_lookup(fx->id, "ALICE", canon));
	assert_string_equal(canon, "Alice");
	assert_true(ident_lookup(fx->id, "Alice", NULL));
	assert_false(ident_lookup(fx->id, "bob", canon));
	assert_false(ident_lookup(fx->id, "alic", canon));
	assert_int_equal(ident_register(fx->id, "aLICE", "other", COST, NULL), IDENT_EXISTS);
	assert_int_equal(ident_count(fx->id), 1);
}

static void
test_invalid_input(void **state)
{
	struct fixture *fx = *state;
	char longpw[PASSWORD_MAX_LEN + 2];
	char longname[NAME_MAX_LEN + 2];

	memset(longpw, 'p', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "", "pw", COST, NULL), IDENT_INVALID);
	assert_int_equal(ident_register(fx->id, "a:b", "pw", COST, NULL), IDENT_INVALID);
	assert_int_equal(ident_register(fx->id, "-x", "pw", COST, NULL), IDENT_INVALID);
	assert_int_equal(ident_register(fx->id, longname, "pw", COST, NULL), IDENT_INVALID);
	assert_int_equal(ident_register(fx->id, NULL, "pw", COST, NULL), IDENT_INVALID);
	assert_int_equal(ident_register(fx->id, "alice", longpw, COST, NULL), IDENT_INVALID);
	assert_int_equal(ident_register(fx->id, "alice", "pw", 0, NULL), IDENT_INVALID);
	assert_int_equal(ident_count(fx->id), 0);
	assert_int_equal(access(fx->path, F_OK), -1);

	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	assert_false(ident_lookup(fx->id, longname, NULL));
	assert_int_equal(ident_verify(fx->id, longname, "pw", COST, NULL, NULL), IDENT_UNKNOWN);
	assert_int_equal(ident_verify(fx->id, "alice", longpw, COST, NULL, NULL),
			 IDENT_BAD_PASSWORD);
	assert_int_equal(ident_set_password(fx->id, "alice", longpw, COST, 0), IDENT_INVALID);
	assert_int_equal(ident_verify(fx->id, "alice", "pw", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_delete(fx->id, "a:b"), IDENT_UNKNOWN);
}

static void
test_verify(void **state)
{
	struct fixture *fx = *state;
	char canon[NAME_MAX_LEN + 1] = "";

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "Alice", "s3cret", COST, NULL), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "aLiCe", "s3cret", COST, canon, NULL), IDENT_OK);
	assert_string_equal(canon, "Alice");
	assert_int_equal(ident_verify(fx->id, "alice", "S3cret", COST, canon, NULL),
			 IDENT_BAD_PASSWORD);
	assert_int_equal(ident_verify(fx->id, "alice", "", COST, canon, NULL), IDENT_BAD_PASSWORD);
	assert_int_equal(ident_verify(fx->id, "bob", "s3cret", COST, canon, NULL), IDENT_UNKNOWN);
}

static void
test_rehash_on_cost_change(void **state)
{
	struct fixture *fx = *state;
	char before[PASSWORD_HASH_MAX], after[PASSWORD_HASH_MAX];

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", 1, NULL), IDENT_OK);
	file_hash(fx, "alice", before);
	assert_true(strncmp(before, "$y$j75$", 7) == 0);

	/* Same cost: nothing to do, the file keeps the hash. */
	assert_int_equal(ident_verify(fx->id, "alice", "pw", 1, NULL, NULL), IDENT_OK);
	file_hash(fx, "alice", after);
	assert_string_equal(after, before);

	/* A wrong password never triggers a rehash. */
	assert_int_equal(ident_verify(fx->id, "alice", "bad", 2, NULL, NULL), IDENT_BAD_PASSWORD);
	file_hash(fx, "alice", after);
	assert_string_equal(after, before);

	assert_int_equal(ident_verify(fx->id, "alice", "pw", 2, NULL, NULL), IDENT_OK);
	file_hash(fx, "alice", after);
	assert_true(strncmp(after, "$y$j85$", 7) == 0);
	assert_false(password_needs_rehash(after, 2));

	reopen(fx);
	assert_int_equal(ident_verify(fx->id, "alice", "pw", 2, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "alice", "bad", 2, NULL, NULL), IDENT_BAD_PASSWORD);
}

static void
test_set_password(void **state)
{
	struct fixture *fx = *state;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "old", COST, NULL), IDENT_OK);
	assert_int_equal(ident_set_password(fx->id, "ALICE", "new", COST, 0), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "alice", "old", COST, NULL, NULL),
			 IDENT_BAD_PASSWORD);
	assert_int_equal(ident_verify(fx->id, "alice", "new", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_set_password(fx->id, "bob", "new", COST, 0), IDENT_UNKNOWN);

	reopen(fx);
	assert_int_equal(ident_verify(fx->id, "alice", "new", COST, NULL, NULL), IDENT_OK);
}

static void
test_delete(void **state)
{
	struct fixture *fx = *state;
	char hash[PASSWORD_HASH_MAX];

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "bob", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(ident_delete(fx->id, "ALICE"), IDENT_OK);
	assert_false(ident_lookup(fx->id, "alice", NULL));
	assert_int_equal(ident_verify(fx->id, "alice", "pw", COST, NULL, NULL), IDENT_UNKNOWN);
	assert_int_equal(ident_delete(fx->id, "alice"), IDENT_UNKNOWN);
	file_hash(fx, "alice", hash);
	assert_string_equal(hash, "");
	file_hash(fx, "bob", hash);
	assert_true(hash[0] == '$');

	reopen(fx);
	assert_int_equal(ident_count(fx->id), 1);
	assert_true(ident_lookup(fx->id, "bob", NULL));
}

static void
test_clear(void **state)
{
	struct fixture *fx = *state;
	char *text;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "bob", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(ident_clear(fx->id), IDENT_OK);
	assert_int_equal(ident_count(fx->id), 0);
	assert_false(ident_lookup(fx->id, "alice", NULL));
	text = read_file(fx->path);
	assert_non_null(text);
	assert_string_equal(text, VERSION_LINE);
	free(text);

	assert_int_equal(ident_register(fx->id, "alice", "new", COST, NULL), IDENT_OK);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 1);
	assert_int_equal(ident_verify(fx->id, "alice", "new", COST, NULL, NULL), IDENT_OK);
}

static void
collect(void *ctx, const char *name)
{
	FILE *out = ctx;

	fprintf(out, "%s,", name);
}

static void
test_persistence_and_order(void **state)
{
	struct fixture *fx = *state;
	char canon[NAME_MAX_LEN + 1];
	char *names;
	size_t len;
	FILE *out;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "carol", "c", COST, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "Alice", "a", COST, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "bob", "b", COST, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "_x", "x", COST, NULL), IDENT_INVALID);
	assert_int_equal(ident_register(fx->id, "0day", "z", COST, NULL), IDENT_OK);
	reopen(fx);

	assert_int_equal(ident_count(fx->id), 4);
	assert_int_equal(ident_verify(fx->id, "alice", "a", COST, canon, NULL), IDENT_OK);
	assert_string_equal(canon, "Alice");
	assert_int_equal(ident_verify(fx->id, "BOB", "b", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "carol", "b", COST, NULL, NULL), IDENT_BAD_PASSWORD);

	out = open_memstream(&names, &len);
	assert_non_null(out);
	ident_foreach(fx->id, collect, out);
	fclose(out);
	assert_string_equal(names, "0day,Alice,bob,carol,");
	free(names);
}

static void
test_damaged_lines_skipped(void **state)
{
	struct fixture *fx = *state;
	char good[PASSWORD_HASH_MAX], longhash[PASSWORD_HASH_MAX + 8];
	char *text;

	assert_int_equal(password_hash("pw", COST, good), 0);
	memset(longhash, 'a', sizeof(longhash) - 1);
	longhash[0] = '$';
	longhash[sizeof(longhash) - 1] = '\0';
	/* clang-format off */
	assert_int_equal(asprintf(&text,
	    VERSION_LINE
	    "alice:%s\n"		/* 2 */
	    "no colon here\n"		/* 3 */
	    "bad name:%s\n"		/* 4 */
	    "carol:nodollar\n"		/* 5 */
	    "dave:%s\n"			/* 6: hash too long */
	    "ALICE:%s\n"		/* 7: duplicate */
	    "\n"			/* 8 */
	    "erin:\n"			/* 9 */
	    "frank:%s\n",		/* 10 */
	    good, good, longhash, good, good) > 0, 1);
	/* clang-format on */
	write_file(fx->path, text);
	free(text);

	fx->id = open_ok(fx);
	assert_int_equal(ident_count(fx->id), 2);
	assert_int_equal(ident_verify(fx->id, "alice", "pw", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "frank", "pw", COST, NULL, NULL), IDENT_OK);
	assert_false(ident_lookup(fx->id, "carol", NULL));
	assert_false(ident_lookup(fx->id, "dave", NULL));
	assert_false(ident_lookup(fx->id, "erin", NULL));
	for (int line = 3; line <= 9; line++) {
		char where[128];

		snprintf(where, sizeof(where), "%s:%d: ", fx->path, line);
		if (!log_contains(fx, where))
			fail_msg("no warning for line %d", line);
	}
	assert_false(log_contains(fx, "ident:2:"));
	assert_false(log_contains(fx, "ident:10:"));

	/* The next write keeps the good entries and drops the damage. */
	assert_int_equal(ident_delete(fx->id, "frank"), IDENT_OK);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 1);
	assert_int_equal(ident_verify(fx->id, "ALICE", "pw", COST, NULL, NULL), IDENT_OK);
}

static void
test_torn_last_line(void **state)
{
	struct fixture *fx = *state;
	char good[PASSWORD_HASH_MAX];
	char *text;

	assert_int_equal(password_hash("pw", COST, good), 0);
	assert_int_equal(asprintf(&text, VERSION_LINE "alice:%s\nbob:%s", good, good) > 0, 1);
	write_file(fx->path, text);
	free(text);

	fx->id = open_ok(fx);
	assert_int_equal(ident_count(fx->id), 1);
	assert_true(ident_lookup(fx->id, "alice", NULL));
	assert_false(ident_lookup(fx->id, "bob", NULL));
	assert_true(log_contains(fx, "ident:3: "));

	assert_int_equal(ident_register(fx->id, "bob", "new", COST, NULL), IDENT_OK);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 2);
	assert_int_equal(ident_verify(fx->id, "bob", "new", COST, NULL, NULL), IDENT_OK);
}

static void
assert_refused(struct fixture *fx, const char *contents)
{
	char err[256] = "", want[256];

	write_file(fx->path, contents);
	assert_null(ident_open(fx->path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: unknown format (expected 'chatd-ident 1')", fx->path);
	assert_string_equal(err, want);
}

static void
test_unknown_version_refused(void **state)
{
	struct fixture *fx = *state;

	assert_refused(fx, "chatd-ident 2\nalice:$y$x\n");
	assert_refused(fx, "alice:$y$x\n");
	assert_refused(fx, "");
	assert_refused(fx, "chatd-ident 1");
	assert_refused(fx, "chatd-ident 1 \n");
}

static void
test_unreadable_path_refused(void **state)
{
	struct fixture *fx = *state;
	char err[256] = "";

	assert_int_equal(mkdir(fx->tmp, 0700), 0);
	assert_null(ident_open(fx->tmp, err, sizeof(err)));
	assert_non_null(strstr(err, fx->tmp));
}

/*
 * The file is read as chatd's other files are: what server.c's check saw at start-up may
 * have been swapped since, and a FIFO must not hang the start (an alarm fails the test if it
 * does), nor a hard link be read as ours.
 */
static void
test_fifo_or_hard_link_refused(void **state)
{
	struct fixture *fx = *state;
	char err[256] = "";

	assert_int_equal(mkfifo(fx->path, 0600), 0);
	alarm(10);
	assert_null(ident_open(fx->path, err, sizeof(err)));
	alarm(0);
	assert_non_null(strstr(err, fx->path));
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(unlink(fx->path), 0);

	assert_int_equal(symlink(fx->copy, fx->path), 0);
	write_file(fx->copy, VERSION_LINE);
	assert_null(ident_open(fx->path, err, sizeof(err)));
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(unlink(fx->path), 0);

	assert_int_equal(link(fx->copy, fx->path), 0);
	assert_null(ident_open(fx->path, err, sizeof(err)));
	assert_non_null(strstr(err, "hard links"));
}

static void
test_mode_0600(void **state)
{
	struct fixture *fx = *state;
	mode_t old = umask(0);

	write_file(fx->path, VERSION_LINE);
	assert_int_equal(chmod(fx->path, 0644), 0);
	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	assert_mode_0600(fx->path);

	/* Appends keep the mode; a mode changed meanwhile makes the change a rewrite. */
	assert_int_equal(ident_set_password(fx->id, "alice", "new", COST, 0), IDENT_OK);
	assert_mode_0600(fx->path);
	assert_int_equal(chmod(fx->path, 0640), 0);
	assert_int_equal(ident_register(fx->id, "bob", "pw", COST, NULL), IDENT_OK);
	assert_mode_0600(fx->path);

	/* A leftover temp file with a loose mode must not leak its mode into a rewrite. */
	write_file(fx->tmp, "junk");
	assert_int_equal(chmod(fx->tmp, 0666), 0);
	assert_int_equal(ident_clear(fx->id), IDENT_OK);
	assert_mode_0600(fx->path);
	assert_int_equal(access(fx->tmp, F_OK), -1);
	umask(old);
}

/*
 * Every kind of change fails and leaves both memory and file as they were.
 * A descriptor limit is lifted once the changes were tried.
 */
static void
assert_changes_fail(struct fixture *fx, const char *before)
{
	char *after;

	assert_int_equal(ident_register(fx->id, "bob", "pw", COST, NULL), IDENT_IO_ERROR);
	assert_int_equal(ident_set_password(fx->id, "alice", "new", COST, 0), IDENT_IO_ERROR);
	assert_int_equal(ident_delete(fx->id, "alice"), IDENT_IO_ERROR);
	assert_int_equal(ident_clear(fx->id), IDENT_IO_ERROR);
	/* A failed rehash still lets the user in. */
	assert_int_equal(ident_verify(fx->id, "alice", "pw", COST + 1, NULL, NULL), IDENT_OK);
	if (fx->nofile_limited) {
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &fx->nofile), 0);
		fx->nofile_limited = false;
	}

	assert_int_equal(ident_count(fx->id), 1);
	assert_false(ident_lookup(fx->id, "bob", NULL));
	assert_int_equal(ident_verify(fx->id, "alice", "new", COST, NULL, NULL),
			 IDENT_BAD_PASSWORD);
	assert_int_equal(ident_verify(fx->id, "alice", "pw", COST, NULL, NULL), IDENT_OK);
	after = read_file(fx->path);
	assert_non_null(after);
	assert_string_equal(after, before);
	free(after);
}

static void
test_failed_open_changes_nothing(void **state)
{
	struct fixture *fx = *state;
	struct rlimit none;
	char *before;
	int lowest;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	before = read_file(fx->path);
	assert_non_null(before);

	/* No descriptor left: nothing can be opened, not even for an append. */
	lowest = dup(0);
	assert_true(lowest >= 0);
	close(lowest);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &fx->nofile), 0);
	none = fx->nofile;
	none.rlim_cur = (rlim_t)lowest;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
	fx->nofile_limited = true;
	assert_changes_fail(fx, before); /* lifts the limit before it reads the file */

	/* A temp file that cannot be opened fails the rewrites; appends go on. */
	assert_int_equal(mkdir(fx->tmp, 0700), 0);
	assert_int_equal(ident_clear(fx->id), IDENT_IO_ERROR);
	assert_int_equal(ident_count(fx->id), 1);
	assert_int_equal(ident_register(fx->id, "bob", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(rmdir(fx->tmp), 0);
	free(before);

	reopen(fx);
	assert_int_equal(ident_count(fx->id), 2);
}

static void
test_failed_write_changes_nothing(void **state)
{
	struct fixture *fx = *state;
	struct rlimit tiny;
	char *before;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	before = read_file(fx->path);
	assert_non_null(before);

	/* Even root cannot write past RLIMIT_FSIZE: the temp file's write fails. */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &fx->fsize), 0);
	tiny = fx->fsize;
	tiny.rlim_cur = strlen(VERSION_LINE) / 2;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
	fx->fsize_limited = true;
	assert_changes_fail(fx, before);
	assert_int_equal(access(fx->tmp, F_OK), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &fx->fsize), 0);
	fx->fsize_limited = false;
	signal(SIGXFSZ, SIG_DFL);
	free(before);

	assert_int_equal(ident_register(fx->id, "bob", "pw", COST, NULL), IDENT_OK);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 2);
}

static void
test_big_store(void **state)
{
	struct fixture *fx = *state;
	char hash[PASSWORD_HASH_MAX], canon[NAME_MAX_LEN + 1], name[NAME_MAX_LEN + 1];
	FILE *f;

	assert_int_equal(password_hash("pw", COST, hash), 0);
	f = fopen(fx->path, "w");
	assert_non_null(f);
	fputs(VERSION_LINE, f);
	for (int i = 0; i < BIG_STORE; i++)
		fprintf(f, "User%05d:%s\n", i, hash);
	assert_int_equal(fclose(f), 0);

	fx->id = open_ok(fx);
	assert_int_equal(ident_count(fx->id), BIG_STORE);
	for (int i = 0; i < BIG_STORE; i += 7) {
		snprintf(name, sizeof(name), "uSER%05d", i);
		assert_true(ident_lookup(fx->id, name, canon));
		snprintf(name, sizeof(name), "User%05d", i);
		assert_string_equal(canon, name);
	}
	assert_false(ident_lookup(fx->id, "User10000", NULL));
	assert_int_equal(ident_verify(fx->id, "user04242", "pw", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "Aardvark", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(ident_delete(fx->id, "user00000"), IDENT_OK);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), BIG_STORE);
	assert_true(ident_lookup(fx->id, "aardvark", NULL));
	assert_false(ident_lookup(fx->id, "User00000", NULL));
}

/* The journal: one record per change, replayed at load, folded by compaction. */

/* Bytes this process passed to write() so far (/proc/self/io, "wchar"). */
static unsigned long long
bytes_written(void)
{
	char *text = read_file("/proc/self/io");
	const char *p;
	unsigned long long n;

	assert_non_null(text);
	p = strstr(text, "wchar: ");
	assert_non_null(p);
	n = strtoull(p + strlen("wchar: "), NULL, 10);
	free(text);
	return n;
}

static void
test_registration_appends_one_record(void **state)
{
	struct fixture *fx = *state;
	char hash[PASSWORD_HASH_MAX], record[RECORD_LEN];
	char *before, *after;
	ino_t inode;
	off_t size;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	inode = file_inode(fx->path);
	size = file_size(fx->path);
	before = read_file(fx->path);
	assert_non_null(before);

	/* The base is not rewritten: same inode, the old bytes, one record after them. */
	assert_int_equal(ident_register(fx->id, "Bob", "pw", COST, NULL), IDENT_OK);
	file_hash(fx, "bob", hash);
	snprintf(record, sizeof(record), "+Bob:%s\n", hash);
	assert_int_equal(file_inode(fx->path), inode);
	assert_int_equal(file_size(fx->path), size + (off_t)strlen(record));
	after = read_file(fx->path);
	assert_non_null(after);
	assert_memory_equal(after, before, strlen(before));
	assert_string_equal(after + strlen(before), record);
	free(after);

	/* A password change and a deletion: one record each. */
	assert_int_equal(ident_set_password(fx->id, "ALICE", "new", COST, 0), IDENT_OK);
	file_hash(fx, "alice", hash);
	assert_int_equal(ident_delete(fx->id, "bob"), IDENT_OK);
	after = read_file(fx->path);
	assert_non_null(after);
	snprintf(record, sizeof(record), "+alice:%s\n-Bob\n", hash);
	assert_true(strlen(after) > strlen(record));
	assert_string_equal(after + strlen(after) - strlen(record), record);
	assert_memory_equal(after, before, strlen(before));
	free(after);
	free(before);
	assert_int_equal(file_inode(fx->path), inode);
	assert_mode_0600(fx->path);
}

/* At BIG_STORE users a registration writes one record, not the whole store. */
static void
test_registration_cost_does_not_grow(void **state)
{
	struct fixture *fx = *state;
	char hash[PASSWORD_HASH_MAX];
	unsigned long long before, written;
	off_t size;
	FILE *f;

	assert_int_equal(password_hash("pw", COST, hash), 0);
	f = fopen(fx->path, "w");
	assert_non_null(f);
	fputs(VERSION_LINE, f);
	for (int i = 0; i < BIG_STORE; i++)
		fprintf(f, "User%05d:%s\n", i, hash);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(fx->path, 0600), 0); /* or the first change fixes it */
	size = file_size(fx->path);

	fx->id = open_ok(fx);
	before = bytes_written();
	assert_int_equal(ident_register(fx->id, "Aardvark", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(ident_set_password(fx->id, "user00001", "new", COST, 0), IDENT_OK);
	assert_int_equal(ident_delete(fx->id, "user00002"), IDENT_OK);
	written = bytes_written() - before;
	if (written > 3 * RECORD_LEN)
		fail_msg("3 changes at %d users wrote %llu bytes (the file has %lld)", BIG_STORE,
			 written, (long long)size);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), BIG_STORE);
	assert_int_equal(ident_verify(fx->id, "aardvark", "pw", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "user00001", "new", COST, NULL, NULL), IDENT_OK);
	assert_false(ident_lookup(fx->id, "user00002", NULL));
}

static void
test_reload_replays_records(void **state)
{
	struct fixture *fx = *state;
	char canon[NAME_MAX_LEN + 1];
	char *text;
	ino_t inode;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "carol", "c", COST, NULL), IDENT_OK);
	inode = file_inode(fx->path);
	assert_int_equal(ident_register(fx->id, "alice", "a", COST, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "bob", "b", COST, NULL), IDENT_OK);
	assert_int_equal(ident_set_password(fx->id, "bob", "b2", COST, 0), IDENT_OK);
	assert_int_equal(ident_delete(fx->id, "alice"), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "ALICE", "a2", COST, NULL), IDENT_OK);
	assert_int_equal(ident_delete(fx->id, "carol"), IDENT_OK);
	assert_int_equal(file_inode(fx->path), inode);
	text = read_file(fx->path);
	assert_non_null(text);
	assert_non_null(strstr(text, "\n-alice\n+ALICE:$"));
	free(text);

	/* Base, then records in order; the restart folds them into a new base. */
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 2);
	assert_int_equal(ident_verify(fx->id, "alice", "a2", COST, canon, NULL), IDENT_OK);
	assert_string_equal(canon, "ALICE");
	assert_int_equal(ident_verify(fx->id, "bob", "b2", COST, NULL, NULL), IDENT_OK);
	assert_false(ident_lookup(fx->id, "carol", NULL));
	assert_true(log_contains(fx, "6 changes folded into the file"));
	assert_true(file_inode(fx->path) != inode);
	text = read_file(fx->path);
	assert_non_null(text);
	assert_int_equal(strncmp(text, VERSION_LINE "ALICE:$", strlen(VERSION_LINE) + 7), 0);
	assert_null(strchr(text, '+'));
	assert_null(strstr(text, "\n-"));
	free(text);
	assert_false(log_contains(fx, "line skipped"));
}

/* A crash in the middle of an append: the piece is dropped, the next change starts clean. */
static void
test_torn_record_cut_off(void **state)
{
	struct fixture *fx = *state;
	char *text;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "a", COST, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "bob", "b", COST, NULL), IDENT_OK);
	ident_close(fx->id);
	fx->id = NULL;
	append_file(fx->path, "+carol:$y$j75$abc");

	fx->id = open_ok(fx);
	assert_int_equal(ident_count(fx->id), 2);
	assert_false(ident_lookup(fx->id, "carol", NULL));
	assert_true(log_contains(fx, "ident:4: last line cut short"));
	text = read_file(fx->path);
	assert_non_null(text);
	assert_null(strstr(text, "carol"));
	assert_int_equal(text[strlen(text) - 1], '\n');
	free(text);

	assert_int_equal(ident_register(fx->id, "carol", "c", COST, NULL), IDENT_OK);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 3);
	assert_int_equal(ident_verify(fx->id, "carol", "c", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "bob", "b", COST, NULL, NULL), IDENT_OK);
}

/* Damaged records are skipped with a warning; the ones around them count. */
static void
test_damaged_records_skipped(void **state)
{
	struct fixture *fx = *state;
	char good[PASSWORD_HASH_MAX];
	char *text;

	assert_int_equal(password_hash("pw", COST, good), 0);
	/* clang-format off */
	assert_int_equal(asprintf(&text,
	    VERSION_LINE
	    "alice:%s\n"		/* 2 */
	    "+bob:%s\n"			/* 3 */
	    "+bad name:%s\n"		/* 4 */
	    "-nobody\n"			/* 5: not registered */
	    "-\n"			/* 6 */
	    "+carol:nodollar\n"		/* 7 */
	    "-a:b\n"			/* 8 */
	    "+\n"			/* 9 */
	    "-ALICE\n"			/* 10 */
	    "+Dave:%s\n",		/* 11 */
	    good, good, good, good) > 0, 1);
	/* clang-format on */
	write_file(fx->path, text);
	free(text);

	fx->id = open_ok(fx);
	assert_int_equal(ident_count(fx->id), 2);
	assert_false(ident_lookup(fx->id, "alice", NULL));
	assert_int_equal(ident_verify(fx->id, "bob", "pw", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "dave", "pw", COST, NULL, NULL), IDENT_OK);
	for (int line = 4; line <= 9; line++) {
		char where[128];

		snprintf(where, sizeof(where), "%s:%d: ", fx->path, line);
		if (!log_contains(fx, where))
			fail_msg("no warning for line %d", line);
	}
	assert_false(log_contains(fx, "ident:3:"));
	assert_false(log_contains(fx, "ident:10:"));
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 2);
}

/* Records make a compaction once they outgrow the base; the file stays bounded. */
static void
test_compaction_bounds_the_file(void **state)
{
	struct fixture *fx = *state;
	char name[NAME_MAX_LEN + 1], *text;
	ino_t inode;
	off_t base;
	int compactions = 0;

	/* 8 users make a base of about 700 bytes, a record is about 90: a compaction every ~8. */

	fx->id = open_ok(fx);
	ident_set_journal_min(fx->id, 0);
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "base%d", i);
		assert_int_equal(ident_register(fx->id, name, "pw", COST, NULL), IDENT_OK);
	}
	inode = file_inode(fx->path);
	base = file_size(fx->path);
	for (int i = 0; i < 40; i++) {
		off_t size;

		snprintf(name, sizeof(name), "user%02d", i);
		if (i % 2 == 0)
			assert_int_equal(ident_register(fx->id, name, "pw", COST, NULL), IDENT_OK);
		else
			assert_int_equal(ident_set_password(fx->id, "base0", name, COST, 0),
					 IDENT_OK);
		size = file_size(fx->path);
		if (file_inode(fx->path) != inode) {
			/* A compaction: the change is in the new base, no record left. */
			compactions++;
			inode = file_inode(fx->path);
			base = size;
			text = read_file(fx->path);
			assert_non_null(text);
			assert_null(strchr(text, '+'));
			free(text);
		}
		/* Records never take more than the base's size. */
		if (size > 2 * base)
			fail_msg("file of %lld bytes after a base of %lld", (long long)size,
				 (long long)base);
	}
	assert_true(compactions >= 2);
	assert_mode_0600(fx->path);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 28);
	assert_int_equal(ident_verify(fx->id, "base0", "user39", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "user38", "pw", COST, NULL, NULL), IDENT_OK);
	assert_int_equal(ident_verify(fx->id, "user00", "pw", COST, NULL, NULL), IDENT_OK);
}

/*
 * A crash during a compaction leaves PATH.tmp in some state next to PATH
 * (records and all) or the renamed new file.  Each state must load to the
 * same users: the temp file is never read, PATH is the one truth.
 */
static void
test_crash_between_compaction_steps(void **state)
{
	struct fixture *fx = *state;
	char *journal, *compacted, *old;
	const char *tmp_states[4];

	/* The state before the compaction: a base plus records. */
	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "a", COST, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "bob", "b", COST, NULL), IDENT_OK);
	old = read_file(fx->path); /* a temp file a much older compaction left */
	assert_int_equal(ident_register(fx->id, "carol", "c", COST, NULL), IDENT_OK);
	assert_int_equal(ident_delete(fx->id, "alice"), IDENT_OK);
	assert_int_equal(ident_set_password(fx->id, "bob", "b2", COST, 0), IDENT_OK);
	journal = read_file(fx->path);
	assert_non_null(journal);
	/* The state after: what the compaction writes (reopen folds the records). */
	reopen(fx);
	compacted = read_file(fx->path);
	assert_non_null(compacted);
	assert_null(strchr(compacted, '+'));
	ident_close(fx->id);
	fx->id = NULL;

	/* Temp file: being written (empty, torn), written but not renamed, stale. */
	tmp_states[0] = "";
	tmp_states[1] = VERSION_LINE "bob:$y$j7";
	tmp_states[2] = compacted;
	tmp_states[3] = old;
	for (int i = 0; i < 5; i++) {
		/* i == 4: renamed, the directory not yet synced: only the new file. */
		write_file(fx->path, i < 4 ? journal : compacted);
		assert_int_equal(chmod(fx->path, 0600), 0);
		if (i < 4)
			write_file(fx->tmp, tmp_states[i]);
		fx->id = open_ok(fx);
		assert_int_equal(ident_count(fx->id), 2);
		assert_false(ident_lookup(fx->id, "alice", NULL));
		assert_int_equal(ident_verify(fx->id, "bob", "b2", COST, NULL, NULL), IDENT_OK);
		assert_int_equal(ident_verify(fx->id, "carol", "c", COST, NULL, NULL), IDENT_OK);
		/* What the crashed compaction left does not stand in the way of the next. */
		assert_int_equal(ident_register(fx->id, "dave", "d", COST, NULL), IDENT_OK);
		reopen(fx);
		assert_int_equal(ident_count(fx->id), 3);
		assert_false(ident_lookup(fx->id, "alice", NULL));
		assert_int_equal(access(fx->tmp, F_OK), -1);
		ident_close(fx->id);
		fx->id = NULL;
	}
	free(old);
	free(journal);
	free(compacted);
}

/* A file replaced or edited while chatd runs is rewritten from memory, not appended to. */
static void
test_file_changed_behind_our_back(void **state)
{
	struct fixture *fx = *state;
	char *text;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "a", COST, NULL), IDENT_OK);

	/* Replaced (an editor's save): appending would write to the old, unlinked file. */
	write_file(fx->tmp, VERSION_LINE);
	assert_int_equal(chmod(fx->tmp, 0600), 0);
	assert_int_equal(rename(fx->tmp, fx->path), 0);
	assert_int_equal(ident_register(fx->id, "bob", "b", COST, NULL), IDENT_OK);
	assert_true(log_contains(fx, "not as chatd left it"));
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 2);

	/* Cut short in place: an append would glue onto the piece left. */
	assert_int_equal(truncate(fx->path, file_size(fx->path) - 5), 0);
	assert_int_equal(ident_register(fx->id, "carol", "c", COST, NULL), IDENT_OK);
	text = read_file(fx->path);
	assert_non_null(text);
	assert_null(strchr(text, '+'));
	free(text);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 3);
	assert_int_equal(ident_verify(fx->id, "alice", "a", COST, NULL, NULL), IDENT_OK);
	assert_false(log_contains(fx, "line skipped"));
}

/* An append that fails is cut back off; the next change appends again. */
static void
test_failed_append_cut_back(void **state)
{
	struct fixture *fx = *state;
	struct rlimit small;
	char *before, *after;
	ino_t inode;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	inode = file_inode(fx->path);
	before = read_file(fx->path);
	assert_non_null(before);

	/* Room for part of a record only: the write is short, then fails. */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &fx->fsize), 0);
	small = fx->fsize;
	small.rlim_cur = (rlim_t)file_size(fx->path) + 10;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	fx->fsize_limited = true;
	assert_int_equal(ident_register(fx->id, "bob", "pw", COST, NULL), IDENT_IO_ERROR);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &fx->fsize), 0);
	fx->fsize_limited = false;
	signal(SIGXFSZ, SIG_DFL);
	after = read_file(fx->path);
	assert_non_null(after);
	assert_string_equal(after, before);
	free(after);
	free(before);
	assert_false(ident_lookup(fx->id, "bob", NULL));

	assert_int_equal(ident_register(fx->id, "bob", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(file_inode(fx->path), inode);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 2);
	assert_false(log_contains(fx, "line skipped"));
}

static void
test_result_str(void **state)
{
	for (int r = IDENT_OK; r <= IDENT_INVALID; r++) {
		assert_non_null(ident_result_str(r));
		for (int s = IDENT_OK; s < r; s++)
			assert_string_not_equal(ident_result_str(r), ident_result_str(s));
	}
}

/* Concurrency: work done outside the lock meets changes made meanwhile. */

struct slow_call {
	struct ident *id;
	const char *name, *password;
	int cost;
	enum ident_result r;
};

static void *
verify_thread(void *arg)
{
	struct slow_call *c = arg;

	c->r = ident_verify(c->id, c->name, c->password, c->cost, NULL, NULL);
	return NULL;
}

static void *
set_password_thread(void *arg)
{
	struct slow_call *c = arg;

	c->r = ident_set_password(c->id, c->name, c->password, c->cost, 0);
	return NULL;
}

static void *
register_one_thread(void *arg)
{
	struct slow_call *c = arg;

	c->r = ident_register(c->id, c->name, c->password, c->cost, NULL);
	return NULL;
}

/* Runs fn on c in a thread held inside crypt_r() while meanwhile() runs. */
static void
race_slow_call(void *(*fn)(void *), struct slow_call *c, void (*meanwhile)(struct ident *))
{
	pthread_t t;

	probe_arm(c->password);
	assert_int_equal(pthread_create(&t, NULL, fn, c), 0);
	probe_await_inside(1);
	meanwhile(c->id);
	probe_disarm();
	assert_int_equal(pthread_join(t, NULL), 0);
}

static void
change_alice_password(struct ident *id)
{
	assert_int_equal(ident_set_password(id, "alice", "new", COST, 0), IDENT_OK);
}

static void
test_rehash_loses_to_password_change(void **state)
{
	struct fixture *fx = *state;
	struct slow_call c = { .name = "alice", .password = "old", .cost = COST + 1 };

	fx->id = c.id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "old", COST, NULL), IDENT_OK);
	race_slow_call(verify_thread, &c, change_alice_password);
	assert_int_equal(c.r, IDENT_OK);

	/* The rehash of the old password must not undo the change. */
	reopen(fx);
	assert_int_equal(ident_verify(fx->id, "alice", "old", COST, NULL, NULL),
			 IDENT_BAD_PASSWORD);
	assert_int_equal(ident_verify(fx->id, "alice", "new", COST, NULL, NULL), IDENT_OK);
}

static void
reregister_alice(struct ident *id)
{
	assert_int_equal(ident_delete(id, "alice"), IDENT_OK);
	assert_int_equal(ident_register(id, "Alice", "fresh", COST, NULL), IDENT_OK);
}

static void
test_set_password_loses_to_reregistration(void **state)
{
	struct fixture *fx = *state;
	struct slow_call c = { .name = "alice", .password = "stale", .cost = COST };

	fx->id = c.id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "old", COST, NULL), IDENT_OK);
	race_slow_call(set_password_thread, &c, reregister_alice);
	assert_int_equal(c.r, IDENT_UNKNOWN);

	reopen(fx);
	assert_int_equal(ident_verify(fx->id, "alice", "stale", COST, NULL, NULL),
			 IDENT_BAD_PASSWORD);
	assert_int_equal(ident_verify(fx->id, "alice", "fresh", COST, NULL, NULL), IDENT_OK);
}

static void
clear_store(struct ident *id)
{
	assert_int_equal(ident_clear(id), IDENT_OK);
}

static void
test_registration_across_clear(void **state)
{
	struct fixture *fx = *state;
	struct slow_call c = { .name = "bob", .password = "b", .cost = COST };

	fx->id = c.id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "a", COST, NULL), IDENT_OK);
	race_slow_call(register_one_thread, &c, clear_store);
	assert_int_equal(c.r, IDENT_OK);

	/* bob lands in the cleared store; alice does not come back. */
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 1);
	assert_false(ident_lookup(fx->id, "alice", NULL));
	assert_int_equal(ident_verify(fx->id, "bob", "b", COST, NULL, NULL), IDENT_OK);
}

static void
delete_alice(struct ident *id)
{
	assert_int_equal(ident_delete(id, "alice"), IDENT_OK);
}

static void
test_rehash_does_not_resurrect(void **state)
{
	struct fixture *fx = *state;
	struct slow_call c = { .name = "alice", .password = "pw", .cost = COST + 1 };

	fx->id = c.id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	race_slow_call(verify_thread, &c, delete_alice);
	assert_int_equal(c.r, IDENT_OK);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 0);
}

/* Group commit: changes that wait while a batch is written share one write and sync. */

#define GC_THREADS 8

struct hold {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool inside, release;
};

/* Holds the store's lock (ident_foreach() calls it under the lock) until released. */
static void
hold_lock(void *ctx, const char *name)
{
	struct hold *h = ctx;

	(void)name;
	pthread_mutex_lock(&h->m);
	if (!h->inside) {
		h->inside = true;
		pthread_cond_broadcast(&h->c);
		while (!h->release)
			pthread_cond_wait(&h->c, &h->m);
	}
	pthread_mutex_unlock(&h->m);
}

static struct ident *gc_id;

static void *
hold_thread(void *arg)
{
	ident_foreach(gc_id, hold_lock, arg);
	return NULL;
}

static void *
gc_register_thread(void *arg)
{
	struct slow_call *c = arg;

	c->r = ident_register(c->id, c->name, c->password, c->cost, NULL);
	return NULL;
}

/*
 * Registers GC_THREADS names so that they all wait for their commit at once:
 * every thread is held inside its hash (past the check that the name is
 * free) while another holds the store's lock; then the hashes finish and
 * the registrations pile up behind the lock.  The file limit, if any, is
 * set just before the lock is let go.  Returns the writes (appends and
 * rewrites) they took.
 */
static unsigned long
register_piled_up(struct fixture *fx, struct slow_call *calls, struct rlimit *limit)
{
	struct hold h = { .inside = false };
	pthread_t holder, t[GC_THREADS];
	struct ident_stats st;
	unsigned long before;
	time_t deadline = time(NULL) + 30;

	pthread_mutex_init(&h.m, NULL);
	pthread_cond_init(&h.c, NULL);
	gc_id = fx->id;
	ident_get_stats(fx->id, &st);
	before = st.appends + st.rewrites;
	password_gate_destroy();
	assert_int_equal(password_gate_init(GC_THREADS), 0);
	probe_arm("pw");
	for (int i = 0; i < GC_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, gc_register_thread, &calls[i]), 0);
	probe_await_inside(GC_THREADS);

	assert_int_equal(pthread_create(&holder, NULL, hold_thread, &h), 0);
	pthread_mutex_lock(&h.m);
	while (!h.inside)
		pthread_cond_wait(&h.c, &h.m);
	pthread_mutex_unlock(&h.m);
	probe_disarm();
	/* Every registration hashed and is waiting for its commit. */
	do {
		ident_get_stats(fx->id, &st);
		if (time(NULL) > deadline)
			fail_msg("only %zu of %d registrations queued", st.waiting, GC_THREADS);
		sched_yield();
	} while (st.waiting < GC_THREADS);
	if (limit != NULL) {
		signal(SIGXFSZ, SIG_IGN);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, limit), 0);
		fx->fsize_limited = true;
	}

	pthread_mutex_lock(&h.m);
	h.release = true;
	pthread_cond_broadcast(&h.c);
	pthread_mutex_unlock(&h.m);
	for (int i = 0; i < GC_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(pthread_join(holder, NULL), 0);
	if (limit != NULL) {
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &fx->fsize), 0);
		fx->fsize_limited = false;
		signal(SIGXFSZ, SIG_DFL);
	}
	password_gate_destroy();
	assert_int_equal(password_gate_init(2), 0);
	pthread_mutex_destroy(&h.m);
	pthread_cond_destroy(&h.c);
	ident_get_stats(fx->id, &st);
	return st.appends + st.rewrites - before;
}

static void
test_group_commit(void **state)
{
	struct fixture *fx = *state;
	struct slow_call calls[GC_THREADS];
	char names[GC_THREADS][NAME_MAX_LEN + 1];
	unsigned long batches;
	int ok = 0, exists = 0;
	ino_t inode;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	inode = file_inode(fx->path);
	for (int i = 0; i < GC_THREADS; i++) {
		/* Two of them race for the same new name: one gets it, the other is told it is taken. */
		snprintf(names[i], sizeof(names[i]), i == GC_THREADS - 1 ? "user0" : "user%d", i);
		calls[i] = (struct slow_call){ .id = fx->id,
					       .name = names[i],
					       .password = "pw",
					       .cost = COST };
	}
	batches = register_piled_up(fx, calls, NULL);
	/* The first to come may commit alone; all the others wait and go in one batch. */
	if (batches > 2)
		fail_msg("%d registrations that waited together took %lu writes and syncs",
			 GC_THREADS, batches);
	for (int i = 0; i < GC_THREADS; i++) {
		ok += calls[i].r == IDENT_OK;
		exists += calls[i].r == IDENT_EXISTS;
	}
	assert_int_equal(ok, GC_THREADS - 1);
	assert_int_equal(exists, 1);
	assert_int_equal(file_inode(fx->path), inode);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), GC_THREADS);
	for (int i = 0; i < GC_THREADS - 1; i++)
		assert_int_equal(ident_verify(fx->id, names[i], "pw", COST, NULL, NULL), IDENT_OK);
}

/* A batch that cannot be stored is refused whole and undone; the file stays as it was. */
static void
test_group_commit_failure(void **state)
{
	struct fixture *fx = *state;
	struct slow_call calls[GC_THREADS];
	char names[GC_THREADS][NAME_MAX_LEN + 1];
	struct rlimit small;
	char *before, *after;

	fx->id = open_ok(fx);
	assert_int_equal(ident_register(fx->id, "alice", "pw", COST, NULL), IDENT_OK);
	assert_int_equal(ident_register(fx->id, "bob", "pw", COST, NULL), IDENT_OK);
	before = read_file(fx->path);
	assert_non_null(before);
	for (int i = 0; i < GC_THREADS; i++) {
		snprintf(names[i], sizeof(names[i]), "user%d", i);
		calls[i] = (struct slow_call){ .id = fx->id,
					       .name = names[i],
					       .password = "pw",
					       .cost = COST };
	}
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &fx->fsize), 0);
	small = fx->fsize;
	small.rlim_cur = (rlim_t)file_size(fx->path) + 10;
	register_piled_up(fx, calls, &small);
	for (int i = 0; i < GC_THREADS; i++)
		assert_int_equal(calls[i].r, IDENT_IO_ERROR);
	assert_int_equal(ident_count(fx->id), 2);
	after = read_file(fx->path);
	assert_non_null(after);
	assert_string_equal(after, before);
	free(after);
	free(before);

	/* A deletion in a batch that fails comes back too. */
	assert_int_equal(ident_delete(fx->id, "bob"), IDENT_OK);
	reopen(fx);
	assert_int_equal(ident_count(fx->id), 1);
	assert_true(ident_lookup(fx->id, "alice", NULL));
}

/* Concurrency: registrations racing with clears. */

#define REG_THREADS 4
#define REG_PER_THREAD 25
#define REG_TOTAL (REG_THREADS * REG_PER_THREAD)
#define CLEARS 4

struct race {
	struct fixture *fx;
	atomic_int seq; /* orders events across threads */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int registered;
	int last_clear_start, last_clear_end;
	struct {
		char name[NAME_MAX_LEN + 1];
		enum ident_result r;
		uint64_t account;
		int start, end;
	} reg[REG_TOTAL];
};

static struct race race;

static void *
register_thread(void *arg)
{
	int t = (int)(intptr_t)arg;

	for (int i = 0; i < REG_PER_THREAD; i++) {
		int k = t * REG_PER_THREAD + i;

		snprintf(race.reg[k].name, sizeof(race.reg[k].name), "T%d-user%02d", t, i);
		race.reg[k].start = atomic_fetch_add(&race.seq, 1);
		race.reg[k].r = ident_register(race.fx->id, race.reg[k].name, "pw", COST,
					       &race.reg[k].account);
		race.reg[k].end = atomic_fetch_add(&race.seq, 1);
		pthread_mutex_lock(&race.lock);
		race.registered++;
		pthread_cond_broadcast(&race.cond);
		pthread_mutex_unlock(&race.lock);
	}
	return NULL;
}

/*
 * What a reader sees at any moment is a whole, clean file: the version
 * line, base lines and records.  Only a record being appended just then
 * may still lack its end (the loader drops such a last line).
 */
static bool
file_is_whole(const char *path)
{
	char *text = read_file(path);
	const char *line, *end, *colon;
	bool ok;

	if (text == NULL)
		return false;
	ok = strncmp(text, VERSION_LINE, strlen(VERSION_LINE)) == 0;
	for (line = text + strlen(VERSION_LINE); ok && *line != '\0'; line = end + 1) {
		end = strchr(line, '\n');
		if (end == NULL) {
			ok = line[0] == '+';
			break;
		}
		colon = memchr(line, ':', (size_t)(end - line));
		ok = line[0] == '-' ? colon == NULL && end - line > 1
				    : colon != NULL && colon[1] == '$';
	}
	free(text);
	return ok;
}

/* Copies src to dst: a second store must not compact the file the first one appends to. */
static bool
copy_file(const char *src, const char *dst)
{
	char *text = read_file(src);
	FILE *f;
	bool ok;

	if (text == NULL || (f = fopen(dst, "w")) == NULL) {
		free(text);
		return false;
	}
	ok = fputs(text, f) >= 0;
	ok = fclose(f) == 0 && ok;
	free(text);
	return ok;
}

static void *
clear_thread(void *arg)
{
	char err[256];

	for (int c = 1; c <= CLEARS; c++) {
		struct ident *reader;

		/* Spread the clears over the run, the last one well before its end. */
		pthread_mutex_lock(&race.lock);
		while (race.registered < c * REG_TOTAL / (CLEARS + 1))
			pthread_cond_wait(&race.cond, &race.lock);
		pthread_mutex_unlock(&race.lock);

		race.last_clear_start = atomic_fetch_add(&race.seq, 1);
		if (ident_clear(race.fx->id) != IDENT_OK)
			return (void *)"clear failed";
		race.last_clear_end = atomic_fetch_add(&race.seq, 1);

		if (!file_is_whole(race.fx->path))
			return (void *)"file not whole";
		if (!copy_file(race.fx->path, race.fx->copy))
			return (void *)"cannot copy the file";
		reader = ident_open(race.fx->copy, err, sizeof(err));
		if (reader == NULL)
			return (void *)"file does not parse";
		ident_close(reader);
		unlink(race.fx->copy);
	}
	return NULL;
}

static void
test_register_races_clear(void **state)
{
	struct fixture *fx = *state;
	pthread_t reg[REG_THREADS], clr;
	void *failure;
	size_t present = 0;

	memset(&race, 0, sizeof(race));
	race.fx = fx;
	pthread_mutex_init(&race.lock, NULL);
	pthread_cond_init(&race.cond, NULL);
	fx->id = open_ok(fx);

	assert_int_equal(pthread_create(&clr, NULL, clear_thread, NULL), 0);
	for (int t = 0; t < REG_THREADS; t++)
		assert_int_equal(pthread_create(&reg[t], NULL, register_thread,
						(void *)(intptr_t)t),
				 0);
	for (int t = 0; t < REG_THREADS; t++)
		assert_int_equal(pthread_join(reg[t], NULL), 0);
	assert_int_equal(pthread_join(clr, &failure), 0);
	if (failure != NULL)
		fail_msg("%s", (const char *)failure);

	/*
	 * Each registration knows its account even when a clear came right
	 * after it: still there, or forgotten by a clear (a login that
	 * registered keeps its session through ident clear).
	 */
	for (int k = 0; k < REG_TOTAL; k++) {
		uint64_t account = race.reg[k].account;

		assert_true(account != 0);
		if (ident_account(fx->id, race.reg[k].name) != account &&
		    !ident_cleared(fx->id, account))
			fail_msg("%s: account %llu neither there nor cleared", race.reg[k].name,
				 (unsigned long long)account);
	}
	assert_true(file_is_whole(fx->path));
	reopen(fx);
	for (int k = 0; k < REG_TOTAL; k++) {
		bool in_file = ident_lookup(fx->id, race.reg[k].name, NULL);

		assert_int_equal(race.reg[k].r, IDENT_OK);
		if (race.reg[k].start > race.last_clear_end && !in_file)
			fail_msg("%s registered after the last clear but lost", race.reg[k].name);
		if (race.reg[k].end < race.last_clear_start && in_file)
			fail_msg("%s registered before the last clear but back", race.reg[k].name);
		present += in_file;
	}
	assert_int_equal(ident_count(fx->id), present);
	assert_true(present > 0);
	pthread_mutex_destroy(&race.lock);
	pthread_cond_destroy(&race.cond);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_file_is_empty_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_lookup_ignores_case, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rehash_on_cost_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_password, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence_and_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_lines_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_path_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_0600, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_open_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registration_appends_one_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_registration_cost_does_not_grow, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reload_replays_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_record_cut_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_records_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_bounds_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_between_compaction_steps, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_file_changed_behind_our_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_append_cut_back, setup, teardown),
		cmocka_unit_test(test_result_str),
		cmocka_unit_test_setup_teardown(test_rehash_loses_to_password_change, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_set_password_loses_to_reregistration, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_registration_across_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rehash_does_not_resurrect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_races_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_or_hard_link_refused, setup, teardown),
	};
	int rc;

	if (password_gate_init(2) != 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	password_gate_destroy();
	return rc;
}
