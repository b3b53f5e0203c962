/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * virtio-dmm device library: the device's state and the helpers its files
 * share.  Not for VMMs (they use dmm_dev.h); the library's own tests
 * include it to look inside.
 */
#ifndef DMM_INTERNAL_H
#define DMM_INTERNAL_H

#include "dmm_dev.h"

struct dmm_dev {
    struct dmm_params p;
    uint64_t nb_blocks;      /* region_size / block_size */
    uint64_t requested_size; /* target total guest RAM */
    uint64_t plugged_size;   /* plugged sub-blocks * sb_size */
    struct dmm_counters counters;
    uint64_t features; /* negotiated VIRTIO_DMM_F_* */
    bool auto_grant;   /* dmm_set_grant_policy() */
    uint64_t grant_limit;

    /*
     * Sub-blocks: the unit of state.  sb_size is p.sub_block_size, or
     * block_size without sub-blocks.  One bit per sub-block, set while
     * plugged (bit i is bit i % 8 of byte i / 8); a block's state is a
     * summary of its sub-blocks (dmm_block_state()).
     */
    uint64_t sb_size;
    uint64_t nb_sbs; /* region_size / sb_size */
    uint64_t sbs_per_block;
    uint8_t *sb_plugged;

    /*
     * Pages (p.page_size != 0): one bit per page, set while the page is
     * unplugged; boot RAM by offset, the region by offset.
     */
    uint64_t nb_boot_pages;   /* boot_size / page_size */
    uint64_t nb_region_pages; /* region_size / page_size */
    uint8_t *boot_pages;
    uint8_t *region_pages;
    uint64_t unplugged_size; /* set bits in both, times page_size */

    /*
     * Hints (p.hints): one bit per DMM_HINT_CHUNK
     * shared, [0] of the region, [1] of boot RAM, and the number of
     * separate runs of set bits in each (bounded by DMM_MAX_HINT_RUNS).
     */
    uint64_t nb_chunks[2];
    uint8_t *chunks[2];
    uint32_t chunk_runs[2];

    const struct dmm_backend_ops *ops;
    void *opaque;
};

/* Set up @d in place (tests, fuzzer, bench); as dmm_dev_new(). */
int dmm_dev_init(struct dmm_dev *d, const struct dmm_params *p,
                 const struct dmm_backend_ops *ops, void *opaque, char *err,
                 size_t errlen);
void dmm_dev_fini(struct dmm_dev *d);

/* --- little-endian access, correct on any host byte order --- */

static inline uint16_t dmm_le16(const void *p)
{
    const uint8_t *b = p;

    return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t dmm_le32(const void *p)
{
    const uint8_t *b = p;

    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

static inline uint64_t dmm_le64(const void *p)
{
    const uint8_t *b = p;

    return dmm_le32(b) | (uint64_t)dmm_le32(b + 4) << 32;
}

static inline void dmm_put_le16(void *p, uint16_t v)
{
    uint8_t *b = p;

    b[0] = v & 0xff;
    b[1] = v >> 8;
}

static inline void dmm_put_le32(void *p, uint32_t v)
{
    uint8_t *b = p;

    dmm_put_le16(b, v & 0xffff);
    dmm_put_le16(b + 2, v >> 16);
}

static inline void dmm_put_le64(void *p, uint64_t v)
{
    uint8_t *b = p;

    dmm_put_le32(b, v & 0xffffffffu);
    dmm_put_le32(b + 4, v >> 32);
}

/* --- bitmaps: bit i is bit i % 8 of byte i / 8 --- */

static inline bool dmm_bit_test(const uint8_t *bitmap, uint64_t i)
{
    return bitmap[i / 8] & (1u << (i % 8));
}

static inline void dmm_bit_assign(uint8_t *bitmap, uint64_t i, bool set)
{
    if (set) {
        bitmap[i / 8] |= 1u << (i % 8);
    } else {
        bitmap[i / 8] &= ~(1u << (i % 8));
    }
}

static inline uint64_t dmm_bitmap_bytes(uint64_t nb)
{
    return (nb + 7) / 8;
}

/* Set bits in [first, first + count). */
uint64_t dmm_bitmap_count(const uint8_t *bitmap, uint64_t first,
                          uint64_t count);
/* Is a bit past @nb set in the bitmap's last byte?  *@bit: the first. */
bool dmm_stray_bit(const uint8_t *bitmap, uint64_t nb, uint64_t *bit);

void __attribute__((format(printf, 3, 4)))
dmm_err(char *err, size_t errlen, const char *fmt, ...);

static inline bool dmm_is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* --- state (dmm_blocks.c) --- */

static inline bool dmm_sb_test(const struct dmm_dev *d, uint64_t sb)
{
    return dmm_bit_test(d->sb_plugged, sb);
}

/* Plugged blocks in [first, first + count); count checked by the caller. */
uint64_t dmm_count_plugged(const struct dmm_dev *d, uint64_t first,
                           uint64_t count);
/* Does [offset, offset + len) of the region hold an unplugged page? */
bool dmm_range_has_unplugged_pages(const struct dmm_dev *d, uint64_t offset,
                                   uint64_t len);
/* Forget every plugged sub-block and unplugged page; no backend call. */
unsigned int dmm_forget_all(struct dmm_dev *d);
void dmm_state_changed(struct dmm_dev *d, uint64_t offset, uint64_t len);
/* The VMM's answer to a may_* op; a missing op allows. */
#define dmm_may(d, op) (!(d)->ops->op || (d)->ops->op((d)->opaque))

/* --- addresses and lists (dmm_lists.c) --- */

/* Where the page at a guest-physical address lives. */
struct dmm_ref {
    bool boot;       /* boot RAM, else the region */
    uint64_t offset; /* in boot RAM or the region */
    uint8_t *bitmap; /* its page bitmap; NULL without pages */
    uint64_t bit;    /* its bit there */
};

/*
 * Find the @len bytes at guest-physical @gpa (@len a power of two, at least
 * a page, @gpa aligned to it): one stretch of boot RAM, or plugged
 * sub-blocks of the region.  *@ref names the first page.  0, or -EINVAL.
 */
int dmm_lookup(const struct dmm_dev *d, uint64_t gpa, uint64_t len,
               struct dmm_ref *ref);

/* The header of a list request, read once. */
struct dmm_list_hdr {
    uint16_t type;
    uint16_t arg;    /* page requests: the order; else 0 */
    uint32_t nb;     /* entries */
};

/* A kind of list request (page requests, hints): same header layout. */
struct dmm_list_kind {
    size_t entry_size;
    uint32_t max_entries;
    /* the header's second field may be non-zero (else it must be 0) */
    bool takes_arg;
    /* header, entries: ACK if valid, else the response */
    uint16_t (*check)(struct dmm_dev *d, const struct dmm_list_hdr *h,
                      const uint8_t *entries);
    /* a valid list: the response type; fills @resp, sets *@changed */
    uint16_t (*process)(struct dmm_dev *d, const struct dmm_list_hdr *h,
                        const uint8_t *entries, struct virtio_dmm_resp *resp,
                        unsigned int *changed);
    /* count the response of a list of @nb entries */
    void (*account)(struct dmm_dev *d, uint16_t rtype, uint32_t nb);
};

int dmm_handle_list(struct dmm_dev *d, const struct dmm_list_kind *k,
                    const void *req, size_t req_len,
                    struct virtio_dmm_resp *resp);

/* --- hints (dmm_hints.c) --- */

int dmm_hints_init(struct dmm_dev *d);
/* Share chunk @chunk of boot RAM (@boot) or the region, once. */
int dmm_share_chunk(struct dmm_dev *d, bool boot, uint64_t chunk);

#endif /* DMM_INTERNAL_H */
