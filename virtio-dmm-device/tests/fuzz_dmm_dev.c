// SPDX-License-Identifier: BSD-3-Clause
/*
 * Fuzz target for the virtio-dmm device library.
 *
 * The input is a script of operations on a 16-block device with page
 * requests: block and page requests of arbitrary bytes and lengths,
 * hints, free page reports, requested-size changes, UNPLUG_ALL,
 * grant-policy, busy and backend-failure toggles.  After every operation
 * the invariants of the device are checked (its image must load into
 * another device); a violation aborts.
 *
 * Built with -fsanitize=fuzzer it is a libFuzzer target; built with
 * -DFUZZ_STANDALONE it runs seeded random scripts for a time budget
 * (for CI, where no libFuzzer is needed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmm_internal.h"

#define BS		(2ULL << 20)
#define NB		16
#define REGION_ADDR	(1ULL << 32)
#define BOOT		(64ULL << 20)
#define PS		4096ULL
#define SBS		(BS / 4)

struct fz {
	int fail_populate, fail_discard;
	int busy, no_discard, no_share;	/* the answers of the may_* ops */
	const struct dmm_dev *d;	/* to check what hints may touch */
};

static void fz_assert(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "invariant violated: %s\n", what);
		abort();
	}
}

static int region_page_discards;
static int hint_shares;		/* pages hints passed on */
static int asks_seen;		/* asks that reached the policy */
static int mangled_taken, mangled_refused;	/* damaged images */

/* Discards: pages (page requests, reports) or whole sub-blocks. */
static void fz_range(uint64_t off, uint64_t len)
{
	fz_assert(off <= NB * BS && len <= NB * BS - off,
		  "backend call inside the region");
	fz_assert(len && off % PS == 0 && len % PS == 0,
		  "backend call page-aligned");
	if (len == PS)
		region_page_discards++;
}

static int fz_populate(void *opaque, uint64_t off, uint64_t len)
{
	fz_range(off, len);
	fz_assert(off % SBS == 0 && len % SBS == 0, "populate of sub-blocks");
	return ((struct fz *)opaque)->fail_populate ? -ENOMEM : 0;
}

static int fz_discard(void *opaque, uint64_t off, uint64_t len)
{
	fz_range(off, len);
	return ((struct fz *)opaque)->fail_discard ? -EIO : 0;
}

static int fz_boot_range(void *opaque, uint64_t gpa, uint64_t len,
			 uint64_t *offset)
{
	(void)opaque;
	*offset = gpa;
	return gpa < BOOT && len <= BOOT - gpa ? 0 : -1;
}

static int fz_discard_boot(void *opaque, uint64_t off, uint64_t len)
{
	fz_assert(off < BOOT && len <= BOOT - off, "boot discard in boot RAM");
	fz_assert(len && off % PS == 0 && len % PS == 0, "boot discard aligned");
	return ((struct fz *)opaque)->fail_discard ? -EIO : 0;
}

/* A hint may only read or share RAM the guest has now. */
static void fz_hint_page(void *opaque, bool boot, uint64_t off)
{
	const struct dmm_dev *d = ((struct fz *)opaque)->d;

	fz_assert(off % PS == 0, "hinted page aligned");
	if (boot) {
		fz_assert(off < BOOT, "hinted boot page in boot RAM");
		fz_assert(!dmm_bit_test(d->boot_pages, off / PS),
			  "hinted boot page plugged");
		return;
	}
	fz_assert(off < NB * BS, "hinted page in the region");
	fz_assert(dmm_bit_test(d->sb_plugged, off / SBS),
		  "hinted page in a plugged sub-block");
	fz_assert(!dmm_bit_test(d->region_pages, off / PS),
		  "hinted page plugged");
}

static const void *fz_page_ptr(void *opaque, bool boot, uint64_t off)
{
	static const uint64_t zero[PS / 8];

	fz_hint_page(opaque, boot, off);
	return zero;
}

/* A chunk of RAM the guest has, whole (the last may be short). */
static int fz_share(void *opaque, bool boot, uint64_t off, uint64_t len)
{
	uint64_t size = boot ? BOOT : NB * BS;

	(void)opaque;
	fz_assert(off % DMM_HINT_CHUNK == 0 && len && len <= DMM_HINT_CHUNK &&
		  off < size && len <= size - off, "shared chunk in RAM");
	hint_shares++;
	return 0;
}

/* The grant policy hears only of valid asks, and a grant took effect. */
static void fz_grant(void *opaque, const struct dmm_ask *ask)
{
	const struct dmm_dev *d = ((struct fz *)opaque)->d;

	fz_assert(!(ask->reason & ~(uint64_t)VIRTIO_DMM_ASK_REASONS),
		  "asks reach the policy with known reasons only");
	fz_assert(!dmm_check_requested_size(d, ask->size, NULL, 0),
		  "asks reach the policy with valid sizes only");
	fz_assert(ask->result != DMM_ASK_GRANTED ||
		  dmm_requested_size(d) == ask->size, "a grant sets the size");
	asks_seen++;
}

static bool fz_may_change_state(void *opaque)
{
	return !((struct fz *)opaque)->busy;
}

static bool fz_may_discard(void *opaque)
{
	return !((struct fz *)opaque)->no_discard;
}

static bool fz_may_share(void *opaque)
{
	return !((struct fz *)opaque)->no_share;
}

static const struct dmm_backend_ops fz_ops = {
	.populate = fz_populate,
	.discard = fz_discard,
	.boot_range = fz_boot_range,
	.discard_boot = fz_discard_boot,
	.page_ptr = fz_page_ptr,
	.share = fz_share,
	.grant = fz_grant,
	.may_change_state = fz_may_change_state,
	.may_discard = fz_may_discard,
	.may_share = fz_may_share,
};

/* Another device with the same parameters: the migration check. */
static struct dmm_dev fz_dst;
static uint8_t fz_image[1 << 16];
/* A third, that loads damaged images. */
static struct dmm_dev fz_mangled;

static uint64_t fz_weight(const uint8_t *bitmap, uint64_t nb)
{
	uint64_t i, n = 0;

	uint64_t w;

	for (i = 0; i + 64 <= nb; i += 64) {
		memcpy(&w, bitmap + i / 8, 8);
		n += (uint64_t)__builtin_popcountll(w);
	}
	for (; i < nb; i++)
		n += dmm_bit_test(bitmap, i);
	return n;
}

static void check_invariants(const struct dmm_dev *d)
{
	uint64_t i, n = 0;

	for (i = 0; i < d->nb_blocks; i++) {
		uint64_t k = 0, j;

		for (j = i * (BS / SBS); j < (i + 1) * (BS / SBS); j++)
			k += dmm_bit_test(d->sb_plugged, j);

		fz_assert(dmm_block_state(d, i) ==
			  (k == BS / SBS ? DMM_BLOCK_PLUGGED :
			   k ? DMM_BLOCK_PARTIAL : DMM_BLOCK_UNPLUGGED),
			  "block state summarises its sub-blocks");
	}
	n = fz_weight(d->sb_plugged, d->nb_sbs);
	fz_assert(n * SBS == d->plugged_size, "plugged_size matches sub-blocks");
	fz_assert(dmm_state_size(d) <= sizeof(fz_image), "image fits");
	dmm_save(d, fz_image);
	fz_assert(!dmm_load(&fz_dst, fz_image, dmm_state_size(d), NULL, 0),
		  "state passes the migration check");
	n = fz_weight(d->boot_pages, d->nb_boot_pages) +
	    fz_weight(d->region_pages, d->nb_region_pages);
	fz_assert(n * PS == d->unplugged_size, "unplugged_size matches bits");
	for (i = 0; i < d->nb_blocks; i++)
		if (dmm_block_state(d, i) == DMM_BLOCK_UNPLUGGED)
			fz_assert(!fz_weight(d->region_pages + i * (BS / PS / 8),
					     BS / PS), "no pages in unplugged blocks");
	fz_assert(d->plugged_size <= NB * BS, "plugged_size within region");
	fz_assert(!dmm_check_requested_size(d, d->requested_size, NULL, 0),
		  "requested_size valid");
}

/* Build a request from fuzz bytes, biased toward the region. */
static size_t make_req(const uint8_t *p, size_t n, uint8_t *buf)
{
	struct virtio_dmm_req *r = (struct virtio_dmm_req *)buf;
	size_t len = sizeof(*r);
	uint64_t addr;

	memset(buf, 0, 64);
	if (n < 4)
		return 0;
	r->type = (uint16_t)(p[0] % 10);		/* includes bad types */
	/* mostly inside the region, sometimes around or far outside it */
	addr = p[1] & 0x80 ? REGION_ADDR + (uint64_t)(int8_t)p[1] * BS :
	       REGION_ADDR + (uint64_t)(p[1] % 20) * BS - 2 * BS;
	if (r->type >= VIRTIO_DMM_REQ_PLUG_SB)		/* sub-block units */
		addr += (uint64_t)(p[1] & 3) * SBS;
	if (p[2] & 1)
		addr += (uint64_t)p[2] << 12;		/* unaligned */
	r->u.plug.addr = addr;
	r->u.plug.nb_blocks = p[3] & 0x80 ? ~0ULL - p[3] :
			      p[3] & 0x40 ? p[3] % 20 : 1;
	if (r->type == VIRTIO_DMM_REQ_ASK) {		/* a size near the range */
		r->u.ask.size = BOOT - 8 * PS + (uint64_t)(p[1] % 20) * SBS +
				(uint64_t)(p[2] & 7) * PS + (p[2] & 8);
		r->u.ask.reason = p[3] & 7;		/* 4: unknown bit */
	}
	if (n > 4 && p[4] == 0xff)
		r->padding[0] = 1;
	if (n > 5 && p[5] < 16)
		len = p[5];				/* short */
	/* Host is little-endian where this runs; fields written as-is. */
	return len;
}

/*
 * Build a page request: a few pages near the start of boot RAM or of the
 * region, so that states collide, with bad counts, lengths and addresses.
 */
static size_t make_page_req(const uint8_t *p, size_t n, uint8_t *buf)
{
	struct virtio_dmm_page_req *r = (struct virtio_dmm_page_req *)buf;
	uint32_t nb, k;
	uint64_t a;

	memset(buf, 0, 8 + 8 * 8);
	if (n < 3)
		return 0;
	r->type = (uint16_t)(3 + p[0] % 5);		/* includes bad types */
	nb = p[1] % 10;					/* 0 and 9 too many */
	r->nb_pages = p[1] & 0x80 ? 0xffffffffu : nb;
	if (p[0] & 0x80)				/* ranges, 11 too big */
		r->order = (uint16_t)((p[0] >> 3) % 12);
	for (k = 0; k < nb && k < 8; k++) {
		uint8_t x = (uint8_t)(p[2] + k * 37);

		a = (x & 1 ? REGION_ADDR + (x >> 5 & 3) * BS : BOOT - 16 * PS) +
		    (uint64_t)(x >> 1 & 15) * PS;
		if (r->order && x & 2)			/* mostly aligned */
			a &= ~((PS << r->order) - 1);
		if (x == 0x41)
			a += 8;				/* unaligned */
		((uint64_t *)(buf + 8))[k] = a;
	}
	return p[2] & 0x40 ? 8 + 8 * (nb < 8 ? nb : 8) :
	       (size_t)(p[2] & 0x3f) % (8 + 8 * 8);
}

static void run_page_req(struct dmm_dev *d, const uint8_t *p, size_t n)
{
	uint64_t before = d->unplugged_size, plugged = d->plugged_size;
	struct virtio_dmm_resp resp;
	uint8_t buf[8 + 8 * 8];
	size_t len = make_page_req(p, n, buf);
	int rc = dmm_handle_page_request(d, buf, len, &resp);

	if (len < sizeof(struct virtio_dmm_page_req)) {
		fz_assert(rc == -EINVAL, "short page request is -EINVAL");
	} else {
		fz_assert(rc >= 0, "page request answered");
		fz_assert(resp.type != VIRTIO_DMM_RESP_BUSY, "pages never BUSY");
		if (resp.type != VIRTIO_DMM_RESP_ACK)
			fz_assert(d->unplugged_size == before,
				  "refused page request changes nothing");
		if (resp.type == VIRTIO_DMM_RESP_ACK &&
		    d->unplugged_size < before)
			fz_assert(dmm_current_size(d) <= d->requested_size,
				  "ACKed PLUG_PAGES within target");
	}
	fz_assert(d->plugged_size == plugged, "page requests keep blocks");
}

/* A hint request over the same few pages, with the same kinds of damage. */
static void run_hint_req(struct dmm_dev *d, const uint8_t *p, size_t n)
{
	uint64_t unplugged = d->unplugged_size, plugged = d->plugged_size;
	uint8_t buf[8 + 8 * 8], hbuf[8 + 16 * 8];
	struct virtio_dmm_resp resp;
	size_t len = make_page_req(p, n, buf), k;
	int rc;

	/* reuse the page list: each address becomes a hint */
	memcpy(hbuf, buf, 8);
	((uint16_t *)hbuf)[0] = (uint16_t)(buf[0] % 3);	/* 2 is bad */
	for (k = 0; k < 8; k++) {
		memcpy(hbuf + 8 + 16 * k, buf + 8 + 8 * k, 8);
		memset(hbuf + 16 + 16 * k, n > 3 && (p[3] & 1) ? 0xff : 0, 8);
	}
	len = len < 8 ? len : 8 + 2 * (len - 8);
	rc = dmm_handle_hint_request(d, hbuf, len, &resp);
	if (len < sizeof(struct virtio_dmm_hint_req))
		fz_assert(rc == -EINVAL, "short hint request is -EINVAL");
	else
		fz_assert(rc == 0 && resp.type != VIRTIO_DMM_RESP_BUSY,
			  "hint answered, changing no size");
	fz_assert(d->unplugged_size == unplugged && d->plugged_size == plugged,
		  "hints change no state");
}

/*
 * A free page report of a few pages near the start of boot RAM or of the
 * region: discarded only if all of it is RAM the guest has.
 */
static void run_report(struct dmm_dev *d, const uint8_t *p, size_t n)
{
	uint64_t reported = d->counters.reported_bytes, off, len;
	enum dmm_ram ram;

	if (n < 2)
		return;
	ram = (enum dmm_ram)(p[0] % 3);
	off = (uint64_t)(p[0] >> 2) * SBS / 4 + (p[1] & 0x80 ? 8 : 0);
	len = (uint64_t)(p[1] & 0x7f) * PS;
	if (!dmm_report_free(d, ram, off, len, PS)) {
		fz_assert(d->counters.reported_bytes == reported + len,
			  "report counted");
		fz_assert(ram == DMM_RAM_BOOT ? off + len <= BOOT :
			  dmm_range_is_plugged(d, off, len),
			  "reported range is the guest's");
	}
}

static void check_invariants(const struct dmm_dev *d);

/*
 * A migration image with one byte damaged: refused, or taken and then as
 * consistent as any device's state.
 */
static void run_mangled_load(const struct dmm_dev *d, const uint8_t *p,
			     size_t n)
{
	size_t len = dmm_state_size(d), at;

	if (n < 3)
		return;
	dmm_save(d, fz_image);
	at = ((size_t)p[0] << 8 | p[1]) % len;
	fz_image[at] ^= p[2] ? p[2] : 1;
	if (dmm_load(&fz_mangled, fz_image, len, NULL, 0)) {
		mangled_refused++;
		return;
	}
	mangled_taken++;
	check_invariants(&fz_mangled);
}

static void run_script(const uint8_t *data, size_t size)
{
	struct dmm_params p = {
		.block_size = BS, .region_addr = REGION_ADDR,
		.region_size = NB * BS, .boot_size = BOOT, .page_size = PS,
		.sub_block_size = SBS, .hints = true,
	};
	struct virtio_dmm_resp resp;
	uint8_t buf[64];
	struct dmm_dev d;
	struct fz fz = { 0 };
	size_t i = 0, len;
	unsigned int changed;
	uint64_t before;
	int rc;

	if (dmm_dev_init(&d, &p, &fz_ops, &fz, NULL, 0) ||
	    dmm_dev_init(&fz_dst, &p, &fz_ops, &fz, NULL, 0) ||
	    dmm_dev_init(&fz_mangled, &p, &fz_ops, &fz, NULL, 0))
		abort();
	/* the input decides whether duplicate hints were negotiated */
	dmm_set_features(&d, 1ULL << VIRTIO_DMM_F_PAGE_RANGES |
			 1ULL << VIRTIO_DMM_F_HINTS |
			 1ULL << VIRTIO_DMM_F_FREE_PAGE_REPORTING |
			 (size && (data[0] & 1) ? 1ULL << VIRTIO_DMM_F_HINTS_DUP :
			  0));
	fz.d = &d;
	while (i < size) {
		uint8_t op = data[i++];

		switch (op & 7) {
		case 3:			/* a page request, or hints */
			if (op & 0x80)
				run_hint_req(&d, data + i, size - i);
			else
				run_page_req(&d, data + i, size - i);
			i += 3;
			break;
		case 0: case 1: case 2:			/* a request */
			len = make_req(data + i, size - i, buf);
			i += 6;
			before = d.plugged_size;
			rc = dmm_handle_request(&d, buf, len, &resp);
			if (len < sizeof(struct virtio_dmm_req)) {
				fz_assert(rc == -EINVAL, "short is -EINVAL");
				fz_assert(d.plugged_size == before,
					  "short changes nothing");
			} else {
				fz_assert(rc >= 0, "answered");
				if (resp.type == VIRTIO_DMM_RESP_ACK &&
				    ((struct virtio_dmm_req *)buf)->type ==
				    VIRTIO_DMM_REQ_PLUG)
					fz_assert(dmm_current_size(&d) <=
						  d.requested_size,
						  "ACKed PLUG within target");
				if (resp.type != VIRTIO_DMM_RESP_ACK)
					fz_assert(d.plugged_size == before,
						  "refused changes nothing");
			}
			break;
		case 4:					/* new size */
			if (i < size)
				dmm_set_requested_size(&d, BOOT - 8 * PS +
					(uint64_t)(data[i] % 20) * BS +
					(uint64_t)(data[i] >> 5) * PS +
					(op & 0x80 ? 1 : 0), NULL, 0),
				i++;
			break;
		case 5:
			if (op & 0x80) {
				run_report(&d, data + i, size - i);
				i += 2;
				break;
			}
			dmm_unplug_all(&d, &changed);
			fz_assert(!d.plugged_size && !d.unplugged_size,
				  "unplug-all empties");
			break;
		case 6:
			fz.busy = !fz.busy;
			fz.no_discard = !!(op & 0x40);
			fz.no_share = !!(op & 0x20);
			dmm_set_grant_policy(&d, op & 0x10, op & 0x80 ?
					     BOOT + (uint64_t)(op & 8) * SBS : 0,
					     NULL, 0);
			break;
		case 7:
			if (op & 0x80) {
				run_mangled_load(&d, data + i, size - i);
				i += 3;
				break;
			}
			fz.fail_populate = !!(op & 0x10);
			fz.fail_discard = !!(op & 0x20);
			break;
		}
		check_invariants(&d);
	}
	dmm_dev_fini(&d);
	dmm_dev_fini(&fz_dst);
	dmm_dev_fini(&fz_mangled);
}

#ifdef FUZZ_STANDALONE
int main(int argc, char **argv)
{
	unsigned int seconds = argc > 1 ? (unsigned int)atoi(argv[1]) : 20;
	unsigned long long runs = 0;
	time_t end = time(NULL) + seconds;
	uint8_t data[512];
	unsigned int seed = 1;

	srand(seed);
	while (time(NULL) < end) {
		size_t n = (size_t)rand() % sizeof(data);

		for (size_t k = 0; k < n; k++)
			data[k] = (uint8_t)rand();
		run_script(data, n);
		runs++;
	}
	printf("fuzz-smoke: %llu scripts in %u s (seed %u), %d region page discards, %d hinted chunks shared, %d asks decided, %d damaged images taken and %d refused, no invariant violated\n",
	       runs, seconds, seed, region_page_discards, hint_shares, asks_seen,
	       mangled_taken, mangled_refused);
	return 0;
}
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run_script(data, size);
	return 0;
}
#endif
