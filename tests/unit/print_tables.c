/*
 * print_tables.c - prints the tables chatd is built from, for the tests in
 * tests/consistency that hold the documentation to them: the slash commands
 * (daemon/commands.c), the commands chat's Tab completes at the start of a
 * line (client/complete.c), the admin commands (common/admin_proto.c), and
 * the IRC gateway's commands and capabilities (daemon/irc_commands.c,
 * irc_caps.c).  A test tool only; nothing is installed.  One line per
 * entry, fields split by tabs:
 *
 *   chat   NAME  USAGE  HELP
 *   tab    /NAME
 *   admin  WORDS ALIAS|-  USAGE  CHATCTL_USAGE  HELP
 *   irc    NAME  MIN_PARAMS  SUMMARY
 *   ircap  NAME
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "admin_proto.h"
#include "commands.h"
#include "complete.h"
#include "irc.h"

int
main(void)
{
	for (size_t i = 0; i < command_count; i++)
		printf("chat\t%s\t%s\t%s\n", command_table[i].name, command_table[i].usage,
		       command_table[i].help);
	/* Every candidate for "/": what Tab offers at the start of an empty command. */
	size_t pos = 0;
	for (char *c; (c = complete_next(NULL, NULL, COMPLETE_COMMAND, "/", &pos)) != NULL; free(c))
		printf("tab\t%s\n", c);
	for (size_t i = 0; i < ADMIN_CMD_COUNT; i++) {
		const struct admin_cmd *cmd = &admin_commands[i];
		char usage[128], ctl_usage[128];

		admin_usage(cmd, true, usage, sizeof(usage));
		admin_usage(cmd, false, ctl_usage, sizeof(ctl_usage));
		printf("admin\t%s\t%s\t%s\t%s\t%s\n", cmd->words, cmd->alias ? cmd->alias : "-",
		       usage, ctl_usage, cmd->help);
	}
	for (size_t i = 0; i < irc_n_commands; i++)
		printf("irc\t%s\t%u\t%s\n", irc_commands[i].name, irc_commands[i].min_params,
		       irc_commands[i].summary);
	for (int i = 0; i < CAP_N; i++)
		printf("ircap\t%s\n", irc_cap_name((enum irc_cap)i));
	return ferror(stdout) ? 1 : 0;
}
