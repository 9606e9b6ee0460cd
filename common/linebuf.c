/* linebuf.c: not written yet */
