"""Score draws in `reproduce`: evaluation seed s selects from draw s mod K, the seeds of K draws of R runs never
reach the evaluation seeds, and a folder of an earlier version (one draw) resumes under one draw only."""
from dataclasses import replace

import numpy as np
import pytest

from fakes import learnable_splits, study_dir
from datadiet.cli import main
from datadiet.errors import DataDietError
from datadiet.runs.identity import digest_ids
from datadiet.scores.store import ScoreTable
from datadiet.selection import select
from datadiet.runs.workspace import ScoreDraws, Workspace
from datadiet.studies.reproduce import PRESETS, _claim_folder, build_tasks


def _draw(ids, seed):
    """A score table whose ranking differs from draw to draw."""
    return {"el2n@epoch1": ScoreTable("el2n", ids, np.random.default_rng(seed).random((2, len(ids))), {})}


def test_evaluation_seed_s_selects_from_draw_s_mod_k(tmp_path):
    splits = learnable_splits(n_train=64, n_test=16)
    ids = splits.train.ids.numpy()
    draws = ScoreDraws(tuple(_draw(ids, d) for d in range(2)))
    config = replace(PRESETS["smoke"], methods=("el2n@epoch1",), keeps=(0.5,), eval_seeds=3, score_draws=2)
    ws = Workspace(tmp_path, log=lambda _: None)
    ws.splits = lambda data: splits  # the learnable splits stand in for the preset's data
    tasks = build_tasks(config, ws, config.setting.train, draws)
    scored = sorted((t.spec for t in tasks if t.spec.method == "el2n@epoch1"), key=lambda spec: spec.train.seed)
    assert [spec.train.seed for spec in scored] == [1000, 1001, 1002]
    expected = [digest_ids(select(draws.items[s % 2]["el2n@epoch1"], keep=0.5)) for s in range(3)]
    assert [spec.subset_digest for spec in scored] == expected
    assert expected[0] == expected[2] != expected[1]  # seeds 0 and 2 share draw 0


def test_every_study_that_prunes_with_scores_selects_through_the_one_kit_function():
    """No study writes "draw s mod K" itself: only ScoreDraws.for_seed does (the house's one protocol)."""
    import importlib
    import inspect

    import datadiet.studies as studies

    for name in studies.STUDIES:
        source = inspect.getsource(importlib.import_module(f"datadiet.studies.{name}"))
        assert "% len(draws)" not in source and "min(setting.score_draws" not in source, name


def test_score_draws_map_keeps_the_seed_rule():
    draws = ScoreDraws((np.arange(3.0), np.arange(3.0)[::-1]))
    assert [d.tolist() for d in draws.map(lambda v: v * 2)] == [[0, 2, 4], [4, 2, 0]]
    assert draws.for_seed(3) is draws.items[1] and draws.for_seed(4) is draws.items[0]
    with pytest.raises(ValueError):
        ScoreDraws(())


def test_score_draws_are_refused_where_their_seeds_reach_the_evaluation_seeds(tmp_path, capsys):
    with pytest.raises(DataDietError, match="--score-draws 501 × --score-runs 2 = 1002 score runs"):
        replace(PRESETS["smoke"], score_draws=501)
    assert replace(PRESETS["smoke"], score_draws=500).resolved.score_draws == 500
    assert main(["reproduce", "--preset", "smoke", "--out", str(tmp_path), "--score-draws", "0"]) == 2
    assert "--score-draws must be at least 1" in " ".join(capsys.readouterr().err.split())
    assert main(["reproduce", "--preset", "smoke", "--out", str(tmp_path), "--score-draws", "600"]) == 2
    assert "reaching the evaluation seeds (from 1000)" in " ".join(capsys.readouterr().err.split())


def test_presets_draw_once_per_evaluation_seed_up_to_quick():
    resolved = {name: PRESETS[name].resolved for name in ("smoke", "quick", "gpu", "paper")}
    assert resolved["smoke"].score_draws == 2
    assert resolved["quick"].score_draws == resolved["quick"].eval_seeds == 3
    assert resolved["gpu"].score_draws == resolved["gpu"].eval_seeds
    assert resolved["paper"].score_draws == resolved["paper"].eval_seeds


def test_a_folder_of_one_draw_resumes_only_with_one_draw(tmp_path):
    study = study_dir(tmp_path)  # the reproduction's config.json, as migrate leaves an earlier version's
    study.mkdir()
    (study / "config.json").write_text('{"preset": "smoke", "score_runs": 2, "methods": ["el2n@epoch1"]}')
    record = {"preset": "smoke", "score_runs": 2, "methods": ["el2n@epoch1"]}
    _claim_folder(study, {**record, "score_draws": 1})  # earlier versions drew once: the same experiment
    with pytest.raises(DataDietError, match="differs in score_draws"):
        _claim_folder(study, {**record, "score_draws": 2})
