/*
 * tls.h - chatbench's TLS (--tls): the client side of OpenSSL 3 on the
 * load generator's non-blocking sockets.  No verification unless --ca is
 * given (the bench measures the server's cost, not the trust): the
 * handshake, reads and writes as read(2) and write(2) would do them.
 * chatbench has one thread: everything here runs on it.
 */
#ifndef BENCH_TLS_H
#define BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/*
 * The context of the run; ca_file NULL: no verification; resume: sessions
 * may be kept (btls_new()).  NULL (message printed) on failure.
 */
SSL_CTX *btls_ctx_new(const char *ca_file, bool resume);

/*
 * A TLS connection over the connected socket fd, to host (a loopback
 * address), offering session if not NULL; with keep, every resumable
 * session the server gives (TLS 1.3: a ticket, read after the handshake)
 * is stored in *keep (the earlier one freed).  NULL: no memory.
 */
SSL *btls_new(SSL_CTX *ctx, int fd, const char *host, SSL_SESSION *session, SSL_SESSION **keep);

/* Whether the handshake resumed the session offered. */
bool btls_resumed(SSL *ssl);

enum btls_step {
	BTLS_DONE,       /* the handshake is over */
	BTLS_WANT_READ,  /* wait until fd is readable, then call again */
	BTLS_WANT_WRITE, /* wait until fd is writable, then call again */
	BTLS_FAILED,
};

enum btls_step btls_handshake(SSL *ssl);

/*
 * As read(2)/write(2) on a non-blocking socket (-1 with errno EAGAIN when
 * it must wait); *want_write tells whether that wait is for output space.
 */
ssize_t btls_read(SSL *ssl, void *buf, size_t len, bool *want_write);
ssize_t btls_write(SSL *ssl, const void *buf, size_t len, bool *want_write);

/* close_notify if the socket takes it now, and the connection freed (not the socket). */
void btls_free(SSL *ssl);

#endif
