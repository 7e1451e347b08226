/* Montgomery multiplication mod the SM2 prime in x86-64 assembly with mulx and the two carry
 * chains of adcx / adox (BMI2 + ADX), for the file compiled for those CPUs (sm2_avx2.c).
 *
 * Same algorithm as mont_mul_p in sm2_field.h (operand scanning, one row a * b[i] at a time,
 * each followed by the multiplication-free reduction step q (2^192 - 2^160 - 2^32 + 1)); the C
 * version leaves GCC shuffling carries through registers and the stack, this one keeps the six
 * accumulator limbs in registers and renames them row by row instead of moving them.
 */
#ifndef ENGINE_SM2_FIELD_ADX_H
#define ENGINE_SM2_FIELD_ADX_H

#if defined(__x86_64__)

#include "sm2/sm2_field.h"

#define SM2_OP(name) "%[" #name "]"
#define SM2_OPK(name) "%k[" #name "]"

/* acc (A0..A4, A4 a carry bit) += a * b[i]; A5 receives the top carry. */
#define SM2_ROW(off, A0, A1, A2, A3, A4, A5)                                              \
    "movq " #off "(%[b]), %%rdx\n\t"                                                      \
    "xorl " SM2_OPK(A5) ", " SM2_OPK(A5) "\n\t"                                         \
    "mulxq 0(%[a]), %[x], %[y]\n\t"                                                       \
    "adoxq %[x], " SM2_OP(A0) "\n\t"                                                      \
    "adcxq %[y], " SM2_OP(A1) "\n\t"                                                      \
    "mulxq 8(%[a]), %[x], %[y]\n\t"                                                       \
    "adoxq %[x], " SM2_OP(A1) "\n\t"                                                      \
    "adcxq %[y], " SM2_OP(A2) "\n\t"                                                      \
    "mulxq 16(%[a]), %[x], %[y]\n\t"                                                      \
    "adoxq %[x], " SM2_OP(A2) "\n\t"                                                      \
    "adcxq %[y], " SM2_OP(A3) "\n\t"                                                      \
    "mulxq 24(%[a]), %[x], %[y]\n\t"                                                      \
    "adoxq %[x], " SM2_OP(A3) "\n\t"                                                      \
    "adcxq %[y], " SM2_OP(A4) "\n\t"                                                      \
    "adoxq " SM2_OP(A5) ", " SM2_OP(A4) "\n\t"                                            \
    "adcxq " SM2_OP(A5) ", " SM2_OP(A5) "\n\t"                                            \
    "movl $0, %k[x]\n\t"                                                                  \
    "adoxq %[x], " SM2_OP(A5) "\n\t"

/* acc (A0..A5) + A0 p, shifted down one limb into A1..A5 (A0 becomes free):
 * u = q (2^192 - 2^160 - 2^32 + 1) = (q, 0, 0, q) - (q << 32, q >> 32, q << 32, q >> 32). */
#define SM2_REDUCE(A0, A1, A2, A3, A4, A5)                                                \
    "movq " SM2_OP(A0) ", %[x]\n\t"                                                       \
    "shlq $32, %[x]\n\t"                                                                  \
    "movq " SM2_OP(A0) ", %[y]\n\t"                                                       \
    "shrq $32, %[y]\n\t"                                                                  \
    "movq " SM2_OP(A0) ", %[z]\n\t"                                                       \
    "movl $0, %%edx\n\t"                                                                  \
    "movl $0, %k[w]\n\t"                                                                  \
    "subq %[x], %[z]\n\t"                                                                 \
    "sbbq %[y], %%rdx\n\t"                                                                \
    "sbbq %[x], %[w]\n\t"                                                                 \
    "sbbq %[y], " SM2_OP(A0) "\n\t"                                                       \
    "addq %[z], " SM2_OP(A1) "\n\t"                                                       \
    "adcq %%rdx, " SM2_OP(A2) "\n\t"                                                      \
    "adcq %[w], " SM2_OP(A3) "\n\t"                                                       \
    "adcq " SM2_OP(A0) ", " SM2_OP(A4) "\n\t"                                             \
    "adcq $0, " SM2_OP(A5) "\n\t"

static inline void mont_mul_p_adx(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t r0, r1, r2, r3, r4, r5, x, y, z, w;
    __asm__(
        /* row 0: (r0..r4) = a * b[0], r5 = 0 */
        "movq 0(%[b]), %%rdx\n\t"
        "mulxq 0(%[a]), %[r0], %[r1]\n\t"
        "mulxq 8(%[a]), %[x], %[r2]\n\t"
        "addq %[x], %[r1]\n\t"
        "mulxq 16(%[a]), %[x], %[r3]\n\t"
        "adcq %[x], %[r2]\n\t"
        "mulxq 24(%[a]), %[x], %[r4]\n\t"
        "adcq %[x], %[r3]\n\t"
        "adcq $0, %[r4]\n\t"
        "xorl %k[r5], %k[r5]\n\t"
        SM2_REDUCE(r0, r1, r2, r3, r4, r5)
        SM2_ROW(8, r1, r2, r3, r4, r5, r0)
        SM2_REDUCE(r1, r2, r3, r4, r5, r0)
        SM2_ROW(16, r2, r3, r4, r5, r0, r1)
        SM2_REDUCE(r2, r3, r4, r5, r0, r1)
        SM2_ROW(24, r3, r4, r5, r0, r1, r2)
        SM2_REDUCE(r3, r4, r5, r0, r1, r2)
        : [r0] "=&r"(r0), [r1] "=&r"(r1), [r2] "=&r"(r2), [r3] "=&r"(r3), [r4] "=&r"(r4),
          [r5] "=&r"(r5), [x] "=&r"(x), [y] "=&r"(y), [z] "=&r"(z), [w] "=&r"(w)
        : [a] "r"(a), [b] "r"(b), "m"(*(const uint64_t(*)[4])a), "m"(*(const uint64_t(*)[4])b)
        : "rdx", "cc");
    /* the product is r4, r5, r0, r1 with r2 its carry bit */
    uint64_t t[4] = {r4, r5, r0, r1};
    sm2_reduce_once(r, t, r2, SM2_P_LIMBS);
}

#undef SM2_ROW
#undef SM2_REDUCE
#undef SM2_OP
#undef SM2_OPK

#endif
#endif
