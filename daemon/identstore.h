/*
 * identstore.h - where the identification store keeps its users: the
 * interface between daemon/ident.c and a storage backend.
 *
 * ident.c owns the table in memory (names, hashes, generations), the
 * group commit of changes and the hashing; a backend only stores users
 * and reads them back.  identfile.c is the backend chatd has: the
 * identification file (docs/FILES.md).  Another (a Redis hash, say) is a
 * second struct identstore_ops and a constructor next to identfile_open().
 *
 * A change reaches the store as a record: "+NAME:HASH\n" (NAME now has
 * HASH) or "-NAME\n" (NAME was deleted).  When the store cannot or should
 * not add records (its own measure: the file when its records outgrow its
 * base, or when it is not as chatd left it), it rewrites itself from
 * every user instead, which ident.c lends it as an identstore_users.
 *
 * Threads: every call but load, close and stats is made under the ident
 * lock (ident.c), so a change is durable before anyone sees it and a
 * backend needs no lock of its own; load and close are made by
 * ident_open() and ident_close(), when no other thread uses the store, and
 * stats may be read from any thread.
 */
#ifndef CHATD_IDENTSTORE_H
#define CHATD_IDENTSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "ident.h"

struct identstore;

/* Every user, lent for a rewrite: n of them, sorted by name_cmp(). */
struct identstore_users {
	size_t n;
	const char *(*name)(const void *ctx, size_t i);
	const char *(*hash)(const void *ctx, size_t i);
	const void *ctx;
};

/*
 * What load() hands over, in the store's order (the file: its base, then
 * its records).  name is a valid name, hash a well-formed crypt string;
 * where ("PATH:LINE") is for warnings.  -1 only when out of memory.
 */
struct identstore_loader {
	/* A user of the base (record false) or a "+NAME:HASH" record. */
	int (*set)(void *ctx, const char *name, const char *hash, bool record, const char *where);
	/* A "-NAME" record. */
	int (*del)(void *ctx, const char *name, const char *where);
	void *ctx;
};

struct identstore_ops {
	/*
	 * Reads every user through ld (a missing store is an empty one).
	 * *fold: the store holds changes to fold (records, a torn tail): the
	 * caller rewrites it once loaded; *changes is how many.  0, or -1 with
	 * a message in err.
	 */
	int (*load)(struct identstore *s, const struct identstore_loader *ld, bool *fold,
		    size_t *changes, char *err, size_t errlen);
	/*
	 * Stores the records rec (len bytes) of changes the table already
	 * holds, or rewrites the store from all (which holds them too).
	 * IDENT_OK once durable; otherwise nothing of them is stored.
	 */
	enum ident_result (*store)(struct identstore *s, const char *rec, size_t len,
				   const struct identstore_users *all);
	/* Replaces everything with all (a compaction, a clear). */
	enum ident_result (*rewrite)(struct identstore *s, const struct identstore_users *all);
	/* Records may take this many bytes past a smaller base before a rewrite (tests). */
	void (*set_journal_min)(struct identstore *s, size_t bytes);
	/* Appends (batches) and rewrites so far; any thread. */
	void (*stats)(struct identstore *s, unsigned long *appends, unsigned long *rewrites);
	void (*close)(struct identstore *s);
};

/* A backend's state starts with this. */
struct identstore {
	const struct identstore_ops *ops;
};

/* The identification file at path (identfile.c); NULL with a message in err. */
struct identstore *identfile_open(const char *path, char *err, size_t errlen);

#endif
