/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * virtio-dmm PCI proxy
 */

#ifndef QEMU_VIRTIO_DMM_PCI_H
#define QEMU_VIRTIO_DMM_PCI_H

#include "hw/virtio/virtio-md-pci.h"
#include "hw/virtio/virtio-dmm.h"
#include "qom/object.h"

typedef struct VirtIODMMPCI VirtIODMMPCI;

#define TYPE_VIRTIO_DMM_PCI "virtio-dmm-pci-base"
DECLARE_INSTANCE_CHECKER(VirtIODMMPCI, VIRTIO_DMM_PCI, TYPE_VIRTIO_DMM_PCI)

struct VirtIODMMPCI {
    VirtIOMDPCI parent_obj;
    VirtIODMM vdev;
    /* sends MEMORY_DEVICE_SIZE_CHANGE when the plugged size changes */
    Notifier size_change_notifier;
};

#endif
