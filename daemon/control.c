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
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "admin_proto.h"
#include "adminsock.h"
#include "config.h"
#include "control.h"
#include "escape.h"
#include "linebuf.h"
#include "log.h"
#include "timefmt.h"
#include "utf8.h"

#define ADMIN_MAX_CONNS 16
/* An admin connection that says nothing for this long is closed. */
#define ADMIN_IDLE_MS (10 * 60 * 1000)
/* Out of descriptors: no admin accept for this long (see struct control). */
#define ACCEPT_BACKOFF_MS 100
/* Above this much unsent output, no new request is read and no stream refilled. */
#define ADMIN_OUT_HIGH (256 * 1024)
/* Log lines longer than this are left out of "log show" (with a note). */
#define STREAM_MAX_LINE 65536

struct job {
	pthread_t thread;
	struct control *ctl;
	struct admin_conn *ac;
	void (*work)(void *arg);
	void (*done)(struct admin_conn *ac, void *arg);
	void *arg;
	struct job *next; /* on ctl->finished, under jobs_lock */
};

struct admin_conn {
	struct control *ctl;
	int fd; /* -1 once closed while a job still runs */
	char peer[96];
	struct linebuf in;
	char *out;
	size_t out_off, out_len, out_cap;
	bool busy;        /* the current reply is not complete */
	bool peer_done;   /* EOF: answer what was asked, then close */
	bool close_after; /* close once the output is written */
	struct job *job;
	int stream_fd; /* admin_stream_file(), or -1 */
	off_t stream_left;
	struct linebuf stream;
	char *stream_ok;
	int64_t active_ms;
	struct admin_conn *next;
};

struct control {
	struct server *srv;
	struct adminsock sock;
	struct admin_conn *conns;
	size_t n_conns;
	struct admin_conn *polled[CONTROL_POLLFDS_MAX];
	int job_fd;
	size_t jobs_running;
	pthread_mutex_t jobs_lock;
	struct job *finished;
	/*
	 * Out of descriptors, a pending admin connection keeps the socket
	 * readable: it is left out of poll() until then, or the loop spins.
	 */
	int64_t accept_resume_ms;
	int64_t fd_warned_ms;
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

static void __attribute__((format(printf, 3, 0)))
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
	n = space != NULL ? read(ac->stream_fd, space, avail) : -1;
	if (n <= 0) {
		if (n < 0)
			log_warning("admin: reading the log for %s: %s", ac->peer, strerror(errno));
		ac->stream_left = 0; /* truncated meanwhile (log clear) or unreadable */
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
			admin_data(ac, "[a line of more than %d bytes is left out]",
				   STREAM_MAX_LINE);
			continue;
		case LB_NONE:
			break;
		}
		if (stream_read(ac))
			continue;
		/* The file ends without a line end: its last line still counts. */
		if (!terminated && linebuf_pending(&ac->stream) > 0) {
			size_t avail;
			char *space = linebuf_space(&ac->stream, &avail);

			terminated = true;
			if (space != NULL) {
				*space = '\n';
				linebuf_commit(&ac->stream, 1);
				continue;
			}
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
	struct admin_conn *ac;
	char peer[96];

	switch (adminsock_check_peer(&ctl->sock, fd, peer, sizeof(peer))) {
	case PEER_ALLOWED:
		break;
	case PEER_UNKNOWN:
		log_error("admin: refused %s", peer);
		refuse(fd, ADMIN_ERR_INTERNAL, "cannot tell who you are");
		return;
	case PEER_DENIED:
		log_warning("admin: refused %s: not root, chatd's user or in group %s", peer,
			    ctl->sock.has_group ? ctl->sock.group : "(admin_group unset)");
		refuse(fd, ADMIN_ERR_FORBIDDEN, "permission denied");
		return;
	}
	if (ctl->n_conns >= ADMIN_MAX_CONNS) {
		log_warning("admin: refused %s: %d admin connections already", peer,
			    ADMIN_MAX_CONNS);
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
		int fd = accept4(ctl->sock.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				int64_t now = time_mono_ms();

				ctl->accept_resume_ms = now + ACCEPT_BACKOFF_MS;
				if (now - ctl->fd_warned_ms < 10000)
					return;
				ctl->fd_warned_ms = now;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warning("admin: accept: %s", strerror(errno));
			return;
		}
		admit(ctl, fd);
	}
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
	ctl->sock.fd = activated_fd;
	pthread_mutex_init(&ctl->jobs_lock, NULL);
	if ((ctl->job_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (adminsock_set_group(&ctl->sock, s->admin_group, err, errlen) < 0)
		goto fail;
	if (activated_fd >= 0) {
		fcntl(activated_fd, F_SETFL, fcntl(activated_fd, F_GETFL) | O_NONBLOCK);
		log_info("admin: serving the socket systemd passed");
	} else if (adminsock_bind(&ctl->sock, s->admin_socket, ADMIN_MAX_CONNS, err, errlen) < 0) {
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
	adminsock_close(&ctl->sock);
	if (ctl->job_fd >= 0)
		close(ctl->job_fd);
	pthread_mutex_destroy(&ctl->jobs_lock);
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
	if (now < ctl->accept_resume_ms) {
		pfd[n++] = (struct pollfd){ .fd = -1 };
		*timeout_ms = (int)(ctl->accept_resume_ms - now);
	} else {
		pfd[n++] = (struct pollfd){ .fd = ctl->sock.fd, .events = POLLIN };
	}
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
			continue; /* a job or a slow reader: not idle */
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
