/*
 * test_ctl_trust.c - whom chatctl trusts to serve the admin socket:
 * ctl_uid_trusted() and the description its refusal prints.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl_trust.h"

static void
test_root_is_always_trusted(void **state)
{
	assert_true(ctl_uid_trusted(0, 1000, CTL_NO_UID));
	assert_true(ctl_uid_trusted(0, 1000, 105));
	assert_true(ctl_uid_trusted(0, 0, CTL_NO_UID));
}

static void
test_own_uid_is_trusted(void **state)
{
	assert_true(ctl_uid_trusted(1000, 1000, CTL_NO_UID));
	assert_true(ctl_uid_trusted(1000, 1000, 105));
}

static void
test_configured_user_is_trusted(void **state)
{
	assert_true(ctl_uid_trusted(105, 0, 105));
	assert_true(ctl_uid_trusted(105, 1000, 105));
}

static void
test_anyone_else_is_not(void **state)
{
	assert_false(ctl_uid_trusted(65534, 0, CTL_NO_UID));
	assert_false(ctl_uid_trusted(65534, 0, 105));
	assert_false(ctl_uid_trusted(65534, 1000, 105));
	assert_false(ctl_uid_trusted(1001, 1000, CTL_NO_UID));
	assert_false(ctl_uid_trusted(1, 1000, 105));
}

static void
test_no_credentials_are_never_trusted(void **state)
{
	/* SO_PEERCRED without a peer says uid -1: not "no configured user" matching. */
	assert_false(ctl_uid_trusted(CTL_NO_UID, 0, CTL_NO_UID));
	assert_false(ctl_uid_trusted(CTL_NO_UID, 1000, CTL_NO_UID));
	assert_false(ctl_uid_trusted(CTL_NO_UID, 1000, 105));
}

static void
test_init_looks_the_user_up(void **state)
{
	struct ctl_trust t;

	ctl_trust_init(&t, "root", "/x.conf");
	assert_int_equal(t.user, 0);
	assert_int_equal(t.own, getuid());
	assert_string_equal(t.user_name, "root");
	assert_string_equal(t.config, "/x.conf");
	ctl_trust_init(&t, "", "/x.conf");
	assert_true(t.user == CTL_NO_UID);
	ctl_trust_init(&t, NULL, NULL);
	assert_true(t.user == CTL_NO_UID);
	assert_null(t.config);
	ctl_trust_init(&t, "no-such-user-chatd-test", "/x.conf");
	assert_true(t.user == CTL_NO_UID);
}

static void
test_describe(void **state)
{
	struct ctl_trust t = { .own = 0, .user = CTL_NO_UID, .user_name = "", .config = NULL };
	char buf[512];

	ctl_trust_describe(&t, buf, sizeof(buf));
	assert_string_equal(buf, "root (chatctl's own user)");

	t = (struct ctl_trust){ .own = 0, .user = 105, .user_name = "chatd", .config = "/c" };
	ctl_trust_describe(&t, buf, sizeof(buf));
	assert_string_equal(buf,
			    "root (chatctl's own user) or chatd's user chatd (uid 105, set in /c)");

	t = (struct ctl_trust){ .own = 0, .user = CTL_NO_UID, .user_name = "gone", .config = "/c" };
	ctl_trust_describe(&t, buf, sizeof(buf));
	assert_string_equal(
		buf, "root (chatctl's own user); chatd's user gone, set in /c, does not exist");

	/* The configured user root or chatctl's own user is not named twice. */
	t = (struct ctl_trust){ .own = 0, .user = 0, .user_name = "root", .config = "/c" };
	ctl_trust_describe(&t, buf, sizeof(buf));
	assert_string_equal(buf, "root (chatctl's own user)");
}

static void
test_describe_names_a_user_own_uid(void **state)
{
	/* A uid nobody has: getpwuid() finds no name for it. */
	uid_t ghost = 4000000123u;
	struct ctl_trust t = { .own = ghost, .user = 105, .user_name = "chatd", .config = "/c" };
	char buf[512], want[512];

	if (getpwuid(ghost) != NULL)
		skip();
	ctl_trust_describe(&t, buf, sizeof(buf));
	snprintf(want, sizeof(want),
		 "root, chatctl's own user without a name (uid %u) or chatd's user chatd (uid 105, "
		 "set in /c)",
		 (unsigned)ghost);
	assert_string_equal(buf, want);
	t.user = CTL_NO_UID;
	t.user_name[0] = '\0';
	ctl_trust_describe(&t, buf, sizeof(buf));
	snprintf(want, sizeof(want), "root or chatctl's own user without a name (uid %u)",
		 (unsigned)ghost);
	assert_string_equal(buf, want);
}

static void
test_describe_is_cut_to_fit(void **state)
{
	struct ctl_trust t = { .own = 0, .user = 105, .user_name = "chatd", .config = "/c" };
	char buf[16];

	memset(buf, 'x', sizeof(buf));
	ctl_trust_describe(&t, buf, sizeof(buf));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_memory_equal(buf, "root (chatctl's", sizeof(buf) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_is_always_trusted),
		cmocka_unit_test(test_own_uid_is_trusted),
		cmocka_unit_test(test_configured_user_is_trusted),
		cmocka_unit_test(test_anyone_else_is_not),
		cmocka_unit_test(test_no_credentials_are_never_trusted),
		cmocka_unit_test(test_init_looks_the_user_up),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_describe_names_a_user_own_uid),
		cmocka_unit_test(test_describe_is_cut_to_fit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
