/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * virtio-dmm PCI proxy: a virtio-md-pci memory device
 */

#include "qemu/osdep.h"
#include "virtio-dmm-pci.h"
#include "hw/mem/memory-device.h"
#include "qapi/error.h"
#include "qapi/qapi-events-machine.h"

static VirtIODMM *virtio_dmm_pci_vdev(const MemoryDeviceState *md)
{
    return &VIRTIO_DMM_PCI(md)->vdev;
}

static void virtio_dmm_pci_realize(VirtIOPCIProxy *vpci_dev, Error **errp)
{
    VirtIODMMPCI *pci_dmm = VIRTIO_DMM_PCI(vpci_dev);

    if (vpci_dev->nvectors == DEV_NVECTORS_UNSPECIFIED) {
        vpci_dev->nvectors = 2;
    }
    virtio_pci_force_virtio_1(vpci_dev);
    qdev_realize(DEVICE(&pci_dmm->vdev), BUS(&vpci_dev->bus), errp);
}

static void virtio_dmm_pci_set_addr(MemoryDeviceState *md, uint64_t addr,
                                    Error **errp)
{
    object_property_set_uint(OBJECT(md), VIRTIO_DMM_ADDR_PROP, addr, errp);
}

static uint64_t virtio_dmm_pci_get_addr(const MemoryDeviceState *md)
{
    return object_property_get_uint(OBJECT(md), VIRTIO_DMM_ADDR_PROP,
                                    &error_abort);
}

static MemoryRegion *virtio_dmm_pci_get_memory_region(MemoryDeviceState *md,
                                                      Error **errp)
{
    VirtIODMM *vdmm = virtio_dmm_pci_vdev(md);

    return VIRTIO_DMM_GET_CLASS(vdmm)->get_memory_region(vdmm, errp);
}

static uint64_t virtio_dmm_pci_get_plugged_size(const MemoryDeviceState *md,
                                                Error **errp)
{
    return object_property_get_uint(OBJECT(md), VIRTIO_DMM_SIZE_PROP, errp);
}

static void virtio_dmm_pci_fill_device_info(const MemoryDeviceState *md,
                                            MemoryDeviceInfo *info)
{
    VirtioDMMDeviceInfo *vi = g_new0(VirtioDMMDeviceInfo, 1);
    VirtIODMM *vdmm = virtio_dmm_pci_vdev(md);
    DeviceState *dev = DEVICE(md);

    if (dev->id) {
        vi->id = g_strdup(dev->id);
    }
    VIRTIO_DMM_GET_CLASS(vdmm)->fill_device_info(vdmm, vi);
    info->u.virtio_dmm.data = vi;
    info->type = MEMORY_DEVICE_INFO_KIND_VIRTIO_DMM;
}

static uint64_t virtio_dmm_pci_get_min_alignment(const MemoryDeviceState *md)
{
    return object_property_get_uint(OBJECT(md), VIRTIO_DMM_BLOCK_SIZE_PROP,
                                    &error_abort);
}

static void virtio_dmm_pci_decide_memslots(MemoryDeviceState *md,
                                           unsigned int limit)
{
    VirtIODMM *vdmm = virtio_dmm_pci_vdev(md);

    VIRTIO_DMM_GET_CLASS(vdmm)->decide_memslots(vdmm, limit);
}

static unsigned int virtio_dmm_pci_get_memslots(MemoryDeviceState *md)
{
    VirtIODMM *vdmm = virtio_dmm_pci_vdev(md);

    return VIRTIO_DMM_GET_CLASS(vdmm)->get_memslots(vdmm);
}

static void virtio_dmm_pci_size_change_notify(Notifier *notifier, void *data)
{
    VirtIODMMPCI *pci_dmm = container_of(notifier, VirtIODMMPCI,
                                         size_change_notifier);
    DeviceState *dev = DEVICE(pci_dmm);
    g_autofree char *qom_path = object_get_canonical_path(OBJECT(dev));
    const uint64_t *plugged_size = data;

    /* The monitor rate-limits this event per qom-path. */
    qapi_event_send_memory_device_size_change(dev->id, *plugged_size,
                                              qom_path);
}

static void virtio_dmm_pci_unplug_request_check(VirtIOMDPCI *vmd,
                                                Error **errp)
{
    VirtIODMM *vdmm = &VIRTIO_DMM_PCI(vmd)->vdev;

    VIRTIO_DMM_GET_CLASS(vdmm)->unplug_request_check(vdmm, errp);
}

/* requested-size and requested-guest-size, forwarded to the device */
static void virtio_dmm_pci_get_requested(Object *obj, Visitor *v,
                                         const char *name, void *opaque,
                                         Error **errp)
{
    object_property_get(OBJECT(&VIRTIO_DMM_PCI(obj)->vdev), name, v, errp);
}

static void virtio_dmm_pci_set_requested(Object *obj, Visitor *v,
                                         const char *name, void *opaque,
                                         Error **errp)
{
    DeviceState *dev = DEVICE(obj);

    /* Past the unplug check, growing again would race with the unplug. */
    if (dev->pending_deleted_event) {
        error_setg(errp, "'%s' cannot be changed while the device is being"
                   " unplugged", name);
        return;
    }
    object_property_set(OBJECT(&VIRTIO_DMM_PCI(obj)->vdev), name, v, errp);
}

static const Property virtio_dmm_pci_class_properties[] = {
    DEFINE_PROP_BIT("ioeventfd", VirtIOPCIProxy, flags,
                    VIRTIO_PCI_FLAG_USE_IOEVENTFD_BIT, true),
    DEFINE_PROP_UINT32("vectors", VirtIOPCIProxy, nvectors,
                       DEV_NVECTORS_UNSPECIFIED),
};

static void virtio_dmm_pci_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioPCIClass *k = VIRTIO_PCI_CLASS(klass);
    PCIDeviceClass *pcidev_k = PCI_DEVICE_CLASS(klass);
    MemoryDeviceClass *mdc = MEMORY_DEVICE_CLASS(klass);
    VirtIOMDPCIClass *vmdc = VIRTIO_MD_PCI_CLASS(klass);

    k->realize = virtio_dmm_pci_realize;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    pcidev_k->revision = VIRTIO_PCI_ABI_VERSION;
    pcidev_k->class_id = PCI_CLASS_OTHERS;
    device_class_set_props(dc, virtio_dmm_pci_class_properties);

    mdc->get_addr = virtio_dmm_pci_get_addr;
    mdc->set_addr = virtio_dmm_pci_set_addr;
    mdc->get_plugged_size = virtio_dmm_pci_get_plugged_size;
    mdc->get_memory_region = virtio_dmm_pci_get_memory_region;
    mdc->fill_device_info = virtio_dmm_pci_fill_device_info;
    mdc->get_min_alignment = virtio_dmm_pci_get_min_alignment;
    mdc->decide_memslots = virtio_dmm_pci_decide_memslots;
    mdc->get_memslots = virtio_dmm_pci_get_memslots;

    vmdc->unplug_request_check = virtio_dmm_pci_unplug_request_check;
}

static void virtio_dmm_pci_instance_init(Object *obj)
{
    /* the device's dynamic properties the proxy shows as its own */
    static const char *const aliases[] = {
        VIRTIO_DMM_SIZE_PROP, VIRTIO_DMM_GUEST_SIZE_PROP,
        VIRTIO_DMM_BOOT_SIZE_PROP, VIRTIO_DMM_UNPLUGGED_SIZE_PROP,
        VIRTIO_DMM_STATS_INTERVAL_PROP, VIRTIO_DMM_GUEST_STATS_PROP,
    };
    VirtIODMMPCI *dev = VIRTIO_DMM_PCI(obj);
    VirtIODMM *vdmm = &dev->vdev;
    size_t i;

    virtio_instance_init_common(obj, vdmm, sizeof(*vdmm), TYPE_VIRTIO_DMM);

    /*
     * Static properties (memdev, node, memaddr, block-size) were aliased by
     * virtio_instance_init_common(); the dynamic ones are aliased here.
     * The notifier is never removed: proxy and device go away together.
     */
    dev->size_change_notifier.notify = virtio_dmm_pci_size_change_notify;
    VIRTIO_DMM_GET_CLASS(vdmm)->add_size_change_notifier(
        vdmm, &dev->size_change_notifier);

    for (i = 0; i < ARRAY_SIZE(aliases); i++) {
        object_property_add_alias(obj, aliases[i], OBJECT(vdmm), aliases[i]);
    }
    object_property_add(obj, VIRTIO_DMM_REQUESTED_SIZE_PROP, "size",
                        virtio_dmm_pci_get_requested,
                        virtio_dmm_pci_set_requested, NULL, NULL);
    object_property_add(obj, VIRTIO_DMM_REQUESTED_GUEST_SIZE_PROP, "size",
                        virtio_dmm_pci_get_requested,
                        virtio_dmm_pci_set_requested, NULL, NULL);
}

static const VirtioPCIDeviceTypeInfo virtio_dmm_pci_info = {
    .base_name = TYPE_VIRTIO_DMM_PCI,
    .parent = TYPE_VIRTIO_MD_PCI,
    .generic_name = "virtio-dmm-pci",
    .instance_size = sizeof(VirtIODMMPCI),
    .instance_init = virtio_dmm_pci_instance_init,
    .class_init = virtio_dmm_pci_class_init,
};

static void virtio_dmm_pci_register_types(void)
{
    virtio_pci_types_register(&virtio_dmm_pci_info);
}

type_init(virtio_dmm_pci_register_types)
