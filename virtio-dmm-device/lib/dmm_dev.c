// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device library: set-up, parameters, sizes, configuration and
 * the grant policy.  See dmm_dev.h.  The other files: dmm_blocks.c (block
 * and sub-block requests, free page reports), dmm_lists.c (addresses and
 * the list-request skeleton), dmm_pages.c, dmm_hints.c, dmm_xxh64.c,
 * dmm_migration.c.
 *
 * Every field the guest controls is checked before it is used: a request
 * either matches the rules of the specification and changes state, or is
 * answered NACK, BUSY or ERROR and changes nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmm_internal.h"

/* The wire format, as the specification lays it out. */
_Static_assert(sizeof(struct virtio_dmm_req) == 24, "virtio_dmm_req");
_Static_assert(sizeof(struct virtio_dmm_resp) == 16, "virtio_dmm_resp");
_Static_assert(sizeof(struct virtio_dmm_config) == 88, "virtio_dmm_config");
_Static_assert(offsetof(struct virtio_dmm_config, page_size) == 56,
               "virtio_dmm_config.page_size");
_Static_assert(offsetof(struct virtio_dmm_config, stats_interval_ms) == 80,
               "virtio_dmm_config.stats_interval_ms");
_Static_assert(sizeof(struct virtio_dmm_stats) == 112, "virtio_dmm_stats");
_Static_assert(sizeof(struct virtio_dmm_page_req) == 8, "virtio_dmm_page_req");
_Static_assert(sizeof(struct virtio_dmm_hint_req) == 8, "virtio_dmm_hint_req");
_Static_assert(sizeof(struct virtio_dmm_hint) == 16, "virtio_dmm_hint");

void dmm_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

uint64_t dmm_bitmap_count(const uint8_t *bitmap, uint64_t first, uint64_t count)
{
    uint64_t i = first, end = first + count, n = 0;

    for (; i < end && i % 8; i++) {
        n += dmm_bit_test(bitmap, i);
    }
    for (; i + 8 <= end; i += 8) {
        n += (uint64_t)__builtin_popcount(bitmap[i / 8]);
    }
    for (; i < end; i++) {
        n += dmm_bit_test(bitmap, i);
    }
    return n;
}

bool dmm_stray_bit(const uint8_t *bitmap, uint64_t nb, uint64_t *bit)
{
    for (*bit = nb; *bit < dmm_bitmap_bytes(nb) * 8; (*bit)++) {
        if (dmm_bit_test(bitmap, *bit)) {
            return true;
        }
    }
    return false;
}

/* --- parameters --- */

int dmm_check_block_size(uint64_t bs, uint64_t min, char *err, size_t errlen)
{
    if (min < DMM_MIN_BLOCK_SIZE) {
        min = DMM_MIN_BLOCK_SIZE;
    }
    if (!dmm_is_pow2(bs) || bs < min) {
        dmm_err(err, errlen,
                "block-size 0x%llx must be a power of two "
                "of at least 0x%llx",
                (unsigned long long)bs, (unsigned long long)min);
        return -EINVAL;
    }
    return 0;
}

int dmm_check_stats_interval(uint32_t ms, char *err, size_t errlen)
{
    if (ms && (ms < VIRTIO_DMM_STATS_MIN_MS || ms > VIRTIO_DMM_STATS_MAX_MS)) {
        dmm_err(err, errlen,
                "stats-interval must be 0 (off) or between "
                "%u and %u ms, not %u",
                VIRTIO_DMM_STATS_MIN_MS, VIRTIO_DMM_STATS_MAX_MS, ms);
        return -EINVAL;
    }
    return 0;
}

/* The region: block aligned, whole blocks, no overflow, not too many. */
static int dmm_check_region(const struct dmm_params *p, char *err,
                            size_t errlen)
{
    uint64_t bs = p->block_size;

    if (!p->region_size || p->region_size % bs) {
        dmm_err(err, errlen,
                "region size 0x%llx must be a non-zero "
                "multiple of block-size 0x%llx",
                (unsigned long long)p->region_size, (unsigned long long)bs);
        return -EINVAL;
    }
    if (p->region_addr % bs) {
        dmm_err(err, errlen,
                "region address 0x%llx is not aligned to "
                "block-size 0x%llx",
                (unsigned long long)p->region_addr, (unsigned long long)bs);
        return -EINVAL;
    }
    if (p->region_addr + p->region_size < p->region_addr ||
        p->boot_size + p->region_size < p->boot_size) {
        dmm_err(err, errlen, "region 0x%llx+0x%llx overflows",
                (unsigned long long)p->region_addr,
                (unsigned long long)p->region_size);
        return -EINVAL;
    }
    if (p->region_size / bs > DMM_MAX_BLOCKS) {
        dmm_err(err, errlen,
                "region of 0x%llx blocks exceeds the limit "
                "of 0x%llx blocks",
                (unsigned long long)(p->region_size / bs),
                (unsigned long long)DMM_MAX_BLOCKS);
        return -EINVAL;
    }
    return 0;
}

/* Sub-blocks divide a block; pages (if any) divide a sub-block. */
static int dmm_check_sb_params(const struct dmm_params *p, char *err,
                               size_t errlen)
{
    uint64_t sbs = p->sub_block_size;

    if (!sbs) {
        return 0;
    }
    if (!dmm_is_pow2(sbs) || sbs > p->block_size || sbs < DMM_MIN_BLOCK_SIZE ||
        (p->page_size && sbs < p->page_size) ||
        p->block_size / sbs > DMM_MAX_SBS_PER_BLOCK) {
        dmm_err(err, errlen,
                "sub-block size 0x%llx must be a power of "
                "two between 0x%llx and block-size 0x%llx, at most "
                "%u per block",
                (unsigned long long)sbs, (unsigned long long)DMM_MIN_BLOCK_SIZE,
                (unsigned long long)p->block_size, DMM_MAX_SBS_PER_BLOCK);
        return -EINVAL;
    }
    return 0;
}

/* Page requests need a page size that divides blocks and boot RAM. */
static int dmm_check_page_params(const struct dmm_params *p,
                                 const struct dmm_backend_ops *ops, char *err,
                                 size_t errlen)
{
    uint64_t ps = p->page_size;

    if (!ps) {
        return 0;
    }
    if (!dmm_is_pow2(ps) || ps > p->block_size || p->boot_size % ps) {
        dmm_err(err, errlen,
                "page size 0x%llx must be a power of two "
                "dividing block-size 0x%llx and boot-size 0x%llx",
                (unsigned long long)ps, (unsigned long long)p->block_size,
                (unsigned long long)p->boot_size);
        return -EINVAL;
    }
    if (!ops->boot_range || !ops->discard_boot) {
        dmm_err(err, errlen, "backend lacks boot_range or discard_boot");
        return -EINVAL;
    }
    return 0;
}

static int dmm_check_params(const struct dmm_params *p,
                            const struct dmm_backend_ops *ops, char *err,
                            size_t errlen)
{
    if (dmm_check_block_size(p->block_size, 0, err, errlen) ||
        dmm_check_region(p, err, errlen)) {
        return -EINVAL;
    }
    if (!ops || !ops->populate || !ops->discard) {
        dmm_err(err, errlen, "backend lacks populate or discard");
        return -EINVAL;
    }
    if (dmm_check_page_params(p, ops, err, errlen) ||
        dmm_check_sb_params(p, err, errlen)) {
        return -EINVAL;
    }
    if (p->hints && (!ops->boot_range || !ops->page_ptr || !ops->share)) {
        dmm_err(err, errlen,
                "backend lacks boot_range, page_ptr or "
                "share for hints");
        return -EINVAL;
    }
    return 0;
}

/* --- set-up --- */

static int dmm_alloc_state(struct dmm_dev *d)
{
    const struct dmm_params *p = &d->p;

    d->sb_size = p->sub_block_size ? p->sub_block_size : p->block_size;
    d->nb_sbs = p->region_size / d->sb_size;
    d->sbs_per_block = p->block_size / d->sb_size;
    d->sb_plugged = calloc(dmm_bitmap_bytes(d->nb_sbs), 1);
    if (!d->sb_plugged) {
        return -ENOMEM;
    }
    if (!p->page_size) {
        return dmm_hints_init(d);
    }
    d->nb_boot_pages = p->boot_size / p->page_size;
    d->nb_region_pages = p->region_size / p->page_size;
    /* calloc(0) may return NULL: a guest without boot RAM is legal. */
    d->boot_pages = calloc(dmm_bitmap_bytes(d->nb_boot_pages) + 1, 1);
    d->region_pages = calloc(dmm_bitmap_bytes(d->nb_region_pages), 1);
    if (!d->boot_pages || !d->region_pages) {
        return -ENOMEM;
    }
    return dmm_hints_init(d);
}

int dmm_dev_init(struct dmm_dev *d, const struct dmm_params *p,
                 const struct dmm_backend_ops *ops, void *opaque, char *err,
                 size_t errlen)
{
    memset(d, 0, sizeof(*d));
    if (dmm_check_params(p, ops, err, errlen)) {
        return -EINVAL;
    }
    d->p = *p;
    d->ops = ops;
    d->opaque = opaque;
    d->nb_blocks = p->region_size / p->block_size;
    d->requested_size = p->boot_size;
    if (dmm_alloc_state(d)) {
        dmm_dev_fini(d);
        dmm_err(err, errlen,
                "out of memory for the state of 0x%llx "
                "blocks",
                (unsigned long long)(p->region_size / p->block_size));
        return -ENOMEM;
    }
    return 0;
}

void dmm_dev_fini(struct dmm_dev *d)
{
    free(d->sb_plugged);
    free(d->boot_pages);
    free(d->region_pages);
    free(d->chunks[0]);
    free(d->chunks[1]);
    d->sb_plugged = d->boot_pages = d->region_pages = NULL;
    d->chunks[0] = d->chunks[1] = NULL;
}

struct dmm_dev *dmm_dev_new(const struct dmm_params *p,
                            const struct dmm_backend_ops *ops, void *opaque,
                            char *err, size_t errlen)
{
    struct dmm_dev *d = malloc(sizeof(*d));

    if (!d) {
        dmm_err(err, errlen, "out of memory");
        return NULL;
    }
    if (dmm_dev_init(d, p, ops, opaque, err, errlen)) {
        free(d);
        return NULL;
    }
    return d;
}

void dmm_dev_free(struct dmm_dev *d)
{
    if (!d) {
        return;
    }
    dmm_dev_fini(d);
    free(d);
}

void dmm_set_features(struct dmm_dev *d, uint64_t features)
{
    d->features = features;
}

int dmm_set_grant_policy(struct dmm_dev *d, bool auto_grant,
                         uint64_t grant_limit, char *err, size_t errlen)
{
    if (grant_limit && dmm_check_requested_size(d, grant_limit, err, errlen)) {
        return -EINVAL;
    }
    d->auto_grant = auto_grant;
    d->grant_limit = grant_limit;
    return 0;
}

/* --- sizes --- */

/* requested_size with page requests: any page multiple in range. */
static int dmm_check_requested_pages(const struct dmm_dev *d, uint64_t size,
                                     char *err, size_t errlen)
{
    const struct dmm_params *p = &d->p;
    uint64_t min = p->boot_size < DMM_MIN_REQUESTED_SIZE
                       ? p->boot_size
                       : DMM_MIN_REQUESTED_SIZE;
    /* init checked that boot_size + region_size does not overflow */
    uint64_t max = p->boot_size + p->region_size;

    if (size < min || size > max) {
        dmm_err(err, errlen,
                "requested-guest-size 0x%llx is "
                "outside 0x%llx..0x%llx",
                (unsigned long long)size, (unsigned long long)min,
                (unsigned long long)max);
        return -EINVAL;
    }
    if (size % p->page_size) {
        dmm_err(err, errlen,
                "requested-guest-size 0x%llx is not a "
                "multiple of the page size 0x%llx",
                (unsigned long long)size, (unsigned long long)p->page_size);
        return -EINVAL;
    }
    return 0;
}

int dmm_check_requested_size(const struct dmm_dev *d, uint64_t size, char *err,
                             size_t errlen)
{
    const struct dmm_params *p = &d->p;

    if (p->page_size) {
        return dmm_check_requested_pages(d, size, err, errlen);
    }
    if (size < p->boot_size) {
        dmm_err(err, errlen,
                "requested-guest-size 0x%llx is below "
                "boot-size 0x%llx",
                (unsigned long long)size, (unsigned long long)p->boot_size);
        return -EINVAL;
    }
    if (size - p->boot_size > p->region_size) {
        dmm_err(err, errlen,
                "requested-guest-size 0x%llx exceeds "
                "boot-size 0x%llx plus region size 0x%llx",
                (unsigned long long)size, (unsigned long long)p->boot_size,
                (unsigned long long)p->region_size);
        return -EINVAL;
    }
    if ((size - p->boot_size) % d->sb_size) {
        dmm_err(err, errlen,
                "requested-guest-size 0x%llx is not "
                "boot-size 0x%llx plus a multiple of %s 0x%llx",
                (unsigned long long)size, (unsigned long long)p->boot_size,
                p->sub_block_size ? "the sub-block size" : "block-size",
                (unsigned long long)d->sb_size);
        return -EINVAL;
    }
    return 0;
}

int dmm_set_requested_size(struct dmm_dev *d, uint64_t size, char *err,
                           size_t errlen)
{
    int ret = dmm_check_requested_size(d, size, err, errlen);

    if (!ret) {
        d->requested_size = size;
    }
    return ret;
}

uint64_t dmm_requested_size(const struct dmm_dev *d)
{
    return d->requested_size;
}

uint64_t dmm_plugged_size(const struct dmm_dev *d)
{
    return d->plugged_size;
}

uint64_t dmm_unplugged_size(const struct dmm_dev *d)
{
    return d->unplugged_size;
}

uint64_t dmm_current_size(const struct dmm_dev *d)
{
    return d->p.boot_size + d->plugged_size - d->unplugged_size;
}

uint64_t dmm_sb_size(const struct dmm_dev *d)
{
    return d->sb_size;
}

uint64_t dmm_grant_limit(const struct dmm_dev *d)
{
    return d->grant_limit ? d->grant_limit : d->p.boot_size + d->p.region_size;
}

bool dmm_auto_grant(const struct dmm_dev *d)
{
    return d->auto_grant;
}

const struct dmm_counters *dmm_get_counters(const struct dmm_dev *d)
{
    return &d->counters;
}

/* --- configuration --- */

void dmm_fill_config(const struct dmm_dev *d, uint16_t node_id,
                     struct virtio_dmm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    dmm_put_le64(&cfg->block_size, d->p.block_size);
    dmm_put_le16(&cfg->node_id, node_id);
    dmm_put_le64(&cfg->region_addr, d->p.region_addr);
    dmm_put_le64(&cfg->region_size, d->p.region_size);
    dmm_put_le64(&cfg->boot_size, d->p.boot_size);
    dmm_put_le64(&cfg->requested_size, d->requested_size);
    dmm_put_le64(&cfg->plugged_size, d->plugged_size);
    if (d->p.sub_block_size) {
        dmm_put_le64(&cfg->sub_block_size, d->p.sub_block_size);
    }
    if (d->p.page_size) {
        dmm_put_le32(&cfg->page_size, (uint32_t)d->p.page_size);
        dmm_put_le32(&cfg->max_pages, DMM_MAX_PAGES_PER_REQ);
        dmm_put_le64(&cfg->unplugged_size, d->unplugged_size);
    }
}
