/*
 * strbuf.h - a growable byte string, for the text the client builds before
 * it writes it (rendered lines, the socket's output, stdin's input).
 */
#ifndef CHAT_STRBUF_H
#define CHAT_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *buf; /* NUL-terminated when not NULL */
	size_t len;
	size_t cap;
};

/* Each returns 0, or -1 when memory runs out (the buffer is then unchanged). */
int strbuf_add(struct strbuf *sb, const char *s, size_t n);
int strbuf_adds(struct strbuf *sb, const char *s);
int strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Drops the first n bytes. */
void strbuf_consume(struct strbuf *sb, size_t n);
void strbuf_reset(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);

#endif
