// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm in a kdump kernel.
 *
 * A crash kernel reads the memory of the kernel that crashed through
 * /proc/vmcore, plugged memory of the region included: that is what it is
 * there for.  So the driver changes nothing (an UNPLUG_ALL at probe, as a
 * normal boot sends, would discard the memory about to be dumped), and
 * tells vmcore which pages of the region are plugged: reading an unplugged
 * block or sub-block would make the host back memory it had taken away
 * (shared backends allocate on a read fault), or touch memory that is not
 * there at all.
 */

#include <linux/crash_dump.h>
#include <linux/mm.h>
#include <linux/virtio_config.h>

#include "dmm.h"

/* STATE or STATE_SB of one block or sub-block: its state, or -errno. */
static int dmm_kdump_state(struct virtio_dmm *vm, u16 type, u64 addr)
{
	int rc = dmm_send_range(vm, type, addr, 1);

	return rc ?: le16_to_cpu(vm->resp.u.state.state);
}

/*
 * Ask the device about the block holding @addr, and about its sub-block if
 * the block is partly plugged; remember the answer for that range (vmcore
 * reads page by page).  Any error counts as not plugged.
 */
static void dmm_kdump_lookup(struct virtio_dmm *vm, u64 addr)
{
	struct dmm_kdump *k = &vm->kdump;
	int state;

	k->last_addr = ALIGN_DOWN(addr, vm->block_size);
	k->last_len = vm->block_size;
	state = dmm_kdump_state(vm, VIRTIO_DMM_REQ_STATE, k->last_addr);
	if (state == VIRTIO_DMM_STATE_MIXED && k->sb_size) {
		k->last_addr = ALIGN_DOWN(addr, k->sb_size);
		k->last_len = k->sb_size;
		state = dmm_kdump_state(vm, VIRTIO_DMM_REQ_STATE_SB,
					k->last_addr);
	}
	if (state < 0)
		dev_warn_ratelimited(&vm->vdev->dev, "state of 0x%llx unknown (%d): not read\n",
				     addr, state);
	k->last_plugged = state == VIRTIO_DMM_STATE_PLUGGED;
}

static bool dmm_vmcore_pfn_is_ram(struct vmcore_cb *cb, unsigned long pfn)
{
	struct virtio_dmm *vm = container_of(cb, struct virtio_dmm, kdump.cb);
	struct dmm_kdump *k = &vm->kdump;
	u64 addr = PFN_PHYS(pfn);
	bool ram;

	if (addr < vm->region_addr || addr - vm->region_addr >= vm->region_size)
		return true;
	/* one request in flight, and the last answer, under hotplug_mutex */
	mutex_lock(&vm->hotplug_mutex);
	if (addr - k->last_addr >= k->last_len)
		dmm_kdump_lookup(vm, addr);
	ram = k->last_plugged;
	mutex_unlock(&vm->hotplug_mutex);
	return ram;
}

int dmm_kdump_init(struct virtio_dmm *vm)
{
	struct dmm_kdump *k = &vm->kdump;

	if (virtio_has_feature(vm->vdev, VIRTIO_DMM_F_SUB_BLOCKS))
		virtio_cread_le(vm->vdev, struct virtio_dmm_config,
				sub_block_size, &k->sb_size);
	if (k->sb_size && (!is_power_of_2(k->sb_size) ||
			   k->sb_size > vm->block_size)) {
		dev_err(&vm->vdev->dev, "sub-block size 0x%llx is not a power of two up to the block size\n",
			k->sb_size);
		return -EINVAL;
	}
	k->cb.pfn_is_ram = dmm_vmcore_pfn_is_ram;
	register_vmcore_cb(&k->cb);
	dev_info(&vm->vdev->dev, "kdump kernel: resizing off, /proc/vmcore reads only plugged memory of the region\n");
	return 0;
}

void dmm_kdump_exit(struct virtio_dmm *vm)
{
	unregister_vmcore_cb(&vm->kdump.cb);
}
