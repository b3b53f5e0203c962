/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the virtio-dmm selftests: find the device's sysfs
 * directory, read and write its attributes, read /proc/meminfo.
 */
#ifndef DMM_UTIL_H
#define DMM_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB ((uint64_t)1 << 20)

/* The first virtio-dmm device's attribute directory, or NULL. */
static inline const char *dmm_sysfs_dir(void)
{
	static char dir[256];
	glob_t g;

	if (dir[0])
		return dir;
	if (glob("/sys/bus/virtio/drivers/virtio_dmm/virtio*/dmm", 0, NULL,
		 &g) || g.gl_pathc < 1)
		return NULL;
	snprintf(dir, sizeof(dir), "%s", g.gl_pathv[0]);
	globfree(&g);
	return dir;
}

/* Read attribute @name into @buf; 0 or -errno. */
static inline int dmm_read_attr(const char *name, char *buf, size_t len)
{
	char path[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dmm_sysfs_dir(), name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return 0;
}

/* Read a numeric attribute (decimal or 0x hex); exits on failure. */
static inline uint64_t dmm_attr_u64(const char *name)
{
	char buf[64], *end;
	uint64_t v;

	if (dmm_read_attr(name, buf, sizeof(buf))) {
		fprintf(stderr, "cannot read %s/%s\n", dmm_sysfs_dir(), name);
		exit(1);
	}
	errno = 0;
	v = strtoull(buf, &end, 0);
	if (errno || *end) {
		fprintf(stderr, "%s: not a number: '%s'\n", name, buf);
		exit(1);
	}
	return v;
}

/* A numeric attribute, or @dflt if the driver hides it (feature off). */
static inline uint64_t dmm_attr_u64_or(const char *name, uint64_t dflt)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dmm_sysfs_dir(), name);
	return access(path, F_OK) ? dflt : dmm_attr_u64(name);
}

/*
 * The driver's debugfs counter @name ("name value" lines of
 * /sys/kernel/debug/virtio_dmm/DEV/counters) into @buf; 0 or -errno.
 */
static inline int dmm_read_counter(const char *name, char *buf, size_t len)
{
	char path[512], line[256];
	const char *dev = dmm_sysfs_dir();
	size_t n = strlen(name);
	int err = -ENOENT;
	FILE *f;

	/* .../virtioN/dmm: the device is the component before "dmm" */
	snprintf(path, sizeof(path), "%s", dev);
	*strrchr(path, '/') = '\0';
	snprintf(line, sizeof(line), "/sys/kernel/debug/virtio_dmm/%s/counters",
		 strrchr(path, '/') + 1);
	f = fopen(line, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, n) || line[n] != ' ')
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(buf, len, "%s", line + n + 1);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

/*
 * Write @val to attribute @name with one write(); 0 or -errno (the errno
 * the kernel answered the write with).
 */
static inline int dmm_write_attr(const char *name, const char *val)
{
	char path[512];
	ssize_t n;
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dmm_sysfs_dir(), name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

/*
 * Write @val to a readable attribute: must fail with EINVAL, the value
 * must read back as before.  0 if so, 1 after saying why (TAP comment).
 */
static inline int dmm_write_expect_fail(const char *attr, const char *val)
{
	char before[64], after[64];
	int err;

	dmm_read_attr(attr, before, sizeof(before));
	err = dmm_write_attr(attr, val);
	dmm_read_attr(attr, after, sizeof(after));
	if (err != -EINVAL || strcmp(before, after)) {
		printf("# %s <- '%s': error %d (want %d), %s -> %s\n", attr, val,
		       err, -EINVAL, before, after);
		return 1;
	}
	return 0;
}

/* A /proc/meminfo field in bytes, or 0 if absent. */
static inline uint64_t meminfo(const char *field)
{
	char line[256];
	size_t len = strlen(field);
	uint64_t kb = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, len) && line[len] == ':') {
			kb = strtoull(line + len + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb * 1024;
}

/*
 * Bytes of [p, p + len) whose frames lie in [start, start + size), from
 * /proc/self/pagemap (root: frame numbers are hidden from others).
 */
static inline int64_t dmm_bytes_in_range(void *p, uint64_t len, uint64_t start,
			      uint64_t size)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t first = (uintptr_t)p / psz, n = len / psz, in = 0;
	uint64_t batch[512];
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return -errno;
	for (uint64_t i = 0; i < n; i += 512) {
		uint64_t cnt = n - i < 512 ? n - i : 512;
		ssize_t r = pread(fd, batch, cnt * 8, (first + i) * 8);

		if (r != (ssize_t)(cnt * 8)) {
			close(fd);
			return -EIO;
		}
		for (uint64_t j = 0; j < cnt; j++) {
			uint64_t pa = (batch[j] & ((1ULL << 55) - 1)) * psz;

			if ((batch[j] >> 63) && pa >= start &&
			    pa < start + size)
				in += psz;
		}
	}
	close(fd);
	return in;
}

#endif /* DMM_UTIL_H */
