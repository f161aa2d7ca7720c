"""Rank correlations between all scores [Data Diet reproduction: Kirsch Fig. 3; Paul et al. E.5 / Fig. 15].

Every score from the same score runs (so differences are the scores', not the runs'), averaged over R
runs; Spearman rank correlation of every pair, as a heatmap, plus pairwise scatter plots of the values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..report import figures
from ..stats import spearman_matrix
from .compare import check_labels
from ..runs.presets import ON_SCARCE, Setting, study_presets
from ..runs.workspace import Workspace
from ..config import check_counts
from .common import Study, check_score_labels
NAME = "correlations"
TITLE = "Rank correlations between all scores"
SOURCE = "Kirsch (2023) Fig. 3 and Paul et al. (2021) App. E.5 / Fig. 15"


@dataclass(frozen=True)
class Config:
    setting: Setting
    scores: tuple[str, ...] = ()        # score labels to correlate; empty = every standard score
    max_points: int = 2000              # examples drawn in the scatter plots (all are used for Spearman)

    def __post_init__(self) -> None:
        check_counts(self, ("max_points",))
        check_score_labels(self, "scores")


PRESETS = study_presets(NAME, Config, settings=ON_SCARCE)


def pair_labels(setting: Setting) -> tuple[str, ...]:
    """The scores drawn in the scatter grid: the papers' main ones (a 16×16 grid would be unreadable)."""
    return ("input_norm", "grand@init", "el2n@init", setting.early("grand"), setting.early("el2n"), "forgetting@end")


def run(config: Config, ws: Workspace) -> dict:
    tables = ws.scores(config.setting)
    labels = config.scores or tuple(tables)
    check_labels(labels, tuple(tables))
    means = {label: tables[label].mean for label in labels}
    names, rho = spearman_matrix(means)
    folder = ws.folder(NAME)
    figures.correlation_heatmap(names, rho, folder / "spearman.png", title="Spearman rank correlation of scores")
    pairs = [label for label in pair_labels(config.setting) if label in means]
    figures.pair_scatter({label: means[label] for label in pairs}, folder / "pairs.png",
                         max_points=config.max_points, title="score values, pairwise")
    matrix = [{"score": n, **{m: float(rho[i, j]) for j, m in enumerate(names)}} for i, n in enumerate(names)]
    ranked = pair_table(names, rho)
    return STUDY.write_section(folder, config, findings=findings(ranked, config.setting),
        tables={"spearman.csv": matrix, "pairs.csv": ranked},
        figures={"spearman.png": "Spearman rank correlation between the mean scores",
                       "pairs.png": "pairwise scatter plots of the mean score values"},
        summary={"spearman": {f"{r['a']} ~ {r['b']}": r["spearman"] for r in ranked}})


def pair_table(names: list[str], rho: np.ndarray) -> list[dict]:
    """Every unordered pair with its Spearman correlation, strongest first."""
    rows = [{"a": names[i], "b": names[j], "spearman": float(rho[i, j])}
            for i in range(len(names)) for j in range(i + 1, len(names))]
    return sorted(rows, key=lambda r: -abs(r["spearman"]))


def findings(ranked: list[dict], setting: Setting) -> list[str]:
    lookup = {frozenset((r["a"], r["b"])): r["spearman"] for r in ranked}

    def rho(a: str, b: str) -> str:
        value = lookup.get(frozenset((a, b)))
        return "n/a" if value is None else f"{value:.2f}"

    early_grand, early_el2n = setting.early("grand"), setting.early("el2n")
    lines = [f"GraNd at init ~ input norm: Spearman **{rho('grand@init', 'input_norm')}** (Kirsch: GraNd at "
             "initialization mostly ranks by input norm).",
             f"GraNd at init ~ GraNd after {setting.score_epoch:g} epochs: {rho('grand@init', early_grand)}; "
             f"EL2N ~ GraNd after {setting.score_epoch:g} epochs: {rho(early_el2n, early_grand)}; "
             f"EL2N after {setting.score_epoch:g} epochs ~ forgetting: {rho(early_el2n, 'forgetting@end')}.",
             f"Random ~ every other score: at most |{max((abs(r['spearman']) for r in ranked if 'random' in (r['a'], r['b'])), default=float('nan')):.2f}| (a sanity check)."]
    top = [r for r in ranked if "random" not in (r["a"], r["b"])][:3]
    lines.append("Most alike: " + "; ".join(f"{r['a']} ~ {r['b']} {r['spearman']:.2f}" for r in top) + ".")
    return lines


STUDY = Study(NAME, TITLE, SOURCE, Config, PRESETS, run, doc=__doc__)
