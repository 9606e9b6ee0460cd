/*
 * main.c - chatd's command line.
 *
 *   chatd [-c FILE]       run in the foreground (systemd style)
 *   chatd -d [-c FILE]    detach once serving (a classic daemon)
 *   chatd -t [-c FILE]    check the configuration and exit 0 or 1
 *   chatd -T [-c FILE]    the same, and print the settings in effect
 *
 * Runs on the main thread, which server_run() (server.c) makes the
 * control thread.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "privdrop.h"
#include "safefile.h"
#include "tls.h"
#include "server.h"
#include "version.h"

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: chatd [-d | -t | -T] [-c FILE]\n"
		"  -c, --config FILE  configuration file (default %s)\n"
		"  -d, --daemon       detach from the terminal once serving\n"
		"  -t, --test         check the configuration and exit\n"
		"  -T, --show-config  check it and print every setting in effect\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n",
		CONFIG_DEFAULT_FILE);
}

static int
check_config(const char *path, bool show)
{
	struct privdrop pd;
	struct settings s;
	char err[1024];

	if (settings_load(path, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "chatd: %s\n", err);
		return 1;
	}
	/*
	 * The certificate and key too: "chatd -t" before a reload catches a bad
	 * pair.  Run as root with `user` set, the files of that user are chatd's
	 * own, as they will be to the daemon (server.c).
	 */
	if (privdrop_prepare(&s, &pd, err, sizeof(err)) < 0) {
		fprintf(stderr, "chatd: %s\n", err);
		settings_free(&s);
		return 1;
	}
	if (pd.active)
		safefile_trust(pd.uid, pd.gid);
	if (s.tls_cert[0] && tls_load(&s, err, sizeof(err)) < 0) {
		fprintf(stderr, "chatd: %s\n", err);
		settings_free(&s);
		return 1;
	}
	tls_close();
	if (show)
		settings_write(&s, stdout);
	else
		printf("chatd: %s: configuration OK\n", s.config_file);
	settings_free(&s);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "test", no_argument, NULL, 't' },
		{ "show-config", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct server_options opt = { .config_file = CONFIG_DEFAULT_FILE };
	bool test = false, show = false;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:dtThV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			opt.config_file = optarg;
			break;
		case 'd':
			opt.daemonize = true;
			break;
		case 'T':
			show = true;
			/* FALLTHROUGH */
		case 't':
			test = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("chatd %s\n", CHATD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return test ? check_config(opt.config_file, show) : server_run(&opt);
}
