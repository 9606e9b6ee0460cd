/*
 * fault.h - faults chatd's own tests switch on: to prove that the watchdog
 * notices a hung thread, that a put-off rooms-file save is retried, and to
 * make the disk slow on purpose.  Set by the environment variable
 * CHATD_TEST_FAULT (read once at start); unset in any real deployment, and
 * then every check is a load of a false flag.
 *
 *   listener-hang   the listener thread stops for good after its first accept
 *   room-hang       the first room event leaves the room lock held for good
 *   room-save-busy  the control thread's first save of a rooms change finds
 *                   the room lock busy (the save is put off for a retry)
 *   slow-sync       every fdatasync() of the history file takes FAULT_SLOW_SYNC_MS
 *                   longer (a slow disk: bursts pile up behind it)
 *   slow-guest      a guest whose name was found free waits FAULT_SLOW_GUEST_MS
 *                   before it goes online (another login of the name comes between)
 *   slow-account    an account whose password or token was checked waits
 *                   FAULT_SLOW_ACCOUNT_MS before it goes online (the account can
 *                   be deleted, and registered again, in between)
 *   paths-checked-stop  chatd stops itself (SIGSTOP) once it has checked its
 *                   paths, before it creates anything: a test changes them
 *                   in between and sends SIGCONT
 */
#ifndef CHATD_FAULT_H
#define CHATD_FAULT_H

#include <stdbool.h>

#define FAULT_SLOW_SYNC_MS 100
#define FAULT_SLOW_GUEST_MS 500
#define FAULT_SLOW_ACCOUNT_MS 2000

enum fault {
	FAULT_LISTENER_HANG,
	FAULT_ROOM_HANG,
	FAULT_ROOM_SAVE_BUSY,
	FAULT_SLOW_SYNC,
	FAULT_SLOW_GUEST,
	FAULT_SLOW_ACCOUNT,
	FAULT_PATHS_CHECKED_STOP,
	FAULT_COUNT
};

/* Reads CHATD_TEST_FAULT; -1 with a message in err if it names no fault. */
int fault_init(char *err, unsigned long errlen);
bool fault_active(enum fault f);
/* True the first time it is asked about an active fault f, then false (any thread). */
bool fault_once(enum fault f);
/* Blocks the calling thread for good (it is a fault: nothing wakes it). */
void fault_hang(void) __attribute__((noreturn));
/* Sleeps FAULT_SLOW_SYNC_MS if slow-sync is on (the history's commit thread, before a sync). */
void fault_slow_sync(void);
/* Sleeps FAULT_SLOW_GUEST_MS if slow-guest is on (a guest's thread, before room_login()). */
void fault_slow_guest(void);
/* Sleeps FAULT_SLOW_ACCOUNT_MS if slow-account is on (an account's thread, before room_login()). */
void fault_slow_account(void);

#endif
