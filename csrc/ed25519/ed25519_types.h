/* Data layouts shared by every Ed25519 ISA file, the key cache and the dispatcher. */
#ifndef ENGINE_ED25519_TYPES_H
#define ENGINE_ED25519_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* A field element mod 2^255 - 19 in radix 2^51. */
typedef struct {
    uint64_t v[5];
} fe51;

/* A point as (Y + X, Y - X, Z, 2dT): the operand form of an extended-coordinates addition. */
typedef struct {
    fe51 ypx, ymx, z, t2d;
} ge_cached;

/* An affine point as (y + x, y - x, 2dxy): the operand form of a mixed addition (Z = 1). */
typedef struct {
    fe51 ypx, ymx, xy2d;
} ge_niels;

/* Odd multiples [1, 3, ..., 15] of a point, for width-5 NAF scalar multiplication. */
#define ED_KEY_TABLE_SIZE 8

/* A decompressed public key, negated (the verification equations subtract [k]A), with its
 * odd-multiple table: what the key cache stores. */
typedef struct {
    ge_niels neg_affine;
    /* Batches need only neg_affine. A single check builds the table on a key's first use and
     * the table of -[2^128]A (which halves the doublings) on its second. */
    int has_table, has_hi;
    ge_cached neg_table[ED_KEY_TABLE_SIZE];
    ge_cached neg_hi_table[ED_KEY_TABLE_SIZE];
} ed_key;

#endif
