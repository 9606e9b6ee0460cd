/*
 * config.c - chatd.conf: reading it (libconfig syntax), checking every
 * value, filling in defaults and publishing the result to other threads.
 *
 * The settings_table[] below is the only place that knows the individual
 * settings: loading, defaults, bounds, the "restart needed" check on reload
 * and settings_write() all walk it and switch on the type only.
 *
 * Threads: the control thread loads (at start, on SIGHUP) and publishes;
 * any thread reads the current settings (settings_get(), an atomic
 * pointer); the list of every struct published is under published_lock
 * and freed at exit (config.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "escape.h"
#include "log.h"
#include "names.h"

enum setting_type {
	T_INT,
	T_INT64,
	T_BOOL,
	T_LOG_LEVEL, /* a level name in the file, enum log_level in memory */
	T_PATH,      /* a string; relative means relative to the file */
	T_OPT_PATH,  /* T_PATH, or "" for none (the default) */
	T_ADDRESSES, /* a string or a list of strings, numeric IP addresses */
	T_STRING,    /* a string, possibly empty */
	T_CHOICE,    /* one of the strings in .choices in the file, its index in memory */
	T_ROOM,      /* a room name (room_name_valid) */
};

/* Where an unset T_PATH goes when its $env is not set either. */
enum path_base {
	BASE_LOCAL,   /* CONFIG_LOCAL_DIR under the current directory */
	BASE_STATE,   /* state_dir */
	BASE_RUNTIME, /* runtime_dir */
};

struct setting_def {
	const char *name;
	enum setting_type type;
	size_t offset;
	bool reloadable;
	long long def, min, max;
	/* T_PATH unset: $env, else the base directory; plus "/file". */
	const char *env;
	enum path_base base;
	const char *file;
	const char *def_string;     /* T_STRING, T_ROOM */
	const char *const *choices; /* T_CHOICE, NULL-terminated */
	/* T_ADDRESSES */
	const char *const *def_list;
	size_t count_offset;
	size_t unset_flag_offset;
	const char *doc;
};

/* clang-format off */
#define FIELD(f)	.offset = offsetof(struct settings, f)
#define FIXED		.reloadable = false
#define SIGHUP		.reloadable = true
#define NUMBER(t, d, lo, hi)	.type = (t), .def = (d), .min = (lo), .max = (hi)

static const struct setting_def settings_table[] = {
	{ "listen", FIELD(listen), FIXED, .type = T_ADDRESSES,
	  .def_list = (const char *const[]){ "0.0.0.0", "::", NULL },
	  .count_offset = offsetof(struct settings, n_listen),
	  .unset_flag_offset = offsetof(struct settings, listen_is_default),
	  .doc = "numeric IPv4/IPv6 addresses to listen on" },
	{ "port", FIELD(port), FIXED, NUMBER(T_INT, 7777, -1, 65535),
	  .doc = "TCP port of the plain listener; 0 lets the kernel choose; "
		 "-1 switches it off (a TLS-only server)" },
	{ "port_tries", FIELD(port_tries), FIXED, NUMBER(T_INT, 10, 0, 1000),
	  .doc = "when port is busy, how many following ports to try" },
	{ "tls_listen", FIELD(tls_listen), FIXED, .type = T_ADDRESSES,
	  .def_list = (const char *const[]){ "0.0.0.0", "::", NULL },
	  .count_offset = offsetof(struct settings, n_tls_listen),
	  .unset_flag_offset = offsetof(struct settings, tls_listen_is_default),
	  .doc = "numeric IPv4/IPv6 addresses of the TLS listener; unset: "
		 "the same as listen" },
	{ "tls_port", FIELD(tls_port), FIXED, NUMBER(T_INT, 7778, 0, 65535),
	  .doc = "TCP port of the TLS listener, which runs when tls_cert is "
		 "set; 0 lets the kernel choose" },
	{ "irc", FIELD(irc), FIXED, .type = T_BOOL, .def = false,
	  .doc = "run the IRC gateway: IRC clients on irc_port (and, with "
		 "tls_cert, irc_tls_port) in the same rooms (docs/IRC.md)" },
	{ "irc_listen", FIELD(irc_listen), FIXED, .type = T_ADDRESSES,
	  .def_list = (const char *const[]){ "0.0.0.0", "::", NULL },
	  .count_offset = offsetof(struct settings, n_irc_listen),
	  .unset_flag_offset = offsetof(struct settings, irc_listen_is_default),
	  .doc = "numeric IPv4/IPv6 addresses of the IRC listeners; unset: "
		 "the same as listen" },
	{ "irc_port", FIELD(irc_port), FIXED, NUMBER(T_INT, 6667, -1, 65535),
	  .doc = "TCP port of the plain IRC listener, which runs when irc is "
		 "true; 0 lets the kernel choose; -1 switches it off" },
	{ "irc_tls_port", FIELD(irc_tls_port), FIXED, NUMBER(T_INT, 6697, -1, 65535),
	  .doc = "TCP port of the IRC listener over TLS, which runs when irc is "
		 "true and tls_cert is set; 0 lets the kernel choose; -1 "
		 "switches it off" },
	{ "server_name", FIELD(server_name), FIXED, .type = T_STRING,
	  .def_string = "chatd",
	  .doc = "the server's name in IRC prefixes and numerics: 1-63 "
		 "letters, digits, '-' and '.'" },
	{ "tls_cert", FIELD(tls_cert), SIGHUP, .type = T_OPT_PATH,
	  .doc = "the server's certificate chain (PEM, the server's first); "
		 "\"\" (the default): no TLS listener" },
	{ "tls_key", FIELD(tls_key), SIGHUP, .type = T_OPT_PATH,
	  .doc = "the certificate's private key (PEM); \"\" (the default): "
		 "in the tls_cert file" },
	{ "tls_min_version", FIELD(tls_min_version), SIGHUP, .type = T_CHOICE,
	  .def = TLS_MIN_1_2,
	  .choices = (const char *const[]){ "1.2", "1.3", NULL },
	  .doc = "the oldest TLS version accepted: \"1.2\" or \"1.3\"; 1.3 is "
		 "preferred either way" },
	{ "handshake_timeout", FIELD(handshake_timeout), SIGHUP,
	  NUMBER(T_INT, 10, 1, 3600),
	  .doc = "seconds a TLS client has to finish its handshake" },
	{ "plain_login", FIELD(plain_login), SIGHUP, .type = T_CHOICE,
	  .def = PLAIN_LOGIN_LOOPBACK,
	  .choices = (const char *const[]){ "allow", "loopback", "deny", NULL },
	  .doc = "while TLS is on, who may log in on the plain port: \"allow\" "
		 "anyone, \"loopback\" only from this host, \"deny\" nobody "
		 "(passwords never cross the network in clear)" },
	/* state_dir first: the other paths default to places inside it. */
	{ "state_dir", FIELD(state_dir), FIXED, .type = T_PATH,
	  .env = "STATE_DIRECTORY",
	  .doc = "directory of the lock file and, by default, the data" },
	{ "history_file", FIELD(history_file), FIXED, .type = T_PATH,
	  .base = BASE_STATE, .file = "history",
	  .doc = "the room history" },
	{ "rooms_file", FIELD(rooms_file), FIXED, .type = T_PATH,
	  .base = BASE_STATE, .file = "rooms",
	  .doc = "the rooms and their topics" },
	{ "ident_file", FIELD(ident_file), FIXED, .type = T_PATH,
	  .base = BASE_STATE, .file = "ident",
	  .doc = "registered users and their password hashes" },
	{ "log_file", FIELD(log_file), FIXED, .type = T_PATH,
	  .env = "LOGS_DIRECTORY", .base = BASE_STATE, .file = "chatd.log",
	  .doc = "the service log" },
	{ "runtime_dir", FIELD(runtime_dir), FIXED, .type = T_PATH,
	  .env = "RUNTIME_DIRECTORY",
	  .doc = "directory of the admin socket and the pid file" },
	{ "admin_socket", FIELD(admin_socket), FIXED, .type = T_PATH,
	  .base = BASE_RUNTIME, .file = "admin.sock",
	  .doc = "the Unix-domain socket chatctl talks to (at most 107 bytes)" },
	{ "user", FIELD(user), FIXED, .type = T_STRING, .def_string = "",
	  .doc = "started as root (not by systemd), run as this user once the "
		 "port is bound; \"\" to keep the user chatd was started as" },
	{ "admin_group", FIELD(admin_group), FIXED, .type = T_STRING,
	  .def_string = "",
	  .doc = "group whose members may use the admin socket besides root "
		 "and chatd's own user; \"\" for none" },
	{ "stack_size", FIELD(stack_size), FIXED,
	  NUMBER(T_INT64, 131072, 65536, 67108864),
	  .doc = "stack of each client thread, bytes" },
	{ "max_line", FIELD(max_line), FIXED, NUMBER(T_INT, 4096, 64, 65536),
	  .doc = "longest line a client may send, bytes" },
	{ "history_memory", FIELD(history_memory), FIXED,
	  NUMBER(T_INT, 1000, 1, 1000000),
	  .doc = "room messages held in memory, per room" },
	{ "default_room", FIELD(default_room), FIXED, .type = T_ROOM,
	  .def_string = "lobby",
	  .doc = "the room every user is in after logging in; it always "
		 "exists, never expires and cannot be deleted" },
	{ "history_max_size", FIELD(history_max_size), FIXED,
	  NUMBER(T_INT64, 67108864, 65536, 1LL << 40),
	  .doc = "compact the history file when it grows above this, bytes" },
	{ "history_sync_ms", FIELD(history_sync_ms), FIXED,
	  NUMBER(T_INT, 0, 0, 60000),
	  .doc = "0: acknowledge a message once it is on disk; "
		 "N: acknowledge at once, sync every N milliseconds" },
	{ "hash_concurrency", FIELD(hash_concurrency), FIXED,
	  NUMBER(T_INT, 0, 0, 256),
	  .doc = "password hashes computed at once; 0 = one per CPU core" },
	{ "log_level", FIELD(log_level), SIGHUP, .type = T_LOG_LEVEL,
	  .def = LVL_INFO,
	  .doc = "least important messages logged: error, warning, notice, "
		 "info or debug" },
	{ "hash_cost", FIELD(hash_cost), SIGHUP, NUMBER(T_INT, 5, 1, 11),
	  .doc = "yescrypt cost of new password hashes; each step doubles "
		 "the work" },
	{ "max_clients", FIELD(max_clients), SIGHUP,
	  NUMBER(T_INT, 1000, 1, 1000000),
	  .doc = "users logged in at once" },
	{ "max_clients_per_address", FIELD(max_clients_per_address), SIGHUP,
	  NUMBER(T_INT, 32, 1, 1000000),
	  .doc = "connections, logged in or not, at once from one IP address "
		 "(an IPv6 /64)" },
	{ "max_logins", FIELD(max_logins), SIGHUP,
	  NUMBER(T_INT, 256, 1, 1000000),
	  .doc = "connections not logged in yet, at once; when full, the oldest "
		 "of the address with the most is dropped for a newcomer" },
	{ "max_logins_per_address", FIELD(max_logins_per_address), SIGHUP,
	  NUMBER(T_INT, 8, 1, 1000000),
	  .doc = "connections not logged in yet, at once from one IP address "
		 "(an IPv6 /64)" },
	{ "login_timeout", FIELD(login_timeout), SIGHUP,
	  NUMBER(T_INT, 30, 1, 3600),
	  .doc = "seconds a client has to log in" },
	{ "login_attempts", FIELD(login_attempts), SIGHUP,
	  NUMBER(T_INT, 3, 1, 100),
	  .doc = "wrong passwords before the connection is closed" },
	{ "login_fail_delay_ms", FIELD(login_fail_delay_ms), SIGHUP,
	  NUMBER(T_INT, 1000, 0, 60000),
	  .doc = "delay before answering a wrong password, milliseconds" },
	{ "login_fail_delay_max_ms", FIELD(login_fail_delay_max_ms), SIGHUP,
	  NUMBER(T_INT, 30000, 0, 3600000),
	  .doc = "the delay after a wrong password doubles with each recent "
		 "failure for the same name or address, up to this, milliseconds" },
	{ "history_replay", FIELD(history_replay), SIGHUP,
	  NUMBER(T_INT, 20, 0, 1000000),
	  .doc = "room messages replayed at login and /join, per room; at "
		 "most history_memory" },
	{ "send_queue_limit", FIELD(send_queue_limit), SIGHUP,
	  NUMBER(T_INT64, 1048576, 4096, 1LL << 30),
	  .doc = "bytes queued for a client that does not read before it is "
		 "disconnected" },
	{ "registration", FIELD(registration), SIGHUP, .type = T_BOOL,
	  .def = true,
	  .doc = "whether unknown names may register" },
	{ "guests", FIELD(guests), SIGHUP, .type = T_BOOL, .def = false,
	  .doc = "whether a name that is not registered may log in without a "
		 "password, as a guest (IRC: NICK and USER alone; natively: an "
		 "empty password); a guest cannot take a registered name" },
	{ "irc_flood_burst", FIELD(irc_flood_burst), SIGHUP,
	  NUMBER(T_INT, 20, 1, 100000),
	  .doc = "IRC lines a client may send at once before it is slowed "
		 "down" },
	{ "irc_flood_rate", FIELD(irc_flood_rate), SIGHUP,
	  NUMBER(T_INT, 4, 1, 100000),
	  .doc = "IRC lines per second a client may send after its burst; "
		 "more waits unread, the connection stays" },
	{ "room_notice_limit", FIELD(room_notice_limit), SIGHUP,
	  NUMBER(T_INT, 500, 0, 1000000),
	  .doc = "no JOIN/PART notices in a room with more members than this" },
	{ "room_create", FIELD(room_create), SIGHUP, .type = T_CHOICE,
	  .def = ROOM_CREATE_REGISTERED,
	  .choices = (const char *const[]){ "anyone", "registered", "admin", NULL },
	  .doc = "who may create a room by joining it: \"anyone\", \"registered\" "
		 "(anyone but guests) or \"admin\" (chatctl only)" },
	{ "max_rooms", FIELD(max_rooms), SIGHUP,
	  NUMBER(T_INT, 4096, 1, 1000000),
	  .doc = "rooms that may exist at once, the default room included" },
	{ "max_rooms_per_user", FIELD(max_rooms_per_user), SIGHUP,
	  NUMBER(T_INT, 20, 1, ROOMS_PER_USER_MAX),
	  .doc = "rooms one session may be in at once" },
	{ "max_topic", FIELD(max_topic), SIGHUP,
	  NUMBER(T_INT, 390, 1, MAX_TOPIC_BYTES),
	  .doc = "longest room topic, bytes" },
	{ "room_expiry", FIELD(room_expiry), SIGHUP,
	  NUMBER(T_INT, 604800, 0, 315360000),
	  .doc = "seconds a room made by a user may stay empty before it is "
		 "deleted; 0 never" },
	{ "resume_token_ttl", FIELD(resume_token_ttl), SIGHUP,
	  NUMBER(T_INT, 604800, 0, 31536000),
	  .doc = "seconds a resume token (/token) stays valid; 0 turns "
		 "resume tokens off" },
	{ "peer_timeout", FIELD(peer_timeout), SIGHUP,
	  NUMBER(T_INT, 60, 5, 86400),
	  .doc = "seconds until a peer that vanished without closing is "
		 "dropped" },
};
/* clang-format on */

#define N_SETTINGS (sizeof(settings_table) / sizeof(settings_table[0]))

struct loader {
	const char *path; /* as given, for messages */
	char *err;
	size_t errlen;
	struct settings *out;
	char *dir; /* of the config file */
	char *cwd;
	char *local_dir; /* CONFIG_LOCAL_DIR made absolute */
	const config_setting_t *found[N_SETTINGS];
	/* settings_reload(): the settings chatd runs with, whose fixed ones stay */
	const struct settings *running;
	char *fixed; /* the names of the fixed ones the file changed */
	size_t fixedlen;
};

static void *
field(struct settings *s, size_t offset)
{
	return (char *)s + offset;
}

static const void *
cfield(const struct settings *s, size_t offset)
{
	return (const char *)s + offset;
}

/* Every error is "FILE:LINE: text", or "FILE: text" when no line applies. */
static int __attribute__((format(printf, 3, 4)))
fail(struct loader *ld, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (line > 0)
		n = snprintf(ld->err, ld->errlen, "%s:%u: ", ld->path, line);
	else
		n = snprintf(ld->err, ld->errlen, "%s: ", ld->path);
	if (n >= 0 && (size_t)n < ld->errlen) {
		va_start(ap, fmt);
		vsnprintf(ld->err + n, ld->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int
fail_oom(struct loader *ld)
{
	return fail(ld, 0, "out of memory");
}

static const struct setting_def *
find_def(const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings_table[i].name, name) == 0)
			return &settings_table[i];
	return NULL;
}

static char *
join_path(const char *dir, const char *path)
{
	char *joined;

	if (path[0] == '/')
		return strdup(path);
	if (asprintf(&joined, "%s/%s", dir, path) < 0)
		return NULL;
	return joined;
}

/*
 * Stores a number of any numeric type; also the in-memory form of T_BOOL
 * and T_LOG_LEVEL, so defaults and parsed values share one path.
 */
static void
store_number(struct settings *s, const struct setting_def *d, long long v)
{
	void *p = field(s, d->offset);

	switch (d->type) {
	case T_INT:
	case T_LOG_LEVEL:
	case T_CHOICE:
		*(int *)p = (int)v;
		break;
	case T_INT64:
		*(int64_t *)p = v;
		break;
	case T_BOOL:
		*(bool *)p = v != 0;
		break;
	case T_PATH:
	case T_OPT_PATH:
	case T_ADDRESSES:
	case T_STRING:
	case T_ROOM:
		abort();
	}
}

static long long
load_number(const struct settings *s, const struct setting_def *d)
{
	const void *p = cfield(s, d->offset);

	switch (d->type) {
	case T_INT:
	case T_LOG_LEVEL:
	case T_CHOICE:
		return *(const int *)p;
	case T_INT64:
		return *(const int64_t *)p;
	case T_BOOL:
		return *(const bool *)p;
	case T_PATH:
	case T_OPT_PATH:
	case T_ADDRESSES:
	case T_STRING:
	case T_ROOM:
		break;
	}
	abort();
}

static void
free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
store_addresses(struct loader *ld, const struct setting_def *d, const char *const *addrs, size_t n)
{
	char **copy = calloc(n, sizeof(*copy));

	if (copy == NULL)
		return fail_oom(ld);
	for (size_t i = 0; i < n; i++) {
		if ((copy[i] = strdup(addrs[i])) == NULL) {
			free_strings(copy, i);
			return fail_oom(ld);
		}
	}
	*(char ***)field(ld->out, d->offset) = copy;
	*(size_t *)field(ld->out, d->count_offset) = n;
	return 0;
}

static bool
is_numeric_address(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int
parse_number(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	unsigned line = config_setting_source_line(cs);
	int type = config_setting_type(cs);
	long long v;

	if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
		return fail(ld, line, "'%s' must be an integer", d->name);
	v = config_setting_get_int64(cs);
	if (v < d->min || v > d->max)
		return fail(ld, line, "'%s' must be between %lld and %lld", d->name, d->min,
			    d->max);
	store_number(ld->out, d, v);
	return 0;
}

static int
parse_bool(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	if (config_setting_type(cs) != CONFIG_TYPE_BOOL)
		return fail(ld, config_setting_source_line(cs), "'%s' must be true or false",
			    d->name);
	store_number(ld->out, d, config_setting_get_bool(cs));
	return 0;
}

static int
parse_log_level(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	const char *name = config_setting_get_string(cs);
	int level = name != NULL ? log_level_parse(name) : -1;

	if (level < 0)
		return fail(ld, config_setting_source_line(cs),
			    "'%s' must be one of \"error\", \"warning\", "
			    "\"notice\", \"info\", \"debug\"",
			    d->name);
	store_number(ld->out, d, level);
	return 0;
}

static int
parse_path(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	unsigned line = config_setting_source_line(cs);
	const char *value = config_setting_get_string(cs);
	char *path;

	if (value == NULL)
		return fail(ld, line, "'%s' must be a string", d->name);
	if (value[0] == '\0')
		return fail(ld, line, "'%s' must not be empty", d->name);
	if ((path = join_path(ld->dir, value)) == NULL)
		return fail_oom(ld);
	*(char **)field(ld->out, d->offset) = path;
	return 0;
}

/* "" is none; anything else a path, relative to the file. */
static int
parse_opt_path(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	const char *value = config_setting_get_string(cs);
	char *path;

	if (value == NULL)
		return fail(ld, config_setting_source_line(cs), "'%s' must be a string", d->name);
	if ((path = value[0] ? join_path(ld->dir, value) : strdup("")) == NULL)
		return fail_oom(ld);
	*(char **)field(ld->out, d->offset) = path;
	return 0;
}

static int
parse_string(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	const char *value = config_setting_get_string(cs);
	char *copy;

	if (value == NULL)
		return fail(ld, config_setting_source_line(cs), "'%s' must be a string", d->name);
	if ((copy = strdup(value)) == NULL)
		return fail_oom(ld);
	*(char **)field(ld->out, d->offset) = copy;
	return 0;
}

static int
parse_choice(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	const char *value = config_setting_get_string(cs);
	char list[128] = "";
	size_t used = 0;

	for (int i = 0; value != NULL && d->choices[i] != NULL; i++)
		if (strcmp(value, d->choices[i]) == 0) {
			store_number(ld->out, d, i);
			return 0;
		}
	for (int i = 0; d->choices[i] != NULL && used < sizeof(list); i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s\"%s\"",
					 i > 0 ? ", " : "", d->choices[i]);
	return fail(ld, config_setting_source_line(cs), "'%s' must be one of %s", d->name, list);
}

static int
parse_room(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	const char *value = config_setting_get_string(cs);

	if (value == NULL || !room_name_valid(value, strlen(value)))
		return fail(ld, config_setting_source_line(cs),
			    "'%s' must be a room name: 1-%d of A-Z a-z 0-9 _ . -, "
			    "the first a letter",
			    d->name, ROOM_NAME_MAX);
	return parse_string(ld, d, cs);
}

/* A single string is a list of one. */
static int
parse_addresses(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	bool single = config_setting_type(cs) == CONFIG_TYPE_STRING;
	size_t n = single ? 1 : (size_t)config_setting_length(cs);
	const char **addrs;
	int rc = -1;

	if (!single && !config_setting_is_array(cs) && !config_setting_is_list(cs))
		return fail(ld, config_setting_source_line(cs),
			    "'%s' must be a string or a list of strings", d->name);
	if (n == 0)
		return fail(ld, config_setting_source_line(cs),
			    "'%s' must name at least one address", d->name);
	if ((addrs = calloc(n, sizeof(*addrs))) == NULL)
		return fail_oom(ld);
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = single ? cs : config_setting_get_elem(cs, i);
		unsigned line = config_setting_source_line(e);

		if ((addrs[i] = config_setting_get_string(e)) == NULL) {
			fail(ld, line, "'%s' must be a string or a list of strings", d->name);
			goto out;
		}
		if (!is_numeric_address(addrs[i])) {
			/* Escaped: the message is one line, whatever the string holds. */
			char shown[128];

			escape_bytes(shown, sizeof(shown), addrs[i], strlen(addrs[i]));
			fail(ld, line,
			     "'%s': \"%s\" is not a numeric IPv4 or IPv6 "
			     "address",
			     d->name, shown);
			goto out;
		}
	}
	rc = store_addresses(ld, d, addrs, n);
out:
	free(addrs);
	return rc;
}

static int
parse_setting(struct loader *ld, const struct setting_def *d, const config_setting_t *cs)
{
	switch (d->type) {
	case T_INT:
	case T_INT64:
		return parse_number(ld, d, cs);
	case T_BOOL:
		return parse_bool(ld, d, cs);
	case T_LOG_LEVEL:
		return parse_log_level(ld, d, cs);
	case T_PATH:
		return parse_path(ld, d, cs);
	case T_OPT_PATH:
		return parse_opt_path(ld, d, cs);
	case T_ADDRESSES:
		return parse_addresses(ld, d, cs);
	case T_STRING:
		return parse_string(ld, d, cs);
	case T_CHOICE:
		return parse_choice(ld, d, cs);
	case T_ROOM:
		return parse_room(ld, d, cs);
	}
	abort();
}

/*
 * The first directory of $name: systemd passes one per entry of
 * StateDirectory= etc., colon-separated.  NULL if unset or empty.
 */
static char *
env_dir(struct loader *ld, const char *name)
{
	const char *value = name != NULL ? getenv(name) : NULL;
	char *first, *path;

	if (value == NULL || value[0] == '\0' || value[0] == ':')
		return NULL;
	if ((first = strndup(value, strcspn(value, ":"))) == NULL)
		return NULL;
	path = join_path(ld->cwd, first);
	free(first);
	return path;
}

static const char *
base_dir(const struct loader *ld, enum path_base base)
{
	switch (base) {
	case BASE_LOCAL:
		return ld->local_dir;
	case BASE_STATE:
		return ld->out->state_dir;
	case BASE_RUNTIME:
		return ld->out->runtime_dir;
	}
	abort();
}

static int
default_path(struct loader *ld, const struct setting_def *d)
{
	char *path = env_dir(ld, d->env), *dir;

	if (path == NULL)
		path = strdup(base_dir(ld, d->base));
	if (path != NULL && d->file != NULL) {
		dir = path;
		path = join_path(dir, d->file);
		free(dir);
	}
	if (path == NULL)
		return fail_oom(ld);
	*(char **)field(ld->out, d->offset) = path;
	return 0;
}

static int
default_addresses(struct loader *ld, const struct setting_def *d)
{
	size_t n = 0;

	while (d->def_list[n] != NULL)
		n++;
	*(bool *)field(ld->out, d->unset_flag_offset) = true;
	return store_addresses(ld, d, d->def_list, n);
}

static int
fill_default(struct loader *ld, const struct setting_def *d)
{
	switch (d->type) {
	case T_INT:
	case T_INT64:
	case T_BOOL:
	case T_LOG_LEVEL:
	case T_CHOICE:
		store_number(ld->out, d, d->def);
		return 0;
	case T_PATH:
		return default_path(ld, d);
	case T_ADDRESSES:
		return default_addresses(ld, d);
	case T_OPT_PATH:
	case T_STRING:
	case T_ROOM:
		if ((*(char **)field(ld->out, d->offset) =
			     strdup(d->def_string ? d->def_string : "")) == NULL)
			return fail_oom(ld);
		return 0;
	}
	abort();
}

static unsigned
line_of(const struct loader *ld, const char *name)
{
	const config_setting_t *cs = ld->found[find_def(name) - settings_table];

	return cs != NULL ? config_setting_source_line(cs) : 0;
}

/* tls_listen or irc_listen (name) unset: the addresses of listen, with its leniency. */
static int
follow_listen(struct loader *ld, const char *name, bool *follows)
{
	const struct setting_def *d = find_def(name);
	struct settings *s = ld->out;
	char ***list = field(s, d->offset);
	size_t *n = field(s, d->count_offset);

	if (ld->found[d - settings_table] != NULL)
		return 0;
	free_strings(*list, *n);
	*list = NULL;
	*n = 0;
	if (store_addresses(ld, d, (const char *const *)s->listen, s->n_listen) < 0)
		return -1;
	*(bool *)field(s, d->unset_flag_offset) = s->listen_is_default;
	*follows = true;
	return 0;
}

/* server_name: a host name's characters, as it goes into every IRC prefix. */
static int
check_server_name(struct loader *ld)
{
	const char *n = ld->out->server_name;
	size_t len = strlen(n);

	if (len >= 1 && len <= 63 &&
	    strspn(n, "abcdefghijklmnopqrstuvwxyz"
		      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == len &&
	    n[0] != '-' && n[0] != '.')
		return 0;
	return fail(ld, line_of(ld, "server_name"),
		    "'server_name' must be 1-63 letters, digits, '-' and '.', starting with a "
		    "letter or digit");
}

/* Some listener must run: the plain one off needs a certificate for TLS. */
static int
check_listeners(struct loader *ld)
{
	const struct settings *s = ld->out;

	if (s->port >= 0 || s->tls_cert[0] != '\0' || (s->irc && s->irc_port >= 0))
		return 0;
	return fail(ld, line_of(ld, "port"),
		    "'port' is -1 (no plain listener) but 'tls_cert' is not set (no TLS "
		    "listener): chatd would listen nowhere");
}

/* history_replay is at most history_memory (running: the one chatd runs with, on a reload). */
static int
check_replay(struct loader *ld, bool running)
{
	const struct settings *s = ld->out;
	unsigned line;

	if (s->history_replay <= s->history_memory)
		return 0;
	if ((line = line_of(ld, "history_replay")) == 0)
		line = line_of(ld, "history_memory");
	return fail(ld, line,
		    "'history_replay' (%d) must not exceed "
		    "'history_memory' (%d%s)",
		    s->history_replay, s->history_memory,
		    running ? ", as chatd runs: changing it takes a restart" : "");
}

/* The rules that tie settings together. */
static int
check_combination(struct loader *ld)
{
	if (follow_listen(ld, "tls_listen", &ld->out->tls_listen_follows) < 0 ||
	    follow_listen(ld, "irc_listen", &ld->out->irc_listen_follows) < 0 ||
	    check_listeners(ld) < 0 || check_server_name(ld) < 0)
		return -1;
	return check_replay(ld, false);
}

/* dst's value of setting d becomes a copy of src's (dst's own freed); -1 out of memory. */
static int
copy_setting(const struct setting_def *d, const struct settings *src, struct settings *dst)
{
	switch (d->type) {
	case T_INT:
	case T_INT64:
	case T_BOOL:
	case T_LOG_LEVEL:
	case T_CHOICE:
		store_number(dst, d, load_number(src, d));
		return 0;
	case T_PATH:
	case T_OPT_PATH:
	case T_STRING:
	case T_ROOM: {
		char *copy = strdup(*(char *const *)cfield(src, d->offset));

		if (copy == NULL)
			return -1;
		free(*(char **)field(dst, d->offset));
		*(char **)field(dst, d->offset) = copy;
		return 0;
	}
	case T_ADDRESSES: {
		const char *const *from = *(const char *const *const *)cfield(src, d->offset);
		size_t n = *(const size_t *)cfield(src, d->count_offset);
		char **copy = calloc(n > 0 ? n : 1, sizeof(*copy));

		if (copy == NULL)
			return -1;
		for (size_t i = 0; i < n; i++)
			if ((copy[i] = strdup(from[i])) == NULL) {
				free_strings(copy, i);
				return -1;
			}
		free_strings(*(char ***)field(dst, d->offset),
			     *(size_t *)field(dst, d->count_offset));
		*(char ***)field(dst, d->offset) = copy;
		*(size_t *)field(dst, d->count_offset) = n;
		*(bool *)field(dst, d->unset_flag_offset) =
			*(const bool *)cfield(src, d->unset_flag_offset);
		return 0;
	}
	}
	abort();
}

/*
 * A reload: the settings fixed until restart keep the values chatd runs
 * with (the file's changes to them are named in ld->fixed for the log), so
 * nothing reads a value that has not taken effect (max_line for a new
 * connection, history_memory for /history...); then the rules again.
 */
static int
keep_fixed(struct loader *ld)
{
	const struct settings *run = ld->running;
	struct settings *s = ld->out;

	settings_restart_needed(run, s, ld->fixed, ld->fixedlen);
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (!settings_table[i].reloadable && copy_setting(&settings_table[i], run, s) < 0)
			return fail_oom(ld);
	s->tls_listen_follows = run->tls_listen_follows;
	s->irc_listen_follows = run->irc_listen_follows;
	return check_replay(ld, true);
}

/* In file order, so the first error reported is the first in the file. */
static int
parse_file_settings(struct loader *ld, const config_t *cfg)
{
	const config_setting_t *root = config_root_setting(cfg);
	int n = config_setting_length(root);

	for (int i = 0; i < n; i++) {
		const config_setting_t *cs = config_setting_get_elem(root, i);
		const struct setting_def *d = find_def(config_setting_name(cs));

		if (d == NULL)
			return fail(ld, config_setting_source_line(cs), "unknown setting '%s'",
				    config_setting_name(cs));
		ld->found[d - settings_table] = cs;
		if (parse_setting(ld, d, cs) < 0)
			return -1;
	}
	return 0;
}

/* In table order, so state_dir and runtime_dir come before the paths inside them. */
static int
fill_defaults(struct loader *ld)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (ld->found[i] == NULL && fill_default(ld, &settings_table[i]) < 0)
			return -1;
	return 0;
}

static const char *
skip_comment(const char *p, unsigned *line)
{
	if (p[0] == '#' || (p[0] == '/' && p[1] == '/'))
		return p + strcspn(p, "\n");
	for (p += 2; *p != '\0' && !(p[0] == '*' && p[1] == '/'); p++)
		if (*p == '\n')
			(*line)++;
	return *p != '\0' ? p + 2 : p;
}

static const char *
skip_string(const char *p, unsigned *line)
{
	for (p++; *p != '\0' && *p != '"'; p++) {
		if (*p == '\\' && p[1] != '\0')
			p++;
		if (*p == '\n')
			(*line)++;
	}
	return *p != '\0' ? p + 1 : p;
}

/* Returns the end of the number at p, or NULL if it is a truncated one. */
static const char *
check_number(const char *p)
{
	const char *digits = p + (*p == '-' || *p == '+');
	bool hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
	char *end;
	long long v;

	errno = 0;
	v = strtoll(p, &end, hex ? 16 : 10);
	if (*end == '.' || *end == 'e' || *end == 'E')
		return end + strspn(end, "0123456789.eE+-");
	if (*end == 'L')
		return end + strspn(end, "L");
	if (errno == ERANGE || v < INT_MIN || v > INT_MAX)
		return NULL;
	return end;
}

/*
 * libconfig 1.5 (Debian 12) reads an integer without an L suffix with
 * atoi(), so "port = 4294974073;" silently becomes 7777: a small scan
 * finds such literals and refuses them.  It also refuses @include: errors
 * would carry another file's line numbers.  Malformed text does no harm
 * here; the parser reports it next.
 */
static int
check_literals(struct loader *ld, const char *text)
{
	unsigned line = 1;
	const char *p = text, *end;

	while (*p != '\0') {
		if (*p == '\n') {
			line++;
			p++;
		} else if (*p == '#' || (p[0] == '/' && (p[1] == '/' || p[1] == '*'))) {
			p = skip_comment(p, &line);
		} else if (*p == '"') {
			p = skip_string(p, &line);
		} else if (*p == '@') {
			return fail(ld, line, "@include is not supported");
		} else if (isalpha((unsigned char)*p) || *p == '_' || *p == '*') {
			p += strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "0123456789-_*");
		} else if (isdigit((unsigned char)*p) ||
			   ((*p == '-' || *p == '+') && isdigit((unsigned char)p[1]))) {
			if ((end = check_number(p)) == NULL)
				return fail(ld, line,
					    "%.*s does not fit in 32 bits; "
					    "write %.*sL for a 64-bit integer",
					    (int)strcspn(p, " \t\r\n;,])"), p,
					    (int)strcspn(p, " \t\r\n;,])"), p);
			p = end;
		} else {
			p++;
		}
	}
	return 0;
}

/* Reads the whole file: libconfig then parses it from memory. */
static char *
read_text(struct loader *ld)
{
	int fd = open(ld->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *text = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail_errno;
	if (!S_ISREG(st.st_mode)) {
		errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		goto fail_errno;
	}
	do {
		if (len + 1 >= cap) {
			char *bigger = realloc(text, cap = cap * 2 + 4096);

			if (bigger == NULL)
				goto fail_errno;
			text = bigger;
		}
		n = read(fd, text + len, cap - len - 1);
		if (n < 0 && errno != EINTR)
			goto fail_errno;
		len += n > 0 ? (size_t)n : 0;
	} while (n != 0);
	close(fd);
	text[len] = '\0';
	if (strlen(text) != len) {
		free(text);
		fail(ld, 0, "contains a NUL byte; not a text file");
		return NULL;
	}
	return text;

fail_errno:
	fail(ld, 0, "cannot read: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	free(text);
	return NULL;
}

static int
locate(struct loader *ld)
{
	char *slash;

	if ((ld->cwd = get_current_dir_name()) == NULL)
		return fail(ld, 0, "cannot find the current directory: %s", strerror(errno));
	if ((ld->local_dir = join_path(ld->cwd, CONFIG_LOCAL_DIR)) == NULL)
		return fail_oom(ld);
	if ((ld->out->config_file = realpath(ld->path, NULL)) == NULL)
		return fail(ld, 0, "cannot read: %s", strerror(errno));
	if ((ld->dir = strdup(ld->out->config_file)) == NULL)
		return fail_oom(ld);
	slash = strrchr(ld->dir, '/');
	slash[slash == ld->dir] = '\0'; /* keep "/" for a file in the root */
	return 0;
}

static int
load(struct loader *ld)
{
	char *text;
	config_t cfg;
	int rc = -1;

	/* The scan comes before parsing, which would follow an @include. */
	if ((text = read_text(ld)) == NULL || locate(ld) < 0 || check_literals(ld, text) < 0) {
		free(text);
		return -1;
	}
	config_init(&cfg);
	if (!config_read_string(&cfg, text))
		fail(ld, config_error_line(&cfg), "%s", config_error_text(&cfg));
	else if (parse_file_settings(ld, &cfg) == 0 && fill_defaults(ld) == 0 &&
		 (rc = check_combination(ld)) == 0 && ld->running != NULL)
		rc = keep_fixed(ld);
	config_destroy(&cfg);
	free(text);
	return rc;
}

static int
load_into(struct loader *ld_in)
{
	struct loader ld = *ld_in;
	struct settings *out = ld.out;
	int rc;

	memset(out, 0, sizeof(*out));
	if (ld.errlen > 0)
		ld.err[0] = '\0';
	if (ld.fixedlen > 0)
		ld.fixed[0] = '\0';
	rc = load(&ld);
	free(ld.dir);
	free(ld.cwd);
	free(ld.local_dir);
	if (rc < 0)
		settings_free(out);
	return rc;
}

int
settings_load(const char *path, struct settings *out, char *err, size_t errlen)
{
	struct loader ld = { .path = path, .err = err, .errlen = errlen, .out = out };

	return load_into(&ld);
}

int
settings_reload(const struct settings *running, struct settings *out, char *fixed, size_t fixedlen,
		char *err, size_t errlen)
{
	struct loader ld = { .path = running->config_file,
			     .err = err,
			     .errlen = errlen,
			     .out = out,
			     .running = running,
			     .fixed = fixed,
			     .fixedlen = fixedlen };

	return load_into(&ld);
}

void
settings_free(struct settings *s)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting_def *d = &settings_table[i];

		if (d->type == T_PATH || d->type == T_OPT_PATH || d->type == T_STRING ||
		    d->type == T_ROOM)
			free(*(char **)field(s, d->offset));
		else if (d->type == T_ADDRESSES)
			free_strings(*(char ***)field(s, d->offset),
				     *(size_t *)field(s, d->count_offset));
	}
	free(s->config_file);
	memset(s, 0, sizeof(*s));
}

static bool
same_strings(const char *const *a, size_t na, const char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

static bool
same_value(const struct setting_def *d, const struct settings *a, const struct settings *b)
{
	switch (d->type) {
	case T_INT:
	case T_INT64:
	case T_BOOL:
	case T_LOG_LEVEL:
	case T_CHOICE:
		return load_number(a, d) == load_number(b, d);
	case T_PATH:
	case T_OPT_PATH:
	case T_STRING:
	case T_ROOM:
		return strcmp(*(char *const *)cfield(a, d->offset),
			      *(char *const *)cfield(b, d->offset)) == 0;
	case T_ADDRESSES:
		return same_strings(*(const char *const *const *)cfield(a, d->offset),
				    *(const size_t *)cfield(a, d->count_offset),
				    *(const char *const *const *)cfield(b, d->offset),
				    *(const size_t *)cfield(b, d->count_offset));
	}
	abort();
}

void
settings_restart_needed(const struct settings *a, const struct settings *b, char *buf,
			size_t buflen)
{
	size_t used = 0;

	if (buflen == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting_def *d = &settings_table[i];
		int n;

		if (d->reloadable || same_value(d, a, b))
			continue;
		/* An unset tls_listen changes with listen, which says so already. */
		if (d->offset == offsetof(struct settings, tls_listen) && a->tls_listen_follows &&
		    b->tls_listen_follows)
			continue;
		if (d->offset == offsetof(struct settings, irc_listen) && a->irc_listen_follows &&
		    b->irc_listen_follows)
			continue;
		n = snprintf(buf + used, buflen - used, "%s%s", used > 0 ? ", " : "", d->name);
		if (n < 0 || (size_t)n >= buflen - used)
			return; /* truncated, still terminated */
		used += n;
	}
}

/* A libconfig string literal: quotes, backslashes and controls escaped. */
static void
write_string(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

static void
write_value(FILE *f, const struct setting_def *d, const struct settings *s)
{
	char *const *list;
	size_t n;

	switch (d->type) {
	case T_INT:
		fprintf(f, "%lld", load_number(s, d));
		break;
	case T_INT64:
		fprintf(f, "%lldL", load_number(s, d));
		break;
	case T_BOOL:
		fputs(load_number(s, d) ? "true" : "false", f);
		break;
	case T_LOG_LEVEL:
		write_string(f, log_level_name((enum log_level)load_number(s, d)));
		break;
	case T_CHOICE:
		write_string(f, d->choices[load_number(s, d)]);
		break;
	case T_PATH:
	case T_OPT_PATH:
	case T_STRING:
	case T_ROOM:
		write_string(f, *(char *const *)cfield(s, d->offset));
		break;
	case T_ADDRESSES:
		list = *(char *const *const *)cfield(s, d->offset);
		n = *(const size_t *)cfield(s, d->count_offset);
		putc('[', f);
		for (size_t i = 0; i < n; i++) {
			fputs(i > 0 ? ", " : " ", f);
			write_string(f, list[i]);
		}
		fputs(" ]", f);
		break;
	}
}

/* An address list left at its default stays commented out: still "unset". */
static bool
left_unset(const struct setting_def *d, const struct settings *s)
{
	return d->type == T_ADDRESSES && *(const bool *)cfield(s, d->unset_flag_offset);
}

int
settings_write(const struct settings *s, FILE *f)
{
	fprintf(f, "# chatd settings loaded from %s\n", s->config_file);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting_def *d = &settings_table[i];

		fprintf(f, "\n# %s (%s)\n%s%s = ", d->doc,
			d->reloadable ? "SIGHUP changes it" : "fixed until restart",
			left_unset(d, s) ? "# " : "", d->name);
		write_value(f, d, s);
		fputs(";\n", f);
	}
	return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

/*
 * Readers only load the pointer; every struct ever published stays on the
 * published list until exit, so a reader holding an old one is safe.
 */
static _Atomic(struct settings *) current;
static pthread_mutex_t published_lock = PTHREAD_MUTEX_INITIALIZER;
static struct settings *published; /* newest first, linked by ->older */

void
settings_publish(struct settings *s)
{
	pthread_mutex_lock(&published_lock);
	s->older = published;
	published = s;
	atomic_store_explicit(&current, s, memory_order_release);
	pthread_mutex_unlock(&published_lock);
}

const struct settings *
settings_get(void)
{
	return atomic_load_explicit(&current, memory_order_acquire);
}

void
settings_release_all(void)
{
	struct settings *s, *older;

	pthread_mutex_lock(&published_lock);
	atomic_store_explicit(&current, NULL, memory_order_release);
	for (s = published; s != NULL; s = older) {
		older = s->older;
		settings_free(s);
		free(s);
	}
	published = NULL;
	pthread_mutex_unlock(&published_lock);
}
