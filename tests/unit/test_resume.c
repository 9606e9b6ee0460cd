/*
 * test_resume.c - the resume token store (daemon/resume.c): issue, verify,
 * expire, revoke, the per-name limit, and the file: reload, mode, damaged
 * lines, symlinks, compaction.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "resume.h"

/*
 * fdatasync() of the code under test, counted (linked with
 * -Wl,--wrap=fdatasync, tests/CMakeLists.txt).
 */
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
static int syncs;

int
__wrap_fdatasync(int fd)
{
	syncs++;
	return __real_fdatasync(fd);
}

#define NOW 1800000000000LL /* wall clock ms */
#define HOUR (3600 * 1000LL)

struct fixture {
	char dir[64];
	char path[96];
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char err[256];

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_resume.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, RESUME_FILE);
	assert_int_equal(resume_open(fx->path, NOW, err, sizeof(err)), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char tmp[128];

	resume_close();
	snprintf(tmp, sizeof(tmp), "%s.tmp", fx->path);
	unlink(tmp);
	unlink(fx->path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
reopen(struct fixture *fx, int64_t now)
{
	char err[256];

	resume_close();
	assert_int_equal(resume_open(fx->path, now, err, sizeof(err)), 0);
}

static void
issue(const char *name, int64_t now, int64_t ttl, char token[RESUME_TOKEN_HEX + 1])
{
	int64_t expiry;

	assert_int_equal(resume_issue(name, now, ttl, token, &expiry), 0);
	assert_int_equal(expiry, now + ttl);
	assert_true(resume_token_syntax(token, strlen(token)));
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	static char buf[65536];
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_issue_and_verify(void **state)
{
	char t[RESUME_TOKEN_HEX + 1], u[RESUME_TOKEN_HEX + 1];

	issue("Alice", NOW, HOUR, t);
	issue("Alice", NOW, HOUR, u);
	assert_string_not_equal(t, u);
	assert_true(resume_verify("Alice", t, NOW + 1));
	assert_true(resume_verify("alice", u, NOW + 1)); /* names ignore case */
	assert_false(resume_verify("bob", t, NOW + 1));  /* bound to the name */
	t[0] = t[0] == '0' ? '1' : '0';
	assert_false(resume_verify("alice", t, NOW + 1));
	assert_false(resume_verify("alice", "", NOW));
	assert_false(resume_verify("alice", "xyz", NOW));
	assert_int_equal(resume_count(), 2);
}

static void
test_token_syntax(void **state)
{
	char t[RESUME_TOKEN_HEX + 1];

	memset(t, 'a', RESUME_TOKEN_HEX);
	t[RESUME_TOKEN_HEX] = '\0';
	assert_true(resume_token_syntax(t, RESUME_TOKEN_HEX));
	assert_false(resume_token_syntax(t, RESUME_TOKEN_HEX - 1));
	t[3] = 'A'; /* lower case only */
	assert_false(resume_token_syntax(t, RESUME_TOKEN_HEX));
	t[3] = 'g';
	assert_false(resume_token_syntax(t, RESUME_TOKEN_HEX));
}

static void
test_tokens_expire(void **state)
{
	char t[RESUME_TOKEN_HEX + 1];

	issue("carol", NOW, HOUR, t);
	assert_true(resume_verify("carol", t, NOW + HOUR - 1));
	assert_false(resume_verify("carol", t, NOW + HOUR));
	assert_false(resume_verify("carol", t, NOW + 2 * HOUR));
}

static void
test_zero_ttl_issues_nothing(void **state)
{
	char t[RESUME_TOKEN_HEX + 1];
	int64_t expiry;

	assert_int_equal(resume_issue("dan", NOW, 0, t, &expiry), -1);
	assert_int_equal(resume_count(), 0);
}

static void
test_revoke_ends_every_token_of_the_name(void **state)
{
	char t[RESUME_TOKEN_HEX + 1], u[RESUME_TOKEN_HEX + 1], v[RESUME_TOKEN_HEX + 1];

	issue("erin", NOW, HOUR, t);
	issue("erin", NOW, HOUR, u);
	issue("frank", NOW, HOUR, v);
	resume_revoke("ERIN");
	assert_false(resume_verify("erin", t, NOW));
	assert_false(resume_verify("erin", u, NOW));
	assert_true(resume_verify("frank", v, NOW));
	assert_int_equal(resume_count(), 1);
	resume_revoke("nobody"); /* harmless */
	assert_int_equal(resume_count(), 1);
}

/*
 * A revocation is on the disk before it returns (a power cut must not
 * bring the tokens back); a token issued and a name without tokens cost
 * no sync.
 */
static void
test_a_revocation_is_synced(void **state)
{
	struct fixture *fx = *state;
	char t[RESUME_TOKEN_HEX + 1];

	syncs = 0;
	issue("gail", NOW, HOUR, t);
	assert_int_equal(syncs, 0);
	resume_revoke("nobody");
	assert_int_equal(syncs, 0);
	resume_revoke("Gail");
	assert_int_equal(syncs, 1);
	assert_non_null(strstr(read_file(fx->path), "R gail\n"));
}

static void
test_a_new_token_replaces_the_oldest_of_the_name(void **state)
{
	char t[RESUME_PER_NAME + 1][RESUME_TOKEN_HEX + 1];

	for (int i = 0; i <= RESUME_PER_NAME; i++)
		issue("gina", NOW + i, HOUR, t[i]);
	assert_false(resume_verify("gina", t[0], NOW + 10));
	for (int i = 1; i <= RESUME_PER_NAME; i++)
		assert_true(resume_verify("gina", t[i], NOW + 10));
	assert_int_equal(resume_count(), RESUME_PER_NAME);
}

static void
test_tokens_survive_a_reload(void **state)
{
	struct fixture *fx = *state;
	char t[RESUME_TOKEN_HEX + 1], u[RESUME_TOKEN_HEX + 1], w[RESUME_TOKEN_HEX + 1];
	struct stat st;

	issue("hank", NOW, HOUR, t);
	issue("ivy", NOW, HOUR, u);
	issue("jo", NOW, 10, w); /* expires before the reload */
	resume_revoke("ivy");
	reopen(fx, NOW + 100);
	assert_true(resume_verify("hank", t, NOW + 100));
	assert_false(resume_verify("ivy", u, NOW + 100));
	assert_false(resume_verify("jo", w, NOW + 100));
	assert_int_equal(resume_count(), 1);
	/* Only hashes are stored, and only the owner may read them. */
	assert_null(strstr(read_file(fx->path), t));
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* The reload rewrote the file: the expired and revoked are gone. */
	assert_null(strstr(read_file(fx->path), "ivy"));
	assert_null(strstr(read_file(fx->path), "jo "));
}

static void
test_damaged_lines_are_skipped(void **state)
{
	struct fixture *fx = *state;
	char t[RESUME_TOKEN_HEX + 1], u[RESUME_TOKEN_HEX + 1];
	FILE *f;

	issue("kim", NOW, HOUR, t);
	resume_close();
	f = fopen(fx->path, "a");
	assert_non_null(f);
	fputs("garbage line\n", f);
	fputs("I lee 00zz 123\n", f);
	fputs("I mia "
	      "0000000000000000000000000000000000000000000000000000000000000000\n",
	      f);
	fputs("R\n", f);
	fputs("I -bad "
	      "0000000000000000000000000000000000000000000000000000000000000000 1\n",
	      f);
	fputs("I kim 1234", f); /* a write cut short by a crash: no LF */
	fclose(f);
	reopen(fx, NOW);
	assert_true(resume_verify("kim", t, NOW));
	assert_int_equal(resume_count(), 1);
	issue("kim", NOW, HOUR, u); /* appends after the rewrite are whole lines again */
	reopen(fx, NOW);
	assert_true(resume_verify("kim", t, NOW));
	assert_true(resume_verify("kim", u, NOW));
	assert_null(strstr(read_file(fx->path), "garbage"));
}

static void
test_a_file_of_garbage_is_an_empty_store(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	FILE *f;

	resume_close();
	f = fopen(fx->path, "w");
	assert_non_null(f);
	for (int i = 0; i < 100; i++)
		fputc(i * 37, f);
	fclose(f);
	assert_int_equal(resume_open(fx->path, NOW, err, sizeof(err)), 0);
	assert_int_equal(resume_count(), 0);
}

static void
test_a_symlink_is_refused(void **state)
{
	struct fixture *fx = *state;
	char err[256], target[128];

	resume_close();
	snprintf(target, sizeof(target), "%s/elsewhere", fx->dir);
	unlink(fx->path);
	assert_int_equal(symlink(target, fx->path), 0);
	assert_int_equal(resume_open(fx->path, NOW, err, sizeof(err)), -1);
	assert_non_null(strstr(err, fx->path));
	assert_int_equal(access(target, F_OK), -1); /* nothing was created through it */
	unlink(fx->path);
	assert_int_equal(resume_open(fx->path, NOW, err, sizeof(err)), 0);
}

static void
test_the_log_is_compacted(void **state)
{
	struct fixture *fx = *state;
	char t[RESUME_TOKEN_HEX + 1];
	struct stat st;

	/* One name, many tokens: only RESUME_PER_NAME stay live. */
	for (int i = 0; i < 2000; i++)
		issue("nina", NOW + i, HOUR, t);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_true(st.st_size < 600 * 120); /* far less than 2000 records */
	assert_true(resume_verify("nina", t, NOW + 2000));
	reopen(fx, NOW + 2000);
	assert_true(resume_verify("nina", t, NOW + 2000));
	assert_int_equal(resume_count(), RESUME_PER_NAME);
}

static void
test_many_names(void **state)
{
	struct fixture *fx = *state;
	static char t[3000][RESUME_TOKEN_HEX + 1];
	char name[32];

	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		issue(name, NOW, HOUR, t[i]);
	}
	reopen(fx, NOW);
	assert_int_equal(resume_count(), 3000);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "USER%d", i);
		assert_true(resume_verify(name, t[i], NOW));
		assert_false(resume_verify(name, t[(i + 1) % 3000], NOW));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_issue_and_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_revocation_is_synced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_syntax, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens_expire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_ttl_issues_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoke_ends_every_token_of_the_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_new_token_replaces_the_oldest_of_the_name,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens_survive_a_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_lines_are_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_file_of_garbage_is_an_empty_store, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_symlink_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_log_is_compacted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_names, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
