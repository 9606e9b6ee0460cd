/*
 * ctl_trust.h - whom chatctl trusts to serve the admin socket: root,
 * chatctl's own real user, and the `user` of the chatd configuration it
 * read (chatctl(8), docs/SECURITY.md).  Anyone else listening there (a
 * socket another local user planted) gets nothing from chatctl, not even
 * a password.  chatctl has one thread: it fills a ctl_trust before it
 * connects and only reads it afterwards.
 */
#ifndef CHATCTL_TRUST_H
#define CHATCTL_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* No such uid: "no configured user", and what SO_PEERCRED gives without a peer. */
#define CTL_NO_UID ((uid_t)-1)

struct ctl_trust {
	uid_t own;           /* chatctl's real uid */
	uid_t user;          /* the uid of the configuration's `user`, or CTL_NO_UID */
	char user_name[256]; /* that `user` as written, "" when the setting is empty or unread */
	const char *config;  /* the configuration file it came from, NULL for none */
};

/*
 * Whether a listener run by uid peer may hear chatctl's commands: peer
 * is root, own (chatctl's real uid) or user (the configured user's uid,
 * CTL_NO_UID for none).  CTL_NO_UID as peer is never trusted.
 */
bool ctl_uid_trusted(uid_t peer, uid_t own, uid_t user);

/*
 * Fills t for chatctl's real uid and the `user` setting user_name (NULL
 * or "" for none) of config (NULL for none), looking the name up in the
 * user database; a name not found there trusts no one more.
 */
void ctl_trust_init(struct ctl_trust *t, const char *user_name, const char *config);

/*
 * Whom t trusts, for an error message: "root (chatctl's own user)",
 * "root or chatctl's own user alice (uid 1000)", "root, chatctl's own user
 * alice (uid 1000) or chatd's user chatd (uid 105, set in
 * /etc/chatd/chatd.conf)"...  Truncated to fit len.
 */
void ctl_trust_describe(const struct ctl_trust *t, char *buf, size_t len);

#endif
