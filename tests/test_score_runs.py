"""Score runs: one training run per seed feeds every score and time; cached runs resume; score draws are disjoint
blocks of seeds, each cached on its own, draw 0 where a single draw always was."""
from dataclasses import replace

import numpy as np
import pytest

import datadiet.runs.scoring as runs_mod
from fakes import learnable_splits
from datadiet.config import DataConfig, TrainConfig
from datadiet.data.transforms import Normalizer
from datadiet.errors import ConfigError, UnknownNameError
from datadiet.scores import el2n, forgetting, grand, load_scores
from datadiet.runs.scoring import (ScoreConfig, check_score_seeds, draw_seed, run_scores,
                                   score_tables)
from datadiet.training import init_model, train

TRAIN = TrainConfig(model="smallcnn", width=0.25, batch_size=32, epochs=2, eval_batch_size=64)
DATA = DataConfig(dataset="quadrants")


@pytest.fixture
def splits():
    return learnable_splits(n_train=96, n_test=32)


@pytest.fixture
def count_trains(monkeypatch):
    calls = []
    real = runs_mod.train

    def counting(cfg, *args, **kwargs):
        calls.append(cfg.seed)
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(runs_mod, "train", counting)
    return calls


def _inputs(splits):
    return Normalizer(splits.mean, splits.std)(splits.train.images)


def test_all_scores_and_times_come_from_the_same_runs(tmp_path, splits, count_trains):
    cfg = ScoreConfig(scores=("el2n", "grand", "forgetting", "input_norm", "random"), score_epochs=(0, 1), runs=2,
                      seed=5)
    files = run_scores(cfg, TRAIN, DATA, splits, tmp_path, log=lambda _: None)
    assert count_trains == [5, 6]  # one training run per seed, not one per score
    assert sorted(p.name for p in files) == ["el2n-epoch1.npz", "el2n-init.npz", "forgetting-end.npz",
                                             "grand-epoch1.npz", "grand-init.npz", "input_norm.npz", "random.npz"]
    table = load_scores(tmp_path / "grand-init.npz", dataset=splits.train)
    assert table.runs.shape == (2, 96)
    assert table.meta["seeds"] == [5, 6]
    assert table.meta["step"] == 0
    assert table.label == "grand@init"
    # The run cache holds one array per (score, time) that needs a model, keyed by its file stem.
    caches = sorted((tmp_path / ".runs").glob("*.npz"))
    assert len(caches) == 2
    with np.load(caches[0]) as run:
        assert sorted(run.files) == ["el2n-epoch1", "el2n-init", "forgetting-end", "grand-epoch1", "grand-init"]


def test_grand_at_init_uses_fresh_initialisations(tmp_path, splits):
    run_scores(ScoreConfig(scores=("grand",), score_epochs=(0,), runs=2, seed=3), TRAIN, DATA, splits, tmp_path,
               log=lambda _: None)
    table = load_scores(tmp_path / "grand-init.npz")
    x = _inputs(splits)
    for row, seed in zip(table.runs, (3, 4)):
        model = init_model(TrainConfig(**{**TRAIN.__dict__, "seed": seed}), splits.train)
        np.testing.assert_allclose(row, grand(model, x, splits.train.labels).double().numpy(), rtol=1e-6)
    assert not np.allclose(table.runs[0], table.runs[1])


def test_el2n_at_epoch_t_is_the_model_of_that_run_at_step_t(tmp_path, splits):
    run_scores(ScoreConfig(scores=("el2n",), score_epochs=(1,), runs=1, seed=0), TRAIN, DATA, splits, tmp_path,
               log=lambda _: None)
    table = load_scores(tmp_path / "el2n-epoch1.npz")
    # The same run stopped after one epoch (3 steps of 32), with the 2-epoch schedule.
    model = train(TRAIN, splits, stop_after=3, evaluate_test=False).model
    np.testing.assert_allclose(table.runs[0], el2n(model, _inputs(splits), splits.train.labels).double().numpy(),
                               rtol=1e-6)
    assert table.meta["step"] == 3


def test_forgetting_comes_from_the_full_run(tmp_path, splits):
    run_scores(ScoreConfig(scores=("forgetting",), runs=1, seed=0), TRAIN, DATA, splits, tmp_path, log=lambda _: None)
    table = load_scores(tmp_path / "forgetting-end.npz")
    result = train(TRAIN, splits, record_correctness=True, evaluate_test=False)
    np.testing.assert_array_equal(table.runs[0], forgetting(result.correctness.history(splits.train.ids)).numpy())
    assert table.meta["step"] == 6


def test_a_killed_scoring_job_resumes_from_its_finished_runs(tmp_path, splits, monkeypatch):
    cfg = ScoreConfig(scores=("el2n",), score_epochs=(1,), runs=3, seed=0)
    real = runs_mod.train
    calls = []

    def dies_on_third(c, *a, **k):
        calls.append(c.seed)
        if c.seed == 2:
            raise KeyboardInterrupt  # killed during the third run
        return real(c, *a, **k)

    monkeypatch.setattr(runs_mod, "train", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_scores(cfg, TRAIN, DATA, splits, tmp_path, log=lambda _: None)
    assert not (tmp_path / "el2n-epoch1.npz").exists()
    calls.clear()
    monkeypatch.setattr(runs_mod, "train", lambda c, *a, **k: (calls.append(c.seed), real(c, *a, **k))[1])
    run_scores(cfg, TRAIN, DATA, splits, tmp_path, log=lambda _: None)
    assert calls == [2]  # runs 0 and 1 came from the cache
    full = load_scores(tmp_path / "el2n-epoch1.npz")
    fresh = tmp_path / "fresh"
    run_scores(cfg, TRAIN, DATA, splits, fresh, log=lambda _: None)
    np.testing.assert_array_equal(full.runs, load_scores(fresh / "el2n-epoch1.npz").runs)


def test_a_changed_config_does_not_reuse_the_cache(tmp_path, splits, count_trains):
    cfg = ScoreConfig(scores=("el2n",), score_epochs=(1,), runs=1)
    run_scores(cfg, TRAIN, DATA, splits, tmp_path, log=lambda _: None)
    run_scores(cfg, TrainConfig(**{**TRAIN.__dict__, "lr": 0.05}), DATA, splits, tmp_path, log=lambda _: None)
    assert len(count_trains) == 2


def test_scoring_after_the_budget_is_an_error(tmp_path, splits):
    with pytest.raises(ConfigError, match="beyond the training budget"):
        run_scores(ScoreConfig(scores=("el2n",), score_epochs=(5,), runs=1), TRAIN, DATA, splits, tmp_path)


def test_score_config_validates_names_and_counts():
    with pytest.raises(UnknownNameError, match="Unknown score 'elbow'"):
        ScoreConfig(scores=("elbow",))
    with pytest.raises(ConfigError, match="at least 1"):
        ScoreConfig(runs=0)


# ---------------------------------------------------------------- score draws

def test_score_draws_are_disjoint_seed_blocks_and_draw_0_is_the_plain_cache(tmp_path, splits, count_trains):
    from datadiet.runs import Workspace
    from datadiet.runs.presets import Setting

    labels = ("el2n@epoch1",)
    setting = Setting("t", "tiny", DATA, TRAIN, score_runs=2, score_epoch=1.0, eval_seeds=3, keeps=(0.5,),
                      score_draws=3)
    ws = Workspace(tmp_path, log=lambda _: None)
    ws.splits = lambda data: splits  # the learnable splits stand in for the quadrants dataset
    plain = ws.scores(setting, labels=labels)  # what one draw always was: seeds 0, 1
    assert count_trains == [0, 1]
    count_trains.clear()
    draws = ws.score_draws(setting, labels=labels)
    assert count_trains == [2, 3, 4, 5]  # draw 0 came from the cache; draw d trains seeds 2d, 2d + 1
    assert [d["el2n@epoch1"].meta["seeds"] for d in draws] == [[0, 1], [2, 3], [4, 5]]
    np.testing.assert_array_equal(draws.for_seed(0)["el2n@epoch1"].runs, plain["el2n@epoch1"].runs)
    folders = ws.score_draw_folders(setting, labels=labels)
    assert folders[0] == ws.score_folder(setting, labels=labels) and len(set(folders)) == 3
    assert all((f / "el2n-epoch1.npz").is_file() for f in folders)
    assert not np.allclose(draws.for_seed(1)["el2n@epoch1"].mean, draws.for_seed(0)["el2n@epoch1"].mean)
    count_trains.clear()
    ws.score_draws(setting, labels=labels)
    assert count_trains == []  # every draw cached on its own
    fewer = ws.score_draws(replace(setting, eval_seeds=2), labels=labels)
    assert len(fewer) == 2  # a draw no evaluation seed selects from is not drawn


def test_score_seeds_never_reach_the_evaluation_seeds():
    assert [draw_seed(d, 4) for d in range(3)] == [0, 4, 8]
    check_score_seeds(250, 4, 1000)  # seeds 0..999: just below the evaluation seeds
    with pytest.raises(ConfigError, match=r"--score-draws 251 × --score-runs 4 = 1004 score runs .* at most 250 draws"):
        check_score_seeds(251, 4, 1000)
    with pytest.raises(ConfigError, match=r"Use at most 1000 score runs"):
        check_score_seeds(1, 1001, 1000)


def test_score_runs_record_how_well_their_network_fits_the_training_data(tmp_path, splits):
    import json
    import math

    from datadiet.training.evaluate import evaluate

    cfg = ScoreConfig(scores=("el2n",), score_epochs=(0, 1), runs=1, seed=0)
    run_scores(cfg, TRAIN, DATA, splits, tmp_path, log=lambda _: None)
    table = load_scores(tmp_path / "el2n-epoch1.npz")
    # the same run stopped after one epoch (3 steps of 32): its training loss and accuracy, computed independently
    model = train(TRAIN, splits, stop_after=3, evaluate_test=False).model
    accuracy, loss = evaluate(model, splits.train, Normalizer(splits.mean, splits.std))
    assert table.meta["fit"] == [{"train_loss": pytest.approx(loss), "train_accuracy": pytest.approx(accuracy)}]
    limit = 0.9 * math.log(splits.train.num_classes)
    assert (table.meta["untrained"] is not None) == (loss > limit)
    assert load_scores(tmp_path / "el2n-init.npz").meta["untrained"] is None  # scored at init by design
    # a run cached before runs measured their fit: unknown, never a reason to train it again
    cost_file = next((tmp_path / ".runs").glob("*.cost.json"))
    record = json.loads(cost_file.read_text())
    del record["fit"]
    cost_file.write_text(json.dumps(record))
    run_scores(cfg, TRAIN, DATA, splits, tmp_path, log=lambda _: None)
    old = load_scores(tmp_path / "el2n-epoch1.npz")
    assert old.meta["fit"] is None and old.meta["untrained"] is None


def test_untrained_scorer_rule_by_hand():
    from datadiet.runs.scoring import untrained_reason

    # ten classes: ln 10 = 2.3026, 0.9 × ln 10 = 2.0723
    assert untrained_reason([{"train_loss": 2.2, "train_accuracy": 0.12}, {"train_loss": 2.1, "train_accuracy": 0.1}],
                            10, 2.0) == ("its network had not learned to fit the training data when scored: mean "
                                         "training loss 2.150 over 2 runs, above 0.9 × ln 10 = 2.072, training "
                                         "accuracy 0.110 (chance 0.100)")
    assert untrained_reason([{"train_loss": 2.0, "train_accuracy": 0.3}], 10, 2.0) is None
    assert untrained_reason([{"train_loss": 2.3, "train_accuracy": 0.1}], 10, 0.0) is None  # at init by design
    assert untrained_reason(None, 10, 2.0) is None  # unknown
    assert untrained_reason([{"train_loss": None, "train_accuracy": None}], 10, 2.0) is None  # diverged: unknown


def test_score_command_warns_of_an_untrained_scorer(tmp_path, capsys):
    import math

    from fakes import write_fake_mnist
    from datadiet.cli import main

    root = write_fake_mnist(tmp_path / "data", n_train=40, n_test=8)  # random pixels: little to fit in one epoch
    assert main(["score", "--dataset", "mnist", "--data-root", str(root), "--model", "smallcnn", "--width", "0.25",
                 "--batch-size", "8", "--eval-batch-size", "16", "--epochs", "1", "--scores", "el2n",
                 "--score-epochs", "1", "--runs", "1", "--out", str(tmp_path / "s")]) == 0
    said = "".join(capsys.readouterr())
    table = load_scores(tmp_path / "s" / "el2n-epoch1.npz")
    (fit,) = table.meta["fit"]
    untrained = fit["train_loss"] > 0.9 * math.log(10)  # the rule, applied here by hand
    assert (table.meta["untrained"] is not None) == untrained
    assert ("warning: el2n@epoch1: its network had not learned" in said) == untrained
