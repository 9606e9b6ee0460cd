/*
 * procstat.c - reads a server's memory, thread and CPU figures (see procstat.h).
 *
 * RSS counts user-space pages only; a thread-per-client server also costs
 * kernel memory per thread (its kernel stack, task struct) and every server
 * costs socket buffers.  When the server runs in a memory cgroup of its own
 * (bench/run arranges that when it can), the cgroup's usage includes them.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "procstat.h"

static int64_t
status_field(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	long long v;

	if (p == NULL || sscanf(p + strlen(key), " %lld", &v) != 1)
		return -1;
	return v;
}

static size_t
read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return 0;
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n;
}

static int64_t
read_kib(const char *path)
{
	char buf[64];
	long long v;

	if (read_file(path, buf, sizeof(buf)) == 0 || sscanf(buf, "%lld", &v) != 1)
		return -1;
	return v / 1024;
}

/*
 * RSS of stacks: the main [stack], and every anonymous read-write mapping
 * of at most 8 MiB right above a small PROT_NONE one, which is how glibc
 * lays out a thread stack and its guard page (other mappings may look the
 * same: an estimate, good to tell a thread-per-client server's share).
 */
#define GUARD_MAX (64u << 10)

static int64_t
stack_rss(pid_t pid)
{
	char path[64], line[512];
	int64_t total = 0, rss;
	bool prev_guard = false, in_stack = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		int name_at = 0;

		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &lo, &hi, perms, &name_at) == 3) {
			const char *name = line + name_at;

			while (*name == ' ')
				name++;
			bool anon = *name == '\n' || *name == '\0';
			in_stack = strncmp(name, "[stack]", 7) == 0 ||
				   (prev_guard && anon && perms[0] == 'r' &&
				    hi - lo <= (8ul << 20) + 4096);
			/* A guard is small; malloc's arenas reserve megabytes PROT_NONE. */
			prev_guard = anon && strncmp(perms, "---p", 4) == 0 && hi - lo <= GUARD_MAX;
			continue;
		}
		if (in_stack && sscanf(line, "Rss: %lld", (long long *)&rss) == 1)
			total += rss;
	}
	fclose(f);
	return total;
}

/*
 * The memory cgroup of pid, v1 ("N:memory:/path") or v2 ("0::/path"); only
 * when it is not chatbench's own, which would count chatbench too.
 */
static void
cgroup_usage(pid_t pid, struct procstat *ps)
{
	char path[1024], buf[512], mine[512];
	char *p;

	ps->cgroup_kib = ps->cgroup_kmem_kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (read_file(path, buf, sizeof(buf)) == 0 ||
	    (read_file("/proc/self/cgroup", mine, sizeof(mine)) > 0 && strcmp(buf, mine) == 0))
		return;
	if ((p = strstr(buf, ":memory:")) != NULL) {
		char *end = strchr(p, '\n');

		if (end)
			*end = '\0';
		p += strlen(":memory:");
		if (strcmp(p, "/") == 0)
			return; /* the root: everything on the box */
		snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", p);
		ps->cgroup_kib = read_kib(path);
		snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.kmem.usage_in_bytes",
			 p);
		ps->cgroup_kmem_kib = read_kib(path);
	} else if (strncmp(buf, "0::", 3) == 0) {
		char *end = strchr(buf, '\n');

		if (end)
			*end = '\0';
		if (strcmp(buf + 3, "/") == 0)
			return;
		snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.current", buf + 3);
		ps->cgroup_kib = read_kib(path);
	}
}

void
procstat_read(pid_t pid, struct procstat *ps)
{
	char path[64], buf[8192];

	memset(ps, 0, sizeof(*ps));
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_file(path, buf, sizeof(buf)) == 0)
		return;
	ps->rss_kib = status_field(buf, "VmRSS:");
	ps->threads = status_field(buf, "Threads:");
	ps->stack_rss_kib = stack_rss(pid);
	cgroup_usage(pid, ps);
	ps->ok = ps->rss_kib >= 0;
}

int64_t
procstat_cpu_ms(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long utime, stime;
	long hz = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file(path, buf, sizeof(buf)) == 0 || hz <= 0)
		return -1;
	/* After "(comm)", which may hold spaces: state is field 3, utime 14, stime 15. */
	const char *p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&utime, &stime) != 2)
		return -1;
	return (int64_t)((utime + stime) * 1000 / (unsigned long long)hz);
}
