// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_sysfs_test: the driver's sysfs ABI.
 *
 * Every attribute reads back a sane value; read-only attributes refuse
 * writes; retry_interval_ms takes values in its range and refuses anything
 * else with EINVAL, keeping the old value.  (A zero-length write never
 * reaches sysfs, so the "empty" case is a bare newline.)
 */
#include <inttypes.h>
#include <kselftest.h>
#include "dmm_util.h"

static const char * const ro_attrs[] = {
	"plugged_size", "requested_size", "block_size", "region_addr",
	"region_size", "boot_size", "status",
};

static void test_values_sane(void)
{
	uint64_t bs, addr, size, plugged;
	char status[32];

	ksft_print_msg("[RUN] %s\n", __func__);
	bs = dmm_attr_u64("block_size");
	addr = dmm_attr_u64("region_addr");
	size = dmm_attr_u64("region_size");
	plugged = dmm_attr_u64("plugged_size");
	if (dmm_read_attr("status", status, sizeof(status))) {
		ksft_test_result_fail("status unreadable\n");
		return;
	}
	if (!bs || (bs & (bs - 1)) || addr % bs || !size || size % bs ||
	    plugged % bs || plugged > size ||
	    (strcmp(status, "idle") && strcmp(status, "busy") &&
	     strcmp(status, "error"))) {
		ksft_test_result_fail("insane: block %" PRIu64 " addr 0x%" PRIx64
				      " size %" PRIu64 " plugged %" PRIu64
				      " status %s\n", bs, addr, size, plugged,
				      status);
		return;
	}
	ksft_test_result_pass("%s\n", __func__);
}

static void test_ro_attrs_refuse_writes(void)
{
	unsigned int i, bad = 0;
	int err;

	ksft_print_msg("[RUN] %s\n", __func__);
	for (i = 0; i < ARRAY_SIZE(ro_attrs); i++) {
		err = dmm_write_attr(ro_attrs[i], "1");
		if (!err) {
			ksft_print_msg("%s accepted a write\n", ro_attrs[i]);
			bad++;
		}
	}
	ksft_test_result(!bad, "%s\n", __func__);
}

static int write_expect_success(const char *attr, const char *val)
{
	char after[64];
	int err = dmm_write_attr(attr, val);

	dmm_read_attr(attr, after, sizeof(after));
	if (err || strtoull(after, NULL, 0) != strtoull(val, NULL, 0)) {
		ksft_print_msg("%s <- '%s': error %d, reads %s\n", attr, val,
			       err, after);
		return 1;
	}
	return 0;
}

static void test_retry_interval_bad_values(void)
{
	static const char * const bad[] = {
		"\n", "abc", "-5", "12abc", "0", "0x", "1.5", "9",
		"99999999999999999999999", "4294967296000",
	};
	unsigned int i, fails = 0;

	ksft_print_msg("[RUN] %s\n", __func__);
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		fails += dmm_write_expect_fail("retry_interval_ms", bad[i]);
	ksft_test_result(!fails, "%s\n", __func__);
}

static void test_retry_interval_good_value(void)
{
	char old[64];
	int fails = 0;

	ksft_print_msg("[RUN] %s\n", __func__);
	if (dmm_read_attr("retry_interval_ms", old, sizeof(old))) {
		ksft_test_result_fail("retry_interval_ms unreadable\n");
		return;
	}
	fails += write_expect_success("retry_interval_ms", "250");
	fails += write_expect_success("retry_interval_ms", old);
	ksft_test_result(!fails, "%s\n", __func__);
}

int main(void)
{
	ksft_print_header();
	if (!dmm_sysfs_dir())
		ksft_exit_skip("no virtio-dmm device bound to virtio_dmm\n");
	ksft_set_plan(4);
	test_values_sane();
	test_ro_attrs_refuse_writes();
	test_retry_interval_bad_values();
	test_retry_interval_good_value();
	ksft_finished();
}
