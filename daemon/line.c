/* line.c: not written yet */
