// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device library: shared-page hints (the hint virtqueue) and
 * the chunks of host memory they made shareable.
 */
#include <errno.h>
#include <stdlib.h>

#include "dmm_internal.h"

/* --- chunks: what hints made shareable, in DMM_HINT_CHUNK units --- */

/* Bytes of boot RAM (@boot) or of the region. */
static uint64_t dmm_ram_size(const struct dmm_dev *d, bool boot)
{
    return boot ? d->p.boot_size : d->p.region_size;
}

/* Chunk bitmaps only where the VMM offers hints. */
int dmm_hints_init(struct dmm_dev *d)
{
    int boot;

    if (!d->p.hints) {
        return 0;
    }
    for (boot = 0; boot < 2; boot++) {
        d->nb_chunks[boot] =
            (dmm_ram_size(d, boot) + DMM_HINT_CHUNK - 1) / DMM_HINT_CHUNK;
        d->chunks[boot] = calloc(dmm_bitmap_bytes(d->nb_chunks[boot]) + 1, 1);
        if (!d->chunks[boot]) {
            return -ENOMEM;
        }
    }
    return 0;
}

static bool dmm_chunk_test(const struct dmm_dev *d, bool boot, uint64_t chunk)
{
    return chunk < d->nb_chunks[boot] && dmm_bit_test(d->chunks[boot], chunk);
}

/*
 * How the number of runs of shared chunks changes if @chunk is shared:
 * +1 alone, 0 next to one run, -1 joining two.
 */
static int dmm_runs_delta(const struct dmm_dev *d, bool boot, uint64_t chunk)
{
    return 1 - (chunk && dmm_chunk_test(d, boot, chunk - 1)) -
           dmm_chunk_test(d, boot, chunk + 1);
}

/*
 * Share a chunk once: each one shared splits the host's mappings, so the
 * number of separate runs is bounded (-ENOSPC past DMM_MAX_HINT_RUNS).
 */
int dmm_share_chunk(struct dmm_dev *d, bool boot, uint64_t chunk)
{
    uint64_t start = chunk * DMM_HINT_CHUNK, len;
    int delta, ret;

    if (chunk >= d->nb_chunks[boot]) {
        return -EINVAL;
    }
    if (dmm_chunk_test(d, boot, chunk)) {
        return 0;
    }
    delta = dmm_runs_delta(d, boot, chunk);
    if (delta > 0 && d->chunk_runs[boot] >= DMM_MAX_HINT_RUNS) {
        return -ENOSPC;
    }
    len = dmm_ram_size(d, boot) - start;
    if (len > DMM_HINT_CHUNK) {
        len = DMM_HINT_CHUNK;
    }
    ret = d->ops->share(d->opaque, boot, start, len);
    if (ret) {
        return ret;
    }
    dmm_bit_assign(d->chunks[boot], chunk, true);
    d->chunk_runs[boot] += delta;
    d->counters.mergeable_bytes += len;
    return 0;
}

/* --- hint requests --- */

/*
 * Where the page of a hint lives: boot RAM, or a plugged sub-block of the
 * region, and not a page the guest unplugged (hint pages are never larger
 * than unplug pages: both 4 KiB).
 */
static int dmm_hint_lookup(const struct dmm_dev *d, const uint8_t *e,
                           struct dmm_ref *ref)
{
    if (dmm_lookup(d, dmm_le64(e), VIRTIO_DMM_HINT_PAGE_SIZE, ref) ||
        (ref->bitmap && dmm_bit_test(ref->bitmap, ref->bit))) {
        return -EINVAL;
    }
    return 0;
}

static bool dmm_page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;
    size_t i;

    for (i = 0; i < VIRTIO_DMM_HINT_PAGE_SIZE / 8; i++) {
        if (w[i]) {
            return false;
        }
    }
    return true;
}

/*
 * Type and addresses: everything is checked before any page is read.
 * Valid hints the device does not act on now are NACKed.
 */
static uint16_t dmm_check_hints(struct dmm_dev *d,
                                const struct dmm_list_hdr *h, const uint8_t *e)
{
    uint16_t type = h->type;
    struct dmm_ref ref;
    uint32_t i;

    if (!d->chunks[0]) {
        return VIRTIO_DMM_RESP_ERROR; /* the VMM offers no hints */
    }
    if ((type != VIRTIO_DMM_HINT_ZERO && type != VIRTIO_DMM_HINT_DUP) ||
        (type == VIRTIO_DMM_HINT_DUP &&
         !(d->features & (1ULL << VIRTIO_DMM_F_HINTS_DUP)))) {
        return VIRTIO_DMM_RESP_ERROR;
    }
    for (i = 0; i < h->nb; i++, e += sizeof(struct virtio_dmm_hint)) {
        if (dmm_hint_lookup(d, e, &ref) ||
            (type == VIRTIO_DMM_HINT_ZERO && dmm_le64(e + 8))) {
            return VIRTIO_DMM_RESP_ERROR;
        }
    }
    if (!(d->features & (1ULL << VIRTIO_DMM_F_HINTS)) ||
        !dmm_may(d, may_share)) {
        return VIRTIO_DMM_RESP_NACK;
    }
    return VIRTIO_DMM_RESP_ACK;
}

/*
 * Is the page as the hint says?  The content may change while we read it:
 * a page passed on is shared only by a mechanism that compares again
 * under write protection, so a wrong answer here costs work, not data.
 */
static bool dmm_hint_holds(struct dmm_dev *d, uint16_t type,
                           const struct dmm_ref *ref, uint64_t hash)
{
    const uint8_t *p = d->ops->page_ptr(d->opaque, ref->boot, ref->offset);

    if (!p) {
        return false;
    }
    if (type == VIRTIO_DMM_HINT_ZERO) {
        return dmm_page_is_zero(p);
    }
    return dmm_xxh64(p, VIRTIO_DMM_HINT_PAGE_SIZE, 0) == hash;
}

static uint16_t dmm_process_hints(struct dmm_dev *d,
                                  const struct dmm_list_hdr *h,
                                  const uint8_t *e,
                                  struct virtio_dmm_resp *resp,
                                  unsigned int *changed)
{
    uint16_t type = h->type;
    uint32_t nb = h->nb;
    struct dmm_ref ref;
    uint32_t i, ok = 0;
    int ret;

    (void)changed; /* hints change no state */
    for (i = 0; i < nb; i++, e += sizeof(struct virtio_dmm_hint)) {
        /* checked by dmm_check_hints(): cannot fail */
        if (dmm_hint_lookup(d, e, &ref) ||
            !dmm_hint_holds(d, type, &ref, dmm_le64(e + 8))) {
            continue;
        }
        ret = dmm_share_chunk(d, ref.boot, ref.offset / DMM_HINT_CHUNK);
        if (ret) {
            /* -ENOSPC: the bound on runs, the hint is rejected */
            if (ret != -ENOSPC) {
                d->counters.backend_errors++;
            }
            continue;
        }
        ok++;
    }
    if (type == VIRTIO_DMM_HINT_ZERO) {
        d->counters.hint_zero_accepted += ok;
    } else {
        d->counters.hint_dup_accepted += ok;
    }
    d->counters.hint_rejected += nb - ok;
    dmm_put_le32(&resp->u.hint.accepted, ok);
    dmm_put_le32(&resp->u.hint.rejected, nb - ok);
    return VIRTIO_DMM_RESP_ACK;
}

static void dmm_hints_count(struct dmm_dev *d, uint16_t rtype, uint32_t nb)
{
    d->counters.hint_requests++;
    if (rtype == VIRTIO_DMM_RESP_NACK) {
        d->counters.hint_rejected += nb;
    } else if (rtype == VIRTIO_DMM_RESP_ERROR) {
        d->counters.hint_errors++;
    }
}

static const struct dmm_list_kind dmm_hint_list = {
    .entry_size = sizeof(struct virtio_dmm_hint),
    .max_entries = VIRTIO_DMM_MAX_HINTS,
    .check = dmm_check_hints,
    .process = dmm_process_hints,
    .account = dmm_hints_count,
};

int dmm_handle_hint_request(struct dmm_dev *d, const void *req, size_t req_len,
                            struct virtio_dmm_resp *resp)
{
    return dmm_handle_list(d, &dmm_hint_list, req, req_len, resp);
}
