// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_state_check: the guest's three views of plugged memory agree.
 *
 * The "System RAM (virtio_dmm)" resources in /proc/iomem and the online
 * memory blocks inside the region must describe the same blocks, and the
 * driver's plugged_size must fit them: every added block has at least one
 * sub-block plugged (a whole block without sub-blocks), nothing plugged
 * lies outside them.  The driver's own check of its block states
 * (debugfs virtio_dmm/DEV/blocks, "consistent yes") must pass, and its
 * count of online blocks match Linux's.  With an argument, plugged_size
 * must also equal it.
 *
 *   dmm_state_check [EXPECTED_PLUGGED_BYTES]
 */
#include <dirent.h>
#include <inttypes.h>
#include <kselftest.h>
#include "dmm_util.h"

/* Bytes of "System RAM (virtio_dmm)" resources in [start, start + size). */
static uint64_t iomem_bytes(uint64_t start, uint64_t size)
{
	char line[256];
	uint64_t sum = 0, a, b;
	FILE *f = fopen("/proc/iomem", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "System RAM (virtio_dmm)"))
			continue;
		if (sscanf(line, " %" SCNx64 "-%" SCNx64, &a, &b) != 2)
			continue;
		if (a >= start && b < start + size)
			sum += b - a + 1;
	}
	fclose(f);
	return sum;
}

/* Bytes of online Linux memory blocks in [start, start + size). */
static uint64_t online_block_bytes(uint64_t start, uint64_t size)
{
	const char *base = "/sys/devices/system/memory";
	char path[512], state[32];
	uint64_t mb_size, sum = 0, id;
	struct dirent *de;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "%s/block_size_bytes", base);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%" SCNx64, &mb_size) != 1)
		ksft_exit_fail_msg("cannot read %s\n", path);
	fclose(f);
	d = opendir(base);
	if (!d)
		ksft_exit_fail_msg("cannot open %s\n", base);
	while ((de = readdir(d))) {
		if (sscanf(de->d_name, "memory%" SCNu64, &id) != 1)
			continue;
		if (id * mb_size < start || id * mb_size >= start + size)
			continue;
		snprintf(path, sizeof(path), "%s/%s/state", base, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%31s", state) == 1 && !strcmp(state, "online"))
			sum += mb_size;
		fclose(f);
	}
	closedir(d);
	return sum;
}

/*
 * The driver's block state counts (debugfs blocks): sets @online to the
 * bytes of blocks it counts online; returns 1 if it says its states are
 * consistent, 0 if not, -1 if the file cannot be read.
 */
static int driver_blocks(uint64_t bs, uint64_t *online)
{
	char path[512], name[32], val[32];
	const char *dev = strrchr(dmm_sysfs_dir(), '/');
	int consistent = -1;
	FILE *f;

	/* .../virtioN/dmm: the device name is the component before "dmm" */
	snprintf(path, sizeof(path), "%.*s", (int)(dev - dmm_sysfs_dir()),
		 dmm_sysfs_dir());
	snprintf(path, sizeof(path), "/sys/kernel/debug/virtio_dmm/%s/blocks",
		 strrchr(path, '/') + 1);
	f = fopen(path, "r");
	if (!f)
		return -1;
	*online = 0;
	while (fscanf(f, "%31s %31s", name, val) == 2) {
		if (!strcmp(name, "online") || !strcmp(name, "online_partial"))
			*online += strtoull(val, NULL, 10) * bs;
		else if (!strcmp(name, "consistent"))
			consistent = !strcmp(val, "yes");
	}
	fclose(f);
	return consistent;
}

int main(int argc, char **argv)
{
	uint64_t plugged, start, size, iomem, online, bs, sbs, drv_online = 0;
	int consistent;

	ksft_print_header();
	if (!dmm_sysfs_dir())
		ksft_exit_skip("no virtio-dmm device bound to virtio_dmm\n");
	ksft_set_plan(argc > 1 ? 4 : 3);

	plugged = dmm_attr_u64("plugged_size");
	start = dmm_attr_u64("region_addr");
	size = dmm_attr_u64("region_size");
	iomem = iomem_bytes(start, size);
	online = online_block_bytes(start, size);
	ksft_print_msg("[RUN] plugged %" PRIu64 " MiB, iomem %" PRIu64
		       " MiB, online blocks %" PRIu64 " MiB\n", plugged / MiB,
		       iomem / MiB, online / MiB);

	bs = dmm_attr_u64("block_size");
	/* without sub-blocks, the unit is the block */
	sbs = dmm_attr_u64_or("sub_block_size", bs);
	ksft_test_result(iomem == online,
			 "iomem System RAM (virtio_dmm) equals the online memory blocks in the region\n");
	ksft_test_result(plugged <= iomem && plugged >= iomem / bs * sbs,
			 "plugged_size %" PRIu64 " MiB fits the %" PRIu64
			 " added blocks (sub-blocks of %" PRIu64 " MiB)\n",
			 plugged / MiB, iomem / bs, sbs / MiB);
	consistent = driver_blocks(bs, &drv_online);
	ksft_test_result(consistent == 1 && drv_online == online,
			 "driver block states consistent (%d) and online %"
			 PRIu64 " MiB as Linux counts\n", consistent,
			 drv_online / MiB);
	if (argc > 1) {
		uint64_t want = strtoull(argv[1], NULL, 0);

		ksft_test_result(plugged == want,
				 "plugged_size %" PRIu64 " MiB is the expected %"
				 PRIu64 " MiB\n", plugged / MiB, want / MiB);
	}
	ksft_finished();
}
