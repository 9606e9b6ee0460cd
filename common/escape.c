/* escape.c: not written yet */
