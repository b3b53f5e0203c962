/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libqos driver for virtio-dmm-pci
 */

#ifndef TESTS_LIBQOS_VIRTIO_DMM_H
#define TESTS_LIBQOS_VIRTIO_DMM_H

#include "qgraph.h"
#include "virtio.h"
#include "virtio-pci.h"

typedef struct QVirtioDMM QVirtioDMM;
typedef struct QVirtioDMMPCI QVirtioDMMPCI;

/* The "virtio-dmm" interface: the device, and the QEMU that has it. */
struct QVirtioDMM {
    QVirtioDevice *vdev;
    QTestState *qts;
};

struct QVirtioDMMPCI {
    QVirtioPCIDevice pci_vdev;
    QVirtioDMM dmm;
};

#endif
