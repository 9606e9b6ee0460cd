/*
 * procstat.h - what a server process costs, from /proc and its cgroup:
 * memory, threads, CPU time.
 */
#ifndef BENCH_PROCSTAT_H
#define BENCH_PROCSTAT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct procstat {
	bool ok;
	int64_t rss_kib;         /* VmRSS */
	int64_t threads;         /* Threads */
	int64_t stack_rss_kib;   /* RSS of [stack] and thread-stack mappings (smaps) */
	int64_t cgroup_kib;      /* the memory cgroup's usage, kernel share included; -1 unknown */
	int64_t cgroup_kmem_kib; /* its kernel share alone (cgroup v1 kmem); -1 unknown */
};

/* Reads pid's figures; ok is false when the process is gone. */
void procstat_read(pid_t pid, struct procstat *ps);

/*
 * The CPU time (user and system, all threads) pid has used so far, in ms;
 * -1 when it is gone.  Cheap: chatbench reads it at phase boundaries.
 */
int64_t procstat_cpu_ms(pid_t pid);

#endif
