"""Structured fuzzing of the peer protocol against live networks (three tests: mutants of real
messages of every kind from an authenticated peer, on either suite's chain; a man-in-the-middle
mutating the live frames of a node catching up by block sync; the same for a node joining by
state sync).

An authenticated peer (validator 3's node key; validator 3 itself is not running) first
collects real messages of every one of the 15 kinds from node 0: what node 0 sends a peer
(status, votes, compact proposals, gossiped transactions) and what it answers (blocks,
snapshots, a chunk); the others are built real: evidence of validator 3 signing two prevotes, a
proposal signed by it, the transactions of one of node 0's compact proposals, a pruned range,
requests for things node 0 holds. Then it sends node 0
hundreds of seeded mutants of those messages: fields swapped for other types, integers at
their bounds, byte strings flipped, cut or grown, list items dropped or repeated, whole frames
bit-flipped or truncated; it reconnects whenever node 0 hangs up on it.

What must hold: no handler of any node raised (``handler_error``: a message the codec let
through that a handler could not take is our bug, even though the peer layer survives it), no
node halted, the chain went on with every node agreeing, and node 0 counted the faults.
"""
from __future__ import annotations

import asyncio
import os
import random

import msgpack
import pytest

from engine import config
from engine import consensus as cs
from engine.net import codec
from engine.net.secure import handshake
from engine.suite import ED25519_BLAKE3, SM2_SM3, get_suite
from tests.node.helpers import make_testnet, make_txs, run, start_nodes

CHAIN = "fuzz-chain"
#: ``ENGINE_FUZZ_SEED`` / ``ENGINE_FUZZ_MUTANTS`` run another campaign (make test: the fixed one).
SEED = int(os.environ.get("ENGINE_FUZZ_SEED", "20261206"))
MUTANTS_PER_BASE = int(os.environ.get("ENGINE_FUZZ_MUTANTS", "30"))
#: Mutants the live-link test must get through to node 3 (``ENGINE_FUZZ_LIVE``), in all and
#: of the block-sync answers, and how long it may take.
LIVE_MUTANTS = int(os.environ.get("ENGINE_FUZZ_LIVE", "60"))
FUZZ_SECONDS_MAX = 90
#: The suite of the man-in-the-middle tests' chains (``ENGINE_FUZZ_CRYPTO``: ``sm2-sm3``).
LIVE_CRYPTO = os.environ.get("ENGINE_FUZZ_CRYPTO", ED25519_BLAKE3)
#: How long the state-sync test's link mutates before it turns clean.
STATE_SYNC_MUTATING_S = float(os.environ.get("ENGINE_FUZZ_STATE_SYNC_S", "8"))
HANDSHAKE_MAX_FRAME = 1 << 24
_INTS = (0, 1, -1, 2, 255, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, -2**63)
_ODD = (None, True, 1.5, "text", {}, {"k": 1}, [], [[]], b"")
_SYNC_ANSWERS = (codec.BLOCKS, codec.SNAPSHOTS, codec.CHUNK)


def _leaves(obj, path=()):
    """Every (path, value) inside an unpacked message, the containers included."""
    yield path, obj
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _leaves(item, (*path, i))


def _replace(obj, path, value):
    if not path:
        return value
    out = list(obj)
    out[path[0]] = _replace(obj[path[0]], path[1:], value)
    return out


def _other(value, rng: random.Random):
    """Something in place of ``value``: another of its type, or another type."""
    if rng.random() < 0.25:
        return rng.choice(_ODD)
    if type(value) is int:  # kept within what msgpack can carry
        return min(max(rng.choice((*_INTS, value + 1, value - 1, value * 2, -value)),
                       -2**63), 2**64 - 1)
    if type(value) is bytes:
        data = bytearray(value)
        how = rng.randrange(5)
        if how == 0 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif how == 1:
            del data[rng.randrange(len(data) + 1):]
        elif how == 2:
            data += rng.randbytes(rng.choice((1, 32, 113, 4096)))
        elif how == 3:
            data = bytearray(rng.randbytes(len(data)))
        else:
            data = data * 2
        return bytes(data)
    if isinstance(value, list):
        items = list(value)
        how = rng.randrange(4)
        if how == 0 and items:
            del items[rng.randrange(len(items))]
        elif how == 1 and items:
            items.insert(rng.randrange(len(items) + 1), rng.choice(items))
        elif how == 2:
            items = []
        else:
            items.append(rng.choice((*_ODD, 7, b"\x00" * 32)))
        return items
    return rng.choice(_INTS)


def mutants(frame: bytes, rng: random.Random, count: int) -> list[bytes]:
    """``count`` mutants of one encoded message: mostly structural (1-3 fields replaced,
    re-encoded), some raw (bits flipped in the frame, or the frame cut)."""
    obj = msgpack.unpackb(frame, raw=False)
    out = []
    for _ in range(count):
        if rng.random() < 0.2:
            data = bytearray(frame)
            if rng.random() < 0.5:
                for _ in range(rng.randint(1, 4)):
                    i = rng.randrange(len(data))
                    data[i] ^= 1 << rng.randrange(8)
            else:
                del data[rng.randrange(len(data)):]
            out.append(bytes(data))
            continue
        m = obj
        for _ in range(rng.randint(1, 3)):
            path, value = rng.choice(list(_leaves(m)))
            m = _replace(m, path, _other(value, rng))
        out.append(msgpack.packb(m, use_bin_type=True))
    return out


class _Attacker:
    """One authenticated connection to a node at a time, re-opened when the node hangs up;
    frames received are kept by kind."""

    def __init__(self, port: int, node_key, suite):
        self.port, self.node_key, self.suite = port, node_key, suite
        self.stream = None
        self.reader: asyncio.Task | None = None
        self.received: dict[int, list[bytes]] = {}
        self.connections = 0

    async def connect(self) -> None:
        self.close()
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        self.stream = await handshake(r, w, node_key=self.node_key, chain_id=CHAIN,
                                      initiator=True, is_allowed=lambda k: True,
                                      frame_bytes_max=HANDSHAKE_MAX_FRAME, suite=self.suite)
        self.connections += 1
        self.reader = asyncio.create_task(self._read(self.stream))

    async def _read(self, stream) -> None:
        try:
            while True:
                frame = await stream.recv()
                kind = msgpack.unpackb(frame, raw=False)[0]
                self.received.setdefault(kind, []).append(frame)
        except Exception:  # noqa: BLE001 - the node hung up: the sender reconnects
            return

    async def send(self, frame: bytes) -> None:
        for _ in range(3):
            if self.stream is None or self.reader is None or self.reader.done():
                await self._reconnect()
            try:
                await self.stream.send(frame)
                return
            except Exception:  # noqa: BLE001 - closed under us: reconnect, send again
                self.stream = None
        raise AssertionError("could not deliver a frame in three connections")

    async def _reconnect(self) -> None:
        for _ in range(50):
            try:
                await self.connect()
                return
            except Exception:  # noqa: BLE001 - refused or reset while node 0 drops the old link
                await asyncio.sleep(0.1)  # the node is still dropping the old connection
        raise AssertionError("node 0 no longer accepts the peer's connections")

    async def wait_for(self, kind: int, timeout_s: float = 10) -> bytes:
        for _ in range(int(timeout_s * 20)):
            if self.received.get(kind):
                return self.received[kind][-1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"node 0 never sent a {codec.KIND_NAMES[kind]} message")

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.stream is not None:
            self.stream.close()
        self.reader = self.stream = None


def _signed_vote(key, chain: bytes, vtype: int, height: int, block_hash: bytes,
                 index: int) -> cs.Vote:
    sig = key.sign(cs.vote_sign_bytes(chain, vtype, height, 0, block_hash))
    return cs.Vote(cs.VoteType(vtype), height, 0, block_hash, index, sig)


@pytest.mark.parametrize("suite_name", [ED25519_BLAKE3, SM2_SM3])
def test_mutated_messages_of_every_kind_never_raise_in_a_handler(tmp_path, suite_name):
    """On either suite's chain (their votes, certificates, keys and envelopes differ in size
    and decoding)."""
    suite = get_suite(suite_name)
    homes = make_testnet(tmp_path, 4, CHAIN, snapshot_interval=3, retain_blocks=0,
                         crypto=suite_name)
    rng = random.Random(SEED)
    txs = make_txs(CHAIN, 400, prefix="f", key=suite.generate_key())

    async def main():
        nodes = await start_nodes(homes[:3])
        attacker = _Attacker(homes[0].config.p2p_port, homes[3].node_key, suite)
        try:
            await asyncio.gather(*(n.wait_for_height(2, 30) for n in nodes))
            await attacker.connect()
            # Real traffic: transactions while the peer listens (gossip, compact proposals
            # that carry ids, votes, status).
            for i in range(0, 200, 20):
                await nodes[0].submit_txs(txs[i:i + 20])
                await asyncio.sleep(0.05)
            await asyncio.gather(*(n.wait_for_height(nodes[0].latest_height + 4, 30)
                                   for n in nodes))
            for kind in (codec.STATUS, codec.VOTES, codec.TXS):
                await attacker.wait_for(kind)
            # Answers to real requests.
            await attacker.send(codec.encode(codec.GET_BLOCKS, 1, 3))
            blocks = msgpack.unpackb(await attacker.wait_for(codec.BLOCKS), raw=False)[1]
            await attacker.send(codec.encode(codec.GET_SNAPSHOTS))
            snaps = msgpack.unpackb(await attacker.wait_for(codec.SNAPSHOTS), raw=False)[1]
            assert snaps, "node 0 offered no snapshot (snapshot_interval = 3)"
            snap_hash = snaps[0][5]
            await attacker.send(codec.encode(codec.GET_CHUNK, snap_hash, 0))
            await attacker.wait_for(codec.CHUNK)
            # A compact proposal with transactions, and its transactions asked for.
            for i in range(200, 400, 20):
                await nodes[0].submit_txs(txs[i:i + 20])
                await asyncio.sleep(0.05)
            proposal = await _compact_with_ids(attacker, nodes)
            fields = msgpack.unpackb(proposal, raw=False)
            p = cs.Proposal.decode(fields[1])
            # Its first transaction as node 0 would answer for it (node 0 answers only while
            # at that height, a few milliseconds: the answer is built here instead).
            by_id = {suite.hash(t): t for t in txs}
            proposal_txs = codec.encode(codec.PROPOSAL_TXS, p.height, p.block_hash, [0],
                                        [by_id[fields[3][0]]])
            # What no honest node sends unasked: built real.
            height = nodes[0].latest_height + 1
            vset = nodes[0].validator_set_at(height)
            me = vset.index_of(homes[3].validator_key.public_key)
            assert me is not None
            key = homes[3].validator_key
            a = _signed_vote(key, CHAIN.encode(), 1, height, b"\x01" * 32, me)
            b = _signed_vote(key, CHAIN.encode(), 1, height, b"\x02" * 32, me)
            evidence = cs.DuplicateVoteEvidence.from_votes(a, b).encode()
            own = cs.Proposal(height, 0, -1, b"\x03" * 32, me,
                              key.sign(cs.proposal_sign_bytes(CHAIN.encode(), height, 0, -1,
                                                              b"\x03" * 32)))
            bases = {
                codec.STATUS: attacker.received[codec.STATUS][-1],
                codec.VOTES: attacker.received[codec.VOTES][-1],
                codec.TXS: attacker.received[codec.TXS][-1],
                codec.COMPACT_PROPOSAL: proposal,
                codec.BLOCKS: attacker.received[codec.BLOCKS][-1],
                codec.SNAPSHOTS: attacker.received[codec.SNAPSHOTS][-1],
                codec.CHUNK: attacker.received[codec.CHUNK][-1],
                codec.PROPOSAL_TXS: proposal_txs,
                codec.EVIDENCE: codec.encode(codec.EVIDENCE, [evidence]),
                codec.PROPOSAL: codec.encode(codec.PROPOSAL, own.encode(), blocks[-1][1]),
                codec.PRUNED: codec.encode(codec.PRUNED, 1, 2),
                codec.GET_BLOCKS: codec.encode(codec.GET_BLOCKS, 1, 2),
                codec.GET_SNAPSHOTS: codec.encode(codec.GET_SNAPSHOTS),
                codec.GET_CHUNK: codec.encode(codec.GET_CHUNK, snap_hash, 0),
                codec.GET_PROPOSAL_TXS: codec.encode(codec.GET_PROPOSAL_TXS, p.height,
                                                     p.block_hash, [0]),
            }
            assert set(bases) == set(codec.KIND_NAMES), "every kind has a real base message"
            for base in bases.values():  # each base is a message the codec accepts
                codec.decode(base, nodes[0].peers.limits)
            start = nodes[0].latest_height
            sent = 0
            for kind in sorted(bases):
                for m in mutants(bases[kind], rng, MUTANTS_PER_BASE):
                    await attacker.send(m)
                    sent += 1
                    if sent % 16 == 0:
                        await asyncio.sleep(0.01)  # let the node work through them
            # The network goes on, agrees, and nothing raised.
            await _went_on_unharmed(nodes, 3, 45)
            faults = nodes[0].peers.faults
            counted = sum(v for k, v in faults.items() if k != "disconnect_faults")
            assert counted >= sent // 4, (sent, faults)
            assert nodes[0].latest_height > start
            return sent, attacker.connections, dict(faults)
        finally:
            attacker.close()
            for n in nodes:
                await n.stop()

    sent, connections, faults = run(main(), 240)
    print(f"sent {sent} mutants over {connections} connections; node 0 counted {faults}")


async def _went_on_unharmed(nodes, heights: int, timeout_s: float) -> None:
    """Every node commits ``heights`` more heights than the highest now, none halted, no
    handler of any raised, and all hold the same blocks."""
    goal = max(n.latest_height for n in nodes) + heights
    await asyncio.gather(*(n.wait_for_height(goal, timeout_s) for n in nodes))
    for n in nodes:
        assert n.halted is None, n.halted
        assert n.peers.faults.get("handler_error", 0) == 0, n.peers.faults
    for h in range(1, goal + 1):
        assert len({n.block_info(h)["hash"] for n in nodes}) == 1, h


async def _compact_with_ids(attacker: _Attacker, nodes) -> bytes:
    """A compact proposal node 0 sent with at least one transaction id (node 0 proposes
    every fourth height; transactions are pooled meanwhile)."""
    for _ in range(200):
        for frame in reversed(attacker.received.get(codec.COMPACT_PROPOSAL, [])):
            if msgpack.unpackb(frame, raw=False)[3]:
                return frame
        await asyncio.sleep(0.05)
    raise AssertionError("node 0 sent no compact proposal with transactions")


class _MutatingProxy:
    """A man in the middle of the only link between node ``source`` and node ``victim``,
    holding both node keys: it forwards every frame and, while ``rate`` > 0, replaces that
    share of the victim's incoming frames with mutants (live messages of the moment: its
    block-sync answers, snapshots and chunks, proposals, votes, status...). When either side
    hangs up it drops the pair; the dialling side dials again."""

    def __init__(self, homes, rng: random.Random, rate: float, source: int = 0,
                 victim: int = 3):
        self.homes, self.rng, self.rate = homes, rng, rate
        self.source, self.victim = source, victim
        #: Rates of their own for some kinds (while ``rate`` is not 0).
        self.kind_rates: dict[int, float] = {}
        genesis = homes[0].genesis
        self.handshake = {"chain_id": genesis.chain_id, "genesis_hash": genesis.hash(),
                          "is_allowed": lambda k: True, "frame_bytes_max": HANDSHAKE_MAX_FRAME,
                          "suite": genesis.suite}
        #: While set, the link is cut: open pairs are dropped and new ones refused.
        self.cut = False
        self.mutated: dict[str, int] = {}
        self.forwarded = 0
        self.servers: list[asyncio.AbstractServer] = []
        self.tasks: set[asyncio.Task] = set()
        self.ports: dict[int, int] = {}

    async def start(self) -> None:
        # Port for the source as the victim sees it, and for the victim as the source sees it.
        for impersonated in (self.source, self.victim):
            server = await asyncio.start_server(
                lambda r, w, i=impersonated: self._accept(r, w, i), "127.0.0.1", 0)
            self.servers.append(server)
            self.ports[impersonated] = server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer, impersonated: int) -> None:
        """The other node dialled "``impersonated``": dial the real one in its name."""
        task = asyncio.current_task()
        self.tasks.add(task)
        inbound = outbound = None
        try:
            if self.cut:
                writer.close()
                return
            inbound = await handshake(reader, writer, initiator=False,
                                      node_key=self.homes[impersonated].node_key,
                                      **self.handshake)
            r, w = await asyncio.open_connection(
                "127.0.0.1", self.homes[impersonated].config.p2p_port)
            other = self.victim if impersonated == self.source else self.source
            outbound = await handshake(r, w, initiator=True,
                                       node_key=self.homes[other].node_key, **self.handshake)
            # Frames to the victim are the ones mutated (its sync and consensus handlers);
            # its frames to the source pass as they are, so the source keeps the link.
            to_victim = inbound if impersonated == self.source else outbound
            from_victim = outbound if impersonated == self.source else inbound
            await asyncio.gather(self._pipe(from_victim, to_victim, True),
                                 self._pipe(to_victim, from_victim, False))
        except (Exception, asyncio.CancelledError):  # noqa: BLE001, S110 - a side hung up
            pass  # (as it should on garbage), or the link was cut: the pair ends quietly
        finally:
            for s in (inbound, outbound):
                if s is not None:
                    s.close()
            self.tasks.discard(task)

    async def _pipe(self, src, dst, mutate: bool) -> None:
        while True:
            frame = await src.recv()
            self.forwarded += 1
            if self.cut:
                return
            kind_id = msgpack.unpackb(frame, raw=False)[0]
            # Sync answers are few (a node behind asks for many heights at once; a joiner
            # for a handful of offers and chunks): they are mutated twice as often.
            rate = self.kind_rates.get(kind_id, self.rate * (2 if kind_id in _SYNC_ANSWERS
                                                              else 1)) if self.rate else 0.0
            if mutate and rate and self.rng.random() < rate:
                kind = codec.KIND_NAMES.get(kind_id, "?")
                self.mutated[kind] = self.mutated.get(kind, 0) + 1
                frame = mutants(frame, self.rng, 1)[0]
            await dst.send(frame)

    def cut_link(self) -> None:
        """Drop the pairs open now and refuse new ones until ``cut`` is cleared."""
        self.cut = True
        for task in list(self.tasks):
            task.cancel()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self.tasks):
            task.cancel()


def _route_through(homes, proxy: _MutatingProxy) -> None:
    """The victim's only link is to the source, through the proxy (both sides dial the proxy
    as the other one; nobody else dials the victim, and the victim dials nobody else)."""
    keys = [h.node_key.public_key.hex() for h in homes]
    pair = {proxy.source, proxy.victim}
    for i, home in enumerate(homes):
        for peer in home.config.peers:
            j = keys.index(peer.node_key)
            if {i, j} == pair:
                peer.host, peer.port = "127.0.0.1", proxy.ports[j]
            elif proxy.victim in (i, j):
                peer.host, peer.port = "", 0
        config.save_config(home.path, home.config)  # for a node started from its path


def _covered(mutated: dict[str, int]) -> bool:
    return sum(mutated.values()) >= LIVE_MUTANTS and mutated.get("blocks", 0) >= 3 and \
        {"votes", "status", "compact_proposal", "txs"} <= set(mutated)


def test_a_node_fed_mutated_live_messages_keeps_going_and_agrees(tmp_path):
    """Node 3 joins late, so it catches up by block sync, and its only link to the network
    runs through a proxy that turns 30 % of the frames it receives into mutants: block-sync
    answers, proposals, votes, gossip, all of the moment. Once the proxy stops mutating, node 3
    reaches the network's height with the same blocks; no handler of any node raised."""
    homes = make_testnet(tmp_path, 4, CHAIN, crypto=LIVE_CRYPTO)
    rng = random.Random(SEED + 1)
    txs = make_txs(CHAIN, 2000, prefix="p", key=get_suite(LIVE_CRYPTO).generate_key())
    proxy = _MutatingProxy(homes, rng, rate=0.3)

    async def main():
        await proxy.start()
        _route_through(homes, proxy)
        nodes = await start_nodes(homes[:3])
        late = None
        try:
            await asyncio.gather(*(n.wait_for_height(20, 30) for n in nodes))
            (late,) = await start_nodes(homes[3:])
            # Rounds of live traffic through the mutating link, each ended by a cut of the
            # link that leaves node 3 behind, so that the next round starts with block sync;
            # until enough mutants of enough kinds went through (or the time is up).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + FUZZ_SECONDS_MAX
            sent = 0
            while not _covered(proxy.mutated):
                assert loop.time() < deadline, (proxy.mutated, proxy.forwarded,
                                                late.peers.faults)
                for _ in range(15):
                    await nodes[0].submit_txs(txs[sent % len(txs):sent % len(txs) + 20])
                    sent += 20
                    await asyncio.sleep(0.2)
                proxy.cut_link()
                await asyncio.sleep(0.8)
                proxy.cut = False
            proxy.rate = 0.0
            await _went_on_unharmed([*nodes, late], 2, 60)
            # The mutants reached node 3's handlers (_covered), which counted faults.
            faults = late.peers.faults
            assert sum(v for k, v in faults.items() if k != "disconnect_faults") >= 20, faults
            return dict(proxy.mutated), proxy.forwarded, dict(faults)
        finally:
            await proxy.close()
            for n in (*nodes, *([late] if late is not None else [])):
                await n.stop()

    mutated, forwarded, faults = run(main(), 240)
    print(f"forwarded {forwarded} frames, mutated {mutated}; node 3 counted {faults}")


def _sync_covered(mutated: dict[str, int]) -> bool:
    """A try reached the chunks under mutation, after offers or certifying blocks were."""
    return "chunk" in mutated and bool({"snapshots", "blocks"} & set(mutated))


def test_a_node_joining_by_state_sync_through_mutated_frames_ends_with_the_state(
        tmp_path, monkeypatch):
    """A full node joins by state sync with its only link through the mutating proxy: the
    snapshot offers, chunks and the blocks that certify the snapshot's height reach it mutated
    (a fifth of the offers and blocks, every chunk) for STATE_SYNC_MUTATING_S at least and
    until a try has reached the chunks, then clean. It must refuse every bad one
    (never restore a state that is not the chain's), try again, restore once the link is
    clean, follow the chain and end with the validator's state; no handler raises, nothing
    halts."""
    from engine import limits
    from engine.node import Node
    from tests.node.synchelpers import enable_state_sync, make_net, wait_until

    monkeypatch.setattr(limits, "snapshot_chunk_bytes", 2048)  # several chunks per snapshot
    homes = make_net(tmp_path, 1, 1, crypto=LIVE_CRYPTO, snapshot_interval=10)
    sender = get_suite(LIVE_CRYPTO).generate_key()
    rng = random.Random(SEED + 2)
    # A tenth of the frames (a fifth of the sync answers): the link must live long enough
    # between the disconnects its faults earn for a try to reach the chunks.
    proxy = _MutatingProxy(homes, rng, rate=0.1, source=0, victim=1)

    async def main():
        await proxy.start()
        _route_through(homes, proxy)
        val = Node(homes[0])
        await val.start()
        joiner = None
        try:
            for r in await val.submit_txs(make_txs("sync-chain", 400, "s", key=sender)):
                assert r.ok, r.log
            await val.wait_for_height(25, 30)
            await wait_until(lambda: val.snapshots.snapshots(), 10, "a snapshot")
            enable_state_sync(homes[1], val, 5)
            joiner = Node(homes[1].path)
            starting = asyncio.ensure_future(joiner.start())
            # Mutated for a while (each snapshot try needs a dozen messages in a row: the
            # certifying blocks, every chunk; with a fifth of them mutated on its only link
            # the joiner refuses and tries again, and rarely completes), until offers, chunks
            # and blocks were all mutated, then a clean link: it must restore the chain's
            # state, never another.
            # Every chunk is mutated meanwhile, so no try can complete before the link is
            # clean (a restore from a dirty link would prove nothing about the refusals).
            proxy.kind_rates[codec.CHUNK] = 1.0
            loop = asyncio.get_running_loop()
            clean_at = loop.time() + STATE_SYNC_MUTATING_S
            while not (_sync_covered(proxy.mutated) and loop.time() > clean_at):
                assert loop.time() < clean_at + 120, proxy.mutated
                assert not starting.done(), proxy.mutated
                await asyncio.sleep(0.2)
            proxy.rate = 0.0
            await asyncio.wait_for(starting, 90)
            assert joiner.counters.values.get("state_sync_restored") == 1
            assert joiner.store.base_height() >= 10
            for r in await val.submit_txs(make_txs("sync-chain", 100, "t", key=get_suite(LIVE_CRYPTO).generate_key())):
                assert r.ok, r.log
            await wait_until(lambda: len(val.mempool) == 0, 30, "the mempool to drain")
            goal = val.latest_height + 2
            await joiner.wait_for_height(goal, 60)
            await val.wait_for_height(goal, 30)
            for n in (val, joiner):
                assert n.halted is None, n.halted
                assert n.peers.faults.get("handler_error", 0) == 0, n.peers.faults
            base = joiner.store.base_height()
            for h in range(base, goal + 1):
                assert val.store.app_hash(h) == joiner.store.app_hash(h), h
                assert val.block_info(h)["hash"] == joiner.block_info(h)["hash"], h
            assert val.store.state_items() == joiner.store.state_items()
            assert _sync_covered(proxy.mutated), proxy.mutated
            refused = {k: v for k, v in joiner.counters.values.items()
                       if k.startswith("state_sync") and k != "state_sync_restored"}
            assert refused, joiner.counters.values  # bad offers, blocks or chunks were seen
            return dict(proxy.mutated), dict(joiner.counters.values)
        finally:
            await proxy.close()
            if joiner is not None:
                await joiner.stop()
            await val.stop()

    mutated, counters = run(main(), 200)
    print(f"mutated {mutated}; joiner counted "
          f"{ {k: v for k, v in counters.items() if k.startswith('state_sync')} }")
