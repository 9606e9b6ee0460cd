/* outq.c: not written yet */
