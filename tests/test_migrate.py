"""`datadiet migrate`: a folder written with 0.1's run identities resumes in 0.2 without training again."""
import json
from dataclasses import replace

import numpy as np
import pytest

from datadiet.cli import main
from datadiet.runs.migrate import _legacy_key, migrate
from datadiet.runs.presets import PRESETS
from datadiet.runs.scoring import ScoreConfig, scoring_schedule
from datadiet.config import TrainConfig, from_dict
from datadiet.studies import reproduce as rp
from fakes import forbid_training, write_fake_mnist

SMOKE = rp.Config(replace(PRESETS["smoke"], data=replace(PRESETS["smoke"].data, subset=96, test_subset=40)),
                  methods=("input_norm", "el2n@epoch1", "forgetting@end"))


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


def test_a_migrated_v01_folder_resumes_without_training(tmp_path, monkeypatch):
    root = write_fake_mnist(tmp_path / "data", n_train=120, n_test=40)
    out = tmp_path / "results"
    first = rp.reproduce(SMOKE, out, data_root=str(root), log=lambda _: None)
    damaged = downgrade_to_v01(out)

    report = migrate(out, log=lambda _: None)
    assert (report.runs_moved, report.score_runs_moved, report.score_runs_skipped) == (10, 2, 2)
    assert damaged.read_bytes() == b"PK\x03\x04 cut short"  # left as it was, not a traceback
    assert migrate(out, log=lambda _: None).runs_moved == 0  # idempotent
    calls = forbid_training(monkeypatch)
    again = rp.reproduce(SMOKE, out, data_root=str(root), log=lambda _: None)
    assert calls == []
    assert again["verdicts"] == first["verdicts"]
    assert (out / "scores" / ".runs" / "run-seed7-0123456789abcdef.npz").is_file()


def test_migrate_command_refuses_a_missing_folder(tmp_path, capsys):
    assert main(["migrate", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in " ".join(capsys.readouterr().err.split())


def test_migrate_leaves_a_current_folder_as_it_is(tmp_path):
    root = write_fake_mnist(tmp_path / "data", n_train=120, n_test=40)
    out = tmp_path / "results"
    rp.reproduce(SMOKE, out, data_root=str(root), log=lambda _: None)
    before = sorted(p.name for p in (out / "runs").glob("*.json"))
    report = migrate(out, log=lambda _: None)
    assert (report.runs_moved, report.runs_current, report.score_runs_moved) == (0, 10, 0)
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == before


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
    """A finished run record of the 0.2 form (with its checksum) under ``name``, as a 0.1 folder would name it."""
    from datadiet.config import DataConfig
    from datadiet.runs.sweep import RunSpec, seal_record

    spec = RunSpec(DataConfig(), TrainConfig(), "full", 1.0)
    record = seal_record({**spec.describe(), "test_accuracy": 0.5, "test_loss": 1.0, "steps": 10, "n_train": 96,
                          "wall_seconds": 1.0})
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "runs" / f"{name}.json").write_text(json.dumps({**record, **changes}))
    return spec.run_id


def test_a_moved_record_keeps_a_valid_checksum_and_an_edited_one_is_not_moved(tmp_path):
    from datadiet.runs.sweep import read_run_files

    good, edited = tmp_path / "good", tmp_path / "edited"
    rid = _sealed_run(good, "0" * 20)
    assert migrate(good, log=lambda _: None).runs_moved == 1
    assert rid in read_run_files(good).records  # renamed and resealed: it counts
    _sealed_run(edited, "0" * 20, test_accuracy=0.999)
    report = migrate(edited, log=lambda _: None)
    assert (report.runs_moved, report.runs_damaged) == (0, 1)
    assert [p.name for p in (edited / "runs").iterdir()] == ["0" * 20 + ".json"]  # left as it was


def test_a_record_without_a_checksum_is_moved_without_one(tmp_path):
    from datadiet.runs.sweep import CHECKSUM_KEY, read_run_files

    rid = _sealed_run(tmp_path, "0" * 20, **{CHECKSUM_KEY: None})
    record = json.loads((tmp_path / "runs" / f"{'0' * 20}.json").read_text())
    del record[CHECKSUM_KEY]
    (tmp_path / "runs" / f"{'0' * 20}.json").write_text(json.dumps(record))
    assert migrate(tmp_path, log=lambda _: None).runs_moved == 1
    assert CHECKSUM_KEY not in json.loads((tmp_path / "runs" / f"{rid}.json").read_text())  # nothing vouched for
    assert read_run_files(tmp_path).unchecked == [rid]
