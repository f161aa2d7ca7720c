"""EL2N from a hyperparameter grid (Paul et al. App. E.4): the grid's score runs (recipes, distinct seeds), the
Spearman numbers against scipy on the stored score rows, the pruning table against the results, errors."""
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from datadiet.errors import ConfigError, DataDietError, NonFiniteLossError
from datadiet.report.tables import read_csv
from datadiet.scores import load_scores
from datadiet.studies.hparam_grid import PRESETS, grid_cells, grid_table, pruning_table, run, split_half
from fakes import assert_rerun_trains_nothing, copy_workspace, smoke_analysis

SMOKE = PRESETS["smoke"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws, summary = smoke_analysis(tmp_path_factory, "hparam_grid")
    tables = [load_scores(p) for p in sorted((ws.root / "scores").glob("*/el2n-epoch1.npz"))]  # one per run set
    return ws, summary, tables


def _split(tables, draw: int = 0):
    """Score draw ``draw``'s grid tables (seeds from 100, draw d's cells after draw d − 1's) and default ensemble
    (seeds from d·n, n = the grid's runs): the smoke preset has 2 draws of a 3-cell grid."""
    cells = len(SMOKE.lrs) * len(SMOKE.weight_decays)
    grid = sorted((t for t in tables if 100 + draw * cells <= min(t.meta["seeds"]) < 100 + (draw + 1) * cells),
                  key=lambda t: t.meta["seeds"][0])
    (default,) = [t for t in tables if min(t.meta["seeds"]) == draw * cells]
    return grid, default


def test_grid_runs_use_their_recipe_and_distinct_seeds(workspace):
    _, _, tables = workspace
    grid, default = _split(tables)
    assert [(t.meta["train"]["lr"], t.meta["train"]["weight_decay"]) for t in grid] == \
        [(0.05, 5e-4), (0.1, 5e-4), (0.2, 5e-4)]
    seeds = [s for t in grid for s in t.meta["seeds"]]
    assert seeds == [100, 101, 102]
    assert default.meta["seeds"] == [0, 1, 2]
    assert (default.meta["train"]["lr"], default.meta["train"]["weight_decay"]) == (0.1, 5e-4)
    grid_1, default_1 = _split(tables, draw=1)  # the second score draw: the next seeds, the same recipes
    assert [s for t in grid_1 for s in t.meta["seeds"]] == [103, 104, 105] and default_1.meta["seeds"] == [3, 4, 5]
    assert [t.meta["train"]["lr"] for t in grid_1] == [t.meta["train"]["lr"] for t in grid]
    # different seeds and recipes give different networks: no two runs score alike
    rows = np.concatenate([t.runs for t in grid + grid_1] + [default.runs, default_1.runs])
    assert len({r.tobytes() for r in rows}) == 12


def test_spearman_numbers_match_scipy_on_the_score_files(workspace):
    ws, summary, tables = workspace
    grid, default = _split(tables)
    grid_mean = np.concatenate([t.runs for t in grid]).mean(0)
    assert summary["runs"] == 3
    assert summary["spearman"] == pytest.approx(stats.spearmanr(grid_mean, default.mean).statistic, abs=1e-12)
    assert summary["default_halves"] == pytest.approx(stats.spearmanr(default.runs[0], default.runs[1]).statistic)
    cells = read_csv(ws.root / "hparam_grid" / "grid.csv")
    for cell, table in zip(cells, grid):
        assert (cell["lr"], cell["status"], cell["runs"]) == (table.meta["train"]["lr"], "ok", 1)
        assert cell["spearman_vs_default"] == pytest.approx(stats.spearmanr(table.mean, default.mean).statistic)
        assert cell["spearman_vs_grid"] == pytest.approx(stats.spearmanr(table.mean, grid_mean).statistic)
    assert f"Spearman **{summary['spearman']:.2f}**" in summary["findings"][1]  # [0]: what the intervals cover


def test_pruning_table_matches_the_results(workspace):
    ws, summary, _ = workspace
    folder = ws.root / "hparam_grid"
    assert (folder / "grid.png").stat().st_size > 0
    assert (folder / "pruning.png").stat().st_size > 0
    results, (row,) = read_csv(folder / "results.csv"), read_csv(folder / "pruning.csv")

    def accs(method):
        return np.array([r["test_accuracy"] for r in results if r["method"] == method and r["keep"] == 0.5])

    grid, default, rand = accs("el2n@epoch1/hp-grid"), accs("el2n@epoch1"), accs("random")
    assert len(grid) == len(default) == len(rand) == 2 == row["n"]
    assert (row["grid"], row["default"], row["random"]) == pytest.approx((grid.mean(), default.mean(), rand.mean()))
    assert row["grid_minus_default"] == pytest.approx(grid.mean() - default.mean())
    assert row["default_vs_random"] == pytest.approx(default.mean() - rand.mean())
    assert summary["findings"][-1].endswith("at 1 of 1 kept fractions (Paul et al.: as good at every fraction).") == \
        (row["grid_minus_default_low"] <= 0 <= row["grid_minus_default_high"])


def test_pruning_table_intervals_against_scipy():
    accs = {"g": [0.80, 0.82, 0.79], "d": [0.81, 0.85, 0.84], "random": [0.70, 0.73, 0.71]}
    rows = [{"method": m, "keep": 0.3, "offset": None, "test_accuracy": a} for m, v in accs.items() for a in v]
    (row,) = pruning_table(rows, "g", "d", [0.3])
    for name, a, b in (("grid_minus_default", "g", "d"), ("grid_vs_random", "g", "random"),
                       ("default_vs_random", "d", "random")):
        ci = stats.ttest_ind(accs[a], accs[b], equal_var=False).confidence_interval(0.95)
        assert row[name] == pytest.approx(np.mean(accs[a]) - np.mean(accs[b]))
        assert (row[f"{name}_low"], row[f"{name}_high"]) == pytest.approx((ci.low, ci.high))


def test_grid_cells_and_split_half():
    config = replace(SMOKE, lrs=(0.1, 0.2), weight_decays=(1e-4, 5e-4), runs_per_cell=2, grid_seed=50)
    cells = grid_cells(config)
    assert [(c["lr"], c["weight_decay"], c["seed"]) for c in cells] == \
        [(0.1, 1e-4, 50), (0.1, 5e-4, 52), (0.2, 1e-4, 54), (0.2, 5e-4, 56)]
    runs = np.array([[1.0, 2, 3, 4], [2, 1, 3, 4], [4, 3, 2, 1], [1, 2, 4, 3]])
    assert split_half(runs) == pytest.approx(stats.spearmanr(runs[:2].mean(0), runs[2:].mean(0)).statistic)
    assert math.isnan(split_half(runs[:1]))


@pytest.mark.parametrize("change, message", [
    (dict(lrs=()), "grid is empty"),
    (dict(lrs=(0.1, -0.1)), "Learning rates must be > 0"),
    (dict(weight_decays=(-1e-4,)), "weight decays >= 0"),
    (dict(runs_per_cell=0), "--runs-per-cell must be at least 1; got 0"),
    # 3 cells × 1 run × the smoke preset's 2 score draws: grid seeds 1..6, default ensembles 0..5
    (dict(grid_seed=1), r"Grid seeds 1..6 overlap the seeds of the default ensemble \(0..5\)"),
    (dict(grid_seed=999), r"overlap the seeds of the evaluation runs \(1000..1001\)"),
    (dict(score="forgetting"), "not scored from a model during training"),
])
def test_impossible_grids_are_clear_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        grid_cells(replace(SMOKE, **change))


class _DivergingWorkspace:
    """Stands in for a workspace whose every grid run diverges."""

    def __init__(self):
        self.logged = []

    def log(self, message):
        self.logged.append(message)

    def scores(self, *args, **kwargs):
        raise NonFiniteLossError("loss became nan at step 3")


def test_diverged_cells_are_reported_and_all_diverged_is_an_error():
    ws = _DivergingWorkspace()
    with pytest.raises(DataDietError, match="Every cell of the hyperparameter grid diverged"):
        run(SMOKE, ws)
    assert sum("diverged (loss became nan at step 3); left out" in m for m in ws.logged) == 3


def test_grid_table_marks_diverged_cells():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    cells = [{"lr": 0.1, "weight_decay": 0.0, "seed": 100, "runs": 1, "mean": values},
             {"lr": 0.2, "weight_decay": 0.0, "seed": 101, "runs": 0}]
    ok, bad = grid_table(cells, values, values[::-1])
    assert ok["status"] == "ok"
    assert ok["spearman_vs_default"] == pytest.approx(-1.0)
    assert ok["spearman_vs_grid"] == 1
    assert bad["status"] == "diverged"
    assert math.isnan(bad["spearman_vs_default"])


class _Stop(Exception):
    pass


class _RecordingWorkspace:
    """Returns random score rows and records what each ws.scores call asked for; stops before evaluation."""

    def __init__(self):
        self.calls = []

    def log(self, message):
        pass

    def scores(self, setting, **kwargs):
        from datadiet.scores import ScoreTable

        self.calls.append(kwargs)
        runs = kwargs.get("runs") or setting.score_runs
        label = setting.early("el2n")
        return {label: ScoreTable("el2n", np.arange(6), np.random.default_rng(len(self.calls)).random((runs, 6)))}

    def splits(self, data):
        raise _Stop


@pytest.mark.parametrize("lrs, shared", [((0.05,), True), ((0.05, 0.2), True), ((0.05, 0.1, 0.2), False)])
def test_default_ensemble_reuses_the_standard_runs_when_there_are_enough(lrs, shared):
    ws = _RecordingWorkspace()
    with pytest.raises(_Stop):
        run(replace(SMOKE, lrs=lrs), ws)
    *cells, default = ws.calls
    assert [c["seed"] for c in cells] == list(range(100, 100 + len(lrs)))
    assert all(c["labels"] == ("el2n@epoch1",) for c in cells)
    assert all(c["runs"] == 1 for c in cells)
    assert default.get("seed", 0) == 0  # draw 0's default ensemble: seeds from 0
    # up to the smoke setting's 2 standard score runs, those (every score, shared) serve as the default
    if shared:
        assert default.get("runs") is None
        assert default.get("labels") is None
    else:
        assert default["runs"] == len(lrs)
        assert default["labels"] == ("el2n@epoch1",)


def test_a_second_run_trains_nothing(workspace, tmp_path):
    assert_rerun_trains_nothing(copy_workspace(workspace[0], tmp_path / "ws"), "hparam_grid")


@pytest.mark.parametrize("lost", ["sweep/runs/*.json", "scores/*/.runs/*.npz"])
def test_the_rerun_check_fails_when_something_trains(workspace, tmp_path, lost):
    """Guards the guard: with one evaluation run or one score run gone, the rerun must train, and the check
    must say so (the engine is refused, so nothing actually trains here)."""
    ws = copy_workspace(workspace[0], tmp_path / "ws")
    next(ws.root.glob(lost)).unlink()
    with pytest.raises(pytest.fail.Exception, match="a rerun trained a model"):
        assert_rerun_trains_nothing(ws, "hparam_grid")
