/* SPDX-License-Identifier: GPL-2.0 */
/*
 * virtio-dmm guest driver: private definitions.
 *
 * Glossary:
 *   region   the device's range of guest-physical memory (never in e820)
 *   block    the device's unit of plug and unplug (block_size bytes), a
 *            multiple of the Linux memory block size
 *   plugged  the device backs the block and Linux has added it
 *   target   requested_size - boot_size: bytes of the region to plug
 *   pages    single pages of any RAM the guest has unplugged with the device
 *            (VIRTIO_DMM_F_PAGES), held as balloon pages
 *   current  boot_size + plugged_size - unplugged pages: the guest's RAM
 *
 * A block is plugged with the device (PLUG) before Linux adds it, and
 * removed from Linux before it is unplugged (UNPLUG): the device never
 * discards memory Linux may use.
 */
#ifndef _DRIVERS_DMM_DMM_H
#define _DRIVERS_DMM_DMM_H

#include <linux/balloon_compaction.h>
#include <linux/bitmap.h>
#include <linux/atomic.h>
#include <linux/mm.h>
#include <linux/vmstat.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/sizes.h>
#include <linux/page_reporting.h>
#include <linux/types.h>
#include <linux/virtio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/virtio_dmm.h>

/* What the control loop is doing, as shown in sysfs. */
enum dmm_status {
	DMM_STATUS_IDLE,	/* plugged size matches the target */
	DMM_STATUS_BUSY,	/* working, or waiting to retry */
	DMM_STATUS_ERROR,	/* the device failed a request: stopped */
};

/* Default and bounds of the retry interval (sysfs retry_interval_ms). */
#define DMM_RETRY_MS_DEFAULT	1000
#define DMM_RETRY_MS_MIN	10
#define DMM_RETRY_MS_MAX	600000
/* Back-off doubles up to this multiple of the interval. */
#define DMM_RETRY_MAX_FACTOR	32

struct virtio_dmm {
	struct virtio_device *vdev;

	/* the request virtqueue; one request in flight, under hotplug_mutex */
	struct virtqueue *vq;
	/* woken when the device has answered */
	wait_queue_head_t host_resp;
	/* request and response buffers (not on the stack: DMA) */
	struct virtio_dmm_req req;
	struct virtio_dmm_resp resp;

	/* free page reporting (VIRTIO_DMM_F_FREE_PAGE_REPORTING) */
	struct virtqueue *report_vq;	/* NULL if not negotiated */
	wait_queue_head_t report_done;	/* the device returned a batch */
#if IS_ENABLED(CONFIG_PAGE_REPORTING)
	struct page_reporting_dev_info pr_info;
#endif
	bool reporting;			/* registered with the framework */
	atomic64_t reported_bytes;	/* bytes of free pages reported */

	/* single pages (VIRTIO_DMM_F_PAGES); see dmm_pages.c */
	bool pages;			/* negotiated and set up */
	struct virtqueue *page_vq;
	wait_queue_head_t page_resp;	/* the device answered a page request */
	unsigned int page_batch;	/* addresses per request */
	/*
	 * Serialises page requests (one in flight), the request buffer and
	 * changes to @pages_unplugged.  Taken inside hotplug_mutex by the
	 * control loop, alone by page migration (trylock).
	 */
	struct mutex page_mutex;
	struct virtio_dmm_page_req *page_req;
	struct virtio_dmm_resp page_resp_buf;
	/* the unplugged pages; migratable, see dmm_pages_migrate() */
	struct balloon_dev_info b_dev_info;
	/* pages unplugged; changed by the control loop only */
	u64 pages_unplugged;
	/* counters */
	u64 page_unplug_failures;	/* stopped at the floor or no memory */
	u64 page_moves;			/* unplugged pages migrated */
	/*
	 * Set (under page_mutex) when the device is going away: migration
	 * no longer tells the device, it refuses, so that the core puts
	 * isolated pages back where dmm_pages_release() finds them.
	 */
	bool pages_detached;

	/* Fixed device configuration, read and checked at probe. */
	u64 block_size;
	u64 region_addr;
	u64 region_size;
	u64 boot_size;
	unsigned long nb_blocks;	/* region_size / block_size */
	int nid;			/* node of the region */
	int mgid;			/* our dynamic memory group */
	struct resource *parent_res;	/* the region, reserved for us */

	/* the control loop; runs on system_freezable_wq */
	struct delayed_work work;
	/* set by config_changed; the work re-reads the configuration */
	atomic_t config_changed;

	/*
	 * Serialises the control loop, requests to the device and sysfs
	 * readers of the fields below.
	 */
	struct mutex hotplug_mutex;
	/* last requested_size read from the device */
	u64 requested_size;
	/* bytes plugged: blocks set in @plugged, times block_size */
	u64 plugged_size;
	/* one bit per block: plugged with the device and added to Linux */
	unsigned long *plugged;
	enum dmm_status status;
	/* current back-off in ms, 0 when not backing off */
	unsigned int backoff_ms;
	/* counters */
	u64 plug_failures;	/* PLUG refused or add_memory failed */
	u64 unplug_failures;	/* a block could not be offlined (busy) */

	/* sub-blocks (VIRTIO_DMM_F_SUB_BLOCKS); see dmm_sub.c */
	bool sub_blocks;		/* negotiated and set up */
	u64 sb_size;			/* block_size without sub-blocks */
	unsigned int sbs_per_block;
	/*
	 * Protects @sb_plugged and @blk_offline.  Taken inside
	 * hotplug_mutex, never held across adding or removing memory (the
	 * online_page callback and the memory notifier take it).
	 */
	struct mutex sb_mutex;
	/* one bit per sub-block: plugged with the device */
	unsigned long *sb_plugged;
	/* one bit per block: going or gone offline in Linux */
	unsigned long *blk_offline;
	struct notifier_block memory_nb;
	struct list_head sb_list;	/* in the online_page callback's list */
	u64 sb_unplug_failures;		/* sub-blocks Linux would not let go */
	u64 floor_stops;		/* unplugs stopped at the floor */

	/* shared-page hints (VIRTIO_DMM_F_HINTS); see dmm_hints.c */
	struct virtqueue *hint_vq;	/* NULL if not negotiated */
	wait_queue_head_t hint_resp_wq;	/* the device answered a hint list */
	/* one hint list in flight: serialises hint_vq and hint_resp */
	struct mutex hint_mutex;
	struct virtio_dmm_resp hint_resp;
	struct virtio_dmm_hint_req *hint_req;	/* debugfs's list */
	struct dmm_hint_lists *hint_lists;	/* the thread's own */
	struct task_struct *hint_thread;
	wait_queue_head_t hint_wq;	/* wakes the thread: budget, stop */
	/* percent of one CPU the thread may use; written by sysfs only */
	unsigned int hint_budget;
	/* counters, updated by the thread without locks */
	atomic64_t hints_sent[2];	/* by kind: ZERO, DUP */
	atomic64_t hints_accepted;	/* the device found them as said */
	atomic64_t hints_rejected;	/* it did not, or refused hints */
	atomic64_t hint_errors;		/* lists refused as invalid */
	atomic64_t hint_pages_scanned;
	atomic64_t hint_passes;		/* passes over all memory */
	atomic64_t hint_scan_ns;	/* time spent scanning */

	/* memory statistics and requests (VIRTIO_DMM_F_STATS); dmm_stats.c */
	struct virtqueue *stats_vq;	/* NULL if not negotiated */
	bool stats_on;			/* set up: config changes reach it */
	struct vfsmount *psi_mnt;	/* our cgroup2 mount, for PSI */
	struct file *psi_file;		/* its memory.pressure */
	wait_queue_head_t stats_resp_wq;
	/* sends a report every stats_interval_ms; its own buffers */
	struct delayed_work stats_work;
	struct virtio_dmm_stats stats_buf;
	struct virtio_dmm_resp stats_resp;
	u64 stats_seq;
	unsigned int stats_interval_ms;	/* from the configuration */
	/* asks the device for memory, under hotplug_mutex */
	struct work_struct ask_work;
	u64 ask_pending_size;
	u64 ask_pending_reason;
	/* thresholds and step, set in sysfs; 0 turns a threshold off */
	u64 ask_available_below;	/* bytes of MemAvailable */
	u32 ask_psi_above;		/* PSI some avg10, 1/100 percent */
	u64 ask_step;			/* bytes asked for each time */
	unsigned long ask_next;		/* jiffies: no automatic ask before */
	atomic64_t asks_sent;
	atomic64_t asks_granted;
	atomic64_t asks_refused;
	atomic64_t asks_forwarded;
	/* the last request and its answer; under hotplug_mutex */
	u64 last_ask_size;
	const char *last_ask_result;

	/* debugfs test hooks (dmm_debugfs.c, module parameter test_hooks) */
	struct dentry *debug_dir;
	u16 debug_resp;			/* the device's last answer to it */
	/* and to a test's hint list: type, accepted, rejected (hint_mutex) */
	u16 debug_hint_resp;
	u32 debug_hint_counts[2];
	/* the last touch_region: pages written, pages that read back */
	u64 debug_touch_written;
	u64 debug_touch_ok;

	/* base retry interval; written by sysfs, read by the control loop */
	unsigned int retry_interval_ms;
	/* set in remove(): the control loop must not run again */
	bool removing;
};

/* dmm_virtio.c: the device protocol, called with hotplug_mutex held */
int dmm_vq_exchange(struct virtqueue *vq, wait_queue_head_t *wq, void *req,
		    size_t req_len, struct virtio_dmm_resp *resp);
int dmm_resp_errno(int type);
int dmm_send_plug(struct virtio_dmm *vm, u64 addr, u64 nb_blocks);
int dmm_send_unplug(struct virtio_dmm *vm, u64 addr, u64 nb_blocks);
int dmm_send_unplug_all(struct virtio_dmm *vm);
int dmm_send_range(struct virtio_dmm *vm, u16 type, u64 addr, u64 nb);
int dmm_send_ask(struct virtio_dmm *vm, u64 size, u64 reason);
int dmm_read_config(struct virtio_dmm *vm);
void dmm_read_requested_size(struct virtio_dmm *vm);
u64 dmm_read_device_changed_size(struct virtio_dmm *vm);
void dmm_vq_done(struct virtqueue *vq);
int dmm_find_vqs(struct virtio_dmm *vm);

/* dmm_coarse.c: whole blocks */
int dmm_coarse_init(struct virtio_dmm *vm);
void dmm_coarse_exit(struct virtio_dmm *vm);
int dmm_coarse_plug(struct virtio_dmm *vm, u64 bytes);
int dmm_coarse_unplug(struct virtio_dmm *vm, u64 bytes);
int dmm_coarse_unplug_all(struct virtio_dmm *vm);
int dmm_add_block(struct virtio_dmm *vm, unsigned long id);
void dmm_plugged_add(struct virtio_dmm *vm, s64 delta);

/* dmm_sub.c: sub-blocks of blocks (they need alloc_contig_range()) */
#if IS_ENABLED(CONFIG_CONTIG_ALLOC)
int dmm_sb_init(struct virtio_dmm *vm);
void dmm_sb_exit(struct virtio_dmm *vm);
void dmm_sb_mark_block(struct virtio_dmm *vm, unsigned long id, bool plugged);
bool dmm_sb_block_full(struct virtio_dmm *vm, unsigned long id);
u64 dmm_sb_partial_bytes(struct virtio_dmm *vm);
int dmm_sb_unplug(struct virtio_dmm *vm, u64 bytes);
int dmm_sb_plug_added(struct virtio_dmm *vm, u64 bytes);
int dmm_sb_plug_new(struct virtio_dmm *vm, u64 bytes);
#else
static inline int dmm_sb_init(struct virtio_dmm *vm)
{
	vm->sb_size = vm->block_size;
	vm->sbs_per_block = 1;
	return 0;
}

static inline void dmm_sb_exit(struct virtio_dmm *vm) { }
static inline void dmm_sb_mark_block(struct virtio_dmm *vm, unsigned long id,
				     bool plugged) { }
static inline bool dmm_sb_block_full(struct virtio_dmm *vm, unsigned long id)
{
	return true;
}

static inline u64 dmm_sb_partial_bytes(struct virtio_dmm *vm)
{
	return 0;
}

static inline int dmm_sb_unplug(struct virtio_dmm *vm, u64 bytes)
{
	return -EOPNOTSUPP;
}

static inline int dmm_sb_plug_added(struct virtio_dmm *vm, u64 bytes)
{
	return -EOPNOTSUPP;
}

static inline int dmm_sb_plug_new(struct virtio_dmm *vm, u64 bytes)
{
	return -EOPNOTSUPP;
}
#endif

/* dmm_pages.c: single pages, unplugged as balloon pages */
#if IS_ENABLED(CONFIG_MEMORY_BALLOON)
void dmm_page_vq_done(struct virtqueue *vq);
int dmm_pages_init(struct virtio_dmm *vm);
void dmm_pages_exit(struct virtio_dmm *vm);
int dmm_pages_unplug(struct virtio_dmm *vm, u64 bytes);
int dmm_pages_plug(struct virtio_dmm *vm, u64 bytes);
void dmm_pages_detach(struct virtio_dmm *vm);
void dmm_pages_release(struct virtio_dmm *vm);
u64 dmm_pages_floor(struct virtio_dmm *vm);
#else
#define dmm_page_vq_done NULL
static inline int dmm_pages_init(struct virtio_dmm *vm) { return 0; }
static inline void dmm_pages_exit(struct virtio_dmm *vm) { }
static inline int dmm_pages_unplug(struct virtio_dmm *vm, u64 bytes)
{
	return -EOPNOTSUPP;
}

static inline int dmm_pages_plug(struct virtio_dmm *vm, u64 bytes)
{
	return -EOPNOTSUPP;
}

static inline void dmm_pages_detach(struct virtio_dmm *vm) { }
static inline void dmm_pages_release(struct virtio_dmm *vm) { }
static inline u64 dmm_pages_floor(struct virtio_dmm *vm) { return 0; }
#endif

/* dmm_report.c: free page reporting */
#if IS_ENABLED(CONFIG_PAGE_REPORTING)
void dmm_report_vq_done(struct virtqueue *vq);
void dmm_report_validate(struct virtio_device *vdev);
void dmm_report_init(struct virtio_dmm *vm);
void dmm_report_exit(struct virtio_dmm *vm);
#else
#define dmm_report_vq_done NULL
static inline void dmm_report_validate(struct virtio_device *vdev) { }
static inline void dmm_report_init(struct virtio_dmm *vm) { }
static inline void dmm_report_exit(struct virtio_dmm *vm) { }
#endif

/* dmm_hints.c: shared-page hints */
#define DMM_HINT_BUDGET_DEFAULT	5	/* percent of one CPU */
void dmm_hint_vq_done(struct virtqueue *vq);
void dmm_hints_init(struct virtio_dmm *vm);
void dmm_hints_exit(struct virtio_dmm *vm);
void dmm_hints_kick(struct virtio_dmm *vm);
int dmm_hints_send(struct virtio_dmm *vm, struct virtio_dmm_hint_req *req,
		   unsigned int nb);

/* dmm_stats.c: memory statistics and requests */
#define DMM_ASK_STEP_DEFAULT	SZ_256M
void dmm_stats_vq_done(struct virtqueue *vq);
void dmm_stats_init(struct virtio_dmm *vm);
void dmm_stats_exit(struct virtio_dmm *vm);
void dmm_stats_config_changed(struct virtio_dmm *vm);
int dmm_ask(struct virtio_dmm *vm, u64 size, u64 reason);

/* dmm_debugfs.c: test hooks (raw requests, touch_region), test_hooks=1 */
#if IS_ENABLED(CONFIG_DEBUG_FS) && IS_ENABLED(CONFIG_MEMORY_BALLOON)
void dmm_debugfs_init(struct virtio_dmm *vm);
void dmm_debugfs_exit(struct virtio_dmm *vm);
void dmm_debugfs_register(void);
void dmm_debugfs_unregister(void);
#else
static inline void dmm_debugfs_init(struct virtio_dmm *vm) { }
static inline void dmm_debugfs_exit(struct virtio_dmm *vm) { }
static inline void dmm_debugfs_register(void) { }
static inline void dmm_debugfs_unregister(void) { }
#endif

/* dmm_sysfs.c */
extern const struct attribute_group *dmm_groups[];

static inline u64 dmm_block_addr(const struct virtio_dmm *vm,
				 unsigned long id)
{
	return vm->region_addr + (u64)id * vm->block_size;
}

/*
 * The floor: pages MemAvailable must keep after any unplug, of blocks or
 * pages: 64 MiB, or 1/32 of RAM if more (what running programs use is
 * already outside MemAvailable).
 */
static inline unsigned long dmm_mem_reserve(void)
{
	return max_t(unsigned long, SZ_64M >> PAGE_SHIFT,
		     totalram_pages() / 32);
}

/* Free memory that must remain after a block's pages moved elsewhere. */
#define DMM_OFFLINE_RESERVE	(SZ_64M >> PAGE_SHIFT)

/*
 * May @bytes of memory Linux uses now be taken away (blocks, sub-blocks)?
 * Their used pages must move: free memory has to take them and keep a
 * reserve, and MemAvailable must stay above the floor.
 */
static inline bool dmm_above_floor(u64 bytes)
{
	unsigned long free = global_zone_page_state(NR_FREE_PAGES);
	unsigned long pages = bytes >> PAGE_SHIFT;

	return free >= pages + DMM_OFFLINE_RESERVE &&
	       si_mem_available() >= (long)(pages + dmm_mem_reserve());
}

/* The guest's RAM now, as the device counts it. */
static inline u64 dmm_current_size(const struct virtio_dmm *vm)
{
	return vm->boot_size + vm->plugged_size -
	       (READ_ONCE(vm->pages_unplugged) << PAGE_SHIFT);
}

#endif /* _DRIVERS_DMM_DMM_H */
