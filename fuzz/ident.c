/*
 * ident.c - fuzz target for the identification file reader (daemon/ident.c,
 * ident_open()).
 *
 * Input: the contents of an identification file (base lines and records,
 * docs/FILES.md), written to the target's temporary directory and opened.
 * Checked: a refusal names the file; an accepted file holds only valid,
 * distinct names, each found at the start of a line of the input with its
 * ':' (a base line or a "+" record), listed in name_cmp() order and found by
 * ident_lookup() in its registered spelling.  Opening again (after the
 * records or a torn tail were folded into a new base) gives the same names.
 * Then up to three names are deleted, with the records' bound at its
 * smallest so that both appended records and compactions happen, and the
 * file must read back to exactly the remaining names.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ident.h"
#include "names.h"

struct names {
	char (*v)[NAME_MAX_LEN + 1];
	size_t n, cap;
};

static char path[PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_process();
	fuzz_path(path, "ident");
	return 0;
}

static void
collect(void *ctx, const char *name)
{
	struct names *ns = ctx;

	if (ns->n == ns->cap) {
		ns->cap = ns->cap * 2 + 64;
		ns->v = realloc(ns->v, ns->cap * sizeof(*ns->v));
		fuzz_assert(ns->v != NULL);
	}
	fuzz_assert(strlen(name) <= NAME_MAX_LEN);
	strcpy(ns->v[ns->n++], name);
}

static struct names
list_names(struct ident *id)
{
	struct names ns = { 0 };

	ident_foreach(id, collect, &ns);
	fuzz_assert(ns.n == ident_count(id));
	return ns;
}

/* Every name is valid, registered as listed, in strictly increasing order. */
static void
check_names(struct ident *id, const struct names *ns)
{
	char canonical[NAME_MAX_LEN + 1];

	for (size_t i = 0; i < ns->n; i++) {
		fuzz_assert(name_valid(ns->v[i], strlen(ns->v[i])));
		fuzz_assert(ident_lookup(id, ns->v[i], canonical));
		fuzz_assert(strcmp(canonical, ns->v[i]) == 0);
		if (i > 0)
			fuzz_assert(name_cmp(ns->v[i - 1], ns->v[i]) < 0);
	}
}

/* The input had "\nNAME:" or "\n+NAME:" for every name it gave. */
static void
check_from_input(const uint8_t *data, size_t size, const struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		char base[NAME_MAX_LEN + 3], record[NAME_MAX_LEN + 4];
		int n = snprintf(base, sizeof(base), "\n%s:", ns->v[i]);
		int m = snprintf(record, sizeof(record), "\n+%s:", ns->v[i]);

		fuzz_assert(memmem(data, size, base, (size_t)n) != NULL ||
			    memmem(data, size, record, (size_t)m) != NULL);
	}
}

static void
assert_same(const struct names *a, const struct names *b, size_t skip)
{
	fuzz_assert(a->n == b->n - skip);
	for (size_t i = 0; i < a->n; i++)
		fuzz_assert(strcmp(a->v[i], b->v[i + skip]) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct ident *id;

	fuzz_write_file(path, data, size);
	if ((id = ident_open(path, err, sizeof(err))) == NULL) {
		fuzz_assert(strncmp(err, path, strlen(path)) == 0);
		return 0;
	}
	struct names before = list_names(id);
	check_names(id, &before);
	check_from_input(data, size, &before);

	/* What the first open wrote (records folded in) reads back the same. */
	ident_close(id);
	id = ident_open(path, err, sizeof(err));
	fuzz_assert(id != NULL);
	struct names again = list_names(id);
	assert_same(&again, &before, 0);
	free(again.v);

	if (before.n > 0) {
		/* Each change is a record or a compaction; the file reads back to what is left. */
		size_t k = before.n < 3 ? before.n : 3;

		ident_set_journal_min(id, 0);
		for (size_t i = 0; i < k; i++)
			fuzz_assert(ident_delete(id, before.v[i]) == IDENT_OK);
		ident_close(id);
		id = ident_open(path, err, sizeof(err));
		fuzz_assert(id != NULL);
		struct names after = list_names(id);
		check_names(id, &after);
		assert_same(&after, &before, k);
		free(after.v);
	}
	ident_close(id);
	free(before.v);
	return 0;
}
