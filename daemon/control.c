/*
 * control.c - the admin socket and its connections (see control.h).
 *
 * Owned by the control thread: the listening socket, every admin
 * connection and its buffers.  Worker threads (admin_run_job) touch only
 * their job and the finished-jobs list, under jobs_lock, and wake the
 * control thread through job_fd.
 *
 * A connection answers one request at a time, in order: while a reply is
 * unfinished (a streamed log, a password hash) later requests wait in its
 * input buffer, and while much output waits for a slow reader chatd stops
 * reading more requests from it, so one admin can only ever cost a bounded
 * amount of memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "admin_proto.h"
#include "config.h"
#include "control.h"
#include "escape.h"
#include "linebuf.h"
#include "log.h"
#include "timefmt.h"
#include "utf8.h"

#define ADMIN_MAX_CONNS		16
/* An admin connection that says nothing for this long is closed. */
#define ADMIN_IDLE_MS		(10 * 60 * 1000)
/* Above this much unsent output, no new request is read and no stream refilled. */
#define ADMIN_OUT_HIGH		(256 * 1024)
/* Log lines longer than this are left out of "log show" (with a note). */
#define STREAM_MAX_LINE		65536

struct job {
	pthread_t thread;
	struct control *ctl;
	struct admin_conn *ac;
	void (*work)(void *arg);
	void (*done)(struct admin_conn *ac, void *arg);
	void *arg;
	struct job *next;		/* on ctl->finished, under jobs_lock */
};

struct admin_conn {
	struct control *ctl;
	int fd;				/* -1 once closed while a job still runs */
	char peer[96];
	struct linebuf in;
	char *out;
	size_t out_off, out_len, out_cap;
	bool busy;			/* the current reply is not complete */
	bool peer_done;			/* EOF: answer what was asked, then close */
	bool close_after;		/* close once the output is written */
	struct job *job;
	int stream_fd;			/* admin_stream_file(), or -1 */
	off_t stream_left;
	struct linebuf stream;
	char *stream_ok;
	int64_t active_ms;
	struct admin_conn *next;
};

struct control {
	struct server *srv;
	int listen_fd;
	char *path;			/* the socket file chatd made; NULL if systemd's */
	dev_t dev;
	ino_t ino;
	bool has_group;
	gid_t admin_gid;
	char group[64];
	struct admin_conn *conns;
	size_t n_conns;
	struct admin_conn *polled[CONTROL_POLLFDS_MAX];
	int job_fd;
	size_t jobs_running;
	pthread_mutex_t jobs_lock;
	struct job *finished;
};

/* ---- output ---- */

static size_t
out_pending(const struct admin_conn *ac)
{
	return ac->out_len - ac->out_off;
}

static void
out_append(struct admin_conn *ac, const char *s, size_t n)
{
	if (ac->fd < 0)
		return;
	if (ac->out_off > 0 && ac->out_off == ac->out_len)
		ac->out_off = ac->out_len = 0;
	if (ac->out_len + n > ac->out_cap) {
		size_t cap = ac->out_cap ? ac->out_cap : 4096;
		char *bigger;

		while (cap < ac->out_len + n)
			cap *= 2;
		if ((bigger = realloc(ac->out, cap)) == NULL) {
			log_error("admin: out of memory for a reply to %s", ac->peer);
			ac->close_after = true;
			return;
		}
		ac->out = bigger;
		ac->out_cap = cap;
	}
	memcpy(ac->out + ac->out_len, s, n);
	ac->out_len += n;
}

/* Appends prefix, text (escaped unless it is clean UTF-8) and a line end. */
static void
out_line(struct admin_conn *ac, const char *prefix, const char *text)
{
	size_t len = strlen(text);

	out_append(ac, prefix, strlen(prefix));
	if (text_check(text, len) == TEXT_OK) {
		out_append(ac, text, len);
	} else {
		char *esc = malloc(len * 4 + 1);

		if (esc != NULL) {
			out_append(ac, esc, escape_bytes(esc, len * 4 + 1, text, len));
			free(esc);
		}
	}
	out_append(ac, "\n", 1);
}

static void
out_vformat(struct admin_conn *ac, const char *prefix, const char *fmt, va_list ap)
{
	char *text;

	if (vasprintf(&text, fmt, ap) < 0) {
		log_error("admin: out of memory for a reply to %s", ac->peer);
		ac->close_after = true;
		return;
	}
	out_line(ac, prefix, text);
	free(text);
}

void
admin_data(struct admin_conn *ac, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	out_vformat(ac, ADMIN_DATA_PREFIX, fmt, ap);
	va_end(ap);
}

void
admin_ok(struct admin_conn *ac, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	out_vformat(ac, "OK ", fmt, ap);
	va_end(ap);
}

void
admin_err(struct admin_conn *ac, int code, const char *fmt, ...)
{
	char prefix[16];
	va_list ap;

	snprintf(prefix, sizeof(prefix), "ERR %d ", code);
	va_start(ap, fmt);
	out_vformat(ac, prefix, fmt, ap);
	va_end(ap);
}

struct server *
admin_server(struct admin_conn *ac)
{
	return ac->ctl->srv;
}

const char *
admin_peer(const struct admin_conn *ac)
{
	return ac->peer;
}

/* ---- streaming a file ---- */

static void
stream_end(struct admin_conn *ac)
{
	close(ac->stream_fd);
	ac->stream_fd = -1;
	linebuf_free(&ac->stream);
	admin_ok(ac, "%s", ac->stream_ok);
	free(ac->stream_ok);
	ac->stream_ok = NULL;
	ac->busy = false;
}

/* Reads more of the file into the stream's line buffer; false at its end. */
static bool
stream_read(struct admin_conn *ac)
{
	size_t avail;
	char *space = linebuf_space(&ac->stream, &avail);
	ssize_t n;

	if (ac->stream_left == 0)
		return false;
	if ((off_t)avail > ac->stream_left)
		avail = (size_t)ac->stream_left;
	n = read(ac->stream_fd, space, avail);
	if (n <= 0) {
		if (n < 0)
			log_warning("admin: reading the log for %s: %s", ac->peer, strerror(errno));
		ac->stream_left = 0;	/* truncated meanwhile (log clear) or unreadable */
		return false;
	}
	linebuf_commit(&ac->stream, (size_t)n);
	ac->stream_left -= n;
	return true;
}

static void
stream_refill(struct admin_conn *ac)
{
	bool terminated = false;

	while (ac->stream_fd >= 0 && out_pending(ac) < ADMIN_OUT_HIGH) {
		char *line;
		size_t len;

		switch (linebuf_next(&ac->stream, &line, &len)) {
		case LB_LINE:
			out_line(ac, ADMIN_DATA_PREFIX, line);
			continue;
		case LB_OVERLONG:
			admin_data(ac, "[a line of more than %d bytes is left out]", STREAM_MAX_LINE);
			continue;
		case LB_NONE:
			break;
		}
		if (stream_read(ac))
			continue;
		/* The file ends without a line end: its last line still counts. */
		if (!terminated && linebuf_pending(&ac->stream) > 0) {
			size_t avail;

			*linebuf_space(&ac->stream, &avail) = '\n';
			linebuf_commit(&ac->stream, 1);
			terminated = true;
			continue;
		}
		stream_end(ac);
	}
}

void
admin_stream_file(struct admin_conn *ac, int fd, off_t from, const char *ok_text)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || lseek(fd, from, SEEK_SET) < 0 ||
	    linebuf_init(&ac->stream, STREAM_MAX_LINE) < 0 ||
	    (ac->stream_ok = strdup(ok_text)) == NULL) {
		admin_err(ac, ADMIN_ERR_INTERNAL, "cannot read the file: %s", strerror(errno));
		close(fd);
		return;
	}
	ac->stream_fd = fd;
	ac->stream_left = st.st_size > from ? st.st_size - from : 0;
	ac->busy = true;
	stream_refill(ac);
}

/* ---- jobs ---- */

static void *
job_main(void *arg)
{
	struct job *j = arg;
	struct control *ctl = j->ctl;
	uint64_t one = 1;

	j->work(j->arg);
	pthread_mutex_lock(&ctl->jobs_lock);
	j->next = ctl->finished;
	ctl->finished = j;
	pthread_mutex_unlock(&ctl->jobs_lock);
	if (write(ctl->job_fd, &one, sizeof(one)) < 0)
		log_error("admin: cannot wake the control thread: %s", strerror(errno));
	return NULL;
}

int
admin_run_job(struct admin_conn *ac, void (*work)(void *arg),
	      void (*done)(struct admin_conn *ac, void *arg), void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	int err;

	if (j == NULL)
		return -1;
	*j = (struct job){ .ctl = ac->ctl, .ac = ac, .work = work, .done = done, .arg = arg };
	if ((err = pthread_create(&j->thread, NULL, job_main, j)) != 0) {
		free(j);
		errno = err;
		return -1;
	}
	ac->job = j;
	ac->busy = true;
	ac->ctl->jobs_running++;
	return 0;
}

/* ---- connections ---- */

static void
conn_free(struct admin_conn *ac)
{
	if (ac->stream_fd >= 0) {
		close(ac->stream_fd);
		linebuf_free(&ac->stream);
	}
	free(ac->stream_ok);
	linebuf_free(&ac->in);
	free(ac->out);
	free(ac);
}

/* Closes the socket; the struct goes now, or when its job is done. */
static void
conn_close(struct admin_conn *ac)
{
	struct control *ctl = ac->ctl;

	for (struct admin_conn **p = &ctl->conns; *p != NULL; p = &(*p)->next)
		if (*p == ac) {
			*p = ac->next;
			break;
		}
	ctl->n_conns--;
	close(ac->fd);
	ac->fd = -1;
	if (ac->job == NULL)
		conn_free(ac);
}

/* Writes what the socket takes; false if the peer is gone. */
static bool
conn_flush(struct admin_conn *ac)
{
	while (out_pending(ac) > 0) {
		ssize_t n = send(ac->fd, ac->out + ac->out_off, out_pending(ac),
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		ac->out_off += (size_t)n;
	}
	return true;
}

static void
handle_request(struct admin_conn *ac, char *line, size_t len)
{
	struct admin_request req;
	enum text_check tc = text_check(line, len);
	char err[256];
	int code;

	if (tc != TEXT_OK) {
		admin_err(ac, ADMIN_ERR_BAD_TEXT, "%s in the request", text_check_str(tc));
		return;
	}
	if ((code = admin_parse(line, 0, &req, err, sizeof(err))) != 0) {
		admin_err(ac, code, "%s", err);
		return;
	}
	admin_dispatch(ac, &req);
}

/* Answers buffered requests, one finished reply after another. */
static void
conn_process(struct admin_conn *ac)
{
	while (ac->fd >= 0 && !ac->busy && !ac->close_after && out_pending(ac) < ADMIN_OUT_HIGH) {
		char *line;
		size_t len;
		enum linebuf_result r = linebuf_next(&ac->in, &line, &len);

		if (r == LB_NONE)
			break;
		if (r == LB_OVERLONG)
			admin_err(ac, ADMIN_ERR_TOO_LONG, "a request is at most %d bytes",
				  ADMIN_MAX_LINE);
		else
			handle_request(ac, line, len);
	}
	if (ac->stream_fd >= 0)
		stream_refill(ac);
}

/* Reads, answers and writes; closes the connection when it is over. */
static void
conn_service(struct admin_conn *ac, short revents)
{
	if ((revents & (POLLIN | POLLHUP | POLLERR)) && !ac->peer_done) {
		ssize_t n = linebuf_fill(&ac->in, ac->fd);

		if (n == 0)
			ac->peer_done = true;
		else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			ac->peer_done = ac->close_after = true;
		else if (n > 0)
			ac->active_ms = time_mono_ms();
	}
	/*
	 * Answer and write until the socket is full or nothing more comes: a
	 * stream or pipelined requests waiting behind a drained buffer would
	 * otherwise wait for a poll event that never comes.
	 */
	for (;;) {
		conn_process(ac);
		if (out_pending(ac) == 0)
			break;
		if (!conn_flush(ac)) {
			conn_close(ac);
			return;
		}
		if (out_pending(ac) > 0)
			break;
	}
	if (out_pending(ac) == 0 && (ac->close_after || (ac->peer_done && !ac->busy)))
		conn_close(ac);
}

/* ---- who may connect ---- */

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
		return false;	/* ERANGE: more than 256 groups; not worth trusting */
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

/* One line, then close: for peers that may not stay. */
static void
refuse(int fd, int code, const char *why)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "ERR %d %s\n", code, why);

	send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static void
admit(struct control *ctl, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct admin_conn *ac;
	char peer[96];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_error("admin: cannot read the peer's credentials: %s", strerror(errno));
		refuse(fd, ADMIN_ERR_INTERNAL, "cannot tell who you are");
		return;
	}
	describe_peer(&cred, peer, sizeof(peer));
	if (cred.uid != 0 && cred.uid != geteuid() &&
	    !(ctl->has_group && peer_in_group(fd, &cred, ctl->admin_gid))) {
		log_warning("admin: refused %s: not root, chatd's user or in group %s", peer,
			    ctl->has_group ? ctl->group : "(admin_group unset)");
		refuse(fd, ADMIN_ERR_FORBIDDEN, "permission denied");
		return;
	}
	if (ctl->n_conns >= ADMIN_MAX_CONNS) {
		log_warning("admin: refused %s: %d admin connections already", peer, ADMIN_MAX_CONNS);
		refuse(fd, ADMIN_ERR_UNAVAILABLE, "too many admin connections; try again");
		return;
	}
	if ((ac = calloc(1, sizeof(*ac))) == NULL || linebuf_init(&ac->in, ADMIN_MAX_LINE) < 0) {
		free(ac);
		refuse(fd, ADMIN_ERR_INTERNAL, "out of memory");
		return;
	}
	ac->ctl = ctl;
	ac->fd = fd;
	ac->stream_fd = -1;
	ac->active_ms = time_mono_ms();
	snprintf(ac->peer, sizeof(ac->peer), "%s", peer);
	ac->next = ctl->conns;
	ctl->conns = ac;
	ctl->n_conns++;
	log_debug("admin: %s connected", peer);
}

static void
accept_all(struct control *ctl)
{
	for (;;) {
		int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warning("admin: accept: %s", strerror(errno));
			return;
		}
		admit(ctl, fd);
	}
}

/* ---- the socket file ---- */

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
		return errno == ENOENT ? 0 : (snprintf(err, errlen, "cannot check %s: %s", path,
						       strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; remove it or set admin_socket",
			 path);
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
		snprintf(err, errlen, "cannot remove the stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	log_notice("admin: replaced the stale socket %s", path);
	return 0;
}

static int
find_group(struct control *ctl, const char *name, char *err, size_t errlen)
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
	ctl->has_group = true;
	ctl->admin_gid = gr.gr_gid;
	snprintf(ctl->group, sizeof(ctl->group), "%s", name);
	return 0;
}

/* Binds path with mode 0660 from the start (umask), in admin_group. */
static int
bind_socket(struct control *ctl, const char *path, char *err, size_t errlen)
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
	ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->listen_fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0117);
	rc = bind(ctl->listen_fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create the admin socket %s: %s", path, strerror(errno));
		return -1;
	}
	if ((ctl->path = strdup(path)) == NULL || lstat(path, &st) < 0) {
		snprintf(err, errlen, "admin socket %s: %s", path, strerror(errno));
		return -1;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	if ((ctl->has_group && lchown(path, (uid_t)-1, ctl->admin_gid) < 0) ||
	    chmod(path, 0660) < 0) {
		snprintf(err, errlen, "cannot give the admin socket %s to group %s: %s", path,
			 ctl->group, strerror(errno));
		return -1;
	}
	if (listen(ctl->listen_fd, ADMIN_MAX_CONNS) < 0) {
		snprintf(err, errlen, "listen on %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Removes the socket file only if it is still the one chatd made. */
static void
remove_socket_file(struct control *ctl)
{
	struct stat st;

	if (ctl->path != NULL && lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino)
		unlink(ctl->path);
}

struct control *
control_open(struct server *srv, const struct settings *s, int activated_fd, char *err,
	     size_t errlen)
{
	struct control *ctl = calloc(1, sizeof(*ctl));

	if (ctl == NULL) {
		snprintf(err, errlen, "out of memory");
		if (activated_fd >= 0)
			close(activated_fd);
		return NULL;
	}
	ctl->srv = srv;
	ctl->listen_fd = activated_fd;
	pthread_mutex_init(&ctl->jobs_lock, NULL);
	if ((ctl->job_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (find_group(ctl, s->admin_group, err, errlen) < 0)
		goto fail;
	if (activated_fd >= 0) {
		fcntl(activated_fd, F_SETFL, fcntl(activated_fd, F_GETFL) | O_NONBLOCK);
		log_info("admin: serving the socket systemd passed");
	} else if (bind_socket(ctl, s->admin_socket, err, errlen) < 0) {
		goto fail;
	}
	return ctl;
fail:
	control_close(ctl);
	return NULL;
}

static void
reap_jobs(struct control *ctl)
{
	struct job *done;
	uint64_t n;

	if (read(ctl->job_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_error("admin: job wake-up: %s", strerror(errno));
	pthread_mutex_lock(&ctl->jobs_lock);
	done = ctl->finished;
	ctl->finished = NULL;
	pthread_mutex_unlock(&ctl->jobs_lock);
	while (done != NULL) {
		struct job *j = done;
		struct admin_conn *ac = j->ac;

		done = j->next;
		pthread_join(j->thread, NULL);
		ctl->jobs_running--;
		ac->job = NULL;
		ac->busy = false;
		if (ac->fd < 0) {
			j->done(NULL, j->arg);
			conn_free(ac);
		} else {
			j->done(ac, j->arg);
			conn_service(ac, 0);
		}
		free(j);
	}
}

void
control_close(struct control *ctl)
{
	if (ctl == NULL)
		return;
	while (ctl->jobs_running > 0) {
		struct pollfd pfd = { .fd = ctl->job_fd, .events = POLLIN };

		poll(&pfd, 1, -1);
		reap_jobs(ctl);
	}
	control_flush(ctl);
	while (ctl->conns != NULL)
		conn_close(ctl->conns);
	if (ctl->listen_fd >= 0)
		close(ctl->listen_fd);
	remove_socket_file(ctl);
	if (ctl->job_fd >= 0)
		close(ctl->job_fd);
	pthread_mutex_destroy(&ctl->jobs_lock);
	free(ctl->path);
	free(ctl);
}

/* ---- the control loop's part ---- */

size_t
control_pollfds(struct control *ctl, struct pollfd *pfd, size_t max, int *timeout_ms)
{
	int64_t now = time_mono_ms();
	size_t n = 0;

	*timeout_ms = -1;
	if (max < 2)
		return 0;
	pfd[n++] = (struct pollfd){ .fd = ctl->listen_fd, .events = POLLIN };
	pfd[n++] = (struct pollfd){ .fd = ctl->job_fd, .events = POLLIN };
	for (struct admin_conn *ac = ctl->conns; ac != NULL && n < max; ac = ac->next) {
		short events = 0;
		int64_t left = ac->active_ms + ADMIN_IDLE_MS - now;

		if (!ac->busy && !ac->peer_done && out_pending(ac) < ADMIN_OUT_HIGH)
			events |= POLLIN;
		if (out_pending(ac) > 0)
			events |= POLLOUT;
		ctl->polled[n] = ac;
		pfd[n++] = (struct pollfd){ .fd = ac->fd, .events = events };
		if (ac->busy || out_pending(ac) > 0)
			continue;	/* a job or a slow reader: not idle */
		if (left < 0)
			left = 0;
		if (*timeout_ms < 0 || left < *timeout_ms)
			*timeout_ms = (int)left;
	}
	return n;
}

void
control_dispatch(struct control *ctl, const struct pollfd *pfd, size_t n)
{
	int64_t now = time_mono_ms();

	for (size_t i = 2; i < n; i++) {
		struct admin_conn *ac = ctl->polled[i];

		if (pfd[i].revents) {
			conn_service(ac, pfd[i].revents);
		} else if (!ac->busy && out_pending(ac) == 0 &&
			   now - ac->active_ms >= ADMIN_IDLE_MS) {
			log_info("admin: closing %s: idle", ac->peer);
			conn_close(ac);
		}
	}
	if (pfd[1].revents & POLLIN)
		reap_jobs(ctl);
	if (pfd[0].revents & POLLIN)
		accept_all(ctl);
}

void
control_flush(struct control *ctl)
{
	for (struct admin_conn *ac = ctl->conns; ac != NULL; ac = ac->next)
		conn_flush(ac);
}
