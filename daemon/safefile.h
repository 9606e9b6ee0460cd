/*
 * safefile.h - opening chatd's own files so that nobody else can redirect
 * them, and locking them so that two chatds never share one.
 *
 * The defences, used together (docs/SECURITY.md, docs/FILES.md):
 *
 *  - safefile_check_dir() / safefile_check_file() walk a path from / and
 *    refuse it if anyone but root or chatd's user could change where it
 *    leads: every directory on the way (and every symbolic link followed
 *    in a directory part) must be owned by root or chatd's user, and no
 *    directory may be writable by others (or by a group other than root's
 *    or chatd's, or by a user or group its POSIX ACL names) unless it has
 *    the sticky bit.  A file itself must not be a symbolic link.  server.c
 *    checks every path chatd writes at start-up, before it creates
 *    anything, and again once the missing directories exist.
 *  - safefile_open_read() opens a file chatd only reads (the TLS pair),
 *    links followed, after the same walk down to the file itself, and
 *    holds the file to the same owners.
 *  - safefile_open() opens with O_NOFOLLOW and O_CLOEXEC, then refuses what
 *    is not a regular file, not owned by root or chatd's user, or has other
 *    hard links; truncation and the mode (fchmod) come after those checks.
 *  - safefile_lock() takes an OFD lock on the sidecar PATH.lock, which is
 *    never renamed or removed, so the lock outlives the renames that
 *    replace PATH itself (compaction, rewrites).
 *
 * The trusted owners are root, the effective user and, once
 * safefile_trust() named it, the user chatd will drop root for.  Set by
 * the main thread at start-up before any other thread exists; only read
 * afterwards, from any thread.
 */
#ifndef CHATD_SAFEFILE_H
#define CHATD_SAFEFILE_H

#include <stddef.h>
#include <sys/types.h>

/* safefile_open() options. */
#define SAFEFILE_SETMODE 0x1   /* fchmod() to mode, whatever the file had */
#define SAFEFILE_DEVICE_OK 0x2 /* a character device (/dev/null) is fine too */

/* Also trust uid and gid (the user root is dropped for). */
void safefile_trust(uid_t uid, gid_t gid);

/*
 * Checks dir and every directory above it; a missing part ends the walk
 * (chatd creates it, owned by itself).  0, or -1 with a message in err.
 */
int safefile_check_dir(const char *dir, char *err, size_t errlen);
/* The same for path's directory; then path, if it exists, must not be a symbolic link,
 * and must be a regular file (or a device with SAFEFILE_DEVICE_OK) owned by a trusted user. */
int safefile_check_file(const char *path, int opts, char *err, size_t errlen);

/*
 * Opens a file chatd reads and must trust but never writes (the TLS
 * certificate and key), symbolic links followed (certbot's are links):
 * walks path from / as the kernel would, down to the file itself, checking
 * every directory reached as safefile_check_dir() does and the owner of
 * every symbolic link followed, the last component's included; then opens
 * the file with O_NOFOLLOW from the directory it checked, so that what was
 * checked is what is read, and refuses it unless it is a regular file
 * owned by root or chatd's user that nobody else may write (neither others
 * nor a group other than root's or chatd's, nor anyone its ACL names).  Returns a descriptor open
 * O_RDONLY | O_NONBLOCK | O_CLOEXEC, or -1 with the reason in err (path
 * itself not named: the caller says which setting it is).
 */
int safefile_open_read(const char *path, char *err, size_t errlen);

/*
 * open(path, flags | O_NOFOLLOW | O_CLOEXEC, mode) and the checks above.
 * O_TRUNC is applied only after them.  Returns the descriptor, or -1 with
 * errno set (ELOOP for a symbolic link, EPERM for a file chatd must not
 * use) and, when err is not NULL, a message naming path.
 */
int safefile_open(const char *path, int flags, mode_t mode, int opts, char *err, size_t errlen);

/*
 * Takes an exclusive OFD lock (F_OFD_SETLK) on PATH.lock, created mode
 * 0600, and writes our pid in it.  Returns the descriptor holding the
 * lock (keep it open), or -1 with a message naming path and the pid of
 * the chatd holding it.
 */
int safefile_lock(const char *path, char *err, size_t errlen);

/*
 * Writes all len bytes of buf to fd, going on after EINTR and short
 * writes.  0, or -1 with errno set (ENOSPC if write() took nothing).
 */
int safefile_write_all(int fd, const void *buf, size_t len);

#endif
