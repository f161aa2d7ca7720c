"""`datadiet migrate`: a reproduce folder of an older layout, or one written with 0.1's run identities, resumes in
this version without training again."""
import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from datadiet.cli import main
from datadiet.runs.migrate import _legacy_key, migrate
from datadiet.runs.presets import PRESETS
from datadiet.runs.scoring import ScoreConfig, scoring_schedule
from datadiet.config import TrainConfig, from_dict
from datadiet.studies import reproduce as rp
from fakes import PipeGuard, forbid_training, runs_dir, score_dirs, study_dir, write_fake_mnist

SMOKE = rp.Config(replace(PRESETS["smoke"], data=replace(PRESETS["smoke"].data, subset=96, test_subset=40)),
                  methods=("input_norm", "el2n@epoch1", "forgetting@end"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A reproduction of SMOKE in this version's layout: (data root, results folder, summary)."""
    tmp = tmp_path_factory.mktemp("migrate")
    root = write_fake_mnist(tmp / "data", n_train=120, n_test=40)
    out = tmp / "results"
    return root, out, rp.reproduce(SMOKE, out, data_root=str(root), log=lambda _: None)


def _copy(finished, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(finished[1], out)  # the module's folder stays as the fixture made it
    return out


def to_old_layout(out):
    """Move a reproduce folder of this version back into the old layout: runs/, failures/,
    config.json (without score_folders), plan.json and the tables at the top, draw 0's score runs in scores/ and
    draw d's in scores/draw-d, no workspace.json and no section.md."""
    study = study_dir(out)
    config = json.loads((study / "config.json").read_text())
    draws = [out / folder for folder in config.pop("score_folders")]
    assert len(draws) == 2 and all(d.parent == out / "scores" for d in draws)
    for kind in ("runs", "failures"):
        if (out / "sweep" / kind).is_dir():
            os.rename(out / "sweep" / kind, out / kind)
    (out / "sweep").rmdir()  # nothing else in it
    staging = out / "draw-0"
    os.rename(draws[0], staging)
    for d, folder in enumerate(draws[1:], 1):
        os.rename(folder, staging / f"draw-{d}")
    (out / "scores").rmdir()
    os.rename(staging, out / "scores")
    (study / "section.md").unlink()
    (study / "config.json").unlink()
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for path in sorted(study.iterdir()):
        os.rename(path, out / path.name)
    study.rmdir()
    (out / "workspace.json").unlink()


def downgrade_to_v01(folder):
    """Rename a 0.2 results folder's runs as 0.1 named them (old score-config fields, old cache keys)."""
    for i, path in enumerate(sorted((folder / "runs").glob("*.json"))):
        path.rename(path.with_name(f"{i:020x}.json"))  # 0.1 ids hashed the device too: any other name
    score_dir = folder / "scores"
    new = json.loads((score_dir / "score_config.json").read_text())
    old = {**new, "score": {{"scores": "score", "score_epochs": "epoch"}.get(k, k): v for k, v in new["score"].items()}}
    (score_dir / "score_config.json").write_text(json.dumps(old))
    _, stop = scoring_schedule(from_dict(ScoreConfig, new["score"]), from_dict(TrainConfig, new["train"]),
                               new["dataset"]["size"])
    for path in sorted((score_dir / ".runs").glob("*.npz")):
        seed = int(path.name[len("run-seed"):].partition("-")[0])
        with np.load(path) as data:
            arrays = {k.replace("-", "__"): data[k] for k in data.files}  # 0.1 wrote "el2n__epoch1"
        path.unlink()
        np.savez(score_dir / ".runs" / f"run-seed{seed}-{_legacy_key(old, seed, stop)}.npz", **arrays)
    np.savez(score_dir / ".runs" / "run-seed7-0123456789abcdef.npz", x=np.zeros(1))  # foreign: left alone
    damaged = score_dir / ".runs" / f"run-seed9-{_legacy_key(old, 9, stop)}.npz"  # a 0.1 name, unreadable content
    damaged.write_bytes(b"PK\x03\x04 cut short")
    return damaged


def test_a_migrated_v01_folder_resumes_without_training(finished, tmp_path, monkeypatch):
    root, _, first = finished
    out = _copy(finished, tmp_path)
    folders = json.loads((study_dir(out) / "config.json").read_text())["score_folders"]
    to_old_layout(out)
    damaged = downgrade_to_v01(out)

    report = migrate(out, log=lambda _: None)
    assert (report.runs_moved, report.score_runs_moved, report.score_runs_skipped) == (10, 2, 2)
    assert json.loads((study_dir(out) / "config.json").read_text())["score_folders"] == folders
    draw0 = score_dirs(out)[0] / ".runs"  # the old scores/ folder, now draw 0's score folder
    assert (draw0 / damaged.name).read_bytes() == b"PK\x03\x04 cut short"  # left as it was, not a traceback
    assert migrate(out, log=lambda _: None).runs_moved == 0  # idempotent
    calls = forbid_training(monkeypatch)
    again = rp.reproduce(SMOKE, out, data_root=str(root), log=lambda _: None)
    assert calls == []
    assert again["verdicts"] == first["verdicts"]
    assert (draw0 / "run-seed7-0123456789abcdef.npz").is_file()


def test_an_old_layout_folder_is_refused_until_migrated_then_resumes_without_training(finished, tmp_path,
                                                                                     monkeypatch, capsys):
    """A reproduce folder of the old layout (runs/, scores/, config.json at its top): `report` and
    `reproduce` refuse it and name `datadiet migrate`; after migrate, reproduce trains nothing and reports the
    same numbers."""
    root, _, _ = finished
    out = _copy(finished, tmp_path)
    original = (study_dir(out) / "results.csv").read_text()
    folders = json.loads((study_dir(out) / "config.json").read_text())["score_folders"]
    runs = sorted(p.name for p in runs_dir(out).glob("*.json"))
    to_old_layout(out)
    assert (out / "config.json").is_file() and (out / "runs").is_dir() and (out / "scores" / "draw-1").is_dir()
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert main(["report", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"datadiet migrate {out}" in err and "Traceback" not in err
    argv = ["reproduce", "--preset", "smoke", "--out", str(out), "--data-root", str(root)]
    assert main(argv) == 2  # refused before anything is read, whatever the options
    assert f"datadiet migrate {out}" in " ".join(capsys.readouterr().err.split())
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before  # nothing moved or written

    assert main(["migrate", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "workspace.json").read_text())["kind"] == "datadiet workspace"
    assert not (out / "runs").exists() and not (out / "config.json").exists()
    assert sorted(p.name for p in runs_dir(out).glob("*.json")) == runs  # current ids: nothing renamed
    assert json.loads((study_dir(out) / "config.json").read_text())["score_folders"] == folders
    assert (study_dir(out) / "plan.json").is_file() and (study_dir(out) / "results.csv").is_file()
    calls = forbid_training(monkeypatch)
    logs = []
    rp.reproduce(SMOKE, out, data_root=str(root), log=logs.append)
    assert calls == []
    assert any(f"{len(runs)} already finished, 0 to run" in line for line in logs), logs
    assert (study_dir(out) / "results.csv").read_text() == original
    assert main(["report", str(out)]) == 0
    assert (study_dir(out) / "results.csv").read_text() == original


def test_migrate_command_refuses_a_missing_folder(tmp_path, capsys):
    assert main(["migrate", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in " ".join(capsys.readouterr().err.split())


def test_migrate_leaves_a_current_folder_as_it_is(finished, tmp_path):
    out = _copy(finished, tmp_path)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    runs = sorted(p.name for p in runs_dir(out).glob("*.json"))
    report = migrate(out, log=lambda _: None)
    assert (report.runs_moved, report.runs_current, report.score_runs_moved) == (0, 10, 0)
    assert sorted(p.name for p in runs_dir(out).glob("*.json")) == runs
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before  # nothing moved


@pytest.mark.parametrize("keys", [("scores", "score_epochs")])
def test_the_renamed_score_fields_are_the_ones_migration_maps(keys):
    from datadiet.runs.migrate import RENAMED_SCORE_FIELDS

    assert tuple(RENAMED_SCORE_FIELDS.values()) == keys
    assert set(keys) <= set(ScoreConfig.__dataclass_fields__)


def test_migrate_refuses_a_folder_that_holds_no_results_before_locking_or_walking_it(tmp_path, capsys):
    folder = tmp_path / "home"
    (folder / "runs").mkdir(parents=True)
    (folder / "runs" / "notes.json").write_text("{}")
    before = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    assert main(["migrate", str(folder)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{folder} is not a datadiet results folder" in err and "Traceback" not in err
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == before  # no .datadiet.lock


def _sealed_run(folder, name: str, **changes):
    """A finished run record of the 0.2 form (with its checksum) under ``name``, as a 0.1 reproduce folder would
    name it (runs/ and its config.json at the folder's top; migrate moves the runs to sweep/runs)."""
    from datadiet.config import DataConfig, to_dict
    from datadiet.runs.sweep import RunSpec, seal_record

    spec = RunSpec(DataConfig(), TrainConfig(), "full", 1.0)
    record = seal_record({**spec.describe(), "test_accuracy": 0.5, "test_loss": 1.0, "steps": 10, "n_train": 96,
                          "wall_seconds": 1.0})
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    config = {"preset": "x", "data": to_dict(DataConfig()), "train": to_dict(TrainConfig()), "score_runs": 1,
              "methods": ["input_norm"], "eval_seeds": 1}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "runs" / f"{name}.json").write_text(json.dumps({**record, **changes}))
    return spec.run_id


def test_a_moved_record_keeps_a_valid_checksum_and_an_edited_one_is_not_moved(tmp_path):
    from datadiet.runs.sweep import read_run_files

    good, edited = tmp_path / "good", tmp_path / "edited"
    rid = _sealed_run(good, "0" * 20)
    assert migrate(good, log=lambda _: None).runs_moved == 1
    assert rid in read_run_files(good / "sweep").records  # renamed and resealed: it counts
    _sealed_run(edited, "0" * 20, test_accuracy=0.999)
    report = migrate(edited, log=lambda _: None)
    assert (report.runs_moved, report.runs_damaged) == (0, 1)
    assert [p.name for p in runs_dir(edited).iterdir()] == ["0" * 20 + ".json"]  # left as it was


def test_a_record_without_a_checksum_is_moved_without_one(tmp_path):
    from datadiet.runs.sweep import CHECKSUM_KEY, read_run_files

    rid = _sealed_run(tmp_path, "0" * 20, **{CHECKSUM_KEY: None})
    record = json.loads((tmp_path / "runs" / f"{'0' * 20}.json").read_text())
    del record[CHECKSUM_KEY]
    (tmp_path / "runs" / f"{'0' * 20}.json").write_text(json.dumps(record))
    assert migrate(tmp_path, log=lambda _: None).runs_moved == 1
    assert CHECKSUM_KEY not in json.loads((runs_dir(tmp_path) / f"{rid}.json").read_text())  # nothing vouched for
    assert read_run_files(tmp_path / "sweep").unchecked == [rid]


@pytest.mark.parametrize("damage", ["pipe", "nested"])
def test_a_record_that_is_a_pipe_or_nested_deep_is_left_as_damaged(tmp_path, damage):
    """A reader that opened the pipe would wait for a writer (here: read nothing, thanks to its guard)."""
    _sealed_run(tmp_path, "0" * 20)
    record = tmp_path / "runs" / f"{'0' * 20}.json"
    record.unlink()
    if damage == "pipe":
        with PipeGuard(record, tmp_path.parent / f"{tmp_path.name}.spare"):
            report = migrate(tmp_path, log=lambda _: None)
    else:
        record.write_text("[" * 100_000 + "]" * 100_000)
        report = migrate(tmp_path, log=lambda _: None)
    assert (report.runs_moved, report.runs_damaged) == (0, 1)
    assert [p.name for p in runs_dir(tmp_path).iterdir()] == ["0" * 20 + ".json"]  # left as it was, moved only
