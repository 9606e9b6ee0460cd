/*
 * fault.c - test-only fault switches (see fault.h).  Owns the switches:
 * set by the main thread (fault_init) before any other thread exists,
 * then read by any thread; a fault that strikes once is an atomic flag.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"

static const char *const fault_names[FAULT_COUNT] = {
	[FAULT_LISTENER_HANG] = "listener-hang",
	[FAULT_ROOM_HANG] = "room-hang",
	[FAULT_ROOM_SAVE_BUSY] = "room-save-busy",
	[FAULT_SLOW_SYNC] = "slow-sync",
	[FAULT_SLOW_GUEST] = "slow-guest",
	[FAULT_SLOW_ACCOUNT] = "slow-account",
	[FAULT_PATHS_CHECKED_STOP] = "paths-checked-stop",
};

/* Written once by the main thread before any other thread exists. */
static bool active[FAULT_COUNT];
/* Faults that strike once (fault_once) and have. */
static atomic_bool struck[FAULT_COUNT];

int
fault_init(char *err, unsigned long errlen)
{
	const char *name = getenv("CHATD_TEST_FAULT");

	if (name == NULL || name[0] == '\0')
		return 0;
	for (int f = 0; f < FAULT_COUNT; f++)
		if (strcmp(name, fault_names[f]) == 0) {
			active[f] = true;
			log_warning("test fault %s is switched on (CHATD_TEST_FAULT)", name);
			return 0;
		}
	snprintf(err, errlen, "CHATD_TEST_FAULT=%s names no fault", name);
	return -1;
}

bool
fault_active(enum fault f)
{
	return active[f];
}

bool
fault_once(enum fault f)
{
	return active[f] && !atomic_exchange(&struck[f], true);
}

void
fault_hang(void)
{
	for (;;)
		pause();
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void
fault_slow_sync(void)
{
	if (active[FAULT_SLOW_SYNC])
		sleep_ms(FAULT_SLOW_SYNC_MS);
}

void
fault_slow_guest(void)
{
	if (active[FAULT_SLOW_GUEST])
		sleep_ms(FAULT_SLOW_GUEST_MS);
}

void
fault_slow_account(void)
{
	if (active[FAULT_SLOW_ACCOUNT])
		sleep_ms(FAULT_SLOW_ACCOUNT_MS);
}
