/* SM2 internals shared by the ISA files, the dispatcher, the key cache and the API (sm2.c).
 *
 * The verifier computes R = [s]G + [t]P in Jacobian coordinates over the Montgomery field of
 * sm2_field.h and accepts when (e + x(R)) mod n == r, without converting R to affine: x(R) is
 * X / Z^2, and (e + x) mod n == r holds exactly when x is c = (r - e) mod n or c + n (x < p < 2n),
 * so X is compared with c Z^2 and (c + n) Z^2.
 *
 * The comb table holds the odd multiples (2j+1) 2^(8i) G, j < 128, of 32 positions i (256 KiB,
 * built once), and 2^256 G. The lane kernels use it as a fixed-base comb: s (made odd by
 * replacing it with n - s and negating the result) is written in 32 signed odd radix-2^8 digits
 * plus a final 1 (the regular recoding of Joye and Tunstall), so [s]G = 2^256 G + sum d_i 2^(8i) G
 * is 33 mixed additions. [t]P uses width-5 NAF digits over odd multiples 1P..15P; a key seen
 * twice (sm2.c, find_key) also keeps those multiples of 2^64 P, 2^128 P and 2^192 P, so that the
 * four quarters of t share 64 doublings instead of 256 (Straus). The scalar check (sm2_core.h)
 * puts [s]G into the same loop: s in width-9 NAF, each chunk's digits read from the comb
 * position holding its 2^(64 k) G (or G alone for one chunk), about 26 additions instead of 33.
 */
#ifndef ENGINE_SM2_IMPL_H
#define ENGINE_SM2_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "sm2/sm2_field.h"

typedef struct {
    uint64_t x[4], y[4];
} sm2_aff;

typedef struct {
    uint64_t x[4], y[4], z[4]; /* Z == 0: the point at infinity */
} sm2_jac;

#define SM2_WNAF_WIDTH 5
#define SM2_WNAF_POINTS 8 /* odd multiples 1..15 */
#define SM2_KEY_CHUNKS_MAX 4
#define SM2_COMB_POSITIONS 32
#define SM2_COMB_POINTS 128

/* User IDs up to this long have their Z_A kept in the key cache. */
#define SM2_UID_CACHED_MAX 64

/* A decoded, validated public key with the tables [t]P needs (`chunks` quarters, 1 or 4), and
 * Z_A for one user ID when has_z. */
typedef struct {
    uint8_t pk[64];
    int chunks;
    int has_z;
    size_t uid_len;
    uint8_t uid[SM2_UID_CACHED_MAX];
    uint8_t z[32];
    sm2_aff table[SM2_KEY_CHUNKS_MAX * SM2_WNAF_POINTS];
} sm2_key;

static const sm2_modulus SM2_P = {
    {0xffffffffffffffffULL, 0xffffffff00000000ULL, 0xffffffffffffffffULL, 0xfffffffeffffffffULL},
    0x0000000000000001ULL,
    {0x0000000200000003ULL, 0x00000002ffffffffULL, 0x0000000100000001ULL, 0x0000000400000002ULL},
    {0x0000000000000001ULL, 0x00000000ffffffffULL, 0x0000000000000000ULL, 0x0000000100000000ULL},
};

static const sm2_modulus SM2_N = {
    {0x53bbf40939d54123ULL, 0x7203df6b21c6052bULL, 0xffffffffffffffffULL, 0xfffffffeffffffffULL},
    0x327f9e8872350975ULL,
    {0x901192af7c114f20ULL, 0x3464504ade6fa2faULL, 0x620fc84c3affe0d4ULL, 0x1eb5e412a22b3d3bULL},
    {0xac440bf6c62abeddULL, 0x8dfc2094de39fad4ULL, 0x0000000000000000ULL, 0x0000000100000000ULL},
};

/* b in Montgomery form (a = -3 is built into the formulas). */
static const uint64_t SM2_B_MONT[4] = {0x90d230632bc0dd42ULL, 0x71cf379ae9b537abULL,
                                       0x527981505ea51c3cULL, 0x240fe188ba20e2c8ULL};
/* The base point G (plain integers). */
static const uint64_t SM2_GX[4] = {0x715a4589334c74c7ULL, 0x8fe30bbff2660be1ULL,
                                   0x5f9904466a39c994ULL, 0x32c4ae2c1f198119ULL};
static const uint64_t SM2_GY[4] = {0x02df32e52139f0a0ULL, 0xd0a9877cc62a4740ULL,
                                   0x59bdcee36b692153ULL, 0xbc3736a2f4f6779cULL};

/* The comb table (odd multiples of 2^(8i) G, affine, Montgomery form) and 2^256 G; built once
 * by engine_sm2_tables_init() before any kernel runs. */
extern sm2_aff engine_sm2_comb[SM2_COMB_POSITIONS][SM2_COMB_POINTS];
extern sm2_aff engine_sm2_comb_top;
void engine_sm2_tables_init(void);

/* One ISA's curve arithmetic. key_build validates pk (x || y, both < p, on the curve) and fills
 * key->table for `chunks` quarters (1 or 4); returns 1, or 0 for an invalid key. check returns
 * the verdict for R = [s]G + [t]P against c = (r - e) mod n (s, t in [1, n-1]). */
/* One lane of the eight-lane check: s, t in [1, n-1], c = (r - e) mod n. */
typedef struct {
    uint64_t s[4], t[4], c[4];
} sm2x8_job;

/* The lane kernels: eight lanes on AVX-512 IFMA (sm2_avx512.c), four on AVX2 (sm2_avx2x4.c);
 * sm2_core.lanes says how many. keys8 decodes and validates up to `lanes` keys side by side,
 * filling keys[l] with the one-quarter table and setting ok[l]; check8 runs the checks of count
 * (1..lanes) lanes whose keys share `chunks`, verdict[l] 1, 0, or -1 when the lane met an
 * exceptional addition (or R at infinity) and must be redone by `check`. check8 returns 0, or
 * -1 when it cannot run (no memory for its table); both NULL on the portable path. The arrays
 * are sized for eight whatever the lane count. */
typedef int (*sm2_keys8_fn)(sm2_key *const keys[8], const uint8_t *const pks[8], int count,
                            uint8_t ok[8]);
typedef int (*sm2_check8_fn)(const sm2_key *const keys[8], const sm2x8_job *jobs, int count,
                             int8_t verdict[8]);

typedef struct {
    int (*key_build)(sm2_key *key, const uint8_t pk[64], int chunks);
    int (*check)(const sm2_key *key, const uint64_t s[4], const uint64_t t[4],
                 const uint64_t c[4]);
    int isa;
    sm2_keys8_fn keys8;
    sm2_check8_fn check8;
    int lanes; /* 8, 4, or 0 without lane kernels */
    /* Any number of new keys at once, sharing one lane inversion (AVX2 path; NULL elsewhere):
     * as keys8 otherwise; returns 0, or -1 when it cannot run (no memory). */
    int (*keys_many)(sm2_key *const keys[], const uint8_t *const pks[], int count, uint8_t ok[]);
} sm2_core;

int engine_sm2_key_build_portable(sm2_key *key, const uint8_t pk[64], int chunks);
int engine_sm2_check_portable(const sm2_key *key, const uint64_t s[4], const uint64_t t[4],
                              const uint64_t c[4]);
int engine_sm2_key_build_avx2(sm2_key *key, const uint8_t pk[64], int chunks);
int engine_sm2_check_avx2(const sm2_key *key, const uint64_t s[4], const uint64_t t[4],
                          const uint64_t c[4]);

int engine_sm2_keys8_avx512(sm2_key *const keys[8], const uint8_t *const pks[8], int count,
                            uint8_t ok[8]);
int engine_sm2_check8_avx512(const sm2_key *const keys[8], const sm2x8_job *jobs, int count,
                             int8_t verdict[8]);
int engine_sm2_keys4_avx2(sm2_key *const keys[8], const uint8_t *const pks[8], int count,
                          uint8_t ok[8]);
int engine_sm2_check4_avx2(const sm2_key *const keys[8], const sm2x8_job *jobs, int count,
                           int8_t verdict[8]);
int engine_sm2_keys_many_avx2(sm2_key *const keys[], const uint8_t *const pks[], int count,
                              uint8_t ok[]);
/* Test hook: one lane field operation on four plain integers (sm2_avx2x4.c). */
int engine_sm2_field4_avx2(int op, const uint64_t a[4][4], const uint64_t b[4][4],
                           uint64_t out[4][4]);
/* Test hook: one lane field operation on eight plain integers (sm2_avx512.c). */
int engine_sm2_field8_avx512(int op, const uint64_t a[8][4], const uint64_t b[8][4],
                             uint64_t out[8][4]);

sm2_core engine_sm2_core(void);

/* Test hook (sm2_avx2.c): the BMI2/ADX field code against the C code; wrong results. */
int engine_sm2_selftest_avx2(uint64_t seed, long iterations);

/* Key cache (sm2_cache.c): copies a cached key into *out; 1 on a hit. */
int engine_sm2_cache_get(const uint8_t pk[64], sm2_key *out);
void engine_sm2_cache_put(const sm2_key *key);
int engine_sm2_cache_enabled(void);

#endif
