/* Scalars mod L = 2^252 + 27742317777372353535851937790883648493, as four 64-bit limbs. */
#ifndef ENGINE_ED25519_SCALAR_H
#define ENGINE_ED25519_SCALAR_H

#include <stdint.h>

typedef struct {
    uint64_t v[4];
} sc256;

/* 1 iff the 256-bit little-endian integer s is below L (ZIP-215: S must be canonical). */
int engine_sc_is_canonical(const uint8_t s[32]);
/* r = (64-byte little-endian integer) mod L. */
void engine_sc_reduce512(sc256 *r, const uint8_t in[64]);
/* r = a * b mod L, for any a, b below 2^256. */
void engine_sc_mul(sc256 *r, const sc256 *a, const sc256 *b);
/* r = a + b mod L, for a, b below L. */
void engine_sc_add(sc256 *r, const sc256 *a, const sc256 *b);
void engine_sc_from_bytes(sc256 *r, const uint8_t s[32]);

#endif
