// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: sysfs, in the "dmm" group of the virtio device.
 * Documented in Documentation/ABI/testing/sysfs-driver-virtio-dmm.
 *
 * The stable interface: sizes, status and tunables, one value per file.
 * Files of a feature the device did not negotiate are hidden.  Counters
 * and diagnostics are in debugfs (dmm_debugfs.c), which is no ABI.
 * Readers take no lock: every value is written whole (WRITE_ONCE() or an
 * atomic) by its one writer, so a read never waits for a resize.
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

#define DMM_SIZE_ATTR(name, expr)					\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	struct virtio_dmm *vm = dev_to_dmm(dev);			\
									\
	return sysfs_emit(buf, "%llu\n", (u64)(expr));			\
}									\
static DEVICE_ATTR_RO(name)

DMM_SIZE_ATTR(requested_size, READ_ONCE(vm->requested_size));
DMM_SIZE_ATTR(plugged_size, READ_ONCE(vm->plugged_size));
DMM_SIZE_ATTR(current_size, dmm_current_size(vm));
DMM_SIZE_ATTR(block_size, vm->block_size);
DMM_SIZE_ATTR(region_size, vm->region_size);
DMM_SIZE_ATTR(boot_size, vm->boot_size);
DMM_SIZE_ATTR(sub_block_size, vm->sb.size);
DMM_SIZE_ATTR(unplugged_size, READ_ONCE(vm->pages.unplugged) << PAGE_SHIFT);

static ssize_t region_addr_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "0x%llx\n", dev_to_dmm(dev)->region_addr);
}
static DEVICE_ATTR_RO(region_addr);

static const char * const dmm_status_names[] = {
	[DMM_STATUS_IDLE] = "idle",
	[DMM_STATUS_BUSY] = "busy",
	[DMM_STATUS_ERROR] = "error",
};

static ssize_t status_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);
	enum dmm_status status = READ_ONCE(vm->status);

	/* a new target the control loop has not looked at yet: busy */
	if (status == DMM_STATUS_IDLE && atomic_read(&vm->config_changed))
		status = DMM_STATUS_BUSY;
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

/* Shared-page hints */
static ssize_t hint_budget_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(dev_to_dmm(dev)->hints.budget));
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

	if (!vm->hints.thread)
		return -ENODEV;
	if (kstrtouint(buf, 10, &val) || val > 100)
		return -EINVAL;
	WRITE_ONCE(vm->hints.budget, val);
	dmm_hints_kick(vm);
	return count;
}
static DEVICE_ATTR_RW(hint_budget);

/* Requests for memory (dmm_stats.c) */
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

	if (!vm->stats.vq)
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
	/* passed on to the operator: "try again later" to user space */
	if (rc == -ETXTBSY)
		rc = -EAGAIN;
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

	if (!dev_to_dmm(dev)->stats.vq)
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
			  READ_ONCE(dev_to_dmm(dev)->ask.available_below));
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

	return dmm_store_u64(dev, buf, count, &vm->ask.available_below, 0,
			     dmm_max_size(vm));
}
static DEVICE_ATTR_RW(ask_available_below);

static ssize_t ask_step_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", READ_ONCE(dev_to_dmm(dev)->ask.step));
}

/* Between 4 KiB and boot size plus region. */
static ssize_t ask_step_store(struct device *dev,
			      struct device_attribute *attr, const char *buf,
			      size_t count)
{
	struct virtio_dmm *vm = dev_to_dmm(dev);

	return dmm_store_u64(dev, buf, count, &vm->ask.step, PAGE_SIZE,
			     dmm_max_size(vm));
}
static DEVICE_ATTR_RW(ask_step);

static ssize_t ask_psi_above_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	u32 v = READ_ONCE(dev_to_dmm(dev)->ask.psi_above);

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

	if (!vm->stats.vq)
		return -ENODEV;
	if (dmm_parse_percent(buf, &val))
		return -EINVAL;
	WRITE_ONCE(vm->ask.psi_above, val);
	return count;
}
static DEVICE_ATTR_RW(ask_psi_above);

/* Attributes of a feature: shown only if the device negotiated it. */
static struct attribute *dmm_attrs[] = {
	&dev_attr_requested_size.attr,
	&dev_attr_plugged_size.attr,
	&dev_attr_current_size.attr,
	&dev_attr_block_size.attr,
	&dev_attr_region_addr.attr,
	&dev_attr_region_size.attr,
	&dev_attr_boot_size.attr,
	&dev_attr_status.attr,
	&dev_attr_retry_interval_ms.attr,
	&dev_attr_sub_block_size.attr,		/* sub-blocks */
	&dev_attr_unplugged_size.attr,		/* pages */
	&dev_attr_hint_budget.attr,		/* hints */
	&dev_attr_ask_size.attr,		/* statistics and requests */
	&dev_attr_ask_available_below.attr,
	&dev_attr_ask_psi_above.attr,
	&dev_attr_ask_step.attr,
	NULL,
};

static umode_t dmm_attr_visible(struct kobject *kobj, struct attribute *a,
				int n)
{
	struct virtio_dmm *vm = dev_to_dmm(kobj_to_dev(kobj));

	if (a == &dev_attr_sub_block_size.attr)
		return vm->sb.on ? a->mode : 0;
	if (a == &dev_attr_unplugged_size.attr)
		return vm->pages.on ? a->mode : 0;
	if (a == &dev_attr_hint_budget.attr)
		return vm->hints.thread ? a->mode : 0;
	if (a == &dev_attr_ask_size.attr ||
	    a == &dev_attr_ask_available_below.attr ||
	    a == &dev_attr_ask_psi_above.attr ||
	    a == &dev_attr_ask_step.attr)
		return vm->stats.vq ? a->mode : 0;
	return a->mode;
}

static const struct attribute_group dmm_attr_group = {
	.name = "dmm",
	.attrs = dmm_attrs,
	.is_visible = dmm_attr_visible,
};

const struct attribute_group *dmm_groups[] = {
	&dmm_attr_group,
	NULL,
};
