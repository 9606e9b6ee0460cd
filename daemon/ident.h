/*
 * ident.h - the identification store: who may log in, with which password.
 *
 * Kept in a backend behind identstore.h; the one chatd has is the file
 * (identfile.c).  File format (docs/FILES.md): a version line
 * "chatd-ident 1", then one user a line, "NAME:HASH", HASH a crypt(3)
 * string (the base), then one record a change: "+NAME:HASH" (registered,
 * or a new hash) or "-NAME" (deleted).
 * A change costs one appended record, one write() and one fdatasync() (shared
 * by the changes that wait together), never a rewrite of the base, so its
 * cost does not grow with the number of users.
 * The file is rewritten atomically (temp file, fsync, rename, fsync of the
 * directory; mode 0600) when the records outgrow the base (and 64 KiB), at
 * startup when it holds records or a torn last line, when it is not as chatd
 * left it, and to clear it.  A damaged line is skipped with a warning naming
 * its line number; a torn last line is dropped.
 *
 * Locking: one mutex guards the in-memory table and every file write (a
 * batch's write() and fdatasync(), a compaction), so records go to the file
 * in the order the changes were made.  The slow part (hashing) always
 * happens outside it: a verify copies the hash out, checks it unlocked, and
 * a rehash or registration writes back under the lock only if the entry did
 * not change meanwhile (a generation count).  Changes that wait while a
 * batch is being written are written together after it (group commit: one
 * write() and one fdatasync() for all of them).
 */
#ifndef CHATD_IDENT_H
#define CHATD_IDENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "names.h"

struct ident;

enum ident_result {
	IDENT_OK = 0,
	IDENT_UNKNOWN, /* no such name */
	IDENT_BAD_PASSWORD,
	IDENT_EXISTS,   /* register: the name was taken meanwhile */
	IDENT_IO_ERROR, /* the file could not be written; nothing changed */
	IDENT_NO_MEMORY,
	IDENT_INVALID, /* not a valid name, password or cost */
};

/*
 * Reads path (a missing file is an empty store and is created on the first
 * change).  Returns NULL with a message in err if the file cannot be read
 * or has an unknown version line.  Damaged lines are logged and skipped.
 */
struct ident *ident_open(const char *path, char *err, size_t errlen);
void ident_close(struct ident *id);

/* Is name registered?  Copies the registered spelling into canonical (may be NULL). */
bool ident_lookup(struct ident *id, const char *name, char canonical[NAME_MAX_LEN + 1]);

/*
 * The registration name belongs to now, 0 if none: a number that tells an
 * account from one registered under its name after it was deleted (valid
 * while chatd runs; never 0 for an account).
 */
uint64_t ident_account(struct ident *id, const char *name);

/* Was account (ident_account()) registered before the last ident_clear()? */
bool ident_cleared(struct ident *id, uint64_t account);

/*
 * Checks the password (slow; takes a password gate slot).  On success
 * copies the registered spelling and, if account is not NULL, the
 * ident_account() of the registration whose password it checked; when the
 * stored hash was made at a different cost, re-hashes it at cost and
 * stores the new hash (one "+NAME:HASH" record, as any change).
 */
enum ident_result ident_verify(struct ident *id, const char *name, const char *password, int cost,
			       char canonical[NAME_MAX_LEN + 1], uint64_t *account);

/*
 * Registers a new name (slow).  IDENT_EXISTS if the name is taken,
 * including by someone who registered it while this call was hashing (the
 * loser of a race for a new name gets IDENT_EXISTS, never
 * IDENT_BAD_PASSWORD).  IDENT_OK only once the registration is durable;
 * then, if account is not NULL, stores the new registration's
 * ident_account(), which a later ident_account() call could no longer
 * tell if a deletion or ident_clear() came in between.
 */
enum ident_result ident_register(struct ident *id, const char *name, const char *password, int cost,
				 uint64_t *account);

/*
 * Sets a new password for a registered name (slow).  With account not 0,
 * only for that registration (ident_account()): IDENT_UNKNOWN when the
 * name is now another's, or nobody's, as after ident_clear().
 */
enum ident_result ident_set_password(struct ident *id, const char *name, const char *password,
				     int cost, uint64_t account);

enum ident_result ident_delete(struct ident *id, const char *name);

/* Empties the store and the file, atomically (a rewrite). */
enum ident_result ident_clear(struct ident *id);

size_t ident_count(struct ident *id);

/* Calls fn for every registered name, in name_cmp() order, under the lock. */
void ident_foreach(struct ident *id, void (*fn)(void *ctx, const char *name), void *ctx);

const char *ident_result_str(enum ident_result r);

/* What the store did, for tests and figures. */
struct ident_stats {
	size_t waiting;         /* changes queued or being committed now */
	unsigned long appends;  /* batches appended: one write() and one fdatasync() each */
	unsigned long rewrites; /* whole-file rewrites (compactions, clears) */
};

void ident_get_stats(struct ident *id, struct ident_stats *st);

/*
 * How many bytes of records may follow a base smaller than this before a
 * compaction (default 64 KiB; the bound is the larger of this and the
 * base's size).  For tests and the fuzz target, which want compactions
 * after a few changes.
 */
void ident_set_journal_min(struct ident *id, size_t bytes);

#endif
