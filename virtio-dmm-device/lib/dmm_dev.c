// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device logic, independent of any VMM.  See dmm_dev.h.
 *
 * Every field the guest controls is checked here before it is used: a
 * request either matches the rules of the specification and changes state,
 * or is answered NACK, BUSY or ERROR and changes nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmm_dev.h"

/* --- little-endian helpers, correct on any host byte order --- */

static uint16_t dmm_le16(const void *p)
{
	const uint8_t *b = p;

	return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t dmm_le32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static uint64_t dmm_le64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static void dmm_put_le16(void *p, uint16_t v)
{
	uint8_t *b = p;

	b[0] = v & 0xff;
	b[1] = v >> 8;
}

static void dmm_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;
	int i;

	for (i = 0; i < 4; i++, v >>= 8)
		b[i] = v & 0xff;
}

static void dmm_put_le64(void *p, uint64_t v)
{
	uint8_t *b = p;
	int i;

	for (i = 0; i < 8; i++, v >>= 8)
		b[i] = v & 0xff;
}

static void __attribute__((format(printf, 3, 4)))
dmm_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* --- set-up --- */

/* Sub-blocks divide a block; pages (if any) divide a sub-block. */
static int dmm_check_sb_params(const struct dmm_params *p, char *err,
			       size_t errlen)
{
	uint64_t sbs = p->sub_block_size;

	if (!sbs)
		return 0;
	if (!is_pow2(sbs) || sbs > p->block_size ||
	    sbs < DMM_MIN_BLOCK_SIZE || (p->page_size && sbs < p->page_size) ||
	    p->block_size / sbs > DMM_MAX_SBS_PER_BLOCK) {
		dmm_err(err, errlen, "sub-block size 0x%llx must be a power of "
			"two between 0x%llx and block-size 0x%llx, at most "
			"%u per block", (unsigned long long)sbs,
			(unsigned long long)DMM_MIN_BLOCK_SIZE,
			(unsigned long long)p->block_size,
			DMM_MAX_SBS_PER_BLOCK);
		return -EINVAL;
	}
	return 0;
}

/* Page requests need a page size that divides blocks and boot RAM. */
static int dmm_check_page_params(const struct dmm_params *p,
				 const struct dmm_backend_ops *ops,
				 char *err, size_t errlen)
{
	uint64_t ps = p->page_size;

	if (!ps)
		return 0;
	if (!is_pow2(ps) || ps > p->block_size || p->boot_size % ps) {
		dmm_err(err, errlen, "page size 0x%llx must be a power of two "
			"dividing block-size 0x%llx and boot-size 0x%llx",
			(unsigned long long)ps,
			(unsigned long long)p->block_size,
			(unsigned long long)p->boot_size);
		return -EINVAL;
	}
	if (!ops || !ops->boot_page || !ops->discard_boot) {
		dmm_err(err, errlen, "backend lacks boot_page or discard_boot");
		return -EINVAL;
	}
	return 0;
}

static int dmm_alloc_page_bitmaps(struct dmm_dev *d,
				  const struct dmm_params *p)
{
	d->nb_boot_pages = p->boot_size / p->page_size;
	d->nb_region_pages = p->region_size / p->page_size;
	/* calloc(0) may return NULL: a guest without boot RAM is legal. */
	d->boot_pages = calloc(dmm_bitmap_bytes(d->nb_boot_pages) + 1, 1);
	d->region_pages = calloc(dmm_bitmap_bytes(d->nb_region_pages), 1);
	return d->boot_pages && d->region_pages ? 0 : -ENOMEM;
}

int dmm_dev_init(struct dmm_dev *d, const struct dmm_params *p,
		 const struct dmm_backend_ops *ops, void *opaque,
		 char *err, size_t errlen)
{
	uint64_t bs = p->block_size;

	memset(d, 0, sizeof(*d));
	if (!is_pow2(bs) || bs < DMM_MIN_BLOCK_SIZE) {
		dmm_err(err, errlen, "block-size 0x%llx must be a power of two "
			"of at least 0x%llx", (unsigned long long)bs,
			(unsigned long long)DMM_MIN_BLOCK_SIZE);
		return -EINVAL;
	}
	if (!p->region_size || p->region_size % bs) {
		dmm_err(err, errlen, "region size 0x%llx must be a non-zero "
			"multiple of block-size 0x%llx",
			(unsigned long long)p->region_size,
			(unsigned long long)bs);
		return -EINVAL;
	}
	if (p->region_addr % bs) {
		dmm_err(err, errlen, "region address 0x%llx is not aligned to "
			"block-size 0x%llx", (unsigned long long)p->region_addr,
			(unsigned long long)bs);
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
		dmm_err(err, errlen, "region of 0x%llx blocks exceeds the limit "
			"of 0x%llx blocks", (unsigned long long)(p->region_size / bs),
			(unsigned long long)DMM_MAX_BLOCKS);
		return -EINVAL;
	}
	if (!ops || !ops->populate || !ops->discard) {
		dmm_err(err, errlen, "backend lacks populate or discard");
		return -EINVAL;
	}
	if (dmm_check_page_params(p, ops, err, errlen) ||
	    dmm_check_sb_params(p, err, errlen))
		return -EINVAL;
	d->state = calloc(p->region_size / bs, 1);
	if (!d->state) {
		dmm_err(err, errlen, "out of memory for 0x%llx block states",
			(unsigned long long)(p->region_size / bs));
		return -ENOMEM;
	}
	d->sb_size = p->sub_block_size ? p->sub_block_size : bs;
	d->nb_sbs = p->region_size / d->sb_size;
	d->sbs_per_block = bs / d->sb_size;
	d->sb_plugged = calloc(dmm_bitmap_bytes(d->nb_sbs), 1);
	if (!d->sb_plugged) {
		dmm_dev_fini(d);
		dmm_err(err, errlen, "out of memory for 0x%llx sub-block states",
			(unsigned long long)d->nb_sbs);
		return -ENOMEM;
	}
	if (p->page_size && dmm_alloc_page_bitmaps(d, p)) {
		dmm_dev_fini(d);
		dmm_err(err, errlen, "out of memory for the page bitmaps");
		return -ENOMEM;
	}
	d->p = *p;
	d->nb_blocks = p->region_size / bs;
	d->requested_size = p->boot_size;
	d->ops = ops;
	d->opaque = opaque;
	return 0;
}

void dmm_dev_fini(struct dmm_dev *d)
{
	free(d->state);
	free(d->sb_plugged);
	d->sb_plugged = NULL;
	free(d->boot_pages);
	free(d->region_pages);
	d->state = NULL;
	d->boot_pages = NULL;
	d->region_pages = NULL;
}

/* --- sizes --- */

uint64_t dmm_current_size(const struct dmm_dev *d)
{
	return d->p.boot_size + d->plugged_size - d->unplugged_size;
}

/* requested_size with page requests: any page multiple in range. */
static int dmm_check_requested_pages(const struct dmm_dev *d, uint64_t size,
				     char *err, size_t errlen)
{
	const struct dmm_params *p = &d->p;
	uint64_t min = p->boot_size < DMM_MIN_REQUESTED_SIZE ?
		       p->boot_size : DMM_MIN_REQUESTED_SIZE;
	/* init checked that boot_size + region_size does not overflow */
	uint64_t max = p->boot_size + p->region_size;

	if (size < min || size > max) {
		dmm_err(err, errlen, "requested-size 0x%llx is outside "
			"0x%llx..0x%llx", (unsigned long long)size,
			(unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	if (size % p->page_size) {
		dmm_err(err, errlen, "requested-size 0x%llx is not a multiple "
			"of the page size 0x%llx", (unsigned long long)size,
			(unsigned long long)p->page_size);
		return -EINVAL;
	}
	return 0;
}

int dmm_check_requested_size(const struct dmm_dev *d, uint64_t size,
			     char *err, size_t errlen)
{
	const struct dmm_params *p = &d->p;

	if (p->page_size)
		return dmm_check_requested_pages(d, size, err, errlen);
	if (p->sub_block_size && size >= p->boot_size &&
	    size - p->boot_size <= p->region_size &&
	    (size - p->boot_size) % p->sub_block_size) {
		dmm_err(err, errlen, "requested-size 0x%llx is not boot-size "
			"0x%llx plus a multiple of the sub-block size 0x%llx",
			(unsigned long long)size,
			(unsigned long long)p->boot_size,
			(unsigned long long)p->sub_block_size);
		return -EINVAL;
	}
	if (size < p->boot_size) {
		dmm_err(err, errlen, "requested-size 0x%llx is below boot-size "
			"0x%llx", (unsigned long long)size,
			(unsigned long long)p->boot_size);
		return -EINVAL;
	}
	if (size - p->boot_size > p->region_size) {
		dmm_err(err, errlen, "requested-size 0x%llx exceeds boot-size "
			"0x%llx plus region size 0x%llx",
			(unsigned long long)size,
			(unsigned long long)p->boot_size,
			(unsigned long long)p->region_size);
		return -EINVAL;
	}
	if (!p->sub_block_size && (size - p->boot_size) % p->block_size) {
		dmm_err(err, errlen, "requested-size 0x%llx is not boot-size "
			"0x%llx plus a multiple of block-size 0x%llx",
			(unsigned long long)size,
			(unsigned long long)p->boot_size,
			(unsigned long long)p->block_size);
		return -EINVAL;
	}
	return 0;
}

int dmm_set_requested_size(struct dmm_dev *d, uint64_t size,
			   char *err, size_t errlen)
{
	int ret = dmm_check_requested_size(d, size, err, errlen);

	if (!ret)
		d->requested_size = size;
	return ret;
}

/* --- sub-blocks: the unit of state; a block is sbs_per_block of them --- */

static bool dmm_sb_test(const struct dmm_dev *d, uint64_t sb)
{
	return d->sb_plugged[sb / 8] & (1u << (sb % 8));
}

/* Plugged sub-blocks in [first, first + count). */
static uint64_t dmm_count_sbs(const struct dmm_dev *d, uint64_t first,
			      uint64_t count)
{
	uint64_t i, n = 0;

	for (i = first; i < first + count; i++)
		n += dmm_sb_test(d, i);
	return n;
}

/* A block's summary state, from its sub-blocks. */
static uint8_t dmm_block_state_of(const struct dmm_dev *d, uint64_t block)
{
	uint64_t n = dmm_count_sbs(d, block * d->sbs_per_block,
				   d->sbs_per_block);

	return n == d->sbs_per_block ? DMM_BLOCK_PLUGGED :
	       n ? DMM_BLOCK_PARTIAL : DMM_BLOCK_UNPLUGGED;
}

static void dmm_update_block(struct dmm_dev *d, uint64_t block)
{
	d->state[block] = dmm_block_state_of(d, block);
}

static void dmm_set_sbs(struct dmm_dev *d, uint64_t first, uint64_t count,
			bool plugged)
{
	uint64_t i;

	for (i = first; i < first + count; i++) {
		if (plugged)
			d->sb_plugged[i / 8] |= 1u << (i % 8);
		else
			d->sb_plugged[i / 8] &= ~(1u << (i % 8));
	}
	for (i = first / d->sbs_per_block;
	     i <= (first + count - 1) / d->sbs_per_block; i++)
		dmm_update_block(d, i);
}

uint64_t dmm_partial_plugged_size(const struct dmm_dev *d)
{
	uint64_t i, n = 0;

	for (i = 0; i < d->nb_blocks; i++)
		if (d->state[i] == DMM_BLOCK_PARTIAL)
			n += dmm_count_sbs(d, i * d->sbs_per_block,
					   d->sbs_per_block);
	return n * d->sb_size;
}

uint64_t dmm_count_plugged(const struct dmm_dev *d, uint64_t first,
			   uint64_t count)
{
	uint64_t i, n = 0;

	for (i = first; i < first + count; i++)
		n += d->state[i] == DMM_BLOCK_PLUGGED;
	return n;
}

bool dmm_range_is_plugged(const struct dmm_dev *d, uint64_t offset,
			  uint64_t len)
{
	uint64_t first, last;

	if (!len || offset >= d->p.region_size ||
	    len > d->p.region_size - offset)
		return false;
	first = offset / d->sb_size;
	last = (offset + len - 1) / d->sb_size;
	return dmm_count_sbs(d, first, last - first + 1) == last - first + 1;
}

static void dmm_state_changed(struct dmm_dev *d, uint64_t offset,
			      uint64_t len)
{
	if (d->ops->state_changed)
		d->ops->state_changed(d->opaque, offset, len);
}

static void dmm_set_plugged_size(struct dmm_dev *d, uint64_t size)
{
	if (size == d->plugged_size)
		return;
	d->plugged_size = size;
	if (d->ops->plugged_changed)
		d->ops->plugged_changed(d->opaque, size);
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

	if (addr % unit || !nb || nb > units)
		return -EINVAL;
	if (addr < d->p.region_addr)
		return -EINVAL;
	off = addr - d->p.region_addr;
	if (off / unit > units - nb)
		return -EINVAL;
	*first = off / d->sb_size;
	*count = nb * (unit / d->sb_size);
	return 0;
}

static uint16_t dmm_plug_sbs(struct dmm_dev *d, uint64_t first, uint64_t count)
{
	uint64_t sbs = d->sb_size;

	if (dmm_count_sbs(d, first, count))
		return VIRTIO_DMM_RESP_ERROR;
	if (dmm_current_size(d) + count * sbs > d->requested_size)
		return VIRTIO_DMM_RESP_NACK;
	if (d->ops->populate(d->opaque, first * sbs, count * sbs)) {
		d->stats.backend_errors++;
		/* Leave nothing half-populated behind. */
		d->ops->discard(d->opaque, first * sbs, count * sbs);
		return VIRTIO_DMM_RESP_ERROR;
	}
	dmm_set_sbs(d, first, count, true);
	dmm_state_changed(d, first * sbs, count * sbs);
	dmm_set_plugged_size(d, d->plugged_size + count * sbs);
	d->stats.plugs++;
	return VIRTIO_DMM_RESP_ACK;
}

/* Does [offset, offset + len) of the region hold an unplugged page? */
static bool dmm_range_has_unplugged_pages(const struct dmm_dev *d,
					  uint64_t offset, uint64_t len)
{
	uint64_t i, end;

	if (!d->p.page_size || !d->unplugged_size)
		return false;
	end = (offset + len) / d->p.page_size;
	for (i = offset / d->p.page_size; i < end; i++) {
		/* whole zero bytes at a time where aligned */
		if (!(i % 8) && i + 8 <= end && !d->region_pages[i / 8]) {
			i += 7;
			continue;
		}
		if (dmm_page_test(d->region_pages, i))
			return true;
	}
	return false;
}

static uint16_t dmm_unplug_sbs(struct dmm_dev *d, uint64_t first,
			       uint64_t count)
{
	uint64_t sbs = d->sb_size;

	if (dmm_count_sbs(d, first, count) != count ||
	    dmm_range_has_unplugged_pages(d, first * sbs, count * sbs))
		return VIRTIO_DMM_RESP_ERROR;
	if (d->ops->discard(d->opaque, first * sbs, count * sbs)) {
		d->stats.backend_errors++;
		return VIRTIO_DMM_RESP_ERROR;
	}
	dmm_set_sbs(d, first, count, false);
	dmm_state_changed(d, first * sbs, count * sbs);
	dmm_set_plugged_size(d, d->plugged_size - count * sbs);
	d->stats.unplugs++;
	return VIRTIO_DMM_RESP_ACK;
}

/* State of the sub-blocks [first, first + count). */
static uint16_t dmm_state_of(const struct dmm_dev *d, uint64_t first,
			     uint64_t count)
{
	uint64_t n = dmm_count_sbs(d, first, count);

	if (n == count)
		return VIRTIO_DMM_STATE_PLUGGED;
	return n ? VIRTIO_DMM_STATE_MIXED : VIRTIO_DMM_STATE_UNPLUGGED;
}

static int dmm_discard_region(struct dmm_dev *d)
{
	if (d->ops->discard(d->opaque, 0, d->p.region_size)) {
		d->stats.backend_errors++;
		return -EIO;
	}
	return 0;
}

static void dmm_forget_all(struct dmm_dev *d)
{
	memset(d->state, DMM_BLOCK_UNPLUGGED, d->nb_blocks);
	memset(d->sb_plugged, 0, dmm_bitmap_bytes(d->nb_sbs));
	if (d->p.page_size) {
		memset(d->boot_pages, 0, dmm_bitmap_bytes(d->nb_boot_pages));
		memset(d->region_pages, 0,
		       dmm_bitmap_bytes(d->nb_region_pages));
		d->unplugged_size = 0;
	}
	dmm_state_changed(d, 0, d->p.region_size);
	dmm_set_plugged_size(d, 0);
}

/*
 * Machine reset: every block becomes unplugged even if the discard fails
 * (the next guest starts from nothing either way); the failure is returned
 * for the VMM to report.
 */
int dmm_unplug_all(struct dmm_dev *d)
{
	int ret = dmm_discard_region(d);

	dmm_forget_all(d);
	return ret;
}

/*
 * The guest asks for a total of @ask->size bytes: a valid requested_size
 * and known reasons, or ERROR.  The VMM's policy decides; a grant sets
 * requested_size here, so the guest's next look at the configuration sees
 * it.
 */
static uint16_t dmm_process_ask(struct dmm_dev *d,
				const struct virtio_dmm_req_ask *ask)
{
	uint64_t size = dmm_le64(&ask->size), reason = dmm_le64(&ask->reason);
	uint16_t answer;

	if (!d->ops->ask || (reason & ~(uint64_t)VIRTIO_DMM_ASK_REASONS) ||
	    dmm_check_requested_size(d, size, NULL, 0))
		return VIRTIO_DMM_RESP_ERROR;
	d->stats.asks++;
	answer = d->ops->ask(d->opaque, size, reason);
	if (answer == VIRTIO_DMM_RESP_ACK &&
	    dmm_set_requested_size(d, size, NULL, 0))
		answer = VIRTIO_DMM_RESP_NACK;	/* the VMM granted nonsense */
	if (answer == VIRTIO_DMM_RESP_ACK)
		d->stats.asks_granted++;
	return answer;
}

static uint16_t dmm_process(struct dmm_dev *d, const struct virtio_dmm_req *req,
			    struct virtio_dmm_resp *resp)
{
	uint16_t type = dmm_le16(&req->type);
	uint64_t first, count;
	int i;

	for (i = 0; i < 3; i++)
		if (dmm_le16(&req->padding[i]))
			return VIRTIO_DMM_RESP_ERROR;

	switch (type) {
	case VIRTIO_DMM_REQ_PLUG:
	case VIRTIO_DMM_REQ_PLUG_SB:
		if ((type == VIRTIO_DMM_REQ_PLUG_SB && !d->p.sub_block_size) ||
		    dmm_check_range(d, &req->u.plug, type == VIRTIO_DMM_REQ_PLUG ?
				    d->p.block_size : d->sb_size, &first, &count))
			return VIRTIO_DMM_RESP_ERROR;
		return d->busy ? VIRTIO_DMM_RESP_BUSY :
				 dmm_plug_sbs(d, first, count);
	case VIRTIO_DMM_REQ_UNPLUG:
	case VIRTIO_DMM_REQ_UNPLUG_SB:
		if ((type == VIRTIO_DMM_REQ_UNPLUG_SB && !d->p.sub_block_size) ||
		    dmm_check_range(d, &req->u.unplug,
				    type == VIRTIO_DMM_REQ_UNPLUG ?
				    d->p.block_size : d->sb_size, &first, &count))
			return VIRTIO_DMM_RESP_ERROR;
		return d->busy ? VIRTIO_DMM_RESP_BUSY :
				 dmm_unplug_sbs(d, first, count);
	case VIRTIO_DMM_REQ_UNPLUG_ALL:
		/* As a request, a failed discard answers ERROR, changes nothing. */
		if (d->busy)
			return VIRTIO_DMM_RESP_BUSY;
		if (dmm_discard_region(d))
			return VIRTIO_DMM_RESP_ERROR;
		dmm_forget_all(d);
		d->stats.unplugs++;
		return VIRTIO_DMM_RESP_ACK;
	case VIRTIO_DMM_REQ_STATE:
		if (dmm_check_range(d, &req->u.state, d->p.block_size, &first,
				    &count))
			return VIRTIO_DMM_RESP_ERROR;
		dmm_put_le16(&resp->u.state.state,
			     dmm_state_of(d, first, count));
		return VIRTIO_DMM_RESP_ACK;
	case VIRTIO_DMM_REQ_ASK:
		return dmm_process_ask(d, &req->u.ask);
	default:
		return VIRTIO_DMM_RESP_ERROR;
	}
}

int dmm_handle_request(struct dmm_dev *d, const void *req, size_t req_len,
		       struct virtio_dmm_resp *resp)
{
	struct virtio_dmm_req r;
	uint16_t type;

	if (req_len < sizeof(r))
		return -EINVAL;
	memcpy(&r, req, sizeof(r));
	memset(resp, 0, sizeof(*resp));
	d->stats.requests++;
	type = dmm_process(d, &r, resp);
	switch (type) {
	case VIRTIO_DMM_RESP_NACK:
		d->stats.nacks++;
		break;
	case VIRTIO_DMM_RESP_BUSY:
		d->stats.busy++;
		break;
	case VIRTIO_DMM_RESP_ERROR:
		d->stats.errors++;
		break;
	}
	dmm_put_le16(&resp->type, type);
	return sizeof(*resp);
}

/* --- page requests --- */

/* Where a page's unplugged bit lives. */
struct dmm_page_ref {
	uint8_t *bitmap;
	uint64_t bit;
	bool boot;
	uint64_t offset;	/* in boot RAM or the region */
};

/*
 * Find the bit of the page at guest-physical @gpa: it must be aligned, and
 * boot RAM or inside a plugged block of the region.
 */
static int dmm_page_lookup(const struct dmm_dev *d, uint64_t gpa,
			   struct dmm_page_ref *ref)
{
	uint64_t ps = d->p.page_size, off;

	if (gpa % ps)
		return -EINVAL;
	if (gpa >= d->p.region_addr &&
	    gpa - d->p.region_addr < d->p.region_size) {
		off = gpa - d->p.region_addr;
		if (!dmm_sb_test(d, off / d->sb_size))
			return -EINVAL;
		ref->bitmap = d->region_pages;
		ref->boot = false;
	} else {
		if (d->ops->boot_page(d->opaque, gpa, &off) ||
		    off % ps || off >= d->p.boot_size)
			return -EINVAL;
		ref->bitmap = d->boot_pages;
		ref->boot = true;
	}
	ref->offset = off;
	ref->bit = off / ps;
	return 0;
}

static void dmm_page_flip(struct dmm_page_ref *ref)
{
	ref->bitmap[ref->bit / 8] ^= 1u << (ref->bit % 8);
}

/*
 * Entry @i of a request: is its page to become unplugged (true) or plugged
 * (false)?  MOVE_PAGES pairs are (old: plugged back, new: unplugged).
 */
static bool dmm_entry_unplugs(uint16_t type, uint32_t i)
{
	if (type == VIRTIO_DMM_REQ_MOVE_PAGES)
		return i % 2;
	return type == VIRTIO_DMM_REQ_UNPLUG_PAGES;
}

/* Undo the flips of entries [0, n), last first. */
static void dmm_pages_rollback(struct dmm_dev *d, const uint8_t *addrs,
			       uint32_t n)
{
	struct dmm_page_ref ref;

	while (n--) {
		/* looked up successfully before; the lookup cannot change */
		if (!dmm_page_lookup(d, dmm_le64(addrs + 8 * n), &ref))
			dmm_page_flip(&ref);
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
	struct dmm_page_ref ref;
	uint32_t i;

	for (i = 0; i < nb; i++) {
		if (dmm_page_lookup(d, dmm_le64(addrs + 8 * i), &ref) ||
		    dmm_page_test(ref.bitmap, ref.bit) !=
		    dmm_entry_unplugs(type, i))
			return false;
	}
	return true;
}

/*
 * Check every entry and flip its bit, in order, so that a page listed
 * twice finds its own first flip and fails (or, in MOVE_PAGES, ends in the
 * wrong state).  Nothing stays changed on failure.  Linear in @nb.
 */
static int dmm_pages_apply(struct dmm_dev *d, uint16_t type,
			   const uint8_t *addrs, uint32_t nb)
{
	struct dmm_page_ref ref;
	uint32_t i;

	for (i = 0; i < nb; i++) {
		bool unplug = dmm_entry_unplugs(type, i);

		if (dmm_page_lookup(d, dmm_le64(addrs + 8 * i), &ref) ||
		    dmm_page_test(ref.bitmap, ref.bit) == unplug) {
			dmm_pages_rollback(d, addrs, i);
			return -EINVAL;
		}
		dmm_page_flip(&ref);
	}
	if (!dmm_pages_final(d, type, addrs, nb)) {
		dmm_pages_rollback(d, addrs, nb);
		return -EINVAL;
	}
	return 0;
}

/* Discard the pages an applied request left unplugged. */
static int dmm_pages_discard(struct dmm_dev *d, uint16_t type,
			     const uint8_t *addrs, uint32_t nb)
{
	uint64_t ps = d->p.page_size;
	struct dmm_page_ref ref;
	uint32_t i;
	int ret;

	if (d->discard_inhibited)
		return 0;
	for (i = 0; i < nb; i++) {
		if (!dmm_entry_unplugs(type, i) ||
		    dmm_page_lookup(d, dmm_le64(addrs + 8 * i), &ref) ||
		    !dmm_page_test(ref.bitmap, ref.bit))
			continue;
		ret = ref.boot ? d->ops->discard_boot(d->opaque, ref.offset, ps) :
				 d->ops->discard(d->opaque, ref.offset, ps);
		if (ret)
			return ret;
	}
	return 0;
}

static uint16_t dmm_process_pages(struct dmm_dev *d, uint16_t type,
				  const uint8_t *addrs, uint32_t nb)
{
	uint64_t bytes = (uint64_t)nb * d->p.page_size;

	if (dmm_pages_apply(d, type, addrs, nb))
		return VIRTIO_DMM_RESP_ERROR;
	if (type == VIRTIO_DMM_REQ_PLUG_PAGES &&
	    dmm_current_size(d) + bytes > d->requested_size) {
		dmm_pages_rollback(d, addrs, nb);
		return VIRTIO_DMM_RESP_NACK;
	}
	if (dmm_pages_discard(d, type, addrs, nb)) {
		/* The guest gave these pages up: losing content is harmless. */
		d->stats.backend_errors++;
		dmm_pages_rollback(d, addrs, nb);
		return VIRTIO_DMM_RESP_ERROR;
	}
	switch (type) {
	case VIRTIO_DMM_REQ_UNPLUG_PAGES:
		d->unplugged_size += bytes;
		d->stats.pages_unplugged += nb;
		break;
	case VIRTIO_DMM_REQ_PLUG_PAGES:
		d->unplugged_size -= bytes;
		d->stats.pages_plugged += nb;
		break;
	default:
		d->stats.pages_unplugged += nb / 2;
		d->stats.pages_plugged += nb / 2;
		break;
	}
	return VIRTIO_DMM_RESP_ACK;
}

/* Header checks: everything but the addresses themselves. */
static uint16_t dmm_check_page_req(const struct dmm_dev *d,
				   const struct virtio_dmm_page_req *h,
				   size_t req_len, uint16_t *type,
				   uint32_t *nb)
{
	*type = dmm_le16(&h->type);
	*nb = dmm_le32(&h->nb_pages);
	if (!d->p.page_size || dmm_le16(&h->padding))
		return VIRTIO_DMM_RESP_ERROR;
	if (*type != VIRTIO_DMM_REQ_UNPLUG_PAGES &&
	    *type != VIRTIO_DMM_REQ_PLUG_PAGES &&
	    *type != VIRTIO_DMM_REQ_MOVE_PAGES)
		return VIRTIO_DMM_RESP_ERROR;
	if (!*nb || *nb > DMM_MAX_PAGES_PER_REQ ||
	    (*type == VIRTIO_DMM_REQ_MOVE_PAGES && *nb % 2))
		return VIRTIO_DMM_RESP_ERROR;
	if ((req_len - sizeof(*h)) / 8 < *nb)
		return VIRTIO_DMM_RESP_ERROR;
	return VIRTIO_DMM_RESP_ACK;
}

int dmm_handle_page_request(struct dmm_dev *d, const void *req,
			    size_t req_len, struct virtio_dmm_resp *resp)
{
	const struct virtio_dmm_page_req *h = req;
	uint16_t type, rtype;
	uint32_t nb;

	if (req_len < sizeof(*h))
		return -EINVAL;
	memset(resp, 0, sizeof(*resp));
	d->stats.page_requests++;
	rtype = dmm_check_page_req(d, h, req_len, &type, &nb);
	if (rtype == VIRTIO_DMM_RESP_ACK)
		rtype = dmm_process_pages(d, type,
					  (const uint8_t *)req + sizeof(*h), nb);
	if (rtype == VIRTIO_DMM_RESP_NACK)
		d->stats.nacks++;
	else if (rtype == VIRTIO_DMM_RESP_ERROR)
		d->stats.errors++;
	dmm_put_le16(&resp->type, rtype);
	return sizeof(*resp);
}

/* --- configuration and migration --- */

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
	if (d->p.sub_block_size)
		dmm_put_le64(&cfg->sub_block_size, d->p.sub_block_size);
	if (d->p.page_size) {
		dmm_put_le32(&cfg->page_size, (uint32_t)d->p.page_size);
		dmm_put_le32(&cfg->max_pages, DMM_MAX_PAGES_PER_REQ);
		dmm_put_le64(&cfg->unplugged_size, d->unplugged_size);
	}
}

void dmm_sbs_from_block_states(struct dmm_dev *d)
{
	uint64_t i, j;

	memset(d->sb_plugged, 0, dmm_bitmap_bytes(d->nb_sbs));
	for (i = 0; i < d->nb_blocks; i++)
		if (d->state[i] == DMM_BLOCK_PLUGGED)
			for (j = i * d->sbs_per_block;
			     j < (i + 1) * d->sbs_per_block; j++)
				d->sb_plugged[j / 8] |= 1u << (j % 8);
}

static uint64_t dmm_bitmap_weight(const uint8_t *bitmap, uint64_t nb)
{
	uint64_t i, n = 0;

	for (i = 0; i < nb / 8; i++)
		n += (uint64_t)__builtin_popcount(bitmap[i]);
	for (i = nb / 8 * 8; i < nb; i++)
		n += dmm_page_test(bitmap, i);
	return n;
}

/*
 * A bitmap from a migration stream has whole bytes: is a bit past the
 * @nb it covers set?  Then *@bit is the first such bit.
 */
static bool dmm_stray_bit(const uint8_t *bitmap, uint64_t nb, uint64_t *bit)
{
	for (*bit = nb; *bit < dmm_bitmap_bytes(nb) * 8; (*bit)++)
		if (dmm_page_test(bitmap, *bit))
			return true;
	return false;
}

/*
 * Page bitmaps from a migration stream: no bits past the end, none in
 * unplugged blocks, and as many set as unplugged_size says.
 */
static int dmm_check_loaded_pages(const struct dmm_dev *d, char *err,
				  size_t errlen)
{
	uint64_t i, n;

	if (!d->p.page_size)
		return d->unplugged_size ? -EINVAL : 0;
	if (dmm_stray_bit(d->boot_pages, d->nb_boot_pages, &i) ||
	    dmm_stray_bit(d->region_pages, d->nb_region_pages, &i)) {
		dmm_err(err, errlen, "page bit %llu is out of range",
			(unsigned long long)i);
		return -EINVAL;
	}
	for (i = 0; i < d->nb_sbs; i++) {
		if (!dmm_sb_test(d, i) &&
		    dmm_range_has_unplugged_pages(d, i * d->sb_size,
						  d->sb_size)) {
			dmm_err(err, errlen, "unplugged block %llu has unplugged "
				"pages", (unsigned long long)(i /
							      d->sbs_per_block));
			return -EINVAL;
		}
	}
	n = dmm_bitmap_weight(d->boot_pages, d->nb_boot_pages) +
	    dmm_bitmap_weight(d->region_pages, d->nb_region_pages);
	if (n * d->p.page_size != d->unplugged_size ||
	    d->unplugged_size > d->p.boot_size + d->plugged_size) {
		dmm_err(err, errlen, "unplugged-size 0x%llx does not match %llu "
			"unplugged pages", (unsigned long long)d->unplugged_size,
			(unsigned long long)n);
		return -EINVAL;
	}
	return 0;
}

int dmm_check_loaded_state(const struct dmm_dev *d, char *err, size_t errlen)
{
	uint64_t i, n = 0;

	for (i = 0; i < d->nb_blocks; i++) {
		if (d->state[i] != dmm_block_state_of(d, i)) {
			dmm_err(err, errlen, "block %llu has state %u, but its "
				"sub-blocks say %u", (unsigned long long)i,
				d->state[i], dmm_block_state_of(d, i));
			return -EINVAL;
		}
	}
	if (dmm_stray_bit(d->sb_plugged, d->nb_sbs, &i)) {
		dmm_err(err, errlen, "sub-block bit %llu is past the region's "
			"%llu sub-blocks", (unsigned long long)i,
			(unsigned long long)d->nb_sbs);
		return -EINVAL;
	}
	n = dmm_count_sbs(d, 0, d->nb_sbs);
	if (n * d->sb_size != d->plugged_size) {
		dmm_err(err, errlen, "plugged-size 0x%llx does not match %llu "
			"plugged sub-blocks", (unsigned long long)d->plugged_size,
			(unsigned long long)n);
		return -EINVAL;
	}
	if (dmm_check_loaded_pages(d, err, errlen))
		return -EINVAL;
	return dmm_check_requested_size(d, d->requested_size, err, errlen);
}

/* --- hints --- */

#define XXH_P1 0x9E3779B185EBCA87ULL
#define XXH_P2 0xC2B2AE3D27D4EB4FULL
#define XXH_P3 0x165667B19E3779F9ULL
#define XXH_P4 0x85EBCA77C2B2AE63ULL
#define XXH_P5 0x27D4EB2F165667C5ULL

static uint64_t xxh_rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_round(uint64_t acc, uint64_t input)
{
	return xxh_rotl(acc + input * XXH_P2, 31) * XXH_P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
	return (acc ^ xxh_round(0, v)) * XXH_P1 + XXH_P4;
}

/* XXH64 as its specification defines it (little-endian input words). */
uint64_t dmm_xxh64(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data, *end = p + len;
	uint64_t h, v[4];

	if (len >= 32) {
		v[0] = seed + XXH_P1 + XXH_P2;
		v[1] = seed + XXH_P2;
		v[2] = seed;
		v[3] = seed - XXH_P1;
		for (; end - p >= 32; p += 32) {
			v[0] = xxh_round(v[0], dmm_le64(p));
			v[1] = xxh_round(v[1], dmm_le64(p + 8));
			v[2] = xxh_round(v[2], dmm_le64(p + 16));
			v[3] = xxh_round(v[3], dmm_le64(p + 24));
		}
		h = xxh_rotl(v[0], 1) + xxh_rotl(v[1], 7) +
		    xxh_rotl(v[2], 12) + xxh_rotl(v[3], 18);
		h = xxh_merge(xxh_merge(xxh_merge(xxh_merge(h, v[0]), v[1]),
					v[2]), v[3]);
	} else {
		h = seed + XXH_P5;
	}
	h += len;
	for (; end - p >= 8; p += 8)
		h = xxh_rotl(h ^ xxh_round(0, dmm_le64(p)), 27) * XXH_P1 +
		    XXH_P4;
	if (end - p >= 4) {
		h = xxh_rotl(h ^ (uint64_t)dmm_le32(p) * XXH_P1, 23) * XXH_P2 +
		    XXH_P3;
		p += 4;
	}
	for (; p < end; p++)
		h = xxh_rotl(h ^ *p * XXH_P5, 11) * XXH_P1;
	h ^= h >> 33;
	h *= XXH_P2;
	h ^= h >> 29;
	h *= XXH_P3;
	h ^= h >> 32;
	return h;
}

/*
 * Where the page of a hint lives: boot RAM, or a plugged sub-block of the
 * region, and not a page the guest unplugged.
 */
static int dmm_hint_lookup(const struct dmm_dev *d, uint64_t gpa,
			   bool *boot, uint64_t *offset)
{
	const uint64_t hps = VIRTIO_DMM_HINT_PAGE_SIZE;
	const uint8_t *bitmap;

	if (gpa % hps)
		return -EINVAL;
	if (gpa >= d->p.region_addr &&
	    gpa - d->p.region_addr < d->p.region_size) {
		*offset = gpa - d->p.region_addr;
		if (!dmm_sb_test(d, *offset / d->sb_size))
			return -EINVAL;
		*boot = false;
		bitmap = d->region_pages;
	} else {
		if (d->ops->boot_page(d->opaque, gpa, offset) ||
		    *offset % hps || *offset >= d->p.boot_size)
			return -EINVAL;
		*boot = true;
		bitmap = d->boot_pages;
	}
	/* hint pages are never larger than unplug pages (both 4 KiB) */
	if (d->p.page_size &&
	    dmm_page_test(bitmap, *offset / d->p.page_size))
		return -EINVAL;
	return 0;
}

static bool dmm_page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;

	for (i = 0; i < VIRTIO_DMM_HINT_PAGE_SIZE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* Header and addresses: everything is checked before any page is read. */
static uint16_t dmm_check_hint_req(const struct dmm_dev *d,
				   const struct virtio_dmm_hint_req *h,
				   size_t req_len, uint16_t *type, uint32_t *nb)
{
	const uint8_t *e = (const uint8_t *)h + sizeof(*h);
	uint64_t offset;
	uint32_t i;
	bool boot;

	*type = dmm_le16(&h->type);
	*nb = dmm_le32(&h->nb_hints);
	if (!d->ops->boot_page || !d->ops->page_ptr || !d->ops->share)
		return VIRTIO_DMM_RESP_ERROR;	/* the VMM offers no hints */
	if (dmm_le16(&h->padding) ||
	    (*type != VIRTIO_DMM_HINT_ZERO && *type != VIRTIO_DMM_HINT_DUP) ||
	    (*type == VIRTIO_DMM_HINT_DUP && !d->dup_hints))
		return VIRTIO_DMM_RESP_ERROR;
	if (!*nb || *nb > VIRTIO_DMM_MAX_HINTS ||
	    (req_len - sizeof(*h)) / sizeof(struct virtio_dmm_hint) < *nb)
		return VIRTIO_DMM_RESP_ERROR;
	for (i = 0; i < *nb; i++, e += sizeof(struct virtio_dmm_hint)) {
		if (dmm_hint_lookup(d, dmm_le64(e), &boot, &offset) ||
		    (*type == VIRTIO_DMM_HINT_ZERO && dmm_le64(e + 8)))
			return VIRTIO_DMM_RESP_ERROR;
	}
	return VIRTIO_DMM_RESP_ACK;
}

/*
 * Is the page as the hint says?  The content may change while we read it:
 * a page passed on is shared only by a mechanism that compares again
 * under write protection, so a wrong answer here costs work, not data.
 */
static bool dmm_hint_holds(struct dmm_dev *d, uint16_t type, bool boot,
			   uint64_t offset, uint64_t hash)
{
	const uint8_t *p = d->ops->page_ptr(d->opaque, boot, offset);

	if (!p)
		return false;
	if (type == VIRTIO_DMM_HINT_ZERO)
		return dmm_page_is_zero(p);
	return dmm_xxh64(p, VIRTIO_DMM_HINT_PAGE_SIZE, 0) == hash;
}

static void dmm_process_hints(struct dmm_dev *d, uint16_t type,
			      const uint8_t *e, uint32_t nb,
			      struct virtio_dmm_resp *resp)
{
	uint32_t i, ok = 0;
	uint64_t offset;
	bool boot;
	int ret;

	for (i = 0; i < nb; i++, e += sizeof(struct virtio_dmm_hint)) {
		/* checked by dmm_check_hint_req(): cannot fail */
		if (dmm_hint_lookup(d, dmm_le64(e), &boot, &offset) ||
		    !dmm_hint_holds(d, type, boot, offset, dmm_le64(e + 8)))
			continue;
		ret = d->ops->share(d->opaque, boot, offset);
		if (ret) {
			/* -ENOSPC: a bound of the VMM, the hint is rejected */
			if (ret != -ENOSPC)
				d->stats.backend_errors++;
			continue;
		}
		ok++;
	}
	if (type == VIRTIO_DMM_HINT_ZERO)
		d->stats.hints_zero += ok;
	else
		d->stats.hints_dup += ok;
	d->stats.hints_rejected += nb - ok;
	dmm_put_le32(&resp->u.hint.accepted, ok);
	dmm_put_le32(&resp->u.hint.rejected, nb - ok);
}

int dmm_handle_hint_request(struct dmm_dev *d, const void *req,
			    size_t req_len, struct virtio_dmm_resp *resp)
{
	const struct virtio_dmm_hint_req *h = req;
	uint16_t type, rtype;
	uint32_t nb;

	if (req_len < sizeof(*h))
		return -EINVAL;
	memset(resp, 0, sizeof(*resp));
	d->stats.hint_requests++;
	rtype = dmm_check_hint_req(d, h, req_len, &type, &nb);
	if (rtype == VIRTIO_DMM_RESP_ACK && d->hints_refused) {
		rtype = VIRTIO_DMM_RESP_NACK;
		d->stats.hints_rejected += nb;
	}
	if (rtype == VIRTIO_DMM_RESP_ACK)
		dmm_process_hints(d, type, (const uint8_t *)req + sizeof(*h),
				  nb, resp);
	else if (rtype == VIRTIO_DMM_RESP_ERROR)
		d->stats.hint_errors++;
	dmm_put_le16(&resp->type, rtype);
	return sizeof(*resp);
}
