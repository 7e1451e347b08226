"""Events for clients: what committed transactions and blocks did, pushed to subscribers.

The committer publishes each committed block here once it is durable. A subscriber gives
filters (``type`` or ``type.key=value``; all must match, each by any event of the same
transaction or block) and gets messages in commit order through a bounded queue. A subscriber
whose queue is full is dropped with a reason instead of slowing the node or growing memory: the
node never waits for a client. Nothing is built when nobody subscribes.

Messages (JSON-ready dicts):

- ``{"kind": "tx", "height", "index", "tx_id", "result": {"code", "log", "data", "events"}}``
- ``{"kind": "block", "height", "hash", "events"}`` for the block's own events.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgpack

from engine.app import Event, TxResult
from engine.rpc.api import EventInfo, ResultInfo

__all__ = ["EventBus", "Subscription", "parse_filter", "result_json", "unpack_result"]

#: Messages a subscriber may have waiting before it is dropped as too slow.
SUBSCRIPTION_QUEUE_MAX = 1024
#: Subscribers of one node at most.
SUBSCRIBERS_MAX = 256
#: Filters of one subscription at most.
FILTERS_MAX = 16


def parse_filter(text: str) -> tuple[str, str | None, str | None]:
    """``type`` or ``type.key=value`` -> (type, key, value); ValueError naming what is wrong."""
    if not isinstance(text, str) or not text or len(text) > 512:
        raise ValueError(f"a filter is 'type' or 'type.key=value' (at most 512 chars), "
                         f"not {text!r}")
    head, sep, value = text.partition("=")
    if not sep:
        if "." in text:
            raise ValueError(f"filter {text!r}: a filter on an attribute is 'type.key=value'")
        return text, None, None
    kind, dot, key = head.partition(".")
    if not dot or not kind or not key:
        raise ValueError(f"filter {text!r}: a filter on an attribute is 'type.key=value'")
    return kind, key, value


def _matches(filters: Sequence[tuple[str, str | None, str | None]],
             events: Sequence[Event]) -> bool:
    for kind, key, value in filters:
        if not any(e.type == kind and (key is None or e.attributes.get(key) == value)
                   for e in events):
            return False
    return True


def events_json(events: Sequence[Event]) -> list[EventInfo]:
    return [{"type": e.type, "attributes": dict(e.attributes)} for e in events]


def result_json(code: int, log: str, data: bytes, events: Sequence[Event]) -> ResultInfo:
    return {"code": code, "log": log, "data": bytes(data).hex(), "events": events_json(events)}


def unpack_result(raw: bytes) -> tuple[int, str, bytes, list[Event]]:
    """A stored result (``[code, log, data]`` or ``[code, log, data, events]``, see
    engine/node/commit.py): (code, log, data, events)."""
    fields = msgpack.unpackb(raw)
    events = [Event(t, dict(attrs)) for t, attrs in fields[3]] if len(fields) > 3 else []
    return fields[0], fields[1], bytes(fields[2]), events


class Subscription:
    """One subscriber: ``await get()`` returns the next message, or None once closed
    (``reason`` says why)."""

    def __init__(self, bus: EventBus, filters: list[tuple[str, str | None, str | None]],
                 queue_max: int):
        self.filters = filters
        self.reason: str | None = None
        self._bus = bus
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(queue_max)

    def offer(self, message: dict[str, Any]) -> None:
        if self.reason is not None:
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.close(f"slow_client: more than {self._queue.maxsize} messages waiting")

    async def get(self) -> dict[str, Any] | None:
        """The next message; None once closed (what was still queued is dropped: a client
        that fell behind resynchronises from the chain, e.g. ``GET /blocks``)."""
        if self.reason is not None:
            return None
        message = await self._queue.get()
        return None if self.reason is not None else message

    def close(self, reason: str = "closed") -> None:
        if self.reason is not None:
            return
        self.reason = reason
        self._bus.discard(self)
        # Wake a waiting reader; a full queue is emptied first (the client is dropped anyway).
        while True:
            try:
                self._queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()


class EventBus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []

    def __bool__(self) -> bool:
        return bool(self._subs)

    def subscribe(self, filters: Sequence[str] = (),
                  queue_max: int = SUBSCRIPTION_QUEUE_MAX) -> Subscription:
        if len(self._subs) >= SUBSCRIBERS_MAX:
            raise ValueError(f"too many subscribers (at most {SUBSCRIBERS_MAX})")
        if len(filters) > FILTERS_MAX:
            raise ValueError(f"at most {FILTERS_MAX} filters per subscription")
        if type(queue_max) is not int or not 1 <= queue_max <= SUBSCRIPTION_QUEUE_MAX:
            raise ValueError(f"queue_max must be in 1..{SUBSCRIPTION_QUEUE_MAX}")
        sub = Subscription(self, [parse_filter(f) for f in filters], queue_max)
        self._subs.append(sub)
        return sub

    def discard(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def close_all(self, reason: str) -> None:
        for sub in list(self._subs):
            sub.close(reason)

    def publish(self, height: int, block_hash: bytes, tx_ids: Sequence[bytes],
                results: Sequence[TxResult], block_events: Sequence[Event]) -> None:
        """A block is committed: offer each subscriber what matches its filters."""
        for sub in list(self._subs):
            if block_events and _matches(sub.filters, block_events):
                sub.offer({"kind": "block", "height": height, "hash": block_hash.hex(),
                           "events": events_json(block_events)})
            for i, (tx_id, r) in enumerate(zip(tx_ids, results)):
                events = getattr(r, "events", ())
                if sub.filters and not (events and _matches(sub.filters, events)):
                    continue
                sub.offer({"kind": "tx", "height": height, "index": i, "tx_id": tx_id.hex(),
                           "result": result_json(r.code, r.log, getattr(r, "data", b""),
                                                 events)})
                if sub.reason is not None:
                    break
