"""Issue 13, finding 7: replay protection that survives pruning. Nonces are enforced per
sender (engine/nonces.py) in admission and in block validity, as committed state: an old
signed transaction stays refused after the blocks (and tx index) that remembered its id are
pruned."""
from __future__ import annotations

import time

from engine import crypto, tx
from engine.block import Block
from engine.nonces import NONCE_GAPS_MAX, USED, NonceTable, NonceWindow, nonce_key
from engine.store import Store, store_path
from tests.node.helpers import make_testnet, run, start_nodes

CHAIN = "replay-chain"


def test_window_rules():
    w = NonceWindow()
    assert w.refusal(0) is None and w.refusal(7) is None
    w.use(0)
    w.use(1)
    assert w.refusal(0) == USED and w.refusal(1) == USED and w.refusal(2) is None
    w.use(5)  # 2, 3, 4 skipped: they stay usable (out-of-order arrival)
    assert w.gaps == [2, 3, 4]
    w.use(3)
    assert w.refusal(3) == USED and w.refusal(2) is None and w.refusal(4) is None
    w.use(5 + 10 * NONCE_GAPS_MAX)  # a jump: only the highest skipped nonces stay usable
    assert len(w.gaps) == NONCE_GAPS_MAX and w.refusal(2) == USED
    assert w.refusal(5 + 10 * NONCE_GAPS_MAX - 1) is None
    again = NonceWindow.decode(w.encode())
    assert (again.highest, again.gaps) == (w.highest, w.gaps)
    w.use(2**64 - 1)
    assert NonceWindow.decode(w.encode()).highest == 2**64 - 1


def test_window_matches_a_set_model(monkeypatch):
    """The window against the rule stated plainly, with a small gap limit so the model stays
    cheap: a nonce is fresh when above every nonce used, or when it is unused, below the
    highest, and was never pushed out of the gaps (each use keeps only the
    ``NONCE_GAPS_MAX`` highest unused nonces below it; the others are refused for good);
    seeded sequences of uses in order, small and large jumps, gap fills and refused reuses."""
    import random

    from engine import nonces

    gaps_max = 8
    monkeypatch.setattr(nonces, "NONCE_GAPS_MAX", gaps_max)
    rnd = random.Random(7)
    for _ in range(300):
        w, used, dead, top = NonceWindow(), set(), set(), -1
        for _ in range(120):
            nonce = rnd.choice([top + 1, top + 1, top + 2, top + rnd.randint(1, 3 * gaps_max),
                                max(0, top - rnd.randint(0, 12)), rnd.randint(0, top + 3)])
            fresh = nonce > top or (nonce not in used and nonce not in dead)
            assert (w.refusal(nonce) is None) == fresh, (nonce, top, w.gaps)
            if fresh:
                w.use(nonce)
                used.add(nonce)
                top = max(top, nonce)
                unused = [n for n in range(top) if n not in used and n not in dead]
                dead.update(unused[:-gaps_max])
            assert w.highest == top and len(w.gaps) <= gaps_max


def test_copies_share_the_gaps_and_records_keep_their_format():
    """A copy shares its window's gaps (neither changes the list in place) and a window keeps
    its gaps' packed form: after any mix of uses on copies of copies, every window still holds
    its own gaps and encodes exactly as ``msgpack.packb([highest, gaps])`` (the stored format),
    never as a stale packing of a list it no longer holds."""
    import random

    import msgpack

    rnd = random.Random(11)
    for _ in range(200):
        windows = [NonceWindow(rnd.randint(0, 50), sorted(rnd.sample(range(50), 20)))]
        for _ in range(60):
            w = rnd.choice(windows)
            if rnd.random() < 0.3:
                w.encode()  # packs and keeps the gaps of the moment
                windows.append(w.copy())
                continue
            before = [(x, x.highest, list(x.gaps)) for x in windows if x is not w]
            nonce = rnd.choice([*(w.gaps or [0]), w.highest + 1, w.highest + rnd.randint(2, 40)])
            if w.refusal(nonce) is None:
                w.use(nonce)
            for x, highest, gaps in before:  # the other windows are untouched
                assert (x.highest, x.gaps) == (highest, gaps)
            for x in windows:
                assert x.encode() == msgpack.packb([x.highest, x.gaps])
                again = NonceWindow.decode(x.encode())
                assert (again.highest, again.gaps) == (x.highest, x.gaps)


def test_block_check_is_in_order():
    state: dict[bytes, bytes] = {}
    table = NonceTable(state.get)
    a, b = b"a" * 32, b"b" * 32
    assert table.check_block([(a, 0), (a, 1), (b, 0)]) is None
    assert table.check_block([(a, 0), (a, 0)]) == (1, USED)  # same nonce twice in a block
    state.update(table.apply_block([(a, 0), (a, 1)]))
    table.committed()
    assert table.check_block([(b, 0), (a, 1)]) == (1, USED)
    fresh = NonceTable(state.get)  # a restarted node reads the same records
    assert fresh.refusal(a, 1) == USED and fresh.refusal(a, 2) is None


def test_apply_block_reuses_a_checked_block_only_while_the_records_stand():
    """apply_block(block_id=X) takes the records check_block found for X; once another block
    is committed those records are stale and apply_block uses X's nonces again."""
    state: dict[bytes, bytes] = {}
    table, plain = NonceTable(state.get), NonceTable(state.get)
    a, b = b"a" * 32, b"b" * 32
    x = [(a, 5), (b, 0), (a, 6)]
    assert table.check_block(x, block_id=b"X") is None
    assert table.check_block([(a, 0), (a, 0)], block_id=b"BAD") == (1, USED)
    # The same records as computing them afresh; the kept overlay is not fed the txs again.
    assert table.apply_block(iter(()), block_id=b"X") == plain.apply_block(x)
    assert table.apply_block([(b, 3)], block_id=b"BAD") == plain.apply_block([(b, 3)])
    # Checked, then another block commits first: the kept records are dropped.
    assert table.check_block([(a, 5)], block_id=b"Y") is None
    state.update(table.apply_block([(a, 7)]))
    table.committed()
    records = table.apply_block([(a, 5)], block_id=b"Y")
    window = NonceWindow.decode(dict(records)[nonce_key(a)])
    assert window.highest == 7 and 5 not in window.gaps and 6 in window.gaps


def test_replay_after_pruning_is_refused_by_admission_and_by_block_validity(tmp_path):
    homes = make_testnet(tmp_path, 1, chain_id=CHAIN)
    key = crypto.SigningKey.generate()
    old = tx.encode_tx(key, 0, b"pay=1", CHAIN)

    async def first_life():
        [node] = await start_nodes(homes)
        try:
            result = await node.submit_tx(old)
            assert result.ok, result
            info = await node.wait_for_tx(result.tx_id, 20)
            assert info is not None
            # A sender may fail in the app and re-send corrected under a new nonce; and any
            # nonce of its window that was not used stays usable.
            assert (await node.submit_tx(tx.encode_tx(key, 1, b"pay=2", CHAIN))).ok
            await node.wait_for_height(info["height"] + 3, 20)
            return info["height"]
        finally:
            await node.stop()

    height = run(first_life())
    with Store(store_path(homes[0].path)) as store:
        assert store.prune(store.latest_height()) >= height
        assert store.find_tx(tx.decode_tx(old).tx_id) is None  # its id is forgotten

    async def second_life():
        [node] = await start_nodes(homes)
        try:
            answer = await node.submit_tx(old)
            assert answer.code == "stale_nonce", answer
            # Block validity refuses it too (a proposer that skipped admission).
            tip = node.tip
            raw = Block.make(chain_id=CHAIN.encode(), height=tip.height + 1,
                             time_ms=max(int(time.time() * 1000), tip.block_time_ms),
                             parent_hash=tip.block_hash, app_hash=tip.app_hash,
                             proposer_index=0,
                             last_commit=node.store.load_certificate(tip.height),
                             evidence=[], txs=[old],
                             validators_hash=node.validators.hash(),
                             next_validators_hash=node.validators.hash()).encode()
            valid = node.core.is_valid(tip.height + 1, raw)
            fresh = await node.submit_tx(tx.encode_tx(key, 2, b"pay=3", CHAIN))
            return valid, fresh
        finally:
            await node.stop()

    valid, fresh = run(second_life())
    assert valid is False
    assert fresh.ok, fresh


def test_apply_block_records_are_each_senders_key_and_encoded_window():
    """The records apply_block returns are (nonce_key(sender), NonceWindow.encode()) of each
    sender's window after the block, in first-use order."""
    table = NonceTable({}.get)
    a, b = b"a" * 32, b"b" * 32
    records = table.apply_block([(b, 0), (a, 3), (b, 1)])
    assert records == [(nonce_key(b), NonceWindow(1, []).encode()),
                       (nonce_key(a), NonceWindow(3, [0, 1, 2]).encode())]


def test_the_record_cache_stays_bounded_and_answers_alike():
    """Past ``cache_max`` records the older half is dropped; a dropped record is read again
    from the state, so every answer is the one an unbounded table gives."""
    state: dict[bytes, bytes] = {}
    small, big = NonceTable(state.get, cache_max=4), NonceTable(state.get)
    senders = [bytes([i]) * 32 for i in range(10)]
    for height in range(3):
        block = [(s, height) for s in senders[height:]]
        assert small.check_block(block) == big.check_block(block) is None
        records = small.apply_block(block)
        assert records == big.apply_block(block)
        state.update(records)
        small.committed()
        big.committed()
        assert len(small._cache) <= 4
        for s in senders:
            assert small.refusal(s, height) == big.refusal(s, height)
            assert small.refusal(s, height + 1) == big.refusal(s, height + 1)
            assert small.window(s).highest == big.window(s).highest
            assert len(small._cache) <= 4
