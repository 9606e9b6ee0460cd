/*
 * proto.h - constants of the chat protocol (docs/PROTOCOL.md), shared by
 * chatd, the client, the benchmark and the tests.
 */
#ifndef CHATD_PROTO_H
#define CHATD_PROTO_H

#define PROTO_VERSION 2
#define PROTO_DEFAULT_PORT 7777
#define PROTO_DEFAULT_MAX_LINE 4096
/* A server line is at most max_line + PROTO_SERVER_OVERHEAD bytes with its LF. */
#define PROTO_SERVER_OVERHEAD 128

enum proto_err {
	ERR_BAD_REQUEST = 400,
	ERR_BAD_PASSWORD = 401,
	ERR_REGISTRATION_CLOSED = 403,
	ERR_NOT_FOUND = 404,
	ERR_ROOM_LIMIT = 405, /* max_rooms or max_rooms_per_user */
	ERR_NAME_TAKEN = 409,
	ERR_TOO_LONG = 413,
	ERR_BAD_TEXT = 422,
	ERR_BAD_NAME = 423,
	ERR_TLS_REQUIRED = 426, /* plain_login: log in over TLS (on the port named) */
	ERR_TOO_MANY = 429,
	ERR_INTERNAL = 500,
	ERR_UNAVAILABLE = 503,
	ERR_NOT_STORED = 507,
};

/* Why a session ended: the reason field of PART and BYE. */
enum part_reason {
	PART_QUIT,
	PART_LOST,
	PART_TIMEOUT,
	PART_OVERFLOW,
	PART_REPLACED,
	PART_KICKED,
	PART_SHUTDOWN,
	PART_REFUSED,
	PART_LEFT,    /* left one room (/leave); still online */
	PART_DELETED, /* the room was deleted by the operator */
	PART_ERROR,   /* the server could not go on serving the session (out of memory) */
};

/* The wire word for a reason ("quit", "lost", ...) and a default text. */
const char *part_reason_name(enum part_reason r);
const char *part_reason_text(enum part_reason r);

#endif
