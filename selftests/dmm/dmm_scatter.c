// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_scatter: hold memory scattered over the guest's RAM, for the
 * fragmented-shrink benchmark (scripts/bench.py).
 *
 * Maps and writes all but LEAVE bytes of MemAvailable, then gives back
 * single 4 KiB pages evenly spread over the mapping until HOLD bytes are
 * left: the pages it keeps lie all over physical memory, few 2 MiB ranges
 * are free as a whole.  Then waits for FILE and checks every kept page.
 *
 *   dmm_scatter -h HOLD [-l LEAVE] -w FILE
 *     -h HOLD    bytes to keep (required)
 *     -l LEAVE   leave this much of MemAvailable unallocated while
 *                scattering (default 64 MiB)
 *     -w FILE    keep the memory until FILE exists (required)
 *
 * Prints "scattered N MiB held" when the memory is in place; exit status
 * 0 if every kept page still held its pattern, 1 otherwise.
 */
#include <inttypes.h>
#include <sys/mman.h>
#include "dmm_util.h"

#define PAGE	4096UL

static uint64_t pattern(uint64_t i)
{
	return (i + 1) * 0x9E3779B97F4A7C15ULL;
}

/* Keep page @i of @n when the even spread of @hold pages crosses it. */
static int kept(uint64_t i, uint64_t n, uint64_t hold)
{
	return (i + 1) * hold / n != i * hold / n;
}

int main(int argc, char **argv)
{
	uint64_t hold = 0, leave = 64 * MiB, avail, n, i, run, bad = 0;
	const char *wait_file = NULL;
	uint64_t *p;
	int opt;

	while ((opt = getopt(argc, argv, "h:l:w:")) != -1) {
		switch (opt) {
		case 'h': hold = strtoull(optarg, NULL, 0); break;
		case 'l': leave = strtoull(optarg, NULL, 0); break;
		case 'w': wait_file = optarg; break;
		default:
			hold = 0;
			break;
		}
	}
	if (!hold || !wait_file) {
		fprintf(stderr, "usage: %s -h HOLD [-l LEAVE] -w FILE\n", argv[0]);
		return 1;
	}
	avail = meminfo("MemAvailable");
	if (avail < leave + hold) {
		fprintf(stderr, "MemAvailable %" PRIu64 " MiB < %" PRIu64 " MiB\n",
			avail / MiB, (leave + hold) / MiB);
		return 1;
	}
	n = (avail - leave) / PAGE;
	hold /= PAGE;
	p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/* 4 KiB pages only: a huge page would be given back whole */
	madvise(p, n * PAGE, MADV_NOHUGEPAGE);
	for (i = 0; i < n; i++)
		p[i * (PAGE / 8)] = pattern(i);
	/* give back the runs of pages between kept ones, one call a run */
	for (i = 0; i < n; i += run ? run : 1) {
		for (run = 0; i + run < n && !kept(i + run, n, hold); run++)
			;
		if (run)
			madvise((char *)p + i * PAGE, run * PAGE, MADV_DONTNEED);
	}
	printf("scattered %" PRIu64 " MiB held over %" PRIu64 " MiB\n",
	       hold * PAGE / MiB, n * PAGE / MiB);
	fflush(stdout);
	while (access(wait_file, F_OK))
		usleep(100000);
	for (i = 0; i < n; i++)
		if (kept(i, n, hold) && p[i * (PAGE / 8)] != pattern(i))
			bad++;
	printf("%" PRIu64 " kept pages changed\n", bad);
	return bad ? 1 : 0;
}
