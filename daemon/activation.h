/*
 * activation.h - sockets handed over by systemd (socket activation,
 * sd_listen_fds(3)): TCP listeners for the chat, and the admin socket.
 *
 * A socket is told apart by its FileDescriptorName= ("admin" for the admin
 * socket, "tls" for the TLS listener) or else by its kind: AF_UNIX is the
 * admin socket, AF_INET and AF_INET6 are chat listeners (plain unless named
 * "tls").  Taken once, by the control thread at start.
 */
#ifndef CHATD_ACTIVATION_H
#define CHATD_ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>

#define ACTIVATION_MAX 16

struct activation {
	int tcp[ACTIVATION_MAX];
	bool tcp_tls[ACTIVATION_MAX]; /* FileDescriptorName=tls: the TLS listener */
	size_t n_tcp;
	int admin; /* -1 if none */
};

/* Fills act from $LISTEN_FDS (and unsets it); sockets of no use are closed. */
void activation_take(struct activation *act);

#endif
