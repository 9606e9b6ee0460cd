/* password.c: not written yet */
