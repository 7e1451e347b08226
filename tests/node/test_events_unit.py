"""Event subscriptions piece by piece (engine/node/events.py): filters parsed and matched by
value, stored results read back, the bus's limits at their exact edges, a slow subscriber
dropped with its reason, closing, and what a block publishes to whom. Written against the
survivors of a mutation run over the module (docs/mutation.md)."""
from __future__ import annotations

import asyncio

import pytest

from engine.app import Event, TxResult
from engine.node import events as ev
from engine.node.commit import _packed_results
from engine.node.events import EventBus, parse_filter, unpack_result
from tests.node.helpers import run


@pytest.mark.parametrize("text,parsed", [
    ("tx", ("tx", None, None)),
    ("transfer.to=bob", ("transfer", "to", "bob")),
    ("transfer.to=", ("transfer", "to", "")),
    ("a.b=c=d", ("a", "b", "c=d")),
    ("t" * 512, ("t" * 512, None, None)),
])
def test_filters_that_parse(text, parsed):
    assert parse_filter(text) == parsed


@pytest.mark.parametrize("text", ["", "t" * 513, "a.b", "a=x", ".k=v", "a.=v", ".=v"])
def test_filters_that_are_refused_name_the_form(text):
    with pytest.raises(ValueError, match="type.key=value"):
        parse_filter(text)


@pytest.mark.parametrize("text", [5, None, b"tx"])
def test_a_filter_that_is_not_a_string_is_a_value_error(text):
    with pytest.raises(ValueError, match="a filter is"):
        parse_filter(text)  # type: ignore[arg-type]


def test_filters_match_types_and_values_by_equality():
    def match(f: str, *events: Event) -> bool:
        return ev._matches([parse_filter(f)], events)

    assert match("m", Event("m"))
    for other in ("l", "n"):  # just below and above in string order
        assert not match("m", Event(other))
        assert not match("t.k=m", Event("t", {"k": other}))
    assert match("t.k=m", Event("t", {"k": "m"}))
    assert not match("t.k=m", Event("t", {"j": "m"}))  # no such attribute
    assert not match("t.k=m", Event("u", {"k": "m"}))  # the value on another type
    assert match("t.k=m", Event("u", {"k": "x"}), Event("t", {"k": "m"}))  # any event
    # Every filter must match (each by any event).
    assert ev._matches([("a", None, None), ("b", None, None)], [Event("a"), Event("b")])
    assert not ev._matches([("a", None, None), ("b", None, None)], [Event("a")])
    assert ev._matches([], [])


def test_stored_results_read_back_with_and_without_events():
    plain = TxResult(3, "refused", b"\x01\x02")
    rich = TxResult(0, "ok", b"", (Event("transfer", {"to": "bob"}), Event("fee")))
    packed = _packed_results([plain, rich])
    assert unpack_result(packed[0]) == (3, "refused", b"\x01\x02", [])
    assert unpack_result(packed[1]) == (0, "ok", b"", [Event("transfer", {"to": "bob"}),
                                                      Event("fee")])




def test_the_subscriber_limit_is_exact_and_frees_on_close():
    async def main():
        bus = EventBus()
        assert not bus
        subs = [bus.subscribe() for _ in range(ev.SUBSCRIBERS_MAX)]
        assert bus
        with pytest.raises(ValueError, match="too many subscribers \\(at most 256\\)"):
            bus.subscribe()
        subs[7].close()
        bus.subscribe()  # one slot free again
        with pytest.raises(ValueError, match="too many subscribers"):
            bus.subscribe()

    run(main())


def test_the_filter_limit_is_exact():
    async def main():
        bus = EventBus()
        bus.subscribe([f"t{i}" for i in range(ev.FILTERS_MAX)])
        with pytest.raises(ValueError, match="at most 16 filters"):
            bus.subscribe([f"t{i}" for i in range(ev.FILTERS_MAX + 1)])

    run(main())


def test_the_queue_bound_is_checked_at_its_edges():
    async def main():
        bus = EventBus()
        assert bus.subscribe(queue_max=1)._queue.maxsize == 1
        assert bus.subscribe(queue_max=1024)._queue.maxsize == 1024
        assert bus.subscribe()._queue.maxsize == ev.SUBSCRIPTION_QUEUE_MAX == 1024
        for bad in (0, -1, 1025, True, 2.0, "8"):
            with pytest.raises(ValueError, match="queue_max must be in 1..1024"):
                bus.subscribe(queue_max=bad)  # type: ignore[arg-type]

    run(main())


def _publish(bus: EventBus, height: int, n: int, events=(), block_events=()) -> list[bytes]:
    ids = [bytes([height % 256, i]) * 16 for i in range(n)]
    bus.publish(height, bytes([height % 256]) * 32, ids,
                [TxResult(0, f"r{i}", bytes([i]), events) for i in range(n)], block_events)
    return ids


def test_a_slow_subscriber_is_dropped_with_its_reason_and_reads_none():
    async def main():
        bus = EventBus()
        slow = bus.subscribe(queue_max=2)
        fast = bus.subscribe()
        _publish(bus, 1, 3)  # three messages for a queue of two
        assert slow.reason == "slow_client: more than 2 messages waiting"
        assert await slow.get() is None  # what was queued is dropped
        assert fast.reason is None and [(await fast.get())["index"] for _ in range(3)] == [0, 1, 2]
        _publish(bus, 2, 1)  # the dropped one gets nothing more, the other goes on
        assert (await fast.get())["height"] == 2
        assert await slow.get() is None
        assert slow not in bus._subs and fast in bus._subs

    run(main())


def test_close_wakes_a_waiting_reader_and_is_idempotent():
    async def main():
        bus = EventBus()
        sub = bus.subscribe()
        reader = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0)
        sub.close("shutting down")
        assert await reader is None
        assert sub.reason == "shutting down"
        sub.close("again")
        assert sub.reason == "shutting down"
        bus.discard(sub)  # already gone: nothing to do
        assert not bus

    run(main())


def test_close_all_closes_every_subscriber_with_the_reason():
    async def main():
        bus = EventBus()
        subs = [bus.subscribe() for _ in range(3)]
        bus.close_all("node stopped")
        assert [s.reason for s in subs] == ["node stopped"] * 3
        assert not bus
        assert [await s.get() for s in subs] == [None] * 3

    run(main())


def test_a_block_publishes_to_each_subscriber_what_its_filters_match():
    async def main():
        bus = EventBus()
        everything = bus.subscribe()
        transfers = bus.subscribe(["transfer.to=bob"])
        blocks = bus.subscribe(["reward"])
        transfer = (Event("transfer", {"to": "bob"}),)
        ids = _publish(bus, 300, 2, events=transfer, block_events=(Event("reward", {"n": "1"}),))
        block_msg = {"kind": "block", "height": 300, "hash": (bytes([300 % 256]) * 32).hex(),
                     "events": [{"type": "reward", "attributes": {"n": "1"}}]}
        tx_msgs = [{"kind": "tx", "height": 300, "index": i, "tx_id": ids[i].hex(),
                    "result": {"code": 0, "log": f"r{i}", "data": bytes([i]).hex(),
                               "events": [{"type": "transfer", "attributes": {"to": "bob"}}]}}
                   for i in range(2)]
        assert [await everything.get() for _ in range(3)] == [block_msg, *tx_msgs]
        assert [await transfers.get() for _ in range(2)] == tx_msgs
        assert await blocks.get() == block_msg
        for sub in (everything, transfers, blocks):
            assert sub._queue.empty()
        # A block without events offers no block message; unmatched transactions nothing.
        _publish(bus, 7, 1)
        assert (await everything.get())["kind"] == "tx"
        assert transfers._queue.empty() and blocks._queue.empty()

    run(main())


def test_publish_to_nobody_builds_nothing():
    bus = EventBus()
    _publish(bus, 1, 3, block_events=(Event("reward"),))  # no subscriber: no error, no state
    assert not bus
