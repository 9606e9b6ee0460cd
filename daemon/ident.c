/* ident.c: not written yet */
