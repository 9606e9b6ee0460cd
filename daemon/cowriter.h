/*
 * cowriter.h - a second thread for the writes of a write-through pass
 * (fanout.c): while the publisher of stored messages writes one half of
 * a pass's members with the room lock held, the co-writer writes the
 * other half, on another core.  Only the members a pass has claimed are
 * written, so nobody else touches their sockets meanwhile.
 *
 * One publisher at a time hands work to it (cowriter_begin, then
 * cowriter_wait before anything else); the thread never takes the room
 * lock.
 */
#ifndef CHATD_COWRITER_H
#define CHATD_COWRITER_H

#include <stddef.h>

struct cowriter;

/* Writes entries [from, to) of arg's pass: fanout.c's flush_write. */
typedef void (*cowriter_fn)(void *arg, size_t from, size_t to);

/*
 * Starts the thread, which calls fn(arg, from, to) for each range handed
 * to it.  NULL when the machine has one core (a second writer would only
 * take turns with the first) or the thread cannot start: the caller then
 * writes everything itself.
 */
struct cowriter *cowriter_start(cowriter_fn fn, void *arg);

/* Hands [from, to) to the thread; returns at once. */
void cowriter_begin(struct cowriter *w, size_t from, size_t to);

/* Returns once the range handed by cowriter_begin() is written. */
void cowriter_wait(struct cowriter *w);

/* Stops and joins the thread; w may be NULL. */
void cowriter_stop(struct cowriter *w);

#endif
