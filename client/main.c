/*
 * main.c - chat, the terminal client of chatd: command line options, where
 * the password comes from, and the choice between the terminal mode (a
 * person at a terminal) and the plain mode (a script at a pipe).
 * Runs on chat's one thread, before either mode starts.
 */
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exitcode.h"
#include "names.h"
#include "options.h"
#include "secret.h"
#include "timefmt.h"
#include "tls.h"
#include "version.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: chat [options] [HOST [PORT]]\n"
		"  -n, --name NAME           log in as NAME (asked for on a terminal)\n"
		"  -r, --room ROOM           join ROOM after logging in and talk there\n"
		"  -p, --password-file FILE  read the password from the first line of FILE\n"
		"                            (or set " SECRET_ENV "; asked for on a terminal)\n"
		"  -g, --guest               log in as a guest, without a password, where the\n"
		"                            server lets guests in\n"
		"      --plain               the script mode even on a terminal\n"
		"      --reconnect           the script mode reconnects when the connection\n"
		"                            drops (the terminal mode always does)\n"
		"      --tls                 connect over TLS, verifying the server's certificate\n"
		"                            against the system's CAs and HOST (port 7778)\n"
		"      --ca FILE             --tls, trusting only the CA certificates in FILE\n"
		"      --fingerprint SHA256:HEX\n"
		"                            --tls, accepting only the certificate of that\n"
		"                            SHA-256 fingerprint (a self-signed one)\n"
		"      --color WHEN          names in colour: auto (default), always, never\n"
		"  -t, --timeout SECONDS     connect and reply timeout (default %d)\n"
		"  -h, --help                this text\n"
		"  -V, --version             the version\n"
		"Without HOST, a terminal session asks for the host and the port;\n"
		"the defaults are " CHAT_DEFAULT_HOST
		" and 7777 (7778 with --tls).  See chat(1).\n",
		CHAT_DEFAULT_TIMEOUT_S);
}

const char *
chat_default_port(const struct chat_options *o)
{
	return o->tls ? CHAT_DEFAULT_TLS_PORT : CHAT_DEFAULT_PORT;
}

/* Numeric ports only: a typo must not silently become a service name. */
bool
chat_port_valid(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return s[0] >= '0' && s[0] <= '9' && *end == '\0' && v >= 1 && v <= 65535;
}

static int
parse_color(const char *s, enum color_when *out)
{
	static const struct {
		const char *word;
		enum color_when when;
	} WORDS[] = { { "auto", COLOR_AUTO },
		      { "always", COLOR_ALWAYS },
		      { "never", COLOR_NEVER } };

	for (size_t i = 0; i < sizeof(WORDS) / sizeof(WORDS[0]); i++) {
		if (strcmp(s, WORDS[i].word) == 0) {
			*out = WORDS[i].when;
			return 0;
		}
	}
	return -1;
}

static int
parse_timeout(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (s[0] < '0' || s[0] > '9' || *end != '\0' || v < 1 || v > 3600)
		return -1;
	*out = (int)v;
	return 0;
}

enum { OPT_PLAIN = 256, OPT_COLOR, OPT_PASSWORD, OPT_RECONNECT, OPT_TLS, OPT_CA, OPT_PIN };

/* What --tls, --ca and --fingerprint said, until the TLS context is made. */
struct tls_args {
	const char *ca_file;
	bool pinned;
	unsigned char pin[TLS_PIN_LEN];
};

static const struct option LONG_OPTIONS[] = {
	{ "name", required_argument, NULL, 'n' },
	{ "room", required_argument, NULL, 'r' },
	{ "password-file", required_argument, NULL, 'p' },
	{ "guest", no_argument, NULL, 'g' },
	/* Spelt out so that it is refused, not taken as short for --password-file. */
	{ "password", required_argument, NULL, OPT_PASSWORD },
	{ "plain", no_argument, NULL, OPT_PLAIN },
	{ "reconnect", no_argument, NULL, OPT_RECONNECT },
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "fingerprint", required_argument, NULL, OPT_PIN },
	{ "color", required_argument, NULL, OPT_COLOR },
	{ "colour", required_argument, NULL, OPT_COLOR },
	{ "timeout", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Fills o from argv; returns -1 (message printed) on a usage error, 1 when done (help). */
static int
parse_args(int argc, char **argv, struct chat_options *o, const char **password_file,
	   struct tls_args *ta)
{
	int c;

	while ((c = getopt_long(argc, argv, "n:p:r:t:ghV", LONG_OPTIONS, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->name = optarg;
			break;
		case 'p':
			*password_file = optarg;
			break;
		case 'g':
			o->guest = true;
			break;
		case 'r':
			o->room = optarg[0] == '#' ? optarg + 1 : optarg;
			if (!room_name_valid(o->room, strlen(o->room))) {
				fprintf(stderr,
					"chat: invalid room name '%s': 1 to %d letters, digits, '_', "
					"'.' or '-', starting with a letter\n",
					o->room, ROOM_NAME_MAX);
				return -1;
			}
			break;
		case OPT_PASSWORD:
			fprintf(stderr,
				"chat: no password on the command line, where every user of "
				"the machine can read it: use --password-file FILE or " SECRET_ENV
				"\n");
			return -1;
		case OPT_PLAIN:
			o->plain = true;
			break;
		case OPT_RECONNECT:
			o->reconnect = true;
			break;
		case OPT_TLS:
			o->tls = true;
			break;
		case OPT_CA:
			o->tls = true;
			ta->ca_file = optarg;
			break;
		case OPT_PIN:
			o->tls = true;
			if (tls_parse_fingerprint(optarg, ta->pin) < 0) {
				fprintf(stderr, "chat: --fingerprint takes SHA256: and the 64 hex "
						"digits of the certificate's SHA-256, as in "
						"SHA256:AB:CD:...\n");
				return -1;
			}
			ta->pinned = true;
			break;
		case OPT_COLOR:
			if (parse_color(optarg, &o->color) < 0) {
				fprintf(stderr, "chat: --color takes auto, always or never\n");
				return -1;
			}
			break;
		case 't':
			if (parse_timeout(optarg, &o->timeout_s) < 0) {
				fprintf(stderr, "chat: --timeout takes 1 to 3600 seconds\n");
				return -1;
			}
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("chat (chatd) %s\n", CHATD_VERSION);
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (argc - optind > 2) {
		usage(stderr);
		return -1;
	}
	if (o->guest && *password_file != NULL) {
		fprintf(stderr, "chat: --guest and --password-file: a guest has no password\n");
		return -1;
	}
	if (ta->ca_file != NULL && ta->pinned) {
		fprintf(stderr, "chat: --ca and --fingerprint: one or the other\n");
		return -1;
	}
	if (optind < argc)
		o->host = argv[optind];
	if (optind + 1 < argc)
		o->port = argv[optind + 1];
	if (o->host != NULL && o->host[0] == '\0') {
		fprintf(stderr, "chat: empty host name\n");
		return -1;
	}
	if (o->port != NULL && !chat_port_valid(o->port)) {
		fprintf(stderr, "chat: invalid port '%s': a number from 1 to 65535\n", o->port);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct chat_options o = { .color = COLOR_AUTO, .timeout_s = CHAT_DEFAULT_TIMEOUT_S };
	const char *password_file = NULL;
	struct tls_args ta = { 0 };
	char err[512];
	int rc;

	setlocale(LC_ALL, "");
	/* The reconnect jitter (conn_backoff_next()): each client its own sequence. */
	srandom((unsigned)time_mono_ms() ^ (unsigned)getpid() << 16);
	rc = parse_args(argc, argv, &o, &password_file, &ta);
	if (rc != 0)
		return rc < 0 ? CHAT_EXIT_USAGE : CHAT_EXIT_OK;
	/* The name goes out as a protocol line: one with a line end would be two. */
	if (o.name != NULL && !name_valid(o.name, strlen(o.name))) {
		fprintf(stderr,
			"chat: invalid name: 1 to %d letters, digits, '_', '.' or '-', starting "
			"with a letter or digit\n",
			NAME_MAX_LEN);
		return CHAT_EXIT_LOGIN;
	}
	if (o.tls && (o.tls_ctx = tls_ctx_new(ta.ca_file, ta.pinned ? ta.pin : NULL, err,
					      sizeof(err))) == NULL) {
		fprintf(stderr, "chat: %s\n", err);
		return CHAT_EXIT_USAGE;
	}
	/* A guest sends no password: CHAT_PASSWORD, if set, is neither read nor removed. */
	if (!o.guest && secret_load(password_file, &o.password, err, sizeof(err)) < 0) {
		fprintf(stderr, "chat: %s\n", err);
		tls_ctx_free(o.tls_ctx);
		return CHAT_EXIT_USAGE;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
		o.plain = true;
	rc = o.plain ? plain_run(&o) : tty_run(&o);
	secret_free(o.password);
	tls_ctx_free(o.tls_ctx);
	return rc;
}
