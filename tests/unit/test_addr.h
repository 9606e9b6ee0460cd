/*
 * test_addr.h - test_addr(): a socket address from "192.0.2.1" or
 * "2001:db8::1" text (port 0), for the unit tests of what counts by address
 * (test_throttle.c, test_peers.c, test_auth.c).  Include after <cmocka.h>.
 */
#ifndef CHATD_TEST_ADDR_H
#define CHATD_TEST_ADDR_H

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

static struct sockaddr_storage
test_addr(const char *text)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
		in6->sin6_family = AF_INET6;
	}
	return ss;
}

#endif
