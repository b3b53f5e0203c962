/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-dmm device logic, independent of any VMM.
 *
 * The library keeps the state of every block of the region, validates and
 * processes guest requests, and keeps the size accounting.  It touches
 * guest memory only through the backend a VMM passes in (populate, discard).
 * It allocates nothing after dmm_dev_init() and never aborts on guest input.
 *
 * Locking: none.  The VMM serialises every call for one device (QEMU: the
 * BQL).
 */
#ifndef DMM_DEV_H
#define DMM_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_dmm.h>

/* What the library needs from its VMM: all offsets relative to the region. */
struct dmm_backend_ops {
	/* Back [offset, offset + len) with memory, or prepare to; 0 or -errno. */
	int (*populate)(void *opaque, uint64_t offset, uint64_t len);
	/* Give host memory behind [offset, offset + len) back; 0 or -errno. */
	int (*discard)(void *opaque, uint64_t offset, uint64_t len);
	/* plugged_size changed (after a request or unplug-all); may be NULL. */
	void (*plugged_changed)(void *opaque, uint64_t plugged_size);
	/*
	 * Sub-blocks in [offset, offset + len) were plugged or unplugged (the
	 * state is already updated): a VMM that maps only plugged memory
	 * into the guest maps or unmaps it now, before the guest hears of
	 * the change.  May be NULL.
	 */
	void (*state_changed)(void *opaque, uint64_t offset, uint64_t len);
	/*
	 * Pages and hints only.  Is guest-physical @gpa boot RAM?  Then
	 * 0 and *offset is its offset in [0, boot_size); else -1.
	 */
	int (*boot_page)(void *opaque, uint64_t gpa, uint64_t *offset);
	/* Give host memory behind boot RAM [offset, offset + len) back. */
	int (*discard_boot)(void *opaque, uint64_t offset, uint64_t len);
	/*
	 * Hints only.  The host mapping of the VIRTIO_DMM_HINT_PAGE_SIZE page
	 * at @offset of boot RAM (@boot) or of the region, or NULL.  Read
	 * while the guest runs: the content may change under the reader.
	 */
	const void *(*page_ptr)(void *opaque, bool boot, uint64_t offset);
	/*
	 * Hints only.  Let the host share the page's memory with identical
	 * pages, safely against concurrent writes (copy on write); 0 or
	 * -errno.  -ENOSPC: the VMM's bound on what it shares is reached;
	 * the hint is rejected, no backend error.
	 */
	int (*share)(void *opaque, bool boot, uint64_t offset);
	/*
	 * The guest asks for a total of @size bytes of RAM (a valid
	 * requested_size), for @reason (VIRTIO_DMM_ASK_*): the VMM's policy
	 * answers VIRTIO_DMM_RESP_ACK (grant: the library sets
	 * requested_size), NACK (refuse) or BUSY (passed on).  May be NULL:
	 * ERROR.
	 */
	uint16_t (*ask)(void *opaque, uint64_t size, uint64_t reason);
};

/* Fixed parameters of a device, checked by dmm_dev_init(). */
struct dmm_params {
	uint64_t block_size;	/* power of two, >= DMM_MIN_BLOCK_SIZE */
	uint64_t region_addr;	/* guest-physical, block_size aligned */
	uint64_t region_size;	/* multiple of block_size, > 0 */
	uint64_t boot_size;	/* guest RAM outside the region */
	/* 0: no page requests; else their page size, a power of two */
	uint64_t page_size;
	/* 0: no sub-block requests; else their size, dividing block_size */
	uint64_t sub_block_size;
};

/* Counters of what the guest asked and what came of it. */
struct dmm_stats {
	uint64_t requests;	/* every request processed */
	uint64_t plugs;		/* PLUG answered ACK */
	uint64_t unplugs;	/* UNPLUG or UNPLUG_ALL answered ACK */
	uint64_t nacks;		/* NACK responses */
	uint64_t busy;		/* BUSY responses */
	uint64_t errors;	/* ERROR responses */
	uint64_t backend_errors; /* populate or discard failed */
	uint64_t page_requests;	/* page requests processed */
	uint64_t pages_unplugged; /* pages unplugged (UNPLUG_PAGES, MOVE) */
	uint64_t pages_plugged;	/* pages plugged back (PLUG_PAGES, MOVE) */
	uint64_t hint_requests;	/* hint requests processed */
	uint64_t hints_zero;	/* zero hints whose page was zero */
	uint64_t hints_dup;	/* duplicate hints whose hash matched */
	uint64_t hints_rejected; /* content not as stated, or not processed */
	uint64_t hint_errors;	/* hint requests answered ERROR */
	uint64_t asks;		/* valid REQ_ASK requests */
	uint64_t asks_granted;	/* answered ACK */
};

/* Block states, one byte each (stored as-is in QEMU's migration stream). */
enum dmm_block_state {
	DMM_BLOCK_UNPLUGGED = 0,	/* not backed; the guest must not touch */
	DMM_BLOCK_PLUGGED = 1,		/* backed on demand, guest's memory */
	DMM_BLOCK_PARTIAL = 2,		/* some of its sub-blocks plugged */
};

#define DMM_MIN_BLOCK_SIZE	(4096ULL)
/* Refuse regions with more blocks than this (keeps the state array small). */
#define DMM_MAX_BLOCKS		(1ULL << 24)
/* Keeps a block's sub-block states in one 64-bit word of a driver. */
#define DMM_MAX_SBS_PER_BLOCK	4096
/* The most addresses in one page request (max_pages in the config). */
#define DMM_MAX_PAGES_PER_REQ	1024
/* With pages, requested_size may go down to this (or boot_size if less). */
#define DMM_MIN_REQUESTED_SIZE	(64ULL << 20)

struct dmm_dev {
	struct dmm_params p;
	uint64_t nb_blocks;		/* region_size / block_size */
	uint64_t requested_size;	/* target total guest RAM */
	uint64_t plugged_size;		/* == plugged blocks * block_size */
	bool busy;			/* answer BUSY to state changes */
	uint8_t *state;			/* enum dmm_block_state per block */
	struct dmm_stats stats;

	/*
	 * Sub-blocks: the unit of state.  sb_size is p.sub_block_size, or
	 * block_size without sub-blocks.  One bit per sub-block, set while
	 * plugged (bit i is bit i % 8 of byte i / 8); state[] summarises
	 * each block's sub-blocks.
	 */
	uint64_t sb_size;
	uint64_t nb_sbs;		/* region_size / sb_size */
	uint64_t sbs_per_block;
	uint8_t *sb_plugged;

	/*
	 * Pages (p.page_size != 0): one bit per page, set while the page is
	 * unplugged; boot RAM by offset, the region by offset.  Bit i of a
	 * bitmap is bit i % 8 of byte i / 8 (stored as-is for migration).
	 */
	uint64_t nb_boot_pages;		/* boot_size / page_size */
	uint64_t nb_region_pages;	/* region_size / page_size */
	uint8_t *boot_pages;
	uint8_t *region_pages;
	uint64_t unplugged_size;	/* set bits in both, times page_size */
	/* unplug pages without discarding them (postcopy, snapshots) */
	bool discard_inhibited;
	/* answer hints NACK: memory must not be shared now (VFIO, ...) */
	bool hints_refused;
	/* DUP hints were negotiated (F_HINTS_DUP); else they are ERRORs */
	bool dup_hints;

	const struct dmm_backend_ops *ops;
	void *opaque;
};

/*
 * Check @p and set up @d with every block unplugged and requested_size equal
 * to boot_size.  On failure returns -EINVAL (or -ENOMEM) and writes a
 * message naming the bad value into @err (NUL-terminated, may be NULL).
 */
int dmm_dev_init(struct dmm_dev *d, const struct dmm_params *p,
		 const struct dmm_backend_ops *ops, void *opaque,
		 char *err, size_t errlen);
void dmm_dev_fini(struct dmm_dev *d);

/*
 * Is @size a valid requested_size?  0, or -EINVAL with a message.  Without
 * pages it must be >= boot_size, <= boot_size + region_size, and
 * size - boot_size must be a multiple of block_size.  With pages it must be
 * a multiple of page_size between min(boot_size, DMM_MIN_REQUESTED_SIZE)
 * and boot_size + region_size.
 */
int dmm_check_requested_size(const struct dmm_dev *d, uint64_t size,
			     char *err, size_t errlen);
/* Check and set; changes nothing on failure. */
int dmm_set_requested_size(struct dmm_dev *d, uint64_t size,
			   char *err, size_t errlen);

/*
 * Process one request.  @req points at @req_len bytes copied out of the
 * guest's buffer; @resp receives the response.
 * Returns the response length (sizeof(struct virtio_dmm_resp)), or
 * -EINVAL if the request is malformed beyond a response (too short): the VMM
 * then treats it as a protocol violation (QEMU: virtio_error()).
 */
int dmm_handle_request(struct dmm_dev *d, const void *req, size_t req_len,
		       struct virtio_dmm_resp *resp);

/*
 * Process one page request (page virtqueue), as dmm_handle_request().
 * -EINVAL if shorter than its header.
 */
int dmm_handle_page_request(struct dmm_dev *d, const void *req,
			    size_t req_len, struct virtio_dmm_resp *resp);

/*
 * Process one hint request (hint virtqueue), as dmm_handle_request(): every
 * address is checked before any page is read; then each page's content is
 * compared with the hint (zero, or the XXH64 hash) and only pages found as
 * stated are passed to ops->share.  -EINVAL if shorter than its header.
 */
int dmm_handle_hint_request(struct dmm_dev *d, const void *req,
			    size_t req_len, struct virtio_dmm_resp *resp);

/* XXH64 of @len bytes at @data with @seed (the hash of DUP hints). */
uint64_t dmm_xxh64(const void *data, size_t len, uint64_t seed);

/* The guest's RAM now: boot_size + plugged_size - unplugged_size. */
uint64_t dmm_current_size(const struct dmm_dev *d);

/* Bytes plugged in blocks that are only partially plugged (sub-blocks). */
uint64_t dmm_partial_plugged_size(const struct dmm_dev *d);

/* Is page @i of @bitmap set (unplugged)? */
static inline bool dmm_page_test(const uint8_t *bitmap, uint64_t i)
{
	return bitmap[i / 8] & (1u << (i % 8));
}

/* Bytes of a page bitmap over @nb_pages pages. */
static inline uint64_t dmm_bitmap_bytes(uint64_t nb_pages)
{
	return (nb_pages + 7) / 8;
}

/*
 * Machine reset: discard the region and mark every block unplugged and
 * every page plugged, even if the discard fails (then -EIO).  The UNPLUG_ALL request instead changes
 * nothing when the discard fails.
 */
int dmm_unplug_all(struct dmm_dev *d);

/* Fill @cfg as the guest sees it (little-endian). */
void dmm_fill_config(const struct dmm_dev *d, uint16_t node_id,
		     struct virtio_dmm_config *cfg);

/*
 * Without sub-blocks a migration stream carries only state[]: rebuild the
 * sub-block bitmap from it (a state other than 0 or 1 stays invalid and
 * fails dmm_check_loaded_state()).
 */
void dmm_sbs_from_block_states(struct dmm_dev *d);

/*
 * After restoring state[], plugged_size, the page bitmaps and
 * unplugged_size from a migration stream: check they agree with each other
 * and with the parameters.  0 or -EINVAL.
 */
int dmm_check_loaded_state(const struct dmm_dev *d, char *err, size_t errlen);

/*
 * Is [offset, offset + len) of the region non-empty and made only of
 * plugged blocks?  For ranges the guest reports (free pages): only plugged
 * memory is the guest's to report.
 */
bool dmm_range_is_plugged(const struct dmm_dev *d, uint64_t offset,
			  uint64_t len);

/* Number of plugged blocks in [first, first + count); count checked by caller. */
uint64_t dmm_count_plugged(const struct dmm_dev *d, uint64_t first,
			   uint64_t count);

#endif /* DMM_DEV_H */
