/*
 * test_peers.c - the connection limits of peers.c: logged in against
 * max_clients, logging in against max_logins (dropping the oldest login of
 * the address that holds the most), an IPv6 /64 counting as one address.
 * Connections are socketpairs: a dropped one reads EOF on the other end.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "peers.h"
#include "test_addr.h"

struct conn {
	struct sockaddr_storage addr;
	int fd;   /* chatd's end */
	int peer; /* the client's end */
};

static const struct peers_limits lim = {
	.max_clients = 3,
	.max_clients_per_address = 4,
	.max_logins = 4,
	.max_logins_per_address = 3,
};

/* Admits a new connection from text; false (why filled) if refused. */
static bool
admit(struct conn *c, const char *text, char *why, size_t whylen)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c->addr = test_addr(text);
	c->fd = sv[0];
	c->peer = sv[1];
	if (peers_admit(&c->addr, c->fd, &lim, why, whylen))
		return true;
	close(c->fd);
	close(c->peer);
	return false;
}

static bool
dropped(const struct conn *c)
{
	char byte;

	return recv(c->peer, &byte, 1, MSG_DONTWAIT) == 0;
}

static void
end(struct conn *c)
{
	peers_close(&c->addr, c->fd);
	close(c->peer);
}

static int
setup(void **state)
{
	peers_reset();
	return 0;
}

static void
test_ipv6_counts_per_64(void **state)
{
	struct conn c[4];
	char why[128];
	size_t in, logging;

	assert_true(admit(&c[0], "2001:db8:1:2::1", why, sizeof(why)));
	assert_true(admit(&c[1], "2001:db8:1:2:ffff::9", why, sizeof(why)));
	assert_true(admit(&c[2], "2001:db8:1:2:1:2:3:4", why, sizeof(why)));
	/* A fourth from the same /64 is over max_logins_per_address... */
	assert_false(admit(&c[3], "2001:db8:1:2::77", why, sizeof(why)));
	assert_string_equal(why, "too many logins in progress from your address (3)");
	/* ...another /64 is another address. */
	assert_true(admit(&c[3], "2001:db8:1:3::1", why, sizeof(why)));
	peers_counts(&in, &logging);
	assert_int_equal(logging, 4);
	for (int i = 0; i < 4; i++)
		end(&c[i]);
	peers_counts(&in, &logging);
	assert_int_equal(in + logging, 0);
}

static void
test_full_budget_drops_the_oldest_of_the_biggest(void **state)
{
	struct conn a[3], b, user, other;
	char why[128];

	assert_true(admit(&a[0], "192.0.2.1", why, sizeof(why)));
	assert_true(admit(&b, "192.0.2.2", why, sizeof(why)));
	assert_true(admit(&a[1], "192.0.2.1", why, sizeof(why)));
	assert_true(admit(&a[2], "192.0.2.1", why, sizeof(why)));
	/* Full (4): a newcomer takes the place of 192.0.2.1's oldest. */
	assert_true(admit(&user, "198.51.100.7", why, sizeof(why)));
	assert_true(dropped(&a[0]));
	assert_false(dropped(&a[1]) || dropped(&b) || dropped(&user));
	/* The dropped one cannot log in; its owner ends it as usual. */
	assert_false(peers_logged_in(&a[0].addr, a[0].fd, lim.max_clients, true));
	end(&a[0]);
	/* The user logs in: no longer in the budget, now a max_clients slot. */
	assert_true(peers_logged_in(&user.addr, user.fd, lim.max_clients, true));
	assert_true(admit(&other, "203.0.113.5", why, sizeof(why)));
	/* Now 4 logging in, 1 from each... but 192.0.2.1 holds 2: its oldest goes. */
	struct conn late;
	assert_true(admit(&late, "203.0.113.6", why, sizeof(why)));
	assert_true(dropped(&a[1]));
	assert_false(dropped(&a[2]) || dropped(&b) || dropped(&other) || dropped(&user));
	end(&a[1]);
	end(&a[2]);
	end(&b);
	end(&other);
	end(&late);
	end(&user);
}

static void
test_every_login_from_another_address_refuses_the_newcomer(void **state)
{
	const char *addrs[] = { "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4" };
	struct conn c[4], extra;
	char why[128];

	for (int i = 0; i < 4; i++)
		assert_true(admit(&c[i], addrs[i], why, sizeof(why)));
	assert_false(admit(&extra, "192.0.2.5", why, sizeof(why)));
	assert_string_equal(why, "too many logins in progress (4); try again");
	/* But one more from an address already logging in replaces its own. */
	assert_true(admit(&extra, "192.0.2.1", why, sizeof(why)));
	assert_true(dropped(&c[0]));
	for (int i = 0; i < 4; i++)
		end(&c[i]);
	end(&extra);
}

static void
test_max_clients_counts_logged_in_only(void **state)
{
	struct conn c[4];
	char why[128];

	for (int i = 0; i < 3; i++) {
		assert_true(admit(&c[i], "192.0.2.1", why, sizeof(why)));
		assert_true(peers_logged_in(&c[i].addr, c[i].fd, lim.max_clients, true));
	}
	/* Three logged in: full; a newcomer is refused at once. */
	assert_false(admit(&c[3], "192.0.2.9", why, sizeof(why)));
	assert_string_equal(why, "server is full (3 clients)");
	end(&c[2]);
	assert_true(admit(&c[3], "192.0.2.1", why, sizeof(why)));
	/* max_clients_per_address (4) counts both kinds: 2 logged in, 2 logging in. */
	struct conn more, over;
	assert_true(admit(&more, "192.0.2.1", why, sizeof(why)));
	assert_false(admit(&over, "192.0.2.1", why, sizeof(why)));
	assert_string_equal(why, "too many connections from your address (4)");
	end(&c[0]);
	end(&c[1]);
	end(&c[3]);
	end(&more);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_ipv6_counts_per_64, setup),
		cmocka_unit_test_setup(test_full_budget_drops_the_oldest_of_the_biggest, setup),
		cmocka_unit_test_setup(test_every_login_from_another_address_refuses_the_newcomer,
				       setup),
		cmocka_unit_test_setup(test_max_clients_counts_logged_in_only, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
