/*
 * srvline.c - splitting a server line with the field table of
 * docs/PROTOCOL.md: each tag has a fixed number of fields, the last of which
 * is free text (spaces allowed, maybe empty; the only part that may hold a
 * NUL byte, which chatd never sends); and the words for a final
 * reply that answers no request.
 * No state: any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"
#include "srvline.h"

/*
 * How many bytes of an unasked reply's fields srv_describe_unasked() quotes:
 * sanitized, each may take 3 (U+FFFD), and all fits in SRV_UNASKED_MAX.
 */
#define QUOTE_CODE_MAX 20
#define QUOTE_TEXT_MAX 100
_Static_assert(64 + 3 * (QUOTE_CODE_MAX + QUOTE_TEXT_MAX) < SRV_UNASKED_MAX,
	       "srv_describe_unasked() never cuts its words");

/* clang-format off */
static const struct {
	const char *word;
	enum srv_tag tag;
	size_t fields;
} TAGS[] = {
	{ "HELLO", SRV_HELLO, 3 },
	{ "PASS", SRV_PASS, 3 },
	{ "WELCOME", SRV_WELCOME, 2 },
	{ "USERS", SRV_USERS, 5 },   /* room total page pages names */
	{ "HIST", SRV_HIST, 5 },     /* room id time name text */
	{ "MSG", SRV_MSG, 5 },       /* room id time name text */
	{ "PRIV", SRV_PRIV, 4 },     /* time from to text */
	{ "JOIN", SRV_JOIN, 4 },     /* room time name text */
	{ "PART", SRV_PART, 5 },     /* room time name reason text */
	{ "NOTICE", SRV_NOTICE, 3 }, /* target time text */
	{ "TOPIC", SRV_TOPIC, 4 },   /* room time name text */
	{ "ROOM", SRV_ROOM, 3 },     /* room members topic */
	{ "PONG", SRV_PONG, 1 },
	{ "HELP", SRV_HELP, 1 },
	{ "OK", SRV_OK, 2 },
	{ "ERR", SRV_ERR, 2 },
	{ "BYE", SRV_BYE, 2 },
};
/* clang-format on */

#define NTAGS (sizeof(TAGS) / sizeof(TAGS[0]))

static int
find_tag(const char *word, size_t len)
{
	for (size_t i = 0; i < NTAGS; i++)
		if (strlen(TAGS[i].word) == len && memcmp(TAGS[i].word, word, len) == 0)
			return (int)i;
	return -1;
}

/* Cuts the field at *p up to the next space; false if there is no space. */
static bool
cut_field(char **p, char *end, char **field)
{
	char *sp = memchr(*p, ' ', (size_t)(end - *p));

	if (sp == NULL)
		return false;
	*sp = '\0';
	*field = *p;
	*p = sp + 1;
	return true;
}

/*
 * Whether the tag and each field but the free text end where they were
 * cut (at the next field, or at the line's end): a NUL inside one would
 * make it read as a shorter word ("OK\0x" as OK).  chatd sends none.
 */
static bool
fields_whole(const char *tag, const struct srv_line *l, const char *end)
{
	for (size_t i = 0; i < l->nfields; i++) {
		const char *word = i == 0 ? tag : l->f[i - 1];
		const char *stop = word + strlen(word);

		if (stop != l->f[i] - 1 && !(stop == end && l->f[i] == end))
			return false;
	}
	return true;
}

bool
srv_parse(char *line, size_t len, struct srv_line *out)
{
	char *end = line + len, *p = line, *word;
	int t;

	memset(out, 0, sizeof(*out));
	if (!cut_field(&p, end, &word)) {
		word = line; /* a tag alone: every field empty is still too few */
		p = end;
	}
	t = find_tag(word, strlen(word));
	if (t < 0)
		return false;
	out->tag = TAGS[t].tag;
	out->nfields = TAGS[t].fields;
	for (size_t i = 0; i + 1 < out->nfields; i++) {
		if (cut_field(&p, end, &out->f[i]))
			continue;
		if (i + 2 != out->nfields || p >= end)
			return false;
		/* The free text is empty and its space left out: "USERS lobby 600 0 6". */
		out->f[i] = p;
		p = end;
	}
	out->f[out->nfields - 1] = p;
	out->text_len = (size_t)(end - p);
	return fields_whole(word, out, end);
}

int
srv_version_major(const char *version)
{
	char *end;
	long v;

	if (version[0] < '0' || version[0] > '9')
		return -1;
	v = strtol(version, &end, 10);
	if ((*end != '\0' && *end != '.') || v > 1000000)
		return -1;
	return (int)v;
}

int
srv_err_code(const struct srv_line *l)
{
	if (l->tag != SRV_ERR)
		return 0;
	return atoi(l->f[0]);
}

void
srv_describe_unasked(const struct srv_line *l, char *buf, size_t len)
{
	struct strbuf q = { 0 };
	size_t text = l->text_len < QUOTE_TEXT_MAX ? l->text_len : QUOTE_TEXT_MAX;
	bool quoted = strbuf_adds(&q, l->tag == SRV_OK ? "OK " : "ERR ") == 0 &&
		      sanitize_append(&q, l->f[0], strnlen(l->f[0], QUOTE_CODE_MAX)) == 0 &&
		      strbuf_adds(&q, " ") == 0 && sanitize_append(&q, srv_text(l), text) == 0;

	snprintf(buf, len, "the server broke the protocol: \"%s%s\" answers no request",
		 quoted ? q.buf : (l->tag == SRV_OK ? "OK" : "ERR"),
		 quoted && text < l->text_len ? "..." : "");
	strbuf_free(&q);
}
