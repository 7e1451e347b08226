"""Writes csrc/sm2/sm2_avx2x4_mul.inc: the four-lane Montgomery product and square of
sm2_field_avx2x4.h as one inline-assembly block each (`python3 csrc/sm2/gen_sm2_avx2x4_mul.py`).

Why assembly: the C version (sm2x4_mul_core, kept in the header as the reference) does the same
column sums, but the compiler keeps few of the inputs in registers and reloads or spills them:
about 150 loads and 47 stores per product on Zen 4, which runs two 256-bit loads and one store
per cycle, against about 290 arithmetic instructions on its four vector pipes; the product took
about 103 cycles where the arithmetic alone needs about 72. Here a's nine limbs stay in
ymm0..ymm8 for the whole product, b's limbs are memory operands of vpmuludq (81 loads), the
three most recent reduction multipliers q stay in registers (ymm12..ymm14, a ring) and only
q_(j-7), q_(j-8) are reloaded; a square needs no operand loads at all.

The arithmetic is the C reference's, column by column (sm2_field_avx2x4.h has the bounds):
column j = bias_j + the products a_i b_(j-i) (a square: twice the cross products plus
a_(j/2)^2) + (q_(j-8) << 24) - (q_(j-7) << 21) - (q_(j-3) << 9) + (q_(j-2) << 6) + the carry
of column j - 1, added in that order (the carry last: it is the one input on the serial path
from column to column; q_(j-2) just before it). Columns 0..8 give q_j = column & (2^29 - 1),
columns 9..16 the result's limbs 0..7, every column below 17 its carry column >> 29, column 17
limb 8. The block only reads a's limbs before it writes anything and b's limb k for the last
time in column k + 8, before column k + 9 writes the result's limb k, so r may be a or b.

Register use: ymm0..8 a, ymm9 the column, ymm10 a scratch term (renaming makes reuse free),
ymm11 the carry, ymm12..14 the q ring (q_j in ymm(12 + j % 3), written after q_(j-3), its
previous tenant, has been read for the last time in column j), ymm15 the bias 2^51 - 2^22.
"""
from __future__ import annotations

import pathlib

LIMB = 32  # bytes per limb vector (one __m256i)


def column_lines(j: int, square: bool) -> list[str]:
    """Column j: the products into two partial sums (ymm9 and ymm15) so that the additions
    form two chains, the bias and the older reduction terms into the second; then the
    newest terms, q_(j-2) << 6 and the carry."""
    out: list[str] = []
    lo, hi = max(0, j - 8), min(j, 8)
    # ymm15: the bias, then (q_(j-8) << 24) - (q_(j-7) << 21) - (q_(j-3) << 9)
    bias = LIMB * (1 if j == 0 else 3 if j == 17 else 2)
    out.append(f"vmovdqu {bias}(%[k]), %%ymm15")
    if 0 <= j - 8 <= 8:
        out.append(f"vmovdqu {LIMB * (j - 8)}(%[q]), %%ymm10")
        out.append("vpsllq $24, %%ymm10, %%ymm10")
        out.append("vpaddq %%ymm10, %%ymm15, %%ymm15")
    if 0 <= j - 7 <= 8:
        out.append(f"vmovdqu {LIMB * (j - 7)}(%[q]), %%ymm10")
        out.append("vpsllq $21, %%ymm10, %%ymm10")
        out.append("vpsubq %%ymm10, %%ymm15, %%ymm15")
    if 0 <= j - 3 <= 8:
        out.append(f"vpsllq $9, %%ymm{12 + (j - 3) % 3}, %%ymm10")
        out.append("vpsubq %%ymm10, %%ymm15, %%ymm15")
    # the products: the first into ymm9, the others alternately into ymm15 and ymm9
    if square:
        cross = [(i, j - i) for i in range(lo, hi + 1) if i < j - i]
        sq = [j // 2] if j % 2 == 0 and j // 2 <= 8 else []
        if cross:
            out.append(f"vpmuludq %%ymm{cross[0][1]}, %%ymm{cross[0][0]}, %%ymm9")
            for i, k in cross[1:]:
                out.append(f"vpmuludq %%ymm{k}, %%ymm{i}, %%ymm10")
                out.append("vpaddq %%ymm10, %%ymm9, %%ymm9")
            out.append("vpaddq %%ymm9, %%ymm9, %%ymm9")
            if sq:
                out.append(f"vpmuludq %%ymm{sq[0]}, %%ymm{sq[0]}, %%ymm10")
                out.append("vpaddq %%ymm10, %%ymm15, %%ymm15")
        elif sq:
            out.append(f"vpmuludq %%ymm{sq[0]}, %%ymm{sq[0]}, %%ymm9")
        else:
            out.append("vpxor %%ymm9, %%ymm9, %%ymm9")
    else:
        terms = [(i, LIMB * (j - i)) for i in range(lo, hi + 1)]
        if not terms:
            out.append("vpxor %%ymm9, %%ymm9, %%ymm9")
        for n, (i, off) in enumerate(terms):
            if n == 0:
                out.append(f"vpmuludq {off}(%[b]), %%ymm{i}, %%ymm9")
            else:
                acc = "%%ymm15" if n % 2 else "%%ymm9"
                out.append(f"vpmuludq {off}(%[b]), %%ymm{i}, %%ymm10")
                out.append(f"vpaddq %%ymm10, {acc}, {acc}")
    out.append("vpaddq %%ymm15, %%ymm9, %%ymm9")
    if 0 <= j - 2 <= 8:
        out.append(f"vpsllq $6, %%ymm{12 + (j - 2) % 3}, %%ymm10")
        out.append("vpaddq %%ymm10, %%ymm9, %%ymm9")
    if j > 0:
        out.append("vpaddq %%ymm11, %%ymm9, %%ymm9")
    if j <= 8:
        qr = f"%%ymm{12 + j % 3}"
        out.append(f"vpand (%[k]), %%ymm9, {qr}")
        out.append(f"vmovdqu {qr}, {LIMB * j}(%[q])")
        out.append("vpsrlq $29, %%ymm9, %%ymm11")
    elif j < 17:
        out.append("vpand (%[k]), %%ymm9, %%ymm10")
        out.append(f"vmovdqu %%ymm10, {LIMB * (j - 9)}(%[r])")
        out.append("vpsrlq $29, %%ymm9, %%ymm11")
    else:
        out.append(f"vmovdqu %%ymm9, {LIMB * 8}(%[r])")
    return out


def block(square: bool) -> list[str]:
    lines = [f"vmovdqu {LIMB * i}(%[a]), %%ymm{i}" for i in range(9)]
    for j in range(18):
        lines += column_lines(j, square)
    return lines


def emit(name: str, square: bool) -> str:
    body = "\n".join(f'        "{line}\\n\\t"' for line in block(square))
    args = "const sm2x4_fe *a" if square else "const sm2x4_fe *a, const sm2x4_fe *b"
    b_in = "" if square else ', [b] "r"(b->v)'
    return f"""SM2X4_INLINE void {name}(sm2x4_fe *r, {args}) {{
    __m256i q[9];
    __asm__ volatile(
{body}
        :
        : [r] "r"(r->v), [a] "r"(a->v){b_in}, [q] "r"(q), [k] "r"(SM2X4_MULK)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
}}
"""

def main() -> None:
    here = pathlib.Path(__file__).parent
    text = (
        "/* Generated by csrc/sm2/gen_sm2_avx2x4_mul.py (which explains it); do not edit. */\n"
        "/* Constants: the 29-bit mask, the column biases 2^51, 2^51 - 2^22 and -2^22. */\n"
        "static const int64_t SM2X4_MULK[4][4] __attribute__((aligned(32))) = {\n"
        "    {0x1fffffff, 0x1fffffff, 0x1fffffff, 0x1fffffff},\n"
        "    {1LL << 51, 1LL << 51, 1LL << 51, 1LL << 51},\n"
        "    {(1LL << 51) - (1LL << 22), (1LL << 51) - (1LL << 22), (1LL << 51) - (1LL << 22),\n"
        "     (1LL << 51) - (1LL << 22)},\n"
        "    {-(1LL << 22), -(1LL << 22), -(1LL << 22), -(1LL << 22)}};\n\n"
        + emit("sm2x4_mul_asm", False) + "\n" + emit("sm2x4_sqr_asm", True))
    (here / "sm2_avx2x4_mul.inc").write_text(text)


if __name__ == "__main__":
    main()
