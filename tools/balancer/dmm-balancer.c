// SPDX-License-Identifier: GPL-2.0
/*
 * dmm-balancer: move memory between virtio-dmm guests by their pressure,
 * within a host budget, and make room for new guests.  See --help and
 * Documentation/balancer.rst.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
"    never hold more than the budget.  A guest that dies, hangs or sends\n"
"    garbage is skipped and reconnected later; the others are served on.\n"
"\n"
"    GUEST is NAME=QMP_SOCKET[,min=SIZE][,max=SIZE][,weight=N][,dev=ID]\n"
"    (defaults: min 256M, max 4G, weight 1, dev dmm0).  SIZE takes K, M, G.\n"
"\n"
"OPTIONS\n"
"    --budget SIZE       memory all guests may have together (required)\n"
"    --period SECONDS    time between decisions (default 1)\n"
"    --csv FILE          append time,guest,size,requested,target,want,\n"
"                        available,psi,alive per guest and period\n"
"    --control SOCKET    unix socket for commands (see below)\n"
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
"    status              budget, committed, reserved; then one line per guest\n"
"    admit SIZE          make room for a new guest of SIZE: shrinks the\n"
"                        others, lightest weight first, toward what they need\n"
"                        and then toward their min; answers \"yes\" once they\n"
"                        have given the memory back (it stays reserved), or\n"
"                        \"no: ...\" and changes nothing if it cannot be done\n"
"    add GUEST           start balancing a guest (releases a reservation)\n"
"    remove NAME         stop balancing a guest\n"
"\n"
"OUTPUT\n"
"    One line per decision on standard output, e.g.\n"
"      12.0 busy: grow 512M -> 768M (want 760M, available 40M, psi 3.20)\n"
"\n"
"EXIT STATUS\n"
"    0 on SIGINT or SIGTERM, 1 on bad arguments or if the control socket\n"
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
	bool used;
};

static struct policy pol = {
	.alpha = 0.5, .beta = 0.3, .horizon = 5, .headroom = 0.15,
	.reserve = 64 * MiB, .hysteresis = 64 * MiB, .granule = 2 * MiB,
	.psi_high = 5, .boost = 256 * MiB,
};
static struct guest guests[MAX_GUESTS];
static uint64_t reserved;
static FILE *csv;
static double t0;
static volatile sig_atomic_t stop;

/* A pending admission: its client, size and deadline. */
static struct {
	int fd;
	uint64_t size;
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

/* "512M" -> bytes; 0 on error (no guest size is 0). */
static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	int shift = 0;

	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	}
	if (*end || v <= 0 || !isfinite(v) || v * (1ULL << shift) >= 1e18)
		return 0;
	return (uint64_t)(v * (1ULL << shift));
}

static const char *mib(uint64_t v, char *buf)
{
	sprintf(buf, "%lluM", (unsigned long long)(v / MiB));
	return buf;
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
	g->st.max = 4096 * MiB;
	g->st.weight = 1;
	tok = strtok_r(eq + 1, ",", &save);
	if (!tok || strlen(tok) >= sizeof(g->path)) {
		snprintf(err, errlen, "guest '%.63s': bad socket path", buf);
		return NULL;
	}
	snprintf(g->path, sizeof(g->path), "%s", tok);
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (!strncmp(tok, "min=", 4) && parse_size(tok + 4))
			g->st.min = parse_size(tok + 4);
		else if (!strncmp(tok, "max=", 4) && parse_size(tok + 4))
			g->st.max = parse_size(tok + 4);
		else if (!strncmp(tok, "weight=", 7) && atoi(tok + 7) > 0 &&
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
	if (g->st.min > g->st.max) {
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

static void drop(struct guest *g, const char *why, int err)
{
	/* once per outage: when it was alive, or at the first failure */
	if (g->st.alive || !g->told)
		say("%s: dropped (%s: %s)", g->name, why, strerror(-err));
	g->told = true;
	g->st.alive = false;
	qmp_close(&g->q);
	g->retry_at = now_ms() + RECONNECT_MS;
}

/* The guest's virtio-dmm entry in query-memory-devices, or NULL. */
static json_t *find_dmm(json_t *list)
{
	size_t i;
	json_t *d;

	json_array_foreach(list, i, d) {
		const char *type = json_string_value(json_object_get(d, "type"));

		if (type && !strcmp(type, "virtio-dmm"))
			return json_object_get(d, "data");
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

	if (g->q.fd < 0) {
		if (now_ms() < g->retry_at)
			return;
		g->q.on_event = on_event;
		g->q.opaque = g;
		rc = qmp_connect(&g->q, g->path, QMP_TIMEOUT_MS);
		if (rc) {
			drop(g, "connect", rc);
			return;
		}
	}
	rc = qmp_call(&g->q, "query-memory-devices", NULL, QMP_TIMEOUT_MS,
		      &ret);
	if (rc) {
		drop(g, "query-memory-devices", rc);
		return;
	}
	d = find_dmm(ret);
	if (!d || !jsize(d, "size")) {
		json_decref(ret);
		drop(g, "no virtio-dmm device", -ENODEV);
		return;
	}
	if (!g->st.alive)
		say("%s: connected", g->name);
	g->st.alive = true;
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
		uint64_t r = reserved < g->st.size ? reserved : g->st.size;

		reserved -= r;
		g->release = false;
		say("%s: joined with %llu MiB, reservation %llu MiB left",
		    g->name, (unsigned long long)g->st.size / MiB,
		    (unsigned long long)reserved / MiB);
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
		drop(g, "qom-set", rc);
		return rc;
	}
	g->st.requested = size;
	return 0;
}

static void decide_one(struct gstate *st, int n, int i, bool shrinks)
{
	struct guest *g = &guests[i];
	char a[32], b[32], c[32], d[32];
	uint64_t req = policy_step(&pol, st, n, i, reserved);

	if (!req || (req < st[i].requested) != shrinks)
		return;
	say("%s: %s %s -> %s (want %s, available %s, psi %.2f)", g->name,
	    shrinks ? "shrink" : "grow", mib(st[i].requested, a), mib(req, b),
	    mib(st[i].want, c), mib(st[i].available, d), st[i].psi);
	if (!set_requested(g, req))
		st[i].requested = req;
	else
		st[i].alive = g->st.alive;
	if (req >= st[i].asked)
		g->st.asked = 0;
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
		st[i] = guests[i].st;
		st[i].alive = guests[i].used && guests[i].st.alive;
	}
	if (!policy_allocate(&pol, st, MAX_GUESTS, reserved))
		say("budget %llu MiB is below the guests' mins",
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

static struct gstate *snapshot(struct gstate *st)
{
	int i;

	for (i = 0; i < MAX_GUESTS; i++) {
		st[i] = guests[i].st;
		st[i].alive = guests[i].used && guests[i].st.alive;
	}
	return st;
}

/* admit SIZE: shrink others now; answer when they have given it back. */
static void cmd_admit(int fd, const char *arg)
{
	struct gstate st[MAX_GUESTS];
	uint64_t size = parse_size(arg), new_req[MAX_GUESTS];
	char a[32], b[32], c[32];
	int i;

	if (!size) {
		reply(fd, "error: admit SIZE");
		return;
	}
	if (admission.fd >= 0) {
		reply(fd, "no: another admission is in progress");
		return;
	}
	if (!policy_admit(&pol, snapshot(st), MAX_GUESTS, reserved, size,
			  new_req)) {
		say("admit %s: no room (budget %s)", mib(size, a),
		    mib(pol.budget, b));
		reply(fd, "no: the others cannot give %llu MiB within their mins",
		      (unsigned long long)size / MiB);
		return;
	}
	reserved += size;
	for (i = 0; i < MAX_GUESTS; i++) {
		if (!new_req[i])
			continue;
		say("%s: shrink %s -> %s to admit %s", guests[i].name,
		    mib(guests[i].st.requested, a), mib(new_req[i], b),
		    mib(size, c));
		set_requested(&guests[i], new_req[i]);
	}
	admission.fd = fd;
	admission.size = size;
	admission.deadline = now_ms() + ADMIT_TIMEOUT_MS;
}

/* Answer a pending admission once the memory is really free. */
static void check_admission(void)
{
	struct gstate st[MAX_GUESTS];
	uint64_t committed;

	if (admission.fd < 0)
		return;
	committed = policy_committed(snapshot(st), MAX_GUESTS);
	if (committed + reserved <= pol.budget) {
		say("admit %llu MiB: yes", (unsigned long long)admission.size /
		    MiB);
		reply(admission.fd, "yes");
	} else if (now_ms() > admission.deadline) {
		reserved -= admission.size;
		say("admit %llu MiB: the guests did not shrink in time",
		    (unsigned long long)admission.size / MiB);
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

	reply(fd, "budget %llu committed %llu reserved %llu",
	      (unsigned long long)pol.budget,
	      (unsigned long long)policy_committed(snapshot(st), MAX_GUESTS),
	      (unsigned long long)reserved);
	for (i = 0; i < MAX_GUESTS; i++)
		if (guests[i].used)
			reply(fd, "%s %s size %llu requested %llu want %llu min %llu max %llu weight %u",
			      guests[i].name,
			      guests[i].st.alive ? "alive" : "lost",
			      (unsigned long long)guests[i].st.size,
			      (unsigned long long)guests[i].st.requested,
			      (unsigned long long)guests[i].st.want,
			      (unsigned long long)guests[i].st.min,
			      (unsigned long long)guests[i].st.max,
			      guests[i].st.weight);
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
		if (!g) {
			reply(fd, "error: %s", err);
		} else {
			g->release = reserved > 0;
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

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	strcpy(sa.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(fd, 4)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
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
		/* nobody to tell: the reservation lapses */
		reserved -= admission.size;
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
	int i, n, fd;

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
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	const char *control = NULL;
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
				die_usage("bad --budget", optarg);
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
		case 'H':
			pol.headroom = atof(optarg);
			if (!(pol.headroom >= 0 && pol.headroom <= 4))
				die_usage("--headroom must be 0 to 4", optarg);
			break;
		case 'r':
		case 'y':
		case 'B':
			if (!parse_size(optarg))
				die_usage("bad size", optarg);
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
	for (i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
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
