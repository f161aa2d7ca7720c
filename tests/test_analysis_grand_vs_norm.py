"""GraNd at init against input norm (Kirsch Figs. 1, 4): Spearman values against scipy on the stored score files,
test-set and extra-init GraNd against a per-example autograd loop, ratio statistics against numpy."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from datadiet.errors import DataDietError
from datadiet.report.tables import read_csv
from datadiet.scores import load_scores
from datadiet.studies import grand_vs_norm as gvn
from datadiet.training import init_model
from fakes import copy_workspace, forbid_training, run_files, smoke_analysis, stored_scores


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws, summary = smoke_analysis(tmp_path_factory, "grand_vs_norm")
    tables = stored_scores(ws)
    folder = ws.root / "grand_vs_norm"
    cached = {p.name.split("-")[0]: load_scores(p) for p in folder.glob("*.npz")}
    return ws, summary, tables, cached


def normalized(images: torch.Tensor, splits) -> np.ndarray:
    """Normalization written out independently of datadiet's Normalizer."""
    x = images.double().numpy() / 255.0
    mean = np.asarray(splits.mean).reshape(1, -1, 1, 1)
    std = np.asarray(splits.std).reshape(1, -1, 1, 1)
    return (x - mean) / std


def autograd_grand(train, splits, seed: int, x: np.ndarray, y: int) -> float:
    """‖∇_θ CE(f(x), y)‖₂ over all parameters for one example, BatchNorm in eval mode, by plain autograd."""
    model = init_model(replace(train, seed=seed), splits.train).eval()
    loss = F.cross_entropy(model(torch.as_tensor(x[None], dtype=torch.float32)), torch.tensor([y]))
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


def test_outputs_exist(workspace):
    ws, summary, _, cached = workspace
    folder = ws.root / "grand_vs_norm"
    for name in ("scatter.png", "log_ratio.png", "n_inits.png", "sorted_test.png", "spearman.csv", "n_inits.csv",
                 "section.md", "summary.json"):
        assert (folder / name).stat().st_size > 0, name
    assert set(cached) == {"grand_init_test", "grand_init_train_extra"}
    assert len(summary["findings"]) == 5
    assert "grand_vs_norm" in (ws.root / "report.md").read_text()


def test_spearman_matches_scipy_on_the_stored_arrays(workspace):
    ws, summary, tables, cached = workspace
    splits = ws.splits(gvn.PRESETS["smoke"].setting.data)
    rows = {r["split"]: r for r in read_csv(ws.root / "grand_vs_norm" / "spearman.csv")}
    train_rho = stats.spearmanr(tables["grand@init"].runs.mean(0), tables["input_norm"].runs[0]).statistic
    test_norm = np.linalg.norm(normalized(splits.test.images, splits).reshape(len(splits.test), -1), axis=1)
    test = cached["grand_init_test"]
    assert np.array_equal(test.ids, splits.test.ids.numpy())
    assert test.runs.shape == (2, len(splits.test))
    test_rho = stats.spearmanr(test.runs.mean(0), test_norm).statistic
    assert rows["train"]["spearman"] == pytest.approx(train_rho, abs=1e-12)
    assert rows["test"]["spearman"] == pytest.approx(test_rho, abs=1e-6)
    assert summary["spearman_train"] == pytest.approx(train_rho, abs=1e-12)
    assert f"Spearman **{train_rho:.3f}**" in summary["findings"][0]
    assert f"**{test_rho:.3f}** on the {len(splits.test)} test" in summary["findings"][0]


def test_test_set_grand_equals_a_per_example_autograd_loop(workspace):
    ws, _, _, cached = workspace
    setting = gvn.PRESETS["smoke"].setting
    splits = ws.splits(setting.data)
    x = normalized(splits.test.images, splits)
    for seed in (0, 1):
        for i in (0, 17, len(splits.test) - 1):
            want = autograd_grand(setting.train, splits, seed, x[i], int(splits.test.labels[i]))
            assert cached["grand_init_test"].runs[seed, i] == pytest.approx(want, rel=1e-4)


def test_extra_inits_continue_the_score_runs_seeds(workspace):
    ws, _, tables, cached = workspace
    setting = gvn.PRESETS["smoke"].setting
    splits = ws.splits(setting.data)
    x = normalized(splits.train.images, splits)
    extra = cached["grand_init_train_extra"]
    assert extra.meta["seeds"] == [2, 3]
    assert extra.runs.shape == (2, len(splits.train))
    for row, seed in enumerate((2, 3)):
        want = autograd_grand(setting.train, splits, seed, x[5], int(splits.train.labels[5]))
        assert extra.runs[row, 5] == pytest.approx(want, rel=1e-4)
    # seeds 0 and 1 rebuilt the same way give the score runs' own GraNd at init
    for seed in (0, 1):
        want = autograd_grand(setting.train, splits, seed, x[3], int(splits.train.labels[3]))
        assert tables["grand@init"].runs[seed, 3] == pytest.approx(want, rel=1e-4)


def test_n_curve_matches_scipy(workspace):
    ws, summary, tables, cached = workspace
    curve = read_csv(ws.root / "grand_vs_norm" / "n_inits.csv")
    rows = np.concatenate([tables["grand@init"].runs, cached["grand_init_train_extra"].runs])
    norm = tables["input_norm"].runs[0]
    assert [r["n"] for r in curve] == [1, 2, 3, 4]
    for r in curve:
        n = r["n"]
        assert r["spearman_input_norm"] == pytest.approx(stats.spearmanr(rows[:n].mean(0), norm).statistic, abs=1e-12)
        assert r["spearman_all_inits"] == pytest.approx(stats.spearmanr(rows[:n].mean(0), rows.mean(0)).statistic,
                                                        abs=1e-12)
        assert r["single_init_input_norm"] == pytest.approx(stats.spearmanr(rows[n - 1], norm).statistic, abs=1e-12)
    assert summary["spearman_by_inits"]["4"] == pytest.approx(curve[-1]["spearman_input_norm"])


def test_ratio_statistics_match_numpy(workspace):
    ws, _, tables, _ = workspace
    row = next(r for r in read_csv(ws.root / "grand_vs_norm" / "spearman.csv") if r["split"] == "train")
    ratio = tables["input_norm"].runs[0] / tables["grand@init"].runs.mean(0)
    logr = np.log(ratio)
    centred = logr - logr.mean()
    m2, m3, m4 = (centred ** 2).mean(), (centred ** 3).mean(), (centred ** 4).mean()
    assert row["ratio_cv"] == pytest.approx(ratio.std(ddof=1) / ratio.mean(), rel=1e-9)
    assert row["log_ratio_mean"] == pytest.approx(logr.mean(), rel=1e-9)
    assert row["log_ratio_std"] == pytest.approx(logr.std(ddof=1), rel=1e-9)
    assert row["log_ratio_skew"] == pytest.approx(m3 / m2 ** 1.5, rel=1e-9)
    assert row["log_ratio_excess_kurtosis"] == pytest.approx(m4 / m2 ** 2 - 3, rel=1e-9)
    assert row["normaltest_stat"] == pytest.approx(stats.normaltest(logr).statistic, rel=1e-9)


def test_rerun_reads_the_cache(workspace, tmp_path, monkeypatch):
    summary = workspace[1]
    ws = copy_workspace(workspace[0], tmp_path / "ws")  # the rerun rewrites the section
    before = run_files(ws.root)
    assert {f.split("-")[0] for f in before if f.startswith("grand_vs_norm/")} == {
        "grand_vs_norm/grand_init_test", "grand_vs_norm/grand_init_train_extra"}
    forbid_training(monkeypatch)
    sizes = []
    real = gvn.init_grand

    def counting(train, splits, dataset, seeds):
        sizes.append((len(dataset), list(seeds)))
        return real(train, splits, dataset, seeds)

    monkeypatch.setattr(gvn, "init_grand", counting)
    again = gvn.run(gvn.PRESETS["smoke"], ws)
    assert sizes == [(32, [0])]  # only the check of the initial models; test set and extra inits are cached
    assert again["spearman_test"] == summary["spearman_test"]
    assert run_files(ws.root) == before
    # inits=None (the default) means the R score runs alone: no extra initialization at all
    sizes.clear()
    assert gvn.Config(gvn.PRESETS["smoke"].setting).inits is None
    gvn.run(replace(gvn.PRESETS["smoke"], inits=None), ws)
    assert sizes == [(32, [0])]
    assert [r["n"] for r in read_csv(ws.root / "grand_vs_norm" / "n_inits.csv")] == [1, 2]


def test_ratio_stats_by_hand():
    norm = np.array([1.0, 2.0, 4.0, 8.0] * 6)
    out = gvn.ratio_stats(norm, 0.5 * norm)  # GraNd exactly proportional to the norm: constant ratio
    assert out["ratio_cv"] == pytest.approx(0.0, abs=1e-12)
    assert out["ratio_mean"] == pytest.approx(2.0)
    assert out["pearson_log"] == pytest.approx(1.0)
    assert np.isnan(out["log_ratio_skew"])
    rng = np.random.default_rng(0)  # a log-normal ratio: the log ratio passes the normality test
    grand = rng.uniform(1, 5, 3000)
    out = gvn.ratio_stats(grand * np.exp(rng.normal(0.5, 0.1, 3000)), grand)
    assert abs(out["log_ratio_skew"]) < 0.2
    assert abs(out["log_ratio_excess_kurtosis"]) < 0.3
    assert out["log_ratio_mean"] == pytest.approx(0.5, abs=0.01)
    assert out["normaltest_p"] > 0.001
    with pytest.raises(DataDietError, match="not positive"):
        gvn.ratio_stats(np.array([1.0, 0.0]), np.array([1.0, 1.0]))


def test_n_init_curve_by_hand():
    norm = np.arange(1.0, 11.0)
    rows = np.stack([norm * 3, norm[::-1].copy(), norm * 2])  # init 2 ranks exactly backwards
    curve = gvn.n_init_curve(rows, norm)
    assert [r["single_init_input_norm"] for r in curve] == pytest.approx([1.0, -1.0, 1.0])
    assert curve[0]["spearman_input_norm"] == pytest.approx(1.0)
    assert curve[1]["spearman_input_norm"] == pytest.approx(1.0)  # 3n + (11 − n) still increases with n
    assert curve[2]["spearman_all_inits"] == pytest.approx(1.0)


def test_a_changed_initialization_is_caught(workspace):
    ws, _, tables, _ = workspace
    setting = gvn.PRESETS["smoke"].setting
    splits = ws.splits(setting.data)
    stored = tables["grand@init"].runs
    assert gvn.check_initial_models(setting.train, splits, 0, stored[0], 8, 1e-4) < 1e-4
    with pytest.raises(DataDietError, match="delete the workspace's scores/ folder"):
        gvn.check_initial_models(setting.train, splits, 0, stored[1], 8, 1e-2)  # seed 1's scores are not seed 0's
