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
 *
 * Accounting: a guest holds max(size, requested); one that stopped
 * answering keeps holding that (its QEMU still has the memory) until its
 * QEMU is gone.  Reservations for new guests are kept in a ledger; the
 * room anything may take is policy_room(), the one place that subtracts.
 */
#include <errno.h>
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

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Sums of sizes saturate: a wrap would read as room. */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
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
	uint64_t sum_min = reserved, left, extra, give;
	double wsum;
	bool done;
	int i;

	/* the mins of the live ones, what the others still hold */
	for (i = 0; i < n; i++) {
		g[i].target = g[i].alive ? g[i].min : 0;
		sum_min = add_sat(sum_min, g[i].alive ? g[i].min :
					   policy_held(&g[i]));
	}
	if (sum_min > p->budget)
		return false;
	left = p->budget - sum_min;
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

uint64_t policy_held(const struct gstate *g)
{
	if (g->alive)
		return max64(g->size, g->requested);
	if (g->gone)
		return 0;
	if (g->known)
		return max64(g->size, g->requested);
	return g->max;
}

uint64_t policy_committed(const struct gstate *g, int n)
{
	uint64_t sum = 0;
	int i;

	for (i = 0; i < n; i++)
		sum = add_sat(sum, policy_held(&g[i]));
	return sum;
}

uint64_t policy_room(const struct policy *p, const struct gstate *g, int n,
		     int skip, uint64_t reserved)
{
	uint64_t used = reserved;
	int i;

	for (i = 0; i < n; i++)
		if (i != skip)
			used = add_sat(used, policy_held(&g[i]));
	return used < p->budget ? p->budget - used : 0;
}

uint64_t policy_step(const struct policy *p, const struct gstate *g, int n,
		     int i, uint64_t reserved)
{
	const struct gstate *me = &g[i];
	uint64_t allowed, tgt = me->target;
	bool pressed = under_pressure(p, me);

	if (!me->alive || !tgt)
		return 0;
	if (tgt < me->requested)
		return me->requested - tgt >= p->hysteresis ? tgt : 0;
	if (tgt - me->requested < p->hysteresis && !(pressed &&
						     tgt > me->requested))
		return 0;
	/* what the others and the reservations leave, its own part included */
	allowed = round_down(policy_room(p, g, n, i, reserved), p->granule);
	if (!allowed)
		return 0;
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
			held = new_req[i] ? new_req[i] : policy_held(&g[i]);
			floor = to_min ? g[i].min : max64(g[i].want, g[i].min);
			floor = max64(round_up(floor, p->granule), p->granule);
			if (held <= floor)
				continue;
			take = round_up(need, p->granule);
			if (take > held - floor)
				take = held - floor;
			/*
			 * Never above its requested size: a guest still
			 * shrinking toward it gives that much anyway.
			 */
			new_req[i] = min64(held - take, g[i].requested);
			take = held - new_req[i];
			need = take >= need ? 0 : need - take;
		}
	}
	return need;
}

bool policy_admit(const struct policy *p, const struct gstate *g, int n,
		  uint64_t reserved, uint64_t size, uint64_t *new_req)
{
	uint64_t room = policy_room(p, g, n, -1, reserved), need;
	int i;

	for (i = 0; i < n; i++)
		new_req[i] = 0;
	if (size <= room)
		return true;
	need = size - room;
	need = admit_pass(p, g, n, need, false, new_req);
	need = admit_pass(p, g, n, need, true, new_req);
	for (i = 0; i < n; i++)
		if (need || new_req[i] >= g[i].requested)
			new_req[i] = 0;		/* no change */
	return !need;
}

uint64_t ledger_reserved(const struct ledger *l)
{
	return l->granted + l->claimed;
}

uint64_t ledger_promised(const struct ledger *l)
{
	return l->granted + (l->pending ? l->asked : 0);
}

int ledger_admit(const struct policy *p, struct ledger *l,
		 const struct gstate *g, int n, uint64_t size,
		 uint64_t *new_req)
{
	int i;

	for (i = 0; i < n; i++)
		new_req[i] = 0;
	if (l->pending)
		return -EBUSY;
	if (!size || size > p->budget ||
	    !policy_admit(p, g, n, l->granted, size, new_req))
		return -ENOSPC;
	l->pending = true;
	l->asked = size;
	l->claimed = 0;
	return 0;
}

bool ledger_update(const struct policy *p, struct ledger *l,
		   const struct gstate *g, int n)
{
	if (!l->pending)
		return false;
	l->claimed = min64(l->asked, policy_room(p, g, n, -1, l->granted));
	if (l->claimed < l->asked)
		return false;
	l->granted += l->asked;
	l->asked = 0;
	l->claimed = 0;
	l->pending = false;
	return true;
}

void ledger_cancel(struct ledger *l)
{
	l->pending = false;
	l->asked = 0;
	l->claimed = 0;
}

uint64_t ledger_expire(struct ledger *l)
{
	uint64_t was = l->granted;

	l->granted = 0;
	return was;
}

uint64_t ledger_release(struct ledger *l, uint64_t size)
{
	uint64_t from_granted = min64(size, l->granted), from_pending = 0;

	l->granted -= from_granted;
	if (l->pending) {
		from_pending = min64(size - from_granted, l->asked);
		l->asked -= from_pending;
		l->claimed -= min64(from_pending, l->claimed);
	}
	return from_granted + from_pending;
}
