// SPDX-License-Identifier: BSD-3-Clause
/*
 * virtio-dmm device library: XXH64, the hash of duplicate hints, written
 * out here so that the library needs nothing but the C library.
 */
#include "dmm_internal.h"

#define XXH_P1 0x9E3779B185EBCA87ULL
#define XXH_P2 0xC2B2AE3D27D4EB4FULL
#define XXH_P3 0x165667B19E3779F9ULL
#define XXH_P4 0x85EBCA77C2B2AE63ULL
#define XXH_P5 0x27D4EB2F165667C5ULL

static uint64_t xxh_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    return xxh_rotl(acc + input * XXH_P2, 31) * XXH_P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
    return (acc ^ xxh_round(0, v)) * XXH_P1 + XXH_P4;
}

/* XXH64 as its specification defines it (little-endian input words). */
uint64_t dmm_xxh64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data, *end = p + len;
    uint64_t h, v[4];

    if (len >= 32) {
        v[0] = seed + XXH_P1 + XXH_P2;
        v[1] = seed + XXH_P2;
        v[2] = seed;
        v[3] = seed - XXH_P1;
        for (; end - p >= 32; p += 32) {
            v[0] = xxh_round(v[0], dmm_le64(p));
            v[1] = xxh_round(v[1], dmm_le64(p + 8));
            v[2] = xxh_round(v[2], dmm_le64(p + 16));
            v[3] = xxh_round(v[3], dmm_le64(p + 24));
        }
        h = xxh_rotl(v[0], 1) + xxh_rotl(v[1], 7) + xxh_rotl(v[2], 12) +
            xxh_rotl(v[3], 18);
        h = xxh_merge(xxh_merge(xxh_merge(xxh_merge(h, v[0]), v[1]), v[2]),
                      v[3]);
    } else {
        h = seed + XXH_P5;
    }
    h += len;
    for (; end - p >= 8; p += 8) {
        h = xxh_rotl(h ^ xxh_round(0, dmm_le64(p)), 27) * XXH_P1 + XXH_P4;
    }
    if (end - p >= 4) {
        h = xxh_rotl(h ^ (uint64_t)dmm_le32(p) * XXH_P1, 23) * XXH_P2 + XXH_P3;
        p += 4;
    }
    for (; p < end; p++) {
        h = xxh_rotl(h ^ *p * XXH_P5, 11) * XXH_P1;
    }
    h ^= h >> 33;
    h *= XXH_P2;
    h ^= h >> 29;
    h *= XXH_P3;
    h ^= h >> 32;
    return h;
}
