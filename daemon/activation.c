/*
 * activation.c - sorting the sockets systemd passed (see activation.h).
 * No state of its own: the control (main) thread calls it once at
 * start-up, before any other thread exists (activation_take() unsets
 * $LISTEN_FDS).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "activation.h"
#include "log.h"

static void
sort_socket(struct activation *act, int fd, const char *name)
{
	bool named_admin = name != NULL && strcmp(name, "admin") == 0;

	if ((named_admin || sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0) && act->admin < 0) {
		act->admin = fd;
		return;
	}
	if (!named_admin && sd_is_socket_inet(fd, 0, SOCK_STREAM, 1, 0) > 0 &&
	    act->n_tcp < ACTIVATION_MAX) {
		act->tcp_tls[act->n_tcp] = name != NULL && strcmp(name, "tls") == 0;
		act->tcp[act->n_tcp++] = fd;
		return;
	}
	log_warning("closing socket %d (%s) from systemd: not a listening TCP or admin socket", fd,
		    name != NULL ? name : "unnamed");
	close(fd);
}

void
activation_take(struct activation *act)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);

	memset(act, 0, sizeof(*act));
	act->admin = -1;
	if (n < 0)
		log_warning("cannot take the sockets from systemd: %s", strerror(-n));
	for (int i = 0; i < n; i++)
		sort_socket(act, SD_LISTEN_FDS_START + i, names != NULL ? names[i] : NULL);
	if (names != NULL) {
		for (int i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
}
