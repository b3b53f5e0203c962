// SPDX-License-Identifier: GPL-2.0
/*
 * dmm-balancer: move memory between virtio-dmm guests by their pressure,
 * within a host budget, and make room for new guests.  See --help and
 * Documentation/balancer.rst.
 */
#define _GNU_SOURCE		/* struct ucred */
#include <ctype.h>
#include <errno.h>
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

#define MAX_GUESTS	32
#define MAX_CLIENTS	8
#define QMP_TIMEOUT_MS	1000
#define RECONNECT_MS	2000
#define ADMIT_TIMEOUT_MS 120000

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
"    their requested-size.  Changes below the hysteresis are not made;\n"
"    guests grow only with memory others have given back, so together they\n"
"    never hold more than the budget.  A guest that hangs or sends garbage\n"
"    is skipped and reconnected later; the others are served on.  It keeps\n"
"    counting at what it may hold (max of its last size and requested size,\n"
"    or its max if it never answered) until its QEMU is gone (its socket\n"
"    refuses connections or no longer exists).  A number in a QMP answer\n"
"    beyond 64 bits is ignored (read as absent), not the whole answer.\n"
"\n"
"    GUEST is NAME=QMP_SOCKET[,min=SIZE][,max=SIZE][,weight=N][,dev=ID]\n"
"    (defaults: min 256M, weight 1, dev dmm0; max: the device's limit,\n"
"    max-size with auto-grant, else boot-size + region-size, and the whole\n"
"    budget until the device has answered).  dev= is the id of the\n"
"    virtio-dmm device; a guest without a device of that id is skipped.\n"
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
"    --headroom FRACTION demand added on top of the prediction (0.15)\n"
"    --reserve SIZE      bytes added on top of that (64M)\n"
"    --hysteresis SIZE   smallest change made (64M)\n"
"    --psi PERCENT       PSI some avg10 that means pressure (5)\n"
"    --boost SIZE        growth asked for under pressure (256M)\n"
"    --alpha A, --beta B smoothing of level and trend (0.5, 0.3)\n"
"    --horizon PERIODS   how far the trend is projected (5)\n"
"    --once              one decision, then exit (for scripts)\n"
"    -h, --help          this text\n"
"\n"
"COMMANDS (one line each on the control socket; one line answers)\n"
"    status              budget, committed, reserved, pending; then one line\n"
"                        per guest (alive or lost, sizes, holds); then .\n"
"    admit SIZE          make room for a new guest of SIZE: shrinks the\n"
"                        others, lightest weight first, toward what they need\n"
"                        and then toward their min; answers \"yes\" once they\n"
"                        have given the memory back (it stays reserved), or\n"
"                        \"no: ...\" and changes nothing if it cannot be done;\n"
"                        never raises a guest's requested size.  If the\n"
"                        client goes away or 120 s pass first, the part\n"
"                        not yet used by an add lapses\n"
"    add GUEST           start balancing a guest: its socket must be below\n"
"                        --qmp-dir, the mins must fit the budget; its first\n"
"                        size uses up reservations\n"
"    remove NAME         stop balancing a guest (and counting it: remove a\n"
"                        guest once its QEMU has stopped)\n"
"\n"
"OUTPUT\n"
"    One line per decision on standard output, e.g.\n"
"      12.0 busy: grow 512M -> 768M (want 760M, available 40M, psi 3.20)\n"
"\n"
"EXIT STATUS\n"
"    0 on SIGINT or SIGTERM, 1 on bad arguments (a size without a unit, a\n"
"    budget below the mins, an unknown group) or if the control socket\n"
"    cannot be created.\n";

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
	bool used;
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

static void say(const char *fmt, ...)
{
	va_list ap;

	printf("%.1f ", now_s());
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
		snprintf(err, errlen, "guest '%.63s': expected NAME=QMP_SOCKET", spec);
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
	size = json_integer_value(json_object_get(data, "size"));
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

	if (g->q.fd < 0) {
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
	if (!d || !jsize(d, "size")) {
		json_decref(ret);
		snprintf(why, sizeof(why), "no virtio-dmm device '%s'", g->dev);
		drop(g, why, -ENODEV, false);
		return;
	}
	/* its limit: what auto-grant may give it, else boot + region */
	if (json_is_true(json_object_get(d, "auto-grant")))
		limit = jsize(d, "max-size");
	else
		limit = jsize(d, "boot-size") + jsize(d, "region-size");
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
	g->st.size = jsize(d, "size");
	g->st.requested = jsize(d, "requested-size");
	st = json_object_get(d, "stats");
	/* no report, or a stale one: assume it uses all it has */
	if (st && jsize(st, "age-ms") < 10000) {
		g->st.available = jsize(st, "available");
		g->st.psi = json_number_value(json_object_get(st,
							      "psi-some-avg10"));
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
				 "requested-size", "value", (json_int_t)size);
	int rc = qmp_call(&g->q, "qom-set", args, QMP_TIMEOUT_MS, NULL);

	if (rc == -EREMOTEIO) {
		say("%s: requested-size %llu refused: %s", g->name,
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
	if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) < 0)
		return;		/* the client went away: nothing to tell */
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

/* Answer a pending admission once the memory is really free. */
static void check_admission(void)
{
	struct gstate st[MAX_GUESTS];
	uint64_t size = led.asked;

	if (!led.pending)
		return;
	if (ledger_update(&pol, &led, snapshot(st), MAX_GUESTS)) {
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

/* One command line from a control client; false: close the client. */
static bool command(int fd, char *line)
{
	char err[256];
	struct guest *g;
	int i;

	if (!strcmp(line, "status")) {
		cmd_status(fd);
	} else if (!strncmp(line, "admit ", 6)) {
		cmd_admit(fd, line + 6);
	} else if (!strncmp(line, "add ", 4)) {
		g = add_guest(line + 4, err, sizeof(err));
		if (g && !qmp_path_allowed(g->path, g->path, sizeof(g->path),
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
			say("%s: added (%s)", g->name, g->path);
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
			reply(fd, "ok");
		}
	} else {
		reply(fd, "error: unknown command (status, admit, add, remove)");
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
	if (rc || listen(fd, 4)) {
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

/* Wait for control traffic until @deadline (ms). */
static void serve(int lfd, long long deadline)
{
	struct pollfd pfd[MAX_CLIENTS + 1];
	int i, n, fd, uid;

	while (!stop && now_ms() < deadline) {
		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		for (i = 0; i < MAX_CLIENTS; i++) {
			pfd[i + 1].fd = clients[i].fd;
			pfd[i + 1].events = POLLIN;
		}
		n = poll(pfd, MAX_CLIENTS + 1, (int)(deadline - now_ms()));
		if (n <= 0)
			continue;
		if (lfd >= 0 && (pfd[0].revents & POLLIN)) {
			fd = accept(lfd, NULL, NULL);
			if (fd >= 0 && !peer_allowed(fd, &uid)) {
				say("control: refused uid %d", uid);
				reply(fd, "error: permission denied");
				close(fd);
				continue;
			}
			for (i = 0; fd >= 0 && i < MAX_CLIENTS; i++)
				if (clients[i].fd < 0)
					break;
			if (fd >= 0 && i == MAX_CLIENTS) {
				reply(fd, "error: too many clients");
				close(fd);
			} else if (fd >= 0) {
				clients[i].fd = fd;
				clients[i].len = 0;
			}
		}
		for (i = 0; i < MAX_CLIENTS; i++)
			if (clients[i].fd >= 0 &&
			    (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				client_read(i);
	}
}

static void die_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "dmm-balancer: %s%s%s\n(see --help)\n", msg,
		arg ? ": " : "", arg ? arg : "");
	exit(1);
}

int main(int argc, char **argv)
{
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
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *control = NULL, *qdir = NULL;
	char cdir[PATH_MAX], mins[32], bud[32];
	struct group *gr;
	double period = 1;
	bool once = false;
	char err[256];
	int opt, lfd = -1, i;
	long long next;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			pol.budget = parse_size(optarg);
			if (!pol.budget)
				die_usage("bad --budget (" SIZE_HELP ")", optarg);
			break;
		case 'p':
			period = atof(optarg);
			if (!(period >= 0.1 && period <= 3600))
				die_usage("--period must be 0.1 to 3600 s", optarg);
			break;
		case 'c':
			csv = fopen(optarg, "a");
			if (!csv)
				die_usage("cannot open --csv", optarg);
			break;
		case 's':
			control = optarg;
			break;
		case 'g':
			gr = getgrnam(optarg);
			if (gr) {
				control_gid = gr->gr_gid;
			} else {
				char *end;
				long v = strtol(optarg, &end, 10);

				if (!*optarg || *end || v < 0 || v > INT_MAX)
					die_usage("no such --control-group", optarg);
				control_gid = (gid_t)v;
			}
			control_group = true;
			break;
		case 'q':
			qdir = optarg;
			break;
		case 'H':
			pol.headroom = atof(optarg);
			if (!(pol.headroom >= 0 && pol.headroom <= 4))
				die_usage("--headroom must be 0 to 4", optarg);
			break;
		case 'r':
		case 'y':
		case 'B':
			if (!parse_size(optarg))
				die_usage("bad size (" SIZE_HELP ")", optarg);
			*(opt == 'r' ? &pol.reserve : opt == 'y' ?
			  &pol.hysteresis : &pol.boost) = parse_size(optarg);
			break;
		case 'P':
			pol.psi_high = atof(optarg);
			if (!(pol.psi_high > 0 && pol.psi_high <= 100))
				die_usage("--psi must be above 0, at most 100",
					  optarg);
			break;
		case 'a':
		case 'e':
			*(opt == 'a' ? &pol.alpha : &pol.beta) = atof(optarg);
			if (!(atof(optarg) > 0 && atof(optarg) <= 1))
				die_usage("--alpha and --beta must be in (0, 1]",
					  optarg);
			break;
		case 'z':
			pol.horizon = atof(optarg);
			if (!(pol.horizon >= 0 && pol.horizon <= 100))
				die_usage("--horizon must be 0 to 100", optarg);
			break;
		case 'o':
			once = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			die_usage("unknown option", NULL);
		}
	}
	if (!pol.budget)
		die_usage("--budget is required", NULL);
	for (i = optind; i < argc; i++)
		if (!add_guest(argv[i], err, sizeof(err)))
			die_usage(err, NULL);
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
	t0 = now_ms() / 1000.0;
	say("budget %llu MiB, period %.1f s", (unsigned long long)pol.budget /
	    MiB, period);
	next = now_ms();
	while (!stop) {
		decide();
		check_admission();
		if (once)
			break;
		next += (long long)(period * 1000);
		if (next < now_ms())
			next = now_ms();
		serve(lfd, next);
	}
	if (control)
		unlink(control);
	say("exit");
	return 0;
}
