/*
 * test_outq.c - a client's pending output: pieces that touch in memory
 * become one iovec, with the references still balanced; pieces that do
 * not stay apart; the bytes come out in order; room reserved holds the
 * items pushed after, in order, across a wrapped ring.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "line.h"
#include "outq.h"

static struct line *
text_line(const char *text)
{
	struct line *l = line_new(strlen(text));

	assert_non_null(l);
	memcpy(l->data, text, strlen(text));
	return l;
}

static unsigned
refs(struct line *l)
{
	return atomic_load(&l->refs);
}

/* Flushes q into a pipe and checks that exactly `want` comes out. */
static void
assert_flushes(struct outq *q, const char *want)
{
	char got[256];
	int fds[2];
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(outq_flush(q, fds[1]), 0);
	assert_true(outq_empty(q));
	close(fds[1]);
	n = read(fds[0], got, sizeof(got));
	close(fds[0]);
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(got, want, strlen(want));
}

static void
test_touching_pieces_merge(void **state)
{
	struct line *batch = text_line("MSG 1 a\nMSG 2 b\nMSG 3 c\n");
	struct outq q;

	(void)state;
	outq_init(&q);
	for (size_t off = 0; off < 24; off += 8)
		assert_int_equal(outq_push(&q, batch->data + off, 8, line_ref(batch)), 0);
	assert_int_equal(q.count, 1);
	assert_int_equal(q.bytes, 24);
	assert_int_equal(refs(batch), 2); /* ours and the queue's one item */
	assert_flushes(&q, "MSG 1 a\nMSG 2 b\nMSG 3 c\n");
	assert_int_equal(refs(batch), 1);
	outq_free(&q);
	line_unref(batch);
}

static void
test_gaps_and_owners_keep_pieces_apart(void **state)
{
	static const char tag_ok[] = "OK ";
	struct line *batch = text_line("MSG 1 a\nMSG 2 b\n");
	struct line *other = text_line("JOIN c\n");
	struct outq q;

	(void)state;
	outq_init(&q);
	assert_int_equal(outq_push(&q, batch->data, 8, line_ref(batch)), 0);
	/* "OK 2 " skips "MSG " of the next message: a gap. */
	assert_int_equal(outq_push_static(&q, tag_ok, 3), 0);
	assert_int_equal(outq_push(&q, batch->data + 12, 2, line_ref(batch)), 0);
	assert_int_equal(outq_push_static(&q, "sent\n", 5), 0);
	assert_int_equal(outq_push_line(&q, line_ref(other)), 0);
	assert_int_equal(q.count, 5);
	assert_int_equal(refs(batch), 3);
	assert_int_equal(refs(other), 2);
	assert_flushes(&q, "MSG 1 a\nOK 2 sent\nJOIN c\n");
	assert_int_equal(refs(batch), 1);
	assert_int_equal(refs(other), 1);
	outq_free(&q);
	line_unref(batch);
	line_unref(other);
}

/* outq_free() drops what was queued, merged or not. */
static void
test_free_releases_merged_items(void **state)
{
	struct line *batch = text_line("abcdef");
	struct outq q;

	(void)state;
	outq_init(&q);
	assert_int_equal(outq_push(&q, batch->data, 3, line_ref(batch)), 0);
	assert_int_equal(outq_push(&q, batch->data + 3, 3, line_ref(batch)), 0);
	assert_int_equal(refs(batch), 2);
	outq_free(&q);
	assert_int_equal(refs(batch), 1);
	line_unref(batch);
}

/* outq_reserve() makes room for n items at once, keeping what is queued in order. */
static void
test_reserve_keeps_order(void **state)
{
	static const char text[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	struct outq q;
	char want[sizeof(text)];

	(void)state;
	outq_init(&q);
	assert_int_equal(outq_reserve(&q, 0), 0);
	assert_int_equal(outq_reserve(&q, 3), 0);
	assert_true(q.cap >= 3);
	/* Items apart (every other byte); flushed, so the next ones wrap around the ring. */
	for (size_t i = 0; i < 16; i += 2)
		assert_int_equal(outq_push_static(&q, text + i, 1), 0);
	assert_flushes(&q, "02468ace");
	for (size_t i = 0; i < sizeof(text) - 1; i += 2)
		assert_int_equal(outq_push_static(&q, text + i, 1), 0);
	size_t cap = q.cap;
	assert_int_equal(outq_reserve(&q, cap), 0);
	assert_true(q.cap >= q.count + cap);
	for (size_t i = 0; i < sizeof(text) - 1; i += 2)
		want[i / 2] = text[i];
	want[(sizeof(text) - 1) / 2] = '\0';
	assert_flushes(&q, want);
	outq_free(&q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_touching_pieces_merge),
		cmocka_unit_test(test_gaps_and_owners_keep_pieces_apart),
		cmocka_unit_test(test_free_releases_merged_items),
		cmocka_unit_test(test_reserve_keeps_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
