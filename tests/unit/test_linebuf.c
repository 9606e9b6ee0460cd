/*
 * test_linebuf.c - line splitting: split reads, CRLF, the max_line limit,
 * over-long lines spanning reads, EOF with a partial line, real file
 * descriptors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "linebuf.h"

#define MAX_LINE 16

/* What linebuf_next() returned, as text: "line|" per line, "!|" per LB_OVERLONG. */
struct events {
	char text[8192];
	size_t len;
};

static void
record(struct events *ev, const char *s, size_t n)
{
	assert_true(ev->len + n + 1 < sizeof(ev->text));
	memcpy(ev->text + ev->len, s, n);
	ev->len += n;
	ev->text[ev->len++] = '|';
	ev->text[ev->len] = '\0';
}

static void
drain(struct linebuf *lb, struct events *ev)
{
	enum linebuf_result r;
	char *line;
	size_t len;

	while ((r = linebuf_next(lb, &line, &len)) != LB_NONE) {
		if (r == LB_OVERLONG) {
			record(ev, "!", 1);
			continue;
		}
		assert_int_equal(r, LB_LINE);
		assert_true(len <= lb->max_line);
		assert_int_equal(line[len], '\0');
		record(ev, line, len);
	}
}

/* Feeds n bytes in reads of at most chunk bytes, draining after each. */
static void
feed(struct linebuf *lb, struct events *ev, const char *s, size_t n, size_t chunk)
{
	while (n > 0) {
		size_t avail;
		char *space = linebuf_space(lb, &avail);
		size_t k = n < chunk ? n : chunk;

		assert_true(avail > 0);
		if (k > avail)
			k = avail;
		memcpy(space, s, k);
		linebuf_commit(lb, k);
		s += k;
		n -= k;
		drain(lb, ev);
	}
}

static void
assert_split(const char *input, size_t chunk, const char *want)
{
	struct linebuf lb;
	struct events ev = { .len = 0 };

	assert_int_equal(linebuf_init(&lb, MAX_LINE), 0);
	feed(&lb, &ev, input, strlen(input), chunk);
	if (strcmp(ev.text, want) != 0)
		fail_msg("chunk %zu: got \"%s\", want \"%s\"", chunk, ev.text, want);
	linebuf_free(&lb);
}

/* The result must not depend on how the bytes were cut into reads. */
static void
assert_split_any_chunk(const char *input, const char *want)
{
	for (size_t chunk = 1; chunk <= strlen(input) + 1; chunk++)
		assert_split(input, chunk, want);
}

static void
test_many_lines_one_read(void **state)
{
	assert_split("a\nbb\nccc\n\nlast\n", 1000, "a|bb|ccc||last|");
}

static void
test_byte_by_byte(void **state)
{
	assert_split("hello\nworld\n", 1, "hello|world|");
	assert_split_any_chunk("one\ntwo\nthree\n", "one|two|three|");
}

static void
test_crlf(void **state)
{
	assert_split_any_chunk("a\r\nb\r\n\r\n", "a|b||");
	/* A CR anywhere else is part of the line (text_check refuses it later). */
	assert_split_any_chunk("a\rb\n\r\r\n", "a\rb|\r|");
	assert_split_any_chunk("\r\n", "|");
}

static void
test_exact_limit(void **state)
{
	/* 16 bytes: fine with LF, with CR LF, and with CR and LF in separate reads */
	assert_split_any_chunk("0123456789abcdef\n", "0123456789abcdef|");
	assert_split_any_chunk("0123456789abcdef\r\n", "0123456789abcdef|");
	assert_split_any_chunk("0123456789abcdef\r\nx\n", "0123456789abcdef|x|");
}

static void
test_one_over_the_limit(void **state)
{
	assert_split_any_chunk("0123456789abcdefg\n", "!|");
	assert_split_any_chunk("0123456789abcdefg\r\n", "!|");
	/* A CR that is not the line end counts. */
	assert_split_any_chunk("0123456789abcdef\r\r\n", "!|");
	assert_split_any_chunk("0123456789abcdef\rx\n", "!|");
}

/*
 * A lower limit from the middle of a stream on (a native login's lines may
 * be longer than max_line): lines already buffered are held to it too, and
 * the buffer, grown for the old limit, still takes what comes.
 */
static void
test_lower_max(void **state)
{
	const char *in = "0123456789abcdefghijklmnopqrstu\na line too long now\nshort\n"
			 "0123456789abcdef\r\n0123456789abcdefghijklmnopqrstu\nend\n";
	struct linebuf lb;
	struct events ev = { .len = 0 };

	assert_int_equal(linebuf_init(&lb, 2 * MAX_LINE), 0);
	feed(&lb, &ev, in, 32, 64); /* the first line, within the old limit */
	assert_string_equal(ev.text, "0123456789abcdefghijklmnopqrstu|");
	linebuf_lower_max(&lb, MAX_LINE);
	linebuf_lower_max(&lb, 2 * MAX_LINE); /* never raised again */
	feed(&lb, &ev, in + 32, strlen(in) - 32, 64);
	assert_string_equal(ev.text,
			    "0123456789abcdefghijklmnopqrstu|!|short|0123456789abcdef|!|end|");
	linebuf_free(&lb);
}

static void
test_overlong_then_good_line_same_buffer(void **state)
{
	assert_split_any_chunk("0123456789abcdefghij\nok\n", "!|ok|");
	assert_split_any_chunk("before\n0123456789abcdefghij\r\nafter\r\n", "before|!|after|");
	assert_split_any_chunk("0123456789abcdefg\n0123456789abcdefg\nok\n", "!|!|ok|");
}

/* Reported as soon as max_line + 1 bytes without LF are in, not at the LF. */
static void
test_overlong_reported_early_once(void **state)
{
	struct linebuf lb;
	struct events ev = { .len = 0 };
	char junk[1000];

	memset(junk, 'x', sizeof(junk));
	assert_int_equal(linebuf_init(&lb, MAX_LINE), 0);
	feed(&lb, &ev, junk, MAX_LINE, 5);
	assert_string_equal(ev.text, "");
	feed(&lb, &ev, junk, 1, 1);
	assert_string_equal(ev.text, "!|");
	/* many more reads of the same line: no second report, nothing kept */
	for (int i = 0; i < 100; i++) {
		feed(&lb, &ev, junk, sizeof(junk), 7);
		assert_int_equal(linebuf_pending(&lb), 0);
	}
	assert_string_equal(ev.text, "!|");
	feed(&lb, &ev, "tail\nnext\n", 10, 3);
	assert_string_equal(ev.text, "!|next|");
	linebuf_free(&lb);
}

static void
test_embedded_nul(void **state)
{
	struct linebuf lb;
	char *line;
	size_t len, avail;
	char *space;

	assert_int_equal(linebuf_init(&lb, MAX_LINE), 0);
	space = linebuf_space(&lb, &avail);
	memcpy(space, "a\0b\n", 4);
	linebuf_commit(&lb, 4);
	assert_int_equal(linebuf_next(&lb, &line, &len), LB_LINE);
	assert_int_equal(len, 3);
	assert_memory_equal(line, "a\0b", 4);
	assert_int_equal(linebuf_next(&lb, &line, &len), LB_NONE);
	linebuf_free(&lb);
}

static void
test_eof_with_partial_line(void **state)
{
	struct linebuf lb;
	struct events ev = { .len = 0 };

	assert_int_equal(linebuf_init(&lb, MAX_LINE), 0);
	feed(&lb, &ev, "done\nhalf", 9, 2);
	assert_string_equal(ev.text, "done|");
	assert_int_equal(linebuf_pending(&lb), 4);
	feed(&lb, &ev, "\n", 1, 1);
	assert_int_equal(linebuf_pending(&lb), 0);
	assert_string_equal(ev.text, "done|half|");
	linebuf_free(&lb);
}

static void
test_zero_max_line(void **state)
{
	struct linebuf lb;
	struct events ev = { .len = 0 };

	assert_int_equal(linebuf_init(&lb, 0), 0);
	feed(&lb, &ev, "\n\r\nx\n\n", 6, 1);
	assert_string_equal(ev.text, "||!||");
	linebuf_free(&lb);
}

static void
test_huge_max_line_refused(void **state)
{
	struct linebuf lb;

	assert_int_equal(linebuf_init(&lb, SIZE_MAX), -1);
	assert_int_equal(errno, ENOMEM);
}

/* A long line trickled byte by byte: each byte searched once, so this is quick. */
static void
test_linear_time(void **state)
{
	enum { BIG = 1 << 20 };
	struct linebuf lb;
	char *line;
	size_t len, avail;
	char *space;

	assert_int_equal(linebuf_init(&lb, BIG), 0);
	for (size_t i = 0; i < BIG; i++) {
		space = linebuf_space(&lb, &avail);
		*space = 'y';
		linebuf_commit(&lb, 1);
		assert_int_equal(linebuf_next(&lb, &line, &len), LB_NONE);
	}
	assert_int_equal(lb.scan, BIG);
	space = linebuf_space(&lb, &avail);
	*space = '\n';
	linebuf_commit(&lb, 1);
	assert_int_equal(linebuf_next(&lb, &line, &len), LB_LINE);
	assert_int_equal(len, BIG);
	linebuf_free(&lb);
}

static void
read_all_lines(int fd, struct events *ev, size_t *pending_at_eof)
{
	struct linebuf lb;
	ssize_t n;

	assert_int_equal(linebuf_init(&lb, MAX_LINE), 0);
	while ((n = linebuf_fill(&lb, fd)) > 0)
		drain(&lb, ev);
	assert_int_equal(n, 0);
	*pending_at_eof = linebuf_pending(&lb);
	linebuf_free(&lb);
}

/*
 * A buffer starts small and grows only for a line that needs it, up to
 * max_line + 2 bytes: a long line arrives whole, however it was cut.
 */
static void
test_grows_for_long_lines(void **state)
{
	enum { BIG = 3000 };
	static char input[3 * BIG];
	static char want[3 * BIG];
	size_t n = 0, w = 0;

	memset(input, 'x', BIG); /* exactly max_line */
	n = BIG;
	input[n++] = '\n';
	memcpy(want, input, BIG);
	w = BIG;
	want[w++] = '|';
	memcpy(input + n, "short\n", 6);
	n += 6;
	memcpy(want + w, "short|", 6);
	w += 6;
	memset(input + n, 'y', BIG + 1); /* one over */
	n += BIG + 1;
	input[n++] = '\n';
	want[w++] = '!';
	want[w++] = '|';

	for (size_t chunk = 1; chunk <= 2 * BIG; chunk = chunk * 3 + 1) {
		struct linebuf lb;
		struct events ev = { .len = 0 };
		static struct events big;

		assert_int_equal(linebuf_init(&lb, BIG), 0);
		feed(&lb, &ev, "hi\n", 3, chunk);
		assert_true(lb.cap < 1024);
		big.len = 0;
		big.text[0] = '\0';
		feed(&lb, &big, input, n, chunk);
		assert_int_equal(big.len, w);
		assert_memory_equal(big.text, want, w);
		assert_true(lb.cap <= BIG + 2);
		linebuf_free(&lb);
	}
}

/* Short lines, but every read fills the buffer: it grows, so reads get bigger. */
static void
test_grows_for_busy_streams(void **state)
{
	enum { BIG = 4096 };
	struct linebuf lb;
	size_t reads = 0, got = 0;

	assert_int_equal(linebuf_init(&lb, BIG), 0);
	while (got < 100 * BIG) {
		size_t avail;
		char *space = linebuf_space(&lb, &avail);

		assert_non_null(space);
		memset(space, 'z', avail); /* as much as fits, lines of 7 bytes */
		for (size_t i = 6; i < avail; i += 7)
			space[i] = '\n';
		linebuf_commit(&lb, avail);
		got += avail;
		reads++;
		while (linebuf_next(&lb, &(char *){ NULL }, &(size_t){ 0 }) != LB_NONE)
			;
	}
	assert_int_equal(lb.cap, BIG + 2);
	assert_true(reads < 110);
	linebuf_free(&lb);
}

static void
test_fill_from_pipe(void **state)
{
	static const char input[] = "first\r\nsecond\n0123456789abcdefOVER\nthird\npartial";
	struct events ev = { .len = 0 };
	size_t pending;
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], input, sizeof(input) - 1), (ssize_t)sizeof(input) - 1);
	close(fds[1]);
	read_all_lines(fds[0], &ev, &pending);
	close(fds[0]);
	assert_string_equal(ev.text, "first|second|!|third|");
	assert_int_equal(pending, strlen("partial"));
}

static void
test_fill_from_socketpair(void **state)
{
	struct events ev = { .len = 0 };
	struct linebuf lb;
	size_t pending;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < 50; i++)
		assert_int_equal(write(sv[1], "ab\n", 3), 3);
	shutdown(sv[1], SHUT_WR);
	read_all_lines(sv[0], &ev, &pending);
	assert_int_equal(ev.len, 50 * 3);
	assert_int_equal(pending, 0);

	/* a non-blocking read with nothing there reports EAGAIN, not EOF */
	assert_int_equal(linebuf_init(&lb, MAX_LINE), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	errno = 0;
	assert_int_equal(linebuf_fill(&lb, sv[1]), -1);
	assert_int_equal(errno, EAGAIN);
	linebuf_free(&lb);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_lines_one_read),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_exact_limit),
		cmocka_unit_test(test_one_over_the_limit),
		cmocka_unit_test(test_lower_max),
		cmocka_unit_test(test_overlong_then_good_line_same_buffer),
		cmocka_unit_test(test_overlong_reported_early_once),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_eof_with_partial_line),
		cmocka_unit_test(test_zero_max_line),
		cmocka_unit_test(test_huge_max_line_refused),
		cmocka_unit_test(test_linear_time),
		cmocka_unit_test(test_grows_for_long_lines),
		cmocka_unit_test(test_grows_for_busy_streams),
		cmocka_unit_test(test_fill_from_pipe),
		cmocka_unit_test(test_fill_from_socketpair),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
