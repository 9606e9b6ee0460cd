/*
 * fault.h - faults chatd's own tests switch on, to prove that the watchdog
 * notices a hung thread.  Set by the environment variable CHATD_TEST_FAULT
 * (read once at start); unset in any real deployment, and then every check
 * is a load of a false flag.
 *
 *   listener-hang   the listener thread stops for good after its first accept
 *   room-hang       the first room event leaves the room lock held for good
 */
#ifndef CHATD_FAULT_H
#define CHATD_FAULT_H

#include <stdbool.h>

enum fault {
	FAULT_LISTENER_HANG,
	FAULT_ROOM_HANG,
	FAULT_COUNT
};

/* Reads CHATD_TEST_FAULT; -1 with a message in err if it names no fault. */
int fault_init(char *err, unsigned long errlen);
bool fault_active(enum fault f);
/* Blocks the calling thread for good (it is a fault: nothing wakes it). */
void fault_hang(void) __attribute__((noreturn));

#endif
