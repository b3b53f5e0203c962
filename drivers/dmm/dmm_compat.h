/* SPDX-License-Identifier: GPL-2.0 */
/*
 * virtio-dmm guest driver: the one place that knows kernel versions.
 *
 * The driver is written against Linux 6.12 (the pinned Debian 12 backports
 * kernel).  It also builds for Debian 12's stock 6.1 kernels.  Every
 * interface that differs between the two is mapped here, by
 * LINUX_VERSION_CODE, to the 6.12 name and meaning; no other file tests a
 * version.  Interfaces used unchanged on both (checked against 6.1.0-57):
 * alloc_contig_range() (start, end, migratetype, gfp: its acr_flags_t
 * argument is 6.16+), page_reporting_register() (order 0 means
 * pageblock_order on both), the balloon_dev_info migratepage callback and
 * balloon_page_*() (movable_operations since 6.0, no inode), memory groups
 * and add_memory_driver_managed() (5.16+), the folio tests of dmm_hints.c.
 * The driver uses no shrinker (shrinker_alloc() is 6.7+).
 * Checked by booting both: selftests/suites/kernels.py.
 */
#ifndef _DRIVERS_DMM_DMM_COMPAT_H
#define _DRIVERS_DMM_DMM_COMPAT_H

#include <linux/memory_hotplug.h>
#include <linux/mmzone.h>
#include <linux/page-flags.h>
#include <linux/version.h>
#include <linux/virtio_config.h>

/* Is the kernel built against older than @major.@minor? */
#define DMM_LINUX_BEFORE(major, minor) \
	(KERNEL_VERSION(major, minor, 0) > LINUX_VERSION_CODE)

/*
 * MAX_PAGE_ORDER: the largest buddy order, inclusive.  Before 6.4,
 * MAX_ORDER was one more than that (orders 0..MAX_ORDER-1); 6.4 made
 * MAX_ORDER inclusive and 6.8 renamed it MAX_PAGE_ORDER.  Using 6.1's
 * MAX_ORDER as an order would free pages in chunks the buddy cannot hold.
 */
#if DMM_LINUX_BEFORE(6, 4)
#define MAX_PAGE_ORDER	(MAX_ORDER - 1)
#elif DMM_LINUX_BEFORE(6, 8)
#define MAX_PAGE_ORDER	MAX_ORDER
#endif

/*
 * virtio_find_vqs() takes an array of struct virtqueue_info (name,
 * callback, ctx) since 6.11; before, parallel arrays of callbacks and
 * names (and the interrupt affinity, NULL here as there).  The driver fills
 * a struct virtqueue_info array and calls dmm_virtio_find_vqs().
 */
#if DMM_LINUX_BEFORE(6, 11)
struct virtqueue_info {
	const char *name;		/* the queue's name; NULL: no queue */
	vq_callback_t *callback;	/* called when buffers are used */
	bool ctx;			/* unused by this driver */
};

static inline int dmm_virtio_find_vqs(struct virtio_device *vdev,
				      unsigned int nvqs,
				      struct virtqueue *vqs[],
				      struct virtqueue_info info[])
{
	vq_callback_t *callbacks[8];
	const char *names[8];
	unsigned int i;

	if (WARN_ON_ONCE(nvqs > ARRAY_SIZE(names)))
		return -EINVAL;
	for (i = 0; i < nvqs; i++) {
		callbacks[i] = info[i].callback;
		names[i] = info[i].name;
	}
	return virtio_find_vqs(vdev, nvqs, vqs, callbacks, names, NULL);
}
#else
static inline int dmm_virtio_find_vqs(struct virtio_device *vdev,
				      unsigned int nvqs,
				      struct virtqueue *vqs[],
				      struct virtqueue_info info[])
{
	return virtio_find_vqs(vdev, nvqs, vqs, info, NULL);
}
#endif

/*
 * Pages of hotplugged memory that the online_page callback keeps from the
 * buddy ("never onlined").  Since 6.11 Linux initialises their memory map
 * PageOffline, and generic_online_page() clears PageOffline itself.
 * Before, they start PageReserved, and offlining refuses a reserved page:
 * they must be made PageOffline (not reserved) here, and PageOffline must
 * be cleared before generic_online_page() (6.1's virtio_mem does both).
 * PageDirty marks them on every version: they go to the buddy through
 * generic_online_page(), not free_contig_range().
 */
static inline void dmm_set_never_onlined(struct page *page)
{
#if DMM_LINUX_BEFORE(6, 11)
	__SetPageOffline(page);
	ClearPageReserved(page);
#endif
	SetPageDirty(page);
}

/* Undo dmm_set_never_onlined(): @page goes to generic_online_page(). */
static inline void dmm_clear_never_onlined(struct page *page)
{
	ClearPageDirty(page);
#if DMM_LINUX_BEFORE(6, 11)
	__ClearPageOffline(page);
#endif
}

/*
 * Offlining a memory block takes its pages off the managed page count.
 * Since 6.11 it skips PageOffline pages (ours, never counted); before, it
 * takes all of them, so the memory notifier must first add the
 * fake-offline pages it releases (@nr at @page), and take them off again
 * if offlining is cancelled (as 6.1's virtio_mem does).
 */
static inline void dmm_offline_managed(struct page *page, unsigned long nr,
				       bool going_offline)
{
#if DMM_LINUX_BEFORE(6, 11)
	adjust_managed_page_count(page, going_offline ? nr : -(long)nr);
#endif
}

/*
 * mhp_supports_memmap_on_memory(): exported, without an argument, since
 * 6.8 (dax/kmem uses it).  6.1 does not export it, and adds no memory map
 * per memory block of a larger add: there, blocks never carry their map.
 * memory_hotplug.h is included above, before its name becomes a macro.
 */
#if DMM_LINUX_BEFORE(6, 8)
#define mhp_supports_memmap_on_memory()	false
#endif

#endif /* _DRIVERS_DMM_DMM_COMPAT_H */
