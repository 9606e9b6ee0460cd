/*
 * tls.h - the server's TLS context (OpenSSL's SSL_CTX): the certificate
 * chain and key of tls_cert / tls_key, the protocol versions, tickets.
 *
 * The control thread builds it at start (tls_load) and again on SIGHUP; a
 * new one replaces the current only once it loaded whole, so a broken pair
 * leaves the old one serving.  Client threads take a reference to the
 * current one for each handshake (tls_ctx_get): a handshake in progress
 * keeps the context it started with, and a context goes when its last
 * connection does.  The SSL objects made from it are the session's
 * (session.c), under its write rights.
 */
#ifndef CHATD_TLS_H
#define CHATD_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct settings;

/* Days before the certificate's expiry from which every load warns. */
#define TLS_EXPIRY_WARN_DAYS 14

/*
 * Builds a context from s (tls_cert, tls_key, tls_min_version) and makes
 * it the current one.  On failure -1 with "tls_cert FILE: what" in err,
 * and the current context (if any) stays.  Control thread only.
 */
int tls_load(const struct settings *s, char *err, size_t errlen);

/* Whether a context was ever loaded: TLS connections can be served. */
bool tls_ready(void);

/*
 * A reference to the current context for one handshake (the caller frees
 * it with SSL_CTX_free once SSL_new took its own); NULL when none.  Any
 * thread.
 */
SSL_CTX *tls_ctx_get(void);

/*
 * The current certificate: its subject ("CN=chat.example.org") and when
 * it expires (Unix seconds).  False when TLS is off.  Any thread.
 */
bool tls_cert_info(char *subject, size_t len, int64_t *not_after);

/*
 * "CN=chat.example.org, expires 2027-03-01 12:00:00 UTC", or "" with TLS
 * off: for chatctl status and systemd's STATUS.  Any thread.
 */
void tls_describe(char *buf, size_t len);

/* Logs a warning when the current certificate expires within TLS_EXPIRY_WARN_DAYS. */
void tls_check_expiry(int64_t now_s);

/* Frees the current context (at exit, no client thread left). */
void tls_close(void);

#endif
