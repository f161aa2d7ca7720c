"""--precision bf16: bfloat16 autocast on the CPU, a warning where the CPU lacks native bfloat16, fp32 by default."""
import warnings

import pytest
import torch

from fakes import learnable_splits
from datadiet.config import TrainConfig
from datadiet.training import placement, step, train
from datadiet.training.step import EagerStep, make_step


def _step(precision, device="cpu", amp=True):
    model = torch.nn.Linear(4, 3)
    return model, make_step(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device(device), amp=amp,
                            cuda_graph=True, precision=precision)


@pytest.fixture
def cpu_support(monkeypatch):
    """Set what the CPU is said to support, with the once-per-process warning forgotten."""
    monkeypatch.setattr(step, "_WARNED", set())

    def set_support(value):
        monkeypatch.setattr(step, "cpu_bf16_support", lambda: value)
    return set_support


def test_bf16_autocasts_the_forward_pass_on_the_cpu_and_fp32_does_not(cpu_support):
    cpu_support(True)
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        model, sgd_step = _step(precision)
        assert isinstance(sgd_step, EagerStep)
        logits, loss, per_example = sgd_step(x, y, 0.1)
        assert logits.dtype == dtype and loss.dtype == torch.float32 and per_example is None
        assert model.weight.dtype == torch.float32  # the parameters and the update stay in float32


def test_amp_alone_never_reaches_the_cpu():
    _, sgd_step = _step("fp32", amp=True)
    logits, _, _ = sgd_step(torch.randn(2, 4), torch.tensor([0, 1]), 0.1)
    assert logits.dtype == torch.float32


@pytest.mark.parametrize("support, warned", [(True, None), (False, "avx512_bf16"), (None, "cannot tell")])
def test_a_cpu_without_native_bf16_is_warned_about_once(cpu_support, support, warned):
    cpu_support(support)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _step("bf16")
        _step("bf16")
        _step("fp32")
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == (warned is not None) and all(warned in m for m in messages)


def test_the_bf16_flags_are_read_from_cpuinfo(tmp_path):
    lines = {"yes": "flags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n", "amx": "flags\t: fpu amx_bf16 amx_tile\n",
             "no": "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n"}
    for name, text in lines.items():
        (tmp_path / name).write_text(text)
    assert placement.cpu_bf16_support(tmp_path / "yes") is True
    assert placement.cpu_bf16_support(tmp_path / "amx") is True
    assert placement.cpu_bf16_support(tmp_path / "no") is False
    assert placement.cpu_bf16_support(tmp_path / "missing") is None


def test_fp32_is_the_default_and_a_bf16_run_learns_but_differs(cpu_support):
    cpu_support(True)
    assert TrainConfig().precision == "fp32"
    splits = learnable_splits()
    recipe = dict(model="smallcnn", width=0.25, batch_size=16, eval_batch_size=64, epochs=6, lr=0.05, flip=False)
    bf16 = train(TrainConfig(precision="bf16", **recipe), splits)
    fp32 = train(TrainConfig(steps=3, **{k: v for k, v in recipe.items() if k != "epochs"}), splits)
    fp32_bf16 = train(TrainConfig(steps=3, precision="bf16", **{k: v for k, v in recipe.items() if k != "epochs"}),
                      splits)
    assert bf16.test_accuracy > 0.9
    assert not torch.equal(fp32.model.classifier[-1].weight, fp32_bf16.model.classifier[-1].weight)
