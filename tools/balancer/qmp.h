/* SPDX-License-Identifier: GPL-2.0 */
/* dmm-balancer: a QMP client with deadlines (qmp.c). */
#ifndef DMM_BALANCER_QMP_H
#define DMM_BALANCER_QMP_H

#include <stddef.h>
#include <string.h>
#include <jansson.h>

struct virt_dom;

struct qmp {
	int fd;			/* -1 while not connected */
	struct virt_dom *virt;	/* a libvirt domain (virt.c), or NULL */
	char buf[65536];	/* received, not yet parsed */
	size_t len;
	char error[256];	/* desc of the last QMP error */
	unsigned int overflows;	/* numbers out of range in the last answer */
	/* called for each event that arrives while waiting for an answer */
	void (*on_event)(void *opaque, json_t *event);
	void *opaque;
};

static inline int qmp_connected(const struct qmp *q)
{
	return q->fd >= 0 || q->virt;
}

/*
 * Connect and negotiate; 0 or -errno (-EPROTO: the peer is not QMP).
 * @path is a unix socket, or libvirt:DOMAIN (virt.h).
 */
int qmp_connect(struct qmp *q, const char *path, int timeout_ms);
/*
 * Run @cmd with @args (stolen; may be NULL).  A number in the answer that
 * jansson cannot hold exactly (an integer beyond int64, a real beyond
 * double: a guest can put them in its statistics) reads as null, and
 * q->overflows counts them; everything else is parsed as sent.  0 and *@ret (new reference,
 * if @ret), -EREMOTEIO for a QMP error (q->error says which), or -errno:
 * then the connection is closed (timeout, EOF, garbage).
 */
int qmp_call(struct qmp *q, const char *cmd, json_t *args, long long timeout_ms,
	     json_t **ret);
void qmp_close(struct qmp *q);
/*
 * One answer as text (@line, modified) into *@ret (may be NULL):
 * overflowing numbers nulled, QMP errors into q->error.  For virt.c.
 */
int qmp_answer(struct qmp *q, char *line, json_t **ret);

#endif
