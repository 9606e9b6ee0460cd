/* login.c: not written yet */
