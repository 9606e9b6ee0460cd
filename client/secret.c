/*
 * secret.c - reading a password without showing it or leaving it about:
 * the memory is wiped before it is freed, the environment variable is
 * removed once read, and the terminal's echo is off while it is typed.
 * No state of its own; chat's one thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secret.h"
#include "secret_tty.h"

#define SECRET_MAX 65536

void
secret_free(char *s)
{
	secret_wipe_free(s);
}

/* The first line of s, without its line end. */
static void
cut_first_line(char *s)
{
	s[strcspn(s, "\r\n")] = '\0';
}

static int
read_file(const char *file, char **out, char *err, size_t errsz)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	char *buf;
	ssize_t n;
	size_t len = 0;
	struct stat st;

	if (fd < 0) {
		snprintf(err, errsz, "cannot open password file %s: %s", file, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		fprintf(stderr, "chat: warning: password file %s can be read by others\n", file);
	buf = malloc(SECRET_MAX + 1);
	if (buf == NULL) {
		close(fd);
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	while (len < SECRET_MAX && (n = read(fd, buf + len, SECRET_MAX - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errsz, "cannot read password file %s: %s", file,
				 strerror(errno));
			close(fd);
			explicit_bzero(buf, len);
			free(buf);
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	cut_first_line(buf);
	if (buf[0] == '\0') {
		snprintf(err, errsz, "password file %s holds no password on its first line", file);
		free(buf);
		return -1;
	}
	*out = buf;
	return 0;
}

int
secret_load(const char *file, char **out, char *err, size_t errsz)
{
	const char *env = getenv(SECRET_ENV);

	*out = NULL;
	if (file != NULL)
		return read_file(file, out, err, errsz);
	if (env == NULL || env[0] == '\0')
		return 0;
	*out = strdup(env);
	if (*out == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	cut_first_line(*out);
	/* Nothing this process starts needs it, and /proc/PID/environ keeps the original. */
	explicit_bzero((char *)env, strlen(env));
	unsetenv(SECRET_ENV);
	return 0;
}

char *
secret_prompt(int fd, const char *prompt)
{
	return tty_read_secret(fd, stdout, prompt, SECRET_MAX);
}
