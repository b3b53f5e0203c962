/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libqos driver for virtio-dmm-pci
 *
 * The device is a memory device: the machine gets room for it (slots,
 * maxmem) and a memory backend for its region, named mem0; the device is
 * dmm0.  A test may add -m options (they merge with these) and device
 * options.  -nodefaults: no default NIC, whose option ROM a build without
 * firmware blobs lacks.
 */

#include "qemu/osdep.h"
#include "../libqtest.h"
#include "qemu/module.h"
#include "qgraph.h"
#include "virtio-dmm.h"

static void *qvirtio_dmm_pci_get_driver(void *object, const char *interface)
{
    QVirtioDMMPCI *v_dmm = object;

    if (!g_strcmp0(interface, "pci-device")) {
        return v_dmm->pci_vdev.pdev;
    }
    if (!g_strcmp0(interface, "virtio")) {
        return v_dmm->dmm.vdev;
    }
    if (!g_strcmp0(interface, "virtio-dmm")) {
        return &v_dmm->dmm;
    }

    fprintf(stderr, "%s not present in virtio-dmm-pci\n", interface);
    g_assert_not_reached();
}

static void *virtio_dmm_pci_create(void *pci_bus, QGuestAllocator *t_alloc,
                                   void *addr)
{
    QVirtioDMMPCI *virtio_dpci = g_new0(QVirtioDMMPCI, 1);
    QOSGraphObject *obj = &virtio_dpci->pci_vdev.obj;

    virtio_pci_init(&virtio_dpci->pci_vdev, pci_bus, addr);
    virtio_dpci->dmm.vdev = &virtio_dpci->pci_vdev.vdev;
    virtio_dpci->dmm.qts = ((QPCIBus *)pci_bus)->qts;

    obj->get_driver = qvirtio_dmm_pci_get_driver;

    return obj;
}

static void virtio_dmm_register_nodes(void)
{
    QPCIAddress addr = {
        .devfn = QPCI_DEVFN(4, 0),
    };

    QOSGraphEdgeOptions opts = {
        .before_cmd_line = "-nodefaults -m 512M,slots=2,maxmem=4G"
                           " -object memory-backend-ram,id=mem0,size=1G,"
                           "reserve=off",
        .extra_device_opts = "addr=04.0,id=dmm0,memdev=mem0",
    };

    add_qpci_address(&opts, &addr);
    qos_node_create_driver("virtio-dmm-pci", virtio_dmm_pci_create);
    qos_node_consumes("virtio-dmm-pci", "pci-bus", &opts);
    qos_node_produces("virtio-dmm-pci", "pci-device");
    qos_node_produces("virtio-dmm-pci", "virtio");
    qos_node_produces("virtio-dmm-pci", "virtio-dmm");
}

libqos_init(virtio_dmm_register_nodes);
