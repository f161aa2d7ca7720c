"""Architecture transfer [Paul et al. (2021) App. E.2–E.3, Figs. 12–13].

EL2N scores computed with one architecture (the *source*) select the subset a different architecture (the
*target*) trains on. Every source × target pair is compared with the target's own scores and with random
subsets of the same size. Paul et al. found test accuracy "agnostic to which network was used to calculate
the scores": VGG13 trained on subsets chosen by ResNet18's EL2N did as well as on its own.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..methods import Method
from ..report import figures
from ..config import TrainConfig, check_keeps
from .compare import accuracies, contrast, interval_text, mean_or_nan, relation, verdict
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import ScoreDraws, Workspace
from .common import Study, accuracy_rows, baseline_tasks, coverage, pruning_tasks
NAME = "transfer"
TITLE = "Architecture transfer: scores from one network prune for another"
SOURCE = "Paul et al. (2021) App. E.2–E.3, Figs. 12–13"


@dataclass(frozen=True)
class Config:
    setting: Setting
    architectures: tuple[tuple[str, float], ...] = (("smallcnn", 0.5), ("vgg13", 0.25))  # (model, width); each is
    # both a source and a target
    keeps: tuple[float, ...] = (0.5, 0.7)
    score: str = "el2n"                            # scored early in training (setting.score_epoch)

    def __post_init__(self) -> None:
        check_keeps(self.keeps)


PRESETS = study_presets(NAME, Config, settings=ON_SCARCE,
    smoke=dict(architectures=(("smallcnn", 0.25), ("vgg13", 0.125)), keeps=(0.5,)),
    # quick, on 2 CPU cores: VGG13 at width 1/4 trains ≈ 1.7× slower than the small CNN; 2 targets × 21 runs
    # (2 sources × 2 fractions × 3 seeds + 3 random × 2 + 3 full) ≈ 3.5 + 6 min, plus 4 short VGG score runs.
    quick=dict(architectures=(("smallcnn", 0.5), ("vgg13", 0.25)), keeps=(0.5, 0.7)),
    # Fig. 13 left: VGG13 and ResNet18 on CIFAR-10, EL2N at epoch 20 from 10 networks of either architecture.
    gpu=dict(architectures=(("resnet18", 1.0), ("vgg13", 1.0))),
    paper=dict(architectures=(("resnet18", 1.0), ("vgg13", 1.0)), keeps=(0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)),
)


def arch_name(model: str, width: float) -> str:
    return model if width == 1 else f"{model}×{width:g}"


def run(config: Config, ws: Workspace) -> dict:
    setting = config.setting
    label = setting.early(config.score)
    recipes = {arch_name(m, w): replace(setting.train, model=m, width=w) for m, w in config.architectures}
    scores = {name: _source_scores(ws, setting, recipe, label) for name, recipe in recipes.items()}
    tasks, origin = [], {}
    for target, recipe in recipes.items():
        tasks += baseline_tasks(ws, setting, config.keeps, train=recipe)
        for source, values in scores.items():
            method = str(Method(label, tag="" if source == target else f"from-{source}"))
            origin[(target, method)] = source
            tasks += pruning_tasks(ws, setting, method, values, config.keeps, train=recipe)
    records = ws.evaluate(tasks, NAME)
    rows = [{**r, "target": arch_name(r["model"], r["width"])} for r in accuracy_rows(records)]
    table = transfer_table(rows, origin, config.keeps)
    folder = ws.folder(NAME)
    _plot_transfer(table, folder / "transfer.png", label)
    return STUDY.write_section(folder, config, findings=[coverage(setting), *findings(table, label)],
        tables={"transfer.csv": table, "results.csv": rows},
        figures={"transfer.png": f"test accuracy of each target trained on subsets chosen by each source's {label}"},
        summary={"points": table})


def _source_scores(ws: Workspace, setting: Setting, recipe: TrainConfig, label: str) -> ScoreDraws:
    """Mean score over the setting's score runs with this architecture, per score draw (the standard set for the
    setting's own recipe, so those runs are shared with every other analysis; only ``label`` for other
    architectures)."""
    methods = None if recipe == setting.train else (label,)
    return ws.score_draws(setting, train=recipe, labels=methods).map(lambda tables: tables[label].mean)


def transfer_table(rows: list[dict], origin: dict, keeps) -> list[dict]:
    """One row per (target, source, keep): mean accuracy, and its difference to random and to the target's
    own scores with Welch 95 % intervals."""
    own = {target: method for (target, method), source in origin.items() if source == target}
    out = []
    for (target, method), source in sorted(origin.items()):
        mine = [r for r in rows if r["target"] == target]
        for keep in keeps:
            a = accuracies(mine, method, keep)
            if not len(a):
                continue
            rand, theirs = accuracies(mine, "random", keep), accuracies(mine, own[target], keep)
            out.append({"target": target, "source": source, "keep": keep, "n": len(a), "mean": float(a.mean()),
                        "random": mean_or_nan(rand), **contrast(a, rand, "vs_random"), **contrast(a, theirs, "vs_own")})
    return out


def findings(table: list[dict], label: str) -> list[str]:
    lines = []
    for row in table:
        if row["source"] == row["target"]:
            continue
        lines.append(f"{row['target']} at keep {row['keep']:g} with {row['source']}'s {label}: accuracy "
                     f"{row['mean']:.4f}, {relation(row, 'vs_own')} its own scores ({interval_text(row, 'vs_own')}); "
                     f"random {row['random']:.4f}.")
    transferred = [r for r in table if r["source"] != r["target"]]
    same = sum(verdict(r, "vs_own") == "no different" for r in transferred)
    lines.append(f"Borrowed scores were statistically indistinguishable from the target's own at {same} of "
                 f"{len(transferred)} points.")
    return lines


def _plot_transfer(table: list[dict], path, label: str):
    plt = figures.pyplot()
    targets = sorted({r["target"] for r in table})
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets):
        rows = [r for r in table if r["target"] == target]
        for source in sorted({r["source"] for r in rows}):
            pts = sorted((r for r in rows if r["source"] == source), key=lambda r: r["keep"])
            ax.plot([r["keep"] for r in pts], [r["mean"] for r in pts], marker="o",
                    label=f"{label} from {source}" + (" (own)" if source == target else ""))
        random = sorted({r["keep"]: r["random"] for r in rows}.items())
        ax.plot([k for k, _ in random], [v for _, v in random], "k--", label="random")
        ax.set_title(f"target {target}")
        ax.set_xlabel("fraction kept")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("final test accuracy")
    return figures.save(fig, path)


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
