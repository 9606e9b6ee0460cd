/*
 * ctl_conn.h - chatctl's connection to chatd's admin socket: connect with a
 * timeout, check who listens there before a byte is sent (ctl_trust.h),
 * send one request, read its reply line by line, each read bounded by the
 * same timeout, so chatctl never hangs on a stuck daemon.  chatctl has one
 * thread.
 */
#ifndef CHATCTL_CONN_H
#define CHATCTL_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "ctl_trust.h"
#include "linebuf.h"

/* chatctl's exit codes (chatctl(8)). */
enum ctl_exit {
	CTL_OK = 0,
	CTL_REFUSED = 1, /* chatd answered ERR to the command */
	CTL_USAGE = 2,
	/* no daemon, no permission (file mode or ERR 403), no answer, an untrusted listener */
	CTL_UNREACHABLE = 3,
};

struct ctl_conn {
	int fd;
	const char *path;
	int timeout_ms;
	const struct ctl_trust *trust;
	struct linebuf in;
};

/*
 * Connects to path and reads the listener's credentials (SO_PEERCRED: the
 * process that called listen()).  CTL_OK only when trust trusts its uid;
 * otherwise, or when they cannot be read, nothing is sent, the connection
 * is closed and it is CTL_UNREACHABLE with the reason on stderr, as for
 * no daemon.  trust must outlive c.
 */
int ctl_connect(struct ctl_conn *c, const char *path, const struct ctl_trust *trust,
		int timeout_ms);
void ctl_close(struct ctl_conn *c);

/* Has chatd closed the connection (idle, restarted)?  Does not block. */
bool ctl_closed(struct ctl_conn *c);

/*
 * Sends request (no line end) and prints the reply: the data lines to
 * stdout, or if there were none the OK text; an ERR text to stderr.
 * Returns a ctl_exit code.
 */
int ctl_request(struct ctl_conn *c, const char *request);

#endif
