/*
 * tls.c - chatbench's TLS with OpenSSL 3 (tls.h).  TLS 1.2 or 1.3 as the
 * server chooses (1.3 with OpenSSL's defaults on both sides); every
 * handshake is a full one (the server's cost of a new client) unless a
 * session is offered (--resume), SIGPIPE ignored by chatbench's main().
 */
#include <errno.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* A session the server gave: into the connection's slot, if it has one. */
static int
on_new_session(SSL *ssl, SSL_SESSION *session)
{
	SSL_SESSION **keep = SSL_get_app_data(ssl);

	if (keep == NULL || !SSL_SESSION_is_resumable(session))
		return 0;
	SSL_SESSION_free(*keep);
	*keep = session;
	return 1; /* the reference is the slot's */
}

SSL_CTX *
btls_ctx_new(const char *ca_file, bool resume)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		fprintf(stderr, "chatbench: out of memory for TLS\n");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (resume) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
							    SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	if (ca_file == NULL) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		fprintf(stderr, "chatbench: cannot load the CA certificates of %s: %s\n", ca_file,
			ERR_reason_error_string(ERR_peek_error()));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

SSL *
btls_new(SSL_CTX *ctx, int fd, const char *host, SSL_SESSION *session, SSL_SESSION **keep)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1 ||
	    (session != NULL && SSL_set_session(ssl, session) != 1)) {
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_app_data(ssl, keep);
	SSL_set_connect_state(ssl);
	return ssl;
}

bool
btls_resumed(SSL *ssl)
{
	return SSL_session_reused(ssl) == 1;
}

enum btls_step
btls_handshake(SSL *ssl)
{
	int rc;

	ERR_clear_error();
	rc = SSL_do_handshake(ssl);
	if (rc == 1)
		return BTLS_DONE;
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return BTLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return BTLS_WANT_WRITE;
	default:
		ERR_clear_error();
		return BTLS_FAILED;
	}
}

/* An SSL_read_ex/SSL_write_ex result as read(2)/write(2) would give it. */
static ssize_t
btls_io_result(SSL *ssl, int ok, size_t done, bool *want_write)
{
	*want_write = false;
	if (ok == 1)
		return (ssize_t)done;
	switch (SSL_get_error(ssl, ok)) {
	case SSL_ERROR_WANT_WRITE:
		*want_write = true;
		/* fall through */
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			errno = ECONNRESET;
		ERR_clear_error();
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

ssize_t
btls_read(SSL *ssl, void *buf, size_t len, bool *want_write)
{
	size_t done = 0;
	int ok;

	errno = 0;
	ok = SSL_read_ex(ssl, buf, len, &done);
	return btls_io_result(ssl, ok, done, want_write);
}

ssize_t
btls_write(SSL *ssl, const void *buf, size_t len, bool *want_write)
{
	size_t done = 0;
	int ok;

	errno = 0;
	ok = SSL_write_ex(ssl, buf, len, &done);
	return btls_io_result(ssl, ok, done, want_write);
}

void
btls_free(SSL *ssl)
{
	if (ssl == NULL)
		return;
	if (SSL_is_init_finished(ssl))
		SSL_shutdown(ssl);
	ERR_clear_error();
	SSL_free(ssl);
}
