/*
 * siphash.c - SipHash-2-4, written from the paper's description (see
 * siphash.h); tests/unit/test_siphash.c checks it against the paper's
 * test vectors.
 */
#include "siphash.h"

static uint64_t
rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

/* Little-endian, whatever the host's byte order. */
static uint64_t
load64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

struct state {
	uint64_t v0, v1, v2, v3;
};

static void
sipround(struct state *s)
{
	s->v0 += s->v1;
	s->v1 = rotl(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = rotl(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = rotl(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = rotl(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = rotl(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = rotl(s->v2, 32);
}

/* Two compression rounds per 8-byte word. */
static void
compress(struct state *s, uint64_t m)
{
	s->v3 ^= m;
	sipround(s);
	sipround(s);
	s->v0 ^= m;
}

uint64_t
siphash24(const unsigned char key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
	const unsigned char *in = data;
	uint64_t k0 = load64(key), k1 = load64(key + 8);
	struct state s = {
		.v0 = k0 ^ 0x736f6d6570736575ULL, /* "somepseu" */
		.v1 = k1 ^ 0x646f72616e646f6dULL, /* "dorandom" */
		.v2 = k0 ^ 0x6c7967656e657261ULL, /* "lygenera" */
		.v3 = k1 ^ 0x7465646279746573ULL, /* "tedbytes" */
	};
	size_t whole = len - len % 8;
	uint64_t last = (uint64_t)(len & 0xff) << 56;

	for (size_t i = 0; i < whole; i += 8)
		compress(&s, load64(in + i));
	for (size_t i = 0; i < len % 8; i++)
		last |= (uint64_t)in[whole + i] << (8 * i);
	compress(&s, last);
	/* Four finalization rounds. */
	s.v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		sipround(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
