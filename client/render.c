/*
 * render.c - the terminal form of each server line, chosen from a table by
 * tag.  Times are shown in local time (HH:MM for live traffic, the date too
 * for history), then the room ("#dev") for what happens in a room; names
 * get a colour derived from the name, so a person keeps the same colour
 * across sessions.
 * No state but constant tables; chat's one thread.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "names.h"
#include "render.h"
#include "sanitize.h"
#include "timefmt.h"

#define SGR_RESET "\033[0m"
#define SGR_BOLD "\033[1m"
#define SGR_DIM "\033[2m"
#define SGR_RED "\033[31m"
#define SGR_GREEN "\033[32m"
#define SGR_YELLOW "\033[33m"
#define SGR_MAGENTA "\033[35m"

/* Name colours: none of them red (errors), none dim (history). */
static const char *const NAME_COLOURS[] = {
	"\033[32m", "\033[33m", "\033[34m", "\033[35m", "\033[36m",
	"\033[92m", "\033[93m", "\033[94m", "\033[95m", "\033[96m",
};

static int
sgr(const struct render *r, struct strbuf *out, const char *code)
{
	return r->color ? strbuf_adds(out, code) : 0;
}

static int
text(struct strbuf *out, const char *s)
{
	return sanitize_append(out, s, strlen(s));
}

/* FNV-1a of the name folded to lower case: Alice and alice are one user. */
static const char *
name_colour(const char *name)
{
	uint32_t h = 2166136261u;

	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;

		h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32 : c)) * 16777619u;
	}
	return NAME_COLOURS[h % (sizeof(NAME_COLOURS) / sizeof(NAME_COLOURS[0]))];
}

/* "#room " (the server sends the name without its '#'). */
static int
room(const struct render *r, struct strbuf *out, const char *where)
{
	int rc = sgr(r, out, SGR_BOLD) | strbuf_adds(out, "#") | text(out, where);

	return rc | sgr(r, out, SGR_RESET) | strbuf_adds(out, " ");
}

static int
name(const struct render *r, struct strbuf *out, const char *who)
{
	bool self = name_cmp(who, r->self) == 0;
	int rc = sgr(r, out, self ? SGR_BOLD : name_colour(who));

	rc |= text(out, who);
	return rc | sgr(r, out, SGR_RESET);
}

/* Local time of an RFC 3339 stamp: "HH:MM", or with_date "YYYY-MM-DD HH:MM". */
static int
stamp_ms(struct strbuf *out, int64_t ms, bool with_date)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];

	localtime_r(&secs, &tm);
	strftime(buf, sizeof(buf), with_date ? "%Y-%m-%d %H:%M " : "%H:%M ", &tm);
	return strbuf_adds(out, buf);
}

static int
stamp(const struct render *r, struct strbuf *out, const char *rfc3339, bool with_date)
{
	int64_t ms;
	int rc = sgr(r, out, SGR_DIM);

	if (time_parse_ms(rfc3339, strlen(rfc3339), &ms))
		rc |= stamp_ms(out, ms, with_date);
	else
		rc |= strbuf_adds(out, with_date ? "---------- --:-- " : "--:-- ");
	return rc | sgr(r, out, SGR_RESET);
}

static int
stamp_now(const struct render *r, struct strbuf *out)
{
	int rc = sgr(r, out, SGR_DIM);

	rc |= stamp_ms(out, time_now_ms(), false);
	return rc | sgr(r, out, SGR_RESET);
}

/* "-- text" in dim: the client's and the server's remarks. */
static int
remark(const struct render *r, struct strbuf *out, const char *s)
{
	int rc = sgr(r, out, SGR_DIM);

	rc |= strbuf_adds(out, "-- ") | text(out, s) | sgr(r, out, SGR_RESET);
	return rc | strbuf_adds(out, "\n");
}

static int
show_hist(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	int rc = 0;

	if (r->in_history && name_cmp(r->history_room, l->f[0]) != 0)
		rc |= render_end_history(r, out);
	if (!r->in_history) {
		struct strbuf s = { 0 };

		rc |= strbuf_addf(&s, "history of #%s", l->f[0]);
		rc |= s.buf ? remark(r, out, s.buf) : -1;
		strbuf_free(&s);
		snprintf(r->history_room, sizeof(r->history_room), "%s", l->f[0]);
		r->in_history = true;
	}
	rc |= stamp(r, out, l->f[2], true) | room(r, out, l->f[0]);
	rc |= sgr(r, out, SGR_DIM) | strbuf_adds(out, "<") | text(out, l->f[3]);
	rc |= strbuf_adds(out, "> ") | text(out, l->f[4]) | sgr(r, out, SGR_RESET);
	return rc | strbuf_adds(out, "\n");
}

static int
show_msg(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	int rc = stamp(r, out, l->f[2], false) | room(r, out, l->f[0]);

	rc |= strbuf_adds(out, "<") | name(r, out, l->f[3]) | strbuf_adds(out, "> ");
	return rc | text(out, l->f[4]) | strbuf_adds(out, "\n");
}

static int
show_priv(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	int rc = stamp(r, out, l->f[0], false);

	rc |= sgr(r, out, SGR_MAGENTA) | strbuf_adds(out, "*") | text(out, l->f[1]);
	rc |= strbuf_adds(out, "*") | sgr(r, out, SGR_RESET) | strbuf_adds(out, " ");
	return rc | text(out, l->f[3]) | strbuf_adds(out, "\n");
}

static int
show_join(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	int rc = stamp(r, out, l->f[1], false) | room(r, out, l->f[0]);

	rc |= sgr(r, out, SGR_GREEN) | strbuf_adds(out, "-->") | sgr(r, out, SGR_RESET);
	rc |= strbuf_adds(out, " ") | name(r, out, l->f[2]) | strbuf_adds(out, " joined");
	return rc | strbuf_adds(out, "\n");
}

static int
show_part(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	int rc = stamp(r, out, l->f[1], false) | room(r, out, l->f[0]);
	bool left = strcmp(l->f[3], "left") == 0; /* /leave: the reason is the text alone */

	rc |= sgr(r, out, SGR_RED) | strbuf_adds(out, "<--") | sgr(r, out, SGR_RESET);
	rc |= strbuf_adds(out, " ") | name(r, out, l->f[2]) | strbuf_adds(out, " left");
	if (left && l->f[4][0] == '\0')
		return rc | strbuf_adds(out, "\n");
	rc |= strbuf_adds(out, " (");
	if (!left)
		rc |= text(out, l->f[3]) | strbuf_adds(out, l->f[4][0] ? ": " : "");
	rc |= text(out, l->f[4]);
	return rc | strbuf_adds(out, ")\n");
}

static int
show_notice(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	int rc = stamp(r, out, l->f[1], false);

	if (strcmp(l->f[0], "*") != 0) /* to one room; "*": to the whole server */
		rc |= room(r, out, l->f[0]);
	rc |= sgr(r, out, SGR_YELLOW) | sgr(r, out, SGR_BOLD) | strbuf_adds(out, "!! notice: ");
	rc |= text(out, l->f[2]) | sgr(r, out, SGR_RESET);
	return rc | strbuf_adds(out, "\n");
}

static int
show_users(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	struct strbuf s = { 0 };
	int rc;

	if (strcmp(l->f[1], "0") == 0)
		rc = strbuf_addf(&s, "#%s: nobody online", l->f[0]);
	else if (strcmp(l->f[2], "0") == 0) /* too many on joining, or a /who page past the last */
		rc = strbuf_addf(&s, "#%s: %s online (not listed here; %s page%s: /who %s PAGE)",
				 l->f[0], l->f[1], l->f[3], strcmp(l->f[3], "1") == 0 ? "" : "s",
				 l->f[0]);
	else if (strcmp(l->f[3], "1") == 0)
		rc = strbuf_addf(&s, "#%s: %s online: %s", l->f[0], l->f[1], l->f[4]);
	else
		rc = strbuf_addf(&s, "#%s: %s online (page %s of %s): %s", l->f[0], l->f[1],
				 l->f[2], l->f[3], l->f[4]);
	rc |= s.buf ? remark(r, out, s.buf) : -1;
	strbuf_free(&s);
	return rc;
}

/* A room's topic: a /topic reply, a /join's, or set just now. */
static int
show_topic(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	struct strbuf s = { 0 };
	int64_t ms;
	int rc;

	if (strcmp(l->f[1], "-") == 0 || !time_parse_ms(l->f[1], strlen(l->f[1]), &ms)) {
		rc = strbuf_addf(&s, "#%s has no topic", l->f[0]);
	} else {
		time_t secs = (time_t)(ms / 1000);
		struct tm tm;
		char when[32];

		localtime_r(&secs, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		/* "*": an operator (chatctl room topic); "~NAME": a guest. */
		bool guest = l->f[2][0] == '~';

		rc = strbuf_addf(&s, "#%s topic: %s (set by %s%s, %s)", l->f[0], l->f[3],
				 strcmp(l->f[2], "*") == 0 ? "an operator" : l->f[2] + guest,
				 guest ? ", a guest" : "", when);
	}
	rc |= s.buf ? remark(r, out, s.buf) : -1;
	strbuf_free(&s);
	return rc;
}

/* A line of /rooms. */
static int
show_room(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	struct strbuf s = { 0 };
	bool one = strcmp(l->f[1], "1") == 0;
	int rc = strbuf_addf(&s, "#%s, %s member%s%s%s", l->f[0], l->f[1], one ? "" : "s",
			     l->f[2][0] ? ": " : "", l->f[2]);

	rc |= s.buf ? remark(r, out, s.buf) : -1;
	strbuf_free(&s);
	return rc;
}

static int
show_welcome(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	struct strbuf s = { 0 };
	int rc = strbuf_addf(&s, "logged in as %s (%s)", l->f[0], l->f[1]);

	rc |= s.buf ? remark(r, out, s.buf) : -1;
	strbuf_free(&s);
	return rc;
}

static int
show_help(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	return strbuf_adds(out, "   ") | text(out, l->f[0]) | strbuf_adds(out, "\n");
}

static int
show_pong(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	struct strbuf s = { 0 };
	int rc = strbuf_addf(&s, "pong %s", l->f[0]);

	rc |= s.buf ? remark(r, out, s.buf) : -1;
	strbuf_free(&s);
	return rc;
}

static int
show_ok(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	return remark(r, out, l->f[1]);
}

static int
show_err(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	int rc = sgr(r, out, SGR_RED) | strbuf_adds(out, "!! ") | text(out, l->f[1]);

	rc |= strbuf_addf(out, " (error %d)", srv_err_code(l)) | sgr(r, out, SGR_RESET);
	return rc | strbuf_adds(out, "\n");
}

static int
show_bye(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	struct strbuf s = { 0 };
	int rc = strbuf_addf(&s, "the server ended the session: %s%s%s", l->f[0],
			     l->f[1][0] ? ", " : "", l->f[1]);

	rc |= s.buf ? remark(r, out, s.buf) : -1;
	strbuf_free(&s);
	return rc;
}

static int
show_nothing(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	return 0;
}

typedef int (*show_fn)(struct render *, struct strbuf *, const struct srv_line *);

/* clang-format off */
static const show_fn SHOW[] = {
	[SRV_HELLO] = show_nothing,
	[SRV_PASS] = show_nothing,
	[SRV_WELCOME] = show_welcome,
	[SRV_USERS] = show_users,
	[SRV_HIST] = show_hist,
	[SRV_MSG] = show_msg,
	[SRV_PRIV] = show_priv,
	[SRV_JOIN] = show_join,
	[SRV_PART] = show_part,
	[SRV_NOTICE] = show_notice,
	[SRV_TOPIC] = show_topic,
	[SRV_ROOM] = show_room,
	[SRV_PONG] = show_pong,
	[SRV_HELP] = show_help,
	[SRV_OK] = show_ok,
	[SRV_ERR] = show_err,
	[SRV_BYE] = show_bye,
};
/* clang-format on */

int
render_end_history(struct render *r, struct strbuf *out)
{
	if (!r->in_history)
		return 0;
	r->in_history = false;
	return remark(r, out, "end of history");
}

int
render_line(struct render *r, struct strbuf *out, const struct srv_line *l)
{
	int rc = 0;

	if (l->tag != SRV_HIST)
		rc = render_end_history(r, out);
	return (rc | SHOW[l->tag](r, out, l)) < 0 ? -1 : 0;
}

int
render_own_message(struct render *r, struct strbuf *out, const char *where, const char *msg,
		   bool queued)
{
	int rc = render_end_history(r, out) | stamp_now(r, out);

	if (where != NULL)
		rc |= room(r, out, where);
	rc |= strbuf_adds(out, "<") | name(r, out, r->self) | strbuf_adds(out, "> ") |
	      text(out, msg);
	if (queued)
		rc |= sgr(r, out, SGR_DIM) | strbuf_adds(out, " (queued)") | sgr(r, out, SGR_RESET);
	return (rc | strbuf_adds(out, "\n")) < 0 ? -1 : 0;
}

int
render_own_private(struct render *r, struct strbuf *out, const char *to, const char *msg,
		   bool queued)
{
	int rc = render_end_history(r, out) | stamp_now(r, out);

	rc |= sgr(r, out, SGR_MAGENTA) | strbuf_adds(out, "-> *") | text(out, to);
	rc |= strbuf_adds(out, "*") | sgr(r, out, SGR_RESET) | strbuf_adds(out, " ") |
	      text(out, msg);
	if (queued)
		rc |= sgr(r, out, SGR_DIM) | strbuf_adds(out, " (queued)") | sgr(r, out, SGR_RESET);
	return (rc | strbuf_adds(out, "\n")) < 0 ? -1 : 0;
}

static int
vnote(struct render *r, struct strbuf *out, const char *colour, const char *prefix, const char *fmt,
      va_list ap)
{
	struct strbuf s = { 0 };
	int rc = render_end_history(r, out);

	if (strbuf_vaddf(&s, fmt, ap) < 0 || s.buf == NULL) {
		strbuf_free(&s);
		return -1;
	}
	rc |= sgr(r, out, colour) | strbuf_adds(out, prefix) | text(out, s.buf);
	strbuf_free(&s);
	return (rc | sgr(r, out, SGR_RESET) | strbuf_adds(out, "\n")) < 0 ? -1 : 0;
}

int
render_note(struct render *r, struct strbuf *out, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vnote(r, out, SGR_DIM, "-- ", fmt, ap);
	va_end(ap);
	return rc;
}

int
render_error(struct render *r, struct strbuf *out, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vnote(r, out, SGR_RED, "!! ", fmt, ap);
	va_end(ap);
	return rc;
}
