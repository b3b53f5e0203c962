// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: sysfs, in the "dmm" group of the virtio device.
 * Documented in Documentation/ABI/testing/sysfs-driver-virtio-dmm.
 */
#include <linux/ctype.h>
#include <linux/device.h>
#include <linux/sysfs.h>
#include <linux/virtio.h>

#include "dmm.h"

static struct virtio_dmm *dev_to_dmm(struct device *dev)
{
	return dev_to_virtio(dev)->priv;
}

/* Show the u64 at @off in struct virtio_dmm, read under hotplug_mutex. */
static ssize_t dmm_show_u64(struct device *dev, char *buf, size_t off,
			    bool hex)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);
	u64 val;

	mutex_lock(&vm->hotplug_mutex);
	val = *(u64 *)((char *)vm + off);
	mutex_unlock(&vm->hotplug_mutex);
	return sysfs_emit(buf, hex ? "0x%llx\n" : "%llu\n", val);
}

static ssize_t plugged_size_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, plugged_size),
			    false);
}
static DEVICE_ATTR_RO(plugged_size);

static ssize_t requested_size_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, requested_size),
			    false);
}
static DEVICE_ATTR_RO(requested_size);

static ssize_t block_size_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, block_size),
			    false);
}
static DEVICE_ATTR_RO(block_size);

static ssize_t region_addr_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, region_addr),
			    true);
}
static DEVICE_ATTR_RO(region_addr);

static ssize_t region_size_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, region_size),
			    false);
}
static DEVICE_ATTR_RO(region_size);

static ssize_t boot_size_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, boot_size),
			    false);
}
static DEVICE_ATTR_RO(boot_size);

static ssize_t plug_failures_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, plug_failures),
			    false);
}
static DEVICE_ATTR_RO(plug_failures);

static ssize_t unplug_failures_show(struct device *dev,
				    struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, unplug_failures),
			    false);
}
static DEVICE_ATTR_RO(unplug_failures);

static ssize_t page_unplug_failures_show(struct device *dev,
					 struct device_attribute *attr,
					 char *buf)
{
	return dmm_show_u64(dev, buf,
			    offsetof(struct virtio_dmm, page_unplug_failures),
			    false);
}
static DEVICE_ATTR_RO(page_unplug_failures);

static ssize_t sub_block_size_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, sb_size),
			    false);
}
static DEVICE_ATTR_RO(sub_block_size);

static ssize_t sub_block_unplug_failures_show(struct device *dev,
					      struct device_attribute *attr,
					      char *buf)
{
	return dmm_show_u64(dev, buf,
			    offsetof(struct virtio_dmm, sb_unplug_failures),
			    false);
}
static DEVICE_ATTR_RO(sub_block_unplug_failures);

static ssize_t floor_stops_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, floor_stops),
			    false);
}
static DEVICE_ATTR_RO(floor_stops);

static ssize_t page_moves_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return dmm_show_u64(dev, buf, offsetof(struct virtio_dmm, page_moves),
			    false);
}
static DEVICE_ATTR_RO(page_moves);

/* The sizes derived from pages, each read under hotplug_mutex. */
enum dmm_derived {
	DMM_UNPLUGGED,		/* bytes unplugged as pages */
	DMM_CURRENT,		/* the guest's RAM now */
	DMM_FLOOR,		/* lowest size the guest would go to now */
	DMM_PARTIAL,		/* plugged in partially plugged blocks */
};

static u64 dmm_derived(struct device *dev, enum dmm_derived what)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);
	u64 val;

	mutex_lock(&vm->hotplug_mutex);
	switch (what) {
	case DMM_UNPLUGGED:
		val = vm->pages_unplugged << PAGE_SHIFT;
		break;
	case DMM_CURRENT:
		val = dmm_current_size(vm);
		break;
	case DMM_PARTIAL:
		val = dmm_sb_partial_bytes(vm);
		break;
	default:
		val = vm->pages ? dmm_pages_floor(vm) :
			vm->boot_size;
		break;
	}
	mutex_unlock(&vm->hotplug_mutex);
	return val;
}

static ssize_t unplugged_size_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", dmm_derived(dev, DMM_UNPLUGGED));
}
static DEVICE_ATTR_RO(unplugged_size);

static ssize_t current_size_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", dmm_derived(dev, DMM_CURRENT));
}
static DEVICE_ATTR_RO(current_size);

static ssize_t sub_block_plugged_size_show(struct device *dev,
					   struct device_attribute *attr,
					   char *buf)
{
	return sysfs_emit(buf, "%llu\n", dmm_derived(dev, DMM_PARTIAL));
}
static DEVICE_ATTR_RO(sub_block_plugged_size);

static ssize_t floor_size_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", dmm_derived(dev, DMM_FLOOR));
}
static DEVICE_ATTR_RO(floor_size);

/* requested_size - current_size: > 0 short of the target, < 0 above it. */
static ssize_t gap_size_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);
	s64 gap;

	mutex_lock(&vm->hotplug_mutex);
	gap = (s64)vm->requested_size - (s64)dmm_current_size(vm);
	mutex_unlock(&vm->hotplug_mutex);
	return sysfs_emit(buf, "%lld\n", gap);
}
static DEVICE_ATTR_RO(gap_size);

static ssize_t reported_bytes_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lld\n",
			  atomic64_read(&dev_to_dmm(dev)->reported_bytes));
}
static DEVICE_ATTR_RO(reported_bytes);

/* Shared-page hints: counters of dmm_hints.c, read without locks. */
static ssize_t dmm_show_atomic(char *buf, atomic64_t *v)
{
	return sysfs_emit(buf, "%lld\n", atomic64_read(v));
}

static ssize_t hints_zero_sent_show(struct device *dev,
				    struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->hints_sent[VIRTIO_DMM_HINT_ZERO]);
}
static DEVICE_ATTR_RO(hints_zero_sent);

static ssize_t hints_dup_sent_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->hints_sent[VIRTIO_DMM_HINT_DUP]);
}
static DEVICE_ATTR_RO(hints_dup_sent);

static ssize_t hints_accepted_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->hints_accepted);
}
static DEVICE_ATTR_RO(hints_accepted);

static ssize_t hints_rejected_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->hints_rejected);
}
static DEVICE_ATTR_RO(hints_rejected);

static ssize_t hint_errors_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->hint_errors);
}
static DEVICE_ATTR_RO(hint_errors);

static ssize_t hint_pages_scanned_show(struct device *dev,
				       struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->hint_pages_scanned);
}
static DEVICE_ATTR_RO(hint_pages_scanned);

static ssize_t hint_passes_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->hint_passes);
}
static DEVICE_ATTR_RO(hint_passes);

static ssize_t hint_scan_ms_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n",
			  div_u64(atomic64_read(&dev_to_dmm(dev)->hint_scan_ns),
				  NSEC_PER_MSEC));
}
static DEVICE_ATTR_RO(hint_scan_ms);

static ssize_t hint_budget_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(dev_to_dmm(dev)->hint_budget));
}

/*
 * Percent of one CPU the hint scanner may use: 0 (stopped) to 100.
 * -ENODEV without hints, -EINVAL for anything else.
 */
static ssize_t hint_budget_store(struct device *dev,
				 struct device_attribute *attr,
				 const char *buf, size_t count)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);
	unsigned int val;

	if (!vm->hint_thread)
		return -ENODEV;
	if (kstrtouint(buf, 10, &val) || val > 100)
		return -EINVAL;
	WRITE_ONCE(vm->hint_budget, val);
	dmm_hints_kick(vm);
	return count;
}
static DEVICE_ATTR_RW(hint_budget);

/* Requests for memory (dmm_stats.c). */
static ssize_t asks_sent_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->asks_sent);
}
static DEVICE_ATTR_RO(asks_sent);

static ssize_t asks_granted_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->asks_granted);
}
static DEVICE_ATTR_RO(asks_granted);

static ssize_t asks_refused_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->asks_refused);
}
static DEVICE_ATTR_RO(asks_refused);

static ssize_t asks_forwarded_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return dmm_show_atomic(buf, &dev_to_dmm(dev)->asks_forwarded);
}
static DEVICE_ATTR_RO(asks_forwarded);

static ssize_t stats_interval_ms_show(struct device *dev,
				      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n",
			  READ_ONCE(dev_to_dmm(dev)->stats_interval_ms));
}
static DEVICE_ATTR_RO(stats_interval_ms);

/* "SIZE RESULT" of the last request, or "0 none". */
static ssize_t last_ask_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);
	ssize_t n;

	mutex_lock(&vm->hotplug_mutex);
	n = sysfs_emit(buf, "%llu %s\n", vm->last_ask_size,
		       vm->last_ask_result ?: "none");
	mutex_unlock(&vm->hotplug_mutex);
	return n;
}
static DEVICE_ATTR_RO(last_ask);

/* The largest total RAM the device can give: boot size plus the region. */
static u64 dmm_max_size(const struct virtio_dmm *vm)
{
	return vm->boot_size + vm->region_size;
}

/*
 * Ask the device for a total of SIZE bytes of RAM (more: ask; less: offer
 * some back).  The write fails with ENOSPC if the host refused, EAGAIN if
 * it passed the request on, ENODEV without F_STATS, EINVAL for a size
 * that is not a number, 0, or above boot size plus region (sent as it
 * was, such a size would be rounded or clamped into a different request).
 */
static ssize_t ask_size_store(struct device *dev,
			      struct device_attribute *attr, const char *buf,
			      size_t count)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);
	u64 size;
	int rc;

	if (!vm->stats_vq)
		return -ENODEV;
	if (kstrtou64(buf, 0, &size) || !size)
		return -EINVAL;
	if (size > dmm_max_size(vm)) {
		dev_err_ratelimited(dev, "ask_size %llu is above boot size plus region %llu\n",
				    size, dmm_max_size(vm));
		return -EINVAL;
	}
	mutex_lock(&vm->hotplug_mutex);
	rc = dmm_ask(vm, size, VIRTIO_DMM_ASK_ADMIN);
	mutex_unlock(&vm->hotplug_mutex);
	return rc ? rc : count;
}
static DEVICE_ATTR_WO(ask_size);

/*
 * A u64 tunable of the requests, @min to @max; anything else is -EINVAL
 * and changes nothing.
 */
static ssize_t dmm_store_u64(struct device *dev, const char *buf,
			     size_t count, u64 *field, u64 min, u64 max)
{
	u64 val;

	if (!dev_to_dmm(dev)->stats_vq)
		return -ENODEV;
	if (kstrtou64(buf, 0, &val) || val < min || val > max)
		return -EINVAL;
	WRITE_ONCE(*field, val);
	return count;
}

static ssize_t ask_available_below_show(struct device *dev,
					struct device_attribute *attr,
					char *buf)
{
	return sysfs_emit(buf, "%llu\n",
			  READ_ONCE(dev_to_dmm(dev)->ask_available_below));
}

/*
 * Bytes of MemAvailable, 0 (off) to boot size plus region: a threshold
 * above any RAM the guest can have would ask all the time.
 */
static ssize_t ask_available_below_store(struct device *dev,
					 struct device_attribute *attr,
					 const char *buf, size_t count)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);

	return dmm_store_u64(dev, buf, count, &vm->ask_available_below, 0,
			     dmm_max_size(vm));
}
static DEVICE_ATTR_RW(ask_available_below);

static ssize_t ask_step_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", READ_ONCE(dev_to_dmm(dev)->ask_step));
}

/* Between 4 KiB and boot size plus region. */
static ssize_t ask_step_store(struct device *dev,
			      struct device_attribute *attr, const char *buf,
			      size_t count)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);

	return dmm_store_u64(dev, buf, count, &vm->ask_step, PAGE_SIZE,
			     dmm_max_size(vm));
}
static DEVICE_ATTR_RW(ask_step);

static ssize_t ask_psi_above_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	u32 v = READ_ONCE(dev_to_dmm(dev)->ask_psi_above);

	return sysfs_emit(buf, "%u.%02u\n", v / 100, v % 100);
}

/* "N", "N.D" or "N.DD", at most 100: hundredths of a percent. */
static int dmm_parse_percent(const char *p, u32 *out)
{
	unsigned int val = 0, digits = 0;

	if (!isdigit(*p))
		return -EINVAL;
	while (isdigit(*p) && val <= 100)
		val = val * 10 + (*p++ - '0');
	val *= 100;
	if (*p == '.') {
		for (p++; isdigit(*p) && digits < 2; digits++)
			val += (*p++ - '0') * (digits ? 1 : 10);
		if (!digits)
			return -EINVAL;
	}
	if (*p == '\n')
		p++;
	if (*p || val > 10000)
		return -EINVAL;
	*out = val;
	return 0;
}

/* A percentage, 0 to 100 with two decimals; 0 turns it off. */
static ssize_t ask_psi_above_store(struct device *dev,
				   struct device_attribute *attr,
				   const char *buf, size_t count)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);
	u32 val;

	if (!vm->stats_vq)
		return -ENODEV;
	if (dmm_parse_percent(buf, &val))
		return -EINVAL;
	WRITE_ONCE(vm->ask_psi_above, val);
	return count;
}
static DEVICE_ATTR_RW(ask_psi_above);

static const char * const dmm_status_names[] = {
	[DMM_STATUS_IDLE] = "idle",
	[DMM_STATUS_BUSY] = "busy",
	[DMM_STATUS_ERROR] = "error",
};

static ssize_t status_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);
	enum dmm_status status;

	mutex_lock(&vm->hotplug_mutex);
	status = vm->status;
	mutex_unlock(&vm->hotplug_mutex);
	return sysfs_emit(buf, "%s\n", dmm_status_names[status]);
}
static DEVICE_ATTR_RO(status);

static ssize_t retry_interval_ms_show(struct device *dev,
				      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n",
			  READ_ONCE(dev_to_dmm(dev)->retry_interval_ms));
}

/* Anything but a decimal in [DMM_RETRY_MS_MIN, DMM_RETRY_MS_MAX]: -EINVAL. */
static ssize_t retry_interval_ms_store(struct device *dev,
				       struct device_attribute *attr,
				       const char *buf, size_t count)
{
	unsigned int val;

	if (kstrtouint(buf, 10, &val) || val < DMM_RETRY_MS_MIN ||
	    val > DMM_RETRY_MS_MAX)
		return -EINVAL;
	WRITE_ONCE(dev_to_dmm(dev)->retry_interval_ms, val);
	return count;
}
static DEVICE_ATTR_RW(retry_interval_ms);

static struct attribute *dmm_attrs[] = {
	&dev_attr_plugged_size.attr,
	&dev_attr_requested_size.attr,
	&dev_attr_block_size.attr,
	&dev_attr_region_addr.attr,
	&dev_attr_region_size.attr,
	&dev_attr_boot_size.attr,
	&dev_attr_status.attr,
	&dev_attr_retry_interval_ms.attr,
	&dev_attr_plug_failures.attr,
	&dev_attr_unplug_failures.attr,
	&dev_attr_reported_bytes.attr,
	&dev_attr_unplugged_size.attr,
	&dev_attr_current_size.attr,
	&dev_attr_floor_size.attr,
	&dev_attr_gap_size.attr,
	&dev_attr_page_unplug_failures.attr,
	&dev_attr_page_moves.attr,
	&dev_attr_sub_block_size.attr,
	&dev_attr_sub_block_plugged_size.attr,
	&dev_attr_sub_block_unplug_failures.attr,
	&dev_attr_floor_stops.attr,
	&dev_attr_hint_budget.attr,
	&dev_attr_hints_zero_sent.attr,
	&dev_attr_hints_dup_sent.attr,
	&dev_attr_hints_accepted.attr,
	&dev_attr_hints_rejected.attr,
	&dev_attr_hint_errors.attr,
	&dev_attr_hint_pages_scanned.attr,
	&dev_attr_hint_passes.attr,
	&dev_attr_hint_scan_ms.attr,
	&dev_attr_stats_interval_ms.attr,
	&dev_attr_ask_size.attr,
	&dev_attr_ask_available_below.attr,
	&dev_attr_ask_psi_above.attr,
	&dev_attr_ask_step.attr,
	&dev_attr_asks_sent.attr,
	&dev_attr_asks_granted.attr,
	&dev_attr_asks_refused.attr,
	&dev_attr_asks_forwarded.attr,
	&dev_attr_last_ask.attr,
	NULL,
};

static const struct attribute_group dmm_attr_group = {
	.name = "dmm",
	.attrs = dmm_attrs,
};

const struct attribute_group *dmm_groups[] = {
	&dmm_attr_group,
	NULL,
};
