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

/* The driver's version: MODULE_VERSION, and the DKMS package's. */
#define DMM_VERSION		"0.1.0"

#include <linux/balloon_compaction.h>
#include <linux/bitmap.h>
#include <linux/crash_dump.h>
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

#include "dmm_compat.h"

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
/* Look for free ranges to trade single unplugged pages for this often. */
#define DMM_TRADE_INTERVAL_MS	5000
/* First wait before a region trade after a new target, in retry intervals */
#define DMM_REGION_TRADE_RETRY_FACTOR	60

/*
 * The state of a block of the region (see dmm_blocks.c for the moves).
 * PARTIAL: some sub-blocks unplugged, possibly all (an emptied block that
 * Linux has not removed yet).  OFFLINE includes going offline.
 */
enum dmm_block_state {
	DMM_BLOCK_UNPLUGGED,	/* not plugged, not added to Linux */
	DMM_BLOCK_OFFLINE,	/* plugged, added, not online */
	DMM_BLOCK_OFFLINE_PARTIAL,
	DMM_BLOCK_ONLINE,	/* plugged, added, online */
	DMM_BLOCK_ONLINE_PARTIAL,
	DMM_BLOCK_STATE_COUNT
};

struct dmm_blocks {
	/*
	 * Protects @state, @count and @sb_plugged.  Taken inside
	 * hotplug_mutex; never held across adding or removing memory: the
	 * memory notifier and the online_page callback take it.
	 */
	struct mutex lock;
	/*
	 * enum dmm_block_state per block.  Moves to and from UNPLUGGED and
	 * between full and partial happen with hotplug_mutex also held, so
	 * the control loop may read those without @lock; online and offline
	 * change under @lock alone (memory notifier).
	 */
	u8 *state;
	unsigned long count[DMM_BLOCK_STATE_COUNT];
	/* one bit per sub-block: plugged (NULL without sub-blocks) */
	unsigned long *sb_plugged;
	/*
	 * One bit per block added with its memory map on itself
	 * (MHP_MEMMAP_ON_MEMORY), set and cleared with @lock and
	 * hotplug_mutex held; the control loop reads it under either.  The
	 * first @memmap_pages pages of such a block hold the map: they stay
	 * plugged and out of the buddy while the block is in Linux.
	 * @memmap_pages is 0 when blocks are added without (fixed at probe).
	 */
	unsigned long *memmap_on;
	unsigned long memmap_pages;
	struct notifier_block memory_nb;
	/* blocks removed, by whether they had to be vacated first (hotplug_mutex) */
	u64 vacated;
	u64 free_removals;
};

/* Sub-blocks (VIRTIO_DMM_F_SUB_BLOCKS); fixed after probe but the counter. */
struct dmm_sb {
	bool on;			/* negotiated and set up */
	u64 size;			/* block_size without sub-blocks */
	unsigned int per_block;
	struct list_head list;		/* in the online_page callback's list */
	u64 unplug_failures;		/* sub-blocks Linux would not let go */
};

/* Free page reporting (VIRTIO_DMM_F_FREE_PAGE_REPORTING); dmm_report.c */
struct dmm_report {
	struct virtqueue *vq;		/* NULL if not negotiated */
	wait_queue_head_t done_wq;	/* the device returned a batch */
#if IS_ENABLED(CONFIG_PAGE_REPORTING)
	struct page_reporting_dev_info pr_info;
#endif
	bool on;			/* registered with the framework */
	atomic64_t bytes;		/* bytes of free pages reported */
	/* starts the framework's next pass early after a full batch */
	struct delayed_work kick;
	bool stopping;			/* no more kicks (dmm_report_exit()) */
	u64 kicks;			/* passes started early */
};

/* Single pages (VIRTIO_DMM_F_PAGES); dmm_pages.c */
struct dmm_pages {
	bool on;			/* negotiated and set up */
	struct virtqueue *vq;
	wait_queue_head_t resp_wq;	/* the device answered a page request */
	unsigned int batch;		/* addresses per request */
	/*
	 * Serialises page requests (one in flight), @req, @resp and changes
	 * to @unplugged and @detached.  Taken inside hotplug_mutex by the
	 * control loop, alone by page migration (trylock).
	 */
	struct mutex lock;
	struct virtio_dmm_page_req *req;
	struct virtio_dmm_resp resp;
	/* the unplugged pages; migratable, see dmm_pages_migrate() */
	struct balloon_dev_info b_dev_info;
	/*
	 * pages unplugged, single and in ranges; changed by the control loop
	 * only (WRITE_ONCE)
	 */
	u64 unplugged;
	/*
	 * Ranges (VIRTIO_DMM_F_PAGE_RANGES; dmm_ranges.c): unplugged free
	 * blocks of 2^range_order[i] pages on ranges[i], largest order
	 * first; nr_orders 0 without the feature.  Changed by the control
	 * loop with @lock held, and at removal.
	 */
	unsigned int range_order[2];
	int nr_orders;
	struct list_head ranges[2];
	u64 range_pages;		/* of @unplugged, pages in ranges */
	/* counters */
	u64 unplug_failures;		/* stopped at the floor or no memory */
	u64 moves;			/* unplugged pages migrated */
	u64 ranges_unplugged;		/* ranges unplugged */
	u64 range_splits;		/* ranges made single pages */
	u64 traded;			/* single pages traded for ranges */
	/*
	 * Set when the device is going away: migration no longer tells the
	 * device, it refuses, so that the core puts isolated pages back
	 * where dmm_pages_release() finds them.
	 */
	bool detached;
};

/* Shared-page hints (VIRTIO_DMM_F_HINTS); dmm_hints.c */
struct dmm_hints {
	struct virtqueue *vq;		/* NULL if not negotiated */
	wait_queue_head_t resp_wq;	/* the device answered a hint list */
	/* one hint list in flight: serialises @vq and @resp */
	struct mutex lock;
	struct virtio_dmm_resp resp;
	struct virtio_dmm_hint_req *req;	/* debugfs's list */
	struct dmm_hint_lists *lists;		/* the thread's own */
	struct task_struct *thread;
	wait_queue_head_t wq;		/* wakes the thread: budget, stop */
	/* percent of one CPU the thread may use; written by sysfs only */
	unsigned int budget;
	/* counters, updated by the thread without locks */
	atomic64_t sent[2];		/* by kind: ZERO, DUP */
	atomic64_t accepted;		/* the device found them as said */
	atomic64_t rejected;		/* it did not, or refused hints */
	atomic64_t errors;		/* lists refused as invalid */
	atomic64_t pages_scanned;
	atomic64_t passes;		/* passes over all memory */
	atomic64_t scan_ns;		/* time spent scanning */
};

/* Memory statistics (VIRTIO_DMM_F_STATS); dmm_stats.c */
struct dmm_stats {
	struct virtqueue *vq;		/* NULL if not negotiated */
	bool on;			/* set up: config changes reach it */
	struct vfsmount *psi_mnt;	/* our cgroup2 mount, for PSI */
	struct file *psi_file;		/* its memory.pressure */
	wait_queue_head_t resp_wq;
	/* sends a report every @interval_ms; its own buffers */
	struct delayed_work work;
	struct virtio_dmm_stats buf;
	struct virtio_dmm_resp resp;
	u64 seq;
	unsigned int interval_ms;	/* from the configuration */
};

/* Requests for memory (VIRTIO_DMM_F_STATS); dmm_stats.c */
struct dmm_ask {
	/* sends a request on the request queue, under hotplug_mutex */
	struct work_struct work;
	u64 pending_size;
	u64 pending_reason;
	/* thresholds and step, set in sysfs; 0 turns a threshold off */
	u64 available_below;		/* bytes of MemAvailable */
	u32 psi_above;			/* PSI some avg10, 1/100 percent */
	u64 step;			/* bytes asked for each time */
	unsigned long next;		/* jiffies: no automatic ask before */
	atomic64_t sent;
	atomic64_t granted;
	atomic64_t refused;
	atomic64_t forwarded;
	/* the last request and its answer, set and read under @lock */
	spinlock_t lock;
	u64 last_size;
	const char *last_result;
};

/*
 * A kdump kernel (dmm_kdump.c): nothing is resized; /proc/vmcore asks
 * which pages of the region are plugged.  The last range asked about and
 * its answer are under hotplug_mutex.
 */
struct dmm_kdump {
#ifdef CONFIG_PROC_VMCORE
	struct vmcore_cb cb;
#endif
	u64 sb_size;			/* 0 without sub-blocks */
	u64 last_addr;
	u64 last_len;			/* 0: nothing asked yet */
	bool last_plugged;
};

/* debugfs (dmm_debugfs.c); the hooks only with test_hooks=1 */
struct dmm_debug {
	struct dentry *dir;
	u16 resp;			/* the device's last answer to a hook */
	/* and to a test's hint list: type, accepted, rejected (hints.lock) */
	u16 hint_resp;
	u32 hint_counts[2];
	/* the last touch_region: pages written, pages that read back */
	u64 touch_written;
	u64 touch_ok;
};

/*
 * Locking.  The order, outermost first:
 *
 *   hotplug_mutex          control loop; request queue
 *     pages.lock           page queue (page migration: trylock only)
 *     blocks.lock          block states and the sub-block bitmap
 *   hints.lock             hint queue; taken alone (hint thread, debugfs)
 *   ask.lock (spinlock)    the last request for memory; innermost
 *
 * The core's memory hotplug lock comes between hotplug_mutex and
 * blocks.lock: adding and removing memory call the memory notifier and
 * the online_page callback, which take blocks.lock, so blocks.lock is
 * never held across add_memory_driver_managed() or
 * offline_and_remove_memory().
 *
 * hotplug_mutex, pages.lock and hints.lock are held across a round trip
 * on their virtqueue: each queue has one request in flight and the device
 * answers without waiting for the guest.  blocks.lock is held across the
 * PLUG_SB and UNPLUG_SB requests of one sub-block, so that the block
 * cannot go offline between taking the sub-block from Linux and the
 * device's answer.  Counters read by sysfs without a lock are atomics or
 * written with WRITE_ONCE().
 */
struct virtio_dmm {
	struct virtio_device *vdev;

	/* the request virtqueue; one request in flight, under hotplug_mutex */
	struct virtqueue *vq;
	/* woken when the device has answered */
	wait_queue_head_t host_resp;
	/* request and response buffers (not on the stack: DMA) */
	struct virtio_dmm_req req;
	struct virtio_dmm_resp resp;

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
	 * Serialises the control loop and the requests on the request
	 * queue (one in flight).  The fields below change only with it held
	 * and are written with WRITE_ONCE(): sysfs reads them without it,
	 * so that a read never waits for a resize.
	 */
	struct mutex hotplug_mutex;
	/* last requested_size read from the device */
	u64 requested_size;
	/* bytes plugged: whole blocks and sub-blocks */
	u64 plugged_size;
	enum dmm_status status;
	/* current back-off in ms, 0 when not backing off */
	unsigned int backoff_ms;
	/* counters */
	u64 plug_failures;	/* PLUG refused or add_memory failed */
	u64 unplug_failures;	/* a block could not be offlined (busy) */
	u64 floor_stops;	/* unplugs stopped at the floor */
	u64 region_traded;	/* bytes of region unplugged for pages */
	u64 region_deferred;	/* times a (sub-)block was left to the trade */
	/* no region trade before this (jiffies); dmm_region_trade_later() */
	unsigned long region_trade_at;
	unsigned int region_trade_backoff;	/* times the first wait */
	/* no trade of single pages for ranges before this (jiffies) */
	unsigned long pages_trade_at;

	/* one part per feature, each with its own lock (see above) */
	struct dmm_blocks blocks;
	struct dmm_sb sb;
	struct dmm_pages pages;
	struct dmm_report report;
	struct dmm_hints hints;
	struct dmm_stats stats;
	struct dmm_ask ask;
	struct dmm_debug debug;
	struct dmm_kdump kdump;
	/* is_kdump_kernel() at probe: the device is only read */
	bool in_kdump;

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
int dmm_find_vqs(struct virtio_dmm *vm);

/* dmm_blocks.c: block states */
int dmm_blocks_init(struct virtio_dmm *vm);
void dmm_blocks_exit(struct virtio_dmm *vm);
void dmm_block_set_state(struct virtio_dmm *vm, unsigned long id,
			 enum dmm_block_state state);
void dmm_block_set_partial(struct virtio_dmm *vm, unsigned long id,
			   bool partial);
bool dmm_state_partial(enum dmm_block_state s);
unsigned long dmm_first_unplugged(struct virtio_dmm *vm);
/* Walk the added blocks: next at or after @id, last below @end. */
unsigned long dmm_next_added(struct virtio_dmm *vm, unsigned long id);
unsigned long dmm_prev_added(struct virtio_dmm *vm, unsigned long end);
long dmm_blocks_check(struct virtio_dmm *vm);
void dmm_blocks_memmap_init(struct virtio_dmm *vm);

static inline enum dmm_block_state dmm_block_state(struct virtio_dmm *vm,
						   unsigned long id)
{
	return READ_ONCE(vm->blocks.state[id]);
}

/* Pages at the start of block @id that hold its memory map (0: none). */
static inline unsigned long dmm_block_memmap_pages(const struct virtio_dmm *vm,
						   unsigned long id)
{
	return test_bit(id, vm->blocks.memmap_on) ? vm->blocks.memmap_pages : 0;
}

/*
 * Sub-blocks at the start of block @id that hold its memory map (0 unless
 * it carries one; a whole number, dmm_blocks_memmap_init()): they leave
 * with the block, never on their own.
 */
static inline unsigned long dmm_block_memmap_sbs(const struct virtio_dmm *vm,
						 unsigned long id)
{
	return div64_u64(PFN_PHYS(dmm_block_memmap_pages(vm, id)), vm->sb.size);
}

/*
 * How much migration a shrink accepts to take a block or sub-block back
 * from Linux.  DMM_VACATE_CHEAP: only where at most 1/2^DMM_CHEAP_SHIFT of
 * its pages are in use (dmm_region_cheap()); pages stand in for the rest
 * (dmm_shrink()).  DMM_VACATE_ANY: whatever alloc_contig_range() can move.
 */
enum dmm_vacate {
	DMM_VACATE_ANY,
	DMM_VACATE_CHEAP,
};

#define DMM_CHEAP_SHIFT		3

bool dmm_region_cheap(unsigned long pfn, unsigned long nr);

/* dmm_coarse.c: whole blocks */
int dmm_coarse_init(struct virtio_dmm *vm);
void dmm_coarse_exit(struct virtio_dmm *vm);
int dmm_coarse_plug(struct virtio_dmm *vm, u64 bytes);
int dmm_coarse_unplug(struct virtio_dmm *vm, u64 bytes, enum dmm_vacate how);
int dmm_coarse_unplug_all(struct virtio_dmm *vm);
int dmm_add_block(struct virtio_dmm *vm, unsigned long id);
void dmm_plugged_add(struct virtio_dmm *vm, s64 delta);

/* dmm_sub.c: sub-blocks of blocks (they need alloc_contig_range()) */
#if IS_ENABLED(CONFIG_CONTIG_ALLOC)
int dmm_sb_init(struct virtio_dmm *vm);
void dmm_sb_exit(struct virtio_dmm *vm);
void dmm_sb_mark_block(struct virtio_dmm *vm, unsigned long id, bool plugged);
unsigned int dmm_sb_count(const struct virtio_dmm *vm, unsigned long id);
void dmm_sb_offline_refs(struct virtio_dmm *vm, unsigned long pfn,
			 unsigned long nr, bool drop);
u64 dmm_sb_partial_bytes(struct virtio_dmm *vm);
int dmm_sb_unplug(struct virtio_dmm *vm, u64 bytes, enum dmm_vacate how);
int dmm_sb_plug_added(struct virtio_dmm *vm, u64 bytes);
int dmm_sb_plug_new(struct virtio_dmm *vm, u64 bytes);
#else
static inline int dmm_sb_init(struct virtio_dmm *vm)
{
	vm->sb.size = vm->block_size;
	vm->sb.per_block = 1;
	return 0;
}

static inline void dmm_sb_exit(struct virtio_dmm *vm) { }
static inline void dmm_sb_mark_block(struct virtio_dmm *vm, unsigned long id,
				     bool plugged) { }
static inline unsigned int dmm_sb_count(const struct virtio_dmm *vm,
					unsigned long id)
{
	return 0;
}

static inline void dmm_sb_offline_refs(struct virtio_dmm *vm,
				       unsigned long pfn, unsigned long nr,
				       bool drop) { }

static inline u64 dmm_sb_partial_bytes(struct virtio_dmm *vm)
{
	return 0;
}

static inline int dmm_sb_unplug(struct virtio_dmm *vm, u64 bytes,
				enum dmm_vacate how)
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
int dmm_pages_init(struct virtio_dmm *vm);
void dmm_pages_exit(struct virtio_dmm *vm);
int dmm_pages_unplug(struct virtio_dmm *vm, u64 bytes);
int dmm_pages_plug(struct virtio_dmm *vm, u64 bytes);
void dmm_pages_detach(struct virtio_dmm *vm);
void dmm_pages_release(struct virtio_dmm *vm);
u64 dmm_pages_floor(struct virtio_dmm *vm);
int dmm_pages_trade(struct virtio_dmm *vm);
bool dmm_pages_tradable(const struct virtio_dmm *vm);
unsigned long dmm_pages_headroom(void);
int dmm_send_pages(struct virtio_dmm *vm, u16 type, u16 order,
		   unsigned int nb);
/* dmm_ranges.c */
void dmm_ranges_init(struct virtio_dmm *vm);
s64 dmm_ranges_unplug(struct virtio_dmm *vm, u64 bytes);
int dmm_ranges_unplug_batch(struct virtio_dmm *vm, int i, unsigned int want);
s64 dmm_ranges_plug(struct virtio_dmm *vm, u64 bytes);
bool dmm_ranges_split_one(struct virtio_dmm *vm);
void dmm_ranges_release(struct virtio_dmm *vm);
#else
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
static inline int dmm_pages_trade(struct virtio_dmm *vm) { return 0; }
static inline bool dmm_pages_tradable(const struct virtio_dmm *vm)
{
	return false;
}
#endif

/* dmm_kdump.c: in a kdump kernel */
#ifdef CONFIG_PROC_VMCORE
int dmm_kdump_init(struct virtio_dmm *vm);
void dmm_kdump_exit(struct virtio_dmm *vm);
#else
static inline int dmm_kdump_init(struct virtio_dmm *vm)
{
	dev_warn(&vm->vdev->dev, "kdump kernel without /proc/vmcore: not used\n");
	return -EBUSY;
}

static inline void dmm_kdump_exit(struct virtio_dmm *vm) { }
#endif

/* dmm_report.c: free page reporting */
#if IS_ENABLED(CONFIG_PAGE_REPORTING)
void dmm_report_validate(struct virtio_device *vdev);
void dmm_report_init(struct virtio_dmm *vm);
void dmm_report_exit(struct virtio_dmm *vm);
#else
static inline void dmm_report_validate(struct virtio_device *vdev) { }
static inline void dmm_report_init(struct virtio_dmm *vm) { }
static inline void dmm_report_exit(struct virtio_dmm *vm) { }
#endif

/* dmm_hints.c: shared-page hints */
#define DMM_HINT_BUDGET_DEFAULT	5	/* percent of one CPU */
void dmm_hints_init(struct virtio_dmm *vm);
void dmm_hints_exit(struct virtio_dmm *vm);
void dmm_hints_kick(struct virtio_dmm *vm);
int dmm_hints_send(struct virtio_dmm *vm, struct virtio_dmm_hint_req *req,
		   unsigned int nb);

/* dmm_stats.c: memory statistics and requests */
#define DMM_ASK_STEP_DEFAULT	SZ_256M
void dmm_stats_init(struct virtio_dmm *vm);
void dmm_stats_exit(struct virtio_dmm *vm);
void dmm_stats_config_changed(struct virtio_dmm *vm);
int dmm_ask(struct virtio_dmm *vm, u64 size, u64 reason);

/* dmm_debugfs.c: block states and counters */
#if IS_ENABLED(CONFIG_DEBUG_FS)
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

/* dmm_hooks.c: test hooks (raw requests, touch_region), test_hooks=1 */
#if IS_ENABLED(CONFIG_DEBUG_FS) && IS_ENABLED(CONFIG_MEMORY_BALLOON)
void dmm_hooks_init(struct virtio_dmm *vm);
#else
static inline void dmm_hooks_init(struct virtio_dmm *vm) { }
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

/* Unplugged pages held singly, not in ranges. */
static inline u64 dmm_pages_singles(const struct virtio_dmm *vm)
{
	return vm->pages.unplugged - vm->pages.range_pages;
}

/* The guest's RAM now, as the device counts it. */
static inline u64 dmm_current_size(const struct virtio_dmm *vm)
{
	return vm->boot_size + vm->plugged_size -
	       (READ_ONCE(vm->pages.unplugged) << PAGE_SHIFT);
}

#endif /* _DRIVERS_DMM_DMM_H */
