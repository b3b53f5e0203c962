// SPDX-License-Identifier: GPL-2.0
/*
 * dmm-balancer: QMP through libvirt.
 *
 * A guest added as NAME=libvirt:DOMAIN is reached through libvirt's API:
 * virDomainQemuMonitorCommand() carries each QMP command to the monitor
 * libvirt already holds, so the domain needs no second monitor socket.
 * Its events (VIRTIO_DMM_ASK) come through a QEMU monitor event callback
 * that libvirt calls on the balancer's event thread; they are queued and
 * handed to the guest's on_event callback on the main thread, at its next
 * call, as the socket transport does with the events it reads.
 *
 * Deadlines: libvirt has no per-call timeout.  A call waits at most for
 * libvirt's job timeout (30 s) when another job holds the domain; a
 * libvirtd that stops answering is noticed by the keepalive set here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virt.h"

static const char *virt_uri = "qemu:///system";

void virt_set_uri(const char *uri)
{
	virt_uri = uri;
}

int virt_name_valid(const char *name)
{
	size_t n = strlen(name);
	const char *p;

	if (!n || n > 63)
		return 0;
	for (p = name; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '/' || *p == ',')
			return 0;
	return 1;
}

#ifdef HAVE_LIBVIRT
int virt_supported(void)
{
	return 1;
}

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#define VIRT_MAX_EVENTS 16	/* queued per domain between two calls */

struct virt_dom {
	virConnectPtr conn;	/* a reference to the connection of dom */
	virDomainPtr dom;
	int callback;		/* event callback id, or -1 */
	/* the queue, filled on the event thread: protected by lock */
	pthread_mutex_t lock;
	json_t *events[VIRT_MAX_EVENTS];
	int nevents;
	int closed;		/* virt_close() ran: drop what comes */
};

/*
 * The connection all domains share, opened at the first connect and
 * again after libvirtd went away.  Main thread only.
 */
static virConnectPtr conn;
static pthread_t event_thread;
static int event_loop_state;	/* 0 not started, 1 running, -1 failed */

/* libvirt's event loop: keepalives and monitor event callbacks. */
static void *virt_event_loop(void *unused)
{
	(void)unused;
	for (;;)
		if (virEventRunDefaultImpl() < 0)
			return NULL;
}

/* libvirt prints every error on stderr by default: they are returned here. */
static void virt_quiet(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

static int virt_open(void)
{
	if (conn && virConnectIsAlive(conn) == 1)
		return 0;
	if (conn) {
		virConnectClose(conn);
		conn = NULL;
	}
	if (!event_loop_state) {
		virSetErrorFunc(NULL, virt_quiet);
		event_loop_state = -1;
		if (virEventRegisterDefaultImpl() == 0 &&
		    pthread_create(&event_thread, NULL, virt_event_loop,
				   NULL) == 0) {
			pthread_detach(event_thread);
			event_loop_state = 1;
		}
	}
	if (event_loop_state < 0)
		return -ENOMEM;
	conn = virConnectOpen(virt_uri);
	if (!conn)
		return -EHOSTDOWN;
	/* every 5 s; after 3 unanswered the connection counts as dead */
	virConnectSetKeepAlive(conn, 5, 3);
	return 0;
}

/* On the event thread: queue the event as QMP would have sent it. */
static void virt_on_event(virConnectPtr c, virDomainPtr dom, const char *event,
			  long long seconds, unsigned int micros,
			  const char *details, void *opaque)
{
	struct virt_dom *v = opaque;
	json_error_t jerr;
	json_t *ev, *data = details ? json_loads(details, 0, &jerr) : NULL;

	(void)c;
	(void)dom;
	ev = json_pack("{s:s,s:{s:I,s:I}}", "event", event, "timestamp",
		       "seconds", (json_int_t)seconds, "microseconds",
		       (json_int_t)micros);
	if (!ev) {
		json_decref(data);
		return;
	}
	if (data)
		json_object_set_new(ev, "data", data);
	pthread_mutex_lock(&v->lock);
	if (!v->closed && v->nevents < VIRT_MAX_EVENTS) {
		v->events[v->nevents++] = ev;
		ev = NULL;
	}
	pthread_mutex_unlock(&v->lock);
	json_decref(ev);	/* dropped: a guest cannot fill memory */
}

static void virt_drain(struct virt_dom *v, int deliver, struct qmp *q)
{
	json_t *ev[VIRT_MAX_EVENTS];
	int i, n;

	pthread_mutex_lock(&v->lock);
	n = v->nevents;
	memcpy(ev, v->events, sizeof(ev[0]) * (size_t)n);
	v->nevents = 0;
	pthread_mutex_unlock(&v->lock);
	for (i = 0; i < n; i++) {
		if (deliver && q->on_event)
			q->on_event(q->opaque, ev[i]);
		json_decref(ev[i]);
	}
}

/* libvirt is done with @opaque: no callback can run any more. */
static void virt_free(void *opaque)
{
	struct virt_dom *v = opaque;

	virt_drain(v, 0, NULL);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

int virt_connect(struct qmp *q, const char *domain)
{
	struct virt_dom *v;
	virDomainPtr dom;
	virErrorPtr err;
	int rc, active;

	if (!virt_name_valid(domain))
		return -EINVAL;
	rc = virt_open();
	if (rc)
		return rc;
	dom = virDomainLookupByName(conn, domain);
	if (!dom) {
		err = virGetLastError();
		/* no such domain: nothing runs under that name */
		return err && err->code == VIR_ERR_NO_DOMAIN ? -ENOENT :
		       -EHOSTDOWN;
	}
	active = virDomainIsActive(dom);
	if (active != 1) {
		virDomainFree(dom);
		return active == 0 ? -ECONNREFUSED : -EHOSTDOWN;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		virDomainFree(dom);
		return -ENOMEM;
	}
	v->dom = dom;
	v->conn = conn;
	virConnectRef(conn);
	pthread_mutex_init(&v->lock, NULL);
	v->callback = virConnectDomainQemuMonitorEventRegister(conn, dom,
		"VIRTIO_DMM_ASK", virt_on_event, v, virt_free, 0);
	if (v->callback < 0) {
		/* without events the guest is still balanced: asks are lost */
		fprintf(stderr, "dmm-balancer: libvirt:%s: no monitor events: %s\n",
			domain, virGetLastErrorMessage());
	}
	q->virt = v;
	return 0;
}

int virt_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret)
{
	struct virt_dom *v = q->virt;
	char *text, *result = NULL;
	json_t *req;
	int rc;

	req = json_pack("{s:s}", "execute", cmd);
	if (args)
		json_object_set_new(req, "arguments", args);
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return -ENOMEM;
	rc = virDomainQemuMonitorCommand(v->dom, text, &result, 0);
	free(text);
	virt_drain(v, 1, q);
	if (rc < 0) {
		/* the domain stopped, or libvirt went away: connect again */
		snprintf(q->error, sizeof(q->error), "%s",
			 virGetLastErrorMessage());
		qmp_close(q);
		return -ECONNRESET;
	}
	rc = qmp_answer(q, result, ret);
	free(result);
	return rc;
}

void virt_close(struct qmp *q)
{
	struct virt_dom *v = q->virt;
	virConnectPtr c = v->conn;

	q->virt = NULL;
	pthread_mutex_lock(&v->lock);
	v->closed = 1;
	pthread_mutex_unlock(&v->lock);
	virDomainFree(v->dom);
	/*
	 * Registered, v is freed by virt_free() when libvirt lets go of it
	 * (at once, or when the connection closes); not, it is freed here.
	 */
	if (v->callback >= 0)
		virConnectDomainQemuMonitorEventDeregister(c, v->callback);
	else
		virt_free(v);
	virConnectClose(c);	/* the reference taken in virt_connect() */
}

#else /* !HAVE_LIBVIRT */

int virt_supported(void)
{
	return 0;
}

int virt_connect(struct qmp *q, const char *domain)
{
	(void)q;
	(void)domain;
	return -EPROTONOSUPPORT;	/* built without libvirt-dev */
}

int virt_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret)
{
	(void)q;
	(void)cmd;
	(void)ret;
	json_decref(args);
	return -ENOTCONN;
}

void virt_close(struct qmp *q)
{
	q->virt = NULL;
}

#endif
