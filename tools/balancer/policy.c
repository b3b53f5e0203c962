// SPDX-License-Identifier: GPL-2.0
/*
 * dmm-balancer: predict each guest's demand and share the host budget.
 *
 * Demand: the memory a guest uses (its size minus what it reports
 * available), smoothed with Holt's linear method (a level and a trend), and
 * projected a few periods ahead; plus headroom, plus a boost while the
 * guest reports memory pressure (PSI), and at least what it asked for.
 *
 * Sharing: every guest gets its min; the rest of the budget goes to the
 * wants by weight, never above a guest's max.  Changes smaller than the
 * hysteresis are not made, so sizes do not oscillate; growth waits until
 * shrinking guests have given memory back, so the guests never hold more
 * than the budget together.
 */
#include <stdlib.h>

#include "policy.h"

static uint64_t round_up(uint64_t v, uint64_t g)
{
	return (v + g - 1) / g * g;
}

static uint64_t round_down(uint64_t v, uint64_t g)
{
	return v / g * g;
}

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static bool under_pressure(const struct policy *p, const struct gstate *g)
{
	return g->psi > p->psi_high || g->available < p->reserve / 2;
}

void policy_observe(const struct policy *p, struct gstate *g)
{
	double used = g->size > g->available ? (double)(g->size - g->available)
					     : 0;
	double prev, pred;
	uint64_t want;

	if (!g->seeded) {
		g->level = used;
		g->trend = 0;
		g->seeded = true;
	} else {
		prev = g->level;
		g->level = p->alpha * used + (1 - p->alpha) *
			   (g->level + g->trend);
		g->trend = p->beta * (g->level - prev) + (1 - p->beta) *
			   g->trend;
	}
	pred = g->level + g->trend * p->horizon;
	if (pred < used)
		pred = used;
	want = (uint64_t)(pred * (1 + p->headroom)) + p->reserve;
	if (under_pressure(p, g))
		want = max64(want, g->size + p->boost);
	want = max64(want, g->asked);
	g->want = round_up(clamp(want, g->min, g->max), p->granule);
	if (g->want > g->max)
		g->want = round_down(g->max, p->granule);
}

bool policy_allocate(const struct policy *p, struct gstate *g, int n,
		     uint64_t reserved)
{
	uint64_t sum_min = 0, left, extra, give;
	double wsum;
	bool done;
	int i;

	for (i = 0; i < n; i++) {
		g[i].target = g[i].alive ? g[i].min : 0;
		sum_min += g[i].target;
	}
	if (sum_min + reserved > p->budget)
		return false;
	left = p->budget - reserved - sum_min;
	/* water-filling: whoever wants less than its share gets all of it */
	do {
		done = true;
		wsum = 0;
		for (i = 0; i < n; i++)
			if (g[i].alive && g[i].target < g[i].want)
				wsum += g[i].weight;
		if (wsum == 0 || left < p->granule)
			break;
		for (i = 0; i < n; i++) {
			if (!g[i].alive || g[i].target >= g[i].want)
				continue;
			extra = g[i].want - g[i].target;
			give = (uint64_t)((double)left * g[i].weight / wsum);
			if (give >= extra) {
				g[i].target = g[i].want;
				left -= extra;
				done = false;	/* more for the others */
			}
		}
	} while (!done);
	/* nobody can be filled: everyone gets its share of what is left */
	if (wsum > 0) {
		uint64_t share_left = left;

		for (i = 0; i < n; i++) {
			if (!g[i].alive || g[i].target >= g[i].want)
				continue;
			give = round_down((uint64_t)((double)share_left *
						     g[i].weight / wsum),
					  p->granule);
			g[i].target += give;
			left -= give;
		}
	}
	for (i = 0; i < n; i++)
		g[i].target = round_down(g[i].target, p->granule);
	return true;
}

uint64_t policy_committed(const struct gstate *g, int n)
{
	uint64_t sum = 0;
	int i;

	for (i = 0; i < n; i++)
		if (g[i].alive)
			sum += max64(g[i].size, g[i].requested);
	return sum;
}

uint64_t policy_step(const struct policy *p, const struct gstate *g, int n,
		     int i, uint64_t reserved)
{
	const struct gstate *me = &g[i];
	uint64_t others, allowed, held, tgt = me->target;
	bool pressed = under_pressure(p, me);

	if (!me->alive || !tgt)
		return 0;
	if (tgt < me->requested)
		return me->requested - tgt >= p->hysteresis ? tgt : 0;
	if (tgt - me->requested < p->hysteresis && !(pressed &&
						     tgt > me->requested))
		return 0;
	held = max64(me->size, me->requested);
	others = policy_committed(g, n) - held;
	if (others + reserved >= p->budget)
		return 0;
	allowed = round_down(p->budget - reserved - others, p->granule);
	if (tgt > allowed)
		tgt = allowed;
	return tgt > me->requested && tgt >= me->size ? tgt : 0;
}

/*
 * Shrink guests in weight order (lightest first), down to what they want
 * (or, with @to_min, down to their min), until @need bytes are found.
 * Returns what is still missing.
 */
static uint64_t admit_pass(const struct policy *p, const struct gstate *g,
			   int n, uint64_t need, bool to_min, uint64_t *new_req)
{
	unsigned int w, wmax = 0;
	uint64_t held, floor, take;
	int i;

	for (i = 0; i < n; i++)
		if (g[i].alive && g[i].weight > wmax)
			wmax = g[i].weight;
	for (w = 0; w <= wmax && need; w++) {
		for (i = 0; i < n && need; i++) {
			if (!g[i].alive || g[i].weight != w)
				continue;
			held = new_req[i] ? new_req[i] :
			       max64(g[i].size, g[i].requested);
			floor = to_min ? g[i].min : max64(g[i].want, g[i].min);
			floor = round_up(floor, p->granule);
			if (held <= floor)
				continue;
			take = round_up(need, p->granule);
			if (take > held - floor)
				take = held - floor;
			new_req[i] = held - take;
			need = take >= need ? 0 : need - take;
		}
	}
	return need;
}

bool policy_admit(const struct policy *p, const struct gstate *g, int n,
		  uint64_t reserved, uint64_t size, uint64_t *new_req)
{
	uint64_t committed = policy_committed(g, n) + reserved, need;
	int i;

	for (i = 0; i < n; i++)
		new_req[i] = 0;
	if (committed + size <= p->budget)
		return true;
	need = committed + size - p->budget;
	need = admit_pass(p, g, n, need, false, new_req);
	need = admit_pass(p, g, n, need, true, new_req);
	if (!need)
		return true;
	for (i = 0; i < n; i++)
		new_req[i] = 0;
	return false;
}
