// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device library: page requests (the page virtqueue), single
 * pages of boot RAM and of plugged sub-blocks unplugged and plugged back.
 */
#include <errno.h>

#include "dmm_internal.h"

/* Bytes entry @i of a request names: page_size << order. */
static uint64_t dmm_entry_len(const struct dmm_dev *d,
                              const struct dmm_list_hdr *h)
{
    return d->p.page_size << h->arg;
}

/* The first page of entry @i of a page list (checked: cannot fail). */
static int dmm_entry_ref(const struct dmm_dev *d, const struct dmm_list_hdr *h,
                         const uint8_t *addrs, uint32_t i, struct dmm_ref *ref)
{
    return dmm_lookup(d, dmm_le64(addrs + 8 * i), dmm_entry_len(d, h), ref);
}

/*
 * Entry @i of a request: are its pages to become unplugged (true) or
 * plugged (false)?  MOVE_PAGES pairs are (old: plugged back, new:
 * unplugged).
 */
static bool dmm_entry_unplugs(uint16_t type, uint32_t i)
{
    if (type == VIRTIO_DMM_REQ_MOVE_PAGES) {
        return i % 2;
    }
    return type == VIRTIO_DMM_REQ_UNPLUG_PAGES;
}

/* Flip the 2^@order bits of the pages of @ref. */
static void dmm_entry_flip(const struct dmm_ref *ref, uint16_t order)
{
    uint64_t b;

    for (b = ref->bit; b < ref->bit + (1ULL << order); b++) {
        ref->bitmap[b / 8] ^= 1u << (b % 8);
    }
}

/* Is every page of @ref (2^@order pages) in state @unplugged? */
static bool dmm_entry_is(const struct dmm_ref *ref, uint16_t order,
                         bool unplugged)
{
    uint64_t b;

    for (b = ref->bit; b < ref->bit + (1ULL << order); b++) {
        if (dmm_bit_test(ref->bitmap, b) != unplugged) {
            return false;
        }
    }
    return true;
}

/* Undo the flips of entries [0, n), last first. */
static void dmm_pages_rollback(struct dmm_dev *d, const struct dmm_list_hdr *h,
                               const uint8_t *addrs, uint32_t n)
{
    struct dmm_ref ref;

    while (n--) {
        /* looked up successfully before; the lookup cannot change */
        if (!dmm_entry_ref(d, h, addrs, n, &ref)) {
            dmm_entry_flip(&ref, h->arg);
        }
    }
}

/*
 * After every entry was flipped in order: do its pages end up as the entry
 * says?  A page named more than once flips back and forth (each flip
 * checked the bits first), so one of its entries always ends up wrong:
 * this finds every repeated page in one pass, without comparing addresses
 * (which would cost O(n^2) under the VMM's lock).
 */
static bool dmm_pages_final(const struct dmm_dev *d,
                            const struct dmm_list_hdr *h, const uint8_t *addrs)
{
    struct dmm_ref ref;
    uint32_t i;

    for (i = 0; i < h->nb; i++) {
        if (dmm_entry_ref(d, h, addrs, i, &ref) ||
            !dmm_entry_is(&ref, h->arg, dmm_entry_unplugs(h->type, i))) {
            return false;
        }
    }
    return true;
}

/*
 * Check every entry and flip its pages' bits, in order, so that a page
 * named twice finds its own first flip and fails (or, in MOVE_PAGES, ends
 * in the wrong state).  Nothing stays changed on failure.  Linear in the
 * number of pages named.
 */
static uint16_t dmm_pages_apply(struct dmm_dev *d, const struct dmm_list_hdr *h,
                                const uint8_t *addrs)
{
    struct dmm_ref ref;
    uint32_t i;

    for (i = 0; i < h->nb; i++) {
        if (dmm_entry_ref(d, h, addrs, i, &ref) ||
            !dmm_entry_is(&ref, h->arg, !dmm_entry_unplugs(h->type, i))) {
            dmm_pages_rollback(d, h, addrs, i);
            return VIRTIO_DMM_RESP_ERROR;
        }
        dmm_entry_flip(&ref, h->arg);
    }
    if (!dmm_pages_final(d, h, addrs)) {
        dmm_pages_rollback(d, h, addrs, h->nb);
        return VIRTIO_DMM_RESP_ERROR;
    }
    return VIRTIO_DMM_RESP_ACK;
}

/*
 * Header checks beyond the common ones; the addresses are checked while
 * applied (dmm_pages_apply()), which needs the order of the list.  An
 * order needs F_PAGE_RANGES and is never taken for MOVE_PAGES (a range
 * is never moved: the driver holds it unmovable).
 */
static uint16_t dmm_check_pages(struct dmm_dev *d, const struct dmm_list_hdr *h,
                                const uint8_t *addrs)
{
    (void)addrs;
    if (!d->p.page_size) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (h->type != VIRTIO_DMM_REQ_UNPLUG_PAGES &&
        h->type != VIRTIO_DMM_REQ_PLUG_PAGES &&
        h->type != VIRTIO_DMM_REQ_MOVE_PAGES) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (h->type == VIRTIO_DMM_REQ_MOVE_PAGES && h->nb % 2) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (h->arg && (h->arg > VIRTIO_DMM_MAX_PAGE_ORDER ||
                   h->type == VIRTIO_DMM_REQ_MOVE_PAGES ||
                   !(d->features & (1ULL << VIRTIO_DMM_F_PAGE_RANGES)))) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    return VIRTIO_DMM_RESP_ACK;
}

/*
 * Discard what an applied request left unplugged: one call per entry, so
 * that a range goes back to the host whole (a huge page behind it is
 * freed, not split).
 */
static int dmm_pages_discard(struct dmm_dev *d, const struct dmm_list_hdr *h,
                             const uint8_t *addrs)
{
    uint64_t len = dmm_entry_len(d, h);
    struct dmm_ref ref;
    uint32_t i;
    int ret;

    if (!dmm_may(d, may_discard)) {
        return 0;
    }
    for (i = 0; i < h->nb; i++) {
        if (!dmm_entry_unplugs(h->type, i) ||
            dmm_entry_ref(d, h, addrs, i, &ref) ||
            !dmm_bit_test(ref.bitmap, ref.bit)) {
            continue;
        }
        ret = ref.boot ? d->ops->discard_boot(d->opaque, ref.offset, len)
                       : d->ops->discard(d->opaque, ref.offset, len);
        if (ret) {
            return ret;
        }
    }
    return 0;
}

static void dmm_pages_account(struct dmm_dev *d, const struct dmm_list_hdr *h,
                              unsigned int *changed)
{
    uint64_t pages = (uint64_t)h->nb << h->arg;
    uint64_t bytes = pages * d->p.page_size;

    switch (h->type) {
    case VIRTIO_DMM_REQ_UNPLUG_PAGES:
        d->unplugged_size += bytes;
        d->counters.pages_unplugged += pages;
        *changed |= DMM_CHANGED_UNPLUGGED;
        break;
    case VIRTIO_DMM_REQ_PLUG_PAGES:
        d->unplugged_size -= bytes;
        d->counters.pages_plugged += pages;
        *changed |= DMM_CHANGED_UNPLUGGED;
        break;
    default:
        d->counters.pages_unplugged += pages / 2;
        d->counters.pages_plugged += pages / 2;
        break;
    }
}

static uint16_t dmm_process_pages(struct dmm_dev *d,
                                  const struct dmm_list_hdr *h,
                                  const uint8_t *addrs,
                                  struct virtio_dmm_resp *resp,
                                  unsigned int *changed)
{
    uint64_t bytes = ((uint64_t)h->nb << h->arg) * d->p.page_size;

    (void)resp;
    if (dmm_pages_apply(d, h, addrs) != VIRTIO_DMM_RESP_ACK) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (h->type == VIRTIO_DMM_REQ_PLUG_PAGES &&
        dmm_current_size(d) + bytes > d->requested_size) {
        dmm_pages_rollback(d, h, addrs, h->nb);
        return VIRTIO_DMM_RESP_NACK;
    }
    if (dmm_pages_discard(d, h, addrs)) {
        /* The guest gave these pages up: losing content is harmless. */
        d->counters.backend_errors++;
        dmm_pages_rollback(d, h, addrs, h->nb);
        return VIRTIO_DMM_RESP_ERROR;
    }
    dmm_pages_account(d, h, changed);
    if (h->arg && h->type == VIRTIO_DMM_REQ_UNPLUG_PAGES) {
        d->counters.page_ranges_unplugged += h->nb;
    }
    return VIRTIO_DMM_RESP_ACK;
}

static void dmm_pages_count(struct dmm_dev *d, uint16_t rtype, uint32_t nb)
{
    (void)nb;
    d->counters.page_requests++;
    if (rtype == VIRTIO_DMM_RESP_NACK) {
        d->counters.nacks++;
    } else if (rtype == VIRTIO_DMM_RESP_ERROR) {
        d->counters.errors++;
    }
}

static const struct dmm_list_kind dmm_page_list = {
    .entry_size = sizeof(uint64_t),
    .max_entries = DMM_MAX_PAGES_PER_REQ,
    .takes_arg = true,
    .check = dmm_check_pages,
    .process = dmm_process_pages,
    .account = dmm_pages_count,
};

int dmm_handle_page_request(struct dmm_dev *d, const void *req, size_t req_len,
                            struct virtio_dmm_resp *resp)
{
    return dmm_handle_list(d, &dmm_page_list, req, req_len, resp);
}
