/*
 * options.c - chatbench's command line (see options.h and usage() below).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: chatbench [options]\n"
		"  -P, --proto NAME        chatd (default), irc or raw\n"
		"  -H, --host ADDR         loopback address of the server (default 127.0.0.1)\n"
		"  -p, --port PORT         its port (required)\n"
		"  -n, --clients N         clients to log in (default 100)\n"
		"  -s, --senders S         how many of them send (default 10; 0: idle)\n"
		"  -d, --duration SEC      how long they send (default 10)\n"
		"  -r, --rate R            messages per second in total; 0: as fast as possible (default)\n"
		"  -w, --window W          messages in flight per sender when as fast as possible (32)\n"
		"      --size BYTES        message text length (default 64)\n"
		"  -c, --connect-rate C    connections opened per second (default 2000)\n"
		"      --login-window K    logins in progress at once (default 500)\n"
		"      --login-timeout SEC give up on clients not logged in by then (default 60)\n"
		"      --settle SEC        pause between login and sending (default 0.5)\n"
		"      --drain SEC         longest wait for deliveries (and chatd's OKs) after sending (default 3)\n"
		"      --stalled K         K clients that never read after login (default 0)\n"
		"      --sources K         spread clients over K source addresses 127.0.1.x (default 1)\n"
		"      --first I           first user number: users are b<I>..b<I+N-1> (default 0)\n"
		"      --password PW       password of every user (default benchpw)\n"
		"      --server-pid PID    report the server's RSS and threads from /proc\n"
		"      --stop-server       then send it SIGTERM and time its exit\n"
		"      --no-nodelay        do not set TCP_NODELAY on client sockets\n"
		"      --label TEXT        copied into the JSON output\n"
		"      --tokens            (chatd) ask for a resume token after a password login\n"
		"                          and present it when logging in again, as chat does\n"
		"      --restart CMD       the login storm: once all are logged in, run CMD with\n"
		"                          sh -c (it restarts the server on the same port); every\n"
		"                          client reconnects as chat does (backoff 1 s doubling,\n"
		"                          jitter 50..150 %%) and the time until all are back is\n"
		"                          reported (needs -s 0); CMD's output goes to /dev/null\n"
		"                          unless it redirects it\n"
		"      --storm-timeout SEC give up on the storm after SEC (default 600)\n"
		"      --rooms R           the rooms layout: after its login client i joins room\n"
		"                          r<i mod R> (chatd: /join, IRC: JOIN #r<i mod R>) and\n"
		"                          sends there; the senders are still clients 0..S-1, so\n"
		"                          -s R is one sender per room, -s N every client\n"
		"      --joins J           with --rooms: each client joins J rooms (at most %d),\n"
		"                          r<(i*J+k) mod R> for k < J; J > 1 needs -s 0.  The\n"
		"                          joins of --login-window clients are in progress at once\n"
		"      --join-timeout SEC  give up on clients not in their rooms by then (default:\n"
		"                          the --login-timeout)\n"
		"      --tls               connect over TLS (any protocol), without verifying the\n"
		"                          server; the handshakes are reported apart\n"
		"      --ca FILE           --tls, verifying the server against the CAs in FILE\n"
		"      --handshake-only    --tls: each client closes once its handshake is done\n"
		"                          (needs -s 0): handshakes per second and the server's\n"
		"                          CPU per handshake\n"
		"      --resume            --handshake-only: each client also waits for the\n"
		"                          server's session ticket; once all are done, a\n"
		"                          second round where each resumes its session\n"
		"      --irc-pass          (irc) send PASS with the password before NICK and USER\n"
		"                          (chatd's IRC port: the nick is the account)\n"
		"      --channel NAME      (irc) the channel of the one-room layout (default\n"
		"                          #bench; chatd's IRC port: #lobby is its default room,\n"
		"                          which every client is in from its login)\n",
		SESSION_ROOMS_MAX);
}

static double
parse_num(const char *name, const char *s, double lo, double hi)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= lo && v <= hi)) {
		fprintf(stderr, "chatbench: %s: '%s' is not a number in %g..%g\n", name, s, lo, hi);
		exit(2);
	}
	return v;
}

static void
check_rooms(struct options *o)
{
	if (o->joins > 0 && o->rooms == 0) {
		fprintf(stderr, "chatbench: --joins needs --rooms\n");
		exit(2);
	}
	if (o->rooms == 0)
		return;
	if (o->joins == 0)
		o->joins = 1;
	if (o->join_timeout == 0)
		o->join_timeout = o->login_timeout;
	if (o->proto->join == NULL) {
		fprintf(stderr, "chatbench: the %s protocol has no rooms\n", o->proto->name);
		exit(2);
	}
	if (o->joins > o->rooms || (o->joins > 1 && o->senders > 0)) {
		fprintf(stderr, "chatbench: --joins must be at most --rooms, and 1 with senders\n");
		exit(2);
	}
	if (o->restart != NULL) {
		fprintf(stderr, "chatbench: --restart is for the one-room layout\n");
		exit(2);
	}
}

void
parse_options(int argc, char **argv, struct options *o)
{
	/* clang-format off */
	enum { O_SIZE = 256, O_LOGIN_WINDOW, O_LOGIN_TIMEOUT, O_SETTLE, O_DRAIN, O_STALLED,
	       O_SOURCES, O_FIRST, O_PASSWORD, O_PID, O_STOP, O_NO_NODELAY, O_LABEL, O_TOKENS,
	       O_RESTART, O_STORM_TIMEOUT, O_ROOMS, O_JOINS, O_JOIN_TIMEOUT, O_TLS, O_CA,
	       O_HANDSHAKE_ONLY, O_RESUME, O_IRC_PASS, O_CHANNEL };
	static const struct option longopts[] = {
		{ "proto", 1, 0, 'P' }, { "host", 1, 0, 'H' }, { "port", 1, 0, 'p' },
		{ "clients", 1, 0, 'n' }, { "senders", 1, 0, 's' }, { "duration", 1, 0, 'd' },
		{ "rate", 1, 0, 'r' }, { "window", 1, 0, 'w' }, { "connect-rate", 1, 0, 'c' },
		{ "size", 1, 0, O_SIZE }, { "login-window", 1, 0, O_LOGIN_WINDOW },
		{ "login-timeout", 1, 0, O_LOGIN_TIMEOUT }, { "settle", 1, 0, O_SETTLE },
		{ "drain", 1, 0, O_DRAIN }, { "stalled", 1, 0, O_STALLED },
		{ "sources", 1, 0, O_SOURCES }, { "first", 1, 0, O_FIRST },
		{ "password", 1, 0, O_PASSWORD }, { "server-pid", 1, 0, O_PID },
		{ "stop-server", 0, 0, O_STOP }, { "no-nodelay", 0, 0, O_NO_NODELAY },
		{ "label", 1, 0, O_LABEL }, { "tokens", 0, 0, O_TOKENS },
		{ "restart", 1, 0, O_RESTART }, { "storm-timeout", 1, 0, O_STORM_TIMEOUT },
		{ "rooms", 1, 0, O_ROOMS }, { "joins", 1, 0, O_JOINS },
		{ "join-timeout", 1, 0, O_JOIN_TIMEOUT }, { "tls", 0, 0, O_TLS },
		{ "ca", 1, 0, O_CA }, { "handshake-only", 0, 0, O_HANDSHAKE_ONLY },
		{ "resume", 0, 0, O_RESUME }, { "irc-pass", 0, 0, O_IRC_PASS },
		{ "channel", 1, 0, O_CHANNEL },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	int opt;

	*o = (struct options){
		.proto = &proto_chatd, .host = "127.0.0.1", .port = -1, .clients = 100,
		.senders = 10, .duration = 10, .window = 32, .size = 64, .connect_rate = 2000,
		.login_window = 500, .login_timeout = 60, .settle = 0.5, .drain = 3, .sources = 1,
		.password = "benchpw", .label = "", .nodelay = true, .storm_timeout = 600,
		.channel = "#bench",
	};
	while ((opt = getopt_long(argc, argv, "P:H:p:n:s:d:r:w:c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'P':
			if (strcmp(optarg, "chatd") == 0)
				o->proto = &proto_chatd;
			else if (strcmp(optarg, "irc") == 0)
				o->proto = &proto_irc;
			else if (strcmp(optarg, "raw") == 0)
				o->proto = &proto_raw;
			else {
				fprintf(stderr, "chatbench: unknown protocol '%s' (chatd, irc, raw)\n", optarg);
				exit(2);
			}
			break;
		case 'H': o->host = optarg; break;
		case 'p': o->port = (int)parse_num("--port", optarg, 1, 65535); break;
		case 'n': o->clients = (unsigned)parse_num("--clients", optarg, 1, 1000000); break;
		case 's': o->senders = (unsigned)parse_num("--senders", optarg, 0, 1000000); break;
		case 'd': o->duration = parse_num("--duration", optarg, 0, 86400); break;
		case 'r': o->rate = parse_num("--rate", optarg, 0, 1e9); break;
		case 'w': o->window = (unsigned)parse_num("--window", optarg, 1, 1000000); break;
		case 'c': o->connect_rate = parse_num("--connect-rate", optarg, 1, 1e7); break;
		case O_SIZE: o->size = (unsigned)parse_num("--size", optarg, 0, 4000); break;
		case O_LOGIN_WINDOW:
			o->login_window = (unsigned)parse_num("--login-window", optarg, 1, 1000000);
			break;
		case O_LOGIN_TIMEOUT:
			o->login_timeout = parse_num("--login-timeout", optarg, 0.1, 86400);
			break;
		case O_SETTLE: o->settle = parse_num("--settle", optarg, 0, 3600); break;
		case O_DRAIN: o->drain = parse_num("--drain", optarg, 0, 3600); break;
		case O_STALLED: o->stalled = (unsigned)parse_num("--stalled", optarg, 0, 1000000); break;
		case O_SOURCES: o->sources = (unsigned)parse_num("--sources", optarg, 1, 60000); break;
		case O_FIRST: o->first = (unsigned)parse_num("--first", optarg, 0, 1e9); break;
		case O_PASSWORD: o->password = optarg; break;
		case O_PID: o->server_pid = (pid_t)parse_num("--server-pid", optarg, 1, 1 << 30); break;
		case O_STOP: o->stop_server = true; break;
		case O_NO_NODELAY: o->nodelay = false; break;
		case O_LABEL: o->label = optarg; break;
		case O_TOKENS: o->tokens = true; break;
		case O_RESTART: o->restart = optarg; break;
		case O_STORM_TIMEOUT:
			o->storm_timeout = parse_num("--storm-timeout", optarg, 1, 86400);
			break;
		case O_ROOMS: o->rooms = (unsigned)parse_num("--rooms", optarg, 1, 1000000); break;
		case O_JOINS:
			o->joins = (unsigned)parse_num("--joins", optarg, 1, SESSION_ROOMS_MAX);
			break;
		case O_JOIN_TIMEOUT:
			o->join_timeout = parse_num("--join-timeout", optarg, 0.1, 86400);
			break;
		case O_TLS: o->tls = true; break;
		case O_CA: o->tls = true; o->ca_file = optarg; break;
		case O_HANDSHAKE_ONLY: o->handshake_only = true; break;
		case O_RESUME: o->resume = true; break;
		case O_IRC_PASS: o->irc_pass = true; break;
		case O_CHANNEL: o->channel = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	/* clang-format on */
	if (optind < argc || o->port < 0) {
		usage(stderr);
		exit(2);
	}
	if (o->senders > o->clients || o->senders + o->stalled > o->clients) {
		fprintf(stderr,
			"chatbench: senders and stalled clients must be among the %u clients\n",
			o->clients);
		exit(2);
	}
	if (o->restart != NULL && (o->senders > 0 || o->stop_server)) {
		fprintf(stderr, "chatbench: --restart needs -s 0 and no --stop-server\n");
		exit(2);
	}
	if (o->handshake_only &&
	    (!o->tls || o->senders > 0 || o->restart != NULL || o->rooms > 0)) {
		fprintf(stderr,
			"chatbench: --handshake-only needs --tls and -s 0, without --restart "
			"or --rooms\n");
		exit(2);
	}
	if (o->resume && !o->handshake_only) {
		fprintf(stderr, "chatbench: --resume needs --handshake-only\n");
		exit(2);
	}
	if (o->tokens && o->proto != &proto_chatd) {
		fprintf(stderr, "chatbench: --tokens is for chatd\n");
		exit(2);
	}
	if ((o->irc_pass || strcmp(o->channel, "#bench") != 0) && o->proto != &proto_irc) {
		fprintf(stderr, "chatbench: --irc-pass and --channel are for irc\n");
		exit(2);
	}
	if (o->channel[0] != '#' || strlen(o->channel) > 33 ||
	    strpbrk(o->channel, " ,\"\\\r\n") != NULL) {
		fprintf(stderr,
			"chatbench: --channel: '#' and at most 32 more, no spaces, commas or quotes\n");
		exit(2);
	}
	if (o->stop_server && o->server_pid <= 0) {
		fprintf(stderr, "chatbench: --stop-server needs --server-pid\n");
		exit(2);
	}
	check_rooms(o);
	if (strpbrk(o->label, "\"\\") != NULL) {
		fprintf(stderr, "chatbench: --label may not contain quotes or backslashes\n");
		exit(2);
	}
}
