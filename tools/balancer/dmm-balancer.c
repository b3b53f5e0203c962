// SPDX-License-Identifier: GPL-2.0
/*
 * dmm-balancer: move memory between virtio-dmm guests by their pressure,
 * within a host budget, and make room for new guests.  See --help and
 * Documentation/balancer.rst.
 */
#define _GNU_SOURCE		/* struct ucred */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"
#include "qmp.h"
#include "virt.h"

#define MAX_GUESTS	32
#define MAX_CLIENTS	8
#define QMP_TIMEOUT_MS	1000
#define RECONNECT_MS	2000
#define ADMIT_TIMEOUT_MS 120000
#define CLIENT_IDLE_MS	60000	/* a control client silent this long is closed */

static const char usage[] =
"NAME\n"
"    dmm-balancer - share host memory among virtio-dmm guests\n"
"\n"
"SYNOPSIS\n"
"    dmm-balancer --budget SIZE [OPTION]... [GUEST]...\n"
"\n"
"DESCRIPTION\n"
"    Every period, reads each guest's memory statistics over QMP\n"
"    (query-memory-devices), predicts the memory it needs from what it\n"
"    uses (a smoothed level and trend of size minus available, projected\n"
"    ahead, plus headroom, plus a boost while its PSI says it is under\n"
"    pressure, plus what it asked for), shares the budget among the guests\n"
"    (each gets its min, the rest goes by weight up to its max) and sets\n"
"    their requested-guest-size (the guest's target total RAM).  Changes\n"
"    below the hysteresis are not made; guests grow only with memory\n"
"    others have given back, so together they never hold more than the\n"
"    budget.  A guest that hangs or sends garbage is skipped and\n"
"    reconnected later; the others are served on.  It keeps counting at\n"
"    what it may hold (max of its last guest-size and requested guest\n"
"    size, or its max if it never answered) until its QEMU is gone (its\n"
"    socket refuses connections or no longer exists).  A number in a QMP\n"
"    answer beyond 64 bits is ignored (read as absent), not the whole\n"
"    answer.\n"
"\n"
"    GUEST is NAME=QMP_SOCKET[,min=SIZE][,max=SIZE][,weight=N][,dev=ID]\n"
"    or NAME=libvirt:DOMAIN[,...]: the libvirt domain of that name, through\n"
"    libvirt's API (--libvirt), with no second monitor socket\n"
"    (defaults: min 256M, weight 1, dev dmm0; max: the device's limit,\n"
"    auto-grant-limit with auto-grant, else boot-size + max-size (the\n"
"    region), and the whole budget until the device has answered).  dev=\n"
"    is the id of the virtio-dmm device; a guest without a device of that\n"
"    id is skipped.\n"
"    SIZE is a number and a unit: K, M, G or T (powers of 1024, any case,\n"
"    optionally followed by B or iB); a number without a unit is refused.\n"
"    The budget must hold the sum of the guests' mins.\n"
"\n"
"OPTIONS\n"
"    --budget SIZE       memory all guests may have together (required)\n"
"    --period SECONDS    time between decisions (default 1)\n"
"    --csv FILE          append time,guest,size,requested,target,want,\n"
"                        available,psi,alive per guest and period\n"
"    --control SOCKET    unix socket for commands (see below); mode 0600;\n"
"                        only root and the balancer's user are served\n"
"    --control-group GROUP\n"
"                        also serve GROUP (name or gid): the socket is 0660\n"
"                        and of that group\n"
"    --qmp-dir DIR       add takes only QMP sockets below DIR, after\n"
"                        resolving symlinks and .. (default: the directory\n"
"                        of --control)\n"
"    --libvirt URI       the libvirt connection for libvirt:DOMAIN guests\n"
"                        (default qemu:///system)\n"
"    --headroom FRACTION demand added on top of the prediction (0.15)\n"
"    --reserve SIZE      bytes added on top of that (64M)\n"
"    --hysteresis SIZE   smallest change made (64M)\n"
"    --psi PERCENT       PSI some avg10 that means pressure (5)\n"
"    --boost SIZE        growth asked for under pressure (256M)\n"
"    --alpha A, --beta B smoothing of level and trend (0.5, 0.3)\n"
"    --horizon PERIODS   how far the trend is projected (5)\n"
"    --state-dir DIR     keep the state (guests, their settings and sizes,\n"
"                        reservations) in DIR/state, and continue from it\n"
"                        at start: a restart changes no guest's size\n"
"    --grant-timeout SECONDS\n"
"                        an admission answered yes keeps its reservation\n"
"                        until an add uses it, or this long (600)\n"
"    --config FILE       read options from FILE first: KEY = VALUE lines\n"
"                        (KEY a long option above), guest GUEST lines,\n"
"                        # comments; the command line overrides it\n"
"    --once              one decision, then exit (for scripts)\n"
"    -h, --help          this text\n"
"\n"
"COMMANDS (one line each on the control socket; one line answers)\n"
"    status              budget, committed, reserved, pending; then one line\n"
"                        per guest (alive or lost, sizes, holds); then .\n"
"    status json         the same and more as one line of JSON: per guest\n"
"                        state, sizes, want, PSI, report age; budget,\n"
"                        committed, reserved, pending, room\n"
"    admit SIZE          make room for a new guest of SIZE: shrinks the\n"
"                        others, lightest weight first, toward what they need\n"
"                        and then toward their min; answers \"yes\" once they\n"
"                        have given the memory back (it stays reserved), or\n"
"                        \"no: ...\" and changes nothing if it cannot be done;\n"
"                        never raises a guest's requested size.  If the\n"
"                        client goes away or 120 s pass first, the part\n"
"                        not yet used by an add lapses\n"
"    add GUEST           start balancing a guest: its socket must be below\n"
"                        --qmp-dir (a libvirt:DOMAIN is looked up by name),\n"
"                        the mins must fit the budget; its first\n"
"                        size uses up reservations\n"
"    remove NAME         stop balancing a guest (and counting it: remove a\n"
"                        guest once its QEMU has stopped)\n"
"\n"
"OUTPUT\n"
"    One line per decision on standard output: the time (UTC, ISO 8601,\n"
"    milliseconds), the seconds since start, the message, e.g.\n"
"      2026-11-30T20:33:00.125Z 12.0 busy: grow 512M -> 768M (want 760M,\n"
"      available 40M, psi 3.20)\n"
"\n"
"EXIT STATUS\n"
"    0 on SIGINT or SIGTERM (the state is written first), 1 on bad\n"
"    arguments (a size without a unit, a budget below the mins, an unknown\n"
"    group; in the config file: FILE:LINE: why), a state file that cannot\n"
"    be read, or if the control socket cannot be created.\n";

struct guest {
	char name[64];
	char path[108];
	char dev[64];
	struct qmp q;
	struct gstate st;
	long long retry_at;	/* next connection attempt */
	bool release;		/* its first size releases a reservation */
	bool told;		/* a failure of it was logged */
	bool told_garbage;	/* numbers out of range were logged */
	bool max_set;		/* max= given; else the device's limit */
	bool added;		/* by the add command (not the config) */
	bool used;
	/* the latest report: its age when read, when it was read (ms) */
	long long report_age, report_at;
	long long answer_at;	/* the latest answer (ms), 0: none yet */
};

static struct policy pol = {
	.alpha = 0.5, .beta = 0.3, .horizon = 5, .headroom = 0.15,
	.reserve = 64 * MiB, .hysteresis = 64 * MiB, .granule = 2 * MiB,
	.psi_high = 5, .boost = 256 * MiB,
};
static struct guest guests[MAX_GUESTS];
static struct ledger led;	/* reservations: policy.c keeps the books */
static FILE *csv;
static double t0;
static volatile sig_atomic_t stop;
static char qmp_dir[PATH_MAX];	/* add accepts QMP sockets only below it */
static gid_t control_gid;	/* --control-group, if control_group */
static bool control_group;

static void save_state(void);

/* When the last admission was granted, and how long a grant is kept. */
static long long granted_at, grant_timeout_ms = 600000;

/* A pending admission: its client and deadline (its size: led). */
static struct {
	int fd;
	long long deadline;
} admission = { .fd = -1 };

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
	return now_ms() / 1000.0 - t0;
}

/*
 * A log line: the wall-clock time in UTC (ISO 8601, milliseconds), the
 * seconds since start, the message.
 */
static void say(const char *fmt, ...)
{
	struct timespec ts;
	char stamp[40];
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	printf("%s.%03ldZ %.1f ", stamp, ts.tv_nsec / 1000000, now_s());
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/*
 * "512M" -> bytes: a number and a unit K, M, G or T (powers of 1024, any
 * case, optionally followed by B or iB); 0 on error, a number without a
 * unit included (no guest size is 0).
 */
static uint64_t parse_size(const char *s)
{
	char *end;
	double v;
	int shift;

	if (!isdigit((unsigned char)*s))
		return 0;
	v = strtod(s, &end);
	switch (tolower((unsigned char)*end)) {
	case 'k': shift = 10; break;
	case 'm': shift = 20; break;
	case 'g': shift = 30; break;
	case 't': shift = 40; break;
	default: return 0;
	}
	end++;
	if (!strcasecmp(end, "ib") || !strcasecmp(end, "b"))
		end += strlen(end);
	if (*end || v <= 0 || !isfinite(v) || v * (1ULL << shift) >= 1e18)
		return 0;
	return (uint64_t)(v * (1ULL << shift));
}

#define SIZE_HELP "a size is a number and a unit: K, M, G or T, e.g. 512M"

static const char *mib(uint64_t v, char *buf)
{
	sprintf(buf, "%lluM", (unsigned long long)(v / MiB));
	return buf;
}

/* The sum of the mins of the guests (and of @extra), saturating. */
static uint64_t sum_mins(uint64_t extra)
{
	uint64_t sum = extra;
	int i;

	for (i = 0; i < MAX_GUESTS; i++)
		if (guests[i].used)
			sum = sum + guests[i].st.min < sum ? UINT64_MAX :
			      sum + guests[i].st.min;
	return sum;
}

/*
 * @path resolved (no symlink, no ..) into @out if it is below qmp_dir;
 * else false and why in @err.
 */
static bool qmp_path_allowed(const char *path, char *out, size_t outlen,
			     char *err, size_t errlen)
{
	char real[PATH_MAX];
	size_t len = strlen(qmp_dir);

	if (!realpath(path, real)) {
		snprintf(err, errlen, "QMP socket '%.100s': %s", path,
			 strerror(errno));
		return false;
	}
	if (len == 1)
		len = 0;	/* --qmp-dir / */
	if (strncmp(real, qmp_dir, len) || real[len] != '/') {
		snprintf(err, errlen, "QMP socket '%.100s' is not below --qmp-dir %.100s",
			 path, qmp_dir);
		return false;
	}
	if (strlen(real) >= outlen) {
		snprintf(err, errlen, "QMP socket '%.100s': path too long", path);
		return false;
	}
	snprintf(out, outlen, "%s", real);
	return true;
}

/* NAME=PATH[,min=][,max=][,weight=][,dev=] into a free slot; or NULL. */
static struct guest *add_guest(const char *spec, char *err, size_t errlen)
{
	char buf[512], *tok, *save = NULL, *eq;
	struct guest *g = NULL;
	int i;

	snprintf(buf, sizeof(buf), "%s", spec);
	eq = strchr(buf, '=');
	if (!eq || eq == buf || eq - buf >= 64) {
		snprintf(err, errlen, "guest '%.63s': expected NAME=QMP_SOCKET or NAME=libvirt:DOMAIN", spec);
		return NULL;
	}
	*eq = '\0';
	for (i = 0; i < MAX_GUESTS; i++) {
		if (guests[i].used && !strcmp(guests[i].name, buf)) {
			snprintf(err, errlen, "guest '%.63s' exists", buf);
			return NULL;
		}
		if (!guests[i].used && !g)
			g = &guests[i];
	}
	if (!g) {
		snprintf(err, errlen, "more than %d guests", MAX_GUESTS);
		return NULL;
	}
	memset(g, 0, sizeof(*g));
	snprintf(g->name, sizeof(g->name), "%.63s", buf);
	snprintf(g->dev, sizeof(g->dev), "dmm0");
	g->st.min = 256 * MiB;
	/* until the device tells its limit, it may hold the whole budget */
	g->st.max = pol.budget;
	g->st.weight = 1;
	tok = strtok_r(eq + 1, ",", &save);
	if (!tok || strlen(tok) >= sizeof(g->path)) {
		snprintf(err, errlen, "guest '%.63s': bad socket path", buf);
		return NULL;
	}
	snprintf(g->path, sizeof(g->path), "%s", tok);
	if (virt_is_domain(tok) && !virt_supported()) {
		snprintf(err, errlen, "guest '%.63s': this dmm-balancer was built without libvirt (libvirt-dev)",
			 buf);
		return NULL;
	}
	if (virt_is_domain(tok) &&
	    !virt_name_valid(tok + strlen(VIRT_PREFIX))) {
		snprintf(err, errlen, "guest '%.63s': bad libvirt domain name '%.100s'",
			 buf, tok + strlen(VIRT_PREFIX));
		return NULL;
	}
	while ((tok = strtok_r(NULL, ",", &save))) {
		if ((!strncmp(tok, "min=", 4) || !strncmp(tok, "max=", 4)) &&
		    !parse_size(tok + 4)) {
			snprintf(err, errlen, "guest '%.63s': bad size '%.100s' (" SIZE_HELP ")",
				 buf, tok);
			return NULL;
		} else if (!strncmp(tok, "min=", 4)) {
			g->st.min = parse_size(tok + 4);
		} else if (!strncmp(tok, "max=", 4)) {
			g->st.max = parse_size(tok + 4);
			g->max_set = true;
		} else if (!strncmp(tok, "weight=", 7) && atoi(tok + 7) > 0 &&
			 atoi(tok + 7) <= 1000)
			g->st.weight = (unsigned int)atoi(tok + 7);
		else if (!strncmp(tok, "dev=", 4) && tok[4] && strlen(tok) < 68)
			snprintf(g->dev, sizeof(g->dev), "%s", tok + 4);
		else {
			snprintf(err, errlen, "guest '%.63s': bad option '%.100s'", buf,
				 tok);
			return NULL;
		}
	}
	if (g->max_set && g->st.min > g->st.max) {
		snprintf(err, errlen, "guest '%.63s': min above max", buf);
		return NULL;
	}
	g->q.fd = -1;
	g->used = true;
	return g;
}

/* A forwarded request for memory is a want the policy honours. */
static void on_event(void *opaque, json_t *ev)
{
	struct guest *g = opaque;
	const char *name = json_string_value(json_object_get(ev, "event"));
	json_t *data = json_object_get(ev, "data");
	json_int_t size;

	if (!name || strcmp(name, "VIRTIO_DMM_ASK") || !json_is_object(data))
		return;
	size = json_integer_value(json_object_get(data, "asked-guest-size"));
	if (size <= 0)
		return;
	g->st.asked = (uint64_t)size;
	say("%s: asks for %llu MiB (%s)", g->name,
	    (unsigned long long)size / MiB,
	    json_string_value(json_object_get(data, "result")) ?: "?");
}

/*
 * It did not answer, or not usefully.  It keeps counting at what it may
 * hold (policy_held()) until its QEMU is gone: nobody listens on its
 * socket any more (@gone).
 */
static void drop(struct guest *g, const char *why, int err, bool gone)
{
	char a[32];

	/* once per outage: when it was alive, or at the first failure */
	if (g->st.alive || !g->told || gone != g->st.gone) {
		g->st.alive = false;
		g->st.gone = gone;
		say("%s: dropped (%s: %s), %s", g->name, why, strerror(-err),
		    gone ? "its QEMU is gone" :
		    g->st.known ? "still counts as holding what it had" :
				  "counts as holding its max");
		say("%s: holds %s of the budget", g->name,
		    mib(policy_held(&g->st), a));
	}
	g->told = true;
	g->st.alive = false;
	g->st.gone = gone;
	qmp_close(&g->q);
	g->retry_at = now_ms() + RECONNECT_MS;
}

/* The virtio-dmm entry with id @dev in query-memory-devices, or NULL. */
static json_t *find_dmm(json_t *list, const char *dev)
{
	size_t i;
	json_t *d, *data;

	json_array_foreach(list, i, d) {
		const char *type = json_string_value(json_object_get(d, "type"));
		const char *id;

		data = json_object_get(d, "data");
		id = json_string_value(json_object_get(data, "id"));
		if (type && !strcmp(type, "virtio-dmm") && id && !strcmp(id, dev))
			return data;
	}
	return NULL;
}

static uint64_t jsize(json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 ? (uint64_t)v : 0;
}

/* Read one guest's state; on any failure it is skipped this period. */
static void poll_guest(struct guest *g)
{
	json_t *ret, *d, *st;
	int rc;

	uint64_t limit;
	char why[96], a[32];

	if (!qmp_connected(&g->q)) {
		if (now_ms() < g->retry_at)
			return;
		g->q.on_event = on_event;
		g->q.opaque = g;
		rc = qmp_connect(&g->q, g->path, QMP_TIMEOUT_MS);
		if (rc) {
			/* nobody listens: its QEMU exited */
			drop(g, "connect", rc, rc == -ECONNREFUSED ||
			     rc == -ENOENT);
			return;
		}
	}
	rc = qmp_call(&g->q, "query-memory-devices", NULL, QMP_TIMEOUT_MS,
		      &ret);
	if (rc) {
		drop(g, "query-memory-devices", rc, false);
		return;
	}
	if (g->q.overflows && !g->told_garbage)
		say("%s: %u numbers out of range in query-memory-devices, ignored",
		    g->name, g->q.overflows);
	g->told_garbage = g->q.overflows;
	d = find_dmm(ret, g->dev);
	if (!d) {
		json_decref(ret);
		snprintf(why, sizeof(why), "no virtio-dmm device '%s'", g->dev);
		drop(g, why, -ENODEV, false);
		return;
	}
	/* QEMU's own numbers: without both, nothing of the answer is used */
	if (!jsize(d, "guest-size") ||
	    !json_is_integer(json_object_get(d, "requested-guest-size")) ||
	    json_integer_value(json_object_get(d, "requested-guest-size")) < 0) {
		json_decref(ret);
		snprintf(why, sizeof(why), "device '%s' without a valid guest-size and requested-guest-size",
			 g->dev);
		drop(g, why, -EPROTO, false);
		return;
	}
	/* its limit: what auto-grant may give it, else boot + region */
	if (json_is_true(json_object_get(d, "auto-grant")))
		limit = jsize(d, "auto-grant-limit");
	else
		limit = jsize(d, "boot-size") + jsize(d, "max-size");
	if (!g->max_set && (!limit || limit < g->st.min)) {
		json_decref(ret);
		snprintf(why, sizeof(why), "device '%s' limit %s, below min",
			 g->dev, mib(limit, a));
		drop(g, why, -EINVAL, false);
		return;
	}
	if (!g->max_set && g->st.max != limit) {
		g->st.max = limit;
		say("%s: max %s (the device's limit)", g->name, mib(limit, a));
	}
	if (!g->st.alive)
		say("%s: connected", g->name);
	g->st.alive = true;
	g->st.gone = false;
	g->st.known = true;
	g->st.size = jsize(d, "guest-size");
	g->st.requested = jsize(d, "requested-guest-size");
	st = json_object_get(d, "stats");
	/* no report, or a stale one: assume it uses all it has */
	g->answer_at = now_ms();
	g->report_at = 0;
	if (st && json_is_integer(json_object_get(st, "age-ms"))) {
		/* a guest's number: at most 2^40 ms, so that sums cannot wrap */
		g->report_age = (long long)(jsize(st, "age-ms") < (1ULL << 40) ?
					    jsize(st, "age-ms") : 1ULL << 40);
		g->report_at = g->answer_at;
	}
	if (st && jsize(st, "age-ms") < 10000) {
		g->st.available = jsize(st, "available");
		g->st.psi = json_number_value(json_object_get(st,
							      "psi-some-avg10"));
		if (!isfinite(g->st.psi) || g->st.psi < 0 || g->st.psi > 100)
			g->st.psi = 0;
	} else {
		g->st.available = 0;
		g->st.psi = 0;
	}
	json_decref(ret);
	if (g->release) {
		ledger_release(&led, policy_held(&g->st));
		g->release = false;
		say("%s: joined with %llu MiB, reservation %llu MiB left",
		    g->name, (unsigned long long)g->st.size / MiB,
		    (unsigned long long)ledger_reserved(&led) / MiB);
	}
}

static int set_requested(struct guest *g, uint64_t size)
{
	json_t *args = json_pack("{s:s,s:s,s:I}", "path", g->dev, "property",
				 "requested-guest-size", "value", (json_int_t)size);
	int rc = qmp_call(&g->q, "qom-set", args, QMP_TIMEOUT_MS, NULL);

	if (rc == -EREMOTEIO) {
		say("%s: requested-guest-size %llu refused: %s", g->name,
		    (unsigned long long)size, g->q.error);
		return rc;
	}
	if (rc) {
		/* it may have been set: count the larger of the two */
		if (size > g->st.requested)
			g->st.requested = size;
		drop(g, "qom-set", rc, false);
		return rc;
	}
	g->st.requested = size;
	return 0;
}

static void decide_one(struct gstate *st, int n, int i, bool shrinks)
{
	struct guest *g = &guests[i];
	char a[32], b[32], c[32], d[32];
	uint64_t req = policy_step(&pol, st, n, i, ledger_promised(&led));

	if (!req || (req < st[i].requested) != shrinks)
		return;
	say("%s: %s %s -> %s (want %s, available %s, psi %.2f)", g->name,
	    shrinks ? "shrink" : "grow", mib(st[i].requested, a), mib(req, b),
	    mib(st[i].want, c), mib(st[i].available, d), st[i].psi);
	set_requested(g, req);
	st[i].requested = g->st.requested;
	st[i].alive = g->st.alive;
	if (req >= st[i].asked)
		g->st.asked = 0;
}

/* The guests as policy.c sees them: a free slot holds nothing. */
static struct gstate *snapshot(struct gstate *st)
{
	int i;

	for (i = 0; i < MAX_GUESTS; i++) {
		st[i] = guests[i].st;
		if (!guests[i].used)
			st[i] = (struct gstate){ .gone = true };
	}
	return st;
}

/* One period: observe, share the budget, shrink first, then grow. */
static void decide(void)
{
	struct gstate st[MAX_GUESTS];
	int i;

	for (i = 0; i < MAX_GUESTS; i++) {
		if (guests[i].used)
			poll_guest(&guests[i]);
		if (guests[i].used && guests[i].st.alive)
			policy_observe(&pol, &guests[i].st);
	}
	snapshot(st);
	if (!policy_allocate(&pol, st, MAX_GUESTS, ledger_promised(&led)))
		say("budget %llu MiB is below the guests' mins, what lost guests hold and the reservations",
		    (unsigned long long)pol.budget / MiB);
	for (i = 0; i < MAX_GUESTS; i++)
		if (st[i].alive)
			decide_one(st, MAX_GUESTS, i, true);
	for (i = 0; i < MAX_GUESTS; i++)
		if (st[i].alive)
			decide_one(st, MAX_GUESTS, i, false);
	for (i = 0; i < MAX_GUESTS; i++) {
		guests[i].st.want = st[i].want;
		guests[i].st.target = st[i].target;
		if (!csv || !guests[i].used)
			continue;
		fprintf(csv, "%.1f,%s,%llu,%llu,%llu,%llu,%llu,%.2f,%d\n",
			now_s(), guests[i].name,
			(unsigned long long)guests[i].st.size,
			(unsigned long long)guests[i].st.requested,
			(unsigned long long)st[i].target,
			(unsigned long long)st[i].want,
			(unsigned long long)guests[i].st.available,
			guests[i].st.psi, guests[i].st.alive);
	}
	if (csv)
		fflush(csv);
}

/*
 * Send an answer without ever blocking: a client that does not read its
 * answers (its socket buffer is full) is cut off, not waited for.
 */
static void send_all(int fd, const char *buf, size_t len)
{
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n != (ssize_t)len)
		shutdown(fd, SHUT_RDWR);	/* its next read sees EOF */
}

static void reply(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	send_all(fd, buf, (size_t)n);
}

/* admit SIZE: shrink others now; answer when they have given it back. */
static void cmd_admit(int fd, const char *arg)
{
	struct gstate st[MAX_GUESTS];
	uint64_t size = parse_size(arg), new_req[MAX_GUESTS];
	char a[32], b[32], c[32];
	int i, rc;

	if (!size) {
		reply(fd, "error: admit SIZE (" SIZE_HELP ")");
		return;
	}
	rc = ledger_admit(&pol, &led, snapshot(st), MAX_GUESTS, size, new_req);
	if (rc == -EBUSY) {
		reply(fd, "no: another admission is in progress");
		return;
	}
	if (rc) {
		say("admit %s: no room (budget %s)", mib(size, a),
		    mib(pol.budget, b));
		reply(fd, "no: the others cannot give %llu MiB within their mins",
		      (unsigned long long)size / MiB);
		return;
	}
	for (i = 0; i < MAX_GUESTS; i++) {
		if (!new_req[i])
			continue;
		say("%s: shrink %s -> %s to admit %s", guests[i].name,
		    mib(guests[i].st.requested, a), mib(new_req[i], b),
		    mib(size, c));
		set_requested(&guests[i], new_req[i]);
	}
	admission.fd = fd;
	admission.deadline = now_ms() + ADMIT_TIMEOUT_MS;
}

/*
 * Answer a pending admission once the memory is really free.  Granted
 * reservations that no add has used --grant-timeout after the last
 * grant lapse: an admission whose guest never came does not keep its
 * memory from the others for ever.
 */
static void check_admission(void)
{
	struct gstate st[MAX_GUESTS];
	uint64_t size = led.asked;

	if (led.granted && now_ms() - granted_at > grant_timeout_ms)
		say("admit: %llu MiB granted but not used by an add within %lld s, released",
		    (unsigned long long)ledger_expire(&led) / MiB,
		    grant_timeout_ms / 1000);
	if (!led.pending)
		return;
	if (ledger_update(&pol, &led, snapshot(st), MAX_GUESTS)) {
		granted_at = now_ms();
		say("admit %llu MiB: yes", (unsigned long long)size / MiB);
		if (admission.fd >= 0)
			reply(admission.fd, "yes");
	} else if (now_ms() > admission.deadline) {
		ledger_cancel(&led);
		say("admit %llu MiB: the guests did not shrink in time",
		    (unsigned long long)size / MiB);
		if (admission.fd >= 0)
			reply(admission.fd, "no: the guests did not shrink in time");
	} else {
		return;
	}
	admission.fd = -1;
}

static void cmd_status(int fd)
{
	struct gstate st[MAX_GUESTS];
	int i;

	reply(fd, "budget %llu committed %llu reserved %llu pending %llu",
	      (unsigned long long)pol.budget,
	      (unsigned long long)policy_committed(snapshot(st), MAX_GUESTS),
	      (unsigned long long)ledger_reserved(&led),
	      (unsigned long long)(led.pending ? led.asked : 0));
	for (i = 0; i < MAX_GUESTS; i++)
		if (guests[i].used)
			reply(fd, "%s %s size %llu requested %llu want %llu min %llu max %llu weight %u holds %llu",
			      guests[i].name,
			      guests[i].st.alive ? "alive" : "lost",
			      (unsigned long long)guests[i].st.size,
			      (unsigned long long)guests[i].st.requested,
			      (unsigned long long)guests[i].st.want,
			      (unsigned long long)guests[i].st.min,
			      (unsigned long long)guests[i].st.max,
			      guests[i].st.weight,
			      (unsigned long long)policy_held(&guests[i].st));
	reply(fd, ".");
}

/* Bytes as a JSON integer: a saturated sum stays the largest one. */
static json_int_t jbytes(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (json_int_t)v;
}

static const char *state_name(const struct guest *g)
{
	return g->st.alive ? "alive" : g->st.gone ? "gone" :
	       g->st.known ? "lost" : "unknown";
}

/* status json: the same as status, and more, as one JSON object. */
static void cmd_status_json(int fd)
{
	struct gstate st[MAX_GUESTS];
	json_t *o, *gs = json_array(), *age, *ans;
	long long now = now_ms();
	char *text;
	int i;

	snapshot(st);
	for (i = 0; i < MAX_GUESTS; i++) {
		struct guest *g = &guests[i];

		if (!g->used)
			continue;
		age = g->report_at ? json_integer(g->report_age + now -
						  g->report_at) : json_null();
		ans = g->answer_at ? json_integer(now - g->answer_at) :
				     json_null();
		json_array_append_new(gs, json_pack(
			"{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:I,s:I,s:f,s:o,s:o,s:b}",
			"name", g->name, "state", state_name(g),
			"size", jbytes(g->st.size),
			"requested", jbytes(g->st.requested),
			"want", jbytes(g->st.want),
			"target", jbytes(g->st.target),
			"min", jbytes(g->st.min),
			"max", jbytes(g->st.max),
			"weight", (int)g->st.weight,
			"holds", jbytes(policy_held(&g->st)),
			"available", jbytes(g->st.available),
			"psi", g->st.psi,
			"report-age-ms", age, "answer-age-ms", ans,
			"added", g->added));
	}
	o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}",
		      "budget", jbytes(pol.budget),
		      "committed", jbytes(policy_committed(st, MAX_GUESTS)),
		      "reserved", jbytes(ledger_reserved(&led)),
		      "pending", jbytes(led.pending ? led.asked : 0),
		      "room", jbytes(policy_room(&pol, st, MAX_GUESTS, -1,
						 ledger_reserved(&led))),
		      "guests", gs);
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (text) {
		size_t len = strlen(text);
		char *line = realloc(text, len + 2);

		if (line) {
			text = line;
			text[len] = '\n';
			send_all(fd, text, len + 1);
		}
	} else {
		reply(fd, "error: out of memory");
	}
	free(text);
	json_decref(o);
}

/* One command line from a control client; false: close the client. */
static bool command(int fd, char *line)
{
	char err[256];
	struct guest *g;
	int i;

	if (!strcmp(line, "status")) {
		cmd_status(fd);
	} else if (!strcmp(line, "status json") ||
		   !strcmp(line, "status --json")) {
		cmd_status_json(fd);
	} else if (!strncmp(line, "admit ", 6)) {
		cmd_admit(fd, line + 6);
	} else if (!strncmp(line, "add ", 4)) {
		g = add_guest(line + 4, err, sizeof(err));
		if (g && !virt_is_domain(g->path) &&
		    !qmp_path_allowed(g->path, g->path, sizeof(g->path),
					   err, sizeof(err))) {
			g->used = false;
			g = NULL;
		}
		if (g && sum_mins(0) > pol.budget) {
			snprintf(err, sizeof(err), "the mins of the guests would exceed the budget");
			g->used = false;
			g = NULL;
		}
		if (!g) {
			say("add refused: %s", err);
			reply(fd, "error: %s", err);
		} else {
			g->release = ledger_reserved(&led) || led.pending;
			g->added = true;
			say("%s: added (%s)", g->name, g->path);
			save_state();
			reply(fd, "ok");
		}
	} else if (!strncmp(line, "remove ", 7)) {
		for (i = 0; i < MAX_GUESTS; i++)
			if (guests[i].used && !strcmp(guests[i].name, line + 7))
				break;
		if (i == MAX_GUESTS) {
			reply(fd, "error: no guest '%s'", line + 7);
		} else {
			qmp_close(&guests[i].q);
			guests[i].used = false;
			say("%s: removed", line + 7);
			save_state();
			reply(fd, "ok");
		}
	} else {
		reply(fd, "error: unknown command (status, status json, admit, add, remove)");
	}
	return true;
}

/*
 * The control socket: mode 0600, or 0660 and group --control-group.  It
 * is never accessible to anyone else, not even between bind and chmod.
 */
static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (!rc && control_group)
		rc = chown(path, (uid_t)-1, control_gid) ||
		     chmod(path, 0660);
	if (rc || listen(fd, 16)) {
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

/* root, our own user and --control-group may send commands. */
static bool peer_allowed(int fd, int *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	gid_t groups[256];
	unsigned int i;

	*uid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len))
		return false;
	*uid = (int)cr.uid;
	if (cr.uid == 0 || cr.uid == geteuid())
		return true;
	if (!control_group)
		return false;
	if (cr.gid == control_gid)
		return true;
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len))
		return false;
	for (i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == control_gid)
			return true;
	return false;
}

static void on_signal(int sig)
{
	stop = sig;
}

/* Control clients: their fds and what they sent that is not a line yet. */
static struct {
	int fd;
	char buf[1024];
	size_t len;
	long long last;		/* when it last sent something (ms) */
} clients[MAX_CLIENTS];

static void client_close(int i)
{
	if (admission.fd == clients[i].fd) {
		/* nobody to tell: what it claimed lapses, nothing more */
		say("admit %llu MiB: the client went away",
		    (unsigned long long)led.asked / MiB);
		ledger_cancel(&led);
		admission.fd = -1;
	}
	close(clients[i].fd);
	clients[i].fd = -1;
}

static void client_read(int i)
{
	ssize_t n = read(clients[i].fd, clients[i].buf + clients[i].len,
			 sizeof(clients[i].buf) - 1 - clients[i].len);
	char *nl;

	if (n <= 0) {
		client_close(i);
		return;
	}
	clients[i].len += (size_t)n;
	clients[i].last = now_ms();
	while ((nl = memchr(clients[i].buf, '\n', clients[i].len))) {
		*nl = '\0';
		if (nl > clients[i].buf && nl[-1] == '\r')
			nl[-1] = '\0';
		command(clients[i].fd, clients[i].buf);
		clients[i].len -= (size_t)(nl + 1 - clients[i].buf);
		memmove(clients[i].buf, nl + 1, clients[i].len);
	}
	if (clients[i].len == sizeof(clients[i].buf) - 1) {
		reply(clients[i].fd, "error: line too long");
		client_close(i);
	}
}

/*
 * A free slot for a new control client.  If all are taken, the one
 * silent the longest (never the admitting one) is closed for it: idle
 * or half-open connections cannot lock the operator out.
 */
static int client_slot(void)
{
	int i, idlest = -1;

	for (i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0)
			return i;
		if (clients[i].fd != admission.fd &&
		    (idlest < 0 || clients[i].last < clients[idlest].last))
			idlest = i;
	}
	/* closed without a word: an unasked line would break the protocol */
	if (idlest >= 0)
		client_close(idlest);
	return idlest;
}

/* Wait for control traffic until @deadline (ms). */
static void serve(int lfd, long long deadline)
{
	struct pollfd pfd[MAX_CLIENTS + 1];
	int i, n, fd, uid;

	while (!stop && now_ms() < deadline) {
		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		for (i = 0; i < MAX_CLIENTS; i++) {
			if (clients[i].fd >= 0 &&
			    clients[i].fd != admission.fd &&
			    now_ms() - clients[i].last > CLIENT_IDLE_MS)
				client_close(i);
			pfd[i + 1].fd = clients[i].fd;
			pfd[i + 1].events = POLLIN;
		}
		n = poll(pfd, MAX_CLIENTS + 1, (int)(deadline - now_ms()));
		if (n <= 0)
			continue;
		/* the lines first: a client is never evicted with one unread */
		for (i = 0; i < MAX_CLIENTS; i++)
			if (clients[i].fd >= 0 &&
			    pfd[i + 1].fd == clients[i].fd &&
			    (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				client_read(i);
		if (lfd >= 0 && (pfd[0].revents & POLLIN)) {
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0 && !peer_allowed(fd, &uid)) {
				say("control: refused uid %d", uid);
				reply(fd, "error: permission denied");
				close(fd);
				continue;
			}
			i = fd >= 0 ? client_slot() : -1;
			if (fd >= 0 && i < 0) {
				reply(fd, "error: too many clients");
				close(fd);
			} else if (fd >= 0) {
				clients[i].fd = fd;
				clients[i].len = 0;
				clients[i].last = now_ms();
			}
		}
	}
}

/* "FILE:LINE" while the config file is read: errors name it */
static char where[PATH_MAX + 16];

static void die_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "dmm-balancer: %s%s%s%s%s\n(see --help)\n", where,
		*where ? ": " : "", msg, arg ? ": " : "", arg ? arg : "");
	exit(1);
}

/*
 * A number option in [lo, hi] (above lo only if @lo_open); anything else,
 * NaN included, stops with @msg.
 */
static double opt_real(const char *arg, double lo, bool lo_open, double hi,
		       const char *msg)
{
	double v = atof(arg);

	if (!((lo_open ? v > lo : v >= lo) && v <= hi))
		die_usage(msg, arg);
	return v;
}

static const struct option opts[] = {
	{ "budget", required_argument, NULL, 'b' },
	{ "period", required_argument, NULL, 'p' },
	{ "csv", required_argument, NULL, 'c' },
	{ "control", required_argument, NULL, 's' },
	{ "headroom", required_argument, NULL, 'H' },
	{ "reserve", required_argument, NULL, 'r' },
	{ "hysteresis", required_argument, NULL, 'y' },
	{ "psi", required_argument, NULL, 'P' },
	{ "boost", required_argument, NULL, 'B' },
	{ "alpha", required_argument, NULL, 'a' },
	{ "beta", required_argument, NULL, 'e' },
	{ "horizon", required_argument, NULL, 'z' },
	{ "control-group", required_argument, NULL, 'g' },
	{ "qmp-dir", required_argument, NULL, 'q' },
	{ "libvirt", required_argument, NULL, 'L' },
	{ "state-dir", required_argument, NULL, 'S' },
	{ "grant-timeout", required_argument, NULL, 'G' },
	{ "config", required_argument, NULL, 'C' },
	{ "once", no_argument, NULL, 'o' },
	{ "help", no_argument, NULL, 'h' },
	{ }
};

static const char *control, *qdir, *state_dir;
static double period = 1;
static bool once;

/* One option, from the command line or the config file. */
static void set_option(int opt, const char *arg)
{
	struct group *gr;

	switch (opt) {
	case 'b':
		pol.budget = parse_size(arg);
		if (!pol.budget)
			die_usage("bad --budget (" SIZE_HELP ")", arg);
		break;
	case 'p':
		period = atof(arg);
		if (!(period >= 0.1 && period <= 3600))
			die_usage("--period must be 0.1 to 3600 s", arg);
		break;
	case 'c':
		if (csv)
			fclose(csv);
		csv = fopen(arg, "a");
		if (!csv)
			die_usage("cannot open --csv", arg);
		break;
	case 's':
		control = strdup(arg);
		break;
	case 'g':
		gr = getgrnam(arg);
		if (gr) {
			control_gid = gr->gr_gid;
		} else {
			char *end;
			long v = strtol(arg, &end, 10);

			if (!*arg || *end || v < 0 || v > INT_MAX)
				die_usage("no such --control-group", arg);
			control_gid = (gid_t)v;
		}
		control_group = true;
		break;
	case 'q':
		qdir = strdup(arg);
		break;
	case 'L':
		if (!*arg)
			die_usage("bad --libvirt URI", arg);
		virt_set_uri(strdup(arg));
		break;
	case 'S':
		state_dir = strdup(arg);
		break;
	case 'C':
		break;		/* read before everything else */
	case 'G':
		grant_timeout_ms = (long long)(opt_real(arg, 1, false,
			86400 * 7, "--grant-timeout must be 1 s to 7 days") * 1000);
		break;
	case 'H':
		pol.headroom = opt_real(arg, 0, false, 4,
					"--headroom must be 0 to 4");
		break;
	case 'r':
	case 'y':
	case 'B':
		if (!parse_size(arg))
			die_usage("bad size (" SIZE_HELP ")", arg);
		*(opt == 'r' ? &pol.reserve : opt == 'y' ?
		  &pol.hysteresis : &pol.boost) = parse_size(arg);
		break;
	case 'P':
		pol.psi_high = opt_real(arg, 0, true, 100,
					"--psi must be above 0, at most 100");
		break;
	case 'a':
	case 'e':
		*(opt == 'a' ? &pol.alpha : &pol.beta) = opt_real(arg, 0, true,
			1, "--alpha and --beta must be in (0, 1]");
		break;
	case 'z':
		pol.horizon = opt_real(arg, 0, false, 100,
				       "--horizon must be 0 to 100");
		break;
	case 'o':
		once = true;
		break;
	case 'h':
		fputs(usage, stdout);
		exit(0);
	default:
		die_usage("unknown option", NULL);
	}
}

/*
 * The config file: "KEY = VALUE" (or "KEY VALUE") lines, KEY a long
 * option that takes a value, and "guest NAME=QMP_SOCKET,..." lines; #
 * starts a comment line.  Read before the command line, which overrides
 * it.
 */
static void read_config(const char *file)
{
	char line[1024], err[256], *k, *v, *end;
	int n = 0, i;
	FILE *f = fopen(file, "r");

	snprintf(where, sizeof(where), "%s", file);
	if (!f)
		die_usage(strerror(errno), NULL);
	while (fgets(line, sizeof(line), f)) {
		snprintf(where, sizeof(where), "%s:%d", file, ++n);
		if (!strchr(line, '\n') && !feof(f))
			die_usage("line too long", NULL);
		end = line + strlen(line);
		while (end > line && isspace((unsigned char)end[-1]))
			*--end = '\0';
		k = line + strspn(line, " \t");
		if (!*k || *k == '#')
			continue;
		end = k + strcspn(k, " \t=");
		v = end + strspn(end, " \t");
		if (*v == '=')
			v += 1 + strspn(v + 1, " \t");
		*end = '\0';
		if (!*v)
			die_usage("a value is missing", k);
		if (!strcmp(k, "guest")) {
			if (!add_guest(v, err, sizeof(err)))
				die_usage(err, NULL);
			continue;
		}
		for (i = 0; opts[i].name; i++)
			if (!strcmp(opts[i].name, k))
				break;
		if (!opts[i].name || opts[i].has_arg != required_argument ||
		    opts[i].val == 'C')
			die_usage("unknown key (a long option with a value, or guest)",
				  k);
		set_option(opts[i].val, v);
	}
	if (ferror(f))
		die_usage(strerror(errno), NULL);
	fclose(f);
	where[0] = '\0';
}

/*
 * State that survives a restart, in --state-dir/state: the guests (added
 * ones with their settings, all with the size and requested size last
 * read) and the granted reservations.  Written when it changed: to
 * state.tmp, fsync, rename, fsync of the directory, so that the file is
 * always the old or the new state, whole.
 */
static char *state_last;	/* what the file holds now */
static bool state_failed;	/* the last write failed (logged once) */

static json_t *state_json(void)
{
	json_t *gs = json_array(), *o;
	int i;

	for (i = 0; i < MAX_GUESTS; i++) {
		struct guest *g = &guests[i];

		if (!g->used)
			continue;
		json_array_append_new(gs, json_pack(
			"{s:s,s:s,s:s,s:b,s:I,s:I,s:b,s:i,s:b,s:I,s:I,s:b}",
			"name", g->name, "path", g->path, "dev", g->dev,
			"added", g->added,
			"min", jbytes(g->st.min),
			"max", jbytes(g->st.max), "max-set", g->max_set,
			"weight", (int)g->st.weight, "known", g->st.known,
			"size", jbytes(g->st.size),
			"requested", jbytes(g->st.requested),
			"release", g->release));
	}
	o = json_pack("{s:i,s:I,s:I,s:o}", "version", 1, "budget",
		      jbytes(pol.budget), "granted",
		      jbytes(led.granted), "guests", gs);
	return o;
}

static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void save_state(void)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	json_t *o;
	char *text;
	int fd, dfd, rc = -1;

	if (!state_dir)
		return;
	o = state_json();
	text = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
	json_decref(o);
	if (!text || (state_last && !strcmp(text, state_last))) {
		free(text);
		return;
	}
	snprintf(path, sizeof(path), "%s/state", state_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		rc = write_all(fd, text, strlen(text)) ||
		     write_all(fd, "\n", 1) || fsync(fd);
		rc = close(fd) || rc;
		rc = rc || rename(tmp, path);
	}
	if (rc) {
		if (!state_failed)
			say("state: cannot write %s: %s", path, strerror(errno));
		state_failed = true;
		unlink(tmp);
		free(text);
		return;
	}
	dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	if (state_failed)
		say("state: written again");
	state_failed = false;
	free(state_last);
	state_last = text;
}

static uint64_t state_size(json_t *o, const char *key, bool *ok)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		*ok = false;
		return 0;
	}
	return (uint64_t)json_integer_value(v);
}

/*
 * Restore the state: a guest named in the config or on the command line
 * keeps those settings and gets its last sizes back; one added with add
 * is added again; one that came from the config and is no longer in it
 * is not.  Nothing is set on a guest here: the first period reads them
 * all and goes on from what they hold.
 */
static void load_state(void)
{
	char path[PATH_MAX], why[256];
	json_error_t jerr;
	json_t *o, *gs, *go;
	struct guest *g;
	bool ok = true;
	size_t k;
	int i;

	snprintf(path, sizeof(path), "%s/state", state_dir);
	if (access(path, F_OK) && errno == ENOENT) {
		say("state: no %s, starting afresh", path);
		return;
	}
	o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	snprintf(where, sizeof(where), "%s", path);
	if (!o) {
		snprintf(why, sizeof(why), "line %d: %.160s (move it away to start afresh)",
			 jerr.line, jerr.text);
		die_usage(why, NULL);
	}
	gs = json_object_get(o, "guests");
	if (json_integer_value(json_object_get(o, "version")) != 1 ||
	    !json_is_array(gs))
		die_usage("not a state file of version 1", NULL);
	led.granted = state_size(o, "granted", &ok);
	if (!ok || led.granted > pol.budget)
		led.granted = pol.budget;	/* keep what was promised */
	json_array_foreach(gs, k, go) {
		const char *name = json_string_value(json_object_get(go, "name"));
		const char *gpath = json_string_value(json_object_get(go, "path"));
		const char *dev = json_string_value(json_object_get(go, "dev"));
		bool added = json_is_true(json_object_get(go, "added"));

		if (!name || !gpath || !dev || strlen(name) >= 64 ||
		    strlen(gpath) >= 108 || strlen(dev) >= 64)
			die_usage("a guest without a valid name, path or dev", NULL);
		g = NULL;
		for (i = 0; i < MAX_GUESTS; i++)
			if (guests[i].used && !strcmp(guests[i].name, name))
				g = &guests[i];
		if (!g && !added) {
			say("state: %s is no longer in the configuration, not restored",
			    name);
			continue;
		}
		if (!g) {
			for (i = 0; i < MAX_GUESTS && guests[i].used; i++)
				;
			if (i == MAX_GUESTS)
				die_usage("more guests than fit", NULL);
			g = &guests[i];
			memset(g, 0, sizeof(*g));
			snprintf(g->name, sizeof(g->name), "%s", name);
			snprintf(g->path, sizeof(g->path), "%s", gpath);
			snprintf(g->dev, sizeof(g->dev), "%s", dev);
			g->st.min = state_size(go, "min", &ok);
			g->st.weight = (unsigned int)json_integer_value(
				json_object_get(go, "weight"));
			g->max_set = json_is_true(json_object_get(go, "max-set"));
			g->added = true;
			g->q.fd = -1;
			g->used = true;
			if (!g->st.min || g->st.weight < 1 || g->st.weight > 1000)
				ok = false;
		}
		if (!g->max_set || g->added)
			g->st.max = state_size(go, "max", &ok);
		g->st.known = json_is_true(json_object_get(go, "known"));
		g->st.size = state_size(go, "size", &ok);
		g->st.requested = state_size(go, "requested", &ok);
		g->release = json_is_true(json_object_get(go, "release"));
		if (!ok || g->st.min > g->st.max) {
			snprintf(why, sizeof(why), "guest '%s': bad sizes", name);
			die_usage(why, NULL);
		}
		say("state: %s%s, size %llu MiB, requested %llu MiB", name,
		    g->added ? " (added)" : "",
		    (unsigned long long)g->st.size / MiB,
		    (unsigned long long)g->st.requested / MiB);
	}
	if (led.granted)
		say("state: %llu MiB reserved", (unsigned long long)led.granted / MiB);
	granted_at = now_ms();	/* a restart gives a grant its full time */
	where[0] = '\0';
	json_decref(o);
}

int main(int argc, char **argv)
{
	char cdir[PATH_MAX], mins[32], bud[32];
	char err[256];
	int opt, lfd = -1, i;
	long long next;

	t0 = now_ms() / 1000.0;
	/* the config file first: the command line overrides it */
	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			read_config(argv[++i]);
		else if (!strncmp(argv[i], "--config=", 9))
			read_config(argv[i] + 9);
	}
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		set_option(opt, optarg);
	if (!pol.budget)
		die_usage("--budget is required", NULL);
	for (i = optind; i < argc; i++)
		if (!add_guest(argv[i], err, sizeof(err)))
			die_usage(err, NULL);
	/* until its device tells its limit, a guest may hold the whole budget */
	for (i = 0; i < MAX_GUESTS; i++)
		if (guests[i].used && !guests[i].max_set)
			guests[i].st.max = pol.budget;
	if (state_dir)
		load_state();
	if (sum_mins(0) > pol.budget) {
		snprintf(err, sizeof(err), "--budget %s is below the sum of the guests' mins (%s)",
			 mib(pol.budget, bud), mib(sum_mins(0), mins));
		die_usage(err, NULL);
	}
	for (i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	if (control && !qdir) {
		snprintf(cdir, sizeof(cdir), "%s", control);
		qdir = dirname(cdir);
	}
	if (qdir && !realpath(qdir, qmp_dir))
		die_usage("bad --qmp-dir", qdir);
	if (control) {
		lfd = listen_on(control);
		if (lfd < 0)
			die_usage("cannot listen on --control", control);
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (csv && ftell(csv) == 0)
		fprintf(csv, "time,guest,size,requested,target,want,available,psi,alive\n");
	say("budget %llu MiB, period %.1f s", (unsigned long long)pol.budget /
	    MiB, period);
	next = now_ms();
	while (!stop) {
		decide();
		check_admission();
		save_state();
		if (once)
			break;
		next += (long long)(period * 1000);
		if (next < now_ms())
			next = now_ms();
		serve(lfd, next);
	}
	save_state();
	if (control)
		unlink(control);
	say("exit");
	return 0;
}
