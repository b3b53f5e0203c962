// SPDX-License-Identifier: BSD-3-Clause
/*
 * How long the library takes for the largest page request a guest can
 * send: MOVE_PAGES with DMM_MAX_PAGES_PER_REQ entries, a request QEMU
 * handles under its big lock.  A figure, not a test:
 *
 *   make -C virtio-dmm-device bench
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dmm_internal.h"

#define MiB		(1ULL << 20)
#define PS		4096ULL
#define PAIRS		(DMM_MAX_PAGES_PER_REQ / 2)
#define ITERS		2000

static int nop(void *opaque, uint64_t off, uint64_t len)
{
	return 0;
}

/* Boot RAM is [0, 1 GiB) at its own address. */
static int boot_range(void *opaque, uint64_t gpa, uint64_t len, uint64_t *off)
{
	if (gpa >= 1024 * MiB || len > 1024 * MiB - gpa)
		return -1;
	*off = gpa;
	return 0;
}

static const struct dmm_backend_ops ops = {
	.populate = nop,
	.discard = nop,
	.boot_range = boot_range,
	.discard_boot = nop,
};

static struct dmm_dev dev;
static uint8_t req[8 + 8 * DMM_MAX_PAGES_PER_REQ];

static uint16_t send(uint16_t type, uint32_t nb)
{
	struct virtio_dmm_resp resp;

	memcpy(req, &type, 2);
	memcpy(req + 4, &nb, 4);
	dmm_handle_page_request(&dev, req, sizeof(req), &resp);
	return resp.type;
}

int main(void)
{
	const struct dmm_params p = {
		.block_size = 128 * MiB, .region_addr = 4096 * MiB,
		.region_size = 1024 * MiB, .boot_size = 1024 * MiB,
		.page_size = PS,
	};
	uint64_t *a = (uint64_t *)(req + 8);
	struct timespec t0, t1;
	char err[256];
	int i, k;

	if (dmm_dev_init(&dev, &p, &ops, NULL, err, sizeof(err)) ||
	    dmm_set_requested_size(&dev, 512 * MiB, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* every other page of 4 MiB unplugged ... */
	for (i = 0; i < PAIRS; i++)
		a[i] = 16 * MiB + i * 2 * PS;
	if (send(VIRTIO_DMM_REQ_UNPLUG_PAGES, PAIRS) != VIRTIO_DMM_RESP_ACK)
		return 1;
	/* ... then moved to its neighbour and back */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (k = 0; k < ITERS; k++) {
		for (i = 0; i < PAIRS; i++) {
			a[2 * i] = 16 * MiB + i * 2 * PS + (k % 2) * PS;
			a[2 * i + 1] = a[2 * i] ^ PS;
		}
		if (send(VIRTIO_DMM_REQ_MOVE_PAGES, 2 * PAIRS) !=
		    VIRTIO_DMM_RESP_ACK) {
			fprintf(stderr, "MOVE_PAGES %d refused\n", k);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.1f us per %d-entry MOVE_PAGES\n",
	       ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) /
	       ITERS / 1e3, 2 * PAIRS);
	return 0;
}
