/*
 * names.c - fuzz target for name_valid() and name_cmp() (common/names.c).
 *
 * Input: up to three NUL-separated strings.  name_valid() is compared with
 * the rule of docs/PROTOCOL.md spelled out again here; name_cmp() must be
 * an order: zero exactly for names equal ignoring ASCII case, antisymmetric
 * and transitive, and blind to case on ASCII letters only, whatever the
 * locale, since it decides which registered user a login means.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "names.h"

static bool
in_range(uint8_t c, char lo, char hi)
{
	return c >= (uint8_t)lo && c <= (uint8_t)hi;
}

static bool
reference_valid(const uint8_t *s, size_t len)
{
	if (len < 1 || len > 32)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool alnum = in_range(s[i], 'a', 'z') || in_range(s[i], 'A', 'Z') ||
			     in_range(s[i], '0', '9');

		if (!alnum && (i == 0 || (s[i] != '_' && s[i] != '.' && s[i] != '-')))
			return false;
	}
	return true;
}

static uint8_t
lower(uint8_t c)
{
	return in_range(c, 'A', 'Z') ? (uint8_t)(c + 32) : c;
}

static bool
same_ignoring_case(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la != lb)
		return false;
	for (size_t i = 0; i < la; i++)
		if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
			return false;
	return true;
}

static int
sign(int v)
{
	return (v > 0) - (v < 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_strndup(data, size);
	const char *s[3] = { buf, "", "" };
	size_t used = 0;

	fuzz_assert(name_valid((const char *)data, size) == reference_valid(data, size));
	for (int i = 0; i < 3 && used <= size; i++) {
		s[i] = buf + used;
		used += strlen(s[i]) + 1;
	}
	for (int i = 0; i < 3; i++) {
		fuzz_assert(name_cmp(s[i], s[i]) == 0);
		for (int j = 0; j < 3; j++) {
			int ij = name_cmp(s[i], s[j]);

			fuzz_assert(sign(ij) == -sign(name_cmp(s[j], s[i])));
			fuzz_assert((ij == 0) == same_ignoring_case(s[i], s[j]));
			for (int k = 0; k < 3; k++)
				if (ij <= 0 && name_cmp(s[j], s[k]) <= 0)
					fuzz_assert(name_cmp(s[i], s[k]) <= 0);
		}
	}
	free(buf);
	return 0;
}
