/*
 * log.h - the service log.
 *
 * One line per event: "TIME LEVEL message", TIME in RFC 3339 UTC.  The whole
 * formatted message is escaped (escape.h), so nothing a client sends can
 * forge a log line.  Chat text and passwords are never logged.
 *
 * Thread-safe: any thread may log.  The file is opened with O_APPEND, so
 * each line lands whole; log_reopen() (SIGHUP, logrotate) swaps the file
 * descriptor with dup3(), which is atomic for concurrent writers.
 */
#ifndef CHATD_LOG_H
#define CHATD_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* Values are syslog/sd-daemon priorities, used as "<N>" prefixes on stderr. */
enum log_level {
	LVL_ERROR = 3,
	LVL_WARNING = 4,
	LVL_NOTICE = 5,
	LVL_INFO = 6,
	LVL_DEBUG = 7,
};

/* "error", "warning", "notice", "info", "debug" -> level; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/*
 * Opens (creating, mode 0640) the log file, never through a symbolic link
 * or into someone else's file (safefile.h); -1 with errno on failure.
 */
int log_open(const char *path);
/* Until log_open(), keep the lines for the file instead of writing them to stderr. */
void log_hold(void);
/* Opens the same path again (after logrotate moved the old file away). */
int log_reopen(void);
/* Truncates the log file; writers go on at offset 0. */
int log_truncate(void);
void log_close(void);
const char *log_path(void);

void log_set_level(enum log_level level);
/* Whether lines of this level are logged (the level set, log_level). */
bool log_enabled(enum log_level level);
/*
 * Also write every line to stderr: with sd-daemon "<N>" priority prefixes
 * when with_priority is true (stderr is the journal), plain otherwise.
 */
void log_set_stderr(bool enabled, bool with_priority);

/* Lines that could not be written whole (disk full, closed stderr...). */
unsigned long log_write_errors(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LVL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LVL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LVL_DEBUG, __VA_ARGS__)

/*
 * A warning that may repeat fast (a full disk fails every write): one per
 * LOG_GATE_INTERVAL_MS, the others only counted.  Zeroed: the first one
 * passes.  Not locked: its owner's lock guards it.
 */
#define LOG_GATE_INTERVAL_MS 10000

struct log_gate {
	int64_t quiet_until; /* time_mono_ms() */
	unsigned long held;  /* held back since the last warning */
};

/*
 * Whether a warning may go out now; if not, it is counted.  *held_back is how
 * many were held back before this one.
 */
bool log_gate_pass(struct log_gate *g, unsigned long *held_back);
/*
 * "path: what: strerror(err)" as a warning through the gate, with the
 * count of those held back since the last one.
 */
void log_gate_warn_io(struct log_gate *g, const char *path, const char *what, int err);

#endif
