"""`engine bench tps`: a short real run on a 4-validator testnet of separate processes (every
accepted transaction committed once on every node, JSON keys, PNG), option checks, signing,
and the profile summary."""
from __future__ import annotations

import argparse
import json

import pytest

from engine import tx as txmod
from engine.benchmarks import tps
from engine.benchmarks.profile import format_profile, summarise_folded
from engine.benchmarks.txpath import SEGMENTS
from engine.cli import main

pytestmark = pytest.mark.timeout(150)


def _run_tps(tmp_path, capsys, *args: str) -> tuple[dict, str]:
    """`engine bench tps ARGS --json FILE`: the report and the printed text (exit code 0)."""
    out_json = tmp_path / "tps.json"
    code = main(["bench", "tps", *args, "--json", str(out_json)])
    text = capsys.readouterr().out
    assert code == 0, text
    return json.loads(out_json.read_text()), text


def test_short_run_commits_every_accepted_tx_once_on_every_node(tmp_path, capsys):
    out_png = tmp_path / "tps.png"
    report, text = _run_tps(tmp_path, capsys, "--validators", "4", "--duration", "3", "--rate",
                            "300", "--tx-bytes", "200", "--plot", str(out_png))
    for key in ("tps", "latency_ms", "submitted", "accepted", "committed", "lost",
                "nodes_agree", "blocks_per_s", "txs_per_block", "rounds_per_height",
                "cpu_percent", "crypto_ceiling", "calibration", "machine"):
        assert key in report, key
    assert report["lost"] == 0 and report["duplicates"] == 0 and report["nodes_agree"] is True
    assert report["accepted"] > 0 and report["committed"] == report["accepted"]
    assert report["submitted"] >= report["accepted"]
    assert set(report["latency_ms"]) >= {"p50", "p95", "p99"}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert set(report["cpu_percent"]) == {"node0", "node1", "node2", "node3", "loadgen"}
    assert report["crypto_ceiling"]["tps"] > 0 and report["setup"]["store_sync"] is True
    assert report["setup"]["block_interval_ms"] == 100  # the node default
    assert report["check"]["verified_height"] >= 1 and report["rounds_per_height"] >= 1
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PASS: every accepted transaction committed exactly once" in text
    assert "[rate 300" in text  # the progress display
    # CPU per committed transaction by stage, per node: every stage present, the rest of the
    # process as "other", never negative (stages do not overlap), summing to the total.
    per_node = report["cpu_us_per_tx"]
    assert set(per_node) == {"node0", "node1", "node2", "node3"}
    for per in per_node.values():
        assert set(per) == {*tps.STAGES, "native_threads", "other", "total"}
        assert per["verification"] > 0 and per["execution"] > 0 and per["storage"] > 0
        assert per["other"] >= -0.05 and per["native_threads"] >= 0
        assert abs(sum(v for k, v in per.items() if k != "total") - per["total"]) < 0.1
    assert "CPU us per tx" in text
    # Optimistic execution ran in the nodes (the kvstore allows it), and decisions used it.
    early = report["early_execution"]
    assert len(early["executions"]) == 4 and sum(early["reused"]) > 0, early
    assert all(e >= r for e, r in zip(early["executions"], early["reused"]))
    assert "early execution      per node:" in text
    # Where the heights' time went, per node: every phase, adding up to the height.
    _check_phases(report)
    assert "height phases ms     mean of 4 nodes: propose " in text


def _check_phases(report) -> dict[str, float]:
    """Every node reports every phase of its heights and they add up to the height; returns
    the mean of each phase over the nodes."""
    per_node = report["height_phases_ms"]
    assert set(per_node) == {"node0", "node1", "node2", "node3"}, per_node
    for per in per_node.values():
        assert set(per) == {*tps.PHASES, "height", "heights"}, per
        assert per["heights"] >= 1 and all(per[p] >= 0 for p in tps.PHASES)
        assert sum(per[p] for p in tps.PHASES) == pytest.approx(per["height"], abs=0.05)
    return {p: sum(n[p] for n in per_node.values()) / 4 for p in (*tps.PHASES, "height")}


def test_stage_counters_are_read_from_metrics_and_divided_by_committed_txs():
    text = """# HELP engine_stage_cpu_seconds_total Thread CPU time by stage
engine_stage_cpu_seconds_total{stage="admission"} 1.5
engine_stage_cpu_seconds_total{stage="verification"} 4.0
engine_process_cpu_seconds_total 12.0
engine_native_threads_cpu_seconds_total 2.0
engine_node_events_total{event="txs_committed"} 1000.0
engine_node_events_total{event="other"} 7.0
engine_node_events_total{event="chaos:delayed"} 42.0
engine_node_events_total{event="optimistic_executions"} 9.0
engine_node_events_total{event="optimistic_reused"} 8.0
engine_node_events_total{event="optimistic_failed"} 1.0
engine_height_phase_seconds_bucket{le="0.001",phase="propose"} 0.0
engine_height_phase_seconds_sum{phase="propose"} 0.5
engine_height_phase_seconds_count{phase="propose"} 10.0
engine_height_phase_seconds_sum{phase="height"} 0.9
engine_height_phase_seconds_count{phase="height"} 10.0
"""
    before = tps.parse_stage_counters(text)
    assert before == {"admission": 1.5, "verification": 4.0, "process": 12.0,
                      "native_threads": 2.0, "txs_committed": 1000.0, "chaos_delayed": 42.0,
                      "early_executions": 9.0, "early_reused": 8.0,
                      "phase_sum:propose": 0.5, "phase_count:propose": 10.0,
                      "phase_sum:height": 0.9, "phase_count:height": 10.0}
    # Mean ms per phase over the heights stored between two readings; a phase not observed
    # in them (a non-validator's votes) is left out; no height stored: nothing.
    later = {**before, "phase_sum:propose": 0.8, "phase_count:propose": 12.0,
             "phase_sum:height": 1.4, "phase_count:height": 14.0}
    assert tps.height_phases_ms(before, later) == {"propose": 150.0, "height": 125.0,
                                                   "heights": 4.0}
    assert tps.height_phases_ms(before, before) == {}
    after = {"admission": 1.6, "verification": 4.3, "process": 12.8, "native_threads": 2.1,
             "txs_committed": 1100.0}
    per = tps.cpu_per_tx(before, after)
    assert per == {"admission": 1000.0, "verification": 3000.0, "native_threads": 1000.0,
                   "other": 3000.0, "total": 8000.0}
    assert tps.cpu_per_tx(before, {**after, "txs_committed": 1000.0}) is None  # none committed


def test_a_lower_block_interval_reaches_the_nodes(tmp_path, capsys):
    """--block-interval-ms goes into every node's config: at 300 tx/s the default (100 ms)
    allows at most ten heights a second, 20 ms several times that."""
    report, text = _run_tps(tmp_path, capsys, "--validators", "4", "--duration", "3", "--rate",
                            "300", "--block-interval-ms", "20", "--trace-txs")
    assert report["setup"]["block_interval_ms"] == 20
    assert "block interval 20 ms" in text
    assert report["blocks_per_s"] > 15, report["blocks_per_s"]
    assert report["lost"] == 0 and report["nodes_agree"] is True
    # --trace-txs: about one transaction in 16 traced through the nodes, every one with a
    # complete path; each segment seen, gossip by those posted to another node than their
    # proposer (most of them); the whole path within the latencies the run measured.
    path = report["tx_path_ms"]
    assert path["used"] == path["traced"] >= 20, path
    assert set(path["segments"]) == set(SEGMENTS), path
    assert path["segments"]["gossip"]["samples"] >= path["used"] // 3
    assert all(st["p50"] >= 0 for st in path["segments"].values())
    assert path["posted_to_seen"]["p90"] <= report["latency_all_ms"]["max"] + 0.01
    assert "transaction path     p50 ms over" in text


def test_a_network_latency_paces_the_heights(tmp_path, capsys):
    """--net-latency-ms delays every message between the nodes (the test chaos transport):
    a height needs a proposal, a prevote and a precommit across the links, so with 40 ms one
    way no transaction commits in under 120 ms and heights come at most ~8 a second, where
    the same interval without latency gives several times that (the test above)."""
    report, text = _run_tps(tmp_path, capsys, "--validators", "4", "--duration", "3", "--rate",
                            "300", "--block-interval-ms", "20", "--net-latency-ms", "40")
    assert report["setup"]["net_latency_ms"] == 40
    delayed = report["net_latency"]["messages_delayed"]
    assert len(delayed) == 4 and all(n > 0 for n in delayed), delayed
    assert report["blocks_per_s"] < 9, report["blocks_per_s"]
    assert report["latency_ms"]["p50"] >= 120, report["latency_ms"]
    assert report["lost"] == 0 and report["nodes_agree"] is True
    assert "40 ms one way between nodes" in text and "messages delayed per node" in text
    # The latency shows in the phases that wait for the other validators' votes (each vote
    # crosses a 40 ms link), and in the heights (a block interval of 20 ms alone would allow
    # heights of about 20 ms).
    phases = _check_phases(report)
    assert phases["precommit"] >= 25 and phases["decide"] >= 25, phases
    assert phases["height"] >= 100, phases


def test_app_settings_are_toml_scalars_or_text():
    assert tps.parse_app_settings(["execution_us_per_tx=50", "ratio=2.5", "on=true",
                                   'name="x y"', "raw=a b", "empty="]) == {
        "execution_us_per_tx": 50, "ratio": 2.5, "on": True, "name": "x y", "raw": "a b",
        "empty": ""}


def test_another_app_and_optimistic_execution_off_reach_the_nodes(tmp_path, capsys):
    """--app, --app-setting and --no-optimistic-execution go into every node's config: the
    costly kvstore spends its 300 us per transaction in execution (the kvstore alone spends a
    few), and with optimistic execution off no node executes a block before its decision."""
    report, text = _run_tps(tmp_path, capsys, "--validators", "4", "--duration", "3", "--rate",
                            "200", "--app", "engine.examples.costly:CostlyKVStore",
                            "--app-setting", "execution_us_per_tx=300",
                            "--no-optimistic-execution")
    setup = report["setup"]
    assert setup["app"] == "engine.examples.costly:CostlyKVStore"
    assert setup["app_settings"] == {"execution_us_per_tx": 300}
    assert setup["optimistic_execution"] is False
    assert report["lost"] == 0 and report["nodes_agree"] is True and report["committed"] > 0
    for per in report["cpu_us_per_tx"].values():
        assert per["execution"] >= 250, report["cpu_us_per_tx"]
    assert report["early_execution"]["executions"] == [0, 0, 0, 0]
    assert "optimistic execution off" in text and "CostlyKVStore" in text


def test_a_latency_that_was_not_applied_fails_the_run():
    report = {"lost": 0, "duplicates": 0, "nodes_agree": True, "accepted": 5,
              "exit_codes": [0, 0], "net_latency": {"one_way_ms": 40,
                                                     "messages_delayed": [12, 0]}}
    ok, problems = tps.passed(report)
    assert not ok and "latency was not applied" in problems[0]
    report["net_latency"]["messages_delayed"] = [12, 3]
    assert tps.passed(report) == (True, [])


def _args(**kw):
    base = {"validators": 4, "duration": 5.0, "tx_bytes": 250, "rate": "max", "sweep": False,
            "rates": None, "base_port": 0, "profile": None, "keep": False}
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.parametrize("kw, message", [
    ({"rate": "fast"}, "--rate must be"), ({"rate": "0"}, "rate must be"),
    ({"validators": 0}, "validators must be"), ({"duration": 0.1}, "duration must be"),
    ({"tx_bytes": 50}, "tx_bytes must be"), ({"rates": "1,x", "sweep": True}, "--rates"),
    ({"rates": "100,200"}, "only used with sweep"),
    ({"block_interval_ms": 0}, "block_interval_ms must be"),
    ({"block_interval_ms": 1.5}, "block_interval_ms must be"),
    ({"net_latency_ms": -1}, "net_latency_ms must be"),
    ({"net_latency_ms": 10_001}, "net_latency_ms must be"),
    ({"net_latency_ms": 1.5}, "net_latency_ms must be"),
    ({"app": "nomodule:Nothing"}, "cannot be loaded"),
    ({"app": "kvstore-ish"}, "app must be"),
    ({"app_setting": ["novalue"]}, "--app-setting must be KEY=VALUE"),
    ({"retain_blocks": 5}, "retain_blocks must be"),
    ({"retain_blocks": 2.5}, "retain_blocks must be")])
def test_bad_options_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        tps.TpsOptions.from_args(_args(**kw))


def test_bad_options_on_the_command_line(capsys):
    assert main(["bench", "tps", "--rate", "lots"]) == 2
    assert "--rate must be" in capsys.readouterr().err


def test_sweep_ladder_and_presign_counts():
    opts = tps.TpsOptions.from_args(_args(sweep=True, rate="1000"))
    assert tps._sweep_rates(opts) == [100, 250, 500, 750, 1000, 1250]
    opts = tps.TpsOptions.from_args(_args(sweep=True, rates="200,400"))
    assert tps._sweep_rates(opts) == [200, 400]
    assert tps._presign_counts(opts) == [int(200 * 5 * 1.05) + tps.BATCH_TXS_MAX,
                                         int(400 * 5 * 1.05) + tps.BATCH_TXS_MAX]


def test_signed_envelopes_have_the_size_and_verify():
    envs = tps.sign_envelopes(2500, 250, workers=2)
    assert len(envs) == 2500 and {len(e) for e in envs} == {250}
    assert len(set(envs)) == 2500
    assert all(txmod.verify_txs(envs, tps.CHAIN_ID))
    payload = txmod.decode_tx(envs[7]).payload
    assert payload.startswith(b"k7=")


def test_profile_summary_of_folded_stacks(tmp_path):
    folded = tmp_path / "p.folded"
    folded.write_text(
        "process 1:\"python\";thread (0x1);main (engine/node.py:10);_commit (engine/node.py:20);"
        "save_block (engine/store/store.py:30) 6\n"
        "process 1:\"python\";thread (0x1);main (engine/node.py:10);"
        "read (/x/site-packages/aiohttp/streams.py:5) 3\n"
        "process 1:\"python\";thread (0x1);main (engine/node.py:10) 1\n"
        "garbage line\n")
    s = summarise_folded(str(folded))
    assert s["samples"] == 10
    assert dict(s["areas"]) == {"engine/store": 60.0, "aiohttp": 30.0, "engine/node": 10.0}
    assert s["self"][0] == ["save_block (engine/store/store.py)", 60.0]
    assert dict(s["inclusive"])["main (engine/node.py)"] == 100.0
    assert "60.00%" in format_profile(s)
    empty = tmp_path / "e.folded"
    empty.write_text("")
    assert summarise_folded(str(empty))["samples"] == 0


def _summary(rate, tps_, p50=100.0, rejected=0, unseen=0, errors=()):
    return {"offered_rate": rate, "tps": tps_, "latency_ms": {"p50": p50}, "rejected": rejected,
            "unseen": unseen, "errors": list(errors)}


@pytest.mark.parametrize("summary, ok, why", [
    (_summary(1000, 990.0), True, "sustained"),
    (_summary(1000, 979.0), False, "98%"),
    (_summary(1000, 1000.0, p50=501.0), False, "SLO"),
    (_summary(1000, 1000.0, p50=float("nan")), False, "SLO"),
    (_summary(1000, 1000.0, rejected=1), False, "refused"),
    (_summary(1000, 1000.0, unseen=3), False, "not seen committed"),
    (_summary(1000, 1000.0, errors=["pre-signed transactions ran out"]), False, "ran out"),
    (_summary("max", 5000.0), False, "no offered rate"),
])
def test_a_rung_is_sustained_only_when_every_condition_holds(summary, ok, why):
    verdict, reason = tps.sustained(summary, 500.0)
    assert verdict is ok and why in reason


def _search(capacity, **kw):
    """Run the search against a network that sustains exactly ``capacity`` tx/s."""
    s = tps.MaxSearch(**kw)
    offered, rate = [], s.first()
    while rate is not None:
        offered.append(rate)
        rate = s.after(rate, rate <= capacity)
    return s, offered


@pytest.mark.parametrize("capacity", [150, 999, 1000, 2500, 7300, 40_000])
def test_the_search_brackets_the_capacity_within_its_resolution_and_rung_budget(capacity):
    s, offered = _search(capacity, rungs_max=12)
    assert len(offered) <= 12 and len(set(offered)) == len(offered)
    assert s.good is not None and s.good <= capacity
    assert s.bad is None or s.bad > capacity
    if s.bad is not None:
        assert s.bad - s.good <= tps.FIND_MAX_RESOLUTION * s.good


def test_the_search_stops_at_its_rung_budget_and_when_nothing_holds():
    s, offered = _search(10**9, rungs_max=4)
    assert offered == [1000, 2000, 4000, 8000] and s.good == 8000 and s.bad is None
    s, offered = _search(10)
    assert offered == [1000, 500, 250, 125] and s.good is None


def test_the_crypto_ceiling_is_timed_with_keys_cached_and_reports_cold_keys_too():
    envs = tps.sign_envelopes(3000, 250, workers=1)
    c = tps.crypto_ceiling(envs)
    assert c["txs"] == 3000 and c["senders"] == min(3000, tps.SENDERS)
    assert c["tps"] > 0 and c["tps_cold_keys"] > 0
    assert c["tps_batches"] > 0 and c["batch_txs"] == tps.SENDERS
    forged = list(envs)
    forged[5] = forged[5][:-1] + bytes([forged[5][-1] ^ 1])
    with pytest.raises(RuntimeError, match="do not all verify"):
        tps.crypto_ceiling(forged)


@pytest.mark.parametrize("kw, message", [
    ({"find_max": True, "sweep": True}, "find_max cannot"),
    ({"find_max": True, "profile": "/tmp/x"}, "find_max cannot"),
    ({"slo_p50_ms": 0.0}, "slo_p50_ms"), ({"find_max_rungs": 0}, "find_max_rungs")])
def test_bad_find_max_options_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        tps.TpsOptions.from_args(_args(**kw))


def test_a_sweep_takes_one_nonce_sequence_so_no_sender_skips_a_nonce(tmp_path, capsys):
    """The rungs of a sweep take turns from one signed sequence: the second rung starts where
    the first stopped. Splitting it into a pool per rung (each signed with a margin) skipped the
    unused tail's nonces, which stay gaps in every sender's record (here 2 per sender)."""
    report, text = _run_tps(tmp_path, capsys, "--sweep", "--rates", "200,300", "--duration", "2",
                            "--tx-bytes", "200")
    assert [st["offered_rate"] for st in report["steps"]] == [200, 300]
    assert report["lost"] == 0 and report["nodes_agree"] is True and report["rejected"] == 0
    assert report["accepted"] >= 800  # both rungs ran: more senders than the first rung used
    assert report["nonce_gaps"] == {"senders": min(tps.SENDERS, report["accepted"]),
                                    "with_gaps": 0, "gaps": 0}
    assert f"nonce records        {min(tps.SENDERS, report['accepted']):,} senders, 0 of " in text


def test_nonce_gaps_counts_the_skipped_nonces_in_a_stores_records(tmp_path):
    from engine.nonces import NonceWindow, nonce_key
    from engine.store import Store
    from tests.store.helpers import block_args

    records = {b"a" * 32: NonceWindow(9, [3, 4, 8]), b"b" * 32: NonceWindow(4, []),
               b"c" * 32: NonceWindow(2, [0])}
    store = Store(str(tmp_path / "s"))
    args = block_args(1)
    args["state_changes"] = [(nonce_key(k), w.encode()) for k, w in records.items()] + [
        (b"app-key", b"not a nonce record")]
    store.save_block(**args)
    store.close()
    assert tps.nonce_gaps(str(tmp_path / "s")) == {"senders": 3, "with_gaps": 2, "gaps": 4}
    assert tps.nonce_gaps(str(tmp_path / "none")) is None  # no store there: nothing to say


def test_find_max_short_run_reports_the_highest_sustained_rung(tmp_path, capsys):
    report, text = _run_tps(tmp_path, capsys, "--find-max", "--find-max-rungs", "2", "--rate",
                            "200", "--duration", "3", "--slo-p50-ms", "2000")
    rungs = report["rungs"]
    assert [r["offered_rate"] for r in rungs][:1] == [200] and len(rungs) == 2
    # The verdicts are the sustained() rule applied to the rungs' own summaries.
    for r, st in zip(rungs, report["steps"]):
        assert st["offered_rate"] == r["offered_rate"]
        assert tps.sustained(st, 2000.0)[0] is r["sustained"]
    held = [r["offered_rate"] for r in rungs if r["sustained"]]
    assert report["max_sustainable_tps"] == max(held, default=0)
    assert report["slo_p50_ms"] == 2000.0
    ceiling = report["crypto_ceiling"]["tps"]
    assert report["fraction_of_ceiling"] == round(report["max_sustainable_tps"] / ceiling, 4)
    assert report["lost"] == 0 and report["nodes_agree"] is True
    assert "find-max" in text


def test_pruning_nodes_are_checked_with_the_blocks_node0_reported(tmp_path, capsys):
    """With --retain-blocks the nodes prune during the load; the final check counts each
    pruned block with the ids node 0 reported for it while the run went, and compares the
    hashes where every node still holds the block."""
    from engine import limits

    report, text = _run_tps(tmp_path, capsys, "--validators", "4", "--duration", "6", "--rate",
                            "400", "--retain-blocks", str(limits.retain_blocks_min))
    assert report["setup"]["retain_blocks"] == limits.retain_blocks_min
    check = report["check"]
    pruned = check["pruned_heights_by_node"]
    assert len(pruned) == 4 and min(pruned) >= limits.prune_batch_blocks, check
    assert report["accepted"] > 0 and report["lost"] == 0 and report["duplicates"] == 0
    assert report["nodes_agree"] is True and not check["unreadable_blocks"], check
    assert "pruned by then, per node" in text
    assert "PASS: every accepted transaction committed exactly once" in text


def test_the_chain_check_counts_pruned_blocks_only_with_what_node0_reported(monkeypatch):
    """Against nodes that answer 'pruned' for heights 1..3: their transactions count when
    node 0's reported ids hold them, are lost when they do not, and a pruned height node 0
    never reported is unreadable, which fails the agreement."""
    import asyncio

    blocks = {h: {"hash": f"h{h}", "result_app_hash": f"a{h}", "tx_ids": [f"t{h}"],
                  "certificate": {"round": 0}} for h in range(1, 6)}

    class _Answer:
        def __init__(self, status, body):
            self.status, self.body = status, body

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return False

        async def json(self):
            return self.body

    class _Http:
        def get(self, url, timeout=None):
            h = int(url.rsplit("/", 1)[1])
            if h <= 3:
                return _Answer(404, {"error": "pruned", "earliest_height": 4})
            return _Answer(200, blocks[h])

    accepted = {f"t{h}" for h in range(1, 6)}
    watched = {h: blocks[h]["tx_ids"] for h in range(1, 4)}
    urls = ["http://n0", "http://n1"]
    check = asyncio.run(tps._verify_chains(_Http(), urls, 5, accepted, watched))
    assert check["lost"] == 0 and check["nodes_agree"] and check["pruned_heights_by_node"] == [3, 3]
    watched[2] = []  # node 0 did not report t2: it is lost
    check = asyncio.run(tps._verify_chains(_Http(), urls, 5, accepted, watched))
    assert check["lost"] == 1 and check["nodes_agree"]
    del watched[1]  # a pruned height nobody reported: unreadable, no agreement
    check = asyncio.run(tps._verify_chains(_Http(), urls, 5, accepted, watched))
    assert not check["nodes_agree"] and [0, 1] in map(list, check["unreadable_blocks"])


def test_trace_txs_is_a_bool_and_comes_from_its_flag():
    with pytest.raises(ValueError, match="trace_txs must be True or False"):
        tps.TpsOptions(trace_txs="yes").validate()  # type: ignore[arg-type]
    assert tps.TpsOptions.from_args(_args(trace_txs=True)).trace_txs is True
    assert tps.TpsOptions.from_args(_args()).trace_txs is False
