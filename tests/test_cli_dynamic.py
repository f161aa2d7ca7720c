"""`datadiet train --dynamic ...` end to end, the cost it prints and records, and flags that do not collide."""
import json

import pytest

from fakes import write_fake_mnist
from datadiet.cli import build_parser, main

TINY = ["--model", "smallcnn", "--width", "0.25", "--batch-size", "8", "--eval-batch-size", "16"]


@pytest.fixture
def mnist(tmp_path):
    return write_fake_mnist(tmp_path / "data", n_train=32, n_test=16)


def _train(capsys, tmp_path, root, *flags):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "mnist", "--data-root", str(root), *TINY, "--out", str(out), *flags])
    stdout, stderr = capsys.readouterr()
    result = json.loads((out / "result.json").read_text()) if code == 0 else None
    return code, stdout, stderr, result


def test_rs2_trains_half_the_rows_each_epoch_and_prints_and_records_its_cost(tmp_path, capsys, mnist):
    code, stdout, stderr, result = _train(capsys, tmp_path, mnist, "--epochs", "3", "--dynamic", "rs2",
                                          "--fraction", "0.5")
    assert code == 0 and "deprecated" not in stderr
    # 16 of 32 rows per epoch: 2 batches of 8; full training would be 3 epochs x 4 batches of 8 = 96 passes.
    assert result["result"]["passes_per_epoch"] == [16, 16, 16] and result["result"]["steps"] == 6
    assert result["result"]["cost"]["sample_passes"] == 48 and result["result"]["cost"]["flops"] > 0
    assert result["train"]["dynamic"] == {"name": "rs2", "fraction": 0.5} and "keep" not in result["train"]
    assert "cost: 48 sample passes (0.50× the 96 of full training)" in stdout and "FLOPs" in stdout


def test_the_old_spelling_of_rs2s_fraction_still_trains_with_one_deprecation_line(tmp_path, capsys, mnist):
    code, _, stderr, result = _train(capsys, tmp_path, mnist, "--epochs", "2", "--dynamic", "rs2", "--keep", "0.5")
    assert code == 0 and result["train"]["dynamic"] == {"name": "rs2", "fraction": 0.5}
    said = [line for line in stderr.splitlines() if "deprecated" in line]
    assert said == ["datadiet: --keep is deprecated for --dynamic rs2 and goes away in 0.3; use --fraction (--keep is "
                    "a static subset's fraction)."]


def test_infobatch_runs_end_to_end_with_every_parameter_a_flag(tmp_path, capsys, mnist):
    code, stdout, _, result = _train(capsys, tmp_path, mnist, "--epochs", "3", "--dynamic", "infobatch",
                                     "--prune-ratio", "0.4", "--delta", "0.6")
    assert code == 0
    assert result["train"]["dynamic"] == {"name": "infobatch", "prune_ratio": 0.4, "delta": 0.6}
    passes = result["result"]["passes_per_epoch"]
    assert passes[0] == 32 and sum(passes) == result["result"]["cost"]["sample_passes"]
    assert f"cost: {sum(passes)} sample passes" in stdout


@pytest.mark.parametrize("flags, message", [
    (["--fraction", "0.5"], "--fraction applies only to --dynamic rs2, not to --dynamic none"),
    (["--keep", "0.5"], "--fraction applies only to --dynamic rs2"),  # the old spelling, after its deprecation line
    (["--dynamic", "rs2"], "--dynamic rs2 needs --fraction"),
    (["--dynamic", "rs2", "--fraction", "1.5"], "--fraction must be a number in (0, 1]"),
    (["--dynamic", "rs2", "--fraction", "0.5", "--delta", "0.5"], "--delta applies only to --dynamic infobatch"),
    (["--dynamic", "sometimes"], "--dynamic must be one of none, infobatch, rs2"),
    (["--prune-ratio", "0.3"], "--prune-ratio applies only to --dynamic infobatch"),
    (["--dynamic", "infobatch", "--steps", "10"], "--steps cannot be used with --dynamic infobatch"),
    (["--precision", "fp16"], "--precision must be"),
])
def test_bad_dynamic_flags_exit_2_naming_the_flag(tmp_path, capsys, mnist, flags, message):
    code, _, stderr, _ = _train(capsys, tmp_path, mnist, *flags)
    assert code == 2 and message in stderr and "Traceback" not in stderr


def test_the_new_flags_do_not_collide_and_are_never_abbreviated(capsys):
    parser = build_parser()  # every command's flags: a clash would raise here
    args = parser.parse_args(["train", "--dynamic", "rs2", "--fraction", "0.5", "--delta", "0.5", "--precision", "bf16"])
    assert (args.dynamic, args.fraction, args.delta, args.precision) == ("rs2", 0.5, 0.5, "bf16")
    # reproduce offers the recipe's flags too: the old --keep is RS2's --fraction there, and never stands for --keeps
    assert parser.parse_args(["reproduce", "--keeps", "0.3", "0.5"]).keeps == [0.3, 0.5]
    args = parser.parse_args(["reproduce", "--keep", "0.5"])
    assert args.fraction == 0.5 and args.keeps is None and not hasattr(args, "keep")
    for abbreviated in (["train", "--dyn", "rs2"], ["train", "--prune", "0.5"], ["reproduce", "--kee", "0.5"],
                        ["train", "--frac", "0.5"]):
        with pytest.raises(SystemExit):
            parser.parse_args(abbreviated)
    capsys.readouterr()


def test_a_sweep_run_record_carries_its_training_cost(tmp_path):
    from datadiet.config import DataConfig, TrainConfig
    from datadiet.runs.sweep import Execution, RunSpec, Task, execute_run, read_run_files, run_sweep

    root = write_fake_mnist(tmp_path / "data", n_train=32, n_test=16)
    spec = RunSpec(DataConfig(dataset="mnist", data_root=str(root)),
                   TrainConfig(model="smallcnn", width=0.25, batch_size=8, epochs=2, dynamic={"name": "rs2", "fraction": 0.5}),
                   "full", 1.0)
    record = execute_run(spec, None)
    assert record["passes_per_epoch"] == [16, 16] and record["cost"]["sample_passes"] == 32
    run_sweep([Task(spec)], tmp_path / "sweep", Execution(workers=1), log=lambda _: None)
    stored = read_run_files(tmp_path / "sweep").records[spec.run_id]  # a valid record: counted, with its cost
    assert stored["cost"]["sample_passes"] == 32 and stored["cost"]["forward_passes"] == 0


def test_help_shows_each_pruner_parameter_under_its_pruner_and_not_the_old_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--fraction FRACTION --dynamic rs2 only: fraction of the run's rows drawn each epoch" in text
    assert "--delta DELTA --dynamic infobatch only: fraction of the epochs that may prune" in text
    assert "NAME one of none, infobatch, rs2" in text and "--keep" not in text
