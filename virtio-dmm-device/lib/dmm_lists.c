// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device library: what page requests and hints share, the
 * lookup of a guest-physical address and the skeleton of a list request.
 */
#include <errno.h>
#include <string.h>

#include "dmm_internal.h"

/* Are the sub-blocks of region bytes [off, off + len) all plugged? */
static bool dmm_sbs_plugged(const struct dmm_dev *d, uint64_t off,
                            uint64_t len)
{
    uint64_t sb;

    for (sb = off / d->sb_size; sb <= (off + len - 1) / d->sb_size; sb++) {
        if (!dmm_sb_test(d, sb)) {
            return false;
        }
    }
    return true;
}

/*
 * One lookup for every address a guest names in a list: boot RAM is
 * wherever the VMM's machine maps it (ops->boot_range, which also says
 * whether the whole range is one stretch of it), the region's pages must
 * lie in plugged sub-blocks.
 */
int dmm_lookup(const struct dmm_dev *d, uint64_t gpa, uint64_t len,
               struct dmm_ref *ref)
{
    uint64_t unit = d->p.page_size && d->p.page_size < len ? d->p.page_size
                                                           : len;
    uint64_t off;

    if (!len || gpa % len) {
        return -EINVAL;
    }
    if (gpa >= d->p.region_addr && gpa - d->p.region_addr < d->p.region_size) {
        off = gpa - d->p.region_addr;
        if (len > d->p.region_size - off || !dmm_sbs_plugged(d, off, len)) {
            return -EINVAL;
        }
        ref->boot = false;
        ref->bitmap = d->region_pages;
    } else {
        if (!d->ops->boot_range ||
            d->ops->boot_range(d->opaque, gpa, len, &off) ||
            off % unit || off >= d->p.boot_size ||
            len > d->p.boot_size - off) {
            return -EINVAL;
        }
        ref->boot = true;
        ref->bitmap = d->boot_pages;
    }
    ref->offset = off;
    ref->bit = d->p.page_size ? off / d->p.page_size : 0;
    return 0;
}

/*
 * A list request: a header (type, padding, number of entries) and the
 * entries.  The header is checked here, every entry by @k->check before
 * @k->process changes anything.  -EINVAL if shorter than the header.
 */
int dmm_handle_list(struct dmm_dev *d, const struct dmm_list_kind *k,
                    const void *req, size_t req_len,
                    struct virtio_dmm_resp *resp)
{
    const uint8_t *b = req, *entries = b + 8;
    unsigned int changed = 0;
    struct dmm_list_hdr h;
    uint16_t rtype;

    if (req_len < 8) {
        return -EINVAL;
    }
    memset(resp, 0, sizeof(*resp));
    h.type = dmm_le16(b);
    h.arg = dmm_le16(b + 2);
    h.nb = dmm_le32(b + 4);
    if ((h.arg && !k->takes_arg) || !h.nb || h.nb > k->max_entries ||
        (req_len - 8) / k->entry_size < h.nb) {
        rtype = VIRTIO_DMM_RESP_ERROR;
    } else {
        rtype = k->check(d, &h, entries);
    }
    if (rtype == VIRTIO_DMM_RESP_ACK) {
        rtype = k->process(d, &h, entries, resp, &changed);
    }
    k->account(d, rtype, h.nb);
    dmm_put_le16(&resp->type, rtype);
    return (int)changed;
}
