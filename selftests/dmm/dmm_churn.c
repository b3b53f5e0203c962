// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_churn: a pattern checker that keeps memory moving, for stress runs
 * (scripts/stress-migrate.py).
 *
 * Three kinds of memory, checked until told to stop:
 *   held   -h BYTES  kept for the whole run; every pass checks each page
 *                    holds what the previous pass wrote, then writes the
 *                    next generation (a lost write shows as a page one or
 *                    more generations behind)
 *   zero   -z BYTES  written with zeros once and kept (the guest's zero
 *                    hints point the host at them); every pass checks they
 *                    are still zero
 *   churn  -c BYTES  each round maps up to BYTES, fills it with a pattern,
 *                    verifies it while held passes run, and frees it, then
 *                    rests for up to -i MS so that the kernel reports the
 *                    freed pages (free page reporting) and the host
 *                    discards them
 *
 *   -t SECONDS  run time (default: until the stop file exists)
 *   -w FILE     stop when FILE exists
 *   -p SEED     pattern seed (default: pid)
 *   -s SECONDS  print a status line every SECONDS (default 5)
 *
 * Every corrupted page is printed with its virtual and physical address
 * ("CORRUPT ..."); the last line is the totals:
 *   # churn totals: rounds R passes P pages-checked N corrupt-pages C
 * Exit status 0 if no page was corrupted, 1 otherwise (and on a bad
 * option or a failed mapping).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <time.h>
#include "dmm_util.h"

#define PAGE		4096UL
#define WORDS		(PAGE / 8)
#define MAX_PRINTS	200
#define K1		0x9E3779B97F4A7C15ULL
#define K2		0xC2B2AE3D27D4EB4FULL

static uint64_t seed;
static uint64_t corrupt, prints, checked;
static int pagemap_fd = -1;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Word @j of page @pg at generation @gen (held pages and churn rounds). */
static inline uint64_t pat(uint64_t pg, uint64_t gen, uint64_t j)
{
	return (seed ^ (pg << 24) ^ (gen * K1)) + j * K2;
}

static uint64_t phys(const void *va)
{
	uint64_t e;

	if (pagemap_fd < 0 ||
	    pread(pagemap_fd, &e, 8, (uintptr_t)va / PAGE * 8) != 8 ||
	    !(e >> 63))
		return 0;
	return (e & ((1ULL << 55) - 1)) * PAGE;
}

/* Which generation word 0 of page @pg looks like (~0 if none near). */
static uint64_t guess_gen(uint64_t pg, uint64_t w0, uint64_t gen)
{
	for (uint64_t g = gen + 1; g + 64 > gen && g != ~0ULL; g--)
		if (pat(pg, g, 0) == w0)
			return g;
	return ~0ULL;
}

static void report(const char *what, const uint64_t *p, uint64_t pg,
		   uint64_t gen, uint64_t j, uint64_t want)
{
	uint64_t g;

	corrupt++;
	if (prints++ >= MAX_PRINTS)
		return;
	g = guess_gen(pg, p[0], gen);
	printf("CORRUPT %s page %" PRIu64 " va=%p pa=0x%" PRIx64 " word %" PRIu64
	       " got 0x%016" PRIx64 " want 0x%016" PRIx64 " gen %" PRIu64,
	       what, pg, (void *)p, phys(p), j, p[j], want, gen);
	if (g != ~0ULL)
		printf(" (page holds gen %" PRIu64 ")", g);
	printf("\n");
	fflush(stdout);
}

/* Check held page @pg holds generation @gen, then write @gen + 1. */
static void held_page(uint64_t *p, uint64_t pg, uint64_t gen)
{
	for (uint64_t j = 0; j < WORDS; j++) {
		if (p[j] != pat(pg, gen, j)) {
			report("held", p, pg, gen, j, pat(pg, gen, j));
			break;
		}
	}
	for (uint64_t j = 0; j < WORDS; j++)
		p[j] = pat(pg, gen + 1, j);
	checked++;
}

static void zero_page(uint64_t *p, uint64_t pg)
{
	for (uint64_t j = 0; j < WORDS; j++) {
		if (p[j]) {
			report("zero", p, pg, 0, j, 0);
			break;
		}
	}
	checked++;
}

static void *map(uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		printf("# cannot map %" PRIu64 " bytes: %s\n", len,
		       strerror(errno));
		exit(1);
	}
	return p;
}

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	(void)sig;
	stop_sig = 1;
}

int main(int argc, char **argv)
{
	uint64_t held = 32 * MiB, zero = 16 * MiB, churn = 96 * MiB;
	uint64_t rest_ms = 3000, hgen = 0, rounds = 0, passes = 0;
	double run_for = 0, status_every = 5, t0, next_status;
	const char *stop_file = NULL;
	uint64_t *h, *z, *c = NULL, clen = 0, cgen = 0, cpos = 0;
	double rest_until = 0;
	bool resting = false;
	int opt;

	seed = getpid();
	while ((opt = getopt(argc, argv, "h:z:c:i:t:w:p:s:")) != -1) {
		switch (opt) {
		case 'h': held = strtoull(optarg, NULL, 0); break;
		case 'z': zero = strtoull(optarg, NULL, 0); break;
		case 'c': churn = strtoull(optarg, NULL, 0); break;
		case 'i': rest_ms = strtoull(optarg, NULL, 0); break;
		case 't': run_for = strtod(optarg, NULL); break;
		case 'w': stop_file = optarg; break;
		case 'p': seed = strtoull(optarg, NULL, 0); break;
		case 's': status_every = strtod(optarg, NULL); break;
		default:
			fprintf(stderr, "usage: %s [-h HELD] [-z ZERO] [-c CHURN] [-i REST_MS] [-t SECS] [-w STOPFILE] [-p SEED] [-s SECS]\n",
				argv[0]);
			return 1;
		}
	}
	held = (held + PAGE - 1) & ~(PAGE - 1);
	zero &= ~(PAGE - 1);
	churn &= ~(PAGE - 1);
	if (!held)
		held = PAGE;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	srand(seed);
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);

	h = map(held);
	for (uint64_t pg = 0; pg < held / PAGE; pg++)
		for (uint64_t j = 0; j < WORDS; j++)
			h[pg * WORDS + j] = pat(pg, 0, j);
	z = zero ? map(zero) : NULL;
	for (uint64_t i = 0; i < zero / 8; i += WORDS)
		((volatile uint64_t *)z)[i] = 0;	/* allocate, zero */
	printf("# churn: seed %" PRIu64 " held %" PRIu64 " MiB zero %" PRIu64
	       " MiB churn up to %" PRIu64 " MiB, rest up to %" PRIu64 " ms\n",
	       seed, held / MiB, zero / MiB, churn / MiB, rest_ms);

	t0 = now();
	next_status = t0 + status_every;
	while (!stop_sig) {
		double t = now();

		if ((run_for > 0 && t - t0 >= run_for) ||
		    (stop_file && !access(stop_file, F_OK)))
			break;
		/* one held pass and one zero pass per loop */
		for (uint64_t pg = 0; pg < held / PAGE; pg++)
			held_page(h + pg * WORDS, pg, hgen);
		hgen++;
		for (uint64_t pg = 0; pg < zero / PAGE; pg++)
			zero_page(z + pg * WORDS, pg);
		passes++;

		/* the churn: fill a bit of the chunk per loop, then verify
		 * it all, free it and rest */
		if (churn && !c && !resting) {
			clen = churn / 4 + (rand() % (churn / PAGE * 3 / 4 + 1)) *
			       PAGE;
			c = map(clen);
			cgen = rounds + 1;
			cpos = 0;
		}
		if (c) {
			uint64_t step = clen / 4, end;

			end = cpos + step > clen ? clen : cpos + step;
			for (; cpos < end; cpos += PAGE) {
				uint64_t *p = c + cpos / 8, pg = cpos / PAGE;

				for (uint64_t j = 0; j < WORDS; j++)
					p[j] = pat(pg, cgen, j);
			}
			if (cpos >= clen) {
				for (uint64_t off = 0; off < clen; off += PAGE) {
					uint64_t *p = c + off / 8;
					uint64_t pg = off / PAGE;

					for (uint64_t j = 0; j < WORDS; j++) {
						if (p[j] != pat(pg, cgen, j)) {
							report("churn", p, pg,
							       cgen, j,
							       pat(pg, cgen,
								   j));
							break;
						}
					}
					checked++;
				}
				munmap(c, clen);
				c = NULL;
				rounds++;
				resting = true;
				rest_until = now() + (rest_ms ?
					(rand() % (rest_ms + 1)) / 1000.0 : 0);
			}
		} else if (resting && now() >= rest_until) {
			resting = false;
		}
		if (resting)
			usleep(20000);
		if (status_every > 0 && now() >= next_status) {
			printf("# status: %.0f s rounds %" PRIu64 " passes %" PRIu64
			       " corrupt-pages %" PRIu64 "\n", now() - t0, rounds,
			       passes, corrupt);
			next_status = now() + status_every;
		}
	}
	/* a last check of what is held */
	for (uint64_t pg = 0; pg < held / PAGE; pg++)
		held_page(h + pg * WORDS, pg, hgen);
	for (uint64_t pg = 0; pg < zero / PAGE; pg++)
		zero_page(z + pg * WORDS, pg);
	printf("# churn totals: rounds %" PRIu64 " passes %" PRIu64
	       " pages-checked %" PRIu64 " corrupt-pages %" PRIu64 "\n",
	       rounds, passes, checked, corrupt);
	return corrupt ? 1 : 0;
}
