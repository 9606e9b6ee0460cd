/*
 * exitcode.h - chat's exit codes, as chat(1) documents them.
 * Constants only.
 */
#ifndef CHAT_EXITCODE_H
#define CHAT_EXITCODE_H

enum chat_exit {
	CHAT_EXIT_OK = 0,
	CHAT_EXIT_USAGE = 1,   /* bad options or input, a local error (password file, memory) */
	CHAT_EXIT_RESOLVE = 2, /* the host name cannot be resolved */
	CHAT_EXIT_CONNECT = 3, /* no connection: refused, unreachable, timed out, server full */
	CHAT_EXIT_LOGIN = 4, /* login refused: wrong password, invalid name, registration closed */
	CHAT_EXIT_LOST = 5,  /* the connection was lost or the server ended the session */
	CHAT_EXIT_REFUSED = 6, /* plain mode: the server refused at least one line (ERR) */
	CHAT_EXIT_ROOM = 7,    /* plain mode: --room, or a room to rejoin, could not be joined (or
			       its OK named another room), or we were put out of it */
	CHAT_EXIT_TLS = 8, /* --tls: the server's certificate was not accepted (never plain then) */
};

#endif
