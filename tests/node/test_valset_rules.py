"""Validator-set changes, piece by piece: the update rule and its refusals (engine/valset.py),
the history and its delay (engine/node/valset.py), the core using each height's set and the
proposer rotation across changes, the kvstore's `val:` transactions, and a node that halts
naming a refused batch instead of applying it."""
from __future__ import annotations

import os

import pytest

from engine import config, consensus, limits, tx
from engine.app import BlockContext, BlockResult, KVStoreApp, MemoryState, TxResult, parse_val
from engine.consensus import (
    ConsensusCore,
    ProtocolError,
    SignerGuard,
    Start,
    Validator,
    ValidatorSet,
    VoteReceived,
    VoteType,
)
from engine.consensus.proposer import ProposerSchedule
from engine.crypto import SigningKey
from engine.node import Node
from engine.node.ports import Counters
from engine.node.valset import PeerFollower, ValidatorHistory
from engine.suite import get_suite
from engine.valset import ValidatorUpdate, apply_updates, decode_set
from tests.consensus.harness import CHAIN, TIMEOUTS, Net, keys
from tests.node.helpers import run

K = [k.public_key for k in keys(8)]


def vset(*powers: int) -> ValidatorSet:
    return ValidatorSet([Validator(K[i], p) for i, p in enumerate(powers)])


# --- the update rule ------------------------------------------------------------------------

def test_updates_change_add_and_remove_keeping_order():
    base = vset(10, 10, 10, 10)
    new = apply_updates(base, [ValidatorUpdate(K[1], 0), ValidatorUpdate(K[5], 7),
                               ValidatorUpdate(K[2], 3), ValidatorUpdate(K[4], 1)])
    assert [(v.public_key, v.power) for v in new.validators] == \
        [(K[0], 10), (K[2], 3), (K[3], 10), (K[5], 7), (K[4], 1)]
    assert apply_updates(base, []) is base
    assert decode_set(new.encode()) == new and decode_set(new.encode()).hash() == new.hash()


@pytest.mark.parametrize("updates,message", [
    ([ValidatorUpdate(K[0], 0), ValidatorUpdate(K[1], 0)], "empty validator set"),
    ([ValidatorUpdate(K[0], 2), ValidatorUpdate(K[0], 3)], "appears twice"),
    ([ValidatorUpdate(K[0][:31], 2)], "32 bytes"),
    ([ValidatorUpdate(K[3], 0)], "not a validator"),
    ([ValidatorUpdate(K[0], -1)], "power must be an int"),
    ([ValidatorUpdate(K[0], True)], "power must be an int"),
    ([ValidatorUpdate(K[2], limits.voting_power_total_max)], "total power"),
    ([ValidatorUpdate(K[0], 1)] * (limits.validator_updates_per_block_max + 1),
     "validator_updates_per_block_max"),
])
def test_refused_batches_name_the_problem(updates, message):
    with pytest.raises(ValueError, match=message):
        apply_updates(vset(5, 5), updates)


def test_not_an_update_is_a_type_error():
    with pytest.raises(TypeError, match="validator_updates\\[0\\]"):
        apply_updates(vset(5), [(K[0], 3)])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        decode_set(b"\x01\x00\x00\x00" + bytes(39))


# --- SM2 chains: 64-byte keys throughout -------------------------------------------------------

SM = get_suite("sm2-sm3")
SM_KEYS = [SM.key_from_seed(bytes([i + 1]) * 32) for i in range(6)]
S = [k.public_key for k in SM_KEYS]


def sm_set(*powers: int) -> ValidatorSet:
    return ValidatorSet([Validator(S[i], p) for i, p in enumerate(powers)])


def test_an_sm2_set_changes_with_sm2_keys_and_its_record_reads_back_at_their_size():
    base = sm_set(10, 10, 10, 10)
    assert all(len(k) == 64 for k in S)
    new = apply_updates(base, [ValidatorUpdate(S[1], 0), ValidatorUpdate(S[5], 7),
                               ValidatorUpdate(S[2], 3)])
    assert [(v.public_key, v.power) for v in new.validators] == \
        [(S[0], 10), (S[2], 3), (S[3], 10), (S[5], 7)]
    raw = new.encode()
    assert len(raw) == 4 + 4 * 72
    assert decode_set(raw, 64) == new and decode_set(raw, 64).hash(SM.hash) == new.hash(SM.hash)
    with pytest.raises(ValueError, match="with 32-byte keys is 164 bytes, not 292"):
        decode_set(raw)  # read as an Ed25519 record: the size gives it away
    with pytest.raises(ValueError, match="with 64-byte keys is 292 bytes, not 164"):
        decode_set(vset(1, 1, 1, 1).encode(), 64)
    with pytest.raises(ValueError, match="key_bytes must be one of"):
        decode_set(raw, 33)


@pytest.mark.parametrize("base,key,message", [
    (lambda: sm_set(5, 5), K[6], "must be 64 bytes \\(an SM2 public key"),
    (lambda: vset(5, 5), S[4], "must be 32 bytes \\(an Ed25519 public key"),
    (lambda: sm_set(5, 5), S[4][:63], "must be 64 bytes"),
], ids=["ed25519-key-on-an-sm2-set", "sm2-key-on-an-ed25519-set", "short-sm2-key"])
def test_an_update_key_of_the_other_suite_is_refused_naming_the_size(base, key, message):
    with pytest.raises(ValueError, match="validator_updates\\[0\\].public_key " + message):
        apply_updates(base(), [ValidatorUpdate(key, 1)])


def test_a_history_of_an_sm2_chain_reads_its_records():
    g = sm_set(1, 1, 1)
    later = sm_set(1, 1, 1, 1)
    h = ValidatorHistory(g, [(5, later.encode())], committed_height=10)
    assert h.at(4) == g and h.at(5) == later and h.at(12) == later
    with pytest.raises(ValueError, match="with 64-byte keys"):
        ValidatorHistory(g, [(5, vset(1, 1).encode())])  # an Ed25519 record on an SM2 chain


def test_kvstore_val_transactions_on_an_sm2_chain():
    admin, other = SM_KEYS[4], SM_KEYS[5]
    app = _kv([admin.public_key])
    payload = b"val:" + S[3].hex().encode() + b"=7"
    assert parse_val(payload) == (S[3], 7)
    assert parse_val(b"val:" + S[3].hex().encode()[:-2] + b"=7") is None  # 126 digits
    ok = app.check_tx(tx.decode_tx(tx.encode_tx(admin, 1, payload, "c")))
    assert ok.ok, ok.log
    refused = app.check_tx(tx.decode_tx(tx.encode_tx(other, 1, payload, "c")))
    assert refused.code == 3
    txs = [tx.decode_tx(tx.encode_tx(admin, i, p, "c")) for i, p in enumerate([
        payload,
        b"val:" + K[5].hex().encode() + b"=1",  # an Ed25519 key on an SM2 chain: code 2
        b"val:" + S[0].hex().encode() + b"=0"])]
    result = app.finalize_block(1, txs, _ctx(sm_set(1, 1)))
    assert [r.code for r in result.tx_results] == [0, 2, 0]
    assert "must be 64 bytes (an SM2 public key" in result.tx_results[1].log
    assert list(result.validator_updates) == [ValidatorUpdate(S[3], 7), ValidatorUpdate(S[0], 0)]
    new = apply_updates(sm_set(1, 1), result.validator_updates)
    assert [v.public_key for v in new.validators] == [S[1], S[3]]


def test_kvstore_admins_are_keys_of_one_size():
    with pytest.raises(ValueError, match="validator_admins\\[1\\] is not of the size"):
        KVStoreApp().init_chain("c", {"validator_admins": [K[0].hex(), S[0].hex()]})
    with pytest.raises(ValueError, match="64 hex digits .* or 128"):
        KVStoreApp().init_chain("c", {"validator_admins": [K[0].hex()[:62]]})
    # Two Ed25519 admins side by side are not one SM2 admin, nor half an SM2 admin an Ed25519
    # one: each size has its own state key, and a key is compared with whole keys of its size.
    app = _kv([K[0], K[1]])
    assert not app._is_admin(K[0] + K[1])
    assert app._is_admin(K[1]) and not app._is_admin(K[2]) and not app._is_admin(b"")
    assert app.state.get(b"val:admins") == K[0] + K[1]  # the Ed25519 layout is unchanged
    sm_app = _kv([S[0], S[1]])
    assert sm_app.state.get(b"val:admins:sm2") == S[0] + S[1]
    assert sm_app.state.get(b"val:admins") is None
    assert sm_app._is_admin(S[1]) and not sm_app._is_admin(S[1][:32])
    assert not sm_app._is_admin(S[0][32:] + S[1][:32])


# --- the history: h + 2 -------------------------------------------------------------------------

def test_history_applies_updates_two_heights_later_and_not_beyond_the_horizon():
    g = vset(1, 1, 1)
    h = ValidatorHistory(g)
    assert h.at(1) == g and h.at(2) == g and h.at(3) is None  # nothing decided yet
    change = h.next_change(1, [ValidatorUpdate(K[3], 1)])
    assert change is not None and change[0] == 3
    h.record(*change)
    h.committed(1)
    assert h.at(2) == g and h.at(3) == change[1] and h.at(4) is None
    assert h.next_change(2, [ValidatorUpdate(K[0], 1)]) is None  # no change, no record
    with pytest.raises(ValueError, match="not after"):
        h.record(3, g)
    with pytest.raises(ValueError, match="not known yet"):
        h.set_at(10)
    with pytest.raises(ValueError, match="height"):
        h.at(0)


def test_peer_follower_admits_new_validators_and_drops_removed_ones():
    g = vset(1, 1, 1)
    node_keys = [os.urandom(32) for _ in range(3)]
    history = ValidatorHistory(g)
    follower = PeerFollower(history, [(node_keys[1], K[1]), (node_keys[2], K[2]),
                                      (b"observer".ljust(32, b"."), None)], node_keys[0],
                             K[0])
    admit, drop = follower.plan(1)
    assert admit == {node_keys[1], node_keys[2]} and not drop
    history.record(*history.next_change(1, [ValidatorUpdate(K[2], 0),  # type: ignore[misc]
                                            ValidatorUpdate(K[5], 1)]))
    history.committed(1)
    # Height 2 is still signed by node 2: it is kept until its last height is behind.
    assert follower.plan(2)[1] == set()
    admit, drop = follower.plan(3)
    assert K[5] in admit and node_keys[2] in drop and node_keys[1] in admit
    assert b"observer".ljust(32, b".") not in drop  # a non-validator peer is always kept


# --- the core uses the set of each height ---------------------------------------------------

def _changing_net():
    """Validators 0..3 sign height 1; at height 2 validator 3 has left and 4 has joined."""
    net = Net(5)
    first = ValidatorSet([Validator(net.keys[i].public_key, 1) for i in range(4)])
    second = ValidatorSet([Validator(net.keys[i].public_key, 1) for i in (0, 1, 2, 4)])
    sets = {1: first, 2: second}
    return net, first, second, sets.get


def test_core_votes_are_checked_against_their_heights_set():
    net, first, second, at = _changing_net()
    core = ConsensusCore(CHAIN, first, SignerGuard(net.keys[4]), height=2, timeouts=TIMEOUTS,
                         validators_at=at)
    core.step(Start(2))
    assert core.validators == second and core.own_index == 3  # the joiner signs here
    # Validator 3 was removed: its key signs for index 3, which is now validator 4's.
    removed = net.vote(3, VoteType.PREVOTE, 2, 0, b"x")
    with pytest.raises(ProtocolError, match="signature"):
        core.step(VoteReceived(removed))
    # The joiner's vote under its new index counts.
    sig = net.keys[4].sign(consensus.vote_sign_bytes(CHAIN, VoteType.PREVOTE, 2, 0, bytes(32)))
    core.step(VoteReceived(consensus.Vote(VoteType.PREVOTE, 2, 0, bytes(32), 3, sig)))
    assert core.votes.vote_of(0, VoteType.PREVOTE, 3) is not None
    # A vote of a height whose set is not known yet is dropped, reported, not buffered.
    late = net.vote(0, VoteType.PREVOTE, 4, 0, b"x")
    out = core.step(VoteReceived(late))
    assert any(isinstance(a, consensus.MessageDropped) for a in out) and not core.future


def test_core_of_a_removed_validator_follows_without_signing():
    net, first, _second, at = _changing_net()
    core = ConsensusCore(CHAIN, first, SignerGuard(net.keys[3]), height=2, timeouts=TIMEOUTS,
                         validators_at=at)
    out = core.step(Start(2))
    assert core.own_index is None
    assert not any(isinstance(a, (consensus.BroadcastVote, consensus.BroadcastProposal,
                                  consensus.RequestValue)) for a in out)


# --- proposer rotation across changes ----------------------------------------------------------

def test_proposer_rotation_stays_fair_across_changes():
    """docs/consensus.md: each set's weighted round-robin is indexed by height + round, so a
    set that stays for a full period gives each validator exactly its share in every window
    of that many heights, whatever changed before; changes do not restart the rotation at
    index 0 (which would favour the first validators when the set changes often)."""
    sets = [vset(1, 1, 1, 1), vset(1, 2, 1, 1, 3), vset(2, 1, 1), vset(1, 1, 1, 1, 1, 1)]
    height, counts = 1, {}
    for s in sets:
        sched = ProposerSchedule([v.power for v in s.validators])
        period = len(sched.schedule)
        epoch = 3 * period
        for window in range(epoch - period + 1):
            seen: dict[int, int] = {}
            for h in range(height + window, height + window + period):
                seen[sched.proposer(h, 0)] = seen.get(sched.proposer(h, 0), 0) + 1
            assert seen == {i: v.power for i, v in enumerate(s.validators)}
        height += epoch
    # Frequent changes (every 2 heights, shorter than any period): no index is favoured.
    s1, s2 = vset(1, 1, 1, 1, 1), vset(1, 1, 1, 1, 1, 1, 1)
    for h in range(1, 7001):
        s = s1 if (h // 2) % 2 else s2
        i = ProposerSchedule([v.power for v in s.validators]).proposer(h, 0)
        counts[s.public_key(i)] = counts.get(s.public_key(i), 0) + 1
    first_five = [counts[K[i]] for i in range(5)]
    assert max(first_five) - min(first_five) <= 0.1 * max(first_five), counts


# --- the kvstore's validator transactions --------------------------------------------------------

def _kv(admins: list[bytes]) -> KVStoreApp:
    app = KVStoreApp()
    app.state = MemoryState()
    result = app.init_chain("c", {"validator_admins": [a.hex() for a in admins], "x": "1"})
    app.state.apply(result.writes)  # type: ignore[union-attr]
    return app


def _ctx(next_validators: ValidatorSet) -> BlockContext:
    return BlockContext("c", 1, 0, bytes(32), b"", 0, next_validators=next_validators)


def test_kvstore_val_transactions():
    admin, other = SigningKey.generate(), SigningKey.generate()
    app = _kv([admin.public_key])
    payload = b"val:" + K[4].hex().encode() + b"=7"
    assert parse_val(payload) == (K[4], 7)
    assert parse_val(b"val:" + K[4].hex().encode()[:-1] + b"=7") is None
    assert parse_val(b"val:admins=1") is None
    assert app.check_tx(tx.decode_tx(tx.encode_tx(admin, 1, payload, "c"))).ok
    refused = app.check_tx(tx.decode_tx(tx.encode_tx(other, 1, payload, "c")))
    assert refused.code == 3 and "validator_admins" in refused.log
    assert app.check_tx(tx.decode_tx(tx.encode_tx(admin, 1, b"val:admins=x", "c"))).code == 1
    txs = [tx.decode_tx(tx.encode_tx(admin, i, p, "c")) for i, p in enumerate([
        b"val:" + K[0].hex().encode() + b"=0",
        b"val:" + K[1].hex().encode() + b"=0",  # would empty the set: refused, code 2
        payload,
        b"val:" + K[2].hex().encode() + b"=3"])]
    txs.append(tx.decode_tx(tx.encode_tx(other, 9, b"val:" + K[5].hex().encode() + b"=1",
                                         "c")))
    result = app.finalize_block(1, txs, _ctx(vset(1, 1)))
    assert [r.code for r in result.tx_results] == [0, 2, 0, 0, 3]
    assert "empty validator set" in result.tx_results[1].log
    assert list(result.validator_updates) == [ValidatorUpdate(K[0], 0),
                                              ValidatorUpdate(K[4], 7),
                                              ValidatorUpdate(K[2], 3)]
    assert b"val:" + K[1].hex().encode() not in result.writes
    assert result.writes[b"val:" + K[4].hex().encode()] == b"7"
    with pytest.raises(ValueError, match="validator_admins\\[0\\]"):
        KVStoreApp().init_chain("c", {"validator_admins": ["xy"]})


# --- a refused batch halts the node, naming it -------------------------------------------------

class _BadValidatorApp(KVStoreApp):
    def finalize_block(self, height, txs, context=None):  # type: ignore[override]
        r = super().finalize_block(height, txs, context)
        if height == 2:  # removes the only validator: an empty set
            own = context.next_validators.public_key(0)  # type: ignore[union-attr]
            return BlockResult([TxResult() for _ in txs], r.app_hash, r.writes,
                               validator_updates=[ValidatorUpdate(own, 0)])
        return r


def test_a_refused_batch_halts_the_node_naming_it(tmp_path):
    home = config.init_home(str(tmp_path / "n"), "halt", rpc_port=0, p2p_port=0)

    async def main():
        node = Node(home, _BadValidatorApp(), rpc=False)
        await node.start()
        try:
            reason = await node.wait_halted()
        finally:
            await node.stop()
        return reason, node

    reason, node = run(main(), 30)
    assert "refused validator updates" in reason and "empty validator set" in reason
    assert node.tip.height == 1  # block 2 was not stored


# --- the router: a removed validator's messages are dropped and counted -------------------------

class _Driver:
    def __init__(self, sets):
        self.running = True
        self.sets = sets
        self.counters = Counters()
        self.inputs: list = []
        self.core = self

    def validators_for(self, height):
        return self.sets.get(height)

    def height_kept(self, height):
        return height in self.sets

    def input(self, event, height):
        self.inputs.append(event)


class _Wire:
    def __init__(self):
        self.penalized: list[str] = []

    def penalize(self, peer, reason):
        self.penalized.append(reason)


def test_router_drops_and_counts_a_removed_validators_votes():
    from types import SimpleNamespace

    from engine.net import codec
    from engine.node.ports import NullObserver
    from engine.node.router import PeerRouter
    from engine.node.signatures import VerifiedSignatures

    net, first, second, _at = _changing_net()
    driver, wire = _Driver({1: first, 2: second}), _Wire()
    nop = SimpleNamespace(on_status=None, on_get_blocks=None, on_blocks=None, on_pruned=None)
    router = PeerRouter(chain_id=CHAIN, validators=first, driver=driver,  # type: ignore[arg-type]
                        mempool=SimpleNamespace(envelopes=lambda ids: [None] * len(ids)),  # type: ignore[arg-type]
                        validator=SimpleNamespace(suite=get_suite(None)),  # type: ignore[arg-type]
                        evidence=None, sync=nop,  # type: ignore[arg-type]
                        signatures=VerifiedSignatures(NullObserver()), wire=wire,  # type: ignore[arg-type]
                        spawn=lambda c: None)
    old = net.vote(3, VoteType.PREVOTE, 1, 0, b"x")      # validator 3 at height 1: fine
    removed = net.vote(3, VoteType.PREVOTE, 2, 0, b"x")  # ... at height 2 it is not
    sig = net.keys[4].sign(consensus.vote_sign_bytes(CHAIN, VoteType.PREVOTE, 2, 0, bytes(32)))
    joined = consensus.Vote(VoteType.PREVOTE, 2, 0, bytes(32), 3, sig)
    router.on_message(b"p" * 32, codec.Message(codec.VOTES, ([old.encode(), removed.encode(),
                                                              joined.encode()],)))
    assert [e.vote for e in driver.inputs] == [old, joined]
    assert driver.counters.get("dropped:not_a_validator") == 1
    assert wire.penalized == ["invalid_votes"]  # the peer is penalised
