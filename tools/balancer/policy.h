/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dmm-balancer: the policy (policy.c), free of I/O so that it can be
 * tested on its own.
 */
#ifndef DMM_BALANCER_POLICY_H
#define DMM_BALANCER_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define MiB (1ULL << 20)

/* Knobs of the policy (command line). */
struct policy {
	uint64_t budget;	/* bytes all guests may have together */
	double alpha;		/* smoothing of the working-set level, 0..1 */
	double beta;		/* smoothing of its trend, 0..1 */
	double horizon;		/* periods ahead the trend is projected */
	double headroom;	/* fraction of the demand added on top */
	uint64_t reserve;	/* bytes added on top of that */
	uint64_t hysteresis;	/* smallest change worth making */
	uint64_t granule;	/* sizes are multiples of this */
	double psi_high;	/* PSI some avg10 (%) that means pressure */
	uint64_t boost;		/* bytes added while under pressure */
};

/* What the policy knows of one guest. */
struct gstate {
	/* set by the admin */
	uint64_t min, max;
	unsigned int weight;
	/* observed this period */
	bool alive;		/* answered this period */
	uint64_t size;		/* RAM now (QMP size) */
	uint64_t requested;	/* requested-size now */
	uint64_t available;	/* the guest's latest report */
	double psi;		/* PSI some avg10, percent */
	uint64_t asked;		/* a forwarded request for this much, or 0 */
	/* the model */
	bool seeded;
	double level, trend;	/* smoothed used memory and its trend */
	uint64_t want;		/* what the model predicts it needs */
	uint64_t target;	/* what the allocation gives it */
};

/* Update @g's model with this period's observation; sets g->want. */
void policy_observe(const struct policy *p, struct gstate *g);

/*
 * Share the budget among @n guests (dead ones get nothing): everyone gets
 * its min, what is left goes to the wants in proportion to weight, never
 * above a guest's max.  Sets g->target.  @reserved bytes are promised to
 * a guest not yet started.  Returns false if even the mins do not fit.
 */
bool policy_allocate(const struct policy *p, struct gstate *g, int n,
		     uint64_t reserved);

/*
 * The requested-size to set this period for guest @i, or 0 for "leave
 * it": changes below the hysteresis are skipped (unless the guest is
 * under pressure and would grow), and growth is limited so that the sum
 * of max(size, requested) over all guests never exceeds the budget.
 */
uint64_t policy_step(const struct policy *p, const struct gstate *g, int n,
		     int i, uint64_t reserved);

/* Sum over live guests of max(size, requested): what they may hold. */
uint64_t policy_committed(const struct gstate *g, int n);

/*
 * Admission of a new guest of @size bytes: the requested sizes that make
 * room, shrinking the others in weight order (lightest first) toward
 * their min, in @new_req (0: unchanged).  False if the room cannot be
 * made; then @new_req is all 0.
 */
bool policy_admit(const struct policy *p, const struct gstate *g, int n,
		  uint64_t reserved, uint64_t size, uint64_t *new_req);

#endif
