"""Linear mode connectivity (Paul et al. § 5.2, App. B.3): the path's endpoints are the children's own errors,
the barrier is max − mean of the endpoints, identical models have no barrier, the evaluation sets are the
EL2N extremes, recomputed BatchNorm statistics are plain averages, and a re-run trains nothing."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from datadiet.cli import build_parser
from datadiet.data.transforms import Normalizer
from datadiet.errors import ConfigError
from datadiet.models import build_model
from datadiet.report.tables import read_csv
from datadiet.studies import mode_connectivity as mc
from datadiet.studies import run_analysis
from fakes import copy_workspace, forbid_training, run_files, smoke_analysis

SMOKE = mc.PRESETS["smoke"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws, summary = smoke_analysis(tmp_path_factory, "mode_connectivity")
    return ws, summary


def cache(ws):
    return next((ws.root / mc.NAME / "cache").iterdir())


def own_error(state: dict, x: torch.Tensor, y: torch.Tensor) -> float:
    model = build_model("smallcnn", num_classes=10, in_channels=1, width=0.25)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(x[i:i + 7]).argmax(1) for i in range(0, len(x), 7)])
    return float((predictions != y).double().mean())


def test_path_endpoints_are_the_childrens_own_errors(workspace):
    ws, _ = workspace
    path = read_csv(ws.root / mc.NAME / "path.csv")
    splits = ws.splits(SMOKE.setting.data)
    el2n = np.load(next(cache(ws).glob("parent_el2n_step*.npy")))
    assert el2n.shape == (384,)
    assert (el2n > 0).all()
    order = np.argsort(el2n, kind="stable")
    sets = {"high_el2n": order[-100:], "low_el2n": order[:100],
            "random": np.sort(np.random.default_rng(0).choice(384, size=100, replace=False))}
    x_all = Normalizer(splits.mean, splits.std)(splits.train.images)
    for step in (0, 12):
        children = [torch.load(cache(ws) / "children" / f"spawn{step:09d}-seed{s}.pt", weights_only=True)
                    for s in (1001, 1002)]
        assert [c["steps"] for c in children] == [24, 24]
        assert [c["spawn_step"] for c in children] == [step, step]
        for name, rows in sets.items():
            x, y = x_all[torch.as_tensor(rows)], splits.train.labels[torch.as_tensor(rows)]
            mine = sorted((r for r in path if r["spawn_step"] == step and r["subset"] == name), key=lambda r: r["alpha"])
            assert [r["alpha"] for r in mine] == pytest.approx(np.linspace(0, 1, 11).tolist())
            assert mine[0]["error"] == own_error(children[0]["model"], x, y)
            assert mine[-1]["error"] == own_error(children[1]["model"], x, y)


def test_barrier_is_the_max_error_minus_the_mean_of_the_endpoints(workspace):
    ws, summary = workspace
    path = read_csv(ws.root / mc.NAME / "path.csv")
    barriers = read_csv(ws.root / mc.NAME / "barrier.csv")
    assert len(barriers) == 2 * 3
    assert [r["subset"] for r in barriers[:3]] == ["random", "high_el2n", "low_el2n"]
    for row in barriers:
        errors = [r["error"] for r in sorted(path, key=lambda r: r["alpha"])
                  if r["spawn_step"] == row["spawn_step"] and r["subset"] == row["subset"]]
        assert row["barrier"] == pytest.approx(max(errors) - (errors[0] + errors[-1]) / 2, abs=1e-15)
        assert row["barrier"] >= 0
        assert row["max_error"] == max(errors)
        assert summary["barrier"][f"{row['subset']}@epoch{row['spawn_epoch']:g}"] == row["barrier"]
    assert (ws.root / mc.NAME / "error_paths.png").stat().st_size > 0
    assert (ws.root / mc.NAME / "barrier.png").stat().st_size > 0
    assert len(read_csv(ws.root / mc.NAME / "children.csv")) == 4


def test_the_parents_el2n_is_that_of_its_checkpoint(workspace):
    from datadiet.runs.scoring import score_model
    from datadiet.training import load_checkpoint

    ws, _ = workspace
    model = build_model("smallcnn", num_classes=10, in_channels=1, width=0.25)
    model.load_state_dict(load_checkpoint(cache(ws) / "parent", 12)["model"])  # el2n epoch 1 = spawn step 12
    expected = score_model(model.eval(), ws.splits(SMOKE.setting.data), ["el2n"])["el2n"]
    assert np.allclose(np.load(cache(ws) / "parent_el2n_step000000012.npy"), expected, rtol=1e-6, atol=1e-7)


def test_a_rerun_reads_the_cache_and_trains_nothing(workspace, tmp_path, monkeypatch):
    ws = copy_workspace(workspace[0], tmp_path / "ws")  # the rerun rewrites the section
    before = (ws.root / mc.NAME / "path.csv").read_text()
    files = run_files(ws.root)
    assert len([f for f in files if "/children/" in f]) == 4  # 2 spawn epochs × 2 children
    forbid_training(monkeypatch)
    run_analysis("mode_connectivity", "smoke", workspace=ws)
    assert (ws.root / mc.NAME / "path.csv").read_text() == before
    assert run_files(ws.root) == files


def test_recomputed_bn_path_keeps_its_endpoints_fair(workspace, tmp_path, monkeypatch):
    ws = copy_workspace(workspace[0], tmp_path / "ws")  # other tests read the preset's tables
    forbid_training(monkeypatch)  # children are cached: evaluation only
    summary = mc.run(replace(SMOKE, bn="recompute", alphas=3), ws)
    assert set(summary["barrier"]) == {f"{s}@epoch{e}" for s in mc.SUBSET_NAMES for e in (0, 1)}
    assert all(b >= 0 for b in summary["barrier"].values())


def test_eval_set_size_flag_and_its_old_spelling(capsys):
    parser = build_parser()
    assert parser.parse_args(["analyze", "mode_connectivity", "--eval-set-size", "50"]).eval_set_size == 50
    assert "deprecated" not in capsys.readouterr().err
    assert parser.parse_args(["analyze", "mode_connectivity", "--subset-size", "60"]).eval_set_size == 60
    assert "--subset-size is deprecated and goes away in 0.3; use --eval-set-size" in capsys.readouterr().err


def tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4))
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    return model


def test_interpolation_is_exact_at_the_ends_and_for_identical_models():
    a, b = tiny_model(0).state_dict(), tiny_model(1).state_dict()
    b["1.num_batches_tracked"] = torch.tensor(9)
    for alpha, want in ((0.0, a), (1.0, b)):
        got = mc.interpolate_state(a, b, alpha)
        for k in a:
            if k != "1.num_batches_tracked":
                assert torch.equal(got[k], want[k]), k
    mid = mc.interpolate_state(a, b, 0.25)
    assert torch.allclose(mid["4.weight"], 0.75 * a["4.weight"] + 0.25 * b["4.weight"], atol=1e-7)
    assert torch.allclose(mid["1.running_var"], 0.75 * a["1.running_var"] + 0.25 * b["1.running_var"], atol=1e-7)
    assert mid["1.num_batches_tracked"] == a["1.num_batches_tracked"]  # integer buffers come from the first
    for alpha in np.linspace(0, 1, 11):
        same = mc.interpolate_state(a, a, alpha)
        assert all(torch.equal(same[k], a[k]) for k in a)
    with pytest.raises(ConfigError, match="different parameters"):
        mc.interpolate_state(a, {k: v for k, v in b.items() if k != "4.bias"}, 0.5)


@pytest.mark.parametrize("bn", ["interpolate", "recompute"])
def test_identical_children_have_no_barrier_and_different_ones_are_measured(bn):
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 1, 6, 6, generator=gen), torch.randint(0, 4, (40,), generator=gen)
    subsets = {"all": (x, y), "first": (x[:10], y[:10])}
    a, b = tiny_model(0).state_dict(), tiny_model(1).state_dict()
    alphas = mc.alpha_grid(11)
    same = mc.errors_along_path(tiny_model(5), a, a, alphas, subsets, bn=bn, bn_data=x, bn_batch=8)
    for name in subsets:
        errors = [r["error"] for r in same if r["subset"] == name]
        assert len(errors) == 11
        assert len(set(errors)) == 1
        assert mc.error_barrier(errors) == 0.0
    rows = mc.errors_along_path(tiny_model(5), a, b, alphas, subsets, bn=bn, bn_data=x, bn_batch=8)
    if bn == "interpolate":  # the endpoints are the two models themselves
        assert rows[0]["error"] == own_error_of(tiny_model(0), x, y)
        assert [r for r in rows if r["subset"] == "all"][-1]["error"] == own_error_of(tiny_model(1), x, y)


def own_error_of(model: nn.Module, x, y) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) != y).double().mean())


def test_error_barrier_on_hand_made_paths():
    assert mc.error_barrier([0.1, 0.3, 0.2]) == pytest.approx(0.15)
    assert mc.error_barrier([0.2, 0.1, 0.2]) == pytest.approx(0.0)  # a dip is no barrier
    assert mc.error_barrier([0.4, 0.3, 0.1]) == pytest.approx(0.15)  # max at an endpoint: max − mean
    assert mc.alpha_grid(11)[0] == 0.0
    assert mc.alpha_grid(11)[-1] == 1.0


def test_recomputed_bn_statistics_are_the_average_over_the_data():
    model = tiny_model(0)
    x = torch.randn(32, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    mc.recompute_bn_statistics(model, x, batch_size=8)
    with torch.no_grad():
        h = model[0](x)  # BN input
    batches = h.split(8)
    mean = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    var = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(model[1].running_mean, mean, atol=1e-6)
    assert torch.allclose(model[1].running_var, var, atol=1e-5)
    assert not model.training
    assert model[1].momentum == 0.1  # momentum restored, eval mode


def test_evaluation_sets_are_random_and_the_el2n_extremes():
    el2n = np.random.default_rng(0).random(50)
    rows = mc.subset_rows(el2n, 10, seed=1)
    assert set(rows["high_el2n"]) == set(np.argsort(el2n)[-10:])
    assert set(rows["low_el2n"]) == set(np.argsort(el2n)[:10])
    assert len(set(rows["random"])) == 10
    assert rows["random"].max() < 50
    assert np.array_equal(rows["random"], mc.subset_rows(el2n, 10, seed=1)["random"])


def test_bad_configurations_are_clear_errors(workspace):
    ws, _ = workspace
    with pytest.raises(ConfigError, match="bn must be one of"):
        mc.run(replace(SMOKE, bn="ignore"), ws)
    with pytest.raises(ConfigError, match="at least its two endpoints"):
        mc.run(replace(SMOKE, alphas=1), ws)
    with pytest.raises(ConfigError, match="do not fit the 384 training examples"):
        mc.run(replace(SMOKE, eval_set_size=1000), ws)
    with pytest.raises(ConfigError, match=r"Epochs \[3.0\] lie outside the 2-epoch budget"):
        mc.run(replace(SMOKE, spawn_epochs=(0.0, 3.0)), ws)
    with pytest.raises(ConfigError, match="two different seeds"):
        mc.run(replace(SMOKE, child_seeds=(1, 1)), ws)
