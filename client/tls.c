/*
 * tls.c - chat's side of TLS with OpenSSL 3 (tls.h): the SSL_CTX of the
 * run, the handshake with a deadline on a non-blocking socket, the
 * verification and its failures in words, reads and writes as read(2) and
 * write(2) would do them, and the session kept for the next connection.
 *
 * OpenSSL writes on the socket with write(2): a server that is gone would
 * raise SIGPIPE, so SIGPIPE is held back around every call that may write
 * and a pending one discarded (plain mode keeps the default SIGPIPE on its
 * standard output).  Single-threaded, like all of chat.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "timefmt.h"
#include "tls.h"

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	bool pinned;
	unsigned char pin[TLS_PIN_LEN];
	SSL_SESSION *session; /* the last one the server gave, for the next connection */
};

struct tls_conn {
	SSL *ssl;
	bool want_write;
};

/* --- SIGPIPE --------------------------------------------------------- */

static void
hold_sigpipe(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &set, old);
}

static void
release_sigpipe(const sigset_t *old)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!sigismember(old, SIGPIPE))
		while (sigtimedwait(&set, NULL, &zero) > 0)
			;
	sigprocmask(SIG_SETMASK, old, NULL);
}

/* --- the pin ----------------------------------------------------------- */

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
tls_parse_fingerprint(const char *s, unsigned char pin[TLS_PIN_LEN])
{
	size_t n = 0;

	if (strncasecmp(s, "SHA256:", 7) == 0)
		s += 7;
	while (*s != '\0') {
		int hi = hex_value(s[0]), lo = hi < 0 ? -1 : hex_value(s[1]);

		if (lo < 0 || n == TLS_PIN_LEN)
			return -1;
		pin[n++] = (unsigned char)(hi << 4 | lo);
		s += 2;
		/* Colons between pairs only, each one. */
		if (*s == ':' && s[1] != '\0' && s[1] != ':')
			s++;
	}
	return n == TLS_PIN_LEN ? 0 : -1;
}

/* "SHA256:AB:CD:..." as `openssl x509 -fingerprint -sha256` prints it. */
static void
format_pin(const unsigned char pin[TLS_PIN_LEN], char *out, size_t outsz)
{
	size_t at = (size_t)snprintf(out, outsz, "SHA256:");

	for (size_t i = 0; i < TLS_PIN_LEN && at + 3 < outsz; i++)
		at += (size_t)snprintf(out + at, outsz - at, i ? ":%02X" : "%02X", pin[i]);
}

static bool
cert_digest(X509 *cert, unsigned char pin[TLS_PIN_LEN])
{
	unsigned int len = 0;

	return cert != NULL && X509_digest(cert, EVP_sha256(), pin, &len) == 1 &&
	       len == TLS_PIN_LEN;
}

/* --- the context ------------------------------------------------------ */

/* A ticket after the handshake (TLS 1.3) or the session at its end (1.2): keep the newest. */
static int
on_new_session(SSL *ssl, SSL_SESSION *session)
{
	struct tls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	if (!SSL_SESSION_is_resumable(session))
		return 0;
	SSL_SESSION_free(ctx->session);
	ctx->session = session;
	return 1; /* the reference is ours now */
}

/* The first error OpenSSL queued, in words. */
static const char *
ssl_reason(void)
{
	unsigned long e = ERR_peek_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : "unknown error";
}

struct tls_ctx *
tls_ctx_new(const char *ca_file, const unsigned char *pin, char *err, size_t errsz)
{
	struct tls_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL || (ctx->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errsz, "out of memory");
		free(ctx);
		return NULL;
	}
	SSL_CTX_set_app_data(ctx->ssl_ctx, ctx);
	SSL_CTX_set_min_proto_version(ctx->ssl_ctx, TLS1_2_VERSION);
	/* A server that closes without close_notify ends the session as an EOF does. */
	SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx->ssl_ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx->ssl_ctx,
				       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx->ssl_ctx, on_new_session);
	ERR_clear_error();
	if (pin != NULL) {
		/* The pin is the whole trust: no chain, no name (a self-signed certificate). */
		ctx->pinned = true;
		memcpy(ctx->pin, pin, TLS_PIN_LEN);
		SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_PEER, NULL);
		if (ca_file != NULL
			    ? SSL_CTX_load_verify_locations(ctx->ssl_ctx, ca_file, NULL) != 1
			    : SSL_CTX_set_default_verify_paths(ctx->ssl_ctx) != 1) {
			snprintf(err, errsz, "cannot load the CA certificates%s%s: %s",
				 ca_file ? " of " : "", ca_file ? ca_file : "", ssl_reason());
			tls_ctx_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_SESSION_free(ctx->session);
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

/* --- the handshake ------------------------------------------------------ */

static bool
is_ip_address(const char *host)
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);

	ASN1_OCTET_STRING_free(ip);
	return ip != NULL;
}

/*
 * SNI for a name (never for an address), and unless pinned what the
 * certificate must name.
 */
static int
set_peer_name(SSL *ssl, const char *host, bool verify)
{
	if (is_ip_address(host))
		return !verify || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1
			       ? 0
			       : -1;
	if (SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	return !verify || SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

static void
not_after_text(X509 *cert, char *out, size_t outsz)
{
	BIO *b = BIO_new(BIO_s_mem());
	long n = 0;
	char *text;

	snprintf(out, outsz, "?");
	if (b != NULL && cert != NULL && ASN1_TIME_print(b, X509_get0_notAfter(cert)) == 1 &&
	    (n = BIO_get_mem_data(b, &text)) > 0)
		snprintf(out, outsz, "%.*s", (int)n, text);
	BIO_free(b);
}

/* Why the chain or the name was not accepted, for a person. */
static void
describe_verify_error(SSL *ssl, const char *host, char *err, size_t errsz)
{
	long v = SSL_get_verify_result(ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	X509 *leaf = chain != NULL && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : NULL;
	unsigned char digest[TLS_PIN_LEN];
	char when[64], fp[3 * TLS_PIN_LEN + 8] = "";

	if (cert_digest(leaf, digest))
		format_pin(digest, fp, sizeof(fp));
	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		not_after_text(leaf, when, sizeof(when));
		snprintf(err, errsz, "the server's certificate has expired (valid until %s)", when);
		return;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(err, errsz, "the server's certificate is not for %s (wrong host)", host);
		return;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		snprintf(err, errsz,
			 "the server's certificate is signed by an unknown certificate "
			 "authority (give its CA with --ca FILE, or pin the certificate with "
			 "--fingerprint %s once you checked it is the server's)",
			 fp[0] ? fp : "SHA256:...");
		return;
	default:
		snprintf(err, errsz, "the server's certificate is not accepted: %s",
			 X509_verify_cert_error_string(v));
		return;
	}
}

/* With --fingerprint: TLS_OK if the server's certificate is the pinned one. */
static enum tls_status
check_pin(const struct tls_ctx *ctx, SSL *ssl, char *err, size_t errsz)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	unsigned char digest[TLS_PIN_LEN];
	char fp[3 * TLS_PIN_LEN + 8];

	if (!cert_digest(cert, digest)) {
		snprintf(err, errsz,
			 "the server sent no certificate to check --fingerprint against");
		return TLS_REFUSED;
	}
	if (CRYPTO_memcmp(digest, ctx->pin, TLS_PIN_LEN) != 0) {
		format_pin(digest, fp, sizeof(fp));
		snprintf(err, errsz,
			 "the server's certificate does not match --fingerprint (pin mismatch: "
			 "the server's is %s)",
			 fp);
		return TLS_REFUSED;
	}
	return TLS_OK;
}

/* SSL_connect() failed for good: which failure, and why. */
static enum tls_status
handshake_failed(SSL *ssl, int rc, const char *host, char *err, size_t errsz)
{
	int e = SSL_get_error(ssl, rc);
	unsigned long first = ERR_peek_error();

	if (SSL_get_verify_result(ssl) != X509_V_OK) {
		describe_verify_error(ssl, host, err, errsz);
		return TLS_REFUSED;
	}
	if (e == SSL_ERROR_SYSCALL && first == 0)
		snprintf(err, errsz, "the TLS handshake failed: %s",
			 errno != 0 ? strerror(errno) : "the server closed the connection");
	else if (ERR_GET_REASON(first) == SSL_R_WRONG_VERSION_NUMBER ||
		 ERR_GET_REASON(first) == SSL_R_PACKET_LENGTH_TOO_LONG)
		snprintf(err, errsz,
			 "the TLS handshake failed: %s (the server does not speak TLS on that "
			 "port?)",
			 ssl_reason());
	else
		snprintf(err, errsz, "the TLS handshake failed: %s", ssl_reason());
	return TLS_FAILED;
}

/* Drives SSL_connect() on the non-blocking socket until done or deadline_ms. */
static enum tls_status
handshake(SSL *ssl, int fd, const char *host, int64_t deadline_ms, char *err, size_t errsz)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd };
		int64_t left;
		sigset_t old;
		int rc, e;

		ERR_clear_error();
		errno = 0;
		hold_sigpipe(&old);
		rc = SSL_connect(ssl);
		e = SSL_get_error(ssl, rc);
		release_sigpipe(&old);
		if (rc == 1)
			return TLS_OK;
		if (e == SSL_ERROR_WANT_READ)
			pfd.events = POLLIN;
		else if (e == SSL_ERROR_WANT_WRITE)
			pfd.events = POLLOUT;
		else
			return handshake_failed(ssl, rc, host, err, errsz);
		do {
			left = deadline_ms - time_mono_ms();
			if (left <= 0) {
				snprintf(err, errsz, "the TLS handshake timed out");
				return TLS_FAILED;
			}
			rc = poll(&pfd, 1, (int)left);
		} while (rc == 0 || (rc < 0 && errno == EINTR));
		if (rc < 0) {
			snprintf(err, errsz, "the TLS handshake failed: %s", strerror(errno));
			return TLS_FAILED;
		}
	}
}

enum tls_status
tls_connect(struct tls_ctx *ctx, int fd, const char *host, int64_t deadline_ms,
	    struct tls_conn **out, char *err, size_t errsz)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	enum tls_status st;

	*out = NULL;
	if (t == NULL || (t->ssl = SSL_new(ctx->ssl_ctx)) == NULL || SSL_set_fd(t->ssl, fd) != 1 ||
	    set_peer_name(t->ssl, host, !ctx->pinned) < 0) {
		snprintf(err, errsz, "cannot set up TLS: %s", ssl_reason());
		tls_close(t);
		return TLS_NO_MEMORY;
	}
	/* A session that cannot be offered only costs a full handshake. */
	if (ctx->session != NULL && SSL_set_session(t->ssl, ctx->session) != 1)
		ERR_clear_error();
	st = handshake(t->ssl, fd, host, deadline_ms, err, errsz);
	if (st == TLS_OK && ctx->pinned)
		st = check_pin(ctx, t->ssl, err, errsz);
	if (st != TLS_OK) {
		/* Not worth offering again: the server refused it or it led nowhere. */
		SSL_SESSION_free(ctx->session);
		ctx->session = NULL;
		SSL_free(t->ssl);
		free(t);
		return st;
	}
	*out = t;
	return TLS_OK;
}

/* --- the connection ------------------------------------------------------ */

/* An SSL_read/SSL_write result as read(2)/write(2) would give it. */
static ssize_t
ssl_io_result(struct tls_conn *t, int ok, size_t done, int e)
{
	t->want_write = false;
	if (ok == 1)
		return (ssize_t)done;
	switch (e) {
	case SSL_ERROR_WANT_WRITE:
		t->want_write = true;
		/* fall through */
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			errno = ECONNRESET;
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

ssize_t
tls_read(struct tls_conn *t, void *buf, size_t len)
{
	size_t done = 0;
	sigset_t old;
	int ok, e;

	ERR_clear_error();
	errno = 0;
	hold_sigpipe(&old); /* a read may write: a KeyUpdate reply */
	ok = SSL_read_ex(t->ssl, buf, len, &done);
	e = ok == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, ok);
	release_sigpipe(&old);
	return ssl_io_result(t, ok, done, e);
}

ssize_t
tls_write(struct tls_conn *t, const void *buf, size_t len)
{
	size_t done = 0;
	sigset_t old;
	int ok, e;

	ERR_clear_error();
	errno = 0;
	hold_sigpipe(&old);
	ok = SSL_write_ex(t->ssl, buf, len, &done);
	e = ok == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, ok);
	release_sigpipe(&old);
	if (ok != 1 && e == SSL_ERROR_ZERO_RETURN) {
		errno = EPIPE;
		return -1;
	}
	return ssl_io_result(t, ok, done, e);
}

bool
tls_pending(const struct tls_conn *t)
{
	return SSL_pending(t->ssl) > 0;
}

bool
tls_wants_write(const struct tls_conn *t)
{
	return t->want_write;
}

bool
tls_resumed(const struct tls_conn *t)
{
	return SSL_session_reused(t->ssl) == 1;
}

void
tls_close(struct tls_conn *t)
{
	sigset_t old;

	if (t == NULL)
		return;
	if (t->ssl != NULL) {
		ERR_clear_error();
		hold_sigpipe(&old);
		SSL_shutdown(t->ssl); /* close_notify if it fits now; no waiting for the reply */
		release_sigpipe(&old);
		ERR_clear_error();
		SSL_free(t->ssl);
	}
	free(t);
}
