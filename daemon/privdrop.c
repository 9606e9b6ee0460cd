/*
 * privdrop.c - leaving root for the configured user (see privdrop.h).
 * Main thread, at start-up, before any other thread exists.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "privdrop.h"

int
privdrop_prepare(const struct settings *s, struct privdrop *pd, char *err, size_t errlen)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int rc;

	memset(pd, 0, sizeof(*pd));
	if (geteuid() != 0 || s->user[0] == '\0')
		return 0;
	rc = getpwnam_r(s->user, &pw, buf, sizeof(buf), &found);
	if (found == NULL) {
		snprintf(err, errlen, "user %s: %s", s->user, rc ? strerror(rc) : "no such user");
		return -1;
	}
	if (pw.pw_uid == 0) {
		snprintf(err, errlen, "user %s is root: name an unprivileged user", s->user);
		return -1;
	}
	pd->active = true;
	pd->uid = pw.pw_uid;
	pd->gid = pw.pw_gid;
	snprintf(pd->name, sizeof(pd->name), "%s", s->user);
	return 0;
}

int
privdrop_chown(const struct privdrop *pd, const char *path, char *err, size_t errlen)
{
	if (!pd->active || path == NULL)
		return 0;
	if (lchown(path, pd->uid, pd->gid) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot give %s to user %s: %s", path, pd->name,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int
privdrop_fchown(const struct privdrop *pd, int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (!pd->active)
		return 0;
	/* A device such as /dev/null stays root's. */
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return 0;
	if (fchown(fd, pd->uid, pd->gid) < 0) {
		snprintf(err, errlen, "cannot give %s to user %s: %s", path, pd->name,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int
privdrop_apply(const struct privdrop *pd, char *err, size_t errlen)
{
	if (!pd->active)
		return 0;
	/* Supplementary groups too: membership of admin_group is how the socket is shared. */
	if (initgroups(pd->name, pd->gid) < 0 || setgid(pd->gid) < 0 || setuid(pd->uid) < 0) {
		snprintf(err, errlen, "cannot become user %s: %s", pd->name, strerror(errno));
		return -1;
	}
	if (getuid() != pd->uid || geteuid() != pd->uid || getgid() != pd->gid ||
	    getegid() != pd->gid || setuid(0) == 0) {
		snprintf(err, errlen, "dropping root for user %s did not hold", pd->name);
		return -1;
	}
	log_notice("running as user %s (uid %u)", pd->name, (unsigned)pd->uid);
	return 0;
}
