"""The per-chain crypto suite (engine/suite.py): primitives, envelopes, genesis, keys, store and
the handshake agree with the suite a chain names, and refuse the other suite clearly."""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from engine import config, crypto, hashing, tx
from engine.mempool import BAD_SIGNATURE, MALFORMED, Mempool
from engine.net.errors import GenesisMismatch
from engine.net.secure import handshake
from engine.store import Store
from engine.store._records import StoreError
from engine.suite import ED25519_BLAKE3, SM2_SM3, Sm2Key, SuiteMismatch, get_suite

SM = get_suite(SM2_SM3)
ED = get_suite(ED25519_BLAKE3)
CHAIN = "suite-chain"


# ---- the suite object ---------------------------------------------------------------------------

def test_get_suite_names_the_choices():
    assert get_suite() is ED and get_suite("sm2-sm3") is SM and get_suite(SM) is SM
    with pytest.raises(ValueError, match="crypto must be one of ed25519-blake3, sm2-sm3"):
        get_suite("sm9")
    with pytest.raises(TypeError, match="crypto must be a suite name"):
        get_suite(3)  # type: ignore[arg-type]


def test_sm2_sm3_suite_hashes_with_sm3_and_blake3_suite_with_blake3():
    data = [os.urandom(n) for n in (0, 1, 63, 64, 65, 250)]
    assert SM.hash(b"abc").hex() == \
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"  # GB/T 32905 ex. 1
    assert SM.hash_many(data) == [hashing.sm3(d) for d in data]
    assert ED.hash_many(data) == [hashing.blake3(d) for d in data]
    assert SM.hash(b"x") != ED.hash(b"x")


def test_tx_root_and_proofs_of_the_sm3_tree_over_tx_ids():
    txs = [os.urandom(40 + i) for i in range(7)]
    ids = SM.hash_many(txs)
    root = SM.tx_root(ids)
    assert root == hashing.sm3_merkle_root(ids)  # leaves are the ids: SM3(0x00 || id)
    assert SM.tx_root(b"".join(ids)) == root  # packed form, as the store passes it
    assert root != ED.tx_root(ED.hash_many(txs))
    for i, t in enumerate(txs):
        proof = SM.tx_proof(txs, i)
        assert SM.verify_tx_proof(root, t, proof)
        assert not SM.verify_tx_proof(root, txs[(i + 1) % 7], proof)
    with pytest.raises(ValueError, match="multiple of 32"):
        SM.tx_root(b"\0" * 33)


def test_signatures_and_batches_of_each_suite():
    for suite in (ED, SM):
        keys = [suite.generate_key() for _ in range(5)]
        msgs = [os.urandom(50) for _ in keys]
        sigs = [k.sign(m) for k, m in zip(keys, msgs)]
        pks = [k.public_key for k in keys]
        assert len(pks[0]) == suite.public_key_bytes and len(sigs[0]) == 64
        assert all(suite.verify(p, m, s) for p, m, s in zip(pks, msgs, sigs))
        bad = sigs[:2] + [bytes([sigs[2][0] ^ 1]) + sigs[2][1:]] + sigs[3:]
        assert suite.verify_batch(pks, msgs, bad) == [True, True, False, True, True]
    # An SM2 signature is checked with the default user ID, as crypto.sm2_verify does.
    k = SM.generate_key()
    assert crypto.sm2_verify(k.public_key, b"m", k.sign(b"m"))
    # Keys and signatures of the other suite (or no size at all) are False, never a crash.
    ed = ED.generate_key()
    assert SM.verify_batch([ed.public_key, k.public_key], [b"m", b"m"],
                           [ed.sign(b"m"), k.sign(b"m")]) == [False, True]
    assert not SM.verify(ed.public_key, b"m", ed.sign(b"m"))


def test_key_from_seed_is_deterministic_and_key_files_round_trip():
    a, b = SM.key_from_seed(b"\1" * 32), SM.key_from_seed(b"\1" * 32)
    assert isinstance(a, Sm2Key) and a.public_key == b.public_key
    assert SM.key_from_seed(b"\2" * 32).public_key != a.public_key
    obj = SM.key_to_json(a)
    assert obj["type"] == "sm2" and SM.key_from_json(obj).public_key == a.public_key
    with pytest.raises(SuiteMismatch, match="a 'sm2' key, but this chain's suite "
                                            "ed25519-blake3 needs a 'ed25519' key"):
        ED.key_from_json(obj)
    with pytest.raises(SuiteMismatch, match="needs a 'sm2' key"):
        SM.key_from_json(ED.key_to_json(ED.generate_key()))


# ---- envelopes ----------------------------------------------------------------------------------

def test_sm2_envelopes_verify_decode_and_refuse_the_other_suite():
    key = SM.generate_key()
    env = tx.encode_tx(key, 7, b"k=v", CHAIN)
    assert env[0] == 2 and env[1:65] == key.public_key
    decoded = tx.decode_tx(env, suite=SM)
    assert (decoded.sender, decoded.nonce, decoded.payload) == (key.public_key, 7, b"k=v")
    assert decoded.tx_id == hashing.sm3(env)
    assert tx.sender_and_nonce(env) == (key.public_key, 7)
    tampered = env[:-1] + bytes([env[-1] ^ 1])
    other_chain = tx.encode_tx(key, 7, b"k=v", "another")
    assert tx.verify_txs([env, tampered, other_chain, env[:-2]], CHAIN, suite=SM) == \
        [True, False, False, False]
    ed_env = tx.encode_tx(crypto.SigningKey.generate(), 1, b"k=v", CHAIN)
    # Each suite refuses the other's envelopes: False in verification, a clear decode error.
    assert tx.verify_txs([ed_env, env], CHAIN, suite=SM) == [False, True]
    assert tx.verify_txs([ed_env, env], CHAIN) == [True, False]
    with pytest.raises(tx.TxDecodeError, match="envelope version 1 is an ed25519-blake3 "
                                               "transaction; this chain's crypto suite is sm2-sm3"):
        tx.decode_tx(ed_env, suite=SM)
    with pytest.raises(tx.TxDecodeError, match="version 2 is an sm2-sm3 transaction"):
        tx.decode_tx(env, suite=ED)
    with pytest.raises(tx.TxDecodeError, match="envelope version 3 is not 1 or 2"):
        tx.decode_tx(b"\x03" + ed_env[1:])
    with pytest.raises(tx.TxDecodeError, match="shorter than the 141-byte minimum of envelope "
                                               "version 2"):  # a v1 body under the v2 byte
        tx.decode_tx(b"\x02" + ed_env[1:])
    with pytest.raises(TypeError, match="envelopes\\[1\\] must be bytes"):
        tx.verify_txs([env, "x"], CHAIN, suite=SM)  # type: ignore[list-item]


def test_sm2_signing_key_from_crypto_signs_envelopes_too():
    raw = crypto.Sm2SigningKey.generate()
    env = tx.encode_tx(raw, 1, b"a=b", CHAIN)
    assert tx.verify_txs([env], CHAIN, suite=SM) == [True]
    with pytest.raises(TypeError, match="signing_key must be a SigningKey or an SM2 key"):
        tx.encode_tx(object(), 1, b"", CHAIN)


def test_mempool_of_an_sm2_chain_refuses_ed25519_envelopes_with_a_clear_error():
    good = tx.encode_tx(SM.generate_key(), 1, b"a=1", CHAIN)
    ed_env = tx.encode_tx(crypto.SigningKey.generate(), 1, b"a=1", CHAIN)
    forged = good[:-1] + bytes([good[-1] ^ 1])

    async def main():
        pool = Mempool(chain_id=CHAIN.encode(), check_tx=lambda t: _Ok(),
                       find_committed=lambda ids: [False] * len(ids), suite=SM)
        pool.start()
        try:
            return pool, await pool.add_many([good, ed_env, forged], local=True)
        finally:
            await pool.stop()

    pool, (ok, other_suite, bad_sig) = asyncio.run(main())
    assert ok.ok and ok.tx_id == hashing.sm3(good)  # the id is SM3 of the envelope
    assert other_suite.code == MALFORMED
    assert "ed25519-blake3 transaction; this chain's crypto suite is sm2-sm3" in other_suite.log
    assert bad_sig.code == BAD_SIGNATURE  # a forged SM2 signature is what it always was
    assert pool.rejected == {MALFORMED: 1, BAD_SIGNATURE: 1}
    assert len(pool) == 1


class _Ok:
    ok = True
    code = 0
    log = ""


# ---- genesis, homes and key files ----------------------------------------------------------------

def test_init_home_with_sm2_writes_the_suite_and_sm2_keys(tmp_path):
    home = config.init_home(str(tmp_path / "n"), "c", crypto="sm2-sm3")
    obj = json.loads((tmp_path / "n" / config.GENESIS_FILE).read_text())
    assert obj["crypto"] == "sm2-sm3"
    assert len(bytes.fromhex(obj["validators"][0]["public_key"])) == 64
    key_obj = json.loads((tmp_path / "n" / config.VALIDATOR_KEY_FILE).read_text())
    assert key_obj["type"] == "sm2" and "seed" not in key_obj
    loaded = config.load_home(home.path)
    assert loaded.genesis.suite is SM
    assert loaded.validator_key.public_key == home.validator_key.public_key
    # The genesis hash is the suite's: SM3 over the canonical JSON.
    text = json.dumps(loaded.genesis.to_json(), sort_keys=True, separators=(",", ":"))
    assert loaded.genesis.hash() == hashing.sm3(b"engine/genesis/v1" + text.encode())


def test_default_genesis_is_unchanged_by_the_suite_field(tmp_path):
    home = config.init_home(str(tmp_path / "n"), "c")
    obj = json.loads((tmp_path / "n" / config.GENESIS_FILE).read_text())
    assert "crypto" not in obj  # ed25519 chains keep their genesis files and hashes
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    assert home.genesis.hash() == hashing.blake3(b"engine/genesis/v1" + text.encode())


def test_genesis_refuses_keys_of_the_other_suite_and_unknown_suites():
    ed_pk = crypto.SigningKey.generate().public_key.hex()
    sm_pk = SM.generate_key().public_key.hex()
    base = {"chain_id": "c", "validators": [{"power": 1, "public_key": ed_pk}]}
    with pytest.raises(SuiteMismatch, match=r"g.json: validators\[0\].public_key is a "
                                            r"ed25519-blake3 key \(32 bytes\); this chain's "
                                            r"suite is sm2-sm3"):
        config.Genesis.from_json(dict(base, crypto="sm2-sm3"), "g.json")
    with pytest.raises(SuiteMismatch, match="is a sm2-sm3 key"):
        config.Genesis.from_json({"chain_id": "c",
                                  "validators": [{"power": 1, "public_key": sm_pk}]}, "g.json")
    with pytest.raises(ValueError, match="^g.json: crypto must be one of"):
        config.Genesis.from_json(dict(base, crypto="rsa"), "g.json")
    g = config.Genesis.from_json({"chain_id": "c", "crypto": "sm2-sm3",
                                  "validators": [{"power": 1, "public_key": sm_pk}]}, "g.json")
    assert g.crypto == "sm2-sm3" and g.to_json()["crypto"] == "sm2-sm3"


def test_a_key_file_of_the_other_suite_is_refused_naming_the_file(tmp_path):
    home = config.init_home(str(tmp_path / "n"), "c", crypto="sm2-sm3")
    path = os.path.join(home.path, config.NODE_KEY_FILE)
    with open(path, "w") as f:
        f.write(json.dumps(ED.key_to_json(ED.generate_key())))
    with pytest.raises(ValueError, match=f"^{path}: a 'ed25519' key, but this chain's suite "
                                         "sm2-sm3 needs a 'sm2' key"):
        config.load_home(home.path)
    key = SM.generate_key()
    with open(path, "w") as f:
        f.write(json.dumps(dict(SM.key_to_json(key), public_key="00" * 64)))
    with pytest.raises(ValueError, match="public_key does not match the private key"):
        config.load_home(home.path)


# ---- the store -----------------------------------------------------------------------------------

def test_store_keeps_its_suite_and_never_opens_as_the_other(tmp_path):
    path = str(tmp_path / "s")
    store = Store(path, sync=False, suite=SM)
    key = SM.generate_key()
    txs = [tx.encode_tx(key, i, b"k%d=v" % i, CHAIN) for i in range(5)]
    store.save_genesis(bytes(32))
    store.save_block(1, b"\1" * 32, b"header", txs, b"cert", parent_hash=bytes(32),
                     app_hash=bytes(32))
    stored = store.load_block(1)
    assert stored is not None
    assert stored.tx_root == hashing.sm3_merkle_root(SM.hash_many(txs))
    loc = store.find_txs([hashing.sm3(txs[3])])[0]
    assert loc is not None and loc.index == 3
    proof = store.tx_proof(hashing.sm3(txs[3]))
    assert proof is not None and SM.verify_tx_proof(stored.tx_root, txs[3], proof.proof)
    store.close()
    with pytest.raises(StoreError, match="holds a sm2-sm3 chain, not ed25519-blake3: a chain's "
                                         "crypto suite cannot change after genesis"):
        Store(path, sync=False, suite=ED)
    again = Store(path, sync=False)  # no suite named: the one recorded at creation
    assert again.suite is SM and again.load_block(1) is not None
    again.close()
    Store(str(tmp_path / "e"), sync=False).close()
    with pytest.raises(StoreError, match="holds a ed25519-blake3 chain, not sm2-sm3"):
        Store(str(tmp_path / "e"), sync=False, suite=SM)


# ---- the handshake ------------------------------------------------------------------------------

async def _pair(server_key, client_key, server_suite, client_suite):
    done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_conn(reader, writer):
        try:
            s = await handshake(reader, writer, node_key=server_key, chain_id=CHAIN,
                                initiator=False, is_allowed=lambda k: True,
                                frame_bytes_max=1 << 16, suite=server_suite)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            s = e
            writer.close()
        done.set_result(s)

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        c = await handshake(reader, writer, node_key=client_key, chain_id=CHAIN, initiator=True,
                            is_allowed=lambda k: True, frame_bytes_max=1 << 16, suite=client_suite)
    except Exception as e:  # noqa: BLE001
        c = e
    s = await done
    server.close()
    return c, s


def test_handshake_with_sm2_node_keys():
    a, b = SM.generate_key(), SM.generate_key()

    async def main():
        c, s = await _pair(a, b, SM, SM)
        assert c.peer_key == a.public_key and s.peer_key == b.public_key
        await c.send(b"hello")
        assert await s.recv() == b"hello"
        c.close()
        s.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_handshake_between_suites_is_refused_as_another_genesis():
    async def main():
        return await _pair(ED.generate_key(), SM.generate_key(), ED, SM)

    c, s = asyncio.run(asyncio.wait_for(main(), 10))
    assert isinstance(s, GenesisMismatch), s
    assert "peer speaks the sm2-sm3 crypto suite; this chain's suite is " \
           "ed25519-blake3" in str(s)
    assert isinstance(c, GenesisMismatch) and "peer speaks the ed25519-blake3 crypto suite" in str(c)


# ---- the block format ---------------------------------------------------------------------------

def test_block_ids_roots_and_validator_hashes_follow_the_suite():
    from engine import consensus as cs
    from engine.block import Block, block_id, header_size
    from engine.errors import ProtocolError

    key = SM.generate_key()
    txs = [tx.encode_tx(key, i, b"k%d=v" % i, CHAIN) for i in range(3)]
    vset = cs.ValidatorSet([cs.Validator(SM.generate_key().public_key, 1)])
    vh = vset.hash(SM.hash)
    assert vh == hashing.sm3(b"engine/validators/v1" + vset.encode()) != vset.hash()
    block = Block.make(chain_id=b"c", height=2, time_ms=1, parent_hash=bytes(32),
                       app_hash=bytes(32), proposer_index=0, last_commit=b"cert",
                       evidence=[b"ev"], txs=txs, validators_hash=vh, next_validators_hash=vh,
                       suite=SM)
    assert block.tx_root == hashing.sm3_merkle_root(SM.hash_many(txs))
    header = block.header(SM)
    assert header.last_commit_hash == hashing.sm3(b"cert")
    assert header.evidence_hash == hashing.sm3_merkle_root([hashing.sm3(b"ev")])
    raw = block.encode(SM)
    assert block_id(raw, SM) == hashing.sm3(raw[:header_size(1)]) == block.hash(SM)
    with pytest.raises(ProtocolError, match="tx root"):  # read as an ed25519-blake3 block
        block_id(raw, ED)


def test_block_sync_serves_sm2_blocks_that_keep_their_ids(tmp_path):
    """A lagging node catches up with blocks its peers re-assemble from their stores: on an
    sm2-sm3 chain they must re-encode with SM3 hashes, or every served block has another id
    (the peer is then penalised for each one and the lagging node never catches up)."""
    from engine import consensus as cs
    from engine.block import Block, block_id
    from engine.net import codec
    from engine.node.blocksync import BlockSync
    from engine.node.tip import ChainTip

    store = Store(str(tmp_path / "s"), sync=False, suite=SM)
    store.save_genesis(bytes(32))
    key = SM.generate_key()
    vset = cs.ValidatorSet([cs.Validator(SM.generate_key().public_key, 1)])
    vh = vset.hash(SM.hash)
    block = Block.make(chain_id=b"c", height=1, time_ms=5, parent_hash=bytes(32),
                       app_hash=bytes(32), proposer_index=0, last_commit=b"", evidence=[],
                       txs=[tx.encode_tx(key, i, b"k=%d" % i, CHAIN) for i in range(4)],
                       validators_hash=vh, next_validators_hash=vh, suite=SM)
    raw = block.encode(SM)
    bid = block_id(raw, SM)
    store.save_block(1, bid, block.head(SM), list(block.txs), b"cert", parent_hash=bytes(32),
                     app_hash=bytes(32))
    sent: list[bytes] = []

    class _Wire:
        def send(self, peer, message):
            sent.append(message)

    tip = ChainTip()
    tip.height = 1
    sync = BlockSync(chain_id=b"c", validators=vset, tip=tip, store=store, wire=_Wire(),
                     signatures=None, counters=None)  # type: ignore[arg-type]
    sync.on_get_blocks(b"peer", 1, 10)
    store.close()
    (message,) = sent
    (height, served, cert), = codec.decode(message, codec.NetLimits()).fields[0]
    assert (height, cert) == (1, b"cert")
    assert served == raw and block_id(served, SM) == bid


def test_compact_proposals_check_heads_and_ids_in_the_chain_suite():
    from engine import consensus as cs
    from engine.block import Block, block_id
    from engine.errors import ProtocolError
    from engine.node.compact import CompactBlocks, split_block

    key = SM.generate_key()
    txs = [tx.encode_tx(key, i, b"k=%d" % i, CHAIN) for i in range(5)]
    vh = cs.ValidatorSet([cs.Validator(SM.generate_key().public_key, 1)]).hash(SM.hash)
    raw = Block.make(chain_id=b"c", height=3, time_ms=5, parent_hash=bytes(32),
                     app_hash=bytes(32), proposer_index=0, last_commit=b"", evidence=[],
                     txs=txs, validators_hash=vh, next_validators_hash=vh,
                     suite=SM).encode(SM)
    head, _, ids = split_block(raw, SM)
    assert ids == SM.hash_many(txs)
    proposal = cs.Proposal(3, 0, -1, block_id(raw, SM), 0, bytes(64))
    pool = dict(zip(ids[:3], txs[:3]))
    lookup = lambda wanted: [pool.get(i) for i in wanted]
    pending = CompactBlocks(lookup, SM).open(proposal, head, ids, b"peer")
    assert pending.missing == {3, 4}
    done = CompactBlocks(lookup, SM)
    done.open(proposal, head, ids, b"peer")
    complete = done.receive(proposal.block_hash, [3, 4], txs[3:])
    assert complete is not None and complete.block() == raw
    with pytest.raises(ProtocolError, match="does not hash to the proposal's block"):
        CompactBlocks(lookup).open(proposal, head, ids, b"peer")  # read as ed25519-blake3
    with pytest.raises(ProtocolError, match="is not the one the block names"):
        done2 = CompactBlocks(lookup, SM)
        done2.open(proposal, head, ids, b"peer")
        done2.receive(proposal.block_hash, [3], [txs[4]])
