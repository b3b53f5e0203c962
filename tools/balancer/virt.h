/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dmm-balancer: QMP through libvirt (virt.c).  A guest whose "socket" is
 * libvirt:DOMAIN is reached with virDomainQemuMonitorCommand() on the
 * domain of that name, so that libvirt keeps the only monitor of its
 * QEMU.
 */
#ifndef DMM_BALANCER_VIRT_H
#define DMM_BALANCER_VIRT_H

#include "qmp.h"

#define VIRT_PREFIX "libvirt:"

/* Is @path a libvirt domain rather than a QMP socket? */
static inline int virt_is_domain(const char *path)
{
	return !strncmp(path, VIRT_PREFIX, sizeof(VIRT_PREFIX) - 1);
}

/* Was dmm-balancer built with libvirt (libvirt-dev)? */
int virt_supported(void);
/* The libvirt connection URI (default qemu:///system); before any connect. */
void virt_set_uri(const char *uri);
/* A domain name the balancer accepts: 1..63 printable characters, no '/' or ','. */
int virt_name_valid(const char *name);

/*
 * As qmp_connect(), qmp_call() and qmp_close() for @q->virt: connect
 * returns -ENOENT if there is no such domain and -ECONNREFUSED if it is
 * not running (its QEMU is gone), -EHOSTDOWN if libvirt cannot be
 * reached (nothing is known about the domain).
 */
int virt_connect(struct qmp *q, const char *domain);
int virt_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret);
void virt_close(struct qmp *q);

#endif
