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
	bool gone;		/* its QEMU is gone: it holds nothing */
	bool known;		/* size and requested were read once */
	uint64_t size;		/* RAM now (QMP guest-size) */
	uint64_t requested;	/* requested-guest-size now */
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
 * The requested-guest-size to set this period for guest @i, or 0 for
 * "leave it": changes below the hysteresis are skipped (unless the guest is
 * under pressure and would grow), and growth is limited so that the sum
 * of max(size, requested) over all guests never exceeds the budget.
 */
uint64_t policy_step(const struct policy *p, const struct gstate *g, int n,
		     int i, uint64_t reserved);

/*
 * What guest @g may hold: max(size, requested) if it answered, even long
 * ago (a lost guest's QEMU still holds its memory); its max if it never
 * answered; 0 only once its QEMU is gone.
 */
uint64_t policy_held(const struct gstate *g);

/* Sum of policy_held() over the guests: what they may hold together. */
uint64_t policy_committed(const struct gstate *g, int n);

/*
 * The budget left once every guest but @skip (-1: none) holds what it
 * may hold and @reserved is set aside; 0 if there is none.  Every growth
 * and every reservation is checked against this, so that committed +
 * reserved never exceeds the budget.
 */
uint64_t policy_room(const struct policy *p, const struct gstate *g, int n,
		     int skip, uint64_t reserved);

/*
 * Admission of a new guest of @size bytes: the requested sizes that make
 * room, shrinking the others in weight order (lightest first) toward
 * their min, in @new_req (0: unchanged; never above a guest's requested
 * size).  False if the room cannot be made; then @new_req is all 0.
 */
bool policy_admit(const struct policy *p, const struct gstate *g, int n,
		  uint64_t reserved, uint64_t size, uint64_t *new_req);

/*
 * The reservations for guests not started yet.  @granted: admissions
 * answered "yes" whose guest was not added yet.  While an admission is
 * @pending, @asked is its size and @claimed the part of it the budget
 * already has free (the others are still shrinking).  Only the ledger_*
 * functions change these, and none of them can wrap:
 *   claimed <= asked, reserved = granted + claimed,
 *   committed + reserved <= budget whenever the guests hold what they
 *   were allowed to (policy_room() is the only source of room).
 */
struct ledger {
	uint64_t granted;
	uint64_t asked;
	uint64_t claimed;
	bool pending;
};

/* Bytes set aside now: the granted ones and what a pending one claimed. */
uint64_t ledger_reserved(const struct ledger *l);
/* Bytes no guest may grow into: the granted ones and all a pending one asks. */
uint64_t ledger_promised(const struct ledger *l);
/*
 * Start an admission of @size (see policy_admit): 0 and the shrinks to
 * make in @new_req, -EBUSY if one is pending, -ENOSPC if the room cannot
 * be made (nothing changes).  The caller sets the new requested sizes,
 * then calls ledger_update().
 */
int ledger_admit(const struct policy *p, struct ledger *l,
		 const struct gstate *g, int n, uint64_t size,
		 uint64_t *new_req);
/*
 * Claim for the pending admission what the budget has free now.  True
 * when that is all of it: the admission is then granted (answer "yes").
 */
bool ledger_update(const struct policy *p, struct ledger *l,
		   const struct gstate *g, int n);
/* The pending admission lapses (timeout, client gone): only its claim goes. */
void ledger_cancel(struct ledger *l);
/* The granted reservations lapse (no add used them in time): what they were. */
uint64_t ledger_expire(struct ledger *l);
/*
 * A guest of @size bytes joined: it uses that much of the reservations,
 * granted ones first, then the pending one.  Returns what was released.
 */
uint64_t ledger_release(struct ledger *l, uint64_t size);

#endif
