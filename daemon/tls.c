/*
 * tls.c - the server's TLS context (see tls.h).
 *
 * The control thread loads (at start, on SIGHUP) and checks the expiry;
 * any thread takes a reference to the current context or reads what the
 * certificate says.  The current context and its description sit under
 * ctx_lock, a leaf held only to swap or copy them and to take a
 * reference (SSL_CTX_up_ref): a handshake that started on the old context
 * keeps it alive, and OpenSSL frees it with its last connection.
 *
 * OpenSSL's defaults stand for ciphers and groups (Debian's security level
 * 2), less TLS 1.2's ciphers without forward secrecy (RSA key transport,
 * which OpenSSL 3.0 still offers with an RSA key: keep_ephemeral_kx());
 * the minimum version is TLS 1.2 unless tls_min_version says 1.3, and
 * 1.3 is negotiated whenever the client has it.  Renegotiation is off (TLS
 * 1.3 has none; for 1.2 SSL_OP_NO_RENEGOTIATION).  Session tickets are
 * OpenSSL's: their keys live in the context, so resumption works until
 * the next reload or restart.  A TLS 1.3 handshake sends one ticket, not
 * OpenSSL's two: a client (chat) keeps the newest and makes one connection
 * at a time, and each ticket costs the server an encryption, a record and
 * a write.  Writes may be partial and the buffer may
 * move between retries (session.c gathers into a buffer on the stack);
 * idle connections give their buffers back (SSL_MODE_RELEASE_BUFFERS).
 */
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "safefile.h"
#include "timefmt.h"
#include "tls.h"

#define SUBJECT_MAX 256
/* While the certificate is close to expiry, warn this often (control thread). */
#define EXPIRY_WARN_EVERY_S (24 * 3600)

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *current;                  /* under ctx_lock */
static char current_subject[SUBJECT_MAX]; /* under ctx_lock */
static int64_t current_not_after;         /* under ctx_lock */
static int64_t expiry_warned_s;           /* control thread */

/* The first error OpenSSL queued on this thread, as text; the queue is emptied. */
static void
ssl_error_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

static int
fail_file(char *err, size_t errlen, const char *what, const char *file)
{
	char why[256];

	ssl_error_text(why, sizeof(why));
	snprintf(err, errlen, "%s %s: %s", what, file, why);
	return -1;
}

/*
 * The certificate and key files as they are now (symbolic links followed,
 * as certbot's are), read whole into memory: nobody but root and chatd's
 * user may be able to change them, the links on the way or the directories
 * they are in, since whoever can puts in a pair of their own; nor may they
 * be anything but regular files (a FIFO would block the reload, a device
 * never end).  safefile_open_read() checks and opens; what it checked is
 * what OpenSSL parses, from memory.  A PEM file over TLS_FILE_MAX is
 * refused unread (a certificate chain is a few kilobytes).  A key anybody
 * may read is loaded with a warning (docs/SECURITY.md: readable by chatd
 * only).  Returns a malloc()ed buffer and its length, or NULL.
 */
#define TLS_FILE_MAX (1024 * 1024)

static char *
read_file(const char *what, const char *file, bool is_key, size_t *len, char *err, size_t errlen)
{
	char why[PATH_MAX + 256];
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd;

	if ((fd = safefile_open_read(file, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, file, why);
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, file, strerror(errno));
		close(fd);
		return NULL;
	}
	if (st.st_size > TLS_FILE_MAX) {
		snprintf(err, errlen, "%s %s: %lld bytes, more than a PEM file may have (%d)", what,
			 file, (long long)st.st_size, TLS_FILE_MAX);
		close(fd);
		return NULL;
	}
	if (is_key && (st.st_mode & S_IROTH))
		log_warning("%s %s is readable by others (mode %04o): anyone on this machine can "
			    "impersonate chatd; chmod o-r it",
			    what, file, (unsigned)(st.st_mode & 07777));
	/* One byte more than allowed, to notice a file that grew since fstat(). */
	if ((buf = malloc(TLS_FILE_MAX + 1)) == NULL) {
		snprintf(err, errlen, "%s %s: %s", what, file, strerror(ENOMEM));
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, TLS_FILE_MAX + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s %s: %s", what, file, strerror(errno));
			break;
		}
		got += (size_t)n;
		if (got > TLS_FILE_MAX) {
			snprintf(err, errlen, "%s %s: more bytes than a PEM file may have (%d)",
				 what, file, TLS_FILE_MAX);
			break;
		}
		if (n == 0) {
			close(fd);
			*len = got;
			return buf;
		}
	}
	close(fd);
	OPENSSL_cleanse(buf, got); /* it may hold a key */
	free(buf);
	return NULL;
}

/*
 * OpenSSL's default would ask the terminal for a pass phrase (and block the
 * reload): a key that has one is refused instead; *u notes that it was asked.
 */
static int
no_pass_phrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (u != NULL)
		*(bool *)u = true;
	return -1;
}

/*
 * The certificate and the chain after it, as SSL_CTX_use_certificate_chain_file()
 * would, but from memory (read_file(): what was checked is what is parsed);
 * OpenSSL has no such call for a buffer.
 */
static int
use_chain(SSL_CTX *ctx, const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x = NULL, *ca;
	unsigned long e;
	int ok = 0;

	if (bio == NULL)
		return 0;
	if ((x = PEM_read_bio_X509_AUX(bio, NULL, no_pass_phrase, NULL)) == NULL ||
	    SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_clear_chain_certs(ctx) != 1)
		goto out;
	while ((ca = PEM_read_bio_X509(bio, NULL, no_pass_phrase, NULL)) != NULL)
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			goto out;
		}
	/* The end of the file, and only that, ends the chain. */
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
		ok = 1;
	}
out:
	X509_free(x);
	BIO_free(bio);
	return ok;
}

/* 1, 0 (OpenSSL's error queued), or -1 for a key with a pass phrase. */
static int
use_key(SSL_CTX *ctx, const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	bool asked = false;
	EVP_PKEY *pkey;
	int ok = 0;

	if (bio == NULL)
		return 0;
	if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, no_pass_phrase, &asked)) != NULL) {
		ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1;
		EVP_PKEY_free(pkey);
	} else if (asked) {
		ERR_clear_error();
		ok = -1;
	}
	BIO_free(bio);
	return ok;
}

/*
 * Keeps the TLS 1.2 ciphers of ctx (those OpenSSL and the system's
 * configuration chose) whose key exchange is ephemeral, (EC)DHE: with RSA
 * key transport a key stolen later decrypts traffic recorded now.  TLS 1.3
 * suites are all ephemeral and listed apart.  With none left, TLS 1.2 goes.
 */
static int
keep_ephemeral_kx(SSL_CTX *ctx)
{
	STACK_OF(SSL_CIPHER) *all = SSL_CTX_get_ciphers(ctx);
	char list[8192];
	size_t used = 0;

	for (int i = 0; all != NULL && i < sk_SSL_CIPHER_num(all); i++) {
		const SSL_CIPHER *ci = sk_SSL_CIPHER_value(all, i);
		int kx = SSL_CIPHER_get_kx_nid(ci);
		int n;

		if (kx != NID_kx_ecdhe && kx != NID_kx_dhe)
			continue;
		n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ":" : "",
			     SSL_CIPHER_get_name(ci));
		if (n < 0 || (size_t)n >= sizeof(list) - used)
			return -1;
		used += (size_t)n;
	}
	if (used == 0)
		return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 ? 0 : -1;
	return SSL_CTX_set_cipher_list(ctx, list) == 1 ? 0 : -1;
}

static SSL_CTX *
new_ctx(const struct settings *s)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, s->tls_min_version == TLS_MIN_1_3 ? TLS1_3_VERSION
									     : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
					 SSL_OP_NO_COMPRESSION);
	if (keep_ephemeral_kx(ctx) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"chatd", 5);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_num_tickets(ctx, 1);
	return ctx;
}

/* The certificate's subject and expiry, for status lines. */
static void
describe_cert(SSL_CTX *ctx, char *subject, size_t len, int64_t *not_after)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	struct tm tm;

	snprintf(subject, len, "?");
	*not_after = 0;
	if (x == NULL)
		return;
	X509_NAME_oneline(X509_get_subject_name(x), subject, (int)len);
	if (subject[0] == '/') /* "/CN=x/O=y" reads better as "CN=x/O=y" */
		memmove(subject, subject + 1, strlen(subject));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		*not_after = (int64_t)timegm(&tm);
}

int
tls_load(const struct settings *s, char *err, size_t errlen)
{
	const char *key = s->tls_key[0] ? s->tls_key : s->tls_cert;
	const char *key_what = s->tls_key[0] ? "tls_key" : "tls_cert (its key)";
	char subject[SUBJECT_MAX], *cert_pem, *key_pem = NULL;
	size_t cert_len, key_len = 0;
	int64_t not_after;
	SSL_CTX *ctx, *old;
	int rc = 0, used;

	if ((cert_pem = read_file("tls_cert", s->tls_cert, !s->tls_key[0], &cert_len, err,
				  errlen)) == NULL)
		return -1;
	if (s->tls_key[0] &&
	    (key_pem = read_file("tls_key", key, true, &key_len, err, errlen)) == NULL) {
		free(cert_pem);
		return -1;
	}
	ERR_clear_error();
	if ((ctx = new_ctx(s)) == NULL || !use_chain(ctx, cert_pem, cert_len))
		rc = fail_file(err, errlen, "tls_cert", s->tls_cert);
	else if ((used = key_pem ? use_key(ctx, key_pem, key_len)
				 : use_key(ctx, cert_pem, cert_len)) < 0) {
		snprintf(err, errlen,
			 "%s %s: the key is encrypted; chatd reads only keys without a "
			 "pass phrase",
			 key_what, key);
		rc = -1;
	} else if (used == 0 || SSL_CTX_check_private_key(ctx) != 1)
		rc = fail_file(err, errlen, key_what, key);
	OPENSSL_cleanse(cert_pem, cert_len); /* with tls_key unset, it holds the key */
	free(cert_pem);
	if (key_pem != NULL) {
		OPENSSL_cleanse(key_pem, key_len);
		free(key_pem);
	}
	if (rc < 0) {
		SSL_CTX_free(ctx);
		return -1;
	}
	describe_cert(ctx, subject, sizeof(subject), &not_after);
	pthread_mutex_lock(&ctx_lock);
	old = current;
	current = ctx;
	snprintf(current_subject, sizeof(current_subject), "%s", subject);
	current_not_after = not_after;
	pthread_mutex_unlock(&ctx_lock);
	SSL_CTX_free(old); /* handshakes and connections made with it keep theirs */
	expiry_warned_s = 0;
	return 0;
}

bool
tls_ready(void)
{
	pthread_mutex_lock(&ctx_lock);
	bool ready = current != NULL;
	pthread_mutex_unlock(&ctx_lock);
	return ready;
}

SSL_CTX *
tls_ctx_get(void)
{
	pthread_mutex_lock(&ctx_lock);
	SSL_CTX *ctx = current;
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&ctx_lock);
	return ctx;
}

bool
tls_cert_info(char *subject, size_t len, int64_t *not_after)
{
	pthread_mutex_lock(&ctx_lock);
	bool on = current != NULL;
	snprintf(subject, len, "%s", on ? current_subject : "");
	*not_after = on ? current_not_after : 0;
	pthread_mutex_unlock(&ctx_lock);
	return on;
}

void
tls_describe(char *buf, size_t len)
{
	char subject[SUBJECT_MAX], when[TIME_RFC3339_LEN + 1];
	int64_t not_after;

	if (!tls_cert_info(subject, sizeof(subject), &not_after)) {
		snprintf(buf, len, "%s", "");
		return;
	}
	time_format_ms(when, not_after * 1000);
	snprintf(buf, len, "%s, expires %s", subject, when);
}

void
tls_check_expiry(int64_t now_s)
{
	char subject[SUBJECT_MAX];
	int64_t not_after;

	if (!tls_cert_info(subject, sizeof(subject), &not_after) ||
	    not_after - now_s > (int64_t)TLS_EXPIRY_WARN_DAYS * 86400)
		return;
	if (expiry_warned_s != 0 && now_s - expiry_warned_s < EXPIRY_WARN_EVERY_S)
		return;
	expiry_warned_s = now_s;
	if (not_after <= now_s)
		log_warning("the TLS certificate %s has expired; clients will refuse it", subject);
	else
		log_warning("the TLS certificate %s expires in %lld days; renew it and reload",
			    subject, (long long)((not_after - now_s) / 86400));
}

void
tls_close(void)
{
	pthread_mutex_lock(&ctx_lock);
	SSL_CTX_free(current);
	current = NULL;
	pthread_mutex_unlock(&ctx_lock);
}
