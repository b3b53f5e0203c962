// SPDX-License-Identifier: GPL-2.0
/* Unit tests of the balancer's policy (policy.c).  Prints TAP. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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
	/* a gone guest gets nothing; a reservation is kept free */
	g[2].alive = false;
	g[2].gone = true;
	CHECK(policy_allocate(&p, g, 3, 512 * MiB));
	CHECK(g[2].target == 0 && g[0].target + g[1].target <= 1536 * MiB);
	/* a lost one gets nothing but keeps what it holds */
	g[2].gone = false;
	g[2].known = true;
	CHECK(policy_allocate(&p, g, 3, 0));
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

/* Issue 13 (1): a lost guest keeps counting until its QEMU is gone. */
static void t_lost(void)
{
	struct policy p = pol(6144 * MiB);
	struct gstate g[2] = { guest(3072 * MiB, 0), guest(3072 * MiB, 0) };
	int ok = 1;

	g[0].known = g[1].known = true;
	g[1].requested = 2048 * MiB;		/* shrinking, not done */
	g[1].alive = false;			/* then lost */
	CHECK(policy_held(&g[1]) == 3072 * MiB);
	CHECK(policy_committed(g, 2) == 6144 * MiB);
	g[0].target = 6144 * MiB - 256 * MiB;
	CHECK(!policy_step(&p, g, 2, 0, 0));	/* nothing to grow into */
	CHECK(!policy_room(&p, g, 2, -1, 0));
	/* never answered: its max */
	g[1].known = false;
	g[1].max = 4096 * MiB;
	CHECK(policy_held(&g[1]) == 4096 * MiB);
	/* its QEMU is gone: nothing */
	g[1].gone = true;
	CHECK(policy_held(&g[1]) == 0);
	CHECK(policy_step(&p, g, 2, 0, 0) == 6144 * MiB - 256 * MiB);
	report(ok, "lost guests hold max(size, requested), or max, until gone");
}

/* Issue 13 (2): admit shrinks others, never raises a requested size. */
static void t_admit_no_raise(void)
{
	struct policy p = pol(2048 * MiB);
	struct gstate g[2] = { guest(1024 * MiB, 0), guest(1024 * MiB, 0) };
	uint64_t req[2];
	int ok = 1;

	g[0].want = g[1].want = 256 * MiB;
	g[0].requested = 256 * MiB;		/* shrinking from 1 GiB */
	CHECK(policy_admit(&p, g, 2, 0, 512 * MiB, req));
	CHECK(!req[0] || req[0] < g[0].requested);
	CHECK(!req[1] || req[1] < g[1].requested);
	report(ok, "admit: never raises a guest's requested size");
}

/*
 * Issue 13 (2): admit pending, an add uses part of it, then the client
 * goes away: nothing wraps, only the claim lapses.
 */
static void t_ledger(void)
{
	struct policy p = pol(6144 * MiB);
	struct gstate g[3] = { guest(3072 * MiB, 0), guest(3072 * MiB, 0),
			       { .gone = true } };
	struct ledger l = { 0 };
	uint64_t req[3], req2[3];
	int ok = 1;

	g[0].want = g[1].want = 512 * MiB;
	CHECK(!ledger_admit(&p, &l, g, 3, 4096 * MiB, req));
	CHECK(ledger_admit(&p, &l, g, 3, 512 * MiB, req2) == -EBUSY);
	CHECK(ledger_promised(&l) == 4096 * MiB && ledger_reserved(&l) == 0);
	g[0].requested = req[0] ? req[0] : g[0].requested;
	g[1].requested = req[1] ? req[1] : g[1].requested;
	g[0].size = g[0].requested;		/* part of it given back */
	CHECK(!ledger_update(&p, &l, g, 3));
	CHECK(ledger_reserved(&l) + policy_committed(g, 3) <= p.budget);
	CHECK(ledger_reserved(&l) > 0);
	/* a guest of 512 MiB joins on that claim */
	g[2] = guest(512 * MiB, 0);
	CHECK(ledger_release(&l, 512 * MiB) == 512 * MiB);
	CHECK(ledger_reserved(&l) + policy_committed(g, 3) <= p.budget);
	ledger_cancel(&l);			/* the client went away */
	CHECK(ledger_reserved(&l) == 0 && ledger_promised(&l) == 0);
	CHECK(policy_committed(g, 3) <= p.budget);
	/* granted, then used by adds larger than it: nothing wraps */
	l.granted = 100 * MiB;
	CHECK(ledger_release(&l, 512 * MiB) == 100 * MiB && !l.granted);
	report(ok, "ledger: pending admission, partial add, disconnect");
}

/* xorshift64*: deterministic, seeded */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (rng * 2685821657736338717ULL) % n;
}

#define RN 8

/*
 * Issue 13 (2): random control commands (admit, add, remove, admission
 * timeout or disconnect), periods, and peer failures (lost guests,
 * guests whose QEMU exits, a qom-set that times out but was applied,
 * huge reports, guests that do not shrink), against policy.c as the
 * daemon drives it.  After every step: what the guests really hold plus
 * the reservations is within the budget, the balancer's view never counts
 * less than they really hold, and no ledger field wrapped.
 */
static void t_random(void)
{
	struct policy p = pol(8192 * MiB);
	struct { bool present, stubborn; uint64_t size, requested; } t[RN];
	struct gstate g[RN];
	struct ledger l = { 0 };
	uint64_t req[RN], truth, size, r;
	long steps = 100000, step, bad = 0, n_admit = 0, n_yes = 0, n_add = 0;
	long n_cancel = 0;
	int ok = 1, i, k, pass;

	memset(t, 0, sizeof(t));
	for (i = 0; i < RN; i++)
		g[i] = (struct gstate){ .gone = true };
	for (i = 0; i < 4; i++) {
		t[i].present = true;
		t[i].size = t[i].requested = 1024 * MiB;
		g[i] = guest(1024 * MiB, 512 * MiB);
		g[i].known = true;
		g[i].max = 4096 * MiB;
	}
	for (step = 0; step < steps && bad < 5; step++) {
		k = (int)rnd(100);
		i = (int)rnd(RN);
		if (k < 8) {				/* admit SIZE */
			size = (1 + rnd(48)) * 64 * MiB;
			if (!ledger_admit(&p, &l, g, RN, size, req)) {
				n_admit++;
				for (r = 0; r < RN; r++)
					if (req[r] && g[r].alive)
						t[r].requested = g[r].requested =
							req[r];
			}
			n_yes += ledger_update(&p, &l, g, RN);
		} else if (k < 12) {			/* timeout, disconnect */
			n_cancel += l.pending;
			ledger_cancel(&l);
			if (rnd(8) == 0)		/* a grant nobody used */
				ledger_expire(&l);
		} else if (k < 20) {			/* add, on a reservation */
			size = ledger_reserved(&l) / p.granule * p.granule;
			if (t[i].present || g[i].alive || size < p.granule)
				continue;
			size = (1 + rnd(size / p.granule)) * p.granule;
			t[i].present = true;
			t[i].stubborn = false;
			t[i].size = t[i].requested = size;
			g[i] = guest(size, 0);
			g[i].known = true;
			g[i].min = 64 * MiB;
			g[i].max = size + rnd(4) * 1024 * MiB;
			g[i].weight = 1 + (unsigned int)rnd(3);
			ledger_release(&l, policy_held(&g[i]));
			n_add++;
		} else if (k < 24) {			/* remove (QEMU stopped) */
			t[i].present = false;
			g[i] = (struct gstate){ .gone = true };
		} else if (k < 32) {			/* lost, or QEMU exits */
			g[i].alive = false;
			if (rnd(3) == 0 && t[i].present) {
				t[i].present = false;
				g[i].gone = true;
			}
		} else if (k < 36) {			/* back */
			if (t[i].present && !g[i].alive && g[i].known) {
				g[i].alive = true;
				g[i].size = t[i].size;
				g[i].requested = t[i].requested;
			}
		} else if (k < 42) {			/* a guest that lies */
			g[i].available = rnd(2) ? UINT64_MAX : rnd(1ULL << 63);
			g[i].psi = rnd(2) ? 1e300 : 0;
			t[i].stubborn = rnd(2);
		} else {				/* a period */
			for (r = 0; r < RN; r++) {
				if (!t[r].present)
					continue;
				/* guests move toward requested, maybe not down */
				if (t[r].size < t[r].requested)
					t[r].size += rnd(t[r].requested -
							 t[r].size + 1);
				else if (!t[r].stubborn)
					t[r].size -= rnd(t[r].size -
							 t[r].requested + 1);
				if (g[r].alive) {
					g[r].size = t[r].size;
					g[r].requested = t[r].requested;
					policy_observe(&p, &g[r]);
				}
			}
			policy_allocate(&p, g, RN, ledger_promised(&l));
			for (pass = 0; pass < 2; pass++)
				for (r = 0; r < RN; r++) {
					size = policy_step(&p, g, RN, (int)r,
							   ledger_promised(&l));
					if (!size || (size < g[r].requested) !=
						     !pass)
						continue;
					t[r].requested = size;
					if (rnd(20) == 0) {
						/* timed out, but applied */
						if (size > g[r].requested)
							g[r].requested = size;
						g[r].alive = false;
					} else {
						g[r].requested = size;
					}
				}
			n_yes += ledger_update(&p, &l, g, RN);
		}
		for (truth = 0, r = 0; r < RN; r++)
			if (t[r].present)
				truth += t[r].size > t[r].requested ?
					 t[r].size : t[r].requested;
		if (truth + ledger_reserved(&l) > p.budget ||
		    policy_committed(g, RN) < truth ||
		    l.claimed > l.asked || ledger_reserved(&l) > p.budget ||
		    ledger_promised(&l) > p.budget) {
			printf("#   step %ld (action %d): truth %llu MiB view %llu reserved %llu granted %llu asked %llu claimed %llu budget %llu\n",
			       step, k, (unsigned long long)(truth / MiB),
			       (unsigned long long)(policy_committed(g, RN) /
						    MiB),
			       (unsigned long long)(ledger_reserved(&l) / MiB),
			       (unsigned long long)(l.granted / MiB),
			       (unsigned long long)(l.asked / MiB),
			       (unsigned long long)(l.claimed / MiB),
			       (unsigned long long)(p.budget / MiB));
			bad++;
		}
	}
	CHECK(!bad);
	printf("# random: %ld steps (%ld admissions started, %ld granted, %ld cancelled while pending, %ld adds), %ld violations\n",
	       step, n_admit, n_yes, n_cancel, n_add, bad);
	report(ok, "random commands and peer failures: committed + reserved <= budget at every step");
}

int main(void)
{
	printf("TAP version 13\n1..8\n");
	t_observe();
	t_allocate();
	t_step();
	t_admit();
	t_lost();
	t_admit_no_raise();
	t_ledger();
	t_random();
	printf("# %d passed, %d failed\n", n_tests - failed, failed);
	return failed != 0;
}
