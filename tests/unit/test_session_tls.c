/*
 * test_session_tls.c - a session's TLS I/O (session.c) against an OpenSSL
 * client over a socket pair: the handshake in steps, writes record after
 * record (gathered when they span iovecs), a write retried after EAGAIN
 * with the same bytes first (as an outq does), input OpenSSL holds
 * (session_pending), the peer's close_notify; and tls.c's loading,
 * refusal of a broken pair, description.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "line.h"
#include "outq.h"
#include "session.h"
#include "tls.h"

static char dir[] = "/tmp/test_session_tls.XXXXXX";
static char cert_path[64], key_path[64];

/* A self-signed P-256 certificate for CN=unit.test, valid for days. */
static void
make_pair(int days)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	FILE *f;

	assert_non_null(key);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"unit.test", -1,
				   -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_non_null(f = fopen(cert_path, "w"));
	PEM_write_X509(f, x);
	fclose(f);
	assert_non_null(f = fopen(key_path, "w"));
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

static struct settings settings;

static int
setup_all(void **state)
{
	char err[512];

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	make_pair(30);
	settings.tls_cert = cert_path;
	settings.tls_key = key_path;
	settings.tls_min_version = TLS_MIN_1_2;
	return tls_load(&settings, err, sizeof(err));
}

static int
teardown_all(void **state)
{
	tls_close();
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	return 0;
}

/* The two ends: chatd's session and a plain OpenSSL client. */
struct ends {
	struct client *c;
	SSL_CTX *cctx;
	SSL *cl;
	int fds[2];
};

static void
wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	poll(&p, 1, 1000);
}

static void
connect_ends(struct ends *e, int sndbuf)
{
	struct sockaddr_storage addr = { .ss_family = AF_UNIX };
	int server_done = 0, client_done = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, e->fds), 0);
	if (sndbuf > 0)
		setsockopt(e->fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	assert_non_null(e->c = session_new(1, e->fds[0], &addr, "unit", 4096, true));
	assert_non_null(e->cctx = SSL_CTX_new(TLS_client_method()));
	assert_non_null(e->cl = SSL_new(e->cctx));
	SSL_set_fd(e->cl, e->fds[1]);
	for (int i = 0; i < 1000 && !(server_done && client_done); i++) {
		if (!server_done) {
			int rc = session_handshake_step(e->c);

			assert_true(rc >= 0);
			server_done = rc == 0;
		}
		if (!client_done) {
			int rc = SSL_connect(e->cl);

			if (rc == 1)
				client_done = 1;
			else
				assert_true(SSL_get_error(e->cl, rc) == SSL_ERROR_WANT_READ ||
					    SSL_get_error(e->cl, rc) == SSL_ERROR_WANT_WRITE);
		}
	}
	assert_true(server_done && client_done);
}

static void
close_ends(struct ends *e)
{
	client_unref(e->c);
	SSL_free(e->cl);
	SSL_CTX_free(e->cctx);
	close(e->fds[0]);
	close(e->fds[1]);
}

/* What the client end can read now, appended at buf + *len. */
static void
client_drain(struct ends *e, char *buf, size_t cap, size_t *len)
{
	size_t got;

	while (*len < cap && SSL_read_ex(e->cl, buf + *len, cap - *len, &got) == 1)
		*len += got;
	ERR_clear_error();
}

static void
test_gathered_write(void **state)
{
	struct ends e;
	char buf[64];
	size_t len = 0;
	struct iovec iov[3] = { { "a", 1 }, { "bb", 2 }, { "ccc\n", 4 } };

	connect_ends(&e, 0);
	assert_int_equal(session_writev(e.c, iov, 3), 7);
	for (int i = 0; i < 100 && len < 7; i++) {
		wait_fd(e.fds[1], POLLIN);
		client_drain(&e, buf, sizeof(buf), &len);
	}
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "abbccc\n", 7);
	close_ends(&e);
}

static void
test_record_after_record(void **state)
{
	static char big[10][4000];
	struct iovec iov[10];
	struct ends e;

	connect_ends(&e, 0);
	for (int i = 0; i < 10; i++)
		iov[i] = (struct iovec){ big[i], sizeof(big[i]) };
	/* Record after record (some gathered, some in place) while the socket takes them. */
	assert_int_equal(session_writev(e.c, iov, 10), 40000);
	static char huge[3 * SESSION_TLS_WRITE];
	iov[0] = (struct iovec){ huge, sizeof(huge) };
	assert_int_equal(session_writev(e.c, iov, 1), sizeof(huge));
	close_ends(&e);
}

static ssize_t
write_session(void *arg, const struct iovec *iov, int n)
{
	return session_writev(arg, iov, n);
}

/*
 * The socket fills (EAGAIN from SSL_write); the outq keeps what was not
 * written at its head and grows at its tail, and the next flushes retry
 * with the same bytes first: OpenSSL accepts that, and the reader gets
 * every byte once, in order.
 */
static void
test_retry_after_eagain_keeps_the_stream(void **state)
{
	enum { LINES = 3000, LINE = 100 };
	static char lines[LINES][LINE], got[LINES * LINE];
	struct ends e;
	struct outq q;
	size_t len = 0, pushed = 0;
	bool saw_eagain = false;

	connect_ends(&e, 4096);
	outq_init(&q);
	for (int i = 0; i < LINES; i++) {
		snprintf(lines[i], LINE, "%0*d", LINE - 1, i);
		lines[i][LINE - 1] = '\n';
	}
	while (len < sizeof(got)) {
		/* Queue a few more lines, flush, read a little on the other end. */
		for (int k = 0; k < 40 && pushed < LINES; k++, pushed++)
			assert_int_equal(outq_push_static(&q, lines[pushed], LINE), 0);
		assert_int_equal(outq_flush_by(&q, write_session, e.c), 0);
		if (!outq_empty(&q))
			saw_eagain = true;
		size_t before = len;
		client_drain(&e, got, len + 2000 < sizeof(got) ? len + 2000 : sizeof(got), &len);
		if (len == before && outq_empty(&q) && pushed == LINES)
			wait_fd(e.fds[1], POLLIN);
	}
	assert_true(saw_eagain);
	assert_true(outq_empty(&q));
	for (int i = 0; i < LINES; i++)
		assert_memory_equal(got + (size_t)i * LINE, lines[i], LINE);
	outq_free(&q);
	close_ends(&e);
}

static void
test_pending_input_and_close_notify(void **state)
{
	struct ends e;
	char buf[16];
	size_t wrote;
	ssize_t n;

	connect_ends(&e, 0);
	assert_int_equal(SSL_write_ex(e.cl, "one\ntwo\n", 8, &wrote), 1);
	wait_fd(e.fds[0], POLLIN);
	do
		n = session_read(e.c, buf, 3);
	while (n < 0 && errno == EAGAIN && (wait_fd(e.fds[0], POLLIN), 1));
	assert_int_equal(n, 3);
	/* The rest of the record is OpenSSL's now: the socket has nothing to say. */
	assert_true(session_pending(e.c));
	assert_int_equal(session_read(e.c, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "\ntwo\n", 5);
	assert_false(session_pending(e.c));
	assert_int_equal(session_read(e.c, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);

	SSL_shutdown(e.cl);
	wait_fd(e.fds[0], POLLIN);
	assert_int_equal(session_read(e.c, buf, sizeof(buf)), 0);
	session_close_notify(e.c);
	close_ends(&e);
}

static void
test_load_refuses_a_broken_pair_and_keeps_the_old(void **state)
{
	struct settings bad = settings;
	char err[512], what[512], subject[128];
	int64_t not_after;
	FILE *f;
	char junk[64];

	snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
	assert_non_null(f = fopen(junk, "w"));
	fputs("not a certificate\n", f);
	fclose(f);
	bad.tls_cert = junk;
	assert_int_equal(tls_load(&bad, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "tls_cert "));
	assert_non_null(strstr(err, junk));
	/* The certificate with another key: refused as the key's fault. */
	bad.tls_cert = cert_path;
	bad.tls_key = junk;
	assert_int_equal(tls_load(&bad, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "tls_key "));
	unlink(junk);

	assert_true(tls_cert_info(subject, sizeof(subject), &not_after));
	assert_string_equal(subject, "CN=unit.test");
	tls_describe(what, sizeof(what));
	assert_non_null(strstr(what, "CN=unit.test, expires 20"));
	assert_true(tls_ready());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gathered_write),
		cmocka_unit_test(test_record_after_record),
		cmocka_unit_test(test_retry_after_eagain_keeps_the_stream),
		cmocka_unit_test(test_pending_input_and_close_notify),
		cmocka_unit_test(test_load_refuses_a_broken_pair_and_keeps_the_old),
	};

	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
