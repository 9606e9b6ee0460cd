/*
 * privdrop.h - started as root (outside systemd, which sets User= itself),
 * chatd gives up root for the configured `user` once it holds what needs
 * root: the ports bound, its directories, lock files and log created and
 * handed to that user.  Every step is checked; a failure stops chatd.
 */
#ifndef CHATD_PRIVDROP_H
#define CHATD_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct settings;

struct privdrop {
	bool active; /* root, and a user is configured */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* Looks the user up when running as root; -1 with a message in err. */
int privdrop_prepare(const struct settings *s, struct privdrop *pd, char *err, size_t errlen);
/* Gives path (if it exists) to the user; does nothing when not active. */
int privdrop_chown(const struct privdrop *pd, const char *path, char *err, size_t errlen);
/* The same for an open file (a regular file or directory; a device stays root's). */
int privdrop_fchown(const struct privdrop *pd, int fd, const char *path, char *err, size_t errlen);
/* setgroups/initgroups, setgid, setuid, then proves root cannot come back. */
int privdrop_apply(const struct privdrop *pd, char *err, size_t errlen);

#endif
