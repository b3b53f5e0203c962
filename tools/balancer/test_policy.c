// SPDX-License-Identifier: GPL-2.0
/* Unit tests of the balancer's policy (policy.c).  Prints TAP. */
#include <stdio.h>
#include <string.h>

#include "policy.h"

static int n_tests, failed;

#define CHECK(c) do { \
	if (!(c)) { printf("#   line %d: %s\n", __LINE__, #c); ok = 0; } \
} while (0)

static void report(int ok, const char *name)
{
	n_tests++;
	failed += !ok;
	printf("%sok %d - %s\n", ok ? "" : "not ", n_tests, name);
}

static struct policy pol(uint64_t budget)
{
	struct policy p = {
		.budget = budget, .alpha = 0.5, .beta = 0.3, .horizon = 5,
		.headroom = 0.15, .reserve = 64 * MiB, .hysteresis = 64 * MiB,
		.granule = 2 * MiB, .psi_high = 5, .boost = 256 * MiB,
	};
	return p;
}

static struct gstate guest(uint64_t size, uint64_t avail)
{
	struct gstate g = {
		.min = 256 * MiB, .max = 2048 * MiB, .weight = 1,
		.alive = true, .size = size, .requested = size,
		.available = avail,
	};
	return g;
}

static void t_observe(void)
{
	struct policy p = pol(4096 * MiB);
	struct gstate g = guest(1024 * MiB, 824 * MiB);
	int ok = 1, i;

	policy_observe(&p, &g);
	/* 200 MiB used: 230 + 64 reserve, at least min */
	CHECK(g.want >= 290 * MiB && g.want <= 300 * MiB);
	/* a growing working set: the trend raises the want ahead of use */
	for (i = 0; i < 5; i++) {
		g.available -= 100 * MiB;
		policy_observe(&p, &g);
	}
	CHECK(g.want > (1024 - 324) * MiB * 115 / 100);
	/* pressure: at least size + boost */
	g.psi = 20;
	policy_observe(&p, &g);
	CHECK(g.want >= g.size + p.boost);
	/* never above max, never below min */
	g.max = 1100 * MiB;
	policy_observe(&p, &g);
	CHECK(g.want <= 1100 * MiB && g.want % p.granule == 0);
	g = guest(300 * MiB, 299 * MiB);
	policy_observe(&p, &g);
	CHECK(g.want == 256 * MiB);
	/* a forwarded request is honoured */
	g.asked = 900 * MiB;
	policy_observe(&p, &g);
	CHECK(g.want == 900 * MiB);
	report(ok, "observe: level, trend, pressure, bounds, requests");
}

static void t_allocate(void)
{
	struct policy p = pol(2048 * MiB);
	struct gstate g[3] = { guest(512 * MiB, 0), guest(512 * MiB, 0),
			       guest(512 * MiB, 0) };
	uint64_t sum;
	int ok = 1, i;

	/* wants fit: everyone gets its want */
	g[0].want = 1024 * MiB;
	g[1].want = g[2].want = 256 * MiB;
	CHECK(policy_allocate(&p, g, 3, 0));
	CHECK(g[0].target == 1024 * MiB && g[1].target == 256 * MiB);
	/* too much: min for all, the rest by weight, within the budget */
	g[0].want = g[1].want = g[2].want = 2048 * MiB;
	g[0].weight = 2;
	CHECK(policy_allocate(&p, g, 3, 0));
	for (i = 0, sum = 0; i < 3; i++)
		sum += g[i].target;
	CHECK(sum <= p.budget && sum >= p.budget - 3 * p.granule);
	CHECK(g[0].target > g[1].target && g[1].target == g[2].target);
	/* a dead guest gets nothing; a reservation is kept free */
	g[2].alive = false;
	CHECK(policy_allocate(&p, g, 3, 512 * MiB));
	CHECK(g[2].target == 0 && g[0].target + g[1].target <= 1536 * MiB);
	/* mins above the budget */
	p.budget = 500 * MiB;
	CHECK(!policy_allocate(&p, g, 3, 0));
	report(ok, "allocate: wants, weights, dead guests, reservations");
}

static void t_step(void)
{
	struct policy p = pol(2048 * MiB);
	struct gstate g[2] = { guest(1024 * MiB, 0), guest(1024 * MiB, 0) };
	int ok = 1;

	/* small changes are skipped (hysteresis) */
	g[0].target = 1024 * MiB + 32 * MiB;
	g[1].target = 1024 * MiB - 32 * MiB;
	CHECK(!policy_step(&p, g, 2, 0, 0) && !policy_step(&p, g, 2, 1, 0));
	/* growth only with memory others gave back */
	g[0].target = 1536 * MiB;
	g[1].target = 512 * MiB;
	CHECK(policy_step(&p, g, 2, 1, 0) == 512 * MiB);
	CHECK(!policy_step(&p, g, 2, 0, 0));	/* budget full */
	g[1].requested = 512 * MiB;		/* shrink asked, not done */
	CHECK(!policy_step(&p, g, 2, 0, 0));
	g[1].size = 512 * MiB;			/* done */
	CHECK(policy_step(&p, g, 2, 0, 0) == 1536 * MiB);
	/* under pressure even a small growth is made */
	g[0].target = 1024 * MiB + 16 * MiB;
	g[0].psi = 30;
	CHECK(policy_step(&p, g, 2, 0, 0) == 1040 * MiB);
	report(ok, "step: hysteresis, budget held at every step, pressure");
}

static void t_admit(void)
{
	struct policy p = pol(2048 * MiB);
	struct gstate g[3] = { guest(768 * MiB, 0), guest(640 * MiB, 0),
			       guest(640 * MiB, 0) };
	uint64_t req[3];
	int ok = 1;

	g[0].weight = 3;
	g[0].want = 768 * MiB;
	g[1].want = g[2].want = 300 * MiB;
	/* room for 512 MiB: the light guests give it, down to their want */
	CHECK(policy_admit(&p, g, 3, 0, 512 * MiB, req));
	CHECK(req[0] == 0 && req[1] && req[1] >= 300 * MiB);
	CHECK((768 + 640 + 640) * MiB - (640 * MiB - req[1]) -
	      (req[2] ? 640 * MiB - req[2] : 0) + 512 * MiB <= p.budget);
	/* room for 1 GiB: down to the mins, the heavy guest too if needed */
	CHECK(policy_admit(&p, g, 3, 0, 1024 * MiB, req));
	/* 2 GiB cannot be made: nothing changes */
	CHECK(!policy_admit(&p, g, 3, 0, 2048 * MiB, req));
	CHECK(!req[0] && !req[1] && !req[2]);
	report(ok, "admit: weight order, wants then mins, refusal changes nothing");
}

int main(void)
{
	printf("TAP version 13\n1..4\n");
	t_observe();
	t_allocate();
	t_step();
	t_admit();
	printf("# %d passed, %d failed\n", n_tests - failed, failed);
	return failed != 0;
}
