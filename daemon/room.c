/* room.c: not written yet */
