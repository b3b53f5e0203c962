// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: debugfs, for tests of the device.
 *
 * /sys/kernel/debug/virtio_dmm/<device>/page_request sends one raw page
 * request and reads back the device's answer:
 *
 *   echo "TYPE NB ADDR..." > page_request     # decimal TYPE and NB, hex ADDR
 *   cat page_request                          # ack, nack, busy or error
 *
 * /sys/kernel/debug/virtio_dmm/<device>/hint_request does the same with
 * one hint list (KIND 0 zero, 1 duplicate; ADDR and HASH in hex):
 *
 *   echo "KIND NB ADDR HASH..." > hint_request
 *   cat hint_request                          # "ack A R", nack or error
 *
 * NB goes into the header as it is, so a request can claim more addresses
 * than it carries.  This lets a test prove inside a guest that the device
 * refuses malformed page lists.  It bypasses the driver's bookkeeping: a
 * well-formed request sent here takes memory away from a guest that still
 * uses it.  Root only, and only for tests.
 */
#include <linux/debugfs.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "dmm.h"

/* At most this many addresses: one more than a device may accept. */
#define DMM_DEBUG_MAX_ADDRS	1025
#define DMM_DEBUG_MAX_INPUT	(DMM_DEBUG_MAX_ADDRS * 20 + 32)

static struct dentry *dmm_debugfs_root;

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

	mutex_lock(&vm->page_mutex);
	rc = dmm_vq_exchange(vm->page_vq, &vm->page_resp, req,
			     struct_size(req, addr, n), &vm->page_resp_buf);
	if (rc >= 0)
		vm->debug_resp = rc;
	mutex_unlock(&vm->page_mutex);
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
	u16 resp = READ_ONCE(vm->debug_resp);
	char out[16];
	int len;

	len = scnprintf(out, sizeof(out), "%s\n",
			resp < ARRAY_SIZE(dmm_resp_names) ?
			dmm_resp_names[resp] : "none");
	return simple_read_from_buffer(ubuf, count, ppos, out, len);
}

/* Parse "KIND NB ADDR HASH..." into vm->hint_req; returns the hints. */
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
	mutex_lock(&vm->hint_mutex);
	n = dmm_debug_parse_hints(buf, vm->hint_req);
	rc = n;
	if (n >= 0) {
		rc = dmm_hints_send(vm, vm->hint_req, n);
		vm->debug_hint_resp = rc == -EIO ? VIRTIO_DMM_RESP_ERROR :
				      le16_to_cpu(vm->hint_resp.type);
		vm->debug_hint_counts[0] =
			le32_to_cpu(vm->hint_resp.u.hint.accepted);
		vm->debug_hint_counts[1] =
			le32_to_cpu(vm->hint_resp.u.hint.rejected);
		rc = rc == -EIO || rc == -ENOSPC ? 0 : rc;
	}
	mutex_unlock(&vm->hint_mutex);
	kfree(buf);
	return rc ? rc : count;
}

static ssize_t dmm_debug_hint_read(struct file *file, char __user *ubuf,
				   size_t count, loff_t *ppos)
{
	struct virtio_dmm *vm = file->private_data;
	char out[40];
	int len;

	mutex_lock(&vm->hint_mutex);
	if (vm->debug_hint_resp == VIRTIO_DMM_RESP_ACK)
		len = scnprintf(out, sizeof(out), "ack %u %u\n",
				vm->debug_hint_counts[0],
				vm->debug_hint_counts[1]);
	else
		len = scnprintf(out, sizeof(out), "%s\n",
				vm->debug_hint_resp < ARRAY_SIZE(dmm_resp_names) ?
				dmm_resp_names[vm->debug_hint_resp] : "none");
	mutex_unlock(&vm->hint_mutex);
	return simple_read_from_buffer(ubuf, count, ppos, out, len);
}

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

void dmm_debugfs_init(struct virtio_dmm *vm)
{
	vm->debug_resp = U16_MAX;
	vm->debug_hint_resp = U16_MAX;
	if (!vm->pages && !vm->hint_req)
		return;
	vm->debug_dir = debugfs_create_dir(dev_name(&vm->vdev->dev),
					   dmm_debugfs_root);
	if (vm->pages)
		debugfs_create_file("page_request", 0600, vm->debug_dir, vm,
				    &dmm_debug_fops);
	if (vm->hint_req)
		debugfs_create_file("hint_request", 0600, vm->debug_dir, vm,
				    &dmm_debug_hint_fops);
}

void dmm_debugfs_exit(struct virtio_dmm *vm)
{
	debugfs_remove_recursive(vm->debug_dir);
	vm->debug_dir = NULL;
}

/* Module load and unload: the driver's directory. */
void dmm_debugfs_register(void)
{
	dmm_debugfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
}

void dmm_debugfs_unregister(void)
{
	debugfs_remove_recursive(dmm_debugfs_root);
	dmm_debugfs_root = NULL;
}
