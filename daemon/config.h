/*
 * config.h - chatd's settings: loading, checking and publishing them.
 *
 * One table in config.c describes every setting (name, type, default,
 * bounds, whether SIGHUP may change it, one line of documentation); loading,
 * validation and the "restart needed" check on reload are all driven by it,
 * and etc/chatd.conf documents the same settings.
 *
 * Ownership: a struct settings is immutable once published.  The control
 * thread loads a new one on SIGHUP and publishes it with settings_publish();
 * every other thread reads the current one through settings_get() (an atomic
 * pointer) and must not keep the pointer across a blocking call.  Published
 * settings are freed only by settings_release_all() at exit, so a reader
 * never sees freed memory.
 */
#ifndef CHATD_CONFIG_H
#define CHATD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_DEFAULT_FILE "/etc/chatd/chatd.conf"
/* Where unset paths go when systemd does not say ($STATE_DIRECTORY...). */
#define CONFIG_LOCAL_DIR "chatd-data"

/* room_create: who may create a room by joining it. */
enum room_create_mode {
	ROOM_CREATE_ANYONE,
	ROOM_CREATE_REGISTERED, /* anyone but guests */
	ROOM_CREATE_ADMIN,      /* only the operator (chatctl) */
};
/* tls_min_version */
enum tls_min_version {
	TLS_MIN_1_2,
	TLS_MIN_1_3,
};
/* plain_login: who may log in on the plain port while TLS is on. */
enum plain_login_mode {
	PLAIN_LOGIN_ALLOW,
	PLAIN_LOGIN_LOOPBACK,
	PLAIN_LOGIN_DENY,
};

/* The bound of max_rooms_per_user: a session's memberships are an array of this. */
#define ROOMS_PER_USER_MAX 1000

struct settings {
	/* --- fixed until restart --- */
	char *config_file; /* absolute path of the file loaded */
	char **listen;     /* addresses to bind, n_listen of them */
	size_t n_listen;
	bool listen_is_default; /* "listen" unset: failures of one address only warn */
	int port;               /* 0: let the kernel choose; -1: no plain listener */
	char **tls_listen;      /* addresses of the TLS listener, n_tls_listen of them */
	size_t n_tls_listen;
	bool tls_listen_is_default; /* unset, and listen unset too */
	bool tls_listen_follows;    /* unset: a copy of listen */
	int tls_port;               /* the TLS listener's; it runs when tls_cert is set */
	bool irc;                   /* the IRC gateway runs */
	char **irc_listen;          /* addresses of the IRC listeners, n_irc_listen of them */
	size_t n_irc_listen;
	bool irc_listen_is_default; /* unset, and listen unset too */
	bool irc_listen_follows;    /* unset: a copy of listen */
	int irc_port;               /* plain IRC; -1 off */
	int irc_tls_port;           /* IRC over TLS (with tls_cert); -1 off */
	char *server_name;          /* in IRC prefixes and numerics */
	int port_tries;             /* next ports to try when port is busy */
	char *state_dir;            /* holds the lock file */
	char *history_file;
	char *ident_file;
	char *rooms_file;   /* the rooms and their topics (roomstore) */
	char *default_room; /* the room everyone is in after login */
	char *log_file;
	char *runtime_dir;        /* admin socket, pid file */
	char *admin_socket;       /* path of the admin socket */
	char *admin_group;        /* "" for none */
	char *user;               /* run as this user when started as root; "" keep */
	int64_t stack_size;       /* client thread stack, bytes */
	int max_line;             /* longest client line, bytes */
	int history_memory;       /* messages held in memory, per room */
	int64_t history_max_size; /* compact the history file above this */
	int history_sync_ms;      /* 0: durable ack (group commit) */
	int hash_concurrency;     /* password hashes at once; 0 = one per core */

	/* --- changeable by SIGHUP --- */
	int log_level; /* enum log_level */
	int hash_cost; /* yescrypt cost, 1..11 */
	int max_clients;
	int max_clients_per_address;
	int max_logins; /* connections not logged in yet */
	int max_logins_per_address;
	int login_timeout; /* seconds */
	int login_attempts;
	int login_fail_delay_ms;
	int login_fail_delay_max_ms; /* the growing delay stops here */
	int history_replay;          /* messages a joining user gets, per room */
	int64_t send_queue_limit;    /* bytes */
	bool registration;           /* unknown names may register */
	bool guests;                 /* unregistered names may log in without a password */
	int irc_flood_burst;         /* IRC lines at once before fakelag */
	int irc_flood_rate;          /* IRC lines per second after the burst */
	int room_notice_limit;       /* no JOIN/PART in a room with more members */
	int room_create;             /* enum room_create_mode */
	int max_rooms;               /* rooms at once, the default room included */
	int max_rooms_per_user;      /* rooms one session may be in */
	int max_topic;               /* longest topic, bytes */
	int room_expiry;             /* seconds a user's room may stay empty; 0 never */
	int peer_timeout;            /* seconds until a silent dead peer is reaped */
	int resume_token_ttl;        /* seconds a resume token lives; 0: no tokens */
	char *tls_cert;              /* PEM chain; "": TLS off */
	char *tls_key;               /* PEM key; "": in tls_cert */
	int tls_min_version;         /* enum tls_min_version */
	int handshake_timeout;       /* seconds */
	int plain_login;             /* enum plain_login_mode */

	/* --- bookkeeping, config.c only --- */
	struct settings *older; /* published before this one */
};

/*
 * Loads path into *out (zeroed first).  On failure returns -1 and writes
 * "FILE:LINE: what is wrong" (or "FILE: what is wrong") into err.
 */
int settings_load(const char *path, struct settings *out, char *err, size_t errlen);
/*
 * A reload (SIGHUP): loads running's config file into *out as
 * settings_load() does, but every setting fixed until restart keeps
 * running's value; the names of those the file changed go to fixed
 * (comma-separated, "" if none).  history_replay is held to the running
 * history_memory.
 */
int settings_reload(const struct settings *running, struct settings *out, char *fixed,
		    size_t fixedlen, char *err, size_t errlen);
void settings_free(struct settings *s);

/*
 * Writes s to f in chatd.conf syntax, every setting with its documentation,
 * so that loading the output gives the same settings (e.g. to show what a
 * running daemon uses).  Returns -1 if writing failed.
 */
int settings_write(const struct settings *s, FILE *f);

/*
 * Names of the settings that differ between a and b but can only change at
 * restart, comma-separated, into buf ("" if none).
 */
void settings_restart_needed(const struct settings *a, const struct settings *b, char *buf,
			     size_t buflen);

/* Makes s (heap-allocated, loaded) the current settings; takes ownership. */
void settings_publish(struct settings *s);
const struct settings *settings_get(void);
void settings_release_all(void);

#endif
