// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: whole blocks.
 *
 * Grow: PLUG a block with the device, then add it to Linux.  Shrink: offline
 * and remove a block from Linux, then UNPLUG it.  Each step is undone when
 * the next one fails, so the device and Linux always agree on what is
 * plugged (the block states of dmm_blocks.c).
 */
#include <linux/gfp.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sizes.h>
#include <linux/slab.h>

#include "dmm.h"

/*
 * add_memory_driver_managed() wants "System RAM ($DRIVER)" and keeps the
 * pointer while the memory exists.  A string of the module is safe: the
 * module holds a reference to itself while any memory is plugged.
 */
static const char dmm_resource_name[] = "System RAM (virtio_dmm)";

/*
 * Reserve the region so that nothing else claims it and /dev/mem cannot map
 * it, but leave it non-busy: add_memory_driver_managed() adds children.
 */
static int dmm_reserve_region(struct virtio_dmm *vm)
{
	const char *name = kstrdup(dev_name(&vm->vdev->dev), GFP_KERNEL);

	if (!name)
		return -ENOMEM;
	vm->parent_res = __request_mem_region(vm->region_addr, vm->region_size,
					      name, IORESOURCE_SYSTEM_RAM |
					      IORESOURCE_EXCLUSIVE);
	if (!vm->parent_res) {
		kfree(name);
		dev_err(&vm->vdev->dev, "region 0x%llx size 0x%llx is in use\n",
			vm->region_addr, vm->region_size);
		return -EBUSY;
	}
	vm->parent_res->flags &= ~IORESOURCE_BUSY;
	return 0;
}

static void dmm_release_region(struct virtio_dmm *vm)
{
	const char *name = vm->parent_res->name;

	release_resource(vm->parent_res);
	kfree(vm->parent_res);
	kfree(name);
	vm->parent_res = NULL;
}

int dmm_coarse_init(struct virtio_dmm *vm)
{
	int rc;

	rc = dmm_reserve_region(vm);
	if (rc)
		return rc;
	rc = memory_group_register_dynamic(vm->nid,
					   vm->block_size >> PAGE_SHIFT);
	if (rc < 0) {
		dev_err(&vm->vdev->dev, "registering a memory group for node %d failed: %d\n",
			vm->nid, rc);
		goto out_release;
	}
	vm->mgid = rc;
	return 0;

out_release:
	dmm_release_region(vm);
	return rc;
}

/* Only when nothing is plugged: Linux holds no memory of the region. */
void dmm_coarse_exit(struct virtio_dmm *vm)
{
	if (WARN_ON_ONCE(vm->plugged_size))
		return;
	memory_group_unregister(vm->mgid);
	dmm_release_region(vm);
}

/*
 * While memory is plugged the module holds a reference to itself: unloading
 * then fails with "in use" instead of stranding memory in Linux.
 */
void dmm_plugged_add(struct virtio_dmm *vm, s64 delta)
{
	if (!vm->plugged_size && delta > 0)
		__module_get(THIS_MODULE);
	WRITE_ONCE(vm->plugged_size, vm->plugged_size + delta);
	if (!vm->plugged_size && delta < 0)
		module_put(THIS_MODULE);
}

/*
 * Block @id is plugged whole and about to be added (@plug), or removed and
 * unplugged.  Added blocks start offline; the memory notifier moves them
 * online when Linux onlines them, while adding or later.  Whole blocks
 * carry their memory map where the administrator asked for that.
 */
static void dmm_block_whole(struct virtio_dmm *vm, unsigned long id,
			    bool plug)
{
	mutex_lock(&vm->blocks.lock);
	dmm_sb_mark_block(vm, id, plug);
	assign_bit(id, vm->blocks.memmap_on, plug && vm->blocks.memmap_pages);
	dmm_block_set_state(vm, id, plug ? DMM_BLOCK_OFFLINE :
				    DMM_BLOCK_UNPLUGGED);
	mutex_unlock(&vm->blocks.lock);
}

/* Add block @id to Linux, with its memory map on it if its bit says so. */
int dmm_add_block(struct virtio_dmm *vm, unsigned long id)
{
	mhp_t flags = MHP_MERGE_RESOURCE | MHP_NID_IS_MGID;
	u64 addr = dmm_block_addr(vm, id);
	int rc;

	if (dmm_block_memmap_pages(vm, id))
		flags |= MHP_MEMMAP_ON_MEMORY;
	rc = add_memory_driver_managed(vm->mgid, addr, vm->block_size,
				       dmm_resource_name, flags);
	if (rc)
		dev_warn(&vm->vdev->dev, "adding memory 0x%llx failed: %d\n",
			 addr, rc);
	return rc;
}

/*
 * Plug up to @bytes in whole blocks, lowest free block first.
 * Must be called with hotplug_mutex held.  Can fail after partial progress.
 */
int dmm_coarse_plug(struct virtio_dmm *vm, u64 bytes)
{
	unsigned long id;
	int rc;

	lockdep_assert_held(&vm->hotplug_mutex);
	while (bytes >= vm->block_size) {
		id = dmm_first_unplugged(vm);
		if (id >= vm->nb_blocks)
			return -ENOSPC;
		rc = dmm_send_plug(vm, dmm_block_addr(vm, id), 1);
		if (rc) {
			vm->plug_failures++;
			return rc;
		}
		/* the online_page callback reads the state while adding */
		dmm_block_whole(vm, id, true);
		rc = dmm_add_block(vm, id);
		if (rc) {
			vm->plug_failures++;
			dmm_block_whole(vm, id, false);
			/* Linux refused it: give it back. */
			if (dmm_send_unplug(vm, dmm_block_addr(vm, id), 1))
				return -EIO;
			return rc;
		}
		dmm_plugged_add(vm, vm->block_size);
		bytes -= vm->block_size;
	}
	return 0;
}

/*
 * Are at most @max pages of [pfn, pfn + nr) in use now (a free page, in
 * the buddy allocator or on a per-cpu list, holds no reference)?  Read
 * without the zone lock, so only a hint: a page allocated since is a fresh
 * one, which offlining migrates like any other.
 */
static bool dmm_range_used_max(unsigned long pfn, unsigned long nr,
			       unsigned long max)
{
	unsigned long end = pfn + nr, used = 0;

	for (; pfn < end; pfn++) {
		if (page_count(pfn_to_page(pfn)) && ++used > max)
			return false;
		if (!(pfn % 4096))
			cond_resched();
	}
	return true;
}

/* Is every page of [pfn, pfn + nr) free now? */
static bool dmm_range_free(unsigned long pfn, unsigned long nr)
{
	return dmm_range_used_max(pfn, nr, 0);
}

/*
 * Is [pfn, pfn + nr) cheap to take back from Linux: at most
 * nr >> DMM_CHEAP_SHIFT of its pages in use?  Each page in use must
 * migrate: its new page is allocated (and cleared, where init_on_alloc is
 * on), then copied and mapped, about three times the work of taking a
 * free page (blocks 60 % in use took 2.2 times as long per byte as the
 * balloon's free pages: design.rst, "fragmented").  Above that share,
 * free pages elsewhere give the same memory back sooner.
 */
bool dmm_region_cheap(unsigned long pfn, unsigned long nr)
{
	return dmm_range_used_max(pfn, nr, nr >> DMM_CHEAP_SHIFT);
}

/*
 * offline_pages() also loops forever on a page it can never migrate (one
 * pinned by someone else).  alloc_contig_range() migrates the same pages
 * but gives up after a few tries: take the whole block with it first, and
 * give it straight back.  The block is then free memory, which offlines
 * at once; a page allocated in between is a fresh movable one.
 *
 * A block that is free already has nothing to migrate, and vacating it
 * would only cost time: alloc_contig_range() hands every page out through
 * the allocator, which clears it where init_on_alloc is on (the default of
 * most distributions), about half a second per 128 MiB under TCG.  Such a
 * block is offlined straight away.
 *
 * The pages holding the block's own memory map (if it carries it) were
 * never the buddy's: both skip them.
 */
static int dmm_vacate_block(struct virtio_dmm *vm, unsigned long id)
{
	unsigned long memmap = dmm_block_memmap_pages(vm, id);
	unsigned long pfn = PHYS_PFN(dmm_block_addr(vm, id)) + memmap;
	unsigned long nr = (vm->block_size >> PAGE_SHIFT) - memmap;
	int rc;

	if (!IS_ENABLED(CONFIG_CONTIG_ALLOC))
		return 0;
	if (dmm_range_free(pfn, nr)) {
		vm->blocks.free_removals++;
		return 0;
	}

	rc = alloc_contig_range(pfn, pfn + nr, MIGRATE_MOVABLE, GFP_KERNEL);
	if (rc) {
		dev_dbg(&vm->vdev->dev, "block 0x%llx cannot be vacated: %d\n",
			dmm_block_addr(vm, id), rc);
		return rc;
	}
	free_contig_range(pfn, nr);
	vm->blocks.vacated++;
	return 0;
}

/*
 * Remove block @id from Linux, then unplug it.  -EBUSY if Linux cannot
 * offline it now.  If the device cannot unplug it now, the block goes back
 * to Linux and the device's answer is returned.
 */
static int dmm_remove_block(struct virtio_dmm *vm, unsigned long id)
{
	u64 addr = dmm_block_addr(vm, id);
	int rc;

	/*
	 * offline_pages() retries migration for as long as it takes when
	 * there is no free memory to migrate to, and a kernel worker gets no
	 * signal to stop it: never start without room.
	 */
	if (!dmm_above_floor(vm->block_size)) {
		vm->floor_stops++;
		return -EBUSY;
	}
	if (dmm_vacate_block(vm, id)) {
		vm->unplug_failures++;
		return -EBUSY;
	}
	rc = offline_and_remove_memory(addr, vm->block_size);
	if (rc) {
		vm->unplug_failures++;
		dev_dbg(&vm->vdev->dev, "removing memory 0x%llx failed: %d\n",
			addr, rc);
		return rc == -EBUSY || rc == -EAGAIN ? -EBUSY : rc;
	}
	rc = dmm_send_unplug(vm, addr, 1);
	if (rc) {
		if (dmm_add_block(vm, id))
			return -EIO;	/* neither Linux's nor unplugged */
		return rc;
	}
	dmm_block_whole(vm, id, false);
	dmm_plugged_add(vm, -(s64)vm->block_size);
	return 0;
}

/* May block @id go for a shrink that accepts migration as @how says? */
static bool dmm_block_vacatable(struct virtio_dmm *vm, unsigned long id,
				enum dmm_vacate how)
{
	unsigned long memmap = dmm_block_memmap_pages(vm, id);

	return how == DMM_VACATE_ANY ||
	       dmm_region_cheap(PHYS_PFN(dmm_block_addr(vm, id)) + memmap,
				(vm->block_size >> PAGE_SHIFT) - memmap);
}

/*
 * Unplug up to @bytes in whole blocks, highest address first, skipping
 * blocks Linux cannot offline now and, with DMM_VACATE_CHEAP, blocks too
 * full to move (counted in region_deferred).  Must be called with
 * hotplug_mutex held.  Returns 0, or -EBUSY if some blocks were busy or
 * skipped (after partial progress), or the first other error.
 */
int dmm_coarse_unplug(struct virtio_dmm *vm, u64 bytes, enum dmm_vacate how)
{
	unsigned long id;
	bool busy = false;
	int rc;

	lockdep_assert_held(&vm->hotplug_mutex);
	for (id = dmm_prev_added(vm, vm->nb_blocks); id < vm->nb_blocks;
	     id = dmm_prev_added(vm, id)) {
		if (bytes < vm->block_size)
			break;
		/* partially plugged blocks empty out by sub-blocks */
		if (dmm_state_partial(dmm_block_state(vm, id)))
			continue;
		if (!dmm_block_vacatable(vm, id, how)) {
			vm->region_deferred++;
			busy = true;
			continue;
		}
		rc = dmm_remove_block(vm, id);
		if (rc == -EBUSY) {
			busy = true;
			continue;
		}
		if (rc)
			return rc;
		bytes -= vm->block_size;
	}
	return bytes >= vm->block_size && busy ? -EBUSY : 0;
}

/*
 * Unplug every block we hold, partially plugged ones sub-block by
 * sub-block.  Returns 0 or the first error.
 */
int dmm_coarse_unplug_all(struct virtio_dmm *vm)
{
	int rc = dmm_coarse_unplug(vm, vm->plugged_size, DMM_VACATE_ANY);

	if (!rc && vm->sb.on && vm->plugged_size)
		rc = dmm_sb_unplug(vm, vm->plugged_size, DMM_VACATE_ANY);
	return rc;
}
