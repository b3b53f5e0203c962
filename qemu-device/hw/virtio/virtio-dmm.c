/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * virtio-dmm: dynamic memory device
 *
 * The guest plugs and unplugs blocks of a device-owned region, and single
 * pages of any of its RAM, until its RAM matches requested-size.  The
 * device logic (block and page states, request validation, size
 * accounting, the grant policy, hint chunks, the migration image) is the
 * portable library in dmm/; this file is the QEMU glue: properties, the
 * virtqueues, what the library asks of its VMM (discards, sharing, whether
 * state may change now), memslots, reset, migration and the memory-device
 * hooks.  The library is opaque: this file only calls it.
 */

#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/units.h"
#include "qemu/madvise.h"
#include "system/numa.h"
#include "system/reset.h"
#include "system/system.h"
#include "system/runstate.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-dmm.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "exec/address-spaces.h"
#include "exec/ram_addr.h"
#include "migration/misc.h"
#include "migration/vmstate.h"
#include "qapi/qapi-events-machine.h"
#include "qapi/qapi-visit-machine.h"
#include "qemu/timer.h"
#include "hw/boards.h"
#include "hw/qdev-properties.h"
#include "hw/resettable.h"
#include "trace.h"
#include "dmm/dmm_dev.h"

#define VIRTIO_DMM_DEFAULT_BLOCK_SIZE   (128 * MiB)
/* Sub-blocks are 2 MiB, the pageblock size of x86-64 Linux guests. */
#define VIRTIO_DMM_SUB_BLOCK_SIZE       (2 * MiB)
#define VIRTIO_DMM_MIN_BLOCK_SIZE       VIRTIO_DMM_SUB_BLOCK_SIZE
#define VIRTIO_DMM_STATS_DEFAULT_MS     1000
/* Guest pages of page requests; also the host page size they need. */
#define VIRTIO_DMM_PAGE_SIZE            4096

/* The wire format, as the specification lays it out. */
QEMU_BUILD_BUG_ON(sizeof(struct virtio_dmm_req) != 24);
QEMU_BUILD_BUG_ON(sizeof(struct virtio_dmm_resp) != 16);
QEMU_BUILD_BUG_ON(sizeof(struct virtio_dmm_config) != 88);
QEMU_BUILD_BUG_ON(offsetof(struct virtio_dmm_config, page_size) != 56);
QEMU_BUILD_BUG_ON(offsetof(struct virtio_dmm_config, stats_interval_ms) != 80);
QEMU_BUILD_BUG_ON(sizeof(struct virtio_dmm_stats) != 112);
QEMU_BUILD_BUG_ON(sizeof(struct virtio_dmm_page_req) != 8);
QEMU_BUILD_BUG_ON(sizeof(struct virtio_dmm_hint_req) != 8);
QEMU_BUILD_BUG_ON(sizeof(struct virtio_dmm_hint) != 16);

/* --- RamDiscardManager: listeners see plugged sub-blocks only --- */

/* Clip @s to [offset, offset + len) of the region; false if none is left. */
static bool virtio_dmm_intersect(MemoryRegionSection *s, uint64_t offset,
                                 uint64_t len)
{
    uint64_t start = MAX(s->offset_within_region, offset);
    uint64_t end = MIN(s->offset_within_region + int128_get64(s->size),
                       offset + len);

    if (end <= start) {
        return false;
    }
    s->offset_within_address_space += start - s->offset_within_region;
    s->offset_within_region = start;
    s->size = int128_make64(end - start);
    return true;
}

static void virtio_dmm_notify_discard(VirtIODMM *vdmm, uint64_t offset,
                                      uint64_t len)
{
    RamDiscardListener *rdl;

    QLIST_FOREACH(rdl, &vdmm->rdl_list, next) {
        MemoryRegionSection s = *rdl->section;

        if (virtio_dmm_intersect(&s, offset, len)) {
            rdl->notify_discard(rdl, &s);
        }
    }
}

/*
 * A listener may refuse (VFIO: the DMA mapping failed); then the ones told
 * before it are told the range is gone again, and the plug fails.
 */
static int virtio_dmm_notify_populate(VirtIODMM *vdmm, uint64_t offset,
                                      uint64_t len)
{
    RamDiscardListener *rdl, *told;
    int ret = 0;

    QLIST_FOREACH(rdl, &vdmm->rdl_list, next) {
        MemoryRegionSection s = *rdl->section;

        if (virtio_dmm_intersect(&s, offset, len)) {
            ret = rdl->notify_populate(rdl, &s);
            if (ret) {
                break;
            }
        }
    }
    if (!ret) {
        return 0;
    }
    QLIST_FOREACH(told, &vdmm->rdl_list, next) {
        MemoryRegionSection s = *told->section;

        if (told == rdl) {
            break;
        }
        if (virtio_dmm_intersect(&s, offset, len)) {
            told->notify_discard(told, &s);
        }
    }
    return ret;
}

/* Unplugged now: tell the listeners (dmm_told_sync). */
static int virtio_dmm_told_discarded(void *opaque, uint64_t offset,
                                     uint64_t len)
{
    virtio_dmm_notify_discard(opaque, offset, len);
    return 0;
}

/*
 * Plugged now without a populate (an incoming migration's state): tell the
 * listeners.  Nothing can be undone here, so a refusal is reported.
 */
static int virtio_dmm_told_populated(void *opaque, uint64_t offset,
                                     uint64_t len)
{
    int ret = virtio_dmm_notify_populate(opaque, offset, len);

    if (ret) {
        error_report("virtio-dmm: a RAM discard listener refused plugged"
                     " memory at offset 0x%" PRIx64 ": %s", offset,
                     strerror(-ret));
    }
    return 0;
}

/*
 * The state of [offset, offset + len) changed: bring the listeners to it.
 * Plugs were told by populate; unplugs, a reset and an incoming state are
 * told here, after the library changed the state and before the memslots
 * change (the listener of a memslot that is unmapped goes away, one of a
 * newly mapped memslot replays the state when it registers).  The library
 * keeps the bookkeeping (unit test "a fake listener told every change
 * once").
 */
static void virtio_dmm_tell_listeners(VirtIODMM *vdmm, uint64_t offset,
                                      uint64_t len)
{
    dmm_told_sync(vdmm->dmm, vdmm->rdm_told, offset, len,
                  virtio_dmm_told_discarded, virtio_dmm_told_populated, vdmm);
}

struct VirtIODMMReplay {
    const MemoryRegionSection *section;
    ReplayRamPopulate populated;
    ReplayRamDiscard discarded;
    void *opaque;
};

static int virtio_dmm_replay_cb(void *opaque, uint64_t offset, uint64_t len)
{
    struct VirtIODMMReplay *r = opaque;
    MemoryRegionSection s = *r->section;

    if (!virtio_dmm_intersect(&s, offset, len)) {
        return 0;
    }
    if (r->discarded) {
        r->discarded(&s, r->opaque);
        return 0;
    }
    return r->populated(&s, r->opaque);
}

/*
 * Call @populated for each plugged part of @s, or @discarded for each
 * unplugged part; the first error of @populated ends the walk.
 */
static int virtio_dmm_replay(const VirtIODMM *vdmm,
                             const MemoryRegionSection *s,
                             ReplayRamPopulate populated,
                             ReplayRamDiscard discarded, void *opaque)
{
    struct VirtIODMMReplay r = {
        .section = s,
        .populated = populated,
        .discarded = discarded,
        .opaque = opaque,
    };

    g_assert(s->mr == &vdmm->memdev->mr);
    return dmm_for_each_range(vdmm->dmm, s->offset_within_region,
                              int128_get64(s->size), !discarded,
                              virtio_dmm_replay_cb, &r);
}

static uint64_t virtio_dmm_rdm_get_min_granularity(const RamDiscardManager *rdm,
                                                   const MemoryRegion *mr)
{
    const VirtIODMM *vdmm = VIRTIO_DMM(rdm);

    g_assert(mr == &vdmm->memdev->mr);
    return dmm_sb_size(vdmm->dmm);
}

static bool virtio_dmm_rdm_is_populated(const RamDiscardManager *rdm,
                                        const MemoryRegionSection *s)
{
    const VirtIODMM *vdmm = VIRTIO_DMM(rdm);

    g_assert(s->mr == &vdmm->memdev->mr);
    return dmm_range_is_plugged(vdmm->dmm, s->offset_within_region,
                                int128_get64(s->size));
}

static int virtio_dmm_rdm_replay_populated(const RamDiscardManager *rdm,
                                           MemoryRegionSection *s,
                                           ReplayRamPopulate replay_fn,
                                           void *opaque)
{
    return virtio_dmm_replay(VIRTIO_DMM(rdm), s, replay_fn, NULL, opaque);
}

static void virtio_dmm_rdm_replay_discarded(const RamDiscardManager *rdm,
                                            MemoryRegionSection *s,
                                            ReplayRamDiscard replay_fn,
                                            void *opaque)
{
    virtio_dmm_replay(VIRTIO_DMM(rdm), s, NULL, replay_fn, opaque);
}

static int virtio_dmm_listener_populate(MemoryRegionSection *s, void *opaque)
{
    RamDiscardListener *rdl = opaque;

    return rdl->notify_populate(rdl, s);
}

static int virtio_dmm_listener_discard(MemoryRegionSection *s, void *opaque)
{
    RamDiscardListener *rdl = opaque;

    rdl->notify_discard(rdl, s);
    return 0;
}

static void virtio_dmm_rdm_register_listener(RamDiscardManager *rdm,
                                             RamDiscardListener *rdl,
                                             MemoryRegionSection *s)
{
    VirtIODMM *vdmm = VIRTIO_DMM(rdm);
    int ret;

    g_assert(s->mr == &vdmm->memdev->mr);
    rdl->section = memory_region_section_new_copy(s);
    QLIST_INSERT_HEAD(&vdmm->rdl_list, rdl, next);
    ret = virtio_dmm_replay(vdmm, rdl->section,
                            virtio_dmm_listener_populate, NULL, rdl);
    if (ret) {
        error_report("virtio-dmm: replaying plugged memory to a RAM discard"
                     " listener failed: %s", strerror(-ret));
    }
}

/* A listener that goes is told its plugged memory is gone (as virtio-mem). */
static void virtio_dmm_rdm_unregister_listener(RamDiscardManager *rdm,
                                               RamDiscardListener *rdl)
{
    VirtIODMM *vdmm = VIRTIO_DMM(rdm);

    g_assert(rdl->section->mr == &vdmm->memdev->mr);
    if (rdl->double_discard_supported) {
        rdl->notify_discard(rdl, rdl->section);
    } else {
        virtio_dmm_replay(vdmm, rdl->section, virtio_dmm_listener_discard,
                          NULL, rdl);
    }
    memory_region_section_free_copy(rdl->section);
    rdl->section = NULL;
    QLIST_REMOVE(rdl, next);
}

/* --- backend of the device library --- */

static RAMBlock *virtio_dmm_rb(VirtIODMM *vdmm)
{
    return vdmm->memdev->mr.ram_block;
}

/*
 * prealloc=on: back [offset, offset + len) of the region now.  A host that
 * cannot (a hugetlbfs pool run dry) refuses the plug cleanly here; without
 * it, the guest's first touch would kill QEMU with SIGBUS.
 */
static int virtio_dmm_prealloc(void *opaque, uint64_t offset, uint64_t len)
{
    VirtIODMM *vdmm = opaque;
    MemoryRegion *mr = &vdmm->memdev->mr;
    char *area = (char *)memory_region_get_ram_ptr(mr) + offset;
    Error *local_err = NULL;

    if (qemu_prealloc_mem(memory_region_get_fd(mr), area, len, 1, NULL,
                          false, &local_err)) {
        return 0;
    }
    trace_virtio_dmm_prealloc_failed(offset, len);
    if (!vdmm->prealloc_warned) {
        error_prepend(&local_err, "virtio-dmm: cannot back plugged memory"
                      " (reported once): ");
        warn_report_err(local_err);
        vdmm->prealloc_warned = true;
    } else {
        error_free(local_err);
    }
    return -ENOMEM;
}

/*
 * Listeners learn of a plug before the guest does, and can fail it: the
 * library asks us to populate before it marks the sub-blocks plugged.
 * The memory itself is backed lazily, on the guest's first touch, unless
 * prealloc=on (then -ENOMEM: the library answers NACK).
 */
static int virtio_dmm_populate(void *opaque, uint64_t offset, uint64_t len)
{
    VirtIODMM *vdmm = opaque;
    int ret;

    if (vdmm->prealloc) {
        ret = virtio_dmm_prealloc(vdmm, offset, len);
        if (ret) {
            return ret;
        }
    }
    ret = virtio_dmm_notify_populate(vdmm, offset, len);
    if (ret) {
        return ret;
    }
    dmm_told_set(vdmm->dmm, vdmm->rdm_told, offset, len, true);
    return 0;
}

static int virtio_dmm_discard(void *opaque, uint64_t offset, uint64_t len)
{
    VirtIODMM *vdmm = opaque;

    return ram_block_discard_range(virtio_dmm_rb(vdmm), offset, len);
}

/* --- what the guest can reach: memslots over plugged blocks --- */

static uint64_t virtio_dmm_region_size(VirtIODMM *vdmm)
{
    return memory_region_size(&vdmm->memdev->mr);
}

/*
 * The boot RAM this device counts: the machine's RAM (-m), guest RAM
 * outside the region, or 0 with boot-ram=off.
 */
static uint64_t virtio_dmm_boot_size(const VirtIODMM *vdmm)
{
    return vdmm->boot_ram ? MACHINE(qdev_get_machine())->ram_size : 0;
}

/*
 * The region memory the guest is asked to plug (virtio-mem's
 * requested-size): the target total beyond the boot size, 0 below it.
 */
static uint64_t virtio_dmm_requested_region_size(const VirtIODMM *vdmm)
{
    uint64_t target = dmm_requested_size(vdmm->dmm);
    uint64_t boot = virtio_dmm_boot_size(vdmm);

    return target > boot ? target - boot : 0;
}

/* The container the machine maps; created on first use (pre-plug). */
static void virtio_dmm_prepare_mr(VirtIODMM *vdmm)
{
    vdmm->mr = g_new0(MemoryRegion, 1);
    memory_region_init(vdmm->mr, OBJECT(vdmm), "virtio-dmm",
                       virtio_dmm_region_size(vdmm));
    vdmm->mr->align = memory_region_get_alignment(&vdmm->memdev->mr);
}

static void virtio_dmm_prepare_memslots(VirtIODMM *vdmm)
{
    uint64_t region_size = virtio_dmm_region_size(vdmm);
    unsigned int i;

    if (!vdmm->nb_memslots || !vdmm->memslot_size) {
        vdmm->nb_memslots = 1;
        vdmm->memslot_size = region_size;
    }
    vdmm->memslots = g_new0(MemoryRegion, vdmm->nb_memslots);
    for (i = 0; i < vdmm->nb_memslots; i++) {
        uint64_t offset = i * vdmm->memslot_size;
        g_autofree char *name = g_strdup_printf("memslot-%u", i);

        memory_region_init_alias(&vdmm->memslots[i], OBJECT(vdmm), name,
                                 &vdmm->memdev->mr, offset,
                                 MIN(vdmm->memslot_size,
                                     region_size - offset));
        /* one memslot in and out without touching its neighbours */
        memory_region_set_unmergeable(&vdmm->memslots[i], true);
    }
}

/* Does memslot @i hold a block with any sub-block plugged? */
static bool virtio_dmm_memslot_in_use(VirtIODMM *vdmm, unsigned int i)
{
    uint64_t offset = i * vdmm->memslot_size;

    if (!vdmm->x_dynamic_memslots) {
        return true;
    }
    return dmm_range_in_use(vdmm->dmm, offset,
                            MIN(vdmm->memslot_size,
                                virtio_dmm_region_size(vdmm) - offset));
}

/*
 * Map the memslots over [offset, offset + len) of the region that hold
 * plugged memory, unmap the others, in one transaction.  Called whenever
 * the device's state changes and before the guest hears of it: a plugged
 * block is there when the guest is told, an unplugged one is gone.
 */
static void virtio_dmm_update_memslots(VirtIODMM *vdmm, uint64_t offset,
                                       uint64_t len)
{
    unsigned int i, first, last;

    if (!len || !vdmm->memslots) {
        return;
    }
    first = offset / vdmm->memslot_size;
    last = MIN((offset + len - 1) / vdmm->memslot_size,
               vdmm->nb_memslots - 1);
    memory_region_transaction_begin();
    for (i = first; i <= last; i++) {
        MemoryRegion *slot = &vdmm->memslots[i];
        bool in_use = virtio_dmm_memslot_in_use(vdmm, i);

        if (in_use && !memory_region_is_mapped(slot)) {
            memory_region_add_subregion(vdmm->mr, i * vdmm->memslot_size,
                                        slot);
        } else if (!in_use && memory_region_is_mapped(slot)) {
            memory_region_del_subregion(vdmm->mr, slot);
        }
    }
    memory_region_transaction_commit();
}

static void virtio_dmm_state_changed(void *opaque, uint64_t offset,
                                     uint64_t len)
{
    virtio_dmm_tell_listeners(opaque, offset, len);
    virtio_dmm_update_memslots(opaque, offset, len);
}

/*
 * --- boot RAM ---
 *
 * Boot RAM is the machine's RAM (ms->ram): one memory backend, or, with
 * "-numa node,memdev=...", a container of one backend per node, each at
 * its offset.  The library names boot RAM by offsets in ms->ram.
 */

/* Is @mr boot RAM (the backend or one of the container's)? */
static bool virtio_dmm_is_boot_mr(const MemoryRegion *mr)
{
    MachineState *ms = MACHINE(qdev_get_machine());

    return ms->ram && mr->ram_block &&
           (mr == ms->ram || mr->container == ms->ram);
}

/*
 * The RAM block at boot offset @offset, with the offset in it and the
 * bytes from there to its end; NULL past the boot RAM.
 */
static RAMBlock *virtio_dmm_boot_rb(uint64_t offset, uint64_t *rb_offset,
                                    uint64_t *left)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    MemoryRegion *sub;
    uint64_t base = 0;

    if (!ms->ram) {
        return NULL;
    }
    if (ms->ram->ram_block) {
        sub = ms->ram;
    } else {
        QTAILQ_FOREACH(sub, &ms->ram->subregions, subregions_link) {
            if (sub->ram_block && offset >= sub->addr &&
                offset - sub->addr < memory_region_size(sub)) {
                break;
            }
        }
        if (!sub) {
            return NULL;
        }
        base = sub->addr;
    }
    if (offset - base >= memory_region_size(sub)) {
        return NULL;
    }
    *rb_offset = offset - base;
    *left = memory_region_size(sub) - *rb_offset;
    return sub->ram_block;
}

/*
 * Call @fn for each RAM block piece of boot RAM [offset, offset + len);
 * -EINVAL if part of it is no boot RAM.
 */
static int virtio_dmm_for_each_boot_rb(uint64_t offset, uint64_t len,
                                       int (*fn)(RAMBlock *rb, uint64_t off,
                                                 uint64_t len))
{
    uint64_t off, left, n;
    RAMBlock *rb;
    int ret;

    while (len) {
        rb = virtio_dmm_boot_rb(offset, &off, &left);
        if (!rb) {
            return -EINVAL;
        }
        n = MIN(len, left);
        ret = fn(rb, off, n);
        if (ret) {
            return ret;
        }
        offset += n;
        len -= n;
    }
    return 0;
}

/* Does every backend of boot RAM pass @ok? */
static bool virtio_dmm_boot_rbs_all(bool (*ok)(RAMBlock *rb))
{
    MachineState *ms = MACHINE(qdev_get_machine());
    MemoryRegion *sub;

    if (ms->ram->ram_block) {
        return ok(ms->ram->ram_block);
    }
    QTAILQ_FOREACH(sub, &ms->ram->subregions, subregions_link) {
        if (!sub->ram_block || !ok(sub->ram_block)) {
            return false;
        }
    }
    return true;
}

/*
 * Page requests name guest-physical addresses; boot RAM is mapped
 * (through aliases) wherever the board put it.
 */
static int virtio_dmm_boot_range(void *opaque, uint64_t gpa, uint64_t len,
                                 uint64_t *offset)
{
    MemoryRegionSection section;
    int ret = -1;

    section = memory_region_find(get_system_memory(), gpa, len);
    if (!section.mr) {
        return -1;
    }
    if (virtio_dmm_is_boot_mr(section.mr) &&
        int128_get64(section.size) == len) {
        *offset = section.offset_within_region +
                  (section.mr->container ? section.mr->addr : 0);
        ret = 0;
    }
    memory_region_unref(section.mr);
    return ret;
}

static int virtio_dmm_discard_rb(RAMBlock *rb, uint64_t offset, uint64_t len)
{
    return ram_block_discard_range(rb, offset, len);
}

static int virtio_dmm_discard_boot(void *opaque, uint64_t offset, uint64_t len)
{
    return virtio_dmm_for_each_boot_rb(offset, len, virtio_dmm_discard_rb);
}

/*
 * The host address of [offset, offset + len) of boot RAM (@boot) or of the
 * region, if it lies in one RAM block; else NULL.
 */
static void *virtio_dmm_host(VirtIODMM *vdmm, bool boot, uint64_t offset,
                             uint64_t len)
{
    RAMBlock *rb = virtio_dmm_rb(vdmm);
    uint64_t left = qemu_ram_get_used_length(rb);

    if (boot) {
        rb = virtio_dmm_boot_rb(offset, &offset, &left);
    } else if (offset >= left) {
        return NULL;
    } else {
        left -= offset;
    }
    if (!rb || len > left) {
        return NULL;
    }
    return (uint8_t *)qemu_ram_get_host_addr(rb) + offset;
}

static const void *virtio_dmm_page_ptr(void *opaque, bool boot,
                                       uint64_t offset)
{
    return virtio_dmm_host(opaque, boot, offset, VIRTIO_DMM_HINT_PAGE_SIZE);
}

/*
 * Make a chunk of boot RAM or of the region mergeable (the library calls
 * this once per chunk, and bounds how many separate runs there are).
 * Boot RAM and the region start 2 MiB aligned in guest-physical space, so
 * chunks of their RAM blocks are the guest's aligned ranges.
 */
static int virtio_dmm_share(void *opaque, bool boot, uint64_t offset,
                            uint64_t len)
{
    void *host = virtio_dmm_host(opaque, boot, offset, len);

    if (!host) {
        return -EINVAL;
    }
    /*
     * KSM write-protects a page, compares it and only then maps it shared
     * (or to the zero page), so a guest write never gets lost; one write
     * later breaks the sharing by copy on write.
     */
    if (qemu_madvise(host, len, QEMU_MADV_MERGEABLE)) {
        return -errno;
    }
    /* keep khugepaged from collapsing what KSM has split and merged */
    qemu_madvise(host, len, QEMU_MADV_NOHUGEPAGE);
    trace_virtio_dmm_hint_chunk(boot, offset, len);
    return 0;
}

/*
 * Postcopy cannot handle concurrent discards, and blocks plugged during
 * precopy would reach the destination with stale content: no state changes
 * while a migration runs (the guest gets BUSY and retries).  A device that
 * disabled uncoordinated discards (VFIO, possible when realize only
 * required coordinated ones) is no reason to refuse: it hears of every
 * block change through our RamDiscardManager.
 */
static bool virtio_dmm_may_change_state(void *opaque)
{
    return !migration_in_incoming_postcopy() && !migration_is_running();
}

/*
 * Discarding is not allowed everywhere (VFIO, postcopy, background
 * snapshots); pages are then only recorded as unplugged, and reported
 * free pages are left alone.
 *
 * Precopy migration is no reason to hold back: a discarded page that is
 * still to be sent goes as a zero page, and one sent before keeps its old
 * content on the destination, which only a free page has (as with
 * virtio-balloon).  Guests that crashed after migrations here lost writes
 * to a bug in QEMU's TCG dirty tracking, not to discards (patch 0003).
 */
static bool virtio_dmm_may_discard(void *opaque)
{
    return !ram_block_discard_is_disabled() &&
           !migration_in_incoming_postcopy() &&
           !migration_in_bg_snapshot();
}

/* No sharing while memory must not be shared or discarded (VFIO, postcopy). */
static bool virtio_dmm_may_share(void *opaque)
{
    return !ram_block_discard_is_disabled() &&
           !migration_in_incoming_postcopy();
}

/* The ID and QOM path of the device the user sees (virtio-dmm-pci). */
static DeviceState *virtio_dmm_proxy(VirtIODMM *vdmm)
{
    BusState *bus = qdev_get_parent_bus(DEVICE(vdmm));

    return bus && bus->parent ? bus->parent : DEVICE(vdmm);
}

/*
 * The library's grant policy decided a guest's request for memory: tell
 * the management layer, which may set requested-size on a forwarded one.
 */
static void virtio_dmm_grant(void *opaque, const struct dmm_ask *ask)
{
    static const VirtioDMMAskResult result[] = {
        [DMM_ASK_GRANTED] = VIRTIO_DMM_ASK_RESULT_GRANTED,
        [DMM_ASK_REFUSED] = VIRTIO_DMM_ASK_RESULT_REFUSED,
        [DMM_ASK_FORWARDED] = VIRTIO_DMM_ASK_RESULT_FORWARDED,
    };
    DeviceState *proxy = virtio_dmm_proxy(opaque);
    g_autofree char *path = object_get_canonical_path(OBJECT(proxy));

    trace_virtio_dmm_ask(ask->size, ask->current, ask->reason, ask->result);
    qapi_event_send_virtio_dmm_ask(proxy->id, path, ask->size, ask->current,
                                   ask->reason & VIRTIO_DMM_ASK_PRESSURE,
                                   result[ask->result]);
}

static const struct dmm_backend_ops virtio_dmm_backend = {
    .populate = virtio_dmm_populate,
    .discard = virtio_dmm_discard,
    .state_changed = virtio_dmm_state_changed,
    .boot_range = virtio_dmm_boot_range,
    .discard_boot = virtio_dmm_discard_boot,
    .page_ptr = virtio_dmm_page_ptr,
    .share = virtio_dmm_share,
    .may_change_state = virtio_dmm_may_change_state,
    .may_discard = virtio_dmm_may_discard,
    .may_share = virtio_dmm_may_share,
    .grant = virtio_dmm_grant,
};

/*
 * The guest's memory changed (plugged or unplugged, in blocks, sub-blocks
 * or pages): VIRTIO_DMM_SIZE_CHANGE with both sizes, if they are not what
 * the last one said.  The monitor rate-limits it per device and always
 * delivers the latest.
 */
static void virtio_dmm_send_size_change(VirtIODMM *vdmm)
{
    uint64_t plugged = dmm_plugged_size(vdmm->dmm);
    uint64_t unplugged = dmm_unplugged_size(vdmm->dmm);
    DeviceState *proxy;
    g_autofree char *path = NULL;

    if (plugged == vdmm->event_plugged_size &&
        unplugged == vdmm->event_unplugged_size) {
        return;
    }
    vdmm->event_plugged_size = plugged;
    vdmm->event_unplugged_size = unplugged;
    proxy = virtio_dmm_proxy(vdmm);
    path = object_get_canonical_path(OBJECT(proxy));
    qapi_event_send_virtio_dmm_size_change(proxy->id, path, plugged,
                                           dmm_current_size(vdmm->dmm),
                                           unplugged);
}

/*
 * What a call to the library changed: the guest hears of a new
 * requested size, the memory-device layer of a new plugged size
 * (MEMORY_DEVICE_SIZE_CHANGE, as virtio-mem), the monitor of any change
 * of the guest's memory (VIRTIO_DMM_SIZE_CHANGE).
 */
static void virtio_dmm_changed(VirtIODMM *vdmm, unsigned int changed)
{
    uint64_t plugged = dmm_plugged_size(vdmm->dmm);

    if (changed & DMM_CHANGED_PLUGGED) {
        notifier_list_notify(&vdmm->size_change_notifiers, &plugged);
    }
    if (changed & (DMM_CHANGED_PLUGGED | DMM_CHANGED_UNPLUGGED)) {
        virtio_dmm_send_size_change(vdmm);
    }
    if (changed & DMM_CHANGED_REQUESTED) {
        trace_virtio_dmm_requested_size(dmm_requested_size(vdmm->dmm));
        virtio_notify_config(VIRTIO_DEVICE(vdmm));
    }
}

/* --- requests: the request, page and hint virtqueues --- */

static void virtio_dmm_drop_element(VirtQueue *vq, VirtQueueElement *elem)
{
    virtqueue_detach_element(vq, elem, 0);
    g_free(elem);
}

/*
 * One kind of request: at most @max_len bytes are copied out of the guest
 * (the library checks every field before anything changes); one shorter
 * than @hdr_len, or without room for the response, violates the protocol.
 */
typedef struct VirtIODMMRequestKind {
    const char *what;
    size_t hdr_len;
    size_t max_len;
    int (*handle)(struct dmm_dev *d, const void *req, size_t len,
                  struct virtio_dmm_resp *resp);
} VirtIODMMRequestKind;

static const VirtIODMMRequestKind virtio_dmm_requests = {
    .what = "block",
    .hdr_len = sizeof(struct virtio_dmm_req),
    .max_len = sizeof(struct virtio_dmm_req),
    .handle = dmm_handle_request,
};

static const VirtIODMMRequestKind virtio_dmm_page_requests = {
    .what = "page",
    .hdr_len = sizeof(struct virtio_dmm_page_req),
    .max_len = sizeof(struct virtio_dmm_page_req) +
               DMM_MAX_PAGES_PER_REQ * sizeof(uint64_t),
    .handle = dmm_handle_page_request,
};

static const VirtIODMMRequestKind virtio_dmm_hint_requests = {
    .what = "hint",
    .hdr_len = sizeof(struct virtio_dmm_hint_req),
    .max_len = sizeof(struct virtio_dmm_hint_req) +
               VIRTIO_DMM_MAX_HINTS * sizeof(struct virtio_dmm_hint),
    .handle = dmm_handle_hint_request,
};

static void virtio_dmm_serve(VirtIODevice *vdev, VirtQueue *vq,
                             const VirtIODMMRequestKind *kind)
{
    VirtIODMM *vdmm = VIRTIO_DMM(vdev);
    g_autofree uint8_t *buf = g_malloc(kind->max_len);
    struct virtio_dmm_resp resp;
    VirtQueueElement *elem;
    size_t len, in_len;
    int changed;

    while ((elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
        len = iov_to_buf(elem->out_sg, elem->out_num, 0, buf, kind->max_len);
        in_len = iov_size(elem->in_sg, elem->in_num);
        if (len < kind->hdr_len || in_len < sizeof(resp)) {
            virtio_error(vdev, "virtio-dmm protocol violation: %s request"
                         " of %zu bytes, %zu bytes for the response",
                         kind->what, len, in_len);
            virtio_dmm_drop_element(vq, elem);
            return;
        }
        changed = kind->handle(vdmm->dmm, buf, len, &resp);
        assert(changed >= 0);
        trace_virtio_dmm_request(kind->what, lduw_le_p(buf),
                                 len >= 16 ? ldq_le_p(buf + 8) : 0,
                                 le16_to_cpu(resp.type),
                                 dmm_plugged_size(vdmm->dmm),
                                 dmm_unplugged_size(vdmm->dmm));
        iov_from_buf(elem->in_sg, elem->in_num, 0, &resp, sizeof(resp));
        virtqueue_push(vq, elem, sizeof(resp));
        virtio_notify(vdev, vq);
        g_free(elem);
        virtio_dmm_changed(vdmm, changed);
    }
}

static void virtio_dmm_handle_request(VirtIODevice *vdev, VirtQueue *vq)
{
    virtio_dmm_serve(vdev, vq, &virtio_dmm_requests);
}

/* A page request: a header and up to max_pages addresses. */
static void virtio_dmm_handle_pages(VirtIODevice *vdev, VirtQueue *vq)
{
    virtio_dmm_serve(vdev, vq, &virtio_dmm_page_requests);
}

/*
 * Hints are advice: the library checks every address, then compares each
 * page's content with the hint, and only then shares its chunk.
 */
static void virtio_dmm_handle_hints(VirtIODevice *vdev, VirtQueue *vq)
{
    virtio_dmm_serve(vdev, vq, &virtio_dmm_hint_requests);
}

/* --- free page reporting --- */

/* Where the guest's free range at @host lies: boot RAM, region or neither. */
static enum dmm_ram virtio_dmm_ram_of(VirtIODMM *vdmm, void *host,
                                      ram_addr_t *offset, uint64_t *align)
{
    RAMBlock *rb = qemu_ram_block_from_host(host, false, offset);
    MemoryRegion *mr = rb ? rb->mr : NULL;

    if (!rb) {
        return DMM_RAM_NONE;
    }
    *align = qemu_ram_pagesize(rb);
    if (rb == virtio_dmm_rb(vdmm)) {
        return DMM_RAM_REGION;
    }
    if (!virtio_dmm_is_boot_mr(mr)) {
        return DMM_RAM_NONE;
    }
    /* as an offset in boot RAM: a node's backend starts at its address */
    *offset += mr->container ? mr->addr : 0;
    return DMM_RAM_BOOT;
}

/*
 * The guest lends us free pages until we return the buffer: the library
 * checks each range (boot RAM, or plugged memory of the region, whole host
 * pages) and discards it where that is allowed; a report of anything else
 * is ignored (and counted).
 */
static void virtio_dmm_handle_report(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIODMM *vdmm = VIRTIO_DMM(vdev);
    VirtQueueElement *elem;
    ram_addr_t offset = 0;
    uint64_t align = 0;
    enum dmm_ram ram;
    unsigned int i;

    while ((elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
        for (i = 0; i < elem->in_num; i++) {
            size_t len = elem->in_sg[i].iov_len;

            ram = virtio_dmm_ram_of(vdmm, elem->in_sg[i].iov_base, &offset,
                                    &align);
            if (dmm_report_free(vdmm->dmm, ram, offset, len, align)) {
                trace_virtio_dmm_report_refused(elem->in_addr[i], len);
            }
        }
        virtqueue_push(vq, elem, 0);
        virtio_notify(vdev, vq);
        g_free(elem);
    }
}

/* --- memory statistics --- */

static double virtio_dmm_rate(VirtIODMM *vdmm, size_t off)
{
    uint64_t a = ldq_le_p((uint8_t *)&vdmm->last_stats + off);
    uint64_t b = ldq_le_p((uint8_t *)&vdmm->prev_stats + off);
    int64_t ms = vdmm->last_stats_ms - vdmm->prev_stats_ms;

    return ms > 0 && a >= b && vdmm->prev_stats_ms ?
           (double)(a - b) * 1000 / ms : 0;
}

/* The latest report as QMP shows it, or NULL before the first. */
static VirtioDMMStats *virtio_dmm_get_stats(VirtIODMM *vdmm)
{
    const struct virtio_dmm_stats *st = &vdmm->last_stats;
    VirtioDMMStats *s;

    if (!vdmm->have_stats) {
        return NULL;
    }
    s = g_new0(VirtioDMMStats, 1);
    s->seq = le64_to_cpu(st->seq);
    s->age_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - vdmm->last_stats_ms;
    s->total = le64_to_cpu(st->total);
    s->available = le64_to_cpu(st->available);
    s->free = le64_to_cpu(st->free);
    s->cache = le64_to_cpu(st->cache);
    s->psi_some_avg10 = le32_to_cpu(st->psi_some_avg10) / 100.0;
    s->psi_full_avg10 = le32_to_cpu(st->psi_full_avg10) / 100.0;
    s->psi_some_avg60 = le32_to_cpu(st->psi_some_avg60) / 100.0;
    s->psi_full_avg60 = le32_to_cpu(st->psi_full_avg60) / 100.0;
    s->psi_some_total = le64_to_cpu(st->psi_some_total);
    s->psi_full_total = le64_to_cpu(st->psi_full_total);
    s->swap_in = le64_to_cpu(st->swap_in);
    s->swap_out = le64_to_cpu(st->swap_out);
    s->major_faults = le64_to_cpu(st->major_faults);
    s->oom_kills = le64_to_cpu(st->oom_kills);
    s->alloc_stalls = le64_to_cpu(st->alloc_stalls);
    s->swap_in_rate = virtio_dmm_rate(vdmm, offsetof(struct virtio_dmm_stats,
                                                     swap_in));
    s->swap_out_rate = virtio_dmm_rate(vdmm,
                                       offsetof(struct virtio_dmm_stats,
                                                swap_out));
    s->major_fault_rate = virtio_dmm_rate(vdmm,
                                          offsetof(struct virtio_dmm_stats,
                                                   major_faults));
    return s;
}

/*
 * A report: keep it (and the one before, for rates) and tell the monitor;
 * the monitor rate-limits the event.  A report shorter than the structure
 * is answered ERROR and dropped.
 */
static void virtio_dmm_handle_stats(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIODMM *vdmm = VIRTIO_DMM(vdev);
    DeviceState *proxy = virtio_dmm_proxy(vdmm);
    g_autofree char *path = object_get_canonical_path(OBJECT(proxy));
    struct virtio_dmm_resp resp = { };
    VirtioDMMStats *event_stats;
    struct virtio_dmm_stats st;
    VirtQueueElement *elem;
    size_t len;

    while ((elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
        len = iov_to_buf(elem->out_sg, elem->out_num, 0, &st, sizeof(st));
        if (iov_size(elem->in_sg, elem->in_num) < sizeof(resp)) {
            virtio_error(vdev, "virtio-dmm protocol violation: %zu bytes for"
                         " the response to a report",
                         iov_size(elem->in_sg, elem->in_num));
            virtio_dmm_drop_element(vq, elem);
            return;
        }
        if (len < sizeof(st) ||
            !virtio_vdev_has_feature(vdev, VIRTIO_DMM_F_STATS)) {
            resp.type = cpu_to_le16(VIRTIO_DMM_RESP_ERROR);
        } else {
            resp.type = cpu_to_le16(VIRTIO_DMM_RESP_ACK);
            vdmm->prev_stats = vdmm->last_stats;
            vdmm->prev_stats_ms = vdmm->last_stats_ms;
            vdmm->last_stats = st;
            vdmm->last_stats_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
            vdmm->last_stats_wall = g_get_real_time() / G_USEC_PER_SEC;
            vdmm->have_stats = true;
            /* QAPI event senders do not take ownership of their data. */
            event_stats = virtio_dmm_get_stats(vdmm);
            qapi_event_send_virtio_dmm_stats(proxy->id, path, event_stats);
            qapi_free_VirtioDMMStats(event_stats);
        }
        iov_from_buf(elem->in_sg, elem->in_num, 0, &resp, sizeof(resp));
        virtqueue_push(vq, elem, sizeof(resp));
        virtio_notify(vdev, vq);
        g_free(elem);
    }
}

/* --- configuration and features --- */

static void virtio_dmm_get_config(VirtIODevice *vdev, uint8_t *config_data)
{
    VirtIODMM *vdmm = VIRTIO_DMM(vdev);
    struct virtio_dmm_config *cfg = (struct virtio_dmm_config *)config_data;

    dmm_fill_config(vdmm->dmm, vdmm->node, cfg);
    if (vdmm->stats) {
        cfg->stats_interval_ms = cpu_to_le32(vdmm->stats_interval);
    }
}

static uint64_t virtio_dmm_get_features(VirtIODevice *vdev, uint64_t features,
                                        Error **errp)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    VirtIODMM *vdmm = VIRTIO_DMM(vdev);

    if (ms->numa_state && ms->numa_state->num_nodes) {
        virtio_add_feature(&features, VIRTIO_DMM_F_NODE_ID);
    }
    if (vdmm->free_page_reporting) {
        virtio_add_feature(&features, VIRTIO_DMM_F_FREE_PAGE_REPORTING);
    }
    if (vdmm->pages) {
        virtio_add_feature(&features, VIRTIO_DMM_F_PAGES);
        virtio_add_feature(&features, VIRTIO_DMM_F_PAGE_RANGES);
    }
    if (vdmm->sub_blocks) {
        virtio_add_feature(&features, VIRTIO_DMM_F_SUB_BLOCKS);
    }
    if (vdmm->hints) {
        virtio_add_feature(&features, VIRTIO_DMM_F_HINTS);
        if (vdmm->dup_hints) {
            virtio_add_feature(&features, VIRTIO_DMM_F_HINTS_DUP);
        }
    }
    if (vdmm->stats) {
        virtio_add_feature(&features, VIRTIO_DMM_F_STATS);
    }
    return features;
}

/* Negotiated (0 on reset, restored on load): the library refuses the rest. */
static void virtio_dmm_set_features(VirtIODevice *vdev, uint64_t features)
{
    VirtIODMM *vdmm = VIRTIO_DMM(vdev);

    if (vdmm->dmm) {
        dmm_set_features(vdmm->dmm, features);
    }
}

/* --- realize --- */

static bool virtio_dmm_check_memdev(VirtIODMM *vdmm, Error **errp)
{
    if (!vdmm->memdev) {
        error_setg(errp, "'%s' property is not set", VIRTIO_DMM_MEMDEV_PROP);
        return false;
    }
    if (host_memory_backend_is_mapped(vdmm->memdev)) {
        error_setg(errp, "'%s' property specifies a busy memdev: %s",
                   VIRTIO_DMM_MEMDEV_PROP,
                   object_get_canonical_path_component(OBJECT(vdmm->memdev)));
        return false;
    }
    if (!memory_region_is_ram(&vdmm->memdev->mr) ||
        memory_region_is_rom(&vdmm->memdev->mr) ||
        !vdmm->memdev->mr.ram_block) {
        error_setg(errp, "'%s' property specifies an unsupported memdev",
                   VIRTIO_DMM_MEMDEV_PROP);
        return false;
    }
    if (vdmm->memdev->prealloc) {
        error_setg(errp, "'%s' property specifies a memdev with prealloc=on:"
                   " unplugged memory must not be backed; set %s=on on the"
                   " device instead", VIRTIO_DMM_MEMDEV_PROP,
                   VIRTIO_DMM_PREALLOC_PROP);
        return false;
    }
    return true;
}

static bool virtio_dmm_rb_small_pages(RAMBlock *rb)
{
    return qemu_ram_pagesize(rb) == VIRTIO_DMM_PAGE_SIZE;
}

static bool virtio_dmm_rb_private(RAMBlock *rb)
{
    return !qemu_ram_is_shared(rb);
}

/*
 * Page requests discard single 4 KiB pages of boot RAM and of the region:
 * both must be RAM backends (one for boot RAM, or one per NUMA node) with
 * 4 KiB host pages.
 */
static bool virtio_dmm_check_pages(VirtIODMM *vdmm, Error **errp)
{
    MachineState *ms = MACHINE(qdev_get_machine());

    if (!ms->ram) {
        error_setg(errp, "'%s' needs the machine's RAM in memory backends;"
                   " set %s=off", VIRTIO_DMM_PAGES_PROP,
                   VIRTIO_DMM_PAGES_PROP);
        return false;
    }
    if (!virtio_dmm_boot_rbs_all(virtio_dmm_rb_small_pages) ||
        !virtio_dmm_rb_small_pages(virtio_dmm_rb(vdmm))) {
        error_setg(errp, "'%s' needs 0x%x byte host pages in boot RAM and"
                   " the memdev (no huge pages); set %s=off",
                   VIRTIO_DMM_PAGES_PROP, VIRTIO_DMM_PAGE_SIZE,
                   VIRTIO_DMM_PAGES_PROP);
        return false;
    }
    return true;
}

/*
 * Hints make host memory mergeable (KSM): boot RAM and the region must be
 * private memory with 4 KiB pages on a host with KSM.  "auto" turns hints
 * off where that does not hold; "on" fails.
 */
static const char *virtio_dmm_hints_unsupported(VirtIODMM *vdmm)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    RAMBlock *rb = virtio_dmm_rb(vdmm);

    if (QEMU_MADV_MERGEABLE == QEMU_MADV_INVALID) {
        return "the host cannot merge pages (no KSM)";
    }
    if (!ms->ram) {
        return "the machine's RAM is not in memory backends";
    }
    if (!virtio_dmm_boot_rbs_all(virtio_dmm_rb_private) ||
        !virtio_dmm_rb_private(rb)) {
        return "boot RAM or the memdev is shared memory (share=on)";
    }
    if (!virtio_dmm_boot_rbs_all(virtio_dmm_rb_small_pages) ||
        !virtio_dmm_rb_small_pages(rb)) {
        return "boot RAM or the memdev does not have 4 KiB pages";
    }
    if (ram_block_discard_is_disabled()) {
        return "a device pins guest memory (e.g. vfio)";
    }
    return NULL;
}

static bool virtio_dmm_check_hints(VirtIODMM *vdmm, Error **errp)
{
    const char *why = virtio_dmm_hints_unsupported(vdmm);

    vdmm->hints = vdmm->hints_prop != ON_OFF_AUTO_OFF && !why;
    if (vdmm->hints_prop == ON_OFF_AUTO_ON && why) {
        error_setg(errp, "'%s' is on, but %s; set %s=off",
                   VIRTIO_DMM_HINTS_PROP, why, VIRTIO_DMM_HINTS_PROP);
        return false;
    }
    if (vdmm->dup_hints && !vdmm->hints) {
        error_setg(errp, "'%s' is on, but hints are off (%s)",
                   VIRTIO_DMM_DUP_HINTS_PROP,
                   why ? why : "'" VIRTIO_DMM_HINTS_PROP "' is off");
        return false;
    }
    return true;
}

/* Is @obj another realized virtio-dmm that counts the boot RAM? */
static int virtio_dmm_counts_boot_ram(Object *obj, void *opaque)
{
    VirtIODMM *other = (VirtIODMM *)object_dynamic_cast(obj, TYPE_VIRTIO_DMM);

    return other && other != opaque && other->dmm && other->boot_ram;
}

/*
 * Boot RAM is counted once: by at most one device, the only one that may
 * give it back in pages.
 */
static bool virtio_dmm_check_boot_ram(VirtIODMM *vdmm, Error **errp)
{
    if (!vdmm->boot_ram) {
        if (vdmm->pages) {
            error_setg(errp, "'%s' needs '%s' (a device that does not count"
                       " the boot RAM cannot give it back); set %s=off",
                       VIRTIO_DMM_PAGES_PROP, VIRTIO_DMM_BOOT_RAM_PROP,
                       VIRTIO_DMM_PAGES_PROP);
            return false;
        }
        return true;
    }
    if (object_child_foreach_recursive(object_get_root(),
                                       virtio_dmm_counts_boot_ram, vdmm)) {
        error_setg(errp, "another virtio-dmm device counts the boot RAM;"
                   " only one may: set %s=off on this one",
                   VIRTIO_DMM_BOOT_RAM_PROP);
        return false;
    }
    return true;
}

static bool virtio_dmm_check_props(VirtIODMM *vdmm, Error **errp)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    int nb_numa_nodes = ms->numa_state ? ms->numa_state->num_nodes : 0;
    uint64_t page_size = qemu_ram_pagesize(virtio_dmm_rb(vdmm));
    char err[256];

    if ((nb_numa_nodes && vdmm->node >= nb_numa_nodes) ||
        (!nb_numa_nodes && vdmm->node)) {
        error_setg(errp, "'%s' property is %" PRIu32 ", but the machine has"
                   " %d NUMA node(s)", VIRTIO_DMM_NODE_PROP, vdmm->node,
                   nb_numa_nodes ? nb_numa_nodes : 1);
        return false;
    }
    if (dmm_check_block_size(vdmm->block_size, VIRTIO_DMM_MIN_BLOCK_SIZE,
                             err, sizeof(err))) {
        error_setg(errp, "'%s' property: %s", VIRTIO_DMM_BLOCK_SIZE_PROP, err);
        return false;
    }
    if (vdmm->block_size < page_size) {
        error_setg(errp, "'%s' property 0x%" PRIx64 " is below the memdev's"
                   " page size 0x%" PRIx64, VIRTIO_DMM_BLOCK_SIZE_PROP,
                   vdmm->block_size, page_size);
        return false;
    }
    if (vdmm->sub_blocks && page_size > VIRTIO_DMM_SUB_BLOCK_SIZE) {
        error_setg(errp, "'%s' needs a memdev page size of at most 0x%"
                   PRIx64 ", not 0x%" PRIx64 "; set %s=off",
                   VIRTIO_DMM_SUB_BLOCKS_PROP,
                   (uint64_t)VIRTIO_DMM_SUB_BLOCK_SIZE, page_size,
                   VIRTIO_DMM_SUB_BLOCKS_PROP);
        return false;
    }
    if (should_mlock(mlock_state)) {
        error_setg(errp, "virtio-dmm is incompatible with mlock");
        return false;
    }
    if (!virtio_dmm_check_boot_ram(vdmm, errp)) {
        return false;
    }
    /*
     * A reported free page is discarded: it would no longer be backed,
     * and the guest's next touch could find the pool empty (SIGBUS).
     */
    if (vdmm->prealloc && vdmm->free_page_reporting) {
        error_setg(errp, "'%s' needs '%s' off (a reported page is discarded"
                   " and no longer preallocated); set %s=off",
                   VIRTIO_DMM_PREALLOC_PROP, VIRTIO_DMM_FPR_PROP,
                   VIRTIO_DMM_FPR_PROP);
        return false;
    }
    if (vdmm->pages && !virtio_dmm_check_pages(vdmm, errp)) {
        return false;
    }
    if (dmm_check_stats_interval(vdmm->stats_interval, err, sizeof(err))) {
        error_setg(errp, "'%s' property: %s", VIRTIO_DMM_STATS_INTERVAL_PROP,
                   err);
        return false;
    }
    return virtio_dmm_check_hints(vdmm, errp);
}


/* The five virtqueues, always, at their fixed indices. */
static const struct {
    unsigned int size;
    VirtIOHandleOutput handle;
} virtio_dmm_vqs[VIRTIO_DMM_NUM_VQS] = {
    [VIRTIO_DMM_VQ_REQUEST] = { 128, virtio_dmm_handle_request },
    /* the kernel's page reporting sends up to 32 ranges at a time */
    [VIRTIO_DMM_VQ_REPORT] = { 32, virtio_dmm_handle_report },
    [VIRTIO_DMM_VQ_PAGE] = { 32, virtio_dmm_handle_pages },
    [VIRTIO_DMM_VQ_HINT] = { 32, virtio_dmm_handle_hints },
    [VIRTIO_DMM_VQ_STATS] = { 8, virtio_dmm_handle_stats },
};

/* The library's device, with the policy the properties ask for. */
static struct dmm_dev *virtio_dmm_new_dev(VirtIODMM *vdmm, Error **errp)
{
    struct dmm_params p = {
        .block_size = vdmm->block_size,
        .region_addr = vdmm->addr,
        .region_size = virtio_dmm_region_size(vdmm),
        .boot_size = virtio_dmm_boot_size(vdmm),
        .page_size = vdmm->pages ? VIRTIO_DMM_PAGE_SIZE : 0,
        .sub_block_size = vdmm->sub_blocks ? VIRTIO_DMM_SUB_BLOCK_SIZE : 0,
        .hints = vdmm->hints,
    };
    struct dmm_dev *d;
    const char *prop;
    char err[256];
    uint64_t size;

    d = dmm_dev_new(&p, &virtio_dmm_backend, vdmm, err, sizeof(err));
    if (!d) {
        error_setg(errp, "%s (property '%s')", err,
                   p.region_size % p.block_size ? VIRTIO_DMM_MEMDEV_PROP :
                   VIRTIO_DMM_ADDR_PROP);
        return NULL;
    }
    if (dmm_set_grant_policy(d, vdmm->auto_grant, vdmm->auto_grant_limit,
                             err, sizeof(err))) {
        error_setg(errp, "'%s' property: %s",
                   VIRTIO_DMM_AUTO_GRANT_LIMIT_PROP, err);
        goto fail;
    }
    if (vdmm->initial_requested_guest_size != UINT64_MAX &&
        vdmm->initial_requested_size != UINT64_MAX) {
        error_setg(errp, "'%s' and '%s' are two ways to say one size: set"
                   " one", VIRTIO_DMM_REQUESTED_GUEST_SIZE_PROP,
                   VIRTIO_DMM_REQUESTED_SIZE_PROP);
        goto fail;
    }
    if (vdmm->initial_requested_size != UINT64_MAX) {
        prop = VIRTIO_DMM_REQUESTED_SIZE_PROP;
        if (vdmm->initial_requested_size > p.region_size) {
            error_setg(errp, "'%s' property 0x%" PRIx64 " exceeds the memdev"
                       " size 0x%" PRIx64, prop, vdmm->initial_requested_size,
                       p.region_size);
            goto fail;
        }
        size = p.boot_size + vdmm->initial_requested_size;
    } else if (vdmm->initial_requested_guest_size != UINT64_MAX) {
        prop = VIRTIO_DMM_REQUESTED_GUEST_SIZE_PROP;
        size = vdmm->initial_requested_guest_size;
    } else {
        prop = VIRTIO_DMM_REQUESTED_GUEST_SIZE_PROP;
        size = p.boot_size;
    }
    if (dmm_set_requested_size(d, size, err, sizeof(err))) {
        error_setg(errp, "'%s' property: %s", prop, err);
        goto fail;
    }
    return d;

fail:
    dmm_dev_free(d);
    return NULL;
}

/* Take or drop the discard requirement realize chose. */
static void virtio_dmm_discard_require(VirtIODMM *vdmm, bool state)
{
    if (vdmm->uncoordinated) {
        ram_block_discard_require(state);
    } else {
        ram_block_coordinated_discard_require(state);
    }
}

static void virtio_dmm_device_realize(DeviceState *dev, Error **errp)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIODMM *vdmm = VIRTIO_DMM(dev);
    uint64_t region_size;
    unsigned int i;
    Object *obj;
    int ret;

    if (!virtio_dmm_check_memdev(vdmm, errp) ||
        !virtio_dmm_check_props(vdmm, errp)) {
        return;
    }
    vdmm->dmm = virtio_dmm_new_dev(vdmm, errp);
    if (!vdmm->dmm) {
        return;
    }
    region_size = virtio_dmm_region_size(vdmm);

    /*
     * Unplugs discard memory.  Blocks and sub-blocks are discarded in
     * coordination with the listeners of our RamDiscardManager (VFIO maps
     * only plugged memory), but pages, free page reports and hints discard
     * or share memory no listener hears of: with any of them on, refuse to
     * run where anything disabled discarding (VFIO and other devices that
     * pin guest memory for DMA), and keep such devices from being added.
     */
    vdmm->uncoordinated = vdmm->pages || vdmm->free_page_reporting ||
                          vdmm->hints;
    if (vdmm->uncoordinated ? ram_block_discard_require(true) :
        ram_block_coordinated_discard_require(true)) {
        error_setg(errp, "virtio-dmm needs to discard RAM, but discarding is"
                   " disabled (e.g. by vfio)%s", vdmm->uncoordinated ?
                   "; with pages=off, free-page-reporting=off and hints=off"
                   " it can run next to vfio" : "");
        goto out_free;
    }
    /* A reused backend may hold memory: start with everything unplugged. */
    if (!runstate_check(RUN_STATE_INMIGRATE)) {
        ret = ram_block_discard_range(virtio_dmm_rb(vdmm), 0, region_size);
        if (ret) {
            error_setg_errno(errp, -ret, "virtio-dmm cannot discard its"
                             " region");
            goto out_discard;
        }
    }
    if (dmm_state_size(vdmm->dmm) > UINT32_MAX) {
        error_setg(errp, "virtio-dmm: the region is too large to migrate");
        goto out_discard;
    }
    vdmm->mig_len = dmm_state_size(vdmm->dmm);

    vdmm->rdm_told = g_malloc0(dmm_told_bytes(vdmm->dmm));
    if (!vdmm->mr) {
        virtio_dmm_prepare_mr(vdmm);
    }
    if (vdmm->memslot_size % vdmm->block_size || !vdmm->x_dynamic_memslots) {
        vdmm->nb_memslots = 0;
    }
    virtio_dmm_prepare_memslots(vdmm);
    virtio_dmm_update_memslots(vdmm, 0, region_size);

    virtio_init(vdev, VIRTIO_ID_DMM, sizeof(struct virtio_dmm_config));
    for (i = 0; i < VIRTIO_DMM_NUM_VQS; i++) {
        virtio_add_queue(vdev, virtio_dmm_vqs[i].size,
                         virtio_dmm_vqs[i].handle);
    }
    host_memory_backend_set_mapped(vdmm->memdev, true);
    vmstate_register_ram(&vdmm->memdev->mr, DEVICE(vdmm));

    /* Unplug all on machine reset only; see virtio_dmm_system_reset_hold. */
    obj = object_new(TYPE_VIRTIO_DMM_SYSTEM_RESET);
    vdmm->system_reset = VIRTIO_DMM_SYSTEM_RESET(obj);
    vdmm->system_reset->vdmm = vdmm;
    qemu_register_resettable(obj);

    /* Before the machine maps the region and exposes it to listeners. */
    memory_region_set_ram_discard_manager(&vdmm->memdev->mr,
                                          RAM_DISCARD_MANAGER(vdmm));
    return;

out_discard:
    virtio_dmm_discard_require(vdmm, false);
out_free:
    g_clear_pointer(&vdmm->dmm, dmm_dev_free);
}

/* Unmap every memslot: nothing is plugged any more (unplug_request_check). */
static void virtio_dmm_unmap_memslots(VirtIODMM *vdmm)
{
    unsigned int i;

    memory_region_transaction_begin();
    for (i = 0; i < vdmm->nb_memslots; i++) {
        if (memory_region_is_mapped(&vdmm->memslots[i])) {
            memory_region_del_subregion(vdmm->mr, &vdmm->memslots[i]);
        }
    }
    memory_region_transaction_commit();
}

static void virtio_dmm_device_unrealize(DeviceState *dev)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIODMM *vdmm = VIRTIO_DMM(dev);
    int i;

    /* The machine unmapped the region: no listener can find it now. */
    memory_region_set_ram_discard_manager(&vdmm->memdev->mr, NULL);
    qemu_unregister_resettable(OBJECT(vdmm->system_reset));
    object_unref(OBJECT(vdmm->system_reset));
    vmstate_unregister_ram(&vdmm->memdev->mr, DEVICE(vdmm));
    host_memory_backend_set_mapped(vdmm->memdev, false);
    for (i = VIRTIO_DMM_NUM_VQS - 1; i >= 0; i--) {
        virtio_del_queue(vdev, i);
    }
    virtio_cleanup(vdev);
    virtio_dmm_unmap_memslots(vdmm);
    g_clear_pointer(&vdmm->mig_buf, g_free);
    g_clear_pointer(&vdmm->rdm_told, g_free);
    g_clear_pointer(&vdmm->dmm, dmm_dev_free);
    virtio_dmm_discard_require(vdmm, false);
}

/* --- machine reset --- */

/*
 * A machine reset unplugs every block: the next kernel starts from boot
 * memory.  A device reset (the guest driver resetting the device) must not:
 * Linux may still use the memory it plugged.  Hence a resettable object of
 * our own, reset only with the machine.
 */
static void virtio_dmm_system_reset_hold(Object *obj, ResetType type)
{
    VirtIODMM *vdmm = VIRTIO_DMM_SYSTEM_RESET(obj)->vdmm;
    unsigned int changed;

    /* Waking up from suspend is no reboot: memory stays. */
    if (type == RESET_TYPE_WAKEUP) {
        return;
    }
    trace_virtio_dmm_unplug_all(dmm_plugged_size(vdmm->dmm));
    if (dmm_unplug_all(vdmm->dmm, &changed)) {
        warn_report("virtio-dmm: discarding the region on reset failed");
    }
    virtio_dmm_changed(vdmm, changed);
}

static ResettableState *virtio_dmm_system_reset_get_state(Object *obj)
{
    return &VIRTIO_DMM_SYSTEM_RESET(obj)->reset_state;
}

static void virtio_dmm_system_reset_class_init(ObjectClass *klass, void *data)
{
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    rc->get_state = virtio_dmm_system_reset_get_state;
    rc->phases.hold = virtio_dmm_system_reset_hold;
}

static const TypeInfo virtio_dmm_system_reset_info = {
    .name = TYPE_VIRTIO_DMM_SYSTEM_RESET,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(VirtIODMMSystemReset),
    .class_init = virtio_dmm_system_reset_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_RESETTABLE_INTERFACE },
        { }
    },
};

/* --- migration --- */

/*
 * The library's state travels as one image: saved into a buffer of ours
 * (allocated once, at the first migration), loaded from it and taken only
 * after the library checked all of it, so a bad stream changes nothing.
 */
static void virtio_dmm_alloc_mig_buf(VirtIODMM *vdmm)
{
    if (!vdmm->mig_buf) {
        vdmm->mig_buf = g_malloc0(vdmm->mig_len);
    }
}

static int virtio_dmm_pre_save(void *opaque)
{
    VirtIODMM *vdmm = opaque;

    virtio_dmm_alloc_mig_buf(vdmm);
    dmm_save(vdmm->dmm, vdmm->mig_buf);
    vdmm->mig_stats_interval = vdmm->stats_interval;
    return 0;
}

/* Start from "nothing in the stream": subsections are optional. */
static int virtio_dmm_pre_load(void *opaque)
{
    VirtIODMM *vdmm = opaque;

    virtio_dmm_alloc_mig_buf(vdmm);
    vdmm->mig_stats_interval = vdmm->stats_interval;
    return 0;
}

static int virtio_dmm_post_load(void *opaque, int version_id)
{
    VirtIODMM *vdmm = opaque;
    char err[256];
    int ret;

    if (dmm_check_stats_interval(vdmm->mig_stats_interval, err,
                                 sizeof(err)) ||
        dmm_load(vdmm->dmm, vdmm->mig_buf, vdmm->mig_len, err,
                 sizeof(err))) {
        error_report("virtio-dmm: migration stream refused: %s", err);
        return -EINVAL;
    }
    vdmm->stats_interval = vdmm->mig_stats_interval;
    /* the sizes the source's events said */
    vdmm->event_plugged_size = dmm_plugged_size(vdmm->dmm);
    vdmm->event_unplugged_size = dmm_unplugged_size(vdmm->dmm);
    if (migrate_ram_is_ignored(virtio_dmm_rb(vdmm))) {
        return 0;
    }
    /*
     * No page of an unplugged sub-block was sent (we are the memdev's
     * RamDiscardManager); discard them anyway, in case the backend held
     * memory.  Unplugged pages read as zero on the source too and zero
     * pages are not written here, so they take no memory.
     */
    ret = dmm_discard_unplugged(vdmm->dmm);
    if (ret) {
        error_report("virtio-dmm: discarding unplugged sub-blocks failed:"
                     " %s", strerror(-ret));
        return -EINVAL;
    }
    /* prealloc=on: a destination that cannot back the guest fails here. */
    if (vdmm->prealloc &&
        dmm_for_each_range(vdmm->dmm, 0, virtio_dmm_region_size(vdmm), true,
                           virtio_dmm_prealloc, vdmm)) {
        error_report("virtio-dmm: cannot back the plugged memory of the"
                     " incoming guest (prealloc=on)");
        return -ENOMEM;
    }
    return 0;
}

static bool virtio_dmm_stats_needed(void *opaque)
{
    return VIRTIO_DMM(opaque)->stats;
}

/* The interval may have been changed at run time: the guest keeps it. */
static const VMStateDescription vmstate_virtio_dmm_stats = {
    .name = "virtio-dmm-device/stats",
    .minimum_version_id = 1,
    .version_id = 1,
    .needed = virtio_dmm_stats_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(mig_stats_interval, VirtIODMM),
        VMSTATE_END_OF_LIST()
    },
};

/*
 * The library's image (dmm_save()); its parameters must be ours.  Version
 * 1 always: virtio_load() loads the device's state as version 1.
 */
static const VMStateDescription vmstate_virtio_dmm_device = {
    .name = "virtio-dmm-device",
    .minimum_version_id = 1,
    .version_id = 1,
    .pre_save = virtio_dmm_pre_save,
    .pre_load = virtio_dmm_pre_load,
    .post_load = virtio_dmm_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32_EQUAL(mig_len, VirtIODMM, NULL),
        VMSTATE_VBUFFER_UINT32(mig_buf, VirtIODMM, 1, NULL, mig_len),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &vmstate_virtio_dmm_stats,
        NULL
    },
};

static const VMStateDescription vmstate_virtio_dmm = {
    .name = "virtio-dmm",
    .minimum_version_id = 1,
    .version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_VIRTIO_DEVICE,
        VMSTATE_END_OF_LIST()
    },
};

/* --- the memory-device side (used by virtio-dmm-pci) --- */

/*
 * What KSM saves the whole QEMU process (not only this device's memory),
 * from /proc/self/ksm_stat, in bytes: ksm_merging_pages (mapped shared) or
 * ksm_zero_pages (mapped to the zero page).  0 where the host does not say.
 */
static uint64_t virtio_dmm_ksm_stat(const char *key)
{
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents("/proc/self/ksm_stat", &text, NULL, NULL)) {
        return 0;
    }
    for (p = strstr(text, key); p; p = strstr(p + 1, key)) {
        if ((p == text || p[-1] == '\n') && p[strlen(key)] == ' ') {
            return g_ascii_strtoull(p + strlen(key) + 1, NULL, 10) *
                   qemu_real_host_page_size();
        }
    }
    return 0;
}

static void virtio_dmm_fill_device_info(const VirtIODMM *vdmm,
                                        VirtioDMMDeviceInfo *vi)
{
    const struct dmm_dev *d = vdmm->dmm;
    const struct dmm_counters *st = dmm_get_counters(d);

    vi->memaddr = vdmm->addr;
    vi->node = vdmm->node;
    vi->requested_size = virtio_dmm_requested_region_size(vdmm);
    vi->size = dmm_plugged_size(d);
    vi->max_size = virtio_dmm_region_size((VirtIODMM *)vdmm);
    vi->requested_guest_size = dmm_requested_size(d);
    vi->guest_size = dmm_current_size(d);
    vi->boot_size = virtio_dmm_boot_size(vdmm);
    vi->block_size = vdmm->block_size;
    vi->unplugged_size = dmm_unplugged_size(d);
    vi->reported_size = st->reported_bytes;
    vi->refused_reports = st->refused_reports;
    vi->hint_zero_accepted = st->hint_zero_accepted;
    vi->hint_dup_accepted = st->hint_dup_accepted;
    vi->hint_rejected = st->hint_rejected;
    vi->hint_errors = st->hint_errors;
    vi->hint_mergeable_size = st->mergeable_bytes;
    vi->process_ksm_merging_size = virtio_dmm_ksm_stat("ksm_merging_pages");
    vi->process_ksm_zero_size = virtio_dmm_ksm_stat("ksm_zero_pages");
    vi->stats = virtio_dmm_get_stats((VirtIODMM *)vdmm);
    vi->stats_interval = vdmm->stats ? vdmm->stats_interval : 0;
    vi->auto_grant = dmm_auto_grant(d);
    vi->auto_grant_limit = dmm_grant_limit(d);
    vi->sub_block_plugged_size = dmm_partial_plugged_size(d);
    vi->sub_block_size = dmm_sb_size(d);
    vi->memdev = object_get_canonical_path(OBJECT(vdmm->memdev));
}

static MemoryRegion *virtio_dmm_get_memory_region(VirtIODMM *vdmm,
                                                  Error **errp)
{
    if (!vdmm->memdev) {
        error_setg(errp, "'%s' property must be set", VIRTIO_DMM_MEMDEV_PROP);
        return NULL;
    }
    if (!vdmm->mr) {
        virtio_dmm_prepare_mr(vdmm);
    }
    return vdmm->mr;
}

/*
 * Called once before realize with the number of memslots this device may
 * use: one per block where the limit allows, fewer and larger (a multiple
 * of the block size) where it does not.  A memslot is mapped while any of
 * its blocks is plugged, so larger memslots leave more unplugged memory
 * reachable; realize checks the values this assumes.
 */
static void virtio_dmm_decide_memslots(VirtIODMM *vdmm, unsigned int limit)
{
    uint64_t region_size, bs = vdmm->block_size;

    vdmm->nb_memslots = 1;
    vdmm->memslot_size = 0;
    if (limit <= 1 || !vdmm->memdev || !vdmm->memdev->mr.ram_block ||
        dmm_check_block_size(bs, VIRTIO_DMM_MIN_BLOCK_SIZE, NULL, 0)) {
        return;
    }
    region_size = virtio_dmm_region_size(vdmm);
    if (!region_size || !QEMU_IS_ALIGNED(region_size, bs)) {
        return;
    }
    vdmm->memslot_size = MAX(bs, QEMU_ALIGN_UP(region_size / limit, bs));
    vdmm->nb_memslots = DIV_ROUND_UP(region_size, vdmm->memslot_size);
}

static unsigned int virtio_dmm_get_memslots(VirtIODMM *vdmm)
{
    return vdmm->nb_memslots ? vdmm->nb_memslots : 1;
}

static void virtio_dmm_add_size_change_notifier(VirtIODMM *vdmm,
                                                Notifier *notifier)
{
    notifier_list_add(&vdmm->size_change_notifiers, notifier);
}

static void virtio_dmm_unplug_request_check(VirtIODMM *vdmm, Error **errp)
{
    if (vdmm->dmm && (dmm_plugged_size(vdmm->dmm) ||
                      dmm_unplugged_size(vdmm->dmm))) {
        error_setg(errp, "virtio-dmm cannot be unplugged while the guest has"
                   " 0x%" PRIx64 " bytes of its region plugged and 0x%" PRIx64
                   " bytes of pages unplugged: set '%s' to 0 first",
                   dmm_plugged_size(vdmm->dmm), dmm_unplugged_size(vdmm->dmm),
                   VIRTIO_DMM_REQUESTED_SIZE_PROP);
    }
}

/*
 * --- properties ---
 *
 * QOM holds the configuration, the requested size (the one thing set at
 * run time besides stats-interval), the sizes and the guest's latest
 * report (guest-stats); counters are read through query-memory-devices
 * only (virtio_dmm_fill_device_info()).
 *
 * Names virtio-mem has mean what they mean there: size is the plugged
 * memory of the region, requested-size the region memory the guest is
 * asked to plug.  The guest's total RAM has its own names: guest-size
 * (now) and requested-guest-size (the target, which may be below the boot
 * size); requested-size is requested-guest-size - boot-size, or 0 below
 * the boot size.
 */

/* The guest's target total RAM, also before realize. */
static uint64_t virtio_dmm_requested_guest_size(VirtIODMM *vdmm)
{
    if (vdmm->dmm) {
        return dmm_requested_size(vdmm->dmm);
    }
    if (vdmm->initial_requested_size != UINT64_MAX) {
        return virtio_dmm_boot_size(vdmm) + vdmm->initial_requested_size;
    }
    if (vdmm->initial_requested_guest_size != UINT64_MAX) {
        return vdmm->initial_requested_guest_size;
    }
    return virtio_dmm_boot_size(vdmm);
}

static void virtio_dmm_get_requested_guest_size(Object *obj, Visitor *v,
                                                const char *name,
                                                void *opaque, Error **errp)
{
    uint64_t value = virtio_dmm_requested_guest_size(VIRTIO_DMM(obj));

    visit_type_size(v, name, &value, errp);
}

/* The region memory the guest is asked to plug (virtio-mem's meaning). */
static void virtio_dmm_get_requested_size(Object *obj, Visitor *v,
                                          const char *name, void *opaque,
                                          Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value, boot = virtio_dmm_boot_size(vdmm);

    if (vdmm->dmm) {
        value = virtio_dmm_requested_region_size(vdmm);
    } else if (vdmm->initial_requested_size != UINT64_MAX) {
        value = vdmm->initial_requested_size;
    } else {
        value = virtio_dmm_requested_guest_size(vdmm);
        value = value > boot ? value - boot : 0;
    }
    visit_type_size(v, name, &value, errp);
}

/*
 * A new target for the guest's total RAM: the library checks it and
 * nothing changes on error.  The guest is notified even of an unchanged
 * value.
 */
static bool virtio_dmm_set_target(VirtIODMM *vdmm, uint64_t value,
                                  Error **errp)
{
    char err[256];

    if (dmm_set_requested_size(vdmm->dmm, value, err, sizeof(err))) {
        error_setg(errp, "%s", err);
        return false;
    }
    trace_virtio_dmm_requested_size(value);
    virtio_notify_config(VIRTIO_DEVICE(vdmm));
    return true;
}

/*
 * Before realize the value is only stored (realize checks it against the
 * memdev and boot size); afterwards it is the new target.
 */
static void virtio_dmm_set_requested_guest_size(Object *obj, Visitor *v,
                                                const char *name,
                                                void *opaque, Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value;

    if (!visit_type_size(v, name, &value, errp)) {
        return;
    }
    if (!DEVICE(obj)->realized) {
        vdmm->initial_requested_guest_size = value;
        return;
    }
    virtio_dmm_set_target(vdmm, value, errp);
}

/* As virtio-mem: the region memory to plug; the target is boot + it. */
static void virtio_dmm_set_requested_size(Object *obj, Visitor *v,
                                          const char *name, void *opaque,
                                          Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value, region_size;
    Error *err = NULL;

    if (!visit_type_size(v, name, &value, errp)) {
        return;
    }
    if (!DEVICE(obj)->realized) {
        vdmm->initial_requested_size = value;
        return;
    }
    region_size = virtio_dmm_region_size(vdmm);
    if (value > region_size) {
        error_setg(errp, "'%s' 0x%" PRIx64 " exceeds the memdev size 0x%"
                   PRIx64, name, value, region_size);
        return;
    }
    if (!virtio_dmm_set_target(vdmm, virtio_dmm_boot_size(vdmm) + value,
                               &err)) {
        error_propagate_prepend(errp, err, "'%s' 0x%" PRIx64 ": ", name,
                                value);
    }
}

/* The plugged memory of the region (virtio-mem's size). */
static void virtio_dmm_get_size(Object *obj, Visitor *v, const char *name,
                                void *opaque, Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = vdmm->dmm ? dmm_plugged_size(vdmm->dmm) : 0;

    visit_type_size(v, name, &value, errp);
}

static void virtio_dmm_get_unplugged_size(Object *obj, Visitor *v,
                                          const char *name, void *opaque,
                                          Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = vdmm->dmm ? dmm_unplugged_size(vdmm->dmm) : 0;

    visit_type_size(v, name, &value, errp);
}

/* The guest's RAM now: boot + plugged - unplugged pages. */
static void virtio_dmm_get_guest_size(Object *obj, Visitor *v,
                                      const char *name, void *opaque,
                                      Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = vdmm->dmm ? dmm_current_size(vdmm->dmm) :
                     virtio_dmm_boot_size(vdmm);

    visit_type_size(v, name, &value, errp);
}

static void virtio_dmm_get_boot_size(Object *obj, Visitor *v,
                                     const char *name, void *opaque,
                                     Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = virtio_dmm_boot_size(vdmm);

    visit_type_size(v, name, &value, errp);
}

/*
 * The guest's latest report and when it arrived, like virtio-balloon's
 * guest-stats: { "last-update": seconds since the epoch, "stats": ... }.
 * An error before the first report.
 */
static void virtio_dmm_get_guest_stats(Object *obj, Visitor *v,
                                       const char *name, void *opaque,
                                       Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    VirtioDMMGuestStats *gs;

    if (!vdmm->have_stats) {
        error_setg(errp, "the guest has not sent a report yet");
        return;
    }
    gs = g_new0(VirtioDMMGuestStats, 1);
    gs->last_update = vdmm->last_stats_wall;
    gs->stats = virtio_dmm_get_stats(vdmm);
    visit_type_VirtioDMMGuestStats(v, name, &gs, errp);
    qapi_free_VirtioDMMGuestStats(gs);
}

static void virtio_dmm_get_stats_interval(Object *obj, Visitor *v,
                                          const char *name, void *opaque,
                                          Error **errp)
{
    uint32_t value = VIRTIO_DMM(obj)->stats_interval;

    visit_type_uint32(v, name, &value, errp);
}

/* Checked like in realize; a running guest hears of it at once. */
static void virtio_dmm_set_stats_interval(Object *obj, Visitor *v,
                                          const char *name, void *opaque,
                                          Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    char err[256];
    uint32_t value;

    if (!visit_type_uint32(v, name, &value, errp)) {
        return;
    }
    if (dmm_check_stats_interval(value, err, sizeof(err))) {
        error_setg(errp, "%s", err);
        return;
    }
    vdmm->stats_interval = value;
    if (vdmm->dmm && vdmm->stats) {
        virtio_notify_config(VIRTIO_DEVICE(vdmm));
    }
}

static const Property virtio_dmm_properties[] = {
    DEFINE_PROP_UINT64(VIRTIO_DMM_ADDR_PROP, VirtIODMM, addr, 0),
    DEFINE_PROP_UINT32(VIRTIO_DMM_NODE_PROP, VirtIODMM, node, 0),
    DEFINE_PROP_BOOL(VIRTIO_DMM_BOOT_RAM_PROP, VirtIODMM, boot_ram, true),
    DEFINE_PROP_SIZE(VIRTIO_DMM_BLOCK_SIZE_PROP, VirtIODMM, block_size,
                     VIRTIO_DMM_DEFAULT_BLOCK_SIZE),
    DEFINE_PROP_LINK(VIRTIO_DMM_MEMDEV_PROP, VirtIODMM, memdev,
                     TYPE_MEMORY_BACKEND, HostMemoryBackend *),
    DEFINE_PROP_BOOL(VIRTIO_DMM_FPR_PROP, VirtIODMM, free_page_reporting,
                     true),
    DEFINE_PROP_BOOL(VIRTIO_DMM_PAGES_PROP, VirtIODMM, pages, true),
    DEFINE_PROP_BOOL(VIRTIO_DMM_PREALLOC_PROP, VirtIODMM, prealloc, false),
    DEFINE_PROP_BOOL(VIRTIO_DMM_SUB_BLOCKS_PROP, VirtIODMM, sub_blocks, true),
    DEFINE_PROP_ON_OFF_AUTO(VIRTIO_DMM_HINTS_PROP, VirtIODMM, hints_prop,
                            ON_OFF_AUTO_AUTO),
    DEFINE_PROP_BOOL(VIRTIO_DMM_DUP_HINTS_PROP, VirtIODMM, dup_hints, false),
    DEFINE_PROP_BOOL(VIRTIO_DMM_STATS_PROP, VirtIODMM, stats, true),
    DEFINE_PROP_BOOL(VIRTIO_DMM_AUTO_GRANT_PROP, VirtIODMM, auto_grant,
                     false),
    DEFINE_PROP_SIZE(VIRTIO_DMM_AUTO_GRANT_LIMIT_PROP, VirtIODMM,
                     auto_grant_limit, 0),
    /* for comparisons only: the whole region mapped, all the time */
    DEFINE_PROP_BOOL("x-dynamic-memslots", VirtIODMM, x_dynamic_memslots,
                     true),
};

static void virtio_dmm_instance_init(Object *obj)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);

    notifier_list_init(&vdmm->size_change_notifiers);
    QLIST_INIT(&vdmm->rdl_list);
    vdmm->stats_interval = VIRTIO_DMM_STATS_DEFAULT_MS;
    vdmm->initial_requested_guest_size = UINT64_MAX;
    vdmm->initial_requested_size = UINT64_MAX;
    object_property_add(obj, VIRTIO_DMM_STATS_INTERVAL_PROP, "uint32",
                        virtio_dmm_get_stats_interval,
                        virtio_dmm_set_stats_interval, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_REQUESTED_SIZE_PROP, "size",
                        virtio_dmm_get_requested_size,
                        virtio_dmm_set_requested_size, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_REQUESTED_GUEST_SIZE_PROP, "size",
                        virtio_dmm_get_requested_guest_size,
                        virtio_dmm_set_requested_guest_size, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_SIZE_PROP, "size",
                        virtio_dmm_get_size, NULL, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_UNPLUGGED_SIZE_PROP, "size",
                        virtio_dmm_get_unplugged_size, NULL, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_GUEST_SIZE_PROP, "size",
                        virtio_dmm_get_guest_size, NULL, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_BOOT_SIZE_PROP, "size",
                        virtio_dmm_get_boot_size, NULL, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_GUEST_STATS_PROP,
                        "VirtioDMMGuestStats", virtio_dmm_get_guest_stats,
                        NULL, NULL, NULL);
}

/*
 * The memory regions were finalized with their owner (us); their memory is
 * ours to free.
 */
static void virtio_dmm_instance_finalize(Object *obj)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);

    g_clear_pointer(&vdmm->memslots, g_free);
    g_clear_pointer(&vdmm->mr, g_free);
}

static void virtio_dmm_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioDeviceClass *vdc = VIRTIO_DEVICE_CLASS(klass);
    VirtIODMMClass *vdmc = VIRTIO_DMM_CLASS(klass);
    RamDiscardManagerClass *rdmc = RAM_DISCARD_MANAGER_CLASS(klass);

    device_class_set_props(dc, virtio_dmm_properties);
    dc->vmsd = &vmstate_virtio_dmm;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);

    vdc->realize = virtio_dmm_device_realize;
    vdc->unrealize = virtio_dmm_device_unrealize;
    vdc->get_config = virtio_dmm_get_config;
    vdc->get_features = virtio_dmm_get_features;
    vdc->set_features = virtio_dmm_set_features;
    vdc->vmsd = &vmstate_virtio_dmm_device;

    vdmc->fill_device_info = virtio_dmm_fill_device_info;
    vdmc->get_memory_region = virtio_dmm_get_memory_region;
    vdmc->add_size_change_notifier = virtio_dmm_add_size_change_notifier;
    vdmc->unplug_request_check = virtio_dmm_unplug_request_check;
    vdmc->decide_memslots = virtio_dmm_decide_memslots;
    vdmc->get_memslots = virtio_dmm_get_memslots;

    rdmc->get_min_granularity = virtio_dmm_rdm_get_min_granularity;
    rdmc->is_populated = virtio_dmm_rdm_is_populated;
    rdmc->replay_populated = virtio_dmm_rdm_replay_populated;
    rdmc->replay_discarded = virtio_dmm_rdm_replay_discarded;
    rdmc->register_listener = virtio_dmm_rdm_register_listener;
    rdmc->unregister_listener = virtio_dmm_rdm_unregister_listener;
}

static const TypeInfo virtio_dmm_info = {
    .name = TYPE_VIRTIO_DMM,
    .parent = TYPE_VIRTIO_DEVICE,
    .instance_size = sizeof(VirtIODMM),
    .instance_init = virtio_dmm_instance_init,
    .instance_finalize = virtio_dmm_instance_finalize,
    .class_init = virtio_dmm_class_init,
    .class_size = sizeof(VirtIODMMClass),
    .interfaces = (InterfaceInfo[]) {
        { TYPE_RAM_DISCARD_MANAGER },
        { }
    },
};

static void virtio_dmm_register_types(void)
{
    type_register_static(&virtio_dmm_info);
    type_register_static(&virtio_dmm_system_reset_info);
}

type_init(virtio_dmm_register_types)
