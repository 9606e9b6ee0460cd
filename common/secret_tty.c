/*
 * secret_tty.c - reading a password from a terminal (see secret_tty.h).
 * No state of its own, but it changes the terminal's modes while it reads
 * (echo and ISIG off): for the one thread of chat or chatctl that reads
 * the terminal.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "secret_tty.h"

void
secret_wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Reads up to a line end; false on end of input, Ctrl-C, Ctrl-D on an empty line, overflow. */
static bool
read_hidden_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == 0x03 || (c == 0x04 && len == 0))
			return false;
		if (c == '\n' || c == '\r')
			break;
		if (len + 1 >= size)
			return false;
		buf[len++] = c;
	}
	buf[len] = '\0';
	return true;
}

char *
tty_read_secret(int fd, FILE *out, const char *prompt, size_t max)
{
	struct termios saved, quiet;
	bool have_tty = tcgetattr(fd, &saved) == 0;
	char *buf = malloc(max + 1);
	bool ok;

	if (buf == NULL)
		return NULL;
	/* Echo goes off before the prompt shows, so nothing typed at it is ever echoed. */
	if (have_tty) {
		quiet = saved;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL | ISIG);
		quiet.c_lflag |= ICANON;
		tcsetattr(fd, TCSANOW, &quiet);
	}
	fputs(prompt, out);
	fflush(out);
	ok = read_hidden_line(fd, buf, max + 1);
	if (have_tty)
		tcsetattr(fd, TCSANOW, &saved);
	fputs("\n", out);
	fflush(out);
	if (!ok) {
		explicit_bzero(buf, max + 1);
		free(buf);
		return NULL;
	}
	return buf;
}
