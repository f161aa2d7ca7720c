"""Bring your own model: ``--model package.module:factory``, the built-in mlp, and GraNd on user models."""
import os
import re
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import datadiet.runs.sweep as sweep_mod
import datadiet.scores.gradnorm as gradnorm
import hostile_models
import user_models
from datadiet.config import DataConfig, TrainConfig
from datadiet.errors import ConfigError, DataDietError, UnknownNameError
from datadiet.models import MLP, MODELS, ModelFactoryError, build_model, model_factory
from datadiet.runs import digest_ids, identity
from datadiet.runs.sweep import Execution, RunSpec, Task, run_sweep
from datadiet.scores import grand
from datadiet.training import train
from fakes import learnable_splits, write_fake_mnist

TINY = dict(width=0.5, batch_size=16, eval_batch_size=64)
TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def _build(name, **kwargs):
    return build_model(name, **{"num_classes": 3, "in_channels": 1, **kwargs})


# ----------------------------------------------------------------------------- building

def test_a_user_factory_gets_width_and_input_shape_when_it_accepts_them():
    torch.manual_seed(0)
    model = _build("user_models:tiny", width=2.0, input_shape=(1, 6, 6))
    assert model[1].in_features == 36 and model[1].out_features == 16
    assert model(torch.randn(2, 1, 6, 6)).shape == (2, 3)


def test_a_factory_without_width_or_input_shape_gets_neither():
    model = _build("user_models:no_width", width=0.25, input_shape=(1, 8, 8))
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_a_factory_taking_kwargs_gets_everything(monkeypatch):
    monkeypatch.setattr(user_models, "CALLS", [])
    builder = model_factory("user_models:recording")
    assert user_models.CALLS == []  # resolving never calls the factory
    assert builder.factory is user_models.recording
    _build("user_models:recording", width=0.5, input_shape=[1, 4, 4])
    assert user_models.CALLS == [{"num_classes": 3, "in_channels": 1, "width": 0.5, "input_shape": (1, 4, 4)}]


def test_classes_and_dotted_attributes_are_factories():
    assert isinstance(_build("user_models:GroupNet", in_channels=3), user_models.GroupNet)
    assert isinstance(_build("user_models:Builders.build", in_channels=5), nn.Sequential)


def test_builtin_names_still_work_and_take_no_input_shape():
    model = build_model("SmallCNN", num_classes=4, in_channels=1, width=0.25, input_shape=(1, 28, 28))
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 4)
    assert model_factory("smallcnn").accepts == frozenset({"width"})


# ----------------------------------------------------------------------------- errors

def _raises(name, *parts, error=ModelFactoryError, build=False):
    call = (lambda: _build(name)) if build else (lambda: model_factory(name))
    with pytest.raises(error, match=re.escape(parts[0])) as info:
        call()
    for part in parts[1:]:
        assert part in str(info.value), (part, str(info.value))
    assert isinstance(info.value, DataDietError)
    return info.value


def test_a_module_that_cannot_be_imported_is_named_with_how_to_fix():
    _raises("datadiet_no_such_module.models:net", "'datadiet_no_such_module.models:net'",
            "cannot import module 'datadiet_no_such_module.models'", "PYTHONPATH", "install")


def test_a_module_whose_own_import_fails_names_the_missing_dependency():
    _raises("user_models_broken:net", "'user_models_broken:net'", "'datadiet_no_such_dependency'", "not installed")


def test_missing_and_uncallable_attributes():
    _raises("user_models:nope", "'user_models:nope'", "'user_models' has no attribute 'nope'")
    _raises("user_models:Builders.nope", "'user_models:Builders.nope'", "'user_models.Builders' has no attribute 'nope'")
    _raises("user_models:NOT_CALLABLE", "'user_models:NOT_CALLABLE'", "an int, which is not callable")


def test_a_signature_without_num_classes_and_in_channels_is_refused_before_any_call():
    _raises("user_models:wrong_signature", "model factory user_models:wrong_signature takes (classes, channels)",
            "num_classes", "in_channels")


def test_a_factory_that_raises_or_returns_no_module_is_named():
    error = _raises("user_models:raises", "model factory user_models:raises raised TypeError: hidden must be an int",
                    build=True)
    assert isinstance(error.__cause__, TypeError)
    _raises("user_models:returns_list", "model factory user_models:returns_list returned a list, not a "
            "torch.nn.Module", build=True)


@pytest.mark.parametrize("name", ["user_models:", ":tiny", "user models:tiny", "user_models:tiny:x", "a..b:c"])
def test_malformed_paths(name):
    _raises(name, repr(name), "package.module:factory")


def test_an_unknown_builtin_lists_the_builtins_and_the_import_path_form():
    with pytest.raises(UnknownNameError, match="Unknown model 'resnet7'. Choose one of: mlp, resnet18") as info:
        model_factory("resnet7")
    assert "package.module:factory" in str(info.value)


def test_the_cli_refuses_a_bad_model_path_before_anything_is_written(tmp_path, capsys):
    from datadiet.cli import main

    root = write_fake_mnist(tmp_path / "data", n_train=16, n_test=8)
    out = tmp_path / "run"
    code = main(["train", "--dataset", "mnist", "--data-root", str(root), "--model", "user_models:nope",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "'user_models:nope'" in err and "Traceback" not in err
    assert not out.exists()


# ----------------------------------------------------------------------------- models that do not fit their data

SHAPE = (1, 6, 6)
UNFIT = {  # factory in hostile_models → words of the message
    "more_outputs": ("hostile_models:more_outputs gives 5 outputs per example, but this data has 3 classes",
                     "num_classes=3"),
    "fewer_outputs": ("gives 2 outputs per example, but this data has 3 classes",),
    "TupleOutput": ("returns a tuple from its forward pass, not a tensor of logits", "`return logits`"),
    "NoParameters": ("without trainable parameters",),
    "on_meta": ("on the meta device", "to_empty"),
    "exits": ("hostile_models:exits called sys.exit(0) while building the model",),
    # right for one example in eval mode, which was all the check ran: refused by the two examples in both modes
    "TrainModeColumn": ("hostile_models:TrainModeColumn maps a batch of 2 examples to an output of shape [2, 3, 1] "
                        "in train mode, not [2, 3]", "[N, 3] ([N, num_classes])"),
    "PoolsOverTheBatch": ("hostile_models:PoolsOverTheBatch maps a batch of 2 examples to an output of shape [1, 3] "
                          "in eval mode", "[N, 3]"),
}


@pytest.mark.parametrize("name", UNFIT, ids=list(UNFIT))
def test_a_user_model_that_does_not_fit_the_data_is_refused_when_built(name):
    with pytest.raises(ModelFactoryError) as info:
        build_model(f"hostile_models:{name}", num_classes=3, in_channels=1, input_shape=SHAPE)
    for part in UNFIT[name]:
        assert part in str(info.value), (part, str(info.value))


def test_a_module_that_exits_on_import_is_refused_not_obeyed():
    _raises("hostile_models_exit:right", "'hostile_models_exit:right'", "sys.exit(0) while being imported")


def test_a_model_that_cannot_run_on_the_data_shape_is_named_with_the_shape():
    with pytest.raises(ModelFactoryError, match=r"user_models:no_width cannot run on a batch of 2 examples of this "
                                                r"data in eval mode \(shape \[2, 3, 8, 8\]\)"):
        build_model("user_models:no_width", num_classes=3, in_channels=1, input_shape=(3, 8, 8))


def test_the_check_changes_neither_the_model_nor_the_random_stream():
    class Modes(nn.Module):
        def __init__(self, num_classes, in_channels, input_shape):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(36, num_classes), nn.Dropout(0.5))
            self.body[2].eval()  # a sub-module the user left in eval mode on purpose
            self.bn = nn.BatchNorm1d(num_classes)

        def forward(self, x):
            return self.bn(self.body(x))

    module = type(sys)("datadiet_test_modes")  # an importable home for the factory
    module.Modes = Modes
    sys.modules["datadiet_test_modes"] = module
    try:
        torch.manual_seed(0)
        model = build_model("datadiet_test_modes:Modes", num_classes=3, in_channels=1, input_shape=SHAPE)
        after_check = torch.rand(3)
        torch.manual_seed(0)
        unchecked = Modes(3, 1, SHAPE)
        assert torch.equal(torch.rand(3), after_check)  # the check drew nothing from the global stream
    finally:
        del sys.modules["datadiet_test_modes"]
    assert [m.training for m in model.modules()] == [True, True, True, True, False, True]
    assert torch.equal(model.bn.running_mean, torch.zeros(3))  # the probe updated no statistics
    for mine, theirs in zip(model.state_dict().values(), unchecked.state_dict().values()):
        assert torch.equal(mine, theirs)


def test_the_cli_refuses_a_model_with_more_outputs_than_classes_before_writing(tmp_path, capsys):
    from datadiet.cli import main

    root = write_fake_mnist(tmp_path / "data", n_train=16, n_test=8)
    out = tmp_path / "run"
    code = main(["train", "--dataset", "mnist", "--data-root", str(root), "--model", "hostile_models:more_outputs",
                 "--device", "cpu", "--out", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "12 outputs per example, but this data has 10 classes" in err
    assert not out.exists()


def test_the_two_example_check_in_both_modes_leaves_every_tensor_mode_and_random_stream_as_it_was():
    """Train mode updates BatchNorm's running statistics and its batch counter; this model also bumps a
    non-persistent buffer in place and replaces another. All come back: the same tensor objects, the same values."""
    from datadiet.models.user import check_user_model

    torch.manual_seed(0)
    model = hostile_models.CountsItsCalls(3, 1, SHAPE)
    model.body.eval()  # a sub-module the user left in eval mode
    before = {name: (t, t.detach().clone()) for name, t in [*model.named_parameters(), *model.named_buffers()]}
    modes = [m.training for m in model.modules()]
    torch.manual_seed(1)
    check_user_model(model, "hostile_models:CountsItsCalls", 3, SHAPE)
    after_check = torch.rand(4)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(4), after_check)  # the check drew nothing from the global stream
    after = dict([*model.named_parameters(), *model.named_buffers()])
    assert after.keys() == before.keys()
    for name, (tensor, value) in before.items():
        assert after[name] is tensor, f"{name} was replaced"
        assert torch.equal(tensor, value), f"{name} changed"
    assert int(model.calls) == 0 and int(model.norm.num_batches_tracked) == 0
    assert [m.training for m in model.modules()] == modes
    # and the check did run the model, in both modes: a copy of it, run the same way, changes
    probe = hostile_models.CountsItsCalls(3, 1, SHAPE)
    with torch.no_grad():
        probe.eval()(torch.zeros(2, *SHAPE))
        probe.train()(torch.zeros(2, *SHAPE))
    assert int(probe.calls) == 2 and int(probe.norm.num_batches_tracked) == 1


def test_out_of_memory_in_train_mode_is_left_to_training_which_names_the_batch_size():
    model = build_model("hostile_models:OutOfMemoryInTraining", num_classes=3, in_channels=1, input_shape=SHAPE)
    assert isinstance(model, hostile_models.OutOfMemoryInTraining)


def _features(tmp_path, n: int = 24, d: int = 4, classes: int = 3):
    """``arrays:`` data of float features [n, d] in ``classes`` classes (and half as many test examples)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "features.npz"
    np.savez(path, x_train=rng.normal(size=(n, d)).astype(np.float32), y_train=np.arange(n) % classes,
             x_test=rng.normal(size=(n // 2, d)).astype(np.float32), y_test=np.arange(n // 2) % classes)
    return f"arrays:{path}"


def _train_argv(data: str, model: str, out) -> list[str]:
    return ["train", "--dataset", data, "--model", model, "--steps", "2", "--batch-size", "8", "--device", "cpu",
            "--out", str(out)]


@pytest.mark.parametrize("model, words", [
    ("TrainModeColumn", ("hostile_models:TrainModeColumn", "train mode", "[2, 3, 1]", "[N, 3]")),
    ("PoolsOverTheBatch", ("hostile_models:PoolsOverTheBatch", "eval mode", "[1, 3]", "[N, 3]")),
])
def test_the_cli_refuses_a_model_wrong_only_in_train_mode_or_for_batches_before_writing(model, words, tmp_path,
                                                                                        capsys):
    from datadiet.cli import main

    out = tmp_path / "run"
    code = main(_train_argv(_features(tmp_path), f"hostile_models:{model}", out))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()


def test_a_factory_interrupted_is_named_and_still_exits_130(tmp_path, capsys):
    from datadiet.cli import main

    out = tmp_path / "run"
    code = main(_train_argv(_features(tmp_path), "hostile_models:interrupted", out))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 130, err
    assert "interrupted while model factory hostile_models:interrupted was building the model" in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_an_interrupted_import_of_a_model_module_names_it():
    with pytest.raises(KeyboardInterrupt, match=r"while importing module 'hostile_models_interrupt' of model "
                                                r"hostile_models_interrupt:net"):
        model_factory("hostile_models_interrupt:net")


def test_a_real_interrupt_still_says_only_interrupted(tmp_path, capsys, monkeypatch):
    import datadiet.data
    from datadiet.cli import main

    def ctrl_c(config):  # Ctrl-C while the data loads: nothing of the user's to name
        raise KeyboardInterrupt
    monkeypatch.setattr(datadiet.data, "load_data", ctrl_c)
    assert main(_train_argv(_features(tmp_path), "mlp", tmp_path / "run")) == 130
    assert capsys.readouterr().err == "datadiet: interrupted; finished results are on disk and a re-run resumes.\n"


# ----------------------------------------------------------------------------- threads a factory leaves running

def _watchers() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "hostile-model-watcher" and t.is_alive()]


def test_main_called_from_python_returns_and_leaves_the_users_threads_alone(tmp_path, capsys):
    from datadiet.cli import main

    try:
        assert main(_train_argv(_features(tmp_path), "hostile_models:starts_a_thread", tmp_path / "run")) == 0
        assert _watchers(), "the factory's thread should still run: main() must not end it nor the process"
        assert "non-daemon" not in capsys.readouterr().err
    finally:
        hostile_models.RELEASE.set()
        for thread in _watchers():
            thread.join()
        hostile_models.RELEASE.clear()


def _program(argv: list[str], cwd) -> subprocess.CompletedProcess:
    """``python -m datadiet ARGV`` in a real process, with tests/ (the hostile models) on its path. The timeout is
    only a safety net against a hang: the assertions are on the exit status and the output."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATADIET_DATA", "DATADIET_DEBUG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), str(TESTS), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "datadiet", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_program_exits_when_done_although_a_factory_left_a_thread_running(tmp_path):
    out = tmp_path / "run"
    done = _program(_train_argv(_features(tmp_path), "hostile_models:starts_a_thread", out), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "done:" in done.stdout and (out / "result.json").is_file()
    err = " ".join(done.stderr.split())
    assert "Traceback" not in err
    warnings = [line for line in done.stderr.splitlines() if "non-daemon" in line]
    assert len(warnings) == 1, done.stderr  # one line, after the command's own output
    # two threads: the factory ran for the check before writing and for the training
    assert warnings[0].startswith("datadiet: warning: done, but 2 non-daemon threads") and \
        "('hostile-model-watcher' ×2)" in warnings[0], warnings[0]
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_program_says_nothing_about_threads_when_none_is_left(tmp_path):
    done = _program(["prune", "--help"], tmp_path)
    assert done.returncode == 0 and "--keep" in done.stdout
    assert done.stderr == ""


def test_the_console_script_is_the_program_entry():
    import tomllib

    from datadiet import cli

    scripts = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"datadiet": "datadiet.cli:console"}
    assert "console()" in (SRC / "datadiet" / "__main__.py").read_text()
    assert callable(cli.console)


# ----------------------------------------------------------------------------- score runs of a model that fails

def _score_argv(data: str, model: str, out, runs: int = 2) -> list[str]:
    return ["score", "--dataset", data, "--model", model, "--scores", "el2n", "--score-epochs", "1", "--epochs", "1",
            "--batch-size", "8", "--runs", str(runs), "--device", "cpu", "--out", str(out)]


def _files(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".datadiet.lock"}


def test_a_score_command_whose_model_fails_in_its_second_run_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """The first run is cached in .runs/ before the second fails: the failed command removes it and the folder it
    made (the cause, a model returning a tuple while scoring, is named: item 4)."""
    from datadiet.cli import main

    monkeypatch.setattr(hostile_models.TupleOnSecondScoring, "scorings", 0)
    data, out = _features(tmp_path), tmp_path / "scores"
    code = main(_score_argv(data, "hostile_models:TupleOnSecondScoring", out))
    printed, err = capsys.readouterr()
    err = " ".join(err.split())
    assert code == 2 and "Traceback" not in err, err
    assert "run 1/2 (seed 0): 3 steps and scoring" in printed  # the first run finished (and was cached)
    assert "The model returned a tuple from its forward pass" in err and "[N, classes]" in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.npz"]


def test_a_failed_score_command_in_an_existing_folder_leaves_it_as_it_was(tmp_path, capsys, monkeypatch):
    """Only what the failed command wrote goes: the runs and score files of an earlier command stay."""
    from datadiet.cli import main

    monkeypatch.setattr(hostile_models.TupleOnSecondScoring, "scorings", 0)
    data, out = _features(tmp_path), tmp_path / "scores"
    assert main(_score_argv(data, "hostile_models:TupleOnSecondScoring", out, runs=1)) == 0  # scoring number 1
    before = _files(out)
    assert any(name.startswith(".runs/run-seed0-") for name in before) and "score_config.json" in before
    code = main(_score_argv(data, "hostile_models:TupleOnSecondScoring", out, runs=2))  # seed 0 cached, seed 1 fails
    printed, err = capsys.readouterr()
    assert code == 2 and "run 1/2 (seed 0): cached" in printed, err
    assert _files(out) == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_runs_cached_before_running_out_of_memory_are_kept_and_resumed(tmp_path, capsys, monkeypatch):
    """Out of memory (or a full disk) is no fault of the runs: the command line says to re-run, which resumes."""
    from datadiet.cli import main

    monkeypatch.setattr(hostile_models.OutOfMemoryOnSecondScoring, "scorings", 0)
    data, out = _features(tmp_path), tmp_path / "scores"
    argv = _score_argv(data, "hostile_models:OutOfMemoryOnSecondScoring", out)
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "out of memory while training or scoring" in err and "--score-batch-size" in err, err
    kept = sorted(p.name.split("-")[1] + p.suffix for p in (out / ".runs").iterdir())
    assert kept == ["seed0.json", "seed0.npz"]
    assert main(argv) == 0  # scoring number 3: no longer out of memory
    printed = capsys.readouterr().out
    assert "run 1/2 (seed 0): cached" in printed and "run 2/2 (seed 1): 3 steps" in printed
    assert (out / "el2n-epoch1.npz").is_file()


# ----------------------------------------------------------------------------- the mlp built-in

def test_mlp_takes_features_and_flattened_images():
    assert "mlp" in MODELS
    torch.manual_seed(0)
    features = build_model("mlp", num_classes=5, in_channels=7, width=0.25, input_shape=(7,))
    assert [m.out_features for m in features.modules() if isinstance(m, nn.Linear)] == [64, 64, 5]
    assert features(torch.randn(3, 7)).shape == (3, 5)
    assert build_model("mlp", num_classes=5, in_channels=7)(torch.randn(3, 7)).shape == (3, 5)  # D = in_channels
    images = build_model("mlp", num_classes=5, in_channels=1, width=0.25, input_shape=(1, 6, 6))
    assert isinstance(images, MLP) and images(torch.randn(3, 1, 6, 6)).shape == (3, 5)
    with pytest.raises(ConfigError, match="36 input values per example .* shape \\(1, 5, 5\\)"):
        images(torch.randn(3, 1, 5, 5))


def test_grand_fast_path_on_the_mlp_equals_vmap():
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=4, in_channels=6, width=0.125, input_shape=(6,)).double()
    x, y = torch.randn(9, 6, dtype=torch.float64), torch.randint(0, 4, (9,))
    assert gradnorm.unsupported_layers(model) == []
    fast = grand(model, x, y, method="fast", batch_size=4)
    torch.testing.assert_close(fast, grand(model, x, y, method="vmap"), rtol=1e-10, atol=0)
    images = build_model("mlp", num_classes=4, in_channels=1, width=0.125, input_shape=(1, 4, 4)).double()
    xi = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(grand(images, xi, y[:5], method="fast"), grand(images, xi, y[:5], method="vmap"),
                               rtol=1e-10, atol=0)


# ----------------------------------------------------------------------------- GraNd on unsupported layers

def test_auto_uses_vmap_for_a_groupnorm_model_and_says_so_once(monkeypatch):
    monkeypatch.setattr(gradnorm, "_WARNED", set())
    torch.manual_seed(0)
    model = user_models.GroupNet(num_classes=3, in_channels=1).double()
    x, y = torch.randn(10, 1, 6, 6, dtype=torch.float64), torch.randint(0, 3, (10,))
    with pytest.raises(gradnorm.UnsupportedLayerError, match="GroupNorm"):
        grand(model, x, y, method="fast")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = grand(model, x, y, batch_size=3)  # four chunks
        again = grand(user_models.GroupNet(num_classes=3, in_channels=1).double(), x, y, batch_size=3)
    exact = [w for w in caught if issubclass(w.category, gradnorm.ExactPathWarning)]
    assert len(exact) == 1, [str(w.message) for w in caught]
    assert str(exact[0].message) == ("GraNd: GroupNet has layers the fast path does not cover (GroupNorm): using the "
                                     "exact torch.func.vmap path (slower, same values).")
    torch.testing.assert_close(first, grand(model, x, y, method="vmap"), rtol=0, atol=0)
    assert again.shape == (10,)


def test_auto_falls_back_for_weight_sharing_once_and_stays_silent_for_supported_models(monkeypatch):
    monkeypatch.setattr(gradnorm, "_WARNED", set())

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.out = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.out(torch.relu(self.a(torch.relu(self.a(x)))))

    torch.manual_seed(0)
    model = Shared().double()
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 1, 0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = grand(model, x, y, batch_size=2)
        grand(model, x, y, batch_size=2)
        grand(build_model("mlp", num_classes=2, in_channels=4, width=0.05), x.float(), y)
    messages = [str(w.message) for w in caught if issubclass(w.category, gradnorm.ExactPathWarning)]
    assert messages == ["GraNd: Shared has layers called more than once per forward pass (weight sharing): using the "
                        "exact torch.func.vmap path (slower, same values)."]
    torch.testing.assert_close(scores, grand(model, x, y, method="vmap"), rtol=0, atol=0)


# ----------------------------------------------------------------------------- training, identity, sweeps

def test_train_with_a_user_model_learns_and_records_the_path():
    splits = learnable_splits()
    cfg = TrainConfig(model="user_models:tiny", epochs=4, lr=0.05, flip=False, **TINY)
    result = train(cfg, splits)
    assert result.config["model"] == "user_models:tiny"
    assert result.model[1].in_features == 144  # input_shape (1, 12, 12) reached the factory
    assert result.train_loss[-1][1] < result.train_loss[0][1]
    assert result.test_accuracy > 0.5
    again = train(cfg, splits)
    for a, b in zip(result.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    assert train(TrainConfig(model="user_models:no_width", steps=3, **TINY), splits).steps == 3
    assert train(TrainConfig(model="mlp", steps=3, **TINY), splits).model.in_features == 144


def test_the_model_path_is_part_of_the_identity():
    base = TrainConfig(model="user_models:tiny")
    ids = {identity(base), identity(replace(base, model="user_models:no_width")),
           identity(replace(base, model="other_package.user_models:tiny")), identity(replace(base, model="mlp"))}
    assert len(ids) == 4
    data = DataConfig(dataset="mnist")
    spec = RunSpec(data, base, "full", 1.0, None, digest_ids(range(4)))
    assert spec.run_id != replace(spec, train=replace(base, model="user_models:Builders.build")).run_id


@pytest.fixture
def root(tmp_path):
    return write_fake_mnist(tmp_path / "data", n_train=64, n_test=32)


def _user_tasks(root, seeds=(0, 1)):
    data = DataConfig(dataset="mnist", data_root=str(root))
    tasks = []
    for seed in seeds:
        for keep in (0.5, 1.0):
            positions = None if keep == 1.0 else np.arange(0, 64, 2)
            train_cfg = TrainConfig(model="user_models:tiny", seed=seed, epochs=1, **TINY)
            ids = np.arange(64) if positions is None else positions
            tasks.append(Task(RunSpec(data, train_cfg, "every-other", keep, None, digest_ids(ids)), positions))
    return tasks


def test_worker_processes_rebuild_the_user_model_and_match_one_worker(root, tmp_path):
    tasks = _user_tasks(root)
    one = run_sweep(tasks, tmp_path / "one", Execution(workers=1), threads=1, log=lambda _: None)
    two = run_sweep(tasks, tmp_path / "two", Execution(workers=2), threads=1, log=lambda _: None)
    assert one.ran == two.ran == 4 and not one.failures and not two.failures
    for key in ("test_accuracy", "test_loss"):
        assert {r["run_id"]: r[key] for r in two.results} == {r["run_id"]: r[key] for r in one.results}
    assert {r["train"]["model"] for r in one.results} == {"user_models:tiny"}


def test_a_resumed_user_model_sweep_trains_nothing_twice(root, tmp_path, monkeypatch):
    tasks = _user_tasks(root, seeds=(0, 1, 2))
    out = tmp_path / "sweep"
    first = run_sweep(tasks[:3], out, Execution(workers=1), log=lambda _: None)
    assert first.ran == 3
    done = {t.spec.run_id for t in tasks[:3]}
    real, trained = sweep_mod.execute_run, []

    def guarded(spec, positions, threads=None, **options):
        assert spec.run_id not in done, "a finished run was trained again"
        trained.append(spec.run_id)
        return real(spec, positions, threads, **options)

    monkeypatch.setattr(sweep_mod, "execute_run", guarded)
    second = run_sweep(tasks, out, Execution(workers=1), log=lambda _: None)
    assert (second.ran, second.skipped) == (3, 3)
    assert sorted(trained) == sorted(t.spec.run_id for t in tasks[3:])
    assert len(second.results) == 6
