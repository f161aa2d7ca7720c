"""GraNd and the label-free gradient scores against an independent per-example autograd loop."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from datadiet.errors import ConfigError
from datadiet.models import build_model
from datadiet.scores.functions import grand, score1, score3
from datadiet.scores.gradnorm import UnsupportedLayerError, per_example_grad_norms, cross_entropy_cotangent


def reference_norms(model, x, y=None, kind="grand"):
    """‖∇_θ ℓ(x_i)‖ by one backward per example, over all trainable parameters (eval mode)."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    out = []
    for i in range(x.shape[0]):
        logits = model(x[i:i + 1])
        if kind == "grand":
            scalar = F.cross_entropy(logits, y[i:i + 1])
        elif kind == "score1":
            scalar = logits.sum()
        else:  # score3: p held constant
            scalar = (torch.softmax(logits, 1).detach() * logits).sum()
        grads = torch.autograd.grad(scalar, params, allow_unused=True)
        out.append(torch.sqrt(sum(g.pow(2).sum() for g in grads if g is not None)))
    return torch.stack(out).detach()


def randomize_bn(model, seed=0):
    """Non-trivial running statistics and affine parameters, so eval-mode BN is really tested."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen, dtype=m.running_mean.dtype))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen, dtype=m.running_var.dtype) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen, dtype=m.weight.dtype))
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen, dtype=m.bias.dtype))
    return model


class Flat(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def _conv_net(conv, channels=4, pool=True):
    return nn.Sequential(conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2) if pool else nn.Identity(),
                         Flat(), nn.LazyLinear(5))


LAYER_CASES = {
    "linear+bias": lambda: nn.Sequential(Flat(), nn.Linear(48, 7), nn.Tanh(), nn.Linear(7, 5)),
    "linear-no-bias": lambda: nn.Sequential(Flat(), nn.Linear(48, 5, bias=False)),
    "conv-stride-pad-bias": lambda: _conv_net(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True)),
    "conv-groups-dilation": lambda: nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 3, padding=2, dilation=2, groups=2),
                                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), Flat(), nn.Linear(4, 5)),
    "conv-depthwise": lambda: nn.Sequential(nn.Conv2d(3, 6, 3, groups=3, bias=False), nn.ReLU(), Flat(), nn.LazyLinear(5)),
    "conv-same-even-kernel": lambda: _conv_net(nn.Conv2d(3, 4, 4, padding="same")),
    "conv-big-kernel-ghost": lambda: nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, stride=2),
                                                   Flat(), nn.LazyLinear(5)),
    "conv1d": lambda: nn.Sequential(nn.Flatten(2), nn.Conv1d(3, 4, 5, stride=2, padding=1), nn.ReLU(), Flat(), nn.LazyLinear(5)),
    "batchnorm2d-eval+inplace-relu": lambda: nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                                                           Flat(), nn.LazyLinear(5)),
    "batchnorm1d-eval": lambda: nn.Sequential(Flat(), nn.Linear(48, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5)),
    "layernorm": lambda: nn.Sequential(nn.Flatten(2), nn.LayerNorm(16), Flat(), nn.Linear(48, 5)),
}


def _inputs(dtype, n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 4, 4, generator=gen, dtype=dtype), torch.randint(0, 5, (n,), generator=gen)


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_fast_grand_equals_the_per_example_loop_in_float64(case):
    torch.manual_seed(1)
    x, y = _inputs(torch.float64)
    model = LAYER_CASES[case]().double()
    model(x)  # materialise lazy layers
    randomize_bn(model)
    fast = grand(model, x, y, method="fast")
    torch.testing.assert_close(fast, reference_norms(model, x, y), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_fast_grand_is_within_1e_4_relative_in_float32(case):
    torch.manual_seed(2)
    x, y = _inputs(torch.float32)
    model = LAYER_CASES[case]()
    model(x)
    randomize_bn(model)
    fast = grand(model, x, y, method="fast")
    ref = reference_norms(model.double(), x.double(), y).float()
    assert ((fast - ref).abs() / ref).max() < 1e-4


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg13", "smallcnn"])
def test_fast_grand_is_exact_on_the_builtin_models(name):
    torch.manual_seed(0)
    model = randomize_bn(build_model(name, num_classes=10, in_channels=3, width=0.0625)).double()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    y = torch.tensor([0, 4, 9])
    torch.testing.assert_close(grand(model, x, y, method="fast"), reference_norms(model, x, y), rtol=1e-9, atol=0)


def test_linear_softmax_identity_of_kirsch_eq_7():
    """Bias-free softmax regression: GraNd = ‖p − onehot(y)‖₂ · ‖x‖₂ exactly (seed 000, eqs. 5–7)."""
    torch.manual_seed(0)
    model = nn.Linear(20, 6, bias=False).double()
    x = torch.randn(50, 20, dtype=torch.float64)
    y = torch.randint(0, 6, (50,))
    p = torch.softmax(model(x), 1).detach()
    expected = (p - F.one_hot(y, 6)).norm(dim=1) * x.norm(dim=1)
    torch.testing.assert_close(grand(model, x, y, method="fast"), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("score, kind", [(score1, "score1"), (score3, "score3")])
def test_label_free_gradient_scores_equal_the_loop(score, kind):
    torch.manual_seed(0)
    model = randomize_bn(build_model("smallcnn", num_classes=5, in_channels=3, width=0.25)).double()
    x = torch.randn(5, 3, 12, 12, dtype=torch.float64)
    torch.testing.assert_close(score(model, x, method="fast"), reference_norms(model, x, kind=kind), rtol=1e-10, atol=0)


def test_methods_agree_and_chunking_changes_nothing():
    torch.manual_seed(0)
    model = randomize_bn(build_model("smallcnn", num_classes=10, in_channels=1, width=0.25)).double()
    x, y = torch.randn(9, 1, 28, 28, dtype=torch.float64), torch.arange(9)
    fast = grand(model, x, y, method="fast", batch_size=4)
    for method in ("vmap", "loop"):
        torch.testing.assert_close(grand(model, x, y, method=method, batch_size=5), fast, rtol=1e-10, atol=0)
    torch.testing.assert_close(grand(model, x, y, method="fast", batch_size=100), fast, rtol=1e-12, atol=0)


def test_scoring_leaves_model_mode_and_weights_untouched():
    model = build_model("smallcnn", num_classes=10, in_channels=1, width=0.25)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grand(model, torch.randn(4, 1, 28, 28), torch.arange(4))
    assert model.training
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_frozen_parameters_are_not_part_of_the_norm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    model[0].weight.requires_grad_(False)
    x, y = torch.randn(4, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(grand(model, x, y, method="fast"), reference_norms(model, x, y), rtol=1e-12, atol=0)


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(x) * self.scale


def test_unsupported_layer_is_an_error_never_skipped():
    model = Scaled()
    with pytest.raises(UnsupportedLayerError, match=r"<root> \(Scaled\)"):
        grand(model, torch.randn(2, 8), torch.tensor([0, 1]), method="fast")
    with pytest.raises(UnsupportedLayerError, match=r"PReLU"):
        grand(nn.Sequential(nn.Linear(8, 3), nn.PReLU()), torch.randn(2, 8), torch.tensor([0, 1]), method="fast")


@pytest.mark.filterwarnings("ignore::datadiet.scores.gradnorm.ExactPathWarning")  # said once: tested in test_user_models
def test_auto_falls_back_to_an_exact_method_for_unsupported_layers():
    torch.manual_seed(0)
    model = Scaled().double()
    x, y = torch.randn(5, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    torch.testing.assert_close(grand(model, x, y), reference_norms(model, x, y), rtol=1e-10, atol=0)


def test_weight_sharing_is_detected():
    shared = nn.Linear(8, 8)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(8, 3))
    with pytest.raises(UnsupportedLayerError, match="called twice|shared"):
        grand(model, torch.randn(2, 8), torch.tensor([0, 1]), method="fast")


def test_batchnorm_without_running_stats_is_rejected():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False), nn.Linear(4, 2))
    with pytest.raises(UnsupportedLayerError, match=r"1 \(BatchNorm1d\).*running statistics"):
        grand(model, torch.randn(3, 4), torch.tensor([0, 1, 0]), method="fast")


def test_label_count_mismatch_and_bad_method():
    model = nn.Linear(4, 2)
    with pytest.raises(ConfigError, match="one label per input"):
        grand(model, torch.randn(3, 4), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="Unknown gradient-norm method"):
        per_example_grad_norms(model, torch.randn(3, 4), torch.tensor([0, 1, 0]), cross_entropy_cotangent, method="jvp")
