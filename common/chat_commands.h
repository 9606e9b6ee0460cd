/*
 * chat_commands.h - the slash commands of chatd's native protocol
 * (docs/PROTOCOL.md), in one list that chatd and chat are both built from:
 * chatd's dispatch and /help (daemon/commands.c: each NAME runs
 * cmd_NAME(), so a command without its function does not build) and chat's
 * Tab completion (client/complete.c), so neither can leave a command out;
 * tests/consistency holds docs/PROTOCOL.md and chat(1) to it.
 *
 * CHAT_COMMANDS(X) expands X(NAME, USAGE, HELP) once per command, in the
 * order /help lists them.  Data only: any thread, any program.
 */
#ifndef CHATD_CHAT_COMMANDS_H
#define CHATD_CHAT_COMMANDS_H

/* clang-format off */
#define CHAT_COMMANDS(X)                                                                \
	X(join, "/join ROOM", "join ROOM (making it if need be); talk there")           \
	X(leave, "/leave [ROOM [REASON]]", "leave ROOM (default: the current room)")    \
	X(rooms, "/rooms [PAGE]", "every room, its members and topic, 100 a page")      \
	X(switch, "/switch ROOM", "talk in ROOM (one you are in) from now on")          \
	X(say, "/say ROOM TEXT", "TEXT to ROOM without switching to it")                \
	X(topic, "/topic [ROOM [TEXT]]", "show the topic of ROOM, or set it to TEXT")   \
	X(who, "/who [ROOM] [PAGE]", "who is in ROOM, 100 names a page")                \
	X(msg, "/msg NAME TEXT", "a private message to NAME alone")                     \
	X(history, "/history [ROOM] [N] | since ID",                                    \
	  "the last N messages of ROOM, or those after ID")                             \
	X(passwd, "/passwd NEW", "change your password")                                \
	X(token, "/token", "a token to log in again without the password")              \
	X(ping, "/ping [TEXT]", "the server echoes TEXT to you")                        \
	X(quit, "/quit [REASON]", "leave; others see REASON")                           \
	X(help, "/help", "this list")
/* clang-format on */

#endif
