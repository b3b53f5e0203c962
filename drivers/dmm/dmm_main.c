// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: probe, removal and the control loop.
 *
 * The host sets requested_size, the guest's target total RAM.  One control
 * loop (dmm_run) compares it with the guest's RAM (boot_size + plugged_size
 * - unplugged pages) and plugs or unplugs whole blocks of the device's
 * region, and with VIRTIO_DMM_F_PAGES single pages of any RAM, until they
 * match.
 */
#include <linux/module.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "dmm.h"

static bool debug_checks;
module_param(debug_checks, bool, 0444);
MODULE_PARM_DESC(debug_checks,
		 "check the block states after every pass of the control loop and warn if they disagree with the sub-blocks, plugged_size or Linux (default: false)");

/* Bytes of the region to plug for the current requested_size. */
static u64 dmm_target(const struct virtio_dmm *vm)
{
	u64 req = vm->requested_size;

	if (req <= vm->boot_size)
		return 0;
	return min(round_down(req - vm->boot_size, vm->block_size),
		   vm->region_size);
}

static void dmm_schedule(struct virtio_dmm *vm, unsigned long delay)
{
	if (!READ_ONCE(vm->removing))
		mod_delayed_work(system_freezable_wq, &vm->work, delay);
}

/*
 * Wait and try again: starting at retry_interval_ms, doubling each time up
 * to DMM_RETRY_MAX_FACTOR times that.  A configuration change that came
 * while this pass ran queued an immediate run, which mod_delayed_work()
 * has just replaced: queue it again (dmm_config_changed() sets the flag
 * before it schedules, so a change is never missed).
 */
static void dmm_backoff(struct virtio_dmm *vm)
{
	unsigned int base = READ_ONCE(vm->retry_interval_ms);

	if (!vm->backoff_ms)
		vm->backoff_ms = base;
	else
		vm->backoff_ms = min(vm->backoff_ms * 2,
				     base * DMM_RETRY_MAX_FACTOR);
	WRITE_ONCE(vm->status, DMM_STATUS_BUSY);
	dmm_schedule(vm, msecs_to_jiffies(vm->backoff_ms));
	if (atomic_read(&vm->config_changed))
		dmm_schedule(vm, 0);
}

/* Without pages: plug or unplug whole blocks toward dmm_target(). */
static int dmm_resize_blocks(struct virtio_dmm *vm)
{
	u64 target = dmm_target(vm);

	if (vm->plugged_size < target)
		return dmm_coarse_plug(vm, target - vm->plugged_size);
	if (vm->plugged_size > target)
		return dmm_coarse_unplug(vm, vm->plugged_size - target,
					 DMM_VACATE_ANY);
	return 0;
}

/* Bytes above the target now. */
static u64 dmm_excess(const struct virtio_dmm *vm)
{
	u64 cur = dmm_current_size(vm);

	return cur > vm->requested_size ? cur - vm->requested_size : 0;
}

/* Bytes below the target now. */
static u64 dmm_deficit(const struct virtio_dmm *vm)
{
	u64 cur = dmm_current_size(vm);

	return cur < vm->requested_size ? vm->requested_size - cur : 0;
}

/*
 * Give back region memory toward the target: whole blocks for up to
 * @bytes, then sub-blocks for what is still in excess, leaving what @how
 * does not let a shrink move.  0, -EBUSY (some were busy or left),
 * -ENOMEM (at the floor), or the first other error.
 */
static int dmm_shrink_region(struct virtio_dmm *vm, u64 bytes,
			     enum dmm_vacate how)
{
	int rc = 0;

	if (bytes >= vm->block_size && vm->plugged_size) {
		rc = dmm_coarse_unplug(vm, round_down(bytes, vm->block_size),
				       how);
		if (rc && rc != -EBUSY)
			return rc;
	}
	if (vm->sb.on && dmm_excess(vm) >= vm->sb.size && vm->plugged_size)
		return dmm_sb_unplug(vm, round_down(dmm_excess(vm),
						    vm->sb.size), how);
	return rc;
}

/*
 * Shrink by @bytes, the cheapest way first.  With pages: the region
 * memory Linux lets go of without much migration (DMM_VACATE_CHEAP: free
 * blocks and sub-blocks, or nearly so), then pages, in ranges where the
 * allocator has them free and singly for the rest, none of which moves a
 * page.  A block or sub-block a program fills stays: migrating its pages
 * costs about three times what free pages elsewhere do, and the pages
 * taken in its place are traded for it later, off the resize's path
 * (dmm_trade_region()).  Where pages stop (at the floor), such a block
 * could not go either: its pages would need the same free memory.
 * Without pages: blocks, then sub-blocks, moving what they must.
 */
static int dmm_shrink(struct virtio_dmm *vm, u64 bytes)
{
	int rc;

	rc = dmm_shrink_region(vm, bytes, vm->pages.on ? DMM_VACATE_CHEAP :
							 DMM_VACATE_ANY);
	if (rc == -ENOMEM)	/* at the floor: pages cannot go either */
		return rc;
	if (rc && rc != -EBUSY)
		return rc;
	if (!dmm_excess(vm) || !vm->pages.on)
		return 0;
	return dmm_pages_unplug(vm, dmm_excess(vm));
}

/*
 * Less than a unit (@unit: a sub-block, or a block) short: unplug the
 * difference as pages first (the device refuses to let the guest exceed
 * requested_size), then plug one more unit.
 */
static int dmm_grow_last(struct virtio_dmm *vm, u64 unit)
{
	u64 need = dmm_deficit(vm);
	int rc;

	/* without pages a gap below one unit stays (sysfs gap_size) */
	if (!need || !vm->pages.on || vm->plugged_size + unit > vm->region_size)
		return 0;
	rc = dmm_pages_unplug(vm, unit - need);
	if (rc)
		return rc;
	if (unit == vm->block_size)
		return dmm_coarse_plug(vm, unit);
	rc = dmm_sb_plug_added(vm, unit);
	if (!rc && dmm_deficit(vm))
		rc = dmm_sb_plug_new(vm, unit);
	return rc;
}

/*
 * Grow by @bytes: unplugged pages first, then sub-blocks of blocks Linux
 * has, then whole blocks, then a partially plugged new block.
 */
static int dmm_grow(struct virtio_dmm *vm, u64 bytes)
{
	u64 sb = vm->sb.on ? vm->sb.size : vm->block_size;
	int rc;

	if (vm->pages.unplugged) {
		rc = dmm_pages_plug(vm, bytes);
		if (rc)
			return rc;
	}
	if (vm->sb.on && dmm_deficit(vm) >= sb) {
		rc = dmm_sb_plug_added(vm, round_down(dmm_deficit(vm), sb));
		if (rc)
			return rc;
	}
	if (dmm_deficit(vm) >= vm->block_size) {
		rc = dmm_coarse_plug(vm, round_down(dmm_deficit(vm),
						    vm->block_size));
		if (rc)
			return rc;
	}
	if (vm->sb.on && dmm_deficit(vm) >= sb) {
		rc = dmm_sb_plug_new(vm, round_down(dmm_deficit(vm), sb));
		if (rc)
			return rc;
	}
	return dmm_grow_last(vm, sb);
}

/* With pages or sub-blocks: move the guest's RAM to requested_size. */
static int dmm_resize(struct virtio_dmm *vm)
{
	u64 cur = dmm_current_size(vm), req = vm->requested_size;

	if (cur > req)
		return dmm_shrink(vm, cur - req);
	if (cur < req)
		return dmm_grow(vm, req - cur);
	return 0;
}

/*
 * Bytes of region memory that could be given back in place of unplugged
 * pages: at least a unit (a sub-block, or a block), so that pages a grow
 * unplugged to fill a gap below one unit (dmm_grow_last()) stay.
 */
static u64 dmm_region_tradable(const struct virtio_dmm *vm)
{
	u64 unit = vm->sb.on ? vm->sb.size : vm->block_size;
	u64 bytes = min(vm->pages.unplugged << PAGE_SHIFT, vm->plugged_size);

	return bytes >= unit ? bytes : 0;
}

/*
 * At the target, with pages unplugged and region memory plugged (a shrink
 * met blocks and sub-blocks Linux could not let go of then): give back the
 * region memory Linux can let go of now, whole blocks then sub-blocks, and
 * plug as many pages again.  The guest dips below the target for a moment
 * (never above it: the device refuses that), its boot RAM comes back whole,
 * and once nothing of the region is plugged the module can be unloaded.
 * Returns the bytes traded, or an error.
 */
static s64 dmm_trade_region(struct virtio_dmm *vm)
{
	u64 before = vm->plugged_size, bytes = dmm_region_tradable(vm);
	int rc = 0;

	if (bytes >= vm->block_size)
		rc = dmm_coarse_unplug(vm, round_down(bytes, vm->block_size),
				       DMM_VACATE_ANY);
	bytes -= before - vm->plugged_size;
	if ((!rc || rc == -EBUSY) && vm->sb.on && bytes >= vm->sb.size)
		rc = dmm_sb_unplug(vm, round_down(bytes, vm->sb.size),
				   DMM_VACATE_ANY);
	if (dmm_deficit(vm))
		rc = dmm_pages_plug(vm, dmm_deficit(vm));
	if (rc && rc != -EBUSY && rc != -ENOMEM)
		return rc;
	WRITE_ONCE(vm->region_traded,
		   vm->region_traded + before - vm->plugged_size);
	return before - vm->plugged_size;
}

/*
 * The next region trade no sooner than DMM_REGION_TRADE_RETRY_FACTOR retry
 * intervals from now (a minute by default) after a new target, whose
 * shrink has just found the region busy; after an attempt that freed
 * nothing (@failed), twice as long as the last wait, up to
 * DMM_RETRY_MAX_FACTOR times that.  Each attempt costs a migration attempt
 * per busy block and sub-block (seconds for a few hundred under TCG).
 */
static void dmm_region_trade_later(struct virtio_dmm *vm, bool failed)
{
	u64 ms = (u64)READ_ONCE(vm->retry_interval_ms) *
		 DMM_REGION_TRADE_RETRY_FACTOR;

	vm->region_trade_backoff = failed ?
		min(vm->region_trade_backoff * 2, DMM_RETRY_MAX_FACTOR) : 1;
	vm->region_trade_at = jiffies +
		msecs_to_jiffies(ms * vm->region_trade_backoff);
}

/*
 * At the target: trade unplugged pages for region memory, then single pages
 * for ranges while the allocator has free ones (dmm_pages_trade()), a batch
 * per pass, from DMM_TRADE_INTERVAL_MS after a new target on, and look
 * again every DMM_TRADE_INTERVAL_MS while there is none
 * (dmm_region_trade_later() for the region).  An error here is not the
 * resize's: the next pass meets it again if it lasts.
 */
static void dmm_trade(struct virtio_dmm *vm)
{
	s64 traded;
	int rc;

	if (dmm_region_tradable(vm) &&
	    time_after_eq(jiffies, vm->region_trade_at)) {
		traded = dmm_trade_region(vm);
		if (traded > 0) {
			dmm_schedule(vm, 0);
			return;
		}
		dmm_region_trade_later(vm, true);
	}
	if (dmm_pages_tradable(vm)) {
		/* a shrink has just found no free range: not at once */
		rc = time_after_eq(jiffies, vm->pages_trade_at) ?
		     dmm_pages_trade(vm) : 0;
		dmm_schedule(vm, rc > 0 ? 0 :
			     msecs_to_jiffies(DMM_TRADE_INTERVAL_MS));
	} else if (dmm_region_tradable(vm)) {
		dmm_schedule(vm, vm->region_trade_at - jiffies);
	}
	/* a configuration change during this pass wants its run now */
	if (atomic_read(&vm->config_changed))
		dmm_schedule(vm, 0);
}

/*
 * One pass of the control loop, with hotplug_mutex held.  Maps each result
 * to one policy: done (idle), retry now (-EAGAIN: the configuration
 * changed during the pass), retry with back-off (-EBUSY memory busy,
 * -ETXTBSY device busy, -ENOMEM no memory or at the floor), re-read the
 * config and back off (-ENOSPC, NACK: the target moved), or stop (the
 * device answered ERROR).
 */
static void dmm_step(struct virtio_dmm *vm)
{
	int rc;

	/* working; the pass ends saying how it went */
	WRITE_ONCE(vm->status, DMM_STATUS_BUSY);
	if (atomic_xchg(&vm->config_changed, 0)) {
		dmm_read_requested_size(vm);
		dmm_region_trade_later(vm, false);
		vm->pages_trade_at = jiffies +
				     msecs_to_jiffies(DMM_TRADE_INTERVAL_MS);
	}
	rc = vm->pages.on || vm->sb.on ? dmm_resize(vm) :
					   dmm_resize_blocks(vm);

	switch (rc) {
	case 0:
		vm->backoff_ms = 0;
		/* busy while trading: the size dips and comes back */
		dmm_trade(vm);
		WRITE_ONCE(vm->status, DMM_STATUS_IDLE);
		break;
	case -ENOSPC:
		/* NACK: requested_size shrank under us; look again. */
		dmm_read_requested_size(vm);
		dmm_backoff(vm);
		break;
	case -EAGAIN:
		WRITE_ONCE(vm->status, DMM_STATUS_BUSY);
		dmm_schedule(vm, 0);
		break;
	case -EBUSY:
	case -ETXTBSY:
	case -ENOMEM:
		dmm_backoff(vm);
		break;
	default:
		dev_err(&vm->vdev->dev, "stopping: the device or Linux failed a resize to %llu bytes: %d\n",
			vm->requested_size, rc);
		WRITE_ONCE(vm->status, DMM_STATUS_ERROR);
		break;
	}
}

static void dmm_run(struct work_struct *work)
{
	struct virtio_dmm *vm = container_of(to_delayed_work(work),
					     struct virtio_dmm, work);

	mutex_lock(&vm->hotplug_mutex);
	if (vm->status != DMM_STATUS_ERROR && !READ_ONCE(vm->removing) &&
	    !vm->in_kdump)
		dmm_step(vm);
	if (debug_checks)
		WARN_ONCE(dmm_blocks_check(vm) >= 0,
			  "virtio_dmm: block states inconsistent\n");
	mutex_unlock(&vm->hotplug_mutex);
}

static void dmm_config_changed(struct virtio_device *vdev)
{
	struct virtio_dmm *vm = vdev->priv;

	if (vm->in_kdump)
		return;
	atomic_set(&vm->config_changed, 1);
	dmm_schedule(vm, 0);
	dmm_stats_config_changed(vm);
}

/*
 * Memory plugged that this kernel did not add (kexec, a reloaded driver) is
 * not in use here: give it all back before starting.
 */
static int dmm_unplug_stale(struct virtio_dmm *vm)
{
	u64 stale = dmm_read_device_changed_size(vm);
	int rc;

	if (!stale)
		return 0;
	dev_info(&vm->vdev->dev, "resetting 0x%llx bytes plugged or unplugged before\n",
		 stale);
	mutex_lock(&vm->hotplug_mutex);
	rc = dmm_send_unplug_all(vm);
	mutex_unlock(&vm->hotplug_mutex);
	return rc;
}

/*
 * In a kdump kernel the plugged memory is what is being dumped: set up the
 * request queue, change nothing, and answer /proc/vmcore's questions.
 */
static int dmm_probe_kdump(struct virtio_dmm *vm)
{
	int rc;

	rc = dmm_find_vqs(vm);
	if (rc)
		return rc;
	/* only the request queue is used: nothing reports, hints or asks */
	vm->report.vq = NULL;
	vm->hints.vq = NULL;
	vm->stats.vq = NULL;
	virtio_device_ready(vm->vdev);
	rc = dmm_kdump_init(vm);
	if (rc) {
		virtio_reset_device(vm->vdev);
		vm->vdev->config->del_vqs(vm->vdev);
	}
	return rc;
}

static int dmm_probe(struct virtio_device *vdev)
{
	struct virtio_dmm *vm;
	int rc;

	vm = kzalloc(sizeof(*vm), GFP_KERNEL);
	if (!vm)
		return -ENOMEM;
	vdev->priv = vm;
	vm->vdev = vdev;
	vm->retry_interval_ms = DMM_RETRY_MS_DEFAULT;
	dmm_region_trade_later(vm, false);
	vm->pages_trade_at = jiffies;
	init_waitqueue_head(&vm->host_resp);
	spin_lock_init(&vm->ask.lock);
	init_waitqueue_head(&vm->report.done_wq);
	init_waitqueue_head(&vm->hints.resp_wq);
	init_waitqueue_head(&vm->pages.resp_wq);
	init_waitqueue_head(&vm->stats.resp_wq);
	mutex_init(&vm->hotplug_mutex);
	INIT_DELAYED_WORK(&vm->work, dmm_run);

	vm->in_kdump = is_kdump_kernel();

	rc = dmm_read_config(vm);
	if (rc)
		goto out_free;
	if (vm->in_kdump) {
		rc = dmm_probe_kdump(vm);
		if (rc)
			goto out_free;
		return 0;
	}
	rc = dmm_pages_init(vm);
	if (rc)
		goto out_free;
	rc = dmm_find_vqs(vm);
	if (rc)
		goto out_pages;
	rc = dmm_coarse_init(vm);
	if (rc)
		goto out_del_vqs;
	rc = dmm_blocks_init(vm);
	if (rc)
		goto out_coarse;
	rc = dmm_sb_init(vm);
	if (rc)
		goto out_blocks;
	dmm_blocks_memmap_init(vm);
	virtio_device_ready(vdev);

	rc = dmm_unplug_stale(vm);
	if (rc)
		goto out_reset;

	dev_info(&vdev->dev, "region 0x%llx-0x%llx, block size %llu MiB, boot size %llu MiB, node %d%s%s%s\n",
		 vm->region_addr, vm->region_addr + vm->region_size - 1,
		 vm->block_size >> 20, vm->boot_size >> 20, vm->nid,
		 vm->sb.on ? ", sub-blocks" : "",
		 vm->pages.on ? ", pages" : "",
		 vm->blocks.memmap_pages ? ", memmap on memory" : "");
	dmm_report_init(vm);
	dmm_hints_init(vm);
	dmm_stats_init(vm);
	dmm_debugfs_init(vm);
	atomic_set(&vm->config_changed, 1);
	dmm_schedule(vm, 0);
	return 0;

out_reset:
	virtio_reset_device(vdev);
	dmm_sb_exit(vm);
out_blocks:
	dmm_blocks_exit(vm);
out_coarse:
	dmm_coarse_exit(vm);
out_del_vqs:
	vdev->config->del_vqs(vdev);
out_pages:
	dmm_pages_exit(vm);
out_free:
	kfree(vm);
	vdev->priv = NULL;
	return rc;
}

/*
 * Unplugged pages go back to Linux.  With no block plugged, one UNPLUG_ALL
 * tells the device; otherwise the device is going away (Linux keeps
 * blocks it could not offline) and the pages are simply used again.
 * Migration is detached first (after the blocks went: offlining them
 * migrates pages), so that no MOVE_PAGES follows UNPLUG_ALL and no page
 * stays isolated once vm is freed.
 */
static void dmm_remove_pages(struct virtio_dmm *vm)
{
	if (!vm->pages.unplugged)
		return;
	dmm_pages_detach(vm);
	if (!vm->plugged_size && dmm_send_unplug_all(vm))
		dev_warn(&vm->vdev->dev, "the device did not take back %llu pages\n",
			 vm->pages.unplugged);
	dmm_pages_release(vm);
}

/*
 * The module holds a reference to itself while memory is plugged, and
 * sysfs unbind is suppressed, so we get here with memory plugged only if
 * the device itself goes away.  Give back what Linux lets go of; whatever
 * it cannot offline stays Linux's (and the device is not reset under it).
 */
static void dmm_remove(struct virtio_device *vdev)
{
	struct virtio_dmm *vm = vdev->priv;

	if (vm->in_kdump) {
		dmm_kdump_exit(vm);
		virtio_reset_device(vdev);
		vdev->config->del_vqs(vdev);
		kfree(vm);
		vdev->priv = NULL;
		return;
	}

	dmm_debugfs_exit(vm);
	dmm_hints_exit(vm);
	dmm_report_exit(vm);
	WRITE_ONCE(vm->removing, true);
	dmm_stats_exit(vm);
	cancel_delayed_work_sync(&vm->work);

	mutex_lock(&vm->hotplug_mutex);
	if (vm->plugged_size && dmm_coarse_unplug_all(vm))
		dev_warn(&vdev->dev, "0x%llx bytes stay with Linux\n",
			 vm->plugged_size);
	dmm_remove_pages(vm);
	mutex_unlock(&vm->hotplug_mutex);

	virtio_reset_device(vdev);
	vdev->config->del_vqs(vdev);
	dmm_pages_exit(vm);
	if (!vm->plugged_size) {
		dmm_sb_exit(vm);
		dmm_blocks_exit(vm);
		dmm_coarse_exit(vm);
		kfree(vm);
	}
	vdev->priv = NULL;
}

static int dmm_validate(struct virtio_device *vdev)
{
	dmm_report_validate(vdev);
	return 0;
}

#ifdef CONFIG_PM_SLEEP
/*
 * Hibernation would reset the device and restore a kernel image that
 * believes in memory the device may have unplugged meanwhile: refuse it.
 */
static int dmm_freeze(struct virtio_device *vdev)
{
	dev_err(&vdev->dev, "hibernation is not supported with virtio-dmm\n");
	return -EPERM;
}

static int dmm_restore(struct virtio_device *vdev)
{
	return -EPERM;
}
#endif

static unsigned int dmm_features[] = {
	VIRTIO_DMM_F_NODE_ID,
#if IS_ENABLED(CONFIG_PAGE_REPORTING)
	VIRTIO_DMM_F_FREE_PAGE_REPORTING,
#endif
#if IS_ENABLED(CONFIG_MEMORY_BALLOON)
	VIRTIO_DMM_F_PAGES,
	VIRTIO_DMM_F_PAGE_RANGES,
#endif
#if IS_ENABLED(CONFIG_CONTIG_ALLOC)
	VIRTIO_DMM_F_SUB_BLOCKS,
#endif
	VIRTIO_DMM_F_HINTS,
	VIRTIO_DMM_F_HINTS_DUP,
	VIRTIO_DMM_F_STATS,
};

static const struct virtio_device_id dmm_id_table[] = {
	{ VIRTIO_ID_DMM, VIRTIO_DEV_ANY_ID },
	{ 0 },
};

static struct virtio_driver dmm_driver = {
	.feature_table = dmm_features,
	.feature_table_size = ARRAY_SIZE(dmm_features),
	.driver.name = KBUILD_MODNAME,
	.driver.dev_groups = dmm_groups,
	/* Unbinding with memory plugged would strand it: not via sysfs. */
	.driver.suppress_bind_attrs = true,
	.id_table = dmm_id_table,
	.validate = dmm_validate,
	.probe = dmm_probe,
	.remove = dmm_remove,
	.config_changed = dmm_config_changed,
#ifdef CONFIG_PM_SLEEP
	.freeze = dmm_freeze,
	.restore = dmm_restore,
#endif
};

static int __init dmm_init(void)
{
	int rc;

	dmm_debugfs_register();
	rc = register_virtio_driver(&dmm_driver);
	if (rc)
		dmm_debugfs_unregister();
	return rc;
}

static void __exit dmm_exit(void)
{
	unregister_virtio_driver(&dmm_driver);
	dmm_debugfs_unregister();
}

module_init(dmm_init);
module_exit(dmm_exit);
MODULE_DEVICE_TABLE(virtio, dmm_id_table);
MODULE_DESCRIPTION("virtio-dmm dynamic memory driver");
MODULE_LICENSE("GPL");
MODULE_VERSION(DMM_VERSION);
