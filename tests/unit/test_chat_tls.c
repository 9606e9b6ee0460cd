/*
 * test_chat_tls.c - the pieces of chat's TLS that need no server: the
 * --fingerprint syntax (client/tls.c, tls_parse_fingerprint()) and which
 * peer addresses are loopback, where a password in clear draws no warning
 * (client/conn.c, conn_addr_is_loopback()).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "conn.h"
#include "tls.h"

#define HEX64 "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
#define COLONS \
	"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:" \
	"dd:ee:ff"

static void
check_pin(const unsigned char pin[TLS_PIN_LEN])
{
	for (int i = 0; i < TLS_PIN_LEN; i++)
		assert_int_equal(pin[i], (i % 16) * 0x11);
}

static void
test_fingerprint_forms_accepted(void **state)
{
	const char *forms[] = { HEX64,  "SHA256:" HEX64,  "sha256:" HEX64,
				COLONS, "SHA256:" COLONS, "Sha256:" COLONS };

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		unsigned char pin[TLS_PIN_LEN];

		memset(pin, 0x5a, sizeof(pin));
		assert_int_equal(tls_parse_fingerprint(forms[i], pin), 0);
		check_pin(pin);
	}
}

static void
test_fingerprint_bad_forms_refused(void **state)
{
	const char *bad[] = {
		"",
		"SHA256:",
		"SHA1:" HEX64,
		HEX64 "00",          /* 33 bytes */
		"00112233",          /* too short */
		HEX64 + 1,           /* odd number of digits */
		"SHA256:" HEX64 ":", /* trailing colon */
		":" HEX64,           /* leading colon */
		"00::11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:"
		"cc:dd:ee:ff", /* two colons */
		"0:0112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF", /* half a pair */
		"g0112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF", /* not hex */
		"SHA256 " HEX64,
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned char pin[TLS_PIN_LEN];

		if (tls_parse_fingerprint(bad[i], pin) == 0)
			fail_msg("accepted %s", bad[i]);
	}
}

static int
v4(const char *text, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	return inet_pton(AF_INET, text, &sin->sin_addr);
}

static int
v6(const char *text, struct sockaddr_in6 *sin6)
{
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	return inet_pton(AF_INET6, text, &sin6->sin6_addr);
}

static void
test_loopback_addresses(void **state)
{
	const char *loop4[] = { "127.0.0.1", "127.1.2.3", "127.255.255.254" };
	const char *other4[] = { "10.0.0.1", "192.0.2.7", "0.0.0.0", "128.0.0.1",
				 "126.255.255.255" };
	const char *loop6[] = { "::1", "::ffff:127.0.0.1", "::ffff:127.9.8.7" };
	const char *other6[] = { "::",  "2001:db8::1", "fe80::1", "::ffff:192.0.2.7",
				 "::2", "::127.0.0.1" };
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	for (size_t i = 0; i < sizeof(loop4) / sizeof(loop4[0]); i++) {
		assert_int_equal(v4(loop4[i], &sin), 1);
		assert_true(conn_addr_is_loopback((struct sockaddr *)&sin));
	}
	for (size_t i = 0; i < sizeof(other4) / sizeof(other4[0]); i++) {
		assert_int_equal(v4(other4[i], &sin), 1);
		if (conn_addr_is_loopback((struct sockaddr *)&sin))
			fail_msg("%s taken for loopback", other4[i]);
	}
	for (size_t i = 0; i < sizeof(loop6) / sizeof(loop6[0]); i++) {
		assert_int_equal(v6(loop6[i], &sin6), 1);
		assert_true(conn_addr_is_loopback((struct sockaddr *)&sin6));
	}
	for (size_t i = 0; i < sizeof(other6) / sizeof(other6[0]); i++) {
		assert_int_equal(v6(other6[i], &sin6), 1);
		if (conn_addr_is_loopback((struct sockaddr *)&sin6))
			fail_msg("%s taken for loopback", other6[i]);
	}
	assert_false(conn_addr_is_loopback((struct sockaddr *)&sun));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fingerprint_forms_accepted),
		cmocka_unit_test(test_fingerprint_bad_forms_refused),
		cmocka_unit_test(test_loopback_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
