/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-dmm device logic, independent of any VMM.
 *
 * The library keeps the state of every sub-block of the region and of every
 * page of guest RAM, validates and processes guest requests, keeps the size
 * accounting, decides the guest's requests for memory, and serialises all
 * of it for migration.  It touches guest memory only through the backend a
 * VMM passes in (populate, discard, share), asks the VMM through the same
 * ops what is allowed now (may_change_state, may_discard, may_share), and
 * tells it what changed: by the DMM_CHANGED_* flags every call that
 * changes state returns, and by state_changed with the range.
 *
 * Inputs:  dmm_dev_new() parameters, dmm_set_features(),
 *          dmm_set_grant_policy(), dmm_set_requested_size(), the guest's
 *          requests, dmm_load().
 * Outputs: responses, DMM_CHANGED_* flags, backend calls, the getters,
 *          dmm_fill_config(), dmm_save().
 *
 * The device is opaque: a VMM reads it only through the functions below.
 * It allocates nothing after dmm_dev_new() and never aborts on guest input.
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

struct dmm_dev;

/* What the policy made of a guest's request for memory (REQ_ASK). */
enum dmm_ask_result {
    DMM_ASK_GRANTED,   /* ACK: requested_size is now the size asked */
    DMM_ASK_REFUSED,   /* NACK: above the policy's grant_limit */
    DMM_ASK_FORWARDED, /* BUSY: left to the VMM's management layer */
};

struct dmm_ask {
    uint64_t size;    /* total RAM asked for, a valid requested_size */
    uint64_t current; /* the guest's RAM when it asked */
    uint64_t reason;  /* VIRTIO_DMM_ASK_* */
    enum dmm_ask_result result;
};

/* What the library needs from its VMM: all offsets relative to the region. */
struct dmm_backend_ops {
    /*
     * Back [offset, offset + len) with memory, or prepare to; 0 or -errno.
     * -ENOMEM: the host has no memory for it now (the plug is NACKed).
     */
    int (*populate)(void *opaque, uint64_t offset, uint64_t len);
    /* Give host memory behind [offset, offset + len) back; 0 or -errno. */
    int (*discard)(void *opaque, uint64_t offset, uint64_t len);
    /*
     * Sub-blocks in [offset, offset + len) were plugged or unplugged (the
     * state is already updated): a VMM that maps only plugged memory
     * into the guest maps or unmaps it now, before the guest hears of
     * the change.  May be NULL.
     */
    void (*state_changed)(void *opaque, uint64_t offset, uint64_t len);
    /*
     * Pages and hints only.  Are the @len bytes at guest-physical @gpa
     * boot RAM, one stretch of it (contiguous offsets)?  Then 0 and
     * *offset is the offset of @gpa in [0, boot_size); else -1.
     */
    int (*boot_range)(void *opaque, uint64_t gpa, uint64_t len,
                      uint64_t *offset);
    /* Give host memory behind boot RAM [offset, offset + len) back. */
    int (*discard_boot)(void *opaque, uint64_t offset, uint64_t len);
    /*
     * Hints only.  The host mapping of the VIRTIO_DMM_HINT_PAGE_SIZE page
     * at @offset of boot RAM (@boot) or of the region, or NULL.  Read
     * while the guest runs: the content may change under the reader.
     */
    const void *(*page_ptr)(void *opaque, bool boot, uint64_t offset);
    /*
     * Hints only.  Let the host share the memory of [offset, offset +
     * len) of boot RAM (@boot) or of the region with identical pages,
     * safely against concurrent writes (copy on write); 0 or -errno.
     * Called once per hint chunk (VIRTIO_DMM_HINT_RANGE_SIZE, the last
     * one of boot RAM or the region may be shorter).
     */
    int (*share)(void *opaque, bool boot, uint64_t offset, uint64_t len);
    /*
     * May blocks and sub-blocks change state now?  false: PLUG*, UNPLUG*
     * and UNPLUG_ALL are answered BUSY (e.g. while migrating).  NULL:
     * always.
     */
    bool (*may_change_state)(void *opaque);
    /*
     * May guest memory be discarded now?  false: page requests only
     * record pages as unplugged, free page reports are refused.  NULL:
     * always.
     */
    bool (*may_discard)(void *opaque);
    /* May memory be shared now?  false: hints are answered NACK.  NULL: yes. */
    bool (*may_share)(void *opaque);
    /*
     * A valid request for memory and what the grant policy decided,
     * before the guest hears of it (a grant already set requested_size):
     * the VMM reports it (QEMU: the VIRTIO_DMM_ASK event).  NULL: the VMM
     * takes no requests for memory, they are answered ERROR.
     */
    void (*grant)(void *opaque, const struct dmm_ask *ask);
};

/* Fixed parameters of a device, checked by dmm_dev_new(). */
struct dmm_params {
    uint64_t block_size;  /* dmm_check_block_size() */
    uint64_t region_addr; /* guest-physical, block_size aligned */
    uint64_t region_size; /* multiple of block_size, > 0 */
    uint64_t boot_size;   /* guest RAM outside the region */
    /* 0: no page requests; else their page size, a power of two */
    uint64_t page_size;
    /* 0: no sub-block requests; else their size, dividing block_size */
    uint64_t sub_block_size;
    /* hints offered: needs ops boot_range, page_ptr and share */
    bool hints;
};

/* Counters of what the guest asked and what came of it. */
struct dmm_counters {
    uint64_t requests;           /* every request processed */
    uint64_t plugs;              /* PLUG answered ACK */
    uint64_t unplugs;            /* UNPLUG or UNPLUG_ALL answered ACK */
    uint64_t nacks;              /* NACK responses */
    uint64_t busy;               /* BUSY responses */
    uint64_t errors;             /* ERROR responses */
    uint64_t backend_errors;     /* populate, discard or share failed */
    uint64_t page_requests;      /* page requests processed */
    uint64_t pages_unplugged;    /* pages unplugged (UNPLUG_PAGES, MOVE) */
    uint64_t pages_plugged;      /* pages plugged back (PLUG_PAGES, MOVE) */
    uint64_t page_ranges_unplugged; /* ranges (order > 0) UNPLUG_PAGES took */
    uint64_t hint_requests;      /* hint requests processed */
    uint64_t hint_zero_accepted; /* zero hints whose page was zero */
    uint64_t hint_dup_accepted;  /* duplicate hints whose hash matched */
    uint64_t hint_rejected;      /* content not as stated, or not processed */
    uint64_t hint_errors;        /* hint requests answered ERROR */
    uint64_t mergeable_bytes;    /* bytes of hint chunks passed to share */
    uint64_t asks;               /* valid REQ_ASK requests */
    uint64_t asks_granted;       /* answered ACK */
    uint64_t reported_bytes;     /* bytes of free page reports discarded */
    uint64_t refused_reports;    /* free page report ranges ignored */
};

/* Block states, as dmm_block_state() summarises a block's sub-blocks. */
enum dmm_block_state {
    DMM_BLOCK_UNPLUGGED = 0, /* not backed; the guest must not touch */
    DMM_BLOCK_PLUGGED = 1,   /* backed on demand, guest's memory */
    DMM_BLOCK_PARTIAL = 2,   /* some of its sub-blocks plugged */
};

/* What a call changed (a mask of these; 0: nothing the VMM shows). */
#define DMM_CHANGED_REQUESTED (1u << 0) /* requested_size: tell the guest */
#define DMM_CHANGED_PLUGGED   (1u << 1) /* plugged_size */
#define DMM_CHANGED_UNPLUGGED (1u << 2) /* unplugged_size */

#define DMM_MIN_BLOCK_SIZE     (4096ULL)
/* Refuse regions with more blocks than this (keeps the state array small). */
#define DMM_MAX_BLOCKS         (1ULL << 24)
/* Keeps a block's sub-block states in one 64-bit word of a driver. */
#define DMM_MAX_SBS_PER_BLOCK  4096
/* The most addresses in one page request (max_pages in the config). */
#define DMM_MAX_PAGES_PER_REQ  1024
/* With pages, requested_size may go down to this (or boot_size if less). */
#define DMM_MIN_REQUESTED_SIZE (64ULL << 20)
/*
 * Hints make host memory mergeable in chunks of the specification's hint
 * range (2 MiB): every share may split a host mapping, and a process has
 * a limited number of them (Linux: vm.max_map_count, 65530 by default).
 * At most this many separate runs of shared chunks in boot RAM and in the
 * region each; a hint that would start another is rejected.
 */
#define DMM_HINT_CHUNK         ((uint64_t)VIRTIO_DMM_HINT_RANGE_SIZE)
#define DMM_MAX_HINT_RUNS      1024

/*
 * Check @p and allocate a device with every block unplugged and
 * requested_size equal to boot_size.  NULL on failure, with a message
 * naming the bad value in @err (NUL-terminated, may be NULL).
 */
struct dmm_dev *dmm_dev_new(const struct dmm_params *p,
                            const struct dmm_backend_ops *ops, void *opaque,
                            char *err, size_t errlen);
void dmm_dev_free(struct dmm_dev *d);

/*
 * Is @bs a valid block size: a power of two of at least @min and of
 * DMM_MIN_BLOCK_SIZE?  0, or -EINVAL with a message.  The one check, for
 * the VMM's options as well as dmm_dev_new().
 */
int dmm_check_block_size(uint64_t bs, uint64_t min, char *err, size_t errlen);

/*
 * Is @ms a valid stats_interval_ms: 0 (off) or within
 * VIRTIO_DMM_STATS_MIN_MS..VIRTIO_DMM_STATS_MAX_MS?  0, or -EINVAL.
 */
int dmm_check_stats_interval(uint32_t ms, char *err, size_t errlen);

/*
 * The features the driver negotiated (VIRTIO_DMM_F_* bits; 0 after a
 * reset).  Requests of features it did not negotiate are refused: hints
 * NACK (DUP hints ERROR), free page reports ignored.
 */
void dmm_set_features(struct dmm_dev *d, uint64_t features);

/*
 * How the device answers the guest's requests for memory: with
 * @auto_grant it grants up to @grant_limit (0: boot_size + region_size),
 * refuses more (offers back are always granted); without, it forwards
 * every request (BUSY) to the VMM's management layer.  @grant_limit must
 * be 0 or a valid requested_size: 0, or -EINVAL with a message.
 */
int dmm_set_grant_policy(struct dmm_dev *d, bool auto_grant,
                         uint64_t grant_limit, char *err, size_t errlen);

/*
 * Is @size a valid requested_size?  0, or -EINVAL with a message.  Without
 * pages it must be >= boot_size, <= boot_size + region_size, and
 * size - boot_size must be a multiple of block_size.  With pages it must be
 * a multiple of page_size between min(boot_size, DMM_MIN_REQUESTED_SIZE)
 * and boot_size + region_size.
 */
int dmm_check_requested_size(const struct dmm_dev *d, uint64_t size, char *err,
                             size_t errlen);
/* Check and set; changes nothing on failure. */
int dmm_set_requested_size(struct dmm_dev *d, uint64_t size, char *err,
                           size_t errlen);

/*
 * Process one request of the request virtqueue.  @req points at @req_len
 * bytes copied out of the guest's buffer; @resp receives the response
 * (always sizeof(struct virtio_dmm_resp) bytes).  Returns the DMM_CHANGED_*
 * flags of what changed, or -EINVAL if the request is malformed beyond a
 * response (too short): the VMM then treats it as a protocol violation
 * (QEMU: virtio_error()).
 */
int dmm_handle_request(struct dmm_dev *d, const void *req, size_t req_len,
                       struct virtio_dmm_resp *resp);

/* Process one page request (page virtqueue), as dmm_handle_request(). */
int dmm_handle_page_request(struct dmm_dev *d, const void *req, size_t req_len,
                            struct virtio_dmm_resp *resp);

/*
 * Process one hint request (hint virtqueue), as dmm_handle_request(): every
 * address is checked before any page is read; then each page's content is
 * compared with the hint (zero, or the XXH64 hash) and only the chunks of
 * pages found as stated are passed to ops->share.
 */
int dmm_handle_hint_request(struct dmm_dev *d, const void *req, size_t req_len,
                            struct virtio_dmm_resp *resp);

/* Where a range of a free page report lies. */
enum dmm_ram {
    DMM_RAM_NONE,   /* not guest RAM (device memory, ROM, ...) */
    DMM_RAM_BOOT,   /* boot RAM, offset in [0, boot_size) */
    DMM_RAM_REGION, /* the region, offset in [0, region_size) */
};

/*
 * The guest reports [offset, offset + len) of @ram free: discard it if the
 * feature was negotiated, discarding is allowed, the range is non-empty,
 * @align aligned (the host page size), inside boot RAM or plugged
 * sub-blocks of the region.  0, or -EINVAL (ignored, counted as refused).
 */
int dmm_report_free(struct dmm_dev *d, enum dmm_ram ram, uint64_t offset,
                    uint64_t len, uint64_t align);

/* XXH64 of @len bytes at @data with @seed (the hash of DUP hints). */
uint64_t dmm_xxh64(const void *data, size_t len, uint64_t seed);

/* --- what the VMM reads --- */

uint64_t dmm_requested_size(const struct dmm_dev *d);
uint64_t dmm_plugged_size(const struct dmm_dev *d);
/* Bytes of guest RAM unplugged as pages. */
uint64_t dmm_unplugged_size(const struct dmm_dev *d);
/* The guest's RAM now: boot_size + plugged_size - unplugged_size. */
uint64_t dmm_current_size(const struct dmm_dev *d);
/* Bytes plugged in blocks that are only partially plugged (sub-blocks). */
uint64_t dmm_partial_plugged_size(const struct dmm_dev *d);
/* The unit of state: sub_block_size, or block_size without sub-blocks. */
uint64_t dmm_sb_size(const struct dmm_dev *d);
/* The most the grant policy grants (grant_limit, or boot + region). */
uint64_t dmm_grant_limit(const struct dmm_dev *d);
bool dmm_auto_grant(const struct dmm_dev *d);
const struct dmm_counters *dmm_get_counters(const struct dmm_dev *d);
/* Summary state of @block, from its sub-blocks. */
enum dmm_block_state dmm_block_state(const struct dmm_dev *d, uint64_t block);
/*
 * Is any sub-block in [offset, offset + len) of the region plugged?
 * (A VMM that maps only plugged memory maps what holds one.)
 */
bool dmm_range_in_use(const struct dmm_dev *d, uint64_t offset, uint64_t len);
/*
 * Is [offset, offset + len) of the region non-empty and made only of
 * plugged sub-blocks?
 */
bool dmm_range_is_plugged(const struct dmm_dev *d, uint64_t offset,
                          uint64_t len);

/*
 * Call @fn for every run of sub-blocks that are all plugged (@plugged) or
 * all unplugged in [offset, offset + len) of the region, each clipped to
 * that range, in ascending order; stop at the first non-zero return of @fn
 * and return it.  Nothing is called for a range outside the region.
 */
typedef int (*dmm_range_fn)(void *opaque, uint64_t offset, uint64_t len);
int dmm_for_each_range(const struct dmm_dev *d, uint64_t offset, uint64_t len,
                       bool plugged, dmm_range_fn fn, void *opaque);

/*
 * What a VMM's listeners were told (a RamDiscardManager's, e.g. VFIO's): a
 * bitmap of dmm_told_bytes() bytes, zeroed, one bit per sub-block, that
 * the VMM keeps.  dmm_told_set() marks [offset, offset + len) as told
 * plugged or not (the VMM's populate does, for a plug its listeners took);
 * dmm_told_sync() brings the told bits of [offset, offset + len) to the
 * device's state, calling @discarded for each run told plugged that is not
 * any more (first), then @populated for each run plugged but not told
 * (an incoming migration's state).  Their return values are ignored.
 */
size_t dmm_told_bytes(const struct dmm_dev *d);
void dmm_told_set(const struct dmm_dev *d, uint8_t *told, uint64_t offset,
                  uint64_t len, bool plugged);
void dmm_told_sync(const struct dmm_dev *d, uint8_t *told, uint64_t offset,
                   uint64_t len, dmm_range_fn discarded, dmm_range_fn populated,
                   void *opaque);

/*
 * Machine reset: discard the region and mark every block unplugged and
 * every page plugged, even if the discard fails (then -EIO).  *@changed
 * receives the DMM_CHANGED_* flags.  The UNPLUG_ALL request instead
 * changes nothing when the discard fails.
 */
int dmm_unplug_all(struct dmm_dev *d, unsigned int *changed);

/* Fill @cfg as the guest sees it (little-endian; not stats_interval_ms). */
void dmm_fill_config(const struct dmm_dev *d, uint16_t node_id,
                     struct virtio_dmm_config *cfg);

/* --- migration --- */

/* Bytes of dmm_save()'s image of @d: fixed for a device's parameters. */
size_t dmm_state_size(const struct dmm_dev *d);
/* Write the device's state into @buf (dmm_state_size() bytes, LE). */
void dmm_save(const struct dmm_dev *d, uint8_t *buf);
/*
 * Take the state another device saved, after checking all of it: its
 * parameters must be ours, its bitmaps must have no bits past their end
 * and agree with each other and with its sizes.  Then the chunks hints
 * shared there are shared here (ops->share).  0, or -EINVAL with a
 * message, and nothing changed (a share that fails after the state was
 * taken: -EIO).
 */
int dmm_load(struct dmm_dev *d, const uint8_t *buf, size_t len, char *err,
             size_t errlen);
/*
 * After a load: discard every unplugged sub-block (they arrived as zero
 * pages).  0 or the first -errno of ops->discard.
 */
int dmm_discard_unplugged(struct dmm_dev *d);

#endif /* DMM_DEV_H */
