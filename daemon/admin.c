/*
 * admin.c - the admin commands: one handler for each entry of the shared
 * table in common/admin_proto.c, in the same order.
 *
 * Handlers run in the control thread and must not block on anything slow:
 * the log is streamed (admin_stream_file), passwords are hashed in a
 * worker (admin_run_job), and the room lock is taken only with a timeout
 * (ADMIN_ROOM_WAIT_MS; then "ERR 503 the room is busy"), so a stuck room
 * cannot take the admin socket, the signals and the watchdog with it.
 * The stores are the exception: user del and ident clear write the
 * identification file on this thread, the commands that read its table
 * wait for the ident lock while a batch syncs, and a revocation of resume
 * tokens (user add, user passwd, user del, ident clear) is synced here
 * (docs/ARCHITECTURE.md, the locks).
 * Every change an admin makes is logged with who made it; a password
 * never is.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "history.h"
#include "ident.h"
#include "listener.h"
#include "tls.h"
#include "log.h"
#include "names.h"
#include "notify.h"
#include "password.h"
#include "peers.h"
#include "resume.h"
#include "room.h"
#include "server.h"
#include "threadcache.h"
#include "timefmt.h"
#include "utf8.h"
#include "version.h"

/* How long an admin command waits for the room lock. */
#define ADMIN_ROOM_WAIT_MS 250

typedef void admin_handler(struct admin_conn *ac, const struct admin_request *req);

static void
admin_cmd_help(struct admin_conn *ac, const struct admin_request *req)
{
	for (size_t i = 0; i < ADMIN_CMD_COUNT; i++) {
		char usage[128];

		admin_usage(&admin_commands[i], true, usage, sizeof(usage));
		admin_data(ac, "%-28s  %s", usage, admin_commands[i].help);
	}
	admin_ok(ac, "%d commands", ADMIN_CMD_COUNT);
}

static void
format_uptime(char *buf, size_t len, int64_t ms)
{
	int64_t s = ms / 1000;

	snprintf(buf, len, "%lldd %02lld:%02lld:%02lld", (long long)(s / 86400),
		 (long long)(s / 3600 % 24), (long long)(s / 60 % 60), (long long)(s % 60));
}

/* status's "rooms" line: how many exist, against max_rooms (counted, not copied: a million may). */
static void
status_rooms(struct admin_conn *ac, struct server *srv)
{
	size_t n;

	if (rooms_count_within(srv->hub, ADMIN_ROOM_WAIT_MS, &n) < 0) {
		admin_data(ac, "rooms: unknown: the room lock was not free within %d ms",
			   ADMIN_ROOM_WAIT_MS);
		return;
	}
	admin_data(ac, "rooms: %zu (max_rooms %d)", n, settings_get()->max_rooms);
}

/* The certificate new TLS handshakes get, and when it expires. */
static void
status_tls(struct admin_conn *ac)
{
	char what[512];

	tls_describe(what, sizeof(what));
	if (what[0])
		admin_data(ac, "tls: subject: %s", what);
}

static void
admin_cmd_status(struct admin_conn *ac, const struct admin_request *req)
{
	struct server *srv = admin_server(ac);
	struct history_stats st;
	char uptime[64], since[TIME_RFC3339_LEN + 1], where[512];

	history_get_stats(srv->history, &st);
	format_uptime(uptime, sizeof(uptime), time_now_ms() - srv->started_ms);
	time_format_ms(since, srv->started_ms);
	listener_describe(srv->listener, where, sizeof(where));
	admin_data(ac, "version: %s", CHATD_VERSION);
	admin_data(ac, "pid: %d", (int)getpid());
	admin_data(ac, "uptime: %s (since %s)", uptime, since);
	if (listener_paused(srv->listener))
		admin_data(ac, "listening: paused (%s)", where);
	else
		admin_data(ac, "listening: %s", where);
	status_tls(ac);
	size_t online, connected, irc;
	if (room_irc_counts_within(srv->hub, ADMIN_ROOM_WAIT_MS, &online, &connected, &irc) != 0)
		admin_data(ac, "clients: unknown: the room lock was not free within %d ms",
			   ADMIN_ROOM_WAIT_MS);
	else if (settings_get()->irc)
		admin_data(ac, "clients: %zu online, %zu connected, %zu of them on IRC", online,
			   connected, irc);
	else
		admin_data(ac, "clients: %zu online, %zu connected", online, connected);
	admin_data(ac, "spare threads: %zu (at most %d, each for %d s)", thread_cache_waiting(),
		   THREAD_CACHE_MAX, THREAD_CACHE_IDLE_MS / 1000);
	status_rooms(ac, srv);
	size_t logged_in, logging_in;
	peers_counts(&logged_in, &logging_in);
	admin_data(ac, "logins: %zu in progress (max_logins %d)", logging_in,
		   settings_get()->max_logins);
	admin_data(ac, "messages: %llu since start, %llu refused", (unsigned long long)st.appended,
		   (unsigned long long)st.failed);
	admin_data(ac, "history: last id %llu, %lld bytes, %zu in memory",
		   (unsigned long long)st.last_id, (long long)st.file_size, st.in_memory);
	admin_data(ac, "registered users: %zu", ident_count(srv->ident));
	admin_data(ac, "resume tokens: %zu", resume_count());
	/* Lines lost to a full disk can only be reported here, not in the log. */
	admin_data(ac, "log: %s, %lu lines could not be written", log_path() ? log_path() : "-",
		   log_write_errors());
	admin_data(ac, "config: %s", settings_get()->config_file);
	admin_ok(ac, "%s", listener_paused(srv->listener) ? "paused" : "running");
}

/* ERR 413 for a topic past room_topic_limit(): max_topic, and never more than max_line. */
static void
topic_limit_err(struct admin_conn *ac)
{
	const struct settings *s = settings_get();

	admin_err(ac, ADMIN_ERR_TOO_LONG,
		  "a topic is at most %zu bytes: max_topic (%d), never more than max_line (%d)",
		  room_topic_limit(), s->max_topic, s->max_line);
}

/* The reply when a room_*_within() call failed (-1, errno as room.h says). */
static void
reply_room_failed(struct admin_conn *ac)
{
	const struct settings *s = settings_get();

	switch (errno) {
	case ETIMEDOUT:
		admin_err(ac, ADMIN_ERR_UNAVAILABLE,
			  "the room is busy (its lock was not free within %d ms); try again",
			  ADMIN_ROOM_WAIT_MS);
		break;
	case ENOSPC:
		admin_err(ac, ADMIN_ERR_LIMIT, "there are max_rooms (%d) rooms already",
			  s->max_rooms);
		break;
	case EMSGSIZE:
		topic_limit_err(ac);
		break;
	case EPERM:
		admin_err(ac, ADMIN_ERR_CONFLICT,
			  "%s is the default room (default_room): it cannot be deleted",
			  s->default_room);
		break;
	case EINVAL:
		admin_err(ac, ADMIN_ERR_BAD_REQUEST, "not a valid room name");
		break;
	case ENOMEM:
		admin_err(ac, ADMIN_ERR_INTERNAL, "out of memory");
		break;
	default:
		admin_err(ac, ADMIN_ERR_INTERNAL, "%s", strerror(errno));
	}
}

static void
admin_cmd_users(struct admin_conn *ac, const struct admin_request *req)
{
	struct room_member_info *m;
	size_t n;

	if (room_members_snapshot_within(admin_server(ac)->hub, ADMIN_ROOM_WAIT_MS, &m, &n) < 0) {
		reply_room_failed(ac);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char since[TIME_RFC3339_LEN + 1];

		time_format_ms(since, m[i].joined_ms);
		admin_data(ac, "%s %s %s %s%s%s", m[i].name, m[i].addr, since, m[i].protocol,
			   m[i].tls ? "+tls" : "", m[i].guest ? " guest" : "");
	}
	free(m);
	admin_ok(ac, "%zu online", n);
}

static void
admin_cmd_stop(struct admin_conn *ac, const struct admin_request *req)
{
	log_notice("stop requested by %s", admin_peer(ac));
	admin_server(ac)->stop_requested = true;
	admin_ok(ac, "stopping");
}

static void
admin_cmd_pause(struct admin_conn *ac, const struct admin_request *req)
{
	struct server *srv = admin_server(ac);
	int rc;

	/* Stopping the listener thread waits for it, and it may wait for the room. */
	if (!room_lock_probe(srv->hub, ADMIN_ROOM_WAIT_MS)) {
		errno = ETIMEDOUT;
		reply_room_failed(ac);
		return;
	}
	if ((rc = listener_pause(srv->listener)) < 0) {
		admin_err(ac, ADMIN_ERR_UNAVAILABLE,
			  "the listener thread does not stop; not paused");
		return;
	}
	if (rc == 1) {
		admin_ok(ac, "already paused");
		return;
	}
	log_notice("paused by %s: new clients are refused", admin_peer(ac));
	notify_status(srv);
	admin_ok(ac, "paused");
}

static void
admin_cmd_resume(struct admin_conn *ac, const struct admin_request *req)
{
	struct server *srv = admin_server(ac);
	char err[512], where[512];
	int rc;

	if (!room_lock_probe(srv->hub, ADMIN_ROOM_WAIT_MS)) {
		errno = ETIMEDOUT;
		reply_room_failed(ac);
		return;
	}
	if ((rc = listener_resume(srv->listener, err, sizeof(err))) < 0) {
		log_error("resume by %s failed: %s", admin_peer(ac), err);
		admin_err(ac, ADMIN_ERR_UNAVAILABLE, "%s", err);
		return;
	}
	listener_describe(srv->listener, where, sizeof(where));
	if (rc == 1) {
		admin_ok(ac, "already listening on %s", where);
		return;
	}
	log_notice("resumed by %s: listening on %s", admin_peer(ac), where);
	notify_status(srv);
	admin_ok(ac, "listening on %s", where);
}

/* Where the last n lines of the file begin (a final line end ends, not starts, a line). */
static off_t
tail_offset(int fd, off_t size, long n)
{
	char buf[65536];
	off_t pos = size;
	long seen = 0;

	while (pos > 0) {
		size_t chunk = pos < (off_t)sizeof(buf) ? (size_t)pos : sizeof(buf);

		pos -= (off_t)chunk;
		if (pread(fd, buf, chunk, pos) != (ssize_t)chunk)
			return 0;
		for (size_t i = chunk; i-- > 0;)
			if (buf[i] == '\n' && pos + (off_t)i != size - 1 && ++seen == n)
				return pos + (off_t)i + 1;
	}
	return 0;
}

static void
admin_cmd_log_show(struct admin_conn *ac, const struct admin_request *req)
{
	const char *path = log_path();
	int fd = path != NULL ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		admin_err(ac, ADMIN_ERR_INTERNAL, "cannot read the log %s: %s",
			  path ? path : "(none)", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	admin_stream_file(ac, fd, req->count > 0 ? tail_offset(fd, st.st_size, req->count) : 0,
			  path);
}

static void
admin_cmd_log_clear(struct admin_conn *ac, const struct admin_request *req)
{
	if (log_truncate() < 0) {
		admin_err(ac, ADMIN_ERR_INTERNAL, "cannot clear the log %s: %s", log_path(),
			  strerror(errno));
		return;
	}
	/* The first line of the emptied log says who emptied it. */
	log_notice("log cleared by %s", admin_peer(ac));
	admin_ok(ac, "log cleared");
}

static void
admin_cmd_ident_clear(struct admin_conn *ac, const struct admin_request *req)
{
	struct ident *id = admin_server(ac)->ident;
	size_t n = ident_count(id);
	enum ident_result r;

	if (!settings_get()->registration && !req->force) {
		admin_err(ac, ADMIN_ERR_CONFLICT,
			  "registration is off: nobody could log in "
			  "afterwards; add --force to clear anyway");
		return;
	}
	if ((r = ident_clear(id)) != IDENT_OK) {
		log_error("ident clear by %s failed: %s", admin_peer(ac), ident_result_str(r));
		admin_err(ac, ADMIN_ERR_NOT_STORED, "%s; nothing changed", ident_result_str(r));
		return;
	}
	resume_revoke_all();
	log_notice("identification file cleared by %s: %zu names removed", admin_peer(ac), n);
	admin_ok(ac, "identification file cleared: %zu names removed", n);
}

struct list_ctx {
	struct admin_conn *ac;
	size_t n;
};

static void
list_one(void *arg, const char *name)
{
	struct list_ctx *ctx = arg;

	admin_data(ctx->ac, "%s", name);
	ctx->n++;
}

static void
admin_cmd_user_list(struct admin_conn *ac, const struct admin_request *req)
{
	struct list_ctx ctx = { .ac = ac };

	ident_foreach(admin_server(ac)->ident, list_one, &ctx);
	admin_ok(ac, "%zu registered", ctx.n);
}

/* ---- password changes: hashed in a worker thread ---- */

struct password_job {
	struct ident *ident;
	enum admin_cmd_id cmd;
	int cost;
	char name[NAME_MAX_LEN + 1];
	char password[PASSWORD_MAX_LEN + 1];
	char peer[96];
	enum ident_result result;
};

static void
password_work(void *arg)
{
	struct password_job *j = arg;

	if (j->cmd == ADMIN_USER_ADD)
		j->result = ident_register(j->ident, j->name, j->password, j->cost, NULL);
	else
		j->result = ident_set_password(j->ident, j->name, j->password, j->cost, 0);
	explicit_bzero(j->password, sizeof(j->password));
}

static void
password_done(struct admin_conn *ac, void *arg)
{
	struct password_job *j = arg;
	bool add = j->cmd == ADMIN_USER_ADD;

	if (j->result == IDENT_OK)
		resume_revoke(j->name); /* a new password ends the name's resume tokens */
	if (j->result == IDENT_OK)
		log_notice("%s %s by %s", add ? "registered" : "new password for", j->name,
			   j->peer);
	else
		log_warning("%s %s by %s failed: %s", add ? "registering" : "new password for",
			    j->name, j->peer, ident_result_str(j->result));
	if (ac != NULL) {
		switch (j->result) {
		case IDENT_OK:
			admin_ok(ac, "%s %s", j->name, add ? "registered" : "has a new password");
			break;
		case IDENT_EXISTS:
			admin_err(ac, ADMIN_ERR_CONFLICT, "%s is already registered", j->name);
			break;
		case IDENT_UNKNOWN:
			admin_err(ac, ADMIN_ERR_NOT_FOUND, "%s is not registered", j->name);
			break;
		case IDENT_IO_ERROR:
			admin_err(ac, ADMIN_ERR_NOT_STORED, "%s; nothing changed",
				  ident_result_str(j->result));
			break;
		default:
			admin_err(ac, ADMIN_ERR_INTERNAL, "%s", ident_result_str(j->result));
		}
	}
	free(j);
}

/* Is pw fit for user add / user passwd (text, length)?  If not, answers the ERR. */
static bool
admin_password_valid_or_err(struct admin_conn *ac, const char *pw)
{
	size_t len = strlen(pw);
	enum text_check tc = text_check(pw, len);

	if (tc != TEXT_OK) {
		admin_err(ac, ADMIN_ERR_BAD_TEXT, "%s in the password", text_check_str(tc));
		return false;
	}
	if (len > PASSWORD_MAX_LEN) {
		admin_err(ac, ADMIN_ERR_BAD_REQUEST, "a password is at most %d bytes",
			  PASSWORD_MAX_LEN);
		return false;
	}
	return true;
}

static void
admin_cmd_set_password(struct admin_conn *ac, const struct admin_request *req)
{
	struct server *srv = admin_server(ac);
	bool add = req->cmd->id == ADMIN_USER_ADD;
	bool known = ident_lookup(srv->ident, req->name, NULL);
	struct password_job *j;

	if (!admin_password_valid_or_err(ac, req->text))
		return;
	if (add && known) {
		admin_err(ac, ADMIN_ERR_CONFLICT, "%s is already registered", req->name);
		return;
	}
	if (!add && !known) {
		admin_err(ac, ADMIN_ERR_NOT_FOUND, "%s is not registered", req->name);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		admin_err(ac, ADMIN_ERR_INTERNAL, "out of memory");
		return;
	}
	j->ident = srv->ident;
	j->cmd = req->cmd->id;
	j->cost = settings_get()->hash_cost;
	snprintf(j->name, sizeof(j->name), "%s", req->name);
	snprintf(j->password, sizeof(j->password), "%s", req->text);
	snprintf(j->peer, sizeof(j->peer), "%s", admin_peer(ac));
	if (admin_run_job(ac, password_work, password_done, j) < 0) {
		explicit_bzero(j->password, sizeof(j->password));
		free(j);
		admin_err(ac, ADMIN_ERR_INTERNAL, "cannot start a worker: %s", strerror(errno));
	}
}

static void
admin_cmd_user_del(struct admin_conn *ac, const struct admin_request *req)
{
	struct server *srv = admin_server(ac);
	enum ident_result r = ident_delete(srv->ident, req->name);

	if (r == IDENT_UNKNOWN) {
		admin_err(ac, ADMIN_ERR_NOT_FOUND, "%s is not registered", req->name);
		return;
	}
	if (r != IDENT_OK) {
		admin_err(ac, ADMIN_ERR_NOT_STORED, "%s; nothing changed", ident_result_str(r));
		return;
	}
	resume_revoke(req->name);
	/* Whoever logged in with the deleted account is not let stay on. */
	int online = room_evict_within(srv->hub, ADMIN_ROOM_WAIT_MS, req->name, PART_KICKED,
				       "account deleted");
	const char *what = online > 0   ? "; the session online was ended"
			   : online < 0 ? "; the room is busy: a session online, if any, was "
					  "not ended (kick it)"
					: "";
	log_notice("user %s deleted by %s%s", req->name, admin_peer(ac), what);
	admin_ok(ac, "%s deleted%s", req->name, what);
}

static void
admin_cmd_kick(struct admin_conn *ac, const struct admin_request *req)
{
	const char *reason = req->text != NULL ? req->text : part_reason_text(PART_KICKED);

	int rc = room_evict_within(admin_server(ac)->hub, ADMIN_ROOM_WAIT_MS, req->name,
				   PART_KICKED, reason);

	if (rc < 0) {
		reply_room_failed(ac);
		return;
	}
	if (rc == 0) {
		admin_err(ac, ADMIN_ERR_NOT_FOUND, "%s is not online", req->name);
		return;
	}
	log_notice("%s kicked by %s: %s", req->name, admin_peer(ac), reason);
	admin_ok(ac, "%s kicked", req->name);
}

/* Is text too long for a notice?  Then the ERR is answered. */
static bool
notice_too_long(struct admin_conn *ac, const char *text)
{
	int max = settings_get()->max_line;

	if (strlen(text) <= (size_t)max)
		return false;
	admin_err(ac, ADMIN_ERR_TOO_LONG, "a notice is at most max_line (%d) bytes", max);
	return true;
}

static void
admin_cmd_notice(struct admin_conn *ac, const struct admin_request *req)
{
	struct hub *r = admin_server(ac)->hub;
	size_t online;

	if (notice_too_long(ac, req->text))
		return;
	if (room_notice_within(r, ADMIN_ROOM_WAIT_MS, req->text, &online) < 0) {
		reply_room_failed(ac);
		return;
	}
	log_notice("notice by %s", admin_peer(ac));
	admin_ok(ac, "notice sent to %zu online", online);
}

/* ---- rooms ---- */

static const char *
room_kind(const struct room_info *ri)
{
	return ri->is_default ? "default" : ri->op_made ? "op" : "user";
}

static void
admin_cmd_room_list(struct admin_conn *ac, const struct admin_request *req)
{
	struct room_info *rooms;
	size_t n;

	if (rooms_snapshot_within(admin_server(ac)->hub, ADMIN_ROOM_WAIT_MS, &rooms, &n) < 0) {
		reply_room_failed(ac);
		return;
	}
	for (size_t i = 0; i < n; i++)
		admin_data(ac, "%s %zu %s%s%s", rooms[i].name, rooms[i].members,
			   room_kind(&rooms[i]), rooms[i].topic[0] ? " " : "", rooms[i].topic);
	free(rooms);
	admin_ok(ac, "%zu rooms", n);
}

/* Is text too long for a topic?  Then the ERR is answered. */
static bool
topic_too_long(struct admin_conn *ac, const char *text)
{
	if (text == NULL || strlen(text) <= room_topic_limit())
		return false;
	topic_limit_err(ac);
	return true;
}

/*
 * Answers the ERR for what room_*_within() returned about room, if it is
 * not done: rc < 0, it could not be told; rc == 0, the room is missing (or,
 * creating, already there).  True when done: the OK is the caller's.
 */
static bool
room_changed(struct admin_conn *ac, int rc, const char *room, bool creating)
{
	if (rc < 0) {
		reply_room_failed(ac);
		return false;
	}
	if (rc == 0 && creating)
		admin_err(ac, ADMIN_ERR_CONFLICT, "room %s exists", room);
	else if (rc == 0)
		admin_err(ac, ADMIN_ERR_NOT_FOUND, "no room %s", room);
	return rc > 0;
}

static void
admin_cmd_room_create(struct admin_conn *ac, const struct admin_request *req)
{
	int rc;

	if (topic_too_long(ac, req->text))
		return;
	rc = room_create_within(admin_server(ac)->hub, ADMIN_ROOM_WAIT_MS, req->room,
				req->text != NULL ? req->text : "");
	if (!room_changed(ac, rc, req->room, true))
		return;
	log_notice("room %s created by %s", req->room, admin_peer(ac));
	admin_ok(ac, "room %s created", req->room);
}

static void
admin_cmd_room_del(struct admin_conn *ac, const struct admin_request *req)
{
	int rc = room_delete_within(admin_server(ac)->hub, ADMIN_ROOM_WAIT_MS, req->room);

	if (!room_changed(ac, rc, req->room, false))
		return;
	log_notice("room %s deleted by %s", req->room, admin_peer(ac));
	admin_ok(ac, "room %s deleted", req->room);
}

static void
admin_cmd_room_topic(struct admin_conn *ac, const struct admin_request *req)
{
	int rc;

	if (topic_too_long(ac, req->text))
		return;
	rc = room_topic_within(admin_server(ac)->hub, ADMIN_ROOM_WAIT_MS, req->room, req->text);
	if (!room_changed(ac, rc, req->room, false))
		return;
	log_notice("topic of room %s set by %s", req->room, admin_peer(ac));
	admin_ok(ac, "topic of %s set", req->room);
}

static void
admin_cmd_room_kick(struct admin_conn *ac, const struct admin_request *req)
{
	const char *reason = req->text != NULL ? req->text : part_reason_text(PART_KICKED);
	int rc = room_kick_within(admin_server(ac)->hub, ADMIN_ROOM_WAIT_MS, req->room, req->name,
				  reason);

	if (rc < 0) {
		reply_room_failed(ac);
		return;
	}
	if (rc == 0) {
		/* Which of the two: told apart only now, on this rare path. */
		if (room_exists_within(admin_server(ac)->hub, ADMIN_ROOM_WAIT_MS, req->room) == 0)
			admin_err(ac, ADMIN_ERR_NOT_FOUND, "no room %s", req->room);
		else
			admin_err(ac, ADMIN_ERR_NOT_FOUND, "%s is not in %s", req->name, req->room);
		return;
	}
	log_notice("%s kicked from room %s by %s: %s", req->name, req->room, admin_peer(ac),
		   reason);
	admin_ok(ac, "%s kicked from %s", req->name, req->room);
}

static void
admin_cmd_room_notice(struct admin_conn *ac, const struct admin_request *req)
{
	size_t members = 0;
	int rc;

	if (notice_too_long(ac, req->text))
		return;
	rc = room_notice_room_within(admin_server(ac)->hub, ADMIN_ROOM_WAIT_MS, req->room,
				     req->text, &members);
	if (!room_changed(ac, rc, req->room, false))
		return;
	log_notice("notice to room %s by %s", req->room, admin_peer(ac));
	admin_ok(ac, "notice sent to %zu members of %s", members, req->room);
}

static admin_handler *const handlers[ADMIN_CMD_COUNT] = {
	[ADMIN_HELP] = admin_cmd_help,
	[ADMIN_STATUS] = admin_cmd_status,
	[ADMIN_USERS] = admin_cmd_users,
	[ADMIN_STOP] = admin_cmd_stop,
	[ADMIN_PAUSE] = admin_cmd_pause,
	[ADMIN_RESUME] = admin_cmd_resume,
	[ADMIN_LOG_SHOW] = admin_cmd_log_show,
	[ADMIN_LOG_CLEAR] = admin_cmd_log_clear,
	[ADMIN_IDENT_CLEAR] = admin_cmd_ident_clear,
	[ADMIN_USER_LIST] = admin_cmd_user_list,
	[ADMIN_USER_ADD] = admin_cmd_set_password,
	[ADMIN_USER_PASSWD] = admin_cmd_set_password,
	[ADMIN_USER_DEL] = admin_cmd_user_del,
	[ADMIN_KICK] = admin_cmd_kick,
	[ADMIN_NOTICE] = admin_cmd_notice,
	[ADMIN_ROOM_LIST] = admin_cmd_room_list,
	[ADMIN_ROOM_CREATE] = admin_cmd_room_create,
	[ADMIN_ROOM_DEL] = admin_cmd_room_del,
	[ADMIN_ROOM_TOPIC] = admin_cmd_room_topic,
	[ADMIN_ROOM_KICK] = admin_cmd_room_kick,
	[ADMIN_ROOM_NOTICE] = admin_cmd_room_notice,
};

void
admin_dispatch(struct admin_conn *ac, const struct admin_request *req)
{
	admin_handler *run = handlers[req->cmd->id];

	/* A table entry without a handler is a build mistake; answer rather than crash. */
	if (run == NULL) {
		admin_err(ac, ADMIN_ERR_INTERNAL, "'%s' is not implemented", req->cmd->words);
		return;
	}
	run(ac, req);
}
