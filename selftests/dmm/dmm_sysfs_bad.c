// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_sysfs_bad: hostile values for every writable attribute.
 *
 * Huge numbers (2^64 - 1, 2^63, just past 2^64 - 4 KiB where rounding up
 * to a page wraps to 0, just above boot size plus region) and garbage must
 * fail with EINVAL and change nothing: the value reads back the same and,
 * for ask_size, no request reaches the device (asks_sent and last_ask stay
 * as they were).  The runner checks the host side: requested-guest-size
 * unchanged, no VIRTIO_DMM_ASK event.
 */
#include <inttypes.h>
#include <kselftest.h>
#include "dmm_util.h"

/* Not numbers, or not numbers in any attribute's range. */
static const char * const garbage[] = {
	"\n", "abc", "-1", "12abc", "0x", " ", "1 2", "1e9",
	"18446744073709551616",			/* 2^64: does not parse */
	"99999999999999999999999",
};

/* Numbers no attribute below takes (each also gets its own bounds). */
static const char * const huge[] = {
	"18446744073709551615",			/* 2^64 - 1 */
	"0xffffffffffffffff",
	"9223372036854775808",			/* 2^63 */
	"18446744073709547521",			/* 2^64 - 4095: rounds to 0 */
	"18446744073707454464",			/* 2^64 - 2 MiB */
};

static uint64_t max_size;	/* boot_size + region_size */

/*
 * The device does not offer what the attribute controls: the driver
 * hides the file (ENOENT), or the write fails with ENODEV.
 */
static int attr_missing(const char *attr, const char *probe)
{
	int err = dmm_write_attr(attr, probe);

	return err == -ENOENT || err == -ENODEV;
}

/* The last request for memory, "SIZE RESULT" (debugfs counters). */
static void last_ask(char *buf, size_t len)
{
	char size[32] = "?", result[32] = "?";

	dmm_read_counter("last_ask_size", size, sizeof(size));
	dmm_read_counter("last_ask_result", result, sizeof(result));
	snprintf(buf, len, "%s %s", size, result);
}

static uint64_t asks_sent(void)
{
	char buf[32] = "";

	dmm_read_counter("asks_sent", buf, sizeof(buf));
	return strtoull(buf, NULL, 10);
}

/* Every garbage and huge value, and @extra, into @attr.  Failures. */
static int write_all_bad(const char *attr, const char * const *extra,
			 unsigned int nextra)
{
	unsigned int i, fails = 0;

	for (i = 0; i < ARRAY_SIZE(garbage); i++)
		fails += dmm_write_expect_fail(attr, garbage[i]);
	for (i = 0; i < ARRAY_SIZE(huge); i++)
		fails += dmm_write_expect_fail(attr, huge[i]);
	for (i = 0; i < nextra; i++)
		fails += dmm_write_expect_fail(attr, extra[i]);
	return fails;
}

/*
 * ask_size is write-only: a refused write must fail with EINVAL and send
 * nothing (asks_sent and last_ask unchanged).  0 if so.
 */
static int ask_expect_fail(const char *val)
{
	char last0[64], last1[64];
	uint64_t sent0, sent1;
	int err;

	sent0 = asks_sent();
	last_ask(last0, sizeof(last0));
	err = dmm_write_attr("ask_size", val);
	sent1 = asks_sent();
	last_ask(last1, sizeof(last1));
	if (err != -EINVAL || sent0 != sent1 || strcmp(last0, last1)) {
		ksft_print_msg("ask_size <- '%s': error %d (want %d), asks_sent %"
			       PRIu64 " -> %" PRIu64 ", last_ask '%s' -> '%s'\n",
			       val, err, -EINVAL, sent0, sent1, last0, last1);
		return 1;
	}
	return 0;
}

static void test_ask_size_huge(void)
{
	char above[3][32];
	unsigned int i, fails = 0;

	ksft_print_msg("[RUN] %s\n", __func__);
	if (attr_missing("ask_size", "abc")) {
		ksft_test_result_skip("%s: no statistics\n", __func__);
		return;
	}
	/* just above the largest size the device can give */
	snprintf(above[0], sizeof(above[0]), "%" PRIu64, max_size + 1);
	snprintf(above[1], sizeof(above[1]), "%" PRIu64, max_size + 4096);
	snprintf(above[2], sizeof(above[2]), "0x%" PRIx64, max_size + (2 << 20));
	for (i = 0; i < ARRAY_SIZE(huge); i++)
		fails += ask_expect_fail(huge[i]);
	for (i = 0; i < ARRAY_SIZE(above); i++)
		fails += ask_expect_fail(above[i]);
	ksft_test_result(!fails, "%s\n", __func__);
}

static void test_ask_size_garbage(void)
{
	unsigned int i, fails = 0;

	ksft_print_msg("[RUN] %s\n", __func__);
	if (attr_missing("ask_size", "abc")) {
		ksft_test_result_skip("%s: no statistics\n", __func__);
		return;
	}
	fails += ask_expect_fail("0");
	fails += ask_expect_fail("1.5");
	for (i = 0; i < ARRAY_SIZE(garbage); i++)
		fails += ask_expect_fail(garbage[i]);
	ksft_test_result(!fails, "%s\n", __func__);
}

/* ask_step: 4096 up to boot size plus region. */
static void test_ask_step_bad(void)
{
	char above[32];
	const char *extra[] = { "0", "4095", "8192.5", above };

	ksft_print_msg("[RUN] %s\n", __func__);
	if (attr_missing("ask_step", "abc")) {
		ksft_test_result_skip("%s: no statistics\n", __func__);
		return;
	}
	snprintf(above, sizeof(above), "%" PRIu64, max_size + 1);
	ksft_test_result(!write_all_bad("ask_step", extra, ARRAY_SIZE(extra)),
			 "%s\n", __func__);
}

/* ask_available_below: 0 (off) up to boot size plus region. */
static void test_ask_available_below_bad(void)
{
	char above[32];
	const char *extra[] = { "1.5", above };

	ksft_print_msg("[RUN] %s\n", __func__);
	if (attr_missing("ask_available_below", "abc")) {
		ksft_test_result_skip("%s: no statistics\n", __func__);
		return;
	}
	snprintf(above, sizeof(above), "%" PRIu64, max_size + 1);
	ksft_test_result(!write_all_bad("ask_available_below", extra,
					ARRAY_SIZE(extra)), "%s\n", __func__);
}

/* ask_psi_above: a percentage, at most 100, two decimals. */
static void test_ask_psi_above_bad(void)
{
	const char *extra[] = {
		"100.01", "101", "1000", "4294967296", "10000", "1.234",
		"5.", ".5", "0x10", "10 ", "+5",
	};

	ksft_print_msg("[RUN] %s\n", __func__);
	if (attr_missing("ask_psi_above", "abc")) {
		ksft_test_result_skip("%s: no statistics\n", __func__);
		return;
	}
	ksft_test_result(!write_all_bad("ask_psi_above", extra,
					ARRAY_SIZE(extra)), "%s\n", __func__);
}

/* hint_budget: 0 to 100 percent. */
static void test_hint_budget_bad(void)
{
	const char *extra[] = { "101", "4294967296", "4294967295", "1.5" };

	ksft_print_msg("[RUN] %s\n", __func__);
	if (attr_missing("hint_budget", "abc")) {
		ksft_test_result_skip("%s: no hints\n", __func__);
		return;
	}
	ksft_test_result(!write_all_bad("hint_budget", extra,
					ARRAY_SIZE(extra)), "%s\n", __func__);
}

/* retry_interval_ms: 10 to 600000 ms. */
static void test_retry_interval_huge(void)
{
	const char *extra[] = { "0", "9", "600001", "4294967296", "100.5" };

	ksft_print_msg("[RUN] %s\n", __func__);
	ksft_test_result(!write_all_bad("retry_interval_ms", extra,
					ARRAY_SIZE(extra)), "%s\n", __func__);
}

int main(void)
{
	ksft_print_header();
	if (!dmm_sysfs_dir())
		ksft_exit_skip("no virtio-dmm device bound to virtio_dmm\n");
	max_size = dmm_attr_u64("boot_size") + dmm_attr_u64("region_size");
	ksft_set_plan(7);
	test_ask_size_huge();
	test_ask_size_garbage();
	test_ask_step_bad();
	test_ask_available_below_bad();
	test_ask_psi_above_bad();
	test_hint_budget_bad();
	test_retry_interval_huge();
	ksft_finished();
}
