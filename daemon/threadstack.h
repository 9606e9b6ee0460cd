/*
 * threadstack.h - giving back the stack pages a thread's deepest call
 * touched (see threadstack.c).
 */
#ifndef CHATD_THREADSTACK_H
#define CHATD_THREADSTACK_H

/*
 * Releases the calling thread's stack pages below the caller's frame.
 * Call it from a shallow frame, before a long
 * sleep; never from the main thread (its stack grows on demand).
 */
void thread_stack_release(void);

#endif
