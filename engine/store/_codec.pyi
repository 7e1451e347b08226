"""Type stubs for the Cython block-record codec (engine/store/_codec.pyx)."""

record_bytes_max: int
TAG_SLOT_BYTES: int
RUN_ENTRY_BYTES: int
LOC_INDEX_BITS: int

def check_items(items: list, name: str) -> int: ...
def encode_block(out: bytearray, prefix: bytes, results: list, run: bytes,
                 txs: list) -> tuple[int, int]: ...
def block_run(ids: bytes, height: int) -> bytes: ...
