// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device library: blocks and sub-blocks (the request
 * virtqueue), requests for memory, machine reset and free page reports.
 */
#include <errno.h>
#include <string.h>

#include "dmm_internal.h"

/* --- sub-blocks: the unit of state; a block is sbs_per_block of them --- */

/* Plugged sub-blocks in [first, first + count). */
static uint64_t dmm_count_sbs(const struct dmm_dev *d, uint64_t first,
                              uint64_t count)
{
    return dmm_bitmap_count(d->sb_plugged, first, count);
}

enum dmm_block_state dmm_block_state(const struct dmm_dev *d, uint64_t block)
{
    uint64_t n = dmm_count_sbs(d, block * d->sbs_per_block, d->sbs_per_block);

    return n == d->sbs_per_block ? DMM_BLOCK_PLUGGED
           : n                   ? DMM_BLOCK_PARTIAL
                                 : DMM_BLOCK_UNPLUGGED;
}

static void dmm_set_sbs(struct dmm_dev *d, uint64_t first, uint64_t count,
                        bool plugged)
{
    uint64_t i;

    for (i = first; i < first + count; i++) {
        dmm_bit_assign(d->sb_plugged, i, plugged);
    }
}

uint64_t dmm_partial_plugged_size(const struct dmm_dev *d)
{
    uint64_t i, k, n = 0;

    for (i = 0; i < d->nb_blocks; i++) {
        k = dmm_count_sbs(d, i * d->sbs_per_block, d->sbs_per_block);
        if (k != d->sbs_per_block) {
            n += k;
        }
    }
    return n * d->sb_size;
}

uint64_t dmm_count_plugged(const struct dmm_dev *d, uint64_t first,
                           uint64_t count)
{
    uint64_t i, n = 0;

    for (i = first; i < first + count; i++) {
        n += dmm_block_state(d, i) == DMM_BLOCK_PLUGGED;
    }
    return n;
}

/* The sub-blocks [*first, *first + *count) that hold a region range. */
static bool dmm_sb_span(const struct dmm_dev *d, uint64_t offset, uint64_t len,
                        uint64_t *first, uint64_t *count)
{
    if (!len || offset >= d->p.region_size || len > d->p.region_size - offset) {
        return false;
    }
    *first = offset / d->sb_size;
    *count = (offset + len - 1) / d->sb_size - *first + 1;
    return true;
}

bool dmm_range_is_plugged(const struct dmm_dev *d, uint64_t offset,
                          uint64_t len)
{
    uint64_t first, count;

    return dmm_sb_span(d, offset, len, &first, &count) &&
           dmm_count_sbs(d, first, count) == count;
}

bool dmm_range_in_use(const struct dmm_dev *d, uint64_t offset, uint64_t len)
{
    uint64_t first, count;

    return dmm_sb_span(d, offset, len, &first, &count) &&
           dmm_count_sbs(d, first, count);
}

/*
 * A RamDiscardManager replays a range as runs of one state and notifies
 * its listeners run by run: walk the sub-blocks, clip each run to the
 * range asked for.
 */
int dmm_for_each_range(const struct dmm_dev *d, uint64_t offset, uint64_t len,
                       bool plugged, dmm_range_fn fn, void *opaque)
{
    uint64_t first, count, i, run, start, end;
    int ret;

    if (!dmm_sb_span(d, offset, len, &first, &count)) {
        return 0;
    }
    for (i = first; i < first + count; i = run) {
        if (dmm_bit_test(d->sb_plugged, i) != plugged) {
            run = i + 1;
            continue;
        }
        for (run = i + 1; run < first + count &&
             dmm_bit_test(d->sb_plugged, run) == plugged; run++) {
            /* extend the run */
        }
        start = i * d->sb_size;
        end = run * d->sb_size;
        start = start < offset ? offset : start;
        end = end > offset + len ? offset + len : end;
        ret = fn(opaque, start, end - start);
        if (ret) {
            return ret;
        }
    }
    return 0;
}

/* --- what a VMM's listeners were told (RamDiscardManager) --- */

size_t dmm_told_bytes(const struct dmm_dev *d)
{
    return dmm_bitmap_bytes(d->nb_sbs);
}

void dmm_told_set(const struct dmm_dev *d, uint8_t *told, uint64_t offset,
                  uint64_t len, bool plugged)
{
    uint64_t first, count, i;

    if (!dmm_sb_span(d, offset, len, &first, &count)) {
        return;
    }
    for (i = first; i < first + count; i++) {
        dmm_bit_assign(told, i, plugged);
    }
}

/*
 * Call @fn for each run of sub-blocks in [first, first + count) whose
 * state is @plugged and whose told bit is not, then set their told bits
 * to @plugged.
 */
static void dmm_sync_runs(const struct dmm_dev *d, uint8_t *told,
                          uint64_t first, uint64_t count, bool plugged,
                          dmm_range_fn fn, void *opaque)
{
    uint64_t i, run;

    for (i = first; i < first + count; i = run) {
        if (dmm_bit_test(d->sb_plugged, i) != plugged ||
            dmm_bit_test(told, i) == plugged) {
            run = i + 1;
            continue;
        }
        for (run = i + 1; run < first + count &&
             dmm_bit_test(d->sb_plugged, run) == plugged &&
             dmm_bit_test(told, run) != plugged; run++) {
            dmm_bit_assign(told, run, plugged);
        }
        dmm_bit_assign(told, i, plugged);
        fn(opaque, i * d->sb_size, (run - i) * d->sb_size);
    }
}

void dmm_told_sync(const struct dmm_dev *d, uint8_t *told, uint64_t offset,
                   uint64_t len, dmm_range_fn discarded, dmm_range_fn populated,
                   void *opaque)
{
    uint64_t first, count;

    if (!dmm_sb_span(d, offset, len, &first, &count)) {
        return;
    }
    dmm_sync_runs(d, told, first, count, false, discarded, opaque);
    dmm_sync_runs(d, told, first, count, true, populated, opaque);
}

bool dmm_range_has_unplugged_pages(const struct dmm_dev *d, uint64_t offset,
                                   uint64_t len)
{
    uint64_t ps = d->p.page_size;

    if (!ps || !d->unplugged_size) {
        return false;
    }
    return dmm_bitmap_count(d->region_pages, offset / ps, len / ps) != 0;
}

void dmm_state_changed(struct dmm_dev *d, uint64_t offset, uint64_t len)
{
    if (d->ops->state_changed) {
        d->ops->state_changed(d->opaque, offset, len);
    }
}

/* --- requests --- */

/*
 * Validate a range from the guest in units of @unit bytes (a block or a
 * sub-block): aligned, at least one unit, no overflow, inside the region.
 * On success the range is returned in sub-blocks.
 */
static int dmm_check_range(const struct dmm_dev *d,
                           const struct virtio_dmm_req_range *r, uint64_t unit,
                           uint64_t *first, uint64_t *count)
{
    uint64_t addr = dmm_le64(&r->addr), nb = dmm_le64(&r->nb_blocks);
    uint64_t units = d->p.region_size / unit, off;

    if (addr % unit || !nb || nb > units) {
        return -EINVAL;
    }
    if (addr < d->p.region_addr) {
        return -EINVAL;
    }
    off = addr - d->p.region_addr;
    if (off / unit > units - nb) {
        return -EINVAL;
    }
    *first = off / d->sb_size;
    *count = nb * (unit / d->sb_size);
    return 0;
}

static uint16_t dmm_plug_sbs(struct dmm_dev *d, uint64_t first, uint64_t count,
                             unsigned int *changed)
{
    uint64_t sbs = d->sb_size;
    int ret;

    if (dmm_count_sbs(d, first, count)) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (dmm_current_size(d) + count * sbs > d->requested_size) {
        return VIRTIO_DMM_RESP_NACK;
    }
    ret = d->ops->populate(d->opaque, first * sbs, count * sbs);
    if (ret) {
        d->counters.backend_errors++;
        /* Leave nothing half-populated behind. */
        d->ops->discard(d->opaque, first * sbs, count * sbs);
        /* A host out of memory is a refusal the driver retries, no fault. */
        return ret == -ENOMEM ? VIRTIO_DMM_RESP_NACK : VIRTIO_DMM_RESP_ERROR;
    }
    dmm_set_sbs(d, first, count, true);
    d->plugged_size += count * sbs;
    dmm_state_changed(d, first * sbs, count * sbs);
    *changed |= DMM_CHANGED_PLUGGED;
    d->counters.plugs++;
    return VIRTIO_DMM_RESP_ACK;
}

static uint16_t dmm_unplug_sbs(struct dmm_dev *d, uint64_t first,
                               uint64_t count, unsigned int *changed)
{
    uint64_t sbs = d->sb_size;

    if (dmm_count_sbs(d, first, count) != count ||
        dmm_range_has_unplugged_pages(d, first * sbs, count * sbs)) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (d->ops->discard(d->opaque, first * sbs, count * sbs)) {
        d->counters.backend_errors++;
        return VIRTIO_DMM_RESP_ERROR;
    }
    dmm_set_sbs(d, first, count, false);
    d->plugged_size -= count * sbs;
    dmm_state_changed(d, first * sbs, count * sbs);
    *changed |= DMM_CHANGED_PLUGGED;
    d->counters.unplugs++;
    return VIRTIO_DMM_RESP_ACK;
}

/* State of the sub-blocks [first, first + count). */
static uint16_t dmm_state_of(const struct dmm_dev *d, uint64_t first,
                             uint64_t count)
{
    uint64_t n = dmm_count_sbs(d, first, count);

    if (n == count) {
        return VIRTIO_DMM_STATE_PLUGGED;
    }
    return n ? VIRTIO_DMM_STATE_MIXED : VIRTIO_DMM_STATE_UNPLUGGED;
}

static int dmm_discard_region(struct dmm_dev *d)
{
    if (d->ops->discard(d->opaque, 0, d->p.region_size)) {
        d->counters.backend_errors++;
        return -EIO;
    }
    return 0;
}

unsigned int dmm_forget_all(struct dmm_dev *d)
{
    unsigned int changed = 0;

    memset(d->sb_plugged, 0, dmm_bitmap_bytes(d->nb_sbs));
    if (d->p.page_size) {
        memset(d->boot_pages, 0, dmm_bitmap_bytes(d->nb_boot_pages));
        memset(d->region_pages, 0, dmm_bitmap_bytes(d->nb_region_pages));
    }
    if (d->unplugged_size) {
        changed |= DMM_CHANGED_UNPLUGGED;
    }
    if (d->plugged_size) {
        changed |= DMM_CHANGED_PLUGGED;
    }
    d->unplugged_size = 0;
    d->plugged_size = 0;
    dmm_state_changed(d, 0, d->p.region_size);
    return changed;
}

/*
 * Machine reset: every block becomes unplugged even if the discard fails
 * (the next guest starts from nothing either way); the failure is returned
 * for the VMM to report.
 */
int dmm_unplug_all(struct dmm_dev *d, unsigned int *changed)
{
    int ret = dmm_discard_region(d);

    *changed = dmm_forget_all(d);
    return ret;
}

/*
 * The grant policy: with auto-grant, grant up to grant_limit and every
 * offer back (a size at or below the guest's RAM now); without, forward.
 */
static enum dmm_ask_result dmm_policy(const struct dmm_dev *d, uint64_t size)
{
    if (!d->auto_grant) {
        return DMM_ASK_FORWARDED;
    }
    if (size > dmm_grant_limit(d) && size > dmm_current_size(d)) {
        return DMM_ASK_REFUSED;
    }
    return DMM_ASK_GRANTED;
}

/*
 * The guest asks for a total of @req->size bytes: a valid requested_size
 * and known reasons, or ERROR.  A grant sets requested_size here, so the
 * guest's next look at the configuration sees it; the VMM hears of every
 * valid request (ops->grant).
 */
static uint16_t dmm_process_ask(struct dmm_dev *d,
                                const struct virtio_dmm_req_ask *req,
                                unsigned int *changed)
{
    static const uint16_t answer[] = {
        [DMM_ASK_GRANTED] = VIRTIO_DMM_RESP_ACK,
        [DMM_ASK_REFUSED] = VIRTIO_DMM_RESP_NACK,
        [DMM_ASK_FORWARDED] = VIRTIO_DMM_RESP_BUSY,
    };
    struct dmm_ask ask = {
        .size = dmm_le64(&req->size),
        .current = dmm_current_size(d),
        .reason = dmm_le64(&req->reason),
    };

    if (!d->ops->grant || (ask.reason & ~(uint64_t)VIRTIO_DMM_ASK_REASONS) ||
        dmm_check_requested_size(d, ask.size, NULL, 0)) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    d->counters.asks++;
    ask.result = dmm_policy(d, ask.size);
    if (ask.result == DMM_ASK_GRANTED) {
        d->requested_size = ask.size;
        *changed |= DMM_CHANGED_REQUESTED;
        d->counters.asks_granted++;
    }
    d->ops->grant(d->opaque, &ask);
    return answer[ask.result];
}

/* PLUG, PLUG_SB, UNPLUG, UNPLUG_SB: a range, then a change of state. */
static uint16_t dmm_process_range(struct dmm_dev *d, uint16_t type,
                                  const struct virtio_dmm_req_range *r,
                                  unsigned int *changed)
{
    bool sb =
        type == VIRTIO_DMM_REQ_PLUG_SB || type == VIRTIO_DMM_REQ_UNPLUG_SB;
    uint64_t first, count;

    if ((sb && !d->p.sub_block_size) ||
        dmm_check_range(d, r, sb ? d->sb_size : d->p.block_size, &first,
                        &count)) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (!dmm_may(d, may_change_state)) {
        return VIRTIO_DMM_RESP_BUSY;
    }
    if (type == VIRTIO_DMM_REQ_PLUG || type == VIRTIO_DMM_REQ_PLUG_SB) {
        return dmm_plug_sbs(d, first, count, changed);
    }
    return dmm_unplug_sbs(d, first, count, changed);
}

/* As a request, a failed discard answers ERROR and changes nothing. */
static uint16_t dmm_process_unplug_all(struct dmm_dev *d, unsigned int *changed)
{
    if (!dmm_may(d, may_change_state)) {
        return VIRTIO_DMM_RESP_BUSY;
    }
    if (dmm_discard_region(d)) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    *changed |= dmm_forget_all(d);
    d->counters.unplugs++;
    return VIRTIO_DMM_RESP_ACK;
}

static uint16_t dmm_process(struct dmm_dev *d, const struct virtio_dmm_req *req,
                            struct virtio_dmm_resp *resp, unsigned int *changed)
{
    uint16_t type = dmm_le16(&req->type);
    uint64_t first, count;
    int i;

    for (i = 0; i < 3; i++) {
        if (dmm_le16(&req->padding[i])) {
            return VIRTIO_DMM_RESP_ERROR;
        }
    }

    switch (type) {
    case VIRTIO_DMM_REQ_PLUG:
    case VIRTIO_DMM_REQ_PLUG_SB:
    case VIRTIO_DMM_REQ_UNPLUG:
    case VIRTIO_DMM_REQ_UNPLUG_SB:
        return dmm_process_range(d, type, &req->u.plug, changed);
    case VIRTIO_DMM_REQ_UNPLUG_ALL:
        return dmm_process_unplug_all(d, changed);
    case VIRTIO_DMM_REQ_STATE:
    case VIRTIO_DMM_REQ_STATE_SB:
        if ((type == VIRTIO_DMM_REQ_STATE_SB && !d->p.sub_block_size) ||
            dmm_check_range(d, &req->u.state,
                            type == VIRTIO_DMM_REQ_STATE ? d->p.block_size :
                            d->sb_size, &first, &count)) {
            return VIRTIO_DMM_RESP_ERROR;
        }
        dmm_put_le16(&resp->u.state.state, dmm_state_of(d, first, count));
        return VIRTIO_DMM_RESP_ACK;
    case VIRTIO_DMM_REQ_ASK:
        return dmm_process_ask(d, &req->u.ask, changed);
    default:
        return VIRTIO_DMM_RESP_ERROR;
    }
}

int dmm_handle_request(struct dmm_dev *d, const void *req, size_t req_len,
                       struct virtio_dmm_resp *resp)
{
    struct virtio_dmm_req r;
    unsigned int changed = 0;
    uint16_t type;

    if (req_len < sizeof(r)) {
        return -EINVAL;
    }
    memcpy(&r, req, sizeof(r));
    memset(resp, 0, sizeof(*resp));
    d->counters.requests++;
    type = dmm_process(d, &r, resp, &changed);
    switch (type) {
    case VIRTIO_DMM_RESP_NACK:
        d->counters.nacks++;
        break;
    case VIRTIO_DMM_RESP_BUSY:
        d->counters.busy++;
        break;
    case VIRTIO_DMM_RESP_ERROR:
        d->counters.errors++;
        break;
    }
    dmm_put_le16(&resp->type, type);
    return (int)changed;
}

/* --- free page reporting --- */

/* Is a reported range guest RAM the guest may report? */
static bool dmm_report_ok(const struct dmm_dev *d, enum dmm_ram ram,
                          uint64_t offset, uint64_t len, uint64_t align)
{
    if (!(d->features & (1ULL << VIRTIO_DMM_F_FREE_PAGE_REPORTING)) || !len ||
        !align || (offset | len) % align) {
        return false;
    }
    switch (ram) {
    case DMM_RAM_BOOT:
        return d->ops->discard_boot && offset < d->p.boot_size &&
               len <= d->p.boot_size - offset;
    case DMM_RAM_REGION:
        /* only plugged memory is the guest's to report */
        return dmm_range_is_plugged(d, offset, len);
    default:
        return false;
    }
}

int dmm_report_free(struct dmm_dev *d, enum dmm_ram ram, uint64_t offset,
                    uint64_t len, uint64_t align)
{
    int ret;

    if (!dmm_report_ok(d, ram, offset, len, align) ||
        !dmm_may(d, may_discard)) {
        d->counters.refused_reports++;
        return -EINVAL;
    }
    ret = ram == DMM_RAM_BOOT ? d->ops->discard_boot(d->opaque, offset, len)
                              : d->ops->discard(d->opaque, offset, len);
    if (ret) {
        d->counters.backend_errors++;
        d->counters.refused_reports++;
        return -EINVAL;
    }
    d->counters.reported_bytes += len;
    return 0;
}
