// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: free page reporting.
 *
 * The kernel's page reporting framework hands us batches of free pages it
 * has taken out of the allocator; we lend them to the device on the
 * report virtqueue and wait for it to give them back.  The device discards
 * them, so a page freed in the guest stops costing the host.  Nothing can
 * write the pages while the device holds them: no write is lost.
 */
#include <linux/mm.h>
#include <linux/page_reporting.h>
#include <linux/virtio_config.h>

#include "dmm.h"

/* Called by the framework, one batch at a time, from its worker. */
static int dmm_report(struct page_reporting_dev_info *pr,
		      struct scatterlist *sg, unsigned int nents)
{
	struct virtio_dmm *vm = container_of(pr, struct virtio_dmm, report.pr_info);
	struct scatterlist *s;
	unsigned int len, i;
	u64 bytes = 0;
	int rc;

	/* The queue is empty between batches: adding cannot fail. */
	rc = virtqueue_add_inbuf(vm->report.vq, sg, nents, vm,
				 GFP_NOWAIT | __GFP_NOWARN);
	if (WARN_ON_ONCE(rc))
		return rc;
	virtqueue_kick(vm->report.vq);
	wait_event(vm->report.done_wq, virtqueue_get_buf(vm->report.vq, &len));

	for_each_sg(sg, s, nents, i)
		bytes += s->length;
	atomic64_add(bytes, &vm->report.bytes);
	return 0;
}

/*
 * Called before features are negotiated.  With page poisoning on, the
 * kernel fills each free page with a pattern and checks it when the page
 * is allocated again; a reported page comes back from the device zeroed,
 * which that check calls memory corruption.  Free pages zeroed by
 * init_on_free are no problem: zero is what they hold.
 */
void dmm_report_validate(struct virtio_device *vdev)
{
	if (!virtio_has_feature(vdev, VIRTIO_DMM_F_FREE_PAGE_REPORTING) ||
	    !page_poisoning_enabled_static())
		return;
	__virtio_clear_bit(vdev, VIRTIO_DMM_F_FREE_PAGE_REPORTING);
	dev_info(&vdev->dev, "free page reporting off: page poisoning is on and the device zeroes reported pages\n");
}

/*
 * Start reporting if the device offers it.  Only one driver in the system
 * can report free pages (virtio_balloon may): if another one does, we go
 * on without, and say so.
 */
void dmm_report_init(struct virtio_dmm *vm)
{
	int rc;

	if (!vm->report.vq)
		return;
	if (virtqueue_get_vring_size(vm->report.vq) < PAGE_REPORTING_CAPACITY) {
		dev_warn(&vm->vdev->dev, "report queue of %u entries is too small for page reporting (%u)\n",
			 virtqueue_get_vring_size(vm->report.vq),
			 PAGE_REPORTING_CAPACITY);
		return;
	}
	vm->report.pr_info.report = dmm_report;
	rc = page_reporting_register(&vm->report.pr_info);
	if (rc) {
		dev_warn(&vm->vdev->dev, "free page reporting not started (another driver reports free pages?): %d\n",
			 rc);
		return;
	}
	vm->report.on = true;
}

void dmm_report_exit(struct virtio_dmm *vm)
{
	if (vm->report.on)
		page_reporting_unregister(&vm->report.pr_info);
	vm->report.on = false;
}
