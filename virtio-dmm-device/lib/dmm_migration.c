// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device library: the device's state as one image for
 * migration, and the checks of an image before a device takes it.
 *
 * The image, all little-endian:
 *   11 x u64  block_size, region_addr, region_size, boot_size, sb_size,
 *             page_size, region chunks, boot chunks (the parameters: must
 *             be the destination's), requested_size, plugged_size,
 *             unplugged_size
 *   bitmaps   plugged sub-blocks, unplugged boot pages, unplugged region
 *             pages, shared region chunks, shared boot chunks; whole
 *             bytes, each (nb + 7) / 8 of them (0 where there are none)
 * An image comes from another process: every field is checked.
 */
#include <errno.h>
#include <string.h>

#include "dmm_internal.h"

enum {
    DMM_IMG_BLOCK_SIZE,
    DMM_IMG_REGION_ADDR,
    DMM_IMG_REGION_SIZE,
    DMM_IMG_BOOT_SIZE,
    DMM_IMG_SB_SIZE,
    DMM_IMG_PAGE_SIZE,
    DMM_IMG_REGION_CHUNKS,
    DMM_IMG_BOOT_CHUNKS,
    DMM_IMG_NB_PARAMS,
    DMM_IMG_REQUESTED = DMM_IMG_NB_PARAMS,
    DMM_IMG_PLUGGED,
    DMM_IMG_UNPLUGGED,
    DMM_IMG_NB_FIELDS,
};

#define DMM_IMG_HEADER (DMM_IMG_NB_FIELDS * 8)

/* An image's fields and bitmaps, pointing into it. */
struct dmm_image {
    uint64_t f[DMM_IMG_NB_FIELDS];
    const uint8_t *sbs, *boot_pages, *region_pages, *chunks[2];
};

static const char *const dmm_img_names[DMM_IMG_NB_PARAMS] = {
    "block-size",
    "region address",
    "region size",
    "boot size",
    "sub-block size",
    "page size",
    "hint chunks of the region",
    "hint chunks of boot RAM",
};

/* What an image of @d holds, in the order of the image. */
static void dmm_image_fields(const struct dmm_dev *d, uint64_t *f)
{
    f[DMM_IMG_BLOCK_SIZE] = d->p.block_size;
    f[DMM_IMG_REGION_ADDR] = d->p.region_addr;
    f[DMM_IMG_REGION_SIZE] = d->p.region_size;
    f[DMM_IMG_BOOT_SIZE] = d->p.boot_size;
    f[DMM_IMG_SB_SIZE] = d->sb_size;
    f[DMM_IMG_PAGE_SIZE] = d->p.page_size;
    f[DMM_IMG_REGION_CHUNKS] = d->nb_chunks[0];
    f[DMM_IMG_BOOT_CHUNKS] = d->nb_chunks[1];
    f[DMM_IMG_REQUESTED] = d->requested_size;
    f[DMM_IMG_PLUGGED] = d->plugged_size;
    f[DMM_IMG_UNPLUGGED] = d->unplugged_size;
}

/* The bitmaps of @d's image: their lengths in bits, in order. */
static void dmm_image_bits(const struct dmm_dev *d, uint64_t nb[5])
{
    nb[0] = d->nb_sbs;
    nb[1] = d->p.page_size ? d->nb_boot_pages : 0;
    nb[2] = d->p.page_size ? d->nb_region_pages : 0;
    nb[3] = d->nb_chunks[0];
    nb[4] = d->nb_chunks[1];
}

size_t dmm_state_size(const struct dmm_dev *d)
{
    uint64_t nb[5], n = DMM_IMG_HEADER;
    int i;

    dmm_image_bits(d, nb);
    for (i = 0; i < 5; i++) {
        n += dmm_bitmap_bytes(nb[i]);
    }
    return n;
}

void dmm_save(const struct dmm_dev *d, uint8_t *buf)
{
    const uint8_t *maps[5] = {
        d->sb_plugged, d->boot_pages, d->region_pages,
        d->chunks[0],  d->chunks[1],
    };
    uint64_t f[DMM_IMG_NB_FIELDS], nb[5];
    int i;

    dmm_image_fields(d, f);
    for (i = 0; i < DMM_IMG_NB_FIELDS; i++, buf += 8) {
        dmm_put_le64(buf, f[i]);
    }
    dmm_image_bits(d, nb);
    for (i = 0; i < 5; i++) {
        if (nb[i]) {
            memcpy(buf, maps[i], dmm_bitmap_bytes(nb[i]));
        }
        buf += dmm_bitmap_bytes(nb[i]);
    }
}

/* Read @buf as an image of a device with @d's parameters. */
static int dmm_image_parse(const struct dmm_dev *d, const uint8_t *buf,
                           size_t len, struct dmm_image *img, char *err,
                           size_t errlen)
{
    const uint8_t **maps[5] = {
        &img->sbs,       &img->boot_pages, &img->region_pages,
        &img->chunks[0], &img->chunks[1],
    };
    uint64_t ours[DMM_IMG_NB_FIELDS], nb[5];
    int i;

    if (len < DMM_IMG_HEADER) {
        dmm_err(err, errlen, "state of %zu bytes is too short", len);
        return -EINVAL;
    }
    dmm_image_fields(d, ours);
    for (i = 0; i < DMM_IMG_NB_FIELDS; i++) {
        img->f[i] = dmm_le64(buf + 8 * i);
    }
    for (i = 0; i < DMM_IMG_NB_PARAMS; i++) {
        if (img->f[i] != ours[i]) {
            dmm_err(err, errlen,
                    "%s differs: source 0x%llx, "
                    "destination 0x%llx",
                    dmm_img_names[i], (unsigned long long)img->f[i],
                    (unsigned long long)ours[i]);
            return -EINVAL;
        }
    }
    if (len != dmm_state_size(d)) {
        dmm_err(err, errlen, "state of %zu bytes, expected %zu", len,
                dmm_state_size(d));
        return -EINVAL;
    }
    dmm_image_bits(d, nb);
    buf += DMM_IMG_HEADER;
    for (i = 0; i < 5; i++) {
        *maps[i] = buf;
        buf += dmm_bitmap_bytes(nb[i]);
    }
    return 0;
}

/* Bitmaps have whole bytes: a bit past the end of one is refused. */
static int dmm_image_stray_bits(const struct dmm_dev *d,
                                const struct dmm_image *img, char *err,
                                size_t errlen)
{
    static const char *const what[5] = {
        "sub-block", "boot page", "region page", "region chunk", "boot chunk",
    };
    const uint8_t *maps[5] = {
        img->sbs,       img->boot_pages, img->region_pages,
        img->chunks[0], img->chunks[1],
    };
    uint64_t nb[5], bit;
    int i;

    dmm_image_bits(d, nb);
    for (i = 0; i < 5; i++) {
        if (nb[i] && dmm_stray_bit(maps[i], nb[i], &bit)) {
            dmm_err(err, errlen, "%s bit %llu is past the end (%llu)", what[i],
                    (unsigned long long)bit, (unsigned long long)nb[i]);
            return -EINVAL;
        }
    }
    return 0;
}

/*
 * Unplugged pages: none in unplugged sub-blocks, as many as unplugged_size
 * says, and no more than the guest has.
 */
static int dmm_image_check_pages(const struct dmm_dev *d,
                                 const struct dmm_image *img, char *err,
                                 size_t errlen)
{
    uint64_t ps = d->p.page_size, unplugged = img->f[DMM_IMG_UNPLUGGED];
    uint64_t i, n;

    if (!ps) {
        if (!unplugged) {
            return 0;
        }
        dmm_err(err, errlen, "unplugged-size 0x%llx without pages",
                (unsigned long long)unplugged);
        return -EINVAL;
    }
    for (i = 0; i < d->nb_sbs; i++) {
        if (!dmm_bit_test(img->sbs, i) &&
            dmm_bitmap_count(img->region_pages, i * d->sb_size / ps,
                             d->sb_size / ps)) {
            dmm_err(err, errlen,
                    "unplugged block %llu has unplugged "
                    "pages",
                    (unsigned long long)(i / d->sbs_per_block));
            return -EINVAL;
        }
    }
    n = dmm_bitmap_count(img->boot_pages, 0, d->nb_boot_pages) +
        dmm_bitmap_count(img->region_pages, 0, d->nb_region_pages);
    if (n * ps != unplugged ||
        unplugged > d->p.boot_size + img->f[DMM_IMG_PLUGGED]) {
        dmm_err(err, errlen,
                "unplugged-size 0x%llx does not match %llu "
                "unplugged pages",
                (unsigned long long)unplugged, (unsigned long long)n);
        return -EINVAL;
    }
    return 0;
}

/* Separate runs of set bits in the first @nb bits of @bitmap. */
static uint64_t dmm_runs(const uint8_t *bitmap, uint64_t nb)
{
    uint64_t i, n = 0;

    for (i = 0; i < nb; i++) {
        n += dmm_bit_test(bitmap, i) && (!i || !dmm_bit_test(bitmap, i - 1));
    }
    return n;
}

static int dmm_image_check(const struct dmm_dev *d, const struct dmm_image *img,
                           char *err, size_t errlen)
{
    uint64_t n, plugged = img->f[DMM_IMG_PLUGGED];
    int boot;

    if (dmm_image_stray_bits(d, img, err, errlen)) {
        return -EINVAL;
    }
    n = dmm_bitmap_count(img->sbs, 0, d->nb_sbs);
    if (n * d->sb_size != plugged) {
        dmm_err(err, errlen,
                "plugged-size 0x%llx does not match %llu "
                "plugged sub-blocks",
                (unsigned long long)plugged, (unsigned long long)n);
        return -EINVAL;
    }
    if (dmm_image_check_pages(d, img, err, errlen)) {
        return -EINVAL;
    }
    for (boot = 0; boot < 2; boot++) {
        if (d->nb_chunks[boot] &&
            dmm_runs(img->chunks[boot], d->nb_chunks[boot]) >
                DMM_MAX_HINT_RUNS) {
            dmm_err(err, errlen,
                    "more than %d runs of shared chunks "
                    "of %s",
                    DMM_MAX_HINT_RUNS, boot ? "boot RAM" : "the region");
            return -EINVAL;
        }
    }
    return dmm_check_requested_size(d, img->f[DMM_IMG_REQUESTED], err, errlen);
}

/* Share what the source shared, chunk by chunk, from nothing shared. */
static int dmm_load_chunks(struct dmm_dev *d, const struct dmm_image *img,
                           char *err, size_t errlen)
{
    uint64_t i;
    int boot;

    d->counters.mergeable_bytes = 0;
    for (boot = 0; boot < 2; boot++) {
        d->chunk_runs[boot] = 0;
        if (!d->nb_chunks[boot]) {
            continue;
        }
        memset(d->chunks[boot], 0, dmm_bitmap_bytes(d->nb_chunks[boot]));
        for (i = 0; i < d->nb_chunks[boot]; i++) {
            if (dmm_bit_test(img->chunks[boot], i) &&
                dmm_share_chunk(d, boot, i)) {
                dmm_err(err, errlen,
                        "chunk %llu of %s cannot "
                        "be shared",
                        (unsigned long long)i,
                        boot ? "boot RAM" : "the region");
                return -EIO;
            }
        }
    }
    return 0;
}

int dmm_load(struct dmm_dev *d, const uint8_t *buf, size_t len, char *err,
             size_t errlen)
{
    struct dmm_image img;

    if (dmm_image_parse(d, buf, len, &img, err, errlen) ||
        dmm_image_check(d, &img, err, errlen)) {
        return -EINVAL;
    }
    memcpy(d->sb_plugged, img.sbs, dmm_bitmap_bytes(d->nb_sbs));
    if (d->p.page_size) {
        memcpy(d->boot_pages, img.boot_pages,
               dmm_bitmap_bytes(d->nb_boot_pages));
        memcpy(d->region_pages, img.region_pages,
               dmm_bitmap_bytes(d->nb_region_pages));
    }
    d->requested_size = img.f[DMM_IMG_REQUESTED];
    d->plugged_size = img.f[DMM_IMG_PLUGGED];
    d->unplugged_size = img.f[DMM_IMG_UNPLUGGED];
    dmm_state_changed(d, 0, d->p.region_size);
    return dmm_load_chunks(d, &img, err, errlen);
}

int dmm_discard_unplugged(struct dmm_dev *d)
{
    uint64_t i, sbs = d->sb_size;
    int ret;

    for (i = 0; i < d->nb_sbs; i++) {
        if (dmm_sb_test(d, i)) {
            continue;
        }
        ret = d->ops->discard(d->opaque, i * sbs, sbs);
        if (ret) {
            return ret;
        }
    }
    return 0;
}
