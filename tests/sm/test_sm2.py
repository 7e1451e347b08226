"""SM2 verification and signing: the standard's example, OpenSSL 3 both ways, gmssl, the
pure-Python reference, bit flips, out-of-range and degenerate inputs, on every ISA path, with
the key cache on and off."""
from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native_sm, crypto
from engine._reference import sm2 as ref
from engine.benchmarks import openssl_sm2
from tests.sm.conftest import sm2_key_cache, sm2_vectors

N = ref.N
UID = crypto.SM2_DEFAULT_UID
HAVE_OPENSSL = openssl_sm2.available()
needs_openssl = pytest.mark.skipif(not HAVE_OPENSSL, reason="libcrypto is not OpenSSL 3 with SM2")

try:
    from gmssl import sm2 as gm_sm2
except ImportError:
    gm_sm2 = None


@pytest.fixture(params=[0, 64], ids=["no-cache", "cache"])
def key_cache(request):
    """Runs the test with the decoded-key cache disabled and with a small one."""
    with sm2_key_cache(request.param) as keys:
        yield keys


def i2b(v: int) -> bytes:
    return v.to_bytes(32, "big")


def keys(count: int, seed: int = 0) -> list[crypto.Sm2SigningKey]:
    rng = random.Random(seed)
    return [crypto.Sm2SigningKey(i2b(rng.randrange(1, N - 1))) for _ in range(count)]


# ---- the standard's example ---------------------------------------------------------------------

def test_standard_example(sm_isa, key_cache):
    v = sm2_vectors()
    d = bytes.fromhex(v["private_key"])
    pk = bytes.fromhex(v["public_key_x"] + v["public_key_y"])
    uid, msg = v["uid_ascii"].encode(), v["message_ascii"].encode()
    sig = bytes.fromhex(v["r"] + v["s"])
    assert crypto.Sm2SigningKey(d).public_key == pk
    assert _native_sm.sm2_z(pk, uid).hex().upper() == v["z"]
    e = _native_sm.sm2_digest(_native_sm.sm2_z(pk, uid), msg)
    assert e.hex().upper() == v["e"]
    assert _native_sm.sm2_sign_digest(d, e, bytes.fromhex(v["k"])) == sig
    assert crypto.sm2_verify(pk, msg, sig, uid)
    assert crypto.sm2_verify(b"\x04" + pk, msg, sig, uid)
    assert crypto.sm2_verify_batch([pk] * 3, [msg] * 3, [sig] * 3, uid) == [True] * 3
    assert not crypto.sm2_verify(pk, msg, sig, b"1234567812345679")
    assert not crypto.sm2_verify(pk, msg + b".", sig, uid)


def test_reference_reproduces_the_standard_example():
    v = sm2_vectors()
    d = int(v["private_key"], 16)
    pk = bytes.fromhex(v["public_key_x"] + v["public_key_y"])
    uid, msg = v["uid_ascii"].encode(), v["message_ascii"].encode()
    assert ref.public_key(d) == pk
    assert ref.z(pk, uid).hex().upper() == v["z"]
    kg = ref.mul(int(v["k"], 16), ref.G)
    assert kg is not None and i2b(kg[0]).hex().upper() == v["x1"]
    assert ref.sign(d, msg, int(v["k"], 16), uid) == bytes.fromhex(v["r"] + v["s"])
    assert ref.verify(pk, msg, bytes.fromhex(v["r"] + v["s"]), uid)


# ---- against OpenSSL 3 and gmssl ------------------------------------------------------------------

@needs_openssl
def test_openssl_signs_engine_verifies(sm_isa, key_cache):
    rng = random.Random(3)
    pks, msgs, sigs = [], [], []
    for i in range(24):
        key = openssl_sm2.Key.generate()
        uid = UID
        msg = rng.randbytes(rng.randrange(0, 300))
        sig = crypto.sm2_signature_from_der(key.sign(msg, uid))
        assert crypto.sm2_verify(key.public_xy(), msg, sig)
        other = b"alice@example" if i % 2 else b""
        if other:
            assert crypto.sm2_verify(key.public_xy(), msg, crypto.sm2_signature_from_der(
                key.sign(msg, other)), other)
        pks.append(key.public_xy())
        msgs.append(msg)
        sigs.append(sig)
    assert crypto.sm2_verify_batch(pks, msgs, sigs) == [True] * 24
    assert crypto.sm2_verify_batch(pks, msgs, sigs, b"other") == [False] * 24


@needs_openssl
def test_engine_signs_openssl_verifies(sm_isa):
    rng = random.Random(4)
    for key in keys(12, seed=4):
        msg = rng.randbytes(rng.randrange(0, 300))
        for uid in (UID, b"", b"x" * 100):
            sig = key.sign(msg, uid)
            ossl = openssl_sm2.Key.from_public(key.public_key)
            assert ossl.verify(msg, crypto.sm2_signature_to_der(sig), uid)
            assert not ossl.verify(msg + b"!", crypto.sm2_signature_to_der(sig), uid)


@pytest.mark.skipif(gm_sm2 is None, reason="the optional gmssl package is not installed")
def test_gmssl_both_ways():
    for key in keys(3, seed=5):
        pk_hex, d_hex = key.public_key.hex(), key.private_bytes.hex()
        gm = gm_sm2.CryptSM2(private_key=d_hex, public_key=pk_hex)
        msg = os.urandom(40)
        theirs = bytes.fromhex(gm.sign_with_sm3(msg, os.urandom(32).hex()))
        assert crypto.sm2_verify(key.public_key, msg, theirs)
        assert gm.verify_with_sm3(key.sign(msg).hex(), msg)


# ---- differential against the reference -----------------------------------------------------------

def test_sign_matches_reference_for_given_k():
    rng = random.Random(6)
    for _ in range(5):
        d, k = rng.randrange(1, N - 1), rng.randrange(1, N)
        msg = rng.randbytes(50)
        pk = ref.public_key(d)
        e = ref.sm3(ref.z(pk, UID) + msg)
        native = _native_sm.sm2_sign_digest(i2b(d), e, i2b(k))
        assert native == ref.sign(d, msg, k, UID)


@settings(max_examples=25, deadline=None)
@given(msg=st.binary(max_size=200), flip=st.integers(min_value=-1, max_value=64 * 8 - 1),
       seed=st.integers(min_value=0, max_value=2**32))
def test_hypothesis_bit_flips_against_reference(msg, flip, seed):
    key = keys(1, seed)[0]
    sig = bytearray(key.sign(msg))
    if flip >= 0:
        sig[flip // 8] ^= 1 << (flip % 8)
    want = ref.verify(key.public_key, msg, bytes(sig))
    assert want == (flip < 0)
    assert crypto.sm2_verify(key.public_key, msg, bytes(sig)) == want


def test_bit_flips_everywhere(sm_isa, key_cache):
    key = keys(1, 7)[0]
    msg = b"transfer 10 to bob"
    sig = key.sign(msg)
    pks, msgs, sigs = [], [], []
    for bit in range(0, 512, 7):
        s = bytearray(sig)
        s[bit // 8] ^= 1 << (bit % 8)
        pks.append(key.public_key)
        msgs.append(msg)
        sigs.append(bytes(s))
    for bit in range(0, 512, 11):
        pk = bytearray(key.public_key)
        pk[bit // 8] ^= 1 << (bit % 8)
        pks.append(bytes(pk))
        msgs.append(msg)
        sigs.append(sig)
    for bit in range(0, len(msg) * 8, 5):
        m = bytearray(msg)
        m[bit // 8] ^= 1 << (bit % 8)
        pks.append(key.public_key)
        msgs.append(bytes(m))
        sigs.append(sig)
    verdicts = crypto.sm2_verify_batch(pks, msgs, sigs)
    assert verdicts == [False] * len(pks)
    assert [crypto.sm2_verify(p, m, s) for p, m, s in zip(pks, msgs, sigs)] == verdicts


# ---- degenerate and out-of-range inputs -------------------------------------------------------------

def test_all_zero_key_and_signature_is_false(sm_isa):
    assert crypto.sm2_verify(bytes(64), b"m", bytes(64)) is False
    assert crypto.sm2_verify_batch([bytes(64)], [b"m"], [bytes(64)]) == [False]


def test_r_and_s_ranges(sm_isa, key_cache):
    key = keys(1, 8)[0]
    msg = b"m"
    sig = key.sign(msg)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    bad = [(0, s), (r, 0), (r + N, s) if r + N < 2**256 else (N, s), (r, s + N) if s + N < 2**256
           else (r, N), (N, s), (r, N), (2**256 - 1, s), (r, 2**256 - 1), (r, N - r)]
    for br, bs in bad:
        assert not crypto.sm2_verify(key.public_key, msg, i2b(br) + i2b(bs)), (br, bs)
        assert not ref.verify(key.public_key, msg, i2b(br) + i2b(bs))
    assert crypto.sm2_verify(key.public_key, msg, sig)


def test_result_at_infinity_is_false(sm_isa, key_cache):
    # s + (r + s) d = 0 mod n makes [s]G + [t]P the point at infinity: s = -r d / (1 + d).
    d = 0x1234567
    pk = ref.public_key(d)
    r = 0x55555
    s = (-r * d) * pow(1 + d, -1, N) % N
    assert ref.mul(s, ref.G) is not None
    assert ref.add(ref.mul(s, ref.G), ref.mul((r + s) % N, (int.from_bytes(pk[:32], "big"),
                                                           int.from_bytes(pk[32:], "big")))) is None
    assert not crypto.sm2_verify(pk, b"m", i2b(r) + i2b(s))
    assert crypto.sm2_verify_batch([pk], [b"m"], [i2b(r) + i2b(s)]) == [False]


def test_x_of_r_at_or_above_n(sm_isa):
    # (e + x1) mod n == r when x1 >= n means x1 = c + n, c = (r - e) mod n. No findable signature
    # has x1 in [n, p) (probability about 2^-128), so the curve check is driven directly: R is
    # a point with x = n + small, P = [t^-1](R - [s]G) for chosen s and t.
    x = N + 5
    while True:
        v = (x**3 + ref.A * x + ref.B) % ref.P
        y = pow(v, (ref.P + 1) // 4, ref.P)
        if y * y % ref.P == v:
            break
        x += 1
    s, t = 0x1234567, 0x7654321
    sg = ref.mul(s, ref.G)
    assert sg is not None
    q = ref.mul(pow(t, -1, N), ref.add((x, y), (sg[0], (-sg[1]) % ref.P)))
    assert q is not None
    pk = i2b(q[0]) + i2b(q[1])
    for chunks in (1, 4):
        assert _native_sm._sm2_check_raw(pk, i2b(s), i2b(t), i2b(x - N), chunks) == 1
        assert _native_sm._sm2_check_raw(pk, i2b(s), i2b(t), i2b(x - N + 1), chunks) == 0
        # x1 below n: only c itself matches, c + n is >= p
        assert _native_sm._sm2_check_raw(pk, i2b(s + 1), i2b(t), i2b(0), chunks) == 0
    assert _native_sm._sm2_check_raw(bytes(64), i2b(s), i2b(t), i2b(0), 1) == -1


#: Scalars at the edges of the recodings: window widths (the scalar check reads t in width-5
#: and s in width-9 NAF), chunk boundaries (2^64, 2^128, 2^192, where a carry crosses into the
#: next chunk), runs of ones, and the ends of [1, n-1].
EDGE_SCALARS = [1, 2, 15, 16, 17, 255, 256, 257, 511, 2**64 - 1, 2**64, 2**64 + 255,
                2**128 - 1, 2**192 - 1, 2**192 + 2**191, 2**255 - 1, N - 256, N - 2, N - 1]


def test_scalar_check_against_reference(sm_isa):
    """The scalar curve check (what a lone signature and a group's leftovers run), with the
    one-chunk and the four-chunk key tables, against x([s]G + [t]P) from the reference: each
    edge scalar as s and as t, and random pairs; c = x mod n is accepted and c + 1 is not."""
    rng = random.Random(2026)
    pairs = [(e, rng.randrange(1, N)) for e in EDGE_SCALARS]
    pairs += [(rng.randrange(1, N), e) for e in EDGE_SCALARS]
    pairs += [(rng.randrange(1, N), rng.randrange(1, N)) for _ in range(6)]
    for i, (s, t) in enumerate(pairs):
        d = rng.randrange(1, N - 1)
        pk = ref.public_key(d)
        q = (int.from_bytes(pk[:32], "big"), int.from_bytes(pk[32:], "big"))
        r = ref.add(ref.mul(s, ref.G), ref.mul(t, q))
        assert r is not None
        for chunks in (1, 4):
            for c, want in ((r[0] % N, 1), ((r[0] + 1) % N, 0)):
                got = _native_sm._sm2_check_raw(pk, i2b(s), i2b(t), i2b(c), chunks, scalar=True)
                assert got == want, (i, s, t, chunks, c)


def test_keys_off_the_curve_or_out_of_range(sm_isa, key_cache):
    key = keys(1, 9)[0]
    msg = b"m"
    sig = key.sign(msg)
    x, y = key.public_key[:32], key.public_key[32:]
    p = ref.P
    cases = [
        x + i2b((int.from_bytes(y, "big") + 1) % p),           # off the curve
        i2b(int.from_bytes(x, "big") + p) if int.from_bytes(x, "big") + p < 2**256 else i2b(p),
        x + i2b(int.from_bytes(y, "big") + p) if int.from_bytes(y, "big") + p < 2**256
        else x + i2b(p),                                        # y >= p
        bytes(64),
        b"\xff" * 64,
        x + i2b(p - int.from_bytes(y, "big")),                  # -P: on the curve, wrong key
    ]
    cases[1] = cases[1] + y if len(cases[1]) == 32 else cases[1]
    for pk in cases:
        assert not crypto.sm2_verify(pk, msg, sig)
    assert crypto.sm2_verify_batch(cases, [msg] * len(cases), [sig] * len(cases)) == \
        [False] * len(cases)
    # A 65-byte key must start with 0x04 (0x02 / 0x03 / 0x06 forms are not accepted).
    for prefix in (b"\x02", b"\x03", b"\x06", b"\x00"):
        assert not crypto.sm2_verify(prefix + key.public_key, msg, sig)
    assert crypto.sm2_verify(b"\x04" + key.public_key, msg, sig)


def test_user_ids(sm_isa, key_cache):
    key = keys(1, 10)[0]
    msg = b"m"
    for uid in (b"", b"a", UID, b"x" * 64, b"y" * 65, b"z" * 8191):
        sig = key.sign(msg, uid)
        assert crypto.sm2_verify(key.public_key, msg, sig, uid)
        assert crypto.sm2_verify_batch([key.public_key] * 2, [msg] * 2, [sig] * 2, uid) == [True] * 2
        wrong = uid[:-1] + bytes([uid[-1] ^ 1]) if uid else b"q"
        assert not crypto.sm2_verify(key.public_key, msg, sig, wrong)
    with pytest.raises(ValueError, match="uid"):
        crypto.sm2_verify(key.public_key, msg, key.sign(msg), b"u" * 8192)


# ---- batches ---------------------------------------------------------------------------------------

def test_batch_equals_single_on_mixed_input(sm_isa, key_cache):
    rng = random.Random(11)
    ks = keys(20, 11)
    pks, msgs, sigs = [], [], []
    for i in range(300):
        k = ks[i % len(ks)]
        msg = rng.randbytes(rng.randrange(0, 200))
        sig = k.sign(msg)
        kind = rng.randrange(6)
        pk = k.public_key
        if kind == 1:
            sig = sig[:5] + bytes([sig[5] ^ 1]) + sig[6:]
        elif kind == 2:
            msg = msg + b"x"
        elif kind == 3:
            pk = ks[(i + 1) % len(ks)].public_key
        elif kind == 4:
            sig = bytes(32) + sig[32:]
        elif kind == 5:
            pk = b"\x04" + pk
        pks.append(pk)
        msgs.append(msg)
        sigs.append(sig)
    single = [crypto.sm2_verify(p, m, s) for p, m, s in zip(pks, msgs, sigs)]
    assert single.count(True) > 50 and single.count(False) > 50
    for threads in (1, 2, None):
        assert crypto.sm2_verify_batch(pks, msgs, sigs, threads=threads) == single
    assert crypto.sm2_verify_batch([], [], []) == []


def test_cache_counts_hits():
    crypto.sm2_configure_key_cache(16)
    try:
        key = keys(1, 12)[0]
        sig = key.sign(b"m")
        for _ in range(3):
            assert crypto.sm2_verify(key.public_key, b"m", sig)
        info = crypto.sm2_key_cache_info()
        assert info["capacity"] == 16 and info["entries"] == 1
        assert info["hits"] == 2 and info["misses"] == 1
    finally:
        crypto.sm2_configure_key_cache(crypto.SM2_KEY_CACHE_KEYS_DEFAULT)


# ---- signing keys and encodings ----------------------------------------------------------------------

def test_signing_key():
    key = crypto.Sm2SigningKey.generate()
    assert len(key.public_key) == 64 and len(key.private_bytes) == 32
    assert key.sign(b"m") == key.sign(b"m")  # deterministic nonce
    assert key.sign(b"m") != key.sign(b"n")
    assert crypto.Sm2SigningKey.from_private_bytes(key.private_bytes).public_key == key.public_key
    assert key.public_key == ref.public_key(int.from_bytes(key.private_bytes, "big"))
    for d in (0, N - 1, N, 2**256 - 1):
        with pytest.raises(ValueError, match="private_key"):
            crypto.Sm2SigningKey(i2b(d))
    assert crypto.Sm2SigningKey(i2b(N - 2)).public_key == ref.public_key(N - 2)
    assert crypto.Sm2SigningKey(i2b(1)).public_key == ref.public_key(1)
    with pytest.raises(ValueError, match="private_key"):
        crypto.Sm2SigningKey(b"short")
    with pytest.raises(TypeError, match="message"):
        key.sign("text")  # type: ignore[arg-type]


def test_der_round_trip_and_strictness():
    rng = random.Random(13)
    for _ in range(200):
        sig = i2b(rng.randrange(2**rng.randrange(1, 257))) + i2b(rng.randrange(2**256))
        assert crypto.sm2_signature_from_der(crypto.sm2_signature_to_der(sig)) == sig
    good = crypto.sm2_signature_to_der(i2b(5) + i2b(2**255))
    assert good == bytes.fromhex("3026020105022100") + (2**255).to_bytes(32, "big")
    for bad in [b"", b"\x30\x00", good + b"\x00", b"\x31" + good[1:],
                bytes.fromhex("3007020200050201ff"),        # non-minimal r, negative s
                bytes.fromhex("300602010502018f"),          # negative s
                bytes.fromhex("3006020105020105")[:-1],
                b"\x30\x24\x02\x22\x01" + bytes(33) + b"\x02\x01\x01"]:
        with pytest.raises(ValueError, match="der"):
            crypto.sm2_signature_from_der(bad)
    with pytest.raises(TypeError, match="der"):
        crypto.sm2_signature_from_der("3006")  # type: ignore[arg-type]


def test_argument_errors():
    key = keys(1, 14)[0]
    pk, sig = key.public_key, key.sign(b"m")
    with pytest.raises(TypeError, match="public_key"):
        crypto.sm2_verify(pk.hex(), b"m", sig)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message"):
        crypto.sm2_verify(pk, "m", sig)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="signature"):
        crypto.sm2_verify(pk, b"m", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="uid"):
        crypto.sm2_verify(pk, b"m", sig, "1234567812345678")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="public_key"):
        crypto.sm2_verify(pk[:63], b"m", sig)
    with pytest.raises(ValueError, match="public_key"):
        crypto.sm2_verify(b"\x04" + pk + b"\x00", b"m", sig)
    with pytest.raises(ValueError, match="signature"):
        crypto.sm2_verify(pk, b"m", sig + b"\x00")
    with pytest.raises(ValueError, match="same length"):
        crypto.sm2_verify_batch([pk], [b"m", b"n"], [sig])
    with pytest.raises(ValueError, match=r"public_keys\[1\]"):
        crypto.sm2_verify_batch([pk, pk[:10]], [b"m"] * 2, [sig] * 2)
    with pytest.raises(ValueError, match=r"signatures\[0\]"):
        crypto.sm2_verify_batch([pk], [b"m"], [sig[:63]])
    with pytest.raises(TypeError, match=r"messages\[0\]"):
        crypto.sm2_verify_batch([pk], ["m"], [sig])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="threads"):
        crypto.sm2_verify_batch([pk], [b"m"], [sig], threads=0)
    with pytest.raises(ValueError, match="capacity"):
        crypto.sm2_configure_key_cache(-1)


def test_assembly_field_against_c():
    wrong = _native_sm._sm2_selftest(12345, 200_000)
    if wrong == -1:
        pytest.skip("this CPU or build has no BMI2/ADX field code")
    assert wrong == 0


def test_native_path_names_the_kernel(sm_isa):
    assert crypto.sm2_native_path() in ("portable", "avx2", "avx512")
    if sm_isa == "portable":
        assert crypto.sm2_native_path() == "portable"


def test_concurrent_batches_and_cache_resizes():
    # Python threads verify at once (the GIL is released) while another resizes the key cache:
    # every verdict stays right and nothing crashes.
    import threading

    ks = keys(24, 15)
    msgs = [os.urandom(60) for _ in ks]
    sigs = [k.sign(m) for k, m in zip(ks, msgs)]
    pks = [k.public_key for k in ks]
    bad = [s[:-1] + bytes([s[-1] ^ 1]) for s in sigs]
    errors: list[BaseException] = []

    def verifier() -> None:
        try:
            for i in range(15):
                if i % 2:
                    assert crypto.sm2_verify_batch(pks, msgs, sigs, threads=2) == [True] * 24
                else:
                    assert crypto.sm2_verify_batch(pks, msgs, bad, threads=1) == [False] * 24
                assert crypto.sm2_verify(pks[i], msgs[i], sigs[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def resizer() -> None:
        for cap in (0, 8, 64, 0, 4096, 16):
            crypto.sm2_configure_key_cache(cap)

    threads = [threading.Thread(target=verifier) for _ in range(4)]
    threads.append(threading.Thread(target=resizer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    crypto.sm2_configure_key_cache(crypto.SM2_KEY_CACHE_KEYS_DEFAULT)
    assert not errors, errors
