/*
 * ctl_trust.c - whom chatctl trusts to serve the admin socket (see
 * ctl_trust.h): the decision, and its description for error messages.
 * Called from chatctl's one thread only.
 */
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl_trust.h"

bool
ctl_uid_trusted(uid_t peer, uid_t own, uid_t user)
{
	if (peer == CTL_NO_UID)
		return false;
	return peer == 0 || peer == own || (user != CTL_NO_UID && peer == user);
}

void
ctl_trust_init(struct ctl_trust *t, const char *user_name, const char *config)
{
	const struct passwd *pw;

	t->own = getuid();
	t->user = CTL_NO_UID;
	t->config = config;
	snprintf(t->user_name, sizeof(t->user_name), "%s", user_name != NULL ? user_name : "");
	if (t->user_name[0] != '\0' && (pw = getpwnam(t->user_name)) != NULL)
		t->user = pw->pw_uid;
}

/* Appends what fmt says to buf, which holds *used bytes, as far as it fits. */
__attribute__((format(printf, 4, 5))) static void
describe_add(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used + 1 >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n > 0)
		*used += (size_t)n < len - *used ? (size_t)n : len - *used - 1;
}

void
ctl_trust_describe(const struct ctl_trust *t, char *buf, size_t len)
{
	const struct passwd *pw = t->own != 0 ? getpwuid(t->own) : NULL;
	bool user = t->user != CTL_NO_UID && t->user != 0 && t->user != t->own;
	const char *config = t->config != NULL ? t->config : "the configuration";
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	describe_add(buf, len, &used, "root%s", t->own == 0 ? " (chatctl's own user)" : "");
	if (t->own != 0)
		describe_add(buf, len, &used, "%s chatctl's own user %s (uid %u)",
			     user ? "," : " or", pw != NULL ? pw->pw_name : "without a name",
			     (unsigned)t->own);
	if (user)
		describe_add(buf, len, &used, " or chatd's user %s (uid %u, set in %s)",
			     t->user_name, (unsigned)t->user, config);
	if (t->user_name[0] != '\0' && t->user == CTL_NO_UID)
		describe_add(buf, len, &used, "; chatd's user %s, set in %s, does not exist",
			     t->user_name, config);
}
