// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-dmm guest driver: memory statistics and requests for memory.
 *
 * Every stats_interval_ms (set by the host in the configuration) a work
 * item sends the device one report of the guest's memory: sizes, the PSI
 * memory pressure averages, swap, major faults, OOM kills and allocation
 * stalls.  When the pressure crosses a threshold the admin set in sysfs,
 * or when the admin writes a size to sysfs, the driver asks the device for
 * memory (REQ_ASK); the host grants, refuses or passes the request on.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mount.h>
#include <linux/mm.h>
#include <linux/swap.h>
#include <linux/virtio_config.h>
#include <linux/vmstat.h>

#include "dmm.h"

/* Don't ask again sooner than this after an answer. */
#define DMM_ASK_COOLDOWN_MS	3000

/* One line of /proc/pressure/memory: "KIND avg10=A.B avg60=C.D ...". */
static bool dmm_psi_line(const char *buf, const char *kind, __le32 *avg10,
			 __le32 *avg60, __le64 *total)
{
	unsigned long a10, a10f, a60, a60f;
	unsigned long long t;
	const char *line = strstr(buf, kind);

	if (!line ||
	    sscanf(line + strlen(kind), " avg10=%lu.%lu avg60=%lu.%lu avg300=%*u.%*u total=%llu",
		   &a10, &a10f, &a60, &a60f, &t) != 5)
		return false;
	*avg10 = cpu_to_le32(a10 * 100 + a10f);
	*avg60 = cpu_to_le32(a60 * 100 + a60f);
	*total = cpu_to_le64(t);
	return true;
}

/*
 * System-wide memory PSI: the scheduler's psi_system is not exported to
 * modules, and /proc/pressure/memory cannot be read from the kernel (no
 * read_iter).  The root cgroup's memory.pressure shows the same numbers
 * and can: the driver mounts cgroup2 for itself (kern_mount) and keeps
 * that file open.  Without it (no cgroups, psi=0) the fields stay 0.
 */
static void dmm_psi_open(struct virtio_dmm *vm)
{
	struct file_system_type *type = get_fs_type("cgroup2");
	struct vfsmount *mnt;
	struct file *f;

	if (!type)
		return;
	/* cgroup2 is built in: get_fs_type() took no module reference */
	mnt = kern_mount(type);
	if (IS_ERR(mnt)) {
		dev_info(&vm->vdev->dev, "no PSI in reports: cgroup2 mount: %ld\n",
			 PTR_ERR(mnt));
		return;
	}
	f = file_open_root_mnt(mnt, "memory.pressure", O_RDONLY, 0);
	if (IS_ERR(f)) {
		dev_info(&vm->vdev->dev, "no PSI in reports: memory.pressure: %ld\n",
			 PTR_ERR(f));
		kern_unmount(mnt);
		return;
	}
	vm->stats.psi_mnt = mnt;
	vm->stats.psi_file = f;
}

static void dmm_psi_close(struct virtio_dmm *vm)
{
	if (!vm->stats.psi_file)
		return;
	fput(vm->stats.psi_file);
	kern_unmount(vm->stats.psi_mnt);
	vm->stats.psi_file = NULL;
	vm->stats.psi_mnt = NULL;
}

static void dmm_read_psi(struct virtio_dmm *vm, struct virtio_dmm_stats *st)
{
	char buf[256];
	loff_t pos = 0;
	ssize_t n;

	if (!vm->stats.psi_file)
		return;
	n = kernel_read(vm->stats.psi_file, buf, sizeof(buf) - 1, &pos);
	if (n <= 0)
		return;
	buf[n] = '\0';
	dmm_psi_line(buf, "some", &st->psi_some_avg10, &st->psi_some_avg60,
		     &st->psi_some_total);
	dmm_psi_line(buf, "full", &st->psi_full_avg10, &st->psi_full_avg60,
		     &st->psi_full_total);
}

static void dmm_fill_stats(struct virtio_dmm *vm, struct virtio_dmm_stats *st)
{
	unsigned long ev[NR_VM_EVENT_ITEMS];
	u64 stalls = 0;
	int i;

	memset(st, 0, sizeof(*st));
	st->seq = cpu_to_le64(++vm->stats.seq);
	st->total = cpu_to_le64((u64)totalram_pages() << PAGE_SHIFT);
	st->available = cpu_to_le64((u64)si_mem_available() << PAGE_SHIFT);
	st->free = cpu_to_le64((u64)global_zone_page_state(NR_FREE_PAGES) <<
			       PAGE_SHIFT);
	st->cache = cpu_to_le64((u64)global_node_page_state(NR_FILE_PAGES) <<
				PAGE_SHIFT);
	dmm_read_psi(vm, st);
	all_vm_events(ev);
	st->swap_in = cpu_to_le64(ev[PSWPIN]);
	st->swap_out = cpu_to_le64(ev[PSWPOUT]);
	st->major_faults = cpu_to_le64(ev[PGMAJFAULT]);
	st->oom_kills = cpu_to_le64(ev[OOM_KILL]);
	for (i = 0; i < MAX_NR_ZONES; i++)
		stalls += ev[ALLOCSTALL_NORMAL - ZONE_NORMAL + i];
	st->alloc_stalls = cpu_to_le64(stalls);
}

/*
 * Should the guest ask for memory now?  Only when the admin set a
 * threshold, not while a grant is still being plugged, and not within the
 * cool-down after the last answer.
 */
static bool dmm_ask_due(struct virtio_dmm *vm,
			const struct virtio_dmm_stats *st)
{
	u64 avail_below = READ_ONCE(vm->ask.available_below);
	u32 psi_above = READ_ONCE(vm->ask.psi_above);

	if (!avail_below && !psi_above)
		return false;
	if (time_before(jiffies, READ_ONCE(vm->ask.next)))
		return false;
	if (READ_ONCE(vm->requested_size) > dmm_current_size(vm))
		return false;
	return (avail_below && le64_to_cpu(st->available) < avail_below) ||
	       (psi_above && le32_to_cpu(st->psi_some_avg10) > psi_above);
}

static void dmm_stats_work(struct work_struct *work)
{
	struct virtio_dmm *vm = container_of(to_delayed_work(work),
					     struct virtio_dmm, stats.work);
	unsigned int ms = READ_ONCE(vm->stats.interval_ms);
	int rc;

	if (!ms)
		return;		/* the host turned reports off */
	dmm_fill_stats(vm, &vm->stats.buf);
	rc = dmm_vq_exchange(vm->stats.vq, &vm->stats.resp_wq, &vm->stats.buf,
			     sizeof(vm->stats.buf), &vm->stats.resp);
	if (rc != VIRTIO_DMM_RESP_ACK)
		dev_warn_ratelimited(&vm->vdev->dev, "stats report refused: %d\n",
				     rc);
	if (dmm_ask_due(vm, &vm->stats.buf)) {
		WRITE_ONCE(vm->ask.pending_size, dmm_current_size(vm) +
			   READ_ONCE(vm->ask.step));
		WRITE_ONCE(vm->ask.pending_reason, VIRTIO_DMM_ASK_PRESSURE);
		queue_work(system_freezable_wq, &vm->ask.work);
	}
	if (!READ_ONCE(vm->removing))
		queue_delayed_work(system_freezable_wq, &vm->stats.work,
				   msecs_to_jiffies(ms));
}

/*
 * A size the device accepts as requested_size: whole sub-blocks, or pages.
 * Clamped to the largest valid size before rounding: rounding a size near
 * U64_MAX up would wrap to 0, turning a request for memory into an offer
 * to shrink.
 */
static u64 dmm_ask_round(struct virtio_dmm *vm, u64 size)
{
	u64 max = vm->boot_size + vm->region_size;

	size = min(size, max);
	if (vm->pages.on)
		size = round_up(size, PAGE_SIZE);
	else if (size > vm->boot_size)
		size = vm->boot_size + round_up(size - vm->boot_size,
						vm->sb.size);
	else
		size = vm->boot_size;
	return min(size, max);
}

/* Record what the device said to a request for @size bytes. */
static void dmm_ask_result(struct virtio_dmm *vm, u64 size, int rc)
{
	static const char * const names[] = {
		[VIRTIO_DMM_RESP_ACK] = "granted",
		[VIRTIO_DMM_RESP_NACK] = "refused",
		[VIRTIO_DMM_RESP_BUSY] = "forwarded",
		[VIRTIO_DMM_RESP_ERROR] = "error",
	};

	if (rc == 0)
		atomic64_inc(&vm->ask.granted);
	else if (rc == -ENOSPC)
		atomic64_inc(&vm->ask.refused);
	else if (rc == -ETXTBSY)
		atomic64_inc(&vm->ask.forwarded);
	spin_lock(&vm->ask.lock);
	vm->ask.last_size = size;
	vm->ask.last_result = names[rc == 0 ? VIRTIO_DMM_RESP_ACK :
				    rc == -ENOSPC ? VIRTIO_DMM_RESP_NACK :
				    rc == -ETXTBSY ? VIRTIO_DMM_RESP_BUSY :
				    VIRTIO_DMM_RESP_ERROR];
	spin_unlock(&vm->ask.lock);
	WRITE_ONCE(vm->ask.next, jiffies +
		   msecs_to_jiffies(DMM_ASK_COOLDOWN_MS));
}

/*
 * Ask the device for a total of @size bytes of RAM.  Called with
 * hotplug_mutex held (the request queue is the control loop's).  Returns
 * 0 (granted), -ENOSPC (refused), -ETXTBSY (passed on), or -errno.
 */
int dmm_ask(struct virtio_dmm *vm, u64 size, u64 reason)
{
	int rc;

	lockdep_assert_held(&vm->hotplug_mutex);
	if (!vm->stats.vq)
		return -ENODEV;
	size = dmm_ask_round(vm, size);
	atomic64_inc(&vm->ask.sent);
	rc = dmm_send_ask(vm, size, reason);
	dmm_ask_result(vm, size, rc);
	if (rc && rc != -ENOSPC && rc != -ETXTBSY)
		dev_err(&vm->vdev->dev, "ASK for 0x%llx bytes failed: %d\n",
			size, rc);
	return rc;
}

static void dmm_ask_work(struct work_struct *work)
{
	struct virtio_dmm *vm = container_of(work, struct virtio_dmm,
					     ask.work);

	mutex_lock(&vm->hotplug_mutex);
	if (!vm->removing)
		dmm_ask(vm, READ_ONCE(vm->ask.pending_size),
			READ_ONCE(vm->ask.pending_reason));
	mutex_unlock(&vm->hotplug_mutex);
}

/* The host changed the configuration: a new interval takes effect now. */
void dmm_stats_config_changed(struct virtio_dmm *vm)
{
	u32 ms;

	if (!READ_ONCE(vm->stats.on))
		return;
	virtio_cread_le(vm->vdev, struct virtio_dmm_config, stats_interval_ms,
			&ms);
	/* The spec's range; a device outside it gets the nearest bound. */
	if (ms)
		ms = clamp_t(u32, ms, VIRTIO_DMM_STATS_MIN_MS,
			     VIRTIO_DMM_STATS_MAX_MS);
	if (ms == READ_ONCE(vm->stats.interval_ms))
		return;
	WRITE_ONCE(vm->stats.interval_ms, ms);
	if (ms && !READ_ONCE(vm->removing))
		mod_delayed_work(system_freezable_wq, &vm->stats.work, 0);
}

void dmm_stats_init(struct virtio_dmm *vm)
{
	if (!vm->stats.vq)
		return;
	INIT_DELAYED_WORK(&vm->stats.work, dmm_stats_work);
	INIT_WORK(&vm->ask.work, dmm_ask_work);
	vm->ask.step = DMM_ASK_STEP_DEFAULT;
	vm->stats.interval_ms = 0;
	dmm_psi_open(vm);
	/* from now on config_changed may schedule the work */
	smp_store_release(&vm->stats.on, true);
	dmm_stats_config_changed(vm);
}

void dmm_stats_exit(struct virtio_dmm *vm)
{
	if (!vm->stats.vq)
		return;
	/* removing is set: neither work queues itself again */
	cancel_delayed_work_sync(&vm->stats.work);
	cancel_work_sync(&vm->ask.work);
	dmm_psi_close(vm);
}
