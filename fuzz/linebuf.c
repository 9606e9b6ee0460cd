/*
 * linebuf.c - fuzz target for the chat line framing (common/linebuf.c).
 *
 * Input: byte 0 picks max_line (1..128, small so over-long lines are
 * common), byte 1 seeds how the rest is cut into reads, the rest is the
 * byte stream a peer sends.  The stream goes through linebuf_space() and
 * linebuf_commit() in those pieces, as from a socket, and every result of
 * linebuf_next() is compared with a plain model of the framing rules
 * (linebuf.h): one event per LF-terminated line, one CR before its LF
 * dropped, LB_OVERLONG instead of a line longer than max_line, and an
 * unfinished line reported as over-long as soon as it cannot fit any more.
 * So the lines cut must not depend on how the stream was split into reads.
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "linebuf.h"

struct model {
	const uint8_t *stream;
	size_t len;
	size_t pos; /* start of the next line not yet matched */
	size_t max_line;
	bool tail_reported; /* the unfinished tail was reported over-long */
};

/* Where the next complete line ends (its LF), or NULL if none is left. */
static const uint8_t *
next_lf(const struct model *m)
{
	return memchr(m->stream + m->pos, '\n', m->len - m->pos);
}

/*
 * An unfinished last line is reported once it holds more than max_line
 * bytes, except that max_line + 1 bytes ending in CR may still become a
 * line of max_line bytes when the LF comes.
 */
static bool
tail_overlong(const struct model *m)
{
	size_t n = m->len - m->pos;

	if (n <= m->max_line)
		return false;
	return n > m->max_line + 1 || m->stream[m->len - 1] != '\r';
}

/* Checks one event of linebuf_next(), fed bytes into the stream, against the model. */
static void
expect(struct model *m, enum linebuf_result r, const char *line, size_t len, size_t fed)
{
	const uint8_t *lf = next_lf(m);

	if (lf == NULL) {
		/* Only an over-long unfinished line may be reported, and only once. */
		fuzz_assert(r == LB_OVERLONG);
		fuzz_assert(!m->tail_reported);
		m->tail_reported = true;
		return;
	}
	size_t n = (size_t)(lf - (m->stream + m->pos));
	if (n > 0 && m->stream[m->pos + n - 1] == '\r')
		n--;
	if (n > m->max_line) {
		fuzz_assert(r == LB_OVERLONG);
	} else {
		fuzz_assert(r == LB_LINE);
		fuzz_assert(len == n);
		fuzz_assert(memcmp(line, m->stream + m->pos, n) == 0);
		fuzz_assert(line[len] == '\0');
		fuzz_assert((size_t)(lf - m->stream) < fed); /* its LF did arrive */
	}
	m->pos = (size_t)(lf - m->stream) + 1;
}

/* A small deterministic generator for the read sizes. */
static uint32_t
next_rand(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linebuf lb;
	struct model m;
	uint32_t rnd;
	size_t fed = 0;

	if (size < 2)
		return 0;
	m = (struct model){ .stream = data + 2, .len = size - 2, .max_line = 1 + (data[0] & 0x7f) };
	rnd = 0x9e3779b9u ^ data[1];
	fuzz_assert(linebuf_init(&lb, m.max_line) == 0);

	while (fed < m.len) {
		size_t avail, piece;
		char *space = linebuf_space(&lb, &avail);
		enum linebuf_result r;
		char *line;
		size_t len;

		fuzz_assert(space != NULL && avail > 0); /* linebuf.h: never 0 bytes of space */
		piece = 1 + next_rand(&rnd) % (data[1] & 1 ? 3 : m.max_line + 2);
		if (piece > avail)
			piece = avail;
		if (piece > m.len - fed)
			piece = m.len - fed;
		memcpy(space, m.stream + fed, piece);
		linebuf_commit(&lb, piece);
		fed += piece;
		while ((r = linebuf_next(&lb, &line, &len)) != LB_NONE)
			expect(&m, r, line, len, fed);
	}
	/* Every complete line was reported; the tail as over-long if it had to be. */
	fuzz_assert(next_lf(&m) == NULL);
	fuzz_assert(m.tail_reported == tail_overlong(&m));
	if (!m.tail_reported)
		fuzz_assert(linebuf_pending(&lb) == m.len - m.pos);
	linebuf_free(&lb);
	return 0;
}
