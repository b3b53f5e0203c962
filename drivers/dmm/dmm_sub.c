// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: sub-blocks (VIRTIO_DMM_F_SUB_BLOCKS).
 *
 * A block added to Linux may be partially plugged.  Its unplugged
 * sub-blocks are "fake-offline": Linux manages their memory map, but the
 * pages belong to us (PageOffline) and never reach the page allocator.
 *
 *  - Unplug a sub-block of an online block: alloc_contig_range() takes it
 *    (migrating what was there, or failing fast on unmovable pages), then
 *    the device unplugs it.
 *  - Plug one back: the device plugs it, then its pages go to the buddy.
 *  - Add a block with only some sub-blocks plugged: the online_page
 *    callback keeps the unplugged ones away from the buddy.  The kernel has
 *    one such callback for everyone; probe fails if another driver
 *    (virtio_mem, hv_balloon) holds it.
 *  - Remove a block: when memory goes offline the memory notifier drops our
 *    references to fake-offline pages, so offlining skips them.
 *  - A block added whole with its memory map on itself keeps the sub-blocks
 *    holding the map plugged; they are unplugged after the block left.
 *
 * A partially plugged block is in a *_PARTIAL state (dmm_blocks.c).
 * Sub-blocks change only while their block is ONLINE or ONLINE_PARTIAL.
 *
 * Locking: blocks.lock protects blocks.sb_plugged.  The control loop takes
 * it (inside hotplug_mutex) around each sub-block change, never around
 * add_memory or offline_and_remove_memory, which call back into the memory
 * notifier and the online_page callback; those take it themselves.
 */
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/page-flags.h>
#include <linux/rculist.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>

#include "dmm.h"

/* Devices with sub-blocks, for the one online_page callback. */
static LIST_HEAD(dmm_sb_devices);
static DEFINE_MUTEX(dmm_sb_devices_mutex);

static unsigned long dmm_sb_nr_pages(const struct virtio_dmm *vm)
{
	return vm->sb.size >> PAGE_SHIFT;
}

/* First sub-block of block @id. */
static unsigned long dmm_sb_first(const struct virtio_dmm *vm,
				  unsigned long id)
{
	return id * vm->sb.per_block;
}

static unsigned long dmm_sb_pfn(const struct virtio_dmm *vm, unsigned long sb)
{
	return PHYS_PFN(vm->region_addr + (u64)sb * vm->sb.size);
}

/* Plugged sub-blocks of block @id. */
unsigned int dmm_sb_count(const struct virtio_dmm *vm, unsigned long id)
{
	unsigned long sb, end = dmm_sb_first(vm, id) + vm->sb.per_block;
	unsigned int n = 0;

	for (sb = dmm_sb_first(vm, id); sb < end; sb++)
		n += test_bit(sb, vm->blocks.sb_plugged);
	return n;
}

/*
 * Mark every sub-block of @id plugged or unplugged (whole-block paths).
 * Caller holds blocks.lock.
 */
void dmm_sb_mark_block(struct virtio_dmm *vm, unsigned long id, bool plugged)
{
	lockdep_assert_held(&vm->blocks.lock);
	if (!vm->sb.on)
		return;
	if (plugged)
		bitmap_set(vm->blocks.sb_plugged, dmm_sb_first(vm, id),
			   vm->sb.per_block);
	else
		bitmap_clear(vm->blocks.sb_plugged, dmm_sb_first(vm, id),
			     vm->sb.per_block);
}

/*
 * Mark pages fake-offline.  Pages never onlined (kept from the buddy by the
 * online_page callback) are marked by dmm_set_never_onlined(): they have
 * to go through generic_online_page() later (dmm_compat.h).
 */
static void dmm_set_fake_offline(unsigned long pfn, unsigned long nr,
				 bool onlined)
{
	page_offline_begin();
	for (; nr--; pfn++) {
		struct page *page = pfn_to_page(pfn);

		if (onlined)
			__SetPageOffline(page);
		else
			dmm_set_never_onlined(page);
	}
	page_offline_end();
}

/* Give fake-offline pages to the buddy: a sub-block is plugged again. */
static void dmm_fake_online(unsigned long pfn, unsigned long nr)
{
	unsigned int order = MAX_PAGE_ORDER;
	unsigned long i, j;

	while (!IS_ALIGNED(pfn | nr, 1UL << order))
		order--;
	for (i = 0; i < nr; i += 1UL << order) {
		struct page *page = pfn_to_page(pfn + i);

		/* all pages of a sub-block came the same way */
		if (PageDirty(page)) {
			for (j = 0; j < 1UL << order; j++)
				dmm_clear_never_onlined(page + j);
			generic_online_page(page, order);
		} else {
			for (j = 0; j < 1UL << order; j++)
				__ClearPageOffline(page + j);
			free_contig_range(pfn + i, 1UL << order);
			adjust_managed_page_count(page, 1UL << order);
		}
	}
}

/*
 * Take sub-block @sb out of Linux: allocate it whole.  alloc_contig_range()
 * retries a few times in ZONE_MOVABLE, where pages are supposed to move.
 */
static int dmm_fake_offline(struct virtio_dmm *vm, unsigned long sb)
{
	unsigned long pfn = dmm_sb_pfn(vm, sb), nr = dmm_sb_nr_pages(vm);
	bool movable = is_zone_movable_page(pfn_to_page(pfn));
	int rc, tries;

	for (tries = 0; tries < 3; tries++) {
		if (atomic_read(&vm->config_changed))
			return -EAGAIN;
		rc = alloc_contig_range(pfn, pfn + nr, MIGRATE_MOVABLE,
					GFP_KERNEL);
		if (!rc) {
			dmm_set_fake_offline(pfn, nr, true);
			adjust_managed_page_count(pfn_to_page(pfn), -nr);
			return 0;
		}
		if (rc == -ENOMEM || !movable)
			break;
	}
	return rc == -ENOMEM ? -ENOMEM : -EBUSY;
}

/* May sub-blocks of block @id change?  Only while Linux has it online. */
static bool dmm_sb_block_usable(struct virtio_dmm *vm, unsigned long id)
{
	enum dmm_block_state s = dmm_block_state(vm, id);

	lockdep_assert_held(&vm->blocks.lock);
	return s == DMM_BLOCK_ONLINE || s == DMM_BLOCK_ONLINE_PARTIAL;
}

/*
 * Unplug sub-block @sb of an added block: Linux lets go of it, then the
 * device unplugs it.  -EBUSY if Linux cannot let go now.
 */
static int dmm_sb_unplug_one(struct virtio_dmm *vm, unsigned long sb)
{
	unsigned long id = sb / vm->sb.per_block;
	u64 addr = vm->region_addr + (u64)sb * vm->sb.size;
	int rc;

	if (!dmm_above_floor(vm->sb.size)) {
		vm->floor_stops++;
		return -ENOMEM;
	}
	mutex_lock(&vm->blocks.lock);
	if (!dmm_sb_block_usable(vm, id) ||
	    !test_bit(sb, vm->blocks.sb_plugged)) {
		rc = -EBUSY;
		goto out;
	}
	rc = dmm_fake_offline(vm, sb);
	if (rc)
		goto out;
	rc = dmm_send_range(vm, VIRTIO_DMM_REQ_UNPLUG_SB, addr, 1);
	if (rc) {
		dmm_fake_online(dmm_sb_pfn(vm, sb), dmm_sb_nr_pages(vm));
		goto out;
	}
	clear_bit(sb, vm->blocks.sb_plugged);
	dmm_block_set_partial(vm, id, true);
	dmm_plugged_add(vm, -(s64)vm->sb.size);
out:
	mutex_unlock(&vm->blocks.lock);
	return rc;
}

/* Plug sub-block @sb of an added block back. */
static int dmm_sb_plug_one(struct virtio_dmm *vm, unsigned long sb)
{
	unsigned long id = sb / vm->sb.per_block;
	u64 addr = vm->region_addr + (u64)sb * vm->sb.size;
	int rc;

	mutex_lock(&vm->blocks.lock);
	if (!dmm_sb_block_usable(vm, id)) {
		rc = -EBUSY;
		goto out;
	}
	rc = dmm_send_range(vm, VIRTIO_DMM_REQ_PLUG_SB, addr, 1);
	if (rc)
		goto out;
	dmm_fake_online(dmm_sb_pfn(vm, sb), dmm_sb_nr_pages(vm));
	set_bit(sb, vm->blocks.sb_plugged);
	dmm_block_set_partial(vm, id, dmm_sb_count(vm, id) < vm->sb.per_block);
	dmm_plugged_add(vm, vm->sb.size);
out:
	mutex_unlock(&vm->blocks.lock);
	return rc;
}

/*
 * Block @id has no plugged sub-block left: take it out of Linux.  All its
 * pages are fake-offline, so offlining only has to drop our references.
 */
static int dmm_sb_remove_empty(struct virtio_dmm *vm, unsigned long id)
{
	int rc = offline_and_remove_memory(dmm_block_addr(vm, id),
					   vm->block_size);

	if (rc) {
		dev_warn(&vm->vdev->dev, "removing empty block 0x%llx failed: %d\n",
			 dmm_block_addr(vm, id), rc);
		return rc;
	}
	mutex_lock(&vm->blocks.lock);
	dmm_block_set_state(vm, id, DMM_BLOCK_UNPLUGGED);
	mutex_unlock(&vm->blocks.lock);
	return 0;
}

/*
 * Block @id carries its memory map and has no other sub-block plugged:
 * take it out of Linux, which frees the map, then unplug the sub-blocks
 * that held it.  If the device refuses, the block goes back to Linux as it
 * was (the online_page callback keeps the rest fake-offline).
 */
static int dmm_sb_remove_memmap(struct virtio_dmm *vm, unsigned long id)
{
	unsigned long n = dmm_block_memmap_sbs(vm, id);
	u64 addr = dmm_block_addr(vm, id);
	int rc;

	rc = offline_and_remove_memory(addr, vm->block_size);
	if (rc) {
		dev_warn(&vm->vdev->dev, "removing block 0x%llx, its memory map all it has plugged, failed: %d\n",
			 addr, rc);
		return -EBUSY;
	}
	rc = dmm_send_range(vm, VIRTIO_DMM_REQ_UNPLUG_SB, addr, n);
	if (rc) {
		if (dmm_add_block(vm, id))
			return -EIO;	/* neither Linux's nor unplugged */
		return rc;
	}
	mutex_lock(&vm->blocks.lock);
	bitmap_clear(vm->blocks.sb_plugged, dmm_sb_first(vm, id), n);
	clear_bit(id, vm->blocks.memmap_on);
	dmm_block_set_state(vm, id, DMM_BLOCK_UNPLUGGED);
	mutex_unlock(&vm->blocks.lock);
	dmm_plugged_add(vm, -(s64)n * vm->sb.size);
	return 0;
}

/*
 * Unplug up to @bytes in the sub-blocks of block @id, highest first; the
 * block leaves Linux when nothing (or only its memory map) is left.
 * Sub-blocks too full to move for @how are left (region_deferred).
 * Returns the bytes unplugged; sets *@busy if Linux held on to some or
 * some were left, *@rc on another error.
 */
static u64 dmm_sb_unplug_block(struct virtio_dmm *vm, unsigned long id,
			       u64 bytes, enum dmm_vacate how, bool *busy,
			       int *rc)
{
	unsigned long first = dmm_sb_first(vm, id), memmap = dmm_block_memmap_sbs(vm, id);
	unsigned long sb, n;
	u64 done = 0;

	for (sb = first + vm->sb.per_block;
	     sb-- > first + memmap && bytes - done >= vm->sb.size;) {
		if (!test_bit(sb, vm->blocks.sb_plugged))
			continue;
		if (how == DMM_VACATE_CHEAP &&
		    !dmm_region_cheap(dmm_sb_pfn(vm, sb), dmm_sb_nr_pages(vm))) {
			vm->region_deferred++;
			*busy = true;
			continue;
		}
		*rc = dmm_sb_unplug_one(vm, sb);
		if (*rc == -EBUSY) {
			vm->sb.unplug_failures++;
			*busy = true;
			*rc = 0;
			continue;
		}
		if (*rc)
			return done;
		done += vm->sb.size;
	}

	n = dmm_sb_count(vm, id);
	if (!n) {
		dmm_sb_remove_empty(vm, id);
	} else if (n == memmap && bytes - done >= (u64)n * vm->sb.size) {
		*rc = dmm_sb_remove_memmap(vm, id);
		if (!*rc)
			return done + (u64)n * vm->sb.size;
		if (*rc == -EBUSY) {
			*busy = true;
			*rc = 0;
		}
	}
	return done;
}

/*
 * Unplug up to @bytes in sub-blocks of added blocks, highest first,
 * partially plugged blocks before full ones so that blocks empty out and
 * leave Linux.  @how: as for dmm_coarse_unplug().  Returns 0, -EBUSY if
 * sub-blocks were busy or left, or an error.
 */
int dmm_sb_unplug(struct virtio_dmm *vm, u64 bytes, enum dmm_vacate how)
{
	unsigned long id;
	bool busy = false;
	int pass, rc = 0;

	lockdep_assert_held(&vm->hotplug_mutex);
	for (pass = 0; pass < 2; pass++) {
		for (id = dmm_prev_added(vm, vm->nb_blocks); id < vm->nb_blocks;
		     id = dmm_prev_added(vm, id)) {
			if (bytes < vm->sb.size)
				break;
			/* pass 0: partially plugged blocks; pass 1: full */
			if (dmm_state_partial(dmm_block_state(vm, id)) == !!pass)
				continue;
			bytes -= dmm_sb_unplug_block(vm, id, bytes, how, &busy,
						     &rc);
			if (rc)
				return rc;
		}
	}
	return bytes >= vm->sb.size && busy ? -EBUSY : 0;
}

/* Plug up to @bytes in unplugged sub-blocks of added blocks. */
int dmm_sb_plug_added(struct virtio_dmm *vm, u64 bytes)
{
	unsigned long id, sb;
	int rc;

	lockdep_assert_held(&vm->hotplug_mutex);
	for (id = dmm_next_added(vm, 0); id < vm->nb_blocks;
	     id = dmm_next_added(vm, id + 1)) {
		if (bytes < vm->sb.size)
			break;
		if (!dmm_state_partial(dmm_block_state(vm, id)))
			continue;
		for (sb = dmm_sb_first(vm, id);
		     sb < dmm_sb_first(vm, id) + vm->sb.per_block &&
		     bytes >= vm->sb.size; sb++) {
			if (test_bit(sb, vm->blocks.sb_plugged))
				continue;
			rc = dmm_sb_plug_one(vm, sb);
			if (rc == -EBUSY)	/* offline in Linux: next block */
				break;
			if (rc)
				return rc;
			bytes -= vm->sb.size;
		}
	}
	return 0;
}

/*
 * Add a new block with its first @bytes / sb_size sub-blocks plugged (less
 * than a block): plug them with the device, then add the block; the
 * online_page callback keeps the rest fake-offline.
 */
int dmm_sb_plug_new(struct virtio_dmm *vm, u64 bytes)
{
	unsigned long id, n = bytes / vm->sb.size;
	int rc;

	lockdep_assert_held(&vm->hotplug_mutex);
	if (!n)
		return 0;
	id = dmm_first_unplugged(vm);
	if (id >= vm->nb_blocks)
		return -ENOSPC;
	rc = dmm_send_range(vm, VIRTIO_DMM_REQ_PLUG_SB, dmm_block_addr(vm, id),
			    n);
	if (rc) {
		vm->plug_failures++;
		return rc;
	}
	/* the online_page callback reads the bits while adding */
	mutex_lock(&vm->blocks.lock);
	bitmap_set(vm->blocks.sb_plugged, dmm_sb_first(vm, id), n);
	dmm_block_set_state(vm, id, DMM_BLOCK_OFFLINE_PARTIAL);
	mutex_unlock(&vm->blocks.lock);
	rc = dmm_add_block(vm, id);
	if (rc) {
		vm->plug_failures++;
		mutex_lock(&vm->blocks.lock);
		dmm_sb_mark_block(vm, id, false);
		dmm_block_set_state(vm, id, DMM_BLOCK_UNPLUGGED);
		mutex_unlock(&vm->blocks.lock);
		if (dmm_send_range(vm, VIRTIO_DMM_REQ_UNPLUG_SB,
				   dmm_block_addr(vm, id), n))
			return -EIO;
		return rc;
	}
	dmm_plugged_add(vm, (s64)n * vm->sb.size);
	return 0;
}

/* Bytes plugged in partially plugged blocks (for sysfs). */
u64 dmm_sb_partial_bytes(struct virtio_dmm *vm)
{
	unsigned long id;
	u64 n = 0;

	if (!vm->sb.on)
		return 0;
	mutex_lock(&vm->blocks.lock);
	for (id = dmm_next_added(vm, 0); id < vm->nb_blocks;
	     id = dmm_next_added(vm, id + 1))
		if (dmm_state_partial(dmm_block_state(vm, id)))
			n += (u64)dmm_sb_count(vm, id) * vm->sb.size;
	mutex_unlock(&vm->blocks.lock);
	return n;
}

/* --- the online_page callback and the memory notifier --- */

/*
 * Online @page (order @order) of our region: plugged sub-blocks go to the
 * buddy, unplugged ones stay fake-offline.
 */
static void dmm_online_range(struct virtio_dmm *vm, struct page *page,
			     unsigned int order)
{
	unsigned long pfn = page_to_pfn(page), end = pfn + (1UL << order);
	unsigned long step = min(1UL << order, dmm_sb_nr_pages(vm));
	unsigned long sb;

	mutex_lock(&vm->blocks.lock);
	for (; pfn < end; pfn += step) {
		sb = (PFN_PHYS(pfn) - vm->region_addr) / vm->sb.size;
		if (test_bit(sb, vm->blocks.sb_plugged))
			generic_online_page(pfn_to_page(pfn), ilog2(step));
		else
			dmm_set_fake_offline(pfn, step, false);
	}
	mutex_unlock(&vm->blocks.lock);
}

static bool dmm_contains(const struct virtio_dmm *vm, u64 addr, u64 size)
{
	return addr >= vm->region_addr &&
	       addr + size <= vm->region_addr + vm->region_size;
}

static void dmm_online_page_cb(struct page *page, unsigned int order)
{
	u64 addr = page_to_phys(page);
	struct virtio_dmm *vm;

	/* Pages being onlined never cross a memory block, so not devices. */
	rcu_read_lock();
	list_for_each_entry_rcu(vm, &dmm_sb_devices, sb.list) {
		if (!dmm_contains(vm, addr, PFN_PHYS(1UL << order)))
			continue;
		/* a device on the list outlives memory it has added */
		rcu_read_unlock();
		dmm_online_range(vm, page, order);
		return;
	}
	rcu_read_unlock();
	generic_online_page(page, order);
}

/*
 * Drop (or take back) our reference to every fake-offline page of the
 * Linux memory block at @pfn (@nr pages), so that offlining it skips them.
 * A block of ours may span several Linux memory blocks; each goes offline
 * on its own.  A block carrying its memory map goes offline from the first
 * page past the map, a whole number of sub-blocks in.  Called by the
 * memory notifier with blocks.lock held.
 */
void dmm_sb_offline_refs(struct virtio_dmm *vm, unsigned long pfn,
			 unsigned long nr, bool drop)
{
	unsigned long sb, i, first, end;

	lockdep_assert_held(&vm->blocks.lock);
	if (!vm->sb.on)
		return;
	first = div64_u64(PFN_PHYS(pfn) - vm->region_addr, vm->sb.size);
	end = first + div64_u64(PFN_PHYS(nr), vm->sb.size);
	for (sb = first; sb < end; sb++) {
		if (test_bit(sb, vm->blocks.sb_plugged))
			continue;
		if (drop)
			dmm_offline_managed(pfn_to_page(dmm_sb_pfn(vm, sb)),
					    dmm_sb_nr_pages(vm), true);
		for (i = 0; i < dmm_sb_nr_pages(vm); i++) {
			struct page *page = pfn_to_page(dmm_sb_pfn(vm, sb) + i);

			if (!drop)
				page_ref_inc(page);
			else if (WARN_ON(!page_ref_dec_and_test(page)))
				dump_page(page, "fake-offline page referenced");
		}
		if (!drop)
			dmm_offline_managed(pfn_to_page(dmm_sb_pfn(vm, sb)),
					    dmm_sb_nr_pages(vm), false);
	}
}

int dmm_sb_init(struct virtio_dmm *vm)
{
	unsigned long pageblock = PAGE_SIZE << pageblock_order;
	int rc;

	vm->sb.per_block = 1;
	vm->sb.size = vm->block_size;
	if (!virtio_has_feature(vm->vdev, VIRTIO_DMM_F_SUB_BLOCKS))
		return 0;

	virtio_cread_le(vm->vdev, struct virtio_dmm_config, sub_block_size,
			&vm->sb.size);
	if (!is_power_of_2(vm->sb.size) || vm->sb.size < pageblock ||
	    vm->sb.size > vm->block_size) {
		dev_err(&vm->vdev->dev, "sub-block size 0x%llx is not a power of two between the pageblock size 0x%lx and the block size 0x%llx\n",
			vm->sb.size, pageblock, vm->block_size);
		return -EINVAL;
	}
	vm->sb.per_block = vm->block_size / vm->sb.size;
	vm->blocks.sb_plugged = bitmap_zalloc(vm->nb_blocks * vm->sb.per_block,
					      GFP_KERNEL);
	if (!vm->blocks.sb_plugged)
		return -ENOMEM;

	mutex_lock(&dmm_sb_devices_mutex);
	if (list_empty(&dmm_sb_devices)) {
		rc = set_online_page_callback(&dmm_online_page_cb);
		if (rc) {
			mutex_unlock(&dmm_sb_devices_mutex);
			dev_err(&vm->vdev->dev, "another driver (virtio_mem? hv_balloon?) holds the kernel's online_page callback that sub-blocks need: %d\n",
				rc);
			bitmap_free(vm->blocks.sb_plugged);
			vm->blocks.sb_plugged = NULL;
			return -EBUSY;
		}
	}
	list_add_rcu(&vm->sb.list, &dmm_sb_devices);
	mutex_unlock(&dmm_sb_devices_mutex);
	vm->sb.on = true;
	return 0;
}

/* Only when no block is added: nothing of ours is online. */
void dmm_sb_exit(struct virtio_dmm *vm)
{
	if (!vm->sb.on)
		return;
	/* leave the callback's device list; the last device gives it back */
	mutex_lock(&dmm_sb_devices_mutex);
	list_del_rcu(&vm->sb.list);
	if (list_empty(&dmm_sb_devices))
		restore_online_page_callback(&dmm_online_page_cb);
	mutex_unlock(&dmm_sb_devices_mutex);
	synchronize_rcu();
	bitmap_free(vm->blocks.sb_plugged);
	vm->blocks.sb_plugged = NULL;
	vm->sb.on = false;
}
