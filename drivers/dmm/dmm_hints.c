// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: shared-page hints.
 *
 * A kernel thread walks the guest's memory, a batch of page frames at a
 * time, and names to the device the pages it finds entirely zero (ZERO
 * hints) and the clean page-cache pages it finds (DUP hints, with the XXH64
 * hash of their content: the same file read by another guest, or twice by
 * this one, gives the same pages).  The host checks every hint itself and
 * lets its kernel share the pages copy-on-write: a hint is advice, so a page
 * that changes after we looked at it costs the host a comparison, never
 * the guest its data.
 *
 * Only pages on an LRU list are read: user memory and the page cache.
 * Pages outside the LRU (slab, page tables, KFENCE, secretmem, pages we
 * unplugged) are never touched.  The thread keeps to a CPU budget the
 * admin sets in sysfs (hint_budget, percent of one CPU; 0 stops it).
 */
#include <linux/delay.h>
#include <linux/freezer.h>
#include <linux/highmem.h>
#include <linux/kthread.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/pagemap.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/virtio_config.h>
#include <linux/xxhash.h>

#include "dmm.h"

/*
 * The device shares memory by naturally aligned ranges of
 * VIRTIO_DMM_HINT_RANGE_SIZE around the pages hinted (see the
 * specification): one hint per range is enough, and a range the device took
 * a hint for is not scanned again.
 */
#define DMM_HINT_RANGE_SHIFT	ilog2(VIRTIO_DMM_HINT_RANGE_SIZE)
#define DMM_HINT_RANGE_PAGES	(1UL << (DMM_HINT_RANGE_SHIFT - PAGE_SHIFT))

/* Page frames scanned between two looks at the clock. */
#define DMM_HINT_BATCH		1024
/* Rest after a pass over all memory, and after the device said NACK. */
#define DMM_HINT_REST_MS	2000
#define DMM_HINT_NACK_MS	10000

/*
 * Send the hints collected for @kind and empty the list.  Called by the
 * scanning thread and by debugfs, under hints.lock.  Returns the
 * response as an errno (dmm_resp_errno()).
 */
int dmm_hints_send(struct virtio_dmm *vm, struct virtio_dmm_hint_req *req,
		   unsigned int nb)
{
	size_t len = struct_size(req, hints, nb);
	int type, accepted, rejected;

	lockdep_assert_held(&vm->hints.lock);
	type = dmm_vq_exchange(vm->hints.vq, &vm->hints.resp_wq, req, len,
			       &vm->hints.resp);
	if (type == VIRTIO_DMM_RESP_ACK) {
		accepted = le32_to_cpu(vm->hints.resp.u.hint.accepted);
		rejected = le32_to_cpu(vm->hints.resp.u.hint.rejected);
		atomic64_add(accepted, &vm->hints.accepted);
		atomic64_add(rejected, &vm->hints.rejected);
	} else if (type == VIRTIO_DMM_RESP_NACK) {
		atomic64_add(nb, &vm->hints.rejected);
	} else {
		/* a page went offline while listed: the whole list is lost */
		atomic64_inc(&vm->hints.errors);
		dev_warn_ratelimited(&vm->vdev->dev, "hint list of %u pages from 0x%llx refused: %d\n",
				     nb, le64_to_cpu(req->hints[0].addr), type);
	}
	return dmm_resp_errno(type);
}

/* The thread's state: the hints collected so far, one list per kind. */
struct dmm_hint_lists {
	struct virtio_dmm_hint_req *req[2];
	unsigned int nb[2];
	bool nacked;
	/* one bit per range the device took every hint of; thread only */
	unsigned long *done;
	unsigned long nb_ranges;
};

/* Remember the ranges of a list the device accepted in full. */
static void dmm_hint_mark_done(struct dmm_hint_lists *l,
			       struct virtio_dmm_hint_req *req,
			       unsigned int nb)
{
	unsigned long range;
	unsigned int i;

	for (i = 0; i < nb; i++) {
		range = le64_to_cpu(req->hints[i].addr) >> DMM_HINT_RANGE_SHIFT;
		if (range < l->nb_ranges)
			__set_bit(range, l->done);
	}
}

static void dmm_hint_flush(struct virtio_dmm *vm, struct dmm_hint_lists *l,
			   int kind)
{
	int rc;

	if (!l->nb[kind])
		return;
	l->req[kind]->type = cpu_to_le16(kind);
	l->req[kind]->nb_hints = cpu_to_le32(l->nb[kind]);
	mutex_lock(&vm->hints.lock);
	rc = dmm_hints_send(vm, l->req[kind], l->nb[kind]);
	if (rc == -ENOSPC)
		l->nacked = true;
	else if (!rc && !vm->hints.resp.u.hint.rejected)
		dmm_hint_mark_done(l, l->req[kind], l->nb[kind]);
	mutex_unlock(&vm->hints.lock);
	atomic64_add(l->nb[kind], &vm->hints.sent[kind]);
	l->nb[kind] = 0;
}

static void dmm_hint_add(struct virtio_dmm *vm, struct dmm_hint_lists *l,
			 int kind, unsigned long pfn, u64 hash)
{
	struct virtio_dmm_hint *h = &l->req[kind]->hints[l->nb[kind]++];

	h->addr = cpu_to_le64(PFN_PHYS(pfn));
	h->hash = cpu_to_le64(hash);
	if (l->nb[kind] == VIRTIO_DMM_MAX_HINTS)
		dmm_hint_flush(vm, l, kind);
}

/*
 * Look at one page frame: a page on an LRU list, pinned by our reference
 * while we read it.  Its content may change as we read; the host compares
 * again before it shares anything.  Returns true if the page was hinted.
 */
static bool dmm_hint_page(struct virtio_dmm *vm, struct dmm_hint_lists *l,
			  unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);
	bool file_clean, hinted = true;
	struct folio *folio;
	void *addr;

	if (!page)
		return false;
	folio = page_folio(page);
	if (!folio_test_lru(folio) || !folio_try_get(folio))
		return false;
	if (unlikely(page_folio(page) != folio || !folio_test_lru(folio) ||
		     folio_test_hwpoison(folio)))
		goto out;
	file_clean = !folio_test_anon(folio) && folio_test_uptodate(folio) &&
		     !folio_test_dirty(folio) && !folio_test_writeback(folio);

	addr = kmap_local_page(page);
	if (!memchr_inv(addr, 0, PAGE_SIZE))
		dmm_hint_add(vm, l, VIRTIO_DMM_HINT_ZERO, pfn, 0);
	else if (file_clean &&
		 virtio_has_feature(vm->vdev, VIRTIO_DMM_F_HINTS_DUP))
		dmm_hint_add(vm, l, VIRTIO_DMM_HINT_DUP, pfn,
			     xxh64(addr, PAGE_SIZE, 0));
	else
		hinted = false;
	kunmap_local(addr);
	folio_put(folio);
	return hinted;
out:
	folio_put(folio);
	return false;
}

/* Sleep so that the time spent scanning stays within the budget. */
static void dmm_hint_throttle(struct virtio_dmm *vm, u64 busy_ns)
{
	unsigned int budget = READ_ONCE(vm->hints.budget);
	u64 rest_ns;

	atomic64_add(busy_ns, &vm->hints.scan_ns);
	if (!budget || budget >= 100) {
		cond_resched();
		return;
	}
	rest_ns = div_u64(busy_ns * (100 - budget), budget);
	if (rest_ns >= NSEC_PER_MSEC)
		schedule_timeout_interruptible(nsecs_to_jiffies(rest_ns) ?: 1);
	else
		usleep_range(div_u64(rest_ns, NSEC_PER_USEC) + 1,
			     div_u64(rest_ns, NSEC_PER_USEC) + 50);
}

/*
 * The end of memory: past the last page frame of any online node, memory
 * we plugged included (max_pfn is not for modules).  Holes in between are
 * skipped page by page by pfn_to_online_page().
 */
static unsigned long dmm_hint_end_pfn(void)
{
	unsigned long end = 0;
	int nid;

	for_each_online_node(nid)
		end = max(end, pgdat_end_pfn(NODE_DATA(nid)));
	return end;
}

/* One batch of page frames from *@pfn on; false at the end of memory. */
static bool dmm_hint_batch(struct virtio_dmm *vm, struct dmm_hint_lists *l,
			   unsigned long *pfn)
{
	unsigned long last = dmm_hint_end_pfn();
	unsigned long first = *pfn, end = min(*pfn + DMM_HINT_BATCH, last);
	u64 start = ktime_get_ns();

	while (*pfn < end) {
		unsigned long range = *pfn / DMM_HINT_RANGE_PAGES;

		/* a range done, or hinted in this pass: on to the next */
		if ((range < l->nb_ranges && test_bit(range, l->done)) ||
		    dmm_hint_page(vm, l, *pfn))
			*pfn = (range + 1) * DMM_HINT_RANGE_PAGES;
		else
			(*pfn)++;
	}
	*pfn = min(*pfn, end);
	atomic64_add(end > first ? end - first : 0, &vm->hints.pages_scanned);
	dmm_hint_throttle(vm, ktime_get_ns() - start);
	return *pfn < last;
}

static void dmm_hint_sleep(struct virtio_dmm *vm, unsigned int ms)
{
	wait_event_interruptible_timeout(vm->hints.wq, kthread_should_stop(),
					 msecs_to_jiffies(ms));
}

static int dmm_hint_thread(void *data)
{
	struct virtio_dmm *vm = data;
	struct dmm_hint_lists *l = vm->hints.lists;
	unsigned long pfn = 0;

	set_freezable();
	while (!kthread_should_stop()) {
		try_to_freeze();
		if (!READ_ONCE(vm->hints.budget)) {
			wait_event_interruptible(vm->hints.wq,
						 kthread_should_stop() ||
						 READ_ONCE(vm->hints.budget));
			continue;
		}
		if (dmm_hint_batch(vm, l, &pfn) && !l->nacked)
			continue;
		/* end of a pass, or the device refuses hints now */
		dmm_hint_flush(vm, l, VIRTIO_DMM_HINT_ZERO);
		dmm_hint_flush(vm, l, VIRTIO_DMM_HINT_DUP);
		if (pfn >= dmm_hint_end_pfn()) {
			atomic64_inc(&vm->hints.passes);
			pfn = 0;
		}
		dmm_hint_sleep(vm, l->nacked ? DMM_HINT_NACK_MS :
					       DMM_HINT_REST_MS);
		l->nacked = false;
	}
	return 0;
}

/* Wake the thread after hint_budget changed. */
void dmm_hints_kick(struct virtio_dmm *vm)
{
	wake_up(&vm->hints.wq);
}

static void dmm_hint_free_lists(struct dmm_hint_lists *l)
{
	bitmap_free(l->done);
	kfree(l->req[0]);
	kfree(l->req[1]);
	kfree(l);
}

/*
 * Start the scanning thread if the device takes hints.  Without it the
 * driver works on: hints only save host memory.
 */
void dmm_hints_init(struct virtio_dmm *vm)
{
	size_t len = struct_size(vm->hints.req, hints, VIRTIO_DMM_MAX_HINTS);
	struct dmm_hint_lists *l;

	if (!vm->hints.vq)
		return;
	if (PAGE_SIZE != VIRTIO_DMM_HINT_PAGE_SIZE) {
		dev_warn(&vm->vdev->dev, "no shared-page hints: page size %lu is not %u\n",
			 PAGE_SIZE, VIRTIO_DMM_HINT_PAGE_SIZE);
		return;
	}
	mutex_init(&vm->hints.lock);
	init_waitqueue_head(&vm->hints.wq);
	vm->hints.budget = DMM_HINT_BUDGET_DEFAULT;
	l = kzalloc(sizeof(*l), GFP_KERNEL);
	vm->hints.req = kzalloc(len, GFP_KERNEL);
	if (l) {
		l->req[0] = kzalloc(len, GFP_KERNEL);
		l->req[1] = kzalloc(len, GFP_KERNEL);
		/* RAM ends at the region's end at the latest */
		l->nb_ranges = (vm->region_addr + vm->region_size) >>
			       DMM_HINT_RANGE_SHIFT;
		l->done = bitmap_zalloc(l->nb_ranges, GFP_KERNEL);
	}
	if (!l || !l->req[0] || !l->req[1] || !l->done || !vm->hints.req)
		goto err;
	vm->hints.lists = l;
	vm->hints.thread = kthread_run(dmm_hint_thread, vm, "dmm-hints/%d",
				       vm->vdev->index);
	if (IS_ERR(vm->hints.thread)) {
		dev_warn(&vm->vdev->dev, "hint thread not started: %ld\n",
			 PTR_ERR(vm->hints.thread));
		vm->hints.thread = NULL;
		vm->hints.lists = NULL;
		goto err;
	}
	return;
err:
	if (l)
		dmm_hint_free_lists(l);
	kfree(vm->hints.req);
	vm->hints.req = NULL;
	dev_warn(&vm->vdev->dev, "shared-page hints disabled\n");
}

void dmm_hints_exit(struct virtio_dmm *vm)
{
	if (!vm->hints.thread)
		return;
	kthread_stop(vm->hints.thread);
	vm->hints.thread = NULL;
	dmm_hint_free_lists(vm->hints.lists);
	vm->hints.lists = NULL;
	kfree(vm->hints.req);
	vm->hints.req = NULL;
}
