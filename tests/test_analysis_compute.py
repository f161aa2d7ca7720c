"""Accuracy against compute: the baseline's interpolation by hand, each seed against its own full-data curve,
nothing extrapolated, a score method's charge added once per point, Holm over every comparison, InfoBatch's saving,
and the smoke preset end to end (the runs it trains, the charge it reports, a rerun that trains nothing)."""
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from fakes import assert_rerun_trains_nothing, smoke_analysis
from datadiet.errors import ConfigError
from datadiet.report.tables import read_csv
from datadiet.runs.presets import PRESETS as SETTINGS
from datadiet.runs.scoring import label_cost
from datadiet.stats import holm
from datadiet.studies.compute import (PRESETS, Config, charges_of, infobatch_rows, interpolate, point_rows,
                                      point_table, versus_full)
from datadiet.methods import Method


def _row(method, value, seed, passes, acc, *, charge=0.0, seconds=1.0):
    return {"method": method, "value": value, "seed": seed, "test_accuracy": acc, "passes": passes, "flops": None,
            "seconds": seconds, "scored": bool(charge), "passes_with_scoring": passes + charge,
            "flops_with_scoring": None, "seconds_with_scoring": seconds}


def _curve(seed, points):
    return [_row("full", f, seed, x, y) for f, (x, y) in zip((0.5, 1.0, 2.0), points)]


def test_the_baseline_is_piecewise_linear_and_never_extrapolated():
    curve = [(100, 0.50), (200, 0.70), (400, 0.80)]
    assert interpolate(curve, 150) == pytest.approx(0.60)   # halfway between 0.50 and 0.70
    assert interpolate(curve, 300) == pytest.approx(0.75)   # halfway between 0.70 and 0.80
    assert interpolate(curve, 250) == pytest.approx(0.725)  # a quarter of the way
    assert interpolate(curve, 100) == 0.50 and interpolate(curve, 400) == 0.80  # the ends belong to the curve
    assert interpolate(curve, 99.9) is None and interpolate(curve, 400.1) is None
    assert interpolate(list(reversed(curve)), 150) == pytest.approx(0.60)  # order does not matter
    assert interpolate([(100, 0.4), (100, 0.6), (200, 0.7)], 150) == pytest.approx(0.6)  # same compute: averaged


def test_each_seed_is_compared_with_its_own_curve_at_its_own_compute():
    rows = (_curve(0, [(100, 0.50), (200, 0.70)]) + _curve(1, [(100, 0.60), (200, 0.90)])
            + _curve(2, [(100, 0.40), (200, 0.60)]))
    accs = [0.66, 0.70, 0.55]
    rows += [_row("random", 0.5, s, x, a) for s, x, a in zip((0, 1, 2), (150, 120, 180), accs)]
    [v] = versus_full(rows)
    # seed 0 at 150: 0.60; seed 1 at 120: 0.60 + 0.2·0.30 = 0.66; seed 2 at 180: 0.40 + 0.8·0.20 = 0.56
    baseline = [0.60, 0.66, 0.56]
    assert v["full_accuracies"] == "0.6000 0.6600 0.5600"
    assert (v["seeds"], v["compute"]) == (3, 150)
    assert v["diff"] == pytest.approx(np.mean(accs) - np.mean(baseline))
    ci = stats.ttest_ind(accs, baseline, equal_var=False).confidence_interval(0.95)
    assert (v["ci_low"], v["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # the seeds' mean curve at each seed's compute would give another baseline: the pairing matters
    pooled = [interpolate([(100, 0.5), (200, 0.7333333)], x) for x in (150, 120, 180)]
    assert np.mean(pooled) != pytest.approx(np.mean(baseline), abs=1e-3)


def test_a_point_beyond_the_curve_is_outside_the_baselines_range_and_fewer_than_3_seeds_not_resolved():
    rows = _curve(0, [(100, 0.5), (200, 0.7)]) + _curve(1, [(100, 0.5), (200, 0.7)])
    rows += [_row("el2n@epoch2", 0.3, s, 60, 0.6, charge=500) for s in (0, 1)]
    rows += [_row("el2n@epoch2", 0.5, s, 120 + 10 * s, 0.6, charge=500) for s in (0, 1)]
    out = {(v["value"], v["basis"]): v for v in versus_full(rows)}
    assert out[0.3, "training"]["note"] == "outside the baseline's range: less compute than its smallest budget"
    assert out[0.3, "with scoring"]["note"] == "outside the baseline's range: more compute than its largest budget"
    assert out[0.3, "training"]["verdict"] == "not measured" and math.isnan(out[0.3, "training"]["diff"])
    inside = out[0.5, "training"]
    assert inside["verdict"] == "not resolved" and inside["diff"] == pytest.approx(0.6 - np.mean([0.54, 0.56]))


def test_holm_runs_over_every_comparison_with_a_p_value():
    rng = np.random.default_rng(0)
    rows = []
    for s in range(4):
        rows += _curve(s, [(100, 0.5 + 0.01 * s), (200, 0.7 + 0.01 * rng.random())])
        rows += [_row("random", k, s, 100 * (1 + k), 0.6 + 0.02 * rng.random()) for k in (0.3, 0.5, 0.7)]
        rows += [_row("RS2", 0.5, s, 500, 0.9)]  # outside: no p-value, not in the family
    versus = versus_full(rows)
    tested = [v for v in versus if np.isfinite(v["p_value"])]
    assert len(tested) == 3 and len(versus) == 4
    assert [v["p_holm"] for v in tested] == pytest.approx(list(holm([v["p_value"] for v in tested])))
    assert [v["verdict_holm"] for v in versus if v["method"] == "RS2"] == ["not measured"]


def test_the_scoring_charge_is_added_once_to_every_point_of_its_method():
    class Table:
        def __init__(self, passes):
            self.meta = {"cost": {"runs": 2, "sample_passes": passes, "forward_passes": 10, "flops": 7 * passes,
                                  "wall_seconds": 1.5, "pass_equivalents": passes + 3.0}}

    method = Method.parse("el2n@epoch2")
    charges = charges_of([method], [{"el2n@epoch2": Table(100)}, {"el2n@epoch2": Table(200)}])  # two draws
    charge = charges["el2n@epoch2"]
    assert (charge["runs"], charge["sample_passes"], charge["pass_equivalents"]) == (4, 300, 306.0)
    assert (charge["flops"], charge["wall_seconds"]) == (2100, 3.0)
    records = [{"run_id": f"r{s}{k}", "method": "el2n@epoch2", "keep": k, "offset": None, "test_accuracy": 0.8,
                "train": {"seed": 1000 + s}, "cost": {"sample_passes": int(1000 * k) + s, "forward_passes": 0,
                                                    "flops": 5, "wall_seconds": 2.0}}
               for s in range(3) for k in (0.3, 0.5)]
    points = {r["run_id"]: {"method": "el2n@epoch2", "value": r["keep"], "seed": int(r["run_id"][1])} for r in records}
    points["r00.3"] = {"method": "random", "value": 0.3, "seed": 0}  # a method without score runs: no charge
    rows = point_rows(records, points, charges)
    for r in rows:
        extra = 306.0 if r["method"] == "el2n@epoch2" else 0.0
        assert r["passes_with_scoring"] == r["passes"] + extra
        assert r["flops_with_scoring"] == 5 + (2100 if extra else 0)
        assert r["seconds_with_scoring"] == 2.0 + (3.0 if extra else 0.0)
    table = {(p["method"], p["value"]): p for p in point_table(rows)}
    assert table["el2n@epoch2", 0.5]["passes_with_scoring"] == pytest.approx(501 + 306)  # mean of 500..502, + once


def test_infobatch_saving_is_per_seed_against_the_full_budget():
    rows = []
    for s, (full, pruned, acc) in enumerate([(1000, 800, 0.80), (1000, 750, 0.82), (1200, 900, 0.78)]):
        rows += [_row("full", 0.5, s, full / 2, 0.7), _row("full", 1.0, s, full, 0.81 + 0.01 * s)]
        rows.append(_row("InfoBatch", 0.5, s, pruned, acc, seconds=1.2 + 0.3 * s))
    [r] = infobatch_rows(rows, versus_full(rows))
    assert r["saved"] == pytest.approx(np.mean([0.2, 0.25, 0.25]))  # each seed against its own full-data run
    assert r["seconds_of_full"] == pytest.approx(1.5)  # 1.2, 1.5, 1.8 s against 1 s: slower for fewer passes
    assert r["diff"] == pytest.approx(np.mean([0.80, 0.82, 0.78]) - np.mean([0.81, 0.82, 0.83]))
    assert r["verdict_same_passes"] in ("better", "no different", "worse")


def test_config_errors_name_the_flag():
    s = SETTINGS["smoke"]
    with pytest.raises(ConfigError, match="--fractions needs at least two"):
        Config(s, fractions=(1.0,))
    with pytest.raises(ConfigError, match="--keeps"):
        Config(s, keeps=(1.0,))
    with pytest.raises(ConfigError, match="--prune-ratios"):
        Config(s, prune_ratios=(1.0,))
    with pytest.raises(ConfigError, match="--rs2-keeps"):
        Config(s, rs2_keeps=(0.0,))
    with pytest.raises(ConfigError, match=r"--infobatch-delta takes fractions in \(0, 1\]"):
        Config(s, infobatch_delta=0.0)
    odd = replace(s, train=replace(s.train, epochs=2.5))
    with pytest.raises(ConfigError, match="whole number"):
        Config(odd)
    assert Config(odd, prune_ratios=(), rs2_keeps=()).fractions  # no dynamic point: any epochs will do
    with pytest.raises(ConfigError, match="drop --steps"):
        Config(replace(s, train=replace(s.train, steps=10)))


def test_quick_runs_on_the_quick_setting_with_five_seeds():
    quick = PRESETS["quick"]
    assert quick.setting.name == "quick" and quick.setting.data.subset == 8000 and quick.eval_seeds == 5
    assert quick.setting.train.epochs == 16 and not quick.bf16


# ---------------------------------------------------------------- the smoke preset end to end


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return smoke_analysis(tmp_path_factory, "compute")


def _runs(ws):
    return [json.loads(p.read_text()) for p in (ws.root / "sweep" / "runs").glob("*.json")]


def test_smoke_trains_every_point_with_its_own_budget(workspace):
    ws, summary = workspace
    runs = _runs(ws)
    per_epoch = 384 // 32  # the smoke setting: 384 examples at batch 32, 2 epochs
    full = sorted((r["train"]["epochs"], r["steps"]) for r in runs
                  if r["method"] == "full" and r["train"]["precision"] == "fp32")
    assert full == [(0.8, 10)] * 2 + [(1.4, 17)] * 2 + [(2.0, 24)] * 2  # round(2 · f · 12) steps
    static = [r for r in runs if r["method"] not in ("full", "infobatch", "rs2")]
    assert {r["method"] for r in static} == {"random", "el2n@epoch1", "el2n@epoch1+ccs"}
    assert all(r["train"]["budget"] == "epochs" and r["steps"] == 2 * (192 // 32) for r in static)  # fewer steps
    rs2 = [r for r in runs if r["method"] == "rs2"]
    assert [r["cost"]["sample_passes"] for r in rs2] == [2 * 192] * 2
    infobatch = [r for r in runs if r["method"] == "infobatch"]
    assert len(infobatch) == 2 and all(r["cost"]["sample_passes"] < 2 * per_epoch * 32 for r in infobatch)
    assert len([r for r in runs if r["train"]["precision"] == "bf16"]) == 2
    assert (ws.root / "compute" / "accuracy_vs_compute.png").is_file()
    assert "## Accuracy against compute" in (ws.root / "compute" / "section.md").read_text()


def test_smoke_charges_each_score_method_its_score_runs_of_every_draw(workspace):
    ws, summary = workspace
    records = [json.loads(p.read_text()) for p in sorted(ws.root.glob("scores/*/.runs/*.cost.json"))]
    assert len(records) == 4  # 2 draws × 2 runs
    # each trained to epoch 1 (12 steps of 32) and scored EL2N on the 384 examples once
    assert [label_cost(r, "el2n@epoch1").sample_passes for r in records] == [12 * 32] * 4
    assert [label_cost(r, "el2n@epoch1").forward_passes for r in records] == [384] * 4
    for method in ("el2n@epoch1", "el2n@epoch1+ccs"):
        charge = summary["charges"][method]
        assert (charge["runs"], charge["sample_passes"], charge["forward_passes"]) == (4, 4 * 12 * 32, 4 * 384)
    points = {(p["method"], p["value"]): p for p in read_csv(ws.root / "compute" / "points.csv")}
    el2n = points["el2n@epoch1", 0.5]
    assert el2n["passes_with_scoring"] == pytest.approx(el2n["passes"] + summary["charges"]["el2n@epoch1"]["pass_equivalents"])
    assert points["random", 0.5]["passes_with_scoring"] == points["random", 0.5]["passes"]
    versus = {(v["method"], v["value"], v["basis"]): v for v in summary["versus_full"]}
    assert versus["el2n@epoch1", 0.5, "with scoring"]["note"].startswith("outside the baseline's range")
    # 2 seeds: not resolved; random pixels may teach nothing, and then the gate says "not judged"
    assert versus["random", 0.5, "training"]["verdict"] == ("not resolved" if summary["learned"] else "not judged")
    assert summary["metric"] == "accuracy" and summary["learned"] is not None  # cycling labels: balanced classes


def test_a_second_run_trains_nothing(workspace, tmp_path):
    from fakes import copy_workspace
    assert_rerun_trains_nothing(copy_workspace(workspace[0], tmp_path / "ws"), "compute")


def test_the_chosen_metric_judges_every_comparison_and_records_without_it_are_left_out():
    from datadiet.studies.compute import judged_rows, metric_findings

    rows = (_curve(0, [(100, 0.50), (200, 0.70)]) + _curve(1, [(100, 0.60), (200, 0.90)])
            + _curve(2, [(100, 0.40), (200, 0.60)]))
    rows += [_row("random", 0.5, s, x, a) for s, x, a in zip((0, 1, 2), (150, 120, 180), (0.66, 0.70, 0.55))]
    [by_accuracy] = versus_full(rows)
    # the chosen metric: full data 0.1 below its accuracy, random 0.2 above → the difference grows by 0.3
    judged = [{**r, "judged": r["test_accuracy"] + (0.2 if r["method"] == "random" else -0.1)} for r in rows]
    [by_metric] = versus_full(judged)
    assert by_metric["diff"] == pytest.approx(by_accuracy["diff"] + 0.3)
    assert point_table(judged)[-1]["mean"] == pytest.approx(np.mean([0.86, 0.90, 0.75]))
    lacking = judged + [{**_row("random", 0.5, 3, 150, 0.9), "judged": None}]  # a record written before the metric
    assert judged_rows(lacking) == judged
    lines = metric_findings("balanced", "the default on imbalanced data", {"learned": False, "reason": "mean "
                            "balanced accuracy 0.1000 not above chance (1/10) 0.1000, exact"}, 1)
    assert lines[0].startswith("**The model did not learn the task on this setting**: mean balanced accuracy")
    assert lines[1] == ("Judged by **balanced accuracy** (`--metric balanced`: the default on imbalanced data). 1 run "
                        "records predate this metric and are left out.")


def test_point_rows_carry_the_chosen_metric():
    records = [{"run_id": f"r{s}", "method": "full", "keep": 1.0, "offset": None, "test_accuracy": 0.8,
                "test_balanced_accuracy": 0.6 if s else None, "test_loss": 0.5, "steps": 4, "n_train": 10,
                "wall_seconds": 1.0, "cost": {"sample_passes": 40, "forward_passes": 0, "flops": None,
                                              "wall_seconds": 1.0}, "train": {"seed": s}} for s in (0, 1)]
    points = {f"r{s}": {"method": "full", "value": 1.0, "seed": s} for s in (0, 1)}
    rows = point_rows(records, points, {}, metric="balanced")
    assert [r["judged"] for r in rows] == [None, 0.6] and [r["test_accuracy"] for r in rows] == [0.8, 0.8]
    assert [r["judged"] for r in point_rows(records, points, {})] == [0.8, 0.8]
