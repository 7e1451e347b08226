"""The simulator with validator-set changes: joins, leaves, power shifts and a removed validator
that keeps sending, under the usual faults, keep agreement, validity and certificates (each
checked against the set of its height); the changes really happen and the joiners sign.
`make sim` runs thousands of these seeds; this is the smoke count of `make test`."""
import pytest

from engine.cli import main
from engine.sim import SimConfig
from engine.sim.world import World, run_seed

# (validators, byzantine, seeds)
MATRIX = [(4, 0, 15), (4, 1, 30), (7, 2, 10)]


@pytest.mark.parametrize("validators,byzantine,seeds", MATRIX)
def test_set_changes_keep_agreement_and_validity(validators, byzantine, seeds):
    config = SimConfig(validators=validators, byzantine=byzantine, heights=8, valset_changes=3)
    failures, changes, refused, heights = [], 0, 0, 0
    for seed in range(seeds):
        r = run_seed(seed, config)
        changes += r.valset_changes
        refused += r.removed_votes_refused
        heights += r.heights_decided
        if r.violations:
            failures.append((seed, r.violations[:3], r.plan))
    assert not failures, f"replay with --valset-changes 3 --heights 8 --seed: {failures[:3]}"
    assert heights >= 8 * seeds
    assert changes >= seeds, "most seeds must change the set within the decided heights"
    assert refused > 0, "no removed validator's vote was refused: the zombie never ran"


def test_joiners_sign_and_leavers_stop_signing():
    """Read the certificates: a spare that joined signs blocks of its heights, and no key
    signs a height whose set does not hold it."""
    config = SimConfig(validators=4, byzantine=0, heights=8, valset_changes=3)
    spare_signed = 0
    for seed in range(12):
        world = World(seed, config)
        r = world.run()
        assert not r.violations, (seed, r.violations)
        spares = {n.key.public_key for n in world.nodes if n.validator >= 4}
        node = world.nodes[0]
        for h, (_, _, cert) in node.decided.items():
            vset = world.history.set_at(h)
            signers = {vset.public_key(i) for i in cert.signer_indices()}
            assert len(cert.bitmap) == (len(vset) + 7) // 8
            spare_signed += len(signers & spares)
    assert spare_signed > 0, "no joined validator ever signed a certificate"


def test_a_seed_with_changes_replays_exactly():
    config = SimConfig(validators=4, byzantine=1, heights=8, valset_changes=3)
    assert run_seed(5, config) == run_seed(5, config)


def test_cli_reports_the_changes(capsys):
    assert main(["sim", "--validators", "4", "--byzantine", "1", "--seeds", "3",
                 "--heights", "6", "--valset-changes", "2"]) == 0
    out = capsys.readouterr().out
    assert "valset_changes=" in out and "violations=0" in out
