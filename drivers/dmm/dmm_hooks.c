// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: debugfs test hooks (dmm_debugfs.c makes the
 * directory).
 *
 * They exist only when the module is loaded with test_hooks=1 (read-only
 * after load): each one bypasses the driver's bookkeeping, so a kernel
 * that does not run the project's tests must not offer them to anyone,
 * root included.  With the parameter, /sys/kernel/debug/virtio_dmm/
 * <device>/ holds:
 *
 * page_request sends one raw page request and reads back the device's
 * answer:
 *
 *   echo "TYPE NB ADDR..." > page_request     # decimal TYPE and NB, hex ADDR
 *   cat page_request                          # ack, nack, busy or error
 *
 * hint_request does the same with one hint list (KIND 0 zero,
 * 1 duplicate; ADDR and HASH in hex):
 *
 *   echo "KIND NB ADDR HASH..." > hint_request
 *   cat hint_request                          # "ack A R", nack or error
 *
 * NB goes into the header as it is, so a request can claim more addresses
 * than it carries.  This lets a test prove inside a guest that the device
 * refuses malformed page lists.  A well-formed request sent here takes
 * memory away from a guest that still uses it.
 *
 * touch_region writes to memory of the region the driver has not added,
 * which a guest must never use: it shows what the host does with such
 * writes (they must not stick, nor cost host memory):
 *
 *   echo "OFFSET LEN" > touch_region          # bytes into the region
 *   cat touch_region            # "pages_written N pages_readback_ok M"
 */
#include <linux/debugfs.h>
#include <linux/io.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "dmm.h"

static bool test_hooks;
module_param(test_hooks, bool, 0444);
MODULE_PARM_DESC(test_hooks,
		 "create the debugfs test hooks page_request, hint_request and touch_region; for tests only (default: false)");

/* At most this many addresses: one more than a device may accept. */
#define DMM_DEBUG_MAX_ADDRS	1025
#define DMM_DEBUG_MAX_INPUT	(DMM_DEBUG_MAX_ADDRS * 20 + 32)

static const char * const dmm_resp_names[] = {
	[VIRTIO_DMM_RESP_ACK] = "ack",
	[VIRTIO_DMM_RESP_NACK] = "nack",
	[VIRTIO_DMM_RESP_BUSY] = "busy",
	[VIRTIO_DMM_RESP_ERROR] = "error",
};

/* Parse "TYPE NB ADDR..." into @req; returns the number of addresses. */
static int dmm_debug_parse(char *buf, struct virtio_dmm_page_req *req)
{
	unsigned int type, nb, n = 0;
	char *tok;
	u64 addr;

	tok = strsep(&buf, "\n ");
	if (!tok || kstrtouint(tok, 10, &type) || type > U16_MAX)
		return -EINVAL;
	tok = strsep(&buf, "\n ");
	if (!tok || kstrtouint(tok, 10, &nb))
		return -EINVAL;
	req->type = cpu_to_le16(type);
	req->nb_pages = cpu_to_le32(nb);
	while ((tok = strsep(&buf, "\n "))) {
		if (!*tok)
			continue;
		if (n == DMM_DEBUG_MAX_ADDRS || kstrtou64(tok, 16, &addr))
			return -EINVAL;
		req->addr[n++] = cpu_to_le64(addr);
	}
	return n;
}

/* Send @req with @n addresses on the page queue and keep the answer. */
static int dmm_debug_send(struct virtio_dmm *vm,
			  struct virtio_dmm_page_req *req, unsigned int n)
{
	int rc;

	mutex_lock(&vm->pages.lock);
	rc = dmm_vq_exchange(vm->pages.vq, &vm->pages.resp_wq, req,
			     struct_size(req, addr, n), &vm->pages.resp);
	if (rc >= 0)
		vm->debug.resp = rc;
	mutex_unlock(&vm->pages.lock);
	return rc < 0 ? rc : 0;
}

static ssize_t dmm_debug_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	struct virtio_dmm *vm = file->private_data;
	struct virtio_dmm_page_req *req;
	char *buf;
	int n, rc;

	if (count > DMM_DEBUG_MAX_INPUT)
		return -EINVAL;
	buf = memdup_user_nul(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	req = kzalloc(struct_size(req, addr, DMM_DEBUG_MAX_ADDRS), GFP_KERNEL);
	if (!req) {
		kfree(buf);
		return -ENOMEM;
	}
	n = dmm_debug_parse(buf, req);
	rc = n < 0 ? n : dmm_debug_send(vm, req, n);
	kfree(req);
	kfree(buf);
	return rc ? rc : count;
}

static ssize_t dmm_debug_read(struct file *file, char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	struct virtio_dmm *vm = file->private_data;
	u16 resp = READ_ONCE(vm->debug.resp);
	char out[16];
	int len;

	len = scnprintf(out, sizeof(out), "%s\n",
			resp < ARRAY_SIZE(dmm_resp_names) ?
			dmm_resp_names[resp] : "none");
	return simple_read_from_buffer(ubuf, count, ppos, out, len);
}

/* Parse "KIND NB ADDR HASH..." into vm->hints.req; returns the hints. */
static int dmm_debug_parse_hints(char *buf, struct virtio_dmm_hint_req *req)
{
	unsigned int kind, nb, n = 0;
	u64 val[2];
	char *tok;
	int i = 0;

	tok = strsep(&buf, "\n ");
	if (!tok || kstrtouint(tok, 10, &kind) || kind > U16_MAX)
		return -EINVAL;
	tok = strsep(&buf, "\n ");
	if (!tok || kstrtouint(tok, 10, &nb))
		return -EINVAL;
	req->type = cpu_to_le16(kind);
	req->padding = 0;
	req->nb_hints = cpu_to_le32(nb);
	while ((tok = strsep(&buf, "\n "))) {
		if (!*tok)
			continue;
		if (n == VIRTIO_DMM_MAX_HINTS || kstrtou64(tok, 16, &val[i]))
			return -EINVAL;
		if (++i < 2)
			continue;
		req->hints[n].addr = cpu_to_le64(val[0]);
		req->hints[n++].hash = cpu_to_le64(val[1]);
		i = 0;
	}
	return i ? -EINVAL : n;
}

static ssize_t dmm_debug_hint_write(struct file *file,
				    const char __user *ubuf, size_t count,
				    loff_t *ppos)
{
	struct virtio_dmm *vm = file->private_data;
	char *buf;
	int n, rc;

	if (count > VIRTIO_DMM_MAX_HINTS * 40 + 32)
		return -EINVAL;
	buf = memdup_user_nul(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	mutex_lock(&vm->hints.lock);
	n = dmm_debug_parse_hints(buf, vm->hints.req);
	rc = n;
	if (n >= 0) {
		rc = dmm_hints_send(vm, vm->hints.req, n);
		vm->debug.hint_resp = rc == -EIO ? VIRTIO_DMM_RESP_ERROR :
				      le16_to_cpu(vm->hints.resp.type);
		vm->debug.hint_counts[0] =
			le32_to_cpu(vm->hints.resp.u.hint.accepted);
		vm->debug.hint_counts[1] =
			le32_to_cpu(vm->hints.resp.u.hint.rejected);
		rc = rc == -EIO || rc == -ENOSPC ? 0 : rc;
	}
	mutex_unlock(&vm->hints.lock);
	kfree(buf);
	return rc ? rc : count;
}

static ssize_t dmm_debug_hint_read(struct file *file, char __user *ubuf,
				   size_t count, loff_t *ppos)
{
	struct virtio_dmm *vm = file->private_data;
	char out[40];
	int len;

	mutex_lock(&vm->hints.lock);
	if (vm->debug.hint_resp == VIRTIO_DMM_RESP_ACK)
		len = scnprintf(out, sizeof(out), "ack %u %u\n",
				vm->debug.hint_counts[0],
				vm->debug.hint_counts[1]);
	else
		len = scnprintf(out, sizeof(out), "%s\n",
				vm->debug.hint_resp < ARRAY_SIZE(dmm_resp_names) ?
				dmm_resp_names[vm->debug.hint_resp] : "none");
	mutex_unlock(&vm->hints.lock);
	return simple_read_from_buffer(ubuf, count, ppos, out, len);
}

/* Written into each touched page, xor its guest-physical address. */
#define DMM_TOUCH_MAGIC		0x646d6d2d746f7563ULL	/* "dmm-touc" */
/* Longest "OFFSET LEN" line accepted. */
#define DMM_TOUCH_MAX_INPUT	64

/*
 * May [@off, @off + @len) of the region be touched?  Page-aligned, inside
 * the region (-EINVAL), and no block of it added to Linux (-EBUSY): Linux
 * owns added memory, sub-blocks and pages included.
 */
static int dmm_touch_check(struct virtio_dmm *vm, u64 off, u64 len)
{
	unsigned long first, last, busy;

	lockdep_assert_held(&vm->hotplug_mutex);
	if (!len || !IS_ALIGNED(off, PAGE_SIZE) ||
	    !IS_ALIGNED(len, PAGE_SIZE) || off >= vm->region_size ||
	    len > vm->region_size - off) {
		dev_err(&vm->vdev->dev, "touch_region: offset 0x%llx length 0x%llx is not page-aligned inside the region of 0x%llx bytes\n",
			off, len, vm->region_size);
		return -EINVAL;
	}
	first = div64_u64(off, vm->block_size);
	last = div64_u64(off + len - 1, vm->block_size);
	for (busy = first; busy <= last; busy++)
		if (dmm_block_state(vm, busy) != DMM_BLOCK_UNPLUGGED)
			break;
	if (busy <= last) {
		dev_err(&vm->vdev->dev, "touch_region: offset 0x%llx length 0x%llx overlaps block %lu, which Linux uses\n",
			off, len, busy);
		return -EBUSY;
	}
	return 0;
}

/*
 * Write (@write) or read back one u64 in each page of [@off, @off + @len)
 * of the region; returns the pages written or read back intact, or -errno.
 * The region is not System RAM where Linux has not added it (no direct
 * map): map it for the duration.  The value differs per page, so a page
 * that reads another page's value does not count.
 */
static long dmm_touch_chunk(struct virtio_dmm *vm, u64 off, u64 len,
			    bool write)
{
	u64 addr = vm->region_addr + off, pos, want;
	long n = 0;
	u64 *p;
	void *map;

	map = memremap(addr, len, MEMREMAP_WB);
	if (!map) {
		dev_err(&vm->vdev->dev, "touch_region: mapping 0x%llx-0x%llx failed\n",
			addr, addr + len - 1);
		return -ENOMEM;
	}
	for (pos = 0; pos < len; pos += PAGE_SIZE) {
		p = map + pos;
		want = (addr + pos) ^ DMM_TOUCH_MAGIC;
		if (write) {
			WRITE_ONCE(*p, want);
			n++;
		} else if (READ_ONCE(*p) == want) {
			n++;
		}
		if (!(pos & (SZ_2M - 1)))
			cond_resched();
	}
	memunmap(map);
	return n;
}

/*
 * One pass over [@off, @off + @len), a block at a time, each under
 * hotplug_mutex after checking again that Linux has not added it since:
 * the control loop may plug between blocks.  Adds to @count.
 */
static int dmm_touch_pass(struct virtio_dmm *vm, u64 off, u64 len,
			  bool write, u64 *count)
{
	u64 end = off + len, next;
	long n;
	int rc;

	for (; off < end; off = next) {
		next = min(round_down(off, vm->block_size) + vm->block_size,
			   end);
		mutex_lock(&vm->hotplug_mutex);
		rc = dmm_touch_check(vm, off, next - off);
		n = rc ? rc : dmm_touch_chunk(vm, off, next - off, write);
		mutex_unlock(&vm->hotplug_mutex);
		if (n < 0)
			return n;
		*count += n;
	}
	return 0;
}

/*
 * "OFFSET LEN": write a value into every page of that part of the region,
 * then read them all back; the counts are what reading the file shows.
 * -EINVAL or -EBUSY (see dmm_touch_check()) before touching anything.
 */
static ssize_t dmm_touch_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	struct virtio_dmm *vm = file->private_data;
	u64 off, len, written = 0, ok = 0;
	char *buf, *tok, *pos;
	int rc;

	if (count > DMM_TOUCH_MAX_INPUT)
		return -EINVAL;
	buf = memdup_user_nul(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	pos = strim(buf);
	tok = strsep(&pos, " ");
	rc = -EINVAL;
	if (!tok || kstrtou64(tok, 0, &off) || !pos ||
	    kstrtou64(skip_spaces(pos), 0, &len))
		goto out;
	mutex_lock(&vm->hotplug_mutex);
	rc = dmm_touch_check(vm, off, len);
	mutex_unlock(&vm->hotplug_mutex);
	if (rc)
		goto out;
	rc = dmm_touch_pass(vm, off, len, true, &written);
	if (!rc)
		rc = dmm_touch_pass(vm, off, len, false, &ok);
	WRITE_ONCE(vm->debug.touch_written, written);
	WRITE_ONCE(vm->debug.touch_ok, ok);
out:
	kfree(buf);
	return rc ? rc : count;
}

static ssize_t dmm_touch_read(struct file *file, char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	struct virtio_dmm *vm = file->private_data;
	char out[64];
	int len;

	len = scnprintf(out, sizeof(out), "pages_written %llu pages_readback_ok %llu\n",
			READ_ONCE(vm->debug.touch_written),
			READ_ONCE(vm->debug.touch_ok));
	return simple_read_from_buffer(ubuf, count, ppos, out, len);
}

static const struct file_operations dmm_debug_touch_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = dmm_touch_read,
	.write = dmm_touch_write,
	.llseek = default_llseek,
};

static const struct file_operations dmm_debug_hint_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = dmm_debug_hint_read,
	.write = dmm_debug_hint_write,
	.llseek = default_llseek,
};

static const struct file_operations dmm_debug_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = dmm_debug_read,
	.write = dmm_debug_write,
	.llseek = default_llseek,
};

/* The test hooks in the device's directory, if test_hooks=1. */
void dmm_hooks_init(struct virtio_dmm *vm)
{
	vm->debug.resp = U16_MAX;
	vm->debug.hint_resp = U16_MAX;
	if (!test_hooks)
		return;
	dev_notice(&vm->vdev->dev, "debugfs test hooks enabled (test_hooks=1)\n");
	debugfs_create_file("touch_region", 0600, vm->debug.dir, vm,
			    &dmm_debug_touch_fops);
	if (vm->pages.on)
		debugfs_create_file("page_request", 0600, vm->debug.dir, vm,
				    &dmm_debug_fops);
	if (vm->hints.req)
		debugfs_create_file("hint_request", 0600, vm->debug.dir, vm,
				    &dmm_debug_hint_fops);
}
