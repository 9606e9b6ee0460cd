/*
 * irc_msg.c - the IRC line parser (tags, source, command, parameters), tag
 * value escaping and formatting-code stripping declared in irc_msg.h.
 *
 * Owns no state: every function works only on the buffers it is given, so
 * any thread may call them at any time.
 */
#include <string.h>

#include "irc_msg.h"

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned char
ascii_upper(unsigned char c)
{
	return c >= 'a' && c <= 'z' ? (unsigned char)(c - 'a' + 'A') : c;
}

/*
 * A key is [+][vendor/]name (ircv3 message-tags): vendor a host name
 * (letters, digits, '-', '.'), name letters, digits and '-', neither empty.
 */
static bool
tag_key_valid(const char *k)
{
	const char *slash = NULL, *name = k;

	if (*k == '+')
		name = ++k;
	for (; *k != '\0'; k++) {
		unsigned char c = (unsigned char)*k;

		if (c == '/') {
			if (slash != NULL || k == name)
				return false; /* two slashes, or an empty vendor */
			slash = k;
		} else if (c == '.') {
			if (slash != NULL)
				return false; /* a dot in the name part */
		} else if (!is_alnum(c) && c != '-') {
			return false;
		}
	}
	if (slash != NULL)
		return slash[1] != '\0';
	/* Without a vendor, the whole is the name: no dots in it. */
	return *name != '\0' && strchr(name, '.') == NULL;
}

/* Undoes tag value escaping in place (ircv3 message-tags, "Escaping values"). */
static void
tag_unescape(char *v)
{
	char *w = v;
	const char *r = v;

	while (*r != '\0') {
		if (*r != '\\') {
			*w++ = *r++;
			continue;
		}
		r++;
		switch (*r) {
		case '\0':
			continue; /* a lone '\' at the end is dropped */
		case ':':
			*w++ = ';';
			break;
		case 's':
			*w++ = ' ';
			break;
		case 'r':
			*w++ = '\r';
			break;
		case 'n':
			*w++ = '\n';
			break;
		default:
			*w++ = *r; /* "\\" and unknown escapes: the character itself */
			break;
		}
		r++;
	}
	*w = '\0';
}

/* Splits the tags part (NUL-terminated, no spaces) into m->tags. */
static bool
parse_tags(char *p, struct irc_msg *m)
{
	while (*p != '\0') {
		char *item = p, *semi = strchr(p, ';'), *eq;
		const char *value;

		if (semi != NULL) {
			*semi = '\0';
			p = semi + 1;
		} else {
			p += strlen(p);
		}
		if (*item == '\0')
			continue; /* "a;;b" or a final ';' */
		eq = strchr(item, '=');
		if (eq != NULL) {
			*eq = '\0';
			tag_unescape(eq + 1);
			value = eq + 1;
		} else {
			value = item + strlen(item); /* the key's own NUL: "" */
		}
		/* A key that breaks the rules is dropped, not the line (message-tags). */
		if (!tag_key_valid(item))
			continue;

		size_t i;

		for (i = 0; i < m->n_tags; i++)
			if (strcmp(m->tags[i].key, item) == 0)
				break;
		if (i == m->n_tags) {
			if (m->n_tags == IRC_TAGS_N)
				return false;
			m->tags[m->n_tags++].key = item;
		}
		m->tags[i].value = value; /* a repeated key: the last value counts */
	}
	return true;
}

static char *
skip_spaces(char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

/* Ends the word at p (no leading space) with a NUL; returns what follows it. */
static char *
end_word(char *p)
{
	char *sp = strchr(p, ' ');

	if (sp == NULL)
		return p + strlen(p);
	*sp = '\0';
	return sp + 1;
}

static enum irc_parse_result
fail(struct irc_msg *m, enum irc_parse_result r)
{
	memset(m, 0, sizeof(*m));
	return r;
}

enum irc_parse_result
irc_parse(char *line, size_t len, struct irc_msg *m)
{
	char *p = line, *tags = NULL;
	size_t i;

	memset(m, 0, sizeof(*m));
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	for (i = 0; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return IRC_PARSE_BAD;
	for (i = 0; i < len && line[i] == ' '; i++)
		;
	if (i == len)
		return IRC_PARSE_EMPTY;

	if (*p == '@') {
		char *sp = memchr(p, ' ', len);
		size_t tags_len = (size_t)((sp != NULL ? sp : line + len) - (p + 1));

		if (tags_len > IRC_CLIENT_TAGS_MAX)
			return IRC_PARSE_TAGS_TOO_LONG;
		if (sp == NULL)
			return IRC_PARSE_BAD; /* tags, no command */
		*sp = '\0';
		tags = p + 1;
		p = sp + 1;
	}
	if ((size_t)(line + len - p) > IRC_BODY_MAX)
		return IRC_PARSE_TOO_LONG;
	if (tags != NULL && !parse_tags(tags, m))
		return fail(m, IRC_PARSE_TOO_MANY_TAGS);

	p = skip_spaces(p);
	if (*p == ':') {
		m->source = p + 1;
		p = skip_spaces(end_word(p));
	}
	if (*p == '\0')
		return fail(m, IRC_PARSE_BAD); /* tags or a source, no command */
	m->command = p;
	p = end_word(p);

	for (;;) {
		p = skip_spaces(p);
		if (*p == '\0')
			break;
		if (*p == ':') {
			m->params[m->n_params++] = p + 1;
			m->trailing = true;
			break;
		}
		m->params[m->n_params++] = p;
		if (m->n_params == IRC_PARAMS_MAX)
			break; /* the 15th takes the rest, spaces and all */
		p = end_word(p);
	}
	return IRC_PARSE_OK;
}

const char *
irc_parse_result_str(enum irc_parse_result r)
{
	switch (r) {
	case IRC_PARSE_OK:
		return "ok";
	case IRC_PARSE_EMPTY:
		return "empty line";
	case IRC_PARSE_TAGS_TOO_LONG:
		return "message tags too long";
	case IRC_PARSE_TOO_LONG:
		return "line too long";
	case IRC_PARSE_TOO_MANY_TAGS:
		return "too many message tags";
	case IRC_PARSE_BAD:
		return "malformed line";
	}
	return "unknown parse result";
}

const char *
irc_tag_get(const struct irc_msg *m, const char *key)
{
	for (size_t i = 0; i < m->n_tags; i++)
		if (strcmp(m->tags[i].key, key) == 0)
			return m->tags[i].value;
	return NULL;
}

bool
irc_cmd_is(const struct irc_msg *m, const char *upper)
{
	const unsigned char *c = (const unsigned char *)m->command;
	const unsigned char *u = (const unsigned char *)upper;

	if (c == NULL)
		return false;
	for (; *c != '\0' && *u != '\0'; c++, u++)
		if (ascii_upper(*c) != ascii_upper(*u))
			return false;
	return *c == *u;
}

size_t
irc_tag_escape(char *dst, size_t cap, const char *src)
{
	size_t need = 0, out = 0;
	bool full = cap == 0;

	for (; *src != '\0'; src++) {
		char esc = 0;

		switch (*src) {
		case ';':
			esc = ':';
			break;
		case ' ':
			esc = 's';
			break;
		case '\\':
			esc = '\\';
			break;
		case '\r':
			esc = 'r';
			break;
		case '\n':
			esc = 'n';
			break;
		}
		size_t w = esc != 0 ? 2 : 1;

		need += w;
		if (full || out + w > cap - 1) {
			full = true;
			continue;
		}
		if (esc != 0) {
			dst[out++] = '\\';
			dst[out++] = esc;
		} else {
			dst[out++] = *src;
		}
	}
	if (cap > 0)
		dst[out] = '\0';
	return need;
}

/* How many of s[i..len) (at most max) are of the class f. */
static size_t
run_of(const char *s, size_t i, size_t len, size_t max, bool (*f)(unsigned char))
{
	size_t n = 0;

	while (n < max && i + n < len && f((unsigned char)s[i + n]))
		n++;
	return n;
}

size_t
irc_strip_formatting(char *s, size_t len)
{
	size_t r = 0, w = 0, n;

	while (r < len) {
		switch ((unsigned char)s[r]) {
		case 0x02:
		case 0x0f:
		case 0x11:
		case 0x16:
		case 0x1d:
		case 0x1e:
		case 0x1f:
			r++;
			break;
		case 0x03: /* \x03[fg[,bg]], each one or two digits */
			r++;
			n = run_of(s, r, len, 2, is_digit);
			if (n == 0)
				break;
			r += n;
			if (r < len && s[r] == ',' && (n = run_of(s, r + 1, len, 2, is_digit)) > 0)
				r += 1 + n;
			break;
		case 0x04: /* \x04[RRGGBB[,RRGGBB]] */
			r++;
			if (run_of(s, r, len, 6, is_hex) < 6)
				break;
			r += 6;
			if (r < len && s[r] == ',' && run_of(s, r + 1, len, 6, is_hex) == 6)
				r += 7;
			break;
		default:
			s[w++] = s[r++];
			break;
		}
	}
	if (w < len)
		s[w] = '\0';
	return w;
}
