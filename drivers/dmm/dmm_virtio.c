// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: the device protocol.
 *
 * One send function per request type; each maps the device's answer to one
 * errno so that the control loop can pick a policy:
 *   ACK 0, NACK -ENOSPC, BUSY -ETXTBSY (back off), ERROR -EIO.
 * -EAGAIN is the driver's own "retry now" (the configuration changed).
 */
#include <linux/acpi.h>
#include <linux/log2.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/scatterlist.h>
#include <linux/virtio_config.h>

#include "dmm.h"

/*
 * The device used a buffer of @vq: wake whoever waits on that queue.  Each
 * queue has one request in flight and its own wait queue.
 */
static void dmm_vq_done(struct virtqueue *vq)
{
	struct virtio_dmm *vm = vq->vdev->priv;
	wait_queue_head_t *wq[] = {
		[VIRTIO_DMM_VQ_REQUEST] = &vm->host_resp,
		[VIRTIO_DMM_VQ_REPORT] = &vm->report.done_wq,
		[VIRTIO_DMM_VQ_PAGE] = &vm->pages.resp_wq,
		[VIRTIO_DMM_VQ_HINT] = &vm->hints.resp_wq,
		[VIRTIO_DMM_VQ_STATS] = &vm->stats.resp_wq,
	};

	if (!WARN_ON_ONCE(vq->index >= ARRAY_SIZE(wq)))
		wake_up(wq[vq->index]);
}

/*
 * Queue indices are fixed: requests 0, reports 1, pages 2.  The report
 * queue is set up when reporting is negotiated or when the page queue
 * after it is needed; vm->report.vq is set only if we report.
 */
int dmm_find_vqs(struct virtio_dmm *vm)
{
	struct virtqueue_info info[] = {
		[VIRTIO_DMM_VQ_REQUEST] = { "requests", dmm_vq_done },
		[VIRTIO_DMM_VQ_REPORT] = { "reports", dmm_vq_done },
		[VIRTIO_DMM_VQ_PAGE] = { "pages", dmm_vq_done },
		[VIRTIO_DMM_VQ_HINT] = { "hints", dmm_vq_done },
		[VIRTIO_DMM_VQ_STATS] = { "stats", dmm_vq_done },
	};
	struct virtqueue *vqs[ARRAY_SIZE(info)];
	bool report = IS_ENABLED(CONFIG_PAGE_REPORTING) &&
		      virtio_has_feature(vm->vdev,
					 VIRTIO_DMM_F_FREE_PAGE_REPORTING);
	bool hints = virtio_has_feature(vm->vdev, VIRTIO_DMM_F_HINTS);
	bool stats = virtio_has_feature(vm->vdev, VIRTIO_DMM_F_STATS);
	unsigned int nvqs = stats ? 5 : hints ? 4 : vm->pages.on ? 3 :
			    report ? 2 : 1;
	int rc;

	rc = dmm_virtio_find_vqs(vm->vdev, nvqs, vqs, info);
	if (rc) {
		dev_err(&vm->vdev->dev, "finding %u virtqueues failed: %d\n",
			nvqs, rc);
		return rc;
	}
	vm->vq = vqs[VIRTIO_DMM_VQ_REQUEST];
	vm->report.vq = report ? vqs[VIRTIO_DMM_VQ_REPORT] : NULL;
	vm->pages.vq = vm->pages.on ? vqs[VIRTIO_DMM_VQ_PAGE] : NULL;
	vm->hints.vq = hints ? vqs[VIRTIO_DMM_VQ_HINT] : NULL;
	vm->stats.vq = stats ? vqs[VIRTIO_DMM_VQ_STATS] : NULL;
	return 0;
}

/*
 * Put @req (@req_len bytes) and a response buffer on @vq, kick, and sleep
 * on @wq until the device has used them.  Returns the response type, or
 * -errno if the request could not be queued.  The caller keeps one request
 * in flight per queue.  Request, page and debugfs requests all go here.
 */
int dmm_vq_exchange(struct virtqueue *vq, wait_queue_head_t *wq, void *req,
		    size_t req_len, struct virtio_dmm_resp *resp)
{
	struct scatterlist sg_req, sg_resp;
	struct scatterlist *sgs[2] = { &sg_req, &sg_resp };
	unsigned int len;
	int rc;

	sg_init_one(&sg_req, req, req_len);
	sg_init_one(&sg_resp, resp, sizeof(*resp));
	rc = virtqueue_add_sgs(vq, sgs, 1, 1, resp, GFP_KERNEL);
	if (rc < 0)
		return rc;
	virtqueue_kick(vq);
	wait_event(*wq, virtqueue_get_buf(vq, &len));
	return le16_to_cpu(resp->type);
}

/* One errno per answer: ACK 0, NACK -ENOSPC, BUSY -ETXTBSY, ERROR -EIO. */
int dmm_resp_errno(int type)
{
	switch (type) {
	case VIRTIO_DMM_RESP_ACK:
		return 0;
	case VIRTIO_DMM_RESP_NACK:
		return -ENOSPC;
	case VIRTIO_DMM_RESP_BUSY:
		return -ETXTBSY;
	default:
		return type < 0 ? type : -EIO;
	}
}

/*
 * Send vm->req and wait for the answer in vm->resp.
 * Must be called with hotplug_mutex held: one request is in flight.
 */
static int dmm_send_request(struct virtio_dmm *vm)
{
	lockdep_assert_held(&vm->hotplug_mutex);
	return dmm_resp_errno(dmm_vq_exchange(vm->vq, &vm->host_resp, &vm->req,
					      sizeof(vm->req), &vm->resp));
}

/* A range request: PLUG, UNPLUG, STATE, PLUG_SB, UNPLUG_SB. */
int dmm_send_range(struct virtio_dmm *vm, u16 type, u64 addr, u64 nb_blocks)
{
	memset(&vm->req, 0, sizeof(vm->req));
	vm->req.type = cpu_to_le16(type);
	vm->req.u.plug.addr = cpu_to_le64(addr);
	vm->req.u.plug.nb_blocks = cpu_to_le64(nb_blocks);
	return dmm_send_request(vm);
}

/* REQ_ASK: 0 granted, -ENOSPC refused, -ETXTBSY passed on, -EIO invalid. */
int dmm_send_ask(struct virtio_dmm *vm, u64 size, u64 reason)
{
	memset(&vm->req, 0, sizeof(vm->req));
	vm->req.type = cpu_to_le16(VIRTIO_DMM_REQ_ASK);
	vm->req.u.ask.size = cpu_to_le64(size);
	vm->req.u.ask.reason = cpu_to_le64(reason);
	return dmm_send_request(vm);
}

int dmm_send_plug(struct virtio_dmm *vm, u64 addr, u64 nb_blocks)
{
	int rc = dmm_send_range(vm, VIRTIO_DMM_REQ_PLUG, addr, nb_blocks);

	if (rc && rc != -ENOSPC && rc != -ETXTBSY)
		dev_err(&vm->vdev->dev, "PLUG 0x%llx+%llu blocks failed: %d\n",
			addr, nb_blocks, rc);
	return rc;
}

int dmm_send_unplug(struct virtio_dmm *vm, u64 addr, u64 nb_blocks)
{
	int rc = dmm_send_range(vm, VIRTIO_DMM_REQ_UNPLUG, addr, nb_blocks);

	if (rc && rc != -ETXTBSY)
		dev_err(&vm->vdev->dev, "UNPLUG 0x%llx+%llu blocks failed: %d\n",
			addr, nb_blocks, rc);
	return rc;
}

int dmm_send_unplug_all(struct virtio_dmm *vm)
{
	int rc;

	memset(&vm->req, 0, sizeof(vm->req));
	vm->req.type = cpu_to_le16(VIRTIO_DMM_REQ_UNPLUG_ALL);
	rc = dmm_send_request(vm);
	if (rc && rc != -ETXTBSY)
		dev_err(&vm->vdev->dev, "UNPLUG_ALL failed: %d\n", rc);
	return rc;
}

void dmm_read_requested_size(struct virtio_dmm *vm)
{
	u64 size;

	virtio_cread_le(vm->vdev, struct virtio_dmm_config, requested_size,
			&size);
	WRITE_ONCE(vm->requested_size, size);
}

/* Bytes the device counts as plugged blocks or unplugged pages. */
u64 dmm_read_device_changed_size(struct virtio_dmm *vm)
{
	u64 plugged, unplugged = 0;

	virtio_cread_le(vm->vdev, struct virtio_dmm_config, plugged_size,
			&plugged);
	if (vm->pages.on)
		virtio_cread_le(vm->vdev, struct virtio_dmm_config,
				unplugged_size, &unplugged);
	return plugged + unplugged;
}

static int dmm_node_of(struct virtio_dmm *vm)
{
	int nid = NUMA_NO_NODE;
	u16 node_id;

	if (virtio_has_feature(vm->vdev, VIRTIO_DMM_F_NODE_ID)) {
		virtio_cread_le(vm->vdev, struct virtio_dmm_config, node_id,
				&node_id);
#if defined(CONFIG_ACPI_NUMA)
		nid = pxm_to_node(node_id);
#endif
	}
	if (nid == NUMA_NO_NODE)
		nid = memory_add_physaddr_to_nid(vm->region_addr);
	return nid;
}

/*
 * Read the fixed configuration and check every value before anything is
 * reserved or added: a device that lies gets a clear message and no memory.
 */
int dmm_read_config(struct virtio_dmm *vm)
{
	struct device *dev = &vm->vdev->dev;
	const struct range pluggable = mhp_get_pluggable_range(true);
	u64 mb_size = memory_block_size_bytes();

	virtio_cread_le(vm->vdev, struct virtio_dmm_config, block_size,
			&vm->block_size);
	virtio_cread_le(vm->vdev, struct virtio_dmm_config, region_addr,
			&vm->region_addr);
	virtio_cread_le(vm->vdev, struct virtio_dmm_config, region_size,
			&vm->region_size);
	virtio_cread_le(vm->vdev, struct virtio_dmm_config, boot_size,
			&vm->boot_size);
	dmm_read_requested_size(vm);

	if (!is_power_of_2(vm->block_size) || vm->block_size < mb_size) {
		dev_err(dev, "block size 0x%llx is not a power of two of at least the memory block size 0x%llx\n",
			vm->block_size, mb_size);
		return -EINVAL;
	}
	if (!vm->region_size || !IS_ALIGNED(vm->region_size, vm->block_size) ||
	    !IS_ALIGNED(vm->region_addr, vm->block_size)) {
		dev_err(dev, "region 0x%llx size 0x%llx is not aligned to the block size 0x%llx\n",
			vm->region_addr, vm->region_size, vm->block_size);
		return -EINVAL;
	}
	if (vm->region_addr + vm->region_size < vm->region_addr ||
	    vm->region_addr < pluggable.start ||
	    vm->region_addr + vm->region_size - 1 > pluggable.end) {
		dev_err(dev, "region 0x%llx size 0x%llx is outside the pluggable range 0x%llx-0x%llx\n",
			vm->region_addr, vm->region_size, pluggable.start,
			pluggable.end);
		return -EINVAL;
	}
	if (vm->region_size / vm->block_size > INT_MAX) {
		dev_err(dev, "region of 0x%llx blocks is too large\n",
			vm->region_size / vm->block_size);
		return -EINVAL;
	}
	vm->nb_blocks = vm->region_size / vm->block_size;
	vm->nid = dmm_node_of(vm);
	return 0;
}
