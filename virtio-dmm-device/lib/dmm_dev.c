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
	d->state = calloc(p->region_size / bs, 1);
	if (!d->state) {
		dmm_err(err, errlen, "out of memory for 0x%llx block states",
			(unsigned long long)(p->region_size / bs));
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
	d->state = NULL;
}

/* --- sizes --- */

int dmm_check_requested_size(const struct dmm_dev *d, uint64_t size,
			     char *err, size_t errlen)
{
	const struct dmm_params *p = &d->p;

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
	if ((size - p->boot_size) % p->block_size) {
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
	first = offset / d->p.block_size;
	last = (offset + len - 1) / d->p.block_size;
	return dmm_count_plugged(d, first, last - first + 1) ==
	       last - first + 1;
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
 * Validate a block range from the guest: block-aligned, at least one block,
 * no overflow, inside the region.  On success *first is its first block.
 */
static int dmm_check_range(const struct dmm_dev *d,
			   const struct virtio_dmm_req_range *r,
			   uint64_t *first, uint64_t *count)
{
	uint64_t addr = dmm_le64(&r->addr), nb = dmm_le64(&r->nb_blocks);
	uint64_t off;

	if (addr % d->p.block_size || !nb || nb > d->nb_blocks)
		return -EINVAL;
	if (addr < d->p.region_addr)
		return -EINVAL;
	off = addr - d->p.region_addr;
	if (off / d->p.block_size > d->nb_blocks - nb)
		return -EINVAL;
	*first = off / d->p.block_size;
	*count = nb;
	return 0;
}

static void dmm_set_range(struct dmm_dev *d, uint64_t first, uint64_t count,
			  uint8_t state)
{
	memset(d->state + first, state, count);
}

static uint16_t dmm_plug(struct dmm_dev *d, uint64_t first, uint64_t count)
{
	uint64_t bs = d->p.block_size, target;

	if (dmm_count_plugged(d, first, count))
		return VIRTIO_DMM_RESP_ERROR;
	target = d->requested_size - d->p.boot_size;
	if (d->plugged_size + count * bs > target)
		return VIRTIO_DMM_RESP_NACK;
	if (d->ops->populate(d->opaque, first * bs, count * bs)) {
		d->stats.backend_errors++;
		/* Leave nothing half-populated behind. */
		d->ops->discard(d->opaque, first * bs, count * bs);
		return VIRTIO_DMM_RESP_ERROR;
	}
	dmm_set_range(d, first, count, DMM_BLOCK_PLUGGED);
	dmm_set_plugged_size(d, d->plugged_size + count * bs);
	d->stats.plugs++;
	return VIRTIO_DMM_RESP_ACK;
}

static uint16_t dmm_unplug(struct dmm_dev *d, uint64_t first, uint64_t count)
{
	uint64_t bs = d->p.block_size;

	if (dmm_count_plugged(d, first, count) != count)
		return VIRTIO_DMM_RESP_ERROR;
	if (d->ops->discard(d->opaque, first * bs, count * bs)) {
		d->stats.backend_errors++;
		return VIRTIO_DMM_RESP_ERROR;
	}
	dmm_set_range(d, first, count, DMM_BLOCK_UNPLUGGED);
	dmm_set_plugged_size(d, d->plugged_size - count * bs);
	d->stats.unplugs++;
	return VIRTIO_DMM_RESP_ACK;
}

static uint16_t dmm_state_of(const struct dmm_dev *d, uint64_t first,
			     uint64_t count)
{
	uint64_t n = dmm_count_plugged(d, first, count);

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
		if (dmm_check_range(d, &req->u.plug, &first, &count))
			return VIRTIO_DMM_RESP_ERROR;
		return d->busy ? VIRTIO_DMM_RESP_BUSY :
				 dmm_plug(d, first, count);
	case VIRTIO_DMM_REQ_UNPLUG:
		if (dmm_check_range(d, &req->u.unplug, &first, &count))
			return VIRTIO_DMM_RESP_ERROR;
		return d->busy ? VIRTIO_DMM_RESP_BUSY :
				 dmm_unplug(d, first, count);
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
		if (dmm_check_range(d, &req->u.state, &first, &count))
			return VIRTIO_DMM_RESP_ERROR;
		dmm_put_le16(&resp->u.state.state,
			     dmm_state_of(d, first, count));
		return VIRTIO_DMM_RESP_ACK;
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
}

int dmm_check_loaded_state(const struct dmm_dev *d, char *err, size_t errlen)
{
	uint64_t i, n = 0;

	for (i = 0; i < d->nb_blocks; i++) {
		if (d->state[i] > DMM_BLOCK_PLUGGED) {
			dmm_err(err, errlen, "block %llu has invalid state %u",
				(unsigned long long)i, d->state[i]);
			return -EINVAL;
		}
		n += d->state[i];
	}
	if (n * d->p.block_size != d->plugged_size) {
		dmm_err(err, errlen, "plugged-size 0x%llx does not match %llu "
			"plugged blocks", (unsigned long long)d->plugged_size,
			(unsigned long long)n);
		return -EINVAL;
	}
	return dmm_check_requested_size(d, d->requested_size, err, errlen);
}
