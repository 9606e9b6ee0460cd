/*
 * server.c - the control thread: start-up, signals, reload, shutdown.
 *
 * The main thread blocks every signal before it creates the first thread,
 * so all threads inherit the mask and signals reach chatd only through the
 * control thread's signalfd: no handler ever runs in the middle of a
 * client's work.  SIGPIPE is ignored; writes to a vanished peer fail with
 * EPIPE instead.
 *
 * Start-up order matters (docs/ARCHITECTURE.md): every path chatd writes
 * is checked before anything is created (safefile.h); the state lock and
 * the locks of the history, identification and rooms files come before the port
 * (a second chatd must not touch our files, nor take a port before it
 * fails); root is dropped before the log and the stores are opened; the
 * listening line is printed only when clients can connect.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "activation.h"
#include "config.h"
#include "control.h"
#include "daemonize.h"
#include "fault.h"
#include "history.h"
#include "ident.h"
#include "listener.h"
#include "log.h"
#include "lograte.h"
#include "notify.h"
#include "password.h"
#include "resume.h"
#include "peers.h"
#include "privdrop.h"
#include "room.h"
#include "wire.h"
#include "safefile.h"
#include "server.h"
#include "statelock.h"
#include "threadcache.h"
#include "timefmt.h"
#include "tls.h"
#include "version.h"

/* How long clients get to receive their BYE at shutdown (docs: chatd(8)). */
#define SHUTDOWN_GRACE_MS 3000
/* At shutdown, a room lock not free within this is stuck. */
#define STUCK_ROOM_MS 1000
/* Descriptors per client (its socket) and those chatd needs besides. */
#define FDS_PER_CLIENT 1
#define FDS_RESERVED 64

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "chatd: %s\n", msg);
	log_error("%s", msg);
}

/* mkdir -p with mode 0750 for each missing component; what it creates goes to chatd's user. */
static int
make_dirs(const char *path, const struct privdrop *pd)
{
	char buf[4096], err[1024];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		fail("cannot create %s: %s", path, strerror(ENAMETOOLONG));
		return -1;
	}
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(buf, 0750) == 0) {
			if (privdrop_chown(pd, buf, err, sizeof(err)) < 0) {
				fail("%s", err);
				return -1;
			}
		} else if (errno != EEXIST) {
			fail("cannot create %s: %s", buf, strerror(errno));
			return -1;
		}
		*p = saved;
		if (saved == '\0')
			return 0;
	}
}

static int
make_parent_dir(const char *file, const struct privdrop *pd)
{
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", file);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	return make_dirs(dir, pd);
}

/*
 * Before anything is created: no path chatd writes may lead through a
 * directory or link others could change, nor end in a link (safefile.h).
 */
static int
check_paths(const struct settings *s)
{
	const char *dirs[] = { s->state_dir, s->runtime_dir };
	const char *files[] = { s->history_file, s->ident_file, s->rooms_file, s->log_file };
	char err[1024], sockdir[4096], *slash;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (safefile_check_dir(dirs[i], err, sizeof(err)) < 0) {
			fail("%s", err);
			return -1;
		}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (safefile_check_file(files[i], files[i] == s->log_file ? SAFEFILE_DEVICE_OK : 0,
					err, sizeof(err)) < 0) {
			fail("%s", err);
			return -1;
		}
	snprintf(sockdir, sizeof(sockdir), "%s", s->admin_socket);
	if ((slash = strrchr(sockdir, '/')) != NULL) {
		slash[slash == sockdir] = '\0';
		if (safefile_check_dir(sockdir, err, sizeof(err)) < 0) {
			fail("%s", err);
			return -1;
		}
	}
	return 0;
}

/*
 * Root creates the log file for the user it will become (the log's
 * directory, /var/log say, may be root's); the log is opened for writing
 * only after the drop.
 */
static int
prepare_log(const struct settings *s, const struct privdrop *pd)
{
	char err[1024];
	int fd;

	if (!pd->active)
		return 0;
	fd = safefile_open(s->log_file, O_WRONLY | O_APPEND | O_CREAT, 0640, SAFEFILE_DEVICE_OK,
			   err, sizeof(err));
	if (fd < 0 || privdrop_fchown(pd, fd, s->log_file, err, sizeof(err)) < 0) {
		fail("cannot create the log file: %s", err);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Creates what is missing.  When root is to be dropped, chatd's own
 * directories and files go to the user it will run as (never a parent
 * such as /var/log: only what chatd's settings name).  Each path is
 * checked again once its directories exist, before anything is given
 * away or opened: check_paths() passed a part that did not exist yet,
 * and in a sticky directory such as /tmp someone else may have made it
 * since (mkdir() then finds theirs).
 */
static int
prepare_dirs(const struct settings *s, const struct privdrop *pd)
{
	const char *dirs[] = { s->state_dir, s->runtime_dir };
	const char *files[] = { s->history_file, s->ident_file, s->rooms_file, s->log_file };
	char err[1024];

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (make_dirs(dirs[i], pd) < 0)
			return -1;
		if (safefile_check_dir(dirs[i], err, sizeof(err)) < 0 ||
		    privdrop_chown(pd, dirs[i], err, sizeof(err)) < 0) {
			fail("%s", err);
			return -1;
		}
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (make_parent_dir(files[i], pd) < 0)
			return -1;
		if (safefile_check_file(files[i], files[i] == s->log_file ? SAFEFILE_DEVICE_OK : 0,
					err, sizeof(err)) < 0 ||
		    (files[i] != s->log_file &&
		     privdrop_chown(pd, files[i], err, sizeof(err)) < 0)) {
			fail("%s", err);
			return -1;
		}
	}
	return prepare_log(s, pd);
}

#define LOCKED_FILES 3

/*
 * One chatd per history, identification and rooms file, whatever its
 * state_dir: a lock on FILE.lock, which the renames that replace FILE
 * leave alone.  fds[] holds them until exit.
 */
static int
lock_files(const struct settings *s, const struct privdrop *pd, int fds[LOCKED_FILES])
{
	const char *files[LOCKED_FILES] = { s->history_file, s->ident_file, s->rooms_file };
	char err[1024], lockfile[4096];

	for (size_t i = 0; i < LOCKED_FILES; i++) {
		snprintf(lockfile, sizeof(lockfile), "%s.lock", files[i]);
		if ((fds[i] = safefile_lock(files[i], err, sizeof(err))) < 0 ||
		    privdrop_fchown(pd, fds[i], lockfile, err, sizeof(err)) < 0) {
			fail("%s", err);
			return -1;
		}
	}
	return 0;
}

/* After the drop: files chatd rewrites (temp file + rename) need a writable directory. */
static int
check_writable_dirs(const struct settings *s)
{
	const char *files[] = { s->history_file, s->ident_file, s->rooms_file };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char dir[4096], *slash;

		snprintf(dir, sizeof(dir), "%s", files[i]);
		if ((slash = strrchr(dir, '/')) != NULL)
			slash[slash == dir] = '\0';
		if (access(dir, W_OK) < 0) {
			fail("cannot write in %s, the directory of %s: %s", dir, files[i],
			     strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int
drop_root(const struct settings *s, const struct privdrop *pd)
{
	char err[1024];

	if (!pd->active)
		return 0;
	if (privdrop_apply(pd, err, sizeof(err)) < 0) {
		fail("%s", err);
		return -1;
	}
	return check_writable_dirs(s);
}

/*
 * Every client costs FDS_PER_CLIENT descriptors; the soft limit is raised
 * to the hard one, and as root the hard one too when max_clients and
 * max_logins need it.
 */
static void
raise_fd_limit(const struct settings *s)
{
	struct rlimit rl;
	/* Users logged in and connections logging in; FDS_RESERVED covers the listener's reserve. */
	rlim_t need =
		((rlim_t)s->max_clients + (rlim_t)s->max_logins) * FDS_PER_CLIENT + FDS_RESERVED;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max < need) {
		struct rlimit more = { need, need };

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			rl = more;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_info("open file limit raised to %llu", (unsigned long long)rl.rlim_cur);
	}
	if (rl.rlim_cur < need)
		log_warning("max_clients + max_logins %d need %llu open files but the limit is "
			    "%llu: expect refusals above about %llu clients",
			    s->max_clients + s->max_logins, (unsigned long long)need,
			    (unsigned long long)rl.rlim_cur,
			    (unsigned long long)((rl.rlim_cur - FDS_RESERVED) / FDS_PER_CLIENT));
}

static int
block_signals(void)
{
	static const int fatal[] = { SIGABRT, SIGQUIT, SIGSEGV, SIGBUS,
				     SIGFPE,  SIGILL,  SIGTRAP, SIGSYS };
	sigset_t all, wanted;

	signal(SIGPIPE, SIG_IGN);
	sigfillset(&all);
	/*
	 * Except the signals that must kill: SIGABRT is how systemd's watchdog
	 * ends a hung chatd, SIGQUIT asks for a core dump, and the faults the
	 * CPU raises cannot be deferred anyway.
	 */
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		sigdelset(&all, fatal[i]);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	sigemptyset(&wanted);
	sigaddset(&wanted, SIGTERM);
	sigaddset(&wanted, SIGINT);
	sigaddset(&wanted, SIGHUP);
	return signalfd(-1, &wanted, SFD_CLOEXEC | SFD_NONBLOCK);
}

/*
 * SIGHUP reads the certificate and key again (a renewal): new handshakes
 * get the new pair, connections already open keep theirs, and a pair that
 * does not load leaves the old one serving.  The TLS listener itself
 * starts and stops only with chatd.
 */
static void
reload_tls(const struct settings *s)
{
	char err[1024];

	if (!tls_ready()) {
		if (s->tls_cert[0])
			log_warning("reload: tls_cert is set, but the TLS listener starts only "
				    "at a restart");
		return;
	}
	if (s->tls_cert[0] == '\0') {
		log_warning("reload: tls_cert is unset; TLS goes on with the certificate "
			    "loaded until a restart");
		return;
	}
	if (tls_load(s, err, sizeof(err)) < 0) {
		log_error("reload: keeping the TLS certificate loaded before: %s", err);
		return;
	}
	tls_describe(err, sizeof(err));
	log_notice("TLS certificate loaded: %s", err);
	tls_check_expiry(time_now_ms() / 1000);
}

#define ROOM_WAKE_WAIT_MS 10

/* SIGHUP: reopen the log, then take what may change of a fresh config. */
static void
reload(struct server *srv)
{
	const struct settings *cur = settings_get();
	struct settings *s = calloc(1, sizeof(*s));
	char err[1024], fixed[512];

	if (log_reopen() < 0)
		log_error("cannot reopen %s: %s", log_path(), strerror(errno));
	if (s == NULL)
		return;
	if (settings_reload(cur, s, fixed, sizeof(fixed), err, sizeof(err)) < 0) {
		log_error("reload failed, keeping the running settings: %s", err);
		settings_free(s);
		free(s);
		return;
	}
	if (fixed[0])
		log_warning("reload: %s changed; that takes a restart", fixed);
	log_set_level(s->log_level);
	settings_publish(s);
	reload_tls(s);
	/* Sessions that tell their clients of changed settings (IRC cap-notify) do it at once;
	 * with the room lock busy, at their next command. */
	(void)room_wake_all_within(srv->hub, ROOM_WAKE_WAIT_MS);
	log_notice("reloaded %s", s->config_file);
}

static void
handle_signals(struct server *srv, int sigfd)
{
	struct signalfd_siginfo si;

	while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			notify_reloading();
			reload(srv);
			notify_ready(srv);
			continue;
		}
		log_notice("stopping on signal %s", strsignal((int)si.ssi_signo));
		srv->stop_requested = true;
	}
}

static int
earliest(int a, int b)
{
	return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/*
 * Rooms made by users that stayed empty past room_expiry go, checked
 * every ROOM_EXPIRY_CHECK_MS (or sooner for a short room_expiry), and a
 * save of the rooms file that a busy room lock put off is made, with the
 * room lock taken only if free within ROOM_EXPIRY_WAIT_MS: a busy room
 * lock makes both wait for the next tick.  Returns the poll
 * timeout until the next check.
 */
#define ROOM_EXPIRY_CHECK_MS 60000
#define ROOM_EXPIRY_WAIT_MS 10
static int
rooms_tick(struct server *srv)
{
	static int64_t next, last_every;
	int64_t now = time_mono_ms();
	int expiry = settings_get()->room_expiry;
	int64_t every = expiry > 0 && expiry * 250LL < ROOM_EXPIRY_CHECK_MS ? expiry * 250LL
									    : ROOM_EXPIRY_CHECK_MS;

	/* A reload that turned expiry on or shortened it: check by the new pace. */
	if (every != last_every && next > now + every)
		next = now + every;
	last_every = every;
	if (now >= next) {
		if (expiry > 0)
			room_expire_within(srv->hub, ROOM_EXPIRY_WAIT_MS);
		/* A save a busy room lock put off. */
		room_save_within(srv->hub, ROOM_EXPIRY_WAIT_MS);
		next = now + every;
	}
	return (int)(next - now);
}

/* The certificate's expiry is checked hourly (tls_check_expiry warns daily). */
#define TLS_EXPIRY_CHECK_MS 3600000
static int
tls_tick(void)
{
	static int64_t next;
	int64_t now = time_mono_ms();

	if (now >= next) {
		tls_check_expiry(time_now_ms() / 1000);
		next = now + TLS_EXPIRY_CHECK_MS;
	}
	return (int)(next - now);
}

/*
 * The control thread's loop: signals, the admin socket and systemd's
 * watchdog.  Returns on SIGTERM, SIGINT or "stop", once the admin replies
 * are on their way.
 */
static void
control_loop(struct server *srv, int sigfd)
{
	while (!srv->stop_requested) {
		struct pollfd pfd[1 + CONTROL_POLLFDS_MAX];
		int timeout;
		size_t n = 1;

		pfd[0] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
		n += control_pollfds(srv->control, pfd + 1, CONTROL_POLLFDS_MAX, &timeout);
		timeout = earliest(timeout, notify_tick(srv));
		timeout = earliest(timeout, rooms_tick(srv));
		timeout = earliest(timeout, tls_tick());
		/* Summaries of log lines held back (lograte.h), even once a flood stopped. */
		timeout = earliest(timeout, log_rate_tick(time_mono_ms()));
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error("control: poll: %s", strerror(errno));
			return;
		}
		control_dispatch(srv->control, pfd + 1, n - 1);
		if (pfd[0].revents & POLLIN)
			handle_signals(srv, sigfd);
	}
	control_flush(srv->control);
}

/*
 * The identification file is mode 0600 from the start, not only from its
 * first change, and is refused if it is a link or not chatd's (safefile.h);
 * ident_open() then reads it.  A missing file is an empty store.
 */
static int
prepare_ident(const char *path)
{
	char err[1024];
	int fd = safefile_open(path, O_RDONLY, 0600, SAFEFILE_SETMODE, err, sizeof(err));

	if (fd < 0 && errno != ENOENT) {
		fail("%s", err);
		return -1;
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

/* The resume tokens (resume.c) live in state_dir, under its lock. */
static int
open_resume(const struct settings *s)
{
	char path[4096], err[1024];

	snprintf(path, sizeof(path), "%s/%s", s->state_dir, RESUME_FILE);
	if (resume_open(path, time_now_ms(), err, sizeof(err)) < 0) {
		fail("%s", err);
		return -1;
	}
	return 0;
}

static int
open_stores(struct server *srv, const struct settings *s)
{
	char err[1024];
	struct history_stats st;
	struct history_config hc = {
		.path = s->history_file,
		.memory = (size_t)s->history_memory,
		.max_size = s->history_max_size,
		.sync_ms = s->history_sync_ms,
		.default_room = s->default_room,
	};

	if (password_gate_init(s->hash_concurrency) < 0) {
		fail("cannot set up password hashing: %s", strerror(errno));
		return -1;
	}
	if (prepare_ident(s->ident_file) < 0)
		return -1;
	if ((srv->ident = ident_open(s->ident_file, err, sizeof(err))) == NULL) {
		fail("%s", err);
		return -1;
	}
	if (open_resume(s) < 0)
		return -1;
	if ((srv->hub = hub_new(wire_formats)) == NULL) {
		fail("out of memory");
		return -1;
	}
	if (hub_load_rooms(srv->hub, s->rooms_file, err, sizeof(err)) < 0) {
		fail("%s", err);
		return -1;
	}
	if ((srv->history = history_open(&hc, room_publish_history, srv->hub, err, sizeof(err))) ==
	    NULL) {
		fail("%s", err);
		return -1;
	}
	history_get_stats(srv->history, &st);
	room_set_last_msg_id(srv->hub, st.last_id);
	hub_set_history(srv->hub, srv->history);
	return 0;
}

static void
close_stores(struct server *srv)
{
	if (srv->history)
		history_close(srv->history);
	if (srv->ident)
		ident_close(srv->ident);
	hub_free(srv->hub);
	resume_close();
	password_gate_destroy();
}

/*
 * Everyone gets BYE; the history is synced by history_close().  False if
 * some client thread is still running: then nothing may be freed.
 */
static bool
stop_clients(struct server *srv)
{
	size_t n = room_connections(srv->hub);

	room_shutdown(srv->hub);
	if (room_wait_empty(srv->hub, time_mono_ms() + SHUTDOWN_GRACE_MS)) {
		room_save_within(srv->hub, SHUTDOWN_GRACE_MS); /* one put off */
		/* Every client thread frees its OpenSSL state before exit() cleans up OpenSSL. */
		if (!thread_cache_close(time_mono_ms() + SHUTDOWN_GRACE_MS)) {
			log_warning("client threads did not end in time");
			return false;
		}
		return true;
	}
	log_warning("%zu of %zu clients did not leave in time", room_connections(srv->hub), n);
	return false;
}

/*
 * A stuck room lock (a deadlock, a hung publisher) would hang every step
 * below: the listener's join, the clients' goodbyes, the history's commit
 * thread.  Then chatd leaves at once, exit status 1, rather than making the
 * service manager wait for its kill timeout.
 */
static void
exit_if_room_stuck(struct server *srv)
{
	if (srv->hub == NULL || room_lock_probe(srv->hub, STUCK_ROOM_MS))
		return;
	log_error("the room lock is stuck (not free within %d ms): exiting without waiting "
		  "for clients or the history",
		  STUCK_ROOM_MS);
	daemonize_finish();
	_exit(1);
}

/* The admin socket comes first: a second chatd must not take a port before it fails. */
static int
open_control(struct server *srv, const struct settings *s, const struct activation *act)
{
	char err[1024];

	if ((srv->control = control_open(srv, s, act->admin, err, sizeof(err))) == NULL) {
		fail("%s", err);
		return -1;
	}
	return 0;
}

/* Binding comes before root is dropped (a port below 1024); accepting after the stores open. */
static int
open_listener(struct server *srv, const struct settings *s, const struct activation *act)
{
	char err[1024];

	if ((srv->listener = listener_open(s, act, err, sizeof(err))) == NULL) {
		fail("%s", err);
		return -1;
	}
	srv->tls_port = listener_tls_port(srv->listener, false);
	srv->irc_tls_port = listener_tls_port(srv->listener, true);
	return 0;
}

static int
start_listening(struct server *srv)
{
	char where[512];

	if (listener_start(srv->listener, srv) < 0) {
		fail("cannot start the listener thread: %s", strerror(errno));
		return -1;
	}
	listener_describe(srv->listener, where, sizeof(where));
	log_notice("chatd %s listening on %s", CHATD_VERSION, where);
	printf("chatd: listening on %s\n", where);
	fflush(stdout);
	notify_ready(srv);
	daemonize_ready();
	return 0;
}

/*
 * After root is dropped: the certificate and key are read as the user chatd
 * runs as, at start as on every reload (a key it cannot read fails now, not
 * at the first renewal).
 */
static int
open_tls(const struct settings *s)
{
	char err[1024];

	if (s->tls_cert[0] == '\0')
		return 0;
	if (tls_load(s, err, sizeof(err)) < 0) {
		fail("%s", err);
		return -1;
	}
	tls_describe(err, sizeof(err));
	log_notice("TLS certificate loaded: %s", err);
	tls_check_expiry(time_now_ms() / 1000);
	return 0;
}

/* Systemd's documented test: stderr is the journal if it is the stream $JOURNAL_STREAM names. */
static bool
stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
	       fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

/* After root is dropped: the log is opened as the user chatd runs as. */
static int
open_log(const struct settings *s)
{
	if (log_open(s->log_file) < 0) {
		fail("cannot open the log file %s: %s", s->log_file, strerror(errno));
		return -1;
	}
	return 0;
}

static int
write_pidfile(const struct settings *s)
{
	char path[4096], err[1024];

	snprintf(path, sizeof(path), "%s/chatd.pid", s->runtime_dir);
	if (daemonize_pidfile(path, err, sizeof(err)) < 0) {
		fail("%s", err);
		return -1;
	}
	return 0;
}

static int
load_settings(const char *path)
{
	struct settings *s = calloc(1, sizeof(*s));
	char err[1024];

	if (s == NULL || settings_load(path, s, err, sizeof(err)) < 0) {
		fprintf(stderr, "chatd: %s\n", s ? err : "out of memory");
		if (s)
			settings_free(s);
		free(s);
		return -1;
	}
	settings_publish(s);
	return 0;
}

int
server_run(const struct server_options *opt)
{
	struct server srv = { .started_ms = time_now_ms() };
	struct activation act;
	struct privdrop pd;
	int sigfd = -1, lockfd = -1, filelocks[LOCKED_FILES] = { -1, -1, -1 }, rc = 1;
	char err[1024], lockfile[4096];

	if (load_settings(opt->config_file) < 0)
		return 1;
	const struct settings *s = settings_get();
	log_set_level(s->log_level);
	log_set_stderr(stderr_is_journal(), true);
	/* Lines logged before the log file opens wait for it (errors go to stderr: fail()). */
	log_hold();
	/* The fork comes before the first thread, and before the signalfd. */
	if (privdrop_prepare(s, &pd, err, sizeof(err)) < 0 ||
	    (opt->daemonize && daemonize_start(err, sizeof(err)) < 0)) {
		fail("%s", err);
		goto out;
	}
	if (pd.active)
		safefile_trust(pd.uid, pd.gid);
	if ((sigfd = block_signals()) < 0) {
		fail("signalfd: %s", strerror(errno));
		goto out;
	}
	if (fault_init(err, sizeof(err)) < 0) {
		fail("%s", err);
		goto out;
	}
	if (check_paths(s) < 0)
		goto out;
	if (fault_active(FAULT_PATHS_CHECKED_STOP))
		raise(SIGSTOP);
	if (prepare_dirs(s, &pd) < 0)
		goto out;
	if ((lockfd = statelock_acquire(s->state_dir, err, sizeof(err))) < 0) {
		fail("%s", err);
		goto out;
	}
	snprintf(lockfile, sizeof(lockfile), "%s/chatd.lock", s->state_dir);
	if (privdrop_chown(&pd, lockfile, err, sizeof(err)) < 0) {
		fail("%s", err);
		goto out;
	}
	if (lock_files(s, &pd, filelocks) < 0)
		goto out;
	if (opt->daemonize && write_pidfile(s) < 0)
		goto out;
	log_notice("chatd %s starting, config %s", CHATD_VERSION, s->config_file);
	notify_init();
	raise_fd_limit(s);
	/* Before any thread starts: it unsets $LISTEN_FDS. */
	activation_take(&act);
	if (open_control(&srv, s, &act) < 0 || open_listener(&srv, s, &act) < 0 ||
	    drop_root(s, &pd) < 0 || open_log(s) < 0 || open_tls(s) < 0 ||
	    open_stores(&srv, s) < 0 || start_listening(&srv) < 0)
		goto stop;

	control_loop(&srv, sigfd);
	rc = 0;
stop:
	notify_stopping();
	control_close(srv.control);
	exit_if_room_stuck(&srv);
	listener_close(srv.listener);
	if (srv.hub && !stop_clients(&srv)) {
		/* Threads still use the stores: sync what is stored, leave the rest to exit(). */
		history_close(srv.history);
		log_rate_flush(time_mono_ms());
		log_notice("chatd stopped");
		daemonize_finish();
		_exit(rc);
	}
	close_stores(&srv);
	peers_reset();
	tls_close();
	log_rate_flush(time_mono_ms());
	log_notice("chatd stopped");
out:
	daemonize_finish();
	log_close();
	for (size_t i = 0; i < LOCKED_FILES; i++)
		if (filelocks[i] >= 0)
			close(filelocks[i]);
	if (lockfd >= 0)
		close(lockfd);
	if (sigfd >= 0)
		close(sigfd);
	settings_release_all();
	return rc;
}
