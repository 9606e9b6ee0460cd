/*
 * config.c - fuzz target for the configuration loader (daemon/config.c).
 *
 * Input: the text of a chatd.conf.  settings_load() only reads files, so
 * each input is written to a file in the target's temporary directory
 * (on tmpfs when fuzz/run can, so no disk is touched per input).
 *
 * Checked: a refusal says which file ("FILE:LINE: ..." or "FILE: ..."); an
 * accepted file gives settings within their documented bounds, with
 * absolute paths and numeric listen addresses; and settings_write() of
 * them loads back to the very same settings (compared through the text
 * settings_write() makes, which names every setting).
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"

static char conf_path[PATH_MAX], again_path[PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init_process();
	fuzz_path(conf_path, "chatd.conf");
	fuzz_path(again_path, "written.conf");
	return 0;
}

/* settings_write() output without its first line, which names the file loaded. */
static char *
written(const struct settings *s)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	fuzz_assert(f != NULL);
	fuzz_assert(settings_write(s, f) == 0);
	fclose(f);
	char *body = strchr(text, '\n');
	fuzz_assert(body != NULL);
	memmove(text, body + 1, strlen(body + 1) + 1);
	return text;
}

static void
check_bounds(const struct settings *s)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *paths[] = { s->config_file, s->state_dir, s->history_file,
				s->ident_file,  s->log_file,  s->runtime_dir };

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		fuzz_assert(paths[i] != NULL && paths[i][0] == '/');
	fuzz_assert(s->n_listen >= 1);
	for (size_t i = 0; i < s->n_listen; i++)
		fuzz_assert(inet_pton(AF_INET, s->listen[i], addr) == 1 ||
			    inet_pton(AF_INET6, s->listen[i], addr) == 1);
	/* -1: no plain listener, only with a TLS one. */
	fuzz_assert(s->port >= -1 && s->port <= 65535);
	fuzz_assert(s->port >= 0 || s->tls_cert[0] != '\0');
	fuzz_assert(s->tls_port >= 0 && s->tls_port <= 65535);
	fuzz_assert(s->tls_cert[0] == '\0' || s->tls_cert[0] == '/');
	fuzz_assert(s->tls_key[0] == '\0' || s->tls_key[0] == '/');
	fuzz_assert(s->n_tls_listen >= 1);
	for (size_t i = 0; i < s->n_tls_listen; i++)
		fuzz_assert(inet_pton(AF_INET, s->tls_listen[i], addr) == 1 ||
			    inet_pton(AF_INET6, s->tls_listen[i], addr) == 1);
	fuzz_assert(s->max_line >= 64 && s->max_line <= 65536);
	fuzz_assert(s->history_memory >= 1);
	fuzz_assert(s->history_replay >= 0 && s->history_replay <= s->history_memory);
	fuzz_assert(s->hash_cost >= 1 && s->hash_cost <= 11);
	fuzz_assert(s->log_level >= 3 && s->log_level <= 7);
	fuzz_assert(s->login_attempts >= 1);
	fuzz_assert(s->send_queue_limit >= 4096);
	fuzz_assert(s->stack_size >= 65536);
}

/* An error names the file first: "FILE:LINE: text" or "FILE: text". */
static void
check_error(const char *err)
{
	size_t n = strlen(conf_path);

	fuzz_assert(strncmp(err, conf_path, n) == 0 && err[n] == ':');
	fuzz_assert(strchr(err, '\n') == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings s, again;
	char err[512];

	fuzz_write_file(conf_path, data, size);
	if (settings_load(conf_path, &s, err, sizeof(err)) < 0) {
		check_error(err);
		return 0;
	}
	check_bounds(&s);

	char *text = written(&s);
	fuzz_write_file(again_path, text, strlen(text));
	if (settings_load(again_path, &again, err, sizeof(err)) < 0) {
		fprintf(stderr, "settings_write() output does not load: %s\n%s", err, text);
		abort();
	}
	char *text_again = written(&again);
	fuzz_assert(strcmp(text, text_again) == 0);

	free(text);
	free(text_again);
	settings_free(&s);
	settings_free(&again);
	return 0;
}
