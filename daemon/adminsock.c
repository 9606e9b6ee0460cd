/*
 * adminsock.c - the admin socket file and the peer check (see adminsock.h).
 * Owns the socket's file (made, checked, removed); control thread only.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "adminsock.h"
#include "log.h"

static bool
in_group_list(const gid_t *groups, size_t n, gid_t gid)
{
	for (size_t i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/*
 * SO_PEERCRED carries only the primary group; SO_PEERGROUPS gives the
 * supplementary ones as the peer had them when it connected.  Kernels
 * without it (before 4.13) fall back to the group database.
 */
static bool
peer_in_group(int fd, const struct ucred *cred, gid_t gid)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);
	int n = (int)(sizeof(groups) / sizeof(groups[0]));
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (cred->gid == gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		return in_group_list(groups, len / sizeof(gid_t), gid);
	if (errno != ENOPROTOOPT)
		return false; /* ERANGE: more than 256 groups; not worth trusting */
	if (getpwuid_r(cred->uid, &pw, buf, sizeof(buf), &found) != 0 || found == NULL)
		return false;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
		return false;
	return in_group_list(groups, (size_t)n, gid);
}

static void
describe_peer(const struct ucred *cred, char *buf, size_t len)
{
	struct passwd pw, *found = NULL;
	char pwbuf[4096];

	if (getpwuid_r(cred->uid, &pw, pwbuf, sizeof(pwbuf), &found) == 0 && found != NULL)
		snprintf(buf, len, "uid %u (%s) pid %d", (unsigned)cred->uid, pw.pw_name,
			 (int)cred->pid);
	else
		snprintf(buf, len, "uid %u pid %d", (unsigned)cred->uid, (int)cred->pid);
}

/*
 * A socket file left by a chatd that died is replaced; one that a running
 * chatd answers on is not, and neither is anything that is not a socket.
 */
static int
clear_path(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0
				       : (snprintf(err, errlen, "cannot check %s: %s", path,
						   strerror(errno)),
					  -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen,
			 "%s exists and is not a socket; remove it or set admin_socket", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "another chatd is running: it answers on %s", path);
		return -1;
	}
	if (errno != ECONNREFUSED) {
		snprintf(err, errlen, "cannot check %s: %s", path, strerror(errno));
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove the stale socket %s: %s", path,
			 strerror(errno));
		return -1;
	}
	log_notice("admin: replaced the stale socket %s", path);
	return 0;
}

int
adminsock_set_group(struct adminsock *as, const char *name, char *err, size_t errlen)
{
	struct group gr, *found = NULL;
	char buf[8192];
	int rc;

	if (name[0] == '\0')
		return 0;
	rc = getgrnam_r(name, &gr, buf, sizeof(buf), &found);
	if (found == NULL) {
		snprintf(err, errlen, "admin_group %s: %s", name,
			 rc != 0 ? strerror(rc) : "no such group");
		return -1;
	}
	as->has_group = true;
	as->gid = gr.gr_gid;
	snprintf(as->group, sizeof(as->group), "%s", name);
	return 0;
}

int
adminsock_bind(struct adminsock *as, const char *path, int backlog, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "admin_socket %s is too long: at most %zu bytes", path,
			 sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (clear_path(path, &sun, err, errlen) < 0)
		return -1;
	as->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (as->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0117);
	rc = bind(as->fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create the admin socket %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if ((as->path = strdup(path)) == NULL || lstat(path, &st) < 0) {
		snprintf(err, errlen, "admin socket %s: %s", path, strerror(errno));
		return -1;
	}
	as->dev = st.st_dev;
	as->ino = st.st_ino;
	if ((as->has_group && lchown(path, (uid_t)-1, as->gid) < 0) || chmod(path, 0660) < 0) {
		snprintf(err, errlen, "cannot give the admin socket %s to group %s: %s", path,
			 as->group, strerror(errno));
		return -1;
	}
	if (listen(as->fd, backlog) < 0) {
		snprintf(err, errlen, "listen on %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void
adminsock_close(struct adminsock *as)
{
	struct stat st;

	if (as->fd >= 0)
		close(as->fd);
	as->fd = -1;
	if (as->path != NULL && lstat(as->path, &st) == 0 && st.st_dev == as->dev &&
	    st.st_ino == as->ino)
		unlink(as->path);
	free(as->path);
	as->path = NULL;
}

enum adminsock_peer
adminsock_check_peer(const struct adminsock *as, int fd, char *peer, size_t peerlen)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		snprintf(peer, peerlen, "an unknown peer (%s)", strerror(errno));
		return PEER_UNKNOWN;
	}
	describe_peer(&cred, peer, peerlen);
	if (cred.uid == 0 || cred.uid == geteuid())
		return PEER_ALLOWED;
	return as->has_group && peer_in_group(fd, &cred, as->gid) ? PEER_ALLOWED : PEER_DENIED;
}
