/* SM2 signatures (GB/T 32918.2-2016, GM/T 0003.2-2012) on the recommended curve
 * (GB/T 32918.5, GM/T 0003.5): verification (single and batches), Z_A, and the native parts of
 * signing. Pure functions over buffers; no Python here.
 *
 * Verification of (r, s) on message M under public key P (x || y, 64 bytes) and user ID:
 * r, s in [1, n-1]; Z = SM3(ENTL || ID || a || b || xG || yG || xP || yP); e = SM3(Z || M);
 * t = (r + s) mod n != 0; R = [s]G + [t]P not at infinity; accept iff (e + x(R)) mod n == r.
 * A key not on the curve (or with a coordinate >= p) is simply invalid: verdict 0.
 */
#ifndef ENGINE_SM2_H
#define ENGINE_SM2_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    ENGINE_SM2_OK = 0,
    ENGINE_SM2_ENOMEM = -1,
    ENGINE_SM2_EINVAL = -2,
    ENGINE_SM2_RETRY = -4, /* signing: this k gives r = 0, r + k = n or s = 0; take the next */
};

/* The longest user ID: ENTL counts its bits in 16 bits. */
#define ENGINE_SM2_UID_BYTES_MAX 8191

/* One signature to check; pk NULL marks an entry already known to be invalid (verdict 0). */
typedef struct {
    const uint8_t *pk;  /* 64 bytes x || y, big-endian */
    const uint8_t *sig; /* 64 bytes r || s, big-endian */
    const uint8_t *msg;
    size_t msg_len;
} engine_sm2_item;

/* 1 if valid, 0 if not. uid_len <= ENGINE_SM2_UID_BYTES_MAX (else 0). */
int engine_sm2_verify(const uint8_t pk[64], const uint8_t *uid, size_t uid_len,
                      const uint8_t *msg, size_t msg_len, const uint8_t sig[64]);

/* out[i] = verdict of items[i], all under one user ID; threads <= 0 means all CPUs. */
int engine_sm2_verify_items(const engine_sm2_item *items, size_t n, const uint8_t *uid,
                            size_t uid_len, uint8_t *out, int threads);

/* Z_A of a public key and user ID (no validation of the key). */
int engine_sm2_z(const uint8_t pk[64], const uint8_t *uid, size_t uid_len, uint8_t z[32]);

/* Public key x || y of private scalar d in [1, n-2] (EINVAL outside). Fixed-base
 * multiplication with masked table reads and no branches on d. */
int engine_sm2_public_key(const uint8_t d[32], uint8_t pk[64]);

/* Signature r || s of digest e = SM3(Z || M) with private d in [1, n-2] and nonce k in
 * [1, n-1]: r = (e + x([k]G)) mod n, s = (1 + d)^-1 (k - r d) mod n. ENGINE_SM2_RETRY when this
 * k is unusable. */
int engine_sm2_sign_digest(const uint8_t d[32], const uint8_t e[32], const uint8_t k[32],
                           uint8_t sig[64]);

/* The decompressed-key cache (keys with their multiplication tables and Z for one user ID).
 * Capacity 0 disables it. */
int engine_sm2_cache_set_capacity(size_t keys);
size_t engine_sm2_cache_capacity(void);
void engine_sm2_cache_stats(uint64_t *hits, uint64_t *misses, size_t *entries);
void engine_sm2_cache_clear(void);

/* Test hook: the curve check alone, R = [s]G + [t]P against c = (r - e) mod n (x(R) == c or
 * c + n), with the key's tables for `chunks` quarters (1 or 4); -1 for an invalid key. Lets the
 * tests reach x(R) >= n, which no real signature hits with a findable probability. With
 * scalar set, the scalar check runs even where lane kernels exist (otherwise one lane does). */
int engine_sm2_check_raw(const uint8_t pk[64], const uint8_t s[32], const uint8_t t[32],
                         const uint8_t c[32], int chunks, int scalar);

/* Test hook: the BMI2/ADX field arithmetic against the portable C on random and edge-case
 * inputs; the number of wrong results, or -1 when this build or CPU has no such path. */
int engine_sm2_selftest(uint64_t seed, long iterations);

/* Test hook: one operation of the AVX-512 IFMA lane field code on eight integers a[l], b[l]
 * (32 bytes each, little-endian, < 2^256): op 0 a b mod p, 1 a^2, 2 a + b, 3 a - b, 4 a^-1,
 * 5 -a, 6 a b 2^-260 mod p (a, b fed to the Montgomery product as they are). out[l] canonical,
 * little-endian. Ops 16..24: the AVX2 four-lane field (sm2_avx2x4.c, R = 2^261), run on lanes
 * 0..3 and 4..7: op 16 + k for k in 0..5 as above, 22 a b 2^-261 mod p (the limbs of a and b
 * fed to the product as they are), 23 the same with a + a and b + b unreduced (4 a b 2^-261),
 * 24 16 a, 25 ((a - b) + (3b - a)) 48 (a - 2b) through chained additions, 26 4 a b
 * with 4a left uncarried. -1 when the CPU has no such path. */
int engine_sm2_lane_field(int op, const uint8_t a[256], const uint8_t b[256], uint8_t out[256]);

/* Path choice: -1 = automatic, else an engine_isa the CPU supports. */
int engine_sm2_force_isa(int isa);
const char *engine_sm2_isa_name(void);

#ifdef __cplusplus
}
#endif

#endif
