"""The regime map: per-size differences to random against compare_to_random, the redundancy gap against the
curve, the crossover on hand-made tables (only where resolved on both sides), the axis of the figure, and the smoke
preset end to end (score draws per evaluation seed)."""
import json
import math

import pytest
from scipy import stats

from datadiet.errors import ConfigError
from datadiet.report.tables import read_csv
from datadiet.runs.presets import PRESETS as SETTINGS  # the one preset table (smoke: every study's)
from datadiet.selection import select
from datadiet.report import figures
from datadiet.studies.scaling import (PRESETS, Config, by_rule, crossovers, findings, gap_rows, redundancy_rows,
                                      regime_rows, score_label, size_setting)
from datadiet.runs.identity import digest_ids
from datadiet.scores import load_scores
from fakes import smoke_analysis


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return smoke_analysis(tmp_path_factory, "scaling")


def _rows(n, method, keep, accs):
    return [{"method": method, "keep": keep, "offset": None, "seed": s, "test_accuracy": a, "n": n}
            for s, a in enumerate(accs)]


def _gap(n, keep, diff, verdict):
    return {"n": n, "keep": keep, "diff": diff, "verdict": verdict}


def test_crossover_is_interpolated_in_log_n():
    # hardest − easiest: −0.04 at N=1000, +0.02 at N=8000, both resolved → zero at t = 0.04/0.06 = 2/3 of the way
    [c] = crossovers([_gap(1000, 0.5, -0.04, "worse"), _gap(8000, 0.5, 0.02, "better")], [0.5])
    assert (c["below"], c["above"], c["direction"]) == (1000, 8000, "to hardest")
    assert c["crossover_n"] == round(math.exp(math.log(1000) + 2 / 3 * (math.log(8000) - math.log(1000))))
    assert c["crossover_n"] == 4000


def test_a_crossover_needs_both_sides_resolved():
    # the means change sign twice, but only N=1000 is resolved: no crossover, however the means go up and down
    gaps = [_gap(1000, 0.3, -0.05, "worse"), _gap(2000, 0.3, 0.03, "not resolved"),
            _gap(4000, 0.3, -0.01, "no different")]
    [c] = crossovers(gaps, [0.3])
    assert c["crossover_n"] is None and c["resolved_sizes"] == [1000]
    assert c["hardest_minus_easiest"] == [-0.05, 0.03, -0.01]
    # an unresolved size between two resolved ones of opposite sign: the crossover lies across it
    gaps[2] = _gap(4000, 0.3, 0.05, "better")
    [c] = crossovers(gaps, [0.3])
    assert (c["below"], c["above"], c["direction"], c["crossover_n"]) == (1000, 4000, "to hardest", 2000)


def test_no_crossover_lists_the_gaps():
    [c] = crossovers([_gap(1000, 0.3, -0.2, "worse"), _gap(4000, 0.3, -0.1, "worse")], [0.3])
    assert c["crossover_n"] is None and c["hardest_minus_easiest"] == [-0.2, -0.1]


def test_regime_gaps_and_redundancy_match_hand_computation():
    rows = by_rule(_rows(100, "full", 1.0, [0.90, 0.92, 0.91]) + _rows(100, "random", 0.7, [0.88, 0.90, 0.89])
                   + _rows(100, "el2n@epoch2", 0.7, [0.80, 0.82, 0.81])
                   + _rows(100, "el2n@epoch2+easiest", 0.7, [0.89, 0.91, 0.90]))
    assert [r["method"] for r in rows[6:]] == ["hardest"] * 3 + ["easiest"] * 3
    assert {r["score"] for r in rows[6:]} == {"el2n@epoch2"}
    regime = regime_rows({100: rows}, ("hardest", "easiest"))
    per_rule = {r["rule"]: r for r in regime}
    assert per_rule["hardest"]["diff"] == pytest.approx(0.81 - 0.89)
    assert per_rule["easiest"]["diff"] == pytest.approx(0.90 - 0.89)
    ci = stats.ttest_ind([0.80, 0.82, 0.81], [0.88, 0.90, 0.89], equal_var=False).confidence_interval(0.95)
    assert (per_rule["hardest"]["ci_low"], per_rule["hardest"]["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert per_rule["hardest"]["verdict"] == "worse"
    [gap] = gap_rows({100: rows}, [0.7])
    assert gap["diff"] == pytest.approx(0.81 - 0.90)  # random cancels
    ci = stats.ttest_ind([0.80, 0.82, 0.81], [0.89, 0.91, 0.90], equal_var=False).confidence_interval(0.95)
    assert (gap["ci_low"], gap["ci_high"], gap["verdict"]) == (pytest.approx(ci.low), pytest.approx(ci.high), "worse")
    [red] = redundancy_rows({100: rows}, 0.7)
    assert red["redundancy_gap"] == pytest.approx(0.91 - 0.89)


def test_two_seed_points_have_no_interval_and_resolve_no_crossover():
    rows = {n: by_rule(_rows(n, "random", 0.5, [0.80, 0.82]) + _rows(n, "el2n@epoch2", 0.5, [0.80 + d, 0.70 + d])
                       + _rows(n, "el2n@epoch2+easiest", 0.5, [0.81, 0.83]))
            for n, d in ((100, -0.1), (1000, 0.2))}
    regime = regime_rows(rows, ("hardest", "easiest"))
    assert all(math.isnan(r["ci_low"]) and r["verdict"] == "not resolved" for r in regime)
    gaps = gap_rows(rows, [0.5])
    assert [round(g["diff"], 4) for g in gaps] == [-0.17, 0.13]  # the means change sign ...
    [c] = crossovers(gaps, [0.5])
    assert c["crossover_n"] is None  # ... but nothing is resolved
    config = Config(SETTINGS["smoke"], sizes=(100, 1000), keeps=(0.5,), rules=("hardest", "easiest"), eval_seeds=2)
    lines = findings(regime, [], gaps, [c], config, {100: "el2n@epoch2", 1000: "el2n@epoch2"})
    assert lines[0].startswith("Intervals cover 2 evaluation seeds × 2 independent score draws (2 score runs each)")
    assert ("keep 0.5: no crossover resolved within the sizes measured (one needs hardest − easiest resolved on both "
            "sides, with opposite signs; per size: N = 100: -17.00 points, 95 % CI n/a (2 seeds: not informative); "
            "N = 1000: +13.00 points, 95 % CI n/a (2 seeds: not informative)).") in lines
    # seeds to resolve 16 points with the pooled spread of [0.70, 0.60] and [0.80, 0.82], sqrt((0.005 + 0.0002) / 2):
    # half-width t(0.975; 2n − 2) · spread · sqrt(2 / n) is 0.219 at n = 2, 0.116 at n = 3
    spread = math.sqrt((0.005 + 0.0002) / 2)
    assert stats.t.ppf(0.975, 4) * spread * math.sqrt(2 / 3) < 0.16 < stats.t.ppf(0.975, 2) * spread
    assert ("el2n@epoch2 at N = 100, keep 0.5: -16.00 points, 95 % CI n/a (2 seeds: not informative) vs random, "
            "not resolved against random (seeds per arm to resolve a difference this size: 3).") in lines


def test_the_axis_follows_means_and_informative_intervals():
    plt = figures.pyplot()
    fig, ax = plt.subplots()
    rows = [{"diff": 0.01, "ci_low": math.nan, "ci_high": math.nan},   # 2 seeds: a hollow point, no bar
            {"diff": -0.02, "ci_low": -0.03, "ci_high": -0.01}]
    shown = figures.difference_points(ax, [100, 200], rows, label="hardest")
    assert sorted(shown) == pytest.approx([-3.0, -2.0, -1.0, 1.0])
    figures.difference_limits(ax, shown)
    pad = 0.08 * (1.0 - -3.0)
    assert ax.get_ylim() == pytest.approx((-3.0 - pad, 1.0 + pad))
    assert ax.get_lines()[0].get_linestyle() == ":"  # not every point resolved: a dotted join
    plt.close(fig)


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
    """Evaluation seed s trained on exactly what select() keeps from score draw s mod 2 (the smoke setting: 2 draws
    of 2 score runs, seeds 0-1 and 2-3)."""
    ws, summary = workspace
    tables = {(len(t.ids), tuple(t.meta["seeds"])): t
              for t in map(load_scores, (ws.root / "scores").glob("*/el2n-epoch0.2.npz"))}
    runs = [json.loads(p.read_text()) for p in (ws.root / "sweep" / "runs").glob("*.json")]
    draws = ((0, 1), (2, 3))
    for n in (192, 384):
        assert {seeds for size, seeds in tables if size == n} == set(draws)
        scored = [r for r in runs if r["data"]["subset"] == n and r["method"].startswith("el2n")]
        assert len(scored) == 2 * 3  # evaluation seeds × rules
        for r in scored:
            seed = r["train"]["seed"]
            table = tables[(n, draws[(seed - 1000) % 2])]
            expected = {"el2n@epoch0.2": select(table, keep=0.5),
                        "el2n@epoch0.2+easiest": select(table, keep=0.5, order="lowest"),
                        "el2n@epoch0.2+ccs": select(table, keep=0.5, rule="ccs", seed=seed)}[r["method"]]
            assert r["subset_digest"] == digest_ids(expected)
        hardest = {r["subset_digest"] for r in scored if r["method"] == "el2n@epoch0.2"}
        assert len(hardest) == 2  # each seed kept the hardest of its own draw
    assert summary["findings"][0].startswith("Intervals cover 2 evaluation seeds × 2 independent score draws")


def test_scaling_offers_no_flag_it_would_overwrite(capsys):
    from datadiet.cli import main
    for flag in ("--epochs", "--subset", "--subset-mode"):
        with pytest.raises(SystemExit) as exit_:
            main(["analyze", "scaling", "--preset", "smoke", flag, "1"])
        assert exit_.value.code == 2
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err
