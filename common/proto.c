/*
 * proto.c - the words of the chat protocol that travel as data.  A
 * constant table: any thread.
 */
#include "proto.h"

static const struct {
	const char *name;
	const char *text;
} part_reasons[] = {
	[PART_QUIT] = { "quit", "left" },
	[PART_LOST] = { "lost", "connection lost" },
	[PART_TIMEOUT] = { "timeout", "timed out" },
	[PART_OVERFLOW] = { "overflow", "send queue exceeded" },
	[PART_REPLACED] = { "replaced", "logged in from elsewhere" },
	[PART_KICKED] = { "kicked", "disconnected by the operator" },
	[PART_SHUTDOWN] = { "shutdown", "server is shutting down" },
	[PART_REFUSED] = { "refused", "refused" },
	[PART_LEFT] = { "left", "left the room" },
	[PART_DELETED] = { "deleted", "the room was deleted" },
	[PART_ERROR] = { "error", "internal error" },
};

const char *
part_reason_name(enum part_reason r)
{
	return part_reasons[r].name;
}

const char *
part_reason_text(enum part_reason r)
{
	return part_reasons[r].text;
}
