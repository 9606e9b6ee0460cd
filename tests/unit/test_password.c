/*
 * test_password.c - yescrypt hashing, rehash decisions and the gate.
 *
 * The gate test holds every caller inside crypt_r() (crypt_probe.h), so
 * the count of callers in there at once is what the gate let in.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "crypt_probe.h"
#include "password.h"
#include "timefmt.h"

#define GATE_THREADS 8
#define GATE_SLOTS 2

static int
gate_setup(void **state)
{
	return password_gate_init(GATE_SLOTS);
}

static int
gate_teardown(void **state)
{
	password_gate_destroy();
	return 0;
}

static void
test_round_trip(void **state)
{
	char h[PASSWORD_HASH_MAX];

	assert_int_equal(password_hash("correct horse", 1, h), 0);
	assert_true(strncmp(h, "$y$", 3) == 0);
	assert_true(password_check("correct horse", h));
}

static void
test_wrong_password(void **state)
{
	char h[PASSWORD_HASH_MAX];

	assert_int_equal(password_hash("correct horse", 1, h), 0);
	assert_false(password_check("correct horsE", h));
	assert_false(password_check("correct hors", h));
	assert_false(password_check("", h));
}

static void
test_salt_is_fresh(void **state)
{
	char a[PASSWORD_HASH_MAX], b[PASSWORD_HASH_MAX];

	assert_int_equal(password_hash("same", 1, a), 0);
	assert_int_equal(password_hash("same", 1, b), 0);
	assert_string_not_equal(a, b);
	assert_true(password_check("same", a));
	assert_true(password_check("same", b));
}

static void
test_empty_password(void **state)
{
	char h[PASSWORD_HASH_MAX];

	assert_int_equal(password_hash("", 1, h), 0);
	assert_true(password_check("", h));
	assert_false(password_check(" ", h));
}

static void
test_length_limit(void **state)
{
	char pw[PASSWORD_MAX_LEN + 2];
	char h[PASSWORD_HASH_MAX];

	memset(pw, 'x', PASSWORD_MAX_LEN);
	pw[PASSWORD_MAX_LEN] = '\0';
	assert_int_equal(password_hash(pw, 1, h), 0);
	assert_true(password_check(pw, h));

	pw[PASSWORD_MAX_LEN] = 'x';
	pw[PASSWORD_MAX_LEN + 1] = '\0';
	errno = 0;
	assert_int_equal(password_hash(pw, 1, h), -1);
	assert_int_equal(errno, EINVAL);
	assert_false(password_check(pw, h));
}

static void
test_bad_cost(void **state)
{
	char h[PASSWORD_HASH_MAX];

	errno = 0;
	assert_int_equal(password_hash("pw", 0, h), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(password_hash("pw", 12, h), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(password_hash(NULL, 1, h), -1);
}

static void
test_bad_hashes_never_match(void **state)
{
	assert_false(password_check("pw", ""));
	assert_false(password_check("pw", NULL));
	assert_false(password_check("pw", "*0"));
	assert_false(password_check("pw", "$y$"));
	assert_false(password_check("pw", "$y$j75$garbage"));
	assert_false(password_check("pw", "!locked"));
}

static void
test_needs_rehash_cost_change(void **state)
{
	char h[PASSWORD_HASH_MAX];

	assert_int_equal(password_hash("pw", 1, h), 0);
	assert_false(password_needs_rehash(h, 1));
	assert_true(password_needs_rehash(h, 2));
	assert_true(password_needs_rehash(h, 5));

	assert_int_equal(password_hash("pw", 3, h), 0);
	assert_false(password_needs_rehash(h, 3));
	assert_true(password_needs_rehash(h, 1));
}

static void
test_needs_rehash_other_schemes(void **state)
{
	char sha512[] = "$6$abc$MtSdWSZbhct2oe.SOqOUM2M/GA/uj5.vyVtJgRHgKi9uqXuWuJqOYE7H"
			"/YlsYGVg/YYzDV0xt3fEIwYt580.5.";

	/* A hash from another scheme still verifies, but must be upgraded. */
	assert_true(password_check("pw", sha512));
	assert_true(password_needs_rehash(sha512, 1));
	assert_true(password_needs_rehash("", 1));
	assert_true(password_needs_rehash("$y$", 1));
	assert_true(password_needs_rehash("$y$j75", 1));
	assert_true(password_needs_rehash(NULL, 1));
	assert_true(password_needs_rehash("$y$j75$salt$hash", 0));
}

static void
test_gate_init_errors(void **state)
{
	errno = 0;
	assert_int_equal(password_gate_init(1), -1);
	assert_int_equal(errno, EBUSY);
	password_gate_destroy();

	errno = 0;
	assert_int_equal(password_gate_init(-1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(password_gate_init(0), 0);
	password_gate_destroy();
	password_gate_destroy(); /* twice is harmless */
	assert_int_equal(password_gate_init(GATE_SLOTS), 0);
}

static void *
hash_thread(void *arg)
{
	return (void *)(intptr_t)password_hash("pw", 1, arg);
}

static void
test_gate_bounds_concurrency(void **state)
{
	/* One crypt_r() call a thread, so any GATE_SLOTS of them can be inside. */
	const int calls = GATE_THREADS;
	char hashes[GATE_THREADS][PASSWORD_HASH_MAX];
	pthread_t t[GATE_THREADS];
	int done;

	probe_arm(NULL);

	for (int i = 0; i < GATE_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hash_thread, hashes[i]), 0);

	/* Let callers out one at a time, each once the gate is full again. */
	while ((done = probe_done()) < calls) {
		int left = calls - done;

		probe_await_inside(left < GATE_SLOTS ? left : GATE_SLOTS);
		probe_release_one();
	}
	probe_disarm();

	for (int i = 0; i < GATE_THREADS; i++) {
		void *rc;

		assert_int_equal(pthread_join(t[i], &rc), 0);
		assert_int_equal((intptr_t)rc, 0);
		assert_true(password_check("pw", hashes[i]));
	}
	assert_int_equal(probe_max_inside(), GATE_SLOTS);
}

/* A thread that holds a gate slot until told to let go. */
struct holder {
	pthread_t tid;
	sem_t holding; /* posted once it holds its slot */
	sem_t go;      /* posted to make it let go */
};

static void *
hold_slot(void *arg)
{
	struct holder *h = arg;

	assert_int_equal(password_gate_enter(-1), 0);
	sem_post(&h->holding);
	while (sem_wait(&h->go) != 0)
		;
	password_gate_leave();
	return NULL;
}

/* Starts n holders and waits until each holds its slot. */
static void
hold_slots(struct holder *h, int n)
{
	for (int i = 0; i < n; i++) {
		assert_int_equal(sem_init(&h[i].holding, 0, 0), 0);
		assert_int_equal(sem_init(&h[i].go, 0, 0), 0);
		assert_int_equal(pthread_create(&h[i].tid, NULL, hold_slot, &h[i]), 0);
		while (sem_wait(&h[i].holding) != 0)
			;
	}
}

static void
let_go(struct holder *h)
{
	sem_post(&h->go);
	assert_int_equal(pthread_join(h->tid, NULL), 0);
	sem_destroy(&h->holding);
	sem_destroy(&h->go);
}

/* Issue 13 item 12: the wait for a hash slot ends at the login's deadline. */
static void
test_gate_enter_gives_up_at_the_deadline(void **state)
{
	struct holder h[GATE_SLOTS];
	int64_t start;

	hold_slots(h, GATE_SLOTS);
	start = time_mono_ms();
	errno = 0;
	assert_int_equal(password_gate_enter(start + 100), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(time_mono_ms() - start >= 100);
	assert_true(time_mono_ms() - start < 5000);
	/* A deadline already past gives up at once. */
	assert_int_equal(password_gate_enter(start - 1), -1);
	for (int i = 0; i < GATE_SLOTS; i++)
		let_go(&h[i]);
	assert_int_equal(password_gate_enter(time_mono_ms() + 1000), 0);
	password_gate_leave();
}

/* A hash outside a held slot gives up at the thread's deadline. */
static void
test_hash_gives_up_at_the_thread_deadline(void **state)
{
	struct holder h[GATE_SLOTS];
	char hash[PASSWORD_HASH_MAX];
	int64_t start;

	hold_slots(h, GATE_SLOTS);
	start = time_mono_ms();
	password_gate_deadline(start + 100);
	errno = 0;
	assert_int_equal(password_hash("pw", 1, hash), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(time_mono_ms() - start >= 100);
	let_go(&h[0]);
	assert_int_equal(password_hash("pw", 1, hash), 0);
	password_gate_deadline(-1);
	for (int i = 1; i < GATE_SLOTS; i++)
		let_go(&h[i]);
}

/* password_gate_abort_if(): a wait whose reason went away ends, without a slot. */
static atomic_int gone_calls;

static bool
gone_after_two(void *arg)
{
	(void)arg;
	return atomic_fetch_add(&gone_calls, 1) >= 1;
}

static void
test_gate_wait_ends_when_gone(void **state)
{
	struct holder h[GATE_SLOTS];
	char hash[PASSWORD_HASH_MAX];
	int64_t start;

	hold_slots(h, GATE_SLOTS);
	start = time_mono_ms();
	atomic_store(&gone_calls, 0);
	password_gate_abort_if(gone_after_two, NULL);
	errno = 0;
	assert_int_equal(password_gate_enter(start + 30000), -1);
	assert_int_equal(errno, ECONNABORTED);
	assert_true(time_mono_ms() - start < 5000); /* not the deadline */
	assert_int_equal(atomic_load(&gone_calls), 2);
	/* A hash outside a held slot, with no deadline at all, too. */
	atomic_store(&gone_calls, 0);
	errno = 0;
	assert_int_equal(password_hash("pw", 1, hash), -1);
	assert_int_equal(errno, ECONNABORTED);
	password_gate_abort_if(NULL, NULL);
	for (int i = 0; i < GATE_SLOTS; i++)
		let_go(&h[i]);
	assert_int_equal(password_gate_enter(time_mono_ms() + 1000), 0);
	password_gate_leave();
}

/*
 * A wait that is granted its slot after its reason went away (between two
 * looks at gone()) gives the slot back and fails: a login dropped while it
 * queued must not go on to hash (and register) because the slot came first.
 */
struct late_waiter {
	pthread_t tid;
	atomic_bool gone;
	int rc, err;
};

static bool
flag_gone(void *arg)
{
	return atomic_load(&((struct late_waiter *)arg)->gone);
}

static void *
wait_for_slot(void *arg)
{
	struct late_waiter *w = arg;

	password_gate_abort_if(flag_gone, w);
	errno = 0;
	w->rc = password_gate_enter(-1);
	w->err = errno;
	if (w->rc == 0)
		password_gate_leave();
	password_gate_abort_if(NULL, NULL);
	return NULL;
}

static void
test_a_slot_granted_after_gone_is_given_back(void **state)
{
	struct holder h[GATE_SLOTS];
	struct late_waiter w = { .rc = 99 };

	hold_slots(h, GATE_SLOTS);
	atomic_store(&w.gone, false);
	assert_int_equal(pthread_create(&w.tid, NULL, wait_for_slot, &w), 0);
	while (password_gate_waiting() == 0)
		sched_yield();
	/* Gone, and at once a slot for it: well within its 100 ms between looks. */
	atomic_store(&w.gone, true);
	let_go(&h[0]);
	assert_int_equal(pthread_join(w.tid, NULL), 0);
	/* The slot went back to the pool: another takes it at once. */
	int again = password_gate_enter(time_mono_ms() + 1000);

	if (again == 0)
		password_gate_leave();
	for (int i = 1; i < GATE_SLOTS; i++)
		let_go(&h[i]); /* before any assert, so that a failure leaves no slot held */
	assert_int_equal(again, 0);
	assert_int_equal(w.rc, -1);
	assert_int_equal(w.err, ECONNABORTED);
}

/* A thread that holds a slot hashes in it, even when the others are all taken. */
static void
test_hashes_use_the_slot_held(void **state)
{
	struct holder h[GATE_SLOTS - 1];
	char hash[PASSWORD_HASH_MAX];

	hold_slots(h, GATE_SLOTS - 1);
	assert_int_equal(password_gate_enter(time_mono_ms() + 1000), 0);
	assert_int_equal(password_hash("pw", 1, hash), 0);
	assert_true(password_check("pw", hash));
	password_gate_leave();
	for (int i = 0; i < GATE_SLOTS - 1; i++)
		let_go(&h[i]);
}

/* Slots go to waiters in the order they came: a storm of logins is served first come, first served. */
#define ORDER_WAITERS 5
static atomic_int order_next;
static int order_got[ORDER_WAITERS];

static void *
wait_in_turn(void *arg)
{
	int i = (int)(intptr_t)arg;

	assert_int_equal(password_gate_enter(time_mono_ms() + 30000), 0);
	order_got[atomic_fetch_add(&order_next, 1)] = i;
	password_gate_leave();
	return NULL;
}

static void
test_gate_serves_in_arrival_order(void **state)
{
	struct holder h[GATE_SLOTS];
	pthread_t tid[ORDER_WAITERS];

	hold_slots(h, GATE_SLOTS);
	atomic_store(&order_next, 0);
	for (int i = 0; i < ORDER_WAITERS; i++) {
		assert_int_equal(pthread_create(&tid[i], NULL, wait_in_turn, (void *)(intptr_t)i),
				 0);
		/* The next one starts only once this one waits in the queue. */
		while (password_gate_waiting() != (size_t)i + 1)
			sched_yield();
	}
	/* One slot stays held: the waiters pass through the other one at a time. */
	let_go(&h[0]);
	for (int i = 0; i < ORDER_WAITERS; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);
	for (int i = 0; i < ORDER_WAITERS; i++)
		assert_int_equal(order_got[i], i);
	assert_int_equal(password_gate_waiting(), 0);
	for (int i = 1; i < GATE_SLOTS; i++)
		let_go(&h[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_salt_is_fresh),
		cmocka_unit_test(test_empty_password),
		cmocka_unit_test(test_length_limit),
		cmocka_unit_test(test_bad_cost),
		cmocka_unit_test(test_bad_hashes_never_match),
		cmocka_unit_test(test_needs_rehash_cost_change),
		cmocka_unit_test(test_needs_rehash_other_schemes),
		cmocka_unit_test(test_gate_init_errors),
		cmocka_unit_test(test_gate_bounds_concurrency),
		cmocka_unit_test(test_gate_enter_gives_up_at_the_deadline),
		cmocka_unit_test(test_hashes_use_the_slot_held),
		cmocka_unit_test(test_gate_wait_ends_when_gone),
		cmocka_unit_test(test_a_slot_granted_after_gone_is_given_back),
		cmocka_unit_test(test_hash_gives_up_at_the_thread_deadline),
		cmocka_unit_test(test_gate_serves_in_arrival_order),
	};

	return cmocka_run_group_tests(tests, gate_setup, gate_teardown);
}
