// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_offline_pages: print the physical addresses of up to N pages Linux
 * marks PG_offline (virtio-dmm's unplugged pages are balloon pages, which
 * are), from /proc/kpageflags.  For tests that need an address the device
 * holds as unplugged.  Prints nothing if there is none.
 *
 *   dmm_offline_pages N [MAX_ADDR]
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define KPF_OFFLINE	23

int main(int argc, char **argv)
{
	uint64_t want = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
	uint64_t max = argc > 2 ? strtoull(argv[2], NULL, 0) : UINT64_MAX;
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t flags[512], pfn = 0, found = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);
	ssize_t n;

	if (fd < 0) {
		perror("/proc/kpageflags");
		return 1;
	}
	while (found < want &&
	       (n = pread(fd, flags, sizeof(flags), pfn * 8)) > 0) {
		for (ssize_t i = 0; i < n / 8 && found < want; i++) {
			if ((uint64_t)(pfn + i) * psz >= max)
				goto out;
			if (flags[i] >> KPF_OFFLINE & 1) {
				printf("0x%" PRIx64 "\n", (pfn + i) * psz);
				found++;
			}
		}
		pfn += n / 8;
	}
out:
	close(fd);
	return 0;
}
