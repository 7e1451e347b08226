"""Real Ed25519 verification with a cache of results per (public key, message, signature).

The simulator delivers each signed message to every node, often several times; verifying each
distinct (pk, msg, sig) once keeps real signatures affordable. A cached answer is the answer
``engine.crypto`` gave for the same bytes, so behaviour is identical to verifying every time.
"""
from __future__ import annotations

from collections.abc import Sequence

from engine import crypto

#: Entries kept before the cache is emptied (bounds memory over long runs).
CACHE_ENTRIES_MAX = 1_000_000

_cache: dict[tuple[bytes, bytes, bytes], bool] = {}


def cached_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    key = (public_key, message, signature)
    ok = _cache.get(key)
    if ok is None:
        if len(_cache) >= CACHE_ENTRIES_MAX:
            _cache.clear()
        ok = _cache[key] = crypto.verify(public_key, message, signature)
    return ok


def cached_verify_batch(public_keys: Sequence[bytes], messages: Sequence[bytes],
                        signatures: Sequence[bytes]) -> list[bool]:
    """One ``crypto.verify_batch`` call for the entries not cached yet."""
    keys = list(zip(public_keys, messages, signatures))
    # Make room before deciding what is missing: emptying the cache afterwards would drop
    # entries this call is about to read.
    if len(_cache) + len(keys) >= CACHE_ENTRIES_MAX:
        _cache.clear()
    missing = [k for k in dict.fromkeys(keys) if k not in _cache]
    if missing:
        results = crypto.verify_batch([k[0] for k in missing], [k[1] for k in missing],
                                      [k[2] for k in missing])
        _cache.update(zip(missing, results))
    return [_cache[k] for k in keys]
