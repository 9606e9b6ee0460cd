/*
 * test_threadstack.c - a thread gives back the stack pages a deep call
 * touched, and keeps running on the ones it still uses.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "threadstack.h"

#define STACK_SIZE (256 * 1024)
#define DEEP_BYTES (64 * 1024)

struct probe {
	uintptr_t deep; /* an address inside the deep call's frame */
	bool resident_before, resident_after;
	unsigned sum; /* the shallow frame's data, read after the release */
};

static bool
resident(uintptr_t addr)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char vec;

	assert_int_equal(mincore((void *)(addr & ~(uintptr_t)(page - 1)), 1, &vec), 0);
	return vec & 1;
}

static __attribute__((noinline)) uintptr_t
go_deep(void)
{
	volatile char big[DEEP_BYTES];

	for (size_t i = 0; i < sizeof(big); i += 64)
		big[i] = 1;
	return (uintptr_t)&big[DEEP_BYTES / 4];
}

static void *
thread_main(void *arg)
{
	struct probe *p = arg;
	unsigned char shallow[512];

	for (size_t i = 0; i < sizeof(shallow); i++)
		shallow[i] = (unsigned char)i;
	p->deep = go_deep();
	p->resident_before = resident(p->deep);
	thread_stack_release();
	p->resident_after = resident(p->deep);
	for (size_t i = 0; i < sizeof(shallow); i++)
		p->sum += shallow[i];
	return NULL;
}

static void
test_deep_pages_released_shallow_kept(void **state)
{
	pthread_attr_t attr;
	pthread_t t;
	struct probe p = { 0 };

	(void)state;
	assert_int_equal(pthread_attr_init(&attr), 0);
	assert_int_equal(pthread_attr_setstacksize(&attr, STACK_SIZE), 0);
	assert_int_equal(pthread_create(&t, &attr, thread_main, &p), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&attr);
	assert_true(p.resident_before);
	assert_false(p.resident_after);
	assert_int_equal(p.sum, 2 * (255 * 256 / 2)); /* 0..255 twice */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deep_pages_released_shallow_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
