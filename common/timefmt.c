/* timefmt.c: not written yet */
