/*
 * test_config.c - settings_load() defaults, errors with their exact line,
 * path rules, the reload check, settings_write() and publishing.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"

static char tmpdir[PATH_MAX];
static char cwd[PATH_MAX];

static const char *const path_env[] = {
	"STATE_DIRECTORY",
	"LOGS_DIRECTORY",
	"RUNTIME_DIRECTORY",
};

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	for (size_t i = 0; i < sizeof(path_env) / sizeof(path_env[0]); i++)
		unsetenv(path_env[i]);
	strcpy(tmpdir, "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL || getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	for (size_t i = 0; i < sizeof(path_env) / sizeof(path_env[0]); i++)
		unsetenv(path_env[i]);
	if (chdir(cwd) < 0)
		return -1;
	return nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes text to tmpdir/name; returns the path (static buffer). */
static const char *
write_conf(const char *name, const char *text)
{
	static char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void
load_ok(const char *text, struct settings *s)
{
	char err[512];
	int rc = settings_load(write_conf("chatd.conf", text), s, err, sizeof(err));

	if (rc != 0)
		fail_msg("unexpected error: %s", err);
}

/* Loads text and checks the error is exactly "FILE:line: msg". */
static void
expect_error(const char *text, int line, const char *msg)
{
	struct settings s;
	char err[512], want[PATH_MAX + 600];
	const char *path = write_conf("bad.conf", text);

	assert_int_equal(settings_load(path, &s, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	assert_string_equal(err, want);
	assert_null(s.config_file); /* nothing left half-loaded */
	assert_null(s.listen);
}

static char *
joined(const char *dir, const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static void
assert_path(const char *got, const char *dir, const char *name)
{
	char *want = joined(dir, name);

	assert_string_equal(got, want);
	free(want);
}

static void
test_defaults_when_empty(void **state)
{
	struct settings s;
	char local[PATH_MAX + 16], conf[PATH_MAX + 16];

	load_ok("", &s);
	snprintf(local, sizeof(local), "%s/" CONFIG_LOCAL_DIR, cwd);
	snprintf(conf, sizeof(conf), "%s/chatd.conf", tmpdir);
	assert_string_equal(s.config_file, conf);
	assert_int_equal(s.n_listen, 2);
	assert_string_equal(s.listen[0], "0.0.0.0");
	assert_string_equal(s.listen[1], "::");
	assert_true(s.listen_is_default);
	assert_int_equal(s.port, 7777);
	assert_int_equal(s.port_tries, 10);
	assert_string_equal(s.state_dir, local);
	assert_path(s.history_file, local, "history");
	assert_path(s.ident_file, local, "ident");
	assert_path(s.log_file, local, "chatd.log");
	assert_string_equal(s.runtime_dir, local);
	assert_path(s.admin_socket, local, "admin.sock");
	assert_string_equal(s.admin_group, "");
	assert_string_equal(s.user, "");
	assert_int_equal(s.login_fail_delay_max_ms, 30000);
	assert_int_equal(s.stack_size, 131072);
	assert_int_equal(s.max_line, 4096);
	assert_int_equal(s.history_memory, 1000);
	assert_int_equal(s.history_max_size, 67108864);
	assert_int_equal(s.history_sync_ms, 0);
	assert_int_equal(s.hash_concurrency, 0);
	assert_int_equal(s.log_level, LVL_INFO);
	assert_int_equal(s.hash_cost, 5);
	assert_int_equal(s.max_clients, 1000);
	assert_int_equal(s.max_clients_per_address, 32);
	assert_int_equal(s.max_logins, 256);
	assert_int_equal(s.max_logins_per_address, 8);
	assert_int_equal(s.login_timeout, 30);
	assert_int_equal(s.login_attempts, 3);
	assert_int_equal(s.login_fail_delay_ms, 1000);
	assert_int_equal(s.history_replay, 20);
	assert_int_equal(s.send_queue_limit, 1048576);
	assert_true(s.registration);
	assert_int_equal(s.room_notice_limit, 500);
	assert_int_equal(s.resume_token_ttl, 604800);
	assert_int_equal(s.peer_timeout, 60);
	settings_free(&s);
	assert_null(s.config_file);
}

static void
test_values_are_read(void **state)
{
	struct settings s;

	load_ok("port = 0;\n"
		"history_max_size = 1099511627776L;\n"
		"stack_size = 65536;\n" /* a plain int for an int64 */
		"max_line = 0x100;\n"
		"log_level = \"debug\";\n"
		"registration = false;\n"
		"hash_cost = 11\n" /* libconfig: the ';' is optional */
		"peer_timeout: 5;\n",
		&s);
	assert_int_equal(s.port, 0);
	assert_int_equal(s.history_max_size, 1LL << 40);
	assert_int_equal(s.stack_size, 65536);
	assert_int_equal(s.max_line, 256);
	assert_int_equal(s.log_level, LVL_DEBUG);
	assert_false(s.registration);
	assert_int_equal(s.hash_cost, 11);
	assert_int_equal(s.peer_timeout, 5);
	settings_free(&s);
}

static void
test_type_errors(void **state)
{
	expect_error("# types\nport = \"7777\";\n", 2, "'port' must be an integer");
	expect_error("port = 7777.0;\n", 1, "'port' must be an integer");
	expect_error("\n\nstack_size = true;\n", 3, "'stack_size' must be an integer");
	expect_error("max_clients = [1];\n", 1, "'max_clients' must be an integer");
	expect_error("port = { a = 1; };\n", 1, "'port' must be an integer");
	expect_error("\nregistration = 1;\n", 2, "'registration' must be true or false");
	expect_error("registration = \"yes\";\n", 1, "'registration' must be true or false");
	expect_error("state_dir = 5;\n", 1, "'state_dir' must be a string");
	expect_error("\nlog_file = \"\";\n", 2, "'log_file' must not be empty");
	expect_error("log_level = 6;\n", 1,
		     "'log_level' must be one of \"error\", "
		     "\"warning\", \"notice\", \"info\", \"debug\"");
	expect_error("\n\n\nlog_level = \"verbose\";\n", 4,
		     "'log_level' must be one of "
		     "\"error\", \"warning\", \"notice\", \"info\", \"debug\"");
	expect_error("listen = 5;\n", 1, "'listen' must be a string or a list of strings");
	expect_error("listen = (\"::1\",\n 5);\n", 2,
		     "'listen' must be a string or a list of strings");
	expect_error("listen = [];\n", 1, "'listen' must name at least one address");
	expect_error("\nroom_create = \"everyone\";\n", 2,
		     "'room_create' must be one of \"anyone\", \"registered\", \"admin\"");
	expect_error("room_create = 1;\n", 1,
		     "'room_create' must be one of \"anyone\", \"registered\", \"admin\"");
	expect_error("\n\ndefault_room = \"1lobby\";\n", 3,
		     "'default_room' must be a room name: 1-32 of A-Z a-z 0-9 _ . -, "
		     "the first a letter");
	expect_error("default_room = \"\";\n", 1,
		     "'default_room' must be a room name: 1-32 of A-Z a-z 0-9 _ . -, "
		     "the first a letter");
	expect_error("max_topic = 1025;\n", 1, "'max_topic' must be between 1 and 1024");
}

static void
test_bad_addresses(void **state)
{
	expect_error("listen = \"localhost\";\n", 1,
		     "'listen': \"localhost\" is not a numeric IPv4 or IPv6 address");
	expect_error("listen = [ \"127.0.0.1\",\n  \"::1\",\n  \"10.0.0.256\" ];\n", 3,
		     "'listen': \"10.0.0.256\" is not a numeric IPv4 or IPv6 address");
	expect_error("listen = \"fe80::1%lo\";\n", 1,
		     "'listen': \"fe80::1%lo\" is not a numeric IPv4 or IPv6 address");
	expect_error("listen = \" 127.0.0.1\";\n", 1,
		     "'listen': \" 127.0.0.1\" is not a numeric IPv4 or IPv6 address");
	/* A string across lines is shown escaped: an error message is one line. */
	expect_error("listen = \"::1\n# not a comment\";\n", 1,
		     "'listen': \"::1\\x0a# not a comment\" is not a numeric IPv4 or IPv6 address");
}

struct bound {
	const char *name;
	size_t offset;
	bool is64;
	long long min, max;
	const char *extra; /* what else the file needs to load */
};

/* clang-format off */
#define BOUND(f, i64, lo, hi, x) { #f, offsetof(struct settings, f), i64, lo, hi, x }
/* clang-format on */

static const struct bound bounds[] = {
	BOUND(port, false, -1, 65535, "tls_cert = \"c.pem\";\n"),
	BOUND(tls_port, false, 0, 65535, ""),
	BOUND(handshake_timeout, false, 1, 3600, ""),
	BOUND(port_tries, false, 0, 1000, ""),
	BOUND(stack_size, true, 65536, 67108864, ""),
	BOUND(max_line, false, 64, 65536, ""),
	BOUND(history_memory, false, 1, 1000000, "history_replay = 0;\n"),
	BOUND(history_max_size, true, 65536, 1LL << 40, ""),
	BOUND(history_sync_ms, false, 0, 60000, ""),
	BOUND(hash_concurrency, false, 0, 256, ""),
	BOUND(hash_cost, false, 1, 11, ""),
	BOUND(max_clients, false, 1, 1000000, ""),
	BOUND(max_clients_per_address, false, 1, 1000000, ""),
	BOUND(max_logins, false, 1, 1000000, ""),
	BOUND(max_logins_per_address, false, 1, 1000000, ""),
	BOUND(login_timeout, false, 1, 3600, ""),
	BOUND(login_attempts, false, 1, 100, ""),
	BOUND(login_fail_delay_ms, false, 0, 60000, ""),
	BOUND(history_replay, false, 0, 1000000, "history_memory = 1000000;\n"),
	BOUND(send_queue_limit, true, 4096, 1LL << 30, ""),
	BOUND(room_notice_limit, false, 0, 1000000, ""),
	BOUND(resume_token_ttl, false, 0, 31536000, ""),
	BOUND(peer_timeout, false, 5, 86400, ""),
};

/* A libconfig integer literal; 64-bit ones need the L suffix. */
static char *
setting_text(const struct bound *b, long long v)
{
	bool wide = v < INT_MIN || v > INT_MAX;
	char *text;

	assert_true(asprintf(&text, "# bounds\n%s = %lld%s;\n%s", b->name, v, wide ? "L" : "",
			     b->extra) > 0);
	return text;
}

static long long
stored(const struct settings *s, const struct bound *b)
{
	const char *p = (const char *)s + b->offset;

	return b->is64 ? *(const int64_t *)p : *(const int *)p;
}

static void
expect_accepted(const struct bound *b, long long v)
{
	struct settings s;
	char *text = setting_text(b, v);

	load_ok(text, &s);
	assert_int_equal(stored(&s, b), v);
	settings_free(&s);
	free(text);
}

static void
expect_refused(const struct bound *b, long long v)
{
	char *text = setting_text(b, v), *msg;

	assert_true(asprintf(&msg, "'%s' must be between %lld and %lld", b->name, b->min, b->max) >
		    0);
	expect_error(text, 2, msg);
	free(msg);
	free(text);
}

static void
test_range_errors(void **state)
{
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		expect_accepted(&bounds[i], bounds[i].min);
		expect_accepted(&bounds[i], bounds[i].max);
		expect_refused(&bounds[i], bounds[i].min - 1);
		expect_refused(&bounds[i], bounds[i].max + 1);
	}
	expect_refused(&bounds[0], -2147483648LL);
	expect_refused(&bounds[0], 1LL << 40);
}

/* libconfig 1.5 would silently truncate these to 32 bits. */
static void
test_truncated_integers(void **state)
{
	expect_error("# 4294974073 is 2^32 + 7777\nport = 4294974073;\n", 2,
		     "4294974073 does not fit in 32 bits; write 4294974073L for a "
		     "64-bit integer");
	expect_error("history_max_size = 1099511627776;\n", 1,
		     "1099511627776 does not fit in 32 bits; write 1099511627776L for a "
		     "64-bit integer");
	expect_error("listen = \"::1\"; /* 99999999999 */\nport = -2147483649;\n", 2,
		     "-2147483649 does not fit in 32 bits; write -2147483649L for a "
		     "64-bit integer");
	expect_error("port = 0xFFFFFFFF;\n", 1,
		     "0xFFFFFFFF does not fit in 32 bits; write 0xFFFFFFFFL for a "
		     "64-bit integer");
}

static void
test_syntax_and_unknown(void **state)
{
	struct settings s;

	expect_error("port = 1;\nprot = 7777;\n", 2, "unknown setting 'prot'");
	expect_error("\nserver = { port = 1; };\n", 2, "unknown setting 'server'");
	expect_error("port = 1;\n\nmax_line = ;\n", 3, "syntax error");
	expect_error("port = 1;\nport = 2;\n", 2, "duplicate setting name");
	write_conf("other.conf", "port = 1;\n");
	expect_error("\n@include \"other.conf\"\n", 2, "@include is not supported");
	/* Numbers inside strings, names and comments are not integers. */
	load_ok("# 99999999999\nstate_dir = \"/x/99999999999\";\n"
		"// 99999999999\n/* 99999999999\n */ history_sync_ms = 10 ;\n",
		&s);
	assert_string_equal(s.state_dir, "/x/99999999999");
	assert_int_equal(s.history_sync_ms, 10);
	settings_free(&s);
	expect_error("/* 99999999999\n */ history_sync_ms = 99999999999.0 ;\n", 2,
		     "'history_sync_ms' must be an integer");
	expect_error("history_sync_ms = 1e10;\n", 1, "'history_sync_ms' must be an integer");
}

static void
test_cannot_read(void **state)
{
	struct settings s;
	char err[512], want[PATH_MAX + 100];
	FILE *f;

	snprintf(want, sizeof(want), "%s/missing.conf", tmpdir);
	assert_int_equal(settings_load(want, &s, err, sizeof(err)), -1);
	strcat(want, ": cannot read: No such file or directory");
	assert_string_equal(err, want);

	assert_int_equal(settings_load(tmpdir, &s, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", tmpdir);
	assert_string_equal(err, want);

	/* libconfig would stop at a NUL and ignore the rest. */
	snprintf(want, sizeof(want), "%s/binary.conf", tmpdir);
	f = fopen(want, "w");
	assert_non_null(f);
	assert_int_equal(fwrite("port = 1;\0prot = 2;\n", 1, 21, f), 21);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(settings_load(want, &s, err, sizeof(err)), -1);
	strcat(want, ": contains a NUL byte; not a text file");
	assert_string_equal(err, want);

	/* A tiny buffer gets a truncated, terminated message. */
	assert_int_equal(settings_load(tmpdir, &s, err, 5), -1);
	assert_int_equal(strlen(err), 4);
}

static void
test_history_replay_within_memory(void **state)
{
	struct settings s;

	expect_error("history_memory = 100;\n\nhistory_replay = 101;\n", 3,
		     "'history_replay' (101) must not exceed 'history_memory' (100)");
	expect_error("\nhistory_memory = 10;\n", 2,
		     "'history_replay' (20) must not exceed 'history_memory' (10)");
	load_ok("history_memory = 100;\nhistory_replay = 100;\n", &s);
	assert_int_equal(s.history_replay, 100);
	settings_free(&s);
}

static void
test_relative_paths(void **state)
{
	struct settings s;
	char err[512], sub[PATH_MAX + 8];

	snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_conf("sub/chatd.conf", "state_dir = \"data\";\n"
				     "history_file = \"../h\";\n"
				     "log_file = \"/var/log/chatd.log\";\n"
				     "runtime_dir = \"run\";\n");
	/* A relative config path: made absolute, and paths follow the file. */
	assert_int_equal(chdir(tmpdir), 0);
	assert_int_equal(settings_load("sub/chatd.conf", &s, err, sizeof(err)), 0);
	assert_path(s.config_file, sub, "chatd.conf");
	assert_path(s.state_dir, sub, "data");
	assert_path(s.history_file, sub, "../h");
	assert_path(s.ident_file, s.state_dir, "ident");
	assert_string_equal(s.log_file, "/var/log/chatd.log");
	assert_path(s.runtime_dir, sub, "run");
	assert_path(s.admin_socket, s.runtime_dir, "admin.sock");
	settings_free(&s);

	write_conf("sub/chatd.conf", "runtime_dir = \"run\";\n"
				     "admin_socket = \"ctl/a.sock\";\nadmin_group = \"staff\";\n");
	assert_int_equal(settings_load("sub/chatd.conf", &s, err, sizeof(err)), 0);
	assert_path(s.admin_socket, sub, "ctl/a.sock");
	assert_string_equal(s.admin_group, "staff");
	settings_free(&s);
	write_conf("sub/chatd.conf", "admin_group = 5;\n");
	assert_int_equal(settings_load("sub/chatd.conf", &s, err, sizeof(err)), -1);
	assert_string_equal(err, "sub/chatd.conf:1: 'admin_group' must be a string");

	/* The errors name the file as it was given. */
	write_conf("sub/chatd.conf", "\nprot = 1;\n");
	assert_int_equal(settings_load("sub/chatd.conf", &s, err, sizeof(err)), -1);
	assert_string_equal(err, "sub/chatd.conf:2: unknown setting 'prot'");
}

static void
test_systemd_directories(void **state)
{
	struct settings s;
	char local[PATH_MAX + 16];

	setenv("STATE_DIRECTORY", "/var/lib/chatd:/var/lib/other", 1);
	setenv("LOGS_DIRECTORY", "/var/log/chatd", 1);
	setenv("RUNTIME_DIRECTORY", "/run/chatd", 1);
	load_ok("", &s);
	assert_string_equal(s.state_dir, "/var/lib/chatd");
	assert_string_equal(s.history_file, "/var/lib/chatd/history");
	assert_string_equal(s.ident_file, "/var/lib/chatd/ident");
	assert_string_equal(s.log_file, "/var/log/chatd/chatd.log");
	assert_string_equal(s.runtime_dir, "/run/chatd");
	settings_free(&s);

	/* The file wins over the environment. */
	load_ok("state_dir = \"/srv/chat\";\n", &s);
	assert_string_equal(s.state_dir, "/srv/chat");
	assert_string_equal(s.history_file, "/srv/chat/history");
	assert_string_equal(s.log_file, "/var/log/chatd/chatd.log");
	settings_free(&s);

	/* Only a state directory: the log goes there, the runtime dir local. */
	unsetenv("LOGS_DIRECTORY");
	unsetenv("RUNTIME_DIRECTORY");
	setenv("STATE_DIRECTORY", "/var/lib/chatd", 1);
	load_ok("", &s);
	snprintf(local, sizeof(local), "%s/" CONFIG_LOCAL_DIR, cwd);
	assert_string_equal(s.log_file, "/var/lib/chatd/chatd.log");
	assert_string_equal(s.runtime_dir, local);
	settings_free(&s);

	/* Empty is unset. */
	setenv("STATE_DIRECTORY", "", 1);
	load_ok("", &s);
	assert_string_equal(s.state_dir, local);
	settings_free(&s);
}

static void
test_listen_forms(void **state)
{
	struct settings s;

	load_ok("listen = \"127.0.0.1\";\n", &s);
	assert_int_equal(s.n_listen, 1);
	assert_string_equal(s.listen[0], "127.0.0.1");
	assert_false(s.listen_is_default);
	settings_free(&s);

	load_ok("listen = [ \"127.0.0.1\", \"::1\" ];\n", &s);
	assert_int_equal(s.n_listen, 2);
	assert_string_equal(s.listen[0], "127.0.0.1");
	assert_string_equal(s.listen[1], "::1");
	assert_false(s.listen_is_default);
	settings_free(&s);

	load_ok("listen = ( \"::\" );\n", &s);
	assert_int_equal(s.n_listen, 1);
	assert_string_equal(s.listen[0], "::");
	settings_free(&s);
}

static void
test_tls_settings(void **state)
{
	struct settings s;

	load_ok("listen = \"127.0.0.1\";\n", &s);
	assert_int_equal(s.n_tls_listen, 1);
	assert_string_equal(s.tls_listen[0], "127.0.0.1");
	assert_true(s.tls_listen_follows);
	assert_int_equal(s.tls_port, 7778);
	assert_string_equal(s.tls_cert, "");
	assert_string_equal(s.tls_key, "");
	assert_int_equal(s.tls_min_version, TLS_MIN_1_2);
	assert_int_equal(s.plain_login, PLAIN_LOGIN_LOOPBACK);
	assert_int_equal(s.handshake_timeout, 10);
	settings_free(&s);

	load_ok("tls_listen = \"::1\";\nport = -1;\ntls_cert = \"/x/c.pem\";\n"
		"tls_key = \"/x/k.pem\";\ntls_min_version = \"1.3\";\nplain_login = \"deny\";\n",
		&s);
	assert_string_equal(s.tls_listen[0], "::1");
	assert_false(s.tls_listen_follows);
	assert_int_equal(s.port, -1);
	assert_string_equal(s.tls_cert, "/x/c.pem");
	assert_string_equal(s.tls_key, "/x/k.pem");
	assert_int_equal(s.tls_min_version, TLS_MIN_1_3);
	assert_int_equal(s.plain_login, PLAIN_LOGIN_DENY);
	settings_free(&s);

	expect_error("# nowhere\nport = -1;\n", 2,
		     "'port' is -1 (no plain listener) but 'tls_cert' is not set (no TLS "
		     "listener): chatd would listen nowhere");
	expect_error("tls_min_version = \"1.1\";\n", 1,
		     "'tls_min_version' must be one of \"1.2\", \"1.3\"");
	expect_error("port = 1;\nplain_login = \"never\";\n", 2,
		     "'plain_login' must be one of \"allow\", \"loopback\", \"deny\"");
}

static void
restart_needed(const char *a_text, const char *b_text, char *buf, size_t len)
{
	struct settings a, b;

	load_ok(a_text, &a);
	load_ok(b_text, &b);
	settings_restart_needed(&a, &b, buf, len);
	settings_free(&a);
	settings_free(&b);
}

/* A non-default value for every setting, and whether SIGHUP may change it. */
static const struct {
	const char *line, *name;
	bool reloadable;
} changes[] = {
	{ "listen = \"::1\";", "listen", false },
	{ "port = 1;", "port", false },
	{ "port_tries = 0;", "port_tries", false },
	{ "tls_port = 1;", "tls_port", false },
	{ "tls_listen = \"::1\";", "tls_listen", false },
	{ "tls_cert = \"c.pem\";", "tls_cert", true },
	{ "tls_key = \"k.pem\";", "tls_key", true },
	{ "tls_min_version = \"1.3\";", "tls_min_version", true },
	{ "handshake_timeout = 1;", "handshake_timeout", true },
	{ "plain_login = \"deny\";", "plain_login", true },
	{ "state_dir = \"/s\";", "state_dir, history_file, rooms_file, ident_file, log_file",
	  false },
	{ "history_file = \"/h\";", "history_file", false },
	{ "ident_file = \"/i\";", "ident_file", false },
	{ "log_file = \"/l\";", "log_file", false },
	{ "runtime_dir = \"/r\";", "runtime_dir, admin_socket", false },
	{ "admin_socket = \"/a\";", "admin_socket", false },
	{ "admin_group = \"adm\";", "admin_group", false },
	{ "user = \"nobody\";", "user", false },
	{ "stack_size = 65536;", "stack_size", false },
	{ "max_line = 64;", "max_line", false },
	{ "history_memory = 20;", "history_memory", false },
	{ "history_max_size = 65536;", "history_max_size", false },
	{ "history_sync_ms = 1;", "history_sync_ms", false },
	{ "hash_concurrency = 1;", "hash_concurrency", false },
	{ "log_level = \"debug\";", "log_level", true },
	{ "hash_cost = 1;", "hash_cost", true },
	{ "max_clients = 1;", "max_clients", true },
	{ "max_clients_per_address = 1;", "max_clients_per_address", true },
	{ "max_logins = 1;", "max_logins", true },
	{ "max_logins_per_address = 1;", "max_logins_per_address", true },
	{ "login_timeout = 1;", "login_timeout", true },
	{ "login_attempts = 1;", "login_attempts", true },
	{ "login_fail_delay_ms = 0;", "login_fail_delay_ms", true },
	{ "history_replay = 0;", "history_replay", true },
	{ "send_queue_limit = 4096;", "send_queue_limit", true },
	{ "registration = false;", "registration", true },
	{ "room_notice_limit = 0;", "room_notice_limit", true },
	{ "resume_token_ttl = 0;", "resume_token_ttl", true },
	{ "peer_timeout = 5;", "peer_timeout", true },
	{ "default_room = \"hall\";", "default_room", false },
	{ "rooms_file = \"/x/rooms\";", "rooms_file", false },
	{ "room_create = \"admin\";", "room_create", true },
	{ "max_rooms = 1;", "max_rooms", true },
	{ "max_rooms_per_user = 1;", "max_rooms_per_user", true },
	{ "max_topic = 1;", "max_topic", true },
	{ "room_expiry = 0;", "room_expiry", true },
};

static void
test_restart_needed_each(void **state)
{
	char buf[256];

	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
		restart_needed("", changes[i].line, buf, sizeof(buf));
		assert_string_equal(buf, changes[i].reloadable ? "" : changes[i].name);
		/* Symmetric: going back needs a restart just the same. */
		restart_needed(changes[i].line, "", buf, sizeof(buf));
		assert_string_equal(buf, changes[i].reloadable ? "" : changes[i].name);
	}
}

static void
test_restart_needed(void **state)
{
	char buf[256];

	restart_needed("port = 7777;\n", "", buf, sizeof(buf));
	assert_string_equal(buf, "");
	/* Only the fixed ones count, in table order. */
	restart_needed("",
		       "history_memory = 500;\nport = 1;\nhash_cost = 7;\n"
		       "log_level = \"debug\";\nregistration = false;\n"
		       "max_clients = 2;\nhistory_replay = 3;\n",
		       buf, sizeof(buf));
	assert_string_equal(buf, "port, history_memory");
	restart_needed("", "listen = [ \"0.0.0.0\", \"::\" ];\n", buf, sizeof(buf));
	assert_string_equal(buf, "");
	restart_needed("",
		       "listen = [ \"::\", \"0.0.0.0\" ];\nstate_dir = \"/x\";\n"
		       "stack_size = 65536;\nhistory_max_size = 65536;\n"
		       "hash_concurrency = 1;\n",
		       buf, sizeof(buf));
	assert_string_equal(buf,
			    "listen, state_dir, history_file, rooms_file, ident_file, log_file, "
			    "stack_size, history_max_size, hash_concurrency");
	restart_needed("", "port = 1;\nport_tries = 0;\n", buf, 8);
	assert_string_equal(buf, "port, p");
}

/* What settings_write() gives, without its first line (the source file). */
static char *
written(const struct settings *s)
{
	char *text;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	assert_int_equal(settings_write(s, f), 0);
	assert_int_equal(fclose(f), 0);
	return text;
}

static void
test_write_round_trip(void **state)
{
	struct settings a, b;
	char *text_a, *text_b;

	load_ok("listen = [ \"127.0.0.1\", \"::1\" ];\nport = 0;\n"
		"state_dir = \"/tmp/a \\\"quoted\\\" \\\\ dir\";\n"
		"history_max_size = 1099511627776L;\nlog_level = \"warning\";\n"
		"registration = false;\n",
		&a);
	text_a = written(&a);
	assert_non_null(strstr(text_a, "\nport = 0;\n"));
	assert_non_null(strstr(text_a, "\nhistory_max_size = 1099511627776L;\n"));
	assert_non_null(strstr(text_a, "\nlog_level = \"warning\";\n"));
	assert_non_null(strstr(text_a, "\n# TCP port of the plain listener; 0 lets the kernel "
				       "choose; -1 switches it off (a TLS-only server) "
				       "(fixed until restart)\n"));
	load_ok(text_a, &b);
	assert_string_equal(b.state_dir, "/tmp/a \"quoted\" \\ dir");
	text_b = written(&b);
	assert_string_equal(strchr(text_a, '\n'), strchr(text_b, '\n'));
	free(text_a);
	free(text_b);
	settings_free(&a);
	settings_free(&b);

	/* A default listen stays a default. */
	load_ok("", &a);
	text_a = written(&a);
	assert_non_null(strstr(text_a, "\n# listen = [ \"0.0.0.0\", \"::\" ];\n"));
	load_ok(text_a, &b);
	assert_true(b.listen_is_default);
	free(text_a);
	settings_free(&a);
	settings_free(&b);
}

static struct settings *
loaded(const char *text)
{
	struct settings *s = malloc(sizeof(*s));

	assert_non_null(s);
	load_ok(text, s);
	return s;
}

static void
test_publish_get(void **state)
{
	struct settings *a = loaded("port = 1;\n"), *b = loaded("port = 2;\n");
	const struct settings *old;

	assert_null(settings_get());
	settings_publish(a);
	assert_ptr_equal(settings_get(), a);
	old = settings_get();
	settings_publish(b);
	assert_ptr_equal(settings_get(), b);
	/* A reader still holding the old settings may use them (ASan checks). */
	assert_int_equal(old->port, 1);
	assert_string_equal(old->listen[0], "0.0.0.0");
	settings_release_all();
	assert_null(settings_get());
}

#define PUBLISHES 200

static atomic_bool stop_reader;
static atomic_int last_port_seen = -1;
static atomic_int bad_reads;

static void *
reader(void *arg)
{
	while (!atomic_load(&stop_reader)) {
		const struct settings *s = settings_get();

		if (s == NULL)
			continue;
		if (s->port < 1000 || s->port >= 1000 + PUBLISHES || s->n_listen != 1 ||
		    strcmp(s->listen[0], "::1") != 0)
			atomic_fetch_add(&bad_reads, 1);
		atomic_store(&last_port_seen, s->port);
	}
	return NULL;
}

static void
test_publish_while_reading(void **state)
{
	pthread_t thread;
	char text[64];

	assert_int_equal(pthread_create(&thread, NULL, reader, NULL), 0);
	for (int i = 0; i < PUBLISHES; i++) {
		snprintf(text, sizeof(text), "listen = \"::1\";\nport = %d;\n", 1000 + i);
		settings_publish(loaded(text));
	}
	while (atomic_load(&last_port_seen) != 1000 + PUBLISHES - 1)
		sched_yield();
	atomic_store(&stop_reader, true);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(atomic_load(&bad_reads), 0);
	assert_int_equal(settings_get()->port, 1000 + PUBLISHES - 1);
	settings_release_all();
}

/*
 * etc/chatd.conf of the source tree, by the absolute path CMake gives
 * (tests/CMakeLists.txt): __FILE__ would not do, a package build maps it to
 * a relative path (dpkg's -ffile-prefix-map) that ctest's directory breaks.
 */
static char *
shipped_conf(void)
{
	return joined(CHATD_SOURCE_DIR, "etc/chatd.conf");
}

static const char *const setting_names[] = {
	"listen",
	"port",
	"port_tries",
	"state_dir",
	"history_file",
	"ident_file",
	"log_file",
	"runtime_dir",
	"stack_size",
	"max_line",
	"history_memory",
	"history_max_size",
	"history_sync_ms",
	"hash_concurrency",
	"log_level",
	"hash_cost",
	"max_clients",
	"max_clients_per_address",
	"max_logins",
	"max_logins_per_address",
	"login_timeout",
	"login_attempts",
	"login_fail_delay_ms",
	"history_replay",
	"send_queue_limit",
	"registration",
	"room_notice_limit",
	"resume_token_ttl",
	"peer_timeout",
};

/* The file shows name as a setting, commented out or not. */
static bool
shows(const char *text, const char *name)
{
	char *commented, *set;
	bool found;

	assert_true(asprintf(&commented, "\n# %s = ", name) > 0);
	assert_true(asprintf(&set, "\n%s = ", name) > 0);
	found = strstr(text, commented) != NULL || strstr(text, set) != NULL;
	free(commented);
	free(set);
	return found;
}

static void
test_shipped_config(void **state)
{
	char *path = shipped_conf(), *text = NULL, *text_a, *text_b, buf[512], err[512];
	struct settings shipped, defaults;
	size_t len = 0;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	assert_true(getdelim(&text, &len, '\0', f) > 0);
	fclose(f);
	for (size_t i = 0; i < sizeof(setting_names) / sizeof(setting_names[0]); i++)
		if (!shows(text, setting_names[i]))
			fail_msg("etc/chatd.conf does not document '%s'", setting_names[i]);
	free(text);

	/* It loads as shipped, to the built-in defaults. */
	if (settings_load(path, &shipped, err, sizeof(err)) != 0)
		fail_msg("etc/chatd.conf: %s", err);
	load_ok("", &defaults);
	assert_int_equal(shipped.port_tries, 10);
	assert_true(shipped.listen_is_default);
	settings_restart_needed(&defaults, &shipped, buf, sizeof(buf));
	assert_string_equal(buf, "");
	text_a = written(&defaults);
	text_b = written(&shipped);
	assert_string_equal(strchr(text_a, '\n'), strchr(text_b, '\n'));
	free(text_a);
	free(text_b);
	settings_free(&shipped);
	settings_free(&defaults);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults_when_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values_are_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_integers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_and_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cannot_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_replay_within_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_systemd_directories, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_needed_each, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_needed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_while_reading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shipped_config, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
