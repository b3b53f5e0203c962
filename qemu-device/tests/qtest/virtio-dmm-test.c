/*
 * QTest for virtio-dmm: requests straight into the virtqueue
 *
 * Valid requests are answered, invalid ones get ERROR or NACK and change
 * nothing, protocol violations mark the device broken without taking QEMU
 * down, and a machine reset unplugs everything.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qemu/bswap.h"
#include "qobject/qdict.h"
#include "libqos/libqos-pc.h"
#include "libqos/virtio.h"
#include "libqos/virtio-pci.h"
#include "standard-headers/linux/virtio_config.h"
#include <linux/virtio_dmm.h>

#define DMM_TIMEOUT_US  (10 * 1000 * 1000)
#define BOOT_SIZE       (512 * 1024 * 1024ULL)
#define BLOCK_SIZE      (128 * 1024 * 1024ULL)
#define REGION_SIZE     (1024 * 1024 * 1024ULL)

typedef struct DMMTest {
    QOSState *qs;
    QVirtioPCIDevice *dev;
    QVirtQueue *vq;
    QVirtQueue *report_vq;
    QVirtQueue *page_vq;
    QVirtQueue *hint_vq;
    QVirtQueue *stats_vq;
    uint64_t region;
} DMMTest;

/* The machine of every test; %s: more -m options, more device options. */
#define DMM_CMDLINE "-m %s,slots=2,maxmem=%s -nodefaults"              \
                    " -object memory-backend-ram,id=mem0,size=1G,"     \
                    "reserve=off"                                      \
                    " -device virtio-dmm-pci,id=dmm0,memdev=mem0,"     \
                    "addr=04.0%s"

/*
 * Boot a machine of @mem RAM (@maxmem with the region) with the device
 * (and @dev_opts), negotiate @extra features and set up their queues.
 */
static DMMTest *dmm_start_args(uint64_t extra, const char *mem,
                               const char *maxmem, const char *dev_opts)
{
    DMMTest *t = g_new0(DMMTest, 1);
    QPCIAddress addr = { .devfn = QPCI_DEVFN(4, 0) };
    uint64_t features;

    t->qs = qtest_pc_boot(DMM_CMDLINE, mem, maxmem, dev_opts);
    t->dev = virtio_pci_new(t->qs->pcibus, &addr);
    g_assert(t->dev);
    qvirtio_pci_device_enable(t->dev);
    qvirtio_start_device(&t->dev->vdev);
    features = qvirtio_get_features(&t->dev->vdev);
    g_assert(features & (1ULL << VIRTIO_F_VERSION_1));
    g_assert((features & extra) == extra);
    qvirtio_set_features(&t->dev->vdev, (1ULL << VIRTIO_F_VERSION_1) | extra);
    t->vq = qvirtqueue_setup(&t->dev->vdev, &t->qs->alloc, 0);
    if (extra & (1ULL << VIRTIO_DMM_F_FREE_PAGE_REPORTING)) {
        t->report_vq = qvirtqueue_setup(&t->dev->vdev, &t->qs->alloc,
                                        VIRTIO_DMM_VQ_REPORT);
    }
    if (extra & (1ULL << VIRTIO_DMM_F_PAGES)) {
        /* queue indices are fixed, with or without the report queue */
        t->page_vq = qvirtqueue_setup(&t->dev->vdev, &t->qs->alloc,
                                      VIRTIO_DMM_VQ_PAGE);
    }
    if (extra & (1ULL << VIRTIO_DMM_F_HINTS)) {
        t->hint_vq = qvirtqueue_setup(&t->dev->vdev, &t->qs->alloc,
                                      VIRTIO_DMM_VQ_HINT);
    }
    if (extra & (1ULL << VIRTIO_DMM_F_STATS)) {
        t->stats_vq = qvirtqueue_setup(&t->dev->vdev, &t->qs->alloc,
                                       VIRTIO_DMM_VQ_STATS);
    }
    qvirtio_set_driver_ok(&t->dev->vdev);
    t->region = qvirtio_config_readq(&t->dev->vdev,
                    offsetof(struct virtio_dmm_config, region_addr));
    return t;
}

static DMMTest *dmm_start_features(uint64_t extra)
{
    return dmm_start_args(extra, "512M", "4G", "");
}

static DMMTest *dmm_start(void)
{
    return dmm_start_features(0);
}

static void dmm_stop(DMMTest *t)
{
    if (t->stats_vq) {
        qvirtqueue_cleanup(t->dev->vdev.bus, t->stats_vq, &t->qs->alloc);
    }
    if (t->hint_vq) {
        qvirtqueue_cleanup(t->dev->vdev.bus, t->hint_vq, &t->qs->alloc);
    }
    if (t->page_vq) {
        qvirtqueue_cleanup(t->dev->vdev.bus, t->page_vq, &t->qs->alloc);
    }
    if (t->report_vq) {
        qvirtqueue_cleanup(t->dev->vdev.bus, t->report_vq, &t->qs->alloc);
    }
    qvirtqueue_cleanup(t->dev->vdev.bus, t->vq, &t->qs->alloc);
    qos_object_destroy(&t->dev->obj);
    qtest_shutdown(t->qs);
    g_free(t);
}

static uint64_t dmm_qom_size(DMMTest *t, const char *prop)
{
    QDict *rsp = qtest_qmp(t->qs->qts, "{ 'execute': 'qom-get', 'arguments':"
                           " { 'path': 'dmm0', 'property': %s } }", prop);
    uint64_t v;

    g_assert(qdict_haskey(rsp, "return"));
    v = qdict_get_int(rsp, "return");
    qobject_unref(rsp);
    return v;
}

static void dmm_set_requested(DMMTest *t, uint64_t size)
{
    QDict *rsp = qtest_qmp(t->qs->qts, "{ 'execute': 'qom-set', 'arguments':"
                           " { 'path': 'dmm0', 'property': 'requested-size',"
                           " 'value': %" PRIu64 " } }", size);

    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
}

/*
 * Put @req_len bytes of @req and a @resp_len response buffer on the queue.
 * Returns the head of the chain.
 */
static uint32_t dmm_post_vq(DMMTest *t, QVirtQueue *vq, const void *req,
                            size_t req_len, size_t resp_len,
                            uint64_t *resp_addr)
{
    QTestState *qts = t->qs->qts;
    uint64_t req_addr = guest_alloc(&t->qs->alloc, req_len);
    uint32_t head;

    *resp_addr = guest_alloc(&t->qs->alloc, resp_len);
    qtest_memwrite(qts, req_addr, req, req_len);
    qtest_memset(qts, *resp_addr, 0xff, resp_len);
    head = qvirtqueue_add(qts, vq, req_addr, req_len, false, true);
    qvirtqueue_add(qts, vq, *resp_addr, resp_len, true, false);
    qvirtqueue_kick(qts, &t->dev->vdev, vq, head);
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
    qvirtio_wait_used_elem(t->qs->qts, &t->dev->vdev, t->vq, head, &len,
                           DMM_TIMEOUT_US);
    g_assert_cmpuint(len, ==, sizeof(*resp));
    qtest_memread(t->qs->qts, resp_addr, resp, sizeof(*resp));
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

static void test_config(void)
{
    DMMTest *t = dmm_start();
    QVirtioDevice *d = &t->dev->vdev;

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
    dmm_stop(t);
}

static void test_plug_unplug(void)
{
    DMMTest *t = dmm_start();

    dmm_set_requested(t, BOOT_SIZE + 2 * BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 2), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, 2 * BLOCK_SIZE);
    g_assert_cmpuint(dmm_state(t, t->region, 2), ==,
                     VIRTIO_DMM_STATE_PLUGGED);
    g_assert_cmpuint(dmm_state(t, t->region, 3), ==, VIRTIO_DMM_STATE_MIXED);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG,
                               t->region + BLOCK_SIZE, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, 0);
    g_assert_cmpuint(dmm_state(t, t->region, 8), ==,
                     VIRTIO_DMM_STATE_UNPLUGGED);
    dmm_stop(t);
}

/* Every rule a request can break: answered, and nothing changes. */
static void test_bad_requests(void)
{
    DMMTest *t = dmm_start();
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
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, 0);

    /* plugged twice, unplugged with an unplugged neighbour */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG, r, 2), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(dmm_state(t, r, 1), ==, VIRTIO_DMM_STATE_PLUGGED);
    dmm_stop(t);
}

/* Wait until the device status has @bit set (or time out). */
static uint8_t dmm_wait_status(DMMTest *t, uint8_t bit)
{
    QVirtioDevice *d = &t->dev->vdev;
    gint64 start = g_get_monotonic_time();
    uint8_t status;

    while (!((status = d->bus->get_status(d)) & bit) &&
           g_get_monotonic_time() - start < DMM_TIMEOUT_US) {
        qtest_clock_step(t->qs->qts, 100);
    }
    return status;
}

/*
 * A request too short, or no room for the response: the device is marked
 * broken (NEEDS_RESET), the element dropped, QEMU keeps running.
 */
static void violation(size_t req_len, size_t resp_len)
{
    DMMTest *t = dmm_start();
    uint8_t buf[sizeof(struct virtio_dmm_req)] = { 0 };
    uint64_t resp_addr;
    uint8_t status;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    dmm_post(t, buf, req_len, resp_len, &resp_addr);
    status = dmm_wait_status(t, VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert(status & VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, 0);
    dmm_stop(t);
}

static void test_short_request(void)
{
    violation(8, sizeof(struct virtio_dmm_resp));
}

static void test_short_response(void)
{
    violation(sizeof(struct virtio_dmm_req), 2);
}

static void test_machine_reset(void)
{
    DMMTest *t = dmm_start();
    QDict *rsp;

    dmm_set_requested(t, BOOT_SIZE + 2 * BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 2), ==,
                     VIRTIO_DMM_RESP_ACK);
    rsp = qtest_qmp(t->qs->qts, "{ 'execute': 'system_reset' }");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    qtest_qmp_eventwait(t->qs->qts, "RESET");
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, 0);
    g_assert_cmpuint(dmm_qom_size(t, "requested-size"), ==,
                     BOOT_SIZE + 2 * BLOCK_SIZE);
    dmm_stop(t);
}

/* Report [gpa, gpa + len) as free; returns when the device gave it back. */
static void dmm_report(DMMTest *t, uint64_t gpa, uint32_t len)
{
    uint32_t head;

    head = qvirtqueue_add(t->qs->qts, t->report_vq, gpa, len, true, false);
    qvirtqueue_kick(t->qs->qts, &t->dev->vdev, t->report_vq, head);
    qvirtio_wait_used_elem(t->qs->qts, &t->dev->vdev, t->report_vq, head,
                           NULL, DMM_TIMEOUT_US);
}

/*
 * Reports are advice: ranges of boot RAM and of plugged blocks are
 * discarded; unplugged blocks are refused and stay unplugged.
 */
static void test_free_page_reports(void)
{
    DMMTest *t = dmm_start_features(1ULL << VIRTIO_DMM_F_FREE_PAGE_REPORTING);
    uint64_t boot_page = guest_alloc(&t->qs->alloc, 2 * 1024 * 1024);

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 1), ==,
                     VIRTIO_DMM_RESP_ACK);

    /*
     * Straddling a plugged and an unplugged block: the unplugged page is
     * no guest memory (a bounce buffer, refused), the plugged one is the
     * guest's to give.
     */
    dmm_report(t, t->region + BLOCK_SIZE - 4096, 8192);
    g_assert_cmpuint(dmm_qom_size(t, "refused-reports"), ==, 1);
    g_assert_cmpuint(dmm_qom_size(t, "reported-size"), ==, 4096);

    /* plugged block and boot RAM: discarded */
    dmm_report(t, t->region, 2 * 1024 * 1024);
    g_assert_cmpuint(dmm_qom_size(t, "reported-size"), ==,
                     2 * 1024 * 1024 + 4096);
    qtest_writeq(t->qs->qts, boot_page, 0x1122334455667788ULL);
    dmm_report(t, boot_page & ~0xfffULL, 4096);
    g_assert_cmpuint(dmm_qom_size(t, "reported-size"), ==,
                     2 * 1024 * 1024 + 2 * 4096);
    /* nothing about the blocks changed */
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, BLOCK_SIZE);
    g_assert_cmpuint(dmm_state(t, t->region, 2), ==, VIRTIO_DMM_STATE_MIXED);
    dmm_stop(t);
}

/*
 * A report of something that is not RAM (the local APIC's page) reaches the
 * device as a bounce buffer: refused, nothing discarded, device healthy.
 */
static void test_report_outside_ram(void)
{
    DMMTest *t = dmm_start_features(1ULL << VIRTIO_DMM_F_FREE_PAGE_REPORTING);
    QVirtioDevice *d = &t->dev->vdev;

    dmm_report(t, 0xfee00000ULL, 4096);
    g_assert_cmpuint(dmm_qom_size(t, "refused-reports"), ==, 1);
    g_assert_cmpuint(dmm_qom_size(t, "reported-size"), ==, 0);
    g_assert(!(d->bus->get_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET));
    dmm_stop(t);
}

/* --- sub-blocks --- */

#define SUB_BLOCK       (2 * 1024 * 1024ULL)

static void test_sub_blocks(void)
{
    DMMTest *t = dmm_start_features(1ULL << VIRTIO_DMM_F_SUB_BLOCKS);
    QVirtioDevice *d = &t->dev->vdev;
    const uint64_t r = t->region;

    g_assert_cmphex(qvirtio_config_readq(d,
                    offsetof(struct virtio_dmm_config, sub_block_size)), ==,
                    SUB_BLOCK);
    dmm_set_requested(t, BOOT_SIZE + 3 * SUB_BLOCK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG_SB,
                               r + BLOCK_SIZE + 4 * SUB_BLOCK, 3), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, 3 * SUB_BLOCK);
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
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, 3 * SUB_BLOCK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_SB,
                               r + BLOCK_SIZE + 5 * SUB_BLOCK, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, 2 * SUB_BLOCK);
    dmm_stop(t);
}

/* --- page requests --- */

#define PAGE            4096ULL
/* boot RAM well above what libqos allocates from */
#define BOOT_PAGE(i)    (256 * 1024 * 1024ULL + (i) * PAGE)
#define DMM_PAGES       (1ULL << VIRTIO_DMM_F_PAGES)

/*
 * Send a page request of @nb addresses in a buffer of @len bytes (0: just
 * enough) and return the response type.
 */
static uint16_t dmm_pages_len(DMMTest *t, uint16_t type, const uint64_t *addrs,
                              uint32_t nb, size_t len)
{
    size_t full = sizeof(struct virtio_dmm_page_req) + nb * sizeof(uint64_t);
    g_autofree struct virtio_dmm_page_req *req = g_malloc0(full);
    struct virtio_dmm_resp resp;
    uint64_t resp_addr;
    uint32_t head, used, i;

    req->type = cpu_to_le16(type);
    req->nb_pages = cpu_to_le32(nb);
    for (i = 0; i < nb; i++) {
        req->addr[i] = cpu_to_le64(addrs[i]);
    }
    head = dmm_post_vq(t, t->page_vq, req, len ? len : full, sizeof(resp),
                       &resp_addr);
    qvirtio_wait_used_elem(t->qs->qts, &t->dev->vdev, t->page_vq, head, &used,
                           DMM_TIMEOUT_US);
    g_assert_cmpuint(used, ==, sizeof(resp));
    qtest_memread(t->qs->qts, resp_addr, &resp, sizeof(resp));
    return le16_to_cpu(resp.type);
}

#define dmm_pages(t, type, ...) ({                                  \
    const uint64_t a_[] = { __VA_ARGS__ };                          \
    dmm_pages_len(t, type, a_, ARRAY_SIZE(a_), 0); })

static void test_pages(void)
{
    DMMTest *t = dmm_start_features(DMM_PAGES);
    QVirtioDevice *d = &t->dev->vdev;

    g_assert_cmpuint(qvirtio_config_readl(d,
                     offsetof(struct virtio_dmm_config, page_size)), ==,
                     PAGE);
    g_assert_cmpuint(qvirtio_config_readl(d,
                     offsetof(struct virtio_dmm_config, max_pages)), >=, 256);
    /* below boot size, and back */
    dmm_set_requested(t, BOOT_SIZE - 2 * PAGE);
    qtest_writeq(t->qs->qts, BOOT_PAGE(7), 0x1122334455667788ULL);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(0),
                               BOOT_PAGE(7)), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 2 * PAGE);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, BOOT_SIZE - 2 * PAGE);
    g_assert_cmphex(qvirtio_config_readq(d,
                    offsetof(struct virtio_dmm_config, unplugged_size)), ==,
                    2 * PAGE);
    /* an unplugged page reads as zero once the host discarded it */
    g_assert_cmphex(qtest_readq(t->qs->qts, BOOT_PAGE(7)), ==, 0);
    /* the guest migrated page 7 to page 9 */
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_MOVE_PAGES, BOOT_PAGE(7),
                               BOOT_PAGE(9)), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 2 * PAGE);
    dmm_set_requested(t, BOOT_SIZE);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(0),
                               BOOT_PAGE(9)), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, BOOT_SIZE);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 0);
    dmm_stop(t);
}

/*
 * Every way a page list can be wrong: ERROR (or NACK beyond the requested
 * size), and nothing changes.
 */
static void test_bad_page_lists(void)
{
    DMMTest *t = dmm_start_features(DMM_PAGES);
    QVirtioDevice *d = &t->dev->vdev;
    const uint64_t r = t->region;
    uint64_t many[1025] = { 0 };
    uint32_t i;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(1),
                               r + PAGE), ==, VIRTIO_DMM_RESP_ACK);

#define BAD(type, ...) \
    g_assert_cmpuint(dmm_pages(t, type, __VA_ARGS__), ==, VIRTIO_DMM_RESP_ERROR)
    /* unaligned */
    BAD(VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(2), BOOT_PAGE(3) + 512);
    /* out of range: BIOS, the PCI hole, APIC, an unplugged block, beyond */
    BAD(VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(2), 0xf0000);
    BAD(VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_SIZE);
    BAD(VIRTIO_DMM_REQ_UNPLUG_PAGES, 0xfee00000ULL);
    BAD(VIRTIO_DMM_REQ_UNPLUG_PAGES, r + BLOCK_SIZE);
    BAD(VIRTIO_DMM_REQ_UNPLUG_PAGES, r + REGION_SIZE);
    BAD(VIRTIO_DMM_REQ_UNPLUG_PAGES, UINT64_MAX - PAGE + 1);
    /* listed twice, or in the wrong state */
    BAD(VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(2), BOOT_PAGE(3), BOOT_PAGE(2));
    BAD(VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(1));
    BAD(VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(2));
    BAD(VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(1), BOOT_PAGE(1));
    BAD(VIRTIO_DMM_REQ_MOVE_PAGES, BOOT_PAGE(1));
    BAD(VIRTIO_DMM_REQ_MOVE_PAGES, BOOT_PAGE(1), BOOT_PAGE(1));
    BAD(VIRTIO_DMM_REQ_MOVE_PAGES, BOOT_PAGE(2), BOOT_PAGE(3));
    /* a block with an unplugged page cannot be unplugged */
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ERROR);
    /* unknown type on the page queue */
    BAD(VIRTIO_DMM_REQ_PLUG, BOOT_PAGE(2));
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
    /* plugging back beyond requested-size: NACK */
    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE - 2 * PAGE);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_PLUG_PAGES, BOOT_PAGE(1),
                               r + PAGE), ==, VIRTIO_DMM_RESP_NACK);
#undef BAD
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 2 * PAGE);
    g_assert_cmpuint(dmm_qom_size(t, "plugged-size"), ==, BLOCK_SIZE);
    g_assert(!(d->bus->get_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET));
    /* and the well-formed version of the rejected requests still works */
    g_assert_cmpuint(dmm_pages_len(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, many, 4,
                                   0), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 6 * PAGE);
    dmm_stop(t);
}

/* UNPLUG_ALL and a machine reset plug every page back. */
static void test_pages_reset(void)
{
    DMMTest *t = dmm_start_features(DMM_PAGES);
    QDict *rsp;

    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(1)),
                     ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_UNPLUG_ALL, 0, 0), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 0);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(1)),
                     ==, VIRTIO_DMM_RESP_ACK);
    rsp = qtest_qmp(t->qs->qts, "{ 'execute': 'system_reset' }");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    qtest_qmp_eventwait(t->qs->qts, "RESET");
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 0);
    dmm_stop(t);
}

/* A page request shorter than its header breaks the device, not QEMU. */
static void test_short_page_request(void)
{
    DMMTest *t = dmm_start_features(DMM_PAGES);
    uint8_t buf[8] = { VIRTIO_DMM_REQ_UNPLUG_PAGES, 0, 0, 0, 1, 0, 0, 0 };
    uint64_t resp_addr;
    uint8_t status;

    dmm_post_vq(t, t->page_vq, buf, 7, sizeof(struct virtio_dmm_resp),
                &resp_addr);
    status = dmm_wait_status(t, VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert(status & VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, 0);
    dmm_stop(t);
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
    qvirtio_wait_used_elem(t->qs->qts, &t->dev->vdev, t->hint_vq, head, &used,
                           DMM_TIMEOUT_US);
    g_assert_cmpuint(used, ==, sizeof(*resp));
    qtest_memread(t->qs->qts, resp_addr, resp, sizeof(*resp));
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
        qtest_writeq(t->qs->qts, addr + 8 * i, w);
    }
}

/* Verified hints are accepted, the others rejected; content never changes. */
static void test_hints(void)
{
    DMMTest *t = dmm_start_args(DMM_HINTS | DMM_HINTS_DUP, "512M", "4G",
                                ",dup-hints=on");
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
    g_assert_cmpuint(dmm_qom_size(t, "hints-zero"), ==, 2);
    g_assert_cmpuint(dmm_qom_size(t, "hints-dup"), ==, 2);
    g_assert_cmpuint(dmm_qom_size(t, "hints-rejected"), ==, 2);
    /* a 2 MiB chunk of boot RAM and one of the region became mergeable */
    g_assert_cmpuint(dmm_qom_size(t, "hint-mergeable-size"), ==,
                     4 * 1024 * 1024);
    /* hints change nothing the guest sees */
    g_assert_cmphex(qtest_readq(t->qs->qts, BOOT_PAGE(3) + 64), ==,
                    HINT_WORD);
    g_assert_cmphex(qtest_readq(t->qs->qts, r + PAGE + 4088), ==,
                    HINT_WORD);
    g_assert_cmpuint(dmm_qom_size(t, "size"), ==, BOOT_SIZE + BLOCK_SIZE);
    dmm_stop(t);
}

/* Every way a hint list can be wrong: ERROR, nothing read or shared. */
static void test_bad_hint_lists(void)
{
    DMMTest *t = dmm_start_features(DMM_HINTS | DMM_PAGES);
    QVirtioDevice *d = &t->dev->vdev;
    const uint64_t r = t->region;
    struct virtio_dmm_resp resp;
    uint64_t many[2 * (VIRTIO_DMM_MAX_HINTS + 1)] = { 0 };
    uint32_t i;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, r, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(dmm_pages(t, VIRTIO_DMM_REQ_UNPLUG_PAGES, BOOT_PAGE(5)),
                     ==, VIRTIO_DMM_RESP_ACK);

#define BAD(kind, ...) \
    g_assert_cmpuint(dmm_hints(t, kind, &resp, __VA_ARGS__), ==, \
                     VIRTIO_DMM_RESP_ERROR)
    /* unaligned; BIOS, the PCI hole, APIC, unplugged block, beyond */
    BAD(VIRTIO_DMM_HINT_ZERO, BOOT_PAGE(1), 0, BOOT_PAGE(2) + 8, 0);
    BAD(VIRTIO_DMM_HINT_ZERO, 0xf0000, 0);
    BAD(VIRTIO_DMM_HINT_ZERO, BOOT_SIZE, 0);
    BAD(VIRTIO_DMM_HINT_ZERO, 0xfee00000ULL, 0);
    BAD(VIRTIO_DMM_HINT_ZERO, r + BLOCK_SIZE, 0);
    BAD(VIRTIO_DMM_HINT_ZERO, r + REGION_SIZE, 0);
    BAD(VIRTIO_DMM_HINT_ZERO, UINT64_MAX - PAGE + 1, 0);
    /* a page the guest unplugged */
    BAD(VIRTIO_DMM_HINT_ZERO, BOOT_PAGE(5), 0);
    /* a zero hint with a hash; an unknown kind */
    BAD(VIRTIO_DMM_HINT_ZERO, BOOT_PAGE(1), 1);
    BAD(2, BOOT_PAGE(1), 0);
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
#undef BAD
    g_assert_cmpuint(dmm_qom_size(t, "hint-errors"), ==, 13);
    g_assert_cmpuint(dmm_qom_size(t, "hint-mergeable-size"), ==, 0);
    g_assert_cmpuint(dmm_qom_size(t, "hints-zero"), ==, 0);
    g_assert(!(d->bus->get_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET));
    /* the well-formed version is accepted */
    g_assert_cmpuint(dmm_hints_len(t, VIRTIO_DMM_HINT_ZERO, many, 4, 0,
                                   &resp), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(le32_to_cpu(resp.u.hint.accepted), ==, 4);
    g_assert_cmpuint(dmm_qom_size(t, "unplugged-size"), ==, PAGE);
    dmm_stop(t);
}

/* Without the feature negotiated, hints are refused (NACK), not read. */
static void test_hints_not_negotiated(void)
{
    DMMTest *t = dmm_start_features(0);
    struct virtio_dmm_resp resp;

    t->hint_vq = qvirtqueue_setup(&t->dev->vdev, &t->qs->alloc,
                                  VIRTIO_DMM_VQ_HINT);
    g_assert_cmpuint(dmm_hints(t, VIRTIO_DMM_HINT_ZERO, &resp, BOOT_PAGE(1),
                               0), ==, VIRTIO_DMM_RESP_NACK);
    g_assert_cmpuint(dmm_qom_size(t, "hint-mergeable-size"), ==, 0);
    dmm_stop(t);
}

/* A hint request shorter than its header breaks the device, not QEMU. */
static void test_short_hint_request(void)
{
    DMMTest *t = dmm_start_features(DMM_HINTS);
    uint8_t buf[8] = { VIRTIO_DMM_HINT_ZERO, 0, 0, 0, 1, 0, 0, 0 };
    uint64_t resp_addr;
    uint8_t status;

    dmm_post_vq(t, t->hint_vq, buf, 7, sizeof(struct virtio_dmm_resp),
                &resp_addr);
    status = dmm_wait_status(t, VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert(status & VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpuint(dmm_qom_size(t, "hints-zero"), ==, 0);
    dmm_stop(t);
}

/*
 * Duplicate hints are the operator's choice (dup-hints, off by default):
 * without it the feature is not offered and a DUP hint is an ERROR that
 * shares nothing; zero hints still work.
 */
static void test_dup_hints_default_off(void)
{
    DMMTest *t = dmm_start_features(DMM_HINTS);
    struct virtio_dmm_resp resp;

    g_assert(!(qvirtio_get_features(&t->dev->vdev) & DMM_HINTS_DUP));
    fill_page(t, BOOT_PAGE(3), HINT_WORD);
    g_assert_cmpuint(dmm_hints(t, VIRTIO_DMM_HINT_DUP, &resp, BOOT_PAGE(3),
                               HINT_HASH), ==, VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_qom_size(t, "hints-dup"), ==, 0);
    g_assert_cmpuint(dmm_qom_size(t, "hint-mergeable-size"), ==, 0);
    g_assert_cmpuint(dmm_hints(t, VIRTIO_DMM_HINT_ZERO, &resp, BOOT_PAGE(1),
                               0), ==, VIRTIO_DMM_RESP_ACK);
    g_assert_cmpuint(le32_to_cpu(resp.u.hint.accepted), ==, 1);
    dmm_stop(t);
}

/* Lines of /proc/PID/maps: the process's VMAs. */
static unsigned int dmm_vmas(DMMTest *t)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/maps",
                                            (int)qtest_pid(t->qs->qts));
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
static void test_hint_runs(void)
{
    DMMTest *t = dmm_start_args(DMM_HINTS, "8G", "12G", "");
    unsigned int vmas = dmm_vmas(t);

    g_assert_cmpuint(dmm_hint_chunks(t, 0, MAX_HINT_RUNS + 200), ==,
                     MAX_HINT_RUNS);
    g_assert_cmpuint(dmm_qom_size(t, "hints-rejected"), ==, 200);
    g_assert_cmpuint(dmm_vmas(t), <=, vmas + 2 * MAX_HINT_RUNS + 16);
    /* a chunk between two runs joins them; then one more run fits */
    g_assert_cmpuint(dmm_hint_chunks(t, 1, 1), ==, 1);
    g_assert_cmpuint(dmm_hint_chunks(t, 2 * MAX_HINT_RUNS + 1, 1), ==, 1);
    g_assert_cmpuint(dmm_hint_chunks(t, 2 * MAX_HINT_RUNS + 3, 1), ==, 0);
    g_assert_cmpuint(dmm_vmas(t), <=, vmas + 2 * MAX_HINT_RUNS + 16);
    dmm_stop(t);
}

/* --- what the guest can reach --- */

/*
 * Unplugged blocks are not guest memory: writes there do not stick (and
 * take no host memory); a plugged block is there at once, and gone again
 * when unplugged.  A partially plugged block stays reachable.
 */
static void test_unplugged_inaccessible(void)
{
    DMMTest *t = dmm_start_features(1ULL << VIRTIO_DMM_F_SUB_BLOCKS);
    QTestState *qts = t->qs->qts;
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
    dmm_stop(t);
}

/* A report of an unplugged block is no guest memory: the device breaks. */
static void test_report_unplugged(void)
{
    DMMTest *t = dmm_start_features(1ULL << VIRTIO_DMM_F_FREE_PAGE_REPORTING);
    uint32_t head;

    head = qvirtqueue_add(t->qs->qts, t->report_vq, t->region, 2 * 1024 * 1024,
                          true, false);
    qvirtqueue_kick(t->qs->qts, &t->dev->vdev, t->report_vq, head);
    g_assert(dmm_wait_status(t, VIRTIO_CONFIG_S_NEEDS_RESET) &
             VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpuint(dmm_qom_size(t, "reported-size"), ==, 0);
    dmm_stop(t);
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

/*
 * Load @file into a new machine of the test's shape (@dev_opts added to
 * the device); the migration must end in @want.  The destination stays up
 * (exit-on-error off) and answers with its device state.
 */
static uint64_t dmm_load_stream(const char *file, const char *dev_opts,
                                const char *want)
{
    QTestState *qts = qtest_initf(DMM_CMDLINE " -incoming defer", "512M",
                                  "4G", dev_opts);
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    QDict *rsp;
    uint64_t plugged;

    rsp = qtest_qmp(qts, "{ 'execute': 'migrate-incoming', 'arguments':"
                    " { 'uri': %s, 'exit-on-error': false } }", uri);
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    dmm_wait_migration(qts, want);
    rsp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments':"
                    " { 'path': 'dmm0', 'property': 'plugged-size' } }");
    g_assert(qdict_haskey(rsp, "return"));
    plugged = qdict_get_int(rsp, "return");
    qobject_unref(rsp);
    qtest_quit(qts);
    return plugged;
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
static void test_migration_checks(void)
{
    DMMTest *t = dmm_start_features(0);
    g_autofree char *dir = g_dir_make_tmp("virtio-dmm-XXXXXX", NULL);
    g_autofree char *file = g_strdup_printf("%s/stream", dir);
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    g_autofree char *at = NULL;
    QDict *rsp;

    dmm_set_requested(t, BOOT_SIZE + BLOCK_SIZE);
    g_assert_cmpuint(dmm_range(t, VIRTIO_DMM_REQ_PLUG, t->region, 1), ==,
                     VIRTIO_DMM_RESP_ACK);
    rsp = qtest_qmp(t->qs->qts, "{ 'execute': 'migrate', 'arguments':"
                    " { 'uri': %s } }", uri);
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    dmm_wait_migration(t->qs->qts, "completed");

    g_assert_cmpuint(dmm_load_stream(file, "", "completed"), ==, BLOCK_SIZE);
    at = g_strdup_printf(",memaddr=0x%" PRIx64,
                         (uint64_t)(t->region + REGION_SIZE));
    g_assert_cmpuint(dmm_load_stream(file, at, "failed"), ==, 0);
    dmm_patch_subsection(file, "virtio-dmm-device/stats", 5);
    g_assert_cmpuint(dmm_load_stream(file, "", "failed"), ==, 0);
    unlink(file);
    rmdir(dir);
    dmm_stop(t);
}

/* --- statistics and requests for memory --- */

#define DMM_STATS       (1ULL << VIRTIO_DMM_F_STATS)

/* Send @len bytes of a report; returns the response type. */
static uint16_t dmm_report_stats(DMMTest *t, const struct virtio_dmm_stats *st,
                                 size_t len)
{
    struct virtio_dmm_resp resp;
    uint64_t resp_addr;
    uint32_t head, used;

    head = dmm_post_vq(t, t->stats_vq, st, len, sizeof(resp), &resp_addr);
    qvirtio_wait_used_elem(t->qs->qts, &t->dev->vdev, t->stats_vq, head,
                           &used, DMM_TIMEOUT_US);
    qtest_memread(t->qs->qts, resp_addr, &resp, sizeof(resp));
    return le16_to_cpu(resp.type);
}

static QDict *dmm_device_info(DMMTest *t)
{
    QDict *rsp = qtest_qmp(t->qs->qts,
                           "{ 'execute': 'query-memory-devices' }");
    QList *list = qdict_get_qlist(rsp, "return");
    QDict *data = qdict_get_qdict(qobject_to(QDict, qlist_peek(list)),
                                  "data");

    qobject_ref(data);
    qobject_unref(rsp);
    return data;
}

static void test_stats(void)
{
    DMMTest *t = dmm_start_features(DMM_STATS);
    struct virtio_dmm_stats st = {
        .seq = cpu_to_le64(1),
        .total = cpu_to_le64(BOOT_SIZE),
        .available = cpu_to_le64(100 << 20),
        .psi_some_avg10 = cpu_to_le32(1234),
        .oom_kills = cpu_to_le64(2),
    };
    QDict *info, *stats;

    g_assert_cmpuint(qvirtio_config_readl(&t->dev->vdev,
                     offsetof(struct virtio_dmm_config, stats_interval_ms)),
                     ==, 1000);
    /* no report yet */
    info = dmm_device_info(t);
    g_assert(!qdict_haskey(info, "stats"));
    qobject_unref(info);
    /* a short report is refused and not kept */
    g_assert_cmpuint(dmm_report_stats(t, &st, sizeof(st) - 8), ==,
                     VIRTIO_DMM_RESP_ERROR);
    info = dmm_device_info(t);
    g_assert(!qdict_haskey(info, "stats"));
    qobject_unref(info);
    g_assert_cmpuint(dmm_report_stats(t, &st, sizeof(st)), ==,
                     VIRTIO_DMM_RESP_ACK);
    info = dmm_device_info(t);
    stats = qdict_get_qdict(info, "stats");
    g_assert(stats);
    g_assert_cmpuint(qdict_get_int(stats, "available"), ==, 100 << 20);
    g_assert_cmpuint(qdict_get_int(stats, "oom-kills"), ==, 2);
    g_assert_cmpfloat(qdict_get_double(stats, "psi-some-avg10"), ==, 12.34);
    qobject_unref(info);
    qtest_qmp_eventwait(t->qs->qts, "VIRTIO_DMM_STATS");
    dmm_stop(t);
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
static void test_ask(void)
{
    DMMTest *t = dmm_start_features(DMM_STATS);

    g_assert_cmpuint(dmm_ask(t, BOOT_SIZE + 1, 0), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_ask(t, BOOT_SIZE + 2 * REGION_SIZE, 0), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_ask(t, BOOT_SIZE + BLOCK_SIZE, 1ULL << 40), ==,
                     VIRTIO_DMM_RESP_ERROR);
    g_assert_cmpuint(dmm_ask(t, BOOT_SIZE + BLOCK_SIZE,
                             VIRTIO_DMM_ASK_PRESSURE), ==,
                     VIRTIO_DMM_RESP_BUSY);
    qtest_qmp_eventwait(t->qs->qts, "VIRTIO_DMM_ASK");
    g_assert_cmpuint(dmm_qom_size(t, "requested-size"), ==, BOOT_SIZE);
    dmm_stop(t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("virtio-dmm/config", test_config);
    qtest_add_func("virtio-dmm/plug-unplug", test_plug_unplug);
    qtest_add_func("virtio-dmm/bad-requests", test_bad_requests);
    qtest_add_func("virtio-dmm/short-request", test_short_request);
    qtest_add_func("virtio-dmm/short-response", test_short_response);
    qtest_add_func("virtio-dmm/machine-reset", test_machine_reset);
    qtest_add_func("virtio-dmm/free-page-reports", test_free_page_reports);
    qtest_add_func("virtio-dmm/report-outside-ram", test_report_outside_ram);
    qtest_add_func("virtio-dmm/sub-blocks", test_sub_blocks);
    qtest_add_func("virtio-dmm/pages", test_pages);
    qtest_add_func("virtio-dmm/bad-page-lists", test_bad_page_lists);
    qtest_add_func("virtio-dmm/pages-reset", test_pages_reset);
    qtest_add_func("virtio-dmm/short-page-request", test_short_page_request);
    qtest_add_func("virtio-dmm/hints", test_hints);
    qtest_add_func("virtio-dmm/bad-hint-lists", test_bad_hint_lists);
    qtest_add_func("virtio-dmm/hints-not-negotiated",
                   test_hints_not_negotiated);
    qtest_add_func("virtio-dmm/short-hint-request", test_short_hint_request);
    qtest_add_func("virtio-dmm/dup-hints-default-off",
                   test_dup_hints_default_off);
    qtest_add_func("virtio-dmm/hint-runs", test_hint_runs);
    qtest_add_func("virtio-dmm/unplugged-inaccessible",
                   test_unplugged_inaccessible);
    qtest_add_func("virtio-dmm/report-unplugged", test_report_unplugged);
    qtest_add_func("virtio-dmm/migration-checks", test_migration_checks);
    qtest_add_func("virtio-dmm/stats", test_stats);
    qtest_add_func("virtio-dmm/ask", test_ask);

    return g_test_run();
}
