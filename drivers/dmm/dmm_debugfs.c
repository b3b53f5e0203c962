// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: debugfs, /sys/kernel/debug/virtio_dmm/<device>/.
 * Diagnostics, not an ABI:
 *
 *   blocks     blocks per state and the driver's own consistency check
 *   counters   "name value" lines: failures, stops, hints, requests, ...
 *
 * and, with the module parameter test_hooks=1, the test hooks of
 * dmm_hooks.c.
 */
#include <linux/debugfs.h>
#include <linux/math64.h>
#include <linux/seq_file.h>

#include "dmm.h"

static struct dentry *dmm_debugfs_root;

static const char * const dmm_block_state_names[] = {
	[DMM_BLOCK_UNPLUGGED] = "unplugged",
	[DMM_BLOCK_OFFLINE] = "offline",
	[DMM_BLOCK_OFFLINE_PARTIAL] = "offline_partial",
	[DMM_BLOCK_ONLINE] = "online",
	[DMM_BLOCK_ONLINE_PARTIAL] = "online_partial",
};

/*
 * blocks: how many blocks are in each state, and whether the states agree
 * with the sub-block bitmap, plugged_size and Linux (dmm_blocks_check()).
 */
static int dmm_debug_blocks_show(struct seq_file *m, void *v)
{
	struct virtio_dmm *vm = m->private;
	long bad;
	int s;

	mutex_lock(&vm->hotplug_mutex);
	for (s = 0; s < DMM_BLOCK_STATE_COUNT; s++)
		seq_printf(m, "%s %lu\n", dmm_block_state_names[s],
			   vm->blocks.count[s]);
	bad = dmm_blocks_check(vm);
	mutex_unlock(&vm->hotplug_mutex);
	if (bad < 0)
		seq_puts(m, "consistent yes\n");
	else
		seq_printf(m, "consistent no (block %ld)\n", bad);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(dmm_debug_blocks);

static void dmm_seq_u64(struct seq_file *m, const char *name, u64 val)
{
	seq_printf(m, "%s %llu\n", name, val);
}

/*
 * counters: what the driver counted and a few derived sizes, read without
 * locks (each value is written whole by its one writer).
 */
static int dmm_debug_counters_show(struct seq_file *m, void *v)
{
	struct virtio_dmm *vm = m->private;
	s64 gap = (s64)READ_ONCE(vm->requested_size) -
		  (s64)dmm_current_size(vm);
	const char *result;
	u64 size;

	dmm_seq_u64(m, "plug_failures", READ_ONCE(vm->plug_failures));
	dmm_seq_u64(m, "unplug_failures", READ_ONCE(vm->unplug_failures));
	dmm_seq_u64(m, "floor_stops", READ_ONCE(vm->floor_stops));
	dmm_seq_u64(m, "blocks_vacated", READ_ONCE(vm->blocks.vacated));
	dmm_seq_u64(m, "blocks_removed_free",
		    READ_ONCE(vm->blocks.free_removals));
	/* read without the lock: a snapshot */
	dmm_seq_u64(m, "blocks_memmap_on_memory",
		    bitmap_weight(vm->blocks.memmap_on, vm->nb_blocks));
	dmm_seq_u64(m, "region_traded", READ_ONCE(vm->region_traded));
	dmm_seq_u64(m, "region_deferred", READ_ONCE(vm->region_deferred));
	seq_printf(m, "gap_size %lld\n", gap);
	dmm_seq_u64(m, "floor_size", vm->pages.on ? dmm_pages_floor(vm) :
						    vm->boot_size);
	dmm_seq_u64(m, "sub_block_plugged_size", dmm_sb_partial_bytes(vm));
	dmm_seq_u64(m, "sub_block_unplug_failures",
		    READ_ONCE(vm->sb.unplug_failures));
	dmm_seq_u64(m, "page_unplug_failures",
		    READ_ONCE(vm->pages.unplug_failures));
	dmm_seq_u64(m, "page_moves", READ_ONCE(vm->pages.moves));
	dmm_seq_u64(m, "range_pages", READ_ONCE(vm->pages.range_pages));
	dmm_seq_u64(m, "ranges_unplugged",
		    READ_ONCE(vm->pages.ranges_unplugged));
	dmm_seq_u64(m, "range_splits", READ_ONCE(vm->pages.range_splits));
	dmm_seq_u64(m, "pages_traded", READ_ONCE(vm->pages.traded));
	dmm_seq_u64(m, "reported_bytes", atomic64_read(&vm->report.bytes));
	dmm_seq_u64(m, "report_kicks", READ_ONCE(vm->report.kicks));
	dmm_seq_u64(m, "hint_zero_sent",
		    atomic64_read(&vm->hints.sent[VIRTIO_DMM_HINT_ZERO]));
	dmm_seq_u64(m, "hint_dup_sent",
		    atomic64_read(&vm->hints.sent[VIRTIO_DMM_HINT_DUP]));
	dmm_seq_u64(m, "hint_accepted", atomic64_read(&vm->hints.accepted));
	dmm_seq_u64(m, "hint_rejected", atomic64_read(&vm->hints.rejected));
	dmm_seq_u64(m, "hint_errors", atomic64_read(&vm->hints.errors));
	dmm_seq_u64(m, "hint_pages_scanned",
		    atomic64_read(&vm->hints.pages_scanned));
	dmm_seq_u64(m, "hint_passes", atomic64_read(&vm->hints.passes));
	dmm_seq_u64(m, "hint_scan_ms",
		    div_u64(atomic64_read(&vm->hints.scan_ns), NSEC_PER_MSEC));
	dmm_seq_u64(m, "stats_interval_ms", READ_ONCE(vm->stats.interval_ms));
	dmm_seq_u64(m, "asks_sent", atomic64_read(&vm->ask.sent));
	dmm_seq_u64(m, "asks_granted", atomic64_read(&vm->ask.granted));
	dmm_seq_u64(m, "asks_refused", atomic64_read(&vm->ask.refused));
	dmm_seq_u64(m, "asks_forwarded", atomic64_read(&vm->ask.forwarded));
	spin_lock(&vm->ask.lock);
	size = vm->ask.last_size;
	result = vm->ask.last_result;
	spin_unlock(&vm->ask.lock);
	dmm_seq_u64(m, "last_ask_size", size);
	seq_printf(m, "last_ask_result %s\n", result ?: "none");
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(dmm_debug_counters);

void dmm_debugfs_init(struct virtio_dmm *vm)
{
	vm->debug.dir = debugfs_create_dir(dev_name(&vm->vdev->dev),
					   dmm_debugfs_root);
	debugfs_create_file("blocks", 0400, vm->debug.dir, vm,
			    &dmm_debug_blocks_fops);
	debugfs_create_file("counters", 0400, vm->debug.dir, vm,
			    &dmm_debug_counters_fops);
	dmm_hooks_init(vm);
}

void dmm_debugfs_exit(struct virtio_dmm *vm)
{
	debugfs_remove_recursive(vm->debug.dir);
	vm->debug.dir = NULL;
}

/* Module load and unload: the driver's directory. */
void dmm_debugfs_register(void)
{
	dmm_debugfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
}

void dmm_debugfs_unregister(void)
{
	debugfs_remove_recursive(dmm_debugfs_root);
}
