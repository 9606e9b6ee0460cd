/*
 * termout.c - chat's text in the terminal's character set (termout.h).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "strbuf.h"
#include "termcs.h"
#include "termout.h"
#include "utf8.h"

bool
termout_converts(int fd)
{
	static signed char converts[3] = { -1, -1, -1 };

	if (fd < 0 || fd > 2)
		return false;
	if (converts[fd] < 0)
		converts[fd] = terminal_not_utf8(fd);
	return converts[fd] > 0;
}

/* Whether every byte of a character's form in the locale is printable there. */
static bool
printable_bytes(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f))
			return false;
	}
	return true;
}

/* One UTF-8 character (n bytes, valid) in the locale's character set, or '?'. */
static void
write_converted(FILE *f, const unsigned char *s, size_t n)
{
	uint32_t cp = s[0] & (0x7f >> n);
	char mb[MB_LEN_MAX];
	mbstate_t st;
	size_t m;

	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (s[i] & 0x3f);
	memset(&st, 0, sizeof(st));
	m = wcrtomb(mb, (wchar_t)cp, &st);
	if (m != (size_t)-1 && m > 0 && printable_bytes(mb, m))
		fwrite(mb, 1, m, f);
	else
		fputc('?', f);
}

void
termout_write(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	if (!termout_converts(fileno(f))) {
		fwrite(s, 1, len, f);
		return;
	}
	while (i < len) {
		size_t run = 0, n;

		while (i + run < len && p[i + run] < 0x80)
			run++;
		fwrite(s + i, 1, run, f);
		if ((i += run) == len)
			break;
		n = utf8_sequence_length(p[i]);
		if (n == 0 || n > len - i || text_check(s + i, n) == TEXT_BAD_UTF8) {
			fputc('?', f);
			i++;
			continue;
		}
		write_converted(f, p + i, n);
		i += n;
	}
}

void
termout_printf(FILE *f, const char *fmt, ...)
{
	struct strbuf sb = { 0 };
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	if (rc == 0 && sb.buf != NULL)
		termout_write(f, sb.buf, sb.len);
	strbuf_free(&sb);
}
