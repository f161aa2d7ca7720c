"""One pipeline: one preset table with named overrides, study configs checked when built, one Execution, plans for
every study, dynamic methods as methods, and `reproduce` sharing a workspace with an analysis."""
import json
from dataclasses import replace

import pytest

from fakes import write_fake_mnist
from datadiet.cli import main
from datadiet.config import TrainConfig
from datadiet.errors import ConfigError
from datadiet.methods import DynamicMethod, Method
from datadiet.runs import Execution, Workspace
from datadiet.runs.plan import account_runs, other_plans
from datadiet.runs.presets import ON_SCARCE, PRESETS
from datadiet.runs.sweep import RunFiles
from datadiet.studies import MODULES, STUDIES, build_workspace_report, get_study, run_study


# --- one preset table ------------------------------------------------------------------------------------------

def test_every_study_has_every_preset_on_the_table_s_setting_or_its_named_override():
    for name in STUDIES:
        study = get_study(name)
        assert list(study.presets) == list(PRESETS), name
        for preset, config in study.presets.items():
            expected = PRESETS[study.settings.get(preset, preset)]
            assert config.setting == expected, (name, preset)


def test_the_overrides_are_the_analyses_quick_on_quick_scarce_only():
    assert ON_SCARCE == {"quick": "quick-scarce"}
    assert get_study("reproduce").settings == {} and get_study("compute").settings == {}
    assert {name for name in MODULES if get_study(name).settings} == set(MODULES) - {"compute"}
    assert all(get_study(name).settings in ({}, ON_SCARCE) for name in STUDIES)
    assert get_study("scaling").presets["quick"].setting is PRESETS["quick-scarce"]
    assert get_study("scaling").presets["smoke"].setting is PRESETS["smoke"]


def test_help_names_the_override_where_it_applies(capsys):
    for argv, says in ((["analyze", "correlations", "--help"], True), (["reproduce", "--help"], False),
                       (["analyze", "compute", "--help"], False)):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert ("on the quick-scarce setting here" in text) is says, argv
        assert "smoke, quick, quick-scarce, gpu, paper" in text


# --- checks when a config is built -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, changes, message", [
    ("kernel_velocity", dict(gap=0.0), "gap between kernels must be positive"),
    ("kernel_velocity", dict(positions=(1.5,)), "quantiles of the ranking"),
    ("mode_connectivity", dict(bn="freeze"), "bn must be one of"),
    ("mode_connectivity", dict(child_seeds=(3, 3)), "two different seeds"),
    ("noisy_labels", dict(label_noise=0.0), "label_noise must lie in"),
    ("hparam_grid", dict(grid_seed=0), "overlap the seeds of the default ensemble"),
    ("reproduce", dict(methods=("el2n@epoch2+median",)), "Unknown selection rule 'median'"),
])
def test_a_study_config_is_refused_when_built_not_when_run(name, changes, message):
    with pytest.raises(ConfigError, match=message):
        replace(get_study(name).presets["smoke"], **changes)


@pytest.mark.parametrize("changes, message", [(dict(workers=0), "--workers"), (dict(executor="slurm"), "slurm")])
def test_execution_is_checked_when_built(changes, message):
    with pytest.raises(ConfigError, match=message):
        Execution(**changes)


# --- methods ---------------------------------------------------------------------------------------------------

def test_a_dynamic_method_is_a_recipe_change_named_by_its_pruner():
    train = TrainConfig(epochs=4)
    assert DynamicMethod("infobatch", 0.3).recipe(train) == replace(train, dynamic={"name": "infobatch",
                                                                                  "prune_ratio": 0.3})
    assert DynamicMethod("rs2", 0.5).recipe(train) == replace(train, dynamic={"name": "rs2", "fraction": 0.5})
    assert str(DynamicMethod("rs2", 0.5)) == "rs2"  # the run records' method; the value is in the recipe
    with pytest.raises(ConfigError, match="Unknown dynamic method 'slimming'"):
        DynamicMethod("slimming", 0.5)


def test_method_rules_come_from_the_registry():
    assert Method.parse("el2n@epoch2+ccs").seeded and not Method.parse("el2n@epoch2+moderate").seeded
    for text in ("el2n@epoch2+window", "el2n@epoch2+random"):  # registry rules that are not a method's
        with pytest.raises(ConfigError, match="Unknown selection rule"):
            Method.parse(text)


# --- plans and accounting ----------------------------------------------------------------------------------------

def _record(rid: str, method: str = "random", keep: float = 0.5, seed: int = 1000) -> dict:
    return {"run_id": rid, "method": method, "keep": keep, "data": {"dataset": "d"}, "train": {"seed": seed},
            "subset_digest": rid, "dataset_fingerprint": "f"}


def test_a_planned_seed_on_another_subset_is_not_an_extra_seed_of_the_experiment():
    """With score draws, seed 1001 trains on draw 1's subset; a seed-1001 run on draw 0's subset (which seed 1000
    trains on) is another experiment's, not an "evaluation seed beyond the plan" to average in."""
    plan = {"s0": {"method": "el2n@epoch1", "keep": 0.5, "offset": None, "seed": 1000, "subset_digest": "d0"},
            "s1": {"method": "el2n@epoch1", "keep": 0.5, "offset": None, "seed": 1001, "subset_digest": "d1"}}
    files = RunFiles({rid: {**_record(rid, "el2n@epoch1", seed=seed), "subset_digest": digest}
                      for rid, seed, digest in (("s0", 1000, "d0"), ("s1", 1001, "d1"), ("x", 1001, "d0"),
                                                ("beyond", 1002, "d0"))}, {})
    sorted_ = account_runs(plan, files, {"data": {"dataset": "d"}, "train": {}})
    assert (sorted_["extra"], sorted_["foreign"]) == (["beyond"], ["x"])


def test_accounting_tells_other_studies_runs_from_foreign_ones(tmp_path):
    plan = {"a": {"method": "random", "keep": 0.5, "offset": None, "seed": 1000, "subset_digest": "a"}}
    files = RunFiles({rid: _record(rid) for rid in ("a", "b", "c")}, {})
    files.records["b"]["data"] = {"dataset": "other"}
    files.records["c"]["data"] = {"dataset": "other"}
    (tmp_path / "scaling").mkdir()
    (tmp_path / "scaling" / "plan.json").write_text(json.dumps({"runs": {"b": {}}}))
    others = other_plans(tmp_path, "reproduce")
    assert others == {"b"}
    sorted_ = account_runs(plan, files, {"data": {"dataset": "d"}, "train": {}}, others)
    assert (sorted_["chosen"], sorted_["other_studies"], sorted_["foreign"]) == (["a"], ["b"], ["c"])


@pytest.mark.integration
def test_reproduce_and_an_analysis_share_one_workspace_and_one_report(tmp_path):
    root = write_fake_mnist(tmp_path / "data", n_train=480, n_test=240)
    ws = Workspace(tmp_path / "ws", Execution(data_root=str(root)), log=lambda _: None)
    reproduction = run_study("reproduce", get_study("reproduce").presets["smoke"], ws)
    run_study("label_free", get_study("label_free").presets["smoke"], ws)
    plans = {name: json.loads((ws.root / name / "plan.json").read_text())["runs"] for name in ("reproduce", "label_free")}
    shared = set(plans["reproduce"]) & set(plans["label_free"])
    assert shared  # the full-data and random baselines are one run each, whichever study asked first
    report = build_workspace_report(ws.root, log=lambda _: None)
    text = report.markdown.read_text()
    assert text.index("## Pruning curves") < text.index("Label-independent")  # report order: reproduce first
    again = report.summaries["reproduce"]
    assert again["runs"]["aggregated"] == reproduction["runs"]["aggregated"] == len(plans["reproduce"])
    assert again["runs"]["foreign"] == [] and again["runs"]["extra"] == []  # never "seeds beyond the plan"
    assert set(again["runs"]["other_studies"]) == set(plans["label_free"]) - shared


def test_a_tag_is_part_of_the_one_string_form():
    for text in ("el2n@epoch2/run3", "el2n@epoch2+ccs+balanced/hp-grid", "el2n@epoch2/from-vgg13×0.25"):
        assert str(Method.parse(text)) == text
    assert Method.parse("el2n@epoch2/run3") == Method("el2n@epoch2", tag="run3")
    for bad in ("el2n@epoch2/", "el2n@epoch2/a b"):
        with pytest.raises(ConfigError, match="tag"):
            Method.parse(bad)


def test_migrate_refuses_a_damaged_old_config_and_moves_nothing(tmp_path):
    from datadiet.errors import DataDietError
    from datadiet.runs.migrate import migrate

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a.json").write_text("{}")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DataDietError, match=r"config\.json is damaged or not a reproduce config"):
        migrate(tmp_path, log=lambda _: None)
    assert (tmp_path / "runs" / "a.json").is_file() and not (tmp_path / "sweep").exists()


def test_a_section_is_built_by_keyword_with_the_config_recorded_whole(tmp_path):
    from datadiet.studies import correlations

    config = correlations.PRESETS["smoke"]
    summary = correlations.STUDY.write_section(tmp_path, config, findings=["a finding"], tables={"t.csv": [{"a": 1}]})
    assert summary == {"analysis": "correlations", "findings": ["a finding"]}
    text = (tmp_path / "section.md").read_text()
    assert text.startswith(f"## {correlations.TITLE}") and f"*Reproduces {correlations.SOURCE}.*" in text
    recorded = json.loads(text.split("```json\n")[1].split("```")[0])
    assert recorded["setting"]["data"]["subset"] == config.setting.data.subset == 384
    assert recorded["setting"]["train"]["model"] == "smallcnn" and recorded["setting"]["name"] == "smoke"


def test_a_section_records_typed_methods_by_their_one_string_form(tmp_path):
    from datadiet.methods import Method
    from datadiet.studies import compute

    config = replace(compute.PRESETS["smoke"], methods=("el2n@epoch1+ccs+balanced", Method("grand@epoch1")))
    assert config.methods == (Method("el2n@epoch1", "ccs", True), Method("grand@epoch1"))  # parsed once, at the boundary
    compute.STUDY.write_section(tmp_path, config, findings=[])
    recorded = json.loads((tmp_path / "section.md").read_text().split("```json\n")[1].split("```")[0])
    assert recorded["methods"] == ["el2n@epoch1+ccs+balanced", "grand@epoch1"]


def test_help_marks_a_required_flag_required_rather_than_showing_a_default(capsys):
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "fraction of examples kept, in (0, 1] (required)" in text and "default: required" not in text


def test_a_study_run_twice_on_one_workspace_plans_only_its_latest_tasks(tmp_path):
    root = write_fake_mnist(tmp_path / "data", n_train=480, n_test=240)
    ws = Workspace(tmp_path / "ws", Execution(data_root=str(root)), log=lambda _: None)
    smoke = replace(get_study("reproduce").presets["smoke"], methods=("el2n@epoch1",), score_draws=1)
    run_study("reproduce", replace(smoke, eval_seeds=2), ws)
    run_study("reproduce", replace(smoke, eval_seeds=1), ws)
    plan = json.loads((ws.root / "reproduce" / "plan.json").read_text())["runs"]
    assert {run["seed"] for run in plan.values()} == {1000}  # not the first run's seed 1001 too


def test_a_model_factory_that_ends_the_process_leaves_no_folder(tmp_path):
    """The fit check (user code) runs before the results folder is made: a factory calling os._exit leaves nothing."""
    import os
    import subprocess
    import sys

    from fakes import write_fake_mnist

    root = write_fake_mnist(tmp_path / "data", n_train=480, n_test=240)
    (tmp_path / "ending.py").write_text("import os\n\ndef model(num_classes, in_channels, **kw):\n    os._exit(0)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    for command in (["reproduce", "--preset", "smoke"], ["analyze", "correlations", "--preset", "smoke"]):
        out = tmp_path / command[0]
        subprocess.run([sys.executable, "-m", "datadiet", *command, "--model", "ending:model", "--out", str(out),
                        "--data-root", str(root), "--device", "cpu"], env=env, capture_output=True, timeout=600)
        assert not out.exists(), command  # not even the lock file
