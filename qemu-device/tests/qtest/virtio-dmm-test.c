/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for virtio-dmm: requests straight into the virtqueue
 *
 * Valid requests are answered, invalid ones get ERROR or NACK and change
 * nothing, protocol violations mark the device broken without taking QEMU
 * down, and a machine reset unplugs everything.
 *
 * The tests run through qgraph on every machine with a PCI bus
 * (libqos/virtio-dmm.c), each in a QEMU of its own: they count from a
 * device nothing touched yet.  DMM_TESTS lists them with the features
 * they negotiate and the options they need.
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qemu/bswap.h"
#include "elf.h"
#include "qemu/module.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "libqos/qgraph.h"
#include "libqos/qos_external.h"
#include "libqos/virtio-dmm.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_dmm.h"

#define DMM_TIMEOUT_US  (10 * 1000 * 1000)
#define BOOT_SIZE       (512 * 1024 * 1024ULL)
#define BLOCK_SIZE      (128 * 1024 * 1024ULL)
#define REGION_SIZE     (1024 * 1024 * 1024ULL)

typedef struct DMMTest {
    QTestState *qts;
    QGuestAllocator *alloc;
    QVirtioDevice *vdev;
    QVirtQueue *vq;
    QVirtQueue *report_vq;
    QVirtQueue *page_vq;
    QVirtQueue *hint_vq;
    QVirtQueue *stats_vq;
    uint64_t region;
    /* the test's data (DMMTestCase) */
    const void *data;
} DMMTest;

/* Negotiate @extra features on the device qgraph started, set up queues. */
static DMMTest *dmm_setup(QVirtioDMM *dmm, QGuestAllocator *alloc,
                          uint64_t extra)
{
    DMMTest *t = g_new0(DMMTest, 1);
    uint64_t features;

    t->qts = dmm->qts;
    t->alloc = alloc;
    t->vdev = dmm->vdev;
    features = qvirtio_get_features(t->vdev);
    g_assert(features & (1ULL << VIRTIO_F_VERSION_1));
    g_assert((features & extra) == extra);
    qvirtio_set_features(t->vdev, (1ULL << VIRTIO_F_VERSION_1) | extra);
    t->vq = qvirtqueue_setup(t->vdev, alloc, 0);
    if (extra & (1ULL << VIRTIO_DMM_F_FREE_PAGE_REPORTING)) {
        t->report_vq = qvirtqueue_setup(t->vdev, alloc, VIRTIO_DMM_VQ_REPORT);
    }
    if (extra & (1ULL << VIRTIO_DMM_F_PAGES)) {
        /* queue indices are fixed, with or without the report queue */
        t->page_vq = qvirtqueue_setup(t->vdev, alloc, VIRTIO_DMM_VQ_PAGE);
    }
    if (extra & (1ULL << VIRTIO_DMM_F_HINTS)) {
        t->hint_vq = qvirtqueue_setup(t->vdev, alloc, VIRTIO_DMM_VQ_HINT);
    }
    if (extra & (1ULL << VIRTIO_DMM_F_STATS)) {
        t->stats_vq = qvirtqueue_setup(t->vdev, alloc, VIRTIO_DMM_VQ_STATS);
    }
    qvirtio_set_driver_ok(t->vdev);
    t->region = qvirtio_config_readq(t->vdev,
                    offsetof(struct virtio_dmm_config, region_addr));
    return t;
}

/* The queues go; qgraph resets the device and stops QEMU. */
static void dmm_teardown(DMMTest *t)
{
    QVirtQueue *vqs[] = {
        t->stats_vq, t->hint_vq, t->page_vq, t->report_vq, t->vq,
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(vqs); i++) {
        if (vqs[i]) {
            qvirtqueue_cleanup(t->vdev->bus, vqs[i], t->alloc);
        }
    }
    g_free(t);
}

/* The device's entry of query-memory-devices (the only device). */
static QDict *dmm_info(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'query-memory-devices' }");
    QList *list = qdict_get_qlist(rsp, "return");
    QDict *data = qdict_get_qdict(qobject_to(QDict, qlist_peek(list)),
                                  "data");

    qobject_ref(data);
    qobject_unref(rsp);
    return data;
}

/* A number of query-memory-devices: the counters are only there. */
static uint64_t dmm_info_uint(QTestState *qts, const char *field)
{
    QDict *info = dmm_info(qts);
    uint64_t v;

    g_assert(qdict_haskey(info, field));
    v = qdict_get_int(info, field);
    qobject_unref(info);
    return v;
}

static uint64_t dmm_counter(DMMTest *t, const char *field)
{
    return dmm_info_uint(t->qts, field);
}

static uint64_t dmm_qom_size(DMMTest *t, const char *prop)
{
    QDict *rsp = qtest_qmp(t->qts, "{ 'execute': 'qom-get', 'arguments':"
                           " { 'path': 'dmm0', 'property': %s } }", prop);
    uint64_t v;

    g_assert(qdict_haskey(rsp, "return"));
    v = qdict_get_int(rsp, "return");
    qobject_unref(rsp);
    return v;
}

/* qom-set @prop to @size; NULL, or the error QMP answered with. */
static char *dmm_qom_set(DMMTest *t, const char *prop, uint64_t size)
{
    QDict *rsp = qtest_qmp(t->qts, "{ 'execute': 'qom-set', 'arguments':"
                           " { 'path': 'dmm0', 'property': %s,"
                           " 'value': %" PRIu64 " } }", prop, size);
    char *desc = NULL;

    if (!qdict_haskey(rsp, "return")) {
        desc = g_strdup(qdict_get_str(qdict_get_qdict(rsp, "error"),
                                      "desc"));
    }
    qobject_unref(rsp);
    return desc;
}

/* The guest's target total RAM. */
static void dmm_set_requested(DMMTest *t, uint64_t size)
{
    g_assert_null(dmm_qom_set(t, "requested-guest-size", size));
}

/*
 * Put @req_len bytes of @req and a @resp_len response buffer on the queue.
 * Returns the head of the chain.
 */
static uint32_t dmm_post_vq(DMMTest *t, QVirtQueue *vq, const void *req,
                            size_t req_len, size_t resp_len,
                            uint64_t *resp_addr)
{
    QTestState *qts = t->qts;
    uint64_t req_addr = guest_alloc(t->alloc, req_len);
    uint32_t head;

    *resp_addr = guest_alloc(t->alloc, resp_len);
    qtest_memwrite(qts, req_addr, req, req_len);
    qtest_memset(qts, *resp_addr, 0xff, resp_len);
    head = qvirtqueue_add(qts, vq, req_addr, req_len, false, true);
    qvirtqueue_add(qts, vq, *resp_addr, resp_len, true, false);
    qvirtqueue_kick(qts, t->vdev, vq, head);
    return head;
}

static uint32_t dmm_post(DMMTest *t, const void *req, size_t req_len,
                         size_t resp_len, uint64_t *resp_addr)
{
    return dmm_post_vq(t, t->vq, req, req_len, resp_len, resp_addr);
}

/* Send a well-formed request and return the response type. */
static uint16_t dmm_send(DMMTest *t, const struct virtio_dmm_req *req,
                         struct virtio_dmm_resp *resp)
{
    uint64_t resp_addr;
    uint32_t head, len;

    head = dmm_post(t, req, sizeof(*req), sizeof(*resp), &resp_addr);
    qvirtio_wait_used_elem(t->qts, t->vdev, t->vq, head, &len,
                           DMM_TIMEOUT_US);
    g_assert_cmpuint(len, ==, sizeof(*resp));
    qtest_memread(t->qts, resp_addr, resp, sizeof(*resp));
    return le16_to_cpu(resp->type);
}

static uint16_t dmm_range(DMMTest *t, uint16_t type, uint64_t addr,
                          uint64_t nb_blocks)
{
    struct virtio_dmm_req req = {
        .type = cpu_to_le16(type),
        .u.plug.addr = cpu_to_le64(addr),
        .u.plug.nb_blocks = cpu_to_le64(nb_blocks),
    };
    struct virtio_dmm_resp resp;

    return dmm_send(t, &req, &resp);
}

static uint16_t dmm_state(DMMTest *t, uint64_t addr, uint64_t nb_blocks)
{
    struct virtio_dmm_req req = {
        .type = cpu_to_le16(VIRTIO_DMM_REQ_STATE),
        .u.state.addr = cpu_to_le64(addr),
        .u.state.nb_blocks = cpu_to_le64(nb_blocks),
    };
    struct virtio_dmm_resp resp;

    g_assert_cmpuint(dmm_send(t, &req, &resp), ==, VIRTIO_DMM_RESP_ACK);
    return le16_to_cpu(resp.u.state.state);
}

/*
 * Ask for QEMU's user-space NVMe driver on a device that does not exist:
 * it disables RAM discards (for VFIO, util/vfio-helpers.c) before it
 * opens /dev/vfio.  Returns the error QMP answered with.
 */
static char *dmm_blockdev_add_nvme(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'blockdev-add', 'arguments': {"
                           " 'driver': 'nvme', 'node-name': 'nvme0',"
                           " 'device': '0000:00:1f.7', 'namespace': 1 } }");
    QDict *err = qdict_get_qdict(rsp, "error");
    char *desc;

    g_assert(err);
    desc = g_strdup(qdict_get_str(err, "desc"));
    qobject_unref(rsp);
    return desc;
}

/*
 * VFIO pins guest memory, so discarding it would lose the guest's writes:
 * QEMU refuses a VFIO user while virtio-dmm is there, the same way it
 * refuses virtio-dmm when VFIO came first (ram_block_discard_require()).
 * Without the device the same request gets as far as /dev/vfio.
 */
static void test_vfio_refused(DMMTest *t)
{
    QTestState *plain;
    char *desc;

    desc = dmm_blockdev_add_nvme(t->qts);
    g_test_message("with virtio-dmm: %s", desc);
    g_assert(strstr(desc, "Cannot set discarding of RAM broken"));
    g_free(desc);

    plain = qtest_init("-m 512M -nodefaults");
    desc = dmm_blockdev_add_nvme(plain);
    g_test_message("without virtio-dmm: %s", desc);
    g_assert(!strstr(desc, "Cannot set discarding of RAM broken"));
    g_free(desc);
    qtest_quit(plain);
}

static void test_config(DMMTest *t)
{
    QVirtioDevice *d = t->vdev;

    g_assert_cmphex(qvirtio_config_readq(d,
                    offsetof(struct virtio_dmm_config, block_size)), ==,
                    BLOCK_SIZE);
    g_assert_cmphex(qvirtio_config_readq(d,
                    offsetof(struct virtio_dmm_config, region_size)), ==,
                    REGION_SIZE);
    g_assert_cmphex(qvirtio_config_readq(d,
                    offsetof(struct virtio_dmm_config, boot_size)), ==,
                    BOOT_SIZE);
    g_assert_cmphex(qvirtio_config_readq(d,
                    offsetof(struct virtio_dmm_config, requested_size)), ==,
                    BOOT_SIZE);
    g_assert_cmphex(qvirtio_config_readq(d,
                    offsetof(struct virtio_dmm_config, plugged_size)), ==, 0);
    g_assert_cmphex(t->region % BLOCK_SIZE, ==, 0);
}

/*
 * The device always has its five queues at their fixed indices, whatever
 * it offers; a driver sets up only those it uses.
 */
static void test_five_queues(DMMTest *t)
{
    QVirtioDevice *vdev = t->vdev;
    int i;

    for (i = 0; i < VIRTIO_DMM_NUM_VQS; i++) {
        vdev->bus->queue_select(vdev, i);
        g_assert_cmpuint(vdev->bus->get_queue_size(vdev), >, 0);
    }
    vdev->bus->queue_select(vdev, VIRTIO_DMM_NUM_VQS);
    g_assert_cmpuint(vdev->bus->get_queue_size(vdev), ==, 0);
}

static void test_plug_unplug(DMMTest *t)
{

    dmm_set_requested(t, BOOT_SIZE + 2 * BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 2), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, 2 * BLOCK_SIZE);
    g_assert_cmpuint(dmm_state(t, t->region, 2), ==,
                     VIRTIO_DMM_STATE_PLUGGED);
    g_assert_cmpuint(dmm_state(t, t->region, 3), ==, VIRTIO_DMM_STATE_MIXED);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG,
                               t->region + BLOCK_SIZE, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, 0);
    g_assert_cmpuint(dmm_state(t, t->region, 8), ==,
                     VIRTIO_DMM_STATE_UNPLUGGED);
}

/* Every rule a request can break: answered, and nothing changes. */
static void test_bad_requests(DMMTest *t)
{
    const uint64_t r = t->region;
    struct virtio_dmm_req req = { .type = cpu_to_le16(VIRTIO_DMM_REQ_PLUG) };
    struct virtio_dmm_resp resp;

    /* nothing may be plugged beyond requested-size */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_NACK);
    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 2), ==,
                     VIRTIO_DMM_RESP_NACK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r + 4096, 1), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r - BLOCK_SIZE, 1),
                     ==, VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r + REGION_SIZE, 1),
                     ==, VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 0), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, UINT64_MAX), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, UINT64_MAX -
                               BLOCK_SIZE + 1, 2), ==, VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG,
                               r + REGION_SIZE - BLOCK_SIZE, 2), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, 0x77, r, 1), ==, VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ERROR);
    req.padding[1] = cpu_to_le16(1);
    req.u.plug.addr = cpu_to_le64(r);
    req.u.plug.nb_blocks = cpu_to_le64(1);
    g_assert_cmpuint(dmm_send(t, &req, &resp), ==, VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, 0);

    /* plugged twice, unplugged with an unplugged neighbour */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG, r, 2), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(dmm_state(t, r, 1), ==, VIRTIO_DMM_STATE_PLUGGED);
}

/* Wait until the device status has @bit set (or time out). */
static uint8_t dmm_wait_status(DMMTest *t, uint8_t bit)
{
    QVirtioDevice *d = t->vdev;
    gint64 start = g_get_monotonic_time();
    uint8_t status;

    while (!((status = d->bus->get_status(d)) & bit) &&
           g_get_monotonic_time() - start < DMM_TIMEOUT_US) {
        qtest_clock_step(t->qts, 100);
    }
    return status;
}

static void test_machine_reset(DMMTest *t)
{
    QDict *rsp;

    dmm_set_requested(t, BOOT_SIZE + 2 * BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 2), ==,
                     VIRTIO_DMM_RESP_ACK);
    rsp = qtest_qmp(t->qts, "{ 'execute': 'system_reset' }");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    qtest_qmp_eventwait(t->qts, "RESET");
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, 0);
    g_assert_cmpuint(dmm_qom_size(t, "requested-guest-size"), ==,
                     BOOT_SIZE + 2 * BLOCK_SIZE);
}

/* Report [gpa, gpa + len) as free; returns when the device gave it back. */
static void dmm_report(DMMTest *t, uint64_t gpa, uint32_t len)
{
    uint32_t head;

    head = qvirtqueue_add(t->qts, t->report_vq, gpa, len, true, false);
    qvirtqueue_kick(t->qts, t->vdev, t->report_vq, head);
    qvirtio_wait_used_elem(t->qts, t->vdev, t->report_vq, head,
                           NULL, DMM_TIMEOUT_US);
}

/*
 * Reports are advice: ranges of boot RAM and of plugged blocks are
 * discarded; unplugged blocks are refused and stay unplugged.
 */
static void test_free_page_reports(DMMTest *t)
{
    uint64_t boot_page = guest_alloc(t->alloc, 2 * 1024 * 1024);

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 1), ==,
                     VIRTIO_DMM_RESP_ACK);

    /*
     * Straddling a plugged and an unplugged block: the unplugged page is
     * no guest memory (a bounce buffer, refused), the plugged one is the
     * guest's to give.
     */
    dmm_report(t, t->region + BLOCK_SIZE - 4096, 8192);
    g_assert_cmpuint(dmm_counter(t, "refused-reports"), ==, 1);
    g_assert_cmpuint(dmm_counter(t, "reported-size"), ==, 4096);

    /* plugged block and boot RAM: discarded */
    dmm_report(t, t->region, 2 * 1024 * 1024);
    g_assert_cmpuint(dmm_counter(t, "reported-size"), ==,
                     2 * 1024 * 1024 + 4096);
    qtest_writeq(t->qts, boot_page, 0x1122334455667788ULL);
    dmm_report(t, boot_page & ~0xfffULL, 4096);
    g_assert_cmpuint(dmm_counter(t, "reported-size"), ==,
                     2 * 1024 * 1024 + 2 * 4096);
    /* nothing about the blocks changed */
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(dmm_state(t, t->region, 2), ==, VIRTIO_DMM_STATE_MIXED);
}

/*
 * A report of something that is not RAM (the local APIC's page) reaches the
 * device as a bounce buffer: refused, nothing discarded, device healthy.
 */
static void test_report_outside_ram(DMMTest *t)
{
    QVirtioDevice *d = t->vdev;

    dmm_report(t, 0xfee00000ULL, 4096);
    g_assert_cmpuint(dmm_counter(t, "refused-reports"), ==, 1);
    g_assert_cmpuint(dmm_counter(t, "reported-size"), ==, 0);
    g_assert(!(d->bus->get_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET));
}

/* --- sub-blocks --- */

#define SUB_BLOCK       (2 * 1024 * 1024ULL)

static void test_sub_blocks(DMMTest *t)
{
    QVirtioDevice *d = t->vdev;
    const uint64_t r = t->region;

    g_assert_cmphex(qvirtio_config_readq(d,
                    offsetof(struct virtio_dmm_config, sub_block_size)), ==,
                    SUB_BLOCK);
    dmm_set_requested(t, BOOT_SIZE + 3 * SUB_BLOCK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG_SB,
                               r + BLOCK_SIZE + 4 * SUB_BLOCK, 3), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, 3 * SUB_BLOCK);
    g_assert_cmpuint(dmm_state(t, r + BLOCK_SIZE, 1), ==,
                     VIRTIO_DMM_STATE_MIXED);
    /* beyond requested, unaligned, past the end, whole-block rules */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG_SB, r, 1), ==,
                     VIRTIO_DMM_RESP_NACK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_SB,
                               r + BLOCK_SIZE + 4 * SUB_BLOCK + 4096, 1), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_SB,
                               r + REGION_SIZE - SUB_BLOCK, 2), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG, r + BLOCK_SIZE, 1),
                     ==, VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_SB,
                               r + BLOCK_SIZE + 3 * SUB_BLOCK, 2), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, 3 * SUB_BLOCK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_SB,
                               r + BLOCK_SIZE + 5 * SUB_BLOCK, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, 2 * SUB_BLOCK);
}

/* --- page requests --- */

#define PAGE            4096ULL
/* boot RAM well above what libqos allocates from */
#define BOOT_PAGE(i)    (256 * 1024 * 1024ULL + (i) * PAGE)
#define DMM_PAGES       (1ULL << VIRTIO_DMM_F_PAGES)
#define DMM_RANGES      (DMM_PAGES | 1ULL << VIRTIO_DMM_F_PAGE_RANGES)

/*
 * Send a page request of @nb addresses in a buffer of @len bytes (0: just
 * enough) and return the response type.
 */
/* The order of the page requests dmm_pages_len() sends. */
static uint16_t dmm_page_order;

static uint16_t dmm_pages_len(DMMTest *t, uint16_t type, const uint64_t *addrs,
                              uint32_t nb, size_t len)
{
    size_t full = sizeof(struct virtio_dmm_page_req) + nb * sizeof(uint64_t);
    g_autofree struct virtio_dmm_page_req *req = g_malloc0(full);
    struct virtio_dmm_resp resp;
    uint64_t resp_addr;
    uint32_t head, used, i;

    req->type = cpu_to_le16(type);
    req->order = cpu_to_le16(dmm_page_order);
    req->nb_pages = cpu_to_le32(nb);
    for (i = 0; i < nb; i++) {
        req->addr[i] = cpu_to_le64(addrs[i]);
    }
    head = dmm_post_vq(t, t->page_vq, req, len ? len : full, sizeof(resp),
                       &resp_addr);
    qvirtio_wait_used_elem(t->qts, t->vdev, t->page_vq, head, &used,
                           DMM_TIMEOUT_US);
    g_assert_cmpuint(used, ==, sizeof(resp));
    qtest_memread(t->qts, resp_addr, &resp, sizeof(resp));
    return le16_to_cpu(resp.type);
}

#define dmm_pages(t, type, ...) ({                                  \
    const uint64_t a_[] = { __VA_ARGS__ };                          \
    dmm_pages_len(t, type, a_, ARRAY_SIZE(a_), 0); })

static void test_pages(DMMTest *t)
{
    QVirtioDevice *d = t->vdev;

    g_assert_cmpuint(qvirtio_config_readl(d,
                     offsetof(struct virtio_dmm_config, page_size)), ==,
                     PAGE);
    g_assert_cmpuint(qvirtio_config_readl(d,
                     offsetof(struct virtio_dmm_config, max_pages)), >=, 256);
    /* below boot size, and back */
    dmm_set_requested(t, BOOT_SIZE - 2 * PAGE);
    qtest_writeq(t->qts, BOOT_PAGE(7), 0x1122334455667788ULL);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(0),
                               BOOT_PAGE(7)), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 2 * PAGE);
    g_assert_cmpuint(dmm_qom_size(t, "guest-size"), ==,
                     BOOT_SIZE - 2 * PAGE);
    g_assert_cmphex(qvirtio_config_readq(d,
                    offsetof(struct virtio_dmm_config, unplugged_size)), ==,
                    2 * PAGE);
    /* an unplugged page reads as zero once the host discarded it */
    g_assert_cmphex(qtest_readq(t->qts, BOOT_PAGE(7)), ==, 0);
    /* the guest migrated page 7 to page 9 */
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_MOVE_PAGES, BOOT_PAGE(7),
                               BOOT_PAGE(9)), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 2 * PAGE);
    dmm_set_requested(t, BOOT_SIZE);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(0),
                               BOOT_PAGE(9)), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "guest-size"), ==, BOOT_SIZE);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 0);
}

/*
 * Ranges of boot RAM: one entry per 2 MiB (order 9), discarded whole; a
 * range that is not one stretch of boot RAM (the first 2 MiB hold the VGA
 * window and the BIOS) is an ERROR.
 */
static void test_page_ranges(DMMTest *t)
{
    const uint64_t r = PAGE << 9;

    dmm_set_requested(t, BOOT_SIZE - 2 * r);
    qtest_writeq(t->qts, BOOT_PAGE(512 + 3), 0x1122334455667788ULL);
    dmm_page_order = 9;
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, 0), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(0),
                               BOOT_PAGE(512)), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 2 * r);
    g_assert_cmphex(qtest_readq(t->qts, BOOT_PAGE(512 + 3)), ==, 0);
    /* overlapping what is unplugged; a MOVE of ranges */
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES,
                               BOOT_PAGE(1024), BOOT_PAGE(512)), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_MOVE_PAGES, BOOT_PAGE(0),
                               BOOT_PAGE(1024)), ==, VIRTIO_DMM_RESP_ERROR);
    /* back in single pages and in a range */
    dmm_set_requested(t, BOOT_SIZE);
    dmm_page_order = 0;
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(5)),
                     ==, VIRTIO_DMM_RESP_ACK);
    dmm_page_order = 9;
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(512)),
                     ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, r - PAGE);
    dmm_page_order = 0;
}

/*
 * Without F_PAGE_RANGES negotiated an order is an ERROR.
 */
static void test_page_ranges_off(DMMTest *t)
{
    dmm_set_requested(t, BOOT_SIZE - (PAGE << 9));
    dmm_page_order = 9;
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(0)),
                     ==, VIRTIO_DMM_RESP_ERROR);
    dmm_page_order = 0;
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 0);
}

/*
 * The names virtio-mem has mean what they mean there (the region's
 * memory); the guest's total RAM has names of its own.
 */
static void test_size_names(DMMTest *t)
{
    QDict *info;
    char *err;

    g_assert_cmpuint(dmm_qom_size(t, "requested-size"), ==, 0);
    g_assert_cmpuint(dmm_qom_size(t, "requested-guest-size"), ==, BOOT_SIZE);
    g_assert_cmpuint(dmm_qom_size(t, "guest-size"), ==, BOOT_SIZE);
    /* requested-size is the region memory to plug: boot size + it */
    g_assert_null(dmm_qom_set(t, "requested-size", BLOCK_SIZE));
    g_assert_cmpuint(dmm_qom_size(t, "requested-guest-size"), ==,
                     BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmphex(qvirtio_config_readq(t->vdev,
                    offsetof(struct virtio_dmm_config, requested_size)), ==,
                    BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(dmm_qom_size(t, "guest-size"), ==,
                     BOOT_SIZE + BLOCK_SIZE);
    info = dmm_info(t->qts);
    g_assert_cmpuint(qdict_get_int(info, "requested-size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(qdict_get_int(info, "size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(qdict_get_int(info, "max-size"), ==, REGION_SIZE);
    g_assert_cmpuint(qdict_get_int(info, "requested-guest-size"), ==,
                     BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(qdict_get_int(info, "guest-size"), ==,
                     BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(qdict_get_int(info, "auto-grant-limit"), ==,
                     BOOT_SIZE + REGION_SIZE);
    g_assert(!qdict_haskey(info, "plugged-size"));
    g_assert(!qdict_haskey(info, "region-size"));
    qobject_unref(info);
    /* beyond the region, or not a page multiple: refused, nothing changes */
    err = dmm_qom_set(t, "requested-size", REGION_SIZE + BLOCK_SIZE);
    g_assert(err && strstr(err, "exceeds the memdev size"));
    g_free(err);
    err = dmm_qom_set(t, "requested-size", UINT64_MAX);
    g_assert(err && strstr(err, "exceeds the memdev size"));
    g_free(err);
    err = dmm_qom_set(t, "requested-size", BLOCK_SIZE + 512);
    g_assert(err && strstr(err, "'requested-size' 0x8000200: "));
    g_free(err);
    g_assert_cmpuint(dmm_qom_size(t, "requested-guest-size"), ==,
                     BOOT_SIZE + BLOCK_SIZE);
    /* below the boot size no region memory is asked for */
    dmm_set_requested(t, BOOT_SIZE - 4 * PAGE);
    g_assert_cmpuint(dmm_qom_size(t, "requested-size"), ==, 0);
    g_assert_null(dmm_qom_set(t, "requested-size", 0));
    g_assert_cmpuint(dmm_qom_size(t, "requested-guest-size"), ==, BOOT_SIZE);
}

/* requested-size=128M on the command line: the target is boot + 128M. */
static void test_size_names_cmdline(DMMTest *t)
{
    g_assert_cmpuint(dmm_qom_size(t, "requested-size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(dmm_qom_size(t, "requested-guest-size"), ==,
                     BOOT_SIZE + BLOCK_SIZE);
}

/* @field of the data of event @ev, which must be there. */
static uint64_t dmm_event_size(QDict *ev, const char *field)
{
    QDict *data;

    g_assert(ev);
    data = qdict_get_qdict(ev, "data");
    g_assert(qdict_haskey(data, field));
    return qdict_get_int(data, field);
}

/*
 * Every change of what the guest has is an event with both sizes, a
 * shrink in pages too (MEMORY_DEVICE_SIZE_CHANGE stays virtio-mem's: the
 * plugged size, which pages do not change).  The first event of a second
 * is sent at once, a later one when the second is over.
 */
static void test_size_change_pages(DMMTest *t)
{
    QDict *ev;

    dmm_set_requested(t, BOOT_SIZE - 2 * PAGE);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(0),
                               BOOT_PAGE(7)), ==, VIRTIO_DMM_RESP_ACK);
    /* a QMP round trip: what the device sent is read by then */
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 2 * PAGE);
    ev = qtest_qmp_event_ref(t->qts, "VIRTIO_DMM_SIZE_CHANGE");
    g_assert_cmpuint(dmm_event_size(ev, "size"), ==, 0);
    g_assert_cmpuint(dmm_event_size(ev, "guest-size"), ==,
                     BOOT_SIZE - 2 * PAGE);
    g_assert_cmpuint(dmm_event_size(ev, "unplugged-size"), ==, 2 * PAGE);
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(ev, "data"), "qom-path"),
                    ==, "/machine/peripheral/dmm0");
    qobject_unref(ev);
    /* and back: the latest sizes arrive when the second is over */
    dmm_set_requested(t, BOOT_SIZE);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(0)),
                     ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(7)),
                     ==, VIRTIO_DMM_RESP_ACK);
    g_assert_null(qtest_qmp_event_ref(t->qts, "VIRTIO_DMM_SIZE_CHANGE"));
    /* the monitor's rate limit runs on the virtual clock under qtest */
    qtest_clock_step(t->qts, 1100 * 1000 * 1000LL);
    ev = qtest_qmp_eventwait_ref(t->qts, "VIRTIO_DMM_SIZE_CHANGE");
    g_assert_cmpuint(dmm_event_size(ev, "guest-size"), ==, BOOT_SIZE);
    g_assert_cmpuint(dmm_event_size(ev, "unplugged-size"), ==, 0);
    qobject_unref(ev);
}

/* A plug changes both sizes: both events. */
static void test_size_change_blocks(DMMTest *t)
{
    QDict *ev;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, BLOCK_SIZE);
    /* in the order they were sent */
    ev = qtest_qmp_event_ref(t->qts, "MEMORY_DEVICE_SIZE_CHANGE");
    g_assert_cmpuint(dmm_event_size(ev, "size"), ==, BLOCK_SIZE);
    qobject_unref(ev);
    ev = qtest_qmp_event_ref(t->qts, "VIRTIO_DMM_SIZE_CHANGE");
    g_assert_cmpuint(dmm_event_size(ev, "size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(dmm_event_size(ev, "guest-size"), ==,
                     BOOT_SIZE + BLOCK_SIZE);
    qobject_unref(ev);
}

/*
 * A malformed list: page addresses, or (address, hash) pairs of hints;
 * the values of @region are offsets into the region.
 */
typedef struct DMMBadList {
    uint16_t type;
    uint32_t nb;
    uint64_t v[4];
    unsigned int region;
} DMMBadList;

#define IN_REGION(i)    (1u << (i))

/* @list with the region's address added where it says. */
static const uint64_t *dmm_bad_list(DMMTest *t, const DMMBadList *list,
                                    uint64_t *v)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(list->v); i++) {
        v[i] = list->v[i] + (list->region & IN_REGION(i) ? t->region : 0);
    }
    return v;
}

/* Boot page 1 and a page of the region are unplugged, block 0 plugged. */
static const DMMBadList bad_page_lists[] = {
    /* unaligned */
    { VIRTIO_DMM_REQ_UNPLUG_PAGES, 2, { BOOT_PAGE(2), BOOT_PAGE(3) + 512 } },
    /* out of range: BIOS, the PCI hole, APIC, an unplugged block, beyond */
    { VIRTIO_DMM_REQ_UNPLUG_PAGES, 2, { BOOT_PAGE(2), 0xf0000 } },
    { VIRTIO_DMM_REQ_UNPLUG_PAGES, 1, { BOOT_SIZE } },
    { VIRTIO_DMM_REQ_UNPLUG_PAGES, 1, { 0xfee00000ULL } },
    { VIRTIO_DMM_REQ_UNPLUG_PAGES, 1, { BLOCK_SIZE }, IN_REGION(0) },
    { VIRTIO_DMM_REQ_UNPLUG_PAGES, 1, { REGION_SIZE }, IN_REGION(0) },
    { VIRTIO_DMM_REQ_UNPLUG_PAGES, 1, { UINT64_MAX - PAGE + 1 } },
    /* listed twice, or in the wrong state */
    { VIRTIO_DMM_REQ_UNPLUG_PAGES, 3,
      { BOOT_PAGE(2), BOOT_PAGE(3), BOOT_PAGE(2) } },
    { VIRTIO_DMM_REQ_UNPLUG_PAGES, 1, { BOOT_PAGE(1) } },
    { VIRTIO_DMM_REQ_PLUG_PAGES, 1, { BOOT_PAGE(2) } },
    { VIRTIO_DMM_REQ_PLUG_PAGES, 2, { BOOT_PAGE(1), BOOT_PAGE(1) } },
    { VIRTIO_DMM_REQ_MOVE_PAGES, 1, { BOOT_PAGE(1) } },
    { VIRTIO_DMM_REQ_MOVE_PAGES, 2, { BOOT_PAGE(1), BOOT_PAGE(1) } },
    { VIRTIO_DMM_REQ_MOVE_PAGES, 2, { BOOT_PAGE(2), BOOT_PAGE(3) } },
    /* unknown type on the page queue */
    { VIRTIO_DMM_REQ_PLUG, 1, { BOOT_PAGE(2) } },
};

/*
 * Every way a page list can be wrong: ERROR (or NACK beyond the requested
 * size), and nothing changes.
 */
static void test_bad_page_lists(DMMTest *t)
{
    QVirtioDevice *d = t->vdev;
    const uint64_t r = t->region;
    uint64_t many[1025] = { 0 }, v[4];
    uint32_t i;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(1),
                               r + PAGE), ==, VIRTIO_DMM_RESP_ACK);

    for (i = 0; i < ARRAY_SIZE(bad_page_lists); i++) {
        const DMMBadList *l = &bad_page_lists[i];

        g_test_message("bad page list %u", i);
        g_assert_cmpuint(dmm_pages_len(t, l->type, dmm_bad_list(t, l, v),
                                       l->nb, 0), ==, VIRTIO_DMM_RESP_ERROR);
    }
    /* a block with an unplugged page cannot be unplugged */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ERROR);
    /* counts: none, more than max_pages, more than the buffer holds */
    g_assert_cmpuint(dmm_pages_len(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, many, 0,
                                   0), ==, VIRTIO_DMM_RESP_ERROR);
    for (i = 0; i < ARRAY_SIZE(many); i++) {
        many[i] = BOOT_PAGE(16 + i);
    }
    g_assert_cmpuint(dmm_pages_len(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, many,
                                   ARRAY_SIZE(many), 0), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_pages_len(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, many, 4,
                                   8 + 3 * 8), ==, VIRTIO_DMM_RESP_ERROR);
    /* plugging back beyond requested-guest-size: NACK */
    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE - 2 * PAGE);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(1),
                               r + PAGE), ==, VIRTIO_DMM_RESP_NACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 2 * PAGE);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, BLOCK_SIZE);
    g_assert(!(d->bus->get_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET));
    /* and the well-formed version of the rejected requests still works */
    g_assert_cmpuint(dmm_pages_len(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, many, 4,
                                   0), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 6 * PAGE);
}

/* UNPLUG_ALL and a machine reset plug every page back. */
static void test_pages_reset(DMMTest *t)
{
    QDict *rsp;

    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(1)),
                     ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 0);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(1)),
                     ==, VIRTIO_DMM_RESP_ACK);
    rsp = qtest_qmp(t->qts, "{ 'execute': 'system_reset' }");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    qtest_qmp_eventwait(t->qts, "RESET");
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 0);
}

/* --- shared-page hints --- */

#define DMM_HINTS       (1ULL << VIRTIO_DMM_F_HINTS)
#define DMM_HINTS_DUP   (1ULL << VIRTIO_DMM_F_HINTS_DUP)

/*
 * Send a hint list of @nb (address, hash) pairs in a buffer of @len bytes
 * (0: just enough); returns the response type and fills @resp.
 */
static uint16_t dmm_hints_len(DMMTest *t, uint16_t kind,
                              const uint64_t *pairs, uint32_t nb, size_t len,
                              struct virtio_dmm_resp *resp)
{
    size_t full = sizeof(struct virtio_dmm_hint_req) +
                  nb * sizeof(struct virtio_dmm_hint);
    g_autofree struct virtio_dmm_hint_req *req = g_malloc0(full);
    uint64_t resp_addr;
    uint32_t head, used, i;

    req->type = cpu_to_le16(kind);
    req->nb_hints = cpu_to_le32(nb);
    for (i = 0; i < nb; i++) {
        req->hints[i].addr = cpu_to_le64(pairs[2 * i]);
        req->hints[i].hash = cpu_to_le64(pairs[2 * i + 1]);
    }
    head = dmm_post_vq(t, t->hint_vq, req, len ? len : full, sizeof(*resp),
                       &resp_addr);
    qvirtio_wait_used_elem(t->qts, t->vdev, t->hint_vq, head, &used,
                           DMM_TIMEOUT_US);
    g_assert_cmpuint(used, ==, sizeof(*resp));
    qtest_memread(t->qts, resp_addr, resp, sizeof(*resp));
    return le16_to_cpu(resp->type);
}

#define dmm_hints(t, kind, resp, ...) ({                             \
    const uint64_t p_[] = { __VA_ARGS__ };                          \
    dmm_hints_len(t, kind, p_, ARRAY_SIZE(p_) / 2, 0, resp); })

/*
 * A page filled with this 64-bit word, and its XXH64 (seed 0) as the
 * reference implementation (xxhsum -H1) computes it.
 */
#define HINT_WORD       0x5a5a5a5a01020304ULL
#define HINT_HASH       0x9b3c41cea4709588ULL

static void fill_page(DMMTest *t, uint64_t addr, uint64_t w)
{
    uint32_t i;

    for (i = 0; i < PAGE / 8; i++) {
        qtest_writeq(t->qts, addr + 8 * i, w);
    }
}

/* Verified hints are accepted, the others rejected; content never changes. */
static void test_hints(DMMTest *t)
{
    const uint64_t r = t->region;
    struct virtio_dmm_resp resp;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    fill_page(t, BOOT_PAGE(3), HINT_WORD);
    fill_page(t, r + PAGE, HINT_WORD);
    /* zero: boot page 1 and a region page are; boot page 3 is not */
    g_assert_cmpuint(dmm_hints(t, VIRTIO_DMM_HINT_ZERO, &resp, BOOT_PAGE(1),
                               0, r + 2 * PAGE, 0, BOOT_PAGE(3), 0), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(le32_to_cpu(resp.u.hint.accepted), ==, 2);
    g_assert_cmpuint(le32_to_cpu(resp.u.hint.rejected), ==, 1);
    /* duplicates: the right hash is accepted, a wrong one rejected */
    g_assert_cmpuint(dmm_hints(t, VIRTIO_DMM_HINT_DUP, &resp, BOOT_PAGE(3),
                               HINT_HASH, r + PAGE,
                               HINT_HASH, r + 3 * PAGE,
                               HINT_HASH ^ 1), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(le32_to_cpu(resp.u.hint.accepted), ==, 2);
    g_assert_cmpuint(le32_to_cpu(resp.u.hint.rejected), ==, 1);
    g_assert_cmpuint(dmm_counter(t, "hint-zero-accepted"), ==, 2);
    g_assert_cmpuint(dmm_counter(t, "hint-dup-accepted"), ==, 2);
    g_assert_cmpuint(dmm_counter(t, "hint-rejected"), ==, 2);
    /* a 2 MiB chunk of boot RAM and one of the region became mergeable */
    g_assert_cmpuint(dmm_counter(t, "hint-mergeable-size"), ==,
                     4 * 1024 * 1024);
    /* hints change nothing the guest sees */
    g_assert_cmphex(qtest_readq(t->qts, BOOT_PAGE(3) + 64), ==,
                    HINT_WORD);
    g_assert_cmphex(qtest_readq(t->qts, r + PAGE + 4088), ==,
                    HINT_WORD);
    g_assert_cmpuint(dmm_qom_size(t, "guest-size"), ==,
                     BOOT_SIZE + BLOCK_SIZE);
}

/* Block 0 is plugged, boot page 5 unplugged. */
static const DMMBadList bad_hint_lists[] = {
    /* unaligned; BIOS, the PCI hole, APIC, unplugged block, beyond */
    { VIRTIO_DMM_HINT_ZERO, 2, { BOOT_PAGE(1), 0, BOOT_PAGE(2) + 8, 0 } },
    { VIRTIO_DMM_HINT_ZERO, 1, { 0xf0000, 0 } },
    { VIRTIO_DMM_HINT_ZERO, 1, { BOOT_SIZE, 0 } },
    { VIRTIO_DMM_HINT_ZERO, 1, { 0xfee00000ULL, 0 } },
    { VIRTIO_DMM_HINT_ZERO, 1, { BLOCK_SIZE, 0 }, IN_REGION(0) },
    { VIRTIO_DMM_HINT_ZERO, 1, { REGION_SIZE, 0 }, IN_REGION(0) },
    { VIRTIO_DMM_HINT_ZERO, 1, { UINT64_MAX - PAGE + 1, 0 } },
    /* a page the guest unplugged */
    { VIRTIO_DMM_HINT_ZERO, 1, { BOOT_PAGE(5), 0 } },
    /* a zero hint with a hash; an unknown kind */
    { VIRTIO_DMM_HINT_ZERO, 1, { BOOT_PAGE(1), 1 } },
    { 2, 1, { BOOT_PAGE(1), 0 } },
};

/* Every way a hint list can be wrong: ERROR, nothing read or shared. */
static void test_bad_hint_lists(DMMTest *t)
{
    QVirtioDevice *d = t->vdev;
    const uint64_t r = t->region;
    struct virtio_dmm_resp resp;
    uint64_t many[2 * (VIRTIO_DMM_MAX_HINTS + 1)] = { 0 }, v[4];
    uint32_t i;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(5)),
                     ==, VIRTIO_DMM_RESP_ACK);

    for (i = 0; i < ARRAY_SIZE(bad_hint_lists); i++) {
        const DMMBadList *l = &bad_hint_lists[i];

        g_test_message("bad hint list %u", i);
        g_assert_cmpuint(dmm_hints_len(t, l->type, dmm_bad_list(t, l, v),
                                       l->nb, 0, &resp), ==,
                         VIRTIO_DMM_RESP_ERROR);
    }
    /* counts: none, too many, more than the buffer holds */
    g_assert_cmpuint(dmm_hints_len(t, VIRTIO_DMM_HINT_ZERO, many, 0, 0,
                                   &resp), ==, VIRTIO_DMM_RESP_ERROR);
    for (i = 0; i < VIRTIO_DMM_MAX_HINTS + 1; i++) {
        many[2 * i] = BOOT_PAGE(16 + i);
    }
    g_assert_cmpuint(dmm_hints_len(t, VIRTIO_DMM_HINT_ZERO, many,
                                   VIRTIO_DMM_MAX_HINTS + 1, 0, &resp), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_hints_len(t, VIRTIO_DMM_HINT_ZERO, many, 4,
                                   8 + 3 * 16, &resp), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_counter(t, "hint-errors"), ==,
                     ARRAY_SIZE(bad_hint_lists) + 3);
    g_assert_cmpuint(dmm_counter(t, "hint-mergeable-size"), ==, 0);
    g_assert_cmpuint(dmm_counter(t, "hint-zero-accepted"), ==, 0);
    g_assert(!(d->bus->get_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET));
    /* the well-formed version is accepted */
    g_assert_cmpuint(dmm_hints_len(t, VIRTIO_DMM_HINT_ZERO, many, 4, 0,
                                   &resp), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(le32_to_cpu(resp.u.hint.accepted), ==, 4);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, PAGE);
}

/* Without the feature negotiated, hints are refused (NACK), not read. */
static void test_hints_not_negotiated(DMMTest *t)
{
    struct virtio_dmm_resp resp;

    t->hint_vq = qvirtqueue_setup(t->vdev, t->alloc,
                                  VIRTIO_DMM_VQ_HINT);
    g_assert_cmpuint(dmm_hints(t, VIRTIO_DMM_HINT_ZERO, &resp, BOOT_PAGE(1),
                               0), ==, VIRTIO_DMM_RESP_NACK);
    g_assert_cmpuint(dmm_counter(t, "hint-mergeable-size"), ==, 0);
}

/*
 * Duplicate hints are the operator's choice (dup-hints, off by default):
 * without it the feature is not offered and a DUP hint is an ERROR that
 * shares nothing; zero hints still work.
 */
static void test_dup_hints_default_off(DMMTest *t)
{
    struct virtio_dmm_resp resp;

    g_assert(!(qvirtio_get_features(t->vdev) & DMM_HINTS_DUP));
    fill_page(t, BOOT_PAGE(3), HINT_WORD);
    g_assert_cmpuint(dmm_hints(t, VIRTIO_DMM_HINT_DUP, &resp, BOOT_PAGE(3),
                               HINT_HASH), ==, VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_counter(t, "hint-dup-accepted"), ==, 0);
    g_assert_cmpuint(dmm_counter(t, "hint-mergeable-size"), ==, 0);
    g_assert_cmpuint(dmm_hints(t, VIRTIO_DMM_HINT_ZERO, &resp, BOOT_PAGE(1),
                               0), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(le32_to_cpu(resp.u.hint.accepted), ==, 1);
}

/* Lines of /proc/PID/maps: the process's VMAs. */
static unsigned int dmm_vmas(DMMTest *t)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/maps",
                                            (int)qtest_pid(t->qts));
    g_autofree char *maps = NULL;
    unsigned int n = 0;
    const char *p;

    g_assert(g_file_get_contents(path, &maps, NULL, NULL));
    for (p = maps; *p; p++) {
        n += *p == '\n';
    }
    return n;
}

#define HINT_CHUNK      (2 * 1024 * 1024ULL)
#define MAX_HINT_RUNS   1024
#define HIGH_RAM        (4ULL << 30)

/* Zero-hint the chunks at HIGH_RAM + (first + 2 * i) * HINT_CHUNK. */
static uint32_t dmm_hint_chunks(DMMTest *t, uint64_t first, uint32_t nb)
{
    uint64_t pairs[2 * VIRTIO_DMM_MAX_HINTS] = { 0 };
    struct virtio_dmm_resp resp;
    uint32_t i, accepted = 0, n;

    while (nb) {
        n = MIN(nb, VIRTIO_DMM_MAX_HINTS);
        for (i = 0; i < n; i++, first += 2) {
            pairs[2 * i] = HIGH_RAM + first * HINT_CHUNK;
        }
        g_assert_cmpuint(dmm_hints_len(t, VIRTIO_DMM_HINT_ZERO, pairs, n, 0,
                                       &resp), ==, VIRTIO_DMM_RESP_ACK);
        accepted += le32_to_cpu(resp.u.hint.accepted);
        nb -= n;
    }
    return accepted;
}

/*
 * Hints on every other 2 MiB chunk would split QEMU's mapping into a VMA
 * per chunk: separate runs of mergeable chunks are bounded, hints that
 * join runs are still taken, and QEMU's VMAs stay bounded.
 */
static void test_hint_runs(DMMTest *t)
{
    unsigned int vmas = dmm_vmas(t);

    g_assert_cmpuint(dmm_hint_chunks(t, 0, MAX_HINT_RUNS + 200), ==,
                     MAX_HINT_RUNS);
    g_assert_cmpuint(dmm_counter(t, "hint-rejected"), ==, 200);
    g_assert_cmpuint(dmm_vmas(t), <=, vmas + 2 * MAX_HINT_RUNS + 16);
    /* a chunk between two runs joins them; then one more run fits */
    g_assert_cmpuint(dmm_hint_chunks(t, 1, 1), ==, 1);
    g_assert_cmpuint(dmm_hint_chunks(t, 2 * MAX_HINT_RUNS + 1, 1), ==, 1);
    g_assert_cmpuint(dmm_hint_chunks(t, 2 * MAX_HINT_RUNS + 3, 1), ==, 0);
    g_assert_cmpuint(dmm_vmas(t), <=, vmas + 2 * MAX_HINT_RUNS + 16);
}

/* --- what the guest can reach --- */

/*
 * Unplugged blocks are not guest memory: writes there do not stick (and
 * take no host memory); a plugged block is there at once, and gone again
 * when unplugged.  A partially plugged block stays reachable.
 */
static void test_unplugged_inaccessible(DMMTest *t)
{
    QTestState *qts = t->qts;
    const uint64_t r = t->region;

    qtest_writeq(qts, r, 0x1122334455667788ULL);
    g_assert_cmphex(qtest_readq(qts, r), !=, 0x1122334455667788ULL);
    dmm_set_requested(t, BOOT_SIZE + 2 * BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    qtest_writeq(qts, r + 8, 0x1122334455667788ULL);
    g_assert_cmphex(qtest_readq(qts, r + 8), ==, 0x1122334455667788ULL);
    /* the next block is still unplugged */
    qtest_writeq(qts, r + BLOCK_SIZE, 0x99);
    g_assert_cmphex(qtest_readq(qts, r + BLOCK_SIZE), !=, 0x99);
    /* one sub-block of it plugged: the block is the guest's */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG_SB, r + BLOCK_SIZE, 1),
                     ==, VIRTIO_DMM_RESP_ACK);
    qtest_writeq(qts, r + BLOCK_SIZE, 0x99);
    g_assert_cmphex(qtest_readq(qts, r + BLOCK_SIZE), ==, 0x99);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_SB, r + BLOCK_SIZE,
                               1), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmphex(qtest_readq(qts, r + BLOCK_SIZE), !=, 0x99);
    /* unplugged: gone, and no write sticks */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmphex(qtest_readq(qts, r + 8), !=, 0x1122334455667788ULL);
    qtest_writeq(qts, r + 8, 0x1122334455667788ULL);
    g_assert_cmphex(qtest_readq(qts, r + 8), !=, 0x1122334455667788ULL);
    /* plugged again: zero, as after every plug */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmphex(qtest_readq(qts, r + 8), ==, 0);
}

/* Bytes of guest memory in [start, start + len) an ELF dump holds. */
static uint64_t dmm_dump_bytes_in(const char *path, uint64_t start,
                                  uint64_t len)
{
    FILE *f = fopen(path, "rb");
    Elf64_Ehdr eh;
    Elf64_Phdr ph;
    uint64_t sum = 0;
    int i;

    /* the headers are at the front; the memory follows them */
    g_assert(f);
    g_assert_cmpuint(fread(&eh, sizeof(eh), 1, f), ==, 1);
    g_assert(!memcmp(eh.e_ident, ELFMAG, SELFMAG));
    g_assert_cmpint(fseek(f, eh.e_phoff, SEEK_SET), ==, 0);
    for (i = 0; i < eh.e_phnum; i++) {
        g_assert_cmpuint(fread(&ph, sizeof(ph), 1, f), ==, 1);
        if (ph.p_type == PT_LOAD && ph.p_paddr >= start &&
            ph.p_paddr < start + len) {
            sum += ph.p_filesz;
        }
    }
    fclose(f);
    return sum;
}

/* dump-guest-memory into a file: bytes of the region it holds. */
static uint64_t dmm_dump_region(DMMTest *t)
{
    g_autofree char *path = g_strdup_printf("%s/virtio-dmm-dump-%d.elf",
                                            g_get_tmp_dir(), getpid());
    g_autofree char *proto = g_strdup_printf("file:%s", path);
    uint64_t bytes;
    QDict *rsp;

    rsp = qtest_qmp(t->qts, "{ 'execute': 'dump-guest-memory', 'arguments':"
                    " { 'paging': false, 'protocol': %s } }", proto);
    g_assert(!qdict_haskey(rsp, "error"));
    qobject_unref(rsp);
    bytes = dmm_dump_bytes_in(path, t->region, REGION_SIZE);
    unlink(path);
    return bytes;
}

/*
 * The device is the RamDiscardManager of its memdev: what walks guest
 * memory by it (dump-guest-memory here; migration, VFIO) sees only the
 * plugged sub-blocks of a block, not the whole block its memslot maps.
 */
static void test_dump_skips_unplugged(DMMTest *t)
{
    const uint64_t r = t->region;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE + 3 * SUB_BLOCK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG_SB,
                               r + BLOCK_SIZE + 4 * SUB_BLOCK, 2), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG_SB,
                               r + BLOCK_SIZE + 9 * SUB_BLOCK, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_dump_region(t), ==, BLOCK_SIZE + 3 * SUB_BLOCK);

    /* unplugged sub-blocks leave the dump at once */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_SB,
                               r + BLOCK_SIZE + 4 * SUB_BLOCK, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_dump_region(t), ==, BLOCK_SIZE + 2 * SUB_BLOCK);
}

/* A report of an unplugged block is no guest memory: the device breaks. */
static void test_report_unplugged(DMMTest *t)
{
    uint32_t head;

    head = qvirtqueue_add(t->qts, t->report_vq, t->region, 2 * 1024 * 1024,
                          true, false);
    qvirtqueue_kick(t->qts, t->vdev, t->report_vq, head);
    g_assert(dmm_wait_status(t, VIRTIO_CONFIG_S_NEEDS_RESET) &
             VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpuint(dmm_counter(t, "reported-size"), ==, 0);
}

/* --- migration streams --- */

static void dmm_wait_migration(QTestState *qts, const char *want)
{
    gint64 start = g_get_monotonic_time();
    g_autofree char *status = NULL;

    do {
        QDict *rsp = qtest_qmp(qts, "{ 'execute': 'query-migrate' }");
        QDict *ret = qdict_get_qdict(rsp, "return");

        g_free(status);
        status = g_strdup(qdict_haskey(ret, "status") ?
                          qdict_get_str(ret, "status") : "none");
        qobject_unref(rsp);
        if (!strcmp(status, "completed") || !strcmp(status, "failed")) {
            break;
        }
        g_usleep(20 * 1000);
    } while (g_get_monotonic_time() - start < DMM_TIMEOUT_US);
    g_assert_cmpstr(status, ==, want);
}

/* Migrate the test's machine into @file. */
static void dmm_save_stream(DMMTest *t, const char *file)
{
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    QDict *rsp;

    rsp = qtest_qmp(t->qts, "{ 'execute': 'migrate', 'arguments':"
                    " { 'uri': %s } }", uri);
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    dmm_wait_migration(t->qts, "completed");
}

/*
 * Load @file into a new machine of the test's shape (@opts added to its
 * command line, e.g. -global virtio-dmm.block-size=256M); the migration
 * must end in @want.  The destination stays up (exit-on-error off) and
 * answers with its device's @field of query-memory-devices.
 */
static uint64_t dmm_load_stream_field(const char *file, const char *opts,
                                      const char *want, const char *field)
{
    QTestState *qts = qtest_initf("%s -incoming defer %s",
                                  qos_get_current_command_line(), opts);
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    QDict *rsp;
    uint64_t value;

    rsp = qtest_qmp(qts, "{ 'execute': 'migrate-incoming', 'arguments':"
                    " { 'uri': %s, 'exit-on-error': false } }", uri);
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    dmm_wait_migration(qts, want);
    value = dmm_info_uint(qts, field);
    qtest_quit(qts);
    return value;
}

static uint64_t dmm_load_stream(const char *file, const char *opts,
                                const char *want)
{
    return dmm_load_stream_field(file, opts, want, "size");
}

/* Overwrite the big-endian u32 that follows subsection @name's version. */
static void dmm_patch_subsection(const char *file, const char *name,
                                 uint32_t value)
{
    g_autofree char *data = NULL;
    gsize len;
    char *p;

    g_assert(g_file_get_contents(file, &data, &len, NULL));
    p = memmem(data, len, name, strlen(name));
    g_assert(p && p + strlen(name) + 8 <= data + len);
    stl_be_p(p + strlen(name) + 4, value);
    g_assert(g_file_set_contents(file, data, len, NULL));
}

/*
 * The destination checks what it loads: a stream from a device at another
 * address, or with a value out of range, fails the migration with a
 * message; the destination stays up and its device unchanged.  The same
 * stream into a matching destination loads.
 */
static void test_migration_checks(DMMTest *t)
{
    g_autofree char *dir = g_dir_make_tmp("virtio-dmm-XXXXXX", NULL);
    g_autofree char *file = g_strdup_printf("%s/stream", dir);
    g_autofree char *at = NULL;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    dmm_save_stream(t, file);

    g_assert_cmpuint(dmm_load_stream(file, "", "completed"), ==, BLOCK_SIZE);
    at = g_strdup_printf("-global virtio-dmm.memaddr=0x%" PRIx64,
                         (uint64_t)(t->region + REGION_SIZE));
    g_assert_cmpuint(dmm_load_stream(file, at, "failed"), ==, 0);
    /* another block size: refused too */
    g_assert_cmpuint(dmm_load_stream(file,
                                     "-global virtio-dmm.block-size=256M",
                                     "failed"), ==, 0);
    dmm_patch_subsection(file, "virtio-dmm-device/stats", 5);
    g_assert_cmpuint(dmm_load_stream(file, "", "failed"), ==, 0);
    unlink(file);
    rmdir(dir);
}

/*
 * The chunks hints made mergeable travel with the device: the destination
 * makes the same memory mergeable.
 */
static void test_migration_hints(DMMTest *t)
{
    g_autofree char *dir = g_dir_make_tmp("virtio-dmm-XXXXXX", NULL);
    g_autofree char *file = g_strdup_printf("%s/stream", dir);
    struct virtio_dmm_resp resp;

    g_assert_cmpuint(dmm_hints(t, VIRTIO_DMM_HINT_ZERO, &resp, BOOT_PAGE(1),
                               0, BOOT_PAGE(2000), 0), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(le32_to_cpu(resp.u.hint.accepted), ==, 2);
    g_assert_cmpuint(dmm_counter(t, "hint-mergeable-size"), ==,
                     4 * 1024 * 1024);
    dmm_save_stream(t, file);
    g_assert_cmpuint(dmm_load_stream_field(file, "", "completed",
                                           "hint-mergeable-size"), ==,
                     4 * 1024 * 1024);
    unlink(file);
    rmdir(dir);
}

/* --- statistics and requests for memory --- */

#define DMM_STATS       (1ULL << VIRTIO_DMM_F_STATS)

/* Send @len bytes of a report; returns the response type. */
static uint16_t dmm_send_stats(DMMTest *t, const struct virtio_dmm_stats *st,
                                 size_t len)
{
    struct virtio_dmm_resp resp;
    uint64_t resp_addr;
    uint32_t head, used;

    head = dmm_post_vq(t, t->stats_vq, st, len, sizeof(resp), &resp_addr);
    qvirtio_wait_used_elem(t->qts, t->vdev, t->stats_vq, head,
                           &used, DMM_TIMEOUT_US);
    qtest_memread(t->qts, resp_addr, &resp, sizeof(resp));
    return le16_to_cpu(resp.type);
}

static void test_stats(DMMTest *t)
{
    struct virtio_dmm_stats st = {
        .seq = cpu_to_le64(1),
        .total = cpu_to_le64(BOOT_SIZE),
        .available = cpu_to_le64(100 << 20),
        .psi_some_avg10 = cpu_to_le32(1234),
        .oom_kills = cpu_to_le64(2),
    };
    QDict *info, *stats;

    g_assert_cmpuint(qvirtio_config_readl(t->vdev,
                     offsetof(struct virtio_dmm_config, stats_interval_ms)),
                     ==, 1000);
    /* no report yet */
    info = dmm_info(t->qts);
    g_assert(!qdict_haskey(info, "stats"));
    qobject_unref(info);
    /* a short report is refused and not kept */
    g_assert_cmpuint(dmm_send_stats(t, &st, sizeof(st) - 8), ==,
                     VIRTIO_DMM_RESP_ERROR);
    info = dmm_info(t->qts);
    g_assert(!qdict_haskey(info, "stats"));
    qobject_unref(info);
    g_assert_cmpuint(dmm_send_stats(t, &st, sizeof(st)), ==,
                     VIRTIO_DMM_RESP_ACK);
    info = dmm_info(t->qts);
    stats = qdict_get_qdict(info, "stats");
    g_assert(stats);
    g_assert_cmpuint(qdict_get_int(stats, "available"), ==, 100 << 20);
    g_assert_cmpuint(qdict_get_int(stats, "oom-kills"), ==, 2);
    g_assert_cmpfloat(qdict_get_double(stats, "psi-some-avg10"), ==, 12.34);
    qobject_unref(info);
    qtest_qmp_eventwait(t->qts, "VIRTIO_DMM_STATS");
}

/* guest-stats, as virtio-balloon's: the latest report and when it came. */
static void test_guest_stats(DMMTest *t)
{
    struct virtio_dmm_stats st = {
        .seq = cpu_to_le64(7),
        .available = cpu_to_le64(200 << 20),
        .major_faults = cpu_to_le64(5),
    };
    int64_t before = g_get_real_time() / G_USEC_PER_SEC;
    QDict *rsp, *ret, *stats;

    rsp = qtest_qmp(t->qts, "{ 'execute': 'qom-get', 'arguments':"
                    " { 'path': 'dmm0', 'property': 'guest-stats' } }");
    g_assert(qdict_haskey(rsp, "error"));
    qobject_unref(rsp);
    g_assert_cmpuint(dmm_send_stats(t, &st, sizeof(st)), ==,
                     VIRTIO_DMM_RESP_ACK);
    rsp = qtest_qmp(t->qts, "{ 'execute': 'qom-get', 'arguments':"
                    " { 'path': 'dmm0', 'property': 'guest-stats' } }");
    ret = qdict_get_qdict(rsp, "return");
    g_assert(ret);
    g_assert_cmpint(qdict_get_int(ret, "last-update"), >=, before);
    g_assert_cmpint(qdict_get_int(ret, "last-update"), <=,
                    g_get_real_time() / G_USEC_PER_SEC);
    stats = qdict_get_qdict(ret, "stats");
    g_assert_cmpuint(qdict_get_int(stats, "seq"), ==, 7);
    g_assert_cmpuint(qdict_get_int(stats, "available"), ==, 200 << 20);
    g_assert_cmpuint(qdict_get_int(stats, "major-faults"), ==, 5);
    qobject_unref(rsp);
}

static uint16_t dmm_ask(DMMTest *t, uint64_t size, uint64_t reason)
{
    struct virtio_dmm_req req = {
        .type = cpu_to_le16(VIRTIO_DMM_REQ_ASK),
        .u.ask.size = cpu_to_le64(size),
        .u.ask.reason = cpu_to_le64(reason),
    };
    struct virtio_dmm_resp resp;

    return dmm_send(t, &req, &resp);
}

/* Without auto-grant an ask is passed on; bad asks change nothing. */
static void test_ask(DMMTest *t)
{

    g_assert_cmpuint(dmm_ask(t, BOOT_SIZE + 1, 0), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_ask(t, BOOT_SIZE + 2 * REGION_SIZE, 0), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_ask(t, BOOT_SIZE + BLOCK_SIZE, 1ULL << 40), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_ask(t, BOOT_SIZE + BLOCK_SIZE,
                             VIRTIO_DMM_ASK_PRESSURE), ==,
                     VIRTIO_DMM_RESP_BUSY);
    qtest_qmp_eventwait(t->qts, "VIRTIO_DMM_ASK");
    g_assert_cmpuint(dmm_qom_size(t, "requested-guest-size"), ==, BOOT_SIZE);
}

/* --- protocol violations --- */

/*
 * A request shorter than its header, or without room for the response:
 * the device is marked broken (NEEDS_RESET), the element dropped, nothing
 * changes and QEMU keeps running.
 */
typedef struct DMMViolation {
    unsigned int vq;
    /* the request's first bytes (the rest is zero) */
    uint8_t head[8];
    size_t req_len;
    size_t resp_len;
} DMMViolation;

static const DMMViolation short_request = {
    VIRTIO_DMM_VQ_REQUEST, { 0 }, 8, sizeof(struct virtio_dmm_resp),
};
static const DMMViolation short_response = {
    VIRTIO_DMM_VQ_REQUEST, { 0 }, sizeof(struct virtio_dmm_req), 2,
};
static const DMMViolation short_page_request = {
    VIRTIO_DMM_VQ_PAGE, { VIRTIO_DMM_REQ_UNPLUG_PAGES, 0, 0, 0, 1 }, 7,
    sizeof(struct virtio_dmm_resp),
};
static const DMMViolation short_hint_request = {
    VIRTIO_DMM_VQ_HINT, { VIRTIO_DMM_HINT_ZERO, 0, 0, 0, 1 }, 7,
    sizeof(struct virtio_dmm_resp),
};

static void test_violation(DMMTest *t)
{
    const DMMViolation *v = t->data;
    QVirtQueue *vqs[VIRTIO_DMM_NUM_VQS] = {
        [VIRTIO_DMM_VQ_REQUEST] = t->vq,
        [VIRTIO_DMM_VQ_PAGE] = t->page_vq,
        [VIRTIO_DMM_VQ_HINT] = t->hint_vq,
    };
    uint8_t buf[sizeof(struct virtio_dmm_req)] = { 0 };
    uint64_t resp_addr;
    uint8_t status;

    memcpy(buf, v->head, sizeof(v->head));
    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    dmm_post_vq(t, vqs[v->vq], buf, v->req_len, v->resp_len, &resp_addr);
    status = dmm_wait_status(t, VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert(status & VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, 0);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 0);
    g_assert_cmpuint(dmm_counter(t, "hint-zero-accepted"), ==, 0);
}

/* --- the tests, through qgraph --- */

#define DMM_FPR         (1ULL << VIRTIO_DMM_F_FREE_PAGE_REPORTING)
#define DMM_SUB_BLOCKS  (1ULL << VIRTIO_DMM_F_SUB_BLOCKS)

typedef struct DMMTestCase {
    const char *name;
    void (*fn)(DMMTest *t);
    /* features the test negotiates (VIRTIO_F_VERSION_1 always) */
    uint64_t features;
    /* device options, and options before the device (-m merges) */
    const char *device_opts;
    const char *cmd_line;
    /* DMMTest.data */
    const void *data;
} DMMTestCase;

static const DMMTestCase dmm_tests[] = {
    { "config", test_config },
    { "vfio-refused", test_vfio_refused },
    { "five-queues", test_five_queues, 0,
      "free-page-reporting=off,pages=off,sub-blocks=off,hints=off,"
      "stats=off" },
    { "plug-unplug", test_plug_unplug },
    { "bad-requests", test_bad_requests },
    { "short-request", test_violation, .data = &short_request },
    { "short-response", test_violation, .data = &short_response },
    { "machine-reset", test_machine_reset },
    { "free-page-reports", test_free_page_reports, DMM_FPR },
    { "report-outside-ram", test_report_outside_ram, DMM_FPR },
    { "sub-blocks", test_sub_blocks, DMM_SUB_BLOCKS },
    { "pages", test_pages, DMM_PAGES },
    { "page-ranges", test_page_ranges, DMM_RANGES },
    { "page-ranges-off", test_page_ranges_off, DMM_PAGES },
    { "size-names", test_size_names, DMM_PAGES },
    { "size-names-cmdline", test_size_names_cmdline, 0,
      "requested-size=128M" },
    { "size-change-pages", test_size_change_pages, DMM_PAGES },
    { "size-change-blocks", test_size_change_blocks },
    { "bad-page-lists", test_bad_page_lists, DMM_PAGES },
    { "pages-reset", test_pages_reset, DMM_PAGES },
    { "short-page-request", test_violation, DMM_PAGES,
      .data = &short_page_request },
    { "hints", test_hints, DMM_HINTS | DMM_HINTS_DUP, "dup-hints=on" },
    { "bad-hint-lists", test_bad_hint_lists, DMM_HINTS | DMM_PAGES },
    { "hints-not-negotiated", test_hints_not_negotiated },
    { "short-hint-request", test_violation, DMM_HINTS,
      .data = &short_hint_request },
    { "dup-hints-default-off", test_dup_hints_default_off, DMM_HINTS },
    { "hint-runs", test_hint_runs, DMM_HINTS, NULL, "-m 8G,maxmem=12G" },
    { "unplugged-inaccessible", test_unplugged_inaccessible,
      DMM_SUB_BLOCKS },
    { "report-unplugged", test_report_unplugged, DMM_FPR },
    { "dump-skips-unplugged", test_dump_skips_unplugged, DMM_SUB_BLOCKS },
    { "migration-checks", test_migration_checks },
    { "migration-hints", test_migration_hints, DMM_HINTS },
    { "stats", test_stats, DMM_STATS },
    { "guest-stats", test_guest_stats, DMM_STATS },
    { "ask", test_ask, DMM_STATS },
};

static void dmm_run(void *obj, void *data, QGuestAllocator *alloc)
{
    const DMMTestCase *c = data;
    DMMTest *t = dmm_setup(obj, alloc, c->features);

    t->data = c->data;
    c->fn(t);
    dmm_teardown(t);
}

static void register_virtio_dmm_test(void)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(dmm_tests); i++) {
        QOSGraphTestOptions opts = {
            .edge.extra_device_opts = dmm_tests[i].device_opts,
            .edge.before_cmd_line = dmm_tests[i].cmd_line,
            .arg = (void *)&dmm_tests[i],
            /* a QEMU of its own: counters and requested-size survive resets */
            .subprocess = true,
        };

        qos_add_test(dmm_tests[i].name, "virtio-dmm", dmm_run, &opts);
    }
}

libqos_init(register_virtio_dmm_test);
