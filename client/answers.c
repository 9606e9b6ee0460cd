/*
 * answers.c - the final replies kept until their check confirms them
 * (answers.h).
 */
#include <string.h>

#include "answers.h"

int
answers_keep(struct answers *a, const char *line, size_t len)
{
	size_t before = a->lines.len;

	if (strbuf_add(&a->lines, line, len) < 0)
		return -1;
	if (strbuf_add(&a->lines, "\n", 1) < 0) {
		explicit_bzero(a->lines.buf + before, len);
		a->lines.len = before;
		a->lines.buf[before] = '\0';
		return -1;
	}
	a->count++;
	return 0;
}

bool
answers_next(struct answers *a, size_t *pos, char **line, size_t *len)
{
	char *start, *lf;

	if (*pos >= a->lines.len)
		return false;
	start = a->lines.buf + *pos;
	lf = memchr(start, '\n', a->lines.len - *pos);
	if (lf == NULL) /* never: each reply was kept with its LF */
		return false;
	*lf = '\0';
	*line = start;
	*len = (size_t)(lf - start);
	*pos += *len + 1;
	return true;
}

void
answers_wipe(struct answers *a)
{
	if (a->lines.buf != NULL)
		explicit_bzero(a->lines.buf, a->lines.len);
	strbuf_reset(&a->lines);
	a->count = 0;
}

void
answers_free(struct answers *a)
{
	answers_wipe(a);
	strbuf_free(&a->lines);
}
