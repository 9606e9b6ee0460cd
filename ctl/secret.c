/*
 * secret.c - reading a password without echo (see secret.h).  No state;
 * chatctl's one thread.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "secret.h"
#include "secret_tty.h"

/* One line of f into buf without its line end; -1 at EOF or when too long. */
static int
read_line(FILE *f, char *buf, size_t len)
{
	size_t n;

	if (fgets(buf, (int)len, f) == NULL)
		return -1;
	n = strcspn(buf, "\n");
	if (buf[n] != '\n' && !feof(f)) {
		int ch;

		while ((ch = getc(f)) != EOF && ch != '\n')
			;
		explicit_bzero(buf, len);
		return -2;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[n - 1] = '\0';
	return 0;
}

/* Asks on the terminal without echo; -1 at end of input, on Ctrl-C or when too long. */
static int
ask(const char *prompt, char *buf, size_t len)
{
	char *pw = tty_read_secret(STDIN_FILENO, stderr, prompt, len - 1);

	if (pw == NULL)
		return -1;
	snprintf(buf, len, "%s", pw);
	secret_wipe_free(pw);
	return 0;
}

int
secret_read(const char *prompt, bool confirm, char *buf, size_t len)
{
	char again[512];
	int rc;

	if (!isatty(STDIN_FILENO)) {
		if ((rc = read_line(stdin, buf, len)) < 0) {
			fprintf(stderr, "chatctl: %s\n",
				rc == -2 ? "the password is too long"
					 : "no password on standard input");
			return -1;
		}
		return 0;
	}
	if (ask(prompt, buf, len) < 0) {
		fprintf(stderr, "chatctl: no password given\n");
		return -1;
	}
	if (!confirm)
		return 0;
	if (ask("Again: ", again, sizeof(again)) < 0 || strcmp(buf, again) != 0) {
		explicit_bzero(again, sizeof(again));
		explicit_bzero(buf, len);
		fprintf(stderr, "chatctl: the passwords do not match\n");
		return -1;
	}
	explicit_bzero(again, sizeof(again));
	return 0;
}
