"""OpenSSL 3's SM2 through libcrypto's EVP interface (ctypes): the baseline and the independent
implementation the SM2 tests and benchmarks compare against.

Only what they need: load a public key (x || y) or generate a key pair, sign and verify a
message with SM3 and a distinguishing ID (OpenSSL's name for the user ID). Signatures are DER,
as OpenSSL makes them. ``available()`` is False when libcrypto is missing or has no SM2; callers
then skip with that reason.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

# SubjectPublicKeyInfo for an SM2 point: id-ecPublicKey with the SM2 curve (1.2.156.10197.1.301)
# followed by BIT STRING 00 04 || x || y.
_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")

_vp = ctypes.c_void_p


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("crypto")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() < 0x30000000:
            return None
        lib.d2i_PUBKEY.restype = _vp
        lib.d2i_PUBKEY.argtypes = [_vp, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]
        lib.i2d_PUBKEY.argtypes = [_vp, ctypes.POINTER(ctypes.c_char_p)]
        lib.EVP_PKEY_free.argtypes = [_vp]
        lib.EVP_MD_CTX_new.restype = _vp
        lib.EVP_MD_CTX_free.argtypes = [_vp]
        lib.EVP_PKEY_CTX_new.restype = _vp
        lib.EVP_PKEY_CTX_new.argtypes = [_vp, _vp]
        lib.EVP_PKEY_CTX_new_from_name.restype = _vp
        lib.EVP_PKEY_CTX_new_from_name.argtypes = [_vp, ctypes.c_char_p, _vp]
        lib.EVP_PKEY_CTX_free.argtypes = [_vp]
        lib.EVP_PKEY_CTX_set1_id.argtypes = [_vp, ctypes.c_char_p, ctypes.c_int]
        lib.EVP_MD_CTX_set_pkey_ctx.argtypes = [_vp, _vp]
        lib.EVP_sm3.restype = _vp
        lib.EVP_DigestVerifyInit.argtypes = [_vp, _vp, _vp, _vp, _vp]
        lib.EVP_DigestVerify.argtypes = [_vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                         ctypes.c_size_t]
        lib.EVP_DigestSignInit.argtypes = [_vp, _vp, _vp, _vp, _vp]
        lib.EVP_DigestSign.argtypes = [_vp, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t),
                                       ctypes.c_char_p, ctypes.c_size_t]
        lib.EVP_PKEY_keygen_init.argtypes = [_vp]
        lib.EVP_PKEY_generate.argtypes = [_vp, ctypes.POINTER(_vp)]
        if not lib.EVP_sm3():
            return None
        return lib
    except (OSError, AttributeError):
        return None


def available() -> bool:
    """Whether this machine's libcrypto is OpenSSL 3 with SM2 and SM3."""
    lib = _lib()
    if lib is None:
        return False
    try:
        key = Key.generate()
        return key.verify(b"m", key.sign(b"m"))
    except (OSError, RuntimeError):
        return False


def version() -> str:
    lib = _lib()
    if lib is None:
        return "none"
    lib.OpenSSL_version.restype = ctypes.c_char_p
    return lib.OpenSSL_version(0).decode()


class Key:
    """An OpenSSL EVP_PKEY of type SM2 (public, or a generated pair)."""

    def __init__(self, pkey: int):
        self._pkey = pkey

    @classmethod
    def from_public(cls, xy: bytes) -> Key:
        lib = _lib()
        assert lib is not None
        der = _SPKI_PREFIX + b"\x04" + bytes(xy)
        buf = ctypes.c_char_p(der)
        pkey = lib.d2i_PUBKEY(None, ctypes.byref(buf), len(der))
        if not pkey:
            raise RuntimeError("OpenSSL rejected the public key")
        return cls(pkey)

    @classmethod
    def generate(cls) -> Key:
        lib = _lib()
        assert lib is not None
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        pkey = _vp()
        try:
            if not ctx or lib.EVP_PKEY_keygen_init(ctx) != 1 or \
                    lib.EVP_PKEY_generate(ctx, ctypes.byref(pkey)) != 1:
                raise RuntimeError("OpenSSL could not generate an SM2 key")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        return cls(pkey.value)  # type: ignore[arg-type]

    def public_xy(self) -> bytes:
        lib = _lib()
        assert lib is not None
        size = lib.i2d_PUBKEY(self._pkey, None)
        out = ctypes.create_string_buffer(size)
        ptr = ctypes.c_char_p(ctypes.addressof(out))  # type: ignore[arg-type]
        lib.i2d_PUBKEY(self._pkey, ctypes.byref(ptr))
        return out.raw[-64:]

    def _md_ctx(self, uid: bytes, sign: bool) -> tuple[int, int]:
        lib = _lib()
        assert lib is not None
        mctx = lib.EVP_MD_CTX_new()
        pctx = lib.EVP_PKEY_CTX_new(self._pkey, None)
        ok = lib.EVP_PKEY_CTX_set1_id(pctx, uid, len(uid)) == 1
        lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
        init = lib.EVP_DigestSignInit if sign else lib.EVP_DigestVerifyInit
        ok = ok and init(mctx, None, lib.EVP_sm3(), None, self._pkey) == 1
        if not ok:
            lib.EVP_MD_CTX_free(mctx)
            lib.EVP_PKEY_CTX_free(pctx)
            raise RuntimeError("OpenSSL could not set up SM2 with SM3")
        return mctx, pctx

    def sign(self, message: bytes, uid: bytes = b"1234567812345678") -> bytes:
        """A DER signature (OpenSSL draws k from its own CSPRNG)."""
        lib = _lib()
        assert lib is not None
        mctx, pctx = self._md_ctx(uid, sign=True)
        try:
            size = ctypes.c_size_t(80)
            out = ctypes.create_string_buffer(80)
            if lib.EVP_DigestSign(mctx, out, ctypes.byref(size), message, len(message)) != 1:
                raise RuntimeError("OpenSSL SM2 signing failed")
            return out.raw[:size.value]
        finally:
            lib.EVP_MD_CTX_free(mctx)
            lib.EVP_PKEY_CTX_free(pctx)

    def verify(self, message: bytes, der_signature: bytes,
               uid: bytes = b"1234567812345678") -> bool:
        lib = _lib()
        assert lib is not None
        mctx, pctx = self._md_ctx(uid, sign=False)
        try:
            return lib.EVP_DigestVerify(mctx, der_signature, len(der_signature), message,
                                        len(message)) == 1
        finally:
            lib.EVP_MD_CTX_free(mctx)
            lib.EVP_PKEY_CTX_free(pctx)

    def __del__(self) -> None:
        lib = _lib()
        if lib is not None and self._pkey:
            lib.EVP_PKEY_free(self._pkey)
            self._pkey = 0
