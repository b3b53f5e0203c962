// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_memfill: fill guest memory with a pattern and verify it.
 *
 * Proves that memory the driver plugged is real, private RAM: every word
 * written is read back intact.  With -r it also proves the memory used came
 * (at least partly) from the virtio-dmm region, by reading physical frame
 * numbers from /proc/self/pagemap.
 *
 *   dmm_memfill -s BYTES    fill BYTES
 *   dmm_memfill -l BYTES    fill MemAvailable minus BYTES
 *   dmm_memfill             (run alone, as kselftest does) -l 64 MiB
 *   -r MIN                  require at least MIN bytes in the region
 *   -p SEED                 pattern seed (default: pid)
 *   -w FILE                 after filling, wait until FILE exists, then
 *                           verify (keeps the memory in use meanwhile,
 *                           e.g. across a migration or a resize)
 *   -a N                    print the physical addresses of the first N
 *                           pages ("addr 0x..."), for tests that need
 *                           pages in use
 *   -c                      with -w: verify the whole pattern over and
 *                           over while waiting, not only at the end, so a
 *                           page that changes and changes back is caught
 */
#include <inttypes.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <kselftest.h>
#include "dmm_util.h"

static uint64_t pattern(uint64_t seed, uint64_t i)
{
	return seed ^ (i * 0x9E3779B97F4A7C15ULL);
}

static void fill(uint64_t *p, uint64_t words, uint64_t seed)
{
	for (uint64_t i = 0; i < words; i++)
		p[i] = pattern(seed, i);
}

/* Index of the first bad word, or @words if all are intact. */
static uint64_t verify(const uint64_t *p, uint64_t words, uint64_t seed)
{
	for (uint64_t i = 0; i < words; i++)
		if (p[i] != pattern(seed, i))
			return i;
	return words;
}

/* Print the physical address of the first @n pages of @p (root only). */
static void print_addrs(void *p, uint64_t n)
{
	long psz = sysconf(_SC_PAGESIZE);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e;

	for (uint64_t i = 0; fd >= 0 && i < n; i++) {
		if (pread(fd, &e, 8, ((uintptr_t)p / psz + i) * 8) != 8 ||
		    !(e >> 63))
			break;
		ksft_print_msg("addr 0x%" PRIx64 "\n",
			       (uint64_t)((e & ((1ULL << 55) - 1)) * psz));
	}
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	uint64_t size = 0, leave = 64 * MiB, seed = getpid(), bad;
	const char *wait_file = NULL;
	int64_t need_region = -1, in;
	uint64_t passes = 0, addrs = 0;
	bool check = false;
	uint64_t *p;
	int opt;

	while ((opt = getopt(argc, argv, "s:l:r:p:w:ca:")) != -1) {
		switch (opt) {
		case 's': size = strtoull(optarg, NULL, 0); break;
		case 'l': leave = strtoull(optarg, NULL, 0); break;
		case 'r': need_region = strtoll(optarg, NULL, 0); break;
		case 'p': seed = strtoull(optarg, NULL, 0); break;
		case 'w': wait_file = optarg; break;
		case 'c': check = true; break;
		case 'a': addrs = strtoull(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: %s -s BYTES|-l BYTES [-r MIN] [-p SEED] [-w FILE [-c]]\n",
				argv[0]);
			return KSFT_FAIL;
		}
	}
	if (!size) {
		uint64_t avail = meminfo("MemAvailable");

		size = avail > leave ? avail - leave : 0;
	}
	size &= ~(uint64_t)4095;

	ksft_print_header();
	ksft_set_plan(need_region >= 0 ? 3 : 2);
	ksft_print_msg("[RUN] fill %" PRIu64 " MiB (MemTotal %" PRIu64
		       " MiB, MemAvailable %" PRIu64 " MiB)\n", size / MiB,
		       meminfo("MemTotal") / MiB, meminfo("MemAvailable") / MiB);

	p = mmap(NULL, size ? size : 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!size || p == MAP_FAILED)
		ksft_exit_fail_msg("cannot map %" PRIu64 " bytes\n", size);
	fill(p, size / 8, seed);
	ksft_test_result_pass("fill %" PRIu64 " MiB\n", size / MiB);
	print_addrs(p, addrs < size / 4096 ? addrs : size / 4096);
	if (wait_file) {
		ksft_print_msg("filled; waiting for %s\n", wait_file);
		bad = size / 8;
		while (access(wait_file, F_OK) && bad == size / 8) {
			if (check) {
				bad = verify(p, size / 8, seed);
				passes++;
			} else {
				usleep(100000);
			}
		}
		if (check)
			ksft_print_msg("%" PRIu64 " checks of the whole pattern while waiting\n",
				       passes);
	}

	bad = verify(p, size / 8, seed);
	if (bad == size / 8)
		ksft_test_result_pass("pattern intact in %" PRIu64 " MiB\n",
				      size / MiB);
	else
		ksft_test_result_fail("word %" PRIu64 " is 0x%" PRIx64
				      ", expected 0x%" PRIx64 "\n", bad, p[bad],
				      pattern(seed, bad));

	if (need_region >= 0) {
		if (!dmm_sysfs_dir()) {
			ksft_test_result_skip("no virtio-dmm device\n");
		} else {
			in = dmm_bytes_in_range(p, size, dmm_attr_u64("region_addr"),
					    dmm_attr_u64("region_size"));
			ksft_print_msg("%" PRId64 " MiB of it in the region\n",
				       in / (int64_t)MiB);
			ksft_test_result(in >= need_region,
					 "at least %" PRId64 " MiB in the region\n",
					 need_region / (int64_t)MiB);
		}
	}
	munmap(p, size);
	ksft_finished();
}
