/* statelock.c: not written yet */
