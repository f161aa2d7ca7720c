"""The command line: a real run on fake IDX files, and every bad-input path exits 2 with a message."""
import json
import subprocess
import sys

import numpy as np
import pytest

from fakes import write_fake_mnist, write_idx
from datadiet.cli import main

TINY = ["--model", "smallcnn", "--width", "0.25", "--batch-size", "8", "--eval-batch-size", "16"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_writes_config_result_and_checkpoints(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=32, n_test=16)
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", "--dataset", "mnist", "--data-root", str(root), "--epochs", "1",
                              *TINY, "--out", str(out), "--checkpoint-steps", "0", "4")
    assert code == 0
    assert "final test accuracy" in stdout
    result = json.loads((out / "result.json").read_text())
    assert result["train"]["model"] == "smallcnn"
    assert result["train"]["batch_size"] == 8
    assert result["dataset"]["size"] == 32
    assert len(result["dataset"]["fingerprint"]) == 32
    assert result["result"]["steps"] == 4
    assert 0 <= result["result"]["test_accuracy"] <= 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000000000.pt", "step_000000004.pt"]
    assert json.loads((out / "config.json").read_text())["version"] == result["version"] == "0.2.0"


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == "datadiet 0.2.0"


def test_tuple_and_bool_flags_reach_the_config(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=16, n_test=8)
    out = tmp_path / "run"
    code, _, _ = run_cli(capsys, "train", "--dataset", "mnist", "--data-root", str(root), "--steps", "2", *TINY,
                         "--milestones", "0.5", "--no-augment", "--out", str(out))
    cfg = json.loads((out / "result.json").read_text())["train"]
    assert code == 0
    assert cfg["milestones"] == [0.5]
    assert cfg["augment"] is False


def _assert_clean_error(code, err, *fragments):
    assert code == 2
    assert err.startswith("datadiet: error:")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in " ".join(err.split())


def test_missing_dataset(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--data-root", str(tmp_path))
    _assert_clean_error(code, err, "'fashion-mnist' was not found", "apt-get install dataset-fashion-mnist")


def test_corrupt_gzip(tmp_path, capsys):
    root = write_fake_mnist(tmp_path)
    img = root / "train-images-idx3-ubyte.gz"
    img.write_bytes(img.read_bytes()[: len(img.read_bytes()) // 2])
    code, _, err = run_cli(capsys, "data", "--dataset", "mnist", "--data-root", str(root))
    _assert_clean_error(code, err, "damaged gzip", "download it again")


def test_wrong_magic(tmp_path, capsys):
    root = write_fake_mnist(tmp_path)
    write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros(20, np.uint8))
    code, _, err = run_cli(capsys, "data", "--dataset", "mnist", "--data-root", str(root))
    _assert_clean_error(code, err, "magic number 0x00000801, expected 0x00000803")


def test_unknown_model_and_dataset(tmp_path, capsys):
    root = write_fake_mnist(tmp_path)
    code, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--data-root", str(root), "--model", "resnet7")
    _assert_clean_error(code, err, "Unknown model 'resnet7'")
    code, _, err = run_cli(capsys, "train", "--dataset", "svhn")
    _assert_clean_error(code, err, "Unknown dataset 'svhn'")


def test_out_of_range_config(capsys):
    code, _, err = run_cli(capsys, "train", "--label-noise", "1.5")
    _assert_clean_error(code, err, "--label-noise must lie in [0, 1]")


def test_nan_loss(tmp_path, capsys):
    root = write_fake_mnist(tmp_path)
    code, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--data-root", str(root), "--steps", "20",
                           "--lr", "1e30", *TINY)
    progress, _, error = err.partition("datadiet: error:")  # the first step's pace may come first: it was finite
    assert all(line.startswith("step ") for line in progress.splitlines())
    _assert_clean_error(code, "datadiet: error:" + error, "NaN or infinite", "lower the learning rate")


def test_console_entry_point_runs_as_a_module(tmp_path):
    root = write_fake_mnist(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "datadiet", "data", "--dataset", "mnist", "--data-root", str(root)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "fingerprint" in proc.stdout


def test_score_command_writes_verified_score_files(tmp_path, capsys):
    from datadiet.data import load_splits
    from datadiet.scores import load_scores

    root = write_fake_mnist(tmp_path / "data", n_train=32, n_test=8)
    out = tmp_path / "scores"
    code, stdout, _ = run_cli(capsys, "score", "--dataset", "mnist", "--data-root", str(root), *TINY,
                              "--epochs", "2", "--scores", "el2n", "grand", "input_norm", "--score-epochs", "0", "1",
                              "--runs", "2", "--seed", "7", "--out", str(out))
    assert code == 0
    assert "wrote" in stdout
    table = load_scores(out / "grand-epoch1.npz", dataset=load_splits("mnist", root).train)
    assert table.runs.shape == (2, 32)
    assert table.meta["seeds"] == [7, 8]
    assert table.meta["model"] == "smallcnn"
    assert table.meta["train"]["batch_size"] == 8
    assert table.meta["step"] == 4
    assert load_scores(out / "input_norm.npz").runs.shape == (1, 32)


def test_score_command_rejects_unknown_scores(capsys):
    code, _, err = run_cli(capsys, "score", "--scores", "gradnorm", "--out", "x")
    _assert_clean_error(code, err, "Unknown score 'gradnorm'")


def test_old_score_flags_still_work_and_say_they_are_deprecated(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=16, n_test=8)
    code, _, err = run_cli(capsys, "score", "--dataset", "mnist", "--data-root", str(root), *TINY, "--epochs", "1",
                           "--score", "el2n", "--epoch", "1", "--runs", "1", "--out", str(tmp_path / "s"))
    assert code == 0
    assert "datadiet: --score is deprecated and goes away in 0.3; use --scores." in err
    assert "datadiet: --epoch is deprecated and goes away in 0.3; use --score-epochs." in err
    assert (tmp_path / "s" / "el2n-epoch1.npz").is_file()  # the old flags reached the new fields
    code, _, err = run_cli(capsys, "prune", "--scores", str(tmp_path / "s" / "el2n-epoch1.npz"), "--keep", "0.5",
                           "--out", str(tmp_path / "x.json"))
    assert code == 0
    assert "datadiet: --scores is deprecated and goes away in 0.3; use --score-file." in err
    assert len(json.loads((tmp_path / "x.json").read_text())["ids"]) == 8


def test_prune_needs_a_score_file(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["prune", "--keep", "0.5", "--out", "x.json"])
    assert exit_.value.code == 2
    assert "the following arguments are required: --score-file" in capsys.readouterr().err


def test_prune_then_train_on_the_manifest(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=40, n_test=8)
    common = ["--dataset", "mnist", "--data-root", str(root), *TINY]
    assert run_cli(capsys, "score", *common, "--epochs", "1", "--scores", "el2n", "--score-epochs", "1", "--runs",
                   "1", "--out", str(tmp_path / "s"))[0] == 0
    subset = tmp_path / "subset.json"
    code, stdout, err = run_cli(capsys, "prune", "--score-file", str(tmp_path / "s" / "el2n-epoch1.npz"), "--keep",
                                "0.25", "--class-balanced", "--out", str(subset))
    assert code == 0
    assert "deprecated" not in err
    assert "kept 10 of 40" in stdout
    manifest = json.loads(subset.read_text())
    assert len(manifest["ids"]) == 10
    assert manifest["selection"]["class_balanced"] is True
    assert manifest["selection"]["score"] == "el2n@epoch1"
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", *common, "--epochs", "1", "--subset-file", str(subset), "--out", str(out))
    assert code == 0
    assert "training on 10 of 40" in stdout
    assert json.loads((out / "result.json").read_text())["result"]["steps"] == 40 // 8  # matched budget


def test_manifest_from_other_data_and_bad_fractions_are_refused(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "data", n_train=40, n_test=8)
    common = ["--dataset", "mnist", "--data-root", str(root), *TINY]
    run_cli(capsys, "score", *common, "--epochs", "1", "--scores", "random", "--runs", "1", "--out", str(tmp_path / "s"))
    code, _, err = run_cli(capsys, "prune", "--score-file", str(tmp_path / "s" / "random.npz"), "--keep", "1.5",
                           "--out", str(tmp_path / "x.json"))
    _assert_clean_error(code, err, "keep must be a fraction in (0, 1]")
    code, _, err = run_cli(capsys, "prune", "--score-file", str(tmp_path / "s" / "random.npz"), "--keep", "0.5",
                           "--offset", "0.7", "--out", str(tmp_path / "x.json"))
    _assert_clean_error(code, err, "> 1")
    run_cli(capsys, "prune", "--score-file", str(tmp_path / "s" / "random.npz"), "--keep", "0.5", "--out",
            str(tmp_path / "x.json"))
    code, _, err = run_cli(capsys, "train", *common, "--subset", "20", "--steps", "1", "--subset-file",
                           str(tmp_path / "x.json"))
    _assert_clean_error(code, err, "--subset 20 contradicts subset file", "selected from mnist with no --subset")
    # a manifest that does not record its data (written before it did): the fingerprint check refuses other data
    record = json.loads((tmp_path / "x.json").read_text())
    (tmp_path / "x.json").write_text(json.dumps({k: v for k, v in record.items() if k not in ("data", "data_path")}))
    code, _, err = run_cli(capsys, "train", *common, "--subset", "20", "--steps", "1", "--subset-file",
                           str(tmp_path / "x.json"))
    _assert_clean_error(code, err, "was selected from mnist (40 examples")


def test_analyze_all_runs_every_analysis_of_the_preset_and_skips_those_lacking_input(tmp_path, monkeypatch, capsys):
    import datadiet.cli as cli
    from datadiet.studies import MODULES, get_study

    ran = []
    monkeypatch.setattr(cli, "run_study", lambda name, config, ws: ran.append(name) or {"findings": []})
    assert main(["analyze", "all", "--preset", "gpu", "--out", str(tmp_path)]) == 0
    # an analysis that needs input the user did not give (external: --values) is skipped, and says why
    needs_input = [m for m in MODULES if (get_study(m).missing_input or (lambda c: None))(
        get_study(m).presets["gpu"])]
    assert needs_input == ["external"]
    assert ran == [m for m in MODULES if m not in needs_input]  # every other one: each has every preset
    assert "== external (gpu): skipped, needs " in capsys.readouterr().out


def test_prune_with_ccs_and_moderate_rules_matches_select(tmp_path, capsys):
    from datadiet.scores import load_scores
    from datadiet.selection import select

    root = write_fake_mnist(tmp_path / "data", n_train=40, n_test=8)
    common = ["--dataset", "mnist", "--data-root", str(root), *TINY]
    run_cli(capsys, "score", *common, "--epochs", "1", "--scores", "random", "--runs", "1", "--out", str(tmp_path / "s"))
    score_file = tmp_path / "s" / "random.npz"
    table = load_scores(score_file)
    for extra, kwargs in ((["--rule", "ccs", "--beta", "0.1", "--bins", "4", "--sample-seed", "3"],
                          {"rule": "ccs", "beta": 0.1, "bins": 4, "seed": 3}),
                          (["--rule", "moderate"], {"rule": "moderate"})):
        out = tmp_path / f"{kwargs['rule']}.json"
        code, stdout, _ = run_cli(capsys, "prune", "--score-file", str(score_file), "--keep", "0.3", *extra,
                                  "--out", str(out))
        assert code == 0 and f"{kwargs['rule']} rule" in stdout
        manifest = json.loads(out.read_text())
        assert manifest["ids"] == select(table, keep=0.3, **kwargs).tolist()
        assert manifest["selection"]["rule"] == kwargs["rule"]
    code, _, err = run_cli(capsys, "prune", "--score-file", str(score_file), "--keep", "0.3", "--rule", "ccs",
                           "--offset", "0.2", "--out", str(tmp_path / "bad.json"))
    _assert_clean_error(code, err, "offset")
    assert not (tmp_path / "bad.json").exists()


def test_explicit_hardest_rule_is_refused_and_out_of_memory_is_explained():
    from datadiet.cli import explain
    from datadiet.errors import ConfigError
    from datadiet.methods import Method

    assert (Method.parse("el2n@epoch2").label, Method.parse("el2n@epoch2").rule) == ("el2n@epoch2", "hardest")
    assert Method.parse("el2n@epoch2+ccs").rule == "ccs"
    with pytest.raises(ConfigError, match="Write 'el2n@epoch2', not 'el2n@epoch2\\+hardest'"):
        Method.parse("el2n@epoch2+hardest")
    message, status = explain(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert status == 2 and "--batch-size" in message
    message, status = explain(RuntimeError("something else"))
    assert status == 1 and "bug in datadiet" in message


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (with this checkout's src on the path)."""
    src = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
                         env={"PYTHONPATH": src, "PATH": ""}, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_help_version_and_a_refused_flag_import_no_heavy_module():
    """`datadiet --version`, `--help` and a flag the config refuses answer without torch, scipy or a study (the
    2.4 s every command used to take); `import datadiet` loads its names on first use."""
    heavy = {"torch", "scipy", "matplotlib", "datadiet.studies", "datadiet.runs", "datadiet.data"}
    for code in ("import datadiet",
                 "from datadiet.cli import main\ntry: main(['--version'])\nexcept SystemExit: pass",
                 "from datadiet.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass",
                 "from datadiet.cli import main\nassert main(['train', '--lr', 'nan']) == 2"):
        assert not _modules_after(code) & heavy, code
    loaded = _modules_after("import datadiet\nassert datadiet.train is datadiet.training.train")
    assert "torch" in loaded and "datadiet.studies" not in loaded  # only what the name needs


def test_the_commands_parser_has_only_its_own_flags_and_the_full_one_all(capsys):
    from datadiet import cli

    with pytest.raises(SystemExit):
        main(["train", "--frobnicate"])
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err
    full = cli.build_parser()
    commands = next(a for a in full._actions if a.dest == "command").choices
    for name in cli.COMMANDS:  # the full parser: every command with its flags, as the tests of studies use it
        assert len(commands[name]._actions) > 2, name
    only = next(a for a in cli._parser("prune")._actions if a.dest == "command").choices
    assert "--keep" in only["prune"]._option_string_actions and len(only["train"]._actions) == 2  # -h, --debug


def test_a_subsets_budget_is_said_in_steps_and_passes_not_epochs(tmp_path, capsys):
    """Matched steps on a subset: 2 epochs of the full 40 examples at batch 8 are 10 steps; over the 20 kept
    examples that is 10 x 8 / 20 = 4 passes (the engine's "epochs" of the subset would say 5, with its last
    partial batch dropped)."""
    root = write_fake_mnist(tmp_path / "data", n_train=40, n_test=8)
    common = ["--dataset", "mnist", "--data-root", str(root), *TINY, "--epochs", "2"]
    assert run_cli(capsys, "score", *common, "--scores", "random", "--runs", "1", "--out", str(tmp_path / "s"))[0] == 0
    assert run_cli(capsys, "prune", "--score-file", str(tmp_path / "s" / "random.npz"), "--keep", "0.5",
                   "--out", str(tmp_path / "m.json"))[0] == 0
    code, out, _ = run_cli(capsys, "train", *common, "--subset-file", str(tmp_path / "m.json"))
    assert code == 0 and "done: 10 steps (the full data's 2 epochs; 4 passes over this 20-example subset)" in out
    code, out, _ = run_cli(capsys, "train", *common)
    assert code == 0 and "done: 10 steps (2 epochs of the 40 training examples)" in out


def test_report_on_a_workspace_names_both_report_files(tmp_path, capsys, monkeypatch):
    import datadiet.studies

    (tmp_path / "workspace.json").write_text("{}")
    seen = []

    def build(root, **kwargs):
        seen.append((root, kwargs))
        return datadiet.studies.WorkspaceReport(tmp_path / "report.md", {})  # no study rebuilt from disk
    monkeypatch.setattr(datadiet.studies, "build_workspace_report", build)
    code, out, _ = run_cli(capsys, "report", str(tmp_path))
    assert code == 0 and f"report: {tmp_path / 'report.md'} and {tmp_path / 'report.html'}" in out
    assert [root for root, _ in seen] == [tmp_path] and seen[0][1]["extra_seeds"] == "ignore"


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_prune_refuses_seed_and_points_to_sample_seed(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["prune", "--score-file", "s.npz", "--keep", "0.5", "--out", "m.json", "--seed", "3"])
    err = " ".join(capsys.readouterr().err.split())
    assert exit_.value.code == 2 and "--seed is now --sample-seed: the seed of CCS's sampling" in err
    with pytest.raises(SystemExit):
        main(["prune", "--keep", "0.5"])
    assert "the following arguments are required: --score-file, --out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["prune", "--score-file", "s.npz", "--keep", "0.5", "--out", "m.json", "--order", "sideways"])
    assert "--order: invalid choice: 'sideways'" in capsys.readouterr().err
    shown = _help(capsys, "prune")
    assert "--sample-seed SAMPLE_SEED ccs, random: seed of the draw (default 0)" in shown
    assert "--seed " not in shown


def test_help_shows_the_asked_presets_values_and_comments_written_above_a_field(capsys):
    from datadiet.studies import scaling

    smoke, quick = _help(capsys, "analyze", "scaling", "--preset", "smoke"), _help(capsys, "analyze", "scaling")
    assert f"(default: the smoke preset's: {' '.join(map(str, scaling.PRESETS['smoke'].sizes))})" in smoke
    assert f"(default: the quick preset's: {' '.join(map(str, scaling.PRESETS['quick'].sizes))})" in quick
    assert "--width WIDTH default: the smoke preset's: 0.25" in smoke  # the setting's recipe, not TrainConfig's
    reproduce = _help(capsys, "reproduce", "--preset", "smoke")
    assert "--offsets [OFFSETS ...] Explicit B.3 windows: for each kept fraction" in reproduce  # "*": a list may be emptied
    assert "default: ()" not in reproduce and "(default: (" not in reproduce


def test_setting_flags_leave_out_the_studys_own_and_its_per_point_fields(capsys):
    """A setting's flag of the same name as one the command has would clash (argparse refuses it), so the study's
    own wins; what the study sets per point, and the seed, have no flag."""
    noisy = _help(capsys, "analyze", "noisy_labels")
    assert "--label-noise LABEL_NOISE fraction of training labels permuted" in noisy  # the study's, not the data's
    scaling = _help(capsys, "analyze", "scaling")
    assert "--subset SUBSET" not in scaling and "--epochs EPOCHS" not in scaling  # scaling sets them per size
    velocity = _help(capsys, "analyze", "kernel_velocity")
    assert "--epochs EPOCHS" not in velocity  # the old spelling of --velocity-epochs keeps the name
    for text in (noisy, scaling, velocity, _help(capsys, "reproduce")):
        assert "--seed SEED" not in text and "--device DEVICE cpu, cuda" in text  # where runs execute


def test_every_rule_option_of_the_registry_is_a_prune_flag():
    """prune's rule options come from selection.RULES: an option added to a rule without a flag fails here."""
    from dataclasses import fields

    from datadiet.cli import PruneConfig
    from datadiet.selection import RULES

    flags = {f.name for f in fields(PruneConfig)}
    assert {name for rule in RULES.values() for name in rule.options} <= flags
