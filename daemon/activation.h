/*
 * activation.h - sockets handed over by systemd (socket activation,
 * sd_listen_fds(3)): TCP listeners for the chat, and the admin socket.
 *
 * A socket is told apart by its FileDescriptorName= ("admin" for the admin
 * socket) or else by its kind: AF_UNIX is the admin socket, AF_INET and
 * AF_INET6 are chat listeners.  Taken once, by the control thread at start.
 */
#ifndef CHATD_ACTIVATION_H
#define CHATD_ACTIVATION_H

#include <stddef.h>

#define ACTIVATION_MAX 16

struct activation {
	int tcp[ACTIVATION_MAX];
	size_t n_tcp;
	int admin; /* -1 if none */
};

/* Fills act from $LISTEN_FDS (and unsets it); sockets of no use are closed. */
void activation_take(struct activation *act);

#endif
