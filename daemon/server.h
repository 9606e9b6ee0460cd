/*
 * server.h - the parts of a running chatd that every thread reaches, and
 * the control thread that starts, steers and stops them (server.c).
 *
 * The pointers in struct server are set by the control thread before the
 * listener starts and are not changed until every client thread is gone;
 * each object they point to does its own locking.
 */
#ifndef CHATD_SERVER_H
#define CHATD_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct hub;
struct history;
struct ident;
struct listener;
struct control;

struct server {
	struct hub *hub;
	struct history *history;
	struct ident *ident;
	struct listener *listener;
	struct control *control; /* the admin socket; control thread only */
	int64_t started_ms;      /* wall clock */
	int tls_port;            /* the TLS listener's port; -1 (or 0) without TLS */
	int irc_tls_port;        /* the IRC TLS listener's port; -1 without */
	atomic_uint_least64_t next_client_id;
	bool stop_requested; /* control thread only: leave the control loop */
};

struct server_options {
	const char *config_file;
	bool daemonize; /* --daemon: detach once serving */
};

/* Runs chatd in the foreground until SIGTERM/SIGINT; returns the exit code. */
int server_run(const struct server_options *opt);

#endif
