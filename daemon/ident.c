/*
 * ident.c - the identification store: a sorted table of names and password
 * hashes in memory, kept in a backend (identstore.h; identfile.c: the
 * identification file, docs/FILES.md), with one record per change; the
 * changes that wait together are stored with one write() and one
 * fdatasync() (group commit).  Called from the login threads, the control
 * thread and its admin workers, and logged-in clients' commands: the
 * table and every call into the store under the one lock (id->lock), the
 * changes waiting for the next batch under the queue lock, which is never
 * held together with it.
 *
 * Every change is made in memory first, then stored; if that fails the
 * change is undone (the store takes back what it wrote), so memory and
 * store never disagree.  Each entry carries two generations from one
 * store-wide counter: "born" identifies its registration (a name deleted
 * and registered again is another entry) and "changed" its current hash.
 * Work done outside the lock is written back only if the generation it
 * started from is still there.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"
#include "identstore.h"
#include "log.h"
#include "password.h"

/* The longest record: '+', name, ':', hash, LF. */
#define RECORD_MAX (NAME_MAX_LEN + PASSWORD_HASH_MAX + 3)

struct entry {
	uint64_t born;
	uint64_t changed;
	char name[NAME_MAX_LEN + 1];
	char hash[PASSWORD_HASH_MAX];
};

struct ident {
	pthread_mutex_t lock;
	struct entry **v; /* sorted by name_cmp() */
	size_t n, cap;
	uint64_t gen;     /* the last generation handed out */
	uint64_t cleared; /* gen at the last ident_clear(): older accounts it forgot */
	char *path;       /* for the log */
	struct identstore *store;
	/* Group commit (change_submit()); never held together with lock. */
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_cond;
	struct change *queue, **queue_tail;
	size_t waiting; /* changes queued or being committed */
	bool committing;
};

static bool
name_acceptable(const char *name)
{
	return name != NULL && name_valid(name, strnlen(name, NAME_MAX_LEN + 1));
}

/* Binary search; *pos is where name is or would be inserted. */
static struct entry *
table_find(const struct ident *id, const char *name, size_t *pos)
{
	size_t lo = 0, hi = id->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(name, id->v[mid]->name);

		if (c == 0) {
			if (pos != NULL)
				*pos = mid;
			return id->v[mid];
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (pos != NULL)
		*pos = lo;
	return NULL;
}

/* Cannot fail when an entry was just removed: the room is still there. */
static int
table_insert(struct ident *id, struct entry *e, size_t pos)
{
	if (id->n == id->cap) {
		size_t ncap = id->cap ? id->cap * 2 : 64;
		struct entry **nv = realloc(id->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		id->v = nv;
		id->cap = ncap;
	}
	memmove(&id->v[pos + 1], &id->v[pos], (id->n - pos) * sizeof(*id->v));
	id->v[pos] = e;
	id->n++;
	return 0;
}

static void
table_remove(struct ident *id, size_t pos)
{
	id->n--;
	memmove(&id->v[pos], &id->v[pos + 1], (id->n - pos) * sizeof(*id->v));
}

static void
table_free(struct entry **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static struct entry *
entry_new(struct ident *id, const char *name, const char *hash)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->born = e->changed = ++id->gen;
	strcpy(e->name, name);
	strcpy(e->hash, hash);
	return e;
}

/* --- the table lent to the store --- */

static const char *
user_name(const void *ctx, size_t i)
{
	return ((const struct ident *)ctx)->v[i]->name;
}

static const char *
user_hash(const void *ctx, size_t i)
{
	return ((const struct ident *)ctx)->v[i]->hash;
}

/* Every user, for a rewrite of the store.  Lock held while it is used. */
static struct identstore_users
all_users(const struct ident *id)
{
	return (struct identstore_users){ id->n, user_name, user_hash, id };
}

/* --- loading --- */

static int
skip_line(const char *where, const char *problem)
{
	log_warning("%s: %s; line skipped", where, problem);
	return 0;
}

/*
 * A user of the base or a record setting NAME's hash, in this spelling,
 * registered before or not; a base line repeating a name is skipped.  -1
 * when out of memory.
 */
static int
load_set(void *ctx, const char *name, const char *hash, bool record, const char *where)
{
	struct ident *id = ctx;
	struct entry *e;
	size_t pos;

	e = table_find(id, name, &pos);
	if (e != NULL && !record)
		return skip_line(where, "name already registered on an earlier line");
	if (e != NULL) {
		strcpy(e->name, name);
		strcpy(e->hash, hash);
		e->born = e->changed = ++id->gen;
		return 0;
	}
	e = entry_new(id, name, hash);
	if (e == NULL || table_insert(id, e, pos) != 0) {
		free(e);
		return -1;
	}
	return 0;
}

/* A record "-NAME": NAME was deleted. */
static int
load_del(void *ctx, const char *name, const char *where)
{
	struct ident *id = ctx;
	size_t pos;

	if (table_find(id, name, &pos) == NULL)
		return skip_line(where, "deletion of a name not registered");
	free(id->v[pos]);
	table_remove(id, pos);
	return 0;
}

struct ident *
ident_open(const char *path, char *err, size_t errlen)
{
	struct ident *id = calloc(1, sizeof(*id));
	const struct identstore_loader ld = { load_set, load_del, id };
	size_t changes;
	bool fold;

	if (id == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	pthread_mutex_init(&id->lock, NULL);
	pthread_mutex_init(&id->queue_lock, NULL);
	pthread_cond_init(&id->queue_cond, NULL);
	id->queue_tail = &id->queue;
	id->path = strdup(path);
	if (id->path == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		ident_close(id);
		return NULL;
	}
	id->store = identfile_open(path, err, errlen);
	if (id->store == NULL ||
	    id->store->ops->load(id->store, &ld, &fold, &changes, err, errlen) != 0) {
		ident_close(id);
		return NULL;
	}
	/*
	 * Folds the records of the last run into the base and writes a torn
	 * tail out of the file.  A failure only means the records stay (and a
	 * torn tail makes the next change try again).
	 */
	if (fold) {
		struct identstore_users all;

		pthread_mutex_lock(&id->lock);
		all = all_users(id);
		if (id->store->ops->rewrite(id->store, &all) == IDENT_OK)
			log_info("%s: %zu changes folded into the file", id->path, changes);
		pthread_mutex_unlock(&id->lock);
	}
	return id;
}

void
ident_close(struct ident *id)
{
	if (id == NULL)
		return;
	pthread_mutex_destroy(&id->lock);
	pthread_mutex_destroy(&id->queue_lock);
	pthread_cond_destroy(&id->queue_cond);
	table_free(id->v, id->n);
	if (id->store != NULL)
		id->store->ops->close(id->store);
	free(id->path);
	free(id);
}

bool
ident_lookup(struct ident *id, const char *name, char canonical[NAME_MAX_LEN + 1])
{
	struct entry *e;

	if (!name_acceptable(name))
		return false;
	pthread_mutex_lock(&id->lock);
	e = table_find(id, name, NULL);
	if (e != NULL && canonical != NULL)
		strcpy(canonical, e->name);
	pthread_mutex_unlock(&id->lock);
	return e != NULL;
}

/* A copy of name's entry, to work on without the lock. */
static bool
snapshot(struct ident *id, const char *name, struct entry *copy)
{
	struct entry *e;

	if (!name_acceptable(name))
		return false;
	pthread_mutex_lock(&id->lock);
	e = table_find(id, name, NULL);
	if (e != NULL)
		*copy = *e;
	pthread_mutex_unlock(&id->lock);
	return e != NULL;
}

/*
 * Group commit.  A change (registration, password change, rehash,
 * deletion) is queued; the first thread to find no commit running takes
 * the whole queue, applies it in memory under the lock, appends one record
 * per change with one write() and one fdatasync() (or rewrites the file),
 * and tells every thread of the batch its result.  If that fails, the
 * batch is undone in reverse order, so memory and file still agree.  The
 * lock stays held across the sync: nobody sees a change before it is
 * durable.  Changes that arrive meanwhile wait for the next batch.
 */
enum change_kind { CH_REGISTER, CH_SET_PASSWORD, CH_REHASH, CH_DELETE };

struct change {
	struct change *next; /* in the queue, then in the batch */
	struct change *undo; /* the changes applied before this one, latest first */
	enum change_kind kind;
	const char *name;
	const char *hash; /* not for CH_DELETE */
	uint64_t seen;    /* born (CH_SET_PASSWORD) or changed (CH_REHASH) when hashed */
	uint64_t born;    /* CH_REGISTER: the new entry's, once applied */
	enum ident_result r;
	bool done;
	struct entry *e;  /* the entry applied to */
	struct entry old; /* its state before, for a new hash */
};

/* Makes ch in memory and appends its record to buf.  Lock held. */
static enum ident_result
change_apply(struct ident *id, struct change *ch, char *buf, size_t *off)
{
	size_t pos;
	struct entry *e = table_find(id, ch->name, &pos);

	switch (ch->kind) {
	case CH_REGISTER:
		if (e != NULL)
			return IDENT_EXISTS;
		if ((e = entry_new(id, ch->name, ch->hash)) == NULL)
			return IDENT_NO_MEMORY;
		if (table_insert(id, e, pos) != 0) {
			free(e);
			return IDENT_NO_MEMORY;
		}
		ch->born = e->born;
		break;
	case CH_SET_PASSWORD:
	case CH_REHASH:
		/* Deleted and registered again, or changed, while we hashed: not ours to set. */
		if (e == NULL || (ch->kind == CH_SET_PASSWORD ? e->born : e->changed) != ch->seen)
			return IDENT_UNKNOWN;
		ch->old = *e;
		strcpy(e->hash, ch->hash);
		e->changed = ++id->gen;
		break;
	case CH_DELETE:
		if (e == NULL)
			return IDENT_UNKNOWN;
		table_remove(id, pos); /* freed once the deletion is stored */
		break;
	}
	ch->e = e;
	if (ch->kind == CH_DELETE)
		*off += (size_t)snprintf(buf + *off, RECORD_MAX + 1, "-%s\n", e->name);
	else
		*off += (size_t)snprintf(buf + *off, RECORD_MAX + 1, "+%s:%s\n", e->name, e->hash);
	return IDENT_OK;
}

/* Takes an applied change back.  Lock held; the latest change first. */
static void
change_undo(struct ident *id, struct change *ch)
{
	size_t pos;

	switch (ch->kind) {
	case CH_REGISTER:
		table_find(id, ch->e->name, &pos);
		table_remove(id, pos);
		free(ch->e);
		break;
	case CH_SET_PASSWORD:
	case CH_REHASH:
		*ch->e = ch->old;
		break;
	case CH_DELETE:
		/* Cannot fail: the room the entry had is still there. */
		table_find(id, ch->e->name, &pos);
		table_insert(id, ch->e, pos);
		break;
	}
}

static void
commit_batch(struct ident *id, struct change *batch)
{
	struct change *ch, *applied = NULL;
	size_t n = 0, len = 0;
	enum ident_result r;
	char *buf;

	for (ch = batch; ch != NULL; ch = ch->next)
		n++;
	buf = malloc(n * RECORD_MAX + 1);
	pthread_mutex_lock(&id->lock);
	for (ch = batch; ch != NULL; ch = ch->next) {
		ch->r = buf == NULL ? IDENT_NO_MEMORY : change_apply(id, ch, buf, &len);
		if (ch->r == IDENT_OK) {
			ch->undo = applied;
			applied = ch;
		}
	}
	if (applied != NULL) {
		struct identstore_users all = all_users(id);

		r = id->store->ops->store(id->store, buf, len, &all);
		for (ch = applied; ch != NULL; ch = ch->undo) {
			if (r != IDENT_OK) {
				change_undo(id, ch);
				ch->r = r;
			} else if (ch->kind == CH_DELETE)
				free(ch->e);
		}
	}
	pthread_mutex_unlock(&id->lock);
	free(buf);
}

/* Queues ch and returns once it is stored or refused. */
static enum ident_result
change_submit(struct ident *id, struct change *ch)
{
	pthread_mutex_lock(&id->queue_lock);
	ch->next = NULL;
	ch->done = false;
	*id->queue_tail = ch;
	id->queue_tail = &ch->next;
	id->waiting++;
	while (!ch->done) {
		struct change *batch, *next;

		if (id->committing) {
			pthread_cond_wait(&id->queue_cond, &id->queue_lock);
			continue;
		}
		batch = id->queue;
		id->queue = NULL;
		id->queue_tail = &id->queue;
		id->committing = true;
		pthread_mutex_unlock(&id->queue_lock);
		commit_batch(id, batch);
		pthread_mutex_lock(&id->queue_lock);
		for (; batch != NULL; batch = next) {
			next = batch->next;
			batch->done = true; /* its thread may return once we unlock */
			id->waiting--;
		}
		id->committing = false;
		pthread_cond_broadcast(&id->queue_cond);
	}
	pthread_mutex_unlock(&id->queue_lock);
	return ch->r;
}

static enum ident_result
hash_error(int err)
{
	if (err == ENOMEM)
		return IDENT_NO_MEMORY;
	return err == EINVAL ? IDENT_INVALID : IDENT_IO_ERROR;
}

/* Upgrades a verified hash unless the entry changed while we hashed. */
static void
rehash(struct ident *id, const struct entry *seen, const char *password, int cost)
{
	char hash[PASSWORD_HASH_MAX];
	struct change ch = { .kind = CH_REHASH,
			     .name = seen->name,
			     .hash = hash,
			     .seen = seen->changed };

	if (password_hash(password, cost, hash) != 0) {
		log_warning("%s: cannot rehash the password of %s: %s", id->path, seen->name,
			    strerror(errno));
		return;
	}
	change_submit(id, &ch);
}

/*
 * A known name costs one hash whether the password is right or wrong; only
 * a successful login may pay for the rehash on top.
 */
enum ident_result
ident_verify(struct ident *id, const char *name, const char *password, int cost,
	     char canonical[NAME_MAX_LEN + 1], uint64_t *account)
{
	struct entry seen;

	if (!snapshot(id, name, &seen))
		return IDENT_UNKNOWN;
	if (!password_check(password, seen.hash))
		return IDENT_BAD_PASSWORD;
	if (password_needs_rehash(seen.hash, cost))
		rehash(id, &seen, password, cost);
	if (canonical != NULL)
		strcpy(canonical, seen.name);
	if (account != NULL)
		*account = seen.born;
	return IDENT_OK;
}

uint64_t
ident_account(struct ident *id, const char *name)
{
	struct entry seen;

	return snapshot(id, name, &seen) ? seen.born : 0;
}

bool
ident_cleared(struct ident *id, uint64_t account)
{
	pthread_mutex_lock(&id->lock);
	bool cleared = account != 0 && account <= id->cleared;
	pthread_mutex_unlock(&id->lock);
	return cleared;
}

enum ident_result
ident_register(struct ident *id, const char *name, const char *password, int cost,
	       uint64_t *account)
{
	char hash[PASSWORD_HASH_MAX];
	struct change ch = { .kind = CH_REGISTER, .name = name, .hash = hash };
	enum ident_result r;

	if (!name_acceptable(name))
		return IDENT_INVALID;
	if (ident_lookup(id, name, NULL))
		return IDENT_EXISTS;
	if (password_hash(password, cost, hash) != 0)
		return hash_error(errno);
	r = change_submit(id, &ch);
	if (r == IDENT_OK && account != NULL)
		*account = ch.born;
	return r;
}

enum ident_result
ident_set_password(struct ident *id, const char *name, const char *password, int cost,
		   uint64_t account)
{
	char hash[PASSWORD_HASH_MAX];
	struct entry seen;
	struct change ch = { .kind = CH_SET_PASSWORD, .name = name, .hash = hash };

	if (!snapshot(id, name, &seen) || (account != 0 && seen.born != account))
		return IDENT_UNKNOWN;
	if (password_hash(password, cost, hash) != 0)
		return hash_error(errno);
	ch.seen = seen.born;
	return change_submit(id, &ch);
}

enum ident_result
ident_delete(struct ident *id, const char *name)
{
	struct change ch = { .kind = CH_DELETE, .name = name };

	if (!name_acceptable(name))
		return IDENT_UNKNOWN;
	return change_submit(id, &ch);
}

enum ident_result
ident_clear(struct ident *id)
{
	struct entry **v;
	size_t n, cap;
	enum ident_result r;

	pthread_mutex_lock(&id->lock);
	v = id->v;
	n = id->n;
	cap = id->cap;
	id->v = NULL;
	id->n = id->cap = 0;
	struct identstore_users all = all_users(id);

	r = id->store->ops->rewrite(id->store, &all);
	if (r == IDENT_OK) {
		table_free(v, n);
		id->cleared = id->gen;
	} else {
		id->v = v;
		id->n = n;
		id->cap = cap;
	}
	pthread_mutex_unlock(&id->lock);
	return r;
}

size_t
ident_count(struct ident *id)
{
	size_t n;

	pthread_mutex_lock(&id->lock);
	n = id->n;
	pthread_mutex_unlock(&id->lock);
	return n;
}

void
ident_foreach(struct ident *id, void (*fn)(void *ctx, const char *name), void *ctx)
{
	pthread_mutex_lock(&id->lock);
	for (size_t i = 0; i < id->n; i++)
		fn(ctx, id->v[i]->name);
	pthread_mutex_unlock(&id->lock);
}

void
ident_get_stats(struct ident *id, struct ident_stats *st)
{
	pthread_mutex_lock(&id->queue_lock);
	st->waiting = id->waiting;
	pthread_mutex_unlock(&id->queue_lock);
	id->store->ops->stats(id->store, &st->appends, &st->rewrites);
}

void
ident_set_journal_min(struct ident *id, size_t bytes)
{
	pthread_mutex_lock(&id->lock);
	id->store->ops->set_journal_min(id->store, bytes);
	pthread_mutex_unlock(&id->lock);
}

const char *
ident_result_str(enum ident_result r)
{
	switch (r) {
	case IDENT_OK:
		return "ok";
	case IDENT_UNKNOWN:
		return "no such name";
	case IDENT_BAD_PASSWORD:
		return "wrong password";
	case IDENT_EXISTS:
		return "name already registered";
	case IDENT_IO_ERROR:
		return "cannot write the identification file";
	case IDENT_NO_MEMORY:
		return "out of memory";
	case IDENT_INVALID:
		return "invalid name, password or cost";
	}
	return "unknown result";
}
