/*
 * options.h - what the command line, the environment and the first
 * prompts decided: where to connect, as whom, and how to show it.
 * Filled in by main.c before either mode starts, then only read; chat's one
 * thread.
 */
#ifndef CHAT_OPTIONS_H
#define CHAT_OPTIONS_H

#include <stdbool.h>

struct tls_ctx;

enum color_when { COLOR_AUTO, COLOR_ALWAYS, COLOR_NEVER };

struct chat_options {
	char *host;
	char *port;
	char *name;     /* NULL: ask (terminal mode) */
	char *password; /* NULL: ask (terminal mode); wiped at exit */
	char *room;     /* --room: joined after login, NULL for the default room only */
	enum color_when color;
	int timeout_s;           /* connecting, and waiting for the server's replies */
	bool plain;              /* the script mode */
	bool reconnect;          /* the script mode reconnects too */
	bool tls;                /* --tls (also implied by --ca and --fingerprint) */
	bool guest;              /* --guest: in as a guest, no password (server setting guests) */
	struct tls_ctx *tls_ctx; /* made from --tls, --ca, --fingerprint; NULL without TLS */
};

#define CHAT_DEFAULT_HOST "localhost"
#define CHAT_DEFAULT_PORT "7777"     /* PROTO_DEFAULT_PORT */
#define CHAT_DEFAULT_TLS_PORT "7778" /* chatd's tls_port */
#define CHAT_DEFAULT_TIMEOUT_S 30

/* The port without PORT: chatd's TLS port with --tls, else its plain port. */
const char *chat_default_port(const struct chat_options *o);

/* A port as chat takes it: a number from 1 to 65535. */
bool chat_port_valid(const char *s);

/* The two modes; each returns the exit code (exitcode.h). */
int tty_run(struct chat_options *o);
int plain_run(struct chat_options *o);

#endif
