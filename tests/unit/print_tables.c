/*
 * print_tables.c - prints the tables chatd is built from, for the tests in
 * tests/consistency that hold the documentation to them: the slash commands
 * (daemon/commands.c) and the admin commands (common/admin_proto.c).  A test
 * tool only; nothing is installed.  One line per entry, fields split by tabs:
 *
 *   chat   NAME  USAGE  HELP
 *   admin  WORDS ALIAS|-  USAGE  CHATCTL_USAGE  HELP
 */
#include <stdbool.h>
#include <stdio.h>

#include "admin_proto.h"
#include "commands.h"

int
main(void)
{
	for (size_t i = 0; i < command_count; i++)
		printf("chat\t%s\t%s\t%s\n", command_table[i].name, command_table[i].usage,
		       command_table[i].help);
	for (size_t i = 0; i < ADMIN_CMD_COUNT; i++) {
		const struct admin_cmd *cmd = &admin_commands[i];
		char usage[128], ctl_usage[128];

		admin_usage(cmd, true, usage, sizeof(usage));
		admin_usage(cmd, false, ctl_usage, sizeof(ctl_usage));
		printf("admin\t%s\t%s\t%s\t%s\t%s\n", cmd->words, cmd->alias ? cmd->alias : "-",
		       usage, ctl_usage, cmd->help);
	}
	return ferror(stdout) ? 1 : 0;
}
