// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_grow: a program whose memory grows at a steady pace, as a workload
 * under pressure does; it needs the host to grant memory in time.
 *
 *   dmm_grow -s BYTES [-r MIB_PER_S] [-w FILE]
 *
 * Allocates BYTES in 16 MiB steps at MIB_PER_S (default 32), writing a
 * pattern into every page, prints progress, checks the whole pattern at
 * the end, then (with -w) holds the memory until FILE exists.  Prints TAP.
 * If the OOM killer takes it, the host sees no "# Totals".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"

#define STEP	(16ULL << 20)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t pattern(uint64_t i)
{
	return (i + 7) * 0x9e3779b97f4a7c15ULL;
}

int main(int argc, char **argv)
{
	uint64_t size = 0, rate = 32, i, n, bad = 0, done;
	const char *file = NULL;
	uint64_t *mem;
	double t0;
	int opt;

	while ((opt = getopt(argc, argv, "s:r:w:")) != -1) {
		switch (opt) {
		case 's':
			size = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			rate = strtoull(optarg, NULL, 0);
			break;
		case 'w':
			file = optarg;
			break;
		default:
			size = 0;
		}
	}
	if (!size || !rate)
		ksft_exit_fail_msg("usage: %s -s BYTES [-r MIB_PER_S] [-w FILE]\n",
				   argv[0]);
	size = (size + STEP - 1) / STEP * STEP;
	ksft_print_header();
	ksft_set_plan(1);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		ksft_exit_fail_msg("mmap of %llu bytes failed\n",
				   (unsigned long long)size);
	t0 = now();
	for (done = 0; done < size; done += STEP) {
		double due = t0 + (double)(done >> 20) / rate;

		if (now() < due)
			usleep((useconds_t)((due - now()) * 1e6));
		for (i = done / 8; i < (done + STEP) / 8; i++)
			mem[i] = pattern(i);
		if (!(done % (128ULL << 20))) {
			printf("# %llu MiB after %.1f s\n",
			       (unsigned long long)(done >> 20), now() - t0);
			fflush(stdout);
		}
	}
	n = size / 8;
	for (i = 0; i < n; i++)
		bad += mem[i] != pattern(i);
	ksft_test_result(!bad, "grew to %llu MiB in %.1f s, pattern intact (%llu bad words)\n",
			 (unsigned long long)(size >> 20), now() - t0,
			 (unsigned long long)bad);
	if (file)
		while (access(file, F_OK))
			usleep(100000);
	ksft_finished();
}
