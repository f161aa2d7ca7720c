"""What score runs and evaluation runs cost, and how reports charge it: a score run's record against the plan
counted by hand, caches without a record (the plan, wall time unknown), evaluation records without a cost, the
compute table (a method's score runs charged once per point) and a folder's total (each score run once), and
`reproduce --preset smoke`'s Compute section, for a new folder and for one written before costs were recorded."""
import json
import math

import pytest

from fakes import forbid_training, learnable_splits, runs_dir, score_dirs, smoke_reproduction, study_dir
from datadiet.config import DataConfig, TrainConfig
from datadiet.report.tables import compute_table, compute_total, cost_rows, read_csv, record_cost
from datadiet.runs.scoring import charge, label_cost, run_total, score_run_costs, score_tables
from datadiet.studies import build_workspace_report
from datadiet.training import flops_per_example, init_model

TRAIN = TrainConfig(model="smallcnn", width=0.25, batch_size=16, epochs=3, eval_batch_size=64)
DATA = DataConfig(dataset="quadrants")
N, BATCH, PER_EPOCH, TOTAL = 96, 16, 6, 18  # 96 examples at batch 16: 6 steps an epoch, 18 in 3 epochs
LABELS = ("el2n@epoch1", "grand@init", "grand@epoch1", "forgetting@end", "input_norm")  # scored at steps 0 and 6


@pytest.fixture(scope="module")
def splits():
    return learnable_splits(n_train=N, n_test=32)


@pytest.fixture(scope="module")
def scored(splits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scores")
    tables = score_tables(LABELS, 2, TRAIN, DATA, splits, folder, log=lambda _: None)
    return folder, tables


@pytest.fixture(scope="module")
def per_example(splits):
    return flops_per_example(init_model(TRAIN, splits.train), tuple(splits.train.shape), splits.train.num_classes)


def test_a_score_run_records_its_training_and_each_scoring_pass(scored, per_example):
    folder, _ = scored
    [record, _] = score_run_costs(folder)
    train, infer = per_example
    # forgetting trains to the end: 18 steps of 16; el2n and grand are scored at init and after epoch 1 (step 6)
    assert record["stop"] == TOTAL
    assert (record["training"]["sample_passes"], record["training"]["flops"]) == (TOTAL * BATCH, TOTAL * BATCH * train)
    entries = {(e["score"], e["step"]): e for e in record["scoring"]}
    assert sorted(entries) == [("el2n", 0), ("el2n", PER_EPOCH), ("grand", 0), ("grand", PER_EPOCH)]
    # EL2N: a forward pass of every example; GraNd: a forward and backward of every example (a sample pass)
    assert (entries["el2n", 0]["sample_passes"], entries["el2n", 0]["forward_passes"]) == (0, N)
    assert entries["el2n", 0]["flops"] == N * infer
    assert (entries["grand", 0]["sample_passes"], entries["grand", 0]["forward_passes"]) == (N, 0)
    assert entries["grand", 0]["flops"] == N * train
    assert all(e["wall_seconds"] >= 0 for e in record["scoring"]) and record["training"]["wall_seconds"] > 0
    total = run_total(record)
    assert (total.sample_passes, total.forward_passes) == (TOTAL * BATCH + 2 * N, 2 * N)


def test_a_label_is_charged_its_training_prefix_and_its_own_scoring(scored, per_example):
    folder, tables = scored
    records = score_run_costs(folder)
    train, infer = per_example
    el2n = label_cost(records[0], "el2n@epoch1")
    assert (el2n.sample_passes, el2n.forward_passes) == (PER_EPOCH * BATCH, N)  # 6 of the 18 steps, one scoring
    assert el2n.flops == PER_EPOCH * BATCH * train + N * infer
    grand = label_cost(records[0], "grand@epoch1")
    assert (grand.sample_passes, grand.forward_passes) == (PER_EPOCH * BATCH + N, 0)
    at_init = label_cost(records[0], "grand@init")
    assert (at_init.sample_passes, at_init.forward_passes) == (N, 0)  # no training before it
    forgetting = label_cost(records[0], "forgetting@end")
    assert (forgetting.sample_passes, forgetting.forward_passes) == (TOTAL * BATCH, 0)  # free: the training's own
    assert label_cost(records[0], "input_norm").sample_passes == 0
    # every score file says what its label's runs cost, summed over the R = 2 runs
    meta = tables["el2n@epoch1"].meta["cost"]
    assert (meta["runs"], meta["sample_passes"], meta["forward_passes"]) == (2, 2 * PER_EPOCH * BATCH, 2 * N)
    assert meta["pass_equivalents"] == pytest.approx(2 * (PER_EPOCH * BATCH + N * infer / train))
    assert tables["input_norm"].meta["cost"]["runs"] == 0  # needs no score run


def test_runs_cached_before_costs_were_recorded_get_the_plan_and_no_wall_time(scored, splits, tmp_path, monkeypatch):
    import shutil
    folder = tmp_path / "old"
    shutil.copytree(scored[0], folder)
    for path in (folder / ".runs").glob("*.cost.json"):
        path.unlink()
    forbid_training(monkeypatch)
    tables = score_tables(LABELS, 2, TRAIN, DATA, splits, folder, log=lambda _: None)  # cached: nothing trains
    planned, measured = score_run_costs(folder)[0], score_run_costs(scored[0])[0]
    assert planned["planned"] and planned["training"]["wall_seconds"] is None
    for key in ("sample_passes", "forward_passes", "flops"):
        assert planned["training"][key] == measured["training"][key]
        assert getattr(run_total(planned), key) == getattr(run_total(measured), key)
    meta = tables["grand@epoch1"].meta["cost"]
    assert meta["wall_seconds"] is None and meta["sample_passes"] == 2 * (PER_EPOCH * BATCH + N)
    assert not list((folder / ".runs").glob("*.cost.json"))  # old caches stay as they were


def test_a_run_record_without_a_cost_is_counted_from_its_plan():
    record = {"steps": 30, "n_train": 20, "train": {"batch_size": 32, "seed": 1000}, "wall_seconds": 4.5,
              "run_id": "x", "method": "random", "keep": 0.5}
    # the batch is capped at the 20 examples of the subset, as the engine caps it
    assert record_cost(record, (100, 30)) == {"sample_passes": 600, "forward_passes": 0, "flops": 60000,
                                              "wall_seconds": 4.5, "recorded": False}
    assert record_cost(record)["flops"] is None
    new = {**record, "cost": {"sample_passes": 640, "forward_passes": 0, "flops": None, "wall_seconds": 2.0}}
    assert record_cost(new, (100, 30)) == {"sample_passes": 640, "forward_passes": 0, "flops": None,
                                           "wall_seconds": 2.0, "recorded": True}


def _record(method, keep, seed, passes, flops=1000, wall=1.0):
    return {"run_id": f"{method}-{keep}-{seed}", "method": method, "keep": keep, "offset": None,
            "train": {"seed": seed, "batch_size": 10}, "steps": 1, "n_train": 10, "wall_seconds": 9.0,
            "cost": {"sample_passes": passes, "forward_passes": 0, "flops": flops, "wall_seconds": wall}}


def test_each_point_is_charged_its_score_runs_once_and_the_total_counts_each_score_run_once():
    records = [_record("full", 1.0, s, 1000) for s in (0, 1)]
    records += [_record(m, k, s, int(1000 * k)) for m in ("el2n@epoch2", "el2n@epoch2+ccs", "random")
                for k in (0.3, 0.5) for s in (0, 1)]
    # two score runs, shared by both EL2N methods at both fractions
    score_runs = [{"sample_passes": 200, "forward_passes": 100, "flops": 300, "wall_seconds": 2.0}] * 2
    el2n = {"runs": 2, "sample_passes": 300, "forward_passes": 200, "flops": 450, "wall_seconds": 3.0,
            "pass_equivalents": 350.0}
    rows = compute_table(cost_rows(records), {"el2n@epoch2": el2n, "el2n@epoch2+ccs": el2n})
    by_point = {(r["method"], r["keep"]): r for r in rows}
    assert by_point["full", 1.0]["train_of_full"] == 1.0 and "score_runs" not in by_point["random", 0.3]
    for method in ("el2n@epoch2", "el2n@epoch2+ccs"):
        for keep in (0.3, 0.5):
            r = by_point[method, keep]
            assert r["train_passes"] == 1000 * keep and r["train_of_full"] == pytest.approx(keep)
            assert r["passes_with_scoring"] == 1000 * keep + 350  # once, not once per seed or per fraction
            assert r["with_scoring_of_full"] == pytest.approx(keep + 0.35)
            assert (r["flops_with_scoring"], r["seconds_with_scoring"]) == (1450, 4.0)
    total = compute_total(cost_rows(records), score_runs)
    training = 2 * 1000 + 3 * 2 * (300 + 500)
    assert total["training"]["sample_passes"] == training
    assert total["score_runs"] == 2 and total["scoring"]["sample_passes"] == 400
    assert total["total"]["sample_passes"] == training + 400  # each score run once
    assert total["total"]["flops"] == len(records) * 1000 + 600


def test_an_unknown_part_makes_the_sum_unknown():
    records = [_record("full", 1.0, 0, 100), _record("full", 1.0, 1, 100, flops=None, wall=None)]
    [row] = compute_table(cost_rows(records))
    assert row["train_flops"] is None and math.isnan(row["train_seconds"])


# ---------------------------------------------------------------- reproduce


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    _, out, summary = smoke_reproduction(tmp_path_factory, "reproduce")
    return out, summary


def _score_records(out):
    """Every score run of the smoke folder's two draws, read independently of the report: the cost records."""
    return [json.loads(p.read_text()) for draw in score_dirs(out) for p in sorted((draw / ".runs").glob("*.cost.json"))]


def test_reproduce_reports_every_point_with_and_without_its_score_runs(smoke):
    out, summary = smoke
    runs = [json.loads(p.read_text()) for p in runs_dir(out).glob("*.json")]
    scores = _score_records(out)
    assert len(scores) == 4  # 2 draws × 2 runs, all in use (2 evaluation seeds)
    total = summary["compute"]
    assert total["training"]["sample_passes"] == sum(r["cost"]["sample_passes"] for r in runs)
    assert total["scoring"]["sample_passes"] == sum(run_total(r).sample_passes for r in scores)
    assert total["total"]["sample_passes"] == (sum(r["cost"]["sample_passes"] for r in runs)
                                              + sum(run_total(r).sample_passes for r in scores))
    rows = {(r["method"], r["keep"]): r for r in read_csv(study_dir(out) / "compute.csv")}
    full = rows["full", 1.0]["train_passes"]
    assert full == 2 * 12 * 32  # matched budget: 2 epochs of 384 examples at batch 32, at every fraction
    assert rows["el2n@epoch1", 0.5]["train_passes"] == full and rows["random", 0.5]["train_of_full"] == 1.0
    el2n = sum(label_cost(r, "el2n@epoch1").sample_passes for r in scores)
    assert el2n == 4 * 12 * 32  # four runs to epoch 1
    assert rows["el2n@epoch1", 0.5]["score_runs"] == 4
    assert rows["el2n@epoch1", 0.5]["passes_with_scoring"] == pytest.approx(
        full + charge(scores, "el2n@epoch1")["pass_equivalents"])
    assert rows["random", 0.5]["score_runs"] is None
    report = (out / "report.md").read_text()
    assert "### Compute" in report and "**Every subset trained the full run's number of steps**" in report
    assert "each score run counted once" in report


def test_a_folder_from_before_costs_were_recorded_still_reports_its_compute(smoke, tmp_path):
    import shutil
    out = tmp_path / "old"
    shutil.copytree(smoke[0], out)
    for path in runs_dir(out).glob("*.json"):  # a record of 0.2: no cost, no checksum
        record = json.loads(path.read_text())
        for key in ("cost", "passes_per_epoch", "record_sha256"):
            record.pop(key)
        path.write_text(json.dumps(record))
    costs = [p for draw in score_dirs(out) for p in (draw / ".runs").glob("*.cost.json")]
    assert len(costs) == 4
    for path in costs:
        path.unlink()
    summary = build_workspace_report(out, log=lambda _: None).summaries["reproduce"]
    runs = [json.loads(p.read_text()) for p in runs_dir(smoke[0]).glob("*.json")]
    total = summary["compute"]
    assert total["recomputed"] == len(runs)
    # the plan gives the same passes and FLOPs as the engine counted; the wall time is unknown for score runs
    assert total["training"]["sample_passes"] == sum(r["cost"]["sample_passes"] for r in runs)
    assert total["training"]["flops"] == sum(r["cost"]["flops"] for r in runs)
    assert total["training"]["wall_seconds"] == pytest.approx(sum(r["wall_seconds"] for r in runs))
    assert total["scoring"]["sample_passes"] == smoke[1]["compute"]["scoring"]["sample_passes"]
    assert math.isnan(total["scoring"]["wall_seconds"])  # unknown
    report = (out / "report.md").read_text()
    assert f"{len(runs)} run records predate recorded costs" in report and "unknown" in report
