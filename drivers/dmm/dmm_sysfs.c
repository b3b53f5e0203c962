// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: sysfs, in the "dmm" group of the virtio device.
 * Documented in Documentation/ABI/testing/sysfs-driver-virtio-dmm.
 */
#include <linux/device.h>
#include <linux/sysfs.h>
#include <linux/virtio.h>

#include "dmm.h"

static struct virtio_dmm *dev_to_dmm(struct device *dev)
{
	return dev_to_virtio(dev)->priv;
}

/* Show a u64 field of the device under hotplug_mutex. */
#define DMM_ATTR_U64(_name, _fmt)					\
static ssize_t _name##_show(struct device *dev,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	struct virtio_dmm *vm = dev_to_dmm(dev);			\
	u64 val;							\
									\
	mutex_lock(&vm->hotplug_mutex);					\
	val = vm->_name;						\
	mutex_unlock(&vm->hotplug_mutex);				\
	return sysfs_emit(buf, _fmt "\n", val);				\
}									\
static DEVICE_ATTR_RO(_name)

DMM_ATTR_U64(plugged_size, "%llu");
DMM_ATTR_U64(requested_size, "%llu");
DMM_ATTR_U64(block_size, "%llu");
DMM_ATTR_U64(region_addr, "0x%llx");
DMM_ATTR_U64(region_size, "%llu");
DMM_ATTR_U64(boot_size, "%llu");
DMM_ATTR_U64(plug_failures, "%llu");
DMM_ATTR_U64(unplug_failures, "%llu");

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
