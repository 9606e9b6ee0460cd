/*
 * resume.c - the resume token store (see resume.h); a login with a token
 * is auth.c's (auth_token()), the RESUME line of the native dialogue
 * login.c's.
 *
 * Owns the token table (a hash table of names, each with up to
 * RESUME_PER_NAME token hashes) and the append log in state_dir.  Client
 * threads issue (/token), verify (RESUME) and revoke (/passwd, a
 * registration) under the store's lock; the control thread revokes
 * (chatctl user add, user passwd, user del, ident clear) under it too.
 * Nothing else is locked while it is held; the file's rewrites (many dead
 * records, ident clear) are made under it.
 *
 * The file, one record a line:
 *   chatd-resume-tokens 1                 (first line)
 *   I NAME SHA256-HEX EXPIRY-MS           a token issued to NAME (lower case)
 *   R NAME                                every token of NAME revoked
 * Replaying it in order gives the table; a line that does not parse (a
 * write cut short by a crash, a damaged disk) is skipped and counted.
 * An I record is one write(), not synced (a token lost to a power cut
 * costs one password login); an R record is synced before the revocation
 * returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "proto.h"
#include "resume.h"
#include "safefile.h"
#include "timefmt.h"

#define RESUME_HEADER "chatd-resume-tokens 1"
#define HASH_LEN 32
#define MIN_BUCKETS 64
#define COMPACT_SLACK 256 /* records beyond twice the live ones before a rewrite */

struct token_slot {
	unsigned char hash[HASH_LEN];
	int64_t expiry_ms; /* 0: empty */
	uint64_t serial;   /* issue order: the oldest is replaced first */
};

struct rname {
	struct rname *next;
	char key[NAME_MAX_LEN + 1]; /* lower case */
	struct token_slot slot[RESUME_PER_NAME];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rname **buckets;
static size_t n_buckets, n_names, n_tokens;
static unsigned char seed[16]; /* keys the bucket hash: names are chosen by users */
static uint64_t serial;
static int log_fd = -1;
static char *file_path;
static size_t records;    /* in the file since the last rewrite */
static bool write_failed; /* warned once until an append works again */

/* --- hashing ------------------------------------------------------------ */

static void
sha256(const void *a, size_t alen, const void *b, size_t blen, unsigned char out[HASH_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = HASH_LEN;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, a, alen) != 1 || (blen && EVP_DigestUpdate(ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1)
		memset(out, 0, HASH_LEN); /* only out of memory: matches no token */
	EVP_MD_CTX_free(ctx);
	/*
	 * libcrypto keeps per-thread state (its error queue) once a thread
	 * used it; client threads come and go, so it is freed here rather
	 * than left to thread-exit handlers that a thread still running at
	 * shutdown never reaches.
	 */
	OPENSSL_thread_stop();
}

static void
lower_name(const char *name, char key[NAME_MAX_LEN + 1])
{
	size_t i = 0;

	for (; name[i] && i < NAME_MAX_LEN; i++)
		key[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
	key[i] = '\0';
}

static size_t
bucket_of(const char *key, size_t nb)
{
	unsigned char h[HASH_LEN];
	uint64_t v;

	sha256(seed, sizeof(seed), key, strlen(key), h);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (nb - 1));
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool
unhex(const char *s, size_t len, unsigned char *out)
{
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static void
tohex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

bool
resume_token_syntax(const char *token, size_t len)
{
	if (len != RESUME_TOKEN_HEX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (hexval(token[i]) < 0)
			return false;
	return true;
}

/* --- the table (lock held) ------------------------------------------------ */

static struct rname *
find_name(const char *key, bool create)
{
	struct rname *r;

	if (n_buckets == 0)
		return NULL;
	for (r = buckets[bucket_of(key, n_buckets)]; r != NULL; r = r->next)
		if (strcmp(r->key, key) == 0)
			return r;
	if (!create)
		return NULL;
	if (n_names >= n_buckets) { /* grow: at most one name a bucket on average */
		size_t nb = n_buckets * 2;
		struct rname **nbk = calloc(nb, sizeof(*nbk));

		if (nbk != NULL) {
			for (size_t i = 0; i < n_buckets; i++) {
				while ((r = buckets[i]) != NULL) {
					size_t b = bucket_of(r->key, nb);

					buckets[i] = r->next;
					r->next = nbk[b];
					nbk[b] = r;
				}
			}
			free(buckets);
			buckets = nbk;
			n_buckets = nb;
		}
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	snprintf(r->key, sizeof(r->key), "%s", key);
	size_t b = bucket_of(key, n_buckets);
	r->next = buckets[b];
	buckets[b] = r;
	n_names++;
	return r;
}

static void
drop_name(const char *key)
{
	struct rname **p;

	if (n_buckets == 0)
		return;
	for (p = &buckets[bucket_of(key, n_buckets)]; *p != NULL; p = &(*p)->next) {
		if (strcmp((*p)->key, key) == 0) {
			struct rname *r = *p;

			for (int i = 0; i < RESUME_PER_NAME; i++)
				n_tokens -= r->slot[i].expiry_ms != 0;
			*p = r->next;
			explicit_bzero(r, sizeof(*r));
			free(r);
			n_names--;
			return;
		}
	}
}

/* Puts a token hash in the name's free, expired or oldest slot; false out of
 * memory. */
static bool
add_token(const char *key, const unsigned char hash[HASH_LEN], int64_t expiry_ms, int64_t now_ms)
{
	struct rname *r = find_name(key, true);
	struct token_slot *victim = NULL;

	if (r == NULL)
		return false;
	for (int i = 0; i < RESUME_PER_NAME; i++) {
		struct token_slot *s = &r->slot[i];

		if (s->expiry_ms == 0 || s->expiry_ms <= now_ms) {
			victim = s;
			break;
		}
		if (victim == NULL || s->serial < victim->serial)
			victim = s;
	}
	n_tokens += victim->expiry_ms == 0;
	memcpy(victim->hash, hash, HASH_LEN);
	victim->expiry_ms = expiry_ms;
	victim->serial = ++serial;
	return true;
}

static void
free_table(void)
{
	for (size_t i = 0; i < n_buckets; i++) {
		struct rname *r, *next;

		for (r = buckets[i]; r != NULL; r = next) {
			next = r->next;
			explicit_bzero(r, sizeof(*r));
			free(r);
		}
	}
	free(buckets);
	buckets = NULL;
	n_buckets = n_names = n_tokens = 0;
}

/* --- the file (lock held) ---------------------------------------------------
 */

/*
 * A revocation that could not be written must not be undone by the next
 * start: the file goes, and every token with it (a password login each).
 */
static void
revocation_not_stored(const char *why)
{
	if (unlink(file_path) < 0 && errno != ENOENT)
		log_error("%s, and cannot remove %s: %s; revoked resume tokens would come back "
			  "at the next start: remove it before",
			  why, file_path, strerror(errno));
	else
		log_error("%s: removed %s so that no revoked resume token comes back at the next "
			  "start; the others are kept until then",
			  why, file_path);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1; /* nothing more is written until the next start */
}

/* One record, one write(); false if it failed (logged once: it costs only persistence). */
static bool append_record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static bool
append_record(const char *fmt, ...)
{
	char buf[160];
	va_list ap;
	int n;

	if (log_fd < 0)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return false;
	if (write(log_fd, buf, (size_t)n) != n) {
		if (!write_failed)
			log_warning(
				"cannot write %s: %s; resume tokens issued now may not survive a "
				"restart",
				file_path, errno ? strerror(errno) : "short write");
		write_failed = true;
		return false;
	}
	write_failed = false;
	records++;
	return true;
}

static bool
parse_expiry(const char *s, int64_t *out)
{
	char *end;

	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0)
		return false;
	*out = v;
	return true;
}

/* One line of the file (no LF); false if it is damaged. */
static bool
replay_line(char *line, int64_t now_ms)
{
	char *f[4];
	int n = 0;
	unsigned char hash[HASH_LEN];
	int64_t expiry;

	for (char *p = strtok(line, " "); p != NULL && n < 4; p = strtok(NULL, " "))
		f[n++] = p;
	if (n < 2 || strtok(NULL, " ") != NULL || !name_valid(f[1], strlen(f[1])))
		return false;
	char key[NAME_MAX_LEN + 1];
	lower_name(f[1], key);
	if (strcmp(f[0], "R") == 0 && n == 2) {
		drop_name(key);
		return true;
	}
	if (strcmp(f[0], "I") != 0 || n != 4 || strlen(f[2]) != 2 * HASH_LEN ||
	    !unhex(f[2], HASH_LEN, hash) || !parse_expiry(f[3], &expiry))
		return false;
	if (expiry > now_ms)
		add_token(key, hash, expiry, now_ms);
	return true;
}

/*
 * Reads path into the table; ENOENT is an empty store.  Opened as chatd's
 * other files are (safefile_open()): a link, a FIFO, a file with other
 * hard links or another user's is refused, not read and then replaced.
 */
static int
load(const char *path, int64_t now_ms, size_t *damaged, char *err, size_t errlen)
{
	int fd = safefile_open(path, O_RDONLY, 0600, 0, err, errlen);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	bool first = true;
	FILE *f;

	*damaged = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if ((f = fdopen(fd, "r")) == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		bool whole = line[len - 1] == '\n';

		if (whole)
			line[--len] = '\0';
		if (first && strcmp(line, RESUME_HEADER) == 0) {
			first = false;
			continue;
		}
		first = false;
		if (!whole || memchr(line, '\0', (size_t)len) != NULL || !replay_line(line, now_ms))
			(*damaged)++;
	}
	bool failed = ferror(f);
	if (line != NULL)
		explicit_bzero(line, cap);
	free(line);
	fclose(f);
	if (failed) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Rewrites the file with the live tokens only: a temp file, synced (this
 * is rare), renamed over it; then reopens it for appending.
 */
static int
rewrite(int64_t now_ms, char *err, size_t errlen)
{
	size_t plen = strlen(file_path) + 5;
	char *tmp = malloc(plen), line[160];
	int fd = -1, rc = -1;

	if (tmp == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(tmp, plen, "%s.tmp", file_path);
	unlink(tmp); /* a leftover, or a planted link: the link itself goes */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || safefile_write_all(fd, RESUME_HEADER "\n", strlen(RESUME_HEADER) + 1) < 0)
		goto fail;
	size_t live = 0;
	for (size_t i = 0; i < n_buckets; i++) {
		for (struct rname *r = buckets[i]; r != NULL; r = r->next) {
			for (int k = 0; k < RESUME_PER_NAME; k++) {
				const struct token_slot *s = &r->slot[k];
				char hex[2 * HASH_LEN + 1];

				if (s->expiry_ms <= now_ms)
					continue;
				tohex(s->hash, HASH_LEN, hex);
				int n = snprintf(line, sizeof(line), "I %s %s %" PRId64 "\n",
						 r->key, hex, s->expiry_ms);
				if (safefile_write_all(fd, line, (size_t)n) < 0)
					goto fail;
				live++;
			}
		}
	}
	if (fchmod(fd, 0600) < 0 || fdatasync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, file_path) < 0)
		goto fail;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = safefile_open(file_path, O_WRONLY | O_APPEND, 0600, 0, NULL, 0);
	if (log_fd < 0)
		goto fail;
	records = live;
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "cannot rewrite %s: %s", file_path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(tmp);
	return rc;
}

/* Many dead records: the file is rewritten (the caller holds the lock). */
static void
maybe_compact(int64_t now_ms)
{
	char err[512];

	if (log_fd < 0 || records < 2 * n_tokens + COMPACT_SLACK)
		return;
	if (rewrite(now_ms, err, sizeof(err)) < 0)
		log_warning("%s; the token file keeps growing until it works", err);
	else
		log_info("rewrote %s: %zu resume tokens", file_path, n_tokens);
}

/* --- the API
 * ------------------------------------------------------------------ */

int
resume_open(const char *path, int64_t now_ms, char *err, size_t errlen)
{
	size_t damaged;
	int rc = -1;

	pthread_mutex_lock(&lock);
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		goto out;
	}
	n_buckets = MIN_BUCKETS;
	if ((buckets = calloc(n_buckets, sizeof(*buckets))) == NULL ||
	    (file_path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (load(path, now_ms, &damaged, err, errlen) < 0 || rewrite(now_ms, err, errlen) < 0)
		goto out;
	if (damaged > 0)
		log_warning("%s: %zu damaged lines skipped (their tokens are lost: a password "
			    "login each)",
			    path, damaged);
	rc = 0;
out:
	if (rc < 0) {
		free_table();
		free(file_path);
		file_path = NULL;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void
resume_close(void)
{
	pthread_mutex_lock(&lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	free_table();
	free(file_path);
	file_path = NULL;
	records = 0;
	pthread_mutex_unlock(&lock);
}

int
resume_issue(const char *name, int64_t now_ms, int64_t ttl_ms, char token[RESUME_TOKEN_HEX + 1],
	     int64_t *expiry_ms)
{
	unsigned char raw[RESUME_TOKEN_BYTES], hash[HASH_LEN];
	char key[NAME_MAX_LEN + 1], hex[2 * HASH_LEN + 1];
	int rc = -1;

	if (ttl_ms <= 0 || getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -1;
	tohex(raw, sizeof(raw), token);
	sha256(token, RESUME_TOKEN_HEX, NULL, 0, hash);
	explicit_bzero(raw, sizeof(raw));
	lower_name(name, key);
	tohex(hash, HASH_LEN, hex);
	*expiry_ms = now_ms + ttl_ms;
	pthread_mutex_lock(&lock);
	if (buckets != NULL && add_token(key, hash, *expiry_ms, now_ms)) {
		append_record("I %s %s %" PRId64 "\n", key, hex, *expiry_ms);
		maybe_compact(now_ms);
		rc = 0;
	}
	pthread_mutex_unlock(&lock);
	if (rc < 0)
		explicit_bzero(token, RESUME_TOKEN_HEX + 1);
	return rc;
}

bool
resume_verify(const char *name, const char *token, int64_t now_ms)
{
	unsigned char hash[HASH_LEN];
	char key[NAME_MAX_LEN + 1];
	bool ok = false;

	if (!resume_token_syntax(token, strlen(token)))
		return false;
	sha256(token, RESUME_TOKEN_HEX, NULL, 0, hash);
	lower_name(name, key);
	pthread_mutex_lock(&lock);
	struct rname *r = find_name(key, false);
	for (int i = 0; r != NULL && i < RESUME_PER_NAME; i++) {
		const struct token_slot *s = &r->slot[i];

		/* Every slot is compared, in constant time: no timing tells which matched.
		 */
		ok |= s->expiry_ms > now_ms && CRYPTO_memcmp(s->hash, hash, HASH_LEN) == 0;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

void
resume_revoke(const char *name)
{
	char key[NAME_MAX_LEN + 1];

	lower_name(name, key);
	pthread_mutex_lock(&lock);
	if (find_name(key, false) != NULL) {
		drop_name(key);
		/*
		 * Synced before it is answered (/passwd's OK, chatctl's): a
		 * revocation lost to a power cut would bring the tokens back.
		 */
		if (log_fd >= 0 && (!append_record("R %s\n", key) || fdatasync(log_fd) < 0))
			revocation_not_stored("cannot store a revocation");
		maybe_compact(time_now_ms());
	}
	pthread_mutex_unlock(&lock);
}

void
resume_revoke_all(void)
{
	char err[512];

	pthread_mutex_lock(&lock);
	if (buckets != NULL) {
		free_table();
		n_buckets = MIN_BUCKETS;
		buckets = calloc(n_buckets, sizeof(*buckets));
		if (buckets == NULL)
			n_buckets = 0; /* out of memory: no token works, none is issued */
		if (file_path != NULL && rewrite(time_now_ms(), err, sizeof(err)) < 0)
			revocation_not_stored(err);
	}
	pthread_mutex_unlock(&lock);
}

size_t
resume_count(void)
{
	pthread_mutex_lock(&lock);
	size_t n = n_tokens;
	pthread_mutex_unlock(&lock);
	return n;
}
