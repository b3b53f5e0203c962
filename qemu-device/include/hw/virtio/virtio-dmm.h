/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * virtio-dmm: dynamic memory device
 */

#ifndef HW_VIRTIO_DMM_H
#define HW_VIRTIO_DMM_H

#include "hw/resettable.h"
#include "hw/virtio/virtio.h"
#include "qapi/qapi-types-misc.h"
#include "qapi/qapi-types-machine.h"
#include "system/hostmem.h"
#include "qom/object.h"
#include "standard-headers/linux/virtio_dmm.h"

#define TYPE_VIRTIO_DMM "virtio-dmm"

OBJECT_DECLARE_TYPE(VirtIODMM, VirtIODMMClass, VIRTIO_DMM)

#define VIRTIO_DMM_MEMDEV_PROP          "memdev"
#define VIRTIO_DMM_NODE_PROP            "node"
#define VIRTIO_DMM_BOOT_RAM_PROP        "boot-ram"
#define VIRTIO_DMM_ADDR_PROP            "memaddr"
#define VIRTIO_DMM_BLOCK_SIZE_PROP      "block-size"
/*
 * Names virtio-mem has mean what they mean there: the device's share, the
 * memory of its region.  The guest's total RAM has names of its own.
 */
#define VIRTIO_DMM_SIZE_PROP            "size"
#define VIRTIO_DMM_REQUESTED_SIZE_PROP  "requested-size"
#define VIRTIO_DMM_GUEST_SIZE_PROP      "guest-size"
#define VIRTIO_DMM_REQUESTED_GUEST_SIZE_PROP "requested-guest-size"
#define VIRTIO_DMM_BOOT_SIZE_PROP       "boot-size"
#define VIRTIO_DMM_FPR_PROP             "free-page-reporting"
#define VIRTIO_DMM_PAGES_PROP           "pages"
#define VIRTIO_DMM_PREALLOC_PROP        "prealloc"
#define VIRTIO_DMM_SUB_BLOCKS_PROP      "sub-blocks"
#define VIRTIO_DMM_UNPLUGGED_SIZE_PROP  "unplugged-size"
#define VIRTIO_DMM_HINTS_PROP           "hints"
#define VIRTIO_DMM_STATS_PROP           "stats"
#define VIRTIO_DMM_STATS_INTERVAL_PROP  "stats-interval"
#define VIRTIO_DMM_AUTO_GRANT_PROP      "auto-grant"
#define VIRTIO_DMM_AUTO_GRANT_LIMIT_PROP "auto-grant-limit"
#define VIRTIO_DMM_GUEST_STATS_PROP     "guest-stats"
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

    /*
     * Features offered (the device always has all five virtqueues, at
     * their fixed indices): free page reporting, sub-block and page
     * requests, shared-page hints (the property; whether offered).
     */
    bool free_page_reporting;
    bool sub_blocks;
    bool pages;
    OnOffAuto hints_prop;
    bool hints;
    /*
     * Duplicate hints (F_HINTS_DUP): pages merged across guests can be
     * probed by copy-on-write timing, so they are the operator's choice.
     */
    bool dup_hints;

    /* memory statistics and requests (F_STATS): offered */
    bool stats;
    /* ms between the guest's reports (0: off); QOM read-write, migrated */
    uint32_t stats_interval;
    /* the grant policy, the library's once realized: up to the limit */
    bool auto_grant;
    uint64_t auto_grant_limit;
    /* the latest two reports, as the guest sent them, and when */
    bool have_stats;
    struct virtio_dmm_stats last_stats, prev_stats;
    int64_t last_stats_ms, prev_stats_ms;
    /* when the latest report arrived, in seconds since the epoch */
    int64_t last_stats_wall;

    /* the region's backend; set by the user, mapped while realized */
    HostMemoryBackend *memdev;
    /*
     * Back plugged memory at the plug, not at the guest's first touch, so
     * that running out (a hugetlbfs pool) refuses the plug (NACK) instead
     * of killing QEMU with SIGBUS; a failure is reported once.
     */
    bool prealloc;
    bool prealloc_warned;
    /* NUMA node of the region */
    uint32_t node;
    /*
     * Does this device count the machine's boot RAM (boot-size, the guest
     * sizes) and may it give it back (pages)?  At most one device per
     * machine does; with several devices (one per NUMA node) the others
     * count only their region, as virtio-mem does.
     */
    bool boot_ram;
    /* guest-physical address of the region, assigned by the machine */
    uint64_t addr;
    /* unit of plug and unplug */
    uint64_t block_size;
    /*
     * The guest's target total RAM given on the command line, before
     * realize, as requested-guest-size or as requested-size (then boot
     * size + the value); UINT64_MAX: not given.
     */
    uint64_t initial_requested_guest_size;
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

    /*
     * RamDiscardManager over the memdev: the listeners (VFIO), and what
     * they were told is populated (dmm_told_*(), a bit per sub-block);
     * BQL.  uncoordinated: realize required discards nobody is told of
     * (pages, free page reports, hints), so nothing may disable
     * discarding (VFIO).
     */
    QLIST_HEAD(, RamDiscardListener) rdl_list;
    uint8_t *rdm_told;
    bool uncoordinated;

    /* the device logic, opaque (hw/virtio/dmm/dmm_dev.h) */
    struct dmm_dev *dmm;

    /*
     * Migration: the library's image (dmm_save(), dmm_load()), of mig_len
     * bytes, and the stats interval; valid in pre_save/post_load.
     */
    uint32_t mig_len;
    uint8_t *mig_buf;
    uint32_t mig_stats_interval;

    /* unplugs everything on machine reset (not on device reset) */
    VirtIODMMSystemReset *system_reset;

    /* notified with a uint64_t * of the new plugged size */
    NotifierList size_change_notifiers;
    /* the plugged and unplugged sizes the last size event said */
    uint64_t event_plugged_size;
    uint64_t event_unplugged_size;
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
