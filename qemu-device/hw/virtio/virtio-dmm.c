/*
 * virtio-dmm: dynamic memory device
 *
 * The guest plugs and unplugs blocks of a device-owned region, and single
 * pages of any of its RAM, until its RAM matches requested-size.  The
 * device logic (block and page states, request validation, size
 * accounting) is the portable library in dmm/; this file
 * is the QEMU glue: properties, the virtqueues, discarding host memory,
 * reset, migration and the memory-device hooks.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
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
#define VIRTIO_DMM_VQ_SIZE              128
/* the kernel's page reporting sends up to 32 ranges at a time */
#define VIRTIO_DMM_REPORT_VQ_SIZE       32
#define VIRTIO_DMM_PAGE_VQ_SIZE         32
#define VIRTIO_DMM_HINT_VQ_SIZE         32
#define VIRTIO_DMM_STATS_VQ_SIZE        8
/* Bounds of stats-interval (milliseconds; 0 turns reports off). */
#define VIRTIO_DMM_STATS_MIN_MS         100
#define VIRTIO_DMM_STATS_MAX_MS         3600000
#define VIRTIO_DMM_STATS_DEFAULT_MS     1000
/*
 * Hints make host memory mergeable in chunks of the specification's hint
 * range (2 MiB): every madvise() may split a mapping, and a process has a
 * limited number of them; hinted chunks give up THPs (KSM splits them).
 * Boot RAM and the region start 2 MiB aligned in guest-physical space, so
 * chunks of their RAM blocks are the guest's aligned ranges.
 */
#define VIRTIO_DMM_HINT_CHUNK           VIRTIO_DMM_HINT_RANGE_SIZE
/*
 * At most this many separate runs of mergeable chunks per RAM block: each
 * run may split the host mapping into three VMAs, and a process has
 * vm.max_map_count (65530 by default) of them.  Hints that would start
 * another run are rejected; hints next to or inside a run are not.
 */
#define VIRTIO_DMM_MAX_HINT_RUNS        1024
/* Guest pages of page requests; also the host page size they need. */
#define VIRTIO_DMM_PAGE_SIZE            4096

/* --- backend of the device library --- */

static RAMBlock *virtio_dmm_rb(VirtIODMM *vdmm)
{
    return vdmm->memdev->mr.ram_block;
}

static int virtio_dmm_populate(void *opaque, uint64_t offset, uint64_t len)
{
    /* Plugged memory is backed lazily, on the guest's first touch. */
    return 0;
}

static int virtio_dmm_discard(void *opaque, uint64_t offset, uint64_t len)
{
    VirtIODMM *vdmm = opaque;

    return ram_block_discard_range(virtio_dmm_rb(vdmm), offset, len);
}

static void virtio_dmm_plugged_changed(void *opaque, uint64_t plugged_size)
{
    VirtIODMM *vdmm = opaque;

    notifier_list_notify(&vdmm->size_change_notifiers, &plugged_size);
}

/* --- what the guest can reach: memslots over plugged blocks --- */

static uint64_t virtio_dmm_region_size(VirtIODMM *vdmm)
{
    return memory_region_size(&vdmm->memdev->mr);
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
    uint64_t bpm = vdmm->memslot_size / vdmm->block_size;
    uint64_t b, end = MIN((i + 1) * bpm, vdmm->dmm->nb_blocks);

    if (!vdmm->x_dynamic_memslots) {
        return true;
    }
    for (b = i * bpm; b < end; b++) {
        if (vdmm->dmm->state[b] != DMM_BLOCK_UNPLUGGED) {
            return true;
        }
    }
    return false;
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
    virtio_dmm_update_memslots(opaque, offset, len);
}

/*
 * Page requests name guest-physical addresses; boot RAM is the machine's
 * RAM backend, mapped (through aliases) wherever the board put it.
 */
static int virtio_dmm_boot_page(void *opaque, uint64_t gpa, uint64_t *offset)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    MemoryRegionSection section;
    int ret = -1;

    section = memory_region_find(get_system_memory(), gpa,
                                 VIRTIO_DMM_PAGE_SIZE);
    if (!section.mr) {
        return -1;
    }
    if (ms->ram && section.mr == ms->ram &&
        int128_get64(section.size) == VIRTIO_DMM_PAGE_SIZE) {
        *offset = section.offset_within_region;
        ret = 0;
    }
    memory_region_unref(section.mr);
    return ret;
}

static int virtio_dmm_discard_boot(void *opaque, uint64_t offset, uint64_t len)
{
    MachineState *ms = MACHINE(qdev_get_machine());

    return ram_block_discard_range(ms->ram->ram_block, offset, len);
}

/* The RAM block a hint names: boot RAM or the region. */
static RAMBlock *virtio_dmm_hint_rb(VirtIODMM *vdmm, bool boot)
{
    return boot ? MACHINE(qdev_get_machine())->ram->ram_block :
                  virtio_dmm_rb(vdmm);
}

static const void *virtio_dmm_page_ptr(void *opaque, bool boot,
                                       uint64_t offset)
{
    RAMBlock *rb = virtio_dmm_hint_rb(opaque, boot);

    if (offset + VIRTIO_DMM_HINT_PAGE_SIZE > qemu_ram_get_used_length(rb)) {
        return NULL;
    }
    return (uint8_t *)qemu_ram_get_host_addr(rb) + offset;
}

/* Make the host chunk at chunk index @chunk mergeable, once. */
static int virtio_dmm_share_chunk(VirtIODMM *vdmm, bool boot, uint64_t chunk)
{
    RAMBlock *rb = virtio_dmm_hint_rb(vdmm, boot);
    uint64_t start = chunk * VIRTIO_DMM_HINT_CHUNK;
    uint64_t len = MIN(VIRTIO_DMM_HINT_CHUNK,
                       qemu_ram_get_used_length(rb) - start);
    void *host = (uint8_t *)qemu_ram_get_host_addr(rb) + start;

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
    vdmm->mergeable_bytes += len;
    trace_virtio_dmm_hint_chunk(boot, start, len);
    return 0;
}

static bool virtio_dmm_chunk_test(VirtIODMM *vdmm, bool boot, uint64_t chunk)
{
    return chunk / 8 < vdmm->hint_chunks_len[boot] &&
           vdmm->hint_chunks[boot][chunk / 8] & (1u << (chunk % 8));
}

/*
 * How the number of runs of mergeable chunks changes if @chunk becomes
 * mergeable: +1 alone, 0 next to one run, -1 joining two.
 */
static int virtio_dmm_runs_delta(VirtIODMM *vdmm, bool boot, uint64_t chunk)
{
    return 1 - (chunk && virtio_dmm_chunk_test(vdmm, boot, chunk - 1)) -
           virtio_dmm_chunk_test(vdmm, boot, chunk + 1);
}

static int virtio_dmm_share(void *opaque, bool boot, uint64_t offset)
{
    VirtIODMM *vdmm = opaque;
    uint64_t chunk = offset / VIRTIO_DMM_HINT_CHUNK;
    int delta, ret;

    if (chunk / 8 >= vdmm->hint_chunks_len[boot]) {
        return -EINVAL;
    }
    if (virtio_dmm_chunk_test(vdmm, boot, chunk)) {
        return 0;
    }
    delta = virtio_dmm_runs_delta(vdmm, boot, chunk);
    if (delta > 0 && vdmm->hint_runs[boot] >= VIRTIO_DMM_MAX_HINT_RUNS) {
        return -ENOSPC;
    }
    ret = virtio_dmm_share_chunk(vdmm, boot, chunk);
    if (!ret) {
        vdmm->hint_chunks[boot][chunk / 8] |= 1u << (chunk % 8);
        vdmm->hint_runs[boot] += delta;
    }
    return ret;
}

/* The ID and QOM path of the device the user sees (virtio-dmm-pci). */
static DeviceState *virtio_dmm_proxy(VirtIODMM *vdmm)
{
    BusState *bus = qdev_get_parent_bus(DEVICE(vdmm));

    return bus && bus->parent ? bus->parent : DEVICE(vdmm);
}

/*
 * Policy for the guest's requests: with auto-grant, grant up to max-size
 * (and accept every offer); without, leave it to the management layer,
 * which gets the VIRTIO_DMM_ASK event and may set requested-size.
 */
static uint16_t virtio_dmm_ask(void *opaque, uint64_t size, uint64_t reason)
{
    VirtIODMM *vdmm = opaque;
    DeviceState *proxy = virtio_dmm_proxy(vdmm);
    g_autofree char *path = object_get_canonical_path(OBJECT(proxy));
    uint64_t max = vdmm->max_size ? vdmm->max_size :
                   vdmm->dmm->p.boot_size + vdmm->dmm->p.region_size;
    uint64_t cur = dmm_current_size(vdmm->dmm);
    VirtioDMMAskResult result;
    uint16_t answer;

    if (!vdmm->auto_grant) {
        result = VIRTIO_DMM_ASK_RESULT_FORWARDED;
        answer = VIRTIO_DMM_RESP_BUSY;
    } else if (size > max && size > cur) {
        result = VIRTIO_DMM_ASK_RESULT_REFUSED;
        answer = VIRTIO_DMM_RESP_NACK;
    } else {
        result = VIRTIO_DMM_ASK_RESULT_GRANTED;
        answer = VIRTIO_DMM_RESP_ACK;
    }
    trace_virtio_dmm_ask(size, cur, reason, answer);
    qapi_event_send_virtio_dmm_ask(proxy->id, path, size, cur,
                                   reason & VIRTIO_DMM_ASK_PRESSURE, result);
    return answer;
}

static const struct dmm_backend_ops virtio_dmm_backend = {
    .populate = virtio_dmm_populate,
    .discard = virtio_dmm_discard,
    .plugged_changed = virtio_dmm_plugged_changed,
    .state_changed = virtio_dmm_state_changed,
    .boot_page = virtio_dmm_boot_page,
    .discard_boot = virtio_dmm_discard_boot,
    .page_ptr = virtio_dmm_page_ptr,
    .share = virtio_dmm_share,
    .ask = virtio_dmm_ask,
};

/* --- the request virtqueue --- */

/*
 * Postcopy cannot handle concurrent discards, and blocks plugged during
 * precopy would reach the destination with stale content: no state changes
 * while a migration runs (the guest gets BUSY and retries).  Nor while
 * anything disabled discarding: realize holds discards required, so that
 * is only ever a safety net.
 */
static bool virtio_dmm_is_busy(void)
{
    return migration_in_incoming_postcopy() || migration_is_running() ||
           ram_block_discard_is_disabled();
}

static void virtio_dmm_drop_element(VirtQueue *vq, VirtQueueElement *elem)
{
    virtqueue_detach_element(vq, elem, 0);
    g_free(elem);
}

static void virtio_dmm_handle_request(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIODMM *vdmm = VIRTIO_DMM(vdev);
    struct virtio_dmm_resp resp;
    struct virtio_dmm_req req;
    VirtQueueElement *elem;
    uint64_t requested;
    size_t len;
    int ret;

    while ((elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
        len = iov_to_buf(elem->out_sg, elem->out_num, 0, &req, sizeof(req));
        if (len < sizeof(req)) {
            virtio_error(vdev, "virtio-dmm protocol violation: request of %zu"
                         " bytes, expected %zu", len, sizeof(req));
            virtio_dmm_drop_element(vq, elem);
            return;
        }
        if (iov_size(elem->in_sg, elem->in_num) < sizeof(resp)) {
            virtio_error(vdev, "virtio-dmm protocol violation: %zu bytes for"
                         " the response, expected %zu",
                         iov_size(elem->in_sg, elem->in_num), sizeof(resp));
            virtio_dmm_drop_element(vq, elem);
            return;
        }

        trace_virtio_dmm_request(le16_to_cpu(req.type),
                                 le64_to_cpu(req.u.plug.addr),
                                 le64_to_cpu(req.u.plug.nb_blocks));
        vdmm->dmm->busy = virtio_dmm_is_busy();
        requested = vdmm->dmm->requested_size;
        ret = dmm_handle_request(vdmm->dmm, &req, sizeof(req), &resp);
        assert(ret == sizeof(resp));
        trace_virtio_dmm_response(le16_to_cpu(resp.type),
                                  vdmm->dmm->plugged_size);

        iov_from_buf(elem->in_sg, elem->in_num, 0, &resp, sizeof(resp));
        virtqueue_push(vq, elem, sizeof(resp));
        virtio_notify(vdev, vq);
        g_free(elem);
        /* a granted request for memory changed requested_size */
        if (vdmm->dmm->requested_size != requested) {
            trace_virtio_dmm_requested_size(vdmm->dmm->requested_size);
            virtio_notify_config(vdev);
        }
    }
}

/* --- the page virtqueue --- */

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
static bool virtio_dmm_discard_inhibited(void)
{
    return ram_block_discard_is_disabled() ||
           migration_in_incoming_postcopy() ||
           migration_in_bg_snapshot();
}

/*
 * A request with a list (page requests, hints): up to @max_len bytes are
 * copied out of the guest; one shorter than @hdr_len, or without room for
 * the response, violates the protocol.  @process answers it (the library
 * checks every entry before anything changes).
 */
static void virtio_dmm_serve_lists(VirtIODevice *vdev, VirtQueue *vq,
                                   const char *what, size_t hdr_len,
                                   size_t max_len,
                                   void (*process)(VirtIODMM *vdmm,
                                                   const uint8_t *buf,
                                                   size_t len,
                                                   struct virtio_dmm_resp *r))
{
    g_autofree uint8_t *buf = g_malloc(max_len);
    struct virtio_dmm_resp resp;
    VirtQueueElement *elem;
    size_t len;

    while ((elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
        len = iov_to_buf(elem->out_sg, elem->out_num, 0, buf, max_len);
        if (len < hdr_len ||
            iov_size(elem->in_sg, elem->in_num) < sizeof(resp)) {
            virtio_error(vdev, "virtio-dmm protocol violation: %s request"
                         " of %zu bytes, %zu bytes for the response", what,
                         len, iov_size(elem->in_sg, elem->in_num));
            virtio_dmm_drop_element(vq, elem);
            return;
        }
        process(VIRTIO_DMM(vdev), buf, len, &resp);
        iov_from_buf(elem->in_sg, elem->in_num, 0, &resp, sizeof(resp));
        virtqueue_push(vq, elem, sizeof(resp));
        virtio_notify(vdev, vq);
        g_free(elem);
    }
}

static void virtio_dmm_process_pages(VirtIODMM *vdmm, const uint8_t *buf,
                                     size_t len, struct virtio_dmm_resp *resp)
{
    int ret;

    vdmm->dmm->discard_inhibited = virtio_dmm_discard_inhibited();
    ret = dmm_handle_page_request(vdmm->dmm, buf, len, resp);
    assert(ret == sizeof(*resp));
    trace_virtio_dmm_page_request(lduw_le_p(buf), ldl_le_p(buf + 4),
                                  le16_to_cpu(resp->type),
                                  vdmm->dmm->unplugged_size);
}

/* A page request: a header and up to max_pages addresses. */
static void virtio_dmm_handle_pages(VirtIODevice *vdev, VirtQueue *vq)
{
    virtio_dmm_serve_lists(vdev, vq, "page",
                           sizeof(struct virtio_dmm_page_req),
                           sizeof(struct virtio_dmm_page_req) +
                           DMM_MAX_PAGES_PER_REQ * sizeof(uint64_t),
                           virtio_dmm_process_pages);
}

/* --- free page reporting --- */

/*
 * May the guest's free range at @host (@len bytes) be discarded?  Only if it
 * is boot RAM, or lies entirely in plugged blocks of our region: a report
 * of anything else (device memory, ROM, unplugged blocks) is ignored.
 */
static bool virtio_dmm_report_ok(VirtIODMM *vdmm, void *host, size_t len,
                                 RAMBlock **rb, ram_addr_t *offset)
{
    MachineState *ms = MACHINE(qdev_get_machine());

    *rb = qemu_ram_block_from_host(host, false, offset);
    if (!*rb || !len || !QEMU_IS_ALIGNED(*offset | len,
                                         qemu_ram_pagesize(*rb)) ||
        *offset + len > qemu_ram_get_used_length(*rb)) {
        return false;
    }
    if (*rb == virtio_dmm_rb(vdmm)) {
        return dmm_range_is_plugged(vdmm->dmm, *offset, len);
    }
    return ms->ram && *rb == ms->ram->ram_block;
}

/*
 * The guest lends us free pages until we return the buffer: discard them.
 * Discarding is skipped when it is not allowed (VFIO, postcopy, background
 * snapshot): the report is then only acknowledged.
 */
static void virtio_dmm_handle_report(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIODMM *vdmm = VIRTIO_DMM(vdev);
    /* without the feature the queue only exists to keep indices fixed */
    bool inhibited = virtio_dmm_discard_inhibited() ||
        !virtio_vdev_has_feature(vdev, VIRTIO_DMM_F_FREE_PAGE_REPORTING);
    VirtQueueElement *elem;
    ram_addr_t offset;
    unsigned int i;
    RAMBlock *rb;

    while ((elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
        for (i = 0; i < elem->in_num; i++) {
            void *host = elem->in_sg[i].iov_base;
            size_t len = elem->in_sg[i].iov_len;

            if (inhibited ||
                !virtio_dmm_report_ok(vdmm, host, len, &rb, &offset) ||
                ram_block_discard_range(rb, offset, len)) {
                vdmm->refused_reports++;
                trace_virtio_dmm_report_refused(elem->in_addr[i], len);
                continue;
            }
            vdmm->reported_bytes += len;
        }
        virtqueue_push(vq, elem, 0);
        virtio_notify(vdev, vq);
        g_free(elem);
    }
}

/* --- shared-page hints --- */

/*
 * Hints are advice: the library checks every address, then compares each
 * page's content with the hint, and only then makes its chunk mergeable.
 * Refused while memory must not be shared or discarded (VFIO, incoming
 * postcopy) and when the guest did not negotiate hints.
 */
static void virtio_dmm_process_hints(VirtIODMM *vdmm, const uint8_t *buf,
                                     size_t len, struct virtio_dmm_resp *resp)
{
    int ret;

    vdmm->dmm->hints_refused = ram_block_discard_is_disabled() ||
        migration_in_incoming_postcopy() ||
        !virtio_vdev_has_feature(VIRTIO_DEVICE(vdmm), VIRTIO_DMM_F_HINTS);
    vdmm->dmm->dup_hints = virtio_vdev_has_feature(VIRTIO_DEVICE(vdmm),
                                                   VIRTIO_DMM_F_HINTS_DUP);
    ret = dmm_handle_hint_request(vdmm->dmm, buf, len, resp);
    assert(ret == sizeof(*resp));
    trace_virtio_dmm_hint_request(lduw_le_p(buf), ldl_le_p(buf + 4),
                                  le16_to_cpu(resp->type),
                                  le32_to_cpu(resp->u.hint.accepted));
}

static void virtio_dmm_handle_hints(VirtIODevice *vdev, VirtQueue *vq)
{
    virtio_dmm_serve_lists(vdev, vq, "hint",
                           sizeof(struct virtio_dmm_hint_req),
                           sizeof(struct virtio_dmm_hint_req) +
                           VIRTIO_DMM_MAX_HINTS *
                           sizeof(struct virtio_dmm_hint),
                           virtio_dmm_process_hints);
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

    if (ms->numa_state && ms->numa_state->num_nodes) {
        virtio_add_feature(&features, VIRTIO_DMM_F_NODE_ID);
    }
    if (VIRTIO_DMM(vdev)->free_page_reporting) {
        virtio_add_feature(&features, VIRTIO_DMM_F_FREE_PAGE_REPORTING);
    }
    if (VIRTIO_DMM(vdev)->pages) {
        virtio_add_feature(&features, VIRTIO_DMM_F_PAGES);
    }
    if (VIRTIO_DMM(vdev)->sub_blocks) {
        virtio_add_feature(&features, VIRTIO_DMM_F_SUB_BLOCKS);
    }
    if (VIRTIO_DMM(vdev)->hints) {
        virtio_add_feature(&features, VIRTIO_DMM_F_HINTS);
        if (VIRTIO_DMM(vdev)->dup_hints) {
            virtio_add_feature(&features, VIRTIO_DMM_F_HINTS_DUP);
        }
    }
    if (VIRTIO_DMM(vdev)->stats) {
        virtio_add_feature(&features, VIRTIO_DMM_F_STATS);
    }
    return features;
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
                   " unplugged memory must not be backed",
                   VIRTIO_DMM_MEMDEV_PROP);
        return false;
    }
    return true;
}

/*
 * Page requests discard single 4 KiB pages of boot RAM and of the region:
 * both must be RAM backends with 4 KiB host pages.
 */
static bool virtio_dmm_check_pages(VirtIODMM *vdmm, Error **errp)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    uint64_t boot_ps, region_ps = qemu_ram_pagesize(virtio_dmm_rb(vdmm));

    if (!ms->ram || !ms->ram->ram_block) {
        error_setg(errp, "'%s' needs the machine's RAM in a memory backend;"
                   " set %s=off", VIRTIO_DMM_PAGES_PROP,
                   VIRTIO_DMM_PAGES_PROP);
        return false;
    }
    boot_ps = qemu_ram_pagesize(ms->ram->ram_block);
    if (boot_ps != VIRTIO_DMM_PAGE_SIZE || region_ps != VIRTIO_DMM_PAGE_SIZE) {
        error_setg(errp, "'%s' needs 0x%x byte host pages, but boot RAM has"
                   " 0x%" PRIx64 " and the memdev 0x%" PRIx64 "; set %s=off",
                   VIRTIO_DMM_PAGES_PROP, VIRTIO_DMM_PAGE_SIZE, boot_ps,
                   region_ps, VIRTIO_DMM_PAGES_PROP);
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
    if (!ms->ram || !ms->ram->ram_block) {
        return "the machine's RAM is not in a memory backend";
    }
    if (qemu_ram_is_shared(ms->ram->ram_block) || qemu_ram_is_shared(rb)) {
        return "boot RAM or the memdev is shared memory (share=on)";
    }
    if (qemu_ram_pagesize(ms->ram->ram_block) != VIRTIO_DMM_HINT_PAGE_SIZE ||
        qemu_ram_pagesize(rb) != VIRTIO_DMM_HINT_PAGE_SIZE) {
        return "boot RAM or the memdev does not have 4 KiB pages";
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

static bool virtio_dmm_check_props(VirtIODMM *vdmm, Error **errp)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    int nb_numa_nodes = ms->numa_state ? ms->numa_state->num_nodes : 0;
    uint64_t page_size = qemu_ram_pagesize(virtio_dmm_rb(vdmm));

    if ((nb_numa_nodes && vdmm->node >= nb_numa_nodes) ||
        (!nb_numa_nodes && vdmm->node)) {
        error_setg(errp, "'%s' property is %" PRIu32 ", but the machine has"
                   " %d NUMA node(s)", VIRTIO_DMM_NODE_PROP, vdmm->node,
                   nb_numa_nodes ? nb_numa_nodes : 1);
        return false;
    }
    if (!is_power_of_2(vdmm->block_size) ||
        vdmm->block_size < VIRTIO_DMM_MIN_BLOCK_SIZE) {
        error_setg(errp, "'%s' property is 0x%" PRIx64 ", but must be a power"
                   " of two of at least 0x%" PRIx64, VIRTIO_DMM_BLOCK_SIZE_PROP,
                   vdmm->block_size, (uint64_t)VIRTIO_DMM_MIN_BLOCK_SIZE);
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
    if (vdmm->pages && !virtio_dmm_check_pages(vdmm, errp)) {
        return false;
    }
    if (vdmm->stats_interval && (vdmm->stats_interval < VIRTIO_DMM_STATS_MIN_MS
        || vdmm->stats_interval > VIRTIO_DMM_STATS_MAX_MS)) {
        error_setg(errp, "'%s' property is %" PRIu32 ", but must be 0 (off)"
                   " or between %d and %d ms", VIRTIO_DMM_STATS_INTERVAL_PROP,
                   vdmm->stats_interval, VIRTIO_DMM_STATS_MIN_MS,
                   VIRTIO_DMM_STATS_MAX_MS);
        return false;
    }
    return virtio_dmm_check_hints(vdmm, errp);
}

static void virtio_dmm_device_realize(DeviceState *dev, Error **errp)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIODMM *vdmm = VIRTIO_DMM(dev);
    struct dmm_params p;
    char err[256];
    Object *obj;
    int ret;

    if (!virtio_dmm_check_memdev(vdmm, errp) ||
        !virtio_dmm_check_props(vdmm, errp)) {
        return;
    }

    p.block_size = vdmm->block_size;
    p.region_addr = vdmm->addr;
    p.region_size = memory_region_size(&vdmm->memdev->mr);
    p.boot_size = ms->ram_size;
    p.page_size = vdmm->pages ? VIRTIO_DMM_PAGE_SIZE : 0;
    p.sub_block_size = vdmm->sub_blocks ? VIRTIO_DMM_SUB_BLOCK_SIZE : 0;
    vdmm->dmm = g_new0(struct dmm_dev, 1);
    if (dmm_dev_init(vdmm->dmm, &p, &virtio_dmm_backend, vdmm, err,
                     sizeof(err))) {
        error_setg(errp, "%s (property '%s')", err,
                   p.region_size % p.block_size ? VIRTIO_DMM_MEMDEV_PROP :
                   VIRTIO_DMM_ADDR_PROP);
        goto out_free;
    }
    if (!vdmm->initial_requested_size) {
        vdmm->initial_requested_size = p.boot_size;
    }
    if (vdmm->max_size &&
        dmm_check_requested_size(vdmm->dmm, vdmm->max_size, err,
                                 sizeof(err))) {
        error_setg(errp, "'%s' property: %s", VIRTIO_DMM_MAX_SIZE_PROP, err);
        goto out_fini;
    }
    if (dmm_set_requested_size(vdmm->dmm, vdmm->initial_requested_size, err,
                               sizeof(err))) {
        error_setg(errp, "'%s' property: %s", VIRTIO_DMM_REQUESTED_SIZE_PROP,
                   err);
        goto out_fini;
    }

    /*
     * Unplugs discard memory: refuse to run where anything disabled
     * discarding (VFIO and other devices that pin guest memory for DMA,
     * confidential guests), and keep such devices from being added later.
     * The device does not coordinate its discards with them (no
     * RamDiscardManager), so the plain, uncoordinated requirement.
     */
    if (ram_block_discard_require(true)) {
        error_setg(errp, "virtio-dmm needs to discard RAM, but discarding is"
                   " disabled (e.g. by vfio)");
        goto out_fini;
    }
    /* A reused backend may hold memory: start with everything unplugged. */
    if (!runstate_check(RUN_STATE_INMIGRATE)) {
        ret = ram_block_discard_range(virtio_dmm_rb(vdmm), 0, p.region_size);
        if (ret) {
            error_setg_errno(errp, -ret, "virtio-dmm cannot discard its"
                             " region");
            goto out_discard;
        }
    }

    vdmm->mig_nb_blocks = vdmm->dmm->nb_blocks;
    vdmm->mig_boot_bitmap_len = dmm_bitmap_bytes(vdmm->dmm->nb_boot_pages);
    vdmm->mig_region_bitmap_len =
        dmm_bitmap_bytes(vdmm->dmm->nb_region_pages);
    vdmm->mig_sb_bitmap_len = dmm_bitmap_bytes(vdmm->dmm->nb_sbs);

    if (!vdmm->mr) {
        virtio_dmm_prepare_mr(vdmm);
    }
    if (vdmm->memslot_size % vdmm->block_size || !vdmm->x_dynamic_memslots) {
        vdmm->nb_memslots = 0;
    }
    virtio_dmm_prepare_memslots(vdmm);
    virtio_dmm_update_memslots(vdmm, 0, p.region_size);
    if (vdmm->hints) {
        vdmm->hint_chunks_len[0] = DIV_ROUND_UP(p.region_size,
                                                8 * VIRTIO_DMM_HINT_CHUNK);
        vdmm->hint_chunks_len[1] = DIV_ROUND_UP(
            qemu_ram_get_used_length(ms->ram->ram_block),
            8 * VIRTIO_DMM_HINT_CHUNK);
        vdmm->hint_chunks[0] = g_malloc0(vdmm->hint_chunks_len[0]);
        vdmm->hint_chunks[1] = g_malloc0(vdmm->hint_chunks_len[1]);
    }

    virtio_init(vdev, VIRTIO_ID_DMM, sizeof(struct virtio_dmm_config));
    vdmm->vq = virtio_add_queue(vdev, VIRTIO_DMM_VQ_SIZE,
                                virtio_dmm_handle_request);
    /* Queue indices are fixed: report, page, hint, stats, in this order. */
    if (vdmm->free_page_reporting || vdmm->pages || vdmm->hints ||
        vdmm->stats) {
        vdmm->report_vq = virtio_add_queue(vdev, VIRTIO_DMM_REPORT_VQ_SIZE,
                                           virtio_dmm_handle_report);
    }
    if (vdmm->pages || vdmm->hints || vdmm->stats) {
        vdmm->page_vq = virtio_add_queue(vdev, VIRTIO_DMM_PAGE_VQ_SIZE,
                                         virtio_dmm_handle_pages);
    }
    if (vdmm->hints || vdmm->stats) {
        vdmm->hint_vq = virtio_add_queue(vdev, VIRTIO_DMM_HINT_VQ_SIZE,
                                         virtio_dmm_handle_hints);
    }
    if (vdmm->stats) {
        vdmm->stats_vq = virtio_add_queue(vdev, VIRTIO_DMM_STATS_VQ_SIZE,
                                          virtio_dmm_handle_stats);
    }
    host_memory_backend_set_mapped(vdmm->memdev, true);
    vmstate_register_ram(&vdmm->memdev->mr, DEVICE(vdmm));

    /* Unplug all on machine reset only; see virtio_dmm_system_reset_hold. */
    obj = object_new(TYPE_VIRTIO_DMM_SYSTEM_RESET);
    vdmm->system_reset = VIRTIO_DMM_SYSTEM_RESET(obj);
    vdmm->system_reset->vdmm = vdmm;
    qemu_register_resettable(obj);
    return;

out_discard:
    ram_block_discard_require(false);
out_fini:
    dmm_dev_fini(vdmm->dmm);
    g_free(vdmm->hint_chunks[0]);
    g_free(vdmm->hint_chunks[1]);
    vdmm->hint_chunks[0] = vdmm->hint_chunks[1] = NULL;
out_free:
    g_free(vdmm->dmm);
    vdmm->dmm = NULL;
}

/*
 * The stream is loaded into buffers of our own (allocated once, at the
 * first migration) and dmm takes it only after every field was checked.
 */
static void virtio_dmm_alloc_mig_buffers(VirtIODMM *vdmm)
{
    if (vdmm->mig_state) {
        return;
    }
    vdmm->mig_state = g_malloc0(vdmm->mig_nb_blocks);
    vdmm->mig_sb_plugged = g_malloc0(vdmm->mig_sb_bitmap_len);
    vdmm->mig_boot_pages = g_malloc0(vdmm->mig_boot_bitmap_len);
    vdmm->mig_region_pages = g_malloc0(vdmm->mig_region_bitmap_len);
}

static void virtio_dmm_free_mig_buffers(VirtIODMM *vdmm)
{
    g_clear_pointer(&vdmm->mig_state, g_free);
    g_clear_pointer(&vdmm->mig_sb_plugged, g_free);
    g_clear_pointer(&vdmm->mig_boot_pages, g_free);
    g_clear_pointer(&vdmm->mig_region_pages, g_free);
}

static void virtio_dmm_device_unrealize(DeviceState *dev)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIODMM *vdmm = VIRTIO_DMM(dev);

    qemu_unregister_resettable(OBJECT(vdmm->system_reset));
    object_unref(OBJECT(vdmm->system_reset));
    vmstate_unregister_ram(&vdmm->memdev->mr, DEVICE(vdmm));
    host_memory_backend_set_mapped(vdmm->memdev, false);
    if (vdmm->stats_vq) {
        virtio_del_queue(vdev, VIRTIO_DMM_VQ_STATS);
        vdmm->stats_vq = NULL;
    }
    if (vdmm->hint_vq) {
        virtio_del_queue(vdev, VIRTIO_DMM_VQ_HINT);
        vdmm->hint_vq = NULL;
    }
    if (vdmm->page_vq) {
        virtio_del_queue(vdev, VIRTIO_DMM_VQ_PAGE);
        vdmm->page_vq = NULL;
    }
    if (vdmm->report_vq) {
        virtio_del_queue(vdev, VIRTIO_DMM_VQ_REPORT);
        vdmm->report_vq = NULL;
    }
    virtio_del_queue(vdev, VIRTIO_DMM_VQ_REQUEST);
    virtio_cleanup(vdev);
    /* nothing is plugged any more (unplug_request_check), unmap it all */
    memset(vdmm->dmm->state, DMM_BLOCK_UNPLUGGED, vdmm->dmm->nb_blocks);
    virtio_dmm_update_memslots(vdmm, 0, virtio_dmm_region_size(vdmm));
    virtio_dmm_free_mig_buffers(vdmm);
    dmm_dev_fini(vdmm->dmm);
    g_free(vdmm->dmm);
    vdmm->dmm = NULL;
    g_free(vdmm->hint_chunks[0]);
    g_free(vdmm->hint_chunks[1]);
    vdmm->hint_chunks[0] = vdmm->hint_chunks[1] = NULL;
    ram_block_discard_require(false);
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

    /* Waking up from suspend is no reboot: memory stays. */
    if (type == RESET_TYPE_WAKEUP) {
        return;
    }
    trace_virtio_dmm_unplug_all(vdmm->dmm->plugged_size);
    if (dmm_unplug_all(vdmm->dmm)) {
        warn_report("virtio-dmm: discarding the region on reset failed");
    }
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

static int virtio_dmm_pre_save(void *opaque)
{
    VirtIODMM *vdmm = opaque;
    struct dmm_dev *d = vdmm->dmm;

    virtio_dmm_alloc_mig_buffers(vdmm);
    vdmm->mig_block_size = vdmm->block_size;
    vdmm->mig_addr = vdmm->addr;
    vdmm->mig_region_size = d->p.region_size;
    vdmm->mig_requested_size = d->requested_size;
    vdmm->mig_plugged_size = d->plugged_size;
    vdmm->mig_unplugged_size = d->unplugged_size;
    vdmm->mig_stats_interval = vdmm->stats_interval;
    memcpy(vdmm->mig_state, d->state, vdmm->mig_nb_blocks);
    memcpy(vdmm->mig_sb_plugged, d->sb_plugged, vdmm->mig_sb_bitmap_len);
    if (d->p.page_size) {
        memcpy(vdmm->mig_boot_pages, d->boot_pages,
               vdmm->mig_boot_bitmap_len);
        memcpy(vdmm->mig_region_pages, d->region_pages,
               vdmm->mig_region_bitmap_len);
    }
    return 0;
}

/* Start from "nothing in the stream": subsections are optional. */
static int virtio_dmm_pre_load(void *opaque)
{
    VirtIODMM *vdmm = opaque;

    virtio_dmm_alloc_mig_buffers(vdmm);
    memset(vdmm->mig_sb_plugged, 0, vdmm->mig_sb_bitmap_len);
    memset(vdmm->mig_boot_pages, 0, vdmm->mig_boot_bitmap_len);
    memset(vdmm->mig_region_pages, 0, vdmm->mig_region_bitmap_len);
    vdmm->mig_unplugged_size = 0;
    vdmm->mig_have_sbs = false;
    vdmm->mig_stats_interval = vdmm->stats_interval;
    return 0;
}

/* What both sides set up must be the same, as virtio-mem checks it. */
static bool virtio_dmm_check_mig_props(VirtIODMM *vdmm)
{
    if (vdmm->mig_addr != vdmm->addr) {
        error_report("virtio-dmm: property '%s' differs: source 0x%" PRIx64
                     ", destination 0x%" PRIx64, VIRTIO_DMM_ADDR_PROP,
                     vdmm->mig_addr, vdmm->addr);
        return false;
    }
    if (vdmm->mig_block_size != vdmm->block_size) {
        error_report("virtio-dmm: property '%s' differs: source 0x%" PRIx64
                     ", destination 0x%" PRIx64, VIRTIO_DMM_BLOCK_SIZE_PROP,
                     vdmm->mig_block_size, vdmm->block_size);
        return false;
    }
    if (vdmm->mig_region_size != vdmm->dmm->p.region_size) {
        error_report("virtio-dmm: the size of property '%s' differs: source"
                     " 0x%" PRIx64 ", destination 0x%" PRIx64,
                     VIRTIO_DMM_MEMDEV_PROP, vdmm->mig_region_size,
                     vdmm->dmm->p.region_size);
        return false;
    }
    if (vdmm->mig_stats_interval &&
        (vdmm->mig_stats_interval < VIRTIO_DMM_STATS_MIN_MS ||
         vdmm->mig_stats_interval > VIRTIO_DMM_STATS_MAX_MS)) {
        error_report("virtio-dmm: '%s' of %" PRIu32 " ms in the stream is"
                     " out of range", VIRTIO_DMM_STATS_INTERVAL_PROP,
                     vdmm->mig_stats_interval);
        return false;
    }
    return true;
}

/*
 * The loaded state as a device of its own (the parameters are ours, the
 * state the stream's): the library checks that it agrees with itself and
 * with the parameters.  Only then does dmm take it.
 */
static int virtio_dmm_post_load(void *opaque, int version_id)
{
    VirtIODMM *vdmm = opaque;
    struct dmm_dev *d = vdmm->dmm, loaded = *d;
    uint64_t i, sbs = d->sb_size;
    char err[256];

    if (!virtio_dmm_check_mig_props(vdmm)) {
        return -EINVAL;
    }
    loaded.state = vdmm->mig_state;
    loaded.sb_plugged = vdmm->mig_sb_plugged;
    loaded.boot_pages = vdmm->mig_boot_pages;
    loaded.region_pages = vdmm->mig_region_pages;
    loaded.requested_size = vdmm->mig_requested_size;
    loaded.plugged_size = vdmm->mig_plugged_size;
    loaded.unplugged_size = vdmm->mig_unplugged_size;
    if (!vdmm->mig_have_sbs) {
        dmm_sbs_from_block_states(&loaded);
    }
    if (dmm_check_loaded_state(&loaded, err, sizeof(err))) {
        error_report("virtio-dmm: inconsistent migration stream: %s", err);
        return -EINVAL;
    }

    memcpy(d->state, loaded.state, d->nb_blocks);
    memcpy(d->sb_plugged, loaded.sb_plugged, vdmm->mig_sb_bitmap_len);
    if (d->p.page_size) {
        memcpy(d->boot_pages, loaded.boot_pages, vdmm->mig_boot_bitmap_len);
        memcpy(d->region_pages, loaded.region_pages,
               vdmm->mig_region_bitmap_len);
    }
    d->requested_size = loaded.requested_size;
    d->plugged_size = loaded.plugged_size;
    d->unplugged_size = loaded.unplugged_size;
    vdmm->stats_interval = vdmm->mig_stats_interval;
    virtio_dmm_update_memslots(vdmm, 0, d->p.region_size);

    if (migrate_ram_is_ignored(virtio_dmm_rb(vdmm))) {
        return 0;
    }
    /*
     * Unplugged sub-blocks arrived as zero pages: give them back again.
     * Unplugged pages read as zero on the source too and zero pages are
     * not written here, so they take no memory.
     */
    for (i = 0; i < d->nb_sbs; i++) {
        if (!dmm_range_is_plugged(d, i * sbs, sbs) &&
            ram_block_discard_range(virtio_dmm_rb(vdmm), i * sbs, sbs)) {
            error_report("virtio-dmm: discarding sub-block %" PRIu64
                         " failed", i);
            return -EINVAL;
        }
    }
    return 0;
}

static bool virtio_dmm_hints_needed(void *opaque)
{
    return VIRTIO_DMM(opaque)->hints;
}

/* The chunks hints made mergeable here are made mergeable there too. */
static int virtio_dmm_hints_post_load(void *opaque, int version_id)
{
    VirtIODMM *vdmm = opaque;
    uint64_t chunk;
    int boot;

    vdmm->mergeable_bytes = 0;
    for (boot = 0; boot < 2; boot++) {
        vdmm->hint_runs[boot] = 0;
        for (chunk = 0; chunk < 8ULL * vdmm->hint_chunks_len[boot];
             chunk++) {
            if (!virtio_dmm_chunk_test(vdmm, boot, chunk)) {
                continue;
            }
            if ((!chunk || !virtio_dmm_chunk_test(vdmm, boot, chunk - 1)) &&
                ++vdmm->hint_runs[boot] > VIRTIO_DMM_MAX_HINT_RUNS) {
                error_report("virtio-dmm: more than %d runs of hinted chunks"
                             " of %s in the stream", VIRTIO_DMM_MAX_HINT_RUNS,
                             boot ? "boot RAM" : "the region");
                return -EINVAL;
            }
            if (chunk * VIRTIO_DMM_HINT_CHUNK >=
                qemu_ram_get_used_length(virtio_dmm_hint_rb(vdmm, boot)) ||
                virtio_dmm_share_chunk(vdmm, boot, chunk)) {
                error_report("virtio-dmm: hinted chunk %" PRIu64 " of %s"
                             " is out of range or cannot be shared", chunk,
                             boot ? "boot RAM" : "the region");
                return -EINVAL;
            }
        }
    }
    return 0;
}

static const VMStateDescription vmstate_virtio_dmm_hints = {
    .name = "virtio-dmm-device/hints",
    .minimum_version_id = 1,
    .version_id = 1,
    .needed = virtio_dmm_hints_needed,
    .post_load = virtio_dmm_hints_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32_EQUAL(hint_chunks_len[0], VirtIODMM, NULL),
        VMSTATE_UINT32_EQUAL(hint_chunks_len[1], VirtIODMM, NULL),
        VMSTATE_VBUFFER_UINT32(hint_chunks[0], VirtIODMM, 1, NULL,
                               hint_chunks_len[0]),
        VMSTATE_VBUFFER_UINT32(hint_chunks[1], VirtIODMM, 1, NULL,
                               hint_chunks_len[1]),
        VMSTATE_END_OF_LIST()
    },
};

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

static bool virtio_dmm_pages_needed(void *opaque)
{
    return VIRTIO_DMM(opaque)->pages;
}

/* With pages: the two page bitmaps, checked in the device's post_load. */
static const VMStateDescription vmstate_virtio_dmm_pages = {
    .name = "virtio-dmm-device/pages",
    .minimum_version_id = 1,
    .version_id = 1,
    .needed = virtio_dmm_pages_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32_EQUAL(mig_boot_bitmap_len, VirtIODMM, NULL),
        VMSTATE_UINT32_EQUAL(mig_region_bitmap_len, VirtIODMM, NULL),
        VMSTATE_UINT64(mig_unplugged_size, VirtIODMM),
        VMSTATE_VBUFFER_UINT32(mig_boot_pages, VirtIODMM, 1, NULL,
                               mig_boot_bitmap_len),
        VMSTATE_VBUFFER_UINT32(mig_region_pages, VirtIODMM, 1, NULL,
                               mig_region_bitmap_len),
        VMSTATE_END_OF_LIST()
    },
};

static bool virtio_dmm_sub_blocks_needed(void *opaque)
{
    return VIRTIO_DMM(opaque)->sub_blocks;
}

static int virtio_dmm_sub_blocks_post_load(void *opaque, int version_id)
{
    VIRTIO_DMM(opaque)->mig_have_sbs = true;
    return 0;
}

/* With sub-blocks: their bitmap (the blocks' states only summarise it). */
static const VMStateDescription vmstate_virtio_dmm_sub_blocks = {
    .name = "virtio-dmm-device/sub-blocks",
    .minimum_version_id = 1,
    .version_id = 1,
    .needed = virtio_dmm_sub_blocks_needed,
    .post_load = virtio_dmm_sub_blocks_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32_EQUAL(mig_sb_bitmap_len, VirtIODMM, NULL),
        VMSTATE_VBUFFER_UINT32(mig_sb_plugged, VirtIODMM, 1, NULL,
                               mig_sb_bitmap_len),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_virtio_dmm_device = {
    .name = "virtio-dmm-device",
    .minimum_version_id = 1,
    .version_id = 1,
    .pre_save = virtio_dmm_pre_save,
    .pre_load = virtio_dmm_pre_load,
    .post_load = virtio_dmm_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(mig_block_size, VirtIODMM),
        VMSTATE_UINT64(mig_addr, VirtIODMM),
        VMSTATE_UINT64(mig_region_size, VirtIODMM),
        VMSTATE_UINT32_EQUAL(mig_nb_blocks, VirtIODMM, NULL),
        VMSTATE_UINT64(mig_requested_size, VirtIODMM),
        VMSTATE_UINT64(mig_plugged_size, VirtIODMM),
        VMSTATE_VBUFFER_UINT32(mig_state, VirtIODMM, 1, NULL, mig_nb_blocks),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &vmstate_virtio_dmm_pages,
        &vmstate_virtio_dmm_sub_blocks,
        &vmstate_virtio_dmm_hints,
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
 * What KSM saves this process, from /proc/self/ksm_stat, in bytes:
 * ksm_merging_pages (mapped shared) or ksm_zero_pages (mapped to the zero
 * page).  0 where the host does not say.
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

    vi->memaddr = vdmm->addr;
    vi->node = vdmm->node;
    vi->requested_size = d->requested_size;
    vi->plugged_size = d->plugged_size;
    vi->region_size = d->p.region_size;
    vi->boot_size = d->p.boot_size;
    vi->block_size = vdmm->block_size;
    vi->unplugged_size = d->unplugged_size;
    vi->reported_size = vdmm->reported_bytes;
    vi->hints_accepted = d->stats.hints_zero + d->stats.hints_dup;
    vi->hints_rejected = d->stats.hints_rejected;
    vi->hint_errors = d->stats.hint_errors;
    vi->hint_mergeable_size = vdmm->mergeable_bytes;
    vi->shared_size = virtio_dmm_ksm_stat("ksm_merging_pages");
    vi->zero_size = virtio_dmm_ksm_stat("ksm_zero_pages");
    vi->stats = virtio_dmm_get_stats((VirtIODMM *)vdmm);
    vi->stats_interval = vdmm->stats ? vdmm->stats_interval : 0;
    vi->auto_grant = vdmm->auto_grant;
    vi->max_size = vdmm->max_size ? vdmm->max_size :
                   d->p.boot_size + d->p.region_size;
    vi->sub_block_plugged_size = dmm_partial_plugged_size(d);
    vi->sub_block_size = d->sb_size;
    vi->size = dmm_current_size(d);
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
        !is_power_of_2(bs) || bs < VIRTIO_DMM_MIN_BLOCK_SIZE) {
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
    if (vdmm->dmm && (vdmm->dmm->plugged_size || vdmm->dmm->unplugged_size)) {
        error_setg(errp, "virtio-dmm cannot be unplugged while the guest has"
                   " 0x%" PRIx64 " bytes of its region plugged and 0x%" PRIx64
                   " bytes of pages unplugged: set '%s' to boot-size first",
                   vdmm->dmm->plugged_size, vdmm->dmm->unplugged_size,
                   VIRTIO_DMM_REQUESTED_SIZE_PROP);
    }
}

/* --- properties --- */

static void virtio_dmm_get_requested_size(Object *obj, Visitor *v,
                                          const char *name, void *opaque,
                                          Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = vdmm->dmm ? vdmm->dmm->requested_size :
                     vdmm->initial_requested_size;

    visit_type_size(v, name, &value, errp);
}

/*
 * Before realize the value is only stored (realize checks it against the
 * memdev and boot size); afterwards the library checks it and nothing
 * changes on error.  The guest is notified even of an unchanged value.
 */
static void virtio_dmm_set_requested_size(Object *obj, Visitor *v,
                                          const char *name, void *opaque,
                                          Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    char err[256];
    uint64_t value;

    if (!visit_type_size(v, name, &value, errp)) {
        return;
    }
    if (!DEVICE(obj)->realized) {
        vdmm->initial_requested_size = value;
        return;
    }
    if (dmm_set_requested_size(vdmm->dmm, value, err, sizeof(err))) {
        error_setg(errp, "%s", err);
        return;
    }
    trace_virtio_dmm_requested_size(value);
    virtio_notify_config(VIRTIO_DEVICE(vdmm));
}

static void virtio_dmm_get_plugged_size(Object *obj, Visitor *v,
                                        const char *name, void *opaque,
                                        Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = vdmm->dmm ? vdmm->dmm->plugged_size : 0;

    visit_type_size(v, name, &value, errp);
}

static void virtio_dmm_get_unplugged_size(Object *obj, Visitor *v,
                                          const char *name, void *opaque,
                                          Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = vdmm->dmm ? vdmm->dmm->unplugged_size : 0;

    visit_type_size(v, name, &value, errp);
}

/* Plugged in partially plugged blocks: the sub-block granularity. */
static void virtio_dmm_get_partial_size(Object *obj, Visitor *v,
                                        const char *name, void *opaque,
                                        Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = vdmm->dmm ? dmm_partial_plugged_size(vdmm->dmm) : 0;

    visit_type_size(v, name, &value, errp);
}

/* The guest's RAM now: boot + plugged - unplugged pages. */
static void virtio_dmm_get_size(Object *obj, Visitor *v, const char *name,
                                void *opaque, Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = vdmm->dmm ? dmm_current_size(vdmm->dmm) :
                     MACHINE(qdev_get_machine())->ram_size;

    visit_type_size(v, name, &value, errp);
}

static void virtio_dmm_get_boot_size(Object *obj, Visitor *v,
                                     const char *name, void *opaque,
                                     Error **errp)
{
    uint64_t value = MACHINE(qdev_get_machine())->ram_size;

    visit_type_size(v, name, &value, errp);
}

static void virtio_dmm_get_u64(Object *obj, Visitor *v, const char *name,
                               void *opaque, Error **errp)
{
    uint64_t value = *(uint64_t *)opaque;

    visit_type_uint64(v, name, &value, errp);
}

/* Hint counters of the device library (a uint64_t in dmm->stats). */
static void virtio_dmm_get_stat(Object *obj, Visitor *v, const char *name,
                                void *opaque, Error **errp)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);
    uint64_t value = 0;

    if (vdmm->dmm) {
        value = *(uint64_t *)((uint8_t *)&vdmm->dmm->stats +
                              (uintptr_t)opaque);
    }
    visit_type_uint64(v, name, &value, errp);
}

static void virtio_dmm_get_ksm_stat(Object *obj, Visitor *v, const char *name,
                                    void *opaque, Error **errp)
{
    uint64_t value = virtio_dmm_ksm_stat(opaque);

    visit_type_size(v, name, &value, errp);
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
    uint32_t value;

    if (!visit_type_uint32(v, name, &value, errp)) {
        return;
    }
    if (value && (value < VIRTIO_DMM_STATS_MIN_MS ||
                  value > VIRTIO_DMM_STATS_MAX_MS)) {
        error_setg(errp, "'%s' must be 0 (off) or between %d and %d ms,"
                   " not %" PRIu32, name, VIRTIO_DMM_STATS_MIN_MS,
                   VIRTIO_DMM_STATS_MAX_MS, value);
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
    DEFINE_PROP_SIZE(VIRTIO_DMM_BLOCK_SIZE_PROP, VirtIODMM, block_size,
                     VIRTIO_DMM_DEFAULT_BLOCK_SIZE),
    DEFINE_PROP_LINK(VIRTIO_DMM_MEMDEV_PROP, VirtIODMM, memdev,
                     TYPE_MEMORY_BACKEND, HostMemoryBackend *),
    DEFINE_PROP_BOOL(VIRTIO_DMM_FPR_PROP, VirtIODMM, free_page_reporting,
                     true),
    DEFINE_PROP_BOOL(VIRTIO_DMM_PAGES_PROP, VirtIODMM, pages, true),
    DEFINE_PROP_BOOL(VIRTIO_DMM_SUB_BLOCKS_PROP, VirtIODMM, sub_blocks, true),
    DEFINE_PROP_ON_OFF_AUTO(VIRTIO_DMM_HINTS_PROP, VirtIODMM, hints_prop,
                            ON_OFF_AUTO_AUTO),
    DEFINE_PROP_BOOL(VIRTIO_DMM_DUP_HINTS_PROP, VirtIODMM, dup_hints, false),
    DEFINE_PROP_BOOL(VIRTIO_DMM_STATS_PROP, VirtIODMM, stats, true),
    DEFINE_PROP_BOOL(VIRTIO_DMM_AUTO_GRANT_PROP, VirtIODMM, auto_grant,
                     false),
    DEFINE_PROP_SIZE(VIRTIO_DMM_MAX_SIZE_PROP, VirtIODMM, max_size, 0),
    /* for comparisons only: the whole region mapped, all the time */
    DEFINE_PROP_BOOL("x-dynamic-memslots", VirtIODMM, x_dynamic_memslots,
                     true),
};

static void virtio_dmm_instance_init(Object *obj)
{
    VirtIODMM *vdmm = VIRTIO_DMM(obj);

    notifier_list_init(&vdmm->size_change_notifiers);
    vdmm->stats_interval = VIRTIO_DMM_STATS_DEFAULT_MS;
    object_property_add(obj, VIRTIO_DMM_STATS_INTERVAL_PROP, "uint32",
                        virtio_dmm_get_stats_interval,
                        virtio_dmm_set_stats_interval, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_REQUESTED_SIZE_PROP, "size",
                        virtio_dmm_get_requested_size,
                        virtio_dmm_set_requested_size, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_PLUGGED_SIZE_PROP, "size",
                        virtio_dmm_get_plugged_size, NULL, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_UNPLUGGED_SIZE_PROP, "size",
                        virtio_dmm_get_unplugged_size, NULL, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_SIZE_PROP, "size",
                        virtio_dmm_get_size, NULL, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_PARTIAL_SIZE_PROP, "size",
                        virtio_dmm_get_partial_size, NULL, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_BOOT_SIZE_PROP, "size",
                        virtio_dmm_get_boot_size, NULL, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_REPORTED_PROP, "size",
                        virtio_dmm_get_u64, NULL, NULL,
                        &vdmm->reported_bytes);
    object_property_add(obj, VIRTIO_DMM_REFUSED_PROP, "uint64",
                        virtio_dmm_get_u64, NULL, NULL,
                        &vdmm->refused_reports);
    object_property_add(obj, VIRTIO_DMM_HINTS_ZERO_PROP, "uint64",
                        virtio_dmm_get_stat, NULL, NULL,
                        (void *)offsetof(struct dmm_stats, hints_zero));
    object_property_add(obj, VIRTIO_DMM_HINTS_DUP_PROP, "uint64",
                        virtio_dmm_get_stat, NULL, NULL,
                        (void *)offsetof(struct dmm_stats, hints_dup));
    object_property_add(obj, VIRTIO_DMM_HINTS_REJECTED_PROP, "uint64",
                        virtio_dmm_get_stat, NULL, NULL,
                        (void *)offsetof(struct dmm_stats, hints_rejected));
    object_property_add(obj, VIRTIO_DMM_HINT_ERRORS_PROP, "uint64",
                        virtio_dmm_get_stat, NULL, NULL,
                        (void *)offsetof(struct dmm_stats, hint_errors));
    object_property_add(obj, VIRTIO_DMM_MERGEABLE_PROP, "size",
                        virtio_dmm_get_u64, NULL, NULL,
                        &vdmm->mergeable_bytes);
    object_property_add(obj, VIRTIO_DMM_SHARED_PROP, "size",
                        virtio_dmm_get_ksm_stat, NULL, NULL,
                        (void *)"ksm_merging_pages");
    object_property_add(obj, VIRTIO_DMM_ZERO_SIZE_PROP, "size",
                        virtio_dmm_get_ksm_stat, NULL, NULL,
                        (void *)"ksm_zero_pages");
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

    device_class_set_props(dc, virtio_dmm_properties);
    dc->vmsd = &vmstate_virtio_dmm;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);

    vdc->realize = virtio_dmm_device_realize;
    vdc->unrealize = virtio_dmm_device_unrealize;
    vdc->get_config = virtio_dmm_get_config;
    vdc->get_features = virtio_dmm_get_features;
    vdc->vmsd = &vmstate_virtio_dmm_device;

    vdmc->fill_device_info = virtio_dmm_fill_device_info;
    vdmc->get_memory_region = virtio_dmm_get_memory_region;
    vdmc->add_size_change_notifier = virtio_dmm_add_size_change_notifier;
    vdmc->unplug_request_check = virtio_dmm_unplug_request_check;
    vdmc->decide_memslots = virtio_dmm_decide_memslots;
    vdmc->get_memslots = virtio_dmm_get_memslots;
}

static const TypeInfo virtio_dmm_info = {
    .name = TYPE_VIRTIO_DMM,
    .parent = TYPE_VIRTIO_DEVICE,
    .instance_size = sizeof(VirtIODMM),
    .instance_init = virtio_dmm_instance_init,
    .instance_finalize = virtio_dmm_instance_finalize,
    .class_init = virtio_dmm_class_init,
    .class_size = sizeof(VirtIODMMClass),
};

static void virtio_dmm_register_types(void)
{
    type_register_static(&virtio_dmm_info);
    type_register_static(&virtio_dmm_system_reset_info);
}

type_init(virtio_dmm_register_types)
