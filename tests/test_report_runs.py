"""The report aggregates exactly its own plan's runs: foreign run files, extra seeds and damaged files are named,
never averaged in; a damaged run file is trained again on resume."""
import json
import shutil

import pytest

from fakes import runs_dir, study_dir, write_fake_mnist
from datadiet.cli import main
from datadiet.report.tables import read_csv
from datadiet.runs.sweep import read_run_files, seal_record
from datadiet.studies import build_workspace_report
from datadiet.studies.reproduce import PRESETS, reproduce

SMOKE = PRESETS["smoke"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A smoke reproduction with 3 evaluation seeds, then the same experiment with the default 2."""
    tmp = tmp_path_factory.mktemp("report-runs")
    root = write_fake_mnist(tmp / "data", n_train=480, n_test=240)
    out = tmp / "three"
    reproduce(replace_seeds(3), out, data_root=str(root), log=lambda _: None)
    return root, out


def replace_seeds(n):
    from dataclasses import replace
    return replace(SMOKE, eval_seeds=n)


def build_report(out, **kwargs):
    """Rebuild the workspace report; the reproduction's summary."""
    return build_workspace_report(out, **kwargs).summaries["reproduce"]


def _copy(finished, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(finished[1], out)
    return out


def _random_rows(out):
    return [r for r in read_csv(study_dir(out) / "curve.csv") if r["method"] == "random"]


def test_shrinking_seed_count_reports_the_plan_and_names_the_extra_runs(finished, tmp_path):
    root, _ = finished
    out = _copy(finished, tmp_path)
    assert _random_rows(out)[0]["n"] == 3
    lines = []
    summary = reproduce(replace_seeds(2), out, data_root=str(root), log=lines.append)
    assert _random_rows(out)[0]["n"] == 2  # the plan has 2 seeds, and so has every point
    assert {r["seed"] for r in read_csv(study_dir(out) / "results.csv")} == {1000, 1001}
    assert len(summary["runs"]["extra"]) == 7  # seed 1002: full + 6 methods
    assert any("7 runs of this experiment with evaluation seeds beyond the plan: left out" in line for line in lines)
    assert "7 runs of this experiment with evaluation seeds beyond the plan" in (out / "report.md").read_text()
    included = build_report(out, extra_seeds="include", log=lambda _: None)
    assert _random_rows(out)[0]["n"] == 3 and included["runs"]["included_extra_seeds"]


def test_foreign_run_file_is_left_out_and_named(finished, tmp_path):
    out = _copy(finished, tmp_path)
    before = _random_rows(out)[0]
    record = json.loads(next(runs_dir(out).glob("*.json")).read_text())
    record["train"] = {**record["train"], "model": "resnet18", "seed": 7}  # another experiment's run
    record["dataset_fingerprint"] = "0" * 16
    record["method"], record["keep"], record["test_accuracy"] = "random", before["keep"], 0.99
    from datadiet.runs.identity import identity
    rid = identity({k: record.get(k) for k in ("data", "train", "method", "keep", "offset", "subset_digest")})
    record["run_id"] = rid
    record = seal_record(record)  # a genuine run of another experiment carries its own valid checksum
    (runs_dir(out) / f"{rid}.json").write_text(json.dumps(record))
    summary = build_report(out, log=lambda _: None)
    assert _random_rows(out)[0] == before  # n and mean unchanged
    assert summary["runs"]["foreign"] == [rid]
    assert rid in (out / "report.md").read_text()
    build_report(out, extra_seeds="include", log=lambda _: None)  # never included, even then
    assert _random_rows(out)[0] == before


def test_run_of_another_studys_plan_is_left_out_and_counted_as_its(finished, tmp_path):
    """A run another study of the workspace planned (its own plan.json lists it) is neither averaged in nor
    called foreign."""
    out = _copy(finished, tmp_path)
    before = _random_rows(out)[0]
    record = json.loads(next(runs_dir(out).glob("*.json")).read_text())
    record["train"] = {**record["train"], "model": "resnet18", "seed": 7}  # not this experiment's recipe
    record["method"], record["keep"], record["test_accuracy"] = "random", before["keep"], 0.99
    from datadiet.runs.identity import identity
    rid = identity({k: record.get(k) for k in ("data", "train", "method", "keep", "offset", "subset_digest")})
    record["run_id"] = rid
    (runs_dir(out) / f"{rid}.json").write_text(json.dumps(seal_record(record)))
    (out / "other").mkdir()
    plan = {"version": "x", "runs": {rid: {k: record.get(k) for k in ("method", "keep", "offset", "subset_digest")}}}
    (out / "other" / "plan.json").write_text(json.dumps(plan))
    summary = build_report(out, log=lambda _: None)
    assert _random_rows(out)[0] == before
    assert summary["runs"]["other_studies"] == [rid]
    assert summary["runs"]["foreign"] == []
    build_report(out, extra_seeds="include", log=lambda _: None)  # never included, even then
    assert _random_rows(out)[0] == before


def test_edited_run_file_is_not_counted(finished, tmp_path):
    out = _copy(finished, tmp_path)
    path = sorted(runs_dir(out).glob("*.json"))[0]
    record = json.loads(path.read_text())
    record["keep"] = 0.123  # content no longer hashes to the name
    path.write_text(json.dumps(record))
    summary = build_report(out, log=lambda _: None)
    assert [d.split(" ")[0] for d in summary["runs"]["damaged"]] == [path.name]
    assert summary["runs"]["aggregated"] == 3 * 7 - 1


@pytest.mark.parametrize("content", ["", '{"run_id": "x"', "[1, 2]", '{"run_id": "abc"}'])
def test_damaged_run_file_is_trained_again_on_resume(finished, tmp_path, content):
    root, _ = finished
    out = _copy(finished, tmp_path)
    path = sorted(runs_dir(out).glob("*.json"))[0]
    good = json.loads(path.read_text())
    path.write_text(content)
    assert path.stem not in read_run_files(out / "sweep").records
    lines = []
    reproduce(replace_seeds(3), out, data_root=str(root), log=lines.append)
    assert any("1 to run" in line and "damaged result files are run again" in line for line in lines)
    again = json.loads(path.read_text())
    assert again["test_accuracy"] == good["test_accuracy"]  # the same run, retrained bit for bit


CLASS_KEYS = ("test_balanced_accuracy", "test_worst_class_accuracy", "test_class_recall", "test_majority_rate")


def test_runs_carry_every_class_and_old_records_without_it_still_report(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    rows = read_csv(study_dir(out) / "results.csv")
    assert len(rows) == 3 * 7 and all(0 <= r["test_balanced_accuracy"] <= 1 for r in rows)
    assert all(r["test_worst_class_accuracy"] <= r["test_balanced_accuracy"] for r in rows)
    for path in runs_dir(out).glob("*.json"):  # as written before runs measured classes: sealed without the keys
        record = json.loads(path.read_text())
        path.write_text(json.dumps(seal_record({k: v for k, v in record.items() if k not in CLASS_KEYS})))
    assert main(["report", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    summary = json.loads((study_dir(out) / "summary.json").read_text())
    assert summary["runs"]["aggregated"] == 3 * 7 and summary["runs"]["damaged"] == []  # counted, none to retrain
    old = read_csv(study_dir(out) / "results.csv")
    assert len(old) == 3 * 7 and all(r[k] is None for r in old for k in CLASS_KEYS)  # unknown: empty cells
    assert [r["test_accuracy"] for r in old] == [r["test_accuracy"] for r in rows]


def test_folder_without_plan_says_how_to_get_one(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    (study_dir(out) / "plan.json").unlink()
    assert main(["report", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "reproduce/plan.json" in err and "Re-run the study with the same --out and options" in err


@pytest.mark.parametrize("content", ["{not json", "[]", ""])
def test_damaged_config_is_a_clear_error(finished, tmp_path, capsys, content):
    out = _copy(finished, tmp_path)
    (study_dir(out) / "config.json").write_text(content)
    assert main(["report", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "reproduce/config.json" in err and "Traceback" not in err


def test_report_flag_includes_extra_seeds(finished, tmp_path, capsys):
    root, _ = finished
    out = _copy(finished, tmp_path)
    reproduce(replace_seeds(2), out, data_root=str(root), log=lambda _: None)
    assert main(["report", str(out), "--extra-seeds", "include"]) == 0
    assert _random_rows(out)[0]["n"] == 3
    assert main(["report", str(out)]) == 0
    assert _random_rows(out)[0]["n"] == 2


def test_extra_seeds_of_a_ccs_method_are_the_same_experiment(tmp_path):
    """CCS draws a fresh sample per evaluation seed, like random: its extra-seed runs are extra, not foreign."""
    from dataclasses import replace
    root = write_fake_mnist(tmp_path / "data", n_train=480, n_test=240)
    out = tmp_path / "ccs"
    config = replace(SMOKE, methods=("el2n@epoch1", "el2n@epoch1+ccs"))
    reproduce(replace(config, eval_seeds=3), out, data_root=str(root), log=lambda _: None)
    summary = reproduce(replace(config, eval_seeds=2), out, data_root=str(root), log=lambda _: None)
    assert summary["runs"]["foreign"] == []
    assert len(summary["runs"]["extra"]) == 4  # seed 1002: full, random, el2n, el2n+ccs
    build_report(out, extra_seeds="include", log=lambda _: None)
    rows = {r["method"]: r for r in read_csv(study_dir(out) / "curve.csv")}
    assert rows["el2n@epoch1+ccs"]["n"] == 3
