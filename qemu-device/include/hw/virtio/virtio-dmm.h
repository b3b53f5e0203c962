/*
 * virtio-dmm: dynamic memory device
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#ifndef HW_VIRTIO_DMM_H
#define HW_VIRTIO_DMM_H

#include "hw/resettable.h"
#include "hw/virtio/virtio.h"
#include "qapi/qapi-types-misc.h"
#include "qapi/qapi-types-machine.h"
#include "system/hostmem.h"
#include "qom/object.h"
#include <linux/virtio_dmm.h>

#define TYPE_VIRTIO_DMM "virtio-dmm"

OBJECT_DECLARE_TYPE(VirtIODMM, VirtIODMMClass, VIRTIO_DMM)

#define VIRTIO_DMM_MEMDEV_PROP          "memdev"
#define VIRTIO_DMM_NODE_PROP            "node"
#define VIRTIO_DMM_ADDR_PROP            "memaddr"
#define VIRTIO_DMM_BLOCK_SIZE_PROP      "block-size"
#define VIRTIO_DMM_REQUESTED_SIZE_PROP  "requested-size"
#define VIRTIO_DMM_PLUGGED_SIZE_PROP    "plugged-size"
#define VIRTIO_DMM_BOOT_SIZE_PROP       "boot-size"
#define VIRTIO_DMM_FPR_PROP             "free-page-reporting"
#define VIRTIO_DMM_REPORTED_PROP        "reported-size"
#define VIRTIO_DMM_REFUSED_PROP         "refused-reports"
#define VIRTIO_DMM_PAGES_PROP           "pages"
#define VIRTIO_DMM_SUB_BLOCKS_PROP      "sub-blocks"
#define VIRTIO_DMM_PARTIAL_SIZE_PROP    "sub-block-plugged-size"
#define VIRTIO_DMM_UNPLUGGED_SIZE_PROP  "unplugged-size"
#define VIRTIO_DMM_SIZE_PROP            "size"
#define VIRTIO_DMM_HINTS_PROP           "hints"
#define VIRTIO_DMM_HINTS_ZERO_PROP      "hints-zero"
#define VIRTIO_DMM_HINTS_DUP_PROP       "hints-dup"
#define VIRTIO_DMM_HINTS_REJECTED_PROP  "hints-rejected"
#define VIRTIO_DMM_HINT_ERRORS_PROP     "hint-errors"
#define VIRTIO_DMM_MERGEABLE_PROP       "hint-mergeable-size"
#define VIRTIO_DMM_SHARED_PROP          "shared-size"
#define VIRTIO_DMM_ZERO_SIZE_PROP       "zero-size"
#define VIRTIO_DMM_STATS_PROP           "stats"
#define VIRTIO_DMM_STATS_INTERVAL_PROP  "stats-interval"
#define VIRTIO_DMM_AUTO_GRANT_PROP      "auto-grant"
#define VIRTIO_DMM_MAX_SIZE_PROP        "max-size"
#define VIRTIO_DMM_DUP_HINTS_PROP       "dup-hints"

#define TYPE_VIRTIO_DMM_SYSTEM_RESET "virtio-dmm-system-reset"

OBJECT_DECLARE_SIMPLE_TYPE(VirtIODMMSystemReset, VIRTIO_DMM_SYSTEM_RESET)

struct dmm_dev;

/* Resets with the machine only, never with the device. */
struct VirtIODMMSystemReset {
    Object parent;

    ResettableState reset_state;
    VirtIODMM *vdmm;
};

struct VirtIODMM {
    VirtIODevice parent_obj;

    /* the request virtqueue */
    VirtQueue *vq;
    /* free page reporting: offered to the guest, and its virtqueue */
    bool free_page_reporting;
    VirtQueue *report_vq;
    /* sub-block requests offered to the guest */
    bool sub_blocks;
    /* page requests: offered to the guest, and their virtqueue */
    bool pages;
    VirtQueue *page_vq;
    /* bytes of reported free pages discarded */
    uint64_t reported_bytes;
    /* reported ranges ignored: not guest RAM, unplugged, or no discard */
    uint64_t refused_reports;
    /* shared-page hints: the property, whether offered, their virtqueue */
    OnOffAuto hints_prop;
    bool hints;
    VirtQueue *hint_vq;
    /*
     * Host chunks (VIRTIO_DMM_HINT_CHUNK) made mergeable because a hint
     * held: one bit per chunk of boot RAM and of the region.  Host state
     * only, migrated so that the destination shares the same memory.
     */
    uint8_t *hint_chunks[2];            /* [0] region, [1] boot RAM */
    uint32_t hint_chunks_len[2];        /* bytes of each bitmap */
    /* separate runs of set bits in each bitmap: bounds the host's VMAs */
    uint32_t hint_runs[2];
    uint64_t mergeable_bytes;
    /*
     * Duplicate hints (F_HINTS_DUP): pages merged across guests can be
     * probed by copy-on-write timing, so they are the operator's choice.
     */
    bool dup_hints;

    /* memory statistics and requests (F_STATS): offered, their queue */
    bool stats;
    VirtQueue *stats_vq;
    /* ms between the guest's reports (0: off); QOM read-write, migrated */
    uint32_t stats_interval;
    /* grant the guest's requests up to max_size (0: boot + region) */
    bool auto_grant;
    uint64_t max_size;
    /* the latest two reports, as the guest sent them, and when */
    bool have_stats;
    struct virtio_dmm_stats last_stats, prev_stats;
    int64_t last_stats_ms, prev_stats_ms;

    /* the region's backend; set by the user, mapped while realized */
    HostMemoryBackend *memdev;
    /* NUMA node of the region */
    uint32_t node;
    /* guest-physical address of the region, assigned by the machine */
    uint64_t addr;
    /* unit of plug and unplug */
    uint64_t block_size;
    /* requested-size given on the command line, before realize */
    uint64_t initial_requested_size;

    /*
     * What the guest can reach of the region: a container with one alias
     * of the memdev per memslot, mapped while any block in it is plugged
     * (partially plugged blocks included), so that unplugged blocks are
     * not guest memory at all (KVM: no memslot; TCG: unassigned).
     * memslot_size is a multiple of block_size; decided before realize.
     */
    MemoryRegion *mr;
    MemoryRegion *memslots;
    uint32_t nb_memslots;
    uint64_t memslot_size;
    /* off: one memslot, always mapped (for comparisons only) */
    bool x_dynamic_memslots;

    /* device logic: block states and sizes (hw/virtio/dmm/dmm_dev.h) */
    struct dmm_dev *dmm;

    /*
     * Migration: copies of dmm's state, valid in pre_save/post_load.  A
     * stream is loaded into these buffers and checked before dmm takes it,
     * so a bad stream changes nothing.
     */
    uint64_t mig_block_size;
    uint64_t mig_addr;
    uint64_t mig_region_size;
    uint32_t mig_stats_interval;
    bool mig_have_sbs;
    uint32_t mig_nb_blocks;
    uint8_t *mig_state;
    uint64_t mig_requested_size;
    uint64_t mig_plugged_size;
    uint32_t mig_boot_bitmap_len;
    uint32_t mig_region_bitmap_len;
    uint8_t *mig_boot_pages;
    uint8_t *mig_region_pages;
    uint64_t mig_unplugged_size;
    uint32_t mig_sb_bitmap_len;
    uint8_t *mig_sb_plugged;

    /* unplugs everything on machine reset (not on device reset) */
    VirtIODMMSystemReset *system_reset;

    /* notified with a uint64_t * of the new plugged size */
    NotifierList size_change_notifiers;
};

struct VirtIODMMClass {
    /* private */
    VirtioDeviceClass parent_class;

    /* public */
    void (*fill_device_info)(const VirtIODMM *vdmm, VirtioDMMDeviceInfo *vi);
    MemoryRegion *(*get_memory_region)(VirtIODMM *vdmm, Error **errp);
    void (*add_size_change_notifier)(VirtIODMM *vdmm, Notifier *notifier);
    void (*unplug_request_check)(VirtIODMM *vdmm, Error **errp);
    void (*decide_memslots)(VirtIODMM *vdmm, unsigned int limit);
    unsigned int (*get_memslots)(VirtIODMM *vdmm);
};

#endif
