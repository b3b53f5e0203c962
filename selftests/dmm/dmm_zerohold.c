// SPDX-License-Identifier: GPL-2.0
/*
 * dmm_zerohold: hold memory that is allocated but zero, then prove it is
 * still the program's to read and write.
 *
 *   dmm_zerohold -s BYTES [-f FILE0] -w FILE
 *
 * Maps BYTES of anonymous memory, writes every page (so the host backs
 * it) and prints "filled"; with -f waits until FILE0 exists (the host
 * measures); then zeroes it all and prints "zeroed".  Then waits until FILE exists
 * (the host has meanwhile shared the zero pages), checks that every byte
 * still reads zero, writes a pattern over all of it and reads it back.
 * Prints TAP; exits 0 if all held.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest.h"

static uint64_t pattern(uint64_t i)
{
	return (i + 1) * 0x9e3779b97f4a7c15ULL;
}

static void wait_for(const char *file)
{
	while (access(file, F_OK))
		usleep(100000);
}

int main(int argc, char **argv)
{
	uint64_t size = 0, i, n, bad = 0;
	const char *file = NULL, *file0 = NULL;
	uint64_t *mem;
	int opt;

	while ((opt = getopt(argc, argv, "s:f:w:")) != -1) {
		switch (opt) {
		case 'f':
			file0 = optarg;
			break;
		case 's':
			size = strtoull(optarg, NULL, 0);
			break;
		case 'w':
			file = optarg;
			break;
		default:
			ksft_exit_fail_msg("usage: %s -s BYTES [-f FILE0] -w FILE\n",
					   argv[0]);
		}
	}
	if (!size || !file)
		ksft_exit_fail_msg("usage: %s -s BYTES [-f FILE0] -w FILE\n", argv[0]);
	ksft_print_header();
	ksft_set_plan(2);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED)
		ksft_exit_fail_msg("mmap of %llu bytes failed\n",
				   (unsigned long long)size);
	n = size / 8;
	for (i = 0; i < n; i++)
		mem[i] = pattern(i);
	printf("filled %llu bytes\n", (unsigned long long)size);
	fflush(stdout);
	if (file0)
		wait_for(file0);
	memset(mem, 0, size);
	printf("zeroed %llu bytes\n", (unsigned long long)size);
	fflush(stdout);
	wait_for(file);

	for (i = 0; i < n; i++)
		bad += mem[i] != 0;
	ksft_test_result(!bad, "%llu words read back zero (%llu not)\n",
			 (unsigned long long)n, (unsigned long long)bad);
	for (i = 0; i < n; i++)
		mem[i] = pattern(i);
	for (i = 0, bad = 0; i < n; i++)
		bad += mem[i] != pattern(i);
	ksft_test_result(!bad, "pattern written and read back (%llu bad)\n",
			 (unsigned long long)bad);
	ksft_finished();
}
