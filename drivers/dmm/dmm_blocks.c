// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: the state of each block of the region.
 *
 * Every block is in one state of enum dmm_block_state, changed only by
 * dmm_block_set_state(), which keeps a count per state.  The moves:
 *
 *   UNPLUGGED ---plug, add_memory---> OFFLINE or OFFLINE_PARTIAL
 *   OFFLINE[_PARTIAL] ---MEM_ONLINE---> ONLINE[_PARTIAL]
 *   ONLINE[_PARTIAL] ---MEM_GOING_OFFLINE---> OFFLINE[_PARTIAL]
 *                      (MEM_CANCEL_OFFLINE moves it back)
 *   ONLINE <---unplug or plug a sub-block---> ONLINE_PARTIAL
 *   OFFLINE[_PARTIAL] ---remove_memory, unplug---> UNPLUGGED
 *
 * The control loop moves blocks to and from UNPLUGGED and between full and
 * partial, with hotplug_mutex held.  Online and offline follow Linux: the
 * memory notifier moves them, for our own removals and an administrator's
 * alike, and only blocks ONLINE[_PARTIAL] may have sub-blocks changed.
 */
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mmzone.h>
#include <linux/slab.h>

#include "dmm.h"

static bool dmm_state_online(enum dmm_block_state s)
{
	return s == DMM_BLOCK_ONLINE || s == DMM_BLOCK_ONLINE_PARTIAL;
}

bool dmm_state_partial(enum dmm_block_state s)
{
	return s == DMM_BLOCK_OFFLINE_PARTIAL || s == DMM_BLOCK_ONLINE_PARTIAL;
}

/* The state of an added block that is (not) @online and (not) @partial. */
static enum dmm_block_state dmm_added_state(bool online, bool partial)
{
	if (online)
		return partial ? DMM_BLOCK_ONLINE_PARTIAL : DMM_BLOCK_ONLINE;
	return partial ? DMM_BLOCK_OFFLINE_PARTIAL : DMM_BLOCK_OFFLINE;
}

/* The one place a block's state changes.  Caller holds blocks.lock. */
void dmm_block_set_state(struct virtio_dmm *vm, unsigned long id,
			 enum dmm_block_state state)
{
	struct dmm_blocks *b = &vm->blocks;
	enum dmm_block_state old = b->state[id];

	lockdep_assert_held(&b->lock);
	if (WARN_ON_ONCE(!b->count[old]))
		return;
	b->count[old]--;
	b->count[state]++;
	WRITE_ONCE(b->state[id], state);
}

/* Block @id becomes partially plugged (@partial) or full again. */
void dmm_block_set_partial(struct virtio_dmm *vm, unsigned long id,
			   bool partial)
{
	enum dmm_block_state s = dmm_block_state(vm, id);

	if (WARN_ON_ONCE(s == DMM_BLOCK_UNPLUGGED))
		return;
	dmm_block_set_state(vm, id, dmm_added_state(dmm_state_online(s),
						    partial));
}

/* Lowest unplugged block, or nb_blocks if there is none. */
unsigned long dmm_first_unplugged(struct virtio_dmm *vm)
{
	unsigned long id;

	if (!vm->blocks.count[DMM_BLOCK_UNPLUGGED])
		return vm->nb_blocks;
	for (id = 0; id < vm->nb_blocks; id++)
		if (dmm_block_state(vm, id) == DMM_BLOCK_UNPLUGGED)
			break;
	return id;
}

/*
 * Is all of block @id online?  A block may span several Linux memory
 * blocks, which are onlined and offlined one by one.
 */
static bool dmm_block_all_online(struct virtio_dmm *vm, unsigned long id)
{
	u64 addr = dmm_block_addr(vm, id), step = memory_block_size_bytes();
	u64 off;

	for (off = 0; off < vm->block_size; off += step)
		if (!pfn_to_online_page(PHYS_PFN(addr + off)))
			return false;
	return true;
}

/* First block added to Linux at or after @id, or nb_blocks. */
unsigned long dmm_next_added(struct virtio_dmm *vm, unsigned long id)
{
	for (; id < vm->nb_blocks; id++)
		if (dmm_block_state(vm, id) != DMM_BLOCK_UNPLUGGED)
			break;
	return id;
}

/* Last block added to Linux below @end, or nb_blocks if there is none. */
unsigned long dmm_prev_added(struct virtio_dmm *vm, unsigned long end)
{
	while (end-- > 0)
		if (dmm_block_state(vm, end) != DMM_BLOCK_UNPLUGGED)
			return end;
	return vm->nb_blocks;
}

/* Bytes block @id has plugged in state @s. */
static u64 dmm_block_plugged_bytes(struct virtio_dmm *vm, unsigned long id,
				   enum dmm_block_state s)
{
	if (s == DMM_BLOCK_UNPLUGGED)
		return 0;
	if (!dmm_state_partial(s))
		return vm->block_size;
	return (u64)dmm_sb_count(vm, id) * vm->sb.size;
}

/*
 * A block added with its memory map on itself is in Linux, and the
 * sub-blocks holding the map are plugged.
 */
static bool dmm_block_memmap_ok(struct virtio_dmm *vm, unsigned long id,
				enum dmm_block_state s)
{
	unsigned long first = id * vm->sb.per_block;
	unsigned long end = first + dmm_block_memmap_sbs(vm, id);

	if (!dmm_block_memmap_pages(vm, id))
		return true;
	if (s == DMM_BLOCK_UNPLUGGED)
		return false;
	return !vm->sb.on ||
	       find_next_zero_bit(vm->blocks.sb_plugged, end, first) == end;
}

/*
 * Check the states against what they summarise: the counts, the sub-block
 * bitmap, plugged_size and Linux's view of online memory.  Returns the
 * first block that disagrees (or nb_blocks for a count or size mismatch)
 * after saying what is wrong, -1 if all agree.  Caller holds
 * hotplug_mutex, so nothing but online and offline can move meanwhile.
 */
long dmm_blocks_check(struct virtio_dmm *vm)
{
	unsigned long count[DMM_BLOCK_STATE_COUNT] = { 0 };
	struct device *dev = &vm->vdev->dev;
	unsigned long id, n;
	long bad = -1;
	u64 bytes = 0;
	int s;

	lockdep_assert_held(&vm->hotplug_mutex);
	mutex_lock(&vm->blocks.lock);
	for (id = 0; id < vm->nb_blocks && bad < 0; id++) {
		s = vm->blocks.state[id];
		count[s]++;
		bytes += dmm_block_plugged_bytes(vm, id, s);
		n = vm->sb.on ? dmm_sb_count(vm, id) : 0;
		if ((s == DMM_BLOCK_UNPLUGGED && n) ||
		    (dmm_state_partial(s) && (!vm->sb.on ||
					      n == vm->sb.per_block)) ||
		    (s != DMM_BLOCK_UNPLUGGED && !dmm_state_partial(s) &&
		     vm->sb.on && n != vm->sb.per_block) ||
		    (dmm_state_online(s) && !dmm_block_all_online(vm, id))) {
			dev_err(dev, "block %lu: state %d with %lu sub-blocks plugged, all online %d\n",
				id, s, n, dmm_block_all_online(vm, id));
			bad = id;
		} else if (!dmm_block_memmap_ok(vm, id, s)) {
			dev_err(dev, "block %lu: state %d, memory map on it, but not all of it plugged\n",
				id, s);
			bad = id;
		}
	}
	for (s = 0; s < DMM_BLOCK_STATE_COUNT && bad < 0; s++) {
		if (count[s] != vm->blocks.count[s]) {
			dev_err(dev, "%lu blocks in state %d, counted %lu\n",
				count[s], s, vm->blocks.count[s]);
			bad = vm->nb_blocks;
		}
	}
	if (bad < 0 && bytes != vm->plugged_size) {
		dev_err(dev, "blocks hold 0x%llx bytes, plugged_size is 0x%llx\n",
			bytes, vm->plugged_size);
		bad = vm->nb_blocks;
	}
	mutex_unlock(&vm->blocks.lock);
	return bad;
}

/*
 * Linux onlines or offlines memory of the region: ours while adding and
 * removing, an administrator's at any time.  Going offline counts as
 * offline at once, so that the control loop leaves the block's sub-blocks
 * alone; fake-offline pages drop their references so offlining skips them.
 */
static int dmm_memory_notifier_cb(struct notifier_block *nb,
				  unsigned long action, void *arg)
{
	struct virtio_dmm *vm = container_of(nb, struct virtio_dmm,
					     blocks.memory_nb);
	struct memory_notify *mhp = arg;
	u64 start = PFN_PHYS(mhp->start_pfn);
	u64 size = PFN_PHYS(mhp->nr_pages);
	enum dmm_block_state s;
	unsigned long id;

	if (start < vm->region_addr ||
	    start + size > vm->region_addr + vm->region_size)
		return NOTIFY_DONE;
	id = div64_u64(start - vm->region_addr, vm->block_size);

	mutex_lock(&vm->blocks.lock);
	s = vm->blocks.state[id];
	if (s == DMM_BLOCK_UNPLUGGED) {
		mutex_unlock(&vm->blocks.lock);
		return NOTIFY_DONE;
	}
	switch (action) {
	case MEM_GOING_OFFLINE:
		dmm_block_set_state(vm, id, dmm_added_state(false,
							    dmm_state_partial(s)));
		dmm_sb_offline_refs(vm, mhp->start_pfn, mhp->nr_pages, true);
		break;
	case MEM_CANCEL_OFFLINE:
		dmm_sb_offline_refs(vm, mhp->start_pfn, mhp->nr_pages, false);
		fallthrough;
	case MEM_ONLINE:
		if (dmm_block_all_online(vm, id))
			dmm_block_set_state(vm, id,
					    dmm_added_state(true,
							    dmm_state_partial(s)));
		break;
	default:
		break;
	}
	mutex_unlock(&vm->blocks.lock);
	return NOTIFY_OK;
}

int dmm_blocks_init(struct virtio_dmm *vm)
{
	struct dmm_blocks *b = &vm->blocks;
	int rc;

	mutex_init(&b->lock);
	b->state = kcalloc(vm->nb_blocks, sizeof(*b->state), GFP_KERNEL);
	if (!b->state)
		return -ENOMEM;
	b->memmap_on = bitmap_zalloc(vm->nb_blocks, GFP_KERNEL);
	if (!b->memmap_on) {
		rc = -ENOMEM;
		goto out_state;
	}
	b->count[DMM_BLOCK_UNPLUGGED] = vm->nb_blocks;
	b->memory_nb.notifier_call = dmm_memory_notifier_cb;
	rc = register_memory_notifier(&b->memory_nb);
	if (rc) {
		dev_err(&vm->vdev->dev, "registering a memory notifier failed: %d\n",
			rc);
		goto out_memmap;
	}
	return 0;

out_memmap:
	bitmap_free(b->memmap_on);
	b->memmap_on = NULL;
out_state:
	kfree(b->state);
	b->state = NULL;
	return rc;
}

/*
 * Should whole blocks carry their own memory map?  Adding one then takes
 * no struct pages from the guest's free memory (2 MiB per 128 MiB, which
 * the allocator clears under init_on_alloc: three quarters of the time of
 * an add under TCG), and works when the guest is short of memory.  The
 * administrator asks for it (memory_hotplug.memmap_on_memory=1); we follow
 * where the map fits our geometry: one Linux memory block per block, and
 * the map a whole number of sub-blocks, which stay plugged while the block
 * is in Linux.  Called once sub-blocks are set up.
 */
void dmm_blocks_memmap_init(struct virtio_dmm *vm)
{
	unsigned long memblock = memory_block_size_bytes();
	unsigned long pages;

	if (!mhp_supports_memmap_on_memory())
		return;
	/* what the kernel reserves: memory_block_memmap_on_memory_pages() */
	pages = pageblock_align(PFN_UP(PHYS_PFN(memblock) *
				       sizeof(struct page)));
	if (vm->block_size != memblock ||
	    !IS_ALIGNED(PFN_PHYS(pages), vm->sb.on ? vm->sb.size : PAGE_SIZE)) {
		dev_info(&vm->vdev->dev, "memmap_on_memory not used: block size 0x%llx, Linux memory block 0x%lx, memory map 0x%llx, sub-block 0x%llx\n",
			 vm->block_size, memblock, (u64)PFN_PHYS(pages),
			 vm->sb.size);
		return;
	}
	vm->blocks.memmap_pages = pages;
}

/* Only when no block is added. */
void dmm_blocks_exit(struct virtio_dmm *vm)
{
	WARN_ON_ONCE(vm->blocks.count[DMM_BLOCK_UNPLUGGED] != vm->nb_blocks);
	unregister_memory_notifier(&vm->blocks.memory_nb);
	bitmap_free(vm->blocks.memmap_on);
	vm->blocks.memmap_on = NULL;
	kfree(vm->blocks.state);
	vm->blocks.state = NULL;
}
