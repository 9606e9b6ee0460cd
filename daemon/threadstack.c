/*
 * threadstack.c - giving back the stack pages a thread's deepest call
 * touched.
 *
 * A client thread spends its life in a shallow loop (ppoll, the room,
 * writev), but logging in goes deep: the password hash and the log
 * formatter.  The pages that touched stay resident for as long as the
 * thread lives, and with a thread per client they are a good part of an
 * idle client's memory.  Once the deep part is over, the thread tells the
 * kernel that everything below its current frame is free: MADV_DONTNEED
 * drops the pages, and a later deep call gets fresh zero pages.
 *
 * No state: a thread calls it on its own stack only (client.c, before
 * it sleeps).
 */
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "threadstack.h"

/* Bytes under this function's frame address that are in use while it runs. */
#define RELEASE_SLACK 1024

void
thread_stack_release(void)
{
	pthread_attr_t attr;
	void *low;
	size_t size;
	/* The real stack, even where a sanitizer moves locals elsewhere. */
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t end;

	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return;
	int rc = pthread_attr_getstack(&attr, &low, &size);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		return;
	if (here <= (uintptr_t)low + RELEASE_SLACK || here > (uintptr_t)low + size)
		return;
	/*
	 * Keep what lies just below the frame's top: its locals, the red zone
	 * under the stack pointer and the return address of the madvise()
	 * call, all well within RELEASE_SLACK.
	 */
	end = (here - RELEASE_SLACK) & ~(page - 1);
	if (end > (uintptr_t)low)
		madvise(low, end - (uintptr_t)low, MADV_DONTNEED);
}
