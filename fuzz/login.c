/*
 * login.c - fuzz target for the login dialogue (daemon/login.c) and the
 * checks it runs (daemon/auth.c).
 *
 * Input: what a client sends before it is logged in.  It is cut into lines
 * by the client's own linebuf, as client_read_line() does, and each line
 * (or LB_OVERLONG) goes to login_step(), the dialogue's state machine, the
 * way login_run() hands it what the socket gave; the end of the input is
 * the peer closing.  The identification file is a fresh copy per input
 * with two users: alice (hashed at the configured cost) and Bob (another
 * cost, so a login re-hashes and rewrites the file).
 *
 * Checked: every reply is a whole, valid line, PASS or ERR; a password line
 * is wiped from the input buffer once used; the dialogue ends logged in
 * only with the right password for a known name, or as a registration that
 * ident then verifies; wrong passwords get ERR 401 until login_attempts
 * runs out, which ends the dialogue as "refused".
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"
#include "ident.h"
#include "linebuf.h"
#include "login.h"
#include "password.h"
#include "room.h"
#include "wire.h"
#include "server.h"

/* max_line small enough for the fuzzer to reach ERR 413 often. */
#define SETTINGS \
	"max_line = 64;\n" \
	"hash_cost = 1;\n" \
	"login_attempts = 3;\n" \
	"login_fail_delay_ms = 0;\n" \
	"registration = true;\n"

struct user {
	const char *name;
	const char *password;
	int cost;
};

static const struct user users[] = {
	{ "alice", "secret", 1 },
	{ "Bob", "hunter2 with spaces", 2 },
};
#define N_USERS (sizeof(users) / sizeof(users[0]))

static struct server srv;
static char ident_path[PATH_MAX];
static char ident_text[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t off;

	fuzz_init_process();
	fuzz_publish_settings(SETTINGS);
	srv.hub = hub_new(wire_formats);
	fuzz_assert(srv.hub != NULL);
	fuzz_path(ident_path, "ident");
	off = (size_t)snprintf(ident_text, sizeof(ident_text), "chatd-ident 1\n");
	for (size_t i = 0; i < N_USERS; i++) {
		char hash[PASSWORD_HASH_MAX];

		fuzz_assert(password_hash(users[i].password, users[i].cost, hash) == 0);
		off += (size_t)snprintf(ident_text + off, sizeof(ident_text) - off, "%s:%s\n",
					users[i].name, hash);
	}
	return 0;
}

static const struct user *
base_user(const char *name)
{
	for (size_t i = 0; i < N_USERS; i++)
		if (name_cmp(users[i].name, name) == 0)
			return &users[i];
	return NULL;
}

/* The replies queued so far: whole valid lines, PASS or ERR; counts ERR 401. */
static void
check_replies(struct client *c, size_t *bad_passwords)
{
	size_t len;
	char *out = fuzz_outq_take(&c->out, &len);

	fuzz_check_lines(out, len);
	for (char *p = out; p < out + len; p = strchr(p, '\n') + 1) {
		fuzz_assert(strncmp(p, "PASS ", 5) == 0 || strncmp(p, "ERR ", 4) == 0);
		if (strncmp(p, "ERR 401 ", 8) == 0)
			(*bad_passwords)++;
	}
	free(out);
}

static bool
all_zero(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != '\0')
			return false;
	return true;
}

/* How the dialogue ended, against the last password it was given. */
static void
check_outcome(const struct login *lg, struct ident *id, const char *password, size_t bad_passwords)
{
	const struct client *c = lg->auth.c;
	char canonical[NAME_MAX_LEN + 1];

	fuzz_assert(lg->done);
	fuzz_assert(lg->auth.failures <= settings_get()->login_attempts);
	if (!lg->ok) {
		fuzz_assert(lg->why == PART_LOST || lg->why == PART_REFUSED);
		fuzz_assert((lg->why == PART_REFUSED) ==
			    (lg->auth.failures == settings_get()->login_attempts));
		/* The attempt that runs out gets BYE (from client.c), not ERR 401. */
		fuzz_assert(bad_passwords == (size_t)lg->auth.failures - (lg->why == PART_REFUSED));
		return;
	}
	fuzz_assert(name_valid(c->name, strlen(c->name)));
	fuzz_assert(bad_passwords == (size_t)lg->auth.failures);
	if (lg->registered) {
		fuzz_assert(base_user(c->name) == NULL);
		fuzz_assert(ident_lookup(id, c->name, canonical) &&
			    strcmp(canonical, c->name) == 0);
		fuzz_assert(ident_verify(id, c->name, password, 1, canonical, NULL) == IDENT_OK);
	} else {
		const struct user *u = base_user(c->name);

		fuzz_assert(u != NULL && strcmp(u->name, c->name) == 0);
		fuzz_assert(strcmp(u->password, password) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], password[PASSWORD_MAX_LEN + 1] = "";
	size_t fed = 0, bad_passwords = 0;
	struct login lg;
	int rc = 0;

	fuzz_write_file(ident_path, ident_text, strlen(ident_text));
	srv.ident = ident_open(ident_path, err, sizeof(err));
	fuzz_assert(srv.ident != NULL);
	struct client *c = fuzz_client_new(&srv);
	login_start(&lg, c);

	while (rc == 0 && !lg.done) {
		char *line = NULL;
		size_t len = 0, avail;
		enum linebuf_result r = linebuf_next(&c->in, &line, &len);

		if (r == LB_NONE && fed == size) {
			rc = login_step(&lg, CLIENT_EOF, NULL, 0);
		} else if (r == LB_NONE) {
			char *space = linebuf_space(&c->in, &avail);
			size_t n = avail < size - fed ? avail : size - fed;

			fuzz_assert(space != NULL);

			memcpy(space, data + fed, n);
			linebuf_commit(&c->in, n);
			fed += n;
		} else if (r == LB_OVERLONG) {
			rc = login_step(&lg, CLIENT_OVERLONG, NULL, 0);
		} else {
			bool is_password = lg.have_name && len > 0;

			if (is_password)
				snprintf(password, sizeof(password), "%s", line);
			rc = login_step(&lg, CLIENT_LINE, line, len);
			if (is_password)
				fuzz_assert(all_zero(line, len));
		}
		check_replies(c, &bad_passwords);
	}
	fuzz_assert(rc == 0);
	check_outcome(&lg, srv.ident, password, bad_passwords);
	explicit_bzero(password, sizeof(password));
	fuzz_client_free(c);
	ident_close(srv.ident);
	srv.ident = NULL;
	return 0;
}
