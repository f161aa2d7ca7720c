"""The regime map: per-size differences to random against compare_to_random, the redundancy gap against the
curve, the crossover on hand-made tables, and the smoke preset end to end."""
import json
import math

import pytest

from datadiet.errors import ConfigError
from datadiet.report.tables import read_csv
from datadiet.runs.presets import STUDY_SETTINGS as SETTINGS
from datadiet.selection import select
from datadiet.studies.scaling import (PRESETS, Config, by_rule, crossovers, redundancy_rows, regime_rows,
                                      score_label, size_setting)
from datadiet.runs.identity import digest_ids
from datadiet.scores import load_scores
from fakes import smoke_analysis


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return smoke_analysis(tmp_path_factory, "scaling")


def _rows(n, method, keep, accs):
    return [{"method": method, "keep": keep, "offset": None, "seed": s, "test_accuracy": a, "n": n}
            for s, a in enumerate(accs)]


def _regime(n, keep, hardest, easiest):
    return [{"n": n, "rule": "hardest", "keep": keep, "diff": hardest},
            {"n": n, "rule": "easiest", "keep": keep, "diff": easiest}]


def test_crossover_is_interpolated_in_log_n():
    # hardest − easiest: −0.04 at N=1000, +0.02 at N=8000 → zero at t = 0.04/0.06 = 2/3 of the way in log N.
    regime = _regime(1000, 0.5, -0.03, 0.01) + _regime(8000, 0.5, 0.01, -0.01)
    [c] = crossovers(regime, [0.5])
    assert (c["below"], c["above"], c["direction"]) == (1000, 8000, "to hardest")
    assert c["crossover_n"] == round(math.exp(math.log(1000) + 2 / 3 * (math.log(8000) - math.log(1000))))
    assert c["crossover_n"] == 4000


def test_no_crossover_lists_the_gaps():
    regime = _regime(1000, 0.3, -0.2, 0.0) + _regime(4000, 0.3, -0.1, 0.0)
    [c] = crossovers(regime, [0.3])
    assert c["crossover_n"] is None and c["hardest_minus_easiest"] == [-0.2, -0.1]


def test_regime_and_redundancy_match_hand_computation():
    rows = by_rule(_rows(100, "full", 1.0, [0.90, 0.92]) + _rows(100, "random", 0.7, [0.88, 0.90])
                   + _rows(100, "el2n@epoch2", 0.7, [0.80, 0.82]) + _rows(100, "el2n@epoch2+easiest", 0.7, [0.89, 0.91]))
    assert [r["method"] for r in rows[4:]] == ["hardest", "hardest", "easiest", "easiest"]
    assert {r["score"] for r in rows[4:]} == {"el2n@epoch2"}
    regime = regime_rows({100: rows}, ("hardest", "easiest"))
    per_rule = {r["rule"]: r for r in regime}
    assert per_rule["hardest"]["diff"] == pytest.approx(0.81 - 0.89)
    assert per_rule["easiest"]["diff"] == pytest.approx(0.90 - 0.89)
    assert per_rule["hardest"]["verdict"] == "worse"
    [red] = redundancy_rows({100: rows}, 0.7)
    assert red["redundancy_gap"] == pytest.approx(0.91 - 0.89)


def test_config_errors_name_the_flag():
    s = SETTINGS["smoke"]
    with pytest.raises(ConfigError, match="--epochs-per-size gives one budget per size"):
        Config(s, sizes=(100, 200), epochs_per_size=(1,))
    with pytest.raises(ConfigError, match="--keeps"):
        Config(s, keeps=(1.0,))
    with pytest.raises(ConfigError, match="--rules"):
        Config(s, rules=("hardest", "nope"))
    with pytest.raises(ConfigError, match="--sizes"):
        Config(s, sizes=(-5,))


def test_size_setting_cuts_the_data_and_sets_the_budget():
    config = PRESETS["quick"]
    first, last = size_setting(config, 0), size_setting(config, len(config.sizes) - 1)
    assert (first.data.subset, first.data.subset_mode, first.train.epochs) == (1000, "balanced", 30)
    assert last.data.subset is None and last.train.epochs == config.epochs_per_size[-1]
    assert first.eval_seeds == config.eval_seeds and first.score_runs == config.score_runs
    # EL2N at a tenth of each size's budget (Data Diet: epoch 20 of 200)
    assert score_label(config, first) == "el2n@epoch3" and score_label(config, last) == "el2n@epoch0.2"


def test_smoke_runs_every_rule_at_every_size(workspace):
    ws, summary = workspace
    folder = ws.root / "scaling"
    results = read_csv(folder / "results.csv")
    assert {r["n"] for r in results} == {192, 384}
    assert {r["method"] for r in results} == {"full", "random", "hardest", "easiest", "ccs"}
    assert {r["score"] for r in results if r["method"] == "ccs"} == {"el2n@epoch0.2"}
    regime = read_csv(folder / "regime.csv")
    assert len(regime) == 2 * 3  # sizes × rules at one kept fraction
    assert (folder / "regime.png").is_file()
    assert any("redundancy gap" in line for line in summary["findings"])


def test_smoke_subsets_are_the_rules_selections(workspace):
    """The hardest and easiest runs trained on exactly what select() keeps from the stored scores."""
    ws, _ = workspace
    tables = [load_scores(p) for p in sorted((ws.root / "scores").glob("*/el2n-epoch0.2.npz"))]
    runs = [json.loads(p.read_text()) for p in (ws.root / "sweep" / "runs").glob("*.json")]
    for n in (192, 384):
        table = next(t for t in tables if len(t.ids) == n)
        hardest = digest_ids(select(table, keep=0.5))
        easiest = digest_ids(select(table, keep=0.5, order="lowest"))
        digests = {r["method"]: r["subset_digest"] for r in runs if r["data"]["subset"] == n}
        assert digests["el2n@epoch0.2"] == hardest and digests["el2n@epoch0.2+easiest"] == easiest
        ccs = [r for r in runs if r["data"]["subset"] == n and r["method"] == "el2n@epoch0.2+ccs"]
        assert {r["subset_digest"] for r in ccs} == {
            digest_ids(select(table, keep=0.5, rule="ccs", seed=r["train"]["seed"])) for r in ccs}
        assert len({r["subset_digest"] for r in ccs}) == 2  # a fresh CCS draw per evaluation seed


def test_scaling_offers_no_flag_it_would_overwrite(capsys):
    from datadiet.cli import main
    for flag in ("--epochs", "--subset", "--subset-mode"):
        with pytest.raises(SystemExit) as exit_:
            main(["analyze", "scaling", "--preset", "smoke", flag, "1"])
        assert exit_.value.code == 2
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err
