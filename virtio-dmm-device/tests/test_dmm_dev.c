// SPDX-License-Identifier: BSD-3-Clause
/*
 * Unit tests of the portable virtio-dmm device library, against a fake
 * backend that records what the library asks of its VMM.  Prints TAP.
 */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmm_dev.h"

#define MiB (1ULL << 20)
#define BS (128 * MiB)
#define REGION_ADDR (4096 * MiB)
#define REGION_SIZE (8 * BS)
#define BOOT (512 * MiB)

/* --- the fake backend --- */

struct fake {
	int populates, discards, changes, boot_discards;
	uint64_t last_boot_off;
	uint64_t last_off, last_len, last_plugged;
	int fail_populate, fail_discard;
	int out_of_region;
	/* state_changed: calls, and the union of their ranges */
	int state_changes;
	uint64_t sc_lo, sc_hi;
};

static int fake_check(struct fake *f, uint64_t off, uint64_t len)
{
	if (off > REGION_SIZE || len > REGION_SIZE - off)
		f->out_of_region++;
	f->last_off = off;
	f->last_len = len;
	return 0;
}

static int fake_populate(void *opaque, uint64_t off, uint64_t len)
{
	struct fake *f = opaque;

	f->populates++;
	fake_check(f, off, len);
	return f->fail_populate ? -ENOMEM : 0;
}

static int fake_discard(void *opaque, uint64_t off, uint64_t len)
{
	struct fake *f = opaque;

	f->discards++;
	fake_check(f, off, len);
	return f->fail_discard ? -EIO : 0;
}

static void fake_changed(void *opaque, uint64_t plugged)
{
	struct fake *f = opaque;

	f->changes++;
	f->last_plugged = plugged;
}

static void fake_state_changed(void *opaque, uint64_t off, uint64_t len)
{
	struct fake *f = opaque;

	if (!f->state_changes++ || off < f->sc_lo)
		f->sc_lo = off;
	if (off + len > f->sc_hi)
		f->sc_hi = off + len;
}

/*
 * Boot RAM of the fake machine: [0, 256 MiB) and [3 GiB, 3 GiB + 256 MiB),
 * a hole between, like a PC below and above its PCI window.
 */
#define LOW_RAM (256 * MiB)
#define HIGH_RAM_ADDR (3072 * MiB)

static int fake_boot_page(void *opaque __attribute__((unused)), uint64_t gpa,
			  uint64_t *offset)
{
	if (gpa < LOW_RAM) {
		*offset = gpa;
		return 0;
	}
	if (gpa >= HIGH_RAM_ADDR && gpa - HIGH_RAM_ADDR < BOOT - LOW_RAM) {
		*offset = LOW_RAM + gpa - HIGH_RAM_ADDR;
		return 0;
	}
	return -1;
}

static int fake_discard_boot(void *opaque, uint64_t off, uint64_t len)
{
	struct fake *f = opaque;

	f->boot_discards++;
	f->last_boot_off = off;
	if (off > BOOT || len > BOOT - off)
		f->out_of_region++;
	return f->fail_discard ? -EIO : 0;
}

static const struct dmm_backend_ops fake_ops = {
	.populate = fake_populate,
	.discard = fake_discard,
	.plugged_changed = fake_changed,
	.state_changed = fake_state_changed,
	.boot_page = fake_boot_page,
	.discard_boot = fake_discard_boot,
};

/* --- TAP --- */

static int test_no, failures;
static const char *cur_test;
static int cur_failed;

static void check(int cond, const char *what, int line)
{
	if (!cond && !cur_failed) {
		printf("# %s: line %d: %s\n", cur_test, line, what);
		cur_failed = 1;
	}
}

#define CHECK(c) check(!!(c), #c, __LINE__)

static void run(const char *name, void (*fn)(void))
{
	cur_test = name;
	cur_failed = 0;
	fn();
	test_no++;
	failures += cur_failed;
	printf("%sok %d - %s\n", cur_failed ? "not " : "", test_no, name);
}

/* --- helpers --- */

static struct dmm_dev dev;
static struct fake fk;
static char err[256];

static void setup_full(uint64_t requested, uint64_t page_size,
		       uint64_t sb_size)
{
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = REGION_SIZE, .boot_size = BOOT,
		.page_size = page_size, .sub_block_size = sb_size,
	};

	dmm_dev_fini(&dev);
	memset(&fk, 0, sizeof(fk));
	if (dmm_dev_init(&dev, &p, &fake_ops, &fk, err, sizeof(err)))
		abort();
	if (dmm_set_requested_size(&dev, requested, err, sizeof(err)))
		abort();
}

static void setup_pages(uint64_t requested, uint64_t page_size)
{
	setup_full(requested, page_size, 0);
}

static void setup(uint64_t requested)
{
	setup_pages(requested, 0);
}

static uint16_t le16(const void *p)
{
	const uint8_t *b = p;

	return (uint16_t)(b[0] | b[1] << 8);
}

static void put16(void *p, uint16_t v)
{
	uint8_t *b = p;

	b[0] = v & 0xff;
	b[1] = v >> 8;
}

static void put64(void *p, uint64_t v)
{
	uint8_t *b = p;

	for (int i = 0; i < 8; i++, v >>= 8)
		b[i] = v & 0xff;
}

static struct virtio_dmm_req mkreq(uint16_t type, uint64_t addr, uint64_t nb)
{
	struct virtio_dmm_req r;

	memset(&r, 0, sizeof(r));
	put16(&r.type, type);
	put64(&r.u.plug.addr, addr);
	put64(&r.u.plug.nb_blocks, nb);
	return r;
}

static struct virtio_dmm_resp last_resp;

static uint16_t req(uint16_t type, uint64_t addr, uint64_t nb)
{
	struct virtio_dmm_req r = mkreq(type, addr, nb);

	if (dmm_handle_request(&dev, &r, sizeof(r), &last_resp) !=
	    (int)sizeof(last_resp))
		return 0xffff;
	return le16(&last_resp.type);
}

static uint64_t blk(unsigned int i)
{
	return REGION_ADDR + i * BS;
}

/* The request must be answered @resp and change nothing. */
static void expect_refused(uint16_t resp, uint16_t type, uint64_t addr,
			   uint64_t nb, int line)
{
	uint8_t before[REGION_SIZE / BS];
	uint64_t plugged = dev.plugged_size;
	int pops = fk.populates, dis = fk.discards, chg = fk.changes;
	int sc = fk.state_changes;

	memcpy(before, dev.state, sizeof(before));
	check(req(type, addr, nb) == resp, "response", line);
	check(!memcmp(before, dev.state, sizeof(before)), "state unchanged",
	      line);
	check(dev.plugged_size == plugged, "plugged_size unchanged", line);
	check(fk.populates == pops && fk.discards == dis && fk.changes == chg &&
	      fk.state_changes == sc, "no backend call", line);
}

#define EXPECT_ERROR(t, a, n) \
	expect_refused(VIRTIO_DMM_RESP_ERROR, t, a, n, __LINE__)
#define EXPECT_NACK(t, a, n) \
	expect_refused(VIRTIO_DMM_RESP_NACK, t, a, n, __LINE__)
#define EXPECT_BUSY(t, a, n) \
	expect_refused(VIRTIO_DMM_RESP_BUSY, t, a, n, __LINE__)

/* --- tests: requests --- */

static void t_plug_ack(void)
{
	setup(BOOT + 3 * BS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.plugged_size == 2 * BS);
	CHECK(dev.state[0] == DMM_BLOCK_PLUGGED && dev.state[1] ==
	      DMM_BLOCK_PLUGGED && dev.state[2] == DMM_BLOCK_UNPLUGGED);
	CHECK(fk.populates == 1 && fk.last_off == 0 && fk.last_len == 2 * BS);
	CHECK(fk.changes == 1 && fk.last_plugged == 2 * BS);
	CHECK(dev.stats.plugs == 1 && dev.stats.requests == 1);
}

static void t_plug_last_block(void)
{
	setup(BOOT + REGION_SIZE);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(7), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(fk.last_off == 7 * BS && !fk.out_of_region);
}

static void t_plug_nack_beyond_requested(void)
{
	setup(BOOT + BS);
	EXPECT_NACK(VIRTIO_DMM_REQ_PLUG, blk(0), 2);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	EXPECT_NACK(VIRTIO_DMM_REQ_PLUG, blk(1), 1);
	CHECK(dev.stats.nacks == 2);
}

static void t_plug_nack_at_boot_size(void)
{
	setup(BOOT);
	EXPECT_NACK(VIRTIO_DMM_REQ_PLUG, blk(0), 1);
}

static void t_plug_twice_error(void)
{
	setup(BOOT + 4 * BS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(1), 1) == VIRTIO_DMM_RESP_ACK);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(1), 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(0), 2);	/* overlaps */
}

static void t_bad_ranges(void)
{
	setup(BOOT + REGION_SIZE);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(0) + 4096, 1);	/* unaligned */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(0) - BS, 1);	/* below */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, 0, 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(8), 1);		/* past end */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(7), 2);		/* crosses end */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(0), 0);		/* no blocks */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(0), 9);		/* too many */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(1), UINT64_MAX);	/* overflow */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(1), UINT64_MAX / BS + 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, UINT64_MAX - BS + 1, 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_UNPLUG, blk(0) + 4096, 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_STATE, blk(8), 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_STATE, blk(0), 0);
	CHECK(dev.stats.errors == 13);
}

static void t_bad_type_and_padding(void)
{
	struct virtio_dmm_req r = mkreq(VIRTIO_DMM_REQ_PLUG, blk(0), 1);
	struct virtio_dmm_resp resp;

	setup(BOOT + BS);
	EXPECT_ERROR(4, blk(0), 1);
	EXPECT_ERROR(0xffff, blk(0), 1);
	put16(&r.padding[2], 1);
	CHECK(dmm_handle_request(&dev, &r, sizeof(r), &resp) ==
	      (int)sizeof(resp));
	CHECK(le16(&resp.type) == VIRTIO_DMM_RESP_ERROR);
	CHECK(dev.plugged_size == 0 && fk.populates == 0);
}

static void t_short_request(void)
{
	struct virtio_dmm_req r = mkreq(VIRTIO_DMM_REQ_PLUG, blk(0), 1);
	struct virtio_dmm_resp resp;

	setup(BOOT + BS);
	CHECK(dmm_handle_request(&dev, &r, sizeof(r) - 1, &resp) == -EINVAL);
	CHECK(dmm_handle_request(&dev, &r, 0, &resp) == -EINVAL);
	CHECK(dev.plugged_size == 0 && fk.populates == 0 &&
	      dev.stats.requests == 0);
}

static void t_unplug(void)
{
	setup(BOOT + 3 * BS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 3) == VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(1), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.plugged_size == 2 * BS && dev.state[1] ==
	      DMM_BLOCK_UNPLUGGED);
	CHECK(fk.discards == 1 && fk.last_off == BS && fk.last_len == BS);
	CHECK(fk.last_plugged == 2 * BS && dev.stats.unplugs == 1);
}

static void t_unplug_unplugged_error(void)
{
	setup(BOOT + 3 * BS);
	EXPECT_ERROR(VIRTIO_DMM_REQ_UNPLUG, blk(0), 1);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	EXPECT_ERROR(VIRTIO_DMM_REQ_UNPLUG, blk(0), 2);	/* mixed */
}

/* The guest may give memory back even above requested_size's reach. */
static void t_unplug_after_shrink(void)
{
	setup(BOOT + 2 * BS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(!dmm_set_requested_size(&dev, BOOT, err, sizeof(err)));
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.plugged_size == 0);
}

static void t_unplug_all(void)
{
	setup(BOOT + REGION_SIZE);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(2), 3) == VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.plugged_size == 0 && fk.last_off == 0 &&
	      fk.last_len == REGION_SIZE);
	CHECK(dmm_count_plugged(&dev, 0, dev.nb_blocks) == 0);
	CHECK(fk.last_plugged == 0);
	/* Nothing plugged: ACK again, no size-change notification. */
	fk.changes = 0;
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(fk.changes == 0);
}

static void t_state(void)
{
	setup(BOOT + REGION_SIZE);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(1), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_STATE, blk(1), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(le16(&last_resp.u.state.state) == VIRTIO_DMM_STATE_PLUGGED);
	CHECK(req(VIRTIO_DMM_REQ_STATE, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(le16(&last_resp.u.state.state) == VIRTIO_DMM_STATE_MIXED);
	CHECK(req(VIRTIO_DMM_REQ_STATE, blk(3), 5) == VIRTIO_DMM_RESP_ACK);
	CHECK(le16(&last_resp.u.state.state) == VIRTIO_DMM_STATE_UNPLUGGED);
}

static void t_busy(void)
{
	setup(BOOT + REGION_SIZE);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	dev.busy = true;
	EXPECT_BUSY(VIRTIO_DMM_REQ_PLUG, blk(1), 1);
	EXPECT_BUSY(VIRTIO_DMM_REQ_UNPLUG, blk(0), 1);
	EXPECT_BUSY(VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0);
	CHECK(req(VIRTIO_DMM_REQ_STATE, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	/* Malformed stays ERROR while busy. */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(0) + 1, 1);
	CHECK(dev.stats.busy == 3);
}

static void t_populate_failure(void)
{
	setup(BOOT + REGION_SIZE);
	fk.fail_populate = 1;
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ERROR);
	CHECK(dev.plugged_size == 0 && dev.state[0] == DMM_BLOCK_UNPLUGGED);
	CHECK(fk.discards == 1);	/* half-populated memory given back */
	CHECK(fk.changes == 0 && dev.stats.backend_errors == 1);
}

static void t_unplug_all_discard_failure(void)
{
	setup(BOOT + REGION_SIZE);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	fk.fail_discard = 1;
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0) == VIRTIO_DMM_RESP_ERROR);
	CHECK(dev.plugged_size == 2 * BS && dev.state[1] == DMM_BLOCK_PLUGGED);
	/* ...but a machine reset forgets every block regardless. */
	CHECK(dmm_unplug_all(&dev) == -EIO && dev.plugged_size == 0);
}

static void t_discard_failure(void)
{
	setup(BOOT + REGION_SIZE);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	fk.fail_discard = 1;
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(0), 1) == VIRTIO_DMM_RESP_ERROR);
	CHECK(dev.plugged_size == 2 * BS && dev.state[0] == DMM_BLOCK_PLUGGED);
	CHECK(dev.stats.backend_errors == 1);
}

/* --- tests: sizes, init, config, migration --- */

static void t_requested_size_rules(void)
{
	setup(BOOT);
	CHECK(dmm_set_requested_size(&dev, BOOT - BS, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "0x18000000") && strstr(err, "below"));
	CHECK(dmm_set_requested_size(&dev, BOOT + REGION_SIZE + BS, err,
				     sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "exceeds"));
	CHECK(dmm_set_requested_size(&dev, BOOT + MiB, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "multiple of block-size"));
	CHECK(dmm_set_requested_size(&dev, UINT64_MAX, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(dev.requested_size == BOOT);
	CHECK(!dmm_set_requested_size(&dev, BOOT + REGION_SIZE, err,
				      sizeof(err)));
	CHECK(dev.requested_size == BOOT + REGION_SIZE);
	CHECK(!dmm_check_requested_size(&dev, BOOT, NULL, 0));
}

static int try_init(uint64_t bs, uint64_t addr, uint64_t size, uint64_t boot,
		    const struct dmm_backend_ops *ops)
{
	struct dmm_params p = {
		.block_size = bs, .region_addr = addr, .region_size = size,
		.boot_size = boot,
	};
	struct dmm_dev d;
	int rc = dmm_dev_init(&d, &p, ops, NULL, err, sizeof(err));

	if (!rc)
		dmm_dev_fini(&d);
	return rc;
}

static void t_init_rules(void)
{
	const struct dmm_backend_ops no_discard = { .populate = fake_populate };

	CHECK(!try_init(BS, REGION_ADDR, REGION_SIZE, BOOT, &fake_ops));
	CHECK(try_init(3 * MiB, 0, 6 * MiB, BOOT, &fake_ops) == -EINVAL);
	CHECK(strstr(err, "0x300000"));
	CHECK(try_init(2048, 0, 4096, BOOT, &fake_ops) == -EINVAL);
	CHECK(try_init(0, 0, BS, BOOT, &fake_ops) == -EINVAL);
	CHECK(try_init(BS, REGION_ADDR, 0, BOOT, &fake_ops) == -EINVAL);
	CHECK(try_init(BS, REGION_ADDR, BS + MiB, BOOT, &fake_ops) == -EINVAL);
	CHECK(try_init(BS, REGION_ADDR + MiB, BS, BOOT, &fake_ops) == -EINVAL);
	CHECK(try_init(BS, UINT64_MAX - BS + 1, 2 * BS, BOOT, &fake_ops) ==
	      -EINVAL);
	CHECK(try_init(BS, 0, BS, UINT64_MAX - 1, &fake_ops) == -EINVAL);
	CHECK(try_init(4096, 0, (DMM_MAX_BLOCKS + 1) * 4096, BOOT,
		       &fake_ops) == -EINVAL);
	CHECK(try_init(BS, REGION_ADDR, BS, BOOT, NULL) == -EINVAL);
	CHECK(try_init(BS, REGION_ADDR, BS, BOOT, &no_discard) == -EINVAL);
}

static void t_init_defaults(void)
{
	setup(BOOT);
	CHECK(dev.nb_blocks == 8 && dev.plugged_size == 0 &&
	      dev.requested_size == BOOT);
	CHECK(dmm_count_plugged(&dev, 0, 8) == 0);
}

static void t_fill_config(void)
{
	struct virtio_dmm_config cfg;
	const uint8_t *b = (const uint8_t *)&cfg;

	setup(BOOT + 2 * BS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	dmm_fill_config(&dev, 0x0102, &cfg);
	CHECK(sizeof(cfg) == 88);
	CHECK(offsetof(struct virtio_dmm_config, stats_interval_ms) == 80);
	/* block_size 0x08000000 little-endian at offset 0 */
	CHECK(b[0] == 0 && b[3] == 0x08 && b[7] == 0);
	CHECK(b[8] == 0x02 && b[9] == 0x01);		/* node_id */
	CHECK(b[16 + 4] == 0x01);			/* region_addr 4 GiB */
	CHECK(b[24 + 3] == 0x40);			/* region_size 1 GiB */
	CHECK(b[32 + 3] == 0x20);			/* boot 512 MiB */
	CHECK(b[40 + 3] == 0x30);			/* requested 768 MiB */
	CHECK(b[48 + 3] == 0x08);			/* plugged 128 MiB */
	CHECK(b[56] == 0 && b[60] == 0 && b[64] == 0);	/* no pages */
}

static void t_struct_sizes(void)
{
	CHECK(sizeof(struct virtio_dmm_req) == 24);
	CHECK(sizeof(struct virtio_dmm_resp) == 16);
	CHECK(sizeof(struct virtio_dmm_config) == 88);
	CHECK(sizeof(struct virtio_dmm_stats) == 112);
	CHECK(sizeof(struct virtio_dmm_page_req) == 8);
	CHECK(sizeof(struct virtio_dmm_hint_req) == 8);
	CHECK(sizeof(struct virtio_dmm_hint) == 16);
}

static void t_loaded_state(void)
{
	setup(BOOT + 2 * BS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(!dmm_check_loaded_state(&dev, err, sizeof(err)));
	dev.state[5] = 7;
	CHECK(dmm_check_loaded_state(&dev, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "block 5"));
	dev.state[5] = DMM_BLOCK_UNPLUGGED;
	dev.plugged_size = BS;
	CHECK(dmm_check_loaded_state(&dev, err, sizeof(err)) == -EINVAL);
	dev.plugged_size = 2 * BS;
	dev.requested_size = BOOT + 1;
	CHECK(dmm_check_loaded_state(&dev, err, sizeof(err)) == -EINVAL);
}

/*
 * A stream whose bitmaps have bits past the device's end is refused, even
 * when the sizes in it were made to count them (a region of 3 blocks keeps
 * 5 spare bits in its one byte of sub-block bitmap).
 */
static void t_loaded_stray_bits(void)
{
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = 3 * BS, .boot_size = BOOT, .page_size = 4096,
	};

	dmm_dev_fini(&dev);
	memset(&fk, 0, sizeof(fk));
	CHECK(!dmm_dev_init(&dev, &p, &fake_ops, &fk, err, sizeof(err)));
	CHECK(!dmm_set_requested_size(&dev, BOOT + BS, err, sizeof(err)));
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(!dmm_check_loaded_state(&dev, err, sizeof(err)));
	dev.sb_plugged[0] |= 1u << 5;
	dev.plugged_size += BS;
	CHECK(dmm_check_loaded_state(&dev, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "sub-block bit 5"));
	dev.sb_plugged[0] &= ~(1u << 5);
	dev.plugged_size -= BS;
	CHECK(!dmm_check_loaded_state(&dev, err, sizeof(err)));
}

static void t_range_is_plugged(void)
{
	setup(BOOT + REGION_SIZE);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(1), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(dmm_range_is_plugged(&dev, BS, 2 * BS));
	CHECK(dmm_range_is_plugged(&dev, BS + 4096, 4096));
	CHECK(dmm_range_is_plugged(&dev, 2 * BS - 4096, 8192));	/* spans 2 */
	CHECK(!dmm_range_is_plugged(&dev, BS - 4096, 8192));	/* into 0 */
	CHECK(!dmm_range_is_plugged(&dev, 3 * BS - 4096, 8192));	/* into 3 */
	CHECK(!dmm_range_is_plugged(&dev, 0, 4096));
	CHECK(!dmm_range_is_plugged(&dev, BS, 0));
	CHECK(!dmm_range_is_plugged(&dev, REGION_SIZE, 4096));
	CHECK(!dmm_range_is_plugged(&dev, BS, UINT64_MAX));
	CHECK(!dmm_range_is_plugged(&dev, UINT64_MAX - 1, 4096));
}


/* --- tests: pages --- */

#define PS 4096ULL
#define LOW(i) ((uint64_t)(i) * PS)			/* boot, low part */
#define HIGH(i) (HIGH_RAM_ADDR + (uint64_t)(i) * PS)	/* boot, high part */
#define INBLK(b, i) (blk(b) + (uint64_t)(i) * PS)	/* region */

static uint8_t page_buf[8 + 8 * (DMM_MAX_PAGES_PER_REQ + 2)];

/* Send a page request of @nb addresses, @len bytes (0: exactly enough). */
static uint16_t preq_len(uint16_t type, const uint64_t *addrs, uint32_t nb,
			 size_t len)
{
	struct virtio_dmm_resp resp;

	memset(page_buf, 0, sizeof(page_buf));
	put16(page_buf, type);
	page_buf[4] = nb & 0xff;
	page_buf[5] = (nb >> 8) & 0xff;
	page_buf[6] = (nb >> 16) & 0xff;
	page_buf[7] = nb >> 24;
	for (uint32_t i = 0; i < nb && i < DMM_MAX_PAGES_PER_REQ + 2; i++)
		put64(page_buf + 8 + 8 * i, addrs[i]);
	if (!len)
		len = 8 + 8 * (size_t)nb;
	if (dmm_handle_page_request(&dev, page_buf, len, &resp) !=
	    (int)sizeof(resp))
		return 0xffff;
	return le16(&resp.type);
}

#define PREQ(t, ...) ({ \
	const uint64_t a_[] = { __VA_ARGS__ }; \
	preq_len(t, a_, sizeof(a_) / 8, 0); })

/* A page request must be answered @resp and change nothing. */
static void page_refused(uint16_t resp, uint16_t type, const uint64_t *a,
			 uint32_t nb, size_t len, int line)
{
	static uint8_t boot_before[BOOT / PS / 8];
	static uint8_t region_before[REGION_SIZE / PS / 8];
	uint64_t unplugged = dev.unplugged_size;
	int dis = fk.discards + fk.boot_discards;

	memcpy(boot_before, dev.boot_pages, sizeof(boot_before));
	memcpy(region_before, dev.region_pages, sizeof(region_before));
	check(preq_len(type, a, nb, len) == resp, "response", line);
	check(!memcmp(boot_before, dev.boot_pages, sizeof(boot_before)) &&
	      !memcmp(region_before, dev.region_pages, sizeof(region_before)),
	      "bitmaps unchanged", line);
	check(dev.unplugged_size == unplugged, "unplugged_size unchanged",
	      line);
	check(fk.discards + fk.boot_discards == dis, "no discard", line);
}

#define PAGE_REFUSED(r, t, ...) do { \
	const uint64_t a_[] = { __VA_ARGS__ }; \
	page_refused(r, t, a_, sizeof(a_) / 8, 0, __LINE__); } while (0)
#define PAGE_ERROR(t, ...) PAGE_REFUSED(VIRTIO_DMM_RESP_ERROR, t, __VA_ARGS__)

static void t_pages_unplug_plug(void)
{
	setup_pages(BOOT + BS, PS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(2), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(5), HIGH(1),
		   INBLK(2, 7)) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.unplugged_size == 3 * PS);
	CHECK(dmm_current_size(&dev) == BOOT + BS - 3 * PS);
	CHECK(dmm_page_test(dev.boot_pages, 5));
	CHECK(dmm_page_test(dev.boot_pages, LOW_RAM / PS + 1));
	CHECK(dmm_page_test(dev.region_pages, 2 * BS / PS + 7));
	CHECK(fk.boot_discards == 2 && fk.last_boot_off == LOW_RAM + PS);
	CHECK(fk.discards == 1 && fk.last_off == 2 * BS + 7 * PS);
	CHECK(PREQ(VIRTIO_DMM_REQ_PLUG_PAGES, LOW(5)) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.unplugged_size == 2 * PS && !dmm_page_test(dev.boot_pages, 5));
	CHECK(dev.stats.pages_unplugged == 3 && dev.stats.pages_plugged == 1);
}

static void t_pages_malformed(void)
{
	uint64_t many[DMM_MAX_PAGES_PER_REQ + 2] = { 0 };

	setup_pages(BOOT + BS, PS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(9)) == VIRTIO_DMM_RESP_ACK);
	/* unaligned, in the hole, past boot RAM, in an unplugged block */
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1), LOW(2) + 8);
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1), LOW_RAM);
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, HIGH((BOOT - LOW_RAM) / PS));
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1), INBLK(1, 0));
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, REGION_ADDR + REGION_SIZE);
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, UINT64_MAX - PS + 1);
	/* listed twice, already unplugged, plugging a plugged page */
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1), LOW(2), LOW(1));
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1), LOW(9));
	PAGE_ERROR(VIRTIO_DMM_REQ_PLUG_PAGES, LOW(9), LOW(10));
	PAGE_ERROR(VIRTIO_DMM_REQ_PLUG_PAGES, LOW(9), LOW(9));
	/* MOVE: odd count, same page twice, wrong states */
	PAGE_ERROR(VIRTIO_DMM_REQ_MOVE_PAGES, LOW(9));
	PAGE_ERROR(VIRTIO_DMM_REQ_MOVE_PAGES, LOW(9), LOW(9));
	PAGE_ERROR(VIRTIO_DMM_REQ_MOVE_PAGES, LOW(9), LOW(3), LOW(3), LOW(9));
	PAGE_ERROR(VIRTIO_DMM_REQ_MOVE_PAGES, LOW(3), LOW(4));
	/* a page unplugged as new, then plugged back as old (and reverse) */
	PAGE_ERROR(VIRTIO_DMM_REQ_MOVE_PAGES, LOW(9), LOW(3), LOW(3), LOW(11));
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(12)) == VIRTIO_DMM_RESP_ACK);
	PAGE_ERROR(VIRTIO_DMM_REQ_MOVE_PAGES, LOW(9), LOW(3), LOW(12), LOW(9));
	CHECK(PREQ(VIRTIO_DMM_REQ_PLUG_PAGES, LOW(12)) == VIRTIO_DMM_RESP_ACK);
	/* unknown type */
	PAGE_ERROR(VIRTIO_DMM_REQ_PLUG, LOW(1));
	PAGE_ERROR(7, LOW(1));
	/* count: zero, too many, more than the buffer holds */
	page_refused(VIRTIO_DMM_RESP_ERROR, VIRTIO_DMM_REQ_UNPLUG_PAGES, many,
		     0, 0, __LINE__);
	for (int i = 0; i <= DMM_MAX_PAGES_PER_REQ; i++)
		many[i] = LOW(100 + i);
	page_refused(VIRTIO_DMM_RESP_ERROR, VIRTIO_DMM_REQ_UNPLUG_PAGES, many,
		     DMM_MAX_PAGES_PER_REQ + 1, 0, __LINE__);
	page_refused(VIRTIO_DMM_RESP_ERROR, VIRTIO_DMM_REQ_UNPLUG_PAGES, many,
		     3, 8 + 2 * 8 + 7, __LINE__);
	page_refused(VIRTIO_DMM_RESP_ERROR, VIRTIO_DMM_REQ_UNPLUG_PAGES, many,
		     UINT32_MAX, 8 + 8, __LINE__);
	/* the largest valid request goes through */
	CHECK(preq_len(VIRTIO_DMM_REQ_UNPLUG_PAGES, many,
		       DMM_MAX_PAGES_PER_REQ, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.unplugged_size == (DMM_MAX_PAGES_PER_REQ + 1) * PS);
}

static void t_pages_bad_header(void)
{
	struct virtio_dmm_resp resp;
	uint8_t r[16] = { VIRTIO_DMM_REQ_UNPLUG_PAGES, 0, 1, 0, 1, 0, 0, 0 };

	setup_pages(BOOT, PS);
	CHECK(dmm_handle_page_request(&dev, r, 7, &resp) == -EINVAL);
	CHECK(dmm_handle_page_request(&dev, r, 16, &resp) == sizeof(resp));
	CHECK(le16(&resp.type) == VIRTIO_DMM_RESP_ERROR);	/* padding */
	CHECK(dev.unplugged_size == 0 && fk.boot_discards == 0);
	/* without pages every page request is an ERROR */
	setup(BOOT);
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1)) ==
	      VIRTIO_DMM_RESP_ERROR);
}

static void t_pages_plug_nack(void)
{
	setup_pages(BOOT, PS);
	CHECK(dmm_set_requested_size(&dev, BOOT - 2 * PS, err,
				     sizeof(err)) == 0);
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1), LOW(2), LOW(3)) ==
	      VIRTIO_DMM_RESP_ACK);
	PAGE_REFUSED(VIRTIO_DMM_RESP_NACK, VIRTIO_DMM_REQ_PLUG_PAGES, LOW(1),
		     LOW(2));
	CHECK(PREQ(VIRTIO_DMM_REQ_PLUG_PAGES, LOW(2)) == VIRTIO_DMM_RESP_ACK);
	CHECK(dmm_current_size(&dev) == dev.requested_size);
	/* a block counts against the size the guest has now */
	CHECK(dmm_set_requested_size(&dev, BOOT + BS - 4 * PS, err,
				     sizeof(err)) == 0);
	EXPECT_NACK(VIRTIO_DMM_REQ_PLUG, blk(0), 1);
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(4), LOW(5)) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(dmm_current_size(&dev) == dev.requested_size);
}

static void t_pages_move(void)
{
	setup_pages(BOOT, PS);
	CHECK(dmm_set_requested_size(&dev, BOOT - 2 * PS, err,
				     sizeof(err)) == 0);
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1), HIGH(1)) ==
	      VIRTIO_DMM_RESP_ACK);
	/* a MOVE never changes the size, so no NACK even at the target */
	CHECK(PREQ(VIRTIO_DMM_REQ_MOVE_PAGES, LOW(1), LOW(20), HIGH(1),
		   HIGH(20)) == VIRTIO_DMM_RESP_ACK);
	CHECK(!dmm_page_test(dev.boot_pages, 1) &&
	      dmm_page_test(dev.boot_pages, 20));
	CHECK(dev.unplugged_size == 2 * PS && fk.boot_discards == 4);
	CHECK(fk.last_boot_off == LOW_RAM + 20 * PS);
}

static void t_pages_and_blocks(void)
{
	setup_pages(BOOT + 2 * BS, PS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, INBLK(1, 3), LOW(0)) ==
	      VIRTIO_DMM_RESP_ACK);
	/* a block with an unplugged page cannot be unplugged */
	EXPECT_ERROR(VIRTIO_DMM_REQ_UNPLUG, blk(1), 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_UNPLUG, blk(0), 2);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(PREQ(VIRTIO_DMM_REQ_PLUG_PAGES, INBLK(1, 3)) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(1), 1) == VIRTIO_DMM_RESP_ACK);
	/* UNPLUG_ALL plugs every page back */
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(5), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, INBLK(5, 0)) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.unplugged_size == 0 && dev.plugged_size == 0);
	CHECK(!dmm_page_test(dev.boot_pages, 0));
	CHECK(!dmm_page_test(dev.region_pages, 5 * BS / PS));
	/* so does a machine reset */
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, HIGH(2)) ==
	      VIRTIO_DMM_RESP_ACK);
	dmm_unplug_all(&dev);
	CHECK(dev.unplugged_size == 0 && !dmm_page_test(dev.boot_pages,
						       LOW_RAM / PS + 2));
}

static void t_pages_discard(void)
{
	setup_pages(BOOT, PS);
	dev.discard_inhibited = true;
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1)) == VIRTIO_DMM_RESP_ACK);
	CHECK(fk.boot_discards == 0 && dev.unplugged_size == PS);
	dev.discard_inhibited = false;
	fk.fail_discard = 1;
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(2), LOW(3)) ==
	      VIRTIO_DMM_RESP_ERROR);
	CHECK(fk.boot_discards == 1 && dev.stats.backend_errors == 1);
	CHECK(dev.unplugged_size == PS && !dmm_page_test(dev.boot_pages, 2) &&
	      !dmm_page_test(dev.boot_pages, 3));
}

static void t_pages_requested_rules(void)
{
	setup_pages(BOOT, PS);
	CHECK(!dmm_set_requested_size(&dev, 64 * MiB, err, sizeof(err)));
	CHECK(!dmm_set_requested_size(&dev, BOOT + 5 * PS, err, sizeof(err)));
	CHECK(!dmm_set_requested_size(&dev, BOOT + REGION_SIZE, err,
				      sizeof(err)));
	CHECK(dmm_set_requested_size(&dev, 64 * MiB - PS, err, sizeof(err)) ==
	      -EINVAL && strstr(err, "outside"));
	CHECK(dmm_set_requested_size(&dev, BOOT + REGION_SIZE + PS, err,
				     sizeof(err)) == -EINVAL);
	CHECK(dmm_set_requested_size(&dev, BOOT + 1, err, sizeof(err)) ==
	      -EINVAL && strstr(err, "page size"));
	CHECK(dmm_set_requested_size(&dev, 0, err, sizeof(err)) == -EINVAL);
	CHECK(dev.requested_size == BOOT + REGION_SIZE);
}

static void t_pages_init_rules(void)
{
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = REGION_SIZE, .boot_size = BOOT,
		.page_size = 3000,
	};
	struct dmm_backend_ops no_boot = fake_ops;
	struct dmm_dev d;

	CHECK(dmm_dev_init(&d, &p, &fake_ops, &fk, err, sizeof(err)) ==
	      -EINVAL && strstr(err, "page size"));
	p.page_size = 2 * BS;
	CHECK(dmm_dev_init(&d, &p, &fake_ops, &fk, err, sizeof(err)) ==
	      -EINVAL);
	p.page_size = PS;
	p.boot_size = BOOT + 512;
	CHECK(dmm_dev_init(&d, &p, &fake_ops, &fk, err, sizeof(err)) ==
	      -EINVAL);
	p.boot_size = BOOT;
	no_boot.boot_page = NULL;
	CHECK(dmm_dev_init(&d, &p, &no_boot, &fk, err, sizeof(err)) ==
	      -EINVAL && strstr(err, "boot_page"));
	CHECK(dmm_dev_init(&d, &p, &fake_ops, &fk, err, sizeof(err)) == 0);
	CHECK(d.nb_boot_pages == BOOT / PS && d.nb_region_pages ==
	      REGION_SIZE / PS);
	dmm_dev_fini(&d);
}

static void t_pages_config_and_loaded_state(void)
{
	struct virtio_dmm_config cfg;
	const uint8_t *b = (const uint8_t *)&cfg;

	setup_pages(BOOT + BS, PS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(3), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1), INBLK(3, 1)) ==
	      VIRTIO_DMM_RESP_ACK);
	dmm_fill_config(&dev, 0, &cfg);
	CHECK(b[56] == 0x00 && b[57] == 0x10);		/* page_size 4096 */
	CHECK(b[60] == (DMM_MAX_PAGES_PER_REQ & 0xff) &&
	      b[61] == DMM_MAX_PAGES_PER_REQ >> 8);
	CHECK(b[64] == 0 && b[65] == 0x20);		/* 8 KiB unplugged */
	CHECK(!dmm_check_loaded_state(&dev, err, sizeof(err)));
	dev.unplugged_size = PS;
	CHECK(dmm_check_loaded_state(&dev, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "unplugged-size"));
	dev.unplugged_size = 2 * PS;
	dev.region_pages[5 * BS / PS / 8] = 1;	/* in unplugged block 5 */
	dev.unplugged_size = 3 * PS;
	CHECK(dmm_check_loaded_state(&dev, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "block 5"));
}

/* --- tests: sub-blocks --- */

#define SB (2 * MiB)
#define SBA(b, i) (blk(b) + (uint64_t)(i) * SB)

/*
 * A VMM that maps only plugged memory hears of every change of state, with
 * its range, before the request returns; of nothing when it fails.
 */
static void t_state_changed(void)
{
	setup_full(BOOT + REGION_SIZE, 0, SB);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(2), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(fk.state_changes == 1 && fk.sc_lo == 2 * BS &&
	      fk.sc_hi == 4 * BS);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_SB, SBA(3, 1), 1) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(fk.state_changes == 2 && fk.sc_hi == 4 * BS);
	fk.state_changes = 0;
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(2), 1);
	fk.fail_discard = 1;
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(2), 1) == VIRTIO_DMM_RESP_ERROR);
	fk.fail_discard = 0;
	fk.fail_populate = 1;
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(5), 1) == VIRTIO_DMM_RESP_ERROR);
	fk.fail_populate = 0;
	CHECK(fk.state_changes == 0);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(fk.state_changes == 1 && fk.sc_lo == 0 &&
	      fk.sc_hi == REGION_SIZE);
}

static void t_sb_plug_unplug(void)
{
	struct virtio_dmm_config cfg;
	const uint8_t *b = (const uint8_t *)&cfg;

	setup_full(BOOT + 2 * BS, PS, SB);
	CHECK(dev.sbs_per_block == 64 && dev.nb_sbs == 8 * 64);
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, SBA(1, 5), 3) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.plugged_size == 3 * SB && dev.state[1] == DMM_BLOCK_PARTIAL);
	CHECK(dmm_partial_plugged_size(&dev) == 3 * SB);
	CHECK(fk.populates == 1 && fk.last_off == BS + 5 * SB &&
	      fk.last_len == 3 * SB);
	CHECK(req(VIRTIO_DMM_REQ_STATE, blk(1), 1) == VIRTIO_DMM_RESP_ACK &&
	      le16(&last_resp.u.state.state) == VIRTIO_DMM_STATE_MIXED);
	/* whole-block requests need the whole block in one state */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(1), 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_UNPLUG, blk(1), 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG_SB, SBA(1, 7), 1);	/* plugged */
	EXPECT_ERROR(VIRTIO_DMM_REQ_UNPLUG_SB, SBA(1, 4), 2);	/* 4 is not */
	CHECK(dmm_range_is_plugged(&dev, BS + 5 * SB, 3 * SB));
	CHECK(!dmm_range_is_plugged(&dev, BS + 5 * SB - 4096, 8192));
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_SB, SBA(1, 6), 1) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(fk.discards == 1 && fk.last_off == BS + 6 * SB &&
	      fk.last_len == SB && dev.plugged_size == 2 * SB);
	/* fill the block up: it becomes plugged, and can go as a whole */
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, SBA(1, 0), 5) == VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, SBA(1, 6), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, SBA(1, 8), 56) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(dev.state[1] == DMM_BLOCK_PLUGGED && dev.plugged_size == BS);
	CHECK(dmm_partial_plugged_size(&dev) == 0);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(1), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.state[1] == DMM_BLOCK_UNPLUGGED && dev.plugged_size == 0);
	dmm_fill_config(&dev, 0, &cfg);
	CHECK(b[72] == 0 && b[74] == 0x20);		/* sub_block_size 2 MiB */
	CHECK(!dmm_check_loaded_state(&dev, err, sizeof(err)));
}

static void t_sb_malformed(void)
{
	setup_full(BOOT + BS, PS, SB);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG_SB, SBA(0, 0) + 4096, 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG_SB, SBA(0, 0), 0);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG_SB, SBA(7, 63), 2);	/* past end */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG_SB, REGION_ADDR - SB, 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG_SB, SBA(0, 0), UINT64_MAX);
	EXPECT_NACK(VIRTIO_DMM_REQ_PLUG_SB, SBA(0, 0), 65);	/* > target */
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, SBA(7, 63), 1) ==
	      VIRTIO_DMM_RESP_ACK);				/* the last */
	/* without the feature there are no sub-block requests */
	setup_full(BOOT + BS, PS, 0);
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG_SB, SBA(0, 0), 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_UNPLUG_SB, SBA(0, 0), 1);
}

static void t_sb_and_pages(void)
{
	setup_full(BOOT + BS, PS, SB);
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, SBA(2, 0), 2) == VIRTIO_DMM_RESP_ACK);
	/* a page must lie in a plugged sub-block */
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, SBA(2, 2));
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, SBA(2, 1) + 5 * PS) ==
	      VIRTIO_DMM_RESP_ACK);
	/* a sub-block with an unplugged page cannot be unplugged */
	EXPECT_ERROR(VIRTIO_DMM_REQ_UNPLUG_SB, SBA(2, 1), 1);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_SB, SBA(2, 0), 1) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(!dmm_check_loaded_state(&dev, err, sizeof(err)));
	/* loaded state: summary and sub-blocks must agree */
	dev.state[2] = DMM_BLOCK_PLUGGED;
	CHECK(dmm_check_loaded_state(&dev, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "sub-blocks"));
	dev.state[2] = DMM_BLOCK_PARTIAL;
	dev.plugged_size = 2 * SB;
	CHECK(dmm_check_loaded_state(&dev, err, sizeof(err)) == -EINVAL);
}

static void t_sb_init_rules(void)
{
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = REGION_SIZE, .boot_size = BOOT,
		.page_size = PS, .sub_block_size = 3 * MiB,
	};
	struct dmm_dev d;

	CHECK(dmm_dev_init(&d, &p, &fake_ops, &fk, err, sizeof(err)) ==
	      -EINVAL && strstr(err, "sub-block size"));
	p.sub_block_size = 2 * BS;
	CHECK(dmm_dev_init(&d, &p, &fake_ops, &fk, err, sizeof(err)) ==
	      -EINVAL);
	p.sub_block_size = 1024;
	CHECK(dmm_dev_init(&d, &p, &fake_ops, &fk, err, sizeof(err)) ==
	      -EINVAL);
	p.sub_block_size = BS;
	CHECK(dmm_dev_init(&d, &p, &fake_ops, &fk, err, sizeof(err)) == 0);
	dmm_dev_fini(&d);
}

/* --- hints --- */

#define HPS VIRTIO_DMM_HINT_PAGE_SIZE
#define FAKE_PAGES 16

/* Guest pages behind hints: page i of boot RAM or region -> slot i % 16. */
static uint64_t fake_mem[2][FAKE_PAGES][HPS / 8];
static int hint_reads, hint_shares;
static uint64_t last_share_off;
static int last_share_boot, fail_share;

static const void *fake_page_ptr(void *opaque __attribute__((unused)),
				 bool boot, uint64_t offset)
{
	hint_reads++;
	return fake_mem[boot][(offset / HPS) % FAKE_PAGES];
}

static int fake_share(void *opaque __attribute__((unused)), bool boot,
		      uint64_t offset)
{
	hint_shares++;
	last_share_boot = boot;
	last_share_off = offset;
	return fail_share;
}

static const struct dmm_backend_ops hint_ops = {
	.populate = fake_populate,
	.discard = fake_discard,
	.plugged_changed = fake_changed,
	.boot_page = fake_boot_page,
	.discard_boot = fake_discard_boot,
	.page_ptr = fake_page_ptr,
	.share = fake_share,
};

static void setup_hints(uint64_t page_size)
{
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = REGION_SIZE, .boot_size = BOOT,
		.page_size = page_size, .sub_block_size = 2 * MiB,
	};

	dmm_dev_fini(&dev);
	memset(&fk, 0, sizeof(fk));
	memset(fake_mem, 0, sizeof(fake_mem));
	hint_reads = hint_shares = fail_share = 0;
	if (dmm_dev_init(&dev, &p, &hint_ops, &fk, err, sizeof(err)) ||
	    dmm_set_requested_size(&dev, BOOT + BS, err, sizeof(err)))
		abort();
}

static struct {
	struct virtio_dmm_hint_req h;
	struct virtio_dmm_hint e[VIRTIO_DMM_MAX_HINTS + 1];
} hreq;

static void hint_set(unsigned int i, uint64_t addr, uint64_t hash)
{
	put64(&hreq.e[i].addr, addr);
	put64(&hreq.e[i].hash, hash);
}

/* Send hreq with @nb hints of @type; returns the response type. */
static uint16_t hint_send(uint16_t type, uint32_t nb, size_t len)
{
	put16(&hreq.h.type, type);
	hreq.h.nb_hints = 0;
	for (int i = 0; i < 4; i++)
		((uint8_t *)&hreq.h.nb_hints)[i] = (nb >> (8 * i)) & 0xff;
	if (!len)
		len = sizeof(hreq.h) + nb * sizeof(hreq.e[0]);
	if (dmm_handle_hint_request(&dev, &hreq, len, &last_resp) !=
	    (int)sizeof(last_resp))
		return 0xffff;
	return le16(&last_resp.type);
}

static uint32_t resp32(const void *p)
{
	const uint8_t *b = p;

	return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

static void t_xxh64(void)
{
	static uint8_t buf[4096];
	int i;

	CHECK(dmm_xxh64("", 0, 0) == 0xef46db3751d8e999ULL);
	CHECK(dmm_xxh64("a", 1, 0) == 0xd24ec4f1a98c6e5bULL);
	CHECK(dmm_xxh64("abc", 3, 0) == 0x44bc2cf5ad770999ULL);
	for (i = 0; i < 37; i++)
		buf[i] = (uint8_t)(i + 1);
	CHECK(dmm_xxh64(buf, 37, 0) == 0x217866f14ee30f32ULL);
	memset(buf, 0, sizeof(buf));
	CHECK(dmm_xxh64(buf, 4096, 0) == 0xac869b6f32d8bbdbULL);
	for (i = 0; i < 4096; i++)
		buf[i] = (uint8_t)(i * 7);
	CHECK(dmm_xxh64(buf, 4096, 0) == 0xc8066d80a6fe1426ULL);
}

static void t_hints_verified(void)
{
	uint64_t h;

	setup_hints(HPS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	/* boot page 1 is zero, boot page 2 is not */
	fake_mem[1][2][5] = 1;
	hint_set(0, 1 * HPS, 0);
	hint_set(1, 2 * HPS, 0);
	hint_set(2, blk(0) + 3 * HPS, 0);
	CHECK(hint_send(VIRTIO_DMM_HINT_ZERO, 3, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(resp32(&last_resp.u.hint.accepted) == 2);
	CHECK(resp32(&last_resp.u.hint.rejected) == 1);
	CHECK(hint_shares == 2 && !last_share_boot &&
	      last_share_off == 3 * HPS);
	/* high boot RAM is boot RAM at its offset */
	hint_set(0, HIGH_RAM_ADDR + 4 * HPS, 0);
	CHECK(hint_send(VIRTIO_DMM_HINT_ZERO, 1, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(last_share_boot && last_share_off == LOW_RAM + 4 * HPS);

	/* duplicates: the device hashes the content itself */
	fake_mem[0][6][0] = 0x1234;
	h = dmm_xxh64(fake_mem[0][6], HPS, 0);
	hint_set(0, blk(0) + 6 * HPS, h);
	hint_set(1, blk(0) + 7 * HPS, h);	/* zero page, other hash */
	hint_set(2, 2 * HPS, dmm_xxh64(fake_mem[1][2], HPS, 0));
	/* only where the VMM offers them (F_HINTS_DUP): else ERROR */
	CHECK(hint_send(VIRTIO_DMM_HINT_DUP, 3, 0) == VIRTIO_DMM_RESP_ERROR);
	CHECK(hint_shares == 3 && dev.stats.hint_errors == 1);
	dev.stats.hint_errors = 0;
	dev.dup_hints = true;
	CHECK(hint_send(VIRTIO_DMM_HINT_DUP, 3, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(resp32(&last_resp.u.hint.accepted) == 2);
	CHECK(resp32(&last_resp.u.hint.rejected) == 1);
	CHECK(dev.stats.hints_zero == 3 && dev.stats.hints_dup == 2 &&
	      dev.stats.hints_rejected == 2 && !dev.stats.hint_errors);

	/* a failing share counts as rejected */
	fail_share = -EINVAL;
	hint_set(0, 1 * HPS, 0);
	CHECK(hint_send(VIRTIO_DMM_HINT_ZERO, 1, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(resp32(&last_resp.u.hint.rejected) == 1 &&
	      dev.stats.backend_errors == 1);
	/* the VMM's bound reached: rejected, not a backend error */
	fail_share = -ENOSPC;
	CHECK(hint_send(VIRTIO_DMM_HINT_ZERO, 1, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(resp32(&last_resp.u.hint.rejected) == 1 &&
	      dev.stats.backend_errors == 1);
	/* no state, no size changes from hints */
	CHECK(dev.plugged_size == BS && !dev.unplugged_size &&
	      !fk.discards && !fk.boot_discards);
}

/* The request must be answered @resp and read and share nothing. */
static void expect_hint_refused(uint16_t resp, uint16_t type, uint32_t nb,
				size_t len, int line)
{
	int reads = hint_reads, shares = hint_shares;
	uint64_t errs = dev.stats.hint_errors;

	check(hint_send(type, nb, len) == resp, "response", line);
	check(hint_reads == reads && hint_shares == shares,
	      "no page read or shared", line);
	check(resp != VIRTIO_DMM_RESP_ERROR || dev.stats.hint_errors == errs + 1,
	      "counted as error", line);
}

#define HINT_REFUSED(resp, type, nb, len) \
	expect_hint_refused(resp, type, nb, len, __LINE__)

static void t_hints_malformed(void)
{
	const uint16_t E = VIRTIO_DMM_RESP_ERROR, Z = VIRTIO_DMM_HINT_ZERO;
	uint64_t bad[] = {
		1 * HPS + 8,			/* unaligned */
		LOW_RAM + HPS,			/* the hole: not RAM */
		HIGH_RAM_ADDR + BOOT,		/* past boot RAM */
		blk(1),				/* unplugged block */
		blk(0) + 2 * MiB,		/* unplugged sub-block */
		REGION_ADDR + REGION_SIZE,	/* past the region */
		5 * HPS,			/* an unplugged page */
		~0ULL & ~(HPS - 1),
	};
	struct dmm_backend_ops no_hints = fake_ops;
	unsigned int i;

	setup_hints(HPS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	{
		uint8_t pr[16] = { 0 };

		put16(pr, VIRTIO_DMM_REQ_UNPLUG_PAGES);
		pr[4] = 1;
		put64(pr + 8, 5 * HPS);
		CHECK(dmm_handle_page_request(&dev, pr, sizeof(pr),
					      &last_resp) > 0 &&
		      le16(&last_resp.type) == VIRTIO_DMM_RESP_ACK);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* a bad address anywhere in the list spoils all of it */
		hint_set(0, 1 * HPS, 0);
		hint_set(1, bad[i], 0);
		HINT_REFUSED(E, Z, 2, 0);
	}
	hint_set(0, 1 * HPS, 0);
	hint_set(1, 1 * HPS, 7);		/* ZERO with a hash */
	HINT_REFUSED(E, Z, 2, 0);
	hint_set(1, 1 * HPS, 0);
	HINT_REFUSED(E, Z, 0, 0);			/* none */
	HINT_REFUSED(E, Z, VIRTIO_DMM_MAX_HINTS + 1, 0);	/* too many */
	HINT_REFUSED(E, Z, 2, sizeof(hreq.h) + sizeof(hreq.e[0]) + 8);
	HINT_REFUSED(E, 2, 1, 0);			/* unknown type */
	HINT_REFUSED(E, 0xffff, 1, 0);
	put16(&hreq.h.padding, 1);
	HINT_REFUSED(E, Z, 1, 0);
	put16(&hreq.h.padding, 0);
	CHECK(dmm_handle_hint_request(&dev, &hreq, sizeof(hreq.h) - 1,
				      &last_resp) == -EINVAL);

	/* refused now: NACK, nothing read */
	dev.hints_refused = true;
	HINT_REFUSED(VIRTIO_DMM_RESP_NACK, Z, 1, 0);
	dev.hints_refused = false;
	CHECK(hint_send(Z, 1, 0) == VIRTIO_DMM_RESP_ACK);

	/* a VMM without hint operations answers ERROR */
	dmm_dev_fini(&dev);
	{
		struct dmm_params p = {
			.block_size = BS, .region_addr = REGION_ADDR,
			.region_size = REGION_SIZE, .boot_size = BOOT,
		};

		CHECK(!dmm_dev_init(&dev, &p, &no_hints, &fk, err,
				    sizeof(err)));
	}
	HINT_REFUSED(E, Z, 1, 0);
	CHECK(!dev.plugged_size && !fk.discards);
}

/* --- requests for memory (REQ_ASK) --- */

static uint16_t ask_answer;
static int asks_seen;
static uint64_t ask_last_size, ask_last_reason;

static uint16_t fake_ask(void *opaque __attribute__((unused)), uint64_t size,
			 uint64_t reason)
{
	asks_seen++;
	ask_last_size = size;
	ask_last_reason = reason;
	return ask_answer;
}

static uint16_t ask(uint64_t size, uint64_t reason)
{
	struct virtio_dmm_req r = mkreq(VIRTIO_DMM_REQ_ASK, 0, 0);

	put64(&r.u.ask.size, size);
	put64(&r.u.ask.reason, reason);
	if (dmm_handle_request(&dev, &r, sizeof(r), &last_resp) !=
	    (int)sizeof(last_resp))
		return 0xffff;
	return le16(&last_resp.type);
}

static void t_ask(void)
{
	struct dmm_backend_ops ops = fake_ops;
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = REGION_SIZE, .boot_size = BOOT,
		.sub_block_size = 2 * MiB,
	};

	/* without the VMM's policy: ERROR */
	setup(BOOT);
	CHECK(ask(BOOT + BS, VIRTIO_DMM_ASK_ADMIN) == VIRTIO_DMM_RESP_ERROR);

	ops.ask = fake_ask;
	dmm_dev_fini(&dev);
	memset(&fk, 0, sizeof(fk));
	CHECK(!dmm_dev_init(&dev, &p, &ops, &fk, err, sizeof(err)));
	asks_seen = 0;
	/* invalid sizes and reasons never reach the policy */
	CHECK(ask(BOOT + 1, VIRTIO_DMM_ASK_ADMIN) == VIRTIO_DMM_RESP_ERROR);
	CHECK(ask(BOOT + REGION_SIZE + 2 * MiB, 0) == VIRTIO_DMM_RESP_ERROR);
	CHECK(ask(BOOT - 2 * MiB, 0) == VIRTIO_DMM_RESP_ERROR);
	CHECK(ask(BOOT + BS, 4) == VIRTIO_DMM_RESP_ERROR);
	CHECK(!asks_seen && dev.requested_size == BOOT);
	/* granted: requested_size follows */
	ask_answer = VIRTIO_DMM_RESP_ACK;
	CHECK(ask(BOOT + BS + 2 * MiB, VIRTIO_DMM_ASK_PRESSURE) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(asks_seen == 1 && ask_last_size == BOOT + BS + 2 * MiB &&
	      ask_last_reason == VIRTIO_DMM_ASK_PRESSURE);
	CHECK(dev.requested_size == BOOT + BS + 2 * MiB);
	/* refused or passed on: nothing changes */
	ask_answer = VIRTIO_DMM_RESP_NACK;
	CHECK(ask(BOOT + 2 * BS, VIRTIO_DMM_ASK_ADMIN) == VIRTIO_DMM_RESP_NACK);
	ask_answer = VIRTIO_DMM_RESP_BUSY;
	CHECK(ask(BOOT + 2 * BS, VIRTIO_DMM_ASK_ADMIN) == VIRTIO_DMM_RESP_BUSY);
	CHECK(dev.requested_size == BOOT + BS + 2 * MiB);
	/* an offer back, granted */
	ask_answer = VIRTIO_DMM_RESP_ACK;
	CHECK(ask(BOOT, VIRTIO_DMM_ASK_ADMIN) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.requested_size == BOOT && !dev.plugged_size);
	CHECK(dev.stats.asks == 4 && dev.stats.asks_granted == 2);
	/* no block state changes through asks */
	CHECK(!fk.populates && !fk.discards);
	dmm_dev_fini(&dev);
	memset(&dev, 0, sizeof(dev));
}

int main(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{ "PLUG is acknowledged and accounted", t_plug_ack },
		{ "PLUG of the last block stays in the region", t_plug_last_block },
		{ "PLUG beyond requested size is NACKed", t_plug_nack_beyond_requested },
		{ "PLUG at boot size is NACKed", t_plug_nack_at_boot_size },
		{ "PLUG of plugged blocks is an ERROR", t_plug_twice_error },
		{ "bad ranges are ERRORs and change nothing", t_bad_ranges },
		{ "bad type and padding are ERRORs", t_bad_type_and_padding },
		{ "short request is a protocol violation", t_short_request },
		{ "UNPLUG discards and accounts", t_unplug },
		{ "UNPLUG of unplugged or mixed blocks is an ERROR", t_unplug_unplugged_error },
		{ "UNPLUG allowed after requested size shrank", t_unplug_after_shrink },
		{ "UNPLUG_ALL discards the whole region", t_unplug_all },
		{ "STATE reports plugged, mixed, unplugged", t_state },
		{ "BUSY for state changes, STATE still answered", t_busy },
		{ "populate failure: ERROR, nothing plugged", t_populate_failure },
		{ "discard failure: ERROR, still plugged", t_discard_failure },
		{ "UNPLUG_ALL discard failure: ERROR, reset still clears", t_unplug_all_discard_failure },
		{ "requested-size rules and messages", t_requested_size_rules },
		{ "init parameter rules", t_init_rules },
		{ "init defaults", t_init_defaults },
		{ "config is little-endian at fixed offsets", t_fill_config },
		{ "wire structure sizes", t_struct_sizes },
		{ "state changes reach the VMM with their range", t_state_changed },
		{ "loaded state is checked", t_loaded_state },
		{ "loaded state: bits past the end are refused", t_loaded_stray_bits },
		{ "reported ranges must be plugged", t_range_is_plugged },
		{ "pages: unplug and plug anywhere in guest RAM", t_pages_unplug_plug },
		{ "pages: malformed lists are ERRORs and change nothing", t_pages_malformed },
		{ "pages: bad header; no page requests without pages", t_pages_bad_header },
		{ "pages: PLUG_PAGES and PLUG beyond requested size are NACKed", t_pages_plug_nack },
		{ "pages: MOVE_PAGES keeps the size", t_pages_move },
		{ "pages: blocks with unplugged pages; UNPLUG_ALL and reset", t_pages_and_blocks },
		{ "pages: discard inhibited and discard failure", t_pages_discard },
		{ "pages: requested-size rules", t_pages_requested_rules },
		{ "pages: init parameter rules", t_pages_init_rules },
		{ "pages: config fields and loaded state", t_pages_config_and_loaded_state },
		{ "sub-blocks: plug, unplug, partial blocks, whole-block rules", t_sb_plug_unplug },
		{ "sub-blocks: malformed ranges; no requests without the feature", t_sb_malformed },
		{ "sub-blocks: pages inside sub-blocks; loaded state", t_sb_and_pages },
		{ "sub-blocks: init parameter rules", t_sb_init_rules },
		{ "hints: XXH64 matches the reference vectors", t_xxh64 },
		{ "hints: content verified, only matching pages shared", t_hints_verified },
		{ "hints: malformed and hostile lists are ERRORs, nothing read", t_hints_malformed },
		{ "asks: checked, then the VMM's policy; a grant sets requested_size", t_ask },
	};
	unsigned int i, n = sizeof(tests) / sizeof(tests[0]);

	printf("TAP version 13\n1..%u\n", n);
	for (i = 0; i < n; i++)
		run(tests[i].name, tests[i].fn);
	dmm_dev_fini(&dev);
	printf("# %d passed, %d failed\n", test_no - failures, failures);
	return failures ? 1 : 0;
}
