/*
 * secret_tty.c - reading a password from a terminal (see secret_tty.h).
 * No state of its own, but it changes the terminal's modes while it reads
 * (echo, ISIG and the terminal's line editing off): for the one thread of
 * chat or chatctl that reads the terminal.
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

/* The last character of buf (UTF-8) goes: Backspace takes a character, not a byte. */
static size_t
erase_last(const char *buf, size_t len)
{
	while (len > 0 && ((unsigned char)buf[len - 1] & 0xc0) == 0x80)
		len--;
	return len > 0 ? len - 1 : 0;
}

/* Whether c is the terminal's key number idx (VINTR, VERASE...), when it has one. */
static bool
is_key(const struct termios *term, int idx, unsigned char c)
{
	return term != NULL && term->c_cc[idx] != _POSIX_VDISABLE && c == term->c_cc[idx];
}

/*
 * Reads up to a line end, key by key (the terminal's line editing is off,
 * so that Ctrl-C cancels at once instead of at the next Enter): the
 * terminal's erase (and Backspace) takes the last character back, its kill
 * (Ctrl-U) the whole line.  False on end of input, Ctrl-C, Ctrl-D on an
 * empty line, overflow.  term: the terminal's modes, NULL when fd is none.
 */
static bool
read_hidden_line(int fd, const struct termios *term, char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		unsigned char c;
		ssize_t n = read(fd, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == 0x03 || is_key(term, VINTR, c))
			return false;
		if (c == 0x04 || is_key(term, VEOF, c)) {
			if (len == 0)
				return false;
			continue; /* not part of a password */
		}
		if (c == '\n' || c == '\r')
			break;
		if (term != NULL && (c == 0x7f || c == 0x08 || is_key(term, VERASE, c))) {
			len = erase_last(buf, len);
			continue;
		}
		if (is_key(term, VKILL, c)) {
			len = 0;
			continue;
		}
		if (len + 1 >= size)
			return false;
		buf[len++] = (char)c;
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
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL | ISIG | ICANON);
		quiet.c_cc[VMIN] = 1;
		quiet.c_cc[VTIME] = 0;
		tcsetattr(fd, TCSANOW, &quiet);
	}
	fputs(prompt, out);
	fflush(out);
	ok = read_hidden_line(fd, have_tty ? &saved : NULL, buf, max + 1);
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
