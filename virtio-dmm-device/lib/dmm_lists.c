// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device library: what page requests and hints share, the
 * lookup of a guest-physical address and the skeleton of a list request.
 */
#include <errno.h>
#include <string.h>

#include "dmm_internal.h"

/*
 * One lookup for every address a guest names in a list: boot RAM is
 * wherever the VMM's machine maps it (ops->boot_page), the region's pages
 * must lie in plugged sub-blocks.
 */
int dmm_lookup(const struct dmm_dev *d, uint64_t gpa, uint64_t align,
               struct dmm_ref *ref)
{
    uint64_t off;

    if (gpa % align) {
        return -EINVAL;
    }
    if (gpa >= d->p.region_addr && gpa - d->p.region_addr < d->p.region_size) {
        off = gpa - d->p.region_addr;
        if (!dmm_sb_test(d, off / d->sb_size)) {
            return -EINVAL;
        }
        ref->boot = false;
        ref->bitmap = d->region_pages;
    } else {
        if (!d->ops->boot_page || d->ops->boot_page(d->opaque, gpa, &off) ||
            off % align || off >= d->p.boot_size) {
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
    uint16_t type, rtype;
    uint32_t nb;

    if (req_len < 8) {
        return -EINVAL;
    }
    memset(resp, 0, sizeof(*resp));
    type = dmm_le16(b);
    nb = dmm_le32(b + 4);
    if (dmm_le16(b + 2) || !nb || nb > k->max_entries ||
        (req_len - 8) / k->entry_size < nb) {
        rtype = VIRTIO_DMM_RESP_ERROR;
    } else {
        rtype = k->check(d, type, entries, nb);
    }
    if (rtype == VIRTIO_DMM_RESP_ACK) {
        rtype = k->process(d, type, entries, nb, resp, &changed);
    }
    k->account(d, rtype, nb);
    dmm_put_le16(&resp->type, rtype);
    return (int)changed;
}
