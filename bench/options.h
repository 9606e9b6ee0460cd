/*
 * options.h - chatbench's command line: what to run against which server.
 */
#ifndef BENCH_OPTIONS_H
#define BENCH_OPTIONS_H

#include <stdbool.h>
#include <sys/types.h>

#include "proto.h"

struct options {
	const struct proto_ops *proto;
	const char *host;
	int port;
	unsigned clients, senders, stalled, first, sources;
	double duration, rate, connect_rate, login_timeout, drain, settle;
	unsigned window, size, login_window;
	const char *password, *label;
	pid_t server_pid;
	bool stop_server, nodelay;
	bool tokens;         /* ask for a resume token after a password login (chatd) */
	const char *restart; /* the login storm: run this, then every client reconnects */
	double storm_timeout;
	/*
	 * The rooms layout: client i joins rooms r<(i*joins + k) mod rooms>,
	 * k < joins, after its login; 0 rooms: the one-room layout.
	 */
	unsigned rooms, joins;
	double join_timeout; /* give up on clients not in their rooms by then (0: login_timeout) */
	bool tls;            /* --tls: every connection does a TLS handshake first */
	const char *ca_file; /* --ca: verify the server against it (else no verification) */
	bool handshake_only; /* --handshake-only: close after the handshake, no login */
	bool resume;         /* --resume: then a second round resuming each client's session */
	bool irc_pass;       /* --irc-pass: IRC logins send PASS with the password first */
	const char *channel; /* --channel: IRC's channel in the one-room layout */
};

/* Fills o from the command line; prints usage and exits 2 on a bad one (0 for --help). */
void parse_options(int argc, char **argv, struct options *o);

#endif
