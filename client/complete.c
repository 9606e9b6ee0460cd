/*
 * complete.c - Tab completion of commands and room names (complete.h):
 * which list a word is completed from, and the next match in it.
 * No state of its own (the lists are the caller's: rooms.h, wordset.h);
 * chat's one thread.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat_commands.h"
#include "complete.h"

/* The commands: chatd's own list (chat_commands.h), in /help's order. */
#define COMMAND_NAME(name, usage, help) "/" #name,
static const char *const COMMANDS[] = { CHAT_COMMANDS(COMMAND_NAME) };
#undef COMMAND_NAME

#define NCOMMANDS (sizeof(COMMANDS) / sizeof(COMMANDS[0]))

/* Commands whose first argument is a room (any room, or one we are in) or a user. */
static const struct {
	const char *name;
	enum complete_what what;
} ARG_COMMANDS[] = {
	/* clang-format off */
	{ "/join", COMPLETE_ROOM },
	{ "/topic", COMPLETE_ROOM },
	{ "/who", COMPLETE_ROOM },
	{ "/history", COMPLETE_ROOM },
	{ "/switch", COMPLETE_JOINED },
	{ "/leave", COMPLETE_JOINED },
	{ "/say", COMPLETE_JOINED },
	{ "/msg", COMPLETE_NAME },
	/* clang-format on */
};

enum complete_what
complete_what(const char *line, size_t start)
{
	size_t first = strspn(line, " "), n;

	if (start <= first)
		return line[first] == '/' || line[first] == '\0' ? COMPLETE_COMMAND
								 : COMPLETE_NOTHING;
	if (line[first] != '/')
		return line[start] == '#' ? COMPLETE_ROOM : COMPLETE_NOTHING;
	n = strcspn(line + first, " ");
	/* The second word: the first argument of the command. */
	if (start > first + n && strspn(line + first + n, " ") == start - first - n) {
		for (size_t i = 0; i < sizeof(ARG_COMMANDS) / sizeof(ARG_COMMANDS[0]); i++)
			if (strlen(ARG_COMMANDS[i].name) == n &&
			    strncmp(line + first, ARG_COMMANDS[i].name, n) == 0)
				return ARG_COMMANDS[i].what;
	}
	return line[start] == '#' ? COMPLETE_ROOM : COMPLETE_NOTHING;
}

static char *
command_next(const char *word, size_t *pos)
{
	size_t n = strlen(word);

	while (*pos < NCOMMANDS) {
		const char *c = COMMANDS[(*pos)++];

		if (strncmp(c, word, n) == 0)
			return strdup(c);
	}
	return NULL;
}

/* The room name with the word's '#', if it has one. */
static char *
room_match(const char *name, const char *word)
{
	const char *bare = rooms_bare(word);
	size_t n = strlen(bare);
	char *out;

	if (strncasecmp(name, bare, n) != 0)
		return NULL;
	if (bare == word)
		return strdup(name);
	if ((out = malloc(strlen(name) + 2)) != NULL)
		sprintf(out, "#%s", name);
	return out;
}

char *
complete_next(const struct rooms *r, const struct wordset *people, enum complete_what what,
	      const char *word, size_t *pos)
{
	const char *name;
	char *match;

	switch (what) {
	case COMPLETE_COMMAND:
		return command_next(word, pos);
	case COMPLETE_JOINED:
		while ((name = rooms_nth(r, *pos)) != NULL) {
			(*pos)++;
			if ((match = room_match(name, word)) != NULL)
				return match;
		}
		return NULL;
	case COMPLETE_ROOM:
		while (*pos < r->seen.n)
			if ((match = room_match(r->seen.words[(*pos)++], word)) != NULL)
				return match;
		return NULL;
	case COMPLETE_NAME:
		while (*pos < people->n) {
			const char *person = people->words[(*pos)++];

			if (strncasecmp(person, word, strlen(word)) == 0)
				return strdup(person);
		}
		return NULL;
	case COMPLETE_NOTHING:
		break;
	}
	return NULL;
}
