// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: free page reporting.
 *
 * The kernel's page reporting framework hands us batches of free pages it
 * has taken out of the allocator; we lend them to the device on the
 * report virtqueue and wait for it to give them back.  The device discards
 * them, so a page freed in the guest stops costing the host.  Nothing can
 * write the pages while the device holds them: no write is lost.
 *
 * Pace: the framework reports at most 1/16 of each free list per pass (at
 * least one batch) and waits two seconds before the next pass, with no
 * knob for either in its page_reporting_dev_info.  After a program frees a
 * gigabyte that is eight passes, 16 seconds before the host has it back.
 * While passes keep finding full batches (a large free), the driver starts
 * the next pass DMM_REPORT_KICK_MS after a full batch instead, by
 * re-arming the framework's own delayed work; a pass that finds little
 * ends idle and the framework's own delay applies again, so small frees
 * are still left to settle before they are reported.
 */
#include <linux/mm.h>
#include <linux/page_reporting.h>
#include <linux/virtio_config.h>

#include "dmm.h"

/* After a full batch, start the framework's next pass this soon. */
#define DMM_REPORT_KICK_MS	100

/*
 * The framework queued its next pass (its work is pending): run it now.
 * Not while reporting is being stopped: the pass must not run after
 * page_reporting_unregister().
 */
static void dmm_report_kick(struct work_struct *work)
{
	struct virtio_dmm *vm = container_of(to_delayed_work(work),
					     struct virtio_dmm, report.kick);

	if (READ_ONCE(vm->report.stopping))
		return;
	if (delayed_work_pending(&vm->report.pr_info.work)) {
		mod_delayed_work(system_wq, &vm->report.pr_info.work, 0);
		vm->report.kicks++;
	}
}

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
	if (nents == PAGE_REPORTING_CAPACITY && !READ_ONCE(vm->report.stopping))
		mod_delayed_work(system_wq, &vm->report.kick,
				 msecs_to_jiffies(DMM_REPORT_KICK_MS));
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
	INIT_DELAYED_WORK(&vm->report.kick, dmm_report_kick);
	vm->report.stopping = false;
	rc = page_reporting_register(&vm->report.pr_info);
	if (rc) {
		dev_warn(&vm->vdev->dev, "free page reporting not started (another driver reports free pages?): %d\n",
			 rc);
		return;
	}
	vm->report.on = true;
}

/*
 * Stop reporting: no kick re-arms the framework's work once @stopping is
 * set (dmm_report_kick() checks it), the framework's last pass ends in
 * page_reporting_unregister(), and a kick that pass queued is cancelled.
 */
void dmm_report_exit(struct virtio_dmm *vm)
{
	if (!vm->report.on)
		return;
	WRITE_ONCE(vm->report.stopping, true);
	cancel_delayed_work_sync(&vm->report.kick);
	page_reporting_unregister(&vm->report.pr_info);
	cancel_delayed_work_sync(&vm->report.kick);
	vm->report.on = false;
}
