"""Named bounds of the engine, in one place.

Every queue, buffer and loop that peer input can grow has a bound here, named with its unit last.
The relationships between bounds are asserted once at import (``check_limits``), so a change that
breaks one fails loudly at start-up instead of deep inside a run. Other layers add their own
bounds to this file.
"""
from __future__ import annotations

# --- validator set and voting power ---------------------------------------------------------
#: Largest validator set the consensus core and the native tally accept.
validators_max = 10_000
#: Largest total voting power; 3 * total must fit in a signed 64-bit integer in the tally.
voting_power_total_max = 1 << 60
#: Longest chain id (it is length-prefixed with one byte in the sign bytes).
chain_id_bytes_max = 50
#: Validator updates one block's ``finalize_block`` may return (engine/valset.py): bounds how
#: much of the set one height can change.
validator_updates_per_block_max = 16

# --- consensus message log -------------------------------------------------------------------
#: Messages for a round further ahead than this (of the current round) are dropped and reported.
rounds_ahead_max = 1_000
#: Heights ahead of the current one whose messages are buffered.
heights_ahead_max = 2
#: Messages buffered for future heights (all of them together).
future_height_messages_max = 20_000
#: Distinct proposals kept per round (a second one means the proposer equivocated).
proposals_per_round_max = 4
#: Values an equivocating validator's conflicting votes are counted for, per vote set.
equivocations_counted_max = 4
#: Largest block (proposal value) the core accepts, in bytes.
block_bytes_max = 64 << 20
#: Rounds a single height may reach before the core refuses to go on (a broken invariant).
rounds_max = 1 << 31

# --- proposer schedule -------------------------------------------------------------------------
#: Longest weighted round-robin schedule kept in memory; larger weights are scaled down to fit.
proposer_schedule_len_max = 1 << 20

# --- timeouts ------------------------------------------------------------------------------------
#: Longest round timeout the core ever asks for (the linear growth is capped here).
round_timeout_ms_max = 10 * 60 * 1000

# --- node: WAL buffering -------------------------------------------------------------------------
#: Received inputs wait at most this long in memory before their WAL records are written on
#: their own (an own signature writes them sooner, in its durable transaction).
wal_flush_ms = 200
#: ... or until this many bytes of records are waiting.
wal_pending_bytes_max = 16 << 20
#: Own signatures remembered as durable (only the current height's matter; pruned beyond this).
persisted_signatures_max = 64

# --- node: caches (each bounded; all but the recent blocks are emptied at every commit) -------
#: Validity verdicts of block values seen at the current height.
valid_blocks_cached_max = 64
#: Decoded blocks (with their tx ids) kept between validation and commit: proposals of a few
#: rounds at most.
decoded_blocks_cached_max = 8
#: Parent certificates (``last_commit``) already verified.
certificates_cached_max = 64
#: Compact proposals whose blocks wait for fetched transactions (engine/node/compact.py).
compact_blocks_pending_max = 8
#: Signatures verified in a batch and remembered so the core's own check is a set lookup.
preverified_signatures_max = 100_000
#: Recent blocks whose transaction ids are kept in memory for GET /block and GET /blocks.
recent_blocks_max = 64

# --- node: evidence ------------------------------------------------------------------------------
#: Evidence items waiting for a block.
evidence_pending_max = 256
#: Evidence older than this many heights is refused (bounds what a restarted node, which has
#: forgotten what was committed, could be tricked into proposing again).
evidence_age_heights_max = 1000
#: Evidence items one block carries at most.
evidence_per_block_max = 16

# --- node: block sync ----------------------------------------------------------------------------
#: Blocks requested from a peer per round trip during catch-up.
sync_blocks_per_request = 16
#: Bytes of blocks sent in one BLOCKS reply (well under the frame limit).
sync_reply_bytes_max = 4 << 20
#: Blocks one GET /blocks answer carries at most.
blocks_per_answer_max = 32
#: Block requests in flight at once during catch-up (each to one peer, for its own range).
sync_requests_in_flight_max = 8
#: ... and at most this many to one peer (so the window spreads over several).
sync_requests_per_peer_max = 4
#: Blocks received ahead of the next height to apply, waiting for their turn.
sync_blocks_buffered_max = 512

# --- node: pruning, snapshots, state sync ------------------------------------------------------
#: Blocks a node keeps however low ``retain_blocks`` is set (evidence and light clients need
#: recent headers and certificates).
retain_blocks_min = 20
#: Blocks one pruning step removes (one bounded write transaction, off the block's path).
prune_blocks_per_step = 256
#: A running node prunes once this many blocks are due, not after every block: one synced
#: write transaction per this many heights instead of one per height (a node keeps up to
#: this many - 1 blocks more than ``retain_blocks``).
prune_batch_blocks = 16
#: One snapshot chunk, in bytes of encoded state entries (a chunk may exceed it by one entry).
snapshot_chunk_bytes = 1 << 20
#: Chunks of one snapshot, and snapshots one peer may offer (bounds what a state-syncing node
#: holds for a hostile peer).
snapshot_chunks_max = 100_000
snapshots_offered_max = 16
#: Bytes of restored state a state-syncing node buffers before its one restore transaction.
snapshot_bytes_max = 4 << 30
#: Snapshot requests (list or chunk) one peer may make per second; beyond it they are dropped
#: and counted (a chunk is up to a MiB: a peer must not fill our send queue with them).
snapshot_requests_per_peer_per_s_max = 16
#: A snapshot or chunk request unanswered for this long goes to another peer.
state_sync_request_timeout_ms = 5000
#: Chunk requests in flight at once.
state_sync_chunks_in_flight_max = 4

# --- process memory (issue 13, soak) ----------------------------------------------------------
#: Transaction ids remembered as committed by the mempool (a re-sent one is refused without a
#: store lookup; older ones are still refused through the store). Each costs about 180 bytes
#: (a 32-byte bytes object and an ordered-dict entry): 100,000 ids are about 18 MiB, 20 s of
#: history at 5,000 tx/s. The 400,000 of before cost about 70 MiB once full.
mempool_committed_ids_cached_max = 100_000
#: Ids of verified, not yet committed transactions (a proposal's are not verified again).
mempool_verified_ids_cached_max = 100_000
#: Every this often a node returns free pages inside its heap to the OS (glibc
#: ``malloc_trim``): glibc gives back only the top of the heap by itself, and a soak's node held
#: about 40 % of its anonymous memory as free pages pinned below live allocations.
malloc_trim_interval_s = 30.0


def check_limits() -> None:
    """Assert the relationships between bounds (called once at import)."""
    assert 3 * voting_power_total_max < (1 << 63), "3 * voting power must fit in int64"
    assert validators_max < (1 << 31), "validator indices are int32 in the tally"
    assert chain_id_bytes_max <= 255, "chain id length is one byte in the sign bytes"
    assert rounds_ahead_max < rounds_max
    assert heights_ahead_max >= 1
    assert proposals_per_round_max >= 2, "room for the honest value next to an equivocation"
    assert decoded_blocks_cached_max >= proposals_per_round_max, "a round's proposals fit"
    assert persisted_signatures_max >= 4, "a height's own signatures fit (proposal + 2 votes)"
    assert evidence_per_block_max <= evidence_pending_max
    assert 1 <= prune_batch_blocks <= prune_blocks_per_step
    assert 1 <= validator_updates_per_block_max <= validators_max
    assert malloc_trim_interval_s > 0


check_limits()
