// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device library: page requests (the page virtqueue), single
 * pages of boot RAM and of plugged sub-blocks unplugged and plugged back.
 */
#include <errno.h>

#include "dmm_internal.h"

/* The page of entry @i of a page list (checked: cannot fail). */
static int dmm_page_ref(const struct dmm_dev *d, const uint8_t *addrs,
                        uint32_t i, struct dmm_ref *ref)
{
    return dmm_lookup(d, dmm_le64(addrs + 8 * i), d->p.page_size, ref);
}

static void dmm_page_flip(const struct dmm_ref *ref)
{
    ref->bitmap[ref->bit / 8] ^= 1u << (ref->bit % 8);
}

/*
 * Entry @i of a request: is its page to become unplugged (true) or plugged
 * (false)?  MOVE_PAGES pairs are (old: plugged back, new: unplugged).
 */
static bool dmm_entry_unplugs(uint16_t type, uint32_t i)
{
    if (type == VIRTIO_DMM_REQ_MOVE_PAGES) {
        return i % 2;
    }
    return type == VIRTIO_DMM_REQ_UNPLUG_PAGES;
}

/* Undo the flips of entries [0, n), last first. */
static void dmm_pages_rollback(struct dmm_dev *d, const uint8_t *addrs,
                               uint32_t n)
{
    struct dmm_ref ref;

    while (n--) {
        /* looked up successfully before; the lookup cannot change */
        if (!dmm_page_ref(d, addrs, n, &ref)) {
            dmm_page_flip(&ref);
        }
    }
}

/*
 * After every entry was flipped in order: does each page end up as its
 * entry says?  A page listed more than once flips back and forth (each flip
 * checked the bit first), so one of its entries always ends up wrong: this
 * finds every repeated page in one pass, without comparing addresses
 * (which would cost O(n^2) under the VMM's lock).
 */
static bool dmm_pages_final(const struct dmm_dev *d, uint16_t type,
                            const uint8_t *addrs, uint32_t nb)
{
    struct dmm_ref ref;
    uint32_t i;

    for (i = 0; i < nb; i++) {
        if (dmm_page_ref(d, addrs, i, &ref) ||
            dmm_bit_test(ref.bitmap, ref.bit) != dmm_entry_unplugs(type, i)) {
            return false;
        }
    }
    return true;
}

/*
 * Check every entry and flip its bit, in order, so that a page listed
 * twice finds its own first flip and fails (or, in MOVE_PAGES, ends in the
 * wrong state).  Nothing stays changed on failure.  Linear in @nb.
 */
static uint16_t dmm_pages_apply(struct dmm_dev *d, uint16_t type,
                                const uint8_t *addrs, uint32_t nb)
{
    struct dmm_ref ref;
    uint32_t i;

    for (i = 0; i < nb; i++) {
        if (dmm_page_ref(d, addrs, i, &ref) ||
            dmm_bit_test(ref.bitmap, ref.bit) == dmm_entry_unplugs(type, i)) {
            dmm_pages_rollback(d, addrs, i);
            return VIRTIO_DMM_RESP_ERROR;
        }
        dmm_page_flip(&ref);
    }
    if (!dmm_pages_final(d, type, addrs, nb)) {
        dmm_pages_rollback(d, addrs, nb);
        return VIRTIO_DMM_RESP_ERROR;
    }
    return VIRTIO_DMM_RESP_ACK;
}

/*
 * Header checks beyond the common ones; the addresses are checked while
 * applied (dmm_pages_apply()), which needs the order of the list.
 */
static uint16_t dmm_check_pages(struct dmm_dev *d, uint16_t type,
                                const uint8_t *addrs, uint32_t nb)
{
    (void)addrs;
    if (!d->p.page_size) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (type != VIRTIO_DMM_REQ_UNPLUG_PAGES &&
        type != VIRTIO_DMM_REQ_PLUG_PAGES &&
        type != VIRTIO_DMM_REQ_MOVE_PAGES) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (type == VIRTIO_DMM_REQ_MOVE_PAGES && nb % 2) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    return VIRTIO_DMM_RESP_ACK;
}

/* Discard the pages an applied request left unplugged. */
static int dmm_pages_discard(struct dmm_dev *d, uint16_t type,
                             const uint8_t *addrs, uint32_t nb)
{
    uint64_t ps = d->p.page_size;
    struct dmm_ref ref;
    uint32_t i;
    int ret;

    if (!dmm_may(d, may_discard)) {
        return 0;
    }
    for (i = 0; i < nb; i++) {
        if (!dmm_entry_unplugs(type, i) || dmm_page_ref(d, addrs, i, &ref) ||
            !dmm_bit_test(ref.bitmap, ref.bit)) {
            continue;
        }
        ret = ref.boot ? d->ops->discard_boot(d->opaque, ref.offset, ps)
                       : d->ops->discard(d->opaque, ref.offset, ps);
        if (ret) {
            return ret;
        }
    }
    return 0;
}

static void dmm_pages_account(struct dmm_dev *d, uint16_t type, uint32_t nb,
                              unsigned int *changed)
{
    uint64_t bytes = (uint64_t)nb * d->p.page_size;

    switch (type) {
    case VIRTIO_DMM_REQ_UNPLUG_PAGES:
        d->unplugged_size += bytes;
        d->counters.pages_unplugged += nb;
        *changed |= DMM_CHANGED_UNPLUGGED;
        break;
    case VIRTIO_DMM_REQ_PLUG_PAGES:
        d->unplugged_size -= bytes;
        d->counters.pages_plugged += nb;
        *changed |= DMM_CHANGED_UNPLUGGED;
        break;
    default:
        d->counters.pages_unplugged += nb / 2;
        d->counters.pages_plugged += nb / 2;
        break;
    }
}

static uint16_t dmm_process_pages(struct dmm_dev *d, uint16_t type,
                                  const uint8_t *addrs, uint32_t nb,
                                  struct virtio_dmm_resp *resp,
                                  unsigned int *changed)
{
    uint64_t bytes = (uint64_t)nb * d->p.page_size;

    (void)resp;
    if (dmm_pages_apply(d, type, addrs, nb) != VIRTIO_DMM_RESP_ACK) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    if (type == VIRTIO_DMM_REQ_PLUG_PAGES &&
        dmm_current_size(d) + bytes > d->requested_size) {
        dmm_pages_rollback(d, addrs, nb);
        return VIRTIO_DMM_RESP_NACK;
    }
    if (dmm_pages_discard(d, type, addrs, nb)) {
        /* The guest gave these pages up: losing content is harmless. */
        d->counters.backend_errors++;
        dmm_pages_rollback(d, addrs, nb);
        return VIRTIO_DMM_RESP_ERROR;
    }
    dmm_pages_account(d, type, nb, changed);
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
    .check = dmm_check_pages,
    .process = dmm_process_pages,
    .account = dmm_pages_count,
};

int dmm_handle_page_request(struct dmm_dev *d, const void *req, size_t req_len,
                            struct virtio_dmm_resp *resp)
{
    return dmm_handle_list(d, &dmm_page_list, req, req_len, resp);
}
