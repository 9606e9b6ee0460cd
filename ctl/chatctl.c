/*
 * chatctl.c - steering a running chatd from a shell (chatctl(8)).
 *
 *   chatctl [-s SOCKET] [-c CONFIG] [-t SECONDS] COMMAND [ARGS]
 *   chatctl [-s SOCKET] [-c CONFIG]          commands from stdin, one a line
 *
 * What people type is checked against the command table chatd itself uses
 * (common/admin_proto.c) before anything is sent, so a typo is a usage
 * error (exit 2) even with no daemon running; the request sent is always
 * the canonical spelling ("clear-log" goes out as "log clear").  Nothing
 * is sent on a connection until its listener's uid is one chatctl trusts
 * (ctl_connect, ctl_trust.h).
 * chatctl has one thread.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_proto.h"
#include "config.h"
#include "ctl_conn.h"
#include "ctl_trust.h"
#include "secret.h"
#include "version.h"

/* Where the packaged chatd puts its admin socket. */
#define CTL_DEFAULT_SOCKET "/run/chatd/admin.sock"
#define CTL_DEFAULT_TIMEOUT_S 10
#define CTL_PASSWORD_MAX 512

struct ctl_options {
	const char *socket;
	const char *config;
	int timeout_ms;
	char *socket_owned;     /* from a config file */
	struct ctl_trust trust; /* who may serve the socket */
};

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: chatctl [-s SOCKET] [-c CONFIG] [-t SECONDS] [COMMAND [ARGS]]\n"
		"  -s, --socket SOCKET   chatd's admin socket\n"
		"  -c, --config CONFIG   take the socket and chatd's user from this chatd\n"
		"                        configuration\n"
		"                        (default %s, else %s)\n"
		"  -t, --timeout SECONDS give up on an unanswered step after this (default %d)\n"
		"  -h, --help            this text\n"
		"  -V, --version         print the version\n"
		"Without a COMMAND, commands are read from standard input, one a line.\n\n"
		"Commands:\n",
		CONFIG_DEFAULT_FILE, CTL_DEFAULT_SOCKET, CTL_DEFAULT_TIMEOUT_S);
	for (size_t i = 0; i < ADMIN_CMD_COUNT; i++) {
		const struct admin_cmd *cmd = &admin_commands[i];
		char u[128];

		admin_usage(cmd, false, u, sizeof(u));
		fprintf(out, "  %-28s %s%s%s%s\n", u, cmd->help, cmd->alias ? " (also: " : "",
			cmd->alias ? cmd->alias : "", cmd->alias ? ")" : "");
	}
	fprintf(out,
		"\nExit status: 0 done, 1 chatd refused the command (ERR), 2 usage error,\n"
		"3 cannot reach chatd (not running, permission denied, ERR 403, no answer,\n"
		"  the socket served by a user other than root, yours or chatd's: nothing sent).\n");
}

/*
 * Reads the configuration: -c CONFIG, else /etc/chatd/chatd.conf when it is
 * readable, even when -s names the socket.  The socket is -s, else the
 * configuration's admin_socket, else the packaged place; whom chatctl
 * trusts to serve it is root, its own user and the configuration's `user`.
 */
static int
read_config(struct ctl_options *o)
{
	struct settings s;
	char err[1024];
	const char *config = o->config;

	if (config == NULL && access(CONFIG_DEFAULT_FILE, R_OK) == 0)
		config = CONFIG_DEFAULT_FILE;
	if (config == NULL) {
		ctl_trust_init(&o->trust, NULL, NULL);
		if (o->socket == NULL)
			o->socket = CTL_DEFAULT_SOCKET;
		return CTL_OK;
	}
	if (settings_load(config, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "chatctl: %s\n", err);
		return CTL_USAGE;
	}
	ctl_trust_init(&o->trust, s.user, config);
	if (o->socket == NULL)
		o->socket = o->socket_owned = strdup(s.admin_socket);
	settings_free(&s);
	if (o->socket == NULL) {
		fprintf(stderr, "chatctl: out of memory\n");
		return CTL_USAGE;
	}
	return CTL_OK;
}

/*
 * Whether typed holds a control character (a tab is a space): the request
 * is one line, and a line end in an argument (a notice, a kick reason)
 * would make what follows it a command of its own.
 */
static bool
has_control(const char *typed)
{
	for (const unsigned char *p = (const unsigned char *)typed; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return true;
	return false;
}

/*
 * The request line for what was typed, canonical words first, into out;
 * for "user add" and "user passwd" the user's name goes to secret_for
 * (else it is left empty), whose password add_secret() appends once
 * chatctl is connected to a chatd it trusts.  CTL_OK or CTL_USAGE.
 */
static int
build_request(char *typed, char *out, size_t outlen, char *secret_for, size_t secret_for_len)
{
	struct admin_request req;
	char err[256];
	int n;

	secret_for[0] = '\0';
	if (has_control(typed)) {
		fprintf(stderr, "chatctl: a control character (a line end?) in the command; "
				"nothing was sent\n");
		return CTL_USAGE;
	}
	if (admin_parse(typed, ADMIN_PARSE_NO_SECRET | ADMIN_PARSE_ALIASES, &req, err,
			sizeof(err)) != 0) {
		fprintf(stderr, "chatctl: %s\n", err);
		return CTL_USAGE;
	}
	n = snprintf(out, outlen, "%s", req.cmd->words);
	if (req.room != NULL)
		n += snprintf(out + n, outlen - (size_t)n, " %s", req.room);
	if (req.name != NULL)
		n += snprintf(out + n, outlen - (size_t)n, " %s", req.name);
	if (req.count > 0)
		n += snprintf(out + n, outlen - (size_t)n, " %ld", req.count);
	if (req.force)
		n += snprintf(out + n, outlen - (size_t)n, " --force");
	if (req.text != NULL)
		n += snprintf(out + n, outlen - (size_t)n, " %s", req.text);
	if ((size_t)n >= outlen) {
		fprintf(stderr, "chatctl: the command is longer than %d bytes\n", ADMIN_MAX_LINE);
		return CTL_USAGE;
	}
	if (req.cmd->args == ARGS_NAME_SECRET)
		snprintf(secret_for, secret_for_len, "%s", req.name);
	return CTL_OK;
}

/*
 * Reads the password for user `name` (none: nothing to do) and appends it
 * to the request in out.  Called connected, so a password is never typed
 * for a chatd chatctl could not reach or does not trust.  CTL_OK or
 * CTL_USAGE.
 */
static int
add_secret(char *out, size_t outlen, const char *name)
{
	char password[CTL_PASSWORD_MAX], prompt[96];
	size_t used = strlen(out);
	int n;

	if (name[0] == '\0')
		return CTL_OK;
	snprintf(prompt, sizeof(prompt), "Password for %s: ", name);
	if (secret_read(prompt, true, password, sizeof(password)) < 0)
		return CTL_USAGE;
	/* chatd would refuse it with a usage that names a PASSWORD argument chatctl never takes. */
	if (password[0] == '\0') {
		fprintf(stderr, "chatctl: the password is empty; nothing was sent\n");
		return CTL_USAGE;
	}
	n = snprintf(out + used, outlen - used, " %s", password);
	explicit_bzero(password, sizeof(password));
	if (n < 0 || (size_t)n >= outlen - used) {
		fprintf(stderr, "chatctl: the command is longer than %d bytes\n", ADMIN_MAX_LINE);
		return CTL_USAGE;
	}
	return CTL_OK;
}

static int
run_one(struct ctl_conn *conn, const struct ctl_options *o, char *typed)
{
	char request[ADMIN_MAX_LINE + 1], secret_for[ADMIN_MAX_LINE];
	int rc = build_request(typed, request, sizeof(request), secret_for, sizeof(secret_for));

	if (rc == CTL_OK)
		rc = add_secret(request, sizeof(request), secret_for);
	if (rc != CTL_OK) {
		explicit_bzero(request, sizeof(request));
		return rc;
	}
	/* chatd closes an idle connection; the prompt may have waited long. */
	if (ctl_closed(conn)) {
		ctl_close(conn);
		rc = ctl_connect(conn, o->socket, &o->trust, o->timeout_ms);
	}
	if (rc == CTL_OK)
		rc = ctl_request(conn, request);
	explicit_bzero(request, sizeof(request)); /* it may hold a password */
	return rc;
}

/* The seeds' operator console: a prompt on a terminal, plain lines from a pipe. */
static int
run_console(const struct ctl_options *o)
{
	struct ctl_conn conn;
	bool tty = isatty(STDIN_FILENO);
	char *line = NULL;
	size_t cap = 0;
	int worst = CTL_OK, rc;

	if ((rc = ctl_connect(&conn, o->socket, &o->trust, o->timeout_ms)) != CTL_OK)
		return rc;
	for (;;) {
		if (tty) {
			fputs("chatctl> ", stdout);
			fflush(stdout);
		}
		if (getline(&line, &cap, stdin) < 0)
			break;
		line[strcspn(line, "\r\n")] = '\0';
		char *p = line + strspn(line, " \t");
		if (*p == '\0' || *p == '#')
			continue;
		if (strcmp(p, "quit") == 0 || strcmp(p, "exit") == 0)
			break;
		rc = run_one(&conn, o, p);
		if (rc > worst)
			worst = rc;
	}
	if (tty)
		putchar('\n');
	free(line);
	ctl_close(&conn);
	return worst;
}

/* argv words joined by spaces: what the console would have read. */
static char *
join_words(char **argv, int argc)
{
	size_t len = 1;
	char *s;

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if ((s = calloc(1, len)) == NULL)
		return NULL;
	for (int i = 0; i < argc; i++) {
		if (i > 0)
			strcat(s, " ");
		strcat(s, argv[i]);
	}
	return s;
}

static int
run_command(const struct ctl_options *o, char **argv, int argc)
{
	struct ctl_conn conn;
	char request[ADMIN_MAX_LINE + 1], secret_for[ADMIN_MAX_LINE];
	char *typed = join_words(argv, argc);
	int rc;

	if (typed == NULL) {
		fprintf(stderr, "chatctl: out of memory\n");
		return CTL_USAGE;
	}
	rc = build_request(typed, request, sizeof(request), secret_for, sizeof(secret_for));
	free(typed);
	if (rc != CTL_OK)
		return rc;
	/* Connected first: no password is asked for a chatd that cannot hear it. */
	if ((rc = ctl_connect(&conn, o->socket, &o->trust, o->timeout_ms)) == CTL_OK) {
		if ((rc = add_secret(request, sizeof(request), secret_for)) == CTL_OK &&
		    ctl_closed(&conn)) {
			/* chatd closes an idle connection; the prompt may have waited long. */
			ctl_close(&conn);
			rc = ctl_connect(&conn, o->socket, &o->trust, o->timeout_ms);
		}
		if (rc == CTL_OK)
			rc = ctl_request(&conn, request);
		ctl_close(&conn);
	}
	explicit_bzero(request, sizeof(request));
	return rc;
}

static int
parse_timeout(const char *arg, int *ms)
{
	char *end;
	long s;

	errno = 0;
	s = strtol(arg, &end, 10);
	if (errno != 0 || *end != '\0' || s < 1 || s > 3600) {
		fprintf(stderr, "chatctl: --timeout takes seconds from 1 to 3600\n");
		return -1;
	}
	*ms = (int)s * 1000;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_options o = { .timeout_ms = CTL_DEFAULT_TIMEOUT_S * 1000 };
	int ch, rc;

	/* "+": options end at the command, so "kick bob -x" passes "-x" on. */
	while ((ch = getopt_long(argc, argv, "+s:c:t:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			o.socket = optarg;
			break;
		case 'c':
			o.config = optarg;
			break;
		case 't':
			if (parse_timeout(optarg, &o.timeout_ms) < 0)
				return CTL_USAGE;
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		case 'V':
			printf("chatctl %s\n", CHATD_VERSION);
			return CTL_OK;
		default:
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if ((rc = read_config(&o)) != CTL_OK)
		return rc;
	if (optind < argc)
		rc = run_command(&o, argv + optind, argc - optind);
	else
		rc = run_console(&o);
	free(o.socket_owned);
	return rc;
}
