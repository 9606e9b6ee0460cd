/*
 * commands.c - fuzz target for the request framing and the slash commands
 * of a logged-in client (common/linebuf.c, daemon/commands.c).
 *
 * Input: what a logged-in client sends.  It is cut into lines by a linebuf
 * with the configured max_line, lines that fail text_check() are dropped
 * (client.c refuses them before any command sees them), and every command
 * line goes through command_parse() and command_run() for the client
 * "fuzzer" in a real room, history and identification store (files in the
 * target's temporary directory), with a second member, "peer", to write to.
 * Room messages are left out: they are the history's business (a /say to
 * a room it is in posts one: no reply line then, its OK comes through the
 * room at the next command's collect).
 *
 * Checked: command_parse() names the command the line starts with, or none
 * exactly when no command has that name, and its arguments are the rest
 * after one space; every reply is a whole valid line of at most
 * max_line + 128 bytes (docs/PROTOCOL.md, "Framing"); a command that goes
 * on answers with data lines and then exactly one final OK or ERR; /quit
 * answers nothing and leaves a departure text that is valid text, since
 * everyone online sees it in PART.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "harness.h"
#include "history.h"
#include "ident.h"
#include "linebuf.h"
#include "proto.h"
#include "room.h"
#include "wire.h"
#include "server.h"
#include "utf8.h"

#define SETTINGS \
	"max_line = 1024;\n" \
	"hash_cost = 1;\n" \
	"history_memory = 50;\n" \
	"history_replay = 20;\n"
#define HISTORY_MESSAGES 30
#define COMMANDS_PER_INPUT 32

static struct server srv;
static struct client *me, *peer;

static int
no_fdatasync(int fd)
{
	return 0;
}

static const struct history_io io = { .write = write, .fdatasync = no_fdatasync };

/* A history of HISTORY_MESSAGES messages, so /history has something to show. */
static void
open_history(void)
{
	char path[PATH_MAX], err[512], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct history_stats st;

	fuzz_assert(f != NULL);
	fputs("chatd-history 2\n", f);
	for (int i = 1; i <= HISTORY_MESSAGES; i++)
		fprintf(f, "%d 2026-11-21T09:30:%02d.123Z lobby msg %s message number %d\n", i, i,
			i % 2 ? "alice" : "peer", i);
	fclose(f);
	fuzz_path(path, "history");
	fuzz_write_file(path, text, len);
	free(text);

	struct history_config cfg = {
		.path = path,
		.memory = (size_t)settings_get()->history_memory,
		.max_size = INT64_MAX,
		.io = &io,
	};
	srv.history = history_open(&cfg, room_publish_history, srv.hub, err, sizeof(err));
	fuzz_assert(srv.history != NULL);
	history_get_stats(srv.history, &st);
	fuzz_assert(st.last_id == HISTORY_MESSAGES);
	room_set_last_msg_id(srv.hub, st.last_id);
}

/* Moves what the room has for c into its output, and throws that away. */
static void
drain(struct client *c)
{
	enum part_reason why;
	char text[256];
	size_t len;
	int rc;

	do
		rc = room_collect(srv.hub, c, settings_get()->send_queue_limit, &why, text,
				  sizeof(text));
	while (rc > 0);
	fuzz_assert(rc == 0);
	free(fuzz_outq_take(&c->out, &len));
}

static struct client *
member(const char *name)
{
	struct client *c = fuzz_client_new(&srv);
	struct room_join_reply rep;

	snprintf(c->name, sizeof(c->name), "%s", name);
	room_attach(srv.hub, c);
	fuzz_assert(room_login(srv.hub, c, &rep) == 0);
	room_join_reply_release(&rep);
	return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[PATH_MAX], err[512];

	fuzz_init_process();
	fuzz_publish_settings(SETTINGS);
	srv.hub = hub_new(wire_formats);
	fuzz_assert(srv.hub != NULL);
	open_history();
	fuzz_path(path, "ident");
	srv.ident = ident_open(path, err, sizeof(err));
	fuzz_assert(srv.ident != NULL);
	fuzz_assert(ident_register(srv.ident, "fuzzer", "secret", 1, NULL) == IDENT_OK);
	me = member("fuzzer");
	peer = member("peer");
	drain(me);
	drain(peer);
	return 0;
}

/* command_parse() against the rule in commands.h. */
static void
check_parse(const char *line)
{
	char *copy = strdup(line), *args;
	const char *word = line + 1;
	size_t wlen = strcspn(word, " ");

	fuzz_assert(copy != NULL);
	const struct command *cmd = command_parse(copy, &args);
	if (cmd != NULL) {
		fuzz_assert(strlen(cmd->name) == wlen && memcmp(cmd->name, word, wlen) == 0);
	} else {
		for (size_t i = 0; i < command_count; i++)
			fuzz_assert(strlen(command_table[i].name) != wlen ||
				    memcmp(command_table[i].name, word, wlen) != 0);
	}
	fuzz_assert(args == copy + 1 + wlen + (word[wlen] == ' '));
	fuzz_assert(strcmp(args, line + (args - copy)) == 0);
	free(copy);
}

static bool
is_final(const char *p)
{
	return strncmp(p, "OK ", 3) == 0 || strncmp(p, "ERR ", 4) == 0;
}

/* Lines chatd sends: whole, valid, at most max_line + 128 bytes with the LF. */
static size_t
check_sent(const char *out, size_t len)
{
	size_t limit = (size_t)settings_get()->max_line + PROTO_SERVER_OVERHEAD;

	for (const char *p = out; p < out + len; p = strchr(p, '\n') + 1)
		fuzz_assert((size_t)(strchr(p, '\n') - p) + 1 <= limit);
	return fuzz_check_lines(out, len);
}

/* Data lines, then exactly one OK or ERR, last. */
static void
check_reply(const char *out, size_t len)
{
	size_t lines = check_sent(out, len), finals = 0;
	const char *last = out;

	fuzz_assert(lines >= 1);
	for (const char *p = out; p < out + len; p = strchr(p, '\n') + 1) {
		finals += is_final(p);
		last = p;
	}
	fuzz_assert(finals == 1 && is_final(last));
}

static void
run_command(char *line)
{
	char text[256] = "";
	size_t len;
	char *out;

	check_parse(line);
	drain(me);
	drain(peer);
	unsigned posted = me->unacked;
	enum command_result r = command_run(me, line, text, sizeof(text));
	out = fuzz_outq_take(&me->out, &len);
	switch (r) {
	case COMMAND_DONE:
		/* /say to a room it is in posts a message: its OK comes through the room. */
		if (len == 0 && me->unacked == posted + 1)
			break;
		check_reply(out, len);
		break;
	case COMMAND_QUIT:
		fuzz_assert(len == 0);
		fuzz_assert(text[0] != '\0' && text_check(text, strlen(text)) == TEXT_OK);
		break;
	case COMMAND_FATAL:
		fuzz_assert(!"a command failed for want of memory");
	}
	free(out);

	/* What reached the other member (a PRIV) is well-formed too. */
	room_collect(srv.hub, peer, settings_get()->send_queue_limit, &(enum part_reason){ 0 },
		     text, sizeof(text));
	out = fuzz_outq_take(&peer->out, &len);
	check_sent(out, len);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linebuf lb;
	size_t fed = 0;
	int commands = 0;

	fuzz_assert(linebuf_init(&lb, (size_t)settings_get()->max_line) == 0);
	while (fed < size && commands < COMMANDS_PER_INPUT) {
		size_t avail, n, len;
		char *space = linebuf_space(&lb, &avail), *line;
		enum linebuf_result r;

		fuzz_assert(space != NULL);
		n = avail < size - fed ? avail : size - fed;
		memcpy(space, data + fed, n);
		linebuf_commit(&lb, n);
		fed += n;
		while (commands < COMMANDS_PER_INPUT &&
		       (r = linebuf_next(&lb, &line, &len)) != LB_NONE) {
			if (r != LB_LINE || len == 0 || text_check(line, len) != TEXT_OK)
				continue;
			if (line[0] != '/' || line[1] == '/')
				continue; /* a room message */
			run_command(line);
			commands++;
		}
	}
	linebuf_free(&lb);
	return 0;
}
