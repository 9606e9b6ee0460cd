/*
 * resume.h - resume tokens: a logged-in user asks for one (/token) and a
 * reconnecting client presents it instead of the password (a first line
 * "RESUME NAME TOKEN"), so a restart with many users online costs no
 * password hashes (docs/PROTOCOL.md "Resume tokens").
 *
 * A token is 256 random bits from getrandom(), shown once to the client as
 * 64 hex digits; the store keeps only its SHA-256 (a fast hash is right for
 * a random secret), bound to the name, with an expiry (resume_token_ttl).
 * At most RESUME_PER_NAME live tokens per name: a new one replaces the
 * oldest.  A new password (/passwd, chatctl user passwd), a registration
 * of the name (in a login, chatctl user add) and chatctl user del revoke
 * every token of the name; chatctl ident clear revokes them all.
 *
 * The store is kept in RESUME_FILE in state_dir: an append-only log of
 * issues and revocations, rewritten (compacted, atomically: temp file and
 * rename) at start, at ident clear and whenever it holds more than twice
 * as many records as live tokens (plus COMPACT_SLACK, resume.c).  A
 * token's record is not synced: a crash may lose the newest tokens, which
 * costs their clients one password login each; a revocation's is
 * (fdatasync() before it returns), so no revoked token comes back.
 *
 * One store per process, guarded by its own lock: client threads issue,
 * verify and revoke (/passwd, a registration), the control thread
 * revokes.  A token's SHA-256 is computed before the lock is taken; the
 * table and the I/O on the append log are under it (an append is one
 * write(), a rewrite a synced temp file renamed; nothing else takes a
 * lock while holding it).
 */
#ifndef CHATD_RESUME_H
#define CHATD_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESUME_TOKEN_BYTES 32
#define RESUME_TOKEN_HEX (2 * RESUME_TOKEN_BYTES)
#define RESUME_PER_NAME 4
#define RESUME_FILE "resume-tokens"

/*
 * Loads path (missing: an empty store), drops expired and damaged records
 * (damaged ones are counted in the log), rewrites it compacted with mode
 * 0600 and opens it for appending.  Never follows a symlink.  Returns 0,
 * or -1 with err filled.
 */
int resume_open(const char *path, int64_t now_ms, char *err, size_t errlen);

/* Closes the file and forgets every token (a later resume_open() reloads). */
void resume_close(void);

/*
 * A new token for name (the registered spelling), valid until now_ms +
 * ttl_ms: its 64 hex digits and NUL into token, the expiry (wall clock,
 * ms) into *expiry_ms.  0, or -1 (no store open, no randomness, memory).
 */
int resume_issue(const char *name, int64_t now_ms, int64_t ttl_ms, char token[RESUME_TOKEN_HEX + 1],
		 int64_t *expiry_ms);

/* Whether token (64 hex digits) is a live token of name (any case). */
bool resume_verify(const char *name, const char *token, int64_t now_ms);

/* Revokes every token of name (any case); logged to the file. */
void resume_revoke(const char *name);

/* Revokes every token (chatctl ident clear: the names may go to others). */
void resume_revoke_all(void);

/* Live tokens held (expired ones may be counted until the next compaction). */
size_t resume_count(void);

/* Whether token is 64 lower-case hex digits. */
bool resume_token_syntax(const char *token, size_t len);

#endif
