"""Kernel velocity (Paul et al. § 5.1, App. B.3): the NTK Gram matrix against explicit per-example, per-logit
autograd Jacobians (float64, exact to 1e-10), the kernel distance on hand-made matrices, and the smoke run's
velocities recomputed from its cached models with an explicit Jacobian loop."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from datadiet.cli import build_parser
from datadiet.data.transforms import Normalizer
from datadiet.errors import ConfigError, DataDietError
from datadiet.models import build_model
from datadiet.report.tables import read_csv
from datadiet.scores import load_scores
from datadiet.studies import kernel_velocity as kv
from datadiet.studies import run_analysis
from datadiet.training import load_checkpoint
from fakes import copy_workspace, forbid_training, run_files, smoke_analysis


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws, summary = smoke_analysis(tmp_path_factory, "kernel_velocity")
    return ws, summary


def explicit_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Row i·C + a = ∂f_a(x_i)/∂θ, one autograd.grad call per example and logit."""
    model.eval()
    params = list(model.parameters())
    rows = []
    for i in range(len(x)):
        logits = model(x[i:i + 1])[0]
        for a in range(len(logits)):
            grads = torch.autograd.grad(logits[a], params, retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3)).double()
    bn = model[1]
    bn.running_mean.uniform_(-1, 1)  # non-trivial statistics: eval mode must use them
    bn.running_var.uniform_(0.5, 2)
    nn.init.uniform_(bn.weight, 0.5, 1.5)
    nn.init.uniform_(bn.bias, -0.5, 0.5)
    return model


@pytest.mark.parametrize("chunk", [None, 2, 3, 7])
def test_gram_matrix_equals_explicit_jacobians(chunk):
    model = tiny_model()
    x = torch.randn(7, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    psi = explicit_jacobian(model, x)
    model.train()  # ntk_gram must switch to eval mode (running statistics) by itself
    assert torch.allclose(kv.logit_jacobian(model, x), psi, rtol=0, atol=1e-12)
    gram = kv.ntk_gram(model, x, chunk)
    assert gram.shape == (21, 21)
    assert gram.dtype == torch.float64
    assert torch.allclose(gram, psi @ psi.T, rtol=0, atol=1e-10)
    assert torch.allclose(gram, gram.T, rtol=0, atol=1e-12)


def test_kernel_distance_on_hand_made_matrices():
    a = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    assert kv.kernel_distance(a, a) == pytest.approx(0.0, abs=1e-15)
    assert kv.kernel_distance(a, 5 * a) == pytest.approx(0.0, abs=1e-15)          # scale-invariant
    assert kv.kernel_distance(torch.diag(torch.tensor([1.0, 0.0])), torch.diag(torch.tensor([0.0, 1.0]))) == 1.0
    b = torch.ones(2, 2)
    assert kv.kernel_distance(torch.eye(2), b) == pytest.approx(1 - 2 / (np.sqrt(2) * 2), abs=1e-15)
    assert kv.kernel_distance(torch.eye(2), 7 * b) == pytest.approx(kv.kernel_distance(torch.eye(2), b), abs=1e-15)
    assert kv.kernel_distance(np.eye(2), np.eye(2)) == pytest.approx(0.0)  # numpy arrays too
    with pytest.raises(DataDietError, match="zero matrix"):
        kv.kernel_distance(torch.zeros(2, 2), a)
    with pytest.raises(DataDietError, match="one shape"):
        kv.kernel_distance(torch.eye(2), torch.eye(3))


def test_block_starts_and_velocity_pairs():
    assert kv.block_starts(1000, 100, (0.0, 0.5, 1.0)) == [0, 450, 900]
    assert kv.block_starts(1000, 100, (1.0, 0.0, 1.0)) == [0, 900]  # sorted, distinct
    assert kv.velocity_pairs((0.0, 2.5), 1.0, 12) == [(0.0, 0, 12), (2.5, 30, 42)]


def test_velocities_equal_explicit_kernels_of_the_cached_models(workspace):
    ws, summary = workspace
    setting = kv.PRESETS["smoke"].setting
    rows = read_csv(ws.root / kv.NAME / "velocity.csv")
    assert len(rows) == 2 * 3
    assert (ws.root / kv.NAME / "velocity_vs_epoch.png").stat().st_size > 0
    assert (ws.root / kv.NAME / "velocity_vs_rank.png").stat().st_size > 0
    el2n = next(load_scores(p) for p in (ws.root / "scores").glob("*/el2n-epoch1.npz"))
    splits = ws.splits(setting.data)
    assert np.array_equal(el2n.ids, splits.train.ids.numpy())
    ranking = np.argsort(el2n.mean, kind="stable")  # ascending EL2N (ids are 0..N-1 in order)
    models = next((ws.root / kv.NAME / "cache").glob("*/models"))
    x_all = Normalizer(splits.mean, splits.std)(splits.train.images).double()
    for row in rows[-1:]:  # epoch 1, the highest-EL2N block (one row: the explicit loop is slow)
        block = ranking[row["start"]:row["start"] + 10]
        assert (row["score_min"], row["score_max"]) == pytest.approx((el2n.mean[block].min(), el2n.mean[block].max()))
        kernels = []
        for step in (row["step"], row["next_step"]):
            model = build_model("smallcnn", num_classes=10, in_channels=1, width=0.25)
            model.load_state_dict(load_checkpoint(models, step)["model"])
            psi = explicit_jacobian(model.double(), x_all[torch.as_tensor(block)])
            kernels.append((psi @ psi.T).numpy())
        k1, k2 = kernels
        distance = 1 - (k1 * k2).sum() / (np.linalg.norm(k1) * np.linalg.norm(k2))
        assert row["distance"] == pytest.approx(distance, rel=1e-4, abs=1e-7)
        assert row["velocity"] == pytest.approx(row["distance"] / row["dt_epochs"])
        assert row["dt_epochs"] == 1.0
        assert row["kernel_norm"] == pytest.approx(np.linalg.norm(k1), rel=1e-5)
    assert row["step"] == 12
    assert row["next_step"] == 24
    assert row["start"] == 384 - 10
    assert summary["velocity"]["rank374@epoch1"] == pytest.approx(rows[-1]["velocity"])
    assert f"{rows[0]['velocity']:.3g}" in summary["findings"][0]


def test_a_rerun_reads_the_cache_and_trains_nothing(workspace, tmp_path, monkeypatch):
    ws = copy_workspace(workspace[0], tmp_path / "ws")  # the rerun rewrites the section
    before = (ws.root / kv.NAME / "velocity.csv").read_text()
    files = run_files(ws.root)
    assert any(f.startswith(f"{kv.NAME}/cache/") and "/models/" in f for f in files)  # the cached models
    assert any(f.startswith(f"{kv.NAME}/cache/") and "/kernels/" in f for f in files)  # and kernels

    def forbidden(*args, **kwargs):
        raise AssertionError("the re-run should have used the cache")

    forbid_training(monkeypatch)
    monkeypatch.setattr(kv, "ntk_gram", forbidden)
    run_analysis("kernel_velocity", "smoke", workspace=ws)
    assert (ws.root / kv.NAME / "velocity.csv").read_text() == before
    assert run_files(ws.root) == files


def test_velocity_epochs_flag_and_its_old_spelling(capsys):
    parser = build_parser()
    assert parser.parse_args(["analyze", "kernel_velocity", "--velocity-epochs", "0", "2.5"]).velocity_epochs == [0.0, 2.5]
    assert "deprecated" not in capsys.readouterr().err
    args = parser.parse_args(["analyze", "kernel_velocity", "--epochs", "0", "1"])
    assert args.velocity_epochs == [0.0, 1.0]
    assert "--epochs is deprecated and goes away in 0.3; use --velocity-epochs" in capsys.readouterr().err


def test_bad_configurations_are_clear_errors(workspace):
    ws, _ = workspace
    smoke = kv.PRESETS["smoke"]
    with pytest.raises(ConfigError, match="does not fit the 384 training examples"):
        kv.run(replace(smoke, block=1000), ws)
    with pytest.raises(ConfigError, match=r"Velocities at epochs \[1.5\]"):
        kv.run(replace(smoke, velocity_epochs=(0.0, 1.5)), ws)
    with pytest.raises(ConfigError, match="quantiles of the ranking"):
        kv.run(replace(smoke, positions=(0.0, 1.5)), ws)
    with pytest.raises(ConfigError, match="gap"):
        kv.run(replace(smoke, gap=0.0), ws)
    with pytest.raises(DataDietError, match="Unknown ranking score 'el2n@epoch7'"):
        kv.run(replace(smoke, score="el2n@epoch7"), ws)


def test_a_damaged_kernel_cache_file_is_computed_again_not_fatal(tmp_path):
    import os

    from datadiet.studies.kernel_velocity import _cached_kernel_distance

    good = tmp_path / "good.json"
    good.write_text('{"distance": 0.5, "norm_a": 1.0, "norm_b": 2.0}')
    assert _cached_kernel_distance(good) == {"distance": 0.5, "norm_a": 1.0, "norm_b": 2.0}
    assert _cached_kernel_distance(tmp_path / "absent.json") is None
    (tmp_path / "cut.json").write_text('{"distance": 0.')
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "other.json").write_text('{"distance": 0.5}')
    os.mkfifo(tmp_path / "pipe.json")  # read naively, this would block forever
    for name in ("cut.json", "deep.json", "other.json", "pipe.json"):
        assert _cached_kernel_distance(tmp_path / name) is None, name
