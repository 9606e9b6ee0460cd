/*
 * tls.h - chat's TLS (chat --tls), with OpenSSL 3: one context for the
 * whole run (what to trust, the pin, the session kept for resumption) and
 * one TLS connection over each socket conn.c opens.
 *
 * The server is verified against the system's CA store (or --ca FILE
 * only) and the host name it was reached by, or, with --fingerprint, by
 * the SHA-256 of its certificate alone.  The TLS 1.3 session tickets the
 * server sends after the handshake are kept (the last one wins) and
 * offered on the next connection, so a reconnect is a resumption.
 *
 * chat has one thread: everything here is called from it.
 */
#ifndef CHAT_TLS_H
#define CHAT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TLS_PIN_LEN 32 /* SHA-256 */

struct tls_ctx;  /* per run */
struct tls_conn; /* per connection */

enum tls_status {
	TLS_OK = 0,
	TLS_FAILED,  /* the handshake failed or timed out: no TLS server there, network */
	TLS_REFUSED, /* the server's certificate was not accepted (verification, pin) */
	TLS_NO_MEMORY,
};

/*
 * A pin as --fingerprint takes it: "SHA256:" (optional, any case) and 64
 * hex digits, in pairs separated by colons or not, any case.  0 or -1.
 */
int tls_parse_fingerprint(const char *s, unsigned char pin[TLS_PIN_LEN]);

/*
 * The context: ca_file NULL for the system store; pin NULL for none (then
 * the chain and the host name are verified).  NULL with err set on failure.
 */
struct tls_ctx *tls_ctx_new(const char *ca_file, const unsigned char *pin, char *err, size_t errsz);
void tls_ctx_free(struct tls_ctx *ctx);

/*
 * The handshake on the connected non-blocking socket fd, as host (the name
 * or address given: SNI and verification), until deadline_ms
 * (time_mono_ms()).  On failure err says why, for a person; the socket is
 * the caller's either way.
 */
enum tls_status tls_connect(struct tls_ctx *ctx, int fd, const char *host, int64_t deadline_ms,
			    struct tls_conn **out, char *err, size_t errsz);

/* As read(2) on a non-blocking socket: > 0, 0 at the end, -1 with errno (EAGAIN). */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t len);

/* As write(2) on a non-blocking socket; a retry after EAGAIN starts with the same bytes. */
ssize_t tls_write(struct tls_conn *t, const void *buf, size_t len);

/* Decrypted bytes wait in the connection: a read returns them without the socket. */
bool tls_pending(const struct tls_conn *t);

/* The last read or write stopped because the socket could not take more. */
bool tls_wants_write(const struct tls_conn *t);

/* Whether this connection resumed an earlier session. */
bool tls_resumed(const struct tls_conn *t);

/* Sends close_notify if the socket takes it now (never waits) and frees; not the socket. */
void tls_close(struct tls_conn *t);

#endif
