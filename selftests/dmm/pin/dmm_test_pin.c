// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_test_pin: a test module that makes memory blocks unremovable.
 *
 * It pins @per_block pages in every online memory block of
 * [@start, @start + @size), at most one in each @spread bytes: pages taken from the page allocator and held,
 * neither on the LRU nor movable, so neither offlining nor
 * alloc_contig_range() can move them.  That is what fragmentation by
 * unmovable allocations looks like to a driver that wants whole blocks
 * back.  The pages are freed when the module is unloaded.
 *
 * To reach every block it allocates free pages until each block holds
 * enough of them (or memory runs out) and frees the ones it does not
 * need.  Loading fails with -ENOSPC if some online block got no page.
 * For tests inside throw-away guests only.
 */
#include <linux/bitmap.h>
#include <linux/gfp.h>
#include <linux/log2.h>
#include <linux/io.h>
#include <linux/list.h>
#include <linux/memory.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>

static unsigned long start;
module_param(start, ulong, 0444);
MODULE_PARM_DESC(start, "physical start of the range (memory block aligned)");
static unsigned long size;
module_param(size, ulong, 0444);
MODULE_PARM_DESC(size, "size of the range in bytes");
static unsigned int per_block = 4;
module_param(per_block, uint, 0444);
MODULE_PARM_DESC(per_block, "pages to pin in each online block");
static unsigned long spread;
module_param(spread, ulong, 0444);
MODULE_PARM_DESC(spread, "pin at most one page per this many bytes (0: any)");

static LIST_HEAD(pinned);
static unsigned long nr_pinned;

static unsigned long block_of(struct page *page)
{
	return (page_to_phys(page) - start) / memory_block_size_bytes();
}

static bool pin_in_range(struct page *page)
{
	phys_addr_t pa = page_to_phys(page);

	return pa >= start && pa - start < size;
}

/* Blocks of the range with online memory: the ones that need pins. */
static unsigned long online_blocks(unsigned long nblocks)
{
	unsigned long b, n = 0;

	for (b = 0; b < nblocks; b++)
		if (pfn_to_online_page(PHYS_PFN(start +
				       b * memory_block_size_bytes())))
			n++;
	return n;
}

static int __init dmm_test_pin_init(void)
{
	unsigned long nblocks = size / memory_block_size_bytes();
	unsigned long want, full = 0, b, unit;
	unsigned long *taken = NULL;
	unsigned int *count;
	LIST_HEAD(spare);
	struct page *page;

	if (!size || !IS_ALIGNED(start | size, memory_block_size_bytes()) ||
	    !per_block || (spread && (!is_power_of_2(spread) ||
				      spread > memory_block_size_bytes() ||
				      per_block > memory_block_size_bytes() /
						  spread)))
		return -EINVAL;
	count = kcalloc(nblocks, sizeof(*count), GFP_KERNEL);
	if (!count)
		return -ENOMEM;
	if (spread) {
		taken = bitmap_zalloc(size / spread, GFP_KERNEL);
		if (!taken) {
			kfree(count);
			return -ENOMEM;
		}
	}
	want = online_blocks(nblocks);
	while (full < want) {
		page = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NORETRY |
				  __GFP_NOWARN);
		if (!page)
			break;
		unit = spread ? (page_to_phys(page) - start) / spread : 0;
		if (pin_in_range(page) && count[block_of(page)] < per_block &&
		    (!spread || !test_and_set_bit(unit, taken))) {
			if (++count[block_of(page)] == per_block)
				full++;
			list_add(&page->lru, &pinned);
			nr_pinned++;
		} else {
			list_add(&page->lru, &spare);
		}
		cond_resched();
	}
	while ((page = list_first_entry_or_null(&spare, struct page, lru))) {
		list_del(&page->lru);
		__free_page(page);
	}
	for (b = 0; b < nblocks; b++)
		if (count[b])
			pr_info("dmm_test_pin: block %lu: %u pages pinned\n", b,
				count[b]);
	kfree(count);
	bitmap_free(taken);
	if (full < want) {
		pr_err("dmm_test_pin: only %lu of %lu online blocks pinned\n",
		       full, want);
		while ((page = list_first_entry_or_null(&pinned, struct page,
							lru))) {
			list_del(&page->lru);
			__free_page(page);
		}
		return -ENOSPC;
	}
	pr_info("dmm_test_pin: %lu pages pinned in %lu blocks\n", nr_pinned,
		want);
	return 0;
}

static void __exit dmm_test_pin_exit(void)
{
	struct page *page;

	while ((page = list_first_entry_or_null(&pinned, struct page, lru))) {
		list_del(&page->lru);
		__free_page(page);
	}
}

module_init(dmm_test_pin_init);
module_exit(dmm_test_pin_exit);
MODULE_DESCRIPTION("virtio-dmm test: pin pages in every memory block");
MODULE_LICENSE("GPL");
