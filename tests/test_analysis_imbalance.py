"""The imbalance study on generated Fashion-MNIST, and the long-tailed profile on hand-counted cases.

The tables are checked against the results rows recomputed by hand (plain means, the per-class recall column), the
profile against counts worked out on paper, the kept class counts against the labels `load_data` gives.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch

from datadiet.config import DataConfig
from datadiet.data import hold_out, load_data, long_tail_n, long_tail_quotas
from datadiet.data.dataset import ImageDataset
from datadiet.errors import ConfigError
from datadiet.report.tables import read_csv
from datadiet.runs.identity import identity
from datadiet.runs.presets import PRESETS as SETTINGS
from datadiet.studies import imbalance as im
from fakes import assert_rerun_trains_nothing, smoke_analysis


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    return smoke_analysis(tmp_path_factory, "imbalance")


# ---------------------------------------------------------------- the long-tailed profile

def test_long_tail_quotas_follow_the_geometric_profile_by_hand():
    # ratio 10 over 10 classes: class c keeps 10^(-c/9) of 400; worked out on paper and rounded.
    assert long_tail_quotas([400] * 10, 10.0) == [400, 310, 240, 186, 144, 111, 86, 67, 52, 40]
    # ratio 4 over 3 classes: 1, 1/2, 1/4 of 100.
    assert long_tail_quotas([100, 100, 100], 4.0) == [100, 50, 25]
    # unequal sizes: each class's own fraction; a class never drops to nothing, an empty class stays empty
    assert long_tail_quotas([10, 6, 0], 100.0) == [10, 1, 0]


def test_long_tail_n_keeps_ids_order_and_is_seeded():
    labels = torch.arange(300) % 3
    data = ImageDataset("toy", "train", torch.zeros(300, 1, 2, 2, dtype=torch.uint8), labels, torch.arange(300) * 7,
                        classes=("a", "b", "c"))
    tailed = long_tail_n(data, 4.0, seed=5)
    assert torch.bincount(tailed.labels, minlength=3).tolist() == [100, 50, 25]
    assert bool((tailed.ids[1:] > tailed.ids[:-1]).all())  # canonical order, ids unchanged
    assert set(tailed.ids.tolist()) <= set(data.ids.tolist())
    assert torch.equal(long_tail_n(data, 4.0, seed=5).ids, tailed.ids)
    assert not torch.equal(long_tail_n(data, 4.0, seed=6).ids, tailed.ids)
    with pytest.raises(ConfigError):
        long_tail_n(data, 1.0, seed=0)


def test_long_tail_in_load_data_and_identity(tmp_path):
    from fakes import write_fake_mnist

    root = write_fake_mnist(tmp_path / "d", n_train=400, n_test=40)
    base = DataConfig(dataset="mnist", data_root=str(root))
    plain, tailed = load_data(base), load_data(replace(base, long_tail=10.0))
    assert torch.bincount(tailed.train.labels).tolist() == [40, 31, 24, 19, 14, 11, 9, 7, 5, 4]
    assert torch.equal(plain.test.labels, tailed.test.labels)  # the test split is never made long-tailed
    # noise after the tail: the long-tailed histogram is kept, only labels move
    noisy = load_data(replace(base, long_tail=10.0, label_noise=0.2, noise_seed=1))
    assert torch.equal(noisy.train.ids, tailed.train.ids)
    assert torch.equal(torch.bincount(noisy.train.labels), torch.bincount(tailed.train.labels))
    assert identity(base) == identity(replace(base, long_tail=None))  # identities before the field: unchanged
    assert identity(base) != identity(replace(base, long_tail=10.0))
    for bad in (1.0, 0.5, -3.0):
        with pytest.raises(ConfigError, match="--long-tail"):
            DataConfig(long_tail=bad)


def test_config_refuses_data_already_changed():
    quick = im.PRESETS["quick"]
    with pytest.raises(ConfigError, match="already has"):
        replace(quick, setting=replace(quick.setting, data=replace(quick.setting.data, long_tail=5.0)))
    with pytest.raises(ConfigError, match="--rules"):
        replace(quick, rules=("nonsense",))
    with pytest.raises(ConfigError, match="--label-noise"):
        replace(quick, label_noise=0.0)


def test_equal_is_not_run_twice_on_equal_classes():
    config = im.Config(SETTINGS["smoke"], rules=("hardest", "hardest+balanced", "hardest+equal", "ccs+equal"))
    assert [str(m.how) for m in im.methods_for(config, [5, 5, 5])] == ["hardest", "hardest+balanced", "ccs+equal"]
    assert len(im.methods_for(config, [5, 4, 5])) == 4


# ---------------------------------------------------------------- the smoke study

def test_smoke_runs_every_data_and_method(analysis):
    ws, summary = analysis
    folder = ws.root / im.NAME
    rows = read_csv(folder / "results.csv")
    config = im.PRESETS["smoke"]
    label = config.setting.early("el2n")
    expected = {"full", "random", *(str(im.Method.of(label, r)) for r in config.rules), f"{label}+window"}
    for name in im.DATASETS:
        assert {r["method"] for r in rows if r["data"] == name} == expected
    assert len(rows) == 3 * len(expected) * config.setting.eval_seeds
    section = (folder / "section.md").read_text()
    assert "beats random on both" in section or "beating random on both" in section
    assert section in (ws.root / "report.md").read_text()
    sizes = summary["class_sizes"]
    assert max(sizes["long_tail"]) / min(sizes["long_tail"]) == pytest.approx(10, rel=0.15)
    assert sizes["noisy"] == [38, 38, 38, 38, 38, 39, 39, 39, 39, 38] or len(set(sizes["noisy"])) <= 2


def test_points_table_is_the_hand_mean_of_the_results(analysis):
    ws, _ = analysis
    rows = read_csv(ws.root / im.NAME / "results.csv")
    points = read_csv(ws.root / im.NAME / "points.csv")
    assert points
    for p in points:
        mine = [r for r in rows if r["data"] == p["data"] and r["method"] == p["method"] and r["keep"] == p["keep"]]
        assert p["runs"] == len(mine)
        assert p["accuracy_mean"] == pytest.approx(np.mean([r["test_accuracy"] for r in mine]))
        assert p["balanced_mean"] == pytest.approx(np.mean([r["test_balanced_accuracy"] for r in mine]))
        assert p["worst_class_mean"] == pytest.approx(np.mean([r["test_worst_class_accuracy"] for r in mine]))
        # balanced / worst class recomputed from the per-class recall cells
        recalls = [np.array([float(x) for x in str(r["test_class_recall"]).split()]) for r in mine]
        assert p["balanced_mean"] == pytest.approx(np.mean([np.nanmean(c) for c in recalls]), abs=1e-3)
        assert p["worst_class_mean"] == pytest.approx(np.mean([np.nanmin(c) for c in recalls]), abs=1e-3)


def test_versus_random_differences_and_the_answer(analysis):
    ws, summary = analysis
    rows = read_csv(ws.root / im.NAME / "results.csv")
    versus = read_csv(ws.root / im.NAME / "versus_random.csv")
    column = {"accuracy": "test_accuracy", "balanced": "test_balanced_accuracy",
              "worst-class": "test_worst_class_accuracy"}
    assert {v["metric"] for v in versus} == set(column)
    for v in versus:
        def mean(method):
            return np.mean([r[column[v["metric"]]] for r in rows if r["data"] == v["data"]
                            and r["method"] == method and r["keep"] == v["keep"]])
        assert v["diff"] == pytest.approx(mean(v["method"]) - mean("random"))
    answers = read_csv(ws.root / im.NAME / "answer_keep_0.5.csv")
    assert len(answers) == len([v for v in versus if v["metric"] == "accuracy" and v["keep"] == 0.5])
    for a in answers:
        both = a["accuracy_verdict"] == "better" and a["worst_class_verdict"] == "better"
        assert str(a["beats_random_on_both"]) == str(both)
    # smoke has 2 evaluation seeds: nothing can be resolved, so nothing beats random
    assert summary["beats_random_on_both"] == []


def test_class_counts_match_the_true_labels(analysis):
    ws, _ = analysis
    counts = read_csv(ws.root / im.NAME / "class_counts.csv")
    config = im.PRESETS["smoke"]
    for name in im.DATASETS:
        data = replace(im.data_of(config, name), data_root=ws.execution.data_root, label_noise=0.0, noise_seed=0)
        sizes = torch.bincount(load_data(data).train.labels, minlength=10).tolist()
        mine = [c for c in counts if c["data"] == name]
        assert mine and all(c["size"] == sizes[c["class"]] for c in mine)
        n = sum(sizes)
        for method, keep in {(c["method"], c["keep"]) for c in mine}:
            kept = [c["kept_mean"] for c in mine if c["method"] == method and c["keep"] == keep]
            assert len(kept) == 10 and all(0 <= k <= s for k, s in zip(kept, sizes))
            assert sum(kept) == pytest.approx(round(keep * n), abs=1)
        assert [c["kept_mean"] for c in mine if c["method"] == "full"] == sizes


def test_rerun_trains_nothing(analysis):
    ws, _ = analysis
    assert_rerun_trains_nothing(ws, "imbalance")


# ---------------------------------------------------------------- the validated window

def test_hold_out_is_stratified_seeded_and_disjoint():
    labels = torch.tensor([0] * 50 + [1] * 20 + [2] * 2 + [3])
    data = ImageDataset("toy", "train", torch.zeros(73, 1, 2, 2, dtype=torch.uint8), labels, torch.arange(73) + 100,
                        classes=("a", "b", "c", "d"))
    rest, held = hold_out(data, 0.1, seed=3)
    # round(0.1 · n_c), at least one of a class of two or more, never all of it: 5, 2, 1, 0
    assert torch.bincount(held.labels, minlength=4).tolist() == [5, 2, 1, 0]
    assert len(rest) + len(held) == 73 and not set(rest.ids.tolist()) & set(held.ids.tolist())
    assert held.split == "holdout" and bool((rest.ids[1:] > rest.ids[:-1]).all())
    assert torch.equal(hold_out(data, 0.1, seed=3)[1].ids, held.ids)


def test_holdout_replaces_the_test_split_with_training_examples(tmp_path):
    from fakes import write_fake_mnist

    root = write_fake_mnist(tmp_path / "d", n_train=400, n_test=40)
    base = DataConfig(dataset="mnist", data_root=str(root), long_tail=10.0, label_noise=0.2)
    whole, split = load_data(base), load_data(replace(base, holdout=0.1))
    assert sorted(split.train.ids.tolist() + split.test.ids.tolist()) == sorted(whole.train.ids.tolist())
    given = dict(zip(whole.train.ids.tolist(), whole.train.labels.tolist()))  # the noisy labels, kept
    assert [given[i] for i in split.test.ids.tolist()] == split.test.labels.tolist()
    assert identity(base) == identity(replace(base, holdout=None))
    with pytest.raises(ConfigError, match="--holdout"):
        DataConfig(holdout=1.0)
    with pytest.raises(ConfigError, match="--test-subset"):
        DataConfig(holdout=0.1, test_subset=10)


def test_validation_never_sees_the_test_split():
    config = im.PRESETS["smoke"]
    for name in im.DATASETS:
        data = im.validation_setting(config, name).data
        assert data.holdout == config.holdout and data.test_subset is None
        assert replace(data, holdout=None) == replace(im.data_of(config, name), test_subset=None)


def test_window_offsets_and_the_choice_of_m():
    assert im.window_offset(0.5, 0.0) is None
    assert im.window_offset(0.5, 0.2) == pytest.approx(0.3)  # drop the top 20 %, keep the next 50 %
    table = [{"keep": 0.5, "m": 0.0, "validation_balanced": 0.6}, {"keep": 0.5, "m": 0.1, "validation_balanced": 0.7},
             {"keep": 0.5, "m": 0.2, "validation_balanced": 0.7}, {"keep": 0.3, "m": 0.0, "validation_balanced": 0.5},
             {"keep": 0.3, "m": 0.1, "validation_balanced": float("nan")}]
    assert im.pick_drops(table) == {0.5: 0.1, 0.3: 0.0}  # ties go to the smaller m; a NaN never wins


def test_window_rows_are_the_chosen_windows(analysis):
    ws, summary = analysis
    rows = read_csv(ws.root / im.NAME / "results.csv")
    validation = read_csv(ws.root / im.NAME / "window_validation.csv")
    label = im.PRESETS["smoke"].setting.early("el2n")
    for name, drops in summary["chosen_drops"].items():
        for keep, m in drops.items():
            chosen = [v for v in validation if v["data"] == name and v["keep"] == float(keep) and str(v["chosen"]) == "True"]
            assert len(chosen) == 1 and chosen[0]["m"] == m
            mine = [v for v in validation if v["data"] == name and v["keep"] == float(keep)]
            assert chosen[0]["validation_balanced"] == max(v["validation_balanced"] for v in mine)
            window = [r for r in rows if r["data"] == name and r["method"] == f"{label}+window"]
            assert window and all(r["m"] == m for r in window)
            expected = None if m == 0 else pytest.approx(1 - float(keep) - m)
            assert all(r["offset"] == expected if m else r["offset"] in (None, "") for r in window)
