// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_kdump: what the kdump suite needs inside the guest.
 *
 *   dmm_kdump fill BYTES        write a marker into every page of BYTES of
 *                               memory, say how much of it lies in the
 *                               region, then hold it (until killed)
 *   dmm_kdump load KERNEL INITRD CMDLINE
 *                               load the crash kernel (kexec_file_load)
 *   dmm_kdump scan              in the crash kernel: read /proc/vmcore to
 *                               the end, count the pages with the marker
 *
 * The marker names the page (its index), so that a page counted once is
 * one page of the crashed kernel's memory that reached the dump.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <linux/kexec.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "dmm_util.h"

#define PAGE 4096
#define MARK "virtio-dmm kdump marker\n"

struct marker {
	char text[sizeof(MARK)];
	uint64_t index;
	uint64_t check;		/* ~index */
};

static int fill(uint64_t bytes)
{
	uint64_t i, n = bytes / PAGE;
	char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	int64_t in;

	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (i = 0; i < n; i++) {
		struct marker *m = (struct marker *)(p + i * PAGE);

		memcpy(m->text, MARK, sizeof(MARK));
		m->index = i;
		m->check = ~i;
	}
	in = dmm_bytes_in_range(p, bytes, dmm_attr_u64("region_addr"),
				dmm_attr_u64("region_size"));
	printf("filled %" PRIu64 " pages, %" PRId64 " of them in the region\n",
	       n, in / PAGE);
	fflush(stdout);
	for (;;)
		pause();
}

static int load(const char *kernel, const char *initrd, const char *cmdline)
{
	int kfd = open(kernel, O_RDONLY), ifd = open(initrd, O_RDONLY);

	if (kfd < 0 || ifd < 0) {
		perror("open");
		return 1;
	}
	if (syscall(SYS_kexec_file_load, kfd, ifd, strlen(cmdline) + 1,
		    cmdline, KEXEC_FILE_ON_CRASH)) {
		perror("kexec_file_load");
		return 1;
	}
	printf("crash kernel loaded\n");
	return 0;
}

static int scan(void)
{
	static char buf[1 << 20];
	uint64_t bytes = 0, marked = 0;
	ssize_t n, i;
	int fd = open("/proc/vmcore", O_RDONLY);

	if (fd < 0) {
		perror("/proc/vmcore");
		return 1;
	}
	/* the ELF headers and notes shift pages: look at every 8 bytes */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i + (ssize_t)sizeof(struct marker) <= n; i += 8) {
			struct marker *m = (struct marker *)(buf + i);

			if (!memcmp(m->text, MARK, sizeof(MARK)) &&
			    m->check == ~m->index)
				marked++;
		}
		bytes += n;
	}
	if (n < 0) {
		perror("read /proc/vmcore");
		return 1;
	}
	printf("vmcore: %" PRIu64 " MiB read, %" PRIu64 " marked pages\n",
	       bytes / MiB, marked);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "fill"))
		return fill(strtoull(argv[2], NULL, 0));
	if (argc == 5 && !strcmp(argv[1], "load"))
		return load(argv[2], argv[3], argv[4]);
	if (argc == 2 && !strcmp(argv[1], "scan"))
		return scan();
	fprintf(stderr, "usage: dmm_kdump fill BYTES | load KERNEL INITRD CMDLINE | scan\n");
	return 2;
}
