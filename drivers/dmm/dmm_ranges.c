// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: page ranges (VIRTIO_DMM_F_PAGE_RANGES).
 *
 * Pages are what lets the guest go below its boot size, but a page at a
 * time is a request entry, a list entry and a host discard per 4 KiB, and
 * the host splits the huge page behind each one.  Where the buddy
 * allocator has free blocks of 2^order pages (MAX_PAGE_ORDER and the
 * pageblock order: 4 and 2 MiB on x86-64), the driver takes them whole and
 * names each in one entry of an UNPLUG_PAGES request with that order; the
 * device discards each in one call, so the host drops whole huge pages.
 * What is left below a range goes as single pages (dmm_pages.c).
 *
 * A range is taken without effort: no reclaim, no compaction, no kswapd
 * (a failed allocation only means there is no such free block now).  It
 * is taken from the non-movable zones (no __GFP_MOVABLE), a whole
 * pageblock at least, so it never holds up the offlining of a
 * ZONE_MOVABLE block and does not fragment memory; it is not movable (the
 * balloon compaction core moves single pages only).  Its pages are marked
 * PG_offline while unplugged, as balloon pages are.
 *
 * Growing gives single pages back first, then whole ranges; a deficit
 * smaller than a range splits one range into single pages (which then
 * are ordinary movable balloon pages).  Single pages given back while no
 * range was free are traded for ranges once the allocator has them again
 * (dmm_pages_trade()).
 *
 * Locking: the lists and pages.range_pages change in the control loop
 * (hotplug_mutex) with pages.lock held around each request, and at
 * removal after dmm_pages_detach().
 */
#include <linux/balloon_compaction.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/module.h>
#include <linux/virtio_config.h>

#include "dmm.h"

static bool page_ranges = true;
module_param(page_ranges, bool, 0444);
MODULE_PARM_DESC(page_ranges,
		 "unplug free 2 and 4 MiB blocks as ranges where the device takes them (default: true); off, every page goes singly");

/* No reclaim, compaction or kswapd: only blocks that are free now. */
#define DMM_RANGE_GFP	(__GFP_NOWARN | __GFP_NOMEMALLOC | __GFP_NORETRY)

static unsigned long dmm_range_nr(const struct virtio_dmm *vm, int i)
{
	return 1UL << vm->pages.range_order[i];
}

/*
 * A free block of 2^@order pages, from the device's node while it has one
 * there (as dmm_page_alloc()), else from anywhere.
 */
static struct page *dmm_range_alloc(int nid, unsigned int order)
{
	struct page *page = NULL;

	if (nid != NUMA_NO_NODE && node_state(nid, N_MEMORY))
		page = alloc_pages_node(nid, DMM_RANGE_GFP | __GFP_THISNODE,
					order);
	return page ?: alloc_pages(DMM_RANGE_GFP, order);
}

/*
 * Mark the @nr pages of a range logically offline (PG_offline), as balloon
 * pages are, or clear the mark before they go back: dump tools and
 * /proc/kcore skip such pages instead of reading memory the host dropped.
 */
static void dmm_range_mark(struct page *page, unsigned long nr, bool offline)
{
	unsigned long k;

	page_offline_begin();
	for (k = 0; k < nr; k++) {
		if (offline)
			__SetPageOffline(page + k);
		else
			__ClearPageOffline(page + k);
	}
	page_offline_end();
}

static void dmm_range_free_list(struct list_head *list, unsigned int order)
{
	struct page *page, *next;

	list_for_each_entry_safe(page, next, list, lru) {
		list_del(&page->lru);
		__free_pages(page, order);
	}
}

/* Send the ranges on @list (@n of them, order of list @i) as @type. */
static int dmm_ranges_send(struct virtio_dmm *vm, u16 type, int i,
			   struct list_head *list, unsigned int n)
{
	struct page *page;
	unsigned int k = 0;

	lockdep_assert_held(&vm->pages.lock);
	list_for_each_entry(page, list, lru)
		vm->pages.req->addr[k++] = cpu_to_le64(page_to_phys(page));
	return dmm_send_pages(vm, type, vm->pages.range_order[i], n);
}

/*
 * Unplug one batch of at most @want ranges of list @i.  Returns the number
 * unplugged, 0 if the allocator has no such block free now or the floor
 * is reached, or the device's error.
 */
int dmm_ranges_unplug_batch(struct virtio_dmm *vm, int i, unsigned int want)
{
	unsigned int order = vm->pages.range_order[i], n = 0;
	unsigned long nr = dmm_range_nr(vm, i);
	struct page *page, *next;
	LIST_HEAD(list);
	int rc;

	want = min_t(unsigned long, want, dmm_pages_headroom() / nr);
	while (n < want && (page = dmm_range_alloc(vm->nid, order))) {
		list_add_tail(&page->lru, &list);
		n++;
	}
	if (!n)
		return 0;

	mutex_lock(&vm->pages.lock);
	rc = dmm_ranges_send(vm, VIRTIO_DMM_REQ_UNPLUG_PAGES, i, &list, n);
	if (!rc) {
		list_for_each_entry_safe(page, next, &list, lru) {
			list_move_tail(&page->lru, &vm->pages.ranges[i]);
			dmm_range_mark(page, nr, true);
			adjust_managed_page_count(page, -(long)nr);
		}
		vm->pages.range_pages += (u64)n * nr;
		vm->pages.ranges_unplugged += n;
		WRITE_ONCE(vm->pages.unplugged, vm->pages.unplugged + n * nr);
	}
	mutex_unlock(&vm->pages.lock);
	if (rc) {
		dmm_range_free_list(&list, order);
		return rc;
	}
	return n;
}

/* A batch of at most @want ranges of list @i: how many it did, or an error. */
typedef int (*dmm_range_batch_fn)(struct virtio_dmm *vm, int i,
				  unsigned int want);

/*
 * Unplug or plug (@batch) up to @pages pages in whole ranges, largest
 * order first, each order until @batch does no more.  Returns the pages
 * left, or an error.
 */
static s64 dmm_ranges_each(struct virtio_dmm *vm, u64 pages,
			   dmm_range_batch_fn batch)
{
	unsigned long nr;
	u64 want;
	int i, rc;

	for (i = 0; i < vm->pages.nr_orders; i++) {
		nr = dmm_range_nr(vm, i);
		while (pages >= nr) {
			want = min_t(u64, pages / nr, vm->pages.batch);
			rc = batch(vm, i, want);
			if (rc < 0)
				return rc;
			if (!rc)
				break;
			pages -= (u64)rc * nr;
			cond_resched();
		}
	}
	return pages;
}

/*
 * Unplug what of @bytes whole ranges can take, largest order first.
 * Returns the bytes left to unplug (in single pages), or an error.
 */
s64 dmm_ranges_unplug(struct virtio_dmm *vm, u64 bytes)
{
	s64 left = dmm_ranges_each(vm, bytes >> PAGE_SHIFT,
				   dmm_ranges_unplug_batch);

	return left < 0 ? left : left << PAGE_SHIFT;
}

/*
 * Plug back at most @want ranges of list @i: the device first, then they
 * go back to the allocator.  Returns the number plugged (0: none left) or
 * an error.
 */
static int dmm_ranges_plug_batch(struct virtio_dmm *vm, int i,
				 unsigned int want)
{
	unsigned long nr = dmm_range_nr(vm, i);
	struct page *page, *next;
	unsigned int n = 0;
	LIST_HEAD(list);
	int rc;

	mutex_lock(&vm->pages.lock);
	list_for_each_entry_safe(page, next, &vm->pages.ranges[i], lru) {
		if (n == want)
			break;
		list_move_tail(&page->lru, &list);
		n++;
	}
	if (!n) {
		mutex_unlock(&vm->pages.lock);
		return 0;
	}
	rc = dmm_ranges_send(vm, VIRTIO_DMM_REQ_PLUG_PAGES, i, &list, n);
	if (rc) {
		list_splice(&list, &vm->pages.ranges[i]);
	} else {
		list_for_each_entry(page, &list, lru) {
			dmm_range_mark(page, nr, false);
			adjust_managed_page_count(page, nr);
		}
		vm->pages.range_pages -= (u64)n * nr;
		WRITE_ONCE(vm->pages.unplugged, vm->pages.unplugged - n * nr);
	}
	mutex_unlock(&vm->pages.lock);
	if (rc)
		return rc;
	dmm_range_free_list(&list, vm->pages.range_order[i]);
	return n;
}

/*
 * Plug back whole ranges for up to @bytes, largest first.  Returns the
 * bytes plugged, or an error.
 */
s64 dmm_ranges_plug(struct virtio_dmm *vm, u64 bytes)
{
	s64 left = dmm_ranges_each(vm, bytes >> PAGE_SHIFT,
				   dmm_ranges_plug_batch);

	return left < 0 ? left : bytes - (left << PAGE_SHIFT);
}

/*
 * Less than the smallest range is to be plugged and only ranges are left:
 * make the smallest range single balloon pages, which can be plugged one
 * by one.  The device sees nothing: its state is per page.  Returns false
 * if there is no range.
 */
bool dmm_ranges_split_one(struct virtio_dmm *vm)
{
	int i = vm->pages.nr_orders - 1;
	unsigned long nr, k;
	struct page *page;

	for (; i >= 0; i--)
		if (!list_empty(&vm->pages.ranges[i]))
			break;
	if (i < 0)
		return false;
	nr = dmm_range_nr(vm, i);
	mutex_lock(&vm->pages.lock);
	page = list_first_entry(&vm->pages.ranges[i], struct page, lru);
	list_del(&page->lru);
	dmm_range_mark(page, nr, false);
	split_page(page, vm->pages.range_order[i]);
	for (k = 0; k < nr; k++)
		balloon_page_enqueue(&vm->pages.b_dev_info, page + k);
	vm->pages.range_pages -= nr;
	vm->pages.range_splits++;
	mutex_unlock(&vm->pages.lock);
	return true;
}

/*
 * The device plugged everything back (UNPLUG_ALL) or is gone: free every
 * range.  After dmm_pages_detach().
 */
void dmm_ranges_release(struct virtio_dmm *vm)
{
	int i;

	mutex_lock(&vm->pages.lock);
	for (i = 0; i < vm->pages.nr_orders; i++) {
		struct page *page, *next;
		unsigned long nr = dmm_range_nr(vm, i);

		list_for_each_entry_safe(page, next, &vm->pages.ranges[i], lru) {
			list_del(&page->lru);
			dmm_range_mark(page, nr, false);
			adjust_managed_page_count(page, nr);
			__free_pages(page, vm->pages.range_order[i]);
			WRITE_ONCE(vm->pages.unplugged,
				   vm->pages.unplugged - nr);
		}
	}
	vm->pages.range_pages = 0;
	mutex_unlock(&vm->pages.lock);
}

/*
 * With F_PAGE_RANGES: the orders to take, largest first: MAX_PAGE_ORDER
 * and the pageblock order, as far as the device takes them.  The lists
 * are set up by dmm_pages_init().
 */
void dmm_ranges_init(struct virtio_dmm *vm)
{
	unsigned int orders[] = { MAX_PAGE_ORDER, pageblock_order };
	int i;

	if (!page_ranges ||
	    !virtio_has_feature(vm->vdev, VIRTIO_DMM_F_PAGE_RANGES))
		return;
	for (i = 0; i < ARRAY_SIZE(orders); i++) {
		if (!orders[i] || orders[i] > VIRTIO_DMM_MAX_PAGE_ORDER ||
		    (vm->pages.nr_orders &&
		     orders[i] >= vm->pages.range_order[vm->pages.nr_orders - 1]))
			continue;
		vm->pages.range_order[vm->pages.nr_orders++] = orders[i];
	}
}
