/*
 * irc.c - fuzz target for irc_parse(), irc_tag_escape() and
 * irc_strip_formatting() (daemon/irc_msg.c).
 *
 * Input: one IRC line, as a client might send it (any bytes).  Checked:
 * NUL, LF or a CR before the last byte is IRC_PARSE_BAD and spaces alone
 * are IRC_PARSE_EMPTY; a line that parses has a non-empty command, at most
 * 15 parameters, none NULL, and every key, value, source, command and
 * parameter lies inside the line's buffer; tag keys are distinct; middle
 * parameters are non-empty words.  Then the message is written out again
 * (tag values through irc_tag_escape(), spaces single, the last parameter
 * after ':' when it has to be) and parsed again: it must give the same
 * tags, source, command and parameters.  Each tag value must be its text
 * in the input unescaped as ircv3 message-tags says, which a plain loop
 * here does again.  Stripping formatting from the
 * line leaves no formatting code and keeps every byte that cannot belong
 * to one, in order.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "irc_msg.h"

/* buf holds len bytes and a NUL: p must point into it, its string ending there too. */
static void
check_inside(const char *p, const char *buf, size_t len)
{
	fuzz_assert(p != NULL);
	fuzz_assert(p >= buf && p <= buf + len);
	fuzz_assert(strlen(p) <= (size_t)(buf + len - p));
}

/* What irc_parse() must answer before it looks at the structure, or -1. */
static int
expected_early(const uint8_t *data, size_t size)
{
	size_t len = size, spaces = 0;

	if (len > 0 && data[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\0' || data[i] == '\r' || data[i] == '\n')
			return IRC_PARSE_BAD;
		spaces += data[i] == ' ';
	}
	return spaces == len ? IRC_PARSE_EMPTY : -1;
}

static bool
needs_colon(const char *param)
{
	return param[0] == '\0' || param[0] == ':' || strchr(param, ' ') != NULL;
}

struct out {
	char *buf;
	size_t len, cap;
};

static void
put(struct out *o, const char *s, size_t n)
{
	fuzz_assert(o->len + n < o->cap);
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void
puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Writes m out again into o; *tags_len and *body_len get the sizes of its parts. */
static void
rebuild(const struct irc_msg *m, struct out *o, size_t *tags_len, size_t *body_len)
{
	size_t body_start = 0;

	*tags_len = 0;
	if (m->n_tags > 0) {
		puts_(o, "@");
		for (size_t i = 0; i < m->n_tags; i++) {
			if (i > 0)
				puts_(o, ";");
			puts_(o, m->tags[i].key);
			if (m->tags[i].value[0] == '\0')
				continue;
			puts_(o, "=");

			size_t need = irc_tag_escape(NULL, 0, m->tags[i].value);

			fuzz_assert(o->len + need < o->cap);
			fuzz_assert(irc_tag_escape(o->buf + o->len, o->cap - o->len,
						   m->tags[i].value) == need);
			fuzz_assert(strlen(o->buf + o->len) == need);
			fuzz_assert(memchr(o->buf + o->len, ' ', need) == NULL);
			fuzz_assert(memchr(o->buf + o->len, ';', need) == NULL);
			o->len += need;
		}
		*tags_len = o->len - 1;
		puts_(o, " ");
		body_start = o->len;
	}
	if (m->source != NULL) {
		puts_(o, ":");
		puts_(o, m->source);
		puts_(o, " ");
	} else if (m->command[0] == '@' && m->n_tags == 0) {
		puts_(o, " "); /* not to be read as tags */
	}
	puts_(o, m->command);
	for (size_t i = 0; i < m->n_params; i++) {
		puts_(o, " ");
		if (i + 1 == m->n_params && (m->trailing || needs_colon(m->params[i])))
			puts_(o, ":");
		puts_(o, m->params[i]);
	}
	*body_len = o->len - body_start;
}

/*
 * The value irc_parse() left at offset off of the line, against the
 * escaped text that was there in the input (up to ';', ' ' or the end),
 * unescaped here one character at a time.
 */
static void
check_unescaped(const char *value, const uint8_t *data, size_t size, size_t off)
{
	const char *v = value;

	for (size_t i = off; i < size && data[i] != ';' && data[i] != ' '; i++) {
		char want = (char)data[i];

		if (want == '\\') {
			if (++i == size || data[i] == ';' || data[i] == ' ')
				break; /* a lone '\' at the end is dropped */
			switch (data[i]) {
			case ':':
				want = ';';
				break;
			case 's':
				want = ' ';
				break;
			case 'r':
				want = '\r';
				break;
			case 'n':
				want = '\n';
				break;
			default:
				want = (char)data[i];
				break;
			}
		}
		fuzz_assert(*v++ == want);
	}
	fuzz_assert(*v == '\0');
}

static void
check_message(const struct irc_msg *m, const char *buf, size_t len)
{
	fuzz_assert(m->n_tags <= IRC_TAGS_N);
	for (size_t i = 0; i < m->n_tags; i++) {
		check_inside(m->tags[i].key, buf, len);
		check_inside(m->tags[i].value, buf, len);
		fuzz_assert(m->tags[i].key[0] != '\0');
		fuzz_assert(strpbrk(m->tags[i].key, " ;=") == NULL);
		fuzz_assert(irc_tag_get(m, m->tags[i].key) == m->tags[i].value);
		for (size_t j = 0; j < i; j++)
			fuzz_assert(strcmp(m->tags[i].key, m->tags[j].key) != 0);
	}
	if (m->source != NULL) {
		check_inside(m->source, buf, len);
		fuzz_assert(strchr(m->source, ' ') == NULL);
	}
	check_inside(m->command, buf, len);
	fuzz_assert(m->command[0] != '\0');
	fuzz_assert(m->command[0] != ':' || m->source != NULL); /* ":a :b" is command ":b" */
	fuzz_assert(strchr(m->command, ' ') == NULL);
	fuzz_assert(irc_cmd_is(m, m->command));
	fuzz_assert(m->n_params <= IRC_PARAMS_MAX);
	fuzz_assert(!m->trailing || m->n_params > 0);
	for (size_t i = 0; i < m->n_params; i++) {
		check_inside(m->params[i], buf, len);
		bool last = i + 1 == m->n_params;

		/* Middle parameters are words; the last may be anything after ':' or as the 15th. */
		if (!last || (!m->trailing && m->n_params < IRC_PARAMS_MAX))
			fuzz_assert(m->params[i][0] != '\0' && m->params[i][0] != ':' &&
				    strchr(m->params[i], ' ') == NULL);
	}
}

static void
check_same(const struct irc_msg *a, const struct irc_msg *b)
{
	fuzz_assert(a->n_tags == b->n_tags);
	for (size_t i = 0; i < a->n_tags; i++) {
		fuzz_assert(strcmp(a->tags[i].key, b->tags[i].key) == 0);
		fuzz_assert(strcmp(a->tags[i].value, b->tags[i].value) == 0);
	}
	fuzz_assert((a->source == NULL) == (b->source == NULL));
	fuzz_assert(a->source == NULL || strcmp(a->source, b->source) == 0);
	fuzz_assert(strcmp(a->command, b->command) == 0);
	fuzz_assert(a->n_params == b->n_params);
	for (size_t i = 0; i < a->n_params; i++)
		fuzz_assert(strcmp(a->params[i], b->params[i]) == 0);
	if (a->n_params > 0)
		fuzz_assert(b->trailing ==
			    (a->trailing || needs_colon(a->params[a->n_params - 1])));
}

static bool
is_format_code(uint8_t c)
{
	return c == 0x02 || c == 0x03 || c == 0x04 || c == 0x0f || c == 0x11 || c == 0x16 ||
	       c == 0x1d || c == 0x1e || c == 0x1f;
}

/* Bytes a colour code may take after its \x03 or \x04. */
static bool
colour_byte(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
	       c == ',';
}

/* The bytes of s[0..n) that no formatting code can take, in order, into out; returns how many. */
static size_t
text_bytes(const uint8_t *s, size_t n, uint8_t *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (!is_format_code(s[i]) && !colour_byte(s[i]))
			out[k++] = s[i];
	return k;
}

static void
check_strip(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	uint8_t *a = malloc(size + 1), *b = malloc(size + 1);
	size_t n = irc_strip_formatting(s, size), j = 0;

	fuzz_assert(a != NULL && b != NULL);
	fuzz_assert(n <= size);
	fuzz_assert(s[n] == '\0');
	for (size_t i = 0; i < n; i++)
		fuzz_assert(!is_format_code((uint8_t)s[i]));
	/* s[0..n) is data less some bytes ... */
	for (size_t i = 0; i < size && j < n; i++)
		j += (uint8_t)s[j] == data[i];
	fuzz_assert(j == n);
	/* ... and none of those could be text. */
	size_t ka = text_bytes(data, size, a), kb = text_bytes((const uint8_t *)s, n, b);

	fuzz_assert(ka == kb && memcmp(a, b, ka) == 0);
	free(a);
	free(b);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = fuzz_strndup(data, size);
	struct irc_msg m, again;
	int early = expected_early(data, size);
	enum irc_parse_result r = irc_parse(line, size, &m);

	fuzz_assert(irc_parse_result_str(r)[0] != '\0');
	if (early >= 0)
		fuzz_assert((int)r == early);
	if (r == IRC_PARSE_OK) {
		check_message(&m, line, size);
		for (size_t i = 0; i < m.n_tags; i++)
			check_unescaped(m.tags[i].value, data, size,
					(size_t)(m.tags[i].value - line));

		/* Written out again and parsed, it is the same message. */
		struct out o = { malloc(2 * size + 16), 0, 2 * size + 16 };
		size_t tags_len, body_len;

		fuzz_assert(o.buf != NULL);
		o.buf[0] = '\0';
		rebuild(&m, &o, &tags_len, &body_len);
		fuzz_assert(tags_len <= IRC_CLIENT_TAGS_MAX); /* never longer than it came */
		r = irc_parse(o.buf, o.len, &again);
		if (body_len > IRC_BODY_MAX) {
			/*
			 * Only two things make the body longer, by a byte each:
			 * a 15th parameter with a space that gets its ':', and
			 * the space before a command starting with '@' when
			 * the tags part held no tag ("@; @CMD").
			 */
			fuzz_assert(body_len <= IRC_BODY_MAX + 2);
			fuzz_assert(r == IRC_PARSE_TOO_LONG);
		} else {
			fuzz_assert(r == IRC_PARSE_OK);
			check_message(&again, o.buf, o.len);
			check_same(&m, &again);
		}
		free(o.buf);
	} else {
		fuzz_assert(m.command == NULL && m.n_tags == 0 && m.n_params == 0);
	}
	check_strip(data, size);
	free(line);
	return 0;
}
