/*
 * adminsock.h - the admin socket as a file on disk, and who may talk to it.
 *
 * Creating: a stale socket file (left by a chatd that died) is replaced;
 * one that a running chatd answers on, or anything that is not a socket
 * (a file, a symlink), is left alone and chatd stops.  The socket is made
 * with mode 0660 from the start (umask) and given to admin_group.
 * Removing: only the very file chatd made (same device and inode).
 *
 * Access: the peer's credentials decide, whatever the file mode: root,
 * chatd's own user, and members of admin_group (SO_PEERCRED carries only
 * the primary group; SO_PEERGROUPS the supplementary ones).
 *
 * Control thread only.
 */
#ifndef CHATD_ADMINSOCK_H
#define CHATD_ADMINSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct adminsock {
	int fd;     /* listening, non-blocking; -1 when closed */
	char *path; /* the file chatd made; NULL for a socket systemd passed */
	dev_t dev;
	ino_t ino;
	bool has_group;
	gid_t gid;
	char group[64];
};

/* Looks admin_group up ("" for none); -1 with a message in err. */
int adminsock_set_group(struct adminsock *as, const char *name, char *err, size_t errlen);
/* Creates and listens on path; -1 with a message in err. */
int adminsock_bind(struct adminsock *as, const char *path, int backlog, char *err, size_t errlen);
/* Closes the socket and removes the file if it is still the one chatd made. */
void adminsock_close(struct adminsock *as);

enum adminsock_peer {
	PEER_ALLOWED,
	PEER_DENIED,
	PEER_UNKNOWN, /* its credentials could not be read */
};

/* Who is on fd ("uid 1000 (alice) pid 42" into peer), and may it stay? */
enum adminsock_peer adminsock_check_peer(const struct adminsock *as, int fd, char *peer,
					 size_t peerlen);

#endif
