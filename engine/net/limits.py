"""Named bounds of the network layer (units last), checked together once at start-up."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetLimits:
    """Every bound the p2p layer enforces on what peers send and on what it buffers."""

    #: Largest sealed frame (plaintext + 16-byte tag). A header announcing more ends the stream.
    frame_bytes_max: int = 16 * 1024 * 1024
    #: Items in one batched message (votes, transactions, evidence, blocks).
    votes_per_message_max: int = 4096
    txs_per_message_max: int = 8192
    evidence_per_message_max: int = 64
    blocks_per_message_max: int = 32
    #: Transaction ids in one compact proposal (and indices/envelopes in a request or answer
    #: for its missing transactions); the largest block's transaction count.
    proposal_txs_max: int = 100_000
    #: One transaction envelope.
    tx_bytes_max: int = 64 * 1024
    #: Messages waiting to be written to one peer; beyond it new messages are dropped and counted.
    send_queue_messages_max: int = 4096
    #: Dropped messages from one peer before it is disconnected.
    peer_faults_max: int = 16
    #: Inbound connections still in their handshake at once ...
    pending_handshakes_max: int = 32
    #: ... of which this many only from addresses configured peers live at (strangers share
    #: the rest), so idle sockets from elsewhere cannot lock a configured peer out ...
    pending_handshakes_reserved: int = 8
    #: ... and at most this many from one stranger's address.
    pending_handshakes_per_source_max: int = 4
    handshake_timeout_ms: int = 5000
    reconnect_delay_ms_min: int = 100
    reconnect_delay_ms_max: int = 5000

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        if self.tx_bytes_max >= self.frame_bytes_max:
            raise ValueError("tx_bytes_max must be below frame_bytes_max")
        if self.pending_handshakes_reserved >= self.pending_handshakes_max:
            raise ValueError("pending_handshakes_reserved must be below pending_handshakes_max")
        if self.reconnect_delay_ms_min > self.reconnect_delay_ms_max:
            raise ValueError("reconnect_delay_ms_min must not exceed reconnect_delay_ms_max")
