/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-dmm: dynamic memory for virtual machines.  Wire format, version 1.
 *
 * This header is the one definition of the device's wire format.  The Linux
 * driver, the QEMU device and the portable device library all include it.
 *
 * The device model in brief
 * -------------------------
 * The device owns a *region*: a range of guest-physical address space that
 * is not described to firmware.  The region is split into *blocks* of
 * block_size bytes.  Each block is either plugged (backed by host memory on
 * demand, usable by the driver) or unplugged (not backed; the host has
 * discarded whatever was there).  The driver plugs and unplugs blocks with
 * requests on the request virtqueue.
 *
 * The host sets one size, requested_size: the guest's target *total* RAM,
 * boot memory included.  boot_size is the RAM the guest has outside the
 * region, so the driver grows or shrinks the region until
 * boot_size + plugged_size == requested_size.  The device never plugs or
 * unplugs on its own while the guest runs; it only changes requested_size and
 * signals a configuration change.
 *
 * Unplugged memory: the driver must not read or write an unplugged block.
 * The device may back it again with zeroed memory at any time, or not at all.
 *
 * Reset: a device reset (status 0) changes no block state: memory the guest
 * has plugged stays plugged, so that a driver re-probing after kexec sees
 * plugged_size != 0 and unplugs everything (UNPLUG_ALL) before it starts.
 * A reset of the whole machine unplugs every block.
 *
 * BUSY: the device answers BUSY while it cannot change block state (for
 * example during migration).  The driver retries later.
 *
 * Pages (VIRTIO_DMM_F_PAGES): the driver may also unplug single pages of
 * page_size bytes anywhere in its RAM, boot memory included, and plug them
 * back later, with lists of page addresses on the page virtqueue.  The
 * guest's RAM is then boot_size + plugged_size - unplugged_size, and the
 * host may set requested_size below boot_size.
 *
 * Hints (VIRTIO_DMM_F_HINTS): the driver names pages it found zero, or
 * likely duplicated, and the host may share their memory (never changing
 * what the guest reads).  Statistics (VIRTIO_DMM_F_STATS): the driver
 * reports its memory pressure every stats_interval_ms and may ask for
 * memory; the host grants, refuses or passes the request on.
 *
 * All fields are little-endian.
 */

#ifndef _UAPI_LINUX_VIRTIO_DMM_H
#define _UAPI_LINUX_VIRTIO_DMM_H

#include <linux/types.h>

/*
 * Virtio device ID.  Provisional: taken from the range the virtio
 * specification leaves unassigned.  The PCI device ID is 0x1040 + this.
 */
#define VIRTIO_ID_DMM			58

/* --- feature bits --- */

/* node_id in the configuration is an ACPI proximity domain (PXM). */
#define VIRTIO_DMM_F_NODE_ID		0
/*
 * Free page reporting on virtqueue 1 (reportq): the driver passes free
 * pages it will not touch until the device has returned the buffer, as
 * device-writable buffers; the device may discard them.  A later access
 * reads zeros.  Ranges outside guest RAM or in unplugged blocks are
 * ignored.
 */
#define VIRTIO_DMM_F_FREE_PAGE_REPORTING	1
/*
 * Page requests on the page virtqueue (pageq): unplug and plug single pages
 * of boot memory and of plugged blocks; page_size, max_pages and
 * unplugged_size in the configuration are valid.
 */
#define VIRTIO_DMM_F_PAGES		2
/*
 * Sub-blocks: PLUG_SB and UNPLUG_SB plug and unplug parts of blocks of
 * sub_block_size bytes; a block may be partially plugged.
 */
#define VIRTIO_DMM_F_SUB_BLOCKS		3
/*
 * Shared-page hints on the hint virtqueue: the driver names pages it
 * believes are zero, or hold content other guests likely hold too, and
 * the device may make the host share them.  Advice only: the content the
 * guest sees never changes because of a hint.
 */
#define VIRTIO_DMM_F_HINTS		4
/*
 * Memory statistics and requests: the driver reports its memory pressure
 * on the stats virtqueue every stats_interval_ms (in the configuration),
 * and may ask for more memory, or offer some back, with REQ_ASK.
 */
#define VIRTIO_DMM_F_STATS		5
/*
 * Duplicate hints (VIRTIO_DMM_HINT_DUP) on the hint virtqueue, with
 * F_HINTS.  Without it the driver sends zero hints only.  Pages merged
 * with other guests' pages can be probed by copy-on-write timing, so a
 * device offers this only where its operator allows sharing across guests.
 */
#define VIRTIO_DMM_F_HINTS_DUP		6
/*
 * Page ranges, with F_PAGES: UNPLUG_PAGES and PLUG_PAGES may carry an
 * order (struct virtio_dmm_page_req): each address then names a naturally
 * aligned range of 2^order pages, so that a driver that gives back its
 * memory in large free blocks says so in one entry per block, and the
 * device can give the host back whole huge pages.
 */
#define VIRTIO_DMM_F_PAGE_RANGES	7

/* --- virtqueues --- */

/*
 * Queue indices are fixed and the device always has all five queues,
 * whatever it offers.  A driver sets up the queues of the features it
 * negotiated and every queue before them (it may leave those unused).
 */
#define VIRTIO_DMM_VQ_REQUEST		0	/* requests, always */
#define VIRTIO_DMM_VQ_REPORT		1	/* F_FREE_PAGE_REPORTING */
#define VIRTIO_DMM_VQ_PAGE		2	/* F_PAGES */
#define VIRTIO_DMM_VQ_HINT		3	/* F_HINTS */
#define VIRTIO_DMM_VQ_STATS		4	/* F_STATS */
#define VIRTIO_DMM_NUM_VQS		5

/* --- requests (driver to device, request virtqueue) --- */

/* Plug blocks: they become usable by the driver.  ACK, NACK, BUSY, ERROR. */
#define VIRTIO_DMM_REQ_PLUG		0
/*
 * Unplug blocks: the host discards them.  ACK, BUSY, ERROR (also if a page
 * of a block is unplugged: plug it back or move it out first).
 */
#define VIRTIO_DMM_REQ_UNPLUG		1
/* Unplug every block and plug every unplugged page back.  ACK, BUSY. */
#define VIRTIO_DMM_REQ_UNPLUG_ALL	2
/* Ask for the state of a range of blocks.  ACK (with state), ERROR. */
#define VIRTIO_DMM_REQ_STATE		3

/*
 * Plug and unplug sub-blocks (F_SUB_BLOCKS): like PLUG and UNPLUG, with
 * addr sub_block_size aligned and nb_blocks counting sub-blocks.  A block
 * is plugged when all its sub-blocks are; PLUG and UNPLUG of a whole block
 * need all its sub-blocks unplugged, or plugged.  STATE of a block with
 * some sub-blocks plugged is MIXED.
 */
#define VIRTIO_DMM_REQ_PLUG_SB		7
#define VIRTIO_DMM_REQ_UNPLUG_SB	8
/*
 * The state of a range of sub-blocks (F_SUB_BLOCKS): like STATE, in
 * sub-blocks.  A kdump kernel asks it to read only plugged memory.
 */
#define VIRTIO_DMM_REQ_STATE_SB		10

/*
 * Ask for memory (F_STATS): the driver would like its RAM to be u.ask.size
 * bytes in total (more than now: it asks for memory; less: it offers some
 * back).  ACK: granted, requested_size is now u.ask.size (a configuration
 * change follows).  NACK: refused.  BUSY: passed on to whoever manages the
 * host; requested_size may change later, or not.  ERROR: size is not a
 * valid requested_size, or reason has unknown bits.
 */
#define VIRTIO_DMM_REQ_ASK		9

/* Why the driver asks (u.ask.reason bits). */
#define VIRTIO_DMM_ASK_PRESSURE		0x1	/* over a threshold */
#define VIRTIO_DMM_ASK_ADMIN		0x2	/* the guest's admin */
#define VIRTIO_DMM_ASK_REASONS		0x3

/* A contiguous range of blocks (or sub-blocks): PLUG*, UNPLUG*, STATE. */
struct virtio_dmm_req_range {
	__le64 addr;		/* guest-physical, block-aligned, in the region */
	__le64 nb_blocks;	/* at least 1 */
};

struct virtio_dmm_req_ask {
	__le64 size;		/* total guest RAM wanted, bytes */
	__le64 reason;		/* VIRTIO_DMM_ASK_* */
};

struct virtio_dmm_req {
	__le16 type;		/* VIRTIO_DMM_REQ_* */
	__le16 padding[3];	/* must be 0 */

	union {
		struct virtio_dmm_req_range plug;
		struct virtio_dmm_req_range unplug;
		struct virtio_dmm_req_range state;
		struct virtio_dmm_req_ask ask;
	} u;
};

/* --- page requests (driver to device, page virtqueue) --- */

/*
 * Unplug pages: each must be RAM the guest has (boot memory, or a plugged
 * block) and plugged.  The device may discard them.  ACK or ERROR.
 */
#define VIRTIO_DMM_REQ_UNPLUG_PAGES	4
/*
 * Plug unplugged pages back; they read as zero or as their old content.
 * ACK, NACK (the guest would exceed requested_size), ERROR.
 */
#define VIRTIO_DMM_REQ_PLUG_PAGES	5
/*
 * Move unplugged pages: addr[] holds pairs (old, new); each unplugged old
 * page becomes plugged and each plugged new page becomes unplugged, so the
 * size does not change (the guest migrates a page it had given back).
 * ACK or ERROR.
 */
#define VIRTIO_DMM_REQ_MOVE_PAGES	6

/* The largest order of a page range: 1024 pages. */
#define VIRTIO_DMM_MAX_PAGE_ORDER	10

/*
 * A page request: this header, then nb_pages addresses, each naming
 * 2^order pages from that address on (one page with order 0).  Invalid
 * (ERROR) and nothing changes if any address is not aligned to the size it
 * names (page_size << order), if any page it names is not guest RAM, is
 * in an unplugged block, in the wrong state or named twice, or if nb_pages
 * is 0, above max_pages, odd for MOVE_PAGES, or more than the buffer
 * holds, or if order is not 0 but F_PAGE_RANGES was not negotiated, the
 * type is MOVE_PAGES or order is above VIRTIO_DMM_MAX_PAGE_ORDER.  A range
 * lies in one stretch of guest RAM: boot RAM that is contiguous in the
 * guest-physical space, or plugged sub-blocks of the region.
 */
struct virtio_dmm_page_req {
	__le16 type;		/* VIRTIO_DMM_REQ_*_PAGES */
	__le16 order;		/* 0 without F_PAGE_RANGES */
	__le32 nb_pages;	/* entries in addr[] */
	__le64 addr[];		/* guest-physical */
};

/* --- hints (driver to device, hint virtqueue) --- */

/* Every page named is entirely zero.  hash must be 0. */
#define VIRTIO_DMM_HINT_ZERO		0
/*
 * Every page named holds content that is likely duplicated (a clean page
 * of a file's page cache, say); hash is XXH64 (seed 0) of its page_size
 * bytes.  The device checks the content against the hash itself.
 */
#define VIRTIO_DMM_HINT_DUP		1

/* Hints name pages of this size, aligned to it. */
#define VIRTIO_DMM_HINT_PAGE_SIZE	4096
/*
 * The device may act on the whole naturally aligned range of this size
 * that holds a hinted page (share every page of it that is identical to
 * another); a driver need not hint more than one page of a range, nor a
 * range the device accepted a hint for before (until the device is reset).
 */
#define VIRTIO_DMM_HINT_RANGE_SIZE	(2 * 1024 * 1024)
/* The most hints one request may carry. */
#define VIRTIO_DMM_MAX_HINTS		256

struct virtio_dmm_hint {
	__le64 addr;		/* guest-physical, page aligned */
	__le64 hash;		/* VIRTIO_DMM_HINT_DUP: XXH64 of the page */
};

/*
 * A hint request: this header, then nb_hints hints.  ERROR, and nothing
 * happens, if the type is unknown, padding is not 0, nb_hints is 0, above
 * VIRTIO_DMM_MAX_HINTS or more than the buffer holds, if it is a DUP hint
 * without VIRTIO_DMM_F_HINTS_DUP, or if any address is unaligned, not guest
 * RAM (boot memory or a plugged sub-block of the region) or an unplugged
 * page.  Otherwise ACK with the number of hints whose content the device
 * found as stated and acted on (accepted) and not (rejected: content not
 * as stated, or the device's bound on separately shared ranges reached).
 * NACK: the device does not act on hints now (e.g. memory must not be
 * shared or discarded while a VFIO device is attached); the driver should
 * wait before it sends more.
 */
struct virtio_dmm_hint_req {
	__le16 type;		/* VIRTIO_DMM_HINT_* */
	__le16 padding;		/* must be 0 */
	__le32 nb_hints;
	struct virtio_dmm_hint hints[];
};

/* --- statistics (driver to device, stats virtqueue) --- */

/*
 * One report: sizes in bytes; counters since the guest booted; PSI
 * averages of memory pressure in hundredths of a percent (Linux
 * /proc/pressure/memory: "some" tasks stalled, or "full": all).  The
 * device answers ACK; a report shorter than this is ERROR.
 */
struct virtio_dmm_stats {
	__le64 seq;		/* the driver's report number, from 1 */
	__le64 total;		/* RAM the guest manages (MemTotal) */
	__le64 available;	/* what it could use without swapping */
	__le64 free;		/* unused */
	__le64 cache;		/* page cache */
	__le32 psi_some_avg10;
	__le32 psi_full_avg10;
	__le32 psi_some_avg60;
	__le32 psi_full_avg60;
	__le64 psi_some_total;	/* microseconds stalled, some */
	__le64 psi_full_total;	/* microseconds stalled, full */
	__le64 swap_in;		/* pages */
	__le64 swap_out;	/* pages */
	__le64 major_faults;
	__le64 oom_kills;
	__le64 alloc_stalls;	/* direct reclaim entries */
};

/* --- responses (device to driver) --- */

/* Done; the state of every block in the range changed as asked. */
#define VIRTIO_DMM_RESP_ACK		0
/*
 * Valid but refused now: plugging would exceed requested_size (PLUG,
 * PLUG_SB and PLUG_PAGES), or hints are not acted on now (hints).
 */
#define VIRTIO_DMM_RESP_NACK		1
/*
 * Valid but cannot be processed now; retry later.  PLUG*, UNPLUG* and
 * UNPLUG_ALL (page requests never get BUSY).
 */
#define VIRTIO_DMM_RESP_BUSY		2
/* Invalid: range out of the region, unaligned, or in the wrong state. */
#define VIRTIO_DMM_RESP_ERROR		3

/* Every block of the range is plugged. */
#define VIRTIO_DMM_STATE_PLUGGED	0
/* Every block of the range is unplugged. */
#define VIRTIO_DMM_STATE_UNPLUGGED	1
/* The range holds plugged and unplugged blocks. */
#define VIRTIO_DMM_STATE_MIXED		2

struct virtio_dmm_resp_state {
	__le16 state;		/* VIRTIO_DMM_STATE_* */
	__le16 padding[3];
};

struct virtio_dmm_resp_hint {
	__le32 accepted;	/* content as stated */
	__le32 rejected;	/* content differs: stale or wrong */
};

struct virtio_dmm_resp {
	__le16 type;		/* VIRTIO_DMM_RESP_* */
	__le16 padding[3];

	union {
		struct virtio_dmm_resp_state state;	/* STATE with ACK */
		struct virtio_dmm_resp_hint hint;	/* hints with ACK */
	} u;
};

/* --- configuration --- */

struct virtio_dmm_config {
	/* Block size and alignment in bytes: a power of two.  Never changes. */
	__le64 block_size;
	/* Node of the region, with VIRTIO_DMM_F_NODE_ID.  Never changes. */
	__le16 node_id;
	__u8 padding[6];
	/* Start of the region, block-aligned.  Never changes. */
	__le64 region_addr;
	/* Size of the region, a multiple of block_size.  Never changes. */
	__le64 region_size;
	/* Guest RAM outside the region that counts toward requested_size. */
	__le64 boot_size;
	/* Target total guest RAM.  Changes; the device signals a change. */
	__le64 requested_size;
	/* Bytes of the region plugged.  Changes on PLUG, UNPLUG, UNPLUG_ALL. */
	__le64 plugged_size;
	/* With F_PAGES: size of a page for page requests (4096).  Fixed. */
	__le32 page_size;
	/* With F_PAGES: the most addresses one page request may carry.  Fixed. */
	__le32 max_pages;
	/* With F_PAGES: bytes of RAM unplugged as pages.  Changes on requests. */
	__le64 unplugged_size;
	/* With F_SUB_BLOCKS: sub-block size, a power of two.  Never changes. */
	__le64 sub_block_size;
	/*
	 * With F_STATS: report every this many milliseconds; 0: do not
	 * report, else VIRTIO_DMM_STATS_MIN_MS..VIRTIO_DMM_STATS_MAX_MS.
	 * Changes; the device signals a change.
	 */
	__le32 stats_interval_ms;
	__le32 padding2;
};

/* Bounds of a non-zero stats_interval_ms. */
#define VIRTIO_DMM_STATS_MIN_MS		100
#define VIRTIO_DMM_STATS_MAX_MS		3600000

#endif /* _UAPI_LINUX_VIRTIO_DMM_H */
