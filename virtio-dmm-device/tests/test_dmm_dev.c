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

#include "dmm_internal.h"

#define MiB (1ULL << 20)
#define BS (128 * MiB)
#define REGION_ADDR (4096 * MiB)
#define REGION_SIZE (8 * BS)
#define BOOT (512 * MiB)

/* --- the fake backend --- */

struct fake;
static struct dmm_dev dev;

struct fake {
	int populates, discards, changes, boot_discards;
	uint64_t last_boot_off, last_boot_len;
	uint64_t last_off, last_len, last_plugged;
	int fail_populate, fail_discard;
	int out_of_region;
	/* state_changed: calls, and the union of their ranges */
	int state_changes;
	uint64_t sc_lo, sc_hi;
	/* the answers of may_change_state, may_discard, may_share */
	int busy, no_discard, no_share;
};

static struct fake fk;

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
	return f->fail_populate ? -f->fail_populate : 0;
}

static int fake_discard(void *opaque, uint64_t off, uint64_t len)
{
	struct fake *f = opaque;

	f->discards++;
	fake_check(f, off, len);
	return f->fail_discard ? -EIO : 0;
}

static bool fake_may_change_state(void *opaque)
{
	return !((struct fake *)opaque)->busy;
}

static bool fake_may_discard(void *opaque)
{
	return !((struct fake *)opaque)->no_discard;
}

static bool fake_may_share(void *opaque)
{
	return !((struct fake *)opaque)->no_share;
}

/* What a VMM does with the flags of a call: plugged_size changes counted. */
static int fake_changed(int rc)
{
	if (rc > 0 && (rc & DMM_CHANGED_PLUGGED)) {
		fk.changes++;
		fk.last_plugged = dev.plugged_size;
	}
	return rc;
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

static int fake_boot_range(void *opaque __attribute__((unused)), uint64_t gpa,
			   uint64_t len, uint64_t *offset)
{
	if (gpa < LOW_RAM && len <= LOW_RAM - gpa) {
		*offset = gpa;
		return 0;
	}
	if (gpa >= HIGH_RAM_ADDR && gpa - HIGH_RAM_ADDR < BOOT - LOW_RAM &&
	    len <= BOOT - LOW_RAM - (gpa - HIGH_RAM_ADDR)) {
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
	f->last_boot_len = len;
	if (off > BOOT || len > BOOT - off)
		f->out_of_region++;
	return f->fail_discard ? -EIO : 0;
}

static const struct dmm_backend_ops fake_ops = {
	.populate = fake_populate,
	.discard = fake_discard,
	.state_changed = fake_state_changed,
	.boot_range = fake_boot_range,
	.discard_boot = fake_discard_boot,
	.may_change_state = fake_may_change_state,
	.may_discard = fake_may_discard,
	.may_share = fake_may_share,
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

static uint64_t le64v(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
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

	if (fake_changed(dmm_handle_request(&dev, &r, sizeof(r),
					    &last_resp)) < 0)
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
	static uint8_t before[REGION_SIZE / DMM_MIN_BLOCK_SIZE / 8];
	uint64_t plugged = dev.plugged_size, n = dmm_bitmap_bytes(dev.nb_sbs);
	int pops = fk.populates, dis = fk.discards, chg = fk.changes;
	int sc = fk.state_changes;

	memcpy(before, dev.sb_plugged, n);
	check(req(type, addr, nb) == resp, "response", line);
	check(!memcmp(before, dev.sb_plugged, n), "state unchanged",
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
	CHECK(dmm_block_state(&dev, 0) == DMM_BLOCK_PLUGGED && dmm_block_state(&dev, 1) ==
	      DMM_BLOCK_PLUGGED && dmm_block_state(&dev, 2) == DMM_BLOCK_UNPLUGGED);
	CHECK(fk.populates == 1 && fk.last_off == 0 && fk.last_len == 2 * BS);
	CHECK(fk.changes == 1 && fk.last_plugged == 2 * BS);
	CHECK(dev.counters.plugs == 1 && dev.counters.requests == 1);
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
	CHECK(dev.counters.nacks == 2);
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
	CHECK(dev.counters.errors == 13);
}

static void t_bad_type_and_padding(void)
{
	struct virtio_dmm_req r = mkreq(VIRTIO_DMM_REQ_PLUG, blk(0), 1);
	struct virtio_dmm_resp resp;

	setup(BOOT + BS);
	EXPECT_ERROR(4, blk(0), 1);
	EXPECT_ERROR(0xffff, blk(0), 1);
	put16(&r.padding[2], 1);
	CHECK(dmm_handle_request(&dev, &r, sizeof(r), &resp) == 0);
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
	      dev.counters.requests == 0);
}

static void t_unplug(void)
{
	setup(BOOT + 3 * BS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 3) == VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(1), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.plugged_size == 2 * BS && dmm_block_state(&dev, 1) ==
	      DMM_BLOCK_UNPLUGGED);
	CHECK(fk.discards == 1 && fk.last_off == BS && fk.last_len == BS);
	CHECK(fk.last_plugged == 2 * BS && dev.counters.unplugs == 1);
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
	fk.busy = 1;
	EXPECT_BUSY(VIRTIO_DMM_REQ_PLUG, blk(1), 1);
	EXPECT_BUSY(VIRTIO_DMM_REQ_UNPLUG, blk(0), 1);
	EXPECT_BUSY(VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0);
	CHECK(req(VIRTIO_DMM_REQ_STATE, blk(0), 1) == VIRTIO_DMM_RESP_ACK);
	/* Malformed stays ERROR while busy. */
	EXPECT_ERROR(VIRTIO_DMM_REQ_PLUG, blk(0) + 1, 1);
	CHECK(dev.counters.busy == 3);
}

static void t_populate_failure(void)
{
	setup(BOOT + REGION_SIZE);
	fk.fail_populate = EIO;
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ERROR);
	CHECK(dev.plugged_size == 0 && dmm_block_state(&dev, 0) == DMM_BLOCK_UNPLUGGED);
	CHECK(fk.discards == 1);	/* half-populated memory given back */
	CHECK(fk.changes == 0 && dev.counters.backend_errors == 1);
	/* out of host memory: NACK (retried later), nothing plugged */
	fk.fail_populate = ENOMEM;
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_NACK);
	CHECK(dev.plugged_size == 0 && dmm_block_state(&dev, 0) == DMM_BLOCK_UNPLUGGED);
	CHECK(fk.discards == 2 && fk.changes == 0 &&
	      dev.counters.backend_errors == 2);
	fk.fail_populate = 0;
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
}

static void t_unplug_all_discard_failure(void)
{
	unsigned int changed;

	setup(BOOT + REGION_SIZE);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	fk.fail_discard = 1;
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0) == VIRTIO_DMM_RESP_ERROR);
	CHECK(dev.plugged_size == 2 * BS && dmm_block_state(&dev, 1) == DMM_BLOCK_PLUGGED);
	/* ...but a machine reset forgets every block regardless. */
	CHECK(dmm_unplug_all(&dev, &changed) == -EIO &&
	      dev.plugged_size == 0 && changed == DMM_CHANGED_PLUGGED);
}

static void t_discard_failure(void)
{
	setup(BOOT + REGION_SIZE);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	fk.fail_discard = 1;
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(0), 1) == VIRTIO_DMM_RESP_ERROR);
	CHECK(dev.plugged_size == 2 * BS && dmm_block_state(&dev, 0) == DMM_BLOCK_PLUGGED);
	CHECK(dev.counters.backend_errors == 1);
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

/* --- migration images: dev saved, changed, loaded into a new device --- */

static uint8_t img[64 << 10], img_fresh[64 << 10], img_after[64 << 10];
static size_t img_len;
static struct dmm_dev dst;

/* Image fields (see dmm_migration.c). */
enum { I_BS, I_ADDR, I_RSIZE, I_BOOT, I_SBS, I_PS, I_RCHUNKS, I_BCHUNKS,
       I_REQ, I_PLUGGED, I_UNPLUGGED, I_BITMAPS };

static void img_save(void)
{
	img_len = dmm_state_size(&dev);
	if (img_len > sizeof(img))
		abort();
	dmm_save(&dev, img);
}

static void img_put(int field, uint64_t v)
{
	put64(img + 8 * field, v);
}

/* The image's bitmaps: 0 sub-blocks, 1 boot pages, 2 region pages, ... */
static uint8_t *img_bitmap(int which)
{
	uint64_t nb[5] = {
		dev.nb_sbs, dev.p.page_size ? dev.nb_boot_pages : 0,
		dev.p.page_size ? dev.nb_region_pages : 0, dev.nb_chunks[0],
		dev.nb_chunks[1],
	};
	uint8_t *b = img + 8 * I_BITMAPS;

	for (int i = 0; i < which; i++)
		b += dmm_bitmap_bytes(nb[i]);
	return b;
}

/*
 * Load the image into a new device with dev's parameters: on failure the
 * device must be as new, on success it must save the same image.
 */
static int img_load_len(size_t len, int line)
{
	int rc;

	if (dmm_dev_init(&dst, &dev.p, dev.ops, dev.opaque, err, sizeof(err)))
		abort();
	dmm_set_features(&dst, dev.features);
	dmm_save(&dst, img_fresh);
	rc = dmm_load(&dst, img, len, err, sizeof(err));
	dmm_save(&dst, img_after);
	if (rc == -EINVAL)
		check(!memcmp(img_fresh, img_after, dmm_state_size(&dst)),
		      "a refused image changes nothing", line);
	else if (!rc)
		check(!memcmp(img, img_after, dmm_state_size(&dst)),
		      "a loaded image saves the same", line);
	dmm_dev_fini(&dst);
	return rc;
}

#define IMG_LOAD() img_load_len(img_len, __LINE__)

static void t_loaded_state(void)
{
	setup(BOOT + 2 * BS);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(0), 2) == VIRTIO_DMM_RESP_ACK);
	img_save();
	CHECK(!IMG_LOAD());
	img_put(I_PLUGGED, BS);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "plugged-size"));
	img_put(I_PLUGGED, 2 * BS);
	img_put(I_REQ, BOOT + 1);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "requested-guest-size"));
	img_put(I_REQ, BOOT + 2 * BS);
	img_put(I_UNPLUGGED, 4096ULL);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "without pages"));
	img_put(I_UNPLUGGED, 0);
	CHECK(!IMG_LOAD());
}

/* Every parameter in an image must be the destination's; sizes exact. */
static void t_load_params(void)
{
	static const char *const names[] = {
		"block-size", "region address", "region size", "boot size",
		"sub-block size", "page size", "hint chunks of the region",
		"hint chunks of boot RAM",
	};
	uint64_t v;

	setup_full(BOOT + BS, 4096ULL, 2 * MiB);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(1), 1) == VIRTIO_DMM_RESP_ACK);
	img_save();
	for (int i = I_BS; i <= I_BCHUNKS; i++) {
		v = le64v(img + 8 * i);
		img_put(i, v ^ (1ULL << 40));
		CHECK(IMG_LOAD() == -EINVAL && strstr(err, names[i]) &&
		      strstr(err, "differs"));
		img_put(i, v);
	}
	CHECK(img_load_len(img_len - 1, __LINE__) == -EINVAL);
	CHECK(img_load_len(img_len + 1, __LINE__) == -EINVAL);
	CHECK(img_load_len(8 * I_BITMAPS - 1, __LINE__) == -EINVAL);
	CHECK(img_load_len(0, __LINE__) == -EINVAL);
	CHECK(!IMG_LOAD());
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
	img_save();
	CHECK(!IMG_LOAD());
	img_bitmap(0)[0] |= 1u << 5;
	img_put(I_PLUGGED, 2 * BS);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "sub-block bit 5"));
	img_bitmap(0)[0] &= ~(1u << 5);
	img_put(I_PLUGGED, BS);
	CHECK(!IMG_LOAD());
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

/* The order of the page requests preq_len() sends (0: single pages). */
static uint16_t preq_order;

/* Send a page request of @nb addresses, @len bytes (0: exactly enough). */
static uint16_t preq_len(uint16_t type, const uint64_t *addrs, uint32_t nb,
			 size_t len)
{
	struct virtio_dmm_resp resp;

	memset(page_buf, 0, sizeof(page_buf));
	put16(page_buf, type);
	put16(page_buf + 2, preq_order);
	page_buf[4] = nb & 0xff;
	page_buf[5] = (nb >> 8) & 0xff;
	page_buf[6] = (nb >> 16) & 0xff;
	page_buf[7] = nb >> 24;
	for (uint32_t i = 0; i < nb && i < DMM_MAX_PAGES_PER_REQ + 2; i++)
		put64(page_buf + 8 + 8 * i, addrs[i]);
	if (!len)
		len = 8 + 8 * (size_t)nb;
	if (dmm_handle_page_request(&dev, page_buf, len, &resp) < 0)
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
	CHECK(dmm_bit_test(dev.boot_pages, 5));
	CHECK(dmm_bit_test(dev.boot_pages, LOW_RAM / PS + 1));
	CHECK(dmm_bit_test(dev.region_pages, 2 * BS / PS + 7));
	CHECK(fk.boot_discards == 2 && fk.last_boot_off == LOW_RAM + PS);
	CHECK(fk.discards == 1 && fk.last_off == 2 * BS + 7 * PS);
	CHECK(PREQ(VIRTIO_DMM_REQ_PLUG_PAGES, LOW(5)) == VIRTIO_DMM_RESP_ACK);
	CHECK(dev.unplugged_size == 2 * PS && !dmm_bit_test(dev.boot_pages, 5));
	CHECK(dev.counters.pages_unplugged == 3 && dev.counters.pages_plugged == 1);
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

/*
 * Ranges (F_PAGE_RANGES): one entry names 2^order pages, each checked as a
 * page is, discarded in one call; refused whole when any page is wrong.
 */
static void t_pages_ranges(void)
{
	const uint64_t R = PS << 9;	/* order 9: 2 MiB */

	setup_pages(BOOT + BS, PS);
	dmm_set_features(&dev, 1ULL << VIRTIO_DMM_F_PAGE_RANGES);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(2), 1) == VIRTIO_DMM_RESP_ACK);
	preq_order = 9;
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(512), HIGH(1024)) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(dev.unplugged_size == 2 * R && fk.boot_discards == 2);
	CHECK(fk.last_boot_off == LOW_RAM + 1024 * PS && fk.last_boot_len == R);
	CHECK(dmm_bit_test(dev.boot_pages, 512) &&
	      dmm_bit_test(dev.boot_pages, 1023) &&
	      !dmm_bit_test(dev.boot_pages, 1024) &&
	      !dmm_bit_test(dev.boot_pages, 511));
	CHECK(dev.counters.pages_unplugged == 1024 &&
	      dev.counters.page_ranges_unplugged == 2);
	/* unaligned; in the hole after low RAM; overlapping
	 * itself or what is unplugged; named twice; past boot RAM */
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1024 + 1));
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW_RAM);
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(0), LOW(512));
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(2048), LOW(2048));
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES,
		   HIGH((BOOT - LOW_RAM) / PS - 512 + 512));
	/* in the region: inside a plugged block, not across an unplugged one */
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, INBLK(2, 512)) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(fk.discards == 1 && fk.last_off == 2 * BS + R &&
	      fk.last_len == R);
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, INBLK(3, 0));
	/* a smaller order inside a range, a larger order over pages */
	preq_order = 0;
	CHECK(PREQ(VIRTIO_DMM_REQ_PLUG_PAGES, LOW(513)) == VIRTIO_DMM_RESP_ACK);
	preq_order = 9;
	PAGE_ERROR(VIRTIO_DMM_REQ_PLUG_PAGES, LOW(512));
	preq_order = 0;
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(513)) == VIRTIO_DMM_RESP_ACK);
	preq_order = 9;
	CHECK(PREQ(VIRTIO_DMM_REQ_PLUG_PAGES, LOW(512), INBLK(2, 512)) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(dev.unplugged_size == R);
	/* too large an order; MOVE_PAGES takes none; plug beyond the target */
	preq_order = VIRTIO_DMM_MAX_PAGE_ORDER + 1;
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(0));
	preq_order = 9;
	PAGE_ERROR(VIRTIO_DMM_REQ_MOVE_PAGES, HIGH(1024), LOW(0));
	CHECK(dmm_set_requested_size(&dev, BOOT + BS - R - PS, err,
				     sizeof(err)) == 0);
	PAGE_REFUSED(VIRTIO_DMM_RESP_NACK, VIRTIO_DMM_REQ_PLUG_PAGES,
		     HIGH(1024));
	CHECK(dmm_set_requested_size(&dev, BOOT + BS, err, sizeof(err)) == 0);
	CHECK(PREQ(VIRTIO_DMM_REQ_PLUG_PAGES, HIGH(1024)) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(dev.unplugged_size == 0);
	/* without the feature an order is an ERROR */
	dmm_set_features(&dev, 0);
	PAGE_ERROR(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(0));
	preq_order = 0;
}

static void t_pages_bad_header(void)
{
	struct virtio_dmm_resp resp;
	uint8_t r[16] = { VIRTIO_DMM_REQ_UNPLUG_PAGES, 0, 1, 0, 1, 0, 0, 0 };

	setup_pages(BOOT, PS);
	CHECK(dmm_handle_page_request(&dev, r, 7, &resp) == -EINVAL);
	CHECK(dmm_handle_page_request(&dev, r, 16, &resp) == 0);
	/* an order without F_PAGE_RANGES */
	CHECK(le16(&resp.type) == VIRTIO_DMM_RESP_ERROR);
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
	CHECK(!dmm_bit_test(dev.boot_pages, 1) &&
	      dmm_bit_test(dev.boot_pages, 20));
	CHECK(dev.unplugged_size == 2 * PS && fk.boot_discards == 4);
	CHECK(fk.last_boot_off == LOW_RAM + 20 * PS);
}

static void t_pages_and_blocks(void)
{
	unsigned int changed;

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
	CHECK(!dmm_bit_test(dev.boot_pages, 0));
	CHECK(!dmm_bit_test(dev.region_pages, 5 * BS / PS));
	/* so does a machine reset */
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, HIGH(2)) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(!dmm_unplug_all(&dev, &changed) &&
	      changed == DMM_CHANGED_UNPLUGGED);
	CHECK(dev.unplugged_size == 0 && !dmm_bit_test(dev.boot_pages,
						       LOW_RAM / PS + 2));
}

static void t_pages_discard(void)
{
	setup_pages(BOOT, PS);
	fk.no_discard = 1;
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(1)) == VIRTIO_DMM_RESP_ACK);
	CHECK(fk.boot_discards == 0 && dev.unplugged_size == PS);
	fk.no_discard = 0;
	fk.fail_discard = 1;
	CHECK(PREQ(VIRTIO_DMM_REQ_UNPLUG_PAGES, LOW(2), LOW(3)) ==
	      VIRTIO_DMM_RESP_ERROR);
	CHECK(fk.boot_discards == 1 && dev.counters.backend_errors == 1);
	CHECK(dev.unplugged_size == PS && !dmm_bit_test(dev.boot_pages, 2) &&
	      !dmm_bit_test(dev.boot_pages, 3));
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
	no_boot.boot_range = NULL;
	CHECK(dmm_dev_init(&d, &p, &no_boot, &fk, err, sizeof(err)) ==
	      -EINVAL && strstr(err, "boot_range"));
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
	img_save();
	CHECK(!IMG_LOAD());
	img_put(I_UNPLUGGED, PS);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "unplugged-size"));
	img_bitmap(2)[5 * BS / PS / 8] = 1;	/* in unplugged block 5 */
	img_put(I_UNPLUGGED, 3 * PS);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "block 5"));
	img_bitmap(2)[5 * BS / PS / 8] = 0;
	img_put(I_UNPLUGGED, 2 * PS);
	img_bitmap(1)[7] |= 0x80;		/* one boot page more */
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "unplugged-size"));
	/* another consistent state loads */
	img_put(I_UNPLUGGED, 3 * PS);
	img_put(I_PLUGGED, 0);
	memset(img_bitmap(0), 0, dmm_bitmap_bytes(dev.nb_sbs));
	memset(img_bitmap(2), 0, dmm_bitmap_bytes(dev.nb_region_pages));
	img_bitmap(1)[0] = 0x7;
	img_bitmap(1)[7] = 0;
	CHECK(!IMG_LOAD());
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
	fk.fail_populate = EIO;
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
	CHECK(dev.plugged_size == 3 * SB && dmm_block_state(&dev, 1) == DMM_BLOCK_PARTIAL);
	CHECK(dmm_partial_plugged_size(&dev) == 3 * SB);
	CHECK(fk.populates == 1 && fk.last_off == BS + 5 * SB &&
	      fk.last_len == 3 * SB);
	CHECK(req(VIRTIO_DMM_REQ_STATE, blk(1), 1) == VIRTIO_DMM_RESP_ACK &&
	      le16(&last_resp.u.state.state) == VIRTIO_DMM_STATE_MIXED);
	/* STATE_SB: the state of sub-blocks, as a kdump kernel asks it */
	CHECK(req(VIRTIO_DMM_REQ_STATE_SB, SBA(1, 5), 3) == VIRTIO_DMM_RESP_ACK &&
	      le16(&last_resp.u.state.state) == VIRTIO_DMM_STATE_PLUGGED);
	CHECK(req(VIRTIO_DMM_REQ_STATE_SB, SBA(1, 4), 1) == VIRTIO_DMM_RESP_ACK &&
	      le16(&last_resp.u.state.state) == VIRTIO_DMM_STATE_UNPLUGGED);
	CHECK(req(VIRTIO_DMM_REQ_STATE_SB, SBA(1, 4), 2) == VIRTIO_DMM_RESP_ACK &&
	      le16(&last_resp.u.state.state) == VIRTIO_DMM_STATE_MIXED);
	EXPECT_ERROR(VIRTIO_DMM_REQ_STATE_SB, SBA(1, 4) + 4096, 1);
	EXPECT_ERROR(VIRTIO_DMM_REQ_STATE_SB, SBA(7, 63), 2);
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
	CHECK(dmm_block_state(&dev, 1) == DMM_BLOCK_PLUGGED && dev.plugged_size == BS);
	CHECK(dmm_partial_plugged_size(&dev) == 0);
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG, blk(1), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(dmm_block_state(&dev, 1) == DMM_BLOCK_UNPLUGGED && dev.plugged_size == 0);
	dmm_fill_config(&dev, 0, &cfg);
	CHECK(b[72] == 0 && b[74] == 0x20);		/* sub_block_size 2 MiB */
	img_save();
	CHECK(!IMG_LOAD());
}

/* Runs dmm_for_each_range() gave, as a RamDiscardManager listener sees them. */
static struct {
	unsigned int n, stop_at;
	uint64_t off[8], len[8];
} runs;

static int record_run(void *opaque, uint64_t offset, uint64_t len)
{
	CHECK(opaque == &runs);
	if (runs.n < 8) {
		runs.off[runs.n] = offset;
		runs.len[runs.n] = len;
	}
	runs.n++;
	return runs.n == runs.stop_at ? -EIO : 0;
}

static unsigned int for_each(uint64_t off, uint64_t len, bool plugged,
			     unsigned int stop_at, int expect)
{
	memset(&runs, 0, sizeof(runs));
	runs.stop_at = stop_at;
	CHECK(dmm_for_each_range(&dev, off, len, plugged, record_run,
				 &runs) == expect);
	return runs.n;
}

#define RUN_IS(i, o, l) CHECK(runs.off[i] == (o) && runs.len[i] == (l))

/*
 * The replay a RamDiscardManager gives its listeners (migration, VFIO):
 * maximal runs of one state, clipped to the section, nothing outside it.
 */
static void t_sb_for_each_range(void)
{
	setup_full(BOOT + 3 * BS, PS, SB);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(1), 1) == VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, SBA(2, 0), 2) == VIRTIO_DMM_RESP_ACK);
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, SBA(2, 5), 1) == VIRTIO_DMM_RESP_ACK);
	/* plugged: block 1 and the first two sub-blocks of 2 are one run */
	CHECK(for_each(0, REGION_SIZE, true, 0, 0) == 2);
	RUN_IS(0, BS, BS + 2 * SB);
	RUN_IS(1, 2 * BS + 5 * SB, SB);
	/* unplugged: the rest, to the region's end */
	CHECK(for_each(0, REGION_SIZE, false, 0, 0) == 3);
	RUN_IS(0, 0, BS);
	RUN_IS(1, 2 * BS + 2 * SB, 3 * SB);
	RUN_IS(2, 2 * BS + 6 * SB, REGION_SIZE - 2 * BS - 6 * SB);
	/* clipped to a section that starts and ends inside sub-blocks */
	CHECK(for_each(BS + 4096, BS + SB, true, 0, 0) == 1);
	RUN_IS(0, BS + 4096, BS + SB);
	CHECK(for_each(2 * BS + SB, 4 * SB + 8192, false, 0, 0) == 1);
	RUN_IS(0, 2 * BS + 2 * SB, 3 * SB);
	/* the first error stops the walk and is returned */
	CHECK(for_each(0, REGION_SIZE, false, 2, -EIO) == 2);
	/* nothing for a range outside the region */
	CHECK(for_each(0, 0, true, 0, 0) == 0);
	CHECK(for_each(REGION_SIZE, SB, false, 0, 0) == 0);
	CHECK(for_each(BS, UINT64_MAX, true, 0, 0) == 0);
	CHECK(for_each(UINT64_MAX - SB, 2 * SB, false, 0, 0) == 0);
	/* everything unplugged: one run */
	CHECK(req(VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(for_each(0, REGION_SIZE, true, 0, 0) == 0);
	CHECK(for_each(0, REGION_SIZE, false, 0, 0) == 1);
	RUN_IS(0, 0, REGION_SIZE);
}

/*
 * A fake RamDiscardManager listener (VFIO's part): it maps what it is told
 * is populated and unmaps what it is told is discarded, and fails on a
 * double map or an unmap of what it never mapped, as a DMA mapping would.
 */
static struct {
	uint8_t mapped[8 * 64 / 8];	/* a bit per sub-block of the region */
	unsigned int populates, discards, errors;
} lst;

static int lst_change(uint64_t offset, uint64_t len, bool map)
{
	uint64_t i;

	for (i = offset / SB; i < (offset + len) / SB; i++) {
		bool was = lst.mapped[i / 8] & (1u << (i % 8));

		if (was == map)
			lst.errors++;
		if (map)
			lst.mapped[i / 8] |= 1u << (i % 8);
		else
			lst.mapped[i / 8] &= ~(1u << (i % 8));
	}
	return 0;
}

static int lst_populate(void *opaque, uint64_t offset, uint64_t len)
{
	(void)opaque;
	lst.populates++;
	return lst_change(offset, len, true);
}

static int lst_discard(void *opaque, uint64_t offset, uint64_t len)
{
	(void)opaque;
	lst.discards++;
	return lst_change(offset, len, false);
}

/* The listener maps exactly the plugged sub-blocks. */
static bool lst_matches(void)
{
	uint64_t i;

	for (i = 0; i < 8 * 64; i++) {
		bool mapped = lst.mapped[i / 8] & (1u << (i % 8));

		if (mapped != dmm_range_is_plugged(&dev, i * SB, SB))
			return false;
	}
	return !lst.errors;
}

/*
 * What the QEMU device does with its listeners: a plug tells them first
 * (populate, then dmm_told_set), every state change then syncs the range.
 */
static uint16_t lst_req(uint16_t type, uint64_t addr, uint64_t nb,
			uint8_t *told)
{
	uint64_t unit = type == VIRTIO_DMM_REQ_PLUG ? BS : SB;
	uint16_t r;

	if (type == VIRTIO_DMM_REQ_PLUG || type == VIRTIO_DMM_REQ_PLUG_SB) {
		lst_populate(NULL, addr - REGION_ADDR, nb * unit);
		dmm_told_set(&dev, told, addr - REGION_ADDR, nb * unit, true);
	}
	r = req(type, addr, nb);
	if (r != VIRTIO_DMM_RESP_ACK && (type == VIRTIO_DMM_REQ_PLUG ||
					 type == VIRTIO_DMM_REQ_PLUG_SB)) {
		/* the plug failed: the VMM takes its word back */
		lst_discard(NULL, addr - REGION_ADDR, nb * unit);
		dmm_told_set(&dev, told, addr - REGION_ADDR, nb * unit, false);
	}
	dmm_told_sync(&dev, told, 0, REGION_SIZE, lst_discard, lst_populate,
		      NULL);
	return r;
}

static void t_told_sync(void)
{
	uint8_t told[8 * 64 / 8];
	unsigned int changed;

	setup_full(BOOT + 4 * BS, PS, SB);
	memset(&lst, 0, sizeof(lst));
	memset(told, 0, sizeof(told));
	CHECK(dmm_told_bytes(&dev) == sizeof(told));
	CHECK(lst_req(VIRTIO_DMM_REQ_PLUG, blk(1), 2, told) == VIRTIO_DMM_RESP_ACK);
	CHECK(lst_req(VIRTIO_DMM_REQ_PLUG_SB, SBA(4, 3), 5, told) == VIRTIO_DMM_RESP_ACK);
	/* the plugs were told once each, by the populate; sync adds nothing */
	CHECK(lst.populates == 2 && lst.discards == 0 && lst_matches());
	CHECK(lst_req(VIRTIO_DMM_REQ_UNPLUG_SB, SBA(1, 10), 2, told) == VIRTIO_DMM_RESP_ACK);
	CHECK(lst.discards == 1 && lst_matches());
	/* a refused plug takes its word back, nothing else changes */
	CHECK(lst_req(VIRTIO_DMM_REQ_PLUG, blk(6), 2, told) == VIRTIO_DMM_RESP_NACK);
	CHECK(lst.discards == 2 && lst_matches());
	/* an image loaded on a destination: told nothing yet, all populated */
	img_save();
	setup_full(BOOT + 4 * BS, PS, SB);
	CHECK(!dmm_load(&dev, img, img_len, err, sizeof(err)));
	memset(&lst, 0, sizeof(lst));
	memset(told, 0, sizeof(told));
	dmm_told_sync(&dev, told, 0, REGION_SIZE, lst_discard, lst_populate,
		      NULL);
	CHECK(lst.populates == 3 && lst.discards == 0 && lst_matches());
	/* a machine reset: everything told goes, once */
	CHECK(!dmm_unplug_all(&dev, &changed));
	dmm_told_sync(&dev, told, 0, REGION_SIZE, lst_discard, lst_populate,
		      NULL);
	CHECK(lst.discards == 3 && lst_matches());
	dmm_told_sync(&dev, told, 0, REGION_SIZE, lst_discard, lst_populate,
		      NULL);
	CHECK(lst.discards == 3 && lst.populates == 3);
	/* out of range: nothing */
	dmm_told_set(&dev, told, REGION_SIZE, SB, true);
	dmm_told_sync(&dev, told, REGION_SIZE, SB, lst_discard, lst_populate,
		      NULL);
	CHECK(lst.discards == 3 && lst.populates == 3 && lst_matches());
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
	EXPECT_ERROR(VIRTIO_DMM_REQ_STATE_SB, SBA(0, 0), 1);
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
	img_save();
	CHECK(!IMG_LOAD());
	/* loaded state: sizes and sub-blocks must agree */
	img_put(I_PLUGGED, 2 * SB);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "sub-blocks"));
	/* a page unplugged in a sub-block that is not plugged */
	img_put(I_PLUGGED, SB);
	img_bitmap(0)[(2 * BS / SB + 1) / 8] &= ~(1u << ((2 * BS / SB + 1) % 8));
	img_bitmap(0)[(2 * BS / SB + 2) / 8] |= 1u << ((2 * BS / SB + 2) % 8);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "block 2"));
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

static uint64_t last_share_len;

static int fake_share(void *opaque __attribute__((unused)), bool boot,
		      uint64_t offset, uint64_t len)
{
	hint_shares++;
	last_share_boot = boot;
	last_share_off = offset;
	last_share_len = len;
	if (offset % DMM_HINT_CHUNK || !len || len > DMM_HINT_CHUNK ||
	    offset + len > (boot ? dev.p.boot_size : dev.p.region_size))
		fk.out_of_region++;
	return fail_share;
}

static const struct dmm_backend_ops hint_ops = {
	.populate = fake_populate,
	.discard = fake_discard,
	.boot_range = fake_boot_range,
	.discard_boot = fake_discard_boot,
	.page_ptr = fake_page_ptr,
	.share = fake_share,
	.may_change_state = fake_may_change_state,
	.may_discard = fake_may_discard,
	.may_share = fake_may_share,
};

#define F_HINTS (1ULL << VIRTIO_DMM_F_HINTS)
#define F_DUP (1ULL << VIRTIO_DMM_F_HINTS_DUP)

static void setup_hints(uint64_t page_size)
{
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = REGION_SIZE, .boot_size = BOOT,
		.page_size = page_size, .sub_block_size = 2 * MiB,
		.hints = true,
	};

	dmm_dev_fini(&dev);
	memset(&fk, 0, sizeof(fk));
	memset(fake_mem, 0, sizeof(fake_mem));
	hint_reads = hint_shares = fail_share = 0;
	if (dmm_dev_init(&dev, &p, &hint_ops, &fk, err, sizeof(err)) ||
	    dmm_set_requested_size(&dev, BOOT + BS, err, sizeof(err)))
		abort();
	dmm_set_features(&dev, F_HINTS);
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
	if (dmm_handle_hint_request(&dev, &hreq, len, &last_resp) < 0)
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
	/* the whole chunk of each page found as stated is shared */
	CHECK(hint_shares == 2 && !last_share_boot && last_share_off == 0 &&
	      last_share_len == DMM_HINT_CHUNK);
	/* high boot RAM is boot RAM at its offset */
	hint_set(0, HIGH_RAM_ADDR + 4 * HPS, 0);
	CHECK(hint_send(VIRTIO_DMM_HINT_ZERO, 1, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(hint_shares == 3 && last_share_boot && last_share_off == LOW_RAM);

	/* duplicates: the device hashes the content itself */
	fake_mem[0][6][0] = 0x1234;
	h = dmm_xxh64(fake_mem[0][6], HPS, 0);
	hint_set(0, blk(0) + 6 * HPS, h);
	hint_set(1, blk(0) + 7 * HPS, h);	/* zero page, other hash */
	hint_set(2, 2 * HPS, dmm_xxh64(fake_mem[1][2], HPS, 0));
	/* only where the VMM offers them (F_HINTS_DUP): else ERROR */
	CHECK(hint_send(VIRTIO_DMM_HINT_DUP, 3, 0) == VIRTIO_DMM_RESP_ERROR);
	CHECK(hint_shares == 3 && dev.counters.hint_errors == 1);
	dev.counters.hint_errors = 0;
	dmm_set_features(&dev, F_HINTS | F_DUP);
	CHECK(hint_send(VIRTIO_DMM_HINT_DUP, 3, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(resp32(&last_resp.u.hint.accepted) == 2);
	CHECK(resp32(&last_resp.u.hint.rejected) == 1);
	/* their chunks were shared before: once is enough */
	CHECK(hint_shares == 3);
	CHECK(dev.counters.hint_zero_accepted == 3 && dev.counters.hint_dup_accepted == 2 &&
	      dev.counters.hint_rejected == 2 && !dev.counters.hint_errors);
	CHECK(dev.counters.mergeable_bytes == 3 * DMM_HINT_CHUNK);

	/* a failing share counts as rejected (a page of a new chunk) */
	fail_share = -EINVAL;
	hint_set(0, 5 * DMM_HINT_CHUNK, 0);
	CHECK(hint_send(VIRTIO_DMM_HINT_ZERO, 1, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(resp32(&last_resp.u.hint.rejected) == 1 &&
	      dev.counters.backend_errors == 1 && hint_shares == 4);
	/* -ENOSPC: a bound, rejected, not a backend error */
	fail_share = -ENOSPC;
	CHECK(hint_send(VIRTIO_DMM_HINT_ZERO, 1, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(resp32(&last_resp.u.hint.rejected) == 1 &&
	      dev.counters.backend_errors == 1);
	CHECK(dev.counters.mergeable_bytes == 3 * DMM_HINT_CHUNK);
	/* no state, no size changes from hints, nothing out of range */
	CHECK(dev.plugged_size == BS && !dev.unplugged_size &&
	      !fk.discards && !fk.boot_discards && !fk.out_of_region);
}

/*
 * Chunks: each shared once; runs of shared chunks bounded (the host's
 * mappings); the last chunk of RAM may be short; an image carries them
 * and the destination shares them again, or refuses too many runs.
 */
static void t_hint_chunks(void)
{
	/* 4097 chunks of boot RAM, the last 4 KiB: room for 2049 runs */
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = REGION_SIZE, .boot_size = 4096 * 2 * MiB + HPS,
		.hints = true,
	};
	uint64_t i;

	dmm_dev_fini(&dev);
	memset(&fk, 0, sizeof(fk));
	hint_shares = fail_share = 0;
	CHECK(!dmm_dev_init(&dev, &p, &hint_ops, &fk, err, sizeof(err)));
	CHECK(dev.nb_chunks[1] == 4097 && dev.nb_chunks[0] == 512);
	for (i = 0; i < DMM_MAX_HINT_RUNS; i++)
		CHECK(!dmm_share_chunk(&dev, true, 2 * i));
	CHECK(dev.chunk_runs[1] == DMM_MAX_HINT_RUNS);
	/* a new run: refused; growing a run or joining two: fine */
	CHECK(dmm_share_chunk(&dev, true, 4096) == -ENOSPC);
	CHECK(!dmm_share_chunk(&dev, true, 2 * DMM_MAX_HINT_RUNS - 1));
	CHECK(!dmm_share_chunk(&dev, true, 1));
	CHECK(dev.chunk_runs[1] == DMM_MAX_HINT_RUNS - 1);
	CHECK(!dmm_share_chunk(&dev, true, 4096));
	CHECK(last_share_off == 4096 * DMM_HINT_CHUNK && last_share_len == HPS);
	CHECK(dmm_share_chunk(&dev, true, 4097) == -EINVAL);
	/* the region's runs are counted apart */
	CHECK(!dmm_share_chunk(&dev, false, 0) && dev.chunk_runs[0] == 1);
	/* shared again: no call */
	i = hint_shares;
	CHECK(!dmm_share_chunk(&dev, true, 0) && hint_shares == (int)i);
	CHECK(dev.counters.mergeable_bytes ==
	      (DMM_MAX_HINT_RUNS + 3) * DMM_HINT_CHUNK + HPS);
	CHECK(!fk.out_of_region);

	/* migration: the destination shares the same chunks */
	img_save();
	i = hint_shares;
	CHECK(!IMG_LOAD());
	CHECK(hint_shares == (int)i + DMM_MAX_HINT_RUNS + 4);
	/* one more run than allowed */
	img_bitmap(4)[4094 / 8] |= 1u << (4094 % 8);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "runs"));
	img_bitmap(4)[4094 / 8] &= ~(1u << (4094 % 8));
	/* bits past the last chunk */
	img_bitmap(4)[4097 / 8] |= 1u << (4097 % 8);
	CHECK(IMG_LOAD() == -EINVAL && strstr(err, "boot chunk bit 4097"));
	img_bitmap(4)[4097 / 8] &= ~(1u << (4097 % 8));
	/* a share that fails on the destination fails the load */
	fail_share = -EIO;
	CHECK(img_load_len(img_len, __LINE__) == -EIO &&
	      strstr(err, "cannot be shared"));
	fail_share = 0;
	CHECK(!IMG_LOAD());
	dmm_dev_fini(&dev);
	memset(&dev, 0, sizeof(dev));
}

/* The request must be answered @resp and read and share nothing. */
static void expect_hint_refused(uint16_t resp, uint16_t type, uint32_t nb,
				size_t len, int line)
{
	int reads = hint_reads, shares = hint_shares;
	uint64_t errs = dev.counters.hint_errors;

	check(hint_send(type, nb, len) == resp, "response", line);
	check(hint_reads == reads && hint_shares == shares,
	      "no page read or shared", line);
	check(resp != VIRTIO_DMM_RESP_ERROR || dev.counters.hint_errors == errs + 1,
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
	fk.no_share = 1;
	HINT_REFUSED(VIRTIO_DMM_RESP_NACK, Z, 1, 0);
	fk.no_share = 0;
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

/* --- requests for memory (REQ_ASK) and the grant policy --- */

static int asks_seen;
static struct dmm_ask last_ask;
static int last_flags;

static void fake_grant(void *opaque __attribute__((unused)),
		       const struct dmm_ask *a)
{
	asks_seen++;
	last_ask = *a;
}

static uint16_t ask(uint64_t size, uint64_t reason)
{
	struct virtio_dmm_req r = mkreq(VIRTIO_DMM_REQ_ASK, 0, 0);

	put64(&r.u.ask.size, size);
	put64(&r.u.ask.reason, reason);
	last_flags = dmm_handle_request(&dev, &r, sizeof(r), &last_resp);
	if (last_flags < 0)
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

	/* a VMM that takes no requests for memory: ERROR */
	setup(BOOT);
	CHECK(ask(BOOT + BS, VIRTIO_DMM_ASK_ADMIN) == VIRTIO_DMM_RESP_ERROR);

	ops.grant = fake_grant;
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
	/* without auto-grant: forwarded, the VMM hears of it */
	CHECK(ask(BOOT + BS + 2 * MiB, VIRTIO_DMM_ASK_PRESSURE) ==
	      VIRTIO_DMM_RESP_BUSY && last_flags == 0);
	CHECK(asks_seen == 1 && last_ask.size == BOOT + BS + 2 * MiB &&
	      last_ask.reason == VIRTIO_DMM_ASK_PRESSURE &&
	      last_ask.current == BOOT && last_ask.result == DMM_ASK_FORWARDED);
	CHECK(dev.requested_size == BOOT);
	/* auto-grant up to the grant limit, a valid requested_size */
	CHECK(dmm_set_grant_policy(&dev, true, BOOT + 2 * BS + 1, err,
				   sizeof(err)) == -EINVAL &&
	      !dmm_auto_grant(&dev));
	CHECK(!dmm_set_grant_policy(&dev, true, BOOT + 2 * BS, err,
				    sizeof(err)));
	CHECK(dmm_auto_grant(&dev) && dmm_grant_limit(&dev) == BOOT + 2 * BS);
	CHECK(ask(BOOT + BS + 2 * MiB, VIRTIO_DMM_ASK_PRESSURE) ==
	      VIRTIO_DMM_RESP_ACK && last_flags == DMM_CHANGED_REQUESTED);
	CHECK(last_ask.result == DMM_ASK_GRANTED &&
	      dev.requested_size == BOOT + BS + 2 * MiB);
	/* above the grant limit: refused, nothing changes */
	CHECK(ask(BOOT + 2 * BS + 2 * MiB, VIRTIO_DMM_ASK_ADMIN) ==
	      VIRTIO_DMM_RESP_NACK && last_flags == 0);
	CHECK(last_ask.result == DMM_ASK_REFUSED &&
	      dev.requested_size == BOOT + BS + 2 * MiB);
	/* an offer back is granted even above the grant limit */
	CHECK(req(VIRTIO_DMM_REQ_PLUG_SB, blk(0), 64) == VIRTIO_DMM_RESP_ACK);
	CHECK(!dmm_set_grant_policy(&dev, true, BOOT + 2 * MiB, err,
				    sizeof(err)));
	CHECK(ask(BOOT + BS - 2 * MiB, VIRTIO_DMM_ASK_ADMIN) ==
	      VIRTIO_DMM_RESP_ACK && last_ask.current == BOOT + BS);
	CHECK(dev.requested_size == BOOT + BS - 2 * MiB);
	/* grant limit 0: boot + region */
	CHECK(!dmm_set_grant_policy(&dev, true, 0, err, sizeof(err)) &&
	      dmm_grant_limit(&dev) == BOOT + REGION_SIZE);
	CHECK(ask(BOOT + REGION_SIZE, VIRTIO_DMM_ASK_ADMIN) ==
	      VIRTIO_DMM_RESP_ACK);
	CHECK(dev.counters.asks == 5 && dev.counters.asks_granted == 3);
	/* no block state changes through asks */
	CHECK(fk.populates == 1 && !fk.discards);
	dmm_dev_fini(&dev);
	memset(&dev, 0, sizeof(dev));
}

/* --- what calls return, and what the VMM allows --- */

#define F_FPR (1ULL << VIRTIO_DMM_F_FREE_PAGE_REPORTING)

/* Every call that changes a size says so, and nothing else does. */
static void t_changed_flags(void)
{
	struct virtio_dmm_req r = mkreq(VIRTIO_DMM_REQ_PLUG, blk(0), 1);
	const uint64_t a[] = { LOW(1) };
	unsigned int changed;

	setup_pages(BOOT + BS, PS);
	CHECK(dmm_handle_request(&dev, &r, sizeof(r), &last_resp) ==
	      DMM_CHANGED_PLUGGED);
	CHECK(dmm_handle_request(&dev, &r, sizeof(r), &last_resp) == 0);
	r = mkreq(VIRTIO_DMM_REQ_STATE, blk(0), 1);
	CHECK(dmm_handle_request(&dev, &r, sizeof(r), &last_resp) == 0);
	memset(page_buf, 0, sizeof(page_buf));
	put16(page_buf, VIRTIO_DMM_REQ_UNPLUG_PAGES);
	page_buf[4] = 1;
	put64(page_buf + 8, a[0]);
	CHECK(dmm_handle_page_request(&dev, page_buf, 16, &last_resp) ==
	      DMM_CHANGED_UNPLUGGED);
	CHECK(dmm_handle_page_request(&dev, page_buf, 16, &last_resp) == 0);
	CHECK(!dmm_unplug_all(&dev, &changed) &&
	      changed == (DMM_CHANGED_PLUGGED | DMM_CHANGED_UNPLUGGED));
	CHECK(!dmm_unplug_all(&dev, &changed) && !changed);
}

/*
 * Free page reports: only what the guest has, only when negotiated and
 * allowed; a range is discarded whole or not at all.
 */
static void t_report_free(void)
{
	const struct dmm_counters *st;

	setup_pages(BOOT + BS, PS);
	st = dmm_get_counters(&dev);
	CHECK(req(VIRTIO_DMM_REQ_PLUG, blk(1), 1) == VIRTIO_DMM_RESP_ACK);
	fk.discards = 0;
	/* not negotiated: refused */
	CHECK(dmm_report_free(&dev, DMM_RAM_BOOT, 0, 2 * MiB, PS) == -EINVAL);
	CHECK(st->refused_reports == 1 && !fk.boot_discards);
	dmm_set_features(&dev, F_FPR);
	CHECK(!dmm_report_free(&dev, DMM_RAM_BOOT, 2 * MiB, 2 * MiB, PS));
	CHECK(fk.boot_discards == 1 && fk.last_boot_off == 2 * MiB);
	CHECK(!dmm_report_free(&dev, DMM_RAM_REGION, BS + PS, PS, PS));
	CHECK(fk.discards == 1 && fk.last_off == BS + PS);
	CHECK(st->reported_bytes == 2 * MiB + PS);
	/* unaligned, empty, past boot RAM, unplugged, across a block, ... */
	CHECK(dmm_report_free(&dev, DMM_RAM_BOOT, PS, 2 * MiB, 2 * MiB));
	CHECK(dmm_report_free(&dev, DMM_RAM_BOOT, 0, 0, PS));
	CHECK(dmm_report_free(&dev, DMM_RAM_BOOT, BOOT - PS, 2 * PS, PS));
	CHECK(dmm_report_free(&dev, DMM_RAM_BOOT, UINT64_MAX - PS + 1, PS, PS));
	CHECK(dmm_report_free(&dev, DMM_RAM_BOOT, 0, PS, 0));
	CHECK(dmm_report_free(&dev, DMM_RAM_REGION, 0, PS, PS));
	CHECK(dmm_report_free(&dev, DMM_RAM_REGION, 2 * BS - PS, 2 * PS, PS));
	CHECK(dmm_report_free(&dev, DMM_RAM_REGION, REGION_SIZE, PS, PS));
	CHECK(dmm_report_free(&dev, DMM_RAM_NONE, 0, PS, PS));
	CHECK(st->refused_reports == 10 && fk.boot_discards == 1 &&
	      fk.discards == 1);
	/* discarding not allowed now, or failing: refused */
	fk.no_discard = 1;
	CHECK(dmm_report_free(&dev, DMM_RAM_BOOT, 0, PS, PS) == -EINVAL);
	fk.no_discard = 0;
	fk.fail_discard = 1;
	CHECK(dmm_report_free(&dev, DMM_RAM_BOOT, 0, PS, PS) == -EINVAL);
	CHECK(st->refused_reports == 12 && st->backend_errors == 1);
	CHECK(st->reported_bytes == 2 * MiB + PS && !fk.out_of_region);
}

/* Hints the driver did not negotiate are not acted on. */
static void t_hints_features(void)
{
	setup_hints(HPS);
	hint_set(0, 1 * HPS, 0);
	dmm_set_features(&dev, 0);
	HINT_REFUSED(VIRTIO_DMM_RESP_NACK, VIRTIO_DMM_HINT_ZERO, 1, 0);
	CHECK(dev.counters.hint_rejected == 1);
	dmm_set_features(&dev, F_HINTS);
	CHECK(hint_send(VIRTIO_DMM_HINT_ZERO, 1, 0) == VIRTIO_DMM_RESP_ACK);
	CHECK(hint_shares == 1);
}

/* Rules kept in one place: block size, stats interval. */
static void t_shared_rules(void)
{
	CHECK(!dmm_check_block_size(2 * MiB, 2 * MiB, err, sizeof(err)));
	CHECK(dmm_check_block_size(MiB, 2 * MiB, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "0x200000"));
	CHECK(dmm_check_block_size(3 * MiB, 0, err, sizeof(err)) == -EINVAL);
	CHECK(dmm_check_block_size(2048, 0, err, sizeof(err)) == -EINVAL);
	CHECK(!dmm_check_block_size(4096, 0, err, sizeof(err)));
	CHECK(!dmm_check_stats_interval(0, err, sizeof(err)));
	CHECK(!dmm_check_stats_interval(VIRTIO_DMM_STATS_MIN_MS, NULL, 0));
	CHECK(!dmm_check_stats_interval(VIRTIO_DMM_STATS_MAX_MS, NULL, 0));
	CHECK(dmm_check_stats_interval(VIRTIO_DMM_STATS_MIN_MS - 1, err,
				       sizeof(err)) == -EINVAL &&
	      strstr(err, "stats-interval"));
	CHECK(dmm_check_stats_interval(VIRTIO_DMM_STATS_MAX_MS + 1, NULL, 0));
}

/* The opaque device of a VMM: allocated, used, freed. */
static void t_new_free(void)
{
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = REGION_SIZE, .boot_size = BOOT,
	};
	struct dmm_dev *d = dmm_dev_new(&p, &fake_ops, &fk, err, sizeof(err));

	CHECK(d && dmm_requested_size(d) == BOOT && !dmm_plugged_size(d) &&
	      !dmm_unplugged_size(d) && dmm_sb_size(d) == BS &&
	      dmm_current_size(d) == BOOT);
	CHECK(!dmm_set_requested_size(d, BOOT + BS, err, sizeof(err)) &&
	      dmm_requested_size(d) == BOOT + BS);
	dmm_dev_free(d);
	p.block_size = 3 * MiB;
	CHECK(!dmm_dev_new(&p, &fake_ops, &fk, err, sizeof(err)) &&
	      strstr(err, "block-size"));
	p.block_size = BS;
	p.hints = true;
	CHECK(!dmm_dev_new(&p, &fake_ops, &fk, err, sizeof(err)) &&
	      strstr(err, "share"));
	dmm_dev_free(NULL);
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
		{ "populate failure: ERROR (NACK if out of memory), nothing plugged", t_populate_failure },
		{ "discard failure: ERROR, still plugged", t_discard_failure },
		{ "UNPLUG_ALL discard failure: ERROR, reset still clears", t_unplug_all_discard_failure },
		{ "requested-size rules and messages", t_requested_size_rules },
		{ "init parameter rules", t_init_rules },
		{ "init defaults", t_init_defaults },
		{ "config is little-endian at fixed offsets", t_fill_config },
		{ "wire structure sizes", t_struct_sizes },
		{ "state changes reach the VMM with their range", t_state_changed },
		{ "loaded state is checked", t_loaded_state },
		{ "loaded parameters and lengths must be the destination's", t_load_params },
		{ "loaded state: bits past the end are refused", t_loaded_stray_bits },
		{ "reported ranges must be plugged", t_range_is_plugged },
		{ "pages: unplug and plug anywhere in guest RAM", t_pages_unplug_plug },
		{ "pages: malformed lists are ERRORs and change nothing", t_pages_malformed },
		{ "pages: bad header; no page requests without pages", t_pages_bad_header },
		{ "pages: ranges of 2^order pages (F_PAGE_RANGES)", t_pages_ranges },
		{ "pages: PLUG_PAGES and PLUG beyond requested size are NACKed", t_pages_plug_nack },
		{ "pages: MOVE_PAGES keeps the size", t_pages_move },
		{ "pages: blocks with unplugged pages; UNPLUG_ALL and reset", t_pages_and_blocks },
		{ "pages: discard inhibited and discard failure", t_pages_discard },
		{ "pages: requested-size rules", t_pages_requested_rules },
		{ "pages: init parameter rules", t_pages_init_rules },
		{ "pages: config fields and loaded state", t_pages_config_and_loaded_state },
		{ "sub-blocks: plug, unplug, partial blocks, whole-block rules", t_sb_plug_unplug },
		{ "sub-blocks: malformed ranges; no requests without the feature", t_sb_malformed },
		{ "sub-blocks: runs of one state, clipped (RamDiscardManager)", t_sb_for_each_range },
		{ "sub-blocks: a fake listener told every change once (RamDiscardManager)", t_told_sync },
		{ "sub-blocks: pages inside sub-blocks; loaded state", t_sb_and_pages },
		{ "sub-blocks: init parameter rules", t_sb_init_rules },
		{ "hints: XXH64 matches the reference vectors", t_xxh64 },
		{ "hints: content verified, only matching pages shared", t_hints_verified },
		{ "hints: malformed and hostile lists are ERRORs, nothing read", t_hints_malformed },
		{ "asks: checked, then the grant policy; a grant sets requested_size", t_ask },
		{ "hints: chunks shared once, runs bounded, migrated", t_hint_chunks },
		{ "hints: not acted on unless negotiated", t_hints_features },
		{ "calls return what they changed", t_changed_flags },
		{ "free page reports: checked, then discarded", t_report_free },
		{ "block size and stats interval rules", t_shared_rules },
		{ "a VMM's device: new, getters, free", t_new_free },
	};
	unsigned int i, n = sizeof(tests) / sizeof(tests[0]);

	printf("TAP version 13\n1..%u\n", n);
	for (i = 0; i < n; i++)
		run(tests[i].name, tests[i].fn);
	dmm_dev_fini(&dev);
	printf("# %d passed, %d failed\n", test_no - failures, failures);
	return failures ? 1 : 0;
}
