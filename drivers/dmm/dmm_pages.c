// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: single pages (VIRTIO_DMM_F_PAGES).
 *
 * Unplug: take pages from the page allocator as balloon pages, tell the
 * device on the page virtqueue, and keep them on the balloon list.  They
 * can come from anywhere in RAM, boot memory included, which is what lets
 * the guest go below its boot size.  Plug: tell the device first, then
 * free the pages.
 *
 * Balloon pages are movable: compaction and memory offlining migrate them
 * through dmm_pages_migrate(), which tells the device that the new page is
 * now unplugged and the old one plugged (MOVE_PAGES), so unplugging pages
 * does not pin fragments all over memory and does not stop a block from
 * being removed.
 *
 * The floor: pages are only taken while MemAvailable stays above a reserve,
 * so that unplugging never pushes running programs into reclaim storms or
 * the OOM killer.  What could not be met shows in sysfs (gap_size).
 */
#include <linux/balloon_compaction.h>
#include <linux/delay.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>

#include "dmm.h"

/* Pages per request: the buffer is one page of addresses plus a header. */
#define DMM_PAGES_BATCH	512
/* Poll interval while pages isolated by a migration come back. */
#define DMM_RELEASE_WAIT_MS	20
/* Say in the log that removal still waits, every this many seconds. */
#define DMM_RELEASE_WARN_SECS	10

/*
 * Send the page request in vm->pages.req (@nb addresses, each naming
 * 2^@order pages) and wait for the answer.  Called with pages.lock held:
 * one request in flight.  ACK 0, NACK -ENOSPC, anything else an error (see
 * dmm_resp_errno()).
 */
int dmm_send_pages(struct virtio_dmm *vm, u16 type, u16 order,
		   unsigned int nb)
{
	int rc;

	lockdep_assert_held(&vm->pages.lock);
	vm->pages.req->type = cpu_to_le16(type);
	vm->pages.req->order = cpu_to_le16(order);
	vm->pages.req->nb_pages = cpu_to_le32(nb);
	rc = dmm_resp_errno(dmm_vq_exchange(vm->pages.vq, &vm->pages.resp_wq,
					    vm->pages.req,
					    struct_size(vm->pages.req, addr, nb),
					    &vm->pages.resp));
	if (rc && rc != -ENOSPC && rc != -ETXTBSY)
		dev_err(&vm->vdev->dev, "page request %u of %u ranges of order %u failed: %d\n",
			type, nb, order, rc);
	return rc;
}

/* How many more pages may be unplugged before the floor is reached. */
unsigned long dmm_pages_headroom(void)
{
	long avail = si_mem_available();
	unsigned long reserve = dmm_mem_reserve();

	return avail > reserve ? avail - reserve : 0;
}

/*
 * The lowest total RAM the guest would shrink to now: what it has, less
 * what can be taken above the reserve.  For sysfs.
 */
u64 dmm_pages_floor(struct virtio_dmm *vm)
{
	u64 cur = dmm_current_size(vm);
	u64 room = (u64)dmm_pages_headroom() << PAGE_SHIFT;

	return cur > room ? cur - room : 0;
}

/*
 * One page to unplug: from the device's own NUMA node while it has free
 * memory there (so that with a device per node, shrinking one takes its
 * node's RAM), else from anywhere, as balloon_page_alloc() does.
 */
static struct page *dmm_page_alloc(int nid)
{
	struct page *page = NULL;

	if (nid != NUMA_NO_NODE && node_state(nid, N_MEMORY))
		page = alloc_pages_node(nid, balloon_mapping_gfp_mask() |
					__GFP_THISNODE | __GFP_NOMEMALLOC |
					__GFP_NORETRY | __GFP_NOWARN, 0);
	return page ?: balloon_page_alloc();
}

/* Allocate up to @want balloon pages onto @pages; returns how many. */
static unsigned int dmm_alloc_batch(struct list_head *pages,
				    unsigned int want, int nid)
{
	unsigned int n = 0;
	struct page *page;

	while (n < want) {
		page = dmm_page_alloc(nid);
		if (!page)
			break;
		balloon_page_push(pages, page);
		n++;
	}
	return n;
}

static void dmm_free_list(struct list_head *pages)
{
	struct page *page;

	while ((page = balloon_page_pop(pages)))
		__free_page(page);
}

static unsigned int dmm_fill_addrs(struct virtio_dmm *vm,
				   struct list_head *pages)
{
	unsigned int n = 0;
	struct page *page;

	list_for_each_entry(page, pages, lru)
		vm->pages.req->addr[n++] = cpu_to_le64(page_to_phys(page));
	return n;
}

/*
 * Unplug one batch of up to @want pages.  Returns the number unplugged
 * (> 0), -ENOMEM if the floor or the allocator stopped us, or the
 * device's error.
 */
static int dmm_unplug_batch(struct virtio_dmm *vm, unsigned int want)
{
	LIST_HEAD(pages);
	struct page *page, *next;
	unsigned int n;
	int rc;

	want = min_t(unsigned long, want, dmm_pages_headroom());
	if (!want)
		return -ENOMEM;
	/* Allocate outside pages.lock: reclaim may migrate balloon pages. */
	n = dmm_alloc_batch(&pages, want, vm->nid);
	if (!n)
		return -ENOMEM;

	mutex_lock(&vm->pages.lock);
	dmm_fill_addrs(vm, &pages);
	rc = dmm_send_pages(vm, VIRTIO_DMM_REQ_UNPLUG_PAGES, 0, n);
	if (!rc) {
		list_for_each_entry_safe(page, next, &pages, lru) {
			list_del(&page->lru);
			balloon_page_enqueue(&vm->pages.b_dev_info, page);
			adjust_managed_page_count(page, -1);
		}
		WRITE_ONCE(vm->pages.unplugged, vm->pages.unplugged + n);
	}
	mutex_unlock(&vm->pages.lock);
	if (rc) {
		dmm_free_list(&pages);
		return rc;
	}
	return n;
}

/*
 * Unplug up to @bytes in pages: in ranges as far as free blocks allow
 * (dmm_ranges.c), the rest page by page.  Called from the control loop.
 * Returns 0 when done, -ENOMEM at the floor (after partial progress), or
 * the device's error.
 */
int dmm_pages_unplug(struct virtio_dmm *vm, u64 bytes)
{
	u64 left;
	s64 rest;
	int rc;

	if (vm->pages.nr_orders) {
		rest = dmm_ranges_unplug(vm, bytes);
		if (rest < 0)
			return rest;
		bytes = rest;
	}
	left = bytes >> PAGE_SHIFT;
	while (left) {
		rc = dmm_unplug_batch(vm, min_t(u64, left, vm->pages.batch));
		if (rc < 0) {
			if (rc == -ENOMEM) {
				vm->pages.unplug_failures++;
				vm->floor_stops++;
			}
			return rc;
		}
		left -= rc;
		cond_resched();
	}
	return 0;
}

/*
 * Plug back one batch of up to @want pages: the device first, then the
 * pages go back to the allocator.  Returns the number plugged or an error
 * (-ENOSPC: the device says that would exceed the requested size).
 */
static int dmm_plug_batch(struct virtio_dmm *vm, unsigned int want)
{
	LIST_HEAD(pages);
	struct page *page;
	unsigned int n;
	int rc;

	mutex_lock(&vm->pages.lock);
	n = balloon_page_list_dequeue(&vm->pages.b_dev_info, &pages, want);
	if (!n) {
		/* all isolated for migration right now: back off */
		mutex_unlock(&vm->pages.lock);
		return -EBUSY;
	}
	dmm_fill_addrs(vm, &pages);
	rc = dmm_send_pages(vm, VIRTIO_DMM_REQ_PLUG_PAGES, 0, n);
	if (rc) {
		balloon_page_list_enqueue(&vm->pages.b_dev_info, &pages);
	} else {
		WRITE_ONCE(vm->pages.unplugged, vm->pages.unplugged - n);
		list_for_each_entry(page, &pages, lru)
			adjust_managed_page_count(page, 1);
	}
	mutex_unlock(&vm->pages.lock);
	if (rc)
		return rc;
	dmm_free_list(&pages);
	return n;
}

/* Plug back up to @pages single pages.  0, or the first error. */
static int dmm_singles_plug(struct virtio_dmm *vm, u64 pages)
{
	u64 left = min_t(u64, pages, dmm_pages_singles(vm));
	int rc;

	while (left) {
		rc = dmm_plug_batch(vm, min_t(u64, left, vm->pages.batch));
		if (rc < 0)
			return rc;
		left -= rc;
		cond_resched();
	}
	return 0;
}

/*
 * Plug back up to @bytes of unplugged pages: single pages first (they
 * fragment the guest and split the host's huge pages), then whole ranges;
 * less than a range left splits one.  0, or the first error.
 */
int dmm_pages_plug(struct virtio_dmm *vm, u64 bytes)
{
	u64 left = min_t(u64, bytes >> PAGE_SHIFT, vm->pages.unplugged);
	u64 singles = dmm_pages_singles(vm);
	s64 done;
	int rc;

	rc = dmm_singles_plug(vm, left);
	if (rc || left <= singles)
		return rc;
	left -= singles;
	done = dmm_ranges_plug(vm, left << PAGE_SHIFT);
	if (done < 0)
		return done;
	left -= done >> PAGE_SHIFT;
	if (left && dmm_ranges_split_one(vm))
		return dmm_singles_plug(vm, left);
	return 0;
}

/*
 * Trade single pages for a range: single pages were given back while the
 * allocator had no free range (memory was fragmented or short); if it has
 * one now, unplug it and plug as many single pages back.  The guest's size
 * stays, it gets its scattered pages back, and the host drops a whole
 * range where it had dropped scattered pages.  One batch per call, from the
 * control loop when it is otherwise idle.  Returns the pages traded, 0 if
 * there is nothing to trade or no range free, or an error.
 */
int dmm_pages_trade(struct virtio_dmm *vm)
{
	int i = vm->pages.nr_orders - 1;	/* the smallest: most often free */
	unsigned long nr;
	int n, rc;

	if (!dmm_pages_tradable(vm))
		return 0;
	nr = 1UL << vm->pages.range_order[i];
	n = dmm_ranges_unplug_batch(vm, i,
				    min_t(u64, dmm_pages_singles(vm) / nr,
					  vm->pages.batch));
	if (n <= 0)
		return n;
	rc = dmm_singles_plug(vm, (u64)n * nr);
	if (rc)
		return rc;
	vm->pages.traded += (u64)n * nr;
	return n * nr;
}

/* Are there single pages enough for the smallest range to trade them for? */
bool dmm_pages_tradable(const struct virtio_dmm *vm)
{
	int i = vm->pages.nr_orders - 1;

	return i >= 0 && dmm_pages_singles(vm) >= 1UL << vm->pages.range_order[i];
}

/*
 * Compaction or offlining moves a balloon page: tell the device that
 * @newpage is now unplugged and @page plugged, in one request so that the
 * size never changes (no NACK).  -EAGAIN makes the core retry later.
 */
static int dmm_pages_migrate(struct balloon_dev_info *b_dev_info,
			     struct page *newpage, struct page *page,
			     enum migrate_mode mode)
{
	struct virtio_dmm *vm = container_of(b_dev_info, struct virtio_dmm,
					     pages.b_dev_info);
	unsigned long flags;
	int rc;

	/* The control loop may hold it while it allocates: don't wait. */
	if (!mutex_trylock(&vm->pages.lock))
		return -EAGAIN;
	/* Going away: the core puts @page back on our list, to be freed. */
	if (vm->pages.detached) {
		mutex_unlock(&vm->pages.lock);
		return -EAGAIN;
	}
	vm->pages.req->addr[0] = cpu_to_le64(page_to_phys(page));
	vm->pages.req->addr[1] = cpu_to_le64(page_to_phys(newpage));
	rc = dmm_send_pages(vm, VIRTIO_DMM_REQ_MOVE_PAGES, 0, 2);
	if (rc) {
		mutex_unlock(&vm->pages.lock);
		return -EAGAIN;
	}
	get_page(newpage);	/* the balloon's reference */
	if (page_zone(page) != page_zone(newpage)) {
		adjust_managed_page_count(page, 1);
		adjust_managed_page_count(newpage, -1);
	}
	spin_lock_irqsave(&b_dev_info->pages_lock, flags);
	balloon_page_insert(b_dev_info, newpage);
	b_dev_info->isolated_pages--;
	__count_vm_event(BALLOON_MIGRATE);
	spin_unlock_irqrestore(&b_dev_info->pages_lock, flags);
	vm->pages.moves++;
	mutex_unlock(&vm->pages.lock);

	balloon_page_finalize(page);
	put_page(page);		/* the balloon's reference */
	return MIGRATEPAGE_SUCCESS;
}

int dmm_pages_init(struct virtio_dmm *vm)
{
	u32 page_size, max_pages;

	mutex_init(&vm->pages.lock);
	balloon_devinfo_init(&vm->pages.b_dev_info);
	INIT_LIST_HEAD(&vm->pages.ranges[0]);
	INIT_LIST_HEAD(&vm->pages.ranges[1]);
	if (!virtio_has_feature(vm->vdev, VIRTIO_DMM_F_PAGES))
		return 0;

	virtio_cread_le(vm->vdev, struct virtio_dmm_config, page_size,
			&page_size);
	virtio_cread_le(vm->vdev, struct virtio_dmm_config, max_pages,
			&max_pages);
	if (page_size != PAGE_SIZE || !max_pages) {
		dev_err(&vm->vdev->dev, "page size %u (max %u per request) does not match the kernel's %lu\n",
			page_size, max_pages, PAGE_SIZE);
		return -EINVAL;
	}
	vm->pages.batch = min_t(u32, max_pages, DMM_PAGES_BATCH);
	vm->pages.req = kzalloc(struct_size(vm->pages.req, addr,
					    vm->pages.batch), GFP_KERNEL);
	if (!vm->pages.req)
		return -ENOMEM;
	if (IS_ENABLED(CONFIG_BALLOON_COMPACTION))
		vm->pages.b_dev_info.migratepage = dmm_pages_migrate;
	vm->pages.on = true;
	dmm_ranges_init(vm);
	return 0;
}

/*
 * The device is going away: from now on a migration of an unplugged page
 * neither talks to the device (which may be told UNPLUG_ALL or reset next)
 * nor moves the page; it fails, and the core puts the page back on the
 * balloon list.  Call before dmm_pages_release().
 */
void dmm_pages_detach(struct virtio_dmm *vm)
{
	mutex_lock(&vm->pages.lock);
	vm->pages.detached = true;
	mutex_unlock(&vm->pages.lock);
}

static unsigned long dmm_pages_isolated(struct virtio_dmm *vm)
{
	unsigned long flags, n;

	spin_lock_irqsave(&vm->pages.b_dev_info.pages_lock, flags);
	n = vm->pages.b_dev_info.isolated_pages;
	spin_unlock_irqrestore(&vm->pages.b_dev_info.pages_lock, flags);
	return n;
}

/*
 * After the device plugged every page back (UNPLUG_ALL), or when it is
 * gone: give every balloon page back to the allocator, after
 * dmm_pages_detach().
 *
 * Pages isolated by compaction or offlining are off the balloon list but
 * still point at vm->pages.b_dev_info (page->private), and the core calls back
 * into this module for them: vm must not be freed, nor the module
 * unloaded, while any is isolated.  Detached, their migration fails fast
 * and the core puts them back on the list, so wait for them as long as it
 * takes (as virtio_balloon does), polling: the core does not tell us.
 * vm->pages.unplugged counts listed and isolated pages alike.
 */
void dmm_pages_release(struct virtio_dmm *vm)
{
	unsigned long warn_at = jiffies + DMM_RELEASE_WARN_SECS * HZ;
	LIST_HEAD(pages);
	struct page *page;
	size_t n;

	WARN_ON_ONCE(!vm->pages.detached);
	dmm_ranges_release(vm);
	while (READ_ONCE(vm->pages.unplugged)) {
		mutex_lock(&vm->pages.lock);
		n = balloon_page_list_dequeue(&vm->pages.b_dev_info, &pages,
					      vm->pages.batch);
		WRITE_ONCE(vm->pages.unplugged, vm->pages.unplugged - n);
		mutex_unlock(&vm->pages.lock);
		while ((page = balloon_page_pop(&pages))) {
			adjust_managed_page_count(page, 1);
			__free_page(page);
		}
		if (n) {
			cond_resched();
			continue;
		}
		/* all isolated for migration (or locked): they come back */
		if (time_after(jiffies, warn_at)) {
			dev_warn(&vm->vdev->dev, "removal waits for %lu of %llu pages isolated for migration\n",
				 dmm_pages_isolated(vm),
				 READ_ONCE(vm->pages.unplugged));
			warn_at = jiffies + DMM_RELEASE_WARN_SECS * HZ;
		}
		msleep(DMM_RELEASE_WAIT_MS);
	}
}

void dmm_pages_exit(struct virtio_dmm *vm)
{
	kfree(vm->pages.req);
	vm->pages.req = NULL;
}
