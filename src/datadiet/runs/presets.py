"""The one table of presets: data, recipe and protocol that `reproduce` and every study share.

A study picks a preset by name (``--preset quick``) and adds only what is its own (which scores, which
fractions, which grid).  Changing a preset here changes it everywhere, so the same name always means the
same runs, and a workspace reuses score runs and evaluation runs across studies.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, TypeVar

from ..config import DataConfig, TrainConfig
from ..errors import unknown_name
from ..scores.registry import ScoreLabel

T = TypeVar("T")


@dataclass(frozen=True)
class Setting:
    """Data, recipe and scoring protocol shared by the runs of a reproduction or study."""

    name: str
    title: str
    data: DataConfig
    train: TrainConfig
    score_runs: int              # R independent scoring runs averaged
    score_epoch: float           # "early in training" (Data Diet: epoch 20 of 200 on CIFAR-10)
    eval_seeds: int              # evaluation runs per point
    keeps: tuple[float, ...]     # kept fractions of the pruning curve
    eval_seed_base: int = 1000   # evaluation seeds never overlap score seeds 0..K·R-1 (scoring.check_score_seeds)
    # K independent score draws of R runs each (draw d: seeds d·R … d·R+R-1); evaluation seed s selects its subsets
    # from draw s mod K, so intervals across evaluation seeds cover the randomness of the score runs. 1 = the scores
    # are fixed and intervals cover the evaluation runs only.
    score_draws: int = 1

    def early(self, score: str) -> str:
        """The label of ``score`` computed early in training, e.g. ``el2n@epoch2``."""
        return str(ScoreLabel(score, self.score_epoch))

    @property
    def draws_used(self) -> int:
        """The score draws some evaluation seed selects from: a draw beyond the evaluation seeds adds nothing."""
        return min(self.score_draws, self.eval_seeds)

    def with_protocol(self, *, eval_seeds: int | None = None, score_runs: int | None = None,
                      score_draws: int | None = None) -> "Setting":
        """The setting with a study's own evaluation seeds, score runs and score draws (``None``: the setting's)."""
        return replace(self, eval_seeds=eval_seeds or self.eval_seeds, score_runs=score_runs or self.score_runs,
                       score_draws=score_draws or self.score_draws)

    def eval_configs(self, train: TrainConfig | None = None) -> list[TrainConfig]:
        """The recipe (``train``, default the setting's) once per evaluation seed."""
        train = train or self.train
        return [replace(train, seed=self.eval_seed_base + s) for s in range(self.eval_seeds)]


PRESETS: dict[str, Setting] = {s.name: s for s in (
    Setting("smoke", "smoke test (seconds)",
            DataConfig(dataset="fashion-mnist", subset=384, subset_mode="balanced", test_subset=200),
            TrainConfig(model="smallcnn", width=0.25, epochs=2, batch_size=32),
            score_runs=2, score_epoch=1, eval_seeds=2, keeps=(0.5,), score_draws=2),
    # CPU, the papers' regime, chosen from `datadiet analyze scaling --preset quick` (README "The regime map"):
    # 8,000 balanced examples, small CNN ×0.5, 16 epochs without augmentation. The data is redundant (random 70 %
    # within 0.5 points of full data) and training has converged (doubling the budget adds < 1 point of full-data
    # test accuracy); it runs end to end in ≤ 20 min on 2 cores. (With augmentation the small CNN stays underfit
    # at any CPU-sized budget, and every subset then scores like the full data.)
    Setting("quick", "Fashion-MNIST (8,000), small CNN, CPU: the redundant regime (Kirsch Fig. 1-3 in miniature)",
            DataConfig(dataset="fashion-mnist", subset=8000, subset_mode="balanced"),
            TrainConfig(model="smallcnn", width=0.5, epochs=16, augment=False),
            score_runs=4, score_epoch=2, eval_seeds=3, keeps=(0.3, 0.5, 0.7), score_draws=3),
    # The first CPU miniature (datadiet 0.1/0.2's `quick`): 4,000 examples, 20 epochs. The analyses' quick presets
    # run on it (they were sized for it: ≤ 15 min each on 2 cores). It sits nearer the scarce side of the regime map.
    Setting("quick-scarce", "Fashion-MNIST (4,000), small CNN, CPU: the scarce side",
            DataConfig(dataset="fashion-mnist", subset=4000, subset_mode="balanced"),
            TrainConfig(model="smallcnn", width=0.5, epochs=20, augment=False),
            score_runs=4, score_epoch=2, eval_seeds=3, keeps=(0.3, 0.5, 0.7), score_draws=3),
    # gpu and paper: one draw per evaluation seed too. A claim "EL2N beats random" is about the method, whose
    # randomness includes its score runs (on one machine, score seeds 100-103 instead of 0-3 moved accuracy at keep
    # 0.3 from 0.692 to 0.595); the price is K·R score runs instead of R: with forgetting@end each trains the whole
    # budget, about a third more training for gpu (116 runs instead of 86) and a sixth for paper (212 instead of 182).
    # `--score-draws 1` gives the papers' protocol (one fixed set of scores).
    Setting("gpu", "Fashion-MNIST, ResNet18, one GPU",
            DataConfig(dataset="fashion-mnist"),
            TrainConfig(model="resnet18", epochs=6),
            score_runs=10, score_epoch=1, eval_seeds=4, keeps=(0.3, 0.5, 0.7), score_draws=4),
    Setting("paper", "CIFAR-10, ResNet18, the full Data Diet recipe (B.2/B.3)",
            DataConfig(dataset="cifar10"),
            TrainConfig(model="resnet18", epochs=200),
            score_runs=10, score_epoch=20, eval_seeds=4, keeps=(0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3), score_draws=4),
)}


# The one exception to "a preset name means the same setting everywhere", which a study declares for itself
# (``study_presets(..., settings=ON_SCARCE)``): the analyses' quick grids were sized for the 4,000-example miniature
# (<= 15 min each on 2 cores), so they run `--preset quick` on quick-scarce; `reproduce` and `analyze compute` run
# quick itself (8,000 examples). `--help` of each command and the README's preset table show these.
ON_SCARCE: dict[str, str] = {"quick": "quick-scarce"}


def study_presets(study: str, config_type: Callable[..., T], *, settings: dict[str, str] | None = None,
                  **grids: dict) -> dict[str, T]:
    """A study's config for every preset of the table: ``config_type(setting, **grid)``, with the preset's own
    setting (or the one ``settings`` names for it: preset name → setting name) and the study's own grid for that
    preset name (``grids[name]``, default none). A preset added to the table reaches every study."""
    settings = settings or {}
    unknown = (set(grids) | set(settings) | set(settings.values())) - set(PRESETS)
    if unknown:
        raise ValueError(f"{study}: grids or settings for presets the table lacks: {sorted(unknown)}")
    return {name: config_type(get_preset(settings.get(name, name)), **grids.get(name, {})) for name in PRESETS}


def describe_setting(preset: str, setting: str) -> str:
    """``" (on the quick-scarce setting here: ...)"`` where a study runs ``preset`` on another ``setting``."""
    return f" (on the {setting} setting here: {PRESETS[setting].title})" if setting != preset else ""


def get_preset(name: str) -> Setting:
    if name not in PRESETS:
        raise unknown_name("preset", name, tuple(PRESETS))
    return PRESETS[name]


MODEL_SCORES = ("grand", "el2n", "score1", "score2", "score3")


def standard_scores(setting: Setting) -> tuple[str, ...]:
    """Every score of both papers, each model score at init and early in training: one set of score runs
    serves every study (asking for a subset would be a different cache key and retrain)."""
    timed = [str(ScoreLabel(s, e)) for s in MODEL_SCORES for e in (0.0, setting.score_epoch)]
    return ("input_norm", "random", *timed, "forgetting@end")
