/* Montgomery multiplication mod the SM2 prime in x86-64 assembly with mulx and the two carry
 * chains of adcx / adox (BMI2 + ADX), for the file compiled for those CPUs (sm2_avx2.c); also
 * the sum, the difference and the final conditional subtraction, with cmov (GCC compiles the
 * C forms' masked selections through SSE registers, about three times slower in a chain).
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

/* r = (hi:t) - p when that is not below zero, else t, for hi:t < 2p (hi a carry bit): the
 * subtraction's borrow and hi decide, and cmov picks (the C form selects with masks). */
static inline void reduce_once_p_adx(uint64_t r[4], uint64_t t0, uint64_t t1, uint64_t t2,
                                     uint64_t t3, uint64_t hi) {
    uint64_t u0, u1, u2, u3, p1, p3;
    __asm__(
        "movabsq $0xffffffff00000000, %[p1]\n\t"
        "movabsq $0xfffffffeffffffff, %[p3]\n\t"
        "movq %[t0], %[u0]\n\t"
        "movq %[t1], %[u1]\n\t"
        "movq %[t2], %[u2]\n\t"
        "movq %[t3], %[u3]\n\t"
        "subq $-1, %[u0]\n\t"
        "sbbq %[p1], %[u1]\n\t"
        "sbbq $-1, %[u2]\n\t"
        "sbbq %[p3], %[u3]\n\t"
        /* hi - borrow: no borrow when t >= p or hi is set (both cannot hold: hi:t < 2p) */
        "sbbq $0, %[hi]\n\t"
        "cmovncq %[u0], %[t0]\n\t"
        "cmovncq %[u1], %[t1]\n\t"
        "cmovncq %[u2], %[t2]\n\t"
        "cmovncq %[u3], %[t3]\n\t"
        : [t0] "+r"(t0), [t1] "+r"(t1), [t2] "+r"(t2), [t3] "+r"(t3), [hi] "+r"(hi),
          [u0] "=&r"(u0), [u1] "=&r"(u1), [u2] "=&r"(u2), [u3] "=&r"(u3), [p1] "=&r"(p1),
          [p3] "=&r"(p3)
        :
        : "cc");
    r[0] = t0;
    r[1] = t1;
    r[2] = t2;
    r[3] = t3;
}

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
    reduce_once_p_adx(r, r4, r5, r0, r1, r2);
}


/* r = a + b mod p, inputs < p. Eleven registers (sanitizer builds leave no more): the input
 * pointers are reused once read, a for the sum's carry, b for the constant limbs of p. */
static inline void mod_add_p_adx(uint64_t r[4], const uint64_t a_in[4], const uint64_t b_in[4]) {
    uint64_t t0, t1, t2, t3, u0, u1, u2, u3;
    const uint64_t *a = a_in, *b = b_in;
    __asm__(
        "movq 0(%[a]), %[t0]\n\t"
        "movq 8(%[a]), %[t1]\n\t"
        "movq 16(%[a]), %[t2]\n\t"
        "movq 24(%[a]), %[t3]\n\t"
        "addq 0(%[b]), %[t0]\n\t"
        "adcq 8(%[b]), %[t1]\n\t"
        "adcq 16(%[b]), %[t2]\n\t"
        "adcq 24(%[b]), %[t3]\n\t"
        "sbbq %[a], %[a]\n\t" /* -carry */
        "movq %[t0], %[u0]\n\t"
        "movq %[t1], %[u1]\n\t"
        "movq %[t2], %[u2]\n\t"
        "movq %[t3], %[u3]\n\t"
        /* u = t - p (mod 2^256); movabs leaves the flags alone */
        "subq $-1, %[u0]\n\t"
        "movabsq $0xffffffff00000000, %[b]\n\t"
        "sbbq %[b], %[u1]\n\t"
        "sbbq $-1, %[u2]\n\t"
        "movabsq $0xfffffffeffffffff, %[b]\n\t"
        "sbbq %[b], %[u3]\n\t"
        /* -carry - borrow: no borrow when the sum carried or t >= p (never both): take u */
        "sbbq $0, %[a]\n\t"
        "cmovncq %[u0], %[t0]\n\t"
        "cmovncq %[u1], %[t1]\n\t"
        "cmovncq %[u2], %[t2]\n\t"
        "cmovncq %[u3], %[t3]\n\t"
        "movq %[t0], 0(%[r])\n\t"
        "movq %[t1], 8(%[r])\n\t"
        "movq %[t2], 16(%[r])\n\t"
        "movq %[t3], 24(%[r])\n\t"
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [u0] "=&r"(u0),
          [u1] "=&r"(u1), [u2] "=&r"(u2), [u3] "=&r"(u3), [a] "+&r"(a), [b] "+&r"(b),
          "=m"(*(uint64_t(*)[4])r)
        : [r] "r"(r), "m"(*(const uint64_t(*)[4])a_in), "m"(*(const uint64_t(*)[4])b_in)
        : "cc");
}

/* r = a - b mod p, inputs < p */
static inline void mod_sub_p_adx(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
    uint64_t t0, t1, t2, t3, m, x1, x3;
    __asm__(
        "movq 0(%[a]), %[t0]\n\t"
        "movq 8(%[a]), %[t1]\n\t"
        "movq 16(%[a]), %[t2]\n\t"
        "movq 24(%[a]), %[t3]\n\t"
        "movabsq $0xffffffff00000000, %[x1]\n\t"
        "movabsq $0xfffffffeffffffff, %[x3]\n\t"
        "subq 0(%[b]), %[t0]\n\t"
        "sbbq 8(%[b]), %[t1]\n\t"
        "sbbq 16(%[b]), %[t2]\n\t"
        "sbbq 24(%[b]), %[t3]\n\t"
        "sbbq %[m], %[m]\n\t"
        "andq %[m], %[x1]\n\t"
        "andq %[m], %[x3]\n\t"
        "addq %[m], %[t0]\n\t"
        "adcq %[x1], %[t1]\n\t"
        "adcq %[m], %[t2]\n\t"
        "adcq %[x3], %[t3]\n\t"
        "movq %[t0], 0(%[r])\n\t"
        "movq %[t1], 8(%[r])\n\t"
        "movq %[t2], 16(%[r])\n\t"
        "movq %[t3], 24(%[r])\n\t"
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [m] "=&r"(m),
          [x1] "=&r"(x1), [x3] "=&r"(x3), "=m"(*(uint64_t(*)[4])r)
        : [a] "r"(a), [b] "r"(b), [r] "r"(r),
          "m"(*(const uint64_t(*)[4])a), "m"(*(const uint64_t(*)[4])b)
        : "cc");
}

#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(SM2_NO_SQR_ASM)
/* One reduction step of the squaring: T1..T4 += q (2^192 - 2^160 - 2^32 + 1) with q = Q; the
 * caller propagates the carry. Uses x, y, z, rdx and the freed input pointer as temporaries. */
#define SM2_SQR_STEP(Q, T1, T2, T3, T4)                                                   \
    "movq " SM2_OP(Q) ", %[x]\n\t"                                                        \
    "shlq $32, %[x]\n\t"                                                                  \
    "movq " SM2_OP(Q) ", %[y]\n\t"                                                        \
    "shrq $32, %[y]\n\t"                                                                  \
    "movq " SM2_OP(Q) ", %[z]\n\t"                                                        \
    "movl $0, %%edx\n\t"                                                                  \
    "movl $0, %k[a]\n\t"                                                                  \
    "subq %[x], %[z]\n\t"                                                                 \
    "sbbq %[y], %%rdx\n\t"                                                                \
    "sbbq %[x], %[a]\n\t"                                                                 \
    "sbbq %[y], " SM2_OP(Q) "\n\t"                                                        \
    "addq %[z], " SM2_OP(T1) "\n\t"                                                       \
    "adcq %%rdx, " SM2_OP(T2) "\n\t"                                                      \
    "adcq %[a], " SM2_OP(T3) "\n\t"                                                       \
    "adcq " SM2_OP(Q) ", " SM2_OP(T4) "\n\t"

/* Montgomery square mod p: the 512-bit square (six cross products doubled, four squares: ten
 * mulx instead of sixteen), then the four reduction steps on its low half with the carries
 * running through the high half. */
static inline void mont_sqr_p_adx(uint64_t r[4], const uint64_t a_in[4]) {
    uint64_t t0, t1, t2, t3, t4, t5, t6, t7, t8, x, y, z;
    const uint64_t *a = a_in;
    __asm__(
        "xorl %k[t6], %k[t6]\n\t"
        "xorl %k[t7], %k[t7]\n\t"
        /* cross products a_i a_j, i < j, into t1..t7 */
        "movq 0(%[a]), %%rdx\n\t"
        "mulxq 8(%[a]), %[t1], %[t2]\n\t"
        "mulxq 16(%[a]), %[x], %[t3]\n\t"
        "addq %[x], %[t2]\n\t"
        "mulxq 24(%[a]), %[x], %[t4]\n\t"
        "adcq %[x], %[t3]\n\t"
        "adcq $0, %[t4]\n\t"
        "movq 8(%[a]), %%rdx\n\t"
        "mulxq 16(%[a]), %[x], %[y]\n\t"
        "addq %[x], %[t3]\n\t"
        "adcq %[y], %[t4]\n\t"
        "mulxq 24(%[a]), %[x], %[t5]\n\t"
        "adcq $0, %[t5]\n\t"
        "addq %[x], %[t4]\n\t"
        "adcq $0, %[t5]\n\t"
        "adcq $0, %[t6]\n\t"
        "movq 16(%[a]), %%rdx\n\t"
        "mulxq 24(%[a]), %[x], %[y]\n\t"
        "addq %[x], %[t5]\n\t"
        "adcq %[y], %[t6]\n\t"
        "adcq $0, %[t7]\n\t"
        /* doubled */
        "addq %[t1], %[t1]\n\t"
        "adcq %[t2], %[t2]\n\t"
        "adcq %[t3], %[t3]\n\t"
        "adcq %[t4], %[t4]\n\t"
        "adcq %[t5], %[t5]\n\t"
        "adcq %[t6], %[t6]\n\t"
        "adcq %[t7], %[t7]\n\t"
        /* plus the squares a_i^2 at limbs 2i, 2i+1 */
        "movq 0(%[a]), %%rdx\n\t"
        "mulxq %%rdx, %[t0], %[x]\n\t"
        "addq %[x], %[t1]\n\t"
        "movq 8(%[a]), %%rdx\n\t"
        "mulxq %%rdx, %[x], %[y]\n\t"
        "adcq %[x], %[t2]\n\t"
        "adcq %[y], %[t3]\n\t"
        "movq 16(%[a]), %%rdx\n\t"
        "mulxq %%rdx, %[x], %[y]\n\t"
        "adcq %[x], %[t4]\n\t"
        "adcq %[y], %[t5]\n\t"
        "movq 24(%[a]), %%rdx\n\t"
        "mulxq %%rdx, %[x], %[y]\n\t"
        "adcq %[x], %[t6]\n\t"
        "adcq %[y], %[t7]\n\t"
        /* reduce the low half, carries into the high half and t8 */
        "xorl %k[t8], %k[t8]\n\t"
        SM2_SQR_STEP(t0, t1, t2, t3, t4)
        "adcq $0, %[t5]\n\t"
        "adcq $0, %[t6]\n\t"
        "adcq $0, %[t7]\n\t"
        "adcq $0, %[t8]\n\t"
        SM2_SQR_STEP(t1, t2, t3, t4, t5)
        "adcq $0, %[t6]\n\t"
        "adcq $0, %[t7]\n\t"
        "adcq $0, %[t8]\n\t"
        SM2_SQR_STEP(t2, t3, t4, t5, t6)
        "adcq $0, %[t7]\n\t"
        "adcq $0, %[t8]\n\t"
        SM2_SQR_STEP(t3, t4, t5, t6, t7)
        "adcq $0, %[t8]\n\t"
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4),
          [t5] "=&r"(t5), [t6] "=&r"(t6), [t7] "=&r"(t7), [t8] "=&r"(t8), [x] "=&r"(x),
          [y] "=&r"(y), [z] "=&r"(z), [a] "+&r"(a)
        : "m"(*(const uint64_t(*)[4])a_in)
        : "rdx", "cc");
    reduce_once_p_adx(r, t4, t5, t6, t7, t8);
}

#undef SM2_SQR_STEP
#endif
#undef SM2_ROW
#undef SM2_REDUCE
#undef SM2_OP
#undef SM2_OPK

#endif
#endif
